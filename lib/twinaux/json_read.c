/*
 * json_read.c — reading one member of a request without a JSON library: a
 * scanner that walks the top-level object once, checking the whole text is
 * JSON (RFC 8259: UTF-8, escapes, numbers, nesting) and skipping nested
 * values with an explicit stack rather than recursion, so that no input can
 * exhaust the plugin's stack. Keys are compared after unescaping, so
 * "\u006fp" is the member "op", as any JSON parser would see it.
 */
#include <string.h>

#include "twin/twinaux.h"
#include "utf8.h"

/* Deeper nesting is refused; jansson's default limit is the same. */
#define NEST_MAX 2048

typedef struct cursor {
  const char *p, *end;
} cursor;

static void skip_ws(cursor *c)
{
  while (c->p < c->end &&
         (*c->p == ' ' || *c->p == '\t' || *c->p == '\n' || *c->p == '\r'))
    c->p++;
}

static int at(const cursor *c, char ch)
{
  return c->p < c->end && *c->p == ch;
}

static int hex4(cursor *c, unsigned *out)
{
  if (c->end - c->p < 4)
    return 0;
  unsigned v = 0;
  for (int i = 0; i < 4; i++) {
    char h = c->p[i];
    v <<= 4;
    if (h >= '0' && h <= '9')
      v |= (unsigned)(h - '0');
    else if (h >= 'a' && h <= 'f')
      v |= (unsigned)(h - 'a' + 10);
    else if (h >= 'A' && h <= 'F')
      v |= (unsigned)(h - 'A' + 10);
    else
      return 0;
  }
  c->p += 4;
  *out = v;
  return 1;
}

static size_t encode_utf8(unsigned cp, char *out)
{
  if (cp < 0x80) {
    out[0] = (char)cp;
    return 1;
  }
  if (cp < 0x800) {
    out[0] = (char)(0xC0 | (cp >> 6));
    out[1] = (char)(0x80 | (cp & 0x3F));
    return 2;
  }
  if (cp < 0x10000) {
    out[0] = (char)(0xE0 | (cp >> 12));
    out[1] = (char)(0x80 | ((cp >> 6) & 0x3F));
    out[2] = (char)(0x80 | (cp & 0x3F));
    return 3;
  }
  out[0] = (char)(0xF0 | (cp >> 18));
  out[1] = (char)(0x80 | ((cp >> 12) & 0x3F));
  out[2] = (char)(0x80 | ((cp >> 6) & 0x3F));
  out[3] = (char)(0x80 | (cp & 0x3F));
  return 4;
}

/*
 * One character of a string body at c->p (not its closing quote): its
 * UTF-8 bytes into out, their count into *n, c->p past it. Checking and
 * decoding are one function so that what the scanner accepts is exactly
 * what member_str can decode. A lone surrogate escape is refused, as
 * jansson refuses it: it has no UTF-8 form.
 */
static int string_char(cursor *c, char out[4], size_t *n)
{
  unsigned char ch = (unsigned char)*c->p;
  if (ch < 0x20)
    return 0; /* control characters must be escaped */
  if (ch != '\\') {
    size_t k =
        aux_utf8_seq((const unsigned char *)c->p, (size_t)(c->end - c->p));
    if (k == 0)
      return 0;
    memcpy(out, c->p, k);
    c->p += k;
    *n = k;
    return 1;
  }
  c->p++;
  if (c->p == c->end)
    return 0;
  static const char plain[] = "\"\\/bfnrt", decoded[] = "\"\\/\b\f\n\r\t";
  const char *e = *c->p ? strchr(plain, *c->p) : NULL;
  c->p++;
  if (e) {
    out[0] = decoded[e - plain];
    *n = 1;
    return 1;
  }
  unsigned cp, lo;
  if (c->p[-1] != 'u' || !hex4(c, &cp))
    return 0;
  if (cp >= 0xDC00 && cp <= 0xDFFF)
    return 0; /* a low surrogate without its high one */
  if (cp >= 0xD800 && cp <= 0xDBFF) {
    if (c->end - c->p < 2 || c->p[0] != '\\' || c->p[1] != 'u')
      return 0;
    c->p += 2;
    if (!hex4(c, &lo) || lo < 0xDC00 || lo > 0xDFFF)
      return 0;
    cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
  }
  *n = encode_utf8(cp, out);
  return 1;
}

/* A string at c->p; *body..*body_end are the bytes between its quotes. */
static int scan_string(cursor *c, const char **body, const char **body_end)
{
  if (!at(c, '"'))
    return 0;
  c->p++;
  const char *start = c->p;
  while (!at(c, '"')) {
    char unit[4];
    size_t n;
    if (c->p == c->end || !string_char(c, unit, &n))
      return 0;
  }
  if (body)
    *body = start;
  if (body_end)
    *body_end = c->p;
  c->p++;
  return 1;
}

static int scan_digits(cursor *c)
{
  const char *start = c->p;
  while (c->p < c->end && *c->p >= '0' && *c->p <= '9')
    c->p++;
  return c->p > start;
}

/* -?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)? */
static int scan_number(cursor *c)
{
  if (at(c, '-'))
    c->p++;
  if (at(c, '0'))
    c->p++;
  else if (!(c->p < c->end && *c->p >= '1' && *c->p <= '9') || !scan_digits(c))
    return 0;
  if (at(c, '.')) {
    c->p++;
    if (!scan_digits(c))
      return 0;
  }
  if (at(c, 'e') || at(c, 'E')) {
    c->p++;
    if (at(c, '+') || at(c, '-'))
      c->p++;
    if (!scan_digits(c))
      return 0;
  }
  return 1;
}

static int scan_word(cursor *c, const char *word)
{
  size_t n = strlen(word);
  if ((size_t)(c->end - c->p) < n || memcmp(c->p, word, n) != 0)
    return 0;
  c->p += n;
  return 1;
}

/* A key and its colon, with the blanks around them. */
static int scan_key(cursor *c, const char **body, const char **body_end)
{
  skip_ws(c);
  if (!scan_string(c, body, body_end))
    return 0;
  skip_ws(c);
  if (!at(c, ':'))
    return 0;
  c->p++;
  return 1;
}

/*
 * Skip one JSON value at c->p (after blanks), whatever its nesting. The
 * stack holds one bit per open level: set for an object, clear for an
 * array, so 2048 levels cost 256 bytes of stack.
 */
static int skip_value(cursor *c)
{
  unsigned char is_object[NEST_MAX / 8];
  int depth = 0;
  for (;;) {
    /* A value starts here. */
    skip_ws(c);
    if (c->p == c->end)
      return 0;
    char ch = *c->p;
    if (ch == '{' || ch == '[') {
      if (depth == NEST_MAX)
        return 0;
      unsigned char bit = (unsigned char)(1u << (depth % 8));
      if (ch == '{')
        is_object[depth / 8] |= bit;
      else
        is_object[depth / 8] &= (unsigned char)~bit;
      depth++;
      c->p++;
      skip_ws(c);
      if (!at(c, ch == '{' ? '}' : ']')) {
        if (ch == '{' && !scan_key(c, NULL, NULL))
          return 0;
        continue; /* the first element's value */
      }
      c->p++;
      depth--; /* empty: it ends at once */
    } else if (ch == '"') {
      if (!scan_string(c, NULL, NULL))
        return 0;
    } else if (ch == 't' || ch == 'f' || ch == 'n') {
      if (!scan_word(c, ch == 't' ? "true" : ch == 'f' ? "false" : "null"))
        return 0;
    } else if (!scan_number(c)) {
      return 0;
    }
    /* A value ended: close the levels that end with it, until one goes on
     * with another element. */
    for (;;) {
      if (depth == 0)
        return 1;
      int obj = (is_object[(depth - 1) / 8] >> ((depth - 1) % 8)) & 1;
      skip_ws(c);
      if (at(c, ',')) {
        c->p++;
        if (obj && !scan_key(c, NULL, NULL))
          return 0;
        break;
      }
      if (!at(c, obj ? '}' : ']'))
        return 0;
      c->p++;
      depth--;
    }
  }
}

/* Whether the string body b..e, unescaped, is key[0..klen). */
static int key_is(const char *b, const char *e, const char *key, size_t klen)
{
  cursor c = {b, e};
  size_t pos = 0;
  while (c.p < c.end) {
    char unit[4];
    size_t n;
    if (!string_char(&c, unit, &n) || n > klen - pos ||
        memcmp(key + pos, unit, n) != 0)
      return 0;
    pos += n;
  }
  return pos == klen;
}

int twinaux_json_member(const char *json, size_t len, const char *key,
                        const char **val, size_t *val_len)
{
  if (!json || !key || !val || !val_len)
    return TWIN_ERR_INVALID;
  size_t klen = strlen(key);
  cursor c = {json, json + len};
  const char *found = NULL;
  size_t found_len = 0;
  skip_ws(&c);
  if (!at(&c, '{'))
    return TWIN_ERR_PARSE;
  c.p++;
  skip_ws(&c);
  if (at(&c, '}')) {
    c.p++;
  } else {
    for (;;) {
      const char *kb, *ke;
      if (!scan_key(&c, &kb, &ke))
        return TWIN_ERR_PARSE;
      skip_ws(&c);
      const char *vb = c.p;
      if (!skip_value(&c))
        return TWIN_ERR_PARSE;
      /* Keep scanning after a match: the last duplicate wins, and a text
       * broken further on is not an object at all. */
      if (key_is(kb, ke, key, klen)) {
        found = vb;
        found_len = (size_t)(c.p - vb);
      }
      skip_ws(&c);
      if (at(&c, ',')) {
        c.p++;
        continue;
      }
      if (!at(&c, '}'))
        return TWIN_ERR_PARSE;
      c.p++;
      break;
    }
  }
  skip_ws(&c);
  if (c.p != c.end)
    return TWIN_ERR_PARSE;
  if (!found)
    return TWIN_ERR_NOT_FOUND;
  *val = found;
  *val_len = found_len;
  return TWIN_OK;
}

int twinaux_json_member_str(const char *json, size_t len, const char *key,
                            char *buf, size_t size)
{
  if (!buf)
    return TWIN_ERR_INVALID;
  if (size > 0)
    buf[0] = '\0';
  const char *val;
  size_t val_len;
  int rc = twinaux_json_member(json, len, key, &val, &val_len);
  if (rc != TWIN_OK)
    return rc;
  if (val[0] != '"')
    return TWIN_ERR_INVALID;
  /* The scanner checked the string, so decoding cannot fail but on an
   * escaped NUL, which a NUL-terminated result cannot hold. */
  cursor c = {val + 1, val + val_len - 1};
  size_t o = 0;
  while (c.p < c.end) {
    char unit[4];
    size_t n;
    if (!string_char(&c, unit, &n))
      return TWIN_ERR_PARSE;
    if (unit[0] == '\0') {
      if (size > 0)
        buf[0] = '\0';
      return TWIN_ERR_INVALID;
    }
    if (size - o <= n) {
      if (size > 0)
        buf[0] = '\0';
      return TWIN_ERR_TOO_BIG;
    }
    memcpy(buf + o, unit, n);
    o += n;
  }
  if (size == 0)
    return TWIN_ERR_TOO_BIG;
  buf[o] = '\0';
  return TWIN_OK;
}
