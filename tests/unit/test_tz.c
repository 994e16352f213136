/*
 * test_tz.c — the zone reader (core/tz.c) against glibc: local time and
 * mktime for real zones over 1901..2040 and in 2100 (the footer rule),
 * every quarter hour around each change, POSIX footers of every shape, and
 * damaged zone files, which must fail with a message and never crash.
 * This program is single-threaded, so it may switch TZ for glibc.
 */
#include "testutil.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "tz.h"

#define DAY 86400

static const char *const zones[] = {"Europe/Berlin",
                                    "America/New_York",
                                    "Australia/Lord_Howe",
                                    "Asia/Kolkata",
                                    "America/Sao_Paulo",
                                    "Pacific/Apia",
                                    "UTC",
                                    "America/Nuuk",
                                    "Asia/Jerusalem",
                                    "Africa/Casablanca"};
#define N_ZONES (sizeof zones / sizeof *zones)

/* What the comparisons found where glibc's answer is not unique. */
static long mktime_ambiguous, mktime_glibc_other;

static void glibc_zone(const char *name)
{
  assert_int_equal(setenv("TZ", name, 1), 0);
  tzset();
}

static struct tm glibc_local(int64_t t)
{
  time_t tt = (time_t)t;
  struct tm g;
  assert_non_null(localtime_r(&tt, &g));
  return g;
}

static int64_t civil(int y, int m, int d)
{
  struct tm tm = {0};
  tm.tm_year = y - 1900;
  tm.tm_mon = m - 1;
  tm.tm_mday = d;
  return (int64_t)timegm(&tm);
}

static int same_wall(const struct tm *a, const struct tm *b)
{
  return a->tm_year == b->tm_year && a->tm_mon == b->tm_mon &&
         a->tm_mday == b->tm_mday && a->tm_hour == b->tm_hour &&
         a->tm_min == b->tm_min && a->tm_sec == b->tm_sec;
}

static int same_tm(const struct tm *a, const struct tm *b)
{
  return same_wall(a, b) && a->tm_wday == b->tm_wday &&
         a->tm_yday == b->tm_yday && !a->tm_isdst == !b->tm_isdst &&
         a->tm_gmtoff == b->tm_gmtoff && a->tm_zone && b->tm_zone &&
         !strcmp(a->tm_zone, b->tm_zone);
}

static void show(char *buf, size_t n, const struct tm *tm)
{
  snprintf(buf, n,
           "%04d-%02d-%02d %02d:%02d:%02d wday %d yday %d dst %d "
           "off %ld %s",
           tm->tm_year + 1900, tm->tm_mon + 1, tm->tm_mday, tm->tm_hour,
           tm->tm_min, tm->tm_sec, tm->tm_wday, tm->tm_yday, tm->tm_isdst,
           tm->tm_gmtoff, tm->tm_zone ? tm->tm_zone : "(null)");
}

/* core_tz_local(t) equals glibc's localtime_r(t), field by field. */
static struct tm expect_local(const core_tz *z, const char *name, int64_t t)
{
  struct tm g = glibc_local(t), m;
  memset(&m, 0x5a, sizeof m);
  int rc = core_tz_local(z, t, &m);
  if (rc != TWIN_OK || !same_tm(&g, &m)) {
    char a[160], b[160];
    show(a, sizeof a, &g);
    show(b, sizeof b, &m);
    fail_msg("%s at %lld: glibc %s, core_tz %s (rc %d)", name, (long long)t, a,
             b, rc);
  }
  return g;
}

/* core_tz_mktime of the local time of t gives t back; when that wall time
 * occurs twice it gives the earlier instance. glibc's mktime must agree
 * except there (where its answer depends on its previous call). */
static void expect_mktime(const core_tz *z, const char *name, int64_t t,
                          const struct tm *g)
{
  struct tm in = *g, back;
  in.tm_isdst = -1;
  in.tm_wday = in.tm_yday = -9;
  int64_t got = 0;
  assert_int_equal(core_tz_mktime(z, &in, &got), TWIN_OK);
  if (!same_tm(&in, g) && got == t)
    fail_msg("%s at %lld: mktime gave the time but not its fields", name,
             (long long)t);
  if (got != t) {
    assert_int_equal(core_tz_local(z, got, &back), TWIN_OK);
    if (!same_wall(&back, g) || got > t)
      fail_msg("%s at %lld: mktime gave %lld, not the time or an earlier "
               "one with the same wall clock",
               name, (long long)t, (long long)got);
    mktime_ambiguous++;
  }
  struct tm gin = *g;
  gin.tm_isdst = -1;
  time_t gt = mktime(&gin);
  if ((int64_t)gt != got) {
    if (!same_wall(&gin, g))
      fail_msg("%s at %lld: glibc mktime %lld, core_tz %lld", name,
               (long long)t, (long long)gt, (long long)got);
    mktime_glibc_other++;
  }
}

/* The first second in (lo, hi] whose offset, dst flag or abbreviation
 * differs from lo's (glibc's view). */
static int64_t find_change(int64_t lo, int64_t hi)
{
  struct tm a = glibc_local(lo);
  while (hi - lo > 1) {
    int64_t mid = lo + (hi - lo) / 2;
    struct tm b = glibc_local(mid);
    if (b.tm_gmtoff == a.tm_gmtoff && !b.tm_isdst == !a.tm_isdst &&
        !strcmp(b.tm_zone, a.tm_zone))
      lo = mid;
    else
      hi = mid;
  }
  return hi;
}

/* Around a change at T: every quarter hour for two days either side, the
 * seconds next to it, and local times inside a gap the change opens. */
static void around_change(const core_tz *z, const char *name, int64_t T)
{
  for (int64_t t = T - 2 * DAY; t <= T + 2 * DAY; t += 900) {
    struct tm g = expect_local(z, name, t);
    expect_mktime(z, name, t, &g);
  }
  for (int64_t t = T - 2; t <= T + 1; t++) {
    struct tm g = expect_local(z, name, t);
    expect_mktime(z, name, t, &g);
  }
  struct tm before = glibc_local(T - 1), after = glibc_local(T);
  long gap = after.tm_gmtoff - before.tm_gmtoff;
  if (gap <= 0)
    return;
  /* Wall times T + before + k do not exist; both read them with the offset
   * before the change, so they land at T + k. */
  long ks[] = {0, gap / 2, gap - 1};
  for (int i = 0; i < 3; i++) {
    struct tm in = before, gin;
    in.tm_sec += 1 + (int)ks[i];
    in.tm_isdst = -1;
    gin = in;
    int64_t got;
    assert_int_equal(core_tz_mktime(z, &in, &got), TWIN_OK);
    if (got != T + ks[i])
      fail_msg("%s: gap at %lld: local +%ld s gave %lld, want %lld", name,
               (long long)T, ks[i], (long long)got, (long long)(T + ks[i]));
    time_t gt = mktime(&gin);
    if ((int64_t)gt != got)
      fail_msg("%s: gap at %lld: local +%ld s: glibc %lld, core_tz %lld", name,
               (long long)T, ks[i], (long long)gt, (long long)got);
  }
}

/* Compare [from, to) at a stride, and every change found closely. */
static void sweep(const core_tz *z, const char *name, int64_t from, int64_t to,
                  int64_t stride)
{
  struct tm prev = glibc_local(from);
  int64_t prev_t = from;
  for (int64_t t = from; t < to; t += stride) {
    struct tm g = expect_local(z, name, t);
    expect_mktime(z, name, t, &g);
    if (g.tm_gmtoff != prev.tm_gmtoff || !g.tm_isdst != !prev.tm_isdst ||
        strcmp(g.tm_zone, prev.tm_zone)) {
      around_change(z, name, find_change(prev_t, t));
      g = glibc_local(t);
    }
    prev = g;
    prev_t = t;
  }
}

static const core_tz *zone(const char *name)
{
  core_err err;
  const core_tz *z = core_tz_get(name, &err);
  if (!z)
    fail_msg("%s: %s", name, err.msg);
  return z;
}

static void local_time_and_mktime_match_glibc_1970_to_2040(void **state)
{
  (void)state;
  for (size_t i = 0; i < N_ZONES; i++) {
    const core_tz *z = zone(zones[i]);
    glibc_zone(zones[i]);
    sweep(z, zones[i], 0, civil(2040, 1, 1), 3601 * 5);
  }
}

static void local_time_matches_glibc_before_1970(void **state)
{
  (void)state;
  for (size_t i = 0; i < N_ZONES; i++) {
    const core_tz *z = zone(zones[i]);
    glibc_zone(zones[i]);
    sweep(z, zones[i], civil(1901, 12, 14), 0, 3601 * 11);
  }
}

/* After the files' last transition only the footer rule tells. */
static void far_future_follows_the_footer_rule(void **state)
{
  (void)state;
  for (size_t i = 0; i < N_ZONES; i++) {
    const core_tz *z = zone(zones[i]);
    glibc_zone(zones[i]);
    sweep(z, zones[i], civil(2099, 1, 1), civil(2101, 1, 1), 3601);
    sweep(z, zones[i], civil(2400, 2, 1), civil(2400, 12, 1), 3601 * 3);
  }
  print_message("mktime: %ld wall times occurring twice (earlier instance "
                "taken); glibc chose the other instance %ld times\n",
                mktime_ambiguous, mktime_glibc_other);
}

static void known_instants_in_berlin(void **state)
{
  (void)state;
  const core_tz *z = zone("Europe/Berlin");
  struct tm tm;
  /* 2026-07-01T10:00:00Z is 12:00 CEST, a Wednesday. */
  assert_int_equal(core_tz_local(z, civil(2026, 7, 1) + 36000, &tm), TWIN_OK);
  assert_int_equal(tm.tm_hour, 12);
  assert_int_equal(tm.tm_isdst, 1);
  assert_int_equal(tm.tm_gmtoff, 7200);
  assert_int_equal(tm.tm_wday, 3);
  assert_string_equal(tm.tm_zone, "CEST");
  /* 2027-03-28 02:30 does not exist: 03:30 CEST (01:30Z). */
  struct tm in = {.tm_year = 127,
                  .tm_mon = 2,
                  .tm_mday = 28,
                  .tm_hour = 2,
                  .tm_min = 30,
                  .tm_isdst = -1};
  int64_t t;
  assert_int_equal(core_tz_mktime(z, &in, &t), TWIN_OK);
  assert_true(t == civil(2027, 3, 28) + 5400);
  assert_int_equal(in.tm_hour, 3);
  assert_int_equal(in.tm_isdst, 1);
  /* 2027-10-31 02:30 happens twice: the first (CEST, 00:30Z). */
  in = (struct tm){.tm_year = 127,
                   .tm_mon = 9,
                   .tm_mday = 31,
                   .tm_hour = 2,
                   .tm_min = 30,
                   .tm_isdst = 0};
  assert_int_equal(core_tz_mktime(z, &in, &t), TWIN_OK);
  assert_true(t == civil(2027, 10, 31) + 1800);
  assert_int_equal(in.tm_isdst, 1);
}

static void mktime_normalises_fields_like_glibc(void **state)
{
  (void)state;
  const core_tz *z = zone("Europe/Berlin");
  glibc_zone("Europe/Berlin");
  const struct tm cases[] = {
      {.tm_year = 126, .tm_mon = 12, .tm_mday = 1, .tm_hour = 12},
      {.tm_year = 126, .tm_mon = -1, .tm_mday = 15},
      {.tm_year = 126, .tm_mon = 2, .tm_mday = 0},
      {.tm_year = 126, .tm_mon = 1, .tm_mday = 29, .tm_hour = 25},
      {.tm_year = 126, .tm_mon = 0, .tm_mday = 400, .tm_min = -90},
      {.tm_year = 126, .tm_mon = 5, .tm_mday = 1, .tm_sec = 100000},
      {.tm_year = 124, .tm_mon = 1, .tm_mday = 29, .tm_hour = -1},
      {.tm_year = 126, .tm_mon = 27, .tm_mday = -40, .tm_sec = -7},
      {.tm_year = 70, .tm_mon = 0, .tm_mday = 1},
      {.tm_year = -100, .tm_mon = 6, .tm_mday = 4, .tm_hour = 12},
      {.tm_year = 8100, .tm_mon = 6, .tm_mday = 4, .tm_hour = 12},
  };
  for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
    struct tm a = cases[i], b = cases[i];
    a.tm_isdst = b.tm_isdst = -1;
    int64_t t;
    assert_int_equal(core_tz_mktime(z, &a, &t), TWIN_OK);
    time_t g = mktime(&b);
    if ((int64_t)g != t || !same_tm(&a, &b))
      fail_msg("case %zu: glibc %lld, core_tz %lld", i, (long long)g,
               (long long)t);
  }
}

/* ---- footers --------------------------------------------------------- */

static void be32(uint8_t *p, uint32_t v)
{
  p[0] = (uint8_t)(v >> 24);
  p[1] = (uint8_t)(v >> 16);
  p[2] = (uint8_t)(v >> 8);
  p[3] = (uint8_t)v;
}

/* A version 2 file with no transitions, one type (offset off, abbr) and
 * footer; len receives its size. Caller frees. */
static uint8_t *tzif_footer_only(int32_t off, const char *abbr,
                                 const char *footer, size_t *len)
{
  size_t chars = strlen(abbr) + 1, flen = strlen(footer);
  size_t v1 = 6 + chars, v2 = 6 + chars;
  size_t n = 44 + v1 + 44 + v2 + flen + 2;
  uint8_t *b = calloc(1, n), *p = b;
  assert_non_null(b);
  for (int h = 0; h < 2; h++) {
    memcpy(p, "TZif2", 5);
    be32(p + 36, 1);
    be32(p + 40, (uint32_t)chars);
    p += 44;
    be32(p, (uint32_t)off);
    p[4] = 0;
    p[5] = 0;
    memcpy(p + 6, abbr, chars);
    p += 6 + chars;
  }
  *p++ = '\n';
  memcpy(p, footer, flen);
  p[flen] = '\n';
  *len = n;
  return b;
}

static void posix_footers_of_every_shape_match_glibc(void **state)
{
  (void)state;
  /* glibc reads these TZ strings directly, without a file. */
  static const char *const footers[] = {
      "<+03>-3",
      "<-0330>3:30",
      "XST3XDT,J60/2,J300/3",
      "XST3XDT,59/2,299/3",
      "AAA-10BBB,M10.1.0,M4.1.0/3",
      "<-02>2<-01>,M3.5.0/-1,M10.5.0/0",
      "IST-2IDT,M3.4.4/26,M10.5.0",
      "EET-2EEST,M3.4.4/50,M10.4.4/50",
      "XST5XDT4:30,M3.2.0/2:30:15,M11.1.0/1:00",
      "<+1030>-10:30<+11>-11,M10.1.0,M4.1.0",
      "CET-1CEST,M3.5.0,M10.5.0/3",
  };
  for (size_t i = 0; i < sizeof footers / sizeof *footers; i++) {
    size_t len;
    uint8_t *b = tzif_footer_only(0, "LMT", footers[i], &len);
    core_tz *z = NULL;
    core_err err;
    if (core_tz_parse(b, len, footers[i], &z, &err) != TWIN_OK)
      fail_msg("%s: %s", footers[i], err.msg);
    free(b);
    glibc_zone(footers[i]);
    sweep(z, footers[i], civil(2023, 1, 1), civil(2026, 1, 1), 3601 * 3);
    sweep(z, footers[i], civil(2099, 12, 1), civil(2100, 12, 31), 3601 * 3);
    core_tz_free(z);
  }
}

/*
 * "XST3XDT,J1/0,J365/25" is how RFC 8536 (3.3.1) spells daylight time all
 * year: it ends at 25:00 on December 31, after the next year's start. It is
 * daylight time at every instant, also in the hours after New Year UTC, where
 * glibc (which takes the start and end of the UTC year only) says XST.
 */
static void a_permanent_dst_footer_is_dst_all_year(void **state)
{
  (void)state;
  size_t len;
  uint8_t *b = tzif_footer_only(0, "LMT", "XST3XDT,J1/0,J365/25", &len);
  core_tz *z = NULL;
  core_err err;
  assert_int_equal(core_tz_parse(b, len, "Perm", &z, &err), TWIN_OK);
  free(b);
  for (int64_t t = civil(2023, 12, 30); t < civil(2025, 1, 3); t += 1800) {
    struct tm tm;
    assert_int_equal(core_tz_local(z, t, &tm), TWIN_OK);
    if (!tm.tm_isdst || tm.tm_gmtoff != -7200 || strcmp(tm.tm_zone, "XDT"))
      fail_msg("at %lld: dst %d off %ld %s", (long long)t, tm.tm_isdst,
               tm.tm_gmtoff, tm.tm_zone);
    struct tm in = tm;
    int64_t back;
    in.tm_isdst = -1;
    assert_int_equal(core_tz_mktime(z, &in, &back), TWIN_OK);
    assert_true(back == t);
  }
  core_tz_free(z);
}

/* ---- damaged files ---------------------------------------------------- */

static uint8_t *zone_file(const char *name, size_t *len)
{
  const char *dir = core_tz_dir();
  char *path = tu_fmt("%s/%s", dir, name), *text = NULL;
  core_err err;
  if (core_read_file(path, &text, len, &err) != TWIN_OK)
    fail_msg("%s", err.msg);
  free(path);
  return (uint8_t *)text;
}

static void expect_refused(const uint8_t *b, size_t len, const char *what,
                           const char *needle)
{
  core_tz *z = (core_tz *)1;
  core_err err;
  err.msg[0] = 0;
  int rc = core_tz_parse(b, len, "Test/Zone", &z, &err);
  if (rc == TWIN_OK)
    fail_msg("%s: parsed", what);
  assert_int_equal(rc, TWIN_ERR_PARSE);
  assert_null(z);
  assert_non_null(strstr(err.msg, "Test/Zone"));
  if (needle && !strstr(err.msg, needle))
    fail_msg("%s: message \"%s\" lacks \"%s\"", what, err.msg, needle);
}

/* Offset of the second header in a v2+ file. */
static size_t second_header(const uint8_t *b)
{
  uint32_t c[6];
  for (int i = 0; i < 6; i++)
    c[i] = (uint32_t)b[20 + 4 * i] << 24 | (uint32_t)b[21 + 4 * i] << 16 |
           (uint32_t)b[22 + 4 * i] << 8 | b[23 + 4 * i];
  return 44 + (size_t)c[3] * 5 + (size_t)c[4] * 6 + c[5] + (size_t)c[2] * 8 +
         c[1] + c[0];
}

static void every_truncation_of_a_zone_file_is_refused(void **state)
{
  (void)state;
  size_t len;
  uint8_t *b = zone_file("Europe/Berlin", &len);
  core_tz *z;
  core_err err;
  assert_int_equal(core_tz_parse(b, len, "Test/Zone", &z, &err), TWIN_OK);
  core_tz_free(z);
  for (size_t n = 0; n < len; n++) {
    uint8_t *copy = malloc(n ? n : 1); /* exact size: ASan sees overreads */
    memcpy(copy, b, n);
    expect_refused(copy, n, "truncated", NULL);
    free(copy);
  }
  free(b);
}

static void damaged_headers_and_data_are_refused(void **state)
{
  (void)state;
  size_t len;
  uint8_t *b = zone_file("Europe/Berlin", &len), *c = malloc(len);
  size_t h2 = second_header(b);
  assert_memory_equal(b + h2, "TZif", 4);

  memcpy(c, b, len);
  c[0] = 'X';
  expect_refused(c, len, "bad magic", "TZif");
  memcpy(c, b, len);
  c[h2 + 1] = 'X';
  expect_refused(c, len, "bad second magic", "second header");
  memcpy(c, b, len);
  c[4] = '1';
  expect_refused(c, len, "version 1 byte", "version");
  memcpy(c, b, len);
  be32(c + 32, 0xffffffffu); /* v1 timecnt */
  expect_refused(c, len, "v1 counts past the end", "need");
  memcpy(c, b, len);
  be32(c + h2 + 32, 0x10000000u); /* v2 timecnt */
  expect_refused(c, len, "v2 counts past the end", "need");
  memcpy(c, b, len);
  be32(c + h2 + 36, 0); /* no types */
  expect_refused(c, len, "no types", "types");
  memcpy(c, b, len);
  be32(c + h2 + 24, 1); /* isstdcnt neither 0 nor typecnt */
  expect_refused(c, len, "indicator count", "indicators");

  /* Inside the 64-bit block: counts of Berlin's own file. */
  uint32_t timecnt = (uint32_t)c[h2 + 32] << 24 | (uint32_t)c[h2 + 33] << 16 |
                     (uint32_t)c[h2 + 34] << 8 | c[h2 + 35];
  size_t data = h2 + 44;
  assert_true(timecnt > 2);
  memcpy(c, b, len);
  memcpy(c + data + 8, c + data, 8); /* transition 1 equals transition 0 */
  expect_refused(c, len, "unordered transitions", "not after");
  memcpy(c, b, len);
  c[data + 8 * timecnt] = 0xff; /* type index of transition 0 */
  expect_refused(c, len, "type index", "type");
  memcpy(c, b, len);
  be32(c + data + 9 * timecnt, 0x7fffffffu); /* offset of type 0 */
  expect_refused(c, len, "offset", "malformed");
  memcpy(c, b, len);
  c[data + 9 * timecnt + 5] = 0xff; /* designation index of type 0 */
  expect_refused(c, len, "designation", "designation");

  /* The footer. */
  memcpy(c, b, len);
  c[len - 1] = 'x';
  expect_refused(c, len, "unterminated footer", "footer");
  const char *bad[] = {"CET-1CEST,M13.5.0,M10.5.0/3",
                       "CET",
                       "C-1",
                       "CET-1CEST,M3.5.0",
                       "CET-25",
                       "<CET-1",
                       "CET-1CEST,M3.5.0,M10.5.0/168",
                       "CET-1CEST,J0,J5",
                       "CET-1CEST,366,5",
                       "CET-1CEST,M3.6.0,M10.5.0",
                       "CET-1CEST,M3.5.7,M10.5.0",
                       "CET-1CEST,M3.5.0,M10.5.0x",
                       "CET-1:60"};
  for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
    size_t n;
    uint8_t *f = tzif_footer_only(3600, "CET", bad[i], &n);
    expect_refused(f, n, bad[i], "footer");
    free(f);
  }
  free(c);
  free(b);
}

/* A version 1 file (only 32-bit data, no footer) still reads. */
static void a_version_1_file_reads_its_32_bit_data(void **state)
{
  (void)state;
  size_t len;
  uint8_t *b = zone_file("Europe/Berlin", &len);
  b[4] = 0;
  core_tz *z = NULL;
  core_err err;
  if (core_tz_parse(b, second_header(b), "Berlin/v1", &z, &err) != TWIN_OK)
    fail_msg("%s", err.msg);
  glibc_zone("Europe/Berlin");
  sweep(z, "Berlin/v1", 0, civil(2037, 1, 1), 3601 * 7);
  core_tz_free(z);
  free(b);
}

/* ---- the cache and the lookup ------------------------------------------ */

static void zones_are_loaded_once_and_bad_names_refused(void **state)
{
  (void)state;
  core_err err;
  const core_tz *a = core_tz_get("Europe/Berlin", &err);
  assert_non_null(a);
  assert_ptr_equal(core_tz_get("Europe/Berlin", &err), a);
  assert_string_equal(core_tz_name(a), "Europe/Berlin");
  assert_ptr_equal(core_tz_get("UTC", &err), core_tz_utc());
  assert_ptr_equal(core_tz_get("", &err), core_tz_utc());

  assert_null(core_tz_get("../../etc/passwd", &err));
  assert_non_null(strstr(err.msg, "not a zone name"));
  assert_null(core_tz_get("Nowhere/Atlantis", &err));
  assert_non_null(strstr(err.msg, "Nowhere/Atlantis"));
  assert_non_null(strstr(err.msg, "TZDIR"));
  assert_null(core_tz_get("zone.tab", &err)); /* a file, not a zone */
  assert_non_null(strstr(err.msg, "zone.tab"));
  assert_ptr_equal(core_tz_get_or_utc("Nowhere/Atlantis"), core_tz_utc());
  assert_ptr_equal(core_tz_get_or_utc("Europe/Berlin"), a);

  /* A damaged file in a TZDIR of our own: refused, naming the file. */
  char *dir = tu_tempdir();
  free(tu_write_file(dir, "Bad", "TZif2 this is not a zone"));
  char *old = getenv("TZDIR") ? strdup(getenv("TZDIR")) : NULL;
  setenv("TZDIR", dir, 1);
  assert_null(core_tz_get("Bad", &err));
  assert_non_null(strstr(err.msg, "/Bad"));
  assert_true(core_tz_in_database(dir, "Bad"));
  assert_false(core_tz_in_database(dir, "Missing"));
  if (old)
    setenv("TZDIR", old, 1);
  else
    unsetenv("TZDIR");
  free(old);
  tu_rmtree(dir);
  free(dir);

  core_tz_cache_clear();
  const core_tz *b = core_tz_get("Europe/Berlin", &err);
  assert_non_null(b);
  struct tm tm;
  assert_int_equal(core_tz_local(b, 0, &tm), TWIN_OK);
  assert_int_equal(tm.tm_hour, 1);
}

static void out_of_range_times_are_refused(void **state)
{
  (void)state;
  const core_tz *z = zone("Europe/Berlin");
  struct tm tm;
  assert_int_equal(core_tz_local(z, INT64_MAX, &tm), TWIN_ERR_INVALID);
  assert_int_equal(core_tz_local(z, INT64_MIN, &tm), TWIN_ERR_INVALID);
  struct tm in = {
      .tm_year = 2147483640, .tm_mon = 11, .tm_mday = 31, .tm_hour = 23};
  int64_t t;
  in.tm_isdst = -1;
  in.tm_sec = 2147483647; /* runs past the last representable year */
  assert_int_equal(core_tz_mktime(z, &in, &t), TWIN_ERR_INVALID);
  assert_int_equal(in.tm_year, 2147483640); /* unchanged */
}

int main(void)
{
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(known_instants_in_berlin),
      cmocka_unit_test(local_time_and_mktime_match_glibc_1970_to_2040),
      cmocka_unit_test(local_time_matches_glibc_before_1970),
      cmocka_unit_test(far_future_follows_the_footer_rule),
      cmocka_unit_test(mktime_normalises_fields_like_glibc),
      cmocka_unit_test(posix_footers_of_every_shape_match_glibc),
      cmocka_unit_test(a_permanent_dst_footer_is_dst_all_year),
      cmocka_unit_test(every_truncation_of_a_zone_file_is_refused),
      cmocka_unit_test(damaged_headers_and_data_are_refused),
      cmocka_unit_test(a_version_1_file_reads_its_32_bit_data),
      cmocka_unit_test(zones_are_loaded_once_and_bad_names_refused),
      cmocka_unit_test(out_of_range_times_are_refused),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
