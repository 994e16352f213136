/*
 * testutil.c — shared test helpers (see testutil.h).
 */
#include "testutil.h"

#include <curl/curl.h>
#include <jansson.h>

#include "util.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

char *tu_tempdir(void)
{
  char *dir = core_temp_dir("twintest");
  if (!dir)
    fail_msg("cannot make a temp folder: %s", strerror(errno));
  return dir;
}

void tu_rmtree(const char *path)
{
  if (!path || !*path || !strcmp(path, "/"))
    return;
  char *cmd = tu_fmt("rm -rf '%s'", path);
  if (system(cmd) != 0)
    fprintf(stderr, "tu_rmtree: %s failed\n", cmd);
  free(cmd);
}

char *tu_write_file(const char *dir, const char *name, const char *text)
{
  char *path = tu_fmt("%s/%s", dir, name);
  FILE *f = fopen(path, "wb");
  if (!f)
    fail_msg("cannot write %s: %s", path, strerror(errno));
  fputs(text, f);
  fclose(f);
  return path;
}

char *tu_vfmt(const char *fmt, va_list ap)
{
  va_list ap2;
  va_copy(ap2, ap);
  int n = vsnprintf(NULL, 0, fmt, ap);
  char *s = n >= 0 ? malloc((size_t)n + 1) : NULL;
  if (s)
    vsnprintf(s, (size_t)n + 1, fmt, ap2);
  va_end(ap2);
  if (!s)
    fail_msg("out of memory");
  return s;
}

char *tu_fmt(const char *fmt, ...)
{
  va_list ap;
  va_start(ap, fmt);
  char *s = tu_vfmt(fmt, ap);
  va_end(ap);
  return s;
}

void tu_assert_contains(const char *text, const char *want)
{
  if (!text || !strstr(text, want))
    fail_msg("\"%s\"\n  lacks \"%s\"", text ? text : "(null)", want);
}

const char *tu_env(const char *name)
{
  const char *v = getenv(name);
  if (!v || !*v)
    fail_msg("environment variable %s is not set (run the tests via ctest)",
             name);
  return v;
}

static void append(char **buf, size_t *len, size_t *cap, const char *data,
                   size_t n)
{
  if (*len + n + 1 > *cap) {
    while (*len + n + 1 > *cap)
      *cap = *cap ? *cap * 2 : 4096;
    *buf = realloc(*buf, *cap);
  }
  memcpy(*buf + *len, data, n);
  *len += n;
  (*buf)[*len] = 0;
}

void tu_child_dies_with_parent(void)
{
  pid_t parent = getppid();
  if (prctl(PR_SET_PDEATHSIG, SIGKILL) || getppid() != parent)
    _exit(126); /* the parent is already gone */
}

tu_run tu_twinhost_argv(const char *stdin_text, const char *const *argv)
{
  int in[2], out[2], err[2];
  if (pipe(in) || pipe(out) || pipe(err))
    fail_msg("pipe: %s", strerror(errno));
  pid_t pid = fork();
  if (pid == 0) {
    tu_child_dies_with_parent();
    dup2(in[0], 0);
    dup2(out[1], 1);
    dup2(err[1], 2);
    close(in[1]);
    close(out[0]);
    close(err[0]);
    size_t n = 0;
    while (argv[n])
      n++;
    const char **av = calloc(n + 2, sizeof *av);
    av[0] = tu_env("TWIN_BIN");
    for (size_t i = 0; i < n; i++)
      av[i + 1] = argv[i];
    execv(av[0], (char *const *)av);
    _exit(127);
  }
  close(in[0]);
  close(out[1]);
  close(err[1]);
  tu_run r = {0};
  size_t olen = 0, ocap = 0, elen = 0, ecap = 0;
  append(&r.out, &olen, &ocap, "", 0);
  append(&r.err, &elen, &ecap, "", 0);
  const char *inp = stdin_text ? stdin_text : "";
  size_t inleft = strlen(inp);
  if (!inleft) {
    close(in[1]);
    in[1] = -1;
  } else {
    fcntl(in[1], F_SETFL, O_NONBLOCK);
  }
  int open_fds = 2;
  while (open_fds > 0 || in[1] >= 0) {
    struct pollfd p[3] = {
        {out[0], POLLIN, 0}, {err[0], POLLIN, 0}, {in[1], POLLOUT, 0}};
    if (poll(p, 3, -1) < 0 && errno != EINTR)
      break;
    char buf[65536];
    for (int i = 0; i < 2; i++) {
      if (p[i].fd < 0 || !(p[i].revents & (POLLIN | POLLHUP | POLLERR)))
        continue;
      ssize_t n = read(p[i].fd, buf, sizeof buf);
      if (n <= 0) {
        close(p[i].fd);
        if (i == 0)
          out[0] = -1;
        else
          err[0] = -1;
        open_fds--;
      } else if (i == 0) {
        append(&r.out, &olen, &ocap, buf, (size_t)n);
      } else {
        append(&r.err, &elen, &ecap, buf, (size_t)n);
      }
    }
    if (in[1] >= 0 && (p[2].revents & (POLLOUT | POLLERR | POLLHUP))) {
      ssize_t n = write(in[1], inp, inleft);
      if (n > 0) {
        inp += n;
        inleft -= (size_t)n;
      }
      if (n < 0 && errno != EAGAIN)
        inleft = 0;
      if (!inleft) {
        close(in[1]);
        in[1] = -1;
      }
    }
  }
  int status = 0;
  waitpid(pid, &status, 0);
  r.exit_code =
      WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
  return r;
}

tu_run tu_twinhost(const char *stdin_text, const char *arg, ...)
{
  const char *argv[64];
  size_t n = 0;
  va_list ap;
  va_start(ap, arg);
  for (const char *a = arg; a && n < 63; a = va_arg(ap, const char *))
    argv[n++] = a;
  va_end(ap);
  argv[n] = NULL;
  return tu_twinhost_argv(stdin_text, argv);
}

void tu_run_free(tu_run *r)
{
  free(r->out);
  free(r->err);
  r->out = r->err = NULL;
}

char *tu_read_file(const char *path)
{
  FILE *f = fopen(path, "rb");
  if (!f)
    return NULL;
  char *buf = NULL;
  size_t len = 0, cap = 0;
  char chunk[8192];
  size_t n;
  append(&buf, &len, &cap, "", 0);
  while ((n = fread(chunk, 1, sizeof chunk, f)) > 0)
    append(&buf, &len, &cap, chunk, n);
  fclose(f);
  return buf;
}

char *tu_doc_block(const char *doc, const char *lang, const char *needle)
{
  char *path = tu_fmt("%s/%s", tu_env("TWIN_SOURCE_DIR"), doc);
  char *page = tu_read_file(path);
  if (!page)
    fail_msg("cannot read %s: %s", path, strerror(errno));
  char *fence = tu_fmt("```%s\n", lang);
  char *block = NULL;
  for (const char *at = page; !block && (at = strstr(at, fence));) {
    const char *start = at + strlen(fence);
    const char *end = strstr(start, "\n```");
    if (!end)
      break;
    end++; /* the block's last newline is part of it */
    if (at == page || at[-1] == '\n') {
      char *text = strndup(start, (size_t)(end - start));
      if (strstr(text, needle))
        block = text;
      else
        free(text);
    }
    at = end + 3;
  }
  if (!block)
    fail_msg("%s has no ```%s block containing \"%s\"", path, lang, needle);
  free(fence);
  free(page);
  free(path);
  return block;
}

void tu_utc_zoneinfo(const char *dir)
{
  char *zoneinfo = tu_fmt("%s/zoneinfo", dir);
  assert_int_equal(mkdir(zoneinfo, 0755), 0);
  free(tu_write_file(zoneinfo, "UTC", "TZif2 fake zone"));
  setenv("TZDIR", zoneinfo, 1);
  free(zoneinfo);
}

int tu_listen_loopback(int backlog, int *port)
{
  struct sockaddr_in a;
  socklen_t len = sizeof a;
  memset(&a, 0, sizeof a);
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  if (fd < 0 || bind(fd, (struct sockaddr *)&a, sizeof a) ||
      listen(fd, backlog) || getsockname(fd, (struct sockaddr *)&a, &len))
    fail_msg("cannot listen on 127.0.0.1: %s", strerror(errno));
  *port = ntohs(a.sin_port);
  return fd;
}

int tu_connect_loopback(int port)
{
  struct sockaddr_in a;
  memset(&a, 0, sizeof a);
  a.sin_family = AF_INET;
  a.sin_port = htons((uint16_t)port);
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  if (fd >= 0 && connect(fd, (struct sockaddr *)&a, sizeof a)) {
    close(fd);
    fd = -1;
  }
  return fd;
}

long long tu_mono_ms(void)
{
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

void tu_sleep_ms(long ms)
{
  struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
  while (nanosleep(&ts, &ts) && errno == EINTR)
    ;
}

#define SERVER_START_MS 20000
#define SERVER_STOP_MS 60000

void tu_server_start(tu_server *s, const char *config, const char *log_path)
{
  const char *bin = tu_env("TWIN_BIN");
  s->pid = -1;
  s->port = 0;
  s->log = log_path;
  int fd = open(log_path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0)
    fail_msg("cannot write %s: %s", log_path, strerror(errno));
  pid_t pid = fork();
  if (pid < 0)
    fail_msg("fork: %s", strerror(errno));
  if (pid == 0) {
    tu_child_dies_with_parent();
    int null = open("/dev/null", O_RDWR);
    dup2(null, 0);
    dup2(null, 1);
    dup2(fd, 2);
    execl(bin, bin, "--config", config, "serve", "--listen", "127.0.0.1:0",
          (char *)NULL);
    _exit(127);
  }
  close(fd);
  s->pid = pid;
  static const char banner[] = "API on http://127.0.0.1:";
  for (long long deadline = tu_mono_ms() + SERVER_START_MS;;) {
    char *log = tu_read_file(log_path);
    const char *at = log ? strstr(log, banner) : NULL;
    if (at && strchr(at, '\n')) {
      s->port = atoi(at + strlen(banner));
      free(log);
      if (s->port <= 0 || s->port > 65535)
        fail_msg("the serve banner names no port");
      return;
    }
    int status;
    int gone = waitpid(pid, &status, WNOHANG) == pid;
    if (gone || tu_mono_ms() > deadline) {
      if (!gone) {
        kill(pid, SIGKILL);
        waitpid(pid, NULL, 0);
      }
      s->pid = -1;
      fail_msg("twinhost serve %s before saying \"%s...\"; its stderr:\n%s",
               gone ? "exited" : "took over 20 s", banner, log ? log : "");
    }
    free(log);
    tu_sleep_ms(20);
  }
}

int tu_server_stop(tu_server *s, int sig)
{
  int rc = -1;
  if (s->pid > 0) {
    kill(s->pid, sig);
    int status = 0;
    long long deadline = tu_mono_ms() + SERVER_STOP_MS;
    pid_t got;
    while ((got = waitpid(s->pid, &status, WNOHANG)) == 0 &&
           tu_mono_ms() < deadline)
      tu_sleep_ms(10);
    if (got == s->pid) {
      rc = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
    } else {
      kill(s->pid, SIGKILL);
      waitpid(s->pid, NULL, 0);
    }
  }
  s->pid = -1;
  return rc;
}

/* ---- HTTP ----------------------------------------------------------------- */

static size_t http_collect(char *data, size_t size, size_t n, void *ud)
{
  tu_http_resp *r = ud;
  size_t add = size * n;
  char *p = realloc(r->body, r->len + add + 1);
  if (!p)
    return 0;
  memcpy(p + r->len, data, add);
  r->body = p;
  r->len += add;
  r->body[r->len] = 0;
  return add;
}

tu_http_resp tu_http(const char *method, const char *url, const char *token,
                     const char *content_type, const char *body, size_t len)
{
  tu_http_resp r = {0};
  CURL *c = curl_easy_init();
  if (!c)
    fail_msg("curl_easy_init failed");
  struct curl_slist *hdr = NULL;
  char line[512];
  if (token) {
    snprintf(line, sizeof line, "Authorization: Bearer %s", token);
    hdr = curl_slist_append(hdr, line);
  }
  if (content_type) {
    snprintf(line, sizeof line, "Content-Type: %s", content_type);
    hdr = curl_slist_append(hdr, line);
  }
  curl_easy_setopt(c, CURLOPT_URL, url);
  curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, method);
  curl_easy_setopt(c, CURLOPT_HTTPHEADER, hdr);
  curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, http_collect);
  curl_easy_setopt(c, CURLOPT_WRITEDATA, &r);
  curl_easy_setopt(c, CURLOPT_TIMEOUT, 60L);
  curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
  if (body) {
    curl_easy_setopt(c, CURLOPT_POSTFIELDS, body);
    curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE, (long)len);
  }
  CURLcode rc = curl_easy_perform(c);
  if (rc)
    fail_msg("%s %s: %s", method, url, curl_easy_strerror(rc));
  curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &r.status);
  char *ct = NULL;
  curl_easy_getinfo(c, CURLINFO_CONTENT_TYPE, &ct);
  snprintf(r.content_type, sizeof r.content_type, "%s", ct ? ct : "");
  if (!r.body)
    r.body = calloc(1, 1);
  r.json = json_loadb(r.body, r.len, JSON_DECODE_ANY, NULL);
  curl_slist_free_all(hdr);
  curl_easy_cleanup(c);
  return r;
}

void tu_http_free(tu_http_resp *r)
{
  free(r->body);
  json_decref(r->json);
  memset(r, 0, sizeof *r);
}
