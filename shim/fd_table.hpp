// Per-fd state the shim keeps to give blocking semantics on non-blocking kernel fds.
//
// Owns: one FdEntry per fd number below capacity() (an mmap'd array, zero pages until used).
//
// What an entry records:
//   kind         how the shim treats the fd: kManaged (socket/pipe/FIFO/anon-inode fd it may
//                switch to O_NONBLOCK and wait on with io::wait) or kPassthrough (regular file,
//                directory, tty and other character device, block device; and every fd that
//                was already open when the process started -- stdio, inherited pipes -- except
//                sockets above 2: hazard H2, never flip O_NONBLOCK on a description the shell or
//                a parent shares). kUnknown: not classified yet (classified lazily with fstat on
//                first use: fds created by calls the shim does not see, hazard H17).
//   user_nb      the program asked for O_NONBLOCK (fcntl F_SETFL, FIONBIO, SOCK_NONBLOCK,
//                O_NONBLOCK in pipe2/accept4): such fds never park; the real call's EAGAIN is
//                returned, exactly as without the shim.
//   kernel_nb    the shim set O_NONBLOCK on the description itself; F_GETFL hides it.
//   waited       io::wait registered the fd with a worker's loop: close() must go through
//                green::io::close so waiters wake and the registration is dropped.
//   stream       SOCK_STREAM/SOCK_SEQPACKET or pipe: writes of a blocking caller loop until
//                everything is written (what a blocking write(2) does).
//   rcv/snd_ns   SO_RCVTIMEO / SO_SNDTIMEO in nanoseconds (0: none), applied to fiber waits.
//
// Threads: any thread reads and writes entries with relaxed atomics. Per fd, the program
// itself serializes creation, close and reuse (the same races exist without the shim); the
// shim clears an entry *before* the real close so a concurrent reuse of the number cannot have
// its fresh entry wiped afterwards.
#pragma once

#include <atomic>
#include <cstdint>

namespace green::shim::fds {

enum Kind : std::uint32_t { kUnknown = 0, kManaged = 1, kPassthrough = 2 };
enum Bits : std::uint32_t {
  kKindMask = 3,
  kUserNonblock = 1u << 2,
  kKernelNonblock = 1u << 3,
  kWaited = 1u << 4,
  kStream = 1u << 5,
  kSocket = 1u << 6,
  kInherited = 1u << 7,
};

struct FdEntry {
  std::atomic<std::uint32_t> bits{0};
  std::atomic<std::int64_t> rcv_ns{0};
  std::atomic<std::int64_t> snd_ns{0};

  std::uint32_t load() const noexcept { return bits.load(std::memory_order_relaxed); }
  void set(std::uint32_t b) noexcept { bits.fetch_or(b, std::memory_order_relaxed); }
  void clear(std::uint32_t b) noexcept { bits.fetch_and(~b, std::memory_order_relaxed); }
  void reset(std::uint32_t b = 0) noexcept {
    rcv_ns.store(0, std::memory_order_relaxed);
    snd_ns.store(0, std::memory_order_relaxed);
    bits.store(b, std::memory_order_relaxed);
  }
};

// Maps the table and marks the fds open right now as inherited. Called once at start-up.
void init() noexcept;
int capacity() noexcept;

// The entry for fd, or nullptr if fd is negative or beyond the table.
FdEntry* get(int fd) noexcept;

// The entry for fd, classified (fstat / SO_TYPE) if it was not yet. nullptr: no entry.
FdEntry* classify(int fd) noexcept;

// Records an fd the program just created through a hooked call.
//   socket_type: SOCK_STREAM etc. (0 for a pipe), user_nb: the program asked for O_NONBLOCK,
//   kernel_nb: the shim added O_NONBLOCK to the creating call.
void created(int fd, bool is_socket, int socket_type, bool user_nb, bool kernel_nb) noexcept;

// Makes sure the shim may wait on fd: O_NONBLOCK set on the description (by the shim if the
// program did not). Returns false if that failed (the caller then passes through).
bool ensure_nonblocking(int fd, FdEntry* e) noexcept;

// Copies fd `from`'s entry to `to` (dup*), keeping the user's flags and timeouts.
void duplicated(int from, int to, bool cloexec_only) noexcept;

inline bool managed(std::uint32_t b) { return (b & kKindMask) == kManaged; }

}  // namespace green::shim::fds
