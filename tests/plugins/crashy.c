/*
 * crashy.c — fixture "crashy": a plugin whose query "crash" dereferences a
 * NULL pointer, for the test that a crashing plugin's town, plugin and
 * callback are written to the log before the host dies. Its query "ok"
 * answers {"ok":true}.
 */
#define _GNU_SOURCE /* memmem */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "twin/twin.h"

typedef struct crashy {
  const twin_host_api *api;
} crashy;

static int c_open(const twin_host_api *api, twin_ctx *ctx, const char *cfg,
                  size_t len, void **out)
{
  (void)ctx;
  (void)cfg;
  (void)len;
  crashy *c = malloc(sizeof *c);
  if (!c)
    return TWIN_ERR_NOMEM;
  c->api = api;
  *out = c;
  return TWIN_OK;
}

static void c_close(void *inst)
{
  free(inst);
}

static int c_query(void *inst, twin_ctx *ctx, const char *req, size_t len)
{
  crashy *c = inst;
  if (len && memmem(req, len, "\"crash\"", 7)) {
    /* not NULL, which a sanitizer would report before the host could; read
     * through a volatile so the compiler cannot see the address */
    volatile uintptr_t at = 16;
    return *(volatile int *)at; /* the fault the test wants */
  }
  return c->api->respond(ctx, "{\"ok\":true}", 11);
}

static const twin_op c_ops[] = {
    {"ok", TWIN_OP_QUERY, TWIN_OP_SAFE, "answers", NULL, NULL, NULL},
    {"crash", TWIN_OP_QUERY, TWIN_OP_SAFE, "crashes the host", NULL, NULL,
     NULL},
};

static const twin_plugin crashy_plugin = {
    .struct_size = sizeof(twin_plugin),
    .abi_major = TWIN_ABI_MAJOR,
    .abi_minor = TWIN_ABI_MINOR,
    .name = "crashy",
    .version = "0.1.0",
    .use_case = "test-fixture",
    .summary = "fixture: a query that crashes",
    .open = c_open,
    .close = c_close,
    .query = c_query,
    TWIN_OPS(c_ops),
};

TWIN_PLUGIN_DEFINE(crashy_plugin)
