/*
 * test_out_of_tree.c — a plugin built with only -I include (no core header,
 * no build system of ours) loads and works: the test compiles
 * tests/plugins/minimal.c with cc as a third party would, then
 * `twinhost plugins check` accepts it and a host enabling it for a town
 * ingests a document and answers a query. The worked plugin of
 * docs/plugins.md is compiled from the page the same way, linked with the
 * helper library (libtwinaux.a) as the page says, and run in a real host:
 * through the CLI and through `twinhost serve` (its safe op on GET with its
 * media type, a request failing the op's schema, a CSV ingest with a row
 * refused alone).
 */
#include "testutil.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "util.h"

typedef struct fx {
  char *dir;
  char *plugins; /* where minimal.so is built */
  char *config;
} fx;

static int setup(void **state)
{
  fx *f = calloc(1, sizeof *f);
  f->dir = tu_tempdir();
  f->plugins = tu_fmt("%s/plugins", f->dir);
  assert_int_equal(mkdir(f->plugins, 0755), 0);
  tu_utc_zoneinfo(f->dir);
  unsetenv("TWINHOST_PLUGIN_PATH");
  f->config =
      tu_write_file(f->dir, "twinhost.json",
                    "{\"data_dir\": \"data\", \"plugin_path\": [\"plugins\"],\n"
                    " \"towns\": [{\"id\": \"alpha\", \"timezone\": \"UTC\",\n"
                    "              \"plugins\": {\"minimal\": {}}}]}\n");
  *state = f;
  return 0;
}

static int teardown(void **state)
{
  fx *f = *state;
  unsetenv("TZDIR");
  tu_rmtree(f->dir);
  free(f->dir);
  free(f->plugins);
  free(f->config);
  free(f);
  return 0;
}

/* Run argv (searched on PATH) with its output in log; its exit status. */
static int run_logged(const char *const *argv, const char *log)
{
  pid_t pid = fork();
  if (pid == 0) {
    tu_child_dies_with_parent();
    int fd = open(log, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    if (fd >= 0) {
      dup2(fd, 1);
      dup2(fd, 2);
    }
    execvp(argv[0], (char *const *)argv);
    _exit(127);
  }
  int status = 0;
  if (pid < 0 || waitpid(pid, &status, 0) < 0)
    return -1;
  return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

/* cc src into plugins/<name>.so seeing only include/, then linking what
 * link (NULL-terminated, may be NULL) names. Returns the .so path (caller
 * frees); fails the test with the compiler's words. */
static char *build_plugin_linked(fx *f, const char *src, const char *name,
                                 const char *const *link)
{
  char *include = tu_fmt("%s/include", tu_env("TWIN_SOURCE_DIR"));
  char *so = tu_fmt("%s/%s.so", f->plugins, name);
  char *log = tu_fmt("%s/cc.log", f->dir);
  const char *argv[32] = {"cc",      "-shared", "-fPIC", "-std=c11",
                          "-Wall",   "-Wextra", "-Werror", "-I",
                          include,   "-o",      so,        src};
  size_t n = 12;
  for (size_t i = 0; link && link[i] && n < 31; i++)
    argv[n++] = link[i];
  argv[n] = NULL;
  int rc = run_logged(argv, log);
  if (rc != 0) {
    char *text = NULL;
    size_t len = 0;
    core_err err;
    if (core_read_file(log, &text, &len, &err))
      text = NULL;
    fail_msg("cc exited %d compiling %s:\n%s", rc, src, text ? text : "");
  }
  struct stat sb;
  assert_int_equal(stat(so, &sb), 0);
  free(include);
  free(log);
  return so;
}

static char *build_plugin(fx *f, const char *src, const char *name)
{
  return build_plugin_linked(f, src, name, NULL);
}

static char *build_minimal(fx *f)
{
  char *src = tu_fmt("%s/tests/plugins/minimal.c", tu_env("TWIN_SOURCE_DIR"));
  char *so = build_plugin(f, src, "minimal");
  free(src);
  return so;
}

static tu_run twinhost_in(fx *f, const char *input, const char *const *args)
{
  const char *argv[24] = {"--config", f->config};
  size_t n = 2;
  for (size_t i = 0; args[i] && n < 23; i++)
    argv[n++] = args[i];
  argv[n] = NULL;
  return tu_twinhost_argv(input, argv);
}

/* Rewrite the host config so town alpha enables plugin name instead. */
static char *config_swap(fx *f, const char *name)
{
  char *text =
      tu_fmt("{\"data_dir\": \"data\", \"plugin_path\": [\"plugins\"],\n"
             " \"towns\": [{\"id\": \"alpha\", \"timezone\": \"UTC\",\n"
             "              \"plugins\": {\"%s\": {}}}]}\n",
             name);
  free(f->config);
  f->config = tu_write_file(f->dir, "twinhost.json", text);
  return text;
}

/* ---- tests --------------------------------------------------------------- */

static void it_builds_against_the_public_header_alone(void **state)
{
  char *so = build_minimal(*state);
  free(so);
}

static void plugins_check_accepts_it(void **state)
{
  char *so = build_minimal(*state);
  tu_run r = tu_twinhost(NULL, "plugins", "check", so, NULL);
  if (r.exit_code != 0)
    fail_msg("plugins check exited %d: %s", r.exit_code, r.err);
  char *want = tu_fmt("ok: %s: plugin 'minimal' 1.0.0", so);
  assert_int_equal(strncmp(r.out, want, strlen(want)), 0);
  assert_string_equal(r.err, "");
  free(want);
  free(so);
  tu_run_free(&r);
}

static void
a_host_enabling_it_ingests_a_document_and_answers_queries(void **state)
{
  fx *f = *state;
  char *so = build_minimal(f);
  const char *ingest[] = {"ingest",  "--town",  "alpha", "--plugin",
                          "minimal", "--whole", NULL};
  tu_run r = twinhost_in(f, "lamp=on\ngate=closed\r\n\npump=7\n", ingest);
  if (r.exit_code != 0)
    fail_msg("ingest exited %d: %s%s", r.exit_code, r.out, r.err);
  json_t *sum = json_loads(r.out, 0, NULL);
  assert_non_null(sum);
  assert_int_equal(json_integer_value(json_object_get(sum, "accepted")), 1);
  assert_int_equal(json_integer_value(json_object_get(sum, "rejected")), 0);
  json_decref(sum);
  tu_run_free(&r);

  const char *query[] = {"query",   "--town", "alpha", "--plugin",
                         "minimal", "{}",     NULL};
  r = twinhost_in(f, NULL, query);
  if (r.exit_code != 0)
    fail_msg("query exited %d: %s", r.exit_code, r.err);
  json_t *reply = json_loads(r.out, 0, NULL);
  assert_non_null(reply);
  assert_int_equal(json_integer_value(json_object_get(reply, "count")), 3);
  json_decref(reply);
  tu_run_free(&r);

  const char *entities[] = {"entities", "--town", "alpha", "--plugin",
                            "minimal",  "--type", "Item",  "--id",
                            "gate",     NULL};
  r = twinhost_in(f, NULL, entities);
  if (r.exit_code != 0)
    fail_msg("entities exited %d: %s", r.exit_code, r.err);
  json_t *list = json_loads(r.out, 0, NULL);
  assert_int_equal(json_array_size(list), 1);
  json_t *value = json_object_get(
      json_object_get(json_object_get(json_array_get(list, 0), "attrs"),
                      "value"),
      "value");
  assert_string_equal(json_string_value(value), "closed");
  json_decref(list);
  tu_run_free(&r);
  free(so);
}

/* The worked plugin of docs/plugins.md (its first ```c block defining a
 * plugin), compiled as the page says (only -I include, then libtwinaux.a
 * and -lm) into plugins/visitors.so, and town alpha switched to it.
 * Returns the .so path (caller frees). */
static char *build_guide_plugin(fx *f)
{
  char *code = tu_doc_block("docs/plugins.md", "c", "TWIN_PLUGIN_DEFINE");
  char *src = tu_write_file(f->dir, "visitors.c", code);
  char *aux = tu_fmt("%s/lib/twinaux/libtwinaux.a", tu_env("TWIN_BUILD_DIR"));
  struct stat sb;
  if (stat(aux, &sb))
    fail_msg("%s is missing: build the helper library first (cmake --build "
             "build --target twinaux)",
             aux);
  const char *link[] = {aux, "-lm", NULL};
  char *so = build_plugin_linked(f, src, "visitors", link);
  free(config_swap(f, "visitors"));
  free(aux);
  free(src);
  free(code);
  return so;
}

/* The worked plugin in docs/plugins.md is real: it compiles from the page
 * as printed, loads, ingests and answers. */
static void the_plugin_in_the_authors_guide_works_as_written(void **state)
{
  fx *f = *state;
  char *so = build_guide_plugin(f);
  tu_run r = tu_twinhost(NULL, "plugins", "check", so, NULL);
  if (r.exit_code != 0)
    fail_msg("plugins check exited %d: %s%s", r.exit_code, r.out, r.err);
  assert_non_null(strstr(r.out, "plugin 'visitors'"));
  assert_non_null(strstr(r.out, "ABI 1.2"));
  tu_run_free(&r);
  char *doc = tu_fmt("{\"gate\":\"north\",\"count\":17,\"time\":%lld}",
                     (long long)core_now_ms());
  const char *ingest[] = {"ingest",   "--town",   "alpha",
                          "--plugin", "visitors", NULL};
  r = twinhost_in(f, doc, ingest);
  if (r.exit_code != 0)
    fail_msg("ingest exited %d: %s", r.exit_code, r.err);
  tu_run_free(&r);
  const char *query[] = {"query",    "--town", "alpha", "--plugin",
                         "visitors", "--op",   "today", "{}",
                         NULL};
  r = twinhost_in(f, NULL, query);
  if (r.exit_code != 0)
    fail_msg("query exited %d: %s", r.exit_code, r.err);
  json_t *j = json_loads(r.out, 0, NULL);
  assert_non_null(j);
  assert_int_equal(json_integer_value(json_object_get(j, "today")), 17);
  assert_int_equal(json_integer_value(json_object_get(
                       json_object_get(j, "gates"), "north")),
                   17);
  json_decref(j);
  tu_run_free(&r);
  free(doc);
  free(so);
}

/* Over HTTP, as the page shows it: the safe op answered on GET in its
 * media type, a request refused by the op's schema before the plugin sees
 * it, the plugin's own error code, and a CSV ingest whose bad row is
 * refused while the good rows land. */
static void the_guides_plugin_answers_over_http(void **state)
{
  fx *f = *state;
  char *so = build_guide_plugin(f);
  tu_run t = tu_twinhost(NULL, "--config", f->config, "token", "create",
                         "--town", "alpha", "--scope", "read,write", NULL);
  if (t.exit_code)
    fail_msg("token create: %s", t.err);
  json_t *tj = json_loads(t.out, 0, NULL);
  char token[128];
  snprintf(token, sizeof token, "%s",
           json_string_value(json_object_get(tj, "token")));
  json_decref(tj);
  tu_run_free(&t);
  char *log = tu_fmt("%s/serve.log", f->dir);
  tu_server srv;
  tu_server_start(&srv, f->config, log);
  char *base = tu_fmt("http://127.0.0.1:%d/v1/towns/alpha/plugins/visitors",
                      srv.port);

  /* CSV: two good rows land, the negative count is refused alone */
  const char csv[] = "time,gate,count\r\n"
                     "2026-12-01T08:00:00Z,north,12\r\n"
                     "2026-12-01T08:00:00Z,south,-4\r\n"
                     "2026-12-01T09:00:00Z,south,9\r\n";
  char *url = tu_fmt("%s/ingest", base);
  tu_http_resp r = tu_http("POST", url, token, "text/csv", csv, strlen(csv));
  free(url);
  if (r.status != 200)
    fail_msg("CSV ingest: status %ld: %s", r.status, r.body);
  assert_int_equal(json_integer_value(json_object_get(r.json, "accepted")), 1);
  assert_int_equal(
      json_integer_value(json_object_get(r.json, "items_refused")), 1);
  json_t *row = json_array_get(json_object_get(r.json, "results"), 0);
  json_t *item = json_array_get(json_object_get(row, "refused"), 0);
  assert_string_equal(json_string_value(json_object_get(item, "item")),
                      "line 3");
  assert_string_equal(json_string_value(json_object_get(item, "code")),
                      "implausible");
  assert_string_equal(json_string_value(json_object_get(item, "field")),
                      "count");
  tu_http_free(&r);

  /* an undeclared media type is refused before the plugin sees it */
  url = tu_fmt("%s/ingest", base);
  r = tu_http("POST", url, token, "text/calendar", csv, strlen(csv));
  free(url);
  assert_int_equal(r.status, 415);
  tu_http_free(&r);

  /* the safe op on GET: CSV with its Content-Type; the refused row is not
   * there, the good ones are */
  url = tu_fmt("%s/query/visits?from=2026-12-01T00:00:00Z"
               "&to=2026-12-02T00:00:00Z",
               base);
  r = tu_http("GET", url, token, NULL, NULL, 0);
  free(url);
  if (r.status != 200)
    fail_msg("GET visits: status %ld: %s", r.status, r.body);
  assert_int_equal(strncmp(r.content_type, "text/csv", 8), 0);
  assert_string_equal(r.body, "time,gate,count\r\n"
                              "2026-12-01T08:00:00Z,north,12\r\n"
                              "2026-12-01T09:00:00Z,south,9\r\n");
  tu_http_free(&r);

  /* a request failing the op's schema: 400, naming the field */
  url = tu_fmt("%s/query/visits?from=monday", base);
  r = tu_http("GET", url, token, NULL, NULL, 0);
  free(url);
  assert_int_equal(r.status, 400);
  json_t *e = json_object_get(r.json, "error");
  assert_string_equal(json_string_value(json_object_get(e, "code")),
                      "bad_request");
  assert_string_equal(json_string_value(json_object_get(e, "field")), "from");
  tu_http_free(&r);

  /* the plugin's own code and field (api->fail through twinaux_fail) */
  url = tu_fmt("%s/query/today?gate=west", base);
  r = tu_http("GET", url, token, NULL, NULL, 0);
  free(url);
  assert_int_equal(r.status, 404);
  e = json_object_get(r.json, "error");
  assert_string_equal(json_string_value(json_object_get(e, "code")),
                      "unknown_gate");
  assert_string_equal(json_string_value(json_object_get(e, "field")), "gate");
  tu_http_free(&r);

  /* the JSON query by POST, the op in the path */
  url = tu_fmt("%s/query/today", base);
  r = tu_http("POST", url, token, "application/json", "{}", 2);
  free(url);
  assert_int_equal(r.status, 200);
  assert_int_equal(strncmp(r.content_type, "application/json", 16), 0);
  assert_string_equal(json_string_value(json_object_get(r.json, "town")),
                      "alpha");
  assert_true(json_is_integer(json_object_get(r.json, "today")));
  tu_http_free(&r);

  assert_int_equal(tu_server_stop(&srv, SIGTERM), 0);
  free(base);
  free(log);
  free(so);
}

/* The header promises C++ too: a C++ plugin keeps the C entry name. */
static void a_plugin_written_in_cpp_loads(void **state)
{
  fx *f = *state;
  char *include = tu_fmt("%s/include", tu_env("TWIN_SOURCE_DIR"));
  char *src =
      tu_fmt("%s/tests/plugins/minimal_cpp.cpp", tu_env("TWIN_SOURCE_DIR"));
  char *so = tu_fmt("%s/cpp.so", f->plugins);
  char *log = tu_fmt("%s/cxx.log", f->dir);
  const char *argv[] = {"c++",     "-shared", "-fPIC", "-std=c++17", "-Wall",
                        "-Wextra", "-Werror", "-I",    include,      "-o",
                        so,        src,       NULL};
  int rc = run_logged(argv, log);
  if (rc == 127)
    skip(); /* no C++ compiler on this machine */
  assert_int_equal(rc, 0);
  tu_run r = tu_twinhost(NULL, "plugins", "check", so, NULL);
  if (r.exit_code != 0)
    fail_msg("plugins check exited %d: %s", r.exit_code, r.err);
  assert_non_null(strstr(r.out, "plugin 'cpp' 1.0.0"));
  tu_run_free(&r);
  free(include);
  free(src);
  free(so);
  free(log);
}

int main(void)
{
  setenv("TWINHOST_MAP_MIB", "8", 1); /* small stores in the temp folders */
  const struct CMUnitTest tests[] = {
      cmocka_unit_test_setup_teardown(a_plugin_written_in_cpp_loads, setup,
                                      teardown),
      cmocka_unit_test_setup_teardown(
          the_plugin_in_the_authors_guide_works_as_written, setup, teardown),
      cmocka_unit_test_setup_teardown(the_guides_plugin_answers_over_http,
                                      setup, teardown),
      cmocka_unit_test_setup_teardown(it_builds_against_the_public_header_alone,
                                      setup, teardown),
      cmocka_unit_test_setup_teardown(plugins_check_accepts_it, setup,
                                      teardown),
      cmocka_unit_test_setup_teardown(
          a_host_enabling_it_ingests_a_document_and_answers_queries, setup,
          teardown),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
