/*
 * store.h — the state store: one LMDB environment per data folder, its named
 * databases and key layout, the value codec, map growth, backup and restore.
 *
 * Key layout (every key starts with the town, so towns never share a key):
 *   ent  town\0plugin\0type\0id\0attr         -> value with time
 *   obs  town\0plugin\0type\0id\0attr\0 be64t  -> value (time is in the key,
 *                                                 so a series sorts by time)
 *   kv   town\0plugin\0<key bytes>            -> bytes
 *   evt  town\0 be64(seq)                      -> event JSON
 *   meta <name>                                -> host bookkeeping
 * be64t is the time with its sign bit flipped, big-endian, so that negative
 * times sort before positive ones under memcmp.
 */
#ifndef CORE_STORE_H
#define CORE_STORE_H

#include <lmdb.h>
#include <pthread.h>
#include <stddef.h>
#include <stdint.h>

#include "util.h"

enum core_db {
  CORE_DB_ENT,
  CORE_DB_OBS,
  CORE_DB_KV,
  CORE_DB_EVT,
  CORE_DB_META,
  CORE_DB_COUNT
};

#define CORE_STORE_FORMAT "twinhost-store-1"
#define CORE_KEY_MAX 511 /* LMDB's default key size limit */

typedef struct core_store {
  MDB_env *env;
  MDB_dbi dbi[CORE_DB_COUNT];
  char *dir;
  /* Readers of this process hold it shared; growing the map holds it
   * exclusively (mdb_env_set_mapsize needs no live transaction here). */
  pthread_rwlock_t resize_lock;
  int open_lock; /* flock'd shared while open; restore needs it exclusive */
} core_store;

/* Open (creating if needed) the store in dir/store. */
int core_store_open(const char *data_dir, core_store **out, core_err *err);
void core_store_close(core_store *s);

/* Write transactions: only one thread of a process writes. begin_write
 * grows the map first when it is more than 3/4 full. */
int core_store_begin_write(core_store *s, MDB_txn **txn, core_err *err);
/* Read transactions hold resize_lock shared until core_store_end_read. A
 * thread must not begin a second read transaction while it holds one. */
int core_store_begin_read(core_store *s, MDB_txn **txn, core_err *err);
void core_store_end_read(core_store *s, MDB_txn *txn);
/* Double the map (no write transaction of this process may be open). */
int core_store_grow(core_store *s, core_err *err);
/* Turn an LMDB return code into a status with a message. */
int core_store_status(int mdb_rc, const char *what, core_err *err);

/* Used bytes and map size. */
void core_store_usage(core_store *s, uint64_t *used, uint64_t *mapsize);

/* A compacting copy of the live store into backup_dir (created, must be
 * empty or absent); safe while the host runs. */
int core_store_backup(core_store *s, const char *backup_dir, core_err *err);
/* Replace data_dir's store with the backup in backup_dir. Refused with
 * TWIN_ERR_UNAVAILABLE while any process has the store open. */
int core_store_restore(const char *data_dir, const char *backup_dir,
                       core_err *err);

/* ---- keys ---------------------------------------------------------------- */

typedef struct core_key {
  uint8_t b[CORE_KEY_MAX];
  size_t len;
} core_key;

/* Append a NUL-terminated part (and its NUL separator). 0 when too long. */
int core_key_part(core_key *k, const char *s);
/* Append raw bytes without separator. */
int core_key_raw(core_key *k, const void *p, size_t n);
int core_key_time(core_key *k, twin_time t);
twin_time core_key_get_time(const uint8_t *p);
/* k := the smallest key greater than every key starting with k (prefix
 * upper bound); 0 if none exists. */
int core_key_prefix_end(core_key *k);

/* ---- values -------------------------------------------------------------- */

/* Encoded value: tag byte, then (with_time) 8 bytes of time, then payload. */
size_t core_value_size(const twin_value *v, int with_time);
void core_value_encode(const twin_value *v, twin_time t, int with_time,
                       uint8_t *out);
/* Decode; strings point into buf. TWIN_ERR_STORE if malformed. */
int core_value_decode(const uint8_t *buf, size_t len, int with_time,
                      twin_value *v, twin_time *t);

#endif
