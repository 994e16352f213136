/*
 * cli_ingest.c — `twinhost ingest`, `query` and `scenario`: documents into
 * a town's plugin through the pipeline (JSON Lines, a whole file, or a
 * media type the plugin declares; each acknowledged after its commit), and
 * questions and what-if scenarios answered by a plugin's declared ops.
 */
#include "cli.h"

#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/file.h>
#include <sys/wait.h>
#include <unistd.h>

#include <pthread.h>

#include "api.h"
#include "batch.h"
#include "host.h"
#include "media.h"
#include "pipeline.h"

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
      cli_output_failed = 1;
    pthread_mutex_lock(&st->mu);
  }
  pthread_mutex_unlock(&st->mu);
  free(out);
  return NULL;
}

/* The Content-Type a file's name implies: .csv and .ics their types,
 * .json a JSON body (an array of documents, {"documents": [...]} or one
 * document), .geojson GeoJSON; anything else (.jsonl, standard input) is
 * JSON Lines. */
static const char *type_of_file(const char *file)
{
  static const struct {
    const char *ext, *type;
  } by_ext[] = {{".csv", "text/csv"},
                {".ics", "text/calendar"},
                {".json", "application/json"},
                {".geojson", "application/geo+json"}};
  size_t n = file ? strlen(file) : 0;
  for (size_t i = 0; i < sizeof by_ext / sizeof *by_ext; i++) {
    size_t k = strlen(by_ext[i].ext);
    if (n > k && !strcasecmp(file + n - k, by_ext[i].ext))
      return by_ext[i].type;
  }
  return "application/x-ndjson";
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

int cli_cmd_ingest(cli_opts *o)
{
  if (!cli_need("ingest", o->town, "--town") ||
      !cli_need("ingest", o->plugin, "--plugin"))
    return CLI_USAGE;
  const char *file = o->npos ? o->pos[0] : NULL;
  size_t len;
  char *input = cli_read_input("ingest", file, &len);
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
  /* The body's form as the HTTP API reads it from Content-Type
   * (core/batch.c), the type from --content-type or the file's name. */
  const char *declared = ci->plugin->desc.ingest_types;
  const char *ct = o->content_type ? o->content_type : type_of_file(file);
  char type[CORE_MEDIA_MAX];
  core_batch_form form = core_batch_form_of(ct, declared, type, sizeof type);
  if (o->whole) { /* one document as it is, of the type given if any */
    form = CORE_BATCH_WHOLE;
    core_media_bare(o->content_type, type, sizeof type);
    if (type[0] && core_media_is_json(type) &&
        !(declared && core_media_in_list(declared, type)))
      type[0] = 0; /* JSON the plugin does not declare: plain JSON */
  }
  if (type[0] && !core_plugin_takes(ci->plugin, type)) {
    cli_error("ingest",
              "plugin '%s' takes JSON%s%s, not %s (see `twinhost plugins "
              "info %s`)",
              o->plugin, declared ? " and " : "", declared ? declared : "",
              type, o->plugin);
    goto out;
  }
  core_batch b;
  api_error be;
  if (core_batch_split(input, len, form, 0, &b, &be)) {
    cli_error("ingest", "%s%s%s", file ? file : "standard input",
              file || be.message[0] ? ": " : "", be.message);
    goto out;
  }
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
  /* one record per document, allocated once: they never move in flight */
  size_t total = b.n;
  ingest_doc *docs = calloc(total, sizeof *docs);
  if (!docs)
    cli_error("ingest", "out of memory for %zu documents", b.n);
  size_t ndocs = 0, line = 1;
  const char *counted = input; /* lines counted up to here */
  uint64_t last_shown = core_mono_ns();
  for (size_t i = 0; docs && i < b.n; i++) {
    for (; counted < b.start[i]; counted++)
      line += *counted == '\n';
    ingest_doc *d = &docs[ndocs++];
    d->st = &st;
    d->line = line;
    if (core_pipeline_submit_as(p, ci, type[0] ? type : NULL, b.start[i],
                                b.len[i], ingest_done, d)) {
      cli_error("ingest", "the writer stopped; %zu documents not sent",
                b.n - i);
      break;
    }
    if (show && core_mono_ns() - last_shown > 500000000u) {
      progress(&st, ndocs, len, (size_t)(b.start[i] - input), 0);
      last_shown = core_mono_ns();
    }
  }
  core_batch_free(&b);
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
  rc = st.rejected || !docs || ndocs < total ? CLI_FAIL : CLI_OK;
  free(docs);
out:
  core_pipeline_stop(p);
  core_host_close(h);
  free(input);
  return rc;
}

/* ---- query and scenario -------------------------------------------------- */

static int ask(cli_opts *o, const char *cmd, int scenario)
{
  if (!cli_need(cmd, o->town, "--town") || !cli_need(cmd, o->plugin, "--plugin"))
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
    req = cli_read_input(cmd, "-", &len);
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

int cli_cmd_query(cli_opts *o)
{
  return ask(o, "query", 0);
}

int cli_cmd_scenario(cli_opts *o)
{
  return ask(o, "scenario", 1);
}
