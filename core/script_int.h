/*
 * script_int.h — what the files of the town rules runtime share; internal
 * to core (the runtime's contract is script.h). The files: script.c (a
 * town's state built, its files loaded, calls into it, hooks, schedules,
 * functions plugins call, reports), script_limits.c (the memory cap, the
 * instruction budget, the buffers the runtime owns), script_value.c (values
 * between Lua, twin_value and JSON), script_twin.c (the twin module and
 * hook registration), script_sandbox.c (what Lua code may use).
 */
#ifndef CORE_SCRIPT_INT_H
#define CORE_SCRIPT_INT_H

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
extern const char *const scr_kind_names[];

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
static inline rt *rt_of(lua_State *L)
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
static inline uintptr_t *call_gen(lua_State *L)
{
  return (uintptr_t *)lua_getextraspace(L);
}

/* ---- shared between the files ---------------------------------------- *
 * The names say where each lives: budget, rt_alloc, scratch, collect:
 * script_limits.c; push, to_json, to_value, box_gc: script_value.c;
 * setup_sandbox: script_sandbox.c; obs_keys, obs_trampoline, hook_free,
 * next_every, next_daily, tz_*, fnv1a, l_panic: script.c. */
extern const char *const scr_obs_keys[];

int scr_box_gc(lua_State *L);
void scr_budget_hook(lua_State *L, lua_Debug *ar);
void scr_budget_message(rt *r, const char *where, int line, char *buf,
                        size_t n);
void scr_budget_reset(rt *r, uint64_t now_ns);
int scr_collect_attr(void *ud, const twin_attr *a);
int scr_collect_entity(void *ud, const char *type, const char *id);
int scr_collect_text(void *ud, const char *json, size_t len);
uint64_t scr_fnv1a(const char *s, size_t n);
void scr_hook_free(hook *hk);
int scr_l_panic(lua_State *L);
twin_time scr_next_daily(const char *tz, int hh, int mm, twin_time now,
                         twin_time ran);
twin_time scr_next_every(twin_time now, int minutes);
int scr_obs_trampoline(lua_State *L);
void scr_push_item_value(lua_State *L, rt *r, const item *it);
void scr_push_json(lua_State *L, const json_t *j, int depth);
void scr_push_json_text(lua_State *L, const char *fn, const char *text,
                        size_t len);
void scr_push_value(lua_State *L, const twin_value *v);
void *scr_rt_alloc(void *ud, void *ptr, size_t osize, size_t nsize);
void scr_scratch_done(rt *r);
void scr_scratch_reset(rt *r);
int scr_setup_sandbox(lua_State *L);
json_t *scr_to_json(lua_State *L, int idx, int depth, const void **path,
                    char *why, size_t wn);
int scr_to_value(lua_State *L, int idx, twin_value *v, const char **why);
int scr_tz_local(const char *tz, twin_time ms, struct tm *out);
int scr_tz_mktime(const char *tz, struct tm *tm, twin_time *out);

/* The `twin` module's table, pushed on L (script_twin.c). */
void scr_push_twin_module(lua_State *L);
/* The metatable name of a parsed JSON value held for Lua (script_value.c):
 * its __gc frees the value. */
#define JSON_BOX "twin.jsonbox"

#endif
