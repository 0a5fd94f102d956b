// The blocking-call loop shared by the I/O hooks: "real call; if EAGAIN and the caller did not
// ask for non-blocking, wait for readiness, retry".
//
//   fiber   : io::wait parks the fiber on its worker's loop (with the SO_RCVTIMEO/SO_SNDTIMEO
//             deadline); a timeout gives EAGAIN (EINPROGRESS for connect), a close() by another
//             fiber gives EBADF, a green cancellation EINTR.
//   thread  : only for fds the shim itself made non-blocking: real poll(2) between attempts,
//             so a plain thread sharing such an fd still sees blocking behaviour.
//   otherwise the real call, once.
// Readiness is only a hint: the real call decides and reports the exact errno.
#pragma once

#include <sys/types.h>

#include "common.hpp"
#include "fd_table.hpp"
#include "thread_tcb.hpp"

namespace green::shim {

struct IoCall {
  int fd = -1;
  unsigned events = 0;  // green::io::kReadable / kWritable
  Mode mode = Mode::kRaw;
  fds::FdEntry* entry = nullptr;
  TimePoint deadline = kNoDeadline;
  bool wait = false;  // false: pass the real call through once
};

// Decides how a call on fd behaves. `dontwait`: the call itself asked not to block
// (MSG_DONTWAIT). `write`: applies SO_SNDTIMEO instead of SO_RCVTIMEO.
IoCall prepare_io(int fd, unsigned events, bool write, bool dontwait) noexcept;

// Waits once for readiness. Returns false with errno set (EAGAIN on timeout, EBADF if the fd
// was closed meanwhile, EINTR on cancellation).
bool wait_ready(IoCall& c) noexcept;

// Runs `op` (returns >= 0, or -1 with errno) until it succeeds, fails with something other
// than EAGAIN, or wait_ready fails. errno is left untouched on success.
template <class Op>
auto run_io(IoCall& c, Op&& op) -> decltype(op()) {
  if (!c.wait) return op();
  ErrnoGuard g;
  for (;;) {
    auto r = op();
    if (r >= 0) {
      g.restore();
      return r;
    }
    if (errno != EAGAIN && errno != EWOULDBLOCK) return r;
    if (!wait_ready(c)) {
      if (errno == EINTR) tcb::cancel_point();  // woken by pthread_cancel: acts if enabled
      return -1;
    }
  }
}

}  // namespace green::shim
