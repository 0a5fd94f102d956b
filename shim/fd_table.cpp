// The fd table (see fd_table.hpp for what an entry means).
//
// Storage: one array of FdEntry sized at start-up by the per-fd tables' one rule
// (runtime/src/fd_capacity.hpp: RLIMIT_NOFILE's hard limit, at least 2^16, at most 2^20
// entries, MAP_NORESERVE so untouched pages cost nothing). fds beyond it get no entry and are
// passed through untouched (documented in docs/shim.md).
//
// Classification rules (classify()): socket -> managed (stream if SOCK_STREAM/SEQPACKET);
// FIFO -> managed stream; anonymous inode (eventfd, timerfd, signalfd, inotify: st_mode has no
// file type bits) -> managed; everything else -> passthrough. An fd that was open when the
// table was initialized is passthrough unless it is a socket numbered above 2.
#include "fd_table.hpp"

#include <fcntl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cerrno>

#include "../runtime/src/fd_capacity.hpp"
#include "common.hpp"
#include "green/io.hpp"
#include "real.hpp"

namespace green::shim::fds {

namespace detail {
FdEntry* g_table = nullptr;
int g_capacity = 0;
std::atomic<bool> g_all_shared{false};  // set in the parent by fork(): the child shares all
}  // namespace detail

namespace {
using detail::g_all_shared;
using detail::g_capacity;
using detail::g_table;

std::atomic<bool> g_init{false};
// Bumped whenever a shared description's flags may have changed (flags_changed on a kShared
// entry, fork): cached flags of shared entries are trusted only within one epoch.
std::atomic<std::uint32_t> g_epoch{1};
std::atomic<bool> g_timeouts{false};  // the program set SO_RCVTIMEO/SO_SNDTIMEO somewhere

void store_timeouts(int fd, FdEntry* e) {
  timeval tv{};
  socklen_t len = sizeof tv;
  if (real::getsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, &len) == 0)
    e->rcv_ns.store(tv.tv_sec * 1000000000LL + tv.tv_usec * 1000LL, std::memory_order_relaxed);
  len = sizeof tv;
  if (real::getsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, &len) == 0)
    e->snd_ns.store(tv.tv_sec * 1000000000LL + tv.tv_usec * 1000LL, std::memory_order_relaxed);
}

std::uint32_t classify_now(int fd, bool inherited) {
  struct stat st;
  if (fstat(fd, &st) != 0) return kUnknown;  // not open (EBADF): leave for the real call
  std::uint32_t fmt = st.st_mode & S_IFMT;
  std::uint32_t b = inherited ? std::uint32_t{kInherited | kShared} : 0u;
  int fl = real::fcntl ? real::fcntl(fd, F_GETFL) : -1;
  if (fl >= 0 && (fl & O_NONBLOCK)) b |= kUserNonblock;
  if (fl >= 0 && !inherited) b |= kShared;  // not created through the shim: who knows
  if (fmt == S_IFSOCK) {
    int type = 0;
    socklen_t len = sizeof type;
    b |= kSocket;
    if (real::getsockopt && real::getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &len) == 0 &&
        (type == SOCK_STREAM || type == SOCK_SEQPACKET))
      b |= kStream | (type == SOCK_STREAM ? kByteStream : 0u);
    // Inherited stdio stays untouched even when it is a socket (inetd style): the peer may be
    // shared with the parent.
    return b | static_cast<std::uint32_t>((inherited && fd <= 2) ? kPassthrough : kManaged);
  }
  if (fmt == S_IFIFO)
    return b | kStream | static_cast<std::uint32_t>(inherited ? kPassthrough : kManaged);
  if (fmt == 0)
    return b | static_cast<std::uint32_t>(inherited ? kPassthrough : kManaged);  // anon inode
  return b | kPassthrough;
}

}  // namespace

void init() noexcept {
  bool expected = false;
  if (!g_init.compare_exchange_strong(expected, true)) return;  // seq_cst: one init, any order
  int saved = errno;
  int n = green::detail::fd_table_size();
  g_table = green::detail::map_fd_table<FdEntry>(n);  // zero pages are valid (all-zero) entries
  if (!g_table) {
    errno = saved;
    return;
  }
  // Mark what is open now. /proc/self/fd would need opendir (malloc) this early; probing the
  // low range with F_GETFD is cheap and enough for what a process inherits in practice.
  int probe = n < 4096 ? n : 4096;
  for (int fd = 0; fd < probe; ++fd) {
    if (real::fcntl(fd, F_GETFD) < 0) continue;
    g_table[fd].bits.store(classify_now(fd, true), std::memory_order_relaxed);
  }
  // release: publishes the table and the classifications above to get()'s acquire load.
  __atomic_store_n(&g_capacity, n, __ATOMIC_RELEASE);
  errno = saved;
}

int capacity() noexcept {
  return __atomic_load_n(&g_capacity, __ATOMIC_ACQUIRE);  // pairs with init()'s release
}

FdEntry* detail::classify_slow(int fd, FdEntry* e) noexcept {
  int saved = errno;
  std::uint32_t b = classify_now(fd, false);
  errno = saved;
  if (b == kUnknown) return e;
  std::uint32_t expected = 0;
  if (e->bits.compare_exchange_strong(expected, b, std::memory_order_relaxed)) {
    // A number seen for the first time since its last close: registrations of an earlier
    // holder (closed behind the shim's back) must not answer for it.
    green::io::forget(fd);
  }
  return e;
}

void received(int fd) noexcept {
  FdEntry* e = get(fd);
  if (!e) return;
  int saved = errno;
  std::uint32_t b = classify_now(fd, false);
  errno = saved;
  e->reset(b == kUnknown ? 0u : (b | kShared));
  green::io::forget(fd);
}

int detail::description_flags_slow(int fd, FdEntry* e) noexcept {
  // acquire: pairs with flags_changed()/forked() bumping the epoch (release): a reader of the
  // new epoch re-reads flags that changed before the bump.
  std::uint32_t epoch = g_epoch.load(std::memory_order_acquire);
  int fl = e->fl.load(std::memory_order_relaxed);
  // After a fork the child may change any description at any time: always ask the kernel.
  bool forked = g_all_shared.load(std::memory_order_relaxed);
  bool shared = forked || (e->load() & kShared);
  if (fl >= 0 && !forked && (!shared || e->fl_epoch.load(std::memory_order_relaxed) == epoch))
    return fl;
  fl = real::fcntl(fd, F_GETFL);
  if (fl < 0) return -1;
  if (shared && (e->load() & kSocket) && g_timeouts.load(std::memory_order_relaxed))
    store_timeouts(fd, e);
  e->fl_epoch.store(epoch, std::memory_order_relaxed);
  e->fl.store(fl, std::memory_order_relaxed);
  return fl;
}

void flags_changed(FdEntry* e) noexcept {
  e->fl.store(-1, std::memory_order_relaxed);
  // release: pairs with description_flags' acquire (a reader of the new epoch re-reads).
  if ((e->load() & kShared) || g_all_shared.load(std::memory_order_relaxed))
    // release: after the fork flag above; pairs with description_flags()' acquire load.
    g_epoch.fetch_add(1, std::memory_order_release);
}

void timeouts_set() noexcept {
  g_timeouts.store(true, std::memory_order_relaxed);
}

void forked() noexcept {
  g_all_shared.store(true, std::memory_order_relaxed);
  // release: after the fork flag above; pairs with description_flags()' acquire load.
  g_epoch.fetch_add(1, std::memory_order_release);
}

void toggle_lock(FdEntry* e) noexcept {
  for (int spins = 0;; ++spins) {
    std::uint32_t b = e->bits.load(std::memory_order_relaxed);
    // acquire: the holder's flag changes (and its restore) happen before we proceed.
    if (!(b & kToggle) && e->bits.compare_exchange_weak(b, b | kToggle, std::memory_order_acquire,
                                                        std::memory_order_relaxed))
      return;
    if (spins > 64)
      green::detail::raw_syscall_ret(SYS_sched_yield);  // the holder is in a syscall; never sleeps
  }
}

void toggle_unlock(FdEntry* e) noexcept {
  e->bits.fetch_and(~std::uint32_t{kToggle}, std::memory_order_release);  // pairs with lock
}

void created(int fd, bool is_socket, int socket_type, bool user_nb, bool kernel_nb) noexcept {
  FdEntry* e = get(fd);
  if (!e) return;
  std::uint32_t b = kManaged;
  if (is_socket) b |= kSocket;
  int t = socket_type & ~(SOCK_NONBLOCK | SOCK_CLOEXEC);
  if (!is_socket || t == SOCK_STREAM || t == SOCK_SEQPACKET) b |= kStream;
  if (is_socket && t == SOCK_STREAM) b |= kByteStream;
  if (user_nb) b |= kUserNonblock;
  if (kernel_nb && !user_nb) b |= kKernelNonblock;
  e->reset(b);
  if (is_socket) {  // sockets are O_RDWR; the creating call set or left O_NONBLOCK
    e->fl_epoch.store(g_epoch.load(std::memory_order_relaxed), std::memory_order_relaxed);
    e->fl.store(O_RDWR | (user_nb ? O_NONBLOCK : 0), std::memory_order_relaxed);
  }
  green::io::forget(fd);  // a new file under this number (see poller.hpp, generations)
}

bool ensure_nonblocking(int fd, FdEntry* e) noexcept {
  std::uint32_t b = e->load();
  if (b & (kKernelNonblock | kUserNonblock)) return true;
  int fl = real::fcntl(fd, F_GETFL);
  if (fl < 0) return false;
  if (!(fl & O_NONBLOCK) && real::fcntl(fd, F_SETFL, fl | O_NONBLOCK) < 0) return false;
  e->set(kKernelNonblock);
  return true;
}

void duplicated(int from, int to, bool) noexcept {
  FdEntry* src = classify(from);
  FdEntry* dst = get(to);
  if (!dst) return;
  if (!src) {
    dst->reset();
    return;
  }
  // The new fd shares the open file description, hence its O_NONBLOCK state; it has no
  // io::wait registration of its own yet.
  dst->rcv_ns.store(src->rcv_ns.load(std::memory_order_relaxed), std::memory_order_relaxed);
  dst->snd_ns.store(src->snd_ns.load(std::memory_order_relaxed), std::memory_order_relaxed);
  src->set(kShared);
  dst->fl.store(-1, std::memory_order_relaxed);
  // No read on this number yet (its next wait registers it anew, so the kernel reports
  // what is queued already).
  dst->drained.store(0, std::memory_order_relaxed);
  dst->bits.store((src->load() & ~(kWaited | kInherited | kToggle)) | kShared,
                  std::memory_order_relaxed);
  green::io::forget(to);
}

}  // namespace green::shim::fds

namespace green::shim::fds {
namespace {
// After real.cpp's resolution (101); the preload start-up calls init() again (a no-op) in
// case another library's constructor ran first and used the table.
__attribute__((constructor(102))) void init_at_start() {
  init();
}
}  // namespace
}  // namespace green::shim::fds
