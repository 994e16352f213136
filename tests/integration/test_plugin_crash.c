/*
 * test_plugin_crash.c — a plugin that crashes ends the host (plugins run
 * in its process), but not silently: the log says which town, plugin and
 * callback were running, and what to do. Through the CLI and through a
 * real `twinhost serve` answering HTTP, with the real crashy.so fixture.
 */
#include "testhost.h"

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

static int setup(void **state)
{
  th_host *f = th_new();
  tu_utc_zoneinfo(f->dir);
  th_fixture(f, "crashy.so");
  th_config(f, TH_FIXTURES,
            "{'id':'alpha','timezone':'UTC','scripts':'.',"
            " 'api':{'anonymous_read':true},'plugins':{'crashy':{}}},"
            "{'id':'beta','timezone':'UTC','scripts':'.'}");
  *state = f;
  return 0;
}

static const char *crash_line =
    "twinhost: [crash] SIGSEGV (a bad memory access) in town 'alpha', "
    "plugin 'crashy', callback query";

static void a_crash_in_a_cli_query_names_town_plugin_and_callback(
    void **state)
{
  th_host *f = *state;
  tu_run r = tu_twinhost(NULL, "--config", f->config, "query", "--town",
                         "alpha", "--plugin", "crashy", "--op", "crash", NULL);
  assert_int_not_equal(r.exit_code, 0);
  if (!strstr(r.err, crash_line))
    fail_msg("stderr lacks the crash line:\n%s", r.err);
  assert_non_null(strstr(r.err, "\"enabled\": false"));
  tu_run_free(&r);
  /* the same plugin's other query works: the crash was the call's */
  r = tu_twinhost(NULL, "--config", f->config, "query", "--town", "alpha",
                  "--plugin", "crashy", "--op", "ok", NULL);
  assert_int_equal(r.exit_code, 0);
  tu_run_free(&r);
}

static void a_crash_in_serve_is_logged_before_the_host_dies(void **state)
{
  th_host *f = *state;
  char *log = tu_fmt("%s/serve.log", f->dir);
  tu_server srv;
  tu_server_start(&srv, f->config, log);
  /* a raw request: the answer never comes, the connection just closes */
  int s = tu_connect_loopback(srv.port);
  assert_true(s >= 0);
  const char *req = "GET /v1/towns/alpha/plugins/crashy/query/crash HTTP/1.1\r\n"
                    "Host: 127.0.0.1\r\nConnection: close\r\n\r\n";
  assert_true(write(s, req, strlen(req)) == (ssize_t)strlen(req));
  int status = 0, gone = 0;
  for (int i = 0; i < 200 && !gone; i++) { /* at most 20 s */
    gone = waitpid(srv.pid, &status, WNOHANG) == srv.pid;
    if (!gone)
      tu_sleep_ms(100);
  }
  close(s);
  if (!gone) {
    tu_server_stop(&srv, SIGKILL);
    fail_msg("serve did not die from the crashing plugin");
  }
  srv.pid = -1;
  char *text = tu_read_file(log);
  if (!text || !strstr(text, crash_line))
    fail_msg("the serve log lacks the crash line:\n%s", text ? text : "");
  free(text);
  free(log);
}

int main(void)
{
  const struct CMUnitTest tests[] = {
      cmocka_unit_test_setup_teardown(
          a_crash_in_a_cli_query_names_town_plugin_and_callback, setup,
          th_teardown),
      cmocka_unit_test_setup_teardown(
          a_crash_in_serve_is_logged_before_the_host_dies, setup, th_teardown),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
