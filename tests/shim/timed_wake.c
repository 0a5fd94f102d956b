/* Condition-variable waits woken from another thread (issue 11: CPython's GIL waiters wait
 * in pthread_cond_timedwait with 5 ms timeouts). Under greenrun a waiter woken by a thread
 * running on another worker is taken to the waker's worker (wake affinity); a timed one's
 * timer, armed on the old worker's loop, is then cancelled from there.
 *
 * 1. affinity: two threads hand a token back and forth through one mutex and condition
 *    variable, with pthread_cond_timedwait (5 s timeouts, never reached), then with
 *    pthread_cond_wait. Under greenrun, a
 *    waiter that parked on another OS thread than its waker's must be resumed at least once
 *    on the waker's OS thread (/proc/thread-self). Plain: only the hand-off is checked.
 * 2. gil: kGilThreads threads take a "GIL" (a flag under a mutex) kGilRounds times each,
 *    waiting for it with 5 ms pthread_cond_timedwait loops as CPython's take_gil does, and
 *    hand it on with pthread_cond_signal: every round is counted, nobody hangs. Timers fire
 *    while wakers adopt the waiters (the races of the lazy timer cancel).
 * 3. timeouts: after being woken (and perhaps moved), timed waits still time out: never
 *    early, and not more than 20x late. */
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <time.h>

#include "shim_test.h"

static void deadline_in(struct timespec* ts, long ms) {
  CHECK(clock_gettime(CLOCK_REALTIME, ts) == 0);
  ts->tv_sec += ms / 1000;
  ts->tv_nsec += (ms % 1000) * 1000000L;
  if (ts->tv_nsec >= 1000000000L) {
    ts->tv_sec++;
    ts->tv_nsec -= 1000000000L;
  }
}

/* --- 1. affinity -------------------------------------------------------------------------- */

enum { kPingRounds = 2000 };
static pthread_mutex_t pp_mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t pp_cv = PTHREAD_COND_INITIALIZER;
static int pp_turn;       /* whose turn (0 or 1), under pp_mu */
static long pp_signaller; /* the OS thread that passed the turn last, under pp_mu */
static int pp_cross;      /* waits that parked on another OS thread than their waker's */
static int pp_adopted;    /* ... and resumed on the waker's */
static int pp_timed;      /* pthread_cond_timedwait (else pthread_cond_wait) */

static atomic_long pp_task[2];
static atomic_int pp_apart;

/* Under greenrun both threads may start on one worker: thread 0 keeps its worker busy (no
 * waits) while thread 1 sleeps and wakes until an idle worker has taken it (bounded, 2 s). */
static void move_apart(int me) {
  double t0 = now_ms();
  while (!atomic_load(&pp_apart) && now_ms() - t0 < 2000) {
    atomic_store(&pp_task[me], kernel_task());
    long other = atomic_load(&pp_task[1 - me]);
    if (other != 0 && other != atomic_load(&pp_task[me])) atomic_store(&pp_apart, 1);
    if (me == 1) usleep(500);
  }
}

static void* ping_thread(void* arg) {
  int me = (int)(intptr_t)arg;
  move_apart(me);
  for (int r = 0; r < kPingRounds; ++r) {
    CHECK(pthread_mutex_lock(&pp_mu) == 0);
    while (pp_turn != me) {
      long before = kernel_task();
      struct timespec ts;
      deadline_in(&ts, 5000);
      int rc = pp_timed ? pthread_cond_timedwait(&pp_cv, &pp_mu, &ts)
                        : pthread_cond_wait(&pp_cv, &pp_mu);
      CHECK(rc == 0 || rc == ETIMEDOUT);
      if (pp_turn == me && before != pp_signaller) {
        pp_cross++;
        if (kernel_task() == pp_signaller) pp_adopted++;
      }
    }
    pp_turn = 1 - me;
    pp_signaller = kernel_task();
    CHECK(pthread_cond_signal(&pp_cv) == 0);
    CHECK(pthread_mutex_unlock(&pp_mu) == 0);
  }
  return NULL;
}

static void test_affinity(int timed) {
  pp_timed = timed;
  pp_turn = pp_cross = pp_adopted = 0;
  pp_signaller = 0;
  atomic_store(&pp_task[0], 0);
  atomic_store(&pp_task[1], 0);
  atomic_store(&pp_apart, 0);
  pthread_t t[2];
  for (int i = 0; i < 2; ++i)
    CHECK(pthread_create(&t[i], NULL, ping_thread, (void*)(intptr_t)i) == 0);
  for (int i = 0; i < 2; ++i) CHECK(pthread_join(t[i], NULL) == 0);
  fprintf(stderr,
          "affinity (%s): started apart %d, %d cross-thread wake-ups, %d resumed on the "
          "waker's thread\n",
          timed ? "timed" : "untimed", atomic_load(&pp_apart), pp_cross, pp_adopted);
  if (under_green() && pp_cross > 0) CHECK(pp_adopted > 0);
}

/* --- 2. gil ------------------------------------------------------------------------------- */

enum { kGilThreads = 32, kGilRounds = 300 };
static pthread_mutex_t gil_mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t gil_cv = PTHREAD_COND_INITIALIZER;
static int gil_locked; /* under gil_mu */
static long gil_total; /* under the GIL */
static atomic_int gil_timeouts;

static void* gil_thread(void* arg) {
  (void)arg;
  for (int r = 0; r < kGilRounds; ++r) {
    CHECK(pthread_mutex_lock(&gil_mu) == 0);
    while (gil_locked) {
      struct timespec ts;
      deadline_in(&ts, 5);
      int rc = pthread_cond_timedwait(&gil_cv, &gil_mu, &ts);
      CHECK(rc == 0 || rc == ETIMEDOUT);
      if (rc == ETIMEDOUT) atomic_fetch_add(&gil_timeouts, 1);
    }
    gil_locked = 1;
    CHECK(pthread_mutex_unlock(&gil_mu) == 0);
    gil_total++;                   /* "Python code" under the GIL */
    if (r % 7 == 0) sched_yield(); /* let others pile up on the GIL */
    CHECK(pthread_mutex_lock(&gil_mu) == 0);
    gil_locked = 0;
    CHECK(pthread_cond_signal(&gil_cv) == 0);
    CHECK(pthread_mutex_unlock(&gil_mu) == 0);
    if (r % 3 == 0) usleep(100); /* "I/O" without the GIL */
  }
  return NULL;
}

static void test_gil(void) {
  pthread_t t[kGilThreads];
  for (int i = 0; i < kGilThreads; ++i) CHECK(pthread_create(&t[i], NULL, gil_thread, NULL) == 0);
  for (int i = 0; i < kGilThreads; ++i) CHECK(pthread_join(t[i], NULL) == 0);
  fprintf(stderr, "gil: %ld rounds, %d timeouts\n", gil_total, atomic_load(&gil_timeouts));
  CHECK(gil_total == (long)kGilThreads * kGilRounds);
  CHECK(!gil_locked);
}

/* --- 3. timeouts -------------------------------------------------------------------------- */

enum { kToThreads = 8, kToMs = 50 };
static pthread_mutex_t to_mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t to_cv = PTHREAD_COND_INITIALIZER;
static pthread_cond_t to_never = PTHREAD_COND_INITIALIZER;
static int to_go; /* under to_mu */

static void* timeout_thread(void* arg) {
  (void)arg;
  CHECK(pthread_mutex_lock(&to_mu) == 0);
  while (!to_go) { /* woken by main (perhaps another worker): maybe moved */
    struct timespec ts;
    deadline_in(&ts, 10000);
    int rc = pthread_cond_timedwait(&to_cv, &to_mu, &ts);
    CHECK(rc == 0 || rc == ETIMEDOUT);
  }
  for (int i = 0; i < 3; ++i) {
    struct timespec ts;
    deadline_in(&ts, kToMs);
    double t0 = now_ms();
    int rc;
    do {
      rc = pthread_cond_timedwait(&to_never, &to_mu, &ts);
    } while (rc == 0); /* spurious wake-ups are allowed */
    double ms = now_ms() - t0;
    CHECK(rc == ETIMEDOUT);
    struct timespec now;
    CHECK(clock_gettime(CLOCK_REALTIME, &now) == 0);
    CHECK(now.tv_sec > ts.tv_sec || (now.tv_sec == ts.tv_sec && now.tv_nsec >= ts.tv_nsec));
    if (ms > 20.0 * kToMs) {
      fprintf(stderr, "timeouts: took %.1f ms, expected about %d\n", ms, kToMs);
      exit(1);
    }
  }
  CHECK(pthread_mutex_unlock(&to_mu) == 0);
  return NULL;
}

static void test_timeouts(void) {
  pthread_t t[kToThreads];
  for (int i = 0; i < kToThreads; ++i)
    CHECK(pthread_create(&t[i], NULL, timeout_thread, NULL) == 0);
  usleep(20000);
  CHECK(pthread_mutex_lock(&to_mu) == 0);
  to_go = 1;
  CHECK(pthread_cond_broadcast(&to_cv) == 0);
  CHECK(pthread_mutex_unlock(&to_mu) == 0);
  for (int i = 0; i < kToThreads; ++i) CHECK(pthread_join(t[i], NULL) == 0);
}

int main(void) {
  test_affinity(1);
  test_affinity(0);
  test_gil();
  test_timeouts();
  printf("timed_wake: ok\n");
  return 0;
}
