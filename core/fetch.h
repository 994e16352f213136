/*
 * fetch.h — the fetch pool: a few threads that run plugins' fetch
 * callbacks (feed and calendar pulls, anything that waits on the network)
 * so that no network wait runs on the writer thread or inside a
 * transaction. What a fetch got reaches the writer through submit, like
 * any ingest.
 */
#ifndef CORE_FETCH_H
#define CORE_FETCH_H

#include "host.h"

typedef struct core_fetch core_fetch;

/* Start the pool for h's instances that have a fetch: one thread per such
 * instance, at most 4 (so one slow town holds at most one of them). No
 * instance with a fetch: *out is NULL and nothing runs. */
int core_fetch_start(core_host *h, core_fetch **out, core_err *err);
/* Queue every instance whose fetch is due at now and is not queued or
 * running already (an instance is fetched by one thread at a time). */
void core_fetch_poll(core_fetch *f, twin_time now);
/* Wait until nothing is queued or running (tests). */
void core_fetch_drain(core_fetch *f);
/* Drop what is queued, wait for the fetches running (each has its
 * deadline), stop the threads and free. The pipeline must still run. */
void core_fetch_stop(core_fetch *f);

#endif
