// green::Event: set_ and waiters_ under lock_; set() wakes everyone.
#include "green/event.hpp"

namespace green {

using detail::WakeReason;

void Event::set() noexcept {
  lock_.lock();
  set_ = true;
  while (detail::Waiter* w = waiters_.pop_front()) detail::wake(w, WakeReason::kNotified);
  lock_.unlock();
}

void Event::clear() noexcept {
  lock_.lock();
  set_ = false;
  lock_.unlock();
}

bool Event::is_set() const noexcept {
  lock_.lock();
  bool s = set_;
  lock_.unlock();
  return s;
}

void Event::wait() { wait_until(detail::kNoDeadline); }

bool Event::wait_until(std::chrono::steady_clock::time_point t) {
  lock_.lock();
  if (set_) {
    lock_.unlock();
    return true;
  }
  detail::Waiter w(detail::WaitKind::kEvent, this);
  WakeReason r = detail::wait_on(waiters_, lock_, w, t);
  if (r == WakeReason::kNotified) return true;
  detail::throw_if_interrupted(r);
  return false;
}

}  // namespace green
