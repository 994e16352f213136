/*
 * http_ingest.c — POST /v1/towns/{town}/plugins/{plugin}/ingest. The body
 * is split into documents (core/batch.c, as the CLI splits its input) and
 * each is queued for the writer without waiting: when the pipeline's ring
 * is full the rest are queued from the writer's callback once a batch has
 * freed room (core_pipeline_when_space), so no pool thread ever blocks.
 * The connection stays suspended until every document has its outcome;
 * the answer lists them (docs/api.md, "Batch ingest"), bounded in size
 * whatever the batch.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "http_int.h"
#include "pipeline.h"

/* Ingest answers: up to ROWS_ALL documents each get a row; of a larger
 * batch only those rejected or with refused items, at most ROWS_MAX; at
 * most REFUSALS_LISTED refused items are listed in all; a plugin's string
 * is cut at TEXT_MAX bytes. */
#define ROWS_ALL 1000
#define ROWS_MAX 1000
#define REFUSALS_LISTED 1000
#define TEXT_MAX 512

/* The outcome of one ingested document. Its details (the plugin's
 * message, code, field and refused items) are kept only for the first
 * ROWS_MAX documents that have any, so a request's memory stays near its
 * body's size whatever the plugin says. */
typedef struct doc_result {
  req *r;
  int status;
  char *reason, *code, *field; /* kept details, or NULL */
  json_t *refused;             /* the refused items listed, or NULL */
  size_t items_total;
} doc_result;

/* ---- handlers: ingest ---------------------------------------------------- */

/* The length of s cut to at most max bytes, not inside a UTF-8 sequence. */
static size_t cut_utf8(const char *s, size_t max)
{
  size_t n = strlen(s);
  if (n <= max)
    return n;
  while (max && ((unsigned char)s[max] & 0xC0) == 0x80)
    max--;
  return max;
}

static char *dup_cut(const char *s)
{
  return s && *s ? strndup(s, cut_utf8(s, TEXT_MAX)) : NULL;
}

static json_t *string_cut(const char *s)
{
  json_t *j = json_stringn(s ? s : "", s ? cut_utf8(s, TEXT_MAX) : 0);
  return j ? j : json_string("(not UTF-8)");
}

/* The first n refusals of items, each string cut at TEXT_MAX. */
static json_t *refusals_json(const core_items *items, size_t n)
{
  json_t *a = json_array();
  for (size_t i = 0; a && i < n && i < items->n; i++) {
    const core_item *x = &items->v[i];
    json_t *o = json_object();
    json_object_set_new(o, "item", string_cut(x->item));
    json_object_set_new(o, "code", string_cut(x->code));
    json_object_set_new(o, "reason", string_cut(x->reason));
    if (x->field)
      json_object_set_new(o, "field", string_cut(x->field));
    json_array_append_new(a, o);
  }
  return a;
}

static void ingest_done(void *ud, const core_outcome *o)
{
  doc_result *d = ud;
  req *r = d->r;
  d->status = o->status;
  d->items_total = o->items ? o->items->total : 0;
  /* Details only for the first ROWS_MAX documents that have any, and at
   * most REFUSALS_LISTED refused items in all. */
  pthread_mutex_lock(&r->mu);
  int keep = (o->status || d->items_total) && r->kept < ROWS_MAX;
  size_t listed = 0;
  if (keep) {
    r->kept++;
    size_t room = REFUSALS_LISTED - r->refusals_listed;
    listed = !o->items ? 0 : o->items->n < room ? o->items->n : room;
    r->refusals_listed += listed;
  }
  pthread_mutex_unlock(&r->mu);
  if (keep) {
    if (o->status)
      d->reason = dup_cut(
          o->reason && *o->reason ? o->reason : core_status_message(o->status));
    d->code = dup_cut(o->code);
    d->field = dup_cut(o->field);
    if (d->items_total)
      d->refused = refusals_json(o->items, listed);
  }
  /* Resume only after unlocking: once resumed, a pool thread may answer
   * and free r (and r->mu) at once. A suspended connection stays until
   * resumed, so conn is still valid here. */
  struct MHD_Connection *resume = NULL;
  core_http *srv = r->srv;
  int counted = 0;
  pthread_mutex_lock(&r->mu);
  if (--r->pending == 0 && r->suspended) {
    r->suspended = 0;
    resume = r->conn;
    counted = r->counted_committing;
    r->counted_committing = 0;
  }
  pthread_mutex_unlock(&r->mu);
  if (resume)
    MHD_resume_connection(resume);
  if (counted) /* only now may core_http_stop stop the daemon */
    __atomic_sub_fetch(&srv->committing, 1, __ATOMIC_ACQ_REL);
}

static json_t *result_row(size_t i, doc_result *d)
{
  json_t *row;
  if (!d->status) {
    row = json_pack("{s:I,s:s}", "index", (json_int_t)i, "status", "accepted");
  } else {
    core_err err;
    core_err_set(&err, d->status, "%s",
                 d->reason ? d->reason : core_status_message(d->status));
    core_err_detail(&err, d->code, d->field);
    api_error e;
    api_fail_status(&e, d->status, &err);
    json_t *ej = api_error_json(&e);
    row = json_pack("{s:I,s:s,s:O}", "index", (json_int_t)i, "status",
                    "rejected", "error", json_object_get(ej, "error"));
    json_decref(ej);
  }
  if (row && d->items_total) {
    json_object_set_new(row, "items_refused",
                        json_integer((json_int_t)d->items_total));
    json_object_set_new(row, "refused", d->refused ? d->refused : json_array());
    d->refused = NULL;
  }
  return row;
}

/* The answer of an ingest (docs/api.md, "Batch ingest" and "Limits"): a
 * row per document up to ROWS_ALL documents; beyond, rows only for those
 * rejected or with refused items, at most ROWS_MAX, and how many have
 * none. */
static enum MHD_Result ingest_reply(req *r)
{
  json_t *results = json_array();
  size_t ok = 0, refused = 0, rows = 0, omitted = 0;
  int every = r->n_docs <= ROWS_ALL, truncated = 0;
  for (size_t i = 0; i < r->n_docs; i++) {
    doc_result *d = &r->results[i];
    ok += !d->status;
    refused += d->items_total;
    if (!every && !d->status && !d->items_total) {
      omitted++;
      continue;
    }
    if (rows == (every ? ROWS_ALL : ROWS_MAX)) {
      omitted++;
      truncated = 1;
      continue;
    }
    json_array_append_new(results, result_row(i, d));
    rows++;
  }
  size_t n = r->n_docs;
  json_t *o = json_pack("{s:I,s:I,s:I,s:o}", "accepted", (json_int_t)ok,
                        "rejected", (json_int_t)(n - ok), "items_refused",
                        (json_int_t)refused, "results", results);
  if (o && !every) {
    json_object_set_new(o, "results_omitted",
                        json_integer((json_int_t)omitted));
    json_object_set_new(o, "results_truncated", json_boolean(truncated));
  }
  return http_send_json(r, ok || !n ? 200 : 422, o);
}

core_batch_form http_ingest_form(req *r, char *type, size_t size)
{
  const char *ct =
      MHD_lookup_connection_value(r->conn, MHD_HEADER_KIND, "Content-Type");
  return core_batch_form_of(ct, r->ci ? r->ci->plugin->desc.ingest_types : NULL,
                            type, size);
}

void http_ingest_free(req *r)
{
  for (size_t i = 0; r->results && i < r->n_docs; i++) {
    free(r->results[i].reason);
    free(r->results[i].code);
    free(r->results[i].field);
    json_decref(r->results[i].refused);
  }
  free(r->results);
  core_batch_free(&r->batch);
}

/* A document that could not be queued: its outcome is st. */
static void not_queued(doc_result *d, int st)
{
  core_items none = {0};
  core_outcome o = {st,
                    st == TWIN_ERR_UNAVAILABLE
                        ? "the host is stopping; send this document again "
                          "later"
                        : "the document could not be queued (out of "
                          "memory); send it again later",
                    NULL, NULL, &none};
  ingest_done(d, &o);
}

static void queue_rest(void *ud);

/* Queue r's documents from r->next_doc on, without waiting: when the ring
 * is full, queue_rest does the rest once the writer has freed room. From
 * then on another thread may be queueing r's documents (and the last
 * outcome may come at once), so the caller touches r only under r->mu.
 * Called by one thread at a time. */
static void queue_docs(req *r)
{
  core_pipeline *p = r->srv->p;
  const char *type = r->doc_type[0] ? r->doc_type : NULL;
  core_batch *b = &r->batch;
  while (r->next_doc < b->n) {
    size_t i = r->next_doc;
    int full = 0;
    int st = core_pipeline_try_submit_as(p, r->ci, type, b->start[i], b->len[i],
                                         ingest_done, &r->results[i], &full);
    if (st && full) {
      st = core_pipeline_when_space(p, queue_rest, r);
      if (st == TWIN_OK)
        return; /* queue_rest goes on */
      if (st == TWIN_STOP)
        continue; /* room again already */
    }
    r->next_doc++;
    if (st)
      not_queued(&r->results[i], st);
  }
}

/* On the writer thread after a batch freed room in the ring (or when the
 * pipeline stops: then every document left is refused as unavailable). */
static void queue_rest(void *ud)
{
  queue_docs(ud);
}

enum MHD_Result http_h_ingest(req *r)
{
  if (r->submitted) /* resumed: every document has its outcome */
    return ingest_reply(r);
  /* one document of a type the plugin declared, as sent; or a batch, of
   * at most max_documents (413 before anything is submitted) */
  core_batch_form form = http_ingest_form(r, r->doc_type, sizeof r->doc_type);
  if (form == CORE_BATCH_WHOLE && !r->body_len)
    return http_fail(r, 400, "bad_request", "body",
                     "the body is empty: send the %s document", r->doc_type);
  api_error e;
  if (core_batch_split(r->body, r->body_len, form, r->srv->cfg.max_documents,
                       &r->batch, &e))
    return http_send_error(r, &e);
  r->results = calloc(r->batch.n, sizeof *r->results);
  if (!r->results) {
    core_batch_free(&r->batch);
    return http_fail(r, 500, "internal", NULL, "out of memory");
  }
  for (size_t i = 0; i < r->batch.n; i++)
    r->results[i].r = r;
  r->n_docs = r->batch.n;
  r->pending = (int)r->batch.n;
  r->submitted = 1;
  queue_docs(r);
  /* Suspended until the last outcome resumes it; when all came already,
   * answered now. */
  pthread_mutex_lock(&r->mu);
  int wait = r->pending > 0;
  if (wait) {
    r->suspended = 1;
    r->counted_committing = 1;
    __atomic_add_fetch(&r->srv->committing, 1, __ATOMIC_ACQ_REL);
    MHD_suspend_connection(r->conn);
  }
  pthread_mutex_unlock(&r->mu);
  return wait ? MHD_YES : ingest_reply(r);
}
