/*
 * testjson.h — JSON as tests write and read it: documents written with
 * single quotes (jq), and values picked out of a reply by a jq-like path,
 * so a check names what it looks at ("lots[2].free") instead of a chain of
 * json_object_get calls.
 *
 * A path is keys joined by '.', array elements as [n], and the first
 * element of an array whose members equal given strings as [key=value]
 * or [key=value,key2=value2]: "report.entities[0].attrs.level_cm.value",
 * "lots[id=p1].free", "towns[town=alpha,plugin=probe].state", "[1][0]".
 * The empty path is the value itself. Keys holding '.', '[' or ']', and
 * selector values holding ',' or ']', cannot be named.
 */
#ifndef TWIN_TESTJSON_H
#define TWIN_TESTJSON_H

#include <jansson.h>

/* s with every ' turned into " (caller frees). */
char *tu_jq(const char *s);
/* printf, then tu_jq (caller frees). */
char *tu_jqf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* The value at the path (printf), borrowed from root; NULL when absent. */
json_t *tu_get(json_t *root, const char *path_fmt, ...)
    __attribute__((format(printf, 2, 3)));
/* The integer at the path, or fail the test naming the path. */
json_int_t tu_int(json_t *root, const char *path_fmt, ...)
    __attribute__((format(printf, 2, 3)));
/* The number (integer or real) at the path, or fail the test so. */
double tu_num(json_t *root, const char *path_fmt, ...)
    __attribute__((format(printf, 2, 3)));
/* The string at the path (borrowed from root), or fail the test so. */
const char *tu_str(json_t *root, const char *path_fmt, ...)
    __attribute__((format(printf, 2, 3)));

#endif
