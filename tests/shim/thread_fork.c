/* fork() from a thread that is not the main thread: in the child the forking thread is the
 * process's only, hence main, thread (what CPython's threading.main_thread() relies on after a
 * fork in a worker thread): gettid() == getpid(), pthread_self() is the id the thread had in
 * the parent, its `__thread` values and errno are kept, pthread_getattr_np reports a stack
 * holding a local, the process has one OS thread, and the child can create and join a thread
 * (with fresh TLS). Other threads of the parent are busy (blocking)
 * meanwhile. */
#include <pthread.h>
#include <stdatomic.h>
#include <sys/wait.h>

#include "shim_test.h"

static __thread int t_val = 1;
static int g_atexit_pipe[2];
static pthread_t g_forker_id;

static void* child_thread(void* arg) {
  (void)arg;
  CHECK(t_val == 1);
  t_val = 3;
  return (void*)(long)gettid();
}

static int child_main(pthread_t parent_self) {
  int local;
  CHECK(gettid() == getpid());
  CHECK(pthread_equal(pthread_self(), parent_self));
  CHECK(t_val == 42);
  CHECK(errno == 4242);
  CHECK(os_threads() == 1);
  pthread_attr_t a;
  void* lo;
  size_t size;
  CHECK(pthread_getattr_np(pthread_self(), &a) == 0);
  CHECK(pthread_attr_getstack(&a, &lo, &size) == 0);
  pthread_attr_destroy(&a);
  CHECK((char*)&local >= (char*)lo && (char*)&local < (char*)lo + size);
  pthread_t t;
  CHECK(pthread_create(&t, NULL, child_thread, NULL) == 0);
  void* r;
  CHECK(pthread_join(t, &r) == 0);
  CHECK((pid_t)(long)r != getpid());
  CHECK(t_val == 42);
  CHECK(write(g_atexit_pipe[1], "e", 1) == 1);
  return 0;
}

static void* forker(void* arg) {
  (void)arg;
  t_val = 42;
  pthread_t self = pthread_self();
  CHECK(pthread_equal(self, g_forker_id));
  errno = 4242;
  pid_t pid = fork();
  if (pid == 0) {
    int rc = child_main(self);
    exit(rc);
  }
  CHECK(pid > 0);
  int status = 0;
  CHECK(waitpid(pid, &status, 0) == pid);
  CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0);
  char c;
  CHECK(read(g_atexit_pipe[0], &c, 1) == 1 && c == 'e');  /* the child got to its end */
  CHECK(t_val == 42);
  return NULL;
}

static int g_block[2];
static void* blocker(void* arg) {
  (void)arg;
  char c;
  CHECK(read(g_block[0], &c, 1) == 1);
  return NULL;
}

int main(void) {
  time_limit(60);
  CHECK(pipe(g_atexit_pipe) == 0);
  CHECK(pipe(g_block) == 0);
  pthread_t b[4];
  for (int i = 0; i < 4; ++i) CHECK(pthread_create(&b[i], NULL, blocker, NULL) == 0);
  for (int round = 0; round < 3; ++round) {
    CHECK(pthread_create(&g_forker_id, NULL, forker, NULL) == 0);
    CHECK(pthread_join(g_forker_id, NULL) == 0);
  }
  CHECK(write(g_block[1], "xxxx", 4) == 4);
  for (int i = 0; i < 4; ++i) CHECK(pthread_join(b[i], NULL) == 0);
  CHECK(t_val == 1);
  puts("thread_fork: ok");
  return 0;
}
