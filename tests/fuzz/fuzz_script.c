/*
 * fuzz_script.c — libFuzzer target: any bytes loaded as a town script in the
 * rules sandbox (200000 instructions, 20 ms, 8 MiB) must yield a description
 * of what the script registers or a load error, never a crash, a run past
 * the limits or a leak. The script goes through core_script_check, as an
 * admin's `check` would, from a private temporary town folder.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "config.h"
#include "script.h"
#include "util.h"

static char *folder;
static char *script_path;
static char town_id[] = "fuzz", town_name[] = "Fuzz",
            town_tz[] = "Europe/Berlin";

static void remove_folder(void)
{
  unlink(script_path);
  rmdir(folder);
  free(script_path);
  free(folder);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
  static core_town town;
  if (!folder) {
    /* print() in fuzzed scripts would flood the output */
    core_log_set_level(TWIN_LEVEL_ERROR);
    folder = core_temp_dir("twin-fuzz-script");
    script_path = folder ? core_path_join(folder, "10-fuzz.lua") : NULL;
    if (!script_path)
      abort();
    atexit(remove_folder);
    town.id = town_id;
    town.name = town_name;
    town.timezone = town_tz;
    town.script_dir = folder;
  }
  FILE *f = fopen(script_path, "wb");
  if (!f)
    abort();
  if (size && fwrite(data, 1, size, f) != size)
    abort();
  fclose(f);
  core_script_limits limits = {
      .instructions = 200000, .wall_ms = 20, .memory = (size_t)8 << 20};
  core_err err;
  char *report = core_script_check(&town, &limits, &err);
  free(report);
  return 0;
}
