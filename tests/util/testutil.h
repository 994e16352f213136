/*
 * testutil.h — what the tests share: temporary folders, running the real
 * twinhost binary, writing files, paths of fixtures and built plugins,
 * loopback sockets and HTTP. An in-process host is testhost.h; JSON
 * written and read back by path is testjson.h.
 */
#ifndef TWIN_TESTUTIL_H
#define TWIN_TESTUTIL_H

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <sys/types.h>
#include <cmocka.h>

/* A fresh empty folder under $TMPDIR (or /tmp); removed by tu_rmtree. Caller
 * frees the string. */
char *tu_tempdir(void);
/* rm -rf path. */
void tu_rmtree(const char *path);
/* Write text to dir/name (creating it); returns the full path (caller frees).
 */
char *tu_write_file(const char *dir, const char *name, const char *text);
/* printf into a new string (caller frees). */
char *tu_fmt(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* The same with a va_list (ap is used up). */
char *tu_vfmt(const char *fmt, va_list ap)
    __attribute__((format(printf, 1, 0)));
/* Fails the test, showing both, unless text (may be NULL) holds want. */
void tu_assert_contains(const char *text, const char *want);
/* An environment variable set by CTest (TWIN_BIN, TWIN_FIXTURE_DIR, ...);
 * fails the test if absent. */
const char *tu_env(const char *name);

/* The result of running a command. */
typedef struct tu_run {
  int exit_code; /* exit status, or 128+signal */
  char *out;     /* stdout, NUL terminated */
  char *err;     /* stderr, NUL terminated */
} tu_run;

/*
 * Run the twinhost binary with the given arguments (NULL-terminated) and
 * optional stdin text, waiting for it. Free with tu_run_free.
 */
tu_run tu_twinhost(const char *stdin_text, const char *arg, ...);
/* Call first in a forked child: it is killed when the test process ends,
 * also when the test is killed or times out, so no server outlives it. */
void tu_child_dies_with_parent(void);
tu_run tu_twinhost_argv(const char *stdin_text, const char *const *argv);
void tu_run_free(tu_run *r);

/* The whole file at path as a NUL-terminated string (caller frees), or NULL
 * when it cannot be read. */
char *tu_read_file(const char *path);

/* The first fenced block of $TWIN_SOURCE_DIR/doc (e.g. "docs/plugins.md")
 * opened with ```lang (e.g. "c", "sh") whose text contains needle, without
 * its fences, as the page prints it (caller frees). Fails the test, naming
 * the page, when there is no such block. Tests that run a page's examples
 * use it, so the page stays true. */
char *tu_doc_block(const char *doc, const char *lang, const char *needle);

/* A `twinhost serve` child with its HTTP API on 127.0.0.1. */
typedef struct tu_server {
  pid_t pid;       /* -1 once stopped */
  int port;        /* the port the API listens on */
  const char *log; /* the file holding its stderr (the caller's string) */
} tu_server;

/*
 * Start `twinhost --config config serve --listen 127.0.0.1:0` with its
 * stderr in log_path and wait (up to 20 s) for its "API on http://..." line;
 * fills s. Fails the test, showing the log, when the line does not come or
 * the child exits first.
 */
void tu_server_start(tu_server *s, const char *config, const char *log_path);
/*
 * Send sig to the server and wait (up to 60 s, then SIGKILL) for it to exit.
 * Returns its exit status, or 128+signal when a signal ended it; -1 when it
 * had to be killed (or was not running). s->pid becomes -1.
 */
int tu_server_stop(tu_server *s, int sig);

/* dir/zoneinfo holding only a "UTC" zone, made $TZDIR: configs naming
 * "UTC" load whatever zones the machine has (the host reads UTC without
 * its file). */
void tu_utc_zoneinfo(const char *dir);

/* One HTTP request with libcurl (loopback, 60 s at most); fails the test
 * when no answer comes. token adds "Authorization: Bearer"; body (len
 * bytes) may be NULL. json is the body parsed, or NULL. */
typedef struct tu_http_resp {
  long status;
  char *body;
  size_t len;
  char content_type[128];
  struct json_t *json;
} tu_http_resp;
tu_http_resp tu_http(const char *method, const char *url, const char *token,
                     const char *content_type, const char *body, size_t len);
void tu_http_free(tu_http_resp *r);

/* A TCP socket listening on 127.0.0.1 at a port the system picks, put in
 * *port; fails the test when there is none. */
int tu_listen_loopback(int backlog, int *port);
/* A TCP socket connected to 127.0.0.1:port, or -1. */
int tu_connect_loopback(int port);

/* Monotonic milliseconds, and a sleep that resumes after signals. */
long long tu_mono_ms(void);
void tu_sleep_ms(long ms);

#endif
