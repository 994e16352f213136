/*
 * cli.c — the twinhost subcommands (except serve, in serve.c): option
 * parsing, help texts, and the commands that inspect plugins, import
 * documents, ask queries and scenarios, read entities, history and events,
 * and back up or restore a data folder.
 */
#include "cli.h"

#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <signal.h>
#include <sys/file.h>
#include <sys/wait.h>
#include <unistd.h>

#include "api.h"
#include "crash.h"
#include "host.h"
#include "media.h"
#include "pipeline.h"
#include "rules.h"
#include "schema.h"
#include "script.h"

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

static int cmd_plugins(cli_opts *o);
static int cmd_ingest(cli_opts *o);
static int cmd_query(cli_opts *o);
static int cmd_scenario(cli_opts *o);
static int cmd_entities(cli_opts *o);
static int cmd_history(cli_opts *o);
static int cmd_events(cli_opts *o);
static int cmd_script(cli_opts *o);
static int cmd_backup(cli_opts *o);
static int cmd_restore(cli_opts *o);

static const command commands[] = {
    {"serve", cli_serve,
     "usage: twinhost serve [--listen ADDR:PORT]\n"
     "Run the host in the foreground: opens every town's plugins, runs their\n"
     "ticks on schedule, the ingest writer and the HTTP API (docs/api.md).\n"
     "The API listens where the config's \"http\" says (default\n"
     "127.0.0.1:8080); --listen overrides it (port 0: any free port; the\n"
     "port taken is printed). Ctrl-C or SIGTERM stops accepting requests,\n"
     "finishes those in flight, commits what was accepted and exits 0.\n"},
    {"plugins", cmd_plugins,
     "usage: twinhost plugins list\n"
     "       twinhost plugins info NAME [--town TOWN]\n"
     "       twinhost plugins check FILE.so\n"
     "list: every plugin found on the search path, every refused file with\n"
     "      its reason, and each town's plugins with their status.\n"
     "info: a plugin's descriptor and config schema; with --town, what the\n"
     "      running instance says about itself (describe).\n"
     "check: load FILE in a separate process and say in one line whether a\n"
     "      host would accept it, and if not, why.\n"},
    {"ingest", cmd_ingest,
     "usage: twinhost ingest --town TOWN --plugin PLUGIN [FILE|-] [--whole]\n"
     "                       [--content-type TYPE] [--ack]\n"
     "Import documents (default: standard input). The input is JSON Lines,\n"
     "one document per line, unless FILE ends in .json or --whole is given:\n"
     "then the whole input is one document. --content-type TYPE (text/csv,\n"
     "text/calendar: a type the plugin takes, see `plugins info`; also\n"
     "taken from a FILE ending in .csv or .ics) sends the whole input as\n"
     "one document of that type, as it is. Each document is accepted or\n"
     "rejected with its reason, and items of it the plugin refused are\n"
     "listed; accepted ones are committed before they are counted. --ack\n"
     "prints {\"line\":N,\"status\":\"ok\"} per document as soon as it is\n"
     "committed. Prints a summary; exit 1 if any was rejected.\n"},
    {"query", cmd_query,
     "usage: twinhost query --town TOWN --plugin PLUGIN [--op OP]\n"
     "                      [REQUEST|-]\n"
     "Ask a plugin a question; REQUEST is JSON text (or - for standard\n"
     "input), e.g. '{\"op\":\"latest\"}', or the op's parameters with\n"
     "--op OP. The request is checked against the op's schema first\n"
     "(`twinhost plugins info PLUGIN` lists the ops). Prints the answer: JSON\n"
     "indented, other media types (text/calendar, text/csv) as they are.\n"},
    {"scenario", cmd_scenario,
     "usage: twinhost scenario --town TOWN --plugin PLUGIN [--op OP]\n"
     "                         [SCENARIO|-]\n"
     "Run a what-if scenario on a snapshot: the plugin's writes go to an\n"
     "in-memory overlay and live state never changes. Prints the report\n"
     "with the events the scenario would raise.\n"},
    {"entities", cmd_entities,
     "usage: twinhost entities --town TOWN [--plugin P] [--type T] [--id I]\n"
     "                         [--filter ATTR<OP>VALUE] [--near LAT,LON]\n"
     "                         [--radius M]\n"
     "List entities with their current attributes as JSON, in key order.\n"
     "--filter keeps those where it holds (OP: == != >= <= > <), e.g.\n"
     "--filter 'occupancy>=0.5'. --near keeps those whose lat/lon attributes\n"
     "lie within --radius metres (default 1000), nearest first, each with\n"
     "its distance_m.\n"},
    {"history", cmd_history,
     "usage: twinhost history --town TOWN --plugin P --type T --id I\n"
     "                        --attr A [--from TIME] [--to TIME] [--limit N]\n"
     "                        [--every N{s|m|h|d} [--agg "
     "avg|min|max|sum|count]]\n"
     "Observations of one attribute, oldest first. TIME is RFC 3339\n"
     "(2026-11-27T10:00:00Z) or milliseconds since 1970; --to is exclusive.\n"
     "--every sums them up per bucket of that size (aligned to the epoch,\n"
     "UTC) with --agg (default avg); each bucket has its time, value, "
     "count.\n"},
    {"events", cmd_events,
     "usage: twinhost events --town TOWN [--limit N]\n"
     "The town's most recent events (default 50, at most 1000), oldest\n"
     "first.\n"},
    {"script", cmd_script,
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
    {"backup", cmd_backup,
     "usage: twinhost backup DIR\n"
     "Write a compacting copy of the state to DIR (new or empty). Safe while\n"
     "the host runs.\n"},
    {"restore", cmd_restore,
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

static int need(const char *cmd, const char *value, const char *opt)
{
  if (value)
    return 1;
  cli_error(cmd, "%s is required (see `twinhost %s --help`)", opt, cmd);
  return 0;
}

/* Set when a command's output could not be written as JSON: the command
 * then fails (exit 1) rather than print nothing and claim success. */
static int output_failed;

void cli_print_json(json_t *j)
{
  char *s = j ? json_dumps(j, JSON_INDENT(2) | JSON_PRESERVE_ORDER |
                                  JSON_REAL_PRECISION(15))
              : NULL;
  if (s) {
    if (puts(s) == EOF || fflush(stdout)) {
      cli_error("output", "cannot write to standard output");
      output_failed = 1;
    }
  } else {
    cli_error("output", "cannot write the result as JSON (out of memory, or "
                        "stored text that is not UTF-8)");
    output_failed = 1;
  }
  free(s);
}

/* Read FILE, "-" or nothing (standard input). */
static char *read_input(const char *cmd, const char *arg, size_t *len)
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

/* ---- plugins ------------------------------------------------------------- */

static int plugins_list(cli_opts *o)
{
  core_host *h;
  if (cli_open_host(o, CORE_HOST_STORE, &h))
    return CLI_FAIL;
  json_t *out = json_object(), *loaded = json_array(), *refused = json_array(),
         *towns = json_array(), *path = json_array();
  const char *dirs[64];
  size_t nd = core_host_plugin_dirs(h->cfg, dirs, 64);
  for (size_t i = 0; i < nd; i++)
    json_array_append_new(path, json_string(dirs[i]));
  for (size_t i = 0; i < h->n_plugins; i++)
    json_array_append_new(loaded, core_plugin_json(&h->plugins[i], 1, 0));
  for (size_t i = 0; i < h->n_refused; i++)
    json_array_append_new(refused,
                          json_pack("{s:s,s:s}", "file", h->refused[i].path,
                                    "reason", h->refused[i].reason));
  MDB_txn *txn = NULL;
  core_err err;
  if (core_store_begin_read(h->store, &txn, &err))
    txn = NULL;
  for (size_t i = 0; i < h->cfg->n_towns; i++) {
    const core_town *t = &h->cfg->towns[i];
    for (size_t j = 0; j < t->n_plugins; j++) {
      const char *name = t->plugins[j].name;
      core_instance *ci = core_host_instance(h, t->id, name);
      json_t *row = json_pack("{s:s,s:s,s:b}", "town", t->id, "plugin", name,
                              "enabled", t->plugins[j].enabled);
      if (!t->plugins[j].enabled) {
        json_object_set_new(row, "state", json_string("off"));
      } else if (!ci) {
        json_object_set_new(row, "state", json_string("missing"));
        json_object_set_new(row, "reason",
                            json_string("no loaded plugin has this name; "
                                        "see refused and search_path"));
      } else if (ci->state == CORE_INSTANCE_DISABLED) {
        json_object_set_new(row, "state", json_string("disabled"));
        json_object_set_new(row, "reason", json_string(ci->reason));
      } else {
        /* The state the last `serve` recorded; "configured" when none has
         * run this plugin for the town yet. */
        char *st = txn ? core_host_stored_status(h, txn, t->id, name) : NULL;
        json_t *stored = st ? json_loads(st, 0, NULL) : NULL;
        free(st);
        json_t *state = json_object_get(stored, "state");
        json_object_set_new(row, "state",
                            state ? json_incref(state)
                                  : json_string("configured"));
        const char *why = json_string_value(json_object_get(stored, "reason"));
        if (why && *why)
          json_object_set_new(row, "reason", json_string(why));
        if (stored)
          json_object_set_new(row, "last_run", stored);
      }
      json_array_append_new(towns, row);
    }
  }
  if (txn)
    core_store_end_read(h->store, txn);
  json_object_set_new(out, "search_path", path);
  json_object_set_new(out, "plugins", loaded);
  json_object_set_new(out, "refused", refused);
  json_object_set_new(out, "towns", towns);
  cli_print_json(out);
  json_decref(out);
  core_host_close(h);
  return CLI_OK;
}

static int plugins_info(cli_opts *o)
{
  const char *name = o->npos > 1 ? o->pos[1] : NULL;
  if (!name) {
    cli_error("plugins info", "name a plugin: twinhost plugins info NAME");
    return CLI_USAGE;
  }
  core_host *h;
  if (cli_open_host(o, o->town ? CORE_HOST_INSTANCES : CORE_HOST_LOAD, &h))
    return CLI_FAIL;
  int rc = CLI_FAIL;
  core_plugin *p = core_host_plugin(h, name);
  if (!p) {
    cli_error("plugins info",
              "no plugin named '%s' was loaded; see "
              "`twinhost plugins list`",
              name);
    goto out;
  }
  json_t *j = core_plugin_json(p, 1, 1);
  char *described = core_schema_describe(p->desc.config_schema);
  if (described)
    json_object_set_new(j, "config_help", json_string(described));
  free(described);
  json_t *towns = json_array();
  for (size_t i = 0; i < h->cfg->n_towns; i++)
    for (size_t k = 0; k < h->cfg->towns[i].n_plugins; k++)
      if (!strcmp(h->cfg->towns[i].plugins[k].name, name))
        json_array_append_new(towns, json_string(h->cfg->towns[i].id));
  json_object_set_new(j, "towns", towns);
  if (o->town) {
    core_instance *ci;
    core_err err;
    char *reply = NULL;
    if (core_host_find(h, o->town, name, &ci, &err) ||
        core_host_describe(h, ci, &reply, &err)) {
      cli_error("plugins info", "%s", err.msg);
      json_decref(j);
      goto out;
    }
    json_t *d = json_loads(reply, JSON_DECODE_ANY, NULL);
    json_object_set_new(j, "instance", d ? d : json_null());
    free(reply);
  }
  cli_print_json(j);
  json_decref(j);
  rc = CLI_OK;
out:
  core_host_close(h);
  return rc;
}

/* Load the file in a child process, so a plugin whose constructor crashes
 * or misbehaves cannot harm the process asking. */
static int plugins_check(cli_opts *o)
{
  const char *file = o->npos > 1 ? o->pos[1] : NULL;
  if (!file) {
    cli_error("plugins check", "name a file: twinhost plugins check FILE.so");
    return CLI_USAGE;
  }
  int fds[2];
  if (pipe(fds)) {
    cli_error("plugins check", "pipe: %s", strerror(errno));
    return CLI_FAIL;
  }
  fflush(NULL);
  pid_t pid = fork();
  if (pid == 0) {
    close(fds[0]);
    core_plugin p;
    core_err err;
    char line[1200];
    int st = core_plugin_load(file, &p, &err);
    if (st)
      snprintf(line, sizeof line, "E%s", err.msg);
    else
      snprintf(line, sizeof line,
               "O%s: plugin '%s' %s, use case %s, ABI %u.%u: a host would "
               "load it",
               file, p.desc.name, p.desc.version, p.desc.use_case,
               p.desc.abi_major, p.desc.abi_minor);
    if (write(fds[1], line, strlen(line)) < 0)
      _exit(3);
    _exit(st ? 1 : 0);
  }
  close(fds[1]);
  char buf[1200];
  size_t n = 0;
  ssize_t r;
  while (pid > 0 && (r = read(fds[0], buf + n, sizeof buf - 1 - n)) > 0)
    n += (size_t)r;
  buf[n] = 0;
  close(fds[0]);
  int status = 0;
  if (pid < 0 || waitpid(pid, &status, 0) < 0) {
    cli_error("plugins check", "cannot start a checker process");
    return CLI_FAIL;
  }
  if (WIFSIGNALED(status)) {
    cli_error("plugins check",
              "%s: crashed while loading (signal %d): its "
              "constructor or entry point is broken",
              file, WTERMSIG(status));
    return CLI_FAIL;
  }
  if (n && buf[0] == 'O') {
    printf("ok: %s\n", buf + 1);
    return CLI_OK;
  }
  cli_error("plugins check", "%s", n ? buf + 1 : "checker said nothing");
  return CLI_FAIL;
}

static int cmd_plugins(cli_opts *o)
{
  const char *sub = o->npos ? o->pos[0] : NULL;
  if (sub && !strcmp(sub, "list"))
    return plugins_list(o);
  if (sub && !strcmp(sub, "info"))
    return plugins_info(o);
  if (sub && !strcmp(sub, "check"))
    return plugins_check(o);
  cli_error("plugins", "%s%s%s; use list, info NAME or check FILE",
            sub ? "unknown subcommand '" : "a subcommand is needed",
            sub ? sub : "", sub ? "'" : "");
  return CLI_USAGE;
}

/* ---- ingest -------------------------------------------------------------- */

typedef struct ingest_state {
  pthread_mutex_t mu;
  uint64_t done, accepted, rejected, items_refused;
  int ack;
  json_t *rejections, *refused;
  /* --ack lines, written by the printer thread: the writer only appends
   * (a slow reader of stdout must not hold up the writer) */
  char *acks;
  size_t acks_len, acks_cap;
  int acks_oom, finished;
  pthread_cond_t acks_cv;
} ingest_state;

/* Queue one --ack line (under st->mu). */
static void ack_line(ingest_state *st, const char *line)
{
  size_t n = strlen(line);
  if (st->acks_len + n + 2 > st->acks_cap) {
    size_t cap = st->acks_cap ? st->acks_cap * 2 : 4096;
    while (cap < st->acks_len + n + 2)
      cap *= 2;
    char *b = realloc(st->acks, cap);
    if (!b) {
      st->acks_oom = 1;
      return;
    }
    st->acks = b;
    st->acks_cap = cap;
  }
  memcpy(st->acks + st->acks_len, line, n);
  st->acks_len += n;
  st->acks[st->acks_len++] = '\n';
  pthread_cond_signal(&st->acks_cv);
}

static void *ack_printer(void *arg)
{
  ingest_state *st = arg;
  char *out = NULL;
  size_t out_cap = 0;
  pthread_mutex_lock(&st->mu);
  for (;;) {
    while (!st->acks_len && !st->finished)
      pthread_cond_wait(&st->acks_cv, &st->mu);
    if (!st->acks_len && st->finished)
      break;
    /* swap the buffers, print outside the lock */
    char *b = st->acks;
    size_t n = st->acks_len, cap = st->acks_cap;
    st->acks = out;
    st->acks_cap = out_cap;
    st->acks_len = 0;
    out = b;
    out_cap = cap;
    pthread_mutex_unlock(&st->mu);
    if (fwrite(out, 1, n, stdout) != n || fflush(stdout))
      output_failed = 1;
    pthread_mutex_lock(&st->mu);
  }
  pthread_mutex_unlock(&st->mu);
  free(out);
  return NULL;
}

typedef struct ingest_doc {
  ingest_state *st;
  size_t line;
} ingest_doc;

static void ingest_done(void *ud, const core_outcome *o)
{
  ingest_doc *d = ud;
  ingest_state *st = d->st;
  int status = o->status;
  const char *reason = o->reason;
  pthread_mutex_lock(&st->mu);
  st->done++;
  if (o->items->total) {
    st->items_refused += o->items->total;
    if (json_array_size(st->refused) < 100)
      json_array_append_new(
          st->refused, json_pack("{s:I,s:I,s:o}", "line", (json_int_t)d->line,
                                 "items_refused", (json_int_t)o->items->total,
                                 "items", core_items_json(o->items)));
  }
  if (!status) {
    st->accepted++;
    if (st->ack) {
      char line[96];
      if (o->items->total)
        snprintf(line, sizeof line,
                 "{\"line\":%zu,\"status\":\"ok\",\"items_refused\":%zu}",
                 d->line, o->items->total);
      else
        snprintf(line, sizeof line, "{\"line\":%zu,\"status\":\"ok\"}",
                 d->line);
      ack_line(st, line);
    }
  } else {
    st->rejected++;
    /* the code and field as the HTTP API reports them */
    const char *code = o->code;
    if (!code)
      api_status_http(status, &code);
    if (json_array_size(st->rejections) < 100) {
      json_t *row =
          json_pack("{s:I,s:s,s:s,s:s}", "line", (json_int_t)d->line, "status",
                    core_status_name(status), "code", code, "error",
                    reason ? reason : "");
      if (row && o->field)
        json_object_set_new(row, "field", json_string(o->field));
      json_array_append_new(st->rejections, row);
    }
    if (st->ack) {
      json_t *j =
          json_pack("{s:I,s:s,s:s}", "line", (json_int_t)d->line, "status",
                    "rejected", "error", reason ? reason : "");
      char *s = json_dumps(j, JSON_COMPACT);
      if (s)
        ack_line(st, s);
      free(s);
      json_decref(j);
    }
  }
  pthread_mutex_unlock(&st->mu);
}

static void progress(ingest_state *st, size_t submitted, size_t total_bytes,
                     size_t at_byte, int final)
{
  pthread_mutex_lock(&st->mu);
  fprintf(stderr,
          "\r  %zu documents sent, %llu committed, %llu rejected "
          "(%3.0f%% of input)%s",
          submitted, (unsigned long long)st->done - st->rejected,
          (unsigned long long)st->rejected,
          total_bytes ? 100.0 * at_byte / total_bytes : 100.0,
          final ? "\n" : "");
  pthread_mutex_unlock(&st->mu);
}

static int cmd_ingest(cli_opts *o)
{
  if (!need("ingest", o->town, "--town") ||
      !need("ingest", o->plugin, "--plugin"))
    return CLI_USAGE;
  const char *file = o->npos ? o->pos[0] : NULL;
  size_t len;
  char *input = read_input("ingest", file, &len);
  if (!input)
    return CLI_FAIL;
  core_host *h;
  if (cli_open_host(o, CORE_HOST_INSTANCES, &h)) {
    free(input);
    return CLI_FAIL;
  }
  int rc = CLI_FAIL;
  core_instance *ci;
  core_err err;
  core_pipeline *p = NULL;
  if (core_host_find(h, o->town, o->plugin, &ci, &err) ||
      core_pipeline_start(h, &p, &err)) {
    cli_error("ingest", "%s", err.msg);
    goto out;
  }
  int whole = o->whole;
  if (file && strlen(file) > 5 && !strcmp(file + strlen(file) - 5, ".json"))
    whole = 1;
  /* A document of another media type is one document, as it is. */
  const char *type = o->content_type;
  size_t flen = file ? strlen(file) : 0;
  if (!type && flen > 4 && !strcasecmp(file + flen - 4, ".csv"))
    type = "text/csv";
  if (!type && flen > 4 && !strcasecmp(file + flen - 4, ".ics"))
    type = "text/calendar";
  if (type && core_media_is_json(type) &&
      !(ci->plugin->desc.ingest_types &&
        core_media_in_list(ci->plugin->desc.ingest_types, type)))
    type = NULL; /* JSON the plugin does not take whole: read as usual */
  if (type && !core_plugin_takes(ci->plugin, type)) {
    const char *more = ci->plugin->desc.ingest_types;
    cli_error("ingest",
              "plugin '%s' takes JSON%s%s, not %s (see `twinhost plugins "
              "info %s`)",
              o->plugin, more ? " and " : "", more ? more : "", type,
              o->plugin);
    goto out;
  }
  if (type)
    whole = 1;
  ingest_state st = {.ack = o->ack,
                     .rejections = json_array(),
                     .refused = json_array()};
  pthread_mutex_init(&st.mu, NULL);
  pthread_cond_init(&st.acks_cv, NULL);
  pthread_t printer;
  int printing = o->ack && !pthread_create(&printer, NULL, ack_printer, &st);
  if (o->ack && !printing)
    st.ack = 0; /* cannot start the printer: the summary still comes */
  int show = isatty(2) && len > (1 << 20);
  size_t ndocs = 0, cap = 0;
  ingest_doc *docs = NULL;
  /* Count documents first so their records never move while in flight. */
  for (size_t i = 0; i < len; i++)
    cap += input[i] == '\n';
  cap += 1;
  docs = calloc(cap, sizeof *docs);
  if (!docs)
    cli_error("ingest", "out of memory for %zu documents", cap);
  uint64_t last_shown = core_mono_ns();
  size_t line = 0;
  for (char *s = input; docs && s < input + len;) {
    char *e = whole ? input + len : memchr(s, '\n', (size_t)(input + len - s));
    if (!e)
      e = input + len;
    line++;
    char *t = s;
    while (t < e && (*t == ' ' || *t == '\t' || *t == '\r'))
      t++;
    if (t < e) {
      ingest_doc *d = &docs[ndocs++];
      d->st = &st;
      d->line = whole ? 1 : line;
      if (core_pipeline_submit_as(p, ci, type, s, (size_t)(e - s),
                                  ingest_done, d)) {
        cli_error("ingest", "the writer stopped; %zu documents not sent",
                  ndocs);
        break;
      }
    }
    s = e + 1;
    if (show && core_mono_ns() - last_shown > 500000000u) {
      progress(&st, ndocs, len, (size_t)(s - input), 0);
      last_shown = core_mono_ns();
    }
  }
  core_pipeline_drain(p);
  if (printing) { /* every acknowledgement printed before the summary */
    pthread_mutex_lock(&st.mu);
    st.finished = 1;
    pthread_cond_signal(&st.acks_cv);
    pthread_mutex_unlock(&st.mu);
    pthread_join(printer, NULL);
  }
  if (st.acks_oom)
    cli_error("ingest", "out of memory for --ack lines; some were not "
                        "printed (the summary counts every document)");
  if (show)
    progress(&st, ndocs, len, len, 1);
  json_t *sum = json_pack(
      "{s:s,s:s,s:I,s:I,s:I,s:I,s:o,s:o}", "town", o->town, "plugin",
      o->plugin, "documents", (json_int_t)ndocs, "accepted",
      (json_int_t)st.accepted, "rejected", (json_int_t)st.rejected,
      "items_refused", (json_int_t)st.items_refused, "rejections",
      st.rejections, "refused", st.refused);
  if (!o->ack)
    cli_print_json(sum);
  else if (st.rejected)
    fprintf(stderr, "twinhost: ingest: %llu of %zu documents rejected\n",
            (unsigned long long)st.rejected, ndocs);
  if (!o->ack && st.rejected)
    fprintf(stderr,
            "twinhost: ingest: %llu of %zu documents rejected; see "
            "\"rejections\"\n",
            (unsigned long long)st.rejected, ndocs);
  json_decref(sum);
  pthread_mutex_destroy(&st.mu);
  pthread_cond_destroy(&st.acks_cv);
  free(st.acks);
  free(docs);
  rc = st.rejected || !docs ? CLI_FAIL : CLI_OK;
out:
  core_pipeline_stop(p);
  core_host_close(h);
  free(input);
  return rc;
}

/* ---- query and scenario -------------------------------------------------- */

static int ask(cli_opts *o, const char *cmd, int scenario)
{
  if (!need(cmd, o->town, "--town") || !need(cmd, o->plugin, "--plugin"))
    return CLI_USAGE;
  size_t len = 0;
  char *req;
  if (o->npos && strcmp(o->pos[0], "-")) {
    req = strdup(o->pos[0]);
    len = strlen(req);
  } else if (o->op && !o->npos) { /* an op without parameters */
    req = strdup("{}");
    len = 2;
  } else {
    req = read_input(cmd, "-", &len);
  }
  if (!req)
    return CLI_FAIL;
  json_error_t je;
  json_t *parsed = json_loadb(req, len, JSON_DECODE_ANY, &je);
  if (!parsed) {
    cli_error(cmd, "the %s is not JSON: %s (line %d, column %d)",
              scenario ? "scenario" : "request", je.text, je.line, je.column);
    free(req);
    return CLI_USAGE;
  }
  json_decref(parsed);
  core_host *h;
  if (cli_open_host(o, CORE_HOST_INSTANCES, &h)) {
    free(req);
    return CLI_FAIL;
  }
  core_instance *ci;
  core_err err;
  core_reply reply = {0};
  int rc = CLI_OK;
  if (core_host_find(h, o->town, o->plugin, &ci, &err) ||
      core_host_request(h, ci, scenario ? TWIN_OP_SCENARIO : TWIN_OP_QUERY,
                        o->op, req, len, &reply, &err)) {
    cli_error(cmd, "%s", err.msg);
    rc = err.code[0] && !strcmp(err.code, "bad_json") ? CLI_USAGE : CLI_FAIL;
  } else if (core_media_is_json(reply.type)) {
    json_t *j = json_loadb(reply.body, reply.len, JSON_DECODE_ANY, NULL);
    if (j)
      cli_print_json(j);
    json_decref(j);
  } else { /* text/calendar, text/csv ...: as the plugin wrote it */
    if (fwrite(reply.body, 1, reply.len, stdout) != reply.len ||
        fflush(stdout))
      rc = CLI_FAIL;
  }
  free(reply.body);
  free(req);
  core_host_close(h);
  return rc;
}

static int cmd_query(cli_opts *o)
{
  return ask(o, "query", 0);
}

static int cmd_scenario(cli_opts *o)
{
  return ask(o, "scenario", 1);
}

/* ---- entities, history, events ------------------------------------------ */

static int store_read(cli_opts *o, const char *cmd, core_host **h,
                      MDB_txn **txn)
{
  if (!need(cmd, o->town, "--town"))
    return CLI_USAGE;
  if (cli_open_host(o, CORE_HOST_STORE, h))
    return CLI_FAIL;
  if (!core_config_town((*h)->cfg, o->town)) {
    core_instance *ci;
    core_err err;
    core_host_find(*h, o->town, "", &ci, &err);
    cli_error(cmd, "%s", err.msg);
    core_host_close(*h);
    return CLI_FAIL;
  }
  core_err err;
  if (core_store_begin_read((*h)->store, txn, &err)) {
    cli_error(cmd, "%s", err.msg);
    core_host_close(*h);
    return CLI_FAIL;
  }
  return CLI_OK;
}

static void store_done(core_host *h, MDB_txn *txn)
{
  core_store_end_read(h->store, txn);
  core_host_close(h);
}

/* An API error as a CLI error: a bad option is a usage error (exit 2). */
static int api_cli_error(const char *cmd, int st, const api_error *e)
{
  if (e->field[0] && strncmp(e->message, e->field, strlen(e->field)))
    cli_error(cmd, "--%s: %s", e->field, e->message);
  else
    cli_error(cmd, "%s", e->message);
  return st == 400 ? CLI_USAGE : CLI_FAIL;
}

static void add_arg(api_arg *v, size_t *n, const char *name, const char *value)
{
  if (value)
    v[(*n)++] = (api_arg){name, value};
}

/* Every entity (the API's pages followed to the end), or the one --id
 * names. */
static int cmd_entities(cli_opts *o)
{
  const char *cmd = "entities";
  core_host *h;
  MDB_txn *txn;
  int rc = store_read(o, cmd, &h, &txn);
  if (rc)
    return rc;
  const core_town *town = core_config_town(h->cfg, o->town);
  json_t *list = json_array(), *page = NULL;
  api_error e;
  int st = 0;
  if (o->id) {
    if (!o->plugin || !o->type) {
      cli_error(cmd, "--id needs --plugin and --type");
      json_decref(list);
      store_done(h, txn);
      return CLI_USAGE;
    }
    st = api_entity(h, txn, town, o->plugin, o->type, o->id, &page, &e);
    if (!st)
      json_array_append_new(list, page);
  } else {
    char cursor[1100] = "";
    for (;;) {
      api_arg v[8];
      size_t n = 0;
      add_arg(v, &n, "plugin", o->plugin);
      add_arg(v, &n, "type", o->type);
      add_arg(v, &n, "filter", o->filter);
      add_arg(v, &n, "near", o->near);
      add_arg(v, &n, "radius_m", o->radius);
      add_arg(v, &n, "limit", "1000");
      add_arg(v, &n, "cursor", cursor[0] ? cursor : NULL);
      api_args q = {v, n};
      if ((st = api_entities(h, txn, town, &q, &page, &e)))
        break;
      json_array_extend(list, json_object_get(page, "entities"));
      const char *next = json_string_value(json_object_get(page, "next"));
      if (next)
        snprintf(cursor, sizeof cursor, "%s", next);
      json_decref(page);
      if (!next)
        break;
    }
  }
  if (st)
    rc = api_cli_error(cmd, st, &e);
  else
    cli_print_json(list);
  json_decref(list);
  store_done(h, txn);
  return rc;
}

/* An attribute's history, following the API's pages up to --limit (0 or
 * none: all of it). */
static int cmd_history(cli_opts *o)
{
  const char *cmd = "history";
  if (!need(cmd, o->plugin, "--plugin") || !need(cmd, o->type, "--type") ||
      !need(cmd, o->id, "--id") || !need(cmd, o->attr, "--attr"))
    return CLI_USAGE;
  api_error e;
  long limit = 0;
  if (o->limit && api_parse_count("--limit", o->limit, 0, LONG_MAX, &limit, &e))
    return api_cli_error(cmd, 400, &e);
  core_host *h;
  MDB_txn *txn;
  int rc = store_read(o, cmd, &h, &txn);
  if (rc)
    return rc;
  const core_town *town = core_config_town(h->cfg, o->town);
  json_t *list = json_array(), *page;
  char from[64] = "", count[32];
  int st;
  for (;;) {
    long want = limit ? limit - (long)json_array_size(list) : 100000;
    snprintf(count, sizeof count, "%ld", want < 100000 ? want : 100000);
    api_arg v[6];
    size_t n = 0;
    add_arg(v, &n, "from", from[0] ? from : o->from);
    add_arg(v, &n, "to", o->to);
    add_arg(v, &n, "limit", count);
    add_arg(v, &n, "every", o->every);
    add_arg(v, &n, "agg", o->agg);
    api_args q = {v, n};
    if ((st = api_history(h, txn, town, o->plugin, o->type, o->id, o->attr, &q,
                          &page, &e)))
      break;
    json_array_extend(list, json_object_get(page, "points"));
    const char *next = json_string_value(json_object_get(page, "next"));
    if (next)
      snprintf(from, sizeof from, "%s", next);
    json_decref(page);
    if (!next || (limit && (long)json_array_size(list) >= limit))
      break;
  }
  if (st)
    rc = api_cli_error(cmd, st, &e);
  else
    cli_print_json(list);
  json_decref(list);
  store_done(h, txn);
  return rc;
}

static int cmd_events(cli_opts *o)
{
  core_host *h;
  MDB_txn *txn;
  int rc = store_read(o, "events", &h, &txn);
  if (rc)
    return rc;
  api_arg v[1];
  size_t n = 0;
  add_arg(v, &n, "limit", o->limit);
  api_args q = {v, n};
  api_error e;
  json_t *out;
  int st = api_events(h, txn, core_config_town(h->cfg, o->town), &q, &out, &e);
  if (st)
    rc = api_cli_error("events", st, &e);
  else
    cli_print_json(json_object_get(out, "events"));
  json_decref(out);
  store_done(h, txn);
  return rc;
}

/* ---- town rules ---------------------------------------------------------- */

static const core_town *script_town(const char *cmd, core_config *cfg,
                                    const char *id)
{
  if (!id) {
    cli_error(cmd, "name a town: twinhost script "
                   "<check|reload|status|replay> TOWN");
    return NULL;
  }
  core_err err;
  const core_town *t = core_config_town_or_err(cfg, id, &err);
  if (!t)
    cli_error(cmd, "%s", err.msg);
  return t;
}

static core_script_limits town_limits(const core_town *t)
{
  core_script_limits l = {t->rule_instructions, t->rule_wall_ms,
                          (size_t)t->rule_memory_mib << 20};
  return l;
}

static int script_check(cli_opts *o, const char *cmd, int print)
{
  core_config *cfg;
  core_err err;
  if (core_config_load(cli_config_path(o), &cfg, &err)) {
    cli_error("config", "%s", err.msg);
    return CLI_FAIL;
  }
  int rc = CLI_USAGE;
  const core_town *t = script_town(cmd, cfg, o->npos > 1 ? o->pos[1] : NULL);
  if (t) {
    core_script_limits l = town_limits(t);
    char *report = core_script_check(t, &l, &err);
    if (!report) {
      cli_error(cmd, "%s", err.msg);
      rc = CLI_FAIL;
    } else {
      if (print) {
        json_t *j = json_loads(report, 0, NULL);
        cli_print_json(j);
        json_decref(j);
      }
      free(report);
      rc = CLI_OK;
    }
  }
  core_config_free(cfg);
  return rc;
}

/* Check the new rules, then signal the serve that owns the data folder. */
static int script_reload(cli_opts *o)
{
  int rc = script_check(o, "script reload", 0);
  if (rc) {
    if (rc == CLI_FAIL)
      fprintf(stderr, "twinhost: script reload: not reloaded; the running "
                      "rules stay\n");
    return rc;
  }
  core_config *cfg;
  core_err err;
  if (core_config_load(cli_config_path(o), &cfg, &err)) {
    cli_error("config", "%s", err.msg);
    return CLI_FAIL;
  }
  char *lockpath = core_path_join(cfg->data_dir, "serve.lock");
  int fd = open(lockpath, O_RDWR);
  json_t *out = json_pack("{s:s,s:b}", "town", o->pos[1], "checked", 1);
  rc = CLI_OK;
  if (fd < 0 || !flock(fd, LOCK_EX | LOCK_NB)) {
    json_object_set_new(out, "reloaded", json_false());
    json_object_set_new(out, "note",
                        json_string("no serve is running on this data "
                                    "folder; the rules load when it starts"));
  } else {
    char buf[32] = "";
    ssize_t n = pread(fd, buf, sizeof buf - 1, 0);
    long pid = n > 0 ? strtol(buf, NULL, 10) : 0;
    if (pid <= 0 || kill((pid_t)pid, SIGHUP)) {
      cli_error("script reload",
                "cannot signal the serve (pid '%s' in %s): "
                "send it SIGHUP yourself",
                n > 0 ? buf : "?", lockpath);
      rc = CLI_FAIL;
    } else {
      json_object_set_new(out, "reloaded", json_true());
      json_object_set_new(out, "serve_pid", json_integer(pid));
    }
  }
  if (!rc)
    cli_print_json(out);
  json_decref(out);
  if (fd >= 0)
    close(fd);
  free(lockpath);
  core_config_free(cfg);
  return rc;
}

static int script_status(cli_opts *o)
{
  core_host *h;
  if (cli_open_host(o, CORE_HOST_STORE, &h))
    return CLI_FAIL;
  const core_town *t =
      script_town("script status", h->cfg, o->npos > 1 ? o->pos[1] : NULL);
  int rc = t ? CLI_FAIL : CLI_USAGE;
  MDB_txn *txn;
  core_err err;
  if (t && !core_store_begin_read(h->store, &txn, &err)) {
    char *st = core_rules_stored_status(h, txn, t->id);
    core_store_end_read(h->store, txn);
    json_t *j = st ? json_loads(st, 0, NULL) : NULL;
    free(st);
    if (j) {
      cli_print_json(j);
      rc = CLI_OK;
    } else {
      cli_error("script status",
                "no status of %s's rules yet: the serve "
                "stores it while it runs (every 10 s)",
                t->id);
    }
    json_decref(j);
  }
  core_host_close(h);
  return rc;
}

static int script_replay(cli_opts *o)
{
  const char *town = o->npos > 1 ? o->pos[1] : NULL;
  if (!town) {
    cli_error("script replay", "name a town: twinhost script replay TOWN FILE");
    return CLI_USAGE;
  }
  size_t len;
  char *input =
      read_input("script replay", o->npos > 2 ? o->pos[2] : NULL, &len);
  if (!input)
    return CLI_FAIL;
  o->town = town;
  core_host *h;
  if (cli_open_host(o, CORE_HOST_INSTANCES, &h)) {
    free(input);
    return CLI_FAIL;
  }
  int rc = CLI_FAIL;
  const core_town *t = script_town("script replay", h->cfg, town);
  char *report = NULL;
  core_err err;
  if (t && core_rules_replay(h, t, input, len, &report, &err))
    cli_error("script replay", "%s", err.msg);
  else if (report) {
    json_t *j = json_loads(report, 0, NULL);
    cli_print_json(j);
    rc = json_array_size(json_object_get(j, "rejected")) ? CLI_FAIL : CLI_OK;
    json_decref(j);
  }
  free(report);
  free(input);
  core_host_close(h);
  return t ? rc : CLI_USAGE;
}

static int cmd_script(cli_opts *o)
{
  const char *sub = o->npos ? o->pos[0] : NULL;
  if (sub && !strcmp(sub, "check"))
    return script_check(o, "script check", 1);
  if (sub && !strcmp(sub, "reload"))
    return script_reload(o);
  if (sub && !strcmp(sub, "status"))
    return script_status(o);
  if (sub && !strcmp(sub, "replay"))
    return script_replay(o);
  cli_error("script", "%s%s%s; use check, reload, status or replay TOWN",
            sub ? "unknown subcommand '" : "a subcommand is needed",
            sub ? sub : "", sub ? "'" : "");
  return CLI_USAGE;
}

/* ---- backup and restore ------------------------------------------------- */

static int cmd_backup(cli_opts *o)
{
  if (!o->npos) {
    cli_error("backup", "name the folder: twinhost backup DIR");
    return CLI_USAGE;
  }
  core_host *h;
  if (cli_open_host(o, CORE_HOST_STORE, &h))
    return CLI_FAIL;
  core_err err;
  int rc = core_store_backup(h->store, o->pos[0], &err);
  if (rc)
    cli_error("backup", "%s", err.msg);
  else {
    json_t *j = json_pack("{s:s,s:s}", "backup", o->pos[0], "status", "ok");
    cli_print_json(j);
    json_decref(j);
  }
  core_host_close(h);
  return rc ? CLI_FAIL : CLI_OK;
}

static int cmd_restore(cli_opts *o)
{
  if (!o->npos) {
    cli_error("restore", "name the backup folder: twinhost restore DIR");
    return CLI_USAGE;
  }
  core_config *cfg;
  core_err err;
  if (core_config_load(cli_config_path(o), &cfg, &err)) {
    cli_error("config", "%s", err.msg);
    return CLI_FAIL;
  }
  int rc = CLI_FAIL;
  char *lockpath = core_path_join(cfg->data_dir, "serve.lock");
  core_mkdirs(cfg->data_dir, NULL);
  int fd = open(lockpath, O_RDWR | O_CREAT, 0644);
  if (fd < 0 || flock(fd, LOCK_EX | LOCK_NB)) {
    cli_error("restore", "a twinhost serve is running on %s; stop it first",
              cfg->data_dir);
    goto out;
  }
  if (core_store_restore(cfg->data_dir, o->pos[0], &err)) {
    cli_error("restore", "%s", err.msg);
    goto out;
  }
  json_t *done = json_pack("{s:s,s:s,s:s}", "restored", o->pos[0], "into",
                           cfg->data_dir, "status", "ok");
  cli_print_json(done);
  json_decref(done);
  rc = CLI_OK;
out:
  if (fd >= 0)
    close(fd);
  free(lockpath);
  core_config_free(cfg);
  return rc;
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
    return rc == CLI_OK && output_failed ? CLI_FAIL : rc;
  }
  cli_error("usage", "unknown command '%s'\n\n%s", name, usage_main);
  return CLI_USAGE;
}
