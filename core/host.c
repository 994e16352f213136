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
#include <limits.h>
#include <pthread.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "crash.h"
#include "ctx.h"
#include "media.h"
#include "schema.h"
#include "script.h"

/* The smallest descriptor a 1.0 plugin can have: up to its last field. */
#define DESC_MIN_SIZE                                                          \
  (offsetof(twin_plugin, describe) + sizeof(((twin_plugin *)0)->describe))

/* Failed ticks in a row before a plugin is disabled for its town. */
#define MAX_TICK_FAILURES 8

/* The smallest twin_op of ABI 1.2: up to its last field. */
#define OP_MIN_SIZE                                                            \
  (offsetof(twin_op, example) + sizeof(((twin_op *)0)->example))
#define OPS_MAX 256

/* A use case: [a-z0-9-]{1,40} (twin.h lists the conventional ones). */
static int valid_use_case(const char *s)
{
  return core_valid_token(s, 40, "-");
}

static const char *kind_name(int kind)
{
  return kind == TWIN_OP_SCENARIO ? "scenario" : "query";
}

static void ops_free(core_plugin *p)
{
  for (size_t i = 0; i < p->n_ops; i++)
    json_decref(p->ops[i].schema);
  free(p->ops);
  p->ops = NULL;
  p->n_ops = 0;
}

/* The example of op o: a JSON object passing its schema ("op", if there,
 * naming o). 0, or an error message in why. */
static int check_example(const core_op *o, char *why, size_t size)
{
  json_error_t je;
  json_t *ex = json_loads(o->op.example, JSON_REJECT_DUPLICATES, &je);
  if (!json_is_object(ex)) {
    snprintf(why, size, "is not a JSON object%s%s", ex ? "" : ": ",
             ex ? "" : je.text);
    json_decref(ex);
    return -1;
  }
  json_t *opv = json_object_get(ex, "op");
  if (opv && (!json_is_string(opv) ||
              strcmp(json_string_value(opv), o->op.name))) {
    snprintf(why, size, "has an \"op\" other than \"%s\"", o->op.name);
    json_decref(ex);
    return -1;
  }
  json_object_del(ex, "op");
  core_err e;
  int rc = 0;
  if (o->schema) {
    if (core_schema_validate(o->schema, ex, &e)) {
      snprintf(why, size, "does not pass the request schema: %s", e.msg);
      rc = -1;
    }
  } else if (json_object_size(ex)) {
    snprintf(why, size, "has members, but the op takes no parameters");
    rc = -1;
  }
  json_decref(ex);
  return rc;
}

/* Copy and check the op table of descriptor d (ABI 1.2) into out. */
static int load_ops(const char *path, const twin_plugin *d, core_plugin *out,
                    core_err *err)
{
  if (!d->n_ops)
    return TWIN_OK;
  const char *name = d->name;
  if (!d->ops || d->n_ops > OPS_MAX)
    return core_err_set(err, TWIN_ERR_INVALID,
                        "%s: plugin '%s' declares %u ops %s (set them with "
                        "TWIN_OPS(table))",
                        path, name, d->n_ops,
                        d->ops ? "(at most 256)" : "but ops is NULL");
  if (d->op_size < OP_MIN_SIZE)
    return core_err_set(err, TWIN_ERR_INVALID,
                        "%s: plugin '%s': op_size is %u bytes, a twin_op of "
                        "ABI 1.2 has %zu (set ops with TWIN_OPS(table))",
                        path, name, d->op_size, OP_MIN_SIZE);
  out->ops = calloc(d->n_ops, sizeof *out->ops);
  if (!out->ops)
    return core_err_set(err, TWIN_ERR_NOMEM, "out of memory");
  out->n_ops = d->n_ops;
  for (size_t i = 0; i < d->n_ops; i++) {
    core_op *o = &out->ops[i];
    const char *raw = (const char *)d->ops + i * d->op_size;
    memcpy(&o->op, raw,
           d->op_size < sizeof o->op ? d->op_size : sizeof o->op);
    const twin_op *op = &o->op;
    char at[80];
    snprintf(at, sizeof at, "ops[%zu]", i);
    if (!core_valid_id(op->name))
      return core_err_set(err, TWIN_ERR_INVALID,
                          "%s: plugin '%s': %s: name '%.40s' is not a valid "
                          "op name ([a-z0-9_-], 1 to 40 characters)",
                          path, name, at, op->name ? op->name : "(null)");
    snprintf(at, sizeof at, "ops[%zu] (\"%s\")", i, op->name);
    if (op->kind != TWIN_OP_QUERY && op->kind != TWIN_OP_SCENARIO)
      return core_err_set(err, TWIN_ERR_INVALID,
                          "%s: plugin '%s': %s: kind %d is neither "
                          "TWIN_OP_QUERY nor TWIN_OP_SCENARIO",
                          path, name, at, (int)op->kind);
    if ((op->kind == TWIN_OP_QUERY && !d->query) ||
        (op->kind == TWIN_OP_SCENARIO && !d->simulate))
      return core_err_set(err, TWIN_ERR_INVALID,
                          "%s: plugin '%s': %s is a %s op but the plugin has "
                          "no %s callback",
                          path, name, at, kind_name(op->kind),
                          op->kind == TWIN_OP_QUERY ? "query" : "simulate");
    if (op->flags & ~TWIN_OP_SAFE)
      return core_err_set(err, TWIN_ERR_INVALID,
                          "%s: plugin '%s': %s: unknown flags 0x%x (only "
                          "TWIN_OP_SAFE is defined)",
                          path, name, at, op->flags & ~TWIN_OP_SAFE);
    if ((op->flags & TWIN_OP_SAFE) && op->kind != TWIN_OP_QUERY)
      return core_err_set(err, TWIN_ERR_INVALID,
                          "%s: plugin '%s': %s: only queries can be "
                          "TWIN_OP_SAFE (scenarios are POST only)",
                          path, name, at);
    if (!op->summary || !*op->summary)
      return core_err_set(err, TWIN_ERR_INVALID,
                          "%s: plugin '%s': %s has no summary (one line "
                          "saying what it answers)",
                          path, name, at);
    for (size_t j = 0; j < i; j++)
      if (out->ops[j].op.kind == op->kind &&
          !strcmp(out->ops[j].op.name, op->name))
        return core_err_set(err, TWIN_ERR_INVALID,
                            "%s: plugin '%s': %s: a %s op of this name is "
                            "declared twice",
                            path, name, at, kind_name(op->kind));
    size_t bad;
    if (op->reply_type && core_media_list_check(op->reply_type, &bad))
      return core_err_set(err, TWIN_ERR_INVALID,
                          "%s: plugin '%s': %s: reply_type \"%.100s\": entry "
                          "%zu is not a media type such as text/calendar",
                          path, name, at, op->reply_type, bad);
    o->reply = op->reply_type ? op->reply_type : "application/json";
    if (op->request_schema) {
      core_err e;
      if (core_schema_load(op->request_schema, &o->schema, &e))
        return core_err_set(err, TWIN_ERR_INVALID,
                            "%s: plugin '%s': %s: request_schema: %s", path,
                            name, at, e.msg);
    }
    char why[700];
    if (op->example && check_example(o, why, sizeof why))
      return core_err_set(err, TWIN_ERR_INVALID,
                          "%s: plugin '%s': %s: example %s", path, name, at,
                          why);
  }
  return TWIN_OK;
}

const core_op *core_plugin_op(const core_plugin *p, int kind,
                              const char *name)
{
  for (size_t i = 0; name && i < p->n_ops; i++)
    if (p->ops[i].op.kind == kind && !strcmp(p->ops[i].op.name, name))
      return &p->ops[i];
  return NULL;
}

size_t core_plugin_op_count(const core_plugin *p, int kind)
{
  size_t n = 0;
  for (size_t i = 0; i < p->n_ops; i++)
    n += p->ops[i].op.kind == kind;
  return n;
}

int core_plugin_takes(const core_plugin *p, const char *type)
{
  return !type || !*type || core_media_is_json(type) ||
         (p->desc.ingest_types && core_media_in_list(p->desc.ingest_types, type));
}

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
  if (!valid_use_case(c->use_case)) {
    st = core_err_set(err, TWIN_ERR_INVALID,
                      "%s: use_case '%.40s' is not a use case ([a-z0-9-], 1 "
                      "to 40 characters, such as parking, events, energy)",
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
  if (c->ingest_types) {
    size_t bad;
    if (!c->ingest) {
      st = core_err_set(err, TWIN_ERR_INVALID,
                        "%s: plugin '%s' declares ingest_types but has no "
                        "ingest callback",
                        path, c->name);
      goto fail;
    }
    if (core_media_list_check(c->ingest_types, &bad)) {
      st = core_err_set(err, TWIN_ERR_INVALID,
                        "%s: plugin '%s': ingest_types \"%.100s\": entry %zu "
                        "is not a media type such as text/csv",
                        path, c->name, c->ingest_types, bad);
      goto fail;
    }
  }
  if (c->fetch_interval_s && !c->fetch) {
    st = core_err_set(err, TWIN_ERR_INVALID,
                      "%s: plugin '%s' has a fetch_interval_s but no fetch "
                      "callback",
                      path, c->name);
    goto fail;
  }
  st = load_ops(path, c, out, err);
  if (st)
    goto fail;
  out->path = strdup(path);
  if (!out->path) {
    st = core_err_set(err, TWIN_ERR_NOMEM, "out of memory");
    goto fail;
  }
  out->dl = dl;
  return TWIN_OK;
fail:
  ops_free(out);
  dlclose(dl);
  memset(out, 0, sizeof *out);
  return st;
}

void core_plugin_unload(core_plugin *p)
{
  ops_free(p);
  if (p->dl)
    dlclose(p->dl);
  free(p->path);
  memset(p, 0, sizeof *p);
}

/* The plugin folder that goes with the running binary, found once. A binary
 * inside the build tree (the host, a test, a benchmark) has the build tree's
 * plugins/; any other is an installed one and has
 * <its folder>/TWIN_PLUGIN_DIR_FROM_BIN (bin/../lib/twinhost/plugins, written
 * without the ".."), so a prefix moved after `cmake --install` still finds
 * its plugins. "" when /proc/self/exe cannot be read. */
static char own_plugins[PATH_MAX];

static void find_own_plugins(void)
{
  char exe[PATH_MAX], build[PATH_MAX];
  ssize_t len = readlink("/proc/self/exe", exe, sizeof exe);
  if (len <= 0 || (size_t)len >= sizeof exe || exe[0] != '/')
    return;
  exe[len] = '\0';
  if (realpath(TWIN_BUILD_DIR, build)) {
    size_t blen = strlen(build);
    if (!strncmp(exe, build, blen) && exe[blen] == '/') {
      snprintf(own_plugins, sizeof own_plugins, "%s", TWIN_BUILD_PLUGIN_DIR);
      return;
    }
  }
  *strrchr(exe, '/') = '\0'; /* the binary's folder */
  const char *rel = TWIN_PLUGIN_DIR_FROM_BIN;
  char *slash;
  while (!strncmp(rel, "../", 3) && (slash = strrchr(exe, '/'))) {
    *slash = '\0';
    rel += 3;
  }
  if (snprintf(own_plugins, sizeof own_plugins, "%s/%s", exe, rel) >=
      (int)sizeof own_plugins)
    own_plugins[0] = '\0';
}

size_t core_host_plugin_dirs(const core_config *cfg, const char **dirs,
                             size_t max)
{
  static pthread_once_t own_once = PTHREAD_ONCE_INIT;
  /* $TWINHOST_PLUGIN_PATH as last seen, and a copy split at ':' that dirs
   * point into, kept until the variable changes: any length (a fixed copy
   * would cut a long value short without a word). */
  static char *env_seen, *env_split;
  size_t n = 0;
  pthread_once(&own_once, find_own_plugins);
  if (own_plugins[0]) {
    if (n < max)
      dirs[n++] = own_plugins;
  } else { /* where the binary lies is unknown: both compiled-in folders */
    if (n < max)
      dirs[n++] = TWIN_BUILD_PLUGIN_DIR;
    if (n < max)
      dirs[n++] = TWIN_INSTALL_FULL_PLUGIN_DIR;
  }
  const char *env = getenv("TWINHOST_PLUGIN_PATH");
  if (env && *env && (!env_seen || strcmp(env_seen, env))) {
    char *seen = strdup(env), *split = strdup(env);
    if (seen && split) {
      free(env_seen);
      free(env_split);
      env_seen = seen;
      env_split = split;
      for (char *c = split; *c; c++)
        if (*c == ':')
          *c = '\0';
    } else {
      free(seen);
      free(split);
      core_log(TWIN_LEVEL_WARNING, NULL, NULL,
               "TWINHOST_PLUGIN_PATH ignored: out of memory");
    }
  }
  if (env && *env && env_seen && !strcmp(env_seen, env)) {
    const char *stop = env_split + strlen(env_seen);
    for (char *p = env_split; p < stop && n < max; p += strlen(p) + 1)
      if (*p)
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
  core_log(TWIN_LEVEL_WARNING, NULL, NULL, "plugin refused: %s", reason);
  core_refusal *r = realloc(h->refused, (h->n_refused + 1) * sizeof *r);
  if (!r)
    return; /* logged, not listed */
  h->refused = r;
  char *p = strdup(path), *why = strdup(reason);
  if (!p || !why) {
    free(p);
    free(why);
    return;
  }
  r[h->n_refused].path = p;
  r[h->n_refused].reason = why;
  h->n_refused++;
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
    char *name = nn ? strdup(e->d_name) : NULL;
    if (nn)
      names = nn;
    if (!name) {
      core_log(TWIN_LEVEL_ERROR, NULL, NULL,
               "out of memory listing %s: %s and later plugins not loaded", dir,
               e->d_name);
      break;
    }
    names[n++] = name;
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
  if (o && d->fetch)
    json_object_set_new(o, "fetch_interval_s",
                        json_integer(d->fetch_interval_s));
  if (o && d->ingest) {
    json_t *types = json_array();
    json_array_append_new(types, json_string("application/json"));
    const char *t = d->ingest_types ? d->ingest_types : "";
    while (*t) { /* the list was checked at load */
      while (*t == ' ' || *t == ',')
        t++;
      size_t n = strcspn(t, ", ");
      if (n)
        json_array_append_new(types, json_stringn(t, n));
      t += n;
    }
    json_object_set_new(o, "ingest_types", types);
  }
  if (o && p->n_ops) {
    json_t *ops = json_array();
    for (size_t i = 0; i < p->n_ops; i++)
      json_array_append_new(ops, core_op_json(&p->ops[i], with_schema));
    json_object_set_new(o, "ops", ops);
  }
  return o;
}

json_t *core_op_json(const core_op *o, int full)
{
  const twin_op *op = &o->op;
  json_t *j = json_pack("{s:s,s:s,s:s,s:b,s:s}", "name", op->name, "kind",
                        kind_name(op->kind), "summary", op->summary, "safe",
                        (op->flags & TWIN_OP_SAFE) != 0, "reply_type",
                        o->reply);
  if (j && full) {
    json_object_set_new(j, "request_schema",
                        o->schema ? json_deep_copy(o->schema) : json_null());
    json_t *ex = op->example ? json_loads(op->example, 0, NULL) : NULL;
    json_object_set_new(j, "example", ex ? ex : json_null());
  }
  return j;
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
  core_call_mark mark;
  core_call_enter(&mark, ci->town->id, d->name, "open");
  st = ov ? d->open(&h->api, &ctx, ci->config_json, strlen(ci->config_json),
                    &inst)
          : TWIN_ERR_NOMEM;
  core_call_leave(&mark);
  core_store_end_read(h->store, txn);
  if (st) {
    char why[1100];
    core_err_set(err, st, "open failed: %s (%s)",
                 core_ctx_reason(&ctx, st, why, sizeof why),
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
/* Why no plugin named name was loaded, with a close name: into err. */
static int missing_plugin(core_host *h, const core_town *t, const char *name,
                          core_err *err)
{
  const char *names[64];
  size_t n = 0;
  for (size_t i = 0; i < h->n_plugins && n < 64; i++)
    names[n++] = h->plugins[i].desc.name;
  char hint[160], known[400], why[700] = "";
  core_suggest(name, names, n, hint, sizeof hint);
  core_join_names(names, n, known, sizeof known);
  for (size_t i = 0; i < h->n_refused; i++) {
    const char *file = strrchr(h->refused[i].path, '/');
    file = file ? file + 1 : h->refused[i].path;
    if (!strncmp(file, name, strlen(name)) && !strcmp(file + strlen(name), ".so"))
      snprintf(why, sizeof why, "; %s was refused: %s", file,
               h->refused[i].reason);
  }
  return core_err_set(err, TWIN_ERR_CONFIG,
                      "%s: town '%s': plugins.%s: no plugin of that name is "
                      "loaded%s (loaded: %s)%s; see `twinhost plugins list` "
                      "for the search path and refused files",
                      t->source, t->id, name, hint, n ? known : "none", why);
}

/* Instances of every town (or only_town's), opened when open. With strict
 * (a host that will run them), a town naming a plugin that is not loaded
 * or giving a config that fails its schema refuses the whole start, as any
 * other config mistake does; otherwise (plugins list) it is logged. */
static int add_instances(core_host *h, int open, int strict,
                         const char *only_town, core_err *err)
{
  size_t total = 0;
  for (size_t i = 0; i < h->cfg->n_towns; i++)
    total += h->cfg->towns[i].n_plugins;
  h->inst = calloc(total ? total : 1, sizeof *h->inst);
  if (!h->inst)
    return core_err_set(err, TWIN_ERR_NOMEM, "out of memory");
  for (size_t i = 0; i < h->cfg->n_towns; i++) {
    const core_town *t = &h->cfg->towns[i];
    /* every town's config is checked, also when one town is opened */
    int other = only_town && strcmp(t->id, only_town);
    for (size_t j = 0; j < t->n_plugins; j++) {
      const core_town_plugin *tp = &t->plugins[j];
      if (!tp->enabled)
        continue;
      core_plugin *p = core_host_plugin(h, tp->name);
      if (!p) {
        core_err why;
        missing_plugin(h, t, tp->name, &why);
        if (strict)
          return core_err_set(err, TWIN_ERR_CONFIG, "%s", why.msg);
        if (!other)
          core_log(TWIN_LEVEL_ERROR, t->id, tp->name, "%s", why.msg);
        continue;
      }
      if (other) {
        char *done = NULL;
        core_err e;
        int bad = strict &&
                  core_schema_apply(p->desc.config_schema, tp->config_json,
                                    strlen(tp->config_json), &done, &e);
        free(done);
        if (bad)
          return core_err_set(err, TWIN_ERR_CONFIG,
                              "%s: town '%s': plugins.%s.config.%s (see "
                              "`twinhost plugins info %s`)",
                              t->source, t->id, tp->name, e.msg, tp->name);
        continue;
      }
      core_instance *ci = &h->inst[h->n_inst++];
      ci->host = h;
      ci->plugin = p;
      ci->town = t;
      ci->tick_s =
          tp->tick_s >= 0 ? (uint32_t)tp->tick_s : p->desc.tick_interval_s;
      ci->fetch_s = !p->desc.fetch  ? 0
                    : tp->fetch_s >= 0 ? (uint32_t)tp->fetch_s
                                       : p->desc.fetch_interval_s;
      ci->fetch_timeout_s = tp->fetch_timeout_s >= 0
                                ? (uint32_t)tp->fetch_timeout_s
                                : CORE_FETCH_TIMEOUT_S_DEFAULT;
      core_err e;
      if (core_schema_apply(p->desc.config_schema, tp->config_json,
                            strlen(tp->config_json), &ci->config_json, &e)) {
        ci->state = CORE_INSTANCE_DISABLED;
        snprintf(ci->reason, sizeof ci->reason,
                 "%s: town '%s': plugins.%s.config.%s (see `twinhost "
                 "plugins info %s`)",
                 t->source, t->id, tp->name, e.msg, tp->name);
        if (strict)
          return core_err_set(err, TWIN_ERR_CONFIG, "%s", ci->reason);
        core_log(TWIN_LEVEL_ERROR, t->id, tp->name, "%s", ci->reason);
        continue;
      }
    }
  }
  /* Opened only once every town's config passed: a refused start has run
   * no plugin's open. */
  for (size_t i = 0; open && i < h->n_inst; i++) {
    core_instance *ci = &h->inst[i];
    core_err e;
    if (ci->state == CORE_INSTANCE_DISABLED || !open_instance(h, ci, &e))
      continue;
    ci->state = CORE_INSTANCE_DISABLED;
    snprintf(ci->reason, sizeof ci->reason, "%s: %s", ci->plugin->path,
             e.msg);
    core_log(TWIN_LEVEL_ERROR, ci->town->id, ci->plugin->desc.name, "%s",
             ci->reason);
  }
  return TWIN_OK;
}

/* Load each town's rules (or only_town's). A town whose rules fail to load
 * runs without rules, with the reason kept for `script status`. */
static int open_rules(core_host *h, const char *only_town, core_err *err)
{
  h->scripts = calloc(h->cfg->n_towns, sizeof *h->scripts);
  h->script_error = calloc(h->cfg->n_towns, sizeof *h->script_error);
  if (!h->scripts || !h->script_error)
    return core_err_set(err, TWIN_ERR_NOMEM, "out of memory");
  for (size_t i = 0; i < h->cfg->n_towns; i++) {
    const core_town *t = &h->cfg->towns[i];
    if (only_town && strcmp(t->id, only_town))
      continue;
    core_script_limits lim = {t->rule_instructions, t->rule_wall_ms,
                              (size_t)t->rule_memory_mib << 20};
    core_err serr;
    if (core_script_open(h, t, &lim, &h->scripts[i], &serr)) {
      h->scripts[i] = NULL;
      core_log(TWIN_LEVEL_ERROR, t->id, "rules",
               "rules not loaded: %s (the town runs without rules until "
               "they load; check with `twinhost script check %s`)",
               serr.msg, t->id);
      h->script_error[i] = strdup(serr.msg);
      if (!h->script_error[i])
        return core_err_set(err, TWIN_ERR_NOMEM, "out of memory");
    }
  }
  return TWIN_OK;
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
  pthread_rwlock_init(&h->pipeline_lock, NULL);
  core_host_calls_init(&h->api);
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
  st = add_instances(h, level >= CORE_HOST_INSTANCES,
                     level >= CORE_HOST_INSTANCES, only_town, err);
  if (st)
    goto fail;
  if (level >= CORE_HOST_INSTANCES) {
    st = open_rules(h, only_town, err);
    if (st)
      goto fail;
  }
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
    if (ci->inst) {
      core_call_mark mark;
      core_call_enter(&mark, ci->town->id, ci->plugin->desc.name, "close");
      ci->plugin->desc.close(ci->inst);
      core_call_leave(&mark);
    }
    free(ci->config_json);
    free(ci->refused_codes);
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
  pthread_rwlock_destroy(&h->pipeline_lock);
  free(h);
}

/* ---- refused items ------------------------------------------------------- */

void core_items_clear(core_items *it)
{
  for (size_t i = 0; i < it->n; i++) {
    free(it->v[i].item);
    free(it->v[i].field);
    free(it->v[i].code);
    free(it->v[i].reason);
  }
  it->n = 0;
  it->total = 0;
}

void core_items_free(core_items *it)
{
  core_items_clear(it);
  free(it->v);
  memset(it, 0, sizeof *it);
}

int core_items_add(core_items *it, const char *item, const char *field,
                   const char *code, const char *reason)
{
  it->total++;
  if (it->n >= CORE_ITEMS_KEPT)
    return TWIN_OK; /* counted only */
  if (it->n == it->cap) {
    size_t cap = it->cap ? it->cap * 2 : 8;
    core_item *v = realloc(it->v, cap * sizeof *v);
    if (!v)
      return TWIN_ERR_NOMEM;
    it->v = v;
    it->cap = cap;
  }
  core_item *x = &it->v[it->n];
  x->item = strdup(item);
  x->field = field ? strdup(field) : NULL;
  x->code = strdup(code);
  x->reason = strdup(reason);
  if (!x->item || (field && !x->field) || !x->code || !x->reason) {
    free(x->item);
    free(x->field);
    free(x->code);
    free(x->reason);
    return TWIN_ERR_NOMEM;
  }
  it->n++;
  return TWIN_OK;
}

json_t *core_items_json(const core_items *it)
{
  json_t *a = json_array();
  for (size_t i = 0; a && it && i < it->n; i++) {
    const core_item *x = &it->v[i];
    json_t *o = json_pack("{s:s,s:s,s:s}", "item", x->item, "code", x->code,
                          "reason", x->reason);
    if (o && x->field)
      json_object_set_new(o, "field", json_string(x->field));
    json_array_append_new(a, o);
  }
  return a;
}

void core_instance_count_refused(core_host *h, core_instance *ci,
                                 const core_items *items)
{
  if (!items || !items->total)
    return;
  pthread_mutex_lock(&h->lock);
  for (size_t i = 0; i < items->total; i++) {
    /* refusals beyond the kept ones count under the last kept code */
    const char *code = items->n ? items->v[i < items->n ? i : items->n - 1].code
                                : "other";
    size_t k = 0;
    while (k < ci->n_refused_codes && strcmp(ci->refused_codes[k].code, code))
      k++;
    if (k == ci->n_refused_codes) {
      if (k >= 64) { /* a plugin inventing codes: pool the rest */
        code = "other";
        for (k = 0; k < ci->n_refused_codes &&
                    strcmp(ci->refused_codes[k].code, code);
             k++)
          ;
      }
      if (k == ci->n_refused_codes) {
        core_code_count *v = realloc(ci->refused_codes, (k + 1) * sizeof *v);
        if (!v)
          break;
        ci->refused_codes = v;
        snprintf(v[k].code, sizeof v[k].code, "%s", code);
        v[k].n = 0;
        ci->n_refused_codes++;
      }
    }
    ci->refused_codes[k].n++;
  }
  pthread_mutex_unlock(&h->lock);
}

/* ---- calls --------------------------------------------------------------- */

static int deadline_passed(const twin_ctx *ctx)
{
  return ctx->deadline_ns && core_mono_ns() >= ctx->deadline_ns;
}

/* "query 'forecast'", or "query" for a plugin without declared ops. */
static void call_label(const char *what, const core_op *op, char *buf,
                       size_t size)
{
  if (op)
    snprintf(buf, size, "%s '%s'", what, op->op.name);
  else
    snprintf(buf, size, "%s", what);
}

static int call_failed(twin_ctx *ctx, int rc, const char *what, core_err *err)
{
  char why[1100];
  core_ctx_reason(ctx, rc, why, sizeof why);
  int st = core_err_set(err, rc, "%s/%s %s: %s", ctx->town->id, ctx->plugin,
                        what, why);
  core_err_detail(err, ctx->err_code[0] ? ctx->err_code : NULL,
                  ctx->err_field[0] ? ctx->err_field : NULL);
  return st;
}

/* A call that failed after its deadline: the deadline is the reason. */
static int deadline_failed(twin_ctx *ctx, const char *what, uint32_t ms,
                           const char *knob, core_err *err)
{
  int st = core_err_set(err, TWIN_ERR_DEADLINE,
                        "%s/%s %s ran out of time: its deadline of %u ms "
                        "passed. Ask for less (a shorter window, fewer "
                        "items), or raise %s in the town's config",
                        ctx->town->id, ctx->plugin, what, ms, knob);
  core_err_detail(err, "deadline_exceeded", NULL);
  return st;
}

typedef int (*read_call)(void *inst, twin_ctx *ctx, const char *doc,
                         size_t len);

static int describe_call(core_host *h, core_instance *ci, char **reply,
                         core_err *err)
{
  *reply = NULL;
  if (!ci->plugin->desc.describe)
    return core_err_set(err, TWIN_ERR_UNSUPPORTED, "plugin '%s' has no %s",
                        ci->plugin->desc.name, "describe");
  MDB_txn *txn;
  int st = core_store_begin_read(h->store, &txn, err);
  if (st)
    return st;
  twin_ctx ctx;
  core_ctx_init(&ctx, h, ci, CORE_CTX_READ, txn, NULL);
  ctx.may_reply = 1;
  ctx.deadline_ns =
      core_mono_ns() + (uint64_t)(ci->town->query_ms ? ci->town->query_ms
                                                     : CORE_QUERY_MS_DEFAULT) *
                           1000000u;
  core_call_mark mark;
  core_call_enter(&mark, ci->town->id, ci->plugin->desc.name, "describe");
  st = ci->plugin->desc.describe(ci->inst, &ctx);
  core_call_leave(&mark);
  if (st) {
    call_failed(&ctx, st, "describe", err);
  } else if (ctx.reply && ctx.reply_type[0] &&
             !core_media_is_json(ctx.reply_type)) {
    st = core_err_set(err, TWIN_ERR_INVALID, "%s/%s describe: reply is not JSON",
                      ci->town->id, ci->plugin->desc.name);
  } else {
    *reply = ctx.reply ? ctx.reply : strdup("null");
    ctx.reply = NULL;
    if (!*reply)
      st = core_err_set(err, TWIN_ERR_NOMEM, "out of memory");
  }
  core_ctx_done(&ctx);
  core_store_end_read(h->store, txn);
  return st;
}

int core_host_describe(core_host *h, core_instance *ci, char **reply,
                       core_err *err)
{
  return describe_call(h, ci, reply, err);
}

/* A request error of the host's own (not the plugin's): code and field. */
static int req_fail(core_err *err, int st, const char *code,
                    const char *field, const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));
static int req_fail(core_err *err, int st, const char *code,
                    const char *field, const char *fmt, ...)
{
  char msg[sizeof err->msg];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(msg, sizeof msg, fmt, ap);
  va_end(ap);
  core_err_set(err, st, "%s", msg);
  core_err_detail(err, code, field);
  return st;
}

/* The names of p's ops of kind, for messages. */
static size_t op_names(const core_plugin *p, int kind, const char **names,
                       size_t max)
{
  size_t n = 0;
  for (size_t i = 0; i < p->n_ops && n < max; i++)
    if (p->ops[i].op.kind == kind)
      names[n++] = p->ops[i].op.name;
  return n;
}

static int blank(const char *s, size_t n)
{
  for (size_t i = 0; i < n; i++)
    if (s[i] != ' ' && s[i] != '\t' && s[i] != '\r' && s[i] != '\n')
      return 0;
  return 1;
}

int core_host_prepare(const core_plugin *p, int kind, const char *op,
                      const char *req, size_t len, char **text,
                      size_t *text_len, const core_op **out_op,
                      core_err *err)
{
  *text = NULL;
  *text_len = 0;
  *out_op = NULL;
  const char *pname = p->desc.name, *what = kind_name(kind);
  size_t declared = core_plugin_op_count(p, kind);
  if (!declared && !op) { /* a plugin of ABI 1.1 or without a table */
    *text = malloc(len + 1);
    if (!*text)
      return core_err_set(err, TWIN_ERR_NOMEM, "out of memory");
    memcpy(*text, req, len);
    (*text)[len] = 0;
    *text_len = len;
    return TWIN_OK;
  }
  json_error_t je;
  json_t *r = !req || blank(req, len)
                  ? json_object()
                  : json_loadb(req, len, JSON_REJECT_DUPLICATES, &je);
  if (!r)
    return req_fail(err, TWIN_ERR_PARSE, "bad_json", "body",
                    "the %s is not JSON: %s (line %d, column %d)",
                    kind == TWIN_OP_SCENARIO ? "scenario" : "request",
                    je.text, je.line, je.column);
  int st = TWIN_OK;
  if (!json_is_object(r)) {
    st = req_fail(err, TWIN_ERR_INVALID, "bad_request", "body",
                  "the %s must be a JSON object of the op's parameters "
                  "(see `twinhost plugins info %s`)",
                  kind == TWIN_OP_SCENARIO ? "scenario" : "request", pname);
    goto out;
  }
  json_t *named = json_object_get(r, "op");
  if (named && !json_is_string(named)) {
    st = req_fail(err, TWIN_ERR_INVALID, "bad_request", "op",
                  "op: expected the name of a %s op as a string", what);
    goto out;
  }
  const char *name = op;
  if (named && op && strcmp(json_string_value(named), op)) {
    st = req_fail(err, TWIN_ERR_INVALID, "bad_request", "op",
                  "op: the path names %s op '%s' but the body says '%s'; "
                  "leave \"op\" out of the body",
                  what, op, json_string_value(named));
    goto out;
  }
  if (!name && named)
    name = json_string_value(named);
  const char *names[OPS_MAX];
  size_t nn = op_names(p, kind, names, OPS_MAX);
  char list[400];
  core_join_names(names, nn, list, sizeof list);
  if (!declared) { /* no table: pass on with "op" set, as 1.1 plugins
                      dispatch on it by convention */
    json_object_set_new(r, "op", json_string(name));
  } else {
    if (!name && declared == 1)
      name = names[0];
    if (!name) {
      st = req_fail(err, TWIN_ERR_INVALID, "bad_request", "op",
                    "op: missing; plugin '%s' answers the %s ops %s: name "
                    "one as \"op\" in the request (or with --op on the "
                    "command line, or in the URL: .../%s/<op>)",
                    pname, what, list, what);
      goto out;
    }
    const core_op *o = core_plugin_op(p, kind, name);
    if (!o) {
      char hint[160];
      core_suggest(name, names, nn, hint, sizeof hint);
      st = req_fail(err, TWIN_ERR_NOT_FOUND, "unknown_op", "op",
                    "op: plugin '%s' has no %s op '%.60s'%s (its %s ops: "
                    "%s)",
                    pname, what, name, hint, what, nn ? list : "none");
      goto out;
    }
    json_object_del(r, "op");
    core_err e;
    if (o->schema) {
      if (core_schema_validate(o->schema, r, &e)) {
        st = req_fail(err, TWIN_ERR_INVALID, "bad_request", e.field,
                      "%s %s '%s': %s", pname, what, o->op.name, e.msg);
        goto out;
      }
    } else if (json_object_size(r)) {
      const char *k = json_object_iter_key(json_object_iter(r));
      st = req_fail(err, TWIN_ERR_INVALID, "bad_request", k,
                    "%s: %s %s '%s' takes no parameters", k, pname, what,
                    o->op.name);
      goto out;
    }
    json_object_set_new(r, "op", json_string(o->op.name));
    *out_op = o;
  }
  *text = json_dumps(r, JSON_COMPACT);
  if (!*text)
    st = core_err_set(err, TWIN_ERR_NOMEM, "out of memory");
  else
    *text_len = strlen(*text);
out:
  json_decref(r);
  return st;
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

/* A scenario's JSON report wrapped with what it would have written and
 * emitted: none of it reaches the store. */
static int scenario_reply(twin_ctx *ctx, core_overlay *ov, core_reply *out,
                          core_err *err)
{
  json_t *report =
      ctx->reply ? json_loads(ctx->reply, JSON_DECODE_ANY, NULL) : json_null();
  json_t *events = json_array();
  core_overlay_each_event(ov, collect_event, events);
  json_t *o = json_pack(
      "{s:s,s:s,s:o,s:o,s:I}", "town", ctx->town->id, "plugin", ctx->plugin,
      "report", report ? report : json_null(), "events", events,
      "staged_writes", (json_int_t)core_overlay_writes(ov));
  out->body = o ? json_dumps(o, JSON_COMPACT | JSON_REAL_PRECISION(15)) : NULL;
  json_decref(o);
  if (!out->body)
    return core_err_set(err, TWIN_ERR_NOMEM, "out of memory");
  out->len = strlen(out->body);
  return TWIN_OK;
}

int core_host_request(core_host *h, core_instance *ci, int kind,
                      const char *op, const char *req, size_t len,
                      core_reply *out, core_err *err)
{
  memset(out, 0, sizeof *out);
  const twin_plugin *d = &ci->plugin->desc;
  int scenario = kind == TWIN_OP_SCENARIO;
  read_call fn = scenario ? d->simulate : d->query;
  if (!fn)
    return req_fail(err, TWIN_ERR_UNSUPPORTED, "unsupported", NULL,
                    scenario ? "plugin '%s' has no scenarios (simulate)"
                             : "plugin '%s' answers no queries",
                    d->name);
  char *text;
  size_t tlen;
  const core_op *o;
  int st = core_host_prepare(ci->plugin, kind, op, req, len, &text, &tlen, &o,
                             err);
  if (st)
    return st;
  MDB_txn *txn;
  st = core_store_begin_read(h->store, &txn, err);
  if (st) {
    free(text);
    return st;
  }
  core_overlay *ov = scenario ? core_overlay_new() : NULL;
  twin_ctx ctx;
  core_ctx_init(&ctx, h, ci, scenario ? CORE_CTX_SCENARIO : CORE_CTX_READ,
                txn, ov);
  ctx.may_reply = 1;
  ctx.op = o;
  uint32_t ms = scenario ? ci->town->scenario_ms : ci->town->query_ms;
  if (!ms)
    ms = scenario ? CORE_SCENARIO_MS_DEFAULT : CORE_QUERY_MS_DEFAULT;
  ctx.deadline_ns = core_mono_ns() + (uint64_t)ms * 1000000u;
  char what[80];
  call_label(scenario ? "scenario" : "query", o, what, sizeof what);
  core_call_mark mark;
  core_call_enter(&mark, ci->town->id, d->name,
                  scenario ? "simulate" : "query");
  st = scenario && !ov ? TWIN_ERR_NOMEM : fn(ci->inst, &ctx, text, tlen);
  core_call_leave(&mark);
  if (st && (st == TWIN_ERR_DEADLINE || deadline_passed(&ctx))) {
    st = deadline_failed(&ctx, what, ms,
                         scenario ? "deadlines.scenario_ms"
                                  : "deadlines.query_ms",
                         err);
  } else if (st) {
    call_failed(&ctx, st, what, err);
  } else {
    int json = !ctx.reply_type[0] || core_media_is_json(ctx.reply_type);
    snprintf(out->type, sizeof out->type, "%s",
             ctx.reply_type[0] ? ctx.reply_type : "application/json");
    if (scenario && json) { /* the report inside the host's JSON */
      snprintf(out->type, sizeof out->type, "application/json");
      st = scenario_reply(&ctx, ov, out, err);
    } else if (ctx.reply) {
      out->body = ctx.reply;
      out->len = ctx.reply_len;
      ctx.reply = NULL;
    } else {
      out->body = strdup("null");
      out->len = 4;
      if (!out->body)
        st = core_err_set(err, TWIN_ERR_NOMEM, "out of memory");
    }
  }
  core_ctx_done(&ctx);
  core_overlay_free(ov);
  core_store_end_read(h->store, txn);
  free(text);
  return st;
}

int core_host_query(core_host *h, core_instance *ci, const char *req,
                    size_t len, char **reply, core_err *err)
{
  core_reply r;
  int st = core_host_request(h, ci, TWIN_OP_QUERY, NULL, req, len, &r, err);
  *reply = r.body;
  return st;
}

int core_host_simulate(core_host *h, core_instance *ci, const char *scenario,
                       size_t len, char **reply, core_err *err)
{
  core_reply r;
  int st =
      core_host_request(h, ci, TWIN_OP_SCENARIO, NULL, scenario, len, &r, err);
  *reply = r.body;
  return st;
}

int core_host_run_ingest_as(core_host *h, core_instance *ci, MDB_txn *txn,
                            core_overlay *ov, const char *type,
                            const char *doc, size_t len, core_items *items,
                            core_err *err)
{
  core_overlay_clear(ov);
  if (items)
    core_items_clear(items);
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
  ctx.in_ingest = 1;
  ctx.doc_type = type && *type ? type : "application/json";
  ctx.items = items;
  core_call_mark mark;
  core_call_enter(&mark, ci->town->id, ci->plugin->desc.name, "ingest");
  int st = ci->plugin->desc.ingest(ci->inst, &ctx, doc, len);
  core_call_leave(&mark);
  if (!st)
    st = core_host_run_rules(h, &ctx, core_overlay_stamp(ov));
  if (st) {
    core_ctx_fail(&ctx, st, err);
    core_overlay_clear(ov);
  }
  core_ctx_done(&ctx);
  return st;
}

int core_host_run_ingest(core_host *h, core_instance *ci, MDB_txn *txn,
                         core_overlay *ov, const char *doc, size_t len,
                         core_err *err)
{
  return core_host_run_ingest_as(h, ci, txn, ov, NULL, doc, len, NULL, err);
}

int core_host_run_tick(core_host *h, core_instance *ci, MDB_txn *txn,
                       core_overlay *ov, core_err *err)
{
  core_overlay_clear(ov);
  if (!ci->plugin->desc.tick)
    return TWIN_OK;
  twin_ctx ctx;
  core_ctx_init(&ctx, h, ci, CORE_CTX_WRITE, txn, ov);
  core_call_mark mark;
  core_call_enter(&mark, ci->town->id, ci->plugin->desc.name, "tick");
  int st = ci->plugin->desc.tick(ci->inst, &ctx);
  core_call_leave(&mark);
  if (!st)
    st = core_host_run_rules(h, &ctx, core_overlay_stamp(ov));
  if (st) {
    core_ctx_fail(&ctx, st, err);
    core_overlay_clear(ov);
  }
  core_ctx_done(&ctx);
  return st;
}

/* ---- fetch --------------------------------------------------------------- */

int core_instance_fetch_due(core_host *h, core_instance *ci, twin_time now)
{
  if (!ci->plugin->desc.fetch || !ci->fetch_s)
    return 0;
  pthread_mutex_lock(&h->lock);
  int due = ci->inst && ci->state != CORE_INSTANCE_DISABLED &&
            now >= ci->next_fetch;
  pthread_mutex_unlock(&h->lock);
  return due;
}

int core_host_run_fetch(core_host *h, core_instance *ci, core_err *err)
{
  if (!ci->plugin->desc.fetch || !ci->inst)
    return TWIN_OK;
  twin_ctx ctx;
  core_ctx_init(&ctx, h, ci, CORE_CTX_FETCH, NULL, NULL);
  uint32_t timeout_s =
      ci->fetch_timeout_s ? ci->fetch_timeout_s : CORE_FETCH_TIMEOUT_S_DEFAULT;
  ctx.deadline_ns = core_mono_ns() + (uint64_t)timeout_s * 1000000000u;
  core_call_mark mark;
  core_call_enter(&mark, ci->town->id, ci->plugin->desc.name, "fetch");
  int st = ci->plugin->desc.fetch(ci->inst, &ctx);
  core_call_leave(&mark);
  if (st && (st == TWIN_ERR_DEADLINE || deadline_passed(&ctx))) {
    char why[1100];
    core_ctx_reason(&ctx, st, why, sizeof why);
    core_err_set(err, TWIN_ERR_DEADLINE,
                 "fetch ran past its timeout of %u s (%s); raise "
                 "fetch_timeout_s next to the plugin's config in the town's "
                 "config if the source is just slow",
                 timeout_s, why);
    st = TWIN_ERR_DEADLINE;
  } else if (st) {
    core_ctx_fail(&ctx, st, err);
  }
  core_ctx_done(&ctx);
  twin_time now = core_now_ms();
  pthread_mutex_lock(&h->lock);
  ci->fetches++;
  if (!st) {
    ci->fetch_failures = 0;
    ci->fetch_reason[0] = 0;
    ci->next_fetch = now + (twin_time)ci->fetch_s * 1000;
  } else {
    ci->fetch_errors++;
    ci->fetch_failures++;
    /* 2, 4, 8 ... times the interval, at most an hour; never disabled:
     * a feed that comes back is used again. */
    int shift = ci->fetch_failures < 20 ? ci->fetch_failures : 20;
    int64_t wait = (int64_t)ci->fetch_s * 1000 << shift;
    if (wait > 3600 * 1000)
      wait = 3600 * 1000;
    ci->next_fetch = now + wait;
    snprintf(ci->fetch_reason, sizeof ci->fetch_reason,
             "fetch failed %d time%s in a row: %s", ci->fetch_failures,
             ci->fetch_failures == 1 ? "" : "s", err->msg);
  }
  char why[sizeof ci->fetch_reason];
  memcpy(why, ci->fetch_reason, sizeof why);
  pthread_mutex_unlock(&h->lock);
  if (st)
    core_log(TWIN_LEVEL_WARNING, ci->town->id, ci->plugin->desc.name, "%s",
             why);
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
  if (j && ci->fetch_s)
    json_object_set_new(j, "fetch", core_instance_fetch_json(ci));
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

json_t *core_instance_fetch_json(const core_instance *ci)
{
  char next[40];
  core_format_time(ci->next_fetch, next, sizeof next);
  json_t *o = json_pack("{s:I,s:I,s:I,s:i,s:s}", "interval_s",
                        (json_int_t)ci->fetch_s, "fetches",
                        (json_int_t)ci->fetches, "errors",
                        (json_int_t)ci->fetch_errors, "failures",
                        ci->fetch_failures, "next", next);
  if (o && ci->fetch_reason[0])
    json_object_set_new(o, "reason", json_string(ci->fetch_reason));
  return o;
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
