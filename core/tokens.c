/*
 * tokens.c — API tokens (see tokens.h): made from random bytes, stored only
 * as a hash, checked on every HTTP request without allocating, revoked and
 * listed. The check reads the stored record with a small JSON scanner of its
 * own, because jansson allocates and the check runs once per request.
 */
#include "tokens.h"

#include <pthread.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define ID_BYTES 6
#define ID_LEN 12 /* hex of ID_BYTES */
#define SECRET_BYTES 32
#define SECRET_LEN 43 /* base64url of SECRET_BYTES, no padding */
#define PREFIX "twh_"
#define PREFIX_LEN 4
#define KEY_PREFIX_LEN 6 /* "token" and its NUL */
#define KEY_LEN (KEY_PREFIX_LEN + ID_LEN)
#define HASH_BYTES 32
#define HASH_HEX (2 * HASH_BYTES)
#define CREATE_TRIES 8
#define MAP_GROW_TRIES 16

_Static_assert(CORE_TOKEN_LEN == PREFIX_LEN + ID_LEN + 1 + SECRET_LEN,
               "token length");
_Static_assert(CORE_TOKEN_LEN < CORE_TOKEN_MAX, "token buffer");

static const char *const scope_names[] = {"read", "write", "admin"};
static const unsigned scope_bits[] = {CORE_SCOPE_READ, CORE_SCOPE_WRITE,
                                      CORE_SCOPE_ADMIN};
#define N_SCOPES (sizeof scope_names / sizeof scope_names[0])

static pthread_once_t sodium_once = PTHREAD_ONCE_INIT;
static int sodium_ready;

static void init_sodium(void)
{
  sodium_ready = sodium_init() >= 0;
}

static int sodium_up(void)
{
  pthread_once(&sodium_once, init_sodium);
  return sodium_ready;
}

/* ---- scopes -------------------------------------------------------------- */

static unsigned scope_bit(const char *name, size_t n)
{
  for (size_t i = 0; i < N_SCOPES; i++)
    if (strlen(scope_names[i]) == n && !memcmp(scope_names[i], name, n))
      return scope_bits[i];
  return 0;
}

int core_scopes_parse(const char *s, unsigned *out, core_err *err)
{
  char valid[64];
  core_join_names(scope_names, N_SCOPES, valid, sizeof valid);
  if (!s)
    s = "";
  unsigned bits = 0;
  for (const char *p = s;;) {
    const char *comma = strchr(p, ',');
    const char *a = p;
    size_t n = comma ? (size_t)(comma - p) : strlen(p);
    while (n && (*a == ' ' || *a == '\t'))
      a++, n--;
    while (n && (a[n - 1] == ' ' || a[n - 1] == '\t'))
      n--;
    if (!n && !comma && p == s)
      return core_err_set(err, TWIN_ERR_INVALID,
                          "no scope given; name one or more of %s, "
                          "separated by commas (e.g. \"read,write\")",
                          valid);
    if (!n)
      return core_err_set(err, TWIN_ERR_INVALID,
                          "empty scope in \"%.80s\"; separate the scope names "
                          "(%s) by single commas, e.g. \"read,write\"",
                          s, valid);
    unsigned b = scope_bit(a, n);
    if (!b) {
      char name[48], hint[96];
      snprintf(name, sizeof name, "%.*s", (int)(n < 40 ? n : 40), a);
      core_suggest(name, scope_names, N_SCOPES, hint, sizeof hint);
      return core_err_set(err, TWIN_ERR_INVALID,
                          "unknown scope \"%s%s\" (valid scopes: %s; admin "
                          "implies read and write)%s",
                          name, n > 40 ? "..." : "", valid, hint);
    }
    bits |= b;
    if (!comma)
      break;
    p = comma + 1;
  }
  *out = bits;
  return TWIN_OK;
}

const char *core_scopes_format(unsigned scopes, char *buf, size_t size)
{
  if (!buf || !size)
    return buf;
  size_t len = 0;
  buf[0] = 0;
  for (size_t i = 0; i < N_SCOPES; i++) {
    if (!(scopes & scope_bits[i]))
      continue;
    int n =
        snprintf(buf + len, size - len, "%s%s", len ? "," : "", scope_names[i]);
    if (n < 0 || (size_t)n >= size - len) {
      buf[len] = 0; /* never half a name */
      break;
    }
    len += (size_t)n;
  }
  return buf;
}

int core_token_allows(unsigned have, unsigned need)
{
  if (have & CORE_SCOPE_ADMIN)
    have |= CORE_SCOPE_READ | CORE_SCOPE_WRITE;
  return (need & ~have) == 0;
}

static json_t *scopes_json(unsigned scopes)
{
  json_t *a = json_array();
  for (size_t i = 0; a && i < N_SCOPES; i++)
    if (scopes & scope_bits[i])
      json_array_append_new(a, json_string(scope_names[i]));
  return a;
}

/* ---- token shape, key and hash ------------------------------------------ */

static int hex_lower(char c)
{
  return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f');
}

static int base64url(char c)
{
  return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') ||
         (c >= '0' && c <= '9') || c == '-' || c == '_';
}

static int id_shaped(const char *s, size_t n)
{
  if (n != ID_LEN)
    return 0;
  for (size_t i = 0; i < n; i++)
    if (!hex_lower(s[i]))
      return 0;
  return 1;
}

/* "twh_" <12 lowercase hex> "_" <43 base64url>, exactly. */
static int token_shaped(const char *t, size_t len)
{
  if (len != CORE_TOKEN_LEN || memcmp(t, PREFIX, PREFIX_LEN) ||
      !id_shaped(t + PREFIX_LEN, ID_LEN) || t[PREFIX_LEN + ID_LEN] != '_')
    return 0;
  for (size_t i = PREFIX_LEN + ID_LEN + 1; i < len; i++)
    if (!base64url(t[i]))
      return 0;
  return 1;
}

static MDB_val token_key(uint8_t key[KEY_LEN], const char *id)
{
  memcpy(key, "token", KEY_PREFIX_LEN); /* with its NUL */
  memcpy(key + KEY_PREFIX_LEN, id, ID_LEN);
  return (MDB_val){KEY_LEN, key};
}

static void token_hash(const char *t, size_t len, unsigned char out[HASH_BYTES])
{
  crypto_generichash(out, HASH_BYTES, (const unsigned char *)t, len, NULL, 0);
}

/* ---- reading a stored record without allocating -------------------------- */

typedef struct scanner {
  const char *p, *end;
} scanner;

static void skip_ws(scanner *s)
{
  while (s->p < s->end &&
         (*s->p == ' ' || *s->p == '\t' || *s->p == '\n' || *s->p == '\r'))
    s->p++;
}

static int eat(scanner *s, char c)
{
  skip_ws(s);
  if (s->p < s->end && *s->p == c) {
    s->p++;
    return 1;
  }
  return 0;
}

static void put_byte(char *out, size_t size, size_t *n, unsigned b)
{
  if (out && *n + 1 < size)
    out[*n] = (char)b;
  (*n)++;
}

static int hex4(scanner *s, unsigned *cp)
{
  if (s->end - s->p < 4)
    return 0;
  unsigned v = 0;
  for (int i = 0; i < 4; i++) {
    char c = *s->p++;
    int d = c >= '0' && c <= '9'   ? c - '0'
            : c >= 'a' && c <= 'f' ? c - 'a' + 10
            : c >= 'A' && c <= 'F' ? c - 'A' + 10
                                   : -1;
    if (d < 0)
      return 0;
    v = v << 4 | (unsigned)d;
  }
  *cp = v;
  return 1;
}

/*
 * A JSON string decoded into out (size bytes; NUL terminated, cut at
 * size - 1 bytes but never inside a UTF-8 sequence, and bytes that are not
 * UTF-8 replaced by '?', so it can always become JSON again; out NULL:
 * skipped). *len
 * gets the whole decoded length, so a cut string is recognised. 0 when
 * malformed (including an escaped NUL, which no stored name holds).
 */
static int scan_string(scanner *s, char *out, size_t size, size_t *len)
{
  size_t n = 0;
  if (!eat(s, '"'))
    return 0;
  while (s->p < s->end) {
    unsigned char c = (unsigned char)*s->p++;
    if (c == '"') {
      if (out && size) {
        out[n < size ? n : size - 1] = 0;
        core_utf8_fix(out); /* raw bytes in the record, or a cut */
      }
      *len = n;
      return 1;
    }
    if (c < 0x20)
      return 0;
    if (c != '\\') {
      put_byte(out, size, &n, c);
      continue;
    }
    if (s->p >= s->end)
      return 0;
    unsigned cp;
    switch (*s->p++) {
    case '"':
      cp = '"';
      break;
    case '\\':
      cp = '\\';
      break;
    case '/':
      cp = '/';
      break;
    case 'b':
      cp = '\b';
      break;
    case 'f':
      cp = '\f';
      break;
    case 'n':
      cp = '\n';
      break;
    case 'r':
      cp = '\r';
      break;
    case 't':
      cp = '\t';
      break;
    case 'u':
      if (!hex4(s, &cp) || !cp || (cp >= 0xdc00 && cp <= 0xdfff))
        return 0;
      if (cp >= 0xd800 && cp <= 0xdbff) {
        unsigned lo;
        if (s->end - s->p < 2 || s->p[0] != '\\' || s->p[1] != 'u')
          return 0;
        s->p += 2;
        if (!hex4(s, &lo) || lo < 0xdc00 || lo > 0xdfff)
          return 0;
        cp = 0x10000 + ((cp - 0xd800) << 10) + (lo - 0xdc00);
      }
      break;
    default:
      return 0;
    }
    if (cp < 0x80) {
      put_byte(out, size, &n, cp);
    } else if (cp < 0x800) {
      put_byte(out, size, &n, 0xc0 | cp >> 6);
      put_byte(out, size, &n, 0x80 | (cp & 0x3f));
    } else if (cp < 0x10000) {
      put_byte(out, size, &n, 0xe0 | cp >> 12);
      put_byte(out, size, &n, 0x80 | (cp >> 6 & 0x3f));
      put_byte(out, size, &n, 0x80 | (cp & 0x3f));
    } else {
      put_byte(out, size, &n, 0xf0 | cp >> 18);
      put_byte(out, size, &n, 0x80 | (cp >> 12 & 0x3f));
      put_byte(out, size, &n, 0x80 | (cp >> 6 & 0x3f));
      put_byte(out, size, &n, 0x80 | (cp & 0x3f));
    }
  }
  return 0;
}

/* A whole number (no fraction or exponent) of at most 18 digits. */
static int scan_int(scanner *s, long long *out)
{
  skip_ws(s);
  int neg = s->p < s->end && *s->p == '-';
  if (neg)
    s->p++;
  long long v = 0;
  int digits = 0;
  while (s->p < s->end && *s->p >= '0' && *s->p <= '9') {
    if (++digits > 18)
      return 0;
    v = v * 10 + (*s->p++ - '0');
  }
  if (!digits ||
      (s->p < s->end && (*s->p == '.' || *s->p == 'e' || *s->p == 'E')))
    return 0;
  *out = neg ? -v : v;
  return 1;
}

static int literal_char(char c)
{
  return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') ||
         (c >= 'A' && c <= 'Z') || c == '-' || c == '+' || c == '.';
}

/* Skip any value (a key this version does not know), nesting at most 8. */
static int skip_value(scanner *s, int depth)
{
  size_t n;
  skip_ws(s);
  if (s->p >= s->end)
    return 0;
  char c = *s->p;
  if (c == '"')
    return scan_string(s, NULL, 0, &n);
  if (c == '{' || c == '[') {
    char close = c == '{' ? '}' : ']';
    if (depth >= 8)
      return 0;
    s->p++;
    if (eat(s, close))
      return 1;
    do {
      if (c == '{' && (!scan_string(s, NULL, 0, &n) || !eat(s, ':')))
        return 0;
      if (!skip_value(s, depth + 1))
        return 0;
    } while (eat(s, ','));
    return eat(s, close);
  }
  const char *start = s->p;
  while (s->p < s->end && literal_char(*s->p))
    s->p++;
  return s->p > start;
}

static int key_is(const char *key, size_t klen, const char *name)
{
  return klen == strlen(name) && !memcmp(key, name, klen);
}

/* A stored record into *out and its hash (hex) into hash; 0 when damaged.
 * Scopes this version does not know grant nothing. */
static int parse_record(const char *v, size_t len, core_token_info *out,
                        char hash[HASH_HEX + 1])
{
  enum { F_ID = 1, F_TOWN = 2, F_SCOPES = 4, F_CREATED = 8, F_HASH = 16 };
  scanner s = {v, v + len};
  unsigned have = 0;
  memset(out, 0, sizeof *out);
  hash[0] = 0;
  if (!eat(&s, '{'))
    return 0;
  if (!eat(&s, '}')) {
    do {
      char key[16];
      size_t klen, n;
      if (!scan_string(&s, key, sizeof key, &klen) || !eat(&s, ':'))
        return 0;
      if (key_is(key, klen, "id")) {
        if (!scan_string(&s, out->id, sizeof out->id, &n) ||
            !id_shaped(out->id, n))
          return 0;
        have |= F_ID;
      } else if (key_is(key, klen, "town")) {
        if (!scan_string(&s, out->town, sizeof out->town, &n) || !n ||
            n >= sizeof out->town)
          return 0;
        have |= F_TOWN;
      } else if (key_is(key, klen, "label")) {
        if (!scan_string(&s, out->label, sizeof out->label, &n))
          return 0;
      } else if (key_is(key, klen, "scopes")) {
        if (!eat(&s, '['))
          return 0;
        if (!eat(&s, ']')) {
          do {
            char name[16];
            if (!scan_string(&s, name, sizeof name, &n))
              return 0;
            if (n < sizeof name)
              out->scopes |= scope_bit(name, n);
          } while (eat(&s, ','));
          if (!eat(&s, ']'))
            return 0;
        }
        have |= F_SCOPES;
      } else if (key_is(key, klen, "created")) {
        long long ms;
        if (!scan_int(&s, &ms))
          return 0;
        out->created = ms;
        have |= F_CREATED;
      } else if (key_is(key, klen, "hash")) {
        if (!scan_string(&s, hash, HASH_HEX + 1, &n) || n != HASH_HEX)
          return 0;
        have |= F_HASH;
      } else if (!skip_value(&s, 1)) {
        return 0;
      }
    } while (eat(&s, ','));
    if (!eat(&s, '}'))
      return 0;
  }
  skip_ws(&s);
  return s.p == s.end &&
         have == (F_ID | F_TOWN | F_SCOPES | F_CREATED | F_HASH);
}

/* The record matches the token: the key's id, and the hash in constant
 * time. -1 when the stored hash is damaged. */
static int record_matches(const core_token_info *info, const char *hash_hex,
                          const char *token, size_t len)
{
  unsigned char stored[HASH_BYTES], got[HASH_BYTES];
  size_t n = 0;
  if (sodium_hex2bin(stored, sizeof stored, hash_hex, HASH_HEX, NULL, &n,
                     NULL) ||
      n != HASH_BYTES)
    return -1;
  if (memcmp(info->id, token + PREFIX_LEN, ID_LEN))
    return -1;
  token_hash(token, len, got);
  return sodium_memcmp(stored, got, HASH_BYTES) == 0;
}

int core_token_check(core_store *s, MDB_txn *txn, const char *token, size_t len,
                     core_token_info *out)
{
  if (!s || !token || !out || !token_shaped(token, len))
    return TWIN_ERR_NOT_FOUND;
  if (!sodium_up())
    return TWIN_ERR_INTERNAL;
  MDB_txn *own = NULL;
  if (!txn) {
    if (core_store_begin_read(s, &own, NULL))
      return TWIN_ERR_STORE;
    txn = own;
  }
  uint8_t key[KEY_LEN];
  MDB_val k = token_key(key, token + PREFIX_LEN), d;
  core_token_info info;
  char hash_hex[HASH_HEX + 1];
  int st, rc = mdb_get(txn, s->dbi[CORE_DB_META], &k, &d);
  if (rc == MDB_NOTFOUND) {
    st = TWIN_ERR_NOT_FOUND;
  } else if (rc || !parse_record(d.mv_data, d.mv_size, &info, hash_hex)) {
    st = TWIN_ERR_STORE;
  } else {
    int m = record_matches(&info, hash_hex, token, len);
    st = m < 0 ? TWIN_ERR_STORE : m ? TWIN_OK : TWIN_ERR_NOT_FOUND;
  }
  if (own)
    core_store_end_read(s, own);
  if (st == TWIN_OK)
    *out = info;
  return st;
}

/* ---- writing ------------------------------------------------------------- */

typedef int (*write_fn)(core_store *s, MDB_txn *txn, void *ud, core_err *err);

static int mdb_write_status(int rc, const char *what, core_err *err)
{
  if (rc == MDB_MAP_FULL)
    return core_err_set(err, TWIN_ERR_TOO_BIG, "store map full");
  return core_store_status(rc, what, err);
}

/* fn in a write transaction of its own, committed; when the map is full,
 * grow it and run fn again (as core_overlay_commit does). */
static int in_write_txn(core_store *s, write_fn fn, void *ud, core_err *err)
{
  for (int tries = 0;; tries++) {
    MDB_txn *txn;
    int st = core_store_begin_write(s, &txn, err);
    if (st)
      return st;
    st = fn(s, txn, ud, err);
    if (!st)
      st = mdb_write_status(mdb_txn_commit(txn), "store commit", err);
    else
      mdb_txn_abort(txn);
    if (st != TWIN_ERR_TOO_BIG || tries >= MAP_GROW_TRIES)
      return st;
    st = core_store_grow(s, err);
    if (st)
      return st;
  }
}

typedef struct create_job {
  const char *town, *label;
  unsigned scopes;
  char *token;
  core_token_info info;
} create_job;

/* Draw an unused id and a secret, and store the record (the token is only
 * returned, never stored). */
static int create_in(core_store *s, MDB_txn *txn, void *ud, core_err *err)
{
  create_job *j = ud;
  for (int tries = 0; tries < CREATE_TRIES; tries++) {
    unsigned char idb[ID_BYTES], secret[SECRET_BYTES], hash[HASH_BYTES];
    char id[ID_LEN + 1], enc[SECRET_LEN + 1], hash_hex[HASH_HEX + 1];
    randombytes_buf(idb, sizeof idb);
    randombytes_buf(secret, sizeof secret);
    sodium_bin2hex(id, sizeof id, idb, sizeof idb);
    sodium_bin2base64(enc, sizeof enc, secret, sizeof secret,
                      sodium_base64_VARIANT_URLSAFE_NO_PADDING);
    sodium_memzero(secret, sizeof secret);
    uint8_t key[KEY_LEN];
    MDB_val k = token_key(key, id), d;
    int rc = mdb_get(txn, s->dbi[CORE_DB_META], &k, &d);
    if (!rc)
      continue; /* that id is taken: draw again */
    if (rc != MDB_NOTFOUND)
      return core_store_status(rc, "store read", err);
    snprintf(j->token, CORE_TOKEN_MAX, PREFIX "%s_%s", id, enc);
    sodium_memzero(enc, sizeof enc);
    token_hash(j->token, strlen(j->token), hash);
    sodium_bin2hex(hash_hex, sizeof hash_hex, hash, sizeof hash);

    twin_time now = core_now_ms();
    json_t *rec =
        json_pack("{s:s,s:s,s:o,s:s,s:I,s:s}", "id", id, "town", j->town,
                  "scopes", scopes_json(j->scopes), "label", j->label,
                  "created", (json_int_t)now, "hash", hash_hex);
    char *text = rec ? json_dumps(rec, JSON_COMPACT) : NULL;
    json_decref(rec);
    if (!text)
      return core_err_set(err, TWIN_ERR_NOMEM, "token: out of memory");
    MDB_val v = {strlen(text), text};
    rc = mdb_put(txn, s->dbi[CORE_DB_META], &k, &v, MDB_NOOVERWRITE);
    free(text);
    if (rc)
      return mdb_write_status(rc, "store write", err);
    memset(&j->info, 0, sizeof j->info);
    memcpy(j->info.id, id, sizeof id);
    snprintf(j->info.town, sizeof j->info.town, "%s", j->town);
    snprintf(j->info.label, sizeof j->info.label, "%s", j->label);
    j->info.scopes = j->scopes;
    j->info.created = now;
    return TWIN_OK;
  }
  return core_err_set(err, TWIN_ERR_INTERNAL,
                      "token: %d random ids in a row were taken; the random "
                      "source is broken",
                      CREATE_TRIES);
}

static int check_label(const char *label, core_err *err)
{
  size_t n = strlen(label);
  if (n > CORE_TOKEN_LABEL_MAX)
    return core_err_set(err, TWIN_ERR_INVALID,
                        "the label is %zu bytes long; use at most %d", n,
                        CORE_TOKEN_LABEL_MAX);
  if (!core_utf8_valid(label, n))
    return core_err_set(err, TWIN_ERR_INVALID,
                        "the label is not valid UTF-8 text");
  for (size_t i = 0; i < n; i++)
    if ((unsigned char)label[i] < 0x20 || label[i] == 0x7f)
      return core_err_set(err, TWIN_ERR_INVALID,
                          "the label holds a control character (byte %zu); "
                          "use one line of plain text",
                          i + 1);
  return TWIN_OK;
}

int core_token_create(core_store *s, const core_config *cfg, const char *town,
                      unsigned scopes, const char *label,
                      char token_out[CORE_TOKEN_MAX], core_token_info *info,
                      core_err *err)
{
  if (!s || !cfg || !town || !token_out)
    return core_err_set(err, TWIN_ERR_INVALID,
                        "token: store, config, town and a buffer are needed");
  token_out[0] = 0;
  if (!sodium_up())
    return core_err_set(err, TWIN_ERR_INTERNAL,
                        "token: libsodium cannot start (no random source?)");
  if (!core_config_town_or_err(cfg, town, err))
    return TWIN_ERR_NOT_FOUND;
  if (!scopes || (scopes & ~(unsigned)CORE_SCOPE_ALL))
    return core_err_set(err, TWIN_ERR_INVALID,
                        "a token needs one or more of the scopes read, write "
                        "and admin");
  if (!label)
    label = "";
  int st = check_label(label, err);
  if (st)
    return st;
  create_job j = {
      .town = town, .label = label, .scopes = scopes, .token = token_out};
  st = in_write_txn(s, create_in, &j, err);
  if (st) {
    sodium_memzero(token_out, CORE_TOKEN_MAX);
    core_err_prefix(err, "token for %s", town);
    return st;
  }
  if (info)
    *info = j.info;
  return TWIN_OK;
}

typedef struct revoke_job {
  char id[ID_LEN + 1];
  const char *token; /* NULL when revoked by id */
  size_t len;
} revoke_job;

static int revoke_in(core_store *s, MDB_txn *txn, void *ud, core_err *err)
{
  revoke_job *j = ud;
  uint8_t key[KEY_LEN];
  MDB_val k = token_key(key, j->id), d;
  int rc = mdb_get(txn, s->dbi[CORE_DB_META], &k, &d);
  if (rc == MDB_NOTFOUND)
    return core_err_set(err, TWIN_ERR_NOT_FOUND,
                        "no token with id %s (revoked already? `twinhost "
                        "token list` shows the tokens there are)",
                        j->id);
  if (rc)
    return core_store_status(rc, "store read", err);
  if (j->token) {
    core_token_info info;
    char hash_hex[HASH_HEX + 1];
    if (!parse_record(d.mv_data, d.mv_size, &info, hash_hex) ||
        record_matches(&info, hash_hex, j->token, j->len) < 0)
      return core_err_set(err, TWIN_ERR_STORE,
                          "the stored record of token %s is damaged; revoke "
                          "it by its id",
                          j->id);
    if (!record_matches(&info, hash_hex, j->token, j->len))
      return core_err_set(err, TWIN_ERR_NOT_FOUND,
                          "token %s exists but the secret given does not "
                          "match it; check the token, or revoke by id",
                          j->id);
  }
  rc = mdb_del(txn, s->dbi[CORE_DB_META], &k, NULL);
  return rc ? mdb_write_status(rc, "store write", err) : TWIN_OK;
}

int core_token_revoke(core_store *s, const char *id_or_token, core_err *err)
{
  const char *arg = id_or_token ? id_or_token : "";
  size_t n = strlen(arg);
  revoke_job j = {.token = NULL};
  if (!s)
    return core_err_set(err, TWIN_ERR_INVALID, "token: no store");
  if (token_shaped(arg, n)) {
    memcpy(j.id, arg + PREFIX_LEN, ID_LEN);
    j.token = arg;
    j.len = n;
  } else if (id_shaped(arg, n)) {
    memcpy(j.id, arg, ID_LEN);
  } else if (!strncmp(arg, PREFIX, PREFIX_LEN)) {
    /* Never echo what may be most of a secret. */
    return core_err_set(err, TWIN_ERR_INVALID,
                        "that is not a well-formed token (twh_, 12 lowercase "
                        "hex characters, _, 43 base64url characters); give "
                        "the whole token or its id");
  } else {
    return core_err_set(err, TWIN_ERR_INVALID,
                        "\"%.40s\"%s is not a token id (12 lowercase hex "
                        "characters, as `twinhost token list` shows) nor a "
                        "token (twh_<id>_<secret>)",
                        arg, n > 40 ? "..." : "");
  }
  j.id[ID_LEN] = 0;
  if (!sodium_up())
    return core_err_set(err, TWIN_ERR_INTERNAL,
                        "token: libsodium cannot start");
  return in_write_txn(s, revoke_in, &j, err);
}

/* ---- listing ------------------------------------------------------------- */

static int by_created(const void *a, const void *b)
{
  const core_token_info *x = a, *y = b;
  if (x->created != y->created)
    return x->created < y->created ? -1 : 1;
  return strcmp(x->id, y->id);
}

static json_t *info_json(const core_token_info *t)
{
  char when[40];
  core_format_time(t->created, when, sizeof when);
  return json_pack("{s:s,s:s,s:o,s:s,s:s}", "id", t->id, "town", t->town,
                   "scopes", scopes_json(t->scopes), "label", t->label,
                   "created", when);
}

/* Every readable record of town (NULL: all) into a new array *v. */
static int collect(core_store *s, MDB_txn *txn, const char *town,
                   core_token_info **v, size_t *n, core_err *err)
{
  MDB_cursor *cur;
  int rc = mdb_cursor_open(txn, s->dbi[CORE_DB_META], &cur);
  if (rc)
    return core_store_status(rc, "store read", err);
  size_t cap = 0;
  *v = NULL;
  *n = 0;
  MDB_val k = {KEY_PREFIX_LEN, "token"}, d;
  int st = TWIN_OK;
  for (rc = mdb_cursor_get(cur, &k, &d, MDB_SET_RANGE); !rc;
       rc = mdb_cursor_get(cur, &k, &d, MDB_NEXT)) {
    if (k.mv_size < KEY_PREFIX_LEN ||
        memcmp(k.mv_data, "token", KEY_PREFIX_LEN))
      break;
    core_token_info info;
    char hash_hex[HASH_HEX + 1];
    if (k.mv_size != KEY_LEN ||
        !parse_record(d.mv_data, d.mv_size, &info, hash_hex) ||
        memcmp(info.id, (const char *)k.mv_data + KEY_PREFIX_LEN, ID_LEN)) {
      core_log(TWIN_LEVEL_WARNING, NULL, NULL,
               "token record %.*s is damaged and left out of the list; "
               "revoke it by its id",
               (int)(k.mv_size - KEY_PREFIX_LEN),
               (const char *)k.mv_data + KEY_PREFIX_LEN);
      continue;
    }
    if (town && strcmp(info.town, town))
      continue;
    if (*n == cap) {
      size_t nc = cap ? cap * 2 : 16;
      core_token_info *nv = realloc(*v, nc * sizeof *nv);
      if (!nv) {
        st = core_err_set(err, TWIN_ERR_NOMEM, "token list: out of memory");
        break;
      }
      *v = nv;
      cap = nc;
    }
    (*v)[(*n)++] = info;
  }
  mdb_cursor_close(cur);
  if (!st && rc && rc != MDB_NOTFOUND)
    st = core_store_status(rc, "store read", err);
  if (st) {
    free(*v);
    *v = NULL;
    *n = 0;
  }
  return st;
}

int core_token_list(core_store *s, MDB_txn *txn, const char *town, json_t **out,
                    core_err *err)
{
  if (!s || !out)
    return core_err_set(err, TWIN_ERR_INVALID, "token list: no store");
  *out = NULL;
  MDB_txn *own = NULL;
  if (!txn) {
    int st = core_store_begin_read(s, &own, err);
    if (st)
      return st;
    txn = own;
  }
  core_token_info *v;
  size_t n;
  int st = collect(s, txn, town, &v, &n, err);
  if (own)
    core_store_end_read(s, own);
  if (st)
    return st;
  if (n)
    qsort(v, n, sizeof *v, by_created);
  json_t *a = json_array();
  for (size_t i = 0; a && i < n; i++) {
    json_t *row = info_json(&v[i]);
    if (!row || json_array_append_new(a, row)) {
      json_decref(a);
      a = NULL;
    }
  }
  free(v);
  if (!a)
    return core_err_set(err, TWIN_ERR_NOMEM,
                        "token list: out of memory (or a label that is not "
                        "UTF-8)");
  *out = a;
  return TWIN_OK;
}
