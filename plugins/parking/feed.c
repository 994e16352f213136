/*
 * feed.c — the parking plugin's feed pull over HTTP(S) with libcurl (see
 * feed.h): one reused easy handle per feed, total and connect timeouts, TLS
 * verification left on, up to 3 redirects over http/https only, an 8 MiB
 * body cap and conditional GETs with the remembered ETag / Last-Modified.
 */
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <curl/curl.h>

#include "feed.h"

#define FEED_USER_AGENT "twinhost-parking/1.0"
#define FEED_MAX_URL 4096
#define FEED_MAX_TIMEOUT_MS 600000L
#define FEED_MAX_CONNECT_MS 10000L
#define FEED_MAX_REDIRECTS 3L
/* Longest ETag / Last-Modified value remembered (longer ones are ignored). */
#define FEED_MAX_VALIDATOR 512

struct park_feed {
  CURL *curl;
  char *url;
  char *shown_url; /* url without user info, query, fragment: for messages */
  long timeout_ms;
  char *etag;          /* of the last accepted body, or NULL */
  char *last_modified; /* of the last accepted body, or NULL */
  /* Of the last body pulled, until the plugin accepts it: a body it could
   * not use must be fetched again, not answered 304 forever. */
  char *pending_etag, *pending_last_modified;
  char errbuf[CURL_ERROR_SIZE];
};

/* What one pull collects from the callbacks. */
typedef struct feed_pull {
  char *buf;
  size_t len;
  size_t cap;
  int too_big;
  char *etag;          /* of the latest response header block */
  char *last_modified; /* idem */
} feed_pull;

static pthread_once_t feed_once = PTHREAD_ONCE_INIT;
static CURLcode feed_global_rc = CURLE_FAILED_INIT;

static void feed_global_init(void)
{
  feed_global_rc = curl_global_init(CURL_GLOBAL_DEFAULT);
}

static char *feed_strndup(const char *s, size_t n)
{
  char *d = malloc(n + 1);
  if (d) {
    memcpy(d, s, n);
    d[n] = '\0';
  }
  return d;
}

static int feed_lower(int c)
{
  return (c >= 'A' && c <= 'Z') ? c - 'A' + 'a' : c;
}

/* 1 when s starts with prefix, ASCII case-insensitively. */
static int feed_has_prefix_ci(const char *s, size_t n, const char *prefix)
{
  size_t i;
  for (i = 0; prefix[i]; i++) {
    if (i >= n || feed_lower((unsigned char)s[i]) != prefix[i])
      return 0;
  }
  return 1;
}

static void feed_why(char *why, size_t whylen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void feed_why(char *why, size_t whylen, const char *fmt, ...)
{
  va_list ap;
  if (!why || whylen == 0)
    return;
  va_start(ap, fmt);
  vsnprintf(why, whylen, fmt, ap);
  va_end(ap);
}

/* The URL as shown in messages: scheme://host[:port]/path, no user info,
 * query or fragment. */
static char *feed_shown_url(const char *url)
{
  const char *scheme_end = strstr(url, "://");
  const char *auth = scheme_end ? scheme_end + 3 : url;
  size_t auth_len = strcspn(auth, "/?#");
  const char *at = NULL;
  const char *host;
  size_t i, path_len;
  char *out;
  for (i = 0; i < auth_len; i++) {
    if (auth[i] == '@')
      at = auth + i;
  }
  host = at ? at + 1 : auth;
  path_len = strcspn(auth + auth_len, "?#");
  out = malloc((size_t)(auth - url) + (size_t)(auth + auth_len - host) +
               path_len + 1);
  if (!out)
    return NULL;
  memcpy(out, url, (size_t)(auth - url));
  memcpy(out + (auth - url), host, (size_t)(auth + auth_len - host));
  memcpy(out + (auth - url) + (auth + auth_len - host), auth + auth_len,
         path_len);
  out[(size_t)(auth - url) + (size_t)(auth + auth_len - host) + path_len] =
      '\0';
  return out;
}

static int feed_url_ok(const char *url)
{
  size_t n, i;
  if (!url)
    return 0;
  n = strlen(url);
  if (n == 0 || n > FEED_MAX_URL)
    return 0;
  for (i = 0; i < n; i++) {
    unsigned char c = (unsigned char)url[i];
    if (c <= 0x20 || c == 0x7f)
      return 0;
  }
  if (feed_has_prefix_ci(url, n, "http://"))
    return n > strlen("http://");
  if (feed_has_prefix_ci(url, n, "https://"))
    return n > strlen("https://");
  return 0;
}

static size_t feed_on_body(char *data, size_t size, size_t nmemb, void *ud)
{
  feed_pull *p = ud;
  size_t n = size * nmemb;
  if (n > PARK_FEED_MAX_BODY - p->len) {
    p->too_big = 1;
    return 0; /* aborts the transfer with CURLE_WRITE_ERROR */
  }
  if (p->len + n + 1 > p->cap) {
    size_t cap = p->cap ? p->cap : 16384;
    char *buf;
    while (cap < p->len + n + 1)
      cap *= 2;
    if (cap > PARK_FEED_MAX_BODY + 1)
      cap = PARK_FEED_MAX_BODY + 1;
    buf = realloc(p->buf, cap);
    if (!buf)
      return 0;
    p->buf = buf;
    p->cap = cap;
  }
  memcpy(p->buf + p->len, data, n);
  p->len += n;
  p->buf[p->len] = '\0';
  return n;
}

/* The value of header line "Name: value\r\n" if its name is name, trimmed;
 * NULL otherwise or when too long. */
static char *feed_header_value(const char *line, size_t n, const char *name)
{
  size_t nl = strlen(name);
  size_t start, end;
  if (n <= nl || line[nl] != ':' || !feed_has_prefix_ci(line, n, name))
    return NULL;
  start = nl + 1;
  end = n;
  while (start < end && (line[start] == ' ' || line[start] == '\t'))
    start++;
  while (end > start && (line[end - 1] == '\r' || line[end - 1] == '\n' ||
                         line[end - 1] == ' ' || line[end - 1] == '\t'))
    end--;
  if (end == start || end - start > FEED_MAX_VALIDATOR)
    return NULL;
  for (size_t i = start; i < end; i++) {
    unsigned char c = (unsigned char)line[i];
    if (c < 0x20 || c == 0x7f)
      return NULL; /* never echo control characters into a request */
  }
  return feed_strndup(line + start, end - start);
}

static size_t feed_on_header(char *data, size_t size, size_t nmemb, void *ud)
{
  feed_pull *p = ud;
  size_t n = size * nmemb;
  char *v;
  if (feed_has_prefix_ci(data, n, "http/")) {
    /* A new response (after a redirect or 100 Continue): forget the last. */
    free(p->etag);
    free(p->last_modified);
    p->etag = p->last_modified = NULL;
    return n;
  }
  if ((v = feed_header_value(data, n, "etag"))) {
    free(p->etag);
    p->etag = v;
  } else if ((v = feed_header_value(data, n, "last-modified"))) {
    free(p->last_modified);
    p->last_modified = v;
  }
  return n;
}

park_feed *park_feed_new(const char *url, long timeout_ms)
{
  park_feed *f;
  CURL *c;
  if (!feed_url_ok(url) || timeout_ms < 1 || timeout_ms > FEED_MAX_TIMEOUT_MS)
    return NULL;
  if (pthread_once(&feed_once, feed_global_init) != 0 ||
      feed_global_rc != CURLE_OK)
    return NULL;
  f = calloc(1, sizeof *f);
  if (!f)
    return NULL;
  f->url = feed_strndup(url, strlen(url));
  f->shown_url = feed_shown_url(url);
  f->curl = c = curl_easy_init();
  f->timeout_ms = timeout_ms;
  if (!f->url || !f->shown_url || !c) {
    park_feed_free(f);
    return NULL;
  }
  /* Options that never change; a failure here means a libcurl without them,
   * which must not be used (e.g. one that cannot restrict protocols). */
  if (curl_easy_setopt(c, CURLOPT_URL, f->url) != CURLE_OK ||
      curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L) != CURLE_OK ||
#if LIBCURL_VERSION_NUM >= 0x075500
      curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "http,https") != CURLE_OK ||
      curl_easy_setopt(c, CURLOPT_REDIR_PROTOCOLS_STR, "http,https") !=
          CURLE_OK ||
#else
      curl_easy_setopt(c, CURLOPT_PROTOCOLS,
                       (long)(CURLPROTO_HTTP | CURLPROTO_HTTPS)) != CURLE_OK ||
      curl_easy_setopt(c, CURLOPT_REDIR_PROTOCOLS,
                       (long)(CURLPROTO_HTTP | CURLPROTO_HTTPS)) != CURLE_OK ||
#endif
      curl_easy_setopt(c, CURLOPT_FOLLOWLOCATION, 1L) != CURLE_OK ||
      curl_easy_setopt(c, CURLOPT_MAXREDIRS, FEED_MAX_REDIRECTS) != CURLE_OK ||
      curl_easy_setopt(c, CURLOPT_SSL_VERIFYPEER, 1L) != CURLE_OK ||
      curl_easy_setopt(c, CURLOPT_SSL_VERIFYHOST, 2L) != CURLE_OK ||
      curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, timeout_ms) != CURLE_OK ||
      curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT_MS,
                       timeout_ms < FEED_MAX_CONNECT_MS
                           ? timeout_ms
                           : FEED_MAX_CONNECT_MS) != CURLE_OK ||
      curl_easy_setopt(c, CURLOPT_USERAGENT, FEED_USER_AGENT) != CURLE_OK ||
      curl_easy_setopt(c, CURLOPT_ACCEPT_ENCODING, "") != CURLE_OK ||
      curl_easy_setopt(c, CURLOPT_MAXFILESIZE_LARGE,
                       (curl_off_t)PARK_FEED_MAX_BODY) != CURLE_OK ||
      curl_easy_setopt(c, CURLOPT_ERRORBUFFER, f->errbuf) != CURLE_OK ||
      curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, feed_on_body) != CURLE_OK ||
      curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, feed_on_header) != CURLE_OK) {
    park_feed_free(f);
    return NULL;
  }
  return f;
}

void park_feed_free(park_feed *f)
{
  if (!f)
    return;
  if (f->curl)
    curl_easy_cleanup(f->curl);
  free(f->url);
  free(f->shown_url);
  free(f->etag);
  free(f->last_modified);
  free(f->pending_etag);
  free(f->pending_last_modified);
  free(f);
}

/* Appends "Name: value" to the request headers; 0 on failure. */
static int feed_add_header(struct curl_slist **list, const char *name,
                           const char *value)
{
  char line[FEED_MAX_VALIDATOR + 64];
  struct curl_slist *next;
  snprintf(line, sizeof line, "%s: %s", name, value);
  next = curl_slist_append(*list, line);
  if (!next)
    return 0;
  *list = next;
  return 1;
}

static void feed_pull_clear(feed_pull *p)
{
  free(p->buf);
  free(p->etag);
  free(p->last_modified);
  memset(p, 0, sizeof *p);
}

int park_feed_pull(park_feed *f, char **body, size_t *len, char *why,
                   size_t whylen)
{
  feed_pull p;
  struct curl_slist *headers = NULL;
  CURLcode rc;
  long status = 0;
  int result = -1;

  if (why && whylen)
    why[0] = '\0';
  if (body)
    *body = NULL;
  if (len)
    *len = 0;
  if (!f || !body || !len) {
    feed_why(why, whylen, "park_feed_pull: invalid arguments");
    return -1;
  }
  memset(&p, 0, sizeof p);
  if ((f->etag && !feed_add_header(&headers, "If-None-Match", f->etag)) ||
      (f->last_modified &&
       !feed_add_header(&headers, "If-Modified-Since", f->last_modified))) {
    curl_slist_free_all(headers);
    feed_why(why, whylen, "GET %s: out of memory", f->shown_url);
    return -1;
  }
  f->errbuf[0] = '\0';
  curl_easy_setopt(f->curl, CURLOPT_HTTPHEADER, headers);
  curl_easy_setopt(f->curl, CURLOPT_WRITEDATA, &p);
  curl_easy_setopt(f->curl, CURLOPT_HEADERDATA, &p);
  rc = curl_easy_perform(f->curl);
  curl_easy_getinfo(f->curl, CURLINFO_RESPONSE_CODE, &status);
  /* The handle must not keep pointers to this call's stack or list. */
  curl_easy_setopt(f->curl, CURLOPT_HTTPHEADER, NULL);
  curl_easy_setopt(f->curl, CURLOPT_WRITEDATA, NULL);
  curl_easy_setopt(f->curl, CURLOPT_HEADERDATA, NULL);
  curl_slist_free_all(headers);

  if (p.too_big || rc == CURLE_FILESIZE_EXCEEDED) {
    feed_why(why, whylen, "GET %s: body larger than 8 MiB", f->shown_url);
  } else if (rc == CURLE_OPERATION_TIMEDOUT) {
    feed_why(why, whylen, "GET %s: timed out after %ld ms", f->shown_url,
             f->timeout_ms);
  } else if (rc == CURLE_TOO_MANY_REDIRECTS) {
    feed_why(why, whylen, "GET %s: more than %ld redirects", f->shown_url,
             FEED_MAX_REDIRECTS);
  } else if (rc == CURLE_UNSUPPORTED_PROTOCOL) {
    feed_why(why, whylen,
             "GET %s: refused a redirect to a scheme other than http or "
             "https",
             f->shown_url);
  } else if (rc != CURLE_OK) {
    feed_why(why, whylen, "GET %s: %s", f->shown_url,
             f->errbuf[0] ? f->errbuf : curl_easy_strerror(rc));
  } else if (status == 304) {
    result = 0;
  } else if (status < 200 || status > 299) {
    feed_why(why, whylen, "GET %s: HTTP %ld", f->shown_url, status);
  } else {
    if (!p.buf) {
      p.buf = malloc(1);
      if (!p.buf) {
        feed_why(why, whylen, "GET %s: out of memory", f->shown_url);
        feed_pull_clear(&p);
        return -1;
      }
      p.buf[0] = '\0';
    }
    /* Hold the validators of this body until the plugin accepts it; the
     * old ones no longer describe what we hold either way. */
    free(f->etag);
    free(f->last_modified);
    f->etag = f->last_modified = NULL;
    free(f->pending_etag);
    free(f->pending_last_modified);
    f->pending_etag = p.etag;
    f->pending_last_modified = p.last_modified;
    p.etag = p.last_modified = NULL;
    *body = p.buf;
    *len = p.len;
    p.buf = NULL;
    result = 1;
  }
  feed_pull_clear(&p);
  return result;
}

void park_feed_accept(park_feed *f)
{
  if (!f)
    return;
  free(f->etag);
  free(f->last_modified);
  f->etag = f->pending_etag;
  f->last_modified = f->pending_last_modified;
  f->pending_etag = f->pending_last_modified = NULL;
}
