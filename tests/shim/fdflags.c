/* File status flags belong to the program and to the open file description (issue 10, item 2):
 *  - no fd ever shows an O_NONBLOCK the program did not set, even to the raw fcntl syscall,
 *    after blocking I/O, accept and connect on it;
 *  - calls the shim does not wrap see a blocking fd and block as the program expects
 *    (recvmmsg, splice; the peer is a child process, so a blocked worker cannot stall it);
 *  - sendfile to a socket whose buffer is full blocks until everything is sent;
 *  - O_NONBLOCK set through a dup, an SCM_RIGHTS copy or a fork child is honoured by the
 *    other fds sharing the description (EAGAIN at once), and cleared the same way (blocks). */
#include <fcntl.h>
#include <netinet/in.h>
#include <pthread.h>
#include <sys/ioctl.h>
#include <sys/sendfile.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>

#include "shim_test.h"

static int raw_getfl(int fd) { return (int)syscall(SYS_fcntl, fd, F_GETFL); }

static void check_blocking(int fd, const char* what) {
  int fl = raw_getfl(fd);
  if (fl < 0 || (fl & O_NONBLOCK)) {
    fprintf(stderr, "%s: fd %d has O_NONBLOCK in the kernel (flags %#x)\n", what, fd, fl);
    exit(1);
  }
}

static void* delayed_write(void* arg) {
  int fd = *(int*)arg;
  usleep(50 * 1000);
  CHECK(write(fd, "x", 1) == 1);
  return NULL;
}

static void test_no_hidden_flag(void) {
  int sv[2];
  CHECK(socketpair(AF_UNIX, SOCK_STREAM, 0, sv) == 0);
  pthread_t t;
  CHECK(pthread_create(&t, NULL, delayed_write, &sv[1]) == 0);
  char c;
  CHECK(read(sv[0], &c, 1) == 1); /* blocks (parks under the shim) */
  CHECK(pthread_join(t, NULL) == 0);
  check_blocking(sv[0], "socketpair after a blocking read");
  check_blocking(sv[1], "socketpair after a write");

  int p[2];
  CHECK(pipe(p) == 0);
  CHECK(pthread_create(&t, NULL, delayed_write, &p[1]) == 0);
  CHECK(read(p[0], &c, 1) == 1);
  CHECK(pthread_join(t, NULL) == 0);
  check_blocking(p[0], "pipe after a blocking read");

  int l = socket(AF_INET, SOCK_STREAM, 0);
  CHECK(l >= 0);
  check_blocking(l, "new socket");
  struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
  socklen_t len = sizeof a;
  CHECK(bind(l, (struct sockaddr*)&a, sizeof a) == 0 && listen(l, 8) == 0);
  CHECK(getsockname(l, (struct sockaddr*)&a, &len) == 0);
  int cfd = socket(AF_INET, SOCK_STREAM, 0);
  CHECK(connect(cfd, (struct sockaddr*)&a, sizeof a) == 0);
  int s = accept(l, NULL, NULL);
  CHECK(s >= 0);
  check_blocking(l, "listener after accept");
  check_blocking(cfd, "socket after connect");
  check_blocking(s, "accepted socket");
  /* F_GETFL through libc agrees */
  CHECK((fcntl(s, F_GETFL) & O_NONBLOCK) == 0);
  close(cfd);
  close(s);
  close(l);
  close(p[0]);
  close(p[1]);
  close(sv[0]);
  close(sv[1]);
}

/* Unwrapped calls: the peer (a child process) sends after 100 ms; the call must block and
 * succeed, never fail with EAGAIN. */
static void test_unwrapped_calls_block(void) {
  int sv[2];
  CHECK(socketpair(AF_UNIX, SOCK_DGRAM, 0, sv) == 0);
  pid_t pid = fork();
  CHECK(pid >= 0);
  if (pid == 0) {
    usleep(100 * 1000);
    _exit(send(sv[1], "hello", 5, 0) == 5 ? 0 : 1);
  }
  char buf[16];
  struct iovec iov = {buf, sizeof buf};
  struct mmsghdr m = {.msg_hdr = {.msg_iov = &iov, .msg_iovlen = 1}};
  double t0 = now_ms();
  int n = recvmmsg(sv[0], &m, 1, 0, NULL);
  CHECK(n == 1 && m.msg_len == 5);
  CHECK(now_ms() - t0 >= 50);
  int st;
  CHECK(waitpid(pid, &st, 0) == pid && WIFEXITED(st) && WEXITSTATUS(st) == 0);
  close(sv[0]);
  close(sv[1]);

  int ss[2], p[2];
  CHECK(socketpair(AF_UNIX, SOCK_STREAM, 0, ss) == 0 && pipe(p) == 0);
  pid = fork();
  CHECK(pid >= 0);
  if (pid == 0) {
    usleep(100 * 1000);
    _exit(write(ss[1], "spliced", 7) == 7 ? 0 : 1);
  }
  t0 = now_ms();
  ssize_t r = splice(ss[0], NULL, p[1], NULL, 64, 0);
  CHECK(r == 7);
  CHECK(now_ms() - t0 >= 50);
  CHECK(read(p[0], buf, sizeof buf) == 7 && memcmp(buf, "spliced", 7) == 0);
  CHECK(waitpid(pid, &st, 0) == pid && WIFEXITED(st) && WEXITSTATUS(st) == 0);
  close(ss[0]);
  close(ss[1]);
  close(p[0]);
  close(p[1]);
}

struct drain {
  int fd;
  size_t want;
  size_t got;
};

static void* drain_later(void* arg) {
  struct drain* d = arg;
  char buf[65536];
  usleep(100 * 1000);
  while (d->got < d->want) {
    ssize_t r = read(d->fd, buf, sizeof buf);
    if (r <= 0) break;
    d->got += (size_t)r;
  }
  return NULL;
}

static void test_sendfile_blocks(void) {
  char path[] = "/tmp/shim_fdflags_XXXXXX";
  int f = mkstemp(path);
  CHECK(f >= 0);
  unlink(path);
  enum { kSize = 4 << 20 };
  static char block[65536];
  for (size_t i = 0; i < sizeof block; ++i) block[i] = (char)i;
  for (int i = 0; i < kSize / (int)sizeof block; ++i)
    CHECK(write(f, block, sizeof block) == (ssize_t)sizeof block);
  int sv[2];
  CHECK(socketpair(AF_UNIX, SOCK_STREAM, 0, sv) == 0);
  struct drain d = {sv[1], kSize, 0};
  pthread_t t;
  CHECK(pthread_create(&t, NULL, drain_later, &d) == 0);
  off_t off = 0;
  ssize_t r = sendfile(sv[0], f, &off, kSize);
  CHECK(r == kSize);
  CHECK(off == kSize);
  CHECK(pthread_join(t, NULL) == 0);
  CHECK(d.got == kSize);
  check_blocking(sv[0], "socket after sendfile");
  close(sv[0]);
  close(sv[1]);
  close(f);
}

static void expect_eagain_now(int fd, const char* what) {
  char c;
  double t0 = now_ms();
  errno = 0;
  ssize_t r = read(fd, &c, 1);
  if (r != -1 || (errno != EAGAIN && errno != EWOULDBLOCK) || now_ms() - t0 > 500) {
    fprintf(stderr, "%s: read gave %zd errno %d after %.0f ms, expected EAGAIN at once\n", what,
            r, errno, now_ms() - t0);
    exit(1);
  }
}

static void expect_blocks(int rfd, int wfd, const char* what) {
  pthread_t t;
  CHECK(pthread_create(&t, NULL, delayed_write, &wfd) == 0);
  char c;
  double t0 = now_ms();
  ssize_t r = read(rfd, &c, 1);
  if (r != 1 || now_ms() - t0 < 30) {
    fprintf(stderr, "%s: read gave %zd (errno %d) after %.0f ms, expected to block\n", what, r,
            errno, now_ms() - t0);
    exit(1);
  }
  CHECK(pthread_join(t, NULL) == 0);
}

static void test_shared_descriptions(void) {
  int sv[2];
  CHECK(socketpair(AF_UNIX, SOCK_STREAM, 0, sv) == 0);
  expect_blocks(sv[0], sv[1], "before dup");
  /* dup: the flag set through one number applies to the other */
  int d = dup(sv[0]);
  CHECK(d >= 0);
  int fl = fcntl(sv[0], F_GETFL);
  CHECK(fcntl(sv[0], F_SETFL, fl | O_NONBLOCK) == 0);
  CHECK(fcntl(d, F_GETFL) & O_NONBLOCK);
  expect_eagain_now(d, "dup after F_SETFL(O_NONBLOCK) on the original");
  CHECK(fcntl(d, F_SETFL, fl & ~O_NONBLOCK) == 0);
  expect_blocks(sv[0], sv[1], "original after F_SETFL(0) on the dup");
  /* dup2 onto another number, FIONBIO through it */
  int d2 = dup2(sv[0], 100);
  CHECK(d2 == 100);
  int on = 1;
  CHECK(ioctl(d2, FIONBIO, &on) == 0);
  expect_eagain_now(sv[0], "original after FIONBIO on a dup2 copy");
  expect_eagain_now(d, "dup after FIONBIO on a dup2 copy");
  on = 0;
  CHECK(ioctl(d2, FIONBIO, &on) == 0);
  expect_blocks(d, sv[1], "dup after FIONBIO(0)");
  close(d2);
  close(d);

  /* SCM_RIGHTS: the received copy sets O_NONBLOCK */
  int ch[2];
  CHECK(socketpair(AF_UNIX, SOCK_STREAM, 0, ch) == 0);
  char cbuf[CMSG_SPACE(sizeof(int))];
  memset(cbuf, 0, sizeof cbuf);
  char byte = 'r';
  struct iovec iov = {&byte, 1};
  struct msghdr mh = {.msg_iov = &iov, .msg_iovlen = 1, .msg_control = cbuf,
                      .msg_controllen = sizeof cbuf};
  struct cmsghdr* cm = CMSG_FIRSTHDR(&mh);
  cm->cmsg_level = SOL_SOCKET;
  cm->cmsg_type = SCM_RIGHTS;
  cm->cmsg_len = CMSG_LEN(sizeof(int));
  memcpy(CMSG_DATA(cm), &sv[0], sizeof(int));
  CHECK(sendmsg(ch[0], &mh, 0) == 1);
  memset(cbuf, 0, sizeof cbuf);
  struct msghdr rh = {.msg_iov = &iov, .msg_iovlen = 1, .msg_control = cbuf,
                      .msg_controllen = sizeof cbuf};
  CHECK(recvmsg(ch[1], &rh, 0) == 1);
  cm = CMSG_FIRSTHDR(&rh);
  CHECK(cm && cm->cmsg_type == SCM_RIGHTS);
  int got;
  memcpy(&got, CMSG_DATA(cm), sizeof got);
  CHECK(got != sv[0]);
  CHECK(fcntl(got, F_SETFL, fcntl(got, F_GETFL) | O_NONBLOCK) == 0);
  expect_eagain_now(sv[0], "original after O_NONBLOCK on an SCM_RIGHTS copy");
  CHECK(fcntl(got, F_SETFL, fcntl(got, F_GETFL) & ~O_NONBLOCK) == 0);
  expect_blocks(sv[0], sv[1], "original after clearing O_NONBLOCK on the SCM_RIGHTS copy");
  close(got);
  close(ch[0]);
  close(ch[1]);

  /* fork: the child sets O_NONBLOCK on the shared description */
  pid_t pid = fork();
  CHECK(pid >= 0);
  if (pid == 0) _exit(fcntl(sv[0], F_SETFL, fcntl(sv[0], F_GETFL) | O_NONBLOCK) == 0 ? 0 : 1);
  int st;
  CHECK(waitpid(pid, &st, 0) == pid && WIFEXITED(st) && WEXITSTATUS(st) == 0);
  expect_eagain_now(sv[0], "after a fork child set O_NONBLOCK");
  close(sv[0]);
  close(sv[1]);
}

/* A FIFO opened by path refuses RWF_NOWAIT: the fallback (O_NONBLOCK set by the shim, hidden
 * from F_GETFL) must still give blocking reads. */
static void test_fifo_fallback(void) {
  char path[] = "/tmp/shim_fdflags_fifo_XXXXXX";
  int tmp = mkstemp(path);
  CHECK(tmp >= 0);
  close(tmp);
  unlink(path);
  CHECK(mkfifo(path, 0600) == 0);
  int f = open(path, O_RDWR);
  CHECK(f >= 0);
  unlink(path);
  expect_blocks(f, f, "FIFO read");
  CHECK((fcntl(f, F_GETFL) & O_NONBLOCK) == 0);
  CHECK(fcntl(f, F_SETFL, fcntl(f, F_GETFL) | O_NONBLOCK) == 0);
  expect_eagain_now(f, "FIFO after F_SETFL(O_NONBLOCK)");
  close(f);
}

int main(void) {
  time_limit(60);
  test_no_hidden_flag();
  test_fifo_fallback();
  test_unwrapped_calls_block();
  test_sendfile_blocks();
  test_shared_descriptions();
  printf("fdflags: ok\n");
  return 0;
}
