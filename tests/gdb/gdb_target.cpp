// Target program for tests/gdb/gdb_test.sh: parks named fibers (a sleep, a mutex, a channel
// receive) across two workers, then calls green_gdb_stop_here() from the main fiber, where
// gdb stops and runs tools/green-gdb.py. Afterwards everything is unblocked and joined; the
// exit status is 0 only if the run completed (so a gdb session that corrupted registers while
// showing a backtrace is caught by the test).
#include <chrono>
#include <mutex>
#include <string>

#include "green/debug.hpp"
#include "green/green.hpp"

using namespace std::chrono_literals;

extern "C" __attribute__((noinline)) void green_gdb_stop_here() { asm volatile("" ::: "memory"); }

__attribute__((noinline)) void gdb_sleeper_body() {
  green::this_fiber::sleep_for(1h);
  asm volatile("" ::: "memory");  // keeps the frame (no tail call)
}

int main() {
  green::Options o;
  o.workers = 2;
  o.deadlock = green::DeadlockPolicy::kOff;
  o.blocked_ms = 0;  // gdb stops the process for a while
  return green::run(
      [] {
        green::Mutex mu;
        green::Channel<int> ch(0);
        mu.lock();
        auto s = green::spawn(green::SpawnOptions{.name = "gdb-sleeper"}, [] { gdb_sleeper_body(); });
        auto m = green::spawn(green::SpawnOptions{.name = "gdb-locker"},
                              [&] { std::lock_guard<green::Mutex> lk(mu); });
        auto r = green::spawn(green::SpawnOptions{.name = "gdb-receiver"}, [&] { (void)ch.recv(); });
        auto end = std::chrono::steady_clock::now() + 30s;
        for (;;) {
          std::string d = green::fiber_dump();
          if (d.find("\"gdb-sleeper\": parked") != std::string::npos &&
              d.find("\"gdb-locker\": parked") != std::string::npos &&
              d.find("\"gdb-receiver\": parked") != std::string::npos)
            break;
          if (std::chrono::steady_clock::now() > end) return 3;
          green::this_fiber::sleep_for(5ms);
        }
        green_gdb_stop_here();
        s.cancel();
        mu.unlock();
        ch.close();
        try {
          s.join();
        } catch (const green::Cancelled&) {
        }
        m.join();
        r.join();
        return 0;
      },
      o);
}
