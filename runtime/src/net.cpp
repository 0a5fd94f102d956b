// green::net: TCP on non-blocking sockets + io::wait. Every syscall is made inside a
// ShimBypass (under the shim, these are the real libc calls) and retried after a readiness
// wait on EAGAIN; the errno of a failing call is thrown unchanged in std::system_error.
//
// Read path: read(2); on EAGAIN wait readable and retry. After a short read the socket is
// most likely drained, so the next read() waits first instead of paying for an EAGAIN
// syscall (the poller remembers an edge nobody consumed and hang-ups are sticky, so waiting
// on a socket that is readable after all returns at once: correct either way).
//
// The data path (read, send) uses raw_syscall, not libc's read/send: those are cancellation
// points whose wrappers cost two atomic read-modify-writes on the worker thread's descriptor
// (__pthread_enable/disable_asynccancel, ~55 instructions per call, a third of green::net's
// user-space cost per echo round trip). A worker thread is never pthread_cancel'ed, so they buy
// nothing here; the raw syscall is also never a shim hook, so no ShimBypass is needed.
#include "green/net.hpp"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <stdexcept>
#include <string>
#include <system_error>
#include <utility>

#include "green/detail/hooks.hpp"
#include "green/detail/raw_syscall.hpp"
#include "green/io.hpp"

namespace green::net {

namespace {

using detail::ShimBypass;

[[noreturn]] void throw_errno(int e, const char* what) {
  throw std::system_error(e, std::generic_category(), what);
}

// Waits for `events`; translates the outcome into the exception the caller should see.
// Returns false on timeout. Every caller has just seen EAGAIN/EINPROGRESS or a short read
// (the socket was drained): kAfterEagain, no readiness probe (io.hpp).
bool wait_io(int fd, unsigned events, detail::TimePoint deadline) {
  switch (io::wait(fd, events | io::kAfterEagain, deadline)) {
    case io::WaitResult::kReady:
      return true;
    case io::WaitResult::kTimeout:
      return false;
    case io::WaitResult::kCancelled:
      detail::throw_if_interrupted(detail::WakeReason::kCancelled);
      break;
    case io::WaitResult::kDeadline:
      detail::throw_if_interrupted(detail::WakeReason::kDeadline);
      break;
    case io::WaitResult::kInterrupted:
      return true;  // only the shim interrupts: look again
    case io::WaitResult::kClosed:
      break;
  }
  throw_errno(EBADF, "green::net: socket closed while waiting");
}

int make_socket(int family) {
  ShimBypass b;
  int fd = ::socket(family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) throw_errno(errno, "green::net: socket");
  io::forget(fd);  // a new file under this number: drop registrations of an earlier holder
  return fd;
}

}  // namespace

// --- Address ----------------------------------------------------------------------------------

Address Address::ipv4(const std::string& dotted, std::uint16_t port) {
  Address a;
  auto* sin = reinterpret_cast<sockaddr_in*>(&a.storage);
  sin->sin_family = AF_INET;
  sin->sin_port = htons(port);
  if (inet_pton(AF_INET, dotted.c_str(), &sin->sin_addr) != 1) {
    throw std::invalid_argument("green::net::Address::ipv4: not an IPv4 address: " + dotted);
  }
  a.length = sizeof(sockaddr_in);
  return a;
}

std::uint16_t Address::port() const {
  if (storage.ss_family == AF_INET)
    return ntohs(reinterpret_cast<const sockaddr_in*>(&storage)->sin_port);
  if (storage.ss_family == AF_INET6)
    return ntohs(reinterpret_cast<const sockaddr_in6*>(&storage)->sin6_port);
  return 0;
}

std::string Address::to_string() const {
  char buf[INET6_ADDRSTRLEN] = {};
  if (storage.ss_family == AF_INET) {
    inet_ntop(AF_INET, &reinterpret_cast<const sockaddr_in*>(&storage)->sin_addr, buf, sizeof buf);
    return std::string(buf) + ":" + std::to_string(port());
  }
  if (storage.ss_family == AF_INET6) {
    inet_ntop(AF_INET6, &reinterpret_cast<const sockaddr_in6*>(&storage)->sin6_addr, buf,
              sizeof buf);
    // Built with append: GCC 12's -Wrestrict misfires on "[" + std::string(...) at -O3.
    std::string out("[");
    out.append(buf).append("]:").append(std::to_string(port()));
    return out;
  }
  return "?";
}

// --- TcpStream --------------------------------------------------------------------------------

TcpStream::TcpStream(TcpStream&& o) noexcept
    : fd_(std::exchange(o.fd_, -1)), maybe_readable_(o.maybe_readable_) {}

TcpStream& TcpStream::operator=(TcpStream&& o) noexcept {
  if (this != &o) {
    close();
    fd_ = std::exchange(o.fd_, -1);
    maybe_readable_ = o.maybe_readable_;
  }
  return *this;
}

TcpStream::~TcpStream() {
  close();
}

void TcpStream::close() noexcept {
  if (fd_ >= 0) {
    ShimBypass b;
    io::close(std::exchange(fd_, -1));
  }
}

int TcpStream::release() noexcept {
  return std::exchange(fd_, -1);
}

TcpStream TcpStream::connect(const Address& addr, std::chrono::nanoseconds timeout) {
  auto deadline = timeout == std::chrono::nanoseconds::max() ? detail::kNoDeadline
                                                             : detail::deadline_after(timeout);
  TcpStream s(make_socket(addr.family()));
  int r;
  {
    ShimBypass b;
    r = ::connect(s.fd_, addr.sa(), addr.length);
  }
  if (r == 0) return s;
  if (errno != EINPROGRESS && errno != EINTR) throw_errno(errno, "green::net::TcpStream::connect");
  if (!wait_io(s.fd_, io::kWritable, deadline)) {
    throw_errno(ETIMEDOUT, "green::net::TcpStream::connect");
  }
  int err = 0;
  socklen_t len = sizeof err;
  {
    ShimBypass b;
    if (::getsockopt(s.fd_, SOL_SOCKET, SO_ERROR, &err, &len) != 0) err = errno;
  }
  if (err != 0) throw_errno(err, "green::net::TcpStream::connect");
  return s;
}

TcpStream TcpStream::connect(const std::string& host, std::uint16_t port,
                             std::chrono::nanoseconds timeout) {
  auto addrs = resolve(host, std::to_string(port));
  std::system_error last(std::make_error_code(std::errc::address_not_available),
                         "green::net::TcpStream::connect: no address for " + host);
  for (const Address& a : addrs) {
    try {
      return connect(a, timeout);
    } catch (const std::system_error& e) {
      last = e;
    }
  }
  throw last;
}

std::size_t TcpStream::read(void* buf, std::size_t n) {
  if (n == 0) return 0;
  for (;;) {
    if (!maybe_readable_) {
      wait_io(fd_, io::kReadable, detail::kNoDeadline);
      maybe_readable_ = true;
    }
    ssize_t r = detail::raw_syscall(SYS_read, fd_, detail::sc_arg(buf), static_cast<long>(n));
    if (r >= 0) {
      if (static_cast<std::size_t>(r) < n) maybe_readable_ = false;
      return static_cast<std::size_t>(r);
    }
    if (errno == EAGAIN || errno == EWOULDBLOCK) {
      maybe_readable_ = false;
      continue;
    }
    if (errno == EINTR) continue;
    throw_errno(errno, "green::net::TcpStream::read");
  }
}

std::size_t TcpStream::read_exact(void* buf, std::size_t n) {
  auto* p = static_cast<char*>(buf);
  std::size_t got = 0;
  while (got < n) {
    std::size_t r = read(p + got, n - got);
    if (r == 0) break;
    got += r;
  }
  return got;
}

std::size_t TcpStream::write(const void* buf, std::size_t n) {
  if (n == 0) return 0;
  for (;;) {
    ssize_t r = detail::raw_syscall(SYS_sendto, fd_, detail::sc_arg(buf), static_cast<long>(n),
                                    MSG_NOSIGNAL, 0, 0);
    if (r >= 0) return static_cast<std::size_t>(r);
    if (errno == EAGAIN || errno == EWOULDBLOCK) {
      wait_io(fd_, io::kWritable, detail::kNoDeadline);
      continue;
    }
    if (errno == EINTR) continue;
    throw_errno(errno, "green::net::TcpStream::write");
  }
}

void TcpStream::write_all(const void* buf, std::size_t n) {
  auto* p = static_cast<const char*>(buf);
  while (n > 0) {
    std::size_t w = write(p, n);
    p += w;
    n -= w;
  }
}

void TcpStream::shutdown(int how) {
  ShimBypass b;
  if (::shutdown(fd_, how) != 0) throw_errno(errno, "green::net::TcpStream::shutdown");
}

void TcpStream::set_nodelay(bool on) {
  int v = on ? 1 : 0;
  ShimBypass b;
  if (::setsockopt(fd_, IPPROTO_TCP, TCP_NODELAY, &v, sizeof v) != 0)
    throw_errno(errno, "green::net::TcpStream::set_nodelay");
}

namespace {
Address sockname(int fd, bool peer) {
  Address a;
  a.length = sizeof a.storage;
  ShimBypass b;
  int r = peer ? ::getpeername(fd, reinterpret_cast<sockaddr*>(&a.storage), &a.length)
               : ::getsockname(fd, reinterpret_cast<sockaddr*>(&a.storage), &a.length);
  if (r != 0) throw_errno(errno, peer ? "green::net: getpeername" : "green::net: getsockname");
  return a;
}
}  // namespace

Address TcpStream::peer_address() const {
  return sockname(fd_, true);
}
Address TcpStream::local_address() const {
  return sockname(fd_, false);
}

// --- TcpListener ------------------------------------------------------------------------------

TcpListener::TcpListener(TcpListener&& o) noexcept : fd_(std::exchange(o.fd_, -1)) {}

TcpListener& TcpListener::operator=(TcpListener&& o) noexcept {
  if (this != &o) {
    close();
    fd_ = std::exchange(o.fd_, -1);
  }
  return *this;
}

TcpListener::~TcpListener() {
  close();
}

void TcpListener::close() noexcept {
  if (fd_ >= 0) {
    ShimBypass b;
    io::close(std::exchange(fd_, -1));
  }
}

TcpListener TcpListener::bind(const Address& addr, int backlog) {
  TcpListener l;
  l.fd_ = make_socket(addr.family());
  int one = 1;
  ShimBypass b;
  ::setsockopt(l.fd_, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  if (::bind(l.fd_, addr.sa(), addr.length) != 0)
    throw_errno(errno, "green::net::TcpListener::bind");
  if (::listen(l.fd_, backlog) != 0) throw_errno(errno, "green::net::TcpListener::listen");
  return l;
}

TcpListener TcpListener::bind(const std::string& host, std::uint16_t port, int backlog) {
  Address a;
  try {
    a = Address::ipv4(host, port);
  } catch (const std::invalid_argument&) {
    auto addrs = resolve(host, std::to_string(port));
    if (addrs.empty()) throw_errno(EADDRNOTAVAIL, "green::net::TcpListener::bind");
    a = addrs.front();
  }
  return bind(a, backlog);
}

TcpStream TcpListener::accept() {
  for (;;) {
    int fd;
    {
      ShimBypass b;
      fd = ::accept4(fd_, nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC);
    }
    if (fd >= 0) {
      io::forget(fd);  // see make_socket
      return TcpStream(fd);
    }
    switch (errno) {
      case EAGAIN:
#if EAGAIN != EWOULDBLOCK
      case EWOULDBLOCK:
#endif
        wait_io(fd_, io::kReadable, detail::kNoDeadline);
        continue;
      case EINTR:
      case ECONNABORTED:
        continue;
      default:
        throw_errno(errno, "green::net::TcpListener::accept");
    }
  }
}

std::uint16_t TcpListener::port() const {
  return local_address().port();
}
Address TcpListener::local_address() const {
  return sockname(fd_, false);
}

}  // namespace green::net
