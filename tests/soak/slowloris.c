/*
 * slowloris.c — the soak's slow client (tests/soak/run builds and runs it):
 * keeps N connections to 127.0.0.1:PORT from source address SRC, each
 * sending the start of a request and then one header byte every EVERY
 * seconds, for SECONDS; a connection the server answers or closes is
 * counted by what it heard and opened again a second later, as an
 * attacker would.
 *
 *   slowloris PORT SRC N EVERY SECONDS
 *
 * Prints one line: opened, answered 429, answered 408, other answers,
 * closed without an answer, still open at the end.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

static const char start[] = "GET /healthz HTTP/1.1\r\nHost: soak\r\nX-Slow: ";

static long long now_ms(void)
{
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int dial(int port, const char *src)
{
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  if (fd < 0)
    return -1;
  struct sockaddr_in b = {0}, a = {0};
  b.sin_family = AF_INET;
  inet_pton(AF_INET, src, &b.sin_addr);
  a.sin_family = AF_INET;
  a.sin_port = htons((unsigned short)port);
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (bind(fd, (struct sockaddr *)&b, sizeof b) ||
      connect(fd, (struct sockaddr *)&a, sizeof a) ||
      send(fd, start, sizeof start - 1, MSG_NOSIGNAL) < 0) {
    close(fd);
    return -1;
  }
  return fd;
}

int main(int argc, char **argv)
{
  if (argc != 6) {
    fprintf(stderr, "usage: slowloris PORT SRC N EVERY SECONDS\n");
    return 2;
  }
  signal(SIGPIPE, SIG_IGN);
  int port = atoi(argv[1]), n = atoi(argv[3]);
  const char *src = argv[2];
  long long every = atoll(argv[4]) * 1000,
            end = now_ms() + atoll(argv[5]) * 1000;
  int *fd = calloc((size_t)n, sizeof *fd);
  long long *next = calloc((size_t)n, sizeof *next);
  struct pollfd *p = calloc((size_t)n, sizeof *p);
  long opened = 0, a429 = 0, a408 = 0, other = 0, silent = 0;
  if (!fd || !next || !p)
    return 1;
  for (int i = 0; i < n; i++)
    fd[i] = -1;
  while (now_ms() < end) {
    long long t = now_ms();
    for (int i = 0; i < n; i++) {
      if (fd[i] < 0 && t >= next[i] && (fd[i] = dial(port, src)) >= 0) {
        opened++;
        next[i] = t + every;
      }
      if (fd[i] >= 0 && t >= next[i]) {
        if (send(fd[i], "a", 1, MSG_NOSIGNAL) < 0) {
          close(fd[i]);
          fd[i] = -1;
          next[i] = t + 1000;
          silent++;
          continue;
        }
        next[i] = t + every;
      }
      p[i] = (struct pollfd){fd[i], POLLIN, 0};
    }
    if (poll(p, (nfds_t)n, 100) <= 0)
      continue;
    for (int i = 0; i < n; i++) {
      if (fd[i] < 0 || !p[i].revents)
        continue;
      char buf[2048];
      ssize_t k = recv(fd[i], buf, sizeof buf - 1, 0);
      if (k > 12 && !strncmp(buf, "HTTP/1.", 7)) {
        int status = atoi(buf + 9);
        a429 += status == 429;
        a408 += status == 408;
        other += status != 429 && status != 408;
      } else {
        silent++;
      }
      close(fd[i]);
      fd[i] = -1;
      next[i] = now_ms() + 1000;
    }
  }
  int open = 0;
  for (int i = 0; i < n; i++)
    if (fd[i] >= 0) {
      open++;
      close(fd[i]);
    }
  printf("opened %ld, answered 429 %ld, answered 408 %ld, other answers %ld, "
         "closed without an answer %ld, still open at the end %d\n",
         opened, a429, a408, other, silent, open);
  return 0;
}
