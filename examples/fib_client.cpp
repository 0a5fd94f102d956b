// fib_client: the fib server scenario: how do short requests fare while one long one runs?
//
// What it demonstrates (with fib_server): K connections keep sending the short request
// fib(1) back to back; after a warm-up, one more connection asks for fib(--long, default 40).
// The client measures the short requests during that long computation: how many completed
// per second and how long each one took (every request that overlapped fib(40), however late
// it finished), next to the baseline rate before it started. Each connection is a fiber
// with a blocking loop and its own list of timings; no locks on the hot path.
//
// Output: human lines, then one machine-readable line:
//   short_rate=... baseline_rate=... short_p50_us=... short_p99_us=... short_max_us=...
//   long_ms=... errors=...
#include <atomic>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <memory>
#include <string>
#include <system_error>
#include <utility>
#include <vector>

#include "example_util.hpp"
#include "green/green.hpp"

namespace {
using Clock = std::chrono::steady_clock;

std::string fib_text(int n) {
  std::uint64_t a = 0, b = 1;
  for (int i = 0; i < n; i++) b = std::exchange(a, b) + b;
  return std::to_string(a);
}
}  // namespace

int main(int argc, char** argv) {
  example::Flags flags(argc, argv,
                       "--port N [--host 127.0.0.1] [--clients K] [--long 40] [--warmup S]");
  const std::string host = flags.str("host", "127.0.0.1");
  const long port = flags.num("port", 0);
  const long clients = flags.num("clients", 8);
  const int long_n = static_cast<int>(flags.num("long", 40));
  const double warmup = flags.real("warmup", 0.5);
  flags.done();
  if (port <= 0 || clients <= 0 || long_n < 0 || long_n > 50) flags.fail("bad arguments");

  green::Options opts;
  opts.workers = 1;
  return green::run(
      [&]() -> int {
        auto addr = green::net::Address::ipv4(host, static_cast<std::uint16_t>(port));
        struct Timing {
          Clock::time_point start, end;
        };
        std::vector<std::vector<Timing>> timings(static_cast<std::size_t>(clients));
        std::atomic<bool> stop{false};
        std::atomic<long> errors{0};
        green::WaitGroup done(clients);
        for (long i = 0; i < clients; i++) {
          green::spawn([&, i] {
            auto& mine = timings[static_cast<std::size_t>(i)];
            try {
              auto c = green::net::TcpStream::connect(addr, std::chrono::seconds(5));
              c.set_nodelay(true);
              example::LineReader<green::net::TcpStream> in(c);
              std::string line;
              while (!stop.load(std::memory_order_relaxed)) {
                auto t0 = Clock::now();
                c.write_all("1\n", 2);
                if (!in.read_line(line) || line != "1") {
                  errors++;
                  break;
                }
                mine.push_back({t0, Clock::now()});
              }
            } catch (const std::system_error& e) {
              std::fprintf(stderr, "fib_client: %s\n", e.what());
              errors++;
            }
            done.done();
          }).detach();
        }
        auto t_base = Clock::now();
        green::this_fiber::sleep_for(std::chrono::duration<double>(warmup));
        // The long request, on its own connection.
        auto t0 = Clock::now(), t1 = t0;
        std::string answer;
        try {
          auto c = green::net::TcpStream::connect(addr, std::chrono::seconds(5));
          example::LineReader<green::net::TcpStream> in(c);
          t0 = Clock::now();
          c.write_all(std::to_string(long_n) + "\n");
          if (!in.read_line(answer)) answer = "<closed>";
          t1 = Clock::now();
        } catch (const std::system_error& e) {
          answer = e.what();
        }
        if (answer != fib_text(long_n)) {
          std::fprintf(stderr, "fib_client: fib(%d) answered '%s'\n", long_n, answer.c_str());
          errors++;
        }
        // Let requests that started during the long one finish, then stop everyone.
        green::this_fiber::sleep_for(std::chrono::milliseconds(50));
        stop = true;
        if (!done.wait_for(std::chrono::seconds(10))) {
          std::fprintf(stderr, "fib_client: short-request fibers did not stop within 10 s\n");
          return 1;  // their timings are still being written: do not read them
        }

        example::Histogram during;
        std::uint64_t completed_in_window = 0, baseline_count = 0;
        auto base_from = t_base + (t0 - t_base) / 5;  // skip connection set-up
        for (auto& v : timings) {
          for (auto& t : v) {
            if (t.end > t0 && t.start < t1)  // overlapped the long request
              during.add(static_cast<std::uint64_t>(
                  std::chrono::duration_cast<std::chrono::nanoseconds>(t.end - t.start).count()));
            if (t.end >= t0 && t.end <= t1) completed_in_window++;
            if (t.end >= base_from && t.end < t0) baseline_count++;
          }
        }
        double window = std::chrono::duration<double>(t1 - t0).count();
        double base_window = std::chrono::duration<double>(t0 - base_from).count();
        double rate = window > 0 ? static_cast<double>(completed_in_window) / window : 0;
        double base_rate = base_window > 0 ? static_cast<double>(baseline_count) / base_window : 0;
        std::printf("fib_client: %ld connections sending fib(1), one fib(%d)\n", clients, long_n);
        std::printf("  fib(%d) took %.0f ms\n", long_n, window * 1e3);
        std::printf("  short requests: %.0f/s before, %.0f/s while fib(%d) ran\n", base_rate, rate,
                    long_n);
        std::printf("  short latency while it ran: p50 %s, p99 %s, max %s\n",
                    example::human_ns(during.quantile(0.5)).c_str(),
                    example::human_ns(during.quantile(0.99)).c_str(),
                    example::human_ns(static_cast<double>(during.max())).c_str());
        std::printf(
            "short_rate=%.0f baseline_rate=%.0f short_p50_us=%.1f short_p99_us=%.1f "
            "short_max_us=%.1f long_ms=%.1f errors=%ld\n",
            rate, base_rate, during.quantile(0.5) / 1e3, during.quantile(0.99) / 1e3,
            static_cast<double>(during.max()) / 1e3, window * 1e3, errors.load());
        std::fflush(stdout);
        return errors.load() == 0 ? 0 : 1;
      },
      opts);
}
