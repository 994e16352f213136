/*
 * test_demo.c — the demo lives: the feed simulator (build/tools/
 * twinhost-feedsim) serves plausible ParkAPI v1 feeds of the demo towns
 * with ETags, a real `twinhost serve` pulling it shows readings of the last
 * minutes, and twinhost-demodata writes history and readings that end
 * where the demo starts and load twice without harm.
 */
#include "testutil.h"

#include <curl/curl.h>
#include <jansson.h>
#include <poll.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <twin/twinaux.h>

#define SIM_START_MS 10000
#define STOP_MS 10000
#define TOOL_MS 60000
#define FETCH_WAIT_MS 30000
#define WEEK_S (7 * 86400)

static const char *const TOWNS[] = {"deggendorf", "plattling"};

/* ---- running the tools ----------------------------------------------------
 */

static char *tool(const char *name)
{
  char *path = tu_fmt("%s/tools/%s", tu_env("TWIN_BUILD_DIR"), name);
  if (access(path, X_OK))
    fail_msg("%s is missing: cmake --build <build> --target %s", path, name);
  return path;
}

static char *pack(const char *town)
{
  return tu_fmt("%s/scripts/%s", tu_env("TWIN_SOURCE_DIR"), town);
}

/* Wait up to ms for pid; SIGKILL it after. Exit code, 128+signal, or -1
 * when it had to be killed. */
static int wait_bounded(pid_t pid, long ms)
{
  int status = 0;
  pid_t got;
  long long deadline = tu_mono_ms() + ms;
  while ((got = waitpid(pid, &status, WNOHANG)) == 0 && tu_mono_ms() < deadline)
    tu_sleep_ms(10);
  if (got != pid) {
    kill(pid, SIGKILL);
    waitpid(pid, NULL, 0);
    return -1;
  }
  return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

/* Run argv (argv[0] a path) with stdout in out_path and stderr in
 * err_path, at most TOOL_MS. */
static int run(const char *const *argv, const char *out_path,
               const char *err_path)
{
  pid_t pid = fork();
  if (pid < 0)
    fail_msg("fork failed");
  if (pid == 0) {
    tu_child_dies_with_parent();
    FILE *o = freopen(out_path, "w", stdout);
    FILE *e = freopen(err_path, "w", stderr);
    if (!o || !e)
      _exit(126);
    execv(argv[0], (char *const *)argv);
    _exit(127);
  }
  return wait_bounded(pid, TOOL_MS);
}

/* ---- the simulator ----------------------------------------------------------
 */

typedef struct sim {
  pid_t pid;
  int port;
  char *log;
} sim;

static void sim_start(sim *s, const char *dir)
{
  char *bin = tool("twinhost-feedsim");
  char *p1 = pack(TOWNS[0]), *p2 = pack(TOWNS[1]);
  int out[2];
  s->log = tu_fmt("%s/feedsim.log", dir);
  assert_int_equal(pipe(out), 0);
  s->pid = fork();
  assert_true(s->pid >= 0);
  if (s->pid == 0) {
    tu_child_dies_with_parent();
    dup2(out[1], 1);
    close(out[0]);
    close(out[1]);
    if (!freopen(s->log, "w", stderr))
      _exit(126);
    execl(bin, bin, "--port", "0", p1, p2, (char *)NULL);
    _exit(127);
  }
  close(out[1]);
  char line[32] = "";
  size_t n = 0;
  for (long long deadline = tu_mono_ms() + SIM_START_MS;
       !memchr(line, '\n', n) && n + 1 < sizeof line;) {
    long left = (long)(deadline - tu_mono_ms());
    struct pollfd p = {out[0], POLLIN, 0};
    if (left <= 0 || poll(&p, 1, (int)left) <= 0)
      break;
    ssize_t got = read(out[0], line + n, sizeof line - 1 - n);
    if (got <= 0)
      break;
    n += (size_t)got;
    line[n] = 0;
  }
  close(out[0]);
  s->port = atoi(line);
  free(bin);
  free(p1);
  free(p2);
  if (s->port <= 0 || s->port > 65535) {
    char *log = tu_read_file(s->log);
    kill(s->pid, SIGKILL);
    waitpid(s->pid, NULL, 0);
    s->pid = -1;
    fail_msg("twinhost-feedsim printed no port (got \"%s\"); its stderr:\n%s",
             line, log ? log : "");
  }
}

/* SIGTERM, then wait; the exit code (-1: had to be killed). */
static int sim_stop(sim *s)
{
  int rc = -1;
  if (s->pid > 0) {
    kill(s->pid, SIGTERM);
    rc = wait_bounded(s->pid, STOP_MS);
  }
  s->pid = -1;
  return rc;
}

/* ---- HTTP with headers
 * -------------------------------------------------------- */

typedef struct resp {
  long status;
  char *body;
  size_t len;
  char etag[128];
  char type[128];
  json_t *json;
} resp;

static size_t on_body(char *d, size_t size, size_t n, void *ud)
{
  resp *r = ud;
  char *p = realloc(r->body, r->len + size * n + 1);
  if (!p)
    return 0;
  memcpy(p + r->len, d, size * n);
  r->body = p;
  r->len += size * n;
  r->body[r->len] = 0;
  return size * n;
}

static size_t on_header(char *d, size_t size, size_t n, void *ud)
{
  resp *r = ud;
  size_t len = size * n;
  if (len > 6 && !strncasecmp(d, "ETag:", 5)) {
    const char *v = d + 5;
    while (*v == ' ')
      v++;
    size_t vl = (size_t)(d + len - v);
    while (vl && (v[vl - 1] == '\r' || v[vl - 1] == '\n'))
      vl--;
    snprintf(r->etag, sizeof r->etag, "%.*s", (int)vl, v);
  }
  return len;
}

static resp get(const char *method, const char *url, const char *if_none_match)
{
  resp r;
  memset(&r, 0, sizeof r);
  CURL *c = curl_easy_init();
  struct curl_slist *h = NULL;
  char line[256];
  assert_non_null(c);
  if (if_none_match) {
    snprintf(line, sizeof line, "If-None-Match: %s", if_none_match);
    h = curl_slist_append(h, line);
  }
  curl_easy_setopt(c, CURLOPT_URL, url);
  curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, method);
  curl_easy_setopt(c, CURLOPT_HTTPHEADER, h);
  curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_body);
  curl_easy_setopt(c, CURLOPT_WRITEDATA, &r);
  curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, on_header);
  curl_easy_setopt(c, CURLOPT_HEADERDATA, &r);
  curl_easy_setopt(c, CURLOPT_TIMEOUT, 10L);
  curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
  CURLcode rc = curl_easy_perform(c);
  if (rc)
    fail_msg("%s %s: %s", method, url, curl_easy_strerror(rc));
  curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &r.status);
  char *ct = NULL;
  curl_easy_getinfo(c, CURLINFO_CONTENT_TYPE, &ct);
  snprintf(r.type, sizeof r.type, "%s", ct ? ct : "");
  curl_slist_free_all(h);
  curl_easy_cleanup(c);
  if (!r.body)
    r.body = calloc(1, 1);
  r.json = json_loadb(r.body, r.len, 0, NULL);
  return r;
}

static void resp_free(resp *r)
{
  free(r->body);
  json_decref(r->json);
  memset(r, 0, sizeof *r);
}

/* ---- checks ----------------------------------------------------------------
 */

static int64_t now_s(void)
{
  return (int64_t)time(NULL);
}

/* An RFC 3339 string as seconds; fails the test when v is not one. */
static int64_t time_of(const json_t *v, const char *what)
{
  const char *s = json_string_value(v);
  twin_time ms = 0;
  if (!s || twinaux_time_parse(s, strlen(s), 0, &ms) != TWIN_OK)
    fail_msg("%s: expected an RFC 3339 time, got %s", what, s ? s : "none");
  return ms / 1000;
}

/* The lots of a town's parking config (town.json), as an array (borrowed
 * from *root, which the caller frees). */
static json_t *config_lots(const char *town, json_t **root)
{
  char *dir = pack(town);
  char *path = tu_fmt("%s/town.json", dir);
  *root = json_load_file(path, 0, NULL);
  assert_non_null(*root);
  json_t *lots = json_object_get(
      json_object_get(
          json_object_get(json_object_get(*root, "plugins"), "parking"),
          "config"),
      "lots");
  assert_true(json_array_size(lots) > 0);
  free(path);
  free(dir);
  return lots;
}

/* A ParkAPI v1 city document of town: every lot of the town's config,
 * each with a plausible count. */
static void check_parkapi_v1(const json_t *doc, const char *town)
{
  json_t *root;
  json_t *want = config_lots(town, &root);
  const json_t *lots = json_object_get(doc, "lots"), *l;
  size_t i;
  assert_non_null(doc);
  time_of(json_object_get(doc, "last_updated"), "last_updated");
  assert_int_equal(json_array_size(lots), json_array_size(want));
  json_array_foreach(lots, i, l)
  {
    const char *id = json_string_value(json_object_get(l, "id"));
    json_int_t total = json_integer_value(json_object_get(l, "total"));
    json_int_t free_ = json_integer_value(json_object_get(l, "free"));
    const json_t *coords = json_object_get(l, "coords");
    assert_non_null(id);
    assert_string_equal(
        id, json_string_value(json_object_get(json_array_get(want, i), "id")));
    assert_non_null(json_string_value(json_object_get(l, "name")));
    assert_true(json_is_integer(json_object_get(l, "total")));
    assert_true(json_is_integer(json_object_get(l, "free")));
    assert_int_equal(total, json_integer_value(json_object_get(
                                json_array_get(want, i), "total")));
    if (free_ < 0 || free_ > total)
      fail_msg("%s: lot %s: free %lld not in 0..%lld", town, id,
               (long long)free_, (long long)total);
    assert_string_equal(json_string_value(json_object_get(l, "state")), "open");
    assert_true(json_is_number(json_object_get(coords, "lat")));
    assert_true(json_is_number(json_object_get(coords, "lng")));
    assert_non_null(json_string_value(json_object_get(l, "lot_type")));
  }
  json_decref(root);
}

/* ---- fixture
 * ------------------------------------------------------------------ */

typedef struct fx {
  char *dir;
  sim sim;
  tu_server srv;
} fx;

static char *saved_tzdir;

static int setup(void **state)
{
  fx *f = calloc(1, sizeof *f);
  f->dir = tu_tempdir();
  f->sim.pid = -1;
  f->srv.pid = -1;
  *state = f;
  return 0;
}

static int teardown(void **state)
{
  fx *f = *state;
  tu_server_stop(&f->srv, SIGTERM);
  sim_stop(&f->sim);
  free(f->sim.log);
  tu_rmtree(f->dir);
  free(f->dir);
  free(f);
  if (saved_tzdir)
    setenv("TZDIR", saved_tzdir, 1);
  else
    unsetenv("TZDIR");
  return 0;
}

static char *feed_url(const fx *f, const char *path)
{
  return tu_fmt("http://127.0.0.1:%d%s", f->sim.port, path);
}

/* ---- the simulator's feeds --------------------------------------------------
 */

static void feedsim_serves_parkapi_v1_of_every_demo_town(void **state)
{
  fx *f = *state;
  sim_start(&f->sim, f->dir);
  for (size_t i = 0; i < 2; i++) {
    char *path = tu_fmt("/%s/lots.json", TOWNS[i]);
    char *url = feed_url(f, path);
    resp r = get("GET", url, NULL);
    assert_int_equal(r.status, 200);
    assert_string_equal(r.type, "application/json");
    check_parkapi_v1(r.json, TOWNS[i]);
    int64_t t = time_of(json_object_get(r.json, "last_updated"), "feed");
    if (t > now_s() || t < now_s() - 120)
      fail_msg("last_updated %s is not this minute", r.body);
    resp_free(&r);
    free(url);
    free(path);
  }
  assert_int_equal(sim_stop(&f->sim), 0); /* SIGTERM: a clean exit */
}

static void feedsim_answers_304_to_the_etag_of_this_minute(void **state)
{
  fx *f = *state;
  sim_start(&f->sim, f->dir);
  char *url = feed_url(f, "/deggendorf/lots.json");
  /* Two tries: the minute may turn between the two requests. */
  long second = 0;
  for (int attempt = 0; attempt < 2 && second != 304; attempt++) {
    resp a = get("GET", url, NULL);
    assert_int_equal(a.status, 200);
    assert_true(a.etag[0] == '"');
    resp b = get("GET", url, a.etag);
    second = b.status;
    if (second == 304)
      assert_string_equal(b.etag, a.etag);
    else
      assert_int_equal(second, 200);
    resp_free(&a);
    resp_free(&b);
  }
  assert_int_equal(second, 304);
  resp other = get("GET", url, "\"deggendorf-1\"");
  assert_int_equal(other.status, 200);
  resp_free(&other);
  free(url);
}

static void feedsim_refuses_other_paths_with_json(void **state)
{
  fx *f = *state;
  sim_start(&f->sim, f->dir);
  static const char *const paths[] = {"/", "/lots.json", "/muenchen/lots.json",
                                      "/deggendorf/lots.json/x", "/deggendorf"};
  for (size_t i = 0; i < sizeof paths / sizeof paths[0]; i++) {
    char *url = feed_url(f, paths[i]);
    resp r = get("GET", url, NULL);
    assert_int_equal(r.status, 404);
    assert_non_null(r.json);
    assert_string_equal(json_string_value(json_object_get(r.json, "error")),
                        "not_found");
    resp_free(&r);
    free(url);
  }
  char *url = feed_url(f, "/deggendorf/lots.json");
  resp r = get("POST", url, NULL);
  assert_int_equal(r.status, 405);
  assert_non_null(r.json);
  resp_free(&r);
  free(url);
}

/* ---- a host pulling it
 * -------------------------------------------------------- */

static void
a_town_pulling_the_simulator_has_readings_of_the_last_minutes(void **state)
{
  fx *f = *state;
  sim_start(&f->sim, f->dir);
  tu_utc_zoneinfo(f->dir);
  char *cfg_text = tu_fmt(
      "{\"data_dir\": \"data\", \"towns\": [{\"id\": \"deggendorf\", "
      "\"name\": \"Deggendorf\", \"timezone\": \"UTC\", \"api\": "
      "{\"anonymous_read\": true}, \"plugins\": {\"parking\": {\"config\": "
      "{\"feed_url\": \"http://127.0.0.1:%d/deggendorf/lots.json\"}, "
      "\"fetch_s\": 1}}}]}",
      f->sim.port);
  char *cfg = tu_write_file(f->dir, "host.json", cfg_text);
  char *log = tu_fmt("%s/serve.log", f->dir);
  tu_server_start(&f->srv, cfg, log);
  char *url = tu_fmt("http://127.0.0.1:%d/v1/towns/deggendorf/entities?"
                     "plugin=parking&limit=100",
                     f->srv.port);
  json_t *root;
  size_t want = json_array_size(config_lots("deggendorf", &root));
  json_decref(root);
  size_t fresh = 0;
  for (long long deadline = tu_mono_ms() + FETCH_WAIT_MS;
       fresh < want && tu_mono_ms() < deadline; tu_sleep_ms(200)) {
    tu_http_resp r = tu_http("GET", url, NULL, NULL, NULL, 0);
    const json_t *ents = json_object_get(r.json, "entities"), *e;
    size_t i;
    fresh = 0;
    json_array_foreach(ents, i, e)
    {
      const json_t *a =
          json_object_get(json_object_get(e, "attrs"), "availableSpotNumber");
      const json_t *total = json_object_get(
          json_object_get(json_object_get(e, "attrs"), "totalSpotNumber"),
          "value");
      if (!a)
        continue;
      int64_t t = time_of(json_object_get(a, "time"), "reading");
      json_int_t v = json_integer_value(json_object_get(a, "value"));
      assert_true(v >= 0 && v <= json_integer_value(total));
      fresh += t <= now_s() && t >= now_s() - 300;
    }
    tu_http_free(&r);
  }
  if (fresh < want) {
    char *l = tu_read_file(log);
    fail_msg("after %d s, %zu of %zu lots have a reading of the last 5 "
             "minutes; serve's log:\n%s",
             FETCH_WAIT_MS / 1000, fresh, want, l ? l : "");
  }
  assert_int_equal(tu_server_stop(&f->srv, SIGTERM), 0);
  free(url);
  free(log);
  free(cfg);
  free(cfg_text);
}

/* ---- the generated data ----------------------------------------------------
 */

/* Each line of path parsed (a NULL-terminated array; free with lines_free). */
static json_t **lines_of(const char *path, size_t *n)
{
  char *text = tu_read_file(path);
  json_t **docs = NULL;
  size_t cap = 0;
  assert_non_null(text);
  *n = 0;
  for (char *s = text, *e; *s; s = e + (*e != 0)) {
    e = strchr(s, '\n');
    if (!e)
      e = s + strlen(s);
    if (e == s)
      continue;
    if (*n + 2 > cap)
      docs = realloc(docs, (cap = cap ? cap * 2 : 256) * sizeof *docs);
    json_error_t je;
    docs[*n] = json_loadb(s, (size_t)(e - s), 0, &je);
    if (!docs[*n])
      fail_msg("%s:%zu: %s", path, *n + 1, je.text);
    docs[++*n] = NULL;
  }
  free(text);
  return docs;
}

static void lines_free(json_t **docs)
{
  for (size_t i = 0; docs && docs[i]; i++)
    json_decref(docs[i]);
  free(docs);
}

/* twinhost-demodata cmd arg [opt val [opt2 val2]] into dir/name. */
static char *demodata2(const fx *f, const char *name, const char *cmd,
                       const char *arg, const char *opt, const char *val,
                       const char *opt2, const char *val2)
{
  char *bin = tool("twinhost-demodata");
  char *out = tu_fmt("%s/%s", f->dir, name);
  char *err = tu_fmt("%s/%s.err", f->dir, name);
  const char *argv[] = {bin, cmd, arg, opt, val, opt2, val2, NULL};
  int rc = run(argv, out, err);
  char *e = rc ? tu_read_file(err) : NULL, why[2048];
  snprintf(why, sizeof why, "%s", e ? e : "");
  free(e);
  free(err);
  free(bin);
  if (rc != 0) {
    free(out);
    fail_msg("twinhost-demodata %s %s: exit %d: %s", cmd, arg, rc, why);
  }
  return out;
}

static char *demodata(const fx *f, const char *name, const char *cmd,
                      const char *arg, const char *opt, const char *val)
{
  return demodata2(f, name, cmd, arg, opt, val, NULL, NULL);
}

static void generated_history_ends_within_the_last_hour(void **state)
{
  fx *f = *state;
  for (size_t k = 0; k < 2; k++) {
    char *dir = pack(TOWNS[k]);
    char *path = demodata(f, "history.jsonl", "parking", dir, NULL, NULL);
    size_t n;
    json_t **docs = lines_of(path, &n);
    assert_true(n > 4 * 7 * 48);
    int64_t first = time_of(json_object_get(docs[0], "last_updated"), "first");
    int64_t last =
        time_of(json_object_get(docs[n - 1], "last_updated"), "last");
    int64_t now = now_s();
    if (last > now || last < now - 3600)
      fail_msg("%s: the history ends at %lld, not within the last hour "
               "(now %lld)",
               TOWNS[k], (long long)last, (long long)now);
    if (first > now - 4 * WEEK_S || first < now - 4 * WEEK_S - 3600)
      fail_msg("%s: the history starts at %lld, not four weeks ago", TOWNS[k],
               (long long)first);
    int64_t prev = first - 1;
    for (size_t i = 0; i < n; i++) {
      int64_t t = time_of(json_object_get(docs[i], "last_updated"), "doc");
      assert_true(t > prev);
      prev = t;
      check_parkapi_v1(docs[i], TOWNS[k]);
    }
    lines_free(docs);
    free(path);
    free(dir);
  }
}

/* The newest reading the town stores (the parking "now" op), or "". */
static char *latest_reading(const char *cfg, const char *town)
{
  tu_run r = tu_twinhost(NULL, "--config", cfg, "query", "--town", town,
                         "--plugin", "parking", "--op", "now", NULL);
  assert_int_equal(r.exit_code, 0);
  json_t *j = json_loads(r.out, 0, NULL), *l;
  size_t i;
  char best[64] = "";
  json_array_foreach(json_object_get(j, "lots"), i, l)
  {
    const char *t = json_string_value(json_object_get(l, "time"));
    if (t && strcmp(t, best) > 0)
      snprintf(best, sizeof best, "%s", t);
  }
  json_decref(j);
  tu_run_free(&r);
  return strdup(best);
}

static void history_loads_again_as_the_demo_does_without_harm(void **state)
{
  fx *f = *state;
  tu_utc_zoneinfo(f->dir);
  char *cfg = tu_write_file(
      f->dir, "host.json",
      "{\"data_dir\": \"data\", \"towns\": [{\"id\": \"deggendorf\", "
      "\"name\": \"Deggendorf\", \"timezone\": \"UTC\", \"plugins\": "
      "{\"parking\": {}}}]}");
  char *dir = pack("deggendorf");
  /* fixed ends, so that a minute turning while the test runs changes
   * nothing */
  char end[TWINAUX_TIME_MAX], end_now[TWINAUX_TIME_MAX];
  twinaux_time_format((now_s() - 3 * 3600) * 1000, 0, end, sizeof end);
  twinaux_time_format((now_s() - 120) * 1000, 0, end_now, sizeof end_now);
  /* an earlier start, three hours ago */
  char *old = demodata(f, "old.jsonl", "parking", dir, "--end", end);
  tu_run r = tu_twinhost(NULL, "--config", cfg, "ingest", "--town",
                         "deggendorf", "--plugin", "parking", old, NULL);
  assert_int_equal(r.exit_code, 0);
  tu_run_free(&r);
  char *since = latest_reading(cfg, "deggendorf");
  json_t *sj = json_string(since);
  int64_t since_s = since[0] ? time_of(sj, "since") : 0;
  json_decref(sj);
  json_t *ej = json_string(end);
  assert_int_equal(since_s, time_of(ej, "end") / 60 * 60); /* the old end */
  json_decref(ej);
  /* this start: only what is newer than the stored readings */
  char *newer = demodata2(f, "new.jsonl", "parking", dir, "--after", since,
                          "--end", end_now);
  size_t n;
  json_t **docs = lines_of(newer, &n);
  assert_true(n >= 6 && n <= 7); /* 3 h of half hours, and the end */
  assert_true(time_of(json_object_get(docs[0], "last_updated"), "first") >
              since_s);
  lines_free(docs);
  r = tu_twinhost(NULL, "--config", cfg, "ingest", "--town", "deggendorf",
                  "--plugin", "parking", newer, NULL);
  if (r.exit_code != 0)
    fail_msg("the second load failed: %s%s", r.out, r.err);
  tu_run_free(&r);
  char *latest = latest_reading(cfg, "deggendorf");
  json_t *s = json_string(latest);
  int64_t t = time_of(s, "latest");
  json_decref(s);
  assert_true(t <= now_s() && t >= now_s() - 3600);
  /* the same start once more adds nothing, and the newest moment loaded
   * again replaces itself */
  char *again = demodata2(f, "again.jsonl", "parking", dir, "--after", latest,
                          "--end", end_now);
  char *text = tu_read_file(again);
  assert_string_equal(text, "");
  free(text);
  text = tu_read_file(newer);
  char *last_line = strrchr(text, '{');
  while (last_line > text && last_line[-1] != '\n')
    last_line--;
  free(tu_write_file(f->dir, "last.json", last_line));
  char *last_path = tu_fmt("%s/last.json", f->dir);
  r = tu_twinhost(NULL, "--config", cfg, "ingest", "--town", "deggendorf",
                  "--plugin", "parking", last_path, NULL);
  if (r.exit_code != 0)
    fail_msg("loading the newest moment again failed: %s%s", r.out, r.err);
  tu_run_free(&r);
  free(last_path);
  free(text);
  free(again);
  free(latest);
  free(newer);
  free(since);
  free(old);
  free(dir);
  free(cfg);
}

/* The time of a readings document (its first reading's). */
static int64_t reading_time(const json_t *doc)
{
  const json_t *r = json_array_get(json_object_get(doc, "readings"), 0);
  return time_of(json_object_get(r, "time"), "reading");
}

static int cmp_i64(const void *a, const void *b)
{
  int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
  return (x > y) - (x < y);
}

static void
readings_are_laid_over_the_recent_weeks_keeping_weekday_and_hour(void **state)
{
  fx *f = *state;
  char *dir = pack("plattling");
  char *src = tu_fmt("%s/sample-readings.jsonl", dir);
  char *out = demodata(f, "readings.jsonl", "readings", src, NULL, NULL);
  size_t n, m;
  json_t **before = lines_of(src, &n), **after = lines_of(out, &m);
  assert_int_equal(m, n);
  int64_t *a = calloc(n, sizeof *a), *b = calloc(n, sizeof *b);
  int64_t period = 0, lo = INT64_MAX, hi = INT64_MIN;
  for (size_t i = 0; i < n; i++) {
    a[i] = reading_time(before[i]);
    lo = a[i] < lo ? a[i] : lo;
    hi = a[i] > hi ? a[i] : hi;
  }
  period = ((hi - lo) / WEEK_S + 1) * WEEK_S;
  int64_t now = now_s();
  for (size_t i = 0; i < n; i++) {
    b[i] = reading_time(after[i]);
    if (i)
      assert_true(b[i] > b[i - 1]); /* sorted */
    assert_true(b[i] <= now && b[i] > now - period - 3600);
  }
  if (b[n - 1] < now - 3600 - 60) /* a minute for the run */
    fail_msg("the readings end at %lld, over an hour ago", (long long)b[n - 1]);
  /* moved by whole weeks: the same times modulo the period */
  for (size_t i = 0; i < n; i++) {
    a[i] = ((a[i] % period) + period) % period;
    b[i] = ((b[i] % period) + period) % period;
  }
  qsort(a, n, sizeof *a, cmp_i64);
  qsort(b, n, sizeof *b, cmp_i64);
  assert_memory_equal(a, b, n * sizeof *a);
  free(a);
  free(b);
  lines_free(before);
  lines_free(after);
  free(out);
  free(src);
  free(dir);
}

static void demo_config_points_each_towns_parking_at_the_feed(void **state)
{
  fx *f = *state;
  char *demo = tu_fmt("%s/scripts/demo.json", tu_env("TWIN_SOURCE_DIR"));
  char *out = demodata(f, "demo.json", "config", demo, "--feed",
                       "http://127.0.0.1:4711");
  json_t *cfg = json_load_file(out, 0, NULL), *t;
  size_t i;
  assert_non_null(cfg);
  assert_int_equal(json_array_size(json_object_get(cfg, "towns")), 2);
  json_array_foreach(json_object_get(cfg, "towns"), i, t)
  {
    const char *id = json_string_value(json_object_get(t, "id"));
    const char *scripts = json_string_value(json_object_get(t, "scripts"));
    json_t *parking = json_object_get(json_object_get(t, "plugins"), "parking");
    char *want = tu_fmt("http://127.0.0.1:4711/%s/lots.json", id);
    char *lua = tu_fmt("%s/town.json", scripts ? scripts : "?");
    struct stat st;
    assert_string_equal(id, TOWNS[i]);
    assert_true(scripts && scripts[0] == '/' && stat(lua, &st) == 0);
    assert_string_equal(json_string_value(json_object_get(
                            json_object_get(parking, "config"), "feed_url")),
                        want);
    assert_int_equal(json_integer_value(json_object_get(parking, "fetch_s")),
                     60);
    free(lua);
    free(want);
  }
  assert_true(json_string_value(json_object_get(cfg, "data_dir"))[0] == '/');
  json_decref(cfg);
  free(out);
  free(demo);
}

int main(void)
{
  const char *tz = getenv("TZDIR");
  saved_tzdir = tz ? strdup(tz) : NULL;
  curl_global_init(CURL_GLOBAL_DEFAULT);
  const struct CMUnitTest tests[] = {
      cmocka_unit_test_setup_teardown(
          feedsim_serves_parkapi_v1_of_every_demo_town, setup, teardown),
      cmocka_unit_test_setup_teardown(
          feedsim_answers_304_to_the_etag_of_this_minute, setup, teardown),
      cmocka_unit_test_setup_teardown(feedsim_refuses_other_paths_with_json,
                                      setup, teardown),
      cmocka_unit_test_setup_teardown(
          a_town_pulling_the_simulator_has_readings_of_the_last_minutes, setup,
          teardown),
      cmocka_unit_test_setup_teardown(
          generated_history_ends_within_the_last_hour, setup, teardown),
      cmocka_unit_test_setup_teardown(
          history_loads_again_as_the_demo_does_without_harm, setup, teardown),
      cmocka_unit_test_setup_teardown(
          readings_are_laid_over_the_recent_weeks_keeping_weekday_and_hour,
          setup, teardown),
      cmocka_unit_test_setup_teardown(
          demo_config_points_each_towns_parking_at_the_feed, setup, teardown),
  };
  int rc = cmocka_run_group_tests(tests, NULL, NULL);
  curl_global_cleanup();
  free(saved_tzdir);
  return rc;
}
