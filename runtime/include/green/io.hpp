// Waiting for file-descriptor readiness: the building block of green::net and of the shim.
//
// wait() parks the calling fiber until `fd` is readable/writable, on the event loop of the
// worker the fiber runs on. Each worker adds an fd it waits on to an epoll set of its own,
// once, edge-triggered, and leaves it there while the fd stays open (no epoll_ctl per wait);
// several workers may each watch the same fd. Registration leaves the fd's flags alone (it
// works on blocking fds; use MSG_DONTWAIT / RWF_NOWAIT or O_NONBLOCK for the retried call).
// A wait first asks the kernel whether the fd is ready already (one poll(2) with a zero
// timeout), unless `kAfterEagain` is passed: then the caller states that its own
// non-blocking call on fd has just failed with EAGAIN, which is what the edge-triggered
// registration relies on, and the probe is skipped (green::net and the shim do this).
//
// Readiness is a hint: the caller retries its syscall, which reports the exact errno
// (ECONNREFUSED, EPIPE, ...). An error or hang-up on the fd counts as ready for both
// directions, so the retry sees it.
//
// close(): closes `fd` after waking every fiber waiting on it, on any worker; they get
// kClosed (EBADF from the throwing forms). Always close a waited-on fd through green::io::close
// (the shim's close() does), never through ::close directly.
//
// errno: on a fiber, wait() and wait_any() for fds below the runtime's fd table leave errno as
// it was when they return kReady (the shim's read/write hooks rely on it: they do not save and
// restore errno around such a wait).
//
// Off a fiber these functions block the calling thread in poll(2).
#pragma once

#include <poll.h>

#include <chrono>

#include "green/detail/wait.hpp"
#include "green/export.hpp"

namespace green::io {

enum Events : unsigned { kReadable = 1, kWritable = 2, kAfterEagain = 4 };
// kInterrupted: the wait ended for a signal (detail::interrupt_task, used by the shim).
enum class WaitResult { kReady, kTimeout, kClosed, kCancelled, kDeadline, kInterrupted };

// Non-throwing core. `deadline` is absolute (detail::kNoDeadline for none).
GREEN_API WaitResult wait(int fd, unsigned events, std::chrono::steady_clock::time_point deadline) noexcept;

// Parks until any of fds[i] is ready for its `events` (POLLIN/POLLOUT bits of struct pollfd)
// or the deadline; revents is not filled in: call poll(2) with a zero timeout afterwards to
// learn which. This is what the shim's poll/select/epoll_wait are built on. Off a fiber it
// blocks in poll(2).
// `flags`: kAfterEagain or 0 (see above).
GREEN_API WaitResult wait_any(const struct pollfd* fds, unsigned long n,
                              std::chrono::steady_clock::time_point deadline,
                              unsigned flags = 0) noexcept;

// Throwing forms: true when ready, false on timeout; std::system_error(EBADF) if the fd was
// closed while waiting; green::Cancelled / green::TimedOut when interrupted.
GREEN_API bool wait_readable(int fd, std::chrono::nanoseconds timeout = std::chrono::nanoseconds::max());
GREEN_API bool wait_writable(int fd, std::chrono::nanoseconds timeout = std::chrono::nanoseconds::max());

// Wakes every waiter on fd (on every worker) with kClosed, drops green's registrations,
// then close(2)s it. Returns close(2)'s result; errno is preserved from close(2).
GREEN_API int close(int fd) noexcept;

// Drops green's registrations for fd and wakes its waiters, without closing it. Use before
// handing the fd to code that will close it behind green's back, after dup2 onto it, and
// when a new fd is obtained from a call green did not see (the previous holder of the number
// may have been closed behind green's back; green::net and the shim do this for every fd
// they create). Cheap when green never watched the fd: one atomic increment and exchange.
GREEN_API void forget(int fd) noexcept;

}  // namespace green::io
