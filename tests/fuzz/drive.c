/*
 * drive.c — one fuzz input through a town's plugin every way outside bytes
 * reach it (see drive.h).
 */
#include "drive.h"

#include <stdio.h>
#include <stdlib.h>

#include "rules.h"

void fuzz_drive(core_host *h, core_overlay *ov, core_instance *ci,
                const uint8_t *data, size_t size)
{
  const char *doc = (const char *)data;
  core_err err;
  MDB_txn *txn;
  if (core_store_begin_write(h->store, &txn, &err)) {
    fprintf(stderr, "fuzz: begin write: %s\n", err.msg);
    abort();
  }
  if (core_host_run_ingest(h, ci, txn, ov, doc, size, &err) == TWIN_OK)
    core_overlay_flush(ov, h->store, txn, NULL, &err);
  mdb_txn_abort(txn);
  core_overlay_clear(ov);

  char *reply = NULL;
  if (core_host_query(h, ci, doc, size, &reply, &err) == TWIN_OK)
    free(reply);
  reply = NULL;
  if (core_host_simulate(h, ci, doc, size, &reply, &err) == TWIN_OK)
    free(reply);
  reply = NULL;
  if (core_rules_replay(h, ci->town, doc, size, &reply, &err) == TWIN_OK)
    free(reply);
}
