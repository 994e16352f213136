/*
 * test_media.c — media types: the lists plugins declare and matching a
 * Content-Type against them (core/media.c). The equivalent forms are
 * RFC 9110 section 8.3.1's examples of one media type written four ways.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "media.h"

static int valid(const char *s)
{
  return core_media_valid(s, strlen(s));
}

static void types_are_type_slash_subtype_tokens(void **state)
{
  (void)state;
  assert_true(valid("text/csv"));
  assert_true(valid("application/geo+json"));
  assert_true(valid("application/vnd.twinhost.lot-v1+json"));
  const char *bad[] = {"", "text", "text/", "/csv", "text/*", "*/*",
                       "text/csv;charset=utf-8", "text /csv", "text/c sv",
                       "text/csv/x", "té/csv"};
  for (size_t i = 0; i < sizeof bad / sizeof *bad; i++)
    if (valid(bad[i]))
      fail_msg("\"%s\" taken as a media type", bad[i]);
  /* n bounds the type: a longer string is read only to n */
  assert_true(core_media_valid("text/csvjunk", 8));
  assert_false(core_media_valid("text/csv", 5));
}

static void types_fit_the_hosts_buffers(void **state)
{
  (void)state;
  char t[CORE_MEDIA_MAX + 8] = "a/";
  memset(t + 2, 'b', CORE_MEDIA_MAX - 3); /* CORE_MEDIA_MAX - 1 in all */
  t[CORE_MEDIA_MAX - 1] = 0;
  assert_true(valid(t));
  t[CORE_MEDIA_MAX - 1] = 'b'; /* one longer: it would not fit */
  t[CORE_MEDIA_MAX] = 0;
  assert_false(valid(t));
}

static void lists_name_the_first_bad_entry(void **state)
{
  (void)state;
  size_t bad = 0;
  assert_int_equal(core_media_list_check("text/csv", &bad), 0);
  assert_int_equal(core_media_list_check("text/csv, application/json", &bad),
                   0);
  assert_int_equal(core_media_list_check(" text/csv ,\tapplication/json ",
                                         &bad),
                   0);
  struct {
    const char *list;
    size_t bad;
  } cases[] = {{"", 1},
               {"   ", 1},
               {"text", 1},
               {"text/csv, nonsense", 2},
               {"text/csv,,application/json", 2},
               {"text/csv,", 2},
               {"text/csv, ", 2},
               {"text/csv, application/json,", 3}};
  for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
    bad = 0;
    if (core_media_list_check(cases[i].list, &bad) != -1)
      fail_msg("\"%s\" passed", cases[i].list);
    if (bad != cases[i].bad)
      fail_msg("\"%s\": entry %zu named, not %zu", cases[i].list, bad,
               cases[i].bad);
  }
  assert_int_equal(core_media_list_check(NULL, &bad), -1);
}

static void equivalent_forms_match(void **state)
{
  (void)state;
  /* RFC 9110 8.3.1: all four are the same media type */
  const char *same[] = {"text/html;charset=utf-8",
                        "Text/HTML;Charset=\"utf-8\"",
                        "text/html; charset=\"utf-8\"",
                        "text/html;charset=UTF-8"};
  for (size_t i = 0; i < 4; i++)
    if (!core_media_in_list("text/csv, text/html", same[i]))
      fail_msg("\"%s\" is not text/html", same[i]);
  assert_false(core_media_in_list("text/csv", "text/csvx"));
  assert_false(core_media_in_list("text/csv", "text/cs"));
  assert_false(core_media_in_list("text/csv", ""));
  assert_false(core_media_in_list("text/csv", NULL));
  assert_false(core_media_in_list(NULL, "text/csv"));
}

static void json_is_json_and_its_suffix(void **state)
{
  (void)state;
  assert_true(core_media_is_json("application/json"));
  assert_true(core_media_is_json("Application/JSON; charset=utf-8"));
  assert_true(core_media_is_json("application/geo+json"));
  assert_true(core_media_is_json("application/ld+json"));
  assert_false(core_media_is_json("application/+json"));
  assert_false(core_media_is_json("text/json+x"));
  assert_false(core_media_is_json("text/plain"));
  assert_false(core_media_is_json("application/jsonx"));
  assert_false(core_media_is_json(NULL));
}

static void bare_types_are_lowercase_and_whole(void **state)
{
  (void)state;
  char buf[CORE_MEDIA_MAX];
  core_media_bare("  Text/CSV; charset=utf-8", buf, sizeof buf);
  assert_string_equal(buf, "text/csv");
  core_media_bare(NULL, buf, sizeof buf);
  assert_string_equal(buf, "");
  /* a type cut short could match another one: it is no type at all */
  char small[9];
  core_media_bare("text/csvx", small, sizeof small);
  assert_string_equal(small, "");
  core_media_bare("text/csv", small, sizeof small);
  assert_string_equal(small, "text/csv");
  char json[CORE_MEDIA_MAX + 32] = "application/";
  memset(json + 12, 'a', CORE_MEDIA_MAX - 12 - 6);
  strcpy(json + CORE_MEDIA_MAX - 6, "+jsonjunk"); /* "+json" at the cut */
  assert_false(core_media_is_json(json));
  char one = 'x';
  core_media_bare("text/csv", &one, 0); /* size 0 writes nothing */
  assert_int_equal(one, 'x');
}

int main(void)
{
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(types_are_type_slash_subtype_tokens),
      cmocka_unit_test(types_fit_the_hosts_buffers),
      cmocka_unit_test(lists_name_the_first_bad_entry),
      cmocka_unit_test(equivalent_forms_match),
      cmocka_unit_test(json_is_json_and_its_suffix),
      cmocka_unit_test(bare_types_are_lowercase_and_whole),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
