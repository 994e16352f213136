/*
 * null_entry.c — fixture: twin_plugin_entry exists but returns NULL, as a
 * plugin does when it refuses a host too old for it. The host must refuse
 * to load it with a clear message, not crash.
 */
#include "twin/twin.h"

TWIN_EXPORT const twin_plugin *twin_plugin_entry(uint32_t host_abi_major,
                                                 uint32_t host_abi_minor);

TWIN_EXPORT const twin_plugin *twin_plugin_entry(uint32_t host_abi_major,
                                                 uint32_t host_abi_minor)
{
  (void)host_abi_major;
  (void)host_abi_minor;
  return NULL;
}
