// Benchmark workloads shared by green_bench (Google Benchmark) and green_bench_count (a plain
// counted loop run under callgrind for instruction counts per operation).
//
// Every workload is a template over the loop driver S: anything that supports
// `for (auto _ : s)` (benchmark::State or CountLoop below). Green workloads call green::run
// exactly once and run the timed loop inside the main fiber, so runtime start-up and
// shutdown are never inside the timed region (Google Benchmark starts its clock at the first
// iteration and stops it after the last). Each workload returns the number of "operations"
// one loop iteration stands for (e.g. 2 yields per ping-pong iteration), so callers can
// report per-operation figures.
//
// Cross-worker workloads need a fiber that runs on a different worker than the main fiber.
// green has no placement API (new fibers start on the spawning worker unless an idle worker
// steals them), so spawn_elsewhere() spawns and busy-waits (without yielding) until the
// other worker has stolen and started the fiber; a fiber that started on the caller's worker
// exits at once and is retried.
#pragma once

#include <fcntl.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <atomic>
#include <boost/context/detail/fcontext.hpp>
#include <boost/context/fiber.hpp>
#include <boost/context/pooled_fixedsize_stack.hpp>
#include <boost/fiber/all.hpp>
#include <cerrno>
#include <chrono>
#include <cstdint>
#include <cstdlib>
#include <memory>
#include <stdexcept>
#include <thread>
#include <utility>
#include <vector>

#include "green/green.hpp"

namespace bench {

// A loop driver with a fixed iteration count (for callgrind runs).
class CountLoop {
 public:
  explicit CountLoop(long n) : n_(n) {}
  struct It {
    long i;
    bool operator!=(const It& o) const { return i != o.i; }
    void operator++() { ++i; }
    int operator*() const { return 0; }
  };
  It begin() const { return {0}; }
  It end() const { return {n_}; }
  long iterations() const { return n_; }

 private:
  long n_;
};

template <class T>
inline void keep(T&& v) {
  asm volatile("" : : "g"(v) : "memory");
}

inline green::Options workers(std::size_t n) {
  green::Options o;
  o.workers = n;
  return o;
}

inline long thread_cpu_ns() {
  timespec ts{};
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
  return ts.tv_sec * 1000000000L + ts.tv_nsec;
}

// Spawns `f` on a worker other than the caller's (see the note at the top).
template <class F>
green::Fiber<void> spawn_elsewhere(F f) {
  const int me = green::current_worker();
  for (int attempt = 0; attempt < 1000; ++attempt) {
    auto where = std::make_shared<std::atomic<int>>(-2);
    auto fib = green::spawn([where, f, me]() mutable {
      int w = green::current_worker();
      where->store(w, std::memory_order_release);
      if (w != me) f();
    });
    auto until = std::chrono::steady_clock::now() + std::chrono::milliseconds(20);
    while (where->load(std::memory_order_acquire) == -2 &&
           std::chrono::steady_clock::now() < until) {
      for (int i = 0; i < 32; ++i) __builtin_ia32_pause();
    }
    if (where->load(std::memory_order_acquire) >= 0 && where->load(std::memory_order_acquire) != me)
      return fib;
    fib.join();  // not stolen in time: it runs (and returns at once) here; try again
  }
  throw std::runtime_error("spawn_elsewhere: no other worker picked the fiber up");
}

// --- references: raw Boost.Context -----------------------------------------------------------

namespace fc = boost::context::detail;

// jump_fcontext into a context and back: the physical limit of a switch (2 jumps).
template <class S>
int ref_fcontext_roundtrip(S& s) {
  constexpr std::size_t kStack = 64 * 1024;
  void* mem = std::malloc(kStack);
  fc::fcontext_t ctx =
      fc::make_fcontext(static_cast<char*>(mem) + kStack, kStack, [](fc::transfer_t t) {
        for (;;) t = fc::jump_fcontext(t.fctx, nullptr);
      });
  for ([[maybe_unused]] auto _ : s) ctx = fc::jump_fcontext(ctx, nullptr).fctx;
  std::free(mem);  // the context is never resumed again
  return 1;
}

// boost::context::fiber resume there and back.
template <class S>
int ref_ctx_fiber_roundtrip(S& s) {
  namespace ctx = boost::context;
  ctx::fiber f{[](ctx::fiber&& c) {
    for (;;) c = std::move(c).resume();
    return std::move(c);
  }};
  for ([[maybe_unused]] auto _ : s) f = std::move(f).resume();
  return 1;  // ~fiber unwinds the suspended fiber
}

// Create, run to completion and destroy a boost::context::fiber on a pooled stack.
template <class S>
int ref_ctx_fiber_spawn_pooled(S& s) {
  namespace ctx = boost::context;
  ctx::pooled_fixedsize_stack pool(64 * 1024);
  for ([[maybe_unused]] auto _ : s) {
    ctx::fiber f{std::allocator_arg, pool, [](ctx::fiber&& c) { return std::move(c); }};
    f = std::move(f).resume();
    keep(bool(f));
  }
  return 1;
}

// --- references: Boost.Fiber (default round-robin scheduler, this thread) --------------------

template <class S>
int ref_bfiber_yield(S& s) {
  bool stop = false;
  boost::fibers::fiber other([&] {
    while (!stop) boost::this_fiber::yield();
  });
  boost::this_fiber::yield();
  for ([[maybe_unused]] auto _ : s) boost::this_fiber::yield();
  stop = true;
  other.join();
  return 2;  // main yields to `other`, which yields back
}

template <class S>
int ref_bfiber_spawn_join(S& s) {
  for ([[maybe_unused]] auto _ : s) boost::fibers::fiber([] {}).join();
  return 1;
}

template <class S>
int ref_bfiber_channel_rt(S& s) {
  boost::fibers::unbuffered_channel<int> a, b;
  boost::fibers::fiber echo([&] {
    int v;
    while (a.pop(v) == boost::fibers::channel_op_status::success) b.push(v);
  });
  for ([[maybe_unused]] auto _ : s) {
    a.push(1);
    int v = 0;
    b.pop(v);
    keep(v);
  }
  a.close();
  echo.join();
  return 1;
}

template <class S>
int ref_thread_create_join(S& s) {
  for ([[maybe_unused]] auto _ : s) std::thread([] {}).join();
  return 1;
}

// --- green -------------------------------------------------------------------------------------

// Two fibers on one worker yield to each other.
template <class S>
int green_yield(S& s) {
  return green::run(
      [&] {
        std::atomic<bool> stop{false};
        auto other = green::spawn([&] {
          while (!stop.load(std::memory_order_relaxed)) green::this_fiber::yield();
        });
        green::this_fiber::yield();  // let it start
        for ([[maybe_unused]] auto _ : s) green::this_fiber::yield();
        stop = true;
        other.join();
        return 2;
      },
      workers(1));
}

template <class S>
int green_spawn_join(S& s) {
  return green::run(
      [&] {
        for ([[maybe_unused]] auto _ : s) green::spawn([] {}).join();
        return 1;
      },
      workers(1));
}

// Unbuffered channel ping-pong: main sends on `a`, the echo fiber answers on `b`.
template <class S>
int green_channel_rt(S& s, std::size_t nworkers) {
  return green::run(
      [&] {
        green::Channel<int> a(0), b(0);
        auto body = [&] {
          while (auto v = a.recv()) b.send(*v);
        };
        auto echo = nworkers > 1 ? spawn_elsewhere(body) : green::spawn(body);
        for ([[maybe_unused]] auto _ : s) {
          a.send(1);
          keep(b.recv());
        }
        a.close();
        echo.join();
        return 1;
      },
      workers(nworkers));
}

// Cross-worker wake-up round trip with two manual-reset Events (set/wait/clear ping-pong).
template <class S>
int green_event_pingpong_2w(S& s) {
  return green::run(
      [&] {
        green::Event ping, pong;
        std::atomic<bool> stop{false};
        auto other = spawn_elsewhere([&] {
          for (;;) {
            ping.wait();
            ping.clear();
            bool done = stop.load(std::memory_order_acquire);
            pong.set();
            if (done) return;
          }
        });
        for ([[maybe_unused]] auto _ : s) {
          ping.set();
          pong.wait();
          pong.clear();
        }
        stop.store(true, std::memory_order_release);
        ping.set();
        other.join();
        return 1;
      },
      workers(2));
}

// Mutex under contention: each iteration, `nfibers` fibers (half on each of 2 workers) take
// one green::Mutex kPerFiber times each; the time per acquisition is the throughput of a
// busy lock. Fixed work per iteration: with a barging mutex (green's, Go's, glibc's) one
// fiber's share of acquisitions says little, the total does. Reports them through *total.
inline constexpr int kMutexPerFiber = 1000;
template <class S>
int green_mutex_contended(S& s, int nfibers, long* total) {
  return green::run(
      [&] {
        green::Mutex mu;
        long counter = 0;  // guarded by mu
        green::WaitGroup round_done;
        std::vector<std::unique_ptr<green::Channel<int>>> go;
        std::vector<green::Fiber<void>> fibers;
        for (int i = 0; i < nfibers; ++i) {
          go.push_back(std::make_unique<green::Channel<int>>(1));
          auto body = [&, ch = go.back().get()] {
            for (int round : *ch) {
              (void)round;
              for (int k = 0; k < kMutexPerFiber; ++k) {
                mu.lock();
                ++counter;
                mu.unlock();
              }
              round_done.done();
            }
          };
          fibers.push_back(i % 2 ? spawn_elsewhere(body) : green::spawn(body));
        }
        for ([[maybe_unused]] auto _ : s) {
          round_done.add(nfibers);
          for (auto& ch : go) ch->send(1);
          round_done.wait();
        }
        for (auto& ch : go) ch->close();
        for (auto& f : fibers) f.join();
        *total = counter;
        return 1;
      },
      workers(2));
}

template <class S>
int green_sleep0(S& s) {
  return green::run(
      [&] {
        for ([[maybe_unused]] auto _ : s) green::this_fiber::sleep_for(std::chrono::nanoseconds(0));
        return 1;
      },
      workers(1));
}

// `nsleepers` fibers loop on sleep_for(1ms) while main does too; one worker. Reports the
// number of completed sleeps and the worker thread's CPU time over the timed loop.
template <class S>
int green_sleep1ms(S& s, int nsleepers, long* sleeps, long* cpu_ns) {
  return green::run(
      [&] {
        std::atomic<bool> stop{false};
        long count = 0;  // one worker: no data race
        std::vector<green::Fiber<void>> fibers;
        for (int i = 0; i < nsleepers; ++i) {
          fibers.push_back(green::spawn([&] {
            while (!stop.load(std::memory_order_relaxed)) {
              green::this_fiber::sleep_for(std::chrono::milliseconds(1));
              ++count;
            }
          }));
        }
        green::this_fiber::sleep_for(std::chrono::milliseconds(2));
        long c0 = count, t0 = thread_cpu_ns();
        for ([[maybe_unused]] auto _ : s) {
          green::this_fiber::sleep_for(std::chrono::milliseconds(1));
          ++count;
        }
        *cpu_ns = thread_cpu_ns() - t0;
        *sleeps = count - c0;
        stop = true;
        for (auto& f : fibers) f.join();
        return 1;
      },
      workers(1));
}

// `n` fibers each sleep_for(`ms`) at once on `nworkers` workers (sleep_test's
// HundredThousandSleepers at full scale); one iteration is one round, from the first spawn to
// the last wake. *early counts sleepers that woke before their time (must stay 0).
template <class S>
int green_sleepers(S& s, int n, int ms, std::size_t nworkers, long* early) {
  return green::run(
      [&] {
        std::atomic<long> e{0};
        const auto d = std::chrono::milliseconds(ms);
        for ([[maybe_unused]] auto _ : s) {
          green::WaitGroup wg(n);
          for (int i = 0; i < n; ++i) {
            green::spawn([&] {
              auto start = std::chrono::steady_clock::now();
              green::this_fiber::sleep_for(d);
              if (std::chrono::steady_clock::now() - start < d)
                e.fetch_add(1, std::memory_order_relaxed);
              wg.done();
            }).detach();
          }
          wg.wait();
        }
        *early = e.load(std::memory_order_relaxed);
        return 1;
      },
      workers(nworkers));
}

// 1-byte ping-pong over a socketpair on one worker: write, then read (waiting with
// green::io::wait_readable on EAGAIN); the echo fiber does the mirror image.
template <class S>
int green_io_pingpong(S& s) {
  return green::run(
      [&] {
        int sv[2];
        if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, sv) != 0)
          throw std::runtime_error("socketpair failed");
        auto read1 = [](int fd) {
          char c;
          for (;;) {
            ssize_t n = ::read(fd, &c, 1);
            if (n == 1) return true;
            if (n == 0) return false;
            if (errno != EAGAIN && errno != EINTR) return false;
            green::io::wait_readable(fd);
          }
        };
        auto echo = green::spawn([&] {
          char c = 'x';
          while (read1(sv[1])) {
            if (::write(sv[1], &c, 1) != 1) return;
          }
        });
        char c = 'x';
        for ([[maybe_unused]] auto _ : s) {
          if (::write(sv[0], &c, 1) != 1) throw std::runtime_error("write failed");
          read1(sv[0]);
        }
        ::shutdown(sv[0], SHUT_WR);
        echo.join();
        green::io::close(sv[0]);
        green::io::close(sv[1]);
        return 1;
      },
      workers(1));
}

}  // namespace bench
