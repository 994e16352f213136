/*
 * json_write.c — the JSON text writer: a reply built call by call into one
 * growing buffer, with the commas and colons placed from a small stack of
 * open levels instead of by the plugin. Errors stick, so a plugin may write
 * a whole reply and look at the status once, as with stdio's ferror.
 * Strings are escaped per RFC 8259 and must be UTF-8; numbers are written
 * in the fewest digits that read back as the same double.
 */
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "twin/twinaux.h"
#include "utf8.h"

void twinaux_json_init(twinaux_json *j)
{
  if (j)
    memset(j, 0, sizeof *j);
}

void twinaux_json_free(twinaux_json *j)
{
  if (!j)
    return;
  free(j->buf);
  twinaux_json_init(j); /* a second free, or reuse, is then harmless */
}

static void fail(twinaux_json *j, int status)
{
  if (j->status == TWIN_OK)
    j->status = status;
}

/* Room for n more bytes and a NUL; 0 after an error. */
static int reserve(twinaux_json *j, size_t n)
{
  if (j->status != TWIN_OK)
    return 0;
  if (n > SIZE_MAX / 2 - j->len) {
    fail(j, TWIN_ERR_NOMEM);
    return 0;
  }
  size_t need = j->len + n + 1;
  if (need <= j->cap)
    return 1;
  size_t cap = j->cap ? j->cap : 256;
  while (cap < need)
    cap *= 2;
  char *nb = realloc(j->buf, cap);
  if (!nb) {
    fail(j, TWIN_ERR_NOMEM);
    return 0;
  }
  j->buf = nb;
  j->cap = cap;
  return 1;
}

static void put(twinaux_json *j, const char *s, size_t n)
{
  if (!reserve(j, n))
    return;
  memcpy(j->buf + j->len, s, n);
  j->len += n;
  j->buf[j->len] = '\0';
}

/*
 * Before any value: refuse it where it cannot stand (a key is due, or the
 * top-level value is already complete) and write the comma an array
 * element after the first needs. In an object the key wrote the comma.
 */
static int value_begins(twinaux_json *j)
{
  if (!j || j->status != TWIN_OK)
    return 0;
  if (j->depth == 0) {
    if (j->done) {
      fail(j, TWIN_ERR_INVALID);
      return 0;
    }
    return 1;
  }
  int top = j->depth - 1;
  if (j->kind[top] == 'o') {
    fail(j, TWIN_ERR_INVALID); /* a value where a key belongs */
    return 0;
  }
  if (j->kind[top] == 'a' && j->has[top])
    put(j, ",", 1);
  return j->status == TWIN_OK;
}

static void value_ended(twinaux_json *j)
{
  if (j->status != TWIN_OK)
    return;
  if (j->depth == 0) {
    j->done = 1;
    return;
  }
  int top = j->depth - 1;
  if (j->kind[top] == 'v')
    j->kind[top] = 'o';
  j->has[top] = 1;
}

static void begin(twinaux_json *j, char kind, const char *open)
{
  if (!value_begins(j))
    return;
  if (j->depth >= TWINAUX_JSON_DEPTH) {
    fail(j, TWIN_ERR_INVALID);
    return;
  }
  put(j, open, 1);
  j->kind[j->depth] = kind;
  j->has[j->depth] = 0;
  j->depth++;
}

void twinaux_json_object(twinaux_json *j)
{
  begin(j, 'o', "{");
}

void twinaux_json_array(twinaux_json *j)
{
  begin(j, 'a', "[");
}

void twinaux_json_end(twinaux_json *j)
{
  if (!j || j->status != TWIN_OK)
    return;
  /* Nothing open, or a key still waiting for its value. */
  if (j->depth == 0 || j->kind[j->depth - 1] == 'v') {
    fail(j, TWIN_ERR_INVALID);
    return;
  }
  put(j, j->kind[j->depth - 1] == 'a' ? "]" : "}", 1);
  j->depth--;
  value_ended(j);
}

/* s[0..len) as a quoted JSON string; TWIN_ERR_INVALID when not UTF-8. */
static void put_string(twinaux_json *j, const char *s, size_t len)
{
  const unsigned char *u = (const unsigned char *)s;
  for (size_t i = 0; i < len;) {
    size_t n = aux_utf8_seq(u + i, len - i);
    if (n == 0) {
      fail(j, TWIN_ERR_INVALID);
      return;
    }
    i += n;
  }
  put(j, "\"", 1);
  size_t run = 0; /* start of the bytes that need no escape */
  for (size_t i = 0; i < len; i++) {
    unsigned char c = u[i];
    if (c >= 0x20 && c != '"' && c != '\\')
      continue;
    put(j, s + run, i - run);
    char esc[7];
    if (c == '"' || c == '\\') {
      esc[0] = '\\';
      esc[1] = (char)c;
      put(j, esc, 2);
    } else {
      snprintf(esc, sizeof esc, "\\u%04x", c);
      put(j, esc, 6);
    }
    run = i + 1;
  }
  put(j, s + run, len - run);
  put(j, "\"", 1);
}

void twinaux_json_key(twinaux_json *j, const char *key)
{
  if (!j || j->status != TWIN_OK)
    return;
  if (j->depth == 0 || j->kind[j->depth - 1] != 'o' || !key) {
    fail(j, TWIN_ERR_INVALID);
    return;
  }
  int top = j->depth - 1;
  if (j->has[top])
    put(j, ",", 1);
  put_string(j, key, strlen(key));
  put(j, ":", 1);
  if (j->status != TWIN_OK)
    return;
  j->kind[top] = 'v';
  j->has[top] = 1;
}

void twinaux_json_strn(twinaux_json *j, const char *s, size_t len)
{
  if (!s) {
    twinaux_json_null(j);
    return;
  }
  if (!value_begins(j))
    return;
  put_string(j, s, len);
  value_ended(j);
}

void twinaux_json_str(twinaux_json *j, const char *s)
{
  twinaux_json_strn(j, s, s ? strlen(s) : 0);
}

/* An already formatted scalar. */
static void put_scalar(twinaux_json *j, const char *text, size_t len)
{
  if (!value_begins(j))
    return;
  put(j, text, len);
  value_ended(j);
}

/*
 * printf's %g writes the locale's decimal point: map whatever stands
 * between the digits back to '.', so that a plugin whose process set
 * LC_NUMERIC still writes JSON. In place; returns the new length.
 */
static size_t dot_decimal_point(char *s)
{
  size_t o = 0;
  for (size_t i = 0; s[i];) {
    char c = s[i];
    if ((c >= '0' && c <= '9') || c == '-' || c == '+' || c == 'e' ||
        c == 'E') {
      s[o++] = c;
      i++;
    } else {
      s[o++] = '.';
      while (s[i] &&
             !((s[i] >= '0' && s[i] <= '9') || s[i] == 'e' || s[i] == 'E'))
        i++;
    }
  }
  s[o] = '\0';
  return o;
}

void twinaux_json_num(twinaux_json *j, double v)
{
  if (!isfinite(v)) {
    twinaux_json_null(j); /* JSON has no infinity or NaN */
    return;
  }
  /* The fewest significant digits that read back exactly; 17 always do.
   * strtod reads the locale's decimal point, as printf wrote it. */
  char text[32];
  for (int prec = 15; prec <= 17; prec++) {
    snprintf(text, sizeof text, "%.*g", prec, v);
    if (strtod(text, NULL) == v)
      break;
  }
  put_scalar(j, text, dot_decimal_point(text));
}

void twinaux_json_int(twinaux_json *j, int64_t v)
{
  char text[24];
  int n = snprintf(text, sizeof text, "%" PRId64, v);
  put_scalar(j, text, (size_t)n);
}

void twinaux_json_bool(twinaux_json *j, int v)
{
  if (v)
    put_scalar(j, "true", 4);
  else
    put_scalar(j, "false", 5);
}

void twinaux_json_null(twinaux_json *j)
{
  put_scalar(j, "null", 4);
}

void twinaux_json_time(twinaux_json *j, twin_time t)
{
  char text[40];
  size_t n = twinaux_time_format(t, 0, text, sizeof text);
  if (!value_begins(j))
    return;
  put_string(j, text, n);
  value_ended(j);
}

void twinaux_json_value(twinaux_json *j, const twin_value *v)
{
  if (!v) {
    twinaux_json_null(j);
    return;
  }
  switch (v->type) {
  case TWIN_VALUE_NULL:
    twinaux_json_null(j);
    return;
  case TWIN_VALUE_NUMBER:
    twinaux_json_num(j, v->as.number);
    return;
  case TWIN_VALUE_INT:
    twinaux_json_int(j, v->as.integer);
    return;
  case TWIN_VALUE_STRING:
    twinaux_json_strn(j, v->as.string.ptr, v->as.string.len);
    return;
  case TWIN_VALUE_BOOL:
    twinaux_json_bool(j, v->as.boolean);
    return;
  }
  if (j)
    fail(j, TWIN_ERR_INVALID); /* a type tag of a later ABI */
}

void twinaux_json_raw(twinaux_json *j, const char *json, size_t len)
{
  if (!j)
    return;
  if (!json || len == 0) {
    fail(j, TWIN_ERR_INVALID); /* nothing is not a value */
    return;
  }
  put_scalar(j, json, len);
}

int twinaux_json_status(const twinaux_json *j)
{
  return j ? j->status : TWIN_ERR_INVALID;
}

const char *twinaux_json_text(const twinaux_json *j, size_t *len)
{
  if (len)
    *len = j && j->buf ? j->len : 0;
  return j && j->buf ? j->buf : "";
}

int twinaux_json_respond(const twin_host_api *api, twin_ctx *ctx,
                         twinaux_json *j)
{
  int rc;
  if (!j) {
    rc = twinaux_error(api, ctx, TWIN_ERR_INVALID, "JSON reply: no writer");
  } else if (j->status != TWIN_OK) {
    rc = twinaux_error(api, ctx, j->status, "JSON reply: %s",
                       j->status == TWIN_ERR_NOMEM
                           ? "out of memory"
                           : "a value where a key belongs, a string that is "
                             "not UTF-8, an unmatched end or nesting too deep");
  } else if (!j->done && j->depth == 0) {
    rc = twinaux_error(api, ctx, TWIN_ERR_INVALID, "JSON reply: empty");
  } else if (!j->done) {
    rc = twinaux_error(api, ctx, TWIN_ERR_INVALID,
                       "JSON reply: incomplete (%d level%s still open)",
                       j->depth, j->depth == 1 ? "" : "s");
  } else if (!api || !api->respond) {
    rc = TWIN_ERR_INVALID;
  } else {
    rc = api->respond(ctx, j->buf, j->len);
    if (rc != TWIN_OK)
      twinaux_error(api, ctx, rc, "JSON reply: the host refused it: %s",
                    twinaux_status_message(rc));
  }
  twinaux_json_free(j);
  return rc;
}
