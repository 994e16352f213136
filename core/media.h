/*
 * media.h — media types ("text/csv", "application/json"): checking the
 * lists plugins declare (twin_op.reply_type, twin_plugin.ingest_types) and
 * matching a Content-Type against them. Comparison ignores case and
 * parameters (";charset=utf-8"), as RFC 9110 says media types compare.
 */
#ifndef CORE_MEDIA_H
#define CORE_MEDIA_H

#include <stddef.h>

/* The longest media type the host keeps, with its NUL. */
#define CORE_MEDIA_MAX 128

/* 1 when s[0..n) is one media type "type/subtype" of RFC 6838 token
 * characters (no parameters, no wildcard), shorter than CORE_MEDIA_MAX. */
int core_media_valid(const char *s, size_t n);

/* Check a ", "-separated list of media types; 0, or -1 with the 1-based
 * position of the first bad entry in *bad. An empty list is bad, and so
 * is an empty entry ("text/csv,,", "text/csv,"). */
int core_media_list_check(const char *list, size_t *bad);

/* 1 when type (a Content-Type value: parameters and case ignored) is in
 * the ", "-separated list. */
int core_media_in_list(const char *list, const char *type);

/* 1 when type is JSON to the host: application/json, any
 * application/<x>+json (GeoJSON, ld+json), parameters ignored. */
int core_media_is_json(const char *type);

/* The bare type of a Content-Type value, lowercased, into buf
 * ("Text/CSV; charset=utf-8" -> "text/csv"); "" when it has none or when
 * it does not fit in size bytes. */
void core_media_bare(const char *type, char *buf, size_t size);

#endif
