// green::CondVar: notify_one / notify_all, predicates, timeouts, lock held on return,
// producer/consumer across workers, and plain threads on either side.
#include <gtest/gtest.h>

#include <atomic>
#include <deque>
#include <mutex>
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

GREEN_TEST_WORKERS_SUITE(CondVarTest);

TEST_P(CondVarTest, NotifyOneWakesExactlyOneNotifyAllWakesRest) {
  run([] {
    green::Mutex m;
    green::CondVar cv;
    std::atomic<int> waiting{0}, woken{0}, lock_held_on_return{0};
    std::vector<green::Fiber<void>> fs;
    for (int i = 0; i < 5; ++i) {
      fs.push_back(green::spawn([&] {
        std::unique_lock<green::Mutex> lk(m);
        waiting++;
        cv.wait(lk);
        if (m.try_lock()) {
          m.unlock();
        } else {
          lock_held_on_return++;  // the owner's try_lock fails: the lock is held
        }
        woken++;
      }));
    }
    ASSERT_TRUE(wait_until([&] { return waiting.load() == 5; }));
    {
      std::lock_guard<green::Mutex> g(m);  // all 5 are parked once they released m
    }
    nap(10ms);
    cv.notify_one();
    ASSERT_TRUE(wait_until([&] { return woken.load() >= 1; })) << "notify_one woke nobody";
    nap(50ms);
    EXPECT_EQ(woken.load(), 1) << "notify_one woke more than one waiter";
    cv.notify_all();
    ASSERT_TRUE(wait_until([&] { return woken.load() == 5; })) << "notify_all missed waiters";
    for (auto& f : fs) f.join();
    EXPECT_EQ(lock_held_on_return.load(), 5);
  });
}

TEST_P(CondVarTest, NotifyWithoutWaitersIsNotRemembered) {
  run([] {
    green::Mutex m;
    green::CondVar cv;
    cv.notify_one();
    cv.notify_all();
    std::unique_lock<green::Mutex> lk(m);
    auto t0 = Clock::now();
    EXPECT_EQ(cv.wait_for(lk, 40ms), std::cv_status::timeout);
    EXPECT_GE(Clock::now() - t0, 40ms);
    EXPECT_TRUE(lk.owns_lock());
    EXPECT_FALSE(m.try_lock()) << "lock not re-acquired after a timed-out wait";
  });
}

TEST_P(CondVarTest, WaitForPredicate) {
  run([] {
    green::Mutex m;
    green::CondVar cv;
    bool ready = false;
    auto t0 = Clock::now();
    {
      std::unique_lock<green::Mutex> lk(m);
      EXPECT_FALSE(cv.wait_for(lk, 30ms, [&] { return ready; }));
      EXPECT_GE(Clock::now() - t0, 30ms);
    }
    auto setter = green::spawn([&] {
      green::this_fiber::sleep_for(20ms);
      std::lock_guard<green::Mutex> g(m);
      ready = true;
      cv.notify_all();
    });
    {
      std::unique_lock<green::Mutex> lk(m);
      EXPECT_TRUE(cv.wait_for(lk, 10s, [&] { return ready; }));
      EXPECT_TRUE(ready);
    }
    setter.join();
    std::unique_lock<green::Mutex> lk(m);
    cv.wait(lk, [&] { return ready; });  // already true: returns at once
    EXPECT_EQ(cv.wait_until(lk, Clock::now() - 1s), std::cv_status::timeout);
  });
}

TEST_P(CondVarTest, ProducerConsumerQueue) {
  run([] {
    green::Mutex m;
    green::CondVar not_empty, not_full;
    std::deque<int> q;
    constexpr std::size_t kCap = 8;
    constexpr int kProducers = 4, kPerProducer = 2000, kConsumers = 4;
    bool done = false;
    std::atomic<long> sum{0}, count{0};
    std::vector<green::Fiber<void>> producers, consumers;
    for (int c = 0; c < kConsumers; ++c) {
      consumers.push_back(green::spawn([&] {
        for (;;) {
          std::unique_lock<green::Mutex> lk(m);
          not_empty.wait(lk, [&] { return !q.empty() || done; });
          if (q.empty()) return;
          int v = q.front();
          q.pop_front();
          not_full.notify_one();
          lk.unlock();
          sum += v;
          count++;
        }
      }));
    }
    for (int p = 0; p < kProducers; ++p) {
      producers.push_back(green::spawn([&, p] {
        for (int i = 0; i < kPerProducer; ++i) {
          std::unique_lock<green::Mutex> lk(m);
          not_full.wait(lk, [&] { return q.size() < kCap; });
          q.push_back(p * kPerProducer + i);
          not_empty.notify_one();
        }
      }));
    }
    for (auto& p : producers) p.join();
    {
      std::lock_guard<green::Mutex> g(m);
      done = true;
    }
    not_empty.notify_all();
    for (auto& c : consumers) ASSERT_TRUE(green_test::join_within(c, 30000ms));
    constexpr long kN = long{kProducers} * kPerProducer;
    EXPECT_EQ(count.load(), kN);
    EXPECT_EQ(sum.load(), kN * (kN - 1) / 2);
  });
}

TEST_P(CondVarTest, PlainThreadWaitsFiberNotifies) {
  run([] {
    green::Mutex m;
    green::CondVar cv;
    bool flag = false;
    std::atomic<bool> woke{false};
    std::thread t([&] {
      std::unique_lock<green::Mutex> lk(m);
      cv.wait(lk, [&] { return flag; });
      woke = true;
    });
    nap(30ms);
    EXPECT_FALSE(woke.load());
    {
      std::lock_guard<green::Mutex> g(m);
      flag = true;
    }
    cv.notify_all();
    EXPECT_TRUE(wait_until([&] { return woke.load(); })) << "plain thread not woken";
    t.join();
  });
}

TEST_P(CondVarTest, FiberWaitsPlainThreadNotifies) {
  run([] {
    green::Mutex m;
    green::CondVar cv;
    bool flag = false;
    std::thread t([&] {
      std::this_thread::sleep_for(30ms);
      {
        std::lock_guard<green::Mutex> g(m);
        flag = true;
      }
      cv.notify_one();
    });
    {
      std::unique_lock<green::Mutex> lk(m);
      EXPECT_TRUE(cv.wait_for(lk, 10s, [&] { return flag; }));
    }
    t.join();
  });
}

TEST(CondVarNoRuntime, PlainThreadsOnly) {
  green::Mutex m;
  green::CondVar cv;
  int stage = 0;
  std::thread t([&] {
    std::unique_lock<green::Mutex> lk(m);
    cv.wait(lk, [&] { return stage == 1; });
    stage = 2;
    cv.notify_all();
  });
  {
    std::lock_guard<green::Mutex> g(m);
    stage = 1;
  }
  cv.notify_all();
  std::unique_lock<green::Mutex> lk(m);
  EXPECT_TRUE(cv.wait_for(lk, 10s, [&] { return stage == 2; }));
  lk.unlock();
  t.join();
}

}  // namespace
