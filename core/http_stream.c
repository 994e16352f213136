/*
 * http_stream.c — GET /v1/towns/{town}/events/stream: a town's events as
 * Server-Sent Events. A stream suspends its connection while there is
 * nothing to send; the waker (http.c) resumes it when the store changed,
 * for a keepalive, and when its client has gone. Streams are capped per
 * client and per town.
 */
#include <limits.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "http_int.h"

#ifndef POLLRDHUP
#define POLLRDHUP 0x2000 /* Linux; <poll.h> has it only with _GNU_SOURCE */
#endif

struct sse {
  core_http *srv;
  struct MHD_Connection *conn;
  const core_town *town;
  int fd;                        /* its socket, watched while suspended */
  unsigned char key[CLIENT_KEY]; /* its client */
  int listed;                    /* in srv->streams */
  int gone;                      /* atomic: its client has gone */
  uint64_t last;                 /* seq of the last event sent */
  char *out;
  size_t out_len, out_off;
  twin_time last_write;
  int suspended; /* under srv->sse_mu */
  sse *next;
};

/* ---- handlers: event stream ---------------------------------------------- */

static void sse_free(void *cls)
{
  sse *s = cls;
  core_http *srv = s->srv;
  pthread_mutex_lock(&srv->sse_mu);
  if (s->listed) {
    for (sse **pp = &srv->streams; *pp; pp = &(*pp)->next)
      if (*pp == s) {
        *pp = s->next;
        break;
      }
    srv->n_streams--;
  }
  pthread_cond_broadcast(&srv->sse_cv);
  pthread_mutex_unlock(&srv->sse_mu);
  free(s->out);
  free(s);
}

/* Append the events after s->last to s->out; 1 when something was added. */
static int sse_fill(sse *s)
{
  core_host *h = s->srv->h;
  MDB_txn *txn;
  core_err err;
  if (core_store_begin_read(h->store, &txn, &err))
    return 0;
  json_t *evs = NULL;
  uint64_t last = s->last;
  int added = 0;
  int st = api_events_since(h, txn, s->town, s->last, 100, &evs, &last);
  if (!st && !json_array_size(evs))
    s->last = last; /* only damaged events, passed over */
  if (!st && json_array_size(evs)) {
    size_t i;
    json_t *ev;
    free(s->out);
    s->out = NULL;
    s->out_len = s->out_off = 0;
    FILE *f = open_memstream(&s->out, &s->out_len);
    if (f) {
      json_array_foreach(evs, i, ev)
      {
        char *text = json_dumps(ev, JSON_COMPACT | JSON_REAL_PRECISION(15));
        json_t *seq = json_object_get(ev, "seq");
        /* "event: <level>" as docs/api.md has it; a level that would
         * break the line is left out (the data still carries it). */
        const char *level = json_string_value(json_object_get(ev, "level"));
        fprintf(f, "id: %lld\n", (long long)json_integer_value(seq));
        if (level && *level && !level[strcspn(level, "\r\n")])
          fprintf(f, "event: %s\n", level);
        fprintf(f, "data: %s\n\n", text ? text : "{}");
        free(text);
      }
      fclose(f);
      s->last = last;
      added = 1;
    }
  }
  json_decref(evs);
  core_store_end_read(h->store, txn);
  return added;
}

static ssize_t sse_read(void *cls, uint64_t pos, char *buf, size_t max)
{
  (void)pos;
  sse *s = cls;
  core_http *srv = s->srv;
  /* MHD's internal polling calls a reader that returned 0 again only
   * after a resume: so return 0 only with the connection suspended, and
   * otherwise look again until there is something to send or the end. */
  for (;;) {
    if (s->out_off < s->out_len) {
      size_t n = s->out_len - s->out_off;
      if (n > max)
        n = max;
      memcpy(buf, s->out + s->out_off, n);
      s->out_off += n;
      s->last_write = core_now_ms();
      return (ssize_t)n;
    }
    if (__atomic_load_n(&srv->stopping, __ATOMIC_ACQUIRE))
      return MHD_CONTENT_READER_END_OF_STREAM;
    if (__atomic_load_n(&s->gone, __ATOMIC_ACQUIRE))
      return MHD_CONTENT_READER_END_WITH_ERROR; /* nobody reads it */
    pthread_mutex_lock(&srv->sse_mu);
    uint64_t gen = srv->gen;
    pthread_mutex_unlock(&srv->sse_mu);
    if (sse_fill(s))
      continue;
    if (core_now_ms() - s->last_write >= KEEPALIVE_MS) {
      free(s->out);
      s->out = strdup(": keepalive\n\n");
      s->out_len = s->out ? strlen(s->out) : 0;
      s->out_off = 0;
      if (!s->out)
        return MHD_CONTENT_READER_END_WITH_ERROR;
      continue;
    }
    /* Nothing to send: sleep until the store changes or a keepalive is
     * due. A change after the read above bumped gen: look again. */
    pthread_mutex_lock(&srv->sse_mu);
    int idle = gen == srv->gen && !srv->stopping;
    if (idle) {
      s->suspended = 1;
      MHD_suspend_connection(s->conn);
    }
    pthread_mutex_unlock(&srv->sse_mu);
    if (idle)
      return 0;
  }
}

static int stream_gone(sse *x);

enum MHD_Result http_h_stream(req *r)
{
  static const char *const known[] = {"after", NULL};
  api_error e;
  if (api_args_check(&r->args, known, &e))
    return http_send_error(r, &e);
  if (r->args.n > 1) /* only "after" is known: it is there twice or more */
    return http_fail(r, 400, "bad_parameter", "after",
                     "after is given more than once; give it once");
  core_http *srv = r->srv;
  sse *s = calloc(1, sizeof *s);
  if (!s)
    return http_fail(r, 500, "internal", NULL, "out of memory");
  s->srv = srv;
  s->conn = r->conn;
  s->town = r->town;
  s->last_write = core_now_ms();
  const char *after = api_arg_get(&r->args, "after");
  const char *leid =
      MHD_lookup_connection_value(r->conn, MHD_HEADER_KIND, "Last-Event-ID");
  /* A reconnecting browser sends Last-Event-ID: it wins over an ?after in
   * the stream's URL, or each reconnect would replay the same events. */
  const char *from = leid ? leid : after;
  if (from) {
    long v;
    if (api_parse_count(leid ? "Last-Event-ID" : "after", from, 0, LONG_MAX, &v,
                        &e)) {
      free(s);
      return http_send_error(r, &e);
    }
    s->last = (uint64_t)v;
  } else {
    MDB_txn *txn;
    core_err err;
    if (core_store_begin_read(srv->h->store, &txn, &err)) {
      free(s);
      return http_fail(r, 503, "unavailable", NULL, "%s", err.msg);
    }
    s->last = api_events_last_seq(srv->h, txn, r->town);
    core_store_end_read(srv->h->store, txn);
  }
  s->fd = r->g ? r->g->fd : -1;
  if (r->g)
    memcpy(s->key, r->g->key, CLIENT_KEY);
  /* A comment first, so the client sees the stream open at once. */
  s->out = strdup(": twinhost event stream\n\n");
  s->out_len = s->out ? strlen(s->out) : 0;
  struct MHD_Response *resp = MHD_create_response_from_callback(
      MHD_SIZE_UNKNOWN, 4096, sse_read, s, sse_free);
  if (!resp) {
    free(s->out);
    free(s);
    return MHD_NO;
  }
  /* The caps count live streams: one whose client has gone (and the
   * waker has not seen yet) is ended now instead. Counted and listed
   * under one lock, so two requests cannot both take the last place. */
  long mine = 0, town = 0;
  pthread_mutex_lock(&srv->sse_mu);
  for (sse *x = srv->streams; x; x = x->next) {
    int same_client = r->g && !memcmp(x->key, s->key, CLIENT_KEY);
    int same_town = x->town == s->town;
    if ((!same_client && !same_town) || stream_gone(x))
      continue;
    mine += same_client;
    town += same_town;
  }
  int over = mine >= srv->cfg.max_streams_per_client ||
             town >= srv->cfg.max_streams_per_town;
  if (!over) {
    s->listed = 1;
    s->next = srv->streams;
    srv->streams = s;
    srv->n_streams++;
  }
  pthread_mutex_unlock(&srv->sse_mu);
  if (over) {
    MHD_destroy_response(resp); /* frees s */
    return mine >= srv->cfg.max_streams_per_client
               ? http_fail(
                     r, 429, "too_many_streams", NULL,
                     "this client has %ld event streams open, the most one "
                     "client may (http.max_streams_per_client); close one "
                     "(one stream per page is enough), then retry",
                     mine)
               : http_fail(r, 429, "too_many_streams", NULL,
                           "town '%s' has %ld event streams open, the most it "
                           "may (http.max_streams_per_town); retry later",
                           r->town->id, town);
  }
  if (http_guard_answering(r)) {
    MHD_destroy_response(resp);
    return MHD_NO;
  }
  MHD_add_response_header(resp, "Content-Type", "text/event-stream");
  MHD_add_response_header(resp, "X-Accel-Buffering", "no");
  http_common_headers(resp);
  enum MHD_Result rc = MHD_queue_response(r->conn, 200, resp);
  MHD_destroy_response(resp);
  r->responded = 1;
  http_count(r, 200);
  return rc;
}

/* 1 when x's client has gone: known, or seen now on its socket (then it
 * is ended: resumed to find it gone). Under sse_mu. */
static int stream_gone(sse *x)
{
  if (__atomic_load_n(&x->gone, __ATOMIC_ACQUIRE))
    return 1;
  if (x->fd < 0)
    return 0;
  struct pollfd p = {x->fd, POLLRDHUP, 0};
  if (poll(&p, 1, 0) <= 0 || !(p.revents & (POLLRDHUP | POLLHUP | POLLERR)))
    return 0;
  __atomic_store_n(&x->gone, 1, __ATOMIC_RELEASE);
  if (x->suspended) {
    x->suspended = 0;
    MHD_resume_connection(x->conn);
  }
  return 1;
}

/* End the suspended streams whose client has gone (under sse_mu): a
 * closed browser tab frees its stream at once, not at the next keepalive
 * write. A stream that is sending finds out by itself. */
void http_streams_reap(core_http *srv)
{
  size_t n = 0;
  for (sse *x = srv->streams; x; x = x->next)
    n += x->suspended && x->fd >= 0 && !x->gone;
  if (!n)
    return;
  if (n > srv->pfd_cap) {
    struct pollfd *p = realloc(srv->pfd, n * sizeof *p);
    if (!p)
      return;
    srv->pfd = p;
    srv->pfd_cap = n;
  }
  size_t k = 0;
  for (sse *x = srv->streams; x; x = x->next)
    if (x->suspended && x->fd >= 0 && !x->gone)
      srv->pfd[k++] = (struct pollfd){x->fd, POLLRDHUP, 0};
  if (poll(srv->pfd, k, 0) <= 0)
    return;
  k = 0;
  for (sse *x = srv->streams; x; x = x->next) {
    if (!x->suspended || x->fd < 0 || x->gone)
      continue;
    if (srv->pfd[k++].revents & (POLLRDHUP | POLLHUP | POLLERR)) {
      __atomic_store_n(&x->gone, 1, __ATOMIC_RELEASE);
      x->suspended = 0;
      MHD_resume_connection(x->conn);
    }
  }
}

/* Resume every suspended stream (under sse_mu). */
void http_streams_wake(core_http *srv)
{
  for (sse *s = srv->streams; s; s = s->next)
    if (s->suspended) {
      s->suspended = 0;
      MHD_resume_connection(s->conn);
    }
}
