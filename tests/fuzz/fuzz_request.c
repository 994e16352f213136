/*
 * fuzz_request.c — libFuzzer target for the ABI 1.2 request path: any bytes
 * sent as a query or scenario to a plugin that declares ops, with the op
 * named apart (a URL path) or not, must end in a reply that is what its
 * type says or in an error that is readable and tells the truth about who
 * refused it; the checked request the plugin would get must be one its own
 * schema still accepts; and the media-type helpers must keep their
 * promises on any string. A broken promise is an abort().
 *
 * Input: byte 0 picks the plugin (bit 0: parking, sensors) and the kind
 * (bit 1: query, scenario); byte 1 picks the op, modulo the plugin's
 * n_ops + 2: 0 is NULL (the op comes from the body), 1..n_ops the
 * plugin's declared ops of any kind in table order, n_ops + 1 a name taken
 * from the input up to its first newline; the rest is the request body.
 * The whole input, as a NUL-terminated string, also goes through the
 * media-type helpers of media.h.
 *
 * On the first call it brings up a real host (real parking.so and
 * sensors.so, real LMDB, a 64 MiB map) in a fresh folder from
 * core_temp_dir, one UTC town running both plugins, seeded with four weeks
 * of history of the lot and gauge the ops' examples name (ending an hour
 * before now, so the seeds stay accepted whatever the date). The folder is
 * removed as soon as the host is up, so nothing is left behind however the
 * process ends.
 */
#include <jansson.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "drive.h"
#include "host.h"
#include "media.h"
#include "schema.h"
#include "util.h"
#include "view.h"

enum { PARKING, SENSORS, N_PLUGINS };
static const char *const plugin_names[N_PLUGINS] = {"parking", "sensors"};

/* The lots the parking ops' examples name. */
#define LOTS                                                                   \
  "\"lots\":[{\"id\":\"ph-stadthallen\",\"name\":\"Stadthalle\","              \
  "\"lat\":48.8349,\"lon\":12.9609,\"total\":400,\"price\":1.5},"              \
  "{\"id\":\"p2\",\"lat\":48.84,\"lon\":12.97,\"total\":100,"                  \
  "\"category\":\"onStreet\"}]"

/* Thresholds on the attribute the sensors ops' examples name. */
#define ALERTS                                                                 \
  "\"alerts\":[{\"attr\":\"level_cm\",\"above\":500,\"level\":\"error\"},"     \
  "{\"attr\":\"temp_c\",\"below\":0,\"message\":\"frost\"}]"

static struct {
  core_host *h;
  core_instance *ci[N_PLUGINS];
  core_overlay *ov;
  int trace; /* $FUZZ_REQUEST_TRACE: one line per request, for seeds */
} fz;

/* A broken promise: say which, and stop. */
static void broken(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void broken(const char *fmt, ...)
{
  va_list ap;
  va_start(ap, fmt);
  fprintf(stderr, "fuzz_request: ");
  vfprintf(stderr, fmt, ap);
  fprintf(stderr, "\n");
  va_end(ap);
  abort();
}

static char *host_config(void)
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
           "{\"id\":\"t\",\"name\":\"T\",\"timezone\":\"UTC\","
           "\"scripts\":\".\",\"plugins\":{"
           "\"parking\":{\"config\":{" LOTS "}},"
           "\"sensors\":{\"config\":{" ALERTS "}}}}]}",
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
  for (size_t i = 0; i < N_PLUGINS; i++)
    if (core_host_find(fz.h, "t", plugin_names[i], &fz.ci[i], &err))
      fuzz_die(plugin_names[i], err.msg);
}

/* Seed history up to an hour before now: four weeks of lot states every
 * hour (a profile for every weekday and hour) and of gauge readings every
 * six hours (stats, threshold crossings). */
#define HOUR_MS 3600000LL
#define LOT_STEPS (28 * 24)
#define READING_STEPS (28 * 4)

static void put(char *buf, size_t size, size_t *len, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static void put(char *buf, size_t size, size_t *len, const char *fmt, ...)
{
  va_list ap;
  va_start(ap, fmt);
  int n = vsnprintf(buf + *len, size - *len, fmt, ap);
  va_end(ap);
  if (n < 0 || (size_t)n >= size - *len)
    fuzz_die("seed", "document too big");
  *len += (size_t)n;
}

/* ParkAPI2 items for both lots of the config, oldest first; p2 closes
 * now and then. */
static void parking_doc(char *buf, size_t size, long long now)
{
  size_t len = 0;
  put(buf, size, &len, "{\"items\":[");
  for (int i = 0; i < LOT_STEPS; i++) {
    long long t = now - HOUR_MS - (LOT_STEPS - 1 - i) * HOUR_MS;
    put(buf, size, &len,
        "%s{\"id\":\"ph-stadthallen\",\"capacity\":400,"
        "\"realtime_free_capacity\":%d,\"realtime_opening_status\":"
        "\"OPEN\",\"timestamp\":%lld,\"lat\":48.8349,\"lon\":12.9609},"
        "{\"id\":\"p2\",\"capacity\":100,\"realtime_free_capacity\":%d,"
        "\"realtime_opening_status\":\"%s\",\"timestamp\":%lld}",
        i ? "," : "", (i * 37) % 401, t, (i * 13) % 101,
        i % 9 ? "OPEN" : "CLOSED", t);
  }
  put(buf, size, &len, "]}");
}

/* Readings of the gauge the sensors examples name (crossing its
 * threshold now and then) and of an air quality sensor, oldest first. */
static void sensors_doc(char *buf, size_t size, long long now)
{
  size_t len = 0;
  put(buf, size, &len,
      "{\"readings\":[{\"entity\":\"pegel-deggendorf\",\"type\":"
      "\"WaterLevelGauge\",\"time\":%lld,\"values\":{\"name\":"
      "\"Deggendorf\",\"state\":\"ok\"},\"location\":{\"lat\":48.833,"
      "\"lon\":12.962}}",
      now - HOUR_MS - READING_STEPS * 6 * HOUR_MS);
  for (int i = 0; i < READING_STEPS; i++) {
    long long t = now - HOUR_MS - (READING_STEPS - 1 - i) * 6 * HOUR_MS;
    put(buf, size, &len,
        ",{\"entity\":\"pegel-deggendorf\",\"type\":\"WaterLevelGauge\","
        "\"time\":%lld,\"values\":{\"level_cm\":%d.5,\"temp_c\":%d}},"
        "{\"entity\":\"a1\",\"type\":\"AirQualityObserved\","
        "\"attr\":\"pm10\",\"time\":%lld,\"value\":%d}",
        t, 250 + (i * 47) % 320, (i % 11) - 3, t, (i * 7) % 60);
  }
  put(buf, size, &len, "]}");
}

/* Store the seed documents, committed. */
static void seed(void)
{
  size_t cap = 1 << 20;
  char *docs[N_PLUGINS] = {malloc(cap), malloc(cap)};
  if (!docs[PARKING] || !docs[SENSORS])
    fuzz_die("seed", "out of memory");
  long long now = (long long)time(NULL) * 1000;
  parking_doc(docs[PARKING], cap, now);
  sensors_doc(docs[SENSORS], cap, now);
  fuzz_seed(fz.h, fz.ov, fz.ci, (const char *const *)docs, N_PLUGINS);
  free(docs[PARKING]);
  free(docs[SENSORS]);
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
  fuzz_dir_make("request");
  atexit(teardown);
  fz.ov = core_overlay_new();
  if (!fz.ov)
    fuzz_die("setup", "out of memory");
  open_host();
  seed();
  fuzz_dir_remove();
  fz.trace = getenv("FUZZ_REQUEST_TRACE") != NULL;
}

/* ---- the checks ---------------------------------------------------------- */

static int utf8_ok(const char *s)
{
  return core_utf8_valid(s, strlen(s));
}

/* An error is readable, and a host refusal carries the status its code
 * stands for (so it cannot have come from the plugin). */
static void check_err(const char *what, int st, const core_err *err)
{
  if (st == TWIN_OK)
    broken("%s: failure reported as TWIN_OK", what);
  if (!memchr(err->msg, 0, sizeof err->msg) || !err->msg[0])
    broken("%s: failed (%s) without a message", what, core_status_name(st));
  if (!utf8_ok(err->msg))
    broken("%s: message is not UTF-8: %s", what, err->msg);
  if (!memchr(err->field, 0, sizeof err->field) ||
      !memchr(err->code, 0, sizeof err->code))
    broken("%s: code or field not terminated", what);
  if (err->field[0] && !utf8_ok(err->field))
    broken("%s: field is not UTF-8: %s", what, err->field);
  static const struct {
    const char *code;
    int st;
  } host_codes[] = {{"bad_request", TWIN_ERR_INVALID},
                    {"unknown_op", TWIN_ERR_NOT_FOUND},
                    {"bad_json", TWIN_ERR_PARSE}};
  for (size_t i = 0; i < sizeof host_codes / sizeof host_codes[0]; i++)
    if (!strcmp(err->code, host_codes[i].code) && st != host_codes[i].st)
      broken("%s: code %s with another status: %s", what, err->code,
             core_status_name(st));
}

static void check_reply(const core_reply *r)
{
  if (!r->body)
    broken("request: success without a body");
  if (strlen(r->body) != r->len)
    broken("request: body length differs from len (type %s): %.200s", r->type,
           r->body);
  if (!r->type[0] || !memchr(r->type, 0, sizeof r->type))
    broken("request: success without a media type");
  if (core_media_is_json(r->type)) {
    json_error_t je;
    json_t *j =
        json_loadb(r->body, r->len, JSON_DECODE_ANY | JSON_ALLOW_NUL, &je);
    if (!j)
      broken("request: %s reply is not JSON: %.300s", r->type, r->body);
    json_decref(j);
  }
}

/* The checked request: an object naming its op, which the op's schema
 * accepts again unchanged (defaults filled once stay as they are). */
static void check_prepared(const core_plugin *p, int kind, const char *op,
                           const char *text, size_t tlen, const core_op *o)
{
  if (!text || strlen(text) != tlen)
    broken("prepare: text missing or of the wrong length");
  if (!core_plugin_op_count(p, kind))
    return;
  if (!o || o->op.kind != kind)
    broken("prepare: no op, or one of another kind, for %s", text);
  if (op && strcmp(op, o->op.name))
    broken("prepare: asked for op '%s', got '%s'", op, o->op.name);
  json_error_t je;
  json_t *r = json_loads(text, 0, &je);
  if (!json_is_object(r))
    broken("prepare: not a JSON object: %s", text);
  const char *named = json_string_value(json_object_get(r, "op"));
  if (!named || strcmp(named, o->op.name))
    broken("prepare: \"op\" is not '%s' in %s", o->op.name, text);
  json_object_del(r, "op");
  if (o->schema) {
    json_t *before = json_deep_copy(r);
    core_err err;
    if (!before)
      fuzz_die("prepare", "out of memory");
    if (core_schema_validate(o->schema, r, &err))
      broken("prepare: the op's schema refuses its own output: %s (%s)",
             err.msg, text);
    if (!json_equal(before, r))
      broken("prepare: validating again changed %s (op %s)", text, o->op.name);
    json_decref(before);
  } else if (json_object_size(r)) {
    broken("prepare: op '%s' takes no parameters but got %s", o->op.name, text);
  }
  json_decref(r);
}

static int is_blank(char c)
{
  return c == ' ' || c == '\t';
}

static void check_bare(const char *s)
{
  static const size_t sizes[] = {1, 2, 9, 128, 300};
  char buf[316];
  for (size_t k = 0; k < sizeof sizes / sizeof sizes[0]; k++) {
    size_t n = sizes[k];
    memset(buf, 0x5a, sizeof buf);
    core_media_bare(s, buf, n);
    for (size_t i = n; i < sizeof buf; i++)
      if (buf[i] != 0x5a)
        broken("media_bare: wrote past its buffer");
    if (!memchr(buf, 0, n))
      broken("media_bare: output not terminated within its buffer");
    for (const char *c = buf; *c; c++)
      if ((*c >= 'A' && *c <= 'Z') || *c == ';')
        broken("media_bare: '%s' from '%.200s'", buf, s);
  }
  memset(buf, 0x5a, sizeof buf);
  core_media_bare(s, buf, 0);
  for (size_t i = 0; i < sizeof buf; i++)
    if (buf[i] != 0x5a)
      broken("media_bare: wrote into a buffer of size 0");
}

static void check_media(const uint8_t *data, size_t size)
{
  char *s = malloc(size + 1);
  if (!s)
    fuzz_die("media", "out of memory");
  memcpy(s, data, size);
  s[size] = 0;
  size_t len = strlen(s);

  (void)core_media_valid(s, size);
  (void)core_media_valid(s, len);
  (void)core_media_is_json(s);
  check_bare(s);

  size_t bad = 0;
  if (core_media_list_check(s, &bad) == 0) {
    /* one entry, a type of its own (a trailing comma, "text/csv,", is
     * taken as a list of one too, but is no type) */
    if (!strchr(s, ',')) {
      const char *a = s, *b = s + len;
      while (a < b && is_blank(*a))
        a++;
      while (b > a && is_blank(b[-1]))
        b--;
      if (!core_media_valid(a, (size_t)(b - a)))
        broken("media: list_check takes '%.300s' but it is not valid", s);
      if (!core_media_in_list(s, s))
        broken("media: '%.300s' is not in the list of itself", s);
    }
  } else if (bad < 1) {
    broken("media: list_check refused '%.300s' without a position", s);
  }

  char *nl = strchr(s, '\n');
  const char *type = "";
  if (nl) {
    *nl = 0;
    type = nl + 1;
  }
  if (core_media_in_list(s, type)) {
    char bare[CORE_MEDIA_MAX];
    core_media_bare(type, bare, sizeof bare);
    if (!bare[0])
      broken("media: in_list matched '%.200s' of no type in '%.200s'", type, s);
  }
  free(s);
}

/* ---- one input ----------------------------------------------------------- */

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
  if (!fz.h)
    setup();
  uint8_t b0 = size > 0 ? data[0] : 0, b1 = size > 1 ? data[1] : 0;
  const char *rest = (const char *)data + (size > 2 ? 2 : size);
  size_t rlen = size > 2 ? size - 2 : 0;
  core_instance *ci = fz.ci[b0 & 1 ? SENSORS : PARKING];
  int kind = b0 & 2 ? TWIN_OP_SCENARIO : TWIN_OP_QUERY;
  const core_plugin *p = ci->plugin;

  size_t pick = b1 % (p->n_ops + 2);
  const char *op = NULL;
  char *garbage = NULL;
  const char *body = rest;
  size_t blen = rlen;
  if (pick >= 1 && pick <= p->n_ops) {
    op = p->ops[pick - 1].op.name;
  } else if (pick == p->n_ops + 1) {
    const char *nl = memchr(rest, '\n', rlen);
    size_t nlen = nl ? (size_t)(nl - rest) : rlen;
    garbage = malloc(nlen + 1);
    if (!garbage)
      fuzz_die("input", "out of memory");
    memcpy(garbage, rest, nlen);
    garbage[nlen] = 0;
    op = garbage;
    body = nl ? nl + 1 : rest + rlen;
    blen = rlen - (size_t)(body - rest);
  }

  core_reply r;
  core_err err;
  memset(&err, 0, sizeof err);
  int st = core_host_request(fz.h, ci, kind, op, body, blen, &r, &err);
  if (st == TWIN_OK) {
    check_reply(&r);
  } else {
    check_err("request", st, &err);
    if (r.body)
      broken("request: failed (%s) but left a body: %.200s",
             core_status_name(st), r.body);
  }
  if (fz.trace)
    fprintf(stderr, "fuzz_request: %s %s op %s: %s %.300s\n", p->desc.name,
            kind == TWIN_OP_SCENARIO ? "scenario" : "query", op ? op : "(none)",
            core_status_name(st), st == TWIN_OK ? r.body : err.msg);
  free(r.body);

  char *text = NULL;
  size_t tlen = 0;
  const core_op *o = NULL;
  core_err perr;
  memset(&perr, 0, sizeof perr);
  int pst = core_host_prepare(p, kind, op, body, blen, &text, &tlen, &o, &perr);
  if (pst == TWIN_OK) {
    check_prepared(p, kind, op, text, tlen, o);
  } else {
    check_err("prepare", pst, &perr);
    /* request prepares the same way first: the same refusal */
    if (st != pst || strcmp(err.code, perr.code) ||
        strcmp(err.field, perr.field))
      broken("request and prepare disagree: request said %s, prepare %s",
             err.msg, perr.msg);
    if (text)
      broken("prepare: failed but left text: %.200s", text);
  }
  free(text);
  free(garbage);

  check_media(data, size);
  return 0;
}
