/*
 * fuzz_http.c — libFuzzer target for the HTTP request parser and routing of
 * a real in-process server (core_http_start, the real libmicrohttpd, the
 * real sensors and parking plugins, real LMDB): each input is written as
 * raw bytes to a fresh TCP connection, which is then half-closed (for a
 * whole request, once its first answer came, at most 2 s later), and the
 * answer read until the server closes or 5 s pass. The promises checked:
 *
 * - a whole request (by its own Content-Length or chunks) gets an answer,
 *   or its connection is closed: it is never left hanging;
 * - whatever comes back is a sequence of HTTP/1.x answers, each starting
 *   with a status line "HTTP/1.x NNN ";
 * - every 4xx and 5xx has a body (but the answer to a HEAD request), and
 *   that body is the JSON error contract of docs/api.md,
 *   {"error":{"code","message"[,"field"]}} (or an ingest result for a 422);
 * - except the answers docs/api.md ("What libmicrohttpd still answers
 *   itself") lists as libmicrohttpd's own, recognised by their HTML text;
 *   its 431/414 only when the request is over twice max_header_bytes as
 *   the host counts it.
 *
 * A broken promise is an abort() naming it. "$TOKEN" in an input is
 * replaced by a token of town t with every scope, so seeds reach the
 * routes behind a token. Towns: t (sensors and parking, anonymous read)
 * and u (sensors, tokens only). The folder of the host is made with
 * core_temp_dir and removed as soon as the host is up.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <jansson.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "drive.h"
#include "host.h"
#include "http.h"
#include "pipeline.h"
#include "tokens.h"
#include "util.h"

#define READ_MS 5000
#define HEADER_LIMIT 16384 /* the default http.max_header_bytes */

static struct {
  core_host *h;
  core_pipeline *p;
  core_http *api;
  uint16_t port;
  char token[CORE_TOKEN_MAX];
} fz;

static void broken(const char *what, const char *answer, size_t len)
    __attribute__((noreturn));
static void broken(const char *what, const char *answer, size_t len)
{
  fprintf(stderr, "fuzz_http: %s; the answer (%zu bytes):\n%.*s\n", what, len,
          (int)(len < 3000 ? len : 3000), answer);
  abort();
}

static void teardown(void)
{
  core_http_stop(fz.api);
  core_pipeline_stop(fz.p);
  core_host_close(fz.h);
  fuzz_dir_remove();
  memset(&fz, 0, sizeof fz);
}

static void setup(void)
{
  signal(SIGPIPE, SIG_IGN);
  fuzz_dir_make("http");
  const char *plugins = getenv("TWIN_PLUGIN_BUILD_DIR");
  char path[4200] = "";
  if (plugins && *plugins && !strchr(plugins, '"') && !strchr(plugins, '\\'))
    snprintf(path, sizeof path, "\"plugin_path\":[\"%s\"],", plugins);
  char text[8192];
  snprintf(text, sizeof text,
           "{\"data_dir\":\"data\",%s"
           "\"http\":{\"request_timeout_s\":2,\"threads\":2},"
           "\"towns\":["
           "{\"id\":\"t\",\"timezone\":\"UTC\",\"scripts\":\".\","
           "\"api\":{\"anonymous_read\":true},\"plugins\":{"
           "\"sensors\":{\"config\":{}},"
           "\"parking\":{\"config\":{\"lots\":[{\"id\":\"p1\",\"lat\":48.8,"
           "\"lon\":12.9,\"total\":100}]}}}},"
           "{\"id\":\"u\",\"timezone\":\"UTC\",\"scripts\":\".\","
           "\"plugins\":{\"sensors\":{\"config\":{}}}}]}",
           path);
  char cfg[4200];
  snprintf(cfg, sizeof cfg, "%s/host.json", fuzz_dir());
  FILE *f = fopen(cfg, "wb");
  if (!f || fputs(text, f) < 0 || fclose(f) != 0)
    fuzz_die(cfg, "cannot write");
  core_err err;
  if (core_host_open(cfg, CORE_HOST_INSTANCES, &fz.h, &err))
    fuzz_die("host", err.msg);
  if (core_pipeline_start(fz.h, &fz.p, &err))
    fuzz_die("pipeline", err.msg);
  if (core_token_create(fz.h->store, fz.h->cfg, "t", CORE_SCOPE_ALL, "fuzz",
                        fz.token, NULL, &err))
    fuzz_die("token", err.msg);
  core_http_config hc = fz.h->cfg->http;
  hc.listen = "127.0.0.1";
  hc.port = 0;
  if (core_http_start(fz.h, fz.p, &hc, &fz.api, &err))
    fuzz_die("http", err.msg);
  fz.port = core_http_port(fz.api);
  atexit(teardown);
  fuzz_dir_remove();
}

/* ---- one exchange -------------------------------------------------------- */

typedef struct bytes {
  char *p;
  size_t len, cap;
} bytes;

static void put(bytes *b, const void *data, size_t n)
{
  if (b->len + n + 1 > b->cap) {
    size_t cap = b->cap ? b->cap : 4096;
    while (cap < b->len + n + 1)
      cap *= 2;
    char *p = realloc(b->p, cap);
    if (!p)
      fuzz_die("buffer", "out of memory");
    b->p = p;
    b->cap = cap;
  }
  memcpy(b->p + b->len, data, n);
  b->len += n;
  b->p[b->len] = 0;
}

/* data with every "$TOKEN" replaced by the token. */
static bytes expand(const uint8_t *data, size_t size)
{
  bytes b = {0};
  put(&b, "", 0);
  static const char mark[] = "$TOKEN";
  for (size_t i = 0; i < size;) {
    if (size - i >= 6 && !memcmp(data + i, mark, 6)) {
      put(&b, fz.token, strlen(fz.token));
      i += 6;
    } else {
      put(&b, data + i, 1);
      i++;
    }
  }
  return b;
}

static long long mono_ms(void)
{
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static const char *find(const char *hay, size_t n, const char *needle,
                        size_t m);
static const char *header(const char *h, const char *end, const char *name,
                          size_t *len);

/* 1 when req is a whole request as a client would judge it: its headers
 * ended and, by its Content-Length or chunks, its body sent. */
static int whole_request(const bytes *req)
{
  const char *h = find(req->p, req->len, "\r\n\r\n", 4);
  if (!h)
    return 0;
  const char *body = h + 4, *end = req->p + req->len;
  size_t vl;
  if (header(req->p, h, "Transfer-Encoding", &vl))
    return find(body - 2, (size_t)(end - body + 2), "\r\n0\r\n\r\n", 7) != NULL;
  const char *cl = header(req->p, h, "Content-Length", &vl);
  return !cl || (size_t)(end - body) >= (size_t)strtoull(cl, NULL, 10);
}

/* 1 when ans holds the whole first answer (after any 100 Continue): a
 * client that sent a whole request reads that much before it closes its
 * side, since libmicrohttpd drops a connection whose client closed while
 * its request waits (an ingest, for its commit). */
static int whole_answer(const bytes *ans, int head)
{
  const char *p = ans->p, *end = ans->p + ans->len;
  for (;;) {
    const char *h = find(p, (size_t)(end - p), "\r\n\r\n", 4);
    if (!h)
      return 0;
    if (end - p > 9 && p[9] == '1') { /* 1xx */
      p = h + 4;
      continue;
    }
    size_t vl;
    const char *body = h + 4;
    if (head || header(p, h, "Transfer-Encoding", &vl) == NULL) {
      const char *cl = header(p, h, "Content-Length", &vl);
      return head || !cl ||
             (size_t)(end - body) >= (size_t)strtoull(cl, NULL, 10);
    }
    const char *ct = header(p, h, "Content-Type", &vl);
    if (ct && vl >= 17 && !strncmp(ct, "text/event-stream", 17))
      return 1;
    return find(body, (size_t)(end - body), "\r\n0\r\n\r\n", 7) ||
           (end - body >= 5 && !strncmp(body, "0\r\n\r\n", 5));
  }
}

/* 1 when ans has more than interim answers (100 Continue). */
static int final_answer(const bytes *ans)
{
  const char *p = ans->p, *end = ans->p + ans->len;
  while (end - p > 12 && !strncmp(p, "HTTP/1.", 7) && p[9] == '1') {
    const char *h = find(p, (size_t)(end - p), "\r\n\r\n", 4);
    if (!h)
      return 0;
    p = h + 4;
  }
  return p < end;
}

/* Send req, half-close (once the answer came, for a whole request), read
 * until the server closes (1) or READ_MS pass (0). */
static int exchange(const bytes *req, bytes *answer)
{
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
  if (fd < 0)
    fuzz_die("socket", strerror(errno));
  struct sockaddr_in a = {0};
  a.sin_family = AF_INET;
  a.sin_port = htons(fz.port);
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (connect(fd, (struct sockaddr *)&a, sizeof a) && errno != EINPROGRESS)
    fuzz_die("connect", strerror(errno));
  long long end = mono_ms() + READ_MS, patience = 0;
  size_t sent = 0;
  int closed = 0, wr_done = 0, all_sent = 0;
  int wait = whole_request(req), head = !strncmp(req->p, "HEAD ", 5);
  while (mono_ms() < end) {
    if (all_sent && !wr_done &&
        (!wait || whole_answer(answer, head) || mono_ms() > patience)) {
      shutdown(fd, SHUT_WR);
      wr_done = 1;
    }
    struct pollfd p = {fd, POLLIN | (all_sent ? 0 : POLLOUT), 0};
    int k = poll(&p, 1, 20);
    if (k < 0 && errno != EINTR)
      break;
    if (k <= 0)
      continue;
    if ((p.revents & POLLOUT) && !all_sent) {
      ssize_t n = sent < req->len
                      ? send(fd, req->p + sent, req->len - sent, MSG_NOSIGNAL)
                      : 0;
      if (n > 0)
        sent += (size_t)n;
      if (sent == req->len || (n < 0 && errno != EAGAIN)) {
        all_sent = 1;
        patience = mono_ms() + 2000;
      }
    }
    if (p.revents & (POLLIN | POLLHUP | POLLERR)) {
      char buf[16384];
      ssize_t n = recv(fd, buf, sizeof buf, 0);
      if (n > 0) {
        put(answer, buf, (size_t)n);
      } else if (n == 0 || errno != EAGAIN) {
        closed = 1;
        break;
      }
    }
  }
  close(fd);
  return closed;
}

/* ---- the checks ---------------------------------------------------------- */

/* The first needle (m bytes) in hay (n bytes), or NULL. */
static const char *find(const char *hay, size_t n, const char *needle, size_t m)
{
  for (size_t i = 0; m && i + m <= n; i++)
    if (hay[i] == needle[0] && !memcmp(hay + i, needle, m))
      return hay + i;
  return NULL;
}

/* The value of header name in the block [h, end), or NULL; its length. */
static const char *header(const char *h, const char *end, const char *name,
                          size_t *len)
{
  size_t n = strlen(name);
  for (const char *s = h; s < end;) {
    const char *nl = memchr(s, '\n', (size_t)(end - s));
    const char *le = nl ? nl : end;
    if ((size_t)(le - s) > n && !strncasecmp(s, name, n) && s[n] == ':') {
      const char *v = s + n + 1;
      while (v < le && *v == ' ')
        v++;
      const char *ve = le;
      while (ve > v && (ve[-1] == '\r' || ve[-1] == ' '))
        ve--;
      *len = (size_t)(ve - v);
      return v;
    }
    s = nl ? nl + 1 : end;
  }
  return NULL;
}

/* The request's header block as the host counts it toward
 * max_header_bytes: its bytes, and 64 more per line and parameter. */
static size_t counted(const bytes *req)
{
  const char *end = strstr(req->p, "\r\n\r\n");
  size_t n = end ? (size_t)(end - req->p) : req->len, lines = 0, params = 0;
  const char *first = memchr(req->p, '\n', n);
  for (size_t i = 0; i < n; i++) {
    lines += req->p[i] == '\n';
    params += (req->p[i] == '&' || req->p[i] == '?') &&
              (!first || req->p + i < first);
  }
  return n + 64 * (lines + params);
}

/* One of libmicrohttpd's own answers that docs/api.md lists. */
static int documented_own(int status, const char *body, size_t len,
                          const bytes *req)
{
  static const struct {
    int status;
    const char *text;
  } own[] = {
      {400, "Your HTTP request was syntactically incorrect."},
      {400, "Your HTTP chunked encoding was syntactically incorrect."},
      {400, "Your HTTP request has wrong value for <b>Content-Length</b>"},
      {413, "Your HTTP request has too large value for <b>Content-Length</b>"},
      {413, "The chunk size used in your HTTP chunked encoded request is too"},
      {505, "Requested HTTP version is not supported."},
      {505, "Requested HTTP version is too old and not supported."},
  };
  char *text = strndup(body, len);
  int ok = 0;
  for (size_t i = 0; text && !ok && i < sizeof own / sizeof own[0]; i++)
    ok = status == own[i].status && strstr(text, own[i].text);
  if (!ok && text && (status == 431 || status == 414) &&
      strstr(text, "Your HTTP header was too big"))
    ok = counted(req) > 2 * HEADER_LIMIT;
  free(text);
  return ok;
}

/* The JSON error contract: {"error":{"code","message"[,"field"]}}. */
static int error_contract(const char *body, size_t len, int status)
{
  json_t *j = json_loadb(body, len, 0, NULL);
  json_t *e = json_object_get(j, "error");
  const char *code = json_string_value(json_object_get(e, "code"));
  const char *msg = json_string_value(json_object_get(e, "message"));
  json_t *field = json_object_get(e, "field");
  int ok = json_is_object(e) && code && *code && msg && *msg &&
           (!field || json_is_string(field));
  /* an ingest whose every document was rejected: its result */
  if (!ok && status == 422)
    ok = json_is_array(json_object_get(j, "results"));
  json_decref(j);
  return ok;
}

static int has_head_request(const bytes *req)
{
  return find(req->p, req->len, "HEAD", 4) != NULL;
}

static void check(const bytes *req, const bytes *ans, int closed)
{
  const char *p = ans->p, *end = ans->p + ans->len;
  while (p < end) {
    if (end - p < 13 || strncmp(p, "HTTP/1.", 7) ||
        (p[7] != '0' && p[7] != '1') || p[8] != ' ' || p[9] < '1' ||
        p[9] > '5' || p[10] < '0' || p[10] > '9' || p[11] < '0' ||
        p[11] > '9' || p[12] != ' ')
      broken("an answer does not start with a status line", p,
             (size_t)(end - p));
    int status = atoi(p + 9);
    const char *hend = find(p, (size_t)(end - p), "\r\n\r\n", 4);
    if (!hend) {
      if (closed)
        broken("an answer's headers end in the middle", p, (size_t)(end - p));
      return; /* cut by the time limit */
    }
    const char *body = hend + 4;
    if (status < 200) { /* 100 Continue */
      p = body;
      continue;
    }
    size_t vl = 0;
    const char *te = header(p, hend, "Transfer-Encoding", &vl);
    int chunked = te && vl == 7 && !strncasecmp(te, "chunked", 7);
    const char *cl = header(p, hend, "Content-Length", &vl);
    const char *ct = header(p, hend, "Content-Type", &vl);
    int json = ct && vl >= 16 && !strncmp(ct, "application/json", 16);
    if (ct && vl >= 17 && !strncmp(ct, "text/event-stream", 17))
      return; /* a stream: it ends, cut, when its client has gone */
    size_t blen;
    const char *next;
    char *dechunked = NULL;
    if (chunked) {
      bytes d = {0};
      put(&d, "", 0);
      const char *c = body;
      for (;;) {
        char *e;
        unsigned long n = strtoul(c, &e, 16);
        const char *crlf = find(c, (size_t)(end - c), "\r\n", 2);
        if (!crlf || e == c) {
          free(d.p);
          if (closed)
            broken("a chunked answer is cut", p, (size_t)(end - p));
          return;
        }
        c = crlf + 2;
        if (!n) {
          const char *t = find(c - 2, (size_t)(end - c + 2), "\r\n\r\n", 4);
          c = t ? t + 4 : end;
          break;
        }
        if ((size_t)(end - c) < n + 2) {
          free(d.p);
          return; /* a stream cut by the time limit */
        }
        put(&d, c, n);
        c += n + 2;
      }
      dechunked = d.p;
      body = dechunked;
      blen = d.len;
      next = c;
    } else if (cl) {
      size_t n = (size_t)strtoull(cl, NULL, 10);
      int head = has_head_request(req);
      int answer_next =
          (size_t)(end - body) >= 7 && !strncmp(body, "HTTP/1.", 7);
      if (n && answer_next && !ct && status >= 400 && !head) {
        /* libmicrohttpd's own answer whose header part it sends twice
         * (docs/api.md): its second header part follows */
        p = body;
        continue;
      }
      if (n && head && (answer_next || body == end)) {
        blen = 0; /* the answer to a HEAD request: no body */
        next = body;
      } else if ((size_t)(end - body) < n) {
        if (closed && !head)
          broken("an answer is shorter than its Content-Length", p,
                 (size_t)(end - p));
        return;
      } else {
        blen = n;
        next = body + n;
      }
    } else {
      blen = (size_t)(end - body);
      next = end;
    }
    if (status >= 400) {
      if (!blen) {
        if (!has_head_request(req))
          broken("an error answer has no body", p, (size_t)(end - p));
      } else if (json) {
        if (!error_contract(body, blen, status))
          broken("an error answer is not the JSON error contract", p,
                 (size_t)(end - p));
      } else if (!documented_own(status, body, blen, req)) {
        broken("an error answer is neither JSON nor one of libmicrohttpd's "
               "own that docs/api.md lists",
               p, (size_t)(end - p));
      }
    }
    free(dechunked);
    p = next;
  }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
  if (!fz.h)
    setup();
  bytes req = expand(data, size);
  bytes ans = {0};
  put(&ans, "", 0);
  int closed = exchange(&req, &ans);
  /* A whole request is answered, or its connection closed (a request
   * libmicrohttpd refuses without an answer); one left hanging is a
   * connection held for nothing. */
  if (!closed && !final_answer(&ans) && whole_request(&req))
    broken("a whole request got no answer and its connection stayed open",
           ans.p, ans.len);
  if (getenv("FUZZ_HTTP_TRACE")) { /* one line per input, for seeds */
    const char *nl = strstr(ans.p, "\r\n");
    const char *b = strstr(ans.p, "\r\n\r\n");
    fprintf(stderr, "fuzz_http: %.*s | %.100s%s\n", (int)(nl ? nl - ans.p : 0),
            ans.p, b ? b + 4 : "", closed ? "" : " (still open)");
  }
  check(&req, &ans, closed);
  free(req.p);
  free(ans.p);
  return 0;
}
