/*
 * script.c — town rules: one sandboxed Lua 5.4 state per town (the contract
 * is script.h; the Lua side is docs/rules.md). This file builds the sandbox,
 * loads the town's *.lua files, enforces the instruction budget and the
 * memory cap, implements the `twin` module on top of the host services
 * (h->api, with the twin_ctx of the call that triggered the rule), runs the
 * hooks with a savepoint each, keeps per-hook statistics with backoff, and
 * computes schedule due times in the town's timezone.
 *
 * Error discipline: Lua raises errors with longjmp. Every entry into Lua goes
 * through lua_pcall of a C trampoline, and no Lua function that can raise is
 * called while this file holds memory Lua does not know about: results of
 * host iterations are collected into buffers the runtime owns, JSON parsed
 * for Lua sits in a userdata box whose __gc frees it, and Lua -> JSON
 * conversion uses only API calls that never raise.
 */
#include "script.h"

#include <dirent.h>
#include <errno.h>
#include <jansson.h>
#include <lauxlib.h>
#include <limits.h>
#include <lua.h>
#include <lualib.h>
#include <math.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "crash.h"
#include "ctx.h"
#include "host.h"
#include "tz.h"
#include "view.h"

#define DEFAULT_INSTRUCTIONS 5000000u
#define DEFAULT_WALL_MS 50u
#define DEFAULT_MEMORY ((size_t)32 << 20)
/* The count hook runs every HOOK_STEP VM instructions: often enough for a
 * 50 ms deadline, rare enough that reading the clock costs nothing. */
#define HOOK_STEP 1000
/* Once the cap is reached, room to build and raise the error message. */
#define MEM_SLACK ((size_t)256 << 10)
#define JSON_DEPTH 32
#define BACKOFF_AFTER 5
#define BACKOFF_FIRST_MS 60000
#define BACKOFF_MAX_MS 3600000
#define EMITTED_MAX 64
#define ERR_MAX 512
#define MAX_ARGS 200 /* arguments of a function plugins call */

enum hook_kind { HK_OBS, HK_EVERY, HK_DAILY, HK_EVENT };
static const char *const kind_names[] = {"on_observation", "every", "daily",
                                         "on_event"};

/* The allocator's view of the cap: refusals are first PENDING (Lua runs an
 * emergency collection and asks again), TRIPPED when the retry fails too. */
enum mem_state { MEM_OK, MEM_PENDING, MEM_TRIPPED };

typedef struct hook {
  int kind;
  int ref; /* the function, in the registry */
  char *name;
  char *source;                    /* "10-alerts.lua:12" */
  char *plugin, *type, *id, *attr; /* filters; NULL matches anything */
  char *level;                     /* on_event only */
  int minutes;                     /* every */
  int hh, mm;                      /* daily */
  twin_time next_due;              /* schedules */
  uint64_t calls, errors, skipped, time_ns;
  int consecutive;
  twin_time backoff_until; /* 0: not backing off */
  twin_time last_error_time;
  char last_error[ERR_MAX];
} hook;

/* One value a host iteration handed over, copied into the runtime's arena
 * (offsets, since the arena moves as it grows). */
typedef struct item {
  size_t a_off, a_len, b_off, b_len; /* name, or type and id */
  twin_time time;
  int32_t vtype;
  union {
    double number;
    int64_t integer;
    int32_t boolean;
    struct {
      size_t off, len;
    } str;
  } v;
} item;

/* One lua_State and everything that lives and dies with it. */
typedef struct rt {
  lua_State *L;
  core_host *h; /* NULL when only checking scripts */
  const core_town *town;
  core_script_limits lim;
  char cap_text[32]; /* "32 MiB" */
  /* memory */
  size_t mem;
  int mem_state;
  char mem_at[LUA_IDSIZE + 16]; /* where the cap was reached */
  void *refused_ptr;            /* the request a PENDING refusal turned down */
  size_t refused_size;
  /* budget of the current outermost call */
  uint64_t steps, deadline_ns;
  int tripped;
  uintptr_t gen;                   /* outermost calls so far */
  char trip_msg[LUA_IDSIZE + 160]; /* the first budget or cap error */
  /* the call in progress */
  twin_ctx *ctx;     /* NULL outside hooks and functions */
  lua_State *nest_L; /* the thread a twin function runs on, for re-entry */
  int depth;
  int loading;
  int in_event;
  const char *where; /* names the chunk or hook in memory-cap messages */
  int env_ref, loaded_ref, obs_tramp_ref;
  hook *hooks;
  size_t n_hooks, cap_hooks, n_obs, n_event, n_sched;
  char **files;
  size_t n_files;
  /* buffers twin functions reuse between calls */
  item *items;
  size_t n_items, cap_items;
  char *arena;
  size_t arena_len, arena_cap;
  int scratch_full;
  twin_attr *attrs;
  size_t cap_attrs;
  /* hashes of events on_event hooks emitted: they must not trigger hooks */
  uint64_t emitted[EMITTED_MAX];
  size_t n_emitted;
} rt;

struct core_script {
  pthread_mutex_t lock; /* recursive: a rule may re-enter through a plugin */
  core_host *h;
  const core_town *town;
  core_script_limits lim;
  rt *r;
};

/* The runtime is the allocator's ud: the same for every thread of the
 * state. */
static rt *rt_of(lua_State *L)
{
  void *ud;
  lua_getallocf(L, &ud);
  return ud;
}

/*
 * Each thread's extra space holds the number of the outermost call it was
 * created in: Lua copies the main thread's extra space into every new
 * thread, and the main thread's is set at the start of each call. A
 * coroutine kept from an earlier call is recognised by its older number.
 */
static uintptr_t *call_gen(lua_State *L)
{
  return (uintptr_t *)lua_getextraspace(L);
}

/* ------------------------------------------------------------------------ */
/* Memory cap and instruction budget                                        */
/* ------------------------------------------------------------------------ */

static void budget_hook(lua_State *L, lua_Debug *ar);

/*
 * Where the main thread is when the cap is reached: the innermost Lua
 * function's file:line, for the message (a memory error carries no
 * position). lua_getstack and lua_getinfo("Sl") only read the call stack,
 * so they are safe inside an allocation; the running function's position
 * is saved before anything that allocates.
 */
static void mem_where(rt *r)
{
  lua_Debug ar;
  if (!r->L || !r->depth || r->mem_at[0])
    return;
  for (int level = 0; level < 8 && lua_getstack(r->L, level, &ar); level++)
    if (lua_getinfo(r->L, "Sl", &ar) && ar.currentline > 0) {
      snprintf(r->mem_at, sizeof r->mem_at, "%s:%d", ar.short_src,
               ar.currentline);
      return;
    }
}

/*
 * Counts every byte the state holds and refuses growth beyond the cap. When
 * ptr is NULL, osize is a type tag, not a size (Lua 5.4). A refusal is
 * PENDING until the next growth request shows what became of it: the same
 * request again is Lua's retry after an emergency collection (granted: the
 * collection made room; refused: TRIPPED); anything else means the refusal
 * was raised as an error (the auxiliary library's buffers never retry), so
 * the cap was reached.
 */
static void *rt_alloc(void *ud, void *ptr, size_t osize, size_t nsize)
{
  rt *r = ud;
  size_t old = ptr ? osize : 0;
  if (nsize == 0) {
    free(ptr);
    r->mem -= old;
    return NULL;
  }
  if (nsize > old) {
    int retry = r->mem_state == MEM_PENDING && ptr == r->refused_ptr &&
                nsize == r->refused_size;
    if (r->mem_state == MEM_PENDING && !retry) {
      r->mem_state = MEM_TRIPPED;
      mem_where(r);
    }
    size_t cap = r->lim.memory + (r->mem_state == MEM_TRIPPED ? MEM_SLACK : 0);
    size_t base = r->mem - old;
    if (nsize > cap || base > cap - nsize) {
      if (r->mem_state == MEM_OK) {
        r->mem_state = MEM_PENDING;
        r->refused_ptr = ptr;
        r->refused_size = nsize;
        mem_where(r);
      } else {
        r->mem_state = MEM_TRIPPED;
        mem_where(r);
      }
      /* Let the next instruction look at it (and raise when tripped);
       * lua_sethook only sets fields of the state, so it is safe inside
       * an allocation. */
      if (r->L)
        lua_sethook(r->L, budget_hook, LUA_MASKCOUNT, 1);
      return NULL;
    }
    if (retry) {
      r->mem_state = MEM_OK;
      r->mem_at[0] = 0;
    }
  }
  void *p = realloc(ptr, nsize);
  if (!p) {
    if (nsize <= old) /* Lua assumes shrinking never fails: keep the block */
      p = ptr;
    else
      return NULL;
  }
  r->mem = r->mem - old + nsize;
  return p;
}

static void budget_message(rt *r, const char *where, int line, char *buf,
                           size_t n)
{
  char at[LUA_IDSIZE + 24];
  if (line > 0)
    snprintf(at, sizeof at, "%s:%d", where, line);
  else
    snprintf(at, sizeof at, "%s", where);
  if (r->mem_state != MEM_OK)
    snprintf(buf, n, "%s: memory cap of %s reached", at, r->cap_text);
  else
    snprintf(buf, n,
             "%s: instruction budget exceeded (%llu instructions or %u ms; "
             "endless loop?)",
             at, (unsigned long long)r->lim.instructions, r->lim.wall_ms);
}

/*
 * The count hook. Within budget it only counts; once the budget or the cap
 * is exceeded it re-arms itself for every instruction and raises each time,
 * so a pcall in the script cannot swallow the error: the call unwinds.
 */
static void budget_hook(lua_State *L, lua_Debug *ar)
{
  rt *r = rt_of(L);
  int step = lua_gethookcount(L);
  if (!r->tripped && r->mem_state == MEM_OK) {
    r->steps += (uint64_t)step;
    if (r->steps < r->lim.instructions && core_mono_ns() < r->deadline_ns) {
      if (step != HOOK_STEP) /* a thread armed during an earlier trip */
        lua_sethook(L, budget_hook, LUA_MASKCOUNT, HOOK_STEP);
      return;
    }
    r->tripped = 1;
  }
  if (r->mem_state == MEM_PENDING)
    r->mem_state = MEM_TRIPPED; /* raised without a retry; still over */
  if (step != 1)
    lua_sethook(L, budget_hook, LUA_MASKCOUNT, 1);
  char msg[LUA_IDSIZE + 160];
  lua_getinfo(L, "Sl", ar);
  budget_message(r, ar->short_src, ar->currentline, msg, sizeof msg);
  if (!r->trip_msg[0]) /* the call reports the first, unwrapped */
    snprintf(r->trip_msg, sizeof r->trip_msg, "%s", msg);
  lua_pushstring(L, msg);
  lua_error(L);
}

/* A fresh budget for an outermost call; the hook is re-armed only when a
 * trip left it at every instruction. */
static void budget_reset(rt *r, uint64_t now_ns)
{
  r->steps = 0;
  r->tripped = 0;
  r->mem_state = MEM_OK;
  r->mem_at[0] = 0;
  r->trip_msg[0] = 0;
  r->deadline_ns = now_ns + (uint64_t)r->lim.wall_ms * 1000000u;
  if (lua_gethookcount(r->L) != HOOK_STEP)
    lua_sethook(r->L, budget_hook, LUA_MASKCOUNT, HOOK_STEP);
}

/* ------------------------------------------------------------------------ */
/* Time zones                                                               */
/* ------------------------------------------------------------------------ */

/*
 * A town's local time comes from core_tz: the zone file read once, no
 * process-wide TZ switch, so rules and plugin queries on other threads may
 * convert at the same moment. A zone that cannot be loaded is UTC (logged
 * once), as it was for the C library.
 */
static time_t ms_to_sec(twin_time ms)
{
  twin_time s = ms / 1000;
  if (ms % 1000 < 0)
    s--;
  return (time_t)s;
}

/* ms -> local time in tz. */
static int tz_local(const char *tz, twin_time ms, struct tm *out)
{
  return core_tz_local(core_tz_get_or_utc(tz), ms_to_sec(ms), out) == TWIN_OK;
}

/* Local time in tz -> ms, like mktime with tm_isdst -1 (see tz.h). */
static int tz_mktime(const char *tz, struct tm *tm, twin_time *out)
{
  int64_t t;
  if (core_tz_mktime(core_tz_get_or_utc(tz), tm, &t) != TWIN_OK ||
      t > INT64_MAX / 1000 || t < INT64_MIN / 1000)
    return 0;
  *out = (twin_time)t * 1000;
  return 1;
}

/* The next multiple of `minutes` minutes since the epoch after now. */
static twin_time next_every(twin_time now, int minutes)
{
  twin_time p = (twin_time)minutes * 60000, q = now / p;
  if (now % p < 0)
    q--;
  return (q + 1) * p;
}

/*
 * The next local hh:mm in tz after now; with ran set, never on the local
 * date of `ran` (so a time that occurs twice when the clocks go back runs
 * once). A time the clocks skip runs at the shifted time mktime gives.
 */
static twin_time next_daily(const char *tz, int hh, int mm, twin_time now,
                            twin_time ran)
{
  struct tm base, done;
  if (!tz_local(tz, now, &base))
    return INT64_MAX;
  int start = 0;
  if (ran != INT64_MIN && tz_local(tz, ran, &done) &&
      done.tm_year == base.tm_year && done.tm_yday == base.tm_yday)
    start = 1;
  for (int k = start; k < start + 4; k++) {
    struct tm t = {0};
    t.tm_year = base.tm_year;
    t.tm_mon = base.tm_mon;
    t.tm_mday = base.tm_mday + k;
    t.tm_hour = hh;
    t.tm_min = mm;
    t.tm_isdst = -1;
    twin_time due;
    if (tz_mktime(tz, &t, &due) && due > now)
      return due;
  }
  return INT64_MAX;
}

/* ------------------------------------------------------------------------ */
/* Buffers the runtime owns                                                 */
/* ------------------------------------------------------------------------ */

static void scratch_reset(rt *r)
{
  r->n_items = 0;
  r->arena_len = 0;
  r->scratch_full = 0;
}

/* After a large result, give the memory back: the buffers exist to spare
 * the common small call an allocation, not to hold a peak forever. */
static void scratch_done(rt *r)
{
  if (r->arena_cap > ((size_t)1 << 20)) {
    free(r->arena);
    r->arena = NULL;
    r->arena_cap = 0;
  }
  if (r->cap_items * sizeof(item) > ((size_t)1 << 20)) {
    free(r->items);
    r->items = NULL;
    r->cap_items = 0;
  }
  r->n_items = 0;
  r->arena_len = 0;
}

/* Copy n bytes into the arena; 0 when out of memory or over the cap (the
 * results of one twin call never hold more than the town's memory cap). */
static int arena_add(rt *r, const void *p, size_t n, size_t *off)
{
  if (n > r->lim.memory || r->arena_len > r->lim.memory - n) {
    r->scratch_full = 1;
    return 0;
  }
  if (r->arena_len + n > r->arena_cap) {
    size_t cap = r->arena_cap ? r->arena_cap : 1024;
    while (cap < r->arena_len + n)
      cap *= 2;
    char *a = realloc(r->arena, cap);
    if (!a)
      return 0;
    r->arena = a;
    r->arena_cap = cap;
  }
  if (n)
    memcpy(r->arena + r->arena_len, p, n);
  *off = r->arena_len;
  r->arena_len += n;
  return 1;
}

static item *item_add(rt *r)
{
  if (r->n_items == r->cap_items) {
    size_t cap = r->cap_items ? r->cap_items * 2 : 64;
    if (cap * sizeof(item) > r->lim.memory) {
      r->scratch_full = 1;
      return NULL;
    }
    item *p = realloc(r->items, cap * sizeof *p);
    if (!p)
      return NULL;
    r->items = p;
    r->cap_items = cap;
  }
  item *it = &r->items[r->n_items++];
  memset(it, 0, sizeof *it);
  return it;
}

static int item_value(rt *r, item *it, const twin_value *v)
{
  it->vtype = v->type;
  switch (v->type) {
  case TWIN_VALUE_NUMBER:
    it->v.number = v->as.number;
    return 1;
  case TWIN_VALUE_INT:
    it->v.integer = v->as.integer;
    return 1;
  case TWIN_VALUE_BOOL:
    it->v.boolean = v->as.boolean;
    return 1;
  case TWIN_VALUE_STRING:
    it->v.str.len = v->as.string.len;
    return arena_add(r, v->as.string.ptr, v->as.string.len, &it->v.str.off);
  default:
    it->vtype = TWIN_VALUE_NULL;
    return 1;
  }
}

static int collect_attr(void *ud, const twin_attr *a)
{
  rt *r = ud;
  item *it = item_add(r);
  if (!it)
    return r->scratch_full ? TWIN_ERR_TOO_BIG : TWIN_ERR_NOMEM;
  it->a_len = strlen(a->name);
  it->time = a->time;
  if (!arena_add(r, a->name, it->a_len, &it->a_off) ||
      !item_value(r, it, &a->value))
    return r->scratch_full ? TWIN_ERR_TOO_BIG : TWIN_ERR_NOMEM;
  return TWIN_OK;
}

static int collect_entity(void *ud, const char *type, const char *id)
{
  rt *r = ud;
  item *it = item_add(r);
  if (!it)
    return r->scratch_full ? TWIN_ERR_TOO_BIG : TWIN_ERR_NOMEM;
  it->a_len = strlen(type);
  it->b_len = strlen(id);
  if (!arena_add(r, type, it->a_len, &it->a_off) ||
      !arena_add(r, id, it->b_len, &it->b_off))
    return r->scratch_full ? TWIN_ERR_TOO_BIG : TWIN_ERR_NOMEM;
  return TWIN_OK;
}

static int collect_text(void *ud, const char *json, size_t len)
{
  rt *r = ud;
  size_t off;
  scratch_reset(r);
  if (!arena_add(r, json, len, &off))
    return r->scratch_full ? TWIN_ERR_TOO_BIG : TWIN_ERR_NOMEM;
  return TWIN_OK;
}

/* ------------------------------------------------------------------------ */
/* Values between Lua, twin_value and JSON                                  */
/* ------------------------------------------------------------------------ */

static void push_value(lua_State *L, const twin_value *v)
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

static void push_item_value(lua_State *L, rt *r, const item *it)
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
static int to_value(lua_State *L, int idx, twin_value *v, const char **why)
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
static json_t *to_json(lua_State *L, int idx, int depth, const void **path,
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
      json_t *v = to_json(L, -1, depth + 1, path, why, wn);
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
    json_t *v = to_json(L, -1, depth + 1, path, why, wn);
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
static void push_json(lua_State *L, const json_t *j, int depth)
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
      push_json(L, v, depth + 1);
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
      push_json(L, v, depth + 1);
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
#define JSON_BOX "twin.jsonbox"

static int box_gc(lua_State *L)
{
  json_t **b = luaL_checkudata(L, 1, JSON_BOX);
  json_decref(*b);
  *b = NULL;
  return 0;
}

/* Parse text and push it as a Lua value; raises on bad JSON. */
static void push_json_text(lua_State *L, const char *fn, const char *text,
                           size_t len)
{
  json_t **box = lua_newuserdatauv(L, sizeof *box, 0);
  *box = NULL;
  luaL_setmetatable(L, JSON_BOX);
  json_error_t e;
  *box = json_loadb(text, len, JSON_DECODE_ANY, &e);
  if (!*box)
    luaL_error(L, "twin.%s: the reply is not JSON: %s", fn, e.text);
  push_json(L, *box, 0);
  json_decref(*box);
  *box = NULL;
  lua_remove(L, -2);
}

/* ------------------------------------------------------------------------ */
/* Calls into the state                                                     */
/* ------------------------------------------------------------------------ */

enum call_kind {
  CALL_SETUP,
  CALL_CHUNK,
  CALL_OBS,
  CALL_TIME,
  CALL_EVENT,
  CALL_FUNC
};

typedef struct call {
  int kind;
  int ref;
  /* CALL_CHUNK */
  const char *text, *chunkname;
  size_t len;
  /* CALL_OBS */
  const char *plugin, *type, *id;
  const twin_attr *obs;
  /* CALL_TIME */
  twin_time now;
  /* CALL_EVENT: the record; CALL_FUNC: the argument array */
  const json_t *json;
  /* CALL_FUNC */
  const char *fname;
  json_t *result;
  int not_found, bad_result;
  char why[256];
  char where[LUA_IDSIZE + 16];
} call;

static int setup_sandbox(lua_State *L);

/* The observation table. The hot path: the key strings are the upvalues of
 * obs_trampoline (interned once), values are pushed with their lengths. */
static const char *const obs_keys[] = {"plugin", "type", "id",
                                       "attr",   "time", "value"};

static int obs_trampoline(lua_State *L)
{
  const call *c = lua_touserdata(L, 1);
  lua_rawgeti(L, LUA_REGISTRYINDEX, c->ref);
  lua_createtable(L, 0, 6);
  lua_pushvalue(L, lua_upvalueindex(1));
  lua_pushlstring(L, c->plugin, strlen(c->plugin));
  lua_rawset(L, -3);
  lua_pushvalue(L, lua_upvalueindex(2));
  lua_pushlstring(L, c->type, strlen(c->type));
  lua_rawset(L, -3);
  lua_pushvalue(L, lua_upvalueindex(3));
  lua_pushlstring(L, c->id, strlen(c->id));
  lua_rawset(L, -3);
  lua_pushvalue(L, lua_upvalueindex(4));
  lua_pushlstring(L, c->obs->name, strlen(c->obs->name));
  lua_rawset(L, -3);
  lua_pushvalue(L, lua_upvalueindex(5));
  lua_pushinteger(L, c->obs->time);
  lua_rawset(L, -3);
  lua_pushvalue(L, lua_upvalueindex(6));
  push_value(L, &c->obs->value);
  lua_rawset(L, -3);
  lua_call(L, 1, 0);
  return 0;
}

/* Runs inside lua_pcall: everything here may raise. */
static int trampoline(lua_State *L)
{
  call *c = lua_touserdata(L, 1);
  rt *r = rt_of(L);
  switch (c->kind) {
  case CALL_SETUP:
    return setup_sandbox(L);
  case CALL_CHUNK:
    if (luaL_loadbufferx(L, c->text, c->len, c->chunkname, "t") != LUA_OK)
      return lua_error(L);
    lua_rawgeti(L, LUA_REGISTRYINDEX, r->env_ref);
    lua_setupvalue(L, -2, 1);
    lua_call(L, 0, 0);
    return 0;
  case CALL_TIME:
    lua_rawgeti(L, LUA_REGISTRYINDEX, c->ref);
    lua_pushinteger(L, c->now);
    lua_call(L, 1, 0);
    return 0;
  case CALL_EVENT:
    lua_rawgeti(L, LUA_REGISTRYINDEX, c->ref);
    push_json(L, c->json, 0);
    lua_call(L, 1, 0);
    return 0;
  case CALL_FUNC: {
    lua_rawgeti(L, LUA_REGISTRYINDEX, r->env_ref);
    lua_pushstring(L, c->fname);
    lua_rawget(L, -2);
    if (!lua_isfunction(L, -1)) {
      c->not_found = 1;
      return 0;
    }
    lua_Debug ar; /* where it is defined, for a memory-cap message */
    lua_pushvalue(L, -1);
    if (lua_getinfo(L, ">S", &ar)) {
      snprintf(c->where, sizeof c->where, "%s:%d", ar.short_src,
               ar.linedefined);
      r->where = c->where;
    }
    size_t n = json_array_size(c->json);
    luaL_checkstack(L, (int)n + 4, "too many arguments");
    for (size_t i = 0; i < n; i++)
      push_json(L, json_array_get(c->json, i), 1);
    lua_call(L, (int)n, 1);
    const void *path[JSON_DEPTH];
    c->result = to_json(L, -1, 0, path, c->why, sizeof c->why);
    if (!c->result)
      c->bad_result = 1;
    return 0;
  }
  }
  return 0;
}

/* The error of a failed call as text. */
static void error_text(rt *r, lua_State *L, int st, char *msg, size_t n)
{
  /* The auxiliary library raises a refused buffer as an ordinary error. */
  int memerr =
      st == LUA_ERRMEM || (lua_type(L, -1) == LUA_TSTRING &&
                           !strcmp(lua_tostring(L, -1), "not enough memory"));
  if ((r->tripped || r->mem_state != MEM_OK) && r->trip_msg[0]) {
    /* coroutine.wrap and the like prefix what passes through them */
    snprintf(msg, n, "%s", r->trip_msg);
  } else if (r->mem_state != MEM_OK && memerr) {
    budget_message(r,
                   r->mem_at[0] ? r->mem_at
                   : r->where   ? r->where
                                : "rules",
                   0, msg, n);
  } else if (st == LUA_ERRMEM) {
    snprintf(msg, n, "%s: out of memory", r->where ? r->where : "rules");
  } else if (lua_type(L, -1) == LUA_TSTRING) {
    snprintf(msg, n, "%s", lua_tostring(L, -1));
  } else {
    snprintf(msg, n, "%s: (error object is a %s value)",
             r->where ? r->where : "rules", luaL_typename(L, -1));
  }
  core_utf8_fix(msg);
}

/*
 * Run c in the state: the budget is fresh for an outermost call and shared
 * by nested ones (a rule -> plugin query -> call_script); ctx is current
 * for the call; a failed call's writes are rolled back to a savepoint
 * (taken only by the outermost call of a writing context: a nested call
 * runs in a read-only query context). Returns the Lua status; msg gets the
 * error and *ns the time spent.
 */
static int rt_run(rt *r, twin_ctx *ctx, call *c, const char *where, char *msg,
                  size_t msgsize, uint64_t *ns)
{
  uint64_t t0 = core_mono_ns();
  lua_State *L = r->depth && r->nest_L ? r->nest_L : r->L;
  if (!lua_checkstack(L, 4)) {
    snprintf(msg, msgsize, "%s: out of Lua stack", where);
    if (ns)
      *ns = 0;
    return LUA_ERRMEM;
  }
  core_savepoint sp;
  int with_sp = 0;
  if (r->depth == 0) {
    budget_reset(r, t0);
    *call_gen(r->L) = ++r->gen;
    if (ctx && ctx->view.ov && ctx->mode != CORE_CTX_READ) {
      core_overlay_savepoint(ctx->view.ov, &sp);
      with_sp = 1;
    }
  }
  twin_ctx *prev = r->ctx;
  lua_State *prev_nest = r->nest_L;
  const char *prev_where = r->where;
  r->ctx = ctx;
  r->nest_L = NULL;
  r->where = where;
  r->depth++;
  int top = lua_gettop(L);
  if (c->kind == CALL_OBS)
    lua_rawgeti(L, LUA_REGISTRYINDEX, r->obs_tramp_ref);
  else
    lua_pushcfunction(L, trampoline);
  lua_pushlightuserdata(L, c);
  int st = lua_pcall(L, 1, 0, 0);
  if (st != LUA_OK)
    error_text(r, L, st, msg, msgsize);
  lua_settop(L, top);
  r->depth--;
  r->ctx = prev;
  r->nest_L = prev_nest;
  r->where = prev_where;
  if (with_sp) {
    if (st != LUA_OK)
      core_overlay_rollback(ctx->view.ov, &sp);
    else
      core_overlay_release(ctx->view.ov, &sp);
  }
  if (ns)
    *ns = core_mono_ns() - t0;
  return st;
}

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
  push_value(L, &out.value);
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
  scratch_reset(r);
  int rc = r->h->api.entity_attrs(&sub, type, id, collect_attr, r);
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
    push_item_value(L, r, it);
    lua_rawset(L, -3);
  }
  scratch_done(r);
  return 1;
}

static int l_entities(lua_State *L)
{
  rt *r = rt_of(L);
  twin_ctx sub;
  ns_ctx(L, "entities", 1, 1, &sub);
  const char *type = opt_text(L, 2, "entities");
  scratch_reset(r);
  int rc = r->h->api.entity_iterate(&sub, type, collect_entity, r);
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
  scratch_done(r);
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
  scratch_reset(r);
  int rc = r->h->api.history_range(&sub, type, id, attr, from, to,
                                   (size_t)limit, collect_attr, r);
  if (rc)
    return host_failed(L, "history", &sub, rc);
  lua_createtable(L, (int)r->n_items, 0);
  for (size_t i = 0; i < r->n_items; i++) {
    const item *it = &r->items[i];
    lua_createtable(L, 0, 2);
    lua_pushinteger(L, it->time);
    lua_setfield(L, -2, "time");
    push_item_value(L, r, it);
    lua_setfield(L, -2, "value");
    lua_rawseti(L, -2, (lua_Integer)i + 1);
  }
  scratch_done(r);
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
    if (!to_value(L, -1, &a->value, &why))
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
  if (!to_value(L, 5, &a.value, &why))
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

static uint64_t fnv1a(const char *s, size_t n)
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
    e->hash = fnv1a(json, len);
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
    data = to_json(L, data_idx, 0, path, why, sizeof why);
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
  json_t *req = to_json(L, 2, 0, path, why, sizeof why);
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
  scratch_reset(r);
  int rc = r->h->api.query_plugin(&sub, sub.plugin, text, strlen(text),
                                  collect_text, r);
  r->nest_L = prev;
  free(text);
  if (rc)
    return host_failed(L, "query", &sub, rc);
  push_json_text(L, "query", r->arena, r->arena_len);
  scratch_done(r);
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
    json_t *doc = to_json(L, 2, 0, path, why, sizeof why);
    if (!doc)
      return luaL_error(L, "twin.ingest: doc: %s", why);
    text = json_dumps(doc, JSON_COMPACT | JSON_ENCODE_ANY);
    json_decref(doc);
  }
  if (!text)
    return luaL_error(L, "twin.ingest: out of memory");
  core_instance *ci = core_host_instance(r->h, r->town->id, sub.plugin);
  core_err err;
  if (!ci || !core_instance_usable(r->h, ci, &err) || !ci->plugin->desc.ingest) {
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
  if (!tz_local(r->town->timezone, ms, &tm))
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
  if (!tz_mktime(r->town->timezone, &tm, &ms))
    return luaL_error(L, "twin.time: the date cannot be represented");
  lua_pushinteger(L, ms);
  return 1;
}

/* ---- hook registration (load time only) ---------------------------------- */

static void hook_free(hook *hk)
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
      luaL_error(L, "twin.%s: out of memory", kind_names[kind]);
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
  snprintf(defname, sizeof defname, "%s#%zu (%s)", kind_names[kind],
           r->n_hooks + 1, source);
  hk->name = dup_opt(name ? name : defname, &fail);
  hk->source = dup_opt(source, &fail);
  hk->plugin = dup_opt(filt[0], &fail);
  hk->type = dup_opt(filt[1], &fail);
  hk->id = dup_opt(filt[2], &fail);
  hk->attr = dup_opt(filt[3], &fail);
  hk->level = dup_opt(filt[4], &fail);
  if (fail) {
    hook_free(hk);
    luaL_unref(L, LUA_REGISTRYINDEX, ref);
    luaL_error(L, "twin.%s: out of memory", kind_names[kind]);
  }
  twin_time now = core_now_ms();
  if (kind == HK_EVERY)
    hk->next_due = next_every(now, minutes);
  else if (kind == HK_DAILY)
    hk->next_due = next_daily(r->town->timezone, hh, mm, now, INT64_MIN);
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

static int l_panic(lua_State *L)
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
static int setup_sandbox(lua_State *L)
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
  luaL_newlib(L, twin_funcs);
  lua_setfield(L, env, "twin");
  if (luaL_newmetatable(L, JSON_BOX)) {
    lua_pushcfunction(L, box_gc);
    lua_setfield(L, -2, "__gc");
  }
  lua_pop(L, 1);
  lua_newtable(L);
  r->loaded_ref = luaL_ref(L, LUA_REGISTRYINDEX);
  for (int i = 0; i < 6; i++)
    lua_pushstring(L, obs_keys[i]);
  lua_pushcclosure(L, obs_trampoline, 6);
  r->obs_tramp_ref = luaL_ref(L, LUA_REGISTRYINDEX);
  lua_pushvalue(L, env);
  r->env_ref = luaL_ref(L, LUA_REGISTRYINDEX);
  return 0;
}

/* ------------------------------------------------------------------------ */
/* Building a state                                                         */
/* ------------------------------------------------------------------------ */

static void rt_free(rt *r)
{
  if (!r)
    return;
  if (r->L) {
    budget_reset(r, core_mono_ns());
    lua_close(r->L);
  }
  for (size_t i = 0; i < r->n_hooks; i++)
    hook_free(&r->hooks[i]);
  free(r->hooks);
  for (size_t i = 0; i < r->n_files; i++)
    free(r->files[i]);
  free(r->files);
  free(r->items);
  free(r->arena);
  free(r->attrs);
  free(r);
}

static int cmp_names(const void *a, const void *b)
{
  return strcmp(*(char *const *)a, *(char *const *)b);
}

/* The *.lua files of dir in byte order of name; a missing folder has none. */
static int list_files(rt *r, core_err *err)
{
  const char *dir = r->town->script_dir;
  DIR *d = dir ? opendir(dir) : NULL;
  if (!d) {
    if (!dir || errno == ENOENT)
      return TWIN_OK;
    return core_err_set(err, TWIN_ERR_CONFIG,
                        "%s: cannot read the town's script folder: %s", dir,
                        strerror(errno));
  }
  struct dirent *de;
  size_t cap = 0;
  int rc = TWIN_OK;
  while ((de = readdir(d))) {
    size_t n = strlen(de->d_name);
    if (n <= 4 || de->d_name[0] == '.' || strcmp(de->d_name + n - 4, ".lua"))
      continue;
    char *full = core_path_join(dir, de->d_name);
    struct stat st;
    int regular = full && !stat(full, &st) && S_ISREG(st.st_mode);
    free(full);
    if (!regular)
      continue;
    if (r->n_files == cap) {
      cap = cap ? cap * 2 : 8;
      char **f = realloc(r->files, cap * sizeof *f);
      if (!f) {
        rc = core_err_set(err, TWIN_ERR_NOMEM, "out of memory");
        break;
      }
      r->files = f;
    }
    if (!(r->files[r->n_files] = strdup(de->d_name))) {
      rc = core_err_set(err, TWIN_ERR_NOMEM, "out of memory");
      break;
    }
    r->n_files++;
  }
  closedir(d);
  if (!rc && r->n_files)
    qsort(r->files, r->n_files, sizeof *r->files, cmp_names);
  return rc;
}

static void limits_fill(core_script_limits *out, const core_script_limits *in)
{
  memset(out, 0, sizeof *out);
  if (in)
    *out = *in;
  if (!out->instructions)
    out->instructions = DEFAULT_INSTRUCTIONS;
  if (!out->wall_ms)
    out->wall_ms = DEFAULT_WALL_MS;
  if (!out->memory)
    out->memory = DEFAULT_MEMORY;
}

/* A new state with the town's scripts loaded; hooks registered. */
static int rt_open(core_host *h, const core_town *town,
                   const core_script_limits *lim, rt **out, core_err *err)
{
  *out = NULL;
  rt *r = calloc(1, sizeof *r);
  if (!r)
    return core_err_set(err, TWIN_ERR_NOMEM, "out of memory");
  r->h = h;
  r->town = town;
  limits_fill(&r->lim, lim);
  if (r->lim.memory % ((size_t)1 << 20) == 0)
    snprintf(r->cap_text, sizeof r->cap_text, "%zu MiB", r->lim.memory >> 20);
  else
    snprintf(r->cap_text, sizeof r->cap_text, "%zu bytes", r->lim.memory);
  int rc = list_files(r, err);
  if (rc) {
    rt_free(r);
    return rc;
  }
  lua_State *L = lua_newstate(rt_alloc, r);
  if (!L) {
    core_err_set(err, TWIN_ERR_NOMEM,
                 "town '%s': cannot create a Lua state (memory cap %s)",
                 town->id, r->cap_text);
    rt_free(r);
    return TWIN_ERR_NOMEM;
  }
  *call_gen(L) = 0;
  lua_atpanic(L, l_panic);
  r->L = L;
  lua_sethook(L, budget_hook, LUA_MASKCOUNT, HOOK_STEP);
  char msg[ERR_MAX + 512];
  call c = {.kind = CALL_SETUP};
  if (rt_run(r, NULL, &c, town->id, msg, sizeof msg, NULL) != LUA_OK) {
    core_err_set(err, TWIN_ERR_CONFIG, "town '%s': cannot set up the rules: %s",
                 town->id, msg);
    rt_free(r);
    return TWIN_ERR_CONFIG;
  }
  r->loading = 1;
  for (size_t i = 0; i < r->n_files; i++) {
    char *path = core_path_join(town->script_dir, r->files[i]);
    char *text = NULL, *chunk = NULL;
    size_t len = 0;
    rc = path ? core_read_file(path, &text, &len, err)
              : core_err_set(err, TWIN_ERR_NOMEM, "out of memory");
    if (!rc && len && text[0] == LUA_SIGNATURE[0])
      rc = core_err_set(err, TWIN_ERR_CONFIG,
                        "%s: binary chunks are not allowed (text only)", path);
    if (!rc && !(chunk = malloc(strlen(path) + 2)))
      rc = core_err_set(err, TWIN_ERR_NOMEM, "out of memory");
    if (!rc) {
      sprintf(chunk, "@%s", path);
      call cc = {
          .kind = CALL_CHUNK, .text = text, .len = len, .chunkname = chunk};
      if (rt_run(r, NULL, &cc, path, msg, sizeof msg, NULL) != LUA_OK)
        rc = core_err_set(err, TWIN_ERR_CONFIG, "%s", msg);
    }
    free(chunk);
    free(text);
    free(path);
    if (rc) {
      if (rc != TWIN_ERR_NOMEM)
        rc = TWIN_ERR_CONFIG;
      rt_free(r);
      return rc;
    }
  }
  r->loading = 0;
  *out = r;
  return TWIN_OK;
}

/* ------------------------------------------------------------------------ */
/* The runtime                                                              */
/* ------------------------------------------------------------------------ */

int core_script_open(core_host *h, const core_town *town,
                     const core_script_limits *limits, core_script **out,
                     core_err *err)
{
  *out = NULL;
  if (!town)
    return core_err_set(err, TWIN_ERR_INVALID, "no town");
  core_script *s = calloc(1, sizeof *s);
  if (!s)
    return core_err_set(err, TWIN_ERR_NOMEM, "out of memory");
  pthread_mutexattr_t a;
  pthread_mutexattr_init(&a);
  pthread_mutexattr_settype(&a, PTHREAD_MUTEX_RECURSIVE);
  pthread_mutex_init(&s->lock, &a);
  pthread_mutexattr_destroy(&a);
  s->h = h;
  s->town = town;
  limits_fill(&s->lim, limits);
  int rc = rt_open(h, town, &s->lim, &s->r, err);
  if (rc) {
    pthread_mutex_destroy(&s->lock);
    free(s);
    return rc;
  }
  *out = s;
  return TWIN_OK;
}

void core_script_close(core_script *s)
{
  if (!s)
    return;
  rt_free(s->r);
  pthread_mutex_destroy(&s->lock);
  free(s);
}

int core_script_reload(core_script *s, core_err *err)
{
  if (!s)
    return core_err_set(err, TWIN_ERR_INVALID, "no runtime");
  rt *fresh;
  /* Built without the lock: the running rules keep serving meanwhile. */
  int rc = rt_open(s->h, s->town, &s->lim, &fresh, err);
  if (rc)
    return rc;
  pthread_mutex_lock(&s->lock);
  if (s->r->depth) {
    pthread_mutex_unlock(&s->lock);
    rt_free(fresh);
    return core_err_set(err, TWIN_ERR_UNAVAILABLE,
                        "town '%s': cannot reload from inside a rule",
                        s->town->id);
  }
  rt *old = s->r;
  s->r = fresh;
  pthread_mutex_unlock(&s->lock);
  rt_free(old);
  return TWIN_OK;
}

/* ---- hooks --------------------------------------------------------------- */

static int skip_backoff(hook *hk)
{
  if (!hk->backoff_until)
    return 0;
  if (core_now_ms() < hk->backoff_until) {
    hk->skipped++;
    return 1;
  }
  return 0;
}

/* Account one call of hk; failures are logged and, after BACKOFF_AFTER in a
 * row, back the hook off (60 s, doubling per further failure, up to 1 h). */
static void hook_done(rt *r, hook *hk, int failed, const char *msg, uint64_t ns)
{
  hk->calls++;
  hk->time_ns += ns;
  if (!failed) {
    hk->consecutive = 0;
    hk->backoff_until = 0;
    return;
  }
  twin_time now = core_now_ms();
  hk->errors++;
  hk->consecutive++;
  hk->last_error_time = now;
  snprintf(hk->last_error, sizeof hk->last_error, "%s", msg);
  core_utf8_fix(hk->last_error);
  core_log(TWIN_LEVEL_WARNING, r->town->id, "rules", "%s failed: %s", hk->name,
           msg);
  if (hk->consecutive >= BACKOFF_AFTER) {
    int extra = hk->consecutive - BACKOFF_AFTER;
    twin_time wait = BACKOFF_FIRST_MS;
    while (extra-- > 0 && wait < BACKOFF_MAX_MS)
      wait *= 2;
    if (wait > BACKOFF_MAX_MS)
      wait = BACKOFF_MAX_MS;
    hk->backoff_until = now + wait;
    core_log(TWIN_LEVEL_WARNING, r->town->id, "rules",
             "%s failed %d times in a row; skipping it for %lld s", hk->name,
             hk->consecutive, (long long)(wait / 1000));
  }
}

/* Run one hook call; the status says whether memory really ran out. */
static int run_hook(rt *r, twin_ctx *ctx, hook *hk, call *c)
{
  char msg[ERR_MAX];
  uint64_t ns;
  c->ref = hk->ref;
  int st = rt_run(r, ctx, c, hk->source, msg, sizeof msg, &ns);
  hook_done(r, hk, st != LUA_OK, msg, ns);
  return st == LUA_ERRMEM && r->mem_state == MEM_OK ? TWIN_ERR_NOMEM : TWIN_OK;
}

static int match(const char *filter, const char *value)
{
  return !filter || (value && !strcmp(filter, value));
}

int core_script_on_observation(core_script *s, twin_ctx *ctx,
                               const char *plugin, const char *type,
                               const char *id, const twin_attr *obs)
{
  if (!s || !ctx || !obs || !obs->name || !plugin || !type || !id)
    return TWIN_ERR_INVALID;
  pthread_mutex_lock(&s->lock);
  rt *r = s->r;
  int rc = TWIN_OK;
  for (size_t i = 0; r->n_obs && i < r->n_hooks; i++) {
    hook *hk = &r->hooks[i];
    if (hk->kind != HK_OBS || !match(hk->plugin, plugin) ||
        !match(hk->type, type) || !match(hk->id, id) ||
        !match(hk->attr, obs->name) || skip_backoff(hk))
      continue;
    call c = {
        .kind = CALL_OBS, .plugin = plugin, .type = type, .id = id, .obs = obs};
    if (run_hook(r, ctx, hk, &c))
      rc = TWIN_ERR_NOMEM;
  }
  pthread_mutex_unlock(&s->lock);
  return rc;
}

static int take_emitted(rt *r, uint64_t h)
{
  for (size_t i = 0; i < r->n_emitted; i++)
    if (r->emitted[i] == h) {
      memmove(r->emitted + i, r->emitted + i + 1,
              (r->n_emitted - i - 1) * sizeof r->emitted[0]);
      r->n_emitted--;
      return 1;
    }
  return 0;
}

static const char *str_of(const json_t *o, const char *k)
{
  return json_string_value(json_object_get(o, k));
}

int core_script_on_event(core_script *s, twin_ctx *ctx, const char *event_json,
                         size_t len)
{
  if (!s || !ctx || !event_json)
    return TWIN_ERR_INVALID;
  pthread_mutex_lock(&s->lock);
  rt *r = s->r;
  int rc = TWIN_OK;
  /* An event emitted while on_event hooks run (or by one of them, handed
   * back later) does not trigger on_event hooks: no chains, no loops. */
  if (r->in_event || take_emitted(r, fnv1a(event_json, len)) || !r->n_event) {
    pthread_mutex_unlock(&s->lock);
    return TWIN_OK;
  }
  json_t *ev = json_loadb(event_json, len, 0, NULL);
  if (!json_is_object(ev)) {
    json_decref(ev);
    pthread_mutex_unlock(&s->lock);
    return TWIN_ERR_INVALID;
  }
  const char *plugin = str_of(ev, "plugin"), *level = str_of(ev, "level");
  const char *etype = str_of(ev, "entity_type"), *eid = str_of(ev, "entity_id");
  r->in_event = 1;
  for (size_t i = 0; i < r->n_hooks; i++) {
    hook *hk = &r->hooks[i];
    if (hk->kind != HK_EVENT || !match(hk->plugin, plugin) ||
        !match(hk->level, level) || !match(hk->type, etype) ||
        !match(hk->id, eid) || skip_backoff(hk))
      continue;
    call c = {.kind = CALL_EVENT, .json = ev};
    if (run_hook(r, ctx, hk, &c))
      rc = TWIN_ERR_NOMEM;
  }
  r->in_event = 0;
  json_decref(ev);
  pthread_mutex_unlock(&s->lock);
  return rc;
}

int core_script_on_schedule(core_script *s, twin_ctx *ctx, twin_time now)
{
  if (!s || !ctx)
    return TWIN_ERR_INVALID;
  pthread_mutex_lock(&s->lock);
  rt *r = s->r;
  int rc = TWIN_OK;
  for (size_t i = 0; r->n_sched && i < r->n_hooks; i++) {
    hook *hk = &r->hooks[i];
    if ((hk->kind != HK_EVERY && hk->kind != HK_DAILY) || hk->next_due > now)
      continue;
    twin_time due = hk->next_due;
    if (!skip_backoff(hk)) {
      call c = {.kind = CALL_TIME, .now = now};
      if (run_hook(r, ctx, hk, &c))
        rc = TWIN_ERR_NOMEM;
    }
    hk = &r->hooks[i];
    hk->next_due = hk->kind == HK_EVERY ? next_every(now, hk->minutes)
                                        : next_daily(r->town->timezone, hk->hh,
                                                     hk->mm, now, due);
  }
  pthread_mutex_unlock(&s->lock);
  return rc;
}

twin_time core_script_next_due(core_script *s)
{
  twin_time next = INT64_MAX;
  if (!s)
    return next;
  pthread_mutex_lock(&s->lock);
  rt *r = s->r;
  for (size_t i = 0; i < r->n_hooks; i++)
    if ((r->hooks[i].kind == HK_EVERY || r->hooks[i].kind == HK_DAILY) &&
        r->hooks[i].next_due < next)
      next = r->hooks[i].next_due;
  pthread_mutex_unlock(&s->lock);
  return next;
}

int core_script_has_observation_hooks(core_script *s)
{
  if (!s)
    return 0;
  pthread_mutex_lock(&s->lock);
  int n = s->r->n_obs > 0;
  pthread_mutex_unlock(&s->lock);
  return n;
}

int core_script_has_event_hooks(core_script *s)
{
  if (!s)
    return 0;
  pthread_mutex_lock(&s->lock);
  int n = s->r->n_event > 0;
  pthread_mutex_unlock(&s->lock);
  return n;
}

/* ---- functions plugins call -------------------------------------------- */

static void say(core_script *s, twin_ctx *ctx, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void say(core_script *s, twin_ctx *ctx, const char *fmt, ...)
{
  char buf[ERR_MAX + 256];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(buf, sizeof buf, fmt, ap);
  va_end(ap);
  core_utf8_fix(buf);
  if (s->h && s->h->api.set_error)
    s->h->api.set_error(ctx, buf);
  else
    snprintf(ctx->error, sizeof ctx->error, "%s", buf);
}

int core_script_call(core_script *s, twin_ctx *ctx, const char *function,
                     const char *args_json, size_t len, twin_text_cb cb,
                     void *ud)
{
  if (!s || !ctx || !function || !cb)
    return TWIN_ERR_INVALID;
  json_error_t je;
  json_t *args = args_json ? json_loadb(args_json, len, 0, &je) : json_array();
  if (!json_is_array(args) || json_array_size(args) > MAX_ARGS) {
    json_decref(args);
    say(s, ctx, "call_script %s: arguments must be a JSON array of at most %d",
        function, MAX_ARGS);
    return TWIN_ERR_INVALID;
  }
  pthread_mutex_lock(&s->lock);
  rt *r = s->r;
  call c = {.kind = CALL_FUNC, .fname = function, .json = args};
  char msg[ERR_MAX];
  int st = rt_run(r, ctx, &c, function, msg, sizeof msg, NULL);
  int nomem = st == LUA_ERRMEM && r->mem_state == MEM_OK;
  pthread_mutex_unlock(&s->lock);
  json_decref(args);
  int rc;
  if (st != LUA_OK) {
    say(s, ctx, "%s", msg);
    rc = nomem ? TWIN_ERR_NOMEM : TWIN_ERR_UNAVAILABLE;
  } else if (c.not_found) {
    say(s, ctx, "town '%s' defines no function '%s'", s->town->id, function);
    rc = TWIN_ERR_NOT_FOUND;
  } else if (c.bad_result) {
    say(s, ctx, "%s: the result cannot be JSON: %s", function, c.why);
    rc = TWIN_ERR_INVALID;
  } else {
    char *text = json_dumps(c.result, JSON_COMPACT | JSON_ENCODE_ANY);
    rc = text ? cb(ud, text, strlen(text)) : TWIN_ERR_NOMEM;
    if (rc == TWIN_STOP)
      rc = TWIN_OK;
    free(text);
  }
  json_decref(c.result);
  return rc;
}

/* ---- reports ---------------------------------------------------------------
 */

static json_t *time_json(twin_time t)
{
  if (!t || t == INT64_MAX)
    return json_null();
  char buf[40];
  core_format_time(t, buf, sizeof buf);
  return json_string(buf);
}

static void set_opt(json_t *o, const char *k, const char *v)
{
  if (v)
    json_object_set_new(o, k, json_string(v));
}

static json_t *hook_json(const hook *hk, int stats)
{
  json_t *o = json_object(), *f = json_object();
  json_object_set_new(o, "name", json_string(hk->name));
  json_object_set_new(o, "kind", json_string(kind_names[hk->kind]));
  json_object_set_new(o, "source", json_string(hk->source));
  set_opt(f, "plugin", hk->plugin);
  set_opt(f, "level", hk->level);
  set_opt(f, "type", hk->type);
  set_opt(f, "id", hk->id);
  set_opt(f, "attr", hk->attr);
  if (hk->kind == HK_EVERY)
    json_object_set_new(f, "minutes", json_integer(hk->minutes));
  if (hk->kind == HK_DAILY) {
    char at[8];
    snprintf(at, sizeof at, "%02d:%02d", hk->hh, hk->mm);
    json_object_set_new(f, "at", json_string(at));
  }
  json_object_set_new(o, "filter", f);
  if (hk->kind == HK_EVERY || hk->kind == HK_DAILY)
    json_object_set_new(o, "next_due", time_json(hk->next_due));
  if (!stats)
    return o;
  json_object_set_new(o, "calls", json_integer((json_int_t)hk->calls));
  json_object_set_new(o, "errors", json_integer((json_int_t)hk->errors));
  json_object_set_new(o, "skipped", json_integer((json_int_t)hk->skipped));
  json_object_set_new(o, "consecutive_errors", json_integer(hk->consecutive));
  json_object_set_new(o, "last_error",
                      hk->last_error[0] ? json_string(hk->last_error)
                                        : json_null());
  json_object_set_new(o, "last_error_time", time_json(hk->last_error_time));
  json_object_set_new(o, "time_ms", json_real((double)hk->time_ns / 1e6));
  twin_time now = core_now_ms();
  int active = hk->backoff_until && now < hk->backoff_until;
  json_object_set_new(
      o, "backoff",
      json_pack("{s:b,s:o}", "active", active, "until",
                active ? time_json(hk->backoff_until) : json_null()));
  return o;
}

/* Global functions of the sandbox (what plugins can call by name). */
static json_t *functions_json(rt *r)
{
  json_t *a = json_array();
  lua_State *L = r->L;
  if (!lua_checkstack(L, 4))
    return a;
  lua_rawgeti(L, LUA_REGISTRYINDEX, r->env_ref);
  lua_pushnil(L);
  while (lua_next(L, -2)) {
    /* Script functions are Lua functions; the sandbox's own are C. */
    if (lua_type(L, -2) == LUA_TSTRING && lua_type(L, -1) == LUA_TFUNCTION &&
        !lua_iscfunction(L, -1)) {
      size_t n;
      const char *k = lua_tolstring(L, -2, &n);
      json_t *name = json_stringn(k, n);
      if (name)
        json_array_append_new(a, name);
    }
    lua_pop(L, 1);
  }
  lua_pop(L, 1);
  return a;
}

static json_t *rt_json(rt *r, int stats)
{
  json_t *o = json_object(), *files = json_array(), *hooks = json_array();
  json_object_set_new(o, "town", json_string(r->town->id));
  json_object_set_new(o, "script_dir",
                      r->town->script_dir ? json_string(r->town->script_dir)
                                          : json_null());
  for (size_t i = 0; i < r->n_files; i++)
    json_array_append_new(files, json_string(r->files[i]));
  json_object_set_new(o, "files", files);
  for (size_t i = 0; i < r->n_hooks; i++)
    json_array_append_new(hooks, hook_json(&r->hooks[i], stats));
  json_object_set_new(o, "hooks", hooks);
  json_object_set_new(o, "memory_bytes", json_integer((json_int_t)r->mem));
  json_object_set_new(o, "memory_cap_bytes",
                      json_integer((json_int_t)r->lim.memory));
  return o;
}

static char *dump_free(json_t *o)
{
  char *s = o ? json_dumps(o, JSON_COMPACT) : NULL;
  json_decref(o);
  return s;
}

char *core_script_status(core_script *s)
{
  if (!s)
    return NULL;
  pthread_mutex_lock(&s->lock);
  json_t *o = rt_json(s->r, 1);
  if (o && !s->r->depth) /* the state is not to be touched mid-call */
    json_object_set_new(o, "functions", functions_json(s->r));
  char *out = dump_free(o);
  pthread_mutex_unlock(&s->lock);
  return out;
}

char *core_script_check(const core_town *town, const core_script_limits *l,
                        core_err *err)
{
  if (!town) {
    core_err_set(err, TWIN_ERR_INVALID, "no town");
    return NULL;
  }
  rt *r;
  if (rt_open(NULL, town, l, &r, err))
    return NULL;
  json_t *o = rt_json(r, 0);
  if (o)
    json_object_set_new(o, "functions", functions_json(r));
  char *out = dump_free(o);
  rt_free(r);
  if (!out)
    core_err_set(err, TWIN_ERR_NOMEM, "out of memory");
  return out;
}
