/*
 * feedsim.c — twinhost-feedsim: serves the demo towns' car parks as live
 * ParkAPI v1 feeds on 127.0.0.1, so the parking plugin's fetch has
 * something to pull while the demo runs. Demo equipment, not part of the
 * host (scripts/demo starts and stops it).
 *
 *   twinhost-feedsim [--port N] PACK_DIR...     (N = 0: any free port)
 *
 * Each PACK_DIR is a town pack (scripts/deggendorf): its town.json names
 * the town, its parking-lots.json the lots and their model. The first line
 * on stdout is the port taken (then stdout is flushed); the feeds are
 *
 *   GET /<town>/lots.json   {"last_updated": RFC 3339, "data_source",
 *                            "lots": [{"id", "name", "total", "free",
 *                            "state", "coords": {"lat", "lng"},
 *                            "lot_type"}...]}
 *
 * Free spaces follow the weekday/hour profile of tools/demomodel.c, the one
 * the demo's history is generated from, plus noise, and change minute by
 * minute: last_updated is the current minute and the ETag names it, so an
 * If-None-Match of this minute's ETag is answered 304. Any other path is a
 * 404 with a JSON body, any other method a 405.
 *
 * The demo pulse, so the event stream shows something within the hour: a
 * lot with model.pulse_minute fills beyond 90 % around that minute of every
 * hour and is back below 75 % ten minutes later. In the demo data that is
 * Deggendorf's Tiefgarage Oberer Stadtplatz (beside the market square) at
 * the full hour and Plattling's Parkplatz Stadtplatz at half past; the
 * towns' parking rules (scripts/deggendorf/40-parking.lua,
 * scripts/plattling/30-parking.lua) warn above 90 % and re-arm below 80 %,
 * so each pulse raises one alert. No real car park behaves like this.
 *
 * Bounded: at most 16 towns of DM_LOTS_MAX lots, 32 connections of 32 KiB,
 * 10 s idle timeout, one polling thread (the model is not thread-safe),
 * request bodies ignored. SIGTERM or SIGINT stop it; so does the death of
 * the process that started it (Linux).
 */
#include "demomodel.h"

#include <arpa/inet.h>
#include <errno.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <time.h>
#include <unistd.h>

#define TOWNS_MAX 16

static dm_town towns[TOWNS_MAX];
static size_t ntowns;

static void usage(void)
{
  fprintf(stderr, "usage: twinhost-feedsim [--port N] PACK_DIR...\n"
                  "  serves GET /<town>/lots.json (ParkAPI v1) on "
                  "127.0.0.1:N for each town pack\n"
                  "  (N = 0, the default: any free port; the first line "
                  "on stdout is the port)\n");
}

static enum MHD_Result reply(struct MHD_Connection *c, unsigned status,
                             const char *body, const char *etag)
{
  struct MHD_Response *r = MHD_create_response_from_buffer(
      strlen(body), (void *)body, MHD_RESPMEM_MUST_COPY);
  if (!r)
    return MHD_NO;
  MHD_add_response_header(r, "Content-Type", "application/json");
  MHD_add_response_header(r, "Cache-Control", "no-cache");
  if (etag)
    MHD_add_response_header(r, "ETag", etag);
  if (status == MHD_HTTP_METHOD_NOT_ALLOWED)
    MHD_add_response_header(r, "Allow", "GET, HEAD");
  enum MHD_Result rc = MHD_queue_response(c, status, r);
  MHD_destroy_response(r);
  return rc;
}

/* The town whose feed path url is ("/<id>/lots.json"), or NULL. */
static const dm_town *town_of(const char *url)
{
  static const char tail[] = "/lots.json";
  if (url[0] != '/')
    return NULL;
  const char *slash = strchr(url + 1, '/');
  if (!slash || strcmp(slash, tail))
    return NULL;
  size_t n = (size_t)(slash - (url + 1));
  for (size_t i = 0; i < ntowns; i++)
    if (strlen(towns[i].id) == n && !strncmp(towns[i].id, url + 1, n))
      return &towns[i];
  return NULL;
}

/* Whether an If-None-Match header names etag (or is "*"). */
static int etag_matches(const char *header, const char *etag)
{
  if (!header)
    return 0;
  if (!strcmp(header, "*"))
    return 1;
  return strstr(header, etag) != NULL;
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *c,
                                  const char *url, const char *method,
                                  const char *version, const char *upload,
                                  size_t *upload_size, void **con_cls)
{
  (void)cls;
  (void)version;
  (void)upload;
  (void)con_cls;
  *upload_size = 0; /* bodies are not read */
  const dm_town *t = town_of(url);
  unsigned status;
  if (strcmp(method, "GET") && strcmp(method, "HEAD")) {
    status = MHD_HTTP_METHOD_NOT_ALLOWED;
    fprintf(stderr, "twinhost-feedsim: %s %s %u\n", method, url, status);
    return reply(c, status,
                 "{\"error\":\"method_not_allowed\",\"message\":\"only GET "
                 "/<town>/lots.json\"}",
                 NULL);
  }
  if (!t) {
    char body[1024];
    int n = snprintf(body, sizeof body,
                     "{\"error\":\"not_found\",\"message\":\"no such feed; "
                     "the feeds are");
    for (size_t i = 0; i < ntowns && n > 0 && (size_t)n < sizeof body; i++)
      n += snprintf(body + n, sizeof body - (size_t)n, "%s /%s/lots.json",
                    i ? "," : "", towns[i].id);
    if (n > 0 && (size_t)n < sizeof body - 3)
      snprintf(body + n, sizeof body - (size_t)n, "\"}");
    else
      snprintf(body, sizeof body, "{\"error\":\"not_found\"}");
    fprintf(stderr, "twinhost-feedsim: %s %s 404\n", method, url);
    return reply(c, MHD_HTTP_NOT_FOUND, body, NULL);
  }
  int64_t minute = (int64_t)time(NULL) / 60 * 60;
  char etag[DM_ID_MAX + 32];
  snprintf(etag, sizeof etag, "\"%s-%lld\"", t->id, (long long)minute / 60);
  if (etag_matches(MHD_lookup_connection_value(c, MHD_HEADER_KIND,
                                               MHD_HTTP_HEADER_IF_NONE_MATCH),
                   etag)) {
    fprintf(stderr, "twinhost-feedsim: %s %s 304\n", method, url);
    return reply(c, MHD_HTTP_NOT_MODIFIED, "", etag);
  }
  twinaux_json j;
  twinaux_json_init(&j);
  dm_snapshot_json(t, minute, 1, &j);
  enum MHD_Result rc;
  if (twinaux_json_status(&j) != TWIN_OK) {
    rc = reply(c, MHD_HTTP_INTERNAL_SERVER_ERROR,
               "{\"error\":\"internal\",\"message\":\"cannot write the "
               "snapshot\"}",
               NULL);
    status = MHD_HTTP_INTERNAL_SERVER_ERROR;
  } else {
    rc = reply(c, MHD_HTTP_OK, twinaux_json_text(&j, NULL), etag);
    status = MHD_HTTP_OK;
  }
  twinaux_json_free(&j);
  fprintf(stderr, "twinhost-feedsim: %s %s %u\n", method, url, status);
  return rc;
}

static void mhd_log(void *cls, const char *fmt, va_list ap)
{
  (void)cls;
  fputs("twinhost-feedsim: ", stderr);
  vfprintf(stderr, fmt, ap);
}

int main(int argc, char **argv)
{
  long port = 0;
  char err[4096];
  int i = 1;
  pid_t parent = getppid();
  for (; i < argc && argv[i][0] == '-'; i++) {
    if (!strcmp(argv[i], "--port") && i + 1 < argc) {
      char *end;
      port = strtol(argv[++i], &end, 10);
      if (*end || port < 0 || port > 65535) {
        fprintf(stderr,
                "twinhost-feedsim: --port: expected 0..65535, got "
                "'%s'\n",
                argv[i]);
        return 2;
      }
    } else if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
      usage();
      return 0;
    } else {
      usage();
      return 2;
    }
  }
  if (i == argc || argc - i > TOWNS_MAX) {
    usage();
    return 2;
  }
  for (; i < argc; i++) {
    if (dm_town_load(argv[i], &towns[ntowns], err, sizeof err)) {
      fprintf(stderr, "twinhost-feedsim: %s\n", err);
      return 1;
    }
    ntowns++;
  }

  /* SIGTERM and SIGINT are taken by sigwait below; blocked before MHD's
   * thread starts, so that thread inherits the mask. */
  sigset_t stop;
  sigemptyset(&stop);
  sigaddset(&stop, SIGTERM);
  sigaddset(&stop, SIGINT);
  pthread_sigmask(SIG_BLOCK, &stop, NULL);
  signal(SIGPIPE, SIG_IGN);
  prctl(PR_SET_PDEATHSIG, SIGTERM);
  if (getppid() != parent) /* the parent died before prctl */
    return 0;

  struct sockaddr_in sa;
  memset(&sa, 0, sizeof sa);
  sa.sin_family = AF_INET;
  sa.sin_port = htons((uint16_t)port);
  sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  struct MHD_Daemon *d = MHD_start_daemon(
      MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_POLL | MHD_USE_ERROR_LOG,
      (uint16_t)port, NULL, NULL, on_request, NULL, MHD_OPTION_EXTERNAL_LOGGER,
      mhd_log, NULL, /* first, or MHD warns */
      MHD_OPTION_SOCK_ADDR, (struct sockaddr *)&sa, MHD_OPTION_CONNECTION_LIMIT,
      32u, MHD_OPTION_CONNECTION_TIMEOUT, 10u,
      MHD_OPTION_CONNECTION_MEMORY_LIMIT, (size_t)32 * 1024, MHD_OPTION_END);
  if (!d) {
    fprintf(stderr,
            "twinhost-feedsim: cannot listen on 127.0.0.1 port %ld: "
            "%s\n",
            port, errno ? strerror(errno) : "refused");
    return 1;
  }
  const union MHD_DaemonInfo *info =
      MHD_get_daemon_info(d, MHD_DAEMON_INFO_BIND_PORT);
  unsigned bound = info ? info->port : (unsigned)port;
  printf("%u\n", bound);
  fflush(stdout);
  fprintf(stderr,
          "twinhost-feedsim: ParkAPI v1 feeds on http://127.0.0.1:%u/"
          "<town>/lots.json for",
          bound);
  for (size_t k = 0; k < ntowns; k++)
    fprintf(stderr, "%s %s", k ? "," : "", towns[k].id);
  fprintf(stderr, " (SIGTERM or SIGINT stops it)\n");

  int sig = 0;
  while (sigwait(&stop, &sig) != 0)
    ;
  MHD_stop_daemon(d);
  fprintf(stderr, "twinhost-feedsim: stopped (signal %d)\n", sig);
  return 0;
}
