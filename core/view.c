/*
 * view.c — the overlay of staged writes and the merged view of overlay and
 * LMDB transaction (see view.h for why one mechanism serves ingest and
 * scenarios alike).
 *
 * Staged entries live in an append-only vector whose bytes sit in one arena;
 * a hash table finds an entry by (db, key) for gets and replacements, and a
 * sorted index, rebuilt only when a scan or flush follows new entries, gives
 * key order. Clearing keeps all three allocations for the next document, so a
 * steady ingest allocates nothing per observation.
 */
#include "view.h"

#include <stdlib.h>
#include <string.h>

enum { OP_PUT = 1, OP_DEL = 2 };

typedef struct entry {
  size_t koff, voff;
  uint32_t klen, vlen;
  uint32_t hash;
  uint32_t stamp; /* when last staged (a replacement restamps it) */
  uint8_t db, op;
} entry;

typedef struct event {
  size_t town_off, json_off;
  uint32_t json_len;
} event;

struct core_overlay {
  uint8_t *arena;
  size_t arena_len, arena_cap;
  entry *e;
  size_t n, cap;
  uint32_t *slots; /* hash table of entry index + 1; 0 = empty */
  size_t nslots;
  uint32_t *sorted;
  size_t nsorted; /* entries covered by sorted (== n when fresh) */
  size_t sorted_cap;
  uint32_t *tmp; /* merge scratch */
  size_t tmp_cap;
  event *ev;
  size_t nev, evcap;
  /* While a savepoint is live: entries it replaced, to restore on rollback */
  struct undo {
    uint32_t index, vlen, stamp;
    size_t voff;
    uint8_t op;
  } * undo;
  size_t nundo, undocap;
  int sp_live;
  size_t sp_n;
  uint32_t stamp; /* counts stagings since the last clear */
  uint64_t gen;   /* bumped on every change, so scans notice */
};

core_overlay *core_overlay_new(void)
{
  return calloc(1, sizeof(core_overlay));
}

void core_overlay_free(core_overlay *ov)
{
  if (!ov)
    return;
  free(ov->arena);
  free(ov->e);
  free(ov->slots);
  free(ov->sorted);
  free(ov->tmp);
  free(ov->ev);
  free(ov->undo);
  free(ov);
}

void core_overlay_clear(core_overlay *ov)
{
  if (ov->n)
    memset(ov->slots, 0, ov->nslots * sizeof *ov->slots);
  ov->arena_len = 0;
  ov->n = 0;
  ov->nsorted = 0;
  ov->nev = 0;
  ov->nundo = 0;
  ov->sp_live = 0;
  ov->stamp = 0;
  ov->gen++;
}

size_t core_overlay_writes(const core_overlay *ov)
{
  return ov->n;
}

size_t core_overlay_events(const core_overlay *ov)
{
  return ov->nev;
}

static int grow(void **p, size_t *cap, size_t need, size_t size)
{
  if (need <= *cap)
    return 1;
  size_t c = *cap ? *cap : 16;
  while (c < need)
    c *= 2;
  void *np = realloc(*p, c * size);
  if (!np)
    return 0;
  *p = np;
  *cap = c;
  return 1;
}

/* Copy bytes into the arena; offset via *off. p may point into the arena
 * itself (a plugin copying a value it just read back from this overlay):
 * it is rebased if growing moves the arena. */
static int arena_add(core_overlay *ov, const void *p, size_t n, size_t *off)
{
  const uint8_t *src = p;
  int inside = ov->arena && src >= ov->arena && src < ov->arena + ov->arena_len;
  size_t src_off = inside ? (size_t)(src - ov->arena) : 0;
  if (!grow((void **)&ov->arena, &ov->arena_cap, ov->arena_len + n + 1, 1))
    return 0;
  if (inside)
    p = ov->arena + src_off;
  *off = ov->arena_len;
  if (n && p)
    memcpy(ov->arena + ov->arena_len, p, n);
  ov->arena[ov->arena_len + n] = 0;
  ov->arena_len += n + 1;
  return 1;
}

static uint32_t hash_key(int db, const void *key, size_t klen)
{
  uint32_t h = 2166136261u ^ (uint32_t)db;
  const uint8_t *p = key;
  for (size_t i = 0; i < klen; i++)
    h = (h ^ p[i]) * 16777619u;
  return h;
}

static int entry_is(const core_overlay *ov, const entry *e, int db,
                    const void *key, size_t klen, uint32_t h)
{
  return e->hash == h && e->db == db && e->klen == klen &&
         !memcmp(ov->arena + e->koff, key, klen);
}

static entry *find(const core_overlay *ov, int db, const void *key, size_t klen,
                   uint32_t h)
{
  if (!ov->nslots)
    return NULL;
  for (size_t i = h & (ov->nslots - 1);; i = (i + 1) & (ov->nslots - 1)) {
    uint32_t s = ov->slots[i];
    if (!s)
      return NULL;
    entry *e = &ov->e[s - 1];
    if (entry_is(ov, e, db, key, klen, h))
      return e;
  }
}

static int rehash(core_overlay *ov, size_t nslots)
{
  uint32_t *slots = calloc(nslots, sizeof *slots);
  if (!slots)
    return 0;
  for (size_t j = 0; j < ov->n; j++) {
    size_t i = ov->e[j].hash & (nslots - 1);
    while (slots[i])
      i = (i + 1) & (nslots - 1);
    slots[i] = (uint32_t)j + 1;
  }
  free(ov->slots);
  ov->slots = slots;
  ov->nslots = nslots;
  return 1;
}

/* Stage op on key. val NULL with vlen > 0 reserves vlen bytes for the
 * caller to fill; their offset goes to *voff_out (may be NULL). */
static int stage(core_overlay *ov, int op, int db, const void *key, size_t klen,
                 const void *val, size_t vlen, size_t *voff_out)
{
  uint32_t h = hash_key(db, key, klen);
  entry *e = find(ov, db, key, klen, h);
  size_t voff = 0;
  if (op == OP_PUT && !arena_add(ov, val, vlen, &voff))
    return TWIN_ERR_NOMEM;
  ov->gen++;
  if (voff_out)
    *voff_out = voff;
  if (e) { /* replace in place; old bytes stay in the arena until clear */
    size_t idx = (size_t)(e - ov->e);
    if (ov->sp_live && idx < ov->sp_n) {
      if (!grow((void **)&ov->undo, &ov->undocap, ov->nundo + 1,
                sizeof *ov->undo))
        return TWIN_ERR_NOMEM;
      ov->undo[ov->nundo++] =
          (struct undo){(uint32_t)idx, e->vlen, e->stamp, e->voff, e->op};
    }
    e->stamp = ++ov->stamp;
    e->op = (uint8_t)op;
    e->voff = voff;
    e->vlen = (uint32_t)vlen;
    return TWIN_OK;
  }
  if ((ov->n + 1) * 2 > ov->nslots &&
      !rehash(ov, ov->nslots ? ov->nslots * 2 : 64))
    return TWIN_ERR_NOMEM;
  if (!grow((void **)&ov->e, &ov->cap, ov->n + 1, sizeof *ov->e))
    return TWIN_ERR_NOMEM;
  size_t koff;
  if (!arena_add(ov, key, klen, &koff))
    return TWIN_ERR_NOMEM;
  e = &ov->e[ov->n];
  e->koff = koff;
  e->klen = (uint32_t)klen;
  e->voff = voff;
  e->vlen = (uint32_t)vlen;
  e->hash = h;
  e->stamp = ++ov->stamp;
  e->db = (uint8_t)db;
  e->op = (uint8_t)op;
  size_t i = h & (ov->nslots - 1);
  while (ov->slots[i])
    i = (i + 1) & (ov->nslots - 1);
  ov->slots[i] = (uint32_t)++ov->n;
  return TWIN_OK;
}

/* While savepoints are live, an entry that existed before the innermost
 * one (index < sp_n) keeps its old value in the undo log when replaced; an
 * inner rollback pops the log back to its mark, the outermost release
 * empties it. */
void core_overlay_savepoint(core_overlay *ov, core_savepoint *sp)
{
  sp->n = ov->n;
  sp->arena_len = ov->arena_len;
  sp->nev = ov->nev;
  sp->prev_live = ov->sp_live;
  sp->prev_n = ov->sp_n;
  if (!ov->sp_live)
    ov->nundo = 0;
  sp->nundo = ov->nundo;
  ov->sp_live = 1;
  ov->sp_n = ov->n;
}

void core_overlay_release(core_overlay *ov, const core_savepoint *sp)
{
  ov->sp_live = sp->prev_live;
  ov->sp_n = sp->prev_n;
  if (!ov->sp_live)
    ov->nundo = 0;
}

void core_overlay_rollback(core_overlay *ov, const core_savepoint *sp)
{
  while (ov->nundo > sp->nundo) { /* newest first: the oldest value wins */
    const struct undo *u = &ov->undo[--ov->nundo];
    entry *e = &ov->e[u->index];
    e->op = u->op;
    e->voff = u->voff;
    e->vlen = u->vlen;
    e->stamp = u->stamp;
  }
  if (ov->n > sp->n) { /* forget the new entries and their hash slots */
    ov->n = sp->n;
    memset(ov->slots, 0, ov->nslots * sizeof *ov->slots);
    for (size_t j = 0; j < ov->n; j++) {
      size_t i = ov->e[j].hash & (ov->nslots - 1);
      while (ov->slots[i])
        i = (i + 1) & (ov->nslots - 1);
      ov->slots[i] = (uint32_t)j + 1;
    }
    ov->nsorted = 0; /* the order is rebuilt on the next scan */
  }
  ov->arena_len = sp->arena_len;
  ov->nev = sp->nev;
  ov->sp_live = sp->prev_live;
  ov->sp_n = sp->prev_n;
  if (!ov->sp_live)
    ov->nundo = 0;
  ov->gen++;
}

uint32_t core_overlay_stamp(const core_overlay *ov)
{
  return ov->stamp;
}

int core_overlay_each(const core_overlay *ov, int db, uint32_t after,
                      uint32_t upto,
                      int (*cb)(void *ud, int op, const uint8_t *key,
                                size_t klen, const uint8_t *val, size_t vlen),
                      void *ud)
{
  for (size_t i = 0; i < ov->n; i++) {
    const entry *e = &ov->e[i];
    if (e->db != db || e->stamp <= after || e->stamp > upto)
      continue;
    int rc = cb(ud, e->op, ov->arena + e->koff, e->klen, ov->arena + e->voff,
                e->vlen);
    if (rc)
      return rc;
  }
  return TWIN_OK;
}

int core_overlay_put(core_overlay *ov, int db, const void *key, size_t klen,
                     const void *val, size_t vlen)
{
  return stage(ov, OP_PUT, db, key, klen, val, vlen, NULL);
}

uint8_t *core_overlay_put_space(core_overlay *ov, int db, const void *key,
                                size_t klen, size_t vlen)
{
  size_t voff;
  if (stage(ov, OP_PUT, db, key, klen, NULL, vlen, &voff))
    return NULL;
  return ov->arena + voff;
}

int core_overlay_del(core_overlay *ov, int db, const void *key, size_t klen)
{
  return stage(ov, OP_DEL, db, key, klen, NULL, 0, NULL);
}

int core_overlay_event(core_overlay *ov, const char *town, const char *json,
                       size_t len)
{
  if (!grow((void **)&ov->ev, &ov->evcap, ov->nev + 1, sizeof *ov->ev))
    return TWIN_ERR_NOMEM;
  event *e = &ov->ev[ov->nev];
  if (!arena_add(ov, town, strlen(town), &e->town_off) ||
      !arena_add(ov, json, len, &e->json_off))
    return TWIN_ERR_NOMEM;
  e->json_len = (uint32_t)len;
  ov->nev++;
  ov->gen++;
  return TWIN_OK;
}

void core_overlay_event_at(const core_overlay *ov, size_t i, const char **town,
                           const char **json, size_t *len)
{
  const event *e = &ov->ev[i];
  *town = (const char *)ov->arena + e->town_off;
  *json = (const char *)ov->arena + e->json_off;
  *len = e->json_len;
}

int core_overlay_each_event(const core_overlay *ov,
                            int (*cb)(void *ud, const char *town,
                                      const char *json, size_t len),
                            void *ud)
{
  for (size_t i = 0; i < ov->nev; i++) {
    const event *e = &ov->ev[i];
    int rc = cb(ud, (const char *)ov->arena + e->town_off,
                (const char *)ov->arena + e->json_off, e->json_len);
    if (rc)
      return rc == TWIN_STOP ? TWIN_OK : rc;
  }
  return TWIN_OK;
}

/* ---- order --------------------------------------------------------------- */

static int cmp_bytes(const uint8_t *a, size_t alen, const uint8_t *b,
                     size_t blen)
{
  int c = memcmp(a, b, alen < blen ? alen : blen);
  if (c)
    return c;
  return alen < blen ? -1 : alen > blen;
}

static int entry_cmp(const core_overlay *ov, uint32_t ia, uint32_t ib)
{
  const entry *a = &ov->e[ia], *b = &ov->e[ib];
  if (a->db != b->db)
    return a->db < b->db ? -1 : 1;
  return cmp_bytes(ov->arena + a->koff, a->klen, ov->arena + b->koff, b->klen);
}

/* Merge the sorted runs a[0..na) and b[0..nb) into out. */
static void merge(const core_overlay *ov, const uint32_t *a, size_t na,
                  const uint32_t *b, size_t nb, uint32_t *out)
{
  size_t i = 0, j = 0, k = 0;
  while (i < na && j < nb)
    out[k++] = entry_cmp(ov, a[i], b[j]) <= 0 ? a[i++] : b[j++];
  while (i < na)
    out[k++] = a[i++];
  while (j < nb)
    out[k++] = b[j++];
}

/* Bottom-up merge sort of v[0..n) with tmp[0..n) as scratch. */
static void sort_indices(const core_overlay *ov, uint32_t *v, size_t n,
                         uint32_t *tmp)
{
  for (size_t width = 1; width < n; width *= 2) {
    for (size_t lo = 0; lo < n; lo += 2 * width) {
      size_t mid = lo + width < n ? lo + width : n;
      size_t hi = lo + 2 * width < n ? lo + 2 * width : n;
      merge(ov, v + lo, mid - lo, v + mid, hi - mid, tmp + lo);
    }
    memcpy(v, tmp, n * sizeof *v);
  }
}

/* Bring the key order up to date: only the entries staged since the last
 * time are sorted, then merged in, so a scan after each of many writes
 * costs O(n) each rather than a full sort. A replaced entry keeps its key
 * and so its place. */
static int ensure_sorted(core_overlay *ov)
{
  if (ov->nsorted == ov->n)
    return 1;
  if (!grow((void **)&ov->sorted, &ov->sorted_cap, ov->n, sizeof(uint32_t)) ||
      !grow((void **)&ov->tmp, &ov->tmp_cap, ov->n, sizeof(uint32_t)))
    return 0;
  size_t old = ov->nsorted, k = ov->n - old;
  for (size_t i = old; i < ov->n; i++)
    ov->sorted[i] = (uint32_t)i;
  sort_indices(ov, ov->sorted + old, k, ov->tmp);
  if (old) {
    merge(ov, ov->sorted, old, ov->sorted + old, k, ov->tmp);
    memcpy(ov->sorted, ov->tmp, ov->n * sizeof *ov->sorted);
  }
  ov->nsorted = ov->n;
  return 1;
}

/* First sorted position whose (db, key) >= (db, key). */
static size_t lower_bound(const core_overlay *ov, int db, const uint8_t *key,
                          size_t klen)
{
  size_t lo = 0, hi = ov->nsorted;
  while (lo < hi) {
    size_t mid = (lo + hi) / 2;
    const entry *e = &ov->e[ov->sorted[mid]];
    int c = e->db != db ? (e->db < db ? -1 : 1)
                        : cmp_bytes(ov->arena + e->koff, e->klen, key, klen);
    if (c < 0)
      lo = mid + 1;
    else
      hi = mid;
  }
  return lo;
}

/* ---- flush --------------------------------------------------------------- */

static int mdb_fail(int rc, core_err *err)
{
  if (rc == MDB_MAP_FULL)
    return core_err_set(err, TWIN_ERR_TOO_BIG, "store map full");
  return core_store_status(rc, "store write", err);
}

/* ---- the journal -------------------------------------------------------- */

struct core_journal {
  uint8_t *buf;
  size_t len, cap;
};

enum { REC_PUT = OP_PUT, REC_DEL = OP_DEL, REC_EVENT = 3 };

typedef struct rec_head {
  uint8_t kind, db;
  uint32_t klen, vlen;
} rec_head;

core_journal *core_journal_new(void)
{
  return calloc(1, sizeof(core_journal));
}

void core_journal_free(core_journal *j)
{
  if (j)
    free(j->buf);
  free(j);
}

void core_journal_clear(core_journal *j)
{
  j->len = 0;
}

size_t core_journal_size(const core_journal *j)
{
  return j->len;
}

void core_journal_truncate(core_journal *j, size_t mark)
{
  if (mark < j->len)
    j->len = mark;
}

static int journal_add(core_journal *j, int kind, int db, const void *key,
                       size_t klen, const void *val, size_t vlen)
{
  if (!j)
    return TWIN_OK;
  rec_head h = {(uint8_t)kind, (uint8_t)db, (uint32_t)klen, (uint32_t)vlen};
  if (!grow((void **)&j->buf, &j->cap, j->len + sizeof h + klen + vlen, 1))
    return TWIN_ERR_NOMEM;
  memcpy(j->buf + j->len, &h, sizeof h);
  j->len += sizeof h;
  memcpy(j->buf + j->len, key, klen);
  j->len += klen;
  if (vlen)
    memcpy(j->buf + j->len, val, vlen);
  j->len += vlen;
  return TWIN_OK;
}

/* ---- writing to LMDB ----------------------------------------------------- */

static int write_entry(core_store *s, MDB_txn *txn, int op, int db,
                       const void *key, size_t klen, const void *val,
                       size_t vlen)
{
  MDB_val k = {klen, (void *)key};
  if (op == OP_PUT) {
    MDB_val v = {vlen, (void *)val};
    return mdb_put(txn, s->dbi[db], &k, &v, 0);
  }
  int rc = mdb_del(txn, s->dbi[db], &k, NULL);
  return rc == MDB_NOTFOUND ? 0 : rc;
}

/* Events are numbered from a counter in meta, read and advanced in the
 * transaction that stores them, so numbers are never reused. */
typedef struct event_writer {
  core_store *s;
  MDB_txn *txn;
  uint64_t seq;
  int loaded;
} event_writer;

static int write_event(event_writer *w, const char *town, size_t town_len,
                       const void *json, size_t len)
{
  MDB_val sk = {9, "event_seq"}, sv;
  if (!w->loaded) {
    int rc = mdb_get(w->txn, w->s->dbi[CORE_DB_META], &sk, &sv);
    if (rc && rc != MDB_NOTFOUND)
      return rc;
    if (!rc && sv.mv_size == 8)
      memcpy(&w->seq, sv.mv_data, 8);
    w->loaded = 1;
  }
  core_key key = {.len = 0};
  if (!core_key_raw(&key, town, town_len) || !core_key_raw(&key, "", 1))
    return MDB_BAD_VALSIZE;
  core_key_time(&key, (twin_time)++w->seq);
  MDB_val k = {key.len, key.b}, v = {len, (void *)json};
  int rc = mdb_put(w->txn, w->s->dbi[CORE_DB_EVT], &k, &v, 0);
  if (rc)
    return rc;
  sv.mv_size = 8;
  sv.mv_data = &w->seq;
  return mdb_put(w->txn, w->s->dbi[CORE_DB_META], &sk, &sv, 0);
}

int core_overlay_flush(core_overlay *ov, core_store *s, MDB_txn *txn,
                       core_journal *j, core_err *err)
{
  if (!ensure_sorted(ov))
    return core_err_set(err, TWIN_ERR_NOMEM, "out of memory");
  for (size_t i = 0; i < ov->n; i++) {
    const entry *e = &ov->e[ov->sorted[i]];
    const uint8_t *key = ov->arena + e->koff, *val = ov->arena + e->voff;
    int rc = write_entry(s, txn, e->op, e->db, key, e->klen, val, e->vlen);
    if (rc)
      return mdb_fail(rc, err);
    if (journal_add(j, e->op, e->db, key, e->klen, val, e->vlen))
      return core_err_set(err, TWIN_ERR_NOMEM, "out of memory");
  }
  event_writer w = {s, txn, 0, 0};
  for (size_t i = 0; i < ov->nev; i++) {
    const event *ev = &ov->ev[i];
    const char *town = (const char *)ov->arena + ev->town_off;
    const uint8_t *json = ov->arena + ev->json_off;
    int rc = write_event(&w, town, strlen(town), json, ev->json_len);
    if (rc)
      return mdb_fail(rc, err);
    if (journal_add(j, REC_EVENT, 0, town, strlen(town), json, ev->json_len))
      return core_err_set(err, TWIN_ERR_NOMEM, "out of memory");
  }
  return TWIN_OK;
}

int core_journal_replay(const core_journal *j, core_store *s, MDB_txn *txn,
                        core_err *err)
{
  event_writer w = {s, txn, 0, 0};
  for (size_t off = 0; off < j->len;) {
    rec_head h;
    memcpy(&h, j->buf + off, sizeof h);
    const uint8_t *key = j->buf + off + sizeof h, *val = key + h.klen;
    off += sizeof h + h.klen + h.vlen;
    int rc = h.kind == REC_EVENT
                 ? write_event(&w, (const char *)key, h.klen, val, h.vlen)
                 : write_entry(s, txn, h.kind, h.db, key, h.klen, val, h.vlen);
    if (rc)
      return mdb_fail(rc, err);
  }
  return TWIN_OK;
}

int core_overlay_commit(core_overlay *ov, core_store *s, core_err *err)
{
  if (!ov->n && !ov->nev)
    return TWIN_OK;
  for (int tries = 0;; tries++) {
    MDB_txn *txn;
    int st = core_store_begin_write(s, &txn, err);
    if (st)
      return st;
    st = core_overlay_flush(ov, s, txn, NULL, err);
    if (!st) {
      int rc = mdb_txn_commit(txn);
      st = rc == MDB_MAP_FULL
               ? core_err_set(err, TWIN_ERR_TOO_BIG, "store map full")
               : core_store_status(rc, "store commit", err);
    } else {
      mdb_txn_abort(txn);
    }
    if (st != TWIN_ERR_TOO_BIG || tries >= 16)
      return st;
    st = core_store_grow(s, err);
    if (st)
      return st;
  }
}

/* ---- the merged view ----------------------------------------------------- */

int core_view_get(core_view *v, int db, const void *key, size_t klen,
                  const uint8_t **val, size_t *vlen)
{
  if (v->ov) {
    entry *e = find(v->ov, db, key, klen, hash_key(db, key, klen));
    if (e) {
      if (e->op == OP_DEL)
        return TWIN_ERR_NOT_FOUND;
      *val = v->ov->arena + e->voff;
      *vlen = e->vlen;
      return TWIN_OK;
    }
  }
  if (!v->txn)
    return TWIN_ERR_NOT_FOUND;
  MDB_val k = {klen, (void *)key}, d;
  int rc = mdb_get(v->txn, v->store->dbi[db], &k, &d);
  if (rc)
    return core_store_status(rc, "store read", NULL);
  *val = d.mv_data;
  *vlen = d.mv_size;
  return TWIN_OK;
}

int core_view_scan(core_view *v, int db, const core_key *lo, const core_key *hi,
                   core_scan_cb cb, void *ud)
{
  core_overlay *ov = v->ov;
  MDB_cursor *cur = NULL;
  MDB_val mk = {0, NULL}, md = {0, NULL};
  int have_m = 0, rc = TWIN_OK;
  if (v->txn) {
    int m = mdb_cursor_open(v->txn, v->store->dbi[db], &cur);
    if (m)
      return core_store_status(m, "store scan", NULL);
    mk.mv_size = lo->len;
    mk.mv_data = (void *)lo->b;
    /* LMDB refuses an empty key for SET_RANGE: start at the first. */
    m = mdb_cursor_get(cur, &mk, &md, lo->len ? MDB_SET_RANGE : MDB_FIRST);
    if (m && m != MDB_NOTFOUND) {
      mdb_cursor_close(cur);
      return core_store_status(m, "store scan", NULL);
    }
    have_m = !m;
  }
  size_t oi = 0;
  uint64_t gen = 0;
  if (ov) {
    if (!ensure_sorted(ov)) {
      rc = TWIN_ERR_NOMEM;
      goto out;
    }
    oi = lower_bound(ov, db, lo->b, lo->len);
    gen = ov->gen;
  }
  uint8_t last[CORE_KEY_MAX];
  size_t last_len = 0;
  for (;;) {
    const entry *oe = NULL;
    if (ov && oi < ov->nsorted) {
      oe = &ov->e[ov->sorted[oi]];
      if (oe->db != db)
        oe = NULL;
    }
    const uint8_t *ok = oe ? ov->arena + oe->koff : NULL;
    int c; /* <0: LMDB's key first, >0: overlay's first, 0: same key */
    if (have_m && oe)
      c = cmp_bytes(mk.mv_data, mk.mv_size, ok, oe->klen);
    else if (have_m)
      c = -1;
    else if (oe)
      c = 1;
    else
      break;
    const uint8_t *key, *val;
    size_t klen, vlen;
    int hidden = 0;
    if (c < 0) {
      key = mk.mv_data;
      klen = mk.mv_size;
      val = md.mv_data;
      vlen = md.mv_size;
    } else {
      key = ok;
      klen = oe->klen;
      val = ov->arena + oe->voff;
      vlen = oe->vlen;
      hidden = oe->op == OP_DEL;
    }
    if (hi && cmp_bytes(key, klen, hi->b, hi->len) >= 0)
      break;
    memcpy(last, key, klen);
    last_len = klen;
    if (!hidden) {
      rc = cb(ud, key, klen, val, vlen);
      if (rc) {
        if (rc == TWIN_STOP)
          rc = TWIN_OK;
        break;
      }
    }
    if (c <= 0 && have_m)
      have_m = !mdb_cursor_get(cur, &mk, &md, MDB_NEXT);
    if (ov && ov->gen != gen) { /* the callback staged writes: re-find */
      if (!ensure_sorted(ov)) {
        rc = TWIN_ERR_NOMEM;
        break;
      }
      gen = ov->gen;
      oi = lower_bound(ov, db, last, last_len);
      if (oi < ov->nsorted) {
        const entry *e = &ov->e[ov->sorted[oi]];
        if (e->db == db &&
            !cmp_bytes(ov->arena + e->koff, e->klen, last, last_len))
          oi++;
      }
    } else if (c >= 0) {
      oi++;
    }
  }
out:
  if (cur)
    mdb_cursor_close(cur);
  return rc;
}
