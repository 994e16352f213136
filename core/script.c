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
#include "script_int.h"

const char *const scr_kind_names[] = {"on_observation", "every", "daily",
                                      "on_event"};

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
int scr_tz_local(const char *tz, twin_time ms, struct tm *out)
{
  return core_tz_local(core_tz_get_or_utc(tz), ms_to_sec(ms), out) == TWIN_OK;
}

/* Local time in tz -> ms, like mktime with tm_isdst -1 (see tz.h). */
int scr_tz_mktime(const char *tz, struct tm *tm, twin_time *out)
{
  int64_t t;
  if (core_tz_mktime(core_tz_get_or_utc(tz), tm, &t) != TWIN_OK ||
      t > INT64_MAX / 1000 || t < INT64_MIN / 1000)
    return 0;
  *out = (twin_time)t * 1000;
  return 1;
}

/* The next multiple of `minutes` minutes since the epoch after now. */
twin_time scr_next_every(twin_time now, int minutes)
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
twin_time scr_next_daily(const char *tz, int hh, int mm, twin_time now,
                         twin_time ran)
{
  struct tm base, done;
  if (!scr_tz_local(tz, now, &base))
    return INT64_MAX;
  int start = 0;
  if (ran != INT64_MIN && scr_tz_local(tz, ran, &done) &&
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
    if (scr_tz_mktime(tz, &t, &due) && due > now)
      return due;
  }
  return INT64_MAX;
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

int scr_setup_sandbox(lua_State *L);

/* The observation table. The hot path: the key strings are the upvalues of
 * obs_trampoline (interned once), values are pushed with their lengths. */
const char *const scr_obs_keys[] = {"plugin", "type", "id",
                                    "attr",   "time", "value"};

int scr_obs_trampoline(lua_State *L)
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
  scr_push_value(L, &c->obs->value);
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
    return scr_setup_sandbox(L);
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
    scr_push_json(L, c->json, 0);
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
      scr_push_json(L, json_array_get(c->json, i), 1);
    lua_call(L, (int)n, 1);
    const void *path[JSON_DEPTH];
    c->result = scr_to_json(L, -1, 0, path, c->why, sizeof c->why);
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
    scr_budget_message(r,
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
    scr_budget_reset(r, t0);
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
/* Building a state                                                         */
/* ------------------------------------------------------------------------ */

static void rt_free(rt *r)
{
  if (!r)
    return;
  if (r->L) {
    scr_budget_reset(r, core_mono_ns());
    lua_close(r->L);
  }
  for (size_t i = 0; i < r->n_hooks; i++)
    scr_hook_free(&r->hooks[i]);
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
  lua_State *L = lua_newstate(scr_rt_alloc, r);
  if (!L) {
    core_err_set(err, TWIN_ERR_NOMEM,
                 "town '%s': cannot create a Lua state (memory cap %s)",
                 town->id, r->cap_text);
    rt_free(r);
    return TWIN_ERR_NOMEM;
  }
  *call_gen(L) = 0;
  lua_atpanic(L, scr_l_panic);
  r->L = L;
  lua_sethook(L, scr_budget_hook, LUA_MASKCOUNT, HOOK_STEP);
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
  if (r->in_event || take_emitted(r, scr_fnv1a(event_json, len)) ||
      !r->n_event) {
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
    hk->next_due =
        hk->kind == HK_EVERY
            ? scr_next_every(now, hk->minutes)
            : scr_next_daily(r->town->timezone, hk->hh, hk->mm, now, due);
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
  json_object_set_new(o, "kind", json_string(scr_kind_names[hk->kind]));
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
