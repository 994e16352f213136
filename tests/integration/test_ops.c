/*
 * test_ops.c — ABI 1.2 as a plugin author meets it: declared ops checked
 * by the host before the plugin sees a request, op routing in the body and
 * in the URL path, safe ops answered on GET from typed URL parameters,
 * media-typed replies and ingest bodies, item-level refusals, structured
 * errors, deadlines, api->town, the served OpenAPI document, and plugins
 * built against ABI 1.0 and 1.1 still loading and answering.
 *
 * Real .so fixtures (tests/plugins/ops.c, minor_one.c, old_minor.c) in a
 * real host on a real LMDB: first in this process (core_host_request, the
 * pipeline), then through a real `twinhost serve` on a loopback port.
 */
#include "testhost.h"

#include <jansson.h>
#include <stdio.h>
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "api.h"

/* The folder both groups run in: the three fixtures, town alpha with all
 * of them (a 100 ms query deadline), town beta with ops, open to read. */
static th_host *host_new(void)
{
  th_host *f = th_new();
  tu_utc_zoneinfo(f->dir);
  th_fixture(f, "ops.so");
  th_fixture(f, "minor_one.so");
  th_fixture(f, "old_minor.so");
  th_config(f, TH_FIXTURES,
            "{'id':'alpha','name':'Alpha','timezone':'UTC',"
            " 'location':{'lat':48.8349,'lon':12.9609},"
            " 'deadlines':{'query_ms':100},"
            " 'scripts':'.','plugins':{'ops':{},'minorone':{},"
            " 'older':{}}},"
            "{'id':'beta','name':'Beta','timezone':'UTC',"
            " 'api':{'anonymous_read':true},"
            " 'scripts':'.','plugins':{'ops':{}}}");
  return f;
}

static int setup_host(void **state)
{
  th_host *f = host_new();
  th_open(f);
  *state = f;
  return 0;
}

/* alpha's ops plugin. */
static core_instance *ops(th_host *f)
{
  return th_inst(f, "alpha", "ops");
}

static json_int_t echo_calls(th_host *f)
{
  json_t *j = th_ask_ok(f, ops(f), TWIN_OP_QUERY, "calls", "{}");
  json_int_t n = json_integer_value(json_object_get(j, "echo"));
  json_decref(j);
  return n;
}

/* ---- requests are checked before the plugin sees them ------------------- */

static void a_request_failing_its_schema_never_reaches_the_plugin(void **state)
{
  th_host *f = *state;
  static const struct {
    const char *req, *field, *says;
  } bad[] = {
      {"{\"op\":\"echo\"}", "from", "required but missing"},
      {"{\"op\":\"echo\",\"from\":\"2026-02-29T00:00:00Z\"}", "from",
       "not an RFC 3339 date-time"},
      {"{\"op\":\"echo\",\"from\":true}", "from", "RFC 3339"},
      {"{\"op\":\"echo\",\"from\":0,\"n\":11}", "n", "above the maximum 10"},
      {"{\"op\":\"echo\",\"from\":0,\"n\":\"3\"}", "n", "expected an integer"},
      {"{\"op\":\"echo\",\"from\":0,\"tags\":[1]}", "tags[0]",
       "expected a string"},
      {"{\"op\":\"echo\",\"from\":0,\"wehre\":\"north\"}", "wehre",
       "did you mean \"where\""},
      {"{\"op\":\"echo\",\"from\":0,\"where\":\"east\"}", "where",
       "not one of \"north\", \"south\""},
  };
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    core_reply r;
    core_err err;
    int st = th_request(f, ops(f), TWIN_OP_QUERY, NULL, bad[i].req, &r, &err);
    if (st != TWIN_ERR_INVALID)
      fail_msg("%s: status %d (%s), want ERR_INVALID", bad[i].req, st,
               err.msg);
    assert_string_equal(err.code, "bad_request");
    assert_string_equal(err.field, bad[i].field);
    tu_assert_contains(err.msg, bad[i].says);
    tu_assert_contains(err.msg, "ops query 'echo'");
  }
  assert_int_equal(echo_calls(f), 0);
}

static void a_checked_request_arrives_with_defaults_and_its_op(void **state)
{
  th_host *f = *state;
  json_t *j =
      th_ask_ok(f, ops(f), TWIN_OP_QUERY, NULL,
                "{\"op\":\"echo\",\"from\":\"2026-12-01T10:00:00+01:00\"}");
  json_t *got = json_object_get(j, "got");
  assert_string_equal(tu_str(got, "op"), "echo");
  assert_int_equal(tu_int(got, "n"), 3);
  assert_true(json_is_false(json_object_get(got, "exact")));
  assert_string_equal(tu_str(got, "from"), "2026-12-01T10:00:00+01:00");
  json_decref(j);
  /* the op named apart from the body (as a URL path does) */
  j = th_ask_ok(f, ops(f), TWIN_OP_QUERY, "echo", "{\"from\":1764547200000}");
  got = json_object_get(j, "got");
  assert_string_equal(tu_str(got, "op"), "echo");
  json_decref(j);
  assert_int_equal(echo_calls(f), 2);
}

static void an_unknown_or_missing_op_is_refused_with_the_ops_listed(
    void **state)
{
  th_host *f = *state;
  core_reply r;
  core_err err;
  assert_int_equal(th_request(f, ops(f), TWIN_OP_QUERY, NULL,
                              "{\"op\":\"ecoh\",\"from\":0}", &r, &err),
                   TWIN_ERR_NOT_FOUND);
  assert_string_equal(err.code, "unknown_op");
  assert_string_equal(err.field, "op");
  tu_assert_contains(err.msg, "did you mean \"echo\"");
  tu_assert_contains(err.msg, "echo, calls, calendar");

  assert_int_equal(
      th_request(f, ops(f), TWIN_OP_QUERY, NULL, "{\"from\":0}", &r, &err),
      TWIN_ERR_INVALID);
  assert_string_equal(err.field, "op");
  tu_assert_contains(err.msg, "missing");

  /* the path names one op, the body another */
  assert_int_equal(th_request(f, ops(f), TWIN_OP_QUERY, "echo",
                              "{\"op\":\"calls\"}", &r, &err),
                   TWIN_ERR_INVALID);
  tu_assert_contains(err.msg, "the path names query op 'echo'");

  assert_int_equal(th_request(f, ops(f), TWIN_OP_QUERY, NULL, "[1]", &r, &err),
                   TWIN_ERR_INVALID);
  tu_assert_contains(err.msg, "must be a JSON object");
  assert_int_equal(echo_calls(f), 0);
}

static void the_only_scenario_op_needs_no_name_and_changes_nothing(
    void **state)
{
  th_host *f = *state;
  json_t *j = th_ask_ok(f, ops(f), TWIN_OP_SCENARIO, NULL, "{\"id\":\"m1\"}");
  assert_string_equal(tu_str(j, "report.marked"), "m1");
  assert_int_equal(tu_int(j, "staged_writes"), 1);
  json_decref(j);
  core_reply r;
  core_err err;
  assert_int_equal(th_request(f, ops(f), TWIN_OP_SCENARIO, "mark",
                              "{\"id\":\"\"}", &r, &err),
                   TWIN_ERR_INVALID);
  assert_string_equal(err.field, "id");
}

/* ---- replies in media types ---------------------------------------------- */

static void a_calendar_reply_keeps_its_media_type(void **state)
{
  th_host *f = *state;
  core_reply r;
  core_err err;
  assert_int_equal(
      th_request(f, ops(f), TWIN_OP_QUERY, "calendar", "{}", &r, &err), 0);
  assert_string_equal(r.type, "text/calendar");
  assert_true(r.len > 15 && !memcmp(r.body, "BEGIN:VCALENDAR\r\n", 17));
  free(r.body);
  assert_int_equal(th_request(f, ops(f), TWIN_OP_QUERY, "calendar",
                              "{\"as\":\"json\"}", &r, &err),
                   0);
  assert_string_equal(r.type, "application/json");
  free(r.body);
  /* a type the op does not declare is the plugin's error */
  assert_int_equal(th_request(f, ops(f), TWIN_OP_QUERY, "calendar",
                              "{\"as\":\"csv\"}", &r, &err),
                   TWIN_ERR_INVALID);
  tu_assert_contains(err.msg, "not a reply type of calendar");
}

/* ---- deadlines and the town ---------------------------------------------- */

static void a_query_is_stopped_at_its_deadline(void **state)
{
  th_host *f = *state;
  core_reply r;
  core_err err;
  /* spin polls check_deadline until it says the deadline passed */
  int st = th_request(f, ops(f), TWIN_OP_QUERY, "spin", "{}", &r, &err);
  assert_int_equal(st, TWIN_ERR_DEADLINE);
  assert_string_equal(err.code, "deadline_exceeded");
  tu_assert_contains(err.msg, "alpha/ops query 'spin' ran out of time");
  tu_assert_contains(err.msg, "deadline of 100 ms");
  tu_assert_contains(err.msg, "deadlines.query_ms");
}

static void the_town_call_gives_id_name_zone_and_location(void **state)
{
  th_host *f = *state;
  json_t *j = th_ask_ok(f, ops(f), TWIN_OP_QUERY, "town", "{}");
  assert_string_equal(tu_str(j, "id"), "alpha");
  assert_string_equal(tu_str(j, "name"), "Alpha");
  assert_string_equal(tu_str(j, "timezone"), "UTC");
  assert_true(json_is_true(json_object_get(j, "has_location")));
  assert_true(json_real_value(json_object_get(j, "lat")) == 48.8349);
  assert_true(json_real_value(json_object_get(j, "lon")) == 12.9609);
  json_decref(j);
}

/* ---- ingest: media types and items --------------------------------------- */

static void a_csv_body_reaches_the_plugin_untouched(void **state)
{
  th_host *f = *state;
  /* ; separators, a decimal comma, CRLF, a quoted field and a NUL byte */
  static const char csv[] = "zeit;wert\r\n01.12.2026 10:00;\"1,5\"\r\n\0x";
  size_t n = sizeof csv - 1;
  th_outcome r = th_ingest_as(f, ops(f), "text/csv", csv, n);
  if (r.status)
    fail_msg("csv refused: %s", r.reason);
  th_outcome_free(&r);
  json_t *j = th_ask_ok(f, ops(f), TWIN_OP_QUERY, "last", "{}");
  char hex[2 * sizeof csv + 1];
  for (size_t i = 0; i < n; i++)
    snprintf(hex + 2 * i, 3, "%02x", (unsigned char)csv[i]);
  assert_string_equal(tu_str(j, "hex"), hex);
  assert_string_equal(tu_str(j, "type"), "text/csv");
  json_decref(j);
}

static void refused_items_are_listed_and_the_rest_lands(void **state)
{
  th_host *f = *state;
  const char *doc = "{\"items\":[{\"id\":\"a\",\"value\":1},"
                    "{\"id\":\"b\",\"value\":-2},{\"value\":3},"
                    "{\"id\":\"d\",\"value\":4}]}";
  th_outcome r = th_ingest_as(f, ops(f), NULL, doc, strlen(doc));
  if (r.status)
    fail_msg("document refused: %s", r.reason);
  assert_int_equal(r.total, 2);
  json_t *b = json_array_get(r.items, 0), *c = json_array_get(r.items, 1);
  assert_string_equal(tu_str(b, "item"), "b");
  assert_string_equal(tu_str(b, "field"), "value");
  assert_string_equal(tu_str(b, "code"), "implausible");
  tu_assert_contains(json_string_value(json_object_get(b, "reason")),
                     "-2 is negative");
  assert_string_equal(tu_str(c, "item"), "items[2]");
  assert_string_equal(tu_str(c, "code"), "malformed");
  th_outcome_free(&r);
  /* the good ones landed, the refused one did not */
  core_instance *ci = ops(f);
  MDB_txn *txn;
  core_err err;
  assert_int_equal(core_store_begin_read(f->h->store, &txn, &err), 0);
  static const struct {
    const char *id;
    int there;
  } want[] = {{"a", 1}, {"b", 0}, {"d", 1}};
  for (size_t i = 0; i < 3; i++) {
    json_t *e = NULL;
    api_error ae;
    int st = api_entity(f->h, txn, ci->town, "ops", "Item", want[i].id, &e, &ae);
    if ((st == 0) != want[i].there)
      fail_msg("entity Item/%s: %s", want[i].id,
               want[i].there ? "missing" : "stored although refused");
    json_decref(e);
  }
  core_store_end_read(f->h->store, txn);
  /* counted per reason code for /metrics */
  pthread_mutex_lock(&f->h->lock);
  uint64_t implausible = 0, malformed = 0;
  for (size_t i = 0; i < ci->n_refused_codes; i++) {
    if (!strcmp(ci->refused_codes[i].code, "implausible"))
      implausible = ci->refused_codes[i].n;
    if (!strcmp(ci->refused_codes[i].code, "malformed"))
      malformed = ci->refused_codes[i].n;
  }
  pthread_mutex_unlock(&f->h->lock);
  assert_int_equal(implausible, 1);
  assert_int_equal(malformed, 1);
}

static void a_document_whose_items_all_fail_is_rejected_with_them(
    void **state)
{
  th_host *f = *state;
  const char *doc = "{\"items\":[{\"id\":\"x\",\"value\":-1}]}";
  th_outcome r = th_ingest_as(f, ops(f), NULL, doc, strlen(doc));
  assert_int_equal(r.status, TWIN_ERR_REJECTED);
  tu_assert_contains(r.reason, "every item was refused");
  assert_int_equal(r.total, 1);
  th_outcome_free(&r);
  /* a structured error: the plugin's field */
  r = th_ingest_as(f, ops(f), NULL, "{}", 2);
  assert_int_equal(r.status, TWIN_ERR_PARSE);
  assert_string_equal(r.code, "no_items");
  th_outcome_free(&r);
}

static void a_media_type_the_plugin_does_not_take_is_refused(void **state)
{
  th_host *f = *state;
  assert_false(core_plugin_takes(ops(f)->plugin, "text/calendar"));
  assert_true(core_plugin_takes(ops(f)->plugin, "Text/CSV; charset=utf-8"));
  assert_true(core_plugin_takes(ops(f)->plugin, "application/geo+json"));
}

/* ---- plugins of ABI 1.0 and 1.1 ------------------------------------------ */

static void plugins_of_abi_1_0_and_1_1_still_load_and_answer(void **state)
{
  th_host *f = *state;
  core_instance *one = th_inst(f, "alpha", "minorone");
  assert_int_equal(one->plugin->desc.abi_minor, 1);
  assert_int_equal(one->plugin->n_ops, 0);
  json_t *j = th_ask_ok(f, th_inst(f, "alpha", "minorone"), TWIN_OP_QUERY, NULL,
                        "{\"op\":\"hello\"}");
  assert_string_equal(tu_str(j, "hello"), "world");
  json_decref(j);
  /* the op in the path reaches a plugin without a table as "op" */
  j = th_ask_ok(f, th_inst(f, "alpha", "minorone"), TWIN_OP_QUERY, "hour",
                "{\"t\":7200000}");
  assert_int_equal(tu_int(j, "hour"), 2);
  json_decref(j);
  core_err err;
  char *d = NULL;
  assert_int_equal(
      core_host_describe(f->h, th_inst(f, "alpha", "older"), &d, &err), 0);
  tu_assert_contains(d, "\"host_has_local_time\":true");
  free(d);
  th_outcome r = th_ingest_as(f, one, NULL, "{\"x\":1}", 7);
  assert_int_equal(r.status, 0);
  th_outcome_free(&r);
}

/* ---- through `twinhost serve` -------------------------------------------- */

/* The same folder under a real `twinhost serve`, with a token of alpha. */
typedef struct served {
  th_host *t;
  char *log;
  tu_server srv;
  char *token;
  char base[64];
} served;

static int setup_serve(void **state)
{
  served *f = calloc(1, sizeof *f);
  f->t = host_new();
  f->log = tu_fmt("%s/serve.log", f->t->dir);
  f->token = th_token(f->t, "alpha", "read,write");
  tu_server_start(&f->srv, f->t->config, f->log);
  snprintf(f->base, sizeof f->base, "http://127.0.0.1:%d", f->srv.port);
  *state = f;
  return 0;
}

static int teardown_serve(void **state)
{
  served *f = *state;
  tu_server_stop(&f->srv, SIGTERM);
  th_free(f->t);
  free(f->log);
  free(f->token);
  free(f);
  return 0;
}

static tu_http_resp req(served *f, const char *method, const char *path,
                        const char *type, const char *body, size_t len)
{
  char *url = tu_fmt("%s%s", f->base, path);
  tu_http_resp r = tu_http(method, url, f->token, type, body, len);
  free(url);
  return r;
}

static void expect(const tu_http_resp *r, long status, const char *code,
                   const char *field)
{
  if (r->status != status)
    fail_msg("status %ld, want %ld: %s", r->status, status, r->body);
  if (!code)
    return;
  json_t *e = json_object_get(r->json, "error");
  const char *c = json_string_value(json_object_get(e, "code"));
  if (!c || strcmp(c, code))
    fail_msg("code %s, want %s: %s", c ? c : "(none)", code, r->body);
  if (field) {
    const char *fl = json_string_value(json_object_get(e, "field"));
    if (!fl || strcmp(fl, field))
      fail_msg("field %s, want %s: %s", fl ? fl : "(none)", field, r->body);
  }
}

static void a_safe_op_is_answered_on_get_from_typed_parameters(void **state)
{
  served *f = *state;
  tu_http_resp r = req(f, "GET",
                       "/v1/towns/alpha/plugins/ops/query/echo?from=2026-12-"
                       "01T00:00:00Z&n=4&ratio=0.5&exact=true&tags=a&tags=b",
                       NULL, NULL, 0);
  expect(&r, 200, NULL, NULL);
  json_t *got = json_object_get(r.json, "got");
  assert_true(json_is_integer(json_object_get(got, "n")));
  assert_int_equal(tu_int(got, "n"), 4);
  assert_true(json_real_value(json_object_get(got, "ratio")) == 0.5);
  assert_true(json_is_true(json_object_get(got, "exact")));
  assert_int_equal(json_array_size(json_object_get(got, "tags")), 2);
  tu_http_free(&r);
  /* milliseconds pass for a date-time without a type */
  r = req(f, "GET", "/v1/towns/alpha/plugins/ops/query/echo?from=1764547200000",
          NULL, NULL, 0);
  expect(&r, 200, NULL, NULL);
  assert_true(json_is_integer(tu_get(r.json, "got.from")));
  tu_http_free(&r);

  r = req(f, "GET", "/v1/towns/alpha/plugins/ops/query/echo?from=0&n=four",
          NULL, NULL, 0);
  expect(&r, 400, "bad_parameter", "n");
  tu_http_free(&r);
  r = req(f, "GET", "/v1/towns/alpha/plugins/ops/query/echo?from=0&n=1&n=2",
          NULL, NULL, 0);
  expect(&r, 400, "bad_parameter", "n");
  tu_http_free(&r);
  r = req(f, "GET", "/v1/towns/alpha/plugins/ops/query/echo?n=2", NULL, NULL,
          0);
  expect(&r, 400, "bad_request", "from");
  tu_http_free(&r);
  /* not declared safe: POST only */
  r = req(f, "GET", "/v1/towns/alpha/plugins/ops/query/spin", NULL, NULL, 0);
  expect(&r, 405, "method_not_allowed", "op");
  tu_http_free(&r);
  r = req(f, "GET", "/v1/towns/alpha/plugins/ops/query/nope", NULL, NULL, 0);
  expect(&r, 404, "unknown_op", "op");
  tu_http_free(&r);
  /* an anonymous-read town serves a subscribable URL without a token */
  char *url = tu_fmt("%s/v1/towns/beta/plugins/ops/query/calendar", f->base);
  r = tu_http("GET", url, NULL, NULL, NULL, 0);
  free(url);
  expect(&r, 200, NULL, NULL);
  assert_string_equal(r.content_type, "text/calendar; charset=utf-8");
  tu_http_free(&r);
}

static void post_by_path_and_by_body_reach_the_same_op(void **state)
{
  served *f = *state;
  const char *params = "{\"from\":\"2026-12-01T00:00:00Z\",\"n\":5}";
  tu_http_resp r = req(f, "POST", "/v1/towns/alpha/plugins/ops/query/echo",
                       "application/json", params, strlen(params));
  expect(&r, 200, NULL, NULL);
  assert_int_equal(tu_int(r.json, "got.n"), 5);
  tu_http_free(&r);
  const char *body = "{\"op\":\"echo\",\"from\":0,\"n\":0}";
  r = req(f, "POST", "/v1/towns/alpha/plugins/ops/query", "application/json",
          body, strlen(body));
  expect(&r, 400, "bad_request", "n");
  tu_assert_contains(r.body, "below the minimum 1");
  tu_http_free(&r);
  r = req(f, "POST", "/v1/towns/alpha/plugins/ops/scenario/mark",
          "application/json", "{\"id\":\"m\"}", 10);
  expect(&r, 200, NULL, NULL);
  tu_http_free(&r);
  /* a 1.1 plugin, op in the path */
  r = req(f, "POST", "/v1/towns/alpha/plugins/minorone/query/hello", NULL,
          NULL, 0);
  expect(&r, 200, NULL, NULL);
  assert_string_equal(tu_str(r.json, "hello"), "world");
  tu_http_free(&r);
  r = req(f, "POST", "/v1/towns/alpha/plugins/ops/query/spin", NULL, NULL, 0);
  expect(&r, 504, "deadline_exceeded", NULL);
  tu_http_free(&r);
}

static void a_calendar_reply_is_sent_with_its_content_type(void **state)
{
  served *f = *state;
  tu_http_resp r =
      req(f, "GET", "/v1/towns/alpha/plugins/ops/query/calendar", NULL, NULL, 0);
  expect(&r, 200, NULL, NULL);
  assert_string_equal(r.content_type, "text/calendar; charset=utf-8");
  assert_true(r.len > 17 && !memcmp(r.body, "BEGIN:VCALENDAR\r\n", 17));
  tu_assert_contains(r.body, "SUMMARY:Wochenmarkt\r\n");
  tu_http_free(&r);
  r = req(f, "GET", "/v1/towns/alpha/plugins/ops/query/calendar?as=json", NULL,
          NULL, 0);
  expect(&r, 200, NULL, NULL);
  assert_string_equal(r.content_type, "application/json");
  tu_http_free(&r);
}

static void a_raw_csv_body_is_one_document_as_sent(void **state)
{
  served *f = *state;
  static const char csv[] = "zeit;wert\r\n01.12.2026 10:00;1,5\r\n";
  tu_http_resp r = req(f, "POST", "/v1/towns/alpha/plugins/ops/ingest",
                       "text/csv; charset=utf-8", csv, sizeof csv - 1);
  expect(&r, 200, NULL, NULL);
  assert_int_equal(tu_int(r.json, "accepted"), 1);
  tu_http_free(&r);
  r = req(f, "GET", "/v1/towns/alpha/plugins/ops/query/last", NULL, NULL, 0);
  expect(&r, 200, NULL, NULL);
  char hex[2 * sizeof csv + 1];
  for (size_t i = 0; i + 1 < sizeof csv; i++)
    snprintf(hex + 2 * i, 3, "%02x", (unsigned char)csv[i]);
  assert_string_equal(tu_str(r.json, "hex"), hex);
  tu_http_free(&r);
  r = req(f, "POST", "/v1/towns/alpha/plugins/ops/ingest", "text/calendar",
          "BEGIN:VCALENDAR", 15);
  expect(&r, 415, "unsupported_media_type", "Content-Type");
  tu_assert_contains(r.body, "text/csv");
  tu_http_free(&r);
}

static void ingest_results_list_refused_items_and_metrics_count_them(
    void **state)
{
  served *f = *state;
  /* one object alone is one document */
  const char *doc = "{\"items\":[{\"id\":\"h1\",\"value\":1},"
                    "{\"id\":\"h2\",\"value\":-5}]}";
  tu_http_resp r = req(f, "POST", "/v1/towns/alpha/plugins/ops/ingest",
                       "application/json", doc, strlen(doc));
  expect(&r, 200, NULL, NULL);
  assert_int_equal(tu_int(r.json, "accepted"), 1);
  assert_int_equal(tu_int(r.json, "items_refused"), 1);
  assert_string_equal(tu_str(r.json, "results[0].refused[0].item"), "h2");
  assert_string_equal(tu_str(r.json, "results[0].refused[0].code"),
                      "implausible");
  tu_http_free(&r);
  char *url = tu_fmt("%s/metrics", f->base);
  r = tu_http("GET", url, NULL, NULL, NULL, 0);
  free(url);
  tu_assert_contains(r.body,
                     "twinhost_ingest_items_refused_total{town=\"alpha\","
                     "plugin=\"ops\",code=\"implausible\"} 1\n");
  tu_http_free(&r);
}

static void the_served_openapi_lists_every_op_of_every_plugin(void **state)
{
  served *f = *state;
  char *url = tu_fmt("%s/v1/openapi.json", f->base);
  tu_http_resp doc = tu_http("GET", url, NULL, NULL, NULL, 0);
  free(url);
  expect(&doc, 200, NULL, NULL);
  json_t *paths = json_object_get(doc.json, "paths");
  assert_non_null(json_object_get(paths, "/v1/towns/{town}/plugins/{plugin}/"
                                         "query/{op}"));
  url = tu_fmt("%s/v1/plugins", f->base);
  tu_http_resp list = tu_http("GET", url, NULL, NULL, NULL, 0);
  free(url);
  size_t i, k, seen = 0;
  json_t *p, *op;
  json_array_foreach(json_object_get(list.json, "plugins"), i, p)
  {
    const char *name = json_string_value(json_object_get(p, "name"));
    char *one = tu_fmt("%s/v1/plugins/%s", f->base, name);
    tu_http_resp info = tu_http("GET", one, NULL, NULL, NULL, 0);
    free(one);
    json_array_foreach(json_object_get(info.json, "ops"), k, op)
    {
      const char *kind = json_string_value(json_object_get(op, "kind"));
      const char *on = json_string_value(json_object_get(op, "name"));
      char *path = tu_fmt("/v1/towns/{town}/plugins/%s/%s/%s", name, kind, on);
      json_t *item = json_object_get(paths, path);
      if (!item)
        fail_msg("%s is not in the served OpenAPI", path);
      json_t *post = json_object_get(item, "post");
      assert_non_null(post);
      assert_string_equal(tu_str(post, "summary"),
                          json_string_value(json_object_get(op, "summary")));
      assert_int_equal(json_object_get(item, "get") != NULL,
                       json_is_true(json_object_get(op, "safe")));
      if (json_object_get(op, "request_schema") &&
          !json_is_null(json_object_get(op, "request_schema")))
        assert_non_null(
            tu_get(post, "requestBody.content.application/json.schema"));
      free(path);
      seen++;
    }
    tu_http_free(&info);
  }
  assert_true(seen >= 7); /* the ops fixture alone declares 7 */
  tu_http_free(&list);
  tu_http_free(&doc);
}

/* ---- the CLI ------------------------------------------------------------ */

static void the_cli_prints_other_media_types_raw_and_checks_requests(
    void **state)
{
  served *f = *state;
  tu_run r = tu_twinhost(NULL, "--config", f->t->config, "query", "--town",
                         "alpha", "--plugin", "ops", "--op", "calendar", NULL);
  if (r.exit_code)
    fail_msg("query --op calendar: %s", r.err);
  assert_true(!strncmp(r.out, "BEGIN:VCALENDAR\r\n", 17));
  tu_run_free(&r);
  r = tu_twinhost(NULL, "--config", f->t->config, "query", "--town", "alpha",
                  "--plugin", "ops", "--op", "echo", "{\"n\":2}", NULL);
  assert_int_equal(r.exit_code, 1);
  tu_assert_contains(r.err, "from: required but missing");
  tu_run_free(&r);
  r = tu_twinhost(NULL, "--config", f->t->config, "plugins", "info", "ops",
                  NULL);
  json_t *j = json_loads(r.out, 0, NULL);
  assert_int_equal(json_array_size(json_object_get(j, "ops")), 7);
  json_t *echo = json_array_get(json_object_get(j, "ops"), 0);
  assert_non_null(json_object_get(echo, "request_schema"));
  assert_true(json_is_true(json_object_get(echo, "safe")));
  json_decref(j);
  tu_run_free(&r);
}

static void the_cli_ingests_a_csv_file_whole_and_lists_refused_items(
    void **state)
{
  served *f = *state;
  char *csv = tu_write_file(f->t->dir, "meter.csv", "a;b\n1;2\n");
  tu_run r = tu_twinhost(NULL, "--config", f->t->config, "ingest", "--town",
                         "alpha", "--plugin", "ops", csv, NULL);
  if (r.exit_code)
    fail_msg("ingest meter.csv: %s %s", r.out, r.err);
  json_t *j = json_loads(r.out, 0, NULL);
  assert_int_equal(tu_int(j, "documents"), 1);
  assert_int_equal(tu_int(j, "accepted"), 1);
  json_decref(j);
  tu_run_free(&r);
  /* a type the plugin does not take is refused before anything is sent */
  r = tu_twinhost(NULL, "--config", f->t->config, "ingest", "--town", "alpha",
                  "--plugin", "ops", "--content-type", "text/calendar", csv,
                  NULL);
  assert_int_equal(r.exit_code, 1);
  tu_assert_contains(r.err, "not text/calendar");
  tu_run_free(&r);
  char *items =
      tu_write_file(f->t->dir, "items.jsonl",
                    "{\"items\":[{\"id\":\"c1\",\"value\":1},{\"id\":\"c2\","
                    "\"value\":-1}]}\n");
  r = tu_twinhost(NULL, "--config", f->t->config, "ingest", "--town", "alpha",
                  "--plugin", "ops", items, NULL);
  if (r.exit_code)
    fail_msg("ingest items.jsonl: %s %s", r.out, r.err);
  j = json_loads(r.out, 0, NULL);
  assert_int_equal(tu_int(j, "items_refused"), 1);
  assert_string_equal(tu_str(j, "refused[0].items[0].item"), "c2");
  json_decref(j);
  tu_run_free(&r);
  free(csv);
  free(items);
}

/* ---- submit from other threads ------------------------------------------ */

typedef struct submitter {
  th_host *f;
  int n, ok;
} submitter;

static void *submit_main(void *arg)
{
  submitter *s = arg;
  core_instance *ci = ops(s->f);
  for (int i = 0; i < s->n; i++) {
    char doc[96];
    snprintf(doc, sizeof doc,
             "{\"items\":[{\"id\":\"t%p-%d\",\"value\":%d}]}",
             (void *)s, i, i);
    twin_outcome out;
    memset(&out, 0, sizeof out);
    out.struct_size = sizeof out;
    if (s->f->h->api.submit((twin_source *)ci, NULL, doc, strlen(doc), &out) ==
            TWIN_OK &&
        out.status == TWIN_OK)
      s->ok++;
  }
  return NULL;
}

static void submit_from_threads_of_a_plugin_waits_for_each_commit(
    void **state)
{
  th_host *f = *state;
  submitter a = {f, 50, 0}, b = {f, 50, 0};
  pthread_t ta, tb;
  assert_int_equal(pthread_create(&ta, NULL, submit_main, &a), 0);
  assert_int_equal(pthread_create(&tb, NULL, submit_main, &b), 0);
  pthread_join(ta, NULL);
  pthread_join(tb, NULL);
  assert_int_equal(a.ok, 50);
  assert_int_equal(b.ok, 50);
  /* a refused document comes back with its reason */
  twin_outcome out;
  memset(&out, 0, sizeof out);
  out.struct_size = sizeof out;
  const char *bad = "{\"items\":[{\"id\":\"x\",\"value\":-1}]}";
  assert_int_equal(
      f->h->api.submit((twin_source *)ops(f), NULL, bad, strlen(bad), &out),
      TWIN_OK);
  assert_int_equal(out.status, TWIN_ERR_REJECTED);
  assert_int_equal(out.items_refused, 1);
  tu_assert_contains(out.message, "every item was refused");
  /* a type the plugin does not take is refused at once */
  assert_int_equal(
      f->h->api.submit((twin_source *)ops(f), "text/calendar", "x", 1, &out),
      TWIN_ERR_INVALID);
}

static void submit_without_a_running_pipeline_is_unavailable(void **state)
{
  th_host *f = *state;
  core_pipeline_stop(f->p);
  f->p = NULL;
  twin_outcome out;
  memset(&out, 0, sizeof out);
  out.struct_size = sizeof out;
  assert_int_equal(f->h->api.submit((twin_source *)ops(f), NULL, "{}", 2, &out),
                   TWIN_ERR_UNAVAILABLE);
}

int main(void)
{
#define T(name) cmocka_unit_test_setup_teardown(name, setup_host, th_teardown)
  const struct CMUnitTest in_process[] = {
      T(a_request_failing_its_schema_never_reaches_the_plugin),
      T(a_checked_request_arrives_with_defaults_and_its_op),
      T(an_unknown_or_missing_op_is_refused_with_the_ops_listed),
      T(the_only_scenario_op_needs_no_name_and_changes_nothing),
      T(a_calendar_reply_keeps_its_media_type),
      T(a_query_is_stopped_at_its_deadline),
      T(the_town_call_gives_id_name_zone_and_location),
      T(a_csv_body_reaches_the_plugin_untouched),
      T(refused_items_are_listed_and_the_rest_lands),
      T(a_document_whose_items_all_fail_is_rejected_with_them),
      T(a_media_type_the_plugin_does_not_take_is_refused),
      T(plugins_of_abi_1_0_and_1_1_still_load_and_answer),
      T(submit_from_threads_of_a_plugin_waits_for_each_commit),
      T(submit_without_a_running_pipeline_is_unavailable),
  };
#undef T
  const struct CMUnitTest served[] = {
      cmocka_unit_test(a_safe_op_is_answered_on_get_from_typed_parameters),
      cmocka_unit_test(post_by_path_and_by_body_reach_the_same_op),
      cmocka_unit_test(a_calendar_reply_is_sent_with_its_content_type),
      cmocka_unit_test(a_raw_csv_body_is_one_document_as_sent),
      cmocka_unit_test(
          ingest_results_list_refused_items_and_metrics_count_them),
      cmocka_unit_test(the_served_openapi_lists_every_op_of_every_plugin),
      cmocka_unit_test(the_cli_prints_other_media_types_raw_and_checks_requests),
      cmocka_unit_test(the_cli_ingests_a_csv_file_whole_and_lists_refused_items),
  };
  int failed = 0;
  failed |= cmocka_run_group_tests_name("in process", in_process, NULL, NULL);
  failed |= cmocka_run_group_tests_name("served", served, setup_serve,
                                        teardown_serve);
  return failed;
}
