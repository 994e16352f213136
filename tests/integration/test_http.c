/*
 * test_http.c — the HTTP API of a real `twinhost serve`: real LMDB in a
 * temporary folder, the real sensors and parking plugins of the build, a
 * town rule in Lua, driven with libcurl over loopback.
 *
 * Two towns: alpha (tokens only) and beta (anonymous read), both with
 * sensors; beta also has parking with one static lot. alpha has a rule that
 * emits a warning for every level_cm reading above 500. The server runs
 * with small limits (4 KiB bodies, 16 KiB headers, 16 connections) so that
 * every limit can be hit. Covers every route answering 2xx, the error codes
 * and their messages, the access matrix of tokens and anonymous requests,
 * the event stream, batch ingest in its three forms, and SIGTERM during
 * ingest losing no acknowledged document.
 *
 * JSON in this file is written with single quotes and turned into JSON by
 * jq().
 */
#include "testutil.h"

#include <arpa/inet.h>
#include <curl/curl.h>
#include <errno.h>
#include <jansson.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define MAX_BODY 4096
#define MAX_HEADER 16384
/* An aborted event stream frees its slot within a fraction of a second;
 * the limit still leaves room for those of earlier tests. */
#define MAX_CONN 16
#define WAIT_MS 20000

enum { S_READ = 1, S_WRITE = 2, S_ADMIN = 4 };

typedef struct fx {
  char *dir;
  char *config;
  char *log;
  tu_server srv;
  /* tokens: alpha read, write, admin; beta read, write */
  char a_read[96], a_write[96], a_admin[96], b_read[96], b_write[96];
} fx;

/* ---- small helpers ------------------------------------------------------- */

/* s with every ' turned into ", in a new string. */
static char *jq(const char *s)
{
  char *out = tu_fmt("%s", s);
  for (char *p = out; *p; p++)
    if (*p == '\'')
      *p = '"';
  return out;
}

static void assert_contains(const char *text, const char *want)
{
  if (!text || !strstr(text, want))
    fail_msg("\"%s\"\n  lacks \"%s\"", text ? text : "(null)", want);
}

typedef struct buf {
  char *p;
  size_t len, cap;
} buf;

static void buf_add(buf *b, const char *data, size_t n)
{
  if (b->len + n + 1 > b->cap) {
    size_t cap = b->cap ? b->cap : 4096;
    while (cap < b->len + n + 1)
      cap *= 2;
    char *p = realloc(b->p, cap);
    if (!p)
      fail_msg("out of memory");
    b->p = p;
    b->cap = cap;
  }
  memcpy(b->p + b->len, data, n);
  b->len += n;
  b->p[b->len] = 0;
}

/* twinhost --config config args... (NULL-terminated). */
static tu_run cli(const char *config, ...)
{
  const char *argv[32] = {"--config", config};
  size_t n = 2;
  va_list ap;
  va_start(ap, config);
  for (const char *a = va_arg(ap, const char *); a && n < 31;
       a = va_arg(ap, const char *))
    argv[n++] = a;
  va_end(ap);
  argv[n] = NULL;
  return tu_twinhost_argv(NULL, argv);
}

/* `twinhost token create`; the token into tok, its id into id (may be
 * NULL). */
static void token_create(const char *config, const char *town,
                         const char *scope, const char *label, char tok[96],
                         char id[32])
{
  tu_run r = cli(config, "token", "create", "--town", town, "--scope", scope,
                 "--label", label, NULL);
  if (r.exit_code != 0)
    fail_msg("token create exited %d: %s", r.exit_code, r.err);
  json_t *j = json_loads(r.out, 0, NULL);
  const char *t = json_string_value(json_object_get(j, "token"));
  if (!t || strncmp(t, "twh_", 4))
    fail_msg("token create printed no token: %s", r.out);
  snprintf(tok, 96, "%s", t);
  if (id)
    snprintf(id, 32, "%s", json_string_value(json_object_get(j, "id")));
  json_decref(j);
  tu_run_free(&r);
}

/* ---- HTTP client --------------------------------------------------------- */

typedef struct rq {
  const char *method;
  const char *path;
  const char *token;        /* NULL: no Authorization header */
  const char *body;         /* NULL: none */
  const char *content_type; /* default application/json with a body */
  const char *header;       /* one more header line, or NULL */
  int chunked;              /* send the body with Transfer-Encoding: chunked */
  const char *auth;         /* a whole Authorization value (instead of token) */
} rq;

typedef struct resp {
  long status;
  int curl_rc;
  buf body, head;
  json_t *json; /* the body when it is JSON */
  CURL *c;      /* during the transfer */
} resp;

static size_t on_body(char *data, size_t size, size_t n, void *ud)
{
  resp *r = ud;
  buf_add(&r->body, data, size * n);
  /* An event stream never ends: its first bytes are all a test needs. */
  char *ct = NULL;
  curl_easy_getinfo(r->c, CURLINFO_CONTENT_TYPE, &ct);
  if (ct && !strncmp(ct, "text/event-stream", 17))
    return 0;
  return size * n;
}

static size_t on_head(char *data, size_t size, size_t n, void *ud)
{
  buf_add(&((resp *)ud)->head, data, size * n);
  return size * n;
}

typedef struct upload {
  const char *p;
  size_t left;
} upload;

/* The body in pieces of at most 1000 bytes: several chunks. */
static size_t on_read(char *out, size_t size, size_t n, void *ud)
{
  upload *u = ud;
  size_t k = size * n;
  if (k > 1000)
    k = 1000;
  if (k > u->left)
    k = u->left;
  memcpy(out, u->p, k);
  u->p += k;
  u->left -= k;
  return k;
}

static resp call_port(int port, rq q)
{
  resp r = {0};
  CURL *c = curl_easy_init();
  assert_non_null(c);
  r.c = c;
  char *url = tu_fmt("http://127.0.0.1:%d%s", port, q.path);
  struct curl_slist *h = NULL;
  char *auth = NULL;
  if (q.token || q.auth) {
    auth = q.auth ? tu_fmt("Authorization: %s", q.auth)
                  : tu_fmt("Authorization: Bearer %s", q.token);
    h = curl_slist_append(h, auth);
  }
  h = curl_slist_append(h, "Expect:");
  char *ct = NULL;
  if (q.body) {
    ct = tu_fmt("Content-Type: %s",
                q.content_type ? q.content_type : "application/json");
    h = curl_slist_append(h, ct);
  }
  if (q.header)
    h = curl_slist_append(h, q.header);
  upload up = {q.body, q.body ? strlen(q.body) : 0};
  curl_easy_setopt(c, CURLOPT_URL, url);
  curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt(c, CURLOPT_TIMEOUT, 60L);
  curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_body);
  curl_easy_setopt(c, CURLOPT_WRITEDATA, &r);
  curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, on_head);
  curl_easy_setopt(c, CURLOPT_HEADERDATA, &r);
  if (q.chunked) {
    h = curl_slist_append(h, "Transfer-Encoding: chunked");
    curl_easy_setopt(c, CURLOPT_POST, 1L);
    curl_easy_setopt(c, CURLOPT_READFUNCTION, on_read);
    curl_easy_setopt(c, CURLOPT_READDATA, &up);
  } else if (q.body) {
    curl_easy_setopt(c, CURLOPT_POSTFIELDS, q.body);
    curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE, (long)strlen(q.body));
  }
  if (strcmp(q.method, q.body ? "POST" : "GET"))
    curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, q.method);
  curl_easy_setopt(c, CURLOPT_HTTPHEADER, h);
  r.curl_rc = (int)curl_easy_perform(c);
  curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &r.status);
  if (r.curl_rc == CURLE_WRITE_ERROR && r.status == 200)
    r.curl_rc = 0; /* the stream we cut */
  if (r.body.len && r.body.p[0] == '{')
    r.json = json_loads(r.body.p, 0, NULL);
  curl_easy_cleanup(c);
  r.c = NULL;
  curl_slist_free_all(h);
  free(url);
  free(auth);
  free(ct);
  return r;
}

static resp call(fx *f, rq q)
{
  return call_port(f->srv.port, q);
}

static void resp_free(resp *r)
{
  free(r->body.p);
  free(r->head.p);
  json_decref(r->json);
  memset(r, 0, sizeof *r);
}

/* The value of response header name (a copy, caller frees), or NULL. */
static char *header_of(const resp *r, const char *name)
{
  size_t n = strlen(name);
  for (const char *s = r->head.p; s && *s;) {
    const char *nl = strstr(s, "\r\n");
    size_t len = nl ? (size_t)(nl - s) : strlen(s);
    if (len > n && !strncasecmp(s, name, n) && s[n] == ':') {
      const char *v = s + n + 1;
      while (*v == ' ')
        v++;
      return tu_fmt("%.*s", (int)(len - (size_t)(v - s)), v);
    }
    s = nl ? nl + 2 : NULL;
  }
  return NULL;
}

static void expect_status(const resp *r, long status, const char *what)
{
  if (r->status != status)
    fail_msg("%s: status %ld (curl %d), want %ld; body: %s", what, r->status,
             r->curl_rc, status, r->body.p ? r->body.p : "");
}

/* An error reply: status, {"error":{"code","message"[,"field"]}} with the
 * code, the field (NULL: not checked) and a message holding msg_part (NULL:
 * any non-empty message). */
static void expect_error(const resp *r, long status, const char *code,
                         const char *field, const char *msg_part,
                         const char *what)
{
  expect_status(r, status, what);
  json_t *e = json_object_get(r->json, "error");
  const char *c = json_string_value(json_object_get(e, "code"));
  const char *m = json_string_value(json_object_get(e, "message"));
  const char *fl = json_string_value(json_object_get(e, "field"));
  if (!c || strcmp(c, code))
    fail_msg("%s: error code %s, want %s; body: %s", what, c ? c : "none", code,
             r->body.p);
  if (!m || !*m)
    fail_msg("%s: the error has no message: %s", what, r->body.p);
  if (field && (!fl || strcmp(fl, field)))
    fail_msg("%s: error field %s, want %s; body: %s", what, fl ? fl : "none",
             field, r->body.p);
  if (msg_part)
    assert_contains(m, msg_part);
  char *type = header_of(r, "Content-Type");
  assert_non_null(type);
  assert_contains(type, "application/json");
  free(type);
}

static resp get(fx *f, const char *path, const char *token)
{
  return call(f, (rq){"GET", path, token, NULL, NULL, NULL, 0, NULL});
}

static resp post(fx *f, const char *path, const char *token, const char *body)
{
  return call(f, (rq){"POST", path, token, body, NULL, NULL, 0, NULL});
}

/* GET that must answer 200 with JSON; the parsed body (new reference). */
static json_t *get_json(fx *f, const char *path, const char *token)
{
  resp r = get(f, path, token);
  expect_status(&r, 200, path);
  if (!r.json)
    fail_msg("GET %s: not a JSON object: %s", path, r.body.p);
  json_t *j = json_incref(r.json);
  resp_free(&r);
  return j;
}

/* POST documents (single-quoted JSON) to town's sensors ingest. */
static resp ingest(fx *f, const char *town, const char *token,
                   const char *body_sq, const char *content_type)
{
  char *path = tu_fmt("/v1/towns/%s/plugins/sensors/ingest", town);
  char *body = jq(body_sq);
  resp r =
      call(f, (rq){"POST", path, token, body, content_type, NULL, 0, NULL});
  free(path);
  free(body);
  return r;
}

/* An ingest that must accept all n documents. */
static void ingest_ok(fx *f, const char *town, const char *token,
                      const char *body_sq, int n)
{
  resp r = ingest(f, town, token, body_sq, NULL);
  expect_status(&r, 200, "ingest");
  if (json_integer_value(json_object_get(r.json, "accepted")) != n ||
      json_integer_value(json_object_get(r.json, "rejected")) != 0)
    fail_msg("ingest: want %d accepted: %s", n, r.body.p);
  resp_free(&r);
}

/* alpha's Gauge g1 as GET returns it, and its level_cm history. */
static json_t *g1_snapshot(fx *f)
{
  json_t *ent =
      get_json(f, "/v1/towns/alpha/entities/sensors/Gauge/g1", f->a_read);
  json_t *hist =
      get_json(f, "/v1/towns/alpha/entities/sensors/Gauge/g1/history/level_cm",
               f->a_read);
  return json_pack("{s:o,s:o}", "entity", ent, "history", hist);
}

static void assert_no_entity(fx *f, const char *town, const char *id)
{
  char *path = tu_fmt("/v1/towns/%s/entities/sensors/Gauge/%s", town, id);
  resp r = get(f, path, !strcmp(town, "alpha") ? f->a_read : f->b_read);
  expect_error(&r, 404, "unknown_entity", NULL, id, path);
  resp_free(&r);
  free(path);
}

/* ---- fixture ------------------------------------------------------------- */

static const char rule_text[] =
    "-- a warning for every level reading above 500\n"
    "twin.on_observation({plugin = 'sensors', attr = 'level_cm',\n"
    "                     name = 'high level'}, function(o)\n"
    "  if type(o.value) == 'number' and o.value > 500 then\n"
    "    twin.emit{level = 'warning', type = o.type, id = o.id,\n"
    "              message = o.id .. ' level ' .. tostring(o.value) ..\n"
    "                        ' above 500'}\n"
    "  end\n"
    "end)\n";

/* The host config in dir: alpha and beta as described at the top, with the
 * given "http" object. */
static char *write_config(const char *dir, const char *http)
{
  char *text = tu_fmt(
      "{\"data_dir\": \"data\", \"plugin_path\": [\"%s\"],\n"
      " \"http\": %s,\n"
      " \"towns\": [\n"
      "  {\"id\": \"alpha\", \"name\": \"Alpha\", \"timezone\": "
      "\"Europe/Berlin\", \"scripts\": \"alpha-rules\",\n"
      "   \"plugins\": {\"sensors\": {\"config\": {}}},\n"
      "   \"api\": {\"anonymous_read\": false}},\n"
      "  {\"id\": \"beta\", \"name\": \"Beta\", \"timezone\": "
      "\"Europe/Berlin\", \"scripts\": \"beta-rules\",\n"
      "   \"location\": {\"lat\": 48.8, \"lon\": 12.9},\n"
      "   \"plugins\": {\"sensors\": {\"config\": {}},\n"
      "               \"parking\": {\"config\": {\"lots\": [{\"id\": "
      "\"p1\", \"name\": \"P1\", \"lat\": 48.8, \"lon\": 12.9, \"total\": "
      "100}]}}},\n"
      "   \"api\": {\"anonymous_read\": true}}]}\n",
      tu_env("TWIN_PLUGIN_BUILD_DIR"), http);
  char *path = tu_write_file(dir, "host.json", text);
  free(text);
  char *rules = tu_fmt("%s/alpha-rules", dir);
  char *beta = tu_fmt("%s/beta-rules", dir);
  assert_int_equal(mkdir(rules, 0755), 0);
  assert_int_equal(mkdir(beta, 0755), 0);
  free(tu_write_file(rules, "10-high.lua", rule_text));
  free(rules);
  free(beta);
  return path;
}

/* Gauges g1..g7 along a meridian, 111 m apart, with flow 10..70; g1 also
 * gets four level_cm readings (100, 300 in the 09:00 hour, 200, 400 in the
 * 10:00 hour). */
static void seed(fx *f, const char *town, const char *token)
{
  buf b = {0};
  buf_add(&b, "[", 1);
  for (int i = 1; i <= 7; i++) {
    char *doc =
        tu_fmt("%s{'entity':'g%d','type':'Gauge','time':'2024-05-01T08:00:00Z',"
               "'values':{'flow':%d},'name':'Gauge %d',"
               "'location':{'lat':%.3f,'lon':12.96}}",
               i > 1 ? "," : "", i, i * 10, i, 48.830 + 0.001 * (i - 1));
    buf_add(&b, doc, strlen(doc));
    free(doc);
  }
  buf_add(&b, "]", 1);
  ingest_ok(f, town, token, b.p, 7);
  free(b.p);
  ingest_ok(f, town, token,
            "{'documents':["
            "{'entity':'g1','type':'Gauge','attr':'level_cm',"
            "'time':'2024-05-01T09:00:00Z','value':100},"
            "{'entity':'g1','type':'Gauge','attr':'level_cm',"
            "'time':'2024-05-01T09:30:00Z','value':300},"
            "{'entity':'g1','type':'Gauge','attr':'level_cm',"
            "'time':'2024-05-01T10:00:00Z','value':200},"
            "{'entity':'g1','type':'Gauge','attr':'level_cm',"
            "'time':'2024-05-01T10:45:00Z','value':400}]}",
            4);
}

static int group_setup(void **state)
{
  curl_global_init(CURL_GLOBAL_ALL);
  signal(SIGPIPE, SIG_IGN);
  fx *f = calloc(1, sizeof *f);
  f->dir = tu_tempdir();
  f->srv.pid = -1;
  char *http = tu_fmt("{\"max_body_bytes\": %d, \"max_header_bytes\": %d, "
                      "\"max_connections\": %d, \"threads\": 2}",
                      MAX_BODY, MAX_HEADER, MAX_CONN);
  f->config = write_config(f->dir, http);
  free(http);
  f->log = tu_fmt("%s/serve.log", f->dir);
  token_create(f->config, "alpha", "read", "alpha reader", f->a_read, NULL);
  token_create(f->config, "alpha", "write", "alpha writer", f->a_write, NULL);
  token_create(f->config, "alpha", "admin", "alpha admin", f->a_admin, NULL);
  token_create(f->config, "beta", "read", "beta reader", f->b_read, NULL);
  token_create(f->config, "beta", "write", "beta writer", f->b_write, NULL);
  tu_server_start(&f->srv, f->config, f->log);
  seed(f, "alpha", f->a_write);
  seed(f, "beta", f->b_write);
  *state = f;
  return 0;
}

static int group_teardown(void **state)
{
  fx *f = *state;
  int rc = tu_server_stop(&f->srv, SIGTERM);
  if (rc != 0) {
    char *log = tu_read_file(f->log);
    fprintf(stderr, "serve exited %d; its log:\n%s\n", rc, log ? log : "");
    free(log);
  }
  tu_rmtree(f->dir);
  free(f->dir);
  free(f->config);
  free(f->log);
  free(f);
  curl_global_cleanup();
  return rc != 0;
}

/* ---- 1. every route answers ---------------------------------------------- */

static void public_routes_answer_200(void **state)
{
  fx *f = *state;
  json_t *j = get_json(f, "/healthz", NULL);
  assert_string_equal(json_string_value(json_object_get(j, "status")), "ok");
  assert_int_equal(json_integer_value(json_object_get(j, "towns")), 2);
  json_decref(j);

  j = get_json(f, "/v1", NULL);
  assert_string_equal(json_string_value(json_object_get(j, "name")),
                      "twinhost");
  json_t *routes = json_object_get(j, "routes");
  assert_true(json_array_size(routes) >= 18);
  json_decref(j);

  j = get_json(f, "/v1/plugins", NULL);
  json_t *list = json_object_get(j, "plugins"), *p;
  size_t i;
  int sensors = 0, parking = 0;
  json_array_foreach(list, i, p)
  {
    const char *name = json_string_value(json_object_get(p, "name"));
    sensors += name && !strcmp(name, "sensors");
    parking += name && !strcmp(name, "parking");
  }
  assert_int_equal(sensors, 1);
  assert_int_equal(parking, 1);
  assert_true(json_is_array(json_object_get(j, "refused")));
  json_decref(j);

  j = get_json(f, "/v1/plugins/sensors", NULL);
  assert_string_equal(json_string_value(json_object_get(j, "name")), "sensors");
  assert_true(json_is_object(json_object_get(j, "config_schema")));
  json_decref(j);

  j = get_json(f, "/v1/towns", NULL);
  list = json_object_get(j, "towns");
  assert_int_equal(json_array_size(list), 2);
  json_t *alpha = json_array_get(list, 0), *beta = json_array_get(list, 1);
  assert_string_equal(json_string_value(json_object_get(alpha, "id")), "alpha");
  assert_true(json_is_false(json_object_get(alpha, "anonymous_read")));
  assert_true(json_is_true(json_object_get(beta, "anonymous_read")));
  assert_int_equal(json_array_size(json_object_get(beta, "plugins")), 2);
  json_decref(j);
}

/* Every route of GET /v1, with its parameters filled in, answers 2xx to
 * the admin token of alpha. */
static void every_listed_route_answers_2xx(void **state)
{
  fx *f = *state;
  json_t *root = get_json(f, "/v1", NULL);
  json_t *routes = json_object_get(root, "routes"), *rt;
  size_t i;
  char *ingest_body = jq("[{'entity':'r1','type':'Route','attr':'x','time':"
                         "'2024-05-01T00:00:00Z','value':1}]");
  char *scenario_body =
      jq("{'readings':[{'entity':'g1','type':'Gauge','attr':'flow','time':"
         "'2024-05-01T12:00:00Z','value':5}]}");
  char *query_body = jq("{'op':'alerts'}");
  json_array_foreach(routes, i, rt)
  {
    const char *method = json_string_value(json_object_get(rt, "method"));
    const char *tpl = json_string_value(json_object_get(rt, "path"));
    assert_non_null(method);
    assert_non_null(tpl);
    buf path = {0};
    for (const char *p = tpl; *p;) {
      if (*p != '{') {
        buf_add(&path, p++, 1);
        continue;
      }
      const char *end = strchr(p, '}');
      assert_non_null(end);
      static const char *const fill[][2] = {{"{town}", "alpha"},
                                            {"{plugin}", "sensors"},
                                            {"{type}", "Gauge"},
                                            {"{id}", "g1"},
                                            {"{attr}", "level_cm"}};
      const char *v = NULL;
      for (size_t k = 0; k < 5; k++)
        if (!strncmp(p, fill[k][0], strlen(fill[k][0])))
          v = fill[k][1];
      if (!strncmp(p, "{op}", 4)) /* sensors' declared ops */
        v = strstr(tpl, "/scenario/") ? "readings" : "alerts";
      if (!v)
        fail_msg("route %s has an unknown parameter", tpl);
      buf_add(&path, v, strlen(v));
      p = end + 1;
    }
    const char *body = NULL;
    if (!strcmp(method, "POST"))
      body = strstr(tpl, "/ingest")     ? ingest_body
             : strstr(tpl, "/scenario") ? scenario_body
                                        : query_body;
    resp r =
        call(f, (rq){method, path.p, f->a_admin, body, NULL, NULL, 0, NULL});
    if (r.status < 200 || r.status > 299)
      fail_msg("%s %s: status %ld, body %s", method, path.p, r.status,
               r.body.p);
    resp_free(&r);
    free(path.p);
  }
  free(ingest_body);
  free(scenario_body);
  free(query_body);
  json_decref(root);
}

static void town_and_plugin_routes_answer(void **state)
{
  fx *f = *state;
  json_t *j = get_json(f, "/v1/towns/alpha", f->a_read);
  assert_string_equal(json_string_value(json_object_get(j, "id")), "alpha");
  assert_string_equal(json_string_value(json_object_get(j, "rules")), "loaded");
  json_t *inst = json_array_get(json_object_get(j, "instances"), 0);
  assert_string_equal(json_string_value(json_object_get(inst, "plugin")),
                      "sensors");
  assert_string_equal(json_string_value(json_object_get(inst, "state")),
                      "running");
  json_decref(j);

  j = get_json(f, "/v1/towns/alpha/plugins/sensors", f->a_read);
  assert_string_equal(json_string_value(json_object_get(j, "name")), "sensors");
  assert_true(json_is_object(json_object_get(j, "health")));
  json_t *desc = json_object_get(j, "describe");
  assert_true(json_integer_value(json_object_get(desc, "entities")) >= 7);
  json_decref(j);

  /* beta's parking lot from its config, read anonymously */
  j = get_json(f, "/v1/towns/beta/entities?plugin=parking", NULL);
  json_t *lot = json_array_get(json_object_get(j, "entities"), 0);
  assert_string_equal(json_string_value(json_object_get(lot, "id")), "p1");
  json_decref(j);

  j = get_json(f, "/v1/towns/alpha/rules", f->a_admin);
  assert_string_equal(json_string_value(json_object_get(j, "state")), "loaded");
  assert_string_equal(json_string_value(json_object_get(j, "town")), "alpha");
  json_decref(j);

  resp r = get(f, "/v1/towns/alpha/tokens", f->a_admin);
  expect_status(&r, 200, "tokens");
  json_t *toks = json_object_get(r.json, "tokens"), *t;
  size_t i;
  int labels = 0;
  json_array_foreach(toks, i, t)
  {
    const char *town = json_string_value(json_object_get(t, "town"));
    assert_string_equal(town, "alpha");
    assert_null(json_object_get(t, "hash"));
    assert_null(json_object_get(t, "token"));
    labels +=
        !strcmp(json_string_value(json_object_get(t, "label")), "alpha admin");
  }
  assert_int_equal(labels, 1);
  /* never a secret */
  assert_null(strstr(r.body.p, f->a_admin));
  assert_null(strstr(r.body.p, "twh_"));
  resp_free(&r);
}

static void entity_and_history_answer_with_stored_values(void **state)
{
  fx *f = *state;
  json_t *j =
      get_json(f, "/v1/towns/alpha/entities/sensors/Gauge/g1", f->a_read);
  assert_string_equal(json_string_value(json_object_get(j, "plugin")),
                      "sensors");
  assert_string_equal(json_string_value(json_object_get(j, "type")), "Gauge");
  assert_string_equal(json_string_value(json_object_get(j, "id")), "g1");
  json_t *attrs = json_object_get(j, "attrs");
  json_t *level = json_object_get(attrs, "level_cm");
  assert_int_equal(json_integer_value(json_object_get(level, "value")), 400);
  assert_string_equal(json_string_value(json_object_get(level, "time")),
                      "2024-05-01T10:45:00Z");
  assert_int_equal(json_integer_value(json_object_get(
                       json_object_get(attrs, "flow"), "value")),
                   10);
  json_decref(j);

  /* raw */
  j = get_json(f, "/v1/towns/alpha/entities/sensors/Gauge/g1/history/level_cm",
               f->a_read);
  json_t *pts = json_object_get(j, "points");
  assert_int_equal(json_array_size(pts), 4);
  static const int want[] = {100, 300, 200, 400};
  static const char *const times[] = {
      "2024-05-01T09:00:00Z", "2024-05-01T09:30:00Z", "2024-05-01T10:00:00Z",
      "2024-05-01T10:45:00Z"};
  for (size_t i = 0; i < 4; i++) {
    json_t *p = json_array_get(pts, i);
    assert_int_equal(json_integer_value(json_object_get(p, "value")), want[i]);
    assert_string_equal(json_string_value(json_object_get(p, "time")),
                        times[i]);
  }
  assert_true(json_is_null(json_object_get(j, "next")));
  json_decref(j);

  /* a page of two, and the next one from its "next" */
  j = get_json(
      f, "/v1/towns/alpha/entities/sensors/Gauge/g1/history/level_cm?limit=2",
      f->a_read);
  assert_int_equal(json_array_size(json_object_get(j, "points")), 2);
  assert_string_equal(json_string_value(json_object_get(j, "next")),
                      "2024-05-01T10:00:00Z");
  json_decref(j);
  j = get_json(f,
               "/v1/towns/alpha/entities/sensors/Gauge/g1/history/level_cm?"
               "from=2024-05-01T10:00:00Z&to=2024-05-01T10:45:00Z",
               f->a_read);
  assert_int_equal(json_array_size(json_object_get(j, "points")), 1);
  json_decref(j);

  /* hourly maximum */
  j = get_json(f,
               "/v1/towns/alpha/entities/sensors/Gauge/g1/history/level_cm?"
               "every=1h&agg=max",
               f->a_read);
  pts = json_object_get(j, "points");
  assert_int_equal(json_array_size(pts), 2);
  json_t *b0 = json_array_get(pts, 0), *b1 = json_array_get(pts, 1);
  assert_string_equal(json_string_value(json_object_get(b0, "time")),
                      "2024-05-01T09:00:00Z");
  assert_true(json_number_value(json_object_get(b0, "value")) == 300.0);
  assert_int_equal(json_integer_value(json_object_get(b0, "count")), 2);
  assert_string_equal(json_string_value(json_object_get(b1, "time")),
                      "2024-05-01T10:00:00Z");
  assert_true(json_number_value(json_object_get(b1, "value")) == 400.0);
  assert_int_equal(json_integer_value(json_object_get(b1, "count")), 2);
  assert_string_equal(json_string_value(json_object_get(j, "agg")), "max");
  json_decref(j);

  /* hourly average over the same */
  j = get_json(f,
               "/v1/towns/alpha/entities/sensors/Gauge/g1/history/level_cm?"
               "every=1h",
               f->a_read);
  pts = json_object_get(j, "points");
  assert_true(json_number_value(
                  json_object_get(json_array_get(pts, 0), "value")) == 200.0);
  assert_true(json_number_value(
                  json_object_get(json_array_get(pts, 1), "value")) == 300.0);
  json_decref(j);
}

/* The ids of a list reply, comma-separated. */
static char *ids_of(json_t *list)
{
  buf b = {0};
  buf_add(&b, "", 0);
  size_t i;
  json_t *e;
  json_array_foreach(list, i, e)
  {
    const char *id = json_string_value(json_object_get(e, "id"));
    if (i)
      buf_add(&b, ",", 1);
    buf_add(&b, id, strlen(id));
  }
  return b.p;
}

static void entities_filter_near_and_page(void **state)
{
  fx *f = *state;
  /* all Gauges, three at a time, following "next" */
  buf all = {0};
  buf_add(&all, "", 0);
  char *path = tu_fmt("%s", "/v1/towns/alpha/entities?plugin=sensors&"
                            "type=Gauge&limit=3");
  int pages = 0;
  for (;;) {
    json_t *j = get_json(f, path, f->a_read);
    char *ids = ids_of(json_object_get(j, "entities"));
    if (all.len)
      buf_add(&all, ",", 1);
    buf_add(&all, ids, strlen(ids));
    free(ids);
    pages++;
    free(path);
    json_t *next = json_object_get(j, "next");
    if (json_is_null(next)) {
      json_decref(j);
      break;
    }
    assert_true(json_is_string(next));
    path = tu_fmt("/v1/towns/alpha/entities?plugin=sensors&type=Gauge&"
                  "limit=3&cursor=%s",
                  json_string_value(next));
    json_decref(j);
    assert_true(pages < 10);
  }
  assert_int_equal(pages, 3);
  assert_string_equal(all.p, "g1,g2,g3,g4,g5,g6,g7");
  free(all.p);

  /* filters: flow >= 50 and flow < 70 */
  json_t *j = get_json(f,
                       "/v1/towns/alpha/entities?plugin=sensors&type=Gauge&"
                       "filter=flow%3E%3D50&filter=flow%3C70",
                       f->a_read);
  char *ids = ids_of(json_object_get(j, "entities"));
  assert_string_equal(ids, "g5,g6");
  free(ids);
  json_decref(j);
  j = get_json(f, "/v1/towns/alpha/entities?filter=name%3D%3DGauge%203",
               f->a_read);
  ids = ids_of(json_object_get(j, "entities"));
  assert_string_equal(ids, "g3");
  free(ids);
  json_decref(j);

  /* near: within 350 m of g1, nearest first, two per page */
  j = get_json(f,
               "/v1/towns/alpha/entities?near=48.83,12.96&radius_m=350&"
               "limit=2",
               f->a_read);
  json_t *list = json_object_get(j, "entities");
  ids = ids_of(list);
  assert_string_equal(ids, "g1,g2");
  free(ids);
  double d0 =
      json_number_value(json_object_get(json_array_get(list, 0), "distance_m"));
  double d1 =
      json_number_value(json_object_get(json_array_get(list, 1), "distance_m"));
  assert_true(d0 < 1.0);
  assert_true(d1 > 100.0 && d1 < 120.0);
  const char *next = json_string_value(json_object_get(j, "next"));
  assert_non_null(next);
  path = tu_fmt("/v1/towns/alpha/entities?near=48.83,12.96&radius_m=350&"
                "limit=2&cursor=%s",
                next);
  json_decref(j);
  j = get_json(f, path, f->a_read);
  free(path);
  ids = ids_of(json_object_get(j, "entities"));
  assert_string_equal(ids, "g3,g4");
  free(ids);
  assert_true(json_is_null(json_object_get(j, "next")));
  json_decref(j);
}

static void query_and_scenario_answer_and_leave_live_state_alone(void **state)
{
  fx *f = *state;
  json_t *before = g1_snapshot(f);
  char *q = jq("{'op':'entity','type':'Gauge','id':'g1'}");
  resp r = post(f, "/v1/towns/alpha/plugins/sensors/query", f->a_read, q);
  free(q);
  expect_status(&r, 200, "query");
  json_t *attrs = json_object_get(r.json, "attrs");
  assert_int_equal(json_integer_value(json_object_get(
                       json_object_get(attrs, "level_cm"), "value")),
                   400);
  resp_free(&r);

  char *sc = jq("{'readings':[{'entity':'g1','type':'Gauge','attr':"
                "'level_cm','time':'2024-05-01T11:00:00Z','value':999},"
                "{'entity':'g1','type':'Gauge','attr':'flow',"
                "'time':'2024-05-01T11:00:00Z','value':77}]}");
  r = post(f, "/v1/towns/alpha/plugins/sensors/scenario", f->a_read, sc);
  free(sc);
  expect_status(&r, 200, "scenario");
  json_t *report = json_object_get(r.json, "report");
  json_t *after = json_array_get(json_object_get(report, "entities"), 0);
  json_t *level = json_object_get(json_object_get(after, "attrs"), "level_cm");
  assert_int_equal(json_integer_value(json_object_get(level, "value")), 999);
  json_t *base = json_array_get(json_object_get(report, "baseline"), 0);
  level = json_object_get(json_object_get(base, "attrs"), "level_cm");
  assert_int_equal(json_integer_value(json_object_get(level, "value")), 400);
  resp_free(&r);

  json_t *now = g1_snapshot(f);
  assert_true(json_equal(before, now));
  json_decref(before);
  json_decref(now);
}

/* ---- 6. batch ingest in its three forms ---------------------------------- */

static void ingest_takes_array_documents_object_and_ndjson(void **state)
{
  fx *f = *state;
  /* JSON array */
  resp r = ingest(f, "alpha", f->a_write,
                  "[{'entity':'b1','type':'Batch','attr':'v','time':"
                  "'2024-05-03T00:00:00Z','value':1},"
                  "{'entity':'b1','type':'Batch','attr':'v','time':"
                  "'2024-05-03T00:01:00Z','value':2}]",
                  NULL);
  expect_status(&r, 200, "array");
  assert_int_equal(json_integer_value(json_object_get(r.json, "accepted")), 2);
  assert_int_equal(json_integer_value(json_object_get(r.json, "rejected")), 0);
  json_t *res = json_object_get(r.json, "results");
  assert_int_equal(json_array_size(res), 2);
  assert_int_equal(
      json_integer_value(json_object_get(json_array_get(res, 1), "index")), 1);
  assert_string_equal(
      json_string_value(json_object_get(json_array_get(res, 1), "status")),
      "accepted");
  resp_free(&r);

  /* {"documents": [...]} */
  r = ingest(f, "alpha", f->a_write,
             "{'documents':[{'entity':'b1','type':'Batch','attr':'v','time':"
             "'2024-05-03T00:02:00Z','value':3}]}",
             NULL);
  expect_status(&r, 200, "documents");
  assert_int_equal(json_integer_value(json_object_get(r.json, "accepted")), 1);
  resp_free(&r);

  /* JSON Lines, a blank line and CRLF included */
  r = ingest(f, "alpha", f->a_write,
             "{'entity':'b1','type':'Batch','attr':'v','time':"
             "'2024-05-03T00:03:00Z','value':4}\r\n\n"
             "{'entity':'b1','type':'Batch','attr':'v','time':"
             "'2024-05-03T00:04:00Z','value':5}\n",
             "application/x-ndjson");
  expect_status(&r, 200, "ndjson");
  assert_int_equal(json_integer_value(json_object_get(r.json, "accepted")), 2);
  resp_free(&r);

  json_t *j = get_json(f, "/v1/towns/alpha/entities/sensors/Batch/b1/history/v",
                       f->a_read);
  json_t *pts = json_object_get(j, "points");
  assert_int_equal(json_array_size(pts), 5);
  for (size_t i = 0; i < 5; i++)
    assert_int_equal(
        json_integer_value(json_object_get(json_array_get(pts, i), "value")),
        (json_int_t)i + 1);
  json_decref(j);

  /* JSON Lines with a malformed second line: 400 naming it, nothing
   * written */
  r = ingest(f, "alpha", f->a_write,
             "{'entity':'b2','type':'Gauge','attr':'v','time':"
             "'2024-05-03T00:00:00Z','value':1}\n"
             "{'entity':'b2',\n",
             "application/x-ndjson");
  expect_error(&r, 400, "bad_json", "body", "line 2", "ndjson bad line");
  assert_contains(json_string_value(json_object_get(
                      json_object_get(r.json, "error"), "message")),
                  "nothing was ingested");
  resp_free(&r);
  assert_no_entity(f, "alpha", "b2");

  /* one good, one the plugin refuses: 200 with both outcomes */
  r = ingest(f, "alpha", f->a_write,
             "[{'entity':'b3','type':'Gauge','attr':'v','time':"
             "'2024-05-03T00:00:00Z','value':1},"
             "{'type':'Gauge','attr':'v','time':'2024-05-03T00:00:00Z',"
             "'value':1}]",
             NULL);
  expect_status(&r, 200, "partly refused");
  assert_int_equal(json_integer_value(json_object_get(r.json, "accepted")), 1);
  assert_int_equal(json_integer_value(json_object_get(r.json, "rejected")), 1);
  json_t *bad = json_array_get(json_object_get(r.json, "results"), 1);
  assert_string_equal(json_string_value(json_object_get(bad, "status")),
                      "rejected");
  json_t *err = json_object_get(bad, "error");
  /* the sensors plugin says the reading is malformed (ERR_PARSE) */
  assert_string_equal(json_string_value(json_object_get(err, "code")),
                      "malformed");
  assert_contains(json_string_value(json_object_get(err, "message")), "entity");
  resp_free(&r);

  /* every document refused: 422 */
  r = ingest(f, "alpha", f->a_write,
             "[{'entity':'b4','type':'Gauge','attr':'v','time':"
             "'2090-01-01T00:00:00Z','value':1}]",
             NULL);
  expect_status(&r, 422, "all refused");
  assert_int_equal(json_integer_value(json_object_get(r.json, "accepted")), 0);
  err = json_object_get(json_array_get(json_object_get(r.json, "results"), 0),
                        "error");
  assert_contains(json_string_value(json_object_get(err, "message")), "future");
  resp_free(&r);
  assert_no_entity(f, "alpha", "b4");
}

/* ---- 2. errors ----------------------------------------------------------- */

static void bad_ingest_bodies_are_refused_and_write_nothing(void **state)
{
  fx *f = *state;
  json_t *before = g1_snapshot(f);
  static const char good[] =
      "{'entity':'bad1','type':'Gauge','attr':'level_cm','time':"
      "'2024-05-04T00:00:00Z','value':1},"
      "{'entity':'g1','type':'Gauge','attr':'level_cm','time':"
      "'2024-05-04T00:00:00Z','value':2}";

  char *body = tu_fmt("[%s,{'entity':", good);
  resp r = ingest(f, "alpha", f->a_write, body, NULL);
  free(body);
  expect_error(&r, 400, "bad_json", "body", "not JSON", "malformed body");
  assert_contains(json_string_value(json_object_get(
                      json_object_get(r.json, "error"), "message")),
                  "nothing was ingested");
  resp_free(&r);

  r = ingest(f, "alpha", f->a_write, "'hello'", NULL);
  expect_error(&r, 400, "bad_request", "body", "got a string", "string body");
  resp_free(&r);

  /* an object without "documents" is one document: the plugin refuses
   * this one (422, as every document of the request was refused) */
  body = tu_fmt("{'docs':[%s]}", good);
  r = ingest(f, "alpha", f->a_write, body, NULL);
  free(body);
  expect_status(&r, 422, "object without documents");
  assert_int_equal(json_integer_value(json_object_get(r.json, "rejected")), 1);
  resp_free(&r);

  body = tu_fmt("{'documents':{}}");
  r = ingest(f, "alpha", f->a_write, body, NULL);
  free(body);
  expect_error(&r, 400, "bad_request", "documents", "must be an array",
               "documents not an array");
  resp_free(&r);

  r = ingest(f, "alpha", f->a_write, "[]", NULL);
  expect_error(&r, 400, "bad_request", "body", "no documents", "empty array");
  resp_free(&r);

  r = call(f, (rq){"POST", "/v1/towns/alpha/plugins/sensors/ingest", f->a_write,
                   "", NULL, NULL, 0, NULL});
  expect_error(&r, 400, "bad_request", "body", "no documents", "no body");
  resp_free(&r);

  /* over max_body_bytes: said by Content-Length, and found while reading a
   * chunked body */
  buf big = {0};
  buf_add(&big, "[", 1);
  char *one = jq(good);
  while (big.len < MAX_BODY + 100) {
    if (big.len > 1)
      buf_add(&big, ",", 1);
    buf_add(&big, one, strlen(one));
  }
  buf_add(&big, "]", 1);
  free(one);
  for (int chunked = 0; chunked < 2; chunked++) {
    r = call(f, (rq){"POST", "/v1/towns/alpha/plugins/sensors/ingest",
                     f->a_write, big.p, NULL, NULL, chunked, NULL});
    expect_error(&r, 413, "body_too_large", "body", "4096",
                 chunked ? "chunked body too large" : "body too large");
    resp_free(&r);
  }
  free(big.p);

  /* ingest into a plugin or town that is not there */
  r = call(f, (rq){"POST", "/v1/towns/alpha/plugins/nope/ingest", f->a_write,
                   "[]", NULL, NULL, 0, NULL});
  expect_error(&r, 404, "unknown_plugin", "plugin", "nope", "ingest nope");
  resp_free(&r);
  r = call(f, (rq){"POST", "/v1/towns/gotham/plugins/sensors/ingest",
                   f->a_write, "[]", NULL, NULL, 0, NULL});
  expect_error(&r, 404, "unknown_town", "town", "gotham", "ingest gotham");
  resp_free(&r);

  /* multipart is not for us */
  r = call(f, (rq){"POST", "/v1/towns/alpha/plugins/sensors/ingest", f->a_write,
                   "--x\r\n\r\n--x--\r\n", "multipart/form-data; boundary=x",
                   NULL, 0, NULL});
  expect_error(&r, 415, "unsupported_media_type", "Content-Type", "multipart",
               "multipart");
  resp_free(&r);

  assert_no_entity(f, "alpha", "bad1");
  json_t *after = g1_snapshot(f);
  if (!json_equal(before, after)) {
    char *a = json_dumps(before, 0), *b = json_dumps(after, 0);
    fail_msg("g1 changed:\n%s\n%s", a, b);
  }
  json_decref(before);
  json_decref(after);
}

static void malformed_query_and_scenario_bodies_are_bad_json(void **state)
{
  fx *f = *state;
  resp r =
      post(f, "/v1/towns/alpha/plugins/sensors/query", f->a_read, "{\"op\":");
  expect_error(&r, 400, "bad_json", "body", "not JSON", "query");
  resp_free(&r);
  r = post(f, "/v1/towns/alpha/plugins/sensors/scenario", f->a_read, "[1,");
  expect_error(&r, 400, "bad_json", "body", "scenario", "scenario");
  resp_free(&r);
  r = call(f, (rq){"POST", "/v1/towns/alpha/plugins/sensors/query", f->a_read,
                   "", NULL, NULL, 0, NULL});
  expect_error(&r, 400, "bad_json", "body", "missing", "empty query");
  resp_free(&r);
}

static void unknown_things_are_404_with_their_code(void **state)
{
  fx *f = *state;
  resp r = get(f, "/v1/towns/gotham", f->a_read);
  expect_error(&r, 404, "unknown_town", "town", "'gotham'", "town");
  assert_contains(json_string_value(json_object_get(
                      json_object_get(r.json, "error"), "message")),
                  "alpha");
  resp_free(&r);
  r = get(f, "/v1/towns/gotham/entities", NULL);
  expect_error(&r, 404, "unknown_town", "town", "gotham", "town entities");
  resp_free(&r);

  r = get(f, "/v1/plugins/nope", NULL);
  expect_error(&r, 404, "unknown_plugin", "plugin", "'nope'", "plugin");
  assert_contains(json_string_value(json_object_get(
                      json_object_get(r.json, "error"), "message")),
                  "sensors");
  resp_free(&r);
  r = get(f, "/v1/towns/alpha/plugins/sensor", f->a_read);
  expect_error(&r, 404, "unknown_plugin", "plugin", "sensor", "town plugin");
  resp_free(&r);
  r = get(f, "/v1/towns/alpha/plugins/parking", f->a_read);
  expect_error(&r, 404, "unknown_plugin", "plugin", NULL,
               "plugin of another town");
  resp_free(&r);
  r = get(f, "/v1/towns/alpha/entities/nope/Gauge/g1", f->a_read);
  expect_error(&r, 404, "unknown_plugin", "plugin", "nope", "entity plugin");
  resp_free(&r);
  r = get(f, "/v1/towns/alpha/entities?plugin=nope", f->a_read);
  expect_error(&r, 404, "unknown_plugin", "plugin", "nope", "entities plugin");
  resp_free(&r);

  r = get(f, "/v1/towns/alpha/entities/sensors/Gauge/nope", f->a_read);
  expect_error(&r, 404, "unknown_entity", NULL, "nope", "entity");
  resp_free(&r);
  r = get(f, "/v1/towns/alpha/entities/sensors/Gauge/nope/history/level_cm",
          f->a_read);
  expect_error(&r, 404, "unknown_entity", NULL, "nope", "history");
  resp_free(&r);

  r = get(f, "/v1/nope", NULL);
  expect_error(&r, 404, "unknown_route", NULL, "/v1/nope", "route");
  assert_contains(json_string_value(json_object_get(
                      json_object_get(r.json, "error"), "message")),
                  "GET /v1");
  resp_free(&r);
  r = get(f, "/v1/towns/alpha/entities/sensors", f->a_read);
  expect_error(&r, 404, "unknown_route", NULL, NULL, "half an entity path");
  resp_free(&r);
  r = get(f, "/v1/towns/alpha/a/b/c/d/e/f/g/h/i/j/k/l/m/n", f->a_read);
  expect_error(&r, 404, "unknown_route", NULL, NULL, "deep path");
  resp_free(&r);
}

static void a_wrong_method_is_405_with_allow(void **state)
{
  fx *f = *state;
  static const struct {
    const char *method, *path, *allow;
  } cases[] = {
      {"DELETE", "/v1/towns", "GET, OPTIONS"},
      {"POST", "/healthz", "GET, OPTIONS"},
      {"PUT", "/v1/towns/alpha/entities", "GET, OPTIONS"},
      {"GET", "/v1/towns/alpha/plugins/sensors/ingest", "POST, OPTIONS"},
      {"DELETE", "/v1/towns/alpha/plugins/sensors/query", "POST, OPTIONS"},
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    const char *body = !strcmp(cases[i].method, "POST") ? "{}" : NULL;
    resp r = call(f, (rq){cases[i].method, cases[i].path, f->a_admin, body,
                          NULL, NULL, 0, NULL});
    char *what = tu_fmt("%s %s", cases[i].method, cases[i].path);
    expect_error(&r, 405, "method_not_allowed", NULL, cases[i].method, what);
    char *allow = header_of(&r, "Allow");
    if (!allow || strcmp(allow, cases[i].allow))
      fail_msg("%s: Allow %s, want %s", what, allow ? allow : "missing",
               cases[i].allow);
    free(allow);
    free(what);
    resp_free(&r);
  }
}

static void bad_parameters_are_400_naming_the_field(void **state)
{
  fx *f = *state;
  static const struct {
    const char *path, *field, *msg;
  } cases[] = {
      {"/v1/towns/alpha/entities?limit=0", "limit", "from 1 to 1000"},
      {"/v1/towns/alpha/entities?limit=abc", "limit", "'abc'"},
      {"/v1/towns/alpha/entities?limit=1001", "limit", "1000"},
      {"/v1/towns/alpha/entities?frob=1", "frob", "unknown parameter"},
      {"/v1/towns/alpha/entities?plugin=a&plugin=b", "plugin",
       "more than once"},
      {"/v1/towns/alpha/entities?type=Gauge", "type", "needs plugin"},
      {"/v1/towns/alpha/entities?filter=flow", "filter", "no operator"},
      {"/v1/towns/alpha/entities?filter=flow%3D5", "filter", "use =="},
      {"/v1/towns/alpha/entities?near=abc", "near", "lat,lon"},
      {"/v1/towns/alpha/entities?near=95,0", "near", "-90 to 90"},
      {"/v1/towns/alpha/entities?radius_m=5", "radius_m", "needs near"},
      {"/v1/towns/alpha/entities?near=48,12&radius_m=0", "radius_m",
       "1 to 100000"},
      {"/v1/towns/alpha/entities?cursor=xyz", "cursor", "cursor"},
      {"/v1/towns/alpha/entities/sensors/Gauge/g1?limit=1", "limit",
       "unknown parameter"},
      {"/v1/towns/alpha/entities/sensors/Gauge/g1/history/level_cm?agg=max",
       "agg", "agg needs every"},
      {"/v1/towns/alpha/entities/sensors/Gauge/g1/history/level_cm?"
       "every=1h&agg=median",
       "agg", "'median'"},
      {"/v1/towns/alpha/entities/sensors/Gauge/g1/history/level_cm?every=5x",
       "every", "'5x'"},
      {"/v1/towns/alpha/entities/sensors/Gauge/g1/history/level_cm?"
       "from=yesterday",
       "from", "RFC 3339"},
      {"/v1/towns/alpha/entities/sensors/Gauge/g1/history/level_cm?"
       "from=2000&to=1000",
       "to", "exclusive"},
      {"/v1/towns/alpha/entities/sensors/Gauge/g1/history/level_cm?"
       "limit=100001",
       "limit", "100000"},
      {"/v1/towns/alpha/events?limit=5000", "limit", "1 to 1000"},
      {"/v1/towns/alpha/events?after=-1", "after", "'-1'"},
      {"/v1/towns/alpha/events/stream?after=x", "after", "'x'"},
      {"/v1/towns/alpha/events/stream?since=1", "since", "unknown parameter"},
      {"/v1/towns/alpha/events/stream?after=1&after=2", "after",
       "more than once"},
      {"/v1/towns/alpha/rules?x=1", "x", "no parameters"},
      {"/v1/towns/alpha/tokens?x=1", "x", "no parameters"},
      {"/v1/towns/alpha/plugins/sensors?x=1", "x", "no parameters"},
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    resp r = get(f, cases[i].path, f->a_admin);
    expect_error(&r, 400, "bad_parameter", cases[i].field, cases[i].msg,
                 cases[i].path);
    resp_free(&r);
  }
  /* a cursor taken to another query */
  json_t *j = get_json(f, "/v1/towns/alpha/entities?limit=1", f->a_read);
  char *path = tu_fmt("/v1/towns/alpha/entities?plugin=sensors&limit=1&"
                      "cursor=%s",
                      json_string_value(json_object_get(j, "next")));
  json_decref(j);
  resp r = get(f, path, f->a_read);
  expect_error(&r, 400, "bad_parameter", "cursor", "another town or query",
               "foreign cursor");
  resp_free(&r);
  free(path);
  /* Last-Event-ID is checked like after */
  r = call(f, (rq){"GET", "/v1/towns/alpha/events/stream", f->a_read, NULL,
                   NULL, "Last-Event-ID: soon", 0, NULL});
  expect_error(&r, 400, "bad_parameter", "Last-Event-ID", "'soon'",
               "Last-Event-ID");
  resp_free(&r);
}

static void oversized_headers_are_431_json(void **state)
{
  fx *f = *state;
  size_t n = 20 * 1024;
  char *h = malloc(n + 16);
  strcpy(h, "X-Padding: ");
  memset(h + strlen(h), 'a', n);
  h[11 + n] = 0;
  resp r = call(f, (rq){"GET", "/v1/towns", NULL, NULL, NULL, h, 0, NULL});
  expect_error(&r, 431, "headers_too_large", NULL, "16384", "big header");
  resp_free(&r);
  free(h);
  /* the server is fine afterwards */
  json_decref(get_json(f, "/healthz", NULL));
}

/* ---- 3. the access matrix ------------------------------------------------ */

typedef struct principal {
  const char *name;
  const char *town; /* NULL: anonymous */
  unsigned scopes;
  const char *auth; /* the Authorization value; NULL for anonymous */
  int invalid;      /* a token the server must not accept */
} principal;

typedef struct scoped_route {
  const char *method;
  const char *path; /* %s: the town */
  unsigned need;
  const char *body_sq;
} scoped_route;

static const scoped_route scoped[] = {
    {"GET", "/v1/towns/%s", S_READ, NULL},
    {"GET", "/v1/towns/%s/entities", S_READ, NULL},
    {"GET", "/v1/towns/%s/entities/sensors/Gauge/g1", S_READ, NULL},
    {"GET", "/v1/towns/%s/entities/sensors/Gauge/g1/history/level_cm", S_READ,
     NULL},
    {"GET", "/v1/towns/%s/plugins/sensors", S_READ, NULL},
    {"POST", "/v1/towns/%s/plugins/sensors/ingest", S_WRITE,
     "[{'entity':'m1','type':'Matrix','attr':'x','time':"
     "'2024-05-01T00:00:00Z','value':1}]"},
    {"POST", "/v1/towns/%s/plugins/sensors/query", S_READ, "{'op':'alerts'}"},
    {"POST", "/v1/towns/%s/plugins/sensors/scenario", S_READ,
     "{'readings':[{'entity':'g1','type':'Gauge','attr':'flow','time':"
     "'2024-05-01T12:00:00Z','value':5}]}"},
    {"GET", "/v1/towns/%s/events", S_READ, NULL},
    {"GET", "/v1/towns/%s/events/stream", S_READ, NULL},
    {"GET", "/v1/towns/%s/rules", S_ADMIN, NULL},
    {"GET", "/v1/towns/%s/tokens", S_ADMIN, NULL},
};

static int allows(unsigned have, unsigned need)
{
  return (have & S_ADMIN) || (have & need) == need;
}

static void access_matrix_follows_the_spec(void **state)
{
  fx *f = *state;
  /* a real token of alpha with one character of its secret changed */
  char wrong[96];
  snprintf(wrong, sizeof wrong, "%s", f->a_admin);
  char *c = &wrong[strlen(wrong) - 10];
  *c = *c == 'A' ? 'B' : 'A';
  char *b_ar = tu_fmt("Bearer %s", f->a_read),
       *b_aw = tu_fmt("Bearer %s", f->a_write),
       *b_aa = tu_fmt("Bearer %s", f->a_admin),
       *b_br = tu_fmt("Bearer %s", f->b_read),
       *b_bw = tu_fmt("Bearer %s", f->b_write),
       *b_wrong = tu_fmt("Bearer %s", wrong),
       *basic = tu_fmt("Basic %s", "YWxhZGRpbjpvcGVuc2VzYW1l");
  const principal who[] = {
      {"anonymous", NULL, 0, NULL, 0},
      {"alpha read", "alpha", S_READ, b_ar, 0},
      {"alpha write", "alpha", S_WRITE, b_aw, 0},
      {"alpha admin", "alpha", S_ADMIN, b_aa, 0},
      {"beta read", "beta", S_READ, b_br, 0},
      {"beta write", "beta", S_WRITE, b_bw, 0},
      {"malformed token", NULL, 0, "Bearer not-a-token", 1},
      {"wrong secret", NULL, 0, b_wrong, 1},
      {"basic auth", NULL, 0, basic, 1},
  };
  static const struct {
    const char *id;
    int anonymous_read;
  } towns[] = {{"alpha", 0}, {"beta", 1}};
  size_t checked = 0;
  for (size_t t = 0; t < 2; t++)
    for (size_t ri = 0; ri < sizeof scoped / sizeof scoped[0]; ri++)
      for (size_t w = 0; w < sizeof who / sizeof who[0]; w++) {
        const scoped_route *rt = &scoped[ri];
        const principal *p = &who[w];
        long want;
        const char *code = NULL, *field = NULL;
        if (p->invalid) {
          want = 401, code = "unauthorized", field = "Authorization";
        } else if (!p->auth) {
          int ok = rt->need == S_READ && towns[t].anonymous_read;
          want = ok ? 200 : 401;
          code = "unauthorized", field = "Authorization";
        } else if (strcmp(p->town, towns[t].id)) {
          want = 403, code = "forbidden", field = "town";
        } else {
          want = allows(p->scopes, rt->need) ? 200 : 403;
          code = "forbidden", field = "scope";
        }
        char *path = tu_fmt(rt->path, towns[t].id);
        char *body = rt->body_sq ? jq(rt->body_sq) : NULL;
        resp r =
            call(f, (rq){rt->method, path, NULL, body, NULL, NULL, 0, p->auth});
        char *what = tu_fmt("%s %s as %s", rt->method, path, p->name);
        if (want == 200) {
          expect_status(&r, 200, what);
        } else {
          expect_error(&r, want, code, field, NULL, what);
          if (want == 401) {
            char *wa = header_of(&r, "WWW-Authenticate");
            if (!wa)
              fail_msg("%s: 401 without WWW-Authenticate", what);
            free(wa);
          }
          if (want == 403 && !strcmp(field, "town"))
            assert_contains(json_string_value(json_object_get(
                                json_object_get(r.json, "error"), "message")),
                            p->town);
        }
        checked++;
        resp_free(&r);
        free(what);
        free(body);
        free(path);
      }
  assert_int_equal(checked, 2 * (sizeof scoped / sizeof scoped[0]) *
                                (sizeof who / sizeof who[0]));
  /* the matrix's ingests landed only where a write was allowed */
  json_t *j =
      get_json(f, "/v1/towns/alpha/entities/sensors/Matrix/m1", f->a_read);
  json_decref(j);
  j = get_json(f, "/v1/towns/beta/entities/sensors/Matrix/m1", NULL);
  json_decref(j);
  free(b_ar);
  free(b_aw);
  free(b_aa);
  free(b_br);
  free(b_bw);
  free(b_wrong);
  free(basic);
}

static void public_routes_ignore_tokens_but_town_routes_check_them(void **state)
{
  fx *f = *state;
  /* public routes answer without a token */
  static const char *const open[] = {
      "/healthz", "/metrics", "/v1", "/v1/plugins", "/v1/plugins/sensors",
      "/v1/towns"};
  for (size_t i = 0; i < sizeof open / sizeof open[0]; i++) {
    resp r = get(f, open[i], NULL);
    expect_status(&r, 200, open[i]);
    resp_free(&r);
  }
  /* the 401 for alpha says how to get a token */
  resp r = get(f, "/v1/towns/alpha/entities", NULL);
  expect_error(&r, 401, "unauthorized", "Authorization", "token create",
               "anonymous on alpha");
  resp_free(&r);
  /* a read token on a write route names both scopes */
  r = ingest(f, "alpha", f->a_read, "[]", NULL);
  expect_error(&r, 403, "forbidden", "scope", "needs write", "read ingests");
  resp_free(&r);
}

/* docs/api.md: town, token and path are checked before the parameters. */
static void parameters_are_checked_after_town_and_token(void **state)
{
  fx *f = *state;
  resp r = get(f, "/v1/towns/gotham?x=1", NULL);
  expect_error(&r, 404, "unknown_town", "town", "'gotham'", "town first");
  resp_free(&r);
  r = get(f, "/v1/towns/alpha?x=1", NULL);
  expect_error(&r, 401, "unauthorized", "Authorization", NULL,
               "token before parameters");
  resp_free(&r);
  r = get(f, "/v1/towns/alpha/rules?x=1", f->b_write);
  expect_error(&r, 403, "forbidden", "town", NULL, "town of the token first");
  resp_free(&r);
  r = get(f, "/v1/towns/alpha/tokens?x=1", f->a_read);
  expect_error(&r, 403, "forbidden", "scope", NULL, "scope first");
  resp_free(&r);
  r = get(f, "/v1/towns/alpha/plugins/nope?x=1", f->a_read);
  expect_error(&r, 404, "unknown_plugin", "plugin", NULL, "plugin first");
  resp_free(&r);
  r = get(f, "/v1/towns/alpha?x=1", f->a_read);
  expect_error(&r, 400, "bad_parameter", "x", "no parameters",
               "then the parameter");
  resp_free(&r);
}

static void a_token_revoked_while_serving_is_refused_next_time(void **state)
{
  fx *f = *state;
  char tok[96], id[32];
  token_create(f->config, "alpha", "read", "short-lived", tok, id);
  resp r = get(f, "/v1/towns/alpha", tok);
  expect_status(&r, 200, "fresh token");
  resp_free(&r);
  tu_run rv = cli(f->config, "token", "revoke", id, NULL);
  if (rv.exit_code != 0)
    fail_msg("token revoke exited %d: %s", rv.exit_code, rv.err);
  tu_run_free(&rv);
  r = get(f, "/v1/towns/alpha", tok);
  expect_error(&r, 401, "unauthorized", "Authorization", "revoked",
               "revoked token");
  resp_free(&r);
}

/* ---- 4. the event stream ------------------------------------------------- */

typedef struct stream {
  int port;
  char path[128];
  const char *token;
  char last_id[32]; /* Last-Event-ID to send, "" for none */
  pthread_mutex_t mu;
  buf got;
  int stop; /* atomic */
  long status;
  pthread_t th;
} stream;

static size_t stream_body(char *data, size_t size, size_t n, void *ud)
{
  stream *s = ud;
  pthread_mutex_lock(&s->mu);
  buf_add(&s->got, data, size * n);
  pthread_mutex_unlock(&s->mu);
  return size * n;
}

static int stream_progress(void *ud, curl_off_t a, curl_off_t b, curl_off_t c,
                           curl_off_t d)
{
  (void)a, (void)b, (void)c, (void)d;
  stream *s = ud;
  return __atomic_load_n(&s->stop, __ATOMIC_ACQUIRE);
}

static void *stream_main(void *arg)
{
  stream *s = arg;
  CURL *c = curl_easy_init();
  char *url = tu_fmt("http://127.0.0.1:%d%s", s->port, s->path);
  char *auth = tu_fmt("Authorization: Bearer %s", s->token);
  char *leid = tu_fmt("Last-Event-ID: %s", s->last_id);
  struct curl_slist *h = curl_slist_append(NULL, auth);
  if (s->last_id[0])
    h = curl_slist_append(h, leid);
  curl_easy_setopt(c, CURLOPT_URL, url);
  curl_easy_setopt(c, CURLOPT_HTTPHEADER, h);
  curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, stream_body);
  curl_easy_setopt(c, CURLOPT_WRITEDATA, s);
  curl_easy_setopt(c, CURLOPT_NOPROGRESS, 0L);
  curl_easy_setopt(c, CURLOPT_XFERINFOFUNCTION, stream_progress);
  curl_easy_setopt(c, CURLOPT_XFERINFODATA, s);
  curl_easy_setopt(c, CURLOPT_TIMEOUT, 60L);
  curl_easy_perform(c);
  curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &s->status);
  curl_easy_cleanup(c);
  curl_slist_free_all(h);
  free(url);
  free(auth);
  free(leid);
  return NULL;
}

static void stream_open(stream *s, fx *f, const char *path, const char *token,
                        const char *last_id)
{
  memset(s, 0, sizeof *s);
  s->port = f->srv.port;
  snprintf(s->path, sizeof s->path, "%s", path);
  s->token = token;
  snprintf(s->last_id, sizeof s->last_id, "%s", last_id ? last_id : "");
  pthread_mutex_init(&s->mu, NULL);
  assert_int_equal(pthread_create(&s->th, NULL, stream_main, s), 0);
}

/* Wait until the stream's text holds want; 1 if it came. */
static int stream_wait(stream *s, const char *want)
{
  for (long long end = tu_mono_ms() + WAIT_MS; tu_mono_ms() < end;) {
    pthread_mutex_lock(&s->mu);
    int found = s->got.p && strstr(s->got.p, want);
    pthread_mutex_unlock(&s->mu);
    if (found)
      return 1;
    tu_sleep_ms(20);
  }
  return 0;
}

/* Stop the stream; its text (caller frees). */
static char *stream_close(stream *s)
{
  __atomic_store_n(&s->stop, 1, __ATOMIC_RELEASE);
  pthread_join(s->th, NULL);
  pthread_mutex_destroy(&s->mu);
  return s->got.p ? s->got.p : tu_fmt("%s", "");
}

typedef struct sse_event {
  long long id;
  char event[32];
  json_t *data;
} sse_event;

/* The events of a stream's text (blocks of "field: value" lines ended by a
 * blank line; comments skipped); at most max. Each data must be JSON. */
static size_t sse_parse(const char *text, sse_event *out, size_t max)
{
  size_t n = 0;
  const char *p = text;
  sse_event cur = {-1, "", NULL};
  while (*p && n < max) {
    const char *nl = strchr(p, '\n');
    if (!nl)
      break; /* an unfinished line */
    size_t len = (size_t)(nl - p);
    if (!len) {
      if (cur.data || cur.id >= 0) {
        if (cur.id < 0 || !cur.data)
          fail_msg("an event without id or data in:\n%s", text);
        out[n++] = cur;
      }
      cur = (sse_event){-1, "", NULL};
    } else if (!strncmp(p, "id: ", 4)) {
      cur.id = atoll(p + 4);
    } else if (!strncmp(p, "event: ", 7)) {
      snprintf(cur.event, sizeof cur.event, "%.*s", (int)(len - 7), p + 7);
    } else if (!strncmp(p, "data: ", 6)) {
      json_error_t je;
      cur.data = json_loadb(p + 6, len - 6, 0, &je);
      if (!cur.data)
        fail_msg("data is not JSON (%s): %.*s", je.text, (int)len, p);
    } else if (p[0] != ':') {
      fail_msg("unexpected stream line: %.*s", (int)len, p);
    }
    p = nl + 1;
  }
  json_decref(cur.data);
  return n;
}

static void sse_free(sse_event *ev, size_t n)
{
  for (size_t i = 0; i < n; i++)
    json_decref(ev[i].data);
}

static void the_stream_delivers_rule_events_and_resumes(void **state)
{
  fx *f = *state;
  stream s;
  stream_open(&s, f, "/v1/towns/alpha/events/stream", f->a_read, NULL);
  if (!stream_wait(&s, ": twinhost event stream"))
    fail_msg("the stream did not open: %ld", s.status);

  /* two readings above 500: the rule emits two warnings */
  ingest_ok(f, "alpha", f->a_write,
            "[{'entity':'river','type':'Gauge','attr':'level_cm','time':"
            "'2024-05-02T10:00:00Z','value':650},"
            "{'entity':'river','type':'Gauge','attr':'level_cm','time':"
            "'2024-05-02T10:15:00Z','value':700}]",
            2);
  if (!stream_wait(&s, "river level 700 above 500"))
    fail_msg("no event came");
  char *text = stream_close(&s);
  sse_event ev[8];
  size_t n = sse_parse(text, ev, 8);
  if (n != 2)
    fail_msg("want 2 events, got %zu:\n%s", n, text);
  assert_string_equal(json_string_value(json_object_get(ev[0].data, "message")),
                      "river level 650 above 500");
  assert_string_equal(json_string_value(json_object_get(ev[1].data, "message")),
                      "river level 700 above 500");
  for (size_t i = 0; i < 2; i++) {
    assert_int_equal(json_integer_value(json_object_get(ev[i].data, "seq")),
                     ev[i].id);
    assert_string_equal(ev[i].event, "warning");
    assert_string_equal(
        json_string_value(json_object_get(ev[i].data, "entity_id")), "river");
    assert_string_equal(json_string_value(json_object_get(ev[i].data, "town")),
                        "alpha");
  }
  assert_true(ev[1].id > ev[0].id);
  long long first = ev[0].id, second = ev[1].id;
  sse_free(ev, n);
  free(text);

  /* resume after the first: only the second comes */
  char id[32];
  snprintf(id, sizeof id, "%lld", first);
  char want[48];
  snprintf(want, sizeof want, "id: %lld\n", second);
  stream_open(&s, f, "/v1/towns/alpha/events/stream", f->a_read, id);
  if (!stream_wait(&s, "above 500\"") || !stream_wait(&s, want))
    fail_msg("the resumed stream did not send event %lld", second);
  text = stream_close(&s);
  n = sse_parse(text, ev, 8);
  if (n != 1 || ev[0].id != second)
    fail_msg("resumed after %lld, got %zu events:\n%s", first, n, text);
  sse_free(ev, n);
  free(text);

  /* ?after= the same */
  char *path = tu_fmt("/v1/towns/alpha/events/stream?after=%lld", first);
  stream_open(&s, f, path, f->a_read, NULL);
  free(path);
  if (!stream_wait(&s, want))
    fail_msg("the stream with after did not send event %lld", second);
  text = stream_close(&s);
  n = sse_parse(text, ev, 8);
  assert_int_equal(n, 1);
  sse_free(ev, n);
  free(text);

  /* the events route agrees */
  path = tu_fmt("/v1/towns/alpha/events?after=%lld", first);
  json_t *j = get_json(f, path, f->a_read);
  free(path);
  json_t *list = json_object_get(j, "events");
  assert_int_equal(json_array_size(list), 1);
  assert_int_equal(
      json_integer_value(json_object_get(json_array_get(list, 0), "seq")),
      second);
  json_decref(j);
  j = get_json(f, "/v1/towns/alpha/events?limit=1", f->a_read);
  list = json_object_get(j, "events");
  assert_int_equal(json_array_size(list), 1);
  assert_int_equal(
      json_integer_value(json_object_get(json_array_get(list, 0), "seq")),
      second);
  json_decref(j);
  /* beta has no rules: no events */
  j = get_json(f, "/v1/towns/beta/events", NULL);
  assert_int_equal(json_array_size(json_object_get(j, "events")), 0);
  json_decref(j);
}

/* ---- metrics ------------------------------------------------------------- */

static void metrics_count_requests_by_route(void **state)
{
  fx *f = *state;
  resp r = get(f, "/metrics", NULL);
  expect_status(&r, 200, "metrics");
  char *type = header_of(&r, "Content-Type");
  assert_contains(type, "text/plain; version=0.0.4");
  free(type);
  const char *m = r.body.p;
  assert_contains(m, "# TYPE twinhost_http_requests_total counter");
  assert_contains(m, "twinhost_http_requests_total{method=\"GET\",route="
                     "\"/healthz\",code=\"200\"}");
  assert_contains(m, "twinhost_http_requests_total{method=\"POST\",route="
                     "\"/v1/towns/{town}/plugins/{plugin}/ingest\",code="
                     "\"200\"}");
  assert_contains(m, "twinhost_http_requests_total{method=\"any\",route="
                     "\"unknown\",code=\"404\"}");
  assert_contains(m, "# TYPE twinhost_commit_seconds histogram");
  assert_contains(m, "twinhost_commit_seconds_bucket{le=\"+Inf\"}");
  assert_contains(m, "twinhost_commit_seconds_count ");
  assert_contains(m, "twinhost_store_used_bytes ");
  assert_contains(m, "twinhost_rule_errors_total{town=\"alpha\"} 0");
  assert_contains(m, "twinhost_rule_runs_total{town=\"alpha\"} ");
  assert_contains(m, "twinhost_ingest_documents_total{town=\"alpha\","
                     "plugin=\"sensors\",result=\"accepted\"} ");
  assert_contains(m, "twinhost_plugin_up{town=\"beta\",plugin=\"parking\"} "
                     "1");
  /* the commit count is not zero: we ingested */
  const char *c = strstr(m, "\ntwinhost_commits_total ");
  assert_non_null(c);
  assert_true(atoll(c + strlen("\ntwinhost_commits_total ")) > 0);
  resp_free(&r);
}

/* ---- connection limit ---------------------------------------------------- */

/* An idle connection from source address src (the whole 127/8 is
 * loopback): the server caps the connections of one client address. */
static int connect_idle(int port, const char *src)
{
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  assert_true(fd >= 0);
  struct sockaddr_in b = {0};
  b.sin_family = AF_INET;
  assert_int_equal(inet_pton(AF_INET, src, &b.sin_addr), 1);
  if (bind(fd, (struct sockaddr *)&b, sizeof b))
    fail_msg("bind %s: %s", src, strerror(errno));
  struct sockaddr_in a = {0};
  a.sin_family = AF_INET;
  a.sin_port = htons((uint16_t)port);
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (connect(fd, (struct sockaddr *)&a, sizeof a))
    fail_msg("connect: %s", strerror(errno));
  return fd;
}

static void too_many_connections_are_503(void **state)
{
  fx *f = *state;
  /* From two client addresses: one address alone may hold at most
   * max_connections - max_connections / 8 (here 14) of the 16, so that
   * others are still served (test_hardening.c). */
  int fds[MAX_CONN + 2];
  for (int i = 0; i < MAX_CONN + 2; i++)
    fds[i] = connect_idle(f->srv.port, i % 2 ? "127.0.0.3" : "127.0.0.4");
  /* The server counts a connection once it accepted it: ask until it has
   * seen the idle ones. */
  resp r = {0};
  for (int tries = 0; tries < 500; tries++) {
    r = get(f, "/healthz", NULL);
    if (r.status == 503)
      break;
    resp_free(&r);
    tu_sleep_ms(10);
  }
  expect_error(&r, 503, "too_many_connections", NULL, "16 connections",
               "over the limit");
  char *retry = header_of(&r, "Retry-After");
  assert_non_null(retry);
  free(retry);
  resp_free(&r);
  for (int i = 0; i < MAX_CONN + 2; i++)
    close(fds[i]);
  /* and it serves again once they are gone */
  for (int tries = 0; tries < 500; tries++) {
    r = get(f, "/healthz", NULL);
    if (r.status == 200)
      break;
    resp_free(&r);
    tu_sleep_ms(10);
  }
  expect_status(&r, 200, "after the idle connections closed");
  resp_free(&r);
}

/* ---- 5. SIGTERM during ingest -------------------------------------------- */

#define WRITERS 4
#define BATCH 8
#define MAX_SEQ 200000

typedef struct writer {
  int port;
  const char *token;
  int idx;
  int *stop;            /* shared, atomic */
  unsigned char *acked; /* [MAX_SEQ]: 1 when acknowledged */
  long n_acked;         /* atomic */
  long requests, answered_200, errors;
  pthread_t th;
} writer;

static void *writer_main(void *arg)
{
  writer *w = arg;
  int seq = 0;
  while (!__atomic_load_n(w->stop, __ATOMIC_ACQUIRE) &&
         seq + BATCH <= MAX_SEQ) {
    buf b = {0};
    buf_add(&b, "[", 1);
    for (int k = 0; k < BATCH; k++) {
      char *doc =
          tu_fmt("%s{\"entity\":\"w%d\",\"type\":\"Load\",\"attr\":"
                 "\"n\",\"time\":%lld,\"value\":%d}",
                 k ? "," : "", w->idx,
                 1714521600000LL + (long long)(seq + k) * 1000, seq + k);
      buf_add(&b, doc, strlen(doc));
      free(doc);
    }
    buf_add(&b, "]", 1);
    resp r = call_port(w->port,
                       (rq){"POST", "/v1/towns/alpha/plugins/sensors/ingest",
                            w->token, b.p, NULL, NULL, 0, NULL});
    free(b.p);
    w->requests++;
    if (r.status == 200 && r.json) {
      w->answered_200++;
      json_t *res = json_object_get(r.json, "results"), *it;
      size_t i;
      json_array_foreach(res, i, it)
      {
        const char *st = json_string_value(json_object_get(it, "status"));
        json_int_t idx = json_integer_value(json_object_get(it, "index"));
        if (st && !strcmp(st, "accepted") && idx >= 0 && idx < BATCH) {
          w->acked[seq + idx] = 1;
          __atomic_add_fetch(&w->n_acked, 1, __ATOMIC_RELEASE);
        }
      }
    } else {
      w->errors++;
      if (!r.status)
        tu_sleep_ms(5); /* refused: the server is going or gone */
    }
    resp_free(&r);
    seq += BATCH;
  }
  return NULL;
}

static void sigterm_during_ingest_loses_no_acknowledged_document(void **state)
{
  (void)state;
  char *dir = tu_tempdir();
  char *config = write_config(dir, "{\"threads\": 2}");
  char *log = tu_fmt("%s/serve.log", dir);
  char tok[96];
  token_create(config, "alpha", "write", "load", tok, NULL);
  tu_server srv;
  tu_server_start(&srv, config, log);
  int stop = 0;
  writer w[WRITERS];
  for (int i = 0; i < WRITERS; i++) {
    w[i] = (writer){.port = srv.port, .token = tok, .idx = i, .stop = &stop};
    w[i].acked = calloc(MAX_SEQ, 1);
    assert_int_equal(pthread_create(&w[i].th, NULL, writer_main, &w[i]), 0);
  }
  /* Stop it while the writers are busy: once a few hundred documents are
   * acknowledged. */
  long total = 0;
  for (long long end = tu_mono_ms() + WAIT_MS; tu_mono_ms() < end && total < 400;
       tu_sleep_ms(5)) {
    total = 0;
    for (int i = 0; i < WRITERS; i++)
      total += __atomic_load_n(&w[i].n_acked, __ATOMIC_ACQUIRE);
  }
  int rc = tu_server_stop(&srv, SIGTERM);
  __atomic_store_n(&stop, 1, __ATOMIC_RELEASE);
  for (int i = 0; i < WRITERS; i++)
    pthread_join(w[i].th, NULL);
  if (rc != 0) {
    char *text = tu_read_file(log);
    fail_msg("serve exited %d after SIGTERM; its log:\n%s", rc,
             text ? text : "");
  }
  char *text = tu_read_file(log);
  assert_contains(text, "twinhost: stopped");
  free(text);

  long acked = 0, found = 0;
  for (int i = 0; i < WRITERS; i++) {
    char id[16];
    snprintf(id, sizeof id, "w%d", i);
    tu_run r = cli(config, "history", "--town", "alpha", "--plugin", "sensors",
                   "--type", "Load", "--id", id, "--attr", "n", NULL);
    unsigned char *stored = calloc(MAX_SEQ, 1);
    if (r.exit_code == 0) {
      json_t *pts = json_loads(r.out, 0, NULL), *p;
      size_t k;
      json_array_foreach(pts, k, p)
      {
        json_int_t v = json_integer_value(json_object_get(p, "value"));
        if (v >= 0 && v < MAX_SEQ)
          stored[v] = 1;
      }
      json_decref(pts);
    } else if (w[i].n_acked) {
      fail_msg("history of %s exited %d: %s", id, r.exit_code, r.err);
    }
    for (int s = 0; s < MAX_SEQ; s++) {
      acked += w[i].acked[s];
      if (w[i].acked[s] && !stored[s])
        fail_msg("%s document %d was acknowledged but is not stored", id, s);
      found += w[i].acked[s] && stored[s];
    }
    free(stored);
    free(w[i].acked);
    tu_run_free(&r);
  }
  assert_true(acked > 0);
  assert_int_equal(found, acked);
  tu_rmtree(dir);
  free(dir);
  free(config);
  free(log);
}

int main(void)
{
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(public_routes_answer_200),
      cmocka_unit_test(every_listed_route_answers_2xx),
      cmocka_unit_test(town_and_plugin_routes_answer),
      cmocka_unit_test(entity_and_history_answer_with_stored_values),
      cmocka_unit_test(entities_filter_near_and_page),
      cmocka_unit_test(query_and_scenario_answer_and_leave_live_state_alone),
      cmocka_unit_test(ingest_takes_array_documents_object_and_ndjson),
      cmocka_unit_test(bad_ingest_bodies_are_refused_and_write_nothing),
      cmocka_unit_test(malformed_query_and_scenario_bodies_are_bad_json),
      cmocka_unit_test(unknown_things_are_404_with_their_code),
      cmocka_unit_test(a_wrong_method_is_405_with_allow),
      cmocka_unit_test(bad_parameters_are_400_naming_the_field),
      cmocka_unit_test(oversized_headers_are_431_json),
      cmocka_unit_test(access_matrix_follows_the_spec),
      cmocka_unit_test(public_routes_ignore_tokens_but_town_routes_check_them),
      cmocka_unit_test(parameters_are_checked_after_town_and_token),
      cmocka_unit_test(a_token_revoked_while_serving_is_refused_next_time),
      cmocka_unit_test(the_stream_delivers_rule_events_and_resumes),
      cmocka_unit_test(metrics_count_requests_by_route),
      cmocka_unit_test(too_many_connections_are_503),
      cmocka_unit_test(sigterm_during_ingest_loses_no_acknowledged_document),
  };
  return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
