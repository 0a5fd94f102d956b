/* errno and thread identity across blocking calls, on many threads at once. Each thread sets
 * errno to its own value, makes calls that block (and, under greenrun, park its fiber while
 * other fibers on the same worker set their own errno), and checks: errno is unchanged after
 * successful calls, is exactly the failure's errno after failing ones, and &errno,
 * pthread_self() and a __thread variable's address did not change (the migration policy:
 * a started fiber never moves to another OS thread). */
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
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
  puts("errno_threads: ok");
  return 0;
}
