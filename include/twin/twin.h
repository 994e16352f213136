/*
 * twin.h — the twinhost plugin ABI, version 1.
 *
 * This header is the whole contract between the twinhost host and a plugin.
 * If a function or type is not declared here, it is not part of the ABI.
 * It needs only the C standard headers, so a plugin can be written in C, C++,
 * Rust or Zig from this file alone and built out of tree:
 *
 *     cc -shared -fPIC -I /usr/include myplugin.c -o myplugin.so
 *
 * Shape of the ABI
 * ----------------
 *  - A plugin exports exactly one symbol, twin_plugin_entry(). It returns a
 *    pointer to a static twin_plugin descriptor: ABI version, name, version,
 *    use case, config schema and callbacks.
 *  - The host hands its services to the plugin as a function table
 *    (twin_host_api). A plugin links against no host symbol. A function the
 *    host does not offer is NULL; test before calling anything added after 1.0:
 *    offsetof(twin_host_api, f) < api->struct_size && api->f (a host of an
 *    older minor hands a shorter table).
 *  - No third-party type crosses: documents (configs, requests, scenario
 *    inputs, reports) cross as UTF-8 JSON text with explicit lengths; the hot
 *    path (observations, attributes) crosses as typed twin_value.
 *  - Structs that either side may grow start with their size. The host refuses
 *    a plugin whose ABI major differs from its own, naming both versions;
 *    a newer or older minor loads.
 *  - Every host call returns a twin_status. Memory is freed by whoever
 *    allocated it: pointers the host gives a plugin are borrowed, valid only
 *    for the duration stated at each function.
 *
 * Reading your own writes
 * -----------------------
 *  Within one call (open, ingest, tick, simulate) every read sees the writes
 *  that call already made, before they land. A plugin may call the host from
 *  inside an iteration callback (entity_iterate, entity_attrs,
 *  history_range); what the callback received stays valid until it returns,
 *  except strings of twin_value, which a write through ctx may invalidate:
 *  copy them before writing.
 *
 * Threads
 * -------
 *  ingest and tick of one plugin instance are called from the host's single
 *  writer thread, one at a time. open and close are called by the thread
 *  that starts or stops the host, never while ingest or tick of that
 *  instance runs. query, simulate and describe may be called from other
 *  threads, concurrently with each other and with ingest. A plugin that
 *  keeps mutable state in its instance must guard that state itself; state
 *  kept through host calls needs no locking (the host isolates each call's
 *  transaction). Each document is given to ingest exactly once: when a
 *  commit must be retried (the store grew), the host writes again what the
 *  plugin staged; it does not call the plugin again.
 *
 * Time
 * ----
 *  twin_time is milliseconds since 1970-01-01T00:00:00Z (UTC, no leap seconds).
 */
#ifndef TWIN_TWIN_H
#define TWIN_TWIN_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define TWIN_ABI_MAJOR 1
#define TWIN_ABI_MINOR 1

/* The symbol every plugin exports (see twin_plugin_entry_fn). */
#define TWIN_PLUGIN_ENTRY_SYMBOL "twin_plugin_entry"

#if defined(_WIN32)
#define TWIN_EXPORT __declspec(dllexport)
#else
#define TWIN_EXPORT __attribute__((visibility("default")))
#endif
/* The entry point keeps its C name when a plugin is written in C++. */
#ifdef __cplusplus
#define TWIN_EXTERN_C extern "C"
#else
#define TWIN_EXTERN_C
#endif

/* ------------------------------------------------------------------------ */
/* Statuses                                                                 */
/* ------------------------------------------------------------------------ */

/*
 * X(NAME, value, message). Zero is success; errors are negative; values never
 * change meaning and new ones are only added. TWIN_STOP is the one positive
 * value: an iteration callback returns it to end the iteration early, and the
 * iterating call then returns TWIN_OK.
 */
#define TWIN_STATUS_LIST(X)                                                    \
  X(OK, 0, "ok")                                                               \
  X(STOP, 1, "stopped by callback")                                            \
  X(ERR_INVALID, -1, "invalid argument")                                       \
  X(ERR_NOT_FOUND, -2, "not found")                                            \
  X(ERR_NOMEM, -3, "out of memory")                                            \
  X(ERR_STORE, -4, "state store failure")                                      \
  X(ERR_PARSE, -5, "malformed document")                                       \
  X(ERR_REJECTED, -6, "document rejected as implausible")                      \
  X(ERR_UNSUPPORTED, -7, "not supported")                                      \
  X(ERR_TOO_BIG, -8, "too large")                                              \
  X(ERR_READ_ONLY, -9, "writes are not allowed in this call")                  \
  X(ERR_CONFIG, -10, "invalid configuration")                                  \
  X(ERR_UNAVAILABLE, -11, "temporarily unavailable; try again later")          \
  X(ERR_INTERNAL, -12, "internal error")

typedef enum twin_status {
#define TWIN_STATUS_ENUM_(name, value, msg) TWIN_##name = value,
  TWIN_STATUS_LIST(TWIN_STATUS_ENUM_)
#undef TWIN_STATUS_ENUM_
} twin_status;

/* Log and event levels. */
typedef enum twin_level {
  TWIN_LEVEL_DEBUG = 0,
  TWIN_LEVEL_INFO = 1,
  TWIN_LEVEL_WARNING = 2,
  TWIN_LEVEL_ERROR = 3
} twin_level;

/* ------------------------------------------------------------------------ */
/* Typed values (the hot path)                                              */
/* ------------------------------------------------------------------------ */

typedef int64_t twin_time; /* ms since the Unix epoch, UTC */

typedef enum twin_value_type {
  TWIN_VALUE_NULL = 0,
  TWIN_VALUE_NUMBER = 1, /* as.number, a finite double */
  TWIN_VALUE_INT = 2,    /* as.integer */
  /* as.string.ptr / as.string.len: valid UTF-8 without NUL bytes; NUL
   * termination is not needed */
  TWIN_VALUE_STRING = 3,
  TWIN_VALUE_BOOL = 4 /* as.boolean, 0 or 1 */
} twin_value_type;

/*
 * A small tagged value. Frozen: this struct never grows (it is passed in
 * arrays); a new kind of value would be a new type tag.
 */
typedef struct twin_value {
  int32_t type; /* a twin_value_type */
  int32_t reserved_;
  union {
    double number;
    int64_t integer;
    int32_t boolean;
    struct {
      const char *ptr;
      size_t len;
    } string;
  } as;
} twin_value;

/*
 * One named, timed value: an observation appended to history, or an entity
 * attribute with the time it was observed. Frozen like twin_value.
 * name: attribute name, 1..TWIN_NAME_MAX bytes, no NUL, no control chars.
 */
typedef struct twin_attr {
  const char *name;
  twin_time time;
  twin_value value;
} twin_attr;

/*
 * Longest name (town, plugin, entity type, entity id, attribute), in bytes.
 * Names are UTF-8 without control characters. Town, plugin, type, id and
 * attribute name together take at most 498 bytes (they form one key);
 * longer combinations are refused with TWIN_ERR_INVALID.
 */
#define TWIN_NAME_MAX 200
/* Longest string value or plugin kv value, in bytes. */
#define TWIN_VALUE_MAX (1u << 20)

/* ------------------------------------------------------------------------ */
/* Host services                                                            */
/* ------------------------------------------------------------------------ */

/*
 * The context of one host -> plugin call: the town, the plugin instance and
 * the transaction (live, read-only, or a scenario overlay) the call runs in.
 * Opaque. Valid only until the plugin callback that received it returns; a
 * plugin must not keep it.
 */
typedef struct twin_ctx twin_ctx;

/*
 * Iteration callbacks. Pointers passed to them are borrowed and valid only
 * until the callback returns. Return TWIN_OK to continue, TWIN_STOP to stop
 * early, or any error status to abort the iteration with that status.
 */
typedef int (*twin_attr_cb)(void *ud, const twin_attr *attr);
typedef int (*twin_entity_cb)(void *ud, const char *type, const char *id);
/* A whole document (JSON text), borrowed until the callback returns. */
typedef int (*twin_text_cb)(void *ud, const char *json, size_t len);

/*
 * A local date and time in a town's zone (local_time, since ABI 1.1).
 * Frozen: this struct never grows; a later need gets a new struct.
 */
typedef struct twin_local {
  int32_t year;         /* 2026 */
  int32_t month;        /* 1-12 */
  int32_t day;          /* 1-31 */
  int32_t hour;         /* 0-23 */
  int32_t minute;       /* 0-59 */
  int32_t second;       /* 0-59 */
  int32_t weekday;      /* 0-6, 0 = Sunday */
  int32_t yday;         /* 0-365, 0 = January 1 */
  int32_t utc_offset_s; /* local = UTC + utc_offset_s (7200 for CEST) */
  int32_t is_dst;       /* 1 in daylight saving time, else 0 */
} twin_local;

typedef struct twin_host_api {
  /* sizeof(twin_host_api) as the host built it. A field lies beyond the
   * host's table when offsetof(field) >= struct_size: do not call it. */
  uint32_t struct_size;
  uint16_t abi_major; /* the host's TWIN_ABI_MAJOR */
  uint16_t abi_minor; /* the host's TWIN_ABI_MINOR */

  /* ---- entities: current state, by (type, id) within this town+plugin --- */

  /*
   * Set attributes of entity (type, id), creating it if absent; attributes
   * not named keep their value. attrs[i] is copied. A TWIN_VALUE_NULL value
   * is stored as null (the attribute exists, with no value); entity_delete
   * removes attributes. The write lands when the
   * call that received ctx succeeds (ingest/tick: in that commit; simulate:
   * in the scenario overlay only).
   * Returns TWIN_OK, TWIN_ERR_INVALID (bad name or value),
   * TWIN_ERR_READ_ONLY (in query/describe), TWIN_ERR_NOMEM, TWIN_ERR_STORE.
   */
  int (*entity_put)(twin_ctx *ctx, const char *type, const char *id,
                    const twin_attr *attrs, size_t n_attrs);

  /*
   * Read one attribute of an entity into *out (out->name is set to attr).
   * Strings in *out are borrowed,
   * valid until the next host call with this ctx or the end of the callback.
   * Returns TWIN_OK, TWIN_ERR_NOT_FOUND, TWIN_ERR_INVALID, TWIN_ERR_STORE.
   */
  int (*entity_get)(twin_ctx *ctx, const char *type, const char *id,
                    const char *attr, twin_attr *out);

  /*
   * Call cb for every attribute of an entity, in name order.
   * Returns TWIN_OK, TWIN_ERR_NOT_FOUND (no such entity), the callback's
   * error status, TWIN_ERR_STORE.
   */
  int (*entity_attrs)(twin_ctx *ctx, const char *type, const char *id,
                      twin_attr_cb cb, void *ud);

  /*
   * Delete an entity's current attributes. Its history stays (it is the
   * record of what was observed). Returns TWIN_OK, TWIN_ERR_NOT_FOUND,
   * TWIN_ERR_READ_ONLY, TWIN_ERR_STORE.
   */
  int (*entity_delete)(twin_ctx *ctx, const char *type, const char *id);

  /*
   * Call cb once per entity of this town+plugin, ordered by (type, id);
   * type NULL means every type. type and id are borrowed until cb returns.
   * Returns TWIN_OK, TWIN_ERR_INVALID, the callback's error, TWIN_ERR_STORE,
   * TWIN_ERR_NOMEM.
   */
  int (*entity_iterate)(twin_ctx *ctx, const char *type, twin_entity_cb cb,
                        void *ud);

  /* ---- observation history -------------------------------------------- */

  /*
   * Append observations of entity (type, id) to its history, one series
   * per attribute name, ordered by time. A second observation of the same
   * attribute at the same time replaces the first (so replaying a feed is
   * harmless). Copied; lands like entity_put.
   * Returns TWIN_OK, TWIN_ERR_INVALID, TWIN_ERR_READ_ONLY, TWIN_ERR_NOMEM,
   * TWIN_ERR_STORE.
   */
  int (*obs_append)(twin_ctx *ctx, const char *type, const char *id,
                    const twin_attr *obs, size_t n_obs);

  /*
   * Call cb for each observation of one attribute with from <= time < to,
   * oldest first, at most limit of them (0: no limit). Cost grows with the
   * observations returned, not with the stored history.
   * Returns TWIN_OK, TWIN_ERR_INVALID, the callback's error, TWIN_ERR_STORE.
   */
  int (*history_range)(twin_ctx *ctx, const char *type, const char *id,
                       const char *attr, twin_time from, twin_time to,
                       size_t limit, twin_attr_cb cb, void *ud);

  /* ---- plugin-private key/value, per town ----------------------------- */

  /* Store bytes under key (1..TWIN_NAME_MAX bytes of any value); value up
   * to TWIN_VALUE_MAX bytes. Both are copied (val may point at what kv_get
   * returned). Lands like entity_put. Returns TWIN_OK, TWIN_ERR_INVALID,
   * TWIN_ERR_READ_ONLY, TWIN_ERR_NOMEM. */
  int (*kv_put)(twin_ctx *ctx, const void *key, size_t key_len, const void *val,
                size_t val_len);
  /* Read the bytes under key. *val is borrowed until the next host call
   * with ctx. Returns TWIN_OK, TWIN_ERR_NOT_FOUND, TWIN_ERR_INVALID,
   * TWIN_ERR_STORE. */
  int (*kv_get)(twin_ctx *ctx, const void *key, size_t key_len,
                const void **val, size_t *val_len);
  /* Delete key (absent keys are fine). Lands like entity_put. Returns
   * TWIN_OK, TWIN_ERR_INVALID, TWIN_ERR_READ_ONLY, TWIN_ERR_NOMEM. */
  int (*kv_delete)(twin_ctx *ctx, const void *key, size_t key_len);

  /* ---- events --------------------------------------------------------- */

  /*
   * Record an event (an alert or a notable change) in the town's event log.
   * entity_type/entity_id may be NULL; data_json (may be NULL) must be a
   * JSON value of data_len bytes. Copied; lands like entity_put (in a
   * scenario it is reported, not logged).
   * Returns TWIN_OK, TWIN_ERR_INVALID, TWIN_ERR_READ_ONLY, TWIN_ERR_NOMEM.
   */
  int (*emit)(twin_ctx *ctx, twin_level level, const char *entity_type,
              const char *entity_id, const char *message, const char *data_json,
              size_t data_len);

  /* ---- replies and errors -------------------------------------------- */

  /*
   * Set the JSON reply of query, simulate or describe (the last call wins).
   * Copied. Returns TWIN_OK, TWIN_ERR_INVALID (not a JSON value),
   * TWIN_ERR_UNSUPPORTED (in ingest/tick), TWIN_ERR_NOMEM.
   */
  int (*respond)(twin_ctx *ctx, const char *json, size_t len);

  /*
   * Say why the current call fails, for the person who sent the document:
   * "lot 'p3': free 412 > total 400". Copied; the host reports it beside
   * the status the callback returns. Always returns TWIN_OK.
   */
  int (*set_error)(twin_ctx *ctx, const char *message);

  /* ---- other plugins, the town, the host ------------------------------ */

  /*
   * Run another plugin's query in the same town; cb receives its reply
   * (borrowed until cb returns). Read-only; it sees this call's own staged
   * writes. Returns the other plugin's status or the callback's error,
   * TWIN_ERR_NOT_FOUND (plugin not enabled for this town, not open yet --
   * as during open, when the town's plugins open one after another -- or
   * without a query callback), TWIN_ERR_INVALID (also: nested more than 4
   * deep).
   */
  int (*query_plugin)(twin_ctx *ctx, const char *plugin,
                      const char *request_json, size_t len, twin_text_cb cb,
                      void *ud);

  /* Log a line under this town and plugin. Always returns TWIN_OK. */
  int (*log)(twin_ctx *ctx, twin_level level, const char *message);

  /* The current time. In a scenario this may be the scenario's clock. */
  twin_time (*now)(twin_ctx *ctx);

  /*
   * The town's id ("deggendorf"), name and IANA timezone
   * ("Europe/Berlin"); borrowed, valid for the whole call.
   */
  int (*town_info)(twin_ctx *ctx, const char **id, const char **name,
                   const char **timezone);

  /*
   * Call the town's script function `function` with args_json (a JSON
   * array); cb receives its JSON result. Runs in ctx's transaction.
   * Returns TWIN_ERR_UNSUPPORTED while the host has no script runtime,
   * TWIN_ERR_NOT_FOUND when the town defines no such function.
   */
  int (*call_script)(twin_ctx *ctx, const char *function, const char *args_json,
                     size_t len, twin_text_cb cb, void *ud);

  /* ---- since ABI 1.1 -------------------------------------------------- *
   * A host of minor 0 has no such field: call only when
   * offsetof(twin_host_api, local_time) < api->struct_size.             */

  /*
   * The local time of instant t (ms; a fraction of a second is dropped,
   * rounding down) in the town's zone (town_info's timezone), as the
   * zoneinfo database gives it, also far in the future. Pure and cheap
   * (no lock, no I/O after the zone's first use): call it once per time.
   * Any thread, any call. A zone the host cannot load is treated as UTC.
   * Returns TWIN_OK, TWIN_ERR_INVALID (ctx or out NULL).
   */
  int (*local_time)(twin_ctx *ctx, twin_time t, twin_local *out);

  /* Fields added in later minors go here, and only here. */
} twin_host_api;

/* ------------------------------------------------------------------------ */
/* The plugin descriptor                                                    */
/* ------------------------------------------------------------------------ */

/*
 * Returned by twin_plugin_entry(). Must stay valid until the plugin is
 * unloaded (a static const is the usual choice). Callbacks the plugin does
 * not provide are NULL (except open and close, which are required; a plugin
 * without state returns a dummy instance).
 *
 * Each callback returns a twin_status; on failure it should call
 * api->set_error(ctx, "...") to say why. A failed ingest rejects that one
 * document: nothing it wrote lands. A failed simulate or query returns an
 * error to whoever asked. The host never crashes or half-writes on a
 * plugin's failure.
 */
typedef struct twin_plugin {
  /* sizeof(twin_plugin) as the plugin built it; at least the size of the
   * 1.0 struct (every field up to and including describe). */
  uint32_t struct_size;
  uint16_t abi_major; /* TWIN_ABI_MAJOR the plugin was built against */
  uint16_t abi_minor; /* TWIN_ABI_MINOR the plugin was built against */

  const char *name;     /* [a-z0-9_-]{1,40}, unique per host: "parking" */
  const char *version;  /* the plugin's own version: "1.2.0" */
  const char *use_case; /* one of parking, events, clubs, energy, sensors,
                           other */
  const char *summary;  /* one line for `twinhost plugins list` */

  /*
   * The config schema as JSON text, a subset of JSON Schema:
   *   {"type":"object","properties":{"interval_s":{"type":"integer",
   *    "minimum":10,"default":300}},"required":[...],
   *    "additionalProperties":false}
   * Keywords: type (object, array, string, integer, number, boolean),
   * properties, required, additionalProperties (false only), items,
   * minimum, maximum, minLength, maxLength, minItems, maxItems, enum,
   * default, description. NULL means the plugin takes no config.
   * The host validates a town's config against it, fills in defaults and
   * only then calls open.
   */
  const char *config_schema;

  /* Seconds between tick calls; 0 means the plugin never ticks. A town
   * may override it with "tick_s" next to the plugin's config. */
  uint32_t tick_interval_s;

  /*
   * Open the plugin for one town. config_json is the validated config with
   * defaults filled in (borrowed for the call; also NUL-terminated). api stays
   * valid until close returns; keep it in the instance. Writes through ctx land
   * when open returns TWIN_OK. On failure the plugin is not enabled for that
   * town and the host logs the set_error message; close is not called.
   */
  int (*open)(const twin_host_api *api, twin_ctx *ctx, const char *config_json,
              size_t config_len, void **instance);

  /* Release the instance. No call with it follows. */
  void (*close)(void *instance);

  /*
   * Take one document pushed or pulled for this plugin (a feed snapshot,
   * a batch of readings). doc is borrowed for the call and not NUL
   * terminated. All writes through ctx land atomically with the document
   * in one commit, or not at all when ingest fails.
   */
  int (*ingest)(void *instance, twin_ctx *ctx, const char *doc, size_t len);

  /* Answer a JSON request via api->respond. Read-only: writes return
   * TWIN_ERR_READ_ONLY. */
  int (*query)(void *instance, twin_ctx *ctx, const char *request, size_t len);

  /*
   * Run a what-if scenario and reply with a report via api->respond. Every
   * host call works as in ingest, but writes go to an in-memory overlay on
   * a read snapshot: reads see the scenario's own writes, live state is
   * never touched, and everything is discarded afterwards.
   */
  int (*simulate)(void *instance, twin_ctx *ctx, const char *scenario,
                  size_t len);

  /* Periodic work (pull a feed, roll up history). Writes land like
   * ingest's. */
  int (*tick)(void *instance, twin_ctx *ctx);

  /* Describe the instance (what it holds, its health) via api->respond. */
  int (*describe)(void *instance, twin_ctx *ctx);

  /* Fields added in later minors go here, and only here. */
} twin_plugin;

/*
 * The entry point. The host passes its own ABI version; a plugin may refuse
 * (return NULL) a host too old for it. The returned descriptor's
 * abi_major must equal TWIN_ABI_MAJOR of the host, or the host refuses it.
 */
typedef const twin_plugin *(*twin_plugin_entry_fn)(uint32_t host_abi_major,
                                                   uint32_t host_abi_minor);

/* Declare the entry point in a plugin's source:
 *   TWIN_PLUGIN_DEFINE(my_plugin)  where my_plugin is a twin_plugin. */
#define TWIN_PLUGIN_DEFINE(desc)                                               \
  TWIN_EXTERN_C TWIN_EXPORT const twin_plugin *twin_plugin_entry(              \
      uint32_t host_abi_major, uint32_t host_abi_minor);                       \
  TWIN_EXTERN_C TWIN_EXPORT const twin_plugin *twin_plugin_entry(              \
      uint32_t host_abi_major, uint32_t host_abi_minor)                        \
  {                                                                            \
    (void)host_abi_major;                                                      \
    (void)host_abi_minor;                                                      \
    return &(desc);                                                            \
  }

/* Helpers for building values; header-only, no host symbol. */
static inline twin_value twin_number(double v)
{
  twin_value x;
  x.type = TWIN_VALUE_NUMBER;
  x.reserved_ = 0;
  x.as.number = v;
  return x;
}
static inline twin_value twin_integer(int64_t v)
{
  twin_value x;
  x.type = TWIN_VALUE_INT;
  x.reserved_ = 0;
  x.as.integer = v;
  return x;
}
static inline twin_value twin_bool(int v)
{
  twin_value x;
  x.type = TWIN_VALUE_BOOL;
  x.reserved_ = 0;
  x.as.boolean = v ? 1 : 0;
  return x;
}
static inline twin_value twin_string(const char *s, size_t len)
{
  twin_value x;
  x.type = TWIN_VALUE_STRING;
  x.reserved_ = 0;
  x.as.string.ptr = s;
  x.as.string.len = len;
  return x;
}

#ifdef __cplusplus
}
#endif
#endif /* TWIN_TWIN_H */
