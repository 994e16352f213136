/*
 * fuzz_http_body.c — libFuzzer target: an ingest request body as the HTTP
 * API splits it into documents. The first byte picks the format (odd: JSON
 * Lines, even: JSON). Whatever the body holds, splitting must not crash or
 * leak; a refusal names what is wrong; and it agrees with jansson: a body
 * jansson parses is split into exactly its documents, each slice being the
 * element it stands for, and a body the splitter accepts is one jansson
 * would parse but for what only building values refuses (numbers out of
 * range, \u0000, lone surrogates: those documents reach their plugin,
 * whose parse rejects each on its own).
 */
#include <jansson.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "api.h"
#include "http.h"

/* Whether jansson's failure is one the scanner may pass on to plugins. */
static int value_level(const json_error_t *je)
{
  return strstr(je->text, "too big") || strstr(je->text, "overflow") ||
         strstr(je->text, "\\u0000") || strstr(je->text, "surrogate") ||
         strstr(je->text, "Unicode") || strstr(je->text, "NUL");
}

static json_t *parse(const char *s, size_t n, json_error_t *je)
{
  return json_loadb(s, n, JSON_DECODE_ANY, je);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
  if (!size)
    return 0;
  int ndjson = data[0] & 1;
  const char *body = (const char *)data + 1;
  size_t len = size - 1;
  core_http_docs d;
  api_error e;
  int st = core_http_split_docs(body, len, ndjson, &d, &e);
  json_error_t je;
  if (st) {
    if (st < 400 || st > 599 || !e.message[0] || !e.code[0])
      abort(); /* every refusal names what is wrong */
    if (!ndjson && st == 400 && !strcmp(e.code, "bad_json") &&
        !memchr(body, 0, len)) {
      /* What the splitter calls malformed, jansson does too (jansson lets
       * a NUL byte pass between tokens; RFC 8259 and the splitter don't). */
      json_t *j = parse(body, len, &je);
      if (j)
        abort();
    }
    return 0;
  }
  if (!d.n)
    abort(); /* an empty batch is refused, not accepted */
  json_t *root = ndjson ? NULL : parse(body, len, &je);
  if (!ndjson && !root && !value_level(&je))
    abort(); /* accepted what jansson finds malformed */
  json_t *docs = json_is_object(root) ? json_object_get(root, "documents")
                                      : root;
  if (root && (!json_is_array(docs) || json_array_size(docs) != d.n))
    abort();
  for (size_t i = 0; i < d.n; i++) {
    json_t *j = parse(d.start[i], d.len[i], &je);
    if (!j && !value_level(&je))
      abort(); /* a slice that is not one whole document */
    if (root && !json_equal(j, json_array_get(docs, i)))
      abort();
    json_decref(j);
  }
  json_decref(root);
  core_http_docs_free(&d);
  return 0;
}
