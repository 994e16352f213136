/*
 * wrong_major.c — fixture "wrongmajor": a plugin built for ABI major
 * TWIN_ABI_MAJOR + 1. The host must refuse it with a message naming both
 * majors and the file.
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
    .abi_major = TWIN_ABI_MAJOR + 1,
    .abi_minor = TWIN_ABI_MINOR,
    .name = "wrongmajor",
    .version = "0.1.0",
    .use_case = "other",
    .summary = "fixture built for the next ABI major",
    .config_schema = NULL,
    .tick_interval_s = 0,
    .open = fixture_open,
    .close = fixture_close,
};

TWIN_PLUGIN_DEFINE(fixture)
