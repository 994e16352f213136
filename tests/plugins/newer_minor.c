/*
 * newer_minor.c — fixture "newer": a plugin built against a later minor of
 * ABI 1. Its descriptor is a bigger struct (twin_plugin followed by fields a
 * later minor would add) and says so in struct_size and abi_minor. A host
 * of an older minor must load it, reading only the fields it knows.
 */
#include <stdlib.h>
#include <string.h>

#include "twin/twin.h"

/* twin_plugin as a later minor might grow it: only ever at the end. */
typedef struct newer_plugin {
  twin_plugin base;
  int (*future_callback)(void *instance, twin_ctx *ctx);
  uint64_t future_flags;
  const char *future_text;
} newer_plugin;

typedef struct newer {
  const twin_host_api *api;
} newer;

static int newer_open(const twin_host_api *api, twin_ctx *ctx,
                      const char *config_json, size_t config_len,
                      void **instance)
{
  newer *n = malloc(sizeof *n);
  (void)ctx;
  (void)config_json;
  (void)config_len;
  if (!n)
    return TWIN_ERR_NOMEM;
  n->api = api;
  *instance = n;
  return TWIN_OK;
}

static void newer_close(void *instance)
{
  free(instance);
}

static int newer_describe(void *instance, twin_ctx *ctx)
{
  static const char reply[] = "{\"newer\":true}";
  newer *n = instance;
  return n->api->respond(ctx, reply, strlen(reply));
}

static int newer_future(void *instance, twin_ctx *ctx)
{
  (void)instance;
  (void)ctx;
  return TWIN_OK;
}

static const newer_plugin newer_desc = {
    .base =
        {
            .struct_size = sizeof(newer_plugin),
            .abi_major = TWIN_ABI_MAJOR,
            .abi_minor = TWIN_ABI_MINOR + 1,
            .name = "newer",
            .version = "0.1.0",
            .use_case = "other",
            .summary = "fixture built against a newer ABI minor",
            .config_schema = NULL,
            .tick_interval_s = 0,
            .open = newer_open,
            .close = newer_close,
            .describe = newer_describe,
        },
    .future_callback = newer_future,
    .future_flags = UINT64_C(0xfeedfacecafebeef),
    .future_text = "a field this host does not know",
};

TWIN_PLUGIN_DEFINE(newer_desc.base)
