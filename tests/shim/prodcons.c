/* pthread mutex/condvar producer-consumer (static initializers), plus the lock semantics the
 * shim must keep per thread: recursive and error-checking mutexes (EDEADLK, EPERM, EBUSY),
 * timed waits (ETIMEDOUT), rwlocks, semaphores and pthread_once with concurrent callers. */
#include <pthread.h>
#include <semaphore.h>
#include <stdatomic.h>

#include "shim_test.h"

#define PRODUCERS 8
#define CONSUMERS 8
#define ITEMS 200000
#define CAP 64

static pthread_mutex_t g_mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t g_not_empty = PTHREAD_COND_INITIALIZER;
static pthread_cond_t g_not_full = PTHREAD_COND_INITIALIZER;
static long g_queue[CAP];
static int g_head, g_count, g_producers_left = PRODUCERS;
static long long g_consumed_sum;
static long g_consumed;

static void* producer(void* arg) {
  long base = (long)arg * (ITEMS / PRODUCERS);
  for (long i = 0; i < ITEMS / PRODUCERS; ++i) {
    CHECK(pthread_mutex_lock(&g_mu) == 0);
    while (g_count == CAP) CHECK(pthread_cond_wait(&g_not_full, &g_mu) == 0);
    g_queue[(g_head + g_count++) % CAP] = base + i + 1;
    CHECK(pthread_cond_signal(&g_not_empty) == 0);
    CHECK(pthread_mutex_unlock(&g_mu) == 0);
  }
  pthread_mutex_lock(&g_mu);
  if (--g_producers_left == 0) pthread_cond_broadcast(&g_not_empty);
  pthread_mutex_unlock(&g_mu);
  return NULL;
}

static void* consumer(void* arg) {
  (void)arg;
  for (;;) {
    CHECK(pthread_mutex_lock(&g_mu) == 0);
    while (g_count == 0 && g_producers_left > 0) CHECK(pthread_cond_wait(&g_not_empty, &g_mu) == 0);
    if (g_count == 0) {
      pthread_mutex_unlock(&g_mu);
      return NULL;
    }
    long v = g_queue[g_head];
    g_head = (g_head + 1) % CAP;
    g_count--;
    g_consumed_sum += v;
    g_consumed++;
    pthread_cond_signal(&g_not_full);
    CHECK(pthread_mutex_unlock(&g_mu) == 0);
  }
}

static pthread_mutex_t g_rec = PTHREAD_RECURSIVE_MUTEX_INITIALIZER_NP;
static pthread_mutex_t g_err = PTHREAD_ERRORCHECK_MUTEX_INITIALIZER_NP;
static atomic_int g_stage;

static void* other_owner(void* arg) {
  (void)arg;
  CHECK(pthread_mutex_trylock(&g_rec) == EBUSY);  /* held by main: not ours to re-enter */
  CHECK(pthread_mutex_unlock(&g_err) == EPERM);
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  ts.tv_nsec += 50 * 1000000L;
  if (ts.tv_nsec >= 1000000000L) { ts.tv_sec++; ts.tv_nsec -= 1000000000L; }
  CHECK(pthread_mutex_timedlock(&g_rec, &ts) == ETIMEDOUT);
  g_stage = 1;
  CHECK(pthread_mutex_lock(&g_rec) == 0);  /* waits until main released both levels */
  CHECK(g_stage == 2);
  CHECK(pthread_mutex_unlock(&g_rec) == 0);
  return NULL;
}

static pthread_once_t g_once = PTHREAD_ONCE_INIT;
static atomic_int g_once_runs;
static void once_init(void) {
  usleep(50 * 1000);  /* other callers must wait for this, not skip it */
  g_once_runs++;
}
static void* once_caller(void* arg) {
  (void)arg;
  CHECK(pthread_once(&g_once, once_init) == 0);
  CHECK(g_once_runs == 1);
  return NULL;
}

static pthread_rwlock_t g_rw = PTHREAD_RWLOCK_INITIALIZER;
static long g_rw_value;
static void* rw_user(void* arg) {
  long id = (long)arg;
  for (int i = 0; i < 2000; ++i) {
    if ((i + id) % 4 == 0) {
      CHECK(pthread_rwlock_wrlock(&g_rw) == 0);
      long v = g_rw_value;
      if (i % 64 == 0) sched_yield();
      g_rw_value = v + 1;
      CHECK(pthread_rwlock_unlock(&g_rw) == 0);
    } else {
      CHECK(pthread_rwlock_rdlock(&g_rw) == 0);
      CHECK(pthread_rwlock_unlock(&g_rw) == 0);
    }
  }
  return NULL;
}

static sem_t g_sem;
static atomic_int g_sem_got;
static void* sem_user(void* arg) {
  (void)arg;
  for (int i = 0; i < 100; ++i) {
    CHECK(sem_wait(&g_sem) == 0);
    g_sem_got++;
  }
  return NULL;
}

int main(void) {
  time_limit(120);
  pthread_t p[PRODUCERS], c[CONSUMERS];
  for (long i = 0; i < CONSUMERS; ++i) CHECK(pthread_create(&c[i], NULL, consumer, NULL) == 0);
  for (long i = 0; i < PRODUCERS; ++i) CHECK(pthread_create(&p[i], NULL, producer, (void*)i) == 0);
  for (int i = 0; i < PRODUCERS; ++i) CHECK(pthread_join(p[i], NULL) == 0);
  for (int i = 0; i < CONSUMERS; ++i) CHECK(pthread_join(c[i], NULL) == 0);
  CHECK(g_consumed == ITEMS);
  CHECK(g_consumed_sum == (long long)ITEMS * (ITEMS + 1) / 2);

  /* recursive + errorcheck semantics */
  CHECK(pthread_mutex_lock(&g_rec) == 0 && pthread_mutex_lock(&g_rec) == 0);
  CHECK(pthread_mutex_trylock(&g_rec) == 0 && pthread_mutex_unlock(&g_rec) == 0);
  CHECK(pthread_mutex_lock(&g_err) == 0);
  CHECK(pthread_mutex_lock(&g_err) == EDEADLK);
  CHECK(pthread_mutex_trylock(&g_err) == EBUSY);
  pthread_t o;
  CHECK(pthread_create(&o, NULL, other_owner, NULL) == 0);
  while (g_stage != 1) usleep(1000);
  usleep(20 * 1000);
  g_stage = 2;
  CHECK(pthread_mutex_unlock(&g_rec) == 0 && pthread_mutex_unlock(&g_rec) == 0);
  CHECK(pthread_join(o, NULL) == 0);
  CHECK(pthread_mutex_unlock(&g_err) == 0);
  CHECK(pthread_mutex_unlock(&g_err) == EPERM);

  /* timed condvar wait (CLOCK_MONOTONIC condvar) */
  pthread_condattr_t ca;
  pthread_condattr_init(&ca);
  pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
  pthread_cond_t cv;
  pthread_cond_init(&cv, &ca);
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  ts.tv_nsec += 80 * 1000000L;
  if (ts.tv_nsec >= 1000000000L) { ts.tv_sec++; ts.tv_nsec -= 1000000000L; }
  double t0 = now_ms();
  pthread_mutex_lock(&g_mu);
  CHECK(pthread_cond_timedwait(&cv, &g_mu, &ts) == ETIMEDOUT);
  pthread_mutex_unlock(&g_mu);
  CHECK(now_ms() - t0 >= 75 && now_ms() - t0 < 3000);
  CHECK(pthread_mutex_trylock(&g_mu) == 0 && pthread_mutex_unlock(&g_mu) == 0);

  /* pthread_once with concurrent callers */
  pthread_t oc[16];
  for (int i = 0; i < 16; ++i) CHECK(pthread_create(&oc[i], NULL, once_caller, NULL) == 0);
  for (int i = 0; i < 16; ++i) CHECK(pthread_join(oc[i], NULL) == 0);
  CHECK(g_once_runs == 1);

  /* rwlock */
  pthread_t rw[8];
  for (long i = 0; i < 8; ++i) CHECK(pthread_create(&rw[i], NULL, rw_user, (void*)i) == 0);
  for (int i = 0; i < 8; ++i) CHECK(pthread_join(rw[i], NULL) == 0);
  CHECK(g_rw_value == 8 * 500);

  /* semaphores: waiters park until posts arrive; timed wait times out */
  CHECK(sem_init(&g_sem, 0, 0) == 0);
  pthread_t su[4];
  for (int i = 0; i < 4; ++i) CHECK(pthread_create(&su[i], NULL, sem_user, NULL) == 0);
  for (int i = 0; i < 400; ++i) {
    CHECK(sem_post(&g_sem) == 0);
    if (i % 50 == 0) usleep(1000);
  }
  for (int i = 0; i < 4; ++i) CHECK(pthread_join(su[i], NULL) == 0);
  CHECK(g_sem_got == 400);
  clock_gettime(CLOCK_REALTIME, &ts);
  ts.tv_nsec += 50 * 1000000L;
  if (ts.tv_nsec >= 1000000000L) { ts.tv_sec++; ts.tv_nsec -= 1000000000L; }
  errno = 0;
  CHECK(sem_timedwait(&g_sem, &ts) == -1 && errno == ETIMEDOUT);
  CHECK(sem_trywait(&g_sem) == -1 && errno == EAGAIN);
  puts("prodcons: ok");
  return 0;
}
