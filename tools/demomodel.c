/*
 * demomodel.c — the demo towns' invented car-park occupancy (see
 * demomodel.h): hour-of-day curves per kind of lot, a weekly market
 * morning, evening events, and deterministic noise.
 *
 * SAMPLE DATA: the car parks are modelled on real places, but names,
 * coordinates, capacities and every occupancy figure are invented for the
 * demo. They are not measurements.
 */
#include "demomodel.h"

#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* ---- the curves ---------------------------------------------------------- */

/* (local hour, occupancy) points, linearly interpolated; the last is 24. */
typedef struct point {
  double h, occ;
} point;

enum { WEEKDAY, SATURDAY, SUNDAY, DAY_KINDS };
#define POINTS_MAX 12

static const point CURVES[3][DAY_KINDS][POINTS_MAX] =
    {
        [DM_CENTRE] =
            {
                [WEEKDAY] = {{0, .08},
                             {6, .08},
                             {8, .35},
                             {10, .70},
                             {12, .82},
                             {14, .72},
                             {16, .78},
                             {18, .60},
                             {20, .30},
                             {22, .15},
                             {24, .08}},
                [SATURDAY] = {{0, .10},
                              {7, .10},
                              {9, .45},
                              {11, .88},
                              {13, .85},
                              {15, .60},
                              {17, .45},
                              {20, .30},
                              {24, .10}},
                [SUNDAY] = {{0, .06},
                            {10, .10},
                            {12, .25},
                            {15, .30},
                            {18, .20},
                            {24, .06}},
            },
        [DM_PARK_AND_RIDE] =
            {
                [WEEKDAY] = {{0, .05},
                             {5, .08},
                             {6.5, .45},
                             {8, .88},
                             {15, .85},
                             {17, .55},
                             {19, .20},
                             {22, .08},
                             {24, .05}},
                [SATURDAY] =
                    {{0, .04}, {8, .10}, {12, .20}, {18, .12}, {24, .04}},
                [SUNDAY] = {{0, .04}, {12, .10}, {24, .04}},
            },
        [DM_HALL] =
            {
                [WEEKDAY] = {{0, .05},
                             {7, .06},
                             {9, .40},
                             {12, .55},
                             {15, .50},
                             {18, .35},
                             {20, .20},
                             {24, .05}},
                [SATURDAY] = {{0, .05},
                              {9, .15},
                              {11, .50},
                              {14, .45},
                              {18, .20},
                              {24, .05}},
                [SUNDAY] = {{0, .04}, {11, .08}, {15, .15}, {24, .04}},
            },
};

static double interp(const point *p, double h)
{
  for (int i = 0; i + 1 < POINTS_MAX && p[i].h < 24; i++)
    if (h >= p[i].h && h <= p[i + 1].h)
      return p[i].occ +
             (p[i + 1].occ - p[i].occ) * (h - p[i].h) / (p[i + 1].h - p[i].h);
  return p[0].occ;
}

/* Bavaria's public holidays on fixed dates count as Sundays. */
static int is_holiday(const struct tm *lt)
{
  static const int days[][2] = {{1, 1},  {1, 6},  {5, 1},   {8, 15},
                                {10, 3}, {11, 1}, {12, 25}, {12, 26}};
  for (size_t i = 0; i < sizeof days / sizeof days[0]; i++)
    if (lt->tm_mon + 1 == days[i][0] && lt->tm_mday == days[i][1])
      return 1;
  return 0;
}

static int day_kind(const struct tm *lt)
{
  if (lt->tm_wday == 0 || is_holiday(lt))
    return SUNDAY;
  return lt->tm_wday == 6 ? SATURDAY : WEEKDAY;
}

/* ---- deterministic noise ------------------------------------------------- */

static uint64_t mix64(uint64_t z)
{
  z += 0x9e3779b97f4a7c15u;
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9u;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebu;
  return z ^ (z >> 31);
}

static uint64_t hash_str(const char *s)
{
  uint64_t h = 1469598103934665603u; /* FNV-1a */
  for (; *s; s++)
    h = (h ^ (unsigned char)*s) * 1099511628211u;
  return h;
}

/* Streams of the noise, so that they never share a value. */
enum { NOISE_DAY = 1, NOISE_SLOW, NOISE_MINUTE, NOISE_PULSE, NOISE_BASE };

/* A standard normal number that depends only on its arguments. */
static double gauss(const dm_town *t, const dm_lot *l, int stream, int64_t n)
{
  uint64_t h = mix64(
      t->seed ^ mix64(l->key ^ mix64((uint64_t)stream ^ mix64((uint64_t)n))));
  double u1 = ((double)(h >> 11) + 0.5) / 9007199254740992.0;
  double u2 = ((double)(mix64(h) >> 11) + 0.5) / 9007199254740992.0;
  return sqrt(-2 * log(u1)) * cos(2 * M_PI * u2);
}

static int64_t floor_div(int64_t a, int64_t b)
{
  int64_t q = a / b;
  return (a % b != 0 && (a < 0) != (b < 0)) ? q - 1 : q;
}

/* Slowly wandering noise: each half hour an AR(1) step (0.7 of the last
 * plus a new 0.025), interpolated in between. */
static double slow_noise(const dm_town *t, const dm_lot *l, int64_t s)
{
  int64_t k = floor_div(s, 1800);
  double frac = (double)(s - k * 1800) / 1800.0, at[2];
  for (int e = 0; e < 2; e++) {
    double sum = 0, w = 1;
    for (int i = 0; i < 12; i++, w *= 0.7)
      sum += w * gauss(t, l, NOISE_SLOW, k + e - i);
    at[e] = 0.025 * sum;
  }
  return at[0] + (at[1] - at[0]) * frac;
}

/* ---- local time ---------------------------------------------------------- */

static void local_time(const dm_town *t, int64_t s, struct tm *lt)
{
  static char current[DM_NAME_MAX + 1] = "";
  char want[DM_NAME_MAX + 1];
  snprintf(want, sizeof want, ":%s", t->timezone);
  if (strcmp(current, want)) {
    setenv("TZ", want, 1);
    tzset();
    snprintf(current, sizeof current, "%s", want);
  }
  time_t tt = (time_t)s;
  localtime_r(&tt, lt);
}

/* ---- the model ----------------------------------------------------------- */

double dm_occupancy(const dm_town *t, const dm_lot *l, int64_t s)
{
  struct tm lt;
  local_time(t, s, &lt);
  double h = lt.tm_hour + lt.tm_min / 60.0 + lt.tm_sec / 3600.0;
  int kind = day_kind(&lt);
  int64_t ymd =
      (int64_t)(lt.tm_year + 1900) * 10000 + (lt.tm_mon + 1) * 100 + lt.tm_mday;
  double occ = interp(CURVES[l->profile][kind], h);
  occ *= l->level * (1.0 + 0.06 * gauss(t, l, NOISE_DAY, ymd));
  if (lt.tm_wday == 5 && l->profile == DM_CENTRE && h >= 13 && h < 18)
    occ += .05; /* Friday afternoon shopping */
  if (lt.tm_wday == t->market_wday && kind == WEEKDAY && h >= t->market_from &&
      h < t->market_to)
    occ += l->market * fmin(1.0, (h - t->market_from) / 1.5);
  if (t->event_wday >= 0 && lt.tm_wday == t->event_wday && l->event > 0 &&
      h >= t->event_from - 1 && h < t->event_to) {
    char week[8];
    strftime(week, sizeof week, "%V", &lt);
    if (atoi(week) % t->event_every_weeks == 0)
      occ += l->event * fmin(1.0, h - t->event_from + 1);
  }
  occ += slow_noise(t, l, s) + 0.006 * gauss(t, l, NOISE_MINUTE, s / 60);
  return fmin(1.0, fmax(0.0, occ));
}

/* The demo pulse: 10 minutes before the lot's minute it starts to fill, from
 * 3 before to 3 after it stands at about 95 %, 10 after it is back; between
 * pulses its profile is squeezed below 75 % (above 60 % it rises ever more
 * slowly), so the town's rule, which re-arms below 80 %, warns again at the
 * next pulse. */
#define PULSE_PEAK 0.95
#define PULSE_KNEE 0.60
#define PULSE_BASE_MAX 0.75

double dm_occupancy_live(const dm_town *t, const dm_lot *l, int64_t s)
{
  double occ = dm_occupancy(t, l, s);
  if (l->pulse_minute < 0)
    return occ;
  const double room = PULSE_BASE_MAX - PULSE_KNEE;
  double base = occ <= PULSE_KNEE
                    ? occ
                    : PULSE_KNEE + room * (1 - exp(-(occ - PULSE_KNEE) / room));
  base += 0.008 * gauss(t, l, NOISE_BASE, s / 60); /* moves while squeezed */
  double x = fmod((double)(s % 3600) / 60.0 - l->pulse_minute + 120.0, 60.0);
  double y = x < 30 ? x : x - 60; /* minutes from the pulse, -30..30 */
  double peak =
      fmin(0.99, PULSE_PEAK + 0.012 * gauss(t, l, NOISE_PULSE, s / 60));
  if (y >= -10 && y < -3)
    return base + (peak - base) * (y + 10) / 7;
  if (y >= -3 && y < 3)
    return peak;
  if (y >= 3 && y < 10)
    return peak - (peak - base) * (y - 3) / 7;
  return base;
}

int dm_free(const dm_lot *l, double occ)
{
  int free = l->total - (int)lround(occ * l->total);
  return free < 0 ? 0 : free > l->total ? l->total : free;
}

void dm_snapshot_json(const dm_town *t, int64_t s, int live, twinaux_json *j)
{
  twinaux_json_object(j);
  twinaux_json_key(j, "last_updated");
  twinaux_json_time(j, (twin_time)s * 1000);
  twinaux_json_key(j, "data_source");
  twinaux_json_str(j, live ? "SAMPLE DATA from twinhost-feedsim (invented, "
                             "not measurements)"
                           : "SAMPLE DATA generated by twinhost-demodata "
                             "(invented, not measurements)");
  twinaux_json_key(j, "lots");
  twinaux_json_array(j);
  for (size_t i = 0; i < t->nlots; i++) {
    const dm_lot *l = &t->lots[i];
    double occ = live ? dm_occupancy_live(t, l, s) : dm_occupancy(t, l, s);
    twinaux_json_object(j);
    twinaux_json_key(j, "id");
    twinaux_json_str(j, l->id);
    twinaux_json_key(j, "name");
    twinaux_json_str(j, l->name);
    twinaux_json_key(j, "total");
    twinaux_json_int(j, l->total);
    twinaux_json_key(j, "free");
    twinaux_json_int(j, dm_free(l, occ));
    twinaux_json_key(j, "state");
    twinaux_json_str(j, "open");
    twinaux_json_key(j, "coords");
    twinaux_json_object(j);
    twinaux_json_key(j, "lat");
    twinaux_json_num(j, l->lat);
    twinaux_json_key(j, "lng");
    twinaux_json_num(j, l->lon);
    twinaux_json_end(j);
    twinaux_json_key(j, "lot_type");
    twinaux_json_str(j, l->lot_type);
    twinaux_json_end(j);
  }
  twinaux_json_end(j);
  twinaux_json_end(j);
}

/* ---- loading a town ------------------------------------------------------ */

static int weekday_of(const char *name)
{
  static const char *const days[] = {"Sunday",    "Monday",   "Tuesday",
                                     "Wednesday", "Thursday", "Friday",
                                     "Saturday"};
  for (int i = 0; name && i < 7; i++)
    if (!strcmp(name, days[i]))
      return i;
  return -1;
}

static int copy_str(char *dst, size_t size, const json_t *v)
{
  const char *s = json_string_value(v);
  if (!s || !*s || strlen(s) >= size)
    return -1;
  memcpy(dst, s, strlen(s) + 1);
  return 0;
}

static json_t *load(const char *dir, const char *name, char *path,
                    size_t pathlen, char *err, size_t errlen)
{
  json_error_t je;
  snprintf(path, pathlen, "%s/%s", dir, name);
  json_t *root = json_load_file(path, 0, &je);
  if (!root)
    snprintf(err, errlen, "%s:%d:%d: %s", path, je.line, je.column, je.text);
  else if (!json_is_object(root)) {
    snprintf(err, errlen, "%s: expected an object", path);
    json_decref(root);
    root = NULL;
  }
  return root;
}

static int load_lot(dm_lot *l, const json_t *o, const char *path, size_t i,
                    char *err, size_t errlen)
{
  const json_t *m = json_object_get(o, "model");
  const char *profile = json_string_value(json_object_get(m, "profile"));
  memset(l, 0, sizeof *l);
  l->pulse_minute = -1;
  if (copy_str(l->id, sizeof l->id, json_object_get(o, "id")) ||
      copy_str(l->name, sizeof l->name, json_object_get(o, "name")) ||
      copy_str(l->lot_type, sizeof l->lot_type,
               json_object_get(m, "lot_type"))) {
    snprintf(err, errlen,
             "%s: lots[%zu]: needs \"id\", \"name\" and model.lot_type "
             "(short strings)",
             path, i);
    return -1;
  }
  if (!json_is_integer(json_object_get(o, "total")) ||
      json_integer_value(json_object_get(o, "total")) <= 0 ||
      json_integer_value(json_object_get(o, "total")) > 100000 ||
      !json_is_number(json_object_get(o, "lat")) ||
      !json_is_number(json_object_get(o, "lon")) ||
      !json_is_number(json_object_get(m, "level"))) {
    snprintf(err, errlen,
             "%s: lots[%zu]: needs \"total\" (1..100000), \"lat\", \"lon\" "
             "and model.level",
             path, i);
    return -1;
  }
  l->total = (int)json_integer_value(json_object_get(o, "total"));
  l->lat = json_number_value(json_object_get(o, "lat"));
  l->lon = json_number_value(json_object_get(o, "lon"));
  l->level = json_number_value(json_object_get(m, "level"));
  l->market = json_number_value(json_object_get(m, "market"));
  l->event = json_number_value(json_object_get(m, "event"));
  if (json_is_integer(json_object_get(m, "pulse_minute")))
    l->pulse_minute =
        (int)json_integer_value(json_object_get(m, "pulse_minute"));
  if (l->pulse_minute < -1 || l->pulse_minute > 59) {
    snprintf(err, errlen, "%s: lots[%zu]: model.pulse_minute must be 0..59",
             path, i);
    return -1;
  }
  if (profile && !strcmp(profile, "centre"))
    l->profile = DM_CENTRE;
  else if (profile && !strcmp(profile, "pr"))
    l->profile = DM_PARK_AND_RIDE;
  else if (profile && !strcmp(profile, "hall"))
    l->profile = DM_HALL;
  else {
    snprintf(err, errlen,
             "%s: lots[%zu]: model.profile must be \"centre\", \"pr\" or "
             "\"hall\"",
             path, i);
    return -1;
  }
  l->key = hash_str(l->id);
  return 0;
}

int dm_town_load(const char *dir, dm_town *t, char *err, size_t errlen)
{
  char path[4096];
  int rc = -1;
  json_t *lots_doc = NULL,
         *town = load(dir, "town.json", path, sizeof path, err, errlen);
  memset(t, 0, sizeof *t);
  if (!town)
    return -1;
  if (copy_str(t->id, sizeof t->id, json_object_get(town, "id")) ||
      copy_str(t->timezone, sizeof t->timezone,
               json_object_get(town, "timezone"))) {
    snprintf(err, errlen, "%s: needs \"id\" and \"timezone\"", path);
    goto out;
  }
  if (!(lots_doc =
            load(dir, "parking-lots.json", path, sizeof path, err, errlen)))
    goto out;
  const json_t *model = json_object_get(lots_doc, "model");
  const json_t *market = json_object_get(model, "market");
  const json_t *event = json_object_get(model, "event");
  const json_t *lots = json_object_get(lots_doc, "lots");
  t->seed = (uint64_t)json_integer_value(json_object_get(model, "seed"));
  t->market_wday = -1;
  t->event_wday = -1;
  if (market) {
    t->market_wday =
        weekday_of(json_string_value(json_object_get(market, "weekday")));
    t->market_from = json_number_value(json_object_get(market, "from"));
    t->market_to = json_number_value(json_object_get(market, "to"));
    if (t->market_wday < 0) {
      snprintf(err, errlen,
               "%s: model.market.weekday: expected a weekday "
               "such as \"Tuesday\"",
               path);
      goto out;
    }
  }
  if (event) {
    t->event_wday =
        weekday_of(json_string_value(json_object_get(event, "weekday")));
    t->event_every_weeks =
        (int)json_integer_value(json_object_get(event, "every_weeks"));
    t->event_from = json_number_value(json_object_get(event, "from"));
    t->event_to = json_number_value(json_object_get(event, "to"));
    if (t->event_wday < 0 || t->event_every_weeks < 1) {
      snprintf(err, errlen,
               "%s: model.event: expected a \"weekday\" and "
               "\"every_weeks\" >= 1",
               path);
      goto out;
    }
  }
  if (!json_is_array(lots) || json_array_size(lots) == 0 ||
      json_array_size(lots) > DM_LOTS_MAX) {
    snprintf(err, errlen, "%s: lots: expected 1..%d lots", path, DM_LOTS_MAX);
    goto out;
  }
  for (size_t i = 0; i < json_array_size(lots); i++)
    if (load_lot(&t->lots[i], json_array_get(lots, i), path, i, err, errlen))
      goto out;
  t->nlots = json_array_size(lots);
  rc = 0;
out:
  json_decref(town);
  json_decref(lots_doc);
  return rc;
}
