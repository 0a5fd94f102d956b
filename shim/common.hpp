// Shared helpers of the hook files: who is calling (mode()), how hooks are named and exported,
// errno discipline, time conversions and the --stats counters.
//
// Modes (decided per call, from the runtime's per-OS-thread ThreadState):
//   kFiber   a green fiber outside runtime-internal code (hooks_active()) and the shim is not
//            disabled: the hook may park the fiber instead of blocking the OS thread.
//   kRaw     runtime-internal code (a ShimBypass is held) or a worker's scheduler context
//            (libuv's own calls): always the exact real call, no bookkeeping.
//   kThread  any other OS thread (one green did not create, the main thread before start-up,
//            libuv's pool threads), and every thread of a forked child (the runtime does not
//            survive fork): the real call, plus bookkeeping that keeps fiber-side state right
//            (waking fibers parked on a mutex this thread unlocks; emulating blocking I/O with
//            poll(2) on fds the shim itself switched to O_NONBLOCK).
#pragma once

#include <sys/syscall.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <ctime>

#include "green/detail/hooks.hpp"
#include "green/detail/raw_syscall.hpp"
#include "green/detail/wait.hpp"
#include "real.hpp"

// Hooks. Every hook is one row of shim/symbols.txt (name, glibc versions, real pointer,
// signature, start-up fallback) and one definition in its hook file:
//   GREEN_HOOK(id) { body }
// GREEN_HOOK expands to the head shim/gen_symbols.py generated for the row (green_shim_table.hpp,
// in the build directory): the exported function green_hook_<id>, bound to the libc name (an
// asm label listed in the version script, or .symver lines for names with several versions,
// which must sit in the defining file; the link-time library green::hooks binds the plain
// name), whose prologue is
//   detail::RuntimeEntry green_entry;   (runtime code until the hook returns: a fiber-thread
//                                        whose worker was handed off reattaches here)
//   if (!real::ensure_resolved()) return <the row's fallback>;   (none if the fallback is -)
// and which then calls the body, a static function with the row's parameters (inlined).
// An id without a row does not compile: "'GREEN_SHIM_NO_ROW_IN_SYMBOLS_TXT_<id>' does not name
// a type".
#define GREEN_SHIM_EXPORT __attribute__((visibility("default")))
#define GREEN_HOOK(id) GREEN_SHIM_NO_ROW_IN_SYMBOLS_TXT_##id GREEN_SHIM_HOOK_##id

namespace green::shim {

enum class Mode { kFiber, kRaw, kThread };

// Set in a forked child (the runtime's workers do not exist there) and once exit() started:
// from then on nothing may park.
extern bool g_disabled;

// Signals posted to fiber-threads (signals.cpp post() and route_process_directed add one after
// setting the pending bit) and, per fiber-thread (its own static TLS), the count it had seen
// when it last looked. A posted signal reaches a parked target by ending its interruptible
// park, and a running one by a forwarded kernel signal; a target that is runnable but not
// running, or parked uninterruptibly, takes it at its next interposed call (deliver_posted):
// as an OS thread takes it when it is next scheduled. Without this a busy server (never
// parked in epoll_wait) did not see SIGTERM until its load stopped (redis: 18 s).
extern std::atomic<unsigned> g_signal_posts;
extern thread_local unsigned t_signal_seen;
void deliver_posted() noexcept;  // signals.cpp: runs the caller's deliverable handlers

// Every hook asks mode() first, so a fiber's interposed call is also where it yields when its
// slice expired (detail::maybe_slice_yield: one relaxed load unless the monitor asked some
// worker to yield; the hook then proceeds, perhaps on another worker), and where it takes
// signals posted to it meanwhile (one relaxed load and a TLS compare when none were).
inline Mode mode() noexcept {
  const detail::ThreadState& s = detail::this_thread_state();
  if (g_disabled) return s.bypass > 0 ? Mode::kRaw : Mode::kThread;
  if (s.bypass > 0) return Mode::kRaw;
  if (s.task != nullptr) {
    detail::maybe_slice_yield();
    if (__builtin_expect(g_signal_posts.load(std::memory_order_relaxed) != t_signal_seen, 0))
      deliver_posted();
    return Mode::kFiber;
  }
  return s.worker >= 0 ? Mode::kRaw : Mode::kThread;
}

// Keeps errno as the caller had it unless the hook reports a failure: a successful call must
// not change errno, even though the hook's own bookkeeping (and other fibers that ran while
// this one was parked) may have.
class ErrnoGuard {
 public:
  ErrnoGuard() noexcept : saved_(errno) {}
  void restore() const noexcept { errno = saved_; }
  int saved() const noexcept { return saved_; }

 private:
  int saved_;
};

using detail::Clock;
using detail::kNoDeadline;
using detail::TimePoint;

// Deadline `ms` milliseconds from now; negative: none (poll's convention).
inline TimePoint deadline_ms(long long ms) {
  if (ms < 0) return kNoDeadline;
  return detail::deadline_after(std::chrono::milliseconds(ms));
}
inline TimePoint deadline_ns(long long ns) {
  if (ns < 0) return kNoDeadline;
  return detail::deadline_after(std::chrono::nanoseconds(ns));
}
inline long long timespec_ns(const timespec& ts) {
  return static_cast<long long>(ts.tv_sec) * 1000000000LL + ts.tv_nsec;
}
inline bool timespec_valid(const timespec* ts) {
  return ts->tv_nsec >= 0 && ts->tv_nsec < 1000000000L;
}
// Converts an absolute time on `clock` to a steady_clock deadline.
TimePoint deadline_from_abs(clockid_t clock, const timespec& abs) noexcept;
// Milliseconds left until `d` (rounded up), 0 if passed, -1 for none.
int ms_until(TimePoint d) noexcept;

// Start-up fallbacks of the table (raw syscalls; used only inside dlsym at start-up).
inline int raw_sleep_ns(long long ns) noexcept {
  timespec ts{static_cast<time_t>(ns / 1000000000LL), static_cast<long>(ns % 1000000000LL)};
  return static_cast<int>(detail::raw_syscall(SYS_nanosleep, detail::sc_arg(&ts), 0));
}
inline int raw_pselect(int n, fd_set* r, fd_set* w, fd_set* x, const timespec* ts,
                       const sigset_t* mask) noexcept {
  timespec t{};  // the kernel updates the timeout; pselect's is const
  if (ts) t = *ts;
  struct {
    const sigset_t* set;
    size_t size;
  } data{mask, _NSIG / 8};
  return static_cast<int>(detail::raw_syscall(SYS_pselect6, n, detail::sc_arg(r), detail::sc_arg(w),
                                              detail::sc_arg(x), ts ? detail::sc_arg(&t) : 0,
                                              mask ? detail::sc_arg(&data) : 0));
}

// Parks the calling fiber until `d` (kTimeout) or a cancellation (kCancelled/kDeadline).
detail::WakeReason sleep_until(TimePoint d) noexcept;

// --stats counters (relaxed; printed at exit by start.cpp).
struct Stats {
  std::uint64_t threads_created, threads_live, threads_peak;
  std::uint64_t io_waits, sleeps, lock_waits, cond_waits, offloads, polls;
};
// Counters are striped per worker (stripe 0: threads green did not create) so that the hot
// ones (io_waits, polls: one per parked I/O call) are never a cache line all workers write;
// stats_snapshot() sums the stripes. stat_index() folds to a constant at each call site.
constexpr std::size_t kStatCount = 9;
constexpr std::size_t stat_index(std::uint64_t Stats::*field) noexcept {
  constexpr std::uint64_t Stats::*fields[kStatCount] = {
      &Stats::threads_created, &Stats::threads_live, &Stats::threads_peak,
      &Stats::io_waits,        &Stats::sleeps,       &Stats::lock_waits,
      &Stats::cond_waits,      &Stats::offloads,     &Stats::polls};
  for (std::size_t i = 0; i < kStatCount; ++i)
    if (fields[i] == field) return i;
  return 0;
}
void stat_add_at(std::size_t index, std::uint64_t n) noexcept;
// Set once at start-up (GREEN_STATS=1), before the program's main runs; never cleared. While
// it is false stat_add is one load and a branch (io_waits is counted on every parked read and
// write: the stripe lookup and the add are ~15 instructions of the echo round trip).
extern bool g_stats_on;
inline void stat_add(std::uint64_t Stats::*field, std::uint64_t n = 1) noexcept {
  if (g_stats_on) stat_add_at(stat_index(field), n);
}
void stat_live(int delta) noexcept;
Stats stats_snapshot() noexcept;

}  // namespace green::shim
