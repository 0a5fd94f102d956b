/* errno and thread identity across blocking calls, on many threads at once. Each thread sets
 * errno to its own value, makes calls that block (and, under greenrun, park its fiber while
 * other fibers on the same worker set their own errno), and checks: errno is unchanged after
 * successful calls, is exactly the failure's errno after failing ones, and &errno,
 * pthread_self() and a __thread variable's address did not change (the migration policy:
 * a started fiber never moves to another OS thread).
 * socket_paths: the shim's socket fast paths (read/write on a blocking socket, which use the
 * raw syscall's result and leave errno alone unless the call fails): reads that park until a
 * peer answers, a read after a short read (it waits for the next edge first), a write larger
 * than the socket buffer (partial writes with waits in between), and on an O_NONBLOCK socket a
 * read after a short read whose internal wait answers EAGAIN while data is already there. */
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <sys/socket.h>

#include "shim_test.h"

#define N 500
static __thread int t_marker;
static atomic_int g_ready;
static int g_pipe[2];

static void* run(void* arg) {
  long id = (long)arg;
  int* where = &errno;
  int* marker = &t_marker;
  pthread_t self = pthread_self();
  int sv[2];
  CHECK(socketpair(AF_UNIX, SOCK_STREAM, 0, sv) == 0);
  for (int round = 0; round < 5; ++round) {
    errno = 1000 + (int)id;
    CHECK(usleep(1000 + (useconds_t)(id % 7) * 100) == 0);
    CHECK(errno == 1000 + id);
    struct pollfd p = {sv[0], POLLIN, 0};
    CHECK(poll(&p, 1, 2) == 0);
    CHECK(errno == 1000 + id);
    CHECK(write(sv[1], "x", 1) == 1);
    char c;
    CHECK(read(sv[0], &c, 1) == 1);
    CHECK(errno == 1000 + id);
    CHECK(read(-1, &c, 1) == -1 && errno == EBADF);
    CHECK(recv(sv[0], &c, 1, MSG_DONTWAIT) == -1 && errno == EAGAIN);
    errno = 2000 + (int)id;
    sched_yield();
    CHECK(errno == 2000 + id);
    CHECK(&errno == where);
    CHECK(&t_marker == marker);
    CHECK(pthread_equal(pthread_self(), self));
  }
  close(sv[0]);
  close(sv[1]);
  atomic_fetch_add(&g_ready, 1);
  /* block on a shared pipe until main writes one byte per thread */
  char c;
  errno = 3000 + (int)id;
  CHECK(read(g_pipe[0], &c, 1) == 1);
  CHECK(errno == 3000 + id && &errno == where);
  return (void*)self;
}

#define PAIRS 8
#define BIG (1 << 20)

/* Echoes what it reads, after a pause (the reader parks meanwhile), until EOF. */
static void* echo_peer(void* arg) {
  int fd = (int)(long)arg;
  char buf[4096];
  for (;;) {
    ssize_t n = read(fd, buf, sizeof buf);
    if (n <= 0) break;
    usleep(300);
    for (ssize_t off = 0; off < n;) {
      ssize_t w = write(fd, buf + off, (size_t)(n - off));
      CHECK(w > 0);
      off += w;
    }
  }
  close(fd);
  return NULL;
}

/* Reads BIG bytes slowly, then answers with their sum. */
static void* sink_peer(void* arg) {
  int fd = (int)(long)arg;
  char buf[4096];
  unsigned long sum = 0;
  size_t got = 0;
  while (got < BIG) {
    usleep(100);
    ssize_t n = read(fd, buf, sizeof buf);
    CHECK(n > 0);
    for (ssize_t i = 0; i < n; ++i) sum += (unsigned char)buf[i];
    got += (size_t)n;
  }
  CHECK(write(fd, &sum, sizeof sum) == (ssize_t)sizeof sum);
  close(fd);
  return NULL;
}

static void* socket_paths(void* arg) {
  long id = (long)arg;
  int e[2], k[2];
  CHECK(socketpair(AF_UNIX, SOCK_STREAM, 0, e) == 0);
  CHECK(socketpair(AF_UNIX, SOCK_STREAM, 0, k) == 0);
  int small = 4096;
  CHECK(setsockopt(k[0], SOL_SOCKET, SO_SNDBUF, &small, sizeof small) == 0);
  pthread_t pe, pk;
  CHECK(pthread_create(&pe, NULL, echo_peer, (void*)(long)e[1]) == 0);
  CHECK(pthread_create(&pk, NULL, sink_peer, (void*)(long)k[1]) == 0);
  char buf[256];
  for (int round = 0; round < 20; ++round) {
    int mine = 5000 + (int)id * 100 + round;
    errno = mine;
    CHECK(write(e[0], "ping", 4) == 4);
    CHECK(errno == mine);
    CHECK(read(e[0], buf, sizeof buf) == 4); /* parks until the echo; a short read */
    CHECK(errno == mine && memcmp(buf, "ping", 4) == 0);
  }
  /* O_NONBLOCK after a short read: the answer is there when read() is called. */
  int fl = fcntl(e[0], F_GETFL);
  CHECK(fl >= 0 && fcntl(e[0], F_SETFL, fl | O_NONBLOCK) == 0);
  CHECK(write(e[0], "pong", 4) == 4);
  struct pollfd p = {e[0], POLLIN, 0};
  CHECK(poll(&p, 1, 10000) == 1);
  errno = 7000 + (int)id;
  CHECK(read(e[0], buf, sizeof buf) == 4);
  CHECK(errno == 7000 + id && memcmp(buf, "pong", 4) == 0);
  CHECK(read(e[0], buf, sizeof buf) == -1 && errno == EAGAIN);
  CHECK(fcntl(e[0], F_SETFL, fl) == 0);
  /* A write bigger than the socket buffer, against a slow reader. */
  char* big = malloc(BIG);
  CHECK(big != NULL);
  unsigned long sum = 0;
  for (size_t i = 0; i < BIG; ++i) {
    big[i] = (char)(i * 7 + (size_t)id);
    sum += (unsigned char)big[i];
  }
  errno = 8000 + (int)id;
  CHECK(write(k[0], big, BIG) == BIG);
  CHECK(errno == 8000 + id);
  unsigned long theirs = 0;
  CHECK(read(k[0], &theirs, sizeof theirs) == (ssize_t)sizeof theirs);
  CHECK(errno == 8000 + id && theirs == sum);
  /* EOF: 0, errno still the caller's. */
  close(e[0]);
  CHECK(pthread_join(pe, NULL) == 0);
  CHECK(read(k[0], buf, sizeof buf) == 0);
  CHECK(errno == 8000 + id);
  CHECK(pthread_join(pk, NULL) == 0);
  close(k[0]);
  free(big);
  return NULL;
}

int main(void) {
  time_limit(120);
  CHECK(pipe(g_pipe) == 0);
  static pthread_t t[N];
  pthread_attr_t a;
  pthread_attr_init(&a);
  pthread_attr_setstacksize(&a, 128 * 1024);
  for (long i = 0; i < N; ++i) CHECK(pthread_create(&t[i], &a, run, (void*)i) == 0);
  while (atomic_load(&g_ready) < N) usleep(1000);
  char buf[N];
  memset(buf, 'y', sizeof buf);
  CHECK(write(g_pipe[1], buf, N) == N);
  for (int i = 0; i < N; ++i) {
    void* r;
    CHECK(pthread_join(t[i], &r) == 0);
    CHECK((pthread_t)r == t[i]);  /* pthread_self() inside == id seen by the creator */
    for (int j = 0; j < i; ++j) CHECK(!pthread_equal(t[i], t[j]));
  }
  static pthread_t s[PAIRS];
  for (long i = 0; i < PAIRS; ++i) CHECK(pthread_create(&s[i], &a, socket_paths, (void*)i) == 0);
  for (int i = 0; i < PAIRS; ++i) CHECK(pthread_join(s[i], NULL) == 0);
  puts("errno_threads: ok");
  return 0;
}
