/* Thread identity: each thread has TLS of its own, initialised as a new thread's is, and glibc
 * functions that read the calling thread's descriptor report this thread. 200 threads alive
 * at once: `__thread` variables start from their initialisers (an int, an array with data, a
 * zero-initialised one), errno starts at 0, a value set by one thread is never seen by
 * another, TLS addresses are distinct between threads and stable across calls that block
 * (under greenrun: park the fiber while other fibers of the worker run and write their own
 * TLS); pthread_getattr_np's stack holds a local's address (threads and main);
 * pthread_self() is the id pthread_create returned; gettid() and syscall(SYS_gettid) agree,
 * are distinct per thread and differ from getpid() (main: equal); tgkill(getpid(), gettid(),
 * 0) reaches the caller, tgkill to an id above the kernel's PID_MAX_LIMIT fails with ESRCH;
 * sched_getcpu() is a CPU; setuid/setgid from a thread return while others run; ctype works (the
 * locale TLS of a new thread is set up); the TLS of a library dlopen'ed after threads exist
 * (general-dynamic model) is fresh per thread. */
#include <ctype.h>
#include <dlfcn.h>
#include <poll.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdint.h>
#include <sys/syscall.h>

#include "shim_test.h"

#define N 200
static __thread int t_int = 7;
static __thread char t_str[16] = "initial";
static __thread long t_zero[8];
static pthread_t g_ids[N];
static pid_t g_tids[N];
static void* g_addr[N];
static atomic_int g_arrived, g_phase, g_in_read;
static int g_pipe[2], g_quiet[2]; /* g_quiet: never written */
static int* (*g_lib_addr)(void);

static void check_stack_has(pthread_t th, void* local) {
  pthread_attr_t a;
  void* lo = NULL;
  size_t size = 0;
  CHECK(pthread_getattr_np(th, &a) == 0);
  CHECK(pthread_attr_getstack(&a, &lo, &size) == 0);
  CHECK(pthread_attr_destroy(&a) == 0);
  CHECK(size > 0);
  CHECK((char*)local >= (char*)lo && (char*)local < (char*)lo + size);
}

static void wait_phase(int p) {
  for (int i = 0; i < 20000 && atomic_load(&g_phase) < p; ++i) usleep(500);
  CHECK(atomic_load(&g_phase) >= p);
}

static void* run(void* arg) {
  long id = (long)arg;
  int local = 0;
  CHECK(errno == 0);
  CHECK(t_int == 7 && strcmp(t_str, "initial") == 0);
  for (int i = 0; i < 8; ++i) CHECK(t_zero[i] == 0);
  CHECK(isalpha('a') && toupper('q') == 'Q');
  int* a_int = &t_int;
  char* a_str = t_str;
  int* a_errno = &errno;
  t_int = 1000 + (int)id;
  snprintf(t_str, sizeof t_str, "t%ld", id);
  t_zero[id % 8] = id + 1;
  errno = 5000 + (int)id;
  g_addr[id] = a_int;
  check_stack_has(pthread_self(), &local);
  pid_t tid = gettid();
  CHECK(syscall(SYS_gettid) == tid);
  CHECK(tid != getpid());
  CHECK(syscall(SYS_tgkill, getpid(), tid, 0) == 0);
  CHECK(tgkill(getpid(), tid, 0) == 0);
  g_tids[id] = tid;
  CHECK(sched_getcpu() >= 0);
  atomic_fetch_add(&g_arrived, 1);
  /* Everyone has written its TLS: block (park) a few times, then re-check. */
  for (int round = 0; round < 3; ++round) {
    CHECK(usleep(500 + (useconds_t)(id % 5) * 100) == 0);
    struct pollfd p = {g_quiet[0], POLLIN, 0};
    CHECK(poll(&p, 1, 1) == 0);
    CHECK(errno == 5000 + id && &errno == a_errno);
    CHECK(&t_int == a_int && t_str == a_str);
    CHECK(t_int == 1000 + id);
    char want[16];
    snprintf(want, sizeof want, "t%ld", id);
    CHECK(strcmp(t_str, want) == 0);
    CHECK(t_zero[id % 8] == id + 1);
    CHECK(gettid() == tid);
  }
  wait_phase(1);
  /* The library dlopen'ed by main after every thread existed. */
  int* lib = g_lib_addr();
  CHECK(*lib == 11);
  *lib = 2000 + (int)id;
  CHECK(usleep(200) == 0);
  CHECK(g_lib_addr() == lib && *lib == 2000 + id);
  if (id % 50 == 0) {
    /* set*id from a thread while the others are blocked in read() (restarted after glibc's
     * SIGSETXID): glibc signals every thread and waits for each to take the change (a livelock
     * if one acknowledged it in the wrong descriptor). */
    while (atomic_load(&g_in_read) < N - N / 50) usleep(500);
    CHECK(setgid(getgid()) == 0 && setuid(getuid()) == 0);
    errno = 5000 + (int)id;
  } else {
    atomic_fetch_add(&g_in_read, 1);
  }
  char c;
  CHECK(read(g_pipe[0], &c, 1) == 1);
  CHECK(t_int == 1000 + id && errno == 5000 + id);
  return (void*)pthread_self();
}

int main(void) {
  time_limit(120);
  int local = 0;
  CHECK(pipe(g_pipe) == 0 && pipe(g_quiet) == 0);
  check_stack_has(pthread_self(), &local);
  CHECK(gettid() == getpid() && syscall(SYS_gettid) == getpid());
  errno = 0;
  CHECK(tgkill(getpid(), 0x7ffffff0, 0) == -1 && errno == ESRCH);
  errno = 0;
  CHECK(syscall(SYS_tgkill, getpid(), 0x7ffffff0, 0) == -1 && errno == ESRCH);
  t_int = 99;
  pthread_attr_t a;
  pthread_attr_init(&a);
  pthread_attr_setstacksize(&a, 128 * 1024);
  for (long i = 0; i < N; ++i) {
    errno = 0;
    CHECK(pthread_create(&g_ids[i], &a, run, (void*)i) == 0);
  }
  for (int i = 0; i < 20000 && atomic_load(&g_arrived) < N; ++i) usleep(500);
  CHECK(atomic_load(&g_arrived) == N);
  void* h = dlopen(TLS_LIB_PATH, RTLD_NOW);
  CHECK(h != NULL);
  g_lib_addr = (int* (*)(void))dlsym(h, "tls_lib_addr");
  CHECK(g_lib_addr != NULL);
  CHECK(*g_lib_addr() == 11);
  atomic_store(&g_phase, 1);
  char buf[N];
  memset(buf, 'x', sizeof buf);
  CHECK(write(g_pipe[1], buf, N) == N);
  for (int i = 0; i < N; ++i) {
    void* r;
    CHECK(pthread_join(g_ids[i], &r) == 0);
    CHECK(pthread_equal((pthread_t)r, g_ids[i]));
  }
  for (int i = 0; i < N; ++i) {
    CHECK(g_tids[i] != getpid());
    for (int j = 0; j < i; ++j) {
      CHECK(g_tids[i] != g_tids[j]);
      CHECK(g_addr[i] != g_addr[j]);
      CHECK(!pthread_equal(g_ids[i], g_ids[j]));
    }
  }
  CHECK(t_int == 99 && strcmp(t_str, "initial") == 0);
  CHECK(*g_lib_addr() == 11);
  check_stack_has(pthread_self(), &local);
  puts("thread_identity: ok");
  return 0;
}
