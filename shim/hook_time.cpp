// Hooks: sleep, usleep, nanosleep, clock_nanosleep, sched_yield.
//
// On a fiber these park the fiber on its worker's timer (green::detail::park with a deadline)
// instead of sleeping the worker thread; sched_yield lets the worker's other fibers run.
// Semantics kept: EINVAL checks as the kernel does them; TIMER_ABSTIME against the named
// clock (converted to a steady_clock deadline once, so a later settimeofday does not move a
// CLOCK_REALTIME sleep: documented); a green cancellation ends the sleep with EINTR and the
// time left in *rem. CPU-time clocks pass through (they block the worker; rare).
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "common.hpp"
#include "green/fiber.hpp"
#include "signals.hpp"
#include "thread_tcb.hpp"

using namespace green::shim;
using green::detail::WakeReason;

namespace {

void fill_left(TimePoint d, timespec* rem) {
  if (!rem) return;
  auto now = Clock::now();
  long long ns =
      d > now ? std::chrono::duration_cast<std::chrono::nanoseconds>(d - now).count() : 0;
  rem->tv_sec = static_cast<time_t>(ns / 1000000000LL);
  rem->tv_nsec = static_cast<long>(ns % 1000000000LL);
}

// Returns 0 or EINTR.
int fiber_sleep(TimePoint d, timespec* rem) {
  stat_add(&Stats::sleeps);
  tcb::cancel_point();  // sleeps are cancellation points (POSIX)
  for (;;) {
    WakeReason r = sleep_until(d);
    if (r == WakeReason::kTimeout) return 0;
    tcb::cancel_point();  // woken by pthread_cancel: acts if enabled
    // A signal: its handlers run; sleeps never restart (signal(7)). Nothing delivered: go on.
    if (r == WakeReason::kInterrupted && signals::interrupted() == signals::Intr::kNone) continue;
    fill_left(d, rem);
    return EINTR;
  }
}

}  // namespace

GREEN_HOOK(nanosleep) {
  if (mode() != Mode::kFiber) return real::nanosleep(req, rem);
  if (!req || !timespec_valid(req) || req->tv_sec < 0) return real::nanosleep(req, rem);
  int e = fiber_sleep(deadline_ns(timespec_ns(*req)), rem);
  if (e) {
    errno = e;
    return -1;
  }
  return 0;
}

GREEN_HOOK(clock_nanosleep) {
  if (mode() != Mode::kFiber || !req || !timespec_valid(req) ||
      (clock != CLOCK_REALTIME && clock != CLOCK_MONOTONIC && clock != CLOCK_BOOTTIME &&
       clock != CLOCK_TAI))
    return real::clock_nanosleep(clock, flags, req, rem);
  TimePoint d = (flags & TIMER_ABSTIME) ? deadline_from_abs(clock, *req)
                                        : deadline_ns(req->tv_sec < 0 ? 0 : timespec_ns(*req));
  return fiber_sleep(d, (flags & TIMER_ABSTIME) ? nullptr : rem);
}

GREEN_HOOK(sleep) {
  if (mode() != Mode::kFiber) return real::sleep(seconds);
  ErrnoGuard g;
  TimePoint d = deadline_ns(static_cast<long long>(seconds) * 1000000000LL);
  timespec left{};
  if (fiber_sleep(d, &left) == 0) {
    g.restore();
    return 0;
  }
  g.restore();
  return static_cast<unsigned>(left.tv_sec + (left.tv_nsec > 0 ? 1 : 0));
}

GREEN_HOOK(usleep) {
  if (mode() != Mode::kFiber) return real::usleep(us);
  ErrnoGuard g;
  if (fiber_sleep(deadline_ns(static_cast<long long>(us) * 1000LL), nullptr)) {
    errno = EINTR;
    return -1;
  }
  g.restore();
  return 0;
}

GREEN_HOOK(sched_yield) {
  if (mode() != Mode::kFiber) return real::sched_yield();
  ErrnoGuard g;
  green::this_fiber::yield();
  g.restore();
  return 0;
}
