/*
 * cli_script.c — `twinhost script check|reload|status|replay TOWN`: a
 * town's Lua rules checked in a sandbox, reloaded in a running serve,
 * their stored status, and recorded observations replayed through them on
 * a snapshot without changing anything.
 */
#include "cli.h"

#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/file.h>
#include <sys/wait.h>
#include <unistd.h>

#include <signal.h>

#include "host.h"
#include "rules.h"
#include "script.h"

/* ---- town rules ---------------------------------------------------------- */

static const core_town *script_town(const char *cmd, core_config *cfg,
                                    const char *id)
{
  if (!id) {
    cli_error(cmd, "name a town: twinhost script "
                   "<check|reload|status|replay> TOWN");
    return NULL;
  }
  core_err err;
  const core_town *t = core_config_town_or_err(cfg, id, &err);
  if (!t)
    cli_error(cmd, "%s", err.msg);
  return t;
}

static core_script_limits town_limits(const core_town *t)
{
  core_script_limits l = {t->rule_instructions, t->rule_wall_ms,
                          (size_t)t->rule_memory_mib << 20};
  return l;
}

static int script_check(cli_opts *o, const char *cmd, int print)
{
  core_config *cfg;
  core_err err;
  if (core_config_load(cli_config_path(o), &cfg, &err)) {
    cli_error("config", "%s", err.msg);
    return CLI_FAIL;
  }
  int rc = CLI_USAGE;
  const core_town *t = script_town(cmd, cfg, o->npos > 1 ? o->pos[1] : NULL);
  if (t) {
    core_script_limits l = town_limits(t);
    char *report = core_script_check(t, &l, &err);
    if (!report) {
      cli_error(cmd, "%s", err.msg);
      rc = CLI_FAIL;
    } else {
      if (print) {
        json_t *j = json_loads(report, 0, NULL);
        cli_print_json(j);
        json_decref(j);
      }
      free(report);
      rc = CLI_OK;
    }
  }
  core_config_free(cfg);
  return rc;
}

/* Check the new rules, then signal the serve that owns the data folder. */
static int script_reload(cli_opts *o)
{
  int rc = script_check(o, "script reload", 0);
  if (rc) {
    if (rc == CLI_FAIL)
      fprintf(stderr, "twinhost: script reload: not reloaded; the running "
                      "rules stay\n");
    return rc;
  }
  core_config *cfg;
  core_err err;
  if (core_config_load(cli_config_path(o), &cfg, &err)) {
    cli_error("config", "%s", err.msg);
    return CLI_FAIL;
  }
  char *lockpath = core_path_join(cfg->data_dir, "serve.lock");
  int fd = open(lockpath, O_RDWR);
  json_t *out = json_pack("{s:s,s:b}", "town", o->pos[1], "checked", 1);
  rc = CLI_OK;
  if (fd < 0 || !flock(fd, LOCK_EX | LOCK_NB)) {
    json_object_set_new(out, "reloaded", json_false());
    json_object_set_new(out, "note",
                        json_string("no serve is running on this data "
                                    "folder; the rules load when it starts"));
  } else {
    char buf[32] = "";
    ssize_t n = pread(fd, buf, sizeof buf - 1, 0);
    long pid = n > 0 ? strtol(buf, NULL, 10) : 0;
    if (pid <= 0 || kill((pid_t)pid, SIGHUP)) {
      cli_error("script reload",
                "cannot signal the serve (pid '%s' in %s): "
                "send it SIGHUP yourself",
                n > 0 ? buf : "?", lockpath);
      rc = CLI_FAIL;
    } else {
      json_object_set_new(out, "reloaded", json_true());
      json_object_set_new(out, "serve_pid", json_integer(pid));
    }
  }
  if (!rc)
    cli_print_json(out);
  json_decref(out);
  if (fd >= 0)
    close(fd);
  free(lockpath);
  core_config_free(cfg);
  return rc;
}

static int script_status(cli_opts *o)
{
  core_host *h;
  if (cli_open_host(o, CORE_HOST_STORE, &h))
    return CLI_FAIL;
  const core_town *t =
      script_town("script status", h->cfg, o->npos > 1 ? o->pos[1] : NULL);
  int rc = t ? CLI_FAIL : CLI_USAGE;
  MDB_txn *txn;
  core_err err;
  if (t && !core_store_begin_read(h->store, &txn, &err)) {
    char *st = core_rules_stored_status(h, txn, t->id);
    core_store_end_read(h->store, txn);
    json_t *j = st ? json_loads(st, 0, NULL) : NULL;
    free(st);
    if (j) {
      cli_print_json(j);
      rc = CLI_OK;
    } else {
      cli_error("script status",
                "no status of %s's rules yet: the serve "
                "stores it while it runs (every 10 s)",
                t->id);
    }
    json_decref(j);
  }
  core_host_close(h);
  return rc;
}

static int script_replay(cli_opts *o)
{
  const char *town = o->npos > 1 ? o->pos[1] : NULL;
  if (!town) {
    cli_error("script replay", "name a town: twinhost script replay TOWN FILE");
    return CLI_USAGE;
  }
  size_t len;
  char *input =
      cli_read_input("script replay", o->npos > 2 ? o->pos[2] : NULL, &len);
  if (!input)
    return CLI_FAIL;
  o->town = town;
  core_host *h;
  if (cli_open_host(o, CORE_HOST_INSTANCES, &h)) {
    free(input);
    return CLI_FAIL;
  }
  int rc = CLI_FAIL;
  const core_town *t = script_town("script replay", h->cfg, town);
  char *report = NULL;
  core_err err;
  if (t && core_rules_replay(h, t, input, len, &report, &err))
    cli_error("script replay", "%s", err.msg);
  else if (report) {
    json_t *j = json_loads(report, 0, NULL);
    cli_print_json(j);
    rc = json_array_size(json_object_get(j, "rejected")) ? CLI_FAIL : CLI_OK;
    json_decref(j);
  }
  free(report);
  free(input);
  core_host_close(h);
  return t ? rc : CLI_USAGE;
}

int cli_cmd_script(cli_opts *o)
{
  const char *sub = o->npos ? o->pos[0] : NULL;
  if (sub && !strcmp(sub, "check"))
    return script_check(o, "script check", 1);
  if (sub && !strcmp(sub, "reload"))
    return script_reload(o);
  if (sub && !strcmp(sub, "status"))
    return script_status(o);
  if (sub && !strcmp(sub, "replay"))
    return script_replay(o);
  cli_error("script", "%s%s%s; use check, reload, status or replay TOWN",
            sub ? "unknown subcommand '" : "a subcommand is needed",
            sub ? sub : "", sub ? "'" : "");
  return CLI_USAGE;
}
