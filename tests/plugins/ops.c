/*
 * ops.c — fixture "ops": a plugin of ABI 1.2 that declares its operations
 * and media types, for the tests of what the host does with them.
 *
 *   query echo     (safe) replies {"got": <the request it received>} and
 *                  counts itself, so a test sees defaults filled, "op" set,
 *                  and that a request the host refused never arrived
 *   query calls    (safe) {"echo": N}: how many echo requests arrived
 *   query calendar (safe) a text/calendar reply (JSON with as=json; as=csv
 *                  tries a type the op does not declare)
 *   query last     (safe) the last CSV document and its type, in hex
 *   query spin     polls check_deadline until the deadline passes
 *   query town     what api->town says
 *   scenario mark  writes an entity in the overlay and reports it
 *
 * ingest takes JSON and text/csv. A CSV document is stored as it came
 * (kv "last" with its type in kv "last_type"). A JSON document
 * {"items": [{"id", "value"}...]} stores each item as entity Item/<id>,
 * refusing (refuse_item) those with a negative value; every item refused
 * fails the document.
 */
#define _POSIX_C_SOURCE 200809L
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <jansson.h>

#include "twin/twin.h"

typedef struct opsi {
  const twin_host_api *api;
  atomic_long echo_calls;
} opsi;

static const char echo_schema[] =
    "{\"type\":\"object\",\"additionalProperties\":false,"
    "\"required\":[\"from\"],\"properties\":{"
    "\"from\":{\"format\":\"date-time\"},"
    "\"n\":{\"type\":\"integer\",\"minimum\":1,\"maximum\":10,\"default\":3},"
    "\"ratio\":{\"type\":\"number\",\"minimum\":0,\"maximum\":1},"
    "\"exact\":{\"type\":\"boolean\",\"default\":false},"
    "\"tags\":{\"type\":\"array\",\"items\":{\"type\":\"string\"}},"
    "\"where\":{\"type\":\"string\",\"enum\":[\"north\",\"south\"]}}}";

static const char calendar_schema[] =
    "{\"type\":\"object\",\"additionalProperties\":false,\"properties\":{"
    "\"as\":{\"type\":\"string\",\"enum\":[\"ics\",\"json\",\"csv\"],"
    "\"default\":\"ics\"}}}";

static const char mark_schema[] =
    "{\"type\":\"object\",\"additionalProperties\":false,"
    "\"required\":[\"id\"],\"properties\":{"
    "\"id\":{\"type\":\"string\",\"minLength\":1,\"maxLength\":40}}}";

static const twin_op ops[] = {
    {"echo", TWIN_OP_QUERY, TWIN_OP_SAFE, "the request as the plugin got it",
     echo_schema, NULL, "{\"from\":\"2026-12-01T00:00:00Z\",\"n\":2}"},
    {"calls", TWIN_OP_QUERY, TWIN_OP_SAFE, "how many echo requests arrived",
     NULL, NULL, "{}"},
    {"calendar", TWIN_OP_QUERY, TWIN_OP_SAFE, "a calendar feed",
     calendar_schema, "text/calendar, application/json", "{}"},
    {"spin", TWIN_OP_QUERY, 0, "runs until its deadline", NULL, NULL, NULL},
    {"town", TWIN_OP_QUERY, TWIN_OP_SAFE, "the town as api->town gives it",
     NULL, NULL, NULL},
    {"last", TWIN_OP_QUERY, TWIN_OP_SAFE,
     "the last non-JSON document ingested, in hex", NULL, NULL, NULL},
    {"mark", TWIN_OP_SCENARIO, 0, "writes one entity in the overlay",
     mark_schema, NULL, "{\"id\":\"m1\"}"},
};

static const char calendar_text[] =
    "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//twinhost//ops fixture//EN\r\n"
    "BEGIN:VEVENT\r\nUID:market-1@ops\r\nDTSTAMP:20261201T000000Z\r\n"
    "DTSTART:20261201T070000Z\r\nSUMMARY:Wochenmarkt\r\nEND:VEVENT\r\n"
    "END:VCALENDAR\r\n";

static int ops_open(const twin_host_api *api, twin_ctx *ctx, const char *cfg,
                    size_t len, void **out)
{
  (void)ctx;
  (void)cfg;
  (void)len;
  opsi *o = calloc(1, sizeof *o);
  if (!o)
    return TWIN_ERR_NOMEM;
  o->api = api;
  atomic_init(&o->echo_calls, 0);
  *out = o;
  return TWIN_OK;
}

static void ops_close(void *inst)
{
  free(inst);
}

static int reply_json(opsi *o, twin_ctx *ctx, json_t *j)
{
  char *text = j ? json_dumps(j, JSON_COMPACT | JSON_ENCODE_ANY) : NULL;
  json_decref(j);
  if (!text)
    return TWIN_ERR_NOMEM;
  int rc = o->api->respond(ctx, text, strlen(text));
  free(text);
  return rc;
}

static int ops_query(void *inst, twin_ctx *ctx, const char *req, size_t len)
{
  opsi *o = inst;
  json_t *r = json_loadb(req, len, 0, NULL);
  const char *op = json_string_value(json_object_get(r, "op"));
  int rc = TWIN_OK;
  if (!op) {
    o->api->set_error(ctx, "the host sent no op");
    rc = TWIN_ERR_INVALID;
  } else if (!strcmp(op, "echo")) {
    atomic_fetch_add(&o->echo_calls, 1);
    rc = reply_json(o, ctx, json_pack("{s:O}", "got", r));
  } else if (!strcmp(op, "calls")) {
    rc = reply_json(
        o, ctx, json_pack("{s:I}", "echo", (json_int_t)atomic_load(&o->echo_calls)));
  } else if (!strcmp(op, "calendar")) {
    const char *as = json_string_value(json_object_get(r, "as"));
    if (as && !strcmp(as, "json"))
      rc = reply_json(o, ctx, json_pack("{s:[s]}", "events", "Wochenmarkt"));
    else if (as && !strcmp(as, "csv"))
      rc = o->api->respond_as(ctx, "text/csv", "a;b\n", 4);
    else
      rc = o->api->respond_as(ctx, "text/calendar", calendar_text,
                              strlen(calendar_text));
  } else if (!strcmp(op, "spin")) {
    /* Bounded by itself too (about 60 s) in case the deadline never comes. */
    rc = TWIN_OK;
    for (long i = 0; i < 600000; i++) {
      int64_t left;
      rc = o->api->check_deadline(ctx, &left);
      if (rc)
        break;
      struct timespec ts = {0, 100000};
      nanosleep(&ts, NULL);
    }
    if (rc)
      o->api->fail(ctx, "spun_out", NULL, "spin: stopped at the deadline");
  } else if (!strcmp(op, "last")) {
    const void *v = NULL, *t = NULL;
    size_t n = 0, tn = 0;
    rc = o->api->kv_get(ctx, "last", 4, &v, &n);
    if (!rc)
      rc = o->api->kv_get(ctx, "last_type", 9, &t, &tn);
    char *hex = rc ? NULL : malloc(2 * n + 1);
    if (!rc && !hex)
      rc = TWIN_ERR_NOMEM;
    for (size_t i = 0; hex && i < n; i++)
      snprintf(hex + 2 * i, 3, "%02x", ((const unsigned char *)v)[i]);
    if (hex) {
      hex[2 * n] = 0;
      rc = reply_json(o, ctx,
                      json_pack("{s:s,s:s%}", "hex", hex, "type", (const char *)t,
                                tn));
    }
    free(hex);
  } else if (!strcmp(op, "town")) {
    twin_town t;
    memset(&t, 0, sizeof t);
    t.struct_size = sizeof t;
    rc = o->api->town(ctx, &t);
    if (!rc)
      rc = reply_json(o, ctx,
                      json_pack("{s:s,s:s,s:s,s:b,s:f,s:f}", "id", t.id, "name",
                                t.name, "timezone", t.timezone, "has_location",
                                t.has_location, "lat", t.lat, "lon", t.lon));
  } else {
    o->api->fail(ctx, "no_such_op", "op", "the host sent an op not declared");
    rc = TWIN_ERR_INVALID;
  }
  json_decref(r);
  return rc;
}

static int ops_simulate(void *inst, twin_ctx *ctx, const char *sc, size_t len)
{
  opsi *o = inst;
  json_t *r = json_loadb(sc, len, 0, NULL);
  const char *id = json_string_value(json_object_get(r, "id"));
  twin_attr a = {"marked", 0, twin_bool(1)};
  int rc = id ? o->api->entity_put(ctx, "Mark", id, &a, 1) : TWIN_ERR_INVALID;
  if (!rc)
    rc = reply_json(o, ctx, json_pack("{s:s}", "marked", id));
  json_decref(r);
  return rc;
}

static int ops_ingest(void *inst, twin_ctx *ctx, const char *doc, size_t len)
{
  opsi *o = inst;
  const char *type = NULL;
  int rc = o->api->doc_type(ctx, &type);
  if (rc)
    return rc;
  if (strcmp(type, "application/json")) {
    rc = o->api->kv_put(ctx, "last", 4, doc, len);
    if (!rc)
      rc = o->api->kv_put(ctx, "last_type", 9, type, strlen(type));
    return rc;
  }
  json_error_t je;
  json_t *d = json_loadb(doc, len, 0, &je);
  json_t *items = json_object_get(d, "items");
  if (!json_is_array(items)) {
    json_decref(d);
    o->api->fail(ctx, "no_items", "items", "expected {\"items\": [...]}");
    return TWIN_ERR_PARSE;
  }
  size_t i, stored = 0;
  json_t *it;
  json_array_foreach(items, i, it)
  {
    const char *id = json_string_value(json_object_get(it, "id"));
    json_t *v = json_object_get(it, "value");
    char where[32], why[128];
    snprintf(where, sizeof where, "items[%zu]", i);
    if (!id || !json_is_integer(v)) {
      o->api->refuse_item(ctx, id ? id : where, id ? "value" : "id",
                          "malformed", "expected {\"id\": text, \"value\": n}");
      continue;
    }
    if (json_integer_value(v) < 0) {
      snprintf(why, sizeof why, "value %lld is negative",
               (long long)json_integer_value(v));
      o->api->refuse_item(ctx, id, "value", "implausible", why);
      continue;
    }
    twin_attr a = {"value", 0, twin_integer(json_integer_value(v))};
    rc = o->api->entity_put(ctx, "Item", id, &a, 1);
    if (rc)
      break;
    stored++;
  }
  json_decref(d);
  if (!rc && !stored) {
    o->api->fail(ctx, NULL, "items", "every item was refused");
    rc = TWIN_ERR_REJECTED;
  }
  return rc;
}

static const twin_plugin ops_plugin = {
    .struct_size = sizeof(twin_plugin),
    .abi_major = TWIN_ABI_MAJOR,
    .abi_minor = TWIN_ABI_MINOR,
    .name = "ops",
    .version = "1.2.0",
    .use_case = "test-fixture",
    .summary = "fixture: declared ops, media types, item outcomes",
    .open = ops_open,
    .close = ops_close,
    .ingest = ops_ingest,
    .query = ops_query,
    .simulate = ops_simulate,
    TWIN_OPS(ops),
    .ingest_types = "text/csv",
};

TWIN_PLUGIN_DEFINE(ops_plugin)
