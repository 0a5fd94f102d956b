/* Thread churn with default attributes: 50,000 threads created and joined (in waves of 5,000
 * alive), then 20,000 alive at once; afterwards the process must not keep a mapping per
 * thread it once had (the runtime's stack pool unmaps wholly free chunks and takes the guard
 * page off free stacks beyond a small reserve, whatever worker the threads ran on), so
 * churning never runs into vm.max_map_count. VmRSS is printed, not asserted. Same assertions
 * with and without the shim. */
#include <pthread.h>
#include <stdatomic.h>

#include "shim_test.h"

enum { kWave = 5000, kWaves = 10, kBurst = 20000 };

static pthread_mutex_t g_mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t g_cv = PTHREAD_COND_INITIALIZER;
static int g_arrived, g_release;
static atomic_long g_sum;

static void* quick(void* arg) {
  usleep(1000); /* so that most of a wave is alive at once */
  atomic_fetch_add(&g_sum, (long)(intptr_t)arg);
  return arg;
}

static void* held(void* arg) {
  CHECK(pthread_mutex_lock(&g_mu) == 0);
  g_arrived++;
  if (g_arrived == kBurst) CHECK(pthread_cond_broadcast(&g_cv) == 0);
  while (!g_release) CHECK(pthread_cond_wait(&g_cv, &g_mu) == 0);
  CHECK(pthread_mutex_unlock(&g_mu) == 0);
  return arg;
}

static int map_count(void) {
  FILE* f = fopen("/proc/self/maps", "r");
  CHECK(f != NULL);
  int n = 0, c;
  while ((c = fgetc(f)) != EOF)
    if (c == '\n') n++;
  fclose(f);
  return n;
}

/* VmRSS in kB (reported, not asserted: it depends on the allocator and the kernel). */
static long rss_kb(void) {
  FILE* f = fopen("/proc/self/status", "r");
  CHECK(f != NULL);
  char line[256];
  long kb = -1;
  while (fgets(line, sizeof line, f))
    if (sscanf(line, "VmRSS: %ld", &kb) == 1) break;
  fclose(f);
  return kb;
}

static pthread_t g_ids[kBurst];

int main(void) {
  time_limit(150);
  long want = 0;
  for (int w = 0; w < kWaves; w++) {
    for (int i = 0; i < kWave; i++) {
      int r = pthread_create(&g_ids[i], NULL, quick, (void*)(intptr_t)(i + 1));
      if (r != 0) {
        fprintf(stderr, "wave %d thread %d: pthread_create: %s\n", w, i, strerror(r));
        exit(1);
      }
      want += i + 1;
    }
    for (int i = 0; i < kWave; i++) {
      void* ret;
      CHECK(pthread_join(g_ids[i], &ret) == 0);
      CHECK(ret == (void*)(intptr_t)(i + 1));
    }
  }
  CHECK(atomic_load(&g_sum) == want);
  int maps_after_churn = map_count();
  for (int i = 0; i < kBurst; i++) {
    int r = pthread_create(&g_ids[i], NULL, held, NULL);
    if (r != 0) {
      fprintf(stderr, "burst thread %d: pthread_create: %s (%d mappings)\n", i, strerror(r),
              map_count());
      exit(1);
    }
  }
  CHECK(pthread_mutex_lock(&g_mu) == 0);
  while (g_arrived < kBurst) CHECK(pthread_cond_wait(&g_cv, &g_mu) == 0);
  int maps_burst = map_count();
  long rss_burst = rss_kb();
  g_release = 1;
  CHECK(pthread_cond_broadcast(&g_cv) == 0);
  CHECK(pthread_mutex_unlock(&g_mu) == 0);
  for (int i = 0; i < kBurst; i++) CHECK(pthread_join(g_ids[i], NULL) == 0);
  int maps_end = map_count();
  fprintf(stderr,
          "thread_churn: mappings after 50000 joined %d, with 20000 alive %d, after those "
          "joined %d; VmRSS with 20000 alive %ld kB, after %ld kB\n",
          maps_after_churn, maps_burst, maps_end, rss_burst, rss_kb());
  /* a mapping or two per thread that once lived would be >= 20000 */
  CHECK(maps_end < 12000);
  check_os_threads("thread_churn");
  puts("thread_churn: ok");
  return 0;
}
