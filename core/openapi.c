/*
 * openapi.c — GET /v1/openapi.json (see openapi.h): the embedded document
 * of the host's routes, with every loaded plugin's declared ops added as
 * paths of their own.
 */
#include "openapi.h"

#include <stdio.h>
#include <string.h>

/* docs/openapi.json, embedded by core/embed.cmake */
extern const unsigned char core_openapi_doc[];
extern const size_t core_openapi_doc_len;

json_t *core_openapi_base(void)
{
  return json_loadb((const char *)core_openapi_doc, core_openapi_doc_len, 0,
                    NULL);
}

static json_t *ref(const char *what)
{
  char buf[128];
  snprintf(buf, sizeof buf, "#/components/%s", what);
  return json_pack("{s:s}", "$ref", buf);
}

/* Our schema subset is JSON Schema; OpenAPI 3.0 takes it as it is, but a
 * date-time without a type (a string or integer ms) is written out as a
 * oneOf, at any depth. s is changed in place. */
static void openapi_node(json_t *s)
{
  if (!json_is_object(s))
    return;
  if (!json_object_get(s, "type") && json_object_get(s, "format")) {
    json_object_del(s, "format");
    json_object_set_new(
        s, "oneOf",
        json_pack("[{s:s,s:s},{s:s,s:s}]", "type", "string", "format",
                  "date-time", "type", "integer", "description",
                  "milliseconds since 1970-01-01T00:00:00Z"));
  }
  const char *k;
  json_t *ps;
  json_object_foreach(json_object_get(s, "properties"), k, ps)
  openapi_node(ps);
  openapi_node(json_object_get(s, "items"));
}

static json_t *schema_for_openapi(const json_t *s)
{
  json_t *c = s ? json_deep_copy(s) : json_pack("{s:s}", "type", "object");
  openapi_node(c);
  return c;
}

/* The URL parameters of a safe op: one per scalar property (arrays as
 * repeated parameters). */
static void add_query_params(json_t *params, const json_t *schema)
{
  json_t *props = json_object_get(schema, "properties");
  json_t *req = json_object_get(schema, "required");
  const char *k;
  json_t *ps;
  json_object_foreach(props, k, ps)
  {
    const char *t = json_string_value(json_object_get(ps, "type"));
    if (t && !strcmp(t, "object"))
      continue;
    int required = 0;
    for (size_t i = 0; i < json_array_size(req); i++)
      required |= !strcmp(json_string_value(json_array_get(req, i)), k);
    json_t *p = json_pack("{s:s,s:s,s:b,s:o}", "name", k, "in", "query",
                          "required", required, "schema",
                          schema_for_openapi(ps));
    const char *d = json_string_value(json_object_get(ps, "description"));
    if (p && d)
      json_object_set_new(p, "description", json_string(d));
    if (p && t && !strcmp(t, "array"))
      json_object_set_new(p, "explode", json_true());
    json_array_append_new(params, p);
  }
}

static json_t *responses(const core_op *o)
{
  json_t *content = json_object();
  const char *t = o->reply;
  while (*t) { /* the list was checked at load */
    while (*t == ' ' || *t == ',')
      t++;
    size_t n = strcspn(t, ", ");
    if (n) {
      char type[128];
      snprintf(type, sizeof type, "%.*s", (int)n, t);
      json_object_set_new(content, type, json_object());
    }
    t += n;
  }
  return json_pack(
      "{s:{s:s,s:o},s:o,s:o,s:o,s:o,s:o,s:{s:s},s:o}", "200", "description",
      "The plugin's reply, in the op's media type.", "content", content, "400",
      ref("responses/BadRequest"), "401", ref("responses/Unauthorized"), "403",
      ref("responses/Forbidden"), "404", ref("responses/NotFound"), "503",
      ref("responses/Unavailable"), "504", "description",
      "The op ran past the town's deadline (deadline_exceeded).", "default",
      ref("responses/Error"));
}

static json_t *operation(const core_plugin *p, const core_op *o, int get)
{
  const char *kind = o->op.kind == TWIN_OP_SCENARIO ? "scenario" : "query";
  char id[160];
  snprintf(id, sizeof id, "%s_%s_%s%s", p->desc.name, kind, o->op.name,
           get ? "_get" : "");
  for (char *c = id; *c; c++)
    if (*c == '-')
      *c = '_';
  json_t *params = json_array();
  json_array_append_new(params, ref("parameters/town"));
  json_t *op = json_pack(
      "{s:s,s:s,s:s,s:s,s:[s],s:[{s:[]},{}],s:o,s:o}", "operationId", id,
      "summary", o->op.summary, "description",
      o->op.kind == TWIN_OP_SCENARIO
          ? "A what-if scenario of the plugin, declared by it: it runs on a "
            "snapshot and changes nothing."
          : "A query the plugin declared. Reads only.",
      "x-twinhost-scope", "read", "tags", "plugins", "security", "bearerAuth",
      "parameters", params, "responses", responses(o));
  if (!op)
    return NULL;
  if (get) {
    add_query_params(params, o->schema);
  } else {
    json_t *media = json_pack("{s:o}", "schema", schema_for_openapi(o->schema));
    json_t *ex = o->op.example ? json_loads(o->op.example, 0, NULL) : NULL;
    if (media && ex)
      json_object_set_new(media, "example", ex);
    else
      json_decref(ex);
    json_object_set_new(
        op, "requestBody",
        json_pack("{s:b,s:{s:o}}", "required", 0, "content",
                  "application/json", media));
  }
  return op;
}

json_t *core_openapi(core_host *h)
{
  json_t *doc = core_openapi_base();
  json_t *paths = json_object_get(doc, "paths");
  if (!paths) {
    json_decref(doc);
    return NULL;
  }
  for (size_t i = 0; i < h->n_plugins; i++) {
    const core_plugin *p = &h->plugins[i];
    for (size_t k = 0; k < p->n_ops; k++) {
      const core_op *o = &p->ops[k];
      char path[200];
      snprintf(path, sizeof path, "/v1/towns/{town}/plugins/%s/%s/%s",
               p->desc.name,
               o->op.kind == TWIN_OP_SCENARIO ? "scenario" : "query",
               o->op.name);
      json_t *item = json_object();
      json_object_set_new(item, "post", operation(p, o, 0));
      if (o->op.flags & TWIN_OP_SAFE)
        json_object_set_new(item, "get", operation(p, o, 1));
      json_object_set_new(paths, path, item);
    }
  }
  return doc;
}
