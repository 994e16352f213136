/*
 * config.c — loads the host config (see config.h): checks every rule, resolves
 * relative paths against the file that names them, reads town packs, and
 * refuses a bad config whole with a message naming the file, the JSON path
 * and the problem. Nothing half-built ever reaches the caller.
 */
#include "config.h"
#include "tz.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define JPATH_MAX 256
#define TICK_MAX 86400

/* Where messages point and where relative paths start: the host config
 * itself, or a town pack's town.json. */
typedef struct parse_ctx {
  const char *file;     /* named in messages */
  const char *base_dir; /* relative paths resolve against it */
  core_err *err;
} parse_ctx;

static const char *const root_keys[] = {"data_dir", "plugin_path", "http",
                                        "towns"};
static const char *const town_keys[] = {"id",       "name",    "timezone",
                                        "location", "scripts", "data",
                                        "plugins",  "rules",   "api",
                                        "deadlines"};
static const char *const http_keys[] = {"listen",
                                        "port",
                                        "threads",
                                        "max_body_bytes",
                                        "max_header_bytes",
                                        "max_connections",
                                        "max_connections_per_client",
                                        "request_timeout_s",
                                        "max_documents",
                                        "max_streams_per_client",
                                        "max_streams_per_town"};
static const char *const api_keys[] = {"anonymous_read"};
static const char *const rules_keys[] = {"instructions", "wall_ms",
                                         "memory_mib"};
static const char *const location_keys[] = {"lat", "lon"};
static const char *const plugin_keys[] = {"config", "tick_s", "enabled",
                                          "fetch_s", "fetch_timeout_s"};
static const char *const deadline_keys[] = {"query_ms", "scenario_ms"};

#define N_OF(a) (sizeof(a) / sizeof((a)[0]))

/* "file: jpath: problem" (jpath may be empty). Always TWIN_ERR_CONFIG. */
static int fail(const parse_ctx *c, const char *jpath, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static int fail(const parse_ctx *c, const char *jpath, const char *fmt, ...)
{
  char msg[768];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(msg, sizeof msg, fmt, ap);
  va_end(ap);
  if (jpath && *jpath)
    return core_err_set(c->err, TWIN_ERR_CONFIG, "%s: %s: %s", c->file, jpath,
                        msg);
  return core_err_set(c->err, TWIN_ERR_CONFIG, "%s: %s", c->file, msg);
}

static int nomem(const parse_ctx *c)
{
  return core_err_set(c->err, TWIN_ERR_NOMEM, "%s: out of memory", c->file);
}

static void path_index(char *buf, size_t size, const char *parent, size_t i)
{
  snprintf(buf, size, "%s[%zu]", parent, i);
}

/* A real printed as briefly as it round-trips ("0.1", not jansson's
 * "0.10000000000000001"), always with a point or exponent. */
static void format_real(double d, char *buf, size_t size)
{
  for (int prec = 15; prec <= 17; prec++) {
    snprintf(buf, size, "%.*g", prec, d);
    if (strtod(buf, NULL) == d)
      break;
  }
  if (!strpbrk(buf, ".eEni") && strlen(buf) + 3 <= size)
    strcat(buf, ".0");
}

/* What a value is, for "expected X, got Y". */
static void describe_value(const json_t *v, char *buf, size_t size)
{
  switch (json_typeof(v)) {
  case JSON_OBJECT:
    snprintf(buf, size, "an object");
    return;
  case JSON_ARRAY:
    snprintf(buf, size, "an array");
    return;
  case JSON_REAL:
    format_real(json_real_value(v), buf, size);
    return;
  case JSON_INTEGER:
    snprintf(buf, size, "%" JSON_INTEGER_FORMAT, json_integer_value(v));
    return;
  case JSON_TRUE:
    snprintf(buf, size, "true");
    return;
  case JSON_FALSE:
    snprintf(buf, size, "false");
    return;
  case JSON_NULL:
    snprintf(buf, size, "null");
    return;
  case JSON_STRING:
    break;
  }
  char *s = json_dumps(v, JSON_ENCODE_ANY | JSON_COMPACT);
  if (!s) {
    snprintf(buf, size, "a string");
    return;
  }
  if (strlen(s) > 50)
    snprintf(buf, size, "%.46s...\"", s);
  else
    snprintf(buf, size, "%s", s);
  free(s);
}

/* v must be an object; else "<jpath>: expected <what>, got <v>". */
static int want_object(const parse_ctx *c, const char *jpath, const json_t *v,
                       const char *what)
{
  if (json_is_object(v))
    return TWIN_OK;
  char got[64];
  describe_value(v, got, sizeof got);
  return fail(c, jpath, "expected %s, got %s", what, got);
}

/* Every key of obj must be one of known; a typo is an error, not a silent
 * default. */
static int check_keys(const parse_ctx *c, const char *jpath, json_t *obj,
                      const char *const *known, size_t n_known)
{
  const char *key;
  json_t *val;
  json_object_foreach(obj, key, val)
  {
    size_t i;
    for (i = 0; i < n_known; i++)
      if (!strcmp(key, known[i]))
        break;
    if (i < n_known)
      continue;
    char list[256], hint[128], kp[JPATH_MAX];
    core_join_names(known, n_known, list, sizeof list);
    core_suggest(key, known, n_known, hint, sizeof hint);
    core_jpath_key(kp, sizeof kp, jpath, key);
    return fail(c, kp, "unknown key (known: %s)%s", list, hint);
  }
  return TWIN_OK;
}

/* A non-empty string or a message saying what was expected. */
static int want_string(const parse_ctx *c, const char *jpath, const json_t *v,
                       const char *what, const char **out)
{
  char got[64];
  if (!json_is_string(v)) {
    describe_value(v, got, sizeof got);
    return fail(c, jpath, "expected %s, got %s", what, got);
  }
  if (!*json_string_value(v))
    return fail(c, jpath, "must not be empty; expected %s", what);
  *out = json_string_value(v);
  return TWIN_OK;
}

/* Join unless dir is "." (so paths stay as short as the user wrote them). */
static char *resolve(const char *dir, const char *rel)
{
  if (!strcmp(dir, ".") && rel[0] != '/')
    return strdup(rel);
  return core_path_join(dir, rel);
}

/* A string field holding a path; resolved, or NULL with *out untouched
 * when absent. */
static int opt_path(const parse_ctx *c, const char *parent, json_t *obj,
                    const char *key, const char *what, char **out)
{
  json_t *v = json_object_get(obj, key);
  if (!v)
    return TWIN_OK;
  char kp[JPATH_MAX];
  const char *s = NULL;
  core_jpath_key(kp, sizeof kp, parent, key);
  int rc = want_string(c, kp, v, what, &s);
  if (rc)
    return rc;
  *out = resolve(c->base_dir, s);
  return *out ? TWIN_OK : nomem(c);
}

/* Area/City: at least two parts, each starting with a letter. */
static int tz_shaped(const char *tz)
{
  if (!strcmp(tz, "UTC"))
    return 1;
  if (!strchr(tz, '/'))
    return 0;
  for (const char *p = tz; p; p = strchr(p, '/')) {
    if (*p == '/')
      p++;
    if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z')))
      return 0;
  }
  return 1;
}

static int parse_timezone(const parse_ctx *c, const char *jpath,
                          const json_t *v, char **out)
{
  const char *tz = NULL;
  int rc = want_string(c, jpath, v, "a string such as \"Europe/Berlin\"", &tz);
  if (rc)
    return rc;
  char shown[64];
  describe_value(v, shown, sizeof shown);
  if (!core_tz_name_safe(tz))
    return fail(c, jpath,
                "%s is not a timezone name; use an IANA name such as "
                "\"Europe/Berlin\"",
                shown);
  const char *dir = core_tz_dir();
  struct stat st;
  if (stat(dir, &st) != 0 || !S_ISDIR(st.st_mode)) {
    if (!tz_shaped(tz))
      return fail(c, jpath,
                  "%s is not a timezone name shaped Area/City, such as "
                  "\"Europe/Berlin\"",
                  shown);
  } else if (!core_tz_in_database(dir, tz)) {
    return fail(c, jpath,
                "%s is not in the timezone database (%s); use an IANA name "
                "such as \"Europe/Berlin\"",
                shown, dir);
  }
  *out = strdup(tz);
  return *out ? TWIN_OK : nomem(c);
}

static int parse_degrees(const parse_ctx *c, const char *parent, json_t *loc,
                         const char *key, double limit, const char *what,
                         double *out)
{
  char kp[JPATH_MAX], got[64];
  core_jpath_key(kp, sizeof kp, parent, key);
  json_t *v = json_object_get(loc, key);
  if (!v)
    return fail(c, kp, "required (degrees %s, %g..%g)", what, -limit, limit);
  if (!json_is_number(v)) {
    describe_value(v, got, sizeof got);
    return fail(c, kp, "expected a number of degrees %s, got %s", what, got);
  }
  double d = json_number_value(v);
  if (!(d >= -limit && d <= limit)) {
    describe_value(v, got, sizeof got);
    return fail(c, kp, "%s is outside %g..%g", got, -limit, limit);
  }
  *out = d;
  return TWIN_OK;
}

static int parse_location(const parse_ctx *c, const char *jpath, json_t *v,
                          core_town *t)
{
  int rc = want_object(c, jpath, v,
                       "an object such as {\"lat\": 48.83, \"lon\": 12.96}");
  if (!rc)
    rc = check_keys(c, jpath, v, location_keys, N_OF(location_keys));
  if (!rc)
    rc = parse_degrees(c, jpath, v, "lat", 90, "north", &t->lat);
  if (!rc)
    rc = parse_degrees(c, jpath, v, "lon", 180, "east", &t->lon);
  if (!rc)
    t->has_location = 1;
  return rc;
}

/* A whole number in [lo, hi] at key of obj, or *out untouched if absent;
 * what is the expectation in words ("a whole number of milliseconds"). */
static int opt_int(const parse_ctx *c, const char *jpath, json_t *obj,
                   const char *key, json_int_t lo, json_int_t hi,
                   const char *what, json_int_t *out)
{
  json_t *v = json_object_get(obj, key);
  if (!v)
    return TWIN_OK;
  char kp[JPATH_MAX], got[64];
  core_jpath_key(kp, sizeof kp, jpath, key);
  describe_value(v, got, sizeof got);
  if (!json_is_integer(v) || json_integer_value(v) < lo ||
      json_integer_value(v) > hi)
    return fail(c, kp, "expected %s from %lld to %lld, got %s", what,
                (long long)lo, (long long)hi, got);
  *out = json_integer_value(v);
  return TWIN_OK;
}

/* "api": how the HTTP API treats the town (token only when absent). */
static int parse_api(const parse_ctx *c, const char *jpath, json_t *v,
                     core_town *t)
{
  int rc =
      want_object(c, jpath, v, "an object such as {\"anonymous_read\": true}");
  if (!rc)
    rc = check_keys(c, jpath, v, api_keys, N_OF(api_keys));
  if (rc)
    return rc;
  json_t *anon = json_object_get(v, "anonymous_read");
  if (anon && !json_is_boolean(anon)) {
    char kp[JPATH_MAX], got[64];
    core_jpath_key(kp, sizeof kp, jpath, "anonymous_read");
    describe_value(anon, got, sizeof got);
    return fail(c, kp,
                "expected true (read routes need no token) or false (every "
                "route needs a token), got %s",
                got);
  }
  t->anonymous_read = json_is_true(anon);
  return TWIN_OK;
}

/* "rules": limits of the town's Lua rules (defaults when absent). */
static int parse_rules(const parse_ctx *c, const char *jpath, json_t *v,
                       core_town *t)
{
  int rc = want_object(c, jpath, v,
                       "an object such as {\"instructions\": 5000000, "
                       "\"wall_ms\": 50, \"memory_mib\": 32}");
  if (!rc)
    rc = check_keys(c, jpath, v, rules_keys, N_OF(rules_keys));
  json_int_t n = 0, ms = 0, mib = 0;
  if (!rc)
    rc = opt_int(c, jpath, v, "instructions", 1000, 1000000000,
                 "a whole number of instructions", &n);
  if (!rc)
    rc = opt_int(c, jpath, v, "wall_ms", 1, 10000,
                 "a whole number of milliseconds", &ms);
  if (!rc)
    rc = opt_int(c, jpath, v, "memory_mib", 1, 1024, "a whole number of MiB",
                 &mib);
  t->rule_instructions = (uint64_t)n;
  t->rule_wall_ms = (uint32_t)ms;
  t->rule_memory_mib = (uint32_t)mib;
  return rc;
}

/* "deadlines": how long a query or scenario of the town may run. */
static int parse_deadlines(const parse_ctx *c, const char *jpath, json_t *v,
                           core_town *t)
{
  int rc = want_object(c, jpath, v,
                       "an object such as {\"query_ms\": 10000, "
                       "\"scenario_ms\": 60000}");
  if (!rc)
    rc = check_keys(c, jpath, v, deadline_keys, N_OF(deadline_keys));
  json_int_t q = 0, sc = 0;
  if (!rc)
    rc = opt_int(c, jpath, v, "query_ms", 10, 3600000,
                 "a whole number of milliseconds", &q);
  if (!rc)
    rc = opt_int(c, jpath, v, "scenario_ms", 10, 3600000,
                 "a whole number of milliseconds", &sc);
  if (q)
    t->query_ms = (uint32_t)q;
  if (sc)
    t->scenario_ms = (uint32_t)sc;
  return rc;
}

static int parse_plugin(const parse_ctx *c, const char *jpath, json_t *v,
                        core_town_plugin *p)
{
  char kp[JPATH_MAX], got[64];
  int rc = want_object(c, jpath, v,
                       "an object such as {\"config\": {...}, \"tick_s\": 60, "
                       "\"enabled\": true}");
  if (!rc)
    rc = check_keys(c, jpath, v, plugin_keys, N_OF(plugin_keys));
  if (rc)
    return rc;

  json_t *conf = json_object_get(v, "config");
  if (conf && !json_is_object(conf)) {
    core_jpath_key(kp, sizeof kp, jpath, "config");
    describe_value(conf, got, sizeof got);
    return fail(c, kp, "expected an object with the plugin's settings, got %s",
                got);
  }
  p->config_json = conf ? json_dumps(conf, JSON_COMPACT) : strdup("{}");
  if (!p->config_json)
    return nomem(c);

  json_t *tick = json_object_get(v, "tick_s");
  p->tick_s = -1;
  if (tick) {
    core_jpath_key(kp, sizeof kp, jpath, "tick_s");
    describe_value(tick, got, sizeof got);
    if (!json_is_integer(tick))
      return fail(c, kp, "expected a whole number of seconds (1..%d), got %s",
                  TICK_MAX, got);
    json_int_t s = json_integer_value(tick);
    if (s < 1 || s > TICK_MAX)
      return fail(c, kp,
                  "%s is outside 1..%d seconds (leave it out for the plugin's "
                  "own interval)",
                  got, TICK_MAX);
    p->tick_s = (int)s;
  }

  json_int_t fs = 0, ft = 0;
  rc = opt_int(c, jpath, v, "fetch_s", 1, TICK_MAX,
               "a whole number of seconds between fetches", &fs);
  if (!rc)
    rc = opt_int(c, jpath, v, "fetch_timeout_s", 1, 600,
                 "a whole number of seconds a fetch may take", &ft);
  if (rc)
    return rc;
  p->fetch_s = fs ? (int)fs : -1;
  p->fetch_timeout_s = ft ? (int)ft : -1;

  json_t *en = json_object_get(v, "enabled");
  p->enabled = 1;
  if (en) {
    if (!json_is_boolean(en)) {
      core_jpath_key(kp, sizeof kp, jpath, "enabled");
      describe_value(en, got, sizeof got);
      return fail(c, kp, "expected true or false, got %s", got);
    }
    p->enabled = json_is_true(en);
  }
  return TWIN_OK;
}

static int parse_plugins(const parse_ctx *c, const char *jpath, json_t *v,
                         core_town *t)
{
  char kp[JPATH_MAX];
  int rc = want_object(c, jpath, v,
                       "an object mapping plugin names to their settings");
  if (rc)
    return rc;
  size_t n = json_object_size(v);
  if (!n)
    return TWIN_OK;
  t->plugins = calloc(n, sizeof *t->plugins);
  if (!t->plugins)
    return nomem(c);
  const char *key;
  json_t *val;
  json_object_foreach(v, key, val)
  {
    core_town_plugin *p = &t->plugins[t->n_plugins++];
    core_jpath_key(kp, sizeof kp, jpath, key);
    if (!core_valid_id(key))
      return fail(c, kp,
                  "not a valid plugin name (1..40 of a-z, 0-9, - and _, "
                  "starting with a letter or digit)");
    p->name = strdup(key);
    if (!p->name)
      return nomem(c);
    int rc = parse_plugin(c, kp, val, p);
    if (rc)
      return rc;
  }
  return TWIN_OK;
}

/*
 * One town object. jpath is its path in c->file ("towns[1]", or "" for a
 * town pack's town.json); pack_dir is the town pack folder (NULL inline).
 */
static int parse_town(const parse_ctx *c, const char *jpath, json_t *obj,
                      const char *pack_dir, const char *data_root, core_town *t)
{
  char kp[JPATH_MAX];
  const char *s = NULL;
  int rc = check_keys(c, jpath, obj, town_keys, N_OF(town_keys));
  if (rc)
    return rc;
  t->source = strdup(c->file);
  if (!t->source)
    return nomem(c);

  core_jpath_key(kp, sizeof kp, jpath, "id");
  json_t *v = json_object_get(obj, "id");
  if (!v)
    return fail(c, kp,
                "required; a short name such as \"deggendorf\" (a-z, 0-9, - "
                "and _)");
  rc = want_string(c, kp, v, "a short name such as \"deggendorf\"", &s);
  if (rc)
    return rc;
  if (!core_valid_id(s)) {
    char shown[64];
    describe_value(v, shown, sizeof shown);
    return fail(c, kp,
                "%s is not a valid id (1..40 of a-z, 0-9, - and _, starting "
                "with a letter or digit)",
                shown);
  }
  t->id = strdup(s);
  if (!t->id)
    return nomem(c);

  core_jpath_key(kp, sizeof kp, jpath, "name");
  v = json_object_get(obj, "name");
  if (v) {
    rc = want_string(c, kp, v, "a display name such as \"Deggendorf\"", &s);
    if (rc)
      return rc;
  } else {
    s = t->id;
  }
  t->name = strdup(s);
  if (!t->name)
    return nomem(c);

  core_jpath_key(kp, sizeof kp, jpath, "timezone");
  v = json_object_get(obj, "timezone");
  if (!v)
    return fail(c, kp, "required; an IANA name such as \"Europe/Berlin\"");
  rc = parse_timezone(c, kp, v, &t->timezone);
  if (rc)
    return rc;

  v = json_object_get(obj, "location");
  if (v) {
    core_jpath_key(kp, sizeof kp, jpath, "location");
    rc = parse_location(c, kp, v, t);
    if (rc)
      return rc;
  }

  rc = opt_path(c, jpath, obj, "scripts", "a folder of the town's scripts",
                &t->script_dir);
  if (rc)
    return rc;
  if (!t->script_dir) {
    t->script_dir = pack_dir ? strdup(pack_dir) : resolve(c->base_dir, t->id);
    if (!t->script_dir)
      return nomem(c);
  }

  rc = opt_path(c, jpath, obj, "data", "a folder for the town's data",
                &t->data_dir);
  if (rc)
    return rc;
  if (!t->data_dir) {
    t->data_dir = resolve(data_root, t->id);
    if (!t->data_dir)
      return nomem(c);
  }

  v = json_object_get(obj, "rules");
  if (v) {
    core_jpath_key(kp, sizeof kp, jpath, "rules");
    rc = parse_rules(c, kp, v, t);
    if (rc)
      return rc;
  }

  v = json_object_get(obj, "api");
  if (v) {
    core_jpath_key(kp, sizeof kp, jpath, "api");
    rc = parse_api(c, kp, v, t);
    if (rc)
      return rc;
  }

  t->query_ms = CORE_QUERY_MS_DEFAULT;
  t->scenario_ms = CORE_SCENARIO_MS_DEFAULT;
  v = json_object_get(obj, "deadlines");
  if (v) {
    core_jpath_key(kp, sizeof kp, jpath, "deadlines");
    rc = parse_deadlines(c, kp, v, t);
    if (rc)
      return rc;
  }

  v = json_object_get(obj, "plugins");
  if (v) {
    core_jpath_key(kp, sizeof kp, jpath, "plugins");
    rc = parse_plugins(c, kp, v, t);
  }
  return rc;
}

static int syntax_error(core_err *err, const char *file, const json_error_t *je)
{
  return core_err_set(err, TWIN_ERR_CONFIG, "%s:%d:%d: invalid JSON: %s", file,
                      je->line, je->column, je->text);
}

/* A string entry: a town pack folder (relative to c->file) holding
 * town.json, whose own relative paths start in that folder. */
static int parse_pack(const parse_ctx *c, const char *jpath, const json_t *v,
                      const char *data_root, core_town *t)
{
  const char *rel = NULL;
  int rc = want_string(c, jpath, v, "the name of a town pack folder", &rel);
  if (rc)
    return rc;
  char *dir = resolve(c->base_dir, rel);
  char *file = dir ? core_path_join(dir, "town.json") : NULL;
  char *text = NULL;
  size_t len = 0;
  json_t *root = NULL;
  if (!file) {
    rc = nomem(c);
    goto done;
  }
  core_err why;
  rc = core_read_file(file, &text, &len, &why);
  if (rc) {
    rc = fail(c, jpath,
              "cannot read town pack \"%s\": %s (a string names a folder "
              "holding town.json)",
              rel, why.msg);
    goto done;
  }
  json_error_t je;
  root = json_loadb(text, len, JSON_REJECT_DUPLICATES, &je);
  if (!root) {
    rc = syntax_error(c->err, file, &je);
    goto done;
  }
  parse_ctx pc = {file, dir, c->err};
  rc = want_object(&pc, "", root, "a town object at the top level");
  if (rc)
    goto done;
  rc = parse_town(&pc, "", root, dir, data_root, t);
done:
  json_decref(root);
  free(text);
  free(file);
  free(dir);
  return rc;
}

/* Town ids are the tenants' keys: two towns with one id would share state. */
static int check_unique(const parse_ctx *c, const core_config *cfg, size_t i)
{
  const core_town *t = &cfg->towns[i];
  for (size_t j = 0; j < i; j++) {
    if (strcmp(cfg->towns[j].id, t->id))
      continue;
    const char *other = cfg->towns[j].source;
    if (!strcmp(t->source, c->file)) {
      char kp[JPATH_MAX];
      snprintf(kp, sizeof kp, "towns[%zu].id", i);
      if (!strcmp(other, c->file))
        return fail(c, kp, "\"%s\" is already used by towns[%zu]", t->id, j);
      return fail(c, kp, "\"%s\" is already used by towns[%zu] (%s)", t->id, j,
                  other);
    }
    /* A town pack: point at its town.json, and at the other town's file
     * when that is not the host config. */
    parse_ctx tc = {t->source, c->base_dir, c->err};
    int other_is_host = !strcmp(other, c->file);
    return fail(&tc, "id",
                "\"%s\" (towns[%zu]) is already used by towns[%zu]%s%s%s",
                t->id, i, j, other_is_host ? "" : " (",
                other_is_host ? "" : other, other_is_host ? "" : ")");
  }
  return TWIN_OK;
}

static int parse_towns(const parse_ctx *c, json_t *v, core_config *cfg)
{
  char got[64], kp[JPATH_MAX];
  if (!v)
    return fail(c, "towns",
                "required; list the towns this host serves, e.g. "
                "[\"deggendorf\"]");
  if (!json_is_array(v)) {
    describe_value(v, got, sizeof got);
    return fail(c, "towns",
                "expected an array of towns (objects or town pack folders), "
                "got %s",
                got);
  }
  size_t n = json_array_size(v);
  if (!n)
    return fail(c, "towns", "a host needs at least one town");
  cfg->towns = calloc(n, sizeof *cfg->towns);
  if (!cfg->towns)
    return nomem(c);
  for (size_t i = 0; i < n; i++) {
    json_t *e = json_array_get(v, i);
    core_town *t = &cfg->towns[cfg->n_towns++];
    path_index(kp, sizeof kp, "towns", i);
    int rc;
    if (json_is_string(e)) {
      rc = parse_pack(c, kp, e, cfg->data_dir, t);
    } else if (json_is_object(e)) {
      rc = parse_town(c, kp, e, NULL, cfg->data_dir, t);
    } else {
      describe_value(e, got, sizeof got);
      rc = fail(c, kp,
                "expected a town object or the name of a town pack folder, "
                "got %s",
                got);
    }
    if (!rc)
      rc = check_unique(c, cfg, i);
    if (rc)
      return rc;
  }
  return TWIN_OK;
}

static int parse_plugin_path(const parse_ctx *c, json_t *v, core_config *cfg)
{
  char got[64], kp[JPATH_MAX];
  if (!json_is_array(v)) {
    describe_value(v, got, sizeof got);
    return fail(c, "plugin_path",
                "expected an array of folders such as "
                "[\"/opt/twin/plugins\"], got %s",
                got);
  }
  size_t n = json_array_size(v);
  if (!n)
    return TWIN_OK;
  cfg->plugin_path = calloc(n, sizeof *cfg->plugin_path);
  if (!cfg->plugin_path)
    return nomem(c);
  for (size_t i = 0; i < n; i++) {
    const char *s = NULL;
    path_index(kp, sizeof kp, "plugin_path", i);
    int rc = want_string(c, kp, json_array_get(v, i), "a folder name", &s);
    if (rc)
      return rc;
    char *p = resolve(c->base_dir, s);
    if (!p)
      return nomem(c);
    cfg->plugin_path[cfg->n_plugin_path++] = p;
  }
  return TWIN_OK;
}

/* "http": the API listener. Every field is optional; the defaults are set
 * before, so a config without "http" gets them too. */
static int parse_http(const parse_ctx *c, json_t *v, core_http_config *h)
{
  int rc = want_object(c, "http", v,
                       "an object such as {\"listen\": \"127.0.0.1\", "
                       "\"port\": 8080}");
  if (!rc)
    rc = check_keys(c, "http", v, http_keys, N_OF(http_keys));
  if (rc)
    return rc;
  json_t *listen = json_object_get(v, "listen");
  if (listen) {
    const char *s = NULL;
    rc =
        want_string(c, "http.listen", listen,
                    "a numeric IP address such as \"127.0.0.1\" or \"::\"", &s);
    if (rc)
      return rc;
    unsigned char addr[sizeof(struct in6_addr)];
    if (inet_pton(AF_INET, s, addr) != 1 && inet_pton(AF_INET6, s, addr) != 1) {
      char shown[64];
      describe_value(listen, shown, sizeof shown);
      return fail(c, "http.listen",
                  "%s is not a numeric IPv4 or IPv6 address; use e.g. "
                  "\"127.0.0.1\" (this machine only), \"0.0.0.0\" (every "
                  "IPv4 interface) or \"::\" (every interface)",
                  shown);
    }
    char *copy = strdup(s);
    if (!copy)
      return nomem(c);
    free(h->listen);
    h->listen = copy;
  }
  json_int_t port = h->port, threads = h->threads,
             body = (json_int_t)h->max_body_bytes,
             header = (json_int_t)h->max_header_bytes,
             conns = h->max_connections,
             per_client = h->max_connections_per_client,
             timeout = h->request_timeout_s,
             docs = (json_int_t)h->max_documents,
             streams_client = h->max_streams_per_client,
             streams_town = h->max_streams_per_town;
  rc = opt_int(c, "http", v, "port", 0, 65535,
               "a TCP port number (0: any free port)", &port);
  if (!rc)
    rc = opt_int(c, "http", v, "threads", 0, 64,
                 "a number of threads (0: one per CPU)", &threads);
  if (!rc)
    rc = opt_int(c, "http", v, "max_body_bytes", 1, (json_int_t)1 << 30,
                 "a whole number of bytes", &body);
  if (!rc)
    rc = opt_int(c, "http", v, "max_header_bytes", 1024, (json_int_t)1 << 20,
                 "a whole number of bytes", &header);
  if (!rc)
    rc = opt_int(c, "http", v, "max_connections", 1, 10000,
                 "a whole number of connections", &conns);
  if (!rc)
    rc = opt_int(c, "http", v, "max_connections_per_client", 1, 10000,
                 "a whole number of connections from one client address",
                 &per_client);
  if (!rc)
    rc = opt_int(c, "http", v, "request_timeout_s", 1, 3600,
                 "a whole number of seconds", &timeout);
  if (!rc)
    rc = opt_int(c, "http", v, "max_documents", 1, 1000000,
                 "a whole number of documents per ingest request", &docs);
  if (!rc)
    rc = opt_int(c, "http", v, "max_streams_per_client", 1, 10000,
                 "a whole number of event streams", &streams_client);
  if (!rc)
    rc = opt_int(c, "http", v, "max_streams_per_town", 1, 10000,
                 "a whole number of event streams", &streams_town);
  h->port = (int)port;
  h->threads = (int)threads;
  h->max_body_bytes = (size_t)body;
  h->max_header_bytes = (size_t)header;
  h->max_connections = (int)conns;
  h->max_connections_per_client = (int)per_client;
  h->request_timeout_s = (int)timeout;
  h->max_documents = (size_t)docs;
  h->max_streams_per_client = (int)streams_client;
  h->max_streams_per_town = (int)streams_town;
  return rc;
}

static int parse_root(const parse_ctx *c, json_t *root, core_config *cfg)
{
  cfg->path = strdup(c->file);
  if (!cfg->path)
    return nomem(c);
  int rc = want_object(c, "", root,
                       "an object such as {\"towns\": [...]} at the top level");
  if (!rc)
    rc = check_keys(c, "", root, root_keys, N_OF(root_keys));
  if (!rc)
    rc = opt_path(c, "", root, "data_dir", "a folder name", &cfg->data_dir);
  if (!rc && !cfg->data_dir) {
    cfg->data_dir = resolve(c->base_dir, "data");
    if (!cfg->data_dir)
      rc = nomem(c);
  }
  json_t *pp = json_object_get(root, "plugin_path");
  if (!rc && pp)
    rc = parse_plugin_path(c, pp, cfg);
  cfg->http = (core_http_config){.listen = strdup("127.0.0.1"),
                                 .port = 8080,
                                 .threads = 0,
                                 .max_body_bytes = 1 << 20,
                                 .max_header_bytes = 16 << 10,
                                 .max_connections = 256,
                                 .max_connections_per_client = 32,
                                 .request_timeout_s = 30,
                                 .max_documents = 10000,
                                 .max_streams_per_client = 4,
                                 .max_streams_per_town = 64};
  if (!rc && !cfg->http.listen)
    rc = nomem(c);
  json_t *http = json_object_get(root, "http");
  if (!rc && http)
    rc = parse_http(c, http, &cfg->http);
  if (!rc)
    rc = parse_towns(c, json_object_get(root, "towns"), cfg);
  return rc;
}

int core_config_parse(const char *text, size_t len, const char *name,
                      const char *base_dir, core_config **out, core_err *err)
{
  if (!out)
    return core_err_set(err, TWIN_ERR_INVALID, "config: no place for result");
  *out = NULL;
  if (!name || !*name)
    name = "config";
  if (!base_dir || !*base_dir)
    base_dir = ".";
  if (!text && len)
    return core_err_set(err, TWIN_ERR_INVALID, "%s: no text", name);

  json_error_t je;
  json_t *root = json_loadb(text ? text : "", len, JSON_REJECT_DUPLICATES, &je);
  if (!root)
    return syntax_error(err, name, &je);
  parse_ctx c = {name, base_dir, err};
  core_config *cfg = calloc(1, sizeof *cfg);
  int rc = cfg ? parse_root(&c, root, cfg) : nomem(&c);
  json_decref(root);
  if (rc) {
    core_config_free(cfg);
    return rc;
  }
  *out = cfg;
  return TWIN_OK;
}

int core_config_load(const char *path, core_config **out, core_err *err)
{
  if (!out)
    return core_err_set(err, TWIN_ERR_INVALID, "config: no place for result");
  *out = NULL;
  if (!path || !*path)
    return core_err_set(err, TWIN_ERR_INVALID, "no config file given");
  struct stat st;
  if (stat(path, &st) != 0) {
    int e = errno;
    return core_err_set(err, e == ENOENT ? TWIN_ERR_NOT_FOUND : TWIN_ERR_CONFIG,
                        "%s: cannot open: %s", path, strerror(e));
  }
  if (S_ISDIR(st.st_mode))
    return core_err_set(err, TWIN_ERR_CONFIG,
                        "%s: is a folder; give the host config file (a .json "
                        "file)",
                        path);
  char *text = NULL;
  size_t len = 0;
  int rc = core_read_file(path, &text, &len, err);
  if (rc)
    return rc == TWIN_ERR_NOMEM ? rc : TWIN_ERR_CONFIG;
  char *dir = core_path_dir(path);
  if (!dir) {
    free(text);
    return core_err_set(err, TWIN_ERR_NOMEM, "%s: out of memory", path);
  }
  rc = core_config_parse(text, len, path, dir, out, err);
  free(dir);
  free(text);
  return rc;
}

static void free_town(core_town *t)
{
  for (size_t i = 0; i < t->n_plugins; i++) {
    free(t->plugins[i].name);
    free(t->plugins[i].config_json);
  }
  free(t->plugins);
  free(t->id);
  free(t->name);
  free(t->timezone);
  free(t->script_dir);
  free(t->data_dir);
  free(t->source);
}

void core_config_free(core_config *cfg)
{
  if (!cfg)
    return;
  for (size_t i = 0; i < cfg->n_towns; i++)
    free_town(&cfg->towns[i]);
  free(cfg->towns);
  for (size_t i = 0; i < cfg->n_plugin_path; i++)
    free(cfg->plugin_path[i]);
  free(cfg->plugin_path);
  free(cfg->http.listen);
  free(cfg->data_dir);
  free(cfg->path);
  free(cfg);
}

const core_town *core_config_town(const core_config *cfg, const char *id)
{
  if (!cfg || !id)
    return NULL;
  for (size_t i = 0; i < cfg->n_towns; i++)
    if (cfg->towns[i].id && !strcmp(cfg->towns[i].id, id))
      return &cfg->towns[i];
  return NULL;
}

const core_town *core_config_town_or_err(const core_config *cfg,
                                         const char *id, core_err *err)
{
  const core_town *t = core_config_town(cfg, id);
  if (t || !cfg)
    return t;
  const char *ids[64] = {0};
  size_t n = 0;
  for (; n < cfg->n_towns && n < 64; n++)
    ids[n] = cfg->towns[n].id;
  char known[512], hint[160];
  core_join_names(ids, n, known, sizeof known);
  core_suggest(id ? id : "", ids, n, hint, sizeof hint);
  core_err_set(err, TWIN_ERR_NOT_FOUND,
               "unknown town '%.60s' (this host serves: %s)%s", id ? id : "",
               n ? known : "no towns", hint);
  return NULL;
}
