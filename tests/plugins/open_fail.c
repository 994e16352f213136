/*
 * open_fail.c — fixture "openfail": loads, but open always fails with
 * TWIN_ERR_UNAVAILABLE and says "cannot reach the feed". The host must not
 * enable it for the town, must show that reason, and must not call close.
 */
#include "twin/twin.h"

static int fixture_open(const twin_host_api *api, twin_ctx *ctx,
                        const char *config_json, size_t config_len,
                        void **instance)
{
  (void)config_json;
  (void)config_len;
  (void)instance;
  api->set_error(ctx, "cannot reach the feed");
  return TWIN_ERR_UNAVAILABLE;
}

static void fixture_close(void *instance)
{
  (void)instance;
}

static const twin_plugin fixture = {
    .struct_size = sizeof(twin_plugin),
    .abi_major = TWIN_ABI_MAJOR,
    .abi_minor = TWIN_ABI_MINOR,
    .name = "openfail",
    .version = "0.1.0",
    .use_case = "other",
    .summary = "fixture whose open always fails",
    .config_schema = NULL,
    .tick_interval_s = 0,
    .open = fixture_open,
    .close = fixture_close,
};

TWIN_PLUGIN_DEFINE(fixture)
