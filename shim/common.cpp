// Implementation of the small helpers declared in common.hpp (time conversion, fiber sleep,
// --stats counters). Touched by every thread; the counters are relaxed atomics.
#include "common.hpp"

#include <atomic>

namespace green::shim {

bool g_disabled = false;

TimePoint deadline_from_abs(clockid_t clock, const timespec& abs) noexcept {
  timespec now{};
  clock_gettime(clock, &now);
  long long left = timespec_ns(abs) - timespec_ns(now);
  if (left <= 0) return Clock::now();
  return detail::deadline_after(std::chrono::nanoseconds(left));
}

int ms_until(TimePoint d) noexcept {
  if (d == kNoDeadline) return -1;
  auto now = Clock::now();
  if (d <= now) return 0;
  auto ms = std::chrono::ceil<std::chrono::milliseconds>(d - now).count();
  return ms > 0x7fffffff ? 0x7fffffff : static_cast<int>(ms);
}

detail::WakeReason sleep_until(TimePoint d) noexcept {
  ErrnoGuard g;  // other fibers of this worker run meanwhile and set errno
  detail::Waiter w;
  auto r = detail::park(w, d, detail::Unlocker{});
  g.restore();
  return r;
}

namespace {
struct AtomicStats {
  std::atomic<std::uint64_t> v[9];
};
AtomicStats g_stats{};
std::size_t index_of(std::uint64_t Stats::*field) {
  static constexpr std::uint64_t Stats::*fields[] = {
      &Stats::threads_created, &Stats::threads_live, &Stats::threads_peak,
      &Stats::io_waits,        &Stats::sleeps,       &Stats::lock_waits,
      &Stats::cond_waits,      &Stats::offloads,     &Stats::polls};
  for (std::size_t i = 0; i < 9; ++i)
    if (fields[i] == field) return i;
  return 0;
}
}  // namespace

void stat_add(std::uint64_t Stats::*field, std::uint64_t n) noexcept {
  g_stats.v[index_of(field)].fetch_add(n, std::memory_order_relaxed);
}

void stat_live(int delta) noexcept {
  auto live = g_stats.v[1].fetch_add(static_cast<std::uint64_t>(delta), std::memory_order_relaxed) +
              static_cast<std::uint64_t>(delta);
  auto peak = g_stats.v[2].load(std::memory_order_relaxed);
  while (live > peak && !g_stats.v[2].compare_exchange_weak(peak, live, std::memory_order_relaxed)) {
  }
}

Stats stats_snapshot() noexcept {
  Stats s{};
  std::uint64_t* out[] = {&s.threads_created, &s.threads_live, &s.threads_peak,
                          &s.io_waits,        &s.sleeps,       &s.lock_waits,
                          &s.cond_waits,      &s.offloads,     &s.polls};
  for (std::size_t i = 0; i < 9; ++i) *out[i] = g_stats.v[i].load(std::memory_order_relaxed);
  return s;
}

}  // namespace green::shim
