/*
 * api.h — the read side of the HTTP API (and of the CLI's entities, history
 * and events): parsing the query parameters of a request and answering it
 * from one read transaction. Transport-free: http.c turns the results into
 * responses, cli.c prints them.
 *
 * Every function returns 0 on success, else the HTTP status of the error
 * (400, 404, 500, ...) with e filled in.
 */
#ifndef CORE_API_H
#define CORE_API_H

#include <jansson.h>
#include <lmdb.h>
#include <stddef.h>
#include <stdint.h>

#include "host.h"

/* An error as the API reports it:
 *   {"error":{"code":code,"message":message[,"field":field]}} */
typedef struct api_error {
  int http;          /* 400, 404, ... */
  char code[48];     /* "bad_parameter", "unknown_entity", ... */
  char message[512]; /* what is wrong and what to do about it */
  char field[200];   /* the parameter or JSON path at fault; "" if none */
} api_error;

/* Fill e and return http. field may be NULL. */
int api_fail(api_error *e, int http, const char *code, const char *field,
             const char *fmt, ...) __attribute__((format(printf, 5, 6)));
/* The error as the JSON body above (new reference). */
json_t *api_error_json(const api_error *e);

/* The HTTP status and error code of a twin_status (one table, shown in
 * docs/api.md); an unknown status is 500 "internal". */
int api_status_http(int status, const char **code);
/* The table as JSON [{"status","http","code"}] (for the docs' test). */
json_t *api_status_table(void);
/* Fill e from a host error: HTTP status and code by the table, the
 * error's own code and field when it has them (a plugin's api->fail, a
 * request check). Returns the HTTP status. */
int api_fail_status(api_error *e, int status, const core_err *err);

/* Query parameters in request order; a name may repeat. */
typedef struct api_arg {
  const char *name, *value;
} api_arg;
typedef struct api_args {
  const api_arg *v;
  size_t n;
} api_args;

/* The first value of name, or NULL. */
const char *api_arg_get(const api_args *a, const char *name);
/* Refuse parameters not in the NULL-terminated list known (400
 * bad_parameter naming it, with a "did you mean"). */
int api_args_check(const api_args *a, const char *const *known, api_error *e);

/* A time parameter: RFC 3339 with zone, or integer milliseconds. */
int api_parse_time(const char *name, const char *s, twin_time *out,
                   api_error *e);
/* A count parameter in [min, max]. */
int api_parse_count(const char *name, const char *s, long min, long max,
                    long *out, api_error *e);

/* A time as the API prints it: RFC 3339 in UTC, milliseconds only when
 * not zero ("2026-11-27T10:00:00Z", "2026-11-27T10:00:00.250Z"); buf of at
 * least 32 bytes. api_time_json: the same as a new JSON string. */
void api_format_time(twin_time t, char *buf, size_t len);
json_t *api_time_json(twin_time t);

/*
 * GET /v1/towns/{town}/entities: plugin, type, filter (repeatable),
 * near=lat,lon, radius_m, limit, cursor. *out = {"entities":[...],
 * "next":cursor|null}.
 */
int api_entities(core_host *h, MDB_txn *txn, const core_town *town,
                 const api_args *q, json_t **out, api_error *e);
/* One entity; 404 unknown_entity when it has no attribute stored. */
int api_entity(core_host *h, MDB_txn *txn, const core_town *town,
               const char *plugin, const char *type, const char *id,
               json_t **out, api_error *e);
/* The same answer as JSON text ending in a newline (caller frees), written
 * straight from the store: the HTTP API's most frequent request. */
int api_entity_text(core_host *h, MDB_txn *txn, const core_town *town,
                    const char *plugin, const char *type, const char *id,
                    char **out, size_t *len, api_error *e);
/* History of one attribute: from, to, limit, every, agg. */
int api_history(core_host *h, MDB_txn *txn, const core_town *town,
                const char *plugin, const char *type, const char *id,
                const char *attr, const api_args *q, json_t **out,
                api_error *e);
/* Recent events: limit, after. *out = {"events":[...]} oldest first, each
 * with its "seq". */
int api_events(core_host *h, MDB_txn *txn, const core_town *town,
               const api_args *q, json_t **out, api_error *e);
/* Events with seq > after, ascending, at most max, as a JSON array; *last
 * is set to the seq of the last one returned (left alone when none). */
int api_events_since(core_host *h, MDB_txn *txn, const core_town *town,
                     uint64_t after, size_t max, json_t **out,
                     uint64_t *last);
/* The seq of the town's newest event, 0 when it has none. */
uint64_t api_events_last_seq(core_host *h, MDB_txn *txn,
                             const core_town *town);

#endif
