/*
 * parking.h — what the files of the parking plugin share (not a public
 * header: the plugin sees only twin/twin.h and twin/twinaux.h). The files:
 * parking.c (the descriptor, its ops, open, close, describe), util.c
 * (errors, names, time), lots.c (lots as stored), ingest.c (ParkAPI v1,
 * ParkAPI2 and single observations, plausibility, item refusals, the feed
 * pull), model.c (history series, the weekly profile, forecasts), query.c
 * (the queries and their replies), scenario.c (closure and event
 * scenarios).
 */
#ifndef TWIN_PARKING_H
#define TWIN_PARKING_H

#define _DEFAULT_SOURCE
#include <inttypes.h>
#include <math.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "twin/twin.h"
#include "twin/twinaux.h"
#ifdef PARKING_HAVE_FEED
#include "feed.h"
#endif

#define PARKING_VERSION "1.0.0"
#define T_OFF "OffStreetParking"
#define T_GROUP "ParkingGroup"
#define MSG_MAX 768
#define TIME_MIN_MS (-62167219200000LL)
#define TIME_MAX_MS 253402300799999LL
#define HOUR_MS 3600000LL
#define DAY_MS 86400000LL
#define WEEK_MS (7 * DAY_MS)
#define STEP_MS (15 * 60000LL)
#define MAX_STEPS (7 * 24 * 4)
#define DEV_WINDOW_MS (3 * HOUR_MS)
#define MAX_COUNT 1000000

enum { FMT_AUTO, FMT_V1, FMT_V2 };

typedef struct parking {
  const twin_host_api *api;
  int auto_create;
  int64_t future_slack_ms;
  double almost_full;
  char *feed_url;
  int feed_format;
  long feed_timeout_ms;
  double walk_speed;
  twin_source *src; /* fetch hands the feed's snapshots in through it */
#ifdef PARKING_HAVE_FEED
  park_feed *feed; /* fetch only (one call at a time, a fetch thread) */
#endif
} parking;

/* The last failure on this thread and the field it was about (util.c),
 * so that ingest can refuse one lot with its reason. */
extern _Thread_local char park_last_msg[MSG_MAX];
extern _Thread_local char park_last_field[48];

typedef struct local_hour {
  int wday, hour;
  int64_t key;
} local_hour;

typedef struct lot {
  char type[24];
  char *id, *name, *category, *status;
  double lat, lon, price, occ;
  int has_pos, has_price, has_total, has_free, has_occ;
  int64_t total, free;
  twin_time time; /* of availableSpotNumber; 0 when none */
} lot;

typedef struct lots {
  lot *v;
  size_t n, cap;
} lots;

typedef struct rec {
  const char *id, *name, *category, *opening;
  const char *type; /* T_OFF or T_GROUP; NULL: keep what is stored */
  double lat, lon, price;
  int has_pos, has_price, has_total, has_free, closed, nodata;
  int64_t total, free;
  twin_time time;
  char where[48];
} rec;

typedef struct run {
  parking *p;
  twin_ctx *ctx;
  twin_time now;
  int seeding; /* open: static lots from the config, always created */
} run;

typedef struct series {
  twin_time *t;
  double *v;
  size_t n, cap;
} series;

typedef struct profile {
  double mean[7][24];
  int hours[7][24]; /* hourly means that went into the cell */
  size_t samples;
} profile;

typedef struct deviation {
  double value;
  size_t samples;
} deviation;

typedef struct forecast {
  int wday, hour, has_profile;
  double profile_occ, deviation, occ;
  size_t dev_samples;
  int64_t free_;
  const char *basis;
} forecast;

int park_apply_rec(run *r, rec *c);
const char *park_derive_status(const parking *p, int closed, int has_free,
                               int64_t free_, int64_t total);
int park_fail(const parking *p, twin_ctx *ctx, int status, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
int park_fail_field(const parking *p, twin_ctx *ctx, int status,
                    const char *field, const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));
void park_fmt_time(char *buf, size_t n, twin_time t);
int park_forecast_lot(parking *p, twin_ctx *ctx, const lot *l, twin_time t,
                      twin_time now, forecast *f);
int park_json_time(const json_t *j, twin_time *out);
int park_local_hours(const parking *p, twin_ctx *ctx, const twin_time *t,
                     size_t n, local_hour *out);
json_t *park_lot_json(const lot *l);
int park_lot_read(parking *p, twin_ctx *ctx, const char *type, const char *id,
                  lot *l);
const char *park_lot_type_of(parking *p, twin_ctx *ctx, const char *id,
                             int *rc);
void park_lots_free(lots *ls);
int park_lots_load(parking *p, twin_ctx *ctx, lots *out);
int park_num_of(const twin_value *v, double *out);
int park_parse_common(run *r, rec *c, const json_t *o, const char *id_key,
                      const char *total_key, const char *free_key,
                      const char *free_key2);
int park_parse_pos(run *r, rec *c, const json_t *lat, const json_t *lon);
int park_past_deadline(const parking *p, twin_ctx *ctx);
int park_profile_build(parking *p, twin_ctx *ctx, const lot *l, twin_time from,
                       twin_time to, profile *pr);
int park_req_lot(parking *p, twin_ctx *ctx, const json_t *req, const lots *ls,
                 const lot **out);
int park_req_num(parking *p, twin_ctx *ctx, const json_t *req, const char *key,
                 double lo, double hi, double *out);
int park_req_time(parking *p, twin_ctx *ctx, const json_t *req, const char *key,
                  twin_time def, int required, twin_time *out);
int park_respond_json(parking *p, twin_ctx *ctx, json_t *reply);
void park_series_free(series *s);
int park_series_load(parking *p, twin_ctx *ctx, const lot *l, const char *attr,
                     twin_time from, twin_time to, series *s);
int park_shown_len(const char *s, int max);
const char *park_status_name(int status);
json_t *park_time_to_json(twin_time t);
const char *park_town_tz(parking *p, twin_ctx *ctx);
const char *park_type_of_kind(const char *kind);
int park_valid_name(const json_t *j);
int parking_fetch(void *instance, twin_ctx *ctx);
int parking_ingest(void *instance, twin_ctx *ctx, const char *doc, size_t len);
int parking_query(void *instance, twin_ctx *ctx, const char *request,
                  size_t len);
int parking_simulate(void *instance, twin_ctx *ctx, const char *scenario,
                     size_t len);

#endif
