/*
 * http.c — the HTTP API: libmicrohttpd with its own thread pool.
 *
 * A request goes through three steps. When its headers have arrived
 * (first call of on_request) it is matched against the route table, checked
 * against the limits (connections, header size, body size, stopping) and
 * authorized, so a refused upload is answered before its body is read. Then
 * the body, if any, is collected up to the configured limit. Then the
 * route's handler answers.
 *
 * An ingest suspends its connection after submitting its documents to the
 * pipeline; the writer's done callbacks count them down and the last one
 * resumes the connection, so a pool thread never waits for a commit and
 * many requests share one commit (group commit). An event stream suspends
 * its connection while there is nothing to send; a waker thread resumes the
 * streams when the store changed (events written by this process or any
 * other) and every 15 s for a keepalive line.
 *
 * Stopping (core_http_stop): refuse new requests (503 shutting_down), stop
 * listening, end the streams, wait for requests in flight (an ingest waits
 * for its commit), then stop the daemon.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <limits.h>
#include <math.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "api.h"
#include "http.h"
#include "jsonscan.h"
#include "media.h"
#include "openapi.h"
#include "rules.h"
#include "script.h"
#include "tokens.h"

#define SCOPE_PUBLIC 0u
#define SCOPE_READ ((unsigned)CORE_SCOPE_READ)
#define SCOPE_WRITE ((unsigned)CORE_SCOPE_WRITE)
#define SCOPE_ADMIN ((unsigned)CORE_SCOPE_ADMIN)

#define MAX_SEGS 12
#define KEEPALIVE_MS 15000
#define STOP_WAIT_MS 30000

typedef struct req req;
typedef enum MHD_Result (*handler_fn)(req *r);

typedef struct route {
  const char *method;
  const char *path;
  unsigned scope;
  handler_fn fn;
} route;

/* Statuses counted per route in /metrics; a status not listed counts
 * under the first listed one of its class (e.g. 302 is not answered). */
static const int counted_status[] = {200, 204, 400, 401, 403, 404, 405,
                                     413, 415, 422, 431, 500, 503, 504};
#define N_STATUS (sizeof counted_status / sizeof counted_status[0])

/* Commit latency buckets of /metrics, in milliseconds. */
static const double commit_bounds_ms[] = CORE_COMMIT_BUCKETS_MS;
#define N_BOUNDS CORE_COMMIT_BUCKETS

typedef struct sse sse;

struct core_http {
  core_host *h;
  core_pipeline *p;
  core_http_config cfg;
  struct MHD_Daemon *d;
  uint16_t port;
  twin_time started;
  int stopping;         /* atomic */
  long connections;     /* atomic: open connections */
  long in_flight;       /* atomic: requests between headers and completion */
  long committing;      /* atomic: ingests suspended until their commit */
  /* event streams */
  pthread_mutex_t sse_mu;
  pthread_cond_t sse_cv;
  sse *streams;
  long n_streams;
  uint64_t gen; /* bumped when the store changed; under sse_mu */
  pthread_t waker;
  int waker_stop; /* under sse_mu */
  /* metrics: [route][status] (route n = unknown route) */
  uint64_t *counts;
  double *seconds; /* [route]: time spent answering */
};

struct req {
  core_http *srv;
  struct MHD_Connection *conn;
  const route *rt;
  int route_idx;
  const char *method;
  /* path parameters in template order, by name */
  const char *pname[MAX_SEGS], *pval[MAX_SEGS];
  size_t np;
  char *url;  /* the URL as MHD decoded it */
  char *path; /* a copy of it, split in place */
  int admitted; /* routed and checked (admit) */
  /* The read transaction authorize used, kept for the handler when both
   * run in the same call (a thread may hold one only while it works on
   * this request). */
  MDB_txn *txn;
  int may_keep_txn;
  const core_town *town;
  core_instance *ci;
  api_arg *argv;
  size_t argc, argcap;
  api_args args;
  char *body;
  size_t body_len, body_cap;
  int too_large;
  int responded;
  uint64_t t0;
  /* ingest */
  pthread_mutex_t mu;
  int pending, suspended, submitted;
  int counted_committing; /* in srv->committing until completed */
  struct doc_result *results;
  size_t n_docs;
};

typedef struct doc_result {
  req *r;
  int status;
  char *reason;
  char code[48], field[200]; /* the plugin's, when it set them */
  json_t *items;             /* refused items, or NULL */
  size_t items_total;
} doc_result;

struct sse {
  core_http *srv;
  struct MHD_Connection *conn;
  const core_town *town;
  uint64_t last; /* seq of the last event sent */
  char *out;
  size_t out_len, out_off;
  twin_time last_write;
  int suspended; /* under srv->sse_mu */
  sse *next;
};

/* ---- routes -------------------------------------------------------------- */

static enum MHD_Result h_healthz(req *r);
static enum MHD_Result h_metrics(req *r);
static enum MHD_Result h_root(req *r);
static enum MHD_Result h_plugins(req *r);
static enum MHD_Result h_plugin(req *r);
static enum MHD_Result h_towns(req *r);
static enum MHD_Result h_town(req *r);
static enum MHD_Result h_entities(req *r);
static enum MHD_Result h_entity(req *r);
static enum MHD_Result h_history(req *r);
static enum MHD_Result h_town_plugin(req *r);
static enum MHD_Result h_ingest(req *r);
static enum MHD_Result h_query(req *r);
static enum MHD_Result h_scenario(req *r);
static enum MHD_Result h_query_op(req *r);
static enum MHD_Result h_scenario_op(req *r);
static enum MHD_Result h_openapi(req *r);
static enum MHD_Result h_events(req *r);
static enum MHD_Result h_stream(req *r);
static enum MHD_Result h_rules(req *r);
static enum MHD_Result h_tokens(req *r);

static const route routes[] = {
    {"GET", "/healthz", SCOPE_PUBLIC, h_healthz},
    {"GET", "/metrics", SCOPE_PUBLIC, h_metrics},
    {"GET", "/v1", SCOPE_PUBLIC, h_root},
    {"GET", "/v1/openapi.json", SCOPE_PUBLIC, h_openapi},
    {"GET", "/v1/plugins", SCOPE_PUBLIC, h_plugins},
    {"GET", "/v1/plugins/{plugin}", SCOPE_PUBLIC, h_plugin},
    {"GET", "/v1/towns", SCOPE_PUBLIC, h_towns},
    {"GET", "/v1/towns/{town}", SCOPE_READ, h_town},
    {"GET", "/v1/towns/{town}/entities", SCOPE_READ, h_entities},
    {"GET", "/v1/towns/{town}/entities/{plugin}/{type}/{id}", SCOPE_READ,
     h_entity},
    {"GET", "/v1/towns/{town}/entities/{plugin}/{type}/{id}/history/{attr}",
     SCOPE_READ, h_history},
    {"GET", "/v1/towns/{town}/plugins/{plugin}", SCOPE_READ, h_town_plugin},
    {"POST", "/v1/towns/{town}/plugins/{plugin}/ingest", SCOPE_WRITE,
     h_ingest},
    {"POST", "/v1/towns/{town}/plugins/{plugin}/query", SCOPE_READ, h_query},
    {"POST", "/v1/towns/{town}/plugins/{plugin}/scenario", SCOPE_READ,
     h_scenario},
    {"GET", "/v1/towns/{town}/plugins/{plugin}/query/{op}", SCOPE_READ,
     h_query_op},
    {"POST", "/v1/towns/{town}/plugins/{plugin}/query/{op}", SCOPE_READ,
     h_query_op},
    {"POST", "/v1/towns/{town}/plugins/{plugin}/scenario/{op}", SCOPE_READ,
     h_scenario_op},
    {"GET", "/v1/towns/{town}/events", SCOPE_READ, h_events},
    {"GET", "/v1/towns/{town}/events/stream", SCOPE_READ, h_stream},
    {"GET", "/v1/towns/{town}/rules", SCOPE_ADMIN, h_rules},
    {"GET", "/v1/towns/{town}/tokens", SCOPE_ADMIN, h_tokens},
};
#define N_ROUTES (sizeof routes / sizeof routes[0])

static const char *scope_name(unsigned s)
{
  return s == SCOPE_ADMIN   ? "admin"
         : s == SCOPE_WRITE ? "write"
         : s == SCOPE_READ  ? "read"
                            : "public";
}

json_t *core_http_routes(void)
{
  json_t *a = json_array();
  for (size_t i = 0; i < N_ROUTES; i++)
    json_array_append_new(a, json_pack("{s:s,s:s,s:s}", "method",
                                       routes[i].method, "path",
                                       routes[i].path, "scope",
                                       scope_name(routes[i].scope)));
  return a;
}

/* Match the segments of a path against a template; fills the parameters. */
static int match_template(const char *tpl, char **seg, size_t nseg, req *r)
{
  size_t i = 0;
  const char *t = tpl;
  size_t np = 0;
  while (*t) {
    if (*t != '/' || i >= nseg)
      return 0;
    t++;
    const char *end = strchr(t, '/');
    size_t len = end ? (size_t)(end - t) : strlen(t);
    if (len >= 2 && t[0] == '{' && t[len - 1] == '}') {
      r->pname[np] = t + 1; /* "town}/..." compared by length below */
      r->pval[np] = seg[i];
      np++;
    } else if (strlen(seg[i]) != len || strncmp(seg[i], t, len)) {
      return 0;
    }
    i++;
    t += len;
  }
  if (i != nseg)
    return 0;
  r->np = np;
  return 1;
}

/* The value of path parameter name ("town", "plugin", ...), or NULL. */
static const char *param(const req *r, const char *name)
{
  size_t n = strlen(name);
  for (size_t i = 0; i < r->np; i++)
    if (!strncmp(r->pname[i], name, n) && r->pname[i][n] == '}')
      return r->pval[i];
  return NULL;
}

/* ---- responses ----------------------------------------------------------- */

static size_t status_slot(int status)
{
  for (size_t i = 0; i < N_STATUS; i++)
    if (counted_status[i] == status)
      return i;
  /* an uncounted status: the first counted one of its class */
  for (size_t i = 0; i < N_STATUS; i++)
    if (counted_status[i] / 100 == status / 100)
      return i;
  return N_STATUS - 1;
}

static void count(req *r, int status)
{
  core_http *s = r->srv;
  size_t ri = (size_t)r->route_idx;
  __atomic_add_fetch(&s->counts[ri * N_STATUS + status_slot(status)], 1,
                     __ATOMIC_RELAXED);
}

static void common_headers(struct MHD_Response *resp)
{
  MHD_add_response_header(resp, "Access-Control-Allow-Origin", "*");
  MHD_add_response_header(resp, "Cache-Control", "no-store");
}

static enum MHD_Result send_text(req *r, int status, const char *type,
                                 char *text, size_t len)
{
  struct MHD_Response *resp =
      MHD_create_response_from_buffer(len, text, MHD_RESPMEM_MUST_FREE);
  if (!resp) {
    free(text);
    return MHD_NO;
  }
  MHD_add_response_header(resp, "Content-Type", type);
  common_headers(resp);
  if (status == 401)
    MHD_add_response_header(resp, "WWW-Authenticate",
                            "Bearer realm=\"twinhost\"");
  if (status == 503)
    MHD_add_response_header(resp, "Retry-After", "5");
  if (status == 405 && r->route_idx < (int)N_ROUTES) {
    /* every method the path has */
    char allow[64] = "";
    const char *path = routes[r->route_idx].path;
    for (size_t i = 0; i < N_ROUTES; i++)
      if (!strcmp(routes[i].path, path) && !strstr(allow, routes[i].method))
        snprintf(allow + strlen(allow), sizeof allow - strlen(allow),
                 "%s%s", allow[0] ? ", " : "", routes[i].method);
    snprintf(allow + strlen(allow), sizeof allow - strlen(allow), ", OPTIONS");
    MHD_add_response_header(resp, "Allow", allow);
  }
  if (__atomic_load_n(&r->srv->stopping, __ATOMIC_ACQUIRE) ||
      status == 413 || status == 431)
    MHD_add_response_header(resp, "Connection", "close");
  enum MHD_Result rc = MHD_queue_response(r->conn, (unsigned)status, resp);
  MHD_destroy_response(resp);
  r->responded = 1;
  count(r, status);
  return rc;
}

static enum MHD_Result send_json(req *r, int status, json_t *body)
{
  char *text =
      json_dumps(body, JSON_COMPACT | JSON_ENCODE_ANY | JSON_REAL_PRECISION(15));
  json_decref(body);
  if (!text)
    return MHD_NO;
  size_t len = strlen(text);
  /* a trailing newline makes curl output readable */
  char *t2 = realloc(text, len + 2);
  if (t2) {
    text = t2;
    text[len++] = '\n';
    text[len] = 0;
  }
  return send_text(r, status, "application/json", text, len);
}

static enum MHD_Result send_error(req *r, const api_error *e)
{
  return send_json(r, e->http, api_error_json(e));
}

static enum MHD_Result fail(req *r, int http, const char *code,
                            const char *field, const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));
static enum MHD_Result fail(req *r, int http, const char *code,
                            const char *field, const char *fmt, ...)
{
  api_error e;
  char msg[sizeof e.message];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(msg, sizeof msg, fmt, ap);
  va_end(ap);
  api_fail(&e, http, code, field, "%s", msg);
  return send_error(r, &e);
}

/* A host error (a twin status and its core_err) as an API error, by the
 * one table of api_status_http (docs/api.md). */
static enum MHD_Result fail_status(req *r, int st, const core_err *err)
{
  api_error e;
  api_fail_status(&e, st, err);
  return send_error(r, &e);
}

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

static enum MHD_Result h_healthz(req *r)
{
  core_http *s = r->srv;
  int stopping = __atomic_load_n(&s->stopping, __ATOMIC_ACQUIRE);
  size_t running = 0;
  for (size_t i = 0; i < s->h->n_inst; i++)
    running += core_instance_usable(s->h, &s->h->inst[i], NULL);
  core_pipeline_stats st;
  core_pipeline_stats_get(s->p, &st);
  return send_json(
      r, stopping ? 503 : 200,
      json_pack("{s:s,s:I,s:I,s:I,s:I,s:I}", "status",
                stopping ? "stopping" : "ok", "uptime_s",
                (json_int_t)((core_now_ms() - s->started) / 1000), "towns",
                (json_int_t)s->h->cfg->n_towns, "plugins_running",
                (json_int_t)running, "plugins_not_running",
                (json_int_t)(s->h->n_inst - running), "documents_committed",
                (json_int_t)(st.docs - st.docs_rejected)));
}

static enum MHD_Result h_root(req *r)
{
  core_host *h = r->srv->h;
  json_t *towns = json_array(), *plugins = json_array();
  for (size_t i = 0; i < h->cfg->n_towns; i++)
    json_array_append_new(towns, json_string(h->cfg->towns[i].id));
  for (size_t i = 0; i < h->n_plugins; i++)
    json_array_append_new(plugins, json_string(h->plugins[i].desc.name));
  char abi[16];
  snprintf(abi, sizeof abi, "%d.%d", TWIN_ABI_MAJOR, TWIN_ABI_MINOR);
  return send_json(
      r, 200,
      json_pack("{s:s,s:s,s:s,s:o,s:o,s:o,s:s}", "name", "twinhost", "version",
                TWIN_VERSION, "abi", abi, "towns", towns, "plugins", plugins,
                "routes", core_http_routes(), "docs",
                "docs/api.md in the twinhost sources"));
}

static enum MHD_Result h_plugins(req *r)
{
  core_host *h = r->srv->h;
  json_t *loaded = json_array(), *refused = json_array();
  for (size_t i = 0; i < h->n_plugins; i++)
    json_array_append_new(loaded, core_plugin_json(&h->plugins[i], 0, 0));
  for (size_t i = 0; i < h->n_refused; i++) {
    const char *file = strrchr(h->refused[i].path, '/');
    json_array_append_new(
        refused, json_pack("{s:s,s:s}", "file",
                           file ? file + 1 : h->refused[i].path, "reason",
                           h->refused[i].reason));
  }
  return send_json(r, 200,
                   json_pack("{s:o,s:o}", "plugins", loaded, "refused",
                             refused));
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
  return fail(r, 404, "unknown_plugin", "plugin",
              "no plugin '%s' is loaded%s (loaded: %s)", name, hint,
              n ? known : "none");
}

static enum MHD_Result h_plugin(req *r)
{
  const char *name = param(r, "plugin");
  core_plugin *p = core_host_plugin(r->srv->h, name);
  if (!p)
    return unknown_plugin(r, name);
  return send_json(r, 200, core_plugin_json(p, 0, 1));
}

static enum MHD_Result h_towns(req *r)
{
  core_host *h = r->srv->h;
  json_t *a = json_array();
  for (size_t i = 0; i < h->cfg->n_towns; i++)
    json_array_append_new(a, town_brief(&h->cfg->towns[i]));
  return send_json(r, 200, json_pack("{s:o}", "towns", a));
}

static enum MHD_Result h_town(req *r)
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
  return send_json(r, 200, o);
}

/* ---- handlers: store reads ----------------------------------------------- */

typedef int (*read_fn)(req *r, MDB_txn *txn, json_t **out, api_error *e);

static void drop_txn(req *r)
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
    *rc = fail(r, 503, "unavailable", NULL, "%s", err.msg);
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
    return send_error(r, &e);
  return send_json(r, 200, out);
}

static const char *const no_args[] = {NULL};

static int rd_entities(req *r, MDB_txn *txn, json_t **out, api_error *e)
{
  return api_entities(r->srv->h, txn, r->town, &r->args, out, e);
}

static enum MHD_Result h_entities(req *r)
{
  return with_read(r, rd_entities);
}

static enum MHD_Result h_entity(req *r)
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
  int st = api_entity_text(h, txn, r->town, param(r, "plugin"),
                           param(r, "type"), param(r, "id"), &text, &len, &e);
  core_store_end_read(h->store, txn);
  if (st)
    return send_error(r, &e);
  return send_text(r, 200, "application/json", text, len);
}

static int rd_history(req *r, MDB_txn *txn, json_t **out, api_error *e)
{
  return api_history(r->srv->h, txn, r->town, param(r, "plugin"),
                     param(r, "type"), param(r, "id"), param(r, "attr"),
                     &r->args, out, e);
}

static enum MHD_Result h_history(req *r)
{
  return with_read(r, rd_history);
}

static int rd_events(req *r, MDB_txn *txn, json_t **out, api_error *e)
{
  return api_events(r->srv->h, txn, r->town, &r->args, out, e);
}

static enum MHD_Result h_events(req *r)
{
  return with_read(r, rd_events);
}

static int rd_tokens(req *r, MDB_txn *txn, json_t **out, api_error *e)
{
  int st = api_args_check(&r->args, no_args, e);
  if (st)
    return st;
  core_err err;
  json_t *list = NULL;
  if (core_token_list(r->srv->h->store, txn, r->town->id, &list, &err))
    return api_fail(e, 500, "internal", NULL, "%s", err.msg);
  *out = json_pack("{s:o}", "tokens", list);
  return 0;
}

static enum MHD_Result h_tokens(req *r)
{
  return with_read(r, rd_tokens);
}

static enum MHD_Result h_rules(req *r)
{
  core_host *h = r->srv->h;
  api_error e;
  if (api_args_check(&r->args, no_args, &e))
    return send_error(r, &e);
  struct core_script *sc = core_host_script(h, r->town);
  size_t ti = (size_t)(r->town - h->cfg->towns);
  json_t *o = NULL;
  if (sc) {
    char *text = core_script_status(sc);
    o = text ? json_loads(text, 0, NULL) : NULL;
    free(text);
    if (!o)
      return fail(r, 500, "internal", NULL, "cannot read the rule status");
    json_object_set_new(o, "state", json_string("loaded"));
  } else if (h->script_error && h->script_error[ti]) {
    o = json_pack("{s:s,s:s}", "state", "failed", "error",
                  h->script_error[ti]);
  } else {
    o = json_pack("{s:s,s:s}", "state", "none", "hint",
                  "this town has no rules: put .lua files in its scripts "
                  "folder (see docs/rules.md)");
  }
  json_object_set_new(o, "town", json_string(r->town->id));
  return send_json(r, 200, o);
}

static enum MHD_Result h_town_plugin(req *r)
{
  core_host *h = r->srv->h;
  api_error e;
  if (api_args_check(&r->args, no_args, &e))
    return send_error(r, &e);
  json_t *o = core_plugin_json(r->ci->plugin, 0, 0);
  json_object_set_new(o, "health", instance_health(h, r->ci));
  json_object_set_new(o, "config",
                      json_loads(r->ci->config_json, 0, NULL));
  core_err err;
  char *desc = NULL;
  if (r->ci->plugin->desc.describe &&
      !core_host_describe(h, r->ci, &desc, &err) && desc) {
    json_t *d = json_loads(desc, JSON_DECODE_ANY, NULL);
    json_object_set_new(o, "describe", d ? d : json_null());
  }
  free(desc);
  return send_json(r, 200, o);
}

/* ---- handlers: query and scenario ---------------------------------------- */

/* The body must be JSON; 400 bad_json naming where it breaks. */
static int body_json_ok(req *r, const char *what)
{
  if (!r->body_len) {
    fail(r, 400, "bad_json", "body",
         "the %s is missing: send it as a JSON body, e.g. {\"op\":\"now\"}, "
         "or name the op in the path (.../%s/<op>)",
         what, strcmp(what, "scenario") ? "query" : "scenario");
    return 0;
  }
  json_error_t je;
  json_t *j = json_loadb(r->body, r->body_len, JSON_DECODE_ANY, &je);
  if (!j) {
    fail(r, 400, "bad_json", "body",
         "the %s is not JSON: %s (line %d, column %d)", what, je.text, je.line,
         je.column);
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
  return send_text(r, 200, ct, rep->body, rep->len);
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
  json_t *req = json_object(), *props = json_object_get(o->schema, "properties");
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
  if (!get && api_args_check(&r->args, no_args, &e))
    return send_error(r, &e);
  const char *what = kind == TWIN_OP_SCENARIO ? "scenario" : "request";
  if (!op && !body_json_ok(r, what))
    return MHD_YES;
  char *built = NULL;
  if (get && params_request(r, op, &built, &e))
    return send_error(r, &e);
  core_err err;
  core_reply rep;
  int st = core_host_request(r->srv->h, r->ci, kind, op,
                             built ? built : r->body,
                             built ? strlen(built) : r->body_len, &rep, &err);
  free(built);
  if (st)
    return fail_status(r, st, &err);
  return send_reply(r, &rep);
}

static enum MHD_Result h_query(req *r)
{
  return ask(r, TWIN_OP_QUERY, NULL);
}

static enum MHD_Result h_scenario(req *r)
{
  return ask(r, TWIN_OP_SCENARIO, NULL);
}

static enum MHD_Result h_query_op(req *r)
{
  return ask(r, TWIN_OP_QUERY, param(r, "op"));
}

static enum MHD_Result h_scenario_op(req *r)
{
  return ask(r, TWIN_OP_SCENARIO, param(r, "op"));
}

static enum MHD_Result h_openapi(req *r)
{
  json_t *doc = core_openapi(r->srv->h);
  if (!doc)
    return fail(r, 500, "internal", NULL, "cannot build the OpenAPI document");
  return send_json(r, 200, doc);
}

/* ---- handlers: ingest ---------------------------------------------------- */

static void ingest_done(void *ud, const core_outcome *o)
{
  doc_result *d = ud;
  req *r = d->r;
  d->status = o->status;
  if (o->status)
    d->reason = strdup(o->reason && *o->reason ? o->reason
                                               : core_status_message(o->status));
  snprintf(d->code, sizeof d->code, "%s", o->code ? o->code : "");
  snprintf(d->field, sizeof d->field, "%s", o->field ? o->field : "");
  if (o->items && o->items->total) {
    d->items = core_items_json(o->items);
    d->items_total = o->items->total;
  }
  /* Resume only after unlocking: once resumed, a pool thread may answer
   * and free r (and r->mu) at once. A suspended connection stays until
   * resumed, so conn is still valid here. */
  struct MHD_Connection *resume = NULL;
  core_http *srv = r->srv;
  int counted = 0;
  pthread_mutex_lock(&r->mu);
  if (--r->pending == 0 && r->suspended) {
    r->suspended = 0;
    resume = r->conn;
    counted = r->counted_committing;
    r->counted_committing = 0;
  }
  pthread_mutex_unlock(&r->mu);
  if (resume)
    MHD_resume_connection(resume);
  if (counted) /* only now may core_http_stop stop the daemon */
    __atomic_sub_fetch(&srv->committing, 1, __ATOMIC_ACQ_REL);
}

static enum MHD_Result ingest_reply(req *r)
{
  json_t *results = json_array();
  size_t ok = 0, refused = 0;
  for (size_t i = 0; i < r->n_docs; i++) {
    doc_result *d = &r->results[i];
    json_t *row;
    if (!d->status) {
      ok++;
      row = json_pack("{s:I,s:s}", "index", (json_int_t)i, "status",
                      "accepted");
    } else {
      core_err err;
      core_err_set(&err, d->status, "%s", d->reason ? d->reason : "rejected");
      core_err_detail(&err, d->code[0] ? d->code : NULL,
                      d->field[0] ? d->field : NULL);
      api_error e;
      api_fail_status(&e, d->status, &err);
      json_t *ej = api_error_json(&e);
      row = json_pack("{s:I,s:s,s:O}", "index", (json_int_t)i, "status",
                      "rejected", "error", json_object_get(ej, "error"));
      json_decref(ej);
    }
    if (row && d->items_total) {
      refused += d->items_total;
      json_object_set_new(row, "items_refused",
                          json_integer((json_int_t)d->items_total));
      json_object_set_new(row, "refused", d->items);
      d->items = NULL;
    }
    json_array_append_new(results, row);
  }
  size_t n = r->n_docs;
  return send_json(r, ok || !n ? 200 : 422,
                   json_pack("{s:I,s:I,s:I,s:o}", "accepted", (json_int_t)ok,
                             "rejected", (json_int_t)(n - ok), "items_refused",
                             (json_int_t)refused, "results", results));
}

static int is_ndjson(req *r)
{
  const char *ct = MHD_lookup_connection_value(r->conn, MHD_HEADER_KIND,
                                               "Content-Type");
  return ct && (!strncasecmp(ct, "application/x-ndjson", 20) ||
                !strncasecmp(ct, "application/jsonl", 17) ||
                !strncasecmp(ct, "application/json-lines", 22));
}

/* Grow the slices of d to hold n. */
static int docs_reserve(core_http_docs *d, size_t n)
{
  if (n <= d->cap)
    return 0;
  size_t cap = d->cap ? d->cap : 64;
  while (cap < n)
    cap *= 2;
  const char **s2 = realloc(d->start, cap * sizeof *s2);
  if (s2)
    d->start = s2;
  size_t *l2 = realloc(d->len, cap * sizeof *l2);
  if (l2)
    d->len = l2;
  if (!s2 || !l2)
    return -1;
  d->cap = cap;
  return 0;
}

void core_http_docs_free(core_http_docs *d)
{
  free(d->start);
  free(d->len);
  memset(d, 0, sizeof *d);
}

/* 400 bad_json for the scanner's error in body. */
static int scan_fail(api_error *e, const char *body, size_t base,
                     const core_json_scan_err *se, size_t line_no)
{
  size_t line, col;
  core_json_line_col(body + base, se->at - base, &line, &col);
  if (line_no)
    return api_fail(e, 400, "bad_json", "body",
                    "line %zu is not JSON: %s (column %zu); nothing was "
                    "ingested",
                    line_no, se->why, col);
  return api_fail(e, 400, "bad_json", "body",
                  "the body is not JSON: %s (line %zu, column %zu); nothing "
                  "was ingested. Send a JSON array of documents, or JSON "
                  "Lines with Content-Type: application/x-ndjson",
                  se->why, line, col);
}

static int add_doc(core_http_docs *d, const char *start, size_t len,
                   api_error *e)
{
  if (docs_reserve(d, d->n + 1)) {
    core_http_docs_free(d);
    return api_fail(e, 500, "internal", NULL, "out of memory");
  }
  d->start[d->n] = start;
  d->len[d->n] = len;
  d->n++;
  return 0;
}

/* The elements of the JSON array at body[i] ('[') into d; *end is just
 * past it. 0; -1 with se filled when the text is not JSON; or the HTTP
 * status of e (out of memory). */
static int split_array(const char *body, size_t blen, size_t i, size_t *end,
                       core_http_docs *d, core_json_scan_err *se, api_error *e)
{
  i = core_json_ws(body, blen, i + 1);
  if (i < blen && body[i] == ']') {
    *end = i + 1;
    return 0;
  }
  for (;;) {
    size_t vend;
    if (core_json_scan(body, blen, i, &vend, se))
      return -1;
    if (add_doc(d, body + i, vend - i, e))
      return e->http;
    i = core_json_ws(body, blen, vend);
    if (i < blen && body[i] == ']') {
      *end = i + 1;
      return 0;
    }
    if (i >= blen || body[i] != ',') {
      se->at = i;
      se->why = i >= blen ? "the array is not closed" : "expected ',' or ']'";
      return -1;
    }
    i = core_json_ws(body, blen, i + 1);
  }
}

static int scan_bad(api_error *e, const char *body, core_http_docs *d,
                    const core_json_scan_err *se)
{
  core_http_docs_free(d);
  return scan_fail(e, body, 0, se, 0);
}

int core_http_split_docs(const char *body, size_t blen, int ndjson,
                         core_http_docs *d, api_error *e)
{
  memset(d, 0, sizeof *d);
  core_json_scan_err se;
  size_t i = core_json_ws(body, blen, 0), end;
  if (i == blen)
    return api_fail(e, 400, "bad_request", "body",
                    "no documents: send a JSON array of documents, "
                    "{\"documents\": [...]}, or JSON Lines with "
                    "Content-Type: application/x-ndjson");
  if (ndjson) {
    size_t line = 0, p = 0;
    while (p < blen) {
      const char *nl = memchr(body + p, '\n', blen - p);
      size_t le = nl ? (size_t)(nl - body) : blen;
      line++;
      size_t ls = p, b = p;
      while (b < le && (body[b] == ' ' || body[b] == '\t' || body[b] == '\r'))
        b++;
      p = nl ? le + 1 : blen;
      if (b == le)
        continue;
      if (core_json_scan(body, le, b, &end, &se)) {
        core_http_docs_free(d);
        return scan_fail(e, body, ls, &se, line);
      }
      size_t tail = end;
      while (tail < le &&
             (body[tail] == ' ' || body[tail] == '\t' || body[tail] == '\r'))
        tail++;
      if (tail < le) {
        core_http_docs_free(d);
        se.at = tail;
        se.why = "more after the document (one document per line)";
        return scan_fail(e, body, ls, &se, line);
      }
      if (add_doc(d, body + b, end - b, e))
        return e->http;
    }
  } else if (body[i] == '[') {
    /* The usual batch: validate and split in one pass, nothing built;
     * the documents go to the plugin as sent. */
    int st = split_array(body, blen, i, &end, d, &se, e);
    if (st)
      return st < 0 ? scan_bad(e, body, d, &se) : st;
    i = core_json_ws(body, blen, end);
    if (i < blen) {
      se.at = i;
      se.why = "more text after the array";
      return scan_bad(e, body, d, &se);
    }
  } else {
    /* {"documents": [...]} (other members are ignored; of two
     * "documents" the last counts, as with any JSON object), or a
     * value that is not a batch: checked whole first. */
    if (core_json_scan(body, blen, i, &end, &se))
      return scan_bad(e, body, d, &se);
    size_t after = core_json_ws(body, blen, end);
    if (after < blen) {
      se.at = after;
      se.why = "more text after the value";
      return scan_bad(e, body, d, &se);
    }
    if (body[i] != '{')
      return api_fail(e, 400, "bad_request", "body",
                      "expected a document (a JSON object), a JSON array of "
                      "documents or {\"documents\": [...]}, got %s",
                      body[i] == '"'   ? "a string"
                      : body[i] == 't' ? "true"
                      : body[i] == 'f' ? "false"
                      : body[i] == 'n' ? "null"
                                       : "a number");
    size_t docs_at = 0, k = core_json_ws(body, blen, i + 1);
    int found = 0;
    while (k < blen && body[k] == '"') { /* the text is valid JSON */
      size_t kend, vend;
      core_json_scan(body, blen, k, &kend, &se);
      int is_docs = kend - k == 11 && !memcmp(body + k, "\"documents\"", 11);
      k = core_json_ws(body, blen, core_json_ws(body, blen, kend) + 1);
      core_json_scan(body, blen, k, &vend, &se);
      if (is_docs) {
        found = 1;
        docs_at = k;
      }
      k = core_json_ws(body, blen, vend);
      if (k < blen && body[k] == ',')
        k = core_json_ws(body, blen, k + 1);
    }
    if (!found) /* one document, as a sensor gateway posts it */
      return add_doc(d, body + i, end - i, e) ? e->http : 0;
    if (body[docs_at] != '[')
      return api_fail(e, 400, "bad_request", "documents",
                      "\"documents\" must be an array of documents (or "
                      "post one document alone, without \"documents\")");
    int st = split_array(body, blen, docs_at, &end, d, &se, e);
    if (st)
      return st < 0 ? scan_bad(e, body, d, &se) : st;
  }
  if (!d->n) {
    core_http_docs_free(d);
    return api_fail(e, 400, "bad_request", "body",
                    "no documents in the body; nothing was ingested");
  }
  return 0;
}

/* The media type of an ingest body the plugin takes whole ("text/csv"),
 * into type; "" for JSON (a batch) and for what curl sends by default. */
static void raw_type(req *r, char *type, size_t size)
{
  const char *ct = MHD_lookup_connection_value(r->conn, MHD_HEADER_KIND,
                                               "Content-Type");
  type[0] = 0;
  char bare[128];
  core_media_bare(ct, bare, sizeof bare);
  /* a type the plugin declares is its own, JSON ones too (GeoJSON) */
  const char *declared = r->ci ? r->ci->plugin->desc.ingest_types : NULL;
  if (ct && declared && core_media_in_list(declared, ct)) {
    snprintf(type, size, "%s", bare);
    return;
  }
  if (!ct || core_media_is_json(ct) || is_ndjson(r))
    return;
  if (!strcmp(bare, "application/x-www-form-urlencoded") ||
      !strcmp(bare, "text/plain") || !bare[0])
    return; /* `curl -d @file.json` says form-urlencoded: read as JSON */
  snprintf(type, size, "%s", bare);
}

static enum MHD_Result h_ingest(req *r)
{
  if (r->submitted) /* resumed: every document has its outcome */
    return ingest_reply(r);
  api_error e;
  core_http_docs d;
  char type[128];
  raw_type(r, type, sizeof type);
  if (api_args_check(&r->args, no_args, &e))
    return send_error(r, &e);
  if (type[0]) { /* one document of a type the plugin declared, as sent */
    memset(&d, 0, sizeof d);
    if (!r->body_len)
      return fail(r, 400, "bad_request", "body",
                  "the body is empty: send the %s document", type);
    if (add_doc(&d, r->body, r->body_len, &e))
      return send_error(r, &e);
  } else if (core_http_split_docs(r->body, r->body_len, is_ndjson(r), &d,
                                  &e)) {
    return send_error(r, &e);
  }
  r->results = calloc(d.n, sizeof *r->results);
  if (!r->results) {
    core_http_docs_free(&d);
    return fail(r, 500, "internal", NULL, "out of memory");
  }
  r->n_docs = d.n;
  r->pending = (int)d.n;
  r->submitted = 1;
  for (size_t i = 0; i < d.n; i++) {
    r->results[i].r = r;
    int st = core_pipeline_submit_as(r->srv->p, r->ci, type[0] ? type : NULL,
                                     d.start[i], d.len[i], ingest_done,
                                     &r->results[i]);
    if (st) {
      core_items none = {0};
      core_outcome o = {
          st,
          st == TWIN_ERR_UNAVAILABLE
              ? "the host is stopping; send this document again later"
              : "the document could not be queued (out of memory); send it "
                "again later",
          NULL, NULL, &none};
      ingest_done(&r->results[i], &o);
    }
  }
  core_http_docs_free(&d);
  pthread_mutex_lock(&r->mu);
  int wait = r->pending > 0;
  if (wait) {
    r->suspended = 1;
    r->counted_committing = 1;
    __atomic_add_fetch(&r->srv->committing, 1, __ATOMIC_ACQ_REL);
    MHD_suspend_connection(r->conn);
  }
  pthread_mutex_unlock(&r->mu);
  return wait ? MHD_YES : ingest_reply(r);
}

/* ---- handlers: event stream ---------------------------------------------- */

static void sse_free(void *cls)
{
  sse *s = cls;
  core_http *srv = s->srv;
  pthread_mutex_lock(&srv->sse_mu);
  for (sse **pp = &srv->streams; *pp; pp = &(*pp)->next)
    if (*pp == s) {
      *pp = s->next;
      break;
    }
  srv->n_streams--;
  pthread_cond_broadcast(&srv->sse_cv);
  pthread_mutex_unlock(&srv->sse_mu);
  free(s->out);
  free(s);
}

/* Append the events after s->last to s->out; 1 when something was added. */
static int sse_fill(sse *s)
{
  core_host *h = s->srv->h;
  MDB_txn *txn;
  core_err err;
  if (core_store_begin_read(h->store, &txn, &err))
    return 0;
  json_t *evs = NULL;
  uint64_t last = s->last;
  int added = 0;
  int st = api_events_since(h, txn, s->town, s->last, 100, &evs, &last);
  if (!st && !json_array_size(evs))
    s->last = last; /* only damaged events, passed over */
  if (!st && json_array_size(evs)) {
    size_t i;
    json_t *ev;
    free(s->out);
    s->out = NULL;
    s->out_len = s->out_off = 0;
    FILE *f = open_memstream(&s->out, &s->out_len);
    if (f) {
      json_array_foreach(evs, i, ev)
      {
        char *text = json_dumps(ev, JSON_COMPACT | JSON_REAL_PRECISION(15));
        json_t *seq = json_object_get(ev, "seq");
        /* "event: <level>" as docs/api.md has it; a level that would
         * break the line is left out (the data still carries it). */
        const char *level = json_string_value(json_object_get(ev, "level"));
        fprintf(f, "id: %lld\n", (long long)json_integer_value(seq));
        if (level && *level && !level[strcspn(level, "\r\n")])
          fprintf(f, "event: %s\n", level);
        fprintf(f, "data: %s\n\n", text ? text : "{}");
        free(text);
      }
      fclose(f);
      s->last = last;
      added = 1;
    }
  }
  json_decref(evs);
  core_store_end_read(h->store, txn);
  return added;
}

static ssize_t sse_read(void *cls, uint64_t pos, char *buf, size_t max)
{
  (void)pos;
  sse *s = cls;
  core_http *srv = s->srv;
  /* MHD's internal polling calls a reader that returned 0 again only
   * after a resume: so return 0 only with the connection suspended, and
   * otherwise look again until there is something to send or the end. */
  for (;;) {
    if (s->out_off < s->out_len) {
      size_t n = s->out_len - s->out_off;
      if (n > max)
        n = max;
      memcpy(buf, s->out + s->out_off, n);
      s->out_off += n;
      s->last_write = core_now_ms();
      return (ssize_t)n;
    }
    if (__atomic_load_n(&srv->stopping, __ATOMIC_ACQUIRE))
      return MHD_CONTENT_READER_END_OF_STREAM;
    pthread_mutex_lock(&srv->sse_mu);
    uint64_t gen = srv->gen;
    pthread_mutex_unlock(&srv->sse_mu);
    if (sse_fill(s))
      continue;
    if (core_now_ms() - s->last_write >= KEEPALIVE_MS) {
      free(s->out);
      s->out = strdup(": keepalive\n\n");
      s->out_len = s->out ? strlen(s->out) : 0;
      s->out_off = 0;
      if (!s->out)
        return MHD_CONTENT_READER_END_WITH_ERROR;
      continue;
    }
    /* Nothing to send: sleep until the store changes or a keepalive is
     * due. A change after the read above bumped gen: look again. */
    pthread_mutex_lock(&srv->sse_mu);
    int idle = gen == srv->gen && !srv->stopping;
    if (idle) {
      s->suspended = 1;
      MHD_suspend_connection(s->conn);
    }
    pthread_mutex_unlock(&srv->sse_mu);
    if (idle)
      return 0;
  }
}

static enum MHD_Result h_stream(req *r)
{
  static const char *const known[] = {"after", NULL};
  api_error e;
  if (api_args_check(&r->args, known, &e))
    return send_error(r, &e);
  if (r->args.n > 1) /* only "after" is known: it is there twice or more */
    return fail(r, 400, "bad_parameter", "after",
                "after is given more than once; give it once");
  core_http *srv = r->srv;
  sse *s = calloc(1, sizeof *s);
  if (!s)
    return fail(r, 500, "internal", NULL, "out of memory");
  s->srv = srv;
  s->conn = r->conn;
  s->town = r->town;
  s->last_write = core_now_ms();
  const char *after = api_arg_get(&r->args, "after");
  const char *leid = MHD_lookup_connection_value(r->conn, MHD_HEADER_KIND,
                                                 "Last-Event-ID");
  /* A reconnecting browser sends Last-Event-ID: it wins over an ?after in
   * the stream's URL, or each reconnect would replay the same events. */
  const char *from = leid ? leid : after;
  if (from) {
    long v;
    if (api_parse_count(leid ? "Last-Event-ID" : "after", from, 0, LONG_MAX,
                        &v, &e)) {
      free(s);
      return send_error(r, &e);
    }
    s->last = (uint64_t)v;
  } else {
    MDB_txn *txn;
    core_err err;
    if (core_store_begin_read(srv->h->store, &txn, &err)) {
      free(s);
      return fail(r, 503, "unavailable", NULL, "%s", err.msg);
    }
    s->last = api_events_last_seq(srv->h, txn, r->town);
    core_store_end_read(srv->h->store, txn);
  }
  /* A comment first, so the client sees the stream open at once. */
  s->out = strdup(": twinhost event stream\n\n");
  s->out_len = s->out ? strlen(s->out) : 0;
  struct MHD_Response *resp = MHD_create_response_from_callback(
      MHD_SIZE_UNKNOWN, 4096, sse_read, s, sse_free);
  if (!resp) {
    free(s->out);
    free(s);
    return MHD_NO;
  }
  pthread_mutex_lock(&srv->sse_mu);
  s->next = srv->streams;
  srv->streams = s;
  srv->n_streams++;
  pthread_mutex_unlock(&srv->sse_mu);
  MHD_add_response_header(resp, "Content-Type", "text/event-stream");
  MHD_add_response_header(resp, "X-Accel-Buffering", "no");
  common_headers(resp);
  enum MHD_Result rc = MHD_queue_response(r->conn, 200, resp);
  MHD_destroy_response(resp);
  r->responded = 1;
  count(r, 200);
  return rc;
}

/* Resume every suspended stream (under sse_mu). */
static void wake_streams(core_http *srv)
{
  for (sse *s = srv->streams; s; s = s->next)
    if (s->suspended) {
      s->suspended = 0;
      MHD_resume_connection(s->conn);
    }
}

static void *waker_main(void *arg)
{
  core_http *srv = arg;
  size_t last_txn = 0;
  twin_time last_keepalive = core_now_ms();
  pthread_mutex_lock(&srv->sse_mu);
  while (!srv->waker_stop) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    ts.tv_nsec += 200 * 1000 * 1000;
    if (ts.tv_nsec >= 1000000000) {
      ts.tv_sec++;
      ts.tv_nsec -= 1000000000;
    }
    pthread_cond_timedwait(&srv->sse_cv, &srv->sse_mu, &ts);
    if (srv->waker_stop)
      break;
    MDB_envinfo info;
    size_t txnid = 0;
    if (!mdb_env_info(srv->h->store->env, &info))
      txnid = info.me_last_txnid;
    twin_time now = core_now_ms();
    int due = now - last_keepalive >= KEEPALIVE_MS / 2;
    if (txnid != last_txn || due) {
      last_txn = txnid;
      srv->gen++;
      if (due)
        last_keepalive = now;
      wake_streams(srv);
    }
  }
  pthread_mutex_unlock(&srv->sse_mu);
  return NULL;
}

/* ---- /metrics ------------------------------------------------------------ */

static void metric_head(FILE *f, const char *name, const char *type,
                        const char *help)
{
  fprintf(f, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

static enum MHD_Result h_metrics(req *r)
{
  core_http *s = r->srv;
  core_host *h = s->h;
  char *text = NULL;
  size_t len = 0;
  FILE *f = open_memstream(&text, &len);
  if (!f)
    return fail(r, 500, "internal", NULL, "out of memory");
  metric_head(f, "twinhost_http_requests_total", "counter",
              "HTTP requests answered, by route and status.");
  for (size_t i = 0; i <= N_ROUTES; i++)
    for (size_t j = 0; j < N_STATUS; j++) {
      uint64_t c = __atomic_load_n(&s->counts[i * N_STATUS + j],
                                   __ATOMIC_RELAXED);
      if (c)
        fprintf(f,
                "twinhost_http_requests_total{method=\"%s\",route=\"%s\","
                "code=\"%d\"} %llu\n",
                i < N_ROUTES ? routes[i].method : "any",
                i < N_ROUTES ? routes[i].path : "unknown", counted_status[j],
                (unsigned long long)c);
    }
  metric_head(f, "twinhost_http_request_seconds_total", "counter",
              "Time spent answering requests, by route.");
  for (size_t i = 0; i <= N_ROUTES; i++) {
    double sec;
    __atomic_load(&s->seconds[i], &sec, __ATOMIC_RELAXED);
    if (sec > 0)
      fprintf(f,
              "twinhost_http_request_seconds_total{method=\"%s\",route="
              "\"%s\"} %.6f\n",
              i < N_ROUTES ? routes[i].method : "any",
              i < N_ROUTES ? routes[i].path : "unknown", sec);
  }
  metric_head(f, "twinhost_http_connections", "gauge",
              "Open HTTP connections.");
  fprintf(f, "twinhost_http_connections %ld\n",
          __atomic_load_n(&s->connections, __ATOMIC_RELAXED));
  metric_head(f, "twinhost_event_streams", "gauge",
              "Open Server-Sent Events streams.");
  pthread_mutex_lock(&s->sse_mu);
  fprintf(f, "twinhost_event_streams %ld\n", s->n_streams);
  pthread_mutex_unlock(&s->sse_mu);

  core_pipeline_stats st;
  core_pipeline_stats_get(s->p, &st);
  metric_head(f, "twinhost_ingest_documents_total", "counter",
              "Documents ingested, by town, plugin and result.");
  for (size_t i = 0; i < h->n_inst; i++) {
    core_instance *ci = &h->inst[i];
    uint64_t d = __atomic_load_n(&ci->docs, __ATOMIC_RELAXED),
             bad = __atomic_load_n(&ci->docs_rejected, __ATOMIC_RELAXED);
    fprintf(f,
            "twinhost_ingest_documents_total{town=\"%s\",plugin=\"%s\","
            "result=\"accepted\"} %llu\n"
            "twinhost_ingest_documents_total{town=\"%s\",plugin=\"%s\","
            "result=\"rejected\"} %llu\n",
            ci->town->id, ci->plugin->desc.name,
            (unsigned long long)(d - bad), ci->town->id,
            ci->plugin->desc.name, (unsigned long long)bad);
  }
  metric_head(f, "twinhost_ingest_items_refused_total", "counter",
              "Items of ingested documents their plugin refused "
              "(refuse_item), by town, plugin and reason code.");
  pthread_mutex_lock(&h->lock);
  for (size_t i = 0; i < h->n_inst; i++) {
    core_instance *ci = &h->inst[i];
    for (size_t k = 0; k < ci->n_refused_codes; k++)
      fprintf(f,
              "twinhost_ingest_items_refused_total{town=\"%s\",plugin=\"%s\","
              "code=\"%s\"} %llu\n",
              ci->town->id, ci->plugin->desc.name, ci->refused_codes[k].code,
              (unsigned long long)ci->refused_codes[k].n);
  }
  metric_head(f, "twinhost_plugin_fetches_total", "counter",
              "Plugin fetches (feed pulls) run, by town, plugin and result.");
  for (size_t i = 0; i < h->n_inst; i++) {
    core_instance *ci = &h->inst[i];
    if (!ci->fetch_s)
      continue;
    fprintf(f,
            "twinhost_plugin_fetches_total{town=\"%s\",plugin=\"%s\","
            "result=\"ok\"} %llu\n"
            "twinhost_plugin_fetches_total{town=\"%s\",plugin=\"%s\","
            "result=\"failed\"} %llu\n",
            ci->town->id, ci->plugin->desc.name,
            (unsigned long long)(ci->fetches - ci->fetch_errors), ci->town->id,
            ci->plugin->desc.name, (unsigned long long)ci->fetch_errors);
  }
  pthread_mutex_unlock(&h->lock);
  metric_head(f, "twinhost_commits_total", "counter",
              "Write transactions committed by the writer.");
  fprintf(f, "twinhost_commits_total %llu\n", (unsigned long long)st.batches);
  metric_head(f, "twinhost_commit_seconds", "histogram",
              "Time from the start of a batch to its durable commit.");
  uint64_t cum = 0;
  for (size_t i = 0; i < N_BOUNDS; i++) {
    cum += st.commit_buckets[i];
    fprintf(f, "twinhost_commit_seconds_bucket{le=\"%g\"} %llu\n",
            commit_bounds_ms[i] / 1000, (unsigned long long)cum);
  }
  fprintf(f, "twinhost_commit_seconds_bucket{le=\"+Inf\"} %llu\n",
          (unsigned long long)st.batches);
  fprintf(f, "twinhost_commit_seconds_sum %.6f\n",
          (double)st.commit_ns_total / 1e9);
  fprintf(f, "twinhost_commit_seconds_count %llu\n",
          (unsigned long long)st.batches);
  metric_head(f, "twinhost_plugin_tick_errors_total", "counter",
              "Failed plugin ticks, by town and plugin.");
  pthread_mutex_lock(&h->lock);
  for (size_t i = 0; i < h->n_inst; i++)
    fprintf(f,
            "twinhost_plugin_tick_errors_total{town=\"%s\",plugin=\"%s\"} "
            "%llu\n",
            h->inst[i].town->id, h->inst[i].plugin->desc.name,
            (unsigned long long)h->inst[i].tick_errors);
  metric_head(f, "twinhost_plugin_up", "gauge",
              "1 when the plugin instance runs, 0 when disabled or backing "
              "off.");
  for (size_t i = 0; i < h->n_inst; i++)
    fprintf(f, "twinhost_plugin_up{town=\"%s\",plugin=\"%s\"} %d\n",
            h->inst[i].town->id, h->inst[i].plugin->desc.name,
            h->inst[i].state == CORE_INSTANCE_RUNNING);
  pthread_mutex_unlock(&h->lock);
  metric_head(f, "twinhost_rule_runs_total", "counter",
              "Town rule hook calls, by town.");
  json_t *rule_stats = json_array();
  for (size_t i = 0; i < h->cfg->n_towns; i++) {
    struct core_script *sc = core_host_script(h, &h->cfg->towns[i]);
    char *text = sc ? core_script_status(sc) : NULL;
    json_t *o = text ? json_loads(text, 0, NULL) : NULL;
    free(text);
    json_int_t calls = 0, errors = 0;
    size_t k;
    json_t *hook;
    json_array_foreach(json_object_get(o, "hooks"), k, hook)
    {
      calls += json_integer_value(json_object_get(hook, "calls"));
      errors += json_integer_value(json_object_get(hook, "errors"));
    }
    json_decref(o);
    json_array_append_new(rule_stats, json_pack("[I,I]", calls, errors));
    fprintf(f, "twinhost_rule_runs_total{town=\"%s\"} %lld\n",
            h->cfg->towns[i].id, (long long)calls);
  }
  metric_head(f, "twinhost_rule_errors_total", "counter",
              "Town rule hook calls that failed, by town.");
  for (size_t i = 0; i < h->cfg->n_towns; i++)
    fprintf(f, "twinhost_rule_errors_total{town=\"%s\"} %lld\n",
            h->cfg->towns[i].id,
            (long long)json_integer_value(
                json_array_get(json_array_get(rule_stats, i), 1)));
  json_decref(rule_stats);
  uint64_t used = 0, mapsize = 0;
  core_store_usage(h->store, &used, &mapsize);
  metric_head(f, "twinhost_store_used_bytes", "gauge",
              "Bytes of the state store in use.");
  fprintf(f, "twinhost_store_used_bytes %llu\n", (unsigned long long)used);
  metric_head(f, "twinhost_store_map_bytes", "gauge",
              "Address space reserved for the state store.");
  fprintf(f, "twinhost_store_map_bytes %llu\n", (unsigned long long)mapsize);
  metric_head(f, "twinhost_uptime_seconds", "gauge",
              "Seconds since the API started.");
  fprintf(f, "twinhost_uptime_seconds %lld\n",
          (long long)((core_now_ms() - s->started) / 1000));
  if (fclose(f))
    return fail(r, 500, "internal", NULL, "out of memory");
  return send_text(r, 200, "text/plain; version=0.0.4; charset=utf-8", text,
                   len);
}

/* ---- request intake ------------------------------------------------------ */

static enum MHD_Result collect_arg(void *cls, enum MHD_ValueKind kind,
                                   const char *key, const char *value)
{
  (void)kind;
  req *r = cls;
  if (r->argc == r->argcap) {
    size_t cap = r->argcap ? r->argcap * 2 : 8;
    api_arg *a = realloc(r->argv, cap * sizeof *a);
    if (!a)
      return MHD_NO;
    r->argv = a;
    r->argcap = cap;
  }
  r->argv[r->argc++] = (api_arg){key, value ? value : ""};
  return MHD_YES;
}

static enum MHD_Result sum_header(void *cls, enum MHD_ValueKind kind,
                                  const char *key, const char *value)
{
  (void)kind;
  size_t *n = cls;
  *n += strlen(key) + (value ? strlen(value) : 0) + 4;
  return MHD_YES;
}

/* Find the route; 0 when found (r->rt set), else answers 404/405. */
static int route_request(req *r, const char *url, enum MHD_Result *rc)
{
  size_t ulen = strlen(url);
  r->path = malloc(ulen + 1);
  if (!r->path) {
    *rc = MHD_NO;
    return -1;
  }
  memcpy(r->path, url, ulen + 1);
  if (ulen > 1 && r->path[ulen - 1] == '/')
    r->path[--ulen] = 0;
  char *seg[MAX_SEGS];
  size_t nseg = 0;
  char *p = r->path;
  int too_deep = 0;
  while (*p == '/') {
    *p++ = 0;
    if (nseg == MAX_SEGS) {
      too_deep = 1;
      break;
    }
    seg[nseg++] = p;
    while (*p && *p != '/')
      p++;
  }
  int path_known = -1;
  const char *m = !strcmp(r->method, "HEAD") ? "GET" : r->method;
  for (size_t i = 0; !too_deep && i < N_ROUTES; i++) {
    if (!match_template(routes[i].path, seg, nseg, r))
      continue;
    if (path_known < 0)
      path_known = (int)i;
    if (!strcmp(routes[i].method, m)) {
      r->rt = &routes[i];
      r->route_idx = (int)i;
      return 0;
    }
  }
  if (path_known >= 0) {
    r->route_idx = path_known;
    if (!strcmp(r->method, "OPTIONS")) {
      /* CORS preflight */
      struct MHD_Response *resp =
          MHD_create_response_from_buffer(0, "", MHD_RESPMEM_PERSISTENT);
      common_headers(resp);
      MHD_add_response_header(resp, "Access-Control-Allow-Methods",
                              "GET, POST, OPTIONS");
      MHD_add_response_header(resp, "Access-Control-Allow-Headers",
                              "Authorization, Content-Type, Last-Event-ID");
      MHD_add_response_header(resp, "Access-Control-Max-Age", "600");
      *rc = MHD_queue_response(r->conn, 204, resp);
      MHD_destroy_response(resp);
      r->responded = 1;
      count(r, 204);
      return -1;
    }
    *rc = fail(r, 405, "method_not_allowed", NULL,
               "%s is not allowed on %s; see the Allow header", r->method,
               routes[path_known].path);
    return -1;
  }
  r->route_idx = (int)N_ROUTES;
  *rc = fail(r, 404, "unknown_route", NULL,
             "no route %s %s; GET /v1 lists the routes (docs/api.md "
             "describes them)",
             r->method, url);
  return -1;
}

/* Check the token (or anonymous read) for r's town and scope; 0 if
 * allowed, else answers 401/403. */
static int authorize(req *r, enum MHD_Result *rc)
{
  unsigned need = r->rt->scope;
  const char *town = r->town->id;
  const char *auth = MHD_lookup_connection_value(r->conn, MHD_HEADER_KIND,
                                                 "Authorization");
  if (!auth) {
    if (need == SCOPE_READ && r->town->anonymous_read)
      return 0;
    *rc = fail(r, 401, "unauthorized", "Authorization",
               "%s %s needs a token of %s with scope %s: send "
               "'Authorization: Bearer <token>'. The town's admin creates "
               "one with `twinhost token create --town %s --scope %s`",
               r->rt->method, r->rt->path, town, scope_name(need), town,
               scope_name(need));
    return -1;
  }
  if (strncasecmp(auth, "Bearer ", 7)) {
    *rc = fail(r, 401, "unauthorized", "Authorization",
               "the Authorization header must be 'Bearer <token>'");
    return -1;
  }
  const char *tok = auth + 7;
  while (*tok == ' ')
    tok++;
  MDB_txn *txn;
  core_err err;
  if (core_store_begin_read(r->srv->h->store, &txn, &err)) {
    *rc = fail(r, 503, "unavailable", NULL, "%s", err.msg);
    return -1;
  }
  core_token_info info;
  int st = core_token_check(r->srv->h->store, txn, tok, strlen(tok), &info);
  handler_fn fn = r->rt->fn;
  if (!st && r->may_keep_txn &&
      (fn == h_entity || fn == h_entities || fn == h_history ||
       fn == h_events || fn == h_tokens))
    r->txn = txn;
  else
    core_store_end_read(r->srv->h->store, txn);
  if (st == TWIN_ERR_NOT_FOUND) {
    *rc = fail(r, 401, "unauthorized", "Authorization",
               "the token is not valid: it is mistyped, revoked or from "
               "another host; ask the town's admin for a new one");
    return -1;
  }
  if (st) {
    /* a damaged token record or a crypto failure is the host's fault */
    *rc = fail(r, 500, "internal", NULL,
               "cannot check the token: %s; see the host log, and revoke "
               "and recreate the token if this persists",
               core_status_message(st));
    return -1;
  }
  if (strcmp(info.town, town)) {
    *rc = fail(r, 403, "forbidden", "town",
               "this token belongs to %s; it cannot be used for %s",
               info.town, town);
    return -1;
  }
  if (need && !core_token_allows(info.scopes, need)) {
    char have[64];
    core_scopes_format(info.scopes, have, sizeof have);
    *rc = fail(r, 403, "forbidden", "scope",
               "this token has scope %s; %s %s needs %s", have,
               r->rt->method, r->rt->path, scope_name(need));
    return -1;
  }
  return 0;
}

/* Everything decided from the headers alone; 0 to go on. */
static int admit(req *r, enum MHD_Result *rc)
{
  core_http *s = r->srv;
  if (__atomic_load_n(&s->stopping, __ATOMIC_ACQUIRE) &&
      r->rt->fn != h_healthz) {
    *rc = fail(r, 503, "shutting_down", NULL,
               "the host is stopping; try again in a moment");
    return -1;
  }
  if (__atomic_load_n(&s->connections, __ATOMIC_RELAXED) >
      s->cfg.max_connections) {
    *rc = fail(r, 503, "too_many_connections", NULL,
               "more than %d connections are open; try again shortly, or "
               "reuse one connection (keep-alive)",
               s->cfg.max_connections);
    return -1;
  }
  MHD_get_connection_values(r->conn, MHD_GET_ARGUMENT_KIND, collect_arg, r);
  r->args = (api_args){r->argv, r->argc};
  size_t hdr = strlen(r->path ? r->path : "");
  for (size_t i = 0; i < r->argc; i++)
    hdr += strlen(r->argv[i].name) + strlen(r->argv[i].value) + 2;
  MHD_get_connection_values(r->conn, MHD_HEADER_KIND, sum_header, &hdr);
  if (hdr > s->cfg.max_header_bytes) {
    *rc = fail(r, 431, "headers_too_large", NULL,
               "the request line and headers are %zu bytes; the limit is "
               "%zu",
               hdr, s->cfg.max_header_bytes);
    return -1;
  }
  const char *cl = MHD_lookup_connection_value(r->conn, MHD_HEADER_KIND,
                                               "Content-Length");
  if (cl && strtoull(cl, NULL, 10) > s->cfg.max_body_bytes) {
    *rc = fail(r, 413, "body_too_large", "body",
               "the body is %s bytes; the limit is %zu (split the batch, "
               "or raise http.max_body_bytes in the host config)",
               cl, s->cfg.max_body_bytes);
    return -1;
  }
  const char *ct = MHD_lookup_connection_value(r->conn, MHD_HEADER_KIND,
                                               "Content-Type");
  if (ct && !strncasecmp(ct, "multipart/", 10)) {
    *rc = fail(r, 415, "unsupported_media_type", "Content-Type",
               "send JSON (application/json) or JSON Lines "
               "(application/x-ndjson), not %s",
               ct);
    return -1;
  }
  /* Path parameters: the town first, then the plugin. */
  const char *town = param(r, "town");
  if (town) {
    core_err err;
    r->town = core_config_town_or_err(s->h->cfg, town, &err);
    if (!r->town) {
      *rc = fail(r, 404, "unknown_town", "town", "%s", err.msg);
      return -1;
    }
    if (authorize(r, rc))
      return -1;
    const char *plugin = param(r, "plugin");
    if (plugin && r->rt->fn == h_town_plugin) {
      /* its health is worth showing also when it does not run */
      r->ci = core_host_instance(s->h, town, plugin);
      if (!r->ci) {
        core_err err;
        core_host_find(s->h, town, plugin, &r->ci, &err);
        *rc = fail(r, 404, "unknown_plugin", "plugin", "%s", err.msg);
        return -1;
      }
    } else if (plugin && strstr(r->rt->path, "/plugins/{plugin}")) {
      core_err err;
      int st = core_host_find(s->h, town, plugin, &r->ci, &err);
      /* enabled for the town but not running: try again later */
      int enabled = 0;
      for (size_t i = 0; i < r->town->n_plugins; i++)
        enabled |= !strcmp(r->town->plugins[i].name, plugin) &&
                   r->town->plugins[i].enabled;
      if (st) {
        *rc = st == TWIN_ERR_UNAVAILABLE || enabled
                  ? fail(r, 503, "unavailable", "plugin", "%s", err.msg)
                  : fail(r, 404, "unknown_plugin", "plugin", "%s", err.msg);
        return -1;
      }
      /* An ingest body of a type the plugin does not take is refused
       * before it is read. */
      char type[128];
      if (r->rt->fn == h_ingest &&
          (raw_type(r, type, sizeof type), type[0]) &&
          !core_plugin_takes(r->ci->plugin, type)) {
        const char *more = r->ci->plugin->desc.ingest_types;
        *rc = fail(r, 415, "unsupported_media_type", "Content-Type",
                   "plugin '%s' takes JSON (application/json), JSON Lines "
                   "(application/x-ndjson)%s%s, not %s",
                   plugin, more ? " and " : "", more ? more : "", type);
        return -1;
      }
    }
  }
  for (size_t i = 0; i < r->np; i++)
    if (!core_valid_name(r->pval[i])) {
      *rc = fail(r, 400, "bad_parameter", NULL,
                 "a path part is empty, too long or has control "
                 "characters");
      return -1;
    }
  /* Routes without query parameters refuse any, like the others refuse
   * unknown ones: a misspelt ?limt should not pass silently.
   * Checked last, after town, token and path (docs/api.md). */
  handler_fn fn = r->rt->fn;
  api_error ae;
  int get_op = fn == h_query_op && !strcmp(r->rt->method, "GET");
  if (fn != h_entities && fn != h_history && fn != h_events &&
      fn != h_stream && !get_op && api_args_check(&r->args, no_args, &ae)) {
    *rc = send_error(r, &ae);
    return -1;
  }
  return 0;
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *conn,
                                  const char *url, const char *method,
                                  const char *version,
                                  const char *upload_data,
                                  size_t *upload_data_size, void **con_cls)
{
  (void)version;
  core_http *s = cls;
  req *r = *con_cls;
  if (!r) {
    r = calloc(1, sizeof *r);
    if (!r)
      return MHD_NO;
    *con_cls = r;
    r->srv = s;
    r->conn = conn;
    r->method = method;
    r->t0 = core_mono_ns();
    pthread_mutex_init(&r->mu, NULL);
    __atomic_add_fetch(&s->in_flight, 1, __ATOMIC_ACQ_REL);
    r->url = strdup(url);
    if (!r->url)
      return MHD_NO;
    /* A request with a body is checked now, so a refused upload is not
     * read. One without is checked at its last call: an answer queued
     * before the request is complete closes the connection, and a client
     * that got a 401 or 404 should keep its keep-alive connection. */
    const char *cl = MHD_lookup_connection_value(conn, MHD_HEADER_KIND,
                                                 "Content-Length");
    int has_body = (cl && strtoull(cl, NULL, 10) > 0) ||
                   MHD_lookup_connection_value(conn, MHD_HEADER_KIND,
                                               "Transfer-Encoding");
    if (!has_body)
      return MHD_YES;
    r->admitted = 1;
    enum MHD_Result rc = MHD_YES;
    if (route_request(r, r->url, &rc) || admit(r, &rc))
      return rc;
    /* a body of known size (admit checked it against the limit) is read
     * into one buffer of that size, not grown as it arrives */
    unsigned long long want = cl ? strtoull(cl, NULL, 10) : 0;
    if (want && want <= s->cfg.max_body_bytes) {
      r->body = malloc((size_t)want + 1);
      r->body_cap = r->body ? (size_t)want + 1 : 0;
    }
    return MHD_YES;
  }
  if (r->responded)
    return MHD_YES;
  if (!r->admitted && !*upload_data_size) {
    r->admitted = 1;
    r->may_keep_txn = 1;
    enum MHD_Result rc = MHD_YES;
    if (route_request(r, r->url, &rc) || admit(r, &rc)) {
      drop_txn(r);
      return rc;
    }
  }
  if (*upload_data_size) {
    size_t n = *upload_data_size;
    *upload_data_size = 0;
    if (r->too_large || r->body_len + n > s->cfg.max_body_bytes) {
      r->too_large = 1;
      return MHD_YES;
    }
    if (r->body_len + n + 1 > r->body_cap) {
      size_t cap = r->body_cap ? r->body_cap : 4096;
      while (cap < r->body_len + n + 1)
        cap *= 2;
      char *b = realloc(r->body, cap);
      if (!b)
        return MHD_NO;
      r->body = b;
      r->body_cap = cap;
    }
    memcpy(r->body + r->body_len, upload_data, n);
    r->body_len += n;
    r->body[r->body_len] = 0;
    return MHD_YES;
  }
  if (r->too_large)
    return fail(r, 413, "body_too_large", "body",
                "the body is over the limit of %zu bytes (split the batch, "
                "or raise http.max_body_bytes in the host config)",
                s->cfg.max_body_bytes);
  enum MHD_Result rc = r->rt->fn(r);
  drop_txn(r);
  return rc;
}

static void on_completed(void *cls, struct MHD_Connection *conn,
                         void **con_cls, enum MHD_RequestTerminationCode toe)
{
  (void)conn;
  (void)toe;
  core_http *s = cls;
  req *r = *con_cls;
  if (!r)
    return;
  double sec = (double)(core_mono_ns() - r->t0) / 1e9;
  double *slot = &s->seconds[r->route_idx];
  double old, sum;
  __atomic_load(slot, &old, __ATOMIC_RELAXED);
  do
    sum = old + sec;
  while (!__atomic_compare_exchange(slot, &old, &sum, 0, __ATOMIC_RELAXED,
                                    __ATOMIC_RELAXED));
  if (r->results)
    for (size_t i = 0; i < r->n_docs; i++) {
      free(r->results[i].reason);
      json_decref(r->results[i].items);
    }
  free(r->results);
  free(r->body);
  free(r->argv);
  free(r->path);
  free(r->url);
  pthread_mutex_destroy(&r->mu);
  free(r);
  *con_cls = NULL;
  __atomic_sub_fetch(&s->in_flight, 1, __ATOMIC_ACQ_REL);
}

static void on_connection(void *cls, struct MHD_Connection *conn,
                          void **socket_context,
                          enum MHD_ConnectionNotificationCode toe)
{
  (void)conn;
  (void)socket_context;
  core_http *s = cls;
  if (toe == MHD_CONNECTION_NOTIFY_STARTED)
    __atomic_add_fetch(&s->connections, 1, __ATOMIC_RELAXED);
  else
    __atomic_sub_fetch(&s->connections, 1, __ATOMIC_RELAXED);
}

static void mhd_log(void *cls, const char *fmt, va_list ap)
{
  (void)cls;
  char msg[512];
  vsnprintf(msg, sizeof msg, fmt, ap);
  size_t n = strlen(msg);
  while (n && (msg[n - 1] == '\n' || msg[n - 1] == '\r'))
    msg[--n] = 0;
  core_log(TWIN_LEVEL_DEBUG, NULL, NULL, "http: %s", msg);
}

/* ---- start and stop ------------------------------------------------------ */

int core_http_start(core_host *h, core_pipeline *p,
                    const core_http_config *cfg, core_http **out,
                    core_err *err)
{
  *out = NULL;
  core_http *s = calloc(1, sizeof *s);
  if (!s)
    return core_err_set(err, TWIN_ERR_NOMEM, "http: out of memory");
  s->h = h;
  s->p = p;
  s->cfg = *cfg;
  s->cfg.listen = NULL; /* not kept */
  s->started = core_now_ms();
  s->counts = calloc((N_ROUTES + 1) * N_STATUS, sizeof *s->counts);
  s->seconds = calloc(N_ROUTES + 1, sizeof *s->seconds);
  pthread_mutex_init(&s->sse_mu, NULL);
  pthread_cond_init(&s->sse_cv, NULL);
  if (!s->counts || !s->seconds) {
    core_http_stop(s);
    return core_err_set(err, TWIN_ERR_NOMEM, "http: out of memory");
  }
  const char *listen = cfg->listen ? cfg->listen : "127.0.0.1";
  struct sockaddr_storage ss;
  memset(&ss, 0, sizeof ss);
  /* poll(), not epoll: libmicrohttpd 0.9.75's MHD_quiesce_daemon takes the
   * listening socket out of each pool thread's epoll set from the calling
   * thread and aborts the process when a thread had already dropped it
   * (it does so at the connection limit). With poll it only signals. */
  unsigned flags = MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_POLL |
                   MHD_USE_ITC | MHD_ALLOW_SUSPEND_RESUME | MHD_USE_ERROR_LOG;
  struct sockaddr_in *v4 = (struct sockaddr_in *)&ss;
  struct sockaddr_in6 *v6 = (struct sockaddr_in6 *)&ss;
  if (inet_pton(AF_INET, listen, &v4->sin_addr) == 1) {
    v4->sin_family = AF_INET;
    v4->sin_port = htons((uint16_t)cfg->port);
  } else if (inet_pton(AF_INET6, listen, &v6->sin6_addr) == 1) {
    v6->sin6_family = AF_INET6;
    v6->sin6_port = htons((uint16_t)cfg->port);
    flags |= MHD_USE_IPv6;
  } else {
    core_http_stop(s);
    return core_err_set(err, TWIN_ERR_CONFIG,
                        "http: listen address '%s' is not a numeric IPv4 or "
                        "IPv6 address",
                        listen);
  }
  long cpus = sysconf(_SC_NPROCESSORS_ONLN);
  unsigned threads = cfg->threads > 0 ? (unsigned)cfg->threads
                     : cpus > 2       ? (unsigned)cpus
                                      : 2u;
  /* MHD keeps a connection's headers and read buffer in one pool of this
   * size and clears it per request: room for the largest headers we answer
   * with a JSON 431, not more. */
  size_t mem = cfg->max_header_bytes + 32 * 1024;
  s->d = MHD_start_daemon(
      flags, (uint16_t)cfg->port, NULL, NULL, on_request, s,
      MHD_OPTION_SOCK_ADDR, (struct sockaddr *)&ss, MHD_OPTION_THREAD_POOL_SIZE,
      threads, MHD_OPTION_CONNECTION_LIMIT,
      (unsigned)cfg->max_connections + 32u, MHD_OPTION_CONNECTION_TIMEOUT,
      60u, MHD_OPTION_CONNECTION_MEMORY_LIMIT, mem,
      MHD_OPTION_NOTIFY_COMPLETED, on_completed, s,
      MHD_OPTION_NOTIFY_CONNECTION, on_connection, s,
      MHD_OPTION_EXTERNAL_LOGGER, mhd_log, s,
      /* never SO_REUSEPORT: a second host on the port must fail to start,
       * not share its connections with this one */
      MHD_OPTION_LISTENING_ADDRESS_REUSE, 0u, MHD_OPTION_END);
  if (!s->d) {
    int e = errno;
    core_http_stop(s);
    return core_err_set(err, TWIN_ERR_UNAVAILABLE,
                        "http: cannot listen on %s port %d: %s (is another "
                        "program using the port? set http.port in the host "
                        "config or pass --listen)",
                        listen, cfg->port, e ? strerror(e) : "refused");
  }
  const union MHD_DaemonInfo *info =
      MHD_get_daemon_info(s->d, MHD_DAEMON_INFO_BIND_PORT);
  s->port = info ? info->port : (uint16_t)cfg->port;
  if (pthread_create(&s->waker, NULL, waker_main, s)) {
    MHD_stop_daemon(s->d);
    s->d = NULL;
    core_http_stop(s);
    return core_err_set(err, TWIN_ERR_INTERNAL, "http: cannot start a thread");
  }
  *out = s;
  return TWIN_OK;
}

uint16_t core_http_port(const core_http *s)
{
  return s->port;
}

void core_http_stop(core_http *s)
{
  if (!s)
    return;
  if (s->d) {
    __atomic_store_n(&s->stopping, 1, __ATOMIC_RELEASE);
    /* stop accepting; the listening socket is ours to close now */
    MHD_socket lsock = MHD_quiesce_daemon(s->d);
    /* The pool threads drop the socket from their polls a moment later;
     * until MHD_stop_daemon it must stay open, but it can stop listening
     * now, so new clients are refused rather than left waiting. */
    if (lsock != MHD_INVALID_SOCKET)
      shutdown(lsock, SHUT_RDWR);
    /* End the streams: each sees stopping and ends. */
    pthread_mutex_lock(&s->sse_mu);
    s->gen++;
    wake_streams(s);
    pthread_mutex_unlock(&s->sse_mu);
    /* Let requests in flight finish: an ingest waits for its commit. */
    uint64_t t0 = core_mono_ns();
    /* A slow client gets STOP_WAIT_MS; an ingest waiting for its commit
     * is waited for however long the writer takes: its documents may be
     * committed already, and stopping the daemon with a connection
     * suspended is not allowed. */
    while ((__atomic_load_n(&s->in_flight, __ATOMIC_ACQUIRE) ||
            __atomic_load_n(&s->n_streams, __ATOMIC_ACQUIRE)) &&
           (core_mono_ns() - t0 < (uint64_t)STOP_WAIT_MS * 1000000u ||
            __atomic_load_n(&s->committing, __ATOMIC_ACQUIRE))) {
      pthread_mutex_lock(&s->sse_mu);
      wake_streams(s);
      pthread_mutex_unlock(&s->sse_mu);
      struct timespec ts = {0, 10 * 1000 * 1000};
      nanosleep(&ts, NULL);
    }
    pthread_mutex_lock(&s->sse_mu);
    s->waker_stop = 1;
    pthread_cond_broadcast(&s->sse_cv);
    pthread_mutex_unlock(&s->sse_mu);
    pthread_join(s->waker, NULL);
    MHD_stop_daemon(s->d);
    if (lsock != MHD_INVALID_SOCKET)
      close(lsock);
  }
  pthread_mutex_destroy(&s->sse_mu);
  pthread_cond_destroy(&s->sse_cv);
  free(s->counts);
  free(s->seconds);
  free(s);
}
