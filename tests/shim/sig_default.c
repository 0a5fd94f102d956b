/* A signal left at SIG_DFL whose default action is to terminate ends the process as soon as it
 * arrives, whatever the threads are doing (issue 9: CPython's regrtest under greenrun
 * --workers 1 did not die on SIGTERM while one thread ran Python code and the main thread
 * waited for the GIL; its subprocess module had once blocked every signal around vfork, so the
 * shim handled SIGTERM for the program). The test runs itself again as a child that blocks and
 * unblocks SIGTERM in a thread, then waits in pthread_join for a thread that keeps the CPU for
 * 3 s; the parent sends SIGTERM once the spinner runs. The child must end by SIGTERM within
 * 1 s of it (about 3 s late when the signal waited for the main thread to run). */
#include <pthread.h>
#include <signal.h>
#include <sys/wait.h>

#include "shim_test.h"

static int g_ready[2];

static void* mask_toggler(void* arg) {
  (void)arg;
  sigset_t s;
  sigemptyset(&s);
  sigaddset(&s, SIGTERM);
  CHECK(pthread_sigmask(SIG_BLOCK, &s, NULL) == 0);
  CHECK(pthread_sigmask(SIG_UNBLOCK, &s, NULL) == 0);
  return NULL;
}

static void* spinner(void* arg) {
  (void)arg;
  CHECK(write(g_ready[1], "r", 1) == 1);
  double end = now_ms() + 3000;
  while (now_ms() < end) {
  }
  return NULL;
}

static int child(void) {
  pthread_t t;
  CHECK(pthread_create(&t, NULL, mask_toggler, NULL) == 0);
  CHECK(pthread_join(t, NULL) == 0);
  CHECK(pthread_create(&t, NULL, spinner, NULL) == 0);
  CHECK(pthread_join(t, NULL) == 0);
  fprintf(stderr, "sig_default child: still alive after the spinner\n");
  return 3;
}

int main(int argc, char** argv) {
  time_limit(60);
  if (argc > 2 && strcmp(argv[1], "child") == 0) {
    g_ready[1] = atoi(argv[2]);
    return child();
  }
  CHECK(pipe(g_ready) == 0);
  char self[4096], fd[16];
  ssize_t n = readlink("/proc/self/exe", self, sizeof self - 1);
  CHECK(n > 0);
  self[n] = 0;
  snprintf(fd, sizeof fd, "%d", g_ready[1]);
  pid_t pid = fork();
  CHECK(pid >= 0);
  if (pid == 0) {
    close(g_ready[0]);
    execl(self, self, "child", fd, (char*)NULL);
    _exit(92);
  }
  close(g_ready[1]);
  char c;
  CHECK(read(g_ready[0], &c, 1) == 1 && c == 'r');
  usleep(100 * 1000); /* the spinner holds the CPU; main is parked in pthread_join */
  double t0 = now_ms();
  CHECK(kill(pid, SIGTERM) == 0);
  int status = 0;
  pid_t r = 0;
  for (int i = 0; i < 1000 && r == 0; ++i) {
    r = waitpid(pid, &status, WNOHANG);
    if (r == 0) usleep(5000);
  }
  double ms = now_ms() - t0;
  CHECK(r == pid);
  if (!WIFSIGNALED(status) || WTERMSIG(status) != SIGTERM || ms > 1000) {
    fprintf(stderr, "child status %#x (signalled %d, signal %d) %.0f ms after SIGTERM\n", status,
            WIFSIGNALED(status), WIFSIGNALED(status) ? WTERMSIG(status) : 0, ms);
    return 1;
  }
  printf("sig_default: ok (%.1f ms)\n", ms);
  return 0;
}
