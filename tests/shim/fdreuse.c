/* fd numbers are reused at any moment, by any thread, also by glibc behind the shim's back
 * (issue 10, item 3); a stale registration must never answer for the new fd:
 *  - 8 client threads make 2,400 short-lived TCP connections (connect, write, blocking read,
 *    close) to a server thread per connection: no EBADF from connect/read/write, every byte
 *    echoed;
 *  - 200 threads create and close socketpairs and recv with SO_RCVTIMEO: EAGAIN (timeout),
 *    never EBADF;
 *  - fclose(fdopen(sock)) closes a waited-on socket inside glibc; a new socket that gets the
 *    same number is waited on and woken normally (no hang). */
#include <netinet/in.h>
#include <pthread.h>
#include <stdatomic.h>
#include <sys/socket.h>
#include <sys/time.h>

#include "shim_test.h"

enum { kClients = 8, kConnsPerClient = 300, kTimeoutThreads = 200, kTimeoutRounds = 10 };

static struct sockaddr_in g_addr;
static int g_listener;
static atomic_int g_served;

static void* serve_one(void* arg) {
  int s = (int)(long)arg;
  char buf[64];
  ssize_t r = read(s, buf, sizeof buf);
  if (r > 0) CHECK(write(s, buf, (size_t)r) == r);
  CHECK(close(s) == 0);
  atomic_fetch_add(&g_served, 1);
  return NULL;
}

static void* acceptor(void* arg) {
  (void)arg;
  for (int i = 0; i < kClients * kConnsPerClient; ++i) {
    int s = accept(g_listener, NULL, NULL);
    CHECK(s >= 0);
    pthread_t t;
    pthread_attr_t a;
    pthread_attr_init(&a);
    pthread_attr_setdetachstate(&a, PTHREAD_CREATE_DETACHED);
    CHECK(pthread_create(&t, &a, serve_one, (void*)(long)s) == 0);
    pthread_attr_destroy(&a);
  }
  return NULL;
}

static void* client(void* arg) {
  long id = (long)arg;
  for (int i = 0; i < kConnsPerClient; ++i) {
    int c = socket(AF_INET, SOCK_STREAM, 0);
    CHECK(c >= 0);
    CHECK(connect(c, (struct sockaddr*)&g_addr, sizeof g_addr) == 0);
    char msg[16], back[16];
    int n = snprintf(msg, sizeof msg, "%ld:%d", id, i);
    CHECK(write(c, msg, (size_t)n) == n);
    int got = 0;
    while (got < n) {
      ssize_t r = read(c, back + got, sizeof back - (size_t)got);
      CHECK(r > 0);
      got += (int)r;
    }
    CHECK(memcmp(msg, back, (size_t)n) == 0);
    CHECK(close(c) == 0);
  }
  return NULL;
}

static void test_short_connections(void) {
  g_listener = socket(AF_INET, SOCK_STREAM, 0);
  CHECK(g_listener >= 0);
  g_addr.sin_family = AF_INET;
  g_addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof g_addr;
  CHECK(bind(g_listener, (struct sockaddr*)&g_addr, sizeof g_addr) == 0);
  CHECK(listen(g_listener, 512) == 0);
  CHECK(getsockname(g_listener, (struct sockaddr*)&g_addr, &len) == 0);
  pthread_t acc, cl[kClients];
  CHECK(pthread_create(&acc, NULL, acceptor, NULL) == 0);
  for (long i = 0; i < kClients; ++i) CHECK(pthread_create(&cl[i], NULL, client, (void*)i) == 0);
  for (int i = 0; i < kClients; ++i) CHECK(pthread_join(cl[i], NULL) == 0);
  CHECK(pthread_join(acc, NULL) == 0);
  for (int i = 0; i < 5000 && atomic_load(&g_served) < kClients * kConnsPerClient; ++i)
    usleep(1000);
  CHECK(atomic_load(&g_served) == kClients * kConnsPerClient);
  close(g_listener);
}

static void* timeout_thread(void* arg) {
  (void)arg;
  for (int i = 0; i < kTimeoutRounds; ++i) {
    int sv[2];
    CHECK(socketpair(AF_UNIX, SOCK_STREAM, 0, sv) == 0);
    struct timeval tv = {0, 2000};
    CHECK(setsockopt(sv[0], SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv) == 0);
    char c;
    errno = 0;
    ssize_t r = recv(sv[0], &c, 1, 0);
    if (r != -1 || (errno != EAGAIN && errno != EWOULDBLOCK)) {
      fprintf(stderr, "recv with SO_RCVTIMEO: %zd errno %d (%s), expected EAGAIN\n", r, errno,
              strerror(errno));
      exit(1);
    }
    CHECK(close(sv[0]) == 0);
    CHECK(close(sv[1]) == 0);
  }
  return NULL;
}

static void test_timeouts_with_reuse(void) {
  pthread_t t[kTimeoutThreads];
  for (int i = 0; i < kTimeoutThreads; ++i)
    CHECK(pthread_create(&t[i], NULL, timeout_thread, NULL) == 0);
  for (int i = 0; i < kTimeoutThreads; ++i) CHECK(pthread_join(t[i], NULL) == 0);
}

static void* write_later(void* arg) {
  int fd = *(int*)arg;
  usleep(50 * 1000);
  CHECK(write(fd, "n", 1) == 1);
  return NULL;
}

static void test_closed_inside_glibc(void) {
  /* The new socket gets the number glibc closed: nothing else may take the lowest free number
   * meanwhile (under the shim glibc's malloc used to open /sys/devices/system/cpu/online on a
   * worker when it made its 9th arena, for a fiber-thread, until the shim set that cap at
   * start-up). */
  for (int round = 0; round < 5; ++round) {
    int a[2];
    CHECK(socketpair(AF_UNIX, SOCK_STREAM, 0, a) == 0);
    /* wait on a[0] once, so it is registered with the loop */
    pthread_t t;
    CHECK(pthread_create(&t, NULL, write_later, &a[1]) == 0);
    char c;
    CHECK(read(a[0], &c, 1) == 1);
    CHECK(pthread_join(t, NULL) == 0);
    int old = a[0];
    FILE* f = fdopen(a[0], "r+");
    CHECK(f != NULL);
    CHECK(fclose(f) == 0); /* glibc closes old itself */
    int b[2];
    CHECK(socketpair(AF_UNIX, SOCK_STREAM, 0, b) == 0);
    CHECK(b[0] == old); /* the lowest free number */
    CHECK(pthread_create(&t, NULL, write_later, &b[1]) == 0);
    double t0 = now_ms();
    CHECK(read(b[0], &c, 1) == 1 && c == 'n');
    CHECK(now_ms() - t0 < 5000);
    CHECK(pthread_join(t, NULL) == 0);
    close(a[1]);
    close(b[0]);
    close(b[1]);
  }
}

int main(void) {
  time_limit(120);
  raise_nofile();
  test_closed_inside_glibc();
  test_timeouts_with_reuse();
  test_short_connections();
  printf("fdreuse: ok\n");
  return 0;
}
