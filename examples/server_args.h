/* server_args.h: the command line and the listening socket shared by the plain-C example
 * servers (echo_threads.c, echo_fork.c, echo_libuv.c, http_threads.c), so each file shows only
 * its concurrency model. Header-only, no green headers: the servers stay ordinary programs.
 *
 * Flags: --port N (0 picks a free port), --host ADDR (IPv4, default 127.0.0.1), plus at most
 * one server-specific flag taking a value. Anything else prints the usage line and exits 2.
 * server_listen() binds, listens (backlog 4096), prints "listening on PORT" as the first line
 * of stdout and returns the fd; it exits 2 on a bad --host and 1 if the socket cannot listen.
 */
#ifndef GREEN_EXAMPLES_SERVER_ARGS_H
#define GREEN_EXAMPLES_SERVER_ARGS_H

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

typedef struct {
  const char* host;
  int port;
  const char* extra_flag;  /* e.g. "--root", or NULL */
  const char* extra_value; /* its value; keeps the caller's default if not given */
} ServerArgs;

static inline void server_parse_args(int argc, char** argv, ServerArgs* a) {
  for (int i = 1; i < argc; i++) {
    if (!strcmp(argv[i], "--port") && i + 1 < argc) {
      a->port = atoi(argv[++i]);
    } else if (!strcmp(argv[i], "--host") && i + 1 < argc) {
      a->host = argv[++i];
    } else if (a->extra_flag && !strcmp(argv[i], a->extra_flag) && i + 1 < argc) {
      a->extra_value = argv[++i];
    } else {
      fprintf(stderr, "usage: %s [--port N] [--host 127.0.0.1]", argv[0]);
      if (a->extra_flag) fprintf(stderr, " [%s VALUE]", a->extra_flag);
      fputc('\n', stderr);
      exit(2);
    }
  }
}

static inline int server_listen(const ServerArgs* a) {
  struct sockaddr_in sa;
  memset(&sa, 0, sizeof sa);
  sa.sin_family = AF_INET;
  sa.sin_port = htons((uint16_t)a->port);
  if (inet_pton(AF_INET, a->host, &sa.sin_addr) != 1) {
    fprintf(stderr, "bad --host %s (IPv4 dotted quad expected)\n", a->host);
    exit(2);
  }
  int lfd = socket(AF_INET, SOCK_STREAM, 0);
  int one = 1;
  if (lfd < 0 || setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) < 0 ||
      bind(lfd, (struct sockaddr*)&sa, sizeof sa) < 0 || listen(lfd, 4096) < 0) {
    perror("socket/bind/listen");
    exit(1);
  }
  socklen_t len = sizeof sa;
  getsockname(lfd, (struct sockaddr*)&sa, &len);
  printf("listening on %d\n", ntohs(sa.sin_port));
  fflush(stdout);
  return lfd;
}

#endif
