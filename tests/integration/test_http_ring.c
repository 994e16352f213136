/*
 * test_http_ring.c — an HTTP ingest never holds a pool thread while the
 * pipeline's ring is full. An in-process host serves HTTP with one pool
 * thread; the writer is held by a job that waits for a gate; an ingest of
 * more documents than the ring holds fills it. While the writer is still
 * held, a second client's /healthz must be answered (by that one thread),
 * and only then is the gate opened; the ingest then answers with every
 * document accepted. Proved by ordering: the writer stays held until the
 * other client's answer was seen.
 */
#include "testhost.h"

#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "http.h"
#include "tokens.h"

#define DOCS 3000   /* more than the ring's 2048 */
#define WAIT_MS 60000 /* an answer that does not come fails the test */

/* Send all of text on fd. */
static void send_all(int fd, const char *text, size_t n)
{
  while (n) {
    ssize_t k = write(fd, text, n);
    if (k <= 0)
      fail_msg("write: the server closed the connection");
    text += k;
    n -= (size_t)k;
  }
}

/* One whole answer from fd (headers and a Content-Length body), or NULL
 * when none came within WAIT_MS. Caller frees. */
static char *read_answer(int fd)
{
  size_t len = 0, cap = 1 << 16;
  char *buf = malloc(cap);
  long long until = tu_mono_ms() + WAIT_MS;
  for (;;) {
    buf[len] = 0;
    const char *end = strstr(buf, "\r\n\r\n");
    const char *cl = strstr(buf, "Content-Length: ");
    if (end && cl && len >= (size_t)(end + 4 - buf) + strtoul(cl + 16, NULL,
                                                              10))
      return buf;
    long long left = until - tu_mono_ms();
    struct pollfd p = {fd, POLLIN, 0};
    if (left <= 0 || poll(&p, 1, (int)left) <= 0)
      break;
    if (len + 4096 >= cap)
      buf = realloc(buf, cap *= 2);
    ssize_t k = read(fd, buf + len, cap - len - 1);
    if (k <= 0)
      break;
    len += (size_t)k;
  }
  free(buf);
  return NULL;
}

static void a_full_ring_leaves_the_pool_thread_free(void **state)
{
  th_host *f = *state;
  core_err err;
  char token[CORE_TOKEN_MAX];
  if (core_token_create(f->h->store, f->h->cfg, "alpha", CORE_SCOPE_WRITE,
                        "ring", token, NULL, &err))
    fail_msg("token: %s", err.msg);
  core_http_config cfg = f->h->cfg->http;
  cfg.port = 0;
  cfg.threads = 1; /* one pool thread: a blocked one would answer nobody */
  core_http *srv;
  if (core_http_start(f->h, f->p, &cfg, &srv, &err))
    fail_msg("http: %s", err.msg);
  int port = core_http_port(srv);

  th_hold g;
  th_hold_writer(f, &g);

  /* one ingest of DOCS documents: more than the ring takes */
  size_t blen = 0;
  char *body = malloc(DOCS * 12 + 2);
  body[blen++] = '[';
  for (int i = 0; i < DOCS; i++)
    blen += (size_t)sprintf(body + blen, "%s{\"ops\":[]}", i ? "," : "");
  body[blen++] = ']';
  char *head = tu_fmt("POST /v1/towns/alpha/plugins/probe/ingest HTTP/1.1\r\n"
                      "Host: t\r\nAuthorization: Bearer %s\r\n"
                      "Content-Type: application/json\r\n"
                      "Content-Length: %zu\r\n\r\n",
                      token, blen);
  int a = tu_connect_loopback(port);
  assert_true(a >= 0);
  send_all(a, head, strlen(head));
  send_all(a, body, blen);

  /* the ring fills up (only this ingest writes to it): wait until it is */
  int full = 0;
  for (long long until = tu_mono_ms() + WAIT_MS;
       !full && tu_mono_ms() < until;) {
    int st = core_pipeline_when_space(f->p, th_hold_woken, &g);
    full = st == TWIN_OK;
    if (!full) {
      assert_int_equal(st, TWIN_STOP);
      tu_sleep_ms(5);
    }
  }
  assert_true(full);

  /* the writer is still held: the one pool thread answers someone else */
  int b = tu_connect_loopback(port);
  assert_true(b >= 0);
  const char *probe = "GET /healthz HTTP/1.1\r\nHost: t\r\n\r\n";
  send_all(b, probe, strlen(probe));
  char *health = read_answer(b);
  pthread_mutex_lock(&g.mu);
  int was_open = g.open;
  pthread_mutex_unlock(&g.mu);
  th_release(&g); /* held until now: the answer came (or never will) */
  if (!health)
    fail_msg("/healthz was not answered while the ingest waited for room "
             "in the ring: a pool thread is blocked");
  assert_non_null(strstr(health, "HTTP/1.1 200"));
  assert_int_equal(was_open, 0); /* answered with the writer held */

  /* released: the rest is queued as room frees, and all are committed */
  char *answer = read_answer(a);
  if (!answer)
    fail_msg("the ingest was not answered after the writer was released");
  assert_non_null(strstr(answer, "HTTP/1.1 200"));
  char want[64];
  snprintf(want, sizeof want, "{\"accepted\":%d,\"rejected\":0", DOCS);
  if (!strstr(answer, want))
    fail_msg("expected %s in the answer: %.300s", want, answer);
  close(a);
  close(b);
  core_http_stop(srv);
  free(answer);
  free(health);
  free(head);
  free(body);
  th_hold_end(f, &g);
}

static int setup(void **state)
{
  th_host *f = th_new();
  tu_utc_zoneinfo(f->dir);
  th_fixture(f, "probe.so");
  th_config(f, TH_FIXTURES,
            "{'id':'alpha','timezone':'UTC','scripts':'.',"
            " 'plugins':{'probe':{}}}");
  th_open(f);
  *state = f;
  return 0;
}

int main(void)
{
  const struct CMUnitTest tests[] = {
      cmocka_unit_test_setup_teardown(a_full_ring_leaves_the_pool_thread_free,
                                      setup, th_teardown),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
