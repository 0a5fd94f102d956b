// Shared helpers for green's GoogleTest suites.
//
//  - green_test::run_green(workers, fn): runs `fn` as the main fiber of green::run with
//    Options{.workers = workers}. Any exception escaping `fn` (including green::Cancelled,
//    which is not a std::exception) is reported as a gtest failure. A watchdog thread aborts
//    the process with a message if the runtime does not return in time, so no test can hang.
//  - WorkersTest: a TestWithParam<size_t> fixture over worker counts; use
//    GREEN_TEST_WORKERS_SUITE(Name) to declare `Name` instantiated for 1 and 2 workers, and
//    `run([&] { ... })` inside TEST_P to run on the runtime.
//  - wait_until(pred, timeout): polls (parking the fiber, or sleeping the thread off a fiber)
//    until pred() holds; returns false on timeout. Callers FAIL on false.
//  - run_on_worker(w, fn): runs fn on a fiber that is pinned to worker w (fibers never migrate
//    once started), by spawning probe fibers until one starts there.
//
// gtest assertions are fine inside fibers and on other worker threads (gtest's default
// reporter is process-wide and locked); ASSERT_* returns only from the current function.
#pragma once

#include <gtest/gtest.h>
#include <pthread.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <functional>
#include <mutex>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "green/green.hpp"

namespace green_test {

using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

// Upper bound for one runtime (one test body). Generous: the VM is slow and noisy.
inline constexpr std::chrono::seconds kWatchdog{120};

// Aborts the process if not disarmed within `limit`, naming the running test.
class Watchdog {
 public:
  explicit Watchdog(std::chrono::seconds limit) {
    const auto* info = ::testing::UnitTest::GetInstance()->current_test_info();
    name_ = info ? std::string(info->test_suite_name()) + "." + info->name() : "<no test>";
    thread_ = std::thread([this, limit] {
      std::unique_lock<std::mutex> lk(m_);
      if (!cv_.wait_for(lk, limit, [this] { return done_; })) {
        std::fprintf(stderr,
                     "\n*** green_test watchdog: %s did not finish within %llds; aborting\n",
                     name_.c_str(), static_cast<long long>(limit.count()));
        std::fflush(stderr);
        std::abort();
      }
    });
  }
  ~Watchdog() {
    {
      std::lock_guard<std::mutex> lk(m_);
      done_ = true;
    }
    cv_.notify_all();
    thread_.join();
  }
  Watchdog(const Watchdog&) = delete;
  Watchdog& operator=(const Watchdog&) = delete;

 private:
  std::string name_;
  std::mutex m_;
  std::condition_variable cv_;
  bool done_ = false;
  std::thread thread_;
};

// Runs fn as green's main fiber on `workers` workers; reports escaping exceptions as failures.
template <class F>
void run_green(std::size_t workers, F&& fn, std::chrono::seconds limit = kWatchdog) {
  Watchdog dog(limit);
  green::Options opts;
  opts.workers = workers;
  try {
    green::run(
        [&fn]() -> int {
          fn();
          return 0;
        },
        opts);
  } catch (const green::Cancelled&) {
    ADD_FAILURE() << "green::Cancelled escaped the main fiber";
  } catch (const std::exception& e) {
    ADD_FAILURE() << "exception escaped the main fiber: " << e.what();
  } catch (...) {
    ADD_FAILURE() << "unknown exception escaped the main fiber";
  }
}

class WorkersTest : public ::testing::TestWithParam<std::size_t> {
 protected:
  std::size_t workers() const { return GetParam(); }
  template <class F>
  void run(F&& fn, std::chrono::seconds limit = kWatchdog) {
    run_green(GetParam(), std::forward<F>(fn), limit);
  }
};

inline std::string workers_name(const ::testing::TestParamInfo<std::size_t>& info) {
  return "workers" + std::to_string(info.param);
}

#define GREEN_TEST_WORKERS_SUITE(Name)                                                 \
  class Name : public ::green_test::WorkersTest {};                                    \
  INSTANTIATE_TEST_SUITE_P(W, Name, ::testing::Values(std::size_t{1}, std::size_t{2}), \
                           ::green_test::workers_name)

// Sleeps the fiber (or the thread off a fiber).
inline void nap(std::chrono::milliseconds d) {
  if (green::this_fiber::on_fiber()) {
    green::this_fiber::sleep_for(d);
  } else {
    std::this_thread::sleep_for(d);
  }
}

template <class Pred>
bool wait_until(Pred pred, std::chrono::milliseconds timeout = std::chrono::milliseconds(10000)) {
  auto end = Clock::now() + timeout;
  while (!pred()) {
    if (Clock::now() >= end) return pred();
    nap(std::chrono::milliseconds(1));
  }
  return true;
}

inline double ms_since(Clock::time_point t0) {
  return std::chrono::duration<double, std::milli>(Clock::now() - t0).count();
}

// Joins `f` if it finishes within `timeout`; otherwise records a failure, cancels it and
// returns false (the fiber is then abandoned when main returns).
template <class T>
bool join_within(green::Fiber<T>& f,
                 std::chrono::milliseconds timeout = std::chrono::milliseconds(10000)) {
  if (f.wait_for(timeout)) return true;
  ADD_FAILURE() << "fiber did not finish within " << timeout.count() << " ms";
  f.cancel();
  return false;
}

// Runs fn on a fiber pinned to worker `w`. Returns the fiber running fn (already started), or
// an empty handle (and a gtest failure) if no probe fiber could be placed on worker w.
template <class F>
green::Fiber<void> run_on_worker(int w, F fn) {
  auto winner = std::make_shared<std::atomic<int>>(-1);
  auto shared_fn = std::make_shared<F>(std::move(fn));
  auto deadline = Clock::now() + std::chrono::seconds(10);
  while (Clock::now() < deadline) {
    std::vector<green::Fiber<void>> probes;
    for (int i = 0; i < 32; ++i) {
      probes.push_back(green::spawn([w, i, winner, shared_fn] {
        int none = -1;
        if (green::current_worker() != w || !winner->compare_exchange_strong(none, i)) {
          // Stay busy briefly so the queue drains slowly and idle workers get to steal.
          auto t = Clock::now() + std::chrono::microseconds(300);
          while (Clock::now() < t) {
          }
          return;
        }
        (*shared_fn)();
      }));
    }
    auto all_done = [&] {
      for (auto& p : probes) {
        if (!p.done()) return false;
      }
      return true;
    };
    wait_until([&] { return winner->load() >= 0 || all_done(); });
    if (int i = winner->load(); i >= 0) return std::move(probes[static_cast<std::size_t>(i)]);
  }
  ADD_FAILURE() << "could not place a fiber on worker " << w;
  return {};
}

// A connected AF_UNIX stream socketpair; closed through green::io::close.
struct SocketPair {
  int a = -1;
  int b = -1;
  SocketPair() {
    int sv[2];
    if (::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) != 0) {
      ADD_FAILURE() << "socketpair failed";
      return;
    }
    a = sv[0];
    b = sv[1];
  }
  ~SocketPair() {
    if (a >= 0) green::io::close(a);
    if (b >= 0) green::io::close(b);
  }
  SocketPair(const SocketPair&) = delete;
  SocketPair& operator=(const SocketPair&) = delete;
};

}  // namespace green_test
