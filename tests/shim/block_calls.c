/* Calls that wait in the kernel must not stop other threads: while one thread waits ~300 ms in
 * each of futex (private, and shared woken by another process), pthread_barrier_wait, waitid,
 * flock, fcntl(F_SETLKW), fcntl(F_OFD_SETLKW), lockf, system and pclose, 200 threads sleeping
 * 5 ms in a loop must stay on time (probe.h). Each call's own result is checked too. Same
 * assertions with and without the shim. */
#include <fcntl.h>
#include <limits.h>
#include <linux/futex.h>
#include <pthread.h>
#include <sys/file.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <sys/wait.h>

#include "probe.h"

enum { kHoldMs = 300 };

static char g_path[64];
static int g_fd_main = -1;
static pid_t g_child = -1;
static unsigned* g_word; /* MAP_SHARED */
static pthread_barrier_t g_bar;

/* Children wait for the main thread's release (a byte on this pipe), so that each wait lasts
 * kHoldMs from the waiter's start however long the set-up took. */
static int g_release_pipe[2] = {-1, -1};
static void child_wait_release(void) {
  char c;
  close(g_release_pipe[1]);
  if (read(g_release_pipe[0], &c, 1) != 1) _exit(20);
}
static pid_t fork_child(void) {
  CHECK(pipe(g_release_pipe) == 0);
  pid_t pid = fork();
  CHECK(pid >= 0);
  if (pid != 0) CHECK(close(g_release_pipe[0]) == 0);
  return pid;
}
static void release_child(void) {
  CHECK(write(g_release_pipe[1], "r", 1) == 1);
  CHECK(close(g_release_pipe[1]) == 0);
}

static long futex(unsigned* w, int op, unsigned val) {
  return syscall(SYS_futex, w, op, val, NULL, NULL, 0);
}

/* Each case: `wait` runs on its own thread and blocks about kHoldMs; `release` runs on the
 * main thread kHoldMs after the waiter started (it may do nothing). */
struct call_case {
  const char* name;
  void (*setup)(void);
  void* (*wait)(void*);
  void (*release)(void);
};

/* futex, private: released by this process */
static void futex_setup(void) {
  *g_word = 0;
}
static void* futex_wait_(void* a) {
  (void)a;
  while (__atomic_load_n(g_word, __ATOMIC_ACQUIRE) == 0) {
    long r = futex(g_word, FUTEX_WAIT_PRIVATE, 0);
    CHECK(r == 0 || (r == -1 && errno == EAGAIN));
  }
  return NULL;
}
static void futex_release(void) {
  __atomic_store_n(g_word, 1, __ATOMIC_RELEASE);
  CHECK(futex(g_word, FUTEX_WAKE_PRIVATE, INT_MAX) == 1);
}

/* futex, shared: a fork child changes the word and wakes (outside this process) */
static void shared_futex_setup(void) {
  *g_word = 0;
  g_child = fork_child();
  if (g_child == 0) {
    child_wait_release();
    __atomic_store_n(g_word, 1, __ATOMIC_RELEASE);
    syscall(SYS_futex, g_word, FUTEX_WAKE, INT_MAX, NULL, NULL, 0);
    _exit(0);
  }
}
static void* shared_futex_wait(void* a) {
  (void)a;
  while (__atomic_load_n(g_word, __ATOMIC_ACQUIRE) == 0) {
    long r = futex(g_word, FUTEX_WAIT, 0);
    CHECK(r == 0 || (r == -1 && errno == EAGAIN));
  }
  return NULL;
}
static void reap_child(void) {
  int st;
  CHECK(waitpid(g_child, &st, 0) == g_child);
  CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 0);
}

/* pthread_barrier_wait */
static int g_serial;
static void barrier_setup(void) {
  CHECK(pthread_barrier_init(&g_bar, NULL, 2) == 0);
  g_serial = 0;
}
static void* barrier_wait_(void* a) {
  (void)a;
  int r = pthread_barrier_wait(&g_bar);
  CHECK(r == 0 || r == PTHREAD_BARRIER_SERIAL_THREAD);
  if (r) __atomic_fetch_add(&g_serial, 1, __ATOMIC_RELAXED);
  return NULL;
}
static void barrier_release(void) {
  int r = pthread_barrier_wait(&g_bar);
  CHECK(r == 0 || r == PTHREAD_BARRIER_SERIAL_THREAD);
  if (r) __atomic_fetch_add(&g_serial, 1, __ATOMIC_RELAXED);
}

/* waitid: a child that exits with status 7 after kHoldMs */
static void child_exits_later(void) {
  g_child = fork_child();
  if (g_child == 0) {
    child_wait_release();
    _exit(7);
  }
}
static void* waitid_wait(void* a) {
  (void)a;
  siginfo_t si;
  memset(&si, 0, sizeof si);
  CHECK(waitid(P_PID, (id_t)g_child, &si, WEXITED) == 0);
  CHECK(si.si_pid == g_child && si.si_code == CLD_EXITED && si.si_status == 7);
  siginfo_t again;
  errno = 0;
  CHECK(waitid(P_PID, (id_t)g_child, &again, WEXITED) == -1 && errno == ECHILD);
  return NULL;
}

/* flock: this thread holds LOCK_EX on another open file description */
static void flock_setup(void) {
  g_fd_main = open(g_path, O_RDWR);
  CHECK(g_fd_main >= 0);
  CHECK(flock(g_fd_main, LOCK_EX) == 0);
}
static void* flock_wait(void* a) {
  (void)a;
  int fd = open(g_path, O_RDWR);
  CHECK(fd >= 0);
  CHECK(flock(fd, LOCK_EX | LOCK_NB) == -1 && errno == EWOULDBLOCK);
  CHECK(flock(fd, LOCK_EX) == 0);
  CHECK(flock(fd, LOCK_UN) == 0);
  CHECK(close(fd) == 0);
  return NULL;
}
static void flock_release(void) {
  CHECK(flock(g_fd_main, LOCK_UN) == 0);
  CHECK(close(g_fd_main) == 0);
}

/* fcntl(F_SETLKW) and lockf: POSIX record locks are per process, so a child holds it */
static void child_holds_record_lock(void) {
  int p[2];
  CHECK(pipe(p) == 0);
  g_child = fork_child();
  if (g_child == 0) {
    int fd = open(g_path, O_RDWR);
    struct flock fl = {.l_type = F_WRLCK, .l_whence = SEEK_SET, .l_start = 0, .l_len = 0};
    if (fd < 0 || fcntl(fd, F_SETLK, &fl) != 0) _exit(3);
    if (write(p[1], "x", 1) != 1) _exit(4);
    child_wait_release();
    _exit(0); /* the lock goes with the process */
  }
  close(p[1]);
  char c;
  CHECK(read(p[0], &c, 1) == 1);
  close(p[0]);
}
static void* setlkw_wait(void* a) {
  (void)a;
  int fd = open(g_path, O_RDWR);
  CHECK(fd >= 0);
  struct flock fl = {.l_type = F_WRLCK, .l_whence = SEEK_SET, .l_start = 0, .l_len = 0};
  CHECK(fcntl(fd, F_SETLK, &fl) == -1 && (errno == EAGAIN || errno == EACCES));
  CHECK(fcntl(fd, F_SETLKW, &fl) == 0);
  fl.l_type = F_UNLCK;
  CHECK(fcntl(fd, F_SETLK, &fl) == 0);
  CHECK(close(fd) == 0);
  return NULL;
}
static void* lockf_wait(void* a) {
  (void)a;
  int fd = open(g_path, O_RDWR);
  CHECK(fd >= 0);
  CHECK(lockf(fd, F_TLOCK, 0) == -1 && (errno == EAGAIN || errno == EACCES));
  CHECK(lockf(fd, F_LOCK, 0) == 0);
  CHECK(lockf(fd, F_ULOCK, 0) == 0);
  CHECK(close(fd) == 0);
  return NULL;
}

/* fcntl(F_OFD_SETLKW): OFD locks belong to the open file description */
static void ofd_setup(void) {
  g_fd_main = open(g_path, O_RDWR);
  CHECK(g_fd_main >= 0);
  struct flock fl = {.l_type = F_WRLCK, .l_whence = SEEK_SET, .l_start = 0, .l_len = 0};
  CHECK(fcntl(g_fd_main, F_OFD_SETLK, &fl) == 0);
}
static void* ofd_wait(void* a) {
  (void)a;
  int fd = open(g_path, O_RDWR);
  CHECK(fd >= 0);
  struct flock fl = {.l_type = F_WRLCK, .l_whence = SEEK_SET, .l_start = 0, .l_len = 0};
  CHECK(fcntl(fd, F_OFD_SETLK, &fl) == -1 && errno == EAGAIN);
  struct flock bad = fl;
  bad.l_pid = 1; /* OFD locks require l_pid == 0 */
  CHECK(fcntl(fd, F_OFD_SETLKW, &bad) == -1 && errno == EINVAL);
  CHECK(fcntl(fd, F_OFD_SETLKW, &fl) == 0);
  fl.l_type = F_UNLCK;
  CHECK(fcntl(fd, F_OFD_SETLK, &fl) == 0);
  CHECK(close(fd) == 0);
  return NULL;
}
static void ofd_release(void) {
  struct flock fl = {.l_type = F_UNLCK, .l_whence = SEEK_SET, .l_start = 0, .l_len = 0};
  CHECK(fcntl(g_fd_main, F_OFD_SETLK, &fl) == 0);
  CHECK(close(g_fd_main) == 0);
}

/* system and pclose */
static void* system_wait(void* a) {
  (void)a;
  int st = system("sleep 0.3; exit 3");
  CHECK(st != -1 && WIFEXITED(st) && WEXITSTATUS(st) == 3);
  CHECK(system(NULL) != 0);
  return NULL;
}
static void* pclose_wait(void* a) {
  (void)a;
  FILE* f = popen("sleep 0.3; exit 5", "r");
  CHECK(f != NULL);
  int st = pclose(f);
  CHECK(st != -1 && WIFEXITED(st) && WEXITSTATUS(st) == 5);
  return NULL;
}

static void nothing(void) {}

static void run(const struct call_case* c) {
  if (c->setup) c->setup();
  probe_start();
  pthread_t t;
  double t0 = now_ms();
  CHECK(pthread_create(&t, NULL, c->wait, NULL) == 0);
  usleep(kHoldMs * 1000);
  c->release();
  CHECK(pthread_join(t, NULL) == 0);
  double took = now_ms() - t0;
  probe_check(c->name);
  CHECK(took >= kHoldMs - 20); /* it really waited */
  if (g_child > 0) {
    if (c->wait != waitid_wait) reap_child();
    g_child = -1;
  }
}

/* argv[1], if given: run only the cases whose name contains it (for measuring one call). */
int main(int argc, char** argv) {
  time_limit(120);
  g_word = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
  CHECK(g_word != MAP_FAILED);
  snprintf(g_path, sizeof g_path, "/tmp/shim_block_calls.%d", (int)getpid());
  int fd = open(g_path, O_RDWR | O_CREAT | O_TRUNC, 0600);
  CHECK(fd >= 0 && write(fd, "data", 4) == 4 && close(fd) == 0);
  const struct call_case cases[] = {
      {"futex (private)", futex_setup, futex_wait_, futex_release},
      {"futex (shared, child)", shared_futex_setup, shared_futex_wait, release_child},
      {"pthread_barrier_wait", barrier_setup, barrier_wait_, barrier_release},
      {"waitid", child_exits_later, waitid_wait, release_child},
      {"flock", flock_setup, flock_wait, flock_release},
      {"fcntl(F_SETLKW)", child_holds_record_lock, setlkw_wait, release_child},
      {"fcntl(F_OFD_SETLKW)", ofd_setup, ofd_wait, ofd_release},
      {"lockf(F_LOCK)", child_holds_record_lock, lockf_wait, release_child},
      {"system", NULL, system_wait, nothing},
      {"pclose", NULL, pclose_wait, nothing},
  };
  int barrier_ran = 0;
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    if (argc > 1 && !strstr(cases[i].name, argv[1])) continue;
    run(&cases[i]);
    if (cases[i].wait == barrier_wait_) barrier_ran = 1;
  }
  CHECK(g_serial == barrier_ran);
  if (barrier_ran) CHECK(pthread_barrier_destroy(&g_bar) == 0);
  unlink(g_path);
  check_os_threads("block_calls");
  puts("block_calls: ok");
  return 0;
}
