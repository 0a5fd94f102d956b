/* http_threads.c: a small HTTP/1.1 server on OS threads (one thread per connection), the
 * baseline that http_server.cpp (the same server on fibers) is load-tested against with wrk.
 *
 * What it demonstrates: the thread-per-connection model with keep-alive. Each connection's
 * thread blocks in read() between requests, so an idle keep-alive client still holds a whole
 * OS thread. Request parsing and routing are shared with the fiber version (http_common.h).
 *
 * Flags: --port N (0 picks a free port), --host ADDR (default 127.0.0.1), --root DIR
 * (directory served under /static/, default "."). First stdout line: "listening on PORT".
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

#include "http_common.h"
#include "server_args.h"

static const char* g_root = ".";

static int write_all(int fd, const char* p, size_t n) {
  while (n > 0) {
    ssize_t w = write(fd, p, n);
    if (w < 0) {
      if (errno == EINTR) continue;
      return -1;
    }
    p += w;
    n -= (size_t)w;
  }
  return 0;
}

/* Sends the response; returns -1 if the connection broke. */
static int respond(int fd, HttpResponse* r) {
  char out[HTTP_MAX_HEAD];
  int rc = 0;
  if (r->send_body && r->body && r->head_len + r->body_len <= sizeof out) {
    memcpy(out, r->head, r->head_len); /* one write for head + small body */
    memcpy(out + r->head_len, r->body, r->body_len);
    return write_all(fd, out, r->head_len + r->body_len);
  }
  rc = write_all(fd, r->head, r->head_len);
  if (rc == 0 && r->send_body && r->body) rc = write_all(fd, r->body, r->body_len);
  if (r->file_fd >= 0) {
    size_t left = r->body_len;
    while (rc == 0 && left > 0) {
      ssize_t n = read(r->file_fd, out, left < sizeof out ? left : sizeof out);
      if (n <= 0) {
        rc = -1; /* the file shrank: the promised length cannot be kept */
        break;
      }
      rc = write_all(fd, out, (size_t)n);
      left -= (size_t)n;
    }
    close(r->file_fd);
  }
  return rc;
}

static void* serve(void* arg) {
  int fd = (int)(intptr_t)arg;
  char buf[HTTP_MAX_HEAD];
  size_t len = 0, skip = 0;
  for (;;) {
    HttpRequest req;
    int st = skip ? 0 : http_parse(buf, len, &req);
    if (st < 0) {
      write_all(fd, HTTP_BAD_REQUEST, sizeof HTTP_BAD_REQUEST - 1);
      break;
    }
    if (st == 0) {
      ssize_t n = read(fd, buf + len, sizeof buf - len);
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) break;
      len += (size_t)n;
      if (skip) { /* discard a request body */
        size_t d = skip < len ? skip : len;
        memmove(buf, buf + d, len - d);
        len -= d;
        skip -= d;
      }
      continue;
    }
    HttpResponse resp;
    http_route(&req, g_root, &resp);
    if (respond(fd, &resp) < 0 || !req.keep_alive) break;
    size_t used = req.head_len + req.content_length;
    if (used > len) {
      skip = used - len;
      used = len;
    }
    memmove(buf, buf + used, len - used);
    len -= used;
  }
  close(fd);
  return NULL;
}

int main(int argc, char** argv) {
  ServerArgs args = {"127.0.0.1", 0, "--root", g_root};
  server_parse_args(argc, argv, &args);
  g_root = args.extra_value;
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
      if (!warned++) fprintf(stderr, "pthread_create: %s (connection dropped)\n", strerror(rc));
      close(fd);
    }
  }
}
