/* Deferred cancellation and pthread_exit, as POSIX and glibc define them: a thread cancelled
 * while blocked in read() (a pipe), in nanosleep(), in pthread_cond_wait(), in poll() and in
 * pthread_join(), or at pthread_testcancel(), runs its cleanup handlers innermost first and its
 * thread-key destructors, and pthread_join returns PTHREAD_CANCELED; a cancelled
 * pthread_cond_wait re-acquires the mutex before the handlers run; with
 * PTHREAD_CANCEL_DISABLE the blocking call completes normally and the cancel acts once
 * re-enabled; pthread_exit runs the cleanup handlers too; a cancelled thread's stack variables
 * are not touched after it ends. Under greenrun these threads are fibers parked in the shim's
 * hooks. */
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>

#include "shim_test.h"

enum { kRead, kSleep, kCond, kPoll, kJoin, kTest, kModes };
static const char* const kNames[] = {"read", "nanosleep", "cond_wait", "poll", "join",
                                     "testcancel"};

static int g_pipe[2];
static pthread_mutex_t g_mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t g_cv = PTHREAD_COND_INITIALIZER;
static pthread_key_t g_key;
static atomic_int g_key_dtors, g_started;
static pthread_t g_forever;  // joined by the kJoin thread; never ends by itself

struct Log {
  int order[4];
  int n;
  int mutex_held;  // the cond_wait handler found the mutex locked (by this thread)
};
static struct Log g_log[kModes];

static void key_dtor(void* v) {
  (void)v;
  g_key_dtors++;
}

static void handler(void* arg) {
  long code = (long)arg;
  struct Log* l = &g_log[code / 10];
  l->order[l->n++] = (int)(code % 10);
}

static void unlock_handler(void* arg) {
  struct Log* l = arg;
  /* The mutex must be held by us: trylock on a default mutex we hold says EBUSY. */
  l->mutex_held = pthread_mutex_trylock(&g_mu) == EBUSY;
  l->order[l->n++] = 9;
  pthread_mutex_unlock(&g_mu);
}

static void* forever(void* arg) {
  (void)arg;
  for (;;) usleep(100000);
  return NULL;
}

static void* victim(void* arg) {
  long mode = (long)arg;
  CHECK(pthread_setspecific(g_key, (void*)1) == 0);
  pthread_cleanup_push(handler, (void*)(mode * 10 + 1));
  pthread_cleanup_push(handler, (void*)(mode * 10 + 2));
  atomic_fetch_add(&g_started, 1);
  switch (mode) {
    case kRead: {
      char c;
      for (;;) (void)read(g_pipe[0], &c, 1);  /* nobody writes */
    }
    case kSleep:
      for (;;) {
        struct timespec ts = {10, 0};
        nanosleep(&ts, NULL);
      }
    case kCond:
      pthread_mutex_lock(&g_mu);
      pthread_cleanup_push(unlock_handler, &g_log[kCond]);
      for (;;) pthread_cond_wait(&g_cv, &g_mu);
      pthread_cleanup_pop(0);
      break;
    case kPoll:
      for (;;) {
        struct pollfd p = {g_pipe[0], POLLIN, 0};
        poll(&p, 1, -1);
      }
    case kJoin:
      pthread_join(g_forever, NULL);
      break;
    case kTest:
      for (;;) {
        pthread_testcancel();
        sched_yield();
      }
  }
  pthread_cleanup_pop(0);
  pthread_cleanup_pop(0);
  return (void*)1;
}

/* PTHREAD_CANCEL_DISABLE defers: the sleep completes, the cancel acts when re-enabled. */
static atomic_int g_disabled_done;
static void* disabled_victim(void* arg) {
  (void)arg;
  int old;
  CHECK(pthread_setcancelstate(PTHREAD_CANCEL_DISABLE, &old) == 0);
  CHECK(old == PTHREAD_CANCEL_ENABLE);
  atomic_fetch_add(&g_started, 1);
  CHECK(usleep(200000) == 0); /* cancelled meanwhile: still sleeps the whole time */
  g_disabled_done = 1;
  CHECK(pthread_setcancelstate(PTHREAD_CANCEL_ENABLE, &old) == 0);
  CHECK(old == PTHREAD_CANCEL_DISABLE);
  pthread_testcancel();
  g_disabled_done = 2; /* not reached */
  return NULL;
}

static struct Log g_exit_log;
static void exit_handler(void* arg) { g_exit_log.order[g_exit_log.n++] = (int)(long)arg; }
static void* exiter(void* arg) {
  (void)arg;
  pthread_cleanup_push(exit_handler, (void*)1);
  pthread_cleanup_push(exit_handler, (void*)2);
  usleep(1000);
  pthread_exit((void*)77);
  pthread_cleanup_pop(0);
  pthread_cleanup_pop(0);
  return NULL;
}

int main(void) {
  time_limit(60);
  CHECK(pipe(g_pipe) == 0);
  CHECK(pthread_key_create(&g_key, key_dtor) == 0);
  CHECK(pthread_create(&g_forever, NULL, forever, NULL) == 0);
  pthread_t t[kModes];
  for (long m = 0; m < kModes; ++m) CHECK(pthread_create(&t[m], NULL, victim, (void*)m) == 0);
  while (atomic_load(&g_started) < kModes) usleep(1000);
  usleep(50000); /* every victim is blocked in its call */
  for (int m = 0; m < kModes; ++m) CHECK(pthread_cancel(t[m]) == 0);
  for (int m = 0; m < kModes; ++m) {
    void* r = NULL;
    CHECK(pthread_join(t[m], &r) == 0);
    if (r != PTHREAD_CANCELED) fprintf(stderr, "mode %s: not cancelled\n", kNames[m]);
    CHECK(r == PTHREAD_CANCELED);
    struct Log* l = &g_log[m];
    int base = m == kCond ? 1 : 0;
    if (m == kCond) CHECK(l->order[0] == 9 && l->mutex_held);
    CHECK(l->n == 2 + base);
    CHECK(l->order[base] == 2 && l->order[base + 1] == 1); /* innermost first */
  }
  CHECK(atomic_load(&g_key_dtors) == kModes);
  CHECK(pthread_mutex_trylock(&g_mu) == 0); /* the handler released it */
  CHECK(pthread_mutex_unlock(&g_mu) == 0);

  pthread_t d;
  CHECK(pthread_create(&d, NULL, disabled_victim, NULL) == 0);
  while (atomic_load(&g_started) < kModes + 1) usleep(1000);
  usleep(20000);
  CHECK(pthread_cancel(d) == 0);
  CHECK(pthread_cancel(d) == 0); /* twice: still one cancellation */
  void* r = NULL;
  CHECK(pthread_join(d, &r) == 0);
  CHECK(r == PTHREAD_CANCELED && g_disabled_done == 1);

  pthread_t e;
  CHECK(pthread_create(&e, NULL, exiter, NULL) == 0);
  CHECK(pthread_join(e, &r) == 0);
  CHECK(r == (void*)77);
  CHECK(g_exit_log.n == 2 && g_exit_log.order[0] == 2 && g_exit_log.order[1] == 1);

  CHECK(pthread_cancel(g_forever) == 0);
  CHECK(pthread_join(g_forever, &r) == 0 && r == PTHREAD_CANCELED);
  puts("thread_cancel: ok");
  return 0;
}
