/* echo_threads.c: the classic thread-per-connection echo server, in plain C.
 *
 * What it demonstrates: the simplest concurrent server there is. One OS thread per
 * connection, blocking read()/write(), no green headers. Each connection costs a kernel
 * thread (a stack of `ulimit -s`, default 8 MiB virtual, plus scheduler state), which is what
 * limits this style at 10,000 connections. The very same binary, unmodified, is what the demo
 * runs under `greenrun` (the LD_PRELOAD shim), where pthread_create makes a fiber and the
 * blocking calls park the fiber instead of the thread.
 *
 * Protocol: every byte received is sent back. Flags: --port N (0 picks a free port),
 * --host ADDR (default 127.0.0.1). The first line on stdout is "listening on PORT".
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

static void* serve(void* arg) {
  int fd = (int)(intptr_t)arg;
  char buf[16384];
  for (;;) {
    ssize_t n = read(fd, buf, sizeof buf);
    if (n == 0) break;
    if (n < 0) {
      if (errno == EINTR) continue;
      break;
    }
    ssize_t off = 0;
    while (off < n) {
      ssize_t w = write(fd, buf + off, (size_t)(n - off));
      if (w < 0) {
        if (errno == EINTR) continue;
        goto done;
      }
      off += w;
    }
  }
done:
  close(fd);
  return NULL;
}

static void usage(const char* argv0) {
  fprintf(stderr, "usage: %s [--port N] [--host 127.0.0.1]\n", argv0);
  exit(2);
}

int main(int argc, char** argv) {
  const char* host = "127.0.0.1";
  int port = 0;
  for (int i = 1; i < argc; i++) {
    if (!strcmp(argv[i], "--port") && i + 1 < argc) {
      port = atoi(argv[++i]);
    } else if (!strcmp(argv[i], "--host") && i + 1 < argc) {
      host = argv[++i];
    } else {
      usage(argv[0]);
    }
  }
  signal(SIGPIPE, SIG_IGN);

  int lfd = socket(AF_INET, SOCK_STREAM, 0);
  if (lfd < 0) {
    perror("socket");
    return 1;
  }
  int one = 1;
  setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  struct sockaddr_in sa;
  memset(&sa, 0, sizeof sa);
  sa.sin_family = AF_INET;
  sa.sin_port = htons((uint16_t)port);
  if (inet_pton(AF_INET, host, &sa.sin_addr) != 1) {
    fprintf(stderr, "bad --host %s (IPv4 dotted quad expected)\n", host);
    return 2;
  }
  if (bind(lfd, (struct sockaddr*)&sa, sizeof sa) < 0 || listen(lfd, 4096) < 0) {
    perror("bind/listen");
    return 1;
  }
  socklen_t len = sizeof sa;
  getsockname(lfd, (struct sockaddr*)&sa, &len);
  printf("listening on %d\n", ntohs(sa.sin_port));
  fflush(stdout);

  pthread_attr_t attr;
  pthread_attr_init(&attr);
  pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
  int warned = 0;
  for (;;) {
    int fd = accept(lfd, NULL, NULL);
    if (fd < 0) {
      if (errno == EINTR || errno == ECONNABORTED) continue;
      if (errno == EMFILE || errno == ENFILE) {
        if (!warned++) perror("accept (raise ulimit -n)");
        usleep(1000);
        continue;
      }
      perror("accept");
      return 1;
    }
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    pthread_t t;
    int rc = pthread_create(&t, &attr, serve, (void*)(intptr_t)fd);
    if (rc != 0) {
      /* The thread limit of this style: report it once, drop the connection. */
      if (!warned++) fprintf(stderr, "pthread_create: %s (connection dropped)\n", strerror(rc));
      close(fd);
    }
  }
}
