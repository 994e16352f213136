/*
 * jsonscan.c — a validating JSON scanner (see jsonscan.h). Recursive
 * descent over the grammar of RFC 8259; strings are checked for UTF-8 and
 * control characters as jansson does.
 */
#include "jsonscan.h"

#include "util.h"

typedef struct scanner {
  const char *s;
  size_t len, i;
  core_json_scan_err *err;
} scanner;

static int fail(scanner *c, const char *why)
{
  c->err->at = c->i;
  c->err->why = why;
  return -1;
}

size_t core_json_ws(const char *s, size_t len, size_t i)
{
  while (i < len &&
         (s[i] == ' ' || s[i] == '\t' || s[i] == '\n' || s[i] == '\r'))
    i++;
  return i;
}

static int is_digit(char ch)
{
  return ch >= '0' && ch <= '9';
}

static int is_hex(char ch)
{
  return is_digit(ch) || (ch >= 'a' && ch <= 'f') || (ch >= 'A' && ch <= 'F');
}

static int scan_string(scanner *c)
{
  const char *s = c->s;
  size_t b = ++c->i; /* past the opening quote */
  while (c->i < c->len) {
    unsigned char ch = (unsigned char)s[c->i];
    if (ch == '"') {
      if (!core_utf8_valid(s + b, c->i - b)) {
        c->i = b;
        return fail(c, "a string is not valid UTF-8");
      }
      c->i++;
      return 0;
    }
    if (ch < 0x20)
      return fail(c, "a control character inside a string (escape it)");
    if (ch == '\\') {
      c->i++;
      if (c->i >= c->len)
        break;
      switch (s[c->i]) {
      case '"':
      case '\\':
      case '/':
      case 'b':
      case 'f':
      case 'n':
      case 'r':
      case 't':
        c->i++;
        continue;
      case 'u':
        for (int k = 1; k <= 4; k++)
          if (c->i + (size_t)k >= c->len || !is_hex(s[c->i + (size_t)k]))
            return fail(c, "\\u must be followed by four hex digits");
        c->i += 5;
        continue;
      default:
        return fail(c, "an invalid escape in a string");
      }
    }
    c->i++;
  }
  return fail(c, "a string is not closed");
}

static int scan_number(scanner *c)
{
  const char *s = c->s;
  if (s[c->i] == '-')
    c->i++;
  if (c->i >= c->len || !is_digit(s[c->i]))
    return fail(c, "a number needs a digit here");
  if (s[c->i] == '0')
    c->i++;
  else
    while (c->i < c->len && is_digit(s[c->i]))
      c->i++;
  if (c->i < c->len && s[c->i] == '.') {
    c->i++;
    if (c->i >= c->len || !is_digit(s[c->i]))
      return fail(c, "a number needs a digit after '.'");
    while (c->i < c->len && is_digit(s[c->i]))
      c->i++;
  }
  if (c->i < c->len && (s[c->i] == 'e' || s[c->i] == 'E')) {
    c->i++;
    if (c->i < c->len && (s[c->i] == '+' || s[c->i] == '-'))
      c->i++;
    if (c->i >= c->len || !is_digit(s[c->i]))
      return fail(c, "a number needs a digit in its exponent");
    while (c->i < c->len && is_digit(s[c->i]))
      c->i++;
  }
  return 0;
}

static int scan_literal(scanner *c, const char *word, size_t n)
{
  for (size_t k = 0; k < n; k++)
    if (c->i + k >= c->len || c->s[c->i + k] != word[k])
      return fail(c, "an unknown word (expected a value: a string, number, "
                     "object, array, true, false or null)");
  c->i += n;
  return 0;
}

static int scan_value(scanner *c, int depth)
{
  if (c->i >= c->len)
    return fail(c, "the text ends where a value should be");
  char ch = c->s[c->i];
  if (ch == '"')
    return scan_string(c);
  if (ch == '-' || is_digit(ch))
    return scan_number(c);
  if (ch == 't')
    return scan_literal(c, "true", 4);
  if (ch == 'f')
    return scan_literal(c, "false", 5);
  if (ch == 'n')
    return scan_literal(c, "null", 4);
  if (ch != '[' && ch != '{')
    return fail(c, "expected a value: a string, number, object, array, "
                   "true, false or null");
  if (depth >= CORE_JSON_MAX_DEPTH)
    return fail(c, "nested too deeply");
  int object = ch == '{';
  char close = object ? '}' : ']';
  c->i = core_json_ws(c->s, c->len, c->i + 1);
  if (c->i < c->len && c->s[c->i] == close) {
    c->i++;
    return 0;
  }
  for (;;) {
    if (object) {
      if (c->i >= c->len || c->s[c->i] != '"')
        return fail(c, "expected a member name in double quotes");
      if (scan_string(c))
        return -1;
      c->i = core_json_ws(c->s, c->len, c->i);
      if (c->i >= c->len || c->s[c->i] != ':')
        return fail(c, "expected ':' after a member name");
      c->i = core_json_ws(c->s, c->len, c->i + 1);
    }
    if (scan_value(c, depth + 1))
      return -1;
    c->i = core_json_ws(c->s, c->len, c->i);
    if (c->i >= c->len)
      return fail(c, object ? "an object is not closed"
                            : "an array is not closed");
    if (c->s[c->i] == close) {
      c->i++;
      return 0;
    }
    if (c->s[c->i] != ',')
      return fail(c, object ? "expected ',' or '}'" : "expected ',' or ']'");
    c->i = core_json_ws(c->s, c->len, c->i + 1);
  }
}

int core_json_scan(const char *s, size_t len, size_t i, size_t *end,
                   core_json_scan_err *err)
{
  scanner c = {s, len, i, err};
  if (scan_value(&c, 0))
    return -1;
  *end = c.i;
  return 0;
}

void core_json_line_col(const char *s, size_t at, size_t *line, size_t *col)
{
  size_t l = 1, start = 0;
  for (size_t k = 0; k < at; k++)
    if (s[k] == '\n') {
      l++;
      start = k + 1;
    }
  *line = l;
  *col = at - start + 1;
}
