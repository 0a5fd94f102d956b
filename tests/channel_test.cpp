// green::Channel<T>: bounded / unbuffered / unbounded semantics, try_ forms and statuses,
// timeouts, close, range-for, values untouched on failure, and an M:N pipeline that must
// deliver every item exactly once.
#include <gtest/gtest.h>

#include <atomic>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "green/green.hpp"
#include "support/green_test.hpp"

namespace {

using namespace std::chrono_literals;
using green::ChannelStatus;
using green_test::Clock;
using green_test::ms_since;
using green_test::nap;
using green_test::wait_until;

GREEN_TEST_WORKERS_SUITE(ChannelTest);

const char* name(ChannelStatus s) {
  switch (s) {
    case ChannelStatus::kOk:
      return "kOk";
    case ChannelStatus::kEmpty:
      return "kEmpty";
    case ChannelStatus::kFull:
      return "kFull";
    case ChannelStatus::kTimeout:
      return "kTimeout";
    case ChannelStatus::kClosed:
      return "kClosed";
  }
  return "?";
}

TEST(ChannelNoRuntime, BoundedTryFormsAndFifo) {
  green::Channel<int> ch(3);
  EXPECT_EQ(ch.capacity(), 3u);
  EXPECT_EQ(ch.size(), 0u);
  int out = -1;
  EXPECT_EQ(ch.try_recv(out), ChannelStatus::kEmpty);
  EXPECT_EQ(out, -1);
  for (int i = 0; i < 3; ++i) EXPECT_EQ(ch.try_send(i), ChannelStatus::kOk);
  EXPECT_EQ(ch.size(), 3u);
  EXPECT_EQ(ch.try_send(99), ChannelStatus::kFull);
  for (int i = 0; i < 3; ++i) {
    EXPECT_EQ(ch.try_recv(out), ChannelStatus::kOk);
    EXPECT_EQ(out, i);
  }
  EXPECT_EQ(ch.try_recv(out), ChannelStatus::kEmpty);
  EXPECT_FALSE(ch.closed());
}

TEST(ChannelNoRuntime, FailedTrySendLeavesValueUntouched) {
  green::Channel<std::unique_ptr<int>> ch(1);
  EXPECT_EQ(ch.try_send(std::make_unique<int>(1)), ChannelStatus::kOk);
  auto p = std::make_unique<int>(2);
  EXPECT_EQ(ch.try_send(p), ChannelStatus::kFull);
  ASSERT_NE(p, nullptr) << "value lost by a failed try_send(T&)";
  EXPECT_EQ(*p, 2);
  EXPECT_EQ(ch.try_send(std::move(p)), ChannelStatus::kFull);
  ASSERT_NE(p, nullptr) << "value lost by a failed try_send(T&&)";  // NOLINT
  ch.close();
  EXPECT_EQ(ch.try_send(p), ChannelStatus::kClosed);
  ASSERT_NE(p, nullptr) << "value lost by try_send on a closed channel";
  std::unique_ptr<int> out;
  EXPECT_EQ(ch.try_recv(out), ChannelStatus::kOk);  // buffered value survives close
  ASSERT_NE(out, nullptr);
  EXPECT_EQ(*out, 1);
  EXPECT_EQ(ch.try_recv(out), ChannelStatus::kClosed);
}

TEST(ChannelNoRuntime, UnbufferedTrySendWithoutReceiverIsFull) {
  green::Channel<std::string> ch(0);
  EXPECT_EQ(ch.capacity(), 0u);
  std::string v = "keep";
  EXPECT_EQ(ch.try_send(v), ChannelStatus::kFull);
  EXPECT_EQ(v, "keep");
  std::string out;
  EXPECT_EQ(ch.try_recv(out), ChannelStatus::kEmpty);
}

TEST(ChannelNoRuntime, UnboundedNeverFull) {
  auto ch = green::Channel<int>::unbounded();
  EXPECT_EQ(ch.capacity(), green::Channel<int>::kUnbounded);
  for (int i = 0; i < 100000; ++i) ASSERT_EQ(ch.try_send(i), ChannelStatus::kOk);
  EXPECT_EQ(ch.size(), 100000u);
  for (int i = 0; i < 100000; ++i) {
    auto v = ch.recv();
    ASSERT_TRUE(v);
    ASSERT_EQ(*v, i);
  }
}

TEST_P(ChannelTest, UnbufferedSendIsRendezvous) {
  run([] {
    green::Channel<int> ch(0);
    std::atomic<bool> sent{false};
    auto sender = green::spawn([&] {
      ch.send(5);
      sent = true;
    });
    nap(40ms);
    EXPECT_FALSE(sent.load()) << "unbuffered send returned with no receiver";
    EXPECT_EQ(ch.size(), 0u);
    auto v = ch.recv();
    ASSERT_TRUE(v);
    EXPECT_EQ(*v, 5);
    ASSERT_TRUE(green_test::join_within(sender));
    EXPECT_TRUE(sent.load());
  });
}

TEST_P(ChannelTest, TryRecvTakesFromParkedSender) {
  run([] {
    green::Channel<int> ch(0);
    auto sender = green::spawn([&] { ch.send(11); });
    int out = 0;
    ASSERT_TRUE(wait_until([&] { return ch.try_recv(out) == ChannelStatus::kOk; }))
        << "try_recv never saw the parked sender";
    EXPECT_EQ(out, 11);
    ASSERT_TRUE(green_test::join_within(sender));
  });
}

TEST_P(ChannelTest, TrySendHandsToParkedReceiver) {
  run([] {
    green::Channel<int> ch(0);
    auto receiver = green::spawn([&] { return ch.recv(); });
    ASSERT_TRUE(wait_until([&] { return ch.try_send(12) == ChannelStatus::kOk; }))
        << "try_send never saw the parked receiver";
    auto v = receiver.join();
    ASSERT_TRUE(v);
    EXPECT_EQ(*v, 12);
  });
}

TEST_P(ChannelTest, BoundedSendBlocksWhenFullAndResumesOnRecv) {
  run([] {
    green::Channel<int> ch(2);
    ch.send(1);
    ch.send(2);
    std::atomic<bool> third{false};
    auto sender = green::spawn([&] {
      ch.send(3);
      third = true;
    });
    nap(30ms);
    EXPECT_FALSE(third.load()) << "send on a full channel did not block";
    EXPECT_EQ(ch.recv(), 1);
    ASSERT_TRUE(green_test::join_within(sender));
    EXPECT_EQ(ch.size(), 2u);
    EXPECT_EQ(ch.recv(), 2);
    EXPECT_EQ(ch.recv(), 3);
  });
}

TEST_P(ChannelTest, SendForAndRecvForTimeouts) {
  run([] {
    green::Channel<std::unique_ptr<int>> ch(1);
    ch.send(std::make_unique<int>(1));
    auto p = std::make_unique<int>(2);
    auto t0 = Clock::now();
    EXPECT_EQ(ch.send_for(p, 40ms), ChannelStatus::kTimeout);
    EXPECT_GE(Clock::now() - t0, 40ms);
    ASSERT_NE(p, nullptr) << "value lost by a timed-out send_for";
    auto at = Clock::now() + 20ms;
    EXPECT_EQ(ch.send_until(p, at), ChannelStatus::kTimeout);
    EXPECT_GE(Clock::now(), at);
    ASSERT_NE(p, nullptr);

    std::unique_ptr<int> out;
    EXPECT_EQ(ch.recv_for(out, 1s), ChannelStatus::kOk);
    ASSERT_NE(out, nullptr);
    EXPECT_EQ(*out, 1);
    t0 = Clock::now();
    EXPECT_EQ(ch.recv_for(out, 40ms), ChannelStatus::kTimeout);
    EXPECT_GE(Clock::now() - t0, 40ms);
    at = Clock::now() + 20ms;
    EXPECT_EQ(ch.recv_until(out, at), ChannelStatus::kTimeout);
    EXPECT_GE(Clock::now(), at);
    // Now there is room: send_for succeeds at once and moves the value out.
    EXPECT_EQ(ch.send_for(p, 1s), ChannelStatus::kOk);
    EXPECT_EQ(ch.size(), 1u);
  });
}

TEST_P(ChannelTest, SendForSucceedsWhenReceiverArrives) {
  run([] {
    green::Channel<int> ch(0);
    auto receiver = green::spawn([&] {
      green::this_fiber::sleep_for(20ms);
      return ch.recv();
    });
    int v = 21;
    EXPECT_EQ(ch.send_for(v, 10s), ChannelStatus::kOk);
    auto got = receiver.join();
    ASSERT_TRUE(got);
    EXPECT_EQ(*got, 21);
  });
}

TEST_P(ChannelTest, CloseWakesParkedReceivers) {
  run([] {
    green::Channel<int> ch(4);
    std::vector<green::Fiber<bool>> rs;
    for (int i = 0; i < 10; ++i) {
      rs.push_back(green::spawn([&] { return ch.recv().has_value(); }));
    }
    int out = 0;
    auto timed = green::spawn([&] { return ch.recv_for(out, 1h); });
    nap(30ms);
    ch.close();
    EXPECT_TRUE(ch.closed());
    for (auto& r : rs) {
      ASSERT_TRUE(r.wait_for(10s)) << "close did not wake a receiver";
      EXPECT_FALSE(r.join()) << "recv on a closed, empty channel returned a value";
    }
    ASSERT_TRUE(timed.wait_for(10s));
    auto st = timed.join();
    EXPECT_EQ(st, ChannelStatus::kClosed) << name(st);
    ch.close();  // twice: harmless
  });
}

TEST_P(ChannelTest, CloseWakesParkedSenders) {
  run([] {
    for (std::size_t cap : {std::size_t{0}, std::size_t{1}}) {
      green::Channel<std::string> ch(cap);
      if (cap) ch.send("buffered");
      auto thrower = green::spawn([&]() -> int {
        try {
          ch.send("blocked");
          return 0;
        } catch (const green::ChannelClosed&) {
          return 1;
        }
      });
      std::string keep = "mine";
      auto timed = green::spawn([&] { return ch.send_for(keep, 1h); });
      nap(30ms);
      ch.close();
      ASSERT_TRUE(thrower.wait_for(10s)) << "close did not wake a sender";
      EXPECT_EQ(thrower.join(), 1) << "send did not throw ChannelClosed";
      ASSERT_TRUE(timed.wait_for(10s));
      auto st = timed.join();
      EXPECT_EQ(st, ChannelStatus::kClosed) << name(st);
      EXPECT_EQ(keep, "mine") << "value touched by a send that failed with kClosed";
      // Buffered values are still delivered after close, then nullopt.
      if (cap) {
        EXPECT_EQ(ch.recv(), std::optional<std::string>("buffered"));
      }
      EXPECT_EQ(ch.recv(), std::nullopt);
      EXPECT_THROW(ch.send("late"), green::ChannelClosed);
      std::string out;
      EXPECT_EQ(ch.recv_for(out, 10ms), ChannelStatus::kClosed);
    }
  });
}

TEST_P(ChannelTest, RangeForUntilClosed) {
  run([] {
    green::Channel<int> ch(8);
    auto producer = green::spawn([&] {
      for (int i = 0; i < 1000; ++i) ch.send(i);
      ch.close();
    });
    long sum = 0;
    int n = 0, expect = 0;
    for (int v : ch) {
      EXPECT_EQ(v, expect++);
      sum += v;
      n++;
    }
    producer.join();
    EXPECT_EQ(n, 1000);
    EXPECT_EQ(sum, 999L * 1000 / 2);
    // An already closed, drained channel: the loop body never runs.
    for (int v : ch) ADD_FAILURE() << "got " << v;
  });
}

TEST_P(ChannelTest, MoveOnlyValues) {
  run([] {
    green::Channel<std::unique_ptr<std::string>> ch(0);
    auto producer = green::spawn([&] {
      for (int i = 0; i < 100; ++i) ch.send(std::make_unique<std::string>(std::to_string(i)));
      ch.close();
    });
    int i = 0;
    for (auto& p : ch) {
      ASSERT_NE(p, nullptr);
      EXPECT_EQ(*p, std::to_string(i++));
    }
    producer.join();
    EXPECT_EQ(i, 100);
  });
}

// Several producers and consumers across workers; every item must arrive exactly once.
class ChannelPipelineTest : public ::testing::TestWithParam<std::tuple<std::size_t, std::size_t>> {
};

TEST_P(ChannelPipelineTest, EveryItemExactlyOnce) {
  auto [workers, cap] = GetParam();
  constexpr int kProducers = 4, kConsumers = 4, kPerProducer = 5000;
  constexpr int kItems = kProducers * kPerProducer;
  std::vector<std::atomic<int>> seen(kItems);
  std::atomic<int> received{0};
  std::atomic<int> per_consumer_nonzero{0};
  green_test::run_green(workers, [&, cap = cap] {
    green::Channel<int> ch(cap);
    green::WaitGroup producers_done(kProducers);
    for (int p = 0; p < kProducers; ++p) {
      green::spawn([&, p] {
        for (int i = 0; i < kPerProducer; ++i) {
          ch.send(p * kPerProducer + i);
          if (i % 512 == 0) green::this_fiber::yield();
        }
        producers_done.done();
      }).detach();
    }
    std::vector<green::Fiber<int>> consumers;
    for (int c = 0; c < kConsumers; ++c) {
      consumers.push_back(green::spawn([&] {
        int n = 0;
        for (int v : ch) {
          if (v < 0 || v >= kItems) {
            ADD_FAILURE() << "bogus item " << v;
            continue;
          }
          seen[static_cast<std::size_t>(v)]++;
          received++;
          n++;
        }
        return n;
      }));
    }
    ASSERT_TRUE(producers_done.wait_for(60s)) << "producers stuck";
    ch.close();
    for (auto& c : consumers) {
      ASSERT_TRUE(green_test::join_within(c, 30000ms));
      if (c.join() > 0) per_consumer_nonzero++;
    }
  });
  EXPECT_EQ(received.load(), kItems);
  int missing = 0, dup = 0;
  for (auto& s : seen) {
    if (s.load() == 0) missing++;
    if (s.load() > 1) dup++;
  }
  EXPECT_EQ(missing, 0) << "items lost";
  EXPECT_EQ(dup, 0) << "items delivered twice";
  EXPECT_GE(per_consumer_nonzero.load(), 1);
}

INSTANTIATE_TEST_SUITE_P(WorkersCap, ChannelPipelineTest,
                         ::testing::Combine(::testing::Values(std::size_t{1}, std::size_t{2}),
                                            ::testing::Values(std::size_t{0}, std::size_t{1},
                                                              std::size_t{16},
                                                              green::Channel<int>::kUnbounded)),
                         [](const auto& info) {
                           auto cap = std::get<1>(info.param);
                           return "workers" + std::to_string(std::get<0>(info.param)) + "_cap" +
                                  (cap == green::Channel<int>::kUnbounded ? std::string("unbounded")
                                                                          : std::to_string(cap));
                         });

TEST_P(ChannelTest, PlainThreadProducerFiberConsumer) {
  run([] {
    green::Channel<int> ch(2);
    std::thread producer([&] {
      for (int i = 0; i < 2000; ++i) ch.send(i);  // parks the OS thread when full
      ch.close();
    });
    long sum = 0;
    int n = 0;
    for (int v : ch) {
      sum += v;
      n++;
    }
    producer.join();
    EXPECT_EQ(n, 2000);
    EXPECT_EQ(sum, 1999L * 2000 / 2);
  });
}

TEST_P(ChannelTest, FiberProducerPlainThreadConsumer) {
  run([] {
    green::Channel<int> ch(0);
    std::atomic<long> sum{0};
    std::atomic<bool> done{false};
    std::thread consumer([&] {
      for (int v : ch) sum += v;
      done = true;
    });
    for (int i = 0; i < 2000; ++i) ch.send(i);
    ch.close();
    EXPECT_TRUE(wait_until([&] { return done.load(); }));
    consumer.join();
    EXPECT_EQ(sum.load(), 1999L * 2000 / 2);
  });
}

}  // namespace
