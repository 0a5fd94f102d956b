/* Timer probe for the "does this call block a worker?" tests (C11 and C++20): kProbeThreads
 * threads sleep 5 ms in a loop and count the wake-ups that came more than 100 ms late. With
 * the shim, a call that blocks a worker OS thread stops every fiber-thread on that worker, so
 * about half the probes (2 workers) would be hundreds of ms late; without it the probes are
 * OS threads and stay on time. Atomics are GCC builtins so C and C++ share the header. */
#ifndef GREEN_SHIM_PROBE_H
#define GREEN_SHIM_PROBE_H

#include <pthread.h>
#include <unistd.h>

#include "shim_test.h"

enum { kProbeThreads = 200, kProbeLateMs = 100, kProbeMaxLate = 4 };

struct probe_state {
  pthread_t t[kProbeThreads];
  int stop;
  int late;     /* wake-ups later than kProbeLateMs */
  int worst_us; /* worst lateness */
  int wakeups;
};
static struct probe_state g_probe;

static inline void* probe_thread(void* arg) {
  (void)arg;
  for (int i = 0; i < 100000 && !__atomic_load_n(&g_probe.stop, __ATOMIC_RELAXED); i++) {
    double t0 = now_ms();
    usleep(5000);
    double late = now_ms() - t0 - 5.0;
    __atomic_fetch_add(&g_probe.wakeups, 1, __ATOMIC_RELAXED);
    if (late > (double)kProbeLateMs) __atomic_fetch_add(&g_probe.late, 1, __ATOMIC_RELAXED);
    int us = (int)(late * 1000);
    int w = __atomic_load_n(&g_probe.worst_us, __ATOMIC_RELAXED);
    while (us > w && !__atomic_compare_exchange_n(&g_probe.worst_us, &w, us, 0, __ATOMIC_RELAXED,
                                                  __ATOMIC_RELAXED)) {
    }
  }
  return NULL;
}

static inline void probe_start(void) {
  g_probe.stop = 0;
  g_probe.late = 0;
  g_probe.worst_us = 0;
  g_probe.wakeups = 0;
  for (int i = 0; i < kProbeThreads; i++)
    CHECK(pthread_create(&g_probe.t[i], NULL, probe_thread, NULL) == 0);
  usleep(20000);
}

/* Stops the probes and checks them; `what` names the call that was waiting meanwhile. */
static inline void probe_check(const char* what) {
  __atomic_store_n(&g_probe.stop, 1, __ATOMIC_RELAXED);
  for (int i = 0; i < kProbeThreads; i++) CHECK(pthread_join(g_probe.t[i], NULL) == 0);
  fprintf(stderr,
          "probe: while waiting in %-22s %5d wake-ups, %3d late by > %d ms, worst %.1f ms\n", what,
          g_probe.wakeups, g_probe.late, kProbeLateMs, g_probe.worst_us / 1000.0);
  if (g_probe.late > kProbeMaxLate) {
    fprintf(stderr, "probe: %s blocked other threads\n", what);
    exit(1);
  }
}

#endif
