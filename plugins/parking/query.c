/*
 * query.c — the parking plugin's queries (now, lot, profile, forecast,
 * guidance) and their JSON replies.
 */
#include "parking.h"

/* ------------------------------------------------------------------------ */
/* Replies                                                                  */
/* ------------------------------------------------------------------------ */

int park_respond_json(parking *p, twin_ctx *ctx, json_t *reply)
{
  char *text;
  int rc;
  if (!reply)
    return park_fail(p, ctx, TWIN_ERR_NOMEM, "out of memory");
  text = json_dumps(reply,
                    JSON_COMPACT | JSON_ENCODE_ANY | JSON_REAL_PRECISION(12));
  json_decref(reply);
  if (!text)
    return park_fail(p, ctx, TWIN_ERR_NOMEM, "out of memory");
  rc = p->api->respond(ctx, text, strlen(text));
  free(text);
  if (rc != TWIN_OK)
    return park_fail(p, ctx, rc, "respond failed: %s", park_status_name(rc));
  return TWIN_OK;
}

static json_t *str_or_null(const char *s)
{
  json_t *j = s ? json_string(s) : NULL;
  return j ? j : json_null();
}

/* A lot's current state as a reply object. */
json_t *park_lot_json(const lot *l)
{
  json_t *o = json_object();
  if (!o)
    return NULL;
  json_object_set_new(o, "id", json_string(l->id));
  json_object_set_new(o, "type", json_string(l->type));
  json_object_set_new(o, "name", str_or_null(l->name));
  json_object_set_new(o, "lat", l->has_pos ? json_real(l->lat) : json_null());
  json_object_set_new(o, "lon", l->has_pos ? json_real(l->lon) : json_null());
  json_object_set_new(o, "total",
                      l->has_total ? json_integer(l->total) : json_null());
  json_object_set_new(o, "free",
                      l->has_free ? json_integer(l->free) : json_null());
  json_object_set_new(o, "occupancy",
                      l->has_occ ? json_real(l->occ) : json_null());
  json_object_set_new(o, "status", str_or_null(l->status));
  json_object_set_new(o, "category", str_or_null(l->category));
  json_object_set_new(o, "price",
                      l->has_price ? json_real(l->price) : json_null());
  json_object_set_new(o, "time",
                      l->has_free ? park_time_to_json(l->time) : json_null());
  return o;
}

static const lot *lot_find(const lots *ls, const char *id)
{
  size_t i;
  for (i = 0; i < ls->n; i++)
    if (!strcmp(ls->v[i].id, id))
      return &ls->v[i];
  return NULL;
}

/* Request fields. */
int park_req_time(parking *p, twin_ctx *ctx, const json_t *req, const char *key,
                  twin_time def, int required, twin_time *out)
{
  const json_t *v = json_object_get(req, key);
  if (!v) {
    if (required)
      return park_fail(p, ctx, TWIN_ERR_INVALID, "%s: missing", key);
    *out = def;
    return TWIN_OK;
  }
  if (!park_json_time(v, out))
    return park_fail(p, ctx, TWIN_ERR_INVALID,
                     "%s: expected an RFC 3339 time or integer milliseconds",
                     key);
  return TWIN_OK;
}

int park_req_num(parking *p, twin_ctx *ctx, const json_t *req, const char *key,
                 double lo, double hi, double *out)
{
  const json_t *v = json_object_get(req, key);
  if (!json_is_number(v) || json_number_value(v) < lo ||
      json_number_value(v) > hi)
    return park_fail(p, ctx, TWIN_ERR_INVALID, "%s: expected a number %g..%g",
                     key, lo, hi);
  *out = json_number_value(v);
  return TWIN_OK;
}

/* The lot a request names ("lot"), from ls. */
int park_req_lot(parking *p, twin_ctx *ctx, const json_t *req, const lots *ls,
                 const lot **out)
{
  const json_t *v = json_object_get(req, "lot");
  if (!park_valid_name(v))
    return park_fail(p, ctx, TWIN_ERR_INVALID, "lot: expected a lot id");
  *out = lot_find(ls, json_string_value(v));
  if (!*out) {
    char msg[MSG_MAX];
    snprintf(msg, sizeof msg, "lot '%.*s': no such lot (the op now lists them)",
             park_shown_len(json_string_value(v), 60), json_string_value(v));
    if (TWIN_HAS_API(p->api, fail))
      p->api->fail(ctx, "unknown_lot", "lot", msg);
    else
      p->api->set_error(ctx, msg);
    return TWIN_ERR_NOT_FOUND;
  }
  return TWIN_OK;
}

/* ------------------------------------------------------------------------ */
/* Queries                                                                  */
/* ------------------------------------------------------------------------ */

static int query_now(parking *p, twin_ctx *ctx, const lots *ls)
{
  json_t *arr = json_array();
  size_t i;
  for (i = 0; arr && i < ls->n; i++)
    if (json_array_append_new(arr, park_lot_json(&ls->v[i]))) {
      json_decref(arr);
      arr = NULL;
    }
  return park_respond_json(p, ctx,
                           arr ? json_pack("{s:o}", "lots", arr) : NULL);
}

static int query_lot(parking *p, twin_ctx *ctx, const json_t *req,
                     const lots *ls)
{
  const lot *l;
  twin_time now = p->api->now(ctx), from, to;
  series fr, oc;
  json_t *hist, *o;
  size_t i, j;
  int rc;
  if ((rc = park_req_lot(p, ctx, req, ls, &l)) ||
      (rc = park_req_time(p, ctx, req, "from", now - DAY_MS, 0, &from)) ||
      (rc = park_req_time(p, ctx, req, "to", now + 1, 0, &to)))
    return rc;
  if (from >= to)
    return park_fail(p, ctx, TWIN_ERR_INVALID, "from must be before to");
  rc = park_series_load(p, ctx, l, "availableSpotNumber", from, to, &fr);
  if (rc == TWIN_OK)
    rc = park_series_load(p, ctx, l, "occupancy", from, to, &oc);
  else
    memset(&oc, 0, sizeof oc);
  hist = json_array();
  for (i = 0, j = 0; rc == TWIN_OK && hist && i < fr.n; i++) {
    while (j < oc.n && oc.t[j] < fr.t[i])
      j++;
    json_array_append_new(
        hist, json_pack("{s:o,s:I,s:o}", "time", park_time_to_json(fr.t[i]),
                        "free", (json_int_t)fr.v[i], "occupancy",
                        j < oc.n && oc.t[j] == fr.t[i] ? json_real(oc.v[j])
                                                       : json_null()));
  }
  park_series_free(&fr);
  park_series_free(&oc);
  if (rc != TWIN_OK) {
    json_decref(hist);
    return park_fail(p, ctx, rc, "history of lot '%s': %s", l->id,
                     park_status_name(rc));
  }
  o = park_lot_json(l);
  if (o && hist)
    json_object_set_new(o, "history", hist);
  else
    json_decref(hist);
  return park_respond_json(p, ctx, o);
}

static int query_profile(parking *p, twin_ctx *ctx, const json_t *req,
                         const lots *ls)
{
  const lot *l;
  const char *tz = park_town_tz(p, ctx);
  twin_time now = p->api->now(ctx), from, to;
  profile pr;
  json_t *days;
  int rc, w, h;
  if ((rc = park_req_lot(p, ctx, req, ls, &l)) ||
      (rc = park_req_time(p, ctx, req, "from", now - 4 * WEEK_MS, 0, &from)) ||
      (rc = park_req_time(p, ctx, req, "to", now + 1, 0, &to)))
    return rc;
  if (from >= to)
    return park_fail(p, ctx, TWIN_ERR_INVALID, "from must be before to");
  if ((rc = park_profile_build(p, ctx, l, from, to, &pr)))
    return park_fail(p, ctx, rc, "profile of lot '%s': %s", l->id,
                     park_status_name(rc));
  days = json_array();
  for (w = 0; days && w < 7; w++) {
    json_t *hours = json_array();
    for (h = 0; hours && h < 24; h++)
      json_array_append_new(hours, pr.hours[w][h] ? json_real(pr.mean[w][h])
                                                  : json_null());
    json_array_append_new(days, hours ? hours : json_null());
  }
  return park_respond_json(
      p, ctx,
      days ? json_pack("{s:s,s:s,s:s,s:I,s:o}", "lot", l->id, "timezone", tz,
                       "weekday0", "Sunday", "samples", (json_int_t)pr.samples,
                       "profile", days)
           : NULL);
}

static json_t *forecast_json(const lot *l, twin_time t, const forecast *f)
{
  return json_pack("{s:s,s:o,s:i,s:i,s:s,s:o,s:f,s:I,s:f,s:I,s:I}", "lot",
                   l->id, "time", park_time_to_json(t), "weekday", f->wday,
                   "hour", f->hour, "basis", f->basis, "profile_occupancy",
                   f->has_profile ? json_real(f->profile_occ) : json_null(),
                   "deviation", f->deviation, "deviation_samples",
                   (json_int_t)f->dev_samples, "expected_occupancy", f->occ,
                   "expected_free", (json_int_t)f->free_, "total",
                   (json_int_t)l->total);
}

static int query_forecast(parking *p, twin_ctx *ctx, const json_t *req,
                          const lots *ls)
{
  const lot *l;
  twin_time now = p->api->now(ctx), t;
  forecast f;
  int rc;
  if ((rc = park_req_lot(p, ctx, req, ls, &l)) ||
      (rc = park_req_time(p, ctx, req, "time", 0, 1, &t)))
    return rc;
  if ((rc = park_forecast_lot(p, ctx, l, t, now, &f)))
    return park_fail(p, ctx, rc, "forecast of lot '%s': %s", l->id,
                     park_status_name(rc));
  return park_respond_json(p, ctx, forecast_json(l, t, &f));
}

typedef struct price_reply {
  double v;
  int ok;
} price_reply;

static int price_cb(void *ud, const char *json, size_t len)
{
  price_reply *pr = ud;
  json_t *j = json_loadb(json, len, JSON_DECODE_ANY, NULL);
  if (json_is_number(j) && json_number_value(j) >= 0) {
    pr->v = json_number_value(j);
    pr->ok = 1;
  }
  json_decref(j);
  return TWIN_OK;
}

/* The hourly price of lot l at local hour: the town's "price" rule when it
 * has one, else the lot's static price (0 when none). */
static double lot_price(parking *p, twin_ctx *ctx, const lot *l, twin_time t,
                        const char **source)
{
  char *args;
  json_t *a;
  price_reply pr = {0, 0};
  int rc = TWIN_ERR_UNSUPPORTED;
  /* The moment itself, not its hour: the rule then knows the weekday too
   * (a Sunday or market-day price). */
  a = json_pack("[s,I]", l->id, (json_int_t)t);
  args = a ? json_dumps(a, JSON_COMPACT) : NULL;
  json_decref(a);
  if (args && p->api->call_script)
    rc = p->api->call_script(ctx, "price", args, strlen(args), price_cb, &pr);
  free(args);
  if (rc == TWIN_OK && pr.ok) {
    *source = "script";
    return pr.v;
  }
  *source = l->has_price ? "static" : "none";
  return l->has_price ? l->price : 0;
}

typedef struct cand {
  const lot *l;
  double dist, walk_min, price, score;
  int64_t expected;
  const char *price_src;
} cand;

static int cand_cmp(const void *a, const void *b)
{
  const cand *x = a, *y = b;
  if (x->score != y->score)
    return x->score < y->score ? -1 : 1;
  return strcmp(x->l->id, y->l->id);
}

/*
 * Guidance: lots with space near a point, ranked by a cost in minutes
 * (lower is better): walk_min + 5 × price per hour + 50 / (expected_free +
 * 1). Walking dominates near the point; price and scarcity break ties
 * between lots a few minutes apart.
 */
static int query_guidance(parking *p, twin_ctx *ctx, const json_t *req,
                          const lots *ls)
{
  twin_time now = p->api->now(ctx), t;
  double lat = 0, lon = 0;
  json_int_t limit = 5;
  const json_t *lj = json_object_get(req, "limit");
  cand *cs;
  size_t i, n = 0;
  local_hour lh;
  json_t *arr;
  int rc, future;
  if ((rc = park_req_num(p, ctx, req, "lat", -90, 90, &lat)) ||
      (rc = park_req_num(p, ctx, req, "lon", -180, 180, &lon)) ||
      (rc = park_req_time(p, ctx, req, "time", now, 0, &t)))
    return rc;
  if (lj) {
    if (!json_is_integer(lj) || json_integer_value(lj) < 1 ||
        json_integer_value(lj) > 100)
      return park_fail(p, ctx, TWIN_ERR_INVALID,
                       "limit: expected an integer 1..100");
    limit = json_integer_value(lj);
  }
  future = t > now + STEP_MS;
  if (!park_local_hours(p, ctx, &t, 1, &lh))
    return park_fail(p, ctx, TWIN_ERR_INTERNAL,
                     "local time of 'time' unavailable");
  cs = calloc(ls->n ? ls->n : 1, sizeof *cs);
  if (!cs)
    return park_fail(p, ctx, TWIN_ERR_NOMEM, "out of memory");
  for (i = 0; i < ls->n; i++) {
    const lot *l = &ls->v[i];
    cand *c = &cs[n];
    if (!l->has_pos || !l->has_total ||
        (l->status && !strcmp(l->status, "closed")))
      continue;
    if (future) {
      forecast f;
      if ((rc = park_forecast_lot(p, ctx, l, t, now, &f))) {
        free(cs);
        return park_fail(p, ctx, rc, "forecast of lot '%s': %s", l->id,
                         park_status_name(rc));
      }
      c->expected = f.free_;
    } else {
      if (!l->has_free)
        continue;
      c->expected = l->free;
    }
    if (c->expected <= 0)
      continue;
    c->l = l;
    c->dist = twinaux_distance_m(lat, lon, l->lat, l->lon);
    c->walk_min = c->dist / p->walk_speed / 60.0;
    c->price = lot_price(p, ctx, l, t, &c->price_src);
    c->score = c->walk_min + 5.0 * c->price + 50.0 / ((double)c->expected + 1);
    n++;
  }
  qsort(cs, n, sizeof *cs, cand_cmp);
  arr = json_array();
  for (i = 0; arr && i < n && i < (size_t)limit; i++)
    json_array_append_new(
        arr, json_pack("{s:s,s:s*,s:f,s:f,s:I,s:f,s:s,s:f}", "lot", cs[i].l->id,
                       "name", cs[i].l->name, "distance_m", round(cs[i].dist),
                       "walk_min", round(cs[i].walk_min * 10) / 10,
                       "expected_free", (json_int_t)cs[i].expected, "price",
                       cs[i].price, "price_source", cs[i].price_src, "score",
                       round(cs[i].score * 100) / 100));
  free(cs);
  return park_respond_json(
      p, ctx,
      arr ? json_pack("{s:o,s:o,s:s,s:o}", "time", park_time_to_json(t),
                      "forecast", json_boolean(future), "ranking",
                      "walk_min + 5*price + 50/(free+1)", "lots", arr)
          : NULL);
}

int parking_query(void *instance, twin_ctx *ctx, const char *request,
                  size_t len)
{
  parking *p = instance;
  json_error_t jerr;
  json_t *req;
  const char *op;
  lots ls;
  int rc;
  req = json_loadb(request, len, 0, &jerr);
  if (!req)
    return park_fail(p, ctx, TWIN_ERR_PARSE, "line %d, column %d: %s",
                     jerr.line, jerr.column, jerr.text);
  op = json_string_value(json_object_get(req, "op"));
  if (!op) {
    json_decref(req);
    return park_fail(p, ctx, TWIN_ERR_INVALID,
                     "expected {\"op\": ...} with op one of now, lot, profile, "
                     "forecast, guidance");
  }
  if (strcmp(op, "now") && strcmp(op, "lot") && strcmp(op, "profile") &&
      strcmp(op, "forecast") && strcmp(op, "guidance")) {
    rc = park_fail(p, ctx, TWIN_ERR_INVALID,
                   "unknown op '%.*s' (known: now, lot, profile, forecast, "
                   "guidance)",
                   park_shown_len(op, 60), op);
    json_decref(req);
    return rc;
  }
  if ((rc = park_lots_load(p, ctx, &ls)) != TWIN_OK) {
    json_decref(req);
    return park_fail(p, ctx, rc, "reading the lots failed: %s",
                     park_status_name(rc));
  }
  if (!strcmp(op, "now"))
    rc = query_now(p, ctx, &ls);
  else if (!strcmp(op, "lot"))
    rc = query_lot(p, ctx, req, &ls);
  else if (!strcmp(op, "profile"))
    rc = query_profile(p, ctx, req, &ls);
  else if (!strcmp(op, "forecast"))
    rc = query_forecast(p, ctx, req, &ls);
  else
    rc = query_guidance(p, ctx, req, &ls);
  park_lots_free(&ls);
  json_decref(req);
  return rc;
}
