/*
 * test_util.c — the small helpers every core file leans on: time parsing and
 * formatting, names, paths, UTF-8 repair of messages, "did you mean".
 */
#include "testutil.h"

#include <stdlib.h>
#include <string.h>

#include "util.h"

static void rfc3339_times_parse_to_utc_milliseconds(void **state)
{
  (void)state;
  twin_time t;
  assert_int_equal(core_parse_time("1970-01-01T00:00:00Z", &t), TWIN_OK);
  assert_true(t == 0);
  assert_int_equal(core_parse_time("2026-11-27T10:00:00.250Z", &t), TWIN_OK);
  assert_true(t == 1795773600250LL);
  /* The same instant written with an offset. */
  twin_time u;
  assert_int_equal(core_parse_time("2026-11-27T11:00:00.25+01:00", &u),
                   TWIN_OK);
  assert_true(u == t);
  assert_int_equal(core_parse_time("2028-02-29T00:00:00Z", &t), TWIN_OK);
  assert_int_equal(core_parse_time("1969-12-31T23:59:59Z", &t), TWIN_OK);
  assert_true(t == -1000);
}

static void malformed_times_are_refused(void **state)
{
  (void)state;
  const char *bad[] = {"",
                       "2026-11-27",
                       "2026-11-27T10:00:00",
                       "2026-13-01T00:00:00Z",
                       "2026-02-30T00:00:00Z",
                       "2026-02-29T00:00:00Z", /* not a leap year */
                       "1900-02-29T00:00:00Z", /* century, not a leap year */
                       "2026-11-27T24:00:00Z",
                       "2026-11-27T10:00:00Zjunk",
                       "2026-11-27T10:00:00+25:00",
                       "2026-11-27T10:00:00.Z",
                       "twenty past ten"};
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    twin_time t;
    if (core_parse_time(bad[i], &t) != TWIN_ERR_PARSE)
      fail_msg("'%s' was accepted", bad[i]);
  }
}

static void times_format_as_rfc3339_utc(void **state)
{
  (void)state;
  char buf[40];
  core_format_time(1795773600250LL, buf, sizeof buf);
  assert_string_equal(buf, "2026-11-27T10:00:00.250Z");
  core_format_time(-1, buf, sizeof buf);
  assert_string_equal(buf, "1969-12-31T23:59:59.999Z");
}

static void ids_and_names_follow_their_rules(void **state)
{
  (void)state;
  assert_true(core_valid_id("deggendorf"));
  assert_true(core_valid_id("bad-abbach_2"));
  assert_false(core_valid_id(""));
  assert_false(core_valid_id("Deggendorf"));
  assert_false(core_valid_id("-x"));
  assert_false(core_valid_id("a/b"));
  assert_true(core_valid_id("a234567890123456789012345678901234567890"));
  assert_false(core_valid_id("a2345678901234567890123456789012345678901"));
  assert_true(core_valid_name("Parkhaus Stadthallen (P3)"));
  assert_true(core_valid_name("Straße"));
  assert_false(core_valid_name(""));
  assert_false(core_valid_name("tab\there"));
}

static void paths_join_relative_to_their_folder(void **state)
{
  (void)state;
  char *p = core_path_join("scripts", "../data");
  assert_string_equal(p, "scripts/../data");
  free(p);
  p = core_path_join("scripts", "/var/lib/twin");
  assert_string_equal(p, "/var/lib/twin");
  free(p);
  p = core_path_dir("scripts/demo.json");
  assert_string_equal(p, "scripts");
  free(p);
  p = core_path_dir("demo.json");
  assert_string_equal(p, ".");
  free(p);
}

static void utf8_repair_keeps_good_text_and_marks_bad_bytes(void **state)
{
  (void)state;
  char good[] = "Straße – Überflutung 🌊";
  core_utf8_fix(good);
  assert_string_equal(good, "Straße – Überflutung 🌊");
  char bad[] = "a\xff"
               "b\xc0\xaf"
               "c";
  core_utf8_fix(bad);
  assert_string_equal(bad, "a?b??c");
  char surrogate[] = "x\xed\xa0\x80"
                     "y";
  core_utf8_fix(surrogate);
  assert_string_equal(surrogate, "x???y");
  /* A character cut by a truncating snprintf is dropped, not mangled. */
  char cut[] = "Stra\xc3";
  core_utf8_fix(cut);
  assert_string_equal(cut, "Stra");
  char cut3[] = "ab\xe2\x80";
  core_utf8_fix(cut3);
  assert_string_equal(cut3, "ab");
}

static void error_messages_are_always_valid_utf8(void **state)
{
  (void)state;
  core_err e;
  char longtext[2000];
  memset(longtext, 'a', sizeof longtext);
  /* Put a two-byte character across the 1024-byte cut. */
  longtext[1022] = (char)0xc3;
  longtext[1023] = (char)0x9f;
  longtext[sizeof longtext - 1] = 0;
  core_err_set(&e, TWIN_ERR_INVALID, "%s", longtext);
  core_utf8_fix(e.msg); /* idempotent on fixed text */
  assert_true(strlen(e.msg) < sizeof e.msg);
  assert_int_not_equal((unsigned char)e.msg[strlen(e.msg) - 1], 0xc3);
}

static void suggestions_name_a_close_key_only(void **state)
{
  (void)state;
  const char *known[] = {"id", "name", "timezone", "location"};
  char hint[128], list[128];
  core_suggest("timzone", known, 4, hint, sizeof hint);
  assert_string_equal(hint, "; did you mean \"timezone\"?");
  core_suggest("colour", known, 4, hint, sizeof hint);
  assert_string_equal(hint, "");
  core_join_names(known, 4, list, sizeof list);
  assert_string_equal(list, "id, name, timezone, location");
}

static void status_names_and_messages_come_from_one_table(void **state)
{
  (void)state;
  assert_string_equal(core_status_name(TWIN_ERR_READ_ONLY), "ERR_READ_ONLY");
  assert_string_equal(core_status_message(TWIN_ERR_NOT_FOUND), "not found");
  assert_string_equal(core_status_name(-999), "unknown status");
}

int main(void)
{
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(rfc3339_times_parse_to_utc_milliseconds),
      cmocka_unit_test(malformed_times_are_refused),
      cmocka_unit_test(times_format_as_rfc3339_utc),
      cmocka_unit_test(ids_and_names_follow_their_rules),
      cmocka_unit_test(paths_join_relative_to_their_folder),
      cmocka_unit_test(utf8_repair_keeps_good_text_and_marks_bad_bytes),
      cmocka_unit_test(error_messages_are_always_valid_utf8),
      cmocka_unit_test(suggestions_name_a_close_key_only),
      cmocka_unit_test(status_names_and_messages_come_from_one_table),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
