/*
 * dispatch.c — routing a request to the handler of its "op", the body of
 * query or simulate for a plugin that declares several ops. The host has
 * already checked the request against the op's schema and put "op" in it,
 * so a miss here means the op table and the handler table disagree: the
 * message lists what the plugin does handle, which is what its author
 * needs to see.
 */
#include <stdio.h>
#include <string.h>

#include "twin/twinaux.h"

/* Op names are at most 40 bytes (twin_op.name); anything longer is
 * unknown anyway and is cut to this for the message. */
#define OP_MAX 64
#define NAMES_MAX 512

/* "forecast, occupancy" into names; cut (with "...") when too long. */
static void list_names(const twinaux_op_handler *handlers, size_t n,
                       char *names, size_t size)
{
  size_t len = 0;
  names[0] = '\0';
  for (size_t i = 0; i < n; i++) {
    const char *name = handlers[i].name ? handlers[i].name : "";
    int w = snprintf(names + len, size - len, "%s%s", i ? ", " : "", name);
    if (w < 0 || (size_t)w >= size - len) {
      snprintf(names + (size > 4 ? size - 4 : 0), 4, "...");
      return;
    }
    len += (size_t)w;
  }
  if (n == 0)
    snprintf(names, size, "(none)");
}

int twinaux_dispatch(const twin_host_api *api,
                     const twinaux_op_handler *handlers, size_t n,
                     void *instance, twin_ctx *ctx, const char *request,
                     size_t len)
{
  char op[OP_MAX], names[NAMES_MAX];
  if (!handlers)
    n = 0;
  int rc = request ? twinaux_json_member_str(request, len, "op", op, sizeof op)
                   : TWIN_ERR_PARSE;
  if (rc == TWIN_OK) {
    for (size_t i = 0; i < n; i++)
      if (handlers[i].name && handlers[i].fn &&
          strcmp(handlers[i].name, op) == 0)
        return handlers[i].fn(instance, ctx, request, len);
  }
  list_names(handlers, n, names, sizeof names);
  switch (rc) {
  case TWIN_OK: /* as the host answers an op it does not know */
    return twinaux_fail(api, ctx, TWIN_ERR_NOT_FOUND, "unknown_op", "op",
                        "no handler for op '%s'; handled: %s", op, names);
  case TWIN_ERR_TOO_BIG:
    return twinaux_fail(api, ctx, TWIN_ERR_NOT_FOUND, "unknown_op", "op",
                        "no handler for an op of more than %d bytes; "
                        "handled: %s",
                        OP_MAX - 1, names);
  case TWIN_ERR_NOT_FOUND:
    return twinaux_fail(api, ctx, TWIN_ERR_INVALID, NULL, "op",
                        "the request has no \"op\"; handled: %s", names);
  case TWIN_ERR_INVALID:
    return twinaux_fail(api, ctx, TWIN_ERR_INVALID, NULL, "op",
                        "\"op\" is not a string; handled: %s", names);
  default: /* the host sends objects: this is a caller's mistake */
    return twinaux_fail(api, ctx, TWIN_ERR_PARSE, NULL, NULL,
                        "the request is not a JSON object; handled ops: %s",
                        names);
  }
}
