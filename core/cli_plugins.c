/*
 * cli_plugins.c — `twinhost plugins list|info|check`: the plugins found on
 * the search path, the refused files with their reasons, each town's
 * plugins with their state; one plugin's descriptor, config schema and
 * declared ops; and the one-line check of a file, loaded in a child
 * process so a broken plugin cannot harm the asking one.
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

#include "host.h"
#include "schema.h"

/* ---- plugins ------------------------------------------------------------- */

static int plugins_list(cli_opts *o)
{
  core_host *h;
  if (cli_open_host(o, CORE_HOST_STORE, &h))
    return CLI_FAIL;
  json_t *out = json_object(), *loaded = json_array(), *refused = json_array(),
         *towns = json_array(), *path = json_array();
  const char *dirs[64];
  size_t nd = core_host_plugin_dirs(h->cfg, dirs, 64);
  for (size_t i = 0; i < nd; i++)
    json_array_append_new(path, json_string(dirs[i]));
  for (size_t i = 0; i < h->n_plugins; i++)
    json_array_append_new(loaded, core_plugin_json(&h->plugins[i], 1, 0));
  for (size_t i = 0; i < h->n_refused; i++)
    json_array_append_new(refused,
                          json_pack("{s:s,s:s}", "file", h->refused[i].path,
                                    "reason", h->refused[i].reason));
  MDB_txn *txn = NULL;
  core_err err;
  if (core_store_begin_read(h->store, &txn, &err))
    txn = NULL;
  for (size_t i = 0; i < h->cfg->n_towns; i++) {
    const core_town *t = &h->cfg->towns[i];
    for (size_t j = 0; j < t->n_plugins; j++) {
      const char *name = t->plugins[j].name;
      core_instance *ci = core_host_instance(h, t->id, name);
      json_t *row = json_pack("{s:s,s:s,s:b}", "town", t->id, "plugin", name,
                              "enabled", t->plugins[j].enabled);
      if (!t->plugins[j].enabled) {
        json_object_set_new(row, "state", json_string("off"));
      } else if (!ci) {
        json_object_set_new(row, "state", json_string("missing"));
        json_object_set_new(row, "reason",
                            json_string("no loaded plugin has this name; "
                                        "see refused and search_path"));
      } else if (ci->state == CORE_INSTANCE_DISABLED) {
        json_object_set_new(row, "state", json_string("disabled"));
        json_object_set_new(row, "reason", json_string(ci->reason));
      } else {
        /* The state the last `serve` recorded; "configured" when none has
         * run this plugin for the town yet. */
        char *st = txn ? core_host_stored_status(h, txn, t->id, name) : NULL;
        json_t *stored = st ? json_loads(st, 0, NULL) : NULL;
        free(st);
        json_t *state = json_object_get(stored, "state");
        json_object_set_new(row, "state",
                            state ? json_incref(state)
                                  : json_string("configured"));
        const char *why = json_string_value(json_object_get(stored, "reason"));
        if (why && *why)
          json_object_set_new(row, "reason", json_string(why));
        if (stored)
          json_object_set_new(row, "last_run", stored);
      }
      json_array_append_new(towns, row);
    }
  }
  if (txn)
    core_store_end_read(h->store, txn);
  json_object_set_new(out, "search_path", path);
  json_object_set_new(out, "plugins", loaded);
  json_object_set_new(out, "refused", refused);
  json_object_set_new(out, "towns", towns);
  cli_print_json(out);
  json_decref(out);
  core_host_close(h);
  return CLI_OK;
}

static int plugins_info(cli_opts *o)
{
  const char *name = o->npos > 1 ? o->pos[1] : NULL;
  if (!name) {
    cli_error("plugins info", "name a plugin: twinhost plugins info NAME");
    return CLI_USAGE;
  }
  core_host *h;
  if (cli_open_host(o, o->town ? CORE_HOST_INSTANCES : CORE_HOST_LOAD, &h))
    return CLI_FAIL;
  int rc = CLI_FAIL;
  core_plugin *p = core_host_plugin(h, name);
  if (!p) {
    cli_error("plugins info",
              "no plugin named '%s' was loaded; see "
              "`twinhost plugins list`",
              name);
    goto out;
  }
  json_t *j = core_plugin_json(p, 1, 1);
  char *described = core_schema_describe(p->desc.config_schema);
  if (described)
    json_object_set_new(j, "config_help", json_string(described));
  free(described);
  json_t *towns = json_array();
  for (size_t i = 0; i < h->cfg->n_towns; i++)
    for (size_t k = 0; k < h->cfg->towns[i].n_plugins; k++)
      if (!strcmp(h->cfg->towns[i].plugins[k].name, name))
        json_array_append_new(towns, json_string(h->cfg->towns[i].id));
  json_object_set_new(j, "towns", towns);
  if (o->town) {
    core_instance *ci;
    core_err err;
    char *reply = NULL;
    if (core_host_find(h, o->town, name, &ci, &err) ||
        core_host_describe(h, ci, &reply, &err)) {
      cli_error("plugins info", "%s", err.msg);
      json_decref(j);
      goto out;
    }
    json_t *d = json_loads(reply, JSON_DECODE_ANY, NULL);
    json_object_set_new(j, "instance", d ? d : json_null());
    free(reply);
  }
  cli_print_json(j);
  json_decref(j);
  rc = CLI_OK;
out:
  core_host_close(h);
  return rc;
}

/* Load the file in a child process, so a plugin whose constructor crashes
 * or misbehaves cannot harm the process asking. */
static int plugins_check(cli_opts *o)
{
  const char *file = o->npos > 1 ? o->pos[1] : NULL;
  if (!file) {
    cli_error("plugins check", "name a file: twinhost plugins check FILE.so");
    return CLI_USAGE;
  }
  int fds[2];
  if (pipe(fds)) {
    cli_error("plugins check", "pipe: %s", strerror(errno));
    return CLI_FAIL;
  }
  fflush(NULL);
  pid_t pid = fork();
  if (pid == 0) {
    close(fds[0]);
    core_plugin p;
    core_err err;
    char line[1200];
    int st = core_plugin_load(file, &p, &err);
    if (st)
      snprintf(line, sizeof line, "E%s", err.msg);
    else
      snprintf(line, sizeof line,
               "O%s: plugin '%s' %s, use case %s, ABI %u.%u: a host would "
               "load it",
               file, p.desc.name, p.desc.version, p.desc.use_case,
               p.desc.abi_major, p.desc.abi_minor);
    if (write(fds[1], line, strlen(line)) < 0)
      _exit(3);
    _exit(st ? 1 : 0);
  }
  close(fds[1]);
  char buf[1200];
  size_t n = 0;
  ssize_t r;
  while (pid > 0 && (r = read(fds[0], buf + n, sizeof buf - 1 - n)) > 0)
    n += (size_t)r;
  buf[n] = 0;
  close(fds[0]);
  int status = 0;
  if (pid < 0 || waitpid(pid, &status, 0) < 0) {
    cli_error("plugins check", "cannot start a checker process");
    return CLI_FAIL;
  }
  if (WIFSIGNALED(status)) {
    cli_error("plugins check",
              "%s: crashed while loading (signal %d): its "
              "constructor or entry point is broken",
              file, WTERMSIG(status));
    return CLI_FAIL;
  }
  if (n && buf[0] == 'O') {
    printf("ok: %s\n", buf + 1);
    return CLI_OK;
  }
  cli_error("plugins check", "%s", n ? buf + 1 : "checker said nothing");
  return CLI_FAIL;
}

int cli_cmd_plugins(cli_opts *o)
{
  const char *sub = o->npos ? o->pos[0] : NULL;
  if (sub && !strcmp(sub, "list"))
    return plugins_list(o);
  if (sub && !strcmp(sub, "info"))
    return plugins_info(o);
  if (sub && !strcmp(sub, "check"))
    return plugins_check(o);
  cli_error("plugins", "%s%s%s; use list, info NAME or check FILE",
            sub ? "unknown subcommand '" : "a subcommand is needed",
            sub ? sub : "", sub ? "'" : "");
  return CLI_USAGE;
}
