/*
 * script_twin.c — the `twin` module a town's rules see: reads of any
 * plugin of the town, writes of the rules' own entities, documents handed
 * to plugins (twin.ingest), events, queries, logs, time; and the hook
 * registration that runs while the files load.
 */
#include "script_int.h"

/* ------------------------------------------------------------------------ */
/* The twin module                                                          */
/* ------------------------------------------------------------------------ */

static twin_ctx *need_ctx(lua_State *L, const char *fn)
{
  rt *r = rt_of(L);
  if (!r->ctx || !r->h || *call_gen(L) != r->gen)
    luaL_error(L, "twin.%s is only available inside a hook", fn);
  /* A host call may come back into these rules (a plugin's call_script):
   * the nested call then runs on this thread, not on the main one. */
  r->nest_L = L;
  return r->ctx;
}

/* A string argument that is a name or a text: Lua strings may hold NUL
 * bytes, which C would cut the name short at ("x\0victim" would write
 * entity "x"), so they are refused. */
static const char *check_text(lua_State *L, int arg, const char *fn)
{
  size_t n;
  const char *s = luaL_checklstring(L, arg, &n);
  if (strlen(s) != n)
    luaL_error(L,
               "twin.%s: argument %d holds a NUL byte (names and texts are "
               "UTF-8 without control characters)",
               fn, arg);
  return s;
}

static const char *opt_text(lua_State *L, int arg, const char *fn)
{
  return lua_isnoneornil(L, arg) ? NULL : check_text(L, arg, fn);
}

/* The string at idx (a table key or value) without NUL bytes, or an
 * error naming what in fn. */
static const char *text_at(lua_State *L, int idx, const char *fn,
                           const char *what)
{
  size_t n;
  const char *s = lua_tolstring(L, idx, &n);
  if (s && strlen(s) != n)
    luaL_error(L, "twin.%s: %s holds a NUL byte", fn, what);
  return s;
}

/* The namespace a call names: an enabled plugin of the town, or "rules"
 * (when rules_ok). The returned pointer outlives the call. */
static const char *allowed_plugin(rt *r, const char *name, int rules_ok)
{
  if (rules_ok && !strcmp(name, "rules"))
    return "rules";
  for (size_t i = 0; i < r->town->n_plugins; i++)
    if (r->town->plugins[i].enabled && !strcmp(r->town->plugins[i].name, name))
      return r->town->plugins[i].name;
  return NULL;
}

/* A copy of the current context working in plugin arg's namespace. */
static void ns_ctx(lua_State *L, const char *fn, int arg, int rules_ok,
                   twin_ctx *sub)
{
  twin_ctx *ctx = need_ctx(L, fn);
  rt *r = rt_of(L);
  const char *name = check_text(L, arg, fn);
  const char *p = allowed_plugin(r, name, rules_ok);
  if (!p) {
    char list[400];
    size_t n = 0;
    list[0] = 0;
    if (rules_ok)
      n += (size_t)snprintf(list, sizeof list, "rules");
    for (size_t i = 0; i < r->town->n_plugins && n < sizeof list; i++)
      if (r->town->plugins[i].enabled)
        n += (size_t)snprintf(list + n, sizeof list - n, "%s%s", n ? ", " : "",
                              r->town->plugins[i].name);
    luaL_error(L,
               "twin.%s: '%s' is not a plugin enabled for town '%s' (use one "
               "of: %s)",
               fn, name, r->town->id, n ? list : "none");
  }
  *sub = *ctx;
  sub->plugin = p;
  sub->error[0] = 0;
  sub->detail[0] = 0;
}

static int host_failed(lua_State *L, const char *fn, const twin_ctx *sub,
                       int rc)
{
  rt *r = rt_of(L);
  if (rc == TWIN_ERR_TOO_BIG && r->scratch_full)
    return luaL_error(L,
                      "twin.%s: the result is larger than the town's memory "
                      "cap (%s); ask for less",
                      fn, r->cap_text);
  char why[1100];
  return luaL_error(L, "twin.%s: %s", fn,
                    core_ctx_reason(sub, rc, why, sizeof why));
}

/* Rules write only their own entities (plugin "rules"): a plugin's data
 * changes through a document it checks itself (twin.ingest). */
static void own_only(lua_State *L, const char *fn, const twin_ctx *sub)
{
  if (strcmp(sub->plugin, "rules"))
    luaL_error(L,
               "twin.%s: rules write only their own entities (plugin "
               "\"rules\"); to change %s's data, hand it a document with "
               "twin.ingest(\"%s\", doc) so its checks apply",
               fn, sub->plugin, sub->plugin);
}

static int l_get(lua_State *L)
{
  rt *r = rt_of(L);
  twin_ctx sub;
  ns_ctx(L, "get", 1, 1, &sub);
  const char *type = check_text(L, 2, "get"), *id = check_text(L, 3, "get");
  const char *attr = check_text(L, 4, "get");
  twin_attr out;
  memset(&out, 0, sizeof out);
  int rc = r->h->api.entity_get(&sub, type, id, attr, &out);
  if (rc == TWIN_ERR_NOT_FOUND) {
    lua_pushnil(L);
    return 1;
  }
  if (rc)
    return host_failed(L, "get", &sub, rc);
  scr_push_value(L, &out.value);
  lua_pushinteger(L, out.time);
  return 2;
}

static int l_entity(lua_State *L)
{
  rt *r = rt_of(L);
  twin_ctx sub;
  ns_ctx(L, "entity", 1, 1, &sub);
  const char *type = check_text(L, 2, "entity"),
             *id = check_text(L, 3, "entity");
  scr_scratch_reset(r);
  int rc = r->h->api.entity_attrs(&sub, type, id, scr_collect_attr, r);
  if (rc == TWIN_ERR_NOT_FOUND) {
    lua_pushnil(L);
    return 1;
  }
  if (rc)
    return host_failed(L, "entity", &sub, rc);
  lua_createtable(L, 0, (int)r->n_items);
  for (size_t i = 0; i < r->n_items; i++) {
    const item *it = &r->items[i];
    lua_pushlstring(L, r->arena + it->a_off, it->a_len);
    scr_push_item_value(L, r, it);
    lua_rawset(L, -3);
  }
  scr_scratch_done(r);
  return 1;
}

static int l_entities(lua_State *L)
{
  rt *r = rt_of(L);
  twin_ctx sub;
  ns_ctx(L, "entities", 1, 1, &sub);
  const char *type = opt_text(L, 2, "entities");
  scr_scratch_reset(r);
  int rc = r->h->api.entity_iterate(&sub, type, scr_collect_entity, r);
  if (rc)
    return host_failed(L, "entities", &sub, rc);
  lua_createtable(L, (int)r->n_items, 0);
  for (size_t i = 0; i < r->n_items; i++) {
    const item *it = &r->items[i];
    lua_createtable(L, 0, 2);
    lua_pushlstring(L, r->arena + it->a_off, it->a_len);
    lua_setfield(L, -2, "type");
    lua_pushlstring(L, r->arena + it->b_off, it->b_len);
    lua_setfield(L, -2, "id");
    lua_rawseti(L, -2, (lua_Integer)i + 1);
  }
  scr_scratch_done(r);
  return 1;
}

static int l_history(lua_State *L)
{
  rt *r = rt_of(L);
  twin_ctx sub;
  ns_ctx(L, "history", 1, 1, &sub);
  const char *type = check_text(L, 2, "history"),
             *id = check_text(L, 3, "history");
  const char *attr = check_text(L, 4, "history");
  lua_Integer from = luaL_checkinteger(L, 5), to = luaL_checkinteger(L, 6);
  lua_Integer limit = luaL_optinteger(L, 7, 0);
  luaL_argcheck(L, limit >= 0, 7, "limit must not be negative");
  scr_scratch_reset(r);
  int rc = r->h->api.history_range(&sub, type, id, attr, from, to,
                                   (size_t)limit, scr_collect_attr, r);
  if (rc)
    return host_failed(L, "history", &sub, rc);
  lua_createtable(L, (int)r->n_items, 0);
  for (size_t i = 0; i < r->n_items; i++) {
    const item *it = &r->items[i];
    lua_createtable(L, 0, 2);
    lua_pushinteger(L, it->time);
    lua_setfield(L, -2, "time");
    scr_push_item_value(L, r, it);
    lua_setfield(L, -2, "value");
    lua_rawseti(L, -2, (lua_Integer)i + 1);
  }
  scr_scratch_done(r);
  return 1;
}

static int l_put(lua_State *L)
{
  rt *r = rt_of(L);
  twin_ctx sub;
  ns_ctx(L, "put", 1, 1, &sub);
  own_only(L, "put", &sub);
  const char *type = check_text(L, 2, "put"), *id = check_text(L, 3, "put");
  luaL_checktype(L, 4, LUA_TTABLE);
  twin_time t = luaL_opt(L, luaL_checkinteger, 5, r->h->api.now(&sub));
  size_t n = 0;
  lua_pushnil(L);
  while (lua_next(L, 4)) {
    if (lua_type(L, -2) != LUA_TSTRING)
      return luaL_error(L, "twin.put: attribute names must be strings, got %s",
                        luaL_typename(L, -2));
    if (n == r->cap_attrs) {
      size_t cap = r->cap_attrs ? r->cap_attrs * 2 : 16;
      twin_attr *a = realloc(r->attrs, cap * sizeof *a);
      if (!a)
        return luaL_error(L, "twin.put: out of memory");
      r->attrs = a;
      r->cap_attrs = cap;
    }
    const char *why = NULL;
    twin_attr *a = &r->attrs[n++];
    a->name = text_at(L, -2, "put", "an attribute name");
    a->time = t;
    if (!scr_to_value(L, -1, &a->value, &why))
      return luaL_error(L, "twin.put: attribute '%s': %s", a->name, why);
    lua_pop(L, 1);
  }
  int rc = r->h->api.entity_put(&sub, type, id, r->attrs, n);
  if (rc)
    return host_failed(L, "put", &sub, rc);
  return 0;
}

static int l_observe(lua_State *L)
{
  rt *r = rt_of(L);
  twin_ctx sub;
  ns_ctx(L, "observe", 1, 1, &sub);
  own_only(L, "observe", &sub);
  const char *type = check_text(L, 2, "observe"),
             *id = check_text(L, 3, "observe");
  twin_attr a;
  a.name = check_text(L, 4, "observe");
  luaL_checkany(L, 5);
  a.time = luaL_opt(L, luaL_checkinteger, 6, r->h->api.now(&sub));
  const char *why = NULL;
  if (!scr_to_value(L, 5, &a.value, &why))
    return luaL_error(L, "twin.observe: value: %s", why);
  int rc = r->h->api.obs_append(&sub, type, id, &a, 1);
  if (rc)
    return host_failed(L, "observe", &sub, rc);
  return 0;
}

static int parse_level(const char *s, twin_level *out)
{
  static const char *const names[] = {"debug", "info", "warning", "error"};
  for (int i = 0; i < 4; i++)
    if (!strcmp(s, names[i])) {
      *out = (twin_level)i;
      return 1;
    }
  return 0;
}

uint64_t scr_fnv1a(const char *s, size_t n)
{
  uint64_t h = 1469598103934665603ull;
  for (size_t i = 0; i < n; i++) {
    h ^= (unsigned char)s[i];
    h *= 1099511628211ull;
  }
  return h;
}

typedef struct nth_event {
  size_t want, at;
  uint64_t hash;
  int found;
} nth_event;

static int find_event(void *ud, const char *town, const char *json, size_t len)
{
  (void)town;
  nth_event *e = ud;
  if (e->at++ == e->want) {
    e->hash = scr_fnv1a(json, len);
    e->found = 1;
    return 1;
  }
  return 0;
}

/* Remember an event an on_event hook emitted, so that it does not trigger
 * on_event hooks when the host hands it back. */
static void remember_emitted(rt *r, core_overlay *ov, size_t index)
{
  nth_event e = {index, 0, 0, 0};
  core_overlay_each_event(ov, find_event, &e);
  if (!e.found)
    return;
  if (r->n_emitted == EMITTED_MAX) {
    memmove(r->emitted, r->emitted + 1,
            (EMITTED_MAX - 1) * sizeof r->emitted[0]);
    r->n_emitted--;
  }
  r->emitted[r->n_emitted++] = e.hash;
}

static const char *opt_field(lua_State *L, int t, const char *key,
                             const char *fn)
{
  lua_getfield(L, t, key);
  if (lua_isnil(L, -1)) {
    lua_pop(L, 1);
    return NULL;
  }
  if (lua_type(L, -1) != LUA_TSTRING)
    luaL_error(L, "twin.%s: '%s' must be a string, got %s", fn, key,
               luaL_typename(L, -1));
  char what[80];
  snprintf(what, sizeof what, "'%s'", key);
  const char *s = text_at(L, -1, fn, what);
  lua_pop(L, 1); /* the table keeps the string alive */
  return s;
}

static int l_emit(lua_State *L)
{
  rt *r = rt_of(L);
  twin_ctx *ctx = need_ctx(L, "emit");
  luaL_checktype(L, 1, LUA_TTABLE);
  const char *level = opt_field(L, 1, "level", "emit");
  const char *message = opt_field(L, 1, "message", "emit");
  const char *type = opt_field(L, 1, "type", "emit");
  const char *id = opt_field(L, 1, "id", "emit");
  twin_level lv;
  if (!level || !parse_level(level, &lv) ||
      (lv != TWIN_LEVEL_INFO && lv != TWIN_LEVEL_WARNING &&
       lv != TWIN_LEVEL_ERROR))
    return luaL_error(L, "twin.emit: level must be \"info\", \"warning\" or "
                         "\"error\"");
  if (!message || !*message)
    return luaL_error(L, "twin.emit: message must be a non-empty string");
  lua_getfield(L, 1, "data");
  int data_idx = lua_gettop(L);
  json_t *data = NULL;
  if (!lua_isnil(L, data_idx)) {
    char why[200];
    const void *path[JSON_DEPTH];
    if (lua_type(L, data_idx) != LUA_TTABLE)
      return luaL_error(L, "twin.emit: data must be a table");
    data = scr_to_json(L, data_idx, 0, path, why, sizeof why);
    if (!data)
      return luaL_error(L, "twin.emit: data: %s", why);
  }
  char *text = data ? json_dumps(data, JSON_COMPACT) : NULL;
  json_decref(data);
  if (data && !text)
    return luaL_error(L, "twin.emit: out of memory");
  twin_ctx sub = *ctx;
  sub.plugin = "rules";
  sub.error[0] = 0;
  sub.detail[0] = 0;
  size_t before = ctx->view.ov ? core_overlay_events(ctx->view.ov) : 0;
  int rc = r->h->api.emit(&sub, lv, type, id, message, text,
                          text ? strlen(text) : 0);
  free(text);
  if (rc)
    return host_failed(L, "emit", &sub, rc);
  if (r->in_event && ctx->view.ov)
    remember_emitted(r, ctx->view.ov, before);
  return 0;
}

static int l_query(lua_State *L)
{
  rt *r = rt_of(L);
  twin_ctx sub;
  ns_ctx(L, "query", 1, 0, &sub);
  luaL_checkany(L, 2);
  char why[200];
  const void *path[JSON_DEPTH];
  json_t *req = scr_to_json(L, 2, 0, path, why, sizeof why);
  if (!req)
    return luaL_error(L, "twin.query: request: %s", why);
  char *text = json_dumps(req, JSON_COMPACT | JSON_ENCODE_ANY);
  json_decref(req);
  if (!text)
    return luaL_error(L, "twin.query: out of memory");
  /* The plugin may call back into this town's rules (call_script): that
   * nested call runs on this thread. */
  lua_State *prev = r->nest_L;
  r->nest_L = L;
  scr_scratch_reset(r);
  int rc = r->h->api.query_plugin(&sub, sub.plugin, text, strlen(text),
                                  scr_collect_text, r);
  r->nest_L = prev;
  free(text);
  if (rc)
    return host_failed(L, "query", &sub, rc);
  scr_push_json_text(L, "query", r->arena, r->arena_len);
  scr_scratch_done(r);
  return 1;
}

/*
 * twin.ingest(plugin, doc): hand one of the town's plugins a document (a
 * table, as JSON, or JSON text) in the rule's own transaction, as if it had
 * been posted: the plugin checks it. Returns true (and the number of items
 * it refused), or false and the plugin's reason; a refused document leaves
 * nothing (its writes are rolled back, the rule's stay). Its observations
 * do not run the town's hooks again.
 */
static int l_ingest(lua_State *L)
{
  rt *r = rt_of(L);
  twin_ctx *ctx = need_ctx(L, "ingest");
  twin_ctx sub;
  ns_ctx(L, "ingest", 1, 0, &sub);
  if (ctx->mode == CORE_CTX_READ || !ctx->view.ov)
    return luaL_error(L, "twin.ingest: only hooks may write (this is a "
                         "function a plugin called while answering a query)");
  luaL_checkany(L, 2);
  char *text;
  if (lua_type(L, 2) == LUA_TSTRING) {
    size_t n;
    const char *t = lua_tolstring(L, 2, &n);
    text = malloc(n + 1);
    if (text) {
      memcpy(text, t, n);
      text[n] = 0;
    }
  } else {
    char why[200];
    const void *path[JSON_DEPTH];
    json_t *doc = scr_to_json(L, 2, 0, path, why, sizeof why);
    if (!doc)
      return luaL_error(L, "twin.ingest: doc: %s", why);
    text = json_dumps(doc, JSON_COMPACT | JSON_ENCODE_ANY);
    json_decref(doc);
  }
  if (!text)
    return luaL_error(L, "twin.ingest: out of memory");
  core_instance *ci = core_host_instance(r->h, r->town->id, sub.plugin);
  core_err err;
  if (!ci || !core_instance_usable(r->h, ci, &err) ||
      !ci->plugin->desc.ingest) {
    free(text);
    return luaL_error(L, "twin.ingest: plugin '%s' takes no documents in %s",
                      sub.plugin, r->town->id);
  }
  core_savepoint sp;
  core_overlay_savepoint(ctx->view.ov, &sp);
  twin_ctx pc;
  core_ctx_init(&pc, r->h, ci, CORE_CTX_WRITE, ctx->view.txn, ctx->view.ov);
  core_items items = {0};
  pc.in_ingest = 1;
  pc.doc_type = "application/json";
  pc.items = &items;
  /* the plugin may call back into these rules (call_script) */
  lua_State *prev = r->nest_L;
  r->nest_L = L;
  core_call_mark mark;
  core_call_enter(&mark, r->town->id, ci->plugin->desc.name, "ingest");
  int rc = ci->plugin->desc.ingest(ci->inst, &pc, text, strlen(text));
  core_call_leave(&mark);
  r->nest_L = prev;
  free(text);
  size_t refused = items.total;
  core_items_free(&items);
  if (rc) {
    char why[1100];
    core_ctx_reason(&pc, rc, why, sizeof why);
    core_ctx_done(&pc);
    core_overlay_rollback(ctx->view.ov, &sp);
    lua_pushboolean(L, 0);
    lua_pushstring(L, why);
    return 2;
  }
  core_ctx_done(&pc);
  core_overlay_release(ctx->view.ov, &sp);
  lua_pushboolean(L, 1);
  lua_pushinteger(L, (lua_Integer)refused);
  return 2;
}

static int l_log(lua_State *L)
{
  rt *r = rt_of(L);
  twin_ctx *ctx = need_ctx(L, "log");
  const char *level = check_text(L, 1, "log");
  const char *msg = check_text(L, 2, "log");
  twin_level lv;
  if (!parse_level(level, &lv))
    return luaL_error(L, "twin.log: level must be \"debug\", \"info\", "
                         "\"warning\" or \"error\"");
  twin_ctx sub = *ctx;
  sub.plugin = "rules";
  r->h->api.log(&sub, lv, msg);
  return 0;
}

static int l_now(lua_State *L)
{
  rt *r = rt_of(L);
  twin_ctx *ctx = need_ctx(L, "now");
  lua_pushinteger(L, r->h->api.now(ctx));
  return 1;
}

static int l_town(lua_State *L)
{
  rt *r = rt_of(L);
  lua_createtable(L, 0, 3);
  lua_pushstring(L, r->town->id);
  lua_setfield(L, -2, "id");
  lua_pushstring(L, r->town->name);
  lua_setfield(L, -2, "name");
  lua_pushstring(L, r->town->timezone);
  lua_setfield(L, -2, "timezone");
  return 1;
}

static void set_int(lua_State *L, const char *k, lua_Integer v)
{
  lua_pushinteger(L, v);
  lua_setfield(L, -2, k);
}

static int l_localtime(lua_State *L)
{
  rt *r = rt_of(L);
  twin_time ms;
  if (lua_isnoneornil(L, 1))
    ms = r->ctx && r->h ? r->h->api.now(r->ctx) : core_now_ms();
  else
    ms = luaL_checkinteger(L, 1);
  struct tm tm;
  if (!scr_tz_local(r->town->timezone, ms, &tm))
    return luaL_error(L, "twin.localtime: time out of range");
  lua_createtable(L, 0, 9);
  set_int(L, "year", tm.tm_year + 1900);
  set_int(L, "month", tm.tm_mon + 1);
  set_int(L, "day", tm.tm_mday);
  set_int(L, "hour", tm.tm_hour);
  set_int(L, "min", tm.tm_min);
  set_int(L, "sec", tm.tm_sec);
  set_int(L, "wday", tm.tm_wday + 1);
  set_int(L, "yday", tm.tm_yday + 1);
  lua_pushboolean(L, tm.tm_isdst > 0);
  lua_setfield(L, -2, "isdst");
  return 1;
}

static int time_field(lua_State *L, const char *k, int def, int lo, int hi)
{
  int t = lua_getfield(L, 1, k);
  if (t == LUA_TNIL) {
    lua_pop(L, 1);
    if (def < 0)
      return luaL_error(L, "twin.time: field '%s' is required", k);
    return def;
  }
  int isnum;
  lua_Integer v = lua_tointegerx(L, -1, &isnum);
  if (!isnum || v < lo || v > hi)
    return luaL_error(L, "twin.time: field '%s' must be an integer %d..%d", k,
                      lo, hi);
  lua_pop(L, 1);
  return (int)v;
}

static int l_time(lua_State *L)
{
  rt *r = rt_of(L);
  luaL_checktype(L, 1, LUA_TTABLE);
  struct tm tm = {0};
  tm.tm_year = time_field(L, "year", -1, 1, 9999) - 1900;
  tm.tm_mon = time_field(L, "month", -1, 1, 12) - 1;
  tm.tm_mday = time_field(L, "day", -1, 1, 31);
  tm.tm_hour = time_field(L, "hour", 0, 0, 23);
  tm.tm_min = time_field(L, "min", 0, 0, 59);
  tm.tm_sec = time_field(L, "sec", 0, 0, 60);
  tm.tm_isdst = -1;
  twin_time ms;
  if (!scr_tz_mktime(r->town->timezone, &tm, &ms))
    return luaL_error(L, "twin.time: the date cannot be represented");
  lua_pushinteger(L, ms);
  return 1;
}

/* ---- hook registration (load time only) ---------------------------------- */

void scr_hook_free(hook *hk)
{
  free(hk->name);
  free(hk->source);
  free(hk->plugin);
  free(hk->type);
  free(hk->id);
  free(hk->attr);
  free(hk->level);
}

static char *dup_opt(const char *s, int *fail)
{
  if (!s)
    return NULL;
  char *d = strdup(s);
  if (!d)
    *fail = 1;
  return d;
}

/* Add a hook for the function at stack index fn; strings are copied. */
static void add_hook(lua_State *L, int kind, int fn, const char *name,
                     const char *const filt[5], int minutes, int hh, int mm)
{
  rt *r = rt_of(L);
  lua_Debug ar;
  char source[LUA_IDSIZE + 32] = "?";
  if (lua_getstack(L, 1, &ar) && lua_getinfo(L, "Sl", &ar)) {
    const char *src = ar.source[0] == '@' ? ar.source + 1 : ar.short_src;
    const char *base = strrchr(src, '/');
    snprintf(source, sizeof source, "%.*s:%d", LUA_IDSIZE,
             base ? base + 1 : src, ar.currentline);
  }
  if (r->n_hooks == r->cap_hooks) {
    size_t cap = r->cap_hooks ? r->cap_hooks * 2 : 8;
    hook *h = realloc(r->hooks, cap * sizeof *h);
    if (!h)
      luaL_error(L, "twin.%s: out of memory", scr_kind_names[kind]);
    r->hooks = h;
    r->cap_hooks = cap;
  }
  lua_pushvalue(L, fn);
  int ref = luaL_ref(L, LUA_REGISTRYINDEX);
  hook *hk = &r->hooks[r->n_hooks];
  memset(hk, 0, sizeof *hk);
  hk->kind = kind;
  hk->ref = ref;
  hk->minutes = minutes;
  hk->hh = hh;
  hk->mm = mm;
  int fail = 0;
  char defname[LUA_IDSIZE + 80];
  snprintf(defname, sizeof defname, "%s#%zu (%s)", scr_kind_names[kind],
           r->n_hooks + 1, source);
  hk->name = dup_opt(name ? name : defname, &fail);
  hk->source = dup_opt(source, &fail);
  hk->plugin = dup_opt(filt[0], &fail);
  hk->type = dup_opt(filt[1], &fail);
  hk->id = dup_opt(filt[2], &fail);
  hk->attr = dup_opt(filt[3], &fail);
  hk->level = dup_opt(filt[4], &fail);
  if (fail) {
    scr_hook_free(hk);
    luaL_unref(L, LUA_REGISTRYINDEX, ref);
    luaL_error(L, "twin.%s: out of memory", scr_kind_names[kind]);
  }
  twin_time now = core_now_ms();
  if (kind == HK_EVERY)
    hk->next_due = scr_next_every(now, minutes);
  else if (kind == HK_DAILY)
    hk->next_due = scr_next_daily(r->town->timezone, hh, mm, now, INT64_MIN);
  r->n_hooks++;
  if (kind == HK_OBS)
    r->n_obs++;
  else if (kind == HK_EVENT)
    r->n_event++;
  else
    r->n_sched++;
}

static void need_loading(lua_State *L, const char *fn)
{
  rt *r = rt_of(L);
  if (!r->loading || r->ctx)
    luaL_error(L,
               "twin.%s registers a hook: call it while the scripts load, "
               "not inside a hook",
               fn);
}

/* Read a filter table: only the known keys, each a string. */
static void read_filter(lua_State *L, const char *fn, const char *const *keys,
                        size_t nkeys, const char **vals)
{
  luaL_checktype(L, 1, LUA_TTABLE);
  lua_pushnil(L);
  while (lua_next(L, 1)) {
    size_t i = nkeys;
    if (lua_type(L, -2) == LUA_TSTRING)
      for (i = 0; i < nkeys; i++)
        if (!strcmp(lua_tostring(L, -2), keys[i]))
          break;
    if (i == nkeys) {
      char list[200];
      core_join_names(keys, nkeys, list, sizeof list);
      luaL_error(L, "twin.%s: unknown filter key '%s' (known: %s)", fn,
                 lua_type(L, -2) == LUA_TSTRING ? lua_tostring(L, -2) : "?",
                 list);
    }
    if (lua_type(L, -1) != LUA_TSTRING)
      luaL_error(L, "twin.%s: filter '%s' must be a string, got %s", fn,
                 keys[i], luaL_typename(L, -1));
    vals[i] = text_at(L, -1, fn, keys[i]);
    lua_pop(L, 1);
  }
}

static int l_on_observation(lua_State *L)
{
  need_loading(L, "on_observation");
  static const char *const keys[] = {"plugin", "type", "id", "attr", "name"};
  const char *v[5] = {0};
  read_filter(L, "on_observation", keys, 5, v);
  luaL_checktype(L, 2, LUA_TFUNCTION);
  const char *filt[5] = {v[0], v[1], v[2], v[3], NULL};
  add_hook(L, HK_OBS, 2, v[4], filt, 0, 0, 0);
  return 0;
}

static int l_on_event(lua_State *L)
{
  need_loading(L, "on_event");
  static const char *const keys[] = {"plugin", "level", "type", "id", "name"};
  const char *v[5] = {0};
  read_filter(L, "on_event", keys, 5, v);
  luaL_checktype(L, 2, LUA_TFUNCTION);
  twin_level lv;
  if (v[1] && !parse_level(v[1], &lv))
    return luaL_error(L, "twin.on_event: level must be \"debug\", \"info\", "
                         "\"warning\" or \"error\"");
  const char *filt[5] = {v[0], v[2], v[3], NULL, v[1]};
  add_hook(L, HK_EVENT, 2, v[4], filt, 0, 0, 0);
  return 0;
}

static int l_every(lua_State *L)
{
  need_loading(L, "every");
  int isnum;
  lua_Integer m = lua_tointegerx(L, 1, &isnum);
  if (!isnum || m < 1 || m > 1440)
    return luaL_error(L, "twin.every: minutes must be an integer 1..1440");
  luaL_checktype(L, 2, LUA_TFUNCTION);
  const char *name = opt_text(L, 3, "every");
  const char *filt[5] = {0};
  add_hook(L, HK_EVERY, 2, name, filt, (int)m, 0, 0);
  return 0;
}

static int l_daily(lua_State *L)
{
  need_loading(L, "daily");
  size_t n;
  const char *at = luaL_checklstring(L, 1, &n);
  int ok = n == 5 && at[2] == ':';
  for (int i = 0; ok && i < 5; i++)
    if (i != 2 && (at[i] < '0' || at[i] > '9'))
      ok = 0;
  int hh = ok ? (at[0] - '0') * 10 + (at[1] - '0') : 0;
  int mm = ok ? (at[3] - '0') * 10 + (at[4] - '0') : 0;
  if (!ok || hh > 23 || mm > 59)
    return luaL_error(L,
                      "twin.daily: time must be \"HH:MM\" (00:00..23:59), "
                      "got \"%s\"",
                      at);
  luaL_checktype(L, 2, LUA_TFUNCTION);
  const char *name = opt_text(L, 3, "daily");
  const char *filt[5] = {0};
  add_hook(L, HK_DAILY, 2, name, filt, 0, hh, mm);
  return 0;
}

static const luaL_Reg twin_funcs[] = {
    {"on_observation", l_on_observation},
    {"every", l_every},
    {"daily", l_daily},
    {"on_event", l_on_event},
    {"get", l_get},
    {"entity", l_entity},
    {"entities", l_entities},
    {"put", l_put},
    {"observe", l_observe},
    {"ingest", l_ingest},
    {"history", l_history},
    {"emit", l_emit},
    {"query", l_query},
    {"log", l_log},
    {"now", l_now},
    {"town", l_town},
    {"localtime", l_localtime},
    {"time", l_time},
    {NULL, NULL},
};

void scr_push_twin_module(lua_State *L)
{
  luaL_newlib(L, twin_funcs);
}
