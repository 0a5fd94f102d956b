// Per-fd state the shim keeps to give blocking semantics to fds whose flags it leaves alone.
//
// Owns: one FdEntry per fd number below capacity() (an mmap'd array, zero pages until used).
//
// O_NONBLOCK policy (docs/shim.md): the shim does not switch fds to O_NONBLOCK. A fiber's
// I/O on a managed fd asks the kernel not to block *per call* (MSG_DONTWAIT on sockets,
// RWF_NOWAIT through preadv2/pwritev2 on pipes, eventfd, timerfd), so the description keeps
// the program's own flags and calls the shim does not wrap (sendfile, splice, ...) behave as
// the program expects. When such a call fails with EAGAIN, the description's real O_NONBLOCK
// decides (F_GETFL, cached per entry): set -> EAGAIN is the program's answer; clear -> wait.
// So O_NONBLOCK set through any dup, fork child or SCM_RIGHTS copy is honoured.
// Exceptions: fds that reject RWF_NOWAIT (FIFOs opened by path, inotify, ...) fall back to
// the old scheme (kNoNowait: the shim sets O_NONBLOCK on first fiber I/O and hides it from
// F_GETFL; kUserNonblock records the program's own choice); accept and connect, which have no
// per-call flag, set O_NONBLOCK only for the duration of the one syscall (kToggle).
//
// What an entry records:
//   kind         kManaged (socket/pipe/FIFO/anon-inode fd: fiber I/O waits with io::wait) or
//                kPassthrough (regular file, directory, tty and other character device, block
//                device; and fds already open at start-up except sockets above 2, hazard H2).
//                kUnknown: not classified yet (lazily with fstat, hazard H17).
//   kSocket/kStream  socket; SOCK_STREAM/SOCK_SEQPACKET or pipe (blocking writes loop).
//   kShared      the description may be shared with another fd number or process (dup'd,
//                inherited, passed with SCM_RIGHTS; every fd after a fork): its cached flags
//                are trusted only while the global flag epoch is unchanged.
//   fl/fl_epoch  the description's F_GETFL as last seen (-1: unknown) and the epoch it was
//                read in. F_SETFL/FIONBIO through the shim invalidate it (and bump the epoch
//                for shared entries).
//   drained      a fiber's read on a kByteStream socket returned less than it asked for: the
//                receive queue was empty at that instant, so the next read waits for the
//                next edge first instead of failing with EAGAIN (libuv's UV_HANDLE_READ_PARTIAL).
//                A byte of its own, not a bit of `bits` (see FdEntry::drained).
//   waited       io::wait registered the fd with a worker's epoll set: close() must go
//                through green::io::close so waiters wake and registrations are dropped.
//   rcv/snd_ns   SO_RCVTIMEO / SO_SNDTIMEO in nanoseconds (0: none), applied to fiber waits;
//                re-read from the kernel with the flags for shared sockets.
//
// Threads: any thread reads and writes entries with relaxed atomics. Per fd, the program
// itself serializes creation, close and reuse (the same races exist without the shim); the
// shim clears an entry *before* the real close so a concurrent reuse of the number cannot have
// its fresh entry wiped afterwards. kToggle is a spin lock (acquire/release) held across the
// three syscalls of a toggled accept/connect; fcntl F_GETFL/F_SETFL wait for it.
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
  kShared = 1u << 8,
  kNoNowait = 1u << 9,
  kToggle = 1u << 10,
  kByteStream = 1u << 11,  // SOCK_STREAM socket (not SEQPACKET: a short read there is a record)
};

// Layout: 32 bytes, aligned to 32, so an entry never straddles two cache lines (at 40 bytes
// half of them did) and a read or write on a socket touches one line of this table: `bits`
// and `drained` on every call, `fl` and the timeouts on every wait.
struct alignas(32) FdEntry {
  std::atomic<std::uint32_t> bits{0};
  std::atomic<std::int32_t> fl{-1};
  std::atomic<std::uint32_t> fl_epoch{0};
  // The last fiber read on this kByteStream socket returned less than it asked for (hook_io.cpp
  // wait_if_drained / note_read). Why it is safe to wait for the next edge on it: that read
  // emptied the receive queue, so every byte queued since raised an edge (EPOLLET fires on
  // every arrival), which either is still recorded in the poller's ready flag or woke a
  // waiter whose read then wrote this byte again. Written only by note_read, after every
  // read that returned data, with a plain relaxed store when its value changes (a byte of
  // its own: no locked RMW on `bits`, whose other bits other threads change). A reader of
  // the fd is the only writer in practice; fibers reading one stream socket concurrently
  // already get their bytes in an unspecified split, and may see the other's hint (one
  // EAGAIN too many, or a wait for the next edge).
  std::atomic<std::uint8_t> drained{0};
  std::atomic<std::int64_t> rcv_ns{0};
  std::atomic<std::int64_t> snd_ns{0};

  std::uint32_t load() const noexcept { return bits.load(std::memory_order_relaxed); }
  void set(std::uint32_t b) noexcept { bits.fetch_or(b, std::memory_order_relaxed); }
  void clear(std::uint32_t b) noexcept { bits.fetch_and(~b, std::memory_order_relaxed); }
  void reset(std::uint32_t b = 0) noexcept {
    rcv_ns.store(0, std::memory_order_relaxed);
    snd_ns.store(0, std::memory_order_relaxed);
    fl.store(-1, std::memory_order_relaxed);
    drained.store(0, std::memory_order_relaxed);
    bits.store(b, std::memory_order_relaxed);
  }
};
static_assert(sizeof(FdEntry) == 32, "one FdEntry per half cache line (see the layout note)");

// Maps the table and marks the fds open right now as inherited. Called once at start-up.
void init() noexcept;
int capacity() noexcept;

namespace detail {
extern FdEntry* g_table;
extern int g_capacity;                  // written once by init() (release), read with acquire
extern std::atomic<bool> g_all_shared;  // fork() happened: every description is shared
FdEntry* classify_slow(int fd, FdEntry* e) noexcept;
int description_flags_slow(int fd, FdEntry* e) noexcept;
}  // namespace detail

// The entry for fd, or nullptr if fd is negative or beyond the table.
inline FdEntry* get(int fd) noexcept {
  if (fd < 0 || fd >= __atomic_load_n(&detail::g_capacity, __ATOMIC_ACQUIRE)) return nullptr;
  return &detail::g_table[fd];
}

// The entry for fd, classified (fstat / SO_TYPE) if it was not yet. nullptr: no entry.
inline FdEntry* classify(int fd) noexcept {
  FdEntry* e = get(fd);
  if (!e || (e->load() & kKindMask) != kUnknown) return e;
  return detail::classify_slow(fd, e);
}

// Records an fd the program just created through a hooked call.
//   socket_type: SOCK_STREAM etc. (0 for a pipe), user_nb: the program asked for O_NONBLOCK,
//   kernel_nb: the shim added O_NONBLOCK to the creating call.
void created(int fd, bool is_socket, int socket_type, bool user_nb, bool kernel_nb) noexcept;

// kNoNowait fds only: makes sure the shim may wait on fd: O_NONBLOCK set on the description
// (by the shim if the program did not). Returns false if that failed (then: pass through).
bool ensure_nonblocking(int fd, FdEntry* e) noexcept;

// Copies fd `from`'s entry to `to` (dup*); both become kShared.
void duplicated(int from, int to, bool cloexec_only) noexcept;

// An fd that arrived from elsewhere (SCM_RIGHTS): classified now, kShared.
void received(int fd) noexcept;

// The description's F_GETFL (cached; see the note above), -1 with errno on failure. For
// shared sockets whose cache was stale, also refreshes rcv/snd_ns from the kernel.
// Inline: the cached flags of an entry no other fd or process shares (the common case, read
// on every parked fiber I/O call); the epoch check, F_GETFL and timeout refresh out of line.
// cached_flags: that fast case alone, -1 when the slow path is needed (errno untouched).
inline int cached_flags(const FdEntry* e) noexcept {
  int fl = e->fl.load(std::memory_order_relaxed);
  if (fl >= 0 && !(e->load() & kShared) && !detail::g_all_shared.load(std::memory_order_relaxed))
    return fl;
  return -1;
}
inline int description_flags(int fd, FdEntry* e) noexcept {
  int fl = cached_flags(e);
  return fl >= 0 ? fl : detail::description_flags_slow(fd, e);
}
// The program changed fd's flags (F_SETFL, FIONBIO) or timeouts: drop cached state.
void flags_changed(FdEntry* e) noexcept;
// The program set SO_RCVTIMEO/SO_SNDTIMEO on some socket.
void timeouts_set() noexcept;
// After fork(): every description is shared with the child.
void forked() noexcept;

// kToggle lock (see above).
void toggle_lock(FdEntry* e) noexcept;
void toggle_unlock(FdEntry* e) noexcept;

inline bool managed(std::uint32_t b) {
  return (b & kKindMask) == kManaged;
}

}  // namespace green::shim::fds
