/*
 * minimal.c — the smallest useful plugin, written as a third party would:
 * it includes twin.h and the C library and nothing else, so it proves the
 * ABI header is enough to build a plugin out of tree. test_out_of_tree
 * compiles it with only -I include; the fixtures CMake does not build it.
 *
 *   ingest  text lines "name=value": each becomes entity Item/<name> with
 *           the string attribute "value"; blank lines are skipped
 *   query   {"count": N}, the number of Item entities stored
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "twin/twin.h"

typedef struct minimal {
  const twin_host_api *api;
} minimal;

static int minimal_open(const twin_host_api *api, twin_ctx *ctx,
                        const char *config_json, size_t config_len,
                        void **instance)
{
  minimal *m;
  (void)ctx;
  (void)config_json;
  (void)config_len;
  m = malloc(sizeof *m);
  if (!m)
    return TWIN_ERR_NOMEM;
  m->api = api;
  *instance = m;
  return TWIN_OK;
}

static void minimal_close(void *instance)
{
  free(instance);
}

static int reject_line(minimal *m, twin_ctx *ctx, size_t line, const char *why)
{
  char msg[160];
  snprintf(msg, sizeof msg, "line %zu: %s", line, why);
  m->api->set_error(ctx, msg);
  return TWIN_ERR_PARSE;
}

/* One "name=value" line (no newline, trailing CR dropped). */
static int ingest_line(minimal *m, twin_ctx *ctx, size_t line, const char *s,
                       size_t len)
{
  char name[TWIN_NAME_MAX + 1];
  const char *eq = memchr(s, '=', len);
  size_t name_len;
  twin_attr attr;
  if (len && s[len - 1] == '\r')
    len--;
  if (!len)
    return TWIN_OK;
  if (!eq)
    return reject_line(m, ctx, line, "expected name=value");
  name_len = (size_t)(eq - s);
  if (!name_len || name_len > TWIN_NAME_MAX)
    return reject_line(m, ctx, line, "the name must be 1 to 200 bytes");
  memcpy(name, s, name_len);
  name[name_len] = '\0';
  attr.name = "value";
  attr.time = m->api->now(ctx);
  attr.value = twin_string(eq + 1, len - name_len - 1);
  return m->api->entity_put(ctx, "Item", name, &attr, 1);
}

static int minimal_ingest(void *instance, twin_ctx *ctx, const char *doc,
                          size_t len)
{
  minimal *m = instance;
  const char *end = doc + len;
  size_t line = 0;
  while (doc < end) {
    const char *nl = memchr(doc, '\n', (size_t)(end - doc));
    const char *stop = nl ? nl : end;
    int rc = ingest_line(m, ctx, ++line, doc, (size_t)(stop - doc));
    if (rc != TWIN_OK)
      return rc;
    doc = stop + 1;
  }
  return TWIN_OK;
}

static int count_one(void *ud, const char *type, const char *id)
{
  (void)type;
  (void)id;
  ++*(long *)ud;
  return TWIN_OK;
}

static int minimal_query(void *instance, twin_ctx *ctx, const char *request,
                         size_t len)
{
  minimal *m = instance;
  char reply[64];
  long count = 0;
  int rc;
  (void)request;
  (void)len;
  rc = m->api->entity_iterate(ctx, "Item", count_one, &count);
  if (rc != TWIN_OK)
    return rc;
  snprintf(reply, sizeof reply, "{\"count\":%ld}", count);
  return m->api->respond(ctx, reply, strlen(reply));
}

static const twin_plugin minimal_plugin = {
    .struct_size = sizeof(twin_plugin),
    .abi_major = TWIN_ABI_MAJOR,
    .abi_minor = TWIN_ABI_MINOR,
    .name = "minimal",
    .version = "1.0.0",
    .use_case = "other",
    .summary = "name=value lines as entities; built out of tree",
    .config_schema = NULL,
    .tick_interval_s = 0,
    .open = minimal_open,
    .close = minimal_close,
    .ingest = minimal_ingest,
    .query = minimal_query,
};

TWIN_PLUGIN_DEFINE(minimal_plugin)
