/*
 * fuzz_api.c — libFuzzer target for the query parameters of the read API:
 * the input is a query string ("name=value&name=value", no decoding; a
 * NUL byte ends a value), given as it is to the entity list, the history
 * of one attribute and the event list of a small store. Every call must
 * end in a JSON answer or an error that makes a JSON body, never in a
 * crash or a leak; and a "next" cursor an answer gives must be accepted
 * when it is handed back with the same parameters.
 *
 * The store (real LMDB, a 16 MiB map) is built once, in a folder from
 * core_temp_dir that is removed as soon as it is open.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api.h"
#include "store.h"

#define MAX_ARGS 64

static struct {
  core_host h;
  core_town town;
  int ready;
} fz;

static core_town_plugin plugins[] = {{"parking", "{}", -1, 1, -1, -1},
                                     {"sensors", "{}", -1, 1, -1, -1}};

static void die(const char *what)
{
  fprintf(stderr, "fuzz_api: %s\n", what);
  abort();
}

static void put(MDB_txn *txn, int db, const core_key *k, const void *v,
                size_t n)
{
  MDB_val mk = {k->len, (void *)k->b}, mv = {n, (void *)v};
  if (mdb_put(txn, fz.h.store->dbi[db], &mk, &mv, 0))
    die("put failed");
}

static void put_attr(MDB_txn *txn, const char *plugin, const char *type,
                     const char *id, const char *attr, twin_value v,
                     twin_time t)
{
  core_key k = {.len = 0};
  core_key_part(&k, "town");
  core_key_part(&k, plugin);
  core_key_part(&k, type);
  core_key_part(&k, id);
  core_key_part(&k, attr);
  uint8_t buf[256], obs[256];
  core_value_encode(&v, t, 1, buf);
  put(txn, CORE_DB_ENT, &k, buf, core_value_size(&v, 1));
  core_key_time(&k, t);
  core_value_encode(&v, 0, 0, obs);
  put(txn, CORE_DB_OBS, &k, obs, core_value_size(&v, 0));
}

static void rm_dir(const char *dir)
{
  char cmd[4200];
  snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
  if (system(cmd) != 0)
    fprintf(stderr, "fuzz_api: %s failed\n", cmd);
}

static void close_store(void)
{
  core_store_close(fz.h.store);
}

/* Lots with positions and mixed attributes, a gauge with a history of
 * every value type, and a few events. */
static void setup(void)
{
  char *dir = core_temp_dir("twin-fuzz-api");
  if (!dir)
    die("cannot make a temp folder");
  setenv("TWINHOST_MAP_MIB", "16", 1);
  core_err err;
  if (core_store_open(dir, &fz.h.store, &err))
    die(err.msg);
  rm_dir(dir);
  free(dir);
  atexit(close_store);
  fz.town = (core_town){.id = "town", .plugins = plugins, .n_plugins = 2};
  MDB_txn *txn;
  if (core_store_begin_write(fz.h.store, &txn, &err))
    die(err.msg);
  twin_time t0 = INT64_C(1700000000000);
  for (int i = 0; i < 12; i++) {
    char id[8];
    snprintf(id, sizeof id, "p%d", i);
    put_attr(txn, "parking", i % 3 ? "Lot" : "Garage", id, "free",
             twin_integer(i), t0 + i * 1000);
    put_attr(txn, "parking", i % 3 ? "Lot" : "Garage", id, "lat",
             twin_number(48.8 + i * 0.002), t0);
    put_attr(txn, "parking", i % 3 ? "Lot" : "Garage", id, "lon",
             twin_number(12.9 + (i % 4) * 0.003), t0);
    put_attr(txn, "parking", i % 3 ? "Lot" : "Garage", id, "state",
             twin_string(i % 2 ? "open" : "full", 4), t0);
  }
  for (int i = 0; i < 40; i++) {
    twin_value v = i % 5 == 0   ? twin_string("high", 4)
                   : i % 5 == 1 ? twin_bool(i & 2)
                   : i % 5 == 2 ? twin_number(i * 1.5)
                                : twin_integer(-i);
    put_attr(txn, "sensors", "Gauge", "g1", "level", v,
             t0 + (twin_time)i * 7 * 60000 + (i % 3) * 250);
  }
  for (int i = 1; i <= 9; i++) {
    core_key k = {.len = 0};
    core_key_part(&k, "town");
    core_key_time(&k, i);
    char ev[64];
    snprintf(ev, sizeof ev, i == 4 ? "{broken %d" : "{\"message\":\"e%d\"}", i);
    put(txn, CORE_DB_EVT, &k, ev, strlen(ev));
  }
  if (mdb_txn_commit(txn))
    die("commit failed");
  fz.ready = 1;
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
  (void)argc;
  (void)argv;
  setup();
  return 0;
}

/* What every API answer must satisfy. */
static void check(int st, json_t *out, const api_error *e)
{
  if (st == 0) {
    if (!out)
      die("success without an answer");
    return;
  }
  if (out || e->http != st || (st != 400 && st != 404) || !e->code[0] ||
      !e->message[0])
    die("error without its fields");
  json_t *body = api_error_json(e);
  if (!body)
    die("error body is not JSON");
  json_decref(body);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
  if (!fz.ready)
    setup();
  char *text = malloc(size + 1);
  if (!text)
    return 0;
  memcpy(text, data, size);
  text[size] = 0;
  api_arg v[MAX_ARGS + 1];
  api_args q = {v, 0};
  char *p = text;
  while (q.n < MAX_ARGS) {
    char *amp = strchr(p, '&');
    if (amp)
      *amp = 0;
    char *eq = strchr(p, '=');
    if (eq)
      *eq = 0;
    v[q.n++] = (api_arg){p, eq ? eq + 1 : ""};
    if (!amp)
      break;
    p = amp + 1;
  }

  MDB_txn *txn;
  core_err err;
  if (core_store_begin_read(fz.h.store, &txn, &err))
    die(err.msg);
  api_error e;
  json_t *out = NULL;
  int st = api_entities(&fz.h, txn, &fz.town, &q, &out, &e);
  check(st, out, &e);
  const char *next = json_string_value(json_object_get(out, "next"));
  if (next) {
    /* the same query again from the cursor it gave */
    api_arg again[MAX_ARGS + 1];
    api_args q2 = {again, 0};
    for (size_t i = 0; i < q.n; i++)
      if (strcmp(v[i].name, "cursor"))
        again[q2.n++] = v[i];
    again[q2.n++] = (api_arg){"cursor", next};
    json_t *out2 = NULL;
    if (api_entities(&fz.h, txn, &fz.town, &q2, &out2, &e))
      die("a cursor the API gave was refused");
    json_decref(out2);
  }
  json_decref(out);
  out = NULL;
  st = api_history(&fz.h, txn, &fz.town, "sensors", "Gauge", "g1", "level", &q,
                   &out, &e);
  check(st, out, &e);
  json_decref(out);
  out = NULL;
  st = api_events(&fz.h, txn, &fz.town, &q, &out, &e);
  check(st, out, &e);
  json_decref(out);
  /* the first value as an entity id and an attribute */
  if (q.n && v[0].value) {
    out = NULL;
    st = api_entity(&fz.h, txn, &fz.town, "parking", "Lot", v[0].value, &out,
                    &e);
    check(st, out, &e);
    json_decref(out);
    out = NULL;
    q.n = 0;
    st = api_history(&fz.h, txn, &fz.town, "parking", "Lot", "p1", v[0].value,
                     &q, &out, &e);
    check(st, out, &e);
    json_decref(out);
  }
  core_store_end_read(fz.h.store, txn);
  free(text);
  return 0;
}
