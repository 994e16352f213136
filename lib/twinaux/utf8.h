/*
 * utf8.h — private to twinaux: the one UTF-8 check the JSON writer, the
 * member scanner and the message cutter share. Static inline, so the static
 * library exports no helper symbol into the plugins that link it.
 */
#ifndef TWINAUX_UTF8_H
#define TWINAUX_UTF8_H

#include <stddef.h>

/*
 * The length (1..4) of the well-formed UTF-8 sequence at s[0..n), or 0 when
 * it is not one: overlong forms, surrogates (U+D800..U+DFFF) and code points
 * above U+10FFFF are refused, as RFC 3629 demands.
 */
static inline size_t aux_utf8_seq(const unsigned char *s, size_t n)
{
  if (n == 0)
    return 0;
  unsigned char c = s[0];
  if (c < 0x80)
    return 1;
  size_t len;
  unsigned char lo = 0x80, hi = 0xBF; /* allowed range of the second byte */
  if (c >= 0xC2 && c <= 0xDF) {
    len = 2;
  } else if (c >= 0xE0 && c <= 0xEF) {
    len = 3;
    if (c == 0xE0)
      lo = 0xA0; /* below is overlong */
    else if (c == 0xED)
      hi = 0x9F; /* above are the surrogates */
  } else if (c >= 0xF0 && c <= 0xF4) {
    len = 4;
    if (c == 0xF0)
      lo = 0x90; /* below is overlong */
    else if (c == 0xF4)
      hi = 0x8F; /* above is beyond U+10FFFF */
  } else {
    return 0; /* a continuation byte, C0/C1 (overlong) or F5..FF */
  }
  if (n < len || s[1] < lo || s[1] > hi)
    return 0;
  for (size_t i = 2; i < len; i++)
    if ((s[i] & 0xC0) != 0x80)
      return 0;
  return len;
}

#endif /* TWINAUX_UTF8_H */
