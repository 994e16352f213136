/*
 * test_parking.c — the parking plugin as a town uses it: the real
 * parking.so loaded by a real host on a real LMDB in a temporary folder,
 * documents sent through the ingest pipeline, answers read back with
 * queries and scenarios. Covers the three input formats (well formed,
 * malformed, implausible, all or nothing), the profile and forecast math on
 * hand-computed history, guidance ranking, closure and event scenarios
 * leaving live state unchanged, and an unknown op.
 *
 * The town's zone is Etc/GMT-2 (UTC+2 all year), so local hours differ from
 * UTC ones without daylight-saving surprises. Documents are written with
 * single quotes for readability; jq() turns them into JSON.
 */
#include "testutil.h"

#include <arpa/inet.h>
#include <jansson.h>
#include <math.h>
#include <netinet/in.h>
#include <pthread.h>
#include <sys/socket.h>
#include <unistd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "host.h"
#include "pipeline.h"

#define TOWN "deggendorf"
#define HOUR_MS 3600000LL
#define DAY_MS (24 * HOUR_MS)

/* Four hand-placed lots around (48.8300, 12.9600): "near" right at the
 * point but dear, "mid" ~334 m north and cheap, "far" ~2.2 km north and
 * free, "full" ~11 m away with no space. */
static const char *lots_config =
    "{'lots':["
    "{'id':'near','name':'Stadtplatz','lat':48.8300,'lon':12.9600,"
    "'total':50,'price':2.0,'category':'garage'},"
    "{'id':'mid','name':'Stadthalle','lat':48.8330,'lon':12.9600,"
    "'total':100,'price':0.5},"
    "{'id':'far','name':'P+R Nord','lat':48.8500,'lon':12.9600,"
    "'total':200,'price':0},"
    "{'id':'full','name':'Klein','lat':48.8301,'lon':12.9600,"
    "'total':10,'price':0}]}";

typedef struct fx {
  char *dir;
  core_host *h;
  core_pipeline *p;
} fx;

typedef struct result {
  int status;
  char reason[1024];
  int called;
  json_t *items; /* refused items (ingest), or NULL */
} result;

static char *jq(const char *s)
{
  char *out = tu_fmt("%s", s);
  for (char *p = out; *p; p++)
    if (*p == '\'')
      *p = '"';
  return out;
}

static char *jqf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static char *jqf(const char *fmt, ...)
{
  va_list ap;
  char buf[8192];
  va_start(ap, fmt);
  vsnprintf(buf, sizeof buf, fmt, ap);
  va_end(ap);
  return jq(buf);
}

static void open_host(fx *f, const char *parking_config)
{
  char *text =
      jqf("{'data_dir':'data','plugin_path':['%s'],'towns':["
          "{'id':'" TOWN "','name':'Deggendorf','timezone':'Etc/GMT-2',"
          "'scripts':'.','plugins':{'parking':{'config':%s}}}]}",
          tu_env("TWIN_PLUGIN_BUILD_DIR"), parking_config);
  char *cfg = tu_write_file(f->dir, "host.json", text);
  core_err err;
  if (core_host_open(cfg, CORE_HOST_INSTANCES, &f->h, &err))
    fail_msg("host: %s", err.msg);
  assert_non_null(core_host_plugin(f->h, "parking"));
  assert_int_equal(core_pipeline_start(f->h, &f->p, &err), TWIN_OK);
  free(text);
  free(cfg);
}

static void close_host(fx *f)
{
  core_pipeline_stop(f->p);
  core_host_close(f->h);
  f->p = NULL;
  f->h = NULL;
}

static int setup_with(void **state, const char *config)
{
  fx *f = calloc(1, sizeof *f);
  f->dir = tu_tempdir();
  open_host(f, config);
  *state = f;
  return 0;
}

static int setup(void **state)
{
  return setup_with(state, "{}");
}
static int setup_lots(void **state)
{
  return setup_with(state, lots_config);
}
static int setup_strict(void **state)
{
  return setup_with(state, "{'auto_create':false,'lots':[{'id':'known',"
                           "'total':100}]}");
}

/* A town rule pricing "far" at 9.00 per hour; other lots keep their own
 * price (the rule answers nil). */
static int setup_script(void **state)
{
  fx *f = calloc(1, sizeof *f);
  f->dir = tu_tempdir();
  char *lua = tu_write_file(f->dir, "50-price.lua",
                            "function price(lot, hour)\n"
                            "  if lot == 'far' then return 9 end\n"
                            "  return nil\n"
                            "end\n");
  free(lua);
  open_host(f, lots_config);
  *state = f;
  return 0;
}

static int teardown(void **state)
{
  fx *f = *state;
  close_host(f);
  tu_rmtree(f->dir);
  free(f->dir);
  free(f);
  return 0;
}

static core_instance *parking_of(fx *f)
{
  core_instance *ci = core_host_instance(f->h, TOWN, "parking");
  assert_non_null(ci);
  return ci;
}

static void on_done(void *ud, int status, const char *reason)
{
  result *r = ud;
  r->status = status;
  snprintf(r->reason, sizeof r->reason, "%s", reason ? reason : "");
  r->called = 1;
}

static void on_outcome(void *ud, const core_outcome *o)
{
  result *r = ud;
  on_done(ud, o->status, o->reason);
  json_decref(r->items);
  r->items = o->items->total ? core_items_json(o->items) : NULL;
}

/* One document through the pipeline: its outcome (free r.items). */
static result ingest_raw(fx *f, const char *doc)
{
  result r = {0};
  assert_int_equal(core_pipeline_submit_as(f->p, parking_of(f), NULL, doc,
                                           strlen(doc), on_outcome, &r),
                   TWIN_OK);
  core_pipeline_drain(f->p);
  assert_true(r.called);
  return r;
}

static result ingest(fx *f, const char *doc_sq)
{
  char *doc = jq(doc_sq);
  result r = ingest_raw(f, doc);
  free(doc);
  return r;
}

static void ingest_ok(fx *f, const char *doc_sq)
{
  result r = ingest(f, doc_sq);
  if (r.status)
    fail_msg("ingest refused: %d %s (%s)", r.status, r.reason, doc_sq);
  if (r.items)
    fail_msg("items refused: %s (%s)", json_dumps(r.items, 0), doc_sq);
}

static void ingest_fails(fx *f, const char *doc_sq, int status,
                         const char *fragment)
{
  result r = ingest(f, doc_sq);
  json_decref(r.items);
  if (r.status != status)
    fail_msg("expected status %d, got %d (%s) for %s", status, r.status,
             r.reason, doc_sq);
  if (fragment && !strstr(r.reason, fragment))
    fail_msg("reason '%s' lacks '%s'", r.reason, fragment);
}

/* One observation of lot id: free spaces at time t (ms), total 100 unless
 * total > 0 says otherwise. */
static void observe(fx *f, const char *id, int free_, int total, twin_time t)
{
  char tot[32] = "";
  if (total)
    snprintf(tot, sizeof tot, ",'total':%d", total);
  char *doc = tu_fmt("{'lot':'%s','free':%d,'time':%lld%s}", id, free_,
                     (long long)t, tot);
  ingest_ok(f, doc);
  free(doc);
}

static json_t *parse_reply(char *reply)
{
  json_t *j = json_loads(reply, JSON_DECODE_ANY, NULL);
  free(reply);
  assert_non_null(j);
  return j;
}

static json_t *query(fx *f, const char *req_sq, core_err *err, int *rc)
{
  char *req = jq(req_sq), *reply = NULL;
  *rc = core_host_query(f->h, parking_of(f), req, strlen(req), &reply, err);
  free(req);
  return *rc ? NULL : parse_reply(reply);
}

static json_t *query_ok(fx *f, const char *req_sq)
{
  core_err err;
  int rc;
  json_t *j = query(f, req_sq, &err, &rc);
  if (!j)
    fail_msg("query %s: %s", req_sq, err.msg);
  return j;
}

static json_t *simulate_ok(fx *f, const char *sc_sq)
{
  char *sc = jq(sc_sq), *reply = NULL;
  core_err err;
  if (core_host_simulate(f->h, parking_of(f), sc, strlen(sc), &reply, &err))
    fail_msg("simulate %s: %s", sc_sq, err.msg);
  free(sc);
  json_t *all = parse_reply(reply);
  json_t *report = json_incref(json_object_get(all, "report"));
  json_decref(all);
  assert_non_null(report);
  return report;
}

/* The lot of the "now" reply with this id, or NULL. */
static json_t *now_lot(json_t *now, const char *id)
{
  size_t i;
  json_t *l;
  json_array_foreach(json_object_get(now, "lots"), i, l)
  {
    if (!strcmp(json_string_value(json_object_get(l, "id")), id))
      return l;
  }
  return NULL;
}

static size_t lot_count(fx *f)
{
  json_t *n = query_ok(f, "{'op':'now'}");
  size_t c = json_array_size(json_object_get(n, "lots"));
  json_decref(n);
  return c;
}

static size_t history_count(fx *f, const char *id)
{
  char *req = tu_fmt("{'op':'lot','lot':'%s','from':0}", id);
  json_t *l = query_ok(f, req);
  size_t n = json_array_size(json_object_get(l, "history"));
  free(req);
  json_decref(l);
  return n;
}

static json_int_t int_of(json_t *o, const char *k)
{
  json_t *v = json_object_get(o, k);
  if (!json_is_integer(v))
    fail_msg("%s: not an integer", k);
  return json_integer_value(v);
}

static double num_of(json_t *o, const char *k)
{
  json_t *v = json_object_get(o, k);
  if (!json_is_number(v))
    fail_msg("%s: not a number", k);
  return json_number_value(v);
}

static const char *str_of(json_t *o, const char *k)
{
  const char *s = json_string_value(json_object_get(o, k));
  if (!s)
    fail_msg("%s: not a string", k);
  return s;
}

static char *rfc(twin_time t)
{
  char buf[40];
  core_format_time(t, buf, sizeof buf);
  return tu_fmt("%s", buf);
}

/* ---- ParkAPI v1 -------------------------------------------------------- */

static void parkapi1_city_is_stored(void **state)
{
  fx *f = *state;
  char *t = rfc(core_now_ms() - 60000);
  char *doc = tu_fmt(
      "{'last_updated':'%s','lots':["
      "{'id':'p1','name':'Stadthalle','coords':{'lat':48.83,'lng':12.96},"
      "'total':400,'free':40,'state':'open','lot_type':'Parkhaus'},"
      "{'id':'s1','name':'Luitpoldplatz','coords':{'lat':48.83,'lng':12.95},"
      "'total':20,'free':0,'state':'open','lot_type':'Straßenrand'},"
      "{'id':'p2','name':'Zentrum','total':100,'free':50,'state':'closed'},"
      "{'id':'p3','name':'Nord','total':100,'free':null,'state':'nodata'}]}",
      t);
  ingest_ok(f, doc);
  json_t *n = query_ok(f, "{'op':'now'}");
  json_t *p1 = now_lot(n, "p1"), *s1 = now_lot(n, "s1"), *p2 = now_lot(n, "p2"),
         *p3 = now_lot(n, "p3");
  assert_non_null(p1);
  assert_string_equal(str_of(p1, "type"), "OffStreetParking");
  assert_int_equal(int_of(p1, "free"), 40);
  assert_int_equal(int_of(p1, "total"), 400);
  assert_true(fabs(num_of(p1, "occupancy") - 0.9) < 1e-9);
  assert_string_equal(str_of(p1, "status"), "almostFull");
  assert_string_equal(str_of(s1, "type"), "ParkingGroup");
  assert_string_equal(str_of(s1, "status"), "full");
  assert_string_equal(str_of(p2, "status"), "closed");
  assert_true(json_is_null(json_object_get(p3, "free")));
  assert_int_equal(history_count(f, "p1"), 1);
  assert_int_equal(history_count(f, "p3"), 0);
  json_decref(n);
  free(doc);
  free(t);
}

static void parkapi1_malformed_is_a_parse_error(void **state)
{
  fx *f = *state;
  ingest_fails(f, "{'lots':[", TWIN_ERR_PARSE, "line 1");
  ingest_fails(f, "{'lots':[{'id':'p1','total':'many','free':1}]}",
               TWIN_ERR_PARSE, "lots[0].total: expected an integer");
  ingest_fails(f, "{'lots':[{'id':5,'total':5,'free':1}]}", TWIN_ERR_PARSE,
               "lots[0].id: expected a string");
  ingest_fails(f, "{'lots':[{'id':'p1','total':5,'free':1,'state':'maybe'}]}",
               TWIN_ERR_PARSE, "lots[0].state");
  ingest_fails(f, "{'lots':[]}", TWIN_ERR_PARSE, "lots: empty");
  ingest_fails(f, "[1,2]", TWIN_ERR_PARSE, "expected ParkAPI");
  assert_int_equal(lot_count(f), 0);
}

/* The refused items of r: item, field, code and a reason holding
 * fragment, in order. */
static void expect_refused(result *r, size_t n, const char *const (*want)[4])
{
  if (json_array_size(r->items) != n)
    fail_msg("%zu lots refused, want %zu: %s", json_array_size(r->items), n,
             r->items ? json_dumps(r->items, 0) : "[]");
  for (size_t i = 0; i < n; i++) {
    json_t *it = json_array_get(r->items, i);
    assert_string_equal(str_of(it, "item"), want[i][0]);
    assert_string_equal(str_of(it, "field"), want[i][1]);
    assert_string_equal(str_of(it, "code"), want[i][2]);
    if (!strstr(str_of(it, "reason"), want[i][3]))
      fail_msg("reason '%s' lacks '%s'", str_of(it, "reason"), want[i][3]);
  }
}

/* A city snapshot of 6 lots, 2 implausible (a broken sensor): the other
 * four land, the two are listed with their reasons. */
static void parkapi1_implausible_lots_are_refused_alone(void **state)
{
  fx *f = *state;
  char *t = rfc(core_now_ms() - 60000);
  char *doc = tu_fmt(
      "{'last_updated':'%s','lots':[{'id':'a','total':100,'free':40},"
      "{'id':'b','total':540,'free':575},{'id':'c','total':80,'free':0},"
      "{'id':'d','total':60,'free':-3},{'id':'e','total':200,'free':199},"
      "{'id':'f','total':30,'free':30}]}",
      t);
  char *j = jq(doc);
  result r = ingest_raw(f, j);
  free(j);
  if (r.status)
    fail_msg("snapshot refused whole: %s", r.reason);
  static const char *const want[][4] = {
      {"b", "free", "implausible", "lot 'b': free 575 > total 540"},
      {"d", "free", "implausible", "lot 'd': free -3 is negative"}};
  expect_refused(&r, 2, want);
  json_decref(r.items);
  assert_int_equal(lot_count(f), 4);
  json_t *n = query_ok(f, "{'op':'now'}");
  assert_int_equal(int_of(now_lot(n, "a"), "free"), 40);
  assert_int_equal(int_of(now_lot(n, "e"), "free"), 199);
  assert_null(now_lot(n, "b"));
  json_decref(n);
  free(doc);
  free(t);
}

static void parkapi1_a_snapshot_of_only_implausible_lots_is_rejected(
    void **state)
{
  fx *f = *state;
  ingest_fails(f,
               "{'lots':[{'id':'p3','total':400,'free':412},"
               "{'id':'p9','total':10,'free':11}]}",
               TWIN_ERR_REJECTED, "lot 'p3': free 412 > total 400");
  ingest_fails(f, "{'lots':[{'id':'p4','total':10,'free':-2}]}",
               TWIN_ERR_REJECTED, "lot 'p4': free -2 is negative");
  ingest_fails(f, "{'lots':[{'id':'p5','total':-1}]}", TWIN_ERR_REJECTED,
               "lot 'p5': total -1");
  ingest_fails(f,
               "{'lots':[{'id':'p6','total':10,'free':1,'coords':{'lat':91,"
               "'lng':0}}]}",
               TWIN_ERR_REJECTED, "lot 'p6': position");
  ingest_fails(f,
               "{'last_updated':'2999-01-01T00:00:00','lots':[{'id':'p7',"
               "'total':10,'free':1}]}",
               TWIN_ERR_REJECTED,
               "lot 'p7': time 2999-01-01T00:00:00Z is "
               "more than 300 s in the future");
  /* nothing of any of them landed */
  assert_int_equal(lot_count(f), 0);
}

/* ---- ParkAPI2 ---------------------------------------------------------- */

static void parkapi2_lots_and_items_are_stored(void **state)
{
  fx *f = *state;
  char *t = rfc(core_now_ms() - 60000);
  char *doc = tu_fmt("{'lots':[{'id':'a','name':'A','capacity':200,"
                     "'num_free':150,'status':'open','timestamp':'%s',"
                     "'lat':'48.8','lon':'12.9'}]}",
                     t);
  ingest_ok(f, doc);
  free(doc);
  doc = tu_fmt("{'items':[{'id':'b','name':'B','capacity':50,"
               "'realtime_free_capacity':5,'realtime_opening_status':'OPEN',"
               "'realtime_data_updated_at':'%s','lat':48.81,'lon':12.91,"
               "'type':'ON_STREET'},"
               "{'id':'c','capacity':30,'realtime_free_capacity':30,"
               "'realtime_opening_status':'CLOSED'}]}",
               t);
  ingest_ok(f, doc);
  json_t *n = query_ok(f, "{'op':'now'}");
  json_t *a = now_lot(n, "a"), *b = now_lot(n, "b"), *c = now_lot(n, "c");
  assert_int_equal(int_of(a, "free"), 150);
  assert_true(fabs(num_of(a, "occupancy") - 0.25) < 1e-9);
  assert_true(fabs(num_of(a, "lat") - 48.8) < 1e-9);
  assert_string_equal(str_of(a, "status"), "spacesAvailable");
  assert_string_equal(str_of(b, "type"), "ParkingGroup");
  assert_string_equal(str_of(b, "status"), "almostFull");
  assert_string_equal(str_of(c, "status"), "closed");
  json_decref(n);
  free(doc);
  free(t);
}

static void parkapi2_malformed_and_implausible_are_refused(void **state)
{
  fx *f = *state;
  ingest_fails(f, "{'items':[{'id':'b','capacity':50,'num_free':'x'}]}",
               TWIN_ERR_PARSE, "items[0].num_free: expected an integer");
  ingest_fails(f,
               "{'items':[{'id':'b','capacity':50,'num_free':1,'lat':'north',"
               "'lon':12}]}",
               TWIN_ERR_PARSE, "items[0].lat");
  ingest_fails(f,
               "{'lots':[{'id':'b','capacity':50,'num_free':1,"
               "'timestamp':'yesterday'}]}",
               TWIN_ERR_PARSE, "lots[0].timestamp");
  ingest_fails(f, "{'items':[{'id':'b','capacity':50,'num_free':51}]}",
               TWIN_ERR_REJECTED, "lot 'b': free 51 > total 50");
  ingest_fails(f, "{'lots':[{'id':'b','capacity':50,'num_free':-1}]}",
               TWIN_ERR_REJECTED, "lot 'b': free -1 is negative");
  assert_int_equal(lot_count(f), 0);
}

/* ---- single observations ----------------------------------------------- */

static void single_observations_are_checked_against_the_stored_lot(void **state)
{
  fx *f = *state;
  twin_time now = core_now_ms();
  observe(f, "x", 10, 100, now - 600000);
  observe(f, "x", 20, 0, now - 300000); /* total from the store */
  assert_int_equal(history_count(f, "x"), 2);
  /* older than what is stored */
  char *doc =
      tu_fmt("{'lot':'x','free':5,'time':%lld}", (long long)(now - 900000));
  ingest_fails(f, doc, TWIN_ERR_REJECTED, "older than the stored observation");
  free(doc);
  /* too far in the future */
  doc = tu_fmt("{'lot':'x','free':5,'time':%lld}", (long long)(now + 3600000));
  ingest_fails(f, doc, TWIN_ERR_REJECTED, "more than 300 s in the future");
  free(doc);
  /* more free than the stored total */
  doc = tu_fmt("{'lot':'x','free':101,'time':%lld}", (long long)now);
  ingest_fails(f, doc, TWIN_ERR_REJECTED, "lot 'x': free 101 > total 100");
  free(doc);
  /* malformed */
  ingest_fails(f, "{'lot':'x','free':5}", TWIN_ERR_PARSE,
               "observation.time: missing");
  ingest_fails(f, "{'lot':'x','free':5,'time':'noon'}", TWIN_ERR_PARSE,
               "observation.time: expected");
  ingest_fails(f, "{'lot':'x','free':5,'time':0,'colour':'red'}",
               TWIN_ERR_PARSE, "colour: unknown field");
  ingest_fails(f, "{'lot':'y','free':5,'time':0}", TWIN_ERR_REJECTED,
               "lot 'y': free given but no total known");
  assert_int_equal(history_count(f, "x"), 2);
  json_t *n = query_ok(f, "{'op':'now'}");
  assert_int_equal(int_of(now_lot(n, "x"), "free"), 20);
  assert_null(now_lot(n, "y"));
  json_decref(n);
}

static void unknown_lots_are_rejected_without_auto_create(void **state)
{
  fx *f = *state;
  char *doc = tu_fmt("{'lot':'stranger','free':5,'time':%lld,'total':10}",
                     (long long)core_now_ms());
  ingest_fails(f, doc, TWIN_ERR_REJECTED,
               "lot 'stranger': unknown lot (auto_create is false)");
  free(doc);
  doc =
      tu_fmt("{'lot':'known','free':5,'time':%lld}", (long long)core_now_ms());
  ingest_ok(f, doc);
  free(doc);
  assert_int_equal(lot_count(f), 1);
}

/* ---- profile and forecast ---------------------------------------------- */

/* Local (UTC+2) weekday and hour of t. */
static void local_of(twin_time t, int *wday, int *hour)
{
  time_t s = (time_t)(t / 1000 + 2 * 3600);
  struct tm tm;
  gmtime_r(&s, &tm);
  *wday = tm.tm_wday;
  *hour = tm.tm_hour;
}

static void profile_and_forecast_match_hand_computed_values(void **state)
{
  fx *f = *state;
  twin_time now = core_now_ms(), h = now - now % HOUR_MS;
  twin_time b = h - 7 * DAY_MS - 5 * HOUR_MS, d = h - HOUR_MS;
  int bw, bh, dw, dh;
  /*
   * Cell of b: hour b-7d has one reading 0.6 (hourly mean 0.6); hour b has
   * 0.2 and 0.4 (hourly mean 0.3): mean of hourly means 0.45 (the plain
   * mean of the readings would be 0.4).
   * Cell of d: 0.5 a week ago and 0.7 today: 0.6 in the profile query.
   */
  observe(f, "a", 40, 100, b - 7 * DAY_MS);
  observe(f, "a", 80, 0, b);
  observe(f, "a", 60, 0, b + 30 * 60000);
  observe(f, "a", 50, 0, d - 7 * DAY_MS);
  observe(f, "a", 30, 0, d);
  local_of(b, &bw, &bh);
  local_of(d, &dw, &dh);

  json_t *pr = query_ok(f, "{'op':'profile','lot':'a'}");
  json_t *cells = json_object_get(pr, "profile");
  assert_string_equal(str_of(pr, "timezone"), "Etc/GMT-2");
  assert_int_equal(int_of(pr, "samples"), 5);
  assert_true(fabs(json_number_value(json_array_get(
                       json_array_get(cells, (size_t)bw), (size_t)bh)) -
                   0.45) < 1e-9);
  assert_true(fabs(json_number_value(json_array_get(
                       json_array_get(cells, (size_t)dw), (size_t)dh)) -
                   0.6) < 1e-9);
  int filled = 0;
  for (size_t w = 0; w < 7; w++)
    for (size_t hr = 0; hr < 24; hr++)
      filled += !json_is_null(json_array_get(json_array_get(cells, w), hr));
  assert_int_equal(filled, 2);
  json_decref(pr);

  /*
   * Forecast for b + 14 days (same local weekday and hour, in the future):
   * the forecast's profile leaves out the last 3 hours, so cell(b) = 0.45
   * and cell(d) = 0.5; today's reading at d is 0.7, deviation +0.2;
   * expected occupancy 0.65, free 35 of 100.
   */
  char *req = tu_fmt("{'op':'forecast','lot':'a','time':%lld}",
                     (long long)(b + 14 * DAY_MS));
  json_t *fc = query_ok(f, req);
  free(req);
  assert_string_equal(str_of(fc, "basis"), "profile");
  assert_int_equal(int_of(fc, "weekday"), bw);
  assert_int_equal(int_of(fc, "hour"), bh);
  assert_true(fabs(num_of(fc, "profile_occupancy") - 0.45) < 1e-9);
  assert_true(fabs(num_of(fc, "deviation") - 0.2) < 1e-9);
  assert_int_equal(int_of(fc, "deviation_samples"), 1);
  assert_true(fabs(num_of(fc, "expected_occupancy") - 0.65) < 1e-9);
  assert_int_equal(int_of(fc, "expected_free"), 35);
  json_decref(fc);

  /* the lot with its history over a range */
  req =
      tu_fmt("{'op':'lot','lot':'a','from':%lld}", (long long)(d - 7 * DAY_MS));
  json_t *l = query_ok(f, req);
  free(req);
  assert_int_equal(json_array_size(json_object_get(l, "history")), 2);
  json_decref(l);
  json_t *l24 = query_ok(f, "{'op':'lot','lot':'a'}");
  assert_int_equal(json_array_size(json_object_get(l24, "history")), 1);
  json_decref(l24);
}

/* ---- guidance ---------------------------------------------------------- */

static void set_lots_now(fx *f)
{
  twin_time t = core_now_ms() - 60000;
  observe(f, "near", 20, 0, t);
  observe(f, "mid", 80, 0, t);
  observe(f, "far", 150, 0, t);
  observe(f, "full", 0, 0, t);
}

static void guidance_ranks_by_walk_price_and_space(void **state)
{
  fx *f = *state;
  set_lots_now(f);
  json_t *g = query_ok(f, "{'op':'guidance','lat':48.83,'lon':12.96}");
  json_t *ls = json_object_get(g, "lots");
  /* "full" has no space; "mid" (4.3 min, 0.50/h) beats "near" (0 min,
   * 2.00/h); "far" is a 28 min walk */
  assert_int_equal(json_array_size(ls), 3);
  assert_string_equal(str_of(json_array_get(ls, 0), "lot"), "mid");
  assert_string_equal(str_of(json_array_get(ls, 1), "lot"), "near");
  assert_string_equal(str_of(json_array_get(ls, 2), "lot"), "far");
  json_t *mid = json_array_get(ls, 0);
  assert_true(fabs(num_of(mid, "distance_m") - 334) <= 1);
  assert_true(fabs(num_of(mid, "walk_min") - 4.3) < 0.11);
  assert_int_equal(int_of(mid, "expected_free"), 80);
  assert_true(fabs(num_of(mid, "price") - 0.5) < 1e-9);
  assert_string_equal(str_of(mid, "price_source"), "static");
  assert_true(num_of(mid, "score") < num_of(json_array_get(ls, 1), "score"));
  json_decref(g);
  g = query_ok(f, "{'op':'guidance','lat':48.85,'lon':12.96,'limit':1}");
  ls = json_object_get(g, "lots");
  assert_int_equal(json_array_size(ls), 1);
  assert_string_equal(str_of(json_array_get(ls, 0), "lot"), "far");
  json_decref(g);
}

/* ---- scenarios --------------------------------------------------------- */

static json_t *report_lot(json_t *r, const char *id)
{
  size_t i;
  json_t *l;
  json_array_foreach(json_object_get(r, "lots"), i, l)
  {
    if (!strcmp(str_of(l, "lot"), id))
      return l;
  }
  fail_msg("no lot %s in the report", id);
  return NULL;
}

static char *live_state(fx *f)
{
  json_t *n = query_ok(f, "{'op':'now'}");
  char *s = json_dumps(n, JSON_COMPACT | JSON_SORT_KEYS);
  json_decref(n);
  return s;
}

static void closure_moves_cars_and_leaves_live_state_alone(void **state)
{
  fx *f = *state;
  set_lots_now(f);
  char *before = live_state(f);
  twin_time from = core_now_ms() + HOUR_MS;
  char *sc = tu_fmt("{'op':'closure','lot':'near','from':%lld,'to':%lld}",
                    (long long)from, (long long)(from + HOUR_MS));
  json_t *r = simulate_ok(f, sc);
  free(sc);
  /* near holds 30 cars; "full" has no room, "mid" (334 m) takes all 30 */
  assert_int_equal(int_of(r, "steps"), 4);
  json_t *near = report_lot(r, "near"), *mid = report_lot(r, "mid");
  assert_true(fabs(num_of(json_object_get(near, "baseline"), "peak_occupancy") -
                   0.6) < 1e-9);
  assert_true(
      fabs(num_of(json_object_get(near, "scenario"), "peak_occupancy")) < 1e-9);
  assert_int_equal(json_array_size(json_object_get(near, "overflow")), 1);
  assert_true(fabs(num_of(json_object_get(mid, "baseline"), "peak_occupancy") -
                   0.2) < 1e-9);
  assert_true(fabs(num_of(json_object_get(mid, "scenario"), "peak_occupancy") -
                   0.5) < 1e-9);
  json_t *nos = json_object_get(r, "cars_without_space");
  assert_int_equal(int_of(nos, "peak"), 0);
  json_t *walk = json_object_get(r, "walk_added");
  assert_int_equal(int_of(walk, "cars"), 30);
  assert_true(fabs(num_of(walk, "average_m") - 334) <= 1);
  /* the scenario's reads saw its overlay writes */
  json_t *after = json_object_get(r, "state_at_peak");
  size_t i;
  json_t *l;
  int seen = 0;
  json_array_foreach(after, i, l)
  {
    if (!strcmp(str_of(l, "id"), "near")) {
      assert_string_equal(str_of(l, "status"), "closed");
      seen++;
    } else if (!strcmp(str_of(l, "id"), "mid")) {
      assert_int_equal(int_of(l, "free"), 50);
      seen++;
    }
  }
  assert_int_equal(seen, 2);
  json_decref(r);
  char *after_live = live_state(f);
  assert_string_equal(before, after_live);
  assert_int_equal(history_count(f, "near"), 1);
  assert_int_equal(history_count(f, "mid"), 1);
  free(before);
  free(after_live);
}

static void event_fills_nearest_lots_and_counts_cars_left_over(void **state)
{
  fx *f = *state;
  set_lots_now(f);
  char *before = live_state(f);
  twin_time from = core_now_ms() + HOUR_MS;
  char *sc = tu_fmt("{'op':'event','lat':48.833,'lon':12.96,'cars':300,"
                    "'from':%lld,'to':%lld}",
                    (long long)from, (long long)(from + HOUR_MS));
  json_t *r = simulate_ok(f, sc);
  free(sc);
  /* at the end: mid 80, near 20, far 150 placed, 50 without space */
  json_t *nos = json_object_get(r, "cars_without_space");
  assert_int_equal(int_of(nos, "at_end"), 50);
  assert_int_equal(int_of(nos, "peak"), 50);
  assert_true(fabs(num_of(json_object_get(report_lot(r, "far"), "scenario"),
                          "peak_occupancy") -
                   1.0) < 1e-9);
  assert_true(fabs(num_of(json_object_get(report_lot(r, "mid"), "scenario"),
                          "peak_occupancy") -
                   1.0) < 1e-9);
  assert_true(
      json_array_size(json_object_get(report_lot(r, "mid"), "overflow")) >= 1);
  json_t *walk = json_object_get(r, "walk_added");
  assert_int_equal(int_of(walk, "cars"), 250);
  assert_true(num_of(walk, "total_m") > 0);
  json_decref(r);
  char *after_live = live_state(f);
  assert_string_equal(before, after_live);
  assert_int_equal(history_count(f, "far"), 1);
  free(before);
  free(after_live);
}

static void bad_scenarios_and_unknown_ops_fail(void **state)
{
  fx *f = *state;
  core_err err;
  char *reply = NULL;
  int rc;
  char *sc = jq("{'op':'flood'}");
  assert_int_equal(
      core_host_simulate(f->h, parking_of(f), sc, strlen(sc), &reply, &err),
      TWIN_ERR_NOT_FOUND);
  assert_non_null(strstr(err.msg, "no scenario op 'flood'"));
  free(sc);
  sc = jq("{'type':'closure'}"); /* the form before declared ops */
  assert_int_equal(
      core_host_simulate(f->h, parking_of(f), sc, strlen(sc), &reply, &err),
      TWIN_ERR_INVALID);
  assert_non_null(strstr(err.msg, "closure, event"));
  free(sc);
  sc = jq("{'op':'closure','lot':'nowhere','from':0,'to':1000}");
  assert_int_equal(
      core_host_simulate(f->h, parking_of(f), sc, strlen(sc), &reply, &err),
      TWIN_ERR_NOT_FOUND);
  free(sc);
  assert_null(query(f, "{'op':'history'}", &err, &rc));
  assert_int_equal(rc, TWIN_ERR_NOT_FOUND);
  assert_non_null(strstr(err.msg, "no query op 'history'"));
  assert_non_null(strstr(err.msg, "now, lot, profile, forecast, guidance"));
  assert_null(query(f, "{'op':'forecast','lot':'near'}", &err, &rc));
  assert_int_equal(rc, TWIN_ERR_INVALID);
  assert_non_null(strstr(err.msg, "time: required but missing"));
}

/* ---- fetch and the feed ------------------------------------------------- */

/* A one-shot HTTP server on 127.0.0.1 answering one request with body. */
typedef struct one_shot {
  int fd, port;
  const char *body;
  pthread_t th;
} one_shot;

static void *serve_once(void *ud)
{
  one_shot *o = ud;
  char buf[4096], head[256];
  int c = accept(o->fd, NULL, NULL);
  if (c < 0)
    return NULL;
  ssize_t got = read(c, buf, sizeof buf);
  (void)got;
  int n = snprintf(head, sizeof head,
                   "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                   "Content-Length: %zu\r\nConnection: close\r\n\r\n",
                   strlen(o->body));
  if (write(c, head, (size_t)n) < 0 || write(c, o->body, strlen(o->body)) < 0)
    fprintf(stderr, "one_shot: write failed\n");
  close(c);
  return NULL;
}

static void one_shot_start(one_shot *o, const char *body)
{
  struct sockaddr_in a;
  socklen_t len = sizeof a;
  memset(&a, 0, sizeof a);
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  o->body = body;
  o->fd = socket(AF_INET, SOCK_STREAM, 0);
  assert_true(o->fd >= 0);
  assert_int_equal(bind(o->fd, (struct sockaddr *)&a, sizeof a), 0);
  assert_int_equal(listen(o->fd, 1), 0);
  assert_int_equal(getsockname(o->fd, (struct sockaddr *)&a, &len), 0);
  o->port = ntohs(a.sin_port);
  assert_int_equal(pthread_create(&o->th, NULL, serve_once, o), 0);
}

static void one_shot_stop(one_shot *o)
{
  pthread_join(o->th, NULL);
  close(o->fd);
}

/* One fetch of parking, run here as a fetch thread runs it (off the
 * writer; it hands the snapshot to the pipeline and waits for its
 * commit). */
static result fetch(fx *f)
{
  result r = {0};
  core_err err;
  r.status = core_host_run_fetch(f->h, parking_of(f), &err);
  snprintf(r.reason, sizeof r.reason, "%s", r.status ? err.msg : "");
  r.called = 1;
  return r;
}

static void fetch_without_a_feed_does_nothing(void **state)
{
  fx *f = *state;
  result r = fetch(f);
  assert_int_equal(r.status, TWIN_OK);
  assert_int_equal(lot_count(f), 0);
}

static void fetch_pulls_the_feed_through_the_pipeline(void **state)
{
  fx *f = *state;
  one_shot o;
  char *t = rfc(core_now_ms() - 60000);
  char *body = tu_fmt("{\"last_updated\":\"%s\",\"lots\":[{\"id\":\"p1\","
                      "\"total\":100,\"free\":25,\"state\":\"open\"}]}",
                      t);
  one_shot_start(&o, body);
  char *cfg = tu_fmt("{'feed_url':'http://127.0.0.1:%d/lots.json'}", o.port);
  close_host(f);
  open_host(f, cfg);
  result r = fetch(f);
  one_shot_stop(&o);
  if (r.status)
    fail_msg("fetch: %d %s", r.status, r.reason);
  json_t *n = query_ok(f, "{'op':'now'}");
  assert_int_equal(int_of(now_lot(n, "p1"), "free"), 25);
  json_decref(n);
  free(cfg);
  free(body);
  free(t);
}

static void fetch_with_an_unreachable_feed_backs_off(void **state)
{
  fx *f = *state;
  /* a port nobody listens on: bind one, then close it */
  one_shot o;
  memset(&o, 0, sizeof o);
  struct sockaddr_in a;
  socklen_t len = sizeof a;
  memset(&a, 0, sizeof a);
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  o.fd = socket(AF_INET, SOCK_STREAM, 0);
  assert_int_equal(bind(o.fd, (struct sockaddr *)&a, sizeof a), 0);
  assert_int_equal(getsockname(o.fd, (struct sockaddr *)&a, &len), 0);
  close(o.fd);
  char *cfg = tu_fmt("{'feed_url':'http://127.0.0.1:%d/lots.json',"
                     "'feed_timeout_ms':1000}",
                     ntohs(a.sin_port));
  close_host(f);
  open_host(f, cfg);
  twin_time before = core_now_ms();
  result r = fetch(f);
  assert_int_equal(r.status, TWIN_ERR_UNAVAILABLE);
  assert_non_null(strstr(r.reason, "feed: GET http://127.0.0.1:"));
  assert_int_equal(lot_count(f), 0);
  /* its fetch health: one failure, the next try two intervals on, the
   * plugin still running */
  core_instance *ci = parking_of(f);
  pthread_mutex_lock(&f->h->lock);
  assert_int_equal(ci->fetch_failures, 1);
  assert_non_null(strstr(ci->fetch_reason, "fetch failed 1 time"));
  assert_true(ci->next_fetch >= before + 2 * 300 * 1000);
  assert_int_equal(ci->state, CORE_INSTANCE_RUNNING);
  pthread_mutex_unlock(&f->h->lock);
  free(cfg);
}

static void guidance_uses_the_town_price_rule(void **state)
{
  fx *f = *state;
  set_lots_now(f);
  json_t *g = query_ok(f, "{'op':'guidance','lat':48.85,'lon':12.96}");
  json_t *ls = json_object_get(g, "lots"), *l;
  size_t i;
  int seen = 0;
  json_array_foreach(ls, i, l)
  {
    if (!strcmp(str_of(l, "lot"), "far")) {
      assert_true(fabs(num_of(l, "price") - 9) < 1e-9);
      assert_string_equal(str_of(l, "price_source"), "script");
      seen++;
    } else if (!strcmp(str_of(l, "lot"), "mid")) {
      assert_string_equal(str_of(l, "price_source"), "static");
      seen++;
    }
  }
  assert_int_equal(seen, 2);
  /* at 9.00/h the lot at the point (0 min) now ranks below "mid" */
  assert_string_equal(str_of(json_array_get(ls, 0), "lot"), "mid");
  json_decref(g);
}

#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)
#define TL(fn) cmocka_unit_test_setup_teardown(fn, setup_lots, teardown)

int main(void)
{
  const struct CMUnitTest tests[] = {
      T(parkapi1_city_is_stored),
      T(parkapi1_malformed_is_a_parse_error),
      T(parkapi1_implausible_lots_are_refused_alone),
      T(parkapi1_a_snapshot_of_only_implausible_lots_is_rejected),
      T(parkapi2_lots_and_items_are_stored),
      T(parkapi2_malformed_and_implausible_are_refused),
      T(single_observations_are_checked_against_the_stored_lot),
      cmocka_unit_test_setup_teardown(
          unknown_lots_are_rejected_without_auto_create, setup_strict,
          teardown),
      T(profile_and_forecast_match_hand_computed_values),
      TL(guidance_ranks_by_walk_price_and_space),
      TL(closure_moves_cars_and_leaves_live_state_alone),
      TL(event_fills_nearest_lots_and_counts_cars_left_over),
      TL(bad_scenarios_and_unknown_ops_fail),
      T(fetch_without_a_feed_does_nothing),
      T(fetch_pulls_the_feed_through_the_pipeline),
      T(fetch_with_an_unreachable_feed_backs_off),
      cmocka_unit_test_setup_teardown(guidance_uses_the_town_price_rule,
                                      setup_script, teardown),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
