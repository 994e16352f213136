/*
 * ingest.c — documents into the parking plugin: ParkAPI v1 city snapshots,
 * ParkAPI2 lots and items, single observations; plausibility against the
 * config and the stored lot; one implausible lot refused alone; and the
 * feed pull (fetch) that hands new snapshots to the pipeline.
 */
#include "parking.h"

/* ------------------------------------------------------------------------ */
/* Ingest                                                                   */
/* ------------------------------------------------------------------------ */

/* One lot observation as parsed from any input format. Strings point into
 * the parsed document. */

/* A number or a numeric string (ParkAPI2 sends coordinates as strings).
 * 1: ok, 0: absent or null, -1: malformed. */
static int json_num(const json_t *j, double *out)
{
  char *end;
  if (!j || json_is_null(j))
    return 0;
  if (json_is_number(j)) {
    *out = json_number_value(j);
    return 1;
  }
  if (json_is_string(j) && json_string_length(j) > 0 &&
      json_string_length(j) < 40) {
    *out = strtod(json_string_value(j), &end);
    if (*end == '\0' && isfinite(*out))
      return 1;
  }
  return -1;
}

/* A count: an integer (a real with no fraction passes). 1, 0 or -1. */
static int json_count(const json_t *j, int64_t *out)
{
  double x;
  if (!j || json_is_null(j))
    return 0;
  if (json_is_integer(j)) {
    *out = json_integer_value(j);
    return 1;
  }
  if (json_is_real(j)) {
    x = json_real_value(j);
    if (x == floor(x) && fabs(x) < 1e12) {
      *out = (int64_t)x;
      return 1;
    }
  }
  return -1;
}

static int bad(run *r, const rec *c, const char *field, const char *what)
{
  return park_fail_field(r->p, r->ctx, TWIN_ERR_PARSE, field, "%s.%s: %s",
                         c->where, field, what);
}

/* Fields shared by every format: the id, counts, an optional name, place. */
int park_parse_common(run *r, rec *c, const json_t *o, const char *id_key,
                      const char *total_key, const char *free_key,
                      const char *free_key2)
{
  const json_t *v;
  int k;
  if (!json_is_object(o))
    return park_fail(r->p, r->ctx, TWIN_ERR_PARSE, "%s: expected an object",
                     c->where);
  v = json_object_get(o, id_key);
  if (json_is_integer(v))
    return bad(r, c, id_key, "expected a string");
  if (!park_valid_name(v))
    return bad(r, c, id_key, "expected a string of 1..200 bytes");
  c->id = json_string_value(v);
  if ((k = json_count(json_object_get(o, total_key), &c->total)) < 0)
    return bad(r, c, total_key, "expected an integer");
  c->has_total = k;
  k = json_count(json_object_get(o, free_key), &c->free);
  if (k == 0 && free_key2)
    k = json_count(json_object_get(o, free_key = free_key2), &c->free);
  if (k < 0)
    return bad(r, c, free_key, "expected an integer");
  c->has_free = k;
  v = json_object_get(o, "name");
  if (v && !json_is_null(v)) {
    if (!json_is_string(v) || json_string_length(v) > 200)
      return bad(r, c, "name", "expected a string of at most 200 bytes");
    c->name = json_string_value(v);
  }
  return TWIN_OK;
}

int park_parse_pos(run *r, rec *c, const json_t *lat, const json_t *lon)
{
  int a = json_num(lat, &c->lat), b = json_num(lon, &c->lon);
  if (a < 0 || b < 0 || a != b)
    return bad(r, c, "lat", "expected numbers lat and lon together");
  if (a && (c->lat < -90 || c->lat > 90 || c->lon < -180 || c->lon > 180))
    return park_fail(r->p, r->ctx, TWIN_ERR_REJECTED,
                     "lot '%.*s': position %g,%g is off the globe",
                     park_shown_len(c->id, 60), c->id, c->lat, c->lon);
  c->has_pos = a;
  return TWIN_OK;
}

/* "open", "closed", "nodata"/"unknown" in any case. */
static int parse_state(run *r, rec *c, const json_t *v, const char *field)
{
  const char *s;
  if (!v || json_is_null(v))
    return TWIN_OK;
  if (!json_is_string(v))
    return bad(r, c, field, "expected a string");
  s = json_string_value(v);
  if (!strcasecmp(s, "closed"))
    c->closed = 1;
  else if (!strcasecmp(s, "nodata") || !strcasecmp(s, "unknown"))
    c->nodata = 1;
  else if (strcasecmp(s, "open") && strcasecmp(s, "spacesAvailable") &&
           strcasecmp(s, "almostFull") && strcasecmp(s, "full"))
    return bad(r, c, field, "expected open, closed, nodata or unknown");
  return TWIN_OK;
}

static int parse_rec_time(run *r, rec *c, const json_t *v, const char *field,
                          twin_time def)
{
  if (!v || json_is_null(v)) {
    c->time = def;
    return TWIN_OK;
  }
  if (!park_json_time(v, &c->time))
    return bad(r, c, field,
               "expected an RFC 3339 time or integer milliseconds");
  return TWIN_OK;
}

const char *park_type_of_kind(const char *kind)
{
  if (!kind)
    return NULL;
  if (strstr(kind, "ON_STREET") || strstr(kind, "street") ||
      strstr(kind, "Street") || strstr(kind, "Stra"))
    return T_GROUP;
  return T_OFF;
}

/* A ParkAPI v1 lot: id, name, coords{lat,lng}, total, free, state,
 * lot_type. */
static int parse_v1(run *r, rec *c, const json_t *o, twin_time doc_time)
{
  const json_t *co;
  int rc;
  if ((rc = park_parse_common(r, c, o, "id", "total", "free", NULL)))
    return rc;
  co = json_object_get(o, "coords");
  if (co && !json_is_null(co)) {
    if (!json_is_object(co))
      return bad(r, c, "coords", "expected {\"lat\", \"lng\"}");
    if ((rc = park_parse_pos(r, c, json_object_get(co, "lat"),
                             json_object_get(co, "lng"))))
      return rc;
  }
  if ((rc = parse_state(r, c, json_object_get(o, "state"), "state")) ||
      (rc = parse_rec_time(r, c, json_object_get(o, "last_updated"),
                           "last_updated", doc_time)))
    return rc;
  co = json_object_get(o, "lot_type");
  if (co && !json_is_null(co)) {
    if (!json_is_string(co) || json_string_length(co) > 100)
      return bad(r, c, "lot_type", "expected a string");
    c->category = json_string_value(co);
    c->type = park_type_of_kind(c->category);
  }
  return TWIN_OK;
}

/* A ParkAPI2 lot or item: id, capacity, num_free / realtime_free_capacity,
 * status / realtime_opening_status, timestamp / realtime_data_updated_at,
 * lat, lon, type. */
static int parse_v2(run *r, rec *c, const json_t *o)
{
  const json_t *v;
  const char *tkey = "timestamp";
  int rc;
  if ((rc = park_parse_common(r, c, o, "id", "capacity",
                              "realtime_free_capacity", "num_free")))
    return rc;
  if ((rc = park_parse_pos(r, c, json_object_get(o, "lat"),
                           json_object_get(o, "lon"))))
    return rc;
  v = json_object_get(o, "realtime_opening_status");
  if ((rc = parse_state(r, c, v ? v : json_object_get(o, "status"),
                        v ? "realtime_opening_status" : "status")))
    return rc;
  v = json_object_get(o, "realtime_data_updated_at");
  if (v)
    tkey = "realtime_data_updated_at";
  else
    v = json_object_get(o, "timestamp");
  if ((rc = parse_rec_time(r, c, v, tkey, r->now)))
    return rc;
  v = json_object_get(o, "type");
  if (v && !json_is_null(v)) {
    if (!json_is_string(v) || json_string_length(v) > 100)
      return bad(r, c, "type", "expected a string");
    c->category = json_string_value(v);
    c->type = park_type_of_kind(c->category);
  }
  v = json_object_get(o, "has_realtime_data");
  if (json_is_false(v))
    c->has_free = 0;
  return TWIN_OK;
}

/* A single observation: {"lot", "free", "time", "total"?, "status"?}. */
static int parse_single(run *r, rec *c, const json_t *o)
{
  static const char *const keys[] = {"lot", "free", "time", "total", "status"};
  const char *key;
  json_t *v;
  size_t i;
  int rc;
  json_object_foreach((json_t *)o, key, v)
  {
    for (i = 0; i < 5 && strcmp(key, keys[i]); i++)
      ;
    if (i == 5)
      return park_fail(r->p, r->ctx, TWIN_ERR_PARSE,
                       "%.*s: unknown field (known: lot, free, time, total, "
                       "status)",
                       park_shown_len(key, 60), key);
  }
  if ((rc = park_parse_common(r, c, o, "lot", "total", "free", NULL)))
    return rc;
  if (!c->has_free)
    return bad(r, c, "free", "missing");
  if (!json_object_get(o, "time") || json_is_null(json_object_get(o, "time")))
    return bad(r, c, "time", "missing");
  if ((rc = parse_rec_time(r, c, json_object_get(o, "time"), "time", 0)) ||
      (rc = parse_state(r, c, json_object_get(o, "status"), "status")))
    return rc;
  return TWIN_OK;
}

/* Plausibility against the config and the stored lot, then the writes. */
int park_apply_rec(run *r, rec *c)
{
  parking *p = r->p;
  const char *type;
  int rc, exists;
  lot l;
  int64_t total;
  int has_total;
  twin_attr a[10];
  size_t n = 0;
  char tb[40], sb[40];
  const int idn = park_shown_len(c->id, 60);

  if (c->has_total && (c->total < 0 || c->total > MAX_COUNT))
    return park_fail_field(p, r->ctx, TWIN_ERR_REJECTED, "total",
                           "lot '%.*s': total %" PRId64
                           " is out of range 0..%d",
                           idn, c->id, c->total, MAX_COUNT);
  if (c->has_free && c->free < 0)
    return park_fail_field(p, r->ctx, TWIN_ERR_REJECTED, "free",
                           "lot '%.*s': free %" PRId64 " is negative", idn,
                           c->id, c->free);
  type = park_lot_type_of(p, r->ctx, c->id, &rc);
  if (rc != TWIN_OK)
    return park_fail(p, r->ctx, rc, "lot '%.*s': reading it failed: %s", idn,
                     c->id, park_status_name(rc));
  exists = type != NULL;
  if (!exists && !p->auto_create && !r->seeding)
    return park_fail_field(p, r->ctx, TWIN_ERR_REJECTED, "id",
                           "lot '%.*s': unknown lot (auto_create is false)",
                           idn, c->id);
  if (!type)
    type = c->type ? c->type : T_OFF;
  memset(&l, 0, sizeof l);
  if (exists)
    rc = park_lot_read(p, r->ctx, type, c->id, &l);
  free(l.id);
  free(l.name);
  free(l.category);
  free(l.status);
  if (rc != TWIN_OK)
    return park_fail(p, r->ctx, rc, "lot '%.*s': reading it failed: %s", idn,
                     c->id, park_status_name(rc));
  total = c->has_total ? c->total : l.total;
  has_total = c->has_total || l.has_total;
  if (c->nodata)
    c->has_free = 0;
  if (c->has_free && !has_total)
    return park_fail_field(p, r->ctx, TWIN_ERR_REJECTED, "total",
                           "lot '%.*s': free given but no total known", idn,
                           c->id);
  if (c->has_free && c->free > total)
    return park_fail_field(p, r->ctx, TWIN_ERR_REJECTED, "free",
                           "lot '%.*s': free %" PRId64 " > total %" PRId64, idn,
                           c->id, c->free, total);
  if (c->time > r->now + p->future_slack_ms) {
    park_fmt_time(tb, sizeof tb, c->time);
    return park_fail_field(p, r->ctx, TWIN_ERR_REJECTED, "time",
                           "lot '%.*s': time %s is more than %" PRId64
                           " s in the future",
                           idn, c->id, tb, p->future_slack_ms / 1000);
  }
  if (c->has_free && l.has_free && c->time < l.time) {
    park_fmt_time(tb, sizeof tb, c->time);
    park_fmt_time(sb, sizeof sb, l.time);
    return park_fail_field(
        p, r->ctx, TWIN_ERR_REJECTED, "time",
        "lot '%.*s': time %s is older than the stored observation "
        "at %s",
        idn, c->id, tb, sb);
  }

  if (c->name)
    a[n++] =
        (twin_attr){"name", c->time, twin_string(c->name, strlen(c->name))};
  if (c->has_pos) {
    a[n++] = (twin_attr){"lat", c->time, twin_number(c->lat)};
    a[n++] = (twin_attr){"lon", c->time, twin_number(c->lon)};
  }
  if (c->category)
    a[n++] = (twin_attr){"category", c->time,
                         twin_string(c->category, strlen(c->category))};
  if (c->opening)
    a[n++] = (twin_attr){"openingHours", c->time,
                         twin_string(c->opening, strlen(c->opening))};
  if (c->has_price)
    a[n++] = (twin_attr){"price", c->time, twin_number(c->price)};
  if (has_total)
    a[n++] = (twin_attr){"totalSpotNumber", c->time, twin_integer(total)};
  if (c->has_free || c->closed || !exists) {
    const char *st =
        park_derive_status(p, c->closed, c->has_free, c->free, total);
    a[n++] = (twin_attr){"status", c->time, twin_string(st, strlen(st))};
  }
  if (c->has_free) {
    double occ = total > 0 ? 1.0 - (double)c->free / (double)total : 1.0;
    twin_attr o[2] = {{"availableSpotNumber", c->time, twin_integer(c->free)},
                      {"occupancy", c->time, twin_number(occ)}};
    a[n++] = o[0];
    a[n++] = o[1];
    rc = p->api->obs_append(r->ctx, type, c->id, o, 2);
    if (rc != TWIN_OK)
      return park_fail(p, r->ctx, rc, "lot '%.*s': history write failed: %s",
                       idn, c->id, park_status_name(rc));
  }
  if (n == 0)
    return TWIN_OK;
  rc = p->api->entity_put(r->ctx, type, c->id, a, n);
  if (rc != TWIN_OK)
    return park_fail(p, r->ctx, rc, "lot '%.*s': write failed: %s", idn, c->id,
                     park_status_name(rc));
  return TWIN_OK;
}

/* Which format root is in, honouring a forced feed_format. */
static int detect(parking *p, const json_t *root)
{
  const json_t *lotsj = json_object_get(root, "lots"), *first;
  if (json_is_array(json_object_get(root, "items")))
    return FMT_V2;
  if (!json_is_array(lotsj))
    return json_object_get(root, "lot") ? 0 : -1;
  if (p->feed_format != FMT_AUTO)
    return p->feed_format;
  first = json_array_get(lotsj, 0);
  if (json_object_get(first, "capacity") ||
      json_object_get(first, "num_free") ||
      json_object_get(first, "realtime_free_capacity"))
    return FMT_V2;
  return FMT_V1;
}

/* Parse and apply one document (ingest). A lot that is malformed or
 * implausible is refused alone; any other failure drops every write of the
 * document. */
static int ingest_doc(parking *p, twin_ctx *ctx, const char *doc, size_t len)
{
  json_error_t jerr;
  json_t *root, *arr, *o;
  run r = {p, ctx, p->api->now(ctx), 0};
  twin_time doc_time = r.now;
  size_t i;
  int fmt, rc = TWIN_OK;
  const char *akey;
  rec c;

  root = json_loadb(doc, len, 0, &jerr);
  if (!root)
    return park_fail(p, ctx, TWIN_ERR_PARSE, "line %d, column %d: %s",
                     jerr.line, jerr.column, jerr.text);
  if (!json_is_object(root) || (fmt = detect(p, root)) < 0) {
    rc =
        park_fail(p, ctx, TWIN_ERR_PARSE,
                  "expected ParkAPI v1 {\"lots\": [...]}, ParkAPI2 {\"items\": "
                  "[...]} or {\"lots\": [...]}, or an observation {\"lot\", "
                  "\"free\", \"time\"}");
    goto done;
  }
  if (fmt == 0) {
    memset(&c, 0, sizeof c);
    snprintf(c.where, sizeof c.where, "observation");
    if (!(rc = parse_single(&r, &c, root)))
      rc = park_apply_rec(&r, &c);
    goto done;
  }
  akey = json_is_array(json_object_get(root, "items")) ? "items" : "lots";
  arr = json_object_get(root, akey);
  if (fmt == FMT_V1) {
    o = json_object_get(root, "last_updated");
    if (o && !json_is_null(o) && !park_json_time(o, &doc_time)) {
      rc = park_fail(p, ctx, TWIN_ERR_PARSE,
                     "last_updated: expected an RFC 3339 time or integer "
                     "milliseconds");
      goto done;
    }
  }
  if (json_array_size(arr) == 0) {
    rc = park_fail(p, ctx, TWIN_ERR_PARSE, "%s: empty", akey);
    goto done;
  }
  /* One implausible lot (a broken sensor) is refused alone: the other
   * lots' readings land (ABI 1.2 refuse_item; an older host gets the
   * whole snapshot refused, as before). */
  int can_refuse = TWIN_HAS_API(p->api, refuse_item), first_status = TWIN_OK;
  size_t stored = 0, refused = 0;
  char first[MSG_MAX] = "";
  json_array_foreach(arr, i, o)
  {
    memset(&c, 0, sizeof c);
    snprintf(c.where, sizeof c.where, "%s[%zu]", akey, i);
    rc = fmt == FMT_V1 ? parse_v1(&r, &c, o, doc_time) : parse_v2(&r, &c, o);
    if (rc == TWIN_OK)
      rc = park_apply_rec(&r, &c);
    if ((rc == TWIN_ERR_PARSE || rc == TWIN_ERR_REJECTED) && can_refuse &&
        !refused) {
      first_status = rc;
      snprintf(first, sizeof first, "%s", park_last_msg);
    }
    if ((rc == TWIN_ERR_PARSE || rc == TWIN_ERR_REJECTED) && can_refuse &&
        p->api->refuse_item(ctx, c.id ? c.id : c.where,
                            park_last_field[0] ? park_last_field : NULL,
                            rc == TWIN_ERR_PARSE ? "malformed" : "implausible",
                            park_last_msg) == TWIN_OK) {
      refused++;
      rc = TWIN_OK;
      continue;
    }
    if (rc != TWIN_OK)
      break;
    stored++;
  }
  if (rc == TWIN_OK && !stored && refused) /* fails as its first lot */
    rc = park_fail(p, ctx, first_status,
                   "every lot of the snapshot was refused (%zu); the first: %s",
                   refused, first);
done:
  json_decref(root);
  return rc;
}

int parking_ingest(void *instance, twin_ctx *ctx, const char *doc, size_t len)
{
  return ingest_doc(instance, ctx, doc, len);
}

/* Pull the ParkAPI feed (on a fetch thread, never the writer) and hand a
 * new snapshot to the pipeline; its ETag counts as seen only once the
 * snapshot was stored, so a rejected one is fetched whole next time. */
int parking_fetch(void *instance, twin_ctx *ctx)
{
  parking *p = instance;
  if (!p->feed_url[0])
    return TWIN_OK;
#ifdef PARKING_HAVE_FEED
  {
    char why[512] = "", *body = NULL;
    size_t len = 0;
    int got, rc;
    twin_outcome out;
    if (!p->feed) {
      /* the pull's timeout: the plugin's, within the host's fetch timeout */
      int64_t left = -1;
      long ms = p->feed_timeout_ms;
      p->api->check_deadline(ctx, &left);
      if (left > 0 && left < ms)
        ms = left < 100 ? 100 : (long)left;
      if (!(p->feed = park_feed_new(p->feed_url, ms)))
        return park_fail(p, ctx, TWIN_ERR_CONFIG,
                         "feed_url must be an http:// or https:// URL (and "
                         "feed_timeout_ms 1..600000)");
    }
    got = park_feed_pull(p->feed, &body, &len, why, sizeof why);
    if (got < 0)
      return park_fail(p, ctx, TWIN_ERR_UNAVAILABLE, "feed: %s", why);
    if (got == 0)
      return TWIN_OK;
    memset(&out, 0, sizeof out);
    out.struct_size = sizeof out;
    rc = p->api->submit(p->src, NULL, body, len, &out);
    free(body);
    if (rc != TWIN_OK)
      return park_fail(p, ctx, rc, "feed: the snapshot could not be queued: %s",
                       park_status_name(rc));
    if (out.status != TWIN_OK)
      return park_fail(p, ctx, out.status,
                       "feed: the snapshot was rejected: %s", out.message);
    park_feed_accept(p->feed);
    return TWIN_OK;
  }
#else
  (void)ctx;
  return park_fail(
      p, ctx, TWIN_ERR_UNSUPPORTED,
      "feed_url is set but this build has no feed support (feed.c)");
#endif
}
