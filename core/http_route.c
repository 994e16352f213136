/*
 * http_route.c — the route table, routing a path to its handler, the
 * checks made from a request's headers alone (stopping, connections, body
 * size, media type, town, token, plugin, parameters: http_admit), and the
 * answers every handler sends (JSON, errors, counted for /metrics).
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "http_int.h"
#include "tokens.h"

const route http_routes[] = {
    {"GET", "/healthz", SCOPE_PUBLIC, ROUTE_STOPPING, http_h_healthz},
    {"GET", "/metrics", SCOPE_PUBLIC, 0, http_h_metrics},
    {"GET", "/v1", SCOPE_PUBLIC, 0, http_h_root},
    {"GET", "/v1/openapi.json", SCOPE_PUBLIC, 0, http_h_openapi},
    {"GET", "/v1/plugins", SCOPE_PUBLIC, 0, http_h_plugins},
    {"GET", "/v1/plugins/{plugin}", SCOPE_PUBLIC, 0, http_h_plugin},
    {"GET", "/v1/towns", SCOPE_PUBLIC, 0, http_h_towns},
    {"GET", "/v1/towns/{town}", SCOPE_READ, 0, http_h_town},
    {"GET", "/v1/towns/{town}/entities", SCOPE_READ, ROUTE_ARGS | ROUTE_TXN,
     http_h_entities},
    {"GET", "/v1/towns/{town}/entities/{plugin}/{type}/{id}", SCOPE_READ,
     ROUTE_TXN, http_h_entity},
    {"GET", "/v1/towns/{town}/entities/{plugin}/{type}/{id}/history/{attr}",
     SCOPE_READ, ROUTE_ARGS | ROUTE_TXN, http_h_history},
    {"GET", "/v1/towns/{town}/plugins/{plugin}", SCOPE_READ, ROUTE_ANY_STATE,
     http_h_town_plugin},
    {"POST", "/v1/towns/{town}/plugins/{plugin}/ingest", SCOPE_WRITE,
     ROUTE_INGEST, http_h_ingest},
    {"POST", "/v1/towns/{town}/plugins/{plugin}/query", SCOPE_READ, 0,
     http_h_query},
    {"POST", "/v1/towns/{town}/plugins/{plugin}/scenario", SCOPE_READ, 0,
     http_h_scenario},
    {"GET", "/v1/towns/{town}/plugins/{plugin}/query/{op}", SCOPE_READ,
     ROUTE_ARGS, http_h_query_op},
    {"POST", "/v1/towns/{town}/plugins/{plugin}/query/{op}", SCOPE_READ, 0,
     http_h_query_op},
    {"POST", "/v1/towns/{town}/plugins/{plugin}/scenario/{op}", SCOPE_READ, 0,
     http_h_scenario_op},
    {"GET", "/v1/towns/{town}/events", SCOPE_READ, ROUTE_ARGS | ROUTE_TXN,
     http_h_events},
    {"GET", "/v1/towns/{town}/events/stream", SCOPE_READ, ROUTE_ARGS,
     http_h_stream},
    {"GET", "/v1/towns/{town}/rules", SCOPE_ADMIN, 0, http_h_rules},
    {"GET", "/v1/towns/{town}/tokens", SCOPE_ADMIN, ROUTE_TXN, http_h_tokens},
};
const size_t HTTP_N_ROUTES = sizeof http_routes / sizeof http_routes[0];

const int http_counted_status[HTTP_N_STATUS] = {200, 204, 400, 401, 403, 404,
                                                405, 408, 413, 414, 415, 422,
                                                429, 431, 500, 501, 503, 504};

const char *const http_no_args[] = {NULL};

const char *http_scope_name(unsigned s)
{
  return s == SCOPE_ADMIN   ? "admin"
         : s == SCOPE_WRITE ? "write"
         : s == SCOPE_READ  ? "read"
                            : "public";
}

json_t *core_http_routes(void)
{
  json_t *a = json_array();
  for (size_t i = 0; i < HTTP_N_ROUTES; i++)
    json_array_append_new(a, json_pack("{s:s,s:s,s:s}", "method",
                                       http_routes[i].method, "path",
                                       http_routes[i].path, "scope",
                                       http_scope_name(http_routes[i].scope)));
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
const char *http_param(const req *r, const char *name)
{
  size_t n = strlen(name);
  for (size_t i = 0; i < r->np; i++)
    if (!strncmp(r->pname[i], name, n) && r->pname[i][n] == '}')
      return r->pval[i];
  return NULL;
}

/* ---- responses ----------------------------------------------------------- */

size_t http_status_slot(int status)
{
  for (size_t i = 0; i < HTTP_N_STATUS; i++)
    if (http_counted_status[i] == status)
      return i;
  /* an uncounted status: the first counted one of its class */
  for (size_t i = 0; i < HTTP_N_STATUS; i++)
    if (http_counted_status[i] / 100 == status / 100)
      return i;
  return HTTP_N_STATUS - 1;
}

void http_count(req *r, int status)
{
  core_http *s = r->srv;
  size_t ri = (size_t)r->route_idx;
  __atomic_add_fetch(&s->counts[ri * HTTP_N_STATUS + http_status_slot(status)],
                     1, __ATOMIC_RELAXED);
}

void http_common_headers(struct MHD_Response *resp)
{
  MHD_add_response_header(resp, "Access-Control-Allow-Origin", "*");
  MHD_add_response_header(resp, "Cache-Control", "no-store");
}

enum MHD_Result http_send_text(req *r, int status, const char *type, char *text,
                               size_t len)
{
  if (http_guard_answering(r)) {
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
  http_common_headers(resp);
  if (status == 401)
    MHD_add_response_header(resp, "WWW-Authenticate",
                            "Bearer realm=\"twinhost\"");
  if (status == 503 || status == 429)
    MHD_add_response_header(resp, "Retry-After", "5");
  if (status == 405 && r->route_idx < (int)HTTP_N_ROUTES) {
    /* every method the path has */
    char allow[64] = "";
    const char *path = http_routes[r->route_idx].path;
    for (size_t i = 0; i < HTTP_N_ROUTES; i++)
      if (!strcmp(http_routes[i].path, path) &&
          !strstr(allow, http_routes[i].method))
        snprintf(allow + strlen(allow), sizeof allow - strlen(allow), "%s%s",
                 allow[0] ? ", " : "", http_routes[i].method);
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
    http_count(r, status);
  }
  return rc;
}

enum MHD_Result http_send_json(req *r, int status, json_t *body)
{
  char *text = json_dumps(body, JSON_COMPACT | JSON_ENCODE_ANY |
                                    JSON_REAL_PRECISION(15));
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
  return http_send_text(r, status, "application/json", text, len);
}

enum MHD_Result http_send_error(req *r, const api_error *e)
{
  return http_send_json(r, e->http, api_error_json(e));
}

enum MHD_Result http_fail(req *r, int http, const char *code, const char *field,
                          const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));
enum MHD_Result http_fail(req *r, int http, const char *code, const char *field,
                          const char *fmt, ...)
{
  api_error e;
  char msg[sizeof e.message];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(msg, sizeof msg, fmt, ap);
  va_end(ap);
  api_fail(&e, http, code, field, "%s", msg);
  return http_send_error(r, &e);
}

/* A host error (a twin status and its core_err) as an API error, by the
 * one table of api_status_http (docs/api.md). */
enum MHD_Result http_fail_status(req *r, int st, const core_err *err)
{
  api_error e;
  api_fail_status(&e, st, err);
  return http_send_error(r, &e);
}

void http_count_unrouted(core_http *s, int status)
{
  __atomic_add_fetch(
      &s->counts[HTTP_N_ROUTES * HTTP_N_STATUS + http_status_slot(status)], 1,
      __ATOMIC_RELAXED);
}

/* Find the route; 0 when found (r->rt set), else answers 404/405. */
int http_route_request(req *r, const char *url, enum MHD_Result *rc)
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
  for (size_t i = 0; !too_deep && i < HTTP_N_ROUTES; i++) {
    if (!match_template(http_routes[i].path, seg, nseg, r))
      continue;
    if (path_known < 0)
      path_known = (int)i;
    if (!strcmp(http_routes[i].method, m)) {
      r->rt = &http_routes[i];
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
      http_common_headers(resp);
      MHD_add_response_header(resp, "Access-Control-Allow-Methods",
                              "GET, POST, OPTIONS");
      MHD_add_response_header(resp, "Access-Control-Allow-Headers",
                              "Authorization, Content-Type, Last-Event-ID");
      MHD_add_response_header(resp, "Access-Control-Max-Age", "600");
      *rc = http_guard_answering(r) ? MHD_NO
                                    : MHD_queue_response(r->conn, 204, resp);
      MHD_destroy_response(resp);
      r->responded = 1;
      http_count(r, 204);
      return -1;
    }
    *rc = http_fail(r, 405, "method_not_allowed", NULL,
                    "%s is not allowed on %s; see the Allow header", r->method,
                    http_routes[path_known].path);
    return -1;
  }
  r->route_idx = (int)HTTP_N_ROUTES;
  *rc = http_fail(r, 404, "unknown_route", NULL,
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
  const char *auth =
      MHD_lookup_connection_value(r->conn, MHD_HEADER_KIND, "Authorization");
  if (!auth) {
    if (need == SCOPE_READ && r->town->anonymous_read)
      return 0;
    *rc = http_fail(r, 401, "unauthorized", "Authorization",
                    "%s %s needs a token of %s with scope %s: send "
                    "'Authorization: Bearer <token>'. The town's admin creates "
                    "one with `twinhost token create --town %s --scope %s`",
                    r->rt->method, r->rt->path, town, http_scope_name(need),
                    town, http_scope_name(need));
    return -1;
  }
  if (strncasecmp(auth, "Bearer ", 7)) {
    *rc = http_fail(r, 401, "unauthorized", "Authorization",
                    "the Authorization header must be 'Bearer <token>'");
    return -1;
  }
  const char *tok = auth + 7;
  while (*tok == ' ')
    tok++;
  MDB_txn *txn;
  core_err err;
  if (core_store_begin_read(r->srv->h->store, &txn, &err)) {
    *rc = http_fail(r, 503, "unavailable", NULL, "%s", err.msg);
    return -1;
  }
  core_token_info info;
  int st = core_token_check(r->srv->h->store, txn, tok, strlen(tok), &info);
  if (!st && r->may_keep_txn && (r->rt->flags & ROUTE_TXN))
    r->txn = txn;
  else
    core_store_end_read(r->srv->h->store, txn);
  if (st == TWIN_ERR_NOT_FOUND) {
    *rc = http_fail(r, 401, "unauthorized", "Authorization",
                    "the token is not valid: it is mistyped, revoked or from "
                    "another host; ask the town's admin for a new one");
    return -1;
  }
  if (st) {
    /* a damaged token record or a crypto failure is the host's fault */
    *rc = http_fail(r, 500, "internal", NULL,
                    "cannot check the token: %s; see the host log, and revoke "
                    "and recreate the token if this persists",
                    core_status_message(st));
    return -1;
  }
  if (strcmp(info.town, town)) {
    *rc = http_fail(r, 403, "forbidden", "town",
                    "this token belongs to %s; it cannot be used for %s",
                    info.town, town);
    return -1;
  }
  if (need && !core_token_allows(info.scopes, need)) {
    char have[64];
    core_scopes_format(info.scopes, have, sizeof have);
    *rc = http_fail(r, 403, "forbidden", "scope",
                    "this token has scope %s; %s %s needs %s", have,
                    r->rt->method, r->rt->path, http_scope_name(need));
    return -1;
  }
  return 0;
}

/* Everything decided from the headers alone; 0 to go on. */
int http_admit(req *r, enum MHD_Result *rc)
{
  core_http *s = r->srv;
  if (__atomic_load_n(&s->stopping, __ATOMIC_ACQUIRE) &&
      !(r->rt->flags & ROUTE_STOPPING)) {
    *rc = http_fail(r, 503, "shutting_down", NULL,
                    "the host is stopping; try again in a moment");
    return -1;
  }
  /* Those over their client's cap are on their way out (429) and take no
   * place: a client opening and dropping connections over its cap does
   * not push others over the limit. */
  if (__atomic_load_n(&s->connections, __ATOMIC_RELAXED) -
          __atomic_load_n(&s->over_cap, __ATOMIC_RELAXED) >
      s->cfg.max_connections) {
    *rc = http_fail(r, 503, "too_many_connections", NULL,
                    "more than %d connections are open; try again shortly, or "
                    "reuse one connection (keep-alive)",
                    s->cfg.max_connections);
    return -1;
  }
  const char *cl =
      MHD_lookup_connection_value(r->conn, MHD_HEADER_KIND, "Content-Length");
  if (cl && strtoull(cl, NULL, 10) > s->cfg.max_body_bytes) {
    *rc = http_fail(r, 413, "body_too_large", "body",
                    "the body is %s bytes; the limit is %zu (split the batch, "
                    "or raise http.max_body_bytes in the host config)",
                    cl, s->cfg.max_body_bytes);
    return -1;
  }
  const char *ct =
      MHD_lookup_connection_value(r->conn, MHD_HEADER_KIND, "Content-Type");
  if (ct && !strncasecmp(ct, "multipart/", 10)) {
    *rc = http_fail(r, 415, "unsupported_media_type", "Content-Type",
                    "send JSON (application/json) or JSON Lines "
                    "(application/x-ndjson), not %s",
                    ct);
    return -1;
  }
  /* Path parameters: the town first, then the plugin. */
  const char *town = http_param(r, "town");
  if (town) {
    core_err err;
    r->town = core_config_town_or_err(s->h->cfg, town, &err);
    if (!r->town) {
      *rc = http_fail(r, 404, "unknown_town", "town", "%s", err.msg);
      return -1;
    }
    if (authorize(r, rc))
      return -1;
    const char *plugin = http_param(r, "plugin");
    if (plugin && (r->rt->flags & ROUTE_ANY_STATE)) {
      /* its health is worth showing also when it does not run */
      r->ci = core_host_instance(s->h, town, plugin);
      if (!r->ci) {
        core_err err;
        core_host_find(s->h, town, plugin, &r->ci, &err);
        *rc = http_fail(r, 404, "unknown_plugin", "plugin", "%s", err.msg);
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
        *rc =
            st == TWIN_ERR_UNAVAILABLE || enabled
                ? http_fail(r, 503, "unavailable", "plugin", "%s", err.msg)
                : http_fail(r, 404, "unknown_plugin", "plugin", "%s", err.msg);
        return -1;
      }
      /* An ingest body of a type the plugin does not take is refused
       * before it is read. */
      char type[CORE_MEDIA_MAX];
      if ((r->rt->flags & ROUTE_INGEST) &&
          http_ingest_form(r, type, sizeof type) == CORE_BATCH_WHOLE &&
          type[0] && !core_plugin_takes(r->ci->plugin, type)) {
        const char *more = r->ci->plugin->desc.ingest_types;
        *rc = http_fail(r, 415, "unsupported_media_type", "Content-Type",
                        "plugin '%s' takes JSON (application/json), JSON Lines "
                        "(application/x-ndjson)%s%s, not %s",
                        plugin, more ? " and " : "", more ? more : "", type);
        return -1;
      }
    }
  }
  for (size_t i = 0; i < r->np; i++)
    if (!core_valid_name(r->pval[i])) {
      *rc = http_fail(r, 400, "bad_parameter", NULL,
                      "a path part is empty, too long or has control "
                      "characters");
      return -1;
    }
  /* Routes without query parameters refuse any, like the others refuse
   * unknown ones: a misspelt ?limt should not pass silently.
   * Checked last, after town, token and path (docs/api.md). */
  api_error ae;
  if (!(r->rt->flags & ROUTE_ARGS) &&
      api_args_check(&r->args, http_no_args, &ae)) {
    *rc = http_send_error(r, &ae);
    return -1;
  }
  return 0;
}
