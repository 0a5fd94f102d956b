// fetcher: N downloads from a local HTTP server, sequentially and then with fibers.
//
// What it demonstrates: structured concurrency with a bound, using green::Group. spawn()
// parks while --limit downloads are in flight, wait() joins every member, and the first
// member to fail cancels all the others (their blocked connect/read throws green::Cancelled)
// and makes further spawn() calls throw Cancelled; wait() then rethrows that first error.
// Three runs:
//   1. sequential: one download after another;
//   2. fibers with --limit: the same downloads, overlapped, every body verified;
//   3. cancel on first error: the server fails item --fail-at; the group cancels the rest.
// The HTTP server (fibers, http_common.h parsing) runs in the same process on its own port
// and delays every response by --delay-ms, as a remote server would.
//
// Flags: --items N (100), --limit L (10), --delay-ms D (10), --fail-at K (items/3),
// --workers N. Exit status 0 only if every check passed.
#include <atomic>
#include <chrono>
#include <cstdio>
#include <stdexcept>
#include <string>
#include <system_error>
#include <vector>

#include "example_util.hpp"
#include "green/green.hpp"
#include "http_common.h"

namespace {

using Clock = std::chrono::steady_clock;

// ---- the server ----
std::string body_for(long i) {
  std::string b(1024 + static_cast<std::size_t>((i * 37) % 4096), ' ');
  for (std::size_t k = 0; k < b.size(); k++) b[k] = static_cast<char>('a' + (i + k * 7) % 26);
  return b;
}

void serve(green::net::TcpStream c, long delay_ms, long fail_at) {
  char buf[HTTP_MAX_HEAD];
  std::size_t len = 0;
  HttpRequest req;
  int st;
  while ((st = http_parse(buf, len, &req)) == 0) {
    std::size_t n = c.read(buf + len, sizeof buf - len);
    if (n == 0) return;
    len += n;
  }
  long item = -1;
  if (st > 0) std::sscanf(req.path, "/item/%ld", &item);
  green::this_fiber::sleep_for(
      std::chrono::milliseconds(item == fail_at ? delay_ms / 2 : delay_ms));
  std::string body = item < 0          ? "bad request\n"
                     : item == fail_at ? "backend failure\n"
                                       : body_for(item);
  const char* status = item < 0          ? "400 Bad Request"
                       : item == fail_at ? "500 Internal Server Error"
                                         : "200 OK";
  c.write_all("HTTP/1.1 " + std::string(status) + "\r\nContent-Length: " +
              std::to_string(body.size()) + "\r\nConnection: close\r\n\r\n" + body);
}

// ---- the client ----
struct FetchError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

std::string fetch(std::uint16_t port, long item) {
  auto c = green::net::TcpStream::connect("127.0.0.1", port, std::chrono::seconds(5));
  c.write_all("GET /item/" + std::to_string(item) +
              " HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n");
  std::string resp;
  char buf[16384];
  while (std::size_t n = c.read(buf, sizeof buf)) resp.append(buf, n);
  auto head_end = resp.find("\r\n\r\n");
  int status = 0;
  std::size_t clen = 0;
  if (head_end == std::string::npos || std::sscanf(resp.c_str(), "HTTP/1.1 %d", &status) != 1)
    throw FetchError("item " + std::to_string(item) + ": malformed response");
  auto cl = resp.find("Content-Length: ");
  if (cl != std::string::npos && cl < head_end) clen = std::stoul(resp.substr(cl + 16));
  std::string body = resp.substr(head_end + 4);
  if (status != 200)
    throw FetchError("item " + std::to_string(item) + ": HTTP " + std::to_string(status));
  if (body.size() != clen) throw FetchError("item " + std::to_string(item) + ": truncated body");
  return body;
}

double since(Clock::time_point t) {
  return std::chrono::duration<double>(Clock::now() - t).count();
}

}  // namespace

int main(int argc, char** argv) {
  example::Flags flags(argc, argv,
                       "[--items N] [--limit L] [--delay-ms D] [--fail-at K] [--workers N]");
  const long items = flags.num("items", 100);
  const long limit = flags.num("limit", 10);
  const long delay_ms = flags.num("delay-ms", 10);
  const long fail_at = flags.num("fail-at", items / 3);
  green::Options opts;
  opts.workers = static_cast<std::size_t>(flags.num("workers", 0));
  flags.done();
  if (items <= 0 || limit <= 0 || delay_ms < 0 || fail_at < 0 || fail_at >= items)
    flags.fail("bad arguments (need items > 0, limit > 0, 0 <= fail-at < items)");

  return green::run(
      [&]() -> int {
        std::atomic<long> server_fail_at{-1};  // off for runs 1 and 2
        auto listener = green::net::TcpListener::bind("127.0.0.1", 0);
        const std::uint16_t port = listener.port();
        green::spawn([&] {
          for (;;) {
            auto c = listener.accept();
            green::spawn([c = std::move(c), delay_ms, f = server_fail_at.load()]() mutable {
              try {
                serve(std::move(c), delay_ms, f);
              } catch (const std::system_error&) {
              }
            }).detach();
          }
        }).detach();
        std::printf(
            "fetcher: %ld items of 1-5 KiB from http://127.0.0.1:%u (each response "
            "delayed %ld ms)\n",
            items, port, delay_ms);
        bool ok = true;

        // 1. Sequential.
        auto t = Clock::now();
        long good = 0;
        for (long i = 0; i < items; i++) good += fetch(port, i) == body_for(i);
        double seq = since(t);
        std::printf("  sequential:            %ld/%ld bodies correct in %.3f s\n", good, items,
                    seq);
        ok &= good == items;

        // 2. Fibers, bounded.
        t = Clock::now();
        std::vector<std::string> bodies(static_cast<std::size_t>(items));
        std::atomic<long> in_flight{0}, max_in_flight{0};
        {
          green::Group g(static_cast<std::size_t>(limit));
          for (long i = 0; i < items; i++) {
            g.spawn([&, i] {
              long now = ++in_flight;
              for (long m = max_in_flight.load();
                   now > m && !max_in_flight.compare_exchange_weak(m, now);) {
              }
              bodies[static_cast<std::size_t>(i)] = fetch(port, i);
              in_flight--;
            });
          }
          g.wait();
        }
        double par = since(t);
        good = 0;
        for (long i = 0; i < items; i++) good += bodies[static_cast<std::size_t>(i)] == body_for(i);
        char label[32];
        std::snprintf(label, sizeof label, "fibers, limit %ld:", limit);
        std::printf(
            "  %-22s %ld/%ld bodies correct in %.3f s (%.1fx faster), at most %ld in "
            "flight\n",
            label, good, items, par, seq / par, max_in_flight.load());
        ok &= good == items && max_in_flight.load() <= limit;

        // 3. Cancel on first error.
        server_fail_at = fail_at;
        t = Clock::now();
        std::atomic<long> completed{0}, cancelled{0};
        long spawned = 0;
        std::string error;
        {
          green::Group g(static_cast<std::size_t>(limit));
          try {
            for (long i = 0; i < items; i++) {
              g.spawn([&, i] {
                try {
                  fetch(port, i);
                  completed++;
                } catch (const green::Cancelled&) {
                  cancelled++;  // stopped by the first failure
                  throw;
                }
              });
              spawned++;
            }
          } catch (const green::Cancelled&) {
            // spawn() refuses new members once one has failed
          }
          try {
            g.wait();
          } catch (const FetchError& e) {
            error = e.what();
          }
        }
        double cancel_time = since(t);
        std::printf(
            "  cancel on first error: '%s' after %.3f s; %ld fetches completed, %ld "
            "cancelled in flight, %ld never started\n",
            error.c_str(), cancel_time, completed.load(), cancelled.load(), items - spawned);
        bool cancel_ok = error == "item " + std::to_string(fail_at) + ": HTTP 500" &&
                         completed.load() + cancelled.load() + 1 == spawned && spawned < items;
        ok &= cancel_ok;
        std::printf(
            "fetcher: %s\n",
            ok ? "every body received and verified; first error cancelled the rest" : "FAILED");
        return ok ? 0 : 1;
      },
      opts);
}
