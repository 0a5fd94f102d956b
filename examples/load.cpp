// green-load: a ping-pong load generator for echo servers, written on green itself.
//
// What it demonstrates: a load generator is the textbook fiber program. Each of the C
// connections is one fiber running straight-line blocking code (connect, then write S bytes /
// read S bytes in a loop, timing each round trip); 10,000 connections are 10,000 small stacks
// on one or a few worker threads, not 10,000 OS threads or a hand-written state machine.
//
// Phases: (1) connect every connection and do one unmeasured round trip on it (so the server
// has accepted it and set it up), at most --connect-concurrency at a time so the server's
// accept backlog is not flooded; connections not ready after --setup-timeout are given up
// (counted as errors) and the others are measured; (2) start all of them together (green::Event)
// and run for --duration seconds or --requests round trips per connection; (3) stop, give in-flight
// round trips --grace seconds, cancel stragglers (counted as errors) and report. Latencies go into
// one Histogram per fiber (no shared counters on the hot path), merged at the end. Only round trips
// completed inside the measured window count.
//
// Output: human-readable lines, then one machine-readable line:
//   rtt_per_sec=... p50_us=... p99_us=... max_us=... round_trips=... connections=...
//   connected=... errors=... duration_s=...
// Exit status 0 when there were no errors, 1 otherwise, 2 for bad flags.
#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <memory>
#include <string>
#include <system_error>
#include <vector>

#include "example_util.hpp"
#include "green/green.hpp"

namespace {

using Clock = std::chrono::steady_clock;

struct ConnStats {
  example::Histogram hist;
  std::uint64_t round_trips = 0;
  std::uint64_t errors = 0;
};

struct Shared {
  std::atomic<long> connect_failures{0};
  std::atomic<long> connected{0};
  std::atomic<bool> stop{false};
  green::Mutex first_error_lock;
  std::string first_error;  // guarded by first_error_lock
  void note_error(const std::string& what) {
    std::lock_guard<green::Mutex> g(first_error_lock);
    if (first_error.empty()) first_error = what;
  }
};

Clock::time_point deadline_in(double seconds) {
  return Clock::now() +
         std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(seconds));
}

}  // namespace

int main(int argc, char** argv) {
  example::Flags flags(
      argc, argv,
      "--port N [--host 127.0.0.1] [--connections C] [--size BYTES] "
      "[--duration SECONDS | --requests N] [--workers W] [--verify] "
      "[--connect-concurrency K] [--connect-timeout SECONDS] [--setup-timeout SECONDS] "
      "[--grace SECONDS]");
  const std::string host = flags.str("host", "127.0.0.1");
  const long port = flags.num("port", 0);
  const long conns = flags.num("connections", 100);
  const long size = flags.num("size", 64);
  const double duration = flags.real("duration", 5.0);
  const long requests = flags.num("requests", 0);
  const long workers = flags.num("workers", 1);
  const bool verify = flags.flag("verify");
  const long connect_concurrency = flags.num("connect-concurrency", 256);
  const double connect_timeout = flags.real("connect-timeout", 10.0);
  const double grace = flags.real("grace", 3.0);
  const double setup_timeout = flags.real("setup-timeout", 60.0);
  flags.done();
  if (port <= 0 || port > 65535) flags.fail("--port is required (1..65535)");
  if (conns <= 0 || size <= 0 || workers <= 0 || connect_concurrency <= 0 || duration <= 0)
    flags.fail("counts and durations must be positive");

  long nofile = example::raise_nofile(conns + 64);
  if (nofile < conns + 16)
    std::fprintf(stderr, "green-load: warning: RLIMIT_NOFILE is %ld, %ld connections need more\n",
                 nofile, conns);

  green::Options opts;
  opts.workers = static_cast<std::size_t>(workers);
  return green::run(
      [&]() -> int {
        auto addr = green::net::Address::ipv4(host, static_cast<std::uint16_t>(port));
        Shared shared;
        std::vector<std::unique_ptr<ConnStats>> stats;
        for (long i = 0; i < conns; i++) stats.push_back(std::make_unique<ConnStats>());
        green::Semaphore connect_slots(static_cast<std::size_t>(connect_concurrency));
        green::WaitGroup connecting(conns), finished(conns);
        green::Event go;
        Clock::time_point window_end = Clock::time_point::max();  // set before go.set()

        auto t_connect = Clock::now();
        const auto setup_deadline = deadline_in(setup_timeout);
        std::vector<green::Fiber<void>> fibers;
        fibers.reserve(static_cast<std::size_t>(conns));
        for (long i = 0; i < conns; i++) {
          green::SpawnOptions so;
          so.stack_size = 64 * 1024;
          fibers.push_back(green::spawn(so, [&, i] {
            ConnStats& st = *stats[static_cast<std::size_t>(i)];
            std::vector<unsigned char> out(static_cast<std::size_t>(size)), in(out.size());
            for (std::size_t k = 0; k < out.size(); k++)
              out[k] = static_cast<unsigned char>('a' + (k + static_cast<std::size_t>(i)) % 26);
            green::net::TcpStream c;
            if (!connect_slots.acquire_until(setup_deadline)) {
              shared.connect_failures++;
              shared.note_error("not connected and served within --setup-timeout");
              connecting.done();
              finished.done();
              return;
            }
            try {
              // Connect, then one unmeasured round trip: the server has accepted and set up
              // this connection (thread, process, fiber...) before the window opens.
              green::Deadline limit{std::min(setup_deadline, deadline_in(connect_timeout))};
              c = green::net::TcpStream::connect(addr);
              c.set_nodelay(true);
              c.write_all(out.data(), out.size());
              if (c.read_exact(in.data(), in.size()) != in.size())
                throw std::system_error(ECONNRESET, std::generic_category());
              shared.connected++;
            } catch (const std::system_error& e) {
              c.close();
              shared.connect_failures++;
              shared.note_error(std::string("connect: ") + e.code().message());
            } catch (const green::TimedOut&) {
              c.close();
              shared.connect_failures++;
              shared.note_error(
                  "not connected and served within --connect-timeout / --setup-timeout");
            }
            connect_slots.release();
            connecting.done();
            if (!c.is_open()) {
              finished.done();
              return;
            }
            try {
              go.wait();
              while (!shared.stop.load(std::memory_order_relaxed)) {
                auto t0 = Clock::now();
                c.write_all(out.data(), out.size());
                if (c.read_exact(in.data(), in.size()) != in.size()) {
                  st.errors++;
                  shared.note_error("server closed the connection");
                  break;
                }
                auto t1 = Clock::now();
                if (verify && std::memcmp(in.data(), out.data(), out.size()) != 0) {
                  st.errors++;
                  shared.note_error("echoed bytes differ");
                  break;
                }
                if (t1 > window_end) break;  // finished after the window: not counted
                st.hist.add(static_cast<std::uint64_t>(
                    std::chrono::duration_cast<std::chrono::nanoseconds>(t1 - t0).count()));
                if (requests > 0 && ++st.round_trips >= static_cast<std::uint64_t>(requests)) break;
                if (requests == 0) st.round_trips++;
              }
            } catch (const std::system_error& e) {
              st.errors++;
              shared.note_error(std::string("read/write: ") + e.code().message());
            } catch (const green::Cancelled&) {
              st.errors++;  // still waiting for a reply after the grace period
              shared.note_error("round trip still unanswered after the grace period");
            }
            finished.done();
          }));
        }
        connecting.wait();  // bounded: every connection gives up at setup_deadline
        auto connect_ms =
            std::chrono::duration<double, std::milli>(Clock::now() - t_connect).count();

        std::fprintf(stderr, "green-load: %ld/%ld connected in %.0f ms, measuring\n",
                     shared.connected.load(), conns, connect_ms);
        std::fflush(stderr);
        auto t_start = Clock::now();
        if (requests == 0)
          window_end = t_start + std::chrono::nanoseconds(static_cast<long long>(duration * 1e9));
        go.set();
        if (requests == 0) {
          green::this_fiber::sleep_until(window_end);
          shared.stop = true;
        } else {
          // Bounded in time even in --requests mode: --duration is then the time limit.
          if (!finished.wait_for(std::chrono::duration<double>(duration))) shared.stop = true;
        }
        long stalled = 0;
        if (!finished.wait_for(std::chrono::duration<double>(grace))) {
          for (auto& f : fibers)
            if (!f.done()) f.cancel(), stalled++;
          finished.wait_for(std::chrono::seconds(2));
        }
        auto t_end = Clock::now();
        double elapsed =
            requests == 0
                ? duration
                : std::chrono::duration<double>(std::min(t_end, window_end) - t_start).count();

        example::Histogram all;
        std::uint64_t round_trips = 0, io_errors = 0;
        for (std::size_t i = 0; i < stats.size(); i++) {
          if (!fibers[i].done()) continue;  // never came back: do not read its stats
          all.merge(stats[i]->hist);
          round_trips += stats[i]->round_trips;
          io_errors += stats[i]->errors;
        }
        long errors = shared.connect_failures.load() + static_cast<long>(io_errors);
        double rate = elapsed > 0 ? static_cast<double>(round_trips) / elapsed : 0;

        char what[64];
        if (requests) {
          std::snprintf(what, sizeof what, "%ld round trips each", requests);
        } else {
          std::snprintf(what, sizeof what, "%.1f s", duration);
        }
        std::printf("green-load: %ld connections to %s:%ld, %ld-byte messages, %s, %ld worker%s\n",
                    conns, host.c_str(), port, size, what, workers, workers == 1 ? "" : "s");
        std::printf("  connected %ld/%ld in %.0f ms\n", shared.connected.load(), conns, connect_ms);
        std::printf("  round trips: %llu in %.2f s = %.0f/s\n",
                    static_cast<unsigned long long>(round_trips), elapsed, rate);
        std::printf("  latency: p50 %s, p99 %s, max %s\n",
                    example::human_ns(all.quantile(0.5)).c_str(),
                    example::human_ns(all.quantile(0.99)).c_str(),
                    example::human_ns(static_cast<double>(all.max())).c_str());
        {
          std::lock_guard<green::Mutex> g(shared.first_error_lock);
          std::printf("  errors: %ld%s%s%s\n", errors, errors ? " (first: " : "",
                      errors ? shared.first_error.c_str() : "", errors ? ")" : "");
        }
        if (stalled)
          std::printf("  %ld connections were cancelled after the grace period\n", stalled);
        std::printf(
            "rtt_per_sec=%.0f p50_us=%.1f p99_us=%.1f max_us=%.1f round_trips=%llu "
            "connections=%ld connected=%ld errors=%ld duration_s=%.2f\n",
            rate, all.quantile(0.5) / 1e3, all.quantile(0.99) / 1e3,
            static_cast<double>(all.max()) / 1e3, static_cast<unsigned long long>(round_trips),
            conns, shared.connected.load(), errors, elapsed);
        std::fflush(stdout);
        return errors == 0 && round_trips > 0 ? 0 : 1;
      },
      opts);
}
