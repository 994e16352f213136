/*
 * fuzz_twinaux.c — libFuzzer target for the helper library's parsers: any
 * bytes given to the RFC 3339 parser, the member scanner and the JSON
 * string writer must give a status, never a crash or a read past the end.
 * What they accept must also hold together: a parsed time formats and
 * parses back to itself, a member's value lies inside the input, and a
 * string written by the writer reads back byte for byte.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "twin/twinaux.h"

static void check_time(const char *s, size_t len)
{
  twin_time strict = 0;
  int strict_rc = twinaux_time_parse(s, len, 0, &strict);
  for (int flags = 0; flags <= 3; flags++) {
    twin_time t;
    if (twinaux_time_parse(s, len, flags, &t) != TWIN_OK) {
      if (strict_rc == TWIN_OK)
        abort(); /* a flag only ever widens what is taken */
      continue;
    }
    if (strict_rc == TWIN_OK && t != strict)
      abort();
    for (int fflags = 0; fflags <= TWINAUX_TIME_MS; fflags++) {
      char buf[40];
      size_t n = twinaux_time_format(t, fflags, buf, sizeof buf);
      if (n == 0 || strlen(buf) != n)
        abort();
      /* An offset can carry 0000-01-01 or 9999-12-31 out of the years the
       * parser takes; the formatter then writes a sign, which it refuses. */
      if (buf[0] == '-' || buf[0] == '+')
        continue;
      twin_time back;
      if (twinaux_time_parse(buf, n, 0, &back) != TWIN_OK || back != t)
        abort();
    }
  }
}

static void check_member(const char *json, size_t len, const char *key)
{
  const char *val = NULL;
  size_t vlen = 0;
  int rc = twinaux_json_member(json, len, key, &val, &vlen);
  if (rc != TWIN_OK && rc != TWIN_ERR_NOT_FOUND && rc != TWIN_ERR_PARSE)
    abort();
  char small[8];
  int src = twinaux_json_member_str(json, len, key, small, sizeof small);
  if (rc != TWIN_OK) {
    if (src != rc)
      abort(); /* member_str finds what member finds */
    return;
  }
  if (vlen == 0 || val < json || val + vlen > json + len)
    abort();
  if (val[0] == '{') {
    /* a nested object is itself an object to the scanner */
    const char *v2;
    size_t l2;
    if (twinaux_json_member(val, vlen, key, &v2, &l2) == TWIN_ERR_PARSE)
      abort();
  }
  if (val[0] != '"') {
    if (src != TWIN_ERR_INVALID)
      abort();
    return;
  }
  /* Unescaping never lengthens a string: its raw length always fits. */
  char *big = malloc(vlen + 1);
  if (!big)
    return;
  int brc = twinaux_json_member_str(json, len, key, big, vlen + 1);
  if (brc != TWIN_OK && brc != TWIN_ERR_INVALID) /* INVALID: a \u0000 */
    abort();
  if (brc == TWIN_OK) {
    /* what member_str gives is UTF-8: the writer takes it */
    twinaux_json j;
    twinaux_json_init(&j);
    twinaux_json_str(&j, big);
    if (twinaux_json_status(&j) != TWIN_OK)
      abort();
    twinaux_json_free(&j);
  }
  free(big);
}

/* The input as a string value: the writer takes it exactly when it is
 * UTF-8, and the scanner reads back the same bytes. */
static void check_writer(const char *s, size_t len)
{
  twinaux_json j;
  twinaux_json_init(&j);
  twinaux_json_object(&j);
  twinaux_json_key(&j, "k");
  twinaux_json_strn(&j, s, len);
  twinaux_json_end(&j);
  if (twinaux_json_status(&j) == TWIN_OK) {
    size_t tlen;
    const char *text = twinaux_json_text(&j, &tlen);
    char *back = malloc(len + 1);
    if (back) {
      int rc = twinaux_json_member_str(text, tlen, "k", back, len + 1);
      int has_nul = memchr(s, '\0', len) != NULL;
      if (has_nul
              ? rc != TWIN_ERR_INVALID
              : rc != TWIN_OK || memcmp(back, s, len) != 0 || back[len] != '\0')
        abort();
      free(back);
    }
  } else if (twinaux_json_status(&j) != TWIN_ERR_INVALID) {
    if (twinaux_json_status(&j) != TWIN_ERR_NOMEM)
      abort();
  }
  twinaux_json_free(&j);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
  /* An exact-size copy, so that any overread is caught. */
  char *copy = malloc(size ? size : 1);
  if (!copy)
    return 0;
  memcpy(copy, data, size);
  check_time(copy, size);
  static const char *const keys[] = {"op", "a", "", "k", "\xc3\xa9"};
  for (size_t i = 0; i < sizeof keys / sizeof *keys; i++)
    check_member(copy, size, keys[i]);
  check_writer(copy, size);
  free(copy);
  return 0;
}
