// green::Semaphore: counting, try forms, timeouts, FIFO hand-off on release, bounded
// concurrency across workers, and plain threads.
#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <thread>
#include <vector>

#include "green/green.hpp"
#include "support/green_test.hpp"

namespace {

using namespace std::chrono_literals;
using green_test::Clock;
using green_test::ms_since;
using green_test::nap;
using green_test::wait_until;

GREEN_TEST_WORKERS_SUITE(SemaphoreTest);

TEST(SemaphoreNoRuntime, CountingAndTryAcquire) {
  green::Semaphore s(2);
  EXPECT_EQ(s.available(), 2u);
  EXPECT_TRUE(s.try_acquire());
  EXPECT_TRUE(s.try_acquire());
  EXPECT_FALSE(s.try_acquire());
  EXPECT_EQ(s.available(), 0u);
  s.release(3);
  EXPECT_EQ(s.available(), 3u);
  s.acquire();
  EXPECT_EQ(s.available(), 2u);
  green::Semaphore zero;
  EXPECT_EQ(zero.available(), 0u);
  EXPECT_FALSE(zero.try_acquire());
}

TEST_P(SemaphoreTest, TryAcquireForTimesOut) {
  run([] {
    green::Semaphore s(0);
    auto t0 = Clock::now();
    EXPECT_FALSE(s.try_acquire_for(40ms));
    EXPECT_GE(Clock::now() - t0, 40ms);
    auto at = Clock::now() + 20ms;
    EXPECT_FALSE(s.acquire_until(at));
    EXPECT_GE(Clock::now(), at);
    EXPECT_EQ(s.available(), 0u);
  });
}

TEST_P(SemaphoreTest, AcquireWakesOnRelease) {
  run([] {
    green::Semaphore s(0);
    auto f = green::spawn([&] {
      auto t0 = Clock::now();
      bool ok = s.try_acquire_for(10s);
      EXPECT_LT(ms_since(t0), 5000.0);
      return ok;
    });
    nap(20ms);
    s.release();
    EXPECT_TRUE(f.join());
    EXPECT_EQ(s.available(), 0u);
  });
}

TEST_P(SemaphoreTest, ReleaseNWakesNWaiters) {
  run([] {
    green::Semaphore s(0);
    std::atomic<int> got{0};
    std::vector<green::Fiber<void>> fs;
    for (int i = 0; i < 6; ++i) {
      fs.push_back(green::spawn([&] {
        if (s.try_acquire_for(10s)) got++;
      }));
    }
    nap(30ms);
    s.release(4);
    ASSERT_TRUE(wait_until([&] { return got.load() == 4; }));
    nap(30ms);
    EXPECT_EQ(got.load(), 4) << "more waiters woke than permits released";
    EXPECT_EQ(s.available(), 0u);
    s.release(2);
    for (auto& f : fs) f.join();
    EXPECT_EQ(got.load(), 6);
    EXPECT_EQ(s.available(), 0u);
  });
}

TEST_P(SemaphoreTest, ReleaseHandsPermitToWaiterNotBarger) {
  // Waiters share the main fiber's worker, so each one has parked before main resumes.
  run([] {
    green::Semaphore s(0);
    std::atomic<bool> about{false};
    auto w = green_test::run_on_worker(green::current_worker(), [&] {
      about = true;
      s.acquire();
    });
    ASSERT_TRUE(wait_until([&] { return about.load(); }));
    nap(20ms);
    s.release();
    EXPECT_FALSE(s.try_acquire()) << "release() with a parked waiter left the permit up for grabs";
    EXPECT_TRUE(w.wait_for(10s));
    w.join();
  });
}

TEST_P(SemaphoreTest, FifoOrder) {
  // Waiters share the main fiber's worker, so each one has parked before main resumes.
  run([] {
    green::Semaphore s(0);
    std::vector<int> order;
    green::Mutex om;
    std::vector<green::Fiber<void>> fs;
    for (int i = 0; i < 6; ++i) {
      std::atomic<bool> about{false};
      fs.push_back(green_test::run_on_worker(green::current_worker(), [&, i] {
        about = true;
        s.acquire();
        std::lock_guard<green::Mutex> g(om);
        order.push_back(i);
      }));
      ASSERT_TRUE(wait_until([&] { return about.load(); }));
      nap(20ms);
    }
    for (int i = 0; i < 6; ++i) {
      s.release();
      nap(10ms);  // one at a time so the recorded order is the wake order
    }
    for (auto& f : fs) f.join();
    EXPECT_EQ(order, (std::vector<int>{0, 1, 2, 3, 4, 5}));
  });
}

TEST_P(SemaphoreTest, BoundsConcurrency) {
  run([] {
    green::Semaphore s(3);
    std::atomic<int> now{0}, peak{0}, done{0};
    std::vector<green::Fiber<void>> fs;
    for (int i = 0; i < 60; ++i) {
      fs.push_back(green::spawn([&] {
        s.acquire();
        int n = ++now;
        int p = peak.load();
        while (n > p && !peak.compare_exchange_weak(p, n)) {
        }
        green::this_fiber::sleep_for(2ms);
        --now;
        s.release();
        done++;
      }));
    }
    for (auto& f : fs) f.join();
    EXPECT_EQ(done.load(), 60);
    EXPECT_LE(peak.load(), 3);
    EXPECT_GE(peak.load(), 2) << "the semaphore serialised more than needed";
    EXPECT_EQ(s.available(), 3u);
  });
}

TEST_P(SemaphoreTest, PlainThreadsAndFibers) {
  run([] {
    green::Semaphore to_thread(0), to_fiber(0);
    std::atomic<bool> done{false};
    std::thread t([&] {
      for (int i = 0; i < 200; ++i) {
        to_thread.acquire();  // parks the OS thread
        to_fiber.release();
      }
      done = true;
    });
    for (int i = 0; i < 200; ++i) {
      to_thread.release();
      ASSERT_TRUE(to_fiber.try_acquire_for(10s)) << "round " << i;
    }
    EXPECT_TRUE(wait_until([&] { return done.load(); }));
    t.join();
  });
}

}  // namespace
