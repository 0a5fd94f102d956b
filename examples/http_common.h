/* http_common.h: the HTTP/1.1 subset shared by http_threads.c (OS threads) and
 * http_server.cpp (fibers), so the two servers differ only in their concurrency model.
 *
 * Plain C, header-only, no I/O of its own: http_parse() recognises one request head in a
 * buffer, http_route() decides the response (a built-in body or a file to stream) and formats
 * its head. Supported: GET/HEAD, keep-alive (HTTP/1.1 default, HTTP/1.0 with
 * "Connection: keep-alive"), pipelined requests, request bodies skipped by Content-Length.
 * Routes: /hello, /static/NAME (a file NAME in the --root directory; NAME is restricted to
 * [A-Za-z0-9._-] and may not start with '.'), everything else 404.
 */
#ifndef GREEN_EXAMPLES_HTTP_COMMON_H
#define GREEN_EXAMPLES_HTTP_COMMON_H

#include <fcntl.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

enum { HTTP_MAX_HEAD = 8192 };

typedef struct {
  int is_get, is_head;
  char path[1024];
  int keep_alive;
  size_t head_len;       /* bytes of request line + headers + blank line */
  size_t content_length; /* request body bytes to skip after the head */
} HttpRequest;

/* Returns 1 and fills *req when buf holds a full request head, 0 when more bytes are needed,
 * -1 for a malformed or oversized request. */
static inline int http_parse(const char* buf, size_t len, HttpRequest* req) {
  const char* end = NULL;
  for (size_t i = 0; i + 3 < len; i++) {
    if (buf[i] == '\r' && buf[i + 1] == '\n' && buf[i + 2] == '\r' && buf[i + 3] == '\n') {
      end = buf + i + 4;
      break;
    }
  }
  if (!end) return len >= HTTP_MAX_HEAD ? -1 : 0;
  memset(req, 0, sizeof *req);
  req->head_len = (size_t)(end - buf);
  const char* line_end = (const char*)memchr(buf, '\r', req->head_len);
  const char* sp1 = (const char*)memchr(buf, ' ', (size_t)(line_end - buf));
  if (!sp1) return -1;
  const char* sp2 = (const char*)memchr(sp1 + 1, ' ', (size_t)(line_end - sp1 - 1));
  if (!sp2 || (size_t)(sp2 - sp1 - 1) >= sizeof req->path) return -1;
  req->is_get = (sp1 - buf == 3 && !memcmp(buf, "GET", 3));
  req->is_head = (sp1 - buf == 4 && !memcmp(buf, "HEAD", 4));
  memcpy(req->path, sp1 + 1, (size_t)(sp2 - sp1 - 1));
  req->path[sp2 - sp1 - 1] = 0;
  size_t vlen = (size_t)(line_end - sp2 - 1);
  if (vlen == 8 && !memcmp(sp2 + 1, "HTTP/1.1", 8)) {
    req->keep_alive = 1;
  } else if (vlen == 8 && !memcmp(sp2 + 1, "HTTP/1.0", 8)) {
    req->keep_alive = 0;
  } else {
    return -1;
  }
  /* Header lines. */
  const char* p = line_end + 2;
  while (p < end - 2) {
    const char* le = (const char*)memchr(p, '\r', (size_t)(end - p));
    const char* colon = (const char*)memchr(p, ':', (size_t)(le - p));
    if (colon) {
      size_t nlen = (size_t)(colon - p);
      const char* v = colon + 1;
      while (v < le && (*v == ' ' || *v == '\t')) v++;
      size_t vl = (size_t)(le - v);
      if (nlen == 10 && !strncasecmp(p, "Connection", 10)) {
        if (vl >= 5 && !strncasecmp(v, "close", 5)) req->keep_alive = 0;
        if (vl >= 10 && !strncasecmp(v, "keep-alive", 10)) req->keep_alive = 1;
      } else if (nlen == 14 && !strncasecmp(p, "Content-Length", 14)) {
        size_t n = 0;
        for (; v < le && *v >= '0' && *v <= '9'; v++) n = n * 10 + (size_t)(*v - '0');
        req->content_length = n;
      }
    }
    p = le + 2;
  }
  return 1;
}

typedef struct {
  char head[512];
  size_t head_len;
  const char* body; /* a built-in body, or NULL */
  size_t body_len;  /* bytes of body (built-in or file) */
  int file_fd;      /* >= 0: stream body_len bytes from this file, then close it */
  int send_body;    /* 0 for HEAD */
} HttpResponse;

static inline const char* http_content_type(const char* name) {
  const char* dot = strrchr(name, '.');
  if (!dot) return "application/octet-stream";
  if (!strcmp(dot, ".html")) return "text/html; charset=utf-8";
  if (!strcmp(dot, ".txt")) return "text/plain; charset=utf-8";
  if (!strcmp(dot, ".css")) return "text/css";
  if (!strcmp(dot, ".js")) return "text/javascript";
  if (!strcmp(dot, ".json")) return "application/json";
  if (!strcmp(dot, ".png")) return "image/png";
  return "application/octet-stream";
}

static inline int http_valid_name(const char* name) {
  if (!*name || *name == '.') return 0;
  for (const char* c = name; *c; c++) {
    int ok = (*c >= 'a' && *c <= 'z') || (*c >= 'A' && *c <= 'Z') || (*c >= '0' && *c <= '9') ||
             *c == '.' || *c == '_' || *c == '-';
    if (!ok) return 0;
  }
  return 1;
}

/* Decides the response to req. root: directory for /static/. */
static inline void http_route(const HttpRequest* req, const char* root, HttpResponse* r) {
  static const char kHello[] = "Hello, world!\n";
  static const char kNotFound[] = "not found\n";
  static const char kBadMethod[] = "method not allowed\n";
  int status = 200;
  const char* reason = "OK";
  const char* type = "text/plain; charset=utf-8";
  r->body = NULL;
  r->body_len = 0;
  r->file_fd = -1;
  r->send_body = !req->is_head;
  if (!req->is_get && !req->is_head) {
    status = 405, reason = "Method Not Allowed";
    r->body = kBadMethod, r->body_len = sizeof kBadMethod - 1;
  } else if (!strcmp(req->path, "/hello")) {
    r->body = kHello, r->body_len = sizeof kHello - 1;
  } else if (!strncmp(req->path, "/static/", 8) && http_valid_name(req->path + 8)) {
    char file[2048];
    snprintf(file, sizeof file, "%s/%s", root, req->path + 8);
    int fd = open(file, O_RDONLY | O_CLOEXEC);
    struct stat st;
    if (fd >= 0 && fstat(fd, &st) == 0 && S_ISREG(st.st_mode)) {
      r->file_fd = fd;
      r->body_len = (size_t)st.st_size;
      type = http_content_type(req->path + 8);
    } else {
      if (fd >= 0) close(fd);
      status = 404, reason = "Not Found";
      r->body = kNotFound, r->body_len = sizeof kNotFound - 1;
    }
  } else {
    status = 404, reason = "Not Found";
    r->body = kNotFound, r->body_len = sizeof kNotFound - 1;
  }
  if (!r->send_body && r->file_fd >= 0) {
    close(r->file_fd);
    r->file_fd = -1;
  }
  int n = snprintf(r->head, sizeof r->head,
                   "HTTP/1.1 %d %s\r\nServer: green-example\r\nContent-Type: %s\r\n"
                   "Content-Length: %zu\r\nConnection: %s\r\n\r\n",
                   status, reason, type, r->body_len, req->keep_alive ? "keep-alive" : "close");
  r->head_len = (size_t)n;
}

#define HTTP_BAD_REQUEST \
  "HTTP/1.1 400 Bad Request\r\nContent-Length: 12\r\nConnection: close\r\n\r\nbad request\n"

#endif
