// Hooks: socket, socketpair, pipe, pipe2, eventfd, epoll_create(1), close, shutdown, dup, dup2,
// dup3, fcntl/fcntl64, ioctl(FIONBIO), setsockopt(SO_RCVTIMEO/SO_SNDTIMEO). They keep the fd
// table (fd_table.hpp) in step with the program's view of each fd, and keep the runtime's own
// fds (created in Mode::kRaw) out of the program's range (internal() below).
//
// O_NONBLOCK policy (hazard H2, fd_table.hpp): the shim leaves the program's flags on every
// description; fiber I/O is made non-blocking per call. F_GETFL/F_SETFL/FIONBIO pass through
// (after any accept/connect toggle in flight on the fd, kToggle) and drop the cached flags;
// only fds on the O_NONBLOCK fallback (kNoNowait) still get it hidden and recorded.
//
// close (hazard H4): an fd some fiber waited on goes through green::io::close, which wakes
// every fiber parked on it (they see EBADF) and drops the loop registrations before close(2).
// dup2/dup3 onto such an fd first io::forget()s it (hazard H5). The entry is cleared before the
// real close so a concurrent reuse of the number keeps its fresh entry.
#include <fcntl.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/syscall.h>

#include <cstdarg>

#include "block.hpp"
#include "common.hpp"
#include "fd_table.hpp"
#include "green/io.hpp"
#include "green/runtime.hpp"

using namespace green::shim;

namespace {

void record_created(Mode m, int fd, bool sock, int type, bool user_nb, bool kernel_nb) {
  if (m == Mode::kRaw) {
    if (auto* e = fds::get(fd)) e->reset();
    return;
  }
  fds::created(fd, sock, type, user_nb, kernel_nb);
}

// fds the runtime creates for itself (Mode::kRaw: libuv's loop set-up under a ShimBypass, the
// monitor's pipe) are moved out of the program's range (green::detail::place_internal_fd), so
// the program's lowest free numbers, and a scan up to its soft RLIMIT_NOFILE, are what they
// would be without the runtime (CPython's test_subprocess lists a child's open fds).
int internal(int fd) {
  if (fd < 0) return fd;
  int moved = green::detail::place_internal_fd(fd);
  if (auto* e = fds::get(moved)) e->reset();
  return moved;
}
void internal_pair(int fd[2]) {
  fd[0] = internal(fd[0]);
  fd[1] = internal(fd[1]);
}

void forget_if_waited(int fd) {
  fds::FdEntry* e = fds::get(fd);
  if (e && (e->load() & fds::kWaited) && green::running()) green::io::forget(fd);
}

int fcntl_impl(int (*fn)(int, int, ...), int fd, int cmd, void* arg) {
  Mode m = mode();
  if (m == Mode::kRaw) return fn(fd, cmd, arg);
  switch (cmd) {
    case F_GETFL: {
      fds::FdEntry* e = fds::get(fd);
      if (e) fds::toggle_lock(e);
      int r = fn(fd, cmd);
      if (e) fds::toggle_unlock(e);
      if (r >= 0 && e) {
        std::uint32_t b = e->load();
        if ((b & fds::kKernelNonblock) && !(b & fds::kUserNonblock)) r &= ~O_NONBLOCK;
      }
      return r;
    }
    case F_SETFL: {
      int flags = static_cast<int>(reinterpret_cast<intptr_t>(arg));
      fds::FdEntry* e = fds::classify(fd);
      if (e) fds::toggle_lock(e);
      int r = fn(fd, cmd, flags);
      if (e) fds::toggle_unlock(e);
      if (r == 0 && e) {
        fds::flags_changed(e);
        if (flags & O_NONBLOCK) {
          e->set(fds::kUserNonblock);
          e->clear(fds::kKernelNonblock);
        } else {
          e->clear(fds::kUserNonblock | fds::kKernelNonblock);
        }
      }
      return r;
    }
    case F_SETLKW:
    case F_OFD_SETLKW:
      return block_fcntl_lock(fn, fd, cmd, arg);  // hook_block.cpp
    case F_DUPFD:
    case F_DUPFD_CLOEXEC: {
      int r = fn(fd, cmd, static_cast<int>(reinterpret_cast<intptr_t>(arg)));
      if (r >= 0) fds::duplicated(fd, r, false);
      return r;
    }
    default:
      return fn(fd, cmd, arg);
  }
}

}  // namespace

GREEN_HOOK(socket) {
  Mode m = mode();
  int fd = real::socket(domain, type, protocol);
  if (fd >= 0) record_created(m, fd, true, type, type & SOCK_NONBLOCK, false);
  return fd;
}

GREEN_HOOK(socketpair) {
  Mode m = mode();
  int r = real::socketpair(domain, type, protocol, sv);
  if (r == 0) {
    bool user_nb = type & SOCK_NONBLOCK;
    record_created(m, sv[0], true, type, user_nb, false);
    record_created(m, sv[1], true, type, user_nb, false);
  }
  return r;
}

GREEN_HOOK(pipe2) {
  Mode m = mode();
  int r = real::pipe2(fd, flags);
  if (r == 0 && m == Mode::kRaw) internal_pair(fd);
  if (r == 0) {
    bool user_nb = flags & O_NONBLOCK;
    record_created(m, fd[0], false, 0, user_nb, false);
    record_created(m, fd[1], false, 0, user_nb, false);
  }
  return r;
}

GREEN_HOOK(pipe) {
  Mode m = mode();
  int r = real::pipe(fd);
  if (r == 0 && m == Mode::kRaw) internal_pair(fd);
  if (r == 0) {
    record_created(m, fd[0], false, 0, false, false);
    record_created(m, fd[1], false, 0, false, false);
  }
  return r;
}

// Programs' eventfds and epoll sets are classified lazily, as before these hooks existed;
// only the runtime's own are moved.
GREEN_HOOK(eventfd) {
  int fd = real::eventfd(count, flags);
  return mode() == Mode::kRaw ? internal(fd) : fd;
}

GREEN_HOOK(epoll_create) {
  int fd = real::epoll_create(size);
  return mode() == Mode::kRaw ? internal(fd) : fd;
}

GREEN_HOOK(epoll_create1) {
  int fd = real::epoll_create1(flags);
  return mode() == Mode::kRaw ? internal(fd) : fd;
}

GREEN_HOOK(close) {
  Mode m = mode();
  fds::FdEntry* e = fds::get(fd);
  std::uint32_t b = e ? e->load() : 0;
  if (e) e->reset();
  if (m != Mode::kRaw && (b & fds::kWaited) && green::running()) return green::io::close(fd);
  return real::close(fd);
}

GREEN_HOOK(shutdown) {
  return real::shutdown(fd, how);
}

GREEN_HOOK(dup) {
  int r = real::dup(fd);
  if (r >= 0 && mode() != Mode::kRaw) fds::duplicated(fd, r, false);
  return r;
}

GREEN_HOOK(dup2) {
  if (mode() == Mode::kRaw) return real::dup2(from, to);
  if (from != to) forget_if_waited(to);
  int r = real::dup2(from, to);
  if (r >= 0 && from != to) fds::duplicated(from, to, false);
  return r;
}

GREEN_HOOK(dup3) {
  if (mode() == Mode::kRaw) return real::dup3(from, to, flags);
  if (from != to) forget_if_waited(to);
  int r = real::dup3(from, to, flags);
  if (r >= 0) fds::duplicated(from, to, true);
  return r;
}

GREEN_HOOK(fcntl) {
  return fcntl_impl(real::fcntl, fd, cmd, arg);
}

GREEN_HOOK(fcntl64) {
  return fcntl_impl(real::fcntl64, fd, cmd, arg);
}

GREEN_HOOK(ioctl) {
  fds::FdEntry* te = req == FIONBIO && mode() != Mode::kRaw ? fds::get(fd) : nullptr;
  if (te) fds::toggle_lock(te);
  int r = real::ioctl(fd, req, arg);
  if (te) fds::toggle_unlock(te);
  if (r == 0 && req == FIONBIO && mode() != Mode::kRaw && arg) {
    if (fds::FdEntry* e = fds::classify(fd)) {
      fds::flags_changed(e);
      if (*static_cast<int*>(arg)) {
        e->set(fds::kUserNonblock);
        e->clear(fds::kKernelNonblock);
      } else {
        e->clear(fds::kUserNonblock | fds::kKernelNonblock);
      }
    }
  }
  return r;
}

GREEN_HOOK(setsockopt) {
  int r = real::setsockopt(fd, level, name, val, len);
  if (r == 0 && level == SOL_SOCKET && (name == SO_RCVTIMEO || name == SO_SNDTIMEO) &&
      len >= sizeof(timeval) && mode() != Mode::kRaw) {
    if (fds::FdEntry* e = fds::classify(fd)) {
      auto* tv = static_cast<const timeval*>(val);
      std::int64_t ns = static_cast<std::int64_t>(tv->tv_sec) * 1000000000LL + tv->tv_usec * 1000LL;
      (name == SO_RCVTIMEO ? e->rcv_ns : e->snd_ns).store(ns, std::memory_order_relaxed);
      fds::timeouts_set();
      if (e->load() & fds::kShared) fds::flags_changed(e);  // other dups re-read them
    }
  }
  return r;
}

GREEN_HOOK(getsockopt) {
  return real::getsockopt(fd, level, name, val, len);  // the kernel holds the same timeouts
}
