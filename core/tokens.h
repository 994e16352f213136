/*
 * tokens.h — API tokens: each belongs to one town and carries scopes (read,
 * write, admin). A token is "twh_<id>_<secret>": id is 12 lowercase hex
 * characters (6 random bytes), secret 43 base64url characters (32 random
 * bytes). Only a hash is kept, in the meta database:
 *
 *   meta "token" \0 <id>  ->  {"id","town","scopes":["read",...],"label",
 *                              "created":ms,"hash":"<64 hex>"}
 *
 * where hash is BLAKE2b-256 (crypto_generichash) of the whole token string.
 * Revoking deletes the record. The token itself is shown once, at creation.
 */
#ifndef CORE_TOKENS_H
#define CORE_TOKENS_H

#include <jansson.h>
#include <lmdb.h>
#include <stddef.h>

#include "config.h"
#include "store.h"
#include "util.h"

enum { CORE_SCOPE_READ = 1, CORE_SCOPE_WRITE = 2, CORE_SCOPE_ADMIN = 4 };
#define CORE_SCOPE_ALL (CORE_SCOPE_READ | CORE_SCOPE_WRITE | CORE_SCOPE_ADMIN)

#define CORE_TOKEN_MAX 80        /* buffer size for a token string incl. NUL */
#define CORE_TOKEN_LEN 60        /* strlen of every token: "twh_" 12 "_" 43 */
#define CORE_TOKEN_LABEL_MAX 127 /* bytes of UTF-8 in a label */

typedef struct core_token_info {
  char id[16];     /* 12 lowercase hex + NUL */
  char town[48];   /* the town id */
  unsigned scopes; /* CORE_SCOPE_* bits as stored (admin implies read and
                      write: see core_token_allows) */
  char label[128];
  twin_time created; /* ms */
} core_token_info;

/*
 * Parse a comma-separated scope list ("read,write", "admin"; spaces around
 * names are ignored) into CORE_SCOPE_* bits. Returns TWIN_OK, or
 * TWIN_ERR_INVALID when s is empty, has an empty item or names an unknown
 * scope (the message names it and lists the valid ones). Any thread.
 */
int core_scopes_parse(const char *s, unsigned *out, core_err *err);

/* The scopes as "read,write,admin" (canonical order, unknown bits left out)
 * into buf; returns buf. */
const char *core_scopes_format(unsigned scopes, char *buf, size_t size);

/* 1 if a token with scopes `have` may use a route needing all of `need`
 * (admin implies read and write), else 0. */
int core_token_allows(unsigned have, unsigned need);

/*
 * Create a token for town (which must be in cfg) with scopes (non-zero,
 * CORE_SCOPE_* bits only) and an optional label (NULL: "", at most
 * CORE_TOKEN_LABEL_MAX bytes of UTF-8 without control characters). The
 * record is committed in its own write transaction before this returns;
 * token_out gets the token string (the only time it exists in clear) and
 * info (may be NULL) its record. Call it where this process has no write
 * transaction open (another process may write at the same time).
 * Returns TWIN_OK; TWIN_ERR_INVALID (bad scopes or label), TWIN_ERR_NOT_FOUND
 * (no such town), TWIN_ERR_STORE, TWIN_ERR_NOMEM, with err filled in.
 */
int core_token_create(core_store *s, const core_config *cfg, const char *town,
                      unsigned scopes, const char *label,
                      char token_out[CORE_TOKEN_MAX], core_token_info *info,
                      core_err *err);

/*
 * Check the presented token (len bytes, need not be NUL terminated) in the
 * caller's read transaction txn (NULL: one of its own). Allocates nothing
 * and reads one record; the hash is compared in constant time. Returns
 * TWIN_OK with *out filled in, TWIN_ERR_NOT_FOUND for a malformed, unknown,
 * revoked or wrong token, TWIN_ERR_STORE when the store cannot be read or
 * the record is damaged. Any thread.
 */
int core_token_check(core_store *s, MDB_txn *txn, const char *token, size_t len,
                     core_token_info *out);

/*
 * Revoke (delete) a token, named by its id or by the full token string (then
 * its secret must match too). Own write transaction, as core_token_create.
 * Returns TWIN_OK, TWIN_ERR_INVALID (neither an id nor a token),
 * TWIN_ERR_NOT_FOUND (no such token), TWIN_ERR_STORE, with err filled in.
 */
int core_token_revoke(core_store *s, const char *id_or_token, core_err *err);

/*
 * The tokens of town (NULL: of every town), oldest first, as a new JSON
 * array [{"id","town","scopes":[...],"label","created":"RFC 3339"}] in *out
 * (caller decrefs); never a hash or secret. txn is the caller's read
 * transaction (NULL: one of its own). Records that cannot be read are left
 * out and logged. Returns TWIN_OK, TWIN_ERR_STORE, TWIN_ERR_NOMEM.
 */
int core_token_list(core_store *s, MDB_txn *txn, const char *town, json_t **out,
                    core_err *err);

#endif
