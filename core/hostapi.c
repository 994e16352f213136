/*
 * hostapi.c — the host services a plugin calls through twin_host_api:
 * entities, history, plugin kv, events, replies, cross-plugin queries, log,
 * clock, local time. Every call reads through the context's view and stages
 * writes in its overlay; nothing here commits. Arguments from plugins are
 * checked, never trusted: a bad call returns a status, it does not crash the
 * host.
 */
#include "ctx.h"
#include "script.h"
#include "tz.h"

#include <jansson.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_QUERY_DEPTH 4

void core_ctx_init_town(twin_ctx *ctx, core_host *h, const core_town *town,
                        const char *plugin, int mode, MDB_txn *txn,
                        core_overlay *ov)
{
  memset(ctx, 0, sizeof *ctx);
  ctx->host = h;
  ctx->town = town;
  ctx->plugin = plugin;
  ctx->mode = mode;
  ctx->view.store = h->store;
  ctx->view.txn = txn;
  ctx->view.ov = ov;
}

void core_ctx_init(twin_ctx *ctx, core_host *h, core_instance *ci, int mode,
                   MDB_txn *txn, core_overlay *ov)
{
  core_ctx_init_town(ctx, h, ci->town, ci->plugin->desc.name, mode, txn, ov);
  ctx->ci = ci;
}

void core_ctx_done(twin_ctx *ctx)
{
  free(ctx->reply);
  ctx->reply = NULL;
}

/* Say why a host call fails, for the plugin's own messages and logs. */
static void ctx_error(twin_ctx *ctx, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static void ctx_error(twin_ctx *ctx, const char *fmt, ...)
{
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(ctx->error, sizeof ctx->error, fmt, ap);
  va_end(ap);
  core_utf8_fix(ctx->error);
}

static int writable(twin_ctx *ctx)
{
  if (ctx->mode == CORE_CTX_READ || !ctx->view.ov) {
    ctx_error(ctx, "writes are not allowed in a query or describe");
    return 0;
  }
  return 1;
}

/* town\0plugin\0 */
static int key_base(twin_ctx *ctx, core_key *k)
{
  k->len = 0;
  return core_key_part(k, ctx->town->id) && core_key_part(k, ctx->plugin);
}

#define NAME_RULE "1 to 200 bytes of UTF-8 text without control characters"

static int key_entity(twin_ctx *ctx, core_key *k, const char *type,
                      const char *id)
{
  if (!core_valid_name(type) || !core_valid_name(id)) {
    ctx_error(ctx, "entity %s is not a valid name (" NAME_RULE ")",
              core_valid_name(type) ? "id" : "type");
    return 0;
  }
  if (!key_base(ctx, k) || !core_key_part(k, type) || !core_key_part(k, id)) {
    ctx_error(ctx,
              "entity type and id are too long together (town, plugin, "
              "type, id and attribute name share %d bytes)",
              CORE_KEY_MAX - 8);
    return 0;
  }
  return 1;
}

static int valid_value(const twin_value *v)
{
  switch (v->type) {
  case TWIN_VALUE_NULL:
  case TWIN_VALUE_INT:
    return 1;
  case TWIN_VALUE_BOOL:
    return v->as.boolean == 0 || v->as.boolean == 1;
  case TWIN_VALUE_NUMBER:
    return isfinite(v->as.number);
  case TWIN_VALUE_STRING:
    return v->as.string.len <= TWIN_VALUE_MAX &&
           (v->as.string.ptr || !v->as.string.len) &&
           core_utf8_valid(v->as.string.ptr, v->as.string.len);
  default:
    return 0;
  }
}

/* 1 when attribute (or observation) a can be stored under prefix; else 0
 * with a message. */
static int attr_ok(twin_ctx *ctx, const core_key *prefix, int db, size_t i,
                   const twin_attr *a)
{
  if (!core_valid_name(a->name)) {
    ctx_error(ctx, "attribute %zu: not a valid name (" NAME_RULE ")", i);
    return 0;
  }
  if (!valid_value(&a->value)) {
    ctx_error(ctx,
              "attribute %zu ('%.60s'): invalid value (unknown type, "
              "non-finite number, or string not UTF-8 or over %u bytes)",
              i, a->name, TWIN_VALUE_MAX);
    return 0;
  }
  size_t klen = prefix->len + strlen(a->name) + 1 + (db == CORE_DB_OBS ? 8 : 0);
  if (klen > CORE_KEY_MAX) {
    ctx_error(ctx, "attribute %zu ('%.60s'): name too long for this entity", i,
              a->name);
    return 0;
  }
  return 1;
}

/* Stage attrs (or observations) under prefix: all of them, or none when
 * any is invalid. */
static int stage_attrs(twin_ctx *ctx, const core_key *prefix, int db,
                       const twin_attr *attrs, size_t n)
{
  int with_time = db == CORE_DB_ENT;
  for (size_t i = 0; i < n; i++)
    if (!attr_ok(ctx, prefix, db, i, &attrs[i]))
      return TWIN_ERR_INVALID;
  for (size_t i = 0; i < n; i++) {
    const twin_attr *a = &attrs[i];
    core_key k = *prefix;
    core_key_part(&k, a->name);
    if (db == CORE_DB_OBS)
      core_key_time(&k, a->time);
    size_t vn = core_value_size(&a->value, with_time);
    uint8_t *buf = core_overlay_put_space(ctx->view.ov, db, k.b, k.len, vn);
    if (!buf)
      return TWIN_ERR_NOMEM;
    core_value_encode(&a->value, a->time, with_time, buf);
  }
  return TWIN_OK;
}

static int api_entity_put(twin_ctx *ctx, const char *type, const char *id,
                          const twin_attr *attrs, size_t n)
{
  core_key k;
  if (!ctx || (!attrs && n))
    return TWIN_ERR_INVALID;
  if (!writable(ctx))
    return TWIN_ERR_READ_ONLY;
  if (!key_entity(ctx, &k, type, id))
    return TWIN_ERR_INVALID;
  return stage_attrs(ctx, &k, CORE_DB_ENT, attrs, n);
}

static int api_obs_append(twin_ctx *ctx, const char *type, const char *id,
                          const twin_attr *obs, size_t n)
{
  core_key k;
  if (!ctx || (!obs && n))
    return TWIN_ERR_INVALID;
  if (!writable(ctx))
    return TWIN_ERR_READ_ONLY;
  if (!key_entity(ctx, &k, type, id))
    return TWIN_ERR_INVALID;
  return stage_attrs(ctx, &k, CORE_DB_OBS, obs, n);
}

static int api_entity_get(twin_ctx *ctx, const char *type, const char *id,
                          const char *attr, twin_attr *out)
{
  core_key k;
  if (!ctx || !out || !key_entity(ctx, &k, type, id) ||
      !core_valid_name(attr) || !core_key_part(&k, attr))
    return TWIN_ERR_INVALID;
  const uint8_t *val;
  size_t vlen;
  int rc = core_view_get(&ctx->view, CORE_DB_ENT, k.b, k.len, &val, &vlen);
  if (rc)
    return rc;
  out->name = attr;
  return core_value_decode(val, vlen, 1, &out->value, &out->time);
}

typedef struct attrs_scan {
  size_t prefix_len;
  twin_attr_cb cb;
  void *ud;
  size_t seen;
  int with_time;
  size_t limit;
  /* The callback's attribute name: a copy, since a write the callback makes
   * may move the overlay memory the key lives in. */
  char name[TWIN_NAME_MAX + 1];
} attrs_scan;

static int attrs_visit(void *ud, const uint8_t *key, size_t klen,
                       const uint8_t *val, size_t vlen)
{
  attrs_scan *s = ud;
  twin_attr a;
  if (klen <= s->prefix_len)
    return TWIN_ERR_STORE;
  const char *name = (const char *)key + s->prefix_len;
  size_t nlen = strnlen(name, klen - s->prefix_len);
  if (nlen > TWIN_NAME_MAX)
    return TWIN_ERR_STORE;
  memcpy(s->name, name, nlen);
  s->name[nlen] = 0;
  a.name = s->name;
  if (!s->with_time) { /* obs: the name is the series', time in the key */
    if (klen < 8)
      return TWIN_ERR_STORE;
    a.time = core_key_get_time(key + klen - 8);
  }
  int rc = core_value_decode(val, vlen, s->with_time, &a.value, &a.time);
  if (rc)
    return rc;
  s->seen++;
  rc = s->cb(s->ud, &a);
  if (!rc && s->limit && s->seen >= s->limit)
    return TWIN_STOP;
  return rc;
}

static int api_entity_attrs(twin_ctx *ctx, const char *type, const char *id,
                            twin_attr_cb cb, void *ud)
{
  core_key lo, hi;
  if (!ctx || !cb || !key_entity(ctx, &lo, type, id))
    return TWIN_ERR_INVALID;
  hi = lo;
  core_key_prefix_end(&hi);
  attrs_scan s = {.prefix_len = lo.len, .cb = cb, .ud = ud, .with_time = 1};
  int rc = core_view_scan(&ctx->view, CORE_DB_ENT, &lo, &hi, attrs_visit, &s);
  if (!rc && !s.seen)
    return TWIN_ERR_NOT_FOUND;
  return rc;
}

typedef struct del_scan {
  twin_ctx *ctx;
  size_t n;
} del_scan;

static int del_visit(void *ud, const uint8_t *key, size_t klen,
                     const uint8_t *val, size_t vlen)
{
  (void)val;
  (void)vlen;
  del_scan *d = ud;
  d->n++;
  return core_overlay_del(d->ctx->view.ov, CORE_DB_ENT, key, klen);
}

static int api_entity_delete(twin_ctx *ctx, const char *type, const char *id)
{
  core_key lo, hi;
  if (!ctx)
    return TWIN_ERR_INVALID;
  if (!writable(ctx))
    return TWIN_ERR_READ_ONLY;
  if (!key_entity(ctx, &lo, type, id))
    return TWIN_ERR_INVALID;
  hi = lo;
  core_key_prefix_end(&hi);
  del_scan d = {ctx, 0};
  int rc = core_view_scan(&ctx->view, CORE_DB_ENT, &lo, &hi, del_visit, &d);
  if (!rc && !d.n)
    return TWIN_ERR_NOT_FOUND;
  return rc;
}

typedef struct iter_scan {
  size_t prefix_len;
  twin_entity_cb cb;
  void *ud;
  char last[2 * TWIN_NAME_MAX + 4];
  size_t last_len;
} iter_scan;

static int iter_visit(void *ud, const uint8_t *key, size_t klen,
                      const uint8_t *val, size_t vlen)
{
  (void)val;
  (void)vlen;
  iter_scan *s = ud;
  const char *type = (const char *)key + s->prefix_len;
  size_t left = klen - s->prefix_len;
  const char *z1 = memchr(type, 0, left);
  if (!z1)
    return TWIN_ERR_STORE;
  const char *id = z1 + 1;
  const char *z2 = memchr(id, 0, left - (size_t)(id - type));
  if (!z2)
    return TWIN_ERR_STORE;
  size_t n = (size_t)(z2 - type) + 1; /* "type\0id\0" */
  if (n > sizeof s->last)
    return TWIN_ERR_STORE;
  if (n == s->last_len && !memcmp(s->last, type, n))
    return TWIN_OK; /* another attribute of the same entity */
  memcpy(s->last, type, n);
  s->last_len = n;
  return s->cb(s->ud, s->last, s->last + (id - type));
}

static int api_entity_iterate(twin_ctx *ctx, const char *type,
                              twin_entity_cb cb, void *ud)
{
  core_key lo, hi;
  if (!ctx || !cb || !key_base(ctx, &lo))
    return TWIN_ERR_INVALID;
  iter_scan s = {.prefix_len = lo.len, .cb = cb, .ud = ud};
  if (type && (!core_valid_name(type) || !core_key_part(&lo, type)))
    return TWIN_ERR_INVALID;
  hi = lo;
  core_key_prefix_end(&hi);
  return core_view_scan(&ctx->view, CORE_DB_ENT, &lo, &hi, iter_visit, &s);
}

static int api_history_range(twin_ctx *ctx, const char *type, const char *id,
                             const char *attr, twin_time from, twin_time to,
                             size_t limit, twin_attr_cb cb, void *ud)
{
  core_key lo, hi;
  if (!ctx || !cb || !key_entity(ctx, &lo, type, id) ||
      !core_valid_name(attr) || !core_key_part(&lo, attr))
    return TWIN_ERR_INVALID;
  if (to <= from)
    return TWIN_OK;
  size_t series_len = lo.len;
  hi = lo;
  core_key_time(&lo, from);
  core_key_time(&hi, to);
  /* The callback gets the attribute name: it is the series' last part. */
  attrs_scan s = {.prefix_len = series_len - strlen(attr) - 1,
                  .cb = cb,
                  .ud = ud,
                  .limit = limit};
  return core_view_scan(&ctx->view, CORE_DB_OBS, &lo, &hi, attrs_visit, &s);
}

static int key_kv(twin_ctx *ctx, core_key *k, const void *key, size_t len)
{
  return key && len >= 1 && len <= TWIN_NAME_MAX && key_base(ctx, k) &&
         core_key_raw(k, key, len);
}

static int api_kv_put(twin_ctx *ctx, const void *key, size_t key_len,
                      const void *val, size_t val_len)
{
  core_key k;
  if (!ctx || (!val && val_len) || val_len > TWIN_VALUE_MAX)
    return TWIN_ERR_INVALID;
  if (!writable(ctx))
    return TWIN_ERR_READ_ONLY;
  if (!key_kv(ctx, &k, key, key_len))
    return TWIN_ERR_INVALID;
  return core_overlay_put(ctx->view.ov, CORE_DB_KV, k.b, k.len, val ? val : "",
                          val_len);
}

static int api_kv_get(twin_ctx *ctx, const void *key, size_t key_len,
                      const void **val, size_t *val_len)
{
  core_key k;
  if (!ctx || !val || !val_len || !key_kv(ctx, &k, key, key_len))
    return TWIN_ERR_INVALID;
  const uint8_t *v;
  size_t n;
  int rc = core_view_get(&ctx->view, CORE_DB_KV, k.b, k.len, &v, &n);
  if (!rc) {
    *val = v;
    *val_len = n;
  }
  return rc;
}

static int api_kv_delete(twin_ctx *ctx, const void *key, size_t key_len)
{
  core_key k;
  if (!ctx)
    return TWIN_ERR_INVALID;
  if (!writable(ctx))
    return TWIN_ERR_READ_ONLY;
  if (!key_kv(ctx, &k, key, key_len))
    return TWIN_ERR_INVALID;
  return core_overlay_del(ctx->view.ov, CORE_DB_KV, k.b, k.len);
}

static const char *level_name(twin_level l)
{
  static const char *names[] = {"debug", "info", "warning", "error"};
  return (unsigned)l <= TWIN_LEVEL_ERROR ? names[l] : NULL;
}

static int api_emit(twin_ctx *ctx, twin_level level, const char *etype,
                    const char *eid, const char *message, const char *data_json,
                    size_t data_len)
{
  if (!ctx || !level_name(level) || !message || !*message ||
      (etype && !core_valid_name(etype)) || (eid && !core_valid_name(eid)))
    return TWIN_ERR_INVALID;
  if (!writable(ctx))
    return TWIN_ERR_READ_ONLY;
  json_t *data = NULL;
  if (data_json) {
    data = json_loadb(data_json, data_len, JSON_DECODE_ANY, NULL);
    if (!data) {
      ctx_error(ctx, "emit: data is not JSON");
      return TWIN_ERR_INVALID;
    }
  }
  char when[40];
  core_format_time(core_now_ms(), when, sizeof when);
  json_t *ev = json_pack("{s:s,s:s,s:s,s:s,s:s}", "time", when, "town",
                         ctx->town->id, "plugin", ctx->plugin, "level",
                         level_name(level), "message", message);
  if (!ev) {
    json_decref(data);
    return TWIN_ERR_INVALID; /* message not UTF-8 */
  }
  if (etype)
    json_object_set_new(ev, "entity_type", json_string(etype));
  if (eid)
    json_object_set_new(ev, "entity_id", json_string(eid));
  if (data)
    json_object_set_new(ev, "data", data);
  char *text = json_dumps(ev, JSON_COMPACT);
  json_decref(ev);
  if (!text)
    return TWIN_ERR_NOMEM;
  int rc = core_overlay_event(ctx->view.ov, ctx->town->id, text, strlen(text));
  free(text);
  return rc;
}

static int api_respond(twin_ctx *ctx, const char *json, size_t len)
{
  if (!ctx || !json)
    return TWIN_ERR_INVALID;
  if (!ctx->may_reply)
    return TWIN_ERR_UNSUPPORTED;
  json_error_t e;
  json_t *j = json_loadb(json, len, JSON_DECODE_ANY, &e);
  if (!j) {
    ctx_error(ctx, "reply is not JSON: %s", e.text);
    return TWIN_ERR_INVALID;
  }
  json_decref(j);
  if (len + 1 > ctx->reply_cap) {
    char *p = realloc(ctx->reply, len + 1);
    if (!p)
      return TWIN_ERR_NOMEM;
    ctx->reply = p;
    ctx->reply_cap = len + 1;
  }
  memcpy(ctx->reply, json, len);
  ctx->reply[len] = 0;
  ctx->reply_len = len;
  return TWIN_OK;
}

static int api_set_error(twin_ctx *ctx, const char *message)
{
  if (ctx && message) {
    ctx_error(ctx, "%s", message); /* shown to people, sent as JSON */
  }
  return TWIN_OK;
}

static int api_query_plugin(twin_ctx *ctx, const char *plugin, const char *req,
                            size_t len, twin_text_cb cb, void *ud)
{
  if (!ctx || !plugin || !req || !cb)
    return TWIN_ERR_INVALID;
  if (ctx->depth >= MAX_QUERY_DEPTH) {
    ctx_error(ctx, "query_plugin nested more than %d deep", MAX_QUERY_DEPTH);
    return TWIN_ERR_INVALID;
  }
  core_instance *other = core_host_instance(ctx->host, ctx->town->id, plugin);
  if (!other || !core_instance_usable(ctx->host, other, NULL) ||
      !other->plugin->desc.query) {
    ctx_error(ctx,
              "plugin '%.60s' is not enabled for town '%s' or has no query",
              plugin, ctx->town->id);
    return TWIN_ERR_NOT_FOUND;
  }
  twin_ctx sub;
  core_ctx_init(&sub, ctx->host, other, CORE_CTX_READ, ctx->view.txn,
                ctx->view.ov);
  sub.may_reply = 1;
  sub.depth = ctx->depth + 1;
  int rc = other->plugin->desc.query(other->inst, &sub, req, len);
  if (!rc) {
    rc = cb(ud, sub.reply ? sub.reply : "null", sub.reply ? sub.reply_len : 4);
    if (rc == TWIN_STOP)
      rc = TWIN_OK;
  } else
    ctx_error(ctx, "%s: %s", plugin,
              sub.error[0] ? sub.error : core_status_message(rc));
  core_ctx_done(&sub);
  return rc;
}

static int api_log(twin_ctx *ctx, twin_level level, const char *message)
{
  if (ctx && message && level_name(level))
    core_log(level, ctx->town->id, ctx->plugin, "%s", message);
  return TWIN_OK;
}

static twin_time api_now(twin_ctx *ctx)
{
  (void)ctx;
  return core_now_ms();
}

static int api_town_info(twin_ctx *ctx, const char **id, const char **name,
                         const char **tz)
{
  if (!ctx)
    return TWIN_ERR_INVALID;
  if (id)
    *id = ctx->town->id;
  if (name)
    *name = ctx->town->name;
  if (tz)
    *tz = ctx->town->timezone;
  return TWIN_OK;
}

static int api_local_time(twin_ctx *ctx, twin_time t, twin_local *out)
{
  if (!ctx || !out)
    return TWIN_ERR_INVALID;
  twin_time sec = t / 1000 - (t % 1000 < 0);
  struct tm tm;
  /* Any int64 ms is within core_tz's range and a year of int32. */
  if (core_tz_local(core_tz_get_or_utc(ctx->town->timezone), sec, &tm) !=
      TWIN_OK) {
    ctx_error(ctx, "local_time: %lld ms is out of range", (long long)t);
    return TWIN_ERR_INVALID;
  }
  out->year = tm.tm_year + 1900;
  out->month = tm.tm_mon + 1;
  out->day = tm.tm_mday;
  out->hour = tm.tm_hour;
  out->minute = tm.tm_min;
  out->second = tm.tm_sec;
  out->weekday = tm.tm_wday;
  out->yday = tm.tm_yday;
  out->utc_offset_s = (int32_t)tm.tm_gmtoff;
  out->is_dst = tm.tm_isdst > 0;
  return TWIN_OK;
}

static int api_call_script(twin_ctx *ctx, const char *function,
                           const char *args, size_t len, twin_text_cb cb,
                           void *ud)
{
  if (!ctx || !function || !args || !cb)
    return TWIN_ERR_INVALID;
  core_script *s = core_host_script(ctx->host, ctx->town);
  if (!s) {
    ctx_error(ctx, "town '%s' has no rules loaded, so no function '%.60s'",
              ctx->town->id, function);
    return TWIN_ERR_NOT_FOUND;
  }
  return core_script_call(s, ctx, function, args, len, cb, ud);
}

void core_api_init(twin_host_api *api)
{
  memset(api, 0, sizeof *api);
  api->struct_size = sizeof *api;
  api->abi_major = TWIN_ABI_MAJOR;
  api->abi_minor = TWIN_ABI_MINOR;
  api->entity_put = api_entity_put;
  api->entity_get = api_entity_get;
  api->entity_attrs = api_entity_attrs;
  api->entity_delete = api_entity_delete;
  api->entity_iterate = api_entity_iterate;
  api->obs_append = api_obs_append;
  api->history_range = api_history_range;
  api->kv_put = api_kv_put;
  api->kv_get = api_kv_get;
  api->kv_delete = api_kv_delete;
  api->emit = api_emit;
  api->respond = api_respond;
  api->set_error = api_set_error;
  api->query_plugin = api_query_plugin;
  api->log = api_log;
  api->now = api_now;
  api->town_info = api_town_info;
  api->call_script = api_call_script;
  api->local_time = api_local_time;
}
