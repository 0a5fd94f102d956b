/* Signals as POSIX specifies them for threads, the same assertions with and without the shim:
 *   - a handler installed with sigaction runs on the thread pthread_kill named (pthread_self()
 *     inside the handler is the target), while that thread is blocked in read, recv, accept,
 *     connect, write on a full socket, poll, select, epoll_wait, nanosleep, sleep, sem_wait,
 *     pthread_cond_wait, pthread_mutex_lock, pause, sigsuspend;
 *   - without SA_RESTART the call fails with EINTR (select/nanosleep/sleep report the time
 *     left); with SA_RESTART read/recv/accept/connect/write/sem_wait restart and complete, while
 *     poll/select/epoll_wait/nanosleep still fail with EINTR (signal(7)); pthread_cond_wait
 *     returns 0 and pthread_mutex_lock completes, never EINTR;
 *   - masks are per thread and inherited by pthread_create; a signal blocked by its target stays
 *     pending there and is delivered before the unblocking pthread_sigmask returns;
 *   - raise() runs the handler on the caller before it returns;
 *   - kill(getpid()) goes to the thread that does not block it;
 *   - ... also when that thread is busy and never blocks (non-blocking calls only, the shape of
 *     a loaded server's event loop): its handler runs within a second;
 *   - sigwait/sigtimedwait/sigwaitinfo in a dedicated thread while other threads keep sleeping
 *     on time; siginfo carries SI_TKILL / SI_USER and our pid;
 *   - a thread blocked in a system call no libc function wraps (syscall(SYS_read) on a pipe)
 *     runs its handler there and fails with EINTR without SA_RESTART, restarts with it;
 *   - a signal is acted on once: an SA_RESETHAND handler runs once for one kill(), and nothing
 *     left behind for the thread whose kernel mask blocked everything meanwhile acts on the
 *     SIG_DFL the reset installed. (Under greenrun the shim once woke a busy target's OS
 *     thread with a second copy of the signal itself: when it came late, after the program had
 *     reset the disposition -- CPython does at exit -- it killed the process.) */
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <semaphore.h>
#include <signal.h>
#include <stdatomic.h>
#include <sys/epoll.h>
#include <sys/select.h>
#include <sys/socket.h>
#include <sys/syscall.h>

#include "shim_test.h"

static atomic_int g_count;
static atomic_int g_code;
static atomic_int g_pid_seen;
static _Atomic(pthread_t) g_where;

static void on_usr1(int s, siginfo_t* si, void* uc) {
  (void)uc;
  if (s != SIGUSR1) return;
  atomic_store(&g_where, pthread_self());
  atomic_store(&g_code, si->si_code);
  atomic_store(&g_pid_seen, si->si_pid);
  atomic_fetch_add(&g_count, 1);
}

/* tgkill's si_code: SI_TKILL, or SI_USER on recent kernels (6.x reports tgkill as SI_USER to
 * sigwaitinfo); never a kernel- or timer-generated code. */
static int is_kill_code(int code) {
  return code == SI_TKILL || code == SI_USER;
}

static void set_handler(int restart) {
  struct sigaction sa;
  memset(&sa, 0, sizeof sa);
  sa.sa_sigaction = on_usr1;
  sa.sa_flags = SA_SIGINFO | (restart ? SA_RESTART : 0);
  sigemptyset(&sa.sa_mask);
  CHECK(sigaction(SIGUSR1, &sa, NULL) == 0);
}

static void sleep_ms(int ms) {
  struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
  while (nanosleep(&ts, &ts) < 0 && errno == EINTR) {
  }
}

/* --- one blocking call, interrupted by pthread_kill ------------------------------------- */

struct Case {
  const char* name;
  long (*call)(struct Case*);     /* the blocking call; returns its result, errno in err */
  void (*complete)(struct Case*); /* makes a restarted call finish (main thread) */
  int fds[2];
  int extra;
  sem_t sem;
  pthread_mutex_t mu;
  pthread_cond_t cv;
  int flag;
  struct timeval tv;
  struct timespec rem;
  atomic_int ready, done;
  long result;
  int err;
};

static void* case_thread(void* p) {
  struct Case* c = p;
  atomic_store(&c->ready, 1);
  errno = 0;
  c->result = c->call(c);
  c->err = errno;
  atomic_store(&c->done, 1);
  return NULL;
}

/* Runs c->call on a new thread, signals it once it blocks, and returns after it finished. */
static void run_case(struct Case* c, int restart) {
  set_handler(restart);
  atomic_store(&g_count, 0);
  atomic_store(&g_where, (pthread_t)0);
  atomic_store(&c->ready, 0);
  atomic_store(&c->done, 0);
  pthread_t t;
  CHECK(pthread_create(&t, NULL, case_thread, c) == 0);
  for (int i = 0; i < 3000 && !atomic_load(&c->ready); ++i) sleep_ms(1);
  sleep_ms(60); /* now it is blocked in the call */
  CHECK(!atomic_load(&c->done));
  CHECK(pthread_kill(t, SIGUSR1) == 0);
  for (int i = 0; i < 3000 && atomic_load(&g_count) == 0; ++i) sleep_ms(1);
  if (atomic_load(&g_count) != 1 || !pthread_equal(atomic_load(&g_where), t)) {
    fprintf(stderr, "%s (restart=%d): handler count %d, on target %d\n", c->name, restart,
            atomic_load(&g_count), pthread_equal(atomic_load(&g_where), t));
    exit(1);
  }
  CHECK(is_kill_code(atomic_load(&g_code)));
  CHECK(atomic_load(&g_pid_seen) == getpid());
  if (c->complete) {
    sleep_ms(50);
    if (restart) CHECK(!atomic_load(&c->done)); /* restarted: still blocked */
    c->complete(c);
  }
  for (int i = 0; i < 5000 && !atomic_load(&c->done); ++i) sleep_ms(1);
  if (!atomic_load(&c->done)) {
    fprintf(stderr, "%s (restart=%d): call did not return\n", c->name, restart);
    exit(1);
  }
  CHECK(pthread_join(t, NULL) == 0);
}

static void expect_eintr(struct Case* c) {
  if (c->result != -1 || c->err != EINTR) {
    fprintf(stderr, "%s: result %ld errno %d, want -1/EINTR\n", c->name, c->result, c->err);
    exit(1);
  }
}

static long do_read(struct Case* c) {
  char b;
  return read(c->fds[0], &b, 1);
}
static long do_recv(struct Case* c) {
  char b;
  return recv(c->fds[0], &b, 1, 0);
}
static void write_one(struct Case* c) {
  CHECK(write(c->fds[1], "x", 1) == 1);
}

static long do_accept(struct Case* c) {
  return accept(c->fds[0], NULL, NULL);
}
static int listener(int backlog, struct sockaddr_in* a) {
  int l = socket(AF_INET, SOCK_STREAM, 0);
  CHECK(l >= 0);
  memset(a, 0, sizeof *a);
  a->sin_family = AF_INET;
  a->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  CHECK(bind(l, (struct sockaddr*)a, sizeof *a) == 0);
  socklen_t len = sizeof *a;
  CHECK(getsockname(l, (struct sockaddr*)a, &len) == 0);
  CHECK(listen(l, backlog) == 0);
  return l;
}
static struct sockaddr_in g_addr;
static void connect_one(struct Case* c) {
  int s = socket(AF_INET, SOCK_STREAM, 0);
  CHECK(connect(s, (struct sockaddr*)&g_addr, sizeof g_addr) == 0);
  c->extra = s;
}

static long do_connect(struct Case* c) {
  return connect(c->fds[1], (struct sockaddr*)&g_addr, sizeof g_addr);
}
static void accept_queued(struct Case* c) { /* makes room in the full accept queue */
  int a = accept(c->fds[0], NULL, NULL);
  CHECK(a >= 0);
  c->extra = a;
}

static char g_big[1 << 16];
static long do_write(struct Case* c) {
  return write(c->fds[1], g_big, sizeof g_big);
}
static void drain_all(struct Case* c) {
  size_t got = 0;
  char buf[4096];
  while (got < (size_t)c->extra + sizeof g_big) {
    ssize_t n = read(c->fds[0], buf, sizeof buf);
    CHECK(n > 0);
    got += (size_t)n;
  }
}
static void fill(int fd, int* count) { /* fills fd's send path with non-blocking sends */
  *count = 0;
  for (int i = 0; i < 100000; ++i) {
    ssize_t n = send(fd, g_big, 4096, MSG_DONTWAIT);
    if (n < 0) {
      CHECK(errno == EAGAIN || errno == EWOULDBLOCK);
      return;
    }
    *count += (int)n;
  }
  CHECK(!"socket never filled");
}

static long do_poll(struct Case* c) {
  struct pollfd p = {c->fds[0], POLLIN, 0};
  return poll(&p, 1, 10000);
}
static long do_select(struct Case* c) {
  fd_set r;
  FD_ZERO(&r);
  FD_SET(c->fds[0], &r);
  c->tv.tv_sec = 10;
  c->tv.tv_usec = 0;
  return select(c->fds[0] + 1, &r, NULL, NULL, &c->tv);
}
static long do_epoll(struct Case* c) {
  struct epoll_event ev;
  return epoll_wait(c->extra, &ev, 1, 10000);
}
static long do_nanosleep(struct Case* c) {
  struct timespec ts = {10, 0};
  return nanosleep(&ts, &c->rem);
}
static long do_sleep(struct Case* c) {
  (void)c;
  return (long)sleep(10);
}
static long do_sem(struct Case* c) {
  return sem_wait(&c->sem);
}
static void post_sem(struct Case* c) {
  CHECK(sem_post(&c->sem) == 0);
}
static long do_pause(struct Case* c) {
  (void)c;
  return pause();
}
static long do_sigsuspend(struct Case* c) {
  (void)c;
  sigset_t block, none, now;
  sigemptyset(&block);
  sigaddset(&block, SIGUSR1);
  CHECK(pthread_sigmask(SIG_BLOCK, &block, NULL) == 0);
  sigemptyset(&none);
  long r = sigsuspend(&none);
  int e = errno;
  CHECK(pthread_sigmask(SIG_SETMASK, NULL, &now) == 0);
  CHECK(sigismember(&now, SIGUSR1)); /* the mask is back */
  CHECK(pthread_sigmask(SIG_UNBLOCK, &block, NULL) == 0);
  errno = e;
  return r;
}

static long do_cond(struct Case* c) {
  CHECK(pthread_mutex_lock(&c->mu) == 0);
  while (!c->flag) {
    int r = pthread_cond_wait(&c->cv, &c->mu);
    if (r != 0) return r; /* never EINTR */
  }
  CHECK(pthread_mutex_unlock(&c->mu) == 0);
  return 0;
}
static void set_flag(struct Case* c) {
  CHECK(pthread_mutex_lock(&c->mu) == 0);
  c->flag = 1;
  CHECK(pthread_cond_signal(&c->cv) == 0);
  CHECK(pthread_mutex_unlock(&c->mu) == 0);
}
static long do_lock(struct Case* c) {
  int r = pthread_mutex_lock(&c->mu);
  if (r == 0) pthread_mutex_unlock(&c->mu);
  return r;
}
static void unlock_mu(struct Case* c) {
  CHECK(pthread_mutex_unlock(&c->mu) == 0);
}

static void test_blocking_calls(void) {
  for (int restart = 0; restart <= 1; ++restart) {
    struct Case c;

    memset(&c, 0, sizeof c);
    c.name = "read(pipe)";
    CHECK(pipe(c.fds) == 0);
    c.call = do_read;
    c.complete = restart ? write_one : NULL;
    run_case(&c, restart);
    if (restart)
      CHECK(c.result == 1);
    else
      expect_eintr(&c);
    close(c.fds[0]);
    close(c.fds[1]);

    memset(&c, 0, sizeof c);
    c.name = "recv";
    CHECK(socketpair(AF_UNIX, SOCK_STREAM, 0, c.fds) == 0);
    c.call = do_recv;
    c.complete = restart ? write_one : NULL;
    run_case(&c, restart);
    if (restart)
      CHECK(c.result == 1);
    else
      expect_eintr(&c);
    close(c.fds[0]);
    close(c.fds[1]);

    memset(&c, 0, sizeof c);
    c.name = "accept";
    c.fds[0] = listener(8, &g_addr);
    c.call = do_accept;
    c.complete = restart ? connect_one : NULL;
    run_case(&c, restart);
    if (restart) {
      CHECK(c.result >= 0);
      close((int)c.result);
      close(c.extra);
    } else {
      expect_eintr(&c);
    }
    close(c.fds[0]);

    memset(&c, 0, sizeof c);
    c.name = "write(full socket)";
    CHECK(socketpair(AF_UNIX, SOCK_STREAM, 0, c.fds) == 0);
    fill(c.fds[1], &c.extra);
    c.call = do_write;
    c.complete = restart ? drain_all : NULL;
    run_case(&c, restart);
    if (restart)
      CHECK(c.result == (long)sizeof g_big);
    else
      expect_eintr(&c);
    close(c.fds[0]);
    close(c.fds[1]);

    memset(&c, 0, sizeof c);
    c.name = "sem_wait";
    CHECK(sem_init(&c.sem, 0, 0) == 0);
    c.call = do_sem;
    c.complete = restart ? post_sem : NULL;
    run_case(&c, restart);
    if (restart)
      CHECK(c.result == 0);
    else
      expect_eintr(&c);
    sem_destroy(&c.sem);

    /* Never restarted (signal(7)), whatever SA_RESTART says. */
    memset(&c, 0, sizeof c);
    c.name = "poll";
    CHECK(pipe(c.fds) == 0);
    c.call = do_poll;
    run_case(&c, restart);
    expect_eintr(&c);

    c.name = "select";
    c.call = do_select;
    run_case(&c, restart);
    expect_eintr(&c);
    CHECK(c.tv.tv_sec < 10 && c.tv.tv_sec >= 8); /* Linux reports the time left */

    c.name = "epoll_wait";
    c.extra = epoll_create1(0);
    CHECK(c.extra >= 0);
    struct epoll_event ev = {.events = EPOLLIN};
    CHECK(epoll_ctl(c.extra, EPOLL_CTL_ADD, c.fds[0], &ev) == 0);
    c.call = do_epoll;
    run_case(&c, restart);
    expect_eintr(&c);
    close(c.extra);
    close(c.fds[0]);
    close(c.fds[1]);

    memset(&c, 0, sizeof c);
    c.name = "nanosleep";
    c.call = do_nanosleep;
    run_case(&c, restart);
    expect_eintr(&c);
    CHECK(c.rem.tv_sec >= 8 && c.rem.tv_sec < 10);

    c.name = "sleep";
    c.call = do_sleep;
    run_case(&c, restart);
    CHECK(c.result >= 9 && c.result <= 10); /* seconds left */

    c.name = "pause";
    c.call = do_pause;
    run_case(&c, restart);
    expect_eintr(&c);

    c.name = "sigsuspend";
    c.call = do_sigsuspend;
    run_case(&c, restart);
    expect_eintr(&c);

    /* pthread_cond_wait: the handler runs, the wait returns 0 or goes on; never EINTR. */
    memset(&c, 0, sizeof c);
    c.name = "pthread_cond_wait";
    pthread_mutex_init(&c.mu, NULL);
    pthread_cond_init(&c.cv, NULL);
    c.call = do_cond;
    c.complete = set_flag;
    run_case(&c, restart);
    CHECK(c.result == 0);

    /* pthread_mutex_lock: the handler runs, the lock completes once free; never EINTR. */
    c.name = "pthread_mutex_lock";
    CHECK(pthread_mutex_lock(&c.mu) == 0);
    c.call = do_lock;
    c.complete = unlock_mu;
    run_case(&c, restart);
    CHECK(c.result == 0);
    pthread_cond_destroy(&c.cv);
    pthread_mutex_destroy(&c.mu);
  }
}

/* connect to a listener whose accept queue is full blocks (the SYN is dropped and resent). */
static void test_connect(void) {
  for (int restart = 0; restart <= 1; ++restart) {
    struct Case c;
    memset(&c, 0, sizeof c);
    c.name = "connect";
    c.fds[0] = listener(0, &g_addr);
    int q[4];
    int nq = 0;
    /* Fill the accept queue: connects that complete at once. */
    for (; nq < 4; ++nq) {
      q[nq] = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
      int r = connect(q[nq], (struct sockaddr*)&g_addr, sizeof g_addr);
      if (r < 0 && errno == EINPROGRESS) {
        struct pollfd p = {q[nq], POLLOUT, 0};
        if (poll(&p, 1, 200) == 0) { /* this one is already stuck: the queue is full */
          close(q[nq]);
          break;
        }
      }
    }
    c.fds[1] = socket(AF_INET, SOCK_STREAM, 0);
    c.call = do_connect;
    c.complete = restart ? accept_queued : NULL;
    run_case(&c, restart);
    if (restart) {
      CHECK(c.result == 0);
      close(c.extra);
    } else {
      expect_eintr(&c);
    }
    close(c.fds[1]);
    for (int i = 0; i < nq; ++i) close(q[i]);
    close(c.fds[0]);
  }
}

/* --- masks ------------------------------------------------------------------------------- */

static void* report_mask(void* p) {
  sigset_t m;
  CHECK(pthread_sigmask(SIG_SETMASK, NULL, &m) == 0);
  *(int*)p = sigismember(&m, SIGUSR2) * 2 + sigismember(&m, SIGUSR1);
  return NULL;
}

static void test_masks(void) {
  set_handler(0);
  sigset_t usr2, old;
  sigemptyset(&usr2);
  sigaddset(&usr2, SIGUSR2);
  CHECK(pthread_sigmask(SIG_BLOCK, &usr2, &old) == 0);
  CHECK(!sigismember(&old, SIGUSR2));
  int seen = -1;
  pthread_t t;
  CHECK(pthread_create(&t, NULL, report_mask, &seen) == 0);
  CHECK(pthread_join(t, NULL) == 0);
  CHECK(seen == 2); /* inherited SIGUSR2 blocked, SIGUSR1 not */
  CHECK(pthread_sigmask(SIG_SETMASK, &old, NULL) == 0);
  CHECK(pthread_create(&t, NULL, report_mask, &seen) == 0);
  CHECK(pthread_join(t, NULL) == 0);
  CHECK(seen == 0);
  CHECK(pthread_sigmask(99, &usr2, NULL) == EINVAL);
  CHECK(sigprocmask(99, &usr2, NULL) == -1 && errno == EINVAL);

  /* Blocked: stays pending on this thread; delivered before the unblocking call returns. */
  sigset_t usr1;
  sigemptyset(&usr1);
  sigaddset(&usr1, SIGUSR1);
  atomic_store(&g_count, 0);
  CHECK(pthread_sigmask(SIG_BLOCK, &usr1, NULL) == 0);
  CHECK(pthread_kill(pthread_self(), SIGUSR1) == 0);
  CHECK(raise(SIGUSR1) == 0);
  sleep_ms(20);
  CHECK(atomic_load(&g_count) == 0);
  sigset_t pend;
  CHECK(sigpending(&pend) == 0);
  CHECK(sigismember(&pend, SIGUSR1));
  CHECK(pthread_sigmask(SIG_UNBLOCK, &usr1, NULL) == 0);
  CHECK(atomic_load(&g_count) == 1); /* one instance: standard signals do not queue */
  CHECK(pthread_equal(atomic_load(&g_where), pthread_self()));

  /* raise runs the handler on the caller before it returns. */
  atomic_store(&g_count, 0);
  CHECK(raise(SIGUSR1) == 0);
  CHECK(atomic_load(&g_count) == 1);
  CHECK(pthread_equal(atomic_load(&g_where), pthread_self()));
  CHECK(is_kill_code(atomic_load(&g_code)));
}

/* kill(getpid()) while main blocks SIGUSR1: the thread that does not block it takes it. */
static void* unblocked_reader(void* p) {
  struct Case* c = p;
  sigset_t usr1;
  sigemptyset(&usr1);
  sigaddset(&usr1, SIGUSR1);
  CHECK(pthread_sigmask(SIG_UNBLOCK, &usr1, NULL) == 0);
  return case_thread(c);
}

static void test_process_directed(void) {
  set_handler(0);
  sigset_t usr1, old;
  sigemptyset(&usr1);
  sigaddset(&usr1, SIGUSR1);
  CHECK(pthread_sigmask(SIG_BLOCK, &usr1, &old) == 0);
  struct Case c;
  memset(&c, 0, sizeof c);
  CHECK(pipe(c.fds) == 0);
  c.call = do_read;
  atomic_store(&g_count, 0);
  pthread_t t;
  CHECK(pthread_create(&t, NULL, unblocked_reader, &c) == 0);
  for (int i = 0; i < 3000 && !atomic_load(&c.ready); ++i) sleep_ms(1);
  sleep_ms(60);
  CHECK(kill(getpid(), SIGUSR1) == 0);
  for (int i = 0; i < 3000 && !atomic_load(&c.done); ++i) sleep_ms(1);
  CHECK(atomic_load(&c.done));
  CHECK(pthread_join(t, NULL) == 0);
  expect_eintr(&c);
  CHECK(atomic_load(&g_count) == 1);
  CHECK(pthread_equal(atomic_load(&g_where), t));
  CHECK(atomic_load(&g_code) == SI_USER);
  CHECK(atomic_load(&g_pid_seen) == getpid());
  close(c.fds[0]);
  close(c.fds[1]);
  CHECK(pthread_sigmask(SIG_SETMASK, &old, NULL) == 0);
}

/* --- a process-directed signal to a busy thread ---------------------------------------- */

static atomic_int g_busy_stop;

static void* busy_writer(void* p) {
  int fd = *(int*)p;
  sigset_t usr1;
  sigemptyset(&usr1);
  sigaddset(&usr1, SIGUSR1);
  CHECK(pthread_sigmask(SIG_UNBLOCK, &usr1, NULL) == 0); /* main's mask, inherited, blocks it */
  /* write() on /dev/null never blocks: the thread never parks, it only runs (under greenrun
   * it is runnable, not parked, whenever main runs on its worker). Bounded: 5 s. */
  double end = now_ms() + 5000;
  while (!atomic_load(&g_busy_stop) && now_ms() < end) CHECK(write(fd, "x", 1) == 1);
  return NULL;
}

static void test_busy_target(void) {
  set_handler(0);
  sigset_t usr1, old;
  sigemptyset(&usr1);
  sigaddset(&usr1, SIGUSR1);
  CHECK(pthread_sigmask(SIG_BLOCK, &usr1, &old) == 0); /* main blocks it: the busy one takes it */
  int fd = open("/dev/null", O_WRONLY);
  CHECK(fd >= 0);
  atomic_store(&g_count, 0);
  atomic_store(&g_busy_stop, 0);
  pthread_t t;
  CHECK(pthread_create(&t, NULL, busy_writer, &fd) == 0);
  sleep_ms(50);
  double t0 = now_ms();
  CHECK(kill(getpid(), SIGUSR1) == 0);
  while (atomic_load(&g_count) == 0 && now_ms() - t0 < 3000) sleep_ms(1);
  double took = now_ms() - t0;
  atomic_store(&g_busy_stop, 1);
  CHECK(pthread_join(t, NULL) == 0);
  fprintf(stderr, "busy target: its handler ran after %.0f ms\n", took);
  CHECK(atomic_load(&g_count) == 1);
  CHECK(pthread_equal(atomic_load(&g_where), t));
  CHECK(took < 1000);
  close(fd);
  CHECK(pthread_sigmask(SIG_SETMASK, &old, NULL) == 0);
}

/* --- sigwait in a dedicated thread ------------------------------------------------------- */

static atomic_int g_waited;
static atomic_int g_stop;

static void* waiter(void* p) {
  (void)p;
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGUSR2);
  for (int i = 0; i < 3; ++i) {
    int s = 0;
    CHECK(sigwait(&set, &s) == 0);
    CHECK(s == SIGUSR2);
    atomic_fetch_add(&g_waited, 1);
  }
  siginfo_t si;
  CHECK(sigwaitinfo(&set, &si) == SIGUSR2);
  CHECK(is_kill_code(si.si_code) && si.si_pid == getpid());
  atomic_fetch_add(&g_waited, 1);
  CHECK(sigtimedwait(&set, &si, &(struct timespec){0, 30000000}) == SIGUSR2);
  CHECK(si.si_code == SI_USER && si.si_pid == getpid());
  atomic_fetch_add(&g_waited, 1);
  double t0 = now_ms();
  CHECK(sigtimedwait(&set, &si, &(struct timespec){0, 50000000}) == -1 && errno == EAGAIN);
  CHECK(now_ms() - t0 >= 45);
  CHECK(sigtimedwait(&set, &si, &(struct timespec){0, 1000000000}) == -1 && errno == EINVAL);
  return NULL;
}

static atomic_int g_late;
static void* sleeper(void* p) {
  (void)p;
  while (!atomic_load(&g_stop)) {
    double t0 = now_ms();
    struct timespec ts = {0, 5000000};
    CHECK(nanosleep(&ts, NULL) == 0);
    double d = now_ms() - t0;
    if (d > 100) atomic_fetch_add(&g_late, 1);
  }
  return NULL;
}

static void wait_count(atomic_int* v, int want) {
  for (int i = 0; i < 3000 && atomic_load(v) < want; ++i) sleep_ms(1);
  CHECK(atomic_load(v) >= want);
}

static void test_sigwait(void) {
  sigset_t usr2, old;
  sigemptyset(&usr2);
  sigaddset(&usr2, SIGUSR2);
  CHECK(pthread_sigmask(SIG_BLOCK, &usr2, &old) == 0); /* all threads inherit it */
  pthread_t w, s[4];
  for (int i = 0; i < 4; ++i) CHECK(pthread_create(&s[i], NULL, sleeper, NULL) == 0);
  CHECK(pthread_create(&w, NULL, waiter, NULL) == 0);
  for (int i = 0; i < 3; ++i) {
    sleep_ms(20);
    CHECK(kill(getpid(), SIGUSR2) == 0); /* SIG_DFL would kill us: it must wait for sigwait */
    wait_count(&g_waited, i + 1);
  }
  sleep_ms(20);
  CHECK(pthread_kill(w, SIGUSR2) == 0);
  wait_count(&g_waited, 4);
  sleep_ms(10);
  CHECK(kill(getpid(), SIGUSR2) == 0);
  wait_count(&g_waited, 5);
  CHECK(pthread_join(w, NULL) == 0);
  atomic_store(&g_stop, 1);
  for (int i = 0; i < 4; ++i) CHECK(pthread_join(s[i], NULL) == 0);
  CHECK(atomic_load(&g_late) == 0);
  CHECK(pthread_sigmask(SIG_SETMASK, &old, NULL) == 0);
}

/* --- a system call no libc function wraps ------------------------------------------------ */

static int g_rpipe[2];
static atomic_long g_rret;
static atomic_int g_rerr;
static atomic_int g_rdone;
static char g_rbyte;

static void* raw_reader(void* p) {
  (void)p;
  errno = 0;
  long r = syscall(SYS_read, g_rpipe[0], &g_rbyte, 1);
  atomic_store(&g_rerr, errno);
  atomic_store(&g_rret, r);
  atomic_store(&g_rdone, 1);
  return NULL;
}

static void test_raw_syscall(void) {
  for (int restart = 0; restart <= 1; ++restart) {
    set_handler(restart);
    CHECK(pipe(g_rpipe) == 0);
    atomic_store(&g_count, 0);
    atomic_store(&g_rdone, 0);
    pthread_t t;
    CHECK(pthread_create(&t, NULL, raw_reader, NULL) == 0);
    sleep_ms(50); /* in the kernel now (under greenrun its worker is handed off meanwhile) */
    CHECK(pthread_kill(t, SIGUSR1) == 0);
    wait_count(&g_count, 1);
    CHECK(pthread_equal(atomic_load(&g_where), t));
    if (restart) {
      sleep_ms(30);
      CHECK(atomic_load(&g_rdone) == 0); /* restarted: still waiting for data */
      CHECK(write(g_rpipe[1], "r", 1) == 1);
      CHECK(pthread_join(t, NULL) == 0);
      CHECK(atomic_load(&g_rret) == 1 && g_rbyte == 'r');
    } else {
      CHECK(pthread_join(t, NULL) == 0);
      CHECK(atomic_load(&g_rret) == -1 && atomic_load(&g_rerr) == EINTR);
    }
    CHECK(atomic_load(&g_count) == 1);
    close(g_rpipe[0]);
    close(g_rpipe[1]);
  }
}

/* --- one signal, one action ---------------------------------------------------------------- */

static atomic_int g_lf_ready;
static atomic_int g_lf_count;

static void on_int_once(int s) {
  if (s == SIGINT) atomic_fetch_add(&g_lf_count, 1);
}

static void* late_sender(void* p) {
  (void)p;
  double end = now_ms() + 5000;
  /* No call while waiting: under greenrun this thread holds its OS thread, so main and it
   * run on different ones. */
  for (unsigned long i = 0; !atomic_load(&g_lf_ready); ++i)
    if ((i & 4095) == 0 && now_ms() > end) return NULL;
  CHECK(kill(getpid(), SIGINT) == 0);
  return NULL;
}

/* SIGINT: no thread blocks it or waits for it anywhere in this program (the shim keeps its own
 * handler in the kernel for a SIG_DFL signal some thread blocks), as in CPython, whose SIGINT
 * handler is reset at exit. */
static void test_one_action(void) {
  struct sigaction sa;
  memset(&sa, 0, sizeof sa);
  sa.sa_handler = on_int_once;
  sa.sa_flags = SA_RESETHAND;
  sigemptyset(&sa.sa_mask);
  CHECK(sigaction(SIGINT, &sa, NULL) == 0);
  int fd = open("/dev/null", O_WRONLY);
  CHECK(fd >= 0);
  atomic_store(&g_lf_count, 0);
  atomic_store(&g_lf_ready, 0);
  pthread_t t;
  CHECK(pthread_create(&t, NULL, late_sender, NULL) == 0);
  sleep_ms(20);
  /* Behind libc's back, this OS thread's kernel mask blocks everything: whatever the kernel
   * queues for it waits until the unblock below. */
  sigset_t all, old;
  sigfillset(&all);
  CHECK(syscall(SYS_rt_sigprocmask, SIG_BLOCK, &all, &old, _NSIG / 8) == 0);
  atomic_store(&g_lf_ready, 1);
  double t0 = now_ms();
  while (atomic_load(&g_lf_count) == 0 && now_ms() - t0 < 3000) CHECK(write(fd, "x", 1) == 1);
  double took = now_ms() - t0;
  CHECK(syscall(SYS_rt_sigprocmask, SIG_SETMASK, &old, NULL, _NSIG / 8) == 0);
  sleep_ms(50); /* anything queued for this OS thread is delivered by now */
  CHECK(pthread_join(t, NULL) == 0);
  fprintf(stderr, "one action: the SA_RESETHAND handler ran after %.1f ms\n", took);
  CHECK(atomic_load(&g_lf_count) == 1);
  struct sigaction now;
  CHECK(sigaction(SIGINT, NULL, &now) == 0);
  CHECK(now.sa_handler == SIG_DFL); /* reset by the delivery */
  close(fd);
}

int main(void) {
  double t0 = now_ms();
  test_one_action();
  test_masks();
  test_process_directed();
  test_busy_target();
  test_sigwait();
  test_blocking_calls();
  test_connect();
  test_raw_syscall();
  printf("signals: ok (%.0f ms)\n", now_ms() - t0);
  return 0;
}
