/*
 * parking.c — the "parking" plugin: a town's car parks (OffStreetParking)
 * and on-street zones (ParkingGroup) in FIWARE Smart Data Models terms, fed
 * by ParkAPI v1, ParkAPI2 and single observations, with a history of free
 * spaces and occupancy, a weekday/hour occupancy profile, forecasts,
 * guidance to the best lot near a point, and closure and event scenarios.
 *
 * Built exactly as a third-party plugin is built: it sees only twin/twin.h
 * and uses jansson internally (libcurl through feed.c). The config is read
 * once in open into an instance that only tick changes afterwards (the feed
 * handle, on the writer thread), so queries and scenarios need no lock.
 *
 * Local time comes from the host (api->local_time, ABI 1.1) in the town's
 * zone: pure and thread-safe, so queries on HTTP threads and ingest on the
 * writer thread convert at once without a lock and without touching TZ.
 */
#define _DEFAULT_SOURCE
#include <inttypes.h>
#include <math.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "twin/twin.h"
#include "twin/twinaux.h"
#ifdef PARKING_HAVE_FEED
#include "feed.h"
#endif

#define PARKING_VERSION "1.0.0"
#define T_OFF "OffStreetParking"
#define T_GROUP "ParkingGroup"
#define MSG_MAX 768
#define TIME_MIN_MS (-62167219200000LL)
#define TIME_MAX_MS 253402300799999LL
#define HOUR_MS 3600000LL
#define DAY_MS 86400000LL
#define WEEK_MS (7 * DAY_MS)
#define STEP_MS (15 * 60000LL)
#define MAX_STEPS (7 * 24 * 4)
#define DEV_WINDOW_MS (3 * HOUR_MS)
#define MAX_COUNT 1000000

static const char config_schema[] =
    "{\"type\":\"object\",\"additionalProperties\":false,\"properties\":{"
    "\"auto_create\":{\"type\":\"boolean\",\"default\":true,"
    "\"description\":\"false: observations of unknown lots are rejected\"},"
    "\"future_slack_s\":{\"type\":\"integer\",\"minimum\":0,"
    "\"maximum\":86400,\"default\":300,"
    "\"description\":\"reject observations later than now plus this\"},"
    "\"almost_full\":{\"type\":\"number\",\"minimum\":0,\"maximum\":1,"
    "\"default\":0.9,\"description\":\"occupancy from which a lot is "
    "almostFull\"},"
    "\"feed_url\":{\"type\":\"string\",\"maxLength\":2000,\"default\":\"\","
    "\"description\":\"ParkAPI feed pulled on every fetch, by default every 300 s (empty: none)\"},"
    "\"feed_format\":{\"type\":\"string\",\"enum\":[\"auto\",\"parkapi1\","
    "\"parkapi2\"],\"default\":\"auto\"},"
    "\"feed_timeout_ms\":{\"type\":\"integer\",\"minimum\":100,"
    "\"maximum\":60000,\"default\":10000},"
    "\"walking_speed_m_s\":{\"type\":\"number\",\"minimum\":0.1,"
    "\"maximum\":5,\"default\":1.3},"
    "\"lots\":{\"type\":\"array\",\"default\":[],"
    "\"description\":\"static lot definitions, stored when the plugin opens\","
    "\"items\":{\"type\":\"object\",\"additionalProperties\":false,"
    "\"required\":[\"id\"],\"properties\":{"
    "\"id\":{\"type\":\"string\",\"minLength\":1,\"maxLength\":200},"
    "\"name\":{\"type\":\"string\",\"maxLength\":200},"
    "\"lat\":{\"type\":\"number\",\"minimum\":-90,\"maximum\":90},"
    "\"lon\":{\"type\":\"number\",\"minimum\":-180,\"maximum\":180},"
    "\"total\":{\"type\":\"integer\",\"minimum\":0,\"maximum\":1000000},"
    "\"category\":{\"type\":\"string\",\"maxLength\":100},"
    "\"price\":{\"type\":\"number\",\"minimum\":0,\"maximum\":1000},"
    "\"openingHours\":{\"type\":\"string\",\"maxLength\":200}}}}"
    "}}";

enum { FMT_AUTO, FMT_V1, FMT_V2 };

typedef struct parking {
  const twin_host_api *api;
  int auto_create;
  int64_t future_slack_ms;
  double almost_full;
  char *feed_url;
  int feed_format;
  long feed_timeout_ms;
  double walk_speed;
  twin_source *src; /* fetch hands the feed's snapshots in through it */
#ifdef PARKING_HAVE_FEED
  park_feed *feed; /* fetch only (one call at a time, a fetch thread) */
#endif
} parking;

static const char *status_name(int status)
{
  return twinaux_status_name(status);
}

/* The last failure on this thread and the field it was about, so that
 * ingest can refuse one lot of a snapshot with its reason (refuse_item)
 * instead of the whole document. */
static _Thread_local char last_msg[MSG_MAX];
static _Thread_local char last_field[48];

/* Say why the call fails and return status. */
static int fail(const parking *p, twin_ctx *ctx, int status, const char *fmt,
                ...) __attribute__((format(printf, 4, 5)));
static int fail(const parking *p, twin_ctx *ctx, int status, const char *fmt,
                ...)
{
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(last_msg, sizeof last_msg, fmt, ap);
  va_end(ap);
  last_field[0] = 0;
  p->api->set_error(ctx, last_msg);
  return status;
}

/* The same, naming the field of the lot that is wrong. */
static int fail_field(const parking *p, twin_ctx *ctx, int status,
                      const char *field, const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));
static int fail_field(const parking *p, twin_ctx *ctx, int status,
                      const char *field, const char *fmt, ...)
{
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(last_msg, sizeof last_msg, fmt, ap);
  va_end(ap);
  snprintf(last_field, sizeof last_field, "%s", field);
  p->api->set_error(ctx, last_msg);
  return status;
}

/* A name the host accepts: 1..TWIN_NAME_MAX bytes, no control characters. */
static int valid_name(const json_t *j)
{
  const unsigned char *s;
  size_t len, i;
  if (!json_is_string(j))
    return 0;
  s = (const unsigned char *)json_string_value(j);
  len = json_string_length(j);
  if (len == 0 || len > TWIN_NAME_MAX)
    return 0;
  for (i = 0; i < len; i++)
    if (s[i] < 0x20 || s[i] == 0x7f)
      return 0;
  return 1;
}

/* Bytes of s to show in a message, without cutting a UTF-8 character. */
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

/* ------------------------------------------------------------------------ */
/* Time                                                                     */
/* ------------------------------------------------------------------------ */

/* RFC 3339 in UTC; milliseconds only when not zero (twinaux). */
static void fmt_time(char *buf, size_t n, twin_time t)
{
  if (t < TIME_MIN_MS || t > TIME_MAX_MS || !twinaux_time_format(t, 0, buf, n))
    snprintf(buf, n, "%" PRId64, t);
}

/* RFC 3339 text or integer ms. 1: ok, 0: malformed or out of range. */
static int json_time(const json_t *j, twin_time *out)
{
  if (json_is_integer(j)) {
    json_int_t v = json_integer_value(j);
    if (v < TIME_MIN_MS || v > TIME_MAX_MS)
      return 0;
    *out = (twin_time)v;
    return 1;
  }
  if (json_is_string(j)) {
    /* without a zone the time is read as UTC: ParkAPI v1's last_updated
     * carries none */
    if (twinaux_time_parse(json_string_value(j), json_string_length(j),
                           TWINAUX_TIME_ZONE_OPTIONAL | TWINAUX_TIME_SPACE,
                           out) != TWIN_OK)
      return 0;
    return *out >= TIME_MIN_MS && *out <= TIME_MAX_MS;
  }
  return 0;
}

static json_t *time_to_json(twin_time t)
{
  char buf[40];
  fmt_time(buf, sizeof buf, t);
  return json_string(buf);
}

/* Local weekday (0 = Sunday), hour and a local hour number (local seconds
 * / 3600) of n times in the town's zone, one host call per time. */
typedef struct local_hour {
  int wday, hour;
  int64_t key;
} local_hour;

static int local_hours(const parking *p, twin_ctx *ctx, const twin_time *t,
                       size_t n, local_hour *out)
{
  size_t i;
  for (i = 0; i < n; i++) {
    twin_local lt;
    int64_t sec = t[i] >= 0 ? t[i] / 1000 : (t[i] - 999) / 1000;
    if (p->api->local_time(ctx, t[i], &lt) != TWIN_OK)
      return 0;
    out[i].wday = lt.weekday;
    out[i].hour = lt.hour;
    out[i].key = (sec + lt.utc_offset_s) / 3600;
  }
  return 1;
}

static const char *town_tz(parking *p, twin_ctx *ctx)
{
  const char *id = NULL, *name = NULL, *tz = NULL;
  if (p->api->town_info(ctx, &id, &name, &tz) != TWIN_OK || !tz)
    return "UTC";
  return tz;
}

/* ------------------------------------------------------------------------ */
/* Lots as stored                                                           */
/* ------------------------------------------------------------------------ */

/* One lot's current state, read from its entity. Strings are copies. */
typedef struct lot {
  char type[24];
  char *id, *name, *category, *status;
  double lat, lon, price, occ;
  int has_pos, has_price, has_total, has_free, has_occ;
  int64_t total, free;
  twin_time time; /* of availableSpotNumber; 0 when none */
} lot;

typedef struct lots {
  lot *v;
  size_t n, cap;
} lots;

static void lots_free(lots *ls)
{
  size_t i;
  for (i = 0; i < ls->n; i++) {
    free(ls->v[i].id);
    free(ls->v[i].name);
    free(ls->v[i].category);
    free(ls->v[i].status);
  }
  free(ls->v);
  memset(ls, 0, sizeof *ls);
}

static char *dupn(const char *s, size_t n)
{
  char *d = malloc(n + 1);
  if (d) {
    memcpy(d, s, n);
    d[n] = '\0';
  }
  return d;
}

/* TWIN_ERR_DEADLINE once the call's deadline passed (a query or
 * scenario has one; the host then names town, plugin and op), else
 * TWIN_OK. Cheap: poll it in long loops. */
static int past_deadline(const parking *p, twin_ctx *ctx)
{
  if (!TWIN_HAS_API(p->api, check_deadline))
    return TWIN_OK;
  return p->api->check_deadline(ctx, NULL);
}

static int num_of(const twin_value *v, double *out)
{
  if (v->type == TWIN_VALUE_NUMBER)
    *out = v->as.number;
  else if (v->type == TWIN_VALUE_INT)
    *out = (double)v->as.integer;
  else
    return 0;
  return 1;
}

static int lot_attr_cb(void *ud, const twin_attr *a)
{
  lot *l = ud;
  double x;
  char **str = NULL;
  if (!strcmp(a->name, "name"))
    str = &l->name;
  else if (!strcmp(a->name, "category"))
    str = &l->category;
  else if (!strcmp(a->name, "status"))
    str = &l->status;
  if (str) {
    if (a->value.type == TWIN_VALUE_STRING) {
      free(*str);
      *str = dupn(a->value.as.string.ptr, a->value.as.string.len);
      if (!*str)
        return TWIN_ERR_NOMEM;
    }
    return TWIN_OK;
  }
  if (!num_of(&a->value, &x))
    return TWIN_OK;
  if (!strcmp(a->name, "lat")) {
    l->lat = x;
    l->has_pos |= 1;
  } else if (!strcmp(a->name, "lon")) {
    l->lon = x;
    l->has_pos |= 2;
  } else if (!strcmp(a->name, "price")) {
    l->price = x;
    l->has_price = 1;
  } else if (!strcmp(a->name, "totalSpotNumber")) {
    l->total = (int64_t)x;
    l->has_total = 1;
  } else if (!strcmp(a->name, "availableSpotNumber")) {
    l->free = (int64_t)x;
    l->has_free = 1;
    l->time = a->time;
  } else if (!strcmp(a->name, "occupancy")) {
    l->occ = x;
    l->has_occ = 1;
  }
  return TWIN_OK;
}

/* Read lot (type, id) into l (zeroed first). TWIN_ERR_NOT_FOUND if absent. */
static int lot_read(parking *p, twin_ctx *ctx, const char *type, const char *id,
                    lot *l)
{
  int rc;
  memset(l, 0, sizeof *l);
  snprintf(l->type, sizeof l->type, "%s", type);
  if (!(l->id = strdup(id)))
    return TWIN_ERR_NOMEM;
  rc = p->api->entity_attrs(ctx, type, id, lot_attr_cb, l);
  l->has_pos = l->has_pos == 3;
  return rc;
}

/* The type lot id is stored under (OffStreetParking first), or NULL. */
static const char *lot_type_of(parking *p, twin_ctx *ctx, const char *id,
                               int *rc)
{
  twin_attr a;
  static const char *const types[] = {T_OFF, T_GROUP};
  size_t i;
  *rc = TWIN_OK;
  for (i = 0; i < 2; i++) {
    int r = p->api->entity_get(ctx, types[i], id, "totalSpotNumber", &a);
    if (r == TWIN_ERR_NOT_FOUND)
      r = p->api->entity_get(ctx, types[i], id, "name", &a);
    if (r == TWIN_ERR_NOT_FOUND)
      r = p->api->entity_get(ctx, types[i], id, "availableSpotNumber", &a);
    if (r == TWIN_OK)
      return types[i];
    if (r != TWIN_ERR_NOT_FOUND) {
      *rc = r;
      return NULL;
    }
  }
  return NULL;
}

typedef struct pair_list {
  char (*type)[24];
  char **id;
  size_t n, cap;
  int nomem;
} pair_list;

static int collect_cb(void *ud, const char *type, const char *id)
{
  pair_list *pl = ud;
  if (strcmp(type, T_OFF) && strcmp(type, T_GROUP))
    return TWIN_OK;
  if (pl->n == pl->cap) {
    size_t cap = pl->cap ? pl->cap * 2 : 16;
    void *t = realloc(pl->type, cap * sizeof *pl->type);
    if (!t)
      return TWIN_ERR_NOMEM;
    pl->type = t;
    t = realloc(pl->id, cap * sizeof *pl->id);
    if (!t)
      return TWIN_ERR_NOMEM;
    pl->id = t;
    pl->cap = cap;
  }
  snprintf(pl->type[pl->n], sizeof pl->type[pl->n], "%s", type);
  if (!(pl->id[pl->n] = strdup(id)))
    return TWIN_ERR_NOMEM;
  pl->n++;
  return TWIN_OK;
}

/* Every lot of the town, ordered by (type, id). Pairs are gathered first so
 * no host call runs inside the iteration. */
static int lots_load(parking *p, twin_ctx *ctx, lots *out)
{
  pair_list pl;
  size_t i;
  int rc;
  memset(&pl, 0, sizeof pl);
  memset(out, 0, sizeof *out);
  rc = p->api->entity_iterate(ctx, NULL, collect_cb, &pl);
  if (rc == TWIN_OK && pl.n) {
    out->v = calloc(pl.n, sizeof *out->v);
    if (!out->v)
      rc = TWIN_ERR_NOMEM;
  }
  for (i = 0; rc == TWIN_OK && i < pl.n; i++) {
    rc = lot_read(p, ctx, pl.type[i], pl.id[i], &out->v[out->n]);
    out->n++;
  }
  for (i = 0; i < pl.n; i++)
    free(pl.id[i]);
  free(pl.id);
  free(pl.type);
  if (rc != TWIN_OK)
    lots_free(out);
  return rc;
}

static const char *derive_status(const parking *p, int closed, int has_free,
                                 int64_t free_, int64_t total)
{
  double occ;
  if (closed)
    return "closed";
  if (!has_free)
    return "open";
  if (free_ <= 0)
    return "full";
  occ = total > 0 ? 1.0 - (double)free_ / (double)total : 0;
  if (occ >= p->almost_full)
    return "almostFull";
  return "spacesAvailable";
}

/* ------------------------------------------------------------------------ */
/* Ingest                                                                   */
/* ------------------------------------------------------------------------ */

/* One lot observation as parsed from any input format. Strings point into
 * the parsed document. */
typedef struct rec {
  const char *id, *name, *category, *opening;
  const char *type; /* T_OFF or T_GROUP; NULL: keep what is stored */
  double lat, lon, price;
  int has_pos, has_price, has_total, has_free, closed, nodata;
  int64_t total, free;
  twin_time time;
  char where[48];
} rec;

/* A number or a numeric string (ParkAPI2 sends coordinates as strings).
 * 1: ok, 0: absent or null, -1: malformed. */
static int json_num(const json_t *j, double *out)
{
  char *end;
  if (!j || json_is_null(j))
    return 0;
  if (json_is_number(j)) {
    *out = json_number_value(j);
    return 1;
  }
  if (json_is_string(j) && json_string_length(j) > 0 &&
      json_string_length(j) < 40) {
    *out = strtod(json_string_value(j), &end);
    if (*end == '\0' && isfinite(*out))
      return 1;
  }
  return -1;
}

/* A count: an integer (a real with no fraction passes). 1, 0 or -1. */
static int json_count(const json_t *j, int64_t *out)
{
  double x;
  if (!j || json_is_null(j))
    return 0;
  if (json_is_integer(j)) {
    *out = json_integer_value(j);
    return 1;
  }
  if (json_is_real(j)) {
    x = json_real_value(j);
    if (x == floor(x) && fabs(x) < 1e12) {
      *out = (int64_t)x;
      return 1;
    }
  }
  return -1;
}

typedef struct run {
  parking *p;
  twin_ctx *ctx;
  twin_time now;
  int seeding; /* open: static lots from the config, always created */
} run;

static int bad(run *r, const rec *c, const char *field, const char *what)
{
  return fail_field(r->p, r->ctx, TWIN_ERR_PARSE, field, "%s.%s: %s",
                    c->where, field, what);
}

/* Fields shared by every format: the id, counts, an optional name, place. */
static int parse_common(run *r, rec *c, const json_t *o, const char *id_key,
                        const char *total_key, const char *free_key,
                        const char *free_key2)
{
  const json_t *v;
  int k;
  if (!json_is_object(o))
    return fail(r->p, r->ctx, TWIN_ERR_PARSE, "%s: expected an object",
                c->where);
  v = json_object_get(o, id_key);
  if (json_is_integer(v))
    return bad(r, c, id_key, "expected a string");
  if (!valid_name(v))
    return bad(r, c, id_key, "expected a string of 1..200 bytes");
  c->id = json_string_value(v);
  if ((k = json_count(json_object_get(o, total_key), &c->total)) < 0)
    return bad(r, c, total_key, "expected an integer");
  c->has_total = k;
  k = json_count(json_object_get(o, free_key), &c->free);
  if (k == 0 && free_key2)
    k = json_count(json_object_get(o, free_key = free_key2), &c->free);
  if (k < 0)
    return bad(r, c, free_key, "expected an integer");
  c->has_free = k;
  v = json_object_get(o, "name");
  if (v && !json_is_null(v)) {
    if (!json_is_string(v) || json_string_length(v) > 200)
      return bad(r, c, "name", "expected a string of at most 200 bytes");
    c->name = json_string_value(v);
  }
  return TWIN_OK;
}

static int parse_pos(run *r, rec *c, const json_t *lat, const json_t *lon)
{
  int a = json_num(lat, &c->lat), b = json_num(lon, &c->lon);
  if (a < 0 || b < 0 || a != b)
    return bad(r, c, "lat", "expected numbers lat and lon together");
  if (a && (c->lat < -90 || c->lat > 90 || c->lon < -180 || c->lon > 180))
    return fail(r->p, r->ctx, TWIN_ERR_REJECTED,
                "lot '%.*s': position %g,%g is off the globe",
                shown_len(c->id, 60), c->id, c->lat, c->lon);
  c->has_pos = a;
  return TWIN_OK;
}

/* "open", "closed", "nodata"/"unknown" in any case. */
static int parse_state(run *r, rec *c, const json_t *v, const char *field)
{
  const char *s;
  if (!v || json_is_null(v))
    return TWIN_OK;
  if (!json_is_string(v))
    return bad(r, c, field, "expected a string");
  s = json_string_value(v);
  if (!strcasecmp(s, "closed"))
    c->closed = 1;
  else if (!strcasecmp(s, "nodata") || !strcasecmp(s, "unknown"))
    c->nodata = 1;
  else if (strcasecmp(s, "open") && strcasecmp(s, "spacesAvailable") &&
           strcasecmp(s, "almostFull") && strcasecmp(s, "full"))
    return bad(r, c, field, "expected open, closed, nodata or unknown");
  return TWIN_OK;
}

static int parse_rec_time(run *r, rec *c, const json_t *v, const char *field,
                          twin_time def)
{
  if (!v || json_is_null(v)) {
    c->time = def;
    return TWIN_OK;
  }
  if (!json_time(v, &c->time))
    return bad(r, c, field,
               "expected an RFC 3339 time or integer milliseconds");
  return TWIN_OK;
}

static const char *type_of_kind(const char *kind)
{
  if (!kind)
    return NULL;
  if (strstr(kind, "ON_STREET") || strstr(kind, "street") ||
      strstr(kind, "Street") || strstr(kind, "Stra"))
    return T_GROUP;
  return T_OFF;
}

/* A ParkAPI v1 lot: id, name, coords{lat,lng}, total, free, state,
 * lot_type. */
static int parse_v1(run *r, rec *c, const json_t *o, twin_time doc_time)
{
  const json_t *co;
  int rc;
  if ((rc = parse_common(r, c, o, "id", "total", "free", NULL)))
    return rc;
  co = json_object_get(o, "coords");
  if (co && !json_is_null(co)) {
    if (!json_is_object(co))
      return bad(r, c, "coords", "expected {\"lat\", \"lng\"}");
    if ((rc = parse_pos(r, c, json_object_get(co, "lat"),
                        json_object_get(co, "lng"))))
      return rc;
  }
  if ((rc = parse_state(r, c, json_object_get(o, "state"), "state")) ||
      (rc = parse_rec_time(r, c, json_object_get(o, "last_updated"),
                           "last_updated", doc_time)))
    return rc;
  co = json_object_get(o, "lot_type");
  if (co && !json_is_null(co)) {
    if (!json_is_string(co) || json_string_length(co) > 100)
      return bad(r, c, "lot_type", "expected a string");
    c->category = json_string_value(co);
    c->type = type_of_kind(c->category);
  }
  return TWIN_OK;
}

/* A ParkAPI2 lot or item: id, capacity, num_free / realtime_free_capacity,
 * status / realtime_opening_status, timestamp / realtime_data_updated_at,
 * lat, lon, type. */
static int parse_v2(run *r, rec *c, const json_t *o)
{
  const json_t *v;
  const char *tkey = "timestamp";
  int rc;
  if ((rc = parse_common(r, c, o, "id", "capacity", "realtime_free_capacity",
                         "num_free")))
    return rc;
  if ((rc = parse_pos(r, c, json_object_get(o, "lat"),
                      json_object_get(o, "lon"))))
    return rc;
  v = json_object_get(o, "realtime_opening_status");
  if ((rc = parse_state(r, c, v ? v : json_object_get(o, "status"),
                        v ? "realtime_opening_status" : "status")))
    return rc;
  v = json_object_get(o, "realtime_data_updated_at");
  if (v)
    tkey = "realtime_data_updated_at";
  else
    v = json_object_get(o, "timestamp");
  if ((rc = parse_rec_time(r, c, v, tkey, r->now)))
    return rc;
  v = json_object_get(o, "type");
  if (v && !json_is_null(v)) {
    if (!json_is_string(v) || json_string_length(v) > 100)
      return bad(r, c, "type", "expected a string");
    c->category = json_string_value(v);
    c->type = type_of_kind(c->category);
  }
  v = json_object_get(o, "has_realtime_data");
  if (json_is_false(v))
    c->has_free = 0;
  return TWIN_OK;
}

/* A single observation: {"lot", "free", "time", "total"?, "status"?}. */
static int parse_single(run *r, rec *c, const json_t *o)
{
  static const char *const keys[] = {"lot", "free", "time", "total", "status"};
  const char *key;
  json_t *v;
  size_t i;
  int rc;
  json_object_foreach((json_t *)o, key, v)
  {
    for (i = 0; i < 5 && strcmp(key, keys[i]); i++)
      ;
    if (i == 5)
      return fail(r->p, r->ctx, TWIN_ERR_PARSE,
                  "%.*s: unknown field (known: lot, free, time, total, "
                  "status)",
                  shown_len(key, 60), key);
  }
  if ((rc = parse_common(r, c, o, "lot", "total", "free", NULL)))
    return rc;
  if (!c->has_free)
    return bad(r, c, "free", "missing");
  if (!json_object_get(o, "time") || json_is_null(json_object_get(o, "time")))
    return bad(r, c, "time", "missing");
  if ((rc = parse_rec_time(r, c, json_object_get(o, "time"), "time", 0)) ||
      (rc = parse_state(r, c, json_object_get(o, "status"), "status")))
    return rc;
  return TWIN_OK;
}

/* Plausibility against the config and the stored lot, then the writes. */
static int apply_rec(run *r, rec *c)
{
  parking *p = r->p;
  const char *type;
  int rc, exists;
  lot l;
  int64_t total;
  int has_total;
  twin_attr a[10];
  size_t n = 0;
  char tb[40], sb[40];
  const int idn = shown_len(c->id, 60);

  if (c->has_total && (c->total < 0 || c->total > MAX_COUNT))
    return fail_field(p, r->ctx, TWIN_ERR_REJECTED, "total",
                "lot '%.*s': total %" PRId64 " is out of range 0..%d", idn,
                c->id, c->total, MAX_COUNT);
  if (c->has_free && c->free < 0)
    return fail_field(p, r->ctx, TWIN_ERR_REJECTED, "free",
                "lot '%.*s': free %" PRId64 " is negative", idn, c->id,
                c->free);
  type = lot_type_of(p, r->ctx, c->id, &rc);
  if (rc != TWIN_OK)
    return fail(p, r->ctx, rc, "lot '%.*s': reading it failed: %s", idn, c->id,
                status_name(rc));
  exists = type != NULL;
  if (!exists && !p->auto_create && !r->seeding)
    return fail_field(p, r->ctx, TWIN_ERR_REJECTED, "id",
                "lot '%.*s': unknown lot (auto_create is false)", idn, c->id);
  if (!type)
    type = c->type ? c->type : T_OFF;
  memset(&l, 0, sizeof l);
  if (exists)
    rc = lot_read(p, r->ctx, type, c->id, &l);
  free(l.id);
  free(l.name);
  free(l.category);
  free(l.status);
  if (rc != TWIN_OK)
    return fail(p, r->ctx, rc, "lot '%.*s': reading it failed: %s", idn, c->id,
                status_name(rc));
  total = c->has_total ? c->total : l.total;
  has_total = c->has_total || l.has_total;
  if (c->nodata)
    c->has_free = 0;
  if (c->has_free && !has_total)
    return fail_field(p, r->ctx, TWIN_ERR_REJECTED, "total",
                "lot '%.*s': free given but no total known", idn, c->id);
  if (c->has_free && c->free > total)
    return fail_field(p, r->ctx, TWIN_ERR_REJECTED, "free",
                "lot '%.*s': free %" PRId64 " > total %" PRId64, idn, c->id,
                c->free, total);
  if (c->time > r->now + p->future_slack_ms) {
    fmt_time(tb, sizeof tb, c->time);
    return fail_field(p, r->ctx, TWIN_ERR_REJECTED, "time",
                "lot '%.*s': time %s is more than %" PRId64 " s in the future",
                idn, c->id, tb, p->future_slack_ms / 1000);
  }
  if (c->has_free && l.has_free && c->time < l.time) {
    fmt_time(tb, sizeof tb, c->time);
    fmt_time(sb, sizeof sb, l.time);
    return fail_field(p, r->ctx, TWIN_ERR_REJECTED, "time",
                "lot '%.*s': time %s is older than the stored observation "
                "at %s",
                idn, c->id, tb, sb);
  }

  if (c->name)
    a[n++] =
        (twin_attr){"name", c->time, twin_string(c->name, strlen(c->name))};
  if (c->has_pos) {
    a[n++] = (twin_attr){"lat", c->time, twin_number(c->lat)};
    a[n++] = (twin_attr){"lon", c->time, twin_number(c->lon)};
  }
  if (c->category)
    a[n++] = (twin_attr){"category", c->time,
                         twin_string(c->category, strlen(c->category))};
  if (c->opening)
    a[n++] = (twin_attr){"openingHours", c->time,
                         twin_string(c->opening, strlen(c->opening))};
  if (c->has_price)
    a[n++] = (twin_attr){"price", c->time, twin_number(c->price)};
  if (has_total)
    a[n++] = (twin_attr){"totalSpotNumber", c->time, twin_integer(total)};
  if (c->has_free || c->closed || !exists) {
    const char *st = derive_status(p, c->closed, c->has_free, c->free, total);
    a[n++] = (twin_attr){"status", c->time, twin_string(st, strlen(st))};
  }
  if (c->has_free) {
    double occ = total > 0 ? 1.0 - (double)c->free / (double)total : 1.0;
    twin_attr o[2] = {{"availableSpotNumber", c->time, twin_integer(c->free)},
                      {"occupancy", c->time, twin_number(occ)}};
    a[n++] = o[0];
    a[n++] = o[1];
    rc = p->api->obs_append(r->ctx, type, c->id, o, 2);
    if (rc != TWIN_OK)
      return fail(p, r->ctx, rc, "lot '%.*s': history write failed: %s", idn,
                  c->id, status_name(rc));
  }
  if (n == 0)
    return TWIN_OK;
  rc = p->api->entity_put(r->ctx, type, c->id, a, n);
  if (rc != TWIN_OK)
    return fail(p, r->ctx, rc, "lot '%.*s': write failed: %s", idn, c->id,
                status_name(rc));
  return TWIN_OK;
}

/* Which format root is in, honouring a forced feed_format. */
static int detect(parking *p, const json_t *root)
{
  const json_t *lotsj = json_object_get(root, "lots"), *first;
  if (json_is_array(json_object_get(root, "items")))
    return FMT_V2;
  if (!json_is_array(lotsj))
    return json_object_get(root, "lot") ? 0 : -1;
  if (p->feed_format != FMT_AUTO)
    return p->feed_format;
  first = json_array_get(lotsj, 0);
  if (json_object_get(first, "capacity") ||
      json_object_get(first, "num_free") ||
      json_object_get(first, "realtime_free_capacity"))
    return FMT_V2;
  return FMT_V1;
}

/* Parse and apply one document (ingest). A lot that is malformed or
 * implausible is refused alone; any other failure drops every write of the
 * document. */
static int ingest_doc(parking *p, twin_ctx *ctx, const char *doc, size_t len)
{
  json_error_t jerr;
  json_t *root, *arr, *o;
  run r = {p, ctx, p->api->now(ctx), 0};
  twin_time doc_time = r.now;
  size_t i;
  int fmt, rc = TWIN_OK;
  const char *akey;
  rec c;

  root = json_loadb(doc, len, 0, &jerr);
  if (!root)
    return fail(p, ctx, TWIN_ERR_PARSE, "line %d, column %d: %s", jerr.line,
                jerr.column, jerr.text);
  if (!json_is_object(root) || (fmt = detect(p, root)) < 0) {
    rc = fail(p, ctx, TWIN_ERR_PARSE,
              "expected ParkAPI v1 {\"lots\": [...]}, ParkAPI2 {\"items\": "
              "[...]} or {\"lots\": [...]}, or an observation {\"lot\", "
              "\"free\", \"time\"}");
    goto done;
  }
  if (fmt == 0) {
    memset(&c, 0, sizeof c);
    snprintf(c.where, sizeof c.where, "observation");
    if (!(rc = parse_single(&r, &c, root)))
      rc = apply_rec(&r, &c);
    goto done;
  }
  akey = json_is_array(json_object_get(root, "items")) ? "items" : "lots";
  arr = json_object_get(root, akey);
  if (fmt == FMT_V1) {
    o = json_object_get(root, "last_updated");
    if (o && !json_is_null(o) && !json_time(o, &doc_time)) {
      rc = fail(p, ctx, TWIN_ERR_PARSE,
                "last_updated: expected an RFC 3339 time or integer "
                "milliseconds");
      goto done;
    }
  }
  if (json_array_size(arr) == 0) {
    rc = fail(p, ctx, TWIN_ERR_PARSE, "%s: empty", akey);
    goto done;
  }
  /* One implausible lot (a broken sensor) is refused alone: the other
   * lots' readings land (ABI 1.2 refuse_item; an older host gets the
   * whole snapshot refused, as before). */
  int can_refuse = TWIN_HAS_API(p->api, refuse_item), first_status = TWIN_OK;
  size_t stored = 0, refused = 0;
  char first[MSG_MAX] = "";
  json_array_foreach(arr, i, o)
  {
    memset(&c, 0, sizeof c);
    snprintf(c.where, sizeof c.where, "%s[%zu]", akey, i);
    rc = fmt == FMT_V1 ? parse_v1(&r, &c, o, doc_time) : parse_v2(&r, &c, o);
    if (rc == TWIN_OK)
      rc = apply_rec(&r, &c);
    if ((rc == TWIN_ERR_PARSE || rc == TWIN_ERR_REJECTED) && can_refuse &&
        !refused) {
      first_status = rc;
      snprintf(first, sizeof first, "%s", last_msg);
    }
    if ((rc == TWIN_ERR_PARSE || rc == TWIN_ERR_REJECTED) && can_refuse &&
        p->api->refuse_item(ctx, c.id ? c.id : c.where,
                            last_field[0] ? last_field : NULL,
                            rc == TWIN_ERR_PARSE ? "malformed" : "implausible",
                            last_msg) == TWIN_OK) {
      refused++;
      rc = TWIN_OK;
      continue;
    }
    if (rc != TWIN_OK)
      break;
    stored++;
  }
  if (rc == TWIN_OK && !stored && refused) /* fails as its first lot */
    rc = fail(p, ctx, first_status,
              "every lot of the snapshot was refused (%zu); the first: %s",
              refused, first);
done:
  json_decref(root);
  return rc;
}

static int parking_ingest(void *instance, twin_ctx *ctx, const char *doc,
                          size_t len)
{
  return ingest_doc(instance, ctx, doc, len);
}

/* Pull the ParkAPI feed (on a fetch thread, never the writer) and hand a
 * new snapshot to the pipeline; its ETag counts as seen only once the
 * snapshot was stored, so a rejected one is fetched whole next time. */
static int parking_fetch(void *instance, twin_ctx *ctx)
{
  parking *p = instance;
  if (!p->feed_url[0])
    return TWIN_OK;
#ifdef PARKING_HAVE_FEED
  {
    char why[512] = "", *body = NULL;
    size_t len = 0;
    int got, rc;
    twin_outcome out;
    if (!p->feed) {
      /* the pull's timeout: the plugin's, within the host's fetch timeout */
      int64_t left = -1;
      long ms = p->feed_timeout_ms;
      p->api->check_deadline(ctx, &left);
      if (left > 0 && left < ms)
        ms = left < 100 ? 100 : (long)left;
      if (!(p->feed = park_feed_new(p->feed_url, ms)))
        return fail(p, ctx, TWIN_ERR_CONFIG,
                    "feed_url must be an http:// or https:// URL (and "
                    "feed_timeout_ms 1..600000)");
    }
    got = park_feed_pull(p->feed, &body, &len, why, sizeof why);
    if (got < 0)
      return fail(p, ctx, TWIN_ERR_UNAVAILABLE, "feed: %s", why);
    if (got == 0)
      return TWIN_OK;
    memset(&out, 0, sizeof out);
    out.struct_size = sizeof out;
    rc = p->api->submit(p->src, NULL, body, len, &out);
    free(body);
    if (rc != TWIN_OK)
      return fail(p, ctx, rc, "feed: the snapshot could not be queued: %s",
                  status_name(rc));
    if (out.status != TWIN_OK)
      return fail(p, ctx, out.status, "feed: the snapshot was rejected: %s",
                  out.message);
    park_feed_accept(p->feed);
    return TWIN_OK;
  }
#else
  (void)ctx;
  return fail(p, ctx, TWIN_ERR_UNSUPPORTED,
              "feed_url is set but this build has no feed support (feed.c)");
#endif
}

/* ------------------------------------------------------------------------ */
/* Open and close                                                           */
/* ------------------------------------------------------------------------ */

static void parking_close(void *instance)
{
  parking *p = instance;
  if (!p)
    return;
#ifdef PARKING_HAVE_FEED
  if (p->feed)
    park_feed_free(p->feed);
#endif
  free(p->feed_url);
  free(p);
}

/* Store the static lots of the config (seeded in open). */
static int seed_lots(parking *p, twin_ctx *ctx, const json_t *arr)
{
  run r = {p, ctx, p->api->now(ctx), 1};
  size_t i;
  json_t *o, *v;
  int rc;
  json_array_foreach(arr, i, o)
  {
    rec c;
    memset(&c, 0, sizeof c);
    snprintf(c.where, sizeof c.where, "lots[%zu]", i);
    if ((rc = parse_common(&r, &c, o, "id", "total", "free", NULL)) ||
        (rc = parse_pos(&r, &c, json_object_get(o, "lat"),
                        json_object_get(o, "lon"))))
      return rc;
    c.time = r.now;
    c.category = json_string_value(json_object_get(o, "category"));
    c.opening = json_string_value(json_object_get(o, "openingHours"));
    c.type = type_of_kind(c.category);
    v = json_object_get(o, "price");
    if (json_is_number(v)) {
      c.price = json_number_value(v);
      c.has_price = 1;
    }
    /* Static data only: no observation, no time check. */
    c.has_free = 0;
    if ((rc = apply_rec(&r, &c)))
      return rc;
  }
  return TWIN_OK;
}

static int parking_open(const twin_host_api *api, twin_ctx *ctx,
                        const char *config_json, size_t config_len,
                        void **instance)
{
  parking *p = calloc(1, sizeof *p);
  json_error_t jerr;
  json_t *cfg;
  const char *fmt, *url;
  int rc;
  if (!p)
    return TWIN_ERR_NOMEM;
  p->api = api;
  /* Local hours come from the host: local_time is new in ABI 1.1. */
  if (offsetof(twin_host_api, local_time) >= api->struct_size ||
      !api->local_time) {
    fail(p, ctx, TWIN_ERR_UNSUPPORTED,
         "this host speaks ABI %u.%u without local_time; the parking plugin "
         "needs a host of ABI 1.1 or later",
         (unsigned)api->abi_major, (unsigned)api->abi_minor);
    free(p);
    return TWIN_ERR_UNSUPPORTED;
  }
  p->auto_create = 1;
  p->future_slack_ms = 300000;
  p->almost_full = 0.9;
  p->feed_timeout_ms = 10000;
  p->walk_speed = 1.3;
  cfg = json_loadb(config_json, config_len, 0, &jerr);
  if (!json_is_object(cfg)) {
    json_decref(cfg);
    fail(p, ctx, TWIN_ERR_CONFIG, "config: expected an object");
    free(p);
    return TWIN_ERR_CONFIG;
  }
  if (json_object_get(cfg, "auto_create"))
    p->auto_create = json_is_true(json_object_get(cfg, "auto_create"));
  if (json_is_integer(json_object_get(cfg, "future_slack_s")))
    p->future_slack_ms =
        json_integer_value(json_object_get(cfg, "future_slack_s")) * 1000;
  if (json_is_number(json_object_get(cfg, "almost_full")))
    p->almost_full = json_number_value(json_object_get(cfg, "almost_full"));
  if (json_is_integer(json_object_get(cfg, "feed_timeout_ms")))
    p->feed_timeout_ms =
        (long)json_integer_value(json_object_get(cfg, "feed_timeout_ms"));
  if (json_is_number(json_object_get(cfg, "walking_speed_m_s")))
    p->walk_speed =
        json_number_value(json_object_get(cfg, "walking_speed_m_s"));
  if (p->walk_speed <= 0)
    p->walk_speed = 1.3;
  fmt = json_string_value(json_object_get(cfg, "feed_format"));
  p->feed_format = fmt && !strcmp(fmt, "parkapi1")   ? FMT_V1
                   : fmt && !strcmp(fmt, "parkapi2") ? FMT_V2
                                                     : FMT_AUTO;
  url = json_string_value(json_object_get(cfg, "feed_url"));
  p->feed_url = strdup(url ? url : "");
  if (!p->feed_url) {
    json_decref(cfg);
    parking_close(p);
    return TWIN_ERR_NOMEM;
  }
  /* The feed is pulled by fetch (ABI 1.2), off the writer thread. */
  if (p->feed_url[0] &&
      (!TWIN_HAS_API(api, submit) || api->source(ctx, &p->src) != TWIN_OK)) {
    json_decref(cfg);
    fail(p, ctx, TWIN_ERR_CONFIG,
         "feed_url needs a host of ABI 1.2 or later (this one speaks %u.%u)",
         (unsigned)api->abi_major, (unsigned)api->abi_minor);
    parking_close(p);
    return TWIN_ERR_CONFIG;
  }
  rc = seed_lots(p, ctx, json_object_get(cfg, "lots"));
  json_decref(cfg);
  if (rc != TWIN_OK) {
    parking_close(p);
    return rc == TWIN_ERR_NOMEM ? rc : TWIN_ERR_CONFIG;
  }
  *instance = p;
  return TWIN_OK;
}

/* ------------------------------------------------------------------------ */
/* History, profile, forecast                                               */
/* ------------------------------------------------------------------------ */

typedef struct series {
  twin_time *t;
  double *v;
  size_t n, cap;
} series;

static void series_free(series *s)
{
  free(s->t);
  free(s->v);
  memset(s, 0, sizeof *s);
}

static int series_cb(void *ud, const twin_attr *a)
{
  series *s = ud;
  double x;
  if (!num_of(&a->value, &x))
    return TWIN_OK;
  if (s->n == s->cap) {
    size_t cap = s->cap ? s->cap * 2 : 64;
    void *t = realloc(s->t, cap * sizeof *s->t);
    if (!t)
      return TWIN_ERR_NOMEM;
    s->t = t;
    t = realloc(s->v, cap * sizeof *s->v);
    if (!t)
      return TWIN_ERR_NOMEM;
    s->v = t;
    s->cap = cap;
  }
  s->t[s->n] = a->time;
  s->v[s->n++] = x;
  return TWIN_OK;
}

static int series_load(parking *p, twin_ctx *ctx, const lot *l,
                       const char *attr, twin_time from, twin_time to,
                       series *s)
{
  memset(s, 0, sizeof *s);
  if (from >= to)
    return TWIN_OK;
  return p->api->history_range(ctx, l->type, l->id, attr, from, to, 0,
                               series_cb, s);
}

/* Typical occupancy by local weekday (0 = Sunday) and hour: the mean of
 * the hourly means of the observations in each cell. */
typedef struct profile {
  double mean[7][24];
  int hours[7][24]; /* hourly means that went into the cell */
  size_t samples;
} profile;

static int profile_build(parking *p, twin_ctx *ctx, const lot *l,
                         twin_time from, twin_time to, profile *pr)
{
  series s;
  local_hour *lh = NULL;
  size_t i, j;
  int rc, w, h;
  memset(pr, 0, sizeof *pr);
  rc = series_load(p, ctx, l, "occupancy", from, to, &s);
  if (rc == TWIN_OK && s.n) {
    lh = malloc(s.n * sizeof *lh);
    if (!lh)
      rc = TWIN_ERR_NOMEM;
    else if (!local_hours(p, ctx, s.t, s.n, lh))
      rc = TWIN_ERR_INTERNAL;
  }
  for (i = 0; rc == TWIN_OK && i < s.n; i = j) {
    double sum = 0;
    if ((i & 4095) == 0 && (rc = past_deadline(p, ctx)) != TWIN_OK)
      break;
    for (j = i; j < s.n && lh[j].key == lh[i].key; j++)
      sum += s.v[j];
    w = lh[i].wday;
    h = lh[i].hour;
    pr->mean[w][h] += sum / (double)(j - i);
    pr->hours[w][h]++;
  }
  if (rc == TWIN_OK) {
    pr->samples = s.n;
    for (w = 0; w < 7; w++)
      for (h = 0; h < 24; h++)
        if (pr->hours[w][h])
          pr->mean[w][h] /= pr->hours[w][h];
  }
  free(lh);
  series_free(&s);
  return rc;
}

/* Today's deviation: the mean of (observed occupancy − profile cell) over
 * the observations of the last 3 hours whose cell has data. */
typedef struct deviation {
  double value;
  size_t samples;
} deviation;

static int deviation_of(parking *p, twin_ctx *ctx, const lot *l,
                        const profile *pr, twin_time now, deviation *d)
{
  series s;
  local_hour *lh = NULL;
  size_t i;
  double sum = 0;
  int rc;
  memset(d, 0, sizeof *d);
  rc = series_load(p, ctx, l, "occupancy", now - DEV_WINDOW_MS, now + 1, &s);
  if (rc == TWIN_OK && s.n) {
    lh = malloc(s.n * sizeof *lh);
    if (!lh)
      rc = TWIN_ERR_NOMEM;
    else if (!local_hours(p, ctx, s.t, s.n, lh))
      rc = TWIN_ERR_INTERNAL;
  }
  for (i = 0; rc == TWIN_OK && i < s.n; i++) {
    if (!pr->hours[lh[i].wday][lh[i].hour])
      continue;
    sum += s.v[i] - pr->mean[lh[i].wday][lh[i].hour];
    d->samples++;
  }
  if (d->samples)
    d->value = sum / (double)d->samples;
  free(lh);
  series_free(&s);
  return rc;
}

static double clamp01(double x)
{
  return x < 0 ? 0 : x > 1 ? 1 : x;
}

/* A forecast of one lot at time t. The profile is built from the 4 weeks
 * before the deviation window, so today's readings do not feed both. */
typedef struct forecast {
  int wday, hour, has_profile;
  double profile_occ, deviation, occ;
  size_t dev_samples;
  int64_t free_;
  const char *basis;
} forecast;

static int forecast_lot(parking *p, twin_ctx *ctx, const lot *l, twin_time t,
                        twin_time now, forecast *f)
{
  profile pr;
  deviation d;
  local_hour lh;
  int rc;
  memset(f, 0, sizeof *f);
  rc = profile_build(p, ctx, l, now - 4 * WEEK_MS, now - DEV_WINDOW_MS, &pr);
  if (rc == TWIN_OK)
    rc = deviation_of(p, ctx, l, &pr, now, &d);
  if (rc != TWIN_OK)
    return rc;
  if (!local_hours(p, ctx, &t, 1, &lh))
    return TWIN_ERR_INTERNAL;
  f->wday = lh.wday;
  f->hour = lh.hour;
  f->deviation = d.value;
  f->dev_samples = d.samples;
  if (pr.hours[lh.wday][lh.hour]) {
    f->has_profile = 1;
    f->profile_occ = pr.mean[lh.wday][lh.hour];
    f->occ = clamp01(f->profile_occ + d.value);
    f->basis = "profile";
  } else {
    f->occ = l->has_occ ? l->occ : 0;
    f->deviation = 0;
    f->basis = l->has_occ ? "current" : "none";
  }
  f->free_ = (int64_t)llround((double)l->total * (1.0 - f->occ));
  if (f->free_ < 0)
    f->free_ = 0;
  if (f->free_ > l->total)
    f->free_ = l->total;
  return TWIN_OK;
}

/* ------------------------------------------------------------------------ */
/* Replies                                                                  */
/* ------------------------------------------------------------------------ */

static int respond_json(parking *p, twin_ctx *ctx, json_t *reply)
{
  char *text;
  int rc;
  if (!reply)
    return fail(p, ctx, TWIN_ERR_NOMEM, "out of memory");
  text = json_dumps(reply,
                    JSON_COMPACT | JSON_ENCODE_ANY | JSON_REAL_PRECISION(12));
  json_decref(reply);
  if (!text)
    return fail(p, ctx, TWIN_ERR_NOMEM, "out of memory");
  rc = p->api->respond(ctx, text, strlen(text));
  free(text);
  if (rc != TWIN_OK)
    return fail(p, ctx, rc, "respond failed: %s", status_name(rc));
  return TWIN_OK;
}

static json_t *str_or_null(const char *s)
{
  json_t *j = s ? json_string(s) : NULL;
  return j ? j : json_null();
}

/* A lot's current state as a reply object. */
static json_t *lot_json(const lot *l)
{
  json_t *o = json_object();
  if (!o)
    return NULL;
  json_object_set_new(o, "id", json_string(l->id));
  json_object_set_new(o, "type", json_string(l->type));
  json_object_set_new(o, "name", str_or_null(l->name));
  json_object_set_new(o, "lat", l->has_pos ? json_real(l->lat) : json_null());
  json_object_set_new(o, "lon", l->has_pos ? json_real(l->lon) : json_null());
  json_object_set_new(o, "total",
                      l->has_total ? json_integer(l->total) : json_null());
  json_object_set_new(o, "free",
                      l->has_free ? json_integer(l->free) : json_null());
  json_object_set_new(o, "occupancy",
                      l->has_occ ? json_real(l->occ) : json_null());
  json_object_set_new(o, "status", str_or_null(l->status));
  json_object_set_new(o, "category", str_or_null(l->category));
  json_object_set_new(o, "price",
                      l->has_price ? json_real(l->price) : json_null());
  json_object_set_new(o, "time",
                      l->has_free ? time_to_json(l->time) : json_null());
  return o;
}

static const lot *lot_find(const lots *ls, const char *id)
{
  size_t i;
  for (i = 0; i < ls->n; i++)
    if (!strcmp(ls->v[i].id, id))
      return &ls->v[i];
  return NULL;
}

/* Request fields. */
static int req_time(parking *p, twin_ctx *ctx, const json_t *req,
                    const char *key, twin_time def, int required,
                    twin_time *out)
{
  const json_t *v = json_object_get(req, key);
  if (!v) {
    if (required)
      return fail(p, ctx, TWIN_ERR_INVALID, "%s: missing", key);
    *out = def;
    return TWIN_OK;
  }
  if (!json_time(v, out))
    return fail(p, ctx, TWIN_ERR_INVALID,
                "%s: expected an RFC 3339 time or integer milliseconds", key);
  return TWIN_OK;
}

static int req_num(parking *p, twin_ctx *ctx, const json_t *req,
                   const char *key, double lo, double hi, double *out)
{
  const json_t *v = json_object_get(req, key);
  if (!json_is_number(v) || json_number_value(v) < lo ||
      json_number_value(v) > hi)
    return fail(p, ctx, TWIN_ERR_INVALID, "%s: expected a number %g..%g", key,
                lo, hi);
  *out = json_number_value(v);
  return TWIN_OK;
}

/* The lot a request names ("lot"), from ls. */
static int req_lot(parking *p, twin_ctx *ctx, const json_t *req, const lots *ls,
                   const lot **out)
{
  const json_t *v = json_object_get(req, "lot");
  if (!valid_name(v))
    return fail(p, ctx, TWIN_ERR_INVALID, "lot: expected a lot id");
  *out = lot_find(ls, json_string_value(v));
  if (!*out) {
    char msg[MSG_MAX];
    snprintf(msg, sizeof msg, "lot '%.*s': no such lot (the op now lists them)",
             shown_len(json_string_value(v), 60), json_string_value(v));
    if (TWIN_HAS_API(p->api, fail))
      p->api->fail(ctx, "unknown_lot", "lot", msg);
    else
      p->api->set_error(ctx, msg);
    return TWIN_ERR_NOT_FOUND;
  }
  return TWIN_OK;
}

/* ------------------------------------------------------------------------ */
/* Queries                                                                  */
/* ------------------------------------------------------------------------ */

static int query_now(parking *p, twin_ctx *ctx, const lots *ls)
{
  json_t *arr = json_array();
  size_t i;
  for (i = 0; arr && i < ls->n; i++)
    if (json_array_append_new(arr, lot_json(&ls->v[i]))) {
      json_decref(arr);
      arr = NULL;
    }
  return respond_json(p, ctx, arr ? json_pack("{s:o}", "lots", arr) : NULL);
}

static int query_lot(parking *p, twin_ctx *ctx, const json_t *req,
                     const lots *ls)
{
  const lot *l;
  twin_time now = p->api->now(ctx), from, to;
  series fr, oc;
  json_t *hist, *o;
  size_t i, j;
  int rc;
  if ((rc = req_lot(p, ctx, req, ls, &l)) ||
      (rc = req_time(p, ctx, req, "from", now - DAY_MS, 0, &from)) ||
      (rc = req_time(p, ctx, req, "to", now + 1, 0, &to)))
    return rc;
  if (from >= to)
    return fail(p, ctx, TWIN_ERR_INVALID, "from must be before to");
  rc = series_load(p, ctx, l, "availableSpotNumber", from, to, &fr);
  if (rc == TWIN_OK)
    rc = series_load(p, ctx, l, "occupancy", from, to, &oc);
  else
    memset(&oc, 0, sizeof oc);
  hist = json_array();
  for (i = 0, j = 0; rc == TWIN_OK && hist && i < fr.n; i++) {
    while (j < oc.n && oc.t[j] < fr.t[i])
      j++;
    json_array_append_new(
        hist, json_pack("{s:o,s:I,s:o}", "time", time_to_json(fr.t[i]), "free",
                        (json_int_t)fr.v[i], "occupancy",
                        j < oc.n && oc.t[j] == fr.t[i] ? json_real(oc.v[j])
                                                       : json_null()));
  }
  series_free(&fr);
  series_free(&oc);
  if (rc != TWIN_OK) {
    json_decref(hist);
    return fail(p, ctx, rc, "history of lot '%s': %s", l->id, status_name(rc));
  }
  o = lot_json(l);
  if (o && hist)
    json_object_set_new(o, "history", hist);
  else
    json_decref(hist);
  return respond_json(p, ctx, o);
}

static int query_profile(parking *p, twin_ctx *ctx, const json_t *req,
                         const lots *ls)
{
  const lot *l;
  const char *tz = town_tz(p, ctx);
  twin_time now = p->api->now(ctx), from, to;
  profile pr;
  json_t *days;
  int rc, w, h;
  if ((rc = req_lot(p, ctx, req, ls, &l)) ||
      (rc = req_time(p, ctx, req, "from", now - 4 * WEEK_MS, 0, &from)) ||
      (rc = req_time(p, ctx, req, "to", now + 1, 0, &to)))
    return rc;
  if (from >= to)
    return fail(p, ctx, TWIN_ERR_INVALID, "from must be before to");
  if ((rc = profile_build(p, ctx, l, from, to, &pr)))
    return fail(p, ctx, rc, "profile of lot '%s': %s", l->id, status_name(rc));
  days = json_array();
  for (w = 0; days && w < 7; w++) {
    json_t *hours = json_array();
    for (h = 0; hours && h < 24; h++)
      json_array_append_new(hours, pr.hours[w][h] ? json_real(pr.mean[w][h])
                                                  : json_null());
    json_array_append_new(days, hours ? hours : json_null());
  }
  return respond_json(p, ctx,
                      days ? json_pack("{s:s,s:s,s:s,s:I,s:o}", "lot", l->id,
                                       "timezone", tz, "weekday0", "Sunday",
                                       "samples", (json_int_t)pr.samples,
                                       "profile", days)
                           : NULL);
}

static json_t *forecast_json(const lot *l, twin_time t, const forecast *f)
{
  return json_pack("{s:s,s:o,s:i,s:i,s:s,s:o,s:f,s:I,s:f,s:I,s:I}", "lot",
                   l->id, "time", time_to_json(t), "weekday", f->wday, "hour",
                   f->hour, "basis", f->basis, "profile_occupancy",
                   f->has_profile ? json_real(f->profile_occ) : json_null(),
                   "deviation", f->deviation, "deviation_samples",
                   (json_int_t)f->dev_samples, "expected_occupancy", f->occ,
                   "expected_free", (json_int_t)f->free_, "total",
                   (json_int_t)l->total);
}

static int query_forecast(parking *p, twin_ctx *ctx, const json_t *req,
                          const lots *ls)
{
  const lot *l;
  twin_time now = p->api->now(ctx), t;
  forecast f;
  int rc;
  if ((rc = req_lot(p, ctx, req, ls, &l)) ||
      (rc = req_time(p, ctx, req, "time", 0, 1, &t)))
    return rc;
  if ((rc = forecast_lot(p, ctx, l, t, now, &f)))
    return fail(p, ctx, rc, "forecast of lot '%s': %s", l->id, status_name(rc));
  return respond_json(p, ctx, forecast_json(l, t, &f));
}

typedef struct price_reply {
  double v;
  int ok;
} price_reply;

static int price_cb(void *ud, const char *json, size_t len)
{
  price_reply *pr = ud;
  json_t *j = json_loadb(json, len, JSON_DECODE_ANY, NULL);
  if (json_is_number(j) && json_number_value(j) >= 0) {
    pr->v = json_number_value(j);
    pr->ok = 1;
  }
  json_decref(j);
  return TWIN_OK;
}

/* The hourly price of lot l at local hour: the town's "price" rule when it
 * has one, else the lot's static price (0 when none). */
static double lot_price(parking *p, twin_ctx *ctx, const lot *l, twin_time t,
                        const char **source)
{
  char *args;
  json_t *a;
  price_reply pr = {0, 0};
  int rc = TWIN_ERR_UNSUPPORTED;
  /* The moment itself, not its hour: the rule then knows the weekday too
   * (a Sunday or market-day price). */
  a = json_pack("[s,I]", l->id, (json_int_t)t);
  args = a ? json_dumps(a, JSON_COMPACT) : NULL;
  json_decref(a);
  if (args && p->api->call_script)
    rc = p->api->call_script(ctx, "price", args, strlen(args), price_cb, &pr);
  free(args);
  if (rc == TWIN_OK && pr.ok) {
    *source = "script";
    return pr.v;
  }
  *source = l->has_price ? "static" : "none";
  return l->has_price ? l->price : 0;
}

typedef struct cand {
  const lot *l;
  double dist, walk_min, price, score;
  int64_t expected;
  const char *price_src;
} cand;

static int cand_cmp(const void *a, const void *b)
{
  const cand *x = a, *y = b;
  if (x->score != y->score)
    return x->score < y->score ? -1 : 1;
  return strcmp(x->l->id, y->l->id);
}

/*
 * Guidance: lots with space near a point, ranked by a cost in minutes
 * (lower is better): walk_min + 5 × price per hour + 50 / (expected_free +
 * 1). Walking dominates near the point; price and scarcity break ties
 * between lots a few minutes apart.
 */
static int query_guidance(parking *p, twin_ctx *ctx, const json_t *req,
                          const lots *ls)
{
  twin_time now = p->api->now(ctx), t;
  double lat = 0, lon = 0;
  json_int_t limit = 5;
  const json_t *lj = json_object_get(req, "limit");
  cand *cs;
  size_t i, n = 0;
  local_hour lh;
  json_t *arr;
  int rc, future;
  if ((rc = req_num(p, ctx, req, "lat", -90, 90, &lat)) ||
      (rc = req_num(p, ctx, req, "lon", -180, 180, &lon)) ||
      (rc = req_time(p, ctx, req, "time", now, 0, &t)))
    return rc;
  if (lj) {
    if (!json_is_integer(lj) || json_integer_value(lj) < 1 ||
        json_integer_value(lj) > 100)
      return fail(p, ctx, TWIN_ERR_INVALID,
                  "limit: expected an integer 1..100");
    limit = json_integer_value(lj);
  }
  future = t > now + STEP_MS;
  if (!local_hours(p, ctx, &t, 1, &lh))
    return fail(p, ctx, TWIN_ERR_INTERNAL, "local time of 'time' unavailable");
  cs = calloc(ls->n ? ls->n : 1, sizeof *cs);
  if (!cs)
    return fail(p, ctx, TWIN_ERR_NOMEM, "out of memory");
  for (i = 0; i < ls->n; i++) {
    const lot *l = &ls->v[i];
    cand *c = &cs[n];
    if (!l->has_pos || !l->has_total ||
        (l->status && !strcmp(l->status, "closed")))
      continue;
    if (future) {
      forecast f;
      if ((rc = forecast_lot(p, ctx, l, t, now, &f))) {
        free(cs);
        return fail(p, ctx, rc, "forecast of lot '%s': %s", l->id,
                    status_name(rc));
      }
      c->expected = f.free_;
    } else {
      if (!l->has_free)
        continue;
      c->expected = l->free;
    }
    if (c->expected <= 0)
      continue;
    c->l = l;
    c->dist = twinaux_distance_m(lat, lon, l->lat, l->lon);
    c->walk_min = c->dist / p->walk_speed / 60.0;
    c->price = lot_price(p, ctx, l, t, &c->price_src);
    c->score = c->walk_min + 5.0 * c->price + 50.0 / ((double)c->expected + 1);
    n++;
  }
  qsort(cs, n, sizeof *cs, cand_cmp);
  arr = json_array();
  for (i = 0; arr && i < n && i < (size_t)limit; i++)
    json_array_append_new(
        arr, json_pack("{s:s,s:s*,s:f,s:f,s:I,s:f,s:s,s:f}", "lot", cs[i].l->id,
                       "name", cs[i].l->name, "distance_m", round(cs[i].dist),
                       "walk_min", round(cs[i].walk_min * 10) / 10,
                       "expected_free", (json_int_t)cs[i].expected, "price",
                       cs[i].price, "price_source", cs[i].price_src, "score",
                       round(cs[i].score * 100) / 100));
  free(cs);
  return respond_json(
      p, ctx,
      arr ? json_pack("{s:o,s:o,s:s,s:o}", "time", time_to_json(t), "forecast",
                      json_boolean(future), "ranking",
                      "walk_min + 5*price + 50/(free+1)", "lots", arr)
          : NULL);
}

static int parking_query(void *instance, twin_ctx *ctx, const char *request,
                         size_t len)
{
  parking *p = instance;
  json_error_t jerr;
  json_t *req;
  const char *op;
  lots ls;
  int rc;
  req = json_loadb(request, len, 0, &jerr);
  if (!req)
    return fail(p, ctx, TWIN_ERR_PARSE, "line %d, column %d: %s", jerr.line,
                jerr.column, jerr.text);
  op = json_string_value(json_object_get(req, "op"));
  if (!op) {
    json_decref(req);
    return fail(p, ctx, TWIN_ERR_INVALID,
                "expected {\"op\": ...} with op one of now, lot, profile, "
                "forecast, guidance");
  }
  if (strcmp(op, "now") && strcmp(op, "lot") && strcmp(op, "profile") &&
      strcmp(op, "forecast") && strcmp(op, "guidance")) {
    rc = fail(p, ctx, TWIN_ERR_INVALID,
              "unknown op '%.*s' (known: now, lot, profile, forecast, "
              "guidance)",
              shown_len(op, 60), op);
    json_decref(req);
    return rc;
  }
  if ((rc = lots_load(p, ctx, &ls)) != TWIN_OK) {
    json_decref(req);
    return fail(p, ctx, rc, "reading the lots failed: %s", status_name(rc));
  }
  if (!strcmp(op, "now"))
    rc = query_now(p, ctx, &ls);
  else if (!strcmp(op, "lot"))
    rc = query_lot(p, ctx, req, &ls);
  else if (!strcmp(op, "profile"))
    rc = query_profile(p, ctx, req, &ls);
  else if (!strcmp(op, "forecast"))
    rc = query_forecast(p, ctx, req, &ls);
  else
    rc = query_guidance(p, ctx, req, &ls);
  lots_free(&ls);
  json_decref(req);
  return rc;
}

/* ------------------------------------------------------------------------ */
/* Scenarios                                                                */
/* ------------------------------------------------------------------------ */

/* Per-lot state of a scenario run. */
typedef struct sim_lot {
  const lot *l;
  int64_t cap; /* baseline capacity */
  double b_sum, s_sum, b_peak, s_peak;
  int64_t b_cars_peak, s_cars_peak;
  json_t *overflow;  /* [{"from","to"}] */
  twin_time of_from; /* open overflow interval, or -1 */
} sim_lot;

typedef struct order {
  size_t i;
  double d;
} order;

static int order_cmp(const void *a, const void *b)
{
  const order *x = a, *y = b;
  return x->d < y->d ? -1 : x->d > y->d;
}

/* Lots with a position ordered by distance from (lat, lon), skipping skip. */
static size_t by_distance(const sim_lot *sl, size_t n, double lat, double lon,
                          size_t skip, order *out)
{
  size_t i, k = 0;
  for (i = 0; i < n; i++) {
    if (i == skip || !sl[i].l->has_pos)
      continue;
    out[k].i = i;
    out[k++].d = twinaux_distance_m(lat, lon, sl[i].l->lat, sl[i].l->lon);
  }
  qsort(out, k, sizeof *out, order_cmp);
  return k;
}

/* Put count cars into the nearest lots with space; returns the cars left
 * over, adds the walking metres of those placed to *walk (minus base_d
 * per car). */
static int64_t place(const order *ord, size_t n_ord, const int64_t *cap,
                     int64_t *cars, int64_t count, double base_d, double *walk,
                     int64_t *placed)
{
  size_t k;
  for (k = 0; k < n_ord && count > 0; k++) {
    size_t i = ord[k].i;
    int64_t room = cap[i] - cars[i], take;
    if (room <= 0)
      continue;
    take = room < count ? room : count;
    cars[i] += take;
    count -= take;
    *placed += take;
    *walk += (double)take * (ord[k].d - base_d);
  }
  return count;
}

static json_t *occ_json(int64_t cars, int64_t total)
{
  return total > 0
             ? json_real(round((double)cars / (double)total * 1000) / 1000)
             : json_null();
}

static int parking_simulate(void *instance, twin_ctx *ctx, const char *scenario,
                            size_t len)
{
  parking *p = instance;
  json_error_t jerr;
  json_t *sc, *reply = NULL, *lots_out = NULL, *after = NULL;
  const char *type;
  twin_time now = p->api->now(ctx), from, to, *st = NULL;
  twin_time un_peak_t = 0, walk_t = 0;
  lots ls;
  sim_lot *sl = NULL;
  order *ord = NULL;
  local_hour *lh = NULL;
  double *base = NULL, elat = 0, elon = 0, walk_peak = 0, base_d = 0;
  int64_t *cap = NULL, *cars = NULL, *peak_cars = NULL, *peak_cap = NULL;
  int64_t n_cars = 0, capacity = 0, un_peak = 0, un_end = 0;
  int64_t moved_peak = -1, moved_at_peak = 0;
  size_t steps, i, k, n_ord = 0, closed = (size_t)-1;
  int closure, rc;

  memset(&ls, 0, sizeof ls);
  sc = json_loadb(scenario, len, 0, &jerr);
  if (!sc)
    return fail(p, ctx, TWIN_ERR_PARSE, "line %d, column %d: %s", jerr.line,
                jerr.column, jerr.text);
  /* the host names the declared op in "op" */
  type = json_string_value(json_object_get(sc, "op"));
  if (!json_is_object(sc) || !type ||
      (strcmp(type, "closure") && strcmp(type, "event"))) {
    rc = fail(p, ctx, TWIN_ERR_INVALID,
              "expected {\"op\": \"closure\" | \"event\", ...}");
    goto done;
  }
  closure = !strcmp(type, "closure");
  if ((rc = req_time(p, ctx, sc, "from", 0, 1, &from)) ||
      (rc = req_time(p, ctx, sc, "to", 0, 1, &to)))
    goto done;
  if (from >= to || (to - from + STEP_MS - 1) / STEP_MS > MAX_STEPS) {
    rc = fail(p, ctx, TWIN_ERR_INVALID,
              "from must be before to, at most 7 days apart");
    goto done;
  }
  steps = (size_t)((to - from + STEP_MS - 1) / STEP_MS);
  if ((rc = lots_load(p, ctx, &ls)) != TWIN_OK) {
    rc = fail(p, ctx, rc, "reading the lots failed: %s", status_name(rc));
    goto done;
  }
  if (closure) {
    const lot *cl;
    const json_t *cj = json_object_get(sc, "capacity");
    if ((rc = req_lot(p, ctx, sc, &ls, &cl)))
      goto done;
    closed = (size_t)(cl - ls.v);
    if (cj && (!json_is_integer(cj) || json_integer_value(cj) < 0 ||
               json_integer_value(cj) > MAX_COUNT)) {
      rc = fail(p, ctx, TWIN_ERR_INVALID, "capacity: expected an integer 0..%d",
                MAX_COUNT);
      goto done;
    }
    capacity = cj ? json_integer_value(cj) : 0;
  } else {
    const json_t *cj = json_object_get(sc, "cars");
    if ((rc = req_num(p, ctx, sc, "lat", -90, 90, &elat)) ||
        (rc = req_num(p, ctx, sc, "lon", -180, 180, &elon)))
      goto done;
    if (!json_is_integer(cj) || json_integer_value(cj) < 1 ||
        json_integer_value(cj) > MAX_COUNT) {
      rc = fail(p, ctx, TWIN_ERR_INVALID, "cars: expected an integer 1..%d",
                MAX_COUNT);
      goto done;
    }
    n_cars = json_integer_value(cj);
  }

  sl = calloc(ls.n + 1, sizeof *sl);
  ord = calloc(ls.n + 1, sizeof *ord);
  cap = calloc(ls.n + 1, sizeof *cap);
  cars = calloc(ls.n + 1, sizeof *cars);
  peak_cars = calloc(ls.n + 1, sizeof *peak_cars);
  peak_cap = calloc(ls.n + 1, sizeof *peak_cap);
  base = calloc((ls.n + 1) * steps, sizeof *base);
  st = calloc(steps, sizeof *st);
  lh = calloc(steps, sizeof *lh);
  if (!sl || !ord || !cap || !cars || !peak_cars || !peak_cap || !base || !st ||
      !lh) {
    rc = fail(p, ctx, TWIN_ERR_NOMEM, "out of memory");
    goto done;
  }
  for (k = 0; k < steps; k++)
    st[k] = from + (twin_time)k * STEP_MS;
  if (!local_hours(p, ctx, st, steps, lh)) {
    rc = fail(p, ctx, TWIN_ERR_INTERNAL, "local time of the steps unavailable");
    goto done;
  }
  /* Baseline occupancy: the profile cell of each step, else the current
   * state. */
  for (i = 0; i < ls.n; i++) {
    const lot *l = &ls.v[i];
    profile pr;
    sl[i].l = l;
    sl[i].of_from = -1;
    sl[i].cap = l->has_total && !(l->status && !strcmp(l->status, "closed"))
                    ? l->total
                    : 0;
    if ((rc = past_deadline(p, ctx)) != TWIN_OK)
      goto done;
    if ((rc = profile_build(p, ctx, l, now - 4 * WEEK_MS, now + 1, &pr))) {
      rc = fail(p, ctx, rc, "profile of lot '%s': %s", l->id, status_name(rc));
      goto done;
    }
    for (k = 0; k < steps; k++)
      base[i * steps + k] = pr.hours[lh[k].wday][lh[k].hour]
                                ? pr.mean[lh[k].wday][lh[k].hour]
                            : l->has_occ ? l->occ
                                         : 0;
  }
  if (closure && ls.v[closed].has_pos)
    n_ord =
        by_distance(sl, ls.n, ls.v[closed].lat, ls.v[closed].lon, closed, ord);
  else if (!closure)
    n_ord = by_distance(sl, ls.n, elat, elon, (size_t)-1, ord);
  if (!closure)
    for (k = 0; k < n_ord; k++)
      if (sl[ord[k].i].cap > 0) {
        base_d = ord[k].d;
        break;
      }

  for (k = 0; k < steps; k++) {
    int64_t left = 0, moved = 0, demand;
    double walk = 0;
    /* a week of steps over many lots is long: stop at the deadline */
    if ((rc = past_deadline(p, ctx)) != TWIN_OK)
      goto done;
    for (i = 0; i < ls.n; i++) {
      cap[i] = sl[i].cap;
      cars[i] = (int64_t)llround(base[i * steps + k] * (double)sl[i].cap);
      if (cars[i] > cap[i])
        cars[i] = cap[i];
      sl[i].b_sum += sl[i].cap ? (double)cars[i] / (double)sl[i].cap : 0;
      if (cars[i] >= sl[i].b_cars_peak) {
        sl[i].b_cars_peak = cars[i];
        sl[i].b_peak = sl[i].cap ? (double)cars[i] / (double)sl[i].cap : 0;
      }
    }
    if (closure) {
      cap[closed] = capacity < sl[closed].cap ? capacity : sl[closed].cap;
      demand = cars[closed] - cap[closed];
      if (demand > 0) {
        cars[closed] = cap[closed];
        left = place(ord, n_ord, cap, cars, demand, 0, &walk, &moved);
      }
    } else {
      demand =
          (int64_t)llround((double)n_cars * (double)(k + 1) / (double)steps);
      left = place(ord, n_ord, cap, cars, demand, base_d, &walk, &moved);
    }
    for (i = 0; i < ls.n; i++) {
      int64_t bcars = (int64_t)llround(base[i * steps + k] * (double)sl[i].cap);
      int over;
      if (bcars > sl[i].cap)
        bcars = sl[i].cap;
      sl[i].s_sum += sl[i].cap ? (double)cars[i] / (double)sl[i].cap : 0;
      if (cars[i] >= sl[i].s_cars_peak) {
        sl[i].s_cars_peak = cars[i];
        sl[i].s_peak = sl[i].cap ? (double)cars[i] / (double)sl[i].cap : 0;
      }
      over = (closure && i == closed && demand > 0) ||
             (cars[i] >= cap[i] && bcars < sl[i].cap && cars[i] != bcars);
      if (over && sl[i].of_from < 0)
        sl[i].of_from = st[k];
      if ((!over || k + 1 == steps) && sl[i].of_from >= 0) {
        if (!sl[i].overflow)
          sl[i].overflow = json_array();
        json_array_append_new(sl[i].overflow,
                              json_pack("{s:o,s:o}", "from",
                                        time_to_json(sl[i].of_from), "to",
                                        time_to_json(over ? to : st[k])));
        sl[i].of_from = -1;
      }
    }
    if (left > un_peak) {
      un_peak = left;
      un_peak_t = st[k];
    }
    if (k + 1 == steps)
      un_end = left;
    if (moved + left > moved_peak) {
      moved_peak = moved + left;
      walk_peak = walk;
      walk_t = st[k];
      memcpy(peak_cars, cars, ls.n * sizeof *cars);
      memcpy(peak_cap, cap, ls.n * sizeof *cap);
      moved_at_peak = moved;
    }
  }

  /* The scenario's state at its peak, written to the overlay so reads of
   * this scenario see it. */
  for (i = 0; i < ls.n; i++) {
    const lot *l = &ls.v[i];
    int64_t bcars =
        (int64_t)llround(base[i * steps + (size_t)((walk_t - from) / STEP_MS)] *
                         (double)sl[i].cap);
    const char *stt;
    twin_attr a[4];
    if (peak_cars[i] == bcars && peak_cap[i] == sl[i].cap)
      continue;
    stt = derive_status(p, peak_cap[i] == 0, 1, peak_cap[i] - peak_cars[i],
                        peak_cap[i]);
    a[0] = (twin_attr){"availableSpotNumber", walk_t,
                       twin_integer(peak_cap[i] - peak_cars[i])};
    a[1] = (twin_attr){
        "occupancy", walk_t,
        twin_number(peak_cap[i] > 0 ? (double)peak_cars[i] / (double)peak_cap[i]
                                    : 1.0)};
    a[2] = (twin_attr){"status", walk_t, twin_string(stt, strlen(stt))};
    a[3] = (twin_attr){"totalSpotNumber", walk_t, twin_integer(peak_cap[i])};
    if ((rc = p->api->entity_put(ctx, l->type, l->id, a, 4)) != TWIN_OK) {
      rc = fail(p, ctx, rc, "overlay write of lot '%s': %s", l->id,
                status_name(rc));
      goto done;
    }
  }
  {
    lots ls2;
    if ((rc = lots_load(p, ctx, &ls2)) != TWIN_OK) {
      rc = fail(p, ctx, rc, "reading the scenario state failed: %s",
                status_name(rc));
      goto done;
    }
    after = json_array();
    for (i = 0; after && i < ls2.n; i++)
      json_array_append_new(after, lot_json(&ls2.v[i]));
    lots_free(&ls2);
  }

  lots_out = json_array();
  for (i = 0; lots_out && i < ls.n; i++) {
    json_array_append_new(
        lots_out,
        json_pack("{s:s,s:I,s:{s:f,s:o},s:{s:f,s:o},s:o}", "lot", ls.v[i].id,
                  "total", (json_int_t)sl[i].cap, "baseline", "mean_occupancy",
                  round(sl[i].b_sum / (double)steps * 1000) / 1000,
                  "peak_occupancy", occ_json(sl[i].b_cars_peak, sl[i].cap),
                  "scenario", "mean_occupancy",
                  round(sl[i].s_sum / (double)steps * 1000) / 1000,
                  "peak_occupancy", occ_json(sl[i].s_cars_peak, sl[i].cap),
                  "overflow",
                  sl[i].overflow ? json_incref(sl[i].overflow) : json_array()));
  }
  {
    int64_t moved = moved_at_peak;
    reply = json_pack(
        "{s:s,s:o,s:o,s:I,s:o,s:{s:I,s:o,s:I},s:{s:o,s:I,s:f,s:f},s:o,s:o}",
        "type", type, "from", time_to_json(from), "to", time_to_json(to),
        "steps", (json_int_t)steps, "lots", lots_out ? lots_out : json_null(),
        "cars_without_space", "peak", (json_int_t)un_peak, "peak_at",
        un_peak ? time_to_json(un_peak_t) : json_null(), "at_end",
        (json_int_t)un_end, "walk_added", "at", time_to_json(walk_t), "cars",
        (json_int_t)moved, "total_m", round(walk_peak), "average_m",
        moved ? round(walk_peak / (double)moved) : 0.0, "state_at_peak",
        after ? after : json_null(), "baseline",
        json_string(closure ? "cars walk from the closed lot"
                            : "cars walk from the nearest lot"));
    lots_out = after = NULL;
  }
  rc = respond_json(p, ctx, reply);
done:
  if (sl)
    for (i = 0; i < ls.n; i++)
      json_decref(sl[i].overflow);
  json_decref(lots_out);
  json_decref(after);
  free(sl);
  free(ord);
  free(cap);
  free(cars);
  free(peak_cars);
  free(peak_cap);
  free(base);
  free(st);
  free(lh);
  lots_free(&ls);
  json_decref(sc);
  return rc;
}

static int count_cb(void *ud, const char *type, const char *id)
{
  (void)type;
  (void)id;
  ++*(size_t *)ud;
  return TWIN_OK;
}

static int parking_describe(void *instance, twin_ctx *ctx)
{
  parking *p = instance;
  size_t n = 0;
  int rc = p->api->entity_iterate(ctx, NULL, count_cb, &n);
  if (rc != TWIN_OK)
    return fail(p, ctx, rc, "counting lots failed: %s", status_name(rc));
  return respond_json(p, ctx,
                      json_pack("{s:s,s:I,s:s,s:b}", "plugin", "parking",
                                "lots", (json_int_t)n, "feed_url", p->feed_url,
                                "feed_support",
#ifdef PARKING_HAVE_FEED
                                1
#else
                                0
#endif
                                ));
}

/* The declared ops: the host checks each request against its schema
 * before query or simulate sees it, and documents them. */
#define T_DT "{\"format\":\"date-time\"}"
#define T_LOT                                                                  \
  "\"lot\":{\"type\":\"string\",\"minLength\":1,\"maxLength\":200,"             \
  "\"description\":\"the lot's id\"}"
#define T_LATLON                                                               \
  "\"lat\":{\"type\":\"number\",\"minimum\":-90,\"maximum\":90},"                \
  "\"lon\":{\"type\":\"number\",\"minimum\":-180,\"maximum\":180}"
static const twin_op parking_ops[] = {
    {"now", TWIN_OP_QUERY, TWIN_OP_SAFE, "every lot's current state", NULL,
     NULL, "{}"},
    {"lot", TWIN_OP_QUERY, TWIN_OP_SAFE,
     "one lot with its history (default: the last 24 h)",
     "{\"type\":\"object\",\"additionalProperties\":false,"
     "\"required\":[\"lot\"],\"properties\":{" T_LOT ",\"from\":" T_DT
     ",\"to\":" T_DT "}}",
     NULL, "{\"lot\":\"ph-stadthallen\"}"},
    {"profile", TWIN_OP_QUERY, TWIN_OP_SAFE,
     "a lot's mean occupancy per weekday and hour (default: 4 weeks)",
     "{\"type\":\"object\",\"additionalProperties\":false,"
     "\"required\":[\"lot\"],\"properties\":{" T_LOT ",\"from\":" T_DT
     ",\"to\":" T_DT "}}",
     NULL, "{\"lot\":\"ph-stadthallen\"}"},
    {"forecast", TWIN_OP_QUERY, TWIN_OP_SAFE,
     "expected free spaces of a lot at a time, with the parts combined",
     "{\"type\":\"object\",\"additionalProperties\":false,"
     "\"required\":[\"lot\",\"time\"],\"properties\":{" T_LOT
     ",\"time\":" T_DT "}}",
     NULL, "{\"lot\":\"ph-stadthallen\",\"time\":\"2026-12-01T10:00:00Z\"}"},
    {"guidance", TWIN_OP_QUERY, TWIN_OP_SAFE,
     "the best lots near a point, by walk, price and free spaces",
     "{\"type\":\"object\",\"additionalProperties\":false,"
     "\"required\":[\"lat\",\"lon\"],\"properties\":{" T_LATLON
     ",\"time\":" T_DT ",\"limit\":{\"type\":\"integer\",\"minimum\":1,"
     "\"maximum\":50,\"default\":5}}}",
     NULL, "{\"lat\":48.8349,\"lon\":12.9609}"},
    {"closure", TWIN_OP_SCENARIO, 0,
     "a lot closed (or its capacity cut) for a while: where do its cars go",
     "{\"type\":\"object\",\"additionalProperties\":false,"
     "\"required\":[\"lot\",\"from\",\"to\"],\"properties\":{" T_LOT
     ",\"from\":" T_DT ",\"to\":" T_DT
     ",\"capacity\":{\"type\":\"integer\",\"minimum\":0,"
     "\"maximum\":1000000,\"description\":\"spaces left open (default 0: "
     "closed)\"}}}",
     NULL,
     "{\"lot\":\"ph-stadthallen\",\"from\":\"2026-12-01T08:00:00Z\","
     "\"to\":\"2026-12-01T12:00:00Z\"}"},
    {"event", TWIN_OP_SCENARIO, 0,
     "N more cars arriving near a point for a while: which lots overflow",
     "{\"type\":\"object\",\"additionalProperties\":false,"
     "\"required\":[\"lat\",\"lon\",\"cars\",\"from\",\"to\"],"
     "\"properties\":{" T_LATLON
     ",\"cars\":{\"type\":\"integer\",\"minimum\":1,\"maximum\":1000000},"
     "\"from\":" T_DT ",\"to\":" T_DT "}}",
     NULL,
     "{\"lat\":48.8349,\"lon\":12.9609,\"cars\":300,"
     "\"from\":\"2026-12-01T18:00:00Z\",\"to\":\"2026-12-01T23:00:00Z\"}"},
};

static const twin_plugin parking_plugin = {
    .struct_size = sizeof(twin_plugin),
    .abi_major = TWIN_ABI_MAJOR,
    .abi_minor = TWIN_ABI_MINOR,
    .name = "parking",
    .version = PARKING_VERSION,
    .use_case = "parking",
    .summary = "car parks and on-street zones: occupancy, profile, forecast, "
               "guidance, closure and event scenarios",
    .config_schema = config_schema,
    .tick_interval_s = 0,
    .open = parking_open,
    .close = parking_close,
    .ingest = parking_ingest,
    .query = parking_query,
    .simulate = parking_simulate,
    .tick = NULL,
    .describe = parking_describe,
    TWIN_OPS(parking_ops),
    .fetch = parking_fetch,
    .fetch_interval_s = 300,
};

TWIN_PLUGIN_DEFINE(parking_plugin)
