/*
 * no_open.c — fixture "noopen": a descriptor without the required open
 * callback. The host must refuse it at load time, naming the field.
 */
#include "twin/twin.h"

static void fixture_close(void *instance)
{
  (void)instance;
}

static const twin_plugin fixture = {
    .struct_size = sizeof(twin_plugin),
    .abi_major = TWIN_ABI_MAJOR,
    .abi_minor = TWIN_ABI_MINOR,
    .name = "noopen",
    .version = "0.1.0",
    .use_case = "other",
    .summary = "fixture without an open callback",
    .config_schema = NULL,
    .tick_interval_s = 0,
    .open = NULL,
    .close = fixture_close,
};

TWIN_PLUGIN_DEFINE(fixture)
