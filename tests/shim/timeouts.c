/* poll/ppoll/select/pselect/epoll_wait timeouts and SO_RCVTIMEO/SO_SNDTIMEO, each checked on
 * several threads at once (so under greenrun several fibers time out concurrently). */
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <sys/epoll.h>
#include <sys/select.h>
#include <sys/socket.h>

#include "shim_test.h"

#define T 100 /* ms */

static void check_elapsed(double t0, const char* what) {
  double ms = now_ms() - t0;
  if (ms < T - 2 || ms > T * 20) {
    fprintf(stderr, "%s: took %.1f ms, expected about %d\n", what, ms, T);
    exit(1);
  }
}

static void* run(void* arg) {
  (void)arg;
  int p[2], sv[2];
  CHECK(pipe(p) == 0);
  CHECK(socketpair(AF_UNIX, SOCK_STREAM, 0, sv) == 0);
  char c;
  double t0;

  struct pollfd pf[2] = {{p[0], POLLIN, 0}, {sv[0], POLLIN, 0}};
  t0 = now_ms();
  errno = 1234;
  CHECK(poll(pf, 2, T) == 0);
  CHECK(errno == 1234);
  check_elapsed(t0, "poll two fds");
  t0 = now_ms();
  CHECK(poll(pf, 1, T) == 0);
  check_elapsed(t0, "poll one fd");
  t0 = now_ms();
  CHECK(poll(NULL, 0, T) == 0);
  check_elapsed(t0, "poll no fd");
  struct timespec ts = {0, T * 1000000L};
  t0 = now_ms();
  CHECK(ppoll(pf, 2, &ts, NULL) == 0);
  check_elapsed(t0, "ppoll");

  fd_set r;
  FD_ZERO(&r);
  FD_SET(p[0], &r);
  FD_SET(sv[0], &r);
  struct timeval tv = {0, T * 1000};
  t0 = now_ms();
  CHECK(select(sv[0] > p[0] ? sv[0] + 1 : p[0] + 1, &r, NULL, NULL, &tv) == 0);
  check_elapsed(t0, "select");
  CHECK(!FD_ISSET(p[0], &r) && !FD_ISSET(sv[0], &r));
  FD_ZERO(&r);
  FD_SET(p[0], &r);
  t0 = now_ms();
  CHECK(pselect(p[0] + 1, &r, NULL, NULL, &ts, NULL) == 0);
  check_elapsed(t0, "pselect");

  int ep = epoll_create1(0);
  CHECK(ep >= 0);
  struct epoll_event ev = {.events = EPOLLIN, .data.fd = p[0]};
  CHECK(epoll_ctl(ep, EPOLL_CTL_ADD, p[0], &ev) == 0);
  t0 = now_ms();
  CHECK(epoll_wait(ep, &ev, 1, T) == 0);
  check_elapsed(t0, "epoll_wait");

  /* readiness is reported: data arrives -> poll/select/epoll say so */
  CHECK(write(p[1], "x", 1) == 1);
  CHECK(poll(pf, 2, 5000) == 1 && (pf[0].revents & POLLIN));
  CHECK(epoll_wait(ep, &ev, 1, 5000) == 1 && ev.data.fd == p[0]);
  CHECK(read(p[0], &c, 1) == 1);
  close(ep);

  struct timeval rt = {0, T * 1000};
  CHECK(setsockopt(sv[0], SOL_SOCKET, SO_RCVTIMEO, &rt, sizeof rt) == 0);
  struct timeval back;
  socklen_t bl = sizeof back;
  CHECK(getsockopt(sv[0], SOL_SOCKET, SO_RCVTIMEO, &back, &bl) == 0 && back.tv_usec > 0);
  t0 = now_ms();
  CHECK(recv(sv[0], &c, 1, 0) == -1 && (errno == EAGAIN || errno == EWOULDBLOCK));
  check_elapsed(t0, "SO_RCVTIMEO recv");
  t0 = now_ms();
  CHECK(read(sv[0], &c, 1) == -1 && errno == EAGAIN);
  check_elapsed(t0, "SO_RCVTIMEO read");

  /* SO_SNDTIMEO: fill the socket, then a write times out (after partial progress or not) */
  CHECK(setsockopt(sv[1], SOL_SOCKET, SO_SNDTIMEO, &rt, sizeof rt) == 0);
  static __thread char big[1 << 16];
  t0 = now_ms();
  ssize_t total = 0;
  for (;;) {
    ssize_t n = write(sv[1], big, sizeof big);
    if (n < 0) {
      CHECK(errno == EAGAIN);
      break;
    }
    total += n;
    if (n < (ssize_t)sizeof big) break;  /* partial: the timeout ended the write */
    CHECK(total < (1 << 26));
  }
  CHECK(now_ms() - t0 >= T - 2);
  close(p[0]);
  close(p[1]);
  close(sv[0]);
  close(sv[1]);
  return NULL;
}

int main(void) {
  time_limit(60);
  pthread_t t[8];
  for (int i = 0; i < 8; ++i) CHECK(pthread_create(&t[i], NULL, run, NULL) == 0);
  run(NULL);
  for (int i = 0; i < 8; ++i) CHECK(pthread_join(t[i], NULL) == 0);
  puts("timeouts: ok");
  return 0;
}
