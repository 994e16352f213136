/*
 * test_sensors.c — the sensors plugin as a town uses it: the real sensors.so
 * loaded by a real host on a real LMDB in a temporary folder, documents sent
 * through the ingest pipeline, answers read back with queries and what-if
 * scenarios. Covers every input form, malformed and implausible documents,
 * all-or-nothing batches, late readings, threshold alerts, stats, the query
 * ops, simulate, and config refusals.
 *
 * Documents are written with single quotes for readability; the test
 * host turns them into JSON (tu_jq).
 */
#include "testhost.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define TOWN "donau"
#define ALL_TIME "'from':'0000-01-01T00:00:00Z'"

/* The config most tests run with: an error above 500 cm, frost below 0 °C
 * with its own message, and a pH band. */
static const char *default_config =
    "{'alerts':[{'attr':'level_cm','above':500,'level':'error'},"
    "{'attr':'temp_c','below':0,'message':'frost at the gauge'},"
    "{'attr':'ph','below':6.5,'above':8.5,'level':'info'}]}";

/* Bring up the host with the built sensors enabled for TOWN under
 * sensors_config (a JSON object in single quotes). The instance may be
 * disabled: that is what the config tests look at. */
static void open_host(th_host *f, const char *sensors_config)
{
  th_config_built(f, TOWN, "Europe/Berlin", "sensors", sensors_config);
  th_open(f);
}

/* Restart the host on the same data folder with another config. */
static void reopen(th_host *f, const char *sensors_config)
{
  th_config_built(f, TOWN, "Europe/Berlin", "sensors", sensors_config);
  th_reopen(f);
}

static int setup(void **state)
{
  th_host *f = th_new();
  open_host(f, default_config);
  *state = f;
  return 0;
}

static core_instance *sensors_of(th_host *f)
{
  return th_inst(f, TOWN, "sensors");
}

/* A batch that lands with some readings refused (ABI 1.2 refuse_item):
 * n refusals, the first of item with a reason holding fragment. */
static void ingest_refuses(th_host *f, const char *doc_sq, size_t n,
                           const char *item, const char *field,
                           const char *code, const char *fragment)
{
  th_outcome r = th_ingest(f, sensors_of(f), doc_sq);
  if (r.status)
    fail_msg("the batch was refused whole (%d: %s): %s", r.status, r.reason,
             doc_sq);
  if (json_array_size(r.items) != n)
    fail_msg("%zu refusals, want %zu: %s", json_array_size(r.items), n,
             r.items ? json_dumps(r.items, 0) : "[]");
  assert_string_equal(tu_str(r.items, "[0].item"), item);
  if (field)
    assert_string_equal(tu_str(r.items, "[0].field"), field);
  assert_string_equal(tu_str(r.items, "[0].code"), code);
  const char *why = tu_str(r.items, "[0].reason");
  if (!strstr(why, fragment))
    fail_msg("reason '%s' lacks '%s'", why, fragment);
  th_outcome_free(&r);
}

/* The entity as {"type","id","attrs"}, or NULL when there is none. */
static json_t *entity(th_host *f, const char *type, const char *id)
{
  char *req = tu_fmt("{'op':'entity','type':'%s','id':'%s'}", type, id);
  core_err err;
  json_t *e = th_query(f, sensors_of(f), req, &err);
  free(req);
  if (!e)
    assert_non_null(strstr(err.msg, "no entity"));
  return e;
}

/* The stats reply over the whole history of (type, id, attr). */
static json_t *stats(th_host *f, const char *type, const char *id,
                     const char *attr)
{
  char *req =
      tu_fmt("{'op':'stats','type':'%s','id':'%s','attr':'%s'," ALL_TIME "}",
             type, id, attr);
  json_t *s = th_query_ok(f, sensors_of(f), req);
  free(req);
  return s;
}

static json_int_t history_count(th_host *f, const char *type, const char *id,
                                const char *attr)
{
  json_t *s = stats(f, type, id, attr);
  json_int_t n = json_integer_value(json_object_get(s, "count"));
  json_decref(s);
  return n;
}

static json_int_t entity_count(th_host *f)
{
  json_t *l = th_query_ok(f, sensors_of(f), "{'op':'latest'}");
  json_int_t n = (json_int_t)json_array_size(l);
  json_decref(l);
  return n;
}

static size_t event_count(th_host *f)
{
  json_t *evs = th_events(f, TOWN);
  size_t n = json_array_size(evs);
  json_decref(evs);
  return n;
}

/* Nothing of a refused document landed: no entity, no history of the named
 * attribute, no event. */
static void assert_nothing_stored(th_host *f, const char *id, const char *attr)
{
  assert_int_equal(entity_count(f), 0);
  assert_int_equal(history_count(f, "Sensor", id, attr), 0);
  assert_int_equal(history_count(f, "RiverGauge", id, attr), 0);
  assert_int_equal(event_count(f), 0);
}

/* A gauge reading of level_cm at 2024-05-01T09:mm:00Z. */
static char *level_at(int minute, int value)
{
  return tu_fmt("{'entity':'g1','type':'RiverGauge','attr':'level_cm',"
                "'time':'2024-05-01T09:%02d:00Z','value':%d}",
                minute, value);
}

static void ingest_level(th_host *f, int minute, int value)
{
  char *doc = level_at(minute, value);
  th_ingest_ok(f, sensors_of(f), doc);
  free(doc);
}

/* ---- well-formed documents ------------------------------------------- */

static void
a_single_reading_sets_the_current_value_and_appends_history(void **state)
{
  th_host *f = *state;
  th_ingest_ok(f, sensors_of(f),
               "{'entity':'g1','type':'RiverGauge','attr':'level_cm',"
               "'time':'2024-05-01T09:15:00Z','value':312}");
  json_t *e = entity(f, "RiverGauge", "g1");
  assert_non_null(e);
  assert_true(json_is_integer(tu_get(e, "attrs.level_cm.value")));
  assert_int_equal(tu_int(e, "attrs.level_cm.value"), 312);
  assert_string_equal(tu_str(e, "attrs.level_cm.time"), "2024-05-01T09:15:00Z");
  json_decref(e);
  assert_int_equal(history_count(f, "RiverGauge", "g1", "level_cm"), 1);
}

static void a_batch_stores_every_reading_in_order(void **state)
{
  th_host *f = *state;
  th_ingest_ok(f, sensors_of(f),
               "{'readings':["
               "{'entity':'g1','type':'RiverGauge','attr':'level_cm',"
               "'time':'2024-05-01T09:00:00Z','value':300},"
               "{'entity':'g1','type':'RiverGauge','attr':'level_cm',"
               "'time':'2024-05-01T09:15:00Z','value':310},"
               "{'entity':'g2','type':'RiverGauge','attr':'level_cm',"
               "'time':'2024-05-01T09:15:00Z','value':120}]}");
  assert_int_equal(entity_count(f), 2);
  assert_int_equal(history_count(f, "RiverGauge", "g1", "level_cm"), 2);
  assert_int_equal(history_count(f, "RiverGauge", "g2", "level_cm"), 1);
  json_t *e = entity(f, "RiverGauge", "g1");
  assert_int_equal(tu_int(e, "attrs.level_cm.value"), 310);
  json_decref(e);
}

static void
the_compact_form_stores_each_value_with_its_own_history(void **state)
{
  th_host *f = *state;
  th_ingest_ok(f, sensors_of(f),
               "{'entity':'g1','type':'RiverGauge','time':1714554900000,"
               "'values':{'level_cm':512,'temp_c':4.5}}");
  json_t *e = entity(f, "RiverGauge", "g1");
  assert_int_equal(tu_int(e, "attrs.level_cm.value"), 512);
  assert_true(json_real_value(tu_get(e, "attrs.temp_c.value")) == 4.5);
  json_decref(e);
  assert_int_equal(history_count(f, "RiverGauge", "g1", "level_cm"), 1);
  assert_int_equal(history_count(f, "RiverGauge", "g1", "temp_c"), 1);
}

static void integers_reals_strings_and_booleans_keep_their_kind(void **state)
{
  th_host *f = *state;
  th_ingest_ok(f, sensors_of(f),
               "{'entity':'m1','time':1714554900000,'values':"
               "{'count':7,'ratio':7.0,'state':'ok','open':true,"
               "'closed':false}}");
  json_t *e = entity(f, "Sensor", "m1");
  assert_true(json_is_integer(tu_get(e, "attrs.count.value")));
  assert_true(json_is_real(tu_get(e, "attrs.ratio.value")));
  assert_string_equal(tu_str(e, "attrs.state.value"), "ok");
  assert_true(json_is_true(tu_get(e, "attrs.open.value")));
  assert_true(json_is_false(tu_get(e, "attrs.closed.value")));
  json_decref(e);
}

static void the_type_defaults_to_sensor(void **state)
{
  th_host *f = *state;
  th_ingest_ok(f, sensors_of(f),
               "{'entity':'s1','attr':'pm10','time':1714554900000,"
               "'value':12}");
  json_t *e = entity(f, "Sensor", "s1");
  assert_non_null(e);
  assert_string_equal(tu_str(e, "type"), "Sensor");
  json_decref(e);
}

static void
an_rfc3339_time_with_offset_and_fraction_is_read_as_utc(void **state)
{
  th_host *f = *state;
  th_ingest_ok(f, sensors_of(f),
               "{'entity':'g1','attr':'level_cm',"
               "'time':'2024-05-01T11:15:00.250+02:00','value':1}");
  json_t *e = entity(f, "Sensor", "g1");
  assert_string_equal(tu_str(e, "attrs.level_cm.time"),
                      "2024-05-01T09:15:00.250Z");
  json_decref(e);
}

static void a_time_in_integer_milliseconds_is_read_as_utc(void **state)
{
  th_host *f = *state;
  th_ingest_ok(f, sensors_of(f),
               "{'entity':'g1','attr':'level_cm','time':1714554900000,"
               "'value':1}");
  json_t *e = entity(f, "Sensor", "g1");
  assert_string_equal(tu_str(e, "attrs.level_cm.time"), "2024-05-01T09:15:00Z");
  json_decref(e);
}

static void name_and_location_become_attributes_without_history(void **state)
{
  th_host *f = *state;
  th_ingest_ok(f, sensors_of(f),
               "{'entity':'g1','type':'RiverGauge','attr':'level_cm',"
               "'time':'2024-05-01T09:15:00Z','value':312,"
               "'name':'Donau, Deggendorf bridge',"
               "'location':{'lat':48.833,'lon':12.962}}");
  json_t *e = entity(f, "RiverGauge", "g1");
  assert_string_equal(tu_str(e, "attrs.name.value"),
                      "Donau, Deggendorf bridge");
  assert_true(json_real_value(tu_get(e, "attrs.lat.value")) == 48.833);
  assert_true(json_real_value(tu_get(e, "attrs.lon.value")) == 12.962);
  json_decref(e);
  assert_int_equal(history_count(f, "RiverGauge", "g1", "name"), 0);
  assert_int_equal(history_count(f, "RiverGauge", "g1", "lat"), 0);
  assert_int_equal(history_count(f, "RiverGauge", "g1", "level_cm"), 1);
}

static void replaying_a_reading_keeps_one_observation(void **state)
{
  th_host *f = *state;
  ingest_level(f, 15, 312);
  ingest_level(f, 15, 312);
  assert_int_equal(history_count(f, "RiverGauge", "g1", "level_cm"), 1);
}

/* ---- malformed documents: TWIN_ERR_PARSE, nothing stored ------------- */

static void a_document_that_is_not_json_is_a_parse_error(void **state)
{
  th_host *f = *state;
  th_ingest_fails(f, sensors_of(f), "{'entity':'g1','attr':", TWIN_ERR_PARSE,
                  "line 1", NULL);
  th_ingest_fails(f, sensors_of(f), "level_cm=312", TWIN_ERR_PARSE, NULL, NULL);
  assert_nothing_stored(f, "g1", "level_cm");
}

static void
a_document_that_is_neither_reading_nor_batch_is_a_parse_error(void **state)
{
  th_host *f = *state;
  th_ingest_fails(f, sensors_of(f), "[{'entity':'g1'}]", TWIN_ERR_PARSE,
                  "expected one reading", NULL);
  th_ingest_fails(f, sensors_of(f), "{'sensor':'g1'}", TWIN_ERR_PARSE,
                  "expected one reading", NULL);
  th_ingest_fails(f, sensors_of(f), "{'readings':{'entity':'g1'}}",
                  TWIN_ERR_PARSE, "readings: expected an array", NULL);
  assert_nothing_stored(f, "g1", "level_cm");
}

static void a_field_of_the_wrong_type_is_a_parse_error_naming_reading_and_field(
    void **state)
{
  th_host *f = *state;
  const char *ok = "{'entity':'g1','attr':'level_cm','time':1714554900000,"
                   "'value':1}";
  /* beside good readings, the bad one is refused alone, naming its field */
  char *doc = tu_fmt("{'readings':[%s,{'entity':42,'attr':'level_cm',"
                     "'time':1714554900000,'value':1}]}",
                     ok);
  ingest_refuses(f, doc, 1, "readings[1]", "entity", "malformed",
                 "readings[1].entity");
  free(doc);
  doc = tu_fmt("{'readings':[%s,%s,{'entity':'g1','attr':['level_cm'],"
               "'time':1714554900000,'value':1}]}",
               ok, ok);
  ingest_refuses(f, doc, 1, "readings[2]", "attr", "malformed",
                 "readings[2].attr");
  free(doc);
  doc = tu_fmt("{'readings':[{'entity':'g1','attr':['level_cm'],"
               "'time':1714554900000,'value':1}]}");
  th_ingest_fails(f, sensors_of(f), doc, TWIN_ERR_PARSE, "readings[0].attr",
                  NULL);
  free(doc);
  th_ingest_fails(f, sensors_of(f),
                  "{'readings':[{'entity':'g1','attr':'level_cm',"
                  "'time':true,'value':1}]}",
                  TWIN_ERR_PARSE, "readings[0].time", NULL);
  th_ingest_fails(f, sensors_of(f),
                  "{'readings':[{'entity':'g1','type':7,'attr':'level_cm',"
                  "'time':1714554900000,'value':1}]}",
                  TWIN_ERR_PARSE, "readings[0].type", NULL);
  th_ingest_fails(f, sensors_of(f),
                  "{'readings':[{'entity':'g1','attr':'level_cm',"
                  "'time':1714554900000,'value':1,'name':5}]}",
                  TWIN_ERR_PARSE, "readings[0].name", NULL);
  th_ingest_fails(f, sensors_of(f),
                  "{'readings':[{'entity':'g1','attr':'level_cm',"
                  "'time':1714554900000,'value':1,'location':[48,12]}]}",
                  TWIN_ERR_PARSE, "readings[0].location", NULL);
  th_ingest_fails(f, sensors_of(f), "{'readings':['g1']}", TWIN_ERR_PARSE,
                  "readings[0]: expected an object", NULL);
}

static void a_missing_field_is_a_parse_error_naming_it(void **state)
{
  th_host *f = *state;
  th_ingest_fails(f, sensors_of(f),
                  "{'readings':[{'attr':'level_cm','time':1714554900000,"
                  "'value':1}]}",
                  TWIN_ERR_PARSE, "readings[0].entity: missing", NULL);
  th_ingest_fails(f, sensors_of(f),
                  "{'readings':[{'entity':'g1','attr':'level_cm',"
                  "'value':1}]}",
                  TWIN_ERR_PARSE, "readings[0].time: missing", NULL);
  th_ingest_fails(f, sensors_of(f),
                  "{'readings':[{'entity':'g1','time':1714554900000,"
                  "'value':1}]}",
                  TWIN_ERR_PARSE, "readings[0].attr: missing", NULL);
  th_ingest_fails(f, sensors_of(f),
                  "{'readings':[{'entity':'g1','attr':'level_cm',"
                  "'time':1714554900000}]}",
                  TWIN_ERR_PARSE, "readings[0].value: missing", NULL);
  th_ingest_fails(f, sensors_of(f),
                  "{'entity':'g1','attr':'level_cm','time':1714554900000}",
                  TWIN_ERR_PARSE, "reading.value: missing", NULL);
  assert_nothing_stored(f, "g1", "level_cm");
}

static void an_unknown_field_is_a_parse_error_naming_it(void **state)
{
  th_host *f = *state;
  th_ingest_fails(f, sensors_of(f),
                  "{'readings':[{'entity':'g1','attr':'level_cm',"
                  "'time':1714554900000,'value':1,'unit':'cm'}]}",
                  TWIN_ERR_PARSE, "readings[0].unit: unknown field", NULL);
  th_ingest_fails(f, sensors_of(f),
                  "{'readings':[{'entity':'g1','attr':'level_cm',"
                  "'time':1714554900000,'value':1,'location':{'lat':1,"
                  "'lon':2,'alt':3}}]}",
                  TWIN_ERR_PARSE, "readings[0].location", NULL);
  th_ingest_fails(f, sensors_of(f),
                  "{'readings':[{'entity':'g1','attr':'level_cm',"
                  "'time':1714554900000,'value':1}],'source':'pegel'}",
                  TWIN_ERR_PARSE, "only \"readings\"", NULL);
  assert_nothing_stored(f, "g1", "level_cm");
}

static void an_empty_batch_is_a_parse_error(void **state)
{
  th_host *f = *state;
  th_ingest_fails(f, sensors_of(f), "{'readings':[]}", TWIN_ERR_PARSE,
                  "readings", NULL);
  assert_nothing_stored(f, "g1", "level_cm");
}

static void
a_value_that_is_an_object_array_or_null_is_a_parse_error(void **state)
{
  th_host *f = *state;
  th_ingest_fails(f, sensors_of(f),
                  "{'readings':[{'entity':'g1','attr':'level_cm',"
                  "'time':1714554900000,'value':{'cm':312}}]}",
                  TWIN_ERR_PARSE, "readings[0].value", NULL);
  th_ingest_fails(f, sensors_of(f),
                  "{'readings':[{'entity':'g1','attr':'level_cm',"
                  "'time':1714554900000,'value':[312]}]}",
                  TWIN_ERR_PARSE, "readings[0].value", NULL);
  th_ingest_fails(f, sensors_of(f),
                  "{'readings':[{'entity':'g1','attr':'level_cm',"
                  "'time':1714554900000,'value':null}]}",
                  TWIN_ERR_PARSE, "readings[0].value", NULL);
  th_ingest_fails(f, sensors_of(f),
                  "{'readings':[{'entity':'g1','time':1714554900000,"
                  "'values':{'level_cm':312,'temp_c':{'c':4}}}]}",
                  TWIN_ERR_PARSE, "readings[0].values.temp_c", NULL);
  assert_nothing_stored(f, "g1", "level_cm");
}

static void
attr_and_values_together_or_empty_values_are_a_parse_error(void **state)
{
  th_host *f = *state;
  th_ingest_fails(f, sensors_of(f),
                  "{'readings':[{'entity':'g1','attr':'level_cm',"
                  "'value':1,'time':1714554900000,'values':{'x':1}}]}",
                  TWIN_ERR_PARSE, "readings[0]: give either", NULL);
  th_ingest_fails(f, sensors_of(f),
                  "{'readings':[{'entity':'g1','time':1714554900000,"
                  "'values':{}}]}",
                  TWIN_ERR_PARSE, "readings[0].values", NULL);
  assert_nothing_stored(f, "g1", "level_cm");
}

static void an_impossible_date_or_clock_time_is_a_parse_error(void **state)
{
  th_host *f = *state;
  const char *bad[] = {"2026-13-01T00:00:00Z",      "2026-00-10T00:00:00Z",
                       "2026-02-30T00:00:00Z",      "2025-02-29T00:00:00Z",
                       "2026-04-31T00:00:00Z",      "2026-05-01T24:00:00Z",
                       "2026-05-01T10:60:00Z",      "2026-05-01T10:00:61Z",
                       "2026-05-01T10:00:00+24:00", "2026-05-01T10:00:00.Z"};
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    char *doc = tu_fmt("{'readings':[{'entity':'g1','attr':'level_cm',"
                       "'time':'%s','value':1}]}",
                       bad[i]);
    th_ingest_fails(f, sensors_of(f), doc, TWIN_ERR_PARSE, "readings[0].time",
                    bad[i]);
    free(doc);
  }
  assert_nothing_stored(f, "g1", "level_cm");
}

static void
a_time_without_a_zone_or_in_another_format_is_a_parse_error(void **state)
{
  th_host *f = *state;
  const char *bad[] = {"2026-05-01T10:00:00",
                       "2026-05-01T10:00:00.5",
                       "2026-05-01",
                       "01.05.2026 10:00",
                       "1714554900000",
                       "2026-05-01T10:00:00+0200",
                       "2026-05-01T10:00:00 UTC",
                       ""};
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    char *doc = tu_fmt("{'readings':[{'entity':'g1','attr':'level_cm',"
                       "'time':'%s','value':1}]}",
                       bad[i]);
    th_ingest_fails(f, sensors_of(f), doc, TWIN_ERR_PARSE, "readings[0].time",
                    "not an RFC 3339 time");
    free(doc);
  }
  assert_nothing_stored(f, "g1", "level_cm");
}

static void a_time_outside_the_years_0000_to_9999_is_a_parse_error(void **state)
{
  th_host *f = *state;
  th_ingest_fails(f, sensors_of(f),
                  "{'readings':[{'entity':'g1','attr':'level_cm',"
                  "'time':253402300800000,'value':1}]}",
                  TWIN_ERR_PARSE, "readings[0].time", "0000..9999");
  th_ingest_fails(f, sensors_of(f),
                  "{'readings':[{'entity':'g1','attr':'level_cm',"
                  "'time':'0000-01-01T00:00:00+01:00','value':1}]}",
                  TWIN_ERR_PARSE, "readings[0].time", "0000..9999");
  assert_nothing_stored(f, "g1", "level_cm");
}

static void a_name_with_control_characters_is_a_parse_error(void **state)
{
  th_host *f = *state;
  th_ingest_fails(f, sensors_of(f),
                  "{'readings':[{'entity':'g\\u0001','attr':'level_cm',"
                  "'time':1714554900000,'value':1}]}",
                  TWIN_ERR_PARSE, "readings[0].entity", NULL);
  th_ingest_fails(f, sensors_of(f),
                  "{'readings':[{'entity':'g1','attr':'',"
                  "'time':1714554900000,'value':1}]}",
                  TWIN_ERR_PARSE, "readings[0].attr", NULL);
  th_ingest_fails(f, sensors_of(f),
                  "{'readings':[{'entity':'g1','time':1714554900000,"
                  "'values':{'a\\nb':1}}]}",
                  TWIN_ERR_PARSE, "readings[0].values", NULL);
  assert_nothing_stored(f, "g1", "level_cm");
}

static void a_reason_naming_a_long_field_stays_valid_utf8(void **state)
{
  th_host *f = *state;
  /* "x" and 30 three-byte euro signs: a cut at 60 bytes would split one. */
  char key[100] = "x";
  for (int i = 0; i < 30; i++)
    strcat(key, "\xe2\x82\xac");
  char *doc = tu_fmt("{'entity':'g1','attr':'level_cm','time':1000,"
                     "'value':1,'%s':1}",
                     key);
  th_outcome r = th_ingest(f, sensors_of(f), doc);
  free(doc);
  assert_int_equal(r.status, TWIN_ERR_PARSE);
  assert_non_null(strstr(r.reason, "reading.x\xe2\x82\xac"));
  json_t *text = json_string(r.reason); /* NULL when not UTF-8 */
  assert_non_null(text);
  json_decref(text);
  char *req = tu_fmt("{'op':'%s'}", key);
  core_err err;
  assert_int_equal(th_query_fails(f, sensors_of(f), req, &err),
                   TWIN_ERR_NOT_FOUND); /* op */
  free(req);
  text = json_string(err.msg);
  assert_non_null(text);
  json_decref(text);
}

/* ---- implausible documents: TWIN_ERR_REJECTED, nothing stored -------- */

static void a_reading_beyond_the_future_slack_is_rejected(void **state)
{
  th_host *f = *state;
  char *doc = tu_fmt("{'readings':[{'entity':'g1','attr':'level_cm',"
                     "'time':%lld,'value':1}]}",
                     (long long)(core_now_ms() + 301 * 1000));
  th_ingest_fails(f, sensors_of(f), doc, TWIN_ERR_REJECTED, "readings[0].time",
                  "more than 300 s in the future");
  free(doc);
  th_ingest_fails(f, sensors_of(f),
                  "{'readings':[{'entity':'g1','attr':'level_cm',"
                  "'time':'2999-01-01T00:00:00Z','value':1}]}",
                  TWIN_ERR_REJECTED, "readings[0].time: 2999-01-01T00:00:00Z",
                  "in the future");
  assert_nothing_stored(f, "g1", "level_cm");
}

static void a_reading_within_the_future_slack_is_accepted(void **state)
{
  th_host *f = *state;
  char *doc = tu_fmt("{'entity':'g1','attr':'level_cm','time':%lld,"
                     "'value':1}",
                     (long long)(core_now_ms() + 240 * 1000));
  th_ingest_ok(f, sensors_of(f), doc);
  free(doc);
  assert_int_equal(entity_count(f), 1);
}

static void future_slack_comes_from_the_config(void **state)
{
  th_host *f = *state;
  reopen(f, "{'future_slack_s':0}");
  char *doc = tu_fmt("{'entity':'g1','attr':'level_cm','time':%lld,"
                     "'value':1}",
                     (long long)(core_now_ms() + 60 * 1000));
  th_ingest_fails(f, sensors_of(f), doc, TWIN_ERR_REJECTED, "reading.time",
                  "more than 0 s in the future");
  free(doc);
  assert_nothing_stored(f, "g1", "level_cm");
}

static void a_reading_older_than_max_age_is_rejected(void **state)
{
  th_host *f = *state;
  reopen(f, "{'max_age_s':3600}");
  char *old = th_rfc3339(core_now_ms() - 2 * 3600 * 1000);
  char *doc = tu_fmt("{'readings':[{'entity':'g1','attr':'level_cm',"
                     "'time':'%s','value':1}]}",
                     old);
  th_ingest_fails(f, sensors_of(f), doc, TWIN_ERR_REJECTED, "readings[0].time",
                  "older than max_age_s 3600");
  free(doc);
  free(old);
  assert_nothing_stored(f, "g1", "level_cm");
}

static void a_reading_within_max_age_is_accepted(void **state)
{
  th_host *f = *state;
  reopen(f, "{'max_age_s':3600}");
  char *doc = tu_fmt("{'entity':'g1','attr':'level_cm','time':%lld,"
                     "'value':1}",
                     (long long)(core_now_ms() - 1800 * 1000));
  th_ingest_ok(f, sensors_of(f), doc);
  free(doc);
  assert_int_equal(entity_count(f), 1);
}

static void
an_unknown_entity_is_rejected_when_auto_create_is_false(void **state)
{
  th_host *f = *state;
  reopen(f, "{'auto_create':false}");
  th_ingest_fails(f, sensors_of(f),
                  "{'readings':[{'entity':'g1','type':'RiverGauge',"
                  "'attr':'level_cm','time':1714554900000,'value':1}]}",
                  TWIN_ERR_REJECTED, "readings[0].entity",
                  "does not exist and auto_create is false");
  assert_nothing_stored(f, "g1", "level_cm");
}

static void a_known_entity_is_accepted_when_auto_create_is_false(void **state)
{
  th_host *f = *state;
  ingest_level(f, 0, 300);
  reopen(f, "{'auto_create':false}");
  ingest_level(f, 15, 310);
  th_ingest_fails(f, sensors_of(f),
                  "{'entity':'g2','type':'RiverGauge','attr':'level_cm',"
                  "'time':1714554900000,'value':1}",
                  TWIN_ERR_REJECTED, "reading.entity", NULL);
  json_t *e = entity(f, "RiverGauge", "g1");
  assert_int_equal(tu_int(e, "attrs.level_cm.value"), 310);
  json_decref(e);
  assert_int_equal(entity_count(f), 1);
}

static void a_location_off_the_globe_is_rejected(void **state)
{
  th_host *f = *state;
  th_ingest_fails(f, sensors_of(f),
                  "{'readings':[{'entity':'g1','attr':'level_cm',"
                  "'time':1714554900000,'value':1,"
                  "'location':{'lat':91,'lon':12}}]}",
                  TWIN_ERR_REJECTED, "readings[0].location.lat", NULL);
  th_ingest_fails(f, sensors_of(f),
                  "{'readings':[{'entity':'g1','attr':'level_cm',"
                  "'time':1714554900000,'value':1,"
                  "'location':{'lat':48,'lon':-180.5}}]}",
                  TWIN_ERR_REJECTED, "readings[0].location.lon", NULL);
  assert_nothing_stored(f, "g1", "level_cm");
}

/* ---- one bad reading is refused alone ---------------------------------- */

static void one_malformed_reading_among_good_ones_is_refused_alone(void **state)
{
  th_host *f = *state;
  ingest_refuses(f,
                 "{'readings':["
                 "{'entity':'g1','attr':'level_cm',"
                 "'time':'2024-05-01T09:00:00Z','value':300},"
                 "{'entity':'g1','attr':'level_cm',"
                 "'time':'2024-05-01T09:15:00Z','value':600},"
                 "{'entity':'g1','attr':'level_cm',"
                 "'time':'2024-05-01T09:30:00Z','value':'high','x':1},"
                 "{'entity':'g1','attr':'level_cm',"
                 "'time':'2024-05-01T09:45:00Z','value':320}]}",
                 1, "readings[2]", "x", "malformed", "unknown field");
  /* the three good readings landed, and the alert of the second */
  assert_int_equal(history_count(f, "Sensor", "g1", "level_cm"), 3);
  json_t *e = entity(f, "Sensor", "g1");
  assert_int_equal(tu_int(e, "attrs.level_cm.value"), 320);
  json_decref(e);
  assert_int_equal(event_count(f), 1);
}

static void
one_implausible_reading_among_good_ones_is_refused_alone(void **state)
{
  th_host *f = *state;
  ingest_refuses(f,
                 "{'readings':["
                 "{'entity':'g1','attr':'level_cm',"
                 "'time':'2024-05-01T09:00:00Z','value':600},"
                 "{'entity':'g2','attr':'level_cm',"
                 "'time':'2999-05-01T09:15:00Z','value':300}]}",
                 1, "readings[1]", "time", "implausible", "in the future");
  assert_int_equal(history_count(f, "Sensor", "g1", "level_cm"), 1);
  assert_int_equal(history_count(f, "Sensor", "g2", "level_cm"), 0);
  assert_int_equal(entity_count(f), 1);
}

static void a_refused_document_leaves_earlier_state_as_it_was(void **state)
{
  th_host *f = *state;
  ingest_level(f, 0, 300);
  /* every reading refused: the batch fails as its first one */
  th_ingest_fails(f, sensors_of(f),
                  "{'readings':["
                  "{'entity':'g1','type':'RiverGauge','attr':'level_cm',"
                  "'time':'2024-05-01T09:15:00Z','value':650,'unit':'cm'},"
                  "{'entity':'g1','type':'RiverGauge','attr':'level_cm',"
                  "'time':'2024-05-01T09:30:00','value':700}]}",
                  TWIN_ERR_PARSE, "every reading of the batch was refused (2)",
                  "readings[0].unit");
  json_t *e = entity(f, "RiverGauge", "g1");
  assert_int_equal(tu_int(e, "attrs.level_cm.value"), 300);
  json_decref(e);
  assert_int_equal(history_count(f, "RiverGauge", "g1", "level_cm"), 1);
  assert_int_equal(event_count(f), 0);
}

/* ---- late readings ---------------------------------------------------- */

static void
a_late_reading_goes_to_history_but_keeps_the_current_value(void **state)
{
  th_host *f = *state;
  ingest_level(f, 30, 340);
  ingest_level(f, 5, 330);
  json_t *e = entity(f, "RiverGauge", "g1");
  assert_int_equal(tu_int(e, "attrs.level_cm.value"), 340);
  assert_string_equal(tu_str(e, "attrs.level_cm.time"), "2024-05-01T09:30:00Z");
  json_decref(e);
  json_t *s = stats(f, "RiverGauge", "g1", "level_cm");
  assert_int_equal(tu_int(s, "count"), 2);
  assert_int_equal(tu_int(s, "first"), 330);
  json_decref(s);
}

static void
a_late_reading_in_the_same_batch_keeps_the_current_value(void **state)
{
  th_host *f = *state;
  th_ingest_ok(f, sensors_of(f),
               "{'readings':["
               "{'entity':'g1','attr':'level_cm',"
               "'time':'2024-05-01T09:30:00Z','value':340},"
               "{'entity':'g1','attr':'level_cm',"
               "'time':'2024-05-01T09:05:00Z','value':330}]}");
  json_t *e = entity(f, "Sensor", "g1");
  assert_int_equal(tu_int(e, "attrs.level_cm.value"), 340);
  json_decref(e);
  assert_int_equal(history_count(f, "Sensor", "g1", "level_cm"), 2);
}

static void a_late_reading_beyond_a_threshold_raises_no_alert(void **state)
{
  th_host *f = *state;
  ingest_level(f, 30, 340);
  ingest_level(f, 5, 900);
  assert_int_equal(event_count(f), 0);
}

/* ---- threshold alerts ------------------------------------------------- */

static void crossing_above_raises_one_alert_not_one_per_reading(void **state)
{
  th_host *f = *state;
  ingest_level(f, 0, 312);
  assert_int_equal(event_count(f), 0);
  ingest_level(f, 15, 512);
  assert_int_equal(event_count(f), 1);
  ingest_level(f, 30, 540);
  ingest_level(f, 45, 600);
  assert_int_equal(event_count(f), 1);
}

static void a_value_equal_to_the_threshold_is_not_beyond_it(void **state)
{
  th_host *f = *state;
  ingest_level(f, 0, 312);
  ingest_level(f, 15, 500);
  assert_int_equal(event_count(f), 0);
}

static void falling_back_and_rising_again_raises_the_next_alert(void **state)
{
  th_host *f = *state;
  ingest_level(f, 0, 312);
  ingest_level(f, 10, 512);
  ingest_level(f, 20, 480);
  assert_int_equal(event_count(f), 1);
  ingest_level(f, 30, 505);
  assert_int_equal(event_count(f), 2);
}

static void the_first_reading_beyond_a_threshold_raises_an_alert(void **state)
{
  th_host *f = *state;
  ingest_level(f, 0, 700);
  assert_int_equal(event_count(f), 1);
}

static void crossings_within_one_batch_raise_one_alert_each(void **state)
{
  th_host *f = *state;
  th_ingest_ok(f, sensors_of(f),
               "{'readings':["
               "{'entity':'g1','attr':'level_cm','time':1714554000000,"
               "'value':400},"
               "{'entity':'g1','attr':'level_cm','time':1714554060000,"
               "'value':501},"
               "{'entity':'g1','attr':'level_cm','time':1714554120000,"
               "'value':502},"
               "{'entity':'g1','attr':'level_cm','time':1714554180000,"
               "'value':499},"
               "{'entity':'g1','attr':'level_cm','time':1714554240000,"
               "'value':503}]}");
  assert_int_equal(event_count(f), 2);
}

static void an_alert_event_carries_entity_level_message_and_data(void **state)
{
  th_host *f = *state;
  ingest_level(f, 0, 312);
  ingest_level(f, 15, 512);
  json_t *evs = th_events(f, TOWN);
  json_t *ev = json_array_get(evs, 0);
  assert_string_equal(tu_str(ev, "level"), "error");
  assert_string_equal(tu_str(ev, "entity_type"), "RiverGauge");
  assert_string_equal(tu_str(ev, "entity_id"), "g1");
  assert_string_equal(tu_str(ev, "message"), "level_cm 512 above 500");
  json_t *data = json_object_get(ev, "data");
  assert_string_equal(tu_str(data, "attr"), "level_cm");
  assert_int_equal(tu_int(data, "value"), 512);
  assert_int_equal(tu_int(data, "threshold"), 500);
  assert_string_equal(tu_str(data, "direction"), "above");
  json_decref(evs);
}

static void
crossing_below_raises_an_alert_with_the_configured_message(void **state)
{
  th_host *f = *state;
  th_ingest_ok(f, sensors_of(f),
               "{'entity':'g1','attr':'temp_c','time':1714554000000,"
               "'value':1.5}");
  th_ingest_ok(f, sensors_of(f),
               "{'entity':'g1','attr':'temp_c','time':1714554060000,"
               "'value':-0.5}");
  th_ingest_ok(f, sensors_of(f),
               "{'entity':'g1','attr':'temp_c','time':1714554120000,"
               "'value':-3}");
  json_t *evs = th_events(f, TOWN);
  assert_int_equal(json_array_size(evs), 1);
  json_t *ev = json_array_get(evs, 0);
  assert_string_equal(tu_str(ev, "message"), "frost at the gauge");
  assert_string_equal(tu_str(ev, "level"), "warning");
  json_t *data = json_object_get(ev, "data");
  assert_true(json_number_value(json_object_get(data, "value")) == -0.5);
  assert_string_equal(tu_str(data, "direction"), "below");
  json_decref(evs);
}

static void leaving_a_band_raises_an_alert_on_either_side(void **state)
{
  th_host *f = *state;
  const double ph[] = {7.0, 8.9, 9.1, 7.2, 6.0, 5.5, 7.0};
  for (size_t i = 0; i < sizeof ph / sizeof ph[0]; i++) {
    char *doc = tu_fmt("{'entity':'w1','attr':'ph','time':%lld,'value':%.1f}",
                       1714554000000LL + (long long)i * 60000, ph[i]);
    th_ingest_ok(f, sensors_of(f), doc);
    free(doc);
  }
  json_t *evs = th_events(f, TOWN);
  assert_int_equal(json_array_size(evs), 2);
  assert_string_equal(tu_str(evs, "[0].data.direction"), "above");
  assert_string_equal(tu_str(evs, "[1].data.direction"), "below");
  json_decref(evs);
}

static void attributes_without_an_alert_raise_none(void **state)
{
  th_host *f = *state;
  th_ingest_ok(f, sensors_of(f),
               "{'entity':'g1','time':1714554000000,"
               "'values':{'flow_m3s':9000,'state':'flood'}}");
  assert_int_equal(event_count(f), 0);
}

static void a_long_non_ascii_alert_message_is_kept_whole(void **state)
{
  th_host *f = *state;
  /* 500 characters (the schema's limit), 1000 bytes of UTF-8. */
  char msg[1001];
  for (size_t i = 0; i < 500; i++)
    memcpy(msg + 2 * i, "\xc3\xbc", 2); /* ü */
  msg[1000] = 0;
  char *cfg = tu_fmt("{'alerts':[{'attr':'level_cm','above':500,"
                     "'message':'%s'}]}",
                     msg);
  reopen(f, cfg);
  free(cfg);
  assert_int_equal(sensors_of(f)->state, CORE_INSTANCE_RUNNING);
  ingest_level(f, 0, 600);
  json_t *evs = th_events(f, TOWN);
  assert_int_equal(json_array_size(evs), 1);
  assert_string_equal(tu_str(evs, "[0].message"), msg);
  json_decref(evs);
}

/* ---- stats ------------------------------------------------------------ */

static void stats_summarise_the_history_by_hand_computed_values(void **state)
{
  th_host *f = *state;
  /* 10, 4, 7.5, 20 → count 4, min 4, max 20, avg 41.5 / 4 = 10.375. */
  th_ingest_ok(f, sensors_of(f),
               "{'readings':["
               "{'entity':'a1','attr':'pm10','time':'2024-05-01T08:00:00Z',"
               "'value':10},"
               "{'entity':'a1','attr':'pm10','time':'2024-05-01T09:00:00Z',"
               "'value':4},"
               "{'entity':'a1','attr':'pm10','time':'2024-05-01T10:00:00Z',"
               "'value':7.5},"
               "{'entity':'a1','attr':'pm10','time':'2024-05-01T11:00:00Z',"
               "'value':20}]}");
  json_t *s = stats(f, "Sensor", "a1", "pm10");
  assert_int_equal(tu_int(s, "count"), 4);
  assert_true(json_number_value(json_object_get(s, "min")) == 4);
  assert_true(json_number_value(json_object_get(s, "max")) == 20);
  assert_true(json_number_value(json_object_get(s, "avg")) == 10.375);
  assert_int_equal(tu_int(s, "first"), 10);
  assert_int_equal(tu_int(s, "last"), 20);
  assert_string_equal(tu_str(s, "first_time"), "2024-05-01T08:00:00Z");
  assert_string_equal(tu_str(s, "last_time"), "2024-05-01T11:00:00Z");
  json_decref(s);
}

static void stats_of_the_worked_example_match_the_readme(void **state)
{
  th_host *f = *state;
  th_ingest_ok(f, sensors_of(f),
               "{'readings':["
               "{'entity':'donau-deggendorf','type':'RiverGauge',"
               "'attr':'level_cm','time':'2024-05-01T09:00:00Z','value':312,"
               "'name':'Donau, Deggendorf'},"
               "{'entity':'donau-deggendorf','type':'RiverGauge',"
               "'attr':'level_cm','time':'2024-05-01T09:15:00Z','value':512},"
               "{'entity':'donau-deggendorf','type':'RiverGauge',"
               "'attr':'level_cm','time':'2024-05-01T09:30:00Z','value':540},"
               "{'entity':'donau-deggendorf','type':'RiverGauge',"
               "'attr':'level_cm','time':'2024-05-01T09:05:00Z','value':330}"
               "]}");
  json_t *s = th_query_ok(f, sensors_of(f),
                          "{'op':'stats','type':'RiverGauge',"
                          "'id':'donau-deggendorf','attr':'level_cm',"
                          "'from':'2024-05-01T00:00:00Z'}");
  json_t *want = json_loads(
      "{\"count\": 4, \"min\": 312, \"max\": 540, \"avg\": 423.5, "
      "\"first\": 312, \"last\": 540, \"first_time\": "
      "\"2024-05-01T09:00:00Z\", \"last_time\": \"2024-05-01T09:30:00Z\"}",
      0, NULL);
  assert_true(json_equal(s, want));
  json_decref(want);
  json_decref(s);
  assert_int_equal(event_count(f), 1);
}

static void stats_of_integers_keep_integer_min_and_max(void **state)
{
  th_host *f = *state;
  th_ingest_ok(f, sensors_of(f),
               "{'readings':["
               "{'entity':'a1','attr':'n','time':1000,'value':3},"
               "{'entity':'a1','attr':'n','time':2000,'value':-2},"
               "{'entity':'a1','attr':'n','time':3000,'value':9},"
               "{'entity':'a1','attr':'n','time':4000,'value':2}]}");
  json_t *s = th_query_ok(f, sensors_of(f),
                          "{'op':'stats','id':'a1','attr':'n','from':0}");
  assert_true(json_is_integer(json_object_get(s, "min")));
  assert_int_equal(tu_int(s, "min"), -2);
  assert_int_equal(tu_int(s, "max"), 9);
  /* 12 / 4: a mean of integers is a real. */
  assert_true(json_is_real(json_object_get(s, "avg")));
  assert_true(json_real_value(json_object_get(s, "avg")) == 3.0);
  json_decref(s);
}

static void stats_count_from_inclusive_to_exclusive(void **state)
{
  th_host *f = *state;
  th_ingest_ok(f, sensors_of(f),
               "{'readings':["
               "{'entity':'a1','attr':'n','time':1000,'value':1},"
               "{'entity':'a1','attr':'n','time':2000,'value':2},"
               "{'entity':'a1','attr':'n','time':3000,'value':3}]}");
  json_t *s = th_query_ok(f, sensors_of(f),
                          "{'op':'stats','id':'a1','attr':'n',"
                          "'from':2000,'to':3000}");
  assert_int_equal(tu_int(s, "count"), 1);
  assert_int_equal(tu_int(s, "first"), 2);
  json_decref(s);
  s = th_query_ok(f, sensors_of(f),
                  "{'op':'stats','id':'a1','attr':'n',"
                  "'from':'1970-01-01T00:00:01Z','to':'1970-01-01T00:00:03Z'}");
  assert_int_equal(tu_int(s, "count"), 2);
  json_decref(s);
}

static void stats_of_strings_have_no_min_max_or_avg(void **state)
{
  th_host *f = *state;
  th_ingest_ok(f, sensors_of(f),
               "{'readings':["
               "{'entity':'a1','attr':'state','time':1000,'value':'ok'},"
               "{'entity':'a1','attr':'state','time':2000,'value':'flood'}]}");
  json_t *s = th_query_ok(f, sensors_of(f),
                          "{'op':'stats','id':'a1','attr':'state','from':0}");
  assert_int_equal(tu_int(s, "count"), 2);
  assert_true(json_is_null(json_object_get(s, "min")));
  assert_true(json_is_null(json_object_get(s, "max")));
  assert_true(json_is_null(json_object_get(s, "avg")));
  assert_string_equal(tu_str(s, "first"), "ok");
  assert_string_equal(tu_str(s, "last"), "flood");
  json_decref(s);
}

static void stats_over_no_history_count_zero(void **state)
{
  th_host *f = *state;
  json_t *s = stats(f, "Sensor", "nobody", "n");
  assert_int_equal(json_integer_value(json_object_get(s, "count")), 0);
  assert_true(json_is_null(json_object_get(s, "avg")));
  json_decref(s);
}

static void stats_need_an_id_attr_and_from_before_to(void **state)
{
  th_host *f = *state;
  core_err err;
  /* the host checks the op's schema first */
  assert_null(th_query(f, sensors_of(f), "{'op':'stats','attr':'n'}", &err));
  assert_non_null(strstr(err.msg, "id: required but missing"));
  assert_null(th_query(f, sensors_of(f), "{'op':'stats','id':'a1'}", &err));
  assert_non_null(strstr(err.msg, "attr: required but missing"));
  assert_null(th_query(f, sensors_of(f),
                       "{'op':'stats','id':'a1','attr':'n','from':5,'to':5}",
                       &err));
  assert_non_null(strstr(err.msg, "from must be before to"));
  assert_null(th_query(f, sensors_of(f),
                       "{'op':'stats','id':'a1','attr':'n','from':'yesterday'}",
                       &err));
  assert_non_null(strstr(err.msg, "from"));
}

/* ---- latest, entity and other queries --------------------------------- */

static void latest_lists_every_entity_by_type_then_id(void **state)
{
  th_host *f = *state;
  th_ingest_ok(f, sensors_of(f),
               "{'readings':["
               "{'entity':'z','type':'AirQuality','attr':'pm10',"
               "'time':1000,'value':1},"
               "{'entity':'g2','type':'RiverGauge','attr':'level_cm',"
               "'time':1000,'value':1},"
               "{'entity':'g1','type':'RiverGauge','attr':'level_cm',"
               "'time':1000,'value':2}]}");
  json_t *l = th_query_ok(f, sensors_of(f), "{'op':'latest'}");
  assert_int_equal(json_array_size(l), 3);
  const char *want[][2] = {
      {"AirQuality", "z"}, {"RiverGauge", "g1"}, {"RiverGauge", "g2"}};
  for (size_t i = 0; i < 3; i++) {
    json_t *e = json_array_get(l, i);
    assert_string_equal(tu_str(e, "type"), want[i][0]);
    assert_string_equal(tu_str(e, "id"), want[i][1]);
  }
  assert_int_equal(tu_int(l, "[1].attrs.level_cm.value"), 2);
  json_decref(l);
}

static void latest_with_a_type_lists_only_that_type(void **state)
{
  th_host *f = *state;
  th_ingest_ok(f, sensors_of(f),
               "{'readings':["
               "{'entity':'z','type':'AirQuality','attr':'pm10',"
               "'time':1000,'value':1},"
               "{'entity':'g1','type':'RiverGauge','attr':'level_cm',"
               "'time':1000,'value':2}]}");
  json_t *l =
      th_query_ok(f, sensors_of(f), "{'op':'latest','type':'RiverGauge'}");
  assert_int_equal(json_array_size(l), 1);
  assert_string_equal(tu_str(l, "[0].id"), "g1");
  json_decref(l);
  l = th_query_ok(f, sensors_of(f), "{'op':'latest','type':'Nothing'}");
  assert_int_equal(json_array_size(l), 0);
  json_decref(l);
}

static void the_entity_query_answers_like_the_readme_example(void **state)
{
  th_host *f = *state;
  th_ingest_ok(f, sensors_of(f),
               "{'readings':["
               "{'entity':'donau-deggendorf','type':'RiverGauge',"
               "'attr':'level_cm','time':'2024-05-01T09:00:00Z','value':312,"
               "'name':'Donau, Deggendorf'},"
               "{'entity':'donau-deggendorf','type':'RiverGauge',"
               "'attr':'level_cm','time':'2024-05-01T09:30:00Z','value':540}"
               "]}");
  json_t *e = th_query_ok(f, sensors_of(f),
                          "{'op':'entity','type':'RiverGauge',"
                          "'id':'donau-deggendorf'}");
  json_t *want = json_loads(
      "{\"type\": \"RiverGauge\", \"id\": \"donau-deggendorf\", \"attrs\": "
      "{\"level_cm\": {\"value\": 540, \"time\": \"2024-05-01T09:30:00Z\"},"
      " \"name\": {\"value\": \"Donau, Deggendorf\", \"time\": "
      "\"2024-05-01T09:00:00Z\"}}}",
      0, NULL);
  assert_true(json_equal(e, want));
  json_decref(want);
  json_decref(e);
}

static void the_entity_query_of_a_missing_entity_is_not_found(void **state)
{
  th_host *f = *state;
  core_err err;
  assert_int_equal(
      th_query_fails(f, sensors_of(f),
                     "{'op':'entity','type':'RiverGauge','id':'nope'}", &err),
      TWIN_ERR_NOT_FOUND);
  assert_non_null(strstr(err.msg, "no entity RiverGauge 'nope'"));
}

static void an_unknown_op_fails_listing_the_known_ops(void **state)
{
  th_host *f = *state;
  core_err err;
  /* the host knows the declared ops */
  assert_int_equal(th_query_fails(f, sensors_of(f), "{'op':'history'}", &err),
                   TWIN_ERR_NOT_FOUND);
  assert_non_null(strstr(err.msg, "no query op 'history'"));
  assert_non_null(strstr(err.msg, "latest, entity, stats, alerts"));
  assert_string_equal(err.code, "unknown_op");
  assert_int_equal(
      th_query_fails(f, sensors_of(f), "{'type':'RiverGauge'}", &err),
      TWIN_ERR_INVALID);
  assert_non_null(strstr(err.msg, "latest, entity, stats, alerts"));
}

static void a_query_that_is_not_json_is_a_parse_error(void **state)
{
  th_host *f = *state;
  core_err err;
  assert_int_equal(th_query_fails(f, sensors_of(f), "{'op':", &err),
                   TWIN_ERR_PARSE);
}

static void the_alerts_query_lists_the_alerts_with_defaults_filled(void **state)
{
  th_host *f = *state;
  json_t *a = th_query_ok(f, sensors_of(f), "{'op':'alerts'}");
  assert_int_equal(json_array_size(a), 3);
  json_t *frost = json_array_get(a, 1);
  assert_string_equal(tu_str(frost, "attr"), "temp_c");
  assert_string_equal(tu_str(frost, "level"), "warning");
  assert_string_equal(tu_str(frost, "message"), "frost at the gauge");
  json_decref(a);
}

static void describe_counts_entities_and_alerts(void **state)
{
  th_host *f = *state;
  ingest_level(f, 0, 300);
  char *reply = NULL;
  core_err err;
  assert_int_equal(core_host_describe(f->h, sensors_of(f), &reply, &err),
                   TWIN_OK);
  json_t *d = json_loads(reply, 0, NULL);
  free(reply);
  assert_non_null(d);
  assert_int_equal(tu_int(d, "entities"), 1);
  assert_int_equal(tu_int(d, "alerts"), 3);
  json_decref(d);
}

/* ---- simulate --------------------------------------------------------- */

static const char *flood_scenario =
    "{'readings':["
    "{'entity':'g1','type':'RiverGauge','attr':'level_cm',"
    "'time':'2024-05-01T09:15:00Z','value':512},"
    "{'entity':'g9','type':'RiverGauge','attr':'level_cm',"
    "'time':'2024-05-01T09:15:00Z','value':100}]}";

static void
simulate_reports_alerts_and_the_entities_before_and_after(void **state)
{
  th_host *f = *state;
  ingest_level(f, 0, 312);
  json_t *r = th_simulate_report(f, sensors_of(f), flood_scenario);
  json_t *alerts = json_object_get(r, "alerts");
  assert_int_equal(json_array_size(alerts), 1);
  json_t *a = json_array_get(alerts, 0);
  assert_string_equal(tu_str(a, "id"), "g1");
  assert_string_equal(tu_str(a, "level"), "error");
  assert_string_equal(tu_str(a, "direction"), "above");
  assert_int_equal(tu_int(a, "value"), 512);
  assert_true(json_number_value(json_object_get(a, "threshold")) == 500);
  assert_string_equal(tu_str(a, "time"), "2024-05-01T09:15:00Z");
  /* Baseline: what existed of the touched entities (g1 only). */
  json_t *base = json_object_get(r, "baseline");
  assert_int_equal(json_array_size(base), 1);
  assert_int_equal(tu_int(base, "[0].attrs.level_cm.value"), 312);
  /* After: both touched entities, with the scenario's values. */
  json_t *after = json_object_get(r, "entities");
  assert_int_equal(json_array_size(after), 2);
  assert_int_equal(tu_int(after, "[0].attrs.level_cm.value"), 512);
  assert_string_equal(tu_str(after, "[1].id"), "g9");
  json_decref(r);
}

static void simulate_leaves_entities_history_and_events_unchanged(void **state)
{
  th_host *f = *state;
  ingest_level(f, 0, 312);
  json_t *r = th_simulate_report(f, sensors_of(f), flood_scenario);
  json_decref(r);
  assert_int_equal(entity_count(f), 1);
  json_t *e = entity(f, "RiverGauge", "g1");
  assert_int_equal(tu_int(e, "attrs.level_cm.value"), 312);
  json_decref(e);
  assert_int_equal(history_count(f, "RiverGauge", "g1", "level_cm"), 1);
  assert_int_equal(history_count(f, "RiverGauge", "g9", "level_cm"), 0);
  assert_int_equal(event_count(f), 0);
}

static void simulate_with_a_report_type_lists_every_entity_of_it(void **state)
{
  th_host *f = *state;
  th_ingest_ok(f, sensors_of(f),
               "{'readings':["
               "{'entity':'g1','type':'RiverGauge','attr':'level_cm',"
               "'time':1000,'value':1},"
               "{'entity':'g2','type':'RiverGauge','attr':'level_cm',"
               "'time':1000,'value':2},"
               "{'entity':'a1','type':'AirQuality','attr':'pm10',"
               "'time':1000,'value':3}]}");
  json_t *r =
      th_simulate_report(f, sensors_of(f),
                         "{'readings':[{'entity':'g3','type':'RiverGauge',"
                         "'attr':'level_cm','time':2000,'value':4}],"
                         "'report':{'type':'RiverGauge'}}");
  assert_int_equal(json_array_size(json_object_get(r, "baseline")), 2);
  assert_int_equal(json_array_size(json_object_get(r, "entities")), 3);
  assert_int_equal(json_array_size(json_object_get(r, "alerts")), 0);
  json_decref(r);
}

static void simulate_refuses_what_ingest_refuses(void **state)
{
  th_host *f = *state;
  const char *bad[] = {
      "{'readings':[{'entity':'g1','attr':'level_cm',"
      "'time':'2026-13-01T00:00:00Z','value':1}]}",
      "{'readings':[{'entity':'g1','attr':'level_cm','time':1000,"
      "'value':{}}]}",
      /* these the host's check of the op's schema refuses */
      "{'readings':[],'then':{}}",
      "{'entity':'g1','attr':'level_cm','time':1000,'value':1}",
  };
  core_err err;
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
    assert_int_equal(th_simulate_fails(f, sensors_of(f), bad[i], &err),
                     i < 2 ? TWIN_ERR_PARSE : TWIN_ERR_INVALID);
  assert_int_equal(
      th_simulate_fails(f, sensors_of(f),
                        "{'readings':[{'entity':'g1','attr':'level_cm',"
                        "'time':'2999-01-01T00:00:00Z','value':1}]}",
                        &err),
      TWIN_ERR_REJECTED);
  assert_non_null(strstr(err.msg, "readings[0].time"));
}

/* ---- config refusals -------------------------------------------------- */

static void assert_disabled(th_host *f, const char *fragment1,
                            const char *fragment2)
{
  core_instance *ci = sensors_of(f);
  assert_int_equal(ci->state, CORE_INSTANCE_DISABLED);
  if (!strstr(ci->reason, fragment1))
    fail_msg("reason '%s' lacks '%s'", ci->reason, fragment1);
  if (fragment2 && !strstr(ci->reason, fragment2))
    fail_msg("reason '%s' lacks '%s'", ci->reason, fragment2);
  core_instance *found;
  core_err err;
  assert_int_equal(core_host_find(f->h, TOWN, "sensors", &found, &err),
                   TWIN_ERR_UNAVAILABLE);
  th_outcome r = th_ingest(f, sensors_of(f),
                           "{'entity':'g1','attr':'level_cm','time':1000,"
                           "'value':1}");
  assert_int_equal(r.status, TWIN_ERR_UNAVAILABLE);
}

/* A config that fails the plugin's schema refuses the host's start
 * whole, naming the town, the JSON path and the rule. The host stays
 * closed; the fixture opens it again with the default config. */
static void assert_refused(th_host *f, const char *sensors_config,
                           const char *fragment1, const char *fragment2)
{
  th_close(f);
  th_config_built(f, TOWN, "Europe/Berlin", "sensors", sensors_config);
  core_err err;
  int st = th_try_open(f, CORE_HOST_INSTANCES, &err);
  if (st != TWIN_ERR_CONFIG)
    fail_msg("the host started (%d) with config %s", st, sensors_config);
  assert_null(f->h);
  if (!strstr(err.msg, fragment1) || !strstr(err.msg, "plugins.sensors.config"))
    fail_msg("message '%s' lacks '%s'", err.msg, fragment1);
  if (fragment2 && !strstr(err.msg, fragment2))
    fail_msg("message '%s' lacks '%s'", err.msg, fragment2);
  open_host(f, default_config);
}

static void an_alert_level_outside_the_enum_refuses_the_start(void **state)
{
  assert_refused(*state,
                 "{'alerts':[{'attr':'level_cm','above':500,'level':'loud'}]}",
                 "alerts[0].level", "loud");
}

static void an_alert_without_attr_refuses_the_start(void **state)
{
  assert_refused(*state,
                 "{'alerts':[{'attr':'level_cm','above':500},{'above':1}]}",
                 "alerts[1]", "attr");
}

static void an_alert_without_above_or_below_disables_the_instance(void **state)
{
  th_host *f = *state;
  reopen(f, "{'alerts':[{'attr':'level_cm'}]}");
  assert_disabled(f, "alerts[0]", "needs \"above\" or \"below\"");
}

static void
an_alert_band_with_below_not_under_above_disables_the_instance(void **state)
{
  th_host *f = *state;
  reopen(f, "{'alerts':[{'attr':'ph','above':6,'below':6}]}");
  assert_disabled(f, "alerts[0]", "below (6) must be less than above (6)");
}

static void an_unknown_config_key_refuses_the_start(void **state)
{
  assert_refused(*state, "{'max_age':60}", "max_age",
                 "did you mean \"max_age_s\"");
  assert_refused(*state,
                 "{'alerts':[{'attr':'level_cm','above':500,'colour':'red'}]}",
                 "alerts[0]", "colour");
}

static void a_max_age_beyond_ten_years_refuses_the_start(void **state)
{
  assert_refused(*state, "{'max_age_s':315360001}", "max_age_s", NULL);
}

int main(void)
{
#define T(name) cmocka_unit_test_setup_teardown(name, setup, th_teardown)
  const struct CMUnitTest tests[] = {
      T(a_single_reading_sets_the_current_value_and_appends_history),
      T(a_batch_stores_every_reading_in_order),
      T(the_compact_form_stores_each_value_with_its_own_history),
      T(integers_reals_strings_and_booleans_keep_their_kind),
      T(the_type_defaults_to_sensor),
      T(an_rfc3339_time_with_offset_and_fraction_is_read_as_utc),
      T(a_time_in_integer_milliseconds_is_read_as_utc),
      T(name_and_location_become_attributes_without_history),
      T(replaying_a_reading_keeps_one_observation),
      T(a_document_that_is_not_json_is_a_parse_error),
      T(a_document_that_is_neither_reading_nor_batch_is_a_parse_error),
      T(a_field_of_the_wrong_type_is_a_parse_error_naming_reading_and_field),
      T(a_missing_field_is_a_parse_error_naming_it),
      T(an_unknown_field_is_a_parse_error_naming_it),
      T(an_empty_batch_is_a_parse_error),
      T(a_value_that_is_an_object_array_or_null_is_a_parse_error),
      T(attr_and_values_together_or_empty_values_are_a_parse_error),
      T(an_impossible_date_or_clock_time_is_a_parse_error),
      T(a_time_without_a_zone_or_in_another_format_is_a_parse_error),
      T(a_time_outside_the_years_0000_to_9999_is_a_parse_error),
      T(a_name_with_control_characters_is_a_parse_error),
      T(a_reason_naming_a_long_field_stays_valid_utf8),
      T(a_reading_beyond_the_future_slack_is_rejected),
      T(a_reading_within_the_future_slack_is_accepted),
      T(future_slack_comes_from_the_config),
      T(a_reading_older_than_max_age_is_rejected),
      T(a_reading_within_max_age_is_accepted),
      T(an_unknown_entity_is_rejected_when_auto_create_is_false),
      T(a_known_entity_is_accepted_when_auto_create_is_false),
      T(a_location_off_the_globe_is_rejected),
      T(one_malformed_reading_among_good_ones_is_refused_alone),
      T(one_implausible_reading_among_good_ones_is_refused_alone),
      T(a_refused_document_leaves_earlier_state_as_it_was),
      T(a_late_reading_goes_to_history_but_keeps_the_current_value),
      T(a_late_reading_in_the_same_batch_keeps_the_current_value),
      T(a_late_reading_beyond_a_threshold_raises_no_alert),
      T(crossing_above_raises_one_alert_not_one_per_reading),
      T(a_value_equal_to_the_threshold_is_not_beyond_it),
      T(falling_back_and_rising_again_raises_the_next_alert),
      T(the_first_reading_beyond_a_threshold_raises_an_alert),
      T(crossings_within_one_batch_raise_one_alert_each),
      T(an_alert_event_carries_entity_level_message_and_data),
      T(crossing_below_raises_an_alert_with_the_configured_message),
      T(leaving_a_band_raises_an_alert_on_either_side),
      T(attributes_without_an_alert_raise_none),
      T(a_long_non_ascii_alert_message_is_kept_whole),
      T(stats_summarise_the_history_by_hand_computed_values),
      T(stats_of_the_worked_example_match_the_readme),
      T(stats_of_integers_keep_integer_min_and_max),
      T(stats_count_from_inclusive_to_exclusive),
      T(stats_of_strings_have_no_min_max_or_avg),
      T(stats_over_no_history_count_zero),
      T(stats_need_an_id_attr_and_from_before_to),
      T(latest_lists_every_entity_by_type_then_id),
      T(latest_with_a_type_lists_only_that_type),
      T(the_entity_query_answers_like_the_readme_example),
      T(the_entity_query_of_a_missing_entity_is_not_found),
      T(an_unknown_op_fails_listing_the_known_ops),
      T(a_query_that_is_not_json_is_a_parse_error),
      T(the_alerts_query_lists_the_alerts_with_defaults_filled),
      T(describe_counts_entities_and_alerts),
      T(simulate_reports_alerts_and_the_entities_before_and_after),
      T(simulate_leaves_entities_history_and_events_unchanged),
      T(simulate_with_a_report_type_lists_every_entity_of_it),
      T(simulate_refuses_what_ingest_refuses),
      T(an_alert_level_outside_the_enum_refuses_the_start),
      T(an_alert_without_attr_refuses_the_start),
      T(an_alert_without_above_or_below_disables_the_instance),
      T(an_alert_band_with_below_not_under_above_disables_the_instance),
      T(an_unknown_config_key_refuses_the_start),
      T(a_max_age_beyond_ten_years_refuses_the_start),
  };
#undef T
  return cmocka_run_group_tests(tests, NULL, NULL);
}
