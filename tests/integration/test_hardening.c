/*
 * test_hardening.c — the HTTP API of a real `twinhost serve` tried as an
 * attacker would: slow clients (slowloris), one client taking every
 * connection, amplifying ingest bodies, event streams nobody reads, requests
 * libmicrohttpd would answer in HTML or not at all, ambiguous framing (a
 * smuggling risk behind a proxy), control characters in paths and
 * parameters, and a plugin that does not run. Each test is one finding of
 * that review and holds the fix in place.
 *
 * Everything is sent over raw loopback sockets, because curl cannot send
 * most of these requests. Clients are told apart by their source address:
 * 127.0.0.1 plays the attacker, other 127.x.y.z addresses other clients
 * (the whole 127/8 is loopback on Linux). Every wait is bounded; nothing is
 * asserted about how long something took, only about the order in which
 * things happened and what was answered.
 *
 * The main server (group setup) has the default limits but for a 2 s
 * request deadline and at most 6 event streams per town. Towns: alpha
 * (sensors, tokens only), beta (sensors, anonymous read), gamma (the probe
 * fixture told to fail in open: a plugin that does not run).
 */
#include "testutil.h"

#include <arpa/inet.h>
#include <errno.h>
#include <jansson.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#define WAIT_MS 20000 /* the most any answer is waited for */
#define DEADLINE_S 2  /* the main server's http.request_timeout_s */
#define TOWN_STREAMS 6
#define HEADER_LIMIT 16384 /* the default http.max_header_bytes */
#define DOC_LIMIT 10000    /* the default http.max_documents */
/* The stated bound on the answer to an ingest at the document limit. */
#define ANSWER_BOUND (256 * 1024)

typedef struct fx {
  char *dir, *config, *log;
  tu_server srv;
  tu_server crowd; /* the slowloris test's own server, while it runs */
  char *crowd_dir;
  char a_read[96], a_write[96], b_write[96];
} fx;

/* ---- raw HTTP over loopback ---------------------------------------------- */

/* A TCP connection to port from source address src (NULL: any). */
static int dial(int port, const char *src)
{
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  if (fd < 0)
    fail_msg("socket: %s", strerror(errno));
  if (src) {
    struct sockaddr_in b = {0};
    b.sin_family = AF_INET;
    if (inet_pton(AF_INET, src, &b.sin_addr) != 1)
      fail_msg("bad source address %s", src);
    if (bind(fd, (struct sockaddr *)&b, sizeof b))
      fail_msg("bind %s: %s", src, strerror(errno));
  }
  struct sockaddr_in a = {0};
  a.sin_family = AF_INET;
  a.sin_port = htons((uint16_t)port);
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (connect(fd, (struct sockaddr *)&a, sizeof a))
    fail_msg("connect from %s: %s", src ? src : "any", strerror(errno));
  return fd;
}

/* Send all n bytes; 0, or -1 when the server has closed. */
static int say(int fd, const void *data, size_t n)
{
  const char *p = data;
  while (n) {
    ssize_t k = send(fd, p, n, MSG_NOSIGNAL);
    if (k < 0 && errno == EINTR)
      continue;
    if (k <= 0)
      return -1;
    p += k;
    n -= (size_t)k;
  }
  return 0;
}

typedef struct answer {
  int status; /* 0: nothing came */
  char *raw;  /* everything received, NUL terminated */
  size_t len;
  const char *body; /* into raw */
  size_t body_len;
  int closed; /* the server closed the connection */
  json_t *json;
} answer;

static void answer_free(answer *a)
{
  free(a->raw);
  json_decref(a->json);
  memset(a, 0, sizeof *a);
}

/* The value of header name in a (a copy, caller frees), or NULL. */
static char *header_of(const answer *a, const char *name)
{
  size_t n = strlen(name);
  const char *end = a->body ? a->body : a->raw + a->len;
  for (const char *s = a->raw ? strstr(a->raw, "\r\n") : NULL;
       s && s + 2 < end;) {
    s += 2;
    const char *nl = strstr(s, "\r\n");
    if (!nl || nl == s)
      break;
    if ((size_t)(nl - s) > n && !strncasecmp(s, name, n) && s[n] == ':') {
      const char *v = s + n + 1;
      while (*v == ' ')
        v++;
      return tu_fmt("%.*s", (int)(nl - v), v);
    }
    s = nl;
  }
  return NULL;
}

static void parse_answer(answer *a)
{
  a->status = 0;
  a->body = NULL;
  a->body_len = 0;
  json_decref(a->json);
  a->json = NULL;
  if (!a->raw || strncmp(a->raw, "HTTP/1.", 7) || a->len < 12)
    return;
  a->status = atoi(a->raw + 9);
  const char *h = strstr(a->raw, "\r\n\r\n");
  if (!h)
    return;
  a->body = h + 4;
  a->body_len = a->len - (size_t)(a->body - a->raw);
  if (a->body_len && a->body[0] == '{')
    a->json = json_loadb(a->body, a->body_len, JSON_DISABLE_EOF_CHECK, NULL);
}

/* Read from fd until the server closes it, or ms pass. */
static answer hear(int fd, long ms)
{
  answer a = {0};
  size_t cap = 4096;
  a.raw = malloc(cap);
  a.raw[0] = 0;
  long long end = tu_mono_ms() + ms;
  for (;;) {
    long left = (long)(end - tu_mono_ms());
    if (left <= 0)
      break;
    struct pollfd p = {fd, POLLIN, 0};
    int k = poll(&p, 1, (int)left);
    if (k < 0 && errno == EINTR)
      continue;
    if (k <= 0)
      break;
    if (a.len + 4097 > cap) {
      cap *= 2;
      a.raw = realloc(a.raw, cap);
    }
    ssize_t n = recv(fd, a.raw + a.len, cap - a.len - 1, 0);
    if (n < 0 && errno == EINTR)
      continue;
    if (n <= 0) {
      a.closed = 1; /* EOF, or reset: gone either way */
      break;
    }
    a.len += (size_t)n;
    a.raw[a.len] = 0;
  }
  parse_answer(&a);
  return a;
}

/* Read from fd until want has arrived (1) or ms pass (0); what came is
 * appended to a. */
static int hear_until(int fd, answer *a, const char *want, long ms)
{
  if (!a->raw) {
    a->raw = calloc(1, 65536);
    a->len = 0;
  }
  long long end = tu_mono_ms() + ms;
  while (!strstr(a->raw, want)) {
    long left = (long)(end - tu_mono_ms());
    if (left <= 0 || a->len >= 65535)
      return 0;
    struct pollfd p = {fd, POLLIN, 0};
    if (poll(&p, 1, (int)left) <= 0)
      continue;
    ssize_t n = recv(fd, a->raw + a->len, 65535 - a->len, 0);
    if (n <= 0) {
      a->closed = 1;
      return 0;
    }
    a->len += (size_t)n;
    a->raw[a->len] = 0;
  }
  parse_answer(a);
  return 1;
}

/* One request (which should say Connection: close) from src; the answer. */
static answer ask_from(int port, const char *src, const char *req, size_t n)
{
  int fd = dial(port, src);
  answer a = {0};
  if (say(fd, req, n) == 0)
    a = hear(fd, WAIT_MS);
  else
    a = hear(fd, 1000); /* refused while sending: whatever it said */
  close(fd);
  return a;
}

static answer ask(fx *f, const char *src, const char *req)
{
  return ask_from(f->srv.port, src, req, strlen(req));
}

/* A GET with Connection: close (token may be NULL). */
static answer get_from(int port, const char *src, const char *path,
                       const char *token)
{
  char *auth =
      token ? tu_fmt("Authorization: Bearer %s\r\n", token) : tu_fmt("%s", "");
  char *req = tu_fmt(
      "GET %s HTTP/1.1\r\nHost: t\r\n%sConnection: close\r\n\r\n", path, auth);
  answer a = ask_from(port, src, req, strlen(req));
  free(req);
  free(auth);
  return a;
}

static void assert_contains(const char *text, const char *want)
{
  if (!text || !strstr(text, want))
    fail_msg("\"%.2000s\"\n  lacks \"%s\"", text ? text : "(null)", want);
}

static void expect_status(const answer *a, int status, const char *what)
{
  if (a->status != status)
    fail_msg("%s: status %d, want %d; received (%zu bytes, %s):\n%.1500s", what,
             a->status, status, a->len,
             a->closed ? "then closed" : "still open", a->raw ? a->raw : "");
}

/* status with {"error":{"code","message"[,"field"]}} in application/json:
 * the code, the field (NULL: not checked; "" : must be absent) and a
 * non-empty message. */
static void expect_error(const answer *a, int status, const char *code,
                         const char *field, const char *what)
{
  expect_status(a, status, what);
  char *type = header_of(a, "Content-Type");
  if (!type || strncmp(type, "application/json", 16))
    fail_msg("%s: Content-Type %s, want application/json:\n%.1500s", what,
             type ? type : "(none)", a->raw);
  free(type);
  json_t *e = json_object_get(a->json, "error");
  const char *c = json_string_value(json_object_get(e, "code"));
  const char *m = json_string_value(json_object_get(e, "message"));
  const char *fl = json_string_value(json_object_get(e, "field"));
  if (!c || strcmp(c, code))
    fail_msg("%s: error code %s, want %s:\n%.1500s", what, c ? c : "none", code,
             a->raw);
  if (!m || strlen(m) < 10)
    fail_msg("%s: the error has no message that says what to do:\n%.1500s",
             what, a->raw);
  if (field && *field && (!fl || strcmp(fl, field)))
    fail_msg("%s: error field %s, want %s:\n%.1500s", what, fl ? fl : "none",
             field, a->raw);
  if (field && !*field && fl)
    fail_msg("%s: error field %s, want none:\n%.1500s", what, fl, a->raw);
}

/* The value of an unlabelled gauge in /metrics. */
static long metric(int port, const char *name)
{
  answer a = get_from(port, "127.0.0.9", "/metrics", NULL);
  expect_status(&a, 200, "/metrics");
  char *want = tu_fmt("\n%s ", name);
  const char *at = strstr(a.raw, want);
  if (!at)
    fail_msg("/metrics lacks %s", name);
  long v = atol(at + strlen(want));
  free(want);
  answer_free(&a);
  return v;
}

/* Wait (at most WAIT_MS) until gauge name reads want; its last value. */
static long metric_until(int port, const char *name, long want)
{
  long v = metric(port, name);
  for (long long end = tu_mono_ms() + WAIT_MS; v != want && tu_mono_ms() < end;
       v = metric(port, name))
    tu_sleep_ms(50);
  return v;
}

/* ---- fixture ------------------------------------------------------------- */

static void token_create(const char *config, const char *town,
                         const char *scope, char tok[96])
{
  tu_run r = tu_twinhost(NULL, "--config", config, "token", "create", "--town",
                         town, "--scope", scope, NULL);
  if (r.exit_code != 0)
    fail_msg("token create exited %d: %s", r.exit_code, r.err);
  json_t *j = json_loads(r.out, 0, NULL);
  const char *t = json_string_value(json_object_get(j, "token"));
  if (!t)
    fail_msg("token create printed no token: %s", r.out);
  snprintf(tok, 96, "%s", t);
  json_decref(j);
  tu_run_free(&r);
}

/* The host config in dir with the given "http" object: alpha, beta and
 * gamma as described at the top. */
static char *write_config(const char *dir, const char *http)
{
  char *plugins = tu_fmt("%s/plugins", dir);
  char *probe = tu_fmt("%s/probe.so", tu_env("TWIN_FIXTURE_DIR"));
  char *link = tu_fmt("%s/probe.so", plugins);
  assert_int_equal(mkdir(plugins, 0755), 0);
  assert_int_equal(symlink(probe, link), 0);
  char *text = tu_fmt(
      "{\"data_dir\": \"data\", \"plugin_path\": [\"%s\", \"plugins\"],\n"
      " \"http\": %s,\n"
      " \"towns\": [\n"
      "  {\"id\": \"alpha\", \"timezone\": \"Europe/Berlin\",\n"
      "   \"scripts\": \"no-rules\",\n"
      "   \"plugins\": {\"sensors\": {\"config\": {}}}},\n"
      "  {\"id\": \"beta\", \"timezone\": \"Europe/Berlin\",\n"
      "   \"scripts\": \"no-rules\",\n"
      "   \"plugins\": {\"sensors\": {\"config\": {}}},\n"
      "   \"api\": {\"anonymous_read\": true}},\n"
      "  {\"id\": \"gamma\", \"timezone\": \"Europe/Berlin\",\n"
      "   \"scripts\": \"no-rules\",\n"
      "   \"plugins\": {\"probe\": {\"config\": {\"fail_open\": true}}}}]}\n",
      tu_env("TWIN_PLUGIN_BUILD_DIR"), http);
  char *path = tu_write_file(dir, "host.json", text);
  char *rules = tu_fmt("%s/no-rules", dir);
  assert_int_equal(mkdir(rules, 0755), 0);
  free(rules);
  free(text);
  free(plugins);
  free(probe);
  free(link);
  return path;
}

static int group_setup(void **state)
{
  signal(SIGPIPE, SIG_IGN);
  fx *f = calloc(1, sizeof *f);
  f->dir = tu_tempdir();
  f->srv.pid = -1;
  f->crowd.pid = -1;
  char *http = tu_fmt("{\"request_timeout_s\": %d, \"max_streams_per_town\": "
                      "%d, \"threads\": 4}",
                      DEADLINE_S, TOWN_STREAMS);
  f->config = write_config(f->dir, http);
  free(http);
  f->log = tu_fmt("%s/serve.log", f->dir);
  token_create(f->config, "alpha", "read", f->a_read);
  token_create(f->config, "alpha", "write", f->a_write);
  token_create(f->config, "beta", "write", f->b_write);
  tu_server_start(&f->srv, f->config, f->log);
  *state = f;
  return 0;
}

static int group_teardown(void **state)
{
  fx *f = *state;
  if (f->crowd.pid > 0) /* its test failed before stopping it */
    tu_server_stop(&f->crowd, SIGKILL);
  if (f->crowd_dir)
    tu_rmtree(f->crowd_dir);
  free(f->crowd_dir);
  int rc = tu_server_stop(&f->srv, SIGTERM);
  if (rc != 0) {
    char *log = tu_read_file(f->log);
    fprintf(stderr, "serve exited %d; its log:\n%s\n", rc, log ? log : "");
    free(log);
  }
  tu_rmtree(f->dir);
  free(f->dir);
  free(f->config);
  free(f->log);
  free(f);
  return rc != 0;
}

/* ---- 1. slow clients ----------------------------------------------------- */

#define SLOW 40 /* slow connections of one client: above its cap of 32 */

/* 40 connections of one client that send the start of a request and then
 * nothing more (a slowloris) on a server of 36 connections: the client
 * keeps its 32, the 8 over its cap are refused (429 JSON, or closed), and
 * /healthz and an authenticated read from another client are answered
 * while the 32 are still open and more over the cap are being opened. */
static void
slow_clients_keep_only_their_cap_and_others_are_answered(void **state)
{
  fx *f = *state;
  char *dir = f->crowd_dir = tu_tempdir();
  char *config = write_config(dir, "{\"max_connections\": 36, \"threads\": 2}");
  char *log = tu_fmt("%s/serve.log", dir);
  char tok[96];
  token_create(config, "alpha", "read", tok);
  tu_server *srv = &f->crowd;
  tu_server_start(srv, config, log);
  int fds[SLOW];
  static const char start[] = "GET /healthz HTTP/1.1\r\nHost: t\r\nX-Slow: ";
  for (int i = 0; i < SLOW; i++) {
    fds[i] = dial(srv->port, "127.0.0.1");
    assert_int_equal(say(fds[i], start, sizeof start - 1), 0);
  }
  /* Those over the cap are answered at once (which ones depends on the
   * order the server accepted them in); the others hear nothing. */
  int refused = 0, waiting = SLOW;
  for (long long end = tu_mono_ms() + WAIT_MS;
       refused < SLOW - 32 && tu_mono_ms() < end;) {
    struct pollfd p[SLOW];
    for (int i = 0; i < SLOW; i++)
      p[i] = (struct pollfd){fds[i], POLLIN, 0};
    if (poll(p, SLOW, 100) <= 0)
      continue;
    for (int i = 0; i < SLOW; i++) {
      if (fds[i] < 0 || !p[i].revents)
        continue;
      answer a = hear(fds[i], WAIT_MS);
      if (a.len) {
        expect_error(&a, 429, "too_many_connections_from_client", NULL,
                     "a connection over the client's cap");
        char *retry = header_of(&a, "Retry-After");
        assert_non_null(retry);
        free(retry);
      }
      answer_free(&a);
      refused++;
      waiting--;
      close(fds[i]);
      fds[i] = -1;
    }
  }
  assert_int_equal(refused, SLOW - 32);
  assert_int_equal(waiting, 32);
  /* Now, with the client holding its 32 and opening more over its cap
   * (on their way out, they take no place), another client is served. */
  int more[10];
  for (int i = 0; i < 10; i++)
    more[i] = dial(srv->port, "127.0.0.1");
  answer h = get_from(srv->port, "127.0.0.2", "/healthz", NULL);
  expect_status(&h, 200, "/healthz while a slow client holds its cap");
  answer_free(&h);
  answer r = get_from(srv->port, "127.0.0.2", "/v1/towns/alpha", tok);
  expect_status(&r, 200, "a read while a slow client holds its cap");
  answer_free(&r);
  for (int i = 0; i < 10; i++)
    close(more[i]);
  /* ... and the slow connections were all still open then. */
  for (int i = 0; i < SLOW; i++)
    if (fds[i] >= 0) {
      char c;
      ssize_t n = recv(fds[i], &c, 1, MSG_DONTWAIT);
      if (n >= 0)
        fail_msg("a slow connection was answered or closed before the "
                 "probes: the test proved nothing");
      close(fds[i]);
    }
  assert_int_equal(tu_server_stop(srv, SIGTERM), 0);
  tu_rmtree(dir);
  free(dir);
  f->crowd_dir = NULL;
  free(config);
  free(log);
}

/* A client over its cap (32 idle connections of its own) is answered 429
 * with Retry-After on its next connection. */
static void a_client_over_its_connection_cap_is_429(void **state)
{
  fx *f = *state;
  int fds[32];
  for (int i = 0; i < 32; i++)
    fds[i] = dial(f->srv.port, "127.0.0.3");
  /* the server counts a connection once it accepted it */
  assert_int_equal(metric_until(f->srv.port, "twinhost_http_connections", 33),
                   33);
  answer a = get_from(f->srv.port, "127.0.0.3", "/healthz", NULL);
  expect_error(&a, 429, "too_many_connections_from_client", "",
               "the 33rd connection of one client");
  char *retry = header_of(&a, "Retry-After");
  assert_non_null(retry);
  free(retry);
  assert_true(a.closed);
  answer_free(&a);
  for (int i = 0; i < 32; i++)
    close(fds[i]);
  /* once they are gone it is served again */
  assert_int_equal(metric_until(f->srv.port, "twinhost_http_connections", 1),
                   1);
  a = get_from(f->srv.port, "127.0.0.3", "/healthz", NULL);
  expect_status(&a, 200, "after the idle connections closed");
  answer_free(&a);
}

/* Headers dribbled a byte at a time, never finished: answered 408 JSON
 * with Connection: close once the 2 s deadline passed, and closed; its
 * connection is gone from the count afterwards. */
static void headers_dribbled_past_the_deadline_are_408_and_closed(void **state)
{
  fx *f = *state;
  long before = metric(f->srv.port, "twinhost_http_connections");
  int fd = dial(f->srv.port, "127.0.0.4");
  static const char start[] = "GET /healthz HTTP/1.1\r\nHost: t\r\nX-Slow: ";
  assert_int_equal(say(fd, start, sizeof start - 1), 0);
  answer a = {0};
  /* one byte every 200 ms, until the server answers or closes: at most
   * WAIT_MS */
  for (long long end = tu_mono_ms() + WAIT_MS;
       tu_mono_ms() < end && !a.len && !a.closed;) {
    if (say(fd, "a", 1))
      break;
    answer_free(&a);
    a = hear(fd, 200);
  }
  if (!a.closed) { /* the rest of the answer, and the close */
    answer rest = hear(fd, WAIT_MS);
    if (rest.len) {
      a.raw = realloc(a.raw, a.len + rest.len + 1);
      memcpy(a.raw + a.len, rest.raw, rest.len + 1);
      a.len += rest.len;
    }
    a.closed = rest.closed;
    answer_free(&rest);
    parse_answer(&a);
  }
  close(fd);
  expect_error(&a, 408, "request_timeout", "", "dribbled headers");
  char *conn = header_of(&a, "Connection");
  assert_non_null(conn);
  assert_string_equal(conn, "close");
  free(conn);
  assert_true(a.closed);
  answer_free(&a);
  /* its slot is free: the count is back where it was, and a request is
   * answered */
  assert_int_equal(
      metric_until(f->srv.port, "twinhost_http_connections", before), before);
  a = get_from(f->srv.port, "127.0.0.4", "/healthz", NULL);
  expect_status(&a, 200, "after the timed-out connection");
  answer_free(&a);
}

/* A body dribbled past the deadline: 408 JSON too, and nothing ingested. */
static void a_body_dribbled_past_the_deadline_is_408(void **state)
{
  fx *f = *state;
  static const char doc[] =
      "[{\"entity\":\"slowbody\",\"type\":\"Gauge\",\"attr\":\"x\","
      "\"time\":\"2024-05-01T00:00:00Z\",\"value\":1}]";
  char *head = tu_fmt("POST /v1/towns/beta/plugins/sensors/ingest HTTP/1.1\r\n"
                      "Host: t\r\nAuthorization: Bearer %s\r\n"
                      "Content-Type: application/json\r\n"
                      "Content-Length: %zu\r\n\r\n",
                      f->b_write, sizeof doc - 1);
  int fd = dial(f->srv.port, "127.0.0.4");
  assert_int_equal(say(fd, head, strlen(head)), 0);
  answer a = {0};
  size_t sent = 0;
  for (long long end = tu_mono_ms() + WAIT_MS;
       tu_mono_ms() < end && !a.len && !a.closed && sent < sizeof doc - 2;) {
    if (say(fd, doc + sent++, 1))
      break;
    answer_free(&a);
    a = hear(fd, 200);
  }
  if (!a.closed) {
    answer rest = hear(fd, WAIT_MS);
    if (rest.len) {
      a.raw = realloc(a.raw, a.len + rest.len + 1);
      memcpy(a.raw + a.len, rest.raw, rest.len + 1);
      a.len += rest.len;
    }
    answer_free(&rest);
    parse_answer(&a);
  }
  close(fd);
  free(head);
  expect_error(&a, 408, "request_timeout", "", "a dribbled body");
  answer_free(&a);
  a = get_from(f->srv.port, NULL,
               "/v1/towns/beta/entities/sensors/Gauge/slowbody", NULL);
  expect_error(&a, 404, "unknown_entity", NULL, "the timed-out document");
  answer_free(&a);
}

/* ---- 2. amplification ---------------------------------------------------- */

static char *ingest_request(const char *town, const char *token,
                            const char *body)
{
  return tu_fmt("POST /v1/towns/%s/plugins/sensors/ingest HTTP/1.1\r\n"
                "Host: t\r\nAuthorization: Bearer %s\r\n"
                "Content-Type: application/json\r\nConnection: close\r\n"
                "Content-Length: %zu\r\n\r\n%s",
                town, token, strlen(body), body);
}

/* "[<first>,{},{},...]" of n documents. */
static char *empty_docs(size_t n, const char *first)
{
  size_t cap = strlen(first) + 3 * n + 8;
  char *b = malloc(cap);
  size_t len = (size_t)snprintf(b, cap, "[%s", first);
  for (size_t i = 1; i < n; i++) {
    memcpy(b + len, ",{}", 3);
    len += 3;
  }
  b[len++] = ']';
  b[len] = 0;
  return b;
}

/* One document over http.max_documents: 413 too_many_documents before
 * anything is submitted, so not even the valid first document is stored. */
static void over_the_document_limit_is_413_and_nothing_is_ingested(void **state)
{
  fx *f = *state;
  char *body = empty_docs(
      DOC_LIMIT + 1, "{\"entity\":\"amp1\",\"type\":\"Gauge\",\"attr\":\"x\","
                     "\"time\":\"2024-05-01T00:00:00Z\",\"value\":1}");
  char *req = ingest_request("alpha", f->a_write, body);
  answer a = ask(f, NULL, req);
  expect_error(&a, 413, "too_many_documents", "body", "10001 documents");
  assert_contains(json_string_value(json_object_get(
                      json_object_get(a.json, "error"), "message")),
                  "10000");
  answer_free(&a);
  a = get_from(f->srv.port, NULL, "/v1/towns/alpha/entities/sensors/Gauge/amp1",
               f->a_read);
  expect_error(&a, 404, "unknown_entity", NULL, "the refused batch's first");
  answer_free(&a);
  free(req);
  free(body);
}

/* At the limit, 10000 documents that are all rejected: the answer counts
 * them all but lists at most 1000, and stays under ANSWER_BOUND. */
static void at_the_document_limit_the_answer_stays_small(void **state)
{
  fx *f = *state;
  char *body = empty_docs(DOC_LIMIT, "{}");
  char *req = ingest_request("alpha", f->a_write, body);
  answer a = ask(f, NULL, req);
  expect_status(&a, 422, "10000 documents, all rejected");
  if (a.body_len >= ANSWER_BOUND)
    fail_msg("the answer has %zu bytes; the bound is %d", a.body_len,
             ANSWER_BOUND);
  assert_non_null(a.json);
  assert_int_equal(json_integer_value(json_object_get(a.json, "rejected")),
                   DOC_LIMIT);
  assert_int_equal(json_integer_value(json_object_get(a.json, "accepted")), 0);
  json_t *rows = json_object_get(a.json, "results");
  assert_int_equal(json_array_size(rows), 1000);
  assert_int_equal(
      json_integer_value(json_object_get(a.json, "results_omitted")),
      DOC_LIMIT - 1000);
  assert_true(json_is_true(json_object_get(a.json, "results_truncated")));
  /* the rows are the first rejected ones, in order */
  assert_int_equal(
      json_integer_value(json_object_get(json_array_get(rows, 999), "index")),
      999);
  answer_free(&a);
  free(req);
  free(body);
}

/* ---- 3. event streams ---------------------------------------------------- */

static const char stream_req[] =
    "GET /v1/towns/beta/events/stream HTTP/1.1\r\nHost: t\r\n\r\n";

/* An event stream of beta (anonymous) from src: its fd once the stream's
 * first line came, or -1 with *refused filled when it was refused. */
static int stream_open(int port, const char *src, answer *refused)
{
  int fd = dial(port, src);
  assert_int_equal(say(fd, stream_req, sizeof stream_req - 1), 0);
  answer a = {0};
  if (hear_until(fd, &a, ": twinhost event stream", WAIT_MS)) {
    answer_free(&a);
    return fd;
  }
  if (!a.closed) {
    answer rest = hear(fd, WAIT_MS);
    if (rest.len) {
      a.raw = realloc(a.raw, a.len + rest.len + 1);
      memcpy(a.raw + a.len, rest.raw, rest.len + 1);
      a.len += rest.len;
    }
    answer_free(&rest);
  }
  parse_answer(&a);
  close(fd);
  *refused = a;
  return -1;
}

/* A client's 5th stream is 429 too_many_streams; another client may still
 * open one, until the town's 6 are taken. */
static void streams_are_capped_per_client_and_per_town(void **state)
{
  fx *f = *state;
  int fds[TOWN_STREAMS] = {0};
  answer a = {0};
  assert_int_equal(metric_until(f->srv.port, "twinhost_event_streams", 0), 0);
  for (int i = 0; i < 4; i++) {
    fds[i] = stream_open(f->srv.port, "127.0.0.5", &a);
    if (fds[i] < 0)
      fail_msg("stream %d of one client refused:\n%s", i + 1, a.raw);
  }
  assert_int_equal(stream_open(f->srv.port, "127.0.0.5", &a), -1);
  expect_error(&a, 429, "too_many_streams", "", "a client's 5th stream");
  char *retry = header_of(&a, "Retry-After");
  assert_non_null(retry);
  free(retry);
  answer_free(&a);
  /* other clients: up to the town's 6 */
  fds[4] = stream_open(f->srv.port, "127.0.0.6", &a);
  fds[5] = stream_open(f->srv.port, "127.0.0.7", &a);
  assert_true(fds[4] >= 0 && fds[5] >= 0);
  assert_int_equal(stream_open(f->srv.port, "127.0.0.8", &a), -1);
  expect_error(&a, 429, "too_many_streams", "", "the town's 7th stream");
  answer_free(&a);
  for (int i = 0; i < TOWN_STREAMS; i++)
    close(fds[i]);
  assert_int_equal(metric_until(f->srv.port, "twinhost_event_streams", 0), 0);
}

/* A stream whose client went away ends long before its next keepalive
 * (15 s): the gauge drops while we poll for at most 5 s. */
static void
a_closed_stream_frees_its_slot_before_the_next_keepalive(void **state)
{
  fx *f = *state;
  answer a = {0};
  assert_int_equal(metric_until(f->srv.port, "twinhost_event_streams", 0), 0);
  int fd = stream_open(f->srv.port, "127.0.0.5", &a);
  if (fd < 0)
    fail_msg("the stream was refused:\n%s", a.raw);
  assert_int_equal(metric(f->srv.port, "twinhost_event_streams"), 1);
  close(fd);
  long v = 1;
  for (long long end = tu_mono_ms() + 5000; v != 0 && tu_mono_ms() < end;) {
    tu_sleep_ms(50);
    v = metric(f->srv.port, "twinhost_event_streams");
  }
  assert_int_equal(v, 0);
}

/* ---- 4. every refusal in JSON -------------------------------------------- */

/* "GET <path>?a0=1&a1=1...&a<n-1>=1 HTTP/1.1" with Connection: close. */
static char *many_params(int n)
{
  size_t cap = (size_t)n * 12 + 128;
  char *b = malloc(cap);
  size_t len = (size_t)snprintf(b, cap, "GET /v1/towns/beta/entities?");
  for (int i = 0; i < n; i++)
    len += (size_t)snprintf(b + len, cap - len, "%sa%d=1", i ? "&" : "", i);
  snprintf(b + len, cap - len,
           " HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n");
  return b;
}

/* More than 256 query parameters: 400 too_many_parameters, also when they
 * are so many that libmicrohttpd would run out of the connection's memory
 * keeping them (8000 one-letter ones, a request target under the limit). */
static void too_many_parameters_are_400_json(void **state)
{
  fx *f = *state;
  char *req = many_params(736);
  answer a = ask(f, NULL, req);
  expect_error(&a, 400, "too_many_parameters", "", "736 parameters");
  answer_free(&a);
  free(req);
  char *q = malloc(2 * 8000 + 1);
  for (int i = 0; i < 8000; i++)
    memcpy(q + 2 * i, i ? "&a" : "?a", 2);
  q[2 * 8000] = 0;
  req = tu_fmt("GET /healthz%s HTTP/1.1\r\nHost: t\r\nConnection: close\r\n"
               "\r\n",
               q);
  a = ask(f, NULL, req);
  expect_error(&a, 400, "too_many_parameters", "", "8000 parameters");
  answer_free(&a);
  free(req);
  free(q);
}

/* A request target longer than max_header_bytes is 414 uri_too_long: the
 * path counts too. Up to twice the limit, the answer is ours (JSON). */
static void a_long_path_is_414_json_up_to_twice_the_limit(void **state)
{
  fx *f = *state;
  size_t sizes[] = {HEADER_LIMIT + 100, 2 * HEADER_LIMIT};
  for (size_t k = 0; k < 2; k++) {
    char *id = malloc(sizes[k] + 1);
    memset(id, 'a', sizes[k]);
    id[sizes[k]] = 0;
    char *req = tu_fmt("GET /v1/towns/%s HTTP/1.1\r\nHost: t\r\n"
                       "Connection: close\r\n\r\n",
                       id);
    answer a = ask(f, NULL, req);
    expect_error(&a, 414, "uri_too_long", "", "a long path");
    answer_free(&a);
    free(req);
    free(id);
  }
}

/* Headers over the limit, as one long header, a long query or many tiny
 * headers, are 431 JSON up to twice the limit (each header line counts 64
 * bytes more than its text). */
static void large_headers_are_431_json_up_to_twice_the_limit(void **state)
{
  fx *f = *state;
  /* one header of twice the limit */
  size_t n = 2 * HEADER_LIMIT - 100;
  char *big = malloc(n + 1);
  memset(big, 'b', n);
  big[n] = 0;
  char *req = tu_fmt("GET /v1/towns HTTP/1.1\r\nHost: t\r\nX-Big: %s\r\n"
                     "Connection: close\r\n\r\n",
                     big);
  answer a = ask(f, NULL, req);
  expect_error(&a, 431, "headers_too_large", "", "one long header");
  answer_free(&a);
  free(req);
  free(big);
  /* many tiny headers: 400 of "hNNN: x" (about 9 bytes each, counted as
   * 73) */
  char *tiny = malloc(400 * 16 + 1);
  size_t len = 0;
  for (int i = 0; i < 400; i++)
    len += (size_t)sprintf(tiny + len, "h%d: x\r\n", i);
  req = tu_fmt("GET /v1/towns HTTP/1.1\r\nHost: t\r\n%sConnection: close\r\n"
               "\r\n",
               tiny);
  a = ask(f, NULL, req);
  expect_error(&a, 431, "headers_too_large", "", "many tiny headers");
  answer_free(&a);
  free(req);
  free(tiny);
  /* headers and a query that are each under the limit, but not together */
  char *q = malloc(HEADER_LIMIT - 1000);
  memset(q, 'q', HEADER_LIMIT - 1001);
  q[HEADER_LIMIT - 1001] = 0;
  big = malloc(HEADER_LIMIT - 1000);
  memset(big, 'b', HEADER_LIMIT - 1001);
  big[HEADER_LIMIT - 1001] = 0;
  req = tu_fmt("GET /v1/towns/beta/entities?limit=%s HTTP/1.1\r\nHost: t\r\n"
               "X-Big: %s\r\nConnection: close\r\n\r\n",
               q, big);
  a = ask(f, NULL, req);
  expect_error(&a, 431, "headers_too_large", "", "query and headers");
  answer_free(&a);
  free(req);
  free(big);
  free(q);
}

/* ---- 5. strict framing --------------------------------------------------- */

static const char post_head[] =
    "POST /v1/towns/beta/plugins/sensors/query HTTP/1.1\r\nHost: t\r\n"
    "Content-Type: application/json\r\n";

/* The request (post_head + headers + body) is refused with status and
 * code at its headers, and the connection is closed. */
static void refused_framing(fx *f, const char *headers, const char *body,
                            int status, const char *code, const char *what)
{
  char *req = tu_fmt("%s%s\r\n%s", post_head, headers, body);
  answer a = ask(f, NULL, req);
  expect_error(&a, status, code, NULL, what);
  if (!a.closed)
    fail_msg("%s: the connection was left open", what);
  answer_free(&a);
  free(req);
}

static void conflicting_content_lengths_are_400_bad_framing(void **state)
{
  refused_framing(*state, "Content-Length: 2\r\nContent-Length: 5\r\n", "{}",
                  400, "bad_framing", "two Content-Length");
  refused_framing(*state, "Content-Length: 2\r\nTransfer-Encoding: chunked\r\n",
                  "2\r\n{}\r\n0\r\n\r\n", 400, "bad_framing",
                  "Content-Length and Transfer-Encoding");
}

static void a_transfer_encoding_other_than_chunked_is_501(void **state)
{
  refused_framing(*state, "Transfer-Encoding: gzip, chunked\r\n",
                  "2\r\n{}\r\n0\r\n\r\n", 501, "unsupported_transfer_encoding",
                  "gzip, chunked");
  refused_framing(
      *state, "Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n",
      "2\r\n{}\r\n0\r\n\r\n", 501, "unsupported_transfer_encoding",
      "Transfer-Encoding twice");
}

static void header_names_with_space_or_control_characters_are_400(void **state)
{
  refused_framing(*state, "Transfer-Encoding : chunked\r\n",
                  "2\r\n{}\r\n0\r\n\r\n", 400, "bad_header",
                  "a space before the colon");
  refused_framing(*state, "X-A\001b: c\r\nContent-Length: 2\r\n", "{}", 400,
                  "bad_header", "a control character in a header name");
  /* a line starting with NUL: libmicrohttpd takes it for the end of the
   * headers and would read the rest as a body or the next request */
  fx *f = *state;
  static const char req[] = "GET /v1/towns HTTP/1.1\r\nHost: t\r\n"
                            "\0Transfer-Encoding: chunked\r\n"
                            "Connection: close\r\n\r\n";
  answer a = ask_from(f->srv.port, NULL, req, sizeof req - 1);
  expect_error(&a, 400, "bad_header", NULL, "a header line starting with NUL");
  answer_free(&a);
  /* an obsolete folded line: a proxy may read it as a header of its own */
  refused_framing(*state,
                  "X-Folded: a\r\n Transfer-Encoding: chunked\r\n"
                  "Content-Length: 2\r\n",
                  "{}", 400, "bad_header", "a folded header line");
  refused_framing(*state, "X-Ctl: a\001b\r\nContent-Length: 2\r\n", "{}", 400,
                  "bad_header", "a control character in a value");
}

/* "Expect: 100-continue" on a request without a body, with more bytes
 * after it (found by fuzz_http): libmicrohttpd sent "100 Continue" and
 * handed those bytes over as a body at a moment no answer could be queued;
 * the connection hung until the idle timeout. Now it is answered. */
static void expect_100_continue_without_a_body_is_answered(void **state)
{
  fx *f = *state;
  static const char req[] = "POST /v1/towns/beta/plugins/sensors/query "
                            "HTTP/1.1\r\nHost: t\r\n"
                            "Expect: 100-continue\r\n\r\n{\"op\":\"x\"}";
  answer a = ask_from(f->srv.port, NULL, req, sizeof req - 1);
  expect_error(&a, 400, "bad_json", "body", "a query without a body");
  answer_free(&a);
  static const char get[] = "GET /healthz HTTP/1.1\r\nHost: t\r\n"
                            "Expect: 100-continue\r\n\r\nGET /v1";
  a = ask_from(f->srv.port, NULL, get, sizeof get - 1);
  expect_status(&a, 200, "a GET that expects 100-continue");
  answer_free(&a);
}

/* ---- 6. control characters in paths and parameters ----------------------- */

static void control_characters_in_paths_and_parameters_are_400(void **state)
{
  fx *f = *state;
  static const struct {
    const char *path, *field;
  } cases[] = {
      {"/v1/towns/beta%00/entities", "town"},
      {"/v1/towns/beta%0a/entities", "town"},
      {"/v1/towns/beta/entities/sensors/Gauge/g1%00", "id"},
      {"/v1/towns/beta/entities/sensors/Gauge/g1%0A", "id"},
      {"/v1/towns/beta/entities?plugin=sensors%00x", "plugin"},
      {"/v1/towns/beta/entities?plugin=sen%0asors", "plugin"},
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    answer a = get_from(f->srv.port, NULL, cases[i].path, NULL);
    expect_error(&a, 400, "bad_parameter", cases[i].field, cases[i].path);
    answer_free(&a);
  }
  /* a raw NUL, not percent-encoded: the target is not read as cut there */
  static const char raw[] = "GET /v1/towns/beta\0/entities HTTP/1.1\r\n"
                            "Host: t\r\nConnection: close\r\n\r\n";
  answer a = ask_from(f->srv.port, NULL, raw, sizeof raw - 1);
  expect_error(&a, 400, "bad_request", NULL, "a raw NUL in the path");
  answer_free(&a);
}

/* ---- 7. /healthz and a plugin that does not run -------------------------- */

static void
healthz_is_degraded_naming_the_plugin_that_does_not_run(void **state)
{
  fx *f = *state;
  answer a = get_from(f->srv.port, NULL, "/healthz", NULL);
  expect_status(&a, 200, "/healthz");
  assert_non_null(a.json);
  assert_string_equal(json_string_value(json_object_get(a.json, "status")),
                      "degraded");
  json_t *down = json_object_get(a.json, "degraded");
  assert_int_equal(json_array_size(down), 1);
  json_t *row = json_array_get(down, 0);
  assert_string_equal(json_string_value(json_object_get(row, "town")), "gamma");
  assert_string_equal(json_string_value(json_object_get(row, "plugin")),
                      "probe");
  assert_string_equal(json_string_value(json_object_get(row, "state")),
                      "disabled");
  assert_contains(json_string_value(json_object_get(row, "reason")),
                  "asked to fail in open");
  answer_free(&a);
  a = get_from(f->srv.port, NULL, "/metrics", NULL);
  assert_contains(a.raw, "\ntwinhost_plugin_up{town=\"gamma\",plugin="
                         "\"probe\"} 0\n");
  assert_contains(a.raw, "\ntwinhost_plugin_up{town=\"alpha\",plugin="
                         "\"sensors\"} 1\n");
  answer_free(&a);
}

int main(void)
{
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(
          slow_clients_keep_only_their_cap_and_others_are_answered),
      cmocka_unit_test(a_client_over_its_connection_cap_is_429),
      cmocka_unit_test(headers_dribbled_past_the_deadline_are_408_and_closed),
      cmocka_unit_test(a_body_dribbled_past_the_deadline_is_408),
      cmocka_unit_test(over_the_document_limit_is_413_and_nothing_is_ingested),
      cmocka_unit_test(at_the_document_limit_the_answer_stays_small),
      cmocka_unit_test(streams_are_capped_per_client_and_per_town),
      cmocka_unit_test(
          a_closed_stream_frees_its_slot_before_the_next_keepalive),
      cmocka_unit_test(too_many_parameters_are_400_json),
      cmocka_unit_test(a_long_path_is_414_json_up_to_twice_the_limit),
      cmocka_unit_test(large_headers_are_431_json_up_to_twice_the_limit),
      cmocka_unit_test(conflicting_content_lengths_are_400_bad_framing),
      cmocka_unit_test(a_transfer_encoding_other_than_chunked_is_501),
      cmocka_unit_test(header_names_with_space_or_control_characters_are_400),
      cmocka_unit_test(expect_100_continue_without_a_body_is_answered),
      cmocka_unit_test(control_characters_in_paths_and_parameters_are_400),
      cmocka_unit_test(healthz_is_degraded_naming_the_plugin_that_does_not_run),
  };
  return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
