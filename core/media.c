/*
 * media.c — media type lists and Content-Type matching (see media.h).
 */
#include "media.h"

#include <ctype.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

/* RFC 6838 restricted-name characters. */
static int tok(int c)
{
  return isalnum(c) || strchr("!#$&^_.+-", c) != NULL;
}

int core_media_valid(const char *s, size_t n)
{
  size_t i = 0, a = 0, b = 0;
  while (i < n && s[i] && tok((unsigned char)s[i]))
    i++, a++;
  if (!a || i >= n || s[i] != '/')
    return 0;
  i++;
  while (i < n && s[i] && tok((unsigned char)s[i]))
    i++, b++;
  /* both names together fit the host's buffers (CORE_MEDIA_MAX) */
  return b > 0 && i == n && n < CORE_MEDIA_MAX;
}

/* The next entry of a ", "-separated list at *p: its bounds; 0 at the
 * end. Entries are separated by commas with optional blanks. */
static int next_entry(const char **p, const char **s, size_t *n)
{
  const char *q = *p;
  while (*q == ' ' || *q == '\t')
    q++;
  if (!*q)
    return 0;
  const char *e = strchr(q, ',');
  size_t len = e ? (size_t)(e - q) : strlen(q);
  *s = q;
  while (len && (q[len - 1] == ' ' || q[len - 1] == '\t'))
    len--;
  *n = len;
  *p = e ? e + 1 : q + strlen(q);
  return 1;
}

int core_media_list_check(const char *list, size_t *bad)
{
  const char *p = list ? list : "", *s;
  size_t n, pos = 0;
  while (next_entry(&p, &s, &n)) {
    pos++;
    if (!core_media_valid(s, n)) {
      if (bad)
        *bad = pos;
      return -1;
    }
  }
  /* nothing after the last comma: an empty last entry ("text/csv,") */
  const char *l = list ? list : "", *end = l + strlen(l);
  while (end > l && (end[-1] == ' ' || end[-1] == '\t'))
    end--;
  if (!pos || (end > l && end[-1] == ',')) {
    if (bad)
      *bad = pos + 1;
    return -1;
  }
  return 0;
}

void core_media_bare(const char *type, char *buf, size_t size)
{
  size_t i = 0;
  const char *t = type ? type : "";
  while (*t == ' ' || *t == '\t')
    t++;
  for (; t[i] && t[i] != ';' && t[i] != ' ' && t[i] != '\t' && i + 1 < size;
       i++)
    buf[i] = (char)tolower((unsigned char)t[i]);
  /* a type longer than buf is no type: cut short, it could match another */
  if (t[i] && t[i] != ';' && t[i] != ' ' && t[i] != '\t')
    i = 0;
  if (size)
    buf[i < size ? i : size - 1] = 0;
}

int core_media_in_list(const char *list, const char *type)
{
  char bare[CORE_MEDIA_MAX];
  core_media_bare(type, bare, sizeof bare);
  if (!bare[0])
    return 0;
  const char *p = list ? list : "", *s;
  size_t n;
  while (next_entry(&p, &s, &n))
    if (n == strlen(bare) && !strncasecmp(s, bare, n))
      return 1;
  return 0;
}

int core_media_is_json(const char *type)
{
  char bare[CORE_MEDIA_MAX];
  core_media_bare(type, bare, sizeof bare);
  size_t n = strlen(bare);
  return !strcmp(bare, "application/json") ||
         (!strncmp(bare, "application/", 12) && n > 17 &&
          !strcmp(bare + n - 5, "+json"));
}
