/*
 * fuzz_tz.c — libFuzzer target: any bytes given to the TZif reader must
 * yield a zone or an error, never a crash, a leak or a read past the end.
 * A zone that parses must answer local time for ordinary instants, and
 * mktime of a local time must give back the instant or an earlier one with
 * the same wall clock (the first of a repeated hour).
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "tz.h"

static const int64_t probes[] = {INT64_MIN,
                                 -4260211200LL,
                                 -2147483648LL,
                                 -1,
                                 0,
                                 1,
                                 1711846800LL,
                                 1729990800LL,
                                 2147483647LL,
                                 4102444800LL,
                                 13569465600LL,
                                 INT64_MAX};

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
  /* An exact-size copy, so that any overread is caught. */
  uint8_t *copy = malloc(size ? size : 1);
  if (!copy)
    return 0;
  memcpy(copy, data, size);
  core_tz *z = NULL;
  core_err err;
  int rc = core_tz_parse(copy, size, "fuzz", &z, &err);
  free(copy);
  if (rc != TWIN_OK) {
    if (z || !err.msg[0])
      abort(); /* a failure leaves no zone and says why */
    return 0;
  }
  for (size_t i = 0; i < sizeof probes / sizeof *probes; i++) {
    int64_t t = probes[i];
    struct tm tm, in;
    int ordinary = t > -((int64_t)1 << 40) && t < ((int64_t)1 << 40);
    if (core_tz_local(z, t, &tm) != TWIN_OK) {
      if (ordinary)
        abort();
      continue;
    }
    if (tm.tm_hour < 0 || tm.tm_hour > 23 || tm.tm_min < 0 || tm.tm_min > 59 ||
        tm.tm_sec < 0 || tm.tm_sec > 59 || tm.tm_mon < 0 || tm.tm_mon > 11 ||
        tm.tm_mday < 1 || tm.tm_mday > 31 || tm.tm_wday < 0 || tm.tm_wday > 6 ||
        tm.tm_yday < 0 || tm.tm_yday > 365 || !tm.tm_zone)
      abort();
    in = tm;
    in.tm_isdst = -1;
    int64_t back;
    if (core_tz_mktime(z, &in, &back) == TWIN_OK &&
        (back > t || in.tm_year != tm.tm_year || in.tm_yday != tm.tm_yday ||
         in.tm_hour != tm.tm_hour || in.tm_min != tm.tm_min ||
         in.tm_sec != tm.tm_sec))
      abort();
  }
  core_tz_free(z);
  return 0;
}
