/*
 * test_tokens.c — API tokens (core/tokens.c) against a real store in a temp
 * folder: a created token checks with its town, scopes and label; a wrong
 * secret, a revoked token and every malformed shape do not; revoking by id
 * or by the whole token; listing never shows a secret; scope lists parse
 * with messages that name the bad scope.
 */
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "config.h"
#include "store.h"
#include "tokens.h"
#include "testutil.h"

typedef struct fixture {
  char *dir;
  core_store *store;
  core_config *cfg;
} fixture;

static int setup(void **state)
{
  fixture *f = calloc(1, sizeof *f);
  f->dir = tu_tempdir();
  tu_utc_zoneinfo(f->dir);
  const char *text = "{\"towns\": [{\"id\": \"deggendorf\", \"timezone\": "
                     "\"UTC\"}, {\"id\": \"plattling\", \"timezone\": "
                     "\"UTC\"}]}";
  core_err err;
  assert_int_equal(
      core_config_parse(text, strlen(text), "test.json", f->dir, &f->cfg, &err),
      TWIN_OK);
  if (core_store_open(f->dir, &f->store, &err))
    fail_msg("store: %s", err.msg);
  *state = f;
  return 0;
}

static int teardown(void **state)
{
  fixture *f = *state;
  core_store_close(f->store);
  core_config_free(f->cfg);
  unsetenv("TZDIR");
  tu_rmtree(f->dir);
  free(f->dir);
  free(f);
  return 0;
}

/* A token of town with scopes and label; its info in *info if given. */
static void make(fixture *f, const char *town, unsigned scopes,
                 const char *label, char token[CORE_TOKEN_MAX],
                 core_token_info *info)
{
  core_err err = {.msg = {0}};
  core_token_info tmp;
  int rc = core_token_create(f->store, f->cfg, town, scopes, label, token,
                             info ? info : &tmp, &err);
  if (rc)
    fail_msg("create: %d: %s", rc, err.msg);
}

static int check(fixture *f, const char *token, core_token_info *out)
{
  core_token_info tmp;
  return core_token_check(f->store, NULL, token, strlen(token),
                          out ? out : &tmp);
}

static void assert_contains(const char *text, const char *want)
{
  if (!strstr(text, want))
    fail_msg("\"%s\"\n  lacks \"%s\"", text, want);
}

/* Put a raw meta record under "token\0<id>". */
static void put_raw(fixture *f, const char *id, const char *value)
{
  core_err err;
  MDB_txn *txn;
  assert_int_equal(core_store_begin_write(f->store, &txn, &err), TWIN_OK);
  uint8_t key[18];
  memcpy(key, "token", 6);
  memcpy(key + 6, id, 12);
  MDB_val k = {sizeof key, key}, v = {strlen(value), (void *)value};
  assert_int_equal(mdb_put(txn, f->store->dbi[CORE_DB_META], &k, &v, 0), 0);
  assert_int_equal(mdb_txn_commit(txn), 0);
}

static void hash_hex(const char *token, char out[65])
{
  unsigned char h[32];
  crypto_generichash(h, sizeof h, (const unsigned char *)token, strlen(token),
                     NULL, 0);
  sodium_bin2hex(out, 65, h, sizeof h);
}

/* ---- create and check ---------------------------------------------------- */

static void created_token_has_the_documented_shape(void **state)
{
  fixture *f = *state;
  char token[CORE_TOKEN_MAX];
  core_token_info info;
  twin_time before = core_now_ms();
  make(f, "deggendorf", CORE_SCOPE_READ, "dashboard", token, &info);
  assert_int_equal(strlen(token), CORE_TOKEN_LEN);
  assert_memory_equal(token, "twh_", 4);
  assert_int_equal(strlen(info.id), 12);
  assert_memory_equal(token + 4, info.id, 12);
  assert_int_equal(token[16], '_');
  for (size_t i = 0; i < 12; i++)
    assert_non_null(strchr("0123456789abcdef", info.id[i]));
  for (size_t i = 17; i < 60; i++)
    assert_non_null(
        strchr("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
               "0123456789-_",
               token[i]));
  assert_string_equal(info.town, "deggendorf");
  assert_int_equal(info.scopes, CORE_SCOPE_READ);
  assert_string_equal(info.label, "dashboard");
  assert_true(info.created >= before && info.created <= core_now_ms());
}

static void two_tokens_differ_in_id_and_secret(void **state)
{
  fixture *f = *state;
  char a[CORE_TOKEN_MAX], b[CORE_TOKEN_MAX];
  make(f, "deggendorf", CORE_SCOPE_READ, NULL, a, NULL);
  make(f, "deggendorf", CORE_SCOPE_READ, NULL, b, NULL);
  assert_memory_not_equal(a + 4, b + 4, 12);
  assert_memory_not_equal(a + 17, b + 17, 43);
}

static void created_token_checks_with_its_town_scopes_and_label(void **state)
{
  fixture *f = *state;
  char token[CORE_TOKEN_MAX];
  core_token_info made, got;
  make(f, "plattling", CORE_SCOPE_READ | CORE_SCOPE_WRITE, "feed robot", token,
       &made);
  memset(&got, 0x55, sizeof got);
  assert_int_equal(check(f, token, &got), TWIN_OK);
  assert_string_equal(got.id, made.id);
  assert_string_equal(got.town, "plattling");
  assert_int_equal(got.scopes, CORE_SCOPE_READ | CORE_SCOPE_WRITE);
  assert_string_equal(got.label, "feed robot");
  assert_int_equal(got.created, made.created);
}

static void check_runs_in_the_callers_read_transaction(void **state)
{
  fixture *f = *state;
  char token[CORE_TOKEN_MAX];
  make(f, "deggendorf", CORE_SCOPE_ADMIN, "", token, NULL);
  MDB_txn *txn;
  core_err err;
  assert_int_equal(core_store_begin_read(f->store, &txn, &err), TWIN_OK);
  core_token_info got;
  assert_int_equal(core_token_check(f->store, txn, token, strlen(token), &got),
                   TWIN_OK);
  assert_int_equal(got.scopes, CORE_SCOPE_ADMIN);
  assert_string_equal(got.label, "");
  core_store_end_read(f->store, txn);
}

static void check_reads_exactly_len_bytes(void **state)
{
  fixture *f = *state;
  char token[CORE_TOKEN_MAX], longer[CORE_TOKEN_MAX + 8];
  make(f, "deggendorf", CORE_SCOPE_READ, NULL, token, NULL);
  snprintf(longer, sizeof longer, "%s, trailing", token);
  core_token_info got;
  assert_int_equal(
      core_token_check(f->store, NULL, longer, CORE_TOKEN_LEN, &got), TWIN_OK);
  assert_int_equal(
      core_token_check(f->store, NULL, longer, CORE_TOKEN_LEN + 1, &got),
      TWIN_ERR_NOT_FOUND);
  assert_int_equal(
      core_token_check(f->store, NULL, token, CORE_TOKEN_LEN - 1, &got),
      TWIN_ERR_NOT_FOUND);
}

static void token_outlives_the_store_handle(void **state)
{
  fixture *f = *state;
  char token[CORE_TOKEN_MAX];
  make(f, "deggendorf", CORE_SCOPE_WRITE, "kept", token, NULL);
  core_store_close(f->store);
  core_err err;
  assert_int_equal(core_store_open(f->dir, &f->store, &err), TWIN_OK);
  core_token_info got;
  assert_int_equal(check(f, token, &got), TWIN_OK);
  assert_string_equal(got.label, "kept");
}

static void wrong_secret_with_right_id_is_not_found(void **state)
{
  fixture *f = *state;
  char token[CORE_TOKEN_MAX];
  make(f, "deggendorf", CORE_SCOPE_READ, NULL, token, NULL);
  char bad[CORE_TOKEN_MAX];
  strcpy(bad, token);
  bad[CORE_TOKEN_LEN - 1] = bad[CORE_TOKEN_LEN - 1] == 'A' ? 'B' : 'A';
  assert_int_equal(check(f, bad, NULL), TWIN_ERR_NOT_FOUND);
  strcpy(bad, token);
  bad[17] = bad[17] == '-' ? '_' : '-';
  assert_int_equal(check(f, bad, NULL), TWIN_ERR_NOT_FOUND);
  /* The secret of another token under this id. */
  char other[CORE_TOKEN_MAX];
  make(f, "deggendorf", CORE_SCOPE_READ, NULL, other, NULL);
  memcpy(other + 4, token + 4, 12);
  assert_int_equal(check(f, other, NULL), TWIN_ERR_NOT_FOUND);
  assert_int_equal(check(f, token, NULL), TWIN_OK);
}

static void unknown_id_is_not_found(void **state)
{
  fixture *f = *state;
  char token[CORE_TOKEN_MAX];
  make(f, "deggendorf", CORE_SCOPE_READ, NULL, token, NULL);
  memcpy(token + 4, token[4] == '0' ? "111111111111" : "000000000000", 12);
  assert_int_equal(check(f, token, NULL), TWIN_ERR_NOT_FOUND);
}

static void malformed_tokens_are_not_found(void **state)
{
  fixture *f = *state;
  char good[CORE_TOKEN_MAX];
  make(f, "deggendorf", CORE_SCOPE_READ, NULL, good, NULL);
  assert_int_equal(check(f, good, NULL), TWIN_OK);
  char t[CORE_TOKEN_MAX + 64];
  core_token_info got;

  assert_int_equal(check(f, "", NULL), TWIN_ERR_NOT_FOUND);
  assert_int_equal(check(f, "twh_", NULL), TWIN_ERR_NOT_FOUND);
  assert_int_equal(check(f, "twh__", NULL), TWIN_ERR_NOT_FOUND);
  assert_int_equal(check(f, "Bearer", NULL), TWIN_ERR_NOT_FOUND);
  assert_int_equal(core_token_check(f->store, NULL, NULL, 0, &got),
                   TWIN_ERR_NOT_FOUND);
  assert_int_equal(core_token_check(f->store, NULL, good, 0, &got),
                   TWIN_ERR_NOT_FOUND);

  /* Each one change away from the good token. */
  struct {
    const char *what;
    size_t at;
    char c;
  } flips[] = {
      {"prefix", 0, 'T'},          {"prefix", 3, '-'},
      {"uppercase id", 4, 'A'},    {"non-hex id", 9, 'g'},
      {"id punctuation", 15, '-'}, {"separator", 16, '-'},
      {"secret padding", 59, '='}, {"secret plus", 30, '+'},
      {"secret slash", 40, '/'},   {"secret space", 20, ' '},
  };
  for (size_t i = 0; i < sizeof flips / sizeof flips[0]; i++) {
    strcpy(t, good);
    t[flips[i].at] = flips[i].c;
    if (check(f, t, NULL) != TWIN_ERR_NOT_FOUND)
      fail_msg("%s accepted: %s", flips[i].what, t);
  }

  /* Missing parts, and too long. */
  snprintf(t, sizeof t, "%.16s", good); /* no secret */
  assert_int_equal(check(f, t, NULL), TWIN_ERR_NOT_FOUND);
  snprintf(t, sizeof t, "%.17s", good); /* separator, no secret */
  assert_int_equal(check(f, t, NULL), TWIN_ERR_NOT_FOUND);
  snprintf(t, sizeof t, "%s", good + 4); /* no prefix */
  assert_int_equal(check(f, t, NULL), TWIN_ERR_NOT_FOUND);
  snprintf(t, sizeof t, "twh_%s", good + 17); /* no id */
  assert_int_equal(check(f, t, NULL), TWIN_ERR_NOT_FOUND);
  snprintf(t, sizeof t, "%.59s", good); /* secret one short */
  assert_int_equal(check(f, t, NULL), TWIN_ERR_NOT_FOUND);
  snprintf(t, sizeof t, "%sA", good); /* secret one long */
  assert_int_equal(check(f, t, NULL), TWIN_ERR_NOT_FOUND);
  snprintf(t, sizeof t, "%s%s", good, good); /* far too long */
  assert_int_equal(check(f, t, NULL), TWIN_ERR_NOT_FOUND);
  snprintf(t, sizeof t, "twh_%.12s_%.42s", good + 4, good + 17);
  assert_int_equal(check(f, t, NULL), TWIN_ERR_NOT_FOUND);
  snprintf(t, sizeof t, " %.59s", good); /* leading space */
  assert_int_equal(check(f, t, NULL), TWIN_ERR_NOT_FOUND);

  /* A NUL inside the token, with the full length given. */
  memcpy(t, good, CORE_TOKEN_LEN);
  t[30] = 0;
  assert_int_equal(core_token_check(f->store, NULL, t, CORE_TOKEN_LEN, &got),
                   TWIN_ERR_NOT_FOUND);
}

static void token_belongs_to_one_town(void **state)
{
  fixture *f = *state;
  char d[CORE_TOKEN_MAX], p[CORE_TOKEN_MAX];
  make(f, "deggendorf", CORE_SCOPE_ADMIN, NULL, d, NULL);
  make(f, "plattling", CORE_SCOPE_READ, NULL, p, NULL);
  core_token_info got;
  assert_int_equal(check(f, d, &got), TWIN_OK);
  assert_string_equal(got.town, "deggendorf");
  assert_int_equal(check(f, p, &got), TWIN_OK);
  assert_string_equal(got.town, "plattling");
}

static void create_for_an_unknown_town_is_refused(void **state)
{
  fixture *f = *state;
  char token[CORE_TOKEN_MAX] = "unchanged";
  core_err err = {.msg = {0}};
  core_token_info info;
  assert_int_equal(core_token_create(f->store, f->cfg, "plattlin",
                                     CORE_SCOPE_READ, NULL, token, &info, &err),
                   TWIN_ERR_NOT_FOUND);
  assert_contains(err.msg, "unknown town 'plattlin'");
  assert_contains(err.msg, "deggendorf, plattling");
  assert_contains(err.msg, "did you mean \"plattling\"?");
  assert_string_equal(token, "");
  json_t *list;
  assert_int_equal(core_token_list(f->store, NULL, NULL, &list, &err), 0);
  assert_int_equal(json_array_size(list), 0);
  json_decref(list);
}

static void create_refuses_bad_scopes_and_labels(void **state)
{
  fixture *f = *state;
  char token[CORE_TOKEN_MAX], long_label[200];
  core_err err = {.msg = {0}};
  assert_int_equal(core_token_create(f->store, f->cfg, "deggendorf", 0, NULL,
                                     token, NULL, &err),
                   TWIN_ERR_INVALID);
  assert_contains(err.msg, "read, write and admin");
  assert_int_equal(core_token_create(f->store, f->cfg, "deggendorf", 8, NULL,
                                     token, NULL, &err),
                   TWIN_ERR_INVALID);
  memset(long_label, 'x', 128);
  long_label[128] = 0;
  assert_int_equal(core_token_create(f->store, f->cfg, "deggendorf",
                                     CORE_SCOPE_READ, long_label, token, NULL,
                                     &err),
                   TWIN_ERR_INVALID);
  assert_contains(err.msg, "128 bytes long; use at most 127");
  long_label[127] = 0; /* exactly the limit is fine */
  core_token_info info;
  assert_int_equal(core_token_create(f->store, f->cfg, "deggendorf",
                                     CORE_SCOPE_READ, long_label, token, &info,
                                     &err),
                   TWIN_OK);
  assert_string_equal(info.label, long_label);
  assert_int_equal(core_token_create(f->store, f->cfg, "deggendorf",
                                     CORE_SCOPE_READ, "two\nlines", token, NULL,
                                     &err),
                   TWIN_ERR_INVALID);
  assert_contains(err.msg, "control character");
  assert_int_equal(core_token_create(f->store, f->cfg, "deggendorf",
                                     CORE_SCOPE_READ, "bad \xff byte", token,
                                     NULL, &err),
                   TWIN_ERR_INVALID);
  assert_contains(err.msg, "not valid UTF-8");
}

static void labels_keep_quotes_and_non_ascii(void **state)
{
  fixture *f = *state;
  char token[CORE_TOKEN_MAX];
  const char *label = "Stadtwerke \"Süd\" \\ Pegel 🌊";
  make(f, "deggendorf", CORE_SCOPE_READ, label, token, NULL);
  core_token_info got;
  assert_int_equal(check(f, token, &got), TWIN_OK);
  assert_string_equal(got.label, label);
}

/* ---- stored records ------------------------------------------------------ */

static void record_in_any_key_order_with_unknown_keys_checks(void **state)
{
  fixture *f = *state;
  const char *token = "twh_00112233aabb_"
                      "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA";
  char hash[65];
  hash_hex(token, hash);
  char *rec = tu_fmt("{ \"hash\" : \"%s\", \"note\": {\"a\": [1, 2.5e3, "
                     "true, null, \"x\\\"y\"]}, \"created\": 1700000000000,"
                     "\"label\": \"caf\\u00e9 \\ud83c\\udf0a\\n\","
                     "\"scopes\": [\"write\", \"future\"], \"town\": "
                     "\"plattling\", \"id\": \"00112233aabb\"}",
                     hash);
  put_raw(f, "00112233aabb", rec);
  free(rec);
  core_token_info got;
  assert_int_equal(check(f, token, &got), TWIN_OK);
  assert_string_equal(got.label, "caf\xc3\xa9 \xf0\x9f\x8c\x8a\n");
  assert_int_equal(got.scopes, CORE_SCOPE_WRITE); /* "future" grants none */
  assert_int_equal(got.created, 1700000000000LL);
  assert_string_equal(got.town, "plattling");
}

/* Found by fuzz_token: a label of raw bytes that are not UTF-8 made the
 * whole list fail. */
static void stored_label_that_is_not_utf8_is_mended(void **state)
{
  fixture *f = *state;
  const char *token = "twh_00112233aabb_"
                      "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA";
  char hash[65];
  hash_hex(token, hash);
  char *rec = tu_fmt("{\"id\":\"00112233aabb\",\"town\":\"t\",\"scopes\":"
                     "[\"read\"],\"label\":\"\x8ak\",\"created\":1,"
                     "\"hash\":\"%s\"}",
                     hash);
  put_raw(f, "00112233aabb", rec);
  free(rec);
  core_token_info got;
  assert_int_equal(check(f, token, &got), TWIN_OK);
  assert_string_equal(got.label, "?k");
  json_t *list;
  core_err err = {.msg = {0}};
  assert_int_equal(core_token_list(f->store, NULL, NULL, &list, &err), TWIN_OK);
  assert_int_equal(json_array_size(list), 1);
  assert_string_equal(
      json_string_value(json_object_get(json_array_get(list, 0), "label")),
      "?k");
  json_decref(list);
}

static void damaged_records_fail_the_check_and_leave_the_list(void **state)
{
  fixture *f = *state;
  const char *token = "twh_00112233aabb_"
                      "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA";
  char hash[65];
  hash_hex(token, hash);
  char good[CORE_TOKEN_MAX];
  make(f, "deggendorf", CORE_SCOPE_READ, NULL, good, NULL);
  const char *damaged[] = {
      "not json",
      "{\"id\": \"00112233aabb\"}",
      "{\"id\":\"00112233aabb\",\"town\":\"x\",\"scopes\":[],\"created\":1,"
      "\"hash\":\"abc\"}",
      "{\"id\":\"00112233aabb\",\"town\":\"x\",\"scopes\":[],\"created\":1.5,"
      "\"hash\":\"%s\"}",
      "{\"id\":\"ffffffffffff\",\"town\":\"x\",\"scopes\":[],\"created\":1,"
      "\"hash\":\"%s\"}",
      "{\"id\":\"00112233aabb\",\"town\":\"x\",\"scopes\":[],\"created\":1,"
      "\"hash\":\"%s\"} trailing",
      "{\"id\":\"00112233aabb\",\"town\":\"x\",\"scopes\":[],\"created\":1,"
      "\"hash\":\"%s\",\"label\":\"\\u0000\"}",
      "{\"id\":\"00112233aabb\",\"town\":\"x\",\"scopes\":[],\"created\":1,"
      "\"hash\":\"%s\",\"deep\":[[[[[[[[[[1]]]]]]]]]]}",
      "{\"id\":\"00112233aabb\",\"town\":\"x\",\"scopes\":[],\"created\":1,"
      "\"hash\":\"%s\",\"label\":\"\\ud800\"}",
  };
  for (size_t i = 0; i < sizeof damaged / sizeof damaged[0]; i++) {
    char *rec = tu_fmt(damaged[i], hash);
    put_raw(f, "00112233aabb", rec);
    if (check(f, token, NULL) != TWIN_ERR_STORE)
      fail_msg("damaged record %zu accepted: %s", i, rec);
    free(rec);
    json_t *list;
    core_err err;
    assert_int_equal(core_token_list(f->store, NULL, NULL, &list, &err), 0);
    assert_int_equal(json_array_size(list), 1);
    json_decref(list);
  }
  assert_int_equal(check(f, good, NULL), TWIN_OK);
}

/* ---- revoke -------------------------------------------------------------- */

static void revoked_token_is_not_found(void **state)
{
  fixture *f = *state;
  char token[CORE_TOKEN_MAX], other[CORE_TOKEN_MAX];
  core_token_info info;
  make(f, "deggendorf", CORE_SCOPE_READ, NULL, token, &info);
  make(f, "deggendorf", CORE_SCOPE_READ, NULL, other, NULL);
  core_err err = {.msg = {0}};
  assert_int_equal(core_token_revoke(f->store, info.id, &err), TWIN_OK);
  assert_int_equal(check(f, token, NULL), TWIN_ERR_NOT_FOUND);
  assert_int_equal(check(f, other, NULL), TWIN_OK);
  assert_int_equal(core_token_revoke(f->store, info.id, &err),
                   TWIN_ERR_NOT_FOUND);
  assert_contains(err.msg, info.id);
}

static void revoke_by_the_whole_token(void **state)
{
  fixture *f = *state;
  char token[CORE_TOKEN_MAX];
  make(f, "plattling", CORE_SCOPE_WRITE, NULL, token, NULL);
  core_err err = {.msg = {0}};
  assert_int_equal(core_token_revoke(f->store, token, &err), TWIN_OK);
  assert_int_equal(check(f, token, NULL), TWIN_ERR_NOT_FOUND);
  assert_int_equal(core_token_revoke(f->store, token, &err),
                   TWIN_ERR_NOT_FOUND);
}

static void revoke_by_a_token_with_the_wrong_secret_keeps_it(void **state)
{
  fixture *f = *state;
  char token[CORE_TOKEN_MAX], bad[CORE_TOKEN_MAX];
  make(f, "plattling", CORE_SCOPE_WRITE, NULL, token, NULL);
  strcpy(bad, token);
  bad[40] = bad[40] == 'x' ? 'y' : 'x';
  core_err err = {.msg = {0}};
  assert_int_equal(core_token_revoke(f->store, bad, &err), TWIN_ERR_NOT_FOUND);
  assert_contains(err.msg, "secret given does not match");
  assert_int_equal(check(f, token, NULL), TWIN_OK);
}

static void revoke_refuses_what_is_neither_id_nor_token(void **state)
{
  fixture *f = *state;
  const char *bad[] = {"",
                       "abc",
                       "ABCDEF012345",
                       "0123456789abc",
                       "twh_0123456789ab_short",
                       "0123456789ag"};
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    core_err err = {.msg = {0}};
    if (core_token_revoke(f->store, bad[i], &err) != TWIN_ERR_INVALID)
      fail_msg("\"%s\" not refused", bad[i]);
    assert_true(strstr(err.msg, "token id") || strstr(err.msg, "well-formed"));
  }
  core_err err = {.msg = {0}};
  assert_int_equal(core_token_revoke(f->store, "twh_0123456789ab_short", &err),
                   TWIN_ERR_INVALID);
  assert_null(strstr(err.msg, "short")); /* never echoes a token */
}

/* ---- list ---------------------------------------------------------------- */

static void list_shows_tokens_oldest_first_without_secrets(void **state)
{
  fixture *f = *state;
  char a[CORE_TOKEN_MAX], b[CORE_TOKEN_MAX], c[CORE_TOKEN_MAX];
  core_token_info ia, ib, ic;
  make(f, "deggendorf", CORE_SCOPE_READ | CORE_SCOPE_ADMIN, "first", a, &ia);
  make(f, "plattling", CORE_SCOPE_WRITE, "second", b, &ib);
  make(f, "deggendorf", CORE_SCOPE_READ, "third", c, &ic);
  json_t *list;
  core_err err = {.msg = {0}};
  assert_int_equal(core_token_list(f->store, NULL, NULL, &list, &err), TWIN_OK);
  assert_int_equal(json_array_size(list), 3);
  char *text = json_dumps(list, JSON_COMPACT);
  assert_null(strstr(text, a + 17));
  assert_null(strstr(text, b + 17));
  assert_null(strstr(text, "hash"));
  free(text);
  json_t *first = json_array_get(list, 0);
  /* Oldest first; equal times sort by id. */
  const char *id0 = json_string_value(json_object_get(first, "id"));
  assert_true(!strcmp(id0, ia.id) ||
              (ib.created == ia.created && !strcmp(id0, ib.id)) ||
              (ic.created == ia.created && !strcmp(id0, ic.id)));
  json_t *row = NULL;
  for (size_t i = 0; i < 3; i++)
    if (!strcmp(
            json_string_value(json_object_get(json_array_get(list, i), "id")),
            ia.id))
      row = json_array_get(list, i);
  assert_non_null(row);
  assert_int_equal(json_object_size(row), 5);
  assert_string_equal(json_string_value(json_object_get(row, "town")),
                      "deggendorf");
  assert_string_equal(json_string_value(json_object_get(row, "label")),
                      "first");
  json_t *scopes = json_object_get(row, "scopes");
  assert_int_equal(json_array_size(scopes), 2);
  assert_string_equal(json_string_value(json_array_get(scopes, 0)), "read");
  assert_string_equal(json_string_value(json_array_get(scopes, 1)), "admin");
  twin_time created;
  assert_int_equal(
      core_parse_time(json_string_value(json_object_get(row, "created")),
                      &created),
      0);
  assert_int_equal(created, ia.created);
  json_decref(list);

  assert_int_equal(core_token_list(f->store, NULL, "deggendorf", &list, &err),
                   TWIN_OK);
  assert_int_equal(json_array_size(list), 2);
  for (size_t i = 0; i < 2; i++)
    assert_string_equal(
        json_string_value(json_object_get(json_array_get(list, i), "town")),
        "deggendorf");
  json_decref(list);
  assert_int_equal(core_token_list(f->store, NULL, "nowhere", &list, &err),
                   TWIN_OK);
  assert_int_equal(json_array_size(list), 0);
  json_decref(list);
}

static void list_ignores_other_meta_records(void **state)
{
  fixture *f = *state;
  char token[CORE_TOKEN_MAX];
  make(f, "deggendorf", CORE_SCOPE_READ, NULL, token, NULL);
  /* Keys just around the token range. */
  core_err err;
  MDB_txn *txn;
  assert_int_equal(core_store_begin_write(f->store, &txn, &err), TWIN_OK);
  MDB_val k1 = {5, "token"}, k2 = {6, "tokens"}, v = {2, "{}"};
  assert_int_equal(mdb_put(txn, f->store->dbi[CORE_DB_META], &k1, &v, 0), 0);
  assert_int_equal(mdb_put(txn, f->store->dbi[CORE_DB_META], &k2, &v, 0), 0);
  assert_int_equal(mdb_txn_commit(txn), 0);
  json_t *list;
  MDB_txn *rd;
  assert_int_equal(core_store_begin_read(f->store, &rd, &err), TWIN_OK);
  assert_int_equal(core_token_list(f->store, rd, NULL, &list, &err), TWIN_OK);
  core_store_end_read(f->store, rd);
  assert_int_equal(json_array_size(list), 1);
  json_decref(list);
}

/* ---- scopes -------------------------------------------------------------- */

static void scopes_parse_names_in_any_order(void **state)
{
  (void)state;
  unsigned s = 99;
  core_err err;
  assert_int_equal(core_scopes_parse("read", &s, &err), TWIN_OK);
  assert_int_equal(s, CORE_SCOPE_READ);
  assert_int_equal(core_scopes_parse("write,read", &s, &err), TWIN_OK);
  assert_int_equal(s, CORE_SCOPE_READ | CORE_SCOPE_WRITE);
  assert_int_equal(core_scopes_parse(" admin , read ", &s, &err), TWIN_OK);
  assert_int_equal(s, CORE_SCOPE_ADMIN | CORE_SCOPE_READ);
  assert_int_equal(core_scopes_parse("read,read", &s, &err), TWIN_OK);
  assert_int_equal(s, CORE_SCOPE_READ);
  assert_int_equal(core_scopes_parse("read,write,admin", &s, &err), TWIN_OK);
  assert_int_equal(s, CORE_SCOPE_ALL);
}

static void scopes_parse_errors_name_the_scope(void **state)
{
  (void)state;
  unsigned s = 7;
  core_err err = {.msg = {0}};
  assert_int_equal(core_scopes_parse("read,wrte", &s, &err), TWIN_ERR_INVALID);
  assert_contains(err.msg, "unknown scope \"wrte\"");
  assert_contains(err.msg, "valid scopes: read, write, admin");
  assert_contains(err.msg, "did you mean \"write\"?");
  assert_int_equal(s, 7);
  assert_int_equal(core_scopes_parse("READ", &s, &err), TWIN_ERR_INVALID);
  assert_contains(err.msg, "unknown scope \"READ\"");
  assert_int_equal(core_scopes_parse("superuser", &s, &err), TWIN_ERR_INVALID);
  assert_contains(err.msg, "unknown scope \"superuser\"");
  assert_int_equal(core_scopes_parse("", &s, &err), TWIN_ERR_INVALID);
  assert_contains(err.msg, "no scope given");
  assert_int_equal(core_scopes_parse(NULL, &s, &err), TWIN_ERR_INVALID);
  assert_int_equal(core_scopes_parse("  ", &s, &err), TWIN_ERR_INVALID);
  assert_contains(err.msg, "no scope given");
  assert_int_equal(core_scopes_parse("read,", &s, &err), TWIN_ERR_INVALID);
  assert_contains(err.msg, "empty scope in \"read,\"");
  assert_int_equal(core_scopes_parse(",read", &s, &err), TWIN_ERR_INVALID);
  assert_int_equal(core_scopes_parse("read,,write", &s, &err),
                   TWIN_ERR_INVALID);
  assert_int_equal(core_scopes_parse("read write", &s, &err), TWIN_ERR_INVALID);
  assert_contains(err.msg, "unknown scope \"read write\"");
  char longname[300];
  memset(longname, 'r', sizeof longname - 1);
  longname[sizeof longname - 1] = 0;
  assert_int_equal(core_scopes_parse(longname, &s, &err), TWIN_ERR_INVALID);
  assert_contains(err.msg, "rrrr...\"");
  assert_int_equal(s, 7);
}

static void scopes_format_in_canonical_order(void **state)
{
  (void)state;
  char buf[32];
  assert_string_equal(
      core_scopes_format(CORE_SCOPE_ADMIN | CORE_SCOPE_READ, buf, sizeof buf),
      "read,admin");
  assert_string_equal(core_scopes_format(CORE_SCOPE_ALL, buf, sizeof buf),
                      "read,write,admin");
  assert_string_equal(core_scopes_format(0, buf, sizeof buf), "");
  assert_string_equal(
      core_scopes_format(64 | CORE_SCOPE_WRITE, buf, sizeof buf), "write");
  char small[8];
  assert_string_equal(core_scopes_format(CORE_SCOPE_ALL, small, sizeof small),
                      "read"); /* never half a name */
}

static void admin_implies_read_and_write(void **state)
{
  (void)state;
  assert_true(core_token_allows(CORE_SCOPE_ADMIN, CORE_SCOPE_READ));
  assert_true(core_token_allows(CORE_SCOPE_ADMIN, CORE_SCOPE_WRITE));
  assert_true(core_token_allows(CORE_SCOPE_ADMIN, CORE_SCOPE_ADMIN));
  assert_true(core_token_allows(CORE_SCOPE_READ, CORE_SCOPE_READ));
  assert_false(core_token_allows(CORE_SCOPE_READ, CORE_SCOPE_WRITE));
  assert_false(core_token_allows(CORE_SCOPE_WRITE, CORE_SCOPE_READ));
  assert_false(
      core_token_allows(CORE_SCOPE_READ | CORE_SCOPE_WRITE, CORE_SCOPE_ADMIN));
  assert_true(core_token_allows(CORE_SCOPE_READ | CORE_SCOPE_WRITE,
                                CORE_SCOPE_READ | CORE_SCOPE_WRITE));
  assert_false(core_token_allows(0, CORE_SCOPE_READ));
  assert_true(core_token_allows(0, 0));
}

int main(void)
{
#define T(name) cmocka_unit_test_setup_teardown(name, setup, teardown)
  const struct CMUnitTest tests[] = {
      T(created_token_has_the_documented_shape),
      T(two_tokens_differ_in_id_and_secret),
      T(created_token_checks_with_its_town_scopes_and_label),
      T(check_runs_in_the_callers_read_transaction),
      T(check_reads_exactly_len_bytes),
      T(token_outlives_the_store_handle),
      T(wrong_secret_with_right_id_is_not_found),
      T(unknown_id_is_not_found),
      T(malformed_tokens_are_not_found),
      T(token_belongs_to_one_town),
      T(create_for_an_unknown_town_is_refused),
      T(create_refuses_bad_scopes_and_labels),
      T(labels_keep_quotes_and_non_ascii),
      T(record_in_any_key_order_with_unknown_keys_checks),
      T(stored_label_that_is_not_utf8_is_mended),
      T(damaged_records_fail_the_check_and_leave_the_list),
      T(revoked_token_is_not_found),
      T(revoke_by_the_whole_token),
      T(revoke_by_a_token_with_the_wrong_secret_keeps_it),
      T(revoke_refuses_what_is_neither_id_nor_token),
      T(list_shows_tokens_oldest_first_without_secrets),
      T(list_ignores_other_meta_records),
      cmocka_unit_test(scopes_parse_names_in_any_order),
      cmocka_unit_test(scopes_parse_errors_name_the_scope),
      cmocka_unit_test(scopes_format_in_canonical_order),
      cmocka_unit_test(admin_implies_read_and_write),
  };
#undef T
  return cmocka_run_group_tests(tests, NULL, NULL);
}
