/*
 * geo.c — great-circle distance on a spherical Earth. The haversine form is
 * used rather than the spherical law of cosines because it stays accurate
 * for the short distances a town deals in (metres between two sensors),
 * where acos of a value near 1 loses most of its digits.
 */
#include <math.h>

#include "twin/twinaux.h"

static double radians(double deg)
{
  return deg * (3.14159265358979323846 / 180.0);
}

double twinaux_distance_m(double lat1, double lon1, double lat2, double lon2)
{
  double s_lat = sin(radians(lat2 - lat1) / 2);
  double s_lon = sin(radians(lon2 - lon1) / 2);
  double a =
      s_lat * s_lat + cos(radians(lat1)) * cos(radians(lat2)) * s_lon * s_lon;
  /* Rounding can push a past 1 near the antipodes; atan2 of the clamped
   * parts stays exact there, where asin(sqrt(a)) would not. */
  if (a > 1)
    a = 1;
  return 2 * TWINAUX_EARTH_RADIUS_M * atan2(sqrt(a), sqrt(1 - a));
}
