// green::Group: join-all, concurrency limit, first failure cancels the rest and is rethrown,
// cancel() (including members that had not started yet), and the destructor's cancel-and-wait.
#include <gtest/gtest.h>

#include <atomic>
#include <stdexcept>
#include <vector>

#include "green/green.hpp"
#include "support/green_test.hpp"

namespace {

using namespace std::chrono_literals;
using green_test::Clock;
using green_test::ms_since;
using green_test::nap;
using green_test::wait_until;

GREEN_TEST_WORKERS_SUITE(GroupTest);

// Runs `body` on its own fiber and fails (instead of hanging) if it does not finish in time.
template <class F>
void bounded(F body, std::chrono::milliseconds limit = 10000ms) {
  auto f = green::spawn(std::move(body));
  if (!f.wait_for(limit)) {
    ADD_FAILURE() << "did not finish within " << limit.count() << " ms";
    f.detach();  // abandoned when main returns
    return;
  }
  f.join();
}

TEST_P(GroupTest, WaitJoinsAllMembers) {
  run([] {
    std::atomic<int> done{0};
    bounded([&] {
      green::Group g;
      for (int i = 0; i < 200; ++i) {
        g.spawn(
            [&](int ms) {
              green::this_fiber::sleep_for(std::chrono::milliseconds(ms));
              done++;
            },
            i % 7);
      }
      g.wait();
      EXPECT_EQ(done.load(), 200);
      EXPECT_EQ(g.running(), 0u);
    });
  });
}

TEST_P(GroupTest, LimitBoundsConcurrency) {
  run([] {
    std::atomic<int> now{0}, peak{0}, done{0};
    bounded([&] {
      green::Group g(3);
      for (int i = 0; i < 30; ++i) {
        g.spawn([&] {
          int n = ++now;
          int p = peak.load();
          while (n > p && !peak.compare_exchange_weak(p, n)) {
          }
          green::this_fiber::sleep_for(3ms);
          --now;
          done++;
        });
        EXPECT_LE(g.running(), 3u);
      }
      g.wait();
    });
    EXPECT_EQ(done.load(), 30);
    EXPECT_LE(peak.load(), 3);
    EXPECT_GE(peak.load(), 2);
  });
}

TEST_P(GroupTest, FirstFailureCancelsOthersAndIsRethrown) {
  run([] {
    std::atomic<int> cancelled{0}, finished_sleep{0};
    bounded([&] {
      green::Group g;
      for (int i = 0; i < 5; ++i) {
        g.spawn([&] {
          try {
            green::this_fiber::sleep_for(1h);
            finished_sleep++;
          } catch (const green::Cancelled&) {
            cancelled++;
            throw;
          }
        });
      }
      g.spawn([] {
        green::this_fiber::sleep_for(10ms);
        throw std::runtime_error("member failed");
      });
      auto t0 = Clock::now();
      try {
        g.wait();
        ADD_FAILURE() << "wait did not rethrow the member failure";
      } catch (const std::runtime_error& e) {
        EXPECT_STREQ(e.what(), "member failed");
      }
      EXPECT_LT(ms_since(t0), 5000.0);
    });
    EXPECT_EQ(finished_sleep.load(), 0);
    EXPECT_EQ(cancelled.load(), 5);
  });
}

TEST_P(GroupTest, CancelledMembersAreNotFailures) {
  run([] {
    bounded([] {
      green::Group g;
      g.spawn([] { throw green::Cancelled(); });
      g.spawn([] { green::this_fiber::sleep_for(1ms); });
      EXPECT_NO_THROW(g.wait());
    });
  });
}

TEST_P(GroupTest, CancelStopsRunningMembersAndLaterSpawnThrows) {
  run([] {
    std::atomic<int> started{0};
    bounded([&] {
      green::Group g;
      for (int i = 0; i < 4; ++i) {
        g.spawn([&] {
          started++;
          green::this_fiber::sleep_for(1h);
        });
      }
      EXPECT_TRUE(wait_until([&] { return started.load() == 4; }));
      g.cancel();
      g.wait();  // members ended with Cancelled: not a failure
      EXPECT_THROW(g.spawn([] {}), green::Cancelled);
    });
  });
}

TEST_P(GroupTest, CancelBeforeMembersStartedStillCompletes) {
  // Members cancelled before they started never run their body; the group must still count
  // them as finished, or wait() (and the destructor) would wait forever.
  run([] {
    std::atomic<int> ran{0};
    bounded([&] {
      green::Group g;
      for (int i = 0; i < 50; ++i) g.spawn([&] { ran++; });
      g.cancel();  // on one worker none of them has started yet
      g.wait();
      EXPECT_EQ(g.running(), 0u);
    });
    EXPECT_LE(ran.load(), 50);
  });
}

TEST_P(GroupTest, FailureCancelsMembersThatHaveNotStarted) {
  run([] {
    bounded([] {
      green::Group g;
      g.spawn([] { throw std::runtime_error("early"); });
      // With 2 workers the failing member may run (and cancel the group) while we are still
      // spawning; spawn() into a cancelled group throws Cancelled by design.
      try {
        for (int i = 0; i < 50; ++i) g.spawn([] { green::this_fiber::sleep_for(1h); });
      } catch (const green::Cancelled&) {
      }
      EXPECT_THROW(g.wait(), std::runtime_error);
    });
  });
}

TEST_P(GroupTest, DestructorCancelsAndWaits) {
  run([] {
    std::atomic<int> ended{0};
    bounded([&] {
      {
        green::Group g;
        for (int i = 0; i < 5; ++i) {
          g.spawn([&] {
            struct OnExit {
              std::atomic<int>& n;
              ~OnExit() { n++; }
            } on_exit{ended};
            green::this_fiber::sleep_for(1h);
          });
        }
        nap(20ms);
      }  // ~Group: cancels and waits; members touch `ended` until the end
      EXPECT_EQ(ended.load(), 5);
    });
  });
}

TEST_P(GroupTest, LimitedSpawnParksUntilSlotFrees) {
  run([] {
    bounded([] {
      green::Group g(1);
      green::Event release;
      g.spawn([&] { release.wait(); });
      std::atomic<bool> second_spawned{false};
      auto spawner = green::spawn([&] {
        g.spawn([] {});
        second_spawned = true;
      });
      nap(30ms);
      EXPECT_FALSE(second_spawned.load()) << "spawn did not park at the limit";
      release.set();
      EXPECT_TRUE(spawner.wait_for(10s));
      spawner.join();
      EXPECT_TRUE(second_spawned.load());
      g.wait();
    });
  });
}

}  // namespace
