/*
 * test_parking_feed.c — the parking plugin's feed pull (plugins/parking/
 * feed.c) against a real HTTP server: libmicrohttpd on 127.0.0.1 with an
 * ephemeral port, a thread per connection. Covers a 200 with its ETag and
 * Last-Modified, the conditional second pull answered with 304, 404 and
 * 500, a server too slow to answer, bodies trickling in within and beyond
 * the timeout, a malformed body returned byte-exact, the 8 MiB cap (with
 * and without Content-Length), redirects (at most 3, never to another
 * scheme), the User-Agent, and URLs of other schemes refused. Only
 * loopback traffic; proxies are switched off for the test process.
 *
 * feed.c is compiled into this test directly (it is a private part of
 * parking.so, not a library).
 */
#include "testutil.h"

#include <microhttpd.h>
#include <netinet/in.h>
#include <arpa/inet.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "../../plugins/parking/feed.c"

#define ETAG "\"lots-v1\""
#define LAST_MODIFIED "Wed, 25 Nov 2026 10:00:00 GMT"
#define BODY_OK "{\"lots\":[{\"id\":\"p1\",\"total\":100,\"free\":42}]}"
/* Not JSON, with a NUL byte and bytes that are not UTF-8 in it. */
static const char body_malformed[] = "{\"lots\":[{\"id\":\"p1\",\"free\":\0"
                                     "\xff\xfe} trailing garbage\r\n";
#define BODY_MALFORMED_LEN (sizeof body_malformed - 1)

#define TRICKLE_SHORT_BYTES 8  /* 8 x 25 ms = 0.2 s: well within 5 s */
#define TRICKLE_LONG_BYTES 100 /* 100 x 50 ms = 5 s: beyond 400 ms */
#define SLOW_HEADERS_MS 1500   /* the slow server's pause before answering */
#define SHORT_TIMEOUT_MS 400L
#define TIMEOUT_MS 5000L

typedef struct server {
  struct MHD_Daemon *d;
  unsigned short port;
  pthread_mutex_t lock;
  char if_none_match[256];
  char if_modified_since[256];
  char user_agent[256];
  int requests;
} server;

/* 8 MiB + 1 bytes of 'x', shared by the oversized responses. */
static char *big_body;

static void sleep_ms(long ms)
{
  struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
  while (nanosleep(&ts, &ts) != 0) {
  }
}

typedef struct trickle {
  size_t total;
  long pause_ms;
} trickle;

/* One byte per call, after a pause. */
static ssize_t trickle_read(void *cls, uint64_t pos, char *buf, size_t max)
{
  trickle *t = cls;
  if (pos >= t->total)
    return MHD_CONTENT_READER_END_OF_STREAM;
  if (max == 0)
    return 0;
  sleep_ms(t->pause_ms);
  buf[0] = (char)('a' + pos % 26);
  return 1;
}

/* The big body without a length (chunked). */
static ssize_t big_read(void *cls, uint64_t pos, char *buf, size_t max)
{
  size_t total = PARK_FEED_MAX_BODY + 1, n;
  (void)cls;
  if (pos >= total)
    return MHD_CONTENT_READER_END_OF_STREAM;
  n = total - (size_t)pos < max ? total - (size_t)pos : max;
  memcpy(buf, big_body + pos, n);
  return (ssize_t)n;
}

static void copy_header(struct MHD_Connection *c, const char *name, char *dst,
                        size_t dstlen)
{
  const char *v = MHD_lookup_connection_value(c, MHD_HEADER_KIND, name);
  snprintf(dst, dstlen, "%s", v ? v : "");
}

static enum MHD_Result send_buffer(struct MHD_Connection *c, unsigned code,
                                   const void *data, size_t len, const char *h1,
                                   const char *v1)
{
  struct MHD_Response *r =
      MHD_create_response_from_buffer(len, (void *)data, MHD_RESPMEM_MUST_COPY);
  enum MHD_Result ret;
  if (!r)
    return MHD_NO;
  if (h1)
    MHD_add_response_header(r, h1, v1);
  ret = MHD_queue_response(c, code, r);
  MHD_destroy_response(r);
  return ret;
}

static enum MHD_Result send_callback(struct MHD_Connection *c, uint64_t size,
                                     MHD_ContentReaderCallback cb, void *cls)
{
  struct MHD_Response *r =
      MHD_create_response_from_callback(size, 1024, cb, cls, NULL);
  enum MHD_Result ret;
  if (!r)
    return MHD_NO;
  ret = MHD_queue_response(c, MHD_HTTP_OK, r);
  MHD_destroy_response(r);
  return ret;
}

static enum MHD_Result handle(void *cls, struct MHD_Connection *c,
                              const char *url, const char *method,
                              const char *version, const char *upload,
                              size_t *upload_size, void **con_cls)
{
  static trickle short_trickle = {TRICKLE_SHORT_BYTES, 25};
  static trickle long_trickle = {TRICKLE_LONG_BYTES, 50};
  server *s = cls;
  (void)version;
  (void)upload;
  (void)upload_size;
  (void)con_cls;
  if (strcmp(method, "GET") != 0)
    return send_buffer(c, 405, "", 0, NULL, NULL);
  pthread_mutex_lock(&s->lock);
  s->requests++;
  copy_header(c, MHD_HTTP_HEADER_IF_NONE_MATCH, s->if_none_match,
              sizeof s->if_none_match);
  copy_header(c, MHD_HTTP_HEADER_IF_MODIFIED_SINCE, s->if_modified_since,
              sizeof s->if_modified_since);
  copy_header(c, MHD_HTTP_HEADER_USER_AGENT, s->user_agent,
              sizeof s->user_agent);
  pthread_mutex_unlock(&s->lock);

  if (strcmp(url, "/etag") == 0) {
    const char *inm = MHD_lookup_connection_value(
        c, MHD_HEADER_KIND, MHD_HTTP_HEADER_IF_NONE_MATCH);
    if (inm && strcmp(inm, ETAG) == 0)
      return send_buffer(c, 304, "", 0, MHD_HTTP_HEADER_ETAG, ETAG);
    return send_buffer(c, 200, BODY_OK, strlen(BODY_OK), MHD_HTTP_HEADER_ETAG,
                       ETAG);
  }
  if (strcmp(url, "/last-modified") == 0) {
    const char *ims = MHD_lookup_connection_value(
        c, MHD_HEADER_KIND, MHD_HTTP_HEADER_IF_MODIFIED_SINCE);
    if (ims && strcmp(ims, LAST_MODIFIED) == 0)
      return send_buffer(c, 304, "", 0, NULL, NULL);
    return send_buffer(c, 200, BODY_OK, strlen(BODY_OK),
                       MHD_HTTP_HEADER_LAST_MODIFIED, LAST_MODIFIED);
  }
  if (strcmp(url, "/missing") == 0)
    return send_buffer(c, 404, "no such feed", 12, NULL, NULL);
  if (strcmp(url, "/broken") == 0)
    return send_buffer(c, 500, "oops", 4, NULL, NULL);
  if (strcmp(url, "/slow-headers") == 0) {
    sleep_ms(SLOW_HEADERS_MS);
    return send_buffer(c, 200, BODY_OK, strlen(BODY_OK), NULL, NULL);
  }
  if (strcmp(url, "/trickle-short") == 0)
    return send_callback(c, TRICKLE_SHORT_BYTES, trickle_read, &short_trickle);
  if (strcmp(url, "/trickle-long") == 0)
    return send_callback(c, TRICKLE_LONG_BYTES, trickle_read, &long_trickle);
  if (strcmp(url, "/malformed") == 0)
    return send_buffer(c, 200, body_malformed, BODY_MALFORMED_LEN, NULL, NULL);
  if (strcmp(url, "/big-exact") == 0)
    return send_buffer(c, 200, big_body, PARK_FEED_MAX_BODY, NULL, NULL);
  if (strcmp(url, "/big-with-length") == 0)
    return send_buffer(c, 200, big_body, PARK_FEED_MAX_BODY + 1, NULL, NULL);
  if (strcmp(url, "/big-chunked") == 0)
    return send_callback(c, MHD_SIZE_UNKNOWN, big_read, NULL);
  if (strcmp(url, "/user-agent") == 0)
    return send_buffer(c, 200, "ok", 2, NULL, NULL);
  if (strcmp(url, "/to-file") == 0)
    return send_buffer(c, 302, "", 0, MHD_HTTP_HEADER_LOCATION,
                       "file:///etc/passwd");
  if (strncmp(url, "/redirect/", 10) == 0) {
    int n = atoi(url + 10);
    char next[64];
    if (n <= 0)
      return send_buffer(c, 200, "arrived", 7, NULL, NULL);
    snprintf(next, sizeof next, "/redirect/%d", n - 1);
    return send_buffer(c, 302, "", 0, MHD_HTTP_HEADER_LOCATION, next);
  }
  return send_buffer(c, 404, "", 0, NULL, NULL);
}

static int setup(void **state)
{
  server *s = calloc(1, sizeof *s);
  struct sockaddr_in addr;
  const union MHD_DaemonInfo *info;
  assert_non_null(s);
  /* Loopback only: no proxy may see (or swallow) the test traffic. */
  unsetenv("http_proxy");
  unsetenv("HTTP_PROXY");
  unsetenv("https_proxy");
  unsetenv("HTTPS_PROXY");
  unsetenv("all_proxy");
  unsetenv("ALL_PROXY");
  setenv("no_proxy", "*", 1);
  setenv("NO_PROXY", "*", 1);
  pthread_mutex_init(&s->lock, NULL);
  memset(&addr, 0, sizeof addr);
  addr.sin_family = AF_INET;
  addr.sin_port = 0;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  s->d = MHD_start_daemon(MHD_USE_INTERNAL_POLLING_THREAD |
                              MHD_USE_THREAD_PER_CONNECTION,
                          0, NULL, NULL, handle, s, MHD_OPTION_SOCK_ADDR,
                          (struct sockaddr *)&addr, MHD_OPTION_END);
  assert_non_null(s->d);
  info = MHD_get_daemon_info(s->d, MHD_DAEMON_INFO_BIND_PORT);
  assert_non_null(info);
  s->port = info->port;
  assert_true(s->port > 0);
  *state = s;
  return 0;
}

static int teardown(void **state)
{
  server *s = *state;
  MHD_stop_daemon(s->d);
  pthread_mutex_destroy(&s->lock);
  free(s);
  return 0;
}

static park_feed *feed_for(server *s, const char *path, long timeout_ms)
{
  char url[256];
  park_feed *f;
  snprintf(url, sizeof url, "http://127.0.0.1:%u%s", (unsigned)s->port, path);
  f = park_feed_new(url, timeout_ms);
  assert_non_null(f);
  return f;
}

/* Pulls and checks an error: -1, no body, why containing want. */
static void expect_error(park_feed *f, const char *want)
{
  char *body = (char *)"sentinel";
  size_t len = 99;
  char why[512];
  int rc = park_feed_pull(f, &body, &len, why, sizeof why);
  if (rc != -1 || !strstr(why, want))
    print_error("pull gave %d, why \"%s\"; wanted -1 with \"%s\"\n", rc, why,
                want);
  assert_int_equal(rc, -1);
  assert_null(body);
  assert_int_equal(len, 0);
  assert_non_null(strstr(why, want));
}

/* Pulls and checks a new body equal to want (wantlen bytes). */
static void expect_body(park_feed *f, const char *want, size_t wantlen)
{
  char *body = NULL;
  size_t len = 0;
  char why[512];
  int rc = park_feed_pull(f, &body, &len, why, sizeof why);
  if (rc != 1)
    print_error("pull gave %d, why \"%s\"\n", rc, why);
  assert_int_equal(rc, 1);
  assert_non_null(body);
  assert_int_equal(len, wantlen);
  assert_memory_equal(body, want, wantlen);
  assert_int_equal(body[len], '\0');
  free(body);
}

static void expect_not_modified(park_feed *f)
{
  char *body = (char *)"sentinel";
  size_t len = 99;
  char why[512];
  int rc = park_feed_pull(f, &body, &len, why, sizeof why);
  if (rc != 0)
    print_error("pull gave %d, why \"%s\"\n", rc, why);
  assert_int_equal(rc, 0);
  assert_null(body);
  assert_int_equal(len, 0);
}

static void test_a_200_returns_the_body_and_sends_no_validators(void **state)
{
  server *s = *state;
  park_feed *f = feed_for(s, "/etag", TIMEOUT_MS);
  expect_body(f, BODY_OK, strlen(BODY_OK));
  assert_string_equal(s->if_none_match, "");
  assert_string_equal(s->if_modified_since, "");
  park_feed_free(f);
}

static void
test_the_second_pull_sends_if_none_match_and_304_gives_0(void **state)
{
  server *s = *state;
  park_feed *f = feed_for(s, "/etag", TIMEOUT_MS);
  expect_body(f, BODY_OK, strlen(BODY_OK));
  park_feed_accept(f); /* the plugin stored it */
  expect_not_modified(f);
  assert_string_equal(s->if_none_match, ETAG);
  /* A 304 keeps the ETag: the third pull is conditional too. */
  expect_not_modified(f);
  assert_string_equal(s->if_none_match, ETAG);
  assert_int_equal(s->requests, 3);
  park_feed_free(f);
}

static void
test_the_second_pull_sends_if_modified_since_and_304_gives_0(void **state)
{
  server *s = *state;
  park_feed *f = feed_for(s, "/last-modified", TIMEOUT_MS);
  expect_body(f, BODY_OK, strlen(BODY_OK));
  park_feed_accept(f);
  expect_not_modified(f);
  assert_string_equal(s->if_modified_since, LAST_MODIFIED);
  assert_string_equal(s->if_none_match, "");
  park_feed_free(f);
}

static void test_a_body_not_accepted_is_fetched_whole_again(void **state)
{
  server *s = *state;
  park_feed *f = feed_for(s, "/etag", TIMEOUT_MS);
  expect_body(f, BODY_OK, strlen(BODY_OK));
  /* The plugin rejected it (or its commit failed): no validator is sent,
   * so the feed's current version comes again instead of a 304. */
  expect_body(f, BODY_OK, strlen(BODY_OK));
  assert_string_equal(s->if_none_match, "");
  park_feed_free(f);
}

static void test_requests_carry_the_twinhost_user_agent(void **state)
{
  server *s = *state;
  park_feed *f = feed_for(s, "/user-agent", TIMEOUT_MS);
  expect_body(f, "ok", 2);
  assert_string_equal(s->user_agent, "twinhost-parking/1.0");
  park_feed_free(f);
}

static void test_a_404_is_an_error_naming_the_status(void **state)
{
  park_feed *f = feed_for(*state, "/missing", TIMEOUT_MS);
  expect_error(f, "HTTP 404");
  expect_error(f, "/missing"); /* the message names what was asked for */
  park_feed_free(f);
}

static void test_a_500_is_an_error_naming_the_status(void **state)
{
  park_feed *f = feed_for(*state, "/broken", TIMEOUT_MS);
  expect_error(f, "HTTP 500");
  park_feed_free(f);
}

static void test_a_server_slower_than_the_timeout_times_out(void **state)
{
  park_feed *f = feed_for(*state, "/slow-headers", SHORT_TIMEOUT_MS);
  struct timespec a, b;
  long ms;
  clock_gettime(CLOCK_MONOTONIC, &a);
  expect_error(f, "timed out after 400 ms");
  clock_gettime(CLOCK_MONOTONIC, &b);
  ms = (b.tv_sec - a.tv_sec) * 1000 + (b.tv_nsec - a.tv_nsec) / 1000000;
  assert_true(ms < SLOW_HEADERS_MS); /* gave up, did not wait it out */
  park_feed_free(f);
}

static void test_a_slow_body_within_the_timeout_arrives_whole(void **state)
{
  park_feed *f = feed_for(*state, "/trickle-short", TIMEOUT_MS);
  expect_body(f, "abcdefgh", TRICKLE_SHORT_BYTES);
  park_feed_free(f);
}

static void test_a_slow_body_beyond_the_timeout_times_out(void **state)
{
  park_feed *f = feed_for(*state, "/trickle-long", SHORT_TIMEOUT_MS);
  expect_error(f, "timed out after 400 ms");
  park_feed_free(f);
}

static void test_a_malformed_body_is_returned_byte_exact(void **state)
{
  park_feed *f = feed_for(*state, "/malformed", TIMEOUT_MS);
  expect_body(f, body_malformed, BODY_MALFORMED_LEN);
  park_feed_free(f);
}

static void test_a_body_of_exactly_8_mib_is_accepted(void **state)
{
  park_feed *f = feed_for(*state, "/big-exact", TIMEOUT_MS);
  expect_body(f, big_body, PARK_FEED_MAX_BODY);
  park_feed_free(f);
}

static void test_a_body_over_8_mib_with_content_length_is_refused(void **state)
{
  park_feed *f = feed_for(*state, "/big-with-length", TIMEOUT_MS);
  expect_error(f, "body larger than 8 MiB");
  park_feed_free(f);
}

static void test_a_chunked_body_over_8_mib_is_cut_off_and_refused(void **state)
{
  park_feed *f = feed_for(*state, "/big-chunked", TIMEOUT_MS);
  expect_error(f, "body larger than 8 MiB");
  park_feed_free(f);
}

static void test_up_to_3_redirects_are_followed(void **state)
{
  park_feed *f = feed_for(*state, "/redirect/3", TIMEOUT_MS);
  expect_body(f, "arrived", 7);
  park_feed_free(f);
}

static void test_a_4th_redirect_is_refused(void **state)
{
  park_feed *f = feed_for(*state, "/redirect/4", TIMEOUT_MS);
  expect_error(f, "more than 3 redirects");
  park_feed_free(f);
}

static void test_a_redirect_to_a_file_url_is_refused(void **state)
{
  park_feed *f = feed_for(*state, "/to-file", TIMEOUT_MS);
  expect_error(f, "other than http or https");
  park_feed_free(f);
}

static void test_urls_of_other_schemes_are_refused(void **state)
{
  (void)state;
  assert_null(park_feed_new("file:///etc/passwd", TIMEOUT_MS));
  assert_null(park_feed_new("ftp://127.0.0.1/lots.json", TIMEOUT_MS));
  assert_null(park_feed_new("gopher://127.0.0.1/", TIMEOUT_MS));
  assert_null(park_feed_new("127.0.0.1/lots.json", TIMEOUT_MS));
  assert_null(park_feed_new("http://", TIMEOUT_MS));
  assert_null(park_feed_new("http://127.0.0.1/a b", TIMEOUT_MS));
  /* the scheme is case-insensitive */
  park_feed_free(park_feed_new("HTTPS://example.org/lots", TIMEOUT_MS));
}

static void test_bad_arguments_are_refused(void **state)
{
  char *body = NULL;
  size_t len = 0;
  char why[128];
  park_feed *f;
  (void)state;
  assert_null(park_feed_new(NULL, TIMEOUT_MS));
  assert_null(park_feed_new("", TIMEOUT_MS));
  assert_null(park_feed_new("http://127.0.0.1/", 0));
  assert_null(park_feed_new("http://127.0.0.1/", -5));
  assert_int_equal(park_feed_pull(NULL, &body, &len, why, sizeof why), -1);
  f = park_feed_new("http://127.0.0.1/", TIMEOUT_MS);
  assert_non_null(f);
  assert_int_equal(park_feed_pull(f, NULL, &len, why, sizeof why), -1);
  assert_int_equal(park_feed_pull(f, &body, NULL, NULL, 0), -1);
  park_feed_free(f);
  park_feed_free(NULL);
}

static void test_messages_hide_user_info_and_query(void **state)
{
  server *s = *state;
  char url[256];
  park_feed *f;
  snprintf(url, sizeof url,
           "http://user:secret@127.0.0.1:%u/missing?apikey=hunter2",
           (unsigned)s->port);
  f = park_feed_new(url, TIMEOUT_MS);
  assert_non_null(f);
  {
    char *body = NULL;
    size_t len = 0;
    char why[512];
    assert_int_equal(park_feed_pull(f, &body, &len, why, sizeof why), -1);
    assert_non_null(strstr(why, "HTTP 404"));
    assert_null(strstr(why, "secret"));
    assert_null(strstr(why, "hunter2"));
    assert_non_null(strstr(why, "127.0.0.1"));
  }
  park_feed_free(f);
}

int main(void)
{
  const struct CMUnitTest tests[] = {
#define T(name) cmocka_unit_test_setup_teardown(name, setup, teardown)
      T(test_a_200_returns_the_body_and_sends_no_validators),
      T(test_the_second_pull_sends_if_none_match_and_304_gives_0),
      T(test_the_second_pull_sends_if_modified_since_and_304_gives_0),
      T(test_a_body_not_accepted_is_fetched_whole_again),
      T(test_requests_carry_the_twinhost_user_agent),
      T(test_a_404_is_an_error_naming_the_status),
      T(test_a_500_is_an_error_naming_the_status),
      T(test_a_server_slower_than_the_timeout_times_out),
      T(test_a_slow_body_within_the_timeout_arrives_whole),
      T(test_a_slow_body_beyond_the_timeout_times_out),
      T(test_a_malformed_body_is_returned_byte_exact),
      T(test_a_body_of_exactly_8_mib_is_accepted),
      T(test_a_body_over_8_mib_with_content_length_is_refused),
      T(test_a_chunked_body_over_8_mib_is_cut_off_and_refused),
      T(test_up_to_3_redirects_are_followed),
      T(test_a_4th_redirect_is_refused),
      T(test_a_redirect_to_a_file_url_is_refused),
      T(test_urls_of_other_schemes_are_refused),
      T(test_bad_arguments_are_refused),
      T(test_messages_hide_user_info_and_query),
#undef T
  };
  int rc;
  big_body = malloc(PARK_FEED_MAX_BODY + 1);
  if (!big_body)
    return 1;
  memset(big_body, 'x', PARK_FEED_MAX_BODY + 1);
  rc = cmocka_run_group_tests(tests, NULL, NULL);
  free(big_body);
  return rc;
}
