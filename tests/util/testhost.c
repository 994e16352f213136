/*
 * testhost.c — the tests' in-process host (see testhost.h).
 */
#include "testhost.h"

#include <errno.h>
#include <libgen.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "config.h"
#include "store.h"
#include "util.h"
#include "view.h"

/* ---- the folder and its config ------------------------------------------ */

th_host *th_new(void)
{
  th_host *t = calloc(1, sizeof *t);
  if (!t)
    fail_msg("out of memory");
  t->dir = tu_tempdir();
  t->plugins = tu_fmt("%s/plugins", t->dir);
  core_err err;
  if (core_mkdirs(t->plugins, &err))
    fail_msg("%s: %s", t->plugins, err.msg);
  unsetenv("TWINHOST_PLUGIN_PATH");
  return t;
}

void th_free(th_host *t)
{
  if (!t)
    return;
  th_close(t);
  unsetenv("TZDIR");
  unsetenv("TWINHOST_PLUGIN_PATH");
  tu_rmtree(t->dir);
  free(t->dir);
  free(t->plugins);
  free(t->config);
  free(t);
}

int th_teardown(void **state)
{
  th_free(*state);
  return 0;
}

char *th_fixture_path(const char *name)
{
  return tu_fmt("%s/%s", tu_env("TWIN_FIXTURE_DIR"), name);
}

void th_fixture(th_host *t, const char *name)
{
  char *from = th_fixture_path(name);
  char *to = tu_fmt("%s/%s", t->plugins, name);
  if (symlink(from, to))
    fail_msg("symlink %s: %s", to, strerror(errno));
  free(from);
  free(to);
}

/* s as a JSON string (caller frees). */
static char *json_text(const char *s)
{
  json_t *j = json_string(s);
  char *text = j ? json_dumps(j, JSON_ENCODE_ANY) : NULL;
  json_decref(j);
  if (!text)
    fail_msg("%s: not a JSON string", s);
  return text;
}

void th_config(th_host *t, int path, const char *towns_fmt, ...)
{
  va_list ap;
  va_start(ap, towns_fmt);
  char *raw = tu_vfmt(towns_fmt, ap);
  va_end(ap);
  char *towns = tu_jq(raw);
  int fixtures = path & TH_FIXTURES, built = path & TH_BUILT;
  char *build_dir = json_text(built ? tu_env("TWIN_PLUGIN_BUILD_DIR") : "");
  char *plugin_path =
      path ? tu_fmt("\"plugin_path\":[%s%s%s],", fixtures ? "\"plugins\"" : "",
                    fixtures && built ? "," : "", built ? build_dir : "")
           : tu_fmt("%s", "");
  char *text =
      tu_fmt("{\"data_dir\":\"data\",%s\"towns\":[%s]}\n", plugin_path, towns);
  free(t->config);
  t->config = tu_write_file(t->dir, "host.json", text);
  free(text);
  free(plugin_path);
  free(build_dir);
  free(towns);
  free(raw);
}

void th_config_built(th_host *t, const char *town, const char *tz,
                     const char *plugin, const char *config)
{
  th_config(t, TH_BUILT,
            "{'id':'%s','timezone':'%s','scripts':'.',"
            "'plugins':{'%s':{'config':%s}}}",
            town, tz, plugin, config);
}

char *th_scripts_dir(th_host *t, const char *town)
{
  if (!t->config)
    fail_msg("th_scripts_dir: no config written yet");
  core_config *cfg;
  core_err err;
  if (core_config_load(t->config, &cfg, &err))
    fail_msg("config: %s", err.msg);
  const core_town *tw = core_config_town(cfg, town);
  if (!tw)
    fail_msg("the config has no town '%s'", town);
  char *dir = tu_fmt("%s", tw->script_dir);
  core_config_free(cfg);
  return dir;
}

void th_rule(th_host *t, const char *town, const char *name, const char *text)
{
  char *scripts = th_scripts_dir(t, town);
  char *path = tu_fmt("%s/%s", scripts, name);
  char *folder = tu_fmt("%s", path);
  core_err err;
  if (core_mkdirs(dirname(folder), &err))
    fail_msg("%s: %s", path, err.msg);
  free(tu_write_file(scripts, name, text));
  free(folder);
  free(path);
  free(scripts);
}

/* ---- the host ----------------------------------------------------------- */

int th_try_open(th_host *t, int level, core_err *err)
{
  if (!t->config)
    fail_msg("th_try_open: no config written yet");
  if (t->h)
    fail_msg("th_try_open: the host is open already");
  return core_host_open(t->config, level, &t->h, err);
}

void th_open(th_host *t)
{
  core_err err;
  if (th_try_open(t, CORE_HOST_INSTANCES, &err))
    fail_msg("host: %s", err.msg);
  if (core_pipeline_start(t->h, &t->p, &err))
    fail_msg("pipeline: %s", err.msg);
}

void th_close(th_host *t)
{
  if (t->p)
    core_pipeline_stop(t->p);
  if (t->h)
    core_host_close(t->h);
  t->p = NULL;
  t->h = NULL;
}

void th_reopen(th_host *t)
{
  th_close(t);
  th_open(t);
}

core_instance *th_inst(th_host *t, const char *town, const char *plugin)
{
  core_instance *ci = t->h ? core_host_instance(t->h, town, plugin) : NULL;
  if (!ci)
    fail_msg("no instance %s/%s", town, plugin);
  return ci;
}

/* ---- holding the writer ------------------------------------------------- */

static int hold_job(void *arg, core_host *h, MDB_txn *txn, core_overlay *ov,
                    core_err *err)
{
  (void)h;
  (void)txn;
  (void)ov;
  (void)err;
  th_hold *g = arg;
  pthread_mutex_lock(&g->mu);
  g->entered = 1;
  pthread_cond_broadcast(&g->cv);
  while (!g->open)
    pthread_cond_wait(&g->cv, &g->mu);
  pthread_mutex_unlock(&g->mu);
  return TWIN_OK;
}

void th_hold_writer(th_host *t, th_hold *g)
{
  memset(g, 0, sizeof *g);
  pthread_mutex_init(&g->mu, NULL);
  pthread_cond_init(&g->cv, NULL);
  if (core_pipeline_submit_fn(t->p, hold_job, g, NULL, NULL))
    fail_msg("cannot queue the job that holds the writer");
  pthread_mutex_lock(&g->mu);
  while (!g->entered)
    pthread_cond_wait(&g->cv, &g->mu);
  pthread_mutex_unlock(&g->mu);
}

void th_release(th_hold *g)
{
  pthread_mutex_lock(&g->mu);
  g->open = 1;
  pthread_cond_broadcast(&g->cv);
  pthread_mutex_unlock(&g->mu);
}

void th_hold_woken(void *ud)
{
  th_hold *g = ud;
  pthread_mutex_lock(&g->mu);
  g->woken = 1;
  pthread_cond_broadcast(&g->cv);
  pthread_mutex_unlock(&g->mu);
}

void th_hold_end(th_host *t, th_hold *g)
{
  th_release(g);
  core_pipeline_drain(t->p);
  pthread_mutex_destroy(&g->mu);
  pthread_cond_destroy(&g->cv);
}

/* ---- documents ---------------------------------------------------------- */

void th_on_outcome(void *ud, const core_outcome *o)
{
  th_outcome *r = ud;
  th_outcome_free(r);
  r->called = 1;
  r->status = o->status;
  snprintf(r->reason, sizeof r->reason, "%s", o->reason ? o->reason : "");
  snprintf(r->code, sizeof r->code, "%s", o->code ? o->code : "");
  snprintf(r->field, sizeof r->field, "%s", o->field ? o->field : "");
  r->total = o->items->total;
  r->items = o->items->total ? core_items_json(o->items) : NULL;
}

void th_outcome_free(th_outcome *o)
{
  json_decref(o->items);
  o->items = NULL;
}

th_outcome th_ingest_as(th_host *t, core_instance *ci, const char *type,
                        const char *doc, size_t len)
{
  th_outcome r = {0};
  if (!t->p)
    fail_msg("th_ingest: no pipeline runs");
  int st = core_pipeline_submit_as(t->p, ci, type, doc, len, th_on_outcome, &r);
  if (st)
    fail_msg("submit: status %d", st);
  core_pipeline_drain(t->p);
  if (!r.called)
    fail_msg("the pipeline drained without reporting the document");
  return r;
}

th_outcome th_ingest(th_host *t, core_instance *ci, const char *doc)
{
  char *json = tu_jq(doc);
  th_outcome r = th_ingest_as(t, ci, NULL, json, strlen(json));
  free(json);
  return r;
}

void th_ingest_ok(th_host *t, core_instance *ci, const char *doc)
{
  th_outcome r = th_ingest(t, ci, doc);
  if (r.status)
    fail_msg("ingest refused: %d %s (%s)", r.status, r.reason, doc);
  if (r.items)
    fail_msg("items refused: %s (%s)", json_dumps(r.items, 0), doc);
}

void th_ingest_fails(th_host *t, core_instance *ci, const char *doc, int status,
                     const char *fragment1, const char *fragment2)
{
  th_outcome r = th_ingest(t, ci, doc);
  th_outcome_free(&r);
  if (r.status != status)
    fail_msg("expected status %d, got %d (%s) for %s", status, r.status,
             r.reason, doc);
  if (fragment1 && !strstr(r.reason, fragment1))
    fail_msg("reason '%s' lacks '%s'", r.reason, fragment1);
  if (fragment2 && !strstr(r.reason, fragment2))
    fail_msg("reason '%s' lacks '%s'", r.reason, fragment2);
}

/* ---- queries and scenarios ---------------------------------------------- */

int th_request(th_host *t, core_instance *ci, int kind, const char *op,
               const char *req, core_reply *out, core_err *err)
{
  char *json = tu_jq(req);
  int st = core_host_request(t->h, ci, kind, op, json, strlen(json), out, err);
  free(json);
  return st;
}

json_t *th_ask(th_host *t, core_instance *ci, int kind, const char *op,
               const char *req, core_err *err)
{
  core_reply r;
  if (th_request(t, ci, kind, op, req, &r, err))
    return NULL;
  json_t *j = json_loadb(r.body, r.len, JSON_DECODE_ANY, NULL);
  if (!j)
    fail_msg("reply is not JSON: %s", r.body);
  free(r.body);
  return j;
}

json_t *th_ask_ok(th_host *t, core_instance *ci, int kind, const char *op,
                  const char *req)
{
  core_err err;
  json_t *j = th_ask(t, ci, kind, op, req, &err);
  if (!j)
    fail_msg("%s%s%s %s: %s", kind == TWIN_OP_SCENARIO ? "simulate" : "query",
             op ? " " : "", op ? op : "", req, err.msg);
  return j;
}

json_t *th_query(th_host *t, core_instance *ci, const char *req, core_err *err)
{
  return th_ask(t, ci, TWIN_OP_QUERY, NULL, req, err);
}

json_t *th_query_ok(th_host *t, core_instance *ci, const char *req)
{
  return th_ask_ok(t, ci, TWIN_OP_QUERY, NULL, req);
}

static int ask_fails(th_host *t, core_instance *ci, int kind, const char *req,
                     core_err *err)
{
  core_reply r;
  int st = th_request(t, ci, kind, NULL, req, &r, err);
  if (st == TWIN_OK)
    fail_msg("%s %s succeeded: %s",
             kind == TWIN_OP_SCENARIO ? "simulate" : "query", req, r.body);
  assert_null(r.body);
  return st;
}

int th_query_fails(th_host *t, core_instance *ci, const char *req,
                   core_err *err)
{
  return ask_fails(t, ci, TWIN_OP_QUERY, req, err);
}

json_t *th_simulate_ok(th_host *t, core_instance *ci, const char *sc)
{
  return th_ask_ok(t, ci, TWIN_OP_SCENARIO, NULL, sc);
}

json_t *th_simulate_report(th_host *t, core_instance *ci, const char *sc)
{
  json_t *all = th_simulate_ok(t, ci, sc);
  json_t *report = json_incref(json_object_get(all, "report"));
  json_decref(all);
  if (!report)
    fail_msg("simulate %s: the reply has no report", sc);
  return report;
}

int th_simulate_fails(th_host *t, core_instance *ci, const char *sc,
                      core_err *err)
{
  return ask_fails(t, ci, TWIN_OP_SCENARIO, sc, err);
}

/* ---- the store and the CLI ---------------------------------------------- */

static int collect_event(void *ud, const uint8_t *key, size_t klen,
                         const uint8_t *val, size_t vlen)
{
  (void)key;
  (void)klen;
  json_array_append_new(ud, json_loadb((const char *)val, vlen, 0, NULL));
  return TWIN_OK;
}

json_t *th_events(th_host *t, const char *town)
{
  MDB_txn *txn;
  core_err err;
  if (core_store_begin_read(t->h->store, &txn, &err))
    fail_msg("read: %s", err.msg);
  core_key lo = {.len = 0}, hi;
  core_key_part(&lo, town);
  hi = lo;
  core_key_prefix_end(&hi);
  json_t *events = json_array();
  core_view v = {t->h->store, txn, NULL};
  int st = core_view_scan(&v, CORE_DB_EVT, &lo, &hi, collect_event, events);
  core_store_end_read(t->h->store, txn);
  if (st)
    fail_msg("events of %s: status %d", town, st);
  return events;
}

char *th_token(th_host *t, const char *town, const char *scope)
{
  tu_run r = tu_twinhost(NULL, "--config", t->config, "token", "create",
                         "--town", town, "--scope", scope, NULL);
  if (r.exit_code)
    fail_msg("token create: %s", r.err);
  json_t *j = json_loads(r.out, 0, NULL);
  const char *token = json_string_value(json_object_get(j, "token"));
  if (!token)
    fail_msg("token create printed no token: %s", r.out);
  char *out = tu_fmt("%s", token);
  json_decref(j);
  tu_run_free(&r);
  return out;
}

/* ---- time --------------------------------------------------------------- */

twin_time th_time(const char *rfc3339)
{
  twin_time t;
  if (core_parse_time(rfc3339, &t) != TWIN_OK)
    fail_msg("%s: not an RFC 3339 time", rfc3339);
  return t;
}

char *th_rfc3339(twin_time t)
{
  char buf[40];
  core_format_time(t, buf, sizeof buf);
  return tu_fmt("%s", buf);
}
