/* Each thread keeps its own floating-point environment across switches: the SSE and x87
 * rounding modes (fesetround sets both), MXCSR's flush-to-zero and denormals-are-zero bits,
 * and MXCSR's sticky exception flags. On OS threads the kernel keeps them per thread; under
 * greenrun the threads are fibers on one or two workers, and the switch (runtime/src/switch.hpp)
 * must keep them per fiber: it stores MXCSR and the x87 control word on every switch and
 * reloads them when the next fiber's differ.
 *
 * Four threads with four environments take turns on one mutex and condition variable (every
 * turn is a hand-off: the next thread runs on the CPU the last one left) and call sched_yield
 * between turns; each checks its own environment and the results it computes with it on every
 * turn. Each starts by checking that it inherited main's environment, as pthread_create
 * gives it. The main thread keeps the default environment and checks it at the end. x86-64 only
 * (MXCSR); elsewhere the test checks the rounding modes alone. */
#include <fenv.h>
#include <float.h>
#include <pthread.h>
#include <sched.h>

#include "shim_test.h"

#if defined(__x86_64__)
#include <xmmintrin.h>
#define HAVE_MXCSR 1
#define MXCSR_FTZ 0x8000u
#define MXCSR_DAZ 0x0040u
#define MXCSR_FLAGS 0x003fu
#else
#define HAVE_MXCSR 0
#endif

enum { kThreads = 4, kTurns = 20000 };

static const int kModes[kThreads] = {FE_UPWARD, FE_DOWNWARD, FE_TOWARDZERO, FE_TONEAREST};
static const int kFlushZero[kThreads] = {1, 0, 1, 0};

static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t cv = PTHREAD_COND_INITIALIZER;
static int turn = 0;

static volatile double one = 1.0, three = 3.0, tiny = DBL_MIN;
static volatile long double lone = 1.0L, lthree = 3.0L;

struct result {
  double third;       /* 1/3 in SSE double under this thread's mode */
  long double lthird; /* 1/3 in x87 long double */
};
static struct result results[kThreads];

static void check_env(int i) {
  CHECK(fegetround() == kModes[i]);
#if HAVE_MXCSR
  unsigned csr = _mm_getcsr();
  CHECK(((csr & MXCSR_FTZ) != 0) == (kFlushZero[i] != 0));
  CHECK(((csr & MXCSR_DAZ) != 0) == (kFlushZero[i] != 0));
#endif
}

static void* body(void* arg) {
  int i = (int)(long)arg;
  /* A new thread starts with its creator's environment (main's default one), not with that
   * of whichever thread ran on the same CPU, or stack, before it. */
  CHECK(fegetround() == FE_TONEAREST);
#if HAVE_MXCSR
  CHECK((_mm_getcsr() & (MXCSR_FTZ | MXCSR_DAZ)) == 0);
#endif
  CHECK(fesetround(kModes[i]) == 0);
#if HAVE_MXCSR
  unsigned csr = _mm_getcsr() & ~(MXCSR_FLAGS | MXCSR_FTZ | MXCSR_DAZ);
  if (kFlushZero[i]) csr |= MXCSR_FTZ | MXCSR_DAZ;
  _mm_setcsr(csr);
#endif
  double third = one / three;
  long double lthird = lone / lthree;
  results[i].third = third;
  results[i].lthird = lthird;
  for (int k = 0; k < kTurns; ++k) {
    CHECK(pthread_mutex_lock(&mu) == 0);
    while (turn % kThreads != i) CHECK(pthread_cond_wait(&cv, &mu) == 0);
    check_env(i);
    CHECK(one / three == third);
    CHECK(lone / lthree == lthird);
    /* Half of DBL_MIN is a denormal: flushed to zero only where FTZ is on. */
    CHECK((tiny / 2.0 == 0.0) == (kFlushZero[i] != 0));
    ++turn;
    CHECK(pthread_cond_broadcast(&cv) == 0);
    CHECK(pthread_mutex_unlock(&mu) == 0);
    sched_yield();
    check_env(i);
  }
  return NULL;
}

int main(void) {
  time_limit(120);
#if HAVE_MXCSR
  _mm_setcsr(_mm_getcsr() & ~MXCSR_FLAGS); /* main's sticky flags: none raised */
#endif
  pthread_t t[kThreads];
  for (long i = 0; i < kThreads; ++i) CHECK(pthread_create(&t[i], NULL, body, (void*)i) == 0);
  for (int i = 0; i < kThreads; ++i) CHECK(pthread_join(t[i], NULL) == 0);
  CHECK(turn == kThreads * kTurns);
  /* Main's environment is its own: default rounding, no FTZ/DAZ, and none of the inexact and
   * underflow flags the threads raised (main itself did only exact arithmetic). */
  CHECK(fegetround() == FE_TONEAREST);
#if HAVE_MXCSR
  CHECK((_mm_getcsr() & (MXCSR_FTZ | MXCSR_DAZ)) == 0);
  CHECK((_mm_getcsr() & MXCSR_FLAGS) == 0);
#endif
  CHECK(tiny / 2.0 != 0.0);
  /* The modes really differed: for 1/3, upward > downward == toward-zero (== to-nearest). */
  CHECK(results[0].third > results[1].third);
  CHECK(results[0].lthird > results[1].lthird);
  CHECK(results[1].third == results[2].third);
  CHECK(results[3].third == one / three); /* main rounds to nearest, as thread 3 */
  printf("fpenv: %d threads x %d turns kept their floating-point environments\n", kThreads, kTurns);
  return 0;
}
