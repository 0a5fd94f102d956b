// The blocking-call loop shared by the I/O hooks: "non-blocking real call; if EAGAIN and the
// description is not O_NONBLOCK, wait for readiness, retry".
//
//   fiber   : the real call is made non-blocking per call (MSG_DONTWAIT, RWF_NOWAIT; see
//             fd_table.hpp), the fd's flags stay the program's. On EAGAIN the description's
//             O_NONBLOCK (fds::description_flags) decides between returning EAGAIN and
//             io::wait, which parks the fiber on its worker's epoll set (with the
//             SO_RCVTIMEO/SO_SNDTIMEO deadline); a timeout gives EAGAIN (EINPROGRESS for
//             connect), a close() by another fiber gives EBADF, a green cancellation EINTR.
//   thread  : the fd is blocking in the kernel: the real call blocks by itself. Only fds the
//             shim itself made non-blocking (kNoNowait fallback) get real poll(2) between
//             attempts.
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
  bool wait = false;     // false: pass the real call through once
  bool nowait = false;   // non-blocking per call (MSG_DONTWAIT/RWF_NOWAIT), not O_NONBLOCK
  bool checked = false;  // description known blocking, deadline computed
  bool write = false;
};

// Decides how a call on fd behaves. `dontwait`: the call itself asked not to block
// (MSG_DONTWAIT). `write`: applies SO_SNDTIMEO instead of SO_RCVTIMEO.
// Always inline: it runs at the start of every I/O hook, and inlined the IoCall stays in the
// hook's frame instead of being returned through memory (plain `inline` is not enough: GCC
// keeps it out of line for its 14 callers).
[[gnu::always_inline]] inline IoCall prepare_io(int fd, unsigned events, bool write,
                                                bool dontwait) noexcept {
  IoCall c;
  c.fd = fd;
  c.events = events;
  c.write = write;
  c.mode = mode();
  if (c.mode == Mode::kRaw || dontwait) return c;
  fds::FdEntry* e = fds::classify(fd);
  if (!e) return c;
  std::uint32_t b = e->load();
  if (!fds::managed(b)) return c;
  if (b & fds::kNoNowait) {  // the O_NONBLOCK fallback (fd_table.hpp)
    if (b & fds::kUserNonblock) return c;
    if (c.mode == Mode::kThread) {
      if (!(b & fds::kKernelNonblock)) return c;  // blocking in the kernel: nothing to emulate
    } else if (!fds::ensure_nonblocking(fd, e)) {
      return c;
    }
    std::int64_t t = write ? e->snd_ns.load(std::memory_order_relaxed)
                           : e->rcv_ns.load(std::memory_order_relaxed);
    c.deadline = t > 0 ? deadline_ns(t) : kNoDeadline;
    c.checked = true;
  } else if (c.mode == Mode::kThread) {
    return c;  // the kernel blocks (or not) exactly as the program asked
  } else {
    c.nowait = true;
  }
  c.entry = e;
  c.wait = true;
  return c;
}

// Called after the real call failed with EAGAIN: waits once for readiness. Returns 0 when the
// call may be retried, else the errno the call fails with (EAGAIN if the description is
// O_NONBLOCK or on timeout, EBADF if the fd was closed meanwhile, EINTR on cancellation).
// When it returns 0, errno is as it was (io::wait keeps it on kReady; the rare paths that make
// calls of their own save and restore it), so the socket fast paths in hook_io.cpp need no
// ErrnoGuard: they touch errno only when the program's call fails.
int wait_ready_code(IoCall& c) noexcept;

// wait_ready_code with the error in errno: false with errno set.
inline bool wait_ready(IoCall& c) noexcept {
  int err = wait_ready_code(c);
  if (err == 0) return true;
  errno = err;
  return false;
}

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
