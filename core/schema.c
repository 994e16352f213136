/*
 * schema.c — plugin config schemas (the JSON Schema subset documented at
 * twin_plugin.config_schema): checks that a schema is one this host
 * understands, validates a town's config against it while filling in
 * defaults, and prints a schema for people.
 */
#include "schema.h"

#include <jansson.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Deeper schemas are refused, so validation and printing recurse a bounded
 * number of times whatever a plugin ships. */
#define DEPTH_MAX 32

typedef enum stype {
  T_ANY,
  T_OBJECT,
  T_ARRAY,
  T_STRING,
  T_INTEGER,
  T_NUMBER,
  T_BOOLEAN
} stype;

static const char *const type_names[] = {
    "any", "object", "array", "string", "integer", "number", "boolean"};
static const char *const type_expected[] = {
    "any value",  "an object", "an array",     "a string",
    "an integer", "a number",  "true or false"};

static const char *const keywords[] = {
    "type",      "properties", "required", "additionalProperties",
    "items",     "minimum",    "maximum",  "minLength",
    "maxLength", "minItems",   "maxItems", "enum",
    "default",   "description", "format"};

/* Formats a string may be declared to have (requests: "format"). */
static const char *const formats[] = {"date-time"};

#define N_OF(a) (sizeof(a) / sizeof((a)[0]))

/* ---- JSON paths in messages ------------------------------------------- */

/* The path of the value being looked at ("feeds[2].url"); pushed and
 * popped like a stack so no level allocates. */
typedef struct spath {
  char buf[512];
  size_t len;
} spath;

static void path_append(spath *p, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static void path_append(spath *p, const char *fmt, ...)
{
  size_t room = sizeof p->buf - p->len;
  va_list ap;
  va_start(ap, fmt);
  int n = vsnprintf(p->buf + p->len, room, fmt, ap);
  va_end(ap);
  if (n < 0)
    p->buf[p->len] = 0;
  else if ((size_t)n >= room)
    p->len = sizeof p->buf - 1;
  else
    p->len += (size_t)n;
}

/* Append ".key" (or ["odd key"]); returns the length to pop back to. */
static size_t push_key(spath *p, const char *key)
{
  size_t old = p->len;
  char seg[200];
  core_jpath_key(seg, sizeof seg, "", key);
  path_append(p, "%s%s", p->len && seg[0] != '[' ? "." : "", seg);
  return old;
}

static size_t push_index(spath *p, size_t i)
{
  size_t old = p->len;
  path_append(p, "[%zu]", i);
  return old;
}

static void pop(spath *p, size_t len)
{
  p->len = len;
  p->buf[len] = 0;
}

/* "path: problem", or just the problem at the top. */
static int fail(core_err *err, const spath *p, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static int fail(core_err *err, const spath *p, const char *fmt, ...)
{
  char msg[768];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(msg, sizeof msg, fmt, ap);
  va_end(ap);
  int rc = p && p->len
               ? core_err_set(err, TWIN_ERR_CONFIG, "%s: %s", p->buf, msg)
               : core_err_set(err, TWIN_ERR_CONFIG, "%s", msg);
  core_err_detail(err, NULL, p ? p->buf : NULL);
  return rc;
}

static int nomem(core_err *err)
{
  return core_err_set(err, TWIN_ERR_NOMEM, "out of memory");
}

/* ---- showing values ----------------------------------------------------- */

/* A real as briefly as it round-trips ("0.1"), always with a point or an
 * exponent so it still reads as a real. */
static void format_real(double d, char *buf, size_t size)
{
  for (int prec = 15; prec <= 17; prec++) {
    snprintf(buf, size, "%.*g", prec, d);
    if (strtod(buf, NULL) == d)
      break;
  }
  if (!strpbrk(buf, ".eEni") && strlen(buf) + 3 <= size)
    strcat(buf, ".0");
}

/* A value for a message. whole: print objects and arrays as JSON
 * (truncated) rather than "an object". */
static void show_value(const json_t *v, int whole, char *buf, size_t size)
{
  switch (json_typeof(v)) {
  case JSON_OBJECT:
  case JSON_ARRAY:
    if (!whole) {
      snprintf(buf, size, json_is_object(v) ? "an object" : "an array");
      return;
    }
    break;
  case JSON_REAL:
    format_real(json_real_value(v), buf, size);
    return;
  case JSON_INTEGER:
    snprintf(buf, size, "%" JSON_INTEGER_FORMAT, json_integer_value(v));
    return;
  case JSON_TRUE:
  case JSON_FALSE:
  case JSON_NULL:
  case JSON_STRING:
    break;
  }
  char *s = json_dumps(v, JSON_ENCODE_ANY | JSON_COMPACT);
  if (!s) {
    snprintf(buf, size, "(value)");
    return;
  }
  if (strlen(s) > 48 && size > 52)
    snprintf(buf, size, json_is_string(v) ? "%.44s...\"" : "%.45s...", s);
  else
    snprintf(buf, size, "%s", s);
  free(s);
}

/* ---- schema nodes ------------------------------------------------------- */

/* The node's type; assumes the node passed check_node. */
static stype node_type(const json_t *s)
{
  const char *name = json_string_value(json_object_get(s, "type"));
  if (!name)
    return T_ANY;
  for (size_t i = 1; i < N_OF(type_names); i++)
    if (!strcmp(name, type_names[i]))
      return (stype)i;
  return T_ANY;
}

static int type_matches(const json_t *v, stype t)
{
  switch (t) {
  case T_ANY:
    return 1;
  case T_OBJECT:
    return json_is_object(v);
  case T_ARRAY:
    return json_is_array(v);
  case T_STRING:
    return json_is_string(v);
  case T_INTEGER:
    return json_is_integer(v);
  case T_NUMBER:
    return json_is_number(v);
  case T_BOOLEAN:
    return json_is_boolean(v);
  }
  return 0;
}

/* -1, 0, 1 like strcmp; exact when both are integers. */
static int num_cmp(const json_t *a, const json_t *b)
{
  if (json_is_integer(a) && json_is_integer(b)) {
    json_int_t x = json_integer_value(a), y = json_integer_value(b);
    return x < y ? -1 : x > y;
  }
  double x = json_number_value(a), y = json_number_value(b);
  return x < y ? -1 : x > y;
}

/* Characters, not bytes: a limit of 40 means 40 letters in any script. */
static size_t utf8_length(const char *s, size_t bytes)
{
  size_t n = 0;
  for (size_t i = 0; i < bytes; i++)
    if (((unsigned char)s[i] & 0xC0) != 0x80)
      n++;
  return n;
}

static int cmp_names(const void *a, const void *b)
{
  return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* ---- validation --------------------------------------------------------- */

static int validate(json_t *v, json_t *s, spath *p, core_err *err);

/* A key the schema does not name, when additionalProperties is false. */
static int unknown_key(const char *key, json_t *props, spath *p, core_err *err)
{
  size_t n = props ? json_object_size(props) : 0;
  const char **names = calloc(n ? n : 1, sizeof *names);
  if (!names)
    return nomem(err);
  size_t i = 0;
  const char *name;
  json_t *ps;
  json_object_foreach(props, name, ps)
  {
    names[i++] = name;
  }
  qsort(names, n, sizeof *names, cmp_names);
  char list[400], hint[128];
  core_join_names(names, n, list, sizeof list);
  core_suggest(key, names, n, hint, sizeof hint);
  free(names);
  size_t old = push_key(p, key);
  int rc = n ? fail(err, p, "unknown key (known: %s)%s", list, hint)
             : fail(err, p, "unknown key (this object takes no keys)");
  pop(p, old);
  return rc;
}

/* A property the config leaves out: its default, or for an object an
 * empty one completed with its own defaults when nothing in it is
 * required. */
static int fill_default(json_t *obj, const char *name, json_t *ps, spath *p,
                        core_err *err)
{
  json_t *d = json_object_get(ps, "default");
  json_t *copy;
  if (d) {
    copy = json_deep_copy(d);
    if (!copy)
      return nomem(err);
    int rc = validate(copy, ps, p, err);
    if (rc) {
      json_decref(copy);
      return rc;
    }
  } else if (node_type(ps) == T_OBJECT) {
    copy = json_object();
    if (!copy)
      return nomem(err);
    core_err scratch;
    if (validate(copy, ps, p, &scratch) != TWIN_OK) {
      json_decref(copy);
      return TWIN_OK; /* required keys inside: leave it missing */
    }
  } else {
    return TWIN_OK;
  }
  return json_object_set_new(obj, name, copy) ? nomem(err) : TWIN_OK;
}

static int validate_object(json_t *v, json_t *s, spath *p, core_err *err)
{
  json_t *props = json_object_get(s, "properties");
  const char *key;
  json_t *val;
  if (json_is_false(json_object_get(s, "additionalProperties"))) {
    json_object_foreach(v, key, val)
    {
      if (!props || !json_object_get(props, key))
        return unknown_key(key, props, p, err);
    }
  }
  if (props) {
    json_object_foreach(props, key, val)
    {
      json_t *cv = json_object_get(v, key);
      size_t old = push_key(p, key);
      int rc =
          cv ? validate(cv, val, p, err) : fill_default(v, key, val, p, err);
      pop(p, old);
      if (rc)
        return rc;
    }
  }
  json_t *req = json_object_get(s, "required");
  for (size_t i = 0; i < json_array_size(req); i++) {
    const char *name = json_string_value(json_array_get(req, i));
    if (name && !json_object_get(v, name)) {
      size_t old = push_key(p, name);
      int rc = fail(err, p, "required but missing");
      pop(p, old);
      return rc;
    }
  }
  return TWIN_OK;
}

static int validate_array(json_t *v, json_t *s, spath *p, core_err *err)
{
  size_t n = json_array_size(v);
  json_t *lim = json_object_get(s, "minItems");
  if (lim && (json_int_t)n < json_integer_value(lim))
    return fail(err, p,
                "has %zu items, fewer than the minimum %" JSON_INTEGER_FORMAT,
                n, json_integer_value(lim));
  lim = json_object_get(s, "maxItems");
  if (lim && (json_int_t)n > json_integer_value(lim))
    return fail(err, p,
                "has %zu items, more than the maximum %" JSON_INTEGER_FORMAT, n,
                json_integer_value(lim));
  json_t *items = json_object_get(s, "items");
  if (!items)
    return TWIN_OK;
  for (size_t i = 0; i < n; i++) {
    size_t old = push_index(p, i);
    int rc = validate(json_array_get(v, i), items, p, err);
    pop(p, old);
    if (rc)
      return rc;
  }
  return TWIN_OK;
}

static int validate_string(json_t *v, json_t *s, spath *p, core_err *err)
{
  size_t n = utf8_length(json_string_value(v), json_string_length(v));
  char shown[64];
  json_t *lim = json_object_get(s, "minLength");
  if (lim && (json_int_t)n < json_integer_value(lim)) {
    show_value(v, 0, shown, sizeof shown);
    return fail(err, p,
                "%s is shorter than the minimum length %" JSON_INTEGER_FORMAT,
                shown, json_integer_value(lim));
  }
  lim = json_object_get(s, "maxLength");
  if (lim && (json_int_t)n > json_integer_value(lim)) {
    show_value(v, 0, shown, sizeof shown);
    return fail(err, p,
                "%s is longer than the maximum length %" JSON_INTEGER_FORMAT
                " (%zu characters)",
                shown, json_integer_value(lim), n);
  }
  return TWIN_OK;
}

static int validate_number(json_t *v, json_t *s, spath *p, core_err *err)
{
  char shown[64], limit[64];
  json_t *lim = json_object_get(s, "minimum");
  if (lim && num_cmp(v, lim) < 0) {
    show_value(v, 0, shown, sizeof shown);
    show_value(lim, 0, limit, sizeof limit);
    return fail(err, p, "%s is below the minimum %s", shown, limit);
  }
  lim = json_object_get(s, "maximum");
  if (lim && num_cmp(v, lim) > 0) {
    show_value(v, 0, shown, sizeof shown);
    show_value(lim, 0, limit, sizeof limit);
    return fail(err, p, "%s is above the maximum %s", shown, limit);
  }
  return TWIN_OK;
}

static int validate_enum(json_t *v, json_t *e, spath *p, core_err *err)
{
  size_t n = json_array_size(e);
  for (size_t i = 0; i < n; i++)
    if (json_equal(v, json_array_get(e, i)))
      return TWIN_OK;
  char shown[64], list[400], one[64];
  size_t len = 0;
  list[0] = 0;
  for (size_t i = 0; i < n; i++) {
    show_value(json_array_get(e, i), 1, one, sizeof one);
    if (len + strlen(one) + 6 >= sizeof list) {
      snprintf(list + len, sizeof list - len, ", ...");
      break;
    }
    len += (size_t)snprintf(list + len, sizeof list - len, "%s%s",
                            i ? ", " : "", one);
  }
  show_value(v, 1, shown, sizeof shown);
  return fail(err, p, "%s is not one of %s", shown, list);
}

/* "format": "date-time": an RFC 3339 date-time with a zone; where the
 * node has no type, integer milliseconds since the epoch pass too. */
static int validate_format(json_t *v, json_t *s, spath *p, core_err *err)
{
  const char *f = json_string_value(json_object_get(s, "format"));
  if (!f || strcmp(f, "date-time"))
    return TWIN_OK;
  if (json_is_integer(v) && node_type(s) == T_ANY)
    return TWIN_OK;
  twin_time t;
  char shown[64];
  show_value(v, 0, shown, sizeof shown);
  if (!json_is_string(v))
    return fail(err, p,
                "expected an RFC 3339 date-time such as "
                "\"2026-11-27T10:00:00Z\"%s, got %s",
                node_type(s) == T_ANY ? " or integer milliseconds" : "",
                shown);
  if (strlen(json_string_value(v)) != json_string_length(v) ||
      core_parse_time(json_string_value(v), &t))
    return fail(err, p,
                "%s is not an RFC 3339 date-time with a zone (such as "
                "\"2026-11-27T10:00:00Z\" or \"2026-11-27T11:00:00+01:00\")",
                shown);
  return TWIN_OK;
}

/*
 * Check v against the (already checked) schema node s, filling in defaults
 * in place. Keywords apply to the kind of value they concern, as in JSON
 * Schema; the type keyword decides which kinds are allowed.
 */
static int validate(json_t *v, json_t *s, spath *p, core_err *err)
{
  stype t = node_type(s);
  int frc = validate_format(v, s, p, err);
  if (frc)
    return frc;
  if (!type_matches(v, t)) {
    char shown[64];
    show_value(v, 0, shown, sizeof shown);
    return fail(err, p, "expected %s, got %s", type_expected[t], shown);
  }
  json_t *e = json_object_get(s, "enum");
  if (e) {
    int rc = validate_enum(v, e, p, err);
    if (rc)
      return rc;
  }
  if (json_is_object(v))
    return validate_object(v, s, p, err);
  if (json_is_array(v))
    return validate_array(v, s, p, err);
  if (json_is_string(v))
    return validate_string(v, s, p, err);
  if (json_is_number(v))
    return validate_number(v, s, p, err);
  return TWIN_OK;
}

/* ---- checking a schema -------------------------------------------------- */

static int check_node(json_t *s, spath *p, int depth, core_err *err);

/* Keywords that only make sense for one type. */
static const struct {
  const char *keyword;
  stype type;
} keyword_types[] = {{"properties", T_OBJECT},
                     {"required", T_OBJECT},
                     {"additionalProperties", T_OBJECT},
                     {"items", T_ARRAY},
                     {"minItems", T_ARRAY},
                     {"maxItems", T_ARRAY},
                     {"minLength", T_STRING},
                     {"maxLength", T_STRING},
                     {"minimum", T_NUMBER},
                     {"maximum", T_NUMBER},
                     {"format", T_STRING}};

/* A keyword holding a count (minLength, maxItems...). */
static int check_count(json_t *s, const char *kw, spath *p, core_err *err)
{
  json_t *v = json_object_get(s, kw);
  if (!v || (json_is_integer(v) && json_integer_value(v) >= 0))
    return TWIN_OK;
  char shown[64];
  show_value(v, 0, shown, sizeof shown);
  size_t old = push_key(p, kw);
  int rc = fail(err, p, "expected a whole number >= 0, got %s", shown);
  pop(p, old);
  return rc;
}

/* lo must not exceed hi (both present and already checked). */
static int check_order(json_t *s, const char *lo, const char *hi, spath *p,
                       core_err *err)
{
  json_t *a = json_object_get(s, lo), *b = json_object_get(s, hi);
  if (!a || !b || num_cmp(a, b) <= 0)
    return TWIN_OK;
  char x[64], y[64];
  show_value(a, 0, x, sizeof x);
  show_value(b, 0, y, sizeof y);
  size_t old = push_key(p, lo);
  int rc = fail(err, p, "%s is above the %s %s", x, hi, y);
  pop(p, old);
  return rc;
}

static int check_keywords(json_t *s, spath *p, core_err *err)
{
  const char *key;
  json_t *val;
  json_object_foreach(s, key, val)
  {
    size_t i;
    for (i = 0; i < N_OF(keywords); i++)
      if (!strcmp(key, keywords[i]))
        break;
    if (i < N_OF(keywords))
      continue;
    char list[400], hint[128];
    core_join_names(keywords, N_OF(keywords), list, sizeof list);
    core_suggest(key, keywords, N_OF(keywords), hint, sizeof hint);
    size_t old = push_key(p, key);
    int rc = fail(err, p, "unknown keyword (known: %s)%s", list, hint);
    pop(p, old);
    return rc;
  }
  return TWIN_OK;
}

static int check_type(json_t *s, spath *p, int depth, stype *out, core_err *err)
{
  json_t *ty = json_object_get(s, "type");
  *out = T_ANY;
  if (ty && json_is_string(ty)) {
    for (size_t i = 1; i < N_OF(type_names); i++)
      if (!strcmp(json_string_value(ty), type_names[i]))
        *out = (stype)i;
  }
  size_t old = push_key(p, "type");
  int rc = TWIN_OK;
  if (ty && *out == T_ANY) {
    char shown[64];
    show_value(ty, 1, shown, sizeof shown);
    rc = fail(err, p,
              "expected one of \"object\", \"array\", \"string\", "
              "\"integer\", \"number\", \"boolean\", got %s",
              shown);
  } else if (depth == 0 && *out != T_OBJECT) {
    rc = fail(err, p,
              "the top level must be {\"type\": \"object\", \"properties\": "
              "{...}}");
  }
  pop(p, old);
  return rc;
}

static int check_fits_type(json_t *s, stype t, spath *p, core_err *err)
{
  if (t == T_ANY)
    return TWIN_OK;
  for (size_t i = 0; i < N_OF(keyword_types); i++) {
    stype want = keyword_types[i].type;
    if (!json_object_get(s, keyword_types[i].keyword) || want == t ||
        (want == T_NUMBER && t == T_INTEGER))
      continue;
    size_t old = push_key(p, keyword_types[i].keyword);
    int rc = fail(err, p, "only applies to type \"%s\"%s, not \"%s\"",
                  type_names[want], want == T_NUMBER ? " or \"integer\"" : "",
                  type_names[t]);
    pop(p, old);
    return rc;
  }
  return TWIN_OK;
}

static int check_properties(json_t *s, spath *p, int depth, core_err *err)
{
  json_t *props = json_object_get(s, "properties");
  if (!props)
    return TWIN_OK;
  size_t old = push_key(p, "properties");
  int rc = TWIN_OK;
  if (!json_is_object(props)) {
    char shown[64];
    show_value(props, 0, shown, sizeof shown);
    rc = fail(err, p, "expected an object mapping names to schemas, got %s",
              shown);
  } else {
    const char *key;
    json_t *ps;
    json_object_foreach(props, key, ps)
    {
      size_t at = push_key(p, key);
      rc = check_node(ps, p, depth + 1, err);
      pop(p, at);
      if (rc)
        break;
    }
  }
  pop(p, old);
  return rc;
}

static int check_required(json_t *s, spath *p, core_err *err)
{
  json_t *req = json_object_get(s, "required");
  if (!req)
    return TWIN_OK;
  json_t *props = json_object_get(s, "properties");
  size_t old = push_key(p, "required");
  int rc = TWIN_OK;
  char shown[64];
  if (!json_is_array(req)) {
    show_value(req, 0, shown, sizeof shown);
    rc = fail(err, p, "expected an array of property names, got %s", shown);
  }
  for (size_t i = 0; !rc && i < json_array_size(req); i++) {
    json_t *r = json_array_get(req, i);
    size_t at = push_index(p, i);
    show_value(r, 0, shown, sizeof shown);
    if (!json_is_string(r)) {
      rc = fail(err, p, "expected a property name, got %s", shown);
    } else if (!json_object_get(props, json_string_value(r))) {
      rc = fail(err, p, "%s is not one of the properties", shown);
    } else {
      for (size_t j = 0; j < i; j++)
        if (json_equal(r, json_array_get(req, j))) {
          rc = fail(err, p, "%s is listed twice", shown);
          break;
        }
    }
    pop(p, at);
  }
  pop(p, old);
  return rc;
}

static int check_enum(json_t *s, stype t, spath *p, core_err *err)
{
  json_t *e = json_object_get(s, "enum");
  if (!e)
    return TWIN_OK;
  size_t old = push_key(p, "enum");
  int rc = TWIN_OK;
  char shown[64];
  if (!json_is_array(e) || !json_array_size(e)) {
    show_value(e, 0, shown, sizeof shown);
    rc = fail(err, p, "expected a non-empty array of allowed values, got %s",
              shown);
  }
  for (size_t i = 0; !rc && i < json_array_size(e); i++) {
    json_t *v = json_array_get(e, i);
    if (type_matches(v, t))
      continue;
    size_t at = push_index(p, i);
    show_value(v, 0, shown, sizeof shown);
    rc = fail(err, p, "expected %s, got %s", type_expected[t], shown);
    pop(p, at);
  }
  pop(p, old);
  return rc;
}

/* The small keywords: their values have the right kind. */
static int check_scalars(json_t *s, spath *p, core_err *err)
{
  char shown[64];
  json_t *v = json_object_get(s, "additionalProperties");
  if (v && !json_is_false(v)) {
    size_t old = push_key(p, "additionalProperties");
    int rc = fail(err, p,
                  "only false is supported (leave it out to allow other "
                  "keys)");
    pop(p, old);
    return rc;
  }
  static const char *const numbers[] = {"minimum", "maximum"};
  for (size_t i = 0; i < N_OF(numbers); i++) {
    v = json_object_get(s, numbers[i]);
    if (v && !json_is_number(v)) {
      show_value(v, 0, shown, sizeof shown);
      size_t old = push_key(p, numbers[i]);
      int rc = fail(err, p, "expected a number, got %s", shown);
      pop(p, old);
      return rc;
    }
  }
  static const char *const counts[] = {"minLength", "maxLength", "minItems",
                                       "maxItems"};
  for (size_t i = 0; i < N_OF(counts); i++) {
    int rc = check_count(s, counts[i], p, err);
    if (rc)
      return rc;
  }
  int rc = check_order(s, "minimum", "maximum", p, err);
  if (!rc)
    rc = check_order(s, "minLength", "maxLength", p, err);
  if (!rc)
    rc = check_order(s, "minItems", "maxItems", p, err);
  if (rc)
    return rc;
  v = json_object_get(s, "description");
  if (v && !json_is_string(v)) {
    show_value(v, 0, shown, sizeof shown);
    size_t old = push_key(p, "description");
    rc = fail(err, p, "expected a string, got %s", shown);
    pop(p, old);
    return rc;
  }
  v = json_object_get(s, "format");
  if (v) {
    int known = 0;
    for (size_t i = 0; json_is_string(v) && i < N_OF(formats); i++)
      known |= !strcmp(json_string_value(v), formats[i]);
    if (!known) {
      show_value(v, 1, shown, sizeof shown);
      size_t old = push_key(p, "format");
      rc = fail(err, p, "%s is not a supported format (supported: \"%s\")",
                shown, formats[0]);
      pop(p, old);
    }
  }
  return rc;
}

/* The default must pass the node's own rules (checked last, when the
 * rules themselves are known to be sound). */
static int check_default(json_t *s, spath *p, core_err *err)
{
  json_t *d = json_object_get(s, "default");
  if (!d)
    return TWIN_OK;
  json_t *copy = json_deep_copy(d);
  if (!copy)
    return nomem(err);
  size_t old = push_key(p, "default");
  int rc = validate(copy, s, p, err);
  pop(p, old);
  json_decref(copy);
  return rc;
}

static int check_node(json_t *s, spath *p, int depth, core_err *err)
{
  if (depth > DEPTH_MAX)
    return fail(err, p, "nested too deep (at most %d levels)", DEPTH_MAX);
  if (!json_is_object(s)) {
    char shown[64];
    show_value(s, 0, shown, sizeof shown);
    return fail(err, p,
                "expected a schema object such as {\"type\": \"string\"}, "
                "got %s",
                shown);
  }
  stype t = T_ANY;
  int rc = check_keywords(s, p, err);
  if (!rc)
    rc = check_type(s, p, depth, &t, err);
  if (!rc)
    rc = check_fits_type(s, t, p, err);
  if (!rc)
    rc = check_scalars(s, p, err);
  if (!rc)
    rc = check_properties(s, p, depth, err);
  if (!rc)
    rc = check_required(s, p, err);
  json_t *items = json_object_get(s, "items");
  if (!rc && items) {
    size_t old = push_key(p, "items");
    rc = check_node(items, p, depth + 1, err);
    pop(p, old);
  }
  if (!rc)
    rc = check_enum(s, t, p, err);
  if (!rc)
    rc = check_default(s, p, err);
  return rc;
}

/* Parse and check a schema; *out is a new reference on success. */
static int load_schema(const char *schema_json, json_t **out, core_err *err)
{
  *out = NULL;
  if (!schema_json)
    return core_err_set(err, TWIN_ERR_CONFIG, "no schema given");
  json_error_t je;
  json_t *s = json_loads(schema_json, JSON_REJECT_DUPLICATES, &je);
  if (!s)
    return core_err_set(err, TWIN_ERR_CONFIG, "%d:%d: invalid JSON: %s",
                        je.line, je.column, je.text);
  spath p = {.len = 0};
  p.buf[0] = 0;
  int rc = check_node(s, &p, 0, err);
  if (rc) {
    json_decref(s);
    return rc;
  }
  *out = s;
  return TWIN_OK;
}

int core_schema_load(const char *schema_json, json_t **out, core_err *err)
{
  return load_schema(schema_json, out, err);
}

int core_schema_validate(json_t *schema, json_t *value, core_err *err)
{
  spath p = {.len = 0};
  p.buf[0] = 0;
  return validate(value, schema, &p, err);
}

int core_schema_check(const char *schema_json, core_err *err)
{
  json_t *s;
  int rc = load_schema(schema_json, &s, err);
  json_decref(s);
  return rc;
}

/* ---- applying a schema -------------------------------------------------- */

int core_schema_apply(const char *schema_json, const char *config, size_t len,
                      char **out, core_err *err)
{
  if (!out)
    return core_err_set(err, TWIN_ERR_INVALID, "no place for the result");
  *out = NULL;
  json_t *schema = NULL, *cfg;
  if (!config || !len) {
    cfg = json_object();
    if (!cfg)
      return nomem(err);
  } else {
    json_error_t je;
    cfg = json_loadb(config, len, JSON_REJECT_DUPLICATES, &je);
    if (!cfg)
      return core_err_set(err, TWIN_ERR_CONFIG, "%d:%d: invalid JSON: %s",
                          je.line, je.column, je.text);
  }
  spath p = {.len = 0};
  p.buf[0] = 0;
  int rc = TWIN_OK;
  if (!json_is_object(cfg)) {
    char shown[64];
    show_value(cfg, 0, shown, sizeof shown);
    rc = fail(err, NULL,
              "expected an object with the plugin's settings, got %s", shown);
  } else if (!schema_json) {
    const char *key;
    json_t *val;
    json_object_foreach(cfg, key, val)
    {
      push_key(&p, key);
      rc = fail(err, &p, "unknown key (this plugin takes no config)");
      break;
    }
  } else {
    rc = load_schema(schema_json, &schema, err);
    if (rc)
      core_err_prefix(err, "the plugin's config schema is invalid");
    else
      rc = validate(cfg, schema, &p, err);
  }
  if (!rc) {
    *out = json_dumps(cfg, JSON_COMPACT | JSON_SORT_KEYS);
    if (!*out)
      rc = nomem(err);
  }
  json_decref(schema);
  json_decref(cfg);
  return rc;
}

/* ---- describing a schema ------------------------------------------------ */

/* A growing string; oom sticks so callers check once at the end. */
typedef struct sbuf {
  char *p;
  size_t len, cap;
  int oom;
} sbuf;

static void sb_printf(sbuf *b, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static void sb_printf(sbuf *b, const char *fmt, ...)
{
  if (b->oom)
    return;
  va_list ap;
  va_start(ap, fmt);
  int n = vsnprintf(NULL, 0, fmt, ap);
  va_end(ap);
  if (n < 0) {
    b->oom = 1;
    return;
  }
  if (b->len + (size_t)n + 1 > b->cap) {
    size_t cap = b->cap ? b->cap : 256;
    while (b->len + (size_t)n + 1 > cap)
      cap *= 2;
    char *np = realloc(b->p, cap);
    if (!np) {
      b->oom = 1;
      return;
    }
    b->p = np;
    b->cap = cap;
  }
  va_start(ap, fmt);
  vsnprintf(b->p + b->len, b->cap - b->len, fmt, ap);
  va_end(ap);
  b->len += (size_t)n;
}

/* One printed line: name, type, then details. */
typedef struct row {
  char *name, *type, *details;
} row;

typedef struct rows {
  row *v;
  size_t n, cap;
  int oom;
} rows;

static void add_row(rows *r, char *name, char *type, char *details)
{
  if (!r->oom && r->n == r->cap) {
    size_t cap = r->cap ? r->cap * 2 : 16;
    row *nv = realloc(r->v, cap * sizeof *nv);
    if (nv) {
      r->v = nv;
      r->cap = cap;
    } else {
      r->oom = 1;
    }
  }
  if (r->oom || !name || !type || !details) {
    r->oom = 1;
    free(name);
    free(type);
    free(details);
    return;
  }
  r->v[r->n++] = (row){name, type, details};
}

static void limits(sbuf *d, json_t *s, const char *lo, const char *hi,
                   const char *before, const char *after)
{
  json_t *a = json_object_get(s, lo), *b = json_object_get(s, hi);
  char x[64], y[64];
  if (a)
    show_value(a, 0, x, sizeof x);
  if (b)
    show_value(b, 0, y, sizeof y);
  if (a && b)
    sb_printf(d, "  (%s%s..%s%s)", before, x, y, after);
  else if (a)
    sb_printf(d, "  (%s>= %s%s)", before, x, after);
  else if (b)
    sb_printf(d, "  (%s<= %s%s)", before, y, after);
}

static int is_required(json_t *parent, const char *name)
{
  json_t *req = json_object_get(parent, "required");
  for (size_t i = 0; i < json_array_size(req); i++) {
    const char *r = json_string_value(json_array_get(req, i));
    if (r && !strcmp(r, name))
      return 1;
  }
  return 0;
}

static char *type_label(json_t *s)
{
  stype t = node_type(s);
  json_t *items = json_object_get(s, "items");
  if (t == T_ARRAY && items && node_type(items) != T_ANY) {
    size_t n = strlen(type_names[node_type(items)]) + 10;
    char *label = malloc(n);
    if (label)
      snprintf(label, n, "array of %s", type_names[node_type(items)]);
    return label;
  }
  return strdup(type_names[t]);
}

static void describe_props(json_t *s, const char *prefix, rows *r);

static void describe_prop(json_t *parent, const char *prefix, const char *name,
                          json_t *ps, rows *r)
{
  sbuf full = {0}, d = {0};
  sb_printf(&full, "%s%s%s", prefix, *prefix ? "." : "", name);
  if (is_required(parent, name))
    sb_printf(&d, "  required");
  json_t *def = json_object_get(ps, "default");
  char shown[64];
  if (def) {
    show_value(def, 1, shown, sizeof shown);
    sb_printf(&d, "  default %s", shown);
  }
  limits(&d, ps, "minimum", "maximum", "", "");
  limits(&d, ps, "minLength", "maxLength", "length ", "");
  limits(&d, ps, "minItems", "maxItems", "", " items");
  json_t *e = json_object_get(ps, "enum");
  for (size_t i = 0; i < json_array_size(e); i++) {
    show_value(json_array_get(e, i), 1, shown, sizeof shown);
    sb_printf(&d, "%s%s", i ? ", " : "  one of ", shown);
  }
  const char *desc = json_string_value(json_object_get(ps, "description"));
  if (desc && *desc)
    sb_printf(&d, "  %s", desc);
  if (full.oom || d.oom) {
    free(full.p);
    free(d.p);
    r->oom = 1;
    return;
  }
  /* details begin with two spaces (the column gap); keep them out of the
   * stored text so an empty row has none. */
  char *details = strdup(d.p ? d.p + 2 : "");
  free(d.p);
  add_row(r, full.p ? full.p : strdup(name), type_label(ps), details);
  if (r->oom)
    return;
  const char *me = r->v[r->n - 1].name;
  json_t *items = json_object_get(ps, "items");
  if (json_object_get(ps, "properties")) {
    describe_props(ps, me, r);
  } else if (items && json_object_get(items, "properties")) {
    sbuf sub = {0};
    sb_printf(&sub, "%s[]", me);
    if (sub.oom) {
      r->oom = 1;
      return;
    }
    describe_props(items, sub.p, r);
    free(sub.p);
  }
}

static void describe_props(json_t *s, const char *prefix, rows *r)
{
  json_t *props = json_object_get(s, "properties");
  const char *name;
  json_t *ps;
  json_object_foreach(props, name, ps)
  {
    describe_prop(s, prefix, name, ps, r);
    if (r->oom)
      return;
  }
}

char *core_schema_describe(const char *schema_json)
{
  if (!schema_json)
    return strdup("  (no settings)\n");
  json_t *s;
  if (load_schema(schema_json, &s, NULL) != TWIN_OK)
    return NULL;
  rows r = {0};
  describe_props(s, "", &r);
  json_decref(s);
  sbuf out = {0};
  size_t wname = 0, wtype = 0;
  for (size_t i = 0; !r.oom && i < r.n; i++) {
    if (strlen(r.v[i].name) > wname)
      wname = strlen(r.v[i].name);
    if (strlen(r.v[i].type) > wtype)
      wtype = strlen(r.v[i].type);
  }
  if (!r.oom && !r.n)
    sb_printf(&out, "  (no settings)\n");
  for (size_t i = 0; !r.oom && i < r.n; i++) {
    if (*r.v[i].details)
      sb_printf(&out, "  %-*s  %-*s  %s\n", (int)wname, r.v[i].name, (int)wtype,
                r.v[i].type, r.v[i].details);
    else
      sb_printf(&out, "  %-*s  %s\n", (int)wname, r.v[i].name, r.v[i].type);
  }
  for (size_t i = 0; i < r.n; i++) {
    free(r.v[i].name);
    free(r.v[i].type);
    free(r.v[i].details);
  }
  free(r.v);
  if (r.oom || out.oom) {
    free(out.p);
    return NULL;
  }
  return out.p;
}
