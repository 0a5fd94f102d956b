/* Thousands of threads sleeping at once finish in about one sleep; under greenrun the
 * process meanwhile shows only a handful of OS threads. Each thread uses a different sleep
 * call (usleep, nanosleep, clock_nanosleep relative and absolute). */
#include <pthread.h>
#include <stdatomic.h>

#include "shim_test.h"

#define N 2000
#define SLEEP_MS 300
static atomic_int g_awake, g_started;

static void* sleeper(void* arg) {
  long i = (long)arg;
  atomic_fetch_add(&g_started, 1);
  struct timespec ts = {0, SLEEP_MS * 1000000L};
  switch (i % 4) {
    case 0: CHECK(usleep(SLEEP_MS * 1000) == 0); break;
    case 1: CHECK(nanosleep(&ts, NULL) == 0); break;
    case 2: CHECK(clock_nanosleep(CLOCK_MONOTONIC, 0, &ts, NULL) == 0); break;
    default: {
      struct timespec abs;
      clock_gettime(CLOCK_MONOTONIC, &abs);
      abs.tv_nsec += SLEEP_MS * 1000000L;
      if (abs.tv_nsec >= 1000000000L) { abs.tv_sec++; abs.tv_nsec -= 1000000000L; }
      CHECK(clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &abs, NULL) == 0);
    }
  }
  atomic_fetch_add(&g_awake, 1);
  return NULL;
}

int main(void) {
  time_limit(60);
  pthread_attr_t a;
  pthread_attr_init(&a);
  pthread_attr_setstacksize(&a, 64 * 1024);
  static pthread_t t[N];
  double t0 = now_ms();
  for (long i = 0; i < N; ++i) CHECK(pthread_create(&t[i], &a, sleeper, (void*)i) == 0);
  while (atomic_load(&g_started) < N) usleep(1000);
  check_os_threads("while sleeping");
  CHECK(atomic_load(&g_awake) < N);  /* nobody woke early in bulk */
  for (int i = 0; i < N; ++i) CHECK(pthread_join(t[i], NULL) == 0);
  double ms = now_ms() - t0;
  printf("sleep_threads: %d threads slept %d ms each, all done in %.0f ms\n", N, SLEEP_MS, ms);
  CHECK(ms >= SLEEP_MS);
  CHECK(ms < SLEEP_MS * 8);  /* about one sleep, not N of them (generous for a noisy VM) */
  return 0;
}
