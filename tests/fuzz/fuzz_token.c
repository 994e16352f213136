/*
 * fuzz_token.c — libFuzzer target for what an HTTP client controls about
 * tokens: the presented token (core_token_check's parser), the stored
 * record's scanner, and scope lists (core_scopes_parse). The first byte
 * picks what the rest is:
 *   '0' (any byte % 3 == 0): a presented token, checked as is;
 *   '1': bytes written over a real token (from offset byte 2 % 60); it may
 *        check only when it is still that token;
 *   '2': a stored record for a fixed id, then checked and listed.
 * Every input is also a scope list, which must round-trip through
 * core_scopes_format. One store for the whole run, in a temp folder.
 */
#include <dirent.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "config.h"
#include "store.h"
#include "tokens.h"

#define FIXED_ID "00112233aabb"
#define FIXED_TOKEN                                                            \
  "twh_" FIXED_ID "_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"

static core_store *store;
static char *dir;
static char good[CORE_TOKEN_MAX];

/* rm -r of a folder of plain files and folders (what a store leaves). */
static void remove_tree(const char *path)
{
  DIR *d = opendir(path);
  if (!d) {
    remove(path);
    return;
  }
  struct dirent *e;
  while ((e = readdir(d))) {
    if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, ".."))
      continue;
    char sub[4096];
    snprintf(sub, sizeof sub, "%s/%s", path, e->d_name);
    remove_tree(sub);
  }
  closedir(d);
  rmdir(path);
}

static void cleanup(void)
{
  core_store_close(store);
  if (dir)
    remove_tree(dir);
  free(dir);
}

static void die(const char *what, const char *msg)
{
  fprintf(stderr, "fuzz_token: %s: %s\n", what, msg);
  abort();
}

static void init(void)
{
  core_err err;
  dir = core_temp_dir("fuzz-token");
  if (!dir)
    die("temp dir", "cannot make one");
  if (core_store_open(dir, &store, &err))
    die("store", err.msg);
  /* A throwaway store: no need to reach the disk on every input. */
  mdb_env_set_flags(store->env, MDB_NOSYNC, 1);
  atexit(cleanup);
  core_log_set_level(TWIN_LEVEL_ERROR); /* damaged records are expected */
  const char *text = "{\"towns\": [{\"id\": \"t\", \"timezone\": \"UTC\"}]}";
  core_config *cfg;
  if (core_config_parse(text, strlen(text), "fuzz.json", dir, &cfg, &err))
    die("config", err.msg);
  if (core_token_create(store, cfg, "t", CORE_SCOPE_READ, "fuzz", good, NULL,
                        &err))
    die("create", err.msg);
  core_config_free(cfg);
}

static void put_record(const uint8_t *data, size_t size)
{
  core_err err;
  MDB_txn *txn;
  if (core_store_begin_write(store, &txn, &err))
    die("begin write", err.msg);
  uint8_t key[18];
  memcpy(key, "token", 6);
  memcpy(key + 6, FIXED_ID, 12);
  MDB_val k = {sizeof key, key}, v = {size, (void *)data};
  int rc = mdb_put(txn, store->dbi[CORE_DB_META], &k, &v, 0);
  if (rc || (rc = mdb_txn_commit(txn)))
    die("put", mdb_strerror(rc));
}

static void check_scopes(const uint8_t *data, size_t size)
{
  char *s = malloc(size + 1);
  if (!s)
    return;
  memcpy(s, data, size);
  s[size] = 0;
  unsigned bits = 0, again = 0;
  core_err err;
  if (core_scopes_parse(s, &bits, &err) == TWIN_OK) {
    char buf[32];
    if (!bits || (bits & ~(unsigned)CORE_SCOPE_ALL) ||
        core_scopes_parse(core_scopes_format(bits, buf, sizeof buf), &again,
                          &err) ||
        again != bits)
      die("scopes", "parse and format do not round-trip");
  }
  free(s);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
  if (!store)
    init();
  check_scopes(data, size);
  if (!size)
    return 0;
  core_token_info info;
  const uint8_t *rest = data + 1;
  size_t n = size - 1;
  switch (data[0] % 3) {
  case 0: {
    int st = core_token_check(store, NULL, (const char *)rest, n, &info);
    if (st == TWIN_OK && (n != strlen(good) || memcmp(rest, good, n)) &&
        (n != strlen(FIXED_TOKEN) || memcmp(rest, FIXED_TOKEN, n)))
      die("check", "accepted a token that was never created");
    break;
  }
  case 1: {
    char t[CORE_TOKEN_MAX];
    size_t len = strlen(good), at = n ? rest[0] % len : 0;
    memcpy(t, good, len + 1);
    if (n > 1) {
      size_t k = n - 1 < len - at ? n - 1 : len - at;
      memcpy(t + at, rest + 1, k);
    }
    int st = core_token_check(store, NULL, t, len, &info);
    if ((st == TWIN_OK) != !memcmp(t, good, len))
      die("check", "a real token's verdict is wrong");
    if (st == TWIN_OK && (strcmp(info.town, "t") || strcmp(info.label, "fuzz")))
      die("check", "wrong record for the real token");
    break;
  }
  default: {
    put_record(rest, n);
    int st =
        core_token_check(store, NULL, FIXED_TOKEN, strlen(FIXED_TOKEN), &info);
    if (st != TWIN_OK && st != TWIN_ERR_NOT_FOUND && st != TWIN_ERR_STORE)
      die("check", "unexpected status");
    if (st == TWIN_OK && (strlen(info.town) >= sizeof info.town ||
                          strlen(info.label) >= sizeof info.label))
      die("check", "record fields overflow");
    json_t *list = NULL;
    core_err err;
    if (core_token_list(store, NULL, NULL, &list, &err))
      die("list", err.msg);
    json_decref(list);
    break;
  }
  }
  return 0;
}
