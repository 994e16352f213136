/*
 * http.c — the HTTP API's server: libmicrohttpd with its own thread pool,
 * started and stopped here; its callbacks take each request through its
 * steps (screened and admitted on its first call, its body collected,
 * answered by its route's handler; see http_int.h for the files and what
 * each does); the waker thread wakes event streams and watches the
 * connections' guards.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "http_int.h"
#include "pipeline.h"

static void *waker_main(void *arg)
{
  core_http *srv = arg;
  size_t last_txn = 0;
  twin_time last_keepalive = core_now_ms(), last_scan = 0;
  pthread_mutex_lock(&srv->sse_mu);
  while (!srv->waker_stop) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    ts.tv_nsec += WAKER_MS * 1000 * 1000;
    if (ts.tv_nsec >= 1000000000) {
      ts.tv_sec++;
      ts.tv_nsec -= 1000000000;
    }
    pthread_cond_timedwait(&srv->sse_cv, &srv->sse_mu, &ts);
    if (srv->waker_stop)
      break;
    MDB_envinfo info;
    size_t txnid = 0;
    if (!mdb_env_info(srv->h->store->env, &info))
      txnid = info.me_last_txnid;
    twin_time now = core_now_ms();
    int due = now - last_keepalive >= KEEPALIVE_MS / 2;
    if (txnid != last_txn || due) {
      last_txn = txnid;
      srv->gen++;
      if (due)
        last_keepalive = now;
      http_streams_wake(srv);
    }
    http_streams_reap(srv);
    if (now - last_scan >= WAKER_MS) {
      last_scan = now;
      pthread_mutex_unlock(&srv->sse_mu); /* never both locks */
      http_guard_scan(srv, now);
      pthread_mutex_lock(&srv->sse_mu);
    }
  }
  pthread_mutex_unlock(&srv->sse_mu);
  return NULL;
}

/* Free r (its request has ended) and forget it in its guard. */
static void req_free(core_http *s, req *r)
{
  if (r->g && r->g->r == r)
    r->g->r = NULL;
  http_ingest_free(r);
  free(r->body);
  free(r->argv);
  free(r->path);
  free(r->url);
  pthread_mutex_destroy(&r->mu);
  int started = r->started;
  free(r);
  if (started)
    __atomic_sub_fetch(&s->in_flight, 1, __ATOMIC_ACQ_REL);
}

/* libmicrohttpd's URI log callback: called with the request target as
 * sent, before it is split and decoded; what it returns is the request's
 * context (*con_cls of on_request). */
static void *on_uri(void *cls, const char *uri, struct MHD_Connection *conn)
{
  core_http *s = cls;
  req *r = calloc(1, sizeof *r);
  if (!r)
    return NULL;
  r->srv = s;
  r->conn = conn;
  r->g = http_guard_of(conn);
  r->t0 = core_mono_ns();
  pthread_mutex_init(&r->mu, NULL);
  if (r->g) {
    /* libmicrohttpd 0.9.75 forgets to report the end of a request in a
     * few error paths (an error answered twice); the request it forgot
     * is freed when the next one starts or the connection closes */
    if (r->g->r)
      req_free(s, r->g->r);
    r->g->r = r;
  }
  r->uri_at = uri;
  if (uri)
    http_inspect_uri(r, uri);
  /* A request target over the limit, or with more parameters than are
   * taken, is refused at its first on_request call anyway. Its query is
   * cut here (libmicrohttpd 0.9.75 found the '?' before calling us and
   * parses what follows it after we return), so libmicrohttpd does not
   * fill the connection's memory with parameter records first and close
   * the connection without an answer. */
  const char *q = uri ? strchr(uri, '?') : NULL;
  if (q && (r->uri_len > s->cfg.max_header_bytes || r->n_params > MAX_PARAMS))
    *(char *)(q + 1) = 0;
  return r;
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *conn,
                                  const char *url, const char *method,
                                  const char *version, const char *upload_data,
                                  size_t *upload_data_size, void **con_cls)
{
  core_http *s = cls;
  req *r = *con_cls;
  if (!r) { /* on_uri found no memory, or was not called */
    r = on_uri(s, NULL, conn);
    if (!r)
      return MHD_NO;
    *con_cls = r;
  }
  if (!r->started) {
    r->started = 1;
    r->method = method;
    __atomic_add_fetch(&s->in_flight, 1, __ATOMIC_ACQ_REL);
    if (http_guard_reading(r))
      return MHD_NO;
    r->url = strdup(url);
    if (!r->url)
      return MHD_NO;
    enum MHD_Result rc = MHD_YES;
    if (http_screen(r, method, version, &rc))
      return rc;
    /* A request with a body is checked now, so a refused upload is not
     * read. One without is checked at its last call: an answer queued
     * before the request is complete closes the connection, and a client
     * that got a 401 or 404 should keep its keep-alive connection. */
    const char *cl =
        MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "Content-Length");
    int has_body =
        (cl && strtoull(cl, NULL, 10) > 0) ||
        MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "Transfer-Encoding");
    int expects =
        MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "Expect") != NULL;
    if (!has_body && !expects)
      return MHD_YES;
    r->admitted = 1;
    if (http_route_request(r, r->url, &rc) || http_admit(r, &rc))
      return rc;
    if (!has_body) {
      /* "Expect: 100-continue" without a body: libmicrohttpd 0.9.75 would
       * send "100 Continue", then hand what follows (the next request) to
       * us as this one's body, at a moment no answer can be queued, and
       * the connection would hang. Answered now; it closes after. */
      if (http_guard_answering(r))
        return MHD_NO;
      rc = r->rt->fn(r);
      http_drop_txn(r);
      return rc;
    }
    /* a body of known size (admit checked it against the limit) is read
     * into one buffer of that size, not grown as it arrives */
    unsigned long long want = cl ? strtoull(cl, NULL, 10) : 0;
    if (want && want <= s->cfg.max_body_bytes) {
      r->body = malloc((size_t)want + 1);
      r->body_cap = r->body ? (size_t)want + 1 : 0;
    }
    return MHD_YES;
  }
  if (r->responded)
    return MHD_YES;
  if (!r->submitted && http_guard_reading(r))
    return MHD_NO;
  if (!r->admitted && !*upload_data_size) {
    r->admitted = 1;
    r->may_keep_txn = 1;
    enum MHD_Result rc = MHD_YES;
    if (http_route_request(r, r->url, &rc) || http_admit(r, &rc)) {
      http_drop_txn(r);
      return rc;
    }
  }
  if (*upload_data_size) {
    size_t n = *upload_data_size;
    *upload_data_size = 0;
    if (r->too_large || r->body_len + n > s->cfg.max_body_bytes) {
      r->too_large = 1;
      return MHD_YES;
    }
    if (r->body_len + n + 1 > r->body_cap) {
      size_t cap = r->body_cap ? r->body_cap : 4096;
      while (cap < r->body_len + n + 1)
        cap *= 2;
      char *b = realloc(r->body, cap);
      if (!b)
        return MHD_NO;
      r->body = b;
      r->body_cap = cap;
    }
    memcpy(r->body + r->body_len, upload_data, n);
    r->body_len += n;
    r->body[r->body_len] = 0;
    return MHD_YES;
  }
  if (r->too_large)
    return http_fail(
        r, 413, "body_too_large", "body",
        "the body is over the limit of %zu bytes (split the batch, "
        "or raise http.max_body_bytes in the host config)",
        s->cfg.max_body_bytes);
  /* the whole request is here: from now on it is being answered */
  if (http_guard_answering(r))
    return MHD_NO;
  enum MHD_Result rc = r->rt->fn(r);
  http_drop_txn(r);
  return rc;
}

static void on_completed(void *cls, struct MHD_Connection *conn, void **con_cls,
                         enum MHD_RequestTerminationCode toe)
{
  (void)toe;
  core_http *s = cls;
  /* The connection waits for its next request: idle, with the bytes
   * received so far as the mark its next request's first byte passes. */
  guard *g = http_guard_of(conn);
  if (g) {
    uint64_t rx = 0;
    int known = http_rx_bytes(g->fd, &rx);
    pthread_mutex_lock(&g->mu);
    g->phase = G_IDLE;
    g->base_rx = rx;
    if (!known) /* idle counts as reading (see guard_scan) */
      g->since = core_now_ms();
    pthread_mutex_unlock(&g->mu);
  }
  req *r = *con_cls;
  if (!r)
    return;
  double sec = (double)(core_mono_ns() - r->t0) / 1e9;
  double *slot = &s->seconds[r->route_idx];
  double old, sum;
  __atomic_load(slot, &old, __ATOMIC_RELAXED);
  do
    sum = old + sec;
  while (!__atomic_compare_exchange(slot, &old, &sum, 0, __ATOMIC_RELAXED,
                                    __ATOMIC_RELAXED));
  req_free(s, r);
  *con_cls = NULL;
}

static void on_connection(void *cls, struct MHD_Connection *conn,
                          void **socket_context,
                          enum MHD_ConnectionNotificationCode toe)
{
  core_http *s = cls;
  if (toe == MHD_CONNECTION_NOTIFY_STARTED) {
    __atomic_add_fetch(&s->connections, 1, __ATOMIC_RELAXED);
    guard *g = calloc(1, sizeof *g);
    const union MHD_ConnectionInfo *fd =
        MHD_get_connection_info(conn, MHD_CONNECTION_INFO_CONNECTION_FD);
    const union MHD_ConnectionInfo *ad =
        MHD_get_connection_info(conn, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
    if (!g || !fd) { /* not watched: no deadline, no cap */
      free(g);
      *socket_context = NULL;
      return;
    }
    char name[INET6_ADDRSTRLEN];
    g->fd = fd->connect_fd;
    g->opened = core_now_ms();
    g->phase = G_IDLE;
    http_client_key(ad ? ad->client_addr : NULL, g->key, name);
    pthread_mutex_init(&g->mu, NULL);
    pthread_mutex_lock(&s->conn_mu);
    g->cl = http_client_add(s, g->key, name);
    g->over_cap = g->cl && g->cl->conns > s->per_client;
    if (g->over_cap)
      __atomic_add_fetch(&s->over_cap, 1, __ATOMIC_RELAXED);
    g->next = s->guards;
    if (s->guards)
      s->guards->prev = g;
    s->guards = g;
    pthread_mutex_unlock(&s->conn_mu);
    *socket_context = g;
    return;
  }
  __atomic_sub_fetch(&s->connections, 1, __ATOMIC_RELAXED);
  guard *g = *socket_context;
  if (!g)
    return;
  if (g->r) /* a request libmicrohttpd did not report the end of */
    req_free(s, g->r);
  if (g->over_cap)
    __atomic_sub_fetch(&s->over_cap, 1, __ATOMIC_RELAXED);
  pthread_mutex_lock(&s->conn_mu);
  if (g->prev)
    g->prev->next = g->next;
  else
    s->guards = g->next;
  if (g->next)
    g->next->prev = g->prev;
  http_client_drop(s, g->cl);
  pthread_mutex_unlock(&s->conn_mu);
  pthread_mutex_destroy(&g->mu);
  free(g);
  *socket_context = NULL;
}

static void mhd_log(void *cls, const char *fmt, va_list ap)
{
  (void)cls;
  char msg[512];
  vsnprintf(msg, sizeof msg, fmt, ap);
  size_t n = strlen(msg);
  while (n && (msg[n - 1] == '\n' || msg[n - 1] == '\r'))
    msg[--n] = 0;
  core_log(TWIN_LEVEL_DEBUG, NULL, NULL, "http: %s", msg);
}

/* ---- start and stop ------------------------------------------------------ */

int core_http_start(core_host *h, core_pipeline *p, const core_http_config *cfg,
                    core_http **out, core_err *err)
{
  *out = NULL;
  core_http *s = calloc(1, sizeof *s);
  if (!s)
    return core_err_set(err, TWIN_ERR_NOMEM, "http: out of memory");
  s->h = h;
  s->p = p;
  s->cfg = *cfg;
  s->cfg.listen = NULL; /* not kept */
  s->started = core_now_ms();
  s->counts = calloc((HTTP_N_ROUTES + 1) * HTTP_N_STATUS, sizeof *s->counts);
  s->seconds = calloc(HTTP_N_ROUTES + 1, sizeof *s->seconds);
  pthread_mutex_init(&s->sse_mu, NULL);
  pthread_cond_init(&s->sse_cv, NULL);
  pthread_mutex_init(&s->conn_mu, NULL);
  /* One client never takes every connection: room is kept for others (a
   * health check) whatever max_connections_per_client says. */
  int reserve = cfg->max_connections / 8 > 2 ? cfg->max_connections / 8 : 2;
  s->per_client = cfg->max_connections_per_client;
  if (s->per_client > cfg->max_connections - reserve)
    s->per_client = cfg->max_connections - reserve;
  if (s->per_client < 1)
    s->per_client = 1;
  if (!s->counts || !s->seconds) {
    core_http_stop(s);
    return core_err_set(err, TWIN_ERR_NOMEM, "http: out of memory");
  }
  const char *listen = cfg->listen ? cfg->listen : "127.0.0.1";
  struct sockaddr_storage ss;
  memset(&ss, 0, sizeof ss);
  /* poll(), not epoll: libmicrohttpd 0.9.75's MHD_quiesce_daemon takes the
   * listening socket out of each pool thread's epoll set from the calling
   * thread and aborts the process when a thread had already dropped it
   * (it does so at the connection limit). With poll it only signals. */
  unsigned flags = MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_POLL |
                   MHD_USE_ITC | MHD_ALLOW_SUSPEND_RESUME | MHD_USE_ERROR_LOG;
  struct sockaddr_in *v4 = (struct sockaddr_in *)&ss;
  struct sockaddr_in6 *v6 = (struct sockaddr_in6 *)&ss;
  if (inet_pton(AF_INET, listen, &v4->sin_addr) == 1) {
    v4->sin_family = AF_INET;
    v4->sin_port = htons((uint16_t)cfg->port);
  } else if (inet_pton(AF_INET6, listen, &v6->sin6_addr) == 1) {
    v6->sin6_family = AF_INET6;
    v6->sin6_port = htons((uint16_t)cfg->port);
    flags |= MHD_USE_IPv6;
  } else {
    core_http_stop(s);
    return core_err_set(err, TWIN_ERR_CONFIG,
                        "http: listen address '%s' is not a numeric IPv4 or "
                        "IPv6 address",
                        listen);
  }
  long cpus = sysconf(_SC_NPROCESSORS_ONLN);
  unsigned threads = cfg->threads > 0 ? (unsigned)cfg->threads
                     : cpus > 2       ? (unsigned)cpus
                                      : 2u;
  /* MHD keeps a connection's headers and read buffer in one pool of this
   * size and clears it per request: room for a request line and headers
   * of up to twice the limit (as screen counts them), so that it is our
   * JSON 414/431 that answers them, not libmicrohttpd's HTML. The pool is
   * mapped, not touched: an idle connection costs a few pages. */
  size_t mem = POOL_HEADER_MULT * cfg->max_header_bytes + 64 * 1024;
  /* MHD splits its connection limit evenly over the pool threads, and a
   * thread at its share refuses without an answer: so give each thread
   * twice its share of what we answer (max_connections, then 32 more for
   * the 503s), capped by the open files this process may have. */
  unsigned limit = 2u * ((unsigned)cfg->max_connections + 32u);
  struct rlimit rl;
  if (!getrlimit(RLIMIT_NOFILE, &rl)) {
    rlim_t want = (rlim_t)limit + 256;
    if (rl.rlim_cur < want && rl.rlim_cur < rl.rlim_max) {
      rl.rlim_cur = want < rl.rlim_max ? want : rl.rlim_max;
      setrlimit(RLIMIT_NOFILE, &rl);
      getrlimit(RLIMIT_NOFILE, &rl);
    }
    if (rl.rlim_cur < want)
      limit = rl.rlim_cur > 512 ? (unsigned)(rl.rlim_cur - 256)
                                : (unsigned)rl.rlim_cur / 2;
  }
  s->d = MHD_start_daemon(
      flags, (uint16_t)cfg->port, NULL, NULL, on_request, s,
      MHD_OPTION_SOCK_ADDR, (struct sockaddr *)&ss, 
      /* one thread: the polling thread alone, no pool option at all (a
       * pool of 0 or 1 is warned about); both options take an unsigned */
      threads > 1 ? MHD_OPTION_THREAD_POOL_SIZE : MHD_OPTION_CONNECTION_LIMIT,
      threads > 1 ? threads : limit, MHD_OPTION_CONNECTION_LIMIT, limit,
      MHD_OPTION_CONNECTION_TIMEOUT, 60u, MHD_OPTION_CONNECTION_MEMORY_LIMIT,
      mem, MHD_OPTION_URI_LOG_CALLBACK, on_uri, s, MHD_OPTION_NOTIFY_COMPLETED,
      on_completed, s, MHD_OPTION_NOTIFY_CONNECTION, on_connection, s,
      MHD_OPTION_EXTERNAL_LOGGER, mhd_log, s,
      /* never SO_REUSEPORT: a second host on the port must fail to start,
       * not share its connections with this one */
      MHD_OPTION_LISTENING_ADDRESS_REUSE, 0u, MHD_OPTION_END);
  if (!s->d) {
    int e = errno;
    core_http_stop(s);
    return core_err_set(err, TWIN_ERR_UNAVAILABLE,
                        "http: cannot listen on %s port %d: %s (is another "
                        "program using the port? set http.port in the host "
                        "config or pass --listen)",
                        listen, cfg->port, e ? strerror(e) : "refused");
  }
  const union MHD_DaemonInfo *info =
      MHD_get_daemon_info(s->d, MHD_DAEMON_INFO_BIND_PORT);
  s->port = info ? info->port : (uint16_t)cfg->port;
  if (pthread_create(&s->waker, NULL, waker_main, s)) {
    MHD_stop_daemon(s->d);
    s->d = NULL;
    core_http_stop(s);
    return core_err_set(err, TWIN_ERR_INTERNAL, "http: cannot start a thread");
  }
  *out = s;
  return TWIN_OK;
}

uint16_t core_http_port(const core_http *s)
{
  return s->port;
}

void core_http_stop(core_http *s)
{
  if (!s)
    return;
  if (s->d) {
    __atomic_store_n(&s->stopping, 1, __ATOMIC_RELEASE);
    /* stop accepting; the listening socket is ours to close now */
    MHD_socket lsock = MHD_quiesce_daemon(s->d);
    /* The pool threads drop the socket from their polls a moment later;
     * until MHD_stop_daemon it must stay open, but it can stop listening
     * now, so new clients are refused rather than left waiting. */
    if (lsock != MHD_INVALID_SOCKET)
      shutdown(lsock, SHUT_RDWR);
    /* End the streams: each sees stopping and ends. */
    pthread_mutex_lock(&s->sse_mu);
    s->gen++;
    http_streams_wake(s);
    pthread_mutex_unlock(&s->sse_mu);
    /* Let requests in flight finish: an ingest waits for its commit. */
    uint64_t t0 = core_mono_ns();
    /* A slow client gets STOP_WAIT_MS; an ingest waiting for its commit
     * is waited for however long the writer takes: its documents may be
     * committed already, and stopping the daemon with a connection
     * suspended is not allowed. */
    while ((__atomic_load_n(&s->in_flight, __ATOMIC_ACQUIRE) ||
            __atomic_load_n(&s->n_streams, __ATOMIC_ACQUIRE)) &&
           (core_mono_ns() - t0 < (uint64_t)STOP_WAIT_MS * 1000000u ||
            __atomic_load_n(&s->committing, __ATOMIC_ACQUIRE))) {
      pthread_mutex_lock(&s->sse_mu);
      http_streams_wake(s);
      pthread_mutex_unlock(&s->sse_mu);
      struct timespec ts = {0, 10 * 1000 * 1000};
      nanosleep(&ts, NULL);
    }
    pthread_mutex_lock(&s->sse_mu);
    s->waker_stop = 1;
    pthread_cond_broadcast(&s->sse_cv);
    pthread_mutex_unlock(&s->sse_mu);
    pthread_join(s->waker, NULL);
    MHD_stop_daemon(s->d);
    if (lsock != MHD_INVALID_SOCKET)
      close(lsock);
  }
  pthread_mutex_destroy(&s->sse_mu);
  pthread_cond_destroy(&s->sse_cv);
  /* MHD_stop_daemon closed every connection, which freed its guard */
  for (size_t i = 0; i < CLIENT_BUCKETS; i++)
    while (s->clients[i]) {
      client *c = s->clients[i];
      s->clients[i] = c->next;
      free(c);
    }
  pthread_mutex_destroy(&s->conn_mu);
  free(s->pfd);
  free(s->counts);
  free(s->seconds);
  free(s);
}
