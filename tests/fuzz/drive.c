/*
 * drive.c — one fuzz input through a town's plugin every way outside bytes
 * reach it (see drive.h).
 */
#include "drive.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "rules.h"
#include "util.h"

static char *work_dir;
static char work_name[32] = "fuzz";

void fuzz_dir_make(const char *target)
{
  snprintf(work_name, sizeof work_name, "fuzz_%s", target);
  char prefix[48];
  snprintf(prefix, sizeof prefix, "twin-fuzz-%s", target);
  work_dir = core_temp_dir(prefix);
  if (!work_dir)
    fuzz_die("mkdtemp", "cannot make a temp folder");
  setenv("TWINHOST_MAP_MIB", "64", 1);
}

const char *fuzz_dir(void)
{
  return work_dir;
}

void fuzz_dir_remove(void)
{
  if (!work_dir)
    return;
  char cmd[4200];
  snprintf(cmd, sizeof cmd, "rm -rf '%s'", work_dir);
  if (system(cmd) != 0)
    fprintf(stderr, "%s: %s failed\n", work_name, cmd);
  free(work_dir);
  work_dir = NULL;
}

void fuzz_die(const char *what, const char *why)
{
  fprintf(stderr, "%s: %s: %s\n", work_name, what, why);
  fuzz_dir_remove();
  abort();
}

void fuzz_seed(core_host *h, core_overlay *ov, core_instance *const *ci,
               const char *const *docs, size_t n)
{
  MDB_txn *txn;
  core_err err;
  if (core_store_begin_write(h->store, &txn, &err))
    fuzz_die("seed", err.msg);
  for (size_t i = 0; i < n; i++)
    if (core_host_run_ingest(h, ci[i], txn, ov, docs[i], strlen(docs[i]),
                             &err) ||
        core_overlay_flush(ov, h->store, txn, NULL, &err))
      fuzz_die("seed", err.msg);
  if (mdb_txn_commit(txn))
    fuzz_die("seed", "commit failed");
  core_overlay_clear(ov);
}

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
