/*
 * demomodel.h — the invented car-park occupancy of the demo towns, one
 * model shared by the history generator (twinhost-demodata parking) and the
 * live feed simulator (twinhost-feedsim), so that the four weeks of history
 * a demo loads and the feed it pulls afterwards follow one weekday/hour
 * profile. Demo equipment, not part of the host.
 *
 * A town is its pack folder (scripts/<town>/): town.json gives the id and
 * time zone, parking-lots.json the lots and their "model" (profile kind,
 * level, market-day and event boosts, an hourly demo pulse). Every value is
 * a pure function of (town, lot, time): the same moment always gives the
 * same occupancy, so history loaded twice replaces itself with itself.
 *
 * Local time comes from the C library with TZ set to the town's zone: the
 * functions below are not thread-safe; call them from one thread only.
 */
#ifndef TWIN_DEMOMODEL_H
#define TWIN_DEMOMODEL_H

#include <stddef.h>
#include <stdint.h>

#include <twin/twinaux.h>

#define DM_LOTS_MAX 64
#define DM_ID_MAX 64
#define DM_NAME_MAX 128

/* How the lot fills over a day (a curve per weekday, Saturday, Sunday). */
typedef enum dm_profile { DM_CENTRE, DM_PARK_AND_RIDE, DM_HALL } dm_profile;

typedef struct dm_lot {
  char id[DM_ID_MAX];
  char name[DM_NAME_MAX];
  char lot_type[32]; /* ParkAPI v1 lot_type: Parkhaus, Tiefgarage, ... */
  double lat, lon;
  int total;
  dm_profile profile;
  double level;     /* scales the profile */
  double market;    /* added on market mornings (ramping up over 1.5 h) */
  double event;     /* added on event evenings */
  int pulse_minute; /* -1, or the minute of the hour the live feed fills
                       the lot beyond 90 % (dm_occupancy_live) */
  uint64_t key;     /* hash of the id: the lot's noise stream */
} dm_lot;

typedef struct dm_town {
  char id[DM_ID_MAX];
  char timezone[DM_NAME_MAX];
  uint64_t seed;
  int market_wday;               /* 0 = Sunday .. 6, or -1: no market */
  double market_from, market_to; /* local hours */
  int event_wday;                /* -1: no events */
  int event_every_weeks;         /* ISO weeks divisible by this */
  double event_from, event_to;   /* local hours */
  size_t nlots;
  dm_lot lots[DM_LOTS_MAX];
} dm_town;

/*
 * Load the town of the pack folder dir (dir/town.json, dir/parking-lots.json)
 * into *t. Returns 0, or -1 with err (errlen bytes) naming the file and the
 * problem.
 */
int dm_town_load(const char *dir, dm_town *t, char *err, size_t errlen);

/* Occupancy 0..1 of lot l of t at time s (seconds since 1970, UTC): the
 * profile, market, events and noise. What the history holds. */
double dm_occupancy(const dm_town *t, const dm_lot *l, int64_t s);

/* The same plus the lot's hourly pulse (pulse_minute >= 0): what the live
 * feed serves. */
double dm_occupancy_live(const dm_town *t, const dm_lot *l, int64_t s);

/* Free spaces of a lot at occupancy occ: total - round(occ * total). */
int dm_free(const dm_lot *l, double occ);

/*
 * Write one ParkAPI v1 city document of t at time s into j (initialised by
 * the caller): {"last_updated", "data_source", "lots": [{"id", "name",
 * "total", "free", "state", "coords": {"lat", "lng"}, "lot_type"}...]}, with
 * live occupancy (the pulse) when live is non-zero.
 */
void dm_snapshot_json(const dm_town *t, int64_t s, int live, twinaux_json *j);

#endif
