// http_server: a small HTTP/1.1 server on green fibers (keep-alive, /hello, /static/NAME).
//
// What it demonstrates: the thread-per-connection program shape (http_threads.c) on fibers.
// Request parsing and routing are the same C code (http_common.h); only the I/O calls differ
// (green::net instead of read/write), so wrk compares the concurrency models, not the HTTP
// code. An idle keep-alive connection costs one parked fiber, not one OS thread. Static files
// are small and served from the page cache with plain read(2) on the worker; for files that
// may hit the disk, wrap the read in green::offload.
//
// Flags: --port N (0 picks), --host ADDR (default 127.0.0.1), --root DIR (served under
// /static/, default "."), --workers N. First stdout line: "listening on PORT".
#include <unistd.h>

#include <csignal>
#include <cstdio>
#include <cstring>
#include <string>
#include <system_error>

#include "example_util.hpp"
#include "green/green.hpp"
#include "http_common.h"

namespace {

void respond(green::net::TcpStream& c, HttpResponse& r) {
  char out[HTTP_MAX_HEAD];
  if (r.send_body && r.body && r.head_len + r.body_len <= sizeof out) {
    std::memcpy(out, r.head, r.head_len);  // one write for head + small body
    std::memcpy(out + r.head_len, r.body, r.body_len);
    c.write_all(out, r.head_len + r.body_len);
    return;
  }
  struct CloseFile {
    int fd;
    ~CloseFile() {
      if (fd >= 0) ::close(fd);
    }
  } file{r.file_fd};
  c.write_all(r.head, r.head_len);
  if (r.send_body && r.body) c.write_all(r.body, r.body_len);
  for (std::size_t left = r.body_len; file.fd >= 0 && left > 0;) {
    ssize_t n = ::read(file.fd, out, left < sizeof out ? left : sizeof out);
    if (n <= 0) throw std::system_error(EIO, std::generic_category(), "file shrank");
    c.write_all(out, static_cast<std::size_t>(n));
    left -= static_cast<std::size_t>(n);
  }
}

void serve(green::net::TcpStream c, const std::string& root) {
  c.set_nodelay(true);
  char buf[HTTP_MAX_HEAD];
  std::size_t len = 0, skip = 0;
  for (;;) {
    HttpRequest req;
    int st = skip ? 0 : http_parse(buf, len, &req);
    if (st < 0) {
      c.write_all(HTTP_BAD_REQUEST, sizeof HTTP_BAD_REQUEST - 1);
      return;
    }
    if (st == 0) {
      std::size_t n = c.read(buf + len, sizeof buf - len);
      if (n == 0) return;
      len += n;
      if (skip) {  // discard a request body
        std::size_t d = skip < len ? skip : len;
        std::memmove(buf, buf + d, len - d);
        len -= d;
        skip -= d;
      }
      continue;
    }
    HttpResponse resp;
    http_route(&req, root.c_str(), &resp);
    respond(c, resp);
    if (!req.keep_alive) return;
    std::size_t used = req.head_len + req.content_length;
    if (used > len) {
      skip = used - len;
      used = len;
    }
    std::memmove(buf, buf + used, len - used);
    len -= used;
  }
}

}  // namespace

int main(int argc, char** argv) {
  example::Flags flags(argc, argv, "[--port N] [--host 127.0.0.1] [--root DIR] [--workers N]");
  const std::string host = flags.str("host", "127.0.0.1");
  const long port = flags.num("port", 0);
  const std::string root = flags.str("root", ".");
  green::Options opts;
  opts.workers = static_cast<std::size_t>(flags.num("workers", 0));
  flags.done();
  std::signal(SIGPIPE, SIG_IGN);
  example::raise_nofile(1 << 20);

  return green::run(
      [&] {
        auto listener = green::net::TcpListener::bind(host, static_cast<std::uint16_t>(port));
        std::printf("listening on %u\n", listener.port());
        std::fflush(stdout);
        for (;;) {
          green::net::TcpStream conn;
          try {
            conn = listener.accept();
          } catch (const std::system_error& e) {
            std::fprintf(stderr, "accept: %s\n", e.what());
            green::this_fiber::sleep_for(std::chrono::milliseconds(1));
            continue;
          }
          green::spawn([c = std::move(conn), &root]() mutable {
            try {
              serve(std::move(c), root);
            } catch (const std::system_error&) {
              // client went away
            }
          }).detach();
        }
        return 0;
      },
      opts);
}
