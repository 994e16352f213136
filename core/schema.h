/*
 * schema.h — a plugin's config schema (a small subset of JSON Schema, see
 * twin_plugin.config_schema in twin.h) and the check of a town's config
 * against it, so the host refuses a bad config before the plugin sees it.
 */
#ifndef CORE_SCHEMA_H
#define CORE_SCHEMA_H

#include <jansson.h>
#include <stddef.h>

#include "util.h"

/*
 * Check that schema_json is a schema this host understands: valid JSON, an
 * object with "type":"object", only known keywords, each with the right kind
 * of value, defaults that satisfy their own rules. Returns TWIN_OK or
 * TWIN_ERR_CONFIG with err naming the schema path, e.g.
 *   "properties.interval_s.minimum: expected a number".
 */
int core_schema_check(const char *schema_json, core_err *err);

/*
 * Validate config (JSON text, len bytes) against the schema and fill in
 * defaults. schema_json NULL means "no config": only {} is accepted.
 * On success *out is newly allocated NUL-terminated compact JSON text of the
 * completed config (caller frees). On failure returns TWIN_ERR_CONFIG and err
 * names the JSON path and the rule, e.g.
 *   "interval_s: 5 is below the minimum 10"
 *   "feed_url: required but missing"
 *   "colour: unknown key (known: feed_url, interval_s)"
 */
int core_schema_apply(const char *schema_json, const char *config, size_t len,
                      char **out, core_err *err);

/*
 * The same for a request of a declared op: load a schema once (checked as
 * core_schema_check does; *out a new reference), then validate a parsed
 * value against it in place (defaults filled in). Errors are
 * TWIN_ERR_CONFIG with the JSON path in err->field and in the message.
 * A loaded schema is only read: several threads may validate with it at
 * once.
 */
int core_schema_load(const char *schema_json, json_t **out, core_err *err);
int core_schema_validate(json_t *schema, json_t *value, core_err *err);

/* Print a schema for people: one line per property with type, default,
 * limits and description. Caller frees. NULL on bad schema. */
char *core_schema_describe(const char *schema_json);

#endif
