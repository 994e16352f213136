/*
 * fuzz_batch.c — libFuzzer target: an ingest body split into documents
 * (core/batch.c), as the HTTP API and the CLI split it. The first byte
 * picks the form (bit 0: JSON Lines, else bit 1: one document whole, else
 * JSON) and bit 2 a limit of 3 documents. Whatever the body holds,
 * splitting must not crash or leak; a refusal names what is wrong and
 * leaves nothing; and it agrees with jansson: a body jansson parses is
 * split into exactly its documents (an array's elements, the "documents"
 * member's, or a lone object itself), each slice being the element it
 * stands for, and a body the splitter accepts is one jansson would parse
 * but for what only building values refuses (numbers out of range,
 * \u0000, lone surrogates: those documents reach their plugin, whose parse
 * rejects each on its own).
 */
#include <jansson.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "api.h"
#include "batch.h"

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

/* The documents jansson sees in root: NULL when root is no batch. */
static json_t *documents_of(json_t *root)
{
  if (json_is_array(root))
    return json_incref(root);
  json_t *docs = json_object_get(root, "documents");
  if (docs)
    return json_incref(docs);
  if (!json_is_object(root))
    return NULL;
  json_t *one = json_array();
  json_array_append(one, root);
  return one;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
  if (!size)
    return 0;
  core_batch_form form = data[0] & 1   ? CORE_BATCH_LINES
                         : data[0] & 2 ? CORE_BATCH_WHOLE
                                       : CORE_BATCH_JSON;
  size_t max = data[0] & 4 ? 3 : 0;
  const char *body = (const char *)data + 1;
  size_t len = size - 1;
  core_batch b;
  api_error e;
  int st = core_batch_split(body, len, form, max, &b, &e);
  json_error_t je;
  if (st) {
    if (st < 400 || st > 599 || !e.message[0] || !e.code[0])
      abort(); /* every refusal names what is wrong */
    if (b.n || b.start || b.len)
      abort(); /* and leaves nothing */
    if (st == 413 && (!max || strcmp(e.code, "too_many_documents")))
      abort();
    if (form == CORE_BATCH_JSON && st == 400 && !strcmp(e.code, "bad_json") &&
        !memchr(body, 0, len)) {
      /* What the splitter calls malformed, jansson does too (jansson lets
       * a NUL byte pass between tokens; RFC 8259 and the splitter don't). */
      json_t *j = parse(body, len, &je);
      if (j)
        abort();
    }
    return 0;
  }
  if (!b.n || (max && b.n > max))
    abort(); /* an empty batch is refused; a limit holds */
  if (form == CORE_BATCH_WHOLE) {
    if (b.n != 1 || b.start[0] != body || b.len[0] != len)
      abort(); /* whole is the body as it is */
    core_batch_free(&b);
    return 0;
  }
  json_t *root = form == CORE_BATCH_LINES ? NULL : parse(body, len, &je);
  if (form == CORE_BATCH_JSON && !root && !value_level(&je))
    abort(); /* accepted what jansson finds malformed */
  json_t *docs = root ? documents_of(root) : NULL;
  if (root && (!json_is_array(docs) || json_array_size(docs) != b.n))
    abort();
  for (size_t i = 0; i < b.n; i++) {
    json_t *j = parse(b.start[i], b.len[i], &je);
    if (!j && !value_level(&je))
      abort(); /* a slice that is not one whole document */
    if (root && !json_equal(j, json_array_get(docs, i)))
      abort();
    json_decref(j);
  }
  json_decref(docs);
  json_decref(root);
  core_batch_free(&b);
  return 0;
}
