// green::Mutex: mutual exclusion across workers and plain threads, try_lock forms, std lock
// adaptors, FIFO wake order, barging and starvation hand-off, and destroying the mutex right
// after the last unlock.
#include <gtest/gtest.h>

#include <atomic>
#include <memory>
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

GREEN_TEST_WORKERS_SUITE(MutexTest);

TEST_P(MutexTest, CounterIsExactUnderContention) {
  long counter = 0;  // deliberately not atomic: the mutex is the only protection
  std::atomic<int> inside{0}, overlap{0};
  constexpr int kFibers = 100, kIters = 1000;
  run([&] {
    green::Mutex m;
    std::vector<green::Fiber<void>> fs;
    for (int f = 0; f < kFibers; ++f) {
      fs.push_back(green::spawn([&, f] {
        for (int i = 0; i < kIters; ++i) {
          m.lock();
          if (inside.fetch_add(1) != 0) overlap++;
          counter = counter + 1;
          if ((i + f) % 97 == 0) green::this_fiber::yield();  // switch while holding it
          inside.fetch_sub(1);
          m.unlock();
        }
      }));
    }
    for (auto& f : fs) f.join();
  });
  EXPECT_EQ(counter, long{kFibers} * kIters);
  EXPECT_EQ(overlap.load(), 0) << "two holders inside the critical section";
}

TEST_P(MutexTest, TryLock) {
  run([] {
    green::Mutex m;
    EXPECT_TRUE(m.try_lock());
    EXPECT_FALSE(m.try_lock());
    auto other = green::spawn([&] { return m.try_lock(); });
    EXPECT_FALSE(other.join());
    m.unlock();
    auto again = green::spawn([&] {
      bool ok = m.try_lock();
      if (ok) m.unlock();
      return ok;
    });
    EXPECT_TRUE(again.join());
  });
}

TEST_P(MutexTest, TryLockForTimesOut) {
  run([] {
    green::Mutex m;
    m.lock();
    auto waiter = green::spawn([&] {
      auto t0 = Clock::now();
      bool got = m.try_lock_for(50ms);
      auto took = Clock::now() - t0;
      EXPECT_GE(took, 50ms);
      EXPECT_LT(took, 3s);
      if (got) m.unlock();
      return got;
    });
    EXPECT_FALSE(waiter.join());
    auto waiter2 = green::spawn([&] {
      auto at = Clock::now() + 30ms;
      bool got = m.try_lock_until(at);
      EXPECT_GE(Clock::now(), at);
      if (got) m.unlock();
      return got;
    });
    EXPECT_FALSE(waiter2.join());
    m.unlock();
  });
}

TEST_P(MutexTest, TryLockForSucceedsWhenReleased) {
  run([] {
    green::Mutex m;
    m.lock();
    auto waiter = green::spawn([&] {
      auto t0 = Clock::now();
      bool got = m.try_lock_for(10s);
      double ms = ms_since(t0);
      if (got) m.unlock();
      EXPECT_LT(ms, 5000.0);
      return got;
    });
    nap(30ms);
    m.unlock();
    EXPECT_TRUE(waiter.join());
  });
}

TEST_P(MutexTest, StdLockAdaptors) {
  run([] {
    green::Mutex a, b;
    int shared = 0;
    std::vector<green::Fiber<void>> fs;
    for (int i = 0; i < 20; ++i) {
      fs.push_back(green::spawn([&, i] {
        for (int k = 0; k < 100; ++k) {
          switch ((i + k) % 4) {
            case 0: {
              std::lock_guard<green::Mutex> g(a);
              std::lock_guard<green::Mutex> g2(b);
              ++shared;
              break;
            }
            case 1: {
              std::scoped_lock lk(b, a);  // opposite order: std::lock avoids deadlock
              ++shared;
              green::this_fiber::yield();
              break;
            }
            case 2: {
              std::unique_lock<green::Mutex> lk(a, std::defer_lock);
              std::unique_lock<green::Mutex> lk2(b, std::defer_lock);
              std::lock(lk, lk2);
              ++shared;
              break;
            }
            default: {
              std::unique_lock<green::Mutex> lk(a, 10s);  // timed constructor
              std::unique_lock<green::Mutex> lk2(b, std::chrono::steady_clock::now() + 10s);
              ASSERT_TRUE(lk.owns_lock() && lk2.owns_lock());
              ++shared;
              break;
            }
          }
        }
      }));
    }
    for (auto& f : fs) f.join();
    EXPECT_EQ(shared, 2000);
    std::unique_lock<green::Mutex> lk(a, std::try_to_lock);
    EXPECT_TRUE(lk.owns_lock());
  });
}

TEST_P(MutexTest, PlainThreadsMixedWithFibers) {
  long counter = 0;
  constexpr int kThreads = 2, kThreadIters = 20000, kFibers = 20, kFiberIters = 1000;
  run([&] {
    green::Mutex m;
    std::atomic<int> threads_done{0};
    std::vector<std::thread> ts;
    for (int t = 0; t < kThreads; ++t) {
      ts.emplace_back([&] {
        for (int i = 0; i < kThreadIters; ++i) {
          std::lock_guard<green::Mutex> g(m);
          counter = counter + 1;
        }
        threads_done++;
      });
    }
    std::vector<green::Fiber<void>> fs;
    for (int f = 0; f < kFibers; ++f) {
      fs.push_back(green::spawn([&] {
        for (int i = 0; i < kFiberIters; ++i) {
          std::lock_guard<green::Mutex> g(m);
          counter = counter + 1;
          if (i % 50 == 0) green::this_fiber::yield();
        }
      }));
    }
    for (auto& f : fs) f.join();
    EXPECT_TRUE(wait_until([&] { return threads_done.load() == kThreads; }, 60000ms))
        << "plain threads stuck on green::Mutex";
    for (auto& t : ts) t.join();
  });
  EXPECT_EQ(counter, long{kThreads} * kThreadIters + long{kFibers} * kFiberIters);
}

TEST_P(MutexTest, PlainThreadBlocksUntilFiberUnlocks) {
  run([] {
    green::Mutex m;
    m.lock();
    std::atomic<bool> got{false};
    std::thread t([&] {
      m.lock();
      got = true;
      m.unlock();
    });
    nap(50ms);
    EXPECT_FALSE(got.load()) << "plain thread took a held mutex";
    m.unlock();
    EXPECT_TRUE(wait_until([&] { return got.load(); })) << "plain thread never woke";
    t.join();
  });
}

TEST_P(MutexTest, FiberBlocksUntilPlainThreadUnlocks) {
  run([] {
    green::Mutex m;
    std::atomic<bool> locked{false}, release{false};
    std::thread t([&] {
      m.lock();
      locked = true;
      auto end = Clock::now() + 10s;
      while (!release && Clock::now() < end) std::this_thread::sleep_for(1ms);
      m.unlock();
    });
    ASSERT_TRUE(wait_until([&] { return locked.load(); }));
    std::atomic<bool> got{false};
    auto f = green::spawn([&] {
      m.lock();
      got = true;
      m.unlock();
    });
    nap(30ms);
    EXPECT_FALSE(got.load());
    release = true;
    EXPECT_TRUE(f.wait_for(10s));
    f.join();
    EXPECT_TRUE(got.load());
    t.join();
  });
}

TEST(MutexNoRuntime, PlainThreadsOnly) {
  green::Mutex m;
  long counter = 0;
  std::vector<std::thread> ts;
  for (int t = 0; t < 4; ++t) {
    ts.emplace_back([&] {
      for (int i = 0; i < 20000; ++i) {
        m.lock();
        counter = counter + 1;
        m.unlock();
      }
    });
  }
  for (auto& t : ts) t.join();
  EXPECT_EQ(counter, 80000);
  EXPECT_TRUE(m.try_lock_for(1ms));
  m.unlock();
}

TEST_P(MutexTest, FifoHandOff) {
  // Waiters share the main fiber's worker, so each one has parked before main resumes.
  run([] {
    green::Mutex m;
    std::vector<int> order;
    m.lock();
    std::vector<green::Fiber<void>> fs;
    for (int i = 0; i < 8; ++i) {
      std::atomic<bool> about{false};
      fs.push_back(green_test::run_on_worker(green::current_worker(), [&, i] {
        about = true;
        m.lock();
        order.push_back(i);  // under the lock
        m.unlock();
      }));
      ASSERT_TRUE(wait_until([&] { return about.load(); }));
      nap(20ms);  // let it park before the next one queues
    }
    m.unlock();
    for (auto& f : fs) f.join();
    EXPECT_EQ(order, (std::vector<int>{0, 1, 2, 3, 4, 5, 6, 7}));
  });
}

TEST_P(MutexTest, UnlockHandsOffToAWaiterOnTheSameWorker) {
  // A waiter of the unlocker's own worker gets the lock handed over: an immediate try_lock by
  // the unlocker fails (FIFO among a worker's fibers; a lock/unlock loop cannot starve them).
  run([] {
    green::Mutex m;
    m.lock();
    std::atomic<bool> about{false};
    auto w = green_test::run_on_worker(green::current_worker(), [&] {
      about = true;
      m.lock();
      m.unlock();
    });
    ASSERT_TRUE(wait_until([&] { return about.load(); }));
    nap(20ms);
    m.unlock();
    bool barged = m.try_lock();
    if (barged) m.unlock();
    EXPECT_FALSE(barged) << "unlock with a parked waiter on this worker did not hand over";
    w.join();
  });
}

// Starts a plain OS thread that blocks in m.lock() (a remote waiter: it needs a futex wake-up)
// and returns once it is surely parked.
std::thread remote_locker(green::Mutex& m, std::atomic<int>& got) {
  std::atomic<bool> about{false};
  std::thread t([&m, &got, &about] {
    about = true;
    m.lock();
    got = 1;
    m.unlock();
  });
  while (!about.load()) green::this_fiber::sleep_for(1ms);
  green::this_fiber::sleep_for(20ms);  // parked, and waiting for well over 1 ms
  return t;
}

TEST_P(MutexTest, RunningFiberMayBargeAheadOfARemoteWaiter) {
  // Normal mode: unlock() wakes a waiter elsewhere but does not hand it the lock, so the
  // still-running unlocker can take it again at once (the woken thread needs microseconds to
  // come back). The waiter gets it afterwards.
  run([] {
    int barged = 0;
    for (int round = 0; round < 20 && barged == 0; ++round) {
      green::Mutex m;
      std::atomic<int> got{0};
      m.lock();
      std::thread t = remote_locker(m, got);
      m.unlock();
      if (m.try_lock()) {
        ++barged;
        m.unlock();
      }
      t.join();
      EXPECT_EQ(got.load(), 1);
    }
    EXPECT_GT(barged, 0) << "unlock always handed the lock to a remote waiter";
  });
}

TEST_P(MutexTest, StarvingWaiterGetsTheLockHandedOver) {
  // A remote waiter that waited more than 1 ms and still lost the race switches the mutex to
  // hand-off mode: the next unlock passes ownership to it and the unlocker cannot barge.
  run([] {
    for (int round = 0; round < 20; ++round) {
      green::Mutex m;
      std::atomic<int> got{0};
      m.lock();
      std::thread t = remote_locker(m, got);
      m.unlock();         // wakes it (normal mode)...
      if (!m.try_lock()) {  // ...it won the race this time: try again
        t.join();
        continue;
      }
      green::this_fiber::sleep_for(20ms);  // it comes back, loses, starves, parks again
      EXPECT_EQ(got.load(), 0);
      m.unlock();  // hands over
      bool barged = m.try_lock();
      if (barged) m.unlock();
      EXPECT_FALSE(barged) << "a starving waiter did not get the lock handed over";
      t.join();
      EXPECT_EQ(got.load(), 1);
      // Back to normal mode once the queue drained.
      EXPECT_TRUE(m.try_lock());
      m.unlock();
      return;
    }
    ADD_FAILURE() << "never managed to barge ahead of the remote waiter";
  });
}

TEST_P(MutexTest, DestroyRightAfterWokenOwnerUnlocks) {
  run([] {
    for (int i = 0; i < 500; ++i) {
      auto m = std::make_unique<green::Mutex>();
      m->lock();
      std::atomic<bool> about{false};
      green::Mutex* raw = m.get();
      auto w = green::spawn([&about, raw, mp = &m] {
        about = true;
        raw->lock();
        raw->unlock();
        mp->reset();  // the woken owner destroys the mutex right after its unlock
      });
      if (i % 2) {
        ASSERT_TRUE(wait_until([&] { return about.load(); }));
      }
      raw->unlock();
      ASSERT_TRUE(w.wait_for(10s));
      w.join();
      EXPECT_EQ(m, nullptr);
    }
  });
}

TEST_P(MutexTest, LockUninterruptibleIgnoresCancel) {
  run([] {
    green::Mutex m;
    m.lock();
    std::atomic<bool> about{false};
    auto w = green::spawn([&]() -> int {
      about = true;
      try {
        m.lock_uninterruptible();
      } catch (...) {
        return -1;
      }
      m.unlock();
      return 1;
    });
    ASSERT_TRUE(wait_until([&] { return about.load(); }));
    nap(20ms);
    w.cancel();
    nap(20ms);
    EXPECT_FALSE(w.done()) << "lock_uninterruptible returned while the lock was held";
    m.unlock();
    ASSERT_TRUE(w.wait_for(10s));
    EXPECT_EQ(w.join(), 1);
  });
}

}  // namespace
