/*
 * script_limits.c — the limits of a town's rules: the counting allocator
 * behind the memory cap, the instruction budget and wall-clock deadline of
 * a call (a count hook that cannot be swallowed by pcall), and the buffers
 * the runtime owns for results of host iterations.
 */
#include "script_int.h"

/* ------------------------------------------------------------------------ */
/* Memory cap and instruction budget                                        */
/* ------------------------------------------------------------------------ */

void scr_budget_hook(lua_State *L, lua_Debug *ar);

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
void *scr_rt_alloc(void *ud, void *ptr, size_t osize, size_t nsize)
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
        lua_sethook(r->L, scr_budget_hook, LUA_MASKCOUNT, 1);
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

void scr_budget_message(rt *r, const char *where, int line, char *buf, size_t n)
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
void scr_budget_hook(lua_State *L, lua_Debug *ar)
{
  rt *r = rt_of(L);
  int step = lua_gethookcount(L);
  if (!r->tripped && r->mem_state == MEM_OK) {
    r->steps += (uint64_t)step;
    if (r->steps < r->lim.instructions && core_mono_ns() < r->deadline_ns) {
      if (step != HOOK_STEP) /* a thread armed during an earlier trip */
        lua_sethook(L, scr_budget_hook, LUA_MASKCOUNT, HOOK_STEP);
      return;
    }
    r->tripped = 1;
  }
  if (r->mem_state == MEM_PENDING)
    r->mem_state = MEM_TRIPPED; /* raised without a retry; still over */
  if (step != 1)
    lua_sethook(L, scr_budget_hook, LUA_MASKCOUNT, 1);
  char msg[LUA_IDSIZE + 160];
  lua_getinfo(L, "Sl", ar);
  scr_budget_message(r, ar->short_src, ar->currentline, msg, sizeof msg);
  if (!r->trip_msg[0]) /* the call reports the first, unwrapped */
    snprintf(r->trip_msg, sizeof r->trip_msg, "%s", msg);
  lua_pushstring(L, msg);
  lua_error(L);
}

/* A fresh budget for an outermost call; the hook is re-armed only when a
 * trip left it at every instruction. */
void scr_budget_reset(rt *r, uint64_t now_ns)
{
  r->steps = 0;
  r->tripped = 0;
  r->mem_state = MEM_OK;
  r->mem_at[0] = 0;
  r->trip_msg[0] = 0;
  r->deadline_ns = now_ns + (uint64_t)r->lim.wall_ms * 1000000u;
  if (lua_gethookcount(r->L) != HOOK_STEP)
    lua_sethook(r->L, scr_budget_hook, LUA_MASKCOUNT, HOOK_STEP);
}

/* ------------------------------------------------------------------------ */
/* Buffers the runtime owns                                                 */
/* ------------------------------------------------------------------------ */

void scr_scratch_reset(rt *r)
{
  r->n_items = 0;
  r->arena_len = 0;
  r->scratch_full = 0;
}

/* After a large result, give the memory back: the buffers exist to spare
 * the common small call an allocation, not to hold a peak forever. */
void scr_scratch_done(rt *r)
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

int scr_collect_attr(void *ud, const twin_attr *a)
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

int scr_collect_entity(void *ud, const char *type, const char *id)
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

int scr_collect_text(void *ud, const char *json, size_t len)
{
  rt *r = ud;
  size_t off;
  scr_scratch_reset(r);
  if (!arena_add(r, json, len, &off))
    return r->scratch_full ? TWIN_ERR_TOO_BIG : TWIN_ERR_NOMEM;
  return TWIN_OK;
}
