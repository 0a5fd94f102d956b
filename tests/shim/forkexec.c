/* fork+exec while other threads are running and blocked: the child runs a real program
 * (/bin/echo, and /bin/sh with a pipeline) with a pipe as stdout; the parent reads it and
 * waits for the child; a fork child that does not exec keeps working (plain blocking I/O)
 * and exits with _exit. */
#include <pthread.h>
#include <stdatomic.h>
#include <sys/wait.h>

#include "shim_test.h"

static atomic_int g_ticks, g_stop;

static void* ticker(void* arg) {
  (void)arg;
  while (!g_stop) {
    usleep(2000);
    g_ticks++;
  }
  return NULL;
}

static void run_child(char* const argv[], const char* expect) {
  int p[2];
  CHECK(pipe(p) == 0);
  pid_t pid = fork();
  CHECK(pid >= 0);
  if (pid == 0) {
    dup2(p[1], 1);
    close(p[0]);
    close(p[1]);
    execv(argv[0], argv);
    _exit(127);
  }
  close(p[1]);
  char buf[256];
  size_t got = 0;
  ssize_t n;
  while ((n = read(p[0], buf + got, sizeof buf - 1 - got)) > 0) got += (size_t)n;
  CHECK(n == 0);
  buf[got] = 0;
  close(p[0]);
  int st;
  CHECK(waitpid(pid, &st, 0) == pid);
  CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 0);
  if (strcmp(buf, expect) != 0) {
    fprintf(stderr, "child printed '%s', expected '%s'\n", buf, expect);
    exit(1);
  }
}

int main(void) {
  time_limit(60);
  pthread_t t;
  CHECK(pthread_create(&t, NULL, ticker, NULL) == 0);
  for (int i = 0; i < 5; ++i) {
    char* echo[] = {"/bin/echo", "hello", "from", "echo", NULL};
    run_child(echo, "hello from echo\n");
  }
  char* sh[] = {"/bin/sh", "-c", "printf 'b\\na\\nc\\n' | sort | tr -d '\\n'", NULL};
  run_child(sh, "abc");
  /* fork without exec: the child does blocking I/O of its own and exits */
  int p[2];
  CHECK(pipe(p) == 0);
  pid_t pid = fork();
  CHECK(pid >= 0);
  if (pid == 0) {
    char c;
    usleep(10000);
    if (read(p[0], &c, 1) != 1 || c != 'q') _exit(3);
    _exit(0);
  }
  usleep(50000);
  CHECK(write(p[1], "q", 1) == 1);
  int st;
  CHECK(waitpid(pid, &st, 0) == pid && WIFEXITED(st) && WEXITSTATUS(st) == 0);
  /* wait() too */
  pid = fork();
  if (pid == 0) _exit(7);
  CHECK(wait(&st) == pid && WEXITSTATUS(st) == 7);
  g_stop = 1;
  CHECK(pthread_join(t, NULL) == 0);
  CHECK(g_ticks > 0);
  puts("forkexec: ok");
  return 0;
}
