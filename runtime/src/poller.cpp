// Poller and green::io (design note in poller.hpp).
#include "tls.hpp"
#include "poller.hpp"

#include <poll.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <memory>
#include <system_error>

#include "green/detail/hooks.hpp"
#include "green/io.hpp"
#include "green/wait_group.hpp"
#include "runtime.hpp"
#include "worker.hpp"

namespace green::detail {

// --- FdTable --------------------------------------------------------------------------------

FdTable& FdTable::instance() {
  static FdTable table;
  return table;
}

FdTable::Meta* FdTable::get(int fd) {
  if (fd < 0 || fd >= kBlock * kBlocks) return nullptr;
  auto& slot = blocks_[fd / kBlock];
  Meta* block = slot.load(std::memory_order_acquire);
  if (!block) {
    auto* fresh = new Meta[kBlock];
    if (slot.compare_exchange_strong(block, fresh, std::memory_order_acq_rel)) {
      block = fresh;
    } else {
      delete[] fresh;  // another thread won; `block` now holds its pointer
    }
  }
  return &block[fd % kBlock];
}

// --- Poller -----------------------------------------------------------------------------------

Poller::~Poller() = default;

Poller::Entry* Poller::entry_for(int fd, FdTable::Meta* meta, int* err) {
  if (static_cast<std::size_t>(fd) >= entries_.size()) entries_.resize(fd + 1, nullptr);
  if (Entry* e = entries_[fd]) return e;  // registered and still ours: closers drop it first
  // Tell closers to drop our registration before close(2), then check that none is already
  // past reading the mask (Dekker pair with io::close; see the design note).
  meta->workers.fetch_or(1ull << (worker_->index() % 64), std::memory_order_seq_cst);
  if (meta->closing.load(std::memory_order_seq_cst) != 0) {
    *err = UV_EBADF;  // being closed: a wait starting now sees it closed
    return nullptr;
  }
  Entry* e;
  e = new Entry;
  e->poller = this;
  e->fd = fd;
  int r;
  {
    ShimBypass bypass;  // uv_poll_init sets O_NONBLOCK with ioctl(FIONBIO)
    r = uv_poll_init(worker_->loop(), &e->handle, fd);
  }
  if (r != 0) {
    delete e;
    *err = r;
    return nullptr;
  }
  e->handle.data = e;
  entries_[fd] = e;
  return e;
}

void Poller::arm(Entry* e, int events) {
  if ((e->armed & events) == events) return;
  e->armed |= events;
  uv_poll_start(&e->handle, e->armed, &Poller::on_event);
}

void Poller::on_event(uv_poll_t* h, int status, int events) {
  auto* e = static_cast<Entry*>(h->data);
  const int before = e->armed;
  if (status < 0) {
    // libuv reports EPOLLERR as UV_EBADF and has already stopped the handle. Wake everybody:
    // their retried syscall reports the real error.
    e->armed = 0;
    events = UV_READABLE | UV_WRITABLE;
  }
  if (events & (UV_READABLE | UV_DISCONNECT)) {
    if (!e->readers.empty()) {
      while (Waiter* w = e->readers.pop_front()) wake(w, WakeReason::kNotified);
      // The woken fibers have not read yet; with level-triggered epoll the next polls (every
      // kPollInterval dispatches) report the fd again. Keep the interest for a while instead
      // of paying epoll_ctl twice (disarm now, re-arm when the fiber waits again).
      e->read_grace = kReadGrace;
    } else if (e->read_grace > 0) {
      --e->read_grace;
    } else {
      e->armed &= ~UV_READABLE;  // nobody has been waiting for a while: stop polling it
    }
  }
  if (events & UV_WRITABLE) {
    if (e->writers.empty()) {
      e->armed &= ~UV_WRITABLE;
    } else {
      while (Waiter* w = e->writers.pop_front()) wake(w, WakeReason::kNotified);
      e->armed &= ~UV_WRITABLE;  // writable is the normal state: don't poll it unasked
    }
  }
  if (e->armed == 0) {
    uv_poll_stop(h);
  } else if (status >= 0 && e->armed != before) {
    // Only when the interest changed: uv_poll_start always begins with uv__poll_stop, i.e.
    // epoll_ctl(DEL) now and epoll_ctl(ADD) on the next poll, even for the same events.
    uv_poll_start(h, e->armed, &Poller::on_event);
  }
}

void Poller::drop(Entry* e, WakeReason why) {
  while (Waiter* w = e->readers.pop_front()) wake(w, why);
  while (Waiter* w = e->writers.pop_front()) wake(w, why);
  entries_[e->fd] = nullptr;
  uv_poll_stop(&e->handle);
  uv_close(reinterpret_cast<uv_handle_t*>(&e->handle),
           [](uv_handle_t* h) { delete static_cast<Entry*>(h->data); });
}

void Poller::fd_closed(int fd) {
  if (fd < 0 || static_cast<std::size_t>(fd) >= entries_.size()) return;
  if (Entry* e = entries_[fd]) drop(e, WakeReason::kClosed);
}

void Poller::close_all() {
  for (Entry* e : entries_) {
    if (e) drop(e, WakeReason::kClosed);
  }
  entries_.clear();
}

io::WaitResult Poller::wait(const pollfd* fds, unsigned long n, TimePoint deadline) {
  // One Waiter parks; each (fd, direction) gets a proxy node whose wake() goes to it.
  constexpr unsigned long kInline = 8;
  Waiter inline_nodes[2 * kInline];
  std::unique_ptr<Waiter[]> heap_nodes;
  Waiter* nodes = inline_nodes;
  if (n > kInline) {
    heap_nodes.reset(new Waiter[2 * n]);
    nodes = heap_nodes.get();
  }
  Waiter w(WaitKind::kIo, nullptr);
  if (n > 0) {
    w.fd = fds[0].fd;
    w.events = static_cast<unsigned>(fds[0].events);
  }
  std::size_t used = 0;
  io::WaitResult early = io::WaitResult::kReady;
  bool failed = false;
  for (unsigned long i = 0; i < n; ++i) {
    int fd = fds[i].fd;
    if (fd < 0 || !(fds[i].events & (POLLIN | POLLOUT))) continue;
    FdTable::Meta* meta = FdTable::instance().get(fd);
    int err = 0;
    Entry* e = meta ? entry_for(fd, meta, &err) : nullptr;
    if (!e) {
      // EPERM: regular files and directories cannot be polled and are always "ready".
      early = err == UV_EPERM ? io::WaitResult::kReady : io::WaitResult::kClosed;
      failed = true;  // nodes registered so far are unlinked below
      break;
    }
    int ev = 0;
    // node->slot remembers the list a node is on, for unlinking.
    if (fds[i].events & POLLIN) {
      Waiter* node = &nodes[used++];
      node->owner = &w;
      node->slot = &e->readers;
      e->readers.push_back(node);
      ev |= UV_READABLE;
    }
    if (fds[i].events & POLLOUT) {
      Waiter* node = &nodes[used++];
      node->owner = &w;
      node->slot = &e->writers;
      e->writers.push_back(node);
      ev |= UV_WRITABLE;
    }
    arm(e, ev);
  }
  if (!failed) {
    WakeReason r = park(w, deadline, {});
    switch (r) {
      case WakeReason::kNotified: early = io::WaitResult::kReady; break;
      case WakeReason::kTimeout: early = io::WaitResult::kTimeout; break;
      case WakeReason::kDeadline: early = io::WaitResult::kDeadline; break;
      case WakeReason::kCancelled: early = io::WaitResult::kCancelled; break;
      default: early = io::WaitResult::kClosed; break;
    }
  }
  // Nodes still linked are on lists of entries that did not fire (an entry that was dropped
  // unlinked its nodes first). Everything here lives on this worker's thread.
  for (std::size_t k = 0; k < used; ++k) {
    Waiter* node = &nodes[k];
    if (node->linked) static_cast<WaitList*>(node->slot)->remove(node);
  }
  return early;
}

}  // namespace green::detail

// --- green::io --------------------------------------------------------------------------------

namespace green::io {

using detail::FdTable;
using detail::Worker;

WaitResult wait_any(const pollfd* fds, unsigned long n,
                    std::chrono::steady_clock::time_point deadline) noexcept {
  Worker* w = Worker::current();
  if (!w || !detail::tls().task) {
    // Plain thread: block in poll(2).
    for (;;) {
      int ms = -1;
      if (deadline != detail::kNoDeadline) {
        auto left = deadline - std::chrono::steady_clock::now();
        if (left <= left.zero()) return WaitResult::kTimeout;
        ms = int(std::min<long long>(
            std::chrono::ceil<std::chrono::milliseconds>(left).count(), 1 << 30));
      }
      std::unique_ptr<pollfd[]> copy(new pollfd[n]);
      for (unsigned long i = 0; i < n; ++i) copy[i] = fds[i];
      int r = ::poll(copy.get(), n, ms);
      if (r > 0) {
        for (unsigned long i = 0; i < n; ++i) {
          if (copy[i].revents & POLLNVAL) return WaitResult::kClosed;
        }
        return WaitResult::kReady;
      }
      if (r < 0 && errno != EINTR) return WaitResult::kClosed;
    }
  }
  return w->poller().wait(fds, n, deadline);
}

WaitResult wait(int fd, unsigned events, std::chrono::steady_clock::time_point deadline) noexcept {
  pollfd p{fd, static_cast<short>(((events & kReadable) ? POLLIN : 0) |
                                  ((events & kWritable) ? POLLOUT : 0)),
           0};
  return wait_any(&p, 1, deadline);
}

namespace {
bool wait_throwing(int fd, unsigned events, std::chrono::nanoseconds timeout) {
  auto deadline = timeout == std::chrono::nanoseconds::max() ? detail::kNoDeadline
                                                             : detail::deadline_after(timeout);
  switch (wait(fd, events, deadline)) {
    case WaitResult::kReady: return true;
    case WaitResult::kTimeout: return false;
    case WaitResult::kCancelled: detail::throw_if_interrupted(detail::WakeReason::kCancelled);
    [[fallthrough]];
    case WaitResult::kDeadline: detail::throw_if_interrupted(detail::WakeReason::kDeadline);
    [[fallthrough]];
    case WaitResult::kClosed: break;
  }
  throw std::system_error(EBADF, std::generic_category(), "green::io::wait");
}
}  // namespace

bool wait_readable(int fd, std::chrono::nanoseconds timeout) {
  return wait_throwing(fd, kReadable, timeout);
}

bool wait_writable(int fd, std::chrono::nanoseconds timeout) {
  return wait_throwing(fd, kWritable, timeout);
}

namespace {

// Drops every worker's registration of fd and returns once all are gone (see poller.hpp).
// The caller holds meta->closing.
void drop_everywhere(int fd, FdTable::Meta* meta) {
  std::uint64_t mask = meta->workers.exchange(0, std::memory_order_seq_cst);
  if (!mask) return;
  auto* rt = detail::Runtime::current();
  if (!rt) return;
  Worker* self = Worker::current();
  WaitGroup acks;
  for (std::size_t i = 0; i < rt->worker_count(); ++i) {
    if (!(mask & (1ull << (i % 64)))) continue;
    Worker* w = rt->worker(i);
    if (w == self) {
      w->poller().fd_closed(fd);
      continue;
    }
    acks.add(1);
    if (!w->post_fd_closed(fd, &acks)) acks.done();  // torn down: nothing left to drop
  }
  // Parks a fiber; blocks a plain thread. Not interruptible: close must not half-happen.
  acks.wait_uninterruptible();
}

}  // namespace

void forget(int fd) noexcept {
  FdTable::Meta* meta = FdTable::instance().get(fd);
  if (!meta) return;
  meta->closing.fetch_add(1, std::memory_order_seq_cst);
  drop_everywhere(fd, meta);
  meta->closing.fetch_sub(1, std::memory_order_seq_cst);
}

int close(int fd) noexcept {
  FdTable::Meta* meta = FdTable::instance().get(fd);
  if (!meta) return ::close(fd);
  meta->closing.fetch_add(1, std::memory_order_seq_cst);
  drop_everywhere(fd, meta);
  int r = ::close(fd);
  int saved = errno;
  meta->closing.fetch_sub(1, std::memory_order_seq_cst);
  errno = saved;
  return r;
}

}  // namespace green::io
