/*
 * fetch.c — the fetch pool (see fetch.h). The scheduler's poll queues due
 * instances; worker threads take them one at a time and run
 * core_host_run_fetch, which records the outcome and the next due time
 * (with backoff) in the instance's fetch health.
 */
#include "fetch.h"

#include <stdlib.h>
#include <string.h>

#include "crash.h"
#include "pipeline.h"

#define THREADS_MAX 4

struct core_fetch {
  core_host *h;
  pthread_mutex_t mu;
  pthread_cond_t work, idle;
  pthread_t threads[THREADS_MAX];
  size_t n_threads;
  size_t *queue; /* instance indices, a ring of n_inst slots */
  size_t head, count;
  unsigned char *busy; /* per instance: queued or running */
  size_t running;
  int stopping;
};

/* A writer job storing ci's health record, so `twinhost plugins list` in
 * another process sees how its fetches go. */
static int status_job(void *arg, core_host *h, MDB_txn *txn, core_overlay *ov,
                      core_err *err)
{
  (void)txn;
  (void)err;
  return core_host_stage_status(h, arg, ov);
}

static void save_status(core_host *h, core_instance *ci)
{
  pthread_rwlock_rdlock(&h->pipeline_lock);
  if (h->pipeline)
    core_pipeline_submit_fn(h->pipeline, status_job, ci, NULL, NULL);
  pthread_rwlock_unlock(&h->pipeline_lock);
}

static void *worker(void *arg)
{
  core_fetch *f = arg;
  core_crash_thread(); /* plugins' fetch runs here */
  pthread_mutex_lock(&f->mu);
  for (;;) {
    while (!f->count && !f->stopping)
      pthread_cond_wait(&f->work, &f->mu);
    if (f->stopping)
      break;
    size_t i = f->queue[f->head];
    f->head = (f->head + 1) % f->h->n_inst;
    f->count--;
    f->running++;
    pthread_mutex_unlock(&f->mu);
    core_err err;
    core_instance *ci = &f->h->inst[i];
    core_host_run_fetch(f->h, ci, &err);
    /* one small record per fetch (minutes apart), so `plugins list` in
     * another process shows the fetch counters as they are */
    save_status(f->h, ci);
    pthread_mutex_lock(&f->mu);
    f->running--;
    f->busy[i] = 0;
    if (!f->count && !f->running)
      pthread_cond_broadcast(&f->idle);
  }
  pthread_mutex_unlock(&f->mu);
  return NULL;
}

int core_fetch_start(core_host *h, core_fetch **out, core_err *err)
{
  *out = NULL;
  size_t n = 0;
  for (size_t i = 0; i < h->n_inst; i++)
    n += h->inst[i].plugin->desc.fetch && h->inst[i].fetch_s;
  if (!n)
    return TWIN_OK;
  core_fetch *f = calloc(1, sizeof *f);
  if (!f)
    return core_err_set(err, TWIN_ERR_NOMEM, "fetch: out of memory");
  f->h = h;
  f->queue = calloc(h->n_inst, sizeof *f->queue);
  f->busy = calloc(h->n_inst, 1);
  pthread_mutex_init(&f->mu, NULL);
  pthread_cond_init(&f->work, NULL);
  pthread_cond_init(&f->idle, NULL);
  size_t want = n < THREADS_MAX ? n : THREADS_MAX;
  for (size_t i = 0; f->queue && f->busy && i < want; i++) {
    if (pthread_create(&f->threads[i], NULL, worker, f))
      break;
    f->n_threads++;
  }
  if (!f->n_threads) {
    core_fetch_stop(f);
    return core_err_set(err, TWIN_ERR_NOMEM,
                        "fetch: cannot start a fetch thread");
  }
  *out = f;
  return TWIN_OK;
}

void core_fetch_poll(core_fetch *f, twin_time now)
{
  if (!f)
    return;
  core_host *h = f->h;
  for (size_t i = 0; i < h->n_inst; i++) {
    pthread_mutex_lock(&f->mu);
    int skip = f->busy[i] || f->stopping;
    pthread_mutex_unlock(&f->mu);
    if (skip || !core_instance_fetch_due(h, &h->inst[i], now))
      continue;
    pthread_mutex_lock(&f->mu);
    if (!f->busy[i] && !f->stopping) {
      f->busy[i] = 1;
      f->queue[(f->head + f->count) % h->n_inst] = i;
      f->count++;
      pthread_cond_signal(&f->work);
    }
    pthread_mutex_unlock(&f->mu);
  }
}

void core_fetch_drain(core_fetch *f)
{
  if (!f)
    return;
  pthread_mutex_lock(&f->mu);
  while (f->count || f->running)
    pthread_cond_wait(&f->idle, &f->mu);
  pthread_mutex_unlock(&f->mu);
}

void core_fetch_stop(core_fetch *f)
{
  if (!f)
    return;
  pthread_mutex_lock(&f->mu);
  f->stopping = 1;
  f->count = 0; /* what is queued is not started */
  pthread_cond_broadcast(&f->work);
  pthread_mutex_unlock(&f->mu);
  for (size_t i = 0; i < f->n_threads; i++)
    pthread_join(f->threads[i], NULL);
  pthread_mutex_destroy(&f->mu);
  pthread_cond_destroy(&f->work);
  pthread_cond_destroy(&f->idle);
  free(f->queue);
  free(f->busy);
  free(f);
}
