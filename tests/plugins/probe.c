/*
 * probe.c — the "probe" test plugin: it calls every host service on request,
 * driven by JSON, so the host's side of the ABI can be tested through real
 * dlopen. Built twice: probe.so and probe_dup.so (the same name "probe", which
 * the host must refuse as a duplicate).
 *
 *   ingest   {"ops": [op, ...]}       ops in order, stop at the first failure
 *   query    op                       a read op (or a write op, whose status
 *                                     is reported as {"status": NAME})
 *   simulate {"ops": [...], "then": op}   ops into the overlay, then a query
 *   tick     kv "ticks" += 1 and entity Ticker/ticker count = ticks
 *   describe {"probe": true, "ticks": N, "greeting": ...}
 *
 * Write ops: put, obs, delete, kv_put, kv_delete, emit. Control ops (any
 * call): fail, respond, log. Read ops (query, simulate "then"): get, attrs,
 * list, history, kv_get, query_plugin, now, town, local_time ("t": ms;
 * the fields of twin_local, or {"status": "ERR_UNSUPPORTED"} from a host
 * without it), call_script, config, calls (how many times ingest ran).
 */
#include <inttypes.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "twin/twin.h"

#define MSG_MAX 1024

static const char config_schema[] =
    "{\"type\":\"object\",\"additionalProperties\":false,\"properties\":{"
    "\"greeting\":{\"type\":\"string\",\"default\":\"hello\"},"
    "\"fail_open\":{\"type\":\"boolean\",\"default\":false},"
    "\"tick_fail\":{\"type\":\"boolean\",\"default\":false},"
    "\"limit\":{\"type\":\"integer\",\"minimum\":1,\"maximum\":100,"
    "\"default\":10}}}";

/* Immutable after open but for the atomic ingest_calls: query and simulate
 * may run concurrently. */
typedef struct probe {
  const twin_host_api *api;
  char *config; /* the config text open received, NUL terminated */
  size_t config_len;
  char *greeting;
  int tick_fail;
  json_int_t limit; /* default limit of the history op */
  /* How often ingest was called: the host must deliver each document once.
   * The one mutable field; atomic since queries read it from other
   * threads. */
  unsigned long ingest_calls;
} probe;

/* ------------------------------------------------------------------------ */
/* Helpers                                                                  */
/* ------------------------------------------------------------------------ */

static const char *status_name(int status)
{
  switch (status) {
#define PROBE_STATUS_NAME_(name, value, msg)                                   \
  case value:                                                                  \
    return #name;
    TWIN_STATUS_LIST(PROBE_STATUS_NAME_)
#undef PROBE_STATUS_NAME_
  }
  return "UNKNOWN_STATUS";
}

/* "ERR_PARSE" or "TWIN_ERR_PARSE" → TWIN_ERR_PARSE; 0 when unknown. */
static int status_from_name(const char *name, int *out)
{
  if (!strncmp(name, "TWIN_", 5))
    name += 5;
#define PROBE_STATUS_FROM_(sname, value, msg)                                  \
  if (!strcmp(name, #sname)) {                                                 \
    *out = value;                                                              \
    return 1;                                                                  \
  }
  TWIN_STATUS_LIST(PROBE_STATUS_FROM_)
#undef PROBE_STATUS_FROM_
  return 0;
}

static int parse_level(const char *name, twin_level *out)
{
  if (!strcmp(name, "debug"))
    *out = TWIN_LEVEL_DEBUG;
  else if (!strcmp(name, "info"))
    *out = TWIN_LEVEL_INFO;
  else if (!strcmp(name, "warning"))
    *out = TWIN_LEVEL_WARNING;
  else if (!strcmp(name, "error"))
    *out = TWIN_LEVEL_ERROR;
  else
    return 0;
  return 1;
}

static char *dup_mem(const char *src, size_t len)
{
  char *p = malloc(len + 1);
  if (p) {
    memcpy(p, src, len);
    p[len] = '\0';
  }
  return p;
}

static void fmt(char *buf, size_t n, const char *f, ...)
    __attribute__((format(printf, 3, 4)));
static void fmt(char *buf, size_t n, const char *f, ...)
{
  va_list ap;
  va_start(ap, f);
  vsnprintf(buf, n, f, ap);
  va_end(ap);
}

static twin_value json_to_value(const json_t *j, int *ok)
{
  twin_value v;
  memset(&v, 0, sizeof v);
  *ok = 1;
  switch (json_typeof(j)) {
  case JSON_INTEGER:
    return twin_integer(json_integer_value(j));
  case JSON_REAL:
    return twin_number(json_real_value(j));
  case JSON_STRING:
    return twin_string(json_string_value(j), json_string_length(j));
  case JSON_TRUE:
    return twin_bool(1);
  case JSON_FALSE:
    return twin_bool(0);
  case JSON_NULL:
    v.type = TWIN_VALUE_NULL;
    return v;
  default:
    *ok = 0;
    return v;
  }
}

/* NULL when the host hands a string that is not UTF-8 or an unknown tag. */
static json_t *value_to_json(const twin_value *v)
{
  switch (v->type) {
  case TWIN_VALUE_NULL:
    return json_null();
  case TWIN_VALUE_NUMBER:
    return json_real(v->as.number);
  case TWIN_VALUE_INT:
    return json_integer(v->as.integer);
  case TWIN_VALUE_STRING:
    /* not NUL terminated: always the length */
    return json_stringn(v->as.string.ptr, v->as.string.len);
  case TWIN_VALUE_BOOL:
    return json_boolean(v->as.boolean);
  default:
    return NULL;
  }
}

/* A reply as compact JSON text through api->respond. Takes reply. */
static int respond_json(probe *p, twin_ctx *ctx, json_t *reply)
{
  char *text;
  int rc;
  if (!reply) {
    p->api->set_error(ctx, "probe: could not build the reply (a host value "
                           "was not representable)");
    return TWIN_ERR_INTERNAL;
  }
  text = json_dumps(reply, JSON_COMPACT | JSON_ENCODE_ANY);
  json_decref(reply);
  if (!text)
    return TWIN_ERR_NOMEM;
  rc = p->api->respond(ctx, text, strlen(text));
  free(text);
  if (rc != TWIN_OK) {
    char msg[MSG_MAX];
    fmt(msg, sizeof msg, "respond returned %s", status_name(rc));
    p->api->set_error(ctx, msg);
  }
  return rc;
}

static const char *str_field(const json_t *op, const char *key)
{
  return json_string_value(json_object_get(op, key));
}

/* A time field: integer ms, or def when absent. 0 when not an integer. */
static int time_field(const json_t *op, const char *key, twin_time def,
                      twin_time *out)
{
  const json_t *v = json_object_get(op, key);
  if (!v) {
    *out = def;
    return 1;
  }
  if (!json_is_integer(v))
    return 0;
  *out = json_integer_value(v);
  return 1;
}

/* ------------------------------------------------------------------------ */
/* Write and control ops                                                    */
/* ------------------------------------------------------------------------ */

/* The result of one op: its status, whether it reached the host (called),
 * and why it failed (err). */
typedef struct outcome {
  int called;
  char err[MSG_MAX];
} outcome;

static int op_put(probe *p, twin_ctx *ctx, const json_t *op, outcome *o)
{
  const char *type = str_field(op, "type"), *id = str_field(op, "id");
  const json_t *attrs = json_object_get(op, "attrs");
  twin_attr *a;
  twin_time t;
  const char *key;
  json_t *v;
  size_t n = 0;
  int ok, rc;

  if (!type || !id || !json_is_object(attrs)) {
    fmt(o->err, sizeof o->err,
        "put needs \"type\", \"id\" and an \"attrs\" object");
    return TWIN_ERR_PARSE;
  }
  if (!time_field(op, "time", p->api->now(ctx), &t)) {
    fmt(o->err, sizeof o->err, "time: expected integer ms");
    return TWIN_ERR_PARSE;
  }
  a = calloc(json_object_size(attrs) + 1, sizeof *a);
  if (!a)
    return TWIN_ERR_NOMEM;
  json_object_foreach((json_t *)attrs, key, v)
  {
    a[n].name = key;
    a[n].time = t;
    a[n].value = json_to_value(v, &ok);
    if (!ok) {
      fmt(o->err, sizeof o->err,
          "attrs.%s: expected a number, string, boolean or null", key);
      free(a);
      return TWIN_ERR_PARSE;
    }
    n++;
  }
  o->called = 1;
  rc = p->api->entity_put(ctx, type, id, a, n);
  free(a);
  if (rc != TWIN_OK)
    fmt(o->err, sizeof o->err, "entity_put returned %s", status_name(rc));
  return rc;
}

static int op_obs(probe *p, twin_ctx *ctx, const json_t *op, outcome *o)
{
  const char *type = str_field(op, "type"), *id = str_field(op, "id");
  const char *attr = str_field(op, "attr");
  const json_t *values = json_object_get(op, "values");
  twin_attr *a;
  json_t *pair;
  size_t i;
  int ok, rc;

  if (!type || !id || !attr || !json_is_array(values)) {
    fmt(o->err, sizeof o->err,
        "obs needs \"type\", \"id\", \"attr\" and \"values\": [[ms, value], "
        "...]");
    return TWIN_ERR_PARSE;
  }
  a = calloc(json_array_size(values) + 1, sizeof *a);
  if (!a)
    return TWIN_ERR_NOMEM;
  json_array_foreach(values, i, pair)
  {
    const json_t *t = json_array_get(pair, 0);
    ok =
        json_is_array(pair) && json_array_size(pair) == 2 && json_is_integer(t);
    if (ok)
      a[i].value = json_to_value(json_array_get(pair, 1), &ok);
    if (!ok) {
      fmt(o->err, sizeof o->err, "values[%zu]: expected [integer ms, value]",
          i);
      free(a);
      return TWIN_ERR_PARSE;
    }
    a[i].name = attr;
    a[i].time = json_integer_value(t);
  }
  o->called = 1;
  rc = p->api->obs_append(ctx, type, id, a, json_array_size(values));
  free(a);
  if (rc != TWIN_OK)
    fmt(o->err, sizeof o->err, "obs_append returned %s", status_name(rc));
  return rc;
}

static int op_emit(probe *p, twin_ctx *ctx, const json_t *op, outcome *o)
{
  const char *level = str_field(op, "level"), *msg = str_field(op, "message");
  const json_t *data = json_object_get(op, "data");
  char *text = NULL;
  twin_level lv = TWIN_LEVEL_INFO;
  int rc;

  if (!msg || (level && !parse_level(level, &lv)) ||
      (json_object_get(op, "level") && !level)) {
    fmt(o->err, sizeof o->err,
        "emit needs \"message\" and a \"level\" of debug, info, warning, "
        "error");
    return TWIN_ERR_PARSE;
  }
  if (data && !(text = json_dumps(data, JSON_COMPACT | JSON_ENCODE_ANY)))
    return TWIN_ERR_NOMEM;
  o->called = 1;
  rc = p->api->emit(ctx, lv, str_field(op, "type"), str_field(op, "id"), msg,
                    text, text ? strlen(text) : 0);
  free(text);
  if (rc != TWIN_OK)
    fmt(o->err, sizeof o->err, "emit returned %s", status_name(rc));
  return rc;
}

static int op_kv(probe *p, twin_ctx *ctx, const json_t *op, int put, outcome *o)
{
  const json_t *key = json_object_get(op, "key");
  const json_t *val = json_object_get(op, "value");
  int rc;
  if (!json_is_string(key) || (put && !json_is_string(val))) {
    fmt(o->err, sizeof o->err, "%s needs a string \"key\"%s",
        put ? "kv_put" : "kv_delete", put ? " and a string \"value\"" : "");
    return TWIN_ERR_PARSE;
  }
  o->called = 1;
  if (put)
    rc = p->api->kv_put(ctx, json_string_value(key), json_string_length(key),
                        json_string_value(val), json_string_length(val));
  else
    rc =
        p->api->kv_delete(ctx, json_string_value(key), json_string_length(key));
  if (rc != TWIN_OK)
    fmt(o->err, sizeof o->err, "%s returned %s", put ? "kv_put" : "kv_delete",
        status_name(rc));
  return rc;
}

/* 1: name is a write op or a control op, and *rc is its result. */
static int run_write(probe *p, twin_ctx *ctx, const char *name,
                     const json_t *op, outcome *o, int *rc)
{
  o->called = 0;
  o->err[0] = '\0';
  if (!strcmp(name, "put")) {
    *rc = op_put(p, ctx, op, o);
  } else if (!strcmp(name, "obs")) {
    *rc = op_obs(p, ctx, op, o);
  } else if (!strcmp(name, "delete")) {
    const char *type = str_field(op, "type"), *id = str_field(op, "id");
    if (!type || !id) {
      fmt(o->err, sizeof o->err, "delete needs \"type\" and \"id\"");
      *rc = TWIN_ERR_PARSE;
      return 1;
    }
    o->called = 1;
    *rc = p->api->entity_delete(ctx, type, id);
    if (*rc != TWIN_OK)
      fmt(o->err, sizeof o->err, "entity_delete returned %s", status_name(*rc));
  } else if (!strcmp(name, "kv_put") || !strcmp(name, "kv_delete")) {
    *rc = op_kv(p, ctx, op, !strcmp(name, "kv_put"), o);
  } else if (!strcmp(name, "emit")) {
    *rc = op_emit(p, ctx, op, o);
  } else {
    return 0;
  }
  return 1;
}

/* fail, respond, log: allowed in every call. 1 when name is one of them. */
static int run_control(probe *p, twin_ctx *ctx, const char *name,
                       const json_t *op, outcome *o, int *rc)
{
  o->called = 0;
  o->err[0] = '\0';
  if (!strcmp(name, "fail")) {
    const char *status = str_field(op, "status");
    const char *msg = str_field(op, "message");
    *rc = TWIN_ERR_REJECTED;
    if (status && !status_from_name(status, rc)) {
      fmt(o->err, sizeof o->err, "status: unknown status '%s'", status);
      *rc = TWIN_ERR_PARSE;
      return 1;
    }
    /* the message goes to set_error verbatim */
    o->called = 1;
    p->api->set_error(ctx, msg ? msg : "asked to fail");
  } else if (!strcmp(name, "respond")) {
    const json_t *value = json_object_get(op, "value");
    char *text;
    if (!value) {
      fmt(o->err, sizeof o->err, "respond needs \"value\"");
      *rc = TWIN_ERR_PARSE;
      return 1;
    }
    text = json_dumps(value, JSON_COMPACT | JSON_ENCODE_ANY);
    if (!text) {
      *rc = TWIN_ERR_NOMEM;
      return 1;
    }
    *rc = p->api->respond(ctx, text, strlen(text));
    free(text);
    if (*rc != TWIN_OK)
      fmt(o->err, sizeof o->err, "respond returned %s", status_name(*rc));
  } else if (!strcmp(name, "log")) {
    const char *level = str_field(op, "level");
    const char *msg = str_field(op, "message");
    twin_level lv = TWIN_LEVEL_INFO;
    if (!msg || (level && !parse_level(level, &lv))) {
      fmt(o->err, sizeof o->err,
          "log needs \"message\" and an optional \"level\"");
      *rc = TWIN_ERR_PARSE;
      return 1;
    }
    *rc = p->api->log(ctx, lv, msg);
  } else {
    return 0;
  }
  return 1;
}

/* Run ops in order (ingest, simulate); the first failure stops them. */
static int run_ops(probe *p, twin_ctx *ctx, const json_t *ops)
{
  char msg[MSG_MAX + 64];
  outcome o;
  json_t *op;
  size_t i;
  int rc;

  if (!json_is_array(ops)) {
    p->api->set_error(ctx, "expected {\"ops\": [op, ...]}");
    return TWIN_ERR_PARSE;
  }
  json_array_foreach(ops, i, op)
  {
    const char *name = str_field(op, "op");
    if (!name) {
      fmt(msg, sizeof msg, "ops[%zu]: expected {\"op\": name, ...}", i);
      p->api->set_error(ctx, msg);
      return TWIN_ERR_PARSE;
    }
    if (!run_write(p, ctx, name, op, &o, &rc) &&
        !run_control(p, ctx, name, op, &o, &rc)) {
      fmt(msg, sizeof msg,
          "ops[%zu]: unknown op '%s' (known: put, obs, delete, kv_put, "
          "kv_delete, emit, fail, respond, log)",
          i, name);
      p->api->set_error(ctx, msg);
      return TWIN_ERR_PARSE;
    }
    if (rc != TWIN_OK) {
      if (strcmp(name, "fail") || !o.called) {
        fmt(msg, sizeof msg, "ops[%zu]: %s", i,
            o.err[0] ? o.err : status_name(rc));
        p->api->set_error(ctx, msg);
      }
      return rc;
    }
  }
  return TWIN_OK;
}

/* ------------------------------------------------------------------------ */
/* Read ops                                                                 */
/* ------------------------------------------------------------------------ */

static int read_failed(probe *p, twin_ctx *ctx, const char *call, int rc)
{
  char msg[MSG_MAX];
  fmt(msg, sizeof msg, "%s returned %s", call, status_name(rc));
  p->api->set_error(ctx, msg);
  return rc;
}

static int bad_request(probe *p, twin_ctx *ctx, const char *why)
{
  p->api->set_error(ctx, why);
  return TWIN_ERR_PARSE;
}

static int attrs_cb(void *ud, const twin_attr *a)
{
  json_t *v = value_to_json(&a->value), *one;
  if (!v)
    return TWIN_ERR_INVALID;
  one = json_pack("{s:I,s:o}", "time", (json_int_t)a->time, "value", v);
  if (!one || json_object_set_new(ud, a->name, one))
    return TWIN_ERR_NOMEM;
  return TWIN_OK;
}

static int list_cb(void *ud, const char *type, const char *id)
{
  json_t *pair = json_pack("[s,s]", type, id);
  if (!pair || json_array_append_new(ud, pair))
    return TWIN_ERR_NOMEM;
  return TWIN_OK;
}

static int history_cb(void *ud, const twin_attr *a)
{
  json_t *v = value_to_json(&a->value), *pair;
  if (!v)
    return TWIN_ERR_INVALID;
  pair = json_pack("[I,o]", (json_int_t)a->time, v);
  if (!pair || json_array_append_new(ud, pair))
    return TWIN_ERR_NOMEM;
  return TWIN_OK;
}

/* A reply text copied out of a callback, answered after the call returns. */
typedef struct text {
  char *json;
  size_t len;
} text;

static int text_cb(void *ud, const char *json, size_t len)
{
  text *t = ud;
  free(t->json);
  t->json = dup_mem(json, len);
  t->len = len;
  return t->json ? TWIN_OK : TWIN_ERR_NOMEM;
}

/* Answer a reply that crossed as text, verbatim. */
static int respond_text(probe *p, twin_ctx *ctx, const char *call, int rc,
                        text *t)
{
  if (rc == TWIN_OK && !t->json) {
    p->api->set_error(ctx, "the callback was never called");
    rc = TWIN_ERR_INTERNAL;
  } else if (rc != TWIN_OK) {
    rc = read_failed(p, ctx, call, rc);
  } else {
    rc = p->api->respond(ctx, t->json, t->len);
    if (rc != TWIN_OK)
      rc = read_failed(p, ctx, "respond", rc);
  }
  free(t->json);
  return rc;
}

static int read_get(probe *p, twin_ctx *ctx, const json_t *op)
{
  const char *type = str_field(op, "type"), *id = str_field(op, "id");
  const char *attr = str_field(op, "attr");
  twin_attr out;
  json_t *v;
  int rc;
  if (!type || !id || !attr)
    return bad_request(p, ctx, "get needs \"type\", \"id\" and \"attr\"");
  memset(&out, 0, sizeof out);
  rc = p->api->entity_get(ctx, type, id, attr, &out);
  if (rc != TWIN_OK)
    return read_failed(p, ctx, "entity_get", rc);
  v = value_to_json(&out.value);
  return respond_json(p, ctx,
                      v ? json_pack("{s:s,s:I,s:o}", "name",
                                    out.name ? out.name : attr, "time",
                                    (json_int_t)out.time, "value", v)
                        : NULL);
}

static int read_history(probe *p, twin_ctx *ctx, const json_t *op)
{
  const char *type = str_field(op, "type"), *id = str_field(op, "id");
  const char *attr = str_field(op, "attr");
  const json_t *lim = json_object_get(op, "limit");
  twin_time from, to;
  json_t *arr;
  int rc;
  if (!type || !id || !attr || !time_field(op, "from", INT64_MIN, &from) ||
      !time_field(op, "to", INT64_MAX, &to) ||
      (lim && (!json_is_integer(lim) || json_integer_value(lim) < 0)))
    return bad_request(p, ctx,
                       "history needs \"type\", \"id\", \"attr\" and "
                       "optional integer \"from\", \"to\", \"limit\"");
  arr = json_array();
  if (!arr)
    return TWIN_ERR_NOMEM;
  rc = p->api->history_range(ctx, type, id, attr, from, to,
                             (size_t)(lim ? json_integer_value(lim) : p->limit),
                             history_cb, arr);
  if (rc != TWIN_OK) {
    json_decref(arr);
    return read_failed(p, ctx, "history_range", rc);
  }
  return respond_json(p, ctx, arr);
}

static int read_op(probe *p, twin_ctx *ctx, const char *name, const json_t *op)
{
  const twin_host_api *api = p->api;
  int rc;

  if (!strcmp(name, "get"))
    return read_get(p, ctx, op);
  if (!strcmp(name, "history"))
    return read_history(p, ctx, op);
  if (!strcmp(name, "attrs")) {
    const char *type = str_field(op, "type"), *id = str_field(op, "id");
    json_t *obj;
    if (!type || !id)
      return bad_request(p, ctx, "attrs needs \"type\" and \"id\"");
    if (!(obj = json_object()))
      return TWIN_ERR_NOMEM;
    rc = api->entity_attrs(ctx, type, id, attrs_cb, obj);
    if (rc != TWIN_OK) {
      json_decref(obj);
      return read_failed(p, ctx, "entity_attrs", rc);
    }
    return respond_json(p, ctx, obj);
  }
  if (!strcmp(name, "list")) {
    const json_t *t = json_object_get(op, "type");
    json_t *arr;
    if (t && !json_is_string(t))
      return bad_request(p, ctx, "list: \"type\" must be a string");
    if (!(arr = json_array()))
      return TWIN_ERR_NOMEM;
    rc = api->entity_iterate(ctx, json_string_value(t), list_cb, arr);
    if (rc != TWIN_OK) {
      json_decref(arr);
      return read_failed(p, ctx, "entity_iterate", rc);
    }
    return respond_json(p, ctx, arr);
  }
  if (!strcmp(name, "kv_get")) {
    const json_t *key = json_object_get(op, "key");
    const void *val = NULL;
    size_t len = 0;
    json_t *s;
    if (!json_is_string(key))
      return bad_request(p, ctx, "kv_get needs a string \"key\"");
    rc = api->kv_get(ctx, json_string_value(key), json_string_length(key), &val,
                     &len);
    if (rc != TWIN_OK)
      return read_failed(p, ctx, "kv_get", rc);
    s = json_stringn(val, len);
    return respond_json(p, ctx, s ? json_pack("{s:o}", "value", s) : NULL);
  }
  if (!strcmp(name, "query_plugin")) {
    const char *plugin = str_field(op, "plugin");
    const json_t *req = json_object_get(op, "request");
    text t = {NULL, 0};
    char *body;
    if (!plugin || !req)
      return bad_request(p, ctx,
                         "query_plugin needs \"plugin\" and \"request\"");
    if (!(body = json_dumps(req, JSON_COMPACT | JSON_ENCODE_ANY)))
      return TWIN_ERR_NOMEM;
    rc = api->query_plugin(ctx, plugin, body, strlen(body), text_cb, &t);
    free(body);
    return respond_text(p, ctx, "query_plugin", rc, &t);
  }
  if (!strcmp(name, "call_script")) {
    const char *function = str_field(op, "function");
    const json_t *args = json_object_get(op, "args");
    text t = {NULL, 0};
    char *body;
    if (!function || (args && !json_is_array(args)))
      return bad_request(p, ctx,
                         "call_script needs \"function\" and an \"args\" "
                         "array");
    body = args ? json_dumps(args, JSON_COMPACT) : NULL;
    if (args && !body)
      return TWIN_ERR_NOMEM;
    rc = api->call_script(ctx, function, body ? body : "[]",
                          body ? strlen(body) : 2, text_cb, &t);
    free(body);
    return respond_text(p, ctx, "call_script", rc, &t);
  }
  if (!strcmp(name, "now"))
    return respond_json(p, ctx,
                        json_pack("{s:I}", "now", (json_int_t)api->now(ctx)));
  if (!strcmp(name, "town")) {
    const char *id = NULL, *tname = NULL, *tz = NULL;
    rc = api->town_info(ctx, &id, &tname, &tz);
    if (rc != TWIN_OK)
      return read_failed(p, ctx, "town_info", rc);
    return respond_json(
        p, ctx,
        json_pack("{s:s?,s:s?,s:s?}", "id", id, "name", tname, "timezone", tz));
  }
  if (!strcmp(name, "local_time")) {
    const json_t *t = json_object_get(op, "t");
    twin_local lt;
    if (!json_is_integer(t))
      return bad_request(p, ctx, "local_time needs an integer \"t\" (ms)");
    /* Added in ABI 1.1: a host of 1.0 hands a table without it. */
    if (offsetof(twin_host_api, local_time) >= api->struct_size ||
        !api->local_time)
      return respond_json(p, ctx,
                          json_pack("{s:s}", "status", "ERR_UNSUPPORTED"));
    rc = api->local_time(ctx, (twin_time)json_integer_value(t), &lt);
    if (rc != TWIN_OK)
      return read_failed(p, ctx, "local_time", rc);
    return respond_json(p, ctx,
                        json_pack("{s:i,s:i,s:i,s:i,s:i,s:i,s:i,s:i,s:i,s:b}",
                                  "year", lt.year, "month", lt.month, "day",
                                  lt.day, "hour", lt.hour, "minute", lt.minute,
                                  "second", lt.second, "weekday", lt.weekday,
                                  "yday", lt.yday, "utc_offset_s",
                                  lt.utc_offset_s, "is_dst", lt.is_dst));
  }
  if (!strcmp(name, "calls"))
    return respond_json(p, ctx,
                        json_pack("{s:I}", "ingest",
                                  (json_int_t)__atomic_load_n(
                                      &p->ingest_calls, __ATOMIC_RELAXED)));
  if (!strcmp(name, "config")) {
    rc = api->respond(ctx, p->config, p->config_len);
    return rc == TWIN_OK ? rc : read_failed(p, ctx, "respond", rc);
  }
  {
    char msg[MSG_MAX];
    fmt(msg, sizeof msg,
        "unknown op '%s' (known: get, attrs, list, history, kv_get, "
        "query_plugin, now, town, local_time, call_script, config, calls, "
        "put, obs, "
        "delete, "
        "kv_put, kv_delete, emit, fail, respond, log)",
        name);
    api->set_error(ctx, msg);
    return TWIN_ERR_INVALID;
  }
}

/*
 * One op as a query: a read op answers; a write op is attempted and its
 * status answered as {"status": "ERR_READ_ONLY"}; a control op runs.
 */
static int query_op(probe *p, twin_ctx *ctx, const json_t *op)
{
  const char *name = str_field(op, "op");
  outcome o;
  int rc;
  if (!name)
    return bad_request(p, ctx, "expected {\"op\": name, ...}");
  if (run_write(p, ctx, name, op, &o, &rc)) {
    if (!o.called) {
      p->api->set_error(ctx, o.err[0] ? o.err : status_name(rc));
      return rc;
    }
    return respond_json(p, ctx, json_pack("{s:s}", "status", status_name(rc)));
  }
  if (run_control(p, ctx, name, op, &o, &rc)) {
    if (rc != TWIN_OK && o.err[0])
      p->api->set_error(ctx, o.err);
    return rc;
  }
  return read_op(p, ctx, name, op);
}

/* ------------------------------------------------------------------------ */
/* Callbacks                                                                */
/* ------------------------------------------------------------------------ */

static void probe_close(void *instance)
{
  probe *p = instance;
  if (!p)
    return;
  free(p->config);
  free(p->greeting);
  free(p);
}

static int probe_open(const twin_host_api *api, twin_ctx *ctx,
                      const char *config_json, size_t config_len,
                      void **instance)
{
  json_error_t jerr;
  json_t *cfg, *v;
  probe *p;
  char msg[MSG_MAX];

  if (!api || api->abi_major != TWIN_ABI_MAJOR)
    return TWIN_ERR_UNSUPPORTED;
  if (!config_json) {
    config_json = "{}";
    config_len = 2;
  }
  cfg = json_loadb(config_json, config_len, 0, &jerr);
  if (!json_is_object(cfg)) {
    json_decref(cfg);
    api->set_error(ctx, "probe: config is not a JSON object");
    return TWIN_ERR_CONFIG;
  }
  if (json_is_true(json_object_get(cfg, "fail_open"))) {
    json_decref(cfg);
    api->set_error(ctx, "asked to fail in open");
    return TWIN_ERR_CONFIG;
  }
  p = calloc(1, sizeof *p);
  if (!p) {
    json_decref(cfg);
    return TWIN_ERR_NOMEM;
  }
  p->api = api;
  v = json_object_get(cfg, "greeting");
  p->greeting = json_is_string(v)
                    ? dup_mem(json_string_value(v), json_string_length(v))
                    : dup_mem("hello", 5);
  p->tick_fail = json_is_true(json_object_get(cfg, "tick_fail"));
  v = json_object_get(cfg, "limit");
  p->limit = json_is_integer(v) ? json_integer_value(v) : 10;
  p->config = dup_mem(config_json, config_len);
  p->config_len = config_len;
  json_decref(cfg);
  if (!p->greeting || !p->config) {
    probe_close(p);
    return TWIN_ERR_NOMEM;
  }
  fmt(msg, sizeof msg, "probe open: %s", p->greeting);
  api->log(ctx, TWIN_LEVEL_INFO, msg);
  *instance = p;
  return TWIN_OK;
}

static int probe_ingest(void *instance, twin_ctx *ctx, const char *doc,
                        size_t len)
{
  probe *p = instance;
  __atomic_add_fetch(&p->ingest_calls, 1, __ATOMIC_RELAXED);
  json_error_t jerr;
  json_t *root = json_loadb(doc, len, 0, &jerr);
  int rc;
  if (!root) {
    char msg[MSG_MAX];
    fmt(msg, sizeof msg, "line %d: %s", jerr.line, jerr.text);
    p->api->set_error(ctx, msg);
    return TWIN_ERR_PARSE;
  }
  rc = run_ops(p, ctx, json_object_get(root, "ops"));
  json_decref(root);
  return rc;
}

static int probe_query(void *instance, twin_ctx *ctx, const char *request,
                       size_t len)
{
  probe *p = instance;
  json_error_t jerr;
  json_t *op = json_loadb(request, len, 0, &jerr);
  int rc;
  if (!op)
    return bad_request(p, ctx, "request is not JSON");
  rc = query_op(p, ctx, op);
  json_decref(op);
  return rc;
}

static int probe_simulate(void *instance, twin_ctx *ctx, const char *scenario,
                          size_t len)
{
  probe *p = instance;
  json_error_t jerr;
  json_t *root = json_loadb(scenario, len, 0, &jerr), *then;
  int rc;
  if (!root)
    return bad_request(p, ctx, "scenario is not JSON");
  rc = run_ops(p, ctx, json_object_get(root, "ops"));
  if (rc == TWIN_OK) {
    then = json_object_get(root, "then");
    if (then)
      rc = query_op(p, ctx, then);
    else
      rc = respond_json(
          p, ctx,
          json_pack("{s:I}", "applied",
                    (json_int_t)json_array_size(json_object_get(root, "ops"))));
  }
  json_decref(root);
  return rc;
}

/* The tick counter kept in kv (text digits; the host's bytes need no NUL). */
static int read_ticks(probe *p, twin_ctx *ctx, int64_t *ticks)
{
  const void *val;
  size_t len, i;
  int rc = p->api->kv_get(ctx, "ticks", 5, &val, &len);
  *ticks = 0;
  if (rc == TWIN_ERR_NOT_FOUND)
    return TWIN_OK;
  if (rc != TWIN_OK)
    return rc;
  for (i = 0; i < len && i < 18; i++) {
    char c = ((const char *)val)[i];
    if (c < '0' || c > '9')
      break;
    *ticks = *ticks * 10 + (c - '0');
  }
  return TWIN_OK;
}

static int probe_tick(void *instance, twin_ctx *ctx)
{
  probe *p = instance;
  char buf[32];
  twin_attr count;
  int64_t ticks;
  int rc;

  if (p->tick_fail) {
    p->api->set_error(ctx, "tick asked to fail");
    return TWIN_ERR_UNAVAILABLE;
  }
  if ((rc = read_ticks(p, ctx, &ticks)))
    return read_failed(p, ctx, "kv_get", rc);
  ticks++;
  fmt(buf, sizeof buf, "%" PRId64, ticks);
  if ((rc = p->api->kv_put(ctx, "ticks", 5, buf, strlen(buf))))
    return read_failed(p, ctx, "kv_put", rc);
  count.name = "count";
  count.time = p->api->now(ctx);
  count.value = twin_integer(ticks);
  if ((rc = p->api->entity_put(ctx, "Ticker", "ticker", &count, 1)))
    return read_failed(p, ctx, "entity_put", rc);
  return TWIN_OK;
}

static int probe_describe(void *instance, twin_ctx *ctx)
{
  probe *p = instance;
  int64_t ticks;
  int rc = read_ticks(p, ctx, &ticks);
  if (rc != TWIN_OK)
    return read_failed(p, ctx, "kv_get", rc);
  return respond_json(p, ctx,
                      json_pack("{s:b,s:I,s:s}", "probe", 1, "ticks",
                                (json_int_t)ticks, "greeting", p->greeting));
}

static const twin_plugin probe_plugin = {
    .struct_size = sizeof(twin_plugin),
    .abi_major = TWIN_ABI_MAJOR,
    .abi_minor = TWIN_ABI_MINOR,
    .name = "probe",
    .version = "0.1.0",
    .use_case = "other",
    .summary = "test plugin that calls every host service on request",
    .config_schema = config_schema,
    .tick_interval_s = 1,
    .open = probe_open,
    .close = probe_close,
    .ingest = probe_ingest,
    .query = probe_query,
    .simulate = probe_simulate,
    .tick = probe_tick,
    .describe = probe_describe,
};

TWIN_PLUGIN_DEFINE(probe_plugin)
