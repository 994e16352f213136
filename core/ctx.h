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
  CORE_CTX_FETCH = 4,    /* fetch: no store at all; submit instead */
};

/* Items of a document its plugin refused (refuse_item). */
#define CORE_ITEMS_KEPT 1000

struct twin_ctx {
  core_host *host;
  core_instance *ci; /* NULL for a town-level context */
  const core_town *town;
  const char *plugin;
  int mode;
  int may_reply; /* query, simulate, describe */
  int in_ingest; /* ingest: refuse_item and doc_type work */
  core_view view;
  const core_op *op; /* the declared op being answered, or NULL */
  char *reply;
  size_t reply_len, reply_cap;
  char reply_type[128]; /* "" until respond_as names one: JSON */
  char error[512];      /* the plugin's message (set_error, fail) */
  char detail[512];     /* the host's: why a host call failed */
  char err_code[48], err_field[200]; /* from fail */
  uint64_t deadline_ns; /* core_mono_ns() past which the call must end; 0 */
  const char *doc_type; /* ingest: the document's media type */
  core_items *items;    /* ingest: refusals go here (may be NULL) */
  int depth;            /* query_plugin nesting */
};

/* The reason a call failed, as people read it: the plugin's message, the
 * host's detail beside it when both say something, or the status's
 * message. Into buf; returns buf. */
const char *core_ctx_reason(const twin_ctx *ctx, int status, char *buf,
                            size_t size);
/* Copy the call's failure into err: reason, and the plugin's code and
 * field when it set them. */
void core_ctx_fail(const twin_ctx *ctx, int status, core_err *err);

/* Fill the table of host calls plugins are given (twin_host_api). */
void core_host_calls_init(twin_host_api *api);

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
