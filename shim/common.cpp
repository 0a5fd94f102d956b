// Implementation of the small helpers declared in common.hpp (time conversion, fiber sleep,
// --stats counters). Touched by every thread; the counters are relaxed atomics, striped per
// worker (common.hpp).
#include "common.hpp"

#include <atomic>

namespace green::shim {

bool g_disabled = false;
bool g_stats_on = false;

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
// One stripe per worker (index + 1, the last one shared by workers beyond it), stripe 0 for
// other threads; a cache line or more each. Relaxed: counters order nothing.
constexpr int kStripes = 16;
struct alignas(64) Stripe {
  std::atomic<std::uint64_t> v[kStatCount];
};
Stripe g_stripes[kStripes]{};
// threads_live/threads_peak: one global pair (the peak needs the global live count).
std::atomic<std::uint64_t> g_live{0}, g_peak{0};

Stripe& my_stripe() noexcept {
  int w = detail::thread_state().worker + 1;
  return g_stripes[w < kStripes ? (w > 0 ? w : 0) : kStripes - 1];
}
}  // namespace

void stat_add_at(std::size_t index, std::uint64_t n) noexcept {
  my_stripe().v[index].fetch_add(n, std::memory_order_relaxed);
}

void stat_live(int delta) noexcept {
  auto live = g_live.fetch_add(static_cast<std::uint64_t>(delta), std::memory_order_relaxed) +
              static_cast<std::uint64_t>(delta);
  auto peak = g_peak.load(std::memory_order_relaxed);
  while (live > peak && !g_peak.compare_exchange_weak(peak, live, std::memory_order_relaxed)) {
  }
}

Stats stats_snapshot() noexcept {
  std::uint64_t sum[kStatCount] = {};
  for (const Stripe& st : g_stripes)
    for (std::size_t i = 0; i < kStatCount; ++i) sum[i] += st.v[i].load(std::memory_order_relaxed);
  Stats s{};
  std::uint64_t* out[kStatCount] = {&s.threads_created, &s.threads_live, &s.threads_peak,
                                    &s.io_waits,        &s.sleeps,       &s.lock_waits,
                                    &s.cond_waits,      &s.offloads,     &s.polls};
  for (std::size_t i = 0; i < kStatCount; ++i) *out[i] = sum[i];
  s.threads_live = g_live.load(std::memory_order_relaxed);
  s.threads_peak = g_peak.load(std::memory_order_relaxed);
  return s;
}

}  // namespace green::shim
