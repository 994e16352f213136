/*
 * util.h — small helpers every core file uses: error messages, names, files,
 * paths, time. Nothing here knows about towns or plugins.
 */
#ifndef CORE_UTIL_H
#define CORE_UTIL_H

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "twin/twin.h"

/* A human-readable error: what is wrong and, where it helps, what to do. */
typedef struct core_err {
  char msg[1024];
  /* Set by a plugin (api->fail) or a request check: a machine-readable
   * code ("lot_unknown") and the field at fault ("lots[3].free"); "" when
   * none. core_err_set clears both. */
  char code[48];
  char field[200];
} core_err;

/* Format into e (e may be NULL), clearing code and field. Returns the
 * TWIN_ERR_* status given. */
int core_err_set(core_err *e, int status, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* Set e's code and field (either may be NULL: left empty). */
void core_err_detail(core_err *e, const char *code, const char *field);
/* Prefix the existing message: "<prefix>: <old message>". */
void core_err_prefix(core_err *e, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* 1 when the n bytes at s are valid UTF-8 (NUL bytes count as invalid). */
int core_utf8_valid(const char *s, size_t n);
/* Make s valid UTF-8 in place: invalid bytes become '?', and a sequence cut
 * short at the end (by a truncating snprintf) is dropped. */
void core_utf8_fix(char *s);

/* The message for a twin_status ("not found"). Never NULL. */
const char *core_status_message(int status);
/* The name for a twin_status ("ERR_NOT_FOUND"). Never NULL. */
const char *core_status_name(int status);

/* An id for a town or plugin: [a-z0-9_-], 1..40 bytes, starting with a
 * letter or digit. */
int core_valid_id(const char *s);
/* 1..max bytes of [a-z0-9] and the characters of also: a use case
 * ("-"), an error code ("_"). */
int core_valid_token(const char *s, size_t max, const char *also);
/* An entity type, entity id or attribute name: 1..TWIN_NAME_MAX bytes of
 * UTF-8, no control characters (so no NUL, which separates key parts). */
int core_valid_name(const char *s);

/* "; did you mean \"x\"?" into buf when one of names is a close match to
 * key (edit distance under 3), else "". */
void core_suggest(const char *key, const char *const *names, size_t n,
                  char *buf, size_t size);
/* names joined with ", " into buf, ending in "..." when they do not fit. */
void core_join_names(const char *const *names, size_t n, char *buf,
                     size_t size);

/* parent + key as a JSON path for messages: "towns[1].timezone"; a key that
 * is not a plain name is quoted in brackets (["odd key"]). */
void core_jpath_key(char *buf, size_t size, const char *parent,
                    const char *key);

/* A twin_value as a new JSON value (NULL only when out of memory or for a
 * string that is not UTF-8). */
json_t *core_value_json(const twin_value *v);

/* Read a whole file; *out is NUL terminated, caller frees. */
int core_read_file(const char *path, char **out, size_t *len, core_err *err);
/* Join dir and rel unless rel is absolute. Caller frees. */
char *core_path_join(const char *dir, const char *rel);
/* The directory part of path ("." if none). Caller frees. */
char *core_path_dir(const char *path);
/* A new private folder $TMPDIR/<prefix>-<random> (TMPDIR defaults to
 * /tmp). Caller frees; NULL with errno set on failure. */
char *core_temp_dir(const char *prefix);
/* mkdir -p. */
int core_mkdirs(const char *path, core_err *err);

/* Wall clock in ms since the epoch; monotonic clock in ns. */
twin_time core_now_ms(void);
uint64_t core_mono_ns(void);

/* Parse an RFC 3339 date-time with a zone ("2026-11-27T10:00:00Z",
 * "2026-11-27T11:00:00+01:00", fractional seconds allowed, a space for the
 * T) to ms: twinaux_time_parse, the plugins' parser. A date alone or a
 * time without a zone is ambiguous and refused. */
int core_parse_time(const char *s, twin_time *out);
/* Format ms as "2026-11-27T10:00:00.000Z" into buf (at least 32 bytes). */
void core_format_time(twin_time t, char *buf, size_t len);

/* Log a line to stderr: "twinhost: [level] <town>/<plugin>: message". */
void core_log(twin_level level, const char *town, const char *plugin,
              const char *fmt, ...) __attribute__((format(printf, 4, 5)));
/* Lowest level printed (default INFO; TWINHOST_LOG=debug|info|warning|error).
 */
void core_log_set_level(twin_level level);

#endif
