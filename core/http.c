/*
 * http.c — the HTTP API: libmicrohttpd with its own thread pool.
 *
 * A request goes through three steps. When its headers have arrived
 * (first call of on_request) it is screened (screen: the client's
 * connection cap, framing and header names, the size of the request line
 * and headers, the number of parameters, control characters in the path
 * and parameters), matched against the route table, checked against the
 * limits (connections, body size, stopping) and authorized, so a refused
 * upload is answered before its body is read. Then the body, if any, is
 * collected up to the configured limit. Then the route's handler answers.
 *
 * An ingest suspends its connection after submitting its documents to the
 * pipeline; the writer's done callbacks count them down and the last one
 * resumes the connection, so a pool thread never waits for a commit and
 * many requests share one commit (group commit). An event stream suspends
 * its connection while there is nothing to send; a waker thread resumes the
 * streams when the store changed (events written by this process or any
 * other), every 15 s for a keepalive line, and when a stream's client has
 * gone (it watches the sockets of suspended streams).
 *
 * Guards: libmicrohttpd has no deadline for a whole request, only an idle
 * timeout, so a client sending a byte now and then holds its connection for
 * ever (slowloris). Every connection has a guard (its socket_context) that
 * knows its client address and where it is: idle between requests, reading
 * a request (from its first byte, seen by the kernel's byte count, to the
 * handler), or answering. The waker thread answers a request still being
 * read after http.request_timeout_s with 408 itself, on the socket, and
 * shuts the socket down so libmicrohttpd drops the connection; likewise a
 * connection over its client's cap (429) whose request has not arrived.
 *
 * Stopping (core_http_stop): refuse new requests (503 shutting_down), stop
 * listening, end the streams, wait for requests in flight (an ingest waits
 * for its commit), then stop the daemon.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <limits.h>
#include <linux/tcp.h>
#include <math.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "api.h"
#include "batch.h"
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
#define WAKER_MS 200 /* how often the waker looks at streams and guards */
/* A connection over its client's cap whose request has not arrived after
 * this long is answered 429 and closed by the waker. */
#define OVER_CAP_GRACE_MS 200
/* Query parameters per request (400 too_many_parameters). */
#define MAX_PARAMS 256
/* What one header line or query parameter counts toward max_header_bytes
 * beyond its text: about what libmicrohttpd keeps for it (a 56-byte record
 * in the connection's pool), so the count bounds the pool it needs. */
#define ITEM_BYTES 64
/* The connection's memory pool holds this many times max_header_bytes
 * (and 64 KiB more): room for a request line and headers of up to twice
 * the limit, counted as above, to reach our JSON 414/431 (docs/api.md). */
#define POOL_HEADER_MULT 4
/* Ingest answers: up to ROWS_ALL documents each get a row; of a larger
 * batch only those rejected or with refused items, at most ROWS_MAX; at
 * most REFUSALS_LISTED refused items are listed in all; a plugin's string
 * is cut at TEXT_MAX bytes. */
#define ROWS_ALL 1000
#define ROWS_MAX 1000
#define REFUSALS_LISTED 1000
#define TEXT_MAX 512
#define CLIENT_BUCKETS 256
#define CLIENT_KEY 17 /* family byte + IPv4 address or IPv6 /64 */

#ifndef POLLRDHUP
#define POLLRDHUP 0x2000 /* Linux; <poll.h> has it only with _GNU_SOURCE */
#endif

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
static const int counted_status[] = {200, 204, 400, 401, 403, 404,
                                     405, 408, 413, 414, 415, 422,
                                     429, 431, 500, 501, 503, 504};
#define N_STATUS (sizeof counted_status / sizeof counted_status[0])

/* Commit latency buckets of /metrics, in milliseconds. */
static const double commit_bounds_ms[] = CORE_COMMIT_BUCKETS_MS;
#define N_BOUNDS CORE_COMMIT_BUCKETS

typedef struct sse sse;
typedef struct guard guard;

/* A client address (IPv4, or an IPv6 /64) and what it holds open. */
typedef struct client {
  unsigned char key[CLIENT_KEY];
  char name[INET6_ADDRSTRLEN]; /* for messages */
  long conns;                  /* under conn_mu */
  struct client *next;
} client;

enum { G_IDLE, G_READING, G_ANSWERING };

/* One connection's watch (see the top of the file). */
struct guard {
  req *r; /* the request on_uri made and on_completed has not freed */
  int fd;
  client *cl; /* under conn_mu */
  unsigned char key[CLIENT_KEY];
  twin_time opened;
  int over_cap; /* set once, when it was accepted */
  pthread_mutex_t mu;
  /* under mu: */
  int phase;
  twin_time since;    /* G_READING: when its first byte was seen */
  uint64_t base_rx;   /* G_IDLE: bytes received when it became idle */
  int cut;            /* the waker answered it and shut it down */
  guard *prev, *next; /* srv->guards, under conn_mu */
};

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
  long over_cap;        /* atomic: open connections over their client's cap */
  int per_client;       /* connections per client address (effective cap) */
  /* event streams */
  pthread_mutex_t sse_mu;
  pthread_cond_t sse_cv;
  sse *streams;
  long n_streams;
  uint64_t gen; /* bumped when the store changed; under sse_mu */
  pthread_t waker;
  int waker_stop; /* under sse_mu */
  struct pollfd *pfd; /* the waker's, for the sockets of streams */
  size_t pfd_cap;
  /* connections */
  pthread_mutex_t conn_mu;
  guard *guards;
  client *clients[CLIENT_BUCKETS];
  /* metrics: [route][status] (route n = unknown route) */
  uint64_t *counts;
  double *seconds; /* [route]: time spent answering */
};

struct req {
  core_http *srv;
  struct MHD_Connection *conn;
  guard *g; /* NULL when its connection has none (out of memory) */
  const route *rt;
  int route_idx;
  const char *method;
  /* path parameters in template order, by name */
  const char *pname[MAX_SEGS], *pval[MAX_SEGS];
  size_t np;
  char *url;  /* the URL as MHD decoded it */
  char *path; /* a copy of it, split in place */
  int started;  /* on_request has been called (counted in in_flight) */
  int admitted; /* routed and checked (admit) */
  /* from the request target as sent (inspect_uri) */
  const char *uri_at; /* the request target in MHD's buffer (on_uri) */
  size_t uri_len, n_params;
  int bad_uri;        /* a control character in the path or a parameter */
  char bad_field[64]; /* the path part or parameter it is in, or "" */
  char bad_msg[400];
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
  int close_after; /* answer with Connection: close */
  uint64_t t0;
  /* ingest */
  pthread_mutex_t mu;
  int pending, suspended, submitted;
  int counted_committing; /* in srv->committing until completed */
  struct doc_result *results;
  size_t n_docs;
  size_t kept, refusals_listed; /* under mu: details kept, refusals */
};

/* The outcome of one ingested document. Its details (the plugin's
 * message, code, field and refused items) are kept only for the first
 * ROWS_MAX documents that have any, so a request's memory stays near its
 * body's size whatever the plugin says. */
typedef struct doc_result {
  req *r;
  int status;
  char *reason, *code, *field; /* kept details, or NULL */
  json_t *refused;             /* the refused items listed, or NULL */
  size_t items_total;
} doc_result;

struct sse {
  core_http *srv;
  struct MHD_Connection *conn;
  const core_town *town;
  int fd;                        /* its socket, watched while suspended */
  unsigned char key[CLIENT_KEY]; /* its client */
  int listed;                    /* in srv->streams */
  int gone;                      /* atomic: its client has gone */
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

/* r is answered now: its guard's deadline no longer applies. 0, or -1
 * when the waker cut the connection already (answer nothing). */
static int guard_answering(req *r)
{
  guard *g = r->g;
  if (!g)
    return 0;
  pthread_mutex_lock(&g->mu);
  int cut = g->cut;
  if (!cut)
    g->phase = G_ANSWERING;
  pthread_mutex_unlock(&g->mu);
  return cut ? -1 : 0;
}

static enum MHD_Result send_text(req *r, int status, const char *type,
                                 char *text, size_t len)
{
  if (guard_answering(r)) {
    free(text);
    return MHD_NO;
  }
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
  if (status == 503 || status == 429)
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
  if (__atomic_load_n(&r->srv->stopping, __ATOMIC_ACQUIRE) || r->close_after ||
      status == 413 || status == 414 || status == 429 || status == 431)
    MHD_add_response_header(resp, "Connection", "close");
  enum MHD_Result rc = MHD_queue_response(r->conn, (unsigned)status, resp);
  MHD_destroy_response(resp);
  if (rc == MHD_YES) { /* else the connection is closed */
    r->responded = 1;
    count(r, status);
  }
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

static enum MHD_Result h_healthz(req *r)
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
  return send_json(
      r, stopping ? 503 : 200,
      json_pack("{s:s,s:I,s:I,s:I,s:I,s:I,s:o}", "status", status, "uptime_s",
                (json_int_t)((core_now_ms() - s->started) / 1000), "towns",
                (json_int_t)s->h->cfg->n_towns, "plugins_running",
                (json_int_t)running, "plugins_not_running",
                (json_int_t)(s->h->n_inst - running), "documents_committed",
                (json_int_t)(st.docs - st.docs_rejected), "degraded", down));
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

/* The body must be JSON; else 0 after answering 400 bad_json naming
 * where it breaks (the answer's result in *rc). */
static int body_json_ok(req *r, const char *what, enum MHD_Result *rc)
{
  if (!r->body_len) {
    *rc = fail(r, 400, "bad_json", "body",
               "the %s is missing: send it as a JSON body, e.g. "
               "{\"op\":\"now\"}, or name the op in the path (.../%s/<op>)",
               what, strcmp(what, "scenario") ? "query" : "scenario");
    return 0;
  }
  json_error_t je;
  json_t *j = json_loadb(r->body, r->body_len, JSON_DECODE_ANY, &je);
  if (!j) {
    *rc = fail(r, 400, "bad_json", "body",
               "the %s is not JSON: %s (line %d, column %d)", what, je.text,
               je.line, je.column);
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
  enum MHD_Result rc;
  if (!op && !body_json_ok(r, what, &rc))
    return rc;
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

/* The length of s cut to at most max bytes, not inside a UTF-8 sequence. */
static size_t cut_utf8(const char *s, size_t max)
{
  size_t n = strlen(s);
  if (n <= max)
    return n;
  while (max && ((unsigned char)s[max] & 0xC0) == 0x80)
    max--;
  return max;
}

static char *dup_cut(const char *s)
{
  return s && *s ? strndup(s, cut_utf8(s, TEXT_MAX)) : NULL;
}

static json_t *string_cut(const char *s)
{
  json_t *j = json_stringn(s ? s : "", s ? cut_utf8(s, TEXT_MAX) : 0);
  return j ? j : json_string("(not UTF-8)");
}

/* The first n refusals of items, each string cut at TEXT_MAX. */
static json_t *refusals_json(const core_items *items, size_t n)
{
  json_t *a = json_array();
  for (size_t i = 0; a && i < n && i < items->n; i++) {
    const core_item *x = &items->v[i];
    json_t *o = json_object();
    json_object_set_new(o, "item", string_cut(x->item));
    json_object_set_new(o, "code", string_cut(x->code));
    json_object_set_new(o, "reason", string_cut(x->reason));
    if (x->field)
      json_object_set_new(o, "field", string_cut(x->field));
    json_array_append_new(a, o);
  }
  return a;
}

static void ingest_done(void *ud, const core_outcome *o)
{
  doc_result *d = ud;
  req *r = d->r;
  d->status = o->status;
  d->items_total = o->items ? o->items->total : 0;
  /* Details only for the first ROWS_MAX documents that have any, and at
   * most REFUSALS_LISTED refused items in all. */
  pthread_mutex_lock(&r->mu);
  int keep = (o->status || d->items_total) && r->kept < ROWS_MAX;
  size_t listed = 0;
  if (keep) {
    r->kept++;
    size_t room = REFUSALS_LISTED - r->refusals_listed;
    listed = !o->items ? 0 : o->items->n < room ? o->items->n : room;
    r->refusals_listed += listed;
  }
  pthread_mutex_unlock(&r->mu);
  if (keep) {
    if (o->status)
      d->reason = dup_cut(
          o->reason && *o->reason ? o->reason : core_status_message(o->status));
    d->code = dup_cut(o->code);
    d->field = dup_cut(o->field);
    if (d->items_total)
      d->refused = refusals_json(o->items, listed);
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

static json_t *result_row(size_t i, doc_result *d)
{
  json_t *row;
  if (!d->status) {
    row = json_pack("{s:I,s:s}", "index", (json_int_t)i, "status", "accepted");
  } else {
    core_err err;
    core_err_set(&err, d->status, "%s",
                 d->reason ? d->reason : core_status_message(d->status));
    core_err_detail(&err, d->code, d->field);
    api_error e;
    api_fail_status(&e, d->status, &err);
    json_t *ej = api_error_json(&e);
    row = json_pack("{s:I,s:s,s:O}", "index", (json_int_t)i, "status",
                    "rejected", "error", json_object_get(ej, "error"));
    json_decref(ej);
  }
  if (row && d->items_total) {
    json_object_set_new(row, "items_refused",
                        json_integer((json_int_t)d->items_total));
    json_object_set_new(row, "refused", d->refused ? d->refused : json_array());
    d->refused = NULL;
  }
  return row;
}

/* The answer of an ingest (docs/api.md, "Batch ingest" and "Limits"): a
 * row per document up to ROWS_ALL documents; beyond, rows only for those
 * rejected or with refused items, at most ROWS_MAX, and how many have
 * none. */
static enum MHD_Result ingest_reply(req *r)
{
  json_t *results = json_array();
  size_t ok = 0, refused = 0, rows = 0, omitted = 0;
  int every = r->n_docs <= ROWS_ALL, truncated = 0;
  for (size_t i = 0; i < r->n_docs; i++) {
    doc_result *d = &r->results[i];
    ok += !d->status;
    refused += d->items_total;
    if (!every && !d->status && !d->items_total) {
      omitted++;
      continue;
    }
    if (rows == (every ? ROWS_ALL : ROWS_MAX)) {
      omitted++;
      truncated = 1;
      continue;
    }
    json_array_append_new(results, result_row(i, d));
    rows++;
  }
  size_t n = r->n_docs;
  json_t *o = json_pack("{s:I,s:I,s:I,s:o}", "accepted", (json_int_t)ok,
                        "rejected", (json_int_t)(n - ok), "items_refused",
                        (json_int_t)refused, "results", results);
  if (o && !every) {
    json_object_set_new(o, "results_omitted",
                        json_integer((json_int_t)omitted));
    json_object_set_new(o, "results_truncated", json_boolean(truncated));
  }
  return send_json(r, ok || !n ? 200 : 422, o);
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
  core_batch d;
  char type[128];
  raw_type(r, type, sizeof type);
  if (api_args_check(&r->args, no_args, &e))
    return send_error(r, &e);
  if (type[0] && !r->body_len)
    return fail(r, 400, "bad_request", "body",
                "the body is empty: send the %s document", type);
  /* one document of a type the plugin declared, as sent; or a batch, of
   * at most max_documents (413 before anything is submitted) */
  core_batch_form form = type[0]        ? CORE_BATCH_WHOLE
                         : is_ndjson(r) ? CORE_BATCH_LINES
                                        : CORE_BATCH_JSON;
  if (core_batch_split(r->body, r->body_len, form, r->srv->cfg.max_documents,
                       &d, &e))
    return send_error(r, &e);
  r->results = calloc(d.n, sizeof *r->results);
  if (!r->results) {
    core_batch_free(&d);
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
  core_batch_free(&d);
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
  if (s->listed) {
    for (sse **pp = &srv->streams; *pp; pp = &(*pp)->next)
      if (*pp == s) {
        *pp = s->next;
        break;
      }
    srv->n_streams--;
  }
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
    if (__atomic_load_n(&s->gone, __ATOMIC_ACQUIRE))
      return MHD_CONTENT_READER_END_WITH_ERROR; /* nobody reads it */
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

static int stream_gone(sse *x);

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
  s->fd = r->g ? r->g->fd : -1;
  if (r->g)
    memcpy(s->key, r->g->key, CLIENT_KEY);
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
  /* The caps count live streams: one whose client has gone (and the
   * waker has not seen yet) is ended now instead. Counted and listed
   * under one lock, so two requests cannot both take the last place. */
  long mine = 0, town = 0;
  pthread_mutex_lock(&srv->sse_mu);
  for (sse *x = srv->streams; x; x = x->next) {
    int same_client = r->g && !memcmp(x->key, s->key, CLIENT_KEY);
    int same_town = x->town == s->town;
    if ((!same_client && !same_town) || stream_gone(x))
      continue;
    mine += same_client;
    town += same_town;
  }
  int over = mine >= srv->cfg.max_streams_per_client ||
             town >= srv->cfg.max_streams_per_town;
  if (!over) {
    s->listed = 1;
    s->next = srv->streams;
    srv->streams = s;
    srv->n_streams++;
  }
  pthread_mutex_unlock(&srv->sse_mu);
  if (over) {
    MHD_destroy_response(resp); /* frees s */
    return mine >= srv->cfg.max_streams_per_client
               ? fail(r, 429, "too_many_streams", NULL,
                      "this client has %ld event streams open, the most one "
                      "client may (http.max_streams_per_client); close one "
                      "(one stream per page is enough), then retry",
                      mine)
               : fail(r, 429, "too_many_streams", NULL,
                      "town '%s' has %ld event streams open, the most it "
                      "may (http.max_streams_per_town); retry later",
                      r->town->id, town);
  }
  if (guard_answering(r)) {
    MHD_destroy_response(resp);
    return MHD_NO;
  }
  MHD_add_response_header(resp, "Content-Type", "text/event-stream");
  MHD_add_response_header(resp, "X-Accel-Buffering", "no");
  common_headers(resp);
  enum MHD_Result rc = MHD_queue_response(r->conn, 200, resp);
  MHD_destroy_response(resp);
  r->responded = 1;
  count(r, 200);
  return rc;
}

/* 1 when x's client has gone: known, or seen now on its socket (then it
 * is ended: resumed to find it gone). Under sse_mu. */
static int stream_gone(sse *x)
{
  if (__atomic_load_n(&x->gone, __ATOMIC_ACQUIRE))
    return 1;
  if (x->fd < 0)
    return 0;
  struct pollfd p = {x->fd, POLLRDHUP, 0};
  if (poll(&p, 1, 0) <= 0 || !(p.revents & (POLLRDHUP | POLLHUP | POLLERR)))
    return 0;
  __atomic_store_n(&x->gone, 1, __ATOMIC_RELEASE);
  if (x->suspended) {
    x->suspended = 0;
    MHD_resume_connection(x->conn);
  }
  return 1;
}

/* End the suspended streams whose client has gone (under sse_mu): a
 * closed browser tab frees its stream at once, not at the next keepalive
 * write. A stream that is sending finds out by itself. */
static void reap_streams(core_http *srv)
{
  size_t n = 0;
  for (sse *x = srv->streams; x; x = x->next)
    n += x->suspended && x->fd >= 0 && !x->gone;
  if (!n)
    return;
  if (n > srv->pfd_cap) {
    struct pollfd *p = realloc(srv->pfd, n * sizeof *p);
    if (!p)
      return;
    srv->pfd = p;
    srv->pfd_cap = n;
  }
  size_t k = 0;
  for (sse *x = srv->streams; x; x = x->next)
    if (x->suspended && x->fd >= 0 && !x->gone)
      srv->pfd[k++] = (struct pollfd){x->fd, POLLRDHUP, 0};
  if (poll(srv->pfd, k, 0) <= 0)
    return;
  k = 0;
  for (sse *x = srv->streams; x; x = x->next) {
    if (!x->suspended || x->fd < 0 || x->gone)
      continue;
    if (srv->pfd[k++].revents & (POLLRDHUP | POLLHUP | POLLERR)) {
      __atomic_store_n(&x->gone, 1, __ATOMIC_RELEASE);
      x->suspended = 0;
      MHD_resume_connection(x->conn);
    }
  }
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

/* ---- guards: deadlines and per-client caps --------------------------------
 */

/* The guard of conn (its socket_context), or NULL. */
static guard *guard_of(struct MHD_Connection *conn)
{
  const union MHD_ConnectionInfo *ci =
      MHD_get_connection_info(conn, MHD_CONNECTION_INFO_SOCKET_CONTEXT);
  return ci ? ci->socket_context : NULL;
}

/* Bytes the kernel has received on fd so far; 0 when it cannot say (a
 * kernel before Linux 4.1). A request's first byte shows here before
 * libmicrohttpd tells us anything. */
static int rx_bytes(int fd, uint64_t *out)
{
  struct tcp_info ti;
  socklen_t len = sizeof ti;
  memset(&ti, 0, sizeof ti);
  if (getsockopt(fd, IPPROTO_TCP, TCP_INFO, &ti, &len) ||
      len < offsetof(struct tcp_info, tcpi_bytes_received) +
                sizeof ti.tcpi_bytes_received)
    return 0;
  *out = ti.tcpi_bytes_received;
  return 1;
}

static void client_key(const struct sockaddr *sa, unsigned char key[CLIENT_KEY],
                       char name[INET6_ADDRSTRLEN])
{
  memset(key, 0, CLIENT_KEY);
  snprintf(name, INET6_ADDRSTRLEN, "unknown");
  if (sa && sa->sa_family == AF_INET) {
    const struct sockaddr_in *a = (const struct sockaddr_in *)sa;
    key[0] = 4;
    memcpy(key + 1, &a->sin_addr, 4);
    inet_ntop(AF_INET, &a->sin_addr, name, INET6_ADDRSTRLEN);
  } else if (sa && sa->sa_family == AF_INET6) {
    const struct sockaddr_in6 *a = (const struct sockaddr_in6 *)sa;
    const unsigned char *b = a->sin6_addr.s6_addr;
    if (IN6_IS_ADDR_V4MAPPED(&a->sin6_addr)) {
      key[0] = 4;
      memcpy(key + 1, b + 12, 4);
      inet_ntop(AF_INET, b + 12, name, INET6_ADDRSTRLEN);
    } else { /* one client holds a /64 */
      key[0] = 6;
      memcpy(key + 1, b, 8);
      inet_ntop(AF_INET6, b, name, INET6_ADDRSTRLEN);
    }
  }
}

static size_t client_bucket(const unsigned char key[CLIENT_KEY])
{
  uint32_t h = 2166136261u;
  for (size_t i = 0; i < CLIENT_KEY; i++)
    h = (h ^ key[i]) * 16777619u;
  return h % CLIENT_BUCKETS;
}

/* The client of key with one more connection (under conn_mu); NULL when
 * out of memory. */
static client *client_add(core_http *s, const unsigned char *key,
                          const char *name)
{
  client **b = &s->clients[client_bucket(key)], *c = *b;
  while (c && memcmp(c->key, key, CLIENT_KEY))
    c = c->next;
  if (!c) {
    c = calloc(1, sizeof *c);
    if (!c)
      return NULL;
    memcpy(c->key, key, CLIENT_KEY);
    snprintf(c->name, sizeof c->name, "%s", name);
    c->next = *b;
    *b = c;
  }
  c->conns++;
  return c;
}

static void client_drop(core_http *s, client *c)
{
  if (!c || --c->conns > 0)
    return;
  for (client **pp = &s->clients[client_bucket(c->key)]; *pp; pp = &(*pp)->next)
    if (*pp == c) {
      *pp = c->next;
      break;
    }
  free(c);
}

static void count_unrouted(core_http *s, int status)
{
  __atomic_add_fetch(&s->counts[N_ROUTES * N_STATUS + status_slot(status)], 1,
                     __ATOMIC_RELAXED);
}

/* Answer g's request ourselves, on its socket, and shut the socket down
 * so libmicrohttpd drops the connection (under g->mu, while libmicrohttpd
 * is still reading the request, so it writes nothing itself). */
static void cut(core_http *s, guard *g, int status)
{
  api_error e;
  if (status == 408)
    api_fail(&e, 408, "request_timeout", NULL,
             "the request line, headers and body did not all arrive within "
             "%d s of its first byte (http.request_timeout_s); send the "
             "whole request at once, then retry",
             s->cfg.request_timeout_s);
  else
    api_fail(&e, 429, "too_many_connections_from_client", NULL,
             "this client (%s) has %d connections open, the most one client "
             "may (http.max_connections_per_client); reuse one (keep-alive) "
             "or close some, then retry",
             g->cl ? g->cl->name : "?", s->per_client);
  json_t *j = api_error_json(&e);
  char *body = j ? json_dumps(j, JSON_COMPACT) : NULL;
  json_decref(j);
  char buf[2048];
  int n =
      snprintf(buf, sizeof buf,
               "HTTP/1.1 %d %s\r\nContent-Type: application/json\r\n"
               "Content-Length: %zu\r\nConnection: close\r\n%s"
               "Cache-Control: no-store\r\n"
               "Access-Control-Allow-Origin: *\r\n\r\n%s\n",
               status, status == 408 ? "Request Timeout" : "Too Many Requests",
               body ? strlen(body) + 1 : 1,
               status == 429 ? "Retry-After: 5\r\n" : "", body ? body : "");
  free(body);
  if (n > 0 && (size_t)n < sizeof buf &&
      send(g->fd, buf, (size_t)n, MSG_NOSIGNAL | MSG_DONTWAIT) > 0)
    count_unrouted(s, status);
  shutdown(g->fd, SHUT_RDWR);
  g->cut = 1;
}

/* The waker's look at every connection: a request past its deadline, or
 * a connection over its client's cap whose request has not come, is
 * answered and cut. */
static void guard_scan(core_http *s, twin_time now)
{
  twin_time timeout = (twin_time)s->cfg.request_timeout_s * 1000;
  pthread_mutex_lock(&s->conn_mu);
  for (guard *g = s->guards; g; g = g->next) {
    pthread_mutex_lock(&g->mu);
    if (!g->cut && g->phase == G_IDLE) {
      uint64_t rx = 0;
      /* without the kernel's count, idle time counts as reading */
      if (!rx_bytes(g->fd, &rx) || rx > g->base_rx) {
        g->phase = G_READING;
        g->since = now;
      }
    }
    if (!g->cut && g->over_cap && g->phase != G_ANSWERING &&
        now - g->opened >= OVER_CAP_GRACE_MS)
      cut(s, g, 429);
    else if (!g->cut && g->phase == G_READING && now - g->since >= timeout)
      cut(s, g, 408);
    pthread_mutex_unlock(&g->mu);
  }
  pthread_mutex_unlock(&s->conn_mu);
}

static void *waker_main(void *arg)
{
  core_http *srv = arg;
  size_t last_txn = 0;
  twin_time last_keepalive = core_now_ms(), last_scan = 0;
  pthread_mutex_lock(&srv->sse_mu);
  while (!srv->waker_stop) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    ts.tv_nsec += WAKER_MS * 1000 * 1000;
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
    reap_streams(srv);
    if (now - last_scan >= WAKER_MS) {
      last_scan = now;
      pthread_mutex_unlock(&srv->sse_mu); /* never both locks */
      guard_scan(srv, now);
      pthread_mutex_lock(&srv->sse_mu);
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
                                   const char *key, size_t key_size,
                                   const char *value, size_t value_size)
{
  (void)kind;
  (void)key_size;
  (void)value_size;
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

/* ---- screening: what is refused before routing --------------------------- */

static int hex_value(char c)
{
  return c >= '0' && c <= '9'   ? c - '0'
         : c >= 'a' && c <= 'f' ? c - 'a' + 10
         : c >= 'A' && c <= 'F' ? c - 'A' + 10
                                : -1;
}

/* Percent-decode in[0..n) into out (room for n bytes), '+' as a space
 * when plus (a query part), as libmicrohttpd decodes them; the length. */
static size_t pct_decode(const char *in, size_t n, char *out, int plus)
{
  size_t k = 0;
  for (size_t i = 0; i < n; i++) {
    int hi = i + 2 < n ? hex_value(in[i + 1]) : -1;
    int lo = i + 2 < n ? hex_value(in[i + 2]) : -1;
    if (in[i] == '%' && hi >= 0 && lo >= 0) {
      out[k++] = (char)(hi * 16 + lo);
      i += 2;
    } else {
      out[k++] = plus && in[i] == '+' ? ' ' : in[i];
    }
  }
  return k;
}

static int is_ctl(unsigned char c)
{
  return c < 0x20 || c == 0x7f;
}

/* text[0..n) for a message: control characters as %XX, at most 60
 * characters shown. */
static void shown(const char *text, size_t n, char *out, size_t size)
{
  size_t k = 0;
  for (size_t i = 0; i < n && k + 8 < size; i++) {
    if (i == 60) {
      k += (size_t)snprintf(out + k, size - k, "...");
      break;
    }
    unsigned char c = (unsigned char)text[i];
    if (is_ctl(c))
      k += (size_t)snprintf(out + k, size - k, "%%%02X", c);
    else
      out[k++] = (char)c;
  }
  out[k] = 0;
}

/* The template parameter ("town", "id", ...) at segment index bad of a
 * path split into n decoded segments, into out, when a route's template
 * matches its other segments; 1 if found. */
static int template_param(char *const *seg, const size_t *len, size_t n,
                          size_t bad, char *out, size_t size)
{
  for (size_t i = 0; i < N_ROUTES; i++) {
    const char *t = routes[i].path, *param = NULL;
    size_t k = 0;
    int ok = 1;
    while (ok && *t == '/') {
      t++;
      const char *e = strchr(t, '/');
      size_t tl = e ? (size_t)(e - t) : strlen(t);
      int is_param = tl >= 2 && t[0] == '{' && t[tl - 1] == '}';
      if (k >= n)
        ok = 0;
      else if (is_param && k == bad)
        param = t + 1;
      else if (!is_param && (len[k] != tl || memcmp(seg[k], t, tl)))
        ok = 0;
      k++;
      t += tl;
    }
    if (ok && k == n && param) {
      snprintf(out, size, "%.*s", (int)(strchr(param, '}') - param), param);
      return 1;
    }
  }
  return 0;
}

/* Find the first control character (raw or percent-encoded) of the
 * request target as sent, before libmicrohttpd decodes it in place and a
 * %00 silently cuts the path or value short. Fills r->bad_*. */
static void inspect_uri(req *r, const char *uri)
{
  size_t n = strlen(uri);
  r->uri_len = n;
  const char *q = memchr(uri, '?', n);
  size_t plen = q ? (size_t)(q - uri) : n;
  char *buf = malloc(n + 1);
  if (!buf)
    return;
  /* the path: decoded whole, then split at '/', as routing does */
  size_t dl = pct_decode(uri, plen, buf, 0);
  if (dl > 1 && buf[dl - 1] == '/')
    dl--;
  char *seg[MAX_SEGS + 1];
  size_t len[MAX_SEGS + 1], nseg = 0, bad = SIZE_MAX;
  for (size_t i = 0; i < dl && nseg <= MAX_SEGS;) {
    if (buf[i] != '/') { /* not from the root: one segment */
      seg[nseg] = buf + i;
    } else {
      i++;
      seg[nseg] = buf + i;
    }
    size_t e = i;
    while (e < dl && buf[e] != '/')
      e++;
    len[nseg] = e - i;
    for (size_t k = i; k < e && bad == SIZE_MAX; k++)
      if (is_ctl((unsigned char)buf[k]))
        bad = nseg;
    nseg++;
    i = e;
  }
  if (bad != SIZE_MAX) {
    char pbuf[32];
    const char *param =
        template_param(seg, len, nseg, bad, pbuf, sizeof pbuf) ? pbuf : NULL;
    char text[200];
    shown(seg[bad], len[bad], text, sizeof text);
    r->bad_uri = 1;
    snprintf(r->bad_field, sizeof r->bad_field, "%s", param ? param : "");
    snprintf(r->bad_msg, sizeof r->bad_msg,
             "the path part '%s'%s%s%s has a control character; names and "
             "ids never have one: fix the URL (percent-encode only printable "
             "characters)",
             text, param ? " (" : "", param ? param : "", param ? ")" : "");
    free(buf);
    return;
  }
  /* the parameters as libmicrohttpd splits them: at each '&' (a last
   * empty one is none) */
  if (q && q[1]) {
    r->n_params = 1;
    for (const char *p = strchr(q + 1, '&'); p; p = strchr(p + 1, '&'))
      r->n_params += p[1] != 0;
  }
  /* the parameters: name=value&..., each decoded on its own */
  for (const char *p = q ? q + 1 : NULL; p && *p;) {
    const char *amp = strchr(p, '&');
    size_t pl = amp ? (size_t)(amp - p) : strlen(p);
    const char *eq = memchr(p, '=', pl);
    size_t nl = eq ? (size_t)(eq - p) : pl;
    size_t kn = pct_decode(p, nl, buf, 1);
    int bad_name = 0, bad_value = 0;
    for (size_t k = 0; k < kn; k++)
      bad_name |= is_ctl((unsigned char)buf[k]);
    char name[64], text[200];
    shown(buf, kn, name, sizeof name);
    if (!bad_name && eq) {
      size_t vn = pct_decode(eq + 1, pl - nl - 1, buf, 1);
      for (size_t k = 0; k < vn; k++)
        bad_value |= is_ctl((unsigned char)buf[k]);
      shown(buf, vn, text, sizeof text);
    }
    if (bad_name || bad_value) {
      r->bad_uri = 1;
      snprintf(r->bad_field, sizeof r->bad_field, "%s", bad_name ? "" : name);
      if (bad_name)
        snprintf(r->bad_msg, sizeof r->bad_msg,
                 "the parameter name '%s' has a control character: fix the "
                 "URL",
                 name);
      else
        snprintf(r->bad_msg, sizeof r->bad_msg,
                 "%s: the value '%s' has a control character; values never "
                 "have one: fix the URL (percent-encode only printable "
                 "characters)",
                 name, text);
      break;
    }
    p = amp ? amp + 1 : NULL;
  }
  free(buf);
}

/* Free r (its request has ended) and forget it in its guard. */
static void req_free(core_http *s, req *r)
{
  if (r->g && r->g->r == r)
    r->g->r = NULL;
  if (r->results)
    for (size_t i = 0; i < r->n_docs; i++) {
      free(r->results[i].reason);
      free(r->results[i].code);
      free(r->results[i].field);
      json_decref(r->results[i].refused);
    }
  free(r->results);
  free(r->body);
  free(r->argv);
  free(r->path);
  free(r->url);
  pthread_mutex_destroy(&r->mu);
  int started = r->started;
  free(r);
  if (started)
    __atomic_sub_fetch(&s->in_flight, 1, __ATOMIC_ACQ_REL);
}

/* libmicrohttpd's URI log callback: called with the request target as
 * sent, before it is split and decoded; what it returns is the request's
 * context (*con_cls of on_request). */
static void *on_uri(void *cls, const char *uri, struct MHD_Connection *conn)
{
  core_http *s = cls;
  req *r = calloc(1, sizeof *r);
  if (!r)
    return NULL;
  r->srv = s;
  r->conn = conn;
  r->g = guard_of(conn);
  r->t0 = core_mono_ns();
  pthread_mutex_init(&r->mu, NULL);
  if (r->g) {
    /* libmicrohttpd 0.9.75 forgets to report the end of a request in a
     * few error paths (an error answered twice); the request it forgot
     * is freed when the next one starts or the connection closes */
    if (r->g->r)
      req_free(s, r->g->r);
    r->g->r = r;
  }
  r->uri_at = uri;
  if (uri)
    inspect_uri(r, uri);
  /* A request target over the limit, or with more parameters than are
   * taken, is refused at its first on_request call anyway. Its query is
   * cut here (libmicrohttpd 0.9.75 found the '?' before calling us and
   * parses what follows it after we return), so libmicrohttpd does not
   * fill the connection's memory with parameter records first and close
   * the connection without an answer. */
  const char *q = uri ? strchr(uri, '?') : NULL;
  if (q && (r->uri_len > s->cfg.max_header_bytes || r->n_params > MAX_PARAMS))
    *(char *)(q + 1) = 0;
  return r;
}

/* RFC 9110 token characters, those of a header name. */
static int is_tchar(unsigned char c)
{
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
         (c >= '0' && c <= '9') || (c && strchr("!#$%&'*+-.^_`|~", c));
}

/* What the header lines say about framing, and their size. */
typedef struct frame {
  size_t n_headers, bytes;
  int n_cl, n_te, cl_differ, cl_bad;
  const char *cl, *te;
  size_t cl_len;
  char bad_name[80];    /* a header name that is not a token, as shown */
  char bad_value[80];   /* the name of a header whose value has a CTL */
  uintptr_t lo, hi;     /* the request's header block, or 0 */
  uintptr_t (*span)[2]; /* [key start, value end] of each header in it */
  size_t n_span, span_cap;
  int outside; /* a value not in [lo, hi), or out of memory */
  int folded;  /* a header name moved out: its line was folded */
} frame;

static enum MHD_Result frame_header(void *cls, enum MHD_ValueKind kind,
                                    const char *key, size_t key_size,
                                    const char *value, size_t value_size)
{
  (void)kind;
  frame *f = cls;
  f->n_headers++;
  f->bytes += key_size + value_size + 4;
  int name_ok = key_size > 0;
  for (size_t i = 0; i < key_size; i++)
    name_ok &= is_tchar((unsigned char)key[i]);
  if (!name_ok && !f->bad_name[0]) {
    shown(key, key_size, f->bad_name, sizeof f->bad_name);
    if (!f->bad_name[0])
      snprintf(f->bad_name, sizeof f->bad_name, "(empty)");
  }
  for (size_t i = 0; name_ok && i < value_size && !f->bad_value[0]; i++)
    if (is_ctl((unsigned char)value[i]) && value[i] != '\t')
      snprintf(f->bad_value, sizeof f->bad_value, "%.*s", (int)key_size, key);
  if (name_ok && key_size == 14 && !strncasecmp(key, "Content-Length", 14)) {
    int digits = value_size > 0;
    for (size_t i = 0; i < value_size; i++)
      digits &= value[i] >= '0' && value[i] <= '9';
    f->cl_bad |= !digits;
    if (f->n_cl++ &&
        (value_size != f->cl_len || memcmp(value, f->cl, value_size)))
      f->cl_differ = 1;
    f->cl = value;
    f->cl_len = value_size;
  }
  if (name_ok && key_size == 17 && !strncasecmp(key, "Transfer-Encoding", 17)) {
    f->n_te++;
    f->te = value;
  }
  uintptr_t k = (uintptr_t)key, v = (uintptr_t)value;
  if (!f->lo || f->outside)
    return MHD_YES;
  if (!value || v < f->lo || v + value_size > f->hi) {
    f->outside = 1;
    return MHD_YES;
  }
  if (k < f->lo || k >= f->hi || k > v) { /* moved: a folded line joined */
    f->folded = 1;
    return MHD_YES;
  }
  if (f->n_span == f->span_cap) {
    size_t cap = f->span_cap ? 2 * f->span_cap : 32;
    uintptr_t(*sp)[2] = realloc(f->span, cap * sizeof *sp);
    if (!sp) {
      f->outside = 1;
      return MHD_YES;
    }
    f->span = sp;
    f->span_cap = cap;
  }
  f->span[f->n_span][0] = k;
  f->span[f->n_span][1] = v + value_size;
  f->n_span++;
  return MHD_YES;
}

static int span_cmp(const void *a, const void *b)
{
  uintptr_t x = ((const uintptr_t *)a)[0], y = ((const uintptr_t *)b)[0];
  return x < y ? -1 : x > y;
}

/* 1 when the header block [f->lo, f->hi) has bytes that are in no header
 * (from the end of the request line at from): libmicrohttpd overwrote
 * every CR, LF and colon it parsed with NUL, so what is left between two
 * headers or after the last is a line it did not read as one: a line it
 * took for the end of the headers because it starts with a NUL, or a
 * folded (obsolete) continuation line. */
static int hidden_bytes(frame *f, uintptr_t from)
{
  if (!f->lo || f->outside)
    return 0;
  if (f->folded)
    return 1;
  if (f->n_span) /* none: a request without headers */
    qsort(f->span, f->n_span, sizeof *f->span, span_cmp);
  uintptr_t at = from;
  for (size_t i = 0; i <= f->n_span; i++) {
    uintptr_t to = i < f->n_span ? f->span[i][0] : f->hi;
    for (uintptr_t p = at; p < to; p++)
      if (*(const char *)p)
        return 1;
    if (i < f->n_span && f->span[i][1] > at)
      at = f->span[i][1];
  }
  return 0;
}

/* Everything refused from the request line and headers alone, before
 * routing (docs/api.md "Errors"): 0 to go on, else -1 with the answer in
 * *rc. Every refusal here closes the connection. */
static int screen(req *r, const char *method, const char *version,
                  enum MHD_Result *rc)
{
  core_http *s = r->srv;
  size_t limit = s->cfg.max_header_bytes;
  r->close_after = 1;
  if (r->g && r->g->over_cap) {
    *rc = fail(r, 429, "too_many_connections_from_client", NULL,
               "this client (%s) has %d connections open, the most one "
               "client may (http.max_connections_per_client); reuse one "
               "(keep-alive) or close some, then retry",
               r->g->cl ? r->g->cl->name : "?", s->per_client);
    return -1;
  }
  frame f;
  memset(&f, 0, sizeof f);
  /* The request line and headers as libmicrohttpd 0.9.75 keeps them: in
   * place in its read buffer, from the method on, CR, LF and the colons
   * overwritten with NULs. Known only for the bytes of this request. */
  const union MHD_ConnectionInfo *hs =
      MHD_get_connection_info(r->conn, MHD_CONNECTION_INFO_REQUEST_HEADER_SIZE);
  uintptr_t vend = (uintptr_t)version + strlen(version);
  if (hs && vend > (uintptr_t)method &&
      vend <= (uintptr_t)method + hs->header_size) {
    f.lo = (uintptr_t)method;
    f.hi = f.lo + hs->header_size;
  }
  MHD_get_connection_values_n(r->conn, MHD_HEADER_KIND, frame_header, &f);
  int hidden = hidden_bytes(&f, vend);
  free(f.span);
  if (f.bad_name[0]) {
    *rc = fail(r, 400, "bad_header", NULL,
               "the header name '%s' has a space, a control character or "
               "another character a header name cannot have; send 'Name: "
               "value' with no space before the colon",
               f.bad_name);
    return -1;
  }
  /* A line libmicrohttpd took for the end of the headers though it was
   * not empty (it starts with a NUL), or a folded header line. */
  if (hidden) {
    *rc = fail(r, 400, "bad_header", NULL,
               "a header line starts with a NUL byte or continues the line "
               "before it (obsolete folding); send each header on one line, "
               "'Name: value'");
    return -1;
  }
  if (f.bad_value[0]) {
    *rc = fail(r, 400, "bad_header", f.bad_value,
               "the value of %s has a control character; header values "
               "cannot have one",
               f.bad_value);
    return -1;
  }
  if (f.n_te && f.n_cl) {
    *rc = fail(r, 400, "bad_framing", "Content-Length",
               "the request has both Content-Length and Transfer-Encoding, "
               "so its length is ambiguous; send one of them");
    return -1;
  }
  if (f.n_te && (f.n_te > 1 || strcasecmp(f.te, "chunked"))) {
    *rc = fail(r, 501, "unsupported_transfer_encoding", "Transfer-Encoding",
               "the only Transfer-Encoding taken is 'chunked', once; send "
               "the body as it is, with Content-Length or chunked");
    return -1;
  }
  if (f.cl_differ || f.cl_bad) {
    *rc = fail(r, 400, "bad_framing", "Content-Length",
               f.cl_bad ? "Content-Length must be a number of bytes"
                        : "the request has Content-Length twice with "
                          "different values; send it once");
    return -1;
  }
  /* A raw NUL in the request target: what was inspected ended there.
   * libmicrohttpd ended the target by overwriting the space before the
   * version with a NUL, so the version starts just after the true end. */
  if (r->uri_at && *version && version > r->uri_at &&
      version - 1 > r->uri_at + r->uri_len) {
    *rc = fail(r, 400, "bad_request", NULL,
               "the request target has a NUL byte; percent-encode what the "
               "URL holds (a NUL is never valid in a path or parameter)");
    return -1;
  }
  if (r->uri_len > limit) {
    *rc = fail(r, 414, "uri_too_long", NULL,
               "the request target (path and query) is %zu bytes; the "
               "limit is %zu (http.max_header_bytes): shorten it, or send a "
               "query as a POST body",
               r->uri_len, limit);
    return -1;
  }
  MHD_get_connection_values_n(r->conn, MHD_GET_ARGUMENT_KIND, collect_arg, r);
  r->args = (api_args){r->argv, r->argc};
  if (r->n_params > MAX_PARAMS || r->argc > MAX_PARAMS) {
    *rc = fail(r, 400, "too_many_parameters", NULL,
               "the request has %zu query parameters; at most %d are taken: "
               "send fewer",
               r->n_params > r->argc ? r->n_params : r->argc, MAX_PARAMS);
    return -1;
  }
  size_t bytes = strlen(method) + r->uri_len + strlen(version) + 4 + f.bytes +
                 ITEM_BYTES * (f.n_headers + r->argc);
  if (bytes > limit) {
    *rc = fail(r, 431, "headers_too_large", NULL,
               "the request line and headers count %zu bytes (each header "
               "and parameter %d more than its text); the limit is %zu "
               "(http.max_header_bytes): send fewer or shorter headers",
               bytes, ITEM_BYTES, limit);
    return -1;
  }
  if (r->bad_uri) {
    *rc = fail(r, 400, "bad_parameter", r->bad_field[0] ? r->bad_field : NULL,
               "%s", r->bad_msg);
    return -1;
  }
  r->close_after = 0;
  return 0;
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
      *rc =
          guard_answering(r) ? MHD_NO : MHD_queue_response(r->conn, 204, resp);
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
  /* Those over their client's cap are on their way out (429) and take no
   * place: a client opening and dropping connections over its cap does
   * not push others over the limit. */
  if (__atomic_load_n(&s->connections, __ATOMIC_RELAXED) -
          __atomic_load_n(&s->over_cap, __ATOMIC_RELAXED) >
      s->cfg.max_connections) {
    *rc = fail(r, 503, "too_many_connections", NULL,
               "more than %d connections are open; try again shortly, or "
               "reuse one connection (keep-alive)",
               s->cfg.max_connections);
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

/* r's connection is being read (on_request's calls before the handler):
 * its deadline runs from its first byte, or from now if the waker has not
 * seen that yet. -1 when the waker has cut it. */
static int guard_reading(req *r)
{
  guard *g = r->g;
  if (!g)
    return 0;
  pthread_mutex_lock(&g->mu);
  int cut = g->cut;
  if (!cut && g->phase == G_IDLE) {
    g->phase = G_READING;
    g->since = core_now_ms();
  }
  pthread_mutex_unlock(&g->mu);
  return cut ? -1 : 0;
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *conn,
                                  const char *url, const char *method,
                                  const char *version,
                                  const char *upload_data,
                                  size_t *upload_data_size, void **con_cls)
{
  core_http *s = cls;
  req *r = *con_cls;
  if (!r) { /* on_uri found no memory, or was not called */
    r = on_uri(s, NULL, conn);
    if (!r)
      return MHD_NO;
    *con_cls = r;
  }
  if (!r->started) {
    r->started = 1;
    r->method = method;
    __atomic_add_fetch(&s->in_flight, 1, __ATOMIC_ACQ_REL);
    if (guard_reading(r))
      return MHD_NO;
    r->url = strdup(url);
    if (!r->url)
      return MHD_NO;
    enum MHD_Result rc = MHD_YES;
    if (screen(r, method, version, &rc))
      return rc;
    /* A request with a body is checked now, so a refused upload is not
     * read. One without is checked at its last call: an answer queued
     * before the request is complete closes the connection, and a client
     * that got a 401 or 404 should keep its keep-alive connection. */
    const char *cl = MHD_lookup_connection_value(conn, MHD_HEADER_KIND,
                                                 "Content-Length");
    int has_body = (cl && strtoull(cl, NULL, 10) > 0) ||
                   MHD_lookup_connection_value(conn, MHD_HEADER_KIND,
                                               "Transfer-Encoding");
    int expects =
        MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "Expect") != NULL;
    if (!has_body && !expects)
      return MHD_YES;
    r->admitted = 1;
    if (route_request(r, r->url, &rc) || admit(r, &rc))
      return rc;
    if (!has_body) {
      /* "Expect: 100-continue" without a body: libmicrohttpd 0.9.75 would
       * send "100 Continue", then hand what follows (the next request) to
       * us as this one's body, at a moment no answer can be queued, and
       * the connection would hang. Answered now; it closes after. */
      if (guard_answering(r))
        return MHD_NO;
      rc = r->rt->fn(r);
      drop_txn(r);
      return rc;
    }
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
  if (!r->submitted && guard_reading(r))
    return MHD_NO;
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
  /* the whole request is here: from now on it is being answered */
  if (guard_answering(r))
    return MHD_NO;
  enum MHD_Result rc = r->rt->fn(r);
  drop_txn(r);
  return rc;
}

static void on_completed(void *cls, struct MHD_Connection *conn,
                         void **con_cls, enum MHD_RequestTerminationCode toe)
{
  (void)toe;
  core_http *s = cls;
  /* The connection waits for its next request: idle, with the bytes
   * received so far as the mark its next request's first byte passes. */
  guard *g = guard_of(conn);
  if (g) {
    uint64_t rx = 0;
    int known = rx_bytes(g->fd, &rx);
    pthread_mutex_lock(&g->mu);
    g->phase = G_IDLE;
    g->base_rx = rx;
    if (!known) /* idle counts as reading (see guard_scan) */
      g->since = core_now_ms();
    pthread_mutex_unlock(&g->mu);
  }
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
  req_free(s, r);
  *con_cls = NULL;
}

static void on_connection(void *cls, struct MHD_Connection *conn,
                          void **socket_context,
                          enum MHD_ConnectionNotificationCode toe)
{
  core_http *s = cls;
  if (toe == MHD_CONNECTION_NOTIFY_STARTED) {
    __atomic_add_fetch(&s->connections, 1, __ATOMIC_RELAXED);
    guard *g = calloc(1, sizeof *g);
    const union MHD_ConnectionInfo *fd =
        MHD_get_connection_info(conn, MHD_CONNECTION_INFO_CONNECTION_FD);
    const union MHD_ConnectionInfo *ad =
        MHD_get_connection_info(conn, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
    if (!g || !fd) { /* not watched: no deadline, no cap */
      free(g);
      *socket_context = NULL;
      return;
    }
    char name[INET6_ADDRSTRLEN];
    g->fd = fd->connect_fd;
    g->opened = core_now_ms();
    g->phase = G_IDLE;
    client_key(ad ? ad->client_addr : NULL, g->key, name);
    pthread_mutex_init(&g->mu, NULL);
    pthread_mutex_lock(&s->conn_mu);
    g->cl = client_add(s, g->key, name);
    g->over_cap = g->cl && g->cl->conns > s->per_client;
    if (g->over_cap)
      __atomic_add_fetch(&s->over_cap, 1, __ATOMIC_RELAXED);
    g->next = s->guards;
    if (s->guards)
      s->guards->prev = g;
    s->guards = g;
    pthread_mutex_unlock(&s->conn_mu);
    *socket_context = g;
    return;
  }
  __atomic_sub_fetch(&s->connections, 1, __ATOMIC_RELAXED);
  guard *g = *socket_context;
  if (!g)
    return;
  if (g->r) /* a request libmicrohttpd did not report the end of */
    req_free(s, g->r);
  if (g->over_cap)
    __atomic_sub_fetch(&s->over_cap, 1, __ATOMIC_RELAXED);
  pthread_mutex_lock(&s->conn_mu);
  if (g->prev)
    g->prev->next = g->next;
  else
    s->guards = g->next;
  if (g->next)
    g->next->prev = g->prev;
  client_drop(s, g->cl);
  pthread_mutex_unlock(&s->conn_mu);
  pthread_mutex_destroy(&g->mu);
  free(g);
  *socket_context = NULL;
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
  pthread_mutex_init(&s->conn_mu, NULL);
  /* One client never takes every connection: room is kept for others (a
   * health check) whatever max_connections_per_client says. */
  int reserve = cfg->max_connections / 8 > 2 ? cfg->max_connections / 8 : 2;
  s->per_client = cfg->max_connections_per_client;
  if (s->per_client > cfg->max_connections - reserve)
    s->per_client = cfg->max_connections - reserve;
  if (s->per_client < 1)
    s->per_client = 1;
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
   * size and clears it per request: room for a request line and headers
   * of up to twice the limit (as screen counts them), so that it is our
   * JSON 414/431 that answers them, not libmicrohttpd's HTML. The pool is
   * mapped, not touched: an idle connection costs a few pages. */
  size_t mem = POOL_HEADER_MULT * cfg->max_header_bytes + 64 * 1024;
  /* MHD splits its connection limit evenly over the pool threads, and a
   * thread at its share refuses without an answer: so give each thread
   * twice its share of what we answer (max_connections, then 32 more for
   * the 503s), capped by the open files this process may have. */
  unsigned limit = 2u * ((unsigned)cfg->max_connections + 32u);
  struct rlimit rl;
  if (!getrlimit(RLIMIT_NOFILE, &rl)) {
    rlim_t want = (rlim_t)limit + 256;
    if (rl.rlim_cur < want && rl.rlim_cur < rl.rlim_max) {
      rl.rlim_cur = want < rl.rlim_max ? want : rl.rlim_max;
      setrlimit(RLIMIT_NOFILE, &rl);
      getrlimit(RLIMIT_NOFILE, &rl);
    }
    if (rl.rlim_cur < want)
      limit = rl.rlim_cur > 512 ? (unsigned)(rl.rlim_cur - 256)
                                : (unsigned)rl.rlim_cur / 2;
  }
  s->d = MHD_start_daemon(
      flags, (uint16_t)cfg->port, NULL, NULL, on_request, s,
      MHD_OPTION_SOCK_ADDR, (struct sockaddr *)&ss, MHD_OPTION_THREAD_POOL_SIZE,
      threads, MHD_OPTION_CONNECTION_LIMIT, limit,
      MHD_OPTION_CONNECTION_TIMEOUT, 60u, MHD_OPTION_CONNECTION_MEMORY_LIMIT,
      mem, MHD_OPTION_URI_LOG_CALLBACK, on_uri, s, MHD_OPTION_NOTIFY_COMPLETED,
      on_completed, s, MHD_OPTION_NOTIFY_CONNECTION, on_connection, s,
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
  /* MHD_stop_daemon closed every connection, which freed its guard */
  for (size_t i = 0; i < CLIENT_BUCKETS; i++)
    while (s->clients[i]) {
      client *c = s->clients[i];
      s->clients[i] = c->next;
      free(c);
    }
  pthread_mutex_destroy(&s->conn_mu);
  free(s->pfd);
  free(s->counts);
  free(s->seconds);
  free(s);
}
