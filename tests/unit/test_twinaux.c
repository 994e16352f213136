/*
 * test_twinaux.c — the helper library of twin/twinaux.h, read as its
 * specification: RFC 3339 times against the JSON Schema Test Suite and RFC
 * 3339's own examples, formatting against glibc, the calendar, distances
 * against published values, the JSON writer checked by jansson, the member
 * scanner, op dispatch, and the error, log and refusal wrappers against a
 * fake host table (1.2, and 1.1 where the newer calls are missing).
 */
#include "testutil.h"

#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <jansson.h>

#include "twin/twinaux.h"

#define N_OF(a) (sizeof(a) / sizeof((a)[0]))
#define MS_PER_DAY INT64_C(86400000)
/* 0000-01-01T00:00:00Z and 9999-12-31T23:59:59.999Z. */
#define T_MIN INT64_C(-62167219200000)
#define T_MAX INT64_C(253402300799999)

/* ---- a fake host --------------------------------------------------------- */

/* What the fake host table was called with; reset before each test. */
static struct {
  int set_error_calls, fail_calls, log_calls, refuse_calls, respond_calls;
  twin_ctx *ctx;
  char message[2048];
  char code[64], field[128], item[128];
  int level;
  char reply[4096];
  size_t reply_len;
  int respond_rc; /* what respond returns */
} rec;

static int dummy_ctx;
#define CTX ((twin_ctx *)&dummy_ctx)

static void keep(char *dst, size_t size, const char *s)
{
  snprintf(dst, size, "%s", s ? s : "(null)");
}

static int fake_set_error(twin_ctx *ctx, const char *message)
{
  rec.set_error_calls++;
  rec.ctx = ctx;
  keep(rec.message, sizeof rec.message, message);
  return TWIN_OK;
}

static int fake_fail(twin_ctx *ctx, const char *code, const char *field,
                     const char *message)
{
  rec.fail_calls++;
  rec.ctx = ctx;
  keep(rec.code, sizeof rec.code, code);
  keep(rec.field, sizeof rec.field, field);
  keep(rec.message, sizeof rec.message, message);
  return TWIN_OK;
}

static int fake_log(twin_ctx *ctx, twin_level level, const char *message)
{
  rec.log_calls++;
  rec.ctx = ctx;
  rec.level = (int)level;
  keep(rec.message, sizeof rec.message, message);
  return TWIN_OK;
}

static int fake_refuse_item(twin_ctx *ctx, const char *item, const char *field,
                            const char *code, const char *reason)
{
  rec.refuse_calls++;
  rec.ctx = ctx;
  keep(rec.item, sizeof rec.item, item);
  keep(rec.field, sizeof rec.field, field);
  keep(rec.code, sizeof rec.code, code);
  keep(rec.message, sizeof rec.message, reason);
  return TWIN_OK;
}

static int fake_respond(twin_ctx *ctx, const char *json, size_t len)
{
  rec.respond_calls++;
  rec.ctx = ctx;
  if (rec.respond_rc != TWIN_OK)
    return rec.respond_rc;
  assert_true(len < sizeof rec.reply);
  memcpy(rec.reply, json, len);
  rec.reply[len] = '\0';
  rec.reply_len = len;
  return TWIN_OK;
}

/* A host table of struct_size bytes. Every call is filled in, also those
 * beyond struct_size, so that a test sees the library look at the size and
 * not only at NULL. */
static twin_host_api fake_host(size_t struct_size)
{
  twin_host_api api;
  memset(&api, 0, sizeof api);
  api.struct_size = (uint32_t)struct_size;
  api.abi_major = 1;
  api.abi_minor = struct_size >= sizeof(twin_host_api) ? 2 : 1;
  api.set_error = fake_set_error;
  api.log = fake_log;
  api.respond = fake_respond;
  api.fail = fake_fail;
  api.refuse_item = fake_refuse_item;
  return api;
}

/* A host of ABI 1.1: its table ends where 1.2's town begins. */
#define HOST_1_1 offsetof(twin_host_api, town)

static int reset_record(void **state)
{
  (void)state;
  memset(&rec, 0, sizeof rec);
  return 0;
}

/* ---- helpers ------------------------------------------------------------- */

static int parse(const char *s, int flags, twin_time *out)
{
  return twinaux_time_parse(s, strlen(s), flags, out);
}

static twin_time parsed(const char *s, int flags)
{
  twin_time t = 0;
  assert_int_equal(parse(s, flags, &t), TWIN_OK);
  return t;
}

/* Whether s is well-formed UTF-8, checked apart from the library's own
 * check (which is what is tested). */
static int is_utf8(const unsigned char *s, size_t n)
{
  for (size_t i = 0; i < n;) {
    unsigned c = s[i], len = c < 0x80   ? 1
                             : c < 0xC2 ? 0
                             : c < 0xE0 ? 2
                             : c < 0xF0 ? 3
                             : c < 0xF5 ? 4
                                        : 0;
    if (len == 0 || i + len > n)
      return 0;
    unsigned cp = len == 1 ? c : c & (0x7F >> len);
    for (unsigned k = 1; k < len; k++) {
      if ((s[i + k] & 0xC0) != 0x80)
        return 0;
      cp = cp << 6 | (s[i + k] & 0x3F);
    }
    static const unsigned min[5] = {0, 0, 0x80, 0x800, 0x10000};
    if (cp < min[len] || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF))
      return 0;
    i += len;
  }
  return 1;
}

/* The writer's text, which must be valid JSON by jansson's reading: the
 * decoded value is returned (caller decrefs). */
static json_t *jansson_reads(const twinaux_json *j)
{
  size_t len;
  const char *text = twinaux_json_text(j, &len);
  assert_int_equal(strlen(text), len);
  json_error_t err;
  json_t *v = json_loadb(text, len, JSON_DECODE_ANY | JSON_ALLOW_NUL, &err);
  if (!v)
    fail_msg("jansson refuses '%s': %s", text, err.text);
  return v;
}

static void assert_text(const twinaux_json *j, const char *want)
{
  assert_int_equal(twinaux_json_status(j), TWIN_OK);
  assert_string_equal(twinaux_json_text(j, NULL), want);
  json_decref(jansson_reads(j));
}

/* A deterministic pseudo-random sequence (xorshift64*), per test. */
static uint64_t next_random(uint64_t *s)
{
  *s ^= *s >> 12;
  *s ^= *s << 25;
  *s ^= *s >> 27;
  return *s * UINT64_C(2685821657736338717);
}

/* ---- statuses ------------------------------------------------------------ */

static void status_names_and_messages_come_from_the_status_list(void **state)
{
  (void)state;
  assert_string_equal(twinaux_status_name(TWIN_OK), "OK");
  assert_string_equal(twinaux_status_name(TWIN_ERR_NOT_FOUND), "ERR_NOT_FOUND");
  assert_string_equal(twinaux_status_name(TWIN_ERR_DEADLINE), "ERR_DEADLINE");
  assert_string_equal(twinaux_status_message(TWIN_ERR_NOT_FOUND), "not found");
  assert_string_equal(twinaux_status_message(TWIN_STOP), "stopped by callback");
}

static void an_unknown_status_is_named_unknown(void **state)
{
  (void)state;
  assert_string_equal(twinaux_status_name(-1000), "unknown status");
  assert_string_equal(twinaux_status_message(42), "unknown status");
}

/* ---- time parsing -------------------------------------------------------- */

/*
 * Every string case of the JSON Schema Test Suite's date-time format tests,
 * github.com/json-schema-org/JSON-Schema-Test-Suite,
 * tests/draft2020-12/optional/format/date-time.json at commit
 * 44401e0c046704b476ec9d2e2fccdaee618f259d (the non-string cases, "all
 * string formats ignore ...", have no counterpart here). `suite` is the
 * suite's verdict, `ours` ours; they differ only where our documented rules
 * do (marked). `ms` is the instant of the valid ones, computed with
 * Python's datetime.
 */
static const struct {
  const char *text;
  int suite, ours;
  int64_t ms;
} schema_suite[] = {
    {"1963-06-19T08:30:06.283185Z", 1, 1, INT64_C(-206292593717)},
    {"1963-06-19T08:30:06Z", 1, 1, INT64_C(-206292594000)},
    {"1937-01-01T12:00:27.87+00:20", 1, 1, INT64_C(-1041337172130)},
    {"1990-12-31T15:59:50.123-08:00", 1, 1, INT64_C(662687990123)},
    /* Differs: the suite takes leap seconds; twin_time has none, so :60
     * is refused (twinaux.h). */
    {"1998-12-31T23:59:60Z", 1, 0, 0},
    {"1998-12-31T15:59:60.123-08:00", 1, 0, 0}, /* differs: leap second */
    {"1998-12-31T23:59:61Z", 0, 0, 0},
    {"1998-12-31T23:58:60Z", 0, 0, 0},
    {"1998-12-31T22:59:60Z", 0, 0, 0},
    {"1990-02-31T15:59:59.123-08:00", 0, 0, 0},
    {"1990-12-31T15:59:59-24:00", 0, 0, 0},
    {"1963-06-19T08:30:06.28123+01:00Z", 0, 0, 0},
    {"1990-12-31T24:00:00Z", 0, 0, 0},
    {"1990-12-31T15:60:00Z", 0, 0, 0},
    {"1990-12-31T10:00:00+10:60", 0, 0, 0},
    {"06/19/1963 08:30:06 PST", 0, 0, 0},
    {"1963-06-19t08:30:06.283185z", 1, 1, INT64_C(-206292593717)},
    {"2013-350T01:01:01", 0, 0, 0},
    {"1963-6-19T08:30:06.283185Z", 0, 0, 0},
    {"1963-06-1T08:30:06.283185Z", 0, 0, 0},
    {"1963-06-1\xe0\xa7\xaaT00:00:00Z", 0, 0, 0}, /* a Bengali 4 */
    {"1963-06-11T0\xe0\xa7\xaa:00:00Z", 0, 0, 0},
    {"+11963-06-19T08:30:06.283185Z", 0, 0, 0},
    {"1985-04-12T23:20:50+01", 0, 0, 0},
    {"2016-12-31T24:59:60+01:00", 0, 0, 0},
    {"1985-04-12T00:59:59.999999999999999Z", 1, 1, INT64_C(482115599999)},
    {"1985-04-12T23:20:50Z\n", 0, 0, 0},
};

static void date_times_get_the_json_schema_suite_verdicts(void **state)
{
  (void)state;
  for (size_t i = 0; i < N_OF(schema_suite); i++) {
    twin_time t = 0;
    int rc = parse(schema_suite[i].text, 0, &t);
    if (schema_suite[i].ours) {
      if (rc != TWIN_OK)
        fail_msg("'%s' should parse", schema_suite[i].text);
      assert_int_equal(t, schema_suite[i].ms);
    } else if (rc != TWIN_ERR_PARSE) {
      fail_msg("'%s' should be refused", schema_suite[i].text);
    }
  }
}

/* RFC 3339, section 5.8 "Examples". The two leap second examples are
 * refused by our rule; the rest give the instants the RFC describes. */
static void rfc3339_examples_parse_except_the_leap_seconds(void **state)
{
  (void)state;
  assert_int_equal(parsed("1985-04-12T23:20:50.52Z", 0), INT64_C(482196050520));
  /* "16:39:57 on 19 December 1996, 8 hours behind UTC" */
  assert_int_equal(parsed("1996-12-19T16:39:57-08:00", 0),
                   parsed("1996-12-20T00:39:57Z", 0));
  assert_int_equal(parsed("1996-12-19T16:39:57-08:00", 0),
                   INT64_C(851042397000));
  twin_time t;
  assert_int_equal(parse("1990-12-31T23:59:60Z", 0, &t), TWIN_ERR_PARSE);
  assert_int_equal(parse("1990-12-31T15:59:60-08:00", 0, &t), TWIN_ERR_PARSE);
  /* "the same instant as ... 1937-01-01T12:00:27.87+00:20" is Netherlands
   * time: 20 minutes ahead of UTC. */
  assert_int_equal(parsed("1937-01-01T12:00:27.87+00:20", 0),
                   parsed("1937-01-01T11:40:27.870Z", 0));
}

static void february_29_exists_only_in_leap_years(void **state)
{
  (void)state;
  twin_time t;
  assert_int_equal(parse("2026-02-29T00:00:00Z", 0, &t), TWIN_ERR_PARSE);
  assert_int_equal(parse("1900-02-29T00:00:00Z", 0, &t), TWIN_ERR_PARSE);
  assert_int_equal(parsed("2028-02-29T00:00:00Z", 0), INT64_C(1835395200000));
  assert_int_equal(parsed("2000-02-29T12:00:00Z", 0), INT64_C(951825600000));
  assert_int_equal(parse("2026-04-31T00:00:00Z", 0, &t), TWIN_ERR_PARSE);
  assert_int_equal(parse("2026-12-32T00:00:00Z", 0, &t), TWIN_ERR_PARSE);
}

static void a_fraction_is_kept_to_milliseconds_rounding_down(void **state)
{
  (void)state;
  twin_time base = parsed("2026-11-27T10:00:00Z", 0);
  assert_int_equal(parsed("2026-11-27T10:00:00.5Z", 0), base + 500);
  assert_int_equal(parsed("2026-11-27T10:00:00.05Z", 0), base + 50);
  assert_int_equal(parsed("2026-11-27T10:00:00.123456789Z", 0), base + 123);
  assert_int_equal(parsed("2026-11-27T10:00:00.999999Z", 0), base + 999);
  assert_int_equal(parsed("2026-11-27T10:00:00.000Z", 0), base);
  twin_time t;
  assert_int_equal(parse("2026-11-27T10:00:00.Z", 0, &t), TWIN_ERR_PARSE);
  /* RFC 3339 has only the full stop; ISO 8601's comma is refused. */
  assert_int_equal(parse("2026-11-27T10:00:00,5Z", 0, &t), TWIN_ERR_PARSE);
}

static void an_offset_is_subtracted_to_give_utc(void **state)
{
  (void)state;
  twin_time utc = parsed("2026-11-27T10:00:00Z", 0);
  /* 11:00 at +01:00 is 10:00 UTC: a later wall clock, the same instant */
  assert_int_equal(parsed("2026-11-27T11:00:00+01:00", 0), utc);
  assert_int_equal(parsed("2026-11-27T10:00:00+01:00", 0), utc - 3600000);
  assert_int_equal(parsed("2026-11-27T10:00:00-05:30", 0),
                   utc + (5 * 60 + 30) * 60000);
  assert_int_equal(parsed("2026-11-27T10:00:00+23:59", 0),
                   utc - (23 * 60 + 59) * 60000);
  assert_int_equal(parsed("2026-11-27T10:00:00-00:00", 0), utc);
  twin_time t;
  assert_int_equal(parse("2026-11-27T10:00:00+24:00", 0, &t), TWIN_ERR_PARSE);
  assert_int_equal(parse("2026-11-27T10:00:00+0100", 0, &t), TWIN_ERR_PARSE);
  assert_int_equal(parse("2026-11-27T10:00:00+1:00", 0, &t), TWIN_ERR_PARSE);
  assert_int_equal(parse("2026-11-27T10:00:00+01:", 0, &t), TWIN_ERR_PARSE);
}

static void a_time_without_zone_is_utc_only_with_zone_optional(void **state)
{
  (void)state;
  twin_time t = 7;
  assert_int_equal(parse("2026-11-27T10:00:00", 0, &t), TWIN_ERR_PARSE);
  assert_int_equal(t, 7); /* a failure leaves *out alone */
  assert_int_equal(parsed("2026-11-27T10:00:00", TWINAUX_TIME_ZONE_OPTIONAL),
                   parsed("2026-11-27T10:00:00Z", 0));
  assert_int_equal(parsed("2026-11-27T10:00:00.25", TWINAUX_TIME_ZONE_OPTIONAL),
                   parsed("2026-11-27T10:00:00.250Z", 0));
  /* a zone, when there is one, still counts */
  assert_int_equal(
      parsed("2026-11-27T11:00:00+01:00", TWINAUX_TIME_ZONE_OPTIONAL),
      parsed("2026-11-27T10:00:00Z", 0));
  /* a date alone is still not an instant */
  assert_int_equal(parse("2026-11-27", TWINAUX_TIME_ZONE_OPTIONAL, &t),
                   TWIN_ERR_PARSE);
  assert_int_equal(parse("2026-11-27T", TWINAUX_TIME_ZONE_OPTIONAL, &t),
                   TWIN_ERR_PARSE);
}

static void a_space_stands_for_t_only_with_the_space_flag(void **state)
{
  (void)state;
  twin_time t;
  assert_int_equal(parse("2026-11-27 10:00:00Z", 0, &t), TWIN_ERR_PARSE);
  assert_int_equal(parsed("2026-11-27 10:00:00Z", TWINAUX_TIME_SPACE),
                   parsed("2026-11-27T10:00:00Z", 0));
  assert_int_equal(parsed("2026-11-27 10:00:00",
                          TWINAUX_TIME_SPACE | TWINAUX_TIME_ZONE_OPTIONAL),
                   parsed("2026-11-27T10:00:00Z", 0));
  /* one space, in that place only */
  assert_int_equal(parse("2026-11-27  10:00:00Z", TWINAUX_TIME_SPACE, &t),
                   TWIN_ERR_PARSE);
  assert_int_equal(parse("2026-11-27T10:00:00 Z", TWINAUX_TIME_SPACE, &t),
                   TWIN_ERR_PARSE);
}

static void
the_length_bounds_the_text_and_a_nul_inside_it_is_refused(void **state)
{
  (void)state;
  static const char text[] = "2026-11-27T10:00:00Z and more";
  twin_time t;
  assert_int_equal(twinaux_time_parse(text, 20, 0, &t), TWIN_OK);
  assert_int_equal(t, parsed("2026-11-27T10:00:00Z", 0));
  static const char nul[] = "2026-11-27T10:00:00\0Z";
  assert_int_equal(twinaux_time_parse(nul, sizeof nul - 1, 0, &t),
                   TWIN_ERR_PARSE);
  static const char nul2[] = "2026-11-27T10:0\0:00Z";
  assert_int_equal(twinaux_time_parse(nul2, sizeof nul2 - 1, 0, &t),
                   TWIN_ERR_PARSE);
  /* every proper prefix is refused, and nothing beyond len is read */
  for (size_t n = 0; n < 20; n++)
    assert_int_equal(twinaux_time_parse(text, n, 0, &t), TWIN_ERR_PARSE);
}

static void trailing_garbage_is_refused(void **state)
{
  (void)state;
  static const char *const bad[] = {
      "2026-11-27T10:00:00Zx",        "2026-11-27T10:00:00Z ",
      "2026-11-27T10:00:00+01:00:00", "2026-11-27T10:00:00.5Zz",
      " 2026-11-27T10:00:00Z",        "2026-11-27T10:00:00+01:00Z"};
  for (size_t i = 0; i < N_OF(bad); i++) {
    twin_time t;
    if (parse(bad[i], TWINAUX_TIME_ZONE_OPTIONAL | TWINAUX_TIME_SPACE, &t) !=
        TWIN_ERR_PARSE)
      fail_msg("'%s' should be refused", bad[i]);
  }
}

static void fields_out_of_range_or_malformed_are_refused(void **state)
{
  (void)state;
  static const char *const bad[] = {"2026-00-10T10:00:00Z",
                                    "2026-13-10T10:00:00Z",
                                    "2026-01-00T10:00:00Z",
                                    "2026-01-10T10:00:60Z",
                                    "2026-01-10T10:60:00Z",
                                    "2026-01-10T24:00:00Z",
                                    "2026-01-10T10:00Z",
                                    "2026-01-10X10:00:00Z",
                                    "2026/01/10T10:00:00Z",
                                    "-2026-01-10T10:00:00Z",
                                    "20261-01-10T10:00:00Z",
                                    "2026-01-10T1:00:00Z",
                                    "2026-01-10T10:00:00 ",
                                    "",
                                    "Z",
                                    "2026-01-10T10:00:00+",
                                    "abcd"};
  for (size_t i = 0; i < N_OF(bad); i++) {
    twin_time t;
    if (parse(bad[i], 0, &t) != TWIN_ERR_PARSE)
      fail_msg("'%s' should be refused", bad[i]);
  }
  twin_time t;
  assert_int_equal(twinaux_time_parse(NULL, 0, 0, &t), TWIN_ERR_PARSE);
  assert_int_equal(twinaux_time_parse("2026-01-10T10:00:00Z", 20, 0, NULL),
                   TWIN_ERR_PARSE);
}

static void times_before_1970_are_exact(void **state)
{
  (void)state;
  assert_int_equal(parsed("1969-12-31T23:59:59.999Z", 0), -1);
  assert_int_equal(parsed("1969-12-31T23:59:59Z", 0), -1000);
  assert_int_equal(parsed("1969-12-31T23:59:59.001Z", 0), -999);
  assert_int_equal(parsed("1970-01-01T00:00:00+00:01", 0), -60000);
  assert_int_equal(parsed("1900-01-01T00:00:00Z", 0), INT64_C(-2208988800000));
  assert_int_equal(parsed("0001-01-01T00:00:00Z", 0), INT64_C(-62135596800000));
  assert_int_equal(parsed("0000-01-01T00:00:00Z", 0), T_MIN);
  assert_int_equal(parsed("9999-12-31T23:59:59.999Z", 0), T_MAX);
}

/* ---- time formatting ----------------------------------------------------- */

static const char *formatted(twin_time t, int flags, char *buf, size_t size)
{
  size_t n = twinaux_time_format(t, flags, buf, size);
  assert_true(n > 0);
  assert_int_equal(strlen(buf), n);
  return buf;
}

static void format_writes_milliseconds_only_when_there_are_some(void **state)
{
  (void)state;
  char buf[40];
  assert_string_equal(formatted(0, 0, buf, sizeof buf), "1970-01-01T00:00:00Z");
  assert_string_equal(formatted(0, TWINAUX_TIME_MS, buf, sizeof buf),
                      "1970-01-01T00:00:00.000Z");
  assert_string_equal(formatted(INT64_C(1795773600123), 0, buf, sizeof buf),
                      "2026-11-27T10:00:00.123Z");
  assert_string_equal(formatted(-1, 0, buf, sizeof buf),
                      "1969-12-31T23:59:59.999Z");
  assert_string_equal(formatted(-1000, 0, buf, sizeof buf),
                      "1969-12-31T23:59:59Z");
}

static void years_outside_0000_to_9999_carry_their_sign(void **state)
{
  (void)state;
  char buf[40];
  assert_string_equal(formatted(T_MIN, 0, buf, sizeof buf),
                      "0000-01-01T00:00:00Z");
  assert_string_equal(formatted(T_MIN - 1, 0, buf, sizeof buf),
                      "-0001-12-31T23:59:59.999Z");
  assert_string_equal(formatted(T_MAX, 0, buf, sizeof buf),
                      "9999-12-31T23:59:59.999Z");
  assert_string_equal(formatted(T_MAX + 1, 0, buf, sizeof buf),
                      "+10000-01-01T00:00:00Z");
  /* The extremes of twin_time, computed in Python: divmod of the ms by a
   * day, then whole 400-year cycles (146097 days) moved into the range of
   * datetime.date. */
  assert_string_equal(formatted(INT64_MAX, 0, buf, sizeof buf),
                      "+292278994-08-17T07:12:55.807Z");
  assert_string_equal(formatted(INT64_MIN, 0, buf, sizeof buf),
                      "-292275055-05-16T16:47:04.192Z");
}

static void
format_into_a_small_buffer_gives_zero_and_an_empty_string(void **state)
{
  (void)state;
  char buf[40];
  /* "2026-11-27T10:00:00.123Z" is 24 bytes: 25 with its NUL fit */
  assert_int_equal(twinaux_time_format(INT64_C(1795773600123), 0, buf, 25), 24);
  memset(buf, 'x', sizeof buf);
  assert_int_equal(twinaux_time_format(INT64_C(1795773600123), 0, buf, 24), 0);
  assert_string_equal(buf, "");
  assert_int_equal(twinaux_time_format(0, 0, NULL, 0), 0);
  /* The longest text of all (30 bytes) needs 31, more than the 25 the
   * header promises: that promise holds for years 0000..9999 only. */
  assert_int_equal(twinaux_time_format(INT64_MAX, TWINAUX_TIME_MS, buf, 30), 0);
  assert_int_equal(twinaux_time_format(INT64_MAX, TWINAUX_TIME_MS, buf, 31),
                   30);
}

static void parse_of_format_gives_back_the_time(void **state)
{
  (void)state;
  static const int64_t edges[] = {
      T_MIN,       T_MIN + 1, T_MIN + 999, T_MAX,     T_MAX - 1,
      T_MAX - 999, -1,        0,           1,         -999,
      -1000,       -1001,     -86400000,   -86400001, INT64_C(951782400000)};
  char buf[40];
  for (size_t i = 0; i < N_OF(edges); i++) {
    for (int flags = 0; flags <= TWINAUX_TIME_MS; flags++)
      assert_int_equal(parsed(formatted(edges[i], flags, buf, sizeof buf), 0),
                       edges[i]);
  }
  /* A sweep over all of 0000..9999 with a step that is no round number of
   * anything, so every ms, second, hour and day of month gets visited. */
  const int64_t step = (T_MAX - T_MIN) / 200003 + 7919;
  for (int64_t t = T_MIN; t <= T_MAX; t += step) {
    int64_t mirror = T_MAX - (t - T_MIN); /* the other end's ms as well */
    assert_int_equal(parsed(formatted(t, 0, buf, sizeof buf), 0), t);
    assert_int_equal(parsed(formatted(mirror, 0, buf, sizeof buf), 0), mirror);
  }
}

static void format_agrees_with_gmtime_r_over_1900_to_2200(void **state)
{
  (void)state;
  const int64_t from = INT64_C(-2208988800); /* 1900-01-01 */
  const int64_t to = INT64_C(7258118400);    /* 2200-01-01 */
  uint64_t seed = UINT64_C(0x7777aaaa5555cccc);
  char ours[40], theirs[40];
  for (int i = 0; i < 5000; i++) {
    int64_t s = from + (int64_t)(next_random(&seed) % (uint64_t)(to - from));
    time_t tt = (time_t)s;
    struct tm tm;
    assert_non_null(gmtime_r(&tt, &tm));
    strftime(theirs, sizeof theirs, "%Y-%m-%dT%H:%M:%SZ", &tm);
    formatted(s * 1000, 0, ours, sizeof ours);
    if (strcmp(ours, theirs) != 0)
      fail_msg("%" PRId64 " s: ours %s, glibc %s", s, ours, theirs);
  }
}

/* ---- the calendar -------------------------------------------------------- */

static void days_from_civil_gives_known_days(void **state)
{
  (void)state;
  /* Counted with Python's datetime.date subtraction. */
  assert_int_equal(twinaux_days_from_civil(1970, 1, 1), 0);
  assert_int_equal(twinaux_days_from_civil(1969, 12, 31), -1);
  assert_int_equal(twinaux_days_from_civil(2000, 3, 1), 11017);
  assert_int_equal(twinaux_days_from_civil(2000, 2, 29), 11016);
  assert_int_equal(twinaux_days_from_civil(1600, 2, 29), -135081);
  assert_int_equal(twinaux_days_from_civil(1, 1, 1), -719162);
  assert_int_equal(twinaux_days_from_civil(0, 1, 1), -719528);
  assert_int_equal(twinaux_days_from_civil(9999, 12, 31), 2932896);
  int64_t y;
  int m, d;
  twinaux_civil_from_days(11017, &y, &m, &d);
  assert_int_equal(y, 2000);
  assert_int_equal(m, 3);
  assert_int_equal(d, 1);
  twinaux_civil_from_days(-719528, &y, &m, &d);
  assert_int_equal(y, 0);
  assert_int_equal(m, 1);
  assert_int_equal(d, 1);
}

static void civil_from_days_inverts_days_from_civil(void **state)
{
  (void)state;
  /* Every day of 1600..2400 (two full 400-year eras), and both ways. */
  int64_t day = twinaux_days_from_civil(1600, 1, 1);
  for (int64_t y = 1600; y < 2400; y++) {
    for (int m = 1; m <= 12; m++) {
      int last = m == 2
                     ? ((y % 4 == 0 && y % 100 != 0) || y % 400 == 0 ? 29 : 28)
                 : (m == 4 || m == 6 || m == 9 || m == 11) ? 30
                                                           : 31;
      for (int d = 1; d <= last; d++, day++) {
        assert_int_equal(twinaux_days_from_civil(y, m, d), day);
        int64_t yy;
        int mm, dd;
        twinaux_civil_from_days(day, &yy, &mm, &dd);
        assert_true(yy == y && mm == m && dd == d);
      }
    }
  }
  /* Far years: a sampled round trip, negative ones too. */
  uint64_t seed = 12345;
  for (int i = 0; i < 10000; i++) {
    int64_t days = (int64_t)(next_random(&seed) % UINT64_C(200000000000)) -
                   INT64_C(100000000000);
    int64_t yy;
    int mm, dd;
    twinaux_civil_from_days(days, &yy, &mm, &dd);
    assert_true(mm >= 1 && mm <= 12 && dd >= 1 && dd <= 31);
    assert_int_equal(twinaux_days_from_civil(yy, mm, dd), days);
  }
}

static void a_month_outside_1_to_12_carries_into_the_year(void **state)
{
  (void)state;
  /* Not in the header's contract: what this implementation does instead of
   * undefined behaviour, as timegm normalizes. */
  assert_int_equal(twinaux_days_from_civil(2025, 13, 1),
                   twinaux_days_from_civil(2026, 1, 1));
  assert_int_equal(twinaux_days_from_civil(2026, 0, 1),
                   twinaux_days_from_civil(2025, 12, 1));
  assert_int_equal(twinaux_days_from_civil(2026, 3, 0),
                   twinaux_days_from_civil(2026, 2, 28));
  /* extreme inputs neither crash nor overflow */
  assert_int_equal(twinaux_days_from_civil(INT64_MAX, 1, 1), INT64_MAX);
  assert_int_equal(twinaux_days_from_civil(INT64_MIN, 1, 1), INT64_MIN);
  int64_t y;
  int m, d;
  twinaux_civil_from_days(INT64_MAX, &y, &m, &d);
  twinaux_civil_from_days(INT64_MIN, &y, &m, &d);
  assert_true(y < 0 && m >= 1 && m <= 12 && d >= 1 && d <= 31);
}

/* ---- distance ------------------------------------------------------------ */

static void distance_bna_to_lax_is_the_published_one(void **state)
{
  (void)state;
  /* Rosetta Code, "Haversine formula": Nashville BNA (36.12, -86.67) to
   * Los Angeles LAX (33.94, -118.40) is 2887.25995060711033944886 km on a
   * sphere of 6372.8 km. The central angle is that over the radius; on
   * ours it gives the distance below. Tolerance 1 mm: the same formula in
   * doubles, only the last bits may differ. */
  double angle = 2887.25995060711033944886 / 6372.8;
  double want = angle * TWINAUX_EARTH_RADIUS_M;
  double got = twinaux_distance_m(36.12, -86.67, 33.94, -118.40);
  assert_true(fabs(got - want) < 1e-3);
  /* and Rosetta's other radius, 6371.0 km -> 2886.44444283798329974715 km,
   * confirms the scaling */
  assert_true(fabs(angle * 6371.0 - 2886.44444283798329974715) < 1e-9);
  /* symmetric */
  assert_true(fabs(twinaux_distance_m(33.94, -118.40, 36.12, -86.67) - got) <
              1e-6);
}

static void distance_of_a_point_to_itself_is_zero(void **state)
{
  (void)state;
  assert_true(twinaux_distance_m(48.83, 12.96, 48.83, 12.96) == 0.0);
  assert_true(twinaux_distance_m(-90, 0, -90, 180) < 1e-6); /* one pole */
}

static void distance_to_the_antipode_is_half_the_circumference(void **state)
{
  (void)state;
  double half = 3.14159265358979323846 * TWINAUX_EARTH_RADIUS_M;
  /* tolerance 1 mm on 20 000 km: no loss of precision at a = 1 */
  assert_true(fabs(twinaux_distance_m(0, 0, 0, 180) - half) < 1e-3);
  assert_true(fabs(twinaux_distance_m(90, 0, -90, 0) - half) < 1e-3);
  assert_true(fabs(twinaux_distance_m(48.83, 12.96, -48.83, -167.04) - half) <
              1e-3);
}

static void
distance_along_a_meridian_or_the_equator_is_r_times_the_angle(void **state)
{
  (void)state;
  /* On a sphere these arcs are exactly R times the angle: computed
   * independently of the haversine. Tolerance 1 micrometre per degree. */
  double deg = 3.14159265358979323846 / 180 * TWINAUX_EARTH_RADIUS_M;
  assert_true(fabs(twinaux_distance_m(48, 13, 49, 13) - deg) < 1e-6);
  assert_true(fabs(twinaux_distance_m(0, 10, 0, 100) - 90 * deg) < 1e-4);
  assert_true(fabs(twinaux_distance_m(-10, 0, 10, 0) - 20 * deg) < 1e-5);
  /* short distances keep their precision: 1e-5 degrees, about 1.1 m */
  assert_true(fabs(twinaux_distance_m(48.83, 12.96, 48.83001, 12.96) -
                   1e-5 * deg) < 1e-6);
}

/* ---- the JSON writer ----------------------------------------------------- */

static void json_nested_values_get_their_commas_and_colons(void **state)
{
  (void)state;
  twinaux_json j;
  twinaux_json_init(&j);
  twinaux_json_object(&j);
  twinaux_json_key(&j, "free");
  twinaux_json_int(&j, 17);
  twinaux_json_key(&j, "lots");
  twinaux_json_array(&j);
  twinaux_json_object(&j);
  twinaux_json_key(&j, "id");
  twinaux_json_str(&j, "p1");
  twinaux_json_end(&j);
  twinaux_json_object(&j);
  twinaux_json_end(&j);
  twinaux_json_array(&j);
  twinaux_json_end(&j);
  twinaux_json_null(&j);
  twinaux_json_end(&j);
  twinaux_json_key(&j, "open");
  twinaux_json_bool(&j, 1);
  twinaux_json_key(&j, "empty");
  twinaux_json_object(&j);
  twinaux_json_end(&j);
  twinaux_json_end(&j);
  assert_text(&j, "{\"free\":17,\"lots\":[{\"id\":\"p1\"},{},[],null],"
                  "\"open\":true,\"empty\":{}}");
  twinaux_json_free(&j);
}

static void json_a_scalar_alone_is_a_complete_value(void **state)
{
  (void)state;
  twinaux_json j;
  twinaux_json_init(&j);
  twinaux_json_str(&j, "alone");
  assert_text(&j, "\"alone\"");
  /* a second top-level value would make the text two values */
  twinaux_json_int(&j, 1);
  assert_int_equal(twinaux_json_status(&j), TWIN_ERR_INVALID);
  twinaux_json_free(&j);
}

static void json_strings_escape_controls_quotes_and_backslashes(void **state)
{
  (void)state;
  static const char raw[] = "a\"b\\c/\n\t\x01\x1f\x7f\0end";
  twinaux_json j;
  twinaux_json_init(&j);
  twinaux_json_strn(&j, raw, sizeof raw - 1);
  assert_text(&j, "\"a\\\"b\\\\c/\\u000a\\u0009\\u0001\\u001f\x7f\\u0000end\"");
  json_t *v = jansson_reads(&j);
  assert_int_equal(json_string_length(v), sizeof raw - 1);
  assert_memory_equal(json_string_value(v), raw, sizeof raw - 1);
  json_decref(v);
  twinaux_json_free(&j);
}

static void json_keys_are_escaped_like_strings(void **state)
{
  (void)state;
  twinaux_json j;
  twinaux_json_init(&j);
  twinaux_json_object(&j);
  twinaux_json_key(&j, "a\"\n");
  twinaux_json_int(&j, 1);
  twinaux_json_end(&j);
  assert_text(&j, "{\"a\\\"\\u000a\":1}");
  twinaux_json_free(&j);
}

static void json_multibyte_utf8_is_kept_as_it_is(void **state)
{
  (void)state;
  /* é (2 bytes), € (3), 😀 (4), U+10FFFF (the last code point) */
  static const char s[] =
      "\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80 \xf4\x8f\xbf\xbf";
  twinaux_json j;
  twinaux_json_init(&j);
  twinaux_json_str(&j, s);
  char want[64];
  snprintf(want, sizeof want, "\"%s\"", s);
  assert_text(&j, want);
  json_t *v = jansson_reads(&j);
  assert_string_equal(json_string_value(v), s);
  json_decref(v);
  twinaux_json_free(&j);
}

static void json_a_string_that_is_not_utf8_is_invalid(void **state)
{
  (void)state;
  static const char *const bad[] = {
      "\xff",             /* never in UTF-8 */
      "\x80",             /* a continuation alone */
      "\xc3",             /* truncated */
      "\xc0\xaf",         /* overlong '/' */
      "\xe0\x80\xaf",     /* overlong '/' in three bytes */
      "\xed\xa0\x80",     /* a surrogate, U+D800 */
      "\xf4\x90\x80\x80", /* U+110000 */
      "ok\xe2\x82",       /* truncated at the end */
  };
  for (size_t i = 0; i < N_OF(bad); i++) {
    twinaux_json j;
    twinaux_json_init(&j);
    twinaux_json_array(&j);
    twinaux_json_str(&j, bad[i]);
    twinaux_json_end(&j);
    assert_int_equal(twinaux_json_status(&j), TWIN_ERR_INVALID);
    twinaux_json_free(&j);
    /* in a key too */
    twinaux_json_init(&j);
    twinaux_json_object(&j);
    twinaux_json_key(&j, bad[i]);
    assert_int_equal(twinaux_json_status(&j), TWIN_ERR_INVALID);
    twinaux_json_free(&j);
  }
}

static void json_a_value_where_a_key_belongs_is_invalid(void **state)
{
  (void)state;
  twinaux_json j;
  twinaux_json_init(&j);
  twinaux_json_object(&j);
  twinaux_json_int(&j, 1);
  assert_int_equal(twinaux_json_status(&j), TWIN_ERR_INVALID);
  twinaux_json_free(&j);
  /* and after a complete member, too */
  twinaux_json_init(&j);
  twinaux_json_object(&j);
  twinaux_json_key(&j, "a");
  twinaux_json_int(&j, 1);
  twinaux_json_str(&j, "b");
  assert_int_equal(twinaux_json_status(&j), TWIN_ERR_INVALID);
  twinaux_json_free(&j);
}

static void json_a_key_outside_an_object_or_twice_is_invalid(void **state)
{
  (void)state;
  twinaux_json j;
  twinaux_json_init(&j);
  twinaux_json_key(&j, "top");
  assert_int_equal(twinaux_json_status(&j), TWIN_ERR_INVALID);
  twinaux_json_free(&j);
  twinaux_json_init(&j);
  twinaux_json_array(&j);
  twinaux_json_key(&j, "in array");
  assert_int_equal(twinaux_json_status(&j), TWIN_ERR_INVALID);
  twinaux_json_free(&j);
  twinaux_json_init(&j);
  twinaux_json_object(&j);
  twinaux_json_key(&j, "a");
  twinaux_json_key(&j, "b");
  assert_int_equal(twinaux_json_status(&j), TWIN_ERR_INVALID);
  twinaux_json_free(&j);
}

static void json_an_end_without_a_begin_or_a_value_is_invalid(void **state)
{
  (void)state;
  twinaux_json j;
  twinaux_json_init(&j);
  twinaux_json_end(&j);
  assert_int_equal(twinaux_json_status(&j), TWIN_ERR_INVALID);
  twinaux_json_free(&j);
  twinaux_json_init(&j);
  twinaux_json_object(&j);
  twinaux_json_key(&j, "dangling");
  twinaux_json_end(&j);
  assert_int_equal(twinaux_json_status(&j), TWIN_ERR_INVALID);
  twinaux_json_free(&j);
}

static void json_errors_stick_and_later_calls_do_nothing(void **state)
{
  (void)state;
  twinaux_json j;
  twinaux_json_init(&j);
  twinaux_json_array(&j);
  twinaux_json_int(&j, 1);
  twinaux_json_str(&j, "\xff");
  size_t len_at_error;
  twinaux_json_text(&j, &len_at_error);
  twinaux_json_int(&j, 2);
  twinaux_json_end(&j);
  size_t len;
  twinaux_json_text(&j, &len);
  assert_int_equal(len, len_at_error);
  assert_int_equal(twinaux_json_status(&j), TWIN_ERR_INVALID);
  twinaux_json_free(&j);
}

static void json_nesting_beyond_the_depth_limit_is_invalid(void **state)
{
  (void)state;
  twinaux_json j;
  twinaux_json_init(&j);
  for (int i = 0; i < TWINAUX_JSON_DEPTH; i++)
    twinaux_json_array(&j);
  assert_int_equal(twinaux_json_status(&j), TWIN_OK);
  for (int i = 0; i < TWINAUX_JSON_DEPTH; i++)
    twinaux_json_end(&j);
  json_decref(jansson_reads(&j)); /* 64 levels are fine */
  twinaux_json_free(&j);
  twinaux_json_init(&j);
  for (int i = 0; i <= TWINAUX_JSON_DEPTH; i++) {
    twinaux_json_object(&j);
    twinaux_json_key(&j, "k");
  }
  assert_int_equal(twinaux_json_status(&j), TWIN_ERR_INVALID);
  twinaux_json_free(&j);
}

static void json_non_finite_numbers_are_written_as_null(void **state)
{
  (void)state;
  twinaux_json j;
  twinaux_json_init(&j);
  twinaux_json_array(&j);
  twinaux_json_num(&j, INFINITY);
  twinaux_json_num(&j, -INFINITY);
  twinaux_json_num(&j, NAN);
  twinaux_json_end(&j);
  assert_text(&j, "[null,null,null]");
  twinaux_json_free(&j);
}

static const char *num_text(double v, char *buf, size_t size)
{
  twinaux_json j;
  twinaux_json_init(&j);
  twinaux_json_num(&j, v);
  json_t *parsed_v = jansson_reads(&j);
  json_decref(parsed_v);
  snprintf(buf, size, "%s", twinaux_json_text(&j, NULL));
  twinaux_json_free(&j);
  return buf;
}

static void json_numbers_are_the_shortest_text_that_reads_back(void **state)
{
  (void)state;
  char buf[40];
  assert_string_equal(num_text(0.1, buf, sizeof buf), "0.1");
  assert_string_equal(num_text(1.5, buf, sizeof buf), "1.5");
  assert_string_equal(num_text(100, buf, sizeof buf), "100");
  assert_string_equal(num_text(-2.5e-7, buf, sizeof buf), "-2.5e-07");
  assert_string_equal(num_text(1e21, buf, sizeof buf), "1e+21");
  assert_string_equal(num_text(1.0 / 3, buf, sizeof buf), "0.3333333333333333");
  assert_string_equal(num_text(0.1 + 0.2, buf, sizeof buf),
                      "0.30000000000000004");
  assert_string_equal(num_text(-0.0, buf, sizeof buf), "-0");
  assert_string_equal(num_text(1.7976931348623157e308, buf, sizeof buf),
                      "1.7976931348623157e+308");
  /* random doubles of every magnitude read back exactly */
  uint64_t seed = 99;
  for (int i = 0; i < 20000; i++) {
    uint64_t bits = next_random(&seed);
    double v;
    memcpy(&v, &bits, sizeof v);
    if (!isfinite(v))
      continue;
    num_text(v, buf, sizeof buf);
    assert_true(strtod(buf, NULL) == v);
  }
}

static void json_int64_extremes_are_exact(void **state)
{
  (void)state;
  twinaux_json j;
  twinaux_json_init(&j);
  twinaux_json_array(&j);
  twinaux_json_int(&j, INT64_MIN);
  twinaux_json_int(&j, INT64_MAX);
  twinaux_json_int(&j, 0);
  twinaux_json_end(&j);
  assert_text(&j, "[-9223372036854775808,9223372036854775807,0]");
  json_t *v = jansson_reads(&j);
  assert_true(json_integer_value(json_array_get(v, 0)) == INT64_MIN);
  assert_true(json_integer_value(json_array_get(v, 1)) == INT64_MAX);
  json_decref(v);
  twinaux_json_free(&j);
}

static void json_value_writes_every_twin_value_type(void **state)
{
  (void)state;
  twin_value null_v = {0};
  null_v.type = TWIN_VALUE_NULL;
  twin_value vals[] = {null_v,
                       twin_number(2.5),
                       twin_number(NAN),
                       twin_integer(-42),
                       twin_string("q\"\xc3\xa9", 4),
                       twin_string("cut", 2),
                       twin_bool(1),
                       twin_bool(0)};
  twinaux_json j;
  twinaux_json_init(&j);
  twinaux_json_array(&j);
  for (size_t i = 0; i < N_OF(vals); i++)
    twinaux_json_value(&j, &vals[i]);
  twinaux_json_value(&j, NULL);
  twinaux_json_end(&j);
  assert_text(&j,
              "[null,2.5,null,-42,\"q\\\"\xc3\xa9\",\"cu\",true,false,null]");
  twinaux_json_free(&j);
  /* a type tag this library does not know */
  twin_value later = twin_integer(1);
  later.type = 99;
  twinaux_json_init(&j);
  twinaux_json_value(&j, &later);
  assert_int_equal(twinaux_json_status(&j), TWIN_ERR_INVALID);
  twinaux_json_free(&j);
}

static void json_time_is_an_rfc3339_string(void **state)
{
  (void)state;
  twinaux_json j;
  twinaux_json_init(&j);
  twinaux_json_object(&j);
  twinaux_json_key(&j, "t");
  twinaux_json_time(&j, INT64_C(1795773600000));
  twinaux_json_key(&j, "ms");
  twinaux_json_time(&j, INT64_C(1795773600001));
  twinaux_json_end(&j);
  assert_text(&j, "{\"t\":\"2026-11-27T10:00:00Z\","
                  "\"ms\":\"2026-11-27T10:00:00.001Z\"}");
  twinaux_json_free(&j);
}

static void json_raw_text_is_taken_as_one_value(void **state)
{
  (void)state;
  twinaux_json j;
  twinaux_json_init(&j);
  twinaux_json_array(&j);
  twinaux_json_raw(&j, "{\"a\":[1,2]}", 11);
  twinaux_json_raw(&j, "3", 1);
  twinaux_json_end(&j);
  assert_text(&j, "[{\"a\":[1,2]},3]");
  twinaux_json_free(&j);
  twinaux_json_init(&j);
  twinaux_json_raw(&j, "", 0); /* nothing is not a value */
  assert_int_equal(twinaux_json_status(&j), TWIN_ERR_INVALID);
  twinaux_json_free(&j);
}

static void json_an_empty_writer_has_empty_text(void **state)
{
  (void)state;
  twinaux_json j;
  twinaux_json_init(&j);
  size_t len = 99;
  assert_string_equal(twinaux_json_text(&j, &len), "");
  assert_int_equal(len, 0);
  assert_int_equal(twinaux_json_status(&j), TWIN_OK);
  twinaux_json_free(&j);
  twinaux_json_free(&j); /* twice is harmless */
}

static void json_a_long_text_grows_its_buffer(void **state)
{
  (void)state;
  twinaux_json j;
  twinaux_json_init(&j);
  twinaux_json_array(&j);
  for (int i = 0; i < 100000; i++)
    twinaux_json_int(&j, i);
  twinaux_json_end(&j);
  assert_int_equal(twinaux_json_status(&j), TWIN_OK);
  json_t *v = jansson_reads(&j);
  assert_int_equal(json_array_size(v), 100000);
  assert_int_equal(json_integer_value(json_array_get(v, 99999)), 99999);
  json_decref(v);
  twinaux_json_free(&j);
}

static void
json_respond_sends_a_complete_value_and_frees_the_writer(void **state)
{
  (void)state;
  twin_host_api api = fake_host(sizeof(twin_host_api));
  twinaux_json j;
  twinaux_json_init(&j);
  twinaux_json_object(&j);
  twinaux_json_key(&j, "free");
  twinaux_json_int(&j, 17);
  twinaux_json_end(&j);
  assert_int_equal(twinaux_json_respond(&api, CTX, &j), TWIN_OK);
  assert_int_equal(rec.respond_calls, 1);
  assert_ptr_equal(rec.ctx, CTX);
  assert_string_equal(rec.reply, "{\"free\":17}");
  assert_null(j.buf); /* freed */
  assert_int_equal(rec.set_error_calls, 0);
}

static void json_respond_refuses_an_incomplete_value_and_says_why(void **state)
{
  (void)state;
  twin_host_api api = fake_host(sizeof(twin_host_api));
  twinaux_json j;
  twinaux_json_init(&j);
  twinaux_json_object(&j);
  assert_int_equal(twinaux_json_respond(&api, CTX, &j), TWIN_ERR_INVALID);
  assert_int_equal(rec.respond_calls, 0);
  assert_int_equal(rec.set_error_calls, 1);
  assert_non_null(strstr(rec.message, "incomplete"));
  assert_null(j.buf);
  /* an empty writer, and one in error */
  twinaux_json_init(&j);
  assert_int_equal(twinaux_json_respond(&api, CTX, &j), TWIN_ERR_INVALID);
  twinaux_json_init(&j);
  twinaux_json_str(&j, "\xff");
  assert_int_equal(twinaux_json_respond(&api, CTX, &j), TWIN_ERR_INVALID);
  assert_int_equal(rec.respond_calls, 0);
}

static void json_respond_passes_on_what_the_host_returned(void **state)
{
  (void)state;
  twin_host_api api = fake_host(sizeof(twin_host_api));
  rec.respond_rc = TWIN_ERR_UNSUPPORTED;
  twinaux_json j;
  twinaux_json_init(&j);
  twinaux_json_null(&j);
  assert_int_equal(twinaux_json_respond(&api, CTX, &j), TWIN_ERR_UNSUPPORTED);
  assert_int_equal(rec.respond_calls, 1);
  assert_non_null(strstr(rec.message, "not supported"));
}

/* ---- reading members ----------------------------------------------------- */

/* Brackets, braces and escaped quotes inside strings, and nested values
 * with keys of the same names as the top level's. */
static const char nested_doc[] =
    " {\"a\": {\"op\": 1, \"x\": [\"]\", \"}\\\"\", {\"y\": [1, [2, {}]]}]},\n"
    "  \"s\": \"q\\\"}]{[\", \"op\" : \"forecast\", \"n\": -1.5e3,\n"
    "  \"t\": true, \"z\": null, \"arr\": [[], {}], \"f\": false} ";

static void member_is(const char *json, const char *key, const char *want)
{
  const char *val = NULL;
  size_t len = 0;
  assert_int_equal(twinaux_json_member(json, strlen(json), key, &val, &len),
                   TWIN_OK);
  assert_true(val >= json && val + len <= json + strlen(json));
  assert_int_equal(len, strlen(want));
  assert_memory_equal(val, want, len);
}

static void member_finds_top_level_values_skipping_nested_ones(void **state)
{
  (void)state;
  member_is(nested_doc, "op", "\"forecast\"");
  member_is(nested_doc, "s", "\"q\\\"}]{[\"");
  member_is(nested_doc, "n", "-1.5e3");
  member_is(nested_doc, "t", "true");
  member_is(nested_doc, "z", "null");
  member_is(nested_doc, "f", "false");
  member_is(nested_doc, "arr", "[[], {}]");
  member_is(nested_doc, "a",
            "{\"op\": 1, \"x\": [\"]\", \"}\\\"\", "
            "{\"y\": [1, [2, {}]]}]}");
  const char *val;
  size_t len;
  /* "x" and "y" exist, but not at the top level */
  assert_int_equal(
      twinaux_json_member(nested_doc, strlen(nested_doc), "x", &val, &len),
      TWIN_ERR_NOT_FOUND);
  assert_int_equal(
      twinaux_json_member(nested_doc, strlen(nested_doc), "y", &val, &len),
      TWIN_ERR_NOT_FOUND);
  assert_int_equal(twinaux_json_member("{}", 2, "op", &val, &len),
                   TWIN_ERR_NOT_FOUND);
}

static void member_given_twice_yields_the_last(void **state)
{
  (void)state;
  member_is("{\"op\":\"a\",\"x\":1,\"op\":\"b\"}", "op", "\"b\"");
  /* jansson, too, keeps the last */
  json_t *v = json_loads("{\"op\":\"a\",\"x\":1,\"op\":\"b\"}", 0, NULL);
  assert_string_equal(json_string_value(json_object_get(v, "op")), "b");
  json_decref(v);
}

static void member_keys_are_compared_unescaped(void **state)
{
  (void)state;
  member_is("{\"\\u006fp\":1}", "op", "1");
  member_is("{\"caf\\u00e9\":2}", "caf\xc3\xa9", "2");
  member_is("{\"\":3}", "", "3");
  const char *val;
  size_t len;
  /* a key with an escaped NUL is not the shorter key */
  assert_int_equal(
      twinaux_json_member("{\"op\\u0000\":1}", 14, "op", &val, &len),
      TWIN_ERR_NOT_FOUND);
  assert_int_equal(twinaux_json_member("{\"o\":1}", 7, "op", &val, &len),
                   TWIN_ERR_NOT_FOUND);
}

static void
member_of_a_text_that_is_not_an_object_is_a_parse_error(void **state)
{
  (void)state;
  static const char *const bad[] = {
      "",
      "   ",
      "[1]",
      "\"op\"",
      "1",
      "null",
      "{\"op\":1} x",
      "{\"op\":1}{}",
      "{\"op\" 1}",
      "{op:1}",
      "{\"op\":1,}",
      "{,}",
      "{\"op\":01}",
      "{\"op\":1.}",
      "{\"op\":.5}",
      "{\"op\":+1}",
      "{\"op\":1e}",
      "{\"op\":tru}",
      "{\"op\":nul}",
      "{\"op\":[1,]}",
      "{\"op\":[1 2]}",
      "{\"op\":{\"a\"}}",
      "{\"op\":{1:2}}",
      "{\"op\":\"\\x\"}",
      "{\"op\":\"\\u12g4\"}",
      "{\"op\":\"\\ud800\"}",
      "{\"op\":\"\\udc00\"}",
      "{\"op\":\"\\ud800\\u0041\"}",
      "{\"op\":\"\x01\"}",
      "{\"op\":\"\xff\"}",
      "{\"op\":\"\xc0\xaf\"}",
      "{\"op\":[}",
      "{\"op\":]}",
      "{\"op\":\"a\"]",
      "\xef\xbb\xbf{}", /* a byte order mark: RFC 8259 8.1 lets us refuse */
  };
  for (size_t i = 0; i < N_OF(bad); i++) {
    const char *val;
    size_t len;
    if (twinaux_json_member(bad[i], strlen(bad[i]), "op", &val, &len) !=
        TWIN_ERR_PARSE)
      fail_msg("'%s' should be refused", bad[i]);
    /* jansson agrees this is no JSON object */
    json_t *v = json_loads(bad[i], JSON_DECODE_ANY, NULL);
    assert_true(v == NULL || !json_is_object(v));
    json_decref(v);
  }
}

static void member_of_a_truncated_object_is_a_parse_error(void **state)
{
  (void)state;
  /* every prefix that ends before the closing brace */
  size_t full = strlen(nested_doc);
  const char *close = strrchr(nested_doc, '}');
  for (size_t n = 0; n <= (size_t)(close - nested_doc); n++) {
    char *copy = malloc(n ? n : 1); /* exact size: an overread is caught */
    memcpy(copy, nested_doc, n);
    const char *val;
    size_t len;
    if (twinaux_json_member(copy, n, "f", &val, &len) != TWIN_ERR_PARSE)
      fail_msg("the first %zu bytes should be refused", n);
    free(copy);
  }
  const char *val;
  size_t len;
  assert_int_equal(twinaux_json_member(nested_doc, full, "f", &val, &len),
                   TWIN_OK);
}

static void member_scanner_agrees_with_jansson(void **state)
{
  (void)state;
  static const char *const texts[] = {
      nested_doc,
      "{\"a\":[[[[[[[[[[]]]]]]]]]]}",
      "{\"a\":\"\\ud83d\\ude00\"}",
      "{\"a\":\"\xf0\x9f\x98\x80\"}",
      "{\"a\":-0.0e-0}",
      "{\"a\":0,\"b\":-0,\"c\":1E+2}",
      "{\"a\":\"\\u0000\"}",
      "\t\r\n{\t\"a\"\r:\n1\t}\r\n",
      "{\"a\":[1,{\"b\":[2,{\"c\":3}]}]}",
      "{\"a\":[1,{\"b\":[2,{\"c\":3}]]]}",
      "{\"a\":{\"b\":1}}}",
      "{\"a\":[\"\\\\\"]}",
      "{\"a\":[\"\\\\\\\"]}",
  };
  for (size_t i = 0; i < N_OF(texts); i++) {
    const char *val;
    size_t len;
    int rc = twinaux_json_member(texts[i], strlen(texts[i]), "zz", &val, &len);
    json_t *v = json_loads(texts[i], JSON_ALLOW_NUL, NULL);
    if ((v != NULL && json_is_object(v)) != (rc != TWIN_ERR_PARSE))
      fail_msg("'%s': we say %d, jansson %s", texts[i], rc, v ? "ok" : "no");
    json_decref(v);
  }
}

static void member_refuses_deep_nesting_without_overflowing(void **state)
{
  (void)state;
  /* Up to 2048 levels inside the top-level object are scanned (jansson's
   * default limit), more are refused: with a loop, not recursion, so no
   * depth exhausts the stack. */
  static const struct {
    int levels, rc;
  } cases[] = {{1, TWIN_OK},
               {2048, TWIN_OK},
               {2049, TWIN_ERR_PARSE},
               {1000000, TWIN_ERR_PARSE}};
  for (size_t i = 0; i < N_OF(cases); i++) {
    size_t levels = (size_t)cases[i].levels;
    char *doc = malloc(levels * 2 + 8);
    size_t o = 0;
    memcpy(doc + o, "{\"a\":", 5);
    o += 5;
    memset(doc + o, '[', levels);
    o += levels;
    memset(doc + o, ']', levels);
    o += levels;
    doc[o++] = '}';
    const char *val;
    size_t len;
    assert_int_equal(twinaux_json_member(doc, o, "a", &val, &len), cases[i].rc);
    free(doc);
  }
}

static void member_str_unescapes_into_utf8(void **state)
{
  (void)state;
  static const char doc[] = "{\"s\":\"line\\nnext \\u00e9 \\ud83d\\ude00 "
                            "\\\"q\\\" \\\\ \\/ \\t\\b\\f\\r \\u20AC\"}";
  char buf[64];
  assert_int_equal(
      twinaux_json_member_str(doc, sizeof doc - 1, "s", buf, sizeof buf),
      TWIN_OK);
  assert_string_equal(buf, "line\nnext \xc3\xa9 \xf0\x9f\x98\x80 \"q\" \\ / "
                           "\t\b\f\r \xe2\x82\xac");
  json_t *v = json_loads(doc, 0, NULL);
  assert_string_equal(json_string_value(json_object_get(v, "s")), buf);
  json_decref(v);
}

static void member_str_that_does_not_fit_is_too_big(void **state)
{
  (void)state;
  static const char doc[] = "{\"op\":\"forecast\"}";
  char buf[16];
  memset(buf, 'x', sizeof buf);
  assert_int_equal(twinaux_json_member_str(doc, sizeof doc - 1, "op", buf, 8),
                   TWIN_ERR_TOO_BIG);
  assert_string_equal(buf, "");
  assert_int_equal(twinaux_json_member_str(doc, sizeof doc - 1, "op", buf, 9),
                   TWIN_OK);
  assert_string_equal(buf, "forecast");
  assert_int_equal(twinaux_json_member_str(doc, sizeof doc - 1, "op", buf, 0),
                   TWIN_ERR_TOO_BIG);
  /* a multibyte character does not fit in part either */
  static const char e[] = "{\"k\":\"\\u00e9\"}";
  assert_int_equal(twinaux_json_member_str(e, sizeof e - 1, "k", buf, 2),
                   TWIN_ERR_TOO_BIG);
  assert_int_equal(twinaux_json_member_str(e, sizeof e - 1, "k", buf, 3),
                   TWIN_OK);
}

static void member_str_of_a_non_string_is_invalid(void **state)
{
  (void)state;
  static const char doc[] =
      "{\"n\":1,\"o\":{},\"a\":[\"x\"],\"z\":null,\"nul\":\"a\\u0000b\"}";
  char buf[16];
  static const char *const keys[] = {"n", "o", "a", "z", "nul"};
  for (size_t i = 0; i < N_OF(keys); i++)
    assert_int_equal(
        twinaux_json_member_str(doc, sizeof doc - 1, keys[i], buf, sizeof buf),
        TWIN_ERR_INVALID);
  assert_int_equal(
      twinaux_json_member_str(doc, sizeof doc - 1, "none", buf, sizeof buf),
      TWIN_ERR_NOT_FOUND);
  assert_int_equal(twinaux_json_member_str("[]", 2, "n", buf, sizeof buf),
                   TWIN_ERR_PARSE);
}

/* ---- op dispatch --------------------------------------------------------- */

/* Each handler records its name in the instance and returns its own
 * status, so a test sees which one ran and that its status came back. */
typedef struct called {
  const char *name;
  twin_ctx *ctx;
  size_t len;
} called;

static int on_forecast(void *instance, twin_ctx *ctx, const char *request,
                       size_t len)
{
  (void)request;
  called *c = instance;
  c->name = "forecast";
  c->ctx = ctx;
  c->len = len;
  return TWIN_OK;
}

static int on_occupancy(void *instance, twin_ctx *ctx, const char *request,
                        size_t len)
{
  (void)request;
  called *c = instance;
  c->name = "occupancy";
  c->ctx = ctx;
  c->len = len;
  return TWIN_ERR_NOT_FOUND;
}

static const twinaux_op_handler handlers[] = {{"forecast", on_forecast},
                                              {"occupancy", on_occupancy}};

static int dispatch(const twin_host_api *api, const char *request, called *c)
{
  return twinaux_dispatch(api, handlers, N_OF(handlers), c, CTX, request,
                          strlen(request));
}

static void dispatch_calls_the_handler_named_by_op(void **state)
{
  (void)state;
  twin_host_api api = fake_host(sizeof(twin_host_api));
  called c = {0};
  const char *req = "{\"lot\":\"p1\",\"op\":\"occupancy\"}";
  assert_int_equal(dispatch(&api, req, &c), TWIN_ERR_NOT_FOUND);
  assert_string_equal(c.name, "occupancy");
  assert_ptr_equal(c.ctx, CTX);
  assert_int_equal(c.len, strlen(req));
  assert_int_equal(dispatch(&api, "{\"op\":\"forecast\"}", &c), TWIN_OK);
  assert_string_equal(c.name, "forecast");
  assert_int_equal(rec.set_error_calls + rec.fail_calls, 0);
}

static void dispatch_of_an_unknown_op_is_not_found_and_lists_the_ops(void **state)
{
  (void)state;
  twin_host_api api = fake_host(sizeof(twin_host_api));
  called c = {0};
  assert_int_equal(dispatch(&api, "{\"op\":\"nowcast\"}", &c),
                   TWIN_ERR_NOT_FOUND);
  assert_null(c.name);
  assert_int_equal(rec.fail_calls, 1);
  assert_string_equal(rec.field, "op");
  assert_string_equal(rec.code, "unknown_op");
  assert_non_null(strstr(rec.message, "'nowcast'"));
  assert_non_null(strstr(rec.message, "forecast, occupancy"));
  /* an op longer than any name */
  char req[200];
  snprintf(req, sizeof req, "{\"op\":\"%0100d\"}", 0);
  assert_int_equal(dispatch(&api, req, &c), TWIN_ERR_NOT_FOUND);
  assert_non_null(strstr(rec.message, "forecast, occupancy"));
  assert_null(c.name);
}

static void dispatch_without_op_is_invalid_and_lists_the_ops(void **state)
{
  (void)state;
  twin_host_api api = fake_host(sizeof(twin_host_api));
  called c = {0};
  assert_int_equal(dispatch(&api, "{\"lot\":\"p1\"}", &c), TWIN_ERR_INVALID);
  assert_null(c.name);
  assert_non_null(strstr(rec.message, "no \"op\""));
  assert_non_null(strstr(rec.message, "forecast, occupancy"));
  assert_int_equal(dispatch(&api, "{\"op\":3}", &c), TWIN_ERR_INVALID);
  assert_non_null(strstr(rec.message, "forecast, occupancy"));
  /* a nested "op" is not the request's */
  assert_int_equal(dispatch(&api, "{\"x\":{\"op\":\"forecast\"}}", &c),
                   TWIN_ERR_INVALID);
  assert_null(c.name);
}

static void
dispatch_of_a_text_that_is_not_an_object_is_a_parse_error(void **state)
{
  (void)state;
  twin_host_api api = fake_host(sizeof(twin_host_api));
  called c = {0};
  assert_int_equal(dispatch(&api, "[\"forecast\"]", &c), TWIN_ERR_PARSE);
  assert_null(c.name);
  assert_int_equal(rec.fail_calls, 1);
}

static void dispatch_on_a_1_1_host_says_why_with_set_error(void **state)
{
  (void)state;
  twin_host_api api = fake_host(HOST_1_1);
  called c = {0};
  assert_int_equal(dispatch(&api, "{\"op\":\"x\"}", &c), TWIN_ERR_NOT_FOUND);
  assert_int_equal(rec.fail_calls, 0);
  assert_int_equal(rec.set_error_calls, 1);
  assert_non_null(strstr(rec.message, "forecast, occupancy"));
}

/* ---- errors, log, refusals ----------------------------------------------- */

static void
error_returns_its_status_and_sets_the_formatted_message(void **state)
{
  (void)state;
  twin_host_api api = fake_host(sizeof(twin_host_api));
  assert_int_equal(
      twinaux_error(&api, CTX, TWIN_ERR_PARSE, "line %d: %s", 3, "no colon"),
      TWIN_ERR_PARSE);
  assert_int_equal(rec.set_error_calls, 1);
  assert_ptr_equal(rec.ctx, CTX);
  assert_string_equal(rec.message, "line 3: no colon");
  /* without a host table there is nobody to tell, but the status stands */
  assert_int_equal(twinaux_error(NULL, CTX, TWIN_ERR_STORE, "x"),
                   TWIN_ERR_STORE);
}

/* A message of `pad` ASCII bytes and then `tail`, through twinaux_error. */
static size_t cut_length(size_t pad, const char *tail)
{
  twin_host_api api = fake_host(sizeof(twin_host_api));
  char text[1100];
  memset(text, 'a', pad);
  snprintf(text + pad, sizeof text - pad, "%s", tail);
  twinaux_error(&api, CTX, TWIN_ERR_INVALID, "%s", text);
  size_t n = strlen(rec.message);
  assert_true(n <= 1023);
  assert_true(is_utf8((const unsigned char *)rec.message, n));
  assert_memory_equal(rec.message, text, n); /* a prefix of what was said */
  return n;
}

static void
a_message_longer_than_1023_bytes_is_cut_at_a_utf8_boundary(void **state)
{
  (void)state;
  static const char euro[] = "\xe2\x82\xac", grin[] = "\xf0\x9f\x98\x80";
  assert_int_equal(cut_length(1020, euro), 1023); /* ends exactly at 1023 */
  assert_int_equal(cut_length(1021, euro), 1021); /* would need 1024 */
  assert_int_equal(cut_length(1022, euro), 1022);
  assert_int_equal(cut_length(1019, grin), 1023);
  assert_int_equal(cut_length(1020, grin), 1020);
  assert_int_equal(cut_length(1022, "\xc3\xa9"), 1022);
  assert_int_equal(cut_length(1021, "\xc3\xa9"), 1023);
  assert_int_equal(cut_length(1030, ""), 1023); /* plain ASCII: 1023 */
  assert_int_equal(cut_length(10, ""), 10);
}

static void fail_on_a_1_2_host_passes_code_and_field(void **state)
{
  (void)state;
  twin_host_api api = fake_host(sizeof(twin_host_api));
  assert_int_equal(twinaux_fail(&api, CTX, TWIN_ERR_NOT_FOUND, "lot_unknown",
                                "lot", "no lot '%s'", "p9"),
                   TWIN_ERR_NOT_FOUND);
  assert_int_equal(rec.fail_calls, 1);
  assert_int_equal(rec.set_error_calls, 0);
  assert_string_equal(rec.code, "lot_unknown");
  assert_string_equal(rec.field, "lot");
  assert_string_equal(rec.message, "no lot 'p9'");
}

static void fail_on_a_1_1_host_puts_code_and_field_in_the_message(void **state)
{
  (void)state;
  twin_host_api api = fake_host(HOST_1_1);
  assert_int_equal(twinaux_fail(&api, CTX, TWIN_ERR_NOT_FOUND, "lot_unknown",
                                "lot", "no lot '%s'", "p9"),
                   TWIN_ERR_NOT_FOUND);
  assert_int_equal(rec.fail_calls, 0); /* beyond the 1.1 table: not called */
  assert_int_equal(rec.set_error_calls, 1);
  assert_string_equal(rec.message, "lot_unknown: lot: no lot 'p9'");
  twinaux_fail(&api, CTX, TWIN_ERR_INVALID, NULL, "lots[3].free", "negative");
  assert_string_equal(rec.message, "lots[3].free: negative");
  twinaux_fail(&api, CTX, TWIN_ERR_INVALID, "bad", NULL, "why");
  assert_string_equal(rec.message, "bad: why");
  /* a 1.2 table whose fail is NULL is treated alike */
  api = fake_host(sizeof(twin_host_api));
  api.fail = NULL;
  twinaux_fail(&api, CTX, TWIN_ERR_INVALID, "c", "f", "m");
  assert_string_equal(rec.message, "c: f: m");
}

static void log_sends_the_level_and_the_formatted_line(void **state)
{
  (void)state;
  twin_host_api api = fake_host(sizeof(twin_host_api));
  twinaux_log(&api, CTX, TWIN_LEVEL_WARNING, "%d lots, %s", 4, "one stale");
  assert_int_equal(rec.log_calls, 1);
  assert_int_equal(rec.level, TWIN_LEVEL_WARNING);
  assert_string_equal(rec.message, "4 lots, one stale");
  api.log = NULL;
  twinaux_log(&api, CTX, TWIN_LEVEL_INFO, "dropped"); /* no crash */
  assert_int_equal(rec.log_calls, 1);
}

static void refuse_on_a_1_2_host_refuses_the_item(void **state)
{
  (void)state;
  twin_host_api api = fake_host(sizeof(twin_host_api));
  assert_int_equal(twinaux_refuse(&api, CTX, "p3", "free", "implausible",
                                  "free %d > total %d", 575, 540),
                   TWIN_OK);
  assert_int_equal(rec.refuse_calls, 1);
  assert_string_equal(rec.item, "p3");
  assert_string_equal(rec.field, "free");
  assert_string_equal(rec.code, "implausible");
  assert_string_equal(rec.message, "free 575 > total 540");
}

static void refuse_on_a_1_1_host_is_unsupported(void **state)
{
  (void)state;
  twin_host_api api = fake_host(HOST_1_1);
  assert_int_equal(twinaux_refuse(&api, CTX, "p3", "free", "implausible",
                                  "free %d > total %d", 575, 540),
                   TWIN_ERR_UNSUPPORTED);
  assert_int_equal(rec.refuse_calls, 0);
  assert_int_equal(rec.set_error_calls, 0);
}

#define T(f) cmocka_unit_test_setup(f, reset_record)

int main(void)
{
  const struct CMUnitTest tests[] = {
      T(status_names_and_messages_come_from_the_status_list),
      T(an_unknown_status_is_named_unknown),
      T(date_times_get_the_json_schema_suite_verdicts),
      T(rfc3339_examples_parse_except_the_leap_seconds),
      T(february_29_exists_only_in_leap_years),
      T(a_fraction_is_kept_to_milliseconds_rounding_down),
      T(an_offset_is_subtracted_to_give_utc),
      T(a_time_without_zone_is_utc_only_with_zone_optional),
      T(a_space_stands_for_t_only_with_the_space_flag),
      T(the_length_bounds_the_text_and_a_nul_inside_it_is_refused),
      T(trailing_garbage_is_refused),
      T(fields_out_of_range_or_malformed_are_refused),
      T(times_before_1970_are_exact),
      T(format_writes_milliseconds_only_when_there_are_some),
      T(years_outside_0000_to_9999_carry_their_sign),
      T(format_into_a_small_buffer_gives_zero_and_an_empty_string),
      T(parse_of_format_gives_back_the_time),
      T(format_agrees_with_gmtime_r_over_1900_to_2200),
      T(days_from_civil_gives_known_days),
      T(civil_from_days_inverts_days_from_civil),
      T(a_month_outside_1_to_12_carries_into_the_year),
      T(distance_bna_to_lax_is_the_published_one),
      T(distance_of_a_point_to_itself_is_zero),
      T(distance_to_the_antipode_is_half_the_circumference),
      T(distance_along_a_meridian_or_the_equator_is_r_times_the_angle),
      T(json_nested_values_get_their_commas_and_colons),
      T(json_a_scalar_alone_is_a_complete_value),
      T(json_strings_escape_controls_quotes_and_backslashes),
      T(json_keys_are_escaped_like_strings),
      T(json_multibyte_utf8_is_kept_as_it_is),
      T(json_a_string_that_is_not_utf8_is_invalid),
      T(json_a_value_where_a_key_belongs_is_invalid),
      T(json_a_key_outside_an_object_or_twice_is_invalid),
      T(json_an_end_without_a_begin_or_a_value_is_invalid),
      T(json_errors_stick_and_later_calls_do_nothing),
      T(json_nesting_beyond_the_depth_limit_is_invalid),
      T(json_non_finite_numbers_are_written_as_null),
      T(json_numbers_are_the_shortest_text_that_reads_back),
      T(json_int64_extremes_are_exact),
      T(json_value_writes_every_twin_value_type),
      T(json_time_is_an_rfc3339_string),
      T(json_raw_text_is_taken_as_one_value),
      T(json_an_empty_writer_has_empty_text),
      T(json_a_long_text_grows_its_buffer),
      T(json_respond_sends_a_complete_value_and_frees_the_writer),
      T(json_respond_refuses_an_incomplete_value_and_says_why),
      T(json_respond_passes_on_what_the_host_returned),
      T(member_finds_top_level_values_skipping_nested_ones),
      T(member_given_twice_yields_the_last),
      T(member_keys_are_compared_unescaped),
      T(member_of_a_text_that_is_not_an_object_is_a_parse_error),
      T(member_of_a_truncated_object_is_a_parse_error),
      T(member_scanner_agrees_with_jansson),
      T(member_refuses_deep_nesting_without_overflowing),
      T(member_str_unescapes_into_utf8),
      T(member_str_that_does_not_fit_is_too_big),
      T(member_str_of_a_non_string_is_invalid),
      T(dispatch_calls_the_handler_named_by_op),
      T(dispatch_of_an_unknown_op_is_not_found_and_lists_the_ops),
      T(dispatch_without_op_is_invalid_and_lists_the_ops),
      T(dispatch_of_a_text_that_is_not_an_object_is_a_parse_error),
      T(dispatch_on_a_1_1_host_says_why_with_set_error),
      T(error_returns_its_status_and_sets_the_formatted_message),
      T(a_message_longer_than_1023_bytes_is_cut_at_a_utf8_boundary),
      T(fail_on_a_1_2_host_passes_code_and_field),
      T(fail_on_a_1_1_host_puts_code_and_field_in_the_message),
      T(log_sends_the_level_and_the_formatted_line),
      T(refuse_on_a_1_2_host_refuses_the_item),
      T(refuse_on_a_1_1_host_is_unsupported),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
