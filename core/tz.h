/*
 * tz.h — local time in a named zone without touching the process: a reader
 * for compiled zoneinfo files (TZif versions 1 to 4, RFC 8536) and their
 * POSIX TZ footer, with a process-wide cache of loaded zones.
 *
 * Why: the C library keeps one zone per process (TZ, tzset). Switching it
 * per call races between threads (wrong hours) and setenv next to a getenv
 * in another thread (libcurl, libmicrohttpd) can crash. A core_tz is an
 * immutable value: every function here is pure and may be called from any
 * thread at once.
 *
 * Time is POSIX time (seconds since the epoch, no leap seconds), like
 * twin_time; leap-second records of "right/" zones are read and ignored.
 */
#ifndef CORE_TZ_H
#define CORE_TZ_H

#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include "util.h"

typedef struct core_tz core_tz;

/*
 * The zone called name ("Europe/Berlin"), loaded from $TZDIR or
 * /usr/share/zoneinfo on first use and kept until core_tz_cache_clear (or
 * exit); later calls for the same name return the same zone without
 * touching the disk (a failure is remembered too). "UTC" and "" are UTC
 * without a file. The zone is borrowed: never free it.
 * Any thread. Returns NULL with err set (err may be NULL): the name is not
 * a zone name, the file is missing, or it is not a valid TZif file.
 */
const core_tz *core_tz_get(const char *name, core_err *err);

/* Like core_tz_get, but a zone that cannot be loaded is UTC, as it is for
 * the C library; the first failure per name is logged as a warning. Never
 * NULL (except out of memory on the very first lookup of a name, when it
 * is UTC without caching). Any thread. */
const core_tz *core_tz_get_or_utc(const char *name);

/* UTC; static, never NULL. */
const core_tz *core_tz_utc(void);

/* The name the zone was loaded under. Borrowed, lives as long as z. */
const char *core_tz_name(const core_tz *z);

/*
 * Forget every cached zone and free it. Only when no thread holds a zone
 * from core_tz_get (tests, shutdown); zones returned before are invalid
 * afterwards.
 */
void core_tz_cache_clear(void);

/*
 * Parse a TZif file held in memory (data, len bytes; name is kept for
 * messages and core_tz_name). The v2+ 64-bit block is used when present.
 * On success *out is a new zone the caller frees with core_tz_free.
 * Returns TWIN_OK, TWIN_ERR_PARSE (err says what is wrong with which part),
 * TWIN_ERR_NOMEM.
 */
int core_tz_parse(const void *data, size_t len, const char *name, core_tz **out,
                  core_err *err);
void core_tz_free(core_tz *z);

/*
 * UTC seconds -> local time in z: every field of *out including tm_wday,
 * tm_yday, tm_isdst (0 or 1), tm_gmtoff (seconds east of UTC) and tm_zone
 * (the abbreviation, "CEST"; borrowed from z, or NULL). Times after the
 * file's last transition follow its footer rule. Any thread.
 * Returns TWIN_OK, TWIN_ERR_INVALID (the year does not fit tm_year).
 */
int core_tz_local(const core_tz *z, int64_t utc_sec, struct tm *tm);

/*
 * Local time in z -> UTC seconds, like glibc mktime with tm_isdst -1 (the
 * input tm_isdst, tm_wday and tm_yday are ignored): out-of-range fields are
 * normalised (month 13 is January of the next year, day 0 the last of the
 * month before); a time the clocks skip is read with the offset in effect
 * before the change (02:30 on a spring-forward night in Berlin is 03:30
 * CEST, as glibc gives); a time that occurs twice is its earlier instance
 * (the one before the clocks go back; glibc's choice there depends on its
 * previous call). On success *tm is rewritten as core_tz_local gives it for
 * *utc_sec. Any thread.
 * Returns TWIN_OK, TWIN_ERR_INVALID (out of range; *tm unchanged).
 */
int core_tz_mktime(const core_tz *z, struct tm *tm, int64_t *utc_sec);

/* ---- the zoneinfo folder (shared with config.c's timezone check) ---- */

/* $TZDIR, else /usr/share/zoneinfo. Borrowed (environment or static). */
const char *core_tz_dir(void);

/* 1 when name is safe to look up under the zoneinfo folder: letters,
 * digits, '/', '_', '+', '-', at most 64 bytes, nothing that could walk out
 * of the folder ("..", a leading '/', "//"). */
int core_tz_name_safe(const char *name);

/* 1 when dir/name is a regular file that starts like a compiled zone
 * ("TZif"), so zone.tab and friends are not mistaken for zones. */
int core_tz_in_database(const char *dir, const char *name);

/* The proleptic Gregorian date of day z since 1970-01-01 (H. Hinnant's
 * civil_from_days): any int64 day, month 1..12, day 1..31. */
void core_civil_from_days(int64_t z, int64_t *y, int *m, int *d);

#endif
