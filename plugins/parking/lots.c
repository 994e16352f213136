/*
 * lots.c — lots as the parking plugin stores them: reading one lot's
 * entity into a struct, finding its type, loading every lot of a town.
 */
#include "parking.h"

/* ------------------------------------------------------------------------ */
/* Lots as stored                                                           */
/* ------------------------------------------------------------------------ */

/* One lot's current state, read from its entity. Strings are copies. */

void park_lots_free(lots *ls)
{
  size_t i;
  for (i = 0; i < ls->n; i++) {
    free(ls->v[i].id);
    free(ls->v[i].name);
    free(ls->v[i].category);
    free(ls->v[i].status);
  }
  free(ls->v);
  memset(ls, 0, sizeof *ls);
}

static char *dupn(const char *s, size_t n)
{
  char *d = malloc(n + 1);
  if (d) {
    memcpy(d, s, n);
    d[n] = '\0';
  }
  return d;
}

/* TWIN_ERR_DEADLINE once the call's deadline passed (a query or
 * scenario has one; the host then names town, plugin and op), else
 * TWIN_OK. Cheap: poll it in long loops. */
int park_past_deadline(const parking *p, twin_ctx *ctx)
{
  if (!TWIN_HAS_API(p->api, check_deadline))
    return TWIN_OK;
  return p->api->check_deadline(ctx, NULL);
}

int park_num_of(const twin_value *v, double *out)
{
  if (v->type == TWIN_VALUE_NUMBER)
    *out = v->as.number;
  else if (v->type == TWIN_VALUE_INT)
    *out = (double)v->as.integer;
  else
    return 0;
  return 1;
}

static int lot_attr_cb(void *ud, const twin_attr *a)
{
  lot *l = ud;
  double x;
  char **str = NULL;
  if (!strcmp(a->name, "name"))
    str = &l->name;
  else if (!strcmp(a->name, "category"))
    str = &l->category;
  else if (!strcmp(a->name, "status"))
    str = &l->status;
  if (str) {
    if (a->value.type == TWIN_VALUE_STRING) {
      free(*str);
      *str = dupn(a->value.as.string.ptr, a->value.as.string.len);
      if (!*str)
        return TWIN_ERR_NOMEM;
    }
    return TWIN_OK;
  }
  if (!park_num_of(&a->value, &x))
    return TWIN_OK;
  if (!strcmp(a->name, "lat")) {
    l->lat = x;
    l->has_pos |= 1;
  } else if (!strcmp(a->name, "lon")) {
    l->lon = x;
    l->has_pos |= 2;
  } else if (!strcmp(a->name, "price")) {
    l->price = x;
    l->has_price = 1;
  } else if (!strcmp(a->name, "totalSpotNumber")) {
    l->total = (int64_t)x;
    l->has_total = 1;
  } else if (!strcmp(a->name, "availableSpotNumber")) {
    l->free = (int64_t)x;
    l->has_free = 1;
    l->time = a->time;
  } else if (!strcmp(a->name, "occupancy")) {
    l->occ = x;
    l->has_occ = 1;
  }
  return TWIN_OK;
}

/* Read lot (type, id) into l (zeroed first). TWIN_ERR_NOT_FOUND if absent. */
int park_lot_read(parking *p, twin_ctx *ctx, const char *type, const char *id,
                  lot *l)
{
  int rc;
  memset(l, 0, sizeof *l);
  snprintf(l->type, sizeof l->type, "%s", type);
  if (!(l->id = strdup(id)))
    return TWIN_ERR_NOMEM;
  rc = p->api->entity_attrs(ctx, type, id, lot_attr_cb, l);
  l->has_pos = l->has_pos == 3;
  return rc;
}

/* The type lot id is stored under (OffStreetParking first), or NULL. */
const char *park_lot_type_of(parking *p, twin_ctx *ctx, const char *id, int *rc)
{
  twin_attr a;
  static const char *const types[] = {T_OFF, T_GROUP};
  size_t i;
  *rc = TWIN_OK;
  for (i = 0; i < 2; i++) {
    int r = p->api->entity_get(ctx, types[i], id, "totalSpotNumber", &a);
    if (r == TWIN_ERR_NOT_FOUND)
      r = p->api->entity_get(ctx, types[i], id, "name", &a);
    if (r == TWIN_ERR_NOT_FOUND)
      r = p->api->entity_get(ctx, types[i], id, "availableSpotNumber", &a);
    if (r == TWIN_OK)
      return types[i];
    if (r != TWIN_ERR_NOT_FOUND) {
      *rc = r;
      return NULL;
    }
  }
  return NULL;
}

typedef struct pair_list {
  char (*type)[24];
  char **id;
  size_t n, cap;
  int nomem;
} pair_list;

static int collect_cb(void *ud, const char *type, const char *id)
{
  pair_list *pl = ud;
  if (strcmp(type, T_OFF) && strcmp(type, T_GROUP))
    return TWIN_OK;
  if (pl->n == pl->cap) {
    size_t cap = pl->cap ? pl->cap * 2 : 16;
    void *t = realloc(pl->type, cap * sizeof *pl->type);
    if (!t)
      return TWIN_ERR_NOMEM;
    pl->type = t;
    t = realloc(pl->id, cap * sizeof *pl->id);
    if (!t)
      return TWIN_ERR_NOMEM;
    pl->id = t;
    pl->cap = cap;
  }
  snprintf(pl->type[pl->n], sizeof pl->type[pl->n], "%s", type);
  if (!(pl->id[pl->n] = strdup(id)))
    return TWIN_ERR_NOMEM;
  pl->n++;
  return TWIN_OK;
}

/* Every lot of the town, ordered by (type, id). Pairs are gathered first so
 * no host call runs inside the iteration. */
int park_lots_load(parking *p, twin_ctx *ctx, lots *out)
{
  pair_list pl;
  size_t i;
  int rc;
  memset(&pl, 0, sizeof pl);
  memset(out, 0, sizeof *out);
  rc = p->api->entity_iterate(ctx, NULL, collect_cb, &pl);
  if (rc == TWIN_OK && pl.n) {
    out->v = calloc(pl.n, sizeof *out->v);
    if (!out->v)
      rc = TWIN_ERR_NOMEM;
  }
  for (i = 0; rc == TWIN_OK && i < pl.n; i++) {
    rc = park_lot_read(p, ctx, pl.type[i], pl.id[i], &out->v[out->n]);
    out->n++;
  }
  for (i = 0; i < pl.n; i++)
    free(pl.id[i]);
  free(pl.id);
  free(pl.type);
  if (rc != TWIN_OK)
    park_lots_free(out);
  return rc;
}

const char *park_derive_status(const parking *p, int closed, int has_free,
                               int64_t free_, int64_t total)
{
  double occ;
  if (closed)
    return "closed";
  if (!has_free)
    return "open";
  if (free_ <= 0)
    return "full";
  occ = total > 0 ? 1.0 - (double)free_ / (double)total : 0;
  if (occ >= p->almost_full)
    return "almostFull";
  return "spacesAvailable";
}
