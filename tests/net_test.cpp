// green::net: TCP on 127.0.0.1 — listen/accept/connect, read/read_exact/write_all, shutdown,
// close, a 32 MiB checksummed echo, exact errnos (ECONNREFUSED, ETIMEDOUT, EPIPE/ECONNRESET,
// EADDRINUSE, EBADF), deadlines and cancellation, and resolve().
#include <arpa/inet.h>
#include <fcntl.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstdint>
#include <cstring>
#include <string>
#include <system_error>
#include <thread>
#include <utility>
#include <vector>

#include "green/green.hpp"
#include "support/green_test.hpp"

namespace {

using namespace std::chrono_literals;
using green::net::Address;
using green::net::TcpListener;
using green::net::TcpStream;
using green_test::Clock;
using green_test::ms_since;
using green_test::nap;
using green_test::wait_until;

GREEN_TEST_WORKERS_SUITE(NetTest);

// Returns the errno carried by the std::system_error `fn` throws, or -1 (with a failure).
template <class F>
int errno_of(F fn) {
  try {
    fn();
  } catch (const std::system_error& e) {
    return e.code().value();
  } catch (const std::exception& e) {
    ADD_FAILURE() << "expected std::system_error, got: " << e.what();
    return -1;
  }
  ADD_FAILURE() << "expected std::system_error, nothing thrown";
  return -1;
}

// A port on 127.0.0.1 with nothing listening (bound then closed).
std::uint16_t closed_port() {
  auto l = TcpListener::bind("127.0.0.1", 0);
  auto p = l.port();
  l.close();
  return p;
}

bool is_loopback(const Address& a) {
  if (a.family() == AF_INET) {
    auto* sin = reinterpret_cast<const sockaddr_in*>(&a.storage);
    return (ntohl(sin->sin_addr.s_addr) >> 24) == 127;
  }
  if (a.family() == AF_INET6) {
    auto* sin6 = reinterpret_cast<const sockaddr_in6*>(&a.storage);
    return IN6_IS_ADDR_LOOPBACK(&sin6->sin6_addr) || IN6_IS_ADDR_V4MAPPED(&sin6->sin6_addr);
  }
  return false;
}

TEST(NetAddress, Ipv4) {
  auto a = Address::ipv4("127.0.0.1", 8080);
  EXPECT_EQ(a.family(), AF_INET);
  EXPECT_EQ(a.port(), 8080);
  EXPECT_EQ(a.to_string(), "127.0.0.1:8080");
  EXPECT_EQ(a.length, sizeof(sockaddr_in));
  EXPECT_ANY_THROW(Address::ipv4("300.1.1.1", 1));
  EXPECT_ANY_THROW(Address::ipv4("localhost", 1));
  EXPECT_ANY_THROW(Address::ipv4("", 1));
}

TEST_P(NetTest, ListenerOnEphemeralPort) {
  run([] {
    auto l = TcpListener::bind("127.0.0.1", 0);
    EXPECT_GE(l.fd(), 0);
    EXPECT_NE(l.port(), 0);
    EXPECT_EQ(l.local_address().port(), l.port());
    EXPECT_EQ(l.local_address().to_string(), "127.0.0.1:" + std::to_string(l.port()));
    // The same port cannot be bound twice.
    auto port = l.port();
    EXPECT_EQ(errno_of([&] { TcpListener::bind("127.0.0.1", port); }), EADDRINUSE);
    l.close();
    EXPECT_EQ(l.fd(), -1);
    l.close();  // idempotent
  });
}

TEST_P(NetTest, EchoRoundTrip) {
  run([] {
    auto l = TcpListener::bind(Address::ipv4("127.0.0.1", 0));
    auto server = green::spawn([&] {
      TcpStream s = l.accept();
      EXPECT_TRUE(s.is_open());
      char buf[5];
      EXPECT_EQ(s.read_exact(buf, 5), 5u);
      s.write_all(buf, 5);
      return s.peer_address().port();
    });
    TcpStream c = TcpStream::connect(Address::ipv4("127.0.0.1", l.port()), 10s);
    ASSERT_TRUE(c.is_open());
    c.set_nodelay(true);
    EXPECT_EQ(c.peer_address().port(), l.port());
    EXPECT_EQ(c.peer_address().to_string(), "127.0.0.1:" + std::to_string(l.port()));
    c.write_all(std::string("hello"));
    char buf[5];
    EXPECT_EQ(c.read_exact(buf, 5), 5u);
    EXPECT_EQ(std::string(buf, 5), "hello");
    EXPECT_EQ(server.join(), c.local_address().port());
    EXPECT_EQ(c.write(buf, 0), 0u);
  });
}

TEST_P(NetTest, ShutdownHalfCloseAndReadAfterPeerClose) {
  run([] {
    auto l = TcpListener::bind("127.0.0.1", 0);
    auto server = green::spawn([&] {
      TcpStream s = l.accept();
      std::string got;
      char buf[64];
      for (;;) {  // read until the client's FIN
        auto n = s.read(buf, sizeof buf);
        if (n == 0) break;
        got.append(buf, n);
      }
      s.write_all("reply:" + got);
      s.close();
      EXPECT_FALSE(s.is_open());
    });
    TcpStream c = TcpStream::connect(Address::ipv4("127.0.0.1", l.port()));
    c.write_all(std::string("abc"));
    c.shutdown(SHUT_WR);
    std::string reply;
    char buf[64];
    for (int i = 0; i < 1000; ++i) {
      auto n = c.read(buf, sizeof buf);
      if (n == 0) break;
      reply.append(buf, n);
    }
    EXPECT_EQ(reply, "reply:abc");
    EXPECT_EQ(c.read(buf, sizeof buf), 0u) << "read after peer close must keep returning 0";
    server.join();
  });
}

TEST_P(NetTest, ReadExactStopsAtEndOfStream) {
  run([] {
    auto l = TcpListener::bind("127.0.0.1", 0);
    auto server = green::spawn([&] {
      TcpStream s = l.accept();
      s.write_all(std::string("12345"));
    });  // closes on return
    TcpStream c = TcpStream::connect(Address::ipv4("127.0.0.1", l.port()));
    char buf[16];
    EXPECT_EQ(c.read_exact(buf, sizeof buf), 5u);
    EXPECT_EQ(std::string(buf, 5), "12345");
    server.join();
  });
}

std::uint64_t xorshift(std::uint64_t& s) {
  s ^= s << 13;
  s ^= s >> 7;
  s ^= s << 17;
  return s;
}

constexpr std::size_t kBytes = std::size_t{32} << 20;

TEST_P(NetTest, LargeTransferWithChecksums) {
  run([] {
    auto l = TcpListener::bind("127.0.0.1", 0);
    // Echo server: reads and writes back on one fiber.
    auto server = green::spawn([&] {
      TcpStream s = l.accept();
      std::vector<char> buf(1 << 16);
      std::size_t total = 0;
      for (;;) {
        auto n = s.read(buf.data(), buf.size());
        if (n == 0) break;
        s.write_all(buf.data(), n);
        total += n;
      }
      s.shutdown(SHUT_WR);
      return total;
    });
    TcpStream c = TcpStream::connect(Address::ipv4("127.0.0.1", l.port()));
    auto t0 = Clock::now();
    // Writer and reader on separate fibers, on the same socket.
    auto writer = green::spawn([&] {
      std::uint64_t seed = 0x9E3779B97F4A7C15ull, sum = 0;
      std::vector<std::uint64_t> chunk(8192);  // 64 KiB
      for (std::size_t sent = 0; sent < kBytes; sent += chunk.size() * 8) {
        for (auto& w : chunk) {
          w = xorshift(seed);
          sum += w * 31 + (sum >> 3);
        }
        c.write_all(chunk.data(), chunk.size() * 8);
      }
      c.shutdown(SHUT_WR);
      return sum;
    });
    auto reader = green::spawn([&] {
      std::uint64_t sum = 0;
      std::vector<std::uint64_t> chunk(8192);
      std::size_t got = 0;
      while (got < kBytes) {
        auto n = c.read_exact(chunk.data(), chunk.size() * 8);
        if (n == 0) break;
        EXPECT_EQ(n % 8, 0u);
        for (std::size_t i = 0; i < n / 8; ++i) sum += chunk[i] * 31 + (sum >> 3);
        got += n;
        if (n < chunk.size() * 8) break;
      }
      EXPECT_EQ(got, kBytes);
      return sum;
    });
    ASSERT_TRUE(writer.wait_for(120s)) << "writer stuck";
    ASSERT_TRUE(reader.wait_for(120s)) << "reader stuck";
    auto sent_sum = writer.join();
    auto recv_sum = reader.join();
    EXPECT_EQ(sent_sum, recv_sum) << "data corrupted in transit";
    EXPECT_EQ(server.join(), kBytes);
    std::printf("[ info ] 32 MiB echoed in %.0f ms\n", ms_since(t0));
  });
}

TEST_P(NetTest, ManyConcurrentClients) {
  run([] {
    auto l = TcpListener::bind("127.0.0.1", 0);
    constexpr int kClients = 100;
    auto acceptor = green::spawn([&] {
      std::vector<green::Fiber<void>> handlers;
      for (int i = 0; i < kClients; ++i) {
        handlers.push_back(green::spawn(
            [](TcpStream s) {
              char buf[64];
              auto n = s.read(buf, sizeof buf);
              if (n > 0) s.write_all(buf, n);
            },
            l.accept()));
      }
      for (auto& h : handlers) h.join();
    });
    std::atomic<int> ok{0};
    std::vector<green::Fiber<void>> clients;
    for (int i = 0; i < kClients; ++i) {
      clients.push_back(green::spawn([&, i] {
        TcpStream c = TcpStream::connect(Address::ipv4("127.0.0.1", l.port()), 10s);
        std::string msg = "client-" + std::to_string(i);
        c.write_all(msg);
        std::string back(msg.size(), '\0');
        if (c.read_exact(back.data(), back.size()) == msg.size() && back == msg) ok++;
      }));
    }
    for (auto& c : clients) ASSERT_TRUE(green_test::join_within(c, 30000ms));
    ASSERT_TRUE(green_test::join_within(acceptor, 30000ms));
    EXPECT_EQ(ok.load(), kClients);
  });
}

TEST_P(NetTest, ConnectToClosedPortIsRefused) {
  run([] {
    auto port = closed_port();
    EXPECT_EQ(errno_of([&] { TcpStream::connect(Address::ipv4("127.0.0.1", port), 5s); }),
              ECONNREFUSED);
    EXPECT_EQ(errno_of([&] { TcpStream::connect(Address::ipv4("127.0.0.1", port)); }),
              ECONNREFUSED);
  });
}

TEST_P(NetTest, ConnectByHostNameTriesEachAddress) {
  run([] {
    auto l = TcpListener::bind("127.0.0.1", 0);
    auto server = green::spawn([&] { return l.accept().is_open(); });
    // "localhost" may resolve to ::1 first, which refuses; 127.0.0.1 must then be tried.
    TcpStream c = TcpStream::connect("localhost", l.port(), 10s);
    EXPECT_TRUE(c.is_open());
    EXPECT_EQ(c.peer_address().port(), l.port());
    EXPECT_TRUE(server.join());
    auto port = closed_port();
    EXPECT_EQ(errno_of([&] { TcpStream::connect("127.0.0.1", port, 5s); }), ECONNREFUSED);
  });
}

// Fills a listener's accept queue (backlog 1, never accepted) so that further SYNs are dropped
// and a connect hangs. Returns the held connections.
std::vector<TcpStream> fill_accept_queue(TcpListener& l, bool* hung) {
  std::vector<TcpStream> held;
  *hung = false;
  for (int i = 0; i < 16; ++i) {
    try {
      held.push_back(TcpStream::connect(Address::ipv4("127.0.0.1", l.port()), 300ms));
    } catch (const std::system_error& e) {
      if (e.code().value() == ETIMEDOUT) {
        *hung = true;
        break;
      }
      throw;
    }
  }
  return held;
}

TEST_P(NetTest, ConnectTimeoutGivesEtimedout) {
  run([] {
    auto l = TcpListener::bind("127.0.0.1", 0, 1);
    bool hung = false;
    auto held = fill_accept_queue(l, &hung);
    ASSERT_TRUE(hung) << "could not make connect hang (accept queue never filled)";
    auto t0 = Clock::now();
    EXPECT_EQ(errno_of([&] { TcpStream::connect(Address::ipv4("127.0.0.1", l.port()), 200ms); }),
              ETIMEDOUT);
    double ms = ms_since(t0);
    EXPECT_GE(ms, 199.0);
    EXPECT_LT(ms, 5000.0);
    // Under a Deadline instead: green::TimedOut.
    t0 = Clock::now();
    bool timed_out = false;
    try {
      green::Deadline d(100ms);
      TcpStream::connect(Address::ipv4("127.0.0.1", l.port()));
    } catch (const green::TimedOut&) {
      timed_out = true;
    } catch (const std::system_error& e) {
      ADD_FAILURE() << "expected TimedOut, got " << e.what();
    }
    EXPECT_TRUE(timed_out);
    EXPECT_LT(ms_since(t0), 5000.0);
  });
}

TEST_P(NetTest, WriteToResetPeerGivesEpipeOrEconnreset) {
  run([] {
    auto l = TcpListener::bind("127.0.0.1", 0);
    green::Event connected;
    auto server = green::spawn([&] {
      TcpStream s = l.accept();
      EXPECT_TRUE(connected.wait_for(10s));  // RST only after connect() returned
      linger lg{1, 0};                       // close with RST
      EXPECT_EQ(::setsockopt(s.fd(), SOL_SOCKET, SO_LINGER, &lg, sizeof lg), 0);
      s.close();
    });
    TcpStream c = TcpStream::connect(Address::ipv4("127.0.0.1", l.port()));
    connected.set();
    server.join();
    nap(20ms);
    std::vector<char> data(4096, 'w');
    int err = 0;
    for (int i = 0; i < 1000 && err == 0; ++i) {
      try {
        c.write_all(data.data(), data.size());
        nap(1ms);
      } catch (const std::system_error& e) {
        err = e.code().value();
      }
    }
    EXPECT_TRUE(err == EPIPE || err == ECONNRESET) << "got errno " << err;
  });
}

TEST_P(NetTest, ReadAfterResetThrowsOrReturnsZero) {
  run([] {
    auto l = TcpListener::bind("127.0.0.1", 0);
    green::Event connected;
    auto server = green::spawn([&] {
      TcpStream s = l.accept();
      EXPECT_TRUE(connected.wait_for(10s));
      linger lg{1, 0};
      EXPECT_EQ(::setsockopt(s.fd(), SOL_SOCKET, SO_LINGER, &lg, sizeof lg), 0);
      s.close();
    });
    TcpStream c = TcpStream::connect(Address::ipv4("127.0.0.1", l.port()));
    connected.set();
    server.join();
    char buf[8];
    try {
      EXPECT_EQ(c.read(buf, sizeof buf), 0u);
    } catch (const std::system_error& e) {
      EXPECT_EQ(e.code().value(), ECONNRESET) << e.what();
    }
  });
}

TEST_P(NetTest, ReadHonoursDeadlineAndCancel) {
  run([] {
    auto l = TcpListener::bind("127.0.0.1", 0);
    green::Event done;
    auto server = green::spawn([&] {
      TcpStream s = l.accept();
      done.wait_for(30s);  // keep the connection open, silent
    });
    TcpStream c = TcpStream::connect(Address::ipv4("127.0.0.1", l.port()));
    char buf[8];
    auto t0 = Clock::now();
    {
      green::Deadline d(50ms);
      EXPECT_THROW(c.read(buf, sizeof buf), green::TimedOut);
    }
    EXPECT_GE(Clock::now() - t0, 50ms);
    auto reader = green::spawn([&]() -> int {
      try {
        c.read(buf, sizeof buf);
        return 0;
      } catch (const green::Cancelled&) {
        return 1;
      }
    });
    nap(30ms);
    reader.cancel();
    ASSERT_TRUE(reader.wait_for(10s));
    EXPECT_EQ(reader.join(), 1);
    done.set();
    server.join();
  });
}

TEST_P(NetTest, CloseWakesBlockedReaderAndAcceptor) {
  run([] {
    auto l = TcpListener::bind("127.0.0.1", 0);
    auto server = green::spawn([&] {
      TcpStream s = l.accept();
      green::this_fiber::sleep_for(10s);  // silent; cancelled below
    });
    TcpStream c = TcpStream::connect(Address::ipv4("127.0.0.1", l.port()));
    auto reader = green::spawn([&]() -> int {
      char buf[8];
      try {
        c.read(buf, sizeof buf);
        return 0;
      } catch (const std::system_error& e) {
        return e.code().value();
      }
    });
    nap(30ms);
    EXPECT_FALSE(reader.done());
    c.close();
    ASSERT_TRUE(reader.wait_for(10s)) << "TcpStream::close did not wake the reader";
    EXPECT_EQ(reader.join(), EBADF);
    server.cancel();
    try {
      server.join();
    } catch (const green::Cancelled&) {
    }

    auto acceptor = green::spawn([&]() -> int {
      try {
        l.accept();
        return 0;
      } catch (const std::system_error& e) {
        return e.code().value();
      }
    });
    nap(30ms);
    EXPECT_FALSE(acceptor.done());
    l.close();
    ASSERT_TRUE(acceptor.wait_for(10s)) << "TcpListener::close did not wake accept";
    EXPECT_NE(acceptor.join(), 0);
  });
}

TEST_P(NetTest, MoveAndRelease) {
  run([] {
    auto l = TcpListener::bind("127.0.0.1", 0);
    auto server = green::spawn([&] { return l.accept(); });
    TcpStream c = TcpStream::connect(Address::ipv4("127.0.0.1", l.port()));
    TcpStream s = server.join();
    int fd = c.fd();
    TcpStream moved(std::move(c));
    EXPECT_FALSE(c.is_open());  // NOLINT(bugprone-use-after-move)
    EXPECT_EQ(moved.fd(), fd);
    TcpStream assigned;
    assigned = std::move(moved);
    EXPECT_EQ(assigned.fd(), fd);
    int raw = assigned.release();
    EXPECT_EQ(raw, fd);
    EXPECT_FALSE(assigned.is_open());
    EXPECT_NE(::fcntl(raw, F_GETFD), -1) << "release() closed the socket";
    TcpStream adopted(raw);
    adopted.write_all(std::string("z"));
    char b = 0;
    EXPECT_EQ(s.read(&b, 1), 1u);
    EXPECT_EQ(b, 'z');
    TcpListener l2(std::move(l));
    EXPECT_EQ(l.fd(), -1);  // NOLINT(bugprone-use-after-move)
    EXPECT_GE(l2.fd(), 0);
  });
}

TEST_P(NetTest, SocketsAreCloexecAndNonblocking) {
  run([] {
    auto l = TcpListener::bind("127.0.0.1", 0);
    auto server = green::spawn([&] { return l.accept(); });
    TcpStream c = TcpStream::connect(Address::ipv4("127.0.0.1", l.port()));
    TcpStream s = server.join();
    for (int fd : {l.fd(), c.fd(), s.fd()}) {
      EXPECT_TRUE(::fcntl(fd, F_GETFD) & FD_CLOEXEC) << fd;
      EXPECT_TRUE(::fcntl(fd, F_GETFL) & O_NONBLOCK) << fd;
    }
  });
}

TEST_P(NetTest, ClientOnPlainThread) {
  run([] {
    auto l = TcpListener::bind("127.0.0.1", 0);
    auto port = l.port();
    auto server = green::spawn([&] {
      TcpStream s = l.accept();
      char buf[4];
      if (s.read_exact(buf, 4) == 4) s.write_all(buf, 4);
    });
    std::atomic<int> result{0};
    std::thread t([&] {
      try {
        TcpStream c = TcpStream::connect(Address::ipv4("127.0.0.1", port), 10s);
        c.write_all(std::string("ping"));
        char buf[4];
        result = c.read_exact(buf, 4) == 4 && std::string(buf, 4) == "ping" ? 1 : 2;
      } catch (...) {
        result = 3;
      }
    });
    EXPECT_TRUE(wait_until([&] { return result.load() != 0; }));
    t.join();
    EXPECT_EQ(result.load(), 1);
    server.join();
  });
}

TEST_P(NetTest, ResolveLocalhost) {
  run([] {
    auto addrs = green::net::resolve("localhost", "80");
    ASSERT_FALSE(addrs.empty());
    for (const auto& a : addrs) {
      EXPECT_TRUE(is_loopback(a)) << a.to_string();
      EXPECT_EQ(a.port(), 80) << a.to_string();
    }
    auto numeric = green::net::resolve("127.0.0.1", "8081");
    ASSERT_FALSE(numeric.empty());
    EXPECT_EQ(numeric[0].to_string(), "127.0.0.1:8081");
  });
}

TEST_P(NetTest, ResolveFailuresThrowWithResolveCategory) {
  run([] {
    using Query = std::pair<const char*, const char*>;
    for (auto [host, service] :
         {Query{"no-such-host.invalid", "80"}, Query{"localhost", "no-such-service-xyz"}}) {
      try {
        green::net::resolve(host, service);
        ADD_FAILURE() << "resolve(" << host << ", " << service << ") did not throw";
      } catch (const std::system_error& e) {
        EXPECT_EQ(&e.code().category(), &green::net::resolve_category()) << e.what();
        EXPECT_NE(e.code().value(), 0);
      }
    }
  });
}

TEST_P(NetTest, ResolveDoesNotBlockOtherFibers) {
  run([] {
    std::atomic<bool> ran{false};
    auto other = green::spawn([&] { ran = true; });
    auto addrs = green::net::resolve("localhost", "80");
    other.join();
    EXPECT_TRUE(ran.load());
    EXPECT_FALSE(addrs.empty());
  });
}

}  // namespace
