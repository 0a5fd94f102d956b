/* loadgen: a plain C epoll load generator for echo and HTTP servers (not a green program, so
 * it never shares the runtime it measures).
 *
 *   loadgen --port P [--host 127.0.0.1] [--conns N] [--size BYTES] [--duration S] [--warmup S]
 *           [--http PATH]
 *
 * One thread, closed loop: each of N connections sends one message of BYTES bytes, waits for
 * the whole echo, checks every byte (the content depends on the connection and the sequence
 * number), and sends the next. With --http PATH, each message is instead a keep-alive
 * "GET PATH HTTP/1.1" request and the answer a whole response: its status must be 200, its
 * head at most 1 KiB with a Content-Length, and its body byte for byte the body of one
 * reference request made (blocking) before the load starts; "rt" then counts requests.
 * Counted over --duration seconds after --warmup seconds:
 * round trips/s, latency p50/p99/p99.9/max, and for every whole second how many connections
 * got at least one answer (min_answered: the worst second; == conns means every connection
 * was answered in every second). Output: one line of key=value pairs on stdout; on stderr
 * "loadgen: measuring" when the measured window starts and "loadgen: done" when it ends (for
 * scripts that sample the server's CPU time over that window). Exit status 1
 * on a wrong byte, a closed connection or a connect failure, 2 on bad usage.
 *
 * Bounded: the run ends after warmup + duration seconds whatever the server does. */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

enum { kMaxSize = 65536, kSubBuckets = 64, kMaxSeconds = 3600, kHeadMax = 1024 };

struct conn {
  int fd;
  uint32_t seq;
  uint32_t got;      /* bytes of the current echo received (HTTP: of the response body) */
  uint64_t sent_ns;  /* when the current message went out */
  int last_sec;      /* the last measured second this connection was answered in */
  int in_body;       /* HTTP: the response head is complete, body bytes follow */
  uint32_t head_len; /* HTTP: bytes of the response head so far, in head */
  char* head;        /* HTTP: kHeadMax bytes of this connection's slice of g_heads */
};

/* HTTP mode: the request every connection sends, and the reference response body. */
static const char* g_http_path;
static char g_request[1200];
static size_t g_request_len;
static unsigned char g_body[kMaxSize];
static uint32_t g_body_len;

static uint64_t now_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static unsigned char byte_of(int id, uint32_t seq, uint32_t i) {
  return (unsigned char)((uint32_t)id * 131u + seq * 31u + i * 7u + (i >> 8));
}

/* Latency histogram: exact below 64 ns, then 32 linear sub-buckets per power of two (3%). */
static uint64_t g_hist[64 + 58 * 32];
static void record(uint64_t ns) {
  size_t b;
  if (ns < 64) {
    b = (size_t)ns;
  } else {
    int exp = 63 - __builtin_clzll(ns); /* >= 6 */
    uint64_t sub = ns >> (exp - 5);     /* [32, 64) */
    b = 64 + (size_t)(exp - 6) * 32 + (size_t)(sub - 32);
  }
  if (b >= sizeof g_hist / sizeof g_hist[0]) b = sizeof g_hist / sizeof g_hist[0] - 1;
  g_hist[b]++;
}
static uint64_t bucket_value(size_t b) {
  if (b < 64) return b;
  size_t k = b - 64;
  int exp = (int)(k / 32) + 6;
  uint64_t sub = k % 32 + 32;
  return sub << (exp - 5);
}
static double percentile(uint64_t total, double p) {
  uint64_t want = (uint64_t)((double)total * p), seen = 0;
  for (size_t b = 0; b < sizeof g_hist / sizeof g_hist[0]; ++b) {
    seen += g_hist[b];
    if (seen > want) return (double)bucket_value(b) / 1000.0;
  }
  return 0;
}

static int send_msg(struct conn* c, int id, int size, unsigned char* buf) {
  const void* msg = buf;
  if (g_http_path) {
    msg = g_request;
    size = (int)g_request_len;
    c->in_body = 0;
    c->head_len = 0;
  } else {
    for (int i = 0; i < size; ++i) buf[i] = byte_of(id, c->seq, (uint32_t)i);
  }
  ssize_t w = send(c->fd, msg, (size_t)size, MSG_NOSIGNAL);
  if (w != size) { /* the socket buffer is empty in a closed loop: all fits */
    fprintf(stderr, "loadgen: conn %d: send returned %zd (%s)\n", id, w, strerror(errno));
    return -1;
  }
  c->got = 0;
  c->sent_ns = now_ns();
  return 0;
}

/* The body length of a complete response head (status 200 and a Content-Length required),
 * or -1 with the reason printed. */
static long http_parse_head(int id, const char* h, uint32_t len) {
  char who[32] = "reference request"; /* id < 0: the reference request */
  if (id >= 0) snprintf(who, sizeof who, "conn %d", id);
  if (len < 12 || memcmp(h, "HTTP/1.1 200", 12) != 0) {
    const char* eol = memchr(h, '\r', len);
    fprintf(stderr, "loadgen: %s: response status \"%.*s\", want HTTP/1.1 200\n", who,
            (int)(eol ? eol - h : (long)len), h);
    return -1;
  }
  for (const char* p = h; p + 16 < h + len; ++p) {
    if ((p == h || p[-1] == '\n') && strncasecmp(p, "Content-Length:", 15) == 0) {
      char* end;
      long n = strtol(p + 15, &end, 10);
      if (end != p + 15 && n >= 0 && n <= kMaxSize) return n;
      break;
    }
  }
  fprintf(stderr, "loadgen: %s: response without a usable Content-Length (<= %d)\n", who, kMaxSize);
  return -1;
}

/* Feeds n response bytes of connection id: 1 when the response is complete, 0 when more bytes
 * are needed, -1 on an error (printed). */
static int http_feed(struct conn* c, int id, const unsigned char* p, size_t n) {
  size_t i = 0;
  if (!c->in_body) {
    while (i < n) {
      if (c->head_len >= kHeadMax) {
        fprintf(stderr, "loadgen: conn %d: response head longer than %d bytes\n", id, kHeadMax);
        return -1;
      }
      c->head[c->head_len++] = (char)p[i++];
      if (c->head_len >= 4 && memcmp(c->head + c->head_len - 4, "\r\n\r\n", 4) == 0) break;
    }
    if (c->head_len < 4 || memcmp(c->head + c->head_len - 4, "\r\n\r\n", 4) != 0) return 0;
    long len = http_parse_head(id, c->head, c->head_len);
    if (len < 0) return -1;
    if ((uint32_t)len != g_body_len) {
      fprintf(stderr, "loadgen: conn %d: Content-Length %ld, the reference body has %u bytes\n", id,
              len, g_body_len);
      return -1;
    }
    c->in_body = 1;
    c->got = 0;
  }
  size_t take = n - i;
  if (take > g_body_len - c->got) {
    fprintf(stderr, "loadgen: conn %d: %zu bytes after the response (no request was pipelined)\n",
            id, take - (g_body_len - c->got));
    return -1;
  }
  if (memcmp(p + i, g_body + c->got, take) != 0) {
    fprintf(stderr, "loadgen: conn %d: response body differs from the reference body\n", id);
    return -1;
  }
  c->got += (uint32_t)take;
  return c->got == g_body_len ? 1 : 0;
}

/* One blocking request on its own connection (5 s receive timeout): the reference body. */
static int http_reference(const struct sockaddr_in* addr) {
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  struct timeval tv = {.tv_sec = 5};
  if (fd < 0 || setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv) != 0 ||
      connect(fd, (const struct sockaddr*)addr, sizeof *addr) != 0 ||
      send(fd, g_request, g_request_len, MSG_NOSIGNAL) != (ssize_t)g_request_len) {
    fprintf(stderr, "loadgen: reference request: %s\n", strerror(errno));
    return -1;
  }
  static char head[kHeadMax];
  static unsigned char buf[kHeadMax + kMaxSize];
  size_t have = 0, head_len = 0;
  long body = -1;
  for (;;) {
    ssize_t r = recv(fd, buf + have, sizeof buf - have, 0);
    if (r <= 0) {
      fprintf(stderr, "loadgen: reference request: %s\n",
              r == 0 ? "connection closed before a whole response" : strerror(errno));
      close(fd);
      return -1;
    }
    have += (size_t)r;
    if (body < 0) {
      for (size_t i = 3; i < have && i < kHeadMax; ++i) {
        if (!memcmp(buf + i - 3, "\r\n\r\n", 4)) {
          head_len = i + 1;
          memcpy(head, buf, head_len);
          body = http_parse_head(-1, head, (uint32_t)head_len);
          if (body < 0) {
            close(fd);
            return -1;
          }
          break;
        }
      }
      if (body < 0 && have >= kHeadMax) {
        fprintf(stderr, "loadgen: reference request: response head longer than %d bytes\n",
                kHeadMax);
        close(fd);
        return -1;
      }
    }
    if (body >= 0 && have >= head_len + (size_t)body) break;
  }
  g_body_len = (uint32_t)body;
  memcpy(g_body, buf + head_len, (size_t)body);
  close(fd);
  return 0;
}

static void usage(void) {
  fprintf(stderr,
          "usage: loadgen --port P [--host ADDR] [--conns N] [--size BYTES] [--duration S] "
          "[--warmup S] [--http PATH]\n");
  exit(2);
}

int main(int argc, char** argv) {
  const char* host = "127.0.0.1";
  int port = 0, nconns = 1000, size = 64;
  double duration = 5, warmup = 1;
  for (int i = 1; i < argc; ++i) {
    const char* a = argv[i];
    if (i + 1 >= argc) usage();
    const char* v = argv[++i];
    if (!strcmp(a, "--port"))
      port = atoi(v);
    else if (!strcmp(a, "--host"))
      host = v;
    else if (!strcmp(a, "--conns"))
      nconns = atoi(v);
    else if (!strcmp(a, "--size"))
      size = atoi(v);
    else if (!strcmp(a, "--duration"))
      duration = atof(v);
    else if (!strcmp(a, "--warmup"))
      warmup = atof(v);
    else if (!strcmp(a, "--http"))
      g_http_path = v;
    else
      usage();
  }
  if (port <= 0 || port > 65535 || nconns <= 0 || size <= 0 || size > kMaxSize || duration <= 0 ||
      duration > kMaxSeconds || warmup < 0)
    usage();
  struct rlimit rl;
  if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
    rl.rlim_cur = rl.rlim_max;
    setrlimit(RLIMIT_NOFILE, &rl);
  }
  struct sockaddr_in addr = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
  if (inet_pton(AF_INET, host, &addr.sin_addr) != 1) usage();
  if (g_http_path) {
    if (g_http_path[0] != '/' || strlen(g_http_path) > 1024 || strpbrk(g_http_path, " \r\n"))
      usage();
    g_request_len =
        (size_t)snprintf(g_request, sizeof g_request, "GET %s HTTP/1.1\r\nHost: %s:%d\r\n\r\n",
                         g_http_path, host, port);
    if (http_reference(&addr) != 0) return 1;
  }

  struct conn* conns = calloc((size_t)nconns, sizeof *conns);
  char* heads = g_http_path ? malloc((size_t)nconns * kHeadMax) : NULL;
  int ep = epoll_create1(EPOLL_CLOEXEC);
  if (!conns || (g_http_path && !heads) || ep < 0) return 1;
  uint64_t t_connect = now_ns();
  for (int i = 0; i < nconns; ++i) {
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0 || connect(fd, (struct sockaddr*)&addr, sizeof addr) != 0) {
      fprintf(stderr, "loadgen: connect %d: %s\n", i, strerror(errno));
      return 1;
    }
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    fcntl(fd, F_SETFL, O_NONBLOCK);
    conns[i].fd = fd;
    conns[i].last_sec = -1;
    if (heads) conns[i].head = heads + (size_t)i * kHeadMax;
    struct epoll_event ev = {.events = EPOLLIN, .data.u32 = (uint32_t)i};
    if (epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev) != 0) return 1;
  }
  double connect_s = (double)(now_ns() - t_connect) / 1e9;

  static unsigned char buf[kMaxSize], in[kMaxSize];
  for (int i = 0; i < nconns; ++i)
    if (send_msg(&conns[i], i, size, buf) != 0) return 1;

  uint64_t start = now_ns();
  uint64_t measure_from = start + (uint64_t)(warmup * 1e9);
  uint64_t end = measure_from + (uint64_t)(duration * 1e9);
  int seconds = (int)duration;
  int* answered = calloc((size_t)seconds + 1, sizeof *answered);
  uint64_t rts = 0;
  struct epoll_event evs[512];
  int marked = 0;
  for (;;) {
    uint64_t now = now_ns();
    if (!marked && now >= measure_from) {
      /* For scripts that sample the server's CPU time over exactly the measured window. */
      fprintf(stderr, "loadgen: measuring\n");
      marked = 1;
    }
    if (now >= end) break;
    int timeout_ms = (int)((end - now) / 1000000) + 1;
    int n = epoll_wait(ep, evs, 512, timeout_ms > 100 ? 100 : timeout_ms);
    if (n < 0 && errno != EINTR) return 1;
    uint64_t t = now_ns();
    for (int k = 0; k < n; ++k) {
      int id = (int)evs[k].data.u32;
      struct conn* c = &conns[id];
      ssize_t r = recv(c->fd, in, g_http_path ? sizeof in : (size_t)(size - (int)c->got), 0);
      if (r < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) continue;
      if (r <= 0) {
        fprintf(stderr, "loadgen: conn %d: %s\n", id,
                r == 0 ? "closed by the server" : strerror(errno));
        return 1;
      }
      if (g_http_path) {
        int done = http_feed(c, id, in, (size_t)r);
        if (done < 0) return 1;
        if (!done) continue;
      } else {
        for (ssize_t i = 0; i < r; ++i) {
          if (in[i] != byte_of(id, c->seq, c->got + (uint32_t)i)) {
            fprintf(stderr, "loadgen: conn %d: wrong byte at %u of message %u\n", id,
                    c->got + (unsigned)i, c->seq);
            return 1;
          }
        }
        c->got += (uint32_t)r;
        if ((int)c->got < size) continue;
      }
      if (t >= measure_from && t < end) {
        ++rts;
        record(t - c->sent_ns);
        int sec = (int)((t - measure_from) / 1000000000ull);
        if (sec < seconds && c->last_sec != sec) {
          c->last_sec = sec;
          answered[sec]++;
        }
      }
      c->seq++;
      if (send_msg(c, id, size, buf) != 0) return 1;
    }
  }
  fprintf(stderr, "loadgen: done\n");
  /* Connections stay open (and idle) a moment, so a script sampling the server's CPU time at
   * "done" does not count the server's work of closing them. */
  usleep(300 * 1000);
  int min_answered = nconns;
  for (int s = 0; s < seconds; ++s)
    if (answered[s] < min_answered) min_answered = answered[s];
  if (seconds == 0) min_answered = -1;
  printf(
      "mode=%s conns=%d size=%d duration=%.1f connect_s=%.2f rt=%llu rt_per_s=%.0f p50_us=%.1f "
      "p99_us=%.1f p999_us=%.1f max_us=%.1f min_answered=%d\n",
      g_http_path ? "http" : "echo", nconns, g_http_path ? (int)g_body_len : size, duration,
      connect_s, (unsigned long long)rts, (double)rts / duration, percentile(rts, 0.50),
      percentile(rts, 0.99), percentile(rts, 0.999), percentile(rts, 0.999999), min_answered);
  return 0;
}
