/* close() of an fd another thread is blocked on. Linux itself does not wake a thread blocked
 * in read(2) when another thread closes the fd (it returns once the peer closes); under the
 * shim the blocked fiber wakes at once with EBADF (green::io::close). Both runs: the reader
 * returns within the time limit and the fd number is reusable. Also dup2() onto a waited fd. */
#include <pthread.h>
#include <stdatomic.h>
#include <sys/socket.h>

#include "shim_test.h"

static int g_sv[2];
static atomic_int g_result = 99, g_errno;
static double g_returned_at;

static void* reader(void* arg) {
  (void)arg;
  char c;
  ssize_t n = read(g_sv[0], &c, 1);
  g_errno = errno;
  g_returned_at = now_ms();
  g_result = (int)n;
  return NULL;
}

int main(void) {
  time_limit(30);
  CHECK(socketpair(AF_UNIX, SOCK_STREAM, 0, g_sv) == 0);
  pthread_t t;
  CHECK(pthread_create(&t, NULL, reader, NULL) == 0);
  usleep(100 * 1000);
  CHECK(g_result == 99);  /* still blocked */
  double closed_at = now_ms();
  CHECK(close(g_sv[0]) == 0);
  usleep(300 * 1000);
  if (under_green()) {
    CHECK(g_result == -1 && g_errno == EBADF);
    CHECK(g_returned_at - closed_at < 250);
  }
  close(g_sv[1]);  /* without the shim this is what ends the read (EOF) */
  CHECK(pthread_join(t, NULL) == 0);
  CHECK(g_result == 0 || (g_result == -1 && g_errno == EBADF));

  /* dup2 onto an fd a thread waits on: the waiter is released, the new fd works */
  int a[2], b[2];
  CHECK(socketpair(AF_UNIX, SOCK_STREAM, 0, a) == 0 && socketpair(AF_UNIX, SOCK_STREAM, 0, b) == 0);
  g_sv[0] = a[0];
  g_result = 99;
  CHECK(pthread_create(&t, NULL, reader, NULL) == 0);
  usleep(100 * 1000);
  CHECK(dup2(b[0], a[0]) == a[0]);
  CHECK(write(b[1], "z", 1) == 1);
  close(a[1]);
  CHECK(pthread_join(t, NULL) == 0);
  /* plain Linux: the reader still reads the old description -> EOF once a[1] closed;
   * under the shim it was released (EBADF) or read the new data. Either way it returned. */
  CHECK(g_result == 0 || g_result == 1 || (g_result == -1 && g_errno == EBADF));
  char c;
  if (g_result != 1) CHECK(read(a[0], &c, 1) == 1 && c == 'z');
  close(a[0]);
  close(b[0]);
  close(b[1]);
  puts("close_blocked: ok");
  return 0;
}
