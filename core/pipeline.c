/*
 * pipeline.c — the single writer thread with group commit (see pipeline.h).
 *
 * Jobs sit in a fixed ring whose slots keep their document buffers, so a
 * steady stream of documents allocates nothing once the buffers have grown to
 * the largest document. The writer takes every queued job at once (up to a
 * batch cap), so the more callers wait, the more documents share one fsync.
 */
#include "pipeline.h"

#include "crash.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define BATCH_MAX 1024 /* jobs per transaction */
/* A slot keeps a document buffer up to this size for the next job; a
 * larger one (a big upload) is freed after its batch, so one large request
 * does not keep its memory in the ring forever. */
#define SLOT_KEEP (64 * 1024)
/* Twice a batch, so callers fill the next batch while one commits. */
#define RING (2 * BATCH_MAX)

enum { JOB_INGEST = 1, JOB_TICK = 2, JOB_FN = 3 };

typedef struct job {
  int kind;
  core_instance *ci;
  core_job_fn fn; /* JOB_FN */
  void *arg;
  char *doc;
  size_t len, cap;
  char type[128]; /* the document's media type; "" is JSON */
  core_done_fn done;
  core_outcome_fn outcome; /* instead of done */
  void *ud;
  int status;
  core_err err;
  core_items items; /* refused by the plugin; the slot keeps the memory */
} job;

struct core_pipeline {
  core_host *h;
  pthread_t thread;
  pthread_mutex_t mu;
  pthread_cond_t not_empty, not_full, drained;
  job ring[RING];
  uint64_t head, tail; /* head: next free slot; tail: oldest unfinished */
  int stopping;
  core_overlay *ov;        /* the running job's staged writes */
  core_journal *journal;   /* what this batch wrote, in case it must retry */
  core_overlay *status_ov; /* health records of ticked instances */
  core_pipeline_stats stats;
  /* called once each after the next batch frees ring space */
  struct waiter_cb {
    void (*fn)(void *ud);
    void *ud;
    struct waiter_cb *next;
  } *space_waiters;
};

/* wait: block while the ring is full; else return TWIN_ERR_UNAVAILABLE
 * with *full set. */
static int enqueue(core_pipeline *p, int kind, core_instance *ci,
                   core_job_fn fn, void *arg, const char *type,
                   const char *doc, size_t len, core_done_fn done,
                   core_outcome_fn outcome, void *ud, int wait, int *full)
{
  if (type && strlen(type) >= sizeof((job *)0)->type)
    return TWIN_ERR_INVALID;
  pthread_mutex_lock(&p->mu);
  while (wait && !p->stopping && p->head - p->tail >= RING)
    pthread_cond_wait(&p->not_full, &p->mu);
  if (!wait && !p->stopping && p->head - p->tail >= RING) {
    pthread_mutex_unlock(&p->mu);
    if (full)
      *full = 1;
    return TWIN_ERR_UNAVAILABLE;
  }
  if (p->stopping) {
    pthread_mutex_unlock(&p->mu);
    return TWIN_ERR_UNAVAILABLE;
  }
  job *j = &p->ring[p->head % RING];
  if (len + 1 > j->cap) {
    char *nd = realloc(j->doc, len + 1);
    if (!nd) {
      pthread_mutex_unlock(&p->mu);
      return TWIN_ERR_NOMEM;
    }
    j->doc = nd;
    j->cap = len + 1;
  }
  if (len)
    memcpy(j->doc, doc, len);
  j->doc[len] = 0;
  j->len = len;
  j->kind = kind;
  j->ci = ci;
  j->fn = fn;
  j->arg = arg;
  snprintf(j->type, sizeof j->type, "%s", type ? type : "");
  j->done = done;
  j->outcome = outcome;
  j->ud = ud;
  j->status = 0;
  j->err.msg[0] = 0;
  j->err.code[0] = 0;
  j->err.field[0] = 0;
  p->head++;
  pthread_cond_signal(&p->not_empty);
  pthread_mutex_unlock(&p->mu);
  return TWIN_OK;
}

int core_pipeline_submit(core_pipeline *p, core_instance *ci, const char *doc,
                         size_t len, core_done_fn done, void *ud)
{
  return enqueue(p, JOB_INGEST, ci, NULL, NULL, NULL, doc, len, done, NULL,
                 ud, 1, NULL);
}

int core_pipeline_submit_as(core_pipeline *p, core_instance *ci,
                            const char *type, const char *doc, size_t len,
                            core_outcome_fn done, void *ud)
{
  return enqueue(p, JOB_INGEST, ci, NULL, NULL, type, doc, len, NULL, done,
                 ud, 1, NULL);
}

int core_pipeline_try_submit_as(core_pipeline *p, core_instance *ci,
                                const char *type, const char *doc, size_t len,
                                core_outcome_fn done, void *ud, int *full)
{
  *full = 0;
  return enqueue(p, JOB_INGEST, ci, NULL, NULL, type, doc, len, NULL, done,
                 ud, 0, full);
}

int core_pipeline_when_space(core_pipeline *p, void (*fn)(void *ud),
                             void *ud)
{
  pthread_mutex_lock(&p->mu);
  int st = TWIN_OK;
  if (p->stopping) {
    st = TWIN_ERR_UNAVAILABLE;
  } else if (p->head - p->tail < RING) {
    st = TWIN_STOP; /* room already: try again at once */
  } else {
    struct waiter_cb *w = malloc(sizeof *w);
    if (!w) {
      st = TWIN_ERR_NOMEM;
    } else {
      w->fn = fn;
      w->ud = ud;
      w->next = p->space_waiters;
      p->space_waiters = w;
    }
  }
  pthread_mutex_unlock(&p->mu);
  return st;
}

int core_pipeline_on_writer(core_pipeline *p)
{
  return p && pthread_equal(pthread_self(), p->thread);
}

int core_pipeline_submit_tick(core_pipeline *p, core_instance *ci,
                              core_done_fn done, void *ud)
{
  return enqueue(p, JOB_TICK, ci, NULL, NULL, NULL, "", 0, done, NULL, ud, 1,
                 NULL);
}

int core_pipeline_submit_fn(core_pipeline *p, core_job_fn fn, void *arg,
                            core_done_fn done, void *ud)
{
  return enqueue(p, JOB_FN, NULL, fn, arg, NULL, "", 0, done, NULL, ud, 1,
                 NULL);
}

/* Flush the running job's staged writes into txn and the journal; on
 * failure the journal is cut back to where it was, so it never holds half a
 * job. */
static int flush_job(core_pipeline *p, MDB_txn *txn, core_err *err)
{
  size_t mark = core_journal_size(p->journal);
  int st = core_overlay_flush(p->ov, p->h->store, txn, p->journal, err);
  if (st)
    core_journal_truncate(p->journal, mark);
  return st;
}

/*
 * Write jobs [from, to) in one transaction. Jobs that went through their
 * plugin on an earlier attempt (*ran of them) are written again from the
 * journal, and the last of them from its staged writes if its flush was what
 * failed (*unflushed); the rest are run now, once each.
 * TWIN_ERR_TOO_BIG: the map filled; grow it and call again.
 */
static int run_batch(core_pipeline *p, uint64_t from, uint64_t to,
                     uint64_t *ran, int *unflushed, core_err *err)
{
  core_host *h = p->h;
  MDB_txn *txn;
  int st = core_store_begin_write(h->store, &txn, err);
  if (st)
    return st;
  if (!*ran)
    core_journal_clear(p->journal);
  st = core_journal_replay(p->journal, h->store, txn, err);
  if (!st && *unflushed && !(st = flush_job(p, txn, err)))
    *unflushed = 0;
  for (uint64_t i = from + *ran; !st && i < to; i++) {
    job *j = &p->ring[i % RING];
    j->err.msg[0] = 0;
    j->err.code[0] = 0;
    j->err.field[0] = 0;
    if (j->kind == JOB_INGEST) {
      j->status = core_host_run_ingest_as(h, j->ci, txn, p->ov, j->type,
                                          j->doc, j->len, &j->items, &j->err);
    } else if (j->kind == JOB_FN) {
      core_overlay_clear(p->ov);
      j->status = j->fn(j->arg, h, txn, p->ov, &j->err);
      if (j->status)
        core_overlay_clear(p->ov);
    } else if (j->ci->state == CORE_INSTANCE_DISABLED) {
      j->status = core_err_set(&j->err, TWIN_ERR_UNAVAILABLE, "disabled: %s",
                               j->ci->reason);
    } else {
      j->status = core_host_run_tick(h, j->ci, txn, p->ov, &j->err);
    }
    (*ran)++;
    if (!j->status && (st = flush_job(p, txn, err)))
      *unflushed = 1;
  }
  if (st) {
    mdb_txn_abort(txn);
    return st;
  }
  int rc = mdb_txn_commit(txn);
  if (rc == MDB_MAP_FULL)
    return core_err_set(err, TWIN_ERR_TOO_BIG, "store map full");
  return core_store_status(rc, "store commit", err);
}

/* Store the health records of the instances ticked in [from, to), for
 * `twinhost plugins list` in other processes. Advisory: a failure is
 * logged, not fatal. */
static void save_health(core_pipeline *p, uint64_t from, uint64_t to)
{
  core_overlay_clear(p->status_ov);
  for (uint64_t i = from; i < to; i++) {
    job *j = &p->ring[i % RING];
    if (j->kind == JOB_TICK)
      core_host_stage_status(p->h, j->ci, p->status_ov);
  }
  core_err err;
  int st = core_overlay_commit(p->status_ov, p->h->store, &err);
  if (st)
    core_log(TWIN_LEVEL_WARNING, NULL, NULL, "cannot record plugin health: %s",
             err.msg);
}

static void *writer(void *arg)
{
  core_pipeline *p = arg;
  core_crash_thread(); /* plugins' ingest and tick run here */
  pthread_mutex_lock(&p->mu);
  for (;;) {
    while (p->head == p->tail && !p->stopping)
      pthread_cond_wait(&p->not_empty, &p->mu);
    if (p->head == p->tail && p->stopping)
      break;
    uint64_t from = p->tail, to = p->head;
    if (to - from > BATCH_MAX)
      to = from + BATCH_MAX;
    pthread_mutex_unlock(&p->mu);

    core_err err;
    uint64_t t0 = core_mono_ns();
    uint64_t ran = 0;
    int unflushed = 0;
    int st = run_batch(p, from, to, &ran, &unflushed, &err);
    for (int tries = 0; st == TWIN_ERR_TOO_BIG && tries < 16; tries++) {
      if (core_store_grow(p->h->store, &err))
        break;
      st = run_batch(p, from, to, &ran, &unflushed, &err);
    }
    uint64_t ns = core_mono_ns() - t0;
    if (st)
      core_log(TWIN_LEVEL_ERROR, NULL, NULL,
               "ingest batch of %llu documents not stored: %s",
               (unsigned long long)(to - from), err.msg);
    uint64_t docs = 0, rejected = 0, ticks = 0, refused = 0;
    int health_changed = 0;
    for (uint64_t i = from; i < to; i++) {
      job *j = &p->ring[i % RING];
      if (st) { /* the commit failed: nothing of this batch landed */
        j->status = st;
        snprintf(j->err.msg, sizeof j->err.msg, "%s", err.msg);
        j->err.code[0] = j->err.field[0] = 0;
        if (j->kind == JOB_INGEST)
          core_items_clear(&j->items);
      }
      if (j->kind == JOB_TICK) {
        ticks++;
        /* The live health changes only now that the batch's fate is known
         * (a batch runs again after the map grows). */
        if (j->ci->state != CORE_INSTANCE_DISABLED || !j->status)
          health_changed |=
              core_host_tick_outcome(p->h, j->ci, j->status, j->err.msg);
      } else if (j->kind == JOB_INGEST) {
        docs++;
        rejected += j->status != 0;
        __atomic_add_fetch(&j->ci->docs, 1, __ATOMIC_RELAXED);
        if (j->status)
          __atomic_add_fetch(&j->ci->docs_rejected, 1, __ATOMIC_RELAXED);
        if (!st && j->items.total) {
          core_instance_count_refused(p->h, j->ci, &j->items);
          if (!j->status)
            refused += j->items.total;
        }
      }
      if (j->outcome) {
        core_outcome o = {j->status, j->status ? j->err.msg : NULL,
                          j->err.code[0] ? j->err.code : NULL,
                          j->err.field[0] ? j->err.field : NULL, &j->items};
        j->outcome(j->ud, &o);
      } else if (j->done) {
        j->done(j->ud, j->status, j->status ? j->err.msg : NULL);
      }
    }
    if (health_changed)
      save_health(p, from, to);
    for (uint64_t i = from; i < to; i++) {
      job *j = &p->ring[i % RING];
      if (j->cap > SLOT_KEEP) {
        free(j->doc);
        j->doc = NULL;
        j->cap = 0;
      }
      if (j->items.cap > 64)
        core_items_free(&j->items);
    }
    pthread_mutex_lock(&p->mu);
    p->stats.docs += docs;
    p->stats.docs_rejected += rejected;
    p->stats.items_refused += refused;
    p->stats.ticks += ticks;
    p->stats.batches++;
    p->stats.commit_ns_total += ns;
    if (ns > p->stats.commit_ns_max)
      p->stats.commit_ns_max = ns;
    static const double bounds_ms[] = CORE_COMMIT_BUCKETS_MS;
    for (size_t b = 0; b < CORE_COMMIT_BUCKETS; b++)
      if ((double)ns <= bounds_ms[b] * 1e6) {
        p->stats.commit_buckets[b]++;
        break;
      }
    p->tail = to;
    pthread_cond_broadcast(&p->not_full);
    pthread_cond_broadcast(&p->drained);
    struct waiter_cb *w = p->space_waiters;
    p->space_waiters = NULL;
    if (w) { /* outside the lock: they submit again */
      pthread_mutex_unlock(&p->mu);
      while (w) {
        struct waiter_cb *next = w->next;
        w->fn(w->ud);
        free(w);
        w = next;
      }
      pthread_mutex_lock(&p->mu);
    }
  }
  pthread_cond_broadcast(&p->drained);
  pthread_mutex_unlock(&p->mu);
  return NULL;
}

int core_pipeline_start(core_host *h, core_pipeline **out, core_err *err)
{
  *out = NULL;
  core_pipeline *p = calloc(1, sizeof *p);
  if (!p)
    return core_err_set(err, TWIN_ERR_NOMEM, "out of memory");
  p->h = h;
  p->ov = core_overlay_new();
  p->journal = core_journal_new();
  p->status_ov = core_overlay_new();
  pthread_mutex_init(&p->mu, NULL);
  pthread_cond_init(&p->not_empty, NULL);
  pthread_cond_init(&p->not_full, NULL);
  pthread_cond_init(&p->drained, NULL);
  if (!p->ov || !p->journal || !p->status_ov ||
      pthread_create(&p->thread, NULL, writer, p)) {
    core_overlay_free(p->ov);
    core_journal_free(p->journal);
    core_overlay_free(p->status_ov);
    free(p);
    return core_err_set(err, TWIN_ERR_NOMEM, "cannot start the writer");
  }
  /* submit (plugins' fetch and own threads) finds it here */
  pthread_rwlock_wrlock(&h->pipeline_lock);
  h->pipeline = p;
  pthread_rwlock_unlock(&h->pipeline_lock);
  *out = p;
  return TWIN_OK;
}

void core_pipeline_drain(core_pipeline *p)
{
  pthread_mutex_lock(&p->mu);
  uint64_t target = p->head;
  while (p->tail < target)
    pthread_cond_wait(&p->drained, &p->mu);
  pthread_mutex_unlock(&p->mu);
}

void core_pipeline_stop(core_pipeline *p)
{
  if (!p)
    return;
  pthread_mutex_lock(&p->mu);
  p->stopping = 1;
  pthread_cond_broadcast(&p->not_empty);
  pthread_cond_broadcast(&p->not_full);
  pthread_mutex_unlock(&p->mu);
  /* Submitters hold the read side while they enqueue (they are refused
   * now that stopping is set); once they left, none can find p. */
  pthread_rwlock_wrlock(&p->h->pipeline_lock);
  if (p->h->pipeline == p)
    p->h->pipeline = NULL;
  pthread_rwlock_unlock(&p->h->pipeline_lock);
  pthread_join(p->thread, NULL);
  /* whoever still waits for space is told: the callbacks see stopping */
  for (struct waiter_cb *w = p->space_waiters, *next; w; w = next) {
    next = w->next;
    w->fn(w->ud);
    free(w);
  }
  p->space_waiters = NULL;
  for (int i = 0; i < RING; i++) {
    free(p->ring[i].doc);
    core_items_free(&p->ring[i].items);
  }
  core_overlay_free(p->ov);
  core_journal_free(p->journal);
  core_overlay_free(p->status_ov);
  pthread_mutex_destroy(&p->mu);
  pthread_cond_destroy(&p->not_empty);
  pthread_cond_destroy(&p->not_full);
  pthread_cond_destroy(&p->drained);
  free(p);
}

void core_pipeline_stats_get(core_pipeline *p, core_pipeline_stats *out)
{
  pthread_mutex_lock(&p->mu);
  *out = p->stats;
  pthread_mutex_unlock(&p->mu);
}
