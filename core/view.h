/*
 * view.h — what a host call reads and writes through: an LMDB transaction
 * seen through an in-memory overlay of pending writes.
 *
 * Every plugin call stages its writes in an overlay; reads see the overlay
 * first, then the transaction. On a successful ingest the overlay is flushed
 * into the batch's write transaction (so a failed document leaves nothing);
 * in a scenario the overlay sits on a read snapshot and is simply dropped, so
 * live state is never touched. One mechanism serves both, and plugins use the
 * same host calls for live and what-if work.
 */
#ifndef CORE_VIEW_H
#define CORE_VIEW_H

#include <lmdb.h>
#include <stddef.h>
#include <stdint.h>

#include "store.h"

typedef struct core_overlay core_overlay;

core_overlay *core_overlay_new(void);
void core_overlay_free(core_overlay *ov);
/* Forget every staged write, keeping the memory for the next call. */
void core_overlay_clear(core_overlay *ov);
/* Staged writes (puts and deletes) and events. */
size_t core_overlay_writes(const core_overlay *ov);
size_t core_overlay_events(const core_overlay *ov);

/* Stage a put or a delete of key in db. Bytes are copied. */
int core_overlay_put(core_overlay *ov, int db, const void *key, size_t klen,
                     const void *val, size_t vlen);
int core_overlay_del(core_overlay *ov, int db, const void *key, size_t klen);
/* Stage a put whose vlen-byte value the caller writes into the returned
 * space right away (valid until the next change to ov); NULL when out of
 * memory. Saves encoding a value twice on the ingest path. */
uint8_t *core_overlay_put_space(core_overlay *ov, int db, const void *key,
                                size_t klen, size_t vlen);
/* A point to roll staged writes back to: a failed town rule undoes its own
 * writes without touching the document's, and a document a rule hands a
 * plugin (twin.ingest) that it refuses leaves nothing inside the rule's.
 * Savepoints nest: end each, innermost first, with core_overlay_rollback
 * (dropping what came after it) or core_overlay_release (keeping it). */
typedef struct core_savepoint {
  size_t n, arena_len, nev, nundo;
  size_t prev_n; /* the enclosing savepoint's entry count */
  int prev_live;
} core_savepoint;
void core_overlay_savepoint(core_overlay *ov, core_savepoint *sp);
void core_overlay_rollback(core_overlay *ov, const core_savepoint *sp);
void core_overlay_release(core_overlay *ov, const core_savepoint *sp);

/* Every staging (a put or delete, new or replacing) is stamped with a
 * number counting up from the last clear; this is the latest. */
uint32_t core_overlay_stamp(const core_overlay *ov);

/* Call cb for the puts and deletes of db staged with after < stamp <= upto
 * (what was staged between two core_overlay_stamp readings), in insertion
 * order of their keys. op is 1 for a put, 2 for a delete. The callback may
 * stage more (they are stamped later); it stops at a non-zero return. */
int core_overlay_each(const core_overlay *ov, int db, uint32_t after,
                      uint32_t upto,
                      int (*cb)(void *ud, int op, const uint8_t *key,
                                size_t klen, const uint8_t *val, size_t vlen),
                      void *ud);

/* Stage an event for town (its JSON record); it gets its sequence number
 * when flushed. */
int core_overlay_event(core_overlay *ov, const char *town, const char *json,
                       size_t len);
/* The i-th staged event (i < core_overlay_events); pointers valid until the
 * next change to ov. */
void core_overlay_event_at(const core_overlay *ov, size_t i, const char **town,
                           const char **json, size_t *len);
/* Call cb for each staged event, in order. */
int core_overlay_each_event(const core_overlay *ov,
                            int (*cb)(void *ud, const char *town,
                                      const char *json, size_t len),
                            void *ud);

/*
 * A journal: what flushes wrote in one transaction, in order, so that when
 * the commit must be retried (the map filled) it can be written again
 * without asking plugins again.
 */
typedef struct core_journal core_journal;
core_journal *core_journal_new(void);
void core_journal_free(core_journal *j);
void core_journal_clear(core_journal *j);
/* Bytes journaled so far, and cutting back to such a mark. */
size_t core_journal_size(const core_journal *j);
void core_journal_truncate(core_journal *j, size_t mark);
/* Write everything journaled into txn (events numbered anew). */
int core_journal_replay(const core_journal *j, core_store *s, MDB_txn *txn,
                        core_err *err);

/* Apply the staged writes to a write transaction, and append them to j
 * (may be NULL). Events are numbered from the store's event counter (kept in
 * meta), which the flush advances. On MDB_MAP_FULL returns TWIN_ERR_TOO_BIG
 * (grow the map and retry). */
int core_overlay_flush(core_overlay *ov, core_store *s, MDB_txn *txn,
                       core_journal *j, core_err *err);

/* Write ov in a transaction of its own and commit it, growing the map
 * when it fills. Nothing to write: nothing is done. */
int core_overlay_commit(core_overlay *ov, core_store *s, core_err *err);

/* ---- reading through the overlay ----------------------------------------- */

typedef struct core_view {
  core_store *store;
  MDB_txn *txn;     /* a read or write transaction; NULL: overlay only */
  core_overlay *ov; /* may be NULL: read the transaction only */
} core_view;

/* *val is borrowed until the next write to the overlay or the end of txn. */
int core_view_get(core_view *v, int db, const void *key, size_t klen,
                  const uint8_t **val, size_t *vlen);

/* Return TWIN_OK to go on, TWIN_STOP to end, or an error to abort. */
typedef int (*core_scan_cb)(void *ud, const uint8_t *key, size_t klen,
                            const uint8_t *val, size_t vlen);

/* Visit keys lo <= key < hi (hi NULL: to the end) in key order, overlay
 * entries replacing or hiding the transaction's. The callback may write to
 * the overlay; the scan then goes on after the last key it visited. */
int core_view_scan(core_view *v, int db, const core_key *lo, const core_key *hi,
                   core_scan_cb cb, void *ud);

#endif
