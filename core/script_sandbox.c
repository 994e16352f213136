/*
 * script_sandbox.c — what Lua code of a town may use: the safe libraries
 * only (no io, os.execute, package, debug, binary chunks), text-only load,
 * require inside the town's folder, and pattern functions refused when
 * their backtracking could outrun the budget.
 */
#include "script_int.h"

/* ------------------------------------------------------------------------ */
/* The sandbox                                                              */
/* ------------------------------------------------------------------------ */

static int l_print(lua_State *L)
{
  rt *r = rt_of(L);
  int n = lua_gettop(L);
  luaL_Buffer b;
  luaL_buffinit(L, &b);
  for (int i = 1; i <= n; i++) {
    if (i > 1)
      luaL_addchar(&b, '\t');
    luaL_tolstring(L, i, NULL);
    luaL_addvalue(&b);
  }
  luaL_pushresult(&b);
  core_log(TWIN_LEVEL_INFO, r->town->id, "rules", "%s", lua_tostring(L, -1));
  return 0;
}

/* load, text only, with the sandbox as the default environment. */
static int l_load(lua_State *L)
{
  rt *r = rt_of(L);
  int has_env = !lua_isnone(L, 4);
  lua_settop(L, 4);
  lua_pushvalue(L, lua_upvalueindex(1));
  lua_pushvalue(L, 1);
  lua_pushvalue(L, 2);
  lua_pushliteral(L, "t");
  if (has_env)
    lua_pushvalue(L, 4);
  else
    lua_rawgeti(L, LUA_REGISTRYINDEX, r->env_ref);
  lua_call(L, 4, LUA_MULTRET);
  return lua_gettop(L) - 4;
}

/* A finalizer would run at whatever time the collector picks, inside some
 * other call's budget and transaction: refused. */
static int l_setmetatable(lua_State *L)
{
  if (lua_type(L, 2) == LUA_TTABLE) {
    lua_pushliteral(L, "__gc");
    if (lua_rawget(L, 2) != LUA_TNIL)
      return luaL_error(L, "setmetatable: __gc metamethods are not available "
                           "in town rules");
    lua_pop(L, 1);
  }
  lua_settop(L, 2);
  lua_pushvalue(L, lua_upvalueindex(1));
  lua_insert(L, 1);
  lua_call(L, 2, 1);
  return 1;
}

/* Lua source from path with the sandbox as _ENV, pushed as a function. */
static void load_file_chunk(lua_State *L, const char *path)
{
  rt *r = rt_of(L);
  char chunk[PATH_MAX + 2];
  snprintf(chunk, sizeof chunk, "@%s", path);
  char *text;
  size_t len;
  core_err err;
  if (core_read_file(path, &text, &len, &err)) {
    lua_pushstring(L, err.msg);
    lua_error(L);
  }
  int st = len && text[0] == LUA_SIGNATURE[0]
               ? -1
               : luaL_loadbufferx(L, text, len, chunk, "t");
  free(text);
  if (st < 0)
    luaL_error(L, "%s: binary chunks are not allowed (text only)", path);
  if (st != LUA_OK)
    lua_error(L);
  lua_rawgeti(L, LUA_REGISTRYINDEX, r->env_ref);
  lua_setupvalue(L, -2, 1);
}

static int valid_module(const char *s, size_t n)
{
  if (n == 0 || n > 200 || s[0] == '.' || s[n - 1] == '.')
    return 0;
  for (size_t i = 0; i < n; i++) {
    char c = s[i];
    if (c == '.' && s[i + 1] == '.')
      return 0;
    if (!(c == '.' || c == '_' || c == '-' || (c >= '0' && c <= '9') ||
          (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z')))
      return 0;
  }
  return 1;
}

static char require_loading; /* its address marks a module being loaded */

/* require(name): <script_dir>/<name with dots as slashes>.lua, once. */
static int l_require(lua_State *L)
{
  rt *r = rt_of(L);
  size_t n;
  const char *name = luaL_checklstring(L, 1, &n);
  if (!valid_module(name, n))
    return luaL_error(L,
                      "require: '%s' is not a module name of this town "
                      "(letters, digits, '_', '-', with dots between "
                      "folders)",
                      name);
  lua_settop(L, 1);
  lua_rawgeti(L, LUA_REGISTRYINDEX, r->loaded_ref); /* 2 */
  lua_pushvalue(L, 1);
  if (lua_rawget(L, 2) != LUA_TNIL) {
    if (lua_touserdata(L, -1) == &require_loading)
      return luaL_error(L, "require: '%s' requires itself (a loop)", name);
    return 1;
  }
  lua_pop(L, 1);
  char path[PATH_MAX], real[PATH_MAX], base[PATH_MAX];
  if (!r->town->script_dir)
    return luaL_error(L, "require: town '%s' has no script folder",
                      r->town->id);
  int len = snprintf(path, sizeof path, "%s/%s.lua", r->town->script_dir, name);
  if (len < 0 || (size_t)len >= sizeof path)
    return luaL_error(L, "require: '%s': path too long", name);
  for (char *p = path + strlen(r->town->script_dir) + 1; *p; p++)
    if (*p == '.' && strcmp(p, ".lua"))
      *p = '/';
  struct stat st;
  if (!realpath(r->town->script_dir, base) || !realpath(path, real) ||
      stat(real, &st) || !S_ISREG(st.st_mode))
    return luaL_error(L,
                      "require: module '%s' not found (looked for %s; rules "
                      "require only files of their own folder)",
                      name, path);
  size_t bl = strlen(base);
  if (strncmp(real, base, bl) || real[bl] != '/')
    return luaL_error(L,
                      "require: '%s' leads outside the town's script "
                      "folder",
                      name);
  load_file_chunk(L, path); /* 3; a syntax error leaves no mark */
  lua_pushvalue(L, 1);
  lua_pushlightuserdata(L, &require_loading);
  lua_rawset(L, 2);
  if (lua_pcall(L, 0, 1, 0) != LUA_OK) {
    lua_pushvalue(L, 1);
    lua_pushnil(L);
    lua_rawset(L, 2);
    return lua_error(L);
  }
  if (lua_isnil(L, -1)) {
    lua_pop(L, 1);
    lua_pushboolean(L, 1);
  }
  lua_pushvalue(L, 1);
  lua_pushvalue(L, -2);
  lua_rawset(L, 2);
  return 1;
}

int scr_l_panic(lua_State *L)
{
  const char *m = lua_tostring(L, -1);
  core_log(TWIN_LEVEL_ERROR, NULL, "rules", "Lua panic: %s",
           m ? m : "(no message)");
  abort();
}

static void copy_field(lua_State *L, int from, int to, const char *name)
{
  lua_getfield(L, from, name);
  lua_setfield(L, to, name);
}

/*
 * Lua's pattern matching runs in C, out of reach of the instruction budget
 * and the wall-clock limit, and it backtracks: a pattern with q repetition
 * items (* + - ?) can take about n^(q+1) steps on an n-byte text
 * (string.rep("a", 20000):find(".-b") takes seconds). Rather than let one
 * rule stall the writer, the sandbox's find, match, gmatch and gsub refuse a
 * call whose worst case exceeds PATTERN_STEPS_MAX, with an error that says
 * how to fix it. Plain finds (fourth argument true) are linear and pass.
 */
#define PATTERN_STEPS_MAX 2e7

static int pattern_repetitions(const char *p, size_t len)
{
  int q = 0;
  for (size_t i = 0; i < len; i++) {
    char c = p[i];
    if (c == '%') { /* an escape: the next byte is literal or a class */
      i++;
    } else if (c == '[') { /* a set: its '-' are ranges, not repetitions */
      i++;
      if (i < len && p[i] == '^')
        i++;
      if (i < len && p[i] == ']')
        i++;
      while (i < len && p[i] != ']')
        i += p[i] == '%' ? 2 : 1;
    } else if (c == '*' || c == '+' || c == '-' || c == '?') {
      q++;
    }
  }
  return q;
}

static int l_pattern_guard(lua_State *L)
{
  size_t n, plen;
  luaL_checklstring(L, 1, &n);
  const char *pat = luaL_checklstring(L, 2, &plen);
  const char *name = lua_tostring(L, lua_upvalueindex(2));
  int plain = !strcmp(name, "find") && lua_toboolean(L, 4);
  if (!plain) {
    int q = pattern_repetitions(pat, plen);
    if (pow((double)n + 1, q + 1) > PATTERN_STEPS_MAX)
      return luaL_error(L,
                        "string.%s: a pattern with %d repetition%s is too "
                        "costly on a text of %d bytes; shorten the text or "
                        "use fewer of * + - ? (see docs/rules.md, limits)",
                        name, q, q == 1 ? "" : "s", (int)n);
  }
  lua_pushvalue(L, lua_upvalueindex(1));
  lua_insert(L, 1);
  lua_call(L, lua_gettop(L) - 1, LUA_MULTRET);
  return lua_gettop(L);
}

/* Replace string.<name> in the table at t with the guarded version. */
static void guard_pattern_function(lua_State *L, int t, const char *name)
{
  lua_getfield(L, t, name);
  lua_pushstring(L, name);
  lua_pushcclosure(L, l_pattern_guard, 2);
  lua_setfield(L, t, name);
}

/* Build the sandbox (runs protected, as CALL_SETUP). */
int scr_setup_sandbox(lua_State *L)
{
  rt *r = rt_of(L);
  static const char *const base_names[] = {
      "assert",   "error",    "ipairs", "next",         "pairs",   "pcall",
      "xpcall",   "rawequal", "rawget", "rawlen",       "rawset",  "select",
      "tonumber", "tostring", "type",   "getmetatable", "_VERSION"};
  static const struct {
    const char *name;
    lua_CFunction open;
  } libs[] = {{"string", luaopen_string},
              {"table", luaopen_table},
              {"math", luaopen_math},
              {"utf8", luaopen_utf8},
              {"coroutine", luaopen_coroutine}};

  luaL_requiref(L, "_G", luaopen_base, 0);
  int g = lua_gettop(L);
  lua_createtable(L, 0, 32);
  int env = lua_gettop(L);
  for (size_t i = 0; i < sizeof base_names / sizeof *base_names; i++)
    copy_field(L, g, env, base_names[i]);
  lua_pushcfunction(L, l_print);
  lua_setfield(L, env, "print");
  lua_getfield(L, g, "load");
  lua_pushcclosure(L, l_load, 1);
  lua_setfield(L, env, "load");
  lua_getfield(L, g, "setmetatable");
  lua_pushcclosure(L, l_setmetatable, 1);
  lua_setfield(L, env, "setmetatable");
  lua_pushcfunction(L, l_require);
  lua_setfield(L, env, "require");
  lua_pushvalue(L, env);
  lua_setfield(L, env, "_G");
  for (size_t i = 0; i < sizeof libs / sizeof *libs; i++) {
    luaL_requiref(L, libs[i].name, libs[i].open, 0);
    lua_setfield(L, env, libs[i].name);
  }
  /* The string table is also the strings' metatable __index: dump goes from
   * the real table, so ("").dump is nil too. */
  lua_getfield(L, env, "string");
  lua_pushnil(L);
  lua_setfield(L, -2, "dump");
  int str = lua_gettop(L);
  guard_pattern_function(L, str, "find");
  guard_pattern_function(L, str, "match");
  guard_pattern_function(L, str, "gmatch");
  guard_pattern_function(L, str, "gsub");
  lua_pop(L, 1);
  luaL_requiref(L, "os", luaopen_os, 0);
  int os = lua_gettop(L);
  lua_createtable(L, 0, 4);
  copy_field(L, os, os + 1, "time");
  copy_field(L, os, os + 1, "date");
  copy_field(L, os, os + 1, "clock");
  copy_field(L, os, os + 1, "difftime");
  lua_setfield(L, env, "os");
  lua_pop(L, 1);
  scr_push_twin_module(L);
  lua_setfield(L, env, "twin");
  if (luaL_newmetatable(L, JSON_BOX)) {
    lua_pushcfunction(L, scr_box_gc);
    lua_setfield(L, -2, "__gc");
  }
  lua_pop(L, 1);
  lua_newtable(L);
  r->loaded_ref = luaL_ref(L, LUA_REGISTRYINDEX);
  for (int i = 0; i < 6; i++)
    lua_pushstring(L, scr_obs_keys[i]);
  lua_pushcclosure(L, scr_obs_trampoline, 6);
  r->obs_tramp_ref = luaL_ref(L, LUA_REGISTRYINDEX);
  lua_pushvalue(L, env);
  r->env_ref = luaL_ref(L, LUA_REGISTRYINDEX);
  return 0;
}
