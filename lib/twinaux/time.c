/*
 * time.c — RFC 3339 date-times to twin_time and back, on a proleptic
 * Gregorian calendar computed with integer arithmetic (the days_from_civil
 * and civil_from_days algorithms Howard Hinnant published in "chrono-
 * Compatible Low-Level Date Algorithms"), so no call depends on the C
 * library's time zone state, locale or time_t range.
 */
#include <stdint.h>
#include <string.h>

#include "twin/twinaux.h"

#define MS_PER_DAY INT64_C(86400000)
/* Days in a 400-year Gregorian era, and from 0000-03-01 to 1970-01-01. */
#define DAYS_PER_ERA 146097
#define EPOCH_SHIFT 719468
/* Years beyond this saturate days_from_civil instead of overflowing; it is
 * far beyond the +-292 million years twin_time reaches. */
#define YEAR_LIMIT (INT64_C(1) << 50)

/* Floor division and its remainder (C rounds toward zero). */
static int64_t floor_div(int64_t a, int64_t b)
{
  int64_t q = a / b;
  return (a % b != 0 && (a < 0) != (b < 0)) ? q - 1 : q;
}

static int is_leap(int64_t y)
{
  return y % 4 == 0 && (y % 100 != 0 || y % 400 == 0);
}

static int days_in_month(int64_t y, int m)
{
  static const unsigned char days[12] = {31, 28, 31, 30, 31, 30,
                                         31, 31, 30, 31, 30, 31};
  return m == 2 && is_leap(y) ? 29 : days[m - 1];
}

int64_t twinaux_days_from_civil(int64_t year, int month, int day)
{
  /* A month outside 1..12 carries into the year and day counts from the
   * first of the month, as timegm normalizes: no input is undefined. */
  int64_t m0 = (int64_t)month - 1;
  int64_t carry = floor_div(m0, 12);
  if (year > YEAR_LIMIT || year < -YEAR_LIMIT)
    return year > 0 ? INT64_MAX : INT64_MIN;
  int64_t y = year + carry;
  int64_t m = m0 - carry * 12 + 1; /* 1..12 */
  /* Count years from March, so the leap day is the last day of a year. */
  y -= m <= 2;
  int64_t era = floor_div(y, 400);
  int64_t yoe = y - era * 400;                           /* 0..399 */
  int64_t doy = (153 * (m > 2 ? m - 3 : m + 9) + 2) / 5; /* 0..365 */
  int64_t doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;   /* 0..146096 */
  return era * DAYS_PER_ERA + doe - EPOCH_SHIFT + ((int64_t)day - 1);
}

void twinaux_civil_from_days(int64_t days, int64_t *year, int *month, int *day)
{
  /* Split into eras first and shift to 0000-03-01 after, through the
   * remainder, so that no int64 input overflows. */
  int64_t era = floor_div(days, DAYS_PER_ERA);
  int64_t doe = days % DAYS_PER_ERA;
  if (doe < 0)
    doe += DAYS_PER_ERA;
  doe += EPOCH_SHIFT;
  era += doe / DAYS_PER_ERA;
  doe %= DAYS_PER_ERA; /* 0..146096 */
  int64_t yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
  int64_t doy = doe - (365 * yoe + yoe / 4 - yoe / 100); /* 0..365 */
  int64_t mp = (5 * doy + 2) / 153;                      /* 0..11 */
  int d = (int)(doy - (153 * mp + 2) / 5 + 1);
  int m = (int)(mp < 10 ? mp + 3 : mp - 9);
  if (year)
    *year = yoe + era * 400 + (m <= 2);
  if (month)
    *month = m;
  if (day)
    *day = d;
}

/* Exactly n ASCII digits at *p (before end): their value, and *p past them.
 * Only '0'..'9' count, so a NUL or a non-ASCII digit is refused. */
static int digits(const char **p, const char *end, int n, int *out)
{
  if (end - *p < n)
    return 0;
  int v = 0;
  for (int i = 0; i < n; i++) {
    char c = (*p)[i];
    if (c < '0' || c > '9')
      return 0;
    v = v * 10 + (c - '0');
  }
  *p += n;
  *out = v;
  return 1;
}

static int literal(const char **p, const char *end, char c)
{
  if (*p == end || **p != c)
    return 0;
  (*p)++;
  return 1;
}

int twinaux_time_parse(const char *s, size_t len, int flags, twin_time *out)
{
  if (!s || !out)
    return TWIN_ERR_PARSE;
  const char *p = s, *end = s + len;
  int y, mo, d, h, mi, sec;
  if (!digits(&p, end, 4, &y) || !literal(&p, end, '-') ||
      !digits(&p, end, 2, &mo) || !literal(&p, end, '-') ||
      !digits(&p, end, 2, &d))
    return TWIN_ERR_PARSE;
  if (mo < 1 || mo > 12 || d < 1 || d > days_in_month(y, mo))
    return TWIN_ERR_PARSE;
  /* A date alone names a day, not an instant: refuse it. */
  if (p == end ||
      !(*p == 'T' || *p == 't' || (*p == ' ' && (flags & TWINAUX_TIME_SPACE))))
    return TWIN_ERR_PARSE;
  p++;
  if (!digits(&p, end, 2, &h) || !literal(&p, end, ':') ||
      !digits(&p, end, 2, &mi) || !literal(&p, end, ':') ||
      !digits(&p, end, 2, &sec))
    return TWIN_ERR_PARSE;
  /* twin_time counts no leap seconds, so :60 has no value to give. */
  if (h > 23 || mi > 59 || sec > 59)
    return TWIN_ERR_PARSE;
  int ms = 0;
  if (p < end && *p == '.') {
    p++;
    const char *first = p;
    for (; p < end && *p >= '0' && *p <= '9'; p++)
      if (p - first < 3)
        ms = ms * 10 + (*p - '0');
    if (p == first)
      return TWIN_ERR_PARSE;
    for (ptrdiff_t n = p - first; n < 3; n++)
      ms *= 10; /* ".5" is 500 ms */
  }
  int offset_min = 0;
  if (p == end) {
    if (!(flags & TWINAUX_TIME_ZONE_OPTIONAL))
      return TWIN_ERR_PARSE;
  } else if (*p == 'Z' || *p == 'z') {
    p++;
  } else if (*p == '+' || *p == '-') {
    int sign = *p++ == '-' ? -1 : 1, oh, om;
    if (!digits(&p, end, 2, &oh) || !literal(&p, end, ':') ||
        !digits(&p, end, 2, &om) || oh > 23 || om > 59)
      return TWIN_ERR_PARSE;
    offset_min = sign * (oh * 60 + om);
  } else {
    return TWIN_ERR_PARSE;
  }
  if (p != end)
    return TWIN_ERR_PARSE;
  int64_t secs = twinaux_days_from_civil(y, mo, d) * 86400 + h * 3600 +
                 mi * 60 + sec - (int64_t)offset_min * 60;
  *out = secs * 1000 + ms;
  return TWIN_OK;
}

/* v (>= 0) as exactly width digits, zero-padded, at p; p past them. */
static char *put_digits(char *p, int64_t v, int width)
{
  for (int i = width - 1; i >= 0; i--, v /= 10)
    p[i] = (char)('0' + v % 10);
  return p + width;
}

size_t twinaux_time_format(twin_time t, int flags, char *buf, size_t size)
{
  int64_t days = floor_div(t, MS_PER_DAY);
  /* From the remainder, not t - days * MS_PER_DAY: for the earliest
   * twin_time that product is below INT64_MIN. */
  int64_t ms_of_day = t % MS_PER_DAY;
  if (ms_of_day < 0)
    ms_of_day += MS_PER_DAY; /* 0..86399999 */
  int64_t year;
  int month, day;
  twinaux_civil_from_days(days, &year, &month, &day);

  /* The longest: "+292278994-08-17T07:12:55.807Z", 30 bytes. */
  char tmp[40], *p = tmp;
  if (year < 0 || year > 9999) {
    *p++ = year < 0 ? '-' : '+';
    /* Negate as unsigned: no year twin_time reaches is near INT64_MIN, but
     * civil_from_days is defined for every input. */
    uint64_t mag = year < 0 ? 0 - (uint64_t)year : (uint64_t)year;
    int width = 4;
    for (uint64_t v = mag; v >= 10000; v /= 10)
      width++;
    p = put_digits(p, (int64_t)mag, width);
  } else {
    p = put_digits(p, year, 4);
  }
  *p++ = '-';
  p = put_digits(p, month, 2);
  *p++ = '-';
  p = put_digits(p, day, 2);
  *p++ = 'T';
  p = put_digits(p, ms_of_day / 3600000, 2);
  *p++ = ':';
  p = put_digits(p, ms_of_day / 60000 % 60, 2);
  *p++ = ':';
  p = put_digits(p, ms_of_day / 1000 % 60, 2);
  if (ms_of_day % 1000 != 0 || (flags & TWINAUX_TIME_MS)) {
    *p++ = '.';
    p = put_digits(p, ms_of_day % 1000, 3);
  }
  *p++ = 'Z';

  size_t n = (size_t)(p - tmp);
  if (!buf || size <= n) {
    if (buf && size > 0)
      buf[0] = '\0';
    return 0;
  }
  memcpy(buf, tmp, n);
  buf[n] = '\0';
  return n;
}
