/*
 * testjson.c — single-quoted JSON and jq-like paths (see testjson.h).
 */
#include "testjson.h"

#include "testutil.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

char *tu_jq(const char *s)
{
  char *out = tu_fmt("%s", s);
  for (char *p = out; *p; p++)
    if (*p == '\'')
      *p = '"';
  return out;
}

char *tu_jqf(const char *fmt, ...)
{
  va_list ap;
  va_start(ap, fmt);
  char *text = tu_vfmt(fmt, ap);
  va_end(ap);
  char *out = tu_jq(text);
  free(text);
  return out;
}

/* 1 when every key=value of the selector sel (len bytes, ','-separated)
 * names a string member of el equal to value. */
static int selected(json_t *el, const char *sel, size_t len)
{
  const char *end = sel + len;
  while (sel < end) {
    const char *comma = memchr(sel, ',', (size_t)(end - sel));
    const char *stop = comma ? comma : end;
    const char *eq = memchr(sel, '=', (size_t)(stop - sel));
    if (!eq)
      return 0;
    char *key = strndup(sel, (size_t)(eq - sel));
    const char *have = json_string_value(json_object_get(el, key));
    free(key);
    size_t vlen = (size_t)(stop - eq - 1);
    if (!have || strlen(have) != vlen || memcmp(have, eq + 1, vlen))
      return 0;
    sel = comma ? comma + 1 : end;
  }
  return 1;
}

/* One [...] step: an index, or the first element a selector picks. */
static json_t *bracket(json_t *cur, const char *in, size_t len)
{
  if (!json_is_array(cur) || !len)
    return NULL;
  if (strspn(in, "0123456789") >= len)
    return json_array_get(cur, strtoul(in, NULL, 10));
  size_t i;
  json_t *el;
  json_array_foreach(cur, i, el)
  {
    if (selected(el, in, len))
      return el;
  }
  return NULL;
}

static json_t *walk(json_t *cur, const char *path)
{
  const char *p = path;
  while (cur && *p) {
    if (*p == '.') {
      p++;
      continue;
    }
    if (*p == '[') {
      const char *close = strchr(p, ']');
      if (!close)
        fail_msg("path \"%s\": no ']'", path);
      cur = bracket(cur, p + 1, (size_t)(close - p - 1));
      p = close + 1;
      continue;
    }
    size_t n = strcspn(p, ".[");
    char *key = strndup(p, n);
    cur = json_object_get(cur, key);
    free(key);
    p += n;
  }
  return cur;
}

json_t *tu_get(json_t *root, const char *path_fmt, ...)
{
  va_list ap;
  va_start(ap, path_fmt);
  char *path = tu_vfmt(path_fmt, ap);
  va_end(ap);
  json_t *v = walk(root, path);
  free(path);
  return v;
}

/* The value at path, failing the test unless is(value) holds. */
static json_t *typed(json_t *root, const char *path_fmt, va_list ap,
                     int (*is)(const json_t *), const char *what)
{
  char *path = tu_vfmt(path_fmt, ap);
  json_t *v = walk(root, path);
  if (!is(v)) {
    char *text = v ? json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY) : NULL;
    fail_msg("%s: not %s (%s)", path, what, text ? text : "absent");
  }
  free(path);
  return v;
}

static int is_integer(const json_t *v)
{
  return json_is_integer(v);
}

static int is_number(const json_t *v)
{
  return json_is_number(v);
}

static int is_string(const json_t *v)
{
  return json_is_string(v);
}

json_int_t tu_int(json_t *root, const char *path_fmt, ...)
{
  va_list ap;
  va_start(ap, path_fmt);
  json_t *v = typed(root, path_fmt, ap, is_integer, "an integer");
  va_end(ap);
  return json_integer_value(v);
}

double tu_num(json_t *root, const char *path_fmt, ...)
{
  va_list ap;
  va_start(ap, path_fmt);
  json_t *v = typed(root, path_fmt, ap, is_number, "a number");
  va_end(ap);
  return json_number_value(v);
}

const char *tu_str(json_t *root, const char *path_fmt, ...)
{
  va_list ap;
  va_start(ap, path_fmt);
  json_t *v = typed(root, path_fmt, ap, is_string, "a string");
  va_end(ap);
  return json_string_value(v);
}
