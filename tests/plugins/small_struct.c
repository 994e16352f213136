/*
 * small_struct.c — fixture "smallstruct": a descriptor whose struct_size
 * (12) is too small to hold even the name. The host must refuse it rather
 * than read fields the plugin says it does not have.
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
    .struct_size = 12,
    .abi_major = TWIN_ABI_MAJOR,
    .abi_minor = TWIN_ABI_MINOR,
    .name = "smallstruct",
    .version = "0.1.0",
    .use_case = "other",
    .summary = "fixture whose descriptor claims 12 bytes",
    .config_schema = NULL,
    .tick_interval_s = 0,
    .open = fixture_open,
    .close = fixture_close,
};

TWIN_PLUGIN_DEFINE(fixture)
