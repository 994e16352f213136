/*
 * config.h — the host config: which towns this host serves, each town's
 * enabled plugins and their config, where data, scripts and plugins live.
 *
 * A config is JSON. An invalid one is refused whole with a message naming the
 * file, the JSON path and what is wrong; the host never starts half-configured.
 *
 *   {
 *     "data_dir": "../data",                    // default "data"
 *     "plugin_path": ["/opt/twin/plugins"],     // optional, searched after
 *                                               //  the build tree and prefix
 *     "http": { "listen": "127.0.0.1",          // the HTTP API of serve; all
 *               "port": 8080,                   //  optional. port 0: any
 *               "threads": 0,                   //  free port. threads 0: one
 *               "max_body_bytes": 1048576,      //  per CPU, at least 2
 *               "max_header_bytes": 16384,
 *               "max_connections": 256,
 *               "max_connections_per_client": 32,
 *               "request_timeout_s": 30,   // headers and body of one
 *                                          //  request, from its first byte
 *               "max_documents": 10000,    // per ingest request
 *               "max_streams_per_client": 4,
 *               "max_streams_per_town": 64 },
 *     "towns": [
 *       "deggendorf",                           // a town pack folder holding
 *                                               //  town.json (relative to
 *                                               //  this file)
 *       { "id": "plattling", "name": "Plattling",
 *         "timezone": "Europe/Berlin",
 *         "location": { "lat": 48.77, "lon": 12.87 },
 *         "scripts": "plattling",               // default: the town pack
 *                                               //  folder, else scripts/<id>
 *         "data": "../data/plattling",          // default <data_dir>/<id>
 *         "plugins": { "sensors": { "config": { ... }, "tick_s": 60,
 *                                   "fetch_s": 300,       // since ABI 1.2:
 *                                   "fetch_timeout_s": 30, // feed pulls
 *                                   "enabled": true } },
 *         "deadlines": { "query_ms": 10000,     // how long one query or
 *                        "scenario_ms": 60000 }, //  scenario may run
 *         "rules": { "instructions": 5000000, "wall_ms": 50,
 *                    "memory_mib": 32 },        // limits of the town's Lua
 *                                               //  rules; all optional
 *         "api": { "anonymous_read": true } }   // requests without a token
 *                                               //  may use the town's read
 *                                               //  routes (default false)
 *     ]
 *   }
 *
 * Relative paths are relative to the file that names them.
 */
#ifndef CORE_CONFIG_H
#define CORE_CONFIG_H

#include <stddef.h>
#include <stdint.h>

#include "util.h"

typedef struct core_town_plugin {
  char *name;        /* plugin name, a valid id */
  char *config_json; /* the town's config object for it as JSON text ("{}"
                        when absent); not yet checked against the schema */
  int tick_s;        /* -1: the plugin's own default */
  int enabled;       /* 0 when "enabled": false */
  int fetch_s;       /* -1: the plugin's own fetch_interval_s */
  int fetch_timeout_s; /* -1: CORE_FETCH_TIMEOUT_S_DEFAULT */
} core_town_plugin;

/* How long a query, a scenario and a fetch may run unless the town says. */
#define CORE_QUERY_MS_DEFAULT 10000
#define CORE_SCENARIO_MS_DEFAULT 60000
#define CORE_FETCH_TIMEOUT_S_DEFAULT 30

typedef struct core_town {
  char *id;       /* [a-z0-9_-]{1,40}, unique in the config */
  char *name;     /* display name, non-empty */
  char *timezone; /* IANA name that exists in the zoneinfo database */
  double lat, lon;
  int has_location;
  char *script_dir; /* absolute or relative to cwd, resolved */
  char *data_dir;   /* resolved */
  char *source;     /* the file that defined the town (for messages) */
  core_town_plugin *plugins;
  size_t n_plugins;
  /* "rules": limits of the town's Lua rules; 0 = the default */
  uint64_t rule_instructions;
  uint32_t rule_wall_ms, rule_memory_mib;
  /* "api": requests without a token may use the town's read routes */
  int anonymous_read;
  /* "deadlines": of one query and one scenario, in ms */
  uint32_t query_ms, scenario_ms;
} core_town;

/* "http": the HTTP API's listener and limits (defaults when absent). */
typedef struct core_http_config {
  char *listen;            /* numeric IPv4/IPv6 address; default "127.0.0.1" */
  int port;                /* default 8080; 0 = any free port */
  int threads;             /* default 0 = one per CPU, at least 2 */
  size_t max_body_bytes;   /* default 1 MiB */
  size_t max_header_bytes; /* default 16 KiB */
  int max_connections;     /* default 256 */
  /* the hardening limits (docs/api.md "Limits") */
  int max_connections_per_client; /* per client address; default 32 */
  int request_timeout_s;          /* a request's headers and body; 30 */
  size_t max_documents;           /* per ingest request; default 10000 */
  int max_streams_per_client;     /* event streams; default 4 */
  int max_streams_per_town;       /* event streams; default 64 */
} core_http_config;

typedef struct core_config {
  char *path;     /* the config file as given */
  char *data_dir; /* resolved */
  char **plugin_path;
  size_t n_plugin_path;
  core_town *towns;
  size_t n_towns;
  core_http_config http;
} core_config;

/*
 * Load and validate the config file at path. On success *out is owned by the
 * caller (core_config_free). On failure returns TWIN_ERR_CONFIG (or
 * TWIN_ERR_NOT_FOUND for a missing file) and err names file, JSON path and
 * problem, e.g.
 *   "scripts/demo.json: towns[1].timezone: expected a string such as
 *    \"Europe/Berlin\", got 42".
 */
int core_config_load(const char *path, core_config **out, core_err *err);

/* The same from text already in memory; base_dir resolves relative paths,
 * name is used in messages. */
int core_config_parse(const char *text, size_t len, const char *name,
                      const char *base_dir, core_config **out, core_err *err);

void core_config_free(core_config *cfg);

/* The town with this id, or NULL. */
const core_town *core_config_town(const core_config *cfg, const char *id);
/* The same, or NULL with err (TWIN_ERR_NOT_FOUND) saying so, with the
 * towns there are and the closest id:
 *   unknown town 'plattlin' (this host serves: deggendorf, plattling); did
 *   you mean "plattling"? */
const core_town *core_config_town_or_err(const core_config *cfg,
                                         const char *id, core_err *err);

#endif
