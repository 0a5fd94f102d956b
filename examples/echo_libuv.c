/* echo_libuv.c: the echo server written the explicit-async way, on raw libuv callbacks.
 *
 * What it demonstrates: the performance reference for the demo and what "async without
 * green threads" costs in code shape. One thread, one event loop; every connection is a small
 * heap struct, and the control flow is split into callbacks (on_connection -> on_read ->
 * on_write_done). It is written to be as fast as libuv allows:
 *   - uv_read_start with one buffer reused per connection (no malloc per read);
 *   - uv_try_write first, so the common case is one read(2) + one write(2) per message;
 *   - only a short write queues the remainder with uv_write, and reading stops until that
 *     write completes (back-pressure, and the buffer is never overwritten while queued).
 *
 * Protocol: every byte received is sent back. Flags: --port N (0 picks a free port),
 * --host ADDR (default 127.0.0.1). The first line on stdout is "listening on PORT".
 */
#define _GNU_SOURCE
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <uv.h>

#include "server_args.h"

typedef struct {
  uv_tcp_t tcp; /* first member: the handle pointer is the conn pointer */
  uv_write_t wreq;
  char buf[16384];
} Conn;

static void on_closed(uv_handle_t* h) {
  free(h);
}

static void conn_close(Conn* c) {
  if (!uv_is_closing((uv_handle_t*)&c->tcp)) uv_close((uv_handle_t*)&c->tcp, on_closed);
}

static void on_alloc(uv_handle_t* h, size_t suggested, uv_buf_t* buf) {
  (void)suggested;
  Conn* c = (Conn*)h;
  *buf = uv_buf_init(c->buf, sizeof c->buf);
}

static void on_read(uv_stream_t* s, ssize_t nread, const uv_buf_t* buf);

static void on_write_done(uv_write_t* req, int status) {
  Conn* c = (Conn*)req->handle;
  if (status < 0 || uv_read_start((uv_stream_t*)&c->tcp, on_alloc, on_read) < 0) conn_close(c);
}

static void on_read(uv_stream_t* s, ssize_t nread, const uv_buf_t* buf) {
  Conn* c = (Conn*)s;
  if (nread < 0) {  // UV_EOF or an error
    conn_close(c);
    return;
  }
  if (nread == 0) return;  // EAGAIN, nothing to do
  uv_buf_t out = uv_buf_init(buf->base, (unsigned)nread);
  int w = uv_try_write(s, &out, 1);
  if (w == nread) return;  // the fast path
  if (w == UV_EAGAIN) w = 0;
  if (w < 0) {
    conn_close(c);
    return;
  }
  // Short write: queue the rest from the (stable) connection buffer; pause reading.
  uv_read_stop(s);
  out = uv_buf_init(buf->base + w, (unsigned)(nread - w));
  if (uv_write(&c->wreq, s, &out, 1, on_write_done) < 0) conn_close(c);
}

static void on_connection(uv_stream_t* server, int status) {
  if (status < 0) {
    fprintf(stderr, "connection error: %s\n", uv_strerror(status));
    return;
  }
  Conn* c = malloc(sizeof *c);
  if (!c) return;
  uv_tcp_init(server->loop, &c->tcp);
  if (uv_accept(server, (uv_stream_t*)&c->tcp) < 0) {
    conn_close(c);
    return;
  }
  uv_tcp_nodelay(&c->tcp, 1);
  if (uv_read_start((uv_stream_t*)&c->tcp, on_alloc, on_read) < 0) conn_close(c);
}

int main(int argc, char** argv) {
  ServerArgs args = {"127.0.0.1", 0, NULL, NULL};
  server_parse_args(argc, argv, &args);
  const char* host = args.host;
  int port = args.port;
  signal(SIGPIPE, SIG_IGN);
  uv_loop_t* loop = uv_default_loop();
  uv_tcp_t server;
  uv_tcp_init(loop, &server);
  struct sockaddr_in addr;
  int rc = uv_ip4_addr(host, port, &addr);
  if (rc == 0) rc = uv_tcp_bind(&server, (const struct sockaddr*)&addr, 0);
  if (rc == 0) rc = uv_listen((uv_stream_t*)&server, 4096, on_connection);
  if (rc < 0) {
    fprintf(stderr, "listen on %s:%d: %s\n", host, port, uv_strerror(rc));
    return 1;
  }
  struct sockaddr_in bound;
  int len = sizeof bound;
  uv_tcp_getsockname(&server, (struct sockaddr*)&bound, &len);
  printf("listening on %d\n", ntohs(bound.sin_port));
  fflush(stdout);
  return uv_run(loop, UV_RUN_DEFAULT);
}
