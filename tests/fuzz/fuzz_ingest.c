/*
 * fuzz_ingest.c — libFuzzer target for the path outside documents take into
 * a town: any bytes sent to the sensors plugin as an ingest document, as a
 * query and as a what-if scenario, and replayed through the town's rules as
 * recorded observations, must end in a reply or an error, never in a crash,
 * a leak or a write that outlives the input.
 *
 * On the first call it brings up a real host (real sensors.so, real LMDB,
 * a 64 MiB map) in a fresh folder under /tmp and seeds it with a few
 * entities, so reads and threshold crossings have something to work on.
 * Two towns run the plugin: "open" creates entities as readings arrive,
 * "strict" (auto_create false, max_age_s, no future slack) rejects most.
 * Each input's ingest runs in a write transaction that is always aborted,
 * so the store never grows. The folder is removed as soon as the host is
 * up (the open store needs only its descriptors and mappings), so nothing
 * is left behind however the process ends.
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

/* Thresholds on the attributes the seed corpus uses. */
#define ALERTS                                                                 \
  "\"alerts\":[{\"attr\":\"level_cm\",\"above\":500,\"level\":\"error\"},"     \
  "{\"attr\":\"temp_c\",\"below\":0,\"message\":\"frost\"},"                   \
  "{\"attr\":\"ph\",\"below\":6.5,\"above\":8.5,\"level\":\"info\"}]"

static const char seed_doc[] =
    "{\"readings\":["
    "{\"entity\":\"g1\",\"type\":\"RiverGauge\",\"attr\":\"level_cm\","
    "\"time\":\"2024-05-01T09:00:00Z\",\"value\":312,\"name\":\"Donau\","
    "\"location\":{\"lat\":48.833,\"lon\":12.962}},"
    "{\"entity\":\"g1\",\"type\":\"RiverGauge\",\"time\":1714554900000,"
    "\"values\":{\"level_cm\":512,\"temp_c\":4.5,\"ph\":7.1,"
    "\"state\":\"ok\"}},"
    "{\"entity\":\"g1\",\"type\":\"RiverGauge\",\"time\":1714555800000,"
    "\"values\":{\"level_cm\":540.5,\"state\":\"flood\",\"open\":false}},"
    "{\"entity\":\"a1\",\"attr\":\"pm10\",\"time\":1714554900000,"
    "\"value\":12}]}";

static struct {
  core_host *h;
  core_instance *ci[N_TOWNS];
  core_overlay *ov;
} fz;

/* The host config: both towns run sensors; strict_create is auto_create of
 * the strict town (true only while seeding). */
static char *host_config(int strict_create)
{
  const char *plugins = getenv("TWIN_PLUGIN_BUILD_DIR");
  char path[4200] = "";
  /* Without it the host still searches the build tree's plugin folder. */
  if (plugins && *plugins && !strchr(plugins, '"') && !strchr(plugins, '\\'))
    snprintf(path, sizeof path, "\"plugin_path\":[\"%s\"],", plugins);
  size_t cap = strlen(path) + 4096;
  char *text = malloc(cap);
  if (!text)
    fuzz_die("setup", "out of memory");
  snprintf(text, cap,
           "{\"data_dir\":\"data\",%s\"towns\":["
           "{\"id\":\"open\",\"name\":\"Open\",\"timezone\":\"UTC\","
           "\"scripts\":\".\",\"plugins\":{\"sensors\":{\"config\":{" ALERTS
           "}}}},"
           "{\"id\":\"strict\",\"name\":\"Strict\",\"timezone\":\"UTC\","
           "\"scripts\":\".\",\"plugins\":{\"sensors\":{\"config\":{" ALERTS
           ",\"auto_create\":%s,\"max_age_s\":315360000,"
           "\"future_slack_s\":0}}}}]}",
           path, strict_create ? "true" : "false");
  return text;
}

static void open_host(int strict_create)
{
  char cfg_path[4200];
  snprintf(cfg_path, sizeof cfg_path, "%s/host.json", fuzz_dir());
  char *text = host_config(strict_create);
  FILE *f = fopen(cfg_path, "wb");
  if (!f || fputs(text, f) < 0 || fclose(f) != 0)
    fuzz_die(cfg_path, "cannot write");
  free(text);
  core_err err;
  if (core_host_open(cfg_path, CORE_HOST_INSTANCES, &fz.h, &err))
    fuzz_die("host", err.msg);
  for (size_t i = 0; i < N_TOWNS; i++) {
    core_instance *ci;
    if (core_host_find(fz.h, towns[i], "sensors", &ci, &err))
      fuzz_die(towns[i], err.msg);
    fz.ci[i] = ci;
  }
}

/* Store the seed readings in every town, committed. */
static void seed(void)
{
  const char *docs[N_TOWNS];
  for (size_t i = 0; i < N_TOWNS; i++)
    docs[i] = seed_doc;
  fuzz_seed(fz.h, fz.ov, fz.ci, docs, N_TOWNS);
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
  fuzz_dir_make("ingest");
  atexit(teardown);
  fz.ov = core_overlay_new();
  if (!fz.ov)
    fuzz_die("setup", "out of memory");
  open_host(1);
  seed();
  core_host_close(fz.h);
  open_host(0);
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
