/*
 * cli_store.c — reading and copying the store: `twinhost entities`,
 * `history` and `events` (the same read side as the HTTP API, core/api.c),
 * and `backup` and `restore`.
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

#include "api.h"
#include "host.h"

/* ---- entities, history, events ------------------------------------------ */

static int store_read(cli_opts *o, const char *cmd, core_host **h,
                      MDB_txn **txn)
{
  if (!cli_need(cmd, o->town, "--town"))
    return CLI_USAGE;
  if (cli_open_host(o, CORE_HOST_STORE, h))
    return CLI_FAIL;
  if (!core_config_town((*h)->cfg, o->town)) {
    core_instance *ci;
    core_err err;
    core_host_find(*h, o->town, "", &ci, &err);
    cli_error(cmd, "%s", err.msg);
    core_host_close(*h);
    return CLI_FAIL;
  }
  core_err err;
  if (core_store_begin_read((*h)->store, txn, &err)) {
    cli_error(cmd, "%s", err.msg);
    core_host_close(*h);
    return CLI_FAIL;
  }
  return CLI_OK;
}

static void store_done(core_host *h, MDB_txn *txn)
{
  core_store_end_read(h->store, txn);
  core_host_close(h);
}

/* An API error as a CLI error: a bad option is a usage error (exit 2). */
static int api_cli_error(const char *cmd, int st, const api_error *e)
{
  if (e->field[0] && strncmp(e->message, e->field, strlen(e->field)))
    cli_error(cmd, "--%s: %s", e->field, e->message);
  else
    cli_error(cmd, "%s", e->message);
  return st == 400 ? CLI_USAGE : CLI_FAIL;
}

static void add_arg(api_arg *v, size_t *n, const char *name, const char *value)
{
  if (value)
    v[(*n)++] = (api_arg){name, value};
}

/* Every entity (the API's pages followed to the end), or the one --id
 * names. */
int cli_cmd_entities(cli_opts *o)
{
  const char *cmd = "entities";
  core_host *h;
  MDB_txn *txn;
  int rc = store_read(o, cmd, &h, &txn);
  if (rc)
    return rc;
  const core_town *town = core_config_town(h->cfg, o->town);
  json_t *list = json_array(), *page = NULL;
  api_error e;
  int st = 0;
  if (o->id) {
    if (!o->plugin || !o->type) {
      cli_error(cmd, "--id needs --plugin and --type");
      json_decref(list);
      store_done(h, txn);
      return CLI_USAGE;
    }
    st = api_entity(h, txn, town, o->plugin, o->type, o->id, &page, &e);
    if (!st)
      json_array_append_new(list, page);
  } else {
    char cursor[1100] = "";
    for (;;) {
      api_arg v[8];
      size_t n = 0;
      add_arg(v, &n, "plugin", o->plugin);
      add_arg(v, &n, "type", o->type);
      add_arg(v, &n, "filter", o->filter);
      add_arg(v, &n, "near", o->near);
      add_arg(v, &n, "radius_m", o->radius);
      add_arg(v, &n, "limit", "1000");
      add_arg(v, &n, "cursor", cursor[0] ? cursor : NULL);
      api_args q = {v, n};
      if ((st = api_entities(h, txn, town, &q, &page, &e)))
        break;
      json_array_extend(list, json_object_get(page, "entities"));
      const char *next = json_string_value(json_object_get(page, "next"));
      if (next)
        snprintf(cursor, sizeof cursor, "%s", next);
      json_decref(page);
      if (!next)
        break;
    }
  }
  if (st)
    rc = api_cli_error(cmd, st, &e);
  else
    cli_print_json(list);
  json_decref(list);
  store_done(h, txn);
  return rc;
}

/* An attribute's history, following the API's pages up to --limit (0 or
 * none: all of it). */
int cli_cmd_history(cli_opts *o)
{
  const char *cmd = "history";
  if (!cli_need(cmd, o->plugin, "--plugin") || !cli_need(cmd, o->type, "--type") ||
      !cli_need(cmd, o->id, "--id") || !cli_need(cmd, o->attr, "--attr"))
    return CLI_USAGE;
  api_error e;
  long limit = 0;
  if (o->limit && api_parse_count("--limit", o->limit, 0, LONG_MAX, &limit, &e))
    return api_cli_error(cmd, 400, &e);
  core_host *h;
  MDB_txn *txn;
  int rc = store_read(o, cmd, &h, &txn);
  if (rc)
    return rc;
  const core_town *town = core_config_town(h->cfg, o->town);
  json_t *list = json_array(), *page;
  char from[64] = "", count[32];
  int st;
  for (;;) {
    long want = limit ? limit - (long)json_array_size(list) : 100000;
    snprintf(count, sizeof count, "%ld", want < 100000 ? want : 100000);
    api_arg v[6];
    size_t n = 0;
    add_arg(v, &n, "from", from[0] ? from : o->from);
    add_arg(v, &n, "to", o->to);
    add_arg(v, &n, "limit", count);
    add_arg(v, &n, "every", o->every);
    add_arg(v, &n, "agg", o->agg);
    api_args q = {v, n};
    if ((st = api_history(h, txn, town, o->plugin, o->type, o->id, o->attr, &q,
                          &page, &e)))
      break;
    json_array_extend(list, json_object_get(page, "points"));
    const char *next = json_string_value(json_object_get(page, "next"));
    if (next)
      snprintf(from, sizeof from, "%s", next);
    json_decref(page);
    if (!next || (limit && (long)json_array_size(list) >= limit))
      break;
  }
  if (st)
    rc = api_cli_error(cmd, st, &e);
  else
    cli_print_json(list);
  json_decref(list);
  store_done(h, txn);
  return rc;
}

int cli_cmd_events(cli_opts *o)
{
  core_host *h;
  MDB_txn *txn;
  int rc = store_read(o, "events", &h, &txn);
  if (rc)
    return rc;
  api_arg v[1];
  size_t n = 0;
  add_arg(v, &n, "limit", o->limit);
  api_args q = {v, n};
  api_error e;
  json_t *out;
  int st = api_events(h, txn, core_config_town(h->cfg, o->town), &q, &out, &e);
  if (st)
    rc = api_cli_error("events", st, &e);
  else
    cli_print_json(json_object_get(out, "events"));
  json_decref(out);
  store_done(h, txn);
  return rc;
}

/* ---- backup and restore ------------------------------------------------- */

int cli_cmd_backup(cli_opts *o)
{
  if (!o->npos) {
    cli_error("backup", "name the folder: twinhost backup DIR");
    return CLI_USAGE;
  }
  core_host *h;
  if (cli_open_host(o, CORE_HOST_STORE, &h))
    return CLI_FAIL;
  core_err err;
  int rc = core_store_backup(h->store, o->pos[0], &err);
  if (rc)
    cli_error("backup", "%s", err.msg);
  else {
    json_t *j = json_pack("{s:s,s:s}", "backup", o->pos[0], "status", "ok");
    cli_print_json(j);
    json_decref(j);
  }
  core_host_close(h);
  return rc ? CLI_FAIL : CLI_OK;
}

int cli_cmd_restore(cli_opts *o)
{
  if (!o->npos) {
    cli_error("restore", "name the backup folder: twinhost restore DIR");
    return CLI_USAGE;
  }
  core_config *cfg;
  core_err err;
  if (core_config_load(cli_config_path(o), &cfg, &err)) {
    cli_error("config", "%s", err.msg);
    return CLI_FAIL;
  }
  int rc = CLI_FAIL;
  char *lockpath = core_path_join(cfg->data_dir, "serve.lock");
  core_mkdirs(cfg->data_dir, NULL);
  int fd = open(lockpath, O_RDWR | O_CREAT, 0644);
  if (fd < 0 || flock(fd, LOCK_EX | LOCK_NB)) {
    cli_error("restore", "a twinhost serve is running on %s; stop it first",
              cfg->data_dir);
    goto out;
  }
  if (core_store_restore(cfg->data_dir, o->pos[0], &err)) {
    cli_error("restore", "%s", err.msg);
    goto out;
  }
  json_t *done = json_pack("{s:s,s:s,s:s}", "restored", o->pos[0], "into",
                           cfg->data_dir, "status", "ok");
  cli_print_json(done);
  json_decref(done);
  rc = CLI_OK;
out:
  if (fd >= 0)
    close(fd);
  free(lockpath);
  core_config_free(cfg);
  return rc;
}
