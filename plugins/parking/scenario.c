/*
 * scenario.c — the parking plugin's what-if scenarios: a lot closed (or
 * its capacity cut) for a while, or N more cars near a point; simulated in
 * 15-minute steps on the host's overlay, live state untouched.
 */
#include "parking.h"

/* ------------------------------------------------------------------------ */
/* Scenarios                                                                */
/* ------------------------------------------------------------------------ */

/* Per-lot state of a scenario run. */
typedef struct sim_lot {
  const lot *l;
  int64_t cap; /* baseline capacity */
  double b_sum, s_sum, b_peak, s_peak;
  int64_t b_cars_peak, s_cars_peak;
  json_t *overflow;  /* [{"from","to"}] */
  twin_time of_from; /* open overflow interval, or -1 */
} sim_lot;

typedef struct order {
  size_t i;
  double d;
} order;

static int order_cmp(const void *a, const void *b)
{
  const order *x = a, *y = b;
  return x->d < y->d ? -1 : x->d > y->d;
}

/* Lots with a position ordered by distance from (lat, lon), skipping skip. */
static size_t by_distance(const sim_lot *sl, size_t n, double lat, double lon,
                          size_t skip, order *out)
{
  size_t i, k = 0;
  for (i = 0; i < n; i++) {
    if (i == skip || !sl[i].l->has_pos)
      continue;
    out[k].i = i;
    out[k++].d = twinaux_distance_m(lat, lon, sl[i].l->lat, sl[i].l->lon);
  }
  qsort(out, k, sizeof *out, order_cmp);
  return k;
}

/* Put count cars into the nearest lots with space; returns the cars left
 * over, adds the walking metres of those placed to *walk (minus base_d
 * per car). */
static int64_t place(const order *ord, size_t n_ord, const int64_t *cap,
                     int64_t *cars, int64_t count, double base_d, double *walk,
                     int64_t *placed)
{
  size_t k;
  for (k = 0; k < n_ord && count > 0; k++) {
    size_t i = ord[k].i;
    int64_t room = cap[i] - cars[i], take;
    if (room <= 0)
      continue;
    take = room < count ? room : count;
    cars[i] += take;
    count -= take;
    *placed += take;
    *walk += (double)take * (ord[k].d - base_d);
  }
  return count;
}

static json_t *occ_json(int64_t cars, int64_t total)
{
  return total > 0
             ? json_real(round((double)cars / (double)total * 1000) / 1000)
             : json_null();
}

int parking_simulate(void *instance, twin_ctx *ctx, const char *scenario,
                     size_t len)
{
  parking *p = instance;
  json_error_t jerr;
  json_t *sc, *reply = NULL, *lots_out = NULL, *after = NULL;
  const char *type;
  twin_time now = p->api->now(ctx), from, to, *st = NULL;
  twin_time un_peak_t = 0, walk_t = 0;
  lots ls;
  sim_lot *sl = NULL;
  order *ord = NULL;
  local_hour *lh = NULL;
  double *base = NULL, elat = 0, elon = 0, walk_peak = 0, base_d = 0;
  int64_t *cap = NULL, *cars = NULL, *peak_cars = NULL, *peak_cap = NULL;
  int64_t n_cars = 0, capacity = 0, un_peak = 0, un_end = 0;
  int64_t moved_peak = -1, moved_at_peak = 0;
  size_t steps, i, k, n_ord = 0, closed = (size_t)-1;
  int closure, rc;

  memset(&ls, 0, sizeof ls);
  sc = json_loadb(scenario, len, 0, &jerr);
  if (!sc)
    return park_fail(p, ctx, TWIN_ERR_PARSE, "line %d, column %d: %s",
                     jerr.line, jerr.column, jerr.text);
  /* the host names the declared op in "op" */
  type = json_string_value(json_object_get(sc, "op"));
  if (!json_is_object(sc) || !type ||
      (strcmp(type, "closure") && strcmp(type, "event"))) {
    rc = park_fail(p, ctx, TWIN_ERR_INVALID,
                   "expected {\"op\": \"closure\" | \"event\", ...}");
    goto done;
  }
  closure = !strcmp(type, "closure");
  if ((rc = park_req_time(p, ctx, sc, "from", 0, 1, &from)) ||
      (rc = park_req_time(p, ctx, sc, "to", 0, 1, &to)))
    goto done;
  if (from >= to || (to - from + STEP_MS - 1) / STEP_MS > MAX_STEPS) {
    rc = park_fail(p, ctx, TWIN_ERR_INVALID,
                   "from must be before to, at most 7 days apart");
    goto done;
  }
  steps = (size_t)((to - from + STEP_MS - 1) / STEP_MS);
  if ((rc = park_lots_load(p, ctx, &ls)) != TWIN_OK) {
    rc = park_fail(p, ctx, rc, "reading the lots failed: %s",
                   park_status_name(rc));
    goto done;
  }
  if (closure) {
    const lot *cl;
    const json_t *cj = json_object_get(sc, "capacity");
    if ((rc = park_req_lot(p, ctx, sc, &ls, &cl)))
      goto done;
    closed = (size_t)(cl - ls.v);
    if (cj && (!json_is_integer(cj) || json_integer_value(cj) < 0 ||
               json_integer_value(cj) > MAX_COUNT)) {
      rc = park_fail(p, ctx, TWIN_ERR_INVALID,
                     "capacity: expected an integer 0..%d", MAX_COUNT);
      goto done;
    }
    capacity = cj ? json_integer_value(cj) : 0;
  } else {
    const json_t *cj = json_object_get(sc, "cars");
    if ((rc = park_req_num(p, ctx, sc, "lat", -90, 90, &elat)) ||
        (rc = park_req_num(p, ctx, sc, "lon", -180, 180, &elon)))
      goto done;
    if (!json_is_integer(cj) || json_integer_value(cj) < 1 ||
        json_integer_value(cj) > MAX_COUNT) {
      rc = park_fail(p, ctx, TWIN_ERR_INVALID,
                     "cars: expected an integer 1..%d", MAX_COUNT);
      goto done;
    }
    n_cars = json_integer_value(cj);
  }

  sl = calloc(ls.n + 1, sizeof *sl);
  ord = calloc(ls.n + 1, sizeof *ord);
  cap = calloc(ls.n + 1, sizeof *cap);
  cars = calloc(ls.n + 1, sizeof *cars);
  peak_cars = calloc(ls.n + 1, sizeof *peak_cars);
  peak_cap = calloc(ls.n + 1, sizeof *peak_cap);
  base = calloc((ls.n + 1) * steps, sizeof *base);
  st = calloc(steps, sizeof *st);
  lh = calloc(steps, sizeof *lh);
  if (!sl || !ord || !cap || !cars || !peak_cars || !peak_cap || !base || !st ||
      !lh) {
    rc = park_fail(p, ctx, TWIN_ERR_NOMEM, "out of memory");
    goto done;
  }
  for (k = 0; k < steps; k++)
    st[k] = from + (twin_time)k * STEP_MS;
  if (!park_local_hours(p, ctx, st, steps, lh)) {
    rc = park_fail(p, ctx, TWIN_ERR_INTERNAL,
                   "local time of the steps unavailable");
    goto done;
  }
  /* Baseline occupancy: the profile cell of each step, else the current
   * state. */
  for (i = 0; i < ls.n; i++) {
    const lot *l = &ls.v[i];
    profile pr;
    sl[i].l = l;
    sl[i].of_from = -1;
    sl[i].cap = l->has_total && !(l->status && !strcmp(l->status, "closed"))
                    ? l->total
                    : 0;
    if ((rc = park_past_deadline(p, ctx)) != TWIN_OK)
      goto done;
    if ((rc = park_profile_build(p, ctx, l, now - 4 * WEEK_MS, now + 1, &pr))) {
      rc = park_fail(p, ctx, rc, "profile of lot '%s': %s", l->id,
                     park_status_name(rc));
      goto done;
    }
    for (k = 0; k < steps; k++)
      base[i * steps + k] = pr.hours[lh[k].wday][lh[k].hour]
                                ? pr.mean[lh[k].wday][lh[k].hour]
                            : l->has_occ ? l->occ
                                         : 0;
  }
  if (closure && ls.v[closed].has_pos)
    n_ord =
        by_distance(sl, ls.n, ls.v[closed].lat, ls.v[closed].lon, closed, ord);
  else if (!closure)
    n_ord = by_distance(sl, ls.n, elat, elon, (size_t)-1, ord);
  if (!closure)
    for (k = 0; k < n_ord; k++)
      if (sl[ord[k].i].cap > 0) {
        base_d = ord[k].d;
        break;
      }

  for (k = 0; k < steps; k++) {
    int64_t left = 0, moved = 0, demand;
    double walk = 0;
    /* a week of steps over many lots is long: stop at the deadline */
    if ((rc = park_past_deadline(p, ctx)) != TWIN_OK)
      goto done;
    for (i = 0; i < ls.n; i++) {
      cap[i] = sl[i].cap;
      cars[i] = (int64_t)llround(base[i * steps + k] * (double)sl[i].cap);
      if (cars[i] > cap[i])
        cars[i] = cap[i];
      sl[i].b_sum += sl[i].cap ? (double)cars[i] / (double)sl[i].cap : 0;
      if (cars[i] >= sl[i].b_cars_peak) {
        sl[i].b_cars_peak = cars[i];
        sl[i].b_peak = sl[i].cap ? (double)cars[i] / (double)sl[i].cap : 0;
      }
    }
    if (closure) {
      cap[closed] = capacity < sl[closed].cap ? capacity : sl[closed].cap;
      demand = cars[closed] - cap[closed];
      if (demand > 0) {
        cars[closed] = cap[closed];
        left = place(ord, n_ord, cap, cars, demand, 0, &walk, &moved);
      }
    } else {
      demand =
          (int64_t)llround((double)n_cars * (double)(k + 1) / (double)steps);
      left = place(ord, n_ord, cap, cars, demand, base_d, &walk, &moved);
    }
    for (i = 0; i < ls.n; i++) {
      int64_t bcars = (int64_t)llround(base[i * steps + k] * (double)sl[i].cap);
      int over;
      if (bcars > sl[i].cap)
        bcars = sl[i].cap;
      sl[i].s_sum += sl[i].cap ? (double)cars[i] / (double)sl[i].cap : 0;
      if (cars[i] >= sl[i].s_cars_peak) {
        sl[i].s_cars_peak = cars[i];
        sl[i].s_peak = sl[i].cap ? (double)cars[i] / (double)sl[i].cap : 0;
      }
      over = (closure && i == closed && demand > 0) ||
             (cars[i] >= cap[i] && bcars < sl[i].cap && cars[i] != bcars);
      if (over && sl[i].of_from < 0)
        sl[i].of_from = st[k];
      if ((!over || k + 1 == steps) && sl[i].of_from >= 0) {
        if (!sl[i].overflow)
          sl[i].overflow = json_array();
        json_array_append_new(sl[i].overflow,
                              json_pack("{s:o,s:o}", "from",
                                        park_time_to_json(sl[i].of_from), "to",
                                        park_time_to_json(over ? to : st[k])));
        sl[i].of_from = -1;
      }
    }
    if (left > un_peak) {
      un_peak = left;
      un_peak_t = st[k];
    }
    if (k + 1 == steps)
      un_end = left;
    if (moved + left > moved_peak) {
      moved_peak = moved + left;
      walk_peak = walk;
      walk_t = st[k];
      memcpy(peak_cars, cars, ls.n * sizeof *cars);
      memcpy(peak_cap, cap, ls.n * sizeof *cap);
      moved_at_peak = moved;
    }
  }

  /* The scenario's state at its peak, written to the overlay so reads of
   * this scenario see it. */
  for (i = 0; i < ls.n; i++) {
    const lot *l = &ls.v[i];
    int64_t bcars =
        (int64_t)llround(base[i * steps + (size_t)((walk_t - from) / STEP_MS)] *
                         (double)sl[i].cap);
    const char *stt;
    twin_attr a[4];
    if (peak_cars[i] == bcars && peak_cap[i] == sl[i].cap)
      continue;
    stt = park_derive_status(p, peak_cap[i] == 0, 1, peak_cap[i] - peak_cars[i],
                             peak_cap[i]);
    a[0] = (twin_attr){"availableSpotNumber", walk_t,
                       twin_integer(peak_cap[i] - peak_cars[i])};
    a[1] = (twin_attr){
        "occupancy", walk_t,
        twin_number(peak_cap[i] > 0 ? (double)peak_cars[i] / (double)peak_cap[i]
                                    : 1.0)};
    a[2] = (twin_attr){"status", walk_t, twin_string(stt, strlen(stt))};
    a[3] = (twin_attr){"totalSpotNumber", walk_t, twin_integer(peak_cap[i])};
    if ((rc = p->api->entity_put(ctx, l->type, l->id, a, 4)) != TWIN_OK) {
      rc = park_fail(p, ctx, rc, "overlay write of lot '%s': %s", l->id,
                     park_status_name(rc));
      goto done;
    }
  }
  {
    lots ls2;
    if ((rc = park_lots_load(p, ctx, &ls2)) != TWIN_OK) {
      rc = park_fail(p, ctx, rc, "reading the scenario state failed: %s",
                     park_status_name(rc));
      goto done;
    }
    after = json_array();
    for (i = 0; after && i < ls2.n; i++)
      json_array_append_new(after, park_lot_json(&ls2.v[i]));
    park_lots_free(&ls2);
  }

  lots_out = json_array();
  for (i = 0; lots_out && i < ls.n; i++) {
    json_array_append_new(
        lots_out,
        json_pack("{s:s,s:I,s:{s:f,s:o},s:{s:f,s:o},s:o}", "lot", ls.v[i].id,
                  "total", (json_int_t)sl[i].cap, "baseline", "mean_occupancy",
                  round(sl[i].b_sum / (double)steps * 1000) / 1000,
                  "peak_occupancy", occ_json(sl[i].b_cars_peak, sl[i].cap),
                  "scenario", "mean_occupancy",
                  round(sl[i].s_sum / (double)steps * 1000) / 1000,
                  "peak_occupancy", occ_json(sl[i].s_cars_peak, sl[i].cap),
                  "overflow",
                  sl[i].overflow ? json_incref(sl[i].overflow) : json_array()));
  }
  {
    int64_t moved = moved_at_peak;
    reply = json_pack(
        "{s:s,s:o,s:o,s:I,s:o,s:{s:I,s:o,s:I},s:{s:o,s:I,s:f,s:f},s:o,s:o}",
        "type", type, "from", park_time_to_json(from), "to",
        park_time_to_json(to), "steps", (json_int_t)steps, "lots",
        lots_out ? lots_out : json_null(), "cars_without_space", "peak",
        (json_int_t)un_peak, "peak_at",
        un_peak ? park_time_to_json(un_peak_t) : json_null(), "at_end",
        (json_int_t)un_end, "walk_added", "at", park_time_to_json(walk_t),
        "cars", (json_int_t)moved, "total_m", round(walk_peak), "average_m",
        moved ? round(walk_peak / (double)moved) : 0.0, "state_at_peak",
        after ? after : json_null(), "baseline",
        json_string(closure ? "cars walk from the closed lot"
                            : "cars walk from the nearest lot"));
    lots_out = after = NULL;
  }
  rc = park_respond_json(p, ctx, reply);
done:
  if (sl)
    for (i = 0; i < ls.n; i++)
      json_decref(sl[i].overflow);
  json_decref(lots_out);
  json_decref(after);
  free(sl);
  free(ord);
  free(cap);
  free(cars);
  free(peak_cars);
  free(peak_cap);
  free(base);
  free(st);
  free(lh);
  park_lots_free(&ls);
  json_decref(sc);
  return rc;
}
