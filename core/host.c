/*
 * host.c — bringing a host up and down: the plugin loader (search path,
 * dlopen, every check that refuses a plugin with a one-line reason), opening
 * each town's enabled plugins with their validated config, and the calls into
 * plugins with the context each runs in.
 */
#include "host.h"

#include <dirent.h>
#include <dlfcn.h>
#include <errno.h>
#include <jansson.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "ctx.h"
#include "schema.h"
#include "script.h"

/* The smallest descriptor a 1.0 plugin can have: up to its last field. */
#define DESC_MIN_SIZE                                                          \
  (offsetof(twin_plugin, describe) + sizeof(((twin_plugin *)0)->describe))

/* Failed ticks in a row before a plugin is disabled for its town. */
#define MAX_TICK_FAILURES 8

static const char *use_cases[] = {"parking", "events", "clubs", "energy",
                                  "sensors", "other",  NULL};

/* ---- loader -------------------------------------------------------------- */

int core_plugin_load(const char *path, core_plugin *out, core_err *err)
{
  memset(out, 0, sizeof *out);
  struct stat sb;
  if (stat(path, &sb))
    return core_err_set(err, TWIN_ERR_NOT_FOUND, "%s: no such file", path);
  if (!S_ISREG(sb.st_mode))
    return core_err_set(err, TWIN_ERR_INVALID, "%s: not a regular file", path);
  dlerror();
  /* A name without '/' would make dlopen search the library path instead. */
  char *local = strchr(path, '/') ? NULL : core_path_join(".", path);
  void *dl = dlopen(local ? local : path, RTLD_NOW | RTLD_LOCAL);
  free(local);
  if (!dl) {
    const char *why = dlerror();
    if (why &&
        (strstr(why, "invalid ELF header") || strstr(why, "file too short")))
      return core_err_set(err, TWIN_ERR_INVALID,
                          "%s: not a shared object (build it with "
                          "`cc -shared -fPIC`)",
                          path);
    return core_err_set(err, TWIN_ERR_INVALID, "%s: cannot load: %s", path,
                        why ? why : "unknown dlopen error");
  }
  twin_plugin_entry_fn entry;
  *(void **)&entry = dlsym(dl, TWIN_PLUGIN_ENTRY_SYMBOL);
  int st;
  if (!entry) {
    st = core_err_set(err, TWIN_ERR_INVALID,
                      "%s: no entry symbol %s (declare it with "
                      "TWIN_PLUGIN_DEFINE and export it)",
                      path, TWIN_PLUGIN_ENTRY_SYMBOL);
    goto fail;
  }
  const twin_plugin *d = entry(TWIN_ABI_MAJOR, TWIN_ABI_MINOR);
  if (!d) {
    st = core_err_set(err, TWIN_ERR_INVALID,
                      "%s: %s() returned no descriptor (the plugin refuses "
                      "this host, ABI %d.%d)",
                      path, TWIN_PLUGIN_ENTRY_SYMBOL, TWIN_ABI_MAJOR,
                      TWIN_ABI_MINOR);
    goto fail;
  }
  /* Check the major before the size: a 2.x struct may be laid out anew. */
  if (d->abi_major != TWIN_ABI_MAJOR) {
    st = core_err_set(err, TWIN_ERR_INVALID,
                      "%s: built for twin ABI %u.%u, this host speaks ABI "
                      "%d.%d (abi_major differs; rebuild the plugin against "
                      "a twin.h of major %d)",
                      path, d->abi_major, d->abi_minor, TWIN_ABI_MAJOR,
                      TWIN_ABI_MINOR, TWIN_ABI_MAJOR);
    goto fail;
  }
  if (d->struct_size < DESC_MIN_SIZE) {
    st = core_err_set(err, TWIN_ERR_INVALID,
                      "%s: descriptor struct_size is %u bytes, ABI %d.0 needs "
                      "at least %zu (set struct_size = sizeof(twin_plugin))",
                      path, d->struct_size, TWIN_ABI_MAJOR, DESC_MIN_SIZE);
    goto fail;
  }
  size_t n =
      d->struct_size < sizeof out->desc ? d->struct_size : sizeof out->desc;
  memcpy(&out->desc, d, n);
  const twin_plugin *c = &out->desc;
  if (!core_valid_id(c->name)) {
    st = core_err_set(err, TWIN_ERR_INVALID,
                      "%s: name '%.40s' is not a valid plugin name "
                      "([a-z0-9_-], 1 to 40 characters)",
                      path, c->name ? c->name : "(null)");
    goto fail;
  }
  if (!c->version || !*c->version) {
    st = core_err_set(err, TWIN_ERR_INVALID, "%s: plugin '%s' has no version",
                      path, c->name);
    goto fail;
  }
  int known = 0;
  for (int i = 0; c->use_case && use_cases[i]; i++)
    known |= !strcmp(c->use_case, use_cases[i]);
  if (!known) {
    st = core_err_set(err, TWIN_ERR_INVALID,
                      "%s: use_case '%.40s' is not one of parking, events, "
                      "clubs, energy, sensors, other",
                      path, c->use_case ? c->use_case : "(null)");
    goto fail;
  }
  if (!c->open || !c->close) {
    st = core_err_set(err, TWIN_ERR_INVALID,
                      "%s: plugin '%s' has no %s callback (open and close are "
                      "required)",
                      path, c->name, !c->open ? "open" : "close");
    goto fail;
  }
  if (c->config_schema) {
    core_err e;
    if (core_schema_check(c->config_schema, &e)) {
      st = core_err_set(err, TWIN_ERR_INVALID,
                        "%s: plugin '%s' has an invalid config schema: %s",
                        path, c->name, e.msg);
      goto fail;
    }
  }
  out->path = strdup(path);
  out->dl = dl;
  return TWIN_OK;
fail:
  dlclose(dl);
  memset(out, 0, sizeof *out);
  return st;
}

void core_plugin_unload(core_plugin *p)
{
  if (p->dl)
    dlclose(p->dl);
  free(p->path);
  memset(p, 0, sizeof *p);
}

size_t core_host_plugin_dirs(const core_config *cfg, const char **dirs,
                             size_t max)
{
  static char env_copy[4096];
  size_t n = 0;
  dirs[n++] = TWIN_BUILD_PLUGIN_DIR;
  dirs[n++] = TWIN_INSTALL_PLUGIN_DIR;
  const char *env = getenv("TWINHOST_PLUGIN_PATH");
  if (env && *env) {
    snprintf(env_copy, sizeof env_copy, "%s", env);
    for (char *save = NULL, *p = strtok_r(env_copy, ":", &save); p && n < max;
         p = strtok_r(NULL, ":", &save))
      dirs[n++] = p;
  }
  for (size_t i = 0; cfg && i < cfg->n_plugin_path && n < max; i++)
    dirs[n++] = cfg->plugin_path[i];
  return n;
}

static int cmp_str(const void *a, const void *b)
{
  return strcmp(*(char *const *)a, *(char *const *)b);
}

static void refuse(core_host *h, const char *path, const char *reason)
{
  core_refusal *r = realloc(h->refused, (h->n_refused + 1) * sizeof *r);
  if (!r)
    return;
  h->refused = r;
  r[h->n_refused].path = strdup(path);
  r[h->n_refused].reason = strdup(reason);
  h->n_refused++;
  core_log(TWIN_LEVEL_WARNING, NULL, NULL, "plugin refused: %s", reason);
}

/* Load every *.so of dir, in name order. */
static void load_dir(core_host *h, const char *dir)
{
  DIR *d = opendir(dir);
  if (!d)
    return;
  char **names = NULL;
  size_t n = 0;
  struct dirent *e;
  while ((e = readdir(d))) {
    size_t len = strlen(e->d_name);
    if (len < 4 || strcmp(e->d_name + len - 3, ".so"))
      continue;
    char **nn = realloc(names, (n + 1) * sizeof *nn);
    if (!nn)
      break;
    names = nn;
    names[n++] = strdup(e->d_name);
  }
  closedir(d);
  if (n)
    qsort(names, n, sizeof *names, cmp_str);
  for (size_t i = 0; i < n; i++) {
    char *path = core_path_join(dir, names[i]);
    free(names[i]);
    int seen = 0; /* the same file reached twice through the path */
    for (size_t j = 0; j < h->n_plugins; j++)
      seen |= !strcmp(h->plugins[j].path, path);
    core_plugin p;
    core_err err;
    if (seen) {
      free(path);
      continue;
    }
    if (core_plugin_load(path, &p, &err)) {
      refuse(h, path, err.msg);
      free(path);
      continue;
    }
    core_plugin *dup = core_host_plugin(h, p.desc.name);
    if (dup) {
      snprintf(err.msg, sizeof err.msg,
               "%s: duplicate plugin name '%s' (already loaded from %s); "
               "remove one of the two files",
               path, p.desc.name, dup->path);
      refuse(h, path, err.msg);
      core_plugin_unload(&p);
      free(path);
      continue;
    }
    core_plugin *np = realloc(h->plugins, (h->n_plugins + 1) * sizeof *np);
    if (!np) {
      core_plugin_unload(&p);
      free(path);
      continue;
    }
    h->plugins = np;
    h->plugins[h->n_plugins++] = p;
    free(path);
  }
  free(names);
}

json_t *core_plugin_json(const core_plugin *p, int full_path, int with_schema)
{
  const twin_plugin *d = &p->desc;
  const char *file = strrchr(p->path, '/');
  char abi[16];
  snprintf(abi, sizeof abi, "%u.%u", d->abi_major, d->abi_minor);
  json_t *o = json_pack(
      "{s:s,s:s,s:s,s:s,s:s,s:s,s:i}", "name", d->name, "version", d->version,
      "use_case", d->use_case, "summary", d->summary ? d->summary : "", "file",
      full_path || !file ? p->path : file + 1, "abi", abi, "tick_interval_s",
      (int)d->tick_interval_s);
  if (o && with_schema) {
    json_t *schema =
        d->config_schema ? json_loads(d->config_schema, 0, NULL) : NULL;
    json_object_set_new(o, "config_schema", schema ? schema : json_null());
  }
  return o;
}

core_plugin *core_host_plugin(core_host *h, const char *name)
{
  for (size_t i = 0; i < h->n_plugins; i++)
    if (!strcmp(h->plugins[i].desc.name, name))
      return &h->plugins[i];
  return NULL;
}

core_instance *core_host_instance(core_host *h, const char *town,
                                  const char *plugin)
{
  for (size_t i = 0; i < h->n_inst; i++)
    if (!strcmp(h->inst[i].town->id, town) &&
        !strcmp(h->inst[i].plugin->desc.name, plugin))
      return &h->inst[i];
  return NULL;
}

int core_host_find(core_host *h, const char *town, const char *plugin,
                   core_instance **out, core_err *err)
{
  *out = NULL;
  const core_town *t = core_config_town_or_err(h->cfg, town, err);
  if (!t)
    return TWIN_ERR_NOT_FOUND;
  core_instance *ci = core_host_instance(h, town, plugin);
  if (!ci) {
    int enabled = 0;
    for (size_t i = 0; i < t->n_plugins; i++)
      enabled |= !strcmp(t->plugins[i].name, plugin) && t->plugins[i].enabled;
    if (enabled)
      return core_err_set(err, TWIN_ERR_NOT_FOUND,
                          "plugin '%s' is enabled for %s but did not start; "
                          "see `twinhost plugins list`",
                          plugin, town);
    return core_err_set(err, TWIN_ERR_NOT_FOUND,
                        "plugin '%s' is not enabled for town '%s'", plugin,
                        town);
  }
  if (!core_instance_usable(h, ci, err))
    return TWIN_ERR_UNAVAILABLE;
  *out = ci;
  return TWIN_OK;
}

int core_instance_usable(core_host *h, core_instance *ci, core_err *err)
{
  pthread_mutex_lock(&h->lock);
  int ok = ci->inst && ci->state != CORE_INSTANCE_DISABLED;
  if (!ok)
    core_err_set(err, TWIN_ERR_UNAVAILABLE, "plugin '%s' is %s for %s%s%s",
                 ci->plugin->desc.name, ci->inst ? "disabled" : "not open",
                 ci->town->id, ci->reason[0] ? ": " : "", ci->reason);
  pthread_mutex_unlock(&h->lock);
  return ok;
}

/* ---- instances ----------------------------------------------------------- */

/* Open one instance. It reads a snapshot; its writes land in their own
 * commit right after it returns, so opening a plugin that writes nothing
 * never waits for the writer of a running host. */
static int open_instance(core_host *h, core_instance *ci, core_err *err)
{
  const twin_plugin *d = &ci->plugin->desc;
  MDB_txn *txn;
  int st = core_store_begin_read(h->store, &txn, err);
  if (st)
    return st;
  core_overlay *ov = core_overlay_new();
  twin_ctx ctx;
  core_ctx_init(&ctx, h, ci, CORE_CTX_WRITE, txn, ov);
  void *inst = NULL;
  st = ov ? d->open(&h->api, &ctx, ci->config_json, strlen(ci->config_json),
                    &inst)
          : TWIN_ERR_NOMEM;
  core_store_end_read(h->store, txn);
  if (st) {
    core_err_set(err, st, "open failed: %s (%s)",
                 ctx.error[0] ? ctx.error : core_status_message(st),
                 core_status_name(st));
  } else {
    st = core_overlay_commit(ov, h->store, err);
    if (st)
      d->close(inst);
    else
      ci->inst = inst;
  }
  core_ctx_done(&ctx);
  core_overlay_free(ov);
  return st;
}

/* Instances of every town (or only of only_town); opened when open. */
static void add_instances(core_host *h, int open, const char *only_town)
{
  size_t total = 0;
  for (size_t i = 0; i < h->cfg->n_towns; i++)
    total += h->cfg->towns[i].n_plugins;
  h->inst = calloc(total ? total : 1, sizeof *h->inst);
  for (size_t i = 0; h->inst && i < h->cfg->n_towns; i++) {
    const core_town *t = &h->cfg->towns[i];
    if (only_town && strcmp(t->id, only_town))
      continue;
    for (size_t j = 0; j < t->n_plugins; j++) {
      const core_town_plugin *tp = &t->plugins[j];
      if (!tp->enabled)
        continue;
      core_plugin *p = core_host_plugin(h, tp->name);
      if (!p) {
        core_log(TWIN_LEVEL_ERROR, t->id, tp->name,
                 "%s: plugin '%s' is enabled but no plugin of that name was "
                 "loaded; see `twinhost plugins list` for the search path "
                 "and refused files",
                 t->source, tp->name);
        continue;
      }
      core_instance *ci = &h->inst[h->n_inst++];
      ci->plugin = p;
      ci->town = t;
      ci->tick_s =
          tp->tick_s >= 0 ? (uint32_t)tp->tick_s : p->desc.tick_interval_s;
      core_err err;
      if (core_schema_apply(p->desc.config_schema, tp->config_json,
                            strlen(tp->config_json), &ci->config_json, &err)) {
        ci->state = CORE_INSTANCE_DISABLED;
        snprintf(ci->reason, sizeof ci->reason,
                 "%s: town '%s', plugin '%s', config: %s (see `twinhost "
                 "plugins info %s`)",
                 t->source, t->id, tp->name, err.msg, tp->name);
        core_log(TWIN_LEVEL_ERROR, t->id, tp->name, "%s", ci->reason);
        continue;
      }
      if (open && open_instance(h, ci, &err)) {
        ci->state = CORE_INSTANCE_DISABLED;
        snprintf(ci->reason, sizeof ci->reason, "%s: %s", p->path, err.msg);
        core_log(TWIN_LEVEL_ERROR, t->id, tp->name, "%s", ci->reason);
      }
    }
  }
}

/* Load each town's rules (or only_town's). A town whose rules fail to load
 * runs without rules, with the reason kept for `script status`. */
static void open_rules(core_host *h, const char *only_town)
{
  h->scripts = calloc(h->cfg->n_towns, sizeof *h->scripts);
  h->script_error = calloc(h->cfg->n_towns, sizeof *h->script_error);
  for (size_t i = 0; h->scripts && h->script_error && i < h->cfg->n_towns;
       i++) {
    const core_town *t = &h->cfg->towns[i];
    if (only_town && strcmp(t->id, only_town))
      continue;
    core_script_limits lim = {t->rule_instructions, t->rule_wall_ms,
                              (size_t)t->rule_memory_mib << 20};
    core_err err;
    if (core_script_open(h, t, &lim, &h->scripts[i], &err)) {
      h->scripts[i] = NULL;
      h->script_error[i] = strdup(err.msg);
      core_log(TWIN_LEVEL_ERROR, t->id, "rules",
               "rules not loaded: %s (the town runs without rules until "
               "they load; check with `twinhost script check %s`)",
               err.msg, t->id);
    }
  }
}

struct core_script *core_host_script(core_host *h, const core_town *town)
{
  if (!h->scripts)
    return NULL;
  size_t i = (size_t)(town - h->cfg->towns);
  /* A reload may publish a town's first runtime while the writer runs. */
  return i < h->cfg->n_towns ? __atomic_load_n(&h->scripts[i], __ATOMIC_ACQUIRE)
                             : NULL;
}

static int host_open(const char *config_path, int level, const char *only_town,
                     core_host **out, core_err *err)
{
  *out = NULL;
  core_host *h = calloc(1, sizeof *h);
  if (!h)
    return core_err_set(err, TWIN_ERR_NOMEM, "out of memory");
  pthread_mutex_init(&h->lock, NULL);
  core_api_init(&h->api);
  int st = core_config_load(config_path, &h->cfg, err);
  if (st)
    goto fail;
  const char *dirs[64];
  size_t nd = core_host_plugin_dirs(h->cfg, dirs, 64);
  for (size_t i = 0; i < nd; i++)
    load_dir(h, dirs[i]);
  if (level >= CORE_HOST_STORE) {
    st = core_store_open(h->cfg->data_dir, &h->store, err);
    if (st)
      goto fail;
  }
  add_instances(h, level >= CORE_HOST_INSTANCES, only_town);
  if (level >= CORE_HOST_INSTANCES)
    open_rules(h, only_town);
  *out = h;
  return TWIN_OK;
fail:
  core_host_close(h);
  return st;
}

int core_host_open(const char *config_path, int level, core_host **out,
                   core_err *err)
{
  return host_open(config_path, level, NULL, out, err);
}

int core_host_open_town(const char *config_path, const char *town,
                        core_host **out, core_err *err)
{
  return host_open(config_path, CORE_HOST_INSTANCES, town, out, err);
}

void core_host_close(core_host *h)
{
  if (!h)
    return;
  for (size_t i = 0; i < h->n_inst; i++) {
    core_instance *ci = &h->inst[i];
    if (ci->inst)
      ci->plugin->desc.close(ci->inst);
    free(ci->config_json);
  }
  free(h->inst);
  for (size_t i = 0; h->cfg && i < h->cfg->n_towns; i++) {
    if (h->scripts)
      core_script_close(h->scripts[i]);
    if (h->script_error)
      free(h->script_error[i]);
  }
  free(h->scripts);
  free(h->script_error);
  for (size_t i = 0; i < h->n_plugins; i++)
    core_plugin_unload(&h->plugins[i]);
  free(h->plugins);
  for (size_t i = 0; i < h->n_refused; i++) {
    free(h->refused[i].path);
    free(h->refused[i].reason);
  }
  free(h->refused);
  core_store_close(h->store);
  core_config_free(h->cfg);
  pthread_mutex_destroy(&h->lock);
  free(h);
}

/* ---- calls --------------------------------------------------------------- */

static int call_failed(twin_ctx *ctx, int rc, const char *what, core_err *err)
{
  return core_err_set(err, rc, "%s/%s %s: %s", ctx->town->id, ctx->plugin, what,
                      ctx->error[0] ? ctx->error : core_status_message(rc));
}

static int take_reply(twin_ctx *ctx, char **reply)
{
  if (ctx->reply) {
    *reply = ctx->reply;
    ctx->reply = NULL;
  } else {
    *reply = strdup("null");
  }
  return *reply ? TWIN_OK : TWIN_ERR_NOMEM;
}

typedef int (*read_call)(void *inst, twin_ctx *ctx, const char *doc,
                         size_t len);

static int read_only_call(core_host *h, core_instance *ci, read_call fn,
                          const char *what, const char *req, size_t len,
                          char **reply, core_err *err)
{
  *reply = NULL;
  if (!fn)
    return core_err_set(err, TWIN_ERR_UNSUPPORTED, "plugin '%s' has no %s",
                        ci->plugin->desc.name, what);
  MDB_txn *txn;
  int st = core_store_begin_read(h->store, &txn, err);
  if (st)
    return st;
  twin_ctx ctx;
  core_ctx_init(&ctx, h, ci, CORE_CTX_READ, txn, NULL);
  ctx.may_reply = 1;
  st = fn(ci->inst, &ctx, req, len);
  if (st)
    call_failed(&ctx, st, what, err);
  else
    st = take_reply(&ctx, reply);
  core_ctx_done(&ctx);
  core_store_end_read(h->store, txn);
  return st;
}

int core_host_query(core_host *h, core_instance *ci, const char *req,
                    size_t len, char **reply, core_err *err)
{
  return read_only_call(h, ci, ci->plugin->desc.query, "query", req, len, reply,
                        err);
}

static int describe_adapter(void *inst, twin_ctx *ctx, const char *doc,
                            size_t len)
{
  (void)doc;
  (void)len;
  return ctx->ci->plugin->desc.describe(inst, ctx);
}

int core_host_describe(core_host *h, core_instance *ci, char **reply,
                       core_err *err)
{
  return read_only_call(h, ci,
                        ci->plugin->desc.describe ? describe_adapter : NULL,
                        "describe", "", 0, reply, err);
}

static int collect_event(void *ud, const char *town, const char *json,
                         size_t len)
{
  (void)town;
  json_t *ev = json_loadb(json, len, 0, NULL);
  if (ev)
    json_array_append_new(ud, ev);
  return TWIN_OK;
}

int core_host_simulate(core_host *h, core_instance *ci, const char *scenario,
                       size_t len, char **reply, core_err *err)
{
  *reply = NULL;
  if (!ci->plugin->desc.simulate)
    return core_err_set(err, TWIN_ERR_UNSUPPORTED,
                        "plugin '%s' has no scenarios (simulate)",
                        ci->plugin->desc.name);
  MDB_txn *txn;
  int st = core_store_begin_read(h->store, &txn, err);
  if (st)
    return st;
  core_overlay *ov = core_overlay_new();
  twin_ctx ctx;
  core_ctx_init(&ctx, h, ci, CORE_CTX_SCENARIO, txn, ov);
  ctx.may_reply = 1;
  st = ov ? ci->plugin->desc.simulate(ci->inst, &ctx, scenario, len)
          : TWIN_ERR_NOMEM;
  if (st) {
    call_failed(&ctx, st, "simulate", err);
  } else {
    /* The report, plus what the scenario would have written and emitted:
     * none of it reaches the store; the overlay is dropped below. */
    json_t *report =
        ctx.reply ? json_loads(ctx.reply, JSON_DECODE_ANY, NULL) : json_null();
    json_t *events = json_array();
    core_overlay_each_event(ov, collect_event, events);
    json_t *out = json_pack(
        "{s:s,s:s,s:o,s:o,s:I}", "town", ci->town->id, "plugin",
        ci->plugin->desc.name, "report", report ? report : json_null(),
        "events", events, "staged_writes", (json_int_t)core_overlay_writes(ov));
    *reply = out ? json_dumps(out, JSON_COMPACT | JSON_REAL_PRECISION(15))
                 : NULL;
    json_decref(out);
    if (!*reply)
      st = core_err_set(err, TWIN_ERR_NOMEM, "out of memory");
  }
  core_ctx_done(&ctx);
  core_overlay_free(ov);
  core_store_end_read(h->store, txn);
  return st;
}

int core_host_run_ingest(core_host *h, core_instance *ci, MDB_txn *txn,
                         core_overlay *ov, const char *doc, size_t len,
                         core_err *err)
{
  core_overlay_clear(ov);
  if (ci->state == CORE_INSTANCE_DISABLED)
    return core_err_set(err, TWIN_ERR_UNAVAILABLE,
                        "plugin '%s' is disabled "
                        "for %s: %s",
                        ci->plugin->desc.name, ci->town->id, ci->reason);
  if (!ci->plugin->desc.ingest)
    return core_err_set(err, TWIN_ERR_UNSUPPORTED,
                        "plugin '%s' takes no documents (no ingest)",
                        ci->plugin->desc.name);
  twin_ctx ctx;
  core_ctx_init(&ctx, h, ci, CORE_CTX_WRITE, txn, ov);
  int st = ci->plugin->desc.ingest(ci->inst, &ctx, doc, len);
  if (!st)
    st = core_host_run_rules(h, &ctx, core_overlay_stamp(ov));
  if (st) {
    core_err_set(err, st, "%s",
                 ctx.error[0] ? ctx.error : core_status_message(st));
    core_overlay_clear(ov);
  }
  core_ctx_done(&ctx);
  return st;
}

int core_host_run_tick(core_host *h, core_instance *ci, MDB_txn *txn,
                       core_overlay *ov, core_err *err)
{
  core_overlay_clear(ov);
  if (!ci->plugin->desc.tick)
    return TWIN_OK;
  twin_ctx ctx;
  core_ctx_init(&ctx, h, ci, CORE_CTX_WRITE, txn, ov);
  int st = ci->plugin->desc.tick(ci->inst, &ctx);
  if (!st)
    st = core_host_run_rules(h, &ctx, core_overlay_stamp(ov));
  if (st) {
    core_err_set(err, st, "%s",
                 ctx.error[0] ? ctx.error : core_status_message(st));
    core_overlay_clear(ov);
  }
  core_ctx_done(&ctx);
  return st;
}

/* ---- town rules after a document or tick --------------------------------- */

typedef struct rules_run {
  core_script *s;
  twin_ctx *ctx;
  uint8_t *val; /* copy of the value being handed to the rules */
  size_t val_cap;
  int st;
} rules_run;

/* One staged observation (obs key town\0plugin\0type\0id\0attr\0 + time):
 * copied out first, since the rules' own writes may move the overlay. */
static int rules_obs(void *ud, int op, const uint8_t *key, size_t klen,
                     const uint8_t *val, size_t vlen)
{
  rules_run *r = ud;
  if (op != 1 || klen < 9 || klen > CORE_KEY_MAX)
    return TWIN_OK;
  char k[CORE_KEY_MAX];
  memcpy(k, key, klen);
  const char *part[5], *p = k, *end = k + klen - 8;
  for (int i = 0; i < 5; i++) {
    if (p >= end)
      return TWIN_OK;
    part[i] = p;
    p += strnlen(p, (size_t)(end - p)) + 1;
  }
  if (vlen > r->val_cap) {
    uint8_t *nv = realloc(r->val, vlen);
    if (!nv)
      return r->st = TWIN_ERR_NOMEM;
    r->val = nv;
    r->val_cap = vlen;
  }
  memcpy(r->val, val, vlen);
  twin_attr a = {part[4], core_key_get_time((const uint8_t *)end), {0}};
  if (core_value_decode(r->val, vlen, 0, &a.value, NULL))
    return TWIN_OK;
  r->st =
      core_script_on_observation(r->s, r->ctx, part[1], part[2], part[3], &a);
  return r->st;
}

int core_host_run_rules(core_host *h, twin_ctx *ctx, uint32_t upto)
{
  core_script *s = core_host_script(h, ctx->town);
  if (!s)
    return TWIN_OK;
  rules_run r = {s, ctx, NULL, 0, TWIN_OK};
  if (core_script_has_observation_hooks(s))
    core_overlay_each(ctx->view.ov, CORE_DB_OBS, 0, upto, rules_obs, &r);
  if (!r.st && core_script_has_event_hooks(s)) {
    size_t n = core_overlay_events(ctx->view.ov);
    for (size_t i = 0; !r.st && i < n; i++) {
      const char *town, *json;
      size_t len;
      core_overlay_event_at(ctx->view.ov, i, &town, &json, &len);
      if (len > r.val_cap) {
        uint8_t *nv = realloc(r.val, len);
        if (!nv) {
          r.st = TWIN_ERR_NOMEM;
          break;
        }
        r.val = nv;
        r.val_cap = len;
      }
      memcpy(r.val, json, len);
      r.st = core_script_on_event(s, ctx, (const char *)r.val, len);
    }
  }
  free(r.val);
  return r.st;
}

/* ---- health -------------------------------------------------------------- */

const char *core_instance_state_name(int state)
{
  switch (state) {
  case CORE_INSTANCE_RUNNING:
    return "running";
  case CORE_INSTANCE_BACKOFF:
    return "backoff";
  default:
    return "disabled";
  }
}

/* The health transition of one tick (no lock, no log): backoff after a
 * failure, disabled after too many in a row. 1 when the record changed. */
static int tick_apply(core_instance *ci, int status, const char *reason)
{
  int before = ci->state;
  twin_time now = core_now_ms();
  ci->ticks++;
  if (!status) {
    ci->failures = 0;
    ci->state = CORE_INSTANCE_RUNNING;
    ci->next_tick = now + (twin_time)ci->tick_s * 1000;
    return before != ci->state;
  }
  ci->tick_errors++;
  ci->failures++;
  if (ci->failures >= MAX_TICK_FAILURES) {
    ci->state = CORE_INSTANCE_DISABLED;
    snprintf(ci->reason, sizeof ci->reason,
             "disabled after %d failed ticks in a row; last: %s (fix the "
             "cause and restart the host)",
             ci->failures, reason);
  } else {
    /* Exponential backoff: 2, 4, 8 ... times the interval, at most 1 h. */
    int64_t wait = (int64_t)(ci->tick_s ? ci->tick_s : 1) * 1000
                   << ci->failures;
    if (wait > 3600 * 1000)
      wait = 3600 * 1000;
    snprintf(ci->reason, sizeof ci->reason,
             "tick failed %d time%s in a row: %s", ci->failures,
             ci->failures == 1 ? "" : "s", reason);
    ci->state = CORE_INSTANCE_BACKOFF;
    ci->next_tick = now + wait;
  }
  return 1;
}

int core_host_tick_outcome(core_host *h, core_instance *ci, int status,
                           const char *reason)
{
  pthread_mutex_lock(&h->lock);
  int changed = tick_apply(ci, status, reason);
  int state = ci->state;
  char why[sizeof ci->reason];
  memcpy(why, ci->reason, sizeof why);
  pthread_mutex_unlock(&h->lock);
  if (status)
    core_log(state == CORE_INSTANCE_DISABLED ? TWIN_LEVEL_ERROR
                                             : TWIN_LEVEL_WARNING,
             ci->town->id, ci->plugin->desc.name, "%s", why);
  return changed;
}

static void status_key(core_key *k, const char *town, const char *plugin)
{
  k->len = 0;
  core_key_part(k, "status");
  core_key_part(k, town);
  core_key_part(k, plugin);
}

int core_host_stage_status(core_host *h, core_instance *ci, core_overlay *ov)
{
  pthread_mutex_lock(&h->lock);
  char when[40];
  core_format_time(core_now_ms(), when, sizeof when);
  json_t *j = json_pack("{s:s,s:s,s:s,s:i,s:I,s:I,s:s}", "state",
                        core_instance_state_name(ci->state), "reason",
                        ci->reason, "updated", when, "failures", ci->failures,
                        "ticks", (json_int_t)ci->ticks, "tick_errors",
                        (json_int_t)ci->tick_errors, "plugin_version",
                        ci->plugin->desc.version);
  pthread_mutex_unlock(&h->lock);
  char *text = j ? json_dumps(j, JSON_COMPACT) : NULL;
  json_decref(j);
  if (!text)
    return TWIN_ERR_NOMEM;
  core_key k;
  status_key(&k, ci->town->id, ci->plugin->desc.name);
  int rc = core_overlay_put(ov, CORE_DB_META, k.b, k.len, text, strlen(text));
  free(text);
  return rc;
}

int core_host_save_status(core_host *h, core_err *err)
{
  core_overlay *ov = core_overlay_new();
  if (!ov)
    return core_err_set(err, TWIN_ERR_NOMEM, "out of memory");
  int st = TWIN_OK;
  for (size_t i = 0; !st && i < h->n_inst; i++)
    st = core_host_stage_status(h, &h->inst[i], ov);
  if (!st)
    st = core_overlay_commit(ov, h->store, err);
  core_overlay_free(ov);
  return st;
}

char *core_host_stored_status(core_host *h, MDB_txn *txn, const char *town,
                              const char *plugin)
{
  core_key k;
  status_key(&k, town, plugin);
  core_view v = {h->store, txn, NULL};
  const uint8_t *val;
  size_t len;
  if (core_view_get(&v, CORE_DB_META, k.b, k.len, &val, &len))
    return NULL;
  return strndup((const char *)val, len);
}
