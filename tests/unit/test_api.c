/*
 * test_api.c — the read side of the HTTP API on a real LMDB in a temp
 * folder: entity listing with every parameter (plugin, type, filters, near
 * and radius, limits, cursors through every page), one entity, history raw
 * and aggregated (values worked out by hand), events newest and after, and
 * every malformed parameter with the status, code and field it earns.
 */
#include "testutil.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "api.h"
#include "store.h"

/* 2023-11-14T22:00:00Z, a whole hour. */
#define B INT64_C(1699999200000)
#define MIN_MS 60000
#define HOUR_MS 3600000

static struct {
  char *dir;
  core_host h;
  core_town alpha, beta, gamma;
  MDB_txn *txn;
} fx;

static core_town_plugin alpha_plugins[] = {
    {"parking", "{}", -1, 1, -1, -1}, {"sensors", "{}", -1, 1, -1, -1}, {"empty", "{}", -1, 0, -1, -1}};
static core_town_plugin beta_plugins[] = {{"parking", "{}", -1, 1, -1, -1}};

/* ---- writing rows ---------------------------------------------------------
 */

static void key_entity(core_key *k, const char *town, const char *plugin,
                       const char *type, const char *id, const char *attr)
{
  k->len = 0;
  assert_true(core_key_part(k, town) && core_key_part(k, plugin) &&
              core_key_part(k, type) && core_key_part(k, id) &&
              core_key_part(k, attr));
}

static void put(MDB_txn *txn, int db, const core_key *k, const void *val,
                size_t vlen)
{
  MDB_val mk = {k->len, (void *)k->b}, mv = {vlen, (void *)val};
  assert_int_equal(mdb_put(txn, fx.h.store->dbi[db], &mk, &mv, 0), 0);
}

static void put_attr(MDB_txn *txn, const char *town, const char *plugin,
                     const char *type, const char *id, const char *attr,
                     twin_value v)
{
  core_key k;
  key_entity(&k, town, plugin, type, id, attr);
  uint8_t buf[512];
  size_t n = core_value_size(&v, 1);
  assert_true(n <= sizeof buf);
  core_value_encode(&v, B, 1, buf);
  put(txn, CORE_DB_ENT, &k, buf, n);
}

static void put_obs(MDB_txn *txn, const char *town, const char *plugin,
                    const char *type, const char *id, const char *attr,
                    twin_time t, twin_value v)
{
  core_key k;
  key_entity(&k, town, plugin, type, id, attr);
  core_key_time(&k, t);
  uint8_t buf[512];
  size_t n = core_value_size(&v, 0);
  core_value_encode(&v, 0, 0, buf);
  put(txn, CORE_DB_OBS, &k, buf, n);
}

static void put_evt(MDB_txn *txn, const char *town, int64_t seq,
                    const char *json)
{
  core_key k = {.len = 0};
  core_key_part(&k, town);
  core_key_time(&k, seq);
  put(txn, CORE_DB_EVT, &k, json, strlen(json));
}

static twin_value str(const char *s)
{
  return twin_string(s, strlen(s));
}

/*
 * alpha: parking/Lot/p01..p25 with free = i, name "lot-i", open = (i even),
 *   lat 48 + i/1024 (binary fractions, so equal distances come out
 *   exactly equal), lon 12 (p25 has no position), p03 has note = null;
 *   parking/Garage/g1 far away (49, 12), parking/Garage/g2 exactly where
 *   p10 is (48.009765625, 12); sensors/Gauge/s1 (level, no position) with the
 *   history below; sensors/Gauge/h1 with history only.
 * beta: parking/Lot/b1.
 * Events: alpha 1, 2, 4, 7 (and a damaged row at 5), beta 3, 6.
 */
static int setup(void **state)
{
  (void)state;
  setenv("TWINHOST_MAP_MIB", "16", 1);
  fx.dir = tu_tempdir();
  core_err err;
  assert_int_equal(core_store_open(fx.dir, &fx.h.store, &err), TWIN_OK);
  fx.alpha =
      (core_town){.id = "alpha", .plugins = alpha_plugins, .n_plugins = 3};
  fx.beta = (core_town){.id = "beta", .plugins = beta_plugins, .n_plugins = 1};
  fx.gamma = (core_town){.id = "gamma"};
  MDB_txn *txn;
  assert_int_equal(core_store_begin_write(fx.h.store, &txn, &err), TWIN_OK);
  for (int i = 1; i <= 25; i++) {
    char id[8], name[16];
    snprintf(id, sizeof id, "p%02d", i);
    snprintf(name, sizeof name, "lot-%d", i);
    put_attr(txn, "alpha", "parking", "Lot", id, "free", twin_integer(i));
    put_attr(txn, "alpha", "parking", "Lot", id, "name", str(name));
    put_attr(txn, "alpha", "parking", "Lot", id, "open", twin_bool(i % 2 == 0));
    if (i < 25) {
      put_attr(txn, "alpha", "parking", "Lot", id, "lat",
               twin_number(48.0 + i / 1024.0));
      put_attr(txn, "alpha", "parking", "Lot", id, "lon", twin_number(12.0));
    }
  }
  twin_value null = {.type = TWIN_VALUE_NULL};
  put_attr(txn, "alpha", "parking", "Lot", "p03", "note", null);
  put_attr(txn, "alpha", "parking", "Garage", "g1", "lat", twin_number(49));
  put_attr(txn, "alpha", "parking", "Garage", "g1", "lon", twin_number(12));
  put_attr(txn, "alpha", "parking", "Garage", "g2", "lat",
           twin_number(48.0 + 10 / 1024.0));
  put_attr(txn, "alpha", "parking", "Garage", "g2", "lon", twin_number(12));
  put_attr(txn, "alpha", "sensors", "Gauge", "s1", "level", twin_number(7));
  put_attr(txn, "beta", "parking", "Lot", "b1", "free", twin_integer(1));

  const char *s1[] = {"alpha", "sensors", "Gauge", "s1", "level"};
#define OBS(t, v) put_obs(txn, s1[0], s1[1], s1[2], s1[3], s1[4], (t), (v))
  OBS(B, twin_integer(10));
  OBS(B + MIN_MS, twin_number(20));
  OBS(B + 2 * MIN_MS, twin_bool(1));
  OBS(B + 15 * MIN_MS, str("high"));
  OBS(B + 1000000, twin_integer(30)); /* 22:16:40 */
  OBS(B + 2 * HOUR_MS + 500, twin_integer(5));
  OBS(B + 2 * HOUR_MS + 1000, twin_number(7));
#undef OBS
  put_obs(txn, "alpha", "sensors", "Gauge", "s1", "other", B, twin_integer(1));
  put_obs(txn, "beta", "sensors", "Gauge", "s1", "level", B, twin_integer(99));
  put_obs(txn, "alpha", "sensors", "Gauge", "h1", "level", B, twin_integer(4));

  put_evt(txn, "alpha", 1, "{\"message\":\"a1\",\"level\":\"info\"}");
  put_evt(txn, "alpha", 2, "{\"message\":\"a2\",\"level\":\"info\"}");
  put_evt(txn, "beta", 3, "{\"message\":\"b3\",\"level\":\"info\"}");
  put_evt(txn, "alpha", 4, "{\"message\":\"a4\",\"level\":\"warning\"}");
  put_evt(txn, "alpha", 5, "{damaged");
  put_evt(txn, "beta", 6, "{\"message\":\"b6\",\"level\":\"info\"}");
  put_evt(txn, "alpha", 7, "{\"message\":\"a7\",\"level\":\"error\"}");
  assert_int_equal(mdb_txn_commit(txn), 0);
  return 0;
}

static int teardown(void **state)
{
  (void)state;
  core_store_close(fx.h.store);
  tu_rmtree(fx.dir);
  free(fx.dir);
  return 0;
}

static int begin(void **state)
{
  (void)state;
  core_err err;
  assert_int_equal(core_store_begin_read(fx.h.store, &fx.txn, &err), TWIN_OK);
  return 0;
}

static int end(void **state)
{
  (void)state;
  core_store_end_read(fx.h.store, fx.txn);
  return 0;
}

/* ---- calling the API with a query string ----------------------------------
 */

typedef struct query {
  char buf[2048];
  api_arg v[32];
  api_args a;
} query;

/* "a=1&b=2" split as http.c would (no percent-decoding needed here). */
static const api_args *parse_query(query *q, const char *s)
{
  snprintf(q->buf, sizeof q->buf, "%s", s);
  q->a.v = q->v;
  q->a.n = 0;
  char *p = q->buf;
  while (*p) {
    char *amp = strchr(p, '&');
    if (amp)
      *amp = 0;
    char *eq = strchr(p, '=');
    if (eq)
      *eq = 0;
    q->v[q->a.n++] = (api_arg){p, eq ? eq + 1 : ""};
    if (!amp)
      break;
    p = amp + 1;
  }
  return &q->a;
}

static json_t *entities_in(const core_town *t, const char *qs)
{
  query q;
  api_error e;
  json_t *out = NULL;
  int st = api_entities(&fx.h, fx.txn, t, parse_query(&q, qs), &out, &e);
  if (st)
    fail_msg("entities?%s: %d %s: %s", qs, st, e.code, e.message);
  assert_non_null(out);
  return out;
}

static json_t *entities(const char *qs)
{
  return entities_in(&fx.alpha, qs);
}

/* ids of a page, comma-separated */
static char *ids(json_t *page)
{
  static char buf[4096];
  buf[0] = 0;
  size_t i;
  json_t *ent;
  json_array_foreach(json_object_get(page, "entities"), i, ent)
  {
    size_t n = strlen(buf);
    snprintf(buf + n, sizeof buf - n, "%s%s", i ? "," : "",
             json_string_value(json_object_get(ent, "id")));
  }
  return buf;
}

static void assert_ids(const char *qs, const char *want)
{
  json_t *page = entities(qs);
  assert_string_equal(ids(page), want);
  json_decref(page);
}

static void assert_api_error(int st, const api_error *e, int http,
                             const char *code, const char *field)
{
  assert_int_equal(st, http);
  assert_int_equal(e->http, http);
  assert_string_equal(e->code, code);
  assert_string_equal(e->field, field);
  assert_true(strlen(e->message) > 10);
  /* the body http.c sends */
  json_t *j = api_error_json(e);
  assert_non_null(j);
  assert_string_equal(
      json_string_value(json_object_get(json_object_get(j, "error"), "code")),
      code);
  json_decref(j);
}

static void entities_fails(const char *qs, int http, const char *code,
                           const char *field, const char *in_message)
{
  query q;
  api_error e;
  json_t *out = (json_t *)1;
  int st =
      api_entities(&fx.h, fx.txn, &fx.alpha, parse_query(&q, qs), &out, &e);
  if (!st)
    fail_msg("entities?%s succeeded", qs);
  assert_null(out);
  assert_api_error(st, &e, http, code, field);
  if (in_message && !strstr(e.message, in_message))
    fail_msg("entities?%s: '%s' not in: %s", qs, in_message, e.message);
}

/* ---- parameters ------------------------------------------------------------
 */

static void times_parse_as_rfc_3339_with_zone_or_milliseconds(void **state)
{
  (void)state;
  twin_time t;
  api_error e;
  assert_int_equal(api_parse_time("from", "1700000000000", &t, &e), 0);
  assert_true(t == INT64_C(1700000000000));
  assert_int_equal(api_parse_time("from", "-1000", &t, &e), 0);
  assert_true(t == -1000);
  assert_int_equal(api_parse_time("from", "2026-11-27T11:00:00+01:00", &t, &e),
                   0);
  assert_true(t == INT64_C(1795773600000));
  const char *bad[] = {
      "",    "2026-11-27",        "2026-11-27T10:00:00",    "garbage",
      "12x", "99999999999999999", "99999999999999999999999"};
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    assert_int_equal(api_parse_time("to", bad[i], &t, &e), 400);
    assert_string_equal(e.code, "bad_parameter");
    assert_string_equal(e.field, "to");
  }
}

static void counts_must_be_whole_numbers_in_range(void **state)
{
  (void)state;
  long n;
  api_error e;
  assert_int_equal(api_parse_count("limit", "1000", 1, 1000, &n, &e), 0);
  assert_int_equal(n, 1000);
  const char *bad[] = {"0",  "1001", "x",  "-1",  "",
                       " 5", "+5",   "5x", "1e3", "99999999999999999999999"};
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    assert_int_equal(api_parse_count("limit", bad[i], 1, 1000, &n, &e), 400);
    assert_string_equal(e.field, "limit");
    assert_non_null(strstr(e.message, "from 1 to 1000"));
  }
}

static void times_print_milliseconds_only_when_not_zero(void **state)
{
  (void)state;
  char buf[48];
  api_format_time(B, buf, sizeof buf);
  assert_string_equal(buf, "2023-11-14T22:00:00Z");
  api_format_time(B + 250, buf, sizeof buf);
  assert_string_equal(buf, "2023-11-14T22:00:00.250Z");
  api_format_time(-1, buf, sizeof buf);
  assert_string_equal(buf, "1969-12-31T23:59:59.999Z");
  api_format_time(951782400000, buf, sizeof buf);
  assert_string_equal(buf, "2000-02-29T00:00:00Z");
  /* the same text as the C library's gmtime_r gives, over years 0..9999
   * and beyond, leap days and both sides of 1970 included (core_format_time
   * does the date arithmetic itself) */
  const twin_time step = 86400000LL * 97 + 3600123;
  for (twin_time t = -62200000000000LL; t < 253500000000000LL; t += step) {
    char want[48];
    long long ms = t % 1000, secs = t / 1000;
    if (ms < 0) {
      ms += 1000;
      secs -= 1;
    }
    time_t tt = (time_t)secs;
    struct tm tm;
    assert_non_null(gmtime_r(&tt, &tm));
    /* ISO 8601 expanded years: a sign and at least four digits */
    int y = tm.tm_year + 1900;
    snprintf(want, sizeof want, "%s%04d-%02d-%02dT%02d:%02d:%02d.%03dZ",
             y < 0 ? "-" : y > 9999 ? "+" : "", y < 0 ? -y : y, tm.tm_mon + 1,
             tm.tm_mday,
             tm.tm_hour, tm.tm_min, tm.tm_sec, (int)ms);
    size_t n = strlen(want);
    if (n >= 5 && !strcmp(want + n - 5, ".000Z"))
      memcpy(want + n - 5, "Z", 2);
    api_format_time(t, buf, sizeof buf);
    assert_string_equal(buf, want);
  }
}

static void an_unknown_parameter_is_refused_with_a_suggestion(void **state)
{
  (void)state;
  entities_fails("limt=5", 400, "bad_parameter", "limt",
                 "did you mean \"limit\"");
  entities_fails("plugin=parking&bogus", 400, "bad_parameter", "bogus",
                 "plugin, type");
  entities_fails("limit=5&limit=6", 400, "bad_parameter", "limit", "once");
}

static void errors_with_text_that_is_not_utf8_still_make_json(void **state)
{
  (void)state;
  api_error e;
  api_fail(&e, 400, "bad_parameter", "li\xffmit", "bad '%s'", "\xc3\x28zz");
  json_t *j = api_error_json(&e);
  assert_non_null(j);
  json_t *err = json_object_get(j, "error");
  assert_string_equal(json_string_value(json_object_get(err, "code")),
                      "bad_parameter");
  assert_non_null(json_string_value(json_object_get(err, "field")));
  json_decref(j);
  api_fail(&e, 404, "unknown_route", NULL, "no route");
  j = api_error_json(&e);
  assert_null(json_object_get(json_object_get(j, "error"), "field"));
  json_decref(j);
}

/* ---- entities ---------------------------------------------------------------
 */

static void entities_lists_all_in_key_order_with_no_next(void **state)
{
  (void)state;
  json_t *page = entities("");
  json_t *list = json_object_get(page, "entities");
  assert_int_equal(json_array_size(list), 28);
  assert_true(json_is_null(json_object_get(page, "next")));
  json_t *first = json_array_get(list, 0);
  assert_string_equal(json_string_value(json_object_get(first, "plugin")),
                      "parking");
  assert_string_equal(json_string_value(json_object_get(first, "type")),
                      "Garage");
  assert_string_equal(json_string_value(json_object_get(first, "id")), "g1");
  assert_string_equal(
      json_string_value(json_object_get(json_array_get(list, 2), "id")), "p01");
  json_t *last = json_array_get(list, 27);
  assert_string_equal(json_string_value(json_object_get(last, "id")), "s1");
  json_t *level = json_object_get(json_object_get(last, "attrs"), "level");
  assert_true(json_real_value(json_object_get(level, "value")) == 7);
  assert_string_equal(json_string_value(json_object_get(level, "time")),
                      "2023-11-14T22:00:00Z");
  json_decref(page);
}

static void entities_are_scoped_by_plugin_and_type(void **state)
{
  (void)state;
  json_t *page = entities("plugin=parking");
  assert_int_equal(json_array_size(json_object_get(page, "entities")), 27);
  json_decref(page);
  page = entities("plugin=parking&type=Garage");
  assert_string_equal(ids(page), "g1,g2");
  json_decref(page);
  assert_ids("plugin=sensors", "s1");
  assert_ids("plugin=sensors&type=Nope", "");
  /* enabled or not, a plugin of the town with no entities lists none */
  assert_ids("plugin=empty", "");
  assert_ids("plugin=rules", "");
  /* towns never see each other's entities */
  json_t *beta = entities_in(&fx.beta, "");
  assert_string_equal(ids(beta), "b1");
  json_decref(beta);
}

static void entities_of_a_plugin_the_town_lacks_is_404(void **state)
{
  (void)state;
  entities_fails("plugin=parkin", 404, "unknown_plugin", "plugin",
                 "did you mean \"parking\"");
  entities_fails("plugin=weather", 404, "unknown_plugin", "plugin",
                 "parking, sensors, empty");
  query q;
  api_error e;
  json_t *out;
  assert_int_equal(api_entities(&fx.h, fx.txn, &fx.beta,
                                parse_query(&q, "plugin=sensors"), &out, &e),
                   404);
}

static void a_type_without_a_plugin_is_refused(void **state)
{
  (void)state;
  entities_fails("type=Lot", 400, "bad_parameter", "type", "plugin=");
}

static void filters_compare_numbers_strings_and_literals(void **state)
{
  (void)state;
  const char *lot = "plugin=parking&type=Lot&";
  struct {
    const char *filter, *want;
  } cases[] = {
      {"free>=23", "p23,p24,p25"},
      {"free>23", "p24,p25"},
      {"free<=2", "p01,p02"},
      {"free<2", "p01"},
      {"free==5", "p05"},
      {"free==5.0", "p05"},
      {"free==-0.5e1", ""},
      {"name==lot-7", "p07"},
      {"name>lot-8", "p09"},
      {"name<lot-1", ""},
      {"name==", ""},
      {"open==true&filter=free<=6", "p02,p04,p06"},
      {"open!=true&filter=free<=6", "p01,p03,p05"},
      {"open==false&filter=free>20", "p21,p23,p25"},
      {"open>false", ""},
      {"note==null", "p03"},
      {"note!=null&filter=free<=4", ""}, /* only p03 has note */
      {"nosuch==1", ""},
      {"nosuch!=1", ""},
      {"free>=10&filter=free<12", "p10,p11"},
      {"free==lot-3", ""}, /* a number is never equal to a string */
      {"free!=lot-3&filter=free<2", "p01"},
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    char qs[256];
    snprintf(qs, sizeof qs, "%sfilter=%s", lot, cases[i].filter);
    json_t *page = entities(qs);
    if (strcmp(ids(page), cases[i].want))
      fail_msg("filter=%s: got '%s', want '%s'", cases[i].filter, ids(page),
               cases[i].want);
    json_decref(page);
  }
}

static void a_malformed_filter_is_refused_with_an_example(void **state)
{
  (void)state;
  const char *bad[] = {"filter=free",   "filter=",       "filter===5",
                       "filter=free=5", "filter=free!5", "filter=<3",
                       "filter=a\tb==1"};
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
    entities_fails(bad[i], 400, "bad_parameter", "filter", "e.g. filter=");
  char many[1024] = "plugin=parking";
  for (int i = 0; i < 17; i++)
    strcat(many, "&filter=free>0");
  entities_fails(many, 400, "bad_parameter", "filter", "at most 16");
}

/* Follow next from qs until null; the ids of every page, in order. */
static char *all_pages(const char *qs, size_t *pages)
{
  static char all[8192];
  char cursor[1100] = "";
  all[0] = 0;
  *pages = 0;
  for (;;) {
    char full[2048];
    snprintf(full, sizeof full, "%s%s%s", qs, cursor[0] ? "&cursor=" : "",
             cursor);
    json_t *page = entities(full);
    const char *got = ids(page);
    assert_true(*got); /* never an empty page */
    size_t n = strlen(all);
    snprintf(all + n, sizeof all - n, "%s%s", n ? "," : "", got);
    (*pages)++;
    const char *next = json_string_value(json_object_get(page, "next"));
    if (next)
      snprintf(cursor, sizeof cursor, "%s", next);
    json_decref(page);
    if (!next)
      return all;
    assert_true(*pages < 100);
  }
}

static void cursors_page_through_every_entity_exactly_once(void **state)
{
  (void)state;
  json_t *page = entities("");
  char whole[4096];
  snprintf(whole, sizeof whole, "%s", ids(page));
  json_decref(page);
  size_t pages;
  assert_string_equal(all_pages("limit=4", &pages), whole);
  assert_int_equal(pages, 7);
  assert_string_equal(all_pages("limit=1", &pages), whole);
  assert_int_equal(pages, 28);
  /* a page that ends exactly at the end says so */
  page = entities("limit=28");
  assert_true(json_is_null(json_object_get(page, "next")));
  json_decref(page);
  page = entities("limit=27");
  assert_true(json_is_string(json_object_get(page, "next")));
  json_decref(page);
  /* with a filter and a plugin */
  assert_string_equal(
      all_pages("plugin=parking&filter=open==true&limit=5", &pages),
      "p02,p04,p06,p08,p10,p12,p14,p16,p18,p20,p22,p24");
  assert_int_equal(pages, 3);
}

static json_t *first_page_next(const char *qs, char *cursor, size_t size)
{
  json_t *page = entities(qs);
  const char *next = json_string_value(json_object_get(page, "next"));
  assert_non_null(next);
  snprintf(cursor, size, "%s", next);
  return page;
}

static void a_forged_or_foreign_cursor_is_refused(void **state)
{
  (void)state;
  char cursor[1100], qs[1200];
  json_decref(first_page_next("plugin=parking&limit=2", cursor, sizeof cursor));
  /* as given: fine */
  snprintf(qs, sizeof qs, "plugin=parking&limit=2&cursor=%s", cursor);
  json_decref(entities(qs));
  entities_fails("cursor=garbage!!", 400, "bad_parameter", "cursor", "next");
  entities_fails("cursor=", 400, "bad_parameter", "cursor", NULL);
  entities_fails("cursor=AAAAAAAAAAAAAAAAAAAA", 400, "bad_parameter", "cursor",
                 NULL);
  /* one character changed, or cut short */
  for (size_t i = 0; cursor[i]; i++) {
    char forged[1100];
    snprintf(forged, sizeof forged, "%s", cursor);
    forged[i] = forged[i] == 'A' ? 'B' : 'A';
    snprintf(qs, sizeof qs, "plugin=parking&limit=2&cursor=%s", forged);
    entities_fails(qs, 400, "bad_parameter", "cursor", NULL);
  }
  snprintf(qs, sizeof qs, "plugin=parking&limit=2&cursor=%.*s",
           (int)strlen(cursor) - 3, cursor);
  entities_fails(qs, 400, "bad_parameter", "cursor", NULL);
  /* another query, another town, another order */
  snprintf(qs, sizeof qs, "limit=2&cursor=%s", cursor);
  entities_fails(qs, 400, "bad_parameter", "cursor", "another town or query");
  snprintf(qs, sizeof qs, "plugin=parking&near=48,12&cursor=%s", cursor);
  entities_fails(qs, 400, "bad_parameter", "cursor", NULL);
  query q;
  api_error e;
  json_t *out;
  snprintf(qs, sizeof qs, "plugin=parking&limit=2&cursor=%s", cursor);
  assert_int_equal(
      api_entities(&fx.h, fx.txn, &fx.beta, parse_query(&q, qs), &out, &e),
      400);
  assert_string_equal(e.field, "cursor");
}

static void limits_out_of_range_are_refused(void **state)
{
  (void)state;
  const char *bad[] = {"limit=0", "limit=1001", "limit=x", "limit=-1",
                       "limit="};
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
    entities_fails(bad[i], 400, "bad_parameter", "limit", "from 1 to 1000");
  json_t *page = entities("limit=1000");
  assert_int_equal(json_array_size(json_object_get(page, "entities")), 28);
  json_decref(page);
}

/* ---- near
 * --------------------------------------------------------------------- */

static double distance_of(json_t *page, size_t i)
{
  json_t *ent = json_array_get(json_object_get(page, "entities"), i);
  json_t *d = json_object_get(ent, "distance_m");
  assert_true(json_is_real(d));
  return json_real_value(d);
}

static void near_sorts_by_distance_then_key_within_the_radius(void **state)
{
  (void)state;
  /* Lots sit 1/1024 deg of latitude apart: 108.589 m on the mean Earth
   * radius 6371008.8 m. From p10's spot, radius 1500 m reaches |i-10| <= 13
   * (13 steps: 1411.66 m; 14: 1520.25 m): p01..p23, plus g2 at p10's spot;
   * g1 is 111 km away, p25 and s1 have no position. */
  json_t *page = entities("near=48.009765625,12&radius_m=1500&limit=1000");
  json_t *list = json_object_get(page, "entities");
  assert_int_equal(json_array_size(list), 24);
  assert_string_equal(ids(page),
                      "g2,p10,p09,p11,p08,p12,p07,p13,p06,p14,p05,p15,p04,"
                      "p16,p03,p17,p02,p18,p01,p19,p20,p21,p22,p23");
  assert_true(distance_of(page, 0) == 0);
  assert_true(distance_of(page, 1) == 0);
  assert_true(fabs(distance_of(page, 2) - 108.6) < 1e-9);
  assert_true(fabs(distance_of(page, 3) - 108.6) < 1e-9);
  assert_true(fabs(distance_of(page, 23) - 1411.7) < 1e-9);
  json_decref(page);
  /* default radius 1000 m: |i-10| <= 9 (977.3 m; 10: 1085.9 m), so
   * p01..p19 and g2 */
  page = entities("near=48.009765625,12");
  assert_int_equal(json_array_size(json_object_get(page, "entities")), 20);
  json_decref(page);
  assert_ids("near=48.009765625,12&radius_m=1", "g2,p10");
  /* filters and scope still apply */
  assert_ids("near=48.009765625,12&plugin=parking&type=Lot&filter=free>=12"
             "&radius_m=250",
             "p12");
  /* a range that reaches nothing */
  assert_ids("near=-33.9,151.2&radius_m=100000", "");
}

static void near_pages_through_the_same_order(void **state)
{
  (void)state;
  json_t *page = entities("near=48.009765625,12&radius_m=1500&limit=1000");
  char whole[4096];
  snprintf(whole, sizeof whole, "%s", ids(page));
  json_decref(page);
  size_t pages;
  assert_string_equal(
      all_pages("near=48.009765625,12&radius_m=1500&limit=5", &pages), whole);
  assert_int_equal(pages, 5);
  assert_string_equal(
      all_pages("near=48.009765625,12&radius_m=1500&limit=1", &pages), whole);
  /* the cursor belongs to its near and radius */
  char cursor[1100], qs[1200];
  json_decref(first_page_next("near=48.009765625,12&radius_m=1500&limit=2",
                              cursor, sizeof cursor));
  snprintf(qs, sizeof qs,
           "near=48.009765625,12&radius_m=1400&limit=2&cursor=%s", cursor);
  entities_fails(qs, 400, "bad_parameter", "cursor", NULL);
  snprintf(qs, sizeof qs, "limit=2&cursor=%s", cursor);
  entities_fails(qs, 400, "bad_parameter", "cursor", NULL);
}

static void a_malformed_near_or_radius_is_refused(void **state)
{
  (void)state;
  const char *bad[] = {
      "near=48.0",    "near=91,12",  "near=48,181",  "near=a,b",
      "near=48,12,3", "near=",       "near=,12",     "near=48, 12",
      "near=nan,12",  "near=48,inf", "near=0x10,12", "near=-90.5,0"};
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
    entities_fails(bad[i], 400, "bad_parameter", "near", "e.g. near=");
  entities_fails("radius_m=500", 400, "bad_parameter", "radius_m", "near");
  const char *radius[] = {"0", "100001", "abc", "", "-5", "0.5"};
  for (size_t i = 0; i < sizeof radius / sizeof radius[0]; i++) {
    char qs[64];
    snprintf(qs, sizeof qs, "near=48,12&radius_m=%s", radius[i]);
    entities_fails(qs, 400, "bad_parameter", "radius_m", "1 to 100000");
  }
  json_decref(entities("near=-90,-180&radius_m=100000"));
  json_decref(entities("near=90,180&radius_m=1"));
}

/* ---- one entity
 * ----------------------------------------------------------------- */

static void one_entity_or_404_pointing_at_the_list(void **state)
{
  (void)state;
  json_t *out;
  api_error e;
  assert_int_equal(
      api_entity(&fx.h, fx.txn, &fx.alpha, "parking", "Lot", "p07", &out, &e),
      0);
  assert_string_equal(json_string_value(json_object_get(out, "id")), "p07");
  json_t *attrs = json_object_get(out, "attrs");
  assert_int_equal(json_object_size(attrs), 5);
  assert_int_equal(json_integer_value(json_object_get(
                       json_object_get(attrs, "free"), "value")),
                   7);
  json_decref(out);
  int st =
      api_entity(&fx.h, fx.txn, &fx.alpha, "parking", "Lot", "p99", &out, &e);
  assert_api_error(st, &e, 404, "unknown_entity", "");
  assert_non_null(strstr(e.message, "alpha"));
  assert_non_null(strstr(e.message, "parking/Lot/p99"));
  assert_non_null(
      strstr(e.message, "/v1/towns/alpha/entities?plugin=parking&type=Lot"));
  /* p07 of beta does not exist; neither does a name no key can hold */
  assert_int_equal(
      api_entity(&fx.h, fx.txn, &fx.beta, "parking", "Lot", "p07", &out, &e),
      404);
  assert_int_equal(
      api_entity(&fx.h, fx.txn, &fx.alpha, "parking", "Lot", "a\nb", &out, &e),
      404);
  assert_int_equal(
      api_entity(&fx.h, fx.txn, &fx.alpha, "parkin", "Lot", "p07", &out, &e),
      404);
  assert_string_equal(e.code, "unknown_plugin");
}

/* ---- history
 * ------------------------------------------------------------------- */

static int history_of(const char *id, const char *attr, const char *qs,
                      json_t **out, api_error *e)
{
  query q;
  return api_history(&fx.h, fx.txn, &fx.alpha, "sensors", "Gauge", id, attr,
                     parse_query(&q, qs), out, e);
}

static json_t *history(const char *qs)
{
  json_t *out = NULL;
  api_error e;
  int st = history_of("s1", "level", qs, &out, &e);
  if (st)
    fail_msg("history?%s: %d %s: %s", qs, st, e.code, e.message);
  return out;
}

/* "time=value" of each point (value as JSON, count appended when given). */
static char *points(json_t *h)
{
  static char buf[4096];
  buf[0] = 0;
  size_t i;
  json_t *p;
  json_array_foreach(json_object_get(h, "points"), i, p)
  {
    char *v = json_dumps(json_object_get(p, "value"),
                         JSON_ENCODE_ANY | JSON_REAL_PRECISION(10));
    size_t n = strlen(buf);
    json_t *count = json_object_get(p, "count");
    n += (size_t)snprintf(buf + n, sizeof buf - n, "%s%s=%s", i ? " " : "",
                          json_string_value(json_object_get(p, "time")), v);
    if (count)
      snprintf(buf + n, sizeof buf - n, "/%lld",
               (long long)json_integer_value(count));
    free(v);
  }
  return buf;
}

static void assert_history(const char *qs, const char *want,
                           const char *want_next)
{
  json_t *h = history(qs);
  if (strcmp(points(h), want))
    fail_msg("history?%s:\n got  %s\n want %s", qs, points(h), want);
  const char *next = json_string_value(json_object_get(h, "next"));
  if (want_next) {
    assert_non_null(next);
    assert_string_equal(next, want_next);
  } else {
    assert_true(json_is_null(json_object_get(h, "next")));
  }
  json_decref(h);
}

#define T0 "2023-11-14T22:00:00Z"
#define T1 "2023-11-14T22:01:00Z"
#define T2 "2023-11-14T22:02:00Z"
#define T15 "2023-11-14T22:15:00Z"
#define T16 "2023-11-14T22:16:40Z"
#define T2H5 "2023-11-15T00:00:00.500Z"
#define T2H10 "2023-11-15T00:00:01Z"

static void history_raw_returns_points_oldest_first(void **state)
{
  (void)state;
  json_t *h = history("");
  assert_string_equal(json_string_value(json_object_get(h, "attr")), "level");
  assert_string_equal(json_string_value(json_object_get(h, "id")), "s1");
  json_decref(h);
  assert_history("",
                 T0 "=10 " T1 "=20.0 " T2 "=true " T15 "=\"high\" " T16
                    "=30 " T2H5 "=5 " T2H10 "=7.0",
                 NULL);
  /* from inclusive, to exclusive, in both notations */
  assert_history("from=" T1 "&to=" T15, T1 "=20.0 " T2 "=true", NULL);
  assert_history("from=1699999260000&to=1699999320001", T1 "=20.0 " T2 "=true",
                 NULL);
  assert_history("from=2023-11-15T01:00:00+01:00", T2H5 "=5 " T2H10 "=7.0",
                 NULL);
  assert_history("from=2024-01-01T00:00:00Z", "", NULL);
}

static void history_raw_pages_with_next(void **state)
{
  (void)state;
  assert_history("limit=3", T0 "=10 " T1 "=20.0 " T2 "=true", T15);
  assert_history("limit=3&from=" T15, T15 "=\"high\" " T16 "=30 " T2H5 "=5",
                 T2H10);
  assert_history("limit=3&from=" T2H10, T2H10 "=7.0", NULL);
  /* next keeps the milliseconds */
  assert_history("limit=5",
                 T0 "=10 " T1 "=20.0 " T2 "=true " T15 "=\"high\" " T16 "=30",
                 T2H5);
  assert_history("limit=7",
                 T0 "=10 " T1 "=20.0 " T2 "=true " T15 "=\"high\" " T16
                    "=30 " T2H5 "=5 " T2H10 "=7.0",
                 NULL);
}

static void history_aggregates_in_aligned_buckets(void **state)
{
  (void)state;
  /* 15 min buckets: [22:00) 10, 20, true -> 3 values; [22:15) "high", 30;
   * [00:00) 5, 7. The buckets between hold nothing and are left out. */
  assert_history("every=15m",
                 T0 "=10.33333333/3 " T15 "=30.0/2 "
                    "2023-11-15T00:00:00Z=6.0/2",
                 NULL);
  assert_history("every=15m&agg=avg",
                 T0 "=10.33333333/3 " T15 "=30.0/2 "
                    "2023-11-15T00:00:00Z=6.0/2",
                 NULL);
  assert_history("every=15m&agg=min",
                 T0 "=1.0/3 " T15 "=30.0/2 2023-11-15T00:00:00Z=5.0/2", NULL);
  assert_history("every=15m&agg=max",
                 T0 "=20.0/3 " T15 "=30.0/2 2023-11-15T00:00:00Z=7.0/2", NULL);
  assert_history("every=15m&agg=sum",
                 T0 "=31.0/3 " T15 "=30.0/2 2023-11-15T00:00:00Z=12.0/2", NULL);
  assert_history("every=15m&agg=count",
                 T0 "=3/3 " T15 "=2/2 2023-11-15T00:00:00Z=2/2", NULL);
  /* 1 h: 10 + 20 + 1 + 30 over 4 numbers (the string is only counted) */
  assert_history("every=1h", T0 "=15.25/5 2023-11-15T00:00:00Z=6.0/2", NULL);
  /* 1 min: a bucket of a string alone has no average */
  assert_history("every=1m",
                 T0 "=10.0/1 " T1 "=20.0/1 " T2 "=1.0/1 " T15
                    "=null/1 2023-11-14T22:16:00Z=30.0/1 "
                    "2023-11-15T00:00:00Z=6.0/2",
                 NULL);
  assert_history("every=1m&agg=count",
                 T0 "=1/1 " T1 "=1/1 " T2 "=1/1 " T15
                    "=1/1 2023-11-14T22:16:00Z=1/1 "
                    "2023-11-15T00:00:00Z=2/2",
                 NULL);
  /* days start at midnight UTC, whatever from says */
  assert_history("every=1d&agg=count",
                 "2023-11-14T00:00:00Z=5/5 2023-11-15T00:00:00Z=2/2", NULL);
  assert_history("every=1d&agg=sum&from=" T1,
                 "2023-11-14T00:00:00Z=51.0/4 2023-11-15T00:00:00Z=12.0/2",
                 NULL);
  /* 7 s buckets align to multiples of 7 s since 1970, not to the data */
  assert_history("every=7s&agg=count&to=" T1, "2023-11-14T21:59:56Z=1/1", NULL);
  assert_history("every=366d&agg=count", "2023-02-10T00:00:00Z=7/7", NULL);
}

static void history_aggregates_page_by_bucket(void **state)
{
  (void)state;
  assert_history("every=15m&agg=count&limit=2", T0 "=3/3 " T15 "=2/2",
                 "2023-11-15T00:00:00Z");
  assert_history("every=15m&agg=count&limit=2&from=2023-11-15T00:00:00Z",
                 "2023-11-15T00:00:00Z=2/2", NULL);
  assert_history("every=1m&agg=count&limit=1", T0 "=1/1", T1);
  json_t *h = history("every=15m&agg=max");
  assert_string_equal(json_string_value(json_object_get(h, "every")), "15m");
  assert_string_equal(json_string_value(json_object_get(h, "agg")), "max");
  json_decref(h);
}

static void history_of_an_unknown_entity_is_404(void **state)
{
  (void)state;
  json_t *out;
  api_error e;
  int st = history_of("nope", "level", "", &out, &e);
  assert_api_error(st, &e, 404, "unknown_entity", "");
  assert_non_null(strstr(e.message, "sensors/Gauge/nope"));
  /* an entity without history of that attribute: no points */
  assert_int_equal(history_of("s1", "pressure", "", &out, &e), 0);
  assert_int_equal(json_array_size(json_object_get(out, "points")), 0);
  assert_true(json_is_null(json_object_get(out, "next")));
  json_decref(out);
  /* history outlives the entity's current attributes */
  assert_int_equal(history_of("h1", "level", "", &out, &e), 0);
  assert_int_equal(json_array_size(json_object_get(out, "points")), 1);
  json_decref(out);
  query q;
  assert_int_equal(api_history(&fx.h, fx.txn, &fx.alpha, "weather", "Gauge",
                               "s1", "level", parse_query(&q, ""), &out, &e),
                   404);
  assert_string_equal(e.code, "unknown_plugin");
}

static void history_refuses_malformed_parameters(void **state)
{
  (void)state;
  struct {
    const char *qs, *field, *in_message;
  } bad[] = {
      {"from=garbage", "from", "'garbage' is not a time"},
      {"to=2026-13-01T00:00:00Z", "to", "RFC 3339"},
      {"from=2026-01-01", "from", "RFC 3339"},
      {"from=99999999999999999", "from", "out of range"},
      {"from=2000&to=2000", "to", "exclusive"},
      {"from=3000&to=2000", "to", "after from"},
      {"limit=0", "limit", "1 to 100000"},
      {"limit=100001", "limit", "1 to 100000"},
      {"limit=ten", "limit", "'ten'"},
      {"every=0s", "every", "e.g. every=15m"},
      {"every=garbage", "every", "s, m, h or d"},
      {"every=15", "every", NULL},
      {"every=15x", "every", NULL},
      {"every=m", "every", NULL},
      {"every=", "every", NULL},
      {"every=-5m", "every", NULL},
      {"every=367d", "every", "366d"},
      {"every=8785h", "every", NULL},
      {"every=1.5h", "every", NULL},
      {"every=99999999999999999999d", "every", NULL},
      {"agg=avg", "agg", "agg needs every"},
      {"every=1h&agg=median", "agg", "avg, min, max, sum or count"},
      {"every=1h&agg=", "agg", NULL},
      {"form=" T0, "form", "did you mean \"from\""},
      {"from=" T0 "&from=" T1, "from", "once"},
  };
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    json_t *out = (json_t *)1;
    api_error e;
    int st = history_of("s1", "level", bad[i].qs, &out, &e);
    if (st != 400)
      fail_msg("history?%s: got %d, want 400", bad[i].qs, st);
    assert_null(out);
    assert_api_error(st, &e, 400, "bad_parameter", bad[i].field);
    if (bad[i].in_message && !strstr(e.message, bad[i].in_message))
      fail_msg("history?%s: '%s' not in: %s", bad[i].qs, bad[i].in_message,
               e.message);
  }
  /* the edges of every are fine */
  json_decref(history("every=1s"));
  json_decref(history("every=366d"));
  json_decref(history("every=8784h"));
}

/* ---- events
 * -------------------------------------------------------------------- */

static char *seqs(json_t *list)
{
  static char buf[256];
  buf[0] = 0;
  size_t i;
  json_t *ev;
  json_array_foreach(list, i, ev)
  {
    size_t n = strlen(buf);
    snprintf(buf + n, sizeof buf - n, "%s%lld", i ? "," : "",
             (long long)json_integer_value(json_object_get(ev, "seq")));
  }
  return buf;
}

static void assert_events(const core_town *t, const char *qs, const char *want)
{
  query q;
  api_error e;
  json_t *out;
  int st = api_events(&fx.h, fx.txn, t, parse_query(&q, qs), &out, &e);
  if (st)
    fail_msg("events?%s: %d %s", qs, st, e.message);
  assert_string_equal(seqs(json_object_get(out, "events")), want);
  json_decref(out);
}

static void events_newest_oldest_first_or_after_a_seq(void **state)
{
  (void)state;
  /* alpha's row 5 is damaged and skipped */
  assert_events(&fx.alpha, "", "1,2,4,7");
  assert_events(&fx.alpha, "limit=2", "4,7");
  assert_events(&fx.alpha, "limit=1", "7");
  assert_events(&fx.alpha, "after=0", "1,2,4,7");
  assert_events(&fx.alpha, "after=2", "4,7");
  assert_events(&fx.alpha, "after=2&limit=1", "4");
  assert_events(&fx.alpha, "after=7", "");
  assert_events(&fx.alpha, "after=9223372036854775807", "");
  assert_events(&fx.beta, "", "3,6");
  assert_events(&fx.gamma, "", "");
  query q;
  api_error e;
  json_t *out;
  assert_int_equal(api_events(&fx.h, fx.txn, &fx.alpha,
                              parse_query(&q, "limit=1"), &out, &e),
                   0);
  json_t *ev = json_array_get(json_object_get(out, "events"), 0);
  assert_string_equal(json_string_value(json_object_get(ev, "message")), "a7");
  assert_string_equal(json_string_value(json_object_get(ev, "level")), "error");
  json_decref(out);
}

static void events_refuse_malformed_parameters(void **state)
{
  (void)state;
  struct {
    const char *qs, *field;
  } bad[] = {{"limit=0", "limit"}, {"limit=1001", "limit"},
             {"limit=x", "limit"}, {"after=-1", "after"},
             {"after=x", "after"}, {"after=", "after"},
             {"afer=1", "afer"},   {"after=99999999999999999999", "after"}};
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    query q;
    api_error e;
    json_t *out = (json_t *)1;
    int st = api_events(&fx.h, fx.txn, &fx.alpha, parse_query(&q, bad[i].qs),
                        &out, &e);
    assert_api_error(st, &e, 400, "bad_parameter", bad[i].field);
    assert_null(out);
  }
}

static void the_event_stream_reads_since_a_seq(void **state)
{
  (void)state;
  assert_true(api_events_last_seq(&fx.h, fx.txn, &fx.alpha) == 7);
  assert_true(api_events_last_seq(&fx.h, fx.txn, &fx.beta) == 6);
  assert_true(api_events_last_seq(&fx.h, fx.txn, &fx.gamma) == 0);
  json_t *out;
  uint64_t last = 0;
  assert_int_equal(
      api_events_since(&fx.h, fx.txn, &fx.alpha, 1, 2, &out, &last), 0);
  assert_string_equal(seqs(out), "2,4");
  assert_true(last == 4);
  json_decref(out);
  assert_int_equal(
      api_events_since(&fx.h, fx.txn, &fx.alpha, 4, 10, &out, &last), 0);
  assert_string_equal(seqs(out), "7");
  assert_true(last == 7);
  json_decref(out);
  last = 42;
  assert_int_equal(
      api_events_since(&fx.h, fx.txn, &fx.alpha, 7, 10, &out, &last), 0);
  assert_int_equal(json_array_size(out), 0);
  assert_true(last == 42);
  json_decref(out);
  assert_int_equal(
      api_events_since(&fx.h, fx.txn, &fx.beta, 0, 10, &out, &last), 0);
  assert_string_equal(seqs(out), "3,6");
  json_decref(out);
  /* the damaged row 5 is passed over: a stream after 4 asking for one
   * event gets the next whole one */
  last = 0;
  assert_int_equal(
      api_events_since(&fx.h, fx.txn, &fx.alpha, 4, 1, &out, &last), 0);
  assert_string_equal(seqs(out), "7");
  json_decref(out);
}

#define T(fn) cmocka_unit_test_setup_teardown(fn, begin, end)

int main(void)
{
  const struct CMUnitTest tests[] = {
      T(times_parse_as_rfc_3339_with_zone_or_milliseconds),
      T(counts_must_be_whole_numbers_in_range),
      T(times_print_milliseconds_only_when_not_zero),
      T(an_unknown_parameter_is_refused_with_a_suggestion),
      T(errors_with_text_that_is_not_utf8_still_make_json),
      T(entities_lists_all_in_key_order_with_no_next),
      T(entities_are_scoped_by_plugin_and_type),
      T(entities_of_a_plugin_the_town_lacks_is_404),
      T(a_type_without_a_plugin_is_refused),
      T(filters_compare_numbers_strings_and_literals),
      T(a_malformed_filter_is_refused_with_an_example),
      T(cursors_page_through_every_entity_exactly_once),
      T(a_forged_or_foreign_cursor_is_refused),
      T(limits_out_of_range_are_refused),
      T(near_sorts_by_distance_then_key_within_the_radius),
      T(near_pages_through_the_same_order),
      T(a_malformed_near_or_radius_is_refused),
      T(one_entity_or_404_pointing_at_the_list),
      T(history_raw_returns_points_oldest_first),
      T(history_raw_pages_with_next),
      T(history_aggregates_in_aligned_buckets),
      T(history_aggregates_page_by_bucket),
      T(history_of_an_unknown_entity_is_404),
      T(history_refuses_malformed_parameters),
      T(events_newest_oldest_first_or_after_a_seq),
      T(events_refuse_malformed_parameters),
      T(the_event_stream_reads_since_a_seq),
  };
  return cmocka_run_group_tests(tests, setup, teardown);
}
