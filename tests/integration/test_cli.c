/*
 * test_cli.c — the twinhost command line contract, run through the real
 * binary against the probe plugin: help and exit codes (0 ok, 1 failure,
 * 2 usage), error lines starting "twinhost: ", ingest summaries and acks,
 * query, scenario, entities, history, events, backup and restore, and serve
 * starting, stopping on SIGTERM and holding its data folder alone.
 */
#include "testutil.h"

#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

/* Generous: a sanitizer build on a busy machine is slow to start. */
#define WAIT_MS 60000

/* A temp folder with twinhost.json (towns alpha and beta, both running
 * probe), plugins/probe.so, the data folder and a zoneinfo holding UTC;
 * and the serve processes a test started, stopped in teardown. */
typedef struct fx {
  char *dir;
  char *config;
  char *data;
  pid_t serve_pid;
  int serve_err; /* read end of the serve's stderr */
  char serve_log[8192];
  size_t serve_len;
} fx;

static int setup(void **state)
{
  fx *f = calloc(1, sizeof *f);
  f->dir = tu_tempdir();
  f->serve_pid = -1;
  f->serve_err = -1;
  char *plugins = tu_fmt("%s/plugins", f->dir);
  char *zoneinfo = tu_fmt("%s/zoneinfo", f->dir);
  char *probe = tu_fmt("%s/probe.so", tu_env("TWIN_FIXTURE_DIR"));
  char *link = tu_fmt("%s/probe.so", plugins);
  assert_int_equal(mkdir(plugins, 0755), 0);
  assert_int_equal(mkdir(zoneinfo, 0755), 0);
  assert_int_equal(symlink(probe, link), 0);
  free(tu_write_file(zoneinfo, "UTC", "TZif2 fake zone"));
  setenv("TZDIR", zoneinfo, 1);
  unsetenv("TWINHOST_PLUGIN_PATH");
  unsetenv("TWINHOST_CONFIG");
  f->config =
      tu_write_file(f->dir, "twinhost.json",
                    "{\"data_dir\": \"data\", \"plugin_path\": [\"plugins\"],\n"
                    " \"towns\": [\n"
                    "  {\"id\": \"alpha\", \"timezone\": \"UTC\", \"plugins\": "
                    "{\"probe\": {}}},\n"
                    "  {\"id\": \"beta\", \"timezone\": \"UTC\", \"plugins\": "
                    "{\"probe\": {}}}]}\n");
  f->data = tu_fmt("%s/data", f->dir);
  free(plugins);
  free(zoneinfo);
  free(probe);
  free(link);
  *state = f;
  return 0;
}

static int teardown(void **state)
{
  fx *f = *state;
  if (f->serve_pid > 0) {
    kill(f->serve_pid, SIGKILL);
    waitpid(f->serve_pid, NULL, 0);
  }
  if (f->serve_err >= 0)
    close(f->serve_err);
  unsetenv("TZDIR");
  tu_rmtree(f->dir);
  free(f->dir);
  free(f->config);
  free(f->data);
  free(f);
  return 0;
}

/* ---- helpers ------------------------------------------------------------- */

/* twinhost --config <ours> args... (NULL-terminated), stdin from input. */
static tu_run cli(fx *f, const char *input, ...)
{
  const char *argv[32] = {"--config", f->config};
  size_t n = 2;
  va_list ap;
  va_start(ap, input);
  for (const char *a = va_arg(ap, const char *); a && n < 31;
       a = va_arg(ap, const char *))
    argv[n++] = a;
  va_end(ap);
  argv[n] = NULL;
  return tu_twinhost_argv(input, argv);
}

static void assert_contains(const char *text, const char *want)
{
  assert_non_null(text);
  if (!strstr(text, want))
    fail_msg("\"%s\"\n  lacks \"%s\"", text, want);
}

static void assert_starts(const char *text, const char *want)
{
  assert_non_null(text);
  if (strncmp(text, want, strlen(want)))
    fail_msg("\"%s\"\n  does not start with \"%s\"", text, want);
}

/* The first stderr line starting with prefix (a copy; caller frees): the
 * error line among the host's log lines. */
static char *error_line(const char *err, const char *prefix)
{
  for (const char *s = err; s && *s;) {
    const char *nl = strchr(s, '\n');
    size_t len = nl ? (size_t)(nl - s) : strlen(s);
    if (!strncmp(s, prefix, strlen(prefix)))
      return tu_fmt("%.*s", (int)len, s);
    s = nl ? nl + 1 : NULL;
  }
  fail_msg("no stderr line starts with \"%s\":\n%s", prefix, err);
  return NULL;
}

/* A usage error: exit 2 and a "twinhost: " line on stderr. */
static void assert_usage_error(tu_run *r, const char *want)
{
  if (r->exit_code != 2) {
    char why[4096];
    snprintf(why, sizeof why, "exit %d, want 2; stderr: %s", r->exit_code,
             r->err);
    tu_run_free(r);
    fail_msg("%s", why);
  }
  assert_starts(r->err, "twinhost: ");
  assert_contains(r->err, want);
}

static json_t *parse(const char *text)
{
  json_error_t je;
  json_t *j = json_loads(text, JSON_DECODE_ANY, &je);
  if (!j)
    fail_msg("not JSON (%s): %s", je.text, text);
  return j;
}

/* Ingest JSON Lines into alpha/probe; the command must succeed. */
static void ingest_ok(fx *f, const char *lines)
{
  tu_run r =
      cli(f, lines, "ingest", "--town", "alpha", "--plugin", "probe", NULL);
  if (r.exit_code != 0)
    fail_msg("ingest exited %d: %s%s", r.exit_code, r.out, r.err);
  tu_run_free(&r);
}

/* One document putting Lot/<id> with free = n. */
static char *put_doc(const char *id, int n)
{
  return tu_fmt("{\"ops\":[{\"op\":\"put\",\"type\":\"Lot\",\"id\":\"%s\","
                "\"attrs\":{\"free\":%d}}]}\n",
                id, n);
}

static void ingest_put(fx *f, const char *id, int n)
{
  char *doc = put_doc(id, n);
  ingest_ok(f, doc);
  free(doc);
}

/* `entities --town alpha` as printed (caller frees). */
static char *entities_text(fx *f)
{
  tu_run r = cli(f, NULL, "entities", "--town", "alpha", NULL);
  if (r.exit_code != 0)
    fail_msg("entities exited %d: %s", r.exit_code, r.err);
  char *out = r.out;
  free(r.err);
  return out;
}

/* The ids of alpha's entities, comma-separated in listed order. */
static char *entity_ids(fx *f)
{
  char *text = entities_text(f);
  json_t *list = parse(text);
  char *ids = tu_fmt("%s", "");
  size_t i;
  json_t *e;
  json_array_foreach(list, i, e)
  {
    char *more = tu_fmt("%s%s%s", ids, i ? "," : "",
                        json_string_value(json_object_get(e, "id")));
    free(ids);
    ids = more;
  }
  json_decref(list);
  free(text);
  return ids;
}

static void assert_entity_ids(fx *f, const char *want)
{
  char *ids = entity_ids(f);
  assert_string_equal(ids, want);
  free(ids);
}

static const char obs_doc[] =
    "{\"ops\":[{\"op\":\"obs\",\"type\":\"Lot\",\"id\":\"p1\",\"attr\":"
    "\"free\",\"values\":[[1000,1],[2000,2],[3000,3],[4000,4]]}]}\n";

/* history of Lot/p1 free with extra options; times in ms, oldest first. */
static char *history_times(fx *f, const char *o1, const char *v1,
                           const char *o2, const char *v2)
{
  tu_run r =
      cli(f, NULL, "history", "--town", "alpha", "--plugin", "probe", "--type",
          "Lot", "--id", "p1", "--attr", "free", o1, v1, o2, v2, NULL);
  if (r.exit_code != 0)
    fail_msg("history exited %d: %s", r.exit_code, r.err);
  json_t *list = parse(r.out);
  char *out = tu_fmt("%s", "");
  size_t i;
  json_t *e;
  json_array_foreach(list, i, e)
  {
    /* "1970-01-01T00:00:02.000Z" -> seconds digit, enough for 1..4 s */
    const char *t = json_string_value(json_object_get(e, "time"));
    assert_non_null(t);
    assert_starts(t, "1970-01-01T00:00:0");
    char *more =
        tu_fmt("%s%s%c:%lld", out, i ? "," : "", t[18],
               (long long)json_integer_value(json_object_get(e, "value")));
    free(out);
    out = more;
  }
  json_decref(list);
  tu_run_free(&r);
  return out;
}

/* Start `twinhost serve` with its stderr on a pipe. */
static void start_serve(fx *f)
{
  const char *bin = tu_env("TWIN_BIN");
  int p[2];
  assert_int_equal(pipe(p), 0);
  pid_t pid = fork();
  if (pid == 0) {
    tu_child_dies_with_parent();
    int null = open("/dev/null", O_RDWR);
    dup2(null, 0);
    dup2(null, 1);
    dup2(p[1], 2);
    close(p[0]);
    /* any free port: 8080 may be taken (the demo, another test) */
    execl(bin, bin, "--config", f->config, "serve", "--listen", "127.0.0.1:0",
          (char *)NULL);
    _exit(127);
  }
  close(p[1]);
  assert_true(pid > 0);
  f->serve_pid = pid;
  f->serve_err = p[0];
  f->serve_len = 0;
  f->serve_log[0] = '\0';
}

static long long now_ms(void)
{
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Read the serve's stderr until it holds want (1), or until end of file
 * with want NULL (1); 0 on end of file or after WAIT_MS. */
static int serve_read_until(fx *f, const char *want)
{
  long long deadline = now_ms() + WAIT_MS;
  while (!want || !strstr(f->serve_log, want)) {
    long long left = deadline - now_ms();
    if (left <= 0)
      return 0;
    struct pollfd pfd = {f->serve_err, POLLIN, 0};
    int n = poll(&pfd, 1, (int)left);
    if (n < 0 && errno == EINTR)
      continue;
    if (n <= 0)
      return 0;
    char buf[1024];
    ssize_t got = read(f->serve_err, buf, sizeof buf);
    if (got < 0 && errno == EINTR)
      continue;
    if (got <= 0)
      return want == NULL;
    size_t room = sizeof f->serve_log - 1 - f->serve_len;
    size_t keep = (size_t)got < room ? (size_t)got : room;
    memcpy(f->serve_log + f->serve_len, buf, keep);
    f->serve_len += keep;
    f->serve_log[f->serve_len] = '\0';
  }
  return 1;
}

static void wait_serving(fx *f)
{
  if (!serve_read_until(f, "press Ctrl-C"))
    fail_msg("serve did not say \"press Ctrl-C\"; it said:\n%s", f->serve_log);
}

/* SIGTERM the serve and reap it; its wait status. */
static int stop_serve(fx *f)
{
  assert_int_equal(kill(f->serve_pid, SIGTERM), 0);
  if (!serve_read_until(f, NULL))
    fail_msg("serve did not exit after SIGTERM; it said:\n%s", f->serve_log);
  int status = 0;
  assert_int_equal(waitpid(f->serve_pid, &status, 0), f->serve_pid);
  f->serve_pid = -1;
  close(f->serve_err);
  f->serve_err = -1;
  return status;
}

/* ---- help and usage errors ----------------------------------------------- */

static void help_prints_the_usage_and_exits_0(void **state)
{
  (void)state;
  tu_run r = tu_twinhost(NULL, "--help", NULL);
  assert_int_equal(r.exit_code, 0);
  assert_starts(r.out, "usage: twinhost");
  assert_string_equal(r.err, "");
  tu_run_free(&r);
}

static void every_subcommand_help_prints_its_usage_and_exits_0(void **state)
{
  (void)state;
  static const char *const commands[] = {
      "serve",    "plugins", "ingest", "query",  "scenario",
      "entities", "history", "events", "backup", "restore"};
  for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++) {
    tu_run r = tu_twinhost(NULL, commands[i], "--help", NULL);
    if (r.exit_code != 0)
      fail_msg("%s --help exited %d", commands[i], r.exit_code);
    char *want = tu_fmt("usage: twinhost %s", commands[i]);
    assert_starts(r.out, want);
    assert_string_equal(r.err, "");
    free(want);
    tu_run_free(&r);
  }
}

static void an_unknown_command_exits_2(void **state)
{
  (void)state;
  tu_run r = tu_twinhost(NULL, "frobnicate", NULL);
  assert_usage_error(&r, "'frobnicate'");
  tu_run_free(&r);
}

static void an_unknown_option_exits_2(void **state)
{
  fx *f = *state;
  tu_run r = tu_twinhost(NULL, "--frob", "plugins", "list", NULL);
  assert_usage_error(&r, "'--frob'");
  tu_run_free(&r);
  r = cli(f, NULL, "query", "--town", "alpha", "--plugin", "probe", "--frob",
          "{}", NULL);
  assert_usage_error(&r, "'--frob'");
  tu_run_free(&r);
}

static void a_command_without_town_exits_2_naming_town(void **state)
{
  fx *f = *state;
  tu_run r = cli(f, "{}\n", "ingest", "--plugin", "probe", NULL);
  assert_usage_error(&r, "--town");
  tu_run_free(&r);
  r = cli(f, NULL, "query", "--plugin", "probe", "{}", NULL);
  assert_usage_error(&r, "--town");
  tu_run_free(&r);
  r = cli(f, NULL, "scenario", "--plugin", "probe", "{}", NULL);
  assert_usage_error(&r, "--town");
  tu_run_free(&r);
  r = cli(f, NULL, "entities", NULL);
  assert_usage_error(&r, "--town");
  tu_run_free(&r);
  r = cli(f, NULL, "history", "--plugin", "probe", "--type", "Lot", "--id",
          "p1", "--attr", "free", NULL);
  assert_usage_error(&r, "--town");
  tu_run_free(&r);
  r = cli(f, NULL, "events", NULL);
  assert_usage_error(&r, "--town");
  tu_run_free(&r);
}

static void an_unknown_town_exits_1_naming_it_and_the_known_towns(void **state)
{
  fx *f = *state;
  tu_run r = cli(f, NULL, "query", "--town", "gotham", "--plugin", "probe",
                 "{\"op\":\"town\"}", NULL);
  assert_int_equal(r.exit_code, 1);
  char *line = error_line(r.err, "twinhost: query: ");
  assert_contains(line, "'gotham'");
  assert_contains(line, "alpha, beta");
  free(line);
  tu_run_free(&r);
  r = cli(f, NULL, "entities", "--town", "gotham", NULL);
  assert_int_equal(r.exit_code, 1);
  line = error_line(r.err, "twinhost: entities: ");
  assert_contains(line, "'gotham'");
  assert_contains(line, "alpha, beta");
  free(line);
  tu_run_free(&r);
}

static void an_invalid_config_exits_1_naming_file_line_and_column(void **state)
{
  fx *f = *state;
  char *bad = tu_write_file(f->dir, "bad.json",
                            "{\"towns\": [\n  {\"id\": \"x\",}\n]}\n");
  tu_run r = tu_twinhost(NULL, "--config", bad, "plugins", "list", NULL);
  assert_int_equal(r.exit_code, 1);
  assert_starts(r.err, "twinhost: ");
  /* <file>:<line>:<column>: */
  char *where = tu_fmt("%s:2:", bad);
  const char *at = strstr(r.err, where);
  if (!at)
    fail_msg("\"%s\" does not name \"%s<column>\"", r.err, where);
  const char *col = at + strlen(where);
  assert_true(*col >= '1' && *col <= '9');
  while (*col >= '0' && *col <= '9')
    col++;
  assert_int_equal(*col, ':');
  free(where);
  free(bad);
  tu_run_free(&r);
}

/* ---- ingest -------------------------------------------------------------- */

static const char one_bad_among_good[] =
    "{\"ops\":[{\"op\":\"put\",\"type\":\"Lot\",\"id\":\"p1\","
    "\"attrs\":{\"free\":3}}]}\n"
    "{\"ops\":[{\"op\":\"put\",\"type\":\"Lot\",\"id\":\"bad\","
    "\"attrs\":{\"free\":0}},{\"op\":\"fail\",\"message\":\"boom\"}]}\n"
    "{\"ops\":[{\"op\":\"put\",\"type\":\"Lot\",\"id\":\"p3\","
    "\"attrs\":{\"free\":5}}]}\n";

static void ingest_summary_counts_a_bad_line_by_number_and_reason(void **state)
{
  fx *f = *state;
  tu_run r = cli(f, one_bad_among_good, "ingest", "--town", "alpha", "--plugin",
                 "probe", NULL);
  assert_int_equal(r.exit_code, 1);
  json_t *sum = parse(r.out);
  assert_int_equal(json_integer_value(json_object_get(sum, "documents")), 3);
  assert_int_equal(json_integer_value(json_object_get(sum, "accepted")), 2);
  assert_int_equal(json_integer_value(json_object_get(sum, "rejected")), 1);
  json_t *rejections = json_object_get(sum, "rejections");
  assert_int_equal(json_array_size(rejections), 1);
  json_t *bad = json_array_get(rejections, 0);
  assert_int_equal(json_integer_value(json_object_get(bad, "line")), 2);
  assert_contains(json_string_value(json_object_get(bad, "error")), "boom");
  free(error_line(r.err, "twinhost: ingest: "));
  json_decref(sum);
  tu_run_free(&r);
}

static void ingest_stores_the_good_documents_around_a_bad_one(void **state)
{
  fx *f = *state;
  tu_run r = cli(f, one_bad_among_good, "ingest", "--town", "alpha", "--plugin",
                 "probe", NULL);
  assert_int_equal(r.exit_code, 1);
  tu_run_free(&r);
  assert_entity_ids(f, "p1,p3");
}

static void ingest_ack_prints_one_line_per_committed_document(void **state)
{
  fx *f = *state;
  char *a = put_doc("p1", 1), *b = put_doc("p2", 2), *c = put_doc("p3", 3);
  char *input = tu_fmt("%s%s%s", a, b, c);
  tu_run r = cli(f, input, "ingest", "--town", "alpha", "--plugin", "probe",
                 "--ack", NULL);
  if (r.exit_code != 0)
    fail_msg("ingest --ack exited %d: %s", r.exit_code, r.err);
  int seen[4] = {0};
  size_t lines = 0;
  for (char *s = r.out, *nl; (nl = strchr(s, '\n')); s = nl + 1) {
    *nl = '\0';
    json_t *ack = parse(s);
    assert_string_equal(json_string_value(json_object_get(ack, "status")),
                        "ok");
    json_int_t line = json_integer_value(json_object_get(ack, "line"));
    assert_true(line >= 1 && line <= 3);
    seen[line]++;
    lines++;
    json_decref(ack);
  }
  assert_int_equal(lines, 3);
  assert_true(seen[1] == 1 && seen[2] == 1 && seen[3] == 1);
  assert_entity_ids(f, "p1,p2,p3");
  tu_run_free(&r);
  free(input);
  free(a);
  free(b);
  free(c);
}

/* The CLI reads its input as the HTTP API reads a body (core/batch.c). */

#define PUT(id, n)                                                            \
  "{\"ops\":[{\"op\":\"put\",\"type\":\"Lot\",\"id\":\"" id "\","           \
  "\"attrs\":{\"free\":" #n "}}]}"

static void ingest_json_file_is_a_batch_as_over_http(void **state)
{
  fx *f = *state;
  char *arr = tu_write_file(f->dir, "batch.json",
                            "[" PUT("p1", 1) ",\n " PUT("p2", 2) "]");
  char *obj = tu_write_file(f->dir, "wrapped.json",
                            "{\"documents\": [" PUT("p3", 3) "]}");
  char *one = tu_write_file(f->dir, "one.json", PUT("p4", 4) "\n");
  const char *files[] = {arr, obj, one};
  const long want[] = {2, 1, 1};
  for (size_t i = 0; i < 3; i++) {
    tu_run r = cli(f, NULL, "ingest", "--town", "alpha", "--plugin", "probe",
                   files[i], NULL);
    if (r.exit_code != 0)
      fail_msg("ingest %s exited %d: %s", files[i], r.exit_code, r.err);
    json_t *sum = parse(r.out);
    assert_int_equal(json_integer_value(json_object_get(sum, "accepted")),
                     want[i]);
    json_decref(sum);
    tu_run_free(&r);
  }
  assert_entity_ids(f, "p1,p2,p3,p4");
  free(arr);
  free(obj);
  free(one);
}

static void ingest_refuses_input_that_breaks_and_ingests_none_of_it(
    void **state)
{
  fx *f = *state;
  /* line 3 is cut short: lines 1 and 2 are not ingested either */
  tu_run r = cli(f, PUT("p1", 1) "\n\n" "{\"ops\":[\n" PUT("p2", 2) "\n",
                 "ingest", "--town", "alpha", "--plugin", "probe", NULL);
  assert_int_equal(r.exit_code, 1);
  char *why = error_line(r.err, "twinhost: ingest: ");
  assert_contains(why, "standard input: line 3 is not JSON");
  assert_contains(why, "nothing was ingested");
  free(why);
  tu_run_free(&r);
  /* the same words as HTTP for a .json file that is not one */
  char *bad = tu_write_file(f->dir, "bad.json", "[" PUT("p1", 1) ",]");
  r = cli(f, NULL, "ingest", "--town", "alpha", "--plugin", "probe", bad,
          NULL);
  assert_int_equal(r.exit_code, 1);
  why = error_line(r.err, "twinhost: ingest: ");
  assert_contains(why, "bad.json: the body is not JSON");
  assert_contains(why, "(line 1, column");
  free(why);
  tu_run_free(&r);
  assert_entity_ids(f, "");
  free(bad);
}

static void ingest_whole_sends_the_input_as_it_is(void **state)
{
  fx *f = *state;
  /* two lines of one document: as JSON Lines it would not be JSON */
  tu_run r = cli(f, "{\"ops\":\n[" "{\"op\":\"put\",\"type\":\"Lot\",\"id\":\"w1\",\"attrs\":{\"free\":1}}" "]}\n", "ingest", "--town",
                 "alpha", "--plugin", "probe", "--whole", NULL);
  if (r.exit_code != 0)
    fail_msg("ingest --whole exited %d: %s", r.exit_code, r.err);
  tu_run_free(&r);
  r = cli(f, "{\"ops\":\n[" "{\"op\":\"put\",\"type\":\"Lot\",\"id\":\"w1\",\"attrs\":{\"free\":1}}" "]}\n", "ingest", "--town", "alpha",
          "--plugin", "probe", NULL);
  assert_int_equal(r.exit_code, 1);
  tu_run_free(&r);
  assert_entity_ids(f, "w1");
}

/* ---- query and scenario -------------------------------------------------- */

static void query_prints_the_plugins_answer_as_json(void **state)
{
  fx *f = *state;
  ingest_put(f, "p1", 3);
  tu_run r = cli(f, NULL, "query", "--town", "alpha", "--plugin", "probe",
                 "{\"op\":\"get\",\"type\":\"Lot\",\"id\":\"p1\","
                 "\"attr\":\"free\"}",
                 NULL);
  if (r.exit_code != 0)
    fail_msg("query exited %d: %s", r.exit_code, r.err);
  json_t *reply = parse(r.out);
  assert_int_equal(json_integer_value(json_object_get(reply, "value")), 3);
  assert_string_equal(json_string_value(json_object_get(reply, "name")),
                      "free");
  json_decref(reply);
  tu_run_free(&r);
}

static void query_with_a_request_that_is_not_json_exits_2(void **state)
{
  fx *f = *state;
  tu_run r = cli(f, NULL, "query", "--town", "alpha", "--plugin", "probe",
                 "op=list", NULL);
  assert_usage_error(&r, "not JSON");
  assert_starts(r.err, "twinhost: query: ");
  assert_string_equal(r.out, "");
  tu_run_free(&r);
}

static void scenario_reports_and_leaves_live_state_unchanged(void **state)
{
  fx *f = *state;
  ingest_put(f, "p1", 3);
  char *before = entities_text(f);
  tu_run r = cli(f, NULL, "scenario", "--town", "alpha", "--plugin", "probe",
                 "{\"ops\":[{\"op\":\"put\",\"type\":\"Lot\",\"id\":\"p9\","
                 "\"attrs\":{\"free\":0}},{\"op\":\"put\",\"type\":\"Lot\","
                 "\"id\":\"p1\",\"attrs\":{\"free\":99}},{\"op\":\"emit\","
                 "\"message\":\"what if\"}],\"then\":{\"op\":\"list\"}}",
                 NULL);
  if (r.exit_code != 0)
    fail_msg("scenario exited %d: %s", r.exit_code, r.err);
  json_t *out = parse(r.out);
  json_t *report = json_object_get(out, "report");
  assert_int_equal(json_array_size(report), 2);
  assert_string_equal(
      json_string_value(json_array_get(json_array_get(report, 1), 1)), "p9");
  json_t *ev = json_array_get(json_object_get(out, "events"), 0);
  assert_string_equal(json_string_value(json_object_get(ev, "message")),
                      "what if");
  json_decref(out);
  tu_run_free(&r);
  char *after = entities_text(f);
  assert_string_equal(after, before);
  r = cli(f, NULL, "events", "--town", "alpha", NULL);
  assert_int_equal(r.exit_code, 0);
  json_t *events = parse(r.out);
  assert_int_equal(json_array_size(events), 0);
  json_decref(events);
  tu_run_free(&r);
  free(before);
  free(after);
}

/* ---- history and events -------------------------------------------------- */

static void
history_returns_observations_from_inclusive_to_exclusive(void **state)
{
  fx *f = *state;
  ingest_ok(f, obs_doc);
  char *got = history_times(f, "--from", "2000", "--to", "4000");
  assert_string_equal(got, "2:2,3:3");
  free(got);
}

static void history_takes_rfc_3339_times(void **state)
{
  fx *f = *state;
  ingest_ok(f, obs_doc);
  char *got = history_times(f, "--from", "1970-01-01T00:00:02Z", "--to",
                            "1970-01-01T01:00:04+01:00");
  assert_string_equal(got, "2:2,3:3");
  free(got);
  got = history_times(f, "--from", "1970-01-01T00:00:03.000Z", NULL, NULL);
  assert_string_equal(got, "3:3,4:4");
  free(got);
}

static void history_stops_after_limit_oldest_first(void **state)
{
  fx *f = *state;
  ingest_ok(f, obs_doc);
  char *got = history_times(f, "--limit", "2", NULL, NULL);
  assert_string_equal(got, "1:1,2:2");
  free(got);
}

static void history_with_a_from_that_is_not_a_time_exits_2(void **state)
{
  fx *f = *state;
  tu_run r =
      cli(f, NULL, "history", "--town", "alpha", "--plugin", "probe", "--type",
          "Lot", "--id", "p1", "--attr", "free", "--from", "garbage", NULL);
  assert_usage_error(&r, "'garbage'");
  assert_starts(r.err, "twinhost: history: ");
  tu_run_free(&r);
}

static void history_with_a_limit_that_is_not_a_number_exits_2(void **state)
{
  fx *f = *state;
  ingest_ok(f, obs_doc);
  tu_run r =
      cli(f, NULL, "history", "--town", "alpha", "--plugin", "probe", "--type",
          "Lot", "--id", "p1", "--attr", "free", "--limit", "two", NULL);
  assert_usage_error(&r, "--limit");
  assert_starts(r.err, "twinhost: history: ");
  tu_run_free(&r);
}

static void history_every_and_agg_sum_up_buckets(void **state)
{
  fx *f = *state;
  ingest_ok(f, obs_doc);
  /* 2 s buckets from 1970: [0,2) holds 1, [2,4) holds 2 and 3, [4,6) 4 */
  tu_run r = cli(f, NULL, "history", "--town", "alpha", "--plugin", "probe",
                 "--type", "Lot", "--id", "p1", "--attr", "free", "--every",
                 "2s", "--agg", "sum", NULL);
  if (r.exit_code != 0)
    fail_msg("history exited %d: %s", r.exit_code, r.err);
  json_t *list = parse(r.out);
  assert_int_equal(json_array_size(list), 3);
  json_t *b = json_array_get(list, 1);
  assert_string_equal(json_string_value(json_object_get(b, "time")),
                      "1970-01-01T00:00:02Z");
  assert_true(json_real_value(json_object_get(b, "value")) == 5);
  assert_int_equal(json_integer_value(json_object_get(b, "count")), 2);
  json_decref(list);
  tu_run_free(&r);
  r = cli(f, NULL, "history", "--town", "alpha", "--plugin", "probe",
          "--type", "Lot", "--id", "p1", "--attr", "free", "--agg", "sum",
          NULL);
  assert_usage_error(&r, "agg needs every");
  tu_run_free(&r);
}

static void entities_filter_keeps_those_where_it_holds(void **state)
{
  fx *f = *state;
  ingest_put(f, "p1", 3);
  ingest_put(f, "p2", 8);
  tu_run r = cli(f, NULL, "entities", "--town", "alpha", "--filter", "free>5",
                 NULL);
  if (r.exit_code != 0)
    fail_msg("entities exited %d: %s", r.exit_code, r.err);
  json_t *list = parse(r.out);
  assert_int_equal(json_array_size(list), 1);
  assert_string_equal(
      json_string_value(json_object_get(json_array_get(list, 0), "id")), "p2");
  json_decref(list);
  tu_run_free(&r);
  r = cli(f, NULL, "entities", "--town", "alpha", "--filter", "free", NULL);
  assert_usage_error(&r, "e.g. filter=");
  tu_run_free(&r);
}

static void events_shows_an_emitted_event(void **state)
{
  fx *f = *state;
  ingest_ok(f, "{\"ops\":[{\"op\":\"emit\",\"level\":\"warning\","
               "\"message\":\"lot nearly full\",\"type\":\"Lot\","
               "\"id\":\"p2\",\"data\":{\"free\":1}}]}\n");
  tu_run r = cli(f, NULL, "events", "--town", "alpha", NULL);
  if (r.exit_code != 0)
    fail_msg("events exited %d: %s", r.exit_code, r.err);
  json_t *events = parse(r.out);
  assert_int_equal(json_array_size(events), 1);
  json_t *ev = json_array_get(events, 0);
  assert_string_equal(json_string_value(json_object_get(ev, "message")),
                      "lot nearly full");
  assert_string_equal(json_string_value(json_object_get(ev, "level")),
                      "warning");
  assert_string_equal(json_string_value(json_object_get(ev, "plugin")),
                      "probe");
  assert_string_equal(json_string_value(json_object_get(ev, "entity_id")),
                      "p2");
  json_decref(events);
  tu_run_free(&r);
  r = cli(f, NULL, "events", "--town", "beta", NULL);
  assert_int_equal(r.exit_code, 0);
  events = parse(r.out);
  assert_int_equal(json_array_size(events), 0);
  json_decref(events);
  tu_run_free(&r);
}

/* ---- backup and restore -------------------------------------------------- */

static void restore_brings_back_the_state_of_the_backup(void **state)
{
  fx *f = *state;
  char *backup = tu_fmt("%s/backup", f->dir);
  ingest_put(f, "p1", 1);
  tu_run r = cli(f, NULL, "backup", backup, NULL);
  if (r.exit_code != 0)
    fail_msg("backup exited %d: %s", r.exit_code, r.err);
  tu_run_free(&r);
  ingest_put(f, "p2", 2);
  assert_entity_ids(f, "p1,p2");
  r = cli(f, NULL, "restore", backup, NULL);
  if (r.exit_code != 0)
    fail_msg("restore exited %d: %s", r.exit_code, r.err);
  tu_run_free(&r);
  assert_entity_ids(f, "p1");
  free(backup);
}

static void restore_refuses_while_the_serve_lock_is_held(void **state)
{
  fx *f = *state;
  char *backup = tu_fmt("%s/backup", f->dir);
  ingest_put(f, "p1", 1);
  tu_run r = cli(f, NULL, "backup", backup, NULL);
  assert_int_equal(r.exit_code, 0);
  tu_run_free(&r);
  ingest_put(f, "p2", 2);
  char *lockpath = tu_fmt("%s/serve.lock", f->data);
  int fd = open(lockpath, O_RDWR | O_CREAT, 0644);
  assert_true(fd >= 0);
  assert_int_equal(flock(fd, LOCK_EX | LOCK_NB), 0);
  r = cli(f, NULL, "restore", backup, NULL);
  close(fd);
  assert_int_equal(r.exit_code, 1);
  assert_starts(r.err, "twinhost: restore: ");
  assert_string_equal(r.out, "");
  tu_run_free(&r);
  assert_entity_ids(f, "p1,p2");
  free(lockpath);
  free(backup);
}

/* ---- serve --------------------------------------------------------------- */

static void serve_runs_until_sigterm_and_exits_0(void **state)
{
  fx *f = *state;
  start_serve(f);
  wait_serving(f);
  int status = stop_serve(f);
  if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
    fail_msg("serve ended with wait status %#x; it said:\n%s", status,
             f->serve_log);
}

static void a_second_serve_on_the_same_data_folder_exits_1(void **state)
{
  fx *f = *state;
  start_serve(f);
  wait_serving(f);
  tu_run r = cli(f, NULL, "serve", NULL);
  assert_int_equal(r.exit_code, 1);
  assert_starts(r.err, "twinhost: serve: ");
  assert_contains(r.err, "already using");
  tu_run_free(&r);
  int status = stop_serve(f);
  assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
}

/* Another serve (its own data folder) on the port of a running one must
 * fail: with SO_REUSEPORT the kernel would split connections between the
 * two hosts. */
static void a_second_serve_on_a_port_in_use_exits_1(void **state)
{
  fx *f = *state;
  start_serve(f);
  wait_serving(f);
  const char *at = strstr(f->serve_log, "API on http://127.0.0.1:");
  assert_non_null(at);
  int port = atoi(at + strlen("API on http://127.0.0.1:"));
  char *other = tu_write_file(
      f->dir, "other.json",
      "{\"data_dir\": \"data2\", \"plugin_path\": [\"plugins\"],\n"
      " \"towns\": [{\"id\": \"alpha\", \"timezone\": \"UTC\"}]}\n");
  char listen[32];
  snprintf(listen, sizeof listen, "127.0.0.1:%d", port);
  /* bounded: a serve that did start is stopped after 20 s, and fails */
  char *err_path = tu_fmt("%s/second.err", f->dir);
  pid_t pid = fork();
  if (pid == 0) {
    tu_child_dies_with_parent();
    int fd = open(err_path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    dup2(fd, 2);
    execl(tu_env("TWIN_BIN"), "twinhost", "--config", other, "serve",
          "--listen", listen, (char *)NULL);
    _exit(127);
  }
  int status = 0, exited = 0;
  for (int i = 0; i < 200 && !exited; i++) {
    exited = waitpid(pid, &status, WNOHANG) == pid;
    if (!exited)
      tu_sleep_ms(100);
  }
  if (!exited) {
    kill(pid, SIGKILL);
    waitpid(pid, &status, 0);
    fail_msg("a second serve started on port %d, which is in use", port);
  }
  char *err = tu_read_file(err_path);
  assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 1);
  assert_contains(err, "cannot listen on 127.0.0.1 port");
  assert_contains(err, "in use");
  free(err);
  free(err_path);
  free(other);
  status = stop_serve(f);
  assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
}

static void serve_refuses_a_malformed_listen_address(void **state)
{
  fx *f = *state;
  static const char *const bad[] = {"nonsense", "127.0.0.1",
                                    "127.0.0.1:",    "127.0.0.1:65536",
                                    "127.0.0.1:-1",  "127.0.0.1:80x",
                                    "[::1:8080",     "::1]:8080"};
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    tu_run r = cli(f, NULL, "serve", "--listen", bad[i], NULL);
    assert_usage_error(&r, "--listen");
    assert_contains(r.err, bad[i]);
    tu_run_free(&r);
  }
  /* a well-formed address that is not a numeric IP fails, naming it */
  tu_run r = cli(f, NULL, "serve", "--listen", "localhost:0", NULL);
  assert_int_equal(r.exit_code, 1);
  assert_contains(r.err, "'localhost' is not a numeric IPv4 or IPv6");
  tu_run_free(&r);
}

static void
serve_records_a_plugin_that_failed_to_open_for_plugins_list(void **state)
{
  fx *f = *state;
  /* beta's probe is told to fail in open; alpha's runs. */
  free(f->config);
  f->config =
      tu_write_file(f->dir, "twinhost.json",
                    "{\"data_dir\": \"data\", \"plugin_path\": [\"plugins\"],\n"
                    " \"towns\": [\n"
                    "  {\"id\": \"alpha\", \"timezone\": \"UTC\", \"plugins\": "
                    "{\"probe\": {}}},\n"
                    "  {\"id\": \"beta\", \"timezone\": \"UTC\", \"plugins\": "
                    "{\"probe\": {\"config\": {\"fail_open\": true}}}}]}\n");
  start_serve(f);
  wait_serving(f);
  tu_run r = cli(f, NULL, "plugins", "list", NULL);
  assert_int_equal(r.exit_code, 0);
  json_t *j = json_loads(r.out, 0, NULL);
  assert_non_null(j);
  json_t *towns = json_object_get(j, "towns");
  assert_int_equal(json_array_size(towns), 2);
  for (size_t i = 0; i < 2; i++) {
    json_t *row = json_array_get(towns, i);
    const char *town = json_string_value(json_object_get(row, "town"));
    const char *st = json_string_value(json_object_get(row, "state"));
    if (!strcmp(town, "beta")) {
      assert_string_equal(st, "disabled");
      assert_contains(json_string_value(json_object_get(row, "reason")),
                      "asked to fail in open");
    } else {
      assert_string_equal(st, "running");
    }
  }
  json_decref(j);
  tu_run_free(&r);
  int status = stop_serve(f);
  assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
}

#define T(name) cmocka_unit_test_setup_teardown(name, setup, teardown)

int main(void)
{
  setenv("TWINHOST_MAP_MIB", "8", 1); /* small stores in the temp folders */
  const struct CMUnitTest tests[] = {
      T(help_prints_the_usage_and_exits_0),
      T(every_subcommand_help_prints_its_usage_and_exits_0),
      T(an_unknown_command_exits_2),
      T(an_unknown_option_exits_2),
      T(a_command_without_town_exits_2_naming_town),
      T(an_unknown_town_exits_1_naming_it_and_the_known_towns),
      T(an_invalid_config_exits_1_naming_file_line_and_column),
      T(ingest_summary_counts_a_bad_line_by_number_and_reason),
      T(ingest_stores_the_good_documents_around_a_bad_one),
      T(ingest_ack_prints_one_line_per_committed_document),
      T(ingest_json_file_is_a_batch_as_over_http),
      T(ingest_refuses_input_that_breaks_and_ingests_none_of_it),
      T(ingest_whole_sends_the_input_as_it_is),
      T(query_prints_the_plugins_answer_as_json),
      T(query_with_a_request_that_is_not_json_exits_2),
      T(scenario_reports_and_leaves_live_state_unchanged),
      T(history_returns_observations_from_inclusive_to_exclusive),
      T(history_takes_rfc_3339_times),
      T(history_stops_after_limit_oldest_first),
      T(history_with_a_from_that_is_not_a_time_exits_2),
      T(history_with_a_limit_that_is_not_a_number_exits_2),
      T(history_every_and_agg_sum_up_buckets),
      T(entities_filter_keeps_those_where_it_holds),
      T(events_shows_an_emitted_event),
      T(restore_brings_back_the_state_of_the_backup),
      T(restore_refuses_while_the_serve_lock_is_held),
      T(serve_runs_until_sigterm_and_exits_0),
      T(a_second_serve_on_the_same_data_folder_exits_1),
      T(a_second_serve_on_a_port_in_use_exits_1),
      T(serve_refuses_a_malformed_listen_address),
      T(serve_records_a_plugin_that_failed_to_open_for_plugins_list),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
