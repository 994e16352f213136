/*
 * twinaux.h — the twin helper library: what every plugin would otherwise
 * write again, built only on twin/twin.h and the C standard library, as
 * lauxlib is built only on lua.h. It links no host symbol: a plugin links
 * the static library libtwinaux.a (position-independent, so it can go into
 * a .so) and stays a plugin that any twinhost of ABI 1.x loads.
 *
 *   cc -shared -fPIC myplugin.c -I <prefix>/include -L <prefix>/lib \
 *      -ltwinaux -o myplugin.so          (or: pkg-config --libs twinhost)
 *
 * The host core uses the same time code (core_parse_time is
 * twinaux_time_parse with TWINAUX_TIME_SPACE), so a time the host accepts
 * is a time a plugin accepts.
 *
 * Every function here is thread-safe (no global state) unless it says
 * otherwise. Names: twinaux_*, types twinaux_*, macros TWINAUX_*.
 */
#ifndef TWIN_TWINAUX_H
#define TWIN_TWINAUX_H

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include "twin/twin.h"

#ifdef __cplusplus
extern "C" {
#endif

#if defined(__GNUC__) || defined(__clang__)
#define TWINAUX_PRINTF(f, a) __attribute__((format(printf, f, a)))
#else
#define TWINAUX_PRINTF(f, a)
#endif

/* ---- statuses ------------------------------------------------------------ */

/* "ERR_NOT_FOUND" for TWIN_ERR_NOT_FOUND; "unknown status" for a value
 * not in TWIN_STATUS_LIST. Static strings. */
const char *twinaux_status_name(int status);
/* "not found" for TWIN_ERR_NOT_FOUND; "unknown status" otherwise. */
const char *twinaux_status_message(int status);

/* ---- errors and log ------------------------------------------------------ */

/*
 * Say why the call fails (api->set_error with a printf-formatted message,
 * at most 1023 bytes; a longer one is cut at a UTF-8 boundary) and return
 * status, so a plugin writes:
 *   return twinaux_error(api, ctx, TWIN_ERR_PARSE, "line %d: %s", n, why);
 */
int twinaux_error(const twin_host_api *api, twin_ctx *ctx, int status,
                  const char *fmt, ...) TWINAUX_PRINTF(4, 5);
/*
 * The same with a machine-readable code and the field it concerns
 * (api->fail on a 1.2 host; on an older host the code and field are put
 * in front of the message instead). Returns status.
 */
int twinaux_fail(const twin_host_api *api, twin_ctx *ctx, int status,
                 const char *code, const char *field, const char *fmt, ...)
    TWINAUX_PRINTF(6, 7);
/* A printf-formatted log line under the call's town and plugin. */
void twinaux_log(const twin_host_api *api, twin_ctx *ctx, twin_level level,
                 const char *fmt, ...) TWINAUX_PRINTF(4, 5);
/*
 * Refuse one item of the document being ingested with a printf-formatted
 * reason (api->refuse_item on a 1.2 host). Returns TWIN_OK, or
 * TWIN_ERR_UNSUPPORTED on a host older than 1.2 (the plugin should then
 * fail the whole document, as 1.1 plugins did).
 */
int twinaux_refuse(const twin_host_api *api, twin_ctx *ctx, const char *item,
                   const char *field, const char *code, const char *fmt, ...)
    TWINAUX_PRINTF(6, 7);

/* ---- time (RFC 3339) ----------------------------------------------------- */

/* Flags of twinaux_time_parse. */
enum {
  /* A time without a zone ("2026-11-27T10:00:00", as ParkAPI v1 sends
   * them) is taken as UTC instead of refused. */
  TWINAUX_TIME_ZONE_OPTIONAL = 1,
  /* A space may stand for the "T" ("2026-11-27 10:00:00Z"). */
  TWINAUX_TIME_SPACE = 2
};

/*
 * Parse an RFC 3339 date-time, "2026-11-27T10:00:00Z" or with an offset
 * "2026-11-27T11:00:00+01:00", with or without a fraction of a second
 * (digits beyond milliseconds are dropped, rounding down), of exactly len
 * bytes (no NUL needed). Strict: every field in range, the day in its month
 * and year (2026-02-29 is refused, 2028-02-29 taken), years 0000..9999,
 * offsets up to +-23:59, "T"/"t" and "Z"/"z" in either case, a leap second
 * :60 is refused (twin_time has none). A date alone is refused. Returns
 * TWIN_OK with *out in ms since the epoch, or TWIN_ERR_PARSE (then *out is
 * untouched).
 */
int twinaux_time_parse(const char *s, size_t len, int flags, twin_time *out);

/* Flags of twinaux_time_format. */
enum {
  TWINAUX_TIME_MS = 1 /* always three fraction digits (".000Z") */
};

/*
 * Format t (UTC) as "2026-11-27T10:00:00Z", with ".123" when t has
 * milliseconds (or always, with TWINAUX_TIME_MS), into buf of size bytes
 * (TWINAUX_TIME_MAX are always enough), NUL-terminated. Years outside
 * 0000..9999 are written with their sign and digits ("-0001-...",
 * "+10000-..."); twinaux_time_parse does not read those back. Returns the
 * length written, or 0 when size is too small (buf then holds "").
 */
#define TWINAUX_TIME_MAX 32
size_t twinaux_time_format(twin_time t, int flags, char *buf, size_t size);

/* Days since 1970-01-01 of a proleptic Gregorian date, and back. */
int64_t twinaux_days_from_civil(int64_t year, int month, int day);
void twinaux_civil_from_days(int64_t days, int64_t *year, int *month,
                             int *day);

/* ---- distance ------------------------------------------------------------ */

/* The mean Earth radius used, in metres (IUGG R1). */
#define TWINAUX_EARTH_RADIUS_M 6371008.8

/* Great-circle distance in metres between two WGS84 points in degrees
 * (haversine on a sphere of TWINAUX_EARTH_RADIUS_M; within 0.5 % of the
 * ellipsoid). */
double twinaux_distance_m(double lat1, double lon1, double lat2, double lon2);

/* ---- a JSON text writer ---------------------------------------------------- */

/*
 * Builds a JSON reply as text without a JSON library, placing commas and
 * colons itself: begin an object, write a key, write a value, end it.
 *
 *   twinaux_json j;
 *   twinaux_json_init(&j);
 *   twinaux_json_object(&j);
 *   twinaux_json_key(&j, "free");  twinaux_json_int(&j, 17);
 *   twinaux_json_key(&j, "time");  twinaux_json_time(&j, t);
 *   twinaux_json_end(&j);
 *   return twinaux_json_respond(api, ctx, &j);   (also frees j)
 *
 * Errors stick: after out-of-memory, a value where a key belongs, a string
 * that is not UTF-8, an end without a begin, or nesting deeper than
 * TWINAUX_JSON_DEPTH, further calls do nothing and twinaux_json_status
 * tells what went wrong. Not thread-safe per writer (one writer, one
 * thread at a time).
 */
#define TWINAUX_JSON_DEPTH 64

typedef struct twinaux_json {
  char *buf;
  size_t len, cap;
  int status; /* TWIN_OK, or the first error (sticky) */
  int depth;
  /* per level: 'o' object expecting a key, 'v' object expecting a value,
   * 'a' array; and whether the level has an element yet */
  char kind[TWINAUX_JSON_DEPTH];
  unsigned char has[TWINAUX_JSON_DEPTH];
  int done; /* the top-level value is complete */
} twinaux_json;

void twinaux_json_init(twinaux_json *j);
void twinaux_json_free(twinaux_json *j);
/* Begin an object or an array; end the innermost one. */
void twinaux_json_object(twinaux_json *j);
void twinaux_json_array(twinaux_json *j);
void twinaux_json_end(twinaux_json *j);
/* A key in the current object (NUL-terminated, UTF-8). */
void twinaux_json_key(twinaux_json *j, const char *key);
/* Values. A non-finite number is written as null. */
void twinaux_json_str(twinaux_json *j, const char *s); /* NULL: null */
void twinaux_json_strn(twinaux_json *j, const char *s, size_t len);
void twinaux_json_num(twinaux_json *j, double v); /* shortest round-trip */
void twinaux_json_int(twinaux_json *j, int64_t v);
void twinaux_json_bool(twinaux_json *j, int v);
void twinaux_json_null(twinaux_json *j);
void twinaux_json_time(twinaux_json *j, twin_time t); /* RFC 3339 string */
/* A twin_value as JSON (strings escaped, NULL as null). */
void twinaux_json_value(twinaux_json *j, const twin_value *v);
/* Already-encoded JSON text, taken as one value (not checked). */
void twinaux_json_raw(twinaux_json *j, const char *json, size_t len);
/* The first error (TWIN_ERR_NOMEM, TWIN_ERR_INVALID) or TWIN_OK. */
int twinaux_json_status(const twinaux_json *j);
/* The text so far (NUL-terminated; "" when empty) and its length. */
const char *twinaux_json_text(const twinaux_json *j, size_t *len);
/*
 * Send the finished value as the reply (api->respond) and free the
 * writer. Returns TWIN_OK, the writer's error (TWIN_ERR_INVALID when the
 * value is not complete), or what respond returned; on error the call's
 * error message says what went wrong.
 */
int twinaux_json_respond(const twin_host_api *api, twin_ctx *ctx,
                         twinaux_json *j);

/* ---- reading requests ------------------------------------------------------ */

/*
 * Find the member key of the top-level JSON object in json[0..len) and
 * give the bounds of its value (*val points into json, *val_len bytes, the
 * raw JSON text: a string keeps its quotes). Only the top level is
 * searched; a key given twice yields the last, as with most JSON parsers.
 * Returns TWIN_OK, TWIN_ERR_NOT_FOUND, or TWIN_ERR_PARSE when json is not
 * a JSON object.
 */
int twinaux_json_member(const char *json, size_t len, const char *key,
                        const char **val, size_t *val_len);

/*
 * The string value of member key of the top-level object, unescaped into
 * buf (size bytes, NUL-terminated). Returns TWIN_OK, TWIN_ERR_NOT_FOUND,
 * TWIN_ERR_INVALID (not a string), TWIN_ERR_TOO_BIG (does not fit),
 * TWIN_ERR_PARSE.
 */
int twinaux_json_member_str(const char *json, size_t len, const char *key,
                            char *buf, size_t size);

/* ---- op dispatch ----------------------------------------------------------- */

/* One handler of a declared op: query or simulate work for op name. */
typedef int (*twinaux_op_fn)(void *instance, twin_ctx *ctx,
                             const char *request, size_t len);

typedef struct twinaux_op_handler {
  const char *name; /* as in the twin_op table */
  twinaux_op_fn fn;
} twinaux_op_handler;

/*
 * Call the handler named by the request's "op" (the host puts it there for
 * a plugin that declares ops) from handlers[0..n). An op without handler
 * fails with TWIN_ERR_NOT_FOUND and code "unknown_op" (as the host answers
 * an op it does not know), a request without "op" with TWIN_ERR_INVALID;
 * each message lists the handled names. Use it as the body of query or simulate:
 *   static int q(void *i, twin_ctx *c, const char *r, size_t n)
 *   { return twinaux_dispatch(api, handlers, 3, i, c, r, n); }
 */
int twinaux_dispatch(const twin_host_api *api,
                     const twinaux_op_handler *handlers, size_t n,
                     void *instance, twin_ctx *ctx, const char *request,
                     size_t len);

#ifdef __cplusplus
}
#endif
#endif /* TWIN_TWINAUX_H */
