/*
 * twin.h — the twinhost plugin ABI, version 1 (minor 2).
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
 *  - Since 1.2 a plugin declares its operations (twin_op): the host checks
 *    each request against the op's schema before the plugin sees it, routes
 *    /query/{op} and /scenario/{op}, and documents them (plugins info,
 *    OpenAPI). Replies and ingest bodies may be other media types than
 *    JSON; an ingest may refuse single items of a document (refuse_item).
 *  - twin/twinaux.h is a helper library built only on this header (time
 *    parsing and formatting, distance, errors, a JSON writer, op dispatch).
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
 *  writer thread, one at a time: they must not wait on the network or on
 *  anything slow (every town's ingest waits while they run). Work that waits
 *  on I/O goes in fetch (since 1.2), called on a fetch thread, one call per
 *  instance at a time, outside any transaction; it hands what it got to the
 *  pipeline with submit. open and close are called by the thread
 *  that starts or stops the host, never while ingest, tick or fetch of that
 *  instance runs. query, simulate and describe may be called from other
 *  threads, concurrently with each other and with ingest and fetch.
 *  A host call taking a ctx is made on the thread of the callback that
 *  received that ctx, during the callback, unless it says "any thread";
 *  submit (with a twin_source, no ctx) may be called from any thread. A plugin that
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
#define TWIN_ABI_MINOR 2

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
  X(ERR_INTERNAL, -12, "internal error")                                      \
  X(ERR_DEADLINE, -13, "deadline passed") /* since 1.2 */

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
 * The town a call works for (town, since ABI 1.2). The caller sets
 * struct_size = sizeof(twin_town); the host fills the fields both sides
 * know. Grows only at the end. Strings are borrowed and stay valid until
 * the instance's close returns.
 */
typedef struct twin_town {
  uint32_t struct_size;
  uint32_t reserved_;
  const char *id;       /* "deggendorf" */
  const char *name;     /* "Deggendorf" */
  const char *timezone; /* IANA zone: "Europe/Berlin" */
  int32_t has_location; /* 1 when lat/lon are set in the town's config */
  int32_t reserved2_;
  double lat, lon; /* WGS84 degrees of the town's centre */
} twin_town;

/*
 * What became of a submitted document (submit, since ABI 1.2). The caller
 * sets struct_size = sizeof(twin_outcome). Grows only at the end.
 */
typedef struct twin_outcome {
  uint32_t struct_size;
  int32_t status;         /* TWIN_OK: it landed (maybe with items refused) */
  uint32_t items_refused; /* items of it the plugin refused (refuse_item) */
  uint32_t reserved_;
  char message[512]; /* why it was rejected, NUL-terminated; "" when landed */
} twin_outcome;

/* A handle that feeds documents into a plugin instance's ingest from any
 * thread (source, submit). Opaque. */
typedef struct twin_source twin_source;

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

  /* ---- since ABI 1.2 -------------------------------------------------- *
   * A host of minor 0 or 1 has none of these: test with TWIN_HAS_API.    */

  /*
   * The town this call works for: id, name, zone, location, and fields
   * added later. Set out->struct_size = sizeof(twin_town) first. Any
   * thread, any call. Returns TWIN_OK, TWIN_ERR_INVALID (ctx or out NULL,
   * struct_size smaller than the 1.2 struct).
   */
  int (*town)(twin_ctx *ctx, twin_town *out);

  /*
   * set_error with a machine-readable code and the field the error is
   * about. code: [a-z0-9_], 1..40 bytes ("lot_unknown"); NULL keeps the
   * host's code for the status. field: a JSON path into the request or
   * document ("lots[3].free") or NULL. Clients receive
   * {"error":{"code","message","field"}}. When a host call of this call
   * failed, the host's own detail is kept beside the plugin's message,
   * never replaced by it. Copied. Returns TWIN_OK, TWIN_ERR_INVALID (a
   * malformed code; the message is still set).
   */
  int (*fail)(twin_ctx *ctx, const char *code, const char *field,
              const char *message);

  /*
   * In ingest: refuse one item of the document (one lot of a snapshot, one
   * reading of a batch) while the rest of it lands. item: the item's id
   * ("p3"), or its place ("lots[4]") when it has none; field: what is wrong
   * in it ("free") or NULL; code as in fail ("implausible"); reason: for
   * people ("free 575 > total 540"). Writing nothing for a refused item is
   * the plugin's part. Copied. The first 1000 refusals of a document keep
   * their text, later ones are only counted. A document whose every item
   * is refused should fail instead (TWIN_ERR_REJECTED); its refusals are
   * still reported. Returns TWIN_OK, TWIN_ERR_INVALID,
   * TWIN_ERR_UNSUPPORTED (not in ingest).
   */
  int (*refuse_item)(twin_ctx *ctx, const char *item, const char *field,
                     const char *code, const char *reason);

  /*
   * The reply of query or simulate in a media type: "text/calendar",
   * "text/csv", "application/geo+json" ... It must be one the op's
   * reply_type lists; NULL or "application/json" is JSON, checked as
   * respond checks it. The bytes are copied and sent as they are (HTTP
   * Content-Type is the media type; the CLI prints them raw). The last
   * reply wins. Returns TWIN_OK, TWIN_ERR_INVALID (a type the op does not
   * declare, or not JSON), TWIN_ERR_UNSUPPORTED (in ingest/tick/fetch),
   * TWIN_ERR_NOMEM.
   */
  int (*respond_as)(twin_ctx *ctx, const char *media_type, const void *data,
                    size_t len);

  /*
   * In ingest: the media type of the document, "application/json" or one
   * of the plugin's ingest_types that its sender named (HTTP Content-Type,
   * `twinhost ingest --content-type`). Borrowed for the call. Returns TWIN_OK,
   * TWIN_ERR_INVALID.
   */
  int (*doc_type)(twin_ctx *ctx, const char **media_type);

  /*
   * TWIN_OK while the call may go on; TWIN_ERR_DEADLINE once its deadline
   * has passed: query and simulate get the town's deadlines (query_ms,
   * scenario_ms in town.json), fetch its timeout (fetch_timeout_s). Cheap
   * (a monotonic clock read): poll it in long loops and return the status
   * it gives; the caller is then told which town, plugin and op ran out of
   * time. history_range and entity_iterate stop with TWIN_ERR_DEADLINE by
   * themselves. left_ms (may be NULL) receives the milliseconds left, or
   * -1 when the call has no deadline (ingest, tick, open). Any thread.
   */
  int (*check_deadline)(twin_ctx *ctx, int64_t *left_ms);

  /*
   * A handle for submit, for this instance: call it in open and keep it;
   * it stays valid until close returns. Returns TWIN_OK, TWIN_ERR_INVALID.
   */
  int (*source)(twin_ctx *ctx, twin_source **out);

  /*
   * Hand a document to this instance's ingest as if it had been posted: it
   * goes through the pipeline (ingest on the writer, town rules, group
   * commit) like any other. Call it from fetch or from a thread of the
   * plugin's own; never from ingest or tick (the writer would wait for
   * itself). media_type NULL means JSON; doc is copied. With out NULL it
   * returns once the document is queued. With out (struct_size set) it
   * waits until the document was committed or rejected and fills *out.
   * Returns TWIN_OK (queued; with out, the document's own status is in
   * out->status), TWIN_ERR_UNAVAILABLE (this process takes no documents,
   * as a CLI query; or the host is stopping), TWIN_ERR_INVALID (on the
   * writer thread, a media type the plugin does not take, bad arguments),
   * TWIN_ERR_NOMEM.
   */
  int (*submit)(twin_source *src, const char *media_type, const char *doc,
                size_t len, twin_outcome *out);

  /* Fields added in later minors go here, and only here. */
} twin_host_api;

/* 1 when the host's table has field (a call added after 1.0) and offers
 * it: TWIN_HAS_API(api, town). */
#define TWIN_HAS_API(api, field)                                               \
  (offsetof(twin_host_api, field) < (api)->struct_size && (api)->field != NULL)

/* ------------------------------------------------------------------------ */
/* Declared operations (since ABI 1.2)                                      */
/* ------------------------------------------------------------------------ */

typedef enum twin_op_kind {
  TWIN_OP_QUERY = 1,   /* answered by query */
  TWIN_OP_SCENARIO = 2 /* answered by simulate */
} twin_op_kind;

/* twin_op.flags: the op reads only and may be answered on GET, with its
 * parameters as URL query parameters (a calendar app can subscribe). */
#define TWIN_OP_SAFE 1u

/*
 * One query or scenario a plugin answers, as Redis modules declare their
 * commands. The host checks every request for the op against
 * request_schema before the plugin sees it (a failure answers 400 naming
 * the field), routes POST .../query/{name} and .../scenario/{name} (and GET
 * .../query/{name} when TWIN_OP_SAFE), lists it in `twinhost plugins info`,
 * GET /v1/plugins/{plugin} and GET /v1/openapi.json.
 *
 * The plugin receives the checked request as a JSON object with the
 * schema's defaults filled in and "op" set to name, however it was sent
 * (body {"op": name, ...}, or the op in the path). A body without "op" is
 * taken as the plugin's only op of its kind when it declares just one.
 *
 * Declared in an array; the descriptor's op_size lets the struct grow at
 * its end (TWIN_OPS fills ops, n_ops and op_size).
 */
typedef struct twin_op {
  const char *name;    /* [a-z0-9_-]{1,40}, unique per kind: "forecast" */
  int32_t kind;        /* a twin_op_kind */
  uint32_t flags;      /* TWIN_OP_SAFE or 0 */
  const char *summary; /* one line: "free spaces of a lot at a time" */
  /*
   * The request's members other than "op", in the config schema subset
   * (see twin_plugin.config_schema) plus "format": "date-time" on strings
   * (RFC 3339 with a zone; without a "type", integer milliseconds are
   * accepted too). NULL: the op takes no parameters.
   */
  const char *request_schema;
  /* Media types of the reply, ", "-separated, first the usual one:
   * "text/calendar, application/json". NULL: "application/json". */
  const char *reply_type;
  /* An example request (JSON object, "op" may be left out) that passes
   * the schema: shown in the docs, sent by conformance tests. */
  const char *example;
} twin_op;

/* In a twin_plugin initializer: .ops, .n_ops and .op_size of an array. */
#define TWIN_OPS(table)                                                        \
  .ops = (table), .n_ops = (uint32_t)(sizeof(table) / sizeof((table)[0])),     \
  .op_size = (uint32_t)sizeof(twin_op)

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
  /* [a-z0-9-]{1,40}. Known use cases, by convention: parking, events,
   * clubs, energy, sensors, mobility, waste, water, other. */
  const char *use_case;
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

  /* Periodic work on the store (roll up history, expire entries), on the
   * writer thread: nothing that waits on the network (that is fetch).
   * Writes land like ingest's. */
  int (*tick)(void *instance, twin_ctx *ctx);

  /* Describe the instance (what it holds, its health) via api->respond. */
  int (*describe)(void *instance, twin_ctx *ctx);

  /* ---- since ABI 1.2 -------------------------------------------------- */

  /* The queries and scenarios this plugin answers (see twin_op); set with
   * TWIN_OPS(table). NULL: none declared; requests reach query and
   * simulate as they were sent. */
  const twin_op *ops;
  uint32_t n_ops;
  uint32_t op_size; /* sizeof(twin_op) as the plugin built it */

  /* Media types ingest takes besides JSON, ", "-separated:
   * "text/csv, text/calendar". A document of such a type is passed whole,
   * as sent; doc_type says which it is. A JSON type listed here
   * ("application/geo+json") is passed whole too, not split as a batch.
   * NULL: JSON only. */
  const char *ingest_types;

  /*
   * Pull what waits on the network (a feed, a calendar URL) every
   * fetch_interval_s seconds (a town may override it with "fetch_s" next
   * to the plugin's config), on a fetch thread: never on the writer,
   * outside any transaction, one call per instance at a time, with a
   * deadline (check_deadline; "fetch_timeout_s", default 30). It cannot
   * read or write the store (those calls return TWIN_ERR_UNSUPPORTED or
   * TWIN_ERR_READ_ONLY); it hands documents to the pipeline with submit.
   * A failure is logged and tried again after 2x, 4x ... the interval,
   * but never later than an hour after it (a daily pull that failed is
   * retried within the hour); it never disables the plugin, and the
   * reason shows in `twinhost plugins list`.
   */
  int (*fetch)(void *instance, twin_ctx *ctx);
  uint32_t fetch_interval_s; /* 0: never fetched */
  uint32_t reserved_;

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
