/* rwlock kinds as glibc implements them: a re-lock by the writer answers EDEADLK (rdlock,
 * wrlock, timed variants), another thread is refused; PTHREAD_RWLOCK_PREFER_WRITER_NONRECURSIVE_NP
 * holds new readers back while a writer waits (a stream of readers cannot starve the writer),
 * the default kind lets new readers in. Same assertions with and without the shim. */
#include <pthread.h>
#include <stdatomic.h>

#include "shim_test.h"

static pthread_rwlock_t g_rw;

static void* other_thread_tries(void* arg) {
  (void)arg;
  CHECK(pthread_rwlock_tryrdlock(&g_rw) == EBUSY);
  CHECK(pthread_rwlock_trywrlock(&g_rw) == EBUSY);
  struct timespec ts = abs_in(CLOCK_REALTIME, 30);
  CHECK(pthread_rwlock_timedrdlock(&g_rw, &ts) == ETIMEDOUT);
  ts = abs_in(CLOCK_MONOTONIC, 30);
  CHECK(pthread_rwlock_clockwrlock(&g_rw, CLOCK_MONOTONIC, &ts) == ETIMEDOUT);
  return NULL;
}

static void check_edeadlk(void) {
  CHECK(pthread_rwlock_init(&g_rw, NULL) == 0);
  CHECK(pthread_rwlock_wrlock(&g_rw) == 0);
  CHECK(pthread_rwlock_wrlock(&g_rw) == EDEADLK);
  CHECK(pthread_rwlock_rdlock(&g_rw) == EDEADLK);
  struct timespec ts = abs_in(CLOCK_REALTIME, 10);
  CHECK(pthread_rwlock_timedwrlock(&g_rw, &ts) == EDEADLK);
  CHECK(pthread_rwlock_timedrdlock(&g_rw, &ts) == EDEADLK);
  ts = abs_in(CLOCK_MONOTONIC, 10);
  CHECK(pthread_rwlock_clockrdlock(&g_rw, CLOCK_MONOTONIC, &ts) == EDEADLK);
  CHECK(pthread_rwlock_clockwrlock(&g_rw, CLOCK_MONOTONIC, &ts) == EDEADLK);
  /* glibc checks the clock and the timeout's validity first, then EDEADLK */
  struct timespec bad = {0, 2000000000L};
  CHECK(pthread_rwlock_timedwrlock(&g_rw, &bad) == EINVAL);
  CHECK(pthread_rwlock_timedrdlock(&g_rw, &bad) == EINVAL);
  CHECK(pthread_rwlock_clockrdlock(&g_rw, 12345, &ts) == EINVAL);
  CHECK(pthread_rwlock_trywrlock(&g_rw) == EBUSY);
  CHECK(pthread_rwlock_tryrdlock(&g_rw) == EBUSY);
  /* Several threads in turn, so under the shim some share this thread's worker. */
  for (int i = 0; i < 4; i++) {
    pthread_t t;
    CHECK(pthread_create(&t, NULL, other_thread_tries, NULL) == 0);
    CHECK(pthread_join(t, NULL) == 0);
  }
  CHECK(pthread_rwlock_unlock(&g_rw) == 0);
  /* After the unlock the same thread locks again normally; a read lock is not a write lock. */
  CHECK(pthread_rwlock_rdlock(&g_rw) == 0);
  CHECK(pthread_rwlock_rdlock(&g_rw) == 0); /* recursive read: allowed by default kind */
  CHECK(pthread_rwlock_unlock(&g_rw) == 0);
  CHECK(pthread_rwlock_unlock(&g_rw) == 0);
  CHECK(pthread_rwlock_wrlock(&g_rw) == 0);
  CHECK(pthread_rwlock_unlock(&g_rw) == 0);
  /* An invalid timeout is refused even when the lock is free. */
  CHECK(pthread_rwlock_timedrdlock(&g_rw, &bad) == EINVAL);
  CHECK(pthread_rwlock_timedwrlock(&g_rw, &bad) == EINVAL);
  CHECK(pthread_rwlock_trywrlock(&g_rw) == 0);
  CHECK(pthread_rwlock_unlock(&g_rw) == 0);
  CHECK(pthread_rwlock_destroy(&g_rw) == 0);
}

/* --- writer preference ------------------------------------------------------------------- */

static atomic_int g_writer_state; /* 0 not started, 1 waiting, 2 holds, 3 done */
static double g_writer_waited_ms;

static void* writer(void* arg) {
  (void)arg;
  atomic_store(&g_writer_state, 1);
  double t0 = now_ms();
  CHECK(pthread_rwlock_wrlock(&g_rw) == 0);
  g_writer_waited_ms = now_ms() - t0;
  atomic_store(&g_writer_state, 2);
  usleep(20000);
  CHECK(pthread_rwlock_unlock(&g_rw) == 0);
  atomic_store(&g_writer_state, 3);
  return NULL;
}

static void* late_reader(void* arg) {
  int* got = arg;
  *got = pthread_rwlock_tryrdlock(&g_rw);
  if (*got == 0) CHECK(pthread_rwlock_unlock(&g_rw) == 0);
  return NULL;
}

static void init_kind(int kind) {
  pthread_rwlockattr_t a;
  CHECK(pthread_rwlockattr_init(&a) == 0);
  CHECK(pthread_rwlockattr_setkind_np(&a, kind) == 0);
  CHECK(pthread_rwlock_init(&g_rw, &a) == 0);
  CHECK(pthread_rwlockattr_destroy(&a) == 0);
}

/* A reader holds the lock, a writer queues, a new reader arrives (from another thread). */
static void check_queued_writer(int kind, int expect_new_reader) {
  init_kind(kind);
  atomic_store(&g_writer_state, 0);
  CHECK(pthread_rwlock_rdlock(&g_rw) == 0);
  pthread_t w;
  CHECK(pthread_create(&w, NULL, writer, NULL) == 0);
  while (atomic_load(&g_writer_state) == 0) usleep(1000);
  usleep(100000); /* the writer is now blocked in wrlock */
  int got = -1;
  pthread_t r;
  CHECK(pthread_create(&r, NULL, late_reader, &got) == 0);
  CHECK(pthread_join(r, NULL) == 0);
  CHECK(got == expect_new_reader);
  if (expect_new_reader == EBUSY) {
    /* a timed reader from this very thread (which holds a read lock: non-recursive kind) */
    struct timespec ts = abs_in(CLOCK_REALTIME, 30);
    CHECK(pthread_rwlock_timedrdlock(&g_rw, &ts) == ETIMEDOUT);
  }
  CHECK(atomic_load(&g_writer_state) == 1);
  CHECK(pthread_rwlock_unlock(&g_rw) == 0);
  CHECK(pthread_join(w, NULL) == 0);
  CHECK(atomic_load(&g_writer_state) == 3);
  CHECK(pthread_rwlock_destroy(&g_rw) == 0);
}

/* Readers overlap continuously for 1.5 s; the writer must still get in promptly. */
enum { kReaders = 8 };
static atomic_int g_stop;

static void* busy_reader(void* arg) {
  (void)arg;
  for (int i = 0; i < 100000 && !atomic_load(&g_stop); i++) {
    CHECK(pthread_rwlock_rdlock(&g_rw) == 0);
    usleep(2000);
    CHECK(pthread_rwlock_unlock(&g_rw) == 0);
  }
  return NULL;
}

static void check_no_writer_starvation(void) {
  init_kind(PTHREAD_RWLOCK_PREFER_WRITER_NONRECURSIVE_NP);
  atomic_store(&g_stop, 0);
  atomic_store(&g_writer_state, 0);
  pthread_t rs[kReaders], w;
  for (int i = 0; i < kReaders; i++) CHECK(pthread_create(&rs[i], NULL, busy_reader, NULL) == 0);
  usleep(50000);
  CHECK(pthread_create(&w, NULL, writer, NULL) == 0);
  CHECK(pthread_join(w, NULL) == 0);
  atomic_store(&g_stop, 1);
  for (int i = 0; i < kReaders; i++) CHECK(pthread_join(rs[i], NULL) == 0);
  fprintf(stderr, "rwlock_kinds: writer behind %d readers waited %.1f ms\n", kReaders,
          g_writer_waited_ms);
  CHECK(g_writer_waited_ms < 200);
  CHECK(pthread_rwlock_destroy(&g_rw) == 0);
}

int main(void) {
  time_limit(60);
  check_edeadlk();
  check_queued_writer(PTHREAD_RWLOCK_PREFER_WRITER_NONRECURSIVE_NP, EBUSY);
  check_queued_writer(PTHREAD_RWLOCK_PREFER_READER_NP, 0);
  check_queued_writer(PTHREAD_RWLOCK_PREFER_WRITER_NP, 0); /* glibc: same as reader */
  check_no_writer_starvation();
  check_os_threads("rwlock_kinds");
  puts("rwlock_kinds: ok");
  return 0;
}
