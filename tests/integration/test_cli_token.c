/*
 * test_cli_token.c — `twinhost token create|list|revoke` through the real
 * binary: the token is printed once and checks against the store, list
 * never shows a secret, revoke by id or token, and exit codes 0 ok, 1
 * failure (unknown town, unknown token), 2 usage (bad --scope, missing
 * options) with "twinhost: " error lines naming what is wrong.
 */
#include "testutil.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "store.h"
#include "tokens.h"

typedef struct fx {
  char *dir;
  char *config;
} fx;

static int setup(void **state)
{
  fx *f = calloc(1, sizeof *f);
  f->dir = tu_tempdir();
  tu_utc_zoneinfo(f->dir);
  unsetenv("TWINHOST_CONFIG");
  f->config = tu_write_file(f->dir, "twinhost.json",
                            "{\"data_dir\": \"data\", \"towns\": [\n"
                            "  {\"id\": \"alpha\", \"timezone\": \"UTC\"},\n"
                            "  {\"id\": \"beta\", \"timezone\": \"UTC\"}]}\n");
  *state = f;
  return 0;
}

static int teardown(void **state)
{
  fx *f = *state;
  unsetenv("TZDIR");
  tu_rmtree(f->dir);
  free(f->dir);
  free(f->config);
  free(f);
  return 0;
}

/* twinhost --config <ours> token args... (NULL-terminated). */
static tu_run token(fx *f, ...)
{
  const char *argv[16] = {"--config", f->config, "token"};
  size_t n = 3;
  va_list ap;
  va_start(ap, f);
  for (const char *a = va_arg(ap, const char *); a && n < 15;
       a = va_arg(ap, const char *))
    argv[n++] = a;
  va_end(ap);
  argv[n] = NULL;
  return tu_twinhost_argv(NULL, argv);
}

static void assert_contains(const char *text, const char *want)
{
  assert_non_null(text);
  if (!strstr(text, want))
    fail_msg("\"%s\"\n  lacks \"%s\"", text, want);
}

static void assert_exit(tu_run *r, int code)
{
  if (r->exit_code != code)
    fail_msg("exit %d, expected %d\nstdout: %s\nstderr: %s", r->exit_code, code,
             r->out, r->err);
}

static json_t *parse(const char *text)
{
  json_error_t je;
  json_t *j = json_loads(text, 0, &je);
  if (!j)
    fail_msg("not JSON (%s): %s", je.text, text);
  return j;
}

/* Create a token; returns the parsed output (caller decrefs). */
static json_t *create(fx *f, const char *town, const char *scope,
                      const char *label)
{
  tu_run r = label ? token(f, "create", "--town", town, "--scope", scope,
                           "--label", label, NULL)
                   : token(f, "create", "--town", town, "--scope", scope, NULL);
  assert_exit(&r, 0);
  json_t *j = parse(r.out);
  tu_run_free(&r);
  return j;
}

static const char *str(json_t *obj, const char *key)
{
  const char *s = json_string_value(json_object_get(obj, key));
  if (!s)
    fail_msg("no string \"%s\"", key);
  return s;
}

/* ---- the round trip ------------------------------------------------------ */

static void create_list_revoke_round_trip(void **state)
{
  fx *f = *state;
  tu_run r = token(f, "create", "--town", "alpha", "--scope", "read,write",
                   "--label", "feed robot", NULL);
  assert_exit(&r, 0);
  assert_contains(r.err, "only time the token is shown");
  json_t *made = parse(r.out);
  tu_run_free(&r);
  const char *tok = str(made, "token"), *id = str(made, "id");
  assert_int_equal(strlen(tok), CORE_TOKEN_LEN);
  assert_memory_equal(tok + 4, id, 12);
  assert_string_equal(str(made, "town"), "alpha");
  assert_string_equal(str(made, "label"), "feed robot");
  json_t *scopes = json_object_get(made, "scopes");
  assert_int_equal(json_array_size(scopes), 2);
  assert_string_equal(json_string_value(json_array_get(scopes, 0)), "read");
  assert_string_equal(json_string_value(json_array_get(scopes, 1)), "write");

  r = token(f, "list", NULL);
  assert_exit(&r, 0);
  assert_null(strstr(r.out, tok + 17)); /* never the secret */
  assert_null(strstr(r.out, "hash"));
  json_t *list = parse(r.out);
  tu_run_free(&r);
  assert_int_equal(json_array_size(list), 1);
  json_t *row = json_array_get(list, 0);
  assert_string_equal(str(row, "id"), id);
  assert_string_equal(str(row, "town"), "alpha");
  assert_string_equal(str(row, "label"), "feed robot");
  assert_null(json_object_get(row, "token"));
  json_decref(list);

  r = token(f, "list", "--town", "beta", NULL);
  assert_exit(&r, 0);
  list = parse(r.out);
  assert_int_equal(json_array_size(list), 0);
  json_decref(list);
  tu_run_free(&r);

  r = token(f, "revoke", id, NULL);
  assert_exit(&r, 0);
  json_t *rev = parse(r.out);
  assert_string_equal(str(rev, "revoked"), id);
  json_decref(rev);
  tu_run_free(&r);

  r = token(f, "list", NULL);
  assert_exit(&r, 0);
  list = parse(r.out);
  assert_int_equal(json_array_size(list), 0);
  json_decref(list);
  tu_run_free(&r);
  json_decref(made);
}

static void created_token_checks_against_the_store(void **state)
{
  fx *f = *state;
  json_t *made = create(f, "beta", "admin", NULL);
  char *data = tu_fmt("%s/data", f->dir);
  core_store *s;
  core_err err;
  if (core_store_open(data, &s, &err))
    fail_msg("store: %s", err.msg);
  core_token_info info;
  const char *tok = str(made, "token");
  assert_int_equal(core_token_check(s, NULL, tok, strlen(tok), &info), TWIN_OK);
  assert_string_equal(info.town, "beta");
  assert_int_equal(info.scopes, CORE_SCOPE_ADMIN);
  core_store_close(s);
  free(data);
  json_decref(made);
}

static void revoke_by_the_whole_token_then_again_fails(void **state)
{
  fx *f = *state;
  json_t *made = create(f, "alpha", "read", "x");
  tu_run r = token(f, "revoke", str(made, "token"), NULL);
  assert_exit(&r, 0);
  json_t *rev = parse(r.out);
  assert_string_equal(str(rev, "revoked"), str(made, "id"));
  json_decref(rev);
  tu_run_free(&r);
  r = token(f, "revoke", str(made, "token"), NULL);
  assert_exit(&r, 1);
  assert_contains(r.err, "twinhost: token revoke: no token with id");
  assert_null(strstr(r.err, str(made, "token") + 17));
  tu_run_free(&r);
  json_decref(made);
}

/* ---- errors -------------------------------------------------------------- */

static void bad_scope_exits_2_naming_it(void **state)
{
  fx *f = *state;
  tu_run r =
      token(f, "create", "--town", "alpha", "--scope", "read,wrte", NULL);
  assert_exit(&r, 2);
  assert_contains(r.err, "twinhost: token create: --scope: unknown scope "
                         "\"wrte\" (valid scopes: read, write, admin");
  assert_contains(r.err, "did you mean \"write\"?");
  assert_string_equal(r.out, "");
  tu_run_free(&r);
  r = token(f, "create", "--town", "alpha", "--scope", "", NULL);
  assert_exit(&r, 2);
  assert_contains(r.err, "no scope given");
  tu_run_free(&r);
  /* Nothing was stored. */
  r = token(f, "list", NULL);
  assert_exit(&r, 0);
  json_t *list = parse(r.out);
  assert_int_equal(json_array_size(list), 0);
  json_decref(list);
  tu_run_free(&r);
}

static void unknown_town_exits_1(void **state)
{
  fx *f = *state;
  tu_run r = token(f, "create", "--town", "gamma", "--scope", "read", NULL);
  assert_exit(&r, 1);
  assert_contains(r.err, "twinhost: token create: unknown town 'gamma' (this "
                         "host serves: alpha, beta)");
  assert_string_equal(r.out, "");
  tu_run_free(&r);
  r = token(f, "list", "--town", "gamma", NULL);
  assert_exit(&r, 1);
  assert_contains(r.err, "unknown town 'gamma'");
  tu_run_free(&r);
}

static void missing_parts_are_usage_errors(void **state)
{
  fx *f = *state;
  tu_run r = token(f, "create", "--scope", "read", NULL);
  assert_exit(&r, 2);
  assert_contains(r.err, "twinhost: token create: --town is required");
  tu_run_free(&r);
  r = token(f, "create", "--town", "alpha", NULL);
  assert_exit(&r, 2);
  assert_contains(r.err, "twinhost: token create: --scope is required");
  tu_run_free(&r);
  r = token(f, NULL);
  assert_exit(&r, 2);
  assert_contains(r.err, "twinhost: token: a subcommand is needed");
  tu_run_free(&r);
  r = token(f, "delete", NULL);
  assert_exit(&r, 2);
  assert_contains(r.err, "unknown subcommand 'delete'; use create, list or "
                         "revoke");
  tu_run_free(&r);
  r = token(f, "revoke", NULL);
  assert_exit(&r, 2);
  assert_contains(r.err, "twinhost: token revoke: which token?");
  tu_run_free(&r);
  r = token(f, "revoke", "not-an-id", NULL);
  assert_exit(&r, 2);
  assert_contains(r.err, "\"not-an-id\" is not a token id");
  tu_run_free(&r);
  r = token(f, "create", "--town", "alpha", "--scope", "read", "--label",
            "a\tb", NULL);
  assert_exit(&r, 2);
  assert_contains(r.err, "control character");
  tu_run_free(&r);
  r = token(f, "create", "--town", "alpha", "--scope", "read", "--colour",
            "red", NULL);
  assert_exit(&r, 2);
  assert_contains(r.err, "unknown option '--colour'");
  tu_run_free(&r);
}

static void help_explains_the_subcommands(void **state)
{
  fx *f = *state;
  tu_run r = token(f, "--help", NULL);
  assert_exit(&r, 0);
  assert_contains(r.out, "usage: twinhost token create --town TOWN --scope");
  assert_contains(r.out, "twinhost token revoke ID|TOKEN");
  tu_run_free(&r);
  r = tu_twinhost(NULL, "--help", NULL);
  assert_exit(&r, 0);
  assert_contains(r.out, "token create|list|revoke");
  tu_run_free(&r);
}

int main(void)
{
#define T(name) cmocka_unit_test_setup_teardown(name, setup, teardown)
  const struct CMUnitTest tests[] = {
      T(create_list_revoke_round_trip),
      T(created_token_checks_against_the_store),
      T(revoke_by_the_whole_token_then_again_fails),
      T(bad_scope_exits_2_naming_it),
      T(unknown_town_exits_1),
      T(missing_parts_are_usage_errors),
      T(help_explains_the_subcommands),
  };
#undef T
  return cmocka_run_group_tests(tests, NULL, NULL);
}
