/* Programs that run event loops of their own on threads (issue 10 "done" criteria):
 *  - a memcached-style server: 8 threads, each with its own epoll instance, non-blocking
 *    connections handed over by an accepting thread through per-thread pipes; one client
 *    thread drives 2,000 connections (3 request/reply rounds each, every byte checked);
 *  - 8 threads accepting on one shared listener, three ways: blocking accept(), each thread
 *    with its own epoll set watching the (non-blocking) listener, and the same with
 *    EPOLLEXCLUSIVE. Every connection is accepted exactly once. */
#include <fcntl.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdatomic.h>
#include <sys/epoll.h>
#include <sys/socket.h>

#include "shim_test.h"

enum { kThreads = 8, kConns = 2000, kRounds = 3, kAcceptConns = 400 };

static int make_listener(struct sockaddr_in* a) {
  int l = socket(AF_INET, SOCK_STREAM, 0);
  CHECK(l >= 0);
  int one = 1;
  CHECK(setsockopt(l, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) == 0);
  memset(a, 0, sizeof *a);
  a->sin_family = AF_INET;
  a->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof *a;
  CHECK(bind(l, (struct sockaddr*)a, sizeof *a) == 0);
  CHECK(listen(l, 4096) == 0);
  CHECK(getsockname(l, (struct sockaddr*)a, &len) == 0);
  return l;
}

static void set_nonblock(int fd) { CHECK(fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK) == 0); }

/* --- memcached style ------------------------------------------------------------------ */

struct loop {
  int ep;
  int notify[2]; /* the accepting thread writes new fds here */
};
static struct loop g_loops[kThreads];
static atomic_int g_stop;

static void* loop_thread(void* arg) {
  struct loop* lp = arg;
  struct epoll_event ev = {.events = EPOLLIN, .data.fd = lp->notify[0]};
  CHECK(epoll_ctl(lp->ep, EPOLL_CTL_ADD, lp->notify[0], &ev) == 0);
  struct epoll_event evs[64];
  while (!atomic_load(&g_stop)) {
    int n = epoll_wait(lp->ep, evs, 64, 100);
    CHECK(n >= 0 || errno == EINTR);
    for (int i = 0; i < n; ++i) {
      int fd = evs[i].data.fd;
      if (fd == lp->notify[0]) {
        int nfd;
        while (read(lp->notify[0], &nfd, sizeof nfd) == sizeof nfd) {
          set_nonblock(nfd);
          struct epoll_event e = {.events = EPOLLIN, .data.fd = nfd};
          CHECK(epoll_ctl(lp->ep, EPOLL_CTL_ADD, nfd, &e) == 0);
        }
        continue;
      }
      char buf[256];
      ssize_t r = read(fd, buf, sizeof buf);
      if (r > 0) {
        for (ssize_t k = 0; k < r; ++k) buf[k] = (char)(buf[k] ^ 0x20); /* "reply" */
        CHECK(write(fd, buf, (size_t)r) == r); /* small: fits in the socket buffer */
      } else if (r == 0 || (errno != EAGAIN && errno != EWOULDBLOCK)) {
        CHECK(epoll_ctl(lp->ep, EPOLL_CTL_DEL, fd, NULL) == 0);
        CHECK(close(fd) == 0);
      }
    }
  }
  return NULL;
}

struct accept_arg {
  int listener;
  int count;
};

static void* mc_acceptor(void* arg) {
  struct accept_arg* a = arg;
  for (int i = 0; i < a->count; ++i) {
    int s = accept(a->listener, NULL, NULL);
    CHECK(s >= 0);
    CHECK(write(g_loops[i % kThreads].notify[1], &s, sizeof s) == sizeof s);
  }
  return NULL;
}

static void test_memcached_style(void) {
  struct sockaddr_in addr;
  int l = make_listener(&addr);
  pthread_t th[kThreads], acc;
  atomic_store(&g_stop, 0);
  for (int i = 0; i < kThreads; ++i) {
    g_loops[i].ep = epoll_create1(0);
    CHECK(g_loops[i].ep >= 0);
    CHECK(pipe(g_loops[i].notify) == 0);
    set_nonblock(g_loops[i].notify[0]);
    CHECK(pthread_create(&th[i], NULL, loop_thread, &g_loops[i]) == 0);
  }
  struct accept_arg aa = {l, kConns};
  CHECK(pthread_create(&acc, NULL, mc_acceptor, &aa) == 0);
  /* the client: all connections, then rounds driven by one epoll set */
  static int fds[kConns];
  static int round_of[kConns];
  int cep = epoll_create1(0);
  CHECK(cep >= 0);
  for (int i = 0; i < kConns; ++i) {
    fds[i] = socket(AF_INET, SOCK_STREAM, 0);
    CHECK(fds[i] >= 0);
    CHECK(connect(fds[i], (struct sockaddr*)&addr, sizeof addr) == 0);
    set_nonblock(fds[i]);
    struct epoll_event e = {.events = EPOLLIN, .data.u32 = (unsigned)i};
    CHECK(epoll_ctl(cep, EPOLL_CTL_ADD, fds[i], &e) == 0);
    char msg[32];
    snprintf(msg, sizeof msg, "q%05d-%d", i % 100000, 0);
    CHECK(write(fds[i], msg, 9) == 9);
  }
  int done = 0;
  double t0 = now_ms();
  struct epoll_event evs[256];
  while (done < kConns) {
    CHECK(now_ms() - t0 < 60000);
    int n = epoll_wait(cep, evs, 256, 1000);
    CHECK(n >= 0 || errno == EINTR);
    for (int k = 0; k < n; ++k) {
      int i = (int)evs[k].data.u32;
      char want[32], got[32];
      snprintf(want, sizeof want, "q%05d-%d", i % 100000, round_of[i]);
      for (int b = 0; b < 9; ++b) want[b] = (char)(want[b] ^ 0x20);
      ssize_t r = read(fds[i], got, 9);
      if (r < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) continue;
      CHECK(r == 9); /* 9 bytes arrive in one segment on loopback */
      CHECK(memcmp(got, want, 9) == 0);
      if (++round_of[i] == kRounds) {
        CHECK(epoll_ctl(cep, EPOLL_CTL_DEL, fds[i], NULL) == 0);
        CHECK(close(fds[i]) == 0);
        ++done;
        continue;
      }
      char msg[32];
      snprintf(msg, sizeof msg, "q%05d-%d", i % 100000, round_of[i]);
      CHECK(write(fds[i], msg, 9) == 9);
    }
  }
  CHECK(pthread_join(acc, NULL) == 0);
  atomic_store(&g_stop, 1);
  for (int i = 0; i < kThreads; ++i) {
    CHECK(pthread_join(th[i], NULL) == 0);
    close(g_loops[i].ep);
    close(g_loops[i].notify[0]);
    close(g_loops[i].notify[1]);
  }
  close(cep);
  close(l);
}

/* --- shared listener ---------------------------------------------------------------- */

static atomic_int g_seen[kAcceptConns];
static atomic_int g_accepted;

struct shared_arg {
  int listener;
  int mode; /* 0: blocking accept, 1: epoll, 2: epoll + EPOLLEXCLUSIVE */
};

/* Returns 1 when the sentinel (index -1) arrived. */
static int take(int s) {
  int idx;
  size_t got = 0;
  while (got < sizeof idx) {
    ssize_t r = read(s, (char*)&idx + got, sizeof idx - got);
    CHECK(r > 0);
    got += (size_t)r;
  }
  CHECK(close(s) == 0);
  if (idx < 0) return 1;
  CHECK(idx < kAcceptConns);
  atomic_fetch_add(&g_seen[idx], 1);
  atomic_fetch_add(&g_accepted, 1);
  return 0;
}

static void* shared_acceptor(void* arg) {
  struct shared_arg* a = arg;
  if (a->mode == 0) {
    for (;;) {
      int s = accept(a->listener, NULL, NULL);
      CHECK(s >= 0);
      if (take(s)) return NULL;
    }
  }
  int ep = epoll_create1(0);
  CHECK(ep >= 0);
  struct epoll_event ev = {.events = EPOLLIN | (a->mode == 2 ? EPOLLEXCLUSIVE : 0)};
  ev.data.fd = a->listener;
  CHECK(epoll_ctl(ep, EPOLL_CTL_ADD, a->listener, &ev) == 0);
  double t0 = now_ms();
  for (;;) {
    CHECK(now_ms() - t0 < 60000);
    struct epoll_event out;
    int n = epoll_wait(ep, &out, 1, 1000);
    CHECK(n >= 0 || errno == EINTR);
    if (n <= 0) continue;
    for (;;) {
      int s = accept(a->listener, NULL, NULL);
      if (s < 0) {
        CHECK(errno == EAGAIN || errno == EWOULDBLOCK);
        break;
      }
      int fl = fcntl(s, F_GETFL);
      CHECK(fl >= 0 && !(fl & O_NONBLOCK)); /* accept does not inherit O_NONBLOCK */
      if (take(s)) {
        close(ep);
        return NULL;
      }
    }
  }
}

static void connect_and_send(const struct sockaddr_in* addr, int idx) {
  int c = socket(AF_INET, SOCK_STREAM, 0);
  CHECK(c >= 0);
  CHECK(connect(c, (const struct sockaddr*)addr, sizeof *addr) == 0);
  CHECK(write(c, &idx, sizeof idx) == sizeof idx);
  CHECK(close(c) == 0);
}

static void test_shared_listener(int mode) {
  struct sockaddr_in addr;
  int l = make_listener(&addr);
  if (mode != 0) set_nonblock(l);
  for (int i = 0; i < kAcceptConns; ++i) atomic_store(&g_seen[i], 0);
  atomic_store(&g_accepted, 0);
  pthread_t th[kThreads];
  struct shared_arg a = {l, mode};
  for (int i = 0; i < kThreads; ++i) CHECK(pthread_create(&th[i], NULL, shared_acceptor, &a) == 0);
  for (int i = 0; i < kAcceptConns; ++i) connect_and_send(&addr, i);
  double t0 = now_ms();
  while (atomic_load(&g_accepted) < kAcceptConns) {
    CHECK(now_ms() - t0 < 30000);
    usleep(1000);
  }
  for (int i = 0; i < kThreads; ++i) connect_and_send(&addr, -1);
  for (int i = 0; i < kThreads; ++i) CHECK(pthread_join(th[i], NULL) == 0);
  for (int i = 0; i < kAcceptConns; ++i) {
    if (atomic_load(&g_seen[i]) != 1) {
      fprintf(stderr, "mode %d: connection %d accepted %d times\n", mode, i,
              atomic_load(&g_seen[i]));
      exit(1);
    }
  }
  close(l);
}

int main(void) {
  time_limit(150);
  raise_nofile();
  test_memcached_style();
  for (int mode = 0; mode < 3; ++mode) test_shared_listener(mode);
  printf("multiloop: ok\n");
  return 0;
}
