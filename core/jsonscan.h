/*
 * jsonscan.h — check that text is JSON (RFC 8259) without building it.
 *
 * The ingest path uses it to validate a whole request body and find where
 * each document starts and ends in one pass, allocating nothing; the
 * documents then go to their plugin as sent. It accepts what jansson
 * accepts, and a little more that jansson refuses only when building
 * values: numbers too large for a double or int64, "\u0000" and lone
 * surrogate escapes. A document holding those reaches its plugin, whose
 * parse rejects that one document with a reason.
 */
#ifndef CORE_JSONSCAN_H
#define CORE_JSONSCAN_H

#include <stddef.h>

#define CORE_JSON_MAX_DEPTH 2048 /* as jansson's parser */

typedef struct core_json_scan_err {
  size_t at;       /* byte offset of the problem */
  const char *why; /* static text */
} core_json_scan_err;

/* Skip JSON white space from i; returns the first other offset. */
size_t core_json_ws(const char *s, size_t len, size_t i);
/*
 * Scan one JSON value starting exactly at s[i] (no white space first).
 * Returns 0 and sets *end just past it, or -1 with err filled.
 */
int core_json_scan(const char *s, size_t len, size_t i, size_t *end,
                   core_json_scan_err *err);
/* Line and column (1-based) of byte offset at, for messages. */
void core_json_line_col(const char *s, size_t at, size_t *line,
                        size_t *col);

#endif
