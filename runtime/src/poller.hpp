// Poller: a worker's fd readiness waits (the data path fiber -> poller -> loop -> wake).
//
// Ownership: each worker has one Poller, touched only by that worker's thread, except for
// epoll_fd(), which closers on any thread use (epoll_ctl is thread-safe). A fiber waits on
// the Poller of the worker it runs on, and stays pinned to that worker for the wait
// (PinToWorker in io::wait_any: it unlinks its Waiter from the Entry after it wakes), so the
// Poller is always the calling thread's. A migratable fiber's next wait may be on another
// worker's Poller: the fd is then registered there too (the worker mask lists both), and the
// old registration's ready flag costs at most one extra EAGAIN.
//
// Readiness (Go's netpoll): each worker owns one epoll instance of its own, watched by its
// libuv loop through a single uv_poll_t. An fd is added to it once, on its first wait,
// edge-triggered for both directions (EPOLLIN|EPOLLOUT|EPOLLRDHUP|EPOLLET), and stays there
// until it is closed: no epoll_ctl per wait, none when interest changes. Each Entry keeps one
// "ready" flag per direction: an edge that arrives while nobody waits sets it, the next wait
// in that direction consumes it and returns at once (the caller retries its syscall). An
// edge that arrives while fibers wait wakes all of them (all readers of a listener retry
// accept; the kernel hands each connection to one). The flag can be stale (set by an edge
// whose data was read without waiting): that costs one extra EAGAIN, never a lost wake-up,
// because every byte that arrives after the caller's failed syscall raises a new edge.
// Hang-up and error states persist without new edges, so they are remembered (sticky) and
// answer every later wait at once: a reader that read data and the FIN after it in one edge
// and waits again (green::net waits after a short read) must not park.
// Registration never changes the fd's flags (epoll works on blocking fds).
//
// Generations (fd reuse, hazard H4/H17): FdTable::Meta::gen is bumped by every close, forget
// (which the shim and green::net call for every fd they create) and lazy classification of a
// number seen for the first time. An Entry remembers the generation it registered; a wait
// that finds an Entry of an older generation wakes that Entry's waiters with kClosed and
// registers again. The epoll event carries (fd, generation), so events of a stale kernel
// registration (a closed fd whose file lives on through a dup) are ignored. epoll_ctl errors
// are handled, never fatal: EEXIST -> MOD (same file registered under an older generation),
// EPERM -> always ready (regular file), EBADF -> kClosed.
//
// Close: io::close bumps the generation, removes the fd from the epoll set of every worker
// whose bit is set in the fd's worker mask (from the closing thread), wakes local waiters
// inline and posts (fd, generation) to the other workers (their waiters wake with kClosed; no
// acknowledgement is awaited: a message that arrives after the number was reused finds a newer
// generation and is ignored), then calls close(2). Waits that start while the fd is closing
// wait for the close to finish and then register again (EBADF from epoll_ctl -> kClosed; a
// number already reused by a new file is waited on normally): the mask bit and the closing
// count form a Dekker pair (each side writes its own, seq_cst, then reads the other's), so
// either the closer sees the bit and removes that worker's registration, or the waiter sees
// `closing` and does not register until the close is done.
//
// Tables (the per-fd rule, fd_capacity.hpp and docs/hacking.md §6): FdTable and every
// Poller's `entries_` are arrays indexed by the fd number, both of FdTable's size, mapped
// once and never grown. An fd beyond them has no entry: io::wait_any blocks in poll(2) for it
// (the plain path, as the shim passes such an fd through) and io::close is plain close(2).
//
// Threads and annotations: FdTable's fields are atomics any thread uses (orders at each
// site). A Poller's own fields are its worker's (GREEN_GUARDED_BY(owner_), a ThreadRole):
// every member runs on that worker's thread (wait() on its fibers, poll_now() and close_all()
// on its scheduler context, fd_closed() on either) except epoll_fd(), set once in the
// constructor and read by closers on any thread.
#pragma once

#include <poll.h>
#include <sys/epoll.h>
#include <uv.h>

#include <atomic>
#include <cstdint>

#include "green/detail/thread_annotations.hpp"
#include "green/detail/wait.hpp"
#include "green/io.hpp"

namespace green::detail {

class Worker;

// The runtime's own fds (place_internal_fd, green/detail/hooks.hpp). reserve_internal_fds
// (Runtime's constructor, before its first fd) picks the range for `count` of them: from the
// soft RLIMIT_NOFILE (at least 1024) up when the hard limit leaves room (the program's view is
// unchanged), else the top `count` numbers below the hard limit with the soft limit lowered to
// exclude them (only up to 65536: libuv indexes an array by fd), else from 1024 up.
// restore_fd_limit undoes a lowering (the runtime's end, a fork child) unless the program
// changed the limit since.
void reserve_internal_fds(int count) noexcept;
void restore_fd_limit() noexcept;

// Process-wide per-fd metadata: one Meta per fd number below size(), mapped once (all zero:
// a valid Meta) and never freed, since any thread may still hold a Meta* at exit.
class FdTable {
 public:
  struct Meta {
    std::atomic<std::uint32_t> closing{0};  // io::close in progress on this fd
    std::atomic<std::uint32_t> gen{0};      // bumped at every close/forget (see above)
    std::atomic<std::uint64_t> workers{0};  // bit (index % 64) set: that worker may watch it
  };
  static FdTable& instance();
  // nullptr for a negative fd or one beyond the table (the plain path).
  Meta* get(int fd) noexcept { return fd >= 0 && fd < size_ ? &table_[fd] : nullptr; }
  int size() const noexcept { return size_; }

 private:
  explicit FdTable(int size);
  Meta* const table_;
  const int size_;  // 0 if the mapping failed: every fd takes the plain path
};

class Poller {
 public:
  explicit Poller(Worker* w);
  ~Poller();

  // Parks the running fiber until one of fds is ready (see io::wait_any).
  // `probed`: the caller's own syscall just failed with EAGAIN (io::kAfterEagain); otherwise
  // the kernel is asked with a zero-timeout poll(2) before parking.
  // fds beyond FdTable's size are the caller's (io::wait_any blocks in poll(2) for them).
  io::WaitResult wait(const pollfd* fds, unsigned long n, TimePoint deadline, bool probed);
  // io::wait's direct path: one fd below table_size(), events POLLIN and/or POLLOUT (no
  // pollfd, no scan). Same semantics as wait() for that single fd.
  io::WaitResult wait_fd(int fd, short events, TimePoint deadline, bool probed);
  // FdTable's size (set once in the constructor; any thread may read it).
  int table_size() const { return size_; }
  // Wakes the waiters of fd's registration here with kClosed and forgets it, if it is older
  // than `gen` (the generation the closer created). The closer already removed it from epoll.
  void fd_closed(int fd, std::uint32_t gen);
  // Closes every registration (worker teardown; the loop must run afterwards).
  void close_all();
  // Reads the ready events without blocking and wakes their waiters. Returns how many.
  int poll_now();
  // This worker's epoll instance (-1 if it could not be created). Any thread may use it.
  int epoll_fd() const { return epfd_; }

 private:
  struct Entry {
    int fd;
    std::uint32_t gen;
    // kRdReady/kWrReady: an edge arrived that no reader/writer consumed yet. Sticky states:
    // after EPOLLRDHUP (kRdHup) reads never block again (they return 0), after
    // EPOLLHUP/EPOLLERR (kHup) nothing blocks; no further edge would come for them. One byte,
    // so a wait tests every state that answers its direction with one load and mask.
    std::uint8_t state = 0;
    WaitList readers;
    WaitList writers;
  };
  static constexpr std::uint8_t kRdReady = 1, kWrReady = 2, kRdHup = 4, kHup = 8;
  static constexpr std::uint8_t kRdAnswers = kRdReady | kRdHup | kHup;  // a read won't block
  static constexpr std::uint8_t kWrAnswers = kWrReady | kHup;           // a write won't block
  static void on_epoll(uv_poll_t* h, int status, int events);
  // The registration for fd's current generation: the common case (registered, same
  // generation) inline, everything else in entry_for.
  Entry* lookup(int fd, FdTable::Meta* meta, io::WaitResult* res) GREEN_REQUIRES(owner_);
  Entry* entry_for(int fd, FdTable::Meta* meta, io::WaitResult* res) GREEN_REQUIRES(owner_);
  io::WaitResult wait_one(int fd, short events, TimePoint deadline, bool probed)
      GREEN_REQUIRES(owner_);
  io::WaitResult wait_both(Entry* e, int fd, short events, TimePoint deadline)
      GREEN_REQUIRES(owner_);
  void drop(Entry* e, WakeReason why) GREEN_REQUIRES(owner_);
  bool watch() GREEN_REQUIRES(owner_);

  Worker* const worker_;
  FdTable& fds_;      // FdTable::instance(), looked up once (its accessor has a guard)
  const int epfd_;    // read by closers on any thread
  ThreadRole owner_;  // the worker's thread (see the note above)
  bool watching_ GREEN_GUARDED_BY(owner_) = false;
  uv_poll_t watch_ GREEN_GUARDED_BY(owner_);
  // By fd, FdTable's size; entries below `used_` only (1 + the highest fd ever registered),
  // which bounds the teardown scan.
  const int size_;
  Entry** const entries_ GREEN_PT_GUARDED_BY(owner_);
  int used_ GREEN_GUARDED_BY(owner_) = 0;
};

}  // namespace green::detail
