/*
 * http_read.c — the handlers that read: the host (/healthz, /v1, plugins,
 * towns), the store (entities, history, events, tokens; the read side in
 * core/api.c, shared with the CLI), a town's rules, and plugins' queries
 * and scenarios (core_host_request), with GET ops typed from the URL.
 */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "http_int.h"
#include "openapi.h"
#include "script.h"
#include "tokens.h"

/* ---- time and JSON helpers ----------------------------------------------- */

static json_t *town_brief(const core_town *t)
{
  json_t *plugins = json_array();
  for (size_t i = 0; i < t->n_plugins; i++)
    if (t->plugins[i].enabled)
      json_array_append_new(plugins, json_string(t->plugins[i].name));
  json_t *loc = t->has_location
                    ? json_pack("{s:f,s:f}", "lat", t->lat, "lon", t->lon)
                    : json_null();
  return json_pack("{s:s,s:s,s:s,s:o,s:b,s:o}", "id", t->id, "name", t->name,
                   "timezone", t->timezone, "location", loc, "anonymous_read",
                   t->anonymous_read, "plugins", plugins);
}

static json_t *instance_health(core_host *h, core_instance *ci)
{
  pthread_mutex_lock(&h->lock);
  json_t *o = json_pack(
      "{s:s,s:s,s:s,s:s,s:I,s:I,s:I,s:I}", "plugin", ci->plugin->desc.name,
      "version", ci->plugin->desc.version, "use_case",
      ci->plugin->desc.use_case, "state", core_instance_state_name(ci->state),
      "ticks", (json_int_t)ci->ticks, "tick_errors",
      (json_int_t)ci->tick_errors, "documents",
      (json_int_t)__atomic_load_n(&ci->docs, __ATOMIC_RELAXED),
      "documents_rejected",
      (json_int_t)__atomic_load_n(&ci->docs_rejected, __ATOMIC_RELAXED));
  if (ci->reason[0])
    json_object_set_new(o, "reason", json_string(ci->reason));
  if (ci->fetch_s)
    json_object_set_new(o, "fetch", core_instance_fetch_json(ci));
  if (ci->n_refused_codes) {
    json_t *codes = json_object();
    for (size_t i = 0; i < ci->n_refused_codes; i++)
      json_object_set_new(codes, ci->refused_codes[i].code,
                          json_integer((json_int_t)ci->refused_codes[i].n));
    json_object_set_new(o, "items_refused", codes);
  }
  pthread_mutex_unlock(&h->lock);
  return o;
}

/* ---- handlers: host ------------------------------------------------------ */

/* Instances enabled for their town that do not run, and why:
 * [{"town","plugin","state","reason"}] (new reference). */
static json_t *instances_down(core_host *h)
{
  json_t *down = json_array();
  pthread_mutex_lock(&h->lock);
  for (size_t i = 0; i < h->n_inst; i++) {
    core_instance *ci = &h->inst[i];
    if (ci->state == CORE_INSTANCE_RUNNING && ci->inst)
      continue;
    json_t *o = json_pack(
        "{s:s,s:s,s:s}", "town", ci->town->id, "plugin", ci->plugin->desc.name,
        "state", ci->inst ? core_instance_state_name(ci->state) : "disabled");
    if (o)
      json_object_set_new(o, "reason",
                          json_string(ci->reason[0] ? ci->reason
                                      : ci->inst    ? "failing ticks"
                                                    : "not open"));
    json_array_append_new(down, o);
  }
  pthread_mutex_unlock(&h->lock);
  return down;
}

enum MHD_Result http_h_healthz(req *r)
{
  core_http *s = r->srv;
  int stopping = __atomic_load_n(&s->stopping, __ATOMIC_ACQUIRE);
  size_t running = 0;
  for (size_t i = 0; i < s->h->n_inst; i++)
    running += core_instance_usable(s->h, &s->h->inst[i], NULL);
  core_pipeline_stats st;
  core_pipeline_stats_get(s->p, &st);
  /* "degraded" still answers 200: the host runs and serves its other
   * plugins and towns; a load balancer should not take it out. */
  json_t *down = instances_down(s->h);
  const char *status = stopping                ? "stopping"
                       : json_array_size(down) ? "degraded"
                                               : "ok";
  return http_send_json(
      r, stopping ? 503 : 200,
      json_pack("{s:s,s:I,s:I,s:I,s:I,s:I,s:o}", "status", status, "uptime_s",
                (json_int_t)((core_now_ms() - s->started) / 1000), "towns",
                (json_int_t)s->h->cfg->n_towns, "plugins_running",
                (json_int_t)running, "plugins_not_running",
                (json_int_t)(s->h->n_inst - running), "documents_committed",
                (json_int_t)(st.docs - st.docs_rejected), "degraded", down));
}

enum MHD_Result http_h_root(req *r)
{
  core_host *h = r->srv->h;
  json_t *towns = json_array(), *plugins = json_array();
  for (size_t i = 0; i < h->cfg->n_towns; i++)
    json_array_append_new(towns, json_string(h->cfg->towns[i].id));
  for (size_t i = 0; i < h->n_plugins; i++)
    json_array_append_new(plugins, json_string(h->plugins[i].desc.name));
  char abi[16];
  snprintf(abi, sizeof abi, "%d.%d", TWIN_ABI_MAJOR, TWIN_ABI_MINOR);
  return http_send_json(r, 200,
                        json_pack("{s:s,s:s,s:s,s:o,s:o,s:o,s:s}", "name",
                                  "twinhost", "version", TWIN_VERSION, "abi",
                                  abi, "towns", towns, "plugins", plugins,
                                  "routes", core_http_routes(), "docs",
                                  "docs/api.md in the twinhost sources"));
}

enum MHD_Result http_h_plugins(req *r)
{
  core_host *h = r->srv->h;
  json_t *loaded = json_array(), *refused = json_array();
  for (size_t i = 0; i < h->n_plugins; i++)
    json_array_append_new(loaded, core_plugin_json(&h->plugins[i], 0, 0));
  for (size_t i = 0; i < h->n_refused; i++) {
    const char *file = strrchr(h->refused[i].path, '/');
    json_array_append_new(refused,
                          json_pack("{s:s,s:s}", "file",
                                    file ? file + 1 : h->refused[i].path,
                                    "reason", h->refused[i].reason));
  }
  return http_send_json(
      r, 200, json_pack("{s:o,s:o}", "plugins", loaded, "refused", refused));
}

static enum MHD_Result unknown_plugin(req *r, const char *name)
{
  core_host *h = r->srv->h;
  const char *names[64] = {0};
  size_t n = 0;
  for (size_t i = 0; i < h->n_plugins && n < 64; i++)
    names[n++] = h->plugins[i].desc.name;
  char hint[160], known[256];
  core_suggest(name, names, n, hint, sizeof hint);
  core_join_names(names, n, known, sizeof known);
  return http_fail(r, 404, "unknown_plugin", "plugin",
                   "no plugin '%s' is loaded%s (loaded: %s)", name, hint,
                   n ? known : "none");
}

enum MHD_Result http_h_plugin(req *r)
{
  const char *name = http_param(r, "plugin");
  core_plugin *p = core_host_plugin(r->srv->h, name);
  if (!p)
    return unknown_plugin(r, name);
  return http_send_json(r, 200, core_plugin_json(p, 0, 1));
}

enum MHD_Result http_h_towns(req *r)
{
  core_host *h = r->srv->h;
  json_t *a = json_array();
  for (size_t i = 0; i < h->cfg->n_towns; i++)
    json_array_append_new(a, town_brief(&h->cfg->towns[i]));
  return http_send_json(r, 200, json_pack("{s:o}", "towns", a));
}

enum MHD_Result http_h_town(req *r)
{
  core_host *h = r->srv->h;
  json_t *o = town_brief(r->town), *inst = json_array();
  for (size_t i = 0; i < h->n_inst; i++)
    if (h->inst[i].town == r->town)
      json_array_append_new(inst, instance_health(h, &h->inst[i]));
  json_object_set_new(o, "instances", inst);
  size_t ti = (size_t)(r->town - h->cfg->towns);
  json_object_set_new(o, "rules",
                      json_string(core_host_script(h, r->town) ? "loaded"
                                  : h->script_error && h->script_error[ti]
                                      ? "failed"
                                      : "none"));
  return http_send_json(r, 200, o);
}

/* ---- handlers: store reads ----------------------------------------------- */

typedef int (*read_fn)(req *r, MDB_txn *txn, json_t **out, api_error *e);

void http_drop_txn(req *r)
{
  if (r->txn) {
    core_store_end_read(r->srv->h->store, r->txn);
    r->txn = NULL;
  }
}

/* The request's read transaction (authorize's, else a new one); the
 * caller ends it. 0, or -1 after answering 503. */
static int take_txn(req *r, MDB_txn **txn, enum MHD_Result *rc)
{
  core_err err;
  *txn = r->txn;
  r->txn = NULL;
  if (!*txn && core_store_begin_read(r->srv->h->store, txn, &err)) {
    *rc = http_fail(r, 503, "unavailable", NULL, "%s", err.msg);
    return -1;
  }
  return 0;
}

static enum MHD_Result with_read(req *r, read_fn fn)
{
  core_host *h = r->srv->h;
  MDB_txn *txn;
  enum MHD_Result rc;
  if (take_txn(r, &txn, &rc))
    return rc;
  json_t *out = NULL;
  api_error e;
  int st = fn(r, txn, &out, &e);
  core_store_end_read(h->store, txn);
  if (st)
    return http_send_error(r, &e);
  return http_send_json(r, 200, out);
}

static int rd_entities(req *r, MDB_txn *txn, json_t **out, api_error *e)
{
  return api_entities(r->srv->h, txn, r->town, &r->args, out, e);
}

enum MHD_Result http_h_entities(req *r)
{
  return with_read(r, rd_entities);
}

enum MHD_Result http_h_entity(req *r)
{
  /* the most frequent request: written as text, no JSON tree */
  core_host *h = r->srv->h;
  MDB_txn *txn;
  enum MHD_Result rc;
  if (take_txn(r, &txn, &rc))
    return rc;
  api_error e;
  char *text = NULL;
  size_t len = 0;
  int st = api_entity_text(h, txn, r->town, http_param(r, "plugin"),
                           http_param(r, "type"), http_param(r, "id"), &text,
                           &len, &e);
  core_store_end_read(h->store, txn);
  if (st)
    return http_send_error(r, &e);
  return http_send_text(r, 200, "application/json", text, len);
}

static int rd_history(req *r, MDB_txn *txn, json_t **out, api_error *e)
{
  return api_history(r->srv->h, txn, r->town, http_param(r, "plugin"),
                     http_param(r, "type"), http_param(r, "id"),
                     http_param(r, "attr"), &r->args, out, e);
}

enum MHD_Result http_h_history(req *r)
{
  return with_read(r, rd_history);
}

static int rd_events(req *r, MDB_txn *txn, json_t **out, api_error *e)
{
  return api_events(r->srv->h, txn, r->town, &r->args, out, e);
}

enum MHD_Result http_h_events(req *r)
{
  return with_read(r, rd_events);
}

static int rd_tokens(req *r, MDB_txn *txn, json_t **out, api_error *e)
{
  int st = api_args_check(&r->args, http_no_args, e);
  if (st)
    return st;
  core_err err;
  json_t *list = NULL;
  if (core_token_list(r->srv->h->store, txn, r->town->id, &list, &err))
    return api_fail(e, 500, "internal", NULL, "%s", err.msg);
  *out = json_pack("{s:o}", "tokens", list);
  return 0;
}

enum MHD_Result http_h_tokens(req *r)
{
  return with_read(r, rd_tokens);
}

enum MHD_Result http_h_rules(req *r)
{
  core_host *h = r->srv->h;
  api_error e;
  if (api_args_check(&r->args, http_no_args, &e))
    return http_send_error(r, &e);
  struct core_script *sc = core_host_script(h, r->town);
  size_t ti = (size_t)(r->town - h->cfg->towns);
  json_t *o = NULL;
  if (sc) {
    char *text = core_script_status(sc);
    o = text ? json_loads(text, 0, NULL) : NULL;
    free(text);
    if (!o)
      return http_fail(r, 500, "internal", NULL, "cannot read the rule status");
    json_object_set_new(o, "state", json_string("loaded"));
  } else if (h->script_error && h->script_error[ti]) {
    o = json_pack("{s:s,s:s}", "state", "failed", "error", h->script_error[ti]);
  } else {
    o = json_pack("{s:s,s:s}", "state", "none", "hint",
                  "this town has no rules: put .lua files in its scripts "
                  "folder (see docs/rules.md)");
  }
  json_object_set_new(o, "town", json_string(r->town->id));
  return http_send_json(r, 200, o);
}

enum MHD_Result http_h_town_plugin(req *r)
{
  core_host *h = r->srv->h;
  api_error e;
  if (api_args_check(&r->args, http_no_args, &e))
    return http_send_error(r, &e);
  json_t *o = core_plugin_json(r->ci->plugin, 0, 0);
  json_object_set_new(o, "health", instance_health(h, r->ci));
  json_object_set_new(o, "config", json_loads(r->ci->config_json, 0, NULL));
  core_err err;
  char *desc = NULL;
  if (r->ci->plugin->desc.describe &&
      !core_host_describe(h, r->ci, &desc, &err) && desc) {
    json_t *d = json_loads(desc, JSON_DECODE_ANY, NULL);
    json_object_set_new(o, "describe", d ? d : json_null());
  }
  free(desc);
  return http_send_json(r, 200, o);
}

/* ---- handlers: query and scenario ---------------------------------------- */

/* The body must be JSON; else 0 after answering 400 bad_json naming
 * where it breaks (the answer's result in *rc). */
static int body_json_ok(req *r, const char *what, enum MHD_Result *rc)
{
  if (!r->body_len) {
    *rc =
        http_fail(r, 400, "bad_json", "body",
                  "the %s is missing: send it as a JSON body, e.g. "
                  "{\"op\":\"now\"}, or name the op in the path (.../%s/<op>)",
                  what, strcmp(what, "scenario") ? "query" : "scenario");
    return 0;
  }
  json_error_t je;
  json_t *j = json_loadb(r->body, r->body_len, JSON_DECODE_ANY, &je);
  if (!j) {
    *rc = http_fail(r, 400, "bad_json", "body",
                    "the %s is not JSON: %s (line %d, column %d)", what,
                    je.text, je.line, je.column);
    return 0;
  }
  json_decref(j);
  return 1;
}

/* A plugin's reply, sent in its media type (text types as UTF-8). */
static enum MHD_Result send_reply(req *r, core_reply *rep)
{
  const char *type = rep->type[0] ? rep->type : "application/json";
  char ct[160];
  snprintf(ct, sizeof ct, "%s%s", type,
           !strncmp(type, "text/", 5) ? "; charset=utf-8" : "");
  return http_send_text(r, 200, ct, rep->body, rep->len);
}

/* One URL parameter typed through the op's property schema ps (may be
 * NULL: a string, and the schema check names it as unknown). */
static json_t *typed_param(const char *name, const char *value, json_t *ps,
                           api_error *e)
{
  const char *type = json_string_value(json_object_get(ps, "type"));
  char *end;
  errno = 0;
  if (type && !strcmp(type, "integer")) {
    long long v = strtoll(value, &end, 10);
    if (!*value || *end || errno)
      return api_fail(e, 400, "bad_parameter", name,
                      "%s: expected a whole number, got '%.60s'", name, value),
             NULL;
    return json_integer(v);
  }
  if (type && !strcmp(type, "number")) {
    double v = strtod(value, &end);
    if (!*value || *end || errno || !isfinite(v))
      return api_fail(e, 400, "bad_parameter", name,
                      "%s: expected a number, got '%.60s'", name, value),
             NULL;
    return json_real(v);
  }
  if (type && !strcmp(type, "boolean")) {
    if (!strcmp(value, "true") || !strcmp(value, "1"))
      return json_true();
    if (!strcmp(value, "false") || !strcmp(value, "0"))
      return json_false();
    return api_fail(e, 400, "bad_parameter", name,
                    "%s: expected true or false, got '%.60s'", name, value),
           NULL;
  }
  if (type && (!strcmp(type, "object") || !strcmp(type, "array")))
    return api_fail(e, 400, "bad_parameter", name,
                    "%s: a value of type %s cannot be given as a URL "
                    "parameter; POST the request as JSON to this URL",
                    name, type),
           NULL;
  if (!type && json_object_get(ps, "format")) { /* date-time or ms */
    const char *d = value + (*value == '-');
    if (*d && strspn(d, "0123456789") == strlen(d))
      return json_integer(strtoll(value, NULL, 10));
  }
  json_t *str = json_string(value);
  if (!str)
    api_fail(e, 400, "bad_parameter", name, "%s: not UTF-8 text", name);
  return str;
}

/* The request of a safe op from its URL parameters: 0 with *out (caller
 * frees), else the HTTP status with e filled. */
static int params_request(req *r, const char *op, char **out, api_error *e)
{
  *out = NULL;
  const core_plugin *p = r->ci->plugin;
  const core_op *o = core_plugin_op(p, TWIN_OP_QUERY, op);
  if (!o) {
    if (!core_plugin_op_count(p, TWIN_OP_QUERY))
      return api_fail(e, 405, "method_not_allowed", "op",
                      "plugin '%s' declares no ops, so none is answered on "
                      "GET; POST its request to .../plugins/%s/query",
                      p->desc.name, p->desc.name);
    char *text;
    size_t n;
    const core_op *none;
    core_err err;
    core_host_prepare(p, TWIN_OP_QUERY, op, "{}", 2, &text, &n, &none, &err);
    free(text);
    return api_fail_status(e, TWIN_ERR_NOT_FOUND, &err);
  }
  if (!(o->op.flags & TWIN_OP_SAFE))
    return api_fail(e, 405, "method_not_allowed", "op",
                    "%s query '%s' is not declared safe to answer on GET; "
                    "POST its request as JSON to this URL",
                    p->desc.name, o->op.name);
  json_t *req = json_object(),
         *props = json_object_get(o->schema, "properties");
  for (size_t i = 0; req && i < r->args.n; i++) {
    const char *name = r->args.v[i].name;
    json_t *ps = json_object_get(props, name);
    const char *ptype = json_string_value(json_object_get(ps, "type"));
    int array = ptype && !strcmp(ptype, "array");
    json_t *v = typed_param(name, r->args.v[i].value,
                            array ? json_object_get(ps, "items") : ps, e);
    if (!v) {
      json_decref(req);
      return e->http;
    }
    json_t *have = json_object_get(req, name);
    if (array) {
      if (!have)
        json_object_set_new(req, name, have = json_array());
      json_array_append_new(have, v);
    } else if (have) {
      json_decref(v);
      json_decref(req);
      return api_fail(e, 400, "bad_parameter", name,
                      "%s is given more than once; give it once", name);
    } else {
      json_object_set_new(req, name, v);
    }
  }
  *out = req ? json_dumps(req, JSON_COMPACT) : NULL;
  json_decref(req);
  return *out ? 0 : api_fail(e, 500, "internal", NULL, "out of memory");
}

static enum MHD_Result ask(req *r, int kind, const char *op)
{
  api_error e;
  int get = !strcmp(r->method, "GET") || !strcmp(r->method, "HEAD");
  if (!get && api_args_check(&r->args, http_no_args, &e))
    return http_send_error(r, &e);
  const char *what = kind == TWIN_OP_SCENARIO ? "scenario" : "request";
  enum MHD_Result rc;
  if (!op && !body_json_ok(r, what, &rc))
    return rc;
  char *built = NULL;
  if (get && params_request(r, op, &built, &e))
    return http_send_error(r, &e);
  core_err err;
  core_reply rep;
  int st =
      core_host_request(r->srv->h, r->ci, kind, op, built ? built : r->body,
                        built ? strlen(built) : r->body_len, &rep, &err);
  free(built);
  if (st)
    return http_fail_status(r, st, &err);
  return send_reply(r, &rep);
}

enum MHD_Result http_h_query(req *r)
{
  return ask(r, TWIN_OP_QUERY, NULL);
}

enum MHD_Result http_h_scenario(req *r)
{
  return ask(r, TWIN_OP_SCENARIO, NULL);
}

enum MHD_Result http_h_query_op(req *r)
{
  return ask(r, TWIN_OP_QUERY, http_param(r, "op"));
}

enum MHD_Result http_h_scenario_op(req *r)
{
  return ask(r, TWIN_OP_SCENARIO, http_param(r, "op"));
}

enum MHD_Result http_h_openapi(req *r)
{
  json_t *doc = core_openapi(r->srv->h);
  if (!doc)
    return http_fail(r, 500, "internal", NULL,
                     "cannot build the OpenAPI document");
  return http_send_json(r, 200, doc);
}
