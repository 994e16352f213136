/*
 * testutil.h — what the tests share: temporary folders, running the real
 * twinhost binary, writing files, paths of fixtures and built plugins.
 */
#ifndef TWIN_TESTUTIL_H
#define TWIN_TESTUTIL_H

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
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
tu_run tu_twinhost_argv(const char *stdin_text, const char *const *argv);
void tu_run_free(tu_run *r);

#endif
