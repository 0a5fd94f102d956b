// Hooks: read/write, readv/writev, recv*/send*, sendfile(64), accept/accept4, connect, and the
// _FORTIFY_SOURCE entry points that reach them (__read_chk, __recv_chk, __recvfrom_chk).
//
// Semantics kept (docs/shim.md, "I/O"): reads return as soon as some data is there (partial
// reads as the kernel gives them); writes by a caller who did not ask for O_NONBLOCK on a
// stream (socket/pipe) loop until everything is written, as a blocking write(2) does, and
// return the count written so far if an error or SO_SNDTIMEO ends the loop after progress.
// MSG_WAITALL on a stream read loops likewise. Datagram sockets: one real call per wait.
// connect: EINPROGRESS -> wait writable -> SO_ERROR (ECONNREFUSED etc. exactly), SO_SNDTIMEO
// expiry -> EINPROGRESS (socket(7)).
//
// Per-call non-blocking (fd_table.hpp): on a socket read == recv(fd, 0) and write ==
// send(fd, 0) (both raise SIGPIPE alike), so they become recv/send with MSG_DONTWAIT; the
// recv/send family gets MSG_DONTWAIT added; readv/writev and reads/writes of other managed
// fds use preadv2/pwritev2(offset -1, RWF_NOWAIT). An fd that answers RWF_NOWAIT with
// EOPNOTSUPP is switched to the O_NONBLOCK fallback once. accept/accept4 and connect have no
// per-call flag: O_NONBLOCK is set for the one syscall and restored (toggled(), under the
// entry's kToggle lock; the program's F_GETFL/F_SETFL wait for it), so between calls the
// listener is exactly as the program left it. Several fibers accepting on one listener all
// wake on its edge and retry; the kernel hands each connection to one of them.
//
// Threads: any. On a fiber, parking happens only inside run_io/wait_ready.
#include <fcntl.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/uio.h>

#include <climits>
#include <cstring>
#include <vector>

#include "common.hpp"
#include "green/detail/raw_syscall.hpp"
#include "green/io.hpp"
#include "green/runtime.hpp"
#include "io_core.hpp"
#include "signals.hpp"

extern "C" [[noreturn]] void __chk_fail(void);

namespace green::shim {

namespace {

// wait_ready_code's cold paths, out of line so that the hot one (a fiber's socket wait:
// cached flags, kReady) keeps a small frame: after the fiber resumes, every line of the
// frames between the hook and the switch is read back (saved registers, locals), and a
// thousand other fibers have evicted them since (echo_callgrind.sh --cache).

// A plain thread on a shim-made O_NONBLOCK fd (the kNoNowait fallback): real poll(2).
__attribute__((noinline, cold)) int wait_thread(const IoCall& c) noexcept {
  pollfd p{c.fd,
           static_cast<short>((c.events & io::kReadable ? POLLIN : 0) |
                              (c.events & io::kWritable ? POLLOUT : 0)),
           0};
  int ms = ms_until(c.deadline);
  if (ms == 0) return EAGAIN;
  int r = real::poll(&p, 1, ms);
  if (r < 0) return errno;  // EINTR from a signal: reported as the real call would
  if (r == 0) return EAGAIN;
  return 0;
}

// The description's flags when they are not cached (F_GETFL, and the timeouts for a shared
// socket), errno kept: -errno on failure.
__attribute__((noinline)) int flags_uncached(const IoCall& c) noexcept {
  ErrnoGuard g;
  int fl = fds::description_flags(c.fd, c.entry);
  if (fl < 0) return -errno;
  g.restore();
  return fl;
}

// Every outcome of io::wait but a socket's kReady.
__attribute__((noinline)) int wait_outcome(const IoCall& c, io::WaitResult res) noexcept {
  switch (res) {
    case io::WaitResult::kReady:
      // Another thread may have switched a fallback fd back to blocking meanwhile.
      if (!c.nowait) {
        ErrnoGuard g;  // the fallback's F_GETFL/F_SETFL (not the socket fast path)
        if (!fds::ensure_nonblocking(c.fd, c.entry)) return EBADF;
      }
      return 0;
    case io::WaitResult::kTimeout:
      return EAGAIN;
    case io::WaitResult::kClosed:
      return EBADF;
    case io::WaitResult::kInterrupted: {
      // A signal for this fiber-thread: its handlers run now. signal(7): these calls restart
      // under SA_RESTART unless the socket has a timeout for this direction. A restart keeps
      // errno as the program had it (the shim's own calls in between must not show).
      ErrnoGuard g;
      switch (signals::interrupted()) {
        case signals::Intr::kNone:
          g.restore();
          return 0;  // delivered elsewhere already: just retry
        case signals::Intr::kRestart:
          if (c.deadline == kNoDeadline) {
            g.restore();
            return 0;
          }
          break;
        case signals::Intr::kEintr:
          break;
      }
      return EINTR;
    }
    default:
      return EINTR;
  }
}

// GREEN_STATS=1 only: stat_index's table of members would take 72 bytes of the frame.
__attribute__((noinline, cold)) void count_io_wait() noexcept {
  stat_add(&Stats::io_waits);
}

}  // namespace

int wait_ready_code(IoCall& c) noexcept {
  if (__builtin_expect(c.mode == Mode::kThread, 0)) return wait_thread(c);
  if (!c.checked) {
    // The EAGAIN was ours (MSG_DONTWAIT/RWF_NOWAIT) unless the description is O_NONBLOCK,
    // set by the program through this or any other fd sharing it.
    // A fallback fd (kNoNowait) carries the shim's own O_NONBLOCK: its entry records the
    // program's choice instead.
    bool user_nb;
    if (!c.nowait) {
      user_nb = c.entry->load() & fds::kUserNonblock;
    } else {
      int fl = fds::cached_flags(c.entry);  // the common case: errno untouched
      if (__builtin_expect(fl < 0, 0)) {
        fl = flags_uncached(c);
        if (fl < 0) return -fl;
      }
      user_nb = fl & O_NONBLOCK;
    }
    if (user_nb) return EAGAIN;
    std::int64_t t = c.write ? c.entry->snd_ns.load(std::memory_order_relaxed)
                             : c.entry->rcv_ns.load(std::memory_order_relaxed);
    c.deadline = t > 0 ? deadline_ns(t) : kNoDeadline;
    c.checked = true;
  }
  if (g_stats_on) count_io_wait();
  if (!(c.entry->load() & fds::kWaited)) c.entry->set(fds::kWaited);
  io::WaitResult res = io::wait(c.fd, c.events | io::kAfterEagain, c.deadline);
  if (__builtin_expect(res == io::WaitResult::kReady && c.nowait, 1)) return 0;  // errno kept
  return wait_outcome(c, res);
}

namespace {

bool is_stream(const IoCall& c) {
  return c.entry && (c.entry->load() & fds::kStream);
}

// Writes everything in iov (modified in place) for a blocking stream caller.
template <class Op>
ssize_t write_all_iov(IoCall& c, iovec* iov, int n, Op&& op) {
  ErrnoGuard g;
  ssize_t done = 0;
  int i = 0;
  while (i < n && iov[i].iov_len == 0) ++i;
  if (i == n) return run_io(c, [&] { return op(iov, n); });
  for (;;) {
    ssize_t r = op(iov + i, n - i);
    if (r < 0) {
      if (errno == EAGAIN || errno == EWOULDBLOCK) {
        if (wait_ready(c)) continue;
      }
      if (done > 0) {
        g.restore();
        return done;
      }
      return -1;
    }
    done += r;
    auto left = static_cast<size_t>(r);
    while (i < n && left >= iov[i].iov_len) {
      left -= iov[i].iov_len;
      ++i;
    }
    if (i < n) {
      iov[i].iov_base = static_cast<char*>(iov[i].iov_base) + left;
      iov[i].iov_len -= left;
    }
    while (i < n && iov[i].iov_len == 0) ++i;
    if (i == n) {
      g.restore();
      return done;
    }
  }
}

template <class Op>
ssize_t write_all_buf(IoCall& c, const void* buf, size_t len, Op&& op) {
  iovec v{const_cast<void*>(buf), len};
  return write_all_iov(c, &v, 1, [&](iovec* p, int) { return op(p->iov_base, p->iov_len); });
}

struct IovCopy {
  iovec small[16];
  std::vector<iovec> big;
  iovec* data;
  IovCopy(const iovec* src, int n) {
    if (n <= 16) {
      data = small;
    } else {
      big.assign(src, src + n);
      data = big.data();
      return;
    }
    if (n > 0) std::memcpy(small, src, sizeof(iovec) * static_cast<size_t>(n));
  }
};

bool is_socket(const IoCall& c) {
  return c.entry && (c.entry->load() & fds::kSocket);
}

// RWF_NOWAIT refused (EOPNOTSUPP): this fd uses the O_NONBLOCK fallback from now on.
void fall_back(IoCall& c) {
  c.entry->set(fds::kNoNowait);
  c.nowait = false;
  fds::ensure_nonblocking(c.fd, c.entry);
}

ssize_t readv_op(IoCall& c, const iovec* iov, int n) {
  if (c.nowait) {
    ssize_t r = preadv2(c.fd, iov, n, -1, RWF_NOWAIT);
    if (r >= 0 || errno != EOPNOTSUPP) return r;
    fall_back(c);
  }
  return real::readv(c.fd, iov, n);
}

ssize_t writev_op(IoCall& c, const iovec* iov, int n) {
  if (c.nowait) {
    ssize_t r = pwritev2(c.fd, iov, n, -1, RWF_NOWAIT);
    if (r >= 0 || errno != EOPNOTSUPP) return r;
    fall_back(c);
  }
  return real::writev(c.fd, iov, n);
}

// Pipes, eventfds and the O_NONBLOCK fallback (read_op's uncommon cases, out of line).
ssize_t read_op_other(IoCall& c, void* buf, size_t n) {
  if (c.nowait) {
    iovec v{buf, n};
    return readv_op(c, &v, 1);
  }
  return real::read(c.fd, buf, n);
}

ssize_t write_op_other(IoCall& c, const void* buf, size_t n) {
  if (c.nowait) {
    iovec v{const_cast<void*>(buf), n};
    return writev_op(c, &v, 1);
  }
  return real::write(c.fd, buf, n);
}

// The socket case is inline in the hooks' retry loops: every echo read and write.
inline ssize_t read_op(IoCall& c, void* buf, size_t n) {
  // The raw syscall: glibc's recv would add a cancellation-point wrapper (two calls per
  // read) that fiber-threads cannot use anyway (pthread_cancel is not interposed). Not libc's
  // syscall(): that is the shim's own hook (raw_syscall.hpp).
  if (c.nowait && is_socket(c)) {
    return detail::raw_syscall(SYS_recvfrom, c.fd, detail::sc_arg(buf), static_cast<long>(n),
                               MSG_DONTWAIT, 0, 0);
  }
  return read_op_other(c, buf, n);
}

inline ssize_t write_op(IoCall& c, const void* buf, size_t n) {
  if (c.nowait && is_socket(c)) {
    return detail::raw_syscall(SYS_sendto, c.fd, detail::sc_arg(buf), static_cast<long>(n),
                               MSG_DONTWAIT, 0, 0);
  }
  return write_op_other(c, buf, n);
}

int dontwait(const IoCall& c, int flags) {
  return c.nowait ? (flags | MSG_DONTWAIT) : flags;
}

// Runs op (accept/connect) with O_NONBLOCK set on the description for just that call (see the
// note at the top). *user_nb: the description already was O_NONBLOCK (op ran unchanged).
template <class Op>
auto toggled(IoCall& c, bool* user_nb, Op&& op) -> decltype(op()) {
  fds::toggle_lock(c.entry);
  int fl = fds::description_flags(c.fd, c.entry);
  if (fl < 0 || (fl & O_NONBLOCK)) {
    fds::toggle_unlock(c.entry);
    *user_nb = fl >= 0;
    return op();
  }
  *user_nb = false;
  real::fcntl(c.fd, F_SETFL, fl | O_NONBLOCK);
  auto r = op();
  int err = errno;
  real::fcntl(c.fd, F_SETFL, fl);
  fds::toggle_unlock(c.entry);
  errno = err;
  return r;
}

// A plain thread's accept/connect that met another thread's toggle window: EAGAIN although
// the description is blocking. True: retry the call.
bool met_toggle(int fd, fds::FdEntry* e) {
  if (!e || (errno != EAGAIN && errno != EWOULDBLOCK)) return false;
  int err = errno;
  fds::toggle_lock(e);
  int fl = real::fcntl(fd, F_GETFL);
  fds::toggle_unlock(e);
  errno = err;
  return fl >= 0 && !(fl & O_NONBLOCK);
}

// New fds passed in SCM_RIGHTS messages (received) or sent (now shared with the receiver).
void note_rights(const msghdr* msg, bool received) {
  if (!msg || !msg->msg_control || msg->msg_controllen < sizeof(cmsghdr)) return;
  for (cmsghdr* h = CMSG_FIRSTHDR(const_cast<msghdr*>(msg)); h;
       h = CMSG_NXTHDR(const_cast<msghdr*>(msg), h)) {
    if (h->cmsg_level != SOL_SOCKET || h->cmsg_type != SCM_RIGHTS) continue;
    size_t n = (h->cmsg_len - CMSG_LEN(0)) / sizeof(int);
    const auto* p = reinterpret_cast<const int*>(CMSG_DATA(h));
    for (size_t i = 0; i < n; ++i) {
      int fd;
      std::memcpy(&fd, p + i, sizeof fd);
      if (received) {
        fds::received(fd);
      } else if (fds::FdEntry* e = fds::get(fd)) {
        e->set(fds::kShared);
      }
    }
  }
}

// A short read on a byte-stream socket means its receive queue was empty at that instant
// (tcp_recvmsg/unix_stream_read copy until the queue is empty or the buffer full), so every
// byte that arrives later raises a new edge: the next read waits for that edge first and
// skips the read that would fail with EAGAIN. A FIN or error after the data is sticky in the
// poller, so it never parks on them. The wait's EAGAIN (O_NONBLOCK description, timeout) falls
// through to the real call, which decides.
// The hint is not cleared here: the read that follows rewrites it (note_read), and when the
// wait fails or that read returns no data, the queue is still as the last read left it (an
// EAGAIN read: empty; EOF and errors: sticky in the poller, so a wait returns at once).
__attribute__((noinline)) bool wait_drained(IoCall& c) {
  if (!(c.entry->load() & fds::kByteStream)) return true;
  int err = wait_ready_code(c);  // errno untouched unless it fails for good
  if (err == 0 || err == EAGAIN) return true;
  errno = err;
  return false;  // EBADF (closed meanwhile), EINTR (cancelled)
}

// Inline: two tests on every fiber read.
[[gnu::always_inline]] inline bool wait_if_drained(IoCall& c, size_t n) {
  if (!c.nowait || n == 0 || !c.entry->drained.load(std::memory_order_relaxed)) return true;
  return wait_drained(c);
}

__attribute__((noinline)) void set_drained(IoCall& c, std::uint8_t drained) {
  if (c.entry->load() & fds::kByteStream)
    c.entry->drained.store(drained, std::memory_order_relaxed);
}

// Inline: on a stream that keeps its pattern (every read short, or every read full) the hint
// does not change and this is a load and a compare.
[[gnu::always_inline]] inline void note_read(IoCall& c, ssize_t r, size_t n) {
  if (r <= 0 || !c.nowait) return;
  std::uint8_t drained = static_cast<size_t>(r) < n;
  if (c.entry->drained.load(std::memory_order_relaxed) != drained) set_drained(c, drained);
}

// The socket fast paths (every echo read and write): the raw syscall's -errno instead of
// errno, so a call that succeeds, after any number of EAGAINs and waits, never reads or writes
// errno (no ErrnoGuard, no __errno_location calls), and a write that goes out in one piece
// skips write_all_iov's loop. errno is written only when the program's call fails.
// (Callgrind, echo_threads at 200 connections: 785 -> 740 Ir per round trip. Not a cache
// line saved at 10k: the hook's RuntimeEntry touches the fiber-thread's TLS block anyway.)
// EWOULDBLOCK == EAGAIN on Linux.
[[gnu::always_inline]] inline bool socket_nowait(const IoCall& c) {
  return c.nowait && (c.entry->load() & fds::kSocket);
}

[[gnu::always_inline]] inline ssize_t fail(long r) {
  errno = static_cast<int>(-r);
  return -1;
}

ssize_t read_socket(IoCall& c, void* buf, size_t n) {
  if (!wait_if_drained(c, n)) return -1;
  for (;;) {
    long r = detail::raw_syscall_ret(SYS_recvfrom, c.fd, detail::sc_arg(buf), static_cast<long>(n),
                                     MSG_DONTWAIT, 0, 0);
    if (r >= 0) {
      note_read(c, r, n);
      return r;
    }
    if (r != -EAGAIN) return fail(r);
    if (int err = wait_ready_code(c)) {
      errno = err;
      if (err == EINTR) tcb::cancel_point();  // woken by pthread_cancel: acts if enabled
      return -1;
    }
  }
}

// A blocking stream write: one attempt, and the general loop (write_all_buf) only if that
// did not write everything.
ssize_t write_socket(IoCall& c, const void* buf, size_t n) {
  long r = detail::raw_syscall_ret(SYS_sendto, c.fd, detail::sc_arg(buf), static_cast<long>(n),
                                   MSG_DONTWAIT, 0, 0);
  if (r == static_cast<long>(n)) return r;
  if (r < 0 && r != -EAGAIN) return fail(r);
  size_t done = r > 0 ? static_cast<size_t>(r) : 0;
  ErrnoGuard g;  // still the program's errno
  ssize_t more = write_all_buf(c, static_cast<const char*>(buf) + done, n - done,
                               [&](void* p, size_t l) { return write_op(c, p, l); });
  if (more >= 0) return static_cast<ssize_t>(done) + more;
  if (done == 0) return -1;
  g.restore();  // the error ended the loop after progress: the count written so far
  return static_cast<ssize_t>(done);
}

ssize_t read_impl(int fd, void* buf, size_t n) {
  IoCall c = prepare_io(fd, io::kReadable, false, false);
  if (!c.wait) return real::read(fd, buf, n);
  if (socket_nowait(c)) return read_socket(c, buf, n);
  if (!wait_if_drained(c, n)) return -1;
  ssize_t r = run_io(c, [&] { return read_op(c, buf, n); });
  note_read(c, r, n);
  return r;
}

ssize_t recv_waitall(IoCall& c, void* buf, size_t len, int flags,
                     ssize_t (*op)(int, void*, size_t, int)) {
  flags = dontwait(c, flags);
  ErrnoGuard g;
  size_t done = 0;
  char* p = static_cast<char*>(buf);
  while (done < len) {
    ssize_t r = op(c.fd, p + done, len - done, flags & ~MSG_WAITALL);
    if (r > 0) {
      done += static_cast<size_t>(r);
      continue;
    }
    if (r == 0) break;
    if ((errno == EAGAIN || errno == EWOULDBLOCK) && wait_ready(c)) continue;
    if (done > 0) break;
    return -1;
  }
  g.restore();
  return static_cast<ssize_t>(done);
}

ssize_t recv_impl(int fd, void* buf, size_t len, int flags) {
  IoCall c = prepare_io(fd, io::kReadable, false, flags & MSG_DONTWAIT);
  if (c.wait && (flags & MSG_WAITALL) && is_stream(c) && len > 0)
    return recv_waitall(c, buf, len, flags, real::recv);
  if (flags != 0) return run_io(c, [&] { return real::recv(fd, buf, len, dontwait(c, flags)); });
  if (c.wait && !wait_if_drained(c, len)) return -1;
  ssize_t r = run_io(c, [&] { return real::recv(fd, buf, len, dontwait(c, 0)); });
  if (c.wait) note_read(c, r, len);
  return r;
}

ssize_t recvfrom_impl(int fd, void* buf, size_t len, int flags, sockaddr* addr, socklen_t* alen) {
  IoCall c = prepare_io(fd, io::kReadable, false, flags & MSG_DONTWAIT);
  if (c.wait && (flags & MSG_WAITALL) && is_stream(c) && len > 0 && !addr)
    return recv_waitall(c, buf, len, flags, real::recv);
  return run_io(c, [&] { return real::recvfrom(fd, buf, len, dontwait(c, flags), addr, alen); });
}

// sendfile(2) has no per-call flag either: the out fd is toggled for each call, and a
// blocking caller on a stream loops until `count` bytes went out (what the blocking call
// does), waiting for writability in between.
ssize_t sendfile_impl(int out, int in, off_t* off, size_t count,
                      ssize_t (*fn)(int, int, off_t*, size_t)) {
  IoCall c = prepare_io(out, io::kWritable, true, false);
  if (!c.wait) return fn(out, in, off, count);
  ErrnoGuard g;
  size_t done = 0;
  for (;;) {
    bool user_nb = false;
    ssize_t r = c.nowait ? toggled(c, &user_nb, [&] { return fn(out, in, off, count - done); })
                         : fn(out, in, off, count - done);
    if (user_nb) return r;
    if (r > 0) {
      done += static_cast<size_t>(r);
      if (done < count && is_stream(c)) continue;
      break;
    }
    if (r == 0) break;  // end of the input file
    if ((errno == EAGAIN || errno == EWOULDBLOCK) && wait_ready(c)) continue;
    if (done > 0) break;
    return -1;
  }
  g.restore();
  return static_cast<ssize_t>(done);
}

int accept_impl(int fd, sockaddr* addr, socklen_t* alen, int flags) {
  Mode m = mode();
  if (m == Mode::kRaw) return real::accept4(fd, addr, alen, flags);
  IoCall c = prepare_io(fd, io::kReadable, false, false);
  int nfd;
  if (m == Mode::kFiber && c.wait && c.nowait) {
    ErrnoGuard g;
    for (;;) {
      bool user_nb = false;
      nfd = toggled(c, &user_nb, [&] { return real::accept4(fd, addr, alen, flags); });
      if (nfd >= 0) {
        g.restore();
        break;
      }
      if ((errno != EAGAIN && errno != EWOULDBLOCK) || user_nb) return -1;
      if (!wait_ready(c)) return -1;
    }
  } else if (c.wait) {
    nfd = static_cast<int>(run_io(c, [&] { return real::accept4(fd, addr, alen, flags); }));
  } else {
    fds::FdEntry* e = m == Mode::kThread ? fds::get(fd) : nullptr;
    do {
      nfd = real::accept4(fd, addr, alen, flags);
    } while (nfd < 0 && met_toggle(fd, e));
  }
  if (nfd >= 0) {
    fds::FdEntry* le = fds::get(fd);
    bool stream = !le || (le->load() & fds::kStream);
    fds::created(nfd, true, stream ? SOCK_STREAM : SOCK_DGRAM, flags & SOCK_NONBLOCK, false);
  }
  return nfd;
}

}  // namespace

}  // namespace green::shim

using namespace green::shim;
namespace io = green::io;

GREEN_HOOK(read) {
  return read_impl(fd, buf, n);
}

GREEN_HOOK(__read_chk) {
  if (n > buflen) __chk_fail();
  return green_hook_read(fd, buf, n);
}

GREEN_HOOK(write) {
  IoCall c = prepare_io(fd, io::kWritable, true, false);
  if (!c.wait) return real::write(fd, buf, n);
  if (socket_nowait(c) && is_stream(c)) return write_socket(c, buf, n);
  if (is_stream(c))
    return write_all_buf(c, buf, n, [&](void* p, size_t l) { return write_op(c, p, l); });
  return run_io(c, [&] { return write_op(c, buf, n); });
}

GREEN_HOOK(readv) {
  IoCall c = prepare_io(fd, io::kReadable, false, false);
  if (!c.wait) return real::readv(fd, iov, n);
  return run_io(c, [&] { return readv_op(c, iov, n); });
}

GREEN_HOOK(writev) {
  IoCall c = prepare_io(fd, io::kWritable, true, false);
  if (!c.wait) return real::writev(fd, iov, n);
  if (is_stream(c) && n > 0 && n <= IOV_MAX) {
    IovCopy copy(iov, n);
    return write_all_iov(c, copy.data, n, [&](iovec* v, int k) { return writev_op(c, v, k); });
  }
  return run_io(c, [&] { return writev_op(c, iov, n); });
}

GREEN_HOOK(recv) {
  return recv_impl(fd, buf, len, flags);
}

GREEN_HOOK(__recv_chk) {
  if (len > buflen) __chk_fail();
  return recv_impl(fd, buf, len, flags);
}

GREEN_HOOK(recvfrom) {
  return recvfrom_impl(fd, buf, len, flags, addr, alen);
}

GREEN_HOOK(__recvfrom_chk) {
  if (len > buflen) __chk_fail();
  return recvfrom_impl(fd, buf, len, flags, addr, alen);
}

GREEN_HOOK(recvmsg) {
  IoCall c = prepare_io(fd, io::kReadable, false, flags & MSG_DONTWAIT);
  ssize_t r = run_io(c, [&] { return real::recvmsg(fd, msg, dontwait(c, flags)); });
  if (r >= 0 && c.mode != Mode::kRaw) note_rights(msg, true);
  return r;
}

GREEN_HOOK(send) {
  IoCall c = prepare_io(fd, io::kWritable, true, flags & MSG_DONTWAIT);
  if (c.wait && is_stream(c))
    return write_all_buf(
        c, buf, len, [&](void* p, size_t l) { return real::send(fd, p, l, dontwait(c, flags)); });
  return run_io(c, [&] { return real::send(fd, buf, len, dontwait(c, flags)); });
}

GREEN_HOOK(sendto) {
  IoCall c = prepare_io(fd, io::kWritable, true, flags & MSG_DONTWAIT);
  if (c.wait && is_stream(c) && !addr)
    return write_all_buf(
        c, buf, len, [&](void* p, size_t l) { return real::send(fd, p, l, dontwait(c, flags)); });
  return run_io(c, [&] { return real::sendto(fd, buf, len, dontwait(c, flags), addr, alen); });
}

GREEN_HOOK(sendmsg) {
  IoCall c = prepare_io(fd, io::kWritable, true, flags & MSG_DONTWAIT);
  if (c.mode != Mode::kRaw) note_rights(msg, false);
  int n = static_cast<int>(msg->msg_iovlen);
  if (c.wait && is_stream(c) && msg->msg_controllen == 0 && n > 0 && n <= IOV_MAX) {
    IovCopy copy(msg->msg_iov, n);
    msghdr m = *msg;
    return write_all_iov(c, copy.data, n, [&](iovec* v, int k) {
      m.msg_iov = v;
      m.msg_iovlen = static_cast<size_t>(k);
      return real::sendmsg(fd, &m, dontwait(c, flags));
    });
  }
  return run_io(c, [&] { return real::sendmsg(fd, msg, dontwait(c, flags)); });
}

GREEN_HOOK(sendfile) {
  return sendfile_impl(out, in, off, count, real::sendfile);
}

GREEN_HOOK(sendfile64) {
  return sendfile_impl(out, in, off, count, real::sendfile64);
}

GREEN_HOOK(accept) {
  return accept_impl(fd, addr, alen, 0);
}

GREEN_HOOK(accept4) {
  return accept_impl(fd, addr, alen, flags);
}

GREEN_HOOK(connect) {
  IoCall c = prepare_io(fd, io::kWritable, true, false);
  if (!c.wait || !c.nowait) {
    if (c.mode != Mode::kThread) return real::connect(fd, addr, alen);
    fds::FdEntry* e = fds::get(fd);
    int r;
    do {
      r = real::connect(fd, addr, alen);
    } while (r < 0 && met_toggle(fd, e));
    return r;
  }
  ErrnoGuard g;
  for (;;) {
    bool user_nb = false;
    int r = toggled(c, &user_nb, [&] { return real::connect(fd, addr, alen); });
    if (r == 0) {
      g.restore();
      return 0;
    }
    if (user_nb) return -1;
    if (errno == EAGAIN) {  // unix socket with a full backlog: wait and retry the connect
      if (!wait_ready(c)) return -1;
      continue;
    }
    if (errno != EINPROGRESS) return -1;
    break;
  }
  for (;;) {
    if (!wait_ready(c)) {
      if (errno == EAGAIN) errno = EINPROGRESS;  // SO_SNDTIMEO expired (socket(7))
      return -1;
    }
    // A restart after a signal's handler (or a spurious wake) comes back here early.
    pollfd p{fd, POLLOUT, 0};
    if (real::poll(&p, 1, 0) != 0) break;
  }
  int err = 0;
  socklen_t len = sizeof err;
  if (real::getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) < 0) return -1;
  if (err != 0) {
    errno = err;
    return -1;
  }
  g.restore();
  return 0;
}
