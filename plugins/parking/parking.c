/*
 * parking.c — the "parking" plugin: a town's car parks (OffStreetParking)
 * and on-street zones (ParkingGroup) in FIWARE Smart Data Models terms, fed
 * by ParkAPI v1, ParkAPI2 and single observations, with a history of free
 * spaces and occupancy, a weekday/hour occupancy profile, forecasts,
 * guidance to the best lot near a point, and closure and event scenarios.
 *
 * This file is the plugin's face: its descriptor and declared ops, its
 * config schema, open, close and describe; parking.h says which file does
 * the rest.
 *
 * Built exactly as a third-party plugin is built: it sees only twin/twin.h
 * and twin/twinaux.h and uses jansson internally (libcurl through feed.c).
 * The config is read once in open into an instance that only fetch changes
 * afterwards (the feed handle, one fetch at a time), so queries and
 * scenarios need no lock.
 *
 * Local time comes from the host (api->local_time, ABI 1.1) in the town's
 * zone: pure and thread-safe, so queries on HTTP threads and ingest on the
 * writer thread convert at once without a lock and without touching TZ.
 */
#include "parking.h"

static const char config_schema[] =
    "{\"type\":\"object\",\"additionalProperties\":false,\"properties\":{"
    "\"auto_create\":{\"type\":\"boolean\",\"default\":true,"
    "\"description\":\"false: observations of unknown lots are rejected\"},"
    "\"future_slack_s\":{\"type\":\"integer\",\"minimum\":0,"
    "\"maximum\":86400,\"default\":300,"
    "\"description\":\"reject observations later than now plus this\"},"
    "\"almost_full\":{\"type\":\"number\",\"minimum\":0,\"maximum\":1,"
    "\"default\":0.9,\"description\":\"occupancy from which a lot is "
    "almostFull\"},"
    "\"feed_url\":{\"type\":\"string\",\"maxLength\":2000,\"default\":\"\","
    "\"description\":\"ParkAPI feed pulled on every fetch, by default every "
    "300 s (empty: none)\"},"
    "\"feed_format\":{\"type\":\"string\",\"enum\":[\"auto\",\"parkapi1\","
    "\"parkapi2\"],\"default\":\"auto\"},"
    "\"feed_timeout_ms\":{\"type\":\"integer\",\"minimum\":100,"
    "\"maximum\":60000,\"default\":10000},"
    "\"walking_speed_m_s\":{\"type\":\"number\",\"minimum\":0.1,"
    "\"maximum\":5,\"default\":1.3},"
    "\"lots\":{\"type\":\"array\",\"default\":[],"
    "\"description\":\"static lot definitions, stored when the plugin opens\","
    "\"items\":{\"type\":\"object\",\"additionalProperties\":false,"
    "\"required\":[\"id\"],\"properties\":{"
    "\"id\":{\"type\":\"string\",\"minLength\":1,\"maxLength\":200},"
    "\"name\":{\"type\":\"string\",\"maxLength\":200},"
    "\"lat\":{\"type\":\"number\",\"minimum\":-90,\"maximum\":90},"
    "\"lon\":{\"type\":\"number\",\"minimum\":-180,\"maximum\":180},"
    "\"total\":{\"type\":\"integer\",\"minimum\":0,\"maximum\":1000000},"
    "\"category\":{\"type\":\"string\",\"maxLength\":100},"
    "\"price\":{\"type\":\"number\",\"minimum\":0,\"maximum\":1000},"
    "\"openingHours\":{\"type\":\"string\",\"maxLength\":200}}}}"
    "}}";

/* ------------------------------------------------------------------------ */
/* Open and close                                                           */
/* ------------------------------------------------------------------------ */

static void parking_close(void *instance)
{
  parking *p = instance;
  if (!p)
    return;
#ifdef PARKING_HAVE_FEED
  if (p->feed)
    park_feed_free(p->feed);
#endif
  free(p->feed_url);
  free(p);
}

/* Store the static lots of the config (seeded in open). */
static int seed_lots(parking *p, twin_ctx *ctx, const json_t *arr)
{
  run r = {p, ctx, p->api->now(ctx), 1};
  size_t i;
  json_t *o, *v;
  int rc;
  json_array_foreach(arr, i, o)
  {
    rec c;
    memset(&c, 0, sizeof c);
    snprintf(c.where, sizeof c.where, "lots[%zu]", i);
    if ((rc = park_parse_common(&r, &c, o, "id", "total", "free", NULL)) ||
        (rc = park_parse_pos(&r, &c, json_object_get(o, "lat"),
                             json_object_get(o, "lon"))))
      return rc;
    c.time = r.now;
    c.category = json_string_value(json_object_get(o, "category"));
    c.opening = json_string_value(json_object_get(o, "openingHours"));
    c.type = park_type_of_kind(c.category);
    v = json_object_get(o, "price");
    if (json_is_number(v)) {
      c.price = json_number_value(v);
      c.has_price = 1;
    }
    /* Static data only: no observation, no time check. */
    c.has_free = 0;
    if ((rc = park_apply_rec(&r, &c)))
      return rc;
  }
  return TWIN_OK;
}

static int parking_open(const twin_host_api *api, twin_ctx *ctx,
                        const char *config_json, size_t config_len,
                        void **instance)
{
  parking *p = calloc(1, sizeof *p);
  json_error_t jerr;
  json_t *cfg;
  const char *fmt, *url;
  int rc;
  if (!p)
    return TWIN_ERR_NOMEM;
  p->api = api;
  /* Local hours come from the host: local_time is new in ABI 1.1. */
  if (offsetof(twin_host_api, local_time) >= api->struct_size ||
      !api->local_time) {
    park_fail(
        p, ctx, TWIN_ERR_UNSUPPORTED,
        "this host speaks ABI %u.%u without local_time; the parking plugin "
        "needs a host of ABI 1.1 or later",
        (unsigned)api->abi_major, (unsigned)api->abi_minor);
    free(p);
    return TWIN_ERR_UNSUPPORTED;
  }
  p->auto_create = 1;
  p->future_slack_ms = 300000;
  p->almost_full = 0.9;
  p->feed_timeout_ms = 10000;
  p->walk_speed = 1.3;
  cfg = json_loadb(config_json, config_len, 0, &jerr);
  if (!json_is_object(cfg)) {
    json_decref(cfg);
    park_fail(p, ctx, TWIN_ERR_CONFIG, "config: expected an object");
    free(p);
    return TWIN_ERR_CONFIG;
  }
  if (json_object_get(cfg, "auto_create"))
    p->auto_create = json_is_true(json_object_get(cfg, "auto_create"));
  if (json_is_integer(json_object_get(cfg, "future_slack_s")))
    p->future_slack_ms =
        json_integer_value(json_object_get(cfg, "future_slack_s")) * 1000;
  if (json_is_number(json_object_get(cfg, "almost_full")))
    p->almost_full = json_number_value(json_object_get(cfg, "almost_full"));
  if (json_is_integer(json_object_get(cfg, "feed_timeout_ms")))
    p->feed_timeout_ms =
        (long)json_integer_value(json_object_get(cfg, "feed_timeout_ms"));
  if (json_is_number(json_object_get(cfg, "walking_speed_m_s")))
    p->walk_speed =
        json_number_value(json_object_get(cfg, "walking_speed_m_s"));
  if (p->walk_speed <= 0)
    p->walk_speed = 1.3;
  fmt = json_string_value(json_object_get(cfg, "feed_format"));
  p->feed_format = fmt && !strcmp(fmt, "parkapi1")   ? FMT_V1
                   : fmt && !strcmp(fmt, "parkapi2") ? FMT_V2
                                                     : FMT_AUTO;
  url = json_string_value(json_object_get(cfg, "feed_url"));
  p->feed_url = strdup(url ? url : "");
  if (!p->feed_url) {
    json_decref(cfg);
    parking_close(p);
    return TWIN_ERR_NOMEM;
  }
  /* The feed is pulled by fetch (ABI 1.2), off the writer thread. */
  if (p->feed_url[0] &&
      (!TWIN_HAS_API(api, submit) || api->source(ctx, &p->src) != TWIN_OK)) {
    json_decref(cfg);
    park_fail(
        p, ctx, TWIN_ERR_CONFIG,
        "feed_url needs a host of ABI 1.2 or later (this one speaks %u.%u)",
        (unsigned)api->abi_major, (unsigned)api->abi_minor);
    parking_close(p);
    return TWIN_ERR_CONFIG;
  }
  rc = seed_lots(p, ctx, json_object_get(cfg, "lots"));
  json_decref(cfg);
  if (rc != TWIN_OK) {
    parking_close(p);
    return rc == TWIN_ERR_NOMEM ? rc : TWIN_ERR_CONFIG;
  }
  *instance = p;
  return TWIN_OK;
}

static int count_cb(void *ud, const char *type, const char *id)
{
  (void)type;
  (void)id;
  ++*(size_t *)ud;
  return TWIN_OK;
}

static int parking_describe(void *instance, twin_ctx *ctx)
{
  parking *p = instance;
  size_t n = 0;
  int rc = p->api->entity_iterate(ctx, NULL, count_cb, &n);
  if (rc != TWIN_OK)
    return park_fail(p, ctx, rc, "counting lots failed: %s",
                     park_status_name(rc));
  return park_respond_json(p, ctx,
                           json_pack("{s:s,s:I,s:s,s:b}", "plugin", "parking",
                                     "lots", (json_int_t)n, "feed_url",
                                     p->feed_url, "feed_support",
#ifdef PARKING_HAVE_FEED
                                     1
#else
                                     0
#endif
                                     ));
}

/* The declared ops: the host checks each request against its schema
 * before query or simulate sees it, and documents them. */
#define T_DT "{\"format\":\"date-time\"}"
#define T_LOT                                                                  \
  "\"lot\":{\"type\":\"string\",\"minLength\":1,\"maxLength\":200,"            \
  "\"description\":\"the lot's id\"}"
#define T_LATLON                                                               \
  "\"lat\":{\"type\":\"number\",\"minimum\":-90,\"maximum\":90},"              \
  "\"lon\":{\"type\":\"number\",\"minimum\":-180,\"maximum\":180}"
static const twin_op parking_ops[] = {
    {"now", TWIN_OP_QUERY, TWIN_OP_SAFE, "every lot's current state", NULL,
     NULL, "{}"},
    {"lot", TWIN_OP_QUERY, TWIN_OP_SAFE,
     "one lot with its history (default: the last 24 h)",
     "{\"type\":\"object\",\"additionalProperties\":false,"
     "\"required\":[\"lot\"],\"properties\":{" T_LOT ",\"from\":" T_DT
     ",\"to\":" T_DT "}}",
     NULL, "{\"lot\":\"ph-stadthallen\"}"},
    {"profile", TWIN_OP_QUERY, TWIN_OP_SAFE,
     "a lot's mean occupancy per weekday and hour (default: 4 weeks)",
     "{\"type\":\"object\",\"additionalProperties\":false,"
     "\"required\":[\"lot\"],\"properties\":{" T_LOT ",\"from\":" T_DT
     ",\"to\":" T_DT "}}",
     NULL, "{\"lot\":\"ph-stadthallen\"}"},
    {"forecast", TWIN_OP_QUERY, TWIN_OP_SAFE,
     "expected free spaces of a lot at a time, with the parts combined",
     "{\"type\":\"object\",\"additionalProperties\":false,"
     "\"required\":[\"lot\",\"time\"],\"properties\":{" T_LOT ",\"time\":" T_DT
     "}}",
     NULL, "{\"lot\":\"ph-stadthallen\",\"time\":\"2026-12-01T10:00:00Z\"}"},
    {"guidance", TWIN_OP_QUERY, TWIN_OP_SAFE,
     "the best lots near a point, by walk, price and free spaces",
     "{\"type\":\"object\",\"additionalProperties\":false,"
     "\"required\":[\"lat\",\"lon\"],\"properties\":{" T_LATLON
     ",\"time\":" T_DT ",\"limit\":{\"type\":\"integer\",\"minimum\":1,"
     "\"maximum\":50,\"default\":5}}}",
     NULL, "{\"lat\":48.8349,\"lon\":12.9609}"},
    {"closure", TWIN_OP_SCENARIO, 0,
     "a lot closed (or its capacity cut) for a while: where do its cars go",
     "{\"type\":\"object\",\"additionalProperties\":false,"
     "\"required\":[\"lot\",\"from\",\"to\"],\"properties\":{" T_LOT
     ",\"from\":" T_DT ",\"to\":" T_DT
     ",\"capacity\":{\"type\":\"integer\",\"minimum\":0,"
     "\"maximum\":1000000,\"description\":\"spaces left open (default 0: "
     "closed)\"}}}",
     NULL,
     "{\"lot\":\"ph-stadthallen\",\"from\":\"2026-12-01T08:00:00Z\","
     "\"to\":\"2026-12-01T12:00:00Z\"}"},
    {"event", TWIN_OP_SCENARIO, 0,
     "N more cars arriving near a point for a while: which lots overflow",
     "{\"type\":\"object\",\"additionalProperties\":false,"
     "\"required\":[\"lat\",\"lon\",\"cars\",\"from\",\"to\"],"
     "\"properties\":{" T_LATLON
     ",\"cars\":{\"type\":\"integer\",\"minimum\":1,\"maximum\":1000000},"
     "\"from\":" T_DT ",\"to\":" T_DT "}}",
     NULL,
     "{\"lat\":48.8349,\"lon\":12.9609,\"cars\":300,"
     "\"from\":\"2026-12-01T18:00:00Z\",\"to\":\"2026-12-01T23:00:00Z\"}"},
};

static const twin_plugin parking_plugin = {
    .struct_size = sizeof(twin_plugin),
    .abi_major = TWIN_ABI_MAJOR,
    .abi_minor = TWIN_ABI_MINOR,
    .name = "parking",
    .version = PARKING_VERSION,
    .use_case = "parking",
    .summary = "car parks and on-street zones: occupancy, profile, forecast, "
               "guidance, closure and event scenarios",
    .config_schema = config_schema,
    .tick_interval_s = 0,
    .open = parking_open,
    .close = parking_close,
    .ingest = parking_ingest,
    .query = parking_query,
    .simulate = parking_simulate,
    .tick = NULL,
    .describe = parking_describe,
    TWIN_OPS(parking_ops),
    .fetch = parking_fetch,
    .fetch_interval_s = 300,
};

TWIN_PLUGIN_DEFINE(parking_plugin)
