/* A program's fds get the numbers they would get without the runtime (issue 9: CPython's
 * test_subprocess.test_pass_fds_redirected lists the open fds of a child it started with
 * 0, 1, 2 and the passed ones; under greenrun the runtime's own epoll sets, pipes and eventfds
 * showed up as 3..11). The test re-executes itself with only 0, 1, 2 open, with the soft
 * RLIMIT_NOFILE below the hard one (1024 and 64) and equal to it, and there checks:
 *  - an fcntl(F_GETFD) scan of every number below sysconf(_SC_OPEN_MAX), and up to 255 when
 *    that is lower, finds 0, 1, 2 only;
 *  - open() returns 3;
 *  - while other threads are parked in read, in poll on two fds, in nanosleep and in a
 *    condition variable wait, closing a number and creating an fd (socket, pipe, dup) gets
 *    that lowest free number back, 50 rounds, also while new threads start (their stacks);
 *  - the parked threads then finish normally. */
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/wait.h>

#include "shim_test.h"

enum { kRounds = 50 };

static int g_p1[2], g_p2[2];
static atomic_int g_parked;
static pthread_mutex_t g_mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t g_cv = PTHREAD_COND_INITIALIZER;
static int g_go;

static void* reader(void* arg) {
  (void)arg;
  char c;
  atomic_fetch_add(&g_parked, 1);
  CHECK(read(g_p1[0], &c, 1) == 1);
  return NULL;
}

static void* poller(void* arg) {
  (void)arg;
  struct pollfd p[2] = {{g_p1[0], POLLIN, 0}, {g_p2[0], POLLIN, 0}};
  atomic_fetch_add(&g_parked, 1);
  CHECK(poll(p, 2, 20000) >= 1);
  return NULL;
}

static void* sleeper(void* arg) {
  (void)arg;
  atomic_fetch_add(&g_parked, 1);
  struct timespec ts = {0, 300 * 1000 * 1000};
  CHECK(nanosleep(&ts, NULL) == 0);
  return NULL;
}

static void* waiter(void* arg) {
  (void)arg;
  CHECK(pthread_mutex_lock(&g_mu) == 0);
  atomic_fetch_add(&g_parked, 1);
  while (!g_go) CHECK(pthread_cond_wait(&g_cv, &g_mu) == 0);
  CHECK(pthread_mutex_unlock(&g_mu) == 0);
  return NULL;
}

static void* nothing(void* arg) {
  return arg;
}

/* The lowest number not open. */
static int lowest_free(void) {
  for (int fd = 0;; ++fd)
    if (fcntl(fd, F_GETFD) < 0) return fd;
}

static int child(void) {
  long max = sysconf(_SC_OPEN_MAX);
  CHECK(max > 16);
  /* Also just above a low soft limit, where a program that lowered it looks for fds it left
   * open (CPython's test_close_fds_when_max_fd_is_lowered). */
  long scan = max < 256 ? 256 : max;
  for (int fd = 0; fd < scan; ++fd) {
    int open_now = fcntl(fd, F_GETFD) >= 0;
    if (open_now != (fd <= 2)) {
      char link[64], target[256] = "?";
      snprintf(link, sizeof link, "/proc/self/fd/%d", fd);
      ssize_t n = readlink(link, target, sizeof target - 1);
      if (n > 0) target[n] = 0;
      fprintf(stderr, "fd %d is %s (%s); expected only 0, 1, 2 below %ld (soft limit %ld)\n", fd,
              open_now ? "open" : "closed", target, scan, max);
      return 1;
    }
  }
  int null_fd = open("/dev/null", O_RDONLY);
  CHECK(null_fd == 3);
  CHECK(pipe(g_p1) == 0 && g_p1[0] == 4 && g_p1[1] == 5);
  CHECK(pipe(g_p2) == 0 && g_p2[0] == 6 && g_p2[1] == 7);
  pthread_t t[4];
  CHECK(pthread_create(&t[0], NULL, reader, NULL) == 0);
  CHECK(pthread_create(&t[1], NULL, poller, NULL) == 0);
  CHECK(pthread_create(&t[2], NULL, sleeper, NULL) == 0);
  CHECK(pthread_create(&t[3], NULL, waiter, NULL) == 0);
  for (int i = 0; i < 2000 && atomic_load(&g_parked) < 4; ++i) usleep(1000);
  CHECK(atomic_load(&g_parked) == 4);
  usleep(50 * 1000); /* now inside their blocking calls */
  for (int round = 0; round < kRounds; ++round) {
    int want = lowest_free();
    if (want != 8) {
      fprintf(stderr, "round %d: lowest free fd %d, expected 8 (fds 0..7 are ours)\n", round, want);
      return 1;
    }
    int s = socket(AF_UNIX, SOCK_STREAM, 0);
    CHECK(s == 8);
    pthread_t n;
    CHECK(pthread_create(&n, NULL, nothing, NULL) == 0); /* a new thread starts meanwhile */
    CHECK(close(s) == 0);
    int p[2];
    CHECK(pipe(p) == 0 && p[0] == 8 && p[1] == 9);
    CHECK(close(p[0]) == 0);
    int d = dup(null_fd);
    CHECK(d == 8);
    CHECK(close(d) == 0 && close(p[1]) == 0);
    CHECK(close(null_fd) == 0);
    null_fd = open("/dev/null", O_RDONLY);
    CHECK(null_fd == 3);
    CHECK(pthread_join(n, NULL) == 0);
  }
  CHECK(write(g_p1[1], "x", 1) == 1); /* the reader */
  CHECK(write(g_p2[1], "y", 1) == 1); /* the poller (the reader may take p1's byte first) */
  CHECK(pthread_mutex_lock(&g_mu) == 0);
  g_go = 1;
  CHECK(pthread_cond_broadcast(&g_cv) == 0);
  CHECK(pthread_mutex_unlock(&g_mu) == 0);
  for (int i = 0; i < 4; ++i) CHECK(pthread_join(t[i], NULL) == 0);
  printf("fd_numbers child: ok (open max %ld)\n", max);
  return 0;
}

/* Runs this program again with only 0, 1, 2 open and the given RLIMIT_NOFILE. */
static void run_child(const char* self, rlim_t soft, rlim_t hard) {
  pid_t pid = fork();
  CHECK(pid >= 0);
  if (pid == 0) {
    struct rlimit rl = {soft, hard};
    if (setrlimit(RLIMIT_NOFILE, &rl) != 0) _exit(90);
    for (int fd = 0; fd <= 2; ++fd)
      if (fcntl(fd, F_GETFD) < 0 && open("/dev/null", O_RDWR) != fd) _exit(91);
    if (close_range(3, ~0U, 0) != 0)
      for (int fd = 3; fd < 65536; ++fd) close(fd);
    execl(self, self, "child", (char*)NULL);
    _exit(92);
  }
  int status = 0;
  CHECK(waitpid(pid, &status, 0) == pid);
  if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
    fprintf(stderr, "child with RLIMIT_NOFILE %lu/%lu: status %#x\n", (unsigned long)soft,
            (unsigned long)hard, status);
    exit(1);
  }
}

int main(int argc, char** argv) {
  time_limit(60);
  if (argc > 1 && strcmp(argv[1], "child") == 0) return child();
  struct rlimit rl;
  CHECK(getrlimit(RLIMIT_NOFILE, &rl) == 0);
  if (rl.rlim_max < 4096) {
    printf("fd_numbers: skipped (hard RLIMIT_NOFILE %lu < 4096)\n", (unsigned long)rl.rlim_max);
    return 0;
  }
  char self[4096];
  ssize_t n = readlink("/proc/self/exe", self, sizeof self - 1);
  CHECK(n > 0);
  self[n] = 0;
  run_child(self, 1024, 4096); /* room above the soft limit */
  run_child(self, 64, 4096);   /* a low soft limit */
  run_child(self, 4096, 4096); /* none: soft == hard */
  printf("fd_numbers: ok\n");
  return 0;
}
