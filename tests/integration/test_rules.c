/*
 * test_rules.c — town rules inside the host: hooks run in the transaction
 * of the document that triggered them (atomic with it; a failing rule
 * rejects nothing and leaves no half-write), plugins call a town's function
 * by name, schedules and events fire, and the admin commands check,
 * replay (changing nothing), status and reload (keeping the old rules when
 * the new ones are broken) work through the real binary.
 */
#include "testhost.h"

#include <jansson.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "api.h"
#include "ctx.h"
#include "rules.h"
#include "script.h"

/* Two towns with probe; alpha's rules in alpha/, beta's (none) in beta/.
 * The host comes up (th_open) once the test has written its rules. */
static int setup(void **state)
{
  th_host *f = th_new();
  th_fixture(f, "probe.so");
  th_config(f, TH_FIXTURES,
            "{'id':'alpha','name':'Alpha','timezone':'Europe/Berlin',"
            " 'scripts':'alpha','plugins':{'probe':{}}},"
            "{'id':'beta','name':'Beta','timezone':'Europe/Berlin',"
            " 'scripts':'beta','plugins':{'probe':{}}}");
  *state = f;
  return 0;
}

static core_instance *inst(th_host *f, const char *town)
{
  return th_inst(f, town, "probe");
}

/* Query town's probe: the reply, or NULL when it failed. */
static json_t *query(th_host *f, const char *town, const char *req)
{
  core_err err;
  return th_query(f, inst(f, town), req, &err);
}

static json_int_t get_int(th_host *f, const char *town, const char *type,
                          const char *id, const char *attr)
{
  char *req = tu_fmt("{\"op\":\"get\",\"type\":\"%s\",\"id\":\"%s\","
                     "\"attr\":\"%s\"}",
                     type, id, attr);
  json_t *j = query(f, town, req);
  free(req);
  json_int_t v = j ? json_integer_value(json_object_get(j, "value")) : -1;
  json_decref(j);
  return v;
}

static const char *obs_doc =
    "{\"ops\":[{\"op\":\"obs\",\"type\":\"Lot\",\"id\":\"p1\",\"attr\":"
    "\"free\",\"values\":[[1000,3]]}]}";

static void an_observation_rule_writes_with_the_document(void **state)
{
  th_host *f = *state;
  th_rule(f, "alpha", "10-copy.lua",
          "twin.on_observation({attr = 'free'}, function(o)\n"
          "  assert(twin.ingest('probe', {ops = {{op = 'put', type = 'Lot',\n"
          "    id = o.id, attrs = {seen = o.value * 10}}}}))\n"
          "end)\n");
  th_open(f);
  th_outcome r = th_ingest(f, inst(f, "alpha"), obs_doc);
  assert_int_equal(r.status, TWIN_OK);
  assert_int_equal(get_int(f, "alpha", "Lot", "p1", "seen"), 30);
  /* The other town has no rules and sees nothing. */
  assert_int_equal(get_int(f, "beta", "Lot", "p1", "seen"), -1);
}

static void
a_failing_rule_rejects_nothing_and_leaves_no_half_write(void **state)
{
  th_host *f = *state;
  th_rule(
      f, "alpha", "10-bad.lua",
      "twin.on_observation({attr = 'free'}, function(o)\n"
      "  twin.ingest('probe', {ops = {{op = 'put', type = 'Lot', id = o.id,\n"
      "    attrs = {half = 1}}}})\n"
      "  error('boom')\n"
      "end)\n");
  th_open(f);
  th_outcome r = th_ingest(f, inst(f, "alpha"), obs_doc);
  assert_int_equal(r.status, TWIN_OK);
  json_t *h = query(f, "alpha",
                    "{\"op\":\"history\",\"type\":\"Lot\",\"id\":\"p1\","
                    "\"attr\":\"free\",\"from\":0,\"to\":5000}");
  assert_int_equal(json_array_size(h), 1); /* the observation is stored */
  json_decref(h);
  assert_int_equal(get_int(f, "alpha", "Lot", "p1", "half"), -1);
  char *st = core_script_status(core_host_script(f->h, &f->h->cfg->towns[0]));
  assert_non_null(strstr(st, "boom"));
  free(st);
}

static void a_rejected_document_takes_its_rules_writes_with_it(void **state)
{
  th_host *f = *state;
  th_rule(
      f, "alpha", "10-copy.lua",
      "twin.on_observation({attr = 'free'}, function(o)\n"
      "  twin.ingest('probe', {ops = {{op = 'put', type = 'Lot', id = o.id,\n"
      "    attrs = {seen = 1}}}})\n"
      "end)\n");
  th_open(f);
  /* The plugin fails after appending: nothing of the document lands. */
  th_outcome r = th_ingest(f, inst(f, "alpha"),
                           "{\"ops\":[{\"op\":\"obs\",\"type\":\"Lot\",\"id\":"
                           "\"p1\",\"attr\":\"free\",\"values\":[[1,1]]},"
                           "{\"op\":\"fail\",\"message\":\"no\"}]}");
  assert_int_equal(r.status, TWIN_ERR_REJECTED);
  assert_int_equal(get_int(f, "alpha", "Lot", "p1", "seen"), -1);
}

static void a_plugin_calls_a_town_function_by_name(void **state)
{
  th_host *f = *state;
  th_rule(f, "alpha", "20-price.lua",
          "function price(lot, hour)\n"
          "  if hour >= 18 then return 1.5 end\n"
          "  return 2.0\n"
          "end\n");
  th_open(f);
  json_t *j = query(f, "alpha",
                    "{\"op\":\"call_script\",\"function\":\"price\","
                    "\"args\":[\"p1\",19]}");
  assert_non_null(j);
  assert_true(json_real_value(j) == 1.5);
  json_decref(j);
  /* Unknown functions and towns without rules say so. */
  assert_null(query(f, "alpha",
                    "{\"op\":\"call_script\",\"function\":\"nope\","
                    "\"args\":[]}"));
  assert_null(query(f, "beta",
                    "{\"op\":\"call_script\",\"function\":\"price\","
                    "\"args\":[]}"));
}

static void an_event_rule_sees_events_the_document_raised(void **state)
{
  th_host *f = *state;
  th_rule(f, "alpha", "30-events.lua",
          "twin.on_event({level = 'warning'}, function(ev)\n"
          "  twin.put('rules', 'Counter', 'warnings', {n = 1})\n"
          "  twin.emit{level = 'info', message = 'seen: ' .. ev.message}\n"
          "end)\n");
  th_open(f);
  th_outcome r = th_ingest(f, inst(f, "alpha"),
                           "{\"ops\":[{\"op\":\"emit\",\"level\":\"warning\","
                           "\"message\":\"almost full\"}]}");
  assert_int_equal(r.status, TWIN_OK);
  char *st = core_script_status(core_host_script(f->h, &f->h->cfg->towns[0]));
  assert_non_null(strstr(st, "\"calls\":1"));
  free(st);
}

static void a_schedule_rule_runs_when_due(void **state)
{
  th_host *f = *state;
  th_rule(f, "alpha", "40-every.lua",
          "twin.every(1, function(now)\n"
          "  twin.put('rules', 'Clock', 'tick', {at = now})\n"
          "end, 'minutely')\n");
  th_open(f);
  core_script *s = core_host_script(f->h, &f->h->cfg->towns[0]);
  twin_time due = core_script_next_due(s);
  assert_true(due > core_now_ms() - 1000 && due <= core_now_ms() + 60000);
  core_rules *rules = core_rules_start(f->h, f->p);
  core_rules_poll(rules, due);
  core_pipeline_drain(f->p);
  core_rules_stop(rules);
  char *st = core_script_status(s);
  assert_non_null(strstr(st, "minutely"));
  assert_non_null(strstr(st, "\"calls\":1"));
  free(st);
  assert_true(core_script_next_due(s) > due);
}

/* ---- the admin commands, through the real binary ------------------------- */

static tu_run cli(th_host *f, const char *input, const char *a, const char *b,
                  const char *c)
{
  const char *argv[] = {"--config", f->config, "script", a, b, c, NULL};
  return tu_twinhost_argv(input, argv);
}

static void check_lists_hooks_and_names_file_and_line_of_an_error(void **state)
{
  th_host *f = *state;
  th_rule(f, "alpha", "10-ok.lua",
          "twin.on_observation({attr = 'free', name = 'free-watch'}, "
          "function(o) end)\nfunction price() return 1 end\n");
  tu_run r = cli(f, NULL, "check", "alpha", NULL);
  assert_int_equal(r.exit_code, 0);
  assert_non_null(strstr(r.out, "free-watch"));
  tu_run_free(&r);
  th_rule(f, "alpha", "20-broken.lua",
          "twin.on_observation({}, function(o)\n  if then\nend)\n");
  r = cli(f, NULL, "check", "alpha", NULL);
  assert_int_equal(r.exit_code, 1);
  assert_non_null(strstr(r.err, "20-broken.lua:2"));
  tu_run_free(&r);
  r = cli(f, NULL, "check", "gotham", NULL);
  assert_int_equal(r.exit_code, 2);
  tu_run_free(&r);
}

static void replay_reports_what_rules_would_do_and_changes_nothing(void **state)
{
  th_host *f = *state;
  th_rule(f, "alpha", "10-flood.lua",
          "twin.on_observation({attr = 'level'}, function(o)\n"
          "  if o.value > 500 then\n"
          "    twin.emit{level = 'warning', message = 'flood ' .. o.id}\n"
          "    twin.put('rules', 'Flood', o.id, {stage = 1})\n"
          "  end\n"
          "end)\n");
  tu_run r = cli(f,
                 "{\"plugin\":\"probe\",\"type\":\"Gauge\",\"id\":\"g1\","
                 "\"attr\":\"level\",\"time\":\"2026-11-15T06:00:00Z\","
                 "\"value\":512}\n"
                 "{\"plugin\":\"probe\",\"type\":\"Gauge\",\"id\":\"g1\","
                 "\"attr\":\"level\",\"time\":1000,\"value\":100}\n"
                 "{\"plugin\":\"probe\",\"type\":\"Gauge\",\"id\":\"g1\","
                 "\"attr\":\"level\",\"time\":2000,\"value\":530}\n",
                 "replay", "alpha", "-");
  if (r.exit_code != 0)
    fail_msg("replay exited %d: %s", r.exit_code, r.err);
  json_t *j = json_loads(r.out, 0, NULL);
  assert_non_null(j);
  assert_int_equal(tu_int(j, "observations"), 3);
  assert_int_equal(json_array_size(json_object_get(j, "events")), 2);
  /* The second write to the same key is reported too. */
  assert_int_equal(json_array_size(json_object_get(j, "writes")), 2);
  json_decref(j);
  tu_run_free(&r);
  /* Nothing reached the store. */
  th_open(f);
  assert_int_equal(get_int(f, "alpha", "Gauge", "g1", "level"), -1);
  th_close(f);
  /* A malformed line is named, exit 1. */
  r = cli(f, "{\"plugin\":\"probe\"}\nnot json\n", "replay", "alpha", "-");
  assert_int_equal(r.exit_code, 1);
  assert_non_null(strstr(r.out, "\"line\": 2"));
  tu_run_free(&r);
}

static void reload_without_a_serve_checks_and_says_so(void **state)
{
  th_host *f = *state;
  th_rule(f, "alpha", "10-ok.lua", "function f() return 1 end\n");
  tu_run r = cli(f, NULL, "reload", "alpha", NULL);
  assert_int_equal(r.exit_code, 0);
  assert_non_null(strstr(r.out, "no serve is running"));
  tu_run_free(&r);
  th_rule(f, "alpha", "20-broken.lua", "function (\n");
  r = cli(f, NULL, "reload", "alpha", NULL);
  assert_int_equal(r.exit_code, 1);
  assert_non_null(strstr(r.err, "running rules stay"));
  tu_run_free(&r);
}

static void a_reload_with_broken_rules_keeps_the_old_ones(void **state)
{
  th_host *f = *state;
  th_rule(
      f, "alpha", "10-copy.lua",
      "twin.on_observation({attr = 'free'}, function(o)\n"
      "  twin.ingest('probe', {ops = {{op = 'put', type = 'Lot', id = o.id,\n"
      "    attrs = {seen = 1}}}})\n"
      "end)\n");
  th_open(f);
  th_rule(f, "alpha", "10-copy.lua", "this is not lua\n");
  core_rules *rules = core_rules_start(f->h, f->p);
  core_rules_reload(rules);
  core_rules_stop(rules);
  th_outcome r = th_ingest(f, inst(f, "alpha"), obs_doc);
  assert_int_equal(r.status, TWIN_OK);
  assert_int_equal(get_int(f, "alpha", "Lot", "p1", "seen"), 1);
  assert_non_null(f->h->script_error[0]);
  assert_non_null(strstr(f->h->script_error[0], "10-copy.lua:1"));
}

/* Rules write only their own entities; a plugin's data changes through a
 * document the plugin checks (twin.ingest), and a document it refuses
 * leaves nothing, while the rule goes on. */
static void rules_write_only_their_own_entities_and_hand_plugins_documents(
    void **state)
{
  th_host *f = *state;
  th_rule(f, "alpha", "10-own.lua",
          "twin.on_observation({attr = 'free'}, function(o)\n"
          "  local ok, err = pcall(twin.put, 'probe', 'Lot', o.id, {x = 1})\n"
          "  twin.put('rules', 'Direct', o.id, {refused = not ok,\n"
          "    said = tostring(err)})\n"
          "  local took, why = twin.ingest('probe', {ops = {\n"
          "    {op = 'put', type = 'Lot', id = o.id, attrs = {half = 1}},\n"
          "    {op = 'fail', message = 'no thanks'}}})\n"
          "  twin.put('rules', 'Handed', o.id, {took = took, why = why})\n"
          "end)\n");
  th_open(f);
  th_outcome r = th_ingest(f, inst(f, "alpha"), obs_doc);
  assert_int_equal(r.status, TWIN_OK);
  /* the direct write was refused with the way to do it */
  assert_int_equal(get_int(f, "alpha", "Lot", "p1", "x"), -1);
  /* the refused document left nothing; the rule's own writes landed */
  assert_int_equal(get_int(f, "alpha", "Lot", "p1", "half"), -1);
  MDB_txn *txn;
  core_err err;
  assert_int_equal(core_store_begin_read(f->h->store, &txn, &err), 0);
  json_t *e = NULL;
  api_error ae;
  assert_int_equal(api_entity(f->h, txn, &f->h->cfg->towns[0], "rules",
                              "Direct", "p1", &e, &ae),
                   0);
  const char *said = tu_str(e, "attrs.said.value");
  assert_non_null(strstr(said, "rules write only their own entities"));
  assert_non_null(strstr(said, "twin.ingest(\"probe\""));
  json_decref(e);
  assert_int_equal(api_entity(f->h, txn, &f->h->cfg->towns[0], "rules",
                              "Handed", "p1", &e, &ae),
                   0);
  assert_true(json_is_false(tu_get(e, "attrs.took.value")));
  assert_non_null(strstr(tu_str(e, "attrs.why.value"), "no thanks"));
  json_decref(e);
  core_store_end_read(f->h->store, txn);
}

/* A NUL byte inside a name is refused, not cut short ("x\0victim" would
 * have written entity "x"). */
static void a_name_with_a_nul_byte_is_refused(void **state)
{
  th_host *f = *state;
  th_rule(f, "alpha", "10-nul.lua",
          "twin.on_observation({attr = 'free'}, function(o)\n"
          "  twin.put('rules', 'Lot', 'x\\0victim', {n = 1})\n"
          "end)\n");
  th_open(f);
  th_outcome r = th_ingest(f, inst(f, "alpha"), obs_doc);
  assert_int_equal(r.status, TWIN_OK);
  char *st = core_script_status(core_host_script(f->h, &f->h->cfg->towns[0]));
  assert_non_null(strstr(st, "holds a NUL byte"));
  free(st);
  MDB_txn *txn;
  core_err err;
  assert_int_equal(core_store_begin_read(f->h->store, &txn, &err), 0);
  json_t *e = NULL;
  api_error ae;
  assert_int_not_equal(api_entity(f->h, txn, &f->h->cfg->towns[0], "rules",
                                  "Lot", "x", &e, &ae),
                       0);
  core_store_end_read(f->h->store, txn);
}

static void status_shows_what_the_serve_stored(void **state)
{
  th_host *f = *state;
  th_rule(f, "alpha", "10-bad.lua",
          "twin.on_observation({attr = 'free', name = 'bad'}, function(o)\n"
          "  error('always')\n"
          "end)\n");
  tu_run r = cli(f, NULL, "status", "alpha", NULL);
  assert_int_equal(r.exit_code, 1);
  assert_non_null(strstr(r.err, "no status"));
  tu_run_free(&r);
  th_open(f);
  th_ingest(f, inst(f, "alpha"), obs_doc);
  core_rules *rules = core_rules_start(f->h, f->p);
  core_rules_store_status(rules);
  core_pipeline_drain(f->p);
  core_rules_stop(rules);
  th_close(f);
  r = cli(f, NULL, "status", "alpha", NULL);
  assert_int_equal(r.exit_code, 0);
  assert_non_null(strstr(r.out, "always"));
  assert_non_null(strstr(r.out, "bad"));
  tu_run_free(&r);
}

/* Start `twinhost serve` with its stderr on a pipe (non-blocking). */
static pid_t start_serve(th_host *f, int *err_fd)
{
  int p[2];
  assert_int_equal(pipe(p), 0);
  pid_t pid = fork();
  if (pid == 0) {
    tu_child_dies_with_parent();
    dup2(p[1], 2);
    close(p[0]);
    const char *bin = tu_env("TWIN_BIN");
    execl(bin, bin, "--config", f->config, "serve", "--listen", "127.0.0.1:0",
          (char *)NULL);
    _exit(127);
  }
  close(p[1]);
  *err_fd = p[0];
  return pid;
}

/* Read the serve's stderr into log until it holds want (60 s at most). */
static int wait_for(int fd, char *log, size_t cap, const char *want)
{
  size_t len = strlen(log);
  for (int waited = 0; waited < 600 && !strstr(log, want); waited++) {
    struct pollfd pfd = {fd, POLLIN, 0};
    if (poll(&pfd, 1, 100) > 0) {
      ssize_t n = read(fd, log + len, cap - len - 1);
      if (n <= 0)
        break;
      len += (size_t)n;
      log[len] = 0;
    }
  }
  return strstr(log, want) != NULL;
}

static void
a_serve_reloads_on_request_and_keeps_old_rules_if_broken(void **state)
{
  th_host *f = *state;
  th_rule(f, "alpha", "10-ok.lua", "function f() return 1 end\n");
  int fd;
  pid_t pid = start_serve(f, &fd);
  char log[16384] = "";
  if (!wait_for(fd, log, sizeof log, "press Ctrl-C"))
    fail_msg("serve did not start:\n%s", log);
  /* Broken rules and SIGHUP: the old rules keep running. */
  th_rule(f, "alpha", "10-ok.lua", "function f( return 1 end\n");
  assert_int_equal(kill(pid, SIGHUP), 0);
  if (!wait_for(fd, log, sizeof log, "the rules that ran before keep running"))
    fail_msg("no failed reload in the log:\n%s", log);
  assert_non_null(strstr(log, "10-ok.lua:1"));
  /* Fixed, and `script reload` finds the serve and signals it. */
  th_rule(f, "alpha", "10-ok.lua", "function f() return 2 end\n");
  tu_run r = cli(f, NULL, "reload", "alpha", NULL);
  assert_int_equal(r.exit_code, 0);
  assert_non_null(strstr(r.out, "\"serve_pid\""));
  tu_run_free(&r);
  if (!wait_for(fd, log, sizeof log, "alpha/rules: rules reloaded"))
    fail_msg("no reload in the log:\n%s", log);
  kill(pid, SIGTERM);
  int status = 0;
  waitpid(pid, &status, 0);
  close(fd);
  assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
}

int main(void)
{
  setenv("TWINHOST_MAP_MIB", "8", 1);
#define T(name) cmocka_unit_test_setup_teardown(name, setup, th_teardown)
  const struct CMUnitTest tests[] = {
      T(an_observation_rule_writes_with_the_document),
      T(a_failing_rule_rejects_nothing_and_leaves_no_half_write),
      T(a_rejected_document_takes_its_rules_writes_with_it),
      T(a_plugin_calls_a_town_function_by_name),
      T(an_event_rule_sees_events_the_document_raised),
      T(a_schedule_rule_runs_when_due),
      T(check_lists_hooks_and_names_file_and_line_of_an_error),
      T(replay_reports_what_rules_would_do_and_changes_nothing),
      T(reload_without_a_serve_checks_and_says_so),
      T(a_reload_with_broken_rules_keeps_the_old_ones),
      T(rules_write_only_their_own_entities_and_hand_plugins_documents),
      T(a_name_with_a_nul_byte_is_refused),
      T(status_shows_what_the_serve_stored),
      T(a_serve_reloads_on_request_and_keeps_old_rules_if_broken),
  };
#undef T
  return cmocka_run_group_tests(tests, NULL, NULL);
}
