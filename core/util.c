/*
 * util.c — errors, names, files, paths, time and the log line format shared
 * by every core file.
 */
#include "util.h"

#include "tz.h"
#include "twin/twinaux.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

/* Length of the valid UTF-8 sequence at p (at most n bytes), 0 if none. */
static size_t utf8_seq(const unsigned char *p, size_t n)
{
  size_t len = p[0] < 0x80             ? 1
               : (p[0] & 0xe0) == 0xc0 ? 2
               : (p[0] & 0xf0) == 0xe0 ? 3
               : (p[0] & 0xf8) == 0xf0 ? 4
                                       : 0;
  if (!len || len > n || (len == 2 && p[0] < 0xc2) || (len == 4 && p[0] > 0xf4))
    return 0;
  for (size_t i = 1; i < len; i++)
    if ((p[i] & 0xc0) != 0x80)
      return 0;
  if (len == 3 &&
      ((p[0] == 0xe0 && p[1] < 0xa0) || (p[0] == 0xed && p[1] >= 0xa0)))
    return 0; /* overlong, surrogate */
  if (len == 4 &&
      ((p[0] == 0xf0 && p[1] < 0x90) || (p[0] == 0xf4 && p[1] >= 0x90)))
    return 0; /* overlong, beyond U+10FFFF */
  return len;
}

int core_utf8_valid(const char *s, size_t n)
{
  const unsigned char *p = (const unsigned char *)s;
  for (size_t i = 0; i < n;) {
    size_t len = p[i] ? utf8_seq(p + i, n - i) : 0;
    if (!len)
      return 0;
    i += len;
  }
  return 1;
}

void core_utf8_fix(char *s)
{
  unsigned char *p = (unsigned char *)s;
  size_t n = strlen(s);
  for (size_t i = 0; i < n;) {
    size_t len = utf8_seq(p + i, n - i);
    if (len) {
      i += len;
      continue;
    }
    /* A lead byte whose sequence runs into the end was cut short: drop. */
    size_t want = p[i] >= 0xc2 && p[i] <= 0xf4 ? (p[i] >= 0xf0   ? 4
                                                  : p[i] >= 0xe0 ? 3
                                                                 : 2)
                                               : 0;
    int cut = want && i + want > n;
    for (size_t k = i + 1; cut && k < n; k++)
      cut = (p[k] & 0xc0) == 0x80;
    if (cut) {
      p[i] = 0;
      return;
    }
    p[i++] = '?';
  }
}

int core_err_set(core_err *e, int status, const char *fmt, ...)
{
  if (e) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(e->msg, sizeof e->msg, fmt, ap);
    va_end(ap);
    core_utf8_fix(e->msg);
    e->code[0] = 0;
    e->field[0] = 0;
  }
  return status;
}

void core_err_detail(core_err *e, const char *code, const char *field)
{
  if (!e)
    return;
  snprintf(e->code, sizeof e->code, "%s", code ? code : "");
  snprintf(e->field, sizeof e->field, "%s", field ? field : "");
  core_utf8_fix(e->field);
}

void core_err_prefix(core_err *e, const char *fmt, ...)
{
  if (!e)
    return;
  char prefix[512], old[sizeof e->msg];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(prefix, sizeof prefix, fmt, ap);
  va_end(ap);
  memcpy(old, e->msg, sizeof old);
  size_t n = strlen(prefix);
  if (n > sizeof e->msg - 3)
    n = sizeof e->msg - 3;
  memcpy(e->msg, prefix, n);
  memcpy(e->msg + n, ": ", 2);
  size_t rest = sizeof e->msg - n - 3;
  size_t m = strnlen(old, rest);
  memcpy(e->msg + n + 2, old, m);
  e->msg[n + 2 + m] = 0;
  core_utf8_fix(e->msg);
}

int core_valid_token(const char *s, size_t max, const char *also)
{
  size_t n = s ? strlen(s) : 0;
  if (!n || n > max)
    return 0;
  for (size_t i = 0; i < n; i++)
    if (!((s[i] >= 'a' && s[i] <= 'z') || (s[i] >= '0' && s[i] <= '9') ||
          (s[i] && strchr(also, s[i]))))
      return 0;
  return 1;
}

/* The names and messages of TWIN_STATUS_LIST come from twinaux, as the
 * plugins' do. */
const char *core_status_message(int status)
{
  return twinaux_status_message(status);
}

const char *core_status_name(int status)
{
  return twinaux_status_name(status);
}

int core_valid_id(const char *s)
{
  if (!s || !*s)
    return 0;
  size_t n = 0;
  for (const char *p = s; *p; p++, n++) {
    char c = *p;
    int ok = (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
             ((c == '-' || c == '_') && p != s);
    if (!ok || n >= 40)
      return 0;
  }
  return 1;
}

int core_valid_name(const char *s)
{
  if (!s || !*s || !core_utf8_valid(s, strnlen(s, TWIN_NAME_MAX + 1)))
    return 0;
  size_t n = 0;
  for (const unsigned char *p = (const unsigned char *)s; *p; p++, n++) {
    if (*p < 0x20 || *p == 0x7f || n >= TWIN_NAME_MAX)
      return 0;
  }
  return 1;
}

/* Edit distance; keys longer than 64 bytes never match anything worth
 * suggesting. */
static size_t edit_distance(const char *a, const char *b)
{
  size_t la = strlen(a), lb = strlen(b);
  if (la > 64 || lb > 64)
    return 99;
  size_t row[65];
  for (size_t j = 0; j <= lb; j++)
    row[j] = j;
  for (size_t i = 1; i <= la; i++) {
    size_t diag = row[0];
    row[0] = i;
    for (size_t j = 1; j <= lb; j++) {
      size_t up = row[j];
      size_t best = diag + (a[i - 1] != b[j - 1]);
      if (up + 1 < best)
        best = up + 1;
      if (row[j - 1] + 1 < best)
        best = row[j - 1] + 1;
      row[j] = best;
      diag = up;
    }
  }
  return row[lb];
}

void core_suggest(const char *key, const char *const *names, size_t n,
                  char *buf, size_t size)
{
  size_t best = 3, at = n;
  for (size_t i = 0; i < n; i++) {
    size_t d = edit_distance(key, names[i]);
    if (d < best && d < strlen(names[i])) {
      best = d;
      at = i;
    }
  }
  if (at < n)
    snprintf(buf, size, "; did you mean \"%.80s\"?", names[at]);
  else if (size)
    buf[0] = 0;
}

void core_join_names(const char *const *names, size_t n, char *buf, size_t size)
{
  size_t len = 0;
  buf[0] = 0;
  for (size_t i = 0; i < n; i++) {
    size_t need = strlen(names[i]) + (i ? 2 : 0);
    if (len + need + 4 >= size) {
      snprintf(buf + len, size - len, "%s...", i ? ", " : "");
      return;
    }
    len += (size_t)snprintf(buf + len, size - len, "%s%s", i ? ", " : "",
                            names[i]);
  }
}

/* A key prints bare when it looks like a name, else quoted in brackets, so
 * a path stays readable and unambiguous whatever the key holds. */
static int plain_key(const char *k)
{
  if (!*k)
    return 0;
  for (const char *p = k; *p; p++) {
    char ch = *p;
    if (!((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') ||
          (ch >= '0' && ch <= '9') || ch == '_' || ch == '-' || ch == '$'))
      return 0;
  }
  return 1;
}

void core_jpath_key(char *buf, size_t size, const char *parent, const char *key)
{
  if (plain_key(key)) {
    snprintf(buf, size, "%s%s%.80s", parent, *parent ? "." : "", key);
    return;
  }
  char safe[84];
  size_t n = 0;
  for (const unsigned char *p = (const unsigned char *)key;
       *p && n < sizeof safe - 4; p++)
    safe[n++] = (*p < 0x20 || *p == '"' || *p == 0x7f) ? '?' : (char)*p;
  if (strlen(key) > n) {
    memcpy(safe + n, "...", 3);
    n += 3;
  }
  safe[n] = 0;
  snprintf(buf, size, "%s[\"%s\"]", parent, safe);
}

json_t *core_value_json(const twin_value *v)
{
  switch (v->type) {
  case TWIN_VALUE_NUMBER:
    return json_real(v->as.number);
  case TWIN_VALUE_INT:
    return json_integer(v->as.integer);
  case TWIN_VALUE_STRING:
    return json_stringn(v->as.string.ptr, v->as.string.len);
  case TWIN_VALUE_BOOL:
    return json_boolean(v->as.boolean);
  default:
    return json_null();
  }
}

int core_read_file(const char *path, char **out, size_t *len, core_err *err)
{
  FILE *f = fopen(path, "rb");
  if (!f)
    return core_err_set(err, TWIN_ERR_NOT_FOUND, "%s: cannot open: %s", path,
                        strerror(errno));
  size_t cap = 8192, n = 0;
  char *buf = malloc(cap);
  for (;;) {
    if (!buf) {
      fclose(f);
      return core_err_set(err, TWIN_ERR_NOMEM, "%s: out of memory", path);
    }
    n += fread(buf + n, 1, cap - n - 1, f);
    if (n < cap - 1)
      break;
    char *nb = realloc(buf, cap *= 2);
    if (!nb)
      free(buf);
    buf = nb;
  }
  int bad = ferror(f);
  fclose(f);
  if (bad) {
    free(buf);
    return core_err_set(err, TWIN_ERR_STORE, "%s: read error", path);
  }
  buf[n] = 0;
  *out = buf;
  if (len)
    *len = n;
  return TWIN_OK;
}

char *core_path_join(const char *dir, const char *rel)
{
  if (!rel)
    return NULL;
  if (rel[0] == '/' || !dir || !*dir)
    return strdup(rel);
  size_t a = strlen(dir), b = strlen(rel);
  char *p = malloc(a + b + 2);
  if (!p)
    return NULL;
  memcpy(p, dir, a);
  size_t i = a;
  if (a && dir[a - 1] != '/')
    p[i++] = '/';
  memcpy(p + i, rel, b + 1);
  return p;
}

char *core_path_dir(const char *path)
{
  const char *slash = strrchr(path, '/');
  if (!slash)
    return strdup(".");
  if (slash == path)
    return strdup("/");
  return strndup(path, (size_t)(slash - path));
}

char *core_temp_dir(const char *prefix)
{
  const char *base = getenv("TMPDIR");
  if (!base || !*base)
    base = "/tmp";
  size_t n = strlen(base) + strlen(prefix) + 9;
  char *t = malloc(n);
  if (!t)
    return NULL;
  int len = snprintf(t, n, "%s/%s-", base, prefix);
  memset(t + len, 'X', 6); /* mkdtemp's template */
  t[len + 6] = 0;
  if (!mkdtemp(t)) {
    free(t);
    return NULL;
  }
  return t;
}

int core_mkdirs(const char *path, core_err *err)
{
  char *p = strdup(path);
  if (!p)
    return core_err_set(err, TWIN_ERR_NOMEM, "out of memory");
  for (char *s = p + 1; *s; s++) {
    if (*s != '/')
      continue;
    *s = 0;
    if (mkdir(p, 0755) && errno != EEXIST) {
      int e = errno;
      core_err_set(err, TWIN_ERR_STORE, "%s: cannot create folder: %s", p,
                   strerror(e));
      free(p);
      return TWIN_ERR_STORE;
    }
    *s = '/';
  }
  int rc = TWIN_OK;
  if (mkdir(p, 0755) && errno != EEXIST)
    rc = core_err_set(err, TWIN_ERR_STORE, "%s: cannot create folder: %s", p,
                      strerror(errno));
  free(p);
  return rc;
}

twin_time core_now_ms(void)
{
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  return (twin_time)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

uint64_t core_mono_ns(void)
{
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

int core_parse_time(const char *s, twin_time *out)
{
  /* One RFC 3339 parser for the host and its plugins (twinaux). */
  if (!s)
    return TWIN_ERR_PARSE;
  return twinaux_time_parse(s, strlen(s), TWINAUX_TIME_SPACE, out);
}

/* twinaux's formatter: no gmtime_r (glibc's takes a process-wide lock)
 * on the HTTP API's path, which prints a time per attribute and row. */
void core_format_time(twin_time t, char *buf, size_t len)
{
  if (!twinaux_time_format(t, TWINAUX_TIME_MS, buf, len) && len)
    snprintf(buf, len, "?");
}

static twin_level log_level = TWIN_LEVEL_INFO;
static int log_level_read;

void core_log_set_level(twin_level level)
{
  log_level = level;
  log_level_read = 1;
}

void core_log(twin_level level, const char *town, const char *plugin,
              const char *fmt, ...)
{
  static const char *names[] = {"debug", "info", "warning", "error"};
  if (!log_level_read) {
    const char *env = getenv("TWINHOST_LOG");
    for (int i = 0; env && i < 4; i++)
      if (!strcmp(env, names[i]))
        log_level = (twin_level)i;
    log_level_read = 1;
  }
  if (level < log_level || level > TWIN_LEVEL_ERROR)
    return;
  char line[2048];
  int n = snprintf(line, sizeof line, "twinhost: [%s] ", names[level]);
  if (town && n < (int)sizeof line)
    n += snprintf(line + n, sizeof line - (size_t)n, "%s%s%s: ", town,
                  plugin ? "/" : "", plugin ? plugin : "");
  if (n < (int)sizeof line) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(line + n, sizeof line - (size_t)n, fmt, ap);
    va_end(ap);
  }
  flockfile(stderr);
  fprintf(stderr, "%s\n", line);
  funlockfile(stderr);
}
