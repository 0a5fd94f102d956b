/* Helpers for the shim's test programs: plain C11 + POSIX, no green header. Each program
 * asserts its own behaviour and exits non-zero on failure; the same binary runs once without
 * and once with libgreen_preload.so (through greenrun). Environment set by the test
 * registration for the greenrun runs:
 *   SHIM_UNDER_GREEN=1        behaviours that only the shim adds may be asserted
 *   SHIM_MAX_OS_THREADS=N     upper bound for /proc/self/status "Threads" */
#ifndef GREEN_SHIM_TEST_H
#define GREEN_SHIM_TEST_H

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#define CHECK(cond)                                                                      \
  do {                                                                                   \
    if (!(cond)) {                                                                       \
      fprintf(stderr, "%s:%d: CHECK failed: %s (errno %d: %s)\n", __FILE__, __LINE__, #cond, \
              errno, strerror(errno));                                                    \
      exit(1);                                                                           \
    }                                                                                    \
  } while (0)

static inline double now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

/* The absolute time `ms` milliseconds from now on clock `clk` (a deadline for the timed
 * pthread and futex calls). */
static inline struct timespec abs_in(clockid_t clk, long ms) {
  struct timespec ts;
  clock_gettime(clk, &ts);
  ts.tv_sec += ms / 1000;
  ts.tv_nsec += (ms % 1000) * 1000000L;
  if (ts.tv_nsec >= 1000000000L) {
    ts.tv_sec++;
    ts.tv_nsec -= 1000000000L;
  }
  return ts;
}

static inline void raise_nofile(void) {
  struct rlimit rl;
  if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
    rl.rlim_cur = rl.rlim_max;
    setrlimit(RLIMIT_NOFILE, &rl);
  }
}

static inline int os_threads(void) {
  FILE* f = fopen("/proc/self/status", "r");
  char line[256];
  int n = -1;
  if (!f) return -1;
  while (fgets(line, sizeof line, f))
    if (strncmp(line, "Threads:", 8) == 0) n = atoi(line + 8);
  fclose(f);
  return n;
}

static inline int under_green(void) {
  const char* v = getenv("SHIM_UNDER_GREEN");
  return v && strcmp(v, "1") == 0;
}

static inline void check_os_threads(const char* where) {
  const char* v = getenv("SHIM_MAX_OS_THREADS");
  int n = os_threads();
  if (v && n > atoi(v)) {
    fprintf(stderr, "%s: %d OS threads, expected at most %s\n", where, n, v);
    exit(1);
  }
}

/* The kernel task running the caller (/proc/thread-self is "PID/task/TID"): the thread itself
 * when plain, the OS thread that runs the fiber under greenrun. */
static inline long kernel_task(void) {
  char buf[64];
  ssize_t n = readlink("/proc/thread-self", buf, sizeof buf - 1);
  CHECK(n > 0);
  buf[n] = 0;
  const char* slash = strrchr(buf, '/');
  CHECK(slash != NULL);
  return atol(slash + 1);
}

/* Bounds the whole test: a hang becomes a failure. */
static inline void time_limit(unsigned seconds) { alarm(seconds); }

#endif
