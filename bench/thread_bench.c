/* Fiber-thread costs, measured on a plain pthread program (no green header), meant to be run
 * under greenrun (and without it for the OS-thread reference):
 *   thread_bench switch [ITERS]   two threads call sched_yield() ITERS times each; prints ns
 *                                 per yield (one switch each; run with --workers 1 so both
 *                                 threads share a worker)
 *   thread_bench idle [N]         N threads blocked in read() on a pipe; prints the VmRSS
 *                                 growth per thread (/proc/self/status), then releases them
 * Compare GREEN_THREAD_TLS=shared (fiber-threads share their worker's TLS) with the default
 * (an identity per fiber-thread: TCB, TLS and DTV switched with the fiber). */
#define _GNU_SOURCE
#include <pthread.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static long g_iters = 2000000;
static int g_pipe[2];

static double now_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec * 1e9 + (double)ts.tv_nsec;
}

static long rss_kib(void) {
  FILE* f = fopen("/proc/self/status", "r");
  char line[256];
  long kib = -1;
  if (!f) return -1;
  while (fgets(line, sizeof line, f))
    if (strncmp(line, "VmRSS:", 6) == 0) kib = atol(line + 6);
  fclose(f);
  return kib;
}

static void* yielder(void* arg) {
  (void)arg;
  for (long i = 0; i < g_iters; ++i) sched_yield();
  return NULL;
}

static void* blocker(void* arg) {
  (void)arg;
  char c;
  if (read(g_pipe[0], &c, 1) != 1) abort();
  return NULL;
}

int main(int argc, char** argv) {
  const char* mode = argc > 1 ? argv[1] : "switch";
  if (strcmp(mode, "switch") == 0) {
    if (argc > 2) g_iters = atol(argv[2]);
    pthread_t a, b;
    double t0 = now_ns();
    if (pthread_create(&a, NULL, yielder, NULL) || pthread_create(&b, NULL, yielder, NULL))
      return 1;
    pthread_join(a, NULL);
    pthread_join(b, NULL);
    double ns = (now_ns() - t0) / (2.0 * (double)g_iters);
    printf("switch: %.1f ns per sched_yield (2 threads x %ld)\n", ns, g_iters);
    return 0;
  }
  if (strcmp(mode, "idle") == 0) {
    long n = argc > 2 ? atol(argv[2]) : 10000;
    if (pipe(g_pipe) != 0) return 1;
    pthread_t* t = calloc((size_t)n, sizeof *t);
    pthread_attr_t attr;
    pthread_attr_init(&attr);
    pthread_attr_setstacksize(&attr, 64 * 1024);
    /* Warm-up: one thread created and joined, so one-time allocations are not counted. */
    pthread_create(&t[0], &attr, blocker, NULL);
    if (write(g_pipe[1], "x", 1) != 1) return 1;
    pthread_join(t[0], NULL);
    usleep(100000);
    long before = rss_kib();
    for (long i = 0; i < n; ++i)
      if (pthread_create(&t[i], &attr, blocker, NULL) != 0) return 1;
    usleep(300000); /* every thread has started and blocked */
    long after = rss_kib();
    printf("idle: %ld threads, %.2f KiB RSS per thread\n", n,
           (double)(after - before) / (double)n);
    for (long i = 0; i < n; ++i)
      if (write(g_pipe[1], "x", 1) != 1) return 1;
    for (long i = 0; i < n; ++i) pthread_join(t[i], NULL);
    free(t);
    return 0;
  }
  fprintf(stderr, "usage: thread_bench switch [ITERS] | idle [N]\n");
  return 2;
}
