// Cancellation (Fiber::cancel -> green::Cancelled) and scoped deadlines (green::Deadline ->
// green::TimedOut) waking fibers blocked in every kind of blocking call, plus the races between
// a cancel and a concurrent notify (nothing may be lost).
#include <gtest/gtest.h>
#include <unistd.h>

#include <atomic>
#include <exception>
#include <functional>
#include <mutex>
#include <optional>
#include <thread>
#include <type_traits>
#include <vector>

#include "green/green.hpp"
#include "support/green_test.hpp"

namespace {

using namespace std::chrono_literals;
using green_test::Clock;
using green_test::ms_since;
using green_test::nap;
using green_test::wait_until;

GREEN_TEST_WORKERS_SUITE(CancelTest);

static_assert(!std::is_base_of_v<std::exception, green::Cancelled>,
              "Cancelled must not be a std::exception");
static_assert(std::is_base_of_v<std::exception, green::TimedOut>);

enum class Outcome { kReturned, kCancelled, kTimedOut, kStdException, kOther };

const char* to_string(Outcome o) {
  switch (o) {
    case Outcome::kReturned:
      return "returned normally";
    case Outcome::kCancelled:
      return "green::Cancelled";
    case Outcome::kTimedOut:
      return "green::TimedOut";
    case Outcome::kStdException:
      return "another std::exception";
    case Outcome::kOther:
      return "unknown exception";
  }
  return "?";
}

// Runs `block` on a new fiber and classifies how it ended. `ready` is set just before
// `block` is called; `elapsed_ms` receives how long `block` ran.
template <class F>
green::Fiber<Outcome> spawn_blocker(std::atomic<bool>& ready, F block,
                                    double* elapsed_ms = nullptr) {
  return green::spawn([&ready, block = std::move(block), elapsed_ms]() mutable {
    auto t0 = Clock::now();
    Outcome o = Outcome::kReturned;
    try {
      ready = true;
      block();
    } catch (const green::Cancelled&) {
      o = Outcome::kCancelled;
    } catch (const green::TimedOut&) {
      o = Outcome::kTimedOut;
    } catch (const std::exception& e) {
      ADD_FAILURE() << "unexpected exception: " << e.what();
      o = Outcome::kStdException;
    } catch (...) {
      o = Outcome::kOther;
    }
    if (elapsed_ms) *elapsed_ms = ms_since(t0);
    return o;
  });
}

// Starts `block` on a fiber, lets it park, cancels it and expects green::Cancelled promptly.
template <class F>
void expect_cancel_wakes(F block) {
  std::atomic<bool> ready{false};
  auto f = spawn_blocker(ready, std::move(block));
  ASSERT_TRUE(wait_until([&] { return ready.load(); })) << "blocker never started";
  nap(30ms);
  EXPECT_FALSE(f.done()) << "the blocking call did not block";
  auto t0 = Clock::now();
  f.cancel();
  ASSERT_TRUE(f.wait_for(10s)) << "cancel did not wake the fiber";
  EXPECT_LT(ms_since(t0), 3000.0);
  Outcome o = f.join();
  EXPECT_EQ(o, Outcome::kCancelled) << "got " << to_string(o);
}

// Runs `block` under green::Deadline(50ms) and expects green::TimedOut no earlier than that.
template <class F>
void expect_deadline_wakes(F block) {
  std::atomic<bool> ready{false};
  double elapsed = -1;
  auto f = spawn_blocker(
      ready,
      [block = std::move(block)]() mutable {
        green::Deadline d(50ms);
        block();
      },
      &elapsed);
  ASSERT_TRUE(f.wait_for(10s)) << "deadline did not wake the fiber";
  Outcome o = f.join();
  EXPECT_EQ(o, Outcome::kTimedOut) << "got " << to_string(o);
  EXPECT_GE(elapsed, 49.5) << "deadline fired early";
  EXPECT_LT(elapsed, 3000.0);
}

// ---------------------------------------------------------------------------------------------
// Each kind of blocking call, woken by cancel and by a deadline.

TEST_P(CancelTest, Sleep) {
  run([] {
    expect_cancel_wakes([] { green::this_fiber::sleep_for(1h); });
    expect_deadline_wakes([] { green::this_fiber::sleep_for(1h); });
    expect_cancel_wakes([] { green::this_fiber::sleep_until(Clock::now() + 1h); });
  });
}

TEST_P(CancelTest, ChannelRecv) {
  run([] {
    green::Channel<int> ch(4);
    expect_cancel_wakes([&] { (void)ch.recv(); });
    expect_deadline_wakes([&] { (void)ch.recv(); });
    int out = 0;
    expect_deadline_wakes([&] { (void)ch.recv_for(out, 1h); });
    green::Channel<int> rv(0);
    expect_cancel_wakes([&] { (void)rv.recv(); });
    // The channel still works and no phantom values appeared.
    EXPECT_EQ(ch.try_recv(out), green::ChannelStatus::kEmpty);
    ch.send(5);
    EXPECT_EQ(ch.recv(), 5);
  });
}

TEST_P(CancelTest, ChannelSendBoundedFull) {
  run([] {
    green::Channel<int> ch(1);
    ch.send(1);
    expect_cancel_wakes([&] { ch.send(2); });
    expect_deadline_wakes([&] { ch.send(3); });
    int v = 4;
    expect_deadline_wakes([&] { (void)ch.send_for(v, 1h); });
    // The cancelled sends' values were dropped; the buffered one is intact.
    EXPECT_EQ(ch.size(), 1u);
    EXPECT_EQ(ch.recv(), 1);
    int out = 0;
    EXPECT_EQ(ch.try_recv(out), green::ChannelStatus::kEmpty);
  });
}

TEST_P(CancelTest, ChannelSendUnbuffered) {
  run([] {
    green::Channel<int> ch(0);
    expect_cancel_wakes([&] { ch.send(7); });
    expect_deadline_wakes([&] { ch.send(8); });
    int out = 0;
    EXPECT_EQ(ch.try_recv(out), green::ChannelStatus::kEmpty) << "a cancelled send delivered";
  });
}

TEST_P(CancelTest, Mutex) {
  run([] {
    green::Mutex m;
    m.lock();
    expect_cancel_wakes([&] { m.lock(); });
    expect_deadline_wakes([&] { m.lock(); });
    expect_deadline_wakes([&] { (void)m.try_lock_for(1h); });
    m.unlock();
    // The interrupted waiters did not take the lock.
    EXPECT_TRUE(m.try_lock()) << "an interrupted waiter was handed the lock";
    m.unlock();
  });
}

TEST_P(CancelTest, CondVarRelocksBeforeThrowing) {
  run([] {
    green::Mutex m;
    green::CondVar cv;
    for (int use_deadline = 0; use_deadline < 2; ++use_deadline) {
      std::atomic<int> relocked{-1};
      auto block = [&] {
        std::unique_lock<green::Mutex> lk(m);
        try {
          cv.wait(lk);
        } catch (...) {
          // The lock must be held again: a non-recursive try_lock by the owner fails.
          bool got = m.try_lock();
          relocked = got ? 0 : 1;
          if (got) m.unlock();
          throw;
        }
      };
      if (use_deadline) {
        expect_deadline_wakes(block);
      } else {
        expect_cancel_wakes(block);
      }
      EXPECT_EQ(relocked.load(), 1) << "CondVar::wait threw without re-acquiring the lock";
      EXPECT_TRUE(m.try_lock()) << "the lock was not released by unique_lock afterwards";
      m.unlock();
    }
  });
}

TEST_P(CancelTest, Join) {
  run([] {
    auto victim = green::spawn([] {
      green::this_fiber::sleep_for(1h);
      return 0;
    });
    expect_cancel_wakes([&] { (void)victim.join(); });
    // The interrupted join left the handle usable and the joined fiber running.
    ASSERT_TRUE(victim.joinable());
    EXPECT_FALSE(victim.done());
    expect_deadline_wakes([&] { (void)victim.join(); });
    ASSERT_TRUE(victim.joinable());
    victim.cancel();
    EXPECT_THROW(victim.join(), green::Cancelled);
  });
}

TEST_P(CancelTest, OtherPrimitives) {
  run([] {
    green::Event ev;
    expect_cancel_wakes([&] { ev.wait(); });
    expect_deadline_wakes([&] { ev.wait(); });
    green::Semaphore sem(0);
    expect_cancel_wakes([&] { sem.acquire(); });
    expect_deadline_wakes([&] { sem.acquire(); });
    EXPECT_EQ(sem.available(), 0u);
    green::WaitGroup wg(1);
    expect_cancel_wakes([&] { wg.wait(); });
    expect_deadline_wakes([&] { wg.wait(); });
    EXPECT_EQ(wg.count(), 1);
  });
}

TEST_P(CancelTest, IoWait) {
  run([] {
    green_test::SocketPair sp;
    expect_cancel_wakes([&] { (void)green::io::wait_readable(sp.a); });
    expect_deadline_wakes([&] { (void)green::io::wait_readable(sp.a); });
    expect_deadline_wakes([&] { (void)green::io::wait_readable(sp.a, 1h); });
    // The fd still works afterwards.
    ASSERT_EQ(::write(sp.b, "x", 1), 1);
    EXPECT_TRUE(green::io::wait_readable(sp.a, 5s));
    char c = 0;
    EXPECT_EQ(::read(sp.a, &c, 1), 1);
    EXPECT_EQ(c, 'x');
  });
}

TEST_P(CancelTest, OffloadWaitsForRunningWorkThenThrows) {
  run([] {
    for (int use_deadline = 0; use_deadline < 2; ++use_deadline) {
      std::atomic<bool> job_started{false}, job_done{false}, done_when_thrown{false};
      std::atomic<bool> ready{false};
      auto job = [&] {
        job_started = true;
        std::this_thread::sleep_for(300ms);
        job_done = true;
        return 1;
      };
      double elapsed = 0;
      auto f = spawn_blocker(
          ready,
          [&] {
            std::optional<green::Deadline> d;
            if (use_deadline) d.emplace(50ms);
            try {
              (void)green::offload([&] { return job(); });
            } catch (...) {
              done_when_thrown = job_done.load();
              throw;
            }
          },
          &elapsed);
      ASSERT_TRUE(wait_until([&] { return job_started.load(); })) << "offload never ran";
      if (!use_deadline) f.cancel();
      ASSERT_TRUE(f.wait_for(10s));
      Outcome o = f.join();
      EXPECT_EQ(o, use_deadline ? Outcome::kTimedOut : Outcome::kCancelled) << to_string(o);
      EXPECT_TRUE(done_when_thrown.load())
          << "offload threw before the running work finished (its stack frame was still in use)";
    }
  });
}

TEST_P(CancelTest, OffloadNotYetStartedIsWithdrawn) {
  if (const char* s = ::getenv("UV_THREADPOOL_SIZE"); s && std::atoi(s) > 16) {
    GTEST_SKIP() << "thread pool too large to saturate";
  }
  run([] {
    // Saturate libuv's pool (default 4 threads, raised to the worker count) with blockers.
    std::atomic<bool> release{false};
    std::atomic<int> blockers_running{0};
    std::vector<green::Fiber<void>> blockers;
    for (int i = 0; i < 16; ++i) {
      blockers.push_back(green::spawn([&] {
        green::offload([&] {
          blockers_running++;
          auto end = Clock::now() + 20s;
          while (!release && Clock::now() < end) std::this_thread::sleep_for(1ms);
        });
      }));
    }
    ASSERT_TRUE(wait_until([&] { return blockers_running.load() >= 4; }));
    nap(20ms);
    std::atomic<bool> ran{false}, ready{false};
    auto f = spawn_blocker(ready, [&] { green::offload([&] { ran = true; }); });
    ASSERT_TRUE(wait_until([&] { return ready.load(); }));
    nap(20ms);
    bool pool_full = blockers_running.load() < 16;  // some blockers are still queued
    auto t0 = Clock::now();
    f.cancel();
    bool woke = f.wait_for(3s);
    double ms = ms_since(t0);
    release = true;
    for (auto& b : blockers) b.join();
    ASSERT_TRUE(woke || f.wait_for(10s));
    EXPECT_EQ(f.join(), Outcome::kCancelled);
    if (pool_full) {
      EXPECT_TRUE(woke) << "cancel of queued offload work did not return at once";
      EXPECT_LT(ms, 2000.0);
      nap(50ms);
      EXPECT_FALSE(ran.load()) << "withdrawn offload work ran anyway";
    }
  });
}

// ---------------------------------------------------------------------------------------------
// Cancellation semantics.

TEST_P(CancelTest, CancelBeforeStart) {
  std::size_t n = workers();
  run([n] {
    std::atomic<bool> started{false}, saw_requested{false}, reached_end{false};
    auto f = green::spawn([&] {
      started = true;
      saw_requested = green::this_fiber::cancel_requested();
      green::this_fiber::sleep_for(1h);
      reached_end = true;
      return 1;
    });
    bool started_before_cancel = started.load();
    f.cancel();
    ASSERT_TRUE(f.wait_for(10s));
    EXPECT_THROW(f.join(), green::Cancelled);
    EXPECT_FALSE(reached_end.load());
    if (n == 1) {
      EXPECT_FALSE(started_before_cancel);  // spawn does not switch
    }
    // "Its current or next blocking call throws": the body still runs (so its cleanup runs).
    EXPECT_TRUE(started.load()) << "a fiber cancelled before it started never ran";
    if (!started_before_cancel) {
      EXPECT_TRUE(saw_requested.load());
    }
  });
}

TEST_P(CancelTest, CancelledBeforeStartWithoutBlockingRunsToCompletion) {
  run([] {
    std::atomic<bool> cleanup{false};
    auto f = green::spawn([&] {
      struct Cleanup {
        std::atomic<bool>& flag;
        ~Cleanup() { flag = true; }
      } c{cleanup};
      return 5;  // never blocks: the cancel is never delivered
    });
    f.cancel();
    ASSERT_TRUE(f.wait_for(10s));
    int v = -1;
    EXPECT_NO_THROW(v = f.join());
    EXPECT_EQ(v, 5);
    EXPECT_TRUE(cleanup.load());
  });
}

TEST_P(CancelTest, CancelledIsNotCaughtByStdExceptionHandler) {
  run([] {
    std::atomic<bool> ready{false};
    std::atomic<int> caught_as{0};  // 1: std::exception, 2: Cancelled
    auto f = green::spawn([&] {
      try {
        ready = true;
        green::this_fiber::sleep_for(1h);
      } catch (const std::exception&) {
        caught_as = 1;
      } catch (const green::Cancelled& c) {
        EXPECT_STREQ(c.what(), "green: fiber cancelled");
        caught_as = 2;
      }
    });
    ASSERT_TRUE(wait_until([&] { return ready.load(); }));
    nap(10ms);
    f.cancel();
    ASSERT_TRUE(f.wait_for(10s));
    f.join();
    EXPECT_EQ(caught_as.load(), 2);
  });
}

TEST_P(CancelTest, CancelIsDeliveredOnceAndStaysRequested) {
  run([] {
    std::atomic<bool> ready{false};
    auto f = green::spawn([&]() -> int {
      EXPECT_FALSE(green::this_fiber::cancel_requested());
      ready = true;
      try {
        green::this_fiber::sleep_for(1h);
        return 1;
      } catch (const green::Cancelled&) {
      }
      EXPECT_TRUE(green::this_fiber::cancel_requested());
      auto t0 = Clock::now();
      green::this_fiber::sleep_for(20ms);  // must not throw again
      if (Clock::now() - t0 < 20ms) return 2;
      EXPECT_TRUE(green::this_fiber::cancel_requested());
      return 0;
    });
    ASSERT_TRUE(wait_until([&] { return ready.load(); }));
    nap(10ms);
    f.cancel();
    f.cancel();  // twice: still one Cancelled
    ASSERT_TRUE(f.wait_for(10s));
    int r = -1;
    try {
      r = f.join();
    } catch (const green::Cancelled&) {
      ADD_FAILURE() << "Cancelled was delivered a second time";
    }
    EXPECT_EQ(r, 0);
  });
}

TEST_P(CancelTest, CancelRunningFiberHitsNextBlockingCall) {
  run([] {
    std::atomic<bool> spinning{false}, cancel_sent{false}, timed_out_spin{false};
    auto f = green::spawn([&]() -> int {
      spinning = true;
      auto end = Clock::now() + 10s;
      while (!cancel_sent.load()) {  // busy: not in any blocking call
        if (Clock::now() > end) {
          timed_out_spin = true;
          break;
        }
      }
      green::this_fiber::sleep_for(1h);
      return 1;
    });
    // Cancel from a plain thread while the fiber is running.
    std::thread canceller([&] {
      auto end = Clock::now() + 10s;
      while (!spinning.load() && Clock::now() < end) std::this_thread::sleep_for(1ms);
      std::this_thread::sleep_for(5ms);
      f.cancel();
      cancel_sent = true;
    });
    ASSERT_TRUE(f.wait_for(20s)) << "fiber never woke";
    canceller.join();
    EXPECT_FALSE(timed_out_spin.load());
    EXPECT_THROW(f.join(), green::Cancelled);
  });
}

TEST_P(CancelTest, CancelFinishedFiberIsHarmless) {
  run([] {
    auto f = green::spawn([] { return 5; });
    ASSERT_TRUE(f.wait_for(10s));
    f.cancel();
    EXPECT_EQ(f.join(), 5);
  });
}

TEST_P(CancelTest, CancelFromAnotherFiberOnAnotherWorker) {
  run([] {
    std::atomic<bool> ready{false};
    auto victim = spawn_blocker(ready, [] { green::this_fiber::sleep_for(1h); });
    ASSERT_TRUE(wait_until([&] { return ready.load(); }));
    auto killer = green::spawn([&] { victim.cancel(); });
    killer.join();
    ASSERT_TRUE(victim.wait_for(10s));
    EXPECT_EQ(victim.join(), Outcome::kCancelled);
  });
}

// ---------------------------------------------------------------------------------------------
// Deadlines.

TEST_P(CancelTest, DeadlineBasic) {
  run([] {
    {
      green::Deadline d(10s);
      green::this_fiber::sleep_for(1ms);  // finishes in time: no throw
      EXPECT_FALSE(d.expired());
    }
    auto t0 = Clock::now();
    green::Deadline d(50ms);
    EXPECT_THROW(green::this_fiber::sleep_for(10s), green::TimedOut);
    EXPECT_GE(Clock::now() - t0, 50ms);
    EXPECT_LT(ms_since(t0), 3000.0);
    EXPECT_TRUE(d.expired());
    // Every later blocking call in the expired scope throws too.
    EXPECT_THROW(green::this_fiber::sleep_for(10s), green::TimedOut);
  });
}

TEST_P(CancelTest, DeadlineAtTimePoint) {
  run([] {
    auto at = Clock::now() + 40ms;
    green::Deadline d(at);
    EXPECT_THROW(green::this_fiber::sleep_for(10s), green::TimedOut);
    EXPECT_GE(Clock::now(), at);
  });
}

TEST_P(CancelTest, DeadlineAlreadyExpired) {
  run([] {
    green::Deadline d(0ms);
    EXPECT_TRUE(d.expired());
    auto t0 = Clock::now();
    EXPECT_THROW(green::this_fiber::sleep_for(10s), green::TimedOut);
    EXPECT_LT(ms_since(t0), 1000.0);
    // Non-blocking calls are unaffected.
    green::Mutex m;
    EXPECT_TRUE(m.try_lock());
    m.unlock();
    green::Channel<int> ch(1);
    EXPECT_EQ(ch.try_send(1), green::ChannelStatus::kOk);
  });
}

TEST_P(CancelTest, NestedDeadlineInnerEarlierWins) {
  run([] {
    green::Deadline outer(10s);
    auto t0 = Clock::now();
    {
      green::Deadline inner(50ms);
      EXPECT_THROW(green::this_fiber::sleep_for(10s), green::TimedOut);
      EXPECT_TRUE(inner.expired());
    }
    EXPECT_LT(ms_since(t0), 3000.0);
    EXPECT_FALSE(outer.expired());
    // Back in the outer scope: blocking calls work again.
    EXPECT_NO_THROW(green::this_fiber::sleep_for(5ms));
  });
}

TEST_P(CancelTest, NestedDeadlineOuterEarlierWins) {
  run([] {
    auto t0 = Clock::now();
    green::Deadline outer(50ms);
    bool threw = false;
    try {
      green::Deadline inner(10s);
      green::this_fiber::sleep_for(10s);
    } catch (const green::TimedOut&) {
      threw = true;
    }
    EXPECT_TRUE(threw);
    EXPECT_GE(Clock::now() - t0, 50ms);
    EXPECT_LT(ms_since(t0), 3000.0) << "the later inner deadline overrode the outer one";
    EXPECT_TRUE(outer.expired());
  });
}

TEST_P(CancelTest, OuterDeadlineRestoredAfterInnerScope) {
  run([] {
    auto t0 = Clock::now();
    green::Deadline outer(100ms);
    {
      green::Deadline inner(10s);
      green::this_fiber::sleep_for(1ms);
    }
    {
      green::Deadline inner2(20ms);
      EXPECT_THROW(green::this_fiber::sleep_for(10s), green::TimedOut);
    }
    EXPECT_THROW(green::this_fiber::sleep_for(10s), green::TimedOut);
    EXPECT_GE(Clock::now() - t0, 100ms);
    EXPECT_LT(ms_since(t0), 3000.0);
  });
}

TEST_P(CancelTest, ExplicitTimeoutShorterThanDeadlineReturnsStatus) {
  run([] {
    green::Deadline d(10s);
    green::Channel<int> ch(1);
    int out = 0;
    EXPECT_EQ(ch.recv_for(out, 20ms), green::ChannelStatus::kTimeout);
    green::Event ev;
    EXPECT_FALSE(ev.wait_for(20ms));
    green_test::SocketPair sp;
    EXPECT_FALSE(green::io::wait_readable(sp.a, 20ms));
  });
}

TEST(CancelOffFiber, DeadlineHasNoEffectOffFiber) {
  green::Event ev;
  green::Deadline d(1ms);
  auto t0 = Clock::now();
  bool r = true;
  EXPECT_NO_THROW(r = ev.wait_for(40ms));
  EXPECT_FALSE(r);
  EXPECT_GE(Clock::now() - t0, 40ms);
}

// ---------------------------------------------------------------------------------------------
// Races between cancel and a concurrent wake: the woken value / permit / lock is never lost.

// Joins a fiber whose body returns `cancelled_value` when it catches Cancelled. A fiber
// cancelled before it started never runs its body (gevent's kill of an unstarted greenlet) and
// join() rethrows Cancelled: that counts as `cancelled_value` too.
int join_or_cancelled(green::Fiber<int>& f, int cancelled_value) {
  try {
    return f.join();
  } catch (const green::Cancelled&) {
    return cancelled_value;
  }
}

TEST_P(CancelTest, RaceCancelVsChannelSendLosesNothing) {
  run([] {
    int got_value = 0, got_cancel = 0;
    for (int i = 0; i < 300; ++i) {
      green::Channel<int> ch(1);
      std::atomic<bool> ready{false};
      auto r = green::spawn([&]() -> int {
        ready = true;
        try {
          auto v = ch.recv();
          return v ? *v : -2;
        } catch (const green::Cancelled&) {
          return -1;
        }
      });
      if (i % 3 != 0) {
        ASSERT_TRUE(wait_until([&] { return ready.load(); }));
      }
      if (i % 2) {
        r.cancel();
        ch.send(i);
      } else {
        ch.send(i);
        r.cancel();
      }
      ASSERT_TRUE(r.wait_for(10s));
      int v = join_or_cancelled(r, -1);
      ASSERT_NE(v, -2) << "recv returned nullopt on an open channel";
      if (v == -1) {
        got_cancel++;
        int left = -1;
        ASSERT_EQ(ch.try_recv(left), green::ChannelStatus::kOk) << "value lost at iteration " << i;
        EXPECT_EQ(left, i);
      } else {
        got_value++;
        EXPECT_EQ(v, i);
        int left = -1;
        EXPECT_EQ(ch.try_recv(left), green::ChannelStatus::kEmpty) << "value duplicated";
      }
    }
    std::printf("[ info ] race: %d received, %d cancelled\n", got_value, got_cancel);
  });
}

TEST_P(CancelTest, RaceCancelVsMutexUnlockLeavesMutexUsable) {
  run([] {
    green::Mutex m;
    for (int i = 0; i < 300; ++i) {
      m.lock();
      std::atomic<bool> ready{false};
      auto w = green::spawn([&]() -> int {
        ready = true;
        try {
          m.lock();
        } catch (const green::Cancelled&) {
          return 0;
        }
        m.unlock();
        return 1;
      });
      if (i % 3 != 0) {
        ASSERT_TRUE(wait_until([&] { return ready.load(); }));
      }
      if (i % 2) {
        w.cancel();
        m.unlock();
      } else {
        m.unlock();
        w.cancel();
      }
      ASSERT_TRUE(w.wait_for(10s));
      join_or_cancelled(w, 0);
      ASSERT_TRUE(m.try_lock_for(5s)) << "mutex left locked after cancel race, iteration " << i;
      m.unlock();
    }
  });
}

TEST_P(CancelTest, RaceCancelVsSemaphoreReleaseLosesNoPermit) {
  run([] {
    for (int i = 0; i < 300; ++i) {
      green::Semaphore sem(0);
      std::atomic<bool> ready{false};
      auto w = green::spawn([&]() -> int {
        ready = true;
        try {
          sem.acquire();
        } catch (const green::Cancelled&) {
          return 0;
        }
        return 1;
      });
      if (i % 3 != 0) {
        ASSERT_TRUE(wait_until([&] { return ready.load(); }));
      }
      if (i % 2) {
        w.cancel();
        sem.release();
      } else {
        sem.release();
        w.cancel();
      }
      ASSERT_TRUE(w.wait_for(10s));
      int acquired = join_or_cancelled(w, 0);
      EXPECT_EQ(sem.available(), acquired ? 0u : 1u)
          << "permit lost or duplicated, iteration " << i;
    }
  });
}

}  // namespace
