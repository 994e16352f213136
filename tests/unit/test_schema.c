/*
 * test_schema.c — plugin config schemas (core/schema.c): which schemas the
 * host accepts, how a town's config is validated and completed with
 * defaults, and how a schema prints for people.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "schema.h"
#include "testutil.h"

/* A feed-puller's schema, the kind the demo plugins declare. */
static const char *const feed_schema =
    "{\"type\": \"object\",\n"
    " \"properties\": {\n"
    "   \"feed_url\": {\"type\": \"string\", \"minLength\": 1,\n"
    "                \"description\": \"Where the feed lives\"},\n"
    "   \"interval_s\": {\"type\": \"integer\", \"minimum\": 10,\n"
    "                  \"maximum\": 86400, \"default\": 300,\n"
    "                  \"description\": \"How often to pull the feed\"}},\n"
    " \"required\": [\"feed_url\"],\n"
    " \"additionalProperties\": false}";

/* ---- helpers ---------------------------------------------------------- */

static void expect_check_ok(const char *schema)
{
  core_err err = {.msg = {0}};
  int rc = core_schema_check(schema, &err);
  if (rc != TWIN_OK)
    fail_msg("schema refused: %s", err.msg);
}

static void expect_check_error(const char *schema, const char *want)
{
  core_err err = {.msg = {0}};
  assert_int_equal(core_schema_check(schema, &err), TWIN_ERR_CONFIG);
  if (!strstr(err.msg, want))
    fail_msg("message \"%s\"\n  lacks \"%s\"", err.msg, want);
}

/* Apply and compare the completed config with want exactly. */
static void expect_applied(const char *schema, const char *config,
                           const char *want)
{
  char *out = NULL;
  core_err err = {.msg = {0}};
  int rc = core_schema_apply(schema, config, config ? strlen(config) : 0, &out,
                             &err);
  if (rc != TWIN_OK)
    fail_msg("config refused: %s", err.msg);
  assert_non_null(out);
  assert_string_equal(out, want);
  free(out);
}

/* The config is refused, *out stays NULL and the message holds want. */
static void expect_apply_error(const char *schema, const char *config,
                               const char *want)
{
  char *out = (char *)&out;
  core_err err = {.msg = {0}};
  assert_int_equal(
      core_schema_apply(schema, config, strlen(config), &out, &err),
      TWIN_ERR_CONFIG);
  assert_null(out);
  if (!strstr(err.msg, want))
    fail_msg("message \"%s\"\n  lacks \"%s\"", err.msg, want);
}

/* An object schema with one property p (a schema text). */
#define ONE(p) "{\"type\": \"object\", \"properties\": {\"x\": " p "}}"

/* ---- core_schema_check ------------------------------------------------ */

static void feed_schema_is_accepted(void **state)
{
  (void)state;
  expect_check_ok(feed_schema);
}

static void every_keyword_is_accepted(void **state)
{
  (void)state;
  expect_check_ok(
      "{\"type\": \"object\", \"description\": \"all of it\",\n"
      " \"properties\": {\n"
      "  \"n\": {\"type\": \"number\", \"minimum\": -1.5, \"maximum\": 2},\n"
      "  \"s\": {\"type\": \"string\", \"minLength\": 0, \"maxLength\": 9,\n"
      "         \"enum\": [\"a\", \"b\"], \"default\": \"a\"},\n"
      "  \"l\": {\"type\": \"array\", \"items\": {\"type\": \"boolean\"},\n"
      "         \"minItems\": 1, \"maxItems\": 3, \"default\": [true]},\n"
      "  \"o\": {\"type\": \"object\", \"properties\": {}, \"required\": [],\n"
      "         \"additionalProperties\": false},\n"
      "  \"any\": {\"description\": \"no type: any value\"}},\n"
      " \"required\": [\"n\"], \"additionalProperties\": false}");
}

static void null_schema_is_refused_by_check(void **state)
{
  (void)state;
  core_err err = {.msg = {0}};
  assert_int_equal(core_schema_check(NULL, &err), TWIN_ERR_CONFIG);
}

static void malformed_schema_names_line_and_column(void **state)
{
  (void)state;
  expect_check_error("{\"type\": \"object\",\n \"properties\": {]}",
                     "2:17: invalid JSON: ");
}

static void duplicate_schema_keys_are_refused(void **state)
{
  (void)state;
  expect_check_error("{\"type\": \"object\", \"type\": \"object\"}",
                     "invalid JSON: duplicate object key");
}

static void schema_must_be_an_object(void **state)
{
  (void)state;
  expect_check_error("[]", "expected a schema object");
}

static void top_level_must_be_type_object(void **state)
{
  (void)state;
  expect_check_error("{\"type\": \"array\"}",
                     "type: the top level must be {\"type\": \"object\"");
}

static void top_level_without_type_is_refused(void **state)
{
  (void)state;
  expect_check_error("{\"properties\": {}}", "type: the top level must be");
}

static void unknown_keyword_is_refused_with_a_suggestion(void **state)
{
  (void)state;
  expect_check_error(
      "{\"type\": \"object\", \"properties\": {\"interval_s\": "
      "{\"type\": \"integer\", \"minimun\": 10}}}",
      "properties.interval_s.minimun: unknown keyword (known: type, "
      "properties, required, additionalProperties, items, minimum, maximum, "
      "minLength, maxLength, minItems, maxItems, enum, default, "
      "description, format); did you mean \"minimum\"?");
}

static void unknown_type_name_is_refused(void **state)
{
  (void)state;
  expect_check_error(ONE("{\"type\": \"int\"}"),
                     "properties.x.type: expected one of \"object\", "
                     "\"array\", \"string\", \"integer\", \"number\", "
                     "\"boolean\", got \"int\"");
}

static void type_lists_are_refused(void **state)
{
  (void)state;
  expect_check_error(ONE("{\"type\": [\"string\", \"null\"]}"),
                     "properties.x.type: expected one of");
}

static void property_schema_must_be_an_object(void **state)
{
  (void)state;
  expect_check_error(ONE("\"string\""),
                     "properties.x: expected a schema object such as "
                     "{\"type\": \"string\"}, got \"string\"");
}

static void properties_must_be_an_object(void **state)
{
  (void)state;
  expect_check_error("{\"type\": \"object\", \"properties\": []}",
                     "properties: expected an object mapping names to "
                     "schemas, got an array");
}

static void minimum_must_be_a_number(void **state)
{
  (void)state;
  expect_check_error(ONE("{\"type\": \"integer\", \"minimum\": \"10\"}"),
                     "properties.x.minimum: expected a number, got \"10\"");
}

static void length_limits_must_be_counts(void **state)
{
  (void)state;
  expect_check_error(ONE("{\"type\": \"string\", \"maxLength\": -1}"),
                     "properties.x.maxLength: expected a whole number >= 0, "
                     "got -1");
}

static void item_limits_must_be_whole_numbers(void **state)
{
  (void)state;
  expect_check_error(ONE("{\"type\": \"array\", \"minItems\": 1.5}"),
                     "properties.x.minItems: expected a whole number >= 0, "
                     "got 1.5");
}

static void minimum_above_maximum_is_refused(void **state)
{
  (void)state;
  expect_check_error(
      ONE("{\"type\": \"number\", \"minimum\": 10, \"maximum\": 5}"),
      "properties.x.minimum: 10 is above the maximum 5");
}

static void min_length_above_max_length_is_refused(void **state)
{
  (void)state;
  expect_check_error(
      ONE("{\"type\": \"string\", \"minLength\": 3, \"maxLength\": 2}"),
      "properties.x.minLength: 3 is above the maxLength 2");
}

static void keyword_of_another_type_is_refused(void **state)
{
  (void)state;
  expect_check_error(ONE("{\"type\": \"string\", \"minimum\": 1}"),
                     "properties.x.minimum: only applies to type \"number\" "
                     "or \"integer\", not \"string\"");
}

static void items_only_apply_to_arrays(void **state)
{
  (void)state;
  expect_check_error(
      ONE("{\"type\": \"object\", \"items\": {\"type\": \"string\"}}"),
      "properties.x.items: only applies to type \"array\", not \"object\"");
}

static void required_must_be_an_array(void **state)
{
  (void)state;
  expect_check_error("{\"type\": \"object\", \"required\": \"a\"}",
                     "required: expected an array of property names, got "
                     "\"a\"");
}

static void required_names_must_be_properties(void **state)
{
  (void)state;
  expect_check_error(
      "{\"type\": \"object\", \"properties\": {\"feed_url\": {}}, "
      "\"required\": [\"feed_url\", \"feed_ur\"]}",
      "required[1]: \"feed_ur\" is not one of the properties");
}

static void required_names_must_be_strings(void **state)
{
  (void)state;
  expect_check_error("{\"type\": \"object\", \"required\": [1]}",
                     "required[0]: expected a property name, got 1");
}

static void required_names_may_not_repeat(void **state)
{
  (void)state;
  expect_check_error("{\"type\": \"object\", \"properties\": {\"a\": {}}, "
                     "\"required\": [\"a\", \"a\"]}",
                     "required[1]: \"a\" is listed twice");
}

static void additional_properties_true_is_refused(void **state)
{
  (void)state;
  expect_check_error("{\"type\": \"object\", \"additionalProperties\": true}",
                     "additionalProperties: only false is supported");
}

static void additional_properties_schema_is_refused(void **state)
{
  (void)state;
  expect_check_error("{\"type\": \"object\", \"additionalProperties\": {}}",
                     "additionalProperties: only false is supported");
}

static void enum_must_be_a_non_empty_array(void **state)
{
  (void)state;
  expect_check_error(ONE("{\"type\": \"string\", \"enum\": []}"),
                     "properties.x.enum: expected a non-empty array of "
                     "allowed values, got an array");
}

static void enum_values_must_fit_the_type(void **state)
{
  (void)state;
  expect_check_error(ONE("{\"type\": \"string\", \"enum\": [\"a\", 3]}"),
                     "properties.x.enum[1]: expected a string, got 3");
}

static void default_must_pass_its_own_rules(void **state)
{
  (void)state;
  expect_check_error(
      "{\"type\": \"object\", \"properties\": {\"interval_s\": "
      "{\"type\": \"integer\", \"minimum\": 10, \"default\": 5}}}",
      "properties.interval_s.default: 5 is below the minimum 10");
}

static void default_must_have_the_type(void **state)
{
  (void)state;
  expect_check_error(ONE("{\"type\": \"integer\", \"default\": \"300\"}"),
                     "properties.x.default: expected an integer, got \"300\"");
}

static void default_must_be_in_the_enum(void **state)
{
  (void)state;
  expect_check_error(
      ONE("{\"type\": \"string\", \"enum\": [\"a\"], \"default\": \"b\"}"),
      "properties.x.default: \"b\" is not one of \"a\"");
}

static void object_default_must_hold_its_required_keys(void **state)
{
  (void)state;
  expect_check_error(ONE("{\"type\": \"object\", \"properties\": {\"u\": {}}, "
                         "\"required\": [\"u\"], \"default\": {}}"),
                     "properties.x.default.u: required but missing");
}

static void description_must_be_a_string(void **state)
{
  (void)state;
  expect_check_error(ONE("{\"type\": \"string\", \"description\": 1}"),
                     "properties.x.description: expected a string, got 1");
}

static void nested_schema_errors_name_the_whole_path(void **state)
{
  (void)state;
  expect_check_error(
      "{\"type\": \"object\", \"properties\": {\"feeds\": {\"type\": "
      "\"array\", \"items\": {\"type\": \"object\", \"properties\": "
      "{\"url\": {\"type\": \"string\", \"maxLength\": \"x\"}}}}}}",
      "properties.feeds.items.properties.url.maxLength: expected a whole "
      "number >= 0, got \"x\"");
}

static void very_deep_schemas_are_refused(void **state)
{
  (void)state;
  char *s = strdup("{\"type\": \"object\"}");
  for (int i = 0; i < 40; i++) {
    char *n = tu_fmt("{\"type\": \"object\", \"properties\": {\"a\": %s}}", s);
    free(s);
    s = n;
  }
  expect_check_error(s, "nested too deep (at most 32 levels)");
  free(s);
}

/* ---- core_schema_apply: types and limits ------------------------------ */

static void defaults_are_filled_in(void **state)
{
  (void)state;
  expect_applied(feed_schema, "{\"feed_url\": \"http://x/p.json\"}",
                 "{\"feed_url\":\"http://x/p.json\",\"interval_s\":300}");
}

static void given_values_win_over_defaults(void **state)
{
  (void)state;
  expect_applied(feed_schema, "{\"interval_s\": 60, \"feed_url\": \"u\"}",
                 "{\"feed_url\":\"u\",\"interval_s\":60}");
}

static void output_is_compact_with_sorted_keys(void **state)
{
  (void)state;
  expect_applied("{\"type\": \"object\"}",
                 "{ \"b\" : [ 1 , 2 ] ,\n \"a\" : { \"z\": 1, \"y\": 2 } }",
                 "{\"a\":{\"y\":2,\"z\":1},\"b\":[1,2]}");
}

static void integer_refuses_a_real(void **state)
{
  (void)state;
  expect_apply_error(feed_schema, "{\"feed_url\": \"u\", \"interval_s\": 60.0}",
                     "interval_s: expected an integer, got 60.0");
}

static void number_accepts_integers_and_reals(void **state)
{
  (void)state;
  const char *s = ONE("{\"type\": \"number\"}");
  expect_applied(s, "{\"x\": 3}", "{\"x\":3}");
  expect_applied(s, "{\"x\": 2.5}", "{\"x\":2.5}");
}

static void string_refuses_a_number(void **state)
{
  (void)state;
  expect_apply_error(feed_schema, "{\"feed_url\": 42}",
                     "feed_url: expected a string, got 42");
}

static void boolean_refuses_a_string(void **state)
{
  (void)state;
  expect_apply_error(ONE("{\"type\": \"boolean\"}"), "{\"x\": \"true\"}",
                     "x: expected true or false, got \"true\"");
}

static void array_refuses_an_object(void **state)
{
  (void)state;
  expect_apply_error(ONE("{\"type\": \"array\"}"), "{\"x\": {}}",
                     "x: expected an array, got an object");
}

static void untyped_property_accepts_any_value(void **state)
{
  (void)state;
  expect_applied(ONE("{\"description\": \"anything\"}"), "{\"x\": [null]}",
                 "{\"x\":[null]}");
}

static void value_below_minimum_is_refused(void **state)
{
  (void)state;
  expect_apply_error(feed_schema, "{\"feed_url\": \"u\", \"interval_s\": 5}",
                     "interval_s: 5 is below the minimum 10");
}

static void value_above_maximum_is_refused(void **state)
{
  (void)state;
  expect_apply_error(feed_schema,
                     "{\"feed_url\": \"u\", \"interval_s\": 86401}",
                     "interval_s: 86401 is above the maximum 86400");
}

static void limits_are_inclusive(void **state)
{
  (void)state;
  expect_applied(feed_schema, "{\"feed_url\": \"u\", \"interval_s\": 10}",
                 "{\"feed_url\":\"u\",\"interval_s\":10}");
  expect_applied(feed_schema, "{\"feed_url\": \"u\", \"interval_s\": 86400}",
                 "{\"feed_url\":\"u\",\"interval_s\":86400}");
}

static void real_limits_compare_with_reals(void **state)
{
  (void)state;
  const char *s =
      ONE("{\"type\": \"number\", \"minimum\": 0.5, \"maximum\": 1}");
  expect_applied(s, "{\"x\": 0.75}", "{\"x\":0.75}");
  expect_apply_error(s, "{\"x\": 0.25}", "x: 0.25 is below the minimum 0.5");
  expect_apply_error(s, "{\"x\": 1.5}", "x: 1.5 is above the maximum 1");
}

static void short_string_is_refused(void **state)
{
  (void)state;
  expect_apply_error(feed_schema, "{\"feed_url\": \"\"}",
                     "feed_url: \"\" is shorter than the minimum length 1");
}

static void long_string_is_refused(void **state)
{
  (void)state;
  expect_apply_error(ONE("{\"type\": \"string\", \"maxLength\": 3}"),
                     "{\"x\": \"abcd\"}",
                     "x: \"abcd\" is longer than the maximum length 3 (4 "
                     "characters)");
}

static void string_length_counts_characters_not_bytes(void **state)
{
  (void)state;
  expect_applied(ONE("{\"type\": \"string\", \"maxLength\": 5}"),
                 "{\"x\": \"Stra\xc3\x9f\"}", "{\"x\":\"Stra\xc3\x9f\"}");
}

static void enum_accepts_a_listed_value(void **state)
{
  (void)state;
  expect_applied(
      ONE("{\"type\": \"string\", \"enum\": [\"eco\", \"comfort\"]}"),
      "{\"x\": \"comfort\"}", "{\"x\":\"comfort\"}");
}

static void enum_refuses_other_values_and_lists_the_allowed(void **state)
{
  (void)state;
  expect_apply_error(
      "{\"type\": \"object\", \"properties\": {\"mode\": {\"type\": "
      "\"string\", \"enum\": [\"eco\", \"comfort\"]}}}",
      "{\"mode\": \"fast\"}",
      "mode: \"fast\" is not one of \"eco\", \"comfort\"");
}

static void enum_compares_whole_values(void **state)
{
  (void)state;
  const char *s = ONE("{\"enum\": [{\"a\": [1, 2]}, 3]}");
  expect_applied(s, "{\"x\": {\"a\": [1, 2]}}", "{\"x\":{\"a\":[1,2]}}");
  expect_apply_error(s, "{\"x\": {\"a\": [2, 1]}}",
                     "x: {\"a\":[2,1]} is not "
                     "one of {\"a\":[1,2]}, 3");
}

static void enum_of_integers_refuses_an_equal_real(void **state)
{
  (void)state;
  expect_apply_error(ONE("{\"enum\": [1, 2]}"), "{\"x\": 1.0}",
                     "x: 1.0 is not one of 1, 2");
}

/* ---- core_schema_apply: objects ---------------------------------------- */

static void missing_required_key_is_refused(void **state)
{
  (void)state;
  expect_apply_error(feed_schema, "{\"interval_s\": 60}",
                     "feed_url: required but missing");
}

static void unknown_key_is_refused_with_the_known_ones(void **state)
{
  (void)state;
  expect_apply_error(feed_schema, "{\"feed_url\": \"u\", \"colour\": 1}",
                     "colour: unknown key (known: feed_url, interval_s)");
}

static void unknown_key_suggests_a_close_one(void **state)
{
  (void)state;
  expect_apply_error(feed_schema, "{\"feed_ur\": \"u\"}",
                     "feed_ur: unknown key (known: feed_url, interval_s); "
                     "did you mean \"feed_url\"?");
}

static void unknown_keys_pass_without_additional_properties_false(void **state)
{
  (void)state;
  expect_applied(ONE("{\"type\": \"integer\"}"), "{\"x\": 1, \"extra\": true}",
                 "{\"extra\":true,\"x\":1}");
}

static void
object_without_properties_and_additional_false_takes_no_keys(void **state)
{
  (void)state;
  expect_apply_error("{\"type\": \"object\", \"additionalProperties\": false}",
                     "{\"a\": 1}",
                     "a: unknown key (this object takes no keys)");
}

static const char *const auth_schema =
    "{\"type\": \"object\", \"properties\": {\n"
    "  \"auth\": {\"type\": \"object\", \"properties\": {\n"
    "     \"user\": {\"type\": \"string\"},\n"
    "     \"realm\": {\"type\": \"string\", \"default\": \"twin\"}},\n"
    "   \"required\": [\"user\"], \"additionalProperties\": false},\n"
    "  \"limits\": {\"type\": \"object\", \"properties\": {\n"
    "     \"max\": {\"type\": \"integer\", \"default\": 5},\n"
    "     \"inner\": {\"type\": \"object\", \"properties\": {\n"
    "        \"deep\": {\"type\": \"boolean\", \"default\": false}}}}}}}";

static void nested_objects_are_validated_with_their_path(void **state)
{
  (void)state;
  expect_apply_error(auth_schema, "{\"auth\": {\"realm\": \"x\"}}",
                     "auth.user: required but missing");
}

static void nested_unknown_keys_name_their_path(void **state)
{
  (void)state;
  expect_apply_error(auth_schema, "{\"auth\": {\"user\": \"u\", \"pw\": 1}}",
                     "auth.pw: unknown key (known: realm, user)");
}

static void nested_defaults_are_filled_in(void **state)
{
  (void)state;
  expect_applied(auth_schema, "{\"auth\": {\"user\": \"u\"}, \"limits\": {}}",
                 "{\"auth\":{\"realm\":\"twin\",\"user\":\"u\"},\"limits\":"
                 "{\"inner\":{\"deep\":false},\"max\":5}}");
}

static void missing_object_without_required_keys_is_created(void **state)
{
  (void)state;
  expect_applied(auth_schema, "{\"auth\": {\"user\": \"u\"}}",
                 "{\"auth\":{\"realm\":\"twin\",\"user\":\"u\"},\"limits\":"
                 "{\"inner\":{\"deep\":false},\"max\":5}}");
}

static void missing_object_with_required_keys_stays_missing(void **state)
{
  (void)state;
  expect_applied(auth_schema, "{}",
                 "{\"limits\":{\"inner\":{\"deep\":false},\"max\":5}}");
}

static void object_default_is_completed_with_inner_defaults(void **state)
{
  (void)state;
  expect_applied(
      ONE("{\"type\": \"object\", \"default\": {\"a\": 1}, \"properties\": "
          "{\"a\": {\"type\": \"integer\"}, \"b\": {\"type\": \"integer\", "
          "\"default\": 2}}}"),
      "{}", "{\"x\":{\"a\":1,\"b\":2}}");
}

/* ---- core_schema_apply: arrays ----------------------------------------- */

static const char *const feeds_schema =
    "{\"type\": \"object\", \"properties\": {\"feeds\": {\n"
    "  \"type\": \"array\", \"minItems\": 1, \"maxItems\": 3,\n"
    "  \"items\": {\"type\": \"object\", \"properties\": {\n"
    "     \"url\": {\"type\": \"string\"},\n"
    "     \"every_s\": {\"type\": \"integer\", \"default\": 60}},\n"
    "   \"required\": [\"url\"]}}}}";

static void array_items_are_validated_with_their_index(void **state)
{
  (void)state;
  expect_apply_error(feeds_schema,
                     "{\"feeds\": [{\"url\": \"a\"}, {\"url\": \"b\"}, "
                     "{\"url\": 3}]}",
                     "feeds[2].url: expected a string, got 3");
}

static void array_item_defaults_are_filled_in(void **state)
{
  (void)state;
  expect_applied(feeds_schema,
                 "{\"feeds\": [{\"url\": \"a\"}, {\"url\": \"b\", "
                 "\"every_s\": 5}]}",
                 "{\"feeds\":[{\"every_s\":60,\"url\":\"a\"},{\"every_s\":5,"
                 "\"url\":\"b\"}]}");
}

static void too_few_items_are_refused(void **state)
{
  (void)state;
  expect_apply_error(feeds_schema, "{\"feeds\": []}",
                     "feeds: has 0 items, fewer than the minimum 1");
}

static void too_many_items_are_refused(void **state)
{
  (void)state;
  expect_apply_error(feeds_schema,
                     "{\"feeds\": [{\"url\": \"a\"}, {\"url\": \"b\"}, "
                     "{\"url\": \"c\"}, {\"url\": \"d\"}]}",
                     "feeds: has 4 items, more than the maximum 3");
}

static void scalar_items_are_checked(void **state)
{
  (void)state;
  expect_apply_error(ONE("{\"type\": \"array\", \"items\": {\"type\": "
                         "\"integer\", \"minimum\": 0}}"),
                     "{\"x\": [0, 1, -1]}", "x[2]: -1 is below the minimum 0");
}

/* ---- core_schema_apply: the documents themselves ----------------------- */

static void no_schema_accepts_an_empty_object(void **state)
{
  (void)state;
  expect_applied(NULL, "{ }", "{}");
}

static void no_schema_refuses_any_key(void **state)
{
  (void)state;
  expect_apply_error(NULL, "{\"x\": 1}",
                     "x: unknown key (this plugin takes no config)");
}

static void absent_config_is_an_empty_object(void **state)
{
  (void)state;
  expect_applied(ONE("{\"default\": 1}"), NULL, "{\"x\":1}");
}

static void malformed_config_names_line_and_column(void **state)
{
  (void)state;
  expect_apply_error(feed_schema, "{\"feed_url\": \"u\",\n \"interval_s\": }",
                     "2:16: invalid JSON: ");
}

static void duplicate_config_keys_are_refused(void **state)
{
  (void)state;
  expect_apply_error(feed_schema, "{\"feed_url\": \"u\", \"feed_url\": \"v\"}",
                     "invalid JSON: duplicate object key");
}

static void config_must_be_an_object(void **state)
{
  (void)state;
  expect_apply_error(feed_schema, "[1]",
                     "expected an object with the plugin's settings, got an "
                     "array");
}

static void config_is_never_checked_against_a_bad_schema(void **state)
{
  (void)state;
  expect_apply_error("{\"type\": \"object\", \"properties\": 1}", "{}",
                     "the plugin's config schema is invalid: properties: ");
}

static void odd_keys_are_quoted_in_the_path(void **state)
{
  (void)state;
  expect_apply_error(feed_schema, "{\"feed_url\": \"u\", \"a b\": 1}",
                     "[\"a b\"]: unknown key");
}

static void long_values_are_shortened_in_messages(void **state)
{
  (void)state;
  expect_apply_error(
      ONE("{\"type\": \"string\", \"maxLength\": 3}"),
      "{\"x\": \"abcdefghijklmnopqrstuvwxyzabcdefghijklmnopqrstuvwxyz"
      "\"}",
      "x: \"abcdefghijklmnopqrstuvwxyzabcdefghijklmnopq...\" is "
      "longer than the maximum length 3 (52 characters)");
}

/* ---- core_schema_describe --------------------------------------------- */

static void describe_prints_type_default_limits_and_description(void **state)
{
  (void)state;
  char *d = core_schema_describe(
      "{\"type\": \"object\", \"properties\": {\"interval_s\": {\"type\": "
      "\"integer\", \"minimum\": 10, \"maximum\": 86400, \"default\": 300, "
      "\"description\": \"How often to pull the feed\"}}}");
  assert_non_null(d);
  assert_string_equal(d, "  interval_s  integer  default 300  (10..86400)  "
                         "How often to pull the feed\n");
  free(d);
}

static void describe_aligns_columns_and_marks_required(void **state)
{
  (void)state;
  char *d = core_schema_describe(feed_schema);
  assert_non_null(d);
  assert_string_equal(d, "  feed_url    string   required  (length >= 1)  "
                         "Where the feed lives\n"
                         "  interval_s  integer  default 300  (10..86400)  "
                         "How often to pull the feed\n");
  free(d);
}

static void describe_names_nested_properties(void **state)
{
  (void)state;
  char *d = core_schema_describe(feeds_schema);
  assert_non_null(d);
  assert_string_equal(d, "  feeds            array of object  (1..3 items)\n"
                         "  feeds[].url      string           required\n"
                         "  feeds[].every_s  integer          default 60\n");
  free(d);
}

static void describe_names_nested_object_properties(void **state)
{
  (void)state;
  char *d = core_schema_describe(
      "{\"type\": \"object\", \"properties\": {\"auth\": {\"type\": "
      "\"object\", \"properties\": {\"user\": {\"type\": \"string\", "
      "\"maxLength\": 20}, \"tries\": {\"type\": \"integer\", "
      "\"maximum\": 5}}, \"required\": [\"user\"]}}}");
  assert_non_null(d);
  assert_string_equal(d, "  auth        object\n"
                         "  auth.user   string   required  (length <= 20)\n"
                         "  auth.tries  integer  (<= 5)\n");
  free(d);
}

static void describe_lists_enum_values(void **state)
{
  (void)state;
  char *d = core_schema_describe(
      ONE("{\"type\": \"string\", \"enum\": [\"eco\", \"comfort\"]}"));
  assert_non_null(d);
  assert_string_equal(d, "  x  string  one of \"eco\", \"comfort\"\n");
  free(d);
}

static void describe_of_no_properties_says_so(void **state)
{
  (void)state;
  char *d = core_schema_describe("{\"type\": \"object\"}");
  assert_non_null(d);
  assert_string_equal(d, "  (no settings)\n");
  free(d);
}

static void describe_of_a_bad_schema_is_null(void **state)
{
  (void)state;
  assert_null(core_schema_describe("{\"type\": \"strin\"}"));
  assert_null(core_schema_describe("{"));
}

int main(void)
{
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(feed_schema_is_accepted),
      cmocka_unit_test(every_keyword_is_accepted),
      cmocka_unit_test(null_schema_is_refused_by_check),
      cmocka_unit_test(malformed_schema_names_line_and_column),
      cmocka_unit_test(duplicate_schema_keys_are_refused),
      cmocka_unit_test(schema_must_be_an_object),
      cmocka_unit_test(top_level_must_be_type_object),
      cmocka_unit_test(top_level_without_type_is_refused),
      cmocka_unit_test(unknown_keyword_is_refused_with_a_suggestion),
      cmocka_unit_test(unknown_type_name_is_refused),
      cmocka_unit_test(type_lists_are_refused),
      cmocka_unit_test(property_schema_must_be_an_object),
      cmocka_unit_test(properties_must_be_an_object),
      cmocka_unit_test(minimum_must_be_a_number),
      cmocka_unit_test(length_limits_must_be_counts),
      cmocka_unit_test(item_limits_must_be_whole_numbers),
      cmocka_unit_test(minimum_above_maximum_is_refused),
      cmocka_unit_test(min_length_above_max_length_is_refused),
      cmocka_unit_test(keyword_of_another_type_is_refused),
      cmocka_unit_test(items_only_apply_to_arrays),
      cmocka_unit_test(required_must_be_an_array),
      cmocka_unit_test(required_names_must_be_properties),
      cmocka_unit_test(required_names_must_be_strings),
      cmocka_unit_test(required_names_may_not_repeat),
      cmocka_unit_test(additional_properties_true_is_refused),
      cmocka_unit_test(additional_properties_schema_is_refused),
      cmocka_unit_test(enum_must_be_a_non_empty_array),
      cmocka_unit_test(enum_values_must_fit_the_type),
      cmocka_unit_test(default_must_pass_its_own_rules),
      cmocka_unit_test(default_must_have_the_type),
      cmocka_unit_test(default_must_be_in_the_enum),
      cmocka_unit_test(object_default_must_hold_its_required_keys),
      cmocka_unit_test(description_must_be_a_string),
      cmocka_unit_test(nested_schema_errors_name_the_whole_path),
      cmocka_unit_test(very_deep_schemas_are_refused),
      cmocka_unit_test(defaults_are_filled_in),
      cmocka_unit_test(given_values_win_over_defaults),
      cmocka_unit_test(output_is_compact_with_sorted_keys),
      cmocka_unit_test(integer_refuses_a_real),
      cmocka_unit_test(number_accepts_integers_and_reals),
      cmocka_unit_test(string_refuses_a_number),
      cmocka_unit_test(boolean_refuses_a_string),
      cmocka_unit_test(array_refuses_an_object),
      cmocka_unit_test(untyped_property_accepts_any_value),
      cmocka_unit_test(value_below_minimum_is_refused),
      cmocka_unit_test(value_above_maximum_is_refused),
      cmocka_unit_test(limits_are_inclusive),
      cmocka_unit_test(real_limits_compare_with_reals),
      cmocka_unit_test(short_string_is_refused),
      cmocka_unit_test(long_string_is_refused),
      cmocka_unit_test(string_length_counts_characters_not_bytes),
      cmocka_unit_test(enum_accepts_a_listed_value),
      cmocka_unit_test(enum_refuses_other_values_and_lists_the_allowed),
      cmocka_unit_test(enum_compares_whole_values),
      cmocka_unit_test(enum_of_integers_refuses_an_equal_real),
      cmocka_unit_test(missing_required_key_is_refused),
      cmocka_unit_test(unknown_key_is_refused_with_the_known_ones),
      cmocka_unit_test(unknown_key_suggests_a_close_one),
      cmocka_unit_test(unknown_keys_pass_without_additional_properties_false),
      cmocka_unit_test(
          object_without_properties_and_additional_false_takes_no_keys),
      cmocka_unit_test(nested_objects_are_validated_with_their_path),
      cmocka_unit_test(nested_unknown_keys_name_their_path),
      cmocka_unit_test(nested_defaults_are_filled_in),
      cmocka_unit_test(missing_object_without_required_keys_is_created),
      cmocka_unit_test(missing_object_with_required_keys_stays_missing),
      cmocka_unit_test(object_default_is_completed_with_inner_defaults),
      cmocka_unit_test(array_items_are_validated_with_their_index),
      cmocka_unit_test(array_item_defaults_are_filled_in),
      cmocka_unit_test(too_few_items_are_refused),
      cmocka_unit_test(too_many_items_are_refused),
      cmocka_unit_test(scalar_items_are_checked),
      cmocka_unit_test(no_schema_accepts_an_empty_object),
      cmocka_unit_test(no_schema_refuses_any_key),
      cmocka_unit_test(absent_config_is_an_empty_object),
      cmocka_unit_test(malformed_config_names_line_and_column),
      cmocka_unit_test(duplicate_config_keys_are_refused),
      cmocka_unit_test(config_must_be_an_object),
      cmocka_unit_test(config_is_never_checked_against_a_bad_schema),
      cmocka_unit_test(odd_keys_are_quoted_in_the_path),
      cmocka_unit_test(long_values_are_shortened_in_messages),
      cmocka_unit_test(describe_prints_type_default_limits_and_description),
      cmocka_unit_test(describe_aligns_columns_and_marks_required),
      cmocka_unit_test(describe_names_nested_properties),
      cmocka_unit_test(describe_names_nested_object_properties),
      cmocka_unit_test(describe_lists_enum_values),
      cmocka_unit_test(describe_of_no_properties_says_so),
      cmocka_unit_test(describe_of_a_bad_schema_is_null),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
