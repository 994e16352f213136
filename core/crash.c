/*
 * crash.c — the crash line (see crash.h): a thread-local stack of the
 * plugin calls running, and a fatal-signal handler that writes the
 * innermost one to stderr with write(2), then puts back the handler that
 * was there before (the default action, or a sanitizer's) and lets the
 * signal end the process as it would have: a core dump or the service
 * manager's restart still happens.
 */
#include "crash.h"

#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static __thread core_call_mark *current;

static const int fatal[] = {SIGSEGV, SIGBUS, SIGFPE, SIGILL, SIGABRT};
#define N_FATAL (sizeof fatal / sizeof fatal[0])
static struct sigaction before[N_FATAL];

void core_call_enter(core_call_mark *m, const char *town, const char *plugin,
                     const char *callback)
{
  m->town = town;
  m->plugin = plugin;
  m->callback = callback;
  m->prev = current;
  current = m;
}

void core_call_leave(core_call_mark *m)
{
  current = m->prev;
}

/* Append s to buf (size bytes, *n used), async-signal-safe. */
static void put(char *buf, size_t size, size_t *n, const char *s)
{
  while (s && *s && *n + 1 < size)
    buf[(*n)++] = *s++;
}

static const char *sig_name(int sig)
{
  switch (sig) {
  case SIGSEGV:
    return "SIGSEGV (a bad memory access)";
  case SIGBUS:
    return "SIGBUS (a bad memory access)";
  case SIGFPE:
    return "SIGFPE (an arithmetic error)";
  case SIGILL:
    return "SIGILL (an illegal instruction)";
  case SIGABRT:
    return "SIGABRT (abort)";
  default:
    return "a fatal signal";
  }
}

static void on_fatal(int sig)
{
  char buf[1024];
  size_t n = 0;
  const core_call_mark *m = current;
  put(buf, sizeof buf, &n, "twinhost: [crash] ");
  put(buf, sizeof buf, &n, sig_name(sig));
  if (m) {
    put(buf, sizeof buf, &n, " in town '");
    put(buf, sizeof buf, &n, m->town);
    put(buf, sizeof buf, &n, "', plugin '");
    put(buf, sizeof buf, &n, m->plugin);
    put(buf, sizeof buf, &n, "', callback ");
    put(buf, sizeof buf, &n, m->callback);
    put(buf, sizeof buf, &n,
        ". Plugins run inside the host's process, so this plugin ended the "
        "host for every town. Disable it for the town (\"enabled\": false "
        "next to its config in town.json), restart, and report the crash "
        "to the plugin's author.\n");
  } else {
    put(buf, sizeof buf, &n,
        " outside any plugin call: this is a fault of twinhost itself; "
        "please report it with this log.\n");
  }
  ssize_t w = write(2, buf, n);
  (void)w;
  /* Back to what was there; the faulting instruction runs again on return
   * (or the raised signal is delivered then) and ends the process. */
  for (size_t i = 0; i < N_FATAL; i++)
    if (fatal[i] == sig)
      sigaction(sig, &before[i], NULL);
  raise(sig);
}

static pthread_key_t stack_key;
static pthread_once_t once = PTHREAD_ONCE_INIT;

static void free_stack(void *p)
{
  stack_t none = {.ss_flags = SS_DISABLE};
  sigaltstack(&none, NULL);
  free(p);
}

static void make_key(void)
{
  pthread_key_create(&stack_key, free_stack);
}

void core_crash_thread(void)
{
  pthread_once(&once, make_key);
  if (pthread_getspecific(stack_key))
    return;
  size_t size = 64 * 1024;
  void *mem = malloc(size);
  if (!mem)
    return; /* no alternate stack: a stack overflow dies without a line */
  stack_t ss = {.ss_sp = mem, .ss_size = size, .ss_flags = 0};
  if (sigaltstack(&ss, NULL)) {
    free(mem);
    return;
  }
  pthread_setspecific(stack_key, mem);
}

void core_crash_install(void)
{
  static int installed;
  core_crash_thread();
  if (installed)
    return;
  installed = 1;
  struct sigaction sa;
  memset(&sa, 0, sizeof sa);
  sa.sa_handler = on_fatal;
  sa.sa_flags = SA_ONSTACK;
  sigemptyset(&sa.sa_mask);
  for (size_t i = 0; i < N_FATAL; i++)
    sigaction(fatal[i], &sa, &before[i]);
}
