/* A thread that runs without entering the runtime does not hold the others (issue 12 item 2):
 * under greenrun its worker is handed to a spare OS thread after two slices, as Go's sysmon
 * hands off a P. Every part holds for plain OS threads too, with the same assertions; under
 * greenrun it must hold with one worker.
 *
 * 1. spinner: a thread spins on a flag with no call at all while main sleeps 20 x 5 ms; main's
 *    sleeps must end on time (the whole loop < 1.5 s), then main sets the flag.
 * 2. busy-wait on a flag that a sleeping thread sets (the redis I/O-thread pattern): the
 *    waiter must see it (the setter's 50 ms timer must fire meanwhile).
 * 3. pthread_spin_lock whose holder sleeps 50 ms: the spinner gets the lock.
 * 4. raw syscall(SYS_read) on an empty pipe (a call the shim passes through) blocks one thread;
 *    main must keep running (sleeps on time) and then releases it with a write; the read
 *    returns the byte. A raw syscall(SYS_read) on a closed fd keeps its exact errno (EBADF).
 * 5. identity across a hand-off: a thread sets errno and __thread values, spins long enough
 *    to be handed off, then checks errno, the values, their addresses and pthread_self, both
 *    before and after its next interposed call (where it reattaches).
 * 6. the bound: 6 spinners at once with SHIM_HANDOFF_MAX_OS_THREADS=N set (greenrun runs with
 *    GREEN_MAX_THREADS): never more than N OS threads run fibers, so /proc/self/status shows
 *    at most N + 6 (monitor, libuv's pool); plainly there are 7 threads at least. Main still
 *    finishes (the spinners stop by themselves after a bounded number of iterations).
 * 7. (argument "exit") main returns 7 while a thread spins forever: the process exits at
 *    once with status 7 and its output flushed (tests/shim/handoff_exit.sh).
 * 8. a signal handler on a handed-off thread: a thread spins (handed off), main sends it
 *    SIGUSR1, whose handler write()s a byte to a pipe (an interposed call, in signal context);
 *    main reads it. Afterwards no thread of the process blocks SIGUSR1 (/proc: the handler's
 *    mask ended with the handler, on the thread that took it), and the thread, spinning again,
 *    still does not hold main (its sleeps are on time). Under greenrun the handler's write
 *    once reattached the fiber from inside the kernel's signal frame: that OS thread kept the
 *    handler's mask (SIGURG blocked) for ever, and the next spin on it held its worker (redis
 *    with I/O threads hung at SIGTERM). */
#include <dirent.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdint.h>
#include <sys/syscall.h>

#include "shim_test.h"

/* Spins on *flag with no interposed call (clock_gettime is the vDSO's: no runtime entry) for
 * at most `ms` milliseconds (bounded: a broken runtime fails the test instead of hanging it).
 * Returns 1 if the flag was seen. */
static int spin_until(atomic_int* flag, double ms) {
  double end = now_ms() + ms;
  for (unsigned long i = 0;; ++i) {
    if (atomic_load_explicit(flag, memory_order_acquire)) return 1;
    if ((i & 4095) == 0 && now_ms() > end) return 0;
  }
}

static const double kSpinLimitMs = 10000;

static void sleep_ms(int ms) {
  struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
  CHECK(nanosleep(&ts, NULL) == 0);
}

/* Main's probe: 20 sleeps of 5 ms; returns the time they took. */
static double probe_sleeps(void) {
  double t0 = now_ms();
  for (int i = 0; i < 20; ++i) sleep_ms(5);
  return now_ms() - t0;
}

/* --- 1. spinner ---------------------------------------------------------------------------- */

static atomic_int spin_stop;
static atomic_int spin_saw;

static void* spinner(void* arg) {
  (void)arg;
  atomic_store(&spin_saw, spin_until(&spin_stop, kSpinLimitMs));
  return NULL;
}

static void part_spinner(void) {
  pthread_t t;
  atomic_store(&spin_stop, 0);
  double t0 = now_ms();
  CHECK(pthread_create(&t, NULL, spinner, NULL) == 0);
  sleep_ms(30); /* the spinner is running now */
  probe_sleeps();
  double took = now_ms() - t0;
  atomic_store(&spin_stop, 1);
  CHECK(pthread_join(t, NULL) == 0);
  fprintf(stderr, "spinner: 30 ms + 20 x 5 ms sleeps took %.0f ms\n", took);
  CHECK(took < 1500);
  CHECK(atomic_load(&spin_saw) == 1);
}

/* --- 2. busy-wait on a flag set by a sleeper ----------------------------------------------- */

static atomic_int flag2;
static atomic_int waiter2_saw;

static void* busy_waiter(void* arg) {
  (void)arg;
  atomic_store(&waiter2_saw, spin_until(&flag2, kSpinLimitMs));
  return NULL;
}

static void* flag_setter(void* arg) {
  (void)arg;
  sleep_ms(50);
  atomic_store_explicit(&flag2, 1, memory_order_release);
  return NULL;
}

static void part_busy_wait(void) {
  pthread_t w, s;
  double t0 = now_ms();
  CHECK(pthread_create(&w, NULL, busy_waiter, NULL) == 0);
  CHECK(pthread_create(&s, NULL, flag_setter, NULL) == 0);
  CHECK(pthread_join(s, NULL) == 0);
  CHECK(pthread_join(w, NULL) == 0);
  double took = now_ms() - t0;
  fprintf(stderr, "busy-wait: the flag was seen after %.0f ms\n", took);
  CHECK(atomic_load(&waiter2_saw) == 1);
  CHECK(took < 3000);
}

/* --- 3. pthread_spin_lock whose holder sleeps ------------------------------------------------ */

static pthread_spinlock_t spin3;
static atomic_int holder3_has;

static void* spin_holder(void* arg) {
  (void)arg;
  CHECK(pthread_spin_lock(&spin3) == 0);
  atomic_store(&holder3_has, 1);
  sleep_ms(50);
  CHECK(pthread_spin_unlock(&spin3) == 0);
  return NULL;
}

static void* spin_taker(void* arg) {
  (void)arg;
  CHECK(pthread_spin_lock(&spin3) == 0);
  CHECK(pthread_spin_unlock(&spin3) == 0);
  return NULL;
}

static void part_spin_lock(void) {
  pthread_t h, t;
  double t0 = now_ms();
  CHECK(pthread_spin_init(&spin3, PTHREAD_PROCESS_PRIVATE) == 0);
  CHECK(pthread_create(&h, NULL, spin_holder, NULL) == 0);
  while (!atomic_load(&holder3_has)) sleep_ms(1);
  CHECK(pthread_create(&t, NULL, spin_taker, NULL) == 0);
  CHECK(pthread_join(h, NULL) == 0);
  CHECK(pthread_join(t, NULL) == 0);
  double took = now_ms() - t0;
  fprintf(stderr, "spin lock: taken after %.0f ms\n", took);
  CHECK(took < 3000);
  CHECK(pthread_spin_destroy(&spin3) == 0);
}

/* --- 4. raw syscall(SYS_read) -------------------------------------------------------------- */

static int pipe4[2];
static long read4_ret;
static char read4_byte;

static void* raw_reader(void* arg) {
  (void)arg;
  read4_ret = syscall(SYS_read, pipe4[0], &read4_byte, 1);
  return NULL;
}

static void part_raw_read(void) {
  pthread_t t;
  CHECK(pipe(pipe4) == 0);
  double t0 = now_ms();
  CHECK(pthread_create(&t, NULL, raw_reader, NULL) == 0);
  sleep_ms(30); /* the reader is blocked in the kernel now */
  probe_sleeps();
  double took = now_ms() - t0;
  char b = 'x';
  CHECK(write(pipe4[1], &b, 1) == 1);
  CHECK(pthread_join(t, NULL) == 0);
  fprintf(stderr, "raw read: 30 ms + 20 x 5 ms sleeps took %.0f ms next to it\n", took);
  CHECK(took < 1500);
  CHECK(read4_ret == 1);
  CHECK(read4_byte == 'x');
  close(pipe4[0]);
  close(pipe4[1]);
  errno = 0;
  CHECK(syscall(SYS_read, pipe4[0], &b, 1) == -1);
  CHECK(errno == EBADF);
}

/* --- 5. identity across a hand-off ----------------------------------------------------------- */

static __thread long tls5 = 77;
static __thread char tls5_buf[64];

static void* identity_spinner(void* arg) {
  (void)arg;
  int* e = &errno;
  long* v = &tls5;
  pthread_t self = pthread_self();
  CHECK(tls5 == 77); /* a fresh thread's initial value */
  tls5 = 123456;
  snprintf(tls5_buf, sizeof tls5_buf, "identity spinner");
  errno = 4321;
  atomic_int never = 0;
  spin_until(&never, 300); /* 300 ms: many slices, no interposed call */
  int saved = errno;       /* no call since errno was set */
  CHECK(saved == 4321);
  CHECK(&errno == e && &tls5 == v && tls5 == 123456);
  CHECK(strcmp(tls5_buf, "identity spinner") == 0);
  CHECK(pthread_equal(self, pthread_self()));
  sleep_ms(1); /* an interposed call: under greenrun the fiber reattaches here */
  CHECK(&errno == e && &tls5 == v && tls5 == 123456);
  CHECK(strcmp(tls5_buf, "identity spinner") == 0);
  CHECK(pthread_equal(self, pthread_self()));
  return (void*)(intptr_t)1;
}

static void part_identity(void) {
  pthread_t t[2];
  for (int i = 0; i < 2; ++i) CHECK(pthread_create(&t[i], NULL, identity_spinner, NULL) == 0);
  double took = probe_sleeps();
  for (int i = 0; i < 2; ++i) {
    void* r = NULL;
    CHECK(pthread_join(t[i], &r) == 0);
    CHECK(r == (void*)(intptr_t)1);
  }
  fprintf(stderr, "identity: 20 x 5 ms sleeps took %.0f ms next to 2 spinners\n", took);
  CHECK(took < 1500);
}

/* --- 6. the bound ---------------------------------------------------------------------------- */

enum { kBoundSpinners = 6 };
static atomic_int bound_stop;
static atomic_int bound_running;

static void* bound_spinner(void* arg) {
  (void)arg;
  atomic_fetch_add(&bound_running, 1);
  spin_until(&bound_stop, 1000); /* then gives up by itself */
  return NULL;
}

static void part_bound(void) {
  const char* v = getenv("SHIM_HANDOFF_MAX_OS_THREADS");
  if (!v) return;
  int max = atoi(v);
  pthread_t t[kBoundSpinners];
  int peak = 0;
  for (int i = 0; i < kBoundSpinners; ++i)
    CHECK(pthread_create(&t[i], NULL, bound_spinner, NULL) == 0);
  for (int i = 0; i < 10; ++i) {
    sleep_ms(20);
    int n = os_threads();
    if (n > peak) peak = n;
  }
  atomic_store(&bound_stop, 1);
  for (int i = 0; i < kBoundSpinners; ++i) CHECK(pthread_join(t[i], NULL) == 0);
  fprintf(stderr, "bound: at most %d OS threads with %d spinners (fiber threads <= %d)\n", peak,
          kBoundSpinners, max);
  if (under_green()) {
    CHECK(peak <= max + 6);
  } else {
    CHECK(peak >= kBoundSpinners + 1);
  }
}

/* --- 8. a signal handler on a handed-off thread ----------------------------------------------- */

static int pipe8[2];
static atomic_int handled8;
static atomic_int stop8a, stop8b;
static atomic_int saw8a, saw8b;

static void on_usr1(int s) {
  (void)s;
  char c = 'h';
  int saved = errno;
  atomic_store(&handled8, 1);
  (void)!write(pipe8[1], &c, 1); /* async-signal-safe, interposed under greenrun */
  errno = saved;
}

static void* handler_spinner(void* arg) {
  (void)arg;
  atomic_store(&saw8a, spin_until(&stop8a, kSpinLimitMs)); /* takes SIGUSR1 meanwhile */
  atomic_store(&saw8b, spin_until(&stop8b, kSpinLimitMs)); /* spins again afterwards */
  return NULL;
}

/* The number of this process's threads whose kernel mask blocks `sig` (/proc/self/task). */
static int threads_blocking(int sig) {
  DIR* d = opendir("/proc/self/task");
  CHECK(d != NULL);
  int n = 0;
  struct dirent* e;
  while ((e = readdir(d)) != NULL) {
    if (e->d_name[0] == '.') continue;
    char path[300], line[256];
    snprintf(path, sizeof path, "/proc/self/task/%s/status", e->d_name);
    FILE* f = fopen(path, "r");
    if (!f) continue; /* the thread ended meanwhile */
    while (fgets(line, sizeof line, f)) {
      unsigned long long m;
      if (sscanf(line, "SigBlk: %llx", &m) == 1 && (m >> (sig - 1) & 1)) {
        fprintf(stderr, "handler: thread %s blocks signal %d (SigBlk %llx)\n", e->d_name, sig, m);
        ++n;
      }
    }
    fclose(f);
  }
  closedir(d);
  return n;
}

static void part_handler(void) {
  struct sigaction sa;
  memset(&sa, 0, sizeof sa);
  sa.sa_handler = on_usr1;
  sigemptyset(&sa.sa_mask);
  CHECK(sigaction(SIGUSR1, &sa, NULL) == 0);
  CHECK(pipe(pipe8) == 0);
  pthread_t t;
  CHECK(pthread_create(&t, NULL, handler_spinner, NULL) == 0);
  sleep_ms(30);
  probe_sleeps(); /* the spinner has run for 130 ms: handed off under greenrun */
  CHECK(pthread_kill(t, SIGUSR1) == 0);
  char c = 0;
  CHECK(read(pipe8[0], &c, 1) == 1 && c == 'h');
  CHECK(atomic_load(&handled8) == 1);
  atomic_store(&stop8a, 1);
  sleep_ms(20); /* the spinner moves on to its second spin */
  int blocking = threads_blocking(SIGUSR1);
  double took = 0;
  for (int round = 0; round < 3; ++round) {
    double r = probe_sleeps();
    if (r > took) took = r;
  }
  atomic_store(&stop8b, 1);
  CHECK(pthread_join(t, NULL) == 0);
  fprintf(stderr,
          "handler: %d threads block SIGUSR1 after the handler; 20 x 5 ms sleeps next "
          "to the spinner took at most %.0f ms\n",
          blocking, took);
  CHECK(blocking == 0);
  CHECK(took < 1500);
  CHECK(atomic_load(&saw8a) == 1 && atomic_load(&saw8b) == 1);
  sa.sa_handler = SIG_DFL;
  CHECK(sigaction(SIGUSR1, &sa, NULL) == 0);
  close(pipe8[0]);
  close(pipe8[1]);
}

/* --- 7. main returns while a thread spins forever ------------------------------------------- */

static void* forever(void* arg) {
  (void)arg;
  atomic_int never = 0;
  for (;;) spin_until(&never, 1e9);
  return NULL;
}

/* The process must exit with main's status (7) at once, as it does with OS threads: under
 * greenrun with one worker the spinner is detached on the initial thread, whose stack holds
 * the return of main, so the runtime's last thread exits instead (runtime/src/machine.hpp). */
static int part_exit(void) {
  pthread_t t;
  CHECK(pthread_create(&t, NULL, forever, NULL) == 0);
  sleep_ms(100); /* the spinner runs (and is handed off) meanwhile */
  printf("handoff exit: main returns 7\n");
  return 7;
}

int main(int argc, char** argv) {
  time_limit(120);
  const char* only = argc > 1 ? argv[1] : NULL;
  if (only && !strcmp(only, "exit")) {
    time_limit(20);
    return part_exit();
  }
  if (!only || !strcmp(only, "spinner")) part_spinner();
  if (!only || !strcmp(only, "busy")) part_busy_wait();
  if (!only || !strcmp(only, "spinlock")) part_spin_lock();
  if (!only || !strcmp(only, "rawread")) part_raw_read();
  if (!only || !strcmp(only, "identity")) part_identity();
  if (!only || !strcmp(only, "bound")) part_bound();
  if (!only || !strcmp(only, "handler")) part_handler();
  printf("handoff: ok\n");
  return 0;
}
