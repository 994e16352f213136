/*
 * test_fetch.c — feed pulls never hold up another town: a real `twinhost
 * serve` with town A's parking pulling a ParkAPI feed from a server in this
 * test that holds its reply, and town B ingesting over HTTP.
 *
 * Proven by order, not by timing: the feed server holds A's reply until B's
 * ingest was acknowledged, and the test checks that A's connection was
 * still held open when the acknowledgement came. Only then is A's reply
 * released, and A's lot is seen to land. Were the pull on the writer, B's
 * ingest would wait for it and the test's bounded wait for B would fail.
 */
#define _GNU_SOURCE /* POLLRDHUP */
#include "testhost.h"

#include <jansson.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

/* A feed server that answers one request, when told to. */
typedef struct held_feed {
  int listen_fd, conn_fd, port;
  pthread_t th;
  pthread_mutex_t mu;
  pthread_cond_t cv;
  int got_request, release, done;
  char body[1024];
} held_feed;

static void *feed_main(void *arg)
{
  held_feed *h = arg;
  int c = accept(h->listen_fd, NULL, NULL);
  char req[4096];
  ssize_t n = c >= 0 ? read(c, req, sizeof req) : -1;
  (void)n;
  pthread_mutex_lock(&h->mu);
  h->conn_fd = c;
  h->got_request = 1;
  pthread_cond_broadcast(&h->cv);
  while (!h->release)
    pthread_cond_wait(&h->cv, &h->mu);
  pthread_mutex_unlock(&h->mu);
  char head[256];
  int hl = snprintf(head, sizeof head,
                    "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                    "Content-Length: %zu\r\nConnection: close\r\n\r\n",
                    strlen(h->body));
  if (c >= 0 && (write(c, head, (size_t)hl) < 0 ||
                 write(c, h->body, strlen(h->body)) < 0))
    fprintf(stderr, "held feed: write failed\n");
  pthread_mutex_lock(&h->mu);
  h->done = 1;
  pthread_mutex_unlock(&h->mu);
  return NULL;
}

static void feed_start(held_feed *h)
{
  memset(h, 0, sizeof *h);
  pthread_mutex_init(&h->mu, NULL);
  pthread_cond_init(&h->cv, NULL);
  h->listen_fd = tu_listen_loopback(4, &h->port);
  h->conn_fd = -1;
  assert_int_equal(pthread_create(&h->th, NULL, feed_main, h), 0);
}

/* Wait (at most ms) until the feed was asked; 1 when it was. */
static int feed_wait_request(held_feed *h, long ms)
{
  long long end = tu_mono_ms() + ms;
  pthread_mutex_lock(&h->mu);
  while (!h->got_request && tu_mono_ms() < end) {
    pthread_mutex_unlock(&h->mu);
    tu_sleep_ms(20);
    pthread_mutex_lock(&h->mu);
  }
  int got = h->got_request;
  pthread_mutex_unlock(&h->mu);
  return got;
}

/* 1 while the held connection is open (the puller still waits on it). */
static int feed_still_held(held_feed *h)
{
  struct pollfd p = {h->conn_fd, POLLIN | POLLRDHUP, 0};
  if (h->conn_fd < 0)
    return 0;
  int n = poll(&p, 1, 0);
  return n == 0 || !(p.revents & (POLLRDHUP | POLLHUP | POLLERR));
}

static void feed_release(held_feed *h)
{
  pthread_mutex_lock(&h->mu);
  h->release = 1;
  pthread_cond_broadcast(&h->cv);
  pthread_mutex_unlock(&h->mu);
}

static void feed_stop(held_feed *h)
{
  feed_release(h);
  if (!h->got_request) { /* nobody came: unblock accept */
    int s = tu_connect_loopback(h->port);
    if (s >= 0 && write(s, "x", 1) < 0)
      fprintf(stderr, "held feed: cannot wake accept\n");
    if (s >= 0)
      close(s);
  }
  pthread_join(h->th, NULL);
  if (h->conn_fd >= 0)
    close(h->conn_fd);
  close(h->listen_fd);
}

static void a_slow_feed_of_one_town_does_not_hold_another_towns_ingest(
    void **state)
{
  (void)state;
  th_host *t = th_new();
  tu_utc_zoneinfo(t->dir);
  held_feed feed;
  feed_start(&feed);
  char when[40];
  core_format_time(core_now_ms() - 60000, when, sizeof when);
  snprintf(feed.body, sizeof feed.body,
           "{\"last_updated\":\"%s\",\"lots\":[{\"id\":\"held\",\"total\":"
           "100,\"free\":42}]}",
           when);
  /* the pull may take a minute (feed and fetch timeouts): a writer that
   * waited for it would hold B far longer than the wait below allows */
  th_config(t, TH_BUILT,
            "{'id':'a','timezone':'UTC','scripts':'.','plugins':{"
            "'parking':{'config':{'feed_url':'http://127.0.0.1:%d/lots',"
            "'feed_timeout_ms':60000},'fetch_timeout_s':120}}},"
            "{'id':'b','timezone':'UTC','scripts':'.',"
            "'plugins':{'sensors':{}}}",
            feed.port);
  char *token = th_token(t, "b", "read,write");
  char *token_a = th_token(t, "a", "read");

  char *log = tu_fmt("%s/serve.log", t->dir);
  tu_server srv;
  tu_server_start(&srv, t->config, log);
  /* serve fetches at start: A's pull is now held by the feed server */
  if (!feed_wait_request(&feed, 20000))
    fail_msg("town a's feed was not pulled within 20 s");

  char *url = tu_fmt("http://127.0.0.1:%d/v1/towns/b/plugins/sensors/ingest",
                     srv.port);
  const char *doc = "{\"entity\":\"g1\",\"type\":\"Gauge\",\"attr\":\"level\","
                    "\"time\":\"2026-01-01T00:00:00Z\",\"value\":7}";
  tu_http_resp r = tu_http("POST", url, token, "application/json", doc,
                           strlen(doc));
  free(url);
  if (r.status != 200)
    fail_msg("town b's ingest: %ld %s", r.status, r.body);
  assert_int_equal(tu_int(r.json, "accepted"), 1);
  tu_http_free(&r);
  /* B was acknowledged while A's pull still waited on its reply */
  assert_true(feed_still_held(&feed));

  feed_release(&feed);
  url = tu_fmt("http://127.0.0.1:%d/v1/towns/a/entities?plugin=parking",
               srv.port);
  int landed = 0;
  for (int i = 0; i < 200 && !landed; i++) { /* at most 20 s */
    r = tu_http("GET", url, token_a, NULL, NULL, 0);
    landed = r.status == 200 && strstr(r.body, "\"held\"") != NULL;
    tu_http_free(&r);
    if (!landed)
      tu_sleep_ms(100);
  }
  free(url);
  if (!landed)
    fail_msg("town a's lot did not land after its feed answered; log: %s",
             log);
  assert_int_equal(tu_server_stop(&srv, SIGTERM), 0);
  feed_stop(&feed);
  th_free(t);
  free(token);
  free(token_a);
  free(log);
}

int main(void)
{
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(
          a_slow_feed_of_one_town_does_not_hold_another_towns_ingest),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
