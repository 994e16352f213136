/*
 * test_config.c — the host config (core/config.c): what a good config
 * yields, how relative paths and town packs resolve, and that every bad
 * config is refused whole with a message naming file, JSON path and problem.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "config.h"
#include "testutil.h"

/* Each test gets a folder with its own zoneinfo, so results do not depend
 * on the machine's tzdata. */
typedef struct fixture {
  char *dir;
  char *zoneinfo;
} fixture;

static void write_zone(const char *zoneinfo, const char *name, const char *text)
{
  free(tu_write_file(zoneinfo, name, text));
}

static int setup(void **state)
{
  fixture *f = calloc(1, sizeof *f);
  f->dir = tu_tempdir();
  f->zoneinfo = tu_fmt("%s/zoneinfo", f->dir);
  char *europe = tu_fmt("%s/Europe", f->zoneinfo);
  assert_int_equal(mkdir(f->zoneinfo, 0755), 0);
  assert_int_equal(mkdir(europe, 0755), 0);
  free(europe);
  write_zone(f->zoneinfo, "Europe/Berlin", "TZif2 fake zone");
  write_zone(f->zoneinfo, "Europe/Vienna", "TZif2 fake zone");
  write_zone(f->zoneinfo, "UTC", "TZif2 fake zone");
  write_zone(f->zoneinfo, "leapseconds", "# not a zone\n");
  setenv("TZDIR", f->zoneinfo, 1);
  *state = f;
  return 0;
}

static int teardown(void **state)
{
  fixture *f = *state;
  unsetenv("TZDIR");
  tu_rmtree(f->dir);
  free(f->dir);
  free(f->zoneinfo);
  free(f);
  return 0;
}

/* Parse text as "demo.json" in the fixture folder. */
static int parse(fixture *f, const char *text, core_config **cfg, core_err *err)
{
  return core_config_parse(text, strlen(text), "demo.json", f->dir, cfg, err);
}

static core_config *parse_ok(fixture *f, const char *text)
{
  core_config *cfg = NULL;
  core_err err = {.msg = {0}};
  int rc = parse(f, text, &cfg, &err);
  if (rc != TWIN_OK)
    fail_msg("expected success, got %d: %s", rc, err.msg);
  assert_non_null(cfg);
  return cfg;
}

/* The config is refused, *out stays NULL and the message holds want. */
static void expect_error(fixture *f, const char *text, const char *want)
{
  core_config *cfg = (core_config *)(void *)&cfg; /* not NULL on entry */
  core_err err = {.msg = {0}};
  int rc = parse(f, text, &cfg, &err);
  assert_int_equal(rc, TWIN_ERR_CONFIG);
  assert_null(cfg);
  if (!strstr(err.msg, want))
    fail_msg("message \"%s\"\n  lacks \"%s\"", err.msg, want);
}

static void assert_str(const char *got, const char *want)
{
  assert_non_null(got);
  assert_string_equal(got, want);
}

/* A town line with one placeholder for extra members. */
#define TOWN(extra)                                                            \
  "{\"towns\": [{\"id\": \"plattling\", \"timezone\": \"Europe/Berlin\"" extra \
  "}]}"

/* ---- a good config ---------------------------------------------------- */

static void demo_config_loads_every_field(void **state)
{
  fixture *f = *state;
  char *sub = tu_fmt("%s/scripts", f->dir);
  char *pack = tu_fmt("%s/scripts/deggendorf", f->dir);
  assert_int_equal(mkdir(sub, 0755), 0);
  assert_int_equal(mkdir(pack, 0755), 0);
  free(tu_write_file(pack, "town.json",
                     "{\"id\": \"deggendorf\", \"name\": \"Deggendorf\",\n"
                     " \"timezone\": \"Europe/Berlin\",\n"
                     " \"location\": {\"lat\": 48.83, \"lon\": 12.96},\n"
                     " \"plugins\": {\"parking\": {\"config\": {\"feed\": "
                     "\"p.json\"}}}}\n"));
  char *path = tu_write_file(
      sub, "demo.json",
      "{\"data_dir\": \"../data\",\n"
      " \"plugin_path\": [\"/opt/twin/plugins\", \"plugins\"],\n"
      " \"towns\": [\"deggendorf\",\n"
      "   {\"id\": \"plattling\", \"name\": \"Plattling\",\n"
      "    \"timezone\": \"Europe/Berlin\",\n"
      "    \"location\": {\"lat\": 48.77, \"lon\": 12.87},\n"
      "    \"scripts\": \"plattling\", \"data\": \"../data/plattling\",\n"
      "    \"plugins\": {\"sensors\": {\"config\": {\"a\": [1, 2]},\n"
      "                              \"tick_s\": 60, \"enabled\": true},\n"
      "                 \"energy\": {\"enabled\": false}}}]}\n");
  core_config *cfg = NULL;
  core_err err = {.msg = {0}};
  int rc = core_config_load(path, &cfg, &err);
  if (rc)
    fail_msg("%s", err.msg);

  char *want = tu_fmt("%s/../data", sub);
  assert_str(cfg->path, path);
  assert_str(cfg->data_dir, want);
  free(want);
  assert_int_equal(cfg->n_plugin_path, 2);
  assert_str(cfg->plugin_path[0], "/opt/twin/plugins");
  want = tu_fmt("%s/plugins", sub);
  assert_str(cfg->plugin_path[1], want);
  free(want);
  assert_int_equal(cfg->n_towns, 2);

  const core_town *d = &cfg->towns[0];
  assert_str(d->id, "deggendorf");
  assert_str(d->name, "Deggendorf");
  assert_str(d->timezone, "Europe/Berlin");
  assert_true(d->has_location);
  assert_true(d->lat == 48.83 && d->lon == 12.96);
  want = tu_fmt("%s/deggendorf", sub);
  assert_str(d->script_dir, want);
  free(want);
  want = tu_fmt("%s/../data/deggendorf", sub);
  assert_str(d->data_dir, want);
  free(want);
  want = tu_fmt("%s/deggendorf/town.json", sub);
  assert_str(d->source, want);
  free(want);
  assert_int_equal(d->n_plugins, 1);
  assert_str(d->plugins[0].name, "parking");
  assert_str(d->plugins[0].config_json, "{\"feed\":\"p.json\"}");

  const core_town *p = &cfg->towns[1];
  assert_str(p->id, "plattling");
  assert_str(p->name, "Plattling");
  want = tu_fmt("%s/plattling", sub);
  assert_str(p->script_dir, want);
  free(want);
  want = tu_fmt("%s/../data/plattling", sub);
  assert_str(p->data_dir, want);
  free(want);
  assert_str(p->source, path);
  assert_int_equal(p->n_plugins, 2);
  assert_str(p->plugins[0].name, "sensors");
  assert_str(p->plugins[0].config_json, "{\"a\":[1,2]}");
  assert_int_equal(p->plugins[0].tick_s, 60);
  assert_int_equal(p->plugins[0].enabled, 1);
  assert_str(p->plugins[1].name, "energy");
  assert_int_equal(p->plugins[1].enabled, 0);

  core_config_free(cfg);
  free(path);
  free(pack);
  free(sub);
}

static void town_is_found_by_id(void **state)
{
  core_config *cfg = parse_ok(*state, TOWN(""));
  const core_town *t = core_config_town(cfg, "plattling");
  assert_ptr_equal(t, &cfg->towns[0]);
  core_config_free(cfg);
}

static void unknown_town_id_finds_nothing(void **state)
{
  core_config *cfg = parse_ok(*state, TOWN(""));
  assert_null(core_config_town(cfg, "deggendorf"));
  assert_null(core_config_town(cfg, NULL));
  assert_null(core_config_town(NULL, "plattling"));
  core_config_free(cfg);
}

static void freeing_null_config_is_harmless(void **state)
{
  (void)state;
  core_config_free(NULL);
}

/* ---- defaults and path resolution ------------------------------------- */

static void data_dir_defaults_to_data_beside_the_config(void **state)
{
  fixture *f = *state;
  core_config *cfg = parse_ok(f, TOWN(""));
  char *want = tu_fmt("%s/data", f->dir);
  assert_str(cfg->data_dir, want);
  free(want);
  core_config_free(cfg);
}

static void relative_data_dir_resolves_against_the_config_folder(void **state)
{
  fixture *f = *state;
  core_config *cfg =
      parse_ok(f, "{\"data_dir\": \"state/db\", \"towns\": [{\"id\": \"a\", "
                  "\"timezone\": \"UTC\"}]}");
  char *want = tu_fmt("%s/state/db", f->dir);
  assert_str(cfg->data_dir, want);
  free(want);
  core_config_free(cfg);
}

static void absolute_paths_stay_absolute(void **state)
{
  core_config *cfg = parse_ok(
      *state, "{\"data_dir\": \"/var/lib/twin\", \"plugin_path\": [\"/p\"], "
              "\"towns\": [{\"id\": \"a\", \"timezone\": \"UTC\", "
              "\"scripts\": \"/etc/twin/a\", \"data\": \"/srv/a\"}]}");
  assert_str(cfg->data_dir, "/var/lib/twin");
  assert_str(cfg->plugin_path[0], "/p");
  assert_str(cfg->towns[0].script_dir, "/etc/twin/a");
  assert_str(cfg->towns[0].data_dir, "/srv/a");
  core_config_free(cfg);
}

static void paths_relative_to_the_current_folder_stay_short(void **state)
{
  (void)state;
  const char *text = TOWN("");
  core_config *cfg = NULL;
  core_err err = {.msg = {0}};
  setenv("TZDIR", "/nonexistent-zoneinfo", 1);
  assert_int_equal(
      core_config_parse(text, strlen(text), "demo.json", ".", &cfg, &err),
      TWIN_OK);
  assert_str(cfg->data_dir, "data");
  assert_str(cfg->towns[0].script_dir, "plattling");
  assert_str(cfg->towns[0].data_dir, "data/plattling");
  core_config_free(cfg);
}

static void plugin_path_entries_resolve_against_the_config_folder(void **state)
{
  fixture *f = *state;
  core_config *cfg = parse_ok(
      f, "{\"plugin_path\": [\"lib/plugins\", \"../more\"], \"towns\": "
         "[{\"id\": \"a\", \"timezone\": \"UTC\"}]}");
  assert_int_equal(cfg->n_plugin_path, 2);
  char *want = tu_fmt("%s/lib/plugins", f->dir);
  assert_str(cfg->plugin_path[0], want);
  free(want);
  want = tu_fmt("%s/../more", f->dir);
  assert_str(cfg->plugin_path[1], want);
  free(want);
  core_config_free(cfg);
}

static void plugin_path_is_empty_when_absent(void **state)
{
  core_config *cfg = parse_ok(*state, TOWN(""));
  assert_int_equal(cfg->n_plugin_path, 0);
  core_config_free(cfg);
}

static void inline_town_scripts_default_to_config_folder_and_id(void **state)
{
  fixture *f = *state;
  core_config *cfg = parse_ok(f, TOWN(""));
  char *want = tu_fmt("%s/plattling", f->dir);
  assert_str(cfg->towns[0].script_dir, want);
  free(want);
  core_config_free(cfg);
}

static void town_data_defaults_to_data_dir_and_id(void **state)
{
  fixture *f = *state;
  core_config *cfg =
      parse_ok(f, "{\"data_dir\": \"/var/twin\", \"towns\": [{\"id\": \"a\", "
                  "\"timezone\": \"UTC\"}]}");
  assert_str(cfg->towns[0].data_dir, "/var/twin/a");
  core_config_free(cfg);
}

static void town_scripts_and_data_resolve_against_the_config(void **state)
{
  fixture *f = *state;
  core_config *cfg =
      parse_ok(f, TOWN(", \"scripts\": \"rules\", \"data\": \"db/p\""));
  char *want = tu_fmt("%s/rules", f->dir);
  assert_str(cfg->towns[0].script_dir, want);
  free(want);
  want = tu_fmt("%s/db/p", f->dir);
  assert_str(cfg->towns[0].data_dir, want);
  free(want);
  core_config_free(cfg);
}

static void town_rule_limits_are_read_and_default_to_zero(void **state)
{
  fixture *f = *state;
  core_config *cfg = parse_ok(f, TOWN(", \"rules\": {\"instructions\": "
                                      "2000000, \"wall_ms\": 20, "
                                      "\"memory_mib\": 16}"));
  assert_int_equal(cfg->towns[0].rule_instructions, 2000000);
  assert_int_equal(cfg->towns[0].rule_wall_ms, 20);
  assert_int_equal(cfg->towns[0].rule_memory_mib, 16);
  core_config_free(cfg);
  cfg = parse_ok(f, TOWN(""));
  assert_int_equal(cfg->towns[0].rule_instructions, 0);
  core_config_free(cfg);
}

static void town_rule_limits_out_of_range_are_refused(void **state)
{
  fixture *f = *state;
  expect_error(f, TOWN(", \"rules\": {\"wall_ms\": 0}"),
               "towns[0].rules.wall_ms: expected a whole number of "
               "milliseconds from 1 to 10000, got 0");
  expect_error(f, TOWN(", \"rules\": {\"memory\": 5}"),
               "towns[0].rules.memory: unknown key");
  expect_error(f, TOWN(", \"rules\": 5"), "towns[0].rules: expected an object");
}

static void town_api_anonymous_read_is_read_and_defaults_off(void **state)
{
  fixture *f = *state;
  core_config *cfg = parse_ok(f, TOWN(", \"api\": {\"anonymous_read\": true}"));
  assert_int_equal(cfg->towns[0].anonymous_read, 1);
  core_config_free(cfg);
  cfg = parse_ok(f, TOWN(", \"api\": {\"anonymous_read\": false}"));
  assert_int_equal(cfg->towns[0].anonymous_read, 0);
  core_config_free(cfg);
  cfg = parse_ok(f, TOWN(", \"api\": {}"));
  assert_int_equal(cfg->towns[0].anonymous_read, 0);
  core_config_free(cfg);
  cfg = parse_ok(f, TOWN(""));
  assert_int_equal(cfg->towns[0].anonymous_read, 0);
  core_config_free(cfg);
}

static void town_api_must_be_an_object_of_known_keys(void **state)
{
  fixture *f = *state;
  expect_error(f, TOWN(", \"api\": true"),
               "demo.json: towns[0].api: expected an object such as "
               "{\"anonymous_read\": true}, got true");
  expect_error(f, TOWN(", \"api\": {\"anonymous_reads\": true}"),
               "towns[0].api.anonymous_reads: unknown key (known: "
               "anonymous_read); did you mean \"anonymous_read\"?");
  expect_error(f, TOWN(", \"api\": {\"anonymous_read\": \"yes\"}"),
               "towns[0].api.anonymous_read: expected true (read routes need "
               "no token) or false (every route needs a token), got \"yes\"");
  expect_error(f, TOWN(", \"api\": {\"anonymous_read\": 1}"),
               "towns[0].api.anonymous_read: expected true");
}

static void town_pack_api_is_read_from_town_json(void **state)
{
  fixture *f = *state;
  char *pack = tu_fmt("%s/open", f->dir);
  assert_int_equal(mkdir(pack, 0755), 0);
  free(tu_write_file(pack, "town.json",
                     "{\"id\": \"open\", \"timezone\": \"UTC\",\n"
                     " \"api\": {\"anonymous_read\": true}}\n"));
  core_config *cfg = parse_ok(f, "{\"towns\": [\"open\"]}");
  assert_int_equal(cfg->towns[0].anonymous_read, 1);
  core_config_free(cfg);
  free(tu_write_file(pack, "town.json",
                     "{\"id\": \"open\", \"timezone\": \"UTC\",\n"
                     " \"api\": {\"anonymous_read\": null}}\n"));
  char *want =
      tu_fmt("%s/open/town.json: api.anonymous_read: expected true", f->dir);
  expect_error(f, "{\"towns\": [\"open\"]}", want);
  free(want);
  free(pack);
}

/* ---- http ------------------------------------------------------------- */

static void http_defaults_without_an_http_object(void **state)
{
  core_config *cfg = parse_ok(*state, TOWN(""));
  assert_str(cfg->http.listen, "127.0.0.1");
  assert_int_equal(cfg->http.port, 8080);
  assert_int_equal(cfg->http.threads, 0);
  assert_int_equal(cfg->http.max_body_bytes, 1048576);
  assert_int_equal(cfg->http.max_header_bytes, 16384);
  assert_int_equal(cfg->http.max_connections, 256);
  assert_int_equal(cfg->http.max_connections_per_client, 32);
  assert_int_equal(cfg->http.request_timeout_s, 30);
  assert_int_equal(cfg->http.max_documents, 10000);
  assert_int_equal(cfg->http.max_streams_per_client, 4);
  assert_int_equal(cfg->http.max_streams_per_town, 64);
  core_config_free(cfg);
}

static void http_fields_are_read(void **state)
{
  fixture *f = *state;
  core_config *cfg = parse_ok(
      f, "{\"http\": {\"listen\": \"::1\", \"port\": 0, \"threads\": 4,\n"
         " \"max_body_bytes\": 1073741824, \"max_header_bytes\": 1024,\n"
         " \"max_connections\": 10000, \"max_connections_per_client\": 2,\n"
         " \"request_timeout_s\": 5, \"max_documents\": 7,\n"
         " \"max_streams_per_client\": 1, \"max_streams_per_town\": 3},\n"
         " \"towns\": [{\"id\": \"a\", \"timezone\": \"UTC\"}]}");
  assert_str(cfg->http.listen, "::1");
  assert_int_equal(cfg->http.port, 0);
  assert_int_equal(cfg->http.threads, 4);
  assert_int_equal(cfg->http.max_body_bytes, (size_t)1 << 30);
  assert_int_equal(cfg->http.max_header_bytes, 1024);
  assert_int_equal(cfg->http.max_connections, 10000);
  assert_int_equal(cfg->http.max_connections_per_client, 2);
  assert_int_equal(cfg->http.request_timeout_s, 5);
  assert_int_equal(cfg->http.max_documents, 7);
  assert_int_equal(cfg->http.max_streams_per_client, 1);
  assert_int_equal(cfg->http.max_streams_per_town, 3);
  core_config_free(cfg);
  /* Fields left out keep their defaults. */
  cfg = parse_ok(f, "{\"http\": {\"port\": 65535}, \"towns\": [{\"id\": "
                    "\"a\", \"timezone\": \"UTC\"}]}");
  assert_int_equal(cfg->http.port, 65535);
  assert_str(cfg->http.listen, "127.0.0.1");
  assert_int_equal(cfg->http.max_connections, 256);
  core_config_free(cfg);
  cfg = parse_ok(f, "{\"http\": {\"listen\": \"0.0.0.0\"}, \"towns\": "
                    "[{\"id\": \"a\", \"timezone\": \"UTC\"}]}");
  assert_str(cfg->http.listen, "0.0.0.0");
  core_config_free(cfg);
}

/* A config with "http": <http> and one town. */
#define HTTP(http)                                                             \
  "{\"http\": " http ", \"towns\": [{\"id\": \"a\", \"timezone\": \"UTC\"}]}"

static void http_must_be_an_object_of_known_keys(void **state)
{
  fixture *f = *state;
  expect_error(f, HTTP("8080"),
               "demo.json: http: expected an object such as {\"listen\": "
               "\"127.0.0.1\", \"port\": 8080}, got 8080");
  expect_error(f, HTTP("{\"prot\": 80}"),
               "demo.json: http.prot: unknown key (known: listen, port, "
               "threads, max_body_bytes, max_header_bytes, max_connections, "
               "max_connections_per_client, request_timeout_s, max_documents, "
               "max_streams_per_client, max_streams_per_town); did you mean "
               "\"port\"?");
  expect_error(f, HTTP("{\"max_body\": 80}"), "http.max_body: unknown key");
}

static void http_listen_must_be_a_numeric_address(void **state)
{
  fixture *f = *state;
  expect_error(f, HTTP("{\"listen\": \"localhost\"}"),
               "demo.json: http.listen: \"localhost\" is not a numeric IPv4 "
               "or IPv6 address; use e.g. \"127.0.0.1\"");
  expect_error(f, HTTP("{\"listen\": \"127.0.0.1:8080\"}"),
               "http.listen: \"127.0.0.1:8080\" is not a numeric");
  expect_error(f, HTTP("{\"listen\": \"256.0.0.1\"}"),
               "http.listen: \"256.0.0.1\" is not a numeric");
  expect_error(f, HTTP("{\"listen\": \"\"}"), "http.listen: must not be empty");
  expect_error(f, HTTP("{\"listen\": 127}"),
               "http.listen: expected a numeric IP address such as "
               "\"127.0.0.1\" or \"::\", got 127");
}

static void http_numbers_out_of_range_are_refused(void **state)
{
  fixture *f = *state;
  expect_error(f, HTTP("{\"port\": 65536}"),
               "demo.json: http.port: expected a TCP port number (0: any free "
               "port) from 0 to 65535, got 65536");
  expect_error(f, HTTP("{\"port\": -1}"), "http.port: expected a TCP port");
  expect_error(f, HTTP("{\"port\": \"8080\"}"),
               "http.port: expected a TCP port number (0: any free port) from "
               "0 to 65535, got \"8080\"");
  expect_error(f, HTTP("{\"port\": 80.5}"), "http.port: expected a TCP port");
  expect_error(f, HTTP("{\"threads\": 65}"),
               "http.threads: expected a number of threads (0: one per CPU) "
               "from 0 to 64, got 65");
  expect_error(f, HTTP("{\"threads\": -2}"), "http.threads: expected");
  expect_error(f, HTTP("{\"max_body_bytes\": 0}"),
               "http.max_body_bytes: expected a whole number of bytes from 1 "
               "to 1073741824, got 0");
  expect_error(f, HTTP("{\"max_body_bytes\": 1073741825}"),
               "http.max_body_bytes: expected a whole number of bytes");
  expect_error(f, HTTP("{\"max_header_bytes\": 1023}"),
               "http.max_header_bytes: expected a whole number of bytes from "
               "1024 to 1048576, got 1023");
  expect_error(f, HTTP("{\"max_connections\": 0}"),
               "http.max_connections: expected a whole number of connections "
               "from 1 to 10000, got 0");
  expect_error(f, HTTP("{\"max_connections\": 10001}"),
               "http.max_connections: expected");
  expect_error(f, HTTP("{\"max_connections\": true}"),
               "http.max_connections: expected a whole number of connections "
               "from 1 to 10000, got true");
  expect_error(f, HTTP("{\"request_timeout_s\": 0}"),
               "http.request_timeout_s: expected a whole number of seconds "
               "from 1 to 3600, got 0");
  expect_error(f, HTTP("{\"max_documents\": 1000001}"),
               "http.max_documents: expected a whole number of documents per "
               "ingest request from 1 to 1000000, got 1000001");
  expect_error(f, HTTP("{\"max_connections_per_client\": \"8\"}"),
               "http.max_connections_per_client: expected");
  expect_error(f, HTTP("{\"max_streams_per_client\": 0}"),
               "http.max_streams_per_client: expected");
  expect_error(f, HTTP("{\"max_streams_per_town\": 1.5}"),
               "http.max_streams_per_town: expected");
}

static void town_name_defaults_to_its_id(void **state)
{
  core_config *cfg = parse_ok(*state, TOWN(""));
  assert_str(cfg->towns[0].name, "plattling");
  core_config_free(cfg);
}

static void location_is_optional(void **state)
{
  core_config *cfg = parse_ok(*state, TOWN(""));
  assert_false(cfg->towns[0].has_location);
  core_config_free(cfg);
}

static void location_edges_are_allowed(void **state)
{
  core_config *cfg =
      parse_ok(*state, TOWN(", \"location\": {\"lat\": -90, \"lon\": 180}"));
  assert_true(cfg->towns[0].has_location);
  assert_true(cfg->towns[0].lat == -90.0 && cfg->towns[0].lon == 180.0);
  core_config_free(cfg);
}

static void town_source_is_the_config_name(void **state)
{
  core_config *cfg = parse_ok(*state, TOWN(""));
  assert_str(cfg->towns[0].source, "demo.json");
  assert_str(cfg->path, "demo.json");
  core_config_free(cfg);
}

static void parse_without_a_name_says_config(void **state)
{
  (void)state;
  core_config *cfg = NULL;
  core_err err = {.msg = {0}};
  assert_int_equal(core_config_parse("[]", 2, NULL, NULL, &cfg, &err),
                   TWIN_ERR_CONFIG);
  assert_null(cfg);
  assert_non_null(strstr(err.msg, "config: expected an object"));
}

/* ---- plugins ---------------------------------------------------------- */

static void plugin_config_is_kept_as_compact_json(void **state)
{
  core_config *cfg = parse_ok(
      *state, TOWN(", \"plugins\": {\"parking\": {\"config\": {\"lots\": [ "
                   "{\"id\" : \"p1\" } ], \"x\": 1.5}}}"));
  assert_str(cfg->towns[0].plugins[0].config_json,
             "{\"lots\":[{\"id\":\"p1\"}],\"x\":1.5}");
  core_config_free(cfg);
}

static void plugin_without_config_gets_an_empty_object(void **state)
{
  core_config *cfg = parse_ok(*state, TOWN(", \"plugins\": {\"parking\": {}}"));
  assert_str(cfg->towns[0].plugins[0].config_json, "{}");
  core_config_free(cfg);
}

static void plugin_defaults_are_enabled_and_own_tick(void **state)
{
  core_config *cfg = parse_ok(*state, TOWN(", \"plugins\": {\"parking\": {}}"));
  assert_int_equal(cfg->towns[0].plugins[0].tick_s, -1);
  assert_int_equal(cfg->towns[0].plugins[0].enabled, 1);
  core_config_free(cfg);
}

static void plugin_tick_limits_are_inclusive(void **state)
{
  core_config *cfg =
      parse_ok(*state, TOWN(", \"plugins\": {\"a\": {\"tick_s\": 1}, \"b\": "
                            "{\"tick_s\": 86400}}"));
  assert_int_equal(cfg->towns[0].plugins[0].tick_s, 1);
  assert_int_equal(cfg->towns[0].plugins[1].tick_s, 86400);
  core_config_free(cfg);
}

static void plugins_keep_their_order(void **state)
{
  core_config *cfg = parse_ok(
      *state,
      TOWN(", \"plugins\": {\"zeta\": {}, \"alpha\": {}, \"mid\": {}}"));
  assert_int_equal(cfg->towns[0].n_plugins, 3);
  assert_str(cfg->towns[0].plugins[0].name, "zeta");
  assert_str(cfg->towns[0].plugins[1].name, "alpha");
  assert_str(cfg->towns[0].plugins[2].name, "mid");
  core_config_free(cfg);
}

static void empty_plugins_object_means_no_plugins(void **state)
{
  core_config *cfg = parse_ok(*state, TOWN(", \"plugins\": {}"));
  assert_int_equal(cfg->towns[0].n_plugins, 0);
  core_config_free(cfg);
}

/* ---- town packs ------------------------------------------------------- */

/* dir/<name>/town.json holding text; returns the pack folder. */
static char *write_pack(fixture *f, const char *name, const char *text)
{
  char *pack = tu_fmt("%s/%s", f->dir, name);
  assert_int_equal(mkdir(pack, 0755), 0);
  free(tu_write_file(pack, "town.json", text));
  return pack;
}

static void town_pack_string_reads_town_json_from_the_folder(void **state)
{
  fixture *f = *state;
  char *pack = write_pack(
      f, "deggendorf",
      "{\"id\": \"deggendorf\", \"name\": \"Deggendorf\", \"timezone\": "
      "\"Europe/Berlin\", \"plugins\": {\"events\": {\"tick_s\": 300}}}");
  core_config *cfg = parse_ok(f, "{\"towns\": [\"deggendorf\"]}");
  assert_str(cfg->towns[0].id, "deggendorf");
  assert_str(cfg->towns[0].name, "Deggendorf");
  assert_int_equal(cfg->towns[0].plugins[0].tick_s, 300);
  core_config_free(cfg);
  free(pack);
}

static void town_pack_scripts_default_to_the_pack_folder(void **state)
{
  fixture *f = *state;
  char *pack =
      write_pack(f, "deg", "{\"id\": \"deggendorf\", \"timezone\": \"UTC\"}");
  core_config *cfg = parse_ok(f, "{\"towns\": [\"deg\"]}");
  assert_str(cfg->towns[0].script_dir, pack);
  core_config_free(cfg);
  free(pack);
}

static void town_pack_data_defaults_under_the_host_data_dir(void **state)
{
  fixture *f = *state;
  char *pack =
      write_pack(f, "deg", "{\"id\": \"deggendorf\", \"timezone\": \"UTC\"}");
  core_config *cfg = parse_ok(f, "{\"towns\": [\"deg\"]}");
  char *want = tu_fmt("%s/data/deggendorf", f->dir);
  assert_str(cfg->towns[0].data_dir, want);
  free(want);
  core_config_free(cfg);
  free(pack);
}

static void town_pack_paths_resolve_against_the_pack_folder(void **state)
{
  fixture *f = *state;
  char *pack = write_pack(f, "deg",
                          "{\"id\": \"deggendorf\", \"timezone\": \"UTC\", "
                          "\"scripts\": \"lua\", \"data\": \"../db\"}");
  core_config *cfg = parse_ok(f, "{\"towns\": [\"deg\"]}");
  char *want = tu_fmt("%s/lua", pack);
  assert_str(cfg->towns[0].script_dir, want);
  free(want);
  want = tu_fmt("%s/../db", pack);
  assert_str(cfg->towns[0].data_dir, want);
  free(want);
  core_config_free(cfg);
  free(pack);
}

static void town_pack_source_is_its_town_json(void **state)
{
  fixture *f = *state;
  char *pack =
      write_pack(f, "deg", "{\"id\": \"deggendorf\", \"timezone\": \"UTC\"}");
  core_config *cfg = parse_ok(f, "{\"towns\": [\"deg\"]}");
  char *want = tu_fmt("%s/town.json", pack);
  assert_str(cfg->towns[0].source, want);
  free(want);
  core_config_free(cfg);
  free(pack);
}

static void town_pack_errors_name_its_town_json(void **state)
{
  fixture *f = *state;
  char *pack = write_pack(f, "deg",
                          "{\"id\": \"deggendorf\", \"timezone\": \"UTC\", "
                          "\"plugins\": {\"parking\": {\"tick_s\": 0}}}");
  char *want = tu_fmt(
      "%s/town.json: plugins.parking.tick_s: 0 is outside 1..86400", pack);
  expect_error(f, "{\"towns\": [\"deg\"]}", want);
  free(want);
  free(pack);
}

static void missing_town_pack_names_the_file_it_tried(void **state)
{
  fixture *f = *state;
  char *want = tu_fmt("demo.json: towns[0]: cannot read town pack "
                      "\"nowhere\": %s/nowhere/town.json: cannot open",
                      f->dir);
  expect_error(f, "{\"towns\": [\"nowhere\"]}", want);
  free(want);
}

static void malformed_town_pack_names_line_and_column(void **state)
{
  fixture *f = *state;
  char *pack = write_pack(f, "deg", "{\"id\": \"deggendorf\",\n  \"x\" 1}");
  char *want = tu_fmt("%s/town.json:2:7: invalid JSON", pack);
  expect_error(f, "{\"towns\": [\"deg\"]}", want);
  free(want);
  free(pack);
}

static void town_pack_must_hold_an_object(void **state)
{
  fixture *f = *state;
  char *pack = write_pack(f, "deg", "[1, 2]");
  char *want = tu_fmt("%s/town.json: expected a town object at the top "
                      "level, got an array",
                      pack);
  expect_error(f, "{\"towns\": [\"deg\"]}", want);
  free(want);
  free(pack);
}

static void empty_town_pack_name_is_refused(void **state)
{
  expect_error(*state, "{\"towns\": [\"\"]}",
               "demo.json: towns[0]: must not be empty");
}

static void town_pack_duplicating_an_inline_town_names_both(void **state)
{
  fixture *f = *state;
  char *pack =
      write_pack(f, "deg", "{\"id\": \"plattling\", \"timezone\": \"UTC\"}");
  char *want = tu_fmt("%s/town.json: id: \"plattling\" (towns[1]) is already "
                      "used by towns[0]",
                      pack);
  expect_error(f,
               "{\"towns\": [{\"id\": \"plattling\", \"timezone\": \"UTC\"}, "
               "\"deg\"]}",
               want);
  free(want);
  free(pack);
}

static void inline_town_duplicating_a_town_pack_names_its_file(void **state)
{
  fixture *f = *state;
  char *pack =
      write_pack(f, "deg", "{\"id\": \"plattling\", \"timezone\": \"UTC\"}");
  char *want = tu_fmt("demo.json: towns[1].id: \"plattling\" is already used "
                      "by towns[0] (%s/town.json)",
                      pack);
  expect_error(f,
               "{\"towns\": [\"deg\", {\"id\": \"plattling\", "
               "\"timezone\": \"UTC\"}]}",
               want);
  free(want);
  free(pack);
}

/* ---- the file --------------------------------------------------------- */

static void missing_file_is_not_found(void **state)
{
  fixture *f = *state;
  char *path = tu_fmt("%s/nope.json", f->dir);
  core_config *cfg = (core_config *)(void *)&cfg;
  core_err err = {.msg = {0}};
  assert_int_equal(core_config_load(path, &cfg, &err), TWIN_ERR_NOT_FOUND);
  assert_null(cfg);
  assert_non_null(strstr(err.msg, path));
  free(path);
}

static void folder_instead_of_file_is_refused(void **state)
{
  fixture *f = *state;
  core_config *cfg = NULL;
  core_err err = {.msg = {0}};
  assert_int_equal(core_config_load(f->dir, &cfg, &err), TWIN_ERR_CONFIG);
  assert_null(cfg);
  assert_non_null(strstr(err.msg, "is a folder"));
}

static void loaded_file_errors_name_the_file_as_given(void **state)
{
  fixture *f = *state;
  char *path = tu_write_file(f->dir, "bad.json", "{\"towns\": []}");
  core_config *cfg = NULL;
  core_err err = {.msg = {0}};
  assert_int_equal(core_config_load(path, &cfg, &err), TWIN_ERR_CONFIG);
  char *want = tu_fmt("%s: towns: a host needs at least one town", path);
  assert_string_equal(err.msg, want);
  free(want);
  free(path);
}

/* ---- malformed JSON --------------------------------------------------- */

static void malformed_json_names_line_and_column(void **state)
{
  expect_error(*state, "{\"towns\": [\n  {\"id\": \"a\",,}\n]}",
               "demo.json:2:14: invalid JSON: ");
}

static void duplicate_keys_are_refused_with_position(void **state)
{
  expect_error(*state,
               "{\"towns\": [{\"id\": \"a\",\n \"id\": \"b\", \"timezone\": "
               "\"UTC\"}]}",
               "demo.json:2:5: invalid JSON: duplicate object key");
}

static void empty_text_is_malformed(void **state)
{
  expect_error(*state, "", "demo.json:1:0: invalid JSON: ");
}

static void embedded_nul_is_malformed(void **state)
{
  fixture *f = *state;
  static const char text[] = "{\"towns\": []}\0{}";
  core_config *cfg = NULL;
  core_err err = {.msg = {0}};
  assert_int_equal(
      core_config_parse(text, sizeof text - 1, "demo.json", f->dir, &cfg, &err),
      TWIN_ERR_CONFIG);
  assert_null(cfg);
  assert_non_null(strstr(err.msg, "invalid JSON"));
}

static void top_level_must_be_an_object(void **state)
{
  expect_error(*state, "[\"deggendorf\"]",
               "demo.json: expected an object such as {\"towns\": [...]} at "
               "the top level, got an array");
}

/* ---- unknown keys ----------------------------------------------------- */

static void unknown_top_level_key_lists_the_known_ones(void **state)
{
  expect_error(*state, "{\"town\": [], \"towns\": []}",
               "demo.json: town: unknown key (known: data_dir, plugin_path, "
               "http, towns); did you mean \"towns\"?");
}

static void unknown_town_key_lists_the_known_ones(void **state)
{
  expect_error(*state,
               "{\"towns\": [{\"id\": \"a\", \"timzone\": \"Europe/Berlin\"}]}",
               "demo.json: towns[0].timzone: unknown key (known: id, name, "
               "timezone, location, scripts, data, plugins, rules, api, deadlines); did "
               "you mean \"timezone\"?");
}

static void unknown_location_key_is_refused(void **state)
{
  expect_error(*state,
               TOWN(", \"location\": {\"lat\": 1, \"lon\": 2, \"alt\": 3}"),
               "towns[0].location.alt: unknown key (known: lat, lon)");
}

static void unknown_plugin_key_is_refused(void **state)
{
  expect_error(*state, TOWN(", \"plugins\": {\"parking\": {\"tick\": 5}}"),
               "towns[0].plugins.parking.tick: unknown key (known: config, "
               "tick_s, enabled, fetch_s, fetch_timeout_s)");
}

static void odd_unknown_keys_are_quoted_in_the_path(void **state)
{
  expect_error(*state, "{\"a b\": 1, \"towns\": []}",
               "demo.json: [\"a b\"]: unknown key");
}

/* ---- towns ------------------------------------------------------------ */

static void towns_are_required(void **state)
{
  expect_error(*state, "{}", "demo.json: towns: required");
}

static void towns_must_be_an_array(void **state)
{
  expect_error(*state, "{\"towns\": {\"id\": \"a\"}}",
               "demo.json: towns: expected an array of towns");
}

static void empty_towns_is_refused(void **state)
{
  expect_error(*state, "{\"towns\": []}",
               "demo.json: towns: a host needs at least one town");
}

static void town_entry_of_wrong_type_is_refused(void **state)
{
  expect_error(*state, "{\"towns\": [42]}",
               "demo.json: towns[0]: expected a town object or the name of a "
               "town pack folder, got 42");
}

static void town_id_is_required(void **state)
{
  expect_error(*state, "{\"towns\": [{\"timezone\": \"UTC\"}]}",
               "demo.json: towns[0].id: required");
}

static void town_id_must_be_a_valid_id(void **state)
{
  expect_error(*state,
               "{\"towns\": [{\"id\": \"Deggendorf\", \"timezone\": \"UTC\"}]}",
               "demo.json: towns[0].id: \"Deggendorf\" is not a valid id");
}

static void town_id_must_be_a_string(void **state)
{
  expect_error(*state, "{\"towns\": [{\"id\": 7, \"timezone\": \"UTC\"}]}",
               "demo.json: towns[0].id: expected a short name such as "
               "\"deggendorf\", got 7");
}

static void long_values_are_shortened_in_messages(void **state)
{
  expect_error(*state,
               "{\"towns\": [{\"id\": \"abcdefghijklmnopqrstuvwxyz0123456789"
               "abcdefghijklmnopqrstuvwxyz\", \"timezone\": \"UTC\"}]}",
               "towns[0].id: \"abcdefghijklmnopqrstuvwxyz0123456789abcdefghi"
               "...\" is not a valid id");
}

static void duplicate_town_ids_name_both_indexes(void **state)
{
  expect_error(*state,
               "{\"towns\": [{\"id\": \"a\", \"timezone\": \"UTC\"},\n"
               "  {\"id\": \"b\", \"timezone\": \"UTC\"},\n"
               "  {\"id\": \"a\", \"timezone\": \"UTC\"}]}",
               "demo.json: towns[2].id: \"a\" is already used by towns[0]");
}

static void town_name_must_not_be_empty(void **state)
{
  expect_error(*state, TOWN(", \"name\": \"\""),
               "demo.json: towns[0].name: must not be empty");
}

static void error_in_a_later_town_refuses_the_whole_config(void **state)
{
  expect_error(*state,
               "{\"towns\": [{\"id\": \"a\", \"timezone\": \"UTC\", "
               "\"plugins\": {\"p\": {\"config\": {\"k\": [1]}}}},\n"
               " {\"id\": \"b\", \"timezone\": \"UTC\", \"plugins\": "
               "{\"sensors\": {\"tick_s\": \"60\"}}}]}",
               "demo.json: towns[1].plugins.sensors.tick_s: expected a whole "
               "number of seconds (1..86400), got \"60\"");
}

/* ---- timezones -------------------------------------------------------- */

static void timezone_is_required(void **state)
{
  expect_error(*state, "{\"towns\": [{\"id\": \"a\"}]}",
               "demo.json: towns[0].timezone: required; an IANA name such as "
               "\"Europe/Berlin\"");
}

static void timezone_must_be_a_string(void **state)
{
  expect_error(*state,
               "{\"towns\": [{\"id\": \"a\", \"timezone\": \"UTC\"}, "
               "{\"id\": \"b\", \"timezone\": 42}]}",
               "demo.json: towns[1].timezone: expected a string such as "
               "\"Europe/Berlin\", got 42");
}

static void timezone_must_be_in_the_database(void **state)
{
  expect_error(*state,
               "{\"towns\": [{\"id\": \"a\", \"timezone\": \"Europe/Berln\"}]}",
               "demo.json: towns[0].timezone: \"Europe/Berln\" is not in the "
               "timezone database");
}

static void timezone_database_follows_tzdir(void **state)
{
  fixture *f = *state;
  write_zone(f->zoneinfo, "Europe/Passau", "TZif2 fake zone");
  core_config *cfg = parse_ok(
      f, "{\"towns\": [{\"id\": \"a\", \"timezone\": \"Europe/Passau\"}]}");
  assert_str(cfg->towns[0].timezone, "Europe/Passau");
  core_config_free(cfg);
}

static void timezone_may_not_climb_out_of_the_database(void **state)
{
  expect_error(*state,
               "{\"towns\": [{\"id\": \"a\", \"timezone\": "
               "\"../zoneinfo/UTC\"}]}",
               "demo.json: towns[0].timezone: \"../zoneinfo/UTC\" is not a "
               "timezone name");
}

static void timezone_may_not_be_absolute(void **state)
{
  expect_error(*state,
               "{\"towns\": [{\"id\": \"a\", \"timezone\": \"/etc/passwd\"}]}",
               "towns[0].timezone: \"/etc/passwd\" is not a timezone name");
}

static void timezone_database_files_that_are_not_zones_are_refused(void **state)
{
  expect_error(*state,
               "{\"towns\": [{\"id\": \"a\", \"timezone\": \"leapseconds\"}]}",
               "towns[0].timezone: \"leapseconds\" is not in the timezone "
               "database");
}

static void timezone_folder_is_not_a_zone(void **state)
{
  expect_error(*state,
               "{\"towns\": [{\"id\": \"a\", \"timezone\": \"Europe\"}]}",
               "towns[0].timezone: \"Europe\" is not in the timezone database");
}

static void without_a_database_area_city_names_are_accepted(void **state)
{
  fixture *f = *state;
  setenv("TZDIR", "/nonexistent-zoneinfo", 1);
  core_config *cfg = parse_ok(
      f, "{\"towns\": [{\"id\": \"a\", \"timezone\": \"America/New_York\"}]}");
  assert_str(cfg->towns[0].timezone, "America/New_York");
  core_config_free(cfg);
}

static void without_a_database_other_shapes_are_refused(void **state)
{
  fixture *f = *state;
  setenv("TZDIR", "/nonexistent-zoneinfo", 1);
  expect_error(f, "{\"towns\": [{\"id\": \"a\", \"timezone\": \"Berlin\"}]}",
               "towns[0].timezone: \"Berlin\" is not a timezone name shaped "
               "Area/City");
}

/* ---- locations -------------------------------------------------------- */

static void location_must_be_an_object(void **state)
{
  expect_error(*state, TOWN(", \"location\": [48.8, 12.9]"),
               "demo.json: towns[0].location: expected an object such as "
               "{\"lat\": 48.83, \"lon\": 12.96}, got an array");
}

static void latitude_is_required(void **state)
{
  expect_error(*state, TOWN(", \"location\": {\"lon\": 12.9}"),
               "demo.json: towns[0].location.lat: required");
}

static void latitude_must_be_a_number(void **state)
{
  expect_error(*state, TOWN(", \"location\": {\"lat\": \"48\", \"lon\": 1}"),
               "demo.json: towns[0].location.lat: expected a number of "
               "degrees north, got \"48\"");
}

static void latitude_beyond_90_is_refused(void **state)
{
  expect_error(*state, TOWN(", \"location\": {\"lat\": 90.5, \"lon\": 12}"),
               "demo.json: towns[0].location.lat: 90.5 is outside -90..90");
}

static void longitude_beyond_180_is_refused(void **state)
{
  expect_error(*state, TOWN(", \"location\": {\"lat\": 48, \"lon\": -180.1}"),
               "demo.json: towns[0].location.lon: -180.1 is outside "
               "-180..180");
}

/* ---- town plugins ----------------------------------------------------- */

static void plugins_must_be_an_object(void **state)
{
  expect_error(*state, TOWN(", \"plugins\": [\"parking\"]"),
               "demo.json: towns[0].plugins: expected an object mapping "
               "plugin names to their settings, got an array");
}

static void plugin_name_must_be_a_valid_id(void **state)
{
  expect_error(*state, TOWN(", \"plugins\": {\"Parking\": {}}"),
               "demo.json: towns[0].plugins.Parking: not a valid plugin name");
}

static void plugin_entry_must_be_an_object(void **state)
{
  expect_error(*state, TOWN(", \"plugins\": {\"parking\": true}"),
               "demo.json: towns[0].plugins.parking: expected an object such "
               "as {\"config\": {...}, \"tick_s\": 60, \"enabled\": true}, "
               "got true");
}

static void plugin_config_must_be_an_object(void **state)
{
  expect_error(*state, TOWN(", \"plugins\": {\"parking\": {\"config\": 5}}"),
               "demo.json: towns[0].plugins.parking.config: expected an "
               "object with the plugin's settings, got 5");
}

static void tick_must_be_an_integer(void **state)
{
  expect_error(*state, TOWN(", \"plugins\": {\"sensors\": {\"tick_s\": 60.0}}"),
               "demo.json: towns[0].plugins.sensors.tick_s: expected a whole "
               "number of seconds (1..86400), got 60.0");
}

static void tick_of_zero_is_refused(void **state)
{
  expect_error(*state, TOWN(", \"plugins\": {\"sensors\": {\"tick_s\": 0}}"),
               "demo.json: towns[0].plugins.sensors.tick_s: 0 is outside "
               "1..86400 seconds");
}

static void tick_beyond_a_day_is_refused(void **state)
{
  expect_error(*state,
               TOWN(", \"plugins\": {\"sensors\": {\"tick_s\": 86401}}"),
               "demo.json: towns[0].plugins.sensors.tick_s: 86401 is outside "
               "1..86400 seconds");
}

static void huge_tick_is_refused(void **state)
{
  expect_error(
      *state,
      TOWN(", \"plugins\": {\"sensors\": {\"tick_s\": 9223372036854775807}}"),
      "tick_s: 9223372036854775807 is outside 1..86400 seconds");
}

static void enabled_must_be_a_boolean(void **state)
{
  expect_error(*state,
               TOWN(", \"plugins\": {\"sensors\": {\"enabled\": \"yes\"}}"),
               "demo.json: towns[0].plugins.sensors.enabled: expected true or "
               "false, got \"yes\"");
}

/* ---- paths ------------------------------------------------------------ */

static void data_dir_must_be_a_string(void **state)
{
  expect_error(*state, "{\"data_dir\": 1, \"towns\": []}",
               "demo.json: data_dir: expected a folder name, got 1");
}

static void data_dir_must_not_be_empty(void **state)
{
  expect_error(*state, "{\"data_dir\": \"\", \"towns\": []}",
               "demo.json: data_dir: must not be empty");
}

static void plugin_path_must_be_an_array(void **state)
{
  expect_error(*state, "{\"plugin_path\": \"/opt\", \"towns\": []}",
               "demo.json: plugin_path: expected an array of folders");
}

static void plugin_path_entries_must_be_strings(void **state)
{
  expect_error(*state, "{\"plugin_path\": [\"/opt\", null], \"towns\": []}",
               "demo.json: plugin_path[1]: expected a folder name, got null");
}

static void town_scripts_must_be_a_string(void **state)
{
  expect_error(*state, TOWN(", \"scripts\": [\"a\"]"),
               "demo.json: towns[0].scripts: expected a folder of the town's "
               "scripts, got an array");
}

static void town_data_must_be_a_string(void **state)
{
  expect_error(*state, TOWN(", \"data\": false"),
               "demo.json: towns[0].data: expected a folder for the town's "
               "data, got false");
}

int main(void)
{
#define T(name) cmocka_unit_test_setup_teardown(name, setup, teardown)
  const struct CMUnitTest tests[] = {
      T(demo_config_loads_every_field),
      T(town_is_found_by_id),
      T(unknown_town_id_finds_nothing),
      T(freeing_null_config_is_harmless),
      T(data_dir_defaults_to_data_beside_the_config),
      T(relative_data_dir_resolves_against_the_config_folder),
      T(absolute_paths_stay_absolute),
      T(paths_relative_to_the_current_folder_stay_short),
      T(plugin_path_entries_resolve_against_the_config_folder),
      T(plugin_path_is_empty_when_absent),
      T(inline_town_scripts_default_to_config_folder_and_id),
      T(town_data_defaults_to_data_dir_and_id),
      T(town_scripts_and_data_resolve_against_the_config),
      T(town_name_defaults_to_its_id),
      T(town_api_anonymous_read_is_read_and_defaults_off),
      T(town_api_must_be_an_object_of_known_keys),
      T(town_pack_api_is_read_from_town_json),
      T(http_defaults_without_an_http_object),
      T(http_fields_are_read),
      T(http_must_be_an_object_of_known_keys),
      T(http_listen_must_be_a_numeric_address),
      T(http_numbers_out_of_range_are_refused),
      T(town_rule_limits_are_read_and_default_to_zero),
      T(town_rule_limits_out_of_range_are_refused),
      T(location_is_optional),
      T(location_edges_are_allowed),
      T(town_source_is_the_config_name),
      T(parse_without_a_name_says_config),
      T(plugin_config_is_kept_as_compact_json),
      T(plugin_without_config_gets_an_empty_object),
      T(plugin_defaults_are_enabled_and_own_tick),
      T(plugin_tick_limits_are_inclusive),
      T(plugins_keep_their_order),
      T(empty_plugins_object_means_no_plugins),
      T(town_pack_string_reads_town_json_from_the_folder),
      T(town_pack_scripts_default_to_the_pack_folder),
      T(town_pack_data_defaults_under_the_host_data_dir),
      T(town_pack_paths_resolve_against_the_pack_folder),
      T(town_pack_source_is_its_town_json),
      T(town_pack_errors_name_its_town_json),
      T(missing_town_pack_names_the_file_it_tried),
      T(malformed_town_pack_names_line_and_column),
      T(town_pack_must_hold_an_object),
      T(empty_town_pack_name_is_refused),
      T(town_pack_duplicating_an_inline_town_names_both),
      T(inline_town_duplicating_a_town_pack_names_its_file),
      T(missing_file_is_not_found),
      T(folder_instead_of_file_is_refused),
      T(loaded_file_errors_name_the_file_as_given),
      T(malformed_json_names_line_and_column),
      T(duplicate_keys_are_refused_with_position),
      T(empty_text_is_malformed),
      T(embedded_nul_is_malformed),
      T(top_level_must_be_an_object),
      T(unknown_top_level_key_lists_the_known_ones),
      T(unknown_town_key_lists_the_known_ones),
      T(unknown_location_key_is_refused),
      T(unknown_plugin_key_is_refused),
      T(odd_unknown_keys_are_quoted_in_the_path),
      T(towns_are_required),
      T(towns_must_be_an_array),
      T(empty_towns_is_refused),
      T(town_entry_of_wrong_type_is_refused),
      T(town_id_is_required),
      T(town_id_must_be_a_valid_id),
      T(town_id_must_be_a_string),
      T(long_values_are_shortened_in_messages),
      T(duplicate_town_ids_name_both_indexes),
      T(town_name_must_not_be_empty),
      T(error_in_a_later_town_refuses_the_whole_config),
      T(timezone_is_required),
      T(timezone_must_be_a_string),
      T(timezone_must_be_in_the_database),
      T(timezone_database_follows_tzdir),
      T(timezone_may_not_climb_out_of_the_database),
      T(timezone_may_not_be_absolute),
      T(timezone_database_files_that_are_not_zones_are_refused),
      T(timezone_folder_is_not_a_zone),
      T(without_a_database_area_city_names_are_accepted),
      T(without_a_database_other_shapes_are_refused),
      T(location_must_be_an_object),
      T(latitude_is_required),
      T(latitude_must_be_a_number),
      T(latitude_beyond_90_is_refused),
      T(longitude_beyond_180_is_refused),
      T(plugins_must_be_an_object),
      T(plugin_name_must_be_a_valid_id),
      T(plugin_entry_must_be_an_object),
      T(plugin_config_must_be_an_object),
      T(tick_must_be_an_integer),
      T(tick_of_zero_is_refused),
      T(tick_beyond_a_day_is_refused),
      T(huge_tick_is_refused),
      T(enabled_must_be_a_boolean),
      T(data_dir_must_be_a_string),
      T(data_dir_must_not_be_empty),
      T(plugin_path_must_be_an_array),
      T(plugin_path_entries_must_be_strings),
      T(town_scripts_must_be_a_string),
      T(town_data_must_be_a_string),
  };
#undef T
  return cmocka_run_group_tests(tests, NULL, NULL);
}
