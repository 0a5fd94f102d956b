// Poller and green::io (design note in poller.hpp).
#include "poller.hpp"

#include <fcntl.h>
#include <poll.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <memory>
#include <system_error>

#include "fd_capacity.hpp"
#include "green/detail/hooks.hpp"
#include "green/detail/raw_syscall.hpp"
#include "green/fiber.hpp"
#include "green/io.hpp"
#include "runtime.hpp"
#include "tls.hpp"
#include "worker.hpp"

namespace green::detail {

// --- FdTable --------------------------------------------------------------------------------

FdTable& FdTable::instance() {
  static FdTable table(fd_table_size());
  return table;
}

FdTable::FdTable(int size) : table_(map_fd_table<Meta>(size)), size_(table_ ? size : 0) {}

// --- the runtime's own fds ---------------------------------------------------------------------

// Where they go (reserve_internal_fds, poller.hpp): above the program's soft RLIMIT_NOFILE (and
// not below 1024), so a program sees the numbers it would see without the runtime (lowest free
// numbers, an fstat scan up to sysconf(_SC_OPEN_MAX)); F_DUPFD needs a soft limit above the
// target, so place_internal_fd raises it for the one call. Bounded by kMaxInternalBase: libuv's
// watcher array is indexed by fd (8 bytes per number up to the highest watched one).
namespace {
constexpr rlim_t kMaxInternalBase = rlim_t(1) << 16;
constexpr rlim_t kLowBase = 1024;  // the fallback: in range, above what select() can name
SpinLock g_fd_lock;                // serializes the soft-limit changes below
int g_fd_base GREEN_GUARDED_BY(g_fd_lock) = -1;  // -1: internal fds stay where they are
// The soft limit we lowered it to (0: none) and the one before. Written under g_fd_lock,
// read without it by restore_fd_limit (a fork child: the lock's holder may not exist there).
std::atomic<rlim_t> g_lowered_to{0};
std::atomic<rlim_t> g_soft_before{0};

int set_nofile(rlim_t soft, rlim_t hard) {
  rlimit rl{soft, hard};
  return static_cast<int>(raw_syscall_ret(SYS_prlimit64, 0, RLIMIT_NOFILE, sc_arg(&rl), 0));
}
bool get_nofile(rlimit* rl) {
  return raw_syscall_ret(SYS_prlimit64, 0, RLIMIT_NOFILE, 0, sc_arg(rl)) == 0;
}
}  // namespace

void reserve_internal_fds(int count) noexcept {
  rlimit rl{};
  if (count <= 0 || !get_nofile(&rl) || rl.rlim_max == RLIM_INFINITY) return;
  const rlim_t soft = rl.rlim_cur, hard = rl.rlim_max, need = rlim_t(count);
  SpinGuard g(g_fd_lock);
  g_fd_base = -1;
  // Not right at a low soft limit: programs that lowered theirs look just above it for fds
  // they left open there (CPython's test_close_fds_when_max_fd_is_lowered).
  const rlim_t above = soft > kLowBase ? soft : kLowBase;
  if (above <= kMaxInternalBase && above + need <= hard) {
    g_fd_base = int(above);  // room above the soft limit: the program's view does not change
  } else if (hard >= kLowBase + need && hard - need <= kMaxInternalBase &&
             set_nofile(hard - need, hard) == 0) {
    // The soft limit is (nearly) the hard one: lower it by the reserve (valgrind does the
    // same), so that the program's range still excludes the runtime's numbers.
    if (g_lowered_to.load(std::memory_order_relaxed) == 0)
      g_soft_before.store(soft, std::memory_order_relaxed);
    g_lowered_to.store(hard - need, std::memory_order_relaxed);
    g_fd_base = int(hard - need);
  } else if (soft >= kLowBase + need) {
    g_fd_base = int(kLowBase);  // a huge range: only out of the way of the low numbers
  }
}

void restore_fd_limit() noexcept {
  rlim_t lowered = g_lowered_to.exchange(0, std::memory_order_relaxed);
  rlimit rl{};
  if (lowered != 0 && get_nofile(&rl) && rl.rlim_cur == lowered)  // unless the program moved it
    set_nofile(g_soft_before.load(std::memory_order_relaxed), rl.rlim_max);
}

int place_internal_fd(int fd) noexcept {
  SpinGuard g(g_fd_lock);
  const int base = g_fd_base;
  if (fd < 0 || base < 0 || fd >= base) return fd;
  rlimit rl{};
  if (!get_nofile(&rl)) return fd;
  bool raise = rl.rlim_cur != RLIM_INFINITY && rl.rlim_cur < rlim_t(base) + 4096;
  if (raise && set_nofile(rl.rlim_max, rl.rlim_max) != 0) return fd;
  long moved = raw_syscall_ret(SYS_fcntl, fd, F_DUPFD_CLOEXEC, base);
  if (raise) set_nofile(rl.rlim_cur, rl.rlim_max);
  if (moved < 0) return fd;  // no free number there: keep it where it is
  raw_syscall_ret(SYS_close, fd);
  return int(moved);
}

namespace {
std::atomic<int> g_transient_base{-1};  // soft limit - 256 as last read; -1: read it again
}  // namespace

int place_transient_fd(int fd) noexcept {
  int base = g_transient_base.load(std::memory_order_relaxed);
  for (int attempt = 0; fd >= 0 && attempt < 2; ++attempt) {
    if (base < 0) {
      rlimit rl{};
      if (!get_nofile(&rl)) return fd;
      rlim_t soft = rl.rlim_cur < (rlim_t(1) << 20) ? rl.rlim_cur : rlim_t(1) << 20;
      base = soft >= kLowBase ? int(soft - 256) : 0;
      g_transient_base.store(base, std::memory_order_relaxed);
    }
    if (base == 0) return place_internal_fd(fd);  // a low limit: no top to use, go above it
    if (fd >= base) return fd;
    long moved = raw_syscall_ret(SYS_fcntl, fd, F_DUPFD_CLOEXEC, base);
    if (moved >= 0) {
      raw_syscall_ret(SYS_close, fd);
      return int(moved);
    }
    base = -1;  // EINVAL: the program lowered its limit; EMFILE: the top is in use. Look again.
  }
  return fd;
}

// --- Poller -----------------------------------------------------------------------------------

namespace {
constexpr std::uint32_t kEpollEvents = EPOLLIN | EPOLLOUT | EPOLLRDHUP | EPOLLET;
constexpr int kMaxEvents = 256;

// -errno on failure, errno untouched (a wait must leave the caller's errno alone; see io.hpp).
long epoll_ctl_ret(int ep, int op, int fd, epoll_event* ev) {
  return raw_syscall_ret(SYS_epoll_ctl, ep, op, fd, sc_arg(ev));
}
}  // namespace

Poller::Poller(Worker* w)
    : worker_(w),
      fds_(FdTable::instance()),
      epfd_(place_internal_fd(static_cast<int>(raw_syscall(SYS_epoll_create1, EPOLL_CLOEXEC)))),
      size_(fds_.size()),
      entries_(map_fd_table<Entry*>(size_)) {}

Poller::~Poller() {
  unmap_fd_table(entries_, size_);
  if (epfd_ >= 0) raw_syscall(SYS_close, epfd_);
}

bool Poller::watch() {
  if (watching_) return true;
  if (epfd_ < 0) return false;
  int r;
  {
    ShimBypass bypass;  // uv_poll_init sets O_NONBLOCK on the epoll fd (ours) with ioctl
    int saved = errno;  // once per worker; a wait leaves errno alone (io.hpp)
    r = uv_poll_init(worker_->loop(), &watch_, epfd_);
    errno = saved;
  }
  if (r != 0) return false;
  watch_.data = this;
  uv_poll_start(&watch_, UV_READABLE, &Poller::on_epoll);
  watching_ = true;
  return true;
}

void Poller::on_epoll(uv_poll_t* h, int, int) {
  static_cast<Poller*>(h->data)->poll_now();
}

int Poller::poll_now() {
  owner_.assert_held();  // the loop's callback, on the scheduler context
  if (!watching_) return 0;
  epoll_event evs[kMaxEvents];
  int n = static_cast<int>(raw_syscall(SYS_epoll_pwait, epfd_, sc_arg(evs), kMaxEvents, 0, 0, 8));
  for (int i = 0; i < n; ++i) {
    auto fd = static_cast<int>(evs[i].data.u64 & 0xffffffffu);
    auto gen = static_cast<std::uint32_t>(evs[i].data.u64 >> 32);
    if (fd < 0 || fd >= used_) continue;
    Entry* e = entries_[fd];
    if (!e || e->gen != gen) continue;  // a stale kernel registration (see the design note)
    std::uint32_t ev = evs[i].events;
    if (__builtin_expect(ev & (EPOLLRDHUP | EPOLLHUP | EPOLLERR), 0)) {
      if (ev & EPOLLRDHUP) e->state |= kRdHup;
      if (ev & (EPOLLHUP | EPOLLERR)) e->state |= kHup;
    }
    if (ev & (EPOLLIN | EPOLLRDHUP | EPOLLHUP | EPOLLERR)) {
      if (e->readers.empty()) {
        e->state |= kRdReady;
      } else {
        while (Waiter* w = e->readers.pop_front()) wake(w, WakeReason::kNotified);
      }
    }
    if (ev & (EPOLLOUT | EPOLLHUP | EPOLLERR)) {
      if (e->writers.empty()) {
        e->state |= kWrReady;
      } else {
        while (Waiter* w = e->writers.pop_front()) wake(w, WakeReason::kNotified);
      }
    }
  }
  return n > 0 ? n : 0;
}

inline Poller::Entry* Poller::lookup(int fd, FdTable::Meta* meta, io::WaitResult* res) {
  if (entries_) {
    // acquire: as in entry_for (pairs with the closer's acq_rel generation bump).
    std::uint32_t gen = meta->gen.load(std::memory_order_acquire);
    Entry* e = entries_[fd];
    if (e && e->gen == gen) return e;
  }
  return entry_for(fd, meta, res);
}

Poller::Entry* Poller::entry_for(int fd, FdTable::Meta* meta, io::WaitResult* res) {
  if (!entries_) {  // the mapping failed: nothing can be registered
    *res = io::WaitResult::kClosed;
    return nullptr;
  }
  for (;;) {
    // acquire: pairs with the closer's acq_rel bump (drop_everywhere): a wait that sees the
    // new generation also sees what the closer did before it (the shim's entry reset).
    std::uint32_t gen = meta->gen.load(std::memory_order_acquire);
    Entry* e = entries_[fd];
    if (e && e->gen == gen) return e;     // registered for the file this number names now
    if (e) drop(e, WakeReason::kClosed);  // its file was closed: its waiters see EBADF
    // Tell closers to remove our registration before close(2), then check that none is
    // already past reading the mask (Dekker pair with io::close; see the design note).
    meta->workers.fetch_or(1ull << (worker_->index() % 64), std::memory_order_seq_cst);
    if (meta->closing.load(std::memory_order_seq_cst) != 0) {
      this_fiber::yield();  // a close is in flight: let it finish (it never parks), then retry
      continue;
    }
    if (!watch()) {
      *res = io::WaitResult::kClosed;
      return nullptr;
    }
    epoll_event ev{};
    ev.events = kEpollEvents;
    ev.data.u64 = static_cast<std::uint64_t>(static_cast<std::uint32_t>(fd)) |
                  (static_cast<std::uint64_t>(gen) << 32);
    long r = epoll_ctl_ret(epfd_, EPOLL_CTL_ADD, fd, &ev);
    if (r == -EEXIST) r = epoll_ctl_ret(epfd_, EPOLL_CTL_MOD, fd, &ev);
    if (r < 0) {
      // EPERM: regular files and directories cannot be polled and are always "ready".
      *res = r == -EPERM ? io::WaitResult::kReady : io::WaitResult::kClosed;
      return nullptr;
    }
    e = new Entry;
    e->fd = fd;
    e->gen = gen;
    entries_[fd] = e;
    if (fd >= used_) used_ = fd + 1;
    return e;
  }
}

void Poller::drop(Entry* e, WakeReason why) {
  while (Waiter* w = e->readers.pop_front()) wake(w, why);
  while (Waiter* w = e->writers.pop_front()) wake(w, why);
  entries_[e->fd] = nullptr;
  delete e;
}

void Poller::fd_closed(int fd, std::uint32_t gen) {
  owner_.assert_held();  // a message on the scheduler context, or the closing fiber itself
  if (fd < 0 || fd >= used_) return;
  Entry* e = entries_[fd];
  if (e && static_cast<std::int32_t>(e->gen - gen) < 0) drop(e, WakeReason::kClosed);
}

void Poller::close_all() {
  owner_.assert_held();  // worker teardown, on its thread
  for (int fd = 0; fd < used_; ++fd) {
    if (Entry* e = entries_[fd]) drop(e, WakeReason::kClosed);
  }
  used_ = 0;
  if (watching_) {
    uv_close(reinterpret_cast<uv_handle_t*>(&watch_), nullptr);
    watching_ = false;
  }
}

namespace {
io::WaitResult result_of(WakeReason r) {
  switch (r) {
    case WakeReason::kNotified:
      return io::WaitResult::kReady;
    case WakeReason::kTimeout:
      return io::WaitResult::kTimeout;
    case WakeReason::kDeadline:
      return io::WaitResult::kDeadline;
    case WakeReason::kCancelled:
      return io::WaitResult::kCancelled;
    case WakeReason::kInterrupted:
      return io::WaitResult::kInterrupted;  // shim signals
    default:
      return io::WaitResult::kClosed;
  }
}
}  // namespace

// The common case (one fd): no arrays, and for one direction no proxy node either.
// Always inline (used only in this file): io::wait's direct path is then one frame down to
// park() instead of three (io::wait -> wait_fd -> wait_one), on every echo read that waits.
__attribute__((always_inline)) inline io::WaitResult Poller::wait_one(int fd, short events,
                                                                      TimePoint deadline,
                                                                      bool probed) {
  FdTable::Meta* meta = fds_.get(fd);
  io::WaitResult res = io::WaitResult::kClosed;
  Entry* e = meta ? lookup(fd, meta, &res) : nullptr;
  if (!e) return res;
  bool rd = events & POLLIN, wr = events & POLLOUT;
  if (e->state & ((rd ? kRdAnswers : 0) | (wr ? kWrAnswers : 0))) {
    e->state &= static_cast<std::uint8_t>(~((rd ? kRdReady : 0) | (wr ? kWrReady : 0)));
    return io::WaitResult::kReady;
  }
  if (!probed) {
    pollfd p{fd, events, 0};
    if (raw_syscall_ret(SYS_poll, sc_arg(&p), 1, 0) > 0) return io::WaitResult::kReady;
  }
  if (__builtin_expect(rd && wr, 0)) return wait_both(e, fd, events, deadline);
  // The one Waiter of this frame: io::wait's frame is then its saved registers and this
  // line or two, which the resume reads back after other fibers evicted them (the proxy
  // nodes of a two-direction wait live in wait_both's frame instead).
  Waiter w(WaitKind::kIo, nullptr);
  w.fd = fd;
  w.events = static_cast<unsigned>(events);
  WaitList& list = rd ? e->readers : e->writers;
  list.push_back(&w);
  WakeReason r = park(w, deadline, {});
  if (w.linked) list.remove(&w);  // timeout/cancel; a dropped entry unlinked it first
  return result_of(r);
}

// Both directions on one fd: one Waiter parks, a proxy node per direction (a Waiter is on
// one list at a time). Out of line: rare, and its 3 Waiters would widen wait_one's frame.
__attribute__((noinline)) io::WaitResult Poller::wait_both(Entry* e, int fd, short events,
                                                           TimePoint deadline) {
  Waiter w(WaitKind::kIo, nullptr);
  w.fd = fd;
  w.events = static_cast<unsigned>(events);
  Waiter nodes[2];
  nodes[0].owner = &w;
  nodes[1].owner = &w;
  e->readers.push_back(&nodes[0]);
  e->writers.push_back(&nodes[1]);
  WakeReason r = park(w, deadline, {});
  if (nodes[0].linked) e->readers.remove(&nodes[0]);
  if (nodes[1].linked) e->writers.remove(&nodes[1]);
  return result_of(r);
}

__attribute__((always_inline)) inline io::WaitResult Poller::wait_fd(int fd, short events,
                                                                     TimePoint deadline,
                                                                     bool probed) {
  owner_.assert_held();  // a fiber of this worker (io::wait takes the current worker's)
  return wait_one(fd, events, deadline, probed);
}

io::WaitResult Poller::wait(const pollfd* fds, unsigned long n, TimePoint deadline, bool probed) {
  owner_.assert_held();  // a fiber of this worker (io::wait_any takes the current worker's)
  if (n == 1 && fds[0].fd >= 0 && (fds[0].events & (POLLIN | POLLOUT)))
    return wait_one(fds[0].fd, static_cast<short>(fds[0].events & (POLLIN | POLLOUT)), deadline,
                    probed);
  // One Waiter parks; each (fd, direction) gets a proxy node whose wake() goes to it.
  constexpr unsigned long kInline = 8;
  Entry* inline_entries[kInline];
  std::unique_ptr<Entry*[]> heap_entries;
  Entry** ents = inline_entries;
  if (n > kInline) {
    heap_entries.reset(new Entry*[n]);
    ents = heap_entries.get();
  }
  // Pass 1: find (or register) every entry; an edge that nobody consumed yet ends the wait
  // before it starts.
  bool ready = false;
  for (unsigned long i = 0; i < n; ++i) {
    ents[i] = nullptr;
    int fd = fds[i].fd;
    if (fd < 0 || !(fds[i].events & (POLLIN | POLLOUT))) continue;
    FdTable::Meta* meta = fds_.get(fd);
    io::WaitResult res = io::WaitResult::kClosed;
    Entry* e = meta ? lookup(fd, meta, &res) : nullptr;
    if (!e) return res;
    ents[i] = e;
    if ((fds[i].events & POLLIN) && (e->state & kRdAnswers)) {
      e->state &= static_cast<std::uint8_t>(~kRdReady);
      ready = true;
    }
    if ((fds[i].events & POLLOUT) && (e->state & kWrAnswers)) {
      e->state &= static_cast<std::uint8_t>(~kWrReady);
      ready = true;
    }
  }
  if (ready) return io::WaitResult::kReady;
  if (!probed) {
    // Level semantics for callers that did not just see EAGAIN: the edge of a state that
    // was already there when the fd was registered earlier has been consumed.
    std::unique_ptr<pollfd[]> copy(new pollfd[n]);
    for (unsigned long i = 0; i < n; ++i) copy[i] = fds[i];
    if (raw_syscall_ret(SYS_poll, sc_arg(copy.get()), static_cast<long>(n), 0) > 0) {
      return io::WaitResult::kReady;
    }
  }
  // entry_for may have yielded: an entry found early could have been dropped since. Check
  // again without yielding (a dropped entry means the fd was closed: report it).
  for (unsigned long i = 0; i < n; ++i) {
    int fd = fds[i].fd;
    if (!ents[i]) continue;
    if (entries_[fd] != ents[i]) return io::WaitResult::kClosed;
  }
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
  for (unsigned long i = 0; i < n; ++i) {
    Entry* e = ents[i];
    if (!e) continue;
    // node->slot remembers the list a node is on, for unlinking.
    if (fds[i].events & POLLIN) {
      Waiter* node = &nodes[used++];
      node->owner = &w;
      node->slot = &e->readers;
      e->readers.push_back(node);
    }
    if (fds[i].events & POLLOUT) {
      Waiter* node = &nodes[used++];
      node->owner = &w;
      node->slot = &e->writers;
      e->writers.push_back(node);
    }
  }
  io::WaitResult result = result_of(park(w, deadline, {}));
  // Nodes still linked are on lists of entries that did not fire (an entry that was dropped
  // unlinked its nodes first). Everything here lives on this worker's thread.
  for (std::size_t k = 0; k < used; ++k) {
    Waiter* node = &nodes[k];
    if (node->linked) static_cast<WaitList*>(node->slot)->remove(node);
  }
  return result;
}

}  // namespace green::detail

// --- green::io --------------------------------------------------------------------------------

namespace green::io {

using detail::FdTable;
using detail::Worker;

namespace {

// True if one of fds has no FdTable entry (beyond the table: see poller.hpp, Tables).
bool beyond_table(const pollfd* fds, unsigned long n) {
  int size = FdTable::instance().size();
  for (unsigned long i = 0; i < n; ++i) {
    if (fds[i].fd >= size) return true;
  }
  return false;
}

}  // namespace

WaitResult wait_any(const pollfd* fds, unsigned long n,
                    std::chrono::steady_clock::time_point deadline, unsigned flags) noexcept {
  Worker* w = Worker::current();
  if (!w || !detail::tls().task || beyond_table(fds, n)) {
    // Plain thread, or an fd without a table entry (the plain path): block in poll(2).
    for (;;) {
      int ms = -1;
      if (deadline != detail::kNoDeadline) {
        auto left = deadline - std::chrono::steady_clock::now();
        if (left <= left.zero()) return WaitResult::kTimeout;
        ms = int(std::min<long long>(std::chrono::ceil<std::chrono::milliseconds>(left).count(),
                                     1 << 30));
      }
      std::unique_ptr<pollfd[]> copy(new pollfd[n]);
      for (unsigned long i = 0; i < n; ++i) copy[i] = fds[i];
      int r;
      {
        // On a fiber (an fd beyond the tables) the shim's poll hook would come back here.
        detail::ShimBypass bypass;
        r = ::poll(copy.get(), n, ms);
      }
      if (r > 0) {
        for (unsigned long i = 0; i < n; ++i) {
          if (copy[i].revents & POLLNVAL) return WaitResult::kClosed;
        }
        return WaitResult::kReady;
      }
      if (r < 0 && errno != EINTR) return WaitResult::kClosed;
    }
  }
  // The wait's entries and waiter lists are this worker's (owner thread only), and the fiber
  // unlinks itself from them after it wakes: it must resume here.
  detail::PinToWorker pin(w->running());
  return w->poller().wait(fds, n, deadline, (flags & kAfterEagain) != 0);
}

WaitResult wait(int fd, unsigned events, std::chrono::steady_clock::time_point deadline) noexcept {
  auto ev = static_cast<short>(((events & kReadable) ? POLLIN : 0) |
                               ((events & kWritable) ? POLLOUT : 0));
  // The direct path (every echo read and write that waits): a fiber, an fd with a table
  // entry, a direction to wait for. Anything else is wait_any's to decide.
  Worker* w = Worker::current();
  if (w && ev != 0 && fd >= 0 && fd < w->poller().table_size() && detail::tls().task) {
    // Pinned as in wait_any: the waiter is linked on this worker's entry (the merge of the
    // direct path with migration missed this: a fiber-thread woken from an fd wait moved, and
    // the entry kept a dangling waiter; shim_thread_exceptions crashed at exit).
    detail::PinToWorker pin(w->running());
    return w->poller().wait_fd(fd, ev, deadline, (events & kAfterEagain) != 0);
  }
  pollfd p{fd, ev, 0};
  return wait_any(&p, 1, deadline, events & kAfterEagain);
}

namespace {
bool wait_throwing(int fd, unsigned events, std::chrono::nanoseconds timeout) {
  auto deadline = timeout == std::chrono::nanoseconds::max() ? detail::kNoDeadline
                                                             : detail::deadline_after(timeout);
  switch (wait(fd, events, deadline)) {
    case WaitResult::kReady:
      return true;
    case WaitResult::kTimeout:
      return false;
    case WaitResult::kCancelled:
      detail::throw_if_interrupted(detail::WakeReason::kCancelled);
      [[fallthrough]];
    case WaitResult::kDeadline:
      detail::throw_if_interrupted(detail::WakeReason::kDeadline);
      [[fallthrough]];
    case WaitResult::kClosed:
      break;
    case WaitResult::kInterrupted:
      return true;  // only the shim interrupts: look again
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

// Removes fd from the epoll set of every worker that may have registered it and has their
// waiters woken with kClosed (see poller.hpp). Returns after the epoll removals; remote
// wake-ups are posted, not awaited.
void drop_everywhere(int fd, FdTable::Meta* meta) {
  // acq_rel: a waiter that loads the new generation (acquire) also sees what preceded it.
  std::uint32_t gen = meta->gen.fetch_add(1, std::memory_order_acq_rel) + 1;
  // seq_cst: the closer's side of the Dekker pair with entry_for (poller.hpp, Close): after
  // io::close's `closing` increment, so a waiter that set its bit too late sees `closing`.
  std::uint64_t mask = meta->workers.exchange(0, std::memory_order_seq_cst);
  if (!mask) return;
  auto* rt = detail::Runtime::current();
  if (!rt) return;
  Worker* self = Worker::current();
  int saved = errno;
  for (std::size_t i = 0; i < rt->worker_count(); ++i) {
    if (!(mask & (1ull << (i % 64)))) continue;
    Worker* w = rt->worker(i);
    int ep = w->poller().epoll_fd();
    if (ep >= 0) detail::raw_syscall(SYS_epoll_ctl, ep, EPOLL_CTL_DEL, fd, 0);  // ENOENT: fine
    if (w == self) {
      w->poller().fd_closed(fd, gen);
    } else {
      w->post_fd_closed(fd, gen);  // false: torn down, nothing left to wake
    }
  }
  errno = saved;
}

}  // namespace

void forget(int fd) noexcept {
  FdTable::Meta* meta = FdTable::instance().get(fd);
  if (!meta) return;
  drop_everywhere(fd, meta);
}

int close(int fd) noexcept {
  FdTable::Meta* meta = FdTable::instance().get(fd);
  if (!meta) return ::close(fd);
  // seq_cst: the closer's store of the Dekker pair with entry_for (its bit, then `closing`);
  // ordered before drop_everywhere's exchange of the worker mask.
  meta->closing.fetch_add(1, std::memory_order_seq_cst);
  drop_everywhere(fd, meta);
  int r = ::close(fd);
  int saved = errno;
  // After close(2): a waiter that sees `closing` back at 0 registers again and gets EBADF
  // (or the new file under a reused number), never the closed file's registration.
  meta->closing.fetch_sub(1, std::memory_order_seq_cst);
  errno = saved;
  return r;
}

}  // namespace green::io
