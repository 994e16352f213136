/*
 * sensors.c — the "sensors" plugin: a town's measurement points (river
 * gauges, air quality stations, building energy meters) as entities holding
 * their latest readings, a history per measured attribute, and threshold
 * alerts raised when a reading crosses a configured limit.
 *
 * Built exactly as a third-party plugin is built: it sees only twin/twin.h
 * and uses jansson internally; only twin.h types cross the ABI. The config
 * is read once in open into an immutable instance, so query, simulate and
 * describe may run concurrently without locks.
 */
#include <inttypes.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "twin/twin.h"
#include "twin/twinaux.h"

#define SENSORS_VERSION "1.0.0"
#define DEFAULT_TYPE "Sensor"
#define TEN_YEARS_S 315360000
/* Observations gathered before one obs_append call for one entity. */
#define OBS_BATCH 64
/* Attributes gathered before one entity_put call. */
#define PUT_BATCH 32
#define MSG_MAX 768
/* Accepted times: years 0000..9999, so every time prints as RFC 3339. */
#define TIME_MIN_MS (-62167219200000LL)
#define TIME_MAX_MS 253402300799999LL
#define DAY_MS 86400000LL

static const char config_schema[] =
    "{\"type\":\"object\",\"additionalProperties\":false,\"properties\":{"
    "\"alerts\":{\"type\":\"array\",\"default\":[],"
    "\"description\":\"thresholds: an event when a reading crosses one\","
    "\"items\":{\"type\":\"object\",\"additionalProperties\":false,"
    "\"required\":[\"attr\"],\"properties\":{"
    "\"attr\":{\"type\":\"string\",\"minLength\":1,\"maxLength\":200,"
    "\"description\":\"attribute the threshold applies to\"},"
    "\"above\":{\"type\":\"number\","
    "\"description\":\"alert when the value rises above this\"},"
    "\"below\":{\"type\":\"number\","
    "\"description\":\"alert when the value falls below this\"},"
    "\"level\":{\"type\":\"string\",\"enum\":[\"info\",\"warning\","
    "\"error\"],\"default\":\"warning\"},"
    "\"message\":{\"type\":\"string\",\"minLength\":1,\"maxLength\":500,"
    "\"description\":\"event text instead of the generated one\"}}}},"
    "\"max_age_s\":{\"type\":\"integer\",\"minimum\":0,"
    "\"maximum\":315360000,\"default\":0,"
    "\"description\":\"reject readings older than this (0: no check)\"},"
    "\"future_slack_s\":{\"type\":\"integer\",\"minimum\":0,"
    "\"maximum\":315360000,\"default\":300,"
    "\"description\":\"reject readings later than now plus this\"},"
    "\"auto_create\":{\"type\":\"boolean\",\"default\":true,"
    "\"description\":\"false: readings of unknown entities are rejected\"}"
    "}}";

typedef struct sensors_alert {
  char *attr;
  int has_above, has_below;
  double above, below;
  twin_level level;
  char *message; /* NULL: generated "level_cm 512 above 500" */
} sensors_alert;

/* One town's instance. Immutable after open. */
typedef struct sensors {
  const twin_host_api *api;
  sensors_alert *alerts;
  size_t n_alerts;
  char *alerts_json;  /* the alerts with defaults filled, for {"op":"alerts"} */
  int64_t max_age_ms; /* 0: no check */
  int64_t future_slack_ms;
  int auto_create;
} sensors;

/* ------------------------------------------------------------------------ */
/* Small helpers                                                            */
/* ------------------------------------------------------------------------ */

static const char *status_name(int status)
{
  return twinaux_status_name(status);
}

/* Say why the call fails and return status. */
static int fail(const sensors *s, twin_ctx *ctx, int status, const char *fmt,
                ...) __attribute__((format(printf, 4, 5)));
/* The last failure on this thread, so that ingest can refuse one reading
 * of a batch with its reason (refuse_item) instead of the whole batch. */
static _Thread_local char last_msg[MSG_MAX];

static int fail(const sensors *s, twin_ctx *ctx, int status, const char *fmt,
                ...)
{
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(last_msg, sizeof last_msg, fmt, ap);
  va_end(ap);
  s->api->set_error(ctx, last_msg);
  return status;
}

/* A name the host accepts: 1..TWIN_NAME_MAX bytes, no control characters
 * (and so no NUL inside). */
static int valid_name(const json_t *j)
{
  const unsigned char *p;
  size_t len, i;
  if (!json_is_string(j))
    return 0;
  p = (const unsigned char *)json_string_value(j);
  len = json_string_length(j);
  if (len == 0 || len > TWIN_NAME_MAX)
    return 0;
  for (i = 0; i < len; i++)
    if (p[i] < 0x20 || p[i] == 0x7f)
      return 0;
  return 1;
}

/* How many bytes of s to show in a message, at most max, without cutting a
 * UTF-8 character in two: messages reach JSON encoders, which refuse
 * broken UTF-8. For "%.*s". */
static int shown_len(const char *s, int max)
{
  int n = 0;
  while (n < max && s[n])
    n++;
  if (n == max)
    while (n > 0 && ((unsigned char)s[n] & 0xc0) == 0x80)
      n--;
  return n;
}

/* Shortest decimal text that reads back as v. */
static void fmt_double(char *buf, size_t n, double v)
{
  if (v == floor(v) && fabs(v) < 1e15) {
    snprintf(buf, n, "%.0f", v);
    return;
  }
  snprintf(buf, n, "%.15g", v);
  if (strtod(buf, NULL) != v)
    snprintf(buf, n, "%.17g", v);
}

static void fmt_value(char *buf, size_t n, const twin_value *v)
{
  if (v->type == TWIN_VALUE_INT)
    snprintf(buf, n, "%" PRId64, v->as.integer);
  else
    fmt_double(buf, n, v->as.number);
}

/* ------------------------------------------------------------------------ */
/* Time: RFC 3339 text and integer milliseconds                             */
/* ------------------------------------------------------------------------ */

/* RFC 3339 in UTC; milliseconds only when not zero (twinaux). */
static void fmt_time(char *buf, size_t n, twin_time t)
{
  if (t < TIME_MIN_MS || t > TIME_MAX_MS || !twinaux_time_format(t, 0, buf, n))
    snprintf(buf, n, "%" PRId64, t);
}

/* A time given as RFC 3339 text or integer ms. 1: ok, 0: malformed,
 * -1: out of the years 0000..9999. */
static int json_time(const json_t *j, twin_time *out)
{
  if (json_is_integer(j)) {
    json_int_t v = json_integer_value(j);
    if (v < TIME_MIN_MS || v > TIME_MAX_MS)
      return -1;
    *out = (twin_time)v;
    return 1;
  }
  if (json_is_string(j)) {
    /* An offset can carry 0000-01-01T00:00:00+01:00 out of the years. */
    if (twinaux_time_parse(json_string_value(j), json_string_length(j),
                           TWINAUX_TIME_SPACE, out) != TWIN_OK)
      return 0;
    return *out < TIME_MIN_MS || *out > TIME_MAX_MS ? -1 : 1;
  }
  return 0;
}

/* ------------------------------------------------------------------------ */
/* Values between JSON and twin_value                                       */
/* ------------------------------------------------------------------------ */

/* A reading's value; strings point into j (valid while j lives). */
static int value_from_json(const json_t *j, twin_value *out)
{
  switch (json_typeof(j)) {
  case JSON_INTEGER:
    *out = twin_integer(json_integer_value(j));
    return 1;
  case JSON_REAL:
    *out = twin_number(json_real_value(j));
    return 1;
  case JSON_STRING:
    if (json_string_length(j) > TWIN_VALUE_MAX)
      return 0;
    *out = twin_string(json_string_value(j), json_string_length(j));
    return 1;
  case JSON_TRUE:
    *out = twin_bool(1);
    return 1;
  case JSON_FALSE:
    *out = twin_bool(0);
    return 1;
  default:
    return 0;
  }
}

static json_t *value_to_json(const twin_value *v)
{
  json_t *j;
  switch (v->type) {
  case TWIN_VALUE_NUMBER:
    return json_real(v->as.number);
  case TWIN_VALUE_INT:
    return json_integer(v->as.integer);
  case TWIN_VALUE_STRING:
    /* Host strings need not end in NUL: always use the length. */
    j = json_stringn(v->as.string.ptr, v->as.string.len);
    return j ? j : json_null();
  case TWIN_VALUE_BOOL:
    return json_boolean(v->as.boolean);
  default:
    return json_null();
  }
}

static json_t *time_to_json(twin_time t)
{
  char buf[40];
  fmt_time(buf, sizeof buf, t);
  return json_string(buf);
}

static int is_numeric(const twin_value *v, double *out)
{
  if (v->type == TWIN_VALUE_NUMBER) {
    *out = v->as.number;
    return 1;
  }
  if (v->type == TWIN_VALUE_INT) {
    *out = (double)v->as.integer;
    return 1;
  }
  return 0;
}

/* ------------------------------------------------------------------------ */
/* Open and close                                                           */
/* ------------------------------------------------------------------------ */

static void sensors_close(void *instance)
{
  sensors *s = instance;
  size_t i;
  if (!s)
    return;
  for (i = 0; i < s->n_alerts; i++) {
    free(s->alerts[i].attr);
    free(s->alerts[i].message);
  }
  free(s->alerts);
  free(s->alerts_json);
  free(s);
}

static char *dup_string(const char *src)
{
  size_t n = strlen(src) + 1;
  char *p = malloc(n);
  if (p)
    memcpy(p, src, n);
  return p;
}

static int parse_level(const char *name, twin_level *out)
{
  if (!strcmp(name, "info"))
    *out = TWIN_LEVEL_INFO;
  else if (!strcmp(name, "warning"))
    *out = TWIN_LEVEL_WARNING;
  else if (!strcmp(name, "error"))
    *out = TWIN_LEVEL_ERROR;
  else
    return 0;
  return 1;
}

static const char *level_name(twin_level level)
{
  switch (level) {
  case TWIN_LEVEL_INFO:
    return "info";
  case TWIN_LEVEL_ERROR:
    return "error";
  case TWIN_LEVEL_DEBUG:
    return "debug";
  default:
    return "warning";
  }
}

/* Read one alert of the config into a, and its normalised JSON into norm. */
static int parse_alert(sensors *s, twin_ctx *ctx, size_t i, json_t *j,
                       sensors_alert *a, json_t *norm)
{
  const char *key;
  json_t *v, *out;
  if (!json_is_object(j))
    return fail(s, ctx, TWIN_ERR_CONFIG, "alerts[%zu]: expected an object", i);
  json_object_foreach(j, key, v)
  {
    if (strcmp(key, "attr") && strcmp(key, "above") && strcmp(key, "below") &&
        strcmp(key, "level") && strcmp(key, "message"))
      return fail(s, ctx, TWIN_ERR_CONFIG,
                  "alerts[%zu].%s: unknown key (known: attr, above, below, "
                  "level, message)",
                  i, key);
  }
  v = json_object_get(j, "attr");
  if (!valid_name(v))
    return fail(s, ctx, TWIN_ERR_CONFIG,
                "alerts[%zu].attr: expected an attribute name", i);
  a->attr = dup_string(json_string_value(v));
  a->level = TWIN_LEVEL_WARNING;
  if ((v = json_object_get(j, "above"))) {
    if (!json_is_number(v))
      return fail(s, ctx, TWIN_ERR_CONFIG,
                  "alerts[%zu].above: expected a number", i);
    a->has_above = 1;
    a->above = json_number_value(v);
  }
  if ((v = json_object_get(j, "below"))) {
    if (!json_is_number(v))
      return fail(s, ctx, TWIN_ERR_CONFIG,
                  "alerts[%zu].below: expected a number", i);
    a->has_below = 1;
    a->below = json_number_value(v);
  }
  if (!a->has_above && !a->has_below)
    return fail(s, ctx, TWIN_ERR_CONFIG,
                "alerts[%zu]: needs \"above\" or \"below\" (or both)", i);
  if (a->has_above && a->has_below && a->below >= a->above)
    return fail(s, ctx, TWIN_ERR_CONFIG,
                "alerts[%zu]: below (%g) must be less than above (%g), or "
                "every value would be beyond a threshold",
                i, a->below, a->above);
  if ((v = json_object_get(j, "level")) &&
      (!json_is_string(v) || !parse_level(json_string_value(v), &a->level)))
    return fail(s, ctx, TWIN_ERR_CONFIG,
                "alerts[%zu].level: expected info, warning or error", i);
  if ((v = json_object_get(j, "message"))) {
    if (!json_is_string(v))
      return fail(s, ctx, TWIN_ERR_CONFIG,
                  "alerts[%zu].message: expected a string", i);
    a->message = dup_string(json_string_value(v));
  }
  if (!a->attr || (json_object_get(j, "message") && !a->message))
    return fail(s, ctx, TWIN_ERR_NOMEM, "out of memory");

  out = json_object();
  json_object_set_new(out, "attr", json_string(a->attr));
  if (a->has_above)
    json_object_set(out, "above", json_object_get(j, "above"));
  if (a->has_below)
    json_object_set(out, "below", json_object_get(j, "below"));
  json_object_set_new(out, "level", json_string(level_name(a->level)));
  if (a->message)
    json_object_set_new(out, "message", json_string(a->message));
  json_array_append_new(norm, out);
  return TWIN_OK;
}

static int config_seconds(sensors *s, twin_ctx *ctx, json_t *cfg,
                          const char *key, int64_t def, int64_t *out_ms)
{
  json_t *v = json_object_get(cfg, key);
  int64_t secs = def;
  if (v) {
    if (!json_is_integer(v))
      return fail(s, ctx, TWIN_ERR_CONFIG, "%s: expected an integer", key);
    secs = json_integer_value(v);
  }
  if (secs < 0 || secs > TEN_YEARS_S)
    return fail(s, ctx, TWIN_ERR_CONFIG,
                "%s: %" PRId64 " is outside 0..%d (ten years)", key, secs,
                TEN_YEARS_S);
  *out_ms = secs * 1000;
  return TWIN_OK;
}

static int parse_config(sensors *s, twin_ctx *ctx, const char *text, size_t len)
{
  json_error_t jerr;
  json_t *cfg, *alerts, *v, *norm = NULL;
  const char *key;
  size_t i;
  int rc = TWIN_OK;

  cfg = json_loadb(text ? text : "{}", text ? len : 2, 0, &jerr);
  if (!cfg || !json_is_object(cfg)) {
    json_decref(cfg);
    return fail(s, ctx, TWIN_ERR_CONFIG, "config: expected a JSON object");
  }
  json_object_foreach(cfg, key, v)
  {
    if (strcmp(key, "alerts") && strcmp(key, "max_age_s") &&
        strcmp(key, "future_slack_s") && strcmp(key, "auto_create")) {
      rc = fail(s, ctx, TWIN_ERR_CONFIG,
                "%s: unknown key (known: alerts, auto_create, "
                "future_slack_s, max_age_s)",
                key);
      goto done;
    }
  }
  if ((rc = config_seconds(s, ctx, cfg, "max_age_s", 0, &s->max_age_ms)) ||
      (rc = config_seconds(s, ctx, cfg, "future_slack_s", 300,
                           &s->future_slack_ms)))
    goto done;
  s->auto_create = 1;
  if ((v = json_object_get(cfg, "auto_create"))) {
    if (!json_is_boolean(v)) {
      rc = fail(s, ctx, TWIN_ERR_CONFIG, "auto_create: expected a boolean");
      goto done;
    }
    s->auto_create = json_is_true(v);
  }

  alerts = json_object_get(cfg, "alerts");
  if (alerts && !json_is_array(alerts)) {
    rc = fail(s, ctx, TWIN_ERR_CONFIG, "alerts: expected an array");
    goto done;
  }
  norm = json_array();
  if (alerts && json_array_size(alerts)) {
    s->alerts = calloc(json_array_size(alerts), sizeof *s->alerts);
    if (!s->alerts) {
      rc = fail(s, ctx, TWIN_ERR_NOMEM, "out of memory");
      goto done;
    }
    json_array_foreach(alerts, i, v)
    {
      s->n_alerts = i + 1; /* so close frees a half-read alert */
      if ((rc = parse_alert(s, ctx, i, v, &s->alerts[i], norm)))
        goto done;
    }
  }
  s->alerts_json = json_dumps(norm, JSON_COMPACT | JSON_REAL_PRECISION(15));
  if (!s->alerts_json)
    rc = fail(s, ctx, TWIN_ERR_NOMEM, "out of memory");
done:
  json_decref(norm);
  json_decref(cfg);
  return rc;
}

static int sensors_open(const twin_host_api *api, twin_ctx *ctx,
                        const char *config_json, size_t config_len,
                        void **instance)
{
  sensors *s;
  int rc;
  if (!api || api->abi_major != TWIN_ABI_MAJOR ||
      api->struct_size <
          offsetof(twin_host_api, call_script) + sizeof api->call_script)
    return TWIN_ERR_UNSUPPORTED;
  s = calloc(1, sizeof *s);
  if (!s) {
    api->set_error(ctx, "out of memory");
    return TWIN_ERR_NOMEM;
  }
  s->api = api;
  rc = parse_config(s, ctx, config_json, config_len);
  if (rc != TWIN_OK) {
    sensors_close(s);
    return rc;
  }
  *instance = s;
  return TWIN_OK;
}

/* ------------------------------------------------------------------------ */
/* Applying readings (ingest and simulate)                                  */
/* ------------------------------------------------------------------------ */

/* One reading, parsed and checked; strings point into the document. */
typedef struct reading {
  const char *type;
  const char *id;
  twin_time time;
  const char *attr;   /* the single-attribute form ... */
  twin_value value;   /* ... and its value */
  json_t *values;     /* or the compact form: {"level_cm":312,...} */
  const json_t *name; /* display name, a string, or NULL */
  int has_location;
  double lat, lon;
} reading;

/* The state of one run over a document's readings. */
typedef struct run {
  sensors *s;
  twin_ctx *ctx;
  twin_time now;
  json_t *alerts_out; /* simulate: every alert raised, else NULL */
  json_t *array;      /* the readings array, or NULL for one reading */
  size_t index;       /* of the reading being applied */
  int done;           /* past the last reading */
  char where[40];     /* at(): "readings[3]" or "reading", for messages */
  /* Observations for one entity, flushed with one obs_append. */
  const char *obs_type, *obs_id;
  twin_attr obs[OBS_BATCH];
  size_t n_obs;
  /* Attributes of the current reading, flushed with one entity_put. */
  twin_attr put[PUT_BATCH];
  size_t n_put;
  /* The last entity known to exist (auto_create false). */
  const char *seen_type, *seen_id;
} run;

/* Where a problem lies, for messages; formatted only when one is found. */
static const char *at(run *r)
{
  if (r->done)
    snprintf(r->where, sizeof r->where, "readings");
  else if (r->array)
    snprintf(r->where, sizeof r->where, "readings[%zu]", r->index);
  else
    snprintf(r->where, sizeof r->where, "reading");
  return r->where;
}

static int same_entity(const char *t1, const char *i1, const char *t2,
                       const char *i2)
{
  return t1 && t2 && (t1 == t2 || !strcmp(t1, t2)) &&
         (i1 == i2 || !strcmp(i1, i2));
}

static int flush_obs(run *r)
{
  int rc;
  if (r->n_obs == 0)
    return TWIN_OK;
  rc = r->s->api->obs_append(r->ctx, r->obs_type, r->obs_id, r->obs, r->n_obs);
  r->n_obs = 0;
  if (rc != TWIN_OK)
    return fail(r->s, r->ctx, rc, "%s: appending history of %s '%s' failed: %s",
                at(r), r->obs_type, r->obs_id, status_name(rc));
  return TWIN_OK;
}

static int add_obs(run *r, const reading *rd, const char *attr,
                   const twin_value *v)
{
  int rc;
  if (r->n_obs == OBS_BATCH ||
      (r->n_obs && !same_entity(r->obs_type, r->obs_id, rd->type, rd->id)))
    if ((rc = flush_obs(r)))
      return rc;
  r->obs_type = rd->type;
  r->obs_id = rd->id;
  r->obs[r->n_obs].name = attr;
  r->obs[r->n_obs].time = rd->time;
  r->obs[r->n_obs].value = *v;
  r->n_obs++;
  return TWIN_OK;
}

static int flush_put(run *r, const reading *rd)
{
  int rc;
  if (r->n_put == 0)
    return TWIN_OK;
  rc = r->s->api->entity_put(r->ctx, rd->type, rd->id, r->put, r->n_put);
  r->n_put = 0;
  if (rc != TWIN_OK)
    return fail(r->s, r->ctx, rc, "%s: storing %s '%s' failed: %s", at(r),
                rd->type, rd->id, status_name(rc));
  return TWIN_OK;
}

/* Raise the alert a, once, for value v that crossed threshold t. */
static int raise_alert(run *r, const reading *rd, const sensors_alert *a,
                       const char *attr, const twin_value *v, double t,
                       const char *direction)
{
  char val[40], thr[40], gen[MSG_MAX];
  const char *msg = gen, *data;
  size_t dlen;
  twinaux_json dj;
  int rc;
  fmt_value(val, sizeof val, v);
  fmt_double(thr, sizeof thr, t);
  /* The configured text is used whole: 500 characters may be more bytes
   * than gen holds, and a cut inside a character is not UTF-8. */
  if (a->message)
    msg = a->message;
  else
    snprintf(gen, sizeof gen, "%s %s %s %s", attr, val, direction, thr);
  twinaux_json_init(&dj);
  twinaux_json_object(&dj);
  twinaux_json_key(&dj, "attr");
  twinaux_json_str(&dj, attr);
  twinaux_json_key(&dj, "value");
  twinaux_json_raw(&dj, val, strlen(val));
  twinaux_json_key(&dj, "threshold");
  twinaux_json_raw(&dj, thr, strlen(thr));
  twinaux_json_key(&dj, "direction");
  twinaux_json_str(&dj, direction);
  twinaux_json_end(&dj);
  data = twinaux_json_text(&dj, &dlen);
  rc = twinaux_json_status(&dj);
  if (rc == TWIN_OK)
    rc = r->s->api->emit(r->ctx, a->level, rd->type, rd->id, msg, data, dlen);
  twinaux_json_free(&dj);
  if (rc != TWIN_OK)
    return fail(r->s, r->ctx, rc, "%s: raising the alert on %s failed: %s",
                at(r), attr, status_name(rc));
  if (r->alerts_out) {
    json_t *ev = json_pack("{s:s,s:s,s:s,s:s,s:s,s:o,s:f,s:s,s:o}", "level",
                           level_name(a->level), "type", rd->type, "id", rd->id,
                           "message", msg, "attr", attr, "value",
                           value_to_json(v), "threshold", t, "direction",
                           direction, "time", time_to_json(rd->time));
    if (!ev || json_array_append_new(r->alerts_out, ev))
      return fail(r->s, r->ctx, TWIN_ERR_NOMEM, "out of memory");
  }
  return TWIN_OK;
}

/* prev: the value before this reading (NULL when there was none). */
static int check_alerts(run *r, const reading *rd, const char *attr,
                        const twin_value *prev, const twin_value *v)
{
  const sensors *s = r->s;
  double now, was = 0;
  int had, rc;
  size_t i;
  if (!is_numeric(v, &now))
    return TWIN_OK;
  had = prev && is_numeric(prev, &was);
  for (i = 0; i < s->n_alerts; i++) {
    const sensors_alert *a = &s->alerts[i];
    if (strcmp(a->attr, attr))
      continue;
    if (a->has_above && now > a->above && !(had && was > a->above) &&
        (rc = raise_alert(r, rd, a, attr, v, a->above, "above")))
      return rc;
    if (a->has_below && now < a->below && !(had && was < a->below) &&
        (rc = raise_alert(r, rd, a, attr, v, a->below, "below")))
      return rc;
  }
  return TWIN_OK;
}

/*
 * Set one attribute of the reading's entity unless the entity already holds
 * a later value of it (a late reading only goes to history). history: also
 * append it as an observation; alerts: evaluate thresholds on it.
 */
static int apply_attr(run *r, const reading *rd, const char *attr,
                      const twin_value *v, int history)
{
  const twin_host_api *api = r->s->api;
  twin_attr cur;
  twin_value prev;
  int rc, had = 0;

  if (history && (rc = add_obs(r, rd, attr, v)))
    return rc;
  rc = api->entity_get(r->ctx, rd->type, rd->id, attr, &cur);
  if (rc == TWIN_OK) {
    if (cur.time > rd->time)
      return TWIN_OK;
    prev = cur.value; /* only its number is used, before any other call */
    had = 1;
  } else if (rc != TWIN_ERR_NOT_FOUND) {
    return fail(r->s, r->ctx, rc, "%s: reading %s '%s' failed: %s", at(r),
                rd->type, rd->id, status_name(rc));
  }
  if (history && r->s->n_alerts &&
      (rc = check_alerts(r, rd, attr, had ? &prev : NULL, v)))
    return rc;
  if (r->n_put == PUT_BATCH && (rc = flush_put(r, rd)))
    return rc;
  r->put[r->n_put].name = attr;
  r->put[r->n_put].time = rd->time;
  r->put[r->n_put].value = *v;
  r->n_put++;
  return TWIN_OK;
}

static int stop_cb(void *ud, const twin_attr *attr)
{
  (void)ud;
  (void)attr;
  return TWIN_STOP;
}

static int apply_reading(run *r, const reading *rd)
{
  const twin_host_api *api = r->s->api;
  twin_value v;
  int rc;

  if (!r->s->auto_create &&
      !same_entity(r->seen_type, r->seen_id, rd->type, rd->id)) {
    rc = api->entity_attrs(r->ctx, rd->type, rd->id, stop_cb, NULL);
    if (rc == TWIN_ERR_NOT_FOUND)
      return fail(r->s, r->ctx, TWIN_ERR_REJECTED,
                  "%s.entity: %s '%s' does not exist and auto_create is "
                  "false",
                  at(r), rd->type, rd->id);
    if (rc != TWIN_OK)
      return fail(r->s, r->ctx, rc, "%s: reading %s '%s' failed: %s", at(r),
                  rd->type, rd->id, status_name(rc));
    r->seen_type = rd->type;
    r->seen_id = rd->id;
  }

  if (rd->values) {
    const char *key;
    json_t *jv;
    json_object_foreach(rd->values, key, jv)
    {
      value_from_json(jv, &v); /* checked by parse_reading */
      if ((rc = apply_attr(r, rd, key, &v, 1)))
        return rc;
    }
  } else if ((rc = apply_attr(r, rd, rd->attr, &rd->value, 1))) {
    return rc;
  }
  if (rd->name) {
    v = twin_string(json_string_value(rd->name), json_string_length(rd->name));
    if ((rc = apply_attr(r, rd, "name", &v, 0)))
      return rc;
  }
  if (rd->has_location) {
    v = twin_number(rd->lat);
    if ((rc = apply_attr(r, rd, "lat", &v, 0)))
      return rc;
    v = twin_number(rd->lon);
    if ((rc = apply_attr(r, rd, "lon", &v, 0)))
      return rc;
  }
  return flush_put(r, rd);
}

static int parse_location(run *r, const json_t *loc, reading *rd)
{
  const json_t *lat = json_object_get(loc, "lat");
  const json_t *lon = json_object_get(loc, "lon");
  if (!json_is_object(loc) || !json_is_number(lat) || !json_is_number(lon) ||
      json_object_size(loc) != 2)
    return fail(r->s, r->ctx, TWIN_ERR_PARSE,
                "%s.location: expected {\"lat\": number, \"lon\": number}",
                at(r));
  rd->lat = json_number_value(lat);
  rd->lon = json_number_value(lon);
  if (rd->lat < -90 || rd->lat > 90)
    return fail(r->s, r->ctx, TWIN_ERR_REJECTED,
                "%s.location.lat: %g is outside -90..90", at(r), rd->lat);
  if (rd->lon < -180 || rd->lon > 180)
    return fail(r->s, r->ctx, TWIN_ERR_REJECTED,
                "%s.location.lon: %g is outside -180..180", at(r), rd->lon);
  rd->has_location = 1;
  return TWIN_OK;
}

static int parse_time(run *r, const json_t *jt, reading *rd)
{
  char shown[80];
  int ok;
  if (!jt)
    return fail(r->s, r->ctx, TWIN_ERR_PARSE, "%s.time: missing", at(r));
  ok = json_time(jt, &rd->time);
  if (json_is_string(jt))
    snprintf(shown, sizeof shown, "%.*s", shown_len(json_string_value(jt), 60),
             json_string_value(jt));
  else if (json_is_integer(jt))
    snprintf(shown, sizeof shown, "%" PRId64 " ms",
             (int64_t)json_integer_value(jt));
  if (ok == 0 && json_is_string(jt))
    return fail(r->s, r->ctx, TWIN_ERR_PARSE,
                "%s.time: \"%s\" is not an RFC 3339 time like "
                "\"2024-05-01T10:00:00Z\"",
                at(r), shown);
  if (ok == 0)
    return fail(r->s, r->ctx, TWIN_ERR_PARSE,
                "%s.time: expected an RFC 3339 time "
                "(\"2024-05-01T10:00:00Z\") or integer milliseconds",
                at(r));
  if (ok < 0)
    return fail(r->s, r->ctx, TWIN_ERR_PARSE,
                "%s.time: %s is outside the years 0000..9999", at(r), shown);
  if (rd->time > r->now + r->s->future_slack_ms)
    return fail(r->s, r->ctx, TWIN_ERR_REJECTED,
                "%s.time: %s is more than %" PRId64 " s in the future", at(r),
                shown, r->s->future_slack_ms / 1000);
  if (r->s->max_age_ms && rd->time < r->now - r->s->max_age_ms)
    return fail(r->s, r->ctx, TWIN_ERR_REJECTED,
                "%s.time: %s is older than max_age_s %" PRId64, at(r), shown,
                r->s->max_age_ms / 1000);
  return TWIN_OK;
}

static const char *const reading_fields[] = {
    "entity", "type", "attr", "time", "value", "values", "name", "location"};
#define N_READING_FIELDS (sizeof reading_fields / sizeof reading_fields[0])

/* The first key of j that is not a reading field. */
static const char *unknown_field(json_t *j)
{
  const char *key;
  json_t *v;
  size_t i;
  json_object_foreach(j, key, v)
  {
    for (i = 0; i < N_READING_FIELDS && strcmp(key, reading_fields[i]); i++)
      ;
    if (i == N_READING_FIELDS)
      return key;
  }
  return "?";
}

/* Check one reading and fill rd. Every problem names the field. */
static int parse_reading(run *r, json_t *j, reading *rd)
{
  const json_t *v;
  size_t known = 0;
  int rc;

  memset(rd, 0, sizeof *rd);
  if (!json_is_object(j))
    return fail(r->s, r->ctx, TWIN_ERR_PARSE, "%s: expected an object", at(r));

  v = json_object_get(j, "entity");
  if (!v)
    return fail(r->s, r->ctx, TWIN_ERR_PARSE, "%s.entity: missing", at(r));
  if (!valid_name(v))
    return fail(r->s, r->ctx, TWIN_ERR_PARSE,
                "%s.entity: expected a string of 1..%d bytes without "
                "control characters",
                at(r), TWIN_NAME_MAX);
  rd->id = json_string_value(v);
  known++;

  rd->type = DEFAULT_TYPE;
  if ((v = json_object_get(j, "type"))) {
    if (!valid_name(v))
      return fail(r->s, r->ctx, TWIN_ERR_PARSE,
                  "%s.type: expected a string of 1..%d bytes without "
                  "control characters",
                  at(r), TWIN_NAME_MAX);
    rd->type = json_string_value(v);
    known++;
  }

  if ((rc = parse_time(r, json_object_get(j, "time"), rd)))
    return rc;
  known++;

  rd->values = json_object_get(j, "values");
  v = json_object_get(j, "attr");
  if (rd->values && (v || json_object_get(j, "value")))
    return fail(r->s, r->ctx, TWIN_ERR_PARSE,
                "%s: give either \"attr\" and \"value\" or \"values\", not "
                "both",
                at(r));
  if (rd->values) {
    const char *key;
    json_t *jv;
    twin_value tv;
    if (!json_is_object(rd->values) || json_object_size(rd->values) == 0)
      return fail(r->s, r->ctx, TWIN_ERR_PARSE,
                  "%s.values: expected a non-empty object of attribute "
                  "values",
                  at(r));
    json_object_foreach(rd->values, key, jv)
    {
      size_t klen = strlen(key), i;
      for (i = 0; i < klen && (unsigned char)key[i] >= 0x20 && key[i] != 0x7f;
           i++)
        ;
      if (klen == 0 || klen > TWIN_NAME_MAX || i != klen)
        return fail(r->s, r->ctx, TWIN_ERR_PARSE,
                    "%s.values: \"%.*s\" is not a valid attribute name", at(r),
                    shown_len(key, 60), key);
      if (!value_from_json(jv, &tv))
        return fail(r->s, r->ctx, TWIN_ERR_PARSE,
                    "%s.values.%s: expected a number, integer, string or "
                    "boolean",
                    at(r), key);
    }
    known++;
  } else {
    if (!v)
      return fail(r->s, r->ctx, TWIN_ERR_PARSE,
                  "%s.attr: missing (or give \"values\")", at(r));
    if (!valid_name(v))
      return fail(r->s, r->ctx, TWIN_ERR_PARSE,
                  "%s.attr: expected a string of 1..%d bytes without "
                  "control characters",
                  at(r), TWIN_NAME_MAX);
    rd->attr = json_string_value(v);
    v = json_object_get(j, "value");
    if (!v)
      return fail(r->s, r->ctx, TWIN_ERR_PARSE, "%s.value: missing", at(r));
    if (!value_from_json(v, &rd->value))
      return fail(r->s, r->ctx, TWIN_ERR_PARSE,
                  "%s.value: expected a number, integer, string or boolean",
                  at(r));
    known += 2;
  }

  if ((v = json_object_get(j, "name"))) {
    if (!json_is_string(v) || json_string_length(v) > TWIN_VALUE_MAX)
      return fail(r->s, r->ctx, TWIN_ERR_PARSE, "%s.name: expected a string",
                  at(r));
    rd->name = v;
    known++;
  }
  if ((v = json_object_get(j, "location"))) {
    if ((rc = parse_location(r, v, rd)))
      return rc;
    known++;
  }

  /* Counting the known fields found spares a scan of every key. */
  if (known != json_object_size(j)) {
    const char *key = unknown_field(j);
    return fail(r->s, r->ctx, TWIN_ERR_PARSE,
                "%s.%.*s: unknown field (known: entity, type, attr, time, "
                "value, values, name, location)",
                at(r), shown_len(key, 60), key);
  }
  return TWIN_OK;
}

/* The readings of a document: one reading, or {"readings": [...]}. */
static int readings_of(sensors *s, twin_ctx *ctx, json_t *root, json_t **array,
                       json_t **single)
{
  json_t *arr = json_object_get(root, "readings");
  *array = *single = NULL;
  if (json_is_object(root) && arr) {
    if (!json_is_array(arr))
      return fail(s, ctx, TWIN_ERR_PARSE,
                  "readings: expected an array of readings");
    if (json_array_size(arr) == 0)
      return fail(s, ctx, TWIN_ERR_PARSE,
                  "readings: expected at least one reading");
    *array = arr;
    return TWIN_OK;
  }
  if (json_is_object(root) && json_object_get(root, "entity")) {
    *single = root;
    return TWIN_OK;
  }
  return fail(s, ctx, TWIN_ERR_PARSE,
              "expected one reading {\"entity\": ..., \"time\": ..., ...} or "
              "{\"readings\": [...]}");
}

/* The field a message of parse_reading names: "readings[3].time: ..."
 * gives "time"; NULL when it names the reading as a whole. */
static const char *msg_field(const char *msg, const char *where, char *buf,
                             size_t size)
{
  size_t w = strlen(where);
  if (strncmp(msg, where, w) || msg[w] != '.')
    return NULL;
  const char *f = msg + w + 1, *end = strstr(f, ": ");
  size_t n = end ? (size_t)(end - f) : 0;
  if (!n || n >= size)
    return NULL;
  memcpy(buf, f, n);
  buf[n] = 0;
  return buf;
}

/*
 * Check and apply the readings in order. In a batch ingested by a host of
 * ABI 1.2, a malformed or implausible reading is refused alone
 * (refuse_item) and the others land; otherwise the first problem fails
 * all. A reading is checked whole before anything of it is written.
 */
static int apply_readings(sensors *s, twin_ctx *ctx, json_t *array,
                          json_t *single, json_t *alerts_out)
{
  run r;
  reading rd;
  size_t n = array ? json_array_size(array) : 1, stored = 0, refused = 0;
  int rc, first_status = TWIN_OK;
  int can_refuse = array && !alerts_out && TWIN_HAS_API(s->api, refuse_item);
  char first[MSG_MAX] = "";

  memset(&r, 0, sizeof r);
  r.s = s;
  r.ctx = ctx;
  r.now = s->api->now(ctx);
  r.alerts_out = alerts_out;
  r.array = array;
  for (r.index = 0; r.index < n; r.index++) {
    /* a scenario has a deadline (the host names it when it passes) */
    if (alerts_out && (r.index & 1023) == 1023 &&
        TWIN_HAS_API(s->api, check_deadline) &&
        (rc = s->api->check_deadline(ctx, NULL)) != TWIN_OK)
      return fail(s, ctx, rc, "%s: stopped at the deadline", at(&r));
    rc = parse_reading(&r, array ? json_array_get(array, r.index) : single,
                       &rd);
    /* auto_create false refuses a reading before it writes anything */
    if (!rc)
      rc = apply_reading(&r, &rd);
    if ((rc == TWIN_ERR_PARSE || rc == TWIN_ERR_REJECTED) && can_refuse) {
      char field[64], item[48];
      const char *where = at(&r);
      const char *fld = msg_field(last_msg, where, field, sizeof field);
      snprintf(item, sizeof item, "%s", where);
      if (!refused) {
        first_status = rc;
        snprintf(first, sizeof first, "%s", last_msg);
      }
      if (s->api->refuse_item(ctx, item, fld,
                              rc == TWIN_ERR_PARSE ? "malformed"
                                                   : "implausible",
                              last_msg) == TWIN_OK) {
        refused++;
        continue;
      }
    }
    if (rc)
      return rc;
    stored++;
  }
  r.done = 1;
  rc = flush_obs(&r);
  if (!rc && !stored && refused) /* the batch fails as its first reading */
    rc = fail(s, ctx, first_status,
              "every reading of the batch was refused (%zu); the first: %s",
              refused, first);
  return rc;
}

static int sensors_ingest(void *instance, twin_ctx *ctx, const char *doc,
                          size_t len)
{
  sensors *s = instance;
  json_error_t jerr;
  json_t *root, *array, *single;
  int rc;

  root = json_loadb(doc, len, 0, &jerr);
  if (!root)
    return fail(s, ctx, TWIN_ERR_PARSE, "line %d, column %d: %s", jerr.line,
                jerr.column, jerr.text);
  rc = readings_of(s, ctx, root, &array, &single);
  if (rc == TWIN_OK && array && json_object_size(root) != 1)
    rc = fail(s, ctx, TWIN_ERR_PARSE,
              "a batch holds only \"readings\"; found other keys beside it");
  if (rc == TWIN_OK)
    rc = apply_readings(s, ctx, array, single, NULL);
  json_decref(root);
  return rc;
}

/* ------------------------------------------------------------------------ */
/* Reading entities back (query, simulate)                                  */
/* ------------------------------------------------------------------------ */

static int attrs_cb(void *ud, const twin_attr *a)
{
  json_t *attrs = ud, *one;
  one = json_pack("{s:o,s:o}", "value", value_to_json(&a->value), "time",
                  time_to_json(a->time));
  if (!one || json_object_set_new(attrs, a->name, one))
    return TWIN_ERR_NOMEM;
  return TWIN_OK;
}

/* {"type","id","attrs":{name:{"value","time"}}} in *out, or NULL when the
 * entity does not exist. */
static int entity_json(sensors *s, twin_ctx *ctx, const char *type,
                       const char *id, json_t **out)
{
  json_t *attrs = json_object();
  int rc;
  *out = NULL;
  if (!attrs)
    return TWIN_ERR_NOMEM;
  rc = s->api->entity_attrs(ctx, type, id, attrs_cb, attrs);
  if (rc == TWIN_ERR_NOT_FOUND) {
    json_decref(attrs);
    return TWIN_OK;
  }
  if (rc != TWIN_OK) {
    json_decref(attrs);
    return rc;
  }
  *out = json_pack("{s:s,s:s,s:o}", "type", type, "id", id, "attrs", attrs);
  return *out ? TWIN_OK : TWIN_ERR_NOMEM;
}

static int collect_cb(void *ud, const char *type, const char *id)
{
  json_t *pair = json_pack("[s,s]", type, id);
  if (!pair || json_array_append_new(ud, pair))
    return TWIN_ERR_NOMEM;
  return TWIN_OK;
}

/* Append the entities named by pairs ([[type,id],...]) to out. The pairs
 * are gathered first so that no host call runs inside an iteration. */
static int entities_json(sensors *s, twin_ctx *ctx, const json_t *pairs,
                         json_t *out)
{
  size_t i;
  json_t *pair, *e;
  int rc;
  json_array_foreach(pairs, i, pair)
  {
    rc = entity_json(s, ctx, json_string_value(json_array_get(pair, 0)),
                     json_string_value(json_array_get(pair, 1)), &e);
    if (rc != TWIN_OK)
      return rc;
    if (e && json_array_append_new(out, e))
      return TWIN_ERR_NOMEM;
  }
  return TWIN_OK;
}

/* Every entity (of type, or all types when NULL) as an array. */
static int list_json(sensors *s, twin_ctx *ctx, const char *type, json_t **out)
{
  json_t *pairs = json_array();
  int rc;
  *out = json_array();
  if (!pairs || !*out) {
    json_decref(pairs);
    return TWIN_ERR_NOMEM;
  }
  rc = s->api->entity_iterate(ctx, type, collect_cb, pairs);
  if (rc == TWIN_OK)
    rc = entities_json(s, ctx, pairs, *out);
  json_decref(pairs);
  return rc;
}

static int respond_json(sensors *s, twin_ctx *ctx, json_t *reply)
{
  char *text;
  int rc;
  if (!reply)
    return fail(s, ctx, TWIN_ERR_NOMEM, "out of memory");
  text = json_dumps(reply,
                    JSON_COMPACT | JSON_ENCODE_ANY | JSON_REAL_PRECISION(15));
  json_decref(reply);
  if (!text)
    return fail(s, ctx, TWIN_ERR_NOMEM, "out of memory");
  rc = s->api->respond(ctx, text, strlen(text));
  free(text);
  if (rc != TWIN_OK)
    return fail(s, ctx, rc, "respond failed: %s", status_name(rc));
  return TWIN_OK;
}

/* ------------------------------------------------------------------------ */
/* Query                                                                    */
/* ------------------------------------------------------------------------ */

/* An optional name field of a request: *out = default when absent. */
static int request_name(sensors *s, twin_ctx *ctx, const json_t *req,
                        const char *key, const char *def, const char **out)
{
  const json_t *v = json_object_get(req, key);
  if (!v) {
    if (!def)
      return fail(s, ctx, TWIN_ERR_INVALID, "%s: missing", key);
    *out = def;
    return TWIN_OK;
  }
  if (!valid_name(v))
    return fail(s, ctx, TWIN_ERR_INVALID,
                "%s: expected a string of 1..%d bytes", key, TWIN_NAME_MAX);
  *out = json_string_value(v);
  return TWIN_OK;
}

static int request_time(sensors *s, twin_ctx *ctx, const json_t *req,
                        const char *key, twin_time def, twin_time *out)
{
  const json_t *v = json_object_get(req, key);
  if (!v) {
    *out = def;
    return TWIN_OK;
  }
  if (json_time(v, out) != 1)
    return fail(s, ctx, TWIN_ERR_INVALID,
                "%s: expected an RFC 3339 time or integer milliseconds", key);
  return TWIN_OK;
}

typedef struct stats {
  size_t count, numeric;
  int all_int;
  double min, max, sum;
  int64_t imin, imax;
  json_t *first;
  twin_value last; /* a string here is borrowed: see last_json */
  json_t *last_json;
  twin_time first_time, last_time;
} stats;

/* Numbers are kept as they come; only string values (borrowed until the
 * callback returns) are copied, so numeric series allocate nothing. */
static int stats_cb(void *ud, const twin_attr *a)
{
  stats *st = ud;
  double x;
  if (is_numeric(&a->value, &x)) {
    if (st->numeric == 0 || x < st->min)
      st->min = x;
    if (st->numeric == 0 || x > st->max)
      st->max = x;
    if (a->value.type == TWIN_VALUE_INT) {
      int64_t i = a->value.as.integer;
      if (st->numeric == 0 || i < st->imin)
        st->imin = i;
      if (st->numeric == 0 || i > st->imax)
        st->imax = i;
    } else {
      st->all_int = 0;
    }
    st->sum += x;
    st->numeric++;
  }
  if (st->count == 0) {
    st->first = value_to_json(&a->value);
    st->first_time = a->time;
    if (!st->first)
      return TWIN_ERR_NOMEM;
  }
  st->count++;
  st->last_time = a->time;
  st->last = a->value;
  json_decref(st->last_json);
  st->last_json = NULL;
  if (a->value.type == TWIN_VALUE_STRING &&
      !(st->last_json = value_to_json(&a->value)))
    return TWIN_ERR_NOMEM;
  return TWIN_OK;
}

static int query_stats(sensors *s, twin_ctx *ctx, const json_t *req)
{
  const char *type = NULL, *id = NULL, *attr = NULL;
  twin_time from, to;
  stats st;
  json_t *reply;
  int rc;

  if ((rc = request_name(s, ctx, req, "type", DEFAULT_TYPE, &type)) ||
      (rc = request_name(s, ctx, req, "id", NULL, &id)) ||
      (rc = request_name(s, ctx, req, "attr", NULL, &attr)) ||
      (rc = request_time(s, ctx, req, "to", INT64_MAX, &to)) ||
      (rc =
           request_time(s, ctx, req, "from", s->api->now(ctx) - DAY_MS, &from)))
    return rc;
  if (from >= to)
    return fail(s, ctx, TWIN_ERR_INVALID, "from must be before to");
  memset(&st, 0, sizeof st);
  st.all_int = 1;
  rc = s->api->history_range(ctx, type, id, attr, from, to, 0, stats_cb, &st);
  if (rc != TWIN_OK) {
    json_decref(st.first);
    json_decref(st.last_json);
    return fail(s, ctx, rc, "history of %s '%s' %s: %s", type, id, attr,
                status_name(rc));
  }
  if (st.count == 0) {
    reply = json_pack("{s:i,s:n,s:n,s:n,s:n,s:n}", "count", 0, "min", "max",
                      "avg", "first", "last");
  } else {
    json_t *min, *max, *avg;
    if (st.numeric == 0) {
      min = json_null();
      max = json_null();
      avg = json_null();
    } else if (st.all_int) {
      min = json_integer(st.imin);
      max = json_integer(st.imax);
      avg = json_real(st.sum / (double)st.numeric);
    } else {
      min = json_real(st.min);
      max = json_real(st.max);
      avg = json_real(st.sum / (double)st.numeric);
    }
    reply = json_pack(
        "{s:I,s:o,s:o,s:o,s:o,s:o,s:o,s:o}", "count", (json_int_t)st.count,
        "min", min, "max", max, "avg", avg, "first", st.first, "last",
        st.last_json ? st.last_json : value_to_json(&st.last), "first_time",
        time_to_json(st.first_time), "last_time", time_to_json(st.last_time));
    st.first = st.last_json = NULL; /* json_pack "o" took them */
  }
  json_decref(st.first);
  json_decref(st.last_json);
  return respond_json(s, ctx, reply);
}

static int sensors_query(void *instance, twin_ctx *ctx, const char *request,
                         size_t len)
{
  sensors *s = instance;
  json_error_t jerr;
  json_t *req, *reply = NULL;
  const char *op, *type, *id;
  int rc;

  req = json_loadb(request, len, 0, &jerr);
  if (!req)
    return fail(s, ctx, TWIN_ERR_PARSE, "line %d, column %d: %s", jerr.line,
                jerr.column, jerr.text);
  op = json_string_value(json_object_get(req, "op"));
  if (!op) {
    rc = fail(s, ctx, TWIN_ERR_INVALID,
              "expected {\"op\": ...} with op one of latest, entity, stats, "
              "alerts");
  } else if (!strcmp(op, "latest")) {
    type = NULL;
    if (json_object_get(req, "type") &&
        (rc = request_name(s, ctx, req, "type", NULL, &type))) {
      /* set_error said why */
    } else if ((rc = list_json(s, ctx, type, &reply)) != TWIN_OK) {
      json_decref(reply);
      rc = fail(s, ctx, rc, "listing entities failed: %s", status_name(rc));
    } else {
      rc = respond_json(s, ctx, reply);
    }
  } else if (!strcmp(op, "entity")) {
    if ((rc = request_name(s, ctx, req, "type", DEFAULT_TYPE, &type)) ||
        (rc = request_name(s, ctx, req, "id", NULL, &id))) {
      /* set_error said why */
    } else if ((rc = entity_json(s, ctx, type, id, &reply)) != TWIN_OK) {
      rc = fail(s, ctx, rc, "reading %s '%s' failed: %s", type, id,
                status_name(rc));
    } else if (!reply) {
      rc = fail(s, ctx, TWIN_ERR_NOT_FOUND, "no entity %s '%s'", type, id);
    } else {
      rc = respond_json(s, ctx, reply);
    }
  } else if (!strcmp(op, "stats")) {
    rc = query_stats(s, ctx, req);
  } else if (!strcmp(op, "alerts")) {
    rc = s->api->respond(ctx, s->alerts_json, strlen(s->alerts_json));
    if (rc != TWIN_OK)
      rc = fail(s, ctx, rc, "respond failed: %s", status_name(rc));
  } else {
    rc = fail(s, ctx, TWIN_ERR_INVALID,
              "unknown op '%.*s' (known: latest, entity, stats, alerts)",
              shown_len(op, 60), op);
  }
  json_decref(req);
  return rc;
}

/* ------------------------------------------------------------------------ */
/* Simulate and describe                                                    */
/* ------------------------------------------------------------------------ */

/* The distinct [type,id] pairs the readings name, in first-seen order. */
static json_t *touched_pairs(json_t *array, json_t *single)
{
  json_t *seen = json_object(), *pairs = json_array(), *rd;
  size_t i, n = array ? json_array_size(array) : 1;
  char key[2 * TWIN_NAME_MAX + 2];
  for (i = 0; i < n && seen && pairs; i++) {
    const char *type, *id;
    rd = array ? json_array_get(array, i) : single;
    id = json_string_value(json_object_get(rd, "entity"));
    type = json_string_value(json_object_get(rd, "type"));
    if (!type)
      type = DEFAULT_TYPE;
    if (!valid_name(json_object_get(rd, "entity")) ||
        (json_object_get(rd, "type") &&
         !valid_name(json_object_get(rd, "type"))))
      continue; /* apply_readings rejects it */
    snprintf(key, sizeof key, "%s\n%s", type, id);
    if (json_object_get(seen, key))
      continue;
    json_object_set_new(seen, key, json_true());
    json_array_append_new(pairs, json_pack("[s,s]", type, id));
  }
  json_decref(seen);
  return pairs;
}

/*
 * {"readings": [...], "report": {"type": T}} → {"baseline": [...],
 * "entities": [...], "alerts": [...]}: the reported entities before and
 * after the readings, and the alerts the readings raise. Reported are the
 * entities of type T, or without a type the entities the readings touch.
 */
static int sensors_simulate(void *instance, twin_ctx *ctx, const char *scenario,
                            size_t len)
{
  sensors *s = instance;
  json_error_t jerr;
  json_t *root, *array, *single, *report, *pairs = NULL, *reply = NULL;
  json_t *baseline = NULL, *after = NULL, *alerts = NULL;
  const char *key, *type = NULL;
  json_t *v;
  int rc;

  root = json_loadb(scenario, len, 0, &jerr);
  if (!root)
    return fail(s, ctx, TWIN_ERR_PARSE, "line %d, column %d: %s", jerr.line,
                jerr.column, jerr.text);
  if (!json_is_object(root) ||
      !json_is_array(json_object_get(root, "readings"))) {
    rc = fail(s, ctx, TWIN_ERR_PARSE,
              "expected {\"readings\": [...], \"report\": {\"type\": ...}}");
    goto done;
  }
  json_object_foreach(root, key, v)
  {
    if (strcmp(key, "readings") && strcmp(key, "report") &&
        strcmp(key, "op")) { /* the host names the declared op */
      rc = fail(s, ctx, TWIN_ERR_PARSE,
                "%s: unknown key (known: readings, report)", key);
      goto done;
    }
  }
  report = json_object_get(root, "report");
  if (report) {
    json_t *t = json_object_get(report, "type");
    if (!json_is_object(report) || json_object_size(report) > (t ? 1 : 0) ||
        (t && !valid_name(t))) {
      rc = fail(s, ctx, TWIN_ERR_PARSE,
                "report: expected {} or {\"type\": entity type}");
      goto done;
    }
    type = json_string_value(t);
  }
  if ((rc = readings_of(s, ctx, root, &array, &single)))
    goto done;

  alerts = json_array();
  if (!alerts) {
    rc = fail(s, ctx, TWIN_ERR_NOMEM, "out of memory");
    goto done;
  }
  if (type) {
    rc = list_json(s, ctx, type, &baseline);
  } else {
    baseline = json_array();
    pairs = touched_pairs(array, single);
    rc = !pairs || !baseline ? TWIN_ERR_NOMEM
                             : entities_json(s, ctx, pairs, baseline);
  }
  if (rc != TWIN_OK) {
    rc = fail(s, ctx, rc, "reading the baseline failed: %s", status_name(rc));
    goto done;
  }
  if ((rc = apply_readings(s, ctx, array, single, alerts)))
    goto done;
  if (type) {
    rc = list_json(s, ctx, type, &after);
  } else {
    after = json_array();
    rc = after ? entities_json(s, ctx, pairs, after) : TWIN_ERR_NOMEM;
  }
  if (rc != TWIN_OK) {
    rc = fail(s, ctx, rc, "reading the result failed: %s", status_name(rc));
    goto done;
  }
  reply = json_pack("{s:O,s:O,s:O}", "baseline", baseline, "entities", after,
                    "alerts", alerts);
  rc = respond_json(s, ctx, reply);
done:
  json_decref(pairs);
  json_decref(baseline);
  json_decref(after);
  json_decref(alerts);
  json_decref(root);
  return rc;
}

static int count_cb(void *ud, const char *type, const char *id)
{
  (void)type;
  (void)id;
  ++*(size_t *)ud;
  return TWIN_OK;
}

static int sensors_describe(void *instance, twin_ctx *ctx)
{
  sensors *s = instance;
  size_t n = 0;
  int rc = s->api->entity_iterate(ctx, NULL, count_cb, &n);
  if (rc != TWIN_OK)
    return fail(s, ctx, rc, "counting entities failed: %s", status_name(rc));
  return respond_json(s, ctx,
                      json_pack("{s:s,s:I,s:I}", "plugin", "sensors",
                                "entities", (json_int_t)n, "alerts",
                                (json_int_t)s->n_alerts));
}

/* The declared ops: the host checks each request against its schema
 * before query or simulate sees it, and documents them. */
#define S_NAME "{\"type\":\"string\",\"minLength\":1,\"maxLength\":200}"
static const twin_op sensors_ops[] = {
    {"latest", TWIN_OP_QUERY, TWIN_OP_SAFE,
     "every entity (of one type) with its latest readings",
     "{\"type\":\"object\",\"additionalProperties\":false,\"properties\":{"
     "\"type\":" S_NAME "}}",
     NULL, "{\"type\":\"WaterLevelGauge\"}"},
    {"entity", TWIN_OP_QUERY, TWIN_OP_SAFE, "one entity's latest readings",
     "{\"type\":\"object\",\"additionalProperties\":false,"
     "\"required\":[\"id\"],\"properties\":{\"type\":" S_NAME
     ",\"id\":" S_NAME "}}",
     NULL, "{\"type\":\"WaterLevelGauge\",\"id\":\"pegel-deggendorf\"}"},
    {"stats", TWIN_OP_QUERY, TWIN_OP_SAFE,
     "count, min, max, mean, first and last of one attribute over a window "
     "(default: the last 24 h)",
     "{\"type\":\"object\",\"additionalProperties\":false,"
     "\"required\":[\"id\",\"attr\"],\"properties\":{\"type\":" S_NAME
     ",\"id\":" S_NAME ",\"attr\":" S_NAME
     ",\"from\":{\"format\":\"date-time\"},"
     "\"to\":{\"format\":\"date-time\"}}}",
     NULL,
     "{\"type\":\"WaterLevelGauge\",\"id\":\"pegel-deggendorf\","
     "\"attr\":\"level_cm\",\"from\":\"2026-11-14T00:00:00Z\"}"},
    {"alerts", TWIN_OP_QUERY, TWIN_OP_SAFE, "the configured threshold alerts",
     NULL, NULL, "{}"},
    {"readings", TWIN_OP_SCENARIO, 0,
     "what these readings would change and which alerts they would raise",
     "{\"type\":\"object\",\"additionalProperties\":false,"
     "\"required\":[\"readings\"],\"properties\":{"
     "\"readings\":{\"type\":\"array\",\"minItems\":1,"
     "\"items\":{\"type\":\"object\"}},"
     "\"report\":{\"type\":\"object\",\"additionalProperties\":false,"
     "\"properties\":{\"type\":" S_NAME "}}}}",
     NULL,
     "{\"readings\":[{\"entity\":\"pegel-deggendorf\",\"type\":"
     "\"WaterLevelGauge\",\"attr\":\"level_cm\",\"time\":"
     "\"2026-11-23T06:00:00Z\",\"value\":540}]}"},
};

static const twin_plugin sensors_plugin = {
    .struct_size = sizeof(twin_plugin),
    .abi_major = TWIN_ABI_MAJOR,
    .abi_minor = TWIN_ABI_MINOR,
    .name = "sensors",
    .version = SENSORS_VERSION,
    .use_case = "sensors",
    .summary = "measurement points (gauges, air quality, meters) with "
               "threshold alerts",
    .config_schema = config_schema,
    .tick_interval_s = 0,
    .open = sensors_open,
    .close = sensors_close,
    .ingest = sensors_ingest,
    .query = sensors_query,
    .simulate = sensors_simulate,
    .tick = NULL,
    .describe = sensors_describe,
    TWIN_OPS(sensors_ops),
};

TWIN_PLUGIN_DEFINE(sensors_plugin)
