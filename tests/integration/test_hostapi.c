/*
 * test_hostapi.c — every host service a plugin calls, exercised through the
 * real probe.so loaded by a real host on a real LMDB: entities, history,
 * plugin kv, events, replies, cross-plugin queries, town info, local time
 * (also from two threads at once in two zones), the read-only
 * rule of queries, the scenario overlay, town isolation, atomic documents in
 * a batch, group commit, and tick backoff.
 */
#include "testhost.h"

#include <jansson.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "ctx.h"
#include "tz.h"

static int setup(void **state)
{
  th_host *f = th_new();
  th_fixture(f, "probe.so");
  th_config(f, TH_FIXTURES,
            "{'id':'alpha','name':'Alpha','timezone':'Europe/Berlin',"
            " 'scripts':'.','plugins':{'probe':{}}},"
            "{'id':'beta','name':'Beta','timezone':'Europe/Berlin',"
            " 'scripts':'.','plugins':{'probe':{'config':{'tick_fail':"
            "true},'tick_s':1}}}");
  th_open(f);
  *state = f;
  return 0;
}

/* The probe of town. */
static core_instance *inst(th_host *f, const char *town)
{
  return th_inst(f, town, "probe");
}

static void put_then_get_returns_each_value_type(void **state)
{
  th_host *f = *state;
  th_ingest_ok(f, inst(f, "alpha"),
               "{\"ops\":[{\"op\":\"put\",\"type\":\"Lot\",\"id\":\"p1\","
               "\"time\":1000,\"attrs\":{\"free\":12,\"occ\":0.5,"
               "\"name\":\"Stadthallen\",\"open\":true,\"note\":null}}]}");
  json_t *a = th_query_ok(f, inst(f, "alpha"),
                          "{\"op\":\"attrs\",\"type\":\"Lot\",\"id\":\"p1\"}");
  assert_int_equal(tu_int(a, "free.value"), 12);
  assert_true(json_is_integer(tu_get(a, "free.value")));
  assert_true(json_real_value(tu_get(a, "occ.value")) == 0.5);
  assert_string_equal(tu_str(a, "name.value"), "Stadthallen");
  assert_true(json_is_true(tu_get(a, "open.value")));
  assert_true(json_is_null(tu_get(a, "note.value")));
  assert_int_equal(tu_int(a, "free.time"), 1000);
  json_decref(a);
  json_t *g = th_query_ok(
      f, inst(f, "alpha"),
      "{\"op\":\"get\",\"type\":\"Lot\",\"id\":\"p1\",\"attr\":\"free\"}");
  assert_int_equal(tu_int(g, "value"), 12);
  json_decref(g);
}

static void a_put_keeps_attributes_it_does_not_name(void **state)
{
  th_host *f = *state;
  th_ingest_ok(f, inst(f, "alpha"),
               "{\"ops\":[{\"op\":\"put\",\"type\":\"Lot\",\"id\":\"p1\","
               "\"attrs\":{\"a\":1,\"b\":2}},{\"op\":\"put\",\"type\":\"Lot\","
               "\"id\":\"p1\",\"attrs\":{\"b\":3}}]}");
  json_t *a = th_query_ok(f, inst(f, "alpha"),
                          "{\"op\":\"attrs\",\"type\":\"Lot\",\"id\":\"p1\"}");
  assert_int_equal(json_object_size(a), 2);
  assert_int_equal(tu_int(a, "b.value"), 3);
  json_decref(a);
}

static void missing_entity_is_not_found(void **state)
{
  th_host *f = *state;
  core_err err;
  assert_null(th_query(f, inst(f, "alpha"),
                       "{\"op\":\"get\",\"type\":\"Lot\",\"id\":\"nope\","
                       "\"attr\":\"free\"}",
                       &err));
  assert_non_null(strstr(err.msg, "NOT_FOUND"));
}

static void history_is_time_ordered_bounded_and_limited(void **state)
{
  th_host *f = *state;
  th_ingest_ok(f, inst(f, "alpha"),
               "{\"ops\":[{\"op\":\"obs\",\"type\":\"Lot\",\"id\":\"p1\","
               "\"attr\":\"free\",\"values\":[[3000,3],[1000,1],[2000,2],"
               "[-5000,-5],[4000,4]]}]}");
  json_t *h = th_query_ok(f, inst(f, "alpha"),
                          "{\"op\":\"history\",\"type\":\"Lot\",\"id\":\"p1\","
                          "\"attr\":\"free\",\"from\":-10000,\"to\":100000}");
  assert_int_equal(json_array_size(h), 5);
  json_int_t want[] = {-5000, 1000, 2000, 3000, 4000};
  for (size_t i = 0; i < 5; i++)
    assert_int_equal(tu_int(h, "[%zu][0]", i), want[i]);
  json_decref(h);
  /* from is inclusive, to exclusive */
  h = th_query_ok(f, inst(f, "alpha"),
                  "{\"op\":\"history\",\"type\":\"Lot\",\"id\":\"p1\","
                  "\"attr\":\"free\",\"from\":1000,\"to\":3000}");
  assert_int_equal(json_array_size(h), 2);
  json_decref(h);
  h = th_query_ok(f, inst(f, "alpha"),
                  "{\"op\":\"history\",\"type\":\"Lot\",\"id\":\"p1\","
                  "\"attr\":\"free\",\"from\":0,\"to\":100000,\"limit\":2}");
  assert_int_equal(json_array_size(h), 2);
  assert_int_equal(tu_int(h, "[1][0]"), 2000);
  json_decref(h);
  /* Another attribute's series is separate. */
  h = th_query_ok(f, inst(f, "alpha"),
                  "{\"op\":\"history\",\"type\":\"Lot\",\"id\":\"p1\","
                  "\"attr\":\"fre\",\"from\":-10000,\"to\":100000}");
  assert_int_equal(json_array_size(h), 0);
  json_decref(h);
}

static void an_observation_at_the_same_time_replaces_the_first(void **state)
{
  th_host *f = *state;
  for (int i = 0; i < 2; i++)
    th_ingest_ok(f, inst(f, "alpha"),
                 i == 0
                     ? "{\"ops\":[{\"op\":\"obs\",\"type\":\"L\",\"id\":\"x\","
                       "\"attr\":\"v\",\"values\":[[1000,1]]}]}"
                     : "{\"ops\":[{\"op\":\"obs\",\"type\":\"L\",\"id\":\"x\","
                       "\"attr\":\"v\",\"values\":[[1000,9]]}]}");
  json_t *h = th_query_ok(f, inst(f, "alpha"),
                          "{\"op\":\"history\",\"type\":\"L\",\"id\":\"x\","
                          "\"attr\":\"v\",\"from\":0,\"to\":5000}");
  assert_int_equal(json_array_size(h), 1);
  assert_int_equal(tu_int(h, "[0][1]"), 9);
  json_decref(h);
}

static void delete_removes_current_state_and_keeps_history(void **state)
{
  th_host *f = *state;
  th_ingest_ok(f, inst(f, "alpha"),
               "{\"ops\":[{\"op\":\"put\",\"type\":\"Lot\",\"id\":\"p1\","
               "\"attrs\":{\"a\":1,\"b\":2}},{\"op\":\"obs\",\"type\":\"Lot\","
               "\"id\":\"p1\",\"attr\":\"a\",\"values\":[[1,1]]}]}");
  th_ingest_ok(
      f, inst(f, "alpha"),
      "{\"ops\":[{\"op\":\"delete\",\"type\":\"Lot\",\"id\":\"p1\"}]}");
  json_t *l = th_query_ok(f, inst(f, "alpha"), "{\"op\":\"list\"}");
  assert_int_equal(json_array_size(l), 0);
  json_decref(l);
  json_t *h = th_query_ok(f, inst(f, "alpha"),
                          "{\"op\":\"history\",\"type\":\"Lot\",\"id\":\"p1\","
                          "\"attr\":\"a\",\"from\":0,\"to\":10}");
  assert_int_equal(json_array_size(h), 1);
  json_decref(h);
  /* Deleting what is not there says so. */
  th_outcome r = th_ingest(f, inst(f, "alpha"),
                           "{\"ops\":[{\"op\":\"delete\",\"type\":\"Lot\","
                           "\"id\":\"p1\"}]}");
  assert_int_equal(r.status, TWIN_ERR_NOT_FOUND);
}

static void iterate_lists_each_entity_once_in_type_then_id_order(void **state)
{
  th_host *f = *state;
  th_ingest_ok(
      f, inst(f, "alpha"),
      "{\"ops\":["
      "{\"op\":\"put\",\"type\":\"Zone\",\"id\":\"z1\",\"attrs\":{\"a\":1}},"
      "{\"op\":\"put\",\"type\":\"Lot\",\"id\":\"p2\",\"attrs\":{\"a\":1,"
      "\"b\":2,\"c\":3}},"
      "{\"op\":\"put\",\"type\":\"Lot\",\"id\":\"p1\",\"attrs\":{\"a\":1,"
      "\"b\":2}}]}");
  json_t *l = th_query_ok(f, inst(f, "alpha"), "{\"op\":\"list\"}");
  assert_int_equal(json_array_size(l), 3);
  assert_string_equal(tu_str(l, "[0][1]"), "p1");
  assert_string_equal(tu_str(l, "[2][0]"), "Zone");
  json_decref(l);
  l = th_query_ok(f, inst(f, "alpha"), "{\"op\":\"list\",\"type\":\"Lot\"}");
  assert_int_equal(json_array_size(l), 2);
  json_decref(l);
}

static void kv_stores_reads_and_deletes_bytes(void **state)
{
  th_host *f = *state;
  th_ingest_ok(
      f, inst(f, "alpha"),
      "{\"ops\":[{\"op\":\"kv_put\",\"key\":\"etag\",\"value\":\"W/1\"}]}");
  json_t *v =
      th_query_ok(f, inst(f, "alpha"), "{\"op\":\"kv_get\",\"key\":\"etag\"}");
  assert_string_equal(tu_str(v, "value"), "W/1");
  json_decref(v);
  th_ingest_ok(f, inst(f, "alpha"),
               "{\"ops\":[{\"op\":\"kv_delete\",\"key\":\"etag\"}]}");
  core_err err;
  assert_null(th_query(f, inst(f, "alpha"),
                       "{\"op\":\"kv_get\",\"key\":\"etag\"}", &err));
}

static void emit_records_an_event_in_the_town_log(void **state)
{
  th_host *f = *state;
  th_ingest_ok(
      f, inst(f, "alpha"),
      "{\"ops\":[{\"op\":\"emit\",\"level\":\"warning\",\"type\":\"Lot\","
      "\"id\":\"p1\",\"message\":\"almost full\",\"data\":{\"occ\":0.93}}]}");
  json_t *evs = th_events(f, "alpha");
  assert_int_equal(json_array_size(evs), 1);
  json_t *ev = json_array_get(evs, 0);
  assert_string_equal(tu_str(ev, "message"), "almost full");
  assert_string_equal(tu_str(ev, "level"), "warning");
  assert_string_equal(tu_str(ev, "entity_id"), "p1");
  assert_true(json_real_value(tu_get(ev, "data.occ")) == 0.93);
  json_decref(evs);
  evs = th_events(f, "beta");
  assert_int_equal(json_array_size(evs), 0);
  json_decref(evs);
}

static void a_failed_document_leaves_nothing_behind(void **state)
{
  th_host *f = *state;
  th_outcome r = th_ingest(
      f, inst(f, "alpha"),
      "{\"ops\":[{\"op\":\"put\",\"type\":\"Lot\",\"id\":\"p9\",\"attrs\":"
      "{\"a\":1}},{\"op\":\"obs\",\"type\":\"Lot\",\"id\":\"p9\",\"attr\":"
      "\"a\",\"values\":[[1,1]]},{\"op\":\"kv_put\",\"key\":\"k\",\"value\":"
      "\"v\"},{\"op\":\"emit\",\"level\":\"info\",\"message\":\"m\"},"
      "{\"op\":\"fail\",\"status\":\"ERR_REJECTED\",\"message\":"
      "\"free 412 > total 400\"}]}");
  assert_int_equal(r.status, TWIN_ERR_REJECTED);
  assert_non_null(strstr(r.reason, "free 412 > total 400"));
  json_t *l = th_query_ok(f, inst(f, "alpha"), "{\"op\":\"list\"}");
  assert_int_equal(json_array_size(l), 0);
  json_decref(l);
  json_t *h = th_query_ok(f, inst(f, "alpha"),
                          "{\"op\":\"history\",\"type\":\"Lot\",\"id\":\"p9\","
                          "\"attr\":\"a\",\"from\":0,\"to\":10}");
  assert_int_equal(json_array_size(h), 0);
  json_decref(h);
  core_err err;
  assert_null(
      th_query(f, inst(f, "alpha"), "{\"op\":\"kv_get\",\"key\":\"k\"}", &err));
  json_t *evs = th_events(f, "alpha");
  assert_int_equal(json_array_size(evs), 0);
  json_decref(evs);
}

static void
a_rejected_document_does_not_stop_the_rest_of_its_batch(void **state)
{
  th_host *f = *state;
  th_outcome r[50] = {{0}};
  core_instance *ci = inst(f, "alpha");
  for (int i = 0; i < 50; i++) {
    char *doc = i == 25 ? tu_fmt("{\"ops\":[{\"op\":\"put\",\"type\":\"D\","
                                 "\"id\":\"d%d\",\"attrs\":{\"a\":1}},"
                                 "{\"op\":\"fail\",\"message\":\"bad\"}]}",
                                 i)
                        : tu_fmt("{\"ops\":[{\"op\":\"put\",\"type\":\"D\","
                                 "\"id\":\"d%d\",\"attrs\":{\"a\":1}}]}",
                                 i);
    assert_int_equal(core_pipeline_submit_as(f->p, ci, NULL, doc, strlen(doc),
                                             th_on_outcome, &r[i]),
                     0);
    free(doc);
  }
  core_pipeline_drain(f->p);
  for (int i = 0; i < 50; i++) {
    assert_true(r[i].called);
    assert_int_equal(r[i].status, i == 25 ? TWIN_ERR_REJECTED : TWIN_OK);
  }
  json_t *l =
      th_query_ok(f, inst(f, "alpha"), "{\"op\":\"list\",\"type\":\"D\"}");
  assert_int_equal(json_array_size(l), 49);
  json_decref(l);
}

static void many_documents_share_commits(void **state)
{
  th_host *f = *state;
  core_pipeline_stats before, after;
  core_pipeline_stats_get(f->p, &before);
  core_instance *ci = inst(f, "alpha");
  const char *doc = "{\"ops\":[{\"op\":\"obs\",\"type\":\"T\",\"id\":\"t\","
                    "\"attr\":\"v\",\"values\":[[1,1]]}]}";
  for (int i = 0; i < 2000; i++)
    assert_int_equal(
        core_pipeline_submit(f->p, ci, doc, strlen(doc), NULL, NULL), 0);
  core_pipeline_drain(f->p);
  core_pipeline_stats_get(f->p, &after);
  assert_int_equal(after.docs - before.docs, 2000);
  /* Group commit: callers queue while the writer commits, so batches hold
   * many documents. 2000 documents in 2000 commits would mean none. */
  assert_true(after.batches - before.batches < 2000);
}

static void writes_in_a_query_are_refused(void **state)
{
  th_host *f = *state;
  const char *writes[] = {
      "{\"op\":\"put\",\"type\":\"L\",\"id\":\"x\",\"attrs\":{\"a\":1}}",
      ("{\"op\":\"obs\",\"type\":\"L\",\"id\":\"x\",\"attr\":\"a\","
       "\"values\":[[1,1]]}"),
      "{\"op\":\"delete\",\"type\":\"L\",\"id\":\"x\"}",
      "{\"op\":\"kv_put\",\"key\":\"k\",\"value\":\"v\"}",
      "{\"op\":\"kv_delete\",\"key\":\"k\"}",
      "{\"op\":\"emit\",\"level\":\"info\",\"message\":\"m\"}"};
  for (size_t i = 0; i < sizeof writes / sizeof writes[0]; i++) {
    json_t *r = th_query_ok(f, inst(f, "alpha"), writes[i]);
    assert_string_equal(tu_str(r, "status"), "ERR_READ_ONLY");
    json_decref(r);
  }
}

static void respond_during_ingest_is_unsupported(void **state)
{
  th_host *f = *state;
  th_outcome r =
      th_ingest(f, inst(f, "alpha"),
                "{\"ops\":[{\"op\":\"respond\",\"value\":{\"a\":1}}]}");
  assert_int_equal(r.status, TWIN_ERR_UNSUPPORTED);
}

static void a_scenario_sees_its_writes_and_changes_nothing_live(void **state)
{
  th_host *f = *state;
  th_ingest_ok(f, inst(f, "alpha"),
               "{\"ops\":[{\"op\":\"put\",\"type\":\"Lot\",\"id\":\"p1\","
               "\"attrs\":{\"free\":100}}]}");
  const char *sc =
      "{\"ops\":[{\"op\":\"put\",\"type\":\"Lot\",\"id\":\"p1\",\"attrs\":"
      "{\"free\":0}},{\"op\":\"put\",\"type\":\"Lot\",\"id\":\"new\","
      "\"attrs\":{\"free\":5}},{\"op\":\"obs\",\"type\":\"Lot\",\"id\":"
      "\"p1\",\"attr\":\"free\",\"values\":[[7,0]]},{\"op\":\"kv_put\","
      "\"key\":\"s\",\"value\":\"x\"},{\"op\":\"emit\",\"level\":\"error\","
      "\"message\":\"p1 full\"}],\"then\":{\"op\":\"list\"}}";
  json_t *j = th_simulate_ok(f, inst(f, "alpha"), sc);
  /* The scenario's reads saw its own writes (two lots) ... */
  assert_int_equal(json_array_size(json_object_get(j, "report")), 2);
  assert_int_equal(json_array_size(json_object_get(j, "events")), 1);
  assert_true(json_integer_value(json_object_get(j, "staged_writes")) >= 4);
  json_decref(j);
  /* ... and live state is as it was. */
  json_t *g = th_query_ok(f, inst(f, "alpha"),
                          "{\"op\":\"get\",\"type\":\"Lot\",\"id\":\"p1\","
                          "\"attr\":\"free\"}");
  assert_int_equal(tu_int(g, "value"), 100);
  json_decref(g);
  json_t *l = th_query_ok(f, inst(f, "alpha"), "{\"op\":\"list\"}");
  assert_int_equal(json_array_size(l), 1);
  json_decref(l);
  json_t *h = th_query_ok(f, inst(f, "alpha"),
                          "{\"op\":\"history\",\"type\":\"Lot\",\"id\":\"p1\","
                          "\"attr\":\"free\",\"from\":0,\"to\":100}");
  assert_int_equal(json_array_size(h), 0);
  json_decref(h);
  core_err err;
  assert_null(
      th_query(f, inst(f, "alpha"), "{\"op\":\"kv_get\",\"key\":\"s\"}", &err));
  json_t *evs = th_events(f, "alpha");
  assert_int_equal(json_array_size(evs), 0);
  json_decref(evs);
}

static void towns_never_see_each_other(void **state)
{
  th_host *f = *state;
  th_ingest_ok(f, inst(f, "alpha"),
               "{\"ops\":[{\"op\":\"put\",\"type\":\"Lot\",\"id\":\"p1\","
               "\"attrs\":{\"free\":1}},{\"op\":\"kv_put\",\"key\":\"k\","
               "\"value\":\"alpha\"}]}");
  json_t *l = th_query_ok(f, inst(f, "beta"), "{\"op\":\"list\"}");
  assert_int_equal(json_array_size(l), 0);
  json_decref(l);
  core_err err;
  assert_null(th_query(f, inst(f, "beta"),
                       "{\"op\":\"get\",\"type\":\"Lot\",\"id\":\"p1\","
                       "\"attr\":\"free\"}",
                       &err));
  assert_null(
      th_query(f, inst(f, "beta"), "{\"op\":\"kv_get\",\"key\":\"k\"}", &err));
}

static void town_info_and_clock_describe_the_calling_town(void **state)
{
  th_host *f = *state;
  json_t *t = th_query_ok(f, inst(f, "beta"), "{\"op\":\"town\"}");
  assert_string_equal(tu_str(t, "id"), "beta");
  assert_string_equal(tu_str(t, "name"), "Beta");
  assert_string_equal(tu_str(t, "timezone"), "Europe/Berlin");
  json_decref(t);
  twin_time before = core_now_ms();
  json_t *n = th_query_ok(f, inst(f, "alpha"), "{\"op\":\"now\"}");
  json_int_t now = json_integer_value(json_object_get(n, "now"));
  assert_true(now >= before && now <= core_now_ms());
  json_decref(n);
}

/* The probe's local_time op: the plugin calls api->local_time through the
 * ABI and replies with the fields. */
static void expect_local(th_host *f, twin_time t, const char *want)
{
  char *req = tu_fmt("{\"op\":\"local_time\",\"t\":%lld}", (long long)t);
  json_t *got = th_query_ok(f, inst(f, "alpha"), req);
  json_t *exp = json_loads(want, 0, NULL);
  assert_non_null(exp);
  if (!json_equal(got, exp)) {
    char *text = json_dumps(got, JSON_COMPACT | JSON_SORT_KEYS);
    fail_msg("local_time(%lld): got %s, want %s", (long long)t, text, want);
  }
  json_decref(exp);
  json_decref(got);
  free(req);
}

static void local_time_gives_the_towns_wall_clock(void **state)
{
  th_host *f = *state;
  /* Summer: 10:00Z is 12:00 CEST, a Wednesday, day 181 of 2026. */
  expect_local(f, th_time("2026-07-01T10:00:00Z"),
               "{\"year\":2026,\"month\":7,\"day\":1,\"hour\":12,"
               "\"minute\":0,\"second\":0,\"weekday\":3,\"yday\":181,"
               "\"utc_offset_s\":7200,\"is_dst\":true}");
  /* Winter: 08:30:15.999Z is 09:30:15 CET (the fraction is dropped). */
  expect_local(f, th_time("2026-01-15T08:30:15.999Z"),
               "{\"year\":2026,\"month\":1,\"day\":15,\"hour\":9,"
               "\"minute\":30,\"second\":15,\"weekday\":4,\"yday\":14,"
               "\"utc_offset_s\":3600,\"is_dst\":false}");
  /* -1 ms is the second before the epoch, rounded down. */
  expect_local(f, -1,
               "{\"year\":1970,\"month\":1,\"day\":1,\"hour\":0,"
               "\"minute\":59,\"second\":59,\"weekday\":4,\"yday\":0,"
               "\"utc_offset_s\":3600,\"is_dst\":false}");
  /* Beyond the zone file's table: its footer rule (last Sunday of March). */
  expect_local(f, th_time("2100-03-28T01:00:00Z"),
               "{\"year\":2100,\"month\":3,\"day\":28,\"hour\":3,"
               "\"minute\":0,\"second\":0,\"weekday\":0,\"yday\":86,"
               "\"utc_offset_s\":7200,\"is_dst\":true}");
}

static void local_time_leaves_the_process_zone_alone(void **state)
{
  th_host *f = *state;
  twin_ctx ctx;
  twin_local lt;
  core_ctx_init_town(&ctx, f->h, core_config_town(f->h->cfg, "alpha"), "probe",
                     CORE_CTX_READ, NULL, NULL);
  assert_int_equal(setenv("TZ", "America/New_York", 1), 0);
  tzset();
  assert_int_equal(
      f->h->api.local_time(&ctx, th_time("2026-07-01T10:00:00Z"), &lt),
      TWIN_OK);
  assert_int_equal(lt.hour, 12); /* the town's zone, not TZ */
  assert_string_equal(getenv("TZ"), "America/New_York");
  unsetenv("TZ");
  tzset();
  assert_int_equal(f->h->api.local_time(&ctx, 0, NULL), TWIN_ERR_INVALID);
  assert_int_equal(f->h->api.local_time(NULL, 0, &lt), TWIN_ERR_INVALID);
  core_ctx_done(&ctx);
}

/*
 * The race that switching TZ had: two threads converting in two zones at
 * once. One goes through the host call for a Berlin town, the other through
 * core_tz in New York; every answer must equal the one computed before, on
 * one thread.
 */
#define STRESS_N 200000

typedef struct stress {
  core_host *h;
  const core_town *town; /* NULL: core_tz in zone */
  const core_tz *zone;
  const twin_local *want;
  size_t wrong, first_wrong;
} stress;

static twin_time stress_time(size_t i)
{
  /* ~60 years from 1995 in steps of 2h38m, crossing every change */
  return (twin_time)(788918400 + (int64_t)i * 9497) * 1000;
}

static void local_of(const core_tz *z, twin_time t, twin_local *out)
{
  struct tm tm;
  memset(out, 0, sizeof *out);
  if (core_tz_local(z, t / 1000, &tm) != TWIN_OK)
    return;
  out->year = tm.tm_year + 1900;
  out->month = tm.tm_mon + 1;
  out->day = tm.tm_mday;
  out->hour = tm.tm_hour;
  out->minute = tm.tm_min;
  out->second = tm.tm_sec;
  out->weekday = tm.tm_wday;
  out->yday = tm.tm_yday;
  out->utc_offset_s = (int32_t)tm.tm_gmtoff;
  out->is_dst = tm.tm_isdst;
}

static void *stress_run(void *arg)
{
  stress *s = arg;
  twin_ctx ctx;
  if (s->town)
    core_ctx_init_town(&ctx, s->h, s->town, "probe", CORE_CTX_READ, NULL, NULL);
  for (size_t i = 0; i < STRESS_N; i++) {
    twin_local got;
    if (s->town) {
      if (s->h->api.local_time(&ctx, stress_time(i), &got) != TWIN_OK)
        memset(&got, 0xff, sizeof got);
    } else
      local_of(s->zone, stress_time(i), &got);
    if (memcmp(&got, &s->want[i], sizeof got) && !s->wrong++)
      s->first_wrong = i;
  }
  if (s->town)
    core_ctx_done(&ctx);
  return NULL;
}

static void two_threads_convert_in_two_zones_at_once(void **state)
{
  th_host *f = *state;
  core_err err;
  const core_tz *berlin = core_tz_get("Europe/Berlin", &err);
  const core_tz *ny = core_tz_get("America/New_York", &err);
  assert_non_null(berlin);
  assert_non_null(ny);
  twin_local *want_b = calloc(STRESS_N, sizeof *want_b);
  twin_local *want_n = calloc(STRESS_N, sizeof *want_n);
  assert_non_null(want_b);
  assert_non_null(want_n);
  for (size_t i = 0; i < STRESS_N; i++) {
    local_of(berlin, stress_time(i), &want_b[i]);
    local_of(ny, stress_time(i), &want_n[i]);
  }
  /* The expectations themselves, at the sample nearest 2026-07-01T10:00Z. */
  size_t k =
      (size_t)((th_time("2026-07-01T10:00:00Z") / 1000 - 788918400) / 9497);
  assert_true(stress_time(k) <= th_time("2026-07-01T10:00:00Z") &&
              stress_time(k + 1) > th_time("2026-07-01T10:00:00Z"));
  assert_int_equal(want_b[k].utc_offset_s, 7200);
  assert_int_equal(want_n[k].utc_offset_s, -14400);
  assert_int_equal((want_b[k].hour - want_n[k].hour + 24) % 24, 6);
  stress a = {f->h, core_config_town(f->h->cfg, "alpha"), NULL, want_b, 0, 0};
  stress b = {f->h, NULL, ny, want_n, 0, 0};
  pthread_t ta, tb;
  assert_int_equal(pthread_create(&ta, NULL, stress_run, &a), 0);
  assert_int_equal(pthread_create(&tb, NULL, stress_run, &b), 0);
  pthread_join(ta, NULL);
  pthread_join(tb, NULL);
  if (a.wrong || b.wrong)
    fail_msg("wrong answers: Berlin %zu (first at %zu), New York %zu (first "
             "at %zu)",
             a.wrong, a.first_wrong, b.wrong, b.first_wrong);
  free(want_b);
  free(want_n);
}

static void query_plugin_asks_another_plugin_of_the_same_town(void **state)
{
  th_host *f = *state;
  th_ingest_ok(f, inst(f, "alpha"),
               "{\"ops\":[{\"op\":\"put\",\"type\":\"Lot\",\"id\":\"p1\","
               "\"attrs\":{\"free\":7}}]}");
  json_t *r = th_query_ok(f, inst(f, "alpha"),
                          "{\"op\":\"query_plugin\",\"plugin\":\"probe\","
                          "\"request\":{\"op\":\"get\",\"type\":\"Lot\",\"id\":"
                          "\"p1\",\"attr\":\"free\"}}");
  assert_int_equal(tu_int(r, "value"), 7);
  json_decref(r);
  core_err err;
  assert_null(th_query(f, inst(f, "alpha"),
                       "{\"op\":\"query_plugin\",\"plugin\":\"parking\","
                       "\"request\":{}}",
                       &err));
  assert_non_null(strstr(err.msg, "NOT_FOUND"));
}

static void call_script_finds_nothing_in_a_town_without_rules(void **state)
{
  th_host *f = *state;
  core_err err;
  assert_null(th_query(f, inst(f, "alpha"),
                       "{\"op\":\"call_script\",\"function\":\"price\","
                       "\"args\":[]}",
                       &err));
  assert_non_null(strstr(err.msg, "ERR_NOT_FOUND"));
}

static void bad_names_are_refused_not_stored(void **state)
{
  th_host *f = *state;
  th_outcome r =
      th_ingest(f, inst(f, "alpha"),
                "{\"ops\":[{\"op\":\"put\",\"type\":\"\",\"id\":\"x\","
                "\"attrs\":{\"a\":1}}]}");
  assert_int_equal(r.status, TWIN_ERR_INVALID);
  r = th_ingest(f, inst(f, "alpha"),
                "{\"ops\":[{\"op\":\"put\",\"type\":\"L\",\"id\":\"x\\u0001y\","
                "\"attrs\":{\"a\":1}}]}");
  assert_int_equal(r.status, TWIN_ERR_INVALID);
  json_t *l = th_query_ok(f, inst(f, "alpha"), "{\"op\":\"list\"}");
  assert_int_equal(json_array_size(l), 0);
  json_decref(l);
}

static void ticks_count_and_failing_ticks_back_off_then_disable(void **state)
{
  th_host *f = *state;
  core_instance *a = inst(f, "alpha");
  for (int i = 0; i < 3; i++)
    core_pipeline_submit_tick(f->p, a, NULL, NULL);
  core_pipeline_drain(f->p);
  json_t *d =
      th_query_ok(f, inst(f, "alpha"),
                  "{\"op\":\"get\",\"type\":\"Ticker\",\"id\":\"ticker\","
                  "\"attr\":\"count\"}");
  assert_int_equal(tu_int(d, "value"), 3);
  json_decref(d);
  core_instance *b = inst(f, "beta");
  core_pipeline_submit_tick(f->p, b, NULL, NULL);
  core_pipeline_drain(f->p);
  assert_int_equal(b->state, CORE_INSTANCE_BACKOFF);
  assert_true(b->next_tick > core_now_ms());
  for (int i = 0; i < 10; i++)
    core_pipeline_submit_tick(f->p, b, NULL, NULL);
  core_pipeline_drain(f->p);
  assert_int_equal(b->state, CORE_INSTANCE_DISABLED);
  assert_non_null(strstr(b->reason, "tick asked to fail"));
  /* The reason is stored for `twinhost plugins list` in other processes. */
  MDB_txn *txn;
  core_store_begin_read(f->h->store, &txn, NULL);
  char *st = core_host_stored_status(f->h, txn, "beta", "probe");
  core_store_end_read(f->h->store, txn);
  assert_non_null(st);
  assert_non_null(strstr(st, "disabled"));
  free(st);
  /* Alpha's probe keeps running. */
  assert_int_equal(a->state, CORE_INSTANCE_RUNNING);
}

static int setup_small_map(void **state)
{
  setenv("TWINHOST_MAP_MIB", "1", 1);
  int rc = setup(state);
  unsetenv("TWINHOST_MAP_MIB");
  return rc;
}

static void
a_map_that_fills_mid_batch_grows_and_each_document_runs_once(void **state)
{
  th_host *f = *state;
  core_instance *ci = inst(f, "alpha");
  size_t big = 200 * 1024;
  char *value = malloc(big + 1);
  memset(value, 'x', big);
  value[big] = 0;
  th_outcome r[20] = {{0}};
  for (int i = 0; i < 20; i++) {
    char *doc = tu_fmt("{\"ops\":[{\"op\":\"kv_put\",\"key\":\"k%d\","
                       "\"value\":\"%s\"},{\"op\":\"emit\",\"level\":"
                       "\"info\",\"message\":\"doc %d\"}]}",
                       i, value, i);
    assert_int_equal(core_pipeline_submit_as(f->p, ci, NULL, doc, strlen(doc),
                                             th_on_outcome, &r[i]),
                     0);
    free(doc);
  }
  core_pipeline_drain(f->p);
  free(value);
  for (int i = 0; i < 20; i++)
    if (r[i].status)
      fail_msg("document %d: %s", i, r[i].reason);
  uint64_t used, mapsize;
  core_store_usage(f->h->store, &used, &mapsize);
  assert_true(mapsize >= 4u << 20); /* 4 MiB of values in a 1 MiB map */
  json_t *calls = th_query_ok(f, inst(f, "alpha"), "{\"op\":\"calls\"}");
  assert_int_equal(tu_int(calls, "ingest"), 20);
  json_decref(calls);
  json_t *v =
      th_query_ok(f, inst(f, "alpha"), "{\"op\":\"kv_get\",\"key\":\"k19\"}");
  assert_int_equal(strlen(json_string_value(json_object_get(v, "value"))), big);
  json_decref(v);
  /* Each document's event once, in order, numbered without gaps. */
  json_t *evs = th_events(f, "alpha");
  assert_int_equal(json_array_size(evs), 20);
  for (int i = 0; i < 20; i++) {
    char want[16];
    snprintf(want, sizeof want, "doc %d", i);
    assert_string_equal(tu_str(evs, "[%d].message", i), want);
  }
  json_decref(evs);
}

/* ---- a full ring does not block who cannot wait ------------------------- */

static void ignore_outcome(void *ud, const core_outcome *o)
{
  (void)ud;
  (void)o;
}

static void a_full_ring_refuses_at_once_and_calls_back_when_there_is_room(
    void **state)
{
  th_host *f = *state;
  th_hold g;
  th_hold_writer(f, &g);
  /* the writer is held: fill the ring without ever waiting */
  const char *doc = "{\"ops\":[]}";
  int full = 0, queued = 0;
  for (int i = 0; i < 100000 && !full; i++) {
    int st = core_pipeline_try_submit_as(f->p, inst(f, "alpha"), NULL, doc,
                                         strlen(doc), ignore_outcome, NULL,
                                         &full);
    if (!st)
      queued++;
    else
      assert_int_equal(st, TWIN_ERR_UNAVAILABLE);
  }
  assert_true(full);
  assert_true(queued > 0);
  assert_int_equal(core_pipeline_when_space(f->p, th_hold_woken, &g), TWIN_OK);
  /* released only now: the callback follows the batch that frees room */
  pthread_mutex_lock(&g.mu);
  assert_int_equal(g.woken, 0);
  g.open = 1;
  pthread_cond_broadcast(&g.cv);
  while (!g.woken)
    pthread_cond_wait(&g.cv, &g.mu);
  pthread_mutex_unlock(&g.mu);
  core_pipeline_drain(f->p);
  assert_int_equal(core_pipeline_when_space(f->p, th_hold_woken, &g),
                   TWIN_STOP);
  th_hold_end(f, &g);
}

int main(void)
{
#define T(name) cmocka_unit_test_setup_teardown(name, setup, th_teardown)
  const struct CMUnitTest tests[] = {
      T(put_then_get_returns_each_value_type),
      T(a_put_keeps_attributes_it_does_not_name),
      T(missing_entity_is_not_found),
      T(history_is_time_ordered_bounded_and_limited),
      T(an_observation_at_the_same_time_replaces_the_first),
      T(delete_removes_current_state_and_keeps_history),
      T(iterate_lists_each_entity_once_in_type_then_id_order),
      T(kv_stores_reads_and_deletes_bytes),
      T(emit_records_an_event_in_the_town_log),
      T(a_failed_document_leaves_nothing_behind),
      T(a_rejected_document_does_not_stop_the_rest_of_its_batch),
      T(many_documents_share_commits),
      T(writes_in_a_query_are_refused),
      T(respond_during_ingest_is_unsupported),
      T(a_scenario_sees_its_writes_and_changes_nothing_live),
      T(towns_never_see_each_other),
      T(town_info_and_clock_describe_the_calling_town),
      T(local_time_gives_the_towns_wall_clock),
      T(local_time_leaves_the_process_zone_alone),
      T(two_threads_convert_in_two_zones_at_once),
      T(query_plugin_asks_another_plugin_of_the_same_town),
      T(call_script_finds_nothing_in_a_town_without_rules),
      T(bad_names_are_refused_not_stored),
      T(ticks_count_and_failing_ticks_back_off_then_disable),
      T(a_full_ring_refuses_at_once_and_calls_back_when_there_is_room),
      cmocka_unit_test_setup_teardown(
          a_map_that_fills_mid_batch_grows_and_each_document_runs_once,
          setup_small_map, th_teardown),
  };
#undef T
  return cmocka_run_group_tests(tests, NULL, NULL);
}
