/*
 * test_api_docs.c — the HTTP API's documentation matches the server: every
 * route of core_http_routes() (the route table of core/http.c) is an
 * operation of docs/openapi.json and a "### METHOD PATH" heading of
 * docs/api.md, with the same scope in the operation's "x-twinhost-scope",
 * and neither document names a route the server lacks. A failure names each
 * missing or extra route. The status table of docs/api.md ("## Errors")
 * lists exactly the rows of api_status_table() (core/api.c): every
 * twin_status with its HTTP status and code. The checkers are also run on
 * small made-up documents, so that each kind of mismatch is known to be
 * caught.
 */
#include "testutil.h"

#include <jansson.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api.h"
#include "http.h"

/* The problems a check found, one per line. */
typedef struct report {
  char text[8192];
  size_t n;
} report;

static void note(report *r, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
static void note(report *r, const char *fmt, ...)
{
  size_t used = strlen(r->text);
  va_list ap;
  va_start(ap, fmt);
  if (used + 2 < sizeof r->text) {
    vsnprintf(r->text + used, sizeof r->text - used - 1, fmt, ap);
    strcat(r->text, "\n");
  }
  va_end(ap);
  r->n++;
}

static const char *const methods[] = {"GET",   "POST", "PUT",     "DELETE",
                                      "PATCH", "HEAD", "OPTIONS", "TRACE"};
#define N_METHODS (sizeof methods / sizeof methods[0])

/* The route of routes with this method and path, or NULL. */
static json_t *find_route(json_t *routes, const char *method, const char *path)
{
  size_t i;
  json_t *rt;
  json_array_foreach(routes, i, rt)
  {
    if (!strcmp(json_string_value(json_object_get(rt, "method")), method) &&
        !strcmp(json_string_value(json_object_get(rt, "path")), path))
      return rt;
  }
  return NULL;
}

/* ---- docs/openapi.json --------------------------------------------------- */

/* Compare an OpenAPI document's paths × methods and their
 * "x-twinhost-scope" with routes; every mismatch noted in r. */
static void check_openapi(json_t *doc, json_t *routes, report *r)
{
  json_t *paths = json_object_get(doc, "paths");
  if (!json_is_object(paths)) {
    note(r, "openapi.json: \"paths\" is missing or not an object");
    return;
  }
  /* every route documented, with its scope */
  size_t i;
  json_t *rt;
  json_array_foreach(routes, i, rt)
  {
    const char *m = json_string_value(json_object_get(rt, "method"));
    const char *p = json_string_value(json_object_get(rt, "path"));
    const char *scope = json_string_value(json_object_get(rt, "scope"));
    char lower[16];
    size_t k = 0;
    for (; m[k] && k + 1 < sizeof lower; k++)
      lower[k] = (char)(m[k] >= 'A' && m[k] <= 'Z' ? m[k] + 32 : m[k]);
    lower[k] = 0;
    json_t *op = json_object_get(json_object_get(paths, p), lower);
    if (!json_is_object(op)) {
      note(r, "openapi.json lacks the route %s %s (add paths[\"%s\"].%s)", m, p,
           p, lower);
      continue;
    }
    json_t *xs = json_object_get(op, "x-twinhost-scope");
    if (!json_is_string(xs))
      note(r,
           "openapi.json: %s %s has no \"x-twinhost-scope\" (the server "
           "says \"%s\")",
           m, p, scope);
    else if (strcmp(json_string_value(xs), scope))
      note(r,
           "openapi.json: %s %s has \"x-twinhost-scope\": \"%s\"; the "
           "server says \"%s\"",
           m, p, json_string_value(xs), scope);
  }
  /* every documented operation exists */
  const char *p;
  json_t *item;
  json_object_foreach(paths, p, item)
  {
    if (!json_is_object(item)) {
      note(r, "openapi.json: paths[\"%s\"] is not an object", p);
      continue;
    }
    for (size_t j = 0; j < N_METHODS; j++) {
      char lower[16];
      size_t k = 0;
      for (; methods[j][k]; k++)
        lower[k] = (char)(methods[j][k] + 32);
      lower[k] = 0;
      if (json_object_get(item, lower) && !find_route(routes, methods[j], p))
        note(r,
             "openapi.json documents %s %s, which the server does not "
             "have",
             methods[j], p);
    }
  }
}

/* ---- docs/api.md --------------------------------------------------------- */

/* Compare the "### METHOD PATH" headings of a markdown text (outside code
 * fences) with routes; every mismatch noted in r. A heading that starts
 * with a method must be exactly "### METHOD PATH". */
static void check_markdown(const char *md, json_t *routes, report *r)
{
  size_t n_routes = json_array_size(routes);
  int *seen = calloc(n_routes ? n_routes : 1, sizeof *seen);
  assert_non_null(seen);
  int fence = 0;
  size_t line_no = 0;
  for (const char *s = md; s && *s;) {
    const char *nl = strchr(s, '\n');
    size_t len = nl ? (size_t)(nl - s) : strlen(s);
    char line[512];
    snprintf(line, sizeof line, "%.*s", (int)(len < 511 ? len : 511), s);
    s = nl ? nl + 1 : NULL;
    line_no++;
    size_t ll = strlen(line);
    while (ll && (line[ll - 1] == '\r' || line[ll - 1] == ' '))
      line[--ll] = 0;
    if (!strncmp(line, "```", 3) || !strncmp(line, "~~~", 3)) {
      fence = !fence;
      continue;
    }
    if (fence || strncmp(line, "### ", 4))
      continue;
    const char *h = line + 4;
    size_t j = 0;
    for (; j < N_METHODS; j++) {
      size_t ml = strlen(methods[j]);
      if (!strncmp(h, methods[j], ml) && (h[ml] == ' ' || !h[ml]))
        break;
    }
    if (j == N_METHODS)
      continue; /* another heading */
    const char *path = h + strlen(methods[j]);
    if (*path != ' ' || path[1] != '/' || strchr(path + 1, ' ') ||
        strchr(path, '`')) {
      note(r,
           "api.md line %zu: \"%s\" is not of the form \"### METHOD "
           "/path\"",
           line_no, line);
      continue;
    }
    path++;
    json_t *rt = find_route(routes, methods[j], path);
    if (!rt) {
      note(r,
           "api.md line %zu documents %s %s, which the server does not "
           "have",
           line_no, methods[j], path);
      continue;
    }
    size_t i;
    json_t *x;
    json_array_foreach(routes, i, x)
    {
      if (x == rt && seen[i]++)
        note(r, "api.md line %zu documents %s %s a second time", line_no,
             methods[j], path);
    }
  }
  size_t i;
  json_t *rt;
  json_array_foreach(routes, i, rt)
  {
    if (!seen[i])
      note(r, "api.md lacks the route %s %s (add a heading \"### %s %s\")",
           json_string_value(json_object_get(rt, "method")),
           json_string_value(json_object_get(rt, "path")),
           json_string_value(json_object_get(rt, "method")),
           json_string_value(json_object_get(rt, "path")));
  }
  free(seen);
}

/* ---- the status table of docs/api.md --------------------------------------- */

/* The row of table ([{"status","http","code"}]) for status name (as
 * "ERR_INVALID"), or NULL. */
static json_t *find_status(json_t *table, const char *name)
{
  size_t i;
  json_t *row;
  json_array_foreach(table, i, row)
  {
    if (!strcmp(json_string_value(json_object_get(row, "status")), name))
      return row;
  }
  return NULL;
}

/* Cell k (0 = before the first '|') of a table line, trimmed, into out. */
static int md_cell(const char *line, int k, char *out, size_t size)
{
  const char *p = line;
  for (int i = 0; i < k; i++) {
    p = strchr(p, '|');
    if (!p)
      return 0;
    p++;
  }
  const char *end = strchr(p, '|');
  if (!end)
    end = p + strlen(p);
  while (p < end && *p == ' ')
    p++;
  while (end > p && end[-1] == ' ')
    end--;
  snprintf(out, size, "%.*s", (int)(end - p), p);
  return 1;
}

/* "`x`" -> "x" in place; 0 when s is not one backquoted word. */
static int unquote(char *s)
{
  size_t n = strlen(s);
  if (n < 3 || s[0] != '`' || s[n - 1] != '`')
    return 0;
  memmove(s, s + 1, n - 2);
  s[n - 2] = 0;
  return !strchr(s, '`');
}

/* Compare the rows "| `TWIN_<NAME>` | <http> | `<code>` | ..." of the
 * "## Errors" section of a markdown text (outside code fences) with table
 * (api_status_table()); every missing, extra, repeated or differing row
 * noted in r. */
static void check_status_table(const char *md, json_t *table, report *r)
{
  size_t n_rows = json_array_size(table);
  int *seen = calloc(n_rows ? n_rows : 1, sizeof *seen);
  assert_non_null(seen);
  int fence = 0, in_errors = 0;
  size_t line_no = 0;
  for (const char *s = md; s && *s;) {
    const char *nl = strchr(s, '\n');
    size_t len = nl ? (size_t)(nl - s) : strlen(s);
    char line[1024];
    snprintf(line, sizeof line, "%.*s", (int)(len < 1023 ? len : 1023), s);
    s = nl ? nl + 1 : NULL;
    line_no++;
    size_t ll = strlen(line);
    while (ll && (line[ll - 1] == '\r' || line[ll - 1] == ' '))
      line[--ll] = 0;
    if (!strncmp(line, "```", 3) || !strncmp(line, "~~~", 3)) {
      fence = !fence;
      continue;
    }
    if (fence)
      continue;
    if (!strncmp(line, "## ", 3)) {
      in_errors = !strcmp(line, "## Errors");
      continue;
    }
    char status[64], http[16], code[64];
    if (!in_errors || line[0] != '|' || !md_cell(line, 1, status, sizeof status))
      continue;
    if (strncmp(status, "`TWIN_", 6))
      continue; /* another table, or the header row */
    if (!unquote(status) || !md_cell(line, 2, http, sizeof http) ||
        !md_cell(line, 3, code, sizeof code) || !unquote(code)) {
      note(r,
           "api.md line %zu: a status row must read \"| `TWIN_<NAME>` | "
           "<http> | `<code>` | ...\"",
           line_no);
      continue;
    }
    const char *name = status + 5; /* without "TWIN_" */
    json_t *row = find_status(table, name);
    if (!row) {
      note(r,
           "api.md line %zu lists %s, which api_status_table() (core/api.c) "
           "does not have",
           line_no, status);
      continue;
    }
    size_t i;
    json_t *x;
    json_array_foreach(table, i, x)
    {
      if (x == row && seen[i]++)
        note(r, "api.md line %zu lists %s a second time", line_no, status);
    }
    long want_http = (long)json_integer_value(json_object_get(row, "http"));
    const char *want_code = json_string_value(json_object_get(row, "code"));
    char *end;
    long got_http = strtol(http, &end, 10);
    if (*end || !http[0] || got_http != want_http || strcmp(code, want_code))
      note(r,
           "api.md line %zu: %s is HTTP %s, code %s; core/api.c says HTTP "
           "%ld, code %s",
           line_no, status, http, code, want_http, want_code);
  }
  size_t i;
  json_t *row;
  json_array_foreach(table, i, row)
  {
    if (!seen[i])
      note(r,
           "api.md lacks the status row TWIN_%s (add \"| `TWIN_%s` | %lld | "
           "`%s` | ...\" to the table under \"## Errors\")",
           json_string_value(json_object_get(row, "status")),
           json_string_value(json_object_get(row, "status")),
           (long long)json_integer_value(json_object_get(row, "http")),
           json_string_value(json_object_get(row, "code")));
  }
  free(seen);
}

/* ---- helpers ------------------------------------------------------------- */

static char *read_text(const char *path)
{
  FILE *f = fopen(path, "rb");
  if (!f)
    fail_msg("cannot open %s", path);
  fseek(f, 0, SEEK_END);
  long n = ftell(f);
  fseek(f, 0, SEEK_SET);
  char *text = malloc((size_t)n + 1);
  assert_non_null(text);
  assert_int_equal(fread(text, 1, (size_t)n, f), (size_t)n);
  text[n] = 0;
  fclose(f);
  return text;
}

static json_t *load_openapi(void)
{
  char *path = tu_fmt("%s/docs/openapi.json", tu_env("TWIN_SOURCE_DIR"));
  json_error_t je;
  json_t *doc = json_load_file(path, 0, &je);
  if (!doc)
    fail_msg("%s is not valid JSON: %s (line %d, column %d)", path, je.text,
             je.line, je.column);
  free(path);
  return doc;
}

static void assert_clean(const report *r, const char *what)
{
  if (r->n)
    fail_msg("%s does not match the server's routes (core/http.c "
             "routes[]):\n%s",
             what, r->text);
}

static void assert_noted(const report *r, const char *want)
{
  if (!strstr(r->text, want))
    fail_msg("expected a problem \"%s\"; got:\n%s", want,
             r->n ? r->text : "(none)\n");
}

/* A small route table for the made-up documents. */
static json_t *two_routes(void)
{
  return json_pack("[{s:s,s:s,s:s},{s:s,s:s,s:s}]", "method", "GET", "path",
                   "/v1/towns/{town}", "scope", "read", "method", "POST",
                   "path", "/v1/towns/{town}/plugins/{plugin}/ingest", "scope",
                   "write");
}

/* ---- the real documents -------------------------------------------------- */

static void server_lists_its_routes_with_scopes(void **state)
{
  (void)state;
  json_t *routes = core_http_routes();
  assert_true(json_array_size(routes) > 0);
  size_t i;
  json_t *rt;
  json_array_foreach(routes, i, rt)
  {
    const char *scope = json_string_value(json_object_get(rt, "scope"));
    assert_non_null(json_string_value(json_object_get(rt, "method")));
    assert_non_null(json_string_value(json_object_get(rt, "path")));
    assert_non_null(scope);
    assert_true(!strcmp(scope, "public") || !strcmp(scope, "read") ||
                !strcmp(scope, "write") || !strcmp(scope, "admin"));
  }
  json_t *ingest =
      find_route(routes, "POST", "/v1/towns/{town}/plugins/{plugin}/ingest");
  assert_non_null(ingest);
  assert_string_equal(json_string_value(json_object_get(ingest, "scope")),
                      "write");
  json_decref(routes);
}

static void openapi_documents_exactly_the_server_routes_and_scopes(void **state)
{
  (void)state;
  json_t *routes = core_http_routes();
  json_t *doc = load_openapi();
  assert_string_equal(json_string_value(json_object_get(doc, "openapi")),
                      "3.0.3");
  report r = {.n = 0};
  check_openapi(doc, routes, &r);
  assert_clean(&r, "docs/openapi.json");
  json_decref(doc);
  json_decref(routes);
}

static void api_md_has_a_heading_for_exactly_the_server_routes(void **state)
{
  (void)state;
  json_t *routes = core_http_routes();
  char *path = tu_fmt("%s/docs/api.md", tu_env("TWIN_SOURCE_DIR"));
  char *md = read_text(path);
  report r = {.n = 0};
  check_markdown(md, routes, &r);
  assert_clean(&r, "docs/api.md");
  free(md);
  free(path);
  json_decref(routes);
}

static void openapi_has_the_error_schema_and_bearer_scheme(void **state)
{
  (void)state;
  json_t *doc = load_openapi();
  json_t *comp = json_object_get(doc, "components");
  json_t *bearer =
      json_object_get(json_object_get(comp, "securitySchemes"), "bearerAuth");
  assert_string_equal(json_string_value(json_object_get(bearer, "scheme")),
                      "bearer");
  json_t *schemas = json_object_get(comp, "schemas");
  const char *const want[] = {"Error", "Entity",       "EntityList",
                              "Event", "IngestResult", "History"};
  for (size_t i = 0; i < sizeof want / sizeof want[0]; i++)
    if (!json_is_object(json_object_get(schemas, want[i])))
      fail_msg("openapi.json: components.schemas.%s is missing", want[i]);
  json_decref(doc);
}

/* ---- the checkers catch each mismatch ------------------------------------ */

static void markdown_missing_and_extra_routes_are_named(void **state)
{
  (void)state;
  json_t *routes = two_routes();
  report r = {.n = 0};
  check_markdown("# API\n### GET /v1/towns/{town}\ntext\n"
                 "### DELETE /v1/towns/{town}\n",
                 routes, &r);
  assert_int_equal(r.n, 2);
  assert_noted(&r, "api.md line 4 documents DELETE /v1/towns/{town}, which "
                   "the server does not have");
  assert_noted(&r, "api.md lacks the route POST "
                   "/v1/towns/{town}/plugins/{plugin}/ingest");
  json_decref(routes);
}

static void
markdown_headings_in_code_and_other_headings_are_ignored(void **state)
{
  (void)state;
  json_t *routes = two_routes();
  report r = {.n = 0};
  check_markdown("### GET /v1/towns/{town}\n"
                 "### Paging with cursors\n"
                 "### GETTING started\n"
                 "```\n### GET /v1/nothing\n```\n"
                 "### POST /v1/towns/{town}/plugins/{plugin}/ingest\r\n",
                 routes, &r);
  assert_clean(&r, "the made-up api.md");
  json_decref(routes);
}

static void markdown_malformed_and_repeated_headings_are_named(void **state)
{
  (void)state;
  json_t *routes = two_routes();
  report r = {.n = 0};
  check_markdown("### GET /v1/towns/{town}\n"
                 "### GET /v1/towns/{town}\n"
                 "### POST `/v1/towns/{town}/plugins/{plugin}/ingest`\n"
                 "### POST /v1/towns/{town}/plugins/{plugin}/ingest (batch)\n"
                 "### GET\n",
                 routes, &r);
  assert_noted(&r, "api.md line 2 documents GET /v1/towns/{town} a second "
                   "time");
  assert_noted(&r, "api.md line 3: \"### POST "
                   "`/v1/towns/{town}/plugins/{plugin}/ingest`\" is not of "
                   "the form");
  assert_noted(&r, "api.md line 4: ");
  assert_noted(&r, "api.md line 5: \"### GET\" is not of the form");
  assert_noted(&r, "api.md lacks the route POST");
  assert_int_equal(r.n, 5);
  json_decref(routes);
}

static void openapi_missing_extra_and_wrong_scope_are_named(void **state)
{
  (void)state;
  json_t *routes = two_routes();
  json_t *doc = json_loads(
      "{\"paths\": {"
      " \"/v1/towns/{town}\": {\"get\": {\"x-twinhost-scope\": \"admin\"},"
      "                        \"delete\": {}},"
      " \"/v1/extra\": {\"get\": {\"x-twinhost-scope\": \"public\"}}}}",
      0, NULL);
  assert_non_null(doc);
  report r = {.n = 0};
  check_openapi(doc, routes, &r);
  assert_noted(&r, "openapi.json: GET /v1/towns/{town} has "
                   "\"x-twinhost-scope\": \"admin\"; the server says "
                   "\"read\"");
  assert_noted(&r, "openapi.json lacks the route POST "
                   "/v1/towns/{town}/plugins/{plugin}/ingest");
  assert_noted(&r, "openapi.json documents DELETE /v1/towns/{town}, which "
                   "the server does not have");
  assert_noted(&r, "openapi.json documents GET /v1/extra, which the server "
                   "does not have");
  assert_int_equal(r.n, 4);
  json_decref(doc);
  json_decref(routes);
}

static void openapi_missing_scope_and_paths_are_named(void **state)
{
  (void)state;
  json_t *routes = two_routes();
  json_t *doc =
      json_loads("{\"paths\": {"
                 " \"/v1/towns/{town}\": {\"get\": {}},"
                 " \"/v1/towns/{town}/plugins/{plugin}/ingest\": {\"post\": "
                 "{\"x-twinhost-scope\": \"write\"}}}}",
                 0, NULL);
  report r = {.n = 0};
  check_openapi(doc, routes, &r);
  assert_int_equal(r.n, 1);
  assert_noted(&r, "openapi.json: GET /v1/towns/{town} has no "
                   "\"x-twinhost-scope\" (the server says \"read\")");
  json_decref(doc);

  doc = json_loads("{\"openapi\": \"3.0.3\", \"paths\": []}", 0, NULL);
  report r2 = {.n = 0};
  check_openapi(doc, routes, &r2);
  assert_int_equal(r2.n, 1);
  assert_noted(&r2, "\"paths\" is missing or not an object");
  json_decref(doc);
  json_decref(routes);
}

static void api_md_lists_exactly_the_status_table_of_the_core(void **state)
{
  (void)state;
  json_t *table = api_status_table();
  assert_true(json_array_size(table) > 0);
  char *path = tu_fmt("%s/docs/api.md", tu_env("TWIN_SOURCE_DIR"));
  char *md = read_text(path);
  report r = {.n = 0};
  check_status_table(md, table, &r);
  if (r.n)
    fail_msg("docs/api.md does not match the status table of core/api.c "
             "(api_status_table()):\n%s",
             r.text);
  free(md);
  free(path);
  json_decref(table);
}

static json_t *two_statuses(void)
{
  return json_pack("[{s:s,s:i,s:s},{s:s,s:i,s:s}]", "status", "ERR_INVALID",
                   "http", 400, "code", "bad_request", "status",
                   "ERR_DEADLINE", "http", 504, "code", "deadline_exceeded");
}

static void status_table_missing_extra_and_wrong_rows_are_named(void **state)
{
  (void)state;
  json_t *table = two_statuses();
  report r = {.n = 0};
  check_status_table("# API\n## Errors\n"
                     "| Status | HTTP | Code |\n|---|---|---|\n"
                     "| `TWIN_ERR_INVALID` | 400 | `bad_request` | x |\n"
                     "| `TWIN_ERR_INVALID` | 400 | `bad_request` | x |\n"
                     "| `TWIN_ERR_NOPE` | 418 | `teapot` | x |\n"
                     "## Limits\n",
                     table, &r);
  assert_noted(&r, "api.md line 7 lists TWIN_ERR_NOPE, which "
                   "api_status_table() (core/api.c) does not have");
  assert_noted(&r, "api.md line 6 lists TWIN_ERR_INVALID a second time");
  assert_noted(&r, "api.md lacks the status row TWIN_ERR_DEADLINE");
  assert_int_equal(r.n, 3);

  report r2 = {.n = 0};
  check_status_table("## Errors\n"
                     "| `TWIN_ERR_INVALID` | 422 | `bad_request` |\n"
                     "| `TWIN_ERR_DEADLINE` | 504 | `too_slow` |\n",
                     table, &r2);
  assert_noted(&r2, "api.md line 2: TWIN_ERR_INVALID is HTTP 422, code "
                    "bad_request; core/api.c says HTTP 400, code bad_request");
  assert_noted(&r2, "api.md line 3: TWIN_ERR_DEADLINE is HTTP 504, code "
                    "too_slow; core/api.c says HTTP 504, code "
                    "deadline_exceeded");
  assert_int_equal(r2.n, 2);
  json_decref(table);
}

static void status_rows_outside_errors_and_in_code_are_ignored(void **state)
{
  (void)state;
  json_t *table = two_statuses();
  report r = {.n = 0};
  check_status_table("## Start\n| `TWIN_ERR_NOPE` | 1 | `x` |\n"
                     "## Errors\n```\n| `TWIN_ERR_NOPE` | 1 | `x` |\n```\n"
                     "| Status | HTTP | Code |\n"
                     "| `TWIN_ERR_INVALID` | 400 | `bad_request` |\r\n"
                     "| `TWIN_ERR_DEADLINE` | 504 | `deadline_exceeded` |\n"
                     "## Plugins\n| `TWIN_ERR_NOPE` | 1 | `x` |\n",
                     table, &r);
  assert_clean(&r, "the made-up status table");

  report r2 = {.n = 0};
  check_status_table("## Errors\n| `TWIN_ERR_INVALID` | 400 | bad_request |\n"
                     "| `TWIN_ERR_DEADLINE` | 504 | `deadline_exceeded` |\n",
                     table, &r2);
  assert_noted(&r2, "api.md line 2: a status row must read");
  assert_noted(&r2, "api.md lacks the status row TWIN_ERR_INVALID");
  assert_int_equal(r2.n, 2);
  json_decref(table);
}

int main(void)
{
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(server_lists_its_routes_with_scopes),
      cmocka_unit_test(openapi_documents_exactly_the_server_routes_and_scopes),
      cmocka_unit_test(api_md_has_a_heading_for_exactly_the_server_routes),
      cmocka_unit_test(openapi_has_the_error_schema_and_bearer_scheme),
      cmocka_unit_test(markdown_missing_and_extra_routes_are_named),
      cmocka_unit_test(
          markdown_headings_in_code_and_other_headings_are_ignored),
      cmocka_unit_test(markdown_malformed_and_repeated_headings_are_named),
      cmocka_unit_test(openapi_missing_extra_and_wrong_scope_are_named),
      cmocka_unit_test(openapi_missing_scope_and_paths_are_named),
      cmocka_unit_test(api_md_lists_exactly_the_status_table_of_the_core),
      cmocka_unit_test(status_table_missing_extra_and_wrong_rows_are_named),
      cmocka_unit_test(status_rows_outside_errors_and_in_code_are_ignored),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
