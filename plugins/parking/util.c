/*
 * util.c — the parking plugin's small helpers: error messages (with the
 * last one kept per thread for item refusals), names, times.
 */
#include "parking.h"

const char *park_status_name(int status)
{
  return twinaux_status_name(status);
}

/* The last failure on this thread and the field it was about, so that
 * ingest can refuse one lot of a snapshot with its reason (refuse_item)
 * instead of the whole document. */
_Thread_local char park_last_msg[MSG_MAX];
_Thread_local char park_last_field[48];

/* Say why the call fails and return status. */
int park_fail(const parking *p, twin_ctx *ctx, int status, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
int park_fail(const parking *p, twin_ctx *ctx, int status, const char *fmt, ...)
{
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(park_last_msg, sizeof park_last_msg, fmt, ap);
  va_end(ap);
  park_last_field[0] = 0;
  p->api->set_error(ctx, park_last_msg);
  return status;
}

/* The same, naming the field of the lot that is wrong. */
int park_fail_field(const parking *p, twin_ctx *ctx, int status,
                    const char *field, const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));
int park_fail_field(const parking *p, twin_ctx *ctx, int status,
                    const char *field, const char *fmt, ...)
{
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(park_last_msg, sizeof park_last_msg, fmt, ap);
  va_end(ap);
  snprintf(park_last_field, sizeof park_last_field, "%s", field);
  p->api->set_error(ctx, park_last_msg);
  return status;
}

/* A name the host accepts: 1..TWIN_NAME_MAX bytes, no control characters. */
int park_valid_name(const json_t *j)
{
  const unsigned char *s;
  size_t len, i;
  if (!json_is_string(j))
    return 0;
  s = (const unsigned char *)json_string_value(j);
  len = json_string_length(j);
  if (len == 0 || len > TWIN_NAME_MAX)
    return 0;
  for (i = 0; i < len; i++)
    if (s[i] < 0x20 || s[i] == 0x7f)
      return 0;
  return 1;
}

/* Bytes of s to show in a message, without cutting a UTF-8 character. */
int park_shown_len(const char *s, int max)
{
  int n = 0;
  while (n < max && s[n])
    n++;
  if (n == max)
    while (n > 0 && ((unsigned char)s[n] & 0xc0) == 0x80)
      n--;
  return n;
}

/* ------------------------------------------------------------------------ */
/* Time                                                                     */
/* ------------------------------------------------------------------------ */

/* RFC 3339 in UTC; milliseconds only when not zero (twinaux). */
void park_fmt_time(char *buf, size_t n, twin_time t)
{
  if (t < TIME_MIN_MS || t > TIME_MAX_MS || !twinaux_time_format(t, 0, buf, n))
    snprintf(buf, n, "%" PRId64, t);
}

/* RFC 3339 text or integer ms. 1: ok, 0: malformed or out of range. */
int park_json_time(const json_t *j, twin_time *out)
{
  if (json_is_integer(j)) {
    json_int_t v = json_integer_value(j);
    if (v < TIME_MIN_MS || v > TIME_MAX_MS)
      return 0;
    *out = (twin_time)v;
    return 1;
  }
  if (json_is_string(j)) {
    /* without a zone the time is read as UTC: ParkAPI v1's last_updated
     * carries none */
    if (twinaux_time_parse(json_string_value(j), json_string_length(j),
                           TWINAUX_TIME_ZONE_OPTIONAL | TWINAUX_TIME_SPACE,
                           out) != TWIN_OK)
      return 0;
    return *out >= TIME_MIN_MS && *out <= TIME_MAX_MS;
  }
  return 0;
}

json_t *park_time_to_json(twin_time t)
{
  char buf[40];
  park_fmt_time(buf, sizeof buf, t);
  return json_string(buf);
}

/* Local weekday (0 = Sunday), hour and a local hour number (local seconds
 * / 3600) of n times in the town's zone, one host call per time. */

int park_local_hours(const parking *p, twin_ctx *ctx, const twin_time *t,
                     size_t n, local_hour *out)
{
  size_t i;
  for (i = 0; i < n; i++) {
    twin_local lt;
    int64_t sec = t[i] >= 0 ? t[i] / 1000 : (t[i] - 999) / 1000;
    if (p->api->local_time(ctx, t[i], &lt) != TWIN_OK)
      return 0;
    out[i].wday = lt.weekday;
    out[i].hour = lt.hour;
    out[i].key = (sec + lt.utc_offset_s) / 3600;
  }
  return 1;
}

const char *park_town_tz(parking *p, twin_ctx *ctx)
{
  const char *id = NULL, *name = NULL, *tz = NULL;
  if (p->api->town_info(ctx, &id, &name, &tz) != TWIN_OK || !tz)
    return "UTC";
  return tz;
}
