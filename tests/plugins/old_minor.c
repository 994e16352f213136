/*
 * old_minor.c — fixture "older": a plugin built against ABI 1.0, before
 * local_time was added to twin_host_api (1.1). It declares abi_minor 0 and
 * the 1.0 descriptor size (the fields up to describe), and tells in
 * describe whether the host's table reaches local_time, as a plugin of 1.0
 * that wants to use a later call must check.
 */
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "twin/twin.h"

typedef struct older {
  const twin_host_api *api;
} older;

static int older_open(const twin_host_api *api, twin_ctx *ctx,
                      const char *config_json, size_t config_len,
                      void **instance)
{
  older *o = malloc(sizeof *o);
  (void)ctx;
  (void)config_json;
  (void)config_len;
  if (!o)
    return TWIN_ERR_NOMEM;
  o->api = api;
  *instance = o;
  return TWIN_OK;
}

static void older_close(void *instance)
{
  free(instance);
}

static int older_describe(void *instance, twin_ctx *ctx)
{
  older *o = instance;
  char reply[160];
  int has = offsetof(twin_host_api, local_time) < o->api->struct_size &&
            o->api->local_time != NULL;
  snprintf(reply, sizeof reply,
           "{\"older\":true,\"host_minor\":%u,\"host_has_local_time\":%s}",
           (unsigned)o->api->abi_minor, has ? "true" : "false");
  return o->api->respond(ctx, reply, strlen(reply));
}

static const twin_plugin older_desc = {
    /* the 1.0 descriptor: every field up to describe */
    .struct_size = (uint32_t)offsetof(twin_plugin, ops),
    .abi_major = 1,
    .abi_minor = 0,
    .name = "older",
    .version = "0.1.0",
    .use_case = "other",
    .summary = "fixture built against ABI 1.0",
    .config_schema = NULL,
    .tick_interval_s = 0,
    .open = older_open,
    .close = older_close,
    .describe = older_describe,
};

TWIN_PLUGIN_DEFINE(older_desc)
