/* syscall(SYS_futex) semantics (what the shim's fiber futex must reproduce exactly), plus
 * scale: 2000 threads waiting on one futex word, pthread_barrier_wait with 64 threads x 50
 * rounds, and a process-shared barrier used with a fork child. Same assertions with and
 * without the shim. */
#include <limits.h>
#include <linux/futex.h>
#include <pthread.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <sys/wait.h>

#include "shim_test.h"

static long futex6(void* w, int op, unsigned val, const struct timespec* ts, void* w2,
                   unsigned val3) {
  return syscall(SYS_futex, w, op, val, ts, w2, val3);
}

#define EXPECT_ERR(call, err)                                                                    \
  do {                                                                                           \
    errno = 0;                                                                                   \
    long r_ = (call);                                                                            \
    if (r_ != -1 || errno != (err)) {                                                            \
      fprintf(stderr, "%s:%d: %s = %ld errno %d, want -1 errno %d\n", __FILE__, __LINE__, #call, \
              r_, errno, (err));                                                                 \
      exit(1);                                                                                   \
    }                                                                                            \
  } while (0)

static unsigned g_w;
static unsigned g_w2 __attribute__((aligned(8)));

/* Runs the single-threaded checks on a thread of its own (a fiber-thread under the shim). */
static void* errors_and_timeouts(void* arg) {
  (void)arg;
  g_w = 1;
  /* EAGAIN: the word is not the expected value (private, shared, bitset) */
  EXPECT_ERR(futex6(&g_w, FUTEX_WAIT_PRIVATE, 0, NULL, NULL, 0), EAGAIN);
  EXPECT_ERR(futex6(&g_w, FUTEX_WAIT, 0, NULL, NULL, 0), EAGAIN);
  EXPECT_ERR(futex6(&g_w, FUTEX_WAIT_BITSET_PRIVATE, 0, NULL, NULL, FUTEX_BITSET_MATCH_ANY),
             EAGAIN);
  /* ETIMEDOUT: relative (FUTEX_WAIT), absolute monotonic and realtime (FUTEX_WAIT_BITSET) */
  struct timespec rel = {0, 30 * 1000000L};
  double t0 = now_ms();
  EXPECT_ERR(futex6(&g_w, FUTEX_WAIT_PRIVATE, 1, &rel, NULL, 0), ETIMEDOUT);
  double el = now_ms() - t0;
  CHECK(el >= 29 && el < 1000);
  struct timespec zero = {0, 0};
  EXPECT_ERR(futex6(&g_w, FUTEX_WAIT_PRIVATE, 1, &zero, NULL, 0), ETIMEDOUT);
  struct timespec a = abs_in(CLOCK_MONOTONIC, 30);
  t0 = now_ms();
  EXPECT_ERR(futex6(&g_w, FUTEX_WAIT_BITSET_PRIVATE, 1, &a, NULL, FUTEX_BITSET_MATCH_ANY),
             ETIMEDOUT);
  el = now_ms() - t0;
  CHECK(el >= 29 && el < 1000);
  a = abs_in(CLOCK_REALTIME, 30);
  t0 = now_ms();
  EXPECT_ERR(futex6(&g_w, FUTEX_WAIT_BITSET_PRIVATE | FUTEX_CLOCK_REALTIME, 1, &a, NULL,
                    FUTEX_BITSET_MATCH_ANY),
             ETIMEDOUT);
  el = now_ms() - t0;
  CHECK(el >= 29 && el < 1000);
  /* FUTEX_WAIT with FUTEX_CLOCK_REALTIME: refused by some kernels (ENOSYS), a relative
   * timeout on others */
  t0 = now_ms();
  errno = 0;
  CHECK(futex6(&g_w, FUTEX_WAIT_PRIVATE | FUTEX_CLOCK_REALTIME, 1, &rel, NULL, 0) == -1);
  el = now_ms() - t0;
  CHECK(errno == ENOSYS || (errno == ETIMEDOUT && el >= 29 && el < 1000));
  /* an absolute time in the past: at once */
  struct timespec past = {1, 0};
  t0 = now_ms();
  EXPECT_ERR(futex6(&g_w, FUTEX_WAIT_BITSET, 1, &past, NULL, FUTEX_BITSET_MATCH_ANY), ETIMEDOUT);
  CHECK(now_ms() - t0 < 50);
  /* EINVAL: bad timeout, bitset 0, misaligned word; ENOSYS: CLOCK_REALTIME on a wake */
  struct timespec bad = {0, 1000000000L};
  EXPECT_ERR(futex6(&g_w, FUTEX_WAIT_PRIVATE, 1, &bad, NULL, 0), EINVAL);
  struct timespec neg = {-1, 0};
  EXPECT_ERR(futex6(&g_w, FUTEX_WAIT_PRIVATE, 1, &neg, NULL, 0), EINVAL);
  EXPECT_ERR(futex6(&g_w, FUTEX_WAIT_BITSET_PRIVATE, 1, NULL, NULL, 0), EINVAL);
  EXPECT_ERR(futex6(&g_w, FUTEX_WAKE_BITSET_PRIVATE, 1, NULL, NULL, 0), EINVAL);
  EXPECT_ERR(futex6((char*)&g_w2 + 1, FUTEX_WAIT_PRIVATE, 0, NULL, NULL, 0), EINVAL);
  EXPECT_ERR(futex6(&g_w, FUTEX_WAKE_PRIVATE | FUTEX_CLOCK_REALTIME, 1, NULL, NULL, 0), ENOSYS);
  /* EFAULT: no memory there */
  EXPECT_ERR(futex6((void*)16, FUTEX_WAIT_PRIVATE, 0, NULL, NULL, 0), EFAULT);
  /* nobody waits: a wake wakes 0 */
  CHECK(futex6(&g_w, FUTEX_WAKE_PRIVATE, INT_MAX, NULL, NULL, 0) == 0);
  /* errno is left alone by a successful call */
  errno = 1234;
  CHECK(futex6(&g_w, FUTEX_WAKE, 1, NULL, NULL, 0) == 0 && errno == 1234);
  /* other syscalls pass through with their arguments */
  CHECK(syscall(SYS_getpid) == getpid());
  char buf[4] = {0};
  int p[2];
  CHECK(pipe(p) == 0);
  CHECK(syscall(SYS_write, p[1], "abc", 3) == 3);
  CHECK(syscall(SYS_read, p[0], buf, 3) == 3 && memcmp(buf, "abc", 3) == 0);
  CHECK(close(p[0]) == 0 && close(p[1]) == 0);
  EXPECT_ERR(syscall(SYS_close, -1), EBADF);
  return NULL;
}

/* --- wake counts and bitsets ------------------------------------------------------------- */

static unsigned g_word;
static int g_entered, g_left;

struct waiter_arg {
  unsigned bitset;
};

static void* waiter(void* p) {
  struct waiter_arg* a = p;
  __atomic_fetch_add(&g_entered, 1, __ATOMIC_SEQ_CST);
  for (int i = 0; i < 1000 && __atomic_load_n(&g_word, __ATOMIC_SEQ_CST) == 0; i++) {
    long r = futex6(&g_word, FUTEX_WAIT_BITSET_PRIVATE, 0, NULL, NULL, a->bitset);
    CHECK(r == 0 || (r == -1 && errno == EAGAIN));
    if (r == 0) break; /* woken: counted */
  }
  __atomic_fetch_add(&g_left, 1, __ATOMIC_SEQ_CST);
  return NULL;
}

static void wait_left(int n) {
  for (int i = 0; i < 2000 && __atomic_load_n(&g_left, __ATOMIC_SEQ_CST) < n; i++) usleep(1000);
  CHECK(__atomic_load_n(&g_left, __ATOMIC_SEQ_CST) == n);
}

static void check_wake_counts(void) {
  enum { N = 5 };
  pthread_t t[N];
  struct waiter_arg any = {FUTEX_BITSET_MATCH_ANY};
  g_word = 0;
  g_entered = g_left = 0;
  for (int i = 0; i < N; i++) CHECK(pthread_create(&t[i], NULL, waiter, &any) == 0);
  while (__atomic_load_n(&g_entered, __ATOMIC_SEQ_CST) < N) usleep(1000);
  usleep(100000); /* all are asleep in the futex now */
  CHECK(futex6(&g_word, FUTEX_WAKE_PRIVATE, 2, NULL, NULL, 0) == 2);
  wait_left(2);
  usleep(50000);
  CHECK(__atomic_load_n(&g_left, __ATOMIC_SEQ_CST) == 2);
  CHECK(futex6(&g_word, FUTEX_WAKE_PRIVATE, INT_MAX, NULL, NULL, 0) == N - 2);
  wait_left(N);
  for (int i = 0; i < N; i++) CHECK(pthread_join(t[i], NULL) == 0);

  /* bitsets: a wake reaches only waiters whose mask it shares */
  struct waiter_arg b1 = {1}, b2 = {2};
  pthread_t x, y;
  g_entered = g_left = 0;
  CHECK(pthread_create(&x, NULL, waiter, &b1) == 0);
  CHECK(pthread_create(&y, NULL, waiter, &b2) == 0);
  while (__atomic_load_n(&g_entered, __ATOMIC_SEQ_CST) < 2) usleep(1000);
  usleep(100000);
  CHECK(futex6(&g_word, FUTEX_WAKE_BITSET_PRIVATE, INT_MAX, NULL, NULL, 4) == 0);
  CHECK(futex6(&g_word, FUTEX_WAKE_BITSET_PRIVATE, INT_MAX, NULL, NULL, 2) == 1);
  CHECK(pthread_join(y, NULL) == 0);
  CHECK(__atomic_load_n(&g_left, __ATOMIC_SEQ_CST) == 1);
  CHECK(futex6(&g_word, FUTEX_WAKE_PRIVATE, INT_MAX, NULL, NULL, 0) == 1); /* plain wake: any */
  CHECK(pthread_join(x, NULL) == 0);
}

/* --- 2000 waiters ------------------------------------------------------------------------ */

enum { kMany = 2000 };
static unsigned g_gate;
static void* gate_waiter(void* arg) {
  (void)arg;
  __atomic_fetch_add(&g_entered, 1, __ATOMIC_SEQ_CST);
  for (int i = 0; i < 100000 && __atomic_load_n(&g_gate, __ATOMIC_ACQUIRE) == 0; i++)
    futex6(&g_gate, FUTEX_WAIT_PRIVATE, 0, NULL, NULL, 0);
  return NULL;
}

static void check_many_waiters(void) {
  static pthread_t t[kMany];
  pthread_attr_t at;
  CHECK(pthread_attr_init(&at) == 0);
  CHECK(pthread_attr_setstacksize(&at, 64 * 1024) == 0);
  g_entered = 0;
  for (int i = 0; i < kMany; i++) CHECK(pthread_create(&t[i], &at, gate_waiter, NULL) == 0);
  while (__atomic_load_n(&g_entered, __ATOMIC_SEQ_CST) < kMany) usleep(1000);
  usleep(50000);
  double t0 = now_ms();
  __atomic_store_n(&g_gate, 1, __ATOMIC_RELEASE);
  long woken = futex6(&g_gate, FUTEX_WAKE_PRIVATE, INT_MAX, NULL, NULL, 0);
  CHECK(woken >= 0 && woken <= kMany);
  for (int i = 0; i < kMany; i++) CHECK(pthread_join(t[i], NULL) == 0);
  fprintf(stderr, "futex: %d waiters, one wake woke %ld, all joined in %.1f ms\n", kMany, woken,
          now_ms() - t0);
  CHECK(pthread_attr_destroy(&at) == 0);
}

/* --- barriers ---------------------------------------------------------------------------- */

enum { kBarThreads = 64, kRounds = 50 };
static pthread_barrier_t g_bar;
static int g_arrivals, g_serials;

static void* bar_thread(void* arg) {
  (void)arg;
  for (int r = 0; r < kRounds; r++) {
    __atomic_fetch_add(&g_arrivals, 1, __ATOMIC_SEQ_CST);
    int s = pthread_barrier_wait(&g_bar);
    CHECK(s == 0 || s == PTHREAD_BARRIER_SERIAL_THREAD);
    if (s) __atomic_fetch_add(&g_serials, 1, __ATOMIC_SEQ_CST);
    /* everyone of this round arrived before anyone left it */
    CHECK(__atomic_load_n(&g_arrivals, __ATOMIC_SEQ_CST) >= (r + 1) * kBarThreads);
  }
  return NULL;
}

static void check_barrier(void) {
  pthread_barrier_t b0;
  CHECK(pthread_barrier_init(&b0, NULL, 0) == EINVAL);
  CHECK(pthread_barrier_init(&g_bar, NULL, kBarThreads) == 0);
  pthread_t t[kBarThreads];
  double t0 = now_ms();
  for (int i = 0; i < kBarThreads; i++) CHECK(pthread_create(&t[i], NULL, bar_thread, NULL) == 0);
  for (int i = 0; i < kBarThreads; i++) CHECK(pthread_join(t[i], NULL) == 0);
  CHECK(g_serials == kRounds);
  CHECK(pthread_barrier_destroy(&g_bar) == 0);
  fprintf(stderr, "futex: barrier %d threads x %d rounds in %.1f ms\n", kBarThreads, kRounds,
          now_ms() - t0);
  /* a barrier of 1 never waits */
  CHECK(pthread_barrier_init(&g_bar, NULL, 1) == 0);
  for (int i = 0; i < 3; i++) CHECK(pthread_barrier_wait(&g_bar) == PTHREAD_BARRIER_SERIAL_THREAD);
  CHECK(pthread_barrier_destroy(&g_bar) == 0);
}

/* A process-shared barrier used by this process and a fork child, 20 rounds. */
static void check_shared_barrier(void) {
  pthread_barrier_t* b =
      mmap(NULL, sizeof *b, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
  CHECK(b != MAP_FAILED);
  pthread_barrierattr_t a;
  CHECK(pthread_barrierattr_init(&a) == 0);
  CHECK(pthread_barrierattr_setpshared(&a, PTHREAD_PROCESS_SHARED) == 0);
  CHECK(pthread_barrier_init(b, &a, 2) == 0);
  pid_t pid = fork();
  CHECK(pid >= 0);
  if (pid == 0) {
    for (int r = 0; r < 20; r++) {
      int s = pthread_barrier_wait(b);
      if (s != 0 && s != PTHREAD_BARRIER_SERIAL_THREAD) _exit(2);
      if (r % 2) usleep(2000);
    }
    _exit(0);
  }
  double t0 = now_ms();
  for (int r = 0; r < 20; r++) {
    int s = pthread_barrier_wait(b);
    CHECK(s == 0 || s == PTHREAD_BARRIER_SERIAL_THREAD);
    if (r % 2 == 0) usleep(2000);
  }
  int st;
  CHECK(waitpid(pid, &st, 0) == pid && WIFEXITED(st) && WEXITSTATUS(st) == 0);
  fprintf(stderr, "futex: shared barrier with a child, 20 rounds in %.1f ms\n", now_ms() - t0);
  CHECK(pthread_barrier_destroy(b) == 0);
  CHECK(munmap(b, sizeof *b) == 0);
}

int main(void) {
  time_limit(120);
  pthread_t t;
  CHECK(pthread_create(&t, NULL, errors_and_timeouts, NULL) == 0);
  CHECK(pthread_join(t, NULL) == 0);
  check_wake_counts();
  check_many_waiters();
  check_barrier();
  check_shared_barrier();
  check_os_threads("futex");
  puts("futex: ok");
  return 0;
}
