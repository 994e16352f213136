/*
 * test_jsonscan.c — the validating JSON scanner and the ingest body split
 * built on it: what is JSON passes whole, what is not is refused with the
 * place named, and a batch is split into exactly its documents.
 */
#include <stdlib.h>
#include <string.h>

#include "testutil.h"

#include "api.h"
#include "batch.h"
#include "jsonscan.h"

static int scans(const char *s, size_t *end)
{
  core_json_scan_err e;
  size_t i = core_json_ws(s, strlen(s), 0);
  return core_json_scan(s, strlen(s), i, end, &e) == 0;
}

static void good_values_scan_to_their_end(void **state)
{
  (void)state;
  static const char *const good[] = {
      "0", "-0.5e+10", "1E3", "\"\"", "\"a\\\"b\\\\c\\/\\b\\f\\n\\r\\t\"",
      "\"\\u00e9\xc3\xa9\"", "true", "false", "null", "[]", "{}",
      "[1, [2, {\"a\": [null]}], \"x\"]", " {\"k\" : 1 , \"l\":[ ]} "};
  for (size_t i = 0; i < sizeof good / sizeof good[0]; i++) {
    size_t end = 0;
    assert_true(scans(good[i], &end));
    /* the value ends where its text ends (trailing blanks aside) */
    size_t n = strlen(good[i]);
    while (n && good[i][n - 1] == ' ')
      n--;
    assert_int_equal(end, n);
  }
}

static void malformed_values_are_refused_where_they_break(void **state)
{
  (void)state;
  static const struct {
    const char *text;
    size_t at;
  } bad[] = {
      {"01", 1},        /* a leading zero ends the number: caller sees "1" */
      {"-", 1},         {"1.", 2},         {"1e", 2},
      {"\"abc", 4},     {"\"a\\x\"", 3},   {"\"\\u12g4\"", 2},
      {"[1,]", 3},      {"[1 2]", 3},      {"{\"a\" 1}", 5},
      {"{a:1}", 1},     {"tru", 0},        {"\"\x01\"", 1},
      {"\"\xff\"", 1},  {"[", 1},          {"", 0},
  };
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    core_json_scan_err e = {0, NULL};
    size_t end = 0;
    const char *s = bad[i].text;
    int rc = core_json_scan(s, strlen(s), 0, &end, &e);
    if (i == 0) { /* "01" scans "0" and stops: the caller refuses the rest */
      assert_int_equal(rc, 0);
      assert_int_equal(end, 1);
      continue;
    }
    assert_int_equal(rc, -1);
    assert_non_null(e.why);
    assert_int_equal(e.at, bad[i].at);
  }
}

static void deep_nesting_is_refused_not_overflowed(void **state)
{
  (void)state;
  size_t n = CORE_JSON_MAX_DEPTH + 10;
  char *s = malloc(2 * n + 1);
  memset(s, '[', n);
  memset(s + n, ']', n);
  s[2 * n] = 0;
  size_t end;
  core_json_scan_err e;
  assert_int_equal(core_json_scan(s, 2 * n, 0, &end, &e), -1);
  assert_string_equal(e.why, "nested too deeply");
  free(s);
}

static void a_batch_splits_into_its_documents(void **state)
{
  (void)state;
  const char *body = " [ {\"a\": \"x,]}\"} ,[1,2], 3 ,\"s\" ] \n";
  core_batch d;
  api_error e;
  assert_int_equal(core_batch_split(body, strlen(body), CORE_BATCH_JSON, 0, &d, &e), 0);
  assert_int_equal(d.n, 4);
  assert_memory_equal(d.start[0], "{\"a\": \"x,]}\"}", d.len[0]);
  assert_memory_equal(d.start[1], "[1,2]", d.len[1]);
  assert_memory_equal(d.start[2], "3", d.len[2]);
  assert_memory_equal(d.start[3], "\"s\"", d.len[3]);
  core_batch_free(&d);

  /* other members are passed over; of two "documents" the last counts */
  const char *obj = "{\"x\": [\"]\"], \"documents\": [0], \"y\": {},"
                    " \"documents\": [{\"b\": 1}, 2]}";
  assert_int_equal(core_batch_split(obj, strlen(obj), CORE_BATCH_JSON, 0, &d, &e), 0);
  assert_int_equal(d.n, 2);
  assert_memory_equal(d.start[0], "{\"b\": 1}", d.len[0]); /* as sent */
  core_batch_free(&d);

  const char *lines = "{\"a\":1}\r\n\n  [2]  \n\"three\"";
  assert_int_equal(core_batch_split(lines, strlen(lines), CORE_BATCH_LINES, 0, &d, &e), 0);
  assert_int_equal(d.n, 3);
  assert_memory_equal(d.start[1], "[2]", d.len[1]);
  assert_memory_equal(d.start[2], "\"three\"", d.len[2]);
  core_batch_free(&d);
}

/* A sensor gateway posts one reading as one object: that is one document
 * (an object with a "documents" array is a batch). */
static void a_single_object_is_one_document(void **state)
{
  (void)state;
  core_batch d;
  api_error e;
  const char *one = " {\"docs\": [1, 2], \"x\": {\"documents\": [3]}} ";
  assert_int_equal(core_batch_split(one, strlen(one), CORE_BATCH_JSON, 0, &d, &e), 0);
  assert_int_equal(d.n, 1);
  assert_int_equal(d.len[0], strlen(one) - 2);
  assert_memory_equal(d.start[0], one + 1, d.len[0]);
  core_batch_free(&d);
}

static void a_bad_batch_is_refused_whole_naming_the_place(void **state)
{
  (void)state;
  core_batch d;
  api_error e;
  const char *body = "[{\"a\":1},\n {\"b\": tru}]";
  assert_int_equal(core_batch_split(body, strlen(body), CORE_BATCH_JSON, 0, &d, &e), 400);
  assert_string_equal(e.code, "bad_json");
  assert_non_null(strstr(e.message, "line 2, column 8"));
  assert_int_equal(d.n, 0);

  const char *lines = "{\"a\":1}\n{\"a\":2} {\"a\":3}\n";
  assert_int_equal(core_batch_split(lines, strlen(lines), CORE_BATCH_LINES, 0, &d, &e), 400);
  assert_non_null(strstr(e.message, "line 2"));
  assert_non_null(strstr(e.message, "one document per line"));

  static const char *const refused[] = {
      "",  "  ", "[]", "[1] x", "[1", "\"str\"", "{\"docs\": [] } x", "7",
      "{\"documents\": {}}", "{\"documents\": []}", "{\"documents\": [1,]}",
      "{\"documents\": [1]} x", "{\"documents\": [1], \"documents\": 2}"};
  for (size_t i = 0; i < sizeof refused / sizeof refused[0]; i++) {
    int st = core_batch_split(refused[i], strlen(refused[i]), CORE_BATCH_JSON, 0, &d, &e);
    assert_int_equal(st, 400);
    assert_true(e.message[0]);
  }
}

int main(void)
{
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(good_values_scan_to_their_end),
      cmocka_unit_test(malformed_values_are_refused_where_they_break),
      cmocka_unit_test(deep_nesting_is_refused_not_overflowed),
      cmocka_unit_test(a_batch_splits_into_its_documents),
      cmocka_unit_test(a_single_object_is_one_document),
      cmocka_unit_test(a_bad_batch_is_refused_whole_naming_the_place),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
