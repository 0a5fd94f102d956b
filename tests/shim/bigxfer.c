/* Large transfers through small socket buffers: writes of up to 1 MiB on a blocking socket
 * and pipe must be written whole (the shim loops over the kernel's partial writes), reads come
 * in whatever pieces; checksums on both sides must agree. write, writev, send and sendmsg. */
#include <pthread.h>
#include <stdint.h>
#include <sys/socket.h>
#include <sys/uio.h>

#include "shim_test.h"

#define TOTAL (48u << 20)

struct Side {
  int fd;
  int how;
  uint64_t sum;
};

static uint64_t mix(uint64_t h, const unsigned char* p, size_t n) {
  for (size_t i = 0; i < n; ++i) h = (h ^ p[i]) * 1099511628211ull;
  return h;
}

static void* writer(void* arg) {
  struct Side* s = arg;
  unsigned char* buf = malloc(1 << 20);
  unsigned seed = 12345;
  uint64_t h = 1469598103934665603ull;
  size_t sent = 0;
  while (sent < TOTAL) {
    size_t n = 1 + (size_t)(rand_r(&seed) % (1 << 20));
    if (n > TOTAL - sent) n = TOTAL - sent;
    for (size_t i = 0; i < n; ++i) buf[i] = (unsigned char)(sent + i * 7);
    ssize_t w;
    if (s->how == 0) {
      w = write(s->fd, buf, n);
    } else if (s->how == 1) {
      struct iovec v[3] = {{buf, n / 3}, {buf + n / 3, n / 3}, {buf + 2 * (n / 3), n - 2 * (n / 3)}};
      w = writev(s->fd, v, 3);
    } else if (s->how == 2) {
      w = send(s->fd, buf, n, 0);
    } else {
      struct iovec v[2] = {{buf, n / 2}, {buf + n / 2, n - n / 2}};
      struct msghdr m = {.msg_iov = v, .msg_iovlen = 2};
      w = sendmsg(s->fd, &m, 0);
    }
    CHECK(w == (ssize_t)n);  /* a blocking write writes everything */
    h = mix(h, buf, n);
    sent += n;
  }
  s->sum = h;
  CHECK(shutdown(s->fd, SHUT_WR) == 0 || close(s->fd) == 0);
  free(buf);
  return NULL;
}

static void* reader(void* arg) {
  struct Side* s = arg;
  unsigned char buf[7919];
  unsigned seed = 777;
  uint64_t h = 1469598103934665603ull;
  size_t got = 0;
  for (;;) {
    size_t want = 1 + (size_t)(rand_r(&seed) % sizeof buf);
    ssize_t n = read(s->fd, buf, want);
    CHECK(n >= 0);
    if (n == 0) break;
    h = mix(h, buf, (size_t)n);
    got += (size_t)n;
  }
  CHECK(got == TOTAL);
  s->sum = h;
  return NULL;
}

static void transfer(int rfd, int wfd, int how) {
  struct Side w = {wfd, how, 0}, r = {rfd, 0, 0};
  pthread_t tw, tr;
  CHECK(pthread_create(&tw, NULL, writer, &w) == 0);
  CHECK(pthread_create(&tr, NULL, reader, &r) == 0);
  CHECK(pthread_join(tw, NULL) == 0 && pthread_join(tr, NULL) == 0);
  CHECK(w.sum == r.sum);
}

int main(void) {
  time_limit(120);
  for (int how = 0; how < 4; ++how) {
    int sv[2];
    CHECK(socketpair(AF_UNIX, SOCK_STREAM, 0, sv) == 0);
    int small = 4096;
    setsockopt(sv[1], SOL_SOCKET, SO_SNDBUF, &small, sizeof small);
    setsockopt(sv[0], SOL_SOCKET, SO_RCVBUF, &small, sizeof small);
    transfer(sv[0], sv[1], how);
    close(sv[0]);
    close(sv[1]);
  }
  int p[2];
  CHECK(pipe(p) == 0);
  struct Side w = {p[1], 0, 0}, r = {p[0], 0, 0};
  pthread_t tw, tr;
  CHECK(pthread_create(&tw, NULL, writer, &w) == 0);
  CHECK(pthread_create(&tr, NULL, reader, &r) == 0);
  CHECK(pthread_join(tw, NULL) == 0 && pthread_join(tr, NULL) == 0);
  CHECK(w.sum == r.sum);
  close(p[0]);
  puts("bigxfer: ok");
  return 0;
}
