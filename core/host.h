/*
 * host.h — a running host: its config, its store, the plugins it loaded (and
 * the ones it refused, with the reason), the per-town plugin instances, and
 * the host -> plugin calls (open, ingest, query, simulate, tick, describe)
 * with the contexts they run in.
 */
#ifndef CORE_HOST_H
#define CORE_HOST_H

#include <jansson.h>
#include <pthread.h>
#include <stddef.h>
#include <stdint.h>

#include "config.h"
#include "store.h"
#include "twin/twin.h"
#include "util.h"
#include "view.h"

/* An operation a plugin declared (twin_op), checked and with its request
 * schema loaded, so a request is validated without parsing the schema. */
typedef struct core_op {
  twin_op op;         /* copied; fields beyond the plugin's op_size are 0 */
  const char *reply;  /* op.reply_type, or "application/json" */
  json_t *schema;     /* the loaded request schema; NULL: no parameters */
} core_op;

/* A plugin .so the loader accepted. */
typedef struct core_plugin {
  char *path;
  void *dl;
  twin_plugin desc; /* copied; fields beyond the plugin's struct_size are 0 */
  core_op *ops;     /* desc.n_ops of them (ABI 1.2) */
  size_t n_ops;
} core_plugin;

/* The declared op of p of kind (TWIN_OP_QUERY, TWIN_OP_SCENARIO) named
 * name, or NULL; and how many ops of that kind p declares. */
const core_op *core_plugin_op(const core_plugin *p, int kind,
                              const char *name);
size_t core_plugin_op_count(const core_plugin *p, int kind);

/* Items of one document that its plugin refused (refuse_item): the first
 * CORE_ITEMS_KEPT with their text, total counting all. */
typedef struct core_item {
  char *item, *field, *code, *reason; /* field may be NULL */
} core_item;
typedef struct core_items {
  core_item *v;
  size_t n, cap, total;
} core_items;
void core_items_clear(core_items *it); /* keeps the array's memory */
void core_items_free(core_items *it);
int core_items_add(core_items *it, const char *item, const char *field,
                   const char *code, const char *reason);
/* The refusals as a JSON array [{"item","field","code","reason"}] (new
 * reference). */
json_t *core_items_json(const core_items *it);

/* A file the loader refused, and why (one line). */
typedef struct core_refusal {
  char *path;
  char *reason;
} core_refusal;

enum core_instance_state {
  CORE_INSTANCE_RUNNING,
  CORE_INSTANCE_BACKOFF,  /* failing ticks; waiting before the next try */
  CORE_INSTANCE_DISABLED, /* failed too often, or could not open */
};

/* A plugin enabled for one town. */
typedef struct core_instance {
  struct core_host *host; /* the host it belongs to */
  core_plugin *plugin;
  const core_town *town;
  void *inst;
  char *config_json; /* validated, defaults filled */
  uint32_t tick_s;   /* 0: no tick */
  /* health: written by the writer thread under the host lock; other
   * threads read it through core_instance_usable */
  int state;
  int failures; /* consecutive failed ticks */
  twin_time next_tick;
  uint64_t ticks, tick_errors;
  /* documents given to ingest, and how many it rejected (written by the
   * writer thread, read anywhere, with __atomic builtins) */
  uint64_t docs, docs_rejected;
  char reason[512];
  /* fetch (ABI 1.2): its own schedule and health, under the host lock;
   * a failing fetch backs off but never disables the instance */
  uint32_t fetch_s, fetch_timeout_s; /* fetch_s 0: never fetched */
  twin_time next_fetch;
  int fetch_failures; /* in a row */
  uint64_t fetches, fetch_errors;
  char fetch_reason[512]; /* the last failure; "" after a success */
  /* items refused per reason code (refuse_item), under the host lock */
  struct core_code_count *refused_codes;
  size_t n_refused_codes;
} core_instance;

typedef struct core_code_count {
  char code[48];
  uint64_t n;
} core_code_count;


typedef struct core_pipeline core_pipeline;

typedef struct core_host {
  core_config *cfg;
  core_store *store;
  core_plugin *plugins;
  size_t n_plugins;
  core_refusal *refused;
  size_t n_refused;
  core_instance *inst;
  size_t n_inst;
  twin_host_api api;
  pthread_mutex_t lock; /* instance health */
  /* Town rules, per town of cfg (same index); NULL when the town's rules
   * were not loaded (not opened at this level, or failed: see
   * script_error). */
  struct core_script **scripts;
  char **script_error;
  /* The running pipeline (submit hands documents to it), or NULL: set by
   * core_pipeline_start, cleared by core_pipeline_stop, under
   * pipeline_lock (read side: a submit while it enqueues). */
  core_pipeline *pipeline;
  pthread_rwlock_t pipeline_lock;
} core_host;

/* How much of a host to bring up. */
enum {
  CORE_HOST_LOAD = 0,      /* config and plugins only (plugins list/check) */
  CORE_HOST_STORE = 1,     /* + the store (entities, history, backup) */
  CORE_HOST_INSTANCES = 2, /* + open every enabled plugin for its town */
};

/*
 * Bring up a host from a config file. Plugins that fail to load or open are
 * refused with a logged one-line reason and the rest keep going; only an
 * invalid config or an unusable store fail the whole start.
 */
int core_host_open(const char *config_path, int level, core_host **out,
                   core_err *err);
/* The same at CORE_HOST_INSTANCES, opening only one town's plugins: what a
 * command about one town needs (it does not start every town's feeds). */
int core_host_open_town(const char *config_path, const char *town,
                        core_host **out, core_err *err);
void core_host_close(core_host *h);

/* The rules runtime of a town, or NULL. */
struct core_script *core_host_script(core_host *h, const core_town *town);

/*
 * Run the town's rules after a successful ingest or tick in ctx: the
 * on_observation hooks for each observation the call staged (stamps up to
 * upto, see core_overlay_stamp; 0: none), then the on_event hooks for the
 * events it staged. A failing rule has its own writes rolled back; the call
 * still succeeds.
 */
int core_host_run_rules(core_host *h, twin_ctx *ctx, uint32_t upto);

/* The search path for plugin files, in order: the binary's own plugin
 * folder (the build tree's, or <prefix>/lib/twinhost/plugins of an
 * installed one), $TWINHOST_PLUGIN_PATH (':'-separated), the config's
 * plugin_path. */
size_t core_host_plugin_dirs(const core_config *cfg, const char **dirs,
                             size_t max);

/* Load and check one plugin file (no instance opened). */
int core_plugin_load(const char *path, core_plugin *out, core_err *err);
void core_plugin_unload(core_plugin *p);

/* A loaded plugin's descriptor as JSON (new reference): name, version,
 * use_case, summary, file (its path, or with full_path 0 only its name),
 * abi "major.minor" it was built for, tick_interval_s, fetch_interval_s
 * (with a fetch), ingest_types (with an ingest), ops (brief); with_schema
 * adds config_schema and each op's request_schema and example. */
json_t *core_plugin_json(const core_plugin *p, int full_path, int with_schema);
/* One declared op as JSON: name, kind, summary, safe, reply_type; full
 * adds request_schema and example. */
json_t *core_op_json(const core_op *o, int full);
core_plugin *core_host_plugin(core_host *h, const char *name);
core_instance *core_host_instance(core_host *h, const char *town,
                                  const char *plugin);
/* 1 when ci is open and not disabled; else 0, with the reason copied into
 * err (may be NULL). Safe from any thread (reads health under the lock). */
int core_instance_usable(core_host *h, core_instance *ci, core_err *err);
/* The instance, or an error naming what is missing (unknown town, plugin not
 * enabled for it, plugin disabled with its reason). */
int core_host_find(core_host *h, const char *town, const char *plugin,
                   core_instance **out, core_err *err);

/* ---- calls into plugins -------------------------------------------------- */

/* A reply of query or simulate: body (NUL-terminated too, caller frees)
 * of len bytes in media type type ("application/json" unless the op
 * declared another and the plugin used it). */
typedef struct core_reply {
  char *body;
  size_t len;
  char type[128];
} core_reply;

/*
 * Answer a query (kind TWIN_OP_QUERY) or scenario (TWIN_OP_SCENARIO) of
 * ci. op names the op when it came apart from the request (a URL path),
 * else NULL. For a plugin that declares ops of the kind, the request must
 * be a JSON object; its op ("op", or op, or the only one) is found, the
 * request checked against the op's schema (defaults filled) and passed on
 * with "op" set. A plugin without declared ops gets the request as sent
 * ("op" added when op is given). The call has the town's deadline. On
 * failure err has the message, and where known a code ("bad_request",
 * "unknown_op", the plugin's) and field.
 */
int core_host_request(core_host *h, core_instance *ci, int kind,
                      const char *op, const char *req, size_t len,
                      core_reply *out, core_err *err);

/*
 * The checked request a plugin gets (see core_host_request), without
 * calling it: *text (caller frees) and the op (NULL for a plugin without
 * declared ops). Also for query_plugin.
 */
int core_host_prepare(const core_plugin *p, int kind, const char *op,
                      const char *req, size_t len, char **text,
                      size_t *text_len, const core_op **out_op,
                      core_err *err);

/* A reply (query/simulate/describe): NUL-terminated JSON, caller frees. */
int core_host_query(core_host *h, core_instance *ci, const char *req,
                    size_t len, char **reply, core_err *err);
int core_host_simulate(core_host *h, core_instance *ci, const char *scenario,
                       size_t len, char **reply, core_err *err);
int core_host_describe(core_host *h, core_instance *ci, char **reply,
                       core_err *err);

/*
 * Writer-side calls, for the pipeline: run ingest or tick of ci against the
 * write transaction txn, staging into ov (cleared first). On TWIN_OK the
 * caller flushes ov into txn; otherwise err holds the plugin's reason.
 */
int core_host_run_ingest(core_host *h, core_instance *ci, MDB_txn *txn,
                         core_overlay *ov, const char *doc, size_t len,
                         core_err *err);
/* The same for a document of media type (NULL: JSON), collecting the
 * plugin's item refusals in items (cleared first; may be NULL). */
int core_host_run_ingest_as(core_host *h, core_instance *ci, MDB_txn *txn,
                            core_overlay *ov, const char *type,
                            const char *doc, size_t len, core_items *items,
                            core_err *err);

/* Run ci's fetch on the calling thread (a fetch thread), with its
 * timeout as deadline; then record the outcome in its fetch health and
 * log a failure. */
int core_host_run_fetch(core_host *h, core_instance *ci, core_err *err);
/* 1 when ci has a fetch and it is due at now (not backing off). */
int core_instance_fetch_due(core_host *h, core_instance *ci, twin_time now);

/* The media types ci's plugin takes for ingest, checked: 1 when type
 * (a Content-Type, parameters ignored) is JSON or one of them. */
int core_plugin_takes(const core_plugin *p, const char *type);
int core_host_run_tick(core_host *h, core_instance *ci, MDB_txn *txn,
                       core_overlay *ov, core_err *err);

/* Count a committed document's refused items per code for ci (under
 * the host lock), for /metrics. */
void core_instance_count_refused(core_host *h, core_instance *ci,
                                 const core_items *items);

/* Record a committed tick's outcome on the live instance (under the host
 * lock) and log failures; the reason stays visible in `plugins list`.
 * Returns 1 when the health record changed. */
int core_host_tick_outcome(core_host *h, core_instance *ci, int status,
                           const char *reason);
/* ci's fetch health as JSON: interval_s, fetches, errors, failures (in a
 * row), next (when due), reason (the last failure). Call under the host
 * lock. */
json_t *core_instance_fetch_json(const core_instance *ci);
/* Stage the instance's health record into meta ("status\0town\0plugin"). */
int core_host_stage_status(core_host *h, core_instance *ci, core_overlay *ov);
/* Store every instance's health record in one commit (serve does this at
 * start, so `plugins list` in another process sees open failures). */
int core_host_save_status(core_host *h, core_err *err);
/* The stored health record of town/plugin as JSON, or NULL. */
char *core_host_stored_status(core_host *h, MDB_txn *txn, const char *town,
                              const char *plugin);
const char *core_instance_state_name(int state);

#endif
