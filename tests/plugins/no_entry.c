/*
 * no_entry.c — fixture: a valid shared object that exports a function but
 * no twin_plugin_entry. The host must refuse it, naming the missing symbol.
 */
#include "twin/twin.h"

TWIN_EXPORT int not_a_twin_plugin(void);

TWIN_EXPORT int not_a_twin_plugin(void)
{
  return 42;
}
