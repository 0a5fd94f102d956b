// green::WaitGroup: count_ and waiters_ under lock_. wait() always takes lock_, so a waiter
// that returns (and may destroy the group) is ordered after the final done() released it.
#include "green/wait_group.hpp"

#include "green/fiber.hpp"

namespace green {

using detail::WakeReason;

void WaitGroup::add(std::int64_t n) {
  lock_.lock();
  count_ += n;
  if (count_ < 0) {
    lock_.unlock();
    detail::fatal_usage("green::WaitGroup counter went negative (more done() than add())");
  }
  if (count_ == 0) {
    while (detail::Waiter* w = waiters_.pop_front()) detail::wake(w, WakeReason::kNotified);
  }
  lock_.unlock();
}

void WaitGroup::wait() { wait_until(detail::kNoDeadline); }

bool WaitGroup::wait_until(std::chrono::steady_clock::time_point t) {
  lock_.lock();
  if (count_ == 0) {
    lock_.unlock();
    return true;
  }
  detail::Waiter w(detail::WaitKind::kWaitGroup, this);
  WakeReason r = detail::wait_on(waiters_, lock_, w, t);
  if (r == WakeReason::kNotified) return true;
  detail::throw_if_interrupted(r);
  return false;
}

void WaitGroup::wait_uninterruptible() noexcept {
  lock_.lock();
  while (count_ != 0) {
    detail::Waiter w(detail::WaitKind::kWaitGroup, this);
    detail::wait_on(waiters_, lock_, w, detail::kNoDeadline, false);
    lock_.lock();
  }
  lock_.unlock();
}

std::int64_t WaitGroup::count() const noexcept {
  lock_.lock();
  auto n = count_;
  lock_.unlock();
  return n;
}

}  // namespace green
