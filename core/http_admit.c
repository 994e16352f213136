/*
 * http_admit.c — what is refused before a request is routed, and each
 * connection's guard. Screening: the client's connection cap, framing
 * (Content-Length, Transfer-Encoding), header names and values, the size
 * of the request line and headers, the number of parameters, control
 * characters in the path and parameters (found in the target as sent,
 * before libmicrohttpd decodes it in place). Guards: a connection's client
 * address and phase (idle, reading, answering), so the waker can answer a
 * request past its deadline (408) or a connection over its client's cap
 * (429) on the socket itself.
 */
#include <linux/tcp.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>

#include "http_int.h"

/* r is answered now: its guard's deadline no longer applies. 0, or -1
 * when the waker cut the connection already (answer nothing). */
int http_guard_answering(req *r)
{
  guard *g = r->g;
  if (!g)
    return 0;
  pthread_mutex_lock(&g->mu);
  int cut = g->cut;
  if (!cut)
    g->phase = G_ANSWERING;
  pthread_mutex_unlock(&g->mu);
  return cut ? -1 : 0;
}

/* ---- guards: deadlines and per-client caps --------------------------------
 */

/* The guard of conn (its socket_context), or NULL. */
guard *http_guard_of(struct MHD_Connection *conn)
{
  const union MHD_ConnectionInfo *ci =
      MHD_get_connection_info(conn, MHD_CONNECTION_INFO_SOCKET_CONTEXT);
  return ci ? ci->socket_context : NULL;
}

/* Bytes the kernel has received on fd so far; 0 when it cannot say (a
 * kernel before Linux 4.1). A request's first byte shows here before
 * libmicrohttpd tells us anything. */
int http_rx_bytes(int fd, uint64_t *out)
{
  struct tcp_info ti;
  socklen_t len = sizeof ti;
  memset(&ti, 0, sizeof ti);
  if (getsockopt(fd, IPPROTO_TCP, TCP_INFO, &ti, &len) ||
      len < offsetof(struct tcp_info, tcpi_bytes_received) +
                sizeof ti.tcpi_bytes_received)
    return 0;
  *out = ti.tcpi_bytes_received;
  return 1;
}

void http_client_key(const struct sockaddr *sa, unsigned char key[CLIENT_KEY],
                     char name[INET6_ADDRSTRLEN])
{
  memset(key, 0, CLIENT_KEY);
  snprintf(name, INET6_ADDRSTRLEN, "unknown");
  if (sa && sa->sa_family == AF_INET) {
    const struct sockaddr_in *a = (const struct sockaddr_in *)sa;
    key[0] = 4;
    memcpy(key + 1, &a->sin_addr, 4);
    inet_ntop(AF_INET, &a->sin_addr, name, INET6_ADDRSTRLEN);
  } else if (sa && sa->sa_family == AF_INET6) {
    const struct sockaddr_in6 *a = (const struct sockaddr_in6 *)sa;
    const unsigned char *b = a->sin6_addr.s6_addr;
    if (IN6_IS_ADDR_V4MAPPED(&a->sin6_addr)) {
      key[0] = 4;
      memcpy(key + 1, b + 12, 4);
      inet_ntop(AF_INET, b + 12, name, INET6_ADDRSTRLEN);
    } else { /* one client holds a /64 */
      key[0] = 6;
      memcpy(key + 1, b, 8);
      inet_ntop(AF_INET6, b, name, INET6_ADDRSTRLEN);
    }
  }
}

static size_t client_bucket(const unsigned char key[CLIENT_KEY])
{
  uint32_t h = 2166136261u;
  for (size_t i = 0; i < CLIENT_KEY; i++)
    h = (h ^ key[i]) * 16777619u;
  return h % CLIENT_BUCKETS;
}

/* The client of key with one more connection (under conn_mu); NULL when
 * out of memory. */
client *http_client_add(core_http *s, const unsigned char *key,
                        const char *name)
{
  client **b = &s->clients[client_bucket(key)], *c = *b;
  while (c && memcmp(c->key, key, CLIENT_KEY))
    c = c->next;
  if (!c) {
    c = calloc(1, sizeof *c);
    if (!c)
      return NULL;
    memcpy(c->key, key, CLIENT_KEY);
    snprintf(c->name, sizeof c->name, "%s", name);
    c->next = *b;
    *b = c;
  }
  c->conns++;
  return c;
}

void http_client_drop(core_http *s, client *c)
{
  if (!c || --c->conns > 0)
    return;
  for (client **pp = &s->clients[client_bucket(c->key)]; *pp; pp = &(*pp)->next)
    if (*pp == c) {
      *pp = c->next;
      break;
    }
  free(c);
}

/* Answer g's request ourselves, on its socket, and shut the socket down
 * so libmicrohttpd drops the connection (under g->mu, while libmicrohttpd
 * is still reading the request, so it writes nothing itself). */
static void cut(core_http *s, guard *g, int status)
{
  api_error e;
  if (status == 408)
    api_fail(&e, 408, "request_timeout", NULL,
             "the request line, headers and body did not all arrive within "
             "%d s of its first byte (http.request_timeout_s); send the "
             "whole request at once, then retry",
             s->cfg.request_timeout_s);
  else
    api_fail(&e, 429, "too_many_connections_from_client", NULL,
             "this client (%s) has %d connections open, the most one client "
             "may (http.max_connections_per_client); reuse one (keep-alive) "
             "or close some, then retry",
             g->cl ? g->cl->name : "?", s->per_client);
  json_t *j = api_error_json(&e);
  char *body = j ? json_dumps(j, JSON_COMPACT) : NULL;
  json_decref(j);
  char buf[2048];
  int n =
      snprintf(buf, sizeof buf,
               "HTTP/1.1 %d %s\r\nContent-Type: application/json\r\n"
               "Content-Length: %zu\r\nConnection: close\r\n%s"
               "Cache-Control: no-store\r\n"
               "Access-Control-Allow-Origin: *\r\n\r\n%s\n",
               status, status == 408 ? "Request Timeout" : "Too Many Requests",
               body ? strlen(body) + 1 : 1,
               status == 429 ? "Retry-After: 5\r\n" : "", body ? body : "");
  free(body);
  if (n > 0 && (size_t)n < sizeof buf &&
      send(g->fd, buf, (size_t)n, MSG_NOSIGNAL | MSG_DONTWAIT) > 0)
    http_count_unrouted(s, status);
  shutdown(g->fd, SHUT_RDWR);
  g->cut = 1;
}

/* The waker's look at every connection: a request past its deadline, or
 * a connection over its client's cap whose request has not come, is
 * answered and cut. */
void http_guard_scan(core_http *s, twin_time now)
{
  twin_time timeout = (twin_time)s->cfg.request_timeout_s * 1000;
  pthread_mutex_lock(&s->conn_mu);
  for (guard *g = s->guards; g; g = g->next) {
    pthread_mutex_lock(&g->mu);
    if (!g->cut && g->phase == G_IDLE) {
      uint64_t rx = 0;
      /* without the kernel's count, idle time counts as reading */
      if (!http_rx_bytes(g->fd, &rx) || rx > g->base_rx) {
        g->phase = G_READING;
        g->since = now;
      }
    }
    if (!g->cut && g->over_cap && g->phase != G_ANSWERING &&
        now - g->opened >= OVER_CAP_GRACE_MS)
      cut(s, g, 429);
    else if (!g->cut && g->phase == G_READING && now - g->since >= timeout)
      cut(s, g, 408);
    pthread_mutex_unlock(&g->mu);
  }
  pthread_mutex_unlock(&s->conn_mu);
}

/* ---- request intake ------------------------------------------------------ */

static enum MHD_Result collect_arg(void *cls, enum MHD_ValueKind kind,
                                   const char *key, size_t key_size,
                                   const char *value, size_t value_size)
{
  (void)kind;
  (void)key_size;
  (void)value_size;
  req *r = cls;
  if (r->argc == r->argcap) {
    size_t cap = r->argcap ? r->argcap * 2 : 8;
    api_arg *a = realloc(r->argv, cap * sizeof *a);
    if (!a)
      return MHD_NO;
    r->argv = a;
    r->argcap = cap;
  }
  r->argv[r->argc++] = (api_arg){key, value ? value : ""};
  return MHD_YES;
}

/* ---- screening: what is refused before routing --------------------------- */

static int hex_value(char c)
{
  return c >= '0' && c <= '9'   ? c - '0'
         : c >= 'a' && c <= 'f' ? c - 'a' + 10
         : c >= 'A' && c <= 'F' ? c - 'A' + 10
                                : -1;
}

/* Percent-decode in[0..n) into out (room for n bytes), '+' as a space
 * when plus (a query part), as libmicrohttpd decodes them; the length. */
static size_t pct_decode(const char *in, size_t n, char *out, int plus)
{
  size_t k = 0;
  for (size_t i = 0; i < n; i++) {
    int hi = i + 2 < n ? hex_value(in[i + 1]) : -1;
    int lo = i + 2 < n ? hex_value(in[i + 2]) : -1;
    if (in[i] == '%' && hi >= 0 && lo >= 0) {
      out[k++] = (char)(hi * 16 + lo);
      i += 2;
    } else {
      out[k++] = plus && in[i] == '+' ? ' ' : in[i];
    }
  }
  return k;
}

static int is_ctl(unsigned char c)
{
  return c < 0x20 || c == 0x7f;
}

/* text[0..n) for a message: control characters as %XX, at most 60
 * characters shown. */
static void shown(const char *text, size_t n, char *out, size_t size)
{
  size_t k = 0;
  for (size_t i = 0; i < n && k + 8 < size; i++) {
    if (i == 60) {
      k += (size_t)snprintf(out + k, size - k, "...");
      break;
    }
    unsigned char c = (unsigned char)text[i];
    if (is_ctl(c))
      k += (size_t)snprintf(out + k, size - k, "%%%02X", c);
    else
      out[k++] = (char)c;
  }
  out[k] = 0;
}

/* The template parameter ("town", "id", ...) at segment index bad of a
 * path split into n decoded segments, into out, when a route's template
 * matches its other segments; 1 if found. */
static int template_param(char *const *seg, const size_t *len, size_t n,
                          size_t bad, char *out, size_t size)
{
  for (size_t i = 0; i < HTTP_N_ROUTES; i++) {
    const char *t = http_routes[i].path, *param = NULL;
    size_t k = 0;
    int ok = 1;
    while (ok && *t == '/') {
      t++;
      const char *e = strchr(t, '/');
      size_t tl = e ? (size_t)(e - t) : strlen(t);
      int is_param = tl >= 2 && t[0] == '{' && t[tl - 1] == '}';
      if (k >= n)
        ok = 0;
      else if (is_param && k == bad)
        param = t + 1;
      else if (!is_param && (len[k] != tl || memcmp(seg[k], t, tl)))
        ok = 0;
      k++;
      t += tl;
    }
    if (ok && k == n && param) {
      snprintf(out, size, "%.*s", (int)(strchr(param, '}') - param), param);
      return 1;
    }
  }
  return 0;
}

/* Find the first control character (raw or percent-encoded) of the
 * request target as sent, before libmicrohttpd decodes it in place and a
 * %00 silently cuts the path or value short. Fills r->bad_*. */
void http_inspect_uri(req *r, const char *uri)
{
  size_t n = strlen(uri);
  r->uri_len = n;
  const char *q = memchr(uri, '?', n);
  size_t plen = q ? (size_t)(q - uri) : n;
  char *buf = malloc(n + 1);
  if (!buf)
    return;
  /* the path: decoded whole, then split at '/', as routing does */
  size_t dl = pct_decode(uri, plen, buf, 0);
  if (dl > 1 && buf[dl - 1] == '/')
    dl--;
  char *seg[MAX_SEGS + 1];
  size_t len[MAX_SEGS + 1], nseg = 0, bad = SIZE_MAX;
  for (size_t i = 0; i < dl && nseg <= MAX_SEGS;) {
    if (buf[i] != '/') { /* not from the root: one segment */
      seg[nseg] = buf + i;
    } else {
      i++;
      seg[nseg] = buf + i;
    }
    size_t e = i;
    while (e < dl && buf[e] != '/')
      e++;
    len[nseg] = e - i;
    for (size_t k = i; k < e && bad == SIZE_MAX; k++)
      if (is_ctl((unsigned char)buf[k]))
        bad = nseg;
    nseg++;
    i = e;
  }
  if (bad != SIZE_MAX) {
    char pbuf[32];
    const char *param =
        template_param(seg, len, nseg, bad, pbuf, sizeof pbuf) ? pbuf : NULL;
    char text[200];
    shown(seg[bad], len[bad], text, sizeof text);
    r->bad_uri = 1;
    snprintf(r->bad_field, sizeof r->bad_field, "%s", param ? param : "");
    snprintf(r->bad_msg, sizeof r->bad_msg,
             "the path part '%s'%s%s%s has a control character; names and "
             "ids never have one: fix the URL (percent-encode only printable "
             "characters)",
             text, param ? " (" : "", param ? param : "", param ? ")" : "");
    free(buf);
    return;
  }
  /* the parameters as libmicrohttpd splits them: at each '&' (a last
   * empty one is none) */
  if (q && q[1]) {
    r->n_params = 1;
    for (const char *p = strchr(q + 1, '&'); p; p = strchr(p + 1, '&'))
      r->n_params += p[1] != 0;
  }
  /* the parameters: name=value&..., each decoded on its own */
  for (const char *p = q ? q + 1 : NULL; p && *p;) {
    const char *amp = strchr(p, '&');
    size_t pl = amp ? (size_t)(amp - p) : strlen(p);
    const char *eq = memchr(p, '=', pl);
    size_t nl = eq ? (size_t)(eq - p) : pl;
    size_t kn = pct_decode(p, nl, buf, 1);
    int bad_name = 0, bad_value = 0;
    for (size_t k = 0; k < kn; k++)
      bad_name |= is_ctl((unsigned char)buf[k]);
    char name[64], text[200];
    shown(buf, kn, name, sizeof name);
    if (!bad_name && eq) {
      size_t vn = pct_decode(eq + 1, pl - nl - 1, buf, 1);
      for (size_t k = 0; k < vn; k++)
        bad_value |= is_ctl((unsigned char)buf[k]);
      shown(buf, vn, text, sizeof text);
    }
    if (bad_name || bad_value) {
      r->bad_uri = 1;
      snprintf(r->bad_field, sizeof r->bad_field, "%s", bad_name ? "" : name);
      if (bad_name)
        snprintf(r->bad_msg, sizeof r->bad_msg,
                 "the parameter name '%s' has a control character: fix the "
                 "URL",
                 name);
      else
        snprintf(r->bad_msg, sizeof r->bad_msg,
                 "%s: the value '%s' has a control character; values never "
                 "have one: fix the URL (percent-encode only printable "
                 "characters)",
                 name, text);
      break;
    }
    p = amp ? amp + 1 : NULL;
  }
  free(buf);
}

/* RFC 9110 token characters, those of a header name. */
static int is_tchar(unsigned char c)
{
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
         (c >= '0' && c <= '9') || (c && strchr("!#$%&'*+-.^_`|~", c));
}

/* What the header lines say about framing, and their size. */
typedef struct frame {
  size_t n_headers, bytes;
  int n_cl, n_te, cl_differ, cl_bad;
  const char *cl, *te;
  size_t cl_len;
  char bad_name[80];    /* a header name that is not a token, as shown */
  char bad_value[80];   /* the name of a header whose value has a CTL */
  uintptr_t lo, hi;     /* the request's header block, or 0 */
  uintptr_t (*span)[2]; /* [key start, value end] of each header in it */
  size_t n_span, span_cap;
  int outside; /* a value not in [lo, hi), or out of memory */
  int folded;  /* a header name moved out: its line was folded */
} frame;

static enum MHD_Result frame_header(void *cls, enum MHD_ValueKind kind,
                                    const char *key, size_t key_size,
                                    const char *value, size_t value_size)
{
  (void)kind;
  frame *f = cls;
  f->n_headers++;
  f->bytes += key_size + value_size + 4;
  int name_ok = key_size > 0;
  for (size_t i = 0; i < key_size; i++)
    name_ok &= is_tchar((unsigned char)key[i]);
  if (!name_ok && !f->bad_name[0]) {
    shown(key, key_size, f->bad_name, sizeof f->bad_name);
    if (!f->bad_name[0])
      snprintf(f->bad_name, sizeof f->bad_name, "(empty)");
  }
  for (size_t i = 0; name_ok && i < value_size && !f->bad_value[0]; i++)
    if (is_ctl((unsigned char)value[i]) && value[i] != '\t')
      snprintf(f->bad_value, sizeof f->bad_value, "%.*s", (int)key_size, key);
  if (name_ok && key_size == 14 && !strncasecmp(key, "Content-Length", 14)) {
    int digits = value_size > 0;
    for (size_t i = 0; i < value_size; i++)
      digits &= value[i] >= '0' && value[i] <= '9';
    f->cl_bad |= !digits;
    if (f->n_cl++ &&
        (value_size != f->cl_len || memcmp(value, f->cl, value_size)))
      f->cl_differ = 1;
    f->cl = value;
    f->cl_len = value_size;
  }
  if (name_ok && key_size == 17 && !strncasecmp(key, "Transfer-Encoding", 17)) {
    f->n_te++;
    f->te = value;
  }
  uintptr_t k = (uintptr_t)key, v = (uintptr_t)value;
  if (!f->lo || f->outside)
    return MHD_YES;
  if (!value || v < f->lo || v + value_size > f->hi) {
    f->outside = 1;
    return MHD_YES;
  }
  if (k < f->lo || k >= f->hi || k > v) { /* moved: a folded line joined */
    f->folded = 1;
    return MHD_YES;
  }
  if (f->n_span == f->span_cap) {
    size_t cap = f->span_cap ? 2 * f->span_cap : 32;
    uintptr_t(*sp)[2] = realloc(f->span, cap * sizeof *sp);
    if (!sp) {
      f->outside = 1;
      return MHD_YES;
    }
    f->span = sp;
    f->span_cap = cap;
  }
  f->span[f->n_span][0] = k;
  f->span[f->n_span][1] = v + value_size;
  f->n_span++;
  return MHD_YES;
}

static int span_cmp(const void *a, const void *b)
{
  uintptr_t x = ((const uintptr_t *)a)[0], y = ((const uintptr_t *)b)[0];
  return x < y ? -1 : x > y;
}

/* 1 when the header block [f->lo, f->hi) has bytes that are in no header
 * (from the end of the request line at from): libmicrohttpd overwrote
 * every CR, LF and colon it parsed with NUL, so what is left between two
 * headers or after the last is a line it did not read as one: a line it
 * took for the end of the headers because it starts with a NUL, or a
 * folded (obsolete) continuation line. */
static int hidden_bytes(frame *f, uintptr_t from)
{
  if (!f->lo || f->outside)
    return 0;
  if (f->folded)
    return 1;
  if (f->n_span) /* none: a request without headers */
    qsort(f->span, f->n_span, sizeof *f->span, span_cmp);
  uintptr_t at = from;
  for (size_t i = 0; i <= f->n_span; i++) {
    uintptr_t to = i < f->n_span ? f->span[i][0] : f->hi;
    for (uintptr_t p = at; p < to; p++)
      if (*(const char *)p)
        return 1;
    if (i < f->n_span && f->span[i][1] > at)
      at = f->span[i][1];
  }
  return 0;
}

/* Everything refused from the request line and headers alone, before
 * routing (docs/api.md "Errors"): 0 to go on, else -1 with the answer in
 * *rc. Every refusal here closes the connection. */
int http_screen(req *r, const char *method, const char *version,
                enum MHD_Result *rc)
{
  core_http *s = r->srv;
  size_t limit = s->cfg.max_header_bytes;
  r->close_after = 1;
  if (r->g && r->g->over_cap) {
    *rc = http_fail(r, 429, "too_many_connections_from_client", NULL,
                    "this client (%s) has %d connections open, the most one "
                    "client may (http.max_connections_per_client); reuse one "
                    "(keep-alive) or close some, then retry",
                    r->g->cl ? r->g->cl->name : "?", s->per_client);
    return -1;
  }
  frame f;
  memset(&f, 0, sizeof f);
  /* The request line and headers as libmicrohttpd 0.9.75 keeps them: in
   * place in its read buffer, from the method on, CR, LF and the colons
   * overwritten with NULs. Known only for the bytes of this request. */
  const union MHD_ConnectionInfo *hs =
      MHD_get_connection_info(r->conn, MHD_CONNECTION_INFO_REQUEST_HEADER_SIZE);
  uintptr_t vend = (uintptr_t)version + strlen(version);
  if (hs && vend > (uintptr_t)method &&
      vend <= (uintptr_t)method + hs->header_size) {
    f.lo = (uintptr_t)method;
    f.hi = f.lo + hs->header_size;
  }
  MHD_get_connection_values_n(r->conn, MHD_HEADER_KIND, frame_header, &f);
  int hidden = hidden_bytes(&f, vend);
  free(f.span);
  if (f.bad_name[0]) {
    *rc = http_fail(r, 400, "bad_header", NULL,
                    "the header name '%s' has a space, a control character or "
                    "another character a header name cannot have; send 'Name: "
                    "value' with no space before the colon",
                    f.bad_name);
    return -1;
  }
  /* A line libmicrohttpd took for the end of the headers though it was
   * not empty (it starts with a NUL), or a folded header line. */
  if (hidden) {
    *rc =
        http_fail(r, 400, "bad_header", NULL,
                  "a header line starts with a NUL byte or continues the line "
                  "before it (obsolete folding); send each header on one line, "
                  "'Name: value'");
    return -1;
  }
  if (f.bad_value[0]) {
    *rc = http_fail(r, 400, "bad_header", f.bad_value,
                    "the value of %s has a control character; header values "
                    "cannot have one",
                    f.bad_value);
    return -1;
  }
  if (f.n_te && f.n_cl) {
    *rc =
        http_fail(r, 400, "bad_framing", "Content-Length",
                  "the request has both Content-Length and Transfer-Encoding, "
                  "so its length is ambiguous; send one of them");
    return -1;
  }
  if (f.n_te && (f.n_te > 1 || strcasecmp(f.te, "chunked"))) {
    *rc =
        http_fail(r, 501, "unsupported_transfer_encoding", "Transfer-Encoding",
                  "the only Transfer-Encoding taken is 'chunked', once; send "
                  "the body as it is, with Content-Length or chunked");
    return -1;
  }
  if (f.cl_differ || f.cl_bad) {
    *rc = http_fail(r, 400, "bad_framing", "Content-Length",
                    f.cl_bad ? "Content-Length must be a number of bytes"
                             : "the request has Content-Length twice with "
                               "different values; send it once");
    return -1;
  }
  /* A raw NUL in the request target: what was inspected ended there.
   * libmicrohttpd ended the target by overwriting the space before the
   * version with a NUL, so the version starts just after the true end. */
  if (r->uri_at && *version && version > r->uri_at &&
      version - 1 > r->uri_at + r->uri_len) {
    *rc =
        http_fail(r, 400, "bad_request", NULL,
                  "the request target has a NUL byte; percent-encode what the "
                  "URL holds (a NUL is never valid in a path or parameter)");
    return -1;
  }
  if (r->uri_len > limit) {
    *rc =
        http_fail(r, 414, "uri_too_long", NULL,
                  "the request target (path and query) is %zu bytes; the "
                  "limit is %zu (http.max_header_bytes): shorten it, or send a "
                  "query as a POST body",
                  r->uri_len, limit);
    return -1;
  }
  MHD_get_connection_values_n(r->conn, MHD_GET_ARGUMENT_KIND, collect_arg, r);
  r->args = (api_args){r->argv, r->argc};
  if (r->n_params > MAX_PARAMS || r->argc > MAX_PARAMS) {
    *rc =
        http_fail(r, 400, "too_many_parameters", NULL,
                  "the request has %zu query parameters; at most %d are taken: "
                  "send fewer",
                  r->n_params > r->argc ? r->n_params : r->argc, MAX_PARAMS);
    return -1;
  }
  size_t bytes = strlen(method) + r->uri_len + strlen(version) + 4 + f.bytes +
                 ITEM_BYTES * (f.n_headers + r->argc);
  if (bytes > limit) {
    *rc = http_fail(r, 431, "headers_too_large", NULL,
                    "the request line and headers count %zu bytes (each header "
                    "and parameter %d more than its text); the limit is %zu "
                    "(http.max_header_bytes): send fewer or shorter headers",
                    bytes, ITEM_BYTES, limit);
    return -1;
  }
  if (r->bad_uri) {
    *rc = http_fail(r, 400, "bad_parameter",
                    r->bad_field[0] ? r->bad_field : NULL, "%s", r->bad_msg);
    return -1;
  }
  r->close_after = 0;
  return 0;
}

/* r's connection is being read (on_request's calls before the handler):
 * its deadline runs from its first byte, or from now if the waker has not
 * seen that yet. -1 when the waker has cut it. */
int http_guard_reading(req *r)
{
  guard *g = r->g;
  if (!g)
    return 0;
  pthread_mutex_lock(&g->mu);
  int cut = g->cut;
  if (!cut && g->phase == G_IDLE) {
    g->phase = G_READING;
    g->since = core_now_ms();
  }
  pthread_mutex_unlock(&g->mu);
  return cut ? -1 : 0;
}
