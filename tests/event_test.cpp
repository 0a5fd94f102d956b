// green::Event: manual-reset event; set wakes every waiter (on any worker, and plain threads),
// clear re-arms, timeouts.
#include <gtest/gtest.h>

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

GREEN_TEST_WORKERS_SUITE(EventTest);

TEST(EventNoRuntime, StateAndImmediateWait) {
  green::Event e;
  EXPECT_FALSE(e.is_set());
  EXPECT_FALSE(e.wait_for(10ms));
  e.set();
  EXPECT_TRUE(e.is_set());
  e.wait();  // returns at once
  EXPECT_TRUE(e.wait_for(0ms));
  e.set();  // idempotent
  EXPECT_TRUE(e.is_set());
  e.clear();
  EXPECT_FALSE(e.is_set());
  EXPECT_FALSE(e.wait_until(Clock::now() + 10ms));
}

TEST_P(EventTest, WaitForTimesOut) {
  run([] {
    green::Event e;
    auto t0 = Clock::now();
    EXPECT_FALSE(e.wait_for(40ms));
    EXPECT_GE(Clock::now() - t0, 40ms);
    auto at = Clock::now() + 20ms;
    EXPECT_FALSE(e.wait_until(at));
    EXPECT_GE(Clock::now(), at);
  });
}

TEST_P(EventTest, SetWakesAllWaiters) {
  run([] {
    green::Event e;
    std::atomic<int> woke{0};
    std::vector<green::Fiber<void>> fs;
    for (int i = 0; i < 200; ++i) {
      fs.push_back(green::spawn([&] {
        e.wait();
        woke++;
      }));
    }
    nap(30ms);
    EXPECT_EQ(woke.load(), 0);
    e.set();
    for (auto& f : fs) ASSERT_TRUE(green_test::join_within(f));
    EXPECT_EQ(woke.load(), 200);
    // Set stays set.
    EXPECT_TRUE(e.wait_for(0ms));
  });
}

TEST_P(EventTest, ClearRearms) {
  run([] {
    green::Event e;
    e.set();
    e.clear();
    auto f = green::spawn([&] { return e.wait_for(10s); });
    nap(30ms);
    EXPECT_FALSE(f.done()) << "wait returned after clear()";
    e.set();
    EXPECT_TRUE(f.join());
  });
}

TEST_P(EventTest, WaitOnAnotherWorker) {
  run([] {
    green::Event e;
    std::atomic<bool> woke{false};
    int target = static_cast<int>(green::worker_count()) - 1;
    auto f = green_test::run_on_worker(target, [&] {
      EXPECT_TRUE(e.wait_for(10s));
      woke = true;
    });
    ASSERT_TRUE(f.joinable());
    nap(20ms);
    e.set();
    ASSERT_TRUE(green_test::join_within(f));
    EXPECT_TRUE(woke.load());
  });
}

TEST_P(EventTest, PlainThreadWaitsAndSets) {
  run([] {
    green::Event to_thread, to_fiber;
    std::atomic<bool> thread_woke{false};
    std::thread t([&] {
      if (to_thread.wait_for(10s)) thread_woke = true;
      std::this_thread::sleep_for(10ms);
      to_fiber.set();
    });
    nap(20ms);
    EXPECT_FALSE(thread_woke.load());
    to_thread.set();
    EXPECT_TRUE(to_fiber.wait_for(10s));
    EXPECT_TRUE(thread_woke.load());
    t.join();
  });
}

TEST_P(EventTest, SetClearStress) {
  // Waiters that saw the event set must all be released; nobody hangs.
  run([] {
    for (int round = 0; round < 50; ++round) {
      green::Event e;
      std::vector<green::Fiber<bool>> fs;
      for (int i = 0; i < 10; ++i) fs.push_back(green::spawn([&] { return e.wait_for(10s); }));
      green::this_fiber::yield();
      e.set();
      for (auto& f : fs) {
        ASSERT_TRUE(f.wait_for(10s));
        EXPECT_TRUE(f.join());
      }
    }
  });
}

}  // namespace
