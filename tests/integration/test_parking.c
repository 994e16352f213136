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
 * single quotes for readability; the test host turns them into JSON.
 */
#include "testhost.h"

#include <jansson.h>
#include <math.h>
#include <pthread.h>
#include <sys/socket.h>
#include <unistd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

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

/* Bring up the host with parking enabled for TOWN under parking_config (a
 * JSON object in single quotes), the build's plugin folder on the path. */
static void open_host(th_host *f, const char *parking_config)
{
  th_config_built(f, TOWN, "Etc/GMT-2", "parking", parking_config);
  th_open(f);
}

static int setup_with(void **state, const char *config)
{
  th_host *f = th_new();
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
  th_host *f = th_new();
  th_config_built(f, TOWN, "Etc/GMT-2", "parking", lots_config);
  th_rule(f, TOWN, "50-price.lua",
          "function price(lot, hour)\n"
          "  if lot == 'far' then return 9 end\n"
          "  return nil\n"
          "end\n");
  th_open(f);
  *state = f;
  return 0;
}

static core_instance *parking_of(th_host *f)
{
  return th_inst(f, TOWN, "parking");
}

/* One observation of lot id: free spaces at time t (ms), total 100 unless
 * total > 0 says otherwise. */
static void observe(th_host *f, const char *id, int free_, int total,
                    twin_time t)
{
  char tot[32] = "";
  if (total)
    snprintf(tot, sizeof tot, ",'total':%d", total);
  char *doc = tu_fmt("{'lot':'%s','free':%d,'time':%lld%s}", id, free_,
                     (long long)t, tot);
  th_ingest_ok(f, parking_of(f), doc);
  free(doc);
}

static size_t lot_count(th_host *f)
{
  json_t *n = th_query_ok(f, parking_of(f), "{'op':'now'}");
  size_t c = json_array_size(json_object_get(n, "lots"));
  json_decref(n);
  return c;
}

static size_t history_count(th_host *f, const char *id)
{
  char *req = tu_fmt("{'op':'lot','lot':'%s','from':0}", id);
  json_t *l = th_query_ok(f, parking_of(f), req);
  size_t n = json_array_size(json_object_get(l, "history"));
  free(req);
  json_decref(l);
  return n;
}

/* ---- ParkAPI v1 -------------------------------------------------------- */

static void parkapi1_city_is_stored(void **state)
{
  th_host *f = *state;
  char *t = th_rfc3339(core_now_ms() - 60000);
  char *doc = tu_fmt(
      "{'last_updated':'%s','lots':["
      "{'id':'p1','name':'Stadthalle','coords':{'lat':48.83,'lng':12.96},"
      "'total':400,'free':40,'state':'open','lot_type':'Parkhaus'},"
      "{'id':'s1','name':'Luitpoldplatz','coords':{'lat':48.83,'lng':12.95},"
      "'total':20,'free':0,'state':'open','lot_type':'Straßenrand'},"
      "{'id':'p2','name':'Zentrum','total':100,'free':50,'state':'closed'},"
      "{'id':'p3','name':'Nord','total':100,'free':null,'state':'nodata'}]}",
      t);
  th_ingest_ok(f, parking_of(f), doc);
  json_t *n = th_query_ok(f, parking_of(f), "{'op':'now'}");
  json_t *p1 = tu_get(n, "lots[id=p1]"), *s1 = tu_get(n, "lots[id=s1]"),
         *p2 = tu_get(n, "lots[id=p2]"), *p3 = tu_get(n, "lots[id=p3]");
  assert_non_null(p1);
  assert_string_equal(tu_str(p1, "type"), "OffStreetParking");
  assert_int_equal(tu_int(p1, "free"), 40);
  assert_int_equal(tu_int(p1, "total"), 400);
  assert_true(fabs(tu_num(p1, "occupancy") - 0.9) < 1e-9);
  assert_string_equal(tu_str(p1, "status"), "almostFull");
  assert_string_equal(tu_str(s1, "type"), "ParkingGroup");
  assert_string_equal(tu_str(s1, "status"), "full");
  assert_string_equal(tu_str(p2, "status"), "closed");
  assert_true(json_is_null(json_object_get(p3, "free")));
  assert_int_equal(history_count(f, "p1"), 1);
  assert_int_equal(history_count(f, "p3"), 0);
  json_decref(n);
  free(doc);
  free(t);
}

static void parkapi1_malformed_is_a_parse_error(void **state)
{
  th_host *f = *state;
  th_ingest_fails(f, parking_of(f), "{'lots':[", TWIN_ERR_PARSE, "line 1",
                  NULL);
  th_ingest_fails(f, parking_of(f),
                  "{'lots':[{'id':'p1','total':'many','free':1}]}",
                  TWIN_ERR_PARSE, "lots[0].total: expected an integer", NULL);
  th_ingest_fails(f, parking_of(f), "{'lots':[{'id':5,'total':5,'free':1}]}",
                  TWIN_ERR_PARSE, "lots[0].id: expected a string", NULL);
  th_ingest_fails(f, parking_of(f),
                  "{'lots':[{'id':'p1','total':5,'free':1,'state':'maybe'}]}",
                  TWIN_ERR_PARSE, "lots[0].state", NULL);
  th_ingest_fails(f, parking_of(f), "{'lots':[]}", TWIN_ERR_PARSE,
                  "lots: empty", NULL);
  th_ingest_fails(f, parking_of(f), "[1,2]", TWIN_ERR_PARSE, "expected ParkAPI",
                  NULL);
  assert_int_equal(lot_count(f), 0);
}

/* The refused items of r: item, field, code and a reason holding
 * fragment, in order. */
static void expect_refused(th_outcome *r, size_t n,
                           const char *const (*want)[4])
{
  if (json_array_size(r->items) != n)
    fail_msg("%zu lots refused, want %zu: %s", json_array_size(r->items), n,
             r->items ? json_dumps(r->items, 0) : "[]");
  for (size_t i = 0; i < n; i++) {
    json_t *it = json_array_get(r->items, i);
    assert_string_equal(tu_str(it, "item"), want[i][0]);
    assert_string_equal(tu_str(it, "field"), want[i][1]);
    assert_string_equal(tu_str(it, "code"), want[i][2]);
    if (!strstr(tu_str(it, "reason"), want[i][3]))
      fail_msg("reason '%s' lacks '%s'", tu_str(it, "reason"), want[i][3]);
  }
}

/* A city snapshot of 6 lots, 2 implausible (a broken sensor): the other
 * four land, the two are listed with their reasons. */
static void parkapi1_implausible_lots_are_refused_alone(void **state)
{
  th_host *f = *state;
  char *t = th_rfc3339(core_now_ms() - 60000);
  char *doc = tu_fmt(
      "{'last_updated':'%s','lots':[{'id':'a','total':100,'free':40},"
      "{'id':'b','total':540,'free':575},{'id':'c','total':80,'free':0},"
      "{'id':'d','total':60,'free':-3},{'id':'e','total':200,'free':199},"
      "{'id':'f','total':30,'free':30}]}",
      t);
  th_outcome r = th_ingest(f, parking_of(f), doc);
  if (r.status)
    fail_msg("snapshot refused whole: %s", r.reason);
  static const char *const want[][4] = {
      {"b", "free", "implausible", "lot 'b': free 575 > total 540"},
      {"d", "free", "implausible", "lot 'd': free -3 is negative"}};
  expect_refused(&r, 2, want);
  th_outcome_free(&r);
  assert_int_equal(lot_count(f), 4);
  json_t *n = th_query_ok(f, parking_of(f), "{'op':'now'}");
  assert_int_equal(tu_int(n, "lots[id=a].free"), 40);
  assert_int_equal(tu_int(n, "lots[id=e].free"), 199);
  assert_null(tu_get(n, "lots[id=b]"));
  json_decref(n);
  free(doc);
  free(t);
}

static void parkapi1_a_snapshot_of_only_implausible_lots_is_rejected(
    void **state)
{
  th_host *f = *state;
  th_ingest_fails(f, parking_of(f),
                  "{'lots':[{'id':'p3','total':400,'free':412},"
                  "{'id':'p9','total':10,'free':11}]}",
                  TWIN_ERR_REJECTED, "lot 'p3': free 412 > total 400", NULL);
  th_ingest_fails(f, parking_of(f),
                  "{'lots':[{'id':'p4','total':10,'free':-2}]}",
                  TWIN_ERR_REJECTED, "lot 'p4': free -2 is negative", NULL);
  th_ingest_fails(f, parking_of(f), "{'lots':[{'id':'p5','total':-1}]}",
                  TWIN_ERR_REJECTED, "lot 'p5': total -1", NULL);
  th_ingest_fails(f, parking_of(f),
                  "{'lots':[{'id':'p6','total':10,'free':1,'coords':{'lat':91,"
                  "'lng':0}}]}",
                  TWIN_ERR_REJECTED, "lot 'p6': position", NULL);
  th_ingest_fails(f, parking_of(f),
                  "{'last_updated':'2999-01-01T00:00:00','lots':[{'id':'p7',"
                  "'total':10,'free':1}]}",
                  TWIN_ERR_REJECTED,
                  "lot 'p7': time 2999-01-01T00:00:00Z is "
                  "more than 300 s in the future",
                  NULL);
  /* nothing of any of them landed */
  assert_int_equal(lot_count(f), 0);
}

/* ---- ParkAPI2 ---------------------------------------------------------- */

static void parkapi2_lots_and_items_are_stored(void **state)
{
  th_host *f = *state;
  char *t = th_rfc3339(core_now_ms() - 60000);
  char *doc = tu_fmt("{'lots':[{'id':'a','name':'A','capacity':200,"
                     "'num_free':150,'status':'open','timestamp':'%s',"
                     "'lat':'48.8','lon':'12.9'}]}",
                     t);
  th_ingest_ok(f, parking_of(f), doc);
  free(doc);
  doc = tu_fmt("{'items':[{'id':'b','name':'B','capacity':50,"
               "'realtime_free_capacity':5,'realtime_opening_status':'OPEN',"
               "'realtime_data_updated_at':'%s','lat':48.81,'lon':12.91,"
               "'type':'ON_STREET'},"
               "{'id':'c','capacity':30,'realtime_free_capacity':30,"
               "'realtime_opening_status':'CLOSED'}]}",
               t);
  th_ingest_ok(f, parking_of(f), doc);
  json_t *n = th_query_ok(f, parking_of(f), "{'op':'now'}");
  json_t *a = tu_get(n, "lots[id=a]"), *b = tu_get(n, "lots[id=b]"),
         *c = tu_get(n, "lots[id=c]");
  assert_int_equal(tu_int(a, "free"), 150);
  assert_true(fabs(tu_num(a, "occupancy") - 0.25) < 1e-9);
  assert_true(fabs(tu_num(a, "lat") - 48.8) < 1e-9);
  assert_string_equal(tu_str(a, "status"), "spacesAvailable");
  assert_string_equal(tu_str(b, "type"), "ParkingGroup");
  assert_string_equal(tu_str(b, "status"), "almostFull");
  assert_string_equal(tu_str(c, "status"), "closed");
  json_decref(n);
  free(doc);
  free(t);
}

static void parkapi2_malformed_and_implausible_are_refused(void **state)
{
  th_host *f = *state;
  th_ingest_fails(
      f, parking_of(f), "{'items':[{'id':'b','capacity':50,'num_free':'x'}]}",
      TWIN_ERR_PARSE, "items[0].num_free: expected an integer", NULL);
  th_ingest_fails(
      f, parking_of(f),
      "{'items':[{'id':'b','capacity':50,'num_free':1,'lat':'north',"
      "'lon':12}]}",
      TWIN_ERR_PARSE, "items[0].lat", NULL);
  th_ingest_fails(f, parking_of(f),
                  "{'lots':[{'id':'b','capacity':50,'num_free':1,"
                  "'timestamp':'yesterday'}]}",
                  TWIN_ERR_PARSE, "lots[0].timestamp", NULL);
  th_ingest_fails(f, parking_of(f),
                  "{'items':[{'id':'b','capacity':50,'num_free':51}]}",
                  TWIN_ERR_REJECTED, "lot 'b': free 51 > total 50", NULL);
  th_ingest_fails(f, parking_of(f),
                  "{'lots':[{'id':'b','capacity':50,'num_free':-1}]}",
                  TWIN_ERR_REJECTED, "lot 'b': free -1 is negative", NULL);
  assert_int_equal(lot_count(f), 0);
}

/* ---- single observations ----------------------------------------------- */

static void single_observations_are_checked_against_the_stored_lot(void **state)
{
  th_host *f = *state;
  twin_time now = core_now_ms();
  observe(f, "x", 10, 100, now - 600000);
  observe(f, "x", 20, 0, now - 300000); /* total from the store */
  assert_int_equal(history_count(f, "x"), 2);
  /* older than what is stored */
  char *doc =
      tu_fmt("{'lot':'x','free':5,'time':%lld}", (long long)(now - 900000));
  th_ingest_fails(f, parking_of(f), doc, TWIN_ERR_REJECTED,
                  "older than the stored observation", NULL);
  free(doc);
  /* too far in the future */
  doc = tu_fmt("{'lot':'x','free':5,'time':%lld}", (long long)(now + 3600000));
  th_ingest_fails(f, parking_of(f), doc, TWIN_ERR_REJECTED,
                  "more than 300 s in the future", NULL);
  free(doc);
  /* more free than the stored total */
  doc = tu_fmt("{'lot':'x','free':101,'time':%lld}", (long long)now);
  th_ingest_fails(f, parking_of(f), doc, TWIN_ERR_REJECTED,
                  "lot 'x': free 101 > total 100", NULL);
  free(doc);
  /* malformed */
  th_ingest_fails(f, parking_of(f), "{'lot':'x','free':5}", TWIN_ERR_PARSE,
                  "observation.time: missing", NULL);
  th_ingest_fails(f, parking_of(f), "{'lot':'x','free':5,'time':'noon'}",
                  TWIN_ERR_PARSE, "observation.time: expected", NULL);
  th_ingest_fails(f, parking_of(f),
                  "{'lot':'x','free':5,'time':0,'colour':'red'}",
                  TWIN_ERR_PARSE, "colour: unknown field", NULL);
  th_ingest_fails(f, parking_of(f), "{'lot':'y','free':5,'time':0}",
                  TWIN_ERR_REJECTED, "lot 'y': free given but no total known",
                  NULL);
  assert_int_equal(history_count(f, "x"), 2);
  json_t *n = th_query_ok(f, parking_of(f), "{'op':'now'}");
  assert_int_equal(tu_int(n, "lots[id=x].free"), 20);
  assert_null(tu_get(n, "lots[id=y]"));
  json_decref(n);
}

static void unknown_lots_are_rejected_without_auto_create(void **state)
{
  th_host *f = *state;
  char *doc = tu_fmt("{'lot':'stranger','free':5,'time':%lld,'total':10}",
                     (long long)core_now_ms());
  th_ingest_fails(f, parking_of(f), doc, TWIN_ERR_REJECTED,
                  "lot 'stranger': unknown lot (auto_create is false)", NULL);
  free(doc);
  doc =
      tu_fmt("{'lot':'known','free':5,'time':%lld}", (long long)core_now_ms());
  th_ingest_ok(f, parking_of(f), doc);
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
  th_host *f = *state;
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

  json_t *pr = th_query_ok(f, parking_of(f), "{'op':'profile','lot':'a'}");
  json_t *cells = json_object_get(pr, "profile");
  assert_string_equal(tu_str(pr, "timezone"), "Etc/GMT-2");
  assert_int_equal(tu_int(pr, "samples"), 5);
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
  json_t *fc = th_query_ok(f, parking_of(f), req);
  free(req);
  assert_string_equal(tu_str(fc, "basis"), "profile");
  assert_int_equal(tu_int(fc, "weekday"), bw);
  assert_int_equal(tu_int(fc, "hour"), bh);
  assert_true(fabs(tu_num(fc, "profile_occupancy") - 0.45) < 1e-9);
  assert_true(fabs(tu_num(fc, "deviation") - 0.2) < 1e-9);
  assert_int_equal(tu_int(fc, "deviation_samples"), 1);
  assert_true(fabs(tu_num(fc, "expected_occupancy") - 0.65) < 1e-9);
  assert_int_equal(tu_int(fc, "expected_free"), 35);
  json_decref(fc);

  /* the lot with its history over a range */
  req =
      tu_fmt("{'op':'lot','lot':'a','from':%lld}", (long long)(d - 7 * DAY_MS));
  json_t *l = th_query_ok(f, parking_of(f), req);
  free(req);
  assert_int_equal(json_array_size(json_object_get(l, "history")), 2);
  json_decref(l);
  json_t *l24 = th_query_ok(f, parking_of(f), "{'op':'lot','lot':'a'}");
  assert_int_equal(json_array_size(json_object_get(l24, "history")), 1);
  json_decref(l24);
}

/* ---- guidance ---------------------------------------------------------- */

static void set_lots_now(th_host *f)
{
  twin_time t = core_now_ms() - 60000;
  observe(f, "near", 20, 0, t);
  observe(f, "mid", 80, 0, t);
  observe(f, "far", 150, 0, t);
  observe(f, "full", 0, 0, t);
}

static void guidance_ranks_by_walk_price_and_space(void **state)
{
  th_host *f = *state;
  set_lots_now(f);
  json_t *g = th_query_ok(f, parking_of(f),
                          "{'op':'guidance','lat':48.83,'lon':12.96}");
  json_t *ls = json_object_get(g, "lots");
  /* "full" has no space; "mid" (4.3 min, 0.50/h) beats "near" (0 min,
   * 2.00/h); "far" is a 28 min walk */
  assert_int_equal(json_array_size(ls), 3);
  assert_string_equal(tu_str(ls, "[0].lot"), "mid");
  assert_string_equal(tu_str(ls, "[1].lot"), "near");
  assert_string_equal(tu_str(ls, "[2].lot"), "far");
  json_t *mid = json_array_get(ls, 0);
  assert_true(fabs(tu_num(mid, "distance_m") - 334) <= 1);
  assert_true(fabs(tu_num(mid, "walk_min") - 4.3) < 0.11);
  assert_int_equal(tu_int(mid, "expected_free"), 80);
  assert_true(fabs(tu_num(mid, "price") - 0.5) < 1e-9);
  assert_string_equal(tu_str(mid, "price_source"), "static");
  assert_true(tu_num(mid, "score") < tu_num(ls, "[1].score"));
  json_decref(g);
  g = th_query_ok(f, parking_of(f),
                  "{'op':'guidance','lat':48.85,'lon':12.96,'limit':1}");
  ls = json_object_get(g, "lots");
  assert_int_equal(json_array_size(ls), 1);
  assert_string_equal(tu_str(ls, "[0].lot"), "far");
  json_decref(g);
}

/* ---- scenarios --------------------------------------------------------- */

static char *live_state(th_host *f)
{
  json_t *n = th_query_ok(f, parking_of(f), "{'op':'now'}");
  char *s = json_dumps(n, JSON_COMPACT | JSON_SORT_KEYS);
  json_decref(n);
  return s;
}

static void closure_moves_cars_and_leaves_live_state_alone(void **state)
{
  th_host *f = *state;
  set_lots_now(f);
  char *before = live_state(f);
  twin_time from = core_now_ms() + HOUR_MS;
  char *sc = tu_fmt("{'op':'closure','lot':'near','from':%lld,'to':%lld}",
                    (long long)from, (long long)(from + HOUR_MS));
  json_t *r = th_simulate_report(f, parking_of(f), sc);
  free(sc);
  /* near holds 30 cars; "full" has no room, "mid" (334 m) takes all 30 */
  assert_int_equal(tu_int(r, "steps"), 4);
  json_t *near = tu_get(r, "lots[lot=near]"), *mid = tu_get(r, "lots[lot=mid]");
  assert_true(fabs(tu_num(near, "baseline.peak_occupancy") - 0.6) < 1e-9);
  assert_true(fabs(tu_num(near, "scenario.peak_occupancy")) < 1e-9);
  assert_int_equal(json_array_size(json_object_get(near, "overflow")), 1);
  assert_true(fabs(tu_num(mid, "baseline.peak_occupancy") - 0.2) < 1e-9);
  assert_true(fabs(tu_num(mid, "scenario.peak_occupancy") - 0.5) < 1e-9);
  json_t *nos = json_object_get(r, "cars_without_space");
  assert_int_equal(tu_int(nos, "peak"), 0);
  json_t *walk = json_object_get(r, "walk_added");
  assert_int_equal(tu_int(walk, "cars"), 30);
  assert_true(fabs(tu_num(walk, "average_m") - 334) <= 1);
  /* the scenario's reads saw its overlay writes */
  json_t *after = json_object_get(r, "state_at_peak");
  size_t i;
  json_t *l;
  int seen = 0;
  json_array_foreach(after, i, l)
  {
    if (!strcmp(tu_str(l, "id"), "near")) {
      assert_string_equal(tu_str(l, "status"), "closed");
      seen++;
    } else if (!strcmp(tu_str(l, "id"), "mid")) {
      assert_int_equal(tu_int(l, "free"), 50);
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
  th_host *f = *state;
  set_lots_now(f);
  char *before = live_state(f);
  twin_time from = core_now_ms() + HOUR_MS;
  char *sc = tu_fmt("{'op':'event','lat':48.833,'lon':12.96,'cars':300,"
                    "'from':%lld,'to':%lld}",
                    (long long)from, (long long)(from + HOUR_MS));
  json_t *r = th_simulate_report(f, parking_of(f), sc);
  free(sc);
  /* at the end: mid 80, near 20, far 150 placed, 50 without space */
  json_t *nos = json_object_get(r, "cars_without_space");
  assert_int_equal(tu_int(nos, "at_end"), 50);
  assert_int_equal(tu_int(nos, "peak"), 50);
  assert_true(fabs(tu_num(r, "lots[lot=far].scenario.peak_occupancy") - 1.0) <
              1e-9);
  assert_true(fabs(tu_num(r, "lots[lot=mid].scenario.peak_occupancy") - 1.0) <
              1e-9);
  assert_true(json_array_size(tu_get(r, "lots[lot=mid].overflow")) >= 1);
  json_t *walk = json_object_get(r, "walk_added");
  assert_int_equal(tu_int(walk, "cars"), 250);
  assert_true(tu_num(walk, "total_m") > 0);
  json_decref(r);
  char *after_live = live_state(f);
  assert_string_equal(before, after_live);
  assert_int_equal(history_count(f, "far"), 1);
  free(before);
  free(after_live);
}

static void bad_scenarios_and_unknown_ops_fail(void **state)
{
  th_host *f = *state;
  core_err err;
  assert_int_equal(th_simulate_fails(f, parking_of(f), "{'op':'flood'}", &err),
                   TWIN_ERR_NOT_FOUND);
  assert_non_null(strstr(err.msg, "no scenario op 'flood'"));
  /* the form before declared ops */
  assert_int_equal(
      th_simulate_fails(f, parking_of(f), "{'type':'closure'}", &err),
      TWIN_ERR_INVALID);
  assert_non_null(strstr(err.msg, "closure, event"));
  assert_int_equal(
      th_simulate_fails(f, parking_of(f),
                        "{'op':'closure','lot':'nowhere','from':0,'to':1000}",
                        &err),
      TWIN_ERR_NOT_FOUND);
  assert_int_equal(th_query_fails(f, parking_of(f), "{'op':'history'}", &err),
                   TWIN_ERR_NOT_FOUND);
  assert_non_null(strstr(err.msg, "no query op 'history'"));
  assert_non_null(strstr(err.msg, "now, lot, profile, forecast, guidance"));
  assert_int_equal(
      th_query_fails(f, parking_of(f), "{'op':'forecast','lot':'near'}", &err),
      TWIN_ERR_INVALID);
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
  o->body = body;
  o->fd = tu_listen_loopback(1, &o->port);
  assert_int_equal(pthread_create(&o->th, NULL, serve_once, o), 0);
}

static void one_shot_stop(one_shot *o)
{
  pthread_join(o->th, NULL);
  close(o->fd);
}

/* One fetch of parking, run here as a fetch thread runs it (off the
 * writer; it hands the snapshot to the pipeline and waits for its
 * commit): its status, err saying why it failed. */
static int fetch(th_host *f, core_err *err)
{
  return core_host_run_fetch(f->h, parking_of(f), err);
}

static void fetch_without_a_feed_does_nothing(void **state)
{
  th_host *f = *state;
  core_err err;
  assert_int_equal(fetch(f, &err), TWIN_OK);
  assert_int_equal(lot_count(f), 0);
}

static void fetch_pulls_the_feed_through_the_pipeline(void **state)
{
  th_host *f = *state;
  one_shot o;
  char *t = th_rfc3339(core_now_ms() - 60000);
  char *body = tu_fmt("{\"last_updated\":\"%s\",\"lots\":[{\"id\":\"p1\","
                      "\"total\":100,\"free\":25,\"state\":\"open\"}]}",
                      t);
  one_shot_start(&o, body);
  char *cfg = tu_fmt("{'feed_url':'http://127.0.0.1:%d/lots.json'}", o.port);
  th_close(f);
  open_host(f, cfg);
  core_err err;
  int st = fetch(f, &err);
  one_shot_stop(&o);
  if (st)
    fail_msg("fetch: %d %s", st, err.msg);
  json_t *n = th_query_ok(f, parking_of(f), "{'op':'now'}");
  assert_int_equal(tu_int(n, "lots[id=p1].free"), 25);
  json_decref(n);
  free(cfg);
  free(body);
  free(t);
}

static void fetch_with_an_unreachable_feed_backs_off(void **state)
{
  th_host *f = *state;
  /* a port nobody listens on: take one, then close it */
  int port;
  close(tu_listen_loopback(1, &port));
  char *cfg = tu_fmt("{'feed_url':'http://127.0.0.1:%d/lots.json',"
                     "'feed_timeout_ms':1000}",
                     port);
  th_close(f);
  open_host(f, cfg);
  twin_time before = core_now_ms();
  core_err err;
  assert_int_equal(fetch(f, &err), TWIN_ERR_UNAVAILABLE);
  assert_non_null(strstr(err.msg, "feed: GET http://127.0.0.1:"));
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
  th_host *f = *state;
  set_lots_now(f);
  json_t *g = th_query_ok(f, parking_of(f),
                          "{'op':'guidance','lat':48.85,'lon':12.96}");
  json_t *ls = json_object_get(g, "lots"), *l;
  size_t i;
  int seen = 0;
  json_array_foreach(ls, i, l)
  {
    if (!strcmp(tu_str(l, "lot"), "far")) {
      assert_true(fabs(tu_num(l, "price") - 9) < 1e-9);
      assert_string_equal(tu_str(l, "price_source"), "script");
      seen++;
    } else if (!strcmp(tu_str(l, "lot"), "mid")) {
      assert_string_equal(tu_str(l, "price_source"), "static");
      seen++;
    }
  }
  assert_int_equal(seen, 2);
  /* at 9.00/h the lot at the point (0 min) now ranks below "mid" */
  assert_string_equal(tu_str(ls, "[0].lot"), "mid");
  json_decref(g);
}

#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, th_teardown)
#define TL(fn) cmocka_unit_test_setup_teardown(fn, setup_lots, th_teardown)

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
          th_teardown),
      T(profile_and_forecast_match_hand_computed_values),
      TL(guidance_ranks_by_walk_price_and_space),
      TL(closure_moves_cars_and_leaves_live_state_alone),
      TL(event_fills_nearest_lots_and_counts_cars_left_over),
      TL(bad_scenarios_and_unknown_ops_fail),
      T(fetch_without_a_feed_does_nothing),
      T(fetch_pulls_the_feed_through_the_pipeline),
      T(fetch_with_an_unreachable_feed_backs_off),
      cmocka_unit_test_setup_teardown(guidance_uses_the_town_price_rule,
                                      setup_script, th_teardown),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
