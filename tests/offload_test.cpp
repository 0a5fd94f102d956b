// green::offload: results and exceptions cross back, the work runs off the worker, other fibers
// keep running meanwhile, the fiber resumes on its own worker, and off-fiber it runs inline.
#include <gtest/gtest.h>
#include <pthread.h>

#include <atomic>
#include <memory>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "green/green.hpp"
#include "support/green_test.hpp"

namespace {

using namespace std::chrono_literals;
using green_test::Clock;
using green_test::ms_since;

GREEN_TEST_WORKERS_SUITE(OffloadTest);

struct Custom {
  int v;
};

TEST_P(OffloadTest, ReturnsResults) {
  run([] {
    EXPECT_EQ(green::offload([] { return 6 * 7; }), 42);
    EXPECT_EQ(green::offload([] { return std::string(1000, 'a'); }), std::string(1000, 'a'));
    auto p = green::offload([] { return std::make_unique<int>(3); });
    ASSERT_NE(p, nullptr);
    EXPECT_EQ(*p, 3);
    std::atomic<bool> ran{false};
    green::offload([&] { ran = true; });
    EXPECT_TRUE(ran.load());
  });
}

TEST_P(OffloadTest, ExceptionsPropagate) {
  run([] {
    try {
      (void)green::offload([]() -> int { throw std::runtime_error("pool boom"); });
      ADD_FAILURE() << "no exception";
    } catch (const std::runtime_error& e) {
      EXPECT_STREQ(e.what(), "pool boom");
    }
    try {
      green::offload([] { throw Custom{5}; });
      ADD_FAILURE() << "no exception";
    } catch (const Custom& c) {
      EXPECT_EQ(c.v, 5);
    }
    // The fiber is fine afterwards.
    EXPECT_EQ(green::offload([] { return 1; }), 1);
  });
}

TEST_P(OffloadTest, RunsOffTheWorkerAndResumesOnIt) {
  run([] {
    pthread_t before = pthread_self();
    int worker = green::current_worker();
    struct Seen {
      pthread_t thread;
      int worker;
      bool on_fiber;
    };
    auto seen = green::offload([] {
      return Seen{pthread_self(), green::current_worker(), green::this_fiber::on_fiber()};
    });
    EXPECT_FALSE(pthread_equal(seen.thread, before)) << "offload ran on the worker thread";
    EXPECT_EQ(seen.worker, -1);
    EXPECT_FALSE(seen.on_fiber);
    EXPECT_TRUE(pthread_equal(pthread_self(), before)) << "fiber resumed on another thread";
    EXPECT_EQ(green::current_worker(), worker);
  });
}

TEST_P(OffloadTest, OtherFibersKeepRunning) {
  run([] {
    std::atomic<int> ticks{0};
    std::atomic<bool> stop{false};
    auto ticker = green::spawn([&] {
      while (!stop) {
        ticks++;
        green::this_fiber::sleep_for(5ms);
      }
    });
    green::this_fiber::sleep_for(10ms);
    int before = ticks.load();
    auto t0 = Clock::now();
    green::offload([] { std::this_thread::sleep_for(400ms); });
    double ms = ms_since(t0);
    int advanced = ticks.load() - before;
    stop = true;
    ticker.join();
    std::printf("[ info ] ticker advanced %d ticks during a %.0f ms offload\n", advanced, ms);
    EXPECT_GE(ms, 399.0);
    EXPECT_GE(advanced, 20) << "the worker was blocked during offload";
  });
}

TEST_P(OffloadTest, CpuHeavyOffloadDoesNotBlockWorker) {
  run([] {
    std::atomic<int> ticks{0};
    std::atomic<bool> stop{false};
    auto ticker = green::spawn([&] {
      while (!stop) {
        ticks++;
        green::this_fiber::sleep_for(2ms);
      }
    });
    green::this_fiber::sleep_for(5ms);
    int before = ticks.load();
    auto sum = green::offload([] {
      volatile unsigned long s = 0;
      auto end = Clock::now() + 300ms;
      while (Clock::now() < end) s = s + 1;
      return static_cast<unsigned long>(s);
    });
    int advanced = ticks.load() - before;
    stop = true;
    ticker.join();
    EXPECT_GT(sum, 0u);
    EXPECT_GE(advanced, 10);
  });
}

TEST_P(OffloadTest, ManyConcurrentOffloads) {
  run([] {
    std::vector<green::Fiber<int>> fs;
    for (int i = 0; i < 64; ++i) {
      fs.push_back(green::spawn([i] {
        return green::offload([i] {
          std::this_thread::sleep_for(2ms);
          return i * i;
        });
      }));
    }
    long sum = 0, want = 0;
    for (int i = 0; i < 64; ++i) {
      sum += fs[static_cast<std::size_t>(i)].join();
      want += long{i} * i;
    }
    EXPECT_EQ(sum, want);
  });
}

TEST(OffloadNoRuntime, RunsInlineOffFiber) {
  pthread_t self = pthread_self();
  bool inline_ran = false;
  int v = green::offload([&] {
    inline_ran = pthread_equal(pthread_self(), self);
    return 9;
  });
  EXPECT_EQ(v, 9);
  EXPECT_TRUE(inline_ran);
  EXPECT_THROW(green::offload([] { throw std::logic_error("x"); }), std::logic_error);
}

TEST_P(OffloadTest, FromPlainThreadWhileRuntimeRuns) {
  run([] {
    std::atomic<bool> ok{false};
    std::thread t([&] {
      pthread_t self = pthread_self();
      ok = green::offload([&] { return pthread_equal(pthread_self(), self) != 0; });
    });
    t.join();
    EXPECT_TRUE(ok.load()) << "off a fiber, offload should run inline";
  });
}

}  // namespace
