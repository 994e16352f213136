/*
 * minor_one.c — fixture "minorone": a plugin as it was built against ABI
 * 1.1, before declared ops: its descriptor ends at describe (the size of
 * the 1.1 struct), it dispatches queries on "op" itself and uses
 * local_time (new in 1.1). The host must load it and answer its queries
 * both in the body form and with the op in the URL path.
 *
 *   query {"op":"hello"}          {"hello":"world","op":"hello"}
 *   query {"op":"hour","t":ms}    {"hour": local hour of t}
 *   ingest any JSON               kv "seen" = the document
 */
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "twin/twin.h"

typedef struct one {
  const twin_host_api *api;
} one;

static int one_open(const twin_host_api *api, twin_ctx *ctx, const char *cfg,
                    size_t len, void **out)
{
  (void)ctx;
  (void)cfg;
  (void)len;
  one *o = malloc(sizeof *o);
  if (!o)
    return TWIN_ERR_NOMEM;
  o->api = api;
  *out = o;
  return TWIN_OK;
}

static void one_close(void *inst)
{
  free(inst);
}

static int one_ingest(void *inst, twin_ctx *ctx, const char *doc, size_t len)
{
  one *o = inst;
  return o->api->kv_put(ctx, "seen", 4, doc, len);
}

static int one_query(void *inst, twin_ctx *ctx, const char *req, size_t len)
{
  one *o = inst;
  char buf[256], out[128];
  if (len >= sizeof buf)
    return TWIN_ERR_TOO_BIG;
  memcpy(buf, req, len);
  buf[len] = 0;
  if (strstr(buf, "\"op\":\"hello\"")) {
    snprintf(out, sizeof out, "{\"hello\":\"world\",\"op\":\"hello\"}");
  } else if (strstr(buf, "\"op\":\"hour\"")) {
    const char *t = strstr(buf, "\"t\":");
    twin_local l;
    if (!t || o->api->local_time(ctx, strtoll(t + 4, NULL, 10), &l))
      return TWIN_ERR_INVALID;
    snprintf(out, sizeof out, "{\"hour\":%d}", (int)l.hour);
  } else {
    o->api->set_error(ctx, "unknown op (known: hello, hour)");
    return TWIN_ERR_INVALID;
  }
  return o->api->respond(ctx, out, strlen(out));
}

static const twin_plugin one_desc = {
    /* the 1.1 descriptor: every field up to describe */
    .struct_size = (uint32_t)offsetof(twin_plugin, ops),
    .abi_major = 1,
    .abi_minor = 1,
    .name = "minorone",
    .version = "1.1.0",
    .use_case = "other",
    .summary = "fixture built against ABI 1.1",
    .open = one_open,
    .close = one_close,
    .ingest = one_ingest,
    .query = one_query,
};

TWIN_PLUGIN_DEFINE(one_desc)
