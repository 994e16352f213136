/*
 * rules.c — town rules inside a running host (see rules.h): the writer jobs
 * that run schedule hooks and store status records, reloads, and replays of
 * recorded observations against a snapshot.
 */
#include "rules.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ctx.h"
#include "script.h"

/* How often the towns' rule status records are brought up to date. */
#define STATUS_EVERY_MS 10000

typedef struct town_slot {
  core_rules *r;
  size_t index;  /* into h->cfg->towns */
  int pending;   /* a schedule job is queued */
  twin_time at;  /* the time that job runs the schedule for */
  char *saved;   /* the status text stored last (writer thread only) */
  char *unsaved; /* written by the running status job, not yet committed */
} town_slot;

struct core_rules {
  core_host *h;
  core_pipeline *p;
  town_slot *slots;
  size_t n;
  twin_time next_status;
  int status_pending;
};

static void status_key(core_key *k, const char *town)
{
  k->len = 0;
  core_key_part(k, "rules");
  core_key_part(k, town);
}

/* The status of town i's rules as JSON text (caller frees), or NULL when
 * its rules were not brought up in this process. */
static char *status_text(core_host *h, size_t i)
{
  const core_town *t = &h->cfg->towns[i];
  core_script *s = core_host_script(h, t);
  pthread_mutex_lock(&h->lock);
  char *load_error =
      h->script_error && h->script_error[i] ? strdup(h->script_error[i]) : NULL;
  pthread_mutex_unlock(&h->lock);
  json_t *j = NULL;
  if (s) {
    char *text = core_script_status(s);
    j = text ? json_loads(text, 0, NULL) : NULL;
    free(text);
  } else if (load_error) {
    j = json_pack("{s:s,s:b}", "town", t->id, "loaded", 0);
  }
  if (j && load_error)
    json_object_set_new(j, "load_error", json_string(load_error));
  free(load_error);
  char *out = j ? json_dumps(j, JSON_COMPACT | JSON_SORT_KEYS) : NULL;
  json_decref(j);
  return out;
}

static int status_job(void *arg, core_host *h, MDB_txn *txn, core_overlay *ov,
                      core_err *err)
{
  (void)txn;
  core_rules *r = arg;
  for (size_t i = 0; i < r->n; i++) {
    char *text = status_text(h, i);
    if (!text || (r->slots[i].saved && !strcmp(text, r->slots[i].saved))) {
      free(text);
      continue;
    }
    core_key k;
    status_key(&k, h->cfg->towns[i].id);
    int st = core_overlay_put(ov, CORE_DB_META, k.b, k.len, text, strlen(text));
    if (st) {
      free(text);
      return core_err_set(err, st, "rule status: out of memory");
    }
    free(r->slots[i].unsaved);
    r->slots[i].unsaved = text;
  }
  return TWIN_OK;
}

static void status_done(void *ud, int status, const char *reason)
{
  core_rules *r = ud;
  if (status)
    core_log(TWIN_LEVEL_WARNING, NULL, "rules",
             "cannot store the rule status: %s", reason ? reason : "");
  /* Only a committed text counts as stored; a failed one is written again
   * by the next job. */
  for (size_t i = 0; i < r->n; i++) {
    town_slot *slot = &r->slots[i];
    if (!slot->unsaved)
      continue;
    if (!status) {
      free(slot->saved);
      slot->saved = slot->unsaved;
    } else {
      free(slot->unsaved);
    }
    slot->unsaved = NULL;
  }
  __atomic_store_n(&r->status_pending, 0, __ATOMIC_RELEASE);
}

static int schedule_job(void *arg, core_host *h, MDB_txn *txn, core_overlay *ov,
                        core_err *err)
{
  town_slot *slot = arg;
  const core_town *town = &h->cfg->towns[slot->index];
  core_script *s = core_host_script(h, town);
  if (!s)
    return TWIN_OK;
  twin_ctx ctx;
  core_ctx_init_town(&ctx, h, town, "rules", CORE_CTX_WRITE, txn, ov);
  int st = core_script_on_schedule(s, &ctx, slot->at);
  if (!st) /* events the schedule hooks raised reach the on_event hooks */
    st = core_host_run_rules(h, &ctx, 0);
  if (st)
    core_ctx_fail(&ctx, st, err);
  core_ctx_done(&ctx);
  return st;
}

static void schedule_done(void *ud, int status, const char *reason)
{
  town_slot *slot = ud;
  if (status)
    core_log(TWIN_LEVEL_WARNING, NULL, "rules", "schedule not stored: %s",
             reason ? reason : "");
  __atomic_store_n(&slot->pending, 0, __ATOMIC_RELEASE);
}

core_rules *core_rules_start(core_host *h, core_pipeline *p)
{
  core_rules *r = calloc(1, sizeof *r);
  if (!r)
    return NULL;
  r->h = h;
  r->p = p;
  r->n = h->cfg->n_towns;
  r->slots = calloc(r->n ? r->n : 1, sizeof *r->slots);
  if (!r->slots) {
    free(r);
    return NULL;
  }
  for (size_t i = 0; i < r->n; i++) {
    r->slots[i].r = r;
    r->slots[i].index = i;
  }
  return r;
}

void core_rules_poll(core_rules *r, twin_time now)
{
  for (size_t i = 0; i < r->n; i++) {
    town_slot *slot = &r->slots[i];
    core_script *s = core_host_script(r->h, &r->h->cfg->towns[i]);
    if (!s || __atomic_load_n(&slot->pending, __ATOMIC_ACQUIRE) ||
        core_script_next_due(s) > now)
      continue;
    slot->pending = 1;
    slot->at = now;
    if (core_pipeline_submit_fn(r->p, schedule_job, slot, schedule_done, slot))
      slot->pending = 0;
  }
  if (now >= r->next_status) {
    r->next_status = now + STATUS_EVERY_MS;
    core_rules_store_status(r);
  }
}

void core_rules_store_status(core_rules *r)
{
  if (__atomic_load_n(&r->status_pending, __ATOMIC_ACQUIRE))
    return;
  r->status_pending = 1;
  if (core_pipeline_submit_fn(r->p, status_job, r, status_done, r))
    r->status_pending = 0;
}

void core_rules_reload(core_rules *r)
{
  core_host *h = r->h;
  for (size_t i = 0; i < r->n; i++) {
    const core_town *t = &h->cfg->towns[i];
    core_script *s = core_host_script(h, t);
    core_err err;
    int st;
    if (s) {
      st = core_script_reload(s, &err);
    } else {
      core_script_limits lim = {t->rule_instructions, t->rule_wall_ms,
                                (size_t)t->rule_memory_mib << 20};
      st = core_script_open(h, t, &lim, &s, &err);
      if (!st) /* the writer may be reading the slot: publish atomically */
        __atomic_store_n(&h->scripts[i], s, __ATOMIC_RELEASE);
    }
    pthread_mutex_lock(&h->lock);
    free(h->script_error[i]);
    h->script_error[i] = st ? strdup(err.msg) : NULL;
    pthread_mutex_unlock(&h->lock);
    if (st)
      core_log(TWIN_LEVEL_ERROR, t->id, "rules",
               "reload failed, the rules that ran before keep running: %s",
               err.msg);
    else
      core_log(TWIN_LEVEL_INFO, t->id, "rules", "rules reloaded");
  }
  r->next_status = 0; /* store the new status soon */
}

void core_rules_stop(core_rules *r)
{
  if (!r)
    return;
  for (size_t i = 0; i < r->n; i++) {
    free(r->slots[i].saved);
    free(r->slots[i].unsaved);
  }
  free(r->slots);
  free(r);
}

char *core_rules_stored_status(core_host *h, MDB_txn *txn, const char *town)
{
  core_key k;
  status_key(&k, town);
  core_view v = {h->store, txn, NULL};
  const uint8_t *val;
  size_t len;
  if (core_view_get(&v, CORE_DB_META, k.b, k.len, &val, &len))
    return NULL;
  return strndup((const char *)val, len);
}

/* ---- replay -------------------------------------------------------------- */

typedef struct replay_writes {
  json_t *out;
  int db;
} replay_writes;

/* One write a rule staged, for people: which entity, attribute and value. */
static int describe_write(void *ud, int op, const uint8_t *key, size_t klen,
                          const uint8_t *val, size_t vlen)
{
  replay_writes *w = ud;
  const char *part[5] = {0};
  const char *p = (const char *)key, *end = p + klen;
  int parts = w->db == CORE_DB_KV ? 2 : 5;
  for (int i = 0; i < parts && p < end; i++) {
    part[i] = p;
    p += strnlen(p, (size_t)(end - p)) + 1;
  }
  json_t *row = json_object();
  json_object_set_new(row, "op", json_string(op == 1 ? "put" : "delete"));
  static const char *names[] = {"entity", "history", "kv"};
  json_object_set_new(row, "store", json_string(names[w->db]));
  json_object_set_new(row, "plugin", json_string(part[1] ? part[1] : ""));
  if (w->db == CORE_DB_KV) {
    const char *k = part[1] ? part[1] + strlen(part[1]) + 1 : "";
    if (k < end)
      json_object_set_new(row, "key", json_stringn(k, (size_t)(end - k)));
  } else {
    json_object_set_new(row, "type", json_string(part[2] ? part[2] : ""));
    json_object_set_new(row, "id", json_string(part[3] ? part[3] : ""));
    json_object_set_new(row, "attr", json_string(part[4] ? part[4] : ""));
  }
  twin_value v;
  twin_time t = 0;
  if (op == 1 && w->db != CORE_DB_KV &&
      !core_value_decode(val, vlen, w->db == CORE_DB_ENT, &v, &t)) {
    json_object_set_new(row, "value", core_value_json(&v));
    if (w->db == CORE_DB_OBS && klen >= 8)
      t = core_key_get_time(key + klen - 8);
    char when[40];
    core_format_time(t, when, sizeof when);
    json_object_set_new(row, "time", json_string(when));
  }
  json_array_append_new(w->out, row);
  return TWIN_OK;
}

static int collect_event(void *ud, const char *town, const char *json,
                         size_t len)
{
  (void)town;
  json_t *ev = json_loadb(json, len, 0, NULL);
  if (ev)
    json_array_append_new(ud, ev);
  return TWIN_OK;
}

/* Parse one recorded observation; 0 with why on failure. */
static int parse_recorded(const core_town *town, json_t *o, const char **plugin,
                          const char **type, const char **id, twin_attr *a,
                          char *why, size_t whylen)
{
  *plugin = json_string_value(json_object_get(o, "plugin"));
  *type = json_string_value(json_object_get(o, "type"));
  *id = json_string_value(json_object_get(o, "id"));
  a->name = json_string_value(json_object_get(o, "attr"));
  json_t *t = json_object_get(o, "time"), *v = json_object_get(o, "value");
  if (!*plugin || !*type || !*id || !a->name || !t || !v) {
    snprintf(why, whylen,
             "expected {\"plugin\", \"type\", \"id\", \"attr\", "
             "\"time\", \"value\"}");
    return 0;
  }
  int enabled = 0;
  for (size_t i = 0; i < town->n_plugins; i++)
    enabled |= !strcmp(town->plugins[i].name, *plugin);
  if (!enabled) {
    snprintf(why, whylen, "plugin '%.60s' is not enabled for %s", *plugin,
             town->id);
    return 0;
  }
  if (json_is_integer(t))
    a->time = json_integer_value(t);
  else if (!json_is_string(t) ||
           core_parse_time(json_string_value(t), &a->time)) {
    snprintf(why, whylen, "time: expected RFC 3339 with a zone, or ms");
    return 0;
  }
  if (json_is_integer(v))
    a->value = twin_integer(json_integer_value(v));
  else if (json_is_real(v))
    a->value = twin_number(json_real_value(v));
  else if (json_is_boolean(v))
    a->value = twin_bool(json_is_true(v));
  else if (json_is_string(v))
    a->value = twin_string(json_string_value(v), json_string_length(v));
  else {
    snprintf(why, whylen, "value: expected a number, string or boolean");
    return 0;
  }
  return 1;
}

int core_rules_replay(core_host *h, const core_town *town, const char *input,
                      size_t len, char **report, core_err *err)
{
  *report = NULL;
  core_script *s = core_host_script(h, town);
  if (!s)
    return core_err_set(
        err, TWIN_ERR_NOT_FOUND, "%s has no rules loaded%s%s", town->id,
        h->script_error && h->script_error[town - h->cfg->towns] ? ": " : "",
        h->script_error && h->script_error[town - h->cfg->towns]
            ? h->script_error[town - h->cfg->towns]
            : "");
  MDB_txn *txn;
  int st = core_store_begin_read(h->store, &txn, err);
  if (st)
    return st;
  core_overlay *ov = core_overlay_new();
  json_t *writes = json_array(), *rejected = json_array();
  size_t line = 0, replayed = 0;
  for (const char *p = input; ov && p < input + len;) {
    const char *e = memchr(p, '\n', (size_t)(input + len - p));
    if (!e)
      e = input + len;
    line++;
    json_error_t je;
    json_t *o = NULL;
    size_t n = (size_t)(e - p);
    while (n && (p[n - 1] == '\r' || p[n - 1] == ' '))
      n--;
    if (n)
      o = json_loadb(p, n, 0, &je);
    p = e + 1;
    if (!n)
      continue;
    const char *plugin, *type, *id;
    twin_attr a;
    char why[200];
    if (!o) {
      snprintf(why, sizeof why, "not JSON: %s", je.text);
    }
    if (o &&
        parse_recorded(town, o, &plugin, &type, &id, &a, why, sizeof why)) {
      twin_ctx ctx;
      core_ctx_init_town(&ctx, h, town, plugin, CORE_CTX_WRITE, txn, ov);
      /* Stage the observation as its plugin would, then run the rules. */
      int rc = h->api.obs_append(&ctx, type, id, &a, 1);
      if (!rc)
        rc = h->api.entity_put(&ctx, type, id, &a, 1);
      uint32_t before = core_overlay_stamp(ov);
      if (!rc)
        rc = core_script_on_observation(s, &ctx, plugin, type, id, &a);
      for (int db = CORE_DB_ENT; !rc && db <= CORE_DB_KV; db++) {
        replay_writes w = {writes, db};
        core_overlay_each(ov, db, before, core_overlay_stamp(ov),
                          describe_write, &w);
      }
      if (rc)
        core_ctx_reason(&ctx, rc, why, sizeof why);
      else
        replayed++;
      core_ctx_done(&ctx);
      if (!rc) {
        json_decref(o);
        continue;
      }
    }
    json_array_append_new(rejected, json_pack("{s:I,s:s}", "line",
                                              (json_int_t)line, "error", why));
    json_decref(o);
  }
  json_t *events = json_array();
  if (ov)
    core_overlay_each_event(ov, collect_event, events);
  char *status = core_script_status(s);
  json_t *out = json_pack(
      "{s:s,s:I,s:o,s:o,s:o,s:o}", "town", town->id, "observations",
      (json_int_t)replayed, "events", events, "writes", writes, "rejected",
      rejected, "rules", status ? json_loads(status, 0, NULL) : json_null());
  free(status);
  *report = out ? json_dumps(out, JSON_COMPACT) : NULL;
  json_decref(out);
  core_overlay_free(ov);
  core_store_end_read(h->store, txn);
  if (!*report)
    return core_err_set(err, TWIN_ERR_NOMEM, "out of memory");
  return TWIN_OK;
}
