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

#include "server_args.h"

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

int main(int argc, char** argv) {
  ServerArgs args = {"127.0.0.1", 0, NULL, NULL};
  server_parse_args(argc, argv, &args);
  signal(SIGPIPE, SIG_IGN);

  int lfd = server_listen(&args);
  int one = 1; /* for TCP_NODELAY on each connection */

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
