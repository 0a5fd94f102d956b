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

#include <cerrno>
#include <chrono>
#include <cstdint>
#include <ctime>

#include "green/detail/hooks.hpp"
#include "green/detail/wait.hpp"
#include "real.hpp"

// Hooks are defined under an internal C++ name (green_hook_<name>, so glibc's own
// declarations with their exception specifications do not clash) and bound to the libc name:
//   GREEN_HOOK(ret, name, (params))   an asm label; in the preload library the version script
//                                     green_preload.map puts `name` in glibc's version node.
//   GREEN_HOOK_MV("DEF", "COMPAT", ret, name, (params))
//                                     symbols glibc has in two versions (e.g. pthread_create
//                                     GLIBC_2.34 and GLIBC_2.2.5). The preload library binds
//                                     both with .symver, which must sit in the defining file;
//                                     the link-time library (no versions) uses the asm label.
#define GREEN_SHIM_EXPORT __attribute__((visibility("default")))
#define GREEN_SHIM_STR2(x) #x
#define GREEN_SHIM_STR(x) GREEN_SHIM_STR2(x)
#define GREEN_HOOK(ret, name, params)                                                     \
  extern "C" GREEN_SHIM_EXPORT ret green_hook_##name params __asm__(GREEN_SHIM_STR(name)); \
  extern "C" ret green_hook_##name params
#ifdef GREEN_SHIM_PRELOAD
#define GREEN_HOOK_MV(def, compat, ret, name, params)                             \
  __asm__(".symver green_hook_" #name ", " #name "@@" def "\n\t"                 \
          ".symver green_hook_" #name ", " #name "@" compat);                      \
  extern "C" GREEN_SHIM_EXPORT ret green_hook_##name params;                        \
  extern "C" ret green_hook_##name params
#else
#define GREEN_HOOK_MV(def, compat, ret, name, params) GREEN_HOOK(ret, name, params)
#endif

namespace green::shim {

enum class Mode { kFiber, kRaw, kThread };

// Set in a forked child (the runtime's workers do not exist there) and once exit() started:
// from then on nothing may park.
extern bool g_disabled;

inline Mode mode() noexcept {
  const detail::ThreadState& s = detail::thread_state();
  if (g_disabled) return s.bypass > 0 ? Mode::kRaw : Mode::kThread;
  if (s.bypass > 0) return Mode::kRaw;
  if (s.task != nullptr) return Mode::kFiber;
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
using detail::TimePoint;
using detail::kNoDeadline;

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

// Parks the calling fiber until `d` (kTimeout) or a cancellation (kCancelled/kDeadline).
detail::WakeReason sleep_until(TimePoint d) noexcept;

// --stats counters (relaxed; printed at exit by start.cpp).
struct Stats {
  std::uint64_t threads_created, threads_live, threads_peak;
  std::uint64_t io_waits, sleeps, lock_waits, cond_waits, offloads, polls;
};
void stat_add(std::uint64_t Stats::*field, std::uint64_t n = 1) noexcept;
void stat_live(int delta) noexcept;
Stats stats_snapshot() noexcept;

}  // namespace green::shim
