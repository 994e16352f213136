/*
 * model.c — the parking model: history series of a lot, its weekly
 * profile of occupancy by local weekday and hour, and forecasts from the
 * profile and the recent deviation.
 */
#include "parking.h"

/* ------------------------------------------------------------------------ */
/* History, profile, forecast                                               */
/* ------------------------------------------------------------------------ */

void park_series_free(series *s)
{
  free(s->t);
  free(s->v);
  memset(s, 0, sizeof *s);
}

static int series_cb(void *ud, const twin_attr *a)
{
  series *s = ud;
  double x;
  if (!park_num_of(&a->value, &x))
    return TWIN_OK;
  if (s->n == s->cap) {
    size_t cap = s->cap ? s->cap * 2 : 64;
    void *t = realloc(s->t, cap * sizeof *s->t);
    if (!t)
      return TWIN_ERR_NOMEM;
    s->t = t;
    t = realloc(s->v, cap * sizeof *s->v);
    if (!t)
      return TWIN_ERR_NOMEM;
    s->v = t;
    s->cap = cap;
  }
  s->t[s->n] = a->time;
  s->v[s->n++] = x;
  return TWIN_OK;
}

int park_series_load(parking *p, twin_ctx *ctx, const lot *l, const char *attr,
                     twin_time from, twin_time to, series *s)
{
  memset(s, 0, sizeof *s);
  if (from >= to)
    return TWIN_OK;
  return p->api->history_range(ctx, l->type, l->id, attr, from, to, 0,
                               series_cb, s);
}

/* Typical occupancy by local weekday (0 = Sunday) and hour: the mean of
 * the hourly means of the observations in each cell. */

int park_profile_build(parking *p, twin_ctx *ctx, const lot *l, twin_time from,
                       twin_time to, profile *pr)
{
  series s;
  local_hour *lh = NULL;
  size_t i, j;
  int rc, w, h;
  memset(pr, 0, sizeof *pr);
  rc = park_series_load(p, ctx, l, "occupancy", from, to, &s);
  if (rc == TWIN_OK && s.n) {
    lh = malloc(s.n * sizeof *lh);
    if (!lh)
      rc = TWIN_ERR_NOMEM;
    else if (!park_local_hours(p, ctx, s.t, s.n, lh))
      rc = TWIN_ERR_INTERNAL;
  }
  for (i = 0; rc == TWIN_OK && i < s.n; i = j) {
    double sum = 0;
    if ((i & 4095) == 0 && (rc = park_past_deadline(p, ctx)) != TWIN_OK)
      break;
    for (j = i; j < s.n && lh[j].key == lh[i].key; j++)
      sum += s.v[j];
    w = lh[i].wday;
    h = lh[i].hour;
    pr->mean[w][h] += sum / (double)(j - i);
    pr->hours[w][h]++;
  }
  if (rc == TWIN_OK) {
    pr->samples = s.n;
    for (w = 0; w < 7; w++)
      for (h = 0; h < 24; h++)
        if (pr->hours[w][h])
          pr->mean[w][h] /= pr->hours[w][h];
  }
  free(lh);
  park_series_free(&s);
  return rc;
}

/* Today's deviation: the mean of (observed occupancy − profile cell) over
 * the observations of the last 3 hours whose cell has data. */

static int deviation_of(parking *p, twin_ctx *ctx, const lot *l,
                        const profile *pr, twin_time now, deviation *d)
{
  series s;
  local_hour *lh = NULL;
  size_t i;
  double sum = 0;
  int rc;
  memset(d, 0, sizeof *d);
  rc = park_series_load(p, ctx, l, "occupancy", now - DEV_WINDOW_MS, now + 1,
                        &s);
  if (rc == TWIN_OK && s.n) {
    lh = malloc(s.n * sizeof *lh);
    if (!lh)
      rc = TWIN_ERR_NOMEM;
    else if (!park_local_hours(p, ctx, s.t, s.n, lh))
      rc = TWIN_ERR_INTERNAL;
  }
  for (i = 0; rc == TWIN_OK && i < s.n; i++) {
    if (!pr->hours[lh[i].wday][lh[i].hour])
      continue;
    sum += s.v[i] - pr->mean[lh[i].wday][lh[i].hour];
    d->samples++;
  }
  if (d->samples)
    d->value = sum / (double)d->samples;
  free(lh);
  park_series_free(&s);
  return rc;
}

static double clamp01(double x)
{
  return x < 0 ? 0 : x > 1 ? 1 : x;
}

/* A forecast of one lot at time t. The profile is built from the 4 weeks
 * before the deviation window, so today's readings do not feed both. */

int park_forecast_lot(parking *p, twin_ctx *ctx, const lot *l, twin_time t,
                      twin_time now, forecast *f)
{
  profile pr;
  deviation d;
  local_hour lh;
  int rc;
  memset(f, 0, sizeof *f);
  rc = park_profile_build(p, ctx, l, now - 4 * WEEK_MS, now - DEV_WINDOW_MS,
                          &pr);
  if (rc == TWIN_OK)
    rc = deviation_of(p, ctx, l, &pr, now, &d);
  if (rc != TWIN_OK)
    return rc;
  if (!park_local_hours(p, ctx, &t, 1, &lh))
    return TWIN_ERR_INTERNAL;
  f->wday = lh.wday;
  f->hour = lh.hour;
  f->deviation = d.value;
  f->dev_samples = d.samples;
  if (pr.hours[lh.wday][lh.hour]) {
    f->has_profile = 1;
    f->profile_occ = pr.mean[lh.wday][lh.hour];
    f->occ = clamp01(f->profile_occ + d.value);
    f->basis = "profile";
  } else {
    f->occ = l->has_occ ? l->occ : 0;
    f->deviation = 0;
    f->basis = l->has_occ ? "current" : "none";
  }
  f->free_ = (int64_t)llround((double)l->total * (1.0 - f->occ));
  if (f->free_ < 0)
    f->free_ = 0;
  if (f->free_ > l->total)
    f->free_ = l->total;
  return TWIN_OK;
}
