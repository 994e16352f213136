/*
 * bad_schema.c — fixture "badschema": a plugin whose config schema is not
 * JSON. The host must refuse it at load time, naming the schema.
 */
#include "twin/twin.h"

static int fixture_open(const twin_host_api *api, twin_ctx *ctx,
                        const char *config_json, size_t config_len,
                        void **instance)
{
  static int dummy;
  (void)api;
  (void)ctx;
  (void)config_json;
  (void)config_len;
  *instance = &dummy;
  return TWIN_OK;
}

static void fixture_close(void *instance)
{
  (void)instance;
}

static const twin_plugin fixture = {
    .struct_size = sizeof(twin_plugin),
    .abi_major = TWIN_ABI_MAJOR,
    .abi_minor = TWIN_ABI_MINOR,
    .name = "badschema",
    .version = "0.1.0",
    .use_case = "other",
    .summary = "fixture with a broken config schema",
    .config_schema = "{\"type\":\"object\",\"properties\":",
    .tick_interval_s = 0,
    .open = fixture_open,
    .close = fixture_close,
};

TWIN_PLUGIN_DEFINE(fixture)
