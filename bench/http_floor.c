/*
 * http_floor.c — the HTTP floor of bench/run: libmicrohttpd with nothing
 * behind it.
 *
 * It runs the daemon exactly as core/http.c does (the same flags, thread
 * pool, connection limits and memory limit) and answers every request with
 * a fixed JSON body of a given size and the same response headers the host
 * sends, building a response per request as any dynamic handler must. What
 * wrk measures against it is what the host's HTTP API could do if routing,
 * the token check, the store read and the JSON cost nothing.
 *
 * usage: http_floor THREADS BODY_BYTES
 * Listens on 127.0.0.1, any free port; prints "port N" on stdout once it
 * listens, then serves until SIGTERM or SIGINT.
 */
#include <arpa/inet.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static char *body;
static size_t body_len;

static enum MHD_Result on_request(void *cls, struct MHD_Connection *conn,
                                  const char *url, const char *method,
                                  const char *version,
                                  const char *upload_data,
                                  size_t *upload_data_size, void **con_cls)
{
  (void)cls;
  (void)url;
  (void)method;
  (void)version;
  (void)upload_data;
  /* Headers first, then the (empty) body: the host answers on the second
   * call too. */
  static int seen;
  if (!*con_cls) {
    *con_cls = &seen;
    return MHD_YES;
  }
  if (*upload_data_size) {
    *upload_data_size = 0;
    return MHD_YES;
  }
  struct MHD_Response *resp = MHD_create_response_from_buffer(
      body_len, body, MHD_RESPMEM_PERSISTENT);
  if (!resp)
    return MHD_NO;
  MHD_add_response_header(resp, "Content-Type", "application/json");
  MHD_add_response_header(resp, "Access-Control-Allow-Origin", "*");
  MHD_add_response_header(resp, "Cache-Control", "no-store");
  enum MHD_Result rc = MHD_queue_response(conn, 200, resp);
  MHD_destroy_response(resp);
  return rc;
}

int main(int argc, char **argv)
{
  if (argc != 3) {
    fprintf(stderr, "usage: http_floor THREADS BODY_BYTES\n");
    return 2;
  }
  unsigned threads = (unsigned)strtoul(argv[1], NULL, 10);
  body_len = strtoul(argv[2], NULL, 10);
  if (!threads || body_len < 2) {
    fprintf(stderr, "http_floor: THREADS must be at least 1 and BODY_BYTES "
                    "at least 2\n");
    return 2;
  }
  /* {"pad":"...."} of the given size, ending in a newline as the host's
   * bodies do. */
  body = malloc(body_len + 1);
  if (!body)
    return 1;
  memset(body, '.', body_len);
  if (body_len >= 12)
    memcpy(body, "{\"pad\":\"", 8);
  if (body_len >= 12)
    memcpy(body + body_len - 3, "\"}", 2);
  body[body_len - 1] = '\n';
  body[body_len] = 0;

  /* Blocked before the pool starts, so only sigwait below takes them. */
  sigset_t stop;
  sigemptyset(&stop);
  sigaddset(&stop, SIGTERM);
  sigaddset(&stop, SIGINT);
  pthread_sigmask(SIG_BLOCK, &stop, NULL);

  struct sockaddr_in sa;
  memset(&sa, 0, sizeof sa);
  sa.sin_family = AF_INET;
  sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  /* The flags and options of core_http_start, with its default limits
   * (max_connections 256, max_header_bytes 16 KiB). */
  unsigned flags = MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_POLL |
                   MHD_USE_ITC | MHD_ALLOW_SUSPEND_RESUME;
  size_t mem = 16384 + 32 * 1024; /* as core/http.c */
  struct MHD_Daemon *d = MHD_start_daemon(
      flags, 0, NULL, NULL, on_request, NULL, MHD_OPTION_SOCK_ADDR,
      (struct sockaddr *)&sa, MHD_OPTION_THREAD_POOL_SIZE, threads,
      MHD_OPTION_CONNECTION_LIMIT, 256u + 32u, MHD_OPTION_CONNECTION_TIMEOUT,
      60u, MHD_OPTION_CONNECTION_MEMORY_LIMIT, mem, MHD_OPTION_END);
  if (!d) {
    fprintf(stderr, "http_floor: cannot start libmicrohttpd on 127.0.0.1\n");
    return 1;
  }
  const union MHD_DaemonInfo *info =
      MHD_get_daemon_info(d, MHD_DAEMON_INFO_BIND_PORT);
  printf("port %u\n", info ? (unsigned)info->port : 0u);
  fflush(stdout);
  int sig;
  sigwait(&stop, &sig);
  MHD_stop_daemon(d);
  free(body);
  return 0;
}
