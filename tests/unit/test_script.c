/*
 * test_script.c — the town rules runtime (core/script.c) against a real
 * in-process host (probe.so, LMDB): the sandbox and its limits, load order
 * and require, the twin module inside the transaction of what triggered a
 * rule, hooks with their filters, rollback and backoff, reload, schedules in
 * the town's timezone, and functions plugins call by name. Every failure
 * test also checks that the runtime serves the next call.
 */
#include "testhost.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "ctx.h"
#include "script.h"
#include "store.h"
#include "view.h"

typedef struct fx {
  th_host *t;
  core_host *h; /* t->h: open without a pipeline, the tests write */
  core_script *s;
} fx;

/* Towns alpha and beta with probe and their rules in alpha/ and beta/,
 * gamma without plugins and with a script folder that does not exist. */
static int setup(void **state)
{
  fx *f = calloc(1, sizeof *f);
  f->t = th_new();
  th_fixture(f->t, "probe.so");
  th_config(f->t, TH_FIXTURES,
            "{'id':'alpha','name':'Alpha','timezone':'Europe/Berlin',"
            " 'scripts':'alpha','plugins':{'probe':{}}},"
            "{'id':'beta','name':'Beta','timezone':'Europe/Berlin',"
            " 'scripts':'beta','plugins':{'probe':{}}},"
            "{'id':'gamma','name':'Gamma','timezone':'Europe/Berlin',"
            " 'scripts':'no-such-folder'}");
  core_err err;
  if (th_try_open(f->t, CORE_HOST_INSTANCES, &err))
    fail_msg("host: %s", err.msg);
  f->h = f->t->h;
  *state = f;
  return 0;
}

static int teardown(void **state)
{
  fx *f = *state;
  core_script_close(f->s);
  th_free(f->t);
  free(f);
  return 0;
}

static const core_town *town(fx *f, const char *id)
{
  const core_town *t = core_config_town(f->h->cfg, id);
  assert_non_null(t);
  return t;
}

static void script(fx *f, const char *name, const char *text)
{
  th_rule(f->t, "alpha", name, text);
}

/* Open alpha's rules (into f->s) with the given limits (NULL: defaults). */
static core_script *open_limits(fx *f, const core_script_limits *l)
{
  core_err err;
  if (core_script_open(f->h, town(f, "alpha"), l, &f->s, &err))
    fail_msg("open: %s", err.msg);
  return f->s;
}

static core_script *open_rules(fx *f)
{
  return open_limits(f, NULL);
}

/* A write transaction with an overlay and a town context, as the ingest
 * pipeline gives the rules. */
typedef struct wtx {
  fx *f;
  MDB_txn *txn;
  core_overlay *ov;
  twin_ctx ctx;
} wtx;

static void begin(fx *f, wtx *w, const char *town_id)
{
  core_err err;
  w->f = f;
  assert_int_equal(core_store_begin_write(f->h->store, &w->txn, &err), 0);
  w->ov = core_overlay_new();
  core_ctx_init_town(&w->ctx, f->h, town(f, town_id), "rules", CORE_CTX_WRITE,
                     w->txn, w->ov);
}

static void commit(wtx *w)
{
  core_err err;
  if (core_overlay_flush(w->ov, w->f->h->store, w->txn, NULL, &err))
    fail_msg("flush: %s", err.msg);
  assert_int_equal(mdb_txn_commit(w->txn), 0);
  core_overlay_free(w->ov);
  core_ctx_done(&w->ctx);
}

static void discard(wtx *w)
{
  mdb_txn_abort(w->txn);
  core_overlay_free(w->ov);
  core_ctx_done(&w->ctx);
}

/* Read one attribute of rules' entity in town_id, committed state. */
static int read_attr(fx *f, const char *town_id, const char *type,
                     const char *id, const char *attr, twin_value *out)
{
  MDB_txn *txn;
  core_err err;
  twin_ctx ctx;
  assert_int_equal(core_store_begin_read(f->h->store, &txn, &err), 0);
  core_ctx_init_town(&ctx, f->h, town(f, town_id), "rules", CORE_CTX_READ, txn,
                     NULL);
  twin_attr a;
  int rc = f->h->api.entity_get(&ctx, type, id, attr, &a);
  if (!rc)
    *out = a.value; /* integers and booleans only: strings die with txn */
  core_store_end_read(f->h->store, txn);
  return rc;
}

static int obs_int(core_script *s, wtx *w, const char *plugin, const char *type,
                   const char *id, const char *attr, int64_t v, twin_time t)
{
  twin_attr a = {attr, t, twin_integer(v)};
  return core_script_on_observation(s, &w->ctx, plugin, type, id, &a);
}

typedef struct reply {
  char *json;
} reply;

static int take_reply(void *ud, const char *json, size_t len)
{
  reply *r = ud;
  free(r->json);
  r->json = strndup(json, len);
  return TWIN_OK;
}

/* Call a script function in a fresh write transaction (discarded); returns
 * the status, *out the JSON result (caller frees) or ctx's error. */
static int call(fx *f, const char *fn, const char *args, char **out)
{
  wtx w;
  begin(f, &w, "alpha");
  reply r = {NULL};
  int rc =
      core_script_call(f->s, &w.ctx, fn, args, strlen(args), take_reply, &r);
  if (rc)
    r.json = strdup(w.ctx.error);
  discard(&w);
  *out = r.json;
  return rc;
}

static void call_ok(fx *f, const char *fn, const char *args, const char *want)
{
  char *out;
  int rc = call(f, fn, args, &out);
  if (rc)
    fail_msg("%s(%s) failed (%d): %s", fn, args, rc, out);
  /* compared as JSON: the order of a Lua table's keys is not defined */
  json_t *a = json_loads(out, JSON_DECODE_ANY, NULL);
  json_t *b = json_loads(want, JSON_DECODE_ANY, NULL);
  assert_non_null(b);
  if (!a || !json_equal(a, b))
    fail_msg("%s(%s) = %s, want %s", fn, args, out, want);
  json_decref(a);
  json_decref(b);
  free(out);
}

/* The call fails with status and a message containing each of want... */
static void call_fails(fx *f, const char *fn, int status, const char *want,
                       const char *want2)
{
  char *out;
  int rc = call(f, fn, "[]", &out);
  if (rc != status)
    fail_msg("%s() returned %d (%s), want %d", fn, rc, out, status);
  if (!strstr(out, want) || (want2 && !strstr(out, want2)))
    fail_msg("%s() error \"%s\" lacks \"%s\"%s%s", fn, out, want,
             want2 ? " or " : "", want2 ? want2 : "");
  free(out);
}

static json_t *status_json(core_script *s)
{
  char *text = core_script_status(s);
  assert_non_null(text);
  json_t *j = json_loads(text, 0, NULL);
  free(text);
  assert_non_null(j);
  return j;
}

static const char *ok_fn = "function ok() return 42 end\n";

/* ------------------------------------------------------------------------ */
/* Limits                                                                   */
/* ------------------------------------------------------------------------ */

static void an_endless_loop_hits_the_instruction_budget(void **state)
{
  fx *f = *state;
  script(f, "10-a.lua", "function spin()\n  while true do end\nend\n");
  script(f, "20-ok.lua", ok_fn);
  open_rules(f);
  call_fails(f, "spin", TWIN_ERR_UNAVAILABLE,
             "10-a.lua:2: instruction budget "
             "exceeded (5000000 instructions "
             "or 50 ms; endless loop?)",
             NULL);
  call_ok(f, "ok", "[]", "42");
}

static void an_endless_loop_inside_pcall_cannot_be_swallowed(void **state)
{
  fx *f = *state;
  script(f, "10-a.lua",
         "function spin()\n"
         "  local ok, e = pcall(function() while true do end end)\n"
         "  for i = 1, 100 do pcall(error, 'again') end\n"
         "  return 'swallowed: ' .. tostring(e)\n"
         "end\n");
  script(f, "20-ok.lua", ok_fn);
  open_rules(f);
  call_fails(f, "spin", TWIN_ERR_UNAVAILABLE, "instruction budget exceeded",
             NULL);
  call_ok(f, "ok", "[]", "42");
}

static void a_growing_table_hits_the_memory_cap(void **state)
{
  fx *f = *state;
  script(f, "10-a.lua",
         "function bomb()\n"
         "  local t = {}\n"
         "  for i = 1, 1e9 do t[i] = {i, tostring(i)} end\n"
         "end\n");
  script(f, "20-ok.lua", ok_fn);
  /* time enough that the cap, not the budget, stops it */
  core_script_limits l = {
      .memory = 4u << 20, .wall_ms = 5000, .instructions = 1000000000};
  open_limits(f, &l);
  call_fails(f, "bomb", TWIN_ERR_UNAVAILABLE,
             "10-a.lua:3: memory cap of 4 MiB reached", NULL);
  call_ok(f, "ok", "[]", "42");
}

static void a_string_rep_bomb_hits_the_memory_cap(void **state)
{
  fx *f = *state;
  script(f, "10-a.lua",
         "function bomb()\n"
         "  local ok, e = pcall(string.rep, 'x', 1 << 30)\n"
         "  return #string.rep('y', 1 << 30)\n"
         "end\n");
  script(f, "20-ok.lua", ok_fn);
  open_rules(f);
  call_fails(f, "bomb", TWIN_ERR_UNAVAILABLE,
             "10-a.lua:", "memory cap of 32 MiB reached");
  call_ok(f, "ok", "[]", "42");
}

static void a_backtracking_pattern_on_a_long_text_is_refused(void **state)
{
  fx *f = *state;
  script(f, "10-a.lua",
         "function slow()\n"
         "  return string.rep('a', 20000):find('.-b')\n"
         "end\n"
         "function method()\n"
         "  local s = string.rep('a', 20000)\n"
         "  return s:gsub('a-a-b', '')\n"
         "end\n"
         "function fine()\n"
         "  local h, m = ('12:30'):match('(%d+):(%d+)')\n"
         "  local plain = string.rep('a', 100000):find('.-b', 1, true)\n"
         "  return {h = tonumber(h), m = tonumber(m), plain = plain}\n"
         "end\n");
  open_rules(f);
  call_fails(f, "slow", TWIN_ERR_UNAVAILABLE, "string.find",
             "too costly on a text of 20000 bytes");
  call_fails(f, "method", TWIN_ERR_UNAVAILABLE, "string.gsub", "too costly");
  call_ok(f, "fine", "[]", "{\"h\": 12, \"m\": 30}");
}

static void deep_recursion_fails_cleanly(void **state)
{
  fx *f = *state;
  script(f, "10-a.lua",
         "local function down(n) return 1 + down(n + 1) end\n"
         "function deep() return down(1) end\n");
  script(f, "20-ok.lua", ok_fn);
  /* time enough that the depth, not the budget, stops it */
  core_script_limits l = {.wall_ms = 5000, .instructions = 1000000000};
  open_limits(f, &l);
  char *out;
  uint64_t t0 = core_mono_ns();
  assert_int_equal(call(f, "deep", "[]", &out), TWIN_ERR_UNAVAILABLE);
  print_message("deep recursion stopped after %llu ms: %s\n",
                (unsigned long long)(core_mono_ns() - t0) / 1000000, out);
  if (!strstr(out, "stack overflow") && !strstr(out, "memory cap"))
    fail_msg("unexpected error: %s", out);
  free(out);
  call_ok(f, "ok", "[]", "42");
}

static void top_level_code_has_the_same_budget(void **state)
{
  fx *f = *state;
  script(f, "10-a.lua", "x = 1\nwhile true do end\n");
  core_err err;
  assert_int_equal(core_script_open(f->h, town(f, "alpha"), NULL, &f->s, &err),
                   TWIN_ERR_CONFIG);
  assert_non_null(strstr(err.msg, "10-a.lua:2: instruction budget exceeded"));
}

/* ------------------------------------------------------------------------ */
/* The sandbox                                                              */
/* ------------------------------------------------------------------------ */

static void the_sandbox_has_no_io_os_execute_debug_package_or_files(void **s)
{
  fx *f = *s;
  script(f, "10-a.lua",
         "function probe()\n"
         "  return {io = type(io), execute = type(os.execute),\n"
         "    getenv = type(os.getenv), exit = type(os.exit),\n"
         "    remove = type(os.remove), debug = type(debug),\n"
         "    package = type(package), dofile = type(dofile),\n"
         "    loadfile = type(loadfile), gc = type(collectgarbage),\n"
         "    time = type(os.time), date = type(os.date),\n"
         "    same = tostring(_G == _ENV)}\n"
         "end\n");
  open_rules(f);
  call_ok(f, "probe", "[]",
          "{\"io\":\"nil\",\"execute\":\"nil\",\"getenv\":\"nil\",\"exit\":"
          "\"nil\",\"remove\":\"nil\",\"debug\":\"nil\",\"package\":\"nil\","
          "\"dofile\":\"nil\",\"loadfile\":\"nil\",\"gc\":\"nil\",\"time\":"
          "\"function\",\"date\":\"function\",\"same\":\"true\"}");
}

static void calling_dofile_is_an_error(void **state)
{
  fx *f = *state;
  script(f, "10-a.lua", "function run() return dofile('/etc/passwd') end\n");
  script(f, "20-ok.lua", ok_fn);
  open_rules(f);
  call_fails(f, "run", TWIN_ERR_UNAVAILABLE, "10-a.lua:1:", "dofile");
  call_ok(f, "ok", "[]", "42");
}

static void require_of_a_standard_library_is_refused(void **state)
{
  fx *f = *state;
  script(f, "10-a.lua", "function run() return require('os') end\n");
  script(f, "20-ok.lua", ok_fn);
  open_rules(f);
  call_fails(f, "run", TWIN_ERR_UNAVAILABLE, "module 'os' not found", NULL);
  call_ok(f, "ok", "[]", "42");
}

static void load_refuses_a_binary_chunk(void **state)
{
  fx *f = *state;
  script(f, "10-a.lua",
         "function bin()\n"
         "  local f, e = load('\\27Lua\\84\\0\\25\\147\\13\\10\\26\\10\\4\\8"
         "\\8\\120\\86\\0\\0\\0\\0\\0\\0\\0\\0\\0\\0\\0\\40\\119\\64\\1')\n"
         "  return {loaded = f ~= nil, why = e}\n"
         "end\n"
         "function text() return load('return 1 + 1')() end\n");
  open_rules(f);
  call_ok(f, "bin", "[]",
          "{\"loaded\":false,\"why\":\"attempt to load a binary chunk (mode "
          "is 't')\"}");
  call_ok(f, "text", "[]", "2");
}

static void a_binary_script_file_is_refused_at_load(void **state)
{
  fx *f = *state;
  script(f, "10-a.lua", "\033Lua\x54");
  core_err err;
  assert_int_equal(core_script_open(f->h, town(f, "alpha"), NULL, &f->s, &err),
                   TWIN_ERR_CONFIG);
  assert_non_null(strstr(err.msg, "10-a.lua: binary chunks are not allowed"));
}

static void string_dump_is_gone_also_as_a_method(void **state)
{
  fx *f = *state;
  script(f, "10-a.lua",
         "function d() return {a = type(string.dump), b = type(('x').dump),\n"
         "  c = type(getmetatable('').__index.dump)} end\n");
  open_rules(f);
  call_ok(f, "d", "[]", "{\"a\":\"nil\",\"b\":\"nil\",\"c\":\"nil\"}");
}

static void finalizers_are_refused(void **state)
{
  fx *f = *state;
  script(f, "10-a.lua",
         "function gc() return setmetatable({}, {__gc = function() end}) "
         "end\n");
  script(f, "20-ok.lua", ok_fn);
  open_rules(f);
  call_fails(f, "gc", TWIN_ERR_UNAVAILABLE, "__gc metamethods are not", NULL);
  call_ok(f, "ok", "[]", "42");
}

/* ------------------------------------------------------------------------ */
/* Towns                                                                    */
/* ------------------------------------------------------------------------ */

static void writes_land_in_the_own_town_only(void **state)
{
  fx *f = *state;
  script(f, "10-a.lua",
         "twin.on_observation({attr = 'free'}, function(o)\n"
         "  twin.put('rules', 'Lot', o.id, {free = o.value})\n"
         "end)\n");
  core_script *s = open_rules(f);
  wtx w;
  begin(f, &w, "alpha");
  assert_int_equal(obs_int(s, &w, "probe", "Lot", "p1", "free", 7, 1000), 0);
  commit(&w);
  twin_value v;
  assert_int_equal(read_attr(f, "alpha", "Lot", "p1", "free", &v), TWIN_OK);
  assert_int_equal(v.as.integer, 7);
  assert_int_equal(read_attr(f, "beta", "Lot", "p1", "free", &v),
                   TWIN_ERR_NOT_FOUND);
  /* beta's own rules see nothing of alpha either */
  th_rule(f->t, "beta", "10-b.lua",
          "function peek() return twin.get('rules', 'Lot', 'p1', "
          "'free') end\n");
  core_script *b;
  core_err err;
  assert_int_equal(core_script_open(f->h, town(f, "beta"), NULL, &b, &err), 0);
  begin(f, &w, "beta");
  reply r = {NULL};
  assert_int_equal(core_script_call(b, &w.ctx, "peek", "[]", 2, take_reply, &r),
                   0);
  assert_string_equal(r.json, "null");
  free(r.json);
  discard(&w);
  core_script_close(b);
}

static void another_town_cannot_be_named_as_a_namespace(void **state)
{
  fx *f = *state;
  script(f, "10-a.lua",
         "function other() return twin.get('beta', 'Lot', 'p1', 'free') end\n");
  script(f, "20-ok.lua", ok_fn);
  open_rules(f);
  call_fails(f, "other", TWIN_ERR_UNAVAILABLE,
             "'beta' is not a plugin enabled for town 'alpha' (use one of: "
             "rules, probe)",
             NULL);
  call_ok(f, "ok", "[]", "42");
}

static void a_town_without_a_script_folder_gets_an_empty_runtime(void **state)
{
  fx *f = *state;
  core_script *g;
  core_err err;
  assert_int_equal(core_script_open(f->h, town(f, "gamma"), NULL, &g, &err), 0);
  assert_false(core_script_has_observation_hooks(g));
  assert_false(core_script_has_event_hooks(g));
  assert_true(core_script_next_due(g) == INT64_MAX);
  json_t *st = status_json(g);
  assert_int_equal(json_array_size(json_object_get(st, "files")), 0);
  assert_int_equal(json_array_size(json_object_get(st, "hooks")), 0);
  json_decref(st);
  wtx w;
  begin(f, &w, "gamma");
  twin_attr a = {"free", 1, twin_integer(1)};
  assert_int_equal(
      core_script_on_observation(g, &w.ctx, "probe", "Lot", "p1", &a), 0);
  reply r = {NULL};
  assert_int_equal(core_script_call(g, &w.ctx, "f", "[]", 2, take_reply, &r),
                   TWIN_ERR_NOT_FOUND);
  discard(&w);
  core_script_close(g);
}

/* ------------------------------------------------------------------------ */
/* Outside hooks                                                            */
/* ------------------------------------------------------------------------ */

static void a_kept_twin_function_fails_at_load_time(void **state)
{
  fx *f = *state;
  script(f, "10-a.lua",
         "local get = twin.get\n"
         "local ok, e = pcall(get, 'rules', 'T', 'i', 'a')\n"
         "local co = coroutine.wrap(function() return pcall(twin.now) end)\n"
         "local ok2, e2 = co()\n"
         "function errors() return {e, e2} end\n"
         "function later() return get('rules', 'T', 'i', 'a') end\n");
  open_rules(f);
  call_ok(f, "errors", "[]",
          "[\"twin.get is only available inside a hook\",\"twin.now is only "
          "available inside a hook\"]");
  call_ok(f, "later", "[]", "null"); /* inside a call it uses that call */
}

static void a_coroutine_kept_past_its_hook_cannot_use_twin_later(void **s)
{
  fx *f = *s;
  script(f, "10-a.lua",
         "local co\n"
         "twin.on_observation({attr = 'start'}, function(o)\n"
         "  co = coroutine.wrap(function()\n"
         "    while true do\n"
         "      twin.put('rules', 'T', 'c', {n = o.value})\n"
         "      coroutine.yield()\n"
         "    end\n"
         "  end)\n"
         "  co()\n"
         "  co()\n"
         "end)\n"
         "twin.on_observation({attr = 'again', name = 'again'},\n"
         "  function(o) co() end)\n");
  core_script *sc = open_rules(f);
  wtx w;
  begin(f, &w, "alpha");
  assert_int_equal(obs_int(sc, &w, "probe", "Lot", "p1", "start", 5, 1), 0);
  assert_int_equal(core_overlay_writes(w.ov), 1); /* within its own call */
  discard(&w);
  begin(f, &w, "alpha");
  assert_int_equal(obs_int(sc, &w, "probe", "Lot", "p1", "again", 0, 2), 0);
  assert_int_equal(core_overlay_writes(w.ov), 0);
  discard(&w);
  json_t *st = status_json(sc);
  json_t *hk = tu_get(st, "hooks[1]");
  assert_string_equal(tu_str(hk, "name"), "again");
  assert_non_null(strstr(tu_str(hk, "last_error"),
                         "twin.put is only available inside a hook"));
  json_decref(st);
}

static void registering_a_hook_inside_a_hook_is_an_error(void **state)
{
  fx *f = *state;
  script(f, "10-a.lua", "function reg() twin.every(5, function() end) end\n");
  script(f, "20-ok.lua", ok_fn);
  open_rules(f);
  call_fails(f, "reg", TWIN_ERR_UNAVAILABLE, "twin.every registers a hook",
             NULL);
  call_ok(f, "ok", "[]", "42");
}

/* ------------------------------------------------------------------------ */
/* Loading                                                                  */
/* ------------------------------------------------------------------------ */

static void a_syntax_error_names_file_and_line(void **state)
{
  fx *f = *state;
  script(f, "10-a.lua", "x = 1\ny = = 2\n");
  core_err err;
  assert_int_equal(core_script_open(f->h, town(f, "alpha"), NULL, &f->s, &err),
                   TWIN_ERR_CONFIG);
  assert_non_null(strstr(err.msg, "10-a.lua:2:"));
  assert_null(f->s);
}

static void files_load_in_byte_order_of_their_names(void **state)
{
  fx *f = *state;
  script(f, "9.lua", "order = (order or '') .. '9'\n");
  script(f, "20-b.lua", "order = (order or '') .. 'b'\n");
  script(f, "A.lua", "order = (order or '') .. 'A'\n");
  script(f, "10-a.lua", "order = (order or '') .. 'a'\n");
  script(f, "notes.txt", "order = 'not lua'\n");
  script(f, ".hidden.lua", "order = 'hidden'\n");
  script(f, "zz.lua", "function get() return order end\n");
  open_rules(f);
  call_ok(f, "get", "[]", "\"ab9A\"");
}

static void require_loads_a_file_of_the_folder_once(void **state)
{
  fx *f = *state;
  script(f, "lib/util.lua", "loads = (loads or 0) + 1\nreturn {x = 5}\n");
  script(f, "10-a.lua",
         "local u = require('lib.util')\n"
         "local u2 = require('lib.util')\n"
         "function r() return {x = u.x, same = u == u2, loads = loads} end\n");
  open_rules(f);
  call_ok(f, "r", "[]", "{\"x\":5,\"same\":true,\"loads\":1}");
}

static void require_outside_the_folder_is_refused(void **state)
{
  fx *f = *state;
  char *alpha = th_scripts_dir(f->t, "alpha");
  char *lib = tu_fmt("%s/lib", alpha);
  char *outside = tu_write_file(f->t->dir, "outside.lua", "return 1\n");
  char *link = tu_fmt("%s/evil.lua", lib);
  core_mkdirs(lib, NULL);
  assert_int_equal(symlink(outside, link), 0);
  script(f, "10-a.lua",
         "function up() return require('../outside') end\n"
         "function abs() return require('/etc/passwd') end\n"
         "function dots() return require('..outside') end\n"
         "function link() return require('lib.evil') end\n");
  script(f, "20-ok.lua", ok_fn);
  open_rules(f);
  call_fails(f, "up", TWIN_ERR_UNAVAILABLE, "is not a module name", NULL);
  call_fails(f, "abs", TWIN_ERR_UNAVAILABLE, "is not a module name", NULL);
  call_fails(f, "dots", TWIN_ERR_UNAVAILABLE, "is not a module name", NULL);
  call_fails(f, "link", TWIN_ERR_UNAVAILABLE,
             "leads outside the town's script folder", NULL);
  call_ok(f, "ok", "[]", "42");
  free(alpha);
  free(lib);
  free(outside);
  free(link);
}

/* ------------------------------------------------------------------------ */
/* Hooks                                                                    */
/* ------------------------------------------------------------------------ */

static void
observation_hooks_get_the_observation_when_the_filter_matches(void **state)
{
  fx *f = *state;
  script(
      f, "10-a.lua",
      "twin.on_observation({plugin = 'probe', type = 'Lot', attr = 'free'},\n"
      "  function(o)\n"
      "    twin.put('rules', 'Seen', o.id .. '-' .. o.attr, {plugin = "
      "o.plugin,\n"
      "      type = o.type, at = o.time, value = o.value})\n"
      "  end)\n");
  core_script *s = open_rules(f);
  assert_true(core_script_has_observation_hooks(s));
  wtx w;
  begin(f, &w, "alpha");
  twin_attr a = {"free", 1000, twin_number(12.5)};
  assert_int_equal(
      core_script_on_observation(s, &w.ctx, "probe", "Lot", "p1", &a), 0);
  assert_int_equal(obs_int(s, &w, "probe", "Lot", "p1", "total", 5, 1), 0);
  assert_int_equal(obs_int(s, &w, "probe", "Meter", "m1", "free", 5, 1), 0);
  assert_int_equal(obs_int(s, &w, "other", "Lot", "p2", "free", 5, 1), 0);
  twin_attr got;
  assert_int_equal(
      f->h->api.entity_get(&w.ctx, "Seen", "p1-free", "value", &got), 0);
  assert_int_equal(got.value.type, TWIN_VALUE_NUMBER);
  assert_true(got.value.as.number == 12.5);
  assert_int_equal(f->h->api.entity_get(&w.ctx, "Seen", "p1-free", "at", &got),
                   0);
  assert_int_equal(got.value.as.integer, 1000);
  assert_int_equal(
      f->h->api.entity_get(&w.ctx, "Seen", "p1-free", "plugin", &got), 0);
  assert_int_equal(got.value.as.string.len, 5);
  assert_memory_equal(got.value.as.string.ptr, "probe", 5);
  assert_int_equal(core_overlay_writes(w.ov), 4); /* one entity, 4 attrs */
  discard(&w);
  json_t *st = status_json(s);
  json_t *hk = tu_get(st, "hooks[0]");
  assert_int_equal(tu_int(hk, "calls"), 1);
  assert_string_equal(tu_str(hk, "name"), "on_observation#1 (10-a.lua:1)");
  json_decref(st);
}

static void a_failing_hook_loses_its_writes_and_earlier_ones_stay(void **state)
{
  fx *f = *state;
  script(f, "10-a.lua",
         "twin.on_observation({attr = 'free'}, function(o)\n"
         "  twin.put('rules', 'A', 'x', {v = 1})\n"
         "end)\n"
         "twin.on_observation({attr = 'free', name = 'breaks'}, function(o)\n"
         "  twin.put('rules', 'B', 'x', {v = 2})\n"
         "  twin.emit{level = 'warning', message = 'never'}\n"
         "  error('boom')\n"
         "end)\n");
  core_script *s = open_rules(f);
  wtx w;
  begin(f, &w, "alpha");
  twin_attr doc = {"n", 1, twin_integer(1)};
  assert_int_equal(f->h->api.entity_put(&w.ctx, "Doc", "d", &doc, 1), 0);
  assert_int_equal(obs_int(s, &w, "probe", "Lot", "p1", "free", 1, 1), 0);
  twin_attr got;
  assert_int_equal(f->h->api.entity_get(&w.ctx, "Doc", "d", "n", &got), 0);
  assert_int_equal(f->h->api.entity_get(&w.ctx, "A", "x", "v", &got), 0);
  assert_int_equal(f->h->api.entity_get(&w.ctx, "B", "x", "v", &got),
                   TWIN_ERR_NOT_FOUND);
  assert_int_equal(core_overlay_events(w.ov), 0);
  commit(&w);
  json_t *st = status_json(s);
  json_t *hk = tu_get(st, "hooks[1]");
  assert_string_equal(tu_str(hk, "name"), "breaks");
  assert_int_equal(tu_int(hk, "errors"), 1);
  assert_non_null(strstr(tu_str(hk, "last_error"), "10-a.lua:7: boom"));
  assert_true(json_is_string(json_object_get(hk, "last_error_time")));
  json_decref(st);
}

static void a_hook_failing_five_times_in_a_row_is_backed_off(void **state)
{
  fx *f = *state;
  script(f, "10-a.lua",
         "twin.on_observation({attr = 'free'}, function(o) error('boom') "
         "end)\n"
         "twin.on_observation({attr = 'free'}, function(o) end)\n");
  core_script *s = open_rules(f);
  wtx w;
  begin(f, &w, "alpha");
  for (int i = 0; i < 7; i++)
    assert_int_equal(obs_int(s, &w, "probe", "Lot", "p1", "free", i, i), 0);
  discard(&w);
  json_t *st = status_json(s);
  json_t *bad = tu_get(st, "hooks[0]");
  json_t *good = tu_get(st, "hooks[1]");
  assert_int_equal(tu_int(bad, "calls"), 5);
  assert_int_equal(tu_int(bad, "errors"), 5);
  assert_int_equal(tu_int(bad, "skipped"), 2);
  assert_int_equal(tu_int(bad, "consecutive_errors"), 5);
  json_t *bo = json_object_get(bad, "backoff");
  assert_true(json_is_true(json_object_get(bo, "active")));
  assert_true(json_is_string(json_object_get(bo, "until")));
  assert_int_equal(tu_int(good, "calls"), 7);
  assert_true(json_is_false(
      json_object_get(json_object_get(good, "backoff"), "active")));
  json_decref(st);
}

/* Keeps the last staged event's JSON. */
static int grab(void *ud, const char *t, const char *json, size_t len)
{
  (void)t;
  char **out = ud;
  free(*out);
  *out = strndup(json, len);
  return 0;
}

static void
event_hooks_match_and_their_own_events_do_not_retrigger(void **state)
{
  fx *f = *state;
  script(f, "10-a.lua",
         "twin.on_event({level = 'warning', name = 'echo'}, function(e)\n"
         "  twin.emit{level = 'warning', message = 'echo: ' .. e.message,\n"
         "    type = e.entity_type, id = e.entity_id, data = {n = e.data.n}}\n"
         "end)\n");
  core_script *s = open_rules(f);
  assert_true(core_script_has_event_hooks(s));
  wtx w;
  begin(f, &w, "alpha");
  const char *info = "{\"time\":\"2026-11-27T10:00:00.000Z\",\"town\":"
                     "\"alpha\",\"plugin\":\"probe\",\"level\":\"info\","
                     "\"message\":\"m\"}";
  const char *warn = "{\"time\":\"2026-11-27T10:00:00.000Z\",\"town\":"
                     "\"alpha\",\"plugin\":\"probe\",\"level\":\"warning\","
                     "\"message\":\"full\",\"entity_type\":\"Lot\","
                     "\"entity_id\":\"p1\",\"data\":{\"n\":3}}";
  assert_int_equal(core_script_on_event(s, &w.ctx, info, strlen(info)), 0);
  assert_int_equal(core_overlay_events(w.ov), 0);
  assert_int_equal(core_script_on_event(s, &w.ctx, warn, strlen(warn)), 0);
  assert_int_equal(core_overlay_events(w.ov), 1);
  /* the host hands the hook's own event back: no hook runs */
  char *last = NULL;
  core_overlay_each_event(w.ov, grab, &last);
  assert_non_null(strstr(last, "\"message\":\"echo: full\""));
  assert_non_null(strstr(last, "\"data\":{\"n\":3}"));
  assert_int_equal(core_script_on_event(s, &w.ctx, last, strlen(last)), 0);
  assert_int_equal(core_overlay_events(w.ov), 1);
  free(last);
  discard(&w);
  json_t *st = status_json(s);
  json_t *hk = tu_get(st, "hooks[0]");
  assert_int_equal(tu_int(hk, "calls"), 1);
  assert_int_equal(tu_int(hk, "errors"), 0);
  json_decref(st);
}

/* ------------------------------------------------------------------------ */
/* Reload                                                                   */
/* ------------------------------------------------------------------------ */

static void
reload_keeps_the_running_rules_when_the_new_ones_are_broken(void **state)
{
  fx *f = *state;
  script(f, "10-a.lua", "function version() return 1 end\n");
  core_script *s = open_rules(f);
  script(f, "10-a.lua", "function version() return 2 end\nend end\n");
  core_err err;
  assert_int_equal(core_script_reload(s, &err), TWIN_ERR_CONFIG);
  assert_non_null(strstr(err.msg, "10-a.lua:2:"));
  call_ok(f, "version", "[]", "1");
}

static void reload_swaps_in_good_rules_with_fresh_statistics(void **state)
{
  fx *f = *state;
  script(f, "10-a.lua",
         "function version() return 1 end\n"
         "twin.on_observation({}, function() error('old') end)\n");
  core_script *s = open_rules(f);
  wtx w;
  begin(f, &w, "alpha");
  assert_int_equal(obs_int(s, &w, "probe", "Lot", "p1", "free", 1, 1), 0);
  discard(&w);
  script(f, "10-a.lua",
         "function version() return 2 end\n"
         "twin.on_observation({}, function() end)\n");
  core_err err;
  assert_int_equal(core_script_reload(s, &err), TWIN_OK);
  call_ok(f, "version", "[]", "2");
  json_t *st = status_json(s);
  json_t *hk = tu_get(st, "hooks[0]");
  assert_int_equal(tu_int(hk, "errors"), 0);
  assert_int_equal(tu_int(hk, "calls"), 0);
  json_decref(st);
}

/* ------------------------------------------------------------------------ */
/* Schedules and time                                                       */
/* ------------------------------------------------------------------------ */

static void every_is_due_at_the_next_multiple_of_its_minutes(void **state)
{
  fx *f = *state;
  script(f, "10-a.lua",
         "twin.every(15, function(now)\n"
         "  twin.put('rules', 'Tick', 't', {at = now})\n"
         "end, 'quarter')\n");
  twin_time before = core_now_ms();
  core_script *s = open_rules(f);
  twin_time due = core_script_next_due(s);
  assert_true(due > before);
  assert_true(due % (15 * 60000) == 0);
  assert_true(due - before <= 15 * 60000);
  wtx w;
  begin(f, &w, "alpha");
  assert_int_equal(core_script_on_schedule(s, &w.ctx, due - 1), 0);
  assert_int_equal(core_overlay_writes(w.ov), 0); /* not yet */
  assert_int_equal(core_script_on_schedule(s, &w.ctx, due + 5), 0);
  twin_attr got;
  assert_int_equal(f->h->api.entity_get(&w.ctx, "Tick", "t", "at", &got), 0);
  assert_int_equal(got.value.as.integer, due + 5);
  discard(&w);
  assert_true(core_script_next_due(s) == due + 15 * 60000);
}

/* The next spring-forward change in Europe/Berlin after now (the rules'
 * clock only moves forward, so the test needs a change ahead of it). */
static const char *next_spring_forward(void)
{
  static const char *days[] = {"2026-03-29", "2027-03-28", "2028-03-26",
                               "2029-03-25", "2030-03-31", "2031-03-30"};
  char buf[40];
  for (size_t i = 0; i < sizeof days / sizeof *days; i++) {
    snprintf(buf, sizeof buf, "%sT00:00:00Z", days[i]);
    if (th_time(buf) > core_now_ms() + 3 * 86400000LL)
      return days[i];
  }
  fail_msg("no known DST change ahead");
  return NULL;
}

static void daily_runs_at_local_time_across_a_dst_change(void **state)
{
  fx *f = *state;
  script(f, "10-a.lua", "twin.daily('07:00', function() end, 'morning')\n");
  core_script *s = open_rules(f);
  const char *day = next_spring_forward(); /* e.g. 2027-03-28 */
  char buf[64];
  twin_time t_day;
  snprintf(buf, sizeof buf, "%sT00:00:00Z", day);
  t_day = th_time(buf);
  /* the day before, 07:00 CET = 06:00Z */
  twin_time before = t_day - 86400000 + 6 * 3600000;
  wtx w;
  begin(f, &w, "alpha");
  assert_int_equal(core_script_on_schedule(s, &w.ctx, before), 0);
  /* next: the change day, 07:00 CEST = 05:00Z, 23 hours later */
  assert_true(core_script_next_due(s) == t_day + 5 * 3600000);
  assert_int_equal(core_script_on_schedule(s, &w.ctx, core_script_next_due(s)),
                   0);
  /* and the day after, again 07:00 CEST = 05:00Z, 24 hours later */
  assert_true(core_script_next_due(s) == t_day + 86400000 + 5 * 3600000);
  discard(&w);
  json_t *st = status_json(s);
  json_t *hk = tu_get(st, "hooks[0]");
  assert_int_equal(tu_int(hk, "calls"), 2);
  json_decref(st);
}

static void daily_runs_once_when_the_clocks_go_back(void **state)
{
  fx *f = *state;
  script(f, "10-a.lua", "twin.daily('02:30', function() end)\n");
  core_script *s = open_rules(f);
  /* 2027-10-31: 02:30 happens at 00:30Z (CEST) and again at 01:30Z (CET) */
  wtx w;
  begin(f, &w, "alpha");
  assert_int_equal(
      core_script_on_schedule(s, &w.ctx, th_time("2027-10-30T01:00:00Z")), 0);
  twin_time due = core_script_next_due(s);
  assert_true(due == th_time("2027-10-31T00:30:00Z") ||
              due == th_time("2027-10-31T01:30:00Z"));
  assert_int_equal(
      core_script_on_schedule(s, &w.ctx, th_time("2027-10-31T00:30:00Z")), 0);
  assert_int_equal(
      core_script_on_schedule(s, &w.ctx, th_time("2027-10-31T01:30:00Z")), 0);
  assert_int_equal(
      core_script_on_schedule(s, &w.ctx, th_time("2027-10-31T12:00:00Z")), 0);
  assert_true(core_script_next_due(s) == th_time("2027-11-01T01:30:00Z"));
  discard(&w);
  json_t *st = status_json(s);
  json_t *hk = tu_get(st, "hooks[0]");
  assert_int_equal(tu_int(hk, "calls"), 2);
  json_decref(st);
}

static void twin_time_and_localtime_use_the_towns_zone(void **state)
{
  fx *f = *state;
  script(f, "10-a.lua",
         "function span()\n"
         "  local a = twin.time{year = 2026, month = 3, day = 28, hour = 7}\n"
         "  local b = twin.time{year = 2026, month = 3, day = 29, hour = 7}\n"
         "  local l = twin.localtime(b)\n"
         "  return {hours = (b - a) // 3600000, hour = l.hour, dst = l.isdst,\n"
         "    wday = l.wday, utc = b}\n"
         "end\n");
  open_rules(f);
  char *want =
      tu_fmt("{\"hours\":23,\"hour\":7,\"dst\":true,\"wday\":1,\"utc\":%lld}",
             (long long)th_time("2026-03-29T05:00:00Z"));
  call_ok(f, "span", "[]", want);
  free(want);
}

/* ------------------------------------------------------------------------ */
/* Functions plugins call, values, queries                                  */
/* ------------------------------------------------------------------------ */

static void a_function_gets_json_arguments_and_returns_json(void **state)
{
  fx *f = *state;
  script(f, "10-a.lua",
         "function price(lot, t, opts)\n"
         "  return {lot = lot, t = t, half = t / 2, list = {1, 2, opts.n},\n"
         "    flag = opts.flag, empty = {}}\n"
         "end\n");
  open_rules(f);
  call_ok(f, "price", "[\"p1\", 1000, {\"n\": 3, \"flag\": true}]",
          "{\"lot\":\"p1\",\"t\":1000,\"half\":500.0,\"list\":[1,2,3],"
          "\"flag\":true,\"empty\":{}}");
}

static void calling_an_undefined_function_is_not_found(void **state)
{
  fx *f = *state;
  script(f, "10-a.lua", "local function hidden() end\nx = 5\n");
  open_rules(f);
  call_fails(f, "hidden", TWIN_ERR_NOT_FOUND, "defines no function 'hidden'",
             NULL);
  call_fails(f, "x", TWIN_ERR_NOT_FOUND, "defines no function 'x'", NULL);
}

static void a_failing_function_reports_script_and_line(void **state)
{
  fx *f = *state;
  script(f, "10-a.lua", "function bad()\n  error('no price for that')\nend\n");
  script(f, "20-ok.lua", ok_fn);
  open_rules(f);
  call_fails(f, "bad", TWIN_ERR_UNAVAILABLE, "10-a.lua:2: no price for that",
             NULL);
  call_ok(f, "ok", "[]", "42");
}

static void a_result_that_is_not_json_is_invalid(void **state)
{
  fx *f = *state;
  script(f, "10-a.lua",
         "function cyc() local t = {} t.me = t return t end\n"
         "function fn() return {f = print} end\n");
  script(f, "20-ok.lua", ok_fn);
  open_rules(f);
  call_fails(f, "cyc", TWIN_ERR_INVALID, "cycle", NULL);
  call_fails(f, "fn", TWIN_ERR_INVALID, "function cannot be converted", NULL);
  char *out;
  assert_int_equal(call(f, "ok", "{\"not\": \"an array\"}", &out),
                   TWIN_ERR_INVALID);
  free(out);
  call_ok(f, "ok", "[]", "42");
}

static void values_keep_their_types_and_strings_must_be_utf8(void **state)
{
  fx *f = *state;
  script(f, "10-a.lua",
         "function roundtrip()\n"
         "  twin.put('rules', 'V', 'v', {i = 3, n = 3.0, s = 'x', b = true})\n"
         "  local e = twin.entity('rules', 'V', 'v')\n"
         "  return {math.type(e.i), math.type(e.n), e.s, e.b,\n"
         "    #twin.entities('rules', 'V'), twin.get('rules', 'V', 'w', 'i')}\n"
         "end\n"
         "function bad() twin.put('rules', 'V', 'v', {s = '\\255'}) end\n");
  script(f, "20-ok.lua", ok_fn);
  open_rules(f);
  call_ok(f, "roundtrip", "[]", "[\"integer\",\"float\",\"x\",true,1]");
  call_fails(f, "bad", TWIN_ERR_UNAVAILABLE, "not UTF-8", NULL);
  call_ok(f, "ok", "[]", "42");
}

static void history_returns_observations_oldest_first(void **state)
{
  fx *f = *state;
  script(
      f, "10-a.lua",
      "function h()\n"
      "  for t = 3, 1, -1 do twin.observe('rules', 'L', 'l', 'free', t * "
      "10, t) end\n"
      "  local out = {}\n"
      "  for _, o in ipairs(twin.history('rules', 'L', 'l', 'free', 0, 100)) "
      "do\n"
      "    out[#out + 1] = o.time .. '=' .. o.value\n"
      "  end\n"
      "  return table.concat(out, ',')\n"
      "end\n");
  open_rules(f);
  call_ok(f, "h", "[]", "\"1=10,2=20,3=30\"");
}

static void query_asks_an_enabled_plugin_of_the_town(void **state)
{
  fx *f = *state;
  script(f, "10-a.lua",
         "function q() return twin.query('probe', {op = 'town'}) end\n"
         "function r() return twin.query('rules', {op = 'town'}) end\n");
  script(f, "20-ok.lua", ok_fn);
  open_rules(f);
  call_ok(f, "q", "[]",
          "{\"id\":\"alpha\",\"name\":\"Alpha\",\"timezone\":"
          "\"Europe/Berlin\"}");
  call_fails(f, "r", TWIN_ERR_UNAVAILABLE, "'rules' is not a plugin enabled",
             NULL);
  call_ok(f, "ok", "[]", "42");
}

static void
check_describes_hooks_and_functions_without_running_them(void **state)
{
  fx *f = *state;
  script(f, "10-a.lua",
         "twin.every(5, function() error('must not run') end, 'five')\n"
         "twin.on_observation({type = 'Lot'}, function() end)\n"
         "function price() end\n");
  core_err err;
  char *text = core_script_check(town(f, "alpha"), NULL, &err);
  if (!text)
    fail_msg("check: %s", err.msg);
  json_t *j = json_loads(text, 0, NULL);
  free(text);
  assert_non_null(j);
  json_t *hooks = json_object_get(j, "hooks");
  assert_int_equal(json_array_size(hooks), 2);
  assert_string_equal(tu_str(hooks, "[0].name"), "five");
  json_t *fns = json_object_get(j, "functions");
  assert_int_equal(json_array_size(fns), 1);
  assert_string_equal(json_string_value(json_array_get(fns, 0)), "price");
  json_decref(j);
  script(f, "20-b.lua", "oops(\n");
  assert_null(core_script_check(town(f, "alpha"), NULL, &err));
  assert_non_null(strstr(err.msg, "20-b.lua:"));
}

/* A plugin query that calls back into the town's rules, as a plugin's
 * call_script does: the rules are re-entered on the same thread. */
static core_script *reentered;

static int query_calling_back(twin_ctx *ctx, const char *plugin,
                              const char *req, size_t len, twin_text_cb cb,
                              void *ud)
{
  (void)plugin;
  twin_ctx plugin_ctx = *ctx; /* a plugin's query context is read-only */
  plugin_ctx.mode = CORE_CTX_READ;
  reply r = {NULL};
  int rc = core_script_call(reentered, &plugin_ctx, "inner", req, len,
                            take_reply, &r);
  if (!rc)
    rc = cb(ud, r.json, strlen(r.json));
  else
    snprintf(ctx->error, sizeof ctx->error, "%s", plugin_ctx.error);
  free(r.json);
  return rc;
}

static void a_rule_can_be_reentered_through_a_plugin_query(void **state)
{
  fx *f = *state;
  script(f, "10-a.lua",
         "function inner(x) return {double = x * 2} end\n"
         "twin.on_observation({attr = 'free'}, function(o)\n"
         "  local r = twin.query('probe', {o.value})\n"
         "  local co = coroutine.wrap(function()\n"
         "    return twin.query('probe', {r.double})\n"
         "  end)\n"
         "  twin.put('rules', 'R', 'r', {v = co().double})\n"
         "end)\n");
  core_script *s = open_rules(f);
  reentered = s;
  f->h->api.query_plugin = query_calling_back;
  wtx w;
  begin(f, &w, "alpha");
  assert_int_equal(obs_int(s, &w, "probe", "Lot", "p1", "free", 5, 1), 0);
  twin_attr got;
  assert_int_equal(f->h->api.entity_get(&w.ctx, "R", "r", "v", &got), 0);
  assert_int_equal(got.value.as.integer, 20);
  discard(&w);
  json_t *st = status_json(s);
  json_t *hk = tu_get(st, "hooks[0]");
  assert_int_equal(tu_int(hk, "errors"), 0);
  json_decref(st);
  core_host_calls_init(&f->h->api);
}

static void a_nested_call_shares_the_outer_budget(void **state)
{
  fx *f = *state;
  script(f, "10-a.lua",
         "function inner() while true do end end\n"
         "twin.on_observation({attr = 'free'}, function(o)\n"
         "  pcall(twin.query, 'probe', {0})\n"
         "  twin.put('rules', 'R', 'after', {v = 1})\n"
         "end)\n");
  core_script *s = open_rules(f);
  reentered = s;
  f->h->api.query_plugin = query_calling_back;
  wtx w;
  begin(f, &w, "alpha");
  assert_int_equal(obs_int(s, &w, "probe", "Lot", "p1", "free", 5, 1), 0);
  assert_int_equal(core_overlay_writes(w.ov), 0); /* the put never ran */
  discard(&w);
  json_t *st = status_json(s);
  json_t *hk = tu_get(st, "hooks[0]");
  assert_int_equal(tu_int(hk, "errors"), 1);
  assert_non_null(
      strstr(tu_str(hk, "last_error"), "instruction budget exceeded"));
  json_decref(st);
  core_host_calls_init(&f->h->api);
}

/* The hot path: a one-line rule per observation. Prints the cost; the
 * bound is loose so sanitizer builds pass. */
static void a_one_line_rule_costs_little_per_observation(void **state)
{
  fx *f = *state;
  script(f, "10-a.lua",
         "twin.on_observation({attr = 'free'}, function(o) if o.value > 1e9 "
         "then error('x') end end)\n");
  core_script *s = open_rules(f);
  wtx w;
  begin(f, &w, "alpha");
  twin_attr a = {"free", 1000, twin_integer(5)};
  int n = 200000;
  uint64_t t0 = core_mono_ns();
  for (int i = 0; i < n; i++) {
    a.value.as.integer = i;
    core_script_on_observation(s, &w.ctx, "probe", "Lot", "p1", &a);
  }
  uint64_t per = (core_mono_ns() - t0) / (uint64_t)n;
  discard(&w);
  print_message("one-line on_observation rule: %llu ns per observation\n",
                (unsigned long long)per);
  assert_true(per < 50000);
}

int main(void)
{
#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)
  const struct CMUnitTest tests[] = {
      T(an_endless_loop_hits_the_instruction_budget),
      T(an_endless_loop_inside_pcall_cannot_be_swallowed),
      T(a_growing_table_hits_the_memory_cap),
      T(a_string_rep_bomb_hits_the_memory_cap),
      T(a_backtracking_pattern_on_a_long_text_is_refused),
      T(deep_recursion_fails_cleanly),
      T(top_level_code_has_the_same_budget),
      T(the_sandbox_has_no_io_os_execute_debug_package_or_files),
      T(calling_dofile_is_an_error),
      T(require_of_a_standard_library_is_refused),
      T(load_refuses_a_binary_chunk),
      T(a_binary_script_file_is_refused_at_load),
      T(string_dump_is_gone_also_as_a_method),
      T(finalizers_are_refused),
      T(writes_land_in_the_own_town_only),
      T(another_town_cannot_be_named_as_a_namespace),
      T(a_town_without_a_script_folder_gets_an_empty_runtime),
      T(a_kept_twin_function_fails_at_load_time),
      T(a_coroutine_kept_past_its_hook_cannot_use_twin_later),
      T(registering_a_hook_inside_a_hook_is_an_error),
      T(a_syntax_error_names_file_and_line),
      T(files_load_in_byte_order_of_their_names),
      T(require_loads_a_file_of_the_folder_once),
      T(require_outside_the_folder_is_refused),
      T(observation_hooks_get_the_observation_when_the_filter_matches),
      T(a_failing_hook_loses_its_writes_and_earlier_ones_stay),
      T(a_hook_failing_five_times_in_a_row_is_backed_off),
      T(event_hooks_match_and_their_own_events_do_not_retrigger),
      T(reload_keeps_the_running_rules_when_the_new_ones_are_broken),
      T(reload_swaps_in_good_rules_with_fresh_statistics),
      T(every_is_due_at_the_next_multiple_of_its_minutes),
      T(daily_runs_at_local_time_across_a_dst_change),
      T(daily_runs_once_when_the_clocks_go_back),
      T(twin_time_and_localtime_use_the_towns_zone),
      T(a_function_gets_json_arguments_and_returns_json),
      T(calling_an_undefined_function_is_not_found),
      T(a_failing_function_reports_script_and_line),
      T(a_result_that_is_not_json_is_invalid),
      T(values_keep_their_types_and_strings_must_be_utf8),
      T(history_returns_observations_oldest_first),
      T(query_asks_an_enabled_plugin_of_the_town),
      T(a_rule_can_be_reentered_through_a_plugin_query),
      T(a_nested_call_shares_the_outer_budget),
      T(check_describes_hooks_and_functions_without_running_them),
      T(a_one_line_rule_costs_little_per_observation),
  };
#undef T
  return cmocka_run_group_tests(tests, NULL, NULL);
}
