/*
 * testhost.h — one in-process host for the tests: a temporary folder with
 * a config, fixture plugins linked into its plugins/ folder (or the built
 * plugins named on the plugin path), towns' rules written into their
 * script folders; the host opened with its ingest pipeline, closed and
 * opened again on the same data; documents sent through the pipeline and
 * waited for; queries and scenarios asked; a town's events read back.
 *
 * JSON a test hands these helpers may be written with single quotes
 * (tu_jq); only th_ingest_as sends its bytes as they are. A helper fails
 * the test where the call itself cannot be made, and returns what the
 * test checks.
 */
#ifndef TWIN_TESTHOST_H
#define TWIN_TESTHOST_H

#include <jansson.h>
#include <pthread.h>
#include <stddef.h>

#include "host.h"
#include "pipeline.h"
#include "testjson.h"
#include "testutil.h"

typedef struct th_host {
  char *dir;        /* the temporary folder; th_free removes it */
  char *plugins;    /* dir/plugins, where th_fixture links */
  char *config;     /* dir/host.json once th_config wrote it, else NULL */
  core_host *h;     /* the open host, or NULL */
  core_pipeline *p; /* its pipeline (th_open), or NULL */
} th_host;

/* ---- the folder and its config ------------------------------------------ */

/* A new temp folder with an empty plugins/ (caller: th_free); unsets
 * TWINHOST_PLUGIN_PATH. */
th_host *th_new(void);
/* Close, remove the folder, unset TZDIR and TWINHOST_PLUGIN_PATH, free. */
void th_free(th_host *t);
/* A cmocka teardown: th_free(*state). */
int th_teardown(void **state);

/* $TWIN_FIXTURE_DIR/name (caller frees). */
char *th_fixture_path(const char *name);
/* Link plugins/name to that fixture, which need not exist (a dangling link). */
void th_fixture(th_host *t, const char *name);

/* What th_config puts on the plugin path. The built plugins are named
 * there, not linked: the host searches the build's folder first anyway,
 * and a folder reached twice loads once, where a link to sensors.so would
 * be refused as a second plugin named "sensors". */
enum {
  TH_FIXTURES = 1, /* "plugins": the fixtures th_fixture linked */
  TH_BUILT = 2,    /* $TWIN_PLUGIN_BUILD_DIR: the plugins this build made */
};
/* Write t->config: data_dir "data", plugin_path as path says (none for 0),
 * the towns array's elements from towns_fmt (printf, then ' as "). */
void th_config(th_host *t, int path, const char *towns_fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* th_config of one town in zone tz, rules in t->dir, with built plugin
 * under config (a JSON object, ' as "). */
void th_config_built(th_host *t, const char *town, const char *tz,
                     const char *plugin, const char *config);
/* The script folder the config gives town (caller frees). */
char *th_scripts_dir(th_host *t, const char *town);
/* Write rules file name ("lib/util.lua": folders made) into town's folder. */
void th_rule(th_host *t, const char *town, const char *name, const char *text);

/* ---- the host ----------------------------------------------------------- */

/* Open t->config at level, no pipeline: the status (err; t->h NULL). */
int th_try_open(th_host *t, int level, core_err *err);
/* Open at CORE_HOST_INSTANCES and start the pipeline, or fail the test. */
void th_open(th_host *t);
/* Stop the pipeline and close the host where they run; the data stays. */
void th_close(th_host *t);
/* th_close, then th_open on the same data with the config as it is now. */
void th_reopen(th_host *t);
/* The instance of plugin in town (borrowed from t->h), or fail the test. */
core_instance *th_inst(th_host *t, const char *town, const char *plugin);

/* ---- documents ---------------------------------------------------------- */

/* What became of one document. */
typedef struct th_outcome {
  int called;        /* 1 once the pipeline reported */
  int status;        /* TWIN_OK: committed */
  char reason[1024]; /* "" when committed */
  char code[48];     /* the plugin's error code, or "" */
  char field[200];   /* the field the error is about, or "" */
  json_t *items;     /* refused items [{"item","field","code","reason"}]
                        (owned: th_outcome_free), NULL when none */
  size_t total;      /* items refused in all (items has the first kept) */
} th_outcome;

/* A core_outcome_fn filling the th_outcome at ud (caller: th_outcome_free). */
void th_on_outcome(void *ud, const core_outcome *o);
/* Release o->items. */
void th_outcome_free(th_outcome *o);
/* doc (' as ") to ci, waited for: its outcome (caller: th_outcome_free). */
th_outcome th_ingest(th_host *t, core_instance *ci, const char *doc);
/* The same for len bytes of media type type (NULL: JSON), sent as they are. */
th_outcome th_ingest_as(th_host *t, core_instance *ci, const char *type,
                        const char *doc, size_t len);
/* th_ingest that must commit with no item refused, or fail the test. */
void th_ingest_ok(th_host *t, core_instance *ci, const char *doc);
/* th_ingest that must fail with status, the reason holding each fragment. */
void th_ingest_fails(th_host *t, core_instance *ci, const char *doc, int status,
                     const char *fragment1, const char *fragment2);

/* ---- queries and scenarios ---------------------------------------------- */

/* core_host_request with req (' as "): status; *out (caller frees body). */
int th_request(th_host *t, core_instance *ci, int kind, const char *op,
               const char *req, core_reply *out, core_err *err);
/* The same, parsed: the reply (new reference), or NULL with err set. */
json_t *th_ask(th_host *t, core_instance *ci, int kind, const char *op,
               const char *req, core_err *err);
/* th_ask that must succeed: the reply (new reference), or fail the test. */
json_t *th_ask_ok(th_host *t, core_instance *ci, int kind, const char *op,
                  const char *req);
/* th_ask and th_ask_ok of a query (TWIN_OP_QUERY, op in req). */
json_t *th_query(th_host *t, core_instance *ci, const char *req, core_err *err);
json_t *th_query_ok(th_host *t, core_instance *ci, const char *req);
/* A query that must fail: its status, err saying why. */
int th_query_fails(th_host *t, core_instance *ci, const char *req,
                   core_err *err);
/* A scenario that must succeed: the whole reply (new reference). */
json_t *th_simulate_ok(th_host *t, core_instance *ci, const char *sc);
/* The same, only its "report" (new reference). */
json_t *th_simulate_report(th_host *t, core_instance *ci, const char *sc);
/* A scenario that must fail: its status, err saying why. */
int th_simulate_fails(th_host *t, core_instance *ci, const char *sc,
                      core_err *err);

/* ---- holding the writer ------------------------------------------------- */

/* A job that holds t's writer on a gate, for tests that prove by ordering
 * that something does not wait for the writer. */
typedef struct th_hold {
  pthread_mutex_t mu;
  pthread_cond_t cv;
  int entered, open; /* the writer is in the job; the gate is open */
  int woken;         /* th_hold_woken was called */
} th_hold;
/* Queue the job; returns once the writer is in it. */
void th_hold_writer(th_host *t, th_hold *g);
/* Open the gate: the writer goes on. */
void th_release(th_hold *g);
/* A core_pipeline_when_space callback (ud: the th_hold): sets woken. */
void th_hold_woken(void *ud);
/* Open the gate if still shut, wait until the pipeline is drained, free
 * the gate's lock. */
void th_hold_end(th_host *t, th_hold *g);

/* ---- the store and the CLI ---------------------------------------------- */

/* town's stored event log, oldest first (new reference). */
json_t *th_events(th_host *t, const char *town);
/* A token of town with scope from `twinhost token create` (caller frees). */
char *th_token(th_host *t, const char *town, const char *scope);

/* ---- time --------------------------------------------------------------- */

/* The time an RFC 3339 text names, or fail the test. */
twin_time th_time(const char *rfc3339);
/* t in RFC 3339, UTC, as the host writes it (caller frees). */
char *th_rfc3339(twin_time t);

#endif
