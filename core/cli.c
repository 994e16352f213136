/*
 * cli.c — the twinhost command line: the help texts, option parsing,
 * dispatch to the command groups (cli_plugins.c, cli_ingest.c,
 * cli_store.c, cli_script.c, cli_token.c, serve.c), and the helpers they
 * share (errors, opening the host, printing JSON, reading input).
 */
#include "cli.h"

#include <errno.h>
#include <jansson.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "crash.h"
#include "host.h"

/* ---- help ---------------------------------------------------------------- */

static const char *usage_main =
    "usage: twinhost [--config FILE] <command> [options]\n"
    "\n"
    "twinhost serves municipal digital twins: towns, their plugins and state.\n"
    "\n"
    "commands:\n"
    "  serve                 run the host in the foreground\n"
    "  plugins list          plugins found, refused files, per-town status\n"
    "  plugins info NAME     one plugin: descriptor and config schema\n"
    "  plugins check FILE    check a plugin file without loading it here\n"
    "  ingest                import documents into a town's plugin\n"
    "  query                 ask a town's plugin a question\n"
    "  scenario              run a what-if scenario (changes nothing)\n"
    "  entities              list a town's entities and their attributes\n"
    "  history               an entity attribute's observations over time\n"
    "  events                a town's recent events\n"
    "  script check|reload|status|replay TOWN\n"
    "                        a town's Lua rules: check, reload, status, "
    "replay\n"
    "  backup DIR            online, compacting copy of the state\n"
    "  restore DIR           replace the state with a backup\n"
    "  token create|list|revoke\n"
    "                        API tokens of a town (for the HTTP API)\n"
    "\n"
    "The config is --config FILE, else $TWINHOST_CONFIG, else "
    "./twinhost.json.\n"
    "`twinhost <command> --help` explains each command.\n";

typedef struct command {
  const char *name;
  int (*run)(cli_opts *o);
  const char *help;
} command;


static const command commands[] = {
    {"serve", cli_serve,
     "usage: twinhost serve [--listen ADDR:PORT]\n"
     "Run the host in the foreground: opens every town's plugins, runs their\n"
     "ticks on schedule, the ingest writer and the HTTP API (docs/api.md).\n"
     "The API listens where the config's \"http\" says (default\n"
     "127.0.0.1:8080); --listen overrides it (port 0: any free port; the\n"
     "port taken is printed). Ctrl-C or SIGTERM stops accepting requests,\n"
     "finishes those in flight, commits what was accepted and exits 0.\n"},
    {"plugins", cli_cmd_plugins,
     "usage: twinhost plugins list\n"
     "       twinhost plugins info NAME [--town TOWN]\n"
     "       twinhost plugins check FILE.so\n"
     "list: every plugin found on the search path, every refused file with\n"
     "      its reason, and each town's plugins with their status.\n"
     "info: a plugin's descriptor and config schema; with --town, what the\n"
     "      running instance says about itself (describe).\n"
     "check: load FILE in a separate process and say in one line whether a\n"
     "      host would accept it, and if not, why.\n"},
    {"ingest", cli_cmd_ingest,
     "usage: twinhost ingest --town TOWN --plugin PLUGIN [FILE|-] [--whole]\n"
     "                       [--content-type TYPE] [--ack]\n"
     "Import documents (default: standard input). The input is read as the\n"
     "HTTP API reads an ingest body: JSON Lines, one document per line;\n"
     "from a FILE ending in .json a JSON array of documents,\n"
     "{\"documents\": [...]} or one document. Input that is not JSON\n"
     "anywhere is refused whole, naming the line. --whole sends the input\n"
     "as one document, as it is. --content-type TYPE is the body's type as\n"
     "in HTTP: application/x-ndjson, application/json, or a type the plugin\n"
     "takes (text/csv, text/calendar; see `plugins info`; also taken from a\n"
     "FILE ending in .csv or .ics), sent whole. Each document is accepted or\n"
     "rejected with its reason, and items of it the plugin refused are\n"
     "listed; accepted ones are committed before they are counted. --ack\n"
     "prints {\"line\":N,\"status\":\"ok\"} per document as soon as it is\n"
     "committed. Prints a summary; exit 1 if any was rejected.\n"},
    {"query", cli_cmd_query,
     "usage: twinhost query --town TOWN --plugin PLUGIN [--op OP]\n"
     "                      [REQUEST|-]\n"
     "Ask a plugin a question; REQUEST is JSON text (or - for standard\n"
     "input), e.g. '{\"op\":\"latest\"}', or the op's parameters with\n"
     "--op OP. The request is checked against the op's schema first\n"
     "(`twinhost plugins info PLUGIN` lists the ops). Prints the answer: JSON\n"
     "indented, other media types (text/calendar, text/csv) as they are.\n"},
    {"scenario", cli_cmd_scenario,
     "usage: twinhost scenario --town TOWN --plugin PLUGIN [--op OP]\n"
     "                         [SCENARIO|-]\n"
     "Run a what-if scenario on a snapshot: the plugin's writes go to an\n"
     "in-memory overlay and live state never changes. Prints the report\n"
     "with the events the scenario would raise.\n"},
    {"entities", cli_cmd_entities,
     "usage: twinhost entities --town TOWN [--plugin P] [--type T] [--id I]\n"
     "                         [--filter ATTR<OP>VALUE] [--near LAT,LON]\n"
     "                         [--radius M]\n"
     "List entities with their current attributes as JSON, in key order.\n"
     "--filter keeps those where it holds (OP: == != >= <= > <), e.g.\n"
     "--filter 'occupancy>=0.5'. --near keeps those whose lat/lon attributes\n"
     "lie within --radius metres (default 1000), nearest first, each with\n"
     "its distance_m.\n"},
    {"history", cli_cmd_history,
     "usage: twinhost history --town TOWN --plugin P --type T --id I\n"
     "                        --attr A [--from TIME] [--to TIME] [--limit N]\n"
     "                        [--every N{s|m|h|d} [--agg "
     "avg|min|max|sum|count]]\n"
     "Observations of one attribute, oldest first. TIME is RFC 3339\n"
     "(2026-11-27T10:00:00Z) or milliseconds since 1970; --to is exclusive.\n"
     "--every sums them up per bucket of that size (aligned to the epoch,\n"
     "UTC) with --agg (default avg); each bucket has its time, value, "
     "count.\n"},
    {"events", cli_cmd_events,
     "usage: twinhost events --town TOWN [--limit N]\n"
     "The town's most recent events (default 50, at most 1000), oldest\n"
     "first.\n"},
    {"script", cli_cmd_script,
     "usage: twinhost script check TOWN\n"
     "       twinhost script reload TOWN\n"
     "       twinhost script status TOWN\n"
     "       twinhost script replay TOWN [FILE|-]\n"
     "The town's rules are the .lua files of its script folder "
     "(docs/rules.md).\n"
     "check: load them in a sandbox and list the hooks and functions they\n"
     "       define, or say file:line of the first error.\n"
     "reload: check, then tell the running serve to load the new rules (all\n"
     "       towns; one whose new rules fail keeps its old ones). SIGHUP to\n"
     "       the serve does the same.\n"
     "status: per hook its calls, errors, last error, time spent and backoff,\n"
     "       as the running serve last stored them.\n"
     "replay: run the rules over recorded observations (JSON Lines of\n"
     "       {\"plugin\",\"type\",\"id\",\"attr\",\"time\",\"value\"}) on a\n"
     "       snapshot and print what they would emit and write. Changes\n"
     "       nothing.\n"},
    {"backup", cli_cmd_backup,
     "usage: twinhost backup DIR\n"
     "Write a compacting copy of the state to DIR (new or empty). Safe while\n"
     "the host runs.\n"},
    {"restore", cli_cmd_restore,
     "usage: twinhost restore DIR\n"
     "Replace the state with the backup in DIR. Stop `twinhost serve` "
     "first.\n"},
    {"token", cli_token,
     "usage: twinhost token create --town TOWN --scope SCOPES [--label TEXT]\n"
     "       twinhost token list [--town TOWN]\n"
     "       twinhost token revoke ID|TOKEN\n"
     "Tokens of the HTTP API (Authorization: Bearer TOKEN). Each belongs to\n"
     "one town; SCOPES is read, write and/or admin, comma-separated (admin\n"
     "implies read and write).\n"
     "create: make a token and print it with its id as JSON. Only its hash\n"
     "       is stored: the token is shown this once.\n"
     "list:   the tokens (id, town, scopes, label, created; never secrets).\n"
     "revoke: delete a token, named by its id or by the token itself; it\n"
     "       stops working at once, also in a running serve.\n"},
};

/* ---- helpers ------------------------------------------------------------- */

void cli_error(const char *what, const char *fmt, ...)
{
  va_list ap;
  va_start(ap, fmt);
  fprintf(stderr, "twinhost: %s: ", what);
  vfprintf(stderr, fmt, ap);
  fputc('\n', stderr);
  va_end(ap);
}

const char *cli_config_path(const cli_opts *o)
{
  if (o->config)
    return o->config;
  const char *env = getenv("TWINHOST_CONFIG");
  return env && *env ? env : "twinhost.json";
}

/* Bring up the host a command needs; at CORE_HOST_INSTANCES only the
 * plugins of the town the command is about (--town) are opened. */
int cli_open_host(cli_opts *o, int level, core_host **h)
{
  core_err err;
  int st = level == CORE_HOST_INSTANCES && o->town
               ? core_host_open_town(cli_config_path(o), o->town, h, &err)
               : core_host_open(cli_config_path(o), level, h, &err);
  if (st) {
    cli_error("config", "%s", err.msg);
    return CLI_FAIL;
  }
  return CLI_OK;
}

int cli_need(const char *cmd, const char *value, const char *opt)
{
  if (value)
    return 1;
  cli_error(cmd, "%s is required (see `twinhost %s --help`)", opt, cmd);
  return 0;
}

/* Set when a command's output could not be written as JSON: the command
 * then fails (exit 1) rather than print nothing and claim success. */
int cli_output_failed;

void cli_print_json(json_t *j)
{
  char *s = j ? json_dumps(j, JSON_INDENT(2) | JSON_PRESERVE_ORDER |
                                  JSON_REAL_PRECISION(15))
              : NULL;
  if (s) {
    if (puts(s) == EOF || fflush(stdout)) {
      cli_error("output", "cannot write to standard output");
      cli_output_failed = 1;
    }
  } else {
    cli_error("output", "cannot write the result as JSON (out of memory, or "
                        "stored text that is not UTF-8)");
    cli_output_failed = 1;
  }
  free(s);
}

/* Read FILE, "-" or nothing (standard input). */
char *cli_read_input(const char *cmd, const char *arg, size_t *len)
{
  core_err err;
  char *buf = NULL;
  if (arg && strcmp(arg, "-")) {
    if (core_read_file(arg, &buf, len, &err)) {
      cli_error(cmd, "%s", err.msg);
      return NULL;
    }
    return buf;
  }
  size_t cap = 1 << 16, n = 0;
  buf = malloc(cap);
  ssize_t r;
  while (buf && (r = read(0, buf + n, cap - n - 1)) > 0) {
    n += (size_t)r;
    if (n + 1 == cap) {
      char *nb = realloc(buf, cap *= 2);
      if (!nb)
        free(buf);
      buf = nb;
    }
  }
  if (!buf) {
    cli_error(cmd, "out of memory reading standard input");
    return NULL;
  }
  buf[n] = 0;
  *len = n;
  return buf;
}

/* ---- options and dispatch ----------------------------------------------- */

static int parse_opts(const char *cmd, int argc, char **argv, cli_opts *o)
{
  static const struct {
    const char *name;
    size_t off;
  } vals[] = {
      {"--config", offsetof(cli_opts, config)},
      {"--town", offsetof(cli_opts, town)},
      {"--plugin", offsetof(cli_opts, plugin)},
      {"--type", offsetof(cli_opts, type)},
      {"--id", offsetof(cli_opts, id)},
      {"--attr", offsetof(cli_opts, attr)},
      {"--from", offsetof(cli_opts, from)},
      {"--to", offsetof(cli_opts, to)},
      {"--limit", offsetof(cli_opts, limit)},
      {"--filter", offsetof(cli_opts, filter)},
      {"--near", offsetof(cli_opts, near)},
      {"--radius", offsetof(cli_opts, radius)},
      {"--every", offsetof(cli_opts, every)},
      {"--agg", offsetof(cli_opts, agg)},
      {"--listen", offsetof(cli_opts, listen)},
      {"--scope", offsetof(cli_opts, scope)},
      {"--label", offsetof(cli_opts, label)},
      {"--op", offsetof(cli_opts, op)},
      {"--content-type", offsetof(cli_opts, content_type)},
  };
  for (int i = 0; i < argc; i++) {
    const char *a = argv[i];
    if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
      o->help = 1;
      continue;
    }
    if (!strcmp(a, "--ack")) {
      o->ack = 1;
      continue;
    }
    if (!strcmp(a, "--whole")) {
      o->whole = 1;
      continue;
    }
    if (a[0] == '-' && a[1] == '-') {
      const char *eq = strchr(a, '=');
      size_t n = eq ? (size_t)(eq - a) : strlen(a);
      size_t k;
      for (k = 0; k < sizeof vals / sizeof vals[0]; k++)
        if (strlen(vals[k].name) == n && !strncmp(a, vals[k].name, n))
          break;
      if (k == sizeof vals / sizeof vals[0]) {
        cli_error(cmd, "unknown option '%.*s' (see `twinhost %s --help`)",
                  (int)n, a, cmd);
        return 0;
      }
      const char *v = eq ? eq + 1 : (i + 1 < argc ? argv[++i] : NULL);
      if (!v) {
        cli_error(cmd, "%s needs a value", vals[k].name);
        return 0;
      }
      *(const char **)((char *)o + vals[k].off) = v;
      continue;
    }
    if (o->npos >= (int)(sizeof o->pos / sizeof o->pos[0])) {
      cli_error(cmd, "too many arguments");
      return 0;
    }
    o->pos[o->npos++] = a;
  }
  return 1;
}

int cli_main(int argc, char **argv)
{
  /* a plugin that crashes leaves a line naming itself (crash.c) */
  core_crash_install();
  cli_opts o = {0};
  int i = 1;
  for (; i < argc && argv[i][0] == '-'; i++) {
    if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
      fputs(usage_main, stdout);
      return CLI_OK;
    }
    if (!strcmp(argv[i], "--version")) {
      printf("twinhost %s (twin ABI %d.%d)\n", TWIN_VERSION, TWIN_ABI_MAJOR,
             TWIN_ABI_MINOR);
      return CLI_OK;
    }
    if ((!strcmp(argv[i], "--config") || !strcmp(argv[i], "-c")) &&
        i + 1 < argc) {
      o.config = argv[++i];
    } else if (!strncmp(argv[i], "--config=", 9)) {
      o.config = argv[i] + 9;
    } else {
      cli_error("usage", "unknown option '%s'\n\n%s", argv[i], usage_main);
      return CLI_USAGE;
    }
  }
  if (i >= argc) {
    fputs(usage_main, stderr);
    return CLI_USAGE;
  }
  const char *name = argv[i];
  for (size_t k = 0; k < sizeof commands / sizeof commands[0]; k++) {
    if (strcmp(commands[k].name, name))
      continue;
    if (!parse_opts(name, argc - i - 1, argv + i + 1, &o))
      return CLI_USAGE;
    if (o.help) {
      fputs(commands[k].help, stdout);
      return CLI_OK;
    }
    int rc = commands[k].run(&o);
    return rc == CLI_OK && cli_output_failed ? CLI_FAIL : rc;
  }
  cli_error("usage", "unknown command '%s'\n\n%s", name, usage_main);
  return CLI_USAGE;
}
