/*
 * http_int.h — what the files of the HTTP API share (not for other parts
 * of the host: they use http.h). The API is libmicrohttpd with its own
 * thread pool, in these files, each with one job:
 *
 *   http.c         the server: start and stop, libmicrohttpd's callbacks
 *                  (a request's steps: screened, routed and admitted,
 *                  its body collected, answered), the waker thread
 *   http_admit.c   admission before routing: framing, header and target
 *                  checks (screen), and each connection's guard: its
 *                  client's connection cap and its request's deadline
 *   http_route.c   the route table, routing, authorization, the checks
 *                  made from the headers alone (admit), and answering
 *   http_read.c    the read handlers: host, towns, entities, history,
 *                  events, tokens, rules, plugins' queries and scenarios
 *   http_ingest.c  POST .../ingest: the body split (core/batch.c),
 *                  documents submitted without waiting, the answer
 *   http_stream.c  Server-Sent Events streams
 *   http_metrics.c GET /metrics
 *
 * A request goes through three steps. When its headers have arrived
 * (first call of on_request) it is screened (http_screen), matched against
 * the route table, checked against the limits (connections, body size,
 * stopping) and authorized (http_admit), so a refused upload is answered
 * before its body is read. Then the body, if any, is collected up to the
 * configured limit. Then the route's handler answers.
 *
 * An ingest suspends its connection after submitting its documents to the
 * pipeline; the writer's outcome callbacks count them down and the last
 * one resumes the connection, so a pool thread never waits for a commit
 * (nor for room in the pipeline's ring) and many requests share one
 * commit. An event stream suspends its connection while there is nothing
 * to send; the waker thread resumes the streams when the store changed,
 * every 15 s for a keepalive line, and when a stream's client has gone.
 *
 * Guards: libmicrohttpd has no deadline for a whole request, only an idle
 * timeout, so a client sending a byte now and then would hold its
 * connection for ever (slowloris). Every connection has a guard (its
 * socket_context) that knows its client address and where it is: idle
 * between requests, reading a request (from its first byte, seen by the
 * kernel's byte count, to the handler), or answering. The waker answers a
 * request still being read after http.request_timeout_s with 408 itself,
 * on the socket, and shuts the socket down so libmicrohttpd drops the
 * connection; likewise a connection over its client's cap (429) whose
 * request has not arrived.
 *
 * Stopping (core_http_stop): refuse new requests (503 shutting_down), stop
 * listening, end the streams, wait for requests in flight (an ingest waits
 * for its commit), then stop the daemon.
 */
#ifndef CORE_HTTP_INT_H
#define CORE_HTTP_INT_H

#include <arpa/inet.h>
#include <microhttpd.h>
#include <pthread.h>
#include <stdint.h>

#include "api.h"
#include "batch.h"
#include "http.h"
#include "media.h"

#define SCOPE_PUBLIC 0u
#define SCOPE_READ ((unsigned)CORE_SCOPE_READ)
#define SCOPE_WRITE ((unsigned)CORE_SCOPE_WRITE)
#define SCOPE_ADMIN ((unsigned)CORE_SCOPE_ADMIN)

#define MAX_SEGS 12
#define KEEPALIVE_MS 15000
#define STOP_WAIT_MS 30000
#define WAKER_MS 200 /* how often the waker looks at streams and guards */
/* A connection over its client's cap whose request has not arrived after
 * this long is answered 429 and closed by the waker. */
#define OVER_CAP_GRACE_MS 200
/* Query parameters per request (400 too_many_parameters). */
#define MAX_PARAMS 256
/* What one header line or query parameter counts toward max_header_bytes
 * beyond its text: about what libmicrohttpd keeps for it (a 56-byte record
 * in the connection's pool), so the count bounds the pool it needs. */
#define ITEM_BYTES 64
/* The connection's memory pool holds this many times max_header_bytes
 * (and 64 KiB more): room for a request line and headers of up to twice
 * the limit, counted as above, to reach our JSON 414/431 (docs/api.md). */
#define POOL_HEADER_MULT 4
#define CLIENT_BUCKETS 256
#define CLIENT_KEY 17 /* family byte + IPv4 address or IPv6 /64 */

typedef struct req req;
typedef struct sse sse;
typedef struct guard guard;
typedef enum MHD_Result (*handler_fn)(req *r);

/* What a route does beyond its handler (http_admit and authorize read
 * these, so no check names a handler). */
enum {
  ROUTE_ARGS = 1,      /* takes query parameters (else any is refused) */
  ROUTE_TXN = 2,       /* may answer in authorize's read transaction */
  ROUTE_STOPPING = 4,  /* answered while the host stops (/healthz) */
  ROUTE_ANY_STATE = 8, /* its plugin instance also when it does not run */
  ROUTE_INGEST = 16,   /* the body's media type is checked before it is read */
};

typedef struct route {
  const char *method;
  const char *path;
  unsigned scope;
  unsigned flags; /* ROUTE_* */
  handler_fn fn;
} route;

extern const route http_routes[];
extern const size_t HTTP_N_ROUTES;

/* Statuses counted per route in /metrics; a status not listed counts
 * under the first listed one of its class (e.g. 302 is not answered). */
#define HTTP_N_STATUS 18
extern const int http_counted_status[HTTP_N_STATUS];

/* A client address (IPv4, or an IPv6 /64) and what it holds open. */
typedef struct client {
  unsigned char key[CLIENT_KEY];
  char name[INET6_ADDRSTRLEN]; /* for messages */
  long conns;                  /* under conn_mu */
  struct client *next;
} client;

enum { G_IDLE, G_READING, G_ANSWERING };

/* One connection's watch (see "Guards" above). */
struct guard {
  req *r; /* the request on_uri made and on_completed has not freed */
  int fd;
  client *cl; /* under conn_mu */
  unsigned char key[CLIENT_KEY];
  twin_time opened;
  int over_cap; /* set once, when it was accepted */
  pthread_mutex_t mu;
  /* under mu: */
  int phase;
  twin_time since;    /* G_READING: when its first byte was seen */
  uint64_t base_rx;   /* G_IDLE: bytes received when it became idle */
  int cut;            /* the waker answered it and shut it down */
  guard *prev, *next; /* srv->guards, under conn_mu */
};

struct core_http {
  core_host *h;
  core_pipeline *p;
  core_http_config cfg;
  struct MHD_Daemon *d;
  uint16_t port;
  twin_time started;
  int stopping;     /* atomic */
  long connections; /* atomic: open connections */
  long in_flight;   /* atomic: requests between headers and completion */
  long committing;  /* atomic: ingests suspended until their commit */
  long over_cap;    /* atomic: open connections over their client's cap */
  int per_client;   /* connections per client address (effective cap) */
  /* event streams */
  pthread_mutex_t sse_mu;
  pthread_cond_t sse_cv;
  sse *streams;
  long n_streams;
  uint64_t gen; /* bumped when the store changed; under sse_mu */
  pthread_t waker;
  int waker_stop;     /* under sse_mu */
  struct pollfd *pfd; /* the waker's, for the sockets of streams */
  size_t pfd_cap;
  /* connections */
  pthread_mutex_t conn_mu;
  guard *guards;
  client *clients[CLIENT_BUCKETS];
  /* metrics: [route][status] (route n = unknown route) */
  uint64_t *counts;
  double *seconds; /* [route]: time spent answering */
};

struct req {
  core_http *srv;
  struct MHD_Connection *conn;
  guard *g; /* NULL when its connection has none (out of memory) */
  const route *rt;
  int route_idx;
  const char *method;
  /* path parameters in template order, by name */
  const char *pname[MAX_SEGS], *pval[MAX_SEGS];
  size_t np;
  char *url;    /* the URL as MHD decoded it */
  char *path;   /* a copy of it, split in place */
  int started;  /* on_request has been called (counted in in_flight) */
  int admitted; /* routed and checked (admit) */
  /* from the request target as sent (inspect_uri) */
  const char *uri_at; /* the request target in MHD's buffer (on_uri) */
  size_t uri_len, n_params;
  int bad_uri;        /* a control character in the path or a parameter */
  char bad_field[64]; /* the path part or parameter it is in, or "" */
  char bad_msg[400];
  /* The read transaction authorize used, kept for the handler when both
   * run in the same call (a thread may hold one only while it works on
   * this request). */
  MDB_txn *txn;
  int may_keep_txn;
  const core_town *town;
  core_instance *ci;
  api_arg *argv;
  size_t argc, argcap;
  api_args args;
  char *body;
  size_t body_len, body_cap;
  int too_large;
  int responded;
  int close_after; /* answer with Connection: close */
  uint64_t t0;
  /* ingest (http_ingest.c) */
  pthread_mutex_t mu;
  int pending, suspended, submitted;
  int counted_committing; /* in srv->committing until completed */
  struct doc_result *results;
  size_t n_docs;
  size_t kept, refusals_listed;  /* under mu: details kept, refusals */
  core_batch batch;              /* the documents, until all are queued */
  size_t next_doc;               /* the first not yet queued */
  char doc_type[CORE_MEDIA_MAX]; /* a raw body's media type, or "" */
};

/* ---- http_route.c: routes, answers --------------------------------------- */

extern const char *const http_no_args[];
const char *http_scope_name(unsigned scope);
/* The value of path parameter name ("town", "plugin", ...), or NULL. */
const char *http_param(const req *r, const char *name);
/* Find r's route; 0 when found (r->rt set), else -1 after answering
 * 404/405 or a CORS preflight, with the answer's result in *rc. */
int http_route_request(req *r, const char *url, enum MHD_Result *rc);
/* Everything decided from the headers alone (stopping, connections, body
 * size, media type, town, token, plugin, parameters); 0 to go on. */
int http_admit(req *r, enum MHD_Result *rc);

size_t http_status_slot(int status);
void http_count(req *r, int status);
void http_count_unrouted(core_http *s, int status);
void http_common_headers(struct MHD_Response *resp);
/* Answer r; text is taken (freed). */
enum MHD_Result http_send_text(req *r, int status, const char *type, char *text,
                               size_t len);
/* Answer r with body as JSON (the reference is taken). */
enum MHD_Result http_send_json(req *r, int status, json_t *body);
enum MHD_Result http_send_error(req *r, const api_error *e);
enum MHD_Result http_fail(req *r, int http, const char *code, const char *field,
                          const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));
/* A host error (a twin status and its core_err) as an API error, by the
 * one table of api_status_http (docs/api.md). */
enum MHD_Result http_fail_status(req *r, int st, const core_err *err);

/* ---- http_admit.c: screening and guards ---------------------------------- */

/* Find the first control character of the request target as sent (before
 * libmicrohttpd decodes it in place); fills r->bad_*, r->uri_len,
 * r->n_params. */
void http_inspect_uri(req *r, const char *uri);
/* Everything refused from the request line and headers alone, before
 * routing; 0 to go on, else -1 with the answer in *rc (the connection
 * closes after). */
int http_screen(req *r, const char *method, const char *version,
                enum MHD_Result *rc);
/* The guard of conn (its socket_context), or NULL. */
guard *http_guard_of(struct MHD_Connection *conn);
/* r is being read: its deadline runs. -1 when the waker cut it. */
int http_guard_reading(req *r);
/* r is answered now: its deadline no longer applies. -1 when the waker
 * cut the connection already (answer nothing). */
int http_guard_answering(req *r);
/* The waker's look at every connection: past its deadline, or over its
 * client's cap with no request yet: answered and cut. */
void http_guard_scan(core_http *s, twin_time now);
/* Bytes the kernel has received on fd; 0 when it cannot say. */
int http_rx_bytes(int fd, uint64_t *out);
void http_client_key(const struct sockaddr *sa, unsigned char key[CLIENT_KEY],
                     char name[INET6_ADDRSTRLEN]);
/* The client of key with one more connection (under conn_mu). */
client *http_client_add(core_http *s, const unsigned char *key,
                        const char *name);
void http_client_drop(core_http *s, client *c);

/* ---- handlers ------------------------------------------------------------ */

enum MHD_Result http_h_healthz(req *r);
enum MHD_Result http_h_metrics(req *r);
enum MHD_Result http_h_root(req *r);
enum MHD_Result http_h_openapi(req *r);
enum MHD_Result http_h_plugins(req *r);
enum MHD_Result http_h_plugin(req *r);
enum MHD_Result http_h_towns(req *r);
enum MHD_Result http_h_town(req *r);
enum MHD_Result http_h_entities(req *r);
enum MHD_Result http_h_entity(req *r);
enum MHD_Result http_h_history(req *r);
enum MHD_Result http_h_town_plugin(req *r);
enum MHD_Result http_h_ingest(req *r);
enum MHD_Result http_h_query(req *r);
enum MHD_Result http_h_scenario(req *r);
enum MHD_Result http_h_query_op(req *r);
enum MHD_Result http_h_scenario_op(req *r);
enum MHD_Result http_h_events(req *r);
enum MHD_Result http_h_stream(req *r);
enum MHD_Result http_h_rules(req *r);
enum MHD_Result http_h_tokens(req *r);

/* End the read transaction authorize left for the handler, if any. */
void http_drop_txn(req *r);
/* The media type of an ingest body the plugin takes whole into type
 * (size bytes), "" for a JSON batch; the body's form. */
core_batch_form http_ingest_form(req *r, char *type, size_t size);
/* Free what an ingest kept in r. */
void http_ingest_free(req *r);

/* ---- http_stream.c ------------------------------------------------------- */

/* Resume every suspended stream (under sse_mu). */
void http_streams_wake(core_http *srv);
/* End the suspended streams whose client has gone (under sse_mu). */
void http_streams_reap(core_http *srv);

#endif
