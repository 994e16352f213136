/*
 * hostapi.c — the host services a plugin calls through twin_host_api:
 * entities, history, plugin kv, events, replies, cross-plugin queries, log,
 * clock, local time. Every call reads through the context's view and stages
 * writes in its overlay; nothing here commits. Arguments from plugins are
 * checked, never trusted: a bad call returns a status, it does not crash the
 * host.
 */
#include "crash.h"
#include "ctx.h"
#include "media.h"
#include "pipeline.h"
#include "script.h"
#include "tz.h"

#include <jansson.h>
#include <math.h>
#include <pthread.h>
#include <stddef.h>
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

const char *core_ctx_reason(const twin_ctx *ctx, int status, char *buf,
                            size_t size)
{
  if (ctx->error[0] && ctx->detail[0] && !strstr(ctx->error, ctx->detail))
    snprintf(buf, size, "%s (host: %s)", ctx->error, ctx->detail);
  else if (ctx->error[0])
    snprintf(buf, size, "%s", ctx->error);
  else if (ctx->detail[0])
    snprintf(buf, size, "%s", ctx->detail);
  else
    snprintf(buf, size, "%s", core_status_message(status));
  core_utf8_fix(buf);
  return buf;
}

void core_ctx_fail(const twin_ctx *ctx, int status, core_err *err)
{
  char why[sizeof err->msg];
  core_err_set(err, status, "%s", core_ctx_reason(ctx, status, why, sizeof why));
  core_err_detail(err, ctx->err_code[0] ? ctx->err_code : NULL,
                  ctx->err_field[0] ? ctx->err_field : NULL);
}

/* Say why a host call fails: the host's detail, kept beside whatever the
 * plugin then says (core_ctx_reason). */
static void ctx_error(twin_ctx *ctx, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static void ctx_error(twin_ctx *ctx, const char *fmt, ...)
{
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(ctx->detail, sizeof ctx->detail, fmt, ap);
  va_end(ap);
  core_utf8_fix(ctx->detail);
}

static int writable(twin_ctx *ctx)
{
  if (ctx->mode == CORE_CTX_FETCH) {
    ctx_error(ctx, "fetch cannot write the store: hand documents to the "
                   "pipeline with submit");
    return 0;
  }
  if (ctx->mode == CORE_CTX_READ || !ctx->view.ov) {
    ctx_error(ctx, "writes are not allowed in a query or describe");
    return 0;
  }
  return 1;
}

/* fetch runs outside any transaction: it reads nothing from the store
 * (a read snapshot held while waiting on the network would hold up the
 * writer when the store grows). */
static int readable(twin_ctx *ctx)
{
  if (ctx->mode == CORE_CTX_FETCH) {
    ctx_error(ctx, "fetch cannot read the store (it runs outside any "
                   "transaction); keep what fetch needs in the instance");
    return 0;
  }
  return 1;
}

/* TWIN_ERR_DEADLINE once the call's deadline has passed, checked every
 * 256th step of a scan so scans stay cheap. */
static int scan_deadline(twin_ctx *ctx, size_t *steps)
{
  if (ctx && ctx->deadline_ns && (++*steps & 255) == 0 &&
      core_mono_ns() >= ctx->deadline_ns) {
    ctx_error(ctx, "the call's deadline passed during a scan");
    return TWIN_ERR_DEADLINE;
  }
  return TWIN_OK;
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

static int call_entity_put(twin_ctx *ctx, const char *type, const char *id,
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

static int call_obs_append(twin_ctx *ctx, const char *type, const char *id,
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

static int call_entity_get(twin_ctx *ctx, const char *type, const char *id,
                          const char *attr, twin_attr *out)
{
  core_key k;
  if (!ctx || !out)
    return TWIN_ERR_INVALID;
  if (!readable(ctx))
    return TWIN_ERR_UNSUPPORTED;
  if (!key_entity(ctx, &k, type, id) || !core_valid_name(attr) ||
      !core_key_part(&k, attr))
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
  twin_ctx *ctx; /* for the deadline */
  size_t steps;
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
  int dl = scan_deadline(s->ctx, &s->steps);
  if (dl)
    return dl;
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

static int call_entity_attrs(twin_ctx *ctx, const char *type, const char *id,
                            twin_attr_cb cb, void *ud)
{
  core_key lo, hi;
  if (!ctx || !cb)
    return TWIN_ERR_INVALID;
  if (!readable(ctx))
    return TWIN_ERR_UNSUPPORTED;
  if (!key_entity(ctx, &lo, type, id))
    return TWIN_ERR_INVALID;
  hi = lo;
  core_key_prefix_end(&hi);
  attrs_scan s = {
      .ctx = ctx, .prefix_len = lo.len, .cb = cb, .ud = ud, .with_time = 1};
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

static int call_entity_delete(twin_ctx *ctx, const char *type, const char *id)
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
  twin_ctx *ctx;
  size_t steps;
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
  int dl = scan_deadline(s->ctx, &s->steps);
  if (dl)
    return dl;
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

static int call_entity_iterate(twin_ctx *ctx, const char *type,
                              twin_entity_cb cb, void *ud)
{
  core_key lo, hi;
  if (!ctx || !cb)
    return TWIN_ERR_INVALID;
  if (!readable(ctx))
    return TWIN_ERR_UNSUPPORTED;
  if (!key_base(ctx, &lo))
    return TWIN_ERR_INVALID;
  iter_scan s = {.ctx = ctx, .prefix_len = lo.len, .cb = cb, .ud = ud};
  if (type && (!core_valid_name(type) || !core_key_part(&lo, type)))
    return TWIN_ERR_INVALID;
  hi = lo;
  core_key_prefix_end(&hi);
  return core_view_scan(&ctx->view, CORE_DB_ENT, &lo, &hi, iter_visit, &s);
}

static int call_history_range(twin_ctx *ctx, const char *type, const char *id,
                             const char *attr, twin_time from, twin_time to,
                             size_t limit, twin_attr_cb cb, void *ud)
{
  core_key lo, hi;
  if (!ctx || !cb)
    return TWIN_ERR_INVALID;
  if (!readable(ctx))
    return TWIN_ERR_UNSUPPORTED;
  if (!key_entity(ctx, &lo, type, id) || !core_valid_name(attr) ||
      !core_key_part(&lo, attr))
    return TWIN_ERR_INVALID;
  if (to <= from)
    return TWIN_OK;
  size_t series_len = lo.len;
  hi = lo;
  core_key_time(&lo, from);
  core_key_time(&hi, to);
  /* The callback gets the attribute name: it is the series' last part. */
  attrs_scan s = {.ctx = ctx,
                  .prefix_len = series_len - strlen(attr) - 1,
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

static int call_kv_put(twin_ctx *ctx, const void *key, size_t key_len,
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

static int call_kv_get(twin_ctx *ctx, const void *key, size_t key_len,
                      const void **val, size_t *val_len)
{
  core_key k;
  if (!ctx || !val || !val_len)
    return TWIN_ERR_INVALID;
  if (!readable(ctx))
    return TWIN_ERR_UNSUPPORTED;
  if (!key_kv(ctx, &k, key, key_len))
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

static int call_kv_delete(twin_ctx *ctx, const void *key, size_t key_len)
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

static int call_emit(twin_ctx *ctx, twin_level level, const char *etype,
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

static int call_respond(twin_ctx *ctx, const char *json, size_t len)
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
  ctx->reply_type[0] = 0;
  return TWIN_OK;
}

static int call_set_error(twin_ctx *ctx, const char *message)
{
  if (ctx && message) { /* shown to people, sent as JSON */
    snprintf(ctx->error, sizeof ctx->error, "%s", message);
    core_utf8_fix(ctx->error);
  }
  return TWIN_OK;
}

static int call_query_plugin(twin_ctx *ctx, const char *plugin, const char *req,
                            size_t len, twin_text_cb cb, void *ud)
{
  if (!ctx || !plugin || !req || !cb)
    return TWIN_ERR_INVALID;
  if (ctx->depth >= MAX_QUERY_DEPTH) {
    ctx_error(ctx, "query_plugin nested more than %d deep", MAX_QUERY_DEPTH);
    return TWIN_ERR_INVALID;
  }
  if (!readable(ctx))
    return TWIN_ERR_UNSUPPORTED;
  core_instance *other = core_host_instance(ctx->host, ctx->town->id, plugin);
  if (!other || !core_instance_usable(ctx->host, other, NULL) ||
      !other->plugin->desc.query) {
    ctx_error(ctx,
              "plugin '%.60s' is not enabled for town '%s' or has no query",
              plugin, ctx->town->id);
    return TWIN_ERR_NOT_FOUND;
  }
  /* The other plugin's op schema applies here as to any request. */
  char *text;
  size_t tlen;
  const core_op *op;
  core_err err;
  int rc = core_host_prepare(other->plugin, TWIN_OP_QUERY, NULL, req, len,
                             &text, &tlen, &op, &err);
  if (rc) {
    ctx_error(ctx, "%s: %s", plugin, err.msg);
    return rc;
  }
  twin_ctx sub;
  core_ctx_init(&sub, ctx->host, other, CORE_CTX_READ, ctx->view.txn,
                ctx->view.ov);
  sub.may_reply = 1;
  sub.depth = ctx->depth + 1;
  sub.op = op;
  sub.deadline_ns = ctx->deadline_ns;
  core_call_mark mark;
  core_call_enter(&mark, ctx->town->id, other->plugin->desc.name, "query");
  rc = other->plugin->desc.query(other->inst, &sub, text, tlen);
  core_call_leave(&mark);
  free(text);
  if (!rc) {
    rc = cb(ud, sub.reply ? sub.reply : "null", sub.reply ? sub.reply_len : 4);
    if (rc == TWIN_STOP)
      rc = TWIN_OK;
  } else {
    char why[1100];
    ctx_error(ctx, "%s: %s", plugin, core_ctx_reason(&sub, rc, why, sizeof why));
  }
  core_ctx_done(&sub);
  return rc;
}

static int call_log(twin_ctx *ctx, twin_level level, const char *message)
{
  if (ctx && message && level_name(level))
    core_log(level, ctx->town->id, ctx->plugin, "%s", message);
  return TWIN_OK;
}

static twin_time call_now(twin_ctx *ctx)
{
  (void)ctx;
  return core_now_ms();
}

static int call_town_info(twin_ctx *ctx, const char **id, const char **name,
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

static int call_local_time(twin_ctx *ctx, twin_time t, twin_local *out)
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

static int call_script_fn(twin_ctx *ctx, const char *function,
                           const char *args, size_t len, twin_text_cb cb,
                           void *ud)
{
  if (!ctx || !function || !args || !cb)
    return TWIN_ERR_INVALID;
  if (!readable(ctx))
    return TWIN_ERR_UNSUPPORTED;
  core_script *s = core_host_script(ctx->host, ctx->town);
  if (!s) {
    ctx_error(ctx, "town '%s' has no rules loaded, so no function '%.60s'",
              ctx->town->id, function);
    return TWIN_ERR_NOT_FOUND;
  }
  return core_script_call(s, ctx, function, args, len, cb, ud);
}

/* ---- since ABI 1.2 -------------------------------------------------------- */

static int call_town(twin_ctx *ctx, twin_town *out)
{
  size_t min = offsetof(twin_town, lon) + sizeof out->lon;
  if (!ctx || !out || out->struct_size < min)
    return TWIN_ERR_INVALID;
  twin_town t;
  memset(&t, 0, sizeof t);
  t.struct_size = out->struct_size < sizeof t ? out->struct_size
                                              : (uint32_t)sizeof t;
  t.id = ctx->town->id;
  t.name = ctx->town->name;
  t.timezone = ctx->town->timezone;
  t.has_location = ctx->town->has_location;
  t.lat = ctx->town->has_location ? ctx->town->lat : 0;
  t.lon = ctx->town->has_location ? ctx->town->lon : 0;
  /* what both sides know; the caller's struct_size stays as it set it */
  uint32_t keep = out->struct_size;
  memcpy(out, &t, t.struct_size);
  out->struct_size = keep;
  return TWIN_OK;
}

/* [a-z0-9_], 1..40 bytes */
static int valid_code(const char *s)
{
  return core_valid_token(s, 40, "_");
}

static int call_fail(twin_ctx *ctx, const char *code, const char *field,
                    const char *message)
{
  if (!ctx)
    return TWIN_ERR_INVALID;
  if (message)
    call_set_error(ctx, message);
  int ok = !code || valid_code(code);
  snprintf(ctx->err_code, sizeof ctx->err_code, "%s", ok && code ? code : "");
  snprintf(ctx->err_field, sizeof ctx->err_field, "%s", field ? field : "");
  core_utf8_fix(ctx->err_field);
  return ok ? TWIN_OK : TWIN_ERR_INVALID;
}

static int call_refuse_item(twin_ctx *ctx, const char *item, const char *field,
                           const char *code, const char *reason)
{
  if (!ctx)
    return TWIN_ERR_INVALID;
  if (!ctx->in_ingest) {
    ctx_error(ctx, "refuse_item works only in ingest");
    return TWIN_ERR_UNSUPPORTED;
  }
  if (!item || !*item || !reason || !*reason || !valid_code(code) ||
      strlen(item) > TWIN_NAME_MAX || !core_utf8_valid(item, strlen(item)) ||
      !core_utf8_valid(reason, strlen(reason)) ||
      (field && !core_utf8_valid(field, strlen(field)))) {
    ctx_error(ctx, "refuse_item: item (1..200 bytes), code ([a-z0-9_], 1..40 "
                   "bytes) and reason are required, as UTF-8");
    return TWIN_ERR_INVALID;
  }
  if (!ctx->items)
    return TWIN_OK; /* a caller that does not collect them */
  char why[600];
  snprintf(why, sizeof why, "%s", reason); /* bounded, like messages */
  core_utf8_fix(why);
  return core_items_add(ctx->items, item, field && *field ? field : NULL, code,
                        why);
}

static int call_respond_as(twin_ctx *ctx, const char *type, const void *data,
                          size_t len)
{
  if (!ctx || (!data && len))
    return TWIN_ERR_INVALID;
  char want[sizeof ctx->reply_type];
  core_media_bare(type, want, sizeof want);
  /* JSON of another name (application/geo+json) must be declared too */
  if (type && strcmp(want, "application/json") &&
      (!ctx->op || !core_media_in_list(ctx->op->reply, type))) {
    if (!ctx->may_reply)
      return TWIN_ERR_UNSUPPORTED;
    ctx_error(ctx,
              "respond_as: '%.60s' is not a reply type of %s (declare it in "
              "the op's reply_type)",
              type, ctx->op ? ctx->op->op.name : "an undeclared op");
    return TWIN_ERR_INVALID;
  }
  if (!type || core_media_is_json(type)) {
    int rc = call_respond(ctx, data ? data : "", len);
    if (!rc && type) {
      char bare[sizeof ctx->reply_type];
      core_media_bare(type, bare, sizeof bare);
      snprintf(ctx->reply_type, sizeof ctx->reply_type, "%s", bare);
    }
    return rc;
  }
  if (!ctx->may_reply)
    return TWIN_ERR_UNSUPPORTED;
  if (len + 1 > ctx->reply_cap) {
    char *p = realloc(ctx->reply, len + 1);
    if (!p)
      return TWIN_ERR_NOMEM;
    ctx->reply = p;
    ctx->reply_cap = len + 1;
  }
  if (len)
    memcpy(ctx->reply, data, len);
  ctx->reply[len] = 0;
  ctx->reply_len = len;
  core_media_bare(type, ctx->reply_type, sizeof ctx->reply_type);
  return TWIN_OK;
}

static int call_doc_type(twin_ctx *ctx, const char **type)
{
  if (!ctx || !type || !ctx->in_ingest)
    return TWIN_ERR_INVALID;
  *type = ctx->doc_type ? ctx->doc_type : "application/json";
  return TWIN_OK;
}

static int call_check_deadline(twin_ctx *ctx, int64_t *left_ms)
{
  if (!ctx)
    return TWIN_ERR_INVALID;
  if (!ctx->deadline_ns) {
    if (left_ms)
      *left_ms = -1;
    return TWIN_OK;
  }
  uint64_t now = core_mono_ns();
  if (now >= ctx->deadline_ns) {
    if (left_ms)
      *left_ms = 0;
    return TWIN_ERR_DEADLINE;
  }
  if (left_ms)
    *left_ms = (int64_t)((ctx->deadline_ns - now) / 1000000u);
  return TWIN_OK;
}

/* A source is the instance it feeds. */
static int call_source(twin_ctx *ctx, twin_source **out)
{
  if (!ctx || !out || !ctx->ci)
    return TWIN_ERR_INVALID;
  *out = (twin_source *)ctx->ci;
  return TWIN_OK;
}

/* A submit that waits for its document's outcome. */
typedef struct waiter {
  pthread_mutex_t mu;
  pthread_cond_t cv;
  int done;
  twin_outcome *out;
} waiter;

static void waiter_done(void *ud, const core_outcome *o)
{
  waiter *w = ud;
  pthread_mutex_lock(&w->mu);
  twin_outcome r;
  memset(&r, 0, sizeof r);
  r.status = o->status;
  r.items_refused = (uint32_t)(o->items ? o->items->total : 0);
  snprintf(r.message, sizeof r.message, "%s", o->reason ? o->reason : "");
  core_utf8_fix(r.message);
  uint32_t keep = w->out->struct_size;
  memcpy(w->out, &r, keep < sizeof r ? keep : sizeof r);
  w->out->struct_size = keep;
  w->done = 1;
  pthread_cond_signal(&w->cv);
  pthread_mutex_unlock(&w->mu);
}

static int call_submit(twin_source *src, const char *type, const char *doc,
                      size_t len, twin_outcome *out)
{
  core_instance *ci = (core_instance *)src;
  size_t min = offsetof(twin_outcome, message) + 1;
  if (!ci || (!doc && len) || (out && out->struct_size < min))
    return TWIN_ERR_INVALID;
  core_host *h = ci->host;
  if (!core_plugin_takes(ci->plugin, type)) {
    core_log(TWIN_LEVEL_WARNING, ci->town->id, ci->plugin->desc.name,
             "submit: media type '%.60s' is not one this plugin takes "
             "(declare it in ingest_types)",
             type);
    return TWIN_ERR_INVALID;
  }
  waiter w = {.out = out};
  if (out) {
    pthread_mutex_init(&w.mu, NULL);
    pthread_cond_init(&w.cv, NULL);
  }
  pthread_rwlock_rdlock(&h->pipeline_lock);
  core_pipeline *p = h->pipeline;
  int rc;
  if (!p)
    rc = TWIN_ERR_UNAVAILABLE;
  else if (core_pipeline_on_writer(p))
    rc = TWIN_ERR_INVALID; /* it would wait for itself */
  else
    rc = core_pipeline_submit_as(
        p, ci,
        type && (!core_media_is_json(type) ||
                 (ci->plugin->desc.ingest_types &&
                  core_media_in_list(ci->plugin->desc.ingest_types, type)))
            ? type
            : NULL,
        doc ? doc : "", len, out ? waiter_done : NULL, out ? &w : NULL);
  pthread_rwlock_unlock(&h->pipeline_lock);
  if (out) {
    if (!rc) {
      pthread_mutex_lock(&w.mu);
      while (!w.done)
        pthread_cond_wait(&w.cv, &w.mu);
      pthread_mutex_unlock(&w.mu);
    }
    pthread_mutex_destroy(&w.mu);
    pthread_cond_destroy(&w.cv);
  }
  return rc;
}

void core_host_calls_init(twin_host_api *api)
{
  memset(api, 0, sizeof *api);
  api->struct_size = sizeof *api;
  api->abi_major = TWIN_ABI_MAJOR;
  api->abi_minor = TWIN_ABI_MINOR;
  api->entity_put = call_entity_put;
  api->entity_get = call_entity_get;
  api->entity_attrs = call_entity_attrs;
  api->entity_delete = call_entity_delete;
  api->entity_iterate = call_entity_iterate;
  api->obs_append = call_obs_append;
  api->history_range = call_history_range;
  api->kv_put = call_kv_put;
  api->kv_get = call_kv_get;
  api->kv_delete = call_kv_delete;
  api->emit = call_emit;
  api->respond = call_respond;
  api->set_error = call_set_error;
  api->query_plugin = call_query_plugin;
  api->log = call_log;
  api->now = call_now;
  api->town_info = call_town_info;
  api->call_script = call_script_fn;
  api->local_time = call_local_time;
  api->town = call_town;
  api->fail = call_fail;
  api->refuse_item = call_refuse_item;
  api->respond_as = call_respond_as;
  api->doc_type = call_doc_type;
  api->check_deadline = call_check_deadline;
  api->source = call_source;
  api->submit = call_submit;
}
