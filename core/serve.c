/*
 * serve.c — `twinhost serve`: the long-running host. It takes the data
 * folder's serve lock, opens every town's plugins, starts the ingest writer
 * and runs the scheduler that ticks each plugin on its interval (with the
 * backoff and disabling kept in host.c), the towns' rule schedules and the
 * plugins' fetches (on the fetch pool, fetch.c), until SIGINT or SIGTERM;
 * then it commits what was accepted and exits 0.
 * SIGHUP reloads the towns' rules.
 */
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <time.h>
#include <unistd.h>

#include "cli.h"
#include "fetch.h"
#include "host.h"
#include "http.h"
#include "pipeline.h"
#include "rules.h"

static volatile sig_atomic_t stop_requested, reload_requested;

static void on_signal(int sig)
{
  if (sig == SIGHUP)
    reload_requested = 1;
  else
    stop_requested = 1;
}

typedef struct tick_slot {
  core_instance *ci;
  volatile int pending; /* a tick is queued; don't queue another */
} tick_slot;

static void tick_done(void *ud, int status, const char *reason)
{
  (void)status;
  (void)reason;
  tick_slot *s = ud;
  __atomic_store_n(&s->pending, 0, __ATOMIC_RELEASE);
}

/* The writer job storing every instance's health record at start, so
 * `plugins list` in another process sees open failures. */
static int save_status_job(void *arg, core_host *h, MDB_txn *txn,
                           core_overlay *ov, core_err *err)
{
  (void)arg;
  (void)txn;
  (void)err;
  int st = TWIN_OK;
  for (size_t i = 0; !st && i < h->n_inst; i++)
    st = core_host_stage_status(h, &h->inst[i], ov);
  return st;
}

typedef struct status_save {
  int status;
} status_save;

static void status_saved(void *ud, int status, const char *reason)
{
  ((status_save *)ud)->status = status;
  if (status)
    core_log(TWIN_LEVEL_WARNING, NULL, NULL,
             "cannot record plugin status: %s", reason ? reason : "");
}

/* "ADDR:PORT", "[v6]:PORT" or ":PORT" (address from the config). */
static int parse_listen(const char *s, char *addr, size_t size, int *port)
{
  const char *colon = strrchr(s, ':');
  if (!colon)
    return -1;
  const char *a = s, *ae = colon;
  if (*a == '[') {
    a++;
    if (ae == a || ae[-1] != ']')
      return -1;
    ae--;
  }
  size_t n = (size_t)(ae - a);
  if (n >= size || memchr(a, '[', n) || memchr(a, ']', n))
    return -1;
  char *end;
  long p = strtol(colon + 1, &end, 10);
  if (!colon[1] || *end || p < 0 || p > 65535)
    return -1;
  memcpy(addr, a, n);
  addr[n] = 0;
  *port = (int)p;
  return 0;
}

int cli_serve(cli_opts *o)
{
  /* A malformed --listen is a usage error, found before anything starts. */
  char listen_buf[64] = "";
  int listen_port = 0;
  if (o->listen && parse_listen(o->listen, listen_buf, sizeof listen_buf,
                                &listen_port)) {
    cli_error("serve",
              "--listen '%s': expected ADDR:PORT such as 127.0.0.1:8080 or "
              "[::1]:8080 (port 0: any free port)",
              o->listen);
    return CLI_USAGE;
  }
  core_config *cfg;
  core_err err;
  if (core_config_load(cli_config_path(o), &cfg, &err)) {
    cli_error("config", "%s", err.msg);
    return CLI_FAIL;
  }
  /* One serve per data folder: a second would fight over ticks and feeds. */
  if (core_mkdirs(cfg->data_dir, &err)) {
    cli_error("serve", "%s", err.msg);
    core_config_free(cfg);
    return CLI_FAIL;
  }
  char *lockpath = core_path_join(cfg->data_dir, "serve.lock");
  int lock = open(lockpath, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
  if (lock < 0 || flock(lock, LOCK_EX | LOCK_NB)) {
    cli_error("serve", "another twinhost serve is already using %s",
              cfg->data_dir);
    free(lockpath);
    core_config_free(cfg);
    if (lock >= 0)
      close(lock);
    return CLI_FAIL;
  }
  free(lockpath);
  core_config_free(cfg);
  /* The lock file names the serve, so `twinhost script reload` can find it. */
  char pid[32];
  int pidlen = snprintf(pid, sizeof pid, "%ld\n", (long)getpid());
  if (ftruncate(lock, 0) || pwrite(lock, pid, (size_t)pidlen, 0) != pidlen)
    core_log(TWIN_LEVEL_WARNING, NULL, NULL,
             "cannot write the pid into serve.lock; `twinhost script "
             "reload` will not find this serve");

  core_host *h;
  if (core_host_open(cli_config_path(o), CORE_HOST_INSTANCES, &h, &err)) {
    cli_error("config", "%s", err.msg);
    close(lock);
    return CLI_FAIL;
  }
  core_pipeline *p;
  if (core_pipeline_start(h, &p, &err)) {
    cli_error("serve", "%s", err.msg);
    core_host_close(h);
    close(lock);
    return CLI_FAIL;
  }
  /* Through the writer, the one writer of the store once it runs. */
  status_save save = {0};
  if (core_pipeline_submit_fn(p, save_status_job, NULL, status_saved,
                              &save) == TWIN_OK)
    core_pipeline_drain(p);
  struct sigaction sa;
  memset(&sa, 0, sizeof sa);
  sa.sa_handler = on_signal;
  sigaction(SIGINT, &sa, NULL);
  sigaction(SIGTERM, &sa, NULL);
  sigaction(SIGHUP, &sa, NULL);
  core_rules *rules = core_rules_start(h, p);
  signal(SIGPIPE, SIG_IGN);

  core_http_config hc = h->cfg->http;
  if (o->listen) {
    hc.port = listen_port;
    if (listen_buf[0])
      hc.listen = listen_buf;
  }
  core_http *api;
  if (core_http_start(h, p, &hc, &api, &err)) {
    cli_error("serve", "%s", err.msg);
    core_pipeline_stop(p);
    core_rules_stop(rules);
    core_host_close(h);
    close(lock);
    return CLI_FAIL;
  }

  core_fetch *fetch;
  if (core_fetch_start(h, &fetch, &err)) {
    cli_error("serve", "%s", err.msg);
    core_http_stop(api);
    core_pipeline_stop(p);
    core_rules_stop(rules);
    core_host_close(h);
    close(lock);
    return CLI_FAIL;
  }

  tick_slot *slots = calloc(h->n_inst ? h->n_inst : 1, sizeof *slots);
  if (!slots) {
    cli_error("serve", "out of memory");
    core_fetch_stop(fetch);
    core_http_stop(api);
    core_pipeline_stop(p);
    core_rules_stop(rules);
    core_host_close(h);
    close(lock);
    return CLI_FAIL;
  }
  size_t running = 0;
  for (size_t i = 0; i < h->n_inst; i++) {
    slots[i].ci = &h->inst[i];
    running += h->inst[i].state != CORE_INSTANCE_DISABLED;
  }
  char *shown_dir = realpath(h->cfg->data_dir, NULL);
  fprintf(stderr,
          "twinhost: serving %zu town%s from %s: %zu plugin "
          "instance%s running, %zu disabled, %zu plugin file%s "
          "refused\n",
          h->cfg->n_towns, h->cfg->n_towns == 1 ? "" : "s",
          shown_dir ? shown_dir : h->cfg->data_dir, running,
          running == 1 ? "" : "s", h->n_inst - running, h->n_refused,
          h->n_refused == 1 ? "" : "s");
  for (size_t i = 0; i < h->cfg->n_towns; i++) {
    const core_town *t = &h->cfg->towns[i];
    fprintf(stderr, "twinhost:   %s (%s, %s):", t->id, t->name, t->timezone);
    for (size_t j = 0; j < h->n_inst; j++)
      if (h->inst[j].town == t)
        fprintf(stderr, " %s[%s]", h->inst[j].plugin->desc.name,
                core_instance_state_name(h->inst[j].state));
    fprintf(stderr, "; rules %s\n",
            core_host_script(h, t) ? "loaded"
            : h->script_error[i]   ? "NOT loaded (see above)"
                                   : "none");
  }
  free(shown_dir);
  const char *shown_addr = hc.listen ? hc.listen : "127.0.0.1";
  int v6 = strchr(shown_addr, ':') != NULL;
  fprintf(stderr, "twinhost: API on http://%s%s%s:%u/v1 (docs/api.md)\n",
          v6 ? "[" : "", shown_addr, v6 ? "]" : "",
          (unsigned)core_http_port(api));
  fprintf(stderr, "twinhost: press Ctrl-C to stop\n");

  while (!stop_requested) {
    twin_time now = core_now_ms();
    if (reload_requested) {
      reload_requested = 0;
      if (rules)
        core_rules_reload(rules);
    }
    if (rules)
      core_rules_poll(rules, now);
    core_fetch_poll(fetch, now);
    for (size_t i = 0; i < h->n_inst; i++) {
      tick_slot *s = &slots[i];
      core_instance *ci = s->ci;
      if (!ci->tick_s || !ci->plugin->desc.tick ||
          __atomic_load_n(&s->pending, __ATOMIC_ACQUIRE))
        continue;
      pthread_mutex_lock(&h->lock);
      int due = ci->state != CORE_INSTANCE_DISABLED && now >= ci->next_tick;
      pthread_mutex_unlock(&h->lock);
      if (!due)
        continue;
      s->pending = 1;
      if (core_pipeline_submit_tick(p, ci, tick_done, s))
        s->pending = 0;
    }
    struct timespec ts = {0, 100 * 1000 * 1000};
    nanosleep(&ts, NULL);
  }
  fprintf(stderr, "twinhost: stopping: finishing requests in flight\n");
  core_http_stop(api);
  core_fetch_stop(fetch); /* before the writer: a fetch may be submitting */
  fprintf(stderr, "twinhost: stopping: committing accepted work\n");
  if (rules) /* a last status record, then the writer finishes */
    core_rules_store_status(rules);
  core_pipeline_stop(p);
  core_rules_stop(rules);
  free(slots);
  core_host_close(h);
  close(lock);
  fprintf(stderr, "twinhost: stopped\n");
  return CLI_OK;
}
