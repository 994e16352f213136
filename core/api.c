/*
 * api.c — the read side of the HTTP API and of the CLI's entities, history
 * and events: query parameters checked and parsed, then answered from the
 * caller's read transaction as JSON. No sockets here (http.c), no printing
 * (cli.c).
 */
#include "api.h"

#include <errno.h>
#include <limits.h>
#include <math.h>
#include <sodium.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "store.h"
#include "view.h"

/* ---- errors and parameters ---------------------------------------------- */

int api_fail(api_error *e, int http, const char *code, const char *field,
             const char *fmt, ...)
{
  if (!e)
    return http;
  e->http = http;
  snprintf(e->code, sizeof e->code, "%s", code);
  snprintf(e->field, sizeof e->field, "%s", field ? field : "");
  core_utf8_fix(e->field);
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(e->message, sizeof e->message, fmt, ap);
  va_end(ap);
  /* Messages quote what the client sent, which need not be UTF-8. */
  core_utf8_fix(e->message);
  return http;
}

json_t *api_error_json(const api_error *e)
{
  json_t *err = json_pack("{s:s,s:s}", "code", e->code, "message", e->message);
  if (err && e->field[0])
    json_object_set_new(err, "field", json_string(e->field));
  return err ? json_pack("{s:o}", "error", err) : NULL;
}

/* One table: every twin_status as the API reports it (docs/api.md shows
 * it). A plugin's own code (api->fail) wins over the table's. */
static const struct {
  int status, http;
  const char *code;
} status_map[] = {
    {TWIN_ERR_INVALID, 400, "bad_request"},
    {TWIN_ERR_NOT_FOUND, 404, "not_found"},
    {TWIN_ERR_NOMEM, 503, "out_of_memory"},
    {TWIN_ERR_STORE, 500, "store"},
    {TWIN_ERR_PARSE, 400, "malformed"},
    {TWIN_ERR_REJECTED, 422, "rejected"},
    {TWIN_ERR_UNSUPPORTED, 400, "unsupported"},
    {TWIN_ERR_TOO_BIG, 422, "too_big"},
    {TWIN_ERR_READ_ONLY, 500, "read_only"},
    {TWIN_ERR_CONFIG, 500, "plugin_config"},
    {TWIN_ERR_UNAVAILABLE, 503, "unavailable"},
    {TWIN_ERR_INTERNAL, 500, "internal"},
    {TWIN_ERR_DEADLINE, 504, "deadline_exceeded"},
};

int api_status_http(int status, const char **code)
{
  for (size_t i = 0; i < sizeof status_map / sizeof status_map[0]; i++)
    if (status_map[i].status == status) {
      if (code)
        *code = status_map[i].code;
      return status_map[i].http;
    }
  if (code)
    *code = "internal";
  return 500;
}

json_t *api_status_table(void)
{
  json_t *a = json_array();
  for (size_t i = 0; i < sizeof status_map / sizeof status_map[0]; i++)
    json_array_append_new(
        a, json_pack("{s:s,s:i,s:s}", "status",
                     core_status_name(status_map[i].status), "http",
                     status_map[i].http, "code", status_map[i].code));
  return a;
}

int api_fail_status(api_error *e, int status, const core_err *err)
{
  const char *code;
  int http = api_status_http(status, &code);
  if (err && err->code[0])
    code = err->code;
  return api_fail(e, http, code, err && err->field[0] ? err->field : NULL,
                  "%s", err ? err->msg : core_status_message(status));
}

static int bad(api_error *e, const char *field, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static int bad(api_error *e, const char *field, const char *fmt, ...)
{
  char msg[sizeof e->message];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(msg, sizeof msg, fmt, ap);
  va_end(ap);
  return api_fail(e, 400, "bad_parameter", field, "%s", msg);
}

static int internal(api_error *e, int status)
{
  return api_fail(e, 500, "internal", NULL,
                  "reading the store failed: %s; try again, and see the "
                  "server log if it persists",
                  core_status_message(status));
}

const char *api_arg_get(const api_args *a, const char *name)
{
  for (size_t i = 0; a && i < a->n; i++)
    if (!strcmp(a->v[i].name, name))
      return a->v[i].value ? a->v[i].value : "";
  return NULL;
}

/* The value of a parameter that may be given once: *out NULL when absent. */
static int arg_once(const api_args *a, const char *name, const char **out,
                    api_error *e)
{
  *out = NULL;
  for (size_t i = 0; a && i < a->n; i++) {
    if (strcmp(a->v[i].name, name))
      continue;
    if (*out)
      return bad(e, name, "%s is given more than once; give it once", name);
    *out = a->v[i].value ? a->v[i].value : "";
  }
  return 0;
}

int api_args_check(const api_args *a, const char *const *known, api_error *e)
{
  size_t nk = 0;
  while (known[nk])
    nk++;
  for (size_t i = 0; a && i < a->n; i++) {
    const char *name = a->v[i].name;
    size_t k = 0;
    while (k < nk && strcmp(name, known[k]))
      k++;
    if (k < nk)
      continue;
    char hint[128], list[256];
    core_suggest(name, known, nk, hint, sizeof hint);
    core_join_names(known, nk, list, sizeof list);
    return bad(e, name, "unknown parameter '%.60s'%s; this request takes %s",
               name, hint, nk ? list : "no parameters");
  }
  return 0;
}

/* The range core_parse_time covers (years 0000 to 9999), so that every time
 * a client gives can be printed back in RFC 3339. */
#define API_TIME_MIN INT64_C(-62167219200000)
#define API_TIME_MAX INT64_C(253402300799999)

int api_parse_time(const char *name, const char *s, twin_time *out,
                   api_error *e)
{
  const char *digits = s[0] == '-' ? s + 1 : s;
  if (*digits >= '0' && *digits <= '9') {
    char *end;
    errno = 0;
    long long v = strtoll(s, &end, 10);
    if (!*end) {
      if (errno || v < API_TIME_MIN || v > API_TIME_MAX)
        return bad(e, name,
                   "%s: %.40s ms is out of range; times go from year 0000 "
                   "to 9999 (%lld to %lld ms)",
                   name, s, (long long)API_TIME_MIN, (long long)API_TIME_MAX);
      *out = v;
      return 0;
    }
  }
  if (!core_parse_time(s, out))
    return 0;
  return bad(e, name,
             "%s: '%.60s' is not a time; use RFC 3339 with a zone such as "
             "2026-11-27T10:00:00Z, or milliseconds since 1970",
             name, s);
}

int api_parse_count(const char *name, const char *s, long min, long max,
                    long *out, api_error *e)
{
  char *end = NULL;
  long v = 0;
  int ok = (s[0] >= '0' && s[0] <= '9') ||
           (min < 0 && s[0] == '-' && s[1] >= '0' && s[1] <= '9');
  if (ok) {
    errno = 0;
    v = strtol(s, &end, 10);
    ok = !errno && !*end && v >= min && v <= max;
  }
  if (ok) {
    *out = v;
    return 0;
  }
  if (max == LONG_MAX)
    return bad(e, name, "%s must be a whole number of %ld or more, not '%.60s'",
               name, min, s);
  return bad(e, name, "%s must be a whole number from %ld to %ld, not '%.60s'",
             name, min, max, s);
}

/* core_format_time without a ".000" of whole seconds. */
void api_format_time(twin_time t, char *buf, size_t len)
{
  core_format_time(t, buf, len);
  size_t n = strlen(buf);
  if (n >= 5 && !strcmp(buf + n - 5, ".000Z"))
    memcpy(buf + n - 5, "Z", 2);
}

json_t *api_time_json(twin_time t)
{
  char buf[48];
  api_format_time(t, buf, sizeof buf);
  return json_string(buf);
}

static json_t *value_json(const twin_value *v)
{
  json_t *j = core_value_json(v);
  return j ? j : json_null();
}

/* 1 when plugin may hold entities in town: one of its plugins (enabled or
 * not: what a switched-off plugin stored stays readable), or "rules", where
 * the town's Lua rules write. */
static int town_knows(const core_town *town, const char *plugin)
{
  if (!strcmp(plugin, "rules"))
    return 1;
  for (size_t i = 0; i < town->n_plugins; i++)
    if (!strcmp(town->plugins[i].name, plugin))
      return 1;
  return 0;
}

static int unknown_plugin(const core_town *town, const char *plugin,
                          api_error *e)
{
  const char *names[64];
  size_t n = 0;
  for (size_t i = 0; i < town->n_plugins && n < 63; i++)
    names[n++] = town->plugins[i].name;
  names[n++] = "rules";
  char hint[128], list[256];
  core_suggest(plugin, names, n, hint, sizeof hint);
  core_join_names(names, n, list, sizeof list);
  return api_fail(e, 404, "unknown_plugin", "plugin",
                  "town %s has no plugin '%.60s'%s; its plugins are %s",
                  town->id, plugin, hint, list);
}

/* ---- entities ------------------------------------------------------------ */

/* An entity being assembled from its attribute rows (keys
 * town\0plugin\0type\0id\0attr\0, consecutive in key order). */
typedef struct ent_scan ent_scan;
struct ent_scan {
  size_t town_len;
  json_t *cur;
  uint8_t key[CORE_KEY_MAX]; /* cur's key up to and including id\0 */
  size_t key_len;
  /* Takes cur (a new reference); TWIN_STOP ends the scan. */
  int (*finish)(ent_scan *s, json_t *ent);
  int stopped;
};

static int ent_visit(void *ud, const uint8_t *key, size_t klen,
                     const uint8_t *val, size_t vlen)
{
  ent_scan *s = ud;
  const char *parts[4];
  const char *p = (const char *)key + s->town_len,
             *end = (const char *)key + klen;
  if (!klen || key[klen - 1])
    return TWIN_ERR_STORE;
  for (int i = 0; i < 4; i++) {
    if (p >= end)
      return TWIN_ERR_STORE;
    parts[i] = p;
    p += strnlen(p, (size_t)(end - p)) + 1;
  }
  size_t elen = (size_t)((const uint8_t *)parts[3] - key);
  if (s->cur && (elen != s->key_len || memcmp(s->key, key, elen))) {
    json_t *done = s->cur;
    s->cur = NULL;
    int rc = s->finish(s, done);
    if (rc == TWIN_STOP)
      s->stopped = 1;
    if (rc)
      return rc;
  }
  if (!s->cur) {
    s->cur = json_pack("{s:s,s:s,s:s,s:{}}", "plugin", parts[0], "type",
                       parts[1], "id", parts[2], "attrs");
    if (!s->cur)
      return TWIN_ERR_STORE;
    memcpy(s->key, key, elen);
    s->key_len = elen;
  }
  twin_value v;
  twin_time t;
  if (core_value_decode(val, vlen, 1, &v, &t))
    return TWIN_ERR_STORE;
  json_object_set_new(json_object_get(s->cur, "attrs"), parts[3],
                      json_pack("{s:o,s:o}", "value", value_json(&v), "time",
                                api_time_json(t)));
  return TWIN_OK;
}

/* Scan [lo, hi) of the ent db, handing each whole entity to s->finish. */
static int ent_run(core_host *h, MDB_txn *txn, const core_key *lo,
                   const core_key *hi, ent_scan *s)
{
  core_view v = {h->store, txn, NULL};
  int rc = core_view_scan(&v, CORE_DB_ENT, lo, hi, ent_visit, s);
  if (!rc && s->cur && !s->stopped) {
    json_t *done = s->cur;
    s->cur = NULL;
    rc = s->finish(s, done);
    if (rc == TWIN_STOP)
      rc = TWIN_OK;
  }
  json_decref(s->cur);
  s->cur = NULL;
  return rc;
}

enum { OP_EQ, OP_NE, OP_LT, OP_LE, OP_GT, OP_GE };
enum { LIT_NUM, LIT_TRUE, LIT_FALSE, LIT_NULL, LIT_STR };

typedef struct ent_filter {
  char attr[TWIN_NAME_MAX + 1];
  int op, kind;
  const char *text; /* the value as given */
  double num;
} ent_filter;

#define MAX_FILTERS 16

/* A finite decimal number and nothing else (no blanks, no hex). */
static int parse_number(const char *s, double *out)
{
  char *end;
  if (!((*s >= '0' && *s <= '9') || *s == '-' || *s == '+' || *s == '.') ||
      strpbrk(s, "xXnN"))
    return 0;
  *out = strtod(s, &end);
  return !*end && isfinite(*out);
}

static int bad_filter(api_error *e, const char *s, const char *why)
{
  return bad(e, "filter",
             "filter '%.80s' %s: write <attr><op><value> with op one of "
             "== != >= <= > <, e.g. filter=occupancy>=0.5 or "
             "filter=status==open",
             s, why);
}

static int parse_filter(const char *s, ent_filter *f, api_error *e)
{
  size_t i = strcspn(s, "=!<>");
  if (!s[i])
    return bad_filter(e, s, "has no operator");
  if (i == 0)
    return bad_filter(e, s, "names no attribute");
  if (i > TWIN_NAME_MAX)
    return bad_filter(e, s, "names an attribute longer than 200 bytes");
  const char *v = s + i + 1;
  switch (s[i]) {
  case '=':
  case '!':
    if (*v != '=')
      return bad_filter(e, s, s[i] == '=' ? "uses = (use ==)" : "uses !");
    f->op = s[i] == '=' ? OP_EQ : OP_NE;
    v++;
    break;
  default:
    f->op = s[i] == '<' ? OP_LT : OP_GT;
    if (*v == '=') {
      f->op++;
      v++;
    }
  }
  memcpy(f->attr, s, i);
  f->attr[i] = 0;
  if (!core_valid_name(f->attr))
    return bad_filter(e, s, "names no valid attribute");
  f->text = v;
  if (!strcmp(v, "true"))
    f->kind = LIT_TRUE;
  else if (!strcmp(v, "false"))
    f->kind = LIT_FALSE;
  else if (!strcmp(v, "null"))
    f->kind = LIT_NULL;
  else if (parse_number(v, &f->num))
    f->kind = LIT_NUM;
  else
    f->kind = LIT_STR;
  return 0;
}

static int bytes_cmp(const char *a, size_t na, const char *b, size_t nb)
{
  int c = memcmp(a, b, na < nb ? na : nb);
  return c ? c : (na > nb) - (na < nb);
}

/*
 * Does the filter hold for an attribute value? Numbers compare with number
 * literals numerically; a string attribute compares with the literal's text
 * byte by byte (so status==5 matches the string "5"); true, false and null
 * only equal themselves. Anything else is incomparable: == and every order
 * fail, != holds. A missing attribute fails every filter.
 */
static int filter_holds(const ent_filter *f, json_t *attrs)
{
  json_t *v = json_object_get(json_object_get(attrs, f->attr), "value");
  if (!v)
    return 0;
  int c = 0, how = 0; /* 1: ordered, 2: equality only, 0: incomparable */
  if (json_is_number(v) && f->kind == LIT_NUM) {
    double x = json_number_value(v);
    c = (x > f->num) - (x < f->num);
    how = 1;
  } else if (json_is_string(v)) {
    c = bytes_cmp(json_string_value(v), json_string_length(v), f->text,
                  strlen(f->text));
    how = 1;
  } else if (json_is_boolean(v) &&
             (f->kind == LIT_TRUE || f->kind == LIT_FALSE)) {
    c = json_is_true(v) != (f->kind == LIT_TRUE);
    how = 2;
  } else if (json_is_null(v) && f->kind == LIT_NULL) {
    how = 2;
  }
  switch (f->op) {
  case OP_EQ:
    return how && !c;
  case OP_NE:
    return !how || c;
  case OP_LT:
    return how == 1 && c < 0;
  case OP_LE:
    return how == 1 && c <= 0;
  case OP_GT:
    return how == 1 && c > 0;
  default:
    return how == 1 && c >= 0;
  }
}

static double haversine_m(double lat1, double lon1, double lat2, double lon2)
{
  const double r = 6371008.8, rad = M_PI / 180; /* mean Earth radius */
  double dlat = (lat2 - lat1) * rad, dlon = (lon2 - lon1) * rad;
  double a = sin(dlat / 2) * sin(dlat / 2) +
             cos(lat1 * rad) * cos(lat2 * rad) * sin(dlon / 2) * sin(dlon / 2);
  return 2 * r * asin(sqrt(a < 1 ? a : 1));
}

static int attr_number(json_t *attrs, const char *name, double *out)
{
  json_t *v = json_object_get(json_object_get(attrs, name), "value");
  if (!json_is_number(v))
    return 0;
  *out = json_number_value(v);
  return 1;
}

/*
 * Cursors. The next page starts after the last entity returned, by its
 * position rather than an offset, so entities added or removed meanwhile
 * neither repeat nor vanish from the pages still to come:
 *   key order:  after the key plugin\0type\0id\0;
 *   near order: after (distance, key), the distance as its exact double.
 * A cursor is base64url of: mode byte (1 key, 2 near), a 4-byte guard, for
 * near the 8-byte distance, then the key. The guard is FNV-1a over the
 * town, what fixes the order and range (plugin, type, near, radius_m) and
 * the rest of the cursor, so a cursor edited (any one byte), cut, or taken
 * to another town or query is refused with 400 rather than read as some
 * other position. It is a check against mistakes, not a signature: a
 * client that recomputes it only reaches positions it could list anyway.
 * Filters are not guarded: a position in key or distance order means the same
 * under any filter.
 */
enum { CURSOR_KEY = 1, CURSOR_NEAR = 2 };
#define CURSOR_TEXT_MAX 1024

typedef struct ent_query {
  const char *plugin, *type;
  ent_filter filters[MAX_FILTERS];
  size_t n_filters;
  int near;
  double lat, lon, radius;
  size_t limit;
  uint32_t guard;
  /* the position to start after */
  int has_after;
  double after_dist;
  uint8_t after_key[CORE_KEY_MAX];
  size_t after_len;
} ent_query;

static uint32_t fnv(uint32_t h, const void *p, size_t n)
{
  const uint8_t *b = p;
  for (size_t i = 0; i < n; i++)
    h = (h ^ b[i]) * 16777619u;
  return h;
}

static uint32_t query_guard(const core_town *town, const ent_query *q)
{
  uint32_t h = 2166136261u;
  h = fnv(h, "twinhost-cursor-1", 18);
  h = fnv(h, town->id, strlen(town->id) + 1);
  h = fnv(h, q->plugin ? q->plugin : "",
          strlen(q->plugin ? q->plugin : "") + 1);
  h = fnv(h, q->type ? q->type : "", strlen(q->type ? q->type : "") + 1);
  if (q->near) {
    double d[3] = {q->lat, q->lon, q->radius};
    h = fnv(h, d, sizeof d);
  }
  return h;
}

static void put_be(uint8_t *p, uint64_t v, int n)
{
  for (int i = n - 1; i >= 0; i--, v >>= 8)
    p[i] = (uint8_t)v;
}

static uint64_t get_be(const uint8_t *p, int n)
{
  uint64_t v = 0;
  for (int i = 0; i < n; i++)
    v = v << 8 | p[i];
  return v;
}

static json_t *cursor_json(const ent_query *q, double dist, const uint8_t *key,
                           size_t klen)
{
  uint8_t bin[1 + 4 + 8 + CORE_KEY_MAX];
  size_t n = 0;
  bin[n++] = q->near ? CURSOR_NEAR : CURSOR_KEY;
  n += 4; /* the guard, once the rest is known */
  if (q->near) {
    uint64_t bits;
    memcpy(&bits, &dist, 8);
    put_be(bin + n, bits, 8);
    n += 8;
  }
  memcpy(bin + n, key, klen);
  n += klen;
  put_be(bin + 1, fnv(q->guard, bin + 5, n - 5), 4);
  char text[sodium_base64_ENCODED_LEN(
      sizeof bin, sodium_base64_VARIANT_URLSAFE_NO_PADDING)];
  sodium_bin2base64(text, sizeof text, bin, n,
                    sodium_base64_VARIANT_URLSAFE_NO_PADDING);
  return json_string(text);
}

static int bad_cursor(api_error *e, const char *why)
{
  return bad(e, "cursor",
             "cursor %s; pass the \"next\" of the previous page unchanged, "
             "with the same plugin, type, near and radius_m, or leave "
             "cursor out to start from the first page",
             why);
}

/* Check a cursor's key: plugin\0type\0id\0, inside the query's plugin and
 * type. */
static int cursor_key_ok(const ent_query *q, const uint8_t *k, size_t n)
{
  const char *parts[3];
  const char *p = (const char *)k, *end = p + n;
  if (!n || k[n - 1])
    return 0;
  for (int i = 0; i < 3; i++) {
    if (p >= end)
      return 0;
    parts[i] = p;
    p += strlen(p) + 1;
  }
  return p == end && core_valid_id(parts[0]) && core_valid_name(parts[1]) &&
         core_valid_name(parts[2]) &&
         (!q->plugin || !strcmp(q->plugin, parts[0])) &&
         (!q->type || !strcmp(q->type, parts[1]));
}

static int parse_cursor(const char *s, ent_query *q, api_error *e)
{
  size_t len = strlen(s);
  uint8_t bin[1 + 4 + 8 + CORE_KEY_MAX];
  size_t n = 0;
  const char *end = NULL;
  if (!len || len > CURSOR_TEXT_MAX ||
      sodium_base642bin(bin, sizeof bin, s, len, NULL, &n, &end,
                        sodium_base64_VARIANT_URLSAFE_NO_PADDING) ||
      end != s + len)
    return bad_cursor(e, "is not one this server gave out");
  int mode = q->near ? CURSOR_NEAR : CURSOR_KEY;
  size_t head = q->near ? 13 : 5;
  if (n < head || bin[0] != mode)
    return bad_cursor(e, bin[0] == CURSOR_NEAR || bin[0] == CURSOR_KEY
                             ? "belongs to a query with a different near"
                             : "is not one this server gave out");
  if ((uint32_t)get_be(bin + 1, 4) != fnv(q->guard, bin + 5, n - 5))
    return bad_cursor(e, "belongs to another town or query");
  if (q->near) {
    uint64_t bits = get_be(bin + 5, 8);
    memcpy(&q->after_dist, &bits, 8);
    if (!isfinite(q->after_dist) || q->after_dist < 0)
      return bad_cursor(e, "is not one this server gave out");
  }
  if (!cursor_key_ok(q, bin + head, n - head))
    return bad_cursor(e, "is not one this server gave out");
  q->has_after = 1;
  q->after_len = n - head;
  memcpy(q->after_key, bin + head, q->after_len);
  return 0;
}

static int parse_near(const char *s, ent_query *q, api_error *e)
{
  const char *comma = strchr(s, ',');
  char lat[64];
  size_t n = comma ? (size_t)(comma - s) : 0;
  if (!comma || n >= sizeof lat)
    goto fail;
  memcpy(lat, s, n);
  lat[n] = 0;
  if (!parse_number(lat, &q->lat) || !parse_number(comma + 1, &q->lon) ||
      q->lat < -90 || q->lat > 90 || q->lon < -180 || q->lon > 180)
    goto fail;
  q->near = 1;
  return 0;
fail:
  return bad(e, "near",
             "near must be lat,lon in degrees with lat from -90 to 90 and "
             "lon from -180 to 180, e.g. near=48.8342,12.9621; not '%.60s'",
             s);
}

static int parse_ent_query(const core_town *town, const api_args *a,
                           ent_query *q, api_error *e)
{
  static const char *const known[] = {"plugin",   "type",  "filter", "near",
                                      "radius_m", "limit", "cursor", NULL};
  int rc = api_args_check(a, known, e);
  const char *near, *radius, *limit, *cursor;
  if (rc || (rc = arg_once(a, "plugin", &q->plugin, e)) ||
      (rc = arg_once(a, "type", &q->type, e)) ||
      (rc = arg_once(a, "near", &near, e)) ||
      (rc = arg_once(a, "radius_m", &radius, e)) ||
      (rc = arg_once(a, "limit", &limit, e)) ||
      (rc = arg_once(a, "cursor", &cursor, e)))
    return rc;
  if (q->type && !q->plugin)
    return bad(e, "type",
               "type needs plugin: types belong to a plugin, so add "
               "plugin=<name> (e.g. plugin=parking&type=%.60s)",
               q->type);
  if (q->plugin && !town_knows(town, q->plugin))
    return unknown_plugin(town, q->plugin, e);
  if (q->type && !core_valid_name(q->type))
    return bad(e, "type",
               "type '%.60s' is not a valid type name (1 to 200 bytes of "
               "UTF-8, no control characters)",
               q->type);
  for (size_t i = 0; a && i < a->n; i++) {
    if (strcmp(a->v[i].name, "filter"))
      continue;
    if (q->n_filters == MAX_FILTERS)
      return bad(e, "filter", "at most %d filters may be given", MAX_FILTERS);
    const char *s = a->v[i].value ? a->v[i].value : "";
    if ((rc = parse_filter(s, &q->filters[q->n_filters++], e)))
      return rc;
  }
  if (near && (rc = parse_near(near, q, e)))
    return rc;
  q->radius = 1000;
  if (radius) {
    if (!near)
      return bad(e, "radius_m",
                 "radius_m needs near=lat,lon: it is the distance from that "
                 "point");
    if (!parse_number(radius, &q->radius) || q->radius < 1 ||
        q->radius > 100000)
      return bad(e, "radius_m",
                 "radius_m must be a number of metres from 1 to 100000, "
                 "not '%.60s'",
                 radius);
  }
  long n = 100;
  if (limit && (rc = api_parse_count("limit", limit, 1, 1000, &n, e)))
    return rc;
  q->limit = (size_t)n;
  q->guard = query_guard(town, q);
  return cursor ? parse_cursor(cursor, q, e) : 0;
}

static int ent_passes(const ent_query *q, json_t *ent)
{
  json_t *attrs = json_object_get(ent, "attrs");
  for (size_t i = 0; i < q->n_filters; i++)
    if (!filter_holds(&q->filters[i], attrs))
      return 0;
  return 1;
}

/* Key order: the first limit entities after the cursor, and whether more
 * follow. */
typedef struct key_page {
  ent_scan s;
  const ent_query *q;
  json_t *list;
  int more;
} key_page;

static int key_finish(ent_scan *s, json_t *ent)
{
  key_page *p = (key_page *)s;
  if (!ent_passes(p->q, ent)) {
    json_decref(ent);
    return TWIN_OK;
  }
  if (json_array_size(p->list) == p->q->limit) {
    json_decref(ent);
    p->more = 1;
    return TWIN_STOP;
  }
  json_array_append_new(p->list, ent);
  return TWIN_OK;
}

/* Near order: every entity in range after the cursor, sorted at the end. */
typedef struct near_hit {
  json_t *ent;
  double dist;
  uint8_t *key; /* plugin\0type\0id\0 */
  size_t klen;
} near_hit;

typedef struct near_page {
  ent_scan s;
  const ent_query *q;
  near_hit *hits;
  size_t n, cap;
  int nomem;
} near_page;

static int hit_cmp(double da, const uint8_t *ka, size_t na, double db,
                   const uint8_t *kb, size_t nb)
{
  if (da != db)
    return da < db ? -1 : 1;
  return bytes_cmp((const char *)ka, na, (const char *)kb, nb);
}

static int hit_order(const void *a, const void *b)
{
  const near_hit *x = a, *y = b;
  return hit_cmp(x->dist, x->key, x->klen, y->dist, y->key, y->klen);
}

static int near_finish(ent_scan *s, json_t *ent)
{
  near_page *p = (near_page *)s;
  const ent_query *q = p->q;
  json_t *attrs = json_object_get(ent, "attrs");
  double lat, lon, d;
  const uint8_t *k = s->key + s->town_len;
  size_t kn = s->key_len - s->town_len;
  if (!attr_number(attrs, "lat", &lat) || !attr_number(attrs, "lon", &lon) ||
      !((d = haversine_m(q->lat, q->lon, lat, lon)) <= q->radius) ||
      (q->has_after &&
       hit_cmp(d, k, kn, q->after_dist, q->after_key, q->after_len) <= 0) ||
      !ent_passes(q, ent)) {
    json_decref(ent);
    return TWIN_OK;
  }
  if (p->n == p->cap) {
    size_t cap = p->cap ? p->cap * 2 : 64;
    near_hit *nh = realloc(p->hits, cap * sizeof *nh);
    if (!nh) {
      json_decref(ent);
      p->nomem = 1;
      return TWIN_ERR_NOMEM;
    }
    p->hits = nh;
    p->cap = cap;
  }
  near_hit *hit = &p->hits[p->n];
  hit->key = malloc(kn);
  if (!hit->key) {
    json_decref(ent);
    return TWIN_ERR_NOMEM;
  }
  memcpy(hit->key, k, kn);
  hit->klen = kn;
  hit->dist = d;
  hit->ent = ent;
  json_object_set_new(ent, "distance_m", json_real(round(d * 10) / 10));
  p->n++;
  return TWIN_OK;
}

int api_entities(core_host *h, MDB_txn *txn, const core_town *town,
                 const api_args *a, json_t **out, api_error *e)
{
  *out = NULL;
  ent_query q;
  memset(&q, 0, sizeof q);
  int rc = parse_ent_query(town, a, &q, e);
  if (rc)
    return rc;
  core_key lo = {.len = 0}, hi;
  core_key_part(&lo, town->id);
  size_t town_len = lo.len;
  if ((q.plugin && !core_key_part(&lo, q.plugin)) ||
      (q.type && !core_key_part(&lo, q.type)))
    return bad(e, "type", "plugin and type are too long together");
  hi = lo;
  core_key_prefix_end(&hi);
  json_t *list = json_array(), *next = json_null();
  if (!q.near) {
    if (q.has_after) {
      lo.len = town_len;
      core_key_raw(&lo, q.after_key, q.after_len);
      core_key_prefix_end(&lo);
    }
    key_page p = {.s = {.town_len = town_len, .finish = key_finish},
                  .q = &q,
                  .list = list};
    rc = ent_run(h, txn, &lo, &hi, &p.s);
    if (!rc && p.more) {
      json_t *last = json_array_get(list, json_array_size(list) - 1);
      core_key k = {.len = 0};
      core_key_part(&k, json_string_value(json_object_get(last, "plugin")));
      core_key_part(&k, json_string_value(json_object_get(last, "type")));
      core_key_part(&k, json_string_value(json_object_get(last, "id")));
      json_decref(next);
      next = cursor_json(&q, 0, k.b, k.len);
    }
  } else {
    near_page p = {.s = {.town_len = town_len, .finish = near_finish}, .q = &q};
    rc = ent_run(h, txn, &lo, &hi, &p.s);
    if (!rc) {
      if (p.n)
        qsort(p.hits, p.n, sizeof *p.hits, hit_order);
      size_t take = p.n < q.limit ? p.n : q.limit;
      for (size_t i = 0; i < take; i++)
        json_array_append(list, p.hits[i].ent);
      if (p.n > take) {
        json_decref(next);
        next = cursor_json(&q, p.hits[take - 1].dist, p.hits[take - 1].key,
                           p.hits[take - 1].klen);
      }
    }
    for (size_t i = 0; i < p.n; i++) {
      json_decref(p.hits[i].ent);
      free(p.hits[i].key);
    }
    free(p.hits);
  }
  if (rc) {
    json_decref(list);
    json_decref(next);
    return internal(e, rc);
  }
  *out = json_pack("{s:o,s:o}", "entities", list, "next", next);
  return *out ? 0 : internal(e, TWIN_ERR_NOMEM);
}

/* ---- one entity ---------------------------------------------------------- */

typedef struct one_entity {
  ent_scan s;
  json_t *ent;
} one_entity;

static int keep_one(ent_scan *s, json_t *ent)
{
  one_entity *o = (one_entity *)s;
  json_decref(o->ent);
  o->ent = ent;
  return TWIN_STOP;
}

static int entity_key(core_key *k, const core_town *town, const char *plugin,
                      const char *type, const char *id)
{
  k->len = 0;
  return core_valid_id(plugin) && core_valid_name(type) &&
         core_valid_name(id) && core_key_part(k, town->id) &&
         core_key_part(k, plugin) && core_key_part(k, type) &&
         core_key_part(k, id);
}

static int unknown_entity(api_error *e, const core_town *town,
                          const char *plugin, const char *type, const char *id)
{
  return api_fail(e, 404, "unknown_entity", NULL,
                  "town %s has no entity %.40s/%.80s/%.80s; list what there "
                  "is with GET /v1/towns/%s/entities?plugin=%.40s&type=%.80s",
                  town->id, plugin, type, id, town->id, plugin, type);
}

int api_entity(core_host *h, MDB_txn *txn, const core_town *town,
               const char *plugin, const char *type, const char *id,
               json_t **out, api_error *e)
{
  *out = NULL;
  if (!town_knows(town, plugin))
    return unknown_plugin(town, plugin, e);
  core_key lo, hi;
  if (!entity_key(&lo, town, plugin, type, id))
    return unknown_entity(e, town, plugin, type, id);
  hi = lo;
  core_key_prefix_end(&hi);
  one_entity o = {.s = {.town_len = strlen(town->id) + 1, .finish = keep_one}};
  int rc = ent_run(h, txn, &lo, &hi, &o.s);
  if (rc) {
    json_decref(o.ent);
    return internal(e, rc);
  }
  if (!o.ent)
    return unknown_entity(e, town, plugin, type, id);
  *out = o.ent;
  return 0;
}

/* ---- one entity as text -------------------------------------------------- */

/* A growing text buffer; oom sticks. */
typedef struct jbuf {
  char *p;
  size_t n, cap;
  int oom;
} jbuf;

static void jb_put(jbuf *b, const char *s, size_t n)
{
  if (b->oom)
    return;
  if (b->n + n + 1 > b->cap) {
    size_t cap = b->cap ? b->cap : 512;
    while (cap < b->n + n + 1)
      cap *= 2;
    char *p = realloc(b->p, cap);
    if (!p) {
      b->oom = 1;
      return;
    }
    b->p = p;
    b->cap = cap;
  }
  memcpy(b->p + b->n, s, n);
  b->n += n;
  b->p[b->n] = 0;
}

static void jb_lit(jbuf *b, const char *s)
{
  jb_put(b, s, strlen(s));
}

/* A JSON string, escaped as jansson escapes (UTF-8 passes through). */
static void jb_str(jbuf *b, const char *s, size_t n)
{
  static const char hex[] = "0123456789abcdef";
  jb_put(b, "\"", 1);
  size_t run = 0;
  for (size_t i = 0; i < n; i++) {
    unsigned char c = (unsigned char)s[i];
    if (c >= 0x20 && c != '"' && c != '\\')
      continue;
    jb_put(b, s + run, i - run);
    run = i + 1;
    char esc[7] = {'\\', 0};
    switch (c) {
    case '"':
    case '\\':
      esc[1] = (char)c;
      break;
    case '\b':
      esc[1] = 'b';
      break;
    case '\f':
      esc[1] = 'f';
      break;
    case '\n':
      esc[1] = 'n';
      break;
    case '\r':
      esc[1] = 'r';
      break;
    case '\t':
      esc[1] = 't';
      break;
    default:
      memcpy(esc + 1, "u00", 3);
      esc[4] = hex[c >> 4];
      esc[5] = hex[c & 15];
    }
    jb_lit(b, esc);
  }
  jb_put(b, s + run, n - run);
  jb_put(b, "\"", 1);
}

/* A value as JSON text; reals with 15 significant digits, like the JSON
 * answers built with jansson. */
static void jb_value(jbuf *b, const twin_value *v)
{
  char num[40];
  switch (v->type) {
  case TWIN_VALUE_NUMBER: {
    int n = snprintf(num, sizeof num, "%.15g", v->as.number);
    if (!strpbrk(num, ".eE"))
      memcpy(num + n, ".0", 3);
    jb_lit(b, num);
    break;
  }
  case TWIN_VALUE_INT:
    snprintf(num, sizeof num, "%lld", (long long)v->as.integer);
    jb_lit(b, num);
    break;
  case TWIN_VALUE_STRING:
    jb_str(b, v->as.string.ptr, v->as.string.len);
    break;
  case TWIN_VALUE_BOOL:
    jb_lit(b, v->as.boolean ? "true" : "false");
    break;
  default:
    jb_lit(b, "null");
  }
}

typedef struct ent_text {
  jbuf b;
  size_t attr_off; /* offset of the attribute name in each key */
  size_t attrs;
} ent_text;

static int ent_text_visit(void *ud, const uint8_t *key, size_t klen,
                          const uint8_t *val, size_t vlen)
{
  ent_text *t = ud;
  twin_value v;
  twin_time time;
  if (klen <= t->attr_off + 1 || core_value_decode(val, vlen, 1, &v, &time))
    return TWIN_ERR_STORE;
  const char *attr = (const char *)key + t->attr_off;
  size_t alen = strnlen(attr, klen - t->attr_off);
  jb_lit(&t->b, t->attrs++ ? "," : "");
  jb_str(&t->b, attr, alen);
  jb_lit(&t->b, ":{\"value\":");
  jb_value(&t->b, &v);
  char ts[40];
  api_format_time(time, ts, sizeof ts);
  jb_lit(&t->b, ",\"time\":\"");
  jb_lit(&t->b, ts);
  jb_lit(&t->b, "\"}");
  return t->b.oom ? TWIN_ERR_NOMEM : TWIN_OK;
}

int api_entity_text(core_host *h, MDB_txn *txn, const core_town *town,
                    const char *plugin, const char *type, const char *id,
                    char **out, size_t *len, api_error *e)
{
  *out = NULL;
  *len = 0;
  if (!town_knows(town, plugin))
    return unknown_plugin(town, plugin, e);
  core_key lo, hi;
  if (!entity_key(&lo, town, plugin, type, id))
    return unknown_entity(e, town, plugin, type, id);
  hi = lo;
  core_key_prefix_end(&hi);
  ent_text t = {.attr_off = lo.len};
  jb_lit(&t.b, "{\"plugin\":");
  jb_str(&t.b, plugin, strlen(plugin));
  jb_lit(&t.b, ",\"type\":");
  jb_str(&t.b, type, strlen(type));
  jb_lit(&t.b, ",\"id\":");
  jb_str(&t.b, id, strlen(id));
  jb_lit(&t.b, ",\"attrs\":{");
  core_view v = {h->store, txn, NULL};
  int rc = core_view_scan(&v, CORE_DB_ENT, &lo, &hi, ent_text_visit, &t);
  jb_lit(&t.b, "}}\n");
  if (rc || t.b.oom) {
    free(t.b.p);
    return internal(e, rc ? rc : TWIN_ERR_NOMEM);
  }
  if (!t.attrs) {
    free(t.b.p);
    return unknown_entity(e, town, plugin, type, id);
  }
  *out = t.b.p;
  *len = t.b.n;
  return 0;
}

/* ---- history ------------------------------------------------------------- */

enum { AGG_NONE, AGG_AVG, AGG_MIN, AGG_MAX, AGG_SUM, AGG_COUNT };
static const char *const agg_names[] = {"",    "avg", "min",
                                        "max", "sum", "count"};

#define EVERY_MAX_MS (INT64_C(366) * 86400000)

static int parse_every(const char *s, int64_t *out, api_error *e)
{
  char *end;
  int64_t unit = 0;
  long long n = 0;
  if (s[0] >= '0' && s[0] <= '9') {
    errno = 0;
    n = strtoll(s, &end, 10);
    if (!errno && end[0] && !end[1])
      unit = end[0] == 's'   ? 1000
             : end[0] == 'm' ? 60000
             : end[0] == 'h' ? 3600000
             : end[0] == 'd' ? 86400000
                             : 0;
  }
  if (!unit || n < 1 || n > EVERY_MAX_MS / unit)
    return bad(e, "every",
               "every must be a whole number and a unit s, m, h or d, from "
               "1s to 366d, e.g. every=15m; not '%.60s'",
               s);
  *out = n * unit;
  return 0;
}

typedef struct hist_scan {
  json_t *points;
  size_t n, limit, prefix_len;
  int64_t every;
  int agg;
  int open; /* a bucket is being summed */
  twin_time bucket;
  size_t count, numeric;
  double sum, min, max;
  int more;
  twin_time next;
  int nomem;
} hist_scan;

static twin_time bucket_of(twin_time t, int64_t every)
{
  int64_t r = t % every;
  if (r < 0)
    r += every;
  twin_time b;
  return __builtin_sub_overflow(t, r, &b) ? INT64_MIN : b;
}

static void bucket_emit(hist_scan *s)
{
  json_t *v;
  if (s->agg == AGG_COUNT)
    v = json_integer((json_int_t)s->count);
  else if (!s->numeric)
    v = json_null();
  else
    v = json_real(s->agg == AGG_AVG   ? s->sum / (double)s->numeric
                  : s->agg == AGG_MIN ? s->min
                  : s->agg == AGG_MAX ? s->max
                                      : s->sum);
  if (json_array_append_new(s->points,
                            json_pack("{s:o,s:o,s:I}", "time",
                                      api_time_json(s->bucket), "value", v,
                                      "count", (json_int_t)s->count)))
    s->nomem = 1;
  s->n++;
  s->open = 0;
}

static int hist_visit(void *ud, const uint8_t *key, size_t klen,
                      const uint8_t *val, size_t vlen)
{
  hist_scan *s = ud;
  twin_value v;
  if (klen != s->prefix_len + 8 || core_value_decode(val, vlen, 0, &v, NULL))
    return TWIN_ERR_STORE;
  twin_time t = core_key_get_time(key + klen - 8);
  if (!s->every) {
    if (s->n == s->limit) {
      s->more = 1;
      s->next = t;
      return TWIN_STOP;
    }
    if (json_array_append_new(s->points,
                              json_pack("{s:o,s:o}", "time", api_time_json(t),
                                        "value", value_json(&v))))
      return TWIN_ERR_NOMEM;
    s->n++;
    return TWIN_OK;
  }
  twin_time b = bucket_of(t, s->every);
  if (s->open && b != s->bucket)
    bucket_emit(s);
  if (s->nomem)
    return TWIN_ERR_NOMEM;
  if (!s->open) {
    if (s->n == s->limit) {
      s->more = 1;
      s->next = b;
      return TWIN_STOP;
    }
    s->open = 1;
    s->bucket = b;
    s->count = s->numeric = 0;
    s->sum = 0;
  }
  s->count++;
  double x;
  switch (v.type) {
  case TWIN_VALUE_NUMBER:
    x = v.as.number;
    break;
  case TWIN_VALUE_INT:
    x = (double)v.as.integer;
    break;
  case TWIN_VALUE_BOOL:
    x = v.as.boolean ? 1 : 0;
    break;
  default:
    return TWIN_OK; /* strings and nulls are only counted */
  }
  if (!s->numeric || x < s->min)
    s->min = x;
  if (!s->numeric || x > s->max)
    s->max = x;
  s->sum += x;
  s->numeric++;
  return TWIN_OK;
}

/* Sets *ud to 1 at the first row. */
static int found_one(void *ud, const uint8_t *key, size_t klen,
                     const uint8_t *val, size_t vlen)
{
  (void)key, (void)klen, (void)val, (void)vlen;
  *(int *)ud = 1;
  return TWIN_STOP;
}

int api_history(core_host *h, MDB_txn *txn, const core_town *town,
                const char *plugin, const char *type, const char *id,
                const char *attr, const api_args *a, json_t **out, api_error *e)
{
  static const char *const known[] = {"from",  "to",  "limit",
                                      "every", "agg", NULL};
  *out = NULL;
  const char *from_s, *to_s, *limit_s, *every_s, *agg_s;
  int rc = api_args_check(a, known, e);
  if (rc || (rc = arg_once(a, "from", &from_s, e)) ||
      (rc = arg_once(a, "to", &to_s, e)) ||
      (rc = arg_once(a, "limit", &limit_s, e)) ||
      (rc = arg_once(a, "every", &every_s, e)) ||
      (rc = arg_once(a, "agg", &agg_s, e)))
    return rc;
  twin_time from = INT64_MIN, to = INT64_MAX;
  if ((from_s && (rc = api_parse_time("from", from_s, &from, e))) ||
      (to_s && (rc = api_parse_time("to", to_s, &to, e))))
    return rc;
  if (from_s && to_s && from >= to)
    return bad(e, "to",
               "to (%.40s) must be after from (%.40s): to is exclusive", to_s,
               from_s);
  long limit = 1000;
  if (limit_s && (rc = api_parse_count("limit", limit_s, 1, 100000, &limit, e)))
    return rc;
  int64_t every = 0;
  if (every_s && (rc = parse_every(every_s, &every, e)))
    return rc;
  int agg = every ? AGG_AVG : AGG_NONE;
  if (agg_s) {
    if (!every)
      return bad(e, "agg",
                 "agg needs every: give the bucket size too, e.g. "
                 "every=1h&agg=%.20s",
                 agg_s);
    for (agg = AGG_AVG; agg <= AGG_COUNT; agg++)
      if (!strcmp(agg_s, agg_names[agg]))
        break;
    if (agg > AGG_COUNT)
      return bad(e, "agg",
                 "agg must be avg, min, max, sum or count, not '%.40s'", agg_s);
  }
  if (!town_knows(town, plugin))
    return unknown_plugin(town, plugin, e);
  core_key lo, hi;
  if (!entity_key(&lo, town, plugin, type, id))
    return unknown_entity(e, town, plugin, type, id);
  hi = lo;
  core_key_prefix_end(&hi);
  core_view v = {h->store, txn, NULL};
  /* An entity exists while it has a current attribute or any history:
   * deleting an entity keeps its history (the record of what was
   * observed), and some plugins only ever append observations. */
  int exists = 0;
  if ((rc = core_view_scan(&v, CORE_DB_ENT, &lo, &hi, found_one, &exists)) ||
      (!exists &&
       (rc = core_view_scan(&v, CORE_DB_OBS, &lo, &hi, found_one, &exists))))
    return internal(e, rc);
  if (!exists)
    return unknown_entity(e, town, plugin, type, id);
  if (!core_valid_name(attr) || !core_key_part(&lo, attr))
    return bad(e, "attr",
               "'%.60s' is not a valid attribute name (1 to 200 bytes of "
               "UTF-8, no control characters)",
               attr);
  hist_scan s = {.points = json_array(),
                 .limit = (size_t)limit,
                 .prefix_len = lo.len,
                 .every = every,
                 .agg = agg};
  hi = lo;
  core_key_time(&lo, from);
  if (to == INT64_MAX)
    core_key_prefix_end(&hi);
  else
    core_key_time(&hi, to);
  rc = core_view_scan(&v, CORE_DB_OBS, &lo, &hi, hist_visit, &s);
  if (!rc && s.open)
    bucket_emit(&s);
  if (!rc && s.nomem)
    rc = TWIN_ERR_NOMEM;
  if (rc) {
    json_decref(s.points);
    return internal(e, rc);
  }
  *out = json_pack("{s:s,s:s,s:s,s:s}", "plugin", plugin, "type", type, "id",
                   id, "attr", attr);
  if (*out && every) {
    char buf[32];
    snprintf(buf, sizeof buf, "%s", every_s);
    json_object_set_new(*out, "every", json_string(buf));
    json_object_set_new(*out, "agg", json_string(agg_names[agg]));
  }
  if (!*out || json_object_set_new(*out, "points", s.points) ||
      json_object_set_new(*out, "next",
                          s.more ? api_time_json(s.next) : json_null())) {
    json_decref(*out);
    *out = NULL;
    return internal(e, TWIN_ERR_NOMEM);
  }
  return 0;
}

/* ---- events -------------------------------------------------------------- */

/* The event of one evt row with its "seq", or NULL when the stored text is
 * not a JSON object (skipped rather than failing the whole list). */
static json_t *event_json(const MDB_val *k, const MDB_val *v, size_t town_len)
{
  json_t *ev = json_loadb(v->mv_data, v->mv_size, 0, NULL);
  if (!json_is_object(ev) || k->mv_size != town_len + 8) {
    json_decref(ev);
    return NULL;
  }
  twin_time seq = core_key_get_time((const uint8_t *)k->mv_data + town_len);
  json_object_set_new(ev, "seq", json_integer(seq));
  return ev;
}

typedef struct evt_scan {
  json_t *out;
  size_t max, town_len;
  uint64_t last;
  int any;
} evt_scan;

static int evt_visit(void *ud, const uint8_t *key, size_t klen,
                     const uint8_t *val, size_t vlen)
{
  evt_scan *s = ud;
  MDB_val k = {klen, (void *)key}, v = {vlen, (void *)val};
  json_t *ev = event_json(&k, &v, s->town_len);
  /* a damaged event is passed over, not read again on every call */
  if (klen >= s->town_len + 8) {
    s->last = (uint64_t)core_key_get_time(key + s->town_len);
    s->any = 1;
  }
  if (ev)
    json_array_append_new(s->out, ev);
  return json_array_size(s->out) >= s->max ? TWIN_STOP : TWIN_OK;
}

int api_events_since(core_host *h, MDB_txn *txn, const core_town *town,
                     uint64_t after, size_t max, json_t **out, uint64_t *last)
{
  *out = json_array();
  if (!*out)
    return 500;
  if (!max || after >= (uint64_t)INT64_MAX)
    return 0;
  core_key lo = {.len = 0}, hi;
  core_key_part(&lo, town->id);
  evt_scan s = {.out = *out, .max = max, .town_len = lo.len};
  hi = lo;
  core_key_prefix_end(&hi);
  core_key_time(&lo, (twin_time)(after + 1));
  core_view v = {h->store, txn, NULL};
  if (core_view_scan(&v, CORE_DB_EVT, &lo, &hi, evt_visit, &s)) {
    json_decref(*out);
    *out = NULL;
    return 500;
  }
  if (s.any && last)
    *last = s.last;
  return 0;
}

/* Up to max of the town's newest events, oldest first, walking back from
 * the end of its keys. */
static int events_newest(core_host *h, MDB_txn *txn, const core_town *town,
                         size_t max, json_t *out)
{
  core_key lo = {.len = 0}, hi;
  core_key_part(&lo, town->id);
  hi = lo;
  core_key_prefix_end(&hi);
  MDB_cursor *cur;
  int m = mdb_cursor_open(txn, h->store->dbi[CORE_DB_EVT], &cur);
  if (m)
    return TWIN_ERR_STORE;
  MDB_val k = {hi.len, hi.b}, v;
  m = mdb_cursor_get(cur, &k, &v, MDB_SET_RANGE);
  m = m ? mdb_cursor_get(cur, &k, &v, MDB_LAST)
        : mdb_cursor_get(cur, &k, &v, MDB_PREV);
  while (!m && json_array_size(out) < max && k.mv_size > lo.len &&
         !memcmp(k.mv_data, lo.b, lo.len)) {
    json_t *ev = event_json(&k, &v, lo.len);
    if (ev)
      json_array_insert_new(out, 0, ev);
    m = mdb_cursor_get(cur, &k, &v, MDB_PREV);
  }
  mdb_cursor_close(cur);
  return m && m != MDB_NOTFOUND ? TWIN_ERR_STORE : TWIN_OK;
}

uint64_t api_events_last_seq(core_host *h, MDB_txn *txn, const core_town *town)
{
  uint64_t seq = 0;
  /* The newest row, even one whose JSON is damaged, still moves the end. */
  core_key lo = {.len = 0}, hi;
  core_key_part(&lo, town->id);
  hi = lo;
  core_key_prefix_end(&hi);
  MDB_cursor *cur;
  if (!mdb_cursor_open(txn, h->store->dbi[CORE_DB_EVT], &cur)) {
    MDB_val k = {hi.len, hi.b}, v;
    int m = mdb_cursor_get(cur, &k, &v, MDB_SET_RANGE);
    m = m ? mdb_cursor_get(cur, &k, &v, MDB_LAST)
          : mdb_cursor_get(cur, &k, &v, MDB_PREV);
    if (!m && k.mv_size == lo.len + 8 && !memcmp(k.mv_data, lo.b, lo.len))
      seq = (uint64_t)core_key_get_time((const uint8_t *)k.mv_data + lo.len);
    mdb_cursor_close(cur);
  }
  return seq;
}

int api_events(core_host *h, MDB_txn *txn, const core_town *town,
               const api_args *a, json_t **out, api_error *e)
{
  static const char *const known[] = {"limit", "after", NULL};
  *out = NULL;
  const char *limit_s, *after_s;
  int rc = api_args_check(a, known, e);
  if (rc || (rc = arg_once(a, "limit", &limit_s, e)) ||
      (rc = arg_once(a, "after", &after_s, e)))
    return rc;
  long limit = 50, after = 0;
  if ((limit_s &&
       (rc = api_parse_count("limit", limit_s, 1, 1000, &limit, e))) ||
      (after_s &&
       (rc = api_parse_count("after", after_s, 0, LONG_MAX, &after, e))))
    return rc;
  json_t *list = NULL;
  if (after_s) {
    if (api_events_since(h, txn, town, (uint64_t)after, (size_t)limit, &list,
                         NULL))
      return internal(e, TWIN_ERR_STORE);
  } else {
    list = json_array();
    if (!list || (rc = events_newest(h, txn, town, (size_t)limit, list))) {
      json_decref(list);
      return internal(e, rc ? rc : TWIN_ERR_NOMEM);
    }
  }
  *out = json_pack("{s:o}", "events", list);
  return *out ? 0 : internal(e, TWIN_ERR_NOMEM);
}
