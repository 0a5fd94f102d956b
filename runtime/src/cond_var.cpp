// green::CondVar (design note in cond_var.hpp). Waiters queue on lock_; notify pops and
// wakes under lock_; a woken waiter re-takes lock_ before it returns (wait.hpp's lifetime
// rule), then re-locks the user's mutex without interruption and only then throws.
#include "green/cond_var.hpp"

namespace green {

using detail::WakeReason;

namespace {
// Re-locks the user's mutex (lk owns it no more) and hands it back to lk. Outside the
// thread-safety analysis: it cannot follow a lock adopted by std::unique_lock, which
// libstdc++ does not annotate.
void relock(std::unique_lock<Mutex>& lk) GREEN_NO_THREAD_SAFETY_ANALYSIS {
  lk.mutex()->lock_uninterruptible();
  lk = std::unique_lock<Mutex>(*lk.release(), std::adopt_lock);
}
}  // namespace

bool CondVar::wait_until_impl(std::unique_lock<Mutex>& lk, detail::TimePoint t) {
  detail::Waiter w(detail::WaitKind::kCondVar, this);
  lock_.lock();
  waiters_.push_back(&w);
  lk.unlock();  // may wake the mutex's next owner; never blocks
  WakeReason r = detail::park(w, t, detail::unlocker(lock_));
  lock_.lock();
  waiters_.remove(&w);
  lock_.unlock();
  relock(lk);
  detail::throw_if_interrupted(r);
  return r != WakeReason::kTimeout;
}

void CondVar::notify_one() noexcept {
  lock_.lock();
  while (detail::Waiter* w = waiters_.pop_front()) {
    if (detail::wake(w, WakeReason::kNotified)) break;
  }
  lock_.unlock();
}

void CondVar::notify_all() noexcept {
  lock_.lock();
  while (detail::Waiter* w = waiters_.pop_front()) detail::wake(w, WakeReason::kNotified);
  lock_.unlock();
}

}  // namespace green
