/*
 * pipeline.h — the ingest pipeline: the one writer of a host process.
 *
 * Callers (CLI import, HTTP handlers, the scheduler) submit documents and
 * ticks from any thread. One writer thread takes everything queued, runs each
 * job in one write transaction (each job's writes staged in an overlay and
 * flushed only if the plugin succeeded, so a rejected document leaves
 * nothing), commits once with one fsync (group commit), and only then
 * reports each job's outcome to its caller.
 */
#ifndef CORE_PIPELINE_H
#define CORE_PIPELINE_H

#include <stddef.h>
#include <stdint.h>

#include "host.h"

/* Called on the writer thread after the job's batch committed (status
 * TWIN_OK), or with the job's error. reason is borrowed for the call. */
typedef void (*core_done_fn)(void *ud, int status, const char *reason);

/* Upper bounds (ms) of the commit latency buckets; a batch slower than the
 * last one counts only in batches. */
#define CORE_COMMIT_BUCKETS_MS {1, 2.5, 5, 10, 25, 50, 100, 250, 500, 1000}
#define CORE_COMMIT_BUCKETS 10

typedef struct core_pipeline_stats {
  uint64_t docs, docs_rejected, ticks, batches, commit_ns_total, commit_ns_max;
  /* batches whose commit took at most the bucket's bound (not cumulative) */
  uint64_t commit_buckets[CORE_COMMIT_BUCKETS];
} core_pipeline_stats;

int core_pipeline_start(core_host *h, core_pipeline **out, core_err *err);
/* Finish every queued job, commit, stop the writer thread and free. */
void core_pipeline_stop(core_pipeline *p);

/* Queue a document for ci (copied; blocks while the queue is full). done
 * may be NULL. Returns TWIN_ERR_UNAVAILABLE once stopping. */
int core_pipeline_submit(core_pipeline *p, core_instance *ci, const char *doc,
                         size_t len, core_done_fn done, void *ud);
/* Queue a tick of ci. */
int core_pipeline_submit_tick(core_pipeline *p, core_instance *ci,
                              core_done_fn done, void *ud);
/*
 * Other work for the writer (town rule schedules, status records): fn runs
 * on the writer thread in the batch's transaction, staging its writes in ov
 * (cleared before); they land when it returns TWIN_OK, like a document's.
 * fn runs exactly once.
 */
typedef int (*core_job_fn)(void *arg, core_host *h, MDB_txn *txn,
                           core_overlay *ov, core_err *err);
int core_pipeline_submit_fn(core_pipeline *p, core_job_fn fn, void *arg,
                            core_done_fn done, void *ud);

/* Wait until everything submitted so far is committed and reported. */
void core_pipeline_drain(core_pipeline *p);

void core_pipeline_stats_get(core_pipeline *p, core_pipeline_stats *out);

#endif
