/*
 * script_value.c — values between Lua, twin_value and JSON: what a rule
 * may store and send, converted without raising while the runtime holds
 * memory Lua does not know about.
 */
#include "script_int.h"

/* ------------------------------------------------------------------------ */
/* Values between Lua, twin_value and JSON                                  */
/* ------------------------------------------------------------------------ */

void scr_push_value(lua_State *L, const twin_value *v)
{
  switch (v->type) {
  case TWIN_VALUE_NUMBER:
    lua_pushnumber(L, v->as.number);
    break;
  case TWIN_VALUE_INT:
    lua_pushinteger(L, v->as.integer);
    break;
  case TWIN_VALUE_STRING:
    lua_pushlstring(L, v->as.string.ptr, v->as.string.len);
    break;
  case TWIN_VALUE_BOOL:
    lua_pushboolean(L, v->as.boolean);
    break;
  default:
    lua_pushnil(L);
  }
}

void scr_push_item_value(lua_State *L, rt *r, const item *it)
{
  switch (it->vtype) {
  case TWIN_VALUE_NUMBER:
    lua_pushnumber(L, it->v.number);
    break;
  case TWIN_VALUE_INT:
    lua_pushinteger(L, it->v.integer);
    break;
  case TWIN_VALUE_STRING:
    lua_pushlstring(L, r->arena + it->v.str.off, it->v.str.len);
    break;
  case TWIN_VALUE_BOOL:
    lua_pushboolean(L, it->v.boolean);
    break;
  default:
    lua_pushnil(L);
  }
}

/* The Lua value at idx as a twin_value; strings point into the Lua string
 * (alive while the value is on the stack or in a table there). 0 with why
 * set when it cannot be stored. Never raises. */
int scr_to_value(lua_State *L, int idx, twin_value *v, const char **why)
{
  memset(v, 0, sizeof *v);
  switch (lua_type(L, idx)) {
  case LUA_TNUMBER:
    if (lua_isinteger(L, idx)) {
      *v = twin_integer((int64_t)lua_tointeger(L, idx));
      return 1;
    }
    *v = twin_number((double)lua_tonumber(L, idx));
    if (!isfinite(v->as.number)) {
      *why = "a number that is not finite (nan or inf)";
      return 0;
    }
    return 1;
  case LUA_TBOOLEAN:
    *v = twin_bool(lua_toboolean(L, idx));
    return 1;
  case LUA_TSTRING: {
    size_t n;
    const char *s = lua_tolstring(L, idx, &n);
    if (!core_utf8_valid(s, n)) {
      *why = "a string that is not UTF-8 text";
      return 0;
    }
    *v = twin_string(s, n);
    return 1;
  }
  default:
    *why = "only numbers, strings and booleans can be stored";
    return 0;
  }
}

/*
 * The Lua value at idx as JSON (a new reference), or NULL with why set.
 * Tables with keys 1..n (n >= 1) become arrays, other tables objects; raw
 * access only, so no metamethod runs and nothing raises. path holds the
 * tables being converted, to name a cycle.
 */
json_t *scr_to_json(lua_State *L, int idx, int depth, const void **path,
                    char *why, size_t wn)
{
  idx = lua_absindex(L, idx);
  switch (lua_type(L, idx)) {
  case LUA_TNIL:
    return json_null();
  case LUA_TBOOLEAN:
    return json_boolean(lua_toboolean(L, idx));
  case LUA_TNUMBER:
    if (lua_isinteger(L, idx))
      return json_integer((json_int_t)lua_tointeger(L, idx));
    if (!isfinite(lua_tonumber(L, idx))) {
      snprintf(why, wn, "a number that is not finite (nan or inf)");
      return NULL;
    }
    return json_real(lua_tonumber(L, idx));
  case LUA_TSTRING: {
    size_t n;
    const char *s = lua_tolstring(L, idx, &n);
    json_t *j = json_stringn(s, n);
    if (!j)
      snprintf(why, wn, "a string that is not UTF-8 text");
    return j;
  }
  case LUA_TTABLE:
    break;
  default:
    snprintf(why, wn, "a %s cannot be converted to JSON",
             lua_typename(L, lua_type(L, idx)));
    return NULL;
  }
  const void *self = lua_topointer(L, idx);
  for (int i = 0; i < depth; i++)
    if (path[i] == self) {
      snprintf(why, wn, "a table that contains itself (a cycle)");
      return NULL;
    }
  if (depth >= JSON_DEPTH) {
    snprintf(why, wn, "tables nested deeper than %d", JSON_DEPTH);
    return NULL;
  }
  if (!lua_checkstack(L, 4)) {
    snprintf(why, wn, "out of Lua stack");
    return NULL;
  }
  path[depth] = self;
  lua_Unsigned n = lua_rawlen(L, idx), count = 0;
  int seq = n > 0;
  lua_pushnil(L);
  while (lua_next(L, idx)) {
    count++;
    if (seq && (!lua_isinteger(L, -2) || lua_tointeger(L, -2) < 1 ||
                (lua_Unsigned)lua_tointeger(L, -2) > n))
      seq = 0;
    lua_pop(L, 1);
  }
  if (seq && count != n)
    seq = 0;
  json_t *out = seq ? json_array() : json_object();
  if (!out) {
    snprintf(why, wn, "out of memory");
    return NULL;
  }
  if (seq) {
    for (lua_Unsigned i = 1; i <= n; i++) {
      lua_rawgeti(L, idx, (lua_Integer)i);
      json_t *v = scr_to_json(L, -1, depth + 1, path, why, wn);
      lua_pop(L, 1);
      if (!v || json_array_append_new(out, v)) {
        json_decref(out);
        return NULL;
      }
    }
    return out;
  }
  lua_pushnil(L);
  while (lua_next(L, idx)) {
    char kbuf[64];
    const char *key;
    size_t klen;
    switch (lua_type(L, -2)) {
    case LUA_TSTRING:
      key = lua_tolstring(L, -2, &klen);
      break;
    case LUA_TNUMBER:
      if (lua_isinteger(L, -2))
        snprintf(kbuf, sizeof kbuf, "%lld", (long long)lua_tointeger(L, -2));
      else
        snprintf(kbuf, sizeof kbuf, "%.17g", (double)lua_tonumber(L, -2));
      key = kbuf;
      klen = strlen(kbuf);
      break;
    default:
      snprintf(why, wn, "a table key of type %s (keys must be strings)",
               lua_typename(L, lua_type(L, -2)));
      lua_pop(L, 2);
      json_decref(out);
      return NULL;
    }
    if (memchr(key, 0, klen) || !core_utf8_valid(key, klen)) {
      snprintf(why, wn, "a table key that is not UTF-8 text");
      lua_pop(L, 2);
      json_decref(out);
      return NULL;
    }
    json_t *v = scr_to_json(L, -1, depth + 1, path, why, wn);
    if (!v || json_object_set_new(out, key, v)) {
      lua_pop(L, 2);
      json_decref(out);
      return NULL;
    }
    lua_pop(L, 1);
  }
  return out;
}

/* JSON -> Lua (may raise; j must be owned by someone who frees it). */
void scr_push_json(lua_State *L, const json_t *j, int depth)
{
  if (depth > JSON_DEPTH)
    luaL_error(L, "JSON nested deeper than %d", JSON_DEPTH);
  luaL_checkstack(L, 3, "JSON nested too deep");
  switch (json_typeof(j)) {
  case JSON_OBJECT: {
    const char *k;
    json_t *v;
    lua_createtable(L, 0, (int)json_object_size(j));
    json_object_foreach((json_t *)j, k, v)
    {
      scr_push_json(L, v, depth + 1);
      lua_setfield(L, -2, k);
    }
    break;
  }
  case JSON_ARRAY: {
    size_t i;
    json_t *v;
    lua_createtable(L, (int)json_array_size(j), 0);
    json_array_foreach(j, i, v)
    {
      scr_push_json(L, v, depth + 1);
      lua_rawseti(L, -2, (lua_Integer)i + 1);
    }
    break;
  }
  case JSON_STRING:
    lua_pushlstring(L, json_string_value(j), json_string_length(j));
    break;
  case JSON_INTEGER:
    lua_pushinteger(L, (lua_Integer)json_integer_value(j));
    break;
  case JSON_REAL:
    lua_pushnumber(L, json_real_value(j));
    break;
  case JSON_TRUE:
    lua_pushboolean(L, 1);
    break;
  case JSON_FALSE:
    lua_pushboolean(L, 0);
    break;
  default:
    lua_pushnil(L);
  }
}

/* A userdata that owns a json_t until Lua collects it, so JSON parsed for
 * Lua is freed even when converting it raises. */

int scr_box_gc(lua_State *L)
{
  json_t **b = luaL_checkudata(L, 1, JSON_BOX);
  json_decref(*b);
  *b = NULL;
  return 0;
}

/* Parse text and push it as a Lua value; raises on bad JSON. */
void scr_push_json_text(lua_State *L, const char *fn, const char *text,
                        size_t len)
{
  json_t **box = lua_newuserdatauv(L, sizeof *box, 0);
  *box = NULL;
  luaL_setmetatable(L, JSON_BOX);
  json_error_t e;
  *box = json_loadb(text, len, JSON_DECODE_ANY, &e);
  if (!*box)
    luaL_error(L, "twin.%s: the reply is not JSON: %s", fn, e.text);
  scr_push_json(L, *box, 0);
  json_decref(*box);
  *box = NULL;
  lua_remove(L, -2);
}
