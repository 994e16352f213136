/*
 * cli_token.c — `twinhost token create|list|revoke`: the API tokens of the
 * towns (core/tokens.c), managed from the command line. Works while a
 * `twinhost serve` has the store open; LMDB serialises the writers.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "host.h"
#include "tokens.h"

/* Print j (and drop it). */
static int print_new(json_t *j)
{
  cli_print_json(j);
  json_decref(j);
  return CLI_OK;
}

/* The town must be in the config; else name the ones that are. */
static int known_town(core_host *h, const char *cmd, const char *town)
{
  core_err err;
  if (core_config_town_or_err(h->cfg, town, &err))
    return 1;
  cli_error(cmd, "%s", err.msg);
  return 0;
}

static int token_create(cli_opts *o)
{
  const char *cmd = "token create";
  if (!o->town || !o->scope) {
    cli_error(cmd,
              "%s is required, e.g. `twinhost token create --town deggendorf "
              "--scope read`",
              !o->town ? "--town" : "--scope");
    return CLI_USAGE;
  }
  if (o->npos > 1) {
    cli_error(cmd, "unexpected argument '%s'; put a label in --label",
              o->pos[1]);
    return CLI_USAGE;
  }
  unsigned scopes;
  core_err err;
  if (core_scopes_parse(o->scope, &scopes, &err)) {
    cli_error(cmd, "--scope: %s", err.msg);
    return CLI_USAGE;
  }
  core_host *h;
  if (cli_open_host(o, CORE_HOST_STORE, &h))
    return CLI_FAIL;
  int rc = CLI_FAIL;
  char token[CORE_TOKEN_MAX];
  core_token_info info;
  if (!known_town(h, cmd, o->town))
    goto out;
  int st = core_token_create(h->store, h->cfg, o->town, scopes, o->label, token,
                             &info, &err);
  if (st) {
    cli_error(cmd, "%s", err.msg);
    rc = st == TWIN_ERR_INVALID ? CLI_USAGE : CLI_FAIL;
    goto out;
  }
  char when[40];
  core_format_time(info.created, when, sizeof when);
  char scope_list[32];
  json_t *scope_arr = json_array();
  for (const char *p =
           core_scopes_format(info.scopes, scope_list, sizeof scope_list);
       scope_arr && *p;) {
    size_t n = strcspn(p, ",");
    json_array_append_new(scope_arr, json_stringn(p, n));
    p += n + (p[n] == ',');
  }
  rc = print_new(json_pack("{s:s,s:s,s:s,s:o,s:s,s:s}", "token", token, "id",
                           info.id, "town", info.town, "scopes", scope_arr,
                           "label", info.label, "created", when));
  memset(token, 0, sizeof token);
  fprintf(stderr,
          "twinhost: token create: this is the only time the token is shown; "
          "store it now (only its hash is kept). Revoke it with `twinhost "
          "token revoke %s`.\n",
          info.id);
out:
  core_host_close(h);
  return rc;
}

static int token_list(cli_opts *o)
{
  const char *cmd = "token list";
  if (o->npos > 1) {
    cli_error(cmd, "unexpected argument '%s'; filter by town with --town",
              o->pos[1]);
    return CLI_USAGE;
  }
  core_host *h;
  if (cli_open_host(o, CORE_HOST_STORE, &h))
    return CLI_FAIL;
  int rc = CLI_FAIL;
  json_t *list = NULL;
  core_err err;
  if (o->town && !known_town(h, cmd, o->town))
    goto out;
  if (core_token_list(h->store, NULL, o->town, &list, &err)) {
    cli_error(cmd, "%s", err.msg);
    goto out;
  }
  rc = print_new(list);
out:
  core_host_close(h);
  return rc;
}

static int token_revoke(cli_opts *o)
{
  const char *cmd = "token revoke";
  if (o->npos != 2) {
    cli_error(cmd,
              "%s; name one token: `twinhost token revoke ID` (the id from "
              "`twinhost token list`) or the whole token",
              o->npos < 2 ? "which token?" : "too many arguments");
    return CLI_USAGE;
  }
  core_host *h;
  if (cli_open_host(o, CORE_HOST_STORE, &h))
    return CLI_FAIL;
  core_err err;
  int st = core_token_revoke(h->store, o->pos[1], &err);
  int rc = CLI_OK;
  if (st) {
    cli_error(cmd, "%s", err.msg);
    rc = st == TWIN_ERR_INVALID ? CLI_USAGE : CLI_FAIL;
  } else {
    /* The id is the one part of a token that may be shown. */
    const char *arg = o->pos[1];
    char id[16];
    snprintf(id, sizeof id, "%.12s", strlen(arg) > 12 ? arg + 4 : arg);
    rc = print_new(json_pack("{s:s}", "revoked", id));
  }
  core_host_close(h);
  return rc;
}

int cli_token(cli_opts *o)
{
  const char *sub = o->npos ? o->pos[0] : NULL;
  if (sub && !strcmp(sub, "create"))
    return token_create(o);
  if (sub && !strcmp(sub, "list"))
    return token_list(o);
  if (sub && !strcmp(sub, "revoke"))
    return token_revoke(o);
  cli_error("token",
            "%s%s%s; use create, list or revoke (see `twinhost token "
            "--help`)",
            sub ? "unknown subcommand '" : "a subcommand is needed",
            sub ? sub : "", sub ? "'" : "");
  return CLI_USAGE;
}
