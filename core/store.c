/*
 * store.c — the LMDB environment behind a data folder: opening it, write and
 * read transactions, growing the map when it fills, the key and value codecs,
 * and online backup / restore.
 */
#include "store.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

static const char *const db_names[CORE_DB_COUNT] = {"ent", "obs", "kv", "evt",
                                                    "meta"};
#define INITIAL_MAP ((size_t)1 << 30)

/* The first map size: $TWINHOST_MAP_MIB (for small machines and tests), else
 * 1 GiB. It only reserves address space (the file grows as data comes), so
 * a generous start keeps map growth, which waits for readers, rare. */
static size_t initial_map(void)
{
  const char *env = getenv("TWINHOST_MAP_MIB");
  long mib = env ? strtol(env, NULL, 10) : 0;
  return mib >= 1 && mib <= (1L << 20) ? (size_t)mib << 20 : INITIAL_MAP;
}

int core_store_status(int rc, const char *what, core_err *err)
{
  if (rc == MDB_SUCCESS)
    return TWIN_OK;
  if (rc == MDB_NOTFOUND)
    return TWIN_ERR_NOT_FOUND;
  if (rc == ENOMEM)
    return core_err_set(err, TWIN_ERR_NOMEM, "%s: out of memory", what);
  return core_err_set(err, TWIN_ERR_STORE, "%s: %s", what, mdb_strerror(rc));
}

/*
 * A data file shorter than its pages makes the first read of a missing page
 * kill the process with SIGBUS (LMDB maps the file and does not check), so
 * the size is checked first: before opening, that the two meta pages are
 * there; after mdb_env_open (which reads them with read(), not through the
 * map), that the file holds every page up to the last one in use. what
 * names the thing for the message ("store", "backup").
 */
static int file_too_short(const char *dir, const char *what, off_t *size,
                          core_err *err)
{
  char *path = core_path_join(dir, "data.mdb");
  struct stat sb;
  int absent = stat(path, &sb) != 0;
  free(path);
  *size = absent ? 0 : sb.st_size;
  long page = sysconf(_SC_PAGESIZE);
  if (!absent && sb.st_size > 0 && sb.st_size < 2 * (page > 0 ? page : 4096))
    return core_err_set(err, TWIN_ERR_STORE,
                        "%s/data.mdb: the %s is truncated (%lld bytes, less "
                        "than its header); restore a backup with `twinhost "
                        "restore DIR`, or move the folder away to start "
                        "empty",
                        dir, what, (long long)sb.st_size);
  return TWIN_OK;
}

static int pages_missing(MDB_env *env, const char *dir, const char *what,
                         off_t size, core_err *err)
{
  MDB_envinfo info;
  MDB_stat st;
  if (size <= 0 || mdb_env_info(env, &info) || mdb_env_stat(env, &st))
    return TWIN_OK; /* a new store, or nothing to compare */
  unsigned long long need =
      ((unsigned long long)info.me_last_pgno + 1) * st.ms_psize;
  if ((unsigned long long)size < need)
    return core_err_set(err, TWIN_ERR_STORE,
                        "%s/data.mdb: the %s is truncated: it has %lld "
                        "bytes but its pages reach %llu (a copy cut short or "
                        "a full disk?); restore a backup with `twinhost "
                        "restore DIR`",
                        dir, what, (long long)size, need);
  return TWIN_OK;
}

/* Open the named databases and check the store's format in one
 * transaction: read-only when the store exists (so opening never waits for
 * a running host's writer), writing when it must create them.
 * TWIN_ERR_NOT_FOUND from a read-only attempt means "create first". */
static int open_dbs(core_store *s, unsigned flags, core_err *err)
{
  MDB_txn *txn;
  int rc = mdb_txn_begin(s->env, NULL, flags, &txn);
  if (rc)
    return core_store_status(rc, "store", err);
  unsigned dflags = flags & MDB_RDONLY ? 0 : MDB_CREATE;
  for (int i = 0; !rc && i < CORE_DB_COUNT; i++)
    rc = mdb_dbi_open(txn, db_names[i], dflags, &s->dbi[i]);
  MDB_val k = {6, "format"}, v;
  if (!rc)
    rc = mdb_get(txn, s->dbi[CORE_DB_META], &k, &v);
  if (rc == MDB_NOTFOUND && !(flags & MDB_RDONLY)) {
    v.mv_data = CORE_STORE_FORMAT;
    v.mv_size = strlen(CORE_STORE_FORMAT);
    rc = mdb_put(txn, s->dbi[CORE_DB_META], &k, &v, 0);
  } else if (!rc && (v.mv_size != strlen(CORE_STORE_FORMAT) ||
                     memcmp(v.mv_data, CORE_STORE_FORMAT, v.mv_size))) {
    mdb_txn_abort(txn);
    return core_err_set(err, TWIN_ERR_STORE,
                        "%s: the store has format '%.*s', this twinhost "
                        "reads '%s'",
                        s->dir, (int)v.mv_size, (const char *)v.mv_data,
                        CORE_STORE_FORMAT);
  }
  if (rc) {
    mdb_txn_abort(txn);
    if (rc == MDB_NOTFOUND)
      return TWIN_ERR_NOT_FOUND;
    return core_err_set(err, TWIN_ERR_STORE, "%s: %s", s->dir,
                        mdb_strerror(rc));
  }
  /* Committing (even a read-only transaction) keeps the handles. */
  return core_store_status(mdb_txn_commit(txn), "store", err);
}

int core_store_open(const char *data_dir, core_store **out, core_err *err)
{
  *out = NULL;
  core_store *s = calloc(1, sizeof *s);
  if (!s)
    return core_err_set(err, TWIN_ERR_NOMEM, "out of memory");
  s->dir = core_path_join(data_dir, "store");
  s->open_lock = -1;
  /* Writer-preferring: a stream of overlapping queries must not keep the
   * writer from growing the map (no thread nests read transactions). */
  pthread_rwlockattr_t attr;
  pthread_rwlockattr_init(&attr);
  pthread_rwlockattr_setkind_np(&attr,
                                PTHREAD_RWLOCK_PREFER_WRITER_NONRECURSIVE_NP);
  pthread_rwlock_init(&s->resize_lock, &attr);
  pthread_rwlockattr_destroy(&attr);
  int st = core_mkdirs(s->dir, err);
  if (st)
    goto fail;
  /* Every process with the store open holds this shared; restore takes it
   * exclusively, so it never replaces a store someone is writing to. */
  char *lock = core_path_join(s->dir, "open.lock");
  s->open_lock = open(lock, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
  free(lock);
  if (s->open_lock < 0 || flock(s->open_lock, LOCK_SH)) {
    st = core_err_set(err, TWIN_ERR_STORE, "%s: cannot lock the store: %s",
                      s->dir, strerror(errno));
    goto fail;
  }
  off_t size;
  if ((st = file_too_short(s->dir, "store", &size, err)))
    goto fail;
  int rc = mdb_env_create(&s->env);
  if (!rc)
    rc = mdb_env_set_maxdbs(s->env, CORE_DB_COUNT);
  if (!rc)
    rc = mdb_env_set_maxreaders(s->env, 254);
  if (!rc)
    rc = mdb_env_set_mapsize(s->env, initial_map());
  if (!rc)
    rc = mdb_env_open(s->env, s->dir, MDB_NOTLS, 0644);
  if (rc) {
    st = core_err_set(err, TWIN_ERR_STORE,
                      "%s: cannot open the store: %s%s", s->dir,
                      mdb_strerror(rc),
                      rc == MDB_INVALID || rc == MDB_VERSION_MISMATCH
                          ? "; restore a backup with `twinhost restore DIR`, "
                            "or move the folder away to start empty"
                          : "");
    goto fail;
  }
  if ((st = pages_missing(s->env, s->dir, "store", size, err)))
    goto fail;
  /* A store another process grew is larger than our map: adopt it. */
  mdb_env_set_mapsize(s->env, 0);
  st = open_dbs(s, MDB_RDONLY, err);
  if (st == TWIN_ERR_NOT_FOUND)
    st = open_dbs(s, 0, err);
  if (st)
    goto fail;
  *out = s;
  return TWIN_OK;
fail:
  core_store_close(s);
  return st;
}

void core_store_close(core_store *s)
{
  if (!s)
    return;
  if (s->env)
    mdb_env_close(s->env);
  if (s->open_lock >= 0)
    close(s->open_lock);
  pthread_rwlock_destroy(&s->resize_lock);
  free(s->dir);
  free(s);
}

void core_store_usage(core_store *s, uint64_t *used, uint64_t *mapsize)
{
  MDB_envinfo info;
  MDB_stat st;
  mdb_env_info(s->env, &info);
  mdb_env_stat(s->env, &st);
  *used = (uint64_t)(info.me_last_pgno + 1) * st.ms_psize;
  *mapsize = info.me_mapsize;
}

int core_store_grow(core_store *s, core_err *err)
{
  uint64_t used, size;
  pthread_rwlock_wrlock(&s->resize_lock);
  core_store_usage(s, &used, &size);
  int rc = mdb_env_set_mapsize(s->env, (size_t)size * 2);
  pthread_rwlock_unlock(&s->resize_lock);
  if (rc)
    return core_err_set(err, TWIN_ERR_STORE,
                        "%s: cannot grow the map to %llu MiB: %s", s->dir,
                        (unsigned long long)(size * 2 >> 20), mdb_strerror(rc));
  core_log(TWIN_LEVEL_INFO, NULL, NULL, "store map grown to %llu MiB",
           (unsigned long long)(size * 2 >> 20));
  return TWIN_OK;
}

/* Another process grew the map: adopt its size (needs no live txn here). */
static void adopt_resize(core_store *s)
{
  pthread_rwlock_wrlock(&s->resize_lock);
  mdb_env_set_mapsize(s->env, 0);
  pthread_rwlock_unlock(&s->resize_lock);
}

int core_store_begin_write(core_store *s, MDB_txn **txn, core_err *err)
{
  uint64_t used, size;
  core_store_usage(s, &used, &size);
  if (used > size / 4 * 3) {
    int st = core_store_grow(s, err);
    if (st)
      return st;
  }
  int rc = mdb_txn_begin(s->env, NULL, 0, txn);
  if (rc == MDB_MAP_RESIZED) {
    adopt_resize(s);
    rc = mdb_txn_begin(s->env, NULL, 0, txn);
  }
  return core_store_status(rc, "store: begin write", err);
}

int core_store_begin_read(core_store *s, MDB_txn **txn, core_err *err)
{
  for (int attempt = 0;; attempt++) {
    pthread_rwlock_rdlock(&s->resize_lock);
    int rc = mdb_txn_begin(s->env, NULL, MDB_RDONLY, txn);
    if (rc == MDB_MAP_RESIZED && attempt == 0) {
      pthread_rwlock_unlock(&s->resize_lock);
      adopt_resize(s);
      continue;
    }
    if (rc)
      pthread_rwlock_unlock(&s->resize_lock);
    return core_store_status(rc, "store: begin read", err);
  }
}

void core_store_end_read(core_store *s, MDB_txn *txn)
{
  mdb_txn_abort(txn);
  pthread_rwlock_unlock(&s->resize_lock);
}

static int dir_is_empty_or_absent(const char *dir)
{
  DIR *d = opendir(dir);
  if (!d)
    return errno == ENOENT;
  struct dirent *e;
  int empty = 1;
  while ((e = readdir(d)))
    if (strcmp(e->d_name, ".") && strcmp(e->d_name, ".."))
      empty = 0;
  closedir(d);
  return empty;
}

int core_store_backup(core_store *s, const char *backup_dir, core_err *err)
{
  if (!dir_is_empty_or_absent(backup_dir))
    return core_err_set(err, TWIN_ERR_INVALID,
                        "%s: the backup folder must be new or empty, so no "
                        "older backup is overwritten",
                        backup_dir);
  int st = core_mkdirs(backup_dir, err);
  if (st)
    return st;
  int rc = mdb_env_copy2(s->env, backup_dir, MDB_CP_COMPACT);
  if (rc)
    return core_err_set(err, TWIN_ERR_STORE, "%s: backup failed: %s",
                        backup_dir, mdb_strerror(rc));
  return TWIN_OK;
}

static int copy_file_synced(const char *from, const char *to, core_err *err)
{
  int in = open(from, O_RDONLY);
  if (in < 0)
    return core_err_set(err, TWIN_ERR_NOT_FOUND, "%s: %s", from,
                        strerror(errno));
  int out = open(to, O_WRONLY | O_CREAT | O_TRUNC, 0644);
  if (out < 0) {
    close(in);
    return core_err_set(err, TWIN_ERR_STORE, "%s: %s", to, strerror(errno));
  }
  char buf[1 << 16];
  ssize_t n;
  int st = TWIN_OK;
  while ((n = read(in, buf, sizeof buf)) > 0) {
    for (ssize_t off = 0; off < n;) {
      ssize_t w = write(out, buf + off, (size_t)(n - off));
      if (w < 0) {
        st = core_err_set(err, TWIN_ERR_STORE, "%s: %s", to, strerror(errno));
        goto done;
      }
      off += w;
    }
  }
  if (n < 0)
    st = core_err_set(err, TWIN_ERR_STORE, "%s: %s", from, strerror(errno));
  else if (fsync(out))
    st = core_err_set(err, TWIN_ERR_STORE, "%s: %s", to, strerror(errno));
done:
  close(in);
  close(out);
  return st;
}

int core_store_restore(const char *data_dir, const char *backup_dir,
                       core_err *err)
{
  char *src = core_path_join(backup_dir, "data.mdb");
  struct stat sb;
  if (stat(src, &sb)) {
    int st = core_err_set(err, TWIN_ERR_NOT_FOUND,
                          "%s: no backup here (data.mdb missing); make one "
                          "with `twinhost backup DIR`",
                          backup_dir);
    free(src);
    return st;
  }
  /* Check the backup is a store of ours, whole, before replacing
   * anything. */
  off_t size;
  if (file_too_short(backup_dir, "backup", &size, err)) {
    core_err_prefix(err, "%s: not a twinhost backup", backup_dir);
    free(src);
    return TWIN_ERR_INVALID;
  }
  core_store probe = {0};
  probe.dir = (char *)backup_dir;
  int rc = mdb_env_create(&probe.env);
  if (!rc)
    rc = mdb_env_set_maxdbs(probe.env, CORE_DB_COUNT);
  if (!rc)
    rc = mdb_env_open(probe.env, backup_dir, MDB_RDONLY | MDB_NOLOCK, 0644);
  if (!rc && pages_missing(probe.env, backup_dir, "backup", size, err)) {
    mdb_env_close(probe.env);
    free(src);
    return TWIN_ERR_INVALID;
  }
  MDB_txn *txn = NULL;
  MDB_dbi meta;
  MDB_val k = {6, "format"}, v;
  if (!rc)
    rc = mdb_txn_begin(probe.env, NULL, MDB_RDONLY, &txn);
  if (!rc)
    rc = mdb_dbi_open(txn, "meta", 0, &meta);
  if (!rc)
    rc = mdb_get(txn, meta, &k, &v);
  int ok = !rc && v.mv_size == strlen(CORE_STORE_FORMAT) &&
           !memcmp(v.mv_data, CORE_STORE_FORMAT, v.mv_size);
  if (txn)
    mdb_txn_abort(txn);
  if (probe.env)
    mdb_env_close(probe.env);
  if (!ok) {
    free(src);
    return core_err_set(err, TWIN_ERR_INVALID, "%s: not a twinhost backup (%s)",
                        backup_dir,
                        rc ? mdb_strerror(rc) : "wrong store format");
  }
  char *store_dir = core_path_join(data_dir, "store");
  char *tmp = core_path_join(store_dir, "data.mdb.restoring");
  char *dst = core_path_join(store_dir, "data.mdb");
  char *lock = core_path_join(store_dir, "lock.mdb");
  char *open_lock = core_path_join(store_dir, "open.lock");
  int st = core_mkdirs(store_dir, err);
  int lk = st ? -1 : open(open_lock, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
  if (!st && (lk < 0 || flock(lk, LOCK_EX | LOCK_NB)))
    st = core_err_set(err, TWIN_ERR_UNAVAILABLE,
                      "%s: the store is in use by another twinhost process "
                      "(serve, ingest, query ...); stop it first",
                      store_dir);
  if (!st)
    st = copy_file_synced(src, tmp, err);
  if (!st && rename(tmp, dst))
    st = core_err_set(err, TWIN_ERR_STORE, "%s: %s", dst, strerror(errno));
  if (!st) {
    unlink(lock); /* stale reader table of the old file */
    int dfd = open(store_dir, O_RDONLY | O_DIRECTORY);
    if (dfd >= 0) { /* make the rename itself durable */
      fsync(dfd);
      close(dfd);
    }
  } else {
    unlink(tmp);
  }
  if (lk >= 0)
    close(lk);
  free(src);
  free(store_dir);
  free(tmp);
  free(dst);
  free(lock);
  free(open_lock);
  return st;
}

/* ---- keys ---------------------------------------------------------------- */

int core_key_part(core_key *k, const char *s)
{
  size_t n = strlen(s) + 1;
  if (k->len + n > CORE_KEY_MAX)
    return 0;
  memcpy(k->b + k->len, s, n);
  k->len += n;
  return 1;
}

int core_key_raw(core_key *k, const void *p, size_t n)
{
  if (k->len + n > CORE_KEY_MAX)
    return 0;
  memcpy(k->b + k->len, p, n);
  k->len += n;
  return 1;
}

int core_key_time(core_key *k, twin_time t)
{
  uint64_t u = (uint64_t)t ^ (UINT64_C(1) << 63);
  uint8_t b[8];
  for (int i = 7; i >= 0; i--, u >>= 8)
    b[i] = (uint8_t)u;
  return core_key_raw(k, b, 8);
}

twin_time core_key_get_time(const uint8_t *p)
{
  uint64_t u = 0;
  for (int i = 0; i < 8; i++)
    u = u << 8 | p[i];
  return (twin_time)(u ^ (UINT64_C(1) << 63));
}

int core_key_prefix_end(core_key *k)
{
  while (k->len > 0) {
    if (k->b[k->len - 1] != 0xff) {
      k->b[k->len - 1]++;
      return 1;
    }
    k->len--;
  }
  return 0;
}

/* ---- values -------------------------------------------------------------- */

size_t core_value_size(const twin_value *v, int with_time)
{
  size_t n = 1 + (with_time ? 8 : 0);
  switch (v->type) {
  case TWIN_VALUE_NUMBER:
  case TWIN_VALUE_INT:
    return n + 8;
  case TWIN_VALUE_BOOL:
    return n + 1;
  case TWIN_VALUE_STRING:
    return n + v->as.string.len;
  default:
    return n;
  }
}

void core_value_encode(const twin_value *v, twin_time t, int with_time,
                       uint8_t *out)
{
  *out++ = (uint8_t)v->type;
  if (with_time) {
    memcpy(out, &t, 8);
    out += 8;
  }
  switch (v->type) {
  case TWIN_VALUE_NUMBER:
    memcpy(out, &v->as.number, 8);
    break;
  case TWIN_VALUE_INT:
    memcpy(out, &v->as.integer, 8);
    break;
  case TWIN_VALUE_BOOL:
    *out = v->as.boolean ? 1 : 0;
    break;
  case TWIN_VALUE_STRING:
    if (v->as.string.len)
      memcpy(out, v->as.string.ptr, v->as.string.len);
    break;
  default:
    break;
  }
}

int core_value_decode(const uint8_t *buf, size_t len, int with_time,
                      twin_value *v, twin_time *t)
{
  size_t head = 1 + (with_time ? 8 : 0);
  if (len < head)
    return TWIN_ERR_STORE;
  memset(v, 0, sizeof *v);
  v->type = buf[0];
  if (with_time && t)
    memcpy(t, buf + 1, 8);
  const uint8_t *p = buf + head;
  size_t n = len - head;
  switch (v->type) {
  case TWIN_VALUE_NUMBER:
    if (n != 8)
      return TWIN_ERR_STORE;
    memcpy(&v->as.number, p, 8);
    return TWIN_OK;
  case TWIN_VALUE_INT:
    if (n != 8)
      return TWIN_ERR_STORE;
    memcpy(&v->as.integer, p, 8);
    return TWIN_OK;
  case TWIN_VALUE_BOOL:
    if (n != 1)
      return TWIN_ERR_STORE;
    v->as.boolean = p[0];
    return TWIN_OK;
  case TWIN_VALUE_STRING:
    v->as.string.ptr = (const char *)p;
    v->as.string.len = n;
    return TWIN_OK;
  case TWIN_VALUE_NULL:
    return n == 0 ? TWIN_OK : TWIN_ERR_STORE;
  default:
    return TWIN_ERR_STORE;
  }
}
