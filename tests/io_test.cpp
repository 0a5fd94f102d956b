// green::io: readiness waits on socketpairs and pipes, timeouts, hang-ups, io::close / forget
// waking waiters (EBADF), several workers waiting on one fd, fd-number reuse, fds beyond the
// per-fd tables, and off-fiber use.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <memory>
#include <system_error>
#include <thread>
#include <vector>

#include "green/green.hpp"
#include "support/green_test.hpp"

namespace {

using namespace std::chrono_literals;
using green::io::WaitResult;
using green_test::Clock;
using green_test::ms_since;
using green_test::nap;
using green_test::SocketPair;
using green_test::wait_until;

GREEN_TEST_WORKERS_SUITE(IoTest);

const char* name(WaitResult r) {
  switch (r) {
    case WaitResult::kReady:
      return "kReady";
    case WaitResult::kTimeout:
      return "kTimeout";
    case WaitResult::kClosed:
      return "kClosed";
    case WaitResult::kCancelled:
      return "kCancelled";
    case WaitResult::kDeadline:
      return "kDeadline";
    case WaitResult::kInterrupted:
      return "kInterrupted";
  }
  return "?";
}

struct Pipe {
  int r = -1, w = -1;
  Pipe() {
    int fds[2];
    if (::pipe2(fds, O_CLOEXEC) != 0) {
      ADD_FAILURE() << "pipe2 failed";
      return;
    }
    r = fds[0];
    w = fds[1];
  }
  ~Pipe() {
    if (r >= 0) green::io::close(r);
    if (w >= 0) green::io::close(w);
  }
};

TEST_P(IoTest, WaitReadableOnSocketpair) {
  run([] {
    SocketPair sp;
    auto writer = green::spawn([&] {
      green::this_fiber::sleep_for(30ms);
      EXPECT_EQ(::write(sp.b, "hi", 2), 2);
    });
    auto t0 = Clock::now();
    EXPECT_TRUE(green::io::wait_readable(sp.a, 10s));
    EXPECT_GE(Clock::now() - t0, 25ms) << "readable reported before data was written";
    char buf[4] = {};
    EXPECT_EQ(::read(sp.a, buf, sizeof buf), 2);
    EXPECT_EQ(std::string(buf, 2), "hi");
    writer.join();
    // The registration leaves the fd's flags alone.
    EXPECT_FALSE(::fcntl(sp.a, F_GETFL) & O_NONBLOCK);
  });
}

TEST_P(IoTest, WaitWritableIsImmediateOnFreshSocket) {
  run([] {
    SocketPair sp;
    auto t0 = Clock::now();
    EXPECT_TRUE(green::io::wait_writable(sp.a, 10s));
    EXPECT_LT(ms_since(t0), 1000.0);
    EXPECT_EQ(
        green::io::wait(sp.a, green::io::kReadable | green::io::kWritable, Clock::now() + 10s),
        WaitResult::kReady);
  });
}

TEST_P(IoTest, TimeoutsReturnFalse) {
  run([] {
    SocketPair sp;
    auto t0 = Clock::now();
    EXPECT_FALSE(green::io::wait_readable(sp.a, 50ms));
    EXPECT_GE(Clock::now() - t0, 50ms);
    EXPECT_LT(ms_since(t0), 3000.0);
    auto r = green::io::wait(sp.a, green::io::kReadable, Clock::now() + 20ms);
    EXPECT_EQ(r, WaitResult::kTimeout) << name(r);
    // Data that arrived later is seen by the next wait.
    ASSERT_EQ(::write(sp.b, "x", 1), 1);
    r = green::io::wait(sp.a, green::io::kReadable, Clock::now() + 10s);
    EXPECT_EQ(r, WaitResult::kReady) << name(r);
  });
}

TEST_P(IoTest, Pipes) {
  run([] {
    Pipe p;
    EXPECT_FALSE(green::io::wait_readable(p.r, 20ms));
    auto writer = green::spawn([&] {
      green::this_fiber::sleep_for(20ms);
      EXPECT_EQ(::write(p.w, "abc", 3), 3);
    });
    EXPECT_TRUE(green::io::wait_readable(p.r, 10s));
    writer.join();
    char buf[8];
    EXPECT_EQ(::read(p.r, buf, sizeof buf), 3);

    // Fill the pipe: the write end stops being writable.
    ASSERT_EQ(::fcntl(p.w, F_SETFL, ::fcntl(p.w, F_GETFL) | O_NONBLOCK), 0);
    std::vector<char> chunk(65536, 'z');
    std::size_t filled = 0;
    for (int i = 0; i < 1000; ++i) {
      ssize_t n = ::write(p.w, chunk.data(), chunk.size());
      if (n < 0) {
        ASSERT_EQ(errno, EAGAIN);
        break;
      }
      filled += static_cast<std::size_t>(n);
    }
    ASSERT_GT(filled, 0u);
    EXPECT_FALSE(green::io::wait_writable(p.w, 30ms)) << "full pipe reported writable";
    std::atomic<std::size_t> drained{0};
    auto drainer = green::spawn([&] {
      green::this_fiber::sleep_for(20ms);
      std::vector<char> b(65536);
      while (drained < filled) {
        ssize_t n = ::read(p.r, b.data(), b.size());
        if (n <= 0) break;
        drained += static_cast<std::size_t>(n);
      }
    });
    EXPECT_TRUE(green::io::wait_writable(p.w, 10s));
    drainer.join();
    EXPECT_EQ(drained.load(), filled);
  });
}

TEST_P(IoTest, InterruptedWaitsLeaveNoStaleRegistration) {
  // Timed-out and cancelled waits (readable, writable, both) must unlink themselves from the
  // fd's waiter lists; later waits and wake-ups on the same fd must still work.
  run([] {
    SocketPair sp;
    ASSERT_EQ(::fcntl(sp.a, F_SETFL, ::fcntl(sp.a, F_GETFL) | O_NONBLOCK), 0);
    std::vector<char> chunk(65536, 'f');
    for (int i = 0; i < 10000; ++i) {
      if (::send(sp.a, chunk.data(), chunk.size(), MSG_NOSIGNAL) < 0) break;
    }
    // sp.a: neither readable (no data) nor writable (send buffer full).
    const unsigned kinds[] = {green::io::kReadable, green::io::kWritable,
                              green::io::kReadable | green::io::kWritable};
    for (int round = 0; round < 30; ++round) {
      unsigned ev = kinds[round % 3];
      auto r = green::io::wait(sp.a, ev, Clock::now() + 1ms);
      ASSERT_EQ(r, WaitResult::kTimeout) << name(r) << " round " << round;
      std::atomic<bool> started{false};
      auto f = green::spawn([&, ev] {
        started = true;
        return green::io::wait(sp.a, ev, green::detail::kNoDeadline);
      });
      ASSERT_TRUE(wait_until([&] { return started.load(); }));
      nap(1ms);  // let it register and park
      f.cancel();
      ASSERT_TRUE(f.wait_for(10s)) << "round " << round;
      r = f.join();
      ASSERT_EQ(r, WaitResult::kCancelled) << name(r) << " round " << round;
    }
    // Real readiness in each direction still wakes waiters.
    auto reader = green::spawn([&] { return green::io::wait_readable(sp.a, 10s); });
    auto writer = green::spawn([&] { return green::io::wait_writable(sp.a, 10s); });
    nap(20ms);
    ASSERT_EQ(::write(sp.b, "d", 1), 1);
    EXPECT_TRUE(reader.join());
    ASSERT_EQ(::fcntl(sp.b, F_SETFL, ::fcntl(sp.b, F_GETFL) | O_NONBLOCK), 0);
    std::vector<char> sink(65536);
    for (int i = 0; i < 10000; ++i) {
      if (::read(sp.b, sink.data(), sink.size()) <= 0) break;
    }
    EXPECT_TRUE(writer.join());
  });
}

TEST_P(IoTest, HangUpCountsAsReady) {
  run([] {
    SocketPair sp;
    auto closer = green::spawn([&] {
      green::this_fiber::sleep_for(20ms);
      EXPECT_EQ(green::io::close(sp.b), 0);
      sp.b = -1;
    });
    EXPECT_TRUE(green::io::wait_readable(sp.a, 10s)) << "peer close did not wake the reader";
    closer.join();
    char c;
    EXPECT_EQ(::read(sp.a, &c, 1), 0);
    EXPECT_TRUE(green::io::wait_writable(sp.a, 10s));
    errno = 0;
    EXPECT_EQ(::send(sp.a, "x", 1, MSG_NOSIGNAL), -1);
    EXPECT_EQ(errno, EPIPE);
  });
}

TEST_P(IoTest, CloseWakesWaiterWithEbadf) {
  std::size_t n = workers();
  run([n] {
    for (int w = 0; w < static_cast<int>(n); ++w) {
      SocketPair sp;
      std::atomic<int> outcome{0};  // 1: EBADF, 2: other errno, 3: returned, 4: other exception
      std::atomic<bool> waiting{false};
      int fd = sp.a;
      auto f = green_test::run_on_worker(w, [&, fd] {
        try {
          waiting = true;
          green::io::wait_readable(fd);
          outcome = 3;
        } catch (const std::system_error& e) {
          outcome = e.code().value() == EBADF ? 1 : 2;
          if (outcome != 1) ADD_FAILURE() << "wrong errno: " << e.what();
        } catch (...) {
          outcome = 4;
        }
      });
      ASSERT_TRUE(f.joinable());
      ASSERT_TRUE(wait_until([&] { return waiting.load(); }));
      nap(30ms);
      EXPECT_FALSE(f.done()) << "wait_readable returned with no data";
      errno = 0;
      EXPECT_EQ(green::io::close(sp.a), 0);
      sp.a = -1;
      ASSERT_TRUE(f.wait_for(10s)) << "io::close did not wake the waiter on worker " << w;
      f.join();
      EXPECT_EQ(outcome.load(), 1) << "worker " << w;
    }
  });
}

TEST_P(IoTest, CloseWakesRawWaitWithClosed) {
  run([] {
    SocketPair sp;
    int fd = sp.a;
    auto f = green::spawn(
        [fd] { return green::io::wait(fd, green::io::kReadable, green::detail::kNoDeadline); });
    nap(30ms);
    EXPECT_EQ(green::io::close(sp.a), 0);
    sp.a = -1;
    ASSERT_TRUE(f.wait_for(10s));
    auto r = f.join();
    EXPECT_EQ(r, WaitResult::kClosed) << name(r);
  });
}

TEST_P(IoTest, CloseWakesWritableWaiter) {
  run([] {
    SocketPair sp;
    // Fill the socket so that it is not writable.
    ASSERT_EQ(::fcntl(sp.a, F_SETFL, ::fcntl(sp.a, F_GETFL) | O_NONBLOCK), 0);
    std::vector<char> chunk(65536, 'q');
    for (int i = 0; i < 10000; ++i) {
      if (::send(sp.a, chunk.data(), chunk.size(), MSG_NOSIGNAL) < 0) break;
    }
    ASSERT_FALSE(green::io::wait_writable(sp.a, 20ms)) << "socket still writable after filling";
    int fd = sp.a;
    auto f = green::spawn([fd]() -> int {
      try {
        green::io::wait_writable(fd);
        return 0;
      } catch (const std::system_error& e) {
        return e.code().value();
      }
    });
    nap(30ms);
    EXPECT_EQ(green::io::close(sp.a), 0);
    sp.a = -1;
    ASSERT_TRUE(f.wait_for(10s));
    EXPECT_EQ(f.join(), EBADF);
  });
}

TEST_P(IoTest, ForgetWakesWaitersButKeepsFdOpen) {
  run([] {
    SocketPair sp;
    int fd = sp.a;
    auto f = green::spawn(
        [fd] { return green::io::wait(fd, green::io::kReadable, green::detail::kNoDeadline); });
    nap(30ms);
    green::io::forget(sp.a);
    ASSERT_TRUE(f.wait_for(10s)) << "forget did not wake the waiter";
    auto r = f.join();
    EXPECT_EQ(r, WaitResult::kClosed) << name(r);
    EXPECT_NE(::fcntl(sp.a, F_GETFD), -1) << "forget closed the fd";
    // The fd can be waited on again.
    ASSERT_EQ(::write(sp.b, "y", 1), 1);
    EXPECT_TRUE(green::io::wait_readable(sp.a, 10s));
  });
}

TEST(IoMultiWorker, TwoWorkersWaitOnSameFd) {
  green_test::run_green(2, [] {
    SocketPair sp;
    std::atomic<int> ready_count{0}, woke{0};
    std::vector<green::Fiber<void>> fs;
    for (int w = 0; w < 2; ++w) {
      fs.push_back(green_test::run_on_worker(w, [&, w] {
        ready_count++;
        if (green::io::wait_readable(sp.a, 10s)) woke++;
        EXPECT_EQ(green::current_worker(), w);
      }));
      ASSERT_TRUE(fs.back().joinable());
    }
    ASSERT_TRUE(wait_until([&] { return ready_count.load() == 2; }));
    nap(30ms);
    EXPECT_EQ(woke.load(), 0);
    ASSERT_EQ(::write(sp.b, "z", 1), 1);  // nobody reads it: both waiters see readiness
    for (auto& f : fs) ASSERT_TRUE(green_test::join_within(f));
    EXPECT_EQ(woke.load(), 2);
  });
}

TEST(IoMultiWorker, CloseWakesWaitersOnBothWorkers) {
  green_test::run_green(2, [] {
    SocketPair sp;
    int fd = sp.a;
    std::atomic<int> ready_count{0}, ebadf{0};
    std::vector<green::Fiber<void>> fs;
    for (int w = 0; w < 2; ++w) {
      fs.push_back(green_test::run_on_worker(w, [&, fd] {
        ready_count++;
        try {
          green::io::wait_readable(fd);
        } catch (const std::system_error& e) {
          if (e.code().value() == EBADF) ebadf++;
        }
      }));
      ASSERT_TRUE(fs.back().joinable());
    }
    ASSERT_TRUE(wait_until([&] { return ready_count.load() == 2; }));
    nap(30ms);
    EXPECT_EQ(green::io::close(sp.a), 0);
    sp.a = -1;
    for (auto& f : fs) ASSERT_TRUE(green_test::join_within(f));
    EXPECT_EQ(ebadf.load(), 2);
  });
}

TEST_P(IoTest, ManyWaitersOnOneFd) {
  run([] {
    SocketPair sp;
    std::atomic<int> woke{0};
    std::vector<green::Fiber<void>> fs;
    for (int i = 0; i < 20; ++i) {
      fs.push_back(green::spawn([&] {
        if (green::io::wait_readable(sp.a, 10s)) woke++;
      }));
    }
    nap(30ms);
    ASSERT_EQ(::write(sp.b, "m", 1), 1);
    for (auto& f : fs) ASSERT_TRUE(green_test::join_within(f));
    EXPECT_EQ(woke.load(), 20);
  });
}

TEST_P(IoTest, ManyFds) {
  run([] {
    constexpr int kPairs = 200;
    std::vector<std::unique_ptr<SocketPair>> pairs;
    for (int i = 0; i < kPairs; ++i) pairs.push_back(std::make_unique<SocketPair>());
    std::atomic<int> ok{0};
    std::vector<green::Fiber<void>> fs;
    for (int i = 0; i < kPairs; ++i) {
      int fd = pairs[static_cast<std::size_t>(i)]->a;
      fs.push_back(green::spawn([fd, i, &ok] {
        if (!green::io::wait_readable(fd, 20s)) return;
        char c = 0;
        if (::read(fd, &c, 1) == 1 && c == static_cast<char>(i)) ok++;
      }));
    }
    nap(20ms);
    for (int i = 0; i < kPairs; ++i) {
      char c = static_cast<char>(i);
      ASSERT_EQ(::write(pairs[static_cast<std::size_t>(i)]->b, &c, 1), 1);
    }
    for (auto& f : fs) ASSERT_TRUE(green_test::join_within(f, 30000ms));
    EXPECT_EQ(ok.load(), kPairs);
  });
}

TEST_P(IoTest, FdNumberReusedAfterClose) {
  run([] {
    int old_fd = -1;
    {
      SocketPair sp;
      old_fd = sp.a;
      EXPECT_FALSE(green::io::wait_readable(sp.a, 10ms));  // registers sp.a
    }
    // The next socketpair most likely reuses the number; the stale registration must be gone.
    SocketPair sp2;
    SCOPED_TRACE(sp2.a == old_fd || sp2.b == old_fd ? "fd reused" : "fd not reused");
    EXPECT_FALSE(green::io::wait_readable(sp2.a, 20ms));
    auto writer = green::spawn([&] {
      green::this_fiber::sleep_for(20ms);
      EXPECT_EQ(::write(sp2.b, "r", 1), 1);
    });
    EXPECT_TRUE(green::io::wait_readable(sp2.a, 10s)) << "wait on a reused fd number never woke";
    writer.join();
    EXPECT_FALSE(green::io::wait_readable(sp2.b, 20ms));
  });
}

// The per-fd rule (docs/hacking.md §6): FdTable and the Pollers' entries are sized once, from
// RLIMIT_NOFILE's hard limit when the runtime starts (at least 2^16 entries). An fd numbered
// beyond them (the limit raised later) has no entry and takes the plain path: io::wait blocks
// in poll(2), io::close is close(2). Raising the hard limit needs CAP_SYS_RESOURCE.
TEST_P(IoTest, FdBeyondTheTablesTakesThePlainPath) {
  rlimit old{};
  ASSERT_EQ(::getrlimit(RLIMIT_NOFILE, &old), 0);
  if (old.rlim_max == RLIM_INFINITY || old.rlim_max > 65536)
    GTEST_SKIP() << "RLIMIT_NOFILE's hard limit already sizes the tables beyond fd 65536";
  constexpr int kFd = 65536 + 7;
  bool raised = false;
  run([&] {
    // Raised only now: the runtime's tables were sized when it started.
    rlimit more{kFd + 1, kFd + 1};
    if (::setrlimit(RLIMIT_NOFILE, &more) != 0) return;  // EPERM: not privileged
    raised = true;
    struct Restore {
      const rlimit& lim;
      ~Restore() { EXPECT_EQ(::setrlimit(RLIMIT_NOFILE, &lim), 0); }
    } restore{old};
    SocketPair sp;
    ASSERT_EQ(::dup2(sp.a, kFd), kFd);
    EXPECT_FALSE(green::io::wait_readable(kFd, 30ms));
    EXPECT_EQ(green::io::wait(kFd, green::io::kWritable, Clock::now() + 10s), WaitResult::kReady);
    ASSERT_EQ(::write(sp.b, "z", 1), 1);
    auto r = green::io::wait(kFd, green::io::kReadable, Clock::now() + 10s);
    EXPECT_EQ(r, WaitResult::kReady) << name(r);
    EXPECT_EQ(green::io::close(kFd), 0);
    errno = 0;
    EXPECT_EQ(::fcntl(kFd, F_GETFD), -1);
    EXPECT_EQ(errno, EBADF);
    EXPECT_EQ(green::io::close(kFd), -1);
    EXPECT_EQ(errno, EBADF);
    // The socket itself is still on the tables' path.
    char c = 0;
    EXPECT_EQ(::read(sp.a, &c, 1), 1);
    EXPECT_EQ(c, 'z');
  });
  if (!raised) GTEST_SKIP() << "setrlimit(RLIMIT_NOFILE) failed (needs CAP_SYS_RESOURCE)";
}

TEST_P(IoTest, PlainThreadWaitsWhileRuntimeRuns) {
  run([] {
    SocketPair sp;
    std::atomic<int> result{-1};
    std::thread t([&] {
      EXPECT_FALSE(green::io::wait_readable(sp.a, 20ms));
      result = green::io::wait_readable(sp.a, 10s) ? 1 : 0;
    });
    nap(50ms);
    ASSERT_EQ(::write(sp.b, "p", 1), 1);
    EXPECT_TRUE(wait_until([&] { return result.load() != -1; }));
    t.join();
    EXPECT_EQ(result.load(), 1);
  });
}

TEST(IoNoRuntime, OffFiberUsesPoll) {
  SocketPair sp;
  auto t0 = Clock::now();
  EXPECT_FALSE(green::io::wait_readable(sp.a, 30ms));
  EXPECT_GE(Clock::now() - t0, 30ms);
  EXPECT_TRUE(green::io::wait_writable(sp.a, 1s));
  ASSERT_EQ(::write(sp.b, "o", 1), 1);
  EXPECT_TRUE(green::io::wait_readable(sp.a, 1s));
  EXPECT_EQ(green::io::wait(sp.a, green::io::kReadable, Clock::now() + 1s), WaitResult::kReady);
  EXPECT_EQ(green::io::close(sp.b), 0);
  sp.b = -1;
  EXPECT_EQ(green::io::close(-1), -1);
  EXPECT_EQ(errno, EBADF) << "io::close must preserve close(2)'s errno";
}

TEST_P(IoTest, CancelAndDeadlineInterruptWaits) {
  run([] {
    SocketPair sp;
    int fd = sp.a;
    auto f = green::spawn(
        [fd] { return green::io::wait(fd, green::io::kReadable, green::detail::kNoDeadline); });
    nap(20ms);
    f.cancel();
    ASSERT_TRUE(f.wait_for(10s));
    auto r = f.join();
    EXPECT_EQ(r, WaitResult::kCancelled) << name(r);
    auto g = green::spawn([fd] {
      green::Deadline d(20ms);
      return green::io::wait(fd, green::io::kReadable, green::detail::kNoDeadline);
    });
    ASSERT_TRUE(g.wait_for(10s));
    r = g.join();
    EXPECT_EQ(r, WaitResult::kDeadline) << name(r);
  });
}

}  // namespace
