// Bounded randomized stress across 2 workers: spawn/cancel/join storms, Mutex and Channel
// contention with exact accounting, fds closed (green::io::close) under waiters, timers racing
// cancellation, deadlines racing notifications, Group with random failures.
//
// Every test draws from a fixed seed (GREEN_STRESS_SEED overrides the base; each test mixes
// in its own constant), printed when the test fails, and is bounded in count AND time: loops
// stop after kRounds rounds or kBudget of wall time, whichever comes first, and every check
// is on exact accounting (nothing lost, nothing duplicated), never on timing. Iteration
// counts shrink under ASan/TSan (GCC: __SANITIZE_ADDRESS__ / __SANITIZE_THREAD__).
// Fibers use their own std::mt19937 (seed + fiber index): the scheduling interleaving is not
// reproducible, the sequence of random choices each fiber makes is.
#include <gtest/gtest.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstdint>
#include <cstdlib>
#include <memory>
#include <mutex>
#include <random>
#include <stdexcept>
#include <string>
#include <system_error>
#include <thread>
#include <vector>

#include "green/green.hpp"
#include "support/green_test.hpp"

namespace {

using namespace std::chrono_literals;
using green_test::Clock;
using green_test::wait_until;

#if defined(__SANITIZE_THREAD__)
constexpr int kScaleDiv = 8;  // TSan: ~5-15x slower, and switches are expensive
#elif defined(__SANITIZE_ADDRESS__)
constexpr int kScaleDiv = 3;
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
constexpr int kScaleDiv = 8;
#elif __has_feature(address_sanitizer)
constexpr int kScaleDiv = 3;
#else
constexpr int kScaleDiv = 1;
#endif
#else
constexpr int kScaleDiv = 1;
#endif
constexpr bool kSanitized = kScaleDiv > 1;

// Wall-time budget per test: loops stop starting new rounds once it is spent.
constexpr auto kBudget = kSanitized ? 20s : 8s;

int scaled(int n) {
  return n / kScaleDiv > 0 ? n / kScaleDiv : 1;
}

std::uint64_t base_seed() {
  if (const char* s = std::getenv("GREEN_STRESS_SEED"); s && *s) {
    return std::strtoull(s, nullptr, 0);
  }
  return 0x9e3779b97f4a7c15ULL;
}

class Stress : public ::testing::Test {
 protected:
  void TearDown() override {
    if (HasFailure()) {
      std::fprintf(
          stderr, "*** stress seed for this test: base GREEN_STRESS_SEED=%llu, test %llu\n",
          static_cast<unsigned long long>(base_seed()), static_cast<unsigned long long>(seed_));
    }
  }
  // Seeds this test (salt: a per-test constant) and returns the seed.
  std::uint64_t seed(std::uint64_t salt) {
    seed_ = base_seed() ^ (salt * 0xff51afd7ed558ccdULL);
    return seed_;
  }
  // True while the round loop may start another round.
  bool more(int round, int rounds) const { return round < rounds && Clock::now() < end_; }

  template <class F>
  void run(F&& fn) {
    end_ = Clock::now() + kBudget;
    // The watchdog is far above the budget: a round in flight always finishes in bounded time.
    green_test::run_green(2, std::forward<F>(fn), std::chrono::seconds(kSanitized ? 240 : 120));
  }

  std::uint64_t seed_ = 0;
  Clock::time_point end_{};
};

using Rng = std::mt19937_64;
int pick(Rng& r, int lo, int hi) {
  return std::uniform_int_distribution<int>(lo, hi)(r);
}

// A few random short actions that park or yield: the scheduling noise of every test.
void jitter(Rng& r) {
  switch (pick(r, 0, 5)) {
    case 0:
    case 1:
      green::this_fiber::yield();
      break;
    case 2:
      green::this_fiber::sleep_for(std::chrono::microseconds(pick(r, 0, 300)));
      break;
    default:
      break;
  }
}

// ---------------------------------------------------------------------------------------------

// Rounds of N fibers that yield, sleep and spin; a random subset is cancelled at random
// moments, some detached. Every joined fiber either returned its own index or threw
// Cancelled; every detached one finishes; the counts add up exactly.
TEST_F(Stress, SpawnCancelJoinStorm) {
  const auto s = seed(1);
  run([&] {
    Rng rng(s);
    const int rounds = scaled(200);
    std::atomic<int> finished_normally{0}, finished_cancelled{0};
    int joined_ok = 0, joined_cancelled = 0, detached = 0, spawned = 0;
    for (int round = 0; more(round, rounds); ++round) {
      const int n = pick(rng, 10, 80);
      std::vector<green::Fiber<int>> fibers;
      for (int i = 0; i < n; ++i) {
        std::uint64_t fs = rng();
        fibers.push_back(green::spawn(green::SpawnOptions{.name = "storm"},
                                      [i, fs, &finished_normally, &finished_cancelled] {
                                        Rng r(fs);
                                        try {
                                          for (int k = pick(r, 0, 6); k > 0; --k) jitter(r);
                                        } catch (const green::Cancelled&) {
                                          finished_cancelled.fetch_add(1);
                                          throw;
                                        }
                                        finished_normally.fetch_add(1);
                                        return i;
                                      }));
        ++spawned;
      }
      for (int i = 0; i < n; ++i) {
        switch (pick(rng, 0, 9)) {
          case 0:
          case 1:
          case 2:
            fibers[i].cancel();
            break;
          case 3:
            green::this_fiber::yield();
            break;
          default:
            break;
        }
      }
      for (int i = 0; i < n; ++i) {
        if (pick(rng, 0, 9) == 0) {
          fibers[i].detach();
          ++detached;
          continue;
        }
        try {
          int v = fibers[i].join();
          EXPECT_EQ(v, i) << "round " << round;
          ++joined_ok;
        } catch (const green::Cancelled&) {
          ++joined_cancelled;
        }
      }
    }
    // Detached fibers finish on their own; wait for the totals to add up.
    EXPECT_TRUE(wait_until(
        [&] { return finished_normally.load() + finished_cancelled.load() == spawned; }, 30s))
        << "fibers lost: spawned " << spawned << ", finished "
        << finished_normally.load() + finished_cancelled.load();
    EXPECT_EQ(joined_ok + joined_cancelled + detached, spawned);
    EXPECT_GE(finished_normally.load(), joined_ok);
    EXPECT_GE(finished_cancelled.load(), joined_cancelled);
    EXPECT_LE(finished_normally.load(), joined_ok + detached);
    EXPECT_LE(finished_cancelled.load(), joined_cancelled + detached);
  });
}

// Fibers (and one plain OS thread) contend for one green::Mutex with lock, try_lock,
// try_lock_for and scoped deadlines, some yield or sleep inside the critical section, and a
// random subset is cancelled. Exclusion is checked on every entry; the unprotected counter
// equals the number of successful acquisitions exactly.
TEST_F(Stress, MutexContention) {
  const auto s = seed(2);
  run([&] {
    green::Mutex mu;
    std::atomic<int> inside{0};
    std::atomic<long> acquired{0};
    long counter = 0;  // guarded by mu
    const int nfibers = 16;
    const int iters = scaled(6000);
    const auto stop_at = end_;
    auto body = [&](Rng& r, bool on_fiber) {
      long mine = 0;
      try {
        for (int k = 0; k < iters && Clock::now() < stop_at; ++k) {
          bool got = false;
          switch (pick(r, 0, 4)) {
            case 0:
              got = mu.try_lock();
              break;
            case 1:
              got = mu.try_lock_for(std::chrono::microseconds(pick(r, 0, 500)));
              break;
            case 2:
              if (on_fiber) {
                try {
                  green::Deadline d(std::chrono::microseconds(pick(r, 0, 500)));
                  mu.lock();
                  got = true;
                } catch (const green::TimedOut&) {
                }
                break;
              }
              [[fallthrough]];
            default:
              mu.lock();
              got = true;
              break;
          }
          if (!got) continue;
          if (inside.fetch_add(1) != 0) ADD_FAILURE() << "two holders inside the mutex";
          ++counter;
          ++mine;
          if (on_fiber && pick(r, 0, 15) == 0) green::this_fiber::yield();
          inside.fetch_sub(1);
          mu.unlock();
          if (on_fiber && pick(r, 0, 7) == 0) jitter(r);
        }
      } catch (const green::Cancelled&) {
      }
      acquired.fetch_add(mine);
    };
    std::thread plain([&] {
      Rng r(s ^ 0xabc);
      body(r, false);
    });
    std::vector<green::Fiber<void>> fibers;
    Rng rng(s);
    for (int i = 0; i < nfibers; ++i) {
      fibers.push_back(green::spawn([&body, fs = rng()] {
        Rng r(fs);
        body(r, true);
      }));
    }
    // Cancel a few at random moments.
    for (int i = 0; i < nfibers; ++i) {
      if (pick(rng, 0, 3) == 0) {
        green::this_fiber::sleep_for(std::chrono::microseconds(pick(rng, 0, 3000)));
        fibers[i].cancel();
      }
    }
    for (auto& f : fibers) f.join();
    plain.join();
    std::lock_guard<green::Mutex> lk(mu);
    EXPECT_EQ(counter, acquired.load());
    EXPECT_GT(counter, 0);
  });
}

// Producers and consumers on channels of capacity 0, 1, 7 and unbounded, mixing blocking,
// try_ and timed operations; one consumer is a plain OS thread, some consumers work under
// short scoped deadlines. Every value sent with success is received exactly once.
TEST_F(Stress, ChannelContention) {
  const auto s = seed(3);
  run([&] {
    Rng rng(s);
    const std::size_t caps[] = {0, 1, 7, green::Channel<int>::kUnbounded};
    const int rounds = scaled(24);
    for (int round = 0; more(round, rounds); ++round) {
      const std::size_t cap = caps[round % 4];
      green::Channel<int> ch(cap);
      const int producers = pick(rng, 1, 5), consumers = pick(rng, 1, 5);
      const int per = scaled(pick(rng, 200, 800));
      const int total = producers * per;
      std::vector<std::atomic<std::uint8_t>> seen(static_cast<std::size_t>(total));
      std::atomic<int> received{0};
      auto take = [&](int v) {
        if (v < 0 || v >= total) {
          ADD_FAILURE() << "value out of range: " << v;
          return;
        }
        if (seen[static_cast<std::size_t>(v)].fetch_add(1) != 0) {
          ADD_FAILURE() << "value received twice: " << v << " (cap " << cap << ")";
        }
        received.fetch_add(1);
      };
      std::vector<green::Fiber<void>> prod, cons;
      for (int p = 0; p < producers; ++p) {
        prod.push_back(green::spawn([&, p, fs = rng()] {
          Rng r(fs);
          for (int k = 0; k < per; ++k) {
            int v = p * per + k;
            switch (pick(r, 0, 3)) {
              case 0:
                while (ch.try_send(v) == green::ChannelStatus::kFull) green::this_fiber::yield();
                break;
              case 1:
                while (ch.send_for(v, std::chrono::microseconds(pick(r, 0, 400))) ==
                       green::ChannelStatus::kTimeout) {
                }
                break;
              default:
                ch.send(v);
                break;
            }
            if (pick(r, 0, 31) == 0) jitter(r);
          }
        }));
      }
      auto consume = [&](Rng& r, bool on_fiber) {
        for (;;) {
          int v = -1;
          green::ChannelStatus st;
          switch (on_fiber ? pick(r, 0, 3) : 1) {
            case 0:
              st = ch.try_recv(v);
              if (st == green::ChannelStatus::kEmpty) green::this_fiber::yield();
              break;
            case 1:
              st = ch.recv_for(v, std::chrono::microseconds(pick(r, 0, 400)));
              break;
            case 2:
              try {
                green::Deadline d(std::chrono::microseconds(pick(r, 0, 400)));
                auto o = ch.recv();
                st = o ? green::ChannelStatus::kOk : green::ChannelStatus::kClosed;
                if (o) v = *o;
              } catch (const green::TimedOut&) {
                st = green::ChannelStatus::kTimeout;
              }
              break;
            default: {
              auto o = ch.recv();
              st = o ? green::ChannelStatus::kOk : green::ChannelStatus::kClosed;
              if (o) v = *o;
              break;
            }
          }
          if (st == green::ChannelStatus::kClosed) return;
          if (st == green::ChannelStatus::kOk) take(v);
        }
      };
      for (int c = 0; c < consumers; ++c) {
        cons.push_back(green::spawn([&, fs = rng()] {
          Rng r(fs);
          consume(r, true);
        }));
      }
      std::thread plain([&, ts = rng()] {
        Rng r(ts);
        consume(r, false);
      });
      for (auto& f : prod) f.join();
      ch.close();
      for (auto& f : cons) f.join();
      plain.join();
      ASSERT_EQ(received.load(), total) << "round " << round << " cap " << cap;
    }
  });
}

// Rounds of fibers, spread over both workers, waiting readable and writable on one end of a
// socketpair whose send buffer is full; then the fd is closed with green::io::close while
// data may be arriving, space may be freed, and some waiters are being cancelled. Every
// waiter wakes with kReady or kClosed (kCancelled only if cancelled), never hangs.
TEST_F(Stress, FdsClosedUnderWaiters) {
  const auto s = seed(4);
  run([&] {
    Rng rng(s);
    const int rounds = scaled(400);
    int closed_seen = 0, ready_seen = 0;
    for (int round = 0; more(round, rounds); ++round) {
      int sv[2];
      ASSERT_EQ(::socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, sv), 0);
      green::io::forget(sv[0]);
      green::io::forget(sv[1]);
      const int a = sv[0], b = sv[1];
      char buf[4096] = {};
      while (::write(a, buf, sizeof buf) > 0) {
      }
      ASSERT_TRUE(errno == EAGAIN || errno == EWOULDBLOCK);
      const int n = pick(rng, 2, 12);
      std::atomic<int> started{0};
      std::vector<green::Fiber<green::io::WaitResult>> waiters;
      std::vector<bool> cancelled(static_cast<std::size_t>(n), false);
      for (int i = 0; i < n; ++i) {
        unsigned ev = pick(rng, 0, 1) ? green::io::kReadable : green::io::kWritable;
        waiters.push_back(green::spawn([a, ev, &started] {
          started.fetch_add(1);
          return green::io::wait(a, ev, Clock::now() + 60s);
        }));
      }
      // Usually let (most) waiters park first; sometimes close right away.
      if (pick(rng, 0, 3) != 0) {
        EXPECT_TRUE(wait_until([&] { return started.load() == n; }, 30s));
        green::this_fiber::sleep_for(std::chrono::microseconds(pick(rng, 0, 1000)));
      }
      auto poke = green::spawn([b, what = pick(rng, 0, 2)] {
        char c[8192] = {};
        // May run after a is closed: MSG_NOSIGNAL (EPIPE, not SIGPIPE).
        if (what == 1) (void)!::send(b, c, 1, MSG_NOSIGNAL);  // a becomes readable
        if (what == 2) (void)!::recv(b, c, sizeof c, 0);      // a may become writable
      });
      for (int i = 0; i < n; ++i) {
        if (pick(rng, 0, 4) == 0) {
          waiters[i].cancel();
          cancelled[static_cast<std::size_t>(i)] = true;
        }
      }
      if (pick(rng, 0, 1)) green::this_fiber::yield();
      EXPECT_EQ(green::io::close(a), 0);
      poke.join();
      for (int i = 0; i < n; ++i) {
        if (!green_test::join_within(waiters[i], 30000ms)) {
          ADD_FAILURE() << "waiter " << i << " hung after io::close (round " << round << ")";
          continue;
        }
        auto r = waiters[i].join();
        switch (r) {
          case green::io::WaitResult::kReady:
            ++ready_seen;
            break;
          case green::io::WaitResult::kClosed:
            ++closed_seen;
            break;
          case green::io::WaitResult::kCancelled:
            EXPECT_TRUE(cancelled[static_cast<std::size_t>(i)])
                << "kCancelled for a waiter never cancelled (round " << round << ")";
            break;
          default:
            ADD_FAILURE() << "unexpected wait result " << static_cast<int>(r) << " (round " << round
                          << ")";
        }
      }
      EXPECT_EQ(green::io::close(b), 0);
    }
    EXPECT_GT(closed_seen, 0);
  });
}

// Fibers sleep for random short times while others cancel them at random moments, some under
// scoped deadlines that expire before, or after, the sleep. A sleep that returns normally
// lasted at least what was asked; a deadline shorter than the sleep always ends it with
// TimedOut; every fiber ends exactly one way.
TEST_F(Stress, TimersRacingCancellation) {
  const auto s = seed(5);
  enum Out : int { kDone = 0, kCancelled = 1, kTimedOut = 2 };
  run([&] {
    Rng rng(s);
    const int rounds = scaled(100);
    int counts[3] = {0, 0, 0};
    for (int round = 0; more(round, rounds); ++round) {
      const int n = pick(rng, 10, 60);
      std::vector<green::Fiber<int>> fibers;
      for (int i = 0; i < n; ++i) {
        fibers.push_back(green::spawn([fs = rng()]() -> int {
          Rng r(fs);
          for (int k = pick(r, 1, 4); k > 0; --k) {
            const auto sleep = std::chrono::microseconds(pick(r, 0, 3000));
            const bool scoped = pick(r, 0, 2) == 0;
            // Deadline and sleep at least 2 ms apart, so which one ends the wait is defined.
            const auto dl = scoped ? sleep + std::chrono::microseconds(pick(r, 0, 1) ? 2000 : -2000)
                                   : std::chrono::microseconds(0);
            const auto t0 = Clock::now();
            try {
              if (scoped && dl.count() >= 0) {
                green::Deadline d(t0 + dl);
                green::this_fiber::sleep_until(t0 + sleep);
              } else {
                green::this_fiber::sleep_until(t0 + sleep);
              }
            } catch (const green::Cancelled&) {
              return kCancelled;
            } catch (const green::TimedOut&) {
              const auto el = Clock::now() - t0;
              EXPECT_TRUE(scoped && dl.count() >= 0) << "TimedOut without a scoped deadline";
              EXPECT_GE(el, dl) << "scoped deadline fired early";
              return kTimedOut;
            }
            const auto el = Clock::now() - t0;
            EXPECT_GE(el, sleep) << "sleep returned early";
            if (scoped && dl.count() >= 0 && dl < sleep) {
              ADD_FAILURE() << "sleep outlived a shorter scoped deadline";
            }
          }
          return kDone;
        }));
      }
      for (int i = 0; i < n; ++i) {
        if (pick(rng, 0, 2) == 0) {
          if (pick(rng, 0, 1)) {
            green::this_fiber::sleep_for(std::chrono::microseconds(pick(rng, 0, 1500)));
          }
          fibers[i].cancel();
        }
      }
      for (auto& f : fibers) {
        ASSERT_TRUE(green_test::join_within(f, 30000ms)) << "round " << round;
        ++counts[f.join()];
      }
    }
    EXPECT_GT(counts[kDone], 0);
  });
}

// Deadlines and timeouts racing the notification that would satisfy the wait:
//  - an unbuffered channel whose senders use send_for and whose receivers use recv_for or
//    a scoped Deadline: a value is received iff its send reported kOk, exactly once;
//  - a semaphore whose acquirers use acquire_until while releasers release: permits are
//    conserved (acquired + left == released).
TEST_F(Stress, DeadlinesRacingNotifications) {
  const auto s = seed(6);
  run([&] {
    Rng rng(s);
    const int rounds = scaled(30);
    for (int round = 0; more(round, rounds); ++round) {
      green::Channel<int> ch(0);
      const int senders = pick(rng, 1, 4), receivers = pick(rng, 1, 4);
      const int per = scaled(pick(rng, 50, 200));
      const int total = senders * per;
      std::vector<std::atomic<std::uint8_t>> sent_ok(static_cast<std::size_t>(total));
      std::vector<std::atomic<std::uint8_t>> got(static_cast<std::size_t>(total));
      std::vector<green::Fiber<void>> snd, rcv;
      for (int p = 0; p < senders; ++p) {
        snd.push_back(green::spawn([&, p, fs = rng()] {
          Rng r(fs);
          for (int k = 0; k < per; ++k) {
            int v = p * per + k;
            if (ch.send_for(v, std::chrono::microseconds(pick(r, 0, 600))) ==
                green::ChannelStatus::kOk) {
              sent_ok[static_cast<std::size_t>(v)] = 1;
            }
          }
        }));
      }
      for (int c = 0; c < receivers; ++c) {
        rcv.push_back(green::spawn([&, fs = rng()] {
          Rng r(fs);
          for (;;) {
            int v = -1;
            green::ChannelStatus st;
            if (pick(r, 0, 1)) {
              st = ch.recv_for(v, std::chrono::microseconds(pick(r, 0, 600)));
            } else {
              try {
                green::Deadline d(std::chrono::microseconds(pick(r, 0, 600)));
                auto o = ch.recv();
                st = o ? green::ChannelStatus::kOk : green::ChannelStatus::kClosed;
                if (o) v = *o;
              } catch (const green::TimedOut&) {
                st = green::ChannelStatus::kTimeout;
              }
            }
            if (st == green::ChannelStatus::kClosed) return;
            if (st == green::ChannelStatus::kOk) {
              if (v < 0 || v >= total || got[static_cast<std::size_t>(v)].fetch_add(1) != 0) {
                ADD_FAILURE() << "bad or duplicate value " << v;
              }
            }
          }
        }));
      }
      for (auto& f : snd) f.join();
      ch.close();
      for (auto& f : rcv) f.join();
      for (int v = 0; v < total; ++v) {
        ASSERT_EQ(sent_ok[static_cast<std::size_t>(v)].load(),
                  got[static_cast<std::size_t>(v)].load())
            << "value " << v << ": send said "
            << (sent_ok[static_cast<std::size_t>(v)] ? "ok" : "timeout") << " (round " << round
            << ")";
      }

      green::Semaphore sem(0);
      std::atomic<long> acquired{0}, released{0};
      std::vector<green::Fiber<void>> fs;
      for (int i = 0; i < 6; ++i) {
        const bool releaser = i % 2 == 0;
        fs.push_back(green::spawn([&, releaser, seed = rng()] {
          Rng r(seed);
          for (int k = 0; k < scaled(200); ++k) {
            if (releaser) {
              auto n = static_cast<std::size_t>(pick(r, 1, 3));
              sem.release(n);
              released.fetch_add(static_cast<long>(n));
              jitter(r);
            } else if (sem.acquire_until(Clock::now() +
                                         std::chrono::microseconds(pick(r, 0, 500)))) {
              acquired.fetch_add(1);
            }
          }
        }));
      }
      for (auto& f : fs) f.join();
      long left = 0;
      while (sem.try_acquire()) ++left;
      ASSERT_EQ(acquired.load() + left, released.load()) << "round " << round;
    }
  });
}

// Groups with random limits whose members randomly sleep, yield, throw or spawn more
// members; wait() rethrows exactly one of the thrown errors iff some member threw, every
// member that started finished before wait() returned, and the group is empty afterwards.
TEST_F(Stress, GroupWithRandomFailures) {
  const auto s = seed(7);
  run([&] {
    Rng rng(s);
    const int rounds = scaled(250);
    int failed_rounds = 0;
    for (int round = 0; more(round, rounds); ++round) {
      std::atomic<int> started{0}, finished{0}, threw{0};
      green::Mutex thrown_mu;
      std::vector<std::string> thrown;  // guarded by thrown_mu
      bool spawn_refused = false;
      {
        green::Group g(static_cast<std::size_t>(pick(rng, 0, 4)));
        const int n = pick(rng, 1, 30);
        const int fail_per_mille = pick(rng, 0, 1) ? 0 : pick(rng, 5, 150);
        for (int i = 0; i < n; ++i) {
          try {
            g.spawn([&, i, fs = rng()] {
              started.fetch_add(1);
              struct Done {
                std::atomic<int>& f;
                ~Done() { f.fetch_add(1); }
              } done{finished};
              Rng r(fs);
              for (int k = pick(r, 0, 5); k > 0; --k) {
                jitter(r);
                if (pick(r, 0, 999) < fail_per_mille) {
                  std::string what = "member " + std::to_string(i);
                  {
                    std::lock_guard<green::Mutex> lk(thrown_mu);
                    thrown.push_back(what);
                  }
                  threw.fetch_add(1);
                  throw std::runtime_error(what);
                }
              }
            });
          } catch (const green::Cancelled&) {
            spawn_refused = true;  // the group was cancelled by a failure
            break;
          }
        }
        try {
          g.wait();
          EXPECT_EQ(threw.load(), 0) << "wait() returned normally after a member threw";
        } catch (const std::runtime_error& e) {
          ++failed_rounds;
          std::lock_guard<green::Mutex> lk(thrown_mu);
          bool known = false;
          for (auto& t : thrown) known = known || t == e.what();
          EXPECT_TRUE(known) << "wait() rethrew '" << e.what() << "', which no member threw";
        }
        EXPECT_EQ(g.running(), 0u);
        EXPECT_EQ(started.load(), finished.load()) << "wait() returned before members ended";
      }
      if (spawn_refused) {
        EXPECT_GT(threw.load(), 0) << "spawn refused without any failure";
      }
    }
    (void)failed_rounds;
  });
}

}  // namespace
