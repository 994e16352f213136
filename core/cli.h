/*
 * cli.h — the twinhost command line: git-style subcommands, each with its
 * own --help. Exit codes: 0 ok, 1 failure, 2 usage. Data goes to stdout as
 * JSON, errors to stderr as "twinhost: <what>: <why>".
 */
#ifndef CORE_CLI_H
#define CORE_CLI_H

#include <jansson.h>

struct core_host;

enum { CLI_OK = 0, CLI_FAIL = 1, CLI_USAGE = 2 };

/* Run the command line; returns the process exit code. */
int cli_main(int argc, char **argv);

/* Parsed options of one subcommand. */
typedef struct cli_opts {
  const char *config;
  const char *town, *plugin, *type, *id, *attr;
  const char *from, *to, *limit;
  const char *filter, *near, *radius, *every, *agg;
  const char *listen; /* serve: ADDR:PORT overriding the config's http */
  const char *scope, *label; /* token create */
  const char *op;           /* query, scenario: the declared op */
  const char *content_type; /* ingest: a media type the plugin declares */
  int ack, whole, help, json;
  const char *pos[8]; /* positional arguments */
  int npos;
} cli_opts;

/* Subcommands (cli.c and serve.c). */
int cli_serve(cli_opts *o);
int cli_token(cli_opts *o); /* cli_token.c */

/* Shared helpers. */
void cli_error(const char *what, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
const char *cli_config_path(const cli_opts *o);
/* Bring up the host a command needs (CORE_HOST_*); at CORE_HOST_INSTANCES
 * only the plugins of --town. CLI_OK, or CLI_FAIL after saying why. */
int cli_open_host(cli_opts *o, int level, struct core_host **h);
/* Print j as indented JSON on stdout; when it cannot be written the
 * command exits 1 (cli_main checks cli_output_failed). */
void cli_print_json(json_t *j);
extern int cli_output_failed;
/* 1 when value is given; else says "OPT is required" and returns 0. */
int cli_need(const char *cmd, const char *value, const char *opt);
/* FILE, "-" or nothing (standard input), whole; caller frees; NULL after
 * saying why. */
char *cli_read_input(const char *cmd, const char *arg, size_t *len);

/* The command groups, one file each: cli_plugins.c, cli_ingest.c
 * (ingest, query, scenario), cli_store.c (entities, history, events,
 * backup, restore), cli_script.c. */
int cli_cmd_plugins(cli_opts *o);
int cli_cmd_ingest(cli_opts *o);
int cli_cmd_query(cli_opts *o);
int cli_cmd_scenario(cli_opts *o);
int cli_cmd_entities(cli_opts *o);
int cli_cmd_history(cli_opts *o);
int cli_cmd_events(cli_opts *o);
int cli_cmd_script(cli_opts *o);
int cli_cmd_backup(cli_opts *o);
int cli_cmd_restore(cli_opts *o);

#endif
