/*
 * batch.h — the body of one ingest, split into the documents that go to
 * the plugin one by one. Transport-free: the HTTP API (POST .../ingest)
 * and the CLI (`twinhost ingest`) both split with it, so they take the
 * same bodies and refuse the same ones with the same words.
 *
 * A body is in one of three forms:
 *   JSON   a JSON array of documents, {"documents": [...]}, or one
 *          document (a JSON object) alone;
 *   LINES  JSON Lines: one document per line, blank lines skipped;
 *   WHOLE  one document as it is (a CSV file, an iCalendar feed, or JSON
 *          the plugin declared as its own type).
 * JSON and LINES bodies are checked whole first (core/jsonscan.c; nothing
 * is built): a body that breaks anywhere gives no documents, and the error
 * says where it breaks. Documents point into the body, as sent.
 */
#ifndef CORE_BATCH_H
#define CORE_BATCH_H

#include <stddef.h>

struct api_error;

typedef enum core_batch_form {
  CORE_BATCH_JSON,
  CORE_BATCH_LINES,
  CORE_BATCH_WHOLE
} core_batch_form;

typedef struct core_batch {
  size_t n, cap;
  const char **start; /* document i is start[i][0..len[i]) */
  size_t *len;
  size_t max; /* at most this many (0: no limit); set by the split */
} core_batch;

/*
 * The form of a body sent with Content-Type content_type (NULL: none) to
 * a plugin that declares the media types declared (NULL: JSON only). A
 * type the plugin declares is WHOLE, JSON types too (GeoJSON); JSON Lines
 * types (application/x-ndjson, application/jsonl, application/json-lines)
 * are LINES; JSON, no type, and what curl -d sends by default
 * (application/x-www-form-urlencoded, text/plain) are JSON; any other type
 * is WHOLE. For WHOLE, type gets the bare media type ("text/csv"; "" for
 * the others); size is type's size (CORE_MEDIA_MAX is enough).
 */
core_batch_form core_batch_form_of(const char *content_type,
                                   const char *declared, char *type,
                                   size_t size);

/*
 * Split body[0..len) of the given form into out, at most max documents
 * (0: no limit). 0, or the HTTP status with e filled (nothing in out):
 * 400 bad_json (where the body breaks: line and column, or the line of a
 * JSON Lines body), 400 bad_request (an empty body, no documents, a value
 * that is not a document), 413 too_many_documents (more than max; the
 * scan stops there), 500 internal (out of memory).
 */
int core_batch_split(const char *body, size_t len, core_batch_form form,
                     size_t max, core_batch *out, struct api_error *e);
void core_batch_free(core_batch *b);

#endif
