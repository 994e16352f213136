/*
 * test_store.c — the state store and the overlay view: key order, value
 * codec, reads through an overlay, merged scans, flushing, events numbering,
 * map growth, and backup / restore, all on a real LMDB in a temp folder.
 */
#include "testutil.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "store.h"
#include "view.h"

typedef struct fx {
  char *dir;
  core_store *s;
} fx;

static int setup(void **state)
{
  fx *f = calloc(1, sizeof *f);
  f->dir = tu_tempdir();
  core_err err;
  assert_int_equal(core_store_open(f->dir, &f->s, &err), TWIN_OK);
  *state = f;
  return 0;
}

static int teardown(void **state)
{
  fx *f = *state;
  core_store_close(f->s);
  tu_rmtree(f->dir);
  free(f->dir);
  free(f);
  return 0;
}

static void put_committed(core_store *s, int db, const char *key,
                          const char *val)
{
  MDB_txn *txn;
  assert_int_equal(core_store_begin_write(s, &txn, NULL), TWIN_OK);
  MDB_val k = {strlen(key) + 1, (void *)key}, v = {strlen(val), (void *)val};
  assert_int_equal(mdb_put(txn, s->dbi[db], &k, &v, 0), 0);
  assert_int_equal(mdb_txn_commit(txn), 0);
}

static void times_sort_as_numbers_including_negative(void **state)
{
  (void)state;
  twin_time ts[] = {INT64_MIN, -86400000, -1, 0, 1, 1700000000000, INT64_MAX};
  for (size_t i = 0; i + 1 < sizeof ts / sizeof ts[0]; i++) {
    core_key a = {.len = 0}, b = {.len = 0};
    core_key_time(&a, ts[i]);
    core_key_time(&b, ts[i + 1]);
    assert_true(memcmp(a.b, b.b, 8) < 0);
    assert_true(core_key_get_time(a.b) == ts[i]);
  }
}

static void values_round_trip_with_and_without_time(void **state)
{
  (void)state;
  twin_value vals[] = {twin_number(3.25), twin_integer(-42), twin_bool(1),
                       twin_string("Stadthallen", 11)};
  for (size_t i = 0; i < 4; i++) {
    for (int wt = 0; wt < 2; wt++) {
      uint8_t buf[64];
      size_t n = core_value_size(&vals[i], wt);
      core_value_encode(&vals[i], 1234, wt, buf);
      twin_value out;
      twin_time t = 0;
      assert_int_equal(core_value_decode(buf, n, wt, &out, &t), TWIN_OK);
      assert_int_equal(out.type, vals[i].type);
      if (wt)
        assert_true(t == 1234);
    }
  }
  twin_value out;
  uint8_t bad[] = {TWIN_VALUE_NUMBER, 1, 2};
  assert_int_equal(core_value_decode(bad, sizeof bad, 0, &out, NULL),
                   TWIN_ERR_STORE);
  uint8_t unknown[] = {99};
  assert_int_equal(core_value_decode(unknown, 1, 0, &out, NULL),
                   TWIN_ERR_STORE);
}

static void prefix_end_is_the_first_key_after_the_prefix(void **state)
{
  (void)state;
  core_key k = {.len = 0};
  core_key_raw(&k, "ab\xff\xff", 4);
  assert_true(core_key_prefix_end(&k));
  assert_int_equal(k.len, 2);
  assert_memory_equal(k.b, "ac", 2);
  core_key all = {.len = 0};
  core_key_raw(&all, "\xff", 1);
  assert_false(core_key_prefix_end(&all));
}

static void overlay_reads_shadow_the_transaction(void **state)
{
  fx *f = *state;
  put_committed(f->s, CORE_DB_KV, "a", "lmdb-a");
  put_committed(f->s, CORE_DB_KV, "b", "lmdb-b");
  MDB_txn *txn;
  assert_int_equal(core_store_begin_read(f->s, &txn, NULL), TWIN_OK);
  core_overlay *ov = core_overlay_new();
  core_view v = {f->s, txn, ov};
  assert_int_equal(core_overlay_put(ov, CORE_DB_KV, "a", 2, "ov-a", 4), 0);
  assert_int_equal(core_overlay_del(ov, CORE_DB_KV, "b", 2), 0);
  const uint8_t *val;
  size_t len;
  assert_int_equal(core_view_get(&v, CORE_DB_KV, "a", 2, &val, &len), 0);
  assert_int_equal(len, 4);
  assert_memory_equal(val, "ov-a", 4);
  assert_int_equal(core_view_get(&v, CORE_DB_KV, "b", 2, &val, &len),
                   TWIN_ERR_NOT_FOUND);
  /* The same key in another database is another key. */
  assert_int_equal(core_view_get(&v, CORE_DB_ENT, "a", 2, &val, &len),
                   TWIN_ERR_NOT_FOUND);
  core_overlay_free(ov);
  core_store_end_read(f->s, txn);
}

typedef struct seen {
  char keys[32][16];
  char vals[32][16];
  int n;
  core_overlay *write_during; /* stage a write from inside the callback */
} seen;

static int record(void *ud, const uint8_t *key, size_t klen, const uint8_t *val,
                  size_t vlen)
{
  seen *s = ud;
  snprintf(s->keys[s->n], 16, "%.*s", (int)klen - 1, (const char *)key);
  snprintf(s->vals[s->n], 16, "%.*s", (int)vlen, (const char *)val);
  s->n++;
  if (s->write_during) /* a key that sorts after the current one */
    core_overlay_put(s->write_during, CORE_DB_KV, "zz", 3, "late", 4);
  return TWIN_OK;
}

static void scan_merges_overlay_and_transaction_in_key_order(void **state)
{
  fx *f = *state;
  put_committed(f->s, CORE_DB_KV, "b", "1");
  put_committed(f->s, CORE_DB_KV, "d", "1");
  put_committed(f->s, CORE_DB_KV, "f", "1");
  MDB_txn *txn;
  core_store_begin_read(f->s, &txn, NULL);
  core_overlay *ov = core_overlay_new();
  core_overlay_put(ov, CORE_DB_KV, "a", 2, "2", 1);
  core_overlay_put(ov, CORE_DB_KV, "d", 2, "2", 1);
  core_overlay_del(ov, CORE_DB_KV, "f", 2);
  core_overlay_put(ov, CORE_DB_KV, "e", 2, "2", 1);
  core_view v = {f->s, txn, ov};
  core_key lo = {.len = 0};
  seen s = {.n = 0};
  assert_int_equal(core_view_scan(&v, CORE_DB_KV, &lo, NULL, record, &s), 0);
  assert_int_equal(s.n, 4);
  assert_string_equal(s.keys[0], "a");
  assert_string_equal(s.keys[1], "b");
  assert_string_equal(s.keys[2], "d");
  assert_string_equal(s.vals[2], "2"); /* the overlay's value wins */
  assert_string_equal(s.keys[3], "e");
  core_overlay_free(ov);
  core_store_end_read(f->s, txn);
}

static void scan_respects_bounds_and_writes_made_during_it(void **state)
{
  fx *f = *state;
  put_committed(f->s, CORE_DB_KV, "m", "1");
  put_committed(f->s, CORE_DB_KV, "n", "1");
  MDB_txn *txn;
  core_store_begin_read(f->s, &txn, NULL);
  core_overlay *ov = core_overlay_new();
  core_view v = {f->s, txn, ov};
  core_key lo = {.len = 0}, hi = {.len = 0};
  core_key_raw(&lo, "m", 1);
  core_key_raw(&hi, "n", 1);
  seen s = {.n = 0};
  assert_int_equal(core_view_scan(&v, CORE_DB_KV, &lo, &hi, record, &s), 0);
  assert_int_equal(s.n, 1);
  assert_string_equal(s.keys[0], "m");
  /* A write staged by the callback shows up later in the same scan. */
  seen s2 = {.n = 0, .write_during = ov};
  core_key start = {.len = 0};
  assert_int_equal(core_view_scan(&v, CORE_DB_KV, &start, NULL, record, &s2),
                   0);
  assert_int_equal(s2.n, 3);
  assert_string_equal(s2.keys[2], "zz");
  core_overlay_free(ov);
  core_store_end_read(f->s, txn);
}

static void flush_applies_writes_and_numbers_events(void **state)
{
  fx *f = *state;
  put_committed(f->s, CORE_DB_KV, "gone", "x");
  core_overlay *ov = core_overlay_new();
  core_overlay_put(ov, CORE_DB_KV, "new", 4, "v", 1);
  core_overlay_del(ov, CORE_DB_KV, "gone", 5);
  core_overlay_del(ov, CORE_DB_KV, "never-there", 12);
  core_overlay_event(ov, "deggendorf", "{\"n\":1}", 7);
  core_overlay_event(ov, "deggendorf", "{\"n\":2}", 7);
  assert_int_equal(core_overlay_events(ov), 2);
  for (int round = 0; round < 2; round++) {
    MDB_txn *txn;
    core_store_begin_write(f->s, &txn, NULL);
    assert_int_equal(core_overlay_flush(ov, f->s, txn, NULL, NULL), TWIN_OK);
    assert_int_equal(mdb_txn_commit(txn), 0);
  }
  MDB_txn *txn;
  core_store_begin_read(f->s, &txn, NULL);
  core_view v = {f->s, txn, NULL};
  const uint8_t *val;
  size_t len;
  assert_int_equal(core_view_get(&v, CORE_DB_KV, "new", 4, &val, &len), 0);
  assert_int_equal(core_view_get(&v, CORE_DB_KV, "gone", 5, &val, &len),
                   TWIN_ERR_NOT_FOUND);
  /* Two flushes of two events: sequence numbers 1..4, never reused. */
  core_key k = {.len = 0};
  core_key_part(&k, "deggendorf");
  core_key_time(&k, 4);
  assert_int_equal(core_view_get(&v, CORE_DB_EVT, k.b, k.len, &val, &len), 0);
  assert_memory_equal(val, "{\"n\":2}", 7);
  core_store_end_read(f->s, txn);
  core_overlay_free(ov);
}

static void clear_forgets_staged_writes(void **state)
{
  (void)state;
  core_overlay *ov = core_overlay_new();
  for (int i = 0; i < 1000; i++) {
    char key[16];
    snprintf(key, sizeof key, "k%d", i);
    core_overlay_put(ov, CORE_DB_OBS, key, strlen(key), "v", 1);
  }
  assert_int_equal(core_overlay_writes(ov), 1000);
  core_overlay_clear(ov);
  assert_int_equal(core_overlay_writes(ov), 0);
  core_view v = {NULL, NULL, ov};
  const uint8_t *val;
  size_t len;
  assert_int_equal(core_view_get(&v, CORE_DB_OBS, "k5", 2, &val, &len),
                   TWIN_ERR_NOT_FOUND);
  core_overlay_free(ov);
}

static void the_map_grows_when_it_fills(void **state)
{
  fx *f = *state;
  uint64_t used0, size0;
  core_store_usage(f->s, &used0, &size0);
  char *val = calloc(1, 1 << 20);
  /* Write 1.5x the initial map in 1 MiB values, one commit each. */
  for (uint64_t i = 0; i < size0 / (1 << 20) * 3 / 2; i++) {
    char key[32];
    snprintf(key, sizeof key, "big%06llu", (unsigned long long)i);
    MDB_txn *txn;
    assert_int_equal(core_store_begin_write(f->s, &txn, NULL), TWIN_OK);
    MDB_val k = {strlen(key), key}, v = {1 << 20, val};
    int rc = mdb_put(txn, f->s->dbi[CORE_DB_KV], &k, &v, 0);
    assert_int_equal(rc, 0);
    assert_int_equal(mdb_txn_commit(txn), 0);
  }
  free(val);
  uint64_t used, size;
  core_store_usage(f->s, &used, &size);
  assert_true(size > size0);
  assert_true(used > size0);
}

static void backup_and_restore_bring_back_the_state(void **state)
{
  fx *f = *state;
  put_committed(f->s, CORE_DB_KV, "keep", "before");
  char *bdir = tu_fmt("%s/backup", f->dir);
  core_err err;
  assert_int_equal(core_store_backup(f->s, bdir, &err), TWIN_OK);
  /* A second backup into the same folder is refused, not overwritten. */
  assert_int_equal(core_store_backup(f->s, bdir, &err), TWIN_ERR_INVALID);
  assert_non_null(strstr(err.msg, "new or empty"));
  put_committed(f->s, CORE_DB_KV, "keep", "after");
  core_store_close(f->s);
  f->s = NULL;
  assert_int_equal(core_store_restore(f->dir, bdir, &err), TWIN_OK);
  assert_int_equal(core_store_open(f->dir, &f->s, &err), TWIN_OK);
  MDB_txn *txn;
  core_store_begin_read(f->s, &txn, NULL);
  core_view v = {f->s, txn, NULL};
  const uint8_t *val;
  size_t len;
  assert_int_equal(core_view_get(&v, CORE_DB_KV, "keep", 5, &val, &len), 0);
  assert_memory_equal(val, "before", 6);
  core_store_end_read(f->s, txn);
  free(bdir);
}

static void restore_refuses_what_is_not_a_backup(void **state)
{
  fx *f = *state;
  core_err err;
  char *empty = tu_fmt("%s/empty", f->dir);
  core_mkdirs(empty, NULL);
  assert_int_equal(core_store_restore(f->dir, empty, &err), TWIN_ERR_NOT_FOUND);
  assert_non_null(strstr(err.msg, "data.mdb missing"));
  char *junk = tu_write_file(empty, "data.mdb", "not an lmdb file at all");
  assert_int_equal(core_store_restore(f->dir, empty, &err), TWIN_ERR_INVALID);
  assert_non_null(strstr(err.msg, "not a twinhost backup"));
  free(junk);
  free(empty);
}

/* Fill the store with enough pages that cutting the file loses some. */
static void fill(core_store *s)
{
  char key[32], val[512];
  memset(val, 'v', sizeof val - 1);
  val[sizeof val - 1] = 0;
  MDB_txn *txn;
  assert_int_equal(core_store_begin_write(s, &txn, NULL), TWIN_OK);
  for (int i = 0; i < 2000; i++) {
    snprintf(key, sizeof key, "k%05d", i);
    MDB_val k = {strlen(key) + 1, key}, v = {strlen(val), val};
    assert_int_equal(mdb_put(txn, s->dbi[CORE_DB_KV], &k, &v, 0), 0);
  }
  assert_int_equal(mdb_txn_commit(txn), 0);
}

static void cut(const char *dir, off_t to)
{
  char *path = tu_fmt("%s/data.mdb", dir);
  assert_int_equal(truncate(path, to), 0);
  free(path);
}

/* A truncated store is refused at open with what to do, not a SIGBUS when
 * a missing page is first read. */
static void a_truncated_store_is_refused_at_open(void **state)
{
  fx *f = *state;
  fill(f->s);
  core_store_close(f->s);
  f->s = NULL;
  char *store = tu_fmt("%s/store", f->dir);
  char *path = tu_fmt("%s/data.mdb", store);
  struct stat sb;
  assert_int_equal(stat(path, &sb), 0);
  cut(store, sb.st_size / 2);
  core_err err;
  assert_int_equal(core_store_open(f->dir, &f->s, &err), TWIN_ERR_STORE);
  assert_non_null(strstr(err.msg, "truncated"));
  assert_non_null(strstr(err.msg, "twinhost restore"));
  cut(store, 100); /* not even the header */
  assert_int_equal(core_store_open(f->dir, &f->s, &err), TWIN_ERR_STORE);
  assert_non_null(strstr(err.msg, "less than its header"));
  free(path);
  free(store);
}

static void a_truncated_backup_is_not_restored(void **state)
{
  fx *f = *state;
  fill(f->s);
  char *bdir = tu_fmt("%s/backup", f->dir);
  core_err err;
  assert_int_equal(core_store_backup(f->s, bdir, &err), TWIN_OK);
  core_store_close(f->s);
  f->s = NULL;
  char *path = tu_fmt("%s/data.mdb", bdir);
  struct stat sb;
  assert_int_equal(stat(path, &sb), 0);
  cut(bdir, sb.st_size - 8192);
  assert_int_equal(core_store_restore(f->dir, bdir, &err), TWIN_ERR_INVALID);
  assert_non_null(strstr(err.msg, "backup is truncated"));
  /* the live store was left as it was */
  assert_int_equal(core_store_open(f->dir, &f->s, &err), TWIN_OK);
  free(path);
  free(bdir);
}

static void restore_refuses_a_store_another_process_has_open(void **state)
{
  fx *f = *state;
  char *bdir = tu_fmt("%s/backup", f->dir);
  core_err err;
  assert_int_equal(core_store_backup(f->s, bdir, &err), TWIN_OK);
  /* f->s stays open, as an ingest or query in another process would. */
  assert_int_equal(core_store_restore(f->dir, bdir, &err),
                   TWIN_ERR_UNAVAILABLE);
  assert_non_null(strstr(err.msg, "in use"));
  free(bdir);
}

typedef struct order_check {
  uint8_t last[64];
  size_t last_len, n;
  int bad;
} order_check;

static int check_order(void *ud, const uint8_t *key, size_t klen,
                       const uint8_t *val, size_t vlen)
{
  (void)val;
  (void)vlen;
  order_check *c = ud;
  size_t m = klen < c->last_len ? klen : c->last_len;
  int cmp = memcmp(c->last, key, m);
  if (c->n && (cmp > 0 || (cmp == 0 && c->last_len >= klen)))
    c->bad = 1;
  memcpy(c->last, key, klen);
  c->last_len = klen;
  c->n++;
  return TWIN_OK;
}

static void scans_between_writes_keep_every_key_in_order(void **state)
{
  (void)state;
  core_overlay *ov = core_overlay_new();
  core_view v = {NULL, NULL, ov};
  srand(42);
  size_t distinct = 0;
  char seen[1000] = {0};
  for (int round = 0; round < 20; round++) {
    for (int i = 0; i < 50; i++) {
      int r = rand() % 1000;
      char key[16];
      int n = snprintf(key, sizeof key, "k%d", r);
      core_overlay_put(ov, CORE_DB_KV, key, (size_t)n, "v", 1);
      distinct += !seen[r];
      seen[r] = 1;
    }
    core_key lo = {.len = 0};
    order_check c = {.n = 0};
    assert_int_equal(core_view_scan(&v, CORE_DB_KV, &lo, NULL, check_order, &c),
                     TWIN_OK);
    assert_false(c.bad);
    assert_int_equal(c.n, distinct);
  }
  core_overlay_free(ov);
}

static void a_rollback_undoes_only_what_came_after_the_savepoint(void **state)
{
  (void)state;
  core_overlay *ov = core_overlay_new();
  core_view v = {NULL, NULL, ov};
  core_overlay_put(ov, CORE_DB_KV, "doc", 4, "1", 1);
  core_overlay_put(ov, CORE_DB_KV, "shared", 7, "before", 6);
  core_overlay_event(ov, "t", "{}", 2);
  core_savepoint sp;
  core_overlay_savepoint(ov, &sp);
  core_overlay_put(ov, CORE_DB_KV, "rule", 5, "x", 1);
  core_overlay_put(ov, CORE_DB_KV, "shared", 7, "rule", 4);
  core_overlay_put(ov, CORE_DB_KV, "shared", 7, "rule2", 5);
  core_overlay_del(ov, CORE_DB_KV, "doc", 4);
  core_overlay_event(ov, "t", "{\"r\":1}", 7);
  core_overlay_rollback(ov, &sp);
  const uint8_t *val;
  size_t len;
  assert_int_equal(core_view_get(&v, CORE_DB_KV, "doc", 4, &val, &len), 0);
  assert_memory_equal(val, "1", 1);
  assert_int_equal(core_view_get(&v, CORE_DB_KV, "shared", 7, &val, &len), 0);
  assert_int_equal(len, 6);
  assert_memory_equal(val, "before", 6);
  assert_int_equal(core_view_get(&v, CORE_DB_KV, "rule", 5, &val, &len),
                   TWIN_ERR_NOT_FOUND);
  assert_int_equal(core_overlay_writes(ov), 2);
  assert_int_equal(core_overlay_events(ov), 1);
  /* The overlay works on after a rollback, scans included. */
  core_overlay_put(ov, CORE_DB_KV, "after", 6, "y", 1);
  core_key lo = {.len = 0};
  order_check c = {.n = 0};
  assert_int_equal(core_view_scan(&v, CORE_DB_KV, &lo, NULL, check_order, &c),
                   TWIN_OK);
  assert_int_equal(c.n, 3);
  /* A released savepoint keeps its writes. */
  core_overlay_savepoint(ov, &sp);
  core_overlay_put(ov, CORE_DB_KV, "kept", 5, "z", 1);
  core_overlay_release(ov, &sp);
  assert_int_equal(core_view_get(&v, CORE_DB_KV, "kept", 5, &val, &len), 0);
  core_overlay_free(ov);
}

/* A rule (outer savepoint) hands a plugin a document (inner): the inner
 * rollback undoes only the document's writes, the outer one the rule's
 * too, down to what was staged before it. */
static void savepoints_nest(void **state)
{
  (void)state;
  core_overlay *ov = core_overlay_new();
  core_view v = {NULL, NULL, ov};
  const uint8_t *val;
  size_t len;
  core_overlay_put(ov, CORE_DB_KV, "a", 2, "doc", 3);
  core_savepoint outer, inner;
  core_overlay_savepoint(ov, &outer);
  core_overlay_put(ov, CORE_DB_KV, "a", 2, "rule", 4);
  core_overlay_put(ov, CORE_DB_KV, "b", 2, "rule", 4);
  core_overlay_savepoint(ov, &inner);
  core_overlay_put(ov, CORE_DB_KV, "a", 2, "inner", 5);
  core_overlay_put(ov, CORE_DB_KV, "b", 2, "inner", 5);
  core_overlay_put(ov, CORE_DB_KV, "c", 2, "inner", 5);
  core_overlay_event(ov, "t", "{}", 2);
  core_overlay_rollback(ov, &inner);
  assert_int_equal(core_view_get(&v, CORE_DB_KV, "a", 2, &val, &len), 0);
  assert_memory_equal(val, "rule", 4);
  assert_int_equal(core_view_get(&v, CORE_DB_KV, "b", 2, &val, &len), 0);
  assert_memory_equal(val, "rule", 4);
  assert_int_equal(core_view_get(&v, CORE_DB_KV, "c", 2, &val, &len),
                   TWIN_ERR_NOT_FOUND);
  assert_int_equal(core_overlay_events(ov), 0);
  /* a second inner savepoint, released, then the outer rolled back */
  core_overlay_savepoint(ov, &inner);
  core_overlay_put(ov, CORE_DB_KV, "a", 2, "kept", 4);
  core_overlay_release(ov, &inner);
  assert_int_equal(core_view_get(&v, CORE_DB_KV, "a", 2, &val, &len), 0);
  assert_memory_equal(val, "kept", 4);
  core_overlay_rollback(ov, &outer);
  assert_int_equal(core_view_get(&v, CORE_DB_KV, "a", 2, &val, &len), 0);
  assert_memory_equal(val, "doc", 3);
  assert_int_equal(core_view_get(&v, CORE_DB_KV, "b", 2, &val, &len),
                   TWIN_ERR_NOT_FOUND);
  core_overlay_free(ov);
}

int main(void)
{
  setenv("TWINHOST_MAP_MIB", "8", 1); /* so growing the map takes little */
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(times_sort_as_numbers_including_negative),
      cmocka_unit_test(values_round_trip_with_and_without_time),
      cmocka_unit_test(prefix_end_is_the_first_key_after_the_prefix),
      cmocka_unit_test_setup_teardown(overlay_reads_shadow_the_transaction,
                                      setup, teardown),
      cmocka_unit_test_setup_teardown(
          scan_merges_overlay_and_transaction_in_key_order, setup, teardown),
      cmocka_unit_test_setup_teardown(
          scan_respects_bounds_and_writes_made_during_it, setup, teardown),
      cmocka_unit_test_setup_teardown(flush_applies_writes_and_numbers_events,
                                      setup, teardown),
      cmocka_unit_test(clear_forgets_staged_writes),
      cmocka_unit_test(scans_between_writes_keep_every_key_in_order),
      cmocka_unit_test(a_rollback_undoes_only_what_came_after_the_savepoint),
      cmocka_unit_test(savepoints_nest),
      cmocka_unit_test_setup_teardown(the_map_grows_when_it_fills, setup,
                                      teardown),
      cmocka_unit_test_setup_teardown(backup_and_restore_bring_back_the_state,
                                      setup, teardown),
      cmocka_unit_test_setup_teardown(restore_refuses_what_is_not_a_backup,
                                      setup, teardown),
      cmocka_unit_test_setup_teardown(
          restore_refuses_a_store_another_process_has_open, setup, teardown),
      cmocka_unit_test_setup_teardown(a_truncated_store_is_refused_at_open,
                                      setup, teardown),
      cmocka_unit_test_setup_teardown(a_truncated_backup_is_not_restored,
                                      setup, teardown),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
