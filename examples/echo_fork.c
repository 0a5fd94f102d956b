/* echo_fork.c: the process-per-connection echo server (the classic inetd/Apache-prefork
 * model), in plain C.
 *
 * What it demonstrates: isolation by processes. The parent accepts; each connection gets a
 * fork()ed child that runs a blocking read()/write() loop and exits at end of stream. A
 * crash in one child cannot touch another, but each connection costs a whole process (page
 * tables, kernel task, copy-on-write memory) and a fork() on the accept path. Children are
 * reaped automatically (SIGCHLD ignored) and die with the parent (PR_SET_PDEATHSIG), so
 * killing the parent PID cleans everything up.
 *
 * Protocol: every byte received is sent back. Flags: --port N (0 picks a free port),
 * --host ADDR (default 127.0.0.1). The first line on stdout is "listening on PORT".
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <unistd.h>

#include "server_args.h"

static void serve(int fd) {
  char buf[16384];
  for (;;) {
    ssize_t n = read(fd, buf, sizeof buf);
    if (n == 0) return;
    if (n < 0) {
      if (errno == EINTR) continue;
      return;
    }
    ssize_t off = 0;
    while (off < n) {
      ssize_t w = write(fd, buf + off, (size_t)(n - off));
      if (w < 0) {
        if (errno == EINTR) continue;
        return;
      }
      off += w;
    }
  }
}

int main(int argc, char** argv) {
  ServerArgs args = {"127.0.0.1", 0, NULL, NULL};
  server_parse_args(argc, argv, &args);
  signal(SIGPIPE, SIG_IGN);
  signal(SIGCHLD, SIG_IGN); /* children are reaped by the kernel */
  pid_t parent = getpid();

  int lfd = server_listen(&args);
  int one = 1; /* for TCP_NODELAY on each connection */

  int warned = 0;
  for (;;) {
    int fd = accept(lfd, NULL, NULL);
    if (fd < 0) {
      if (errno == EINTR || errno == ECONNABORTED) continue;
      if (errno == EMFILE || errno == ENFILE) {
        if (!warned++) perror("accept (raise ulimit -n)");
        usleep(1000);
        continue;
      }
      perror("accept");
      return 1;
    }
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    pid_t pid = fork();
    if (pid == 0) {
      prctl(PR_SET_PDEATHSIG, SIGKILL);
      if (getppid() != parent) _exit(0); /* the parent died before prctl */
      close(lfd);
      serve(fd);
      _exit(0);
    }
    if (pid < 0 && !warned++) {
      /* The process limit of this style (ulimit -u, pid_max, memory): report it once. */
      perror("fork (connection dropped)");
    }
    close(fd);
  }
}
