/*
 * tz.c — local time in a named zone (see tz.h): parses TZif files and their
 * POSIX TZ footer into immutable zones, answers UTC -> local and local ->
 * UTC from them without the C library's process-wide TZ, and caches loaded
 * zones for the life of the process.
 */
#include "tz.h"

#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* A zone file is a few KiB; anything far bigger is not one. */
#define TZ_FILE_MAX (1u << 20)
#define HEADER_LEN 44
/* Abbreviations in a footer: POSIX asks for at least 3 bytes, zic writes at
 * most 6. */
#define ABBR_MIN 3
#define ABBR_MAX 15
/* UT offsets a file may use (RFC 8536 3.2: -24:59:59 .. 25:59:59). */
#define OFF_MIN (-89999)
#define OFF_MAX 93599
/* |seconds| accepted; keeps every sum below far from overflow. Years this
 * far out no longer fit tm_year and are refused anyway. */
#define SEC_LIMIT ((int64_t)1 << 57)
#define DAY 86400

typedef struct tz_type {
  int32_t off; /* seconds east of UTC */
  uint8_t isdst;
  uint8_t abbr; /* index into abbrs */
} tz_type;

/* One date of a POSIX rule: Jn (1..365, February 29 never counted), n
 * (0..365, counted) or Mm.w.d, and the local time of day of the change. */
typedef struct tz_date {
  char kind; /* 'J', 'D' or 'M' */
  int n, m, w, d;
  int32_t secs; /* -167h..167h (RFC 8536 version 3) */
} tz_date;

typedef struct tz_rule {
  int32_t std_off, dst_off; /* seconds east of UTC */
  int has_dst;
  tz_date start, end; /* start in standard time, end in daylight time */
  char std_abbr[ABBR_MAX + 1], dst_abbr[ABBR_MAX + 1];
} tz_rule;

struct core_tz {
  char *name;
  size_t n_trans, n_types;
  int64_t *trans; /* ascending */
  uint8_t *trans_type;
  tz_type *types;
  char *abbrs; /* the file's designations plus a final NUL */
  int has_rule;
  tz_rule rule; /* the footer: times from the last transition on */
};

/* A stretch of time with one offset: [start, end). */
typedef struct tz_seg {
  int64_t start, end;
  int32_t off;
  int isdst;
  const char *abbr;
} tz_seg;

static tz_type utc_type = {0, 0, 0};
static char utc_abbrs[] = "UTC";
static char utc_name[] = "UTC";
static core_tz utc_zone = {
    .name = utc_name, .n_types = 1, .types = &utc_type, .abbrs = utc_abbrs};

/* ------------------------------------------------------------------------ */
/* Calendar                                                                 */
/* ------------------------------------------------------------------------ */

static int64_t floor_div(int64_t a, int64_t b)
{
  int64_t q = a / b;
  if (a % b < 0)
    q--;
  return q;
}

static int is_leap(int64_t y)
{
  return y % 4 == 0 && (y % 100 != 0 || y % 400 == 0);
}

static int month_len(int64_t y, int m)
{
  static const int len[12] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
  return len[m - 1] + (m == 2 && is_leap(y));
}

/* Days since 1970-01-01 of y-m-d, proleptic Gregorian (m 1..12). */
static int64_t days_from_civil(int64_t y, int m, int64_t d)
{
  y -= m <= 2;
  int64_t era = floor_div(y, 400);
  int64_t yoe = y - era * 400;
  int64_t doy = (153 * (m > 2 ? m - 3 : m + 9) + 2) / 5 + d - 1;
  int64_t doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
  return era * 146097 + doe - 719468;
}

void core_civil_from_days(int64_t z, int64_t *y, int *m, int *d)
{
  z += 719468;
  int64_t era = floor_div(z, 146097);
  int64_t doe = z - era * 146097;
  int64_t yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
  int64_t doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
  int64_t mp = (5 * doy + 2) / 153;
  *d = (int)(doy - (153 * mp + 2) / 5 + 1);
  *m = (int)(mp < 10 ? mp + 3 : mp - 9);
  *y = yoe + era * 400 + (*m <= 2);
}

/* 0 = Sunday; 1970-01-01 was a Thursday. */
static int weekday(int64_t days)
{
  return (int)((days % 7 + 11) % 7);
}

/* ------------------------------------------------------------------------ */
/* The footer: a POSIX TZ string                                            */
/* ------------------------------------------------------------------------ */

static int is_digit(char c)
{
  return c >= '0' && c <= '9';
}

static int is_alpha(char c)
{
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
}

/* "CET" or "<+0530>". NULL when malformed. */
static const char *parse_abbr(const char *s, char *out)
{
  size_t n = 0;
  if (*s == '<') {
    for (s++; *s != '>'; s++) {
      if (!(is_alpha(*s) || is_digit(*s) || *s == '+' || *s == '-') ||
          n == ABBR_MAX)
        return NULL;
      out[n++] = *s;
    }
    s++;
  } else {
    for (; is_alpha(*s); s++) {
      if (n == ABBR_MAX)
        return NULL;
      out[n++] = *s;
    }
  }
  out[n] = 0;
  return n >= ABBR_MIN ? s : NULL;
}

/* An unsigned number of 1..max_digits digits, at most max. */
static const char *parse_num(const char *s, int max_digits, int max, int *out)
{
  int v = 0, n = 0;
  for (; is_digit(*s) && n < max_digits; s++, n++)
    v = v * 10 + (*s - '0');
  if (!n || is_digit(*s) || v > max)
    return NULL;
  *out = v;
  return s;
}

/* [+-]hh[:mm[:ss]] with hh <= max_hours, as signed seconds. */
static const char *parse_hms(const char *s, int max_hours, int32_t *out)
{
  int sign = 1, h, m = 0, sec = 0;
  if (*s == '+' || *s == '-')
    sign = *s++ == '-' ? -1 : 1;
  if (!(s = parse_num(s, 3, max_hours, &h)))
    return NULL;
  if (*s == ':' && !(s = parse_num(s + 1, 2, 59, &m)))
    return NULL;
  if (*s == ':' && !(s = parse_num(s + 1, 2, 59, &sec)))
    return NULL;
  *out = sign * (h * 3600 + m * 60 + sec);
  return s;
}

static const char *parse_date(const char *s, tz_date *d)
{
  memset(d, 0, sizeof *d);
  if (*s == 'J') {
    d->kind = 'J';
    if (!(s = parse_num(s + 1, 3, 365, &d->n)) || d->n < 1)
      return NULL;
  } else if (*s == 'M') {
    d->kind = 'M';
    if (!(s = parse_num(s + 1, 2, 12, &d->m)) || d->m < 1 || *s != '.' ||
        !(s = parse_num(s + 1, 1, 5, &d->w)) || d->w < 1 || *s != '.' ||
        !(s = parse_num(s + 1, 1, 6, &d->d)))
      return NULL;
  } else {
    d->kind = 'D';
    if (!(s = parse_num(s, 3, 365, &d->n)))
      return NULL;
  }
  d->secs = 2 * 3600;
  if (*s == '/' && !(s = parse_hms(s + 1, 167, &d->secs)))
    return NULL;
  return s;
}

/* "CET-1CEST,M3.5.0,M10.5.0/3". 1: parsed, 0: malformed. */
static int parse_rule(const char *s, tz_rule *r)
{
  int32_t v;
  memset(r, 0, sizeof *r);
  if (!(s = parse_abbr(s, r->std_abbr)) || !(s = parse_hms(s, 24, &v)))
    return 0;
  r->std_off = -v; /* POSIX counts west */
  if (!*s)
    return 1;
  r->has_dst = 1;
  if (!(s = parse_abbr(s, r->dst_abbr)))
    return 0;
  r->dst_off = r->std_off + 3600;
  if (*s && *s != ',') {
    if (!(s = parse_hms(s, 24, &v)))
      return 0;
    r->dst_off = -v;
  }
  if (!*s) { /* no rule given: the US rule, as glibc assumes */
    parse_date("M3.2.0", &r->start);
    parse_date("M11.1.0", &r->end);
    return 1;
  }
  if (*s != ',' || !(s = parse_date(s + 1, &r->start)) || *s != ',' ||
      !(s = parse_date(s + 1, &r->end)))
    return 0;
  return *s == 0;
}

/* Local seconds since the epoch at which date d of year y happens. */
static int64_t date_local(const tz_date *d, int64_t y)
{
  int64_t day;
  if (d->kind == 'J')
    day = days_from_civil(y, 1, 1) + d->n - 1 + (is_leap(y) && d->n >= 60);
  else if (d->kind == 'D')
    day = days_from_civil(y, 1, 1) + d->n;
  else {
    int64_t first = days_from_civil(y, d->m, 1);
    int mday = (d->d - weekday(first) + 7) % 7 + 1 + (d->w - 1) * 7;
    while (mday > month_len(y, d->m))
      mday -= 7;
    day = first + mday - 1;
  }
  return day * DAY + d->secs;
}

/* The footer's stretch around t: the changes of the years around t's UTC
 * year, in time order, and the last one at or before t. */
static void rule_seg(const tz_rule *r, int64_t t, tz_seg *s)
{
  s->start = INT64_MIN;
  s->end = INT64_MAX;
  s->off = r->std_off;
  s->isdst = 0;
  s->abbr = r->std_abbr;
  if (!r->has_dst)
    return;
  int64_t y, at[10];
  int m, d, dst[10], n = 0;
  core_civil_from_days(floor_div(t, DAY), &y, &m, &d);
  for (int64_t yy = y - 2; yy <= y + 2; yy++) {
    at[n] = date_local(&r->start, yy) - r->std_off;
    dst[n++] = 1;
    at[n] = date_local(&r->end, yy) - r->dst_off;
    dst[n++] = 0;
  }
  for (int i = 1; i < n; i++) /* stable: a tie keeps the year's order */
    for (int j = i; j > 0 && at[j - 1] > at[j]; j--) {
      int64_t ta = at[j];
      int td = dst[j];
      at[j] = at[j - 1];
      dst[j] = dst[j - 1];
      at[j - 1] = ta;
      dst[j - 1] = td;
    }
  int k = -1;
  for (int i = 0; i < n; i++)
    if (at[i] <= t)
      k = i;
  int on = k >= 0 ? dst[k] : dst[n - 1];
  if (k >= 0)
    s->start = at[k];
  if (k + 1 < n)
    s->end = at[k + 1];
  if (on) {
    s->off = r->dst_off;
    s->isdst = 1;
    s->abbr = r->dst_abbr;
  }
}

/* ------------------------------------------------------------------------ */
/* Lookups                                                                  */
/* ------------------------------------------------------------------------ */

static void type_seg(const core_tz *z, size_t type, tz_seg *s)
{
  s->off = z->types[type].off;
  s->isdst = z->types[type].isdst;
  s->abbr = z->abbrs + z->types[type].abbr;
}

/* The stretch of z that holds t. Before the first transition the first
 * type applies (RFC 8536 3.2); from the last one on, the footer when there
 * is one (also for a file without transitions). */
static void seg_at(const core_tz *z, int64_t t, tz_seg *s)
{
  size_t n = z->n_trans;
  if (z->has_rule && (!n || t >= z->trans[n - 1])) {
    rule_seg(&z->rule, t, s);
    if (n && s->start < z->trans[n - 1])
      s->start = z->trans[n - 1];
    return;
  }
  if (!n || t < z->trans[0]) {
    type_seg(z, 0, s);
    s->start = INT64_MIN;
    s->end = n ? z->trans[0] : INT64_MAX;
    return;
  }
  size_t lo = 0, hi = n; /* trans[lo] <= t < trans[hi] */
  while (hi - lo > 1) {
    size_t mid = lo + (hi - lo) / 2;
    if (z->trans[mid] <= t)
      lo = mid;
    else
      hi = mid;
  }
  type_seg(z, z->trans_type[lo], s);
  s->start = z->trans[lo];
  s->end = hi < n ? z->trans[hi] : INT64_MAX;
}

static int fill_tm(int64_t t, const tz_seg *s, struct tm *tm)
{
  int64_t lt = t + s->off, days = floor_div(lt, DAY), rem = lt - days * DAY;
  int64_t y;
  int m, d;
  core_civil_from_days(days, &y, &m, &d);
  if (y - 1900 < INT_MIN || y - 1900 > INT_MAX)
    return TWIN_ERR_INVALID;
  tm->tm_year = (int)(y - 1900);
  tm->tm_mon = m - 1;
  tm->tm_mday = d;
  tm->tm_hour = (int)(rem / 3600);
  tm->tm_min = (int)(rem / 60 % 60);
  tm->tm_sec = (int)(rem % 60);
  tm->tm_wday = weekday(days);
  tm->tm_yday = (int)(days - days_from_civil(y, 1, 1));
  tm->tm_isdst = s->isdst;
  tm->tm_gmtoff = s->off;
  tm->tm_zone = s->abbr;
  return TWIN_OK;
}

int core_tz_local(const core_tz *z, int64_t utc_sec, struct tm *tm)
{
  if (utc_sec < -SEC_LIMIT || utc_sec > SEC_LIMIT)
    return TWIN_ERR_INVALID;
  tz_seg s;
  seg_at(z, utc_sec, &s);
  return fill_tm(utc_sec, &s, tm);
}

/*
 * The UTC time whose local time is local (seconds since the epoch as if
 * local were UTC). Every stretch within two days of it is a candidate: the
 * earliest that holds local - its offset wins; none does in a gap, where
 * the offset before the change applies. 1: found, 0: not (a file with
 * thousands of changes in those days).
 */
static int local_to_utc(const core_tz *z, int64_t local, int64_t *out)
{
  int64_t lo = local - 2 * DAY, hi = local + 2 * DAY, best = 0, gap = 0;
  int found = 0, in_gap = 0;
  tz_seg s, prev = {0};
  seg_at(z, lo, &s);
  for (int i = 0; i < 4096; i++) {
    int64_t t = local - s.off;
    if (t >= s.start && t < s.end && (!found || t < best)) {
      best = t;
      found = 1;
    }
    if (i && !in_gap && local - prev.off >= s.start &&
        local - s.off < s.start) {
      gap = local - prev.off;
      in_gap = 1;
    }
    if (s.end == INT64_MAX || s.end > hi) {
      if (found || in_gap) {
        *out = found ? best : gap;
        return 1;
      }
      return 0;
    }
    prev = s;
    seg_at(z, s.end, &s);
  }
  return 0;
}

int core_tz_mktime(const core_tz *z, struct tm *tm, int64_t *utc_sec)
{
  int64_t years = floor_div(tm->tm_mon, 12);
  int64_t y = (int64_t)tm->tm_year + 1900 + years;
  int m = (int)(tm->tm_mon - years * 12) + 1;
  int64_t days = days_from_civil(y, m, 1) + (int64_t)tm->tm_mday - 1;
  int64_t local = days * DAY + (int64_t)tm->tm_hour * 3600 +
                  (int64_t)tm->tm_min * 60 + tm->tm_sec;
  int64_t t;
  struct tm out;
  if (local < -SEC_LIMIT || local > SEC_LIMIT || !local_to_utc(z, local, &t) ||
      core_tz_local(z, t, &out) != TWIN_OK)
    return TWIN_ERR_INVALID;
  *tm = out;
  *utc_sec = t;
  return TWIN_OK;
}

/* ------------------------------------------------------------------------ */
/* TZif                                                                     */
/* ------------------------------------------------------------------------ */

typedef struct tz_counts {
  uint32_t isut, isstd, leap, time, type, chars;
} tz_counts;

static uint32_t be32(const uint8_t *p)
{
  return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 |
         p[3];
}

static int64_t be64(const uint8_t *p)
{
  return (int64_t)((uint64_t)be32(p) << 32 | be32(p + 4));
}

/* The header at p (len bytes left): version byte and counts. */
static int read_header(const uint8_t *p, size_t len, const char *which,
                       const char *name, int *version, tz_counts *c,
                       core_err *err)
{
  if (len < HEADER_LEN)
    return core_err_set(err, TWIN_ERR_PARSE,
                        "%s: the %s header is cut short (%zu of %d bytes); "
                        "the zone file is damaged, reinstall tzdata",
                        name, which, len, HEADER_LEN);
  if (memcmp(p, "TZif", 4))
    return core_err_set(err, TWIN_ERR_PARSE,
                        "%s: the %s header does not start with \"TZif\"; "
                        "not a compiled zone file",
                        name, which);
  *version = p[4];
  if (*version != 0 && (*version < '2' || *version > '9'))
    return core_err_set(err, TWIN_ERR_PARSE,
                        "%s: unknown TZif version byte 0x%02x (known: 0, "
                        "'2'..'4')",
                        name, *version);
  c->isut = be32(p + 20);
  c->isstd = be32(p + 24);
  c->leap = be32(p + 28);
  c->time = be32(p + 32);
  c->type = be32(p + 36);
  c->chars = be32(p + 40);
  return TWIN_OK;
}

static uint64_t block_len(const tz_counts *c, unsigned tsize)
{
  return (uint64_t)c->time * (tsize + 1) + (uint64_t)c->type * 6 + c->chars +
         (uint64_t)c->leap * (tsize + 4) + c->isstd + c->isut;
}

/* Read the data block at p (checked to hold block_len bytes) into z. */
static int read_block(const uint8_t *p, const tz_counts *c, unsigned tsize,
                      const char *name, core_tz *z, core_err *err)
{
  if (c->type < 1 || c->type > 256)
    return core_err_set(err, TWIN_ERR_PARSE,
                        "%s: %u local time types (a zone has 1..256)", name,
                        c->type);
  if (c->chars < 1)
    return core_err_set(err, TWIN_ERR_PARSE, "%s: no time zone designations",
                        name);
  if ((c->isstd && c->isstd != c->type) || (c->isut && c->isut != c->type))
    return core_err_set(err, TWIN_ERR_PARSE,
                        "%s: %u standard/wall and %u UT/local indicators for "
                        "%u types (each must be 0 or the type count)",
                        name, c->isstd, c->isut, c->type);
  z->n_trans = c->time;
  z->n_types = c->type;
  z->trans = malloc((c->time ? c->time : 1) * sizeof *z->trans);
  z->trans_type = malloc(c->time ? c->time : 1);
  z->types = malloc(c->type * sizeof *z->types);
  z->abbrs = malloc((size_t)c->chars + 1);
  if (!z->trans || !z->trans_type || !z->types || !z->abbrs)
    return core_err_set(err, TWIN_ERR_NOMEM, "%s: out of memory", name);
  const uint8_t *at = p;
  for (size_t i = 0; i < c->time; i++, at += tsize) {
    z->trans[i] = tsize == 8 ? be64(at) : (int32_t)be32(at);
    if (i && z->trans[i] <= z->trans[i - 1])
      return core_err_set(err, TWIN_ERR_PARSE,
                          "%s: transition %zu is not after the one before",
                          name, i);
  }
  for (size_t i = 0; i < c->time; i++, at++) {
    if (*at >= c->type)
      return core_err_set(err, TWIN_ERR_PARSE,
                          "%s: transition %zu names type %u of %u", name, i,
                          *at, c->type);
    z->trans_type[i] = *at;
  }
  for (size_t i = 0; i < c->type; i++, at += 6) {
    int32_t off = (int32_t)be32(at);
    if (off < OFF_MIN || off > OFF_MAX || at[4] > 1 || at[5] >= c->chars)
      return core_err_set(err, TWIN_ERR_PARSE,
                          "%s: local time type %zu is malformed (offset %d "
                          "s, dst flag %u, designation %u of %u bytes)",
                          name, i, (int)off, at[4], at[5], c->chars);
    z->types[i].off = off;
    z->types[i].isdst = at[4];
    z->types[i].abbr = at[5];
  }
  memcpy(z->abbrs, at, c->chars);
  z->abbrs[c->chars] = 0;
  return TWIN_OK;
}

void core_tz_free(core_tz *z)
{
  if (!z || z == &utc_zone)
    return;
  free(z->name);
  free(z->trans);
  free(z->trans_type);
  free(z->types);
  free(z->abbrs);
  free(z);
}

int core_tz_parse(const void *data, size_t len, const char *name, core_tz **out,
                  core_err *err)
{
  const uint8_t *p = data;
  int version, rc;
  tz_counts c;
  *out = NULL;
  if (!name)
    name = "(zone)";
  if ((rc = read_header(p, len, "first", name, &version, &c, err)))
    return rc;
  unsigned tsize = version ? 8 : 4;
  uint64_t v1 = block_len(&c, 4), at = HEADER_LEN;
  if (v1 > len - at)
    return core_err_set(err, TWIN_ERR_PARSE,
                        "%s: the counts of the version 1 block need %llu "
                        "bytes, the file has %zu after its header",
                        name, (unsigned long long)v1, len - HEADER_LEN);
  if (version) { /* skip to the 64-bit block */
    int v2;
    at += v1;
    if ((rc = read_header(p + at, len - at, "second", name, &v2, &c, err)))
      return rc;
    at += HEADER_LEN;
    uint64_t need = block_len(&c, tsize);
    if (need > len - at)
      return core_err_set(err, TWIN_ERR_PARSE,
                          "%s: the counts of the 64-bit block need %llu "
                          "bytes, the file has %zu after its second header",
                          name, (unsigned long long)need, len - (size_t)at);
  }
  core_tz *z = calloc(1, sizeof *z);
  if (!z || !(z->name = strdup(name))) {
    free(z);
    return core_err_set(err, TWIN_ERR_NOMEM, "%s: out of memory", name);
  }
  if ((rc = read_block(p + at, &c, tsize, name, z, err))) {
    core_tz_free(z);
    return rc;
  }
  at += block_len(&c, tsize);
  if (version) {
    /* The footer: "\n" TZ string "\n". */
    const uint8_t *f = p + at, *nl = NULL;
    size_t left = len - at;
    if (left >= 2 && f[0] == '\n')
      nl = memchr(f + 1, '\n', left - 1);
    if (!nl || nl - f - 1 > 255 || memchr(f + 1, 0, (size_t)(nl - f - 1))) {
      core_tz_free(z);
      return core_err_set(err, TWIN_ERR_PARSE,
                          "%s: the footer (a TZ string between two newlines "
                          "after the 64-bit block) is missing or too long",
                          name);
    }
    char tz[256];
    memcpy(tz, f + 1, (size_t)(nl - f - 1));
    tz[nl - f - 1] = 0;
    if (*tz && !(z->has_rule = parse_rule(tz, &z->rule))) {
      core_tz_free(z);
      return core_err_set(err, TWIN_ERR_PARSE,
                          "%s: footer \"%s\" is not a POSIX TZ string such as "
                          "\"CET-1CEST,M3.5.0,M10.5.0/3\"",
                          name, tz);
    }
  }
  *out = z;
  return TWIN_OK;
}

/* ------------------------------------------------------------------------ */
/* The zoneinfo folder                                                      */
/* ------------------------------------------------------------------------ */

const char *core_tz_dir(void)
{
  const char *dir = getenv("TZDIR");
  return dir && *dir ? dir : "/usr/share/zoneinfo";
}

int core_tz_name_safe(const char *tz)
{
  if (!*tz || tz[0] == '/' || strstr(tz, "..") || strstr(tz, "//") ||
      tz[strlen(tz) - 1] == '/' || strlen(tz) > 64)
    return 0;
  for (const char *p = tz; *p; p++) {
    char ch = *p;
    if (!(is_alpha(ch) || is_digit(ch) || ch == '/' || ch == '_' || ch == '+' ||
          ch == '-'))
      return 0;
  }
  return 1;
}

/* dir/name opened when it is a regular file; -1 otherwise. */
static int zone_open(const char *dir, const char *name, struct stat *st)
{
  char *path = core_path_join(dir, name);
  if (!path)
    return -1;
  int fd = open(path, O_RDONLY | O_NONBLOCK | O_CLOEXEC);
  free(path);
  if (fd >= 0 && (fstat(fd, st) || !S_ISREG(st->st_mode))) {
    close(fd);
    fd = -1;
  }
  return fd;
}

int core_tz_in_database(const char *dir, const char *name)
{
  struct stat st;
  char magic[4];
  int fd = zone_open(dir, name, &st);
  if (fd < 0)
    return 0;
  int ok = read(fd, magic, sizeof magic) == (ssize_t)sizeof magic &&
           !memcmp(magic, "TZif", 4);
  close(fd);
  return ok;
}

static core_tz *zone_load(const char *name, core_err *err)
{
  const char *dir = core_tz_dir();
  if (!core_tz_name_safe(name)) {
    core_err_set(err, TWIN_ERR_INVALID,
                 "timezone \"%.80s\" is not a zone name; use an IANA name "
                 "such as \"Europe/Berlin\"",
                 name);
    return NULL;
  }
  struct stat st;
  int fd = zone_open(dir, name, &st);
  if (fd < 0) {
    core_err_set(err, TWIN_ERR_NOT_FOUND,
                 "timezone \"%s\": no zone file %s/%s (install tzdata, or "
                 "point TZDIR at a zoneinfo folder)",
                 name, dir, name);
    return NULL;
  }
  core_tz *z = NULL;
  size_t cap = st.st_size > 0 && (uint64_t)st.st_size < TZ_FILE_MAX
                   ? (size_t)st.st_size + 1
                   : TZ_FILE_MAX + 1,
         n = 0;
  uint8_t *buf = malloc(cap);
  if (!buf) {
    core_err_set(err, TWIN_ERR_NOMEM, "timezone \"%s\": out of memory", name);
    close(fd);
    return NULL;
  }
  for (ssize_t got; n < cap && (got = read(fd, buf + n, cap - n)) > 0;)
    n += (size_t)got;
  close(fd);
  if (n > TZ_FILE_MAX)
    core_err_set(err, TWIN_ERR_PARSE,
                 "timezone \"%s\": %s/%s is larger than %u bytes; not a zone "
                 "file",
                 name, dir, name, TZ_FILE_MAX);
  else {
    /* Messages name the file; the zone keeps the name it was asked by. */
    char *path = core_path_join(dir, name);
    char *own = strdup(name);
    if (!path || !own)
      core_err_set(err, TWIN_ERR_NOMEM, "timezone \"%s\": out of memory", name);
    else if (core_tz_parse(buf, n, path, &z, err) == TWIN_OK) {
      free(z->name);
      z->name = own;
      own = NULL;
    }
    free(path);
    free(own);
  }
  free(buf);
  return z;
}

/* ------------------------------------------------------------------------ */
/* The cache                                                                */
/* ------------------------------------------------------------------------ */

/*
 * A list that only grows: readers walk it without a lock (an entry is
 * complete before it is published with a release store), writers add under
 * the mutex. A failed load is cached too, with its message.
 */
typedef struct cache_entry {
  struct cache_entry *next;
  char *name;
  core_tz *zone; /* NULL: the load failed, see error */
  char *error;
  atomic_int warned;
} cache_entry;

static _Atomic(cache_entry *) cache_head;
static pthread_mutex_t cache_lock = PTHREAD_MUTEX_INITIALIZER;

static cache_entry *cache_find(const char *name)
{
  for (cache_entry *e = atomic_load_explicit(&cache_head, memory_order_acquire);
       e; e = e->next)
    if (!strcmp(e->name, name))
      return e;
  return NULL;
}

static cache_entry *cache_lookup(const char *name)
{
  cache_entry *e = cache_find(name);
  if (e)
    return e;
  pthread_mutex_lock(&cache_lock);
  if (!(e = cache_find(name)) && (e = calloc(1, sizeof *e)) != NULL) {
    core_err err = {.msg = {0}};
    if ((e->name = strdup(name)) != NULL && !(e->zone = zone_load(name, &err)))
      e->error = strdup(err.msg);
    if (!e->name || (!e->zone && !e->error)) {
      core_tz_free(e->zone);
      free(e->name);
      free(e);
      e = NULL;
    } else {
      e->next = atomic_load_explicit(&cache_head, memory_order_relaxed);
      atomic_store_explicit(&cache_head, e, memory_order_release);
    }
  }
  pthread_mutex_unlock(&cache_lock);
  return e;
}

const core_tz *core_tz_utc(void)
{
  return &utc_zone;
}

const char *core_tz_name(const core_tz *z)
{
  return z->name;
}

const core_tz *core_tz_get(const char *name, core_err *err)
{
  if (!name || !*name || !strcmp(name, "UTC"))
    return &utc_zone;
  cache_entry *e = cache_lookup(name);
  if (!e) {
    core_err_set(err, TWIN_ERR_NOMEM, "timezone \"%.80s\": out of memory",
                 name);
    return NULL;
  }
  if (!e->zone)
    core_err_set(err, TWIN_ERR_NOT_FOUND, "%s", e->error);
  return e->zone;
}

const core_tz *core_tz_get_or_utc(const char *name)
{
  if (!name || !*name || !strcmp(name, "UTC"))
    return &utc_zone;
  cache_entry *e = cache_lookup(name);
  if (e && e->zone)
    return e->zone;
  if (!e || !atomic_exchange(&e->warned, 1))
    core_log(TWIN_LEVEL_WARNING, NULL, NULL, "%s; using UTC instead",
             e ? e->error : "timezone: out of memory");
  return &utc_zone;
}

void core_tz_cache_clear(void)
{
  pthread_mutex_lock(&cache_lock);
  cache_entry *e = atomic_exchange(&cache_head, NULL);
  while (e) {
    cache_entry *next = e->next;
    core_tz_free(e->zone);
    free(e->name);
    free(e->error);
    free(e);
    e = next;
  }
  pthread_mutex_unlock(&cache_lock);
}
