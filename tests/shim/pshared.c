/* Process-shared mutex, condition variable and semaphores in MAP_SHARED memory, used by this
 * process and a fork child at the same time, in both directions; each hand-over must arrive
 * promptly (the shim's fibers poll such objects with a 1-16 ms back-off). Also checks the
 * sem_t "private" field convention the shim relies on, and that other threads keep running
 * while a thread waits. Same assertions with and without the shim. */
#include <pthread.h>
#include <semaphore.h>
#include <signal.h>
#include <stdatomic.h>
#include <sys/mman.h>
#include <sys/wait.h>

#include "shim_test.h"

struct shared {
  pthread_mutex_t m;
  pthread_cond_t c;
  sem_t to_child, to_parent;
  int flag;
  double t_signal; /* CLOCK_MONOTONIC ms, written by the side that wakes the other */
  double child_wait_ms;
};

static struct shared* g;

static void child(void) {
  /* 1. the parent posts to_child after 50 ms */
  double t0 = now_ms();
  if (sem_wait(&g->to_child) != 0) _exit(10);
  g->child_wait_ms = now_ms() - g->t_signal;
  (void)t0;
  /* 2. post to_parent after 50 ms */
  usleep(50000);
  g->t_signal = now_ms();
  if (sem_post(&g->to_parent) != 0) _exit(11);
  /* 3. condvar: set the flag and signal after 50 ms */
  usleep(50000);
  if (pthread_mutex_lock(&g->m) != 0) _exit(12);
  g->flag = 1;
  g->t_signal = now_ms();
  if (pthread_cond_signal(&g->c) != 0) _exit(13);
  if (pthread_mutex_unlock(&g->m) != 0) _exit(14);
  /* 4. hold the mutex for 100 ms */
  if (sem_wait(&g->to_child) != 0) _exit(15);
  if (pthread_mutex_lock(&g->m) != 0) _exit(16);
  if (sem_post(&g->to_parent) != 0) _exit(17);
  usleep(100000);
  g->t_signal = now_ms();
  if (pthread_mutex_unlock(&g->m) != 0) _exit(18);
  _exit(0);
}

static atomic_int g_ticks, g_stop;
static void* ticker(void* arg) {
  (void)arg;
  for (int i = 0; i < 100000 && !atomic_load(&g_stop); i++) {
    usleep(2000);
    atomic_fetch_add(&g_ticks, 1);
  }
  return NULL;
}

static void* parent_side(void* arg) {
  (void)arg;
  double lat[4];
  /* 1 */
  usleep(50000);
  g->t_signal = now_ms();
  CHECK(sem_post(&g->to_child) == 0);
  /* 2 */
  int ticks0 = atomic_load(&g_ticks);
  CHECK(sem_wait(&g->to_parent) == 0);
  lat[1] = now_ms() - g->t_signal;
  CHECK(atomic_load(&g_ticks) - ticks0 >= 5); /* the ticker ran while we waited ~50 ms */
  /* 3 */
  CHECK(pthread_mutex_lock(&g->m) == 0);
  int spurious = 0;
  while (!g->flag) {
    CHECK(pthread_cond_wait(&g->c, &g->m) == 0);
    spurious++;
  }
  lat[2] = now_ms() - g->t_signal;
  CHECK(pthread_mutex_unlock(&g->m) == 0);
  /* 4 */
  CHECK(sem_post(&g->to_child) == 0);
  CHECK(sem_wait(&g->to_parent) == 0);
  CHECK(pthread_mutex_trylock(&g->m) == EBUSY);
  CHECK(pthread_mutex_lock(&g->m) == 0);
  lat[3] = now_ms() - g->t_signal;
  CHECK(pthread_mutex_unlock(&g->m) == 0);
  lat[0] = g->child_wait_ms;
  fprintf(stderr,
          "pshared: latencies ms: child sem_wait %.2f, parent sem_wait %.2f, cond_wait %.2f "
          "(%d returns), mutex_lock %.2f\n",
          lat[0], lat[1], lat[2], spurious, lat[3]);
  for (int i = 0; i < 4; i++) CHECK(lat[i] < 100);
  return NULL;
}

int main(void) {
  time_limit(60);
  g = mmap(NULL, sizeof *g, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
  CHECK(g != MAP_FAILED);
  pthread_mutexattr_t ma;
  CHECK(pthread_mutexattr_init(&ma) == 0);
  CHECK(pthread_mutexattr_setpshared(&ma, PTHREAD_PROCESS_SHARED) == 0);
  CHECK(pthread_mutex_init(&g->m, &ma) == 0);
  pthread_condattr_t ca;
  CHECK(pthread_condattr_init(&ca) == 0);
  CHECK(pthread_condattr_setpshared(&ca, PTHREAD_PROCESS_SHARED) == 0);
  CHECK(pthread_cond_init(&g->c, &ca) == 0);
  CHECK(sem_init(&g->to_child, 1, 0) == 0);
  CHECK(sem_init(&g->to_parent, 1, 0) == 0);
  /* glibc's convention, which the shim reads: 128 in a shared semaphore, 0 in a private one */
  sem_t priv;
  CHECK(sem_init(&priv, 0, 0) == 0);
  int f;
  memcpy(&f, (char*)&g->to_child + 8, sizeof f);
  CHECK(f == 128);
  memcpy(&f, (char*)&priv + 8, sizeof f);
  CHECK(f == 0);
  CHECK(sem_destroy(&priv) == 0);

  pthread_t tick;
  CHECK(pthread_create(&tick, NULL, ticker, NULL) == 0);
  pid_t pid = fork();
  CHECK(pid >= 0);
  if (pid == 0) child();
  pthread_t p;
  CHECK(pthread_create(&p, NULL, parent_side, NULL) == 0);
  CHECK(pthread_join(p, NULL) == 0);
  int st;
  CHECK(waitpid(pid, &st, 0) == pid);
  CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 0);
  atomic_store(&g_stop, 1);
  CHECK(pthread_join(tick, NULL) == 0);
  check_os_threads("pshared");
  puts("pshared: ok");
  return 0;
}
