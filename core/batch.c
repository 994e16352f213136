/*
 * batch.c — one ingest body split into its documents (see batch.h), for
 * the HTTP API and the CLI alike.
 */
#include "batch.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api.h"
#include "jsonscan.h"
#include "media.h"

static const char *const LINES_TYPES[] = {
    "application/x-ndjson", "application/jsonl", "application/json-lines"};

core_batch_form core_batch_form_of(const char *content_type,
                                   const char *declared, char *type,
                                   size_t size)
{
  char bare[CORE_MEDIA_MAX];
  core_media_bare(content_type, bare, sizeof bare);
  if (size)
    type[0] = 0;
  /* a type the plugin declares is its own, JSON ones too (GeoJSON) */
  if (bare[0] && declared && core_media_in_list(declared, bare)) {
    snprintf(type, size, "%s", bare);
    return CORE_BATCH_WHOLE;
  }
  for (size_t i = 0; i < sizeof LINES_TYPES / sizeof *LINES_TYPES; i++)
    if (!strcmp(bare, LINES_TYPES[i]))
      return CORE_BATCH_LINES;
  if (!bare[0] || core_media_is_json(bare) ||
      !strcmp(bare, "application/x-www-form-urlencoded") ||
      !strcmp(bare, "text/plain"))
    return CORE_BATCH_JSON; /* `curl -d @file.json` says form-urlencoded */
  snprintf(type, size, "%s", bare);
  return CORE_BATCH_WHOLE;
}

void core_batch_free(core_batch *b)
{
  free(b->start);
  free(b->len);
  memset(b, 0, sizeof *b);
}

/* Room for n documents in b. */
static int reserve(core_batch *b, size_t n)
{
  if (n <= b->cap)
    return 0;
  size_t cap = b->cap ? b->cap : 64;
  while (cap < n)
    cap *= 2;
  const char **s2 = realloc(b->start, cap * sizeof *s2);
  if (s2)
    b->start = s2;
  size_t *l2 = realloc(b->len, cap * sizeof *l2);
  if (l2)
    b->len = l2;
  if (!s2 || !l2)
    return -1;
  b->cap = cap;
  return 0;
}

static int add_doc(core_batch *b, const char *start, size_t len, api_error *e)
{
  if (b->max && b->n == b->max) {
    size_t max = b->max;
    core_batch_free(b);
    return api_fail(e, 413, "too_many_documents", "body",
                    "the body holds more than %zu documents, the most one "
                    "request may send (http.max_documents); nothing was "
                    "ingested: split the batch into requests of at most %zu",
                    max, max);
  }
  if (reserve(b, b->n + 1)) {
    core_batch_free(b);
    return api_fail(e, 500, "internal", NULL, "out of memory");
  }
  b->start[b->n] = start;
  b->len[b->n] = len;
  b->n++;
  return 0;
}

/* 400 bad_json for the scanner's error se; line_no > 0: the line of a
 * JSON Lines body, which starts at body + base. Nothing is kept. */
static int scan_fail(api_error *e, core_batch *b, const char *body, size_t base,
                     const core_json_scan_err *se, size_t line_no)
{
  core_batch_free(b);
  size_t line, col;
  core_json_line_col(body + base, se->at - base, &line, &col);
  if (line_no)
    return api_fail(e, 400, "bad_json", "body",
                    "line %zu is not JSON: %s (column %zu); nothing was "
                    "ingested",
                    line_no, se->why, col);
  return api_fail(e, 400, "bad_json", "body",
                  "the body is not JSON: %s (line %zu, column %zu); nothing "
                  "was ingested. Send a JSON array of documents, or JSON "
                  "Lines (HTTP: Content-Type: application/x-ndjson; the "
                  "CLI: a .jsonl file)",
                  se->why, line, col);
}

/* The elements of the JSON array at body[i] ('[') into b; *end is just
 * past it. 0; -1 with se filled when the text is not JSON; or the HTTP
 * status of e (nothing kept). */
static int split_array(const char *body, size_t blen, size_t i, size_t *end,
                       core_batch *b, core_json_scan_err *se, api_error *e)
{
  i = core_json_ws(body, blen, i + 1);
  if (i < blen && body[i] == ']') {
    *end = i + 1;
    return 0;
  }
  for (;;) {
    size_t vend;
    if (core_json_scan(body, blen, i, &vend, se))
      return -1;
    if (add_doc(b, body + i, vend - i, e))
      return e->http;
    i = core_json_ws(body, blen, vend);
    if (i < blen && body[i] == ']') {
      *end = i + 1;
      return 0;
    }
    if (i >= blen || body[i] != ',') {
      se->at = i;
      se->why = i >= blen ? "the array is not closed" : "expected ',' or ']'";
      return -1;
    }
    i = core_json_ws(body, blen, i + 1);
  }
}

static int blank(char c)
{
  return c == ' ' || c == '\t' || c == '\r';
}

static int split_lines(const char *body, size_t blen, core_batch *b,
                       api_error *e)
{
  core_json_scan_err se;
  size_t line = 0, p = 0, end;
  while (p < blen) {
    const char *nl = memchr(body + p, '\n', blen - p);
    size_t le = nl ? (size_t)(nl - body) : blen, ls = p, s = p;
    line++;
    while (s < le && blank(body[s]))
      s++;
    p = nl ? le + 1 : blen;
    if (s == le)
      continue;
    if (core_json_scan(body, le, s, &end, &se))
      return scan_fail(e, b, body, ls, &se, line);
    size_t tail = end;
    while (tail < le && blank(body[tail]))
      tail++;
    if (tail < le) {
      se.at = tail;
      se.why = "more after the document (one document per line)";
      return scan_fail(e, b, body, ls, &se, line);
    }
    if (add_doc(b, body + s, end - s, e))
      return e->http;
  }
  return 0;
}

/* Where the value of member "documents" of the (valid JSON) object at
 * body[i] starts; 0 when it has none (of two, the last counts, as with
 * any JSON object). */
static size_t documents_member(const char *body, size_t blen, size_t i)
{
  core_json_scan_err se;
  size_t at = 0, k = core_json_ws(body, blen, i + 1);
  while (k < blen && body[k] == '"') {
    size_t kend, vend;
    core_json_scan(body, blen, k, &kend, &se);
    int is_docs = kend - k == 11 && !memcmp(body + k, "\"documents\"", 11);
    k = core_json_ws(body, blen, core_json_ws(body, blen, kend) + 1);
    core_json_scan(body, blen, k, &vend, &se);
    if (is_docs)
      at = k;
    k = core_json_ws(body, blen, vend);
    if (k < blen && body[k] == ',')
      k = core_json_ws(body, blen, k + 1);
  }
  return at;
}

static int split_json(const char *body, size_t blen, size_t i, core_batch *b,
                      api_error *e)
{
  core_json_scan_err se;
  size_t end;
  if (body[i] == '[') {
    /* the usual batch: checked and split in one pass, nothing built */
    int st = split_array(body, blen, i, &end, b, &se, e);
    if (st)
      return st < 0 ? scan_fail(e, b, body, 0, &se, 0) : st;
    i = core_json_ws(body, blen, end);
    if (i < blen) {
      se.at = i;
      se.why = "more text after the array";
      return scan_fail(e, b, body, 0, &se, 0);
    }
    return 0;
  }
  /* {"documents": [...]} (other members are ignored), one document, or
   * a value that is not one: checked whole first */
  if (core_json_scan(body, blen, i, &end, &se))
    return scan_fail(e, b, body, 0, &se, 0);
  size_t after = core_json_ws(body, blen, end);
  if (after < blen) {
    se.at = after;
    se.why = "more text after the value";
    return scan_fail(e, b, body, 0, &se, 0);
  }
  if (body[i] != '{')
    return api_fail(e, 400, "bad_request", "body",
                    "expected a document (a JSON object), a JSON array of "
                    "documents or {\"documents\": [...]}, got %s",
                    body[i] == '"'   ? "a string"
                    : body[i] == 't' ? "true"
                    : body[i] == 'f' ? "false"
                    : body[i] == 'n' ? "null"
                                     : "a number");
  size_t docs = documents_member(body, blen, i);
  if (!docs) /* one document, as a sensor gateway posts it */
    return add_doc(b, body + i, end - i, e) ? e->http : 0;
  if (body[docs] != '[')
    return api_fail(e, 400, "bad_request", "documents",
                    "\"documents\" must be an array of documents (or "
                    "send one document alone, without \"documents\")");
  int st = split_array(body, blen, docs, &end, b, &se, e);
  return st < 0 ? scan_fail(e, b, body, 0, &se, 0) : st;
}

int core_batch_split(const char *body, size_t blen, core_batch_form form,
                     size_t max, core_batch *b, api_error *e)
{
  memset(b, 0, sizeof *b);
  b->max = max;
  if (form == CORE_BATCH_WHOLE) {
    if (!blen)
      return api_fail(e, 400, "bad_request", "body",
                      "the body is empty: send the document");
    return add_doc(b, body, blen, e) ? e->http : 0;
  }
  size_t i = core_json_ws(body, blen, 0);
  if (i == blen)
    return api_fail(e, 400, "bad_request", "body",
                    "no documents: send a JSON array of documents, "
                    "{\"documents\": [...]}, one document, or JSON Lines "
                    "(HTTP: Content-Type: application/x-ndjson)");
  int st = form == CORE_BATCH_LINES ? split_lines(body, blen, b, e)
                                    : split_json(body, blen, i, b, e);
  if (st)
    return st;
  if (!b->n) {
    core_batch_free(b);
    return api_fail(e, 400, "bad_request", "body",
                    "no documents in the body; nothing was ingested");
  }
  return 0;
}
