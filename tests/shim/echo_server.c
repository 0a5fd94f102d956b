/* Thread-per-connection echo server with thousands of client threads (each client is a
 * thread too). Usage: echo_server [connections] [messages-per-connection]
 * Checks every echoed byte, that all connections were open at the same time (a barrier), and
 * under greenrun that the process used only a handful of OS threads. */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <stdatomic.h>
#include <sys/socket.h>

#include "shim_test.h"

static int g_conns = 2000, g_msgs = 5;
static atomic_int g_connected, g_done, g_served;
static int g_port;

static void* serve(void* arg) {
  int fd = (int)(long)arg;
  char buf[4096];
  for (;;) {
    ssize_t n = read(fd, buf, sizeof buf);
    if (n <= 0) break;
    ssize_t off = 0;
    while (off < n) {
      ssize_t w = write(fd, buf + off, (size_t)(n - off));
      CHECK(w > 0);
      off += w;
    }
  }
  close(fd);
  atomic_fetch_add(&g_served, 1);
  return NULL;
}

static void* acceptor(void* arg) {
  int lfd = (int)(long)arg;
  pthread_attr_t a;
  pthread_attr_init(&a);
  pthread_attr_setstacksize(&a, 64 * 1024);
  pthread_attr_setdetachstate(&a, PTHREAD_CREATE_DETACHED);
  for (int i = 0; i < g_conns; ++i) {
    int fd = accept(lfd, NULL, NULL);
    CHECK(fd >= 0);
    pthread_t t;
    CHECK(pthread_create(&t, &a, serve, (void*)(long)fd) == 0);
  }
  return NULL;
}

static void* client(void* arg) {
  long id = (long)arg;
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  CHECK(fd >= 0);
  struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((unsigned short)g_port)};
  sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  CHECK(connect(fd, (struct sockaddr*)&sa, sizeof sa) == 0);
  atomic_fetch_add(&g_connected, 1);
  while (atomic_load(&g_connected) < g_conns) usleep(10000);  /* all open at once */
  char out[64], in[64];
  for (int m = 0; m < g_msgs; ++m) {
    int len = snprintf(out, sizeof out, "client %ld message %d\n", id, m);
    CHECK(write(fd, out, (size_t)len) == len);
    int got = 0;
    while (got < len) {
      ssize_t n = read(fd, in + got, (size_t)(len - got));
      CHECK(n > 0);
      got += (int)n;
    }
    CHECK(memcmp(in, out, (size_t)len) == 0);
  }
  close(fd);
  atomic_fetch_add(&g_done, 1);
  return NULL;
}

int main(int argc, char** argv) {
  if (argc > 1) g_conns = atoi(argv[1]);
  if (argc > 2) g_msgs = atoi(argv[2]);
  time_limit(120);
  raise_nofile();
  int lfd = socket(AF_INET, SOCK_STREAM, 0);
  CHECK(lfd >= 0);
  int one = 1;
  setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  struct sockaddr_in sa = {.sin_family = AF_INET};
  sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  CHECK(bind(lfd, (struct sockaddr*)&sa, sizeof sa) == 0);
  socklen_t len = sizeof sa;
  CHECK(getsockname(lfd, (struct sockaddr*)&sa, &len) == 0);
  g_port = ntohs(sa.sin_port);
  CHECK(listen(lfd, 4096) == 0);
  pthread_t acc;
  CHECK(pthread_create(&acc, NULL, acceptor, (void*)(long)lfd) == 0);
  pthread_attr_t a;
  pthread_attr_init(&a);
  pthread_attr_setstacksize(&a, 64 * 1024);
  pthread_t* ts = calloc((size_t)g_conns, sizeof *ts);
  double t0 = now_ms();
  for (long i = 0; i < g_conns; ++i) CHECK(pthread_create(&ts[i], &a, client, (void*)i) == 0);
  while (atomic_load(&g_connected) < g_conns) usleep(20000);
  check_os_threads("all connections open");
  int peak_threads = os_threads();
  long rss_kb = 0;
  FILE* st = fopen("/proc/self/status", "r");
  char line[256];
  while (st && fgets(line, sizeof line, st))
    if (strncmp(line, "VmRSS:", 6) == 0) rss_kb = atol(line + 6);
  if (st) fclose(st);
  double t1 = now_ms();
  for (int i = 0; i < g_conns; ++i) CHECK(pthread_join(ts[i], NULL) == 0);
  CHECK(pthread_join(acc, NULL) == 0);
  while (atomic_load(&g_served) < g_conns) usleep(10000);
  CHECK(atomic_load(&g_done) == g_conns);
  double t2 = now_ms();
  printf("echo_server: %d connections x %d messages in %.0f ms; with all connections open: "
         "%d OS threads, VmRSS %ld KiB; %.0f round trips/s after connecting\n",
         g_conns, g_msgs, t2 - t0, peak_threads, rss_kb, (double)g_conns * g_msgs / ((t2 - t1) / 1e3));
  return 0;
}
