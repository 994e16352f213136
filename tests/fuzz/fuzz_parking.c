/*
 * fuzz_parking.c — libFuzzer target for the parking plugin: any bytes sent
 * to it as an ingest document (ParkAPI v1, ParkAPI2, an observation), as a
 * query and as a what-if scenario must end in a reply or an error, never in
 * a crash, a leak or a write that outlives the input.
 *
 * On the first call it brings up a real host (real parking.so, real LMDB, a
 * 64 MiB map) in a fresh folder from core_temp_dir and seeds it with a few
 * lots and observations, so queries, forecasts and scenarios have
 * something to work on. Two towns run the plugin: "open" creates lots as
 * they arrive, "strict" (auto_create false, no future slack) rejects most.
 * Each input's ingest runs in a write transaction that is always aborted,
 * so the store never grows. The folder is removed as soon as the host is
 * up, so nothing is left behind however the process ends.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "drive.h"
#include "host.h"
#include "view.h"

static const char *const towns[] = {"open", "strict"};
#define N_TOWNS (sizeof towns / sizeof towns[0])

#define LOTS                                                                   \
  "\"lots\":[{\"id\":\"p1\",\"name\":\"Stadthalle\",\"lat\":48.83,"            \
  "\"lon\":12.96,\"total\":400,\"price\":1.5},{\"id\":\"p2\",\"lat\":48.84,"   \
  "\"lon\":12.97,\"total\":100,\"category\":\"onStreet\"}]"

static const char seed_doc[] =
    "{\"lots\":[{\"id\":\"p1\",\"total\":400,\"free\":120,\"state\":\"open\","
    "\"coords\":{\"lat\":48.83,\"lng\":12.96}},{\"id\":\"p2\",\"total\":100,"
    "\"free\":5,\"state\":\"open\"},{\"id\":\"p3\",\"total\":50,\"free\":50,"
    "\"state\":\"closed\",\"coords\":{\"lat\":48.82,\"lng\":12.95}}]}";

static struct {
  core_host *h;
  core_instance *ci[N_TOWNS];
  core_overlay *ov;
} fz;

static char *host_config(void)
{
  const char *plugins = getenv("TWIN_PLUGIN_BUILD_DIR");
  char path[4200] = "";
  if (plugins && *plugins && !strchr(plugins, '"') && !strchr(plugins, '\\'))
    snprintf(path, sizeof path, "\"plugin_path\":[\"%s\"],", plugins);
  size_t cap = strlen(path) + 4096;
  char *text = malloc(cap);
  if (!text)
    fuzz_die("setup", "out of memory");
  snprintf(text, cap,
           "{\"data_dir\":\"data\",%s\"towns\":["
           "{\"id\":\"open\",\"name\":\"Open\",\"timezone\":\"Europe/Berlin\","
           "\"scripts\":\".\",\"plugins\":{\"parking\":{\"config\":{" LOTS
           "}}}},"
           "{\"id\":\"strict\",\"name\":\"Strict\",\"timezone\":\"UTC\","
           "\"scripts\":\".\",\"plugins\":{\"parking\":{\"config\":{" LOTS
           ",\"auto_create\":false,\"future_slack_s\":0}}}}]}",
           path);
  return text;
}

static void open_host(void)
{
  char cfg_path[4200];
  snprintf(cfg_path, sizeof cfg_path, "%s/host.json", fuzz_dir());
  char *text = host_config();
  FILE *f = fopen(cfg_path, "wb");
  if (!f || fputs(text, f) < 0 || fclose(f) != 0)
    fuzz_die(cfg_path, "cannot write");
  free(text);
  core_err err;
  if (core_host_open(cfg_path, CORE_HOST_INSTANCES, &fz.h, &err))
    fuzz_die("host", err.msg);
  for (size_t i = 0; i < N_TOWNS; i++) {
    core_instance *ci;
    if (core_host_find(fz.h, towns[i], "parking", &ci, &err))
      fuzz_die(towns[i], err.msg);
    fz.ci[i] = ci;
  }
}

/* Store the seed observations in the open town, committed. */
static void seed(void)
{
  const char *docs[] = {seed_doc};
  fuzz_seed(fz.h, fz.ov, fz.ci, docs, 1);
}

static void teardown(void)
{
  core_overlay_free(fz.ov);
  core_host_close(fz.h);
  fuzz_dir_remove();
  memset(&fz, 0, sizeof fz);
}

static void setup(void)
{
  fuzz_dir_make("parking");
  atexit(teardown);
  fz.ov = core_overlay_new();
  if (!fz.ov)
    fuzz_die("setup", "out of memory");
  open_host();
  seed();
  fuzz_dir_remove();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
  if (!fz.h)
    setup();
  for (size_t i = 0; i < N_TOWNS; i++)
    fuzz_drive(fz.h, fz.ov, fz.ci[i], data, size);
  return 0;
}
