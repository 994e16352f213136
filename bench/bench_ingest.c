/*
 * bench_ingest.c — ingest throughput of the real host against the LMDB floor.
 *
 * ingest_obs_per_s: a real host (config, plugin loader, the sensors plugin
 * from the build tree, store) and its real pipeline take feed snapshots of
 * 100 readings each, from the first submit to the drain, with durable
 * commits. lmdb_floor_obs_per_s: the same keys and values written straight
 * into a fresh store in transactions of the size the pipeline's group commit
 * reached, with nothing else: what the writer could do if the host cost
 * nothing. Their ratio is how much of the floor the host keeps.
 * ingest_obs_per_cpu_s divides by the process's CPU time instead of wall
 * time, which other load on the machine disturbs less.
 *
 * usage: bench_ingest [OBSERVATIONS]   (default 1000000)
 * Prints one line per figure: `name value unit`.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "host.h"
#include "pipeline.h"
#include "store.h"

#define TOWN "benchtown"
#define PLUGIN "sensors"
#define TYPE "Sensor"
#define ATTR "level_cm"
#define PER_DOC 100     /* readings per document: one feed snapshot */
#define N_ENTITIES 1000 /* sensors; each snapshot covers 100 of them */
#define STEP_MS 1000    /* a snapshot a second */
#define ROUNDS 3        /* each figure: the best of this many runs */

typedef struct counts {
  uint64_t ok, failed;
  char first_error[512];
} counts;

/* Completion callback; runs on the writer thread only. */
static void count_done(void *ud, int status, const char *reason)
{
  counts *c = ud;
  if (status == TWIN_OK) {
    c->ok++;
    return;
  }
  if (!c->failed++)
    snprintf(c->first_error, sizeof c->first_error, "%s",
             reason ? reason : core_status_message(status));
}

static void die(const char *what, const char *msg)
{
  fprintf(stderr, "bench_ingest: %s: %s\n", what, msg);
  exit(1);
}

static char *fmt_alloc(const char *fmt, ...)
    __attribute__((format(printf, 1, 2)));
static char *fmt_alloc(const char *fmt, ...)
{
  va_list ap, ap2;
  va_start(ap, fmt);
  va_copy(ap2, ap);
  int n = vsnprintf(NULL, 0, fmt, ap);
  char *s = n >= 0 ? malloc((size_t)n + 1) : NULL;
  if (!s)
    die("memory", "out of memory");
  vsnprintf(s, (size_t)n + 1, fmt, ap2);
  va_end(ap2);
  va_end(ap);
  return s;
}

static char *make_tempdir(void)
{
  char *dir = core_temp_dir("twinbench");
  if (!dir)
    die("mkdtemp", strerror(errno));
  return dir;
}

static void remove_tree(const char *dir)
{
  char *cmd = fmt_alloc("rm -rf '%s'", dir);
  if (system(cmd) != 0)
    fprintf(stderr, "bench_ingest: %s failed\n", cmd);
  free(cmd);
}

/* The value reading k of snapshot d carries; the floor writes the same. */
static double reading_value(uint64_t d, int k)
{
  return (double)((d * 7 + (uint64_t)k * 13) % 5000) / 10.0 + 0.25;
}

static int entity_of(uint64_t d, int k)
{
  return (int)((d * PER_DOC + (uint64_t)k) % N_ENTITIES);
}

/* Snapshot d: 100 sensors, one reading each, all at time base + d s. */
static char *make_doc(uint64_t d, twin_time base, size_t *len)
{
  size_t cap = 96 * PER_DOC + 32, o = 0;
  char *s = malloc(cap);
  if (!s)
    die("memory", "out of memory");
  o += (size_t)snprintf(s + o, cap - o, "{\"readings\":[");
  for (int k = 0; k < PER_DOC; k++)
    o += (size_t)snprintf(s + o, cap - o,
                          "%s{\"entity\":\"s%d\",\"attr\":\"" ATTR
                          "\",\"time\":%" PRId64 ",\"value\":%.2f}",
                          k ? "," : "", entity_of(d, k),
                          base + (twin_time)d * STEP_MS, reading_value(d, k));
  o += (size_t)snprintf(s + o, cap - o, "]}");
  *len = o;
  return s;
}

/* CPU time of this process, in seconds. */
static double cpu_now(void)
{
  struct timespec ts;
  clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* ---- the host ----------------------------------------------------------- */

typedef struct ingest_result {
  double seconds;
  double cpu_seconds; /* of the whole process, over the same span */
  uint64_t obs;
  core_pipeline_stats stats;
} ingest_result;

/* The town rule of the rule figure: one line on every observation. */
#define ONE_LINE_RULE                                                          \
  "twin.on_observation({attr = \"" ATTR "\"}, function(o) "                    \
  "if o.value > 1e9 then twin.log(\"info\", o.id) end end)\n"

/* Ingest n_docs through a real host in dir; with rule, the town's script
 * folder holds that rule. */
static ingest_result bench_host(const char *dir, uint64_t n_docs,
                                twin_time base, const char *rule)
{
  if (rule) {
    char *rule_path = fmt_alloc("%s/10-bench.lua", dir);
    FILE *rf = fopen(rule_path, "w");
    if (!rf)
      die(rule_path, strerror(errno));
    fputs(rule, rf);
    fclose(rf);
    free(rule_path);
  }
  char *cfg_path = fmt_alloc("%s/twinhost.json", dir);
  FILE *f = fopen(cfg_path, "w");
  if (!f)
    die(cfg_path, strerror(errno));
  fprintf(f,
          "{\"data_dir\": \"%s/data\", \"towns\": [{\"id\": \"" TOWN "\", "
          "\"name\": \"Bench\", \"timezone\": \"Europe/Berlin\", "
          "\"scripts\": \"%s\", \"plugins\": {\"" PLUGIN "\": {}}}]}\n",
          dir, dir);
  fclose(f);

  core_err err;
  core_host *h;
  core_instance *ci;
  core_pipeline *p;
  if (core_host_open(cfg_path, CORE_HOST_INSTANCES, &h, &err))
    die("host", err.msg);
  if (core_host_find(h, TOWN, PLUGIN, &ci, &err))
    die("host", err.msg);

  /* Documents are made before the clock starts: the feed's cost, not ours. */
  char **docs = malloc(n_docs * sizeof *docs);
  size_t *lens = malloc(n_docs * sizeof *lens);
  if (!docs || !lens)
    die("memory", "out of memory");
  for (uint64_t d = 0; d < n_docs; d++)
    docs[d] = make_doc(d, base, &lens[d]);

  if (core_pipeline_start(h, &p, &err))
    die("pipeline", err.msg);
  counts c = {0};
  double cpu0 = cpu_now();
  uint64_t t0 = core_mono_ns();
  for (uint64_t d = 0; d < n_docs; d++)
    if (core_pipeline_submit(p, ci, docs[d], lens[d], count_done, &c))
      die("pipeline", "submit refused");
  core_pipeline_drain(p);
  uint64_t t1 = core_mono_ns();
  double cpu1 = cpu_now();

  ingest_result r = {0};
  r.cpu_seconds = cpu1 - cpu0;
  core_pipeline_stats_get(p, &r.stats);
  core_pipeline_stop(p);
  if (c.failed)
    die("ingest", c.first_error);
  if (c.ok != n_docs)
    die("ingest", "not every document was reported");
  r.seconds = (double)(t1 - t0) / 1e9;
  r.obs = n_docs * PER_DOC;

  for (uint64_t d = 0; d < n_docs; d++)
    free(docs[d]);
  free(docs);
  free(lens);
  core_host_close(h);
  free(cfg_path);
  return r;
}

/* ---- the floor ---------------------------------------------------------- */

static void put(MDB_txn *txn, MDB_dbi dbi, const core_key *k, const uint8_t *v,
                size_t vlen)
{
  MDB_val mk = {k->len, (void *)k->b}, mv = {vlen, (void *)v};
  int rc = mdb_put(txn, dbi, &mk, &mv, 0);
  if (rc)
    die("lmdb floor put", mdb_strerror(rc));
}

/* The same observations as bench_host, docs_per_txn documents a commit. */
static double bench_floor(const char *dir, uint64_t n_docs,
                          uint64_t docs_per_txn, twin_time base)
{
  core_err err;
  core_store *s;
  if (core_store_open(dir, &s, &err))
    die("lmdb floor", err.msg);
  /* The entity key prefix the host builds: town\0plugin\0type\0. */
  core_key prefix = {.len = 0};
  core_key_part(&prefix, TOWN);
  core_key_part(&prefix, PLUGIN);
  core_key_part(&prefix, TYPE);

  uint64_t t0 = core_mono_ns();
  for (uint64_t d = 0; d < n_docs;) {
    MDB_txn *txn;
    if (core_store_begin_write(s, &txn, &err))
      die("lmdb floor", err.msg);
    for (uint64_t end = d + docs_per_txn; d < end && d < n_docs; d++) {
      twin_time t = base + (twin_time)d * STEP_MS;
      for (int k = 0; k < PER_DOC; k++) {
        char id[16];
        snprintf(id, sizeof id, "s%d", entity_of(d, k));
        twin_value v = twin_number(reading_value(d, k));
        uint8_t ent_val[32], obs_val[32];
        size_t ent_len = core_value_size(&v, 1);
        size_t obs_len = core_value_size(&v, 0);
        core_value_encode(&v, t, 1, ent_val);
        core_value_encode(&v, t, 0, obs_val);

        core_key ek = prefix;
        core_key_part(&ek, id);
        core_key_part(&ek, ATTR);
        core_key ok = ek;
        core_key_time(&ok, t);
        put(txn, s->dbi[CORE_DB_OBS], &ok, obs_val, obs_len);
        put(txn, s->dbi[CORE_DB_ENT], &ek, ent_val, ent_len);
      }
    }
    int rc = mdb_txn_commit(txn);
    if (rc)
      die("lmdb floor commit", mdb_strerror(rc));
  }
  uint64_t t1 = core_mono_ns();
  core_store_close(s);
  return (double)(t1 - t0) / 1e9;
}

int main(int argc, char **argv)
{
  uint64_t n_obs = 1000000;
  if (argc > 1) {
    char *end;
    n_obs = strtoull(argv[1], &end, 10);
    if (*end || n_obs < PER_DOC) {
      fprintf(stderr, "usage: bench_ingest [OBSERVATIONS >= %d]\n", PER_DOC);
      return 2;
    }
  }
  uint64_t n_docs = (n_obs + PER_DOC - 1) / PER_DOC;
  /* Recent enough for the plugin's default checks, never in the future. */
  twin_time base = core_now_ms() - (twin_time)n_docs * STEP_MS - 86400000;
  core_log_set_level(TWIN_LEVEL_WARNING);

  /* The machine is shared and noisy: each figure is the best of ROUNDS
   * runs, the three kinds interleaved so a busy spell hits all alike. */
  char *dir = make_tempdir();
  ingest_result ing = {0}, rul = {0};
  double floor_s = 0, docs_per_batch = 1.0;
  for (int round = 0; round < ROUNDS; round++) {
    char *host_dir = fmt_alloc("%s/host%d", dir, round);
    char *floor_dir = fmt_alloc("%s/floor%d", dir, round);
    char *rule_dir = fmt_alloc("%s/rule%d", dir, round);
    core_err err;
    if (core_mkdirs(host_dir, &err) || core_mkdirs(floor_dir, &err) ||
        core_mkdirs(rule_dir, &err))
      die("mkdir", err.msg);
    ingest_result a = bench_host(host_dir, n_docs, base, NULL);
    ingest_result b = bench_host(rule_dir, n_docs, base, ONE_LINE_RULE);
    if (round == 0 || a.seconds < ing.seconds)
      ing = a;
    if (round == 0 || b.seconds < rul.seconds)
      rul = b;
    /* The floor commits as often as the pipeline did. */
    docs_per_batch = ing.stats.batches
                         ? (double)ing.stats.docs / (double)ing.stats.batches
                         : 1.0;
    uint64_t txn_docs = (uint64_t)(docs_per_batch + 0.5);
    double fs = bench_floor(floor_dir, n_docs, txn_docs ? txn_docs : 1, base);
    if (round == 0 || fs < floor_s)
      floor_s = fs;
    remove_tree(host_dir);
    remove_tree(floor_dir);
    remove_tree(rule_dir);
    free(host_dir);
    free(floor_dir);
    free(rule_dir);
  }

  double ingest_rate = (double)ing.obs / ing.seconds;
  double floor_rate = (double)(n_docs * PER_DOC) / floor_s;
  printf("ingest_obs_per_s %.0f obs/s\n", ingest_rate);
  printf("lmdb_floor_obs_per_s %.0f obs/s\n", floor_rate);
  printf("ingest_vs_floor_pct %.1f %%\n", 100.0 * ingest_rate / floor_rate);
  /* Less sensitive to other load on the machine than the wall-clock rate. */
  printf("ingest_obs_per_cpu_s %.0f obs/s\n",
         (double)ing.obs / ing.cpu_seconds);
  printf("ingest_batches %" PRIu64 " batches\n", ing.stats.batches);
  printf("ingest_docs_per_commit %.1f docs\n", docs_per_batch);
  /* The same ingest with a one-line town rule on every observation. */
  double rule_rate = (double)rul.obs / rul.seconds;
  printf("ingest_rule_obs_per_s %.0f obs/s\n", rule_rate);
  printf("rule_cost_per_obs_ns %.0f ns\n", 1e9 / rule_rate - 1e9 / ingest_rate);
  printf("rule_cost_per_obs_cpu_ns %.0f ns\n",
         1e9 * (rul.cpu_seconds / (double)rul.obs -
                ing.cpu_seconds / (double)ing.obs));
  fflush(stdout);

  remove_tree(dir);
  free(dir);
  return 0;
}
