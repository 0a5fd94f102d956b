// green::WaitGroup: add/done/wait across fibers, workers and plain threads; timeouts; reuse;
// a negative count is a fatal usage error.
#include <gtest/gtest.h>

#include <atomic>
#include <thread>
#include <vector>

#include "green/green.hpp"
#include "support/green_test.hpp"

namespace {

using namespace std::chrono_literals;
using green_test::Clock;
using green_test::nap;
using green_test::wait_until;

GREEN_TEST_WORKERS_SUITE(WaitGroupTest);

TEST(WaitGroupNoRuntime, CountAndImmediateWait) {
  green::WaitGroup wg;
  EXPECT_EQ(wg.count(), 0);
  wg.wait();  // zero: returns at once
  EXPECT_TRUE(wg.wait_for(0ms));
  wg.add(3);
  EXPECT_EQ(wg.count(), 3);
  wg.done();
  EXPECT_EQ(wg.count(), 2);
  EXPECT_FALSE(wg.wait_for(10ms));
  wg.add(-2);
  EXPECT_EQ(wg.count(), 0);
  EXPECT_TRUE(wg.wait_for(0ms));
  green::WaitGroup init(2);
  EXPECT_EQ(init.count(), 2);
}

TEST_P(WaitGroupTest, WaitsForAllFibers) {
  run([] {
    green::WaitGroup wg;
    std::atomic<int> finished{0};
    for (int i = 0; i < 300; ++i) {
      wg.add();
      green::spawn([&, i] {
        green::this_fiber::sleep_for(std::chrono::milliseconds(i % 10));
        finished++;
        wg.done();
      }).detach();
    }
    ASSERT_TRUE(wg.wait_for(30s));
    EXPECT_EQ(finished.load(), 300);
    EXPECT_EQ(wg.count(), 0);
  });
}

TEST_P(WaitGroupTest, WaitForTimesOut) {
  run([] {
    green::WaitGroup wg(1);
    auto t0 = Clock::now();
    EXPECT_FALSE(wg.wait_for(40ms));
    EXPECT_GE(Clock::now() - t0, 40ms);
    auto at = Clock::now() + 20ms;
    EXPECT_FALSE(wg.wait_until(at));
    EXPECT_GE(Clock::now(), at);
    wg.done();
    EXPECT_TRUE(wg.wait_for(0ms));
  });
}

TEST_P(WaitGroupTest, MultipleWaitersAllWake) {
  run([] {
    green::WaitGroup wg(1);
    std::atomic<int> woke{0};
    std::vector<green::Fiber<void>> fs;
    for (int i = 0; i < 20; ++i) {
      fs.push_back(green::spawn([&] {
        wg.wait();
        woke++;
      }));
    }
    nap(30ms);
    EXPECT_EQ(woke.load(), 0);
    wg.done();
    for (auto& f : fs) ASSERT_TRUE(green_test::join_within(f));
    EXPECT_EQ(woke.load(), 20);
  });
}

TEST_P(WaitGroupTest, ReusableAfterReachingZero) {
  run([] {
    green::WaitGroup wg;
    for (int round = 0; round < 20; ++round) {
      wg.add(5);
      for (int i = 0; i < 5; ++i) green::spawn([&] { wg.done(); }).detach();
      ASSERT_TRUE(wg.wait_for(10s)) << "round " << round;
      EXPECT_EQ(wg.count(), 0);
    }
  });
}

TEST_P(WaitGroupTest, DoneFromPlainThreadsWaitOnPlainThread) {
  run([] {
    green::WaitGroup wg(4);
    std::atomic<bool> thread_saw_zero{false};
    std::thread waiter([&] {
      if (wg.wait_for(10s)) thread_saw_zero = true;
    });
    std::vector<std::thread> ts;
    for (int i = 0; i < 4; ++i) {
      ts.emplace_back([&] {
        std::this_thread::sleep_for(10ms);
        wg.done();
      });
    }
    EXPECT_TRUE(wg.wait_for(10s));
    EXPECT_TRUE(wait_until([&] { return thread_saw_zero.load(); }));
    for (auto& t : ts) t.join();
    waiter.join();
  });
}

TEST(WaitGroupDeathTest, NegativeCountIsFatal) {
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  EXPECT_DEATH(
      {
        green::WaitGroup wg;
        wg.done();
      },
      "");
  EXPECT_DEATH(
      {
        green_test::run_green(1, [] {
          green::WaitGroup wg(1);
          wg.add(-2);
        });
      },
      "");
}

}  // namespace
