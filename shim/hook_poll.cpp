// Hooks: poll, ppoll, select, pselect, epoll_wait, epoll_pwait (+ __poll_chk, __ppoll_chk).
//
// On a fiber with a non-zero timeout: ask the kernel with a zero timeout first; if nothing is
// ready, park until something may be, then ask again (the kernel's answer is the result, so
// revents, counts and POLLNVAL/EBADF are exactly the kernel's). Parking:
//   - one managed fd: io::wait on it directly (its registration is reused by later waits);
//   - otherwise: a private epoll instance holding all the fds (numbered near the top of the
//     program's range, out of the way of its lowest free numbers), waited on with io::wait and
//     closed afterwards. That never changes the flags of the polled fds themselves (a tty in
//     the set stays blocking, hazard H2), and regular files, which epoll refuses, are always
//     ready so the first zero-timeout poll already returned them.
// epoll_wait: the epoll fd itself is pollable, so the fiber waits for it to become readable
// (libgo's approach, hazard H6).
// Signal masks of ppoll/pselect/epoll_pwait are not applied while a fiber is parked (the mask
// belongs to the worker thread, shared by every fiber on it): documented in docs/shim.md.
// select's timeout is updated with the time left, as Linux does.
#include <poll.h>
#include <sys/epoll.h>
#include <sys/select.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <vector>

#include "common.hpp"
#include "fd_table.hpp"
#include "green/io.hpp"
#include "signals.hpp"
#include "thread_tcb.hpp"

extern "C" [[noreturn]] void __chk_fail(void);

using namespace green::shim;
namespace io = green::io;

namespace {

unsigned events_of(short ev) {
  unsigned e = 0;
  if (ev & (POLLIN | POLLPRI | POLLRDHUP)) e |= io::kReadable;
  if (ev & POLLOUT) e |= io::kWritable;
  return e ? e : io::kReadable;
}

// Returns kReady, kTimeout, or sets errno and returns kClosed/kCancelled.
io::WaitResult wait_any(const pollfd* fds, nfds_t n, TimePoint d) {
  stat_add(&Stats::polls);
  if (n == 1 && fds[0].fd >= 0) {
    fds::FdEntry* e = fds::classify(fds[0].fd);
    if (e && fds::managed(e->load())) {
      e->set(fds::kWaited);
      // The zero-timeout poll just said "not ready": edge-triggered wait (io.hpp).
      return io::wait(fds[0].fd, events_of(fds[0].events) | io::kAfterEagain, d);
    }
  }
  // Out of the way of the lowest free numbers (place_transient_fd): while we park, another
  // thread of the program may close and re-create a number and expect it back.
  int ep = green::detail::place_transient_fd(
      static_cast<int>(green::detail::raw_syscall(SYS_epoll_create1, EPOLL_CLOEXEC)));
  if (ep < 0) return io::WaitResult::kReady;  // out of fds: let the caller spin once more
  for (nfds_t i = 0; i < n; ++i) {
    if (fds[i].fd < 0) continue;
    epoll_event ev{};
    unsigned e = events_of(fds[i].events);
    ev.events = (e & io::kReadable ? EPOLLIN | EPOLLPRI | EPOLLRDHUP : 0u) |
                (e & io::kWritable ? EPOLLOUT : 0u);
    ev.data.fd = fds[i].fd;
    if (green::detail::raw_syscall(SYS_epoll_ctl, ep, EPOLL_CTL_ADD, fds[i].fd,
                                   green::detail::sc_arg(&ev)) < 0 &&
        errno == EEXIST) {
      ev.events |= EPOLLIN | EPOLLOUT | EPOLLPRI | EPOLLRDHUP;
      green::detail::raw_syscall(SYS_epoll_ctl, ep, EPOLL_CTL_MOD, fds[i].fd,
                                 green::detail::sc_arg(&ev));
    }
  }
  io::WaitResult r = io::wait(ep, io::kReadable | io::kAfterEagain, d);  // fresh registration
  io::close(ep);
  return r;
}

int poll_fiber(pollfd* fds, nfds_t n, TimePoint d) {
  ErrnoGuard g;
  for (;;) {
    int r = real::poll(fds, n, 0);
    if (r != 0) {
      if (r > 0) g.restore();
      return r;
    }
    if (d != kNoDeadline && Clock::now() >= d) {
      g.restore();
      return 0;
    }
    io::WaitResult w = io::WaitResult::kReady;
    if (n == 0) {
      auto r = sleep_until(d);
      w = r == green::detail::WakeReason::kTimeout       ? io::WaitResult::kTimeout
          : r == green::detail::WakeReason::kInterrupted ? io::WaitResult::kInterrupted
                                                         : io::WaitResult::kCancelled;
    } else {
      w = wait_any(fds, n, d);
    }
    if (w == io::WaitResult::kInterrupted) {
      // signal(7): poll and select never restart. Nothing delivered: a spurious wake.
      if (signals::interrupted() == signals::Intr::kNone) continue;
      errno = EINTR;
      return -1;
    }
    if (w == io::WaitResult::kTimeout) {
      if (n == 0) {
        g.restore();
        return 0;
      }
      continue;  // one last zero-timeout look, then the deadline check returns 0
    }
    if (w == io::WaitResult::kCancelled || w == io::WaitResult::kDeadline) {
      tcb::cancel_point();  // woken by pthread_cancel: acts if enabled
      errno = EINTR;
      return -1;
    }
    // kReady, or kClosed (an fd in the set was closed: the next poll reports POLLNVAL).
  }
}

int select_fiber(int nfds, fd_set* r, fd_set* w, fd_set* x, TimePoint d) {
  std::vector<pollfd> p;
  for (int fd = 0; fd < nfds && fd < FD_SETSIZE; ++fd) {
    short ev = 0;
    if (r && FD_ISSET(fd, r)) ev |= POLLIN;
    if (w && FD_ISSET(fd, w)) ev |= POLLOUT;
    if (x && FD_ISSET(fd, x)) ev |= POLLPRI;
    if (ev) p.push_back(pollfd{fd, ev, 0});
  }
  int res = poll_fiber(p.data(), p.size(), d);
  if (res < 0) return res;
  for (const pollfd& q : p)
    if (q.revents & POLLNVAL) {
      errno = EBADF;
      return -1;
    }
  int count = 0;
  if (r) FD_ZERO(r);
  if (w) FD_ZERO(w);
  if (x) FD_ZERO(x);
  for (const pollfd& q : p) {
    if (r && (q.events & POLLIN) && (q.revents & (POLLIN | POLLHUP | POLLERR))) {
      FD_SET(q.fd, r);
      ++count;
    }
    if (w && (q.events & POLLOUT) && (q.revents & (POLLOUT | POLLERR))) {
      FD_SET(q.fd, w);
      ++count;
    }
    if (x && (q.events & POLLPRI) && (q.revents & POLLPRI)) {
      FD_SET(q.fd, x);
      ++count;
    }
  }
  return count;
}

void store_left(TimePoint d, timeval* tv) {
  if (!tv || d == kNoDeadline) return;
  auto now = Clock::now();
  long long ns =
      d > now ? std::chrono::duration_cast<std::chrono::nanoseconds>(d - now).count() : 0;
  tv->tv_sec = static_cast<time_t>(ns / 1000000000LL);
  tv->tv_usec = static_cast<suseconds_t>((ns % 1000000000LL) / 1000);
}

int epoll_fiber(int ep, epoll_event* ev, int max, TimePoint d) {
  ErrnoGuard g;
  fds::FdEntry* e = fds::classify(ep);
  for (;;) {
    int r = real::epoll_wait(ep, ev, max, 0);
    if (r != 0) {
      if (r > 0) g.restore();
      return r;
    }
    if (d != kNoDeadline && Clock::now() >= d) {
      g.restore();
      return 0;
    }
    if (e) e->set(fds::kWaited);
    stat_add(&Stats::polls);
    io::WaitResult w = io::wait(ep, io::kReadable | io::kAfterEagain, d);
    if (w == io::WaitResult::kClosed) {
      errno = EBADF;
      return -1;
    }
    if (w == io::WaitResult::kInterrupted) {  // epoll_wait never restarts (signal(7))
      if (signals::interrupted() == signals::Intr::kNone) continue;
      errno = EINTR;
      return -1;
    }
    if (w == io::WaitResult::kCancelled || w == io::WaitResult::kDeadline) {
      tcb::cancel_point();  // woken by pthread_cancel: acts if enabled
      errno = EINTR;
      return -1;
    }
  }
}

}  // namespace

GREEN_HOOK(poll) {
  if (timeout == 0 || mode() != Mode::kFiber) return real::poll(fds, n, timeout);
  return poll_fiber(fds, n, deadline_ms(timeout));
}

GREEN_HOOK(__poll_chk) {
  if (fdslen / sizeof(pollfd) < n) __chk_fail();
  return green_hook_poll(fds, n, timeout);
}

GREEN_HOOK(ppoll) {
  if ((ts && ts->tv_sec == 0 && ts->tv_nsec == 0) || mode() != Mode::kFiber)
    return real::ppoll(fds, n, ts, mask);
  if (ts && !timespec_valid(ts)) {
    errno = EINVAL;
    return -1;
  }
  return poll_fiber(fds, n, ts ? deadline_ns(timespec_ns(*ts)) : kNoDeadline);
}

GREEN_HOOK(__ppoll_chk) {
  if (fdslen / sizeof(pollfd) < n) __chk_fail();
  return green_hook_ppoll(fds, n, ts, mask);
}

GREEN_HOOK(select) {
  if ((tv && tv->tv_sec == 0 && tv->tv_usec == 0) || mode() != Mode::kFiber)
    return real::select(nfds, r, w, x, tv);
  if (nfds < 0 || (tv && (tv->tv_sec < 0 || tv->tv_usec < 0))) {
    errno = EINVAL;
    return -1;
  }
  TimePoint d = tv ? deadline_ns(tv->tv_sec * 1000000000LL + tv->tv_usec * 1000LL) : kNoDeadline;
  int res = select_fiber(nfds, r, w, x, d);
  store_left(d, tv);
  return res;
}

GREEN_HOOK(pselect) {
  if ((ts && ts->tv_sec == 0 && ts->tv_nsec == 0) || mode() != Mode::kFiber)
    return real::pselect(nfds, r, w, x, ts, mask);
  if (nfds < 0 || (ts && (!timespec_valid(ts) || ts->tv_sec < 0))) {
    errno = EINVAL;
    return -1;
  }
  return select_fiber(nfds, r, w, x, ts ? deadline_ns(timespec_ns(*ts)) : kNoDeadline);
}

GREEN_HOOK(epoll_wait) {
  if (timeout == 0 || mode() != Mode::kFiber || max <= 0)
    return real::epoll_wait(ep, ev, max, timeout);
  return epoll_fiber(ep, ev, max, deadline_ms(timeout));
}

GREEN_HOOK(epoll_pwait) {
  if (timeout == 0 || mode() != Mode::kFiber || max <= 0)
    return real::epoll_pwait(ep, ev, max, timeout, mask);
  return epoll_fiber(ep, ev, max, deadline_ms(timeout));
}
