// Poller: a worker's fd readiness waits (the data path fiber -> poller -> loop -> wake).
//
// Ownership: each worker has one Poller, touched only by that worker's thread. A fiber waits
// on the Poller of the worker it runs on; since started fibers never migrate, that is always
// the calling thread's. An fd waited on from two workers gets one uv_poll_t in each loop
// (the kernel allows one fd in several epoll sets); libuv allows only one uv_poll_t per fd
// per loop, which the per-worker table guarantees.
//
// Registration is kept while the fd is open (no epoll_ctl per wait). Interest is dropped
// lazily: after a wake, readable events with nobody waiting are tolerated kReadGrace times
// (the woken fiber has not read yet, and epoll is level-triggered), then the direction is
// disarmed. uv_poll_start is called only when the interest really changes, because libuv
// turns every call into epoll_ctl(DEL) + epoll_ctl(ADD).
//
// Close (hazard H4): io::close marks the fd `closing` in the process-wide FdTable, then has
// every worker whose bit is set in the fd's worker mask drop its registration on its own
// thread (the local one inline), waits for their acks, and only then calls close(2). The wait
// matters: a registration may have an epoll change queued in its loop's watcher queue, and
// libuv abort()s if epoll_ctl(ADD/MOD) then meets a closed fd (EBADF) or a reused number
// (ENOENT). Waits that start while the fd is closing fail with kClosed without registering:
// the mask bit and the closing count form a Dekker pair (each side writes its own, seq_cst,
// then reads the other's), so either the closer sees the bit and waits for that worker, or
// the waiter sees `closing`. Closing costs a message round trip only for fds that fibers on
// other workers waited on; the common case (one worker) is a local teardown.
#pragma once

#include <poll.h>
#include <uv.h>

#include <atomic>
#include <cstdint>
#include <vector>

#include "green/detail/wait.hpp"
#include "green/io.hpp"

namespace green::detail {

class Worker;

// Process-wide per-fd metadata. Lazily allocated blocks, never freed (fds are small ints).
class FdTable {
 public:
  struct Meta {
    std::atomic<std::uint32_t> closing{0};  // io::close/forget in progress on this fd
    std::atomic<std::uint64_t> workers{0};  // bit (index % 64) set: that worker may watch it
  };
  static FdTable& instance();
  Meta* get(int fd);  // nullptr for negative / absurd fds

 private:
  static constexpr int kBlock = 4096;
  static constexpr int kBlocks = 1 << 12;  // up to 16M fds
  std::atomic<Meta*> blocks_[kBlocks] = {};
};

class Poller {
 public:
  // Readable events with no reader waiting that are tolerated after a wake before the
  // interest is dropped (see on_event): long enough for the woken fiber to come back.
  static constexpr int kReadGrace = 64;

  explicit Poller(Worker* w) : worker_(w) {}
  ~Poller();

  // Parks the running fiber until one of fds is ready (see io::wait_any).
  io::WaitResult wait(const pollfd* fds, unsigned long n, TimePoint deadline);
  // Wakes the fd's waiters here with kClosed and drops its registration (stops polling it,
  // removing any epoll change still queued): the fd is about to be closed.
  void fd_closed(int fd);
  // Closes every registration (worker teardown; the loop must run afterwards).
  void close_all();

 private:
  struct Entry {
    uv_poll_t handle;
    Poller* poller;
    int fd;
    int armed = 0;  // UV_READABLE | UV_WRITABLE currently requested from libuv
    int read_grace = 0;  // readable events without a reader tolerated before disarming
    WaitList readers;
    WaitList writers;
  };
  static void on_event(uv_poll_t* h, int status, int events);
  Entry* entry_for(int fd, FdTable::Meta* meta, int* err);
  void drop(Entry* e, WakeReason why);
  void arm(Entry* e, int events);

  Worker* worker_;
  std::vector<Entry*> entries_;  // by fd
};

}  // namespace green::detail
