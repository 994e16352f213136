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

/* What became of a document, in full (core_pipeline_submit_as). Every
 * pointer is borrowed for the callback. */
typedef struct core_outcome {
  int status;         /* TWIN_OK: committed */
  const char *reason; /* NULL when committed */
  const char *code;   /* the plugin's error code, or NULL */
  const char *field;  /* the field the error is about, or NULL */
  const core_items *items; /* items the plugin refused (also when the
                              document was rejected); never NULL */
} core_outcome;
typedef void (*core_outcome_fn)(void *ud, const core_outcome *o);

/* Upper bounds (ms) of the commit latency buckets; a batch slower than the
 * last one counts only in batches. */
#define CORE_COMMIT_BUCKETS_MS {1, 2.5, 5, 10, 25, 50, 100, 250, 500, 1000}
#define CORE_COMMIT_BUCKETS 10

typedef struct core_pipeline_stats {
  uint64_t docs, docs_rejected, ticks, batches, commit_ns_total, commit_ns_max;
  uint64_t items_refused; /* items of committed documents refused */
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
/* The same for a document of media type type (NULL: JSON; copied, at
 * most 127 bytes), reporting its whole outcome. */
int core_pipeline_submit_as(core_pipeline *p, core_instance *ci,
                            const char *type, const char *doc, size_t len,
                            core_outcome_fn done, void *ud);
/* The same without waiting: when the ring is full right now nothing is
 * queued, TWIN_ERR_UNAVAILABLE is returned and *full set (else 0). For
 * threads that must not block (HTTP pool threads). */
int core_pipeline_try_submit_as(core_pipeline *p, core_instance *ci,
                                const char *type, const char *doc, size_t len,
                                core_outcome_fn done, void *ud, int *full);
/* Call fn(ud) once, from the writer thread after a batch freed ring space
 * (or from core_pipeline_stop), to submit what did not fit. TWIN_STOP:
 * there is room already, try again now (fn is not called); TWIN_OK:
 * registered; TWIN_ERR_UNAVAILABLE: stopping; TWIN_ERR_NOMEM. */
int core_pipeline_when_space(core_pipeline *p, void (*fn)(void *ud),
                             void *ud);
/* 1 when called on p's writer thread (where waiting for p deadlocks). */
int core_pipeline_on_writer(core_pipeline *p);
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
