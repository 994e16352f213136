/*
 * rules.h — town rules inside a running host: their schedules submitted to
 * the writer, reload on request (SIGHUP), the status record kept in the
 * store for `twinhost script status`, and the replay of recorded
 * observations that changes nothing.
 */
#ifndef CORE_RULES_H
#define CORE_RULES_H

#include "host.h"
#include "pipeline.h"

typedef struct core_rules core_rules;

/* Start running the towns' rules of h through the writer p. */
core_rules *core_rules_start(core_host *h, core_pipeline *p);
/* Submit the schedule hooks that are due, and every few seconds the status
 * records of the towns whose rules ran. Call from the serve loop. */
void core_rules_poll(core_rules *r, twin_time now);
/* Queue a status record of every town's rules now (serve does so before
 * it stops). */
void core_rules_store_status(core_rules *r);
/* Reload every town's rules; a town whose new rules fail keeps the old. */
void core_rules_reload(core_rules *r);
/* Free; call after the pipeline has stopped (its jobs point here). */
void core_rules_stop(core_rules *r);

/* The status record of a town's rules as the last serve stored it (JSON,
 * caller frees), or NULL. */
char *core_rules_stored_status(core_host *h, MDB_txn *txn, const char *town);

/*
 * Run the town's on_observation rules over recorded observations (JSON
 * Lines: {"plugin","type","id","attr","time","value"}, time RFC 3339 or ms)
 * on a snapshot with an overlay: each observation is staged as its plugin
 * would (history and current attribute), then the rules run. The report
 * (JSON, caller frees) lists what the rules would emit and write and their
 * errors. Nothing reaches the store.
 */
int core_rules_replay(core_host *h, const core_town *town, const char *input,
                      size_t len, char **report, core_err *err);

#endif
