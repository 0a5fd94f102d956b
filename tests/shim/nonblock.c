/* O_NONBLOCK fidelity: an fd the program made non-blocking never blocks and reports EAGAIN;
 * F_GETFL reports exactly what the program set (never an O_NONBLOCK the shim added), also
 * after blocking I/O on the fd; MSG_DONTWAIT, FIONBIO, SOCK_NONBLOCK and pipe2(O_NONBLOCK). */
#include <fcntl.h>
#include <netinet/in.h>
#include <pthread.h>
#include <sys/ioctl.h>
#include <sys/socket.h>

#include "shim_test.h"

static void* run(void* arg) {
  (void)arg;
  int sv[2], p[2];
  char c = 'a', buf[8];
  CHECK(socketpair(AF_UNIX, SOCK_STREAM, 0, sv) == 0);
  CHECK((fcntl(sv[0], F_GETFL) & O_NONBLOCK) == 0);
  /* blocking I/O (under the shim: the fiber waits, the fd goes O_NONBLOCK in the kernel) */
  CHECK(write(sv[1], "hi", 2) == 2);
  CHECK(read(sv[0], buf, sizeof buf) == 2);
  CHECK((fcntl(sv[0], F_GETFL) & O_NONBLOCK) == 0);
  /* the program's own non-blocking mode */
  int fl = fcntl(sv[0], F_GETFL);
  CHECK(fcntl(sv[0], F_SETFL, fl | O_NONBLOCK) == 0);
  CHECK(fcntl(sv[0], F_GETFL) & O_NONBLOCK);
  double t0 = now_ms();
  CHECK(read(sv[0], buf, 1) == -1 && errno == EAGAIN);
  CHECK(recv(sv[0], buf, 1, 0) == -1 && errno == EAGAIN);
  CHECK(now_ms() - t0 < 500);
  CHECK(fcntl(sv[0], F_SETFL, fl) == 0);
  CHECK((fcntl(sv[0], F_GETFL) & O_NONBLOCK) == 0);
  /* MSG_DONTWAIT on a blocking fd */
  CHECK(recv(sv[0], buf, 1, MSG_DONTWAIT) == -1 && errno == EAGAIN);
  /* FIONBIO */
  int on = 1, off = 0;
  CHECK(ioctl(sv[0], FIONBIO, &on) == 0);
  CHECK(fcntl(sv[0], F_GETFL) & O_NONBLOCK);
  CHECK(read(sv[0], buf, 1) == -1 && errno == EAGAIN);
  CHECK(ioctl(sv[0], FIONBIO, &off) == 0);
  CHECK((fcntl(sv[0], F_GETFL) & O_NONBLOCK) == 0);
  /* blocking again: data written later by the peer arrives */
  CHECK(write(sv[1], &c, 1) == 1);
  CHECK(read(sv[0], buf, 1) == 1 && buf[0] == 'a');
  /* pipe2(O_NONBLOCK): full pipe -> partial write then EAGAIN, never blocks */
  CHECK(pipe2(p, O_NONBLOCK) == 0);
  CHECK(fcntl(p[1], F_GETFL) & O_NONBLOCK);
  static __thread char chunk[1 << 16];
  ssize_t total = 0, n;
  while ((n = write(p[1], chunk, sizeof chunk)) > 0) total += n;
  CHECK(n == -1 && errno == EAGAIN && total > 0);
  CHECK(read(p[0], chunk, sizeof chunk) > 0);
  close(p[0]);
  close(p[1]);
  /* SOCK_NONBLOCK listening socket: accept says EAGAIN at once; accept4 flags carry over */
  int l = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
  CHECK(l >= 0 && (fcntl(l, F_GETFL) & O_NONBLOCK));
  struct sockaddr_in sa = {.sin_family = AF_INET};
  sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  CHECK(bind(l, (struct sockaddr*)&sa, sizeof sa) == 0 && listen(l, 8) == 0);
  CHECK(accept(l, NULL, NULL) == -1 && errno == EAGAIN);
  socklen_t len = sizeof sa;
  CHECK(getsockname(l, (struct sockaddr*)&sa, &len) == 0);
  int c1 = socket(AF_INET, SOCK_STREAM, 0);
  CHECK(connect(c1, (struct sockaddr*)&sa, sizeof sa) == 0);
  CHECK((fcntl(c1, F_GETFL) & O_NONBLOCK) == 0);
  int a1;
  while ((a1 = accept4(l, NULL, NULL, SOCK_NONBLOCK)) < 0) CHECK(errno == EAGAIN);
  CHECK(fcntl(a1, F_GETFL) & O_NONBLOCK);
  int c2 = socket(AF_INET, SOCK_STREAM, 0);
  CHECK(connect(c2, (struct sockaddr*)&sa, sizeof sa) == 0);
  int a2;
  while ((a2 = accept(l, NULL, NULL)) < 0) CHECK(errno == EAGAIN);
  CHECK((fcntl(a2, F_GETFL) & O_NONBLOCK) == 0);
  /* ECONNREFUSED and EPIPE come through exactly */
  close(l);
  int c3 = socket(AF_INET, SOCK_STREAM, 0);
  CHECK(connect(c3, (struct sockaddr*)&sa, sizeof sa) == -1 && errno == ECONNREFUSED);
  close(a2);
  CHECK(shutdown(c2, SHUT_RD) == 0);
  ssize_t w;
  do {
    w = send(c2, "x", 1, MSG_NOSIGNAL);
  } while (w == 1);
  CHECK(w == -1 && (errno == EPIPE || errno == ECONNRESET));
  close(c1);
  close(c2);
  close(c3);
  close(a1);
  close(sv[0]);
  close(sv[1]);
  return NULL;
}

int main(void) {
  time_limit(60);
  pthread_t t[4];
  for (int i = 0; i < 4; ++i) CHECK(pthread_create(&t[i], NULL, run, NULL) == 0);
  run(NULL);
  for (int i = 0; i < 4; ++i) CHECK(pthread_join(t[i], NULL) == 0);
  puts("nonblock: ok");
  return 0;
}
