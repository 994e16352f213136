/*
 * demodata.c — twinhost-demodata: prepares, relative to now, what
 * scripts/demo loads at each start, so the demo's data ends where the demo
 * begins. Demo equipment, not part of the host. Writes to stdout:
 *
 *   parking PACK_DIR [--end TIME] [--after TIME] [--weeks N]
 *       N weeks (default 4) of the town's car-park history, one ParkAPI v1
 *       city document per half hour and one at the end, from the model of
 *       tools/demomodel.c (the live feed's, twinhost-feedsim). --end
 *       defaults to two minutes ago; --after leaves out documents up to
 *       and including TIME (the newest reading already stored: the parking
 *       plugin refuses older ones, and one at that moment may be a live
 *       reading not to be replaced). A moment always gets the same values,
 *       so loading twice replaces history with itself.
 *
 *   readings FILE [--end TIME]
 *       The sensor readings of FILE (JSON Lines of {"readings": [{...,
 *       "time"}]} or readings with "time") repeated in time: its span,
 *       rounded up to whole weeks, is laid over the span ending at --end
 *       (default now), each reading moved by a whole number of spans so
 *       that weekday and hour stay. Sorted by the new times.
 *
 *   config DEMO_JSON --feed URL [--fetch-s N]
 *       DEMO_JSON (scripts/demo.json) as one file with absolute paths, its
 *       town packs written out, and each town with a parking plugin and a
 *       parking-lots.json pointed at URL/<town>/lots.json every N seconds
 *       (default 60): the config scripts/demo serves with.
 *
 * Exit 0, 1 on failure (a message on stderr), 2 on wrong usage.
 */
#include "demomodel.h"

#include <errno.h>
#include <jansson.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define WEEK_S (7 * 86400)
#define HALF_HOUR_S 1800
#define END_MARGIN_S 120

static const char USAGE[] =
    "usage: twinhost-demodata parking PACK_DIR [--end TIME] [--after TIME] "
    "[--weeks N]\n"
    "       twinhost-demodata readings FILE [--end TIME]\n"
    "       twinhost-demodata config DEMO_JSON --feed URL [--fetch-s N]\n"
    "  TIME is RFC 3339 (2026-12-04T10:00:00Z); output goes to stdout\n";

static int usage(void)
{
  fputs(USAGE, stderr);
  return 2;
}

static int64_t floor_div(int64_t a, int64_t b)
{
  int64_t q = a / b;
  return (a % b != 0 && (a < 0) != (b < 0)) ? q - 1 : q;
}

/* An RFC 3339 time as seconds (fractions dropped): 0, or -1 when s is not
 * one. */
static int parse_time(const char *s, int64_t *out)
{
  twin_time ms;
  if (twinaux_time_parse(s, strlen(s), 0, &ms) != TWIN_OK)
    return -1;
  *out = floor_div(ms, 1000);
  return 0;
}

static void format_time(int64_t s, char *buf, size_t size)
{
  twinaux_time_format((twin_time)s * 1000, 0, buf, size);
}

/* Options after the positional argument: name value pairs. */
typedef struct opts {
  const char *end, *after, *weeks, *feed, *fetch_s;
} opts;

static int parse_opts(int argc, char **argv, opts *o)
{
  memset(o, 0, sizeof *o);
  for (int i = 0; i < argc; i += 2) {
    const char **slot = !strcmp(argv[i], "--end")       ? &o->end
                        : !strcmp(argv[i], "--after")   ? &o->after
                        : !strcmp(argv[i], "--weeks")   ? &o->weeks
                        : !strcmp(argv[i], "--feed")    ? &o->feed
                        : !strcmp(argv[i], "--fetch-s") ? &o->fetch_s
                                                        : NULL;
    if (!slot || i + 1 >= argc) {
      fprintf(stderr, "twinhost-demodata: %s: %s\n", argv[i],
              slot ? "needs a value" : "unknown option");
      return -1;
    }
    *slot = argv[i + 1];
  }
  return 0;
}

/* --end, else now less margin_s. */
static int end_time(const opts *o, int64_t margin_s, int64_t *end)
{
  if (!o->end) {
    *end = (int64_t)time(NULL) - margin_s;
    return 0;
  }
  if (parse_time(o->end, end)) {
    fprintf(stderr,
            "twinhost-demodata: --end: expected an RFC 3339 time "
            "such as 2026-12-04T10:00:00Z, got '%s'\n",
            o->end);
    return -1;
  }
  return 0;
}

static int int_opt(const char *name, const char *v, long lo, long hi, long *out)
{
  char *e;
  errno = 0;
  long n = v ? strtol(v, &e, 10) : 0;
  if (!v || *e || errno || n < lo || n > hi) {
    fprintf(stderr, "twinhost-demodata: %s: expected %ld..%ld, got '%s'\n",
            name, lo, hi, v ? v : "");
    return -1;
  }
  *out = n;
  return 0;
}

/* ---- parking ------------------------------------------------------------- */

static int emit_snapshot(const dm_town *t, int64_t s)
{
  twinaux_json j;
  twinaux_json_init(&j);
  dm_snapshot_json(t, s, 0, &j);
  int ok = twinaux_json_status(&j) == TWIN_OK &&
           puts(twinaux_json_text(&j, NULL)) >= 0;
  twinaux_json_free(&j);
  return ok ? 0 : -1;
}

static int cmd_parking(const char *dir, const opts *o)
{
  static dm_town t;
  char err[4096];
  int64_t end, after = INT64_MIN;
  long weeks = 4;
  if (end_time(o, END_MARGIN_S, &end) ||
      (o->weeks && int_opt("--weeks", o->weeks, 1, 52, &weeks)))
    return 2;
  if (o->after && parse_time(o->after, &after)) {
    fprintf(stderr,
            "twinhost-demodata: --after: expected an RFC 3339 time, "
            "got '%s'\n",
            o->after);
    return 2;
  }
  if (dm_town_load(dir, &t, err, sizeof err)) {
    fprintf(stderr, "twinhost-demodata: %s\n", err);
    return 1;
  }
  int64_t last = floor_div(end, 60) * 60;
  int64_t grid_last = floor_div(last, HALF_HOUR_S) * HALF_HOUR_S;
  int64_t first = grid_last - (int64_t)weeks * WEEK_S;
  for (int64_t s = first; s <= grid_last; s += HALF_HOUR_S)
    if (s > after && emit_snapshot(&t, s))
      goto write_failed;
  if (last != grid_last && last > after && emit_snapshot(&t, last))
    goto write_failed;
  if (fflush(stdout) == 0)
    return 0;
write_failed:
  fprintf(stderr, "twinhost-demodata: cannot write the history: %s\n",
          strerror(errno));
  return 1;
}

/* ---- readings ------------------------------------------------------------ */

typedef struct doc {
  json_t *json;
  int64_t key; /* its earliest new time, for sorting */
  size_t line;
} doc;

/* Each "time" of a document: the readings' or its own. Calls fn on each
 * time member's holder; returns -1 when one is not an RFC 3339 string. */
typedef int (*time_fn)(json_t *holder, int64_t t, void *ud);

static int each_time(json_t *d, time_fn fn, void *ud)
{
  json_t *arr = json_object_get(d, "readings"), *r;
  size_t i;
  if (json_is_array(arr)) {
    json_array_foreach(arr, i, r)
    {
      int64_t t;
      const char *s = json_string_value(json_object_get(r, "time"));
      if (!s || parse_time(s, &t) || fn(r, t, ud))
        return -1;
    }
    return 0;
  }
  const char *s = json_string_value(json_object_get(d, "time"));
  int64_t t;
  if (!s || parse_time(s, &t))
    return -1;
  return fn(d, t, ud);
}

typedef struct span {
  int64_t first, last, step; /* step: the smallest gap between two times */
  int64_t prev;
  int any;
} span;

static int measure(json_t *holder, int64_t t, void *ud)
{
  (void)holder;
  span *sp = ud;
  if (!sp->any) {
    sp->first = sp->last = t;
    sp->any = 1;
  } else {
    if (t < sp->first)
      sp->first = t;
    if (t > sp->last)
      sp->last = t;
    int64_t gap = t > sp->prev ? t - sp->prev : sp->prev - t;
    if (gap > 0 && (sp->step == 0 || gap < sp->step))
      sp->step = gap;
  }
  sp->prev = t;
  return 0;
}

typedef struct move {
  int64_t window_start, period, key;
} move;

static int relocate(json_t *holder, int64_t t, void *ud)
{
  move *m = ud;
  int64_t k = floor_div(m->window_start - t + m->period - 1, m->period);
  int64_t nt = t + k * m->period;
  char buf[TWINAUX_TIME_MAX];
  format_time(nt, buf, sizeof buf);
  if (nt < m->key)
    m->key = nt;
  return json_object_set_new(holder, "time", json_string(buf));
}

static int by_key(const void *a, const void *b)
{
  const doc *x = a, *y = b;
  if (x->key != y->key)
    return x->key < y->key ? -1 : 1;
  return x->line < y->line ? -1 : x->line > y->line;
}

static int cmd_readings(const char *file, const opts *o)
{
  int64_t end;
  if (end_time(o, 0, &end))
    return 2;
  FILE *f = fopen(file, "r");
  if (!f) {
    fprintf(stderr, "twinhost-demodata: %s: %s\n", file, strerror(errno));
    return 1;
  }
  doc *docs = NULL;
  size_t n = 0, cap = 0, line = 0, len = 0;
  char *text = NULL;
  span sp = {0};
  int rc = 1;
  ssize_t got;
  while ((got = getline(&text, &len, f)) >= 0) {
    json_error_t je;
    line++;
    if (strspn(text, " \t\r\n") == (size_t)got)
      continue;
    json_t *d = json_loadb(text, (size_t)got, 0, &je);
    if (!d || each_time(d, measure, &sp)) {
      fprintf(stderr, "twinhost-demodata: %s:%zu: %s\n", file, line,
              d ? "expected readings with an RFC 3339 \"time\"" : je.text);
      json_decref(d);
      goto out;
    }
    if (n == cap) {
      doc *more = realloc(docs, (cap = cap ? cap * 2 : 1024) * sizeof *docs);
      if (!more) {
        json_decref(d);
        fprintf(stderr, "twinhost-demodata: out of memory\n");
        goto out;
      }
      docs = more;
    }
    docs[n++] = (doc){d, 0, line};
  }
  if (!sp.any) {
    fprintf(stderr, "twinhost-demodata: %s: no readings\n", file);
    goto out;
  }
  if (!sp.step)
    sp.step = 3600;
  /* The span in whole weeks, so weekday and hour stay where they were. */
  int64_t period =
      (floor_div(sp.last - sp.first, WEEK_S) + 1) * (int64_t)WEEK_S;
  /* The last slot of the data's grid at or before end. */
  int64_t last = sp.first + floor_div(end - sp.first, sp.step) * sp.step;
  move m = {last - period + sp.step, period, 0};
  for (size_t i = 0; i < n; i++) {
    m.key = INT64_MAX;
    if (each_time(docs[i].json, relocate, &m))
      goto out;
    docs[i].key = m.key;
  }
  qsort(docs, n, sizeof *docs, by_key);
  for (size_t i = 0; i < n; i++) {
    char *s = json_dumps(docs[i].json, JSON_COMPACT | JSON_REAL_PRECISION(15));
    if (!s || puts(s) < 0) {
      free(s);
      fprintf(stderr, "twinhost-demodata: cannot write the readings: %s\n",
              strerror(errno));
      goto out;
    }
    free(s);
  }
  rc = fflush(stdout) ? 1 : 0;
out:
  for (size_t i = 0; i < n; i++)
    json_decref(docs[i].json);
  free(docs);
  free(text);
  fclose(f);
  return rc;
}

/* ---- config -------------------------------------------------------------- */

/* base/rel, or rel when it is absolute; realpath'd when it exists. */
static char *join(const char *base, const char *rel)
{
  char buf[PATH_MAX], *real;
  if (rel[0] == '/')
    snprintf(buf, sizeof buf, "%s", rel);
  else
    snprintf(buf, sizeof buf, "%s/%s", base, rel);
  real = realpath(buf, NULL);
  return real ? real : strdup(buf);
}

/* Make obj[key], a path relative to base, absolute. */
static int absolute(json_t *obj, const char *key, const char *base)
{
  const char *rel = json_string_value(json_object_get(obj, key));
  if (!rel)
    return 0;
  char *p = join(base, rel);
  int rc = p ? json_object_set_new(obj, key, json_string(p)) : -1;
  free(p);
  return rc;
}

/* Point the town's parking plugin at the simulator. */
static int point_at_feed(json_t *town, const char *pack, const char *feed,
                         long fetch_s)
{
  json_t *plugins = json_object_get(town, "plugins");
  json_t *parking = json_object_get(plugins, "parking");
  const char *id = json_string_value(json_object_get(town, "id"));
  char *lots = pack ? join(pack, "parking-lots.json") : NULL;
  int has_model = lots && access(lots, R_OK) == 0;
  free(lots);
  if (!json_is_object(parking) || !id || !has_model)
    return 0;
  json_t *cfg = json_object_get(parking, "config");
  if (!json_is_object(cfg)) {
    cfg = json_object();
    if (json_object_set_new(parking, "config", cfg))
      return -1;
  }
  size_t n = strlen(feed) + strlen(id) + 16;
  char *url = malloc(n);
  if (!url)
    return -1;
  snprintf(url, n, "%s%s%s/lots.json", feed,
           feed[strlen(feed) - 1] == '/' ? "" : "/", id);
  int rc = json_object_set_new(cfg, "feed_url", json_string(url)) ||
           json_object_set_new(parking, "fetch_s", json_integer(fetch_s));
  free(url);
  return rc;
}

static int cmd_config(const char *path, const opts *o)
{
  long fetch_s = 60;
  if (!o->feed || strncmp(o->feed, "http://", 7)) {
    fprintf(stderr, "twinhost-demodata: config: --feed http://HOST:PORT is "
                    "needed\n");
    return 2;
  }
  if (o->fetch_s && int_opt("--fetch-s", o->fetch_s, 1, 86400, &fetch_s))
    return 2;
  json_error_t je;
  json_t *cfg = json_load_file(path, JSON_REJECT_DUPLICATES, &je), *towns;
  if (!cfg || !json_is_array(towns = json_object_get(cfg, "towns"))) {
    fprintf(stderr, "twinhost-demodata: %s: %s\n", path,
            cfg ? "expected {\"towns\": [...]}" : je.text);
    json_decref(cfg);
    return 1;
  }
  char *slash = strrchr(path, '/');
  char *dir = slash ? strndup(path, (size_t)(slash - path)) : strdup(".");
  char *base = dir ? join(dir, ".") : NULL;
  int rc = 1;
  size_t i;
  json_t *t, *paths;
  if (!base)
    goto out;
  if (!json_object_get(cfg, "data_dir"))
    json_object_set_new(cfg, "data_dir", json_string("data"));
  if (absolute(cfg, "data_dir", base))
    goto out;
  paths = json_object_get(cfg, "plugin_path");
  json_array_foreach(paths, i, t)
  {
    if (json_is_string(t)) {
      char *p = join(base, json_string_value(t));
      json_array_set_new(paths, i, json_string(p ? p : ""));
      free(p);
    }
  }
  json_array_foreach(towns, i, t)
  {
    char *pack = NULL;
    json_t *town;
    if (json_is_string(t)) { /* a town pack: its town.json, written out */
      pack = join(base, json_string_value(t));
      char *file = pack ? join(pack, "town.json") : NULL;
      town = file ? json_load_file(file, JSON_REJECT_DUPLICATES, &je) : NULL;
      if (!town || !json_is_object(town)) {
        fprintf(stderr, "twinhost-demodata: %s: %s\n", file ? file : "?",
                town ? "expected an object" : je.text);
        free(file);
        free(pack);
        json_decref(town);
        goto out;
      }
      free(file);
      if (!json_object_get(town, "scripts"))
        json_object_set_new(town, "scripts", json_string(pack));
      if (absolute(town, "scripts", pack) || absolute(town, "data", pack) ||
          json_array_set_new(towns, i, town)) {
        free(pack);
        goto out;
      }
    } else {
      town = t;
      if (absolute(town, "scripts", base) || absolute(town, "data", base))
        goto out;
      const char *s = json_string_value(json_object_get(town, "scripts"));
      pack = s ? strdup(s) : NULL;
    }
    if (point_at_feed(town, pack, o->feed, fetch_s)) {
      free(pack);
      goto out;
    }
    free(pack);
  }
  if (json_dumpf(cfg, stdout, JSON_INDENT(2) | JSON_REAL_PRECISION(10)) ||
      puts("") < 0 || fflush(stdout)) {
    fprintf(stderr, "twinhost-demodata: cannot write the config: %s\n",
            strerror(errno));
    goto out;
  }
  rc = 0;
out:
  if (rc && !base)
    fprintf(stderr, "twinhost-demodata: out of memory\n");
  free(dir);
  free(base);
  json_decref(cfg);
  return rc;
}

int main(int argc, char **argv)
{
  opts o;
  if (argc < 3 || parse_opts(argc - 3, argv + 3, &o))
    return usage();
  if (!strcmp(argv[1], "parking"))
    return cmd_parking(argv[2], &o);
  if (!strcmp(argv[1], "readings"))
    return cmd_readings(argv[2], &o);
  if (!strcmp(argv[1], "config"))
    return cmd_config(argv[2], &o);
  return usage();
}
