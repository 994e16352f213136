/*
 * script.h — town rules: one sandboxed Lua 5.4 state per town, loaded from
 * the town's script folder, with the `twin` module, hooks (on observation,
 * on a schedule, on an event), functions plugins call by name
 * (call_script), instruction budgets, a memory cap, error accounting with
 * backoff, reload that keeps the running rules when the new ones are
 * broken, and a status report. The Lua side is documented in
 * docs/rules.md.
 *
 * Threads: a town's runtime is used by one thread at a time; the host
 * serialises calls with the runtime's own lock (core_script_* take it).
 */
#ifndef CORE_SCRIPT_H
#define CORE_SCRIPT_H

#include <stddef.h>
#include <stdint.h>

#include "config.h"
#include "twin/twin.h"
#include "util.h"

typedef struct core_script core_script;
struct core_host;

/* Limits; zero fields take the defaults. */
typedef struct core_script_limits {
  uint64_t instructions; /* per call; default 5,000,000 (~50 ms) */
  uint32_t wall_ms;      /* per call, also enforced; default 50 */
  size_t memory;         /* per town; default 32 MiB */
} core_script_limits;

/*
 * Load the town's rules: every *.lua file of town->script_dir in byte order
 * of the file name (10-alerts.lua before 20-pricing.lua). A town without a
 * script folder or without .lua files gets an empty runtime (no hooks).
 * On a syntax or load error returns TWIN_ERR_CONFIG with err naming
 * file:line and the problem. h is used for the host services the `twin`
 * module calls.
 */
int core_script_open(struct core_host *h, const core_town *town,
                     const core_script_limits *limits, core_script **out,
                     core_err *err);
void core_script_close(core_script *s);

/*
 * Load the town's scripts again into a new state; on success swap it in
 * (hook statistics start afresh), on failure keep the running state and
 * return the error (file:line).
 */
int core_script_reload(core_script *s, core_err *err);

/* ---- hooks, run by the host in the transaction of what triggered them ---- */

/*
 * Run the on_observation hooks matching (plugin, type, attr) for one
 * observation of entity (type, id). ctx is the ingest's context: the hooks'
 * writes are staged in the same overlay. Each hook call that fails has its
 * own writes rolled back (the host takes an overlay savepoint per call), is
 * counted and logged, and does not fail the observation: this function
 * returns TWIN_OK unless memory ran out.
 */
int core_script_on_observation(core_script *s, twin_ctx *ctx,
                               const char *plugin, const char *type,
                               const char *id, const twin_attr *obs);

/* Run the on_event hooks matching an event (its JSON record as stored). */
int core_script_on_event(core_script *s, twin_ctx *ctx, const char *event_json,
                         size_t len);

/* Run the schedule hooks due at now (every N minutes; daily at HH:MM in the
 * town's timezone). */
int core_script_on_schedule(core_script *s, twin_ctx *ctx, twin_time now);
/* When the next schedule hook is due (INT64_MAX: none). */
twin_time core_script_next_due(core_script *s);

/* Does the town define any hook of these kinds? (saves work when not) */
int core_script_has_observation_hooks(core_script *s);
int core_script_has_event_hooks(core_script *s);

/*
 * Call the global function `function` with the elements of args_json (a
 * JSON array) as arguments; cb receives the first result as JSON. Returns
 * TWIN_ERR_NOT_FOUND when the town defines no such function, TWIN_ERR_INVALID
 * for bad arguments or a result that is not JSON-able, TWIN_ERR_UNAVAILABLE
 * when the function failed (ctx's error names script:line).
 */
int core_script_call(core_script *s, twin_ctx *ctx, const char *function,
                     const char *args_json, size_t len, twin_text_cb cb,
                     void *ud);

/*
 * The town's rule status as JSON (caller frees): files loaded, and per hook
 * its name, kind, filter, calls, errors, last error, last error time, time
 * spent (ms), and backoff state.
 */
char *core_script_status(core_script *s);

/*
 * Check a town's scripts without running hooks: load them in a fresh
 * sandbox and describe what they register, as JSON (caller frees). On a
 * load error returns NULL and err names file:line.
 */
char *core_script_check(const core_town *town, const core_script_limits *l,
                        core_err *err);

#endif
