/*
 * test_loader.c — the plugin loader as a specification: every file a host
 * must refuse is refused by core_plugin_load with one line naming the file
 * and the reason, `twinhost plugins check` reports the same line and exits 1,
 * and a host whose plugin path holds the bad file next to probe.so refuses
 * only that file and keeps running probe. Also: a newer minor loads, config
 * and open failures disable only their instance, a plugin a town enables but
 * nobody provides shows as missing, and how the search path is walked.
 */
#include "testhost.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* The folder the tests start in; some chdir, teardown comes back. */
static char *start_dir;

static const char one_town[] = "{\"id\": \"alpha\", \"timezone\": \"UTC\", "
                               "\"plugins\": {\"probe\": {}}}";

/* A temp folder for the config, a plugins/ folder of symlinks to chosen
 * fixtures, the data folder and a zoneinfo with only UTC in it. */
static int setup(void **state)
{
  th_host *f = th_new();
  tu_utc_zoneinfo(f->dir);
  *state = f;
  return 0;
}

static int teardown(void **state)
{
  if (chdir(start_dir))
    fprintf(stderr, "teardown: cannot return to %s\n", start_dir);
  return th_teardown(state);
}

/* ---- helpers ------------------------------------------------------------- */

/* The plugin path as a host reports it: where plugins/<name> lives. */
static char *plugin_file(th_host *f, const char *name)
{
  return tu_fmt("%s/%s", f->plugins, name);
}

/* The config: plugin_path ["plugins"] (when with_path) and towns. */
static void write_config(th_host *f, int with_path, const char *towns)
{
  th_config(f, with_path ? TH_FIXTURES : 0, "%s", towns);
}

static void assert_one_line(const char *text)
{
  assert_non_null(text);
  if (strchr(text, '\n'))
    fail_msg("\"%s\" is more than one line", text);
}

static void assert_all(const char *text, const char *const *wants)
{
  for (size_t i = 0; wants[i]; i++)
    tu_assert_contains(text, wants[i]);
}

static tu_run run_list(th_host *f)
{
  return tu_twinhost(NULL, "--config", f->config, "plugins", "list", NULL);
}

/* `twinhost plugins list` as JSON; the command must succeed. */
static json_t *plugins_list(th_host *f)
{
  tu_run r = run_list(f);
  json_error_t je;
  json_t *j = r.exit_code == 0 ? json_loads(r.out, 0, &je) : NULL;
  if (!j) {
    char why[4096];
    snprintf(why, sizeof why, "plugins list exited %d: %s%s", r.exit_code,
             r.out, r.err);
    tu_run_free(&r);
    fail_msg("%s", why);
  }
  tu_run_free(&r);
  return j;
}

/* probe answers a query for town alpha through the real binary. */
static void assert_probe_answers(th_host *f)
{
  tu_run r =
      tu_twinhost(NULL, "--config", f->config, "query", "--town", "alpha",
                  "--plugin", "probe", "{\"op\":\"town\"}", NULL);
  if (r.exit_code != 0)
    fail_msg("query of probe exited %d: %s", r.exit_code, r.err);
  json_t *j = json_loads(r.out, 0, NULL);
  assert_non_null(j);
  assert_string_equal(tu_str(j, "id"), "alpha");
  json_decref(j);
  tu_run_free(&r);
}

/* ---- (a) core_plugin_load refuses, in one line naming file and reason ---- */

static void expect_load_refused(const char *name, const char *const *wants)
{
  char *path = th_fixture_path(name);
  core_plugin p;
  core_err err = {.msg = {0}};
  int rc = core_plugin_load(path, &p, &err);
  if (rc == TWIN_OK)
    fail_msg("%s loaded; it should be refused", path);
  assert_null(p.dl);
  assert_null(p.path);
  char *prefix = tu_fmt("%s: ", path);
  if (strncmp(err.msg, prefix, strlen(prefix)))
    fail_msg("\"%s\" does not start with the file \"%s\"", err.msg, prefix);
  assert_one_line(err.msg);
  assert_all(err.msg, wants);
  free(prefix);
  free(path);
}

/* ---- (b) plugins check exits 1 with one "plugins check" line ------------ */

static void expect_check_refused(const char *name, const char *const *wants)
{
  char *path = th_fixture_path(name);
  tu_run r = tu_twinhost(NULL, "plugins", "check", path, NULL);
  assert_int_equal(r.exit_code, 1);
  assert_string_equal(r.out, "");
  char *prefix = tu_fmt("twinhost: plugins check: %s: ", path);
  if (strncmp(r.err, prefix, strlen(prefix)))
    fail_msg("stderr \"%s\" does not start with \"%s\"", r.err, prefix);
  size_t len = strlen(r.err);
  assert_true(len > 0 && r.err[len - 1] == '\n');
  r.err[len - 1] = '\0';
  assert_one_line(r.err);
  assert_all(r.err, wants);
  /* The checker says exactly what the loader says. */
  core_plugin p;
  core_err err = {.msg = {0}};
  if (core_plugin_load(path, &p, &err) == TWIN_OK)
    core_plugin_unload(&p);
  assert_string_equal(r.err + strlen("twinhost: plugins check: "), err.msg);
  free(prefix);
  free(path);
  tu_run_free(&r);
}

/* ---- (c) a host refuses only the bad file and keeps running probe -------- */

static void expect_host_skips(th_host *f, const char *name,
                              const char *const *wants)
{
  th_fixture(f, "probe.so");
  th_fixture(f, name);
  write_config(f, 1, one_town);
  json_t *list = plugins_list(f);
  char *bad = plugin_file(f, name);
  json_t *refused = tu_get(list, "refused[file=%s]", bad);
  if (!refused)
    fail_msg("%s is not among the refused files", bad);
  assert_one_line(tu_str(refused, "reason"));
  tu_assert_contains(tu_str(refused, "reason"), bad);
  assert_all(tu_str(refused, "reason"), wants);
  json_t *probe = tu_get(list, "plugins[name=probe]");
  assert_non_null(probe);
  char *good = plugin_file(f, "probe.so");
  assert_string_equal(tu_str(probe, "file"), good);
  json_t *row = tu_get(list, "towns[town=alpha,plugin=probe]");
  assert_non_null(row);
  assert_string_equal(tu_str(row, "state"), "configured");
  assert_probe_answers(f);
  free(good);
  free(bad);
  json_decref(list);
}

/* ---- a file that does not exist ------------------------------------------ */

static const char *const missing_why[] = {"no such file", NULL};

static void load_refuses_a_missing_file(void **state)
{
  (void)state;
  expect_load_refused("absent.so", missing_why);
}

static void check_reports_a_missing_file(void **state)
{
  (void)state;
  expect_check_refused("absent.so", missing_why);
}

static void host_skips_a_dangling_link_and_runs_the_rest(void **state)
{
  expect_host_skips(*state, "absent.so", missing_why);
}

/* ---- a file that is not a shared object ---------------------------------- */

static const char *const not_elf_why[] = {"not a shared object", NULL};

static void load_refuses_a_file_that_is_not_a_shared_object(void **state)
{
  (void)state;
  expect_load_refused("not_elf.so", not_elf_why);
}

static void check_reports_a_file_that_is_not_a_shared_object(void **state)
{
  (void)state;
  expect_check_refused("not_elf.so", not_elf_why);
}

static void host_skips_a_file_that_is_not_a_shared_object(void **state)
{
  expect_host_skips(*state, "not_elf.so", not_elf_why);
}

/* ---- a shared object without twin_plugin_entry --------------------------- */

static const char *const no_entry_why[] = {"no entry symbol",
                                           TWIN_PLUGIN_ENTRY_SYMBOL, NULL};

static void load_refuses_a_library_without_the_entry_symbol(void **state)
{
  (void)state;
  expect_load_refused("no_entry.so", no_entry_why);
}

static void check_reports_a_library_without_the_entry_symbol(void **state)
{
  (void)state;
  expect_check_refused("no_entry.so", no_entry_why);
}

static void host_skips_a_library_without_the_entry_symbol(void **state)
{
  expect_host_skips(*state, "no_entry.so", no_entry_why);
}

/* ---- an entry point that returns NULL ------------------------------------ */

static const char *const null_entry_why[] = {TWIN_PLUGIN_ENTRY_SYMBOL,
                                             "returned no descriptor", NULL};

static void load_refuses_an_entry_that_returns_null(void **state)
{
  (void)state;
  expect_load_refused("null_entry.so", null_entry_why);
}

static void check_reports_an_entry_that_returns_null(void **state)
{
  (void)state;
  expect_check_refused("null_entry.so", null_entry_why);
}

static void host_skips_an_entry_that_returns_null(void **state)
{
  expect_host_skips(*state, "null_entry.so", null_entry_why);
}

/* ---- an ABI major the host does not speak -------------------------------- */

/* Both versions: the plugin's (major + 1) and the host's. */
static void with_major_why(void (*expect)(const char *, const char *const *))
{
  char *theirs = tu_fmt("ABI %d.%d", TWIN_ABI_MAJOR + 1, TWIN_ABI_MINOR);
  char *ours = tu_fmt("ABI %d.%d", TWIN_ABI_MAJOR, TWIN_ABI_MINOR);
  const char *const why[] = {theirs, ours, "abi_major", NULL};
  expect("wrong_major.so", why);
  free(theirs);
  free(ours);
}

static void load_refuses_another_abi_major_naming_both_versions(void **state)
{
  (void)state;
  with_major_why(expect_load_refused);
}

static void check_reports_another_abi_major_naming_both_versions(void **state)
{
  (void)state;
  with_major_why(expect_check_refused);
}

static void host_skips_another_abi_major(void **state)
{
  char *theirs = tu_fmt("ABI %d.%d", TWIN_ABI_MAJOR + 1, TWIN_ABI_MINOR);
  char *ours = tu_fmt("ABI %d.%d", TWIN_ABI_MAJOR, TWIN_ABI_MINOR);
  const char *const why[] = {theirs, ours, NULL};
  expect_host_skips(*state, "wrong_major.so", why);
  free(theirs);
  free(ours);
}

/* ---- a descriptor smaller than ABI 1.0's --------------------------------- */

static const char *const small_why[] = {"struct_size is 12 bytes", "at least",
                                        NULL};

static void load_refuses_a_descriptor_too_small_for_abi_1_0(void **state)
{
  (void)state;
  expect_load_refused("small_struct.so", small_why);
}

static void check_reports_a_descriptor_too_small_for_abi_1_0(void **state)
{
  (void)state;
  expect_check_refused("small_struct.so", small_why);
}

static void host_skips_a_descriptor_too_small_for_abi_1_0(void **state)
{
  expect_host_skips(*state, "small_struct.so", small_why);
}

/* ---- a config schema that is not a schema -------------------------------- */

static const char *const schema_why[] = {"'badschema'", "invalid config schema",
                                         NULL};

static void load_refuses_an_invalid_config_schema(void **state)
{
  (void)state;
  expect_load_refused("bad_schema.so", schema_why);
}

static void check_reports_an_invalid_config_schema(void **state)
{
  (void)state;
  expect_check_refused("bad_schema.so", schema_why);
}

static void host_skips_an_invalid_config_schema(void **state)
{
  expect_host_skips(*state, "bad_schema.so", schema_why);
}

/* ---- a descriptor without the required open ------------------------------ */

static const char *const no_open_why[] = {"'noopen'", "no open callback", NULL};

static void load_refuses_a_plugin_without_open(void **state)
{
  (void)state;
  expect_load_refused("no_open.so", no_open_why);
}

static void check_reports_a_plugin_without_open(void **state)
{
  (void)state;
  expect_check_refused("no_open.so", no_open_why);
}

static void host_skips_a_plugin_without_open(void **state)
{
  expect_host_skips(*state, "no_open.so", no_open_why);
}

/* ---- two files with one plugin name -------------------------------------- */

static void host_refuses_the_second_file_with_a_taken_name(void **state)
{
  th_host *f = *state;
  th_fixture(f, "probe.so");
  th_fixture(f, "probe_dup.so");
  write_config(f, 1, one_town);
  core_err err = {.msg = {0}};
  if (th_try_open(f, CORE_HOST_LOAD, &err))
    fail_msg("host did not start: %s", err.msg);
  core_host *h = f->h;
  char *first = plugin_file(f, "probe.so");
  char *second = plugin_file(f, "probe_dup.so");
  core_plugin *p = core_host_plugin(h, "probe");
  assert_non_null(p);
  assert_string_equal(p->path, first);
  const core_refusal *r = NULL;
  for (size_t i = 0; i < h->n_refused; i++)
    if (!strcmp(h->refused[i].path, second))
      r = &h->refused[i];
  assert_non_null(r);
  assert_one_line(r->reason);
  char *prefix = tu_fmt("%s: ", second);
  assert_int_equal(strncmp(r->reason, prefix, strlen(prefix)), 0);
  tu_assert_contains(r->reason, "duplicate plugin name 'probe'");
  tu_assert_contains(r->reason, first);
  free(prefix);
  free(first);
  free(second);
  th_close(f);
}

static const char *const dup_why[] = {"duplicate plugin name 'probe'", NULL};

static void host_keeps_running_the_first_of_two_same_named_files(void **state)
{
  expect_host_skips(*state, "probe_dup.so", dup_why);
}

/* ---- a newer minor ------------------------------------------------------- */

static void load_accepts_a_newer_minor_with_a_bigger_descriptor(void **state)
{
  (void)state;
  char *path = th_fixture_path("newer_minor.so");
  core_plugin p;
  core_err err = {.msg = {0}};
  if (core_plugin_load(path, &p, &err))
    fail_msg("newer_minor.so was refused: %s", err.msg);
  assert_string_equal(p.desc.name, "newer");
  assert_int_equal(p.desc.abi_major, TWIN_ABI_MAJOR);
  assert_int_equal(p.desc.abi_minor, TWIN_ABI_MINOR + 1);
  assert_true(p.desc.struct_size > sizeof(twin_plugin));
  assert_non_null(p.desc.open);
  assert_non_null(p.desc.describe);
  assert_string_equal(p.path, path);
  core_plugin_unload(&p);
  free(path);
}

static void check_accepts_a_newer_minor(void **state)
{
  (void)state;
  char *path = th_fixture_path("newer_minor.so");
  tu_run r = tu_twinhost(NULL, "plugins", "check", path, NULL);
  assert_int_equal(r.exit_code, 0);
  assert_string_equal(r.err, "");
  char *want = tu_fmt("ok: %s: plugin 'newer'", path);
  assert_int_equal(strncmp(r.out, want, strlen(want)), 0);
  free(want);
  free(path);
  tu_run_free(&r);
}

static void host_runs_a_newer_minor_plugin(void **state)
{
  th_host *f = *state;
  th_fixture(f, "newer_minor.so");
  write_config(f, 1,
               "{\"id\": \"alpha\", \"timezone\": \"UTC\", "
               "\"plugins\": {\"newer\": {}}}");
  json_t *list = plugins_list(f);
  assert_non_null(tu_get(list, "plugins[name=newer]"));
  assert_int_equal(json_array_size(json_object_get(list, "refused")), 0);
  json_decref(list);
  tu_run r = tu_twinhost(NULL, "--config", f->config, "plugins", "info",
                         "newer", "--town", "alpha", NULL);
  if (r.exit_code != 0)
    fail_msg("plugins info exited %d: %s", r.exit_code, r.err);
  json_t *info = json_loads(r.out, 0, NULL);
  assert_non_null(info);
  assert_true(json_is_true(
      json_object_get(json_object_get(info, "instance"), "newer")));
  json_decref(info);
  tu_run_free(&r);
}

/* ---- an older minor ------------------------------------------------------ */

/* Built against 1.0 (before local_time): loads, runs, and sees a host table
 * that reaches local_time. */
static void host_runs_a_plugin_built_against_abi_1_0(void **state)
{
  th_host *f = *state;
  char *path = th_fixture_path("old_minor.so");
  core_plugin p;
  core_err err = {.msg = {0}};
  if (core_plugin_load(path, &p, &err))
    fail_msg("old_minor.so was refused: %s", err.msg);
  assert_int_equal(p.desc.abi_minor, 0);
  assert_true(TWIN_ABI_MINOR >= 1);
  core_plugin_unload(&p);
  free(path);
  th_fixture(f, "old_minor.so");
  write_config(f, 1,
               "{\"id\": \"alpha\", \"timezone\": \"UTC\", "
               "\"plugins\": {\"older\": {}}}");
  tu_run r = tu_twinhost(NULL, "--config", f->config, "plugins", "info",
                         "older", "--town", "alpha", NULL);
  if (r.exit_code != 0)
    fail_msg("plugins info exited %d: %s", r.exit_code, r.err);
  json_t *info = json_loads(r.out, 0, NULL);
  assert_non_null(info);
  json_t *inst = json_object_get(info, "instance");
  assert_true(json_is_true(json_object_get(inst, "older")));
  assert_int_equal(json_integer_value(json_object_get(inst, "host_minor")),
                   TWIN_ABI_MINOR);
  assert_true(json_is_true(json_object_get(inst, "host_has_local_time")));
  json_decref(info);
  tu_run_free(&r);
}

/* ---- a town config the plugin's schema refuses --------------------------- */

static const char two_towns_beta_over_limit[] =
    "{\"id\": \"alpha\", \"timezone\": \"UTC\", "
    "\"plugins\": {\"probe\": {}}},"
    "{\"id\": \"beta\", \"timezone\": \"UTC\", "
    "\"plugins\": {\"probe\": {\"config\": {\"limit\": 500}}}}";

/* A town config the plugin's schema refuses stops a host that would run
 * the plugins (serve, ingest, query) from starting at all, naming file,
 * town, path and rule: a config with any mistake is refused whole. */
static void a_config_over_the_schema_maximum_refuses_the_start(void **state)
{
  th_host *f = *state;
  th_fixture(f, "probe.so");
  write_config(f, 1, two_towns_beta_over_limit);
  core_err err = {.msg = {0}};
  assert_int_equal(th_try_open(f, CORE_HOST_INSTANCES, &err), TWIN_ERR_CONFIG);
  assert_null(f->h);
  assert_one_line(err.msg);
  tu_assert_contains(err.msg, f->config);
  tu_assert_contains(err.msg, "town 'beta'");
  tu_assert_contains(err.msg, "plugins.probe.config.limit");
  tu_assert_contains(err.msg, "maximum");
  tu_run r = tu_twinhost(NULL, "--config", f->config, "query", "--town",
                         "alpha", "--plugin", "probe", "{\"op\":\"town\"}",
                         NULL);
  assert_int_equal(r.exit_code, 1);
  tu_assert_contains(r.err, "twinhost: config: ");
  tu_assert_contains(r.err, "limit");
  tu_run_free(&r);
}

/* `plugins list` (which runs no plugin) still shows the refused config
 * beside the good one, for the admin to read. */
static void plugins_list_shows_a_config_the_schema_refuses(void **state)
{
  th_host *f = *state;
  th_fixture(f, "probe.so");
  write_config(f, 1, two_towns_beta_over_limit);
  json_t *list = plugins_list(f);
  json_t *towns = json_object_get(list, "towns");
  json_t *beta = tu_get(towns, "[town=beta,plugin=probe]");
  assert_non_null(beta);
  assert_string_equal(tu_str(beta, "state"), "disabled");
  tu_assert_contains(tu_str(beta, "reason"), "limit");
  tu_assert_contains(tu_str(beta, "reason"), "maximum");
  json_t *alpha = tu_get(towns, "[town=alpha,plugin=probe]");
  assert_string_equal(tu_str(alpha, "state"), "configured");
  json_decref(list);
}

/* ---- open() fails -------------------------------------------------------- */

/* The instance of plugin in alpha is disabled with a reason naming file
 * and holding why; probe in the same town runs. */
static void expect_open_refused(th_host *f, const char *plugin,
                                const char *file, const char *why)
{
  core_err err = {.msg = {0}};
  if (th_try_open(f, CORE_HOST_INSTANCES, &err))
    fail_msg("host did not start: %s", err.msg);
  core_host *h = f->h;
  core_instance *ci = core_host_instance(h, "alpha", plugin);
  assert_non_null(ci);
  assert_int_equal(ci->state, CORE_INSTANCE_DISABLED);
  assert_null(ci->inst);
  assert_one_line(ci->reason);
  char *path = plugin_file(f, file);
  tu_assert_contains(ci->reason, path);
  tu_assert_contains(ci->reason, why);
  free(path);
  core_instance *probe = core_host_instance(h, "alpha", "probe");
  if (strcmp(plugin, "probe")) {
    assert_non_null(probe);
    assert_int_equal(probe->state, CORE_INSTANCE_RUNNING);
  }
  th_close(f);
}

static void
a_failing_open_disables_the_instance_with_its_set_error_text(void **state)
{
  th_host *f = *state;
  th_fixture(f, "probe.so");
  th_fixture(f, "open_fail.so");
  write_config(f, 1,
               "{\"id\": \"alpha\", \"timezone\": \"UTC\", "
               "\"plugins\": {\"openfail\": {}, \"probe\": {}}}");
  expect_open_refused(f, "openfail", "open_fail.so", "cannot reach the feed");
}

static void a_failing_open_leaves_the_other_plugins_running(void **state)
{
  th_host *f = *state;
  th_fixture(f, "probe.so");
  th_fixture(f, "open_fail.so");
  write_config(f, 1,
               "{\"id\": \"alpha\", \"timezone\": \"UTC\", "
               "\"plugins\": {\"openfail\": {}, \"probe\": {}}}");
  assert_probe_answers(f);
  tu_run r = tu_twinhost(NULL, "--config", f->config, "query", "--town",
                         "alpha", "--plugin", "openfail", "{}", NULL);
  assert_int_equal(r.exit_code, 1);
  tu_assert_contains(r.err, "twinhost: query: ");
  tu_assert_contains(r.err, "cannot reach the feed");
  tu_run_free(&r);
}

static void probe_asked_to_fail_open_is_disabled_with_its_reason(void **state)
{
  th_host *f = *state;
  th_fixture(f, "probe.so");
  write_config(f, 1,
               "{\"id\": \"alpha\", \"timezone\": \"UTC\", "
               "\"plugins\": {\"probe\": {\"config\": {\"fail_open\": "
               "true}}}}");
  expect_open_refused(f, "probe", "probe.so", "asked to fail in open");
}

/* ---- a plugin a town enables but nobody provides ------------------------- */

/* A misspelt plugin in a town refuses the start, with "did you mean";
 * `plugins list` shows it as missing. */
static void
a_plugin_enabled_but_not_found_refuses_the_start(void **state)
{
  th_host *f = *state;
  th_fixture(f, "probe.so");
  write_config(f, 1,
               "{\"id\": \"alpha\", \"timezone\": \"UTC\", "
               "\"plugins\": {\"prbe\": {}}}");
  tu_run r = tu_twinhost(NULL, "--config", f->config, "query", "--town",
                         "alpha", "--plugin", "probe", "{\"op\":\"town\"}",
                         NULL);
  assert_int_equal(r.exit_code, 1);
  tu_assert_contains(r.err, "plugins.prbe: no plugin of that name is loaded; "
                            "did you mean \"probe\"?");
  tu_run_free(&r);
  write_config(f, 1,
               "{\"id\": \"alpha\", \"timezone\": \"UTC\", "
               "\"plugins\": {\"ghost\": {}, \"probe\": {}}}");
  json_t *list = plugins_list(f);
  json_t *towns = json_object_get(list, "towns");
  json_t *ghost = tu_get(towns, "[town=alpha,plugin=ghost]");
  assert_non_null(ghost);
  assert_string_equal(tu_str(ghost, "state"), "missing");
  assert_non_null(tu_str(ghost, "reason"));
  json_t *probe = tu_get(towns, "[town=alpha,plugin=probe]");
  assert_non_null(probe);
  assert_string_equal(tu_str(probe, "state"), "configured");
  json_decref(list);
}

/* ---- the search path ----------------------------------------------------- */

static void plugins_on_twinhost_plugin_path_are_found(void **state)
{
  th_host *f = *state;
  th_fixture(f, "probe.so");
  write_config(f, 0, one_town);
  setenv("TWINHOST_PLUGIN_PATH", f->plugins, 1);
  json_t *list = plugins_list(f);
  json_t *path = json_object_get(list, "search_path");
  int listed = 0;
  size_t i;
  json_t *dir;
  json_array_foreach(path, i, dir)
  {
    listed |= !strcmp(json_string_value(dir), f->plugins);
  }
  assert_true(listed);
  json_t *probe = tu_get(list, "plugins[name=probe]");
  assert_non_null(probe);
  char *file = plugin_file(f, "probe.so");
  assert_string_equal(tu_str(probe, "file"), file);
  free(file);
  json_decref(list);
  assert_probe_answers(f);
}

static void a_folder_without_plugins_on_the_path_is_harmless(void **state)
{
  th_host *f = *state;
  char *empty = tu_fmt("%s/empty", f->dir);
  assert_int_equal(mkdir(empty, 0755), 0);
  th_fixture(f, "probe.so");
  write_config(f, 1, one_town);
  setenv("TWINHOST_PLUGIN_PATH", empty, 1);
  free(empty);
  json_t *list = plugins_list(f);
  assert_non_null(tu_get(list, "plugins[name=probe]"));
  json_decref(list);
}

static void check_accepts_a_file_named_without_a_folder(void **state)
{
  th_host *f = *state;
  th_fixture(f, "probe.so");
  assert_int_equal(chdir(f->plugins), 0);
  tu_run r = tu_twinhost(NULL, "plugins", "check", "probe.so", NULL);
  if (r.exit_code != 0)
    fail_msg("`plugins check probe.so` in its own folder exited %d: %s",
             r.exit_code, r.err);
  assert_int_equal(strncmp(r.out, "ok: probe.so: plugin 'probe'", 28), 0);
  tu_run_free(&r);
}

#define T(name) cmocka_unit_test_setup_teardown(name, setup, teardown)

int main(void)
{
  setenv("TWINHOST_MAP_MIB", "8", 1); /* small stores in the temp folders */
  start_dir = getcwd(NULL, 0);
  if (!start_dir)
    return 1;
  const struct CMUnitTest tests[] = {
      T(load_refuses_a_missing_file),
      T(check_reports_a_missing_file),
      T(host_skips_a_dangling_link_and_runs_the_rest),
      T(load_refuses_a_file_that_is_not_a_shared_object),
      T(check_reports_a_file_that_is_not_a_shared_object),
      T(host_skips_a_file_that_is_not_a_shared_object),
      T(load_refuses_a_library_without_the_entry_symbol),
      T(check_reports_a_library_without_the_entry_symbol),
      T(host_skips_a_library_without_the_entry_symbol),
      T(load_refuses_an_entry_that_returns_null),
      T(check_reports_an_entry_that_returns_null),
      T(host_skips_an_entry_that_returns_null),
      T(load_refuses_another_abi_major_naming_both_versions),
      T(check_reports_another_abi_major_naming_both_versions),
      T(host_skips_another_abi_major),
      T(load_refuses_a_descriptor_too_small_for_abi_1_0),
      T(check_reports_a_descriptor_too_small_for_abi_1_0),
      T(host_skips_a_descriptor_too_small_for_abi_1_0),
      T(load_refuses_an_invalid_config_schema),
      T(check_reports_an_invalid_config_schema),
      T(host_skips_an_invalid_config_schema),
      T(load_refuses_a_plugin_without_open),
      T(check_reports_a_plugin_without_open),
      T(host_skips_a_plugin_without_open),
      T(host_refuses_the_second_file_with_a_taken_name),
      T(host_keeps_running_the_first_of_two_same_named_files),
      T(load_accepts_a_newer_minor_with_a_bigger_descriptor),
      T(check_accepts_a_newer_minor),
      T(host_runs_a_newer_minor_plugin),
      T(host_runs_a_plugin_built_against_abi_1_0),
      T(a_config_over_the_schema_maximum_refuses_the_start),
      T(plugins_list_shows_a_config_the_schema_refuses),
      T(a_failing_open_disables_the_instance_with_its_set_error_text),
      T(a_failing_open_leaves_the_other_plugins_running),
      T(probe_asked_to_fail_open_is_disabled_with_its_reason),
      T(a_plugin_enabled_but_not_found_refuses_the_start),
      T(plugins_on_twinhost_plugin_path_are_found),
      T(a_folder_without_plugins_on_the_path_is_harmless),
      T(check_accepts_a_file_named_without_a_folder),
  };
  int failed = cmocka_run_group_tests(tests, NULL, NULL);
  free(start_dir);
  return failed;
}
