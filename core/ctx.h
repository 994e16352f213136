/*
 * ctx.h — the context a host -> plugin call runs in (twin_ctx, opaque to
 * plugins) and the host function table that works on it. Internal to core.
 */
#ifndef CORE_CTX_H
#define CORE_CTX_H

#include "host.h"

enum core_ctx_mode {
  CORE_CTX_WRITE = 1,    /* ingest, tick, open: writes staged, then flushed */
  CORE_CTX_READ = 2,     /* query, describe: writes refused */
  CORE_CTX_SCENARIO = 3, /* simulate: writes staged and dropped */
};

struct twin_ctx {
  core_host *host;
  core_instance *ci; /* NULL for a town-level context */
  const core_town *town;
  const char *plugin;
  int mode;
  int may_reply; /* query, simulate, describe */
  core_view view;
  char *reply;
  size_t reply_len, reply_cap;
  char error[512];
  int depth; /* query_plugin nesting */
};

/* Fill the host function table. */
void core_api_init(twin_host_api *api);

/* A context of a town without a plugin instance (town rules' schedules,
 * replays): plugin names the key namespace its writes use ("rules"). */
void core_ctx_init_town(twin_ctx *ctx, core_host *h, const core_town *town,
                        const char *plugin, int mode, MDB_txn *txn,
                        core_overlay *ov);

/* Set up / tear down a context (its reply buffer is freed). */
void core_ctx_init(twin_ctx *ctx, core_host *h, core_instance *ci, int mode,
                   MDB_txn *txn, core_overlay *ov);
void core_ctx_done(twin_ctx *ctx);

#endif
