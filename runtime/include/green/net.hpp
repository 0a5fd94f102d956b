// green::net: blocking-style TCP on fibers, built on io::wait and non-blocking sockets.
//
// Every failure throws std::system_error carrying the exact errno of the failing syscall
// (e.g. ECONNREFUSED, EPIPE, ETIMEDOUT for a connect timeout). Blocking calls honour
// cancellation and green::Deadline. Sockets are non-blocking and close-on-exec; writes use
// MSG_NOSIGNAL so a closed peer gives EPIPE instead of SIGPIPE.
#pragma once

#include <sys/socket.h>

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "green/export.hpp"

namespace green::net {

struct GREEN_API Address {
  sockaddr_storage storage{};
  socklen_t length = 0;

  static Address ipv4(const std::string& dotted, std::uint16_t port);  // throws on bad input
  int family() const { return storage.ss_family; }
  std::uint16_t port() const;
  std::string to_string() const;  // "127.0.0.1:8080" / "[::1]:8080"
  const sockaddr* sa() const { return reinterpret_cast<const sockaddr*>(&storage); }
};

// Resolves host/service with getaddrinfo on libuv's thread pool (uv_getaddrinfo); the fiber
// parks meanwhile. Throws std::system_error (category: green::net::resolve_category()) with
// the EAI_* code on failure.
GREEN_API std::vector<Address> resolve(const std::string& host, const std::string& service,
                                       int socktype = SOCK_STREAM);
GREEN_API const std::error_category& resolve_category() noexcept;

class GREEN_API TcpStream {
 public:
  TcpStream() = default;
  explicit TcpStream(int fd) noexcept : fd_(fd) {}  // adopts a connected socket
  TcpStream(TcpStream&& o) noexcept;
  TcpStream& operator=(TcpStream&& o) noexcept;
  ~TcpStream();

  // Connects, waiting at most `timeout` (ETIMEDOUT after it).
  static TcpStream connect(const Address& addr,
                           std::chrono::nanoseconds timeout = std::chrono::nanoseconds::max());
  // Resolves host and tries each address in turn.
  static TcpStream connect(const std::string& host, std::uint16_t port,
                           std::chrono::nanoseconds timeout = std::chrono::nanoseconds::max());

  // Reads at most n bytes; returns 0 at end of stream.
  std::size_t read(void* buf, std::size_t n);
  // Reads exactly n bytes unless the stream ends first; returns the count read.
  std::size_t read_exact(void* buf, std::size_t n);
  // Writes at most n bytes (at least 1 unless n == 0).
  std::size_t write(const void* buf, std::size_t n);
  // Writes all n bytes.
  void write_all(const void* buf, std::size_t n);
  void write_all(const std::string& s) { write_all(s.data(), s.size()); }
  void shutdown(int how = SHUT_WR);
  void close() noexcept;  // wakes fibers blocked on this socket; idempotent
  void set_nodelay(bool on);

  int fd() const noexcept { return fd_; }
  bool is_open() const noexcept { return fd_ >= 0; }
  Address peer_address() const;
  Address local_address() const;
  // Gives up ownership without closing.
  int release() noexcept;

 private:
  int fd_ = -1;
  bool maybe_readable_ = true;  // false after a short read: wait before the next read(2)
};

class GREEN_API TcpListener {
 public:
  TcpListener() = default;
  TcpListener(TcpListener&& o) noexcept;
  TcpListener& operator=(TcpListener&& o) noexcept;
  ~TcpListener();

  // Binds and listens (SO_REUSEADDR). Port 0 picks a free port; see port().
  static TcpListener bind(const std::string& host, std::uint16_t port, int backlog = 4096);
  static TcpListener bind(const Address& addr, int backlog = 4096);

  TcpStream accept();
  std::uint16_t port() const;
  Address local_address() const;
  void close() noexcept;
  int fd() const noexcept { return fd_; }

 private:
  int fd_ = -1;
};

}  // namespace green::net
