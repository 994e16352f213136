/*
 * fuzz_config.c — libFuzzer target: any bytes given to the config parser
 * must yield a config or an error, never a crash or a leak.
 */
#include <stddef.h>
#include <stdint.h>

#include "config.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
  core_config *cfg = NULL;
  core_err err;
  if (core_config_parse((const char *)data, size, "fuzz.json", "/nonexistent",
                        &cfg, &err) == TWIN_OK) {
    for (size_t i = 0; i < cfg->n_towns; i++)
      (void)core_config_town(cfg, cfg->towns[i].id);
  }
  core_config_free(cfg);
  return 0;
}
