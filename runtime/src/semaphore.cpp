// green::Semaphore: count_ and waiters_ under lock_. release() hands permits directly to
// waiters (FIFO) so a permit never goes to a latecomer while someone waits.
#include "green/semaphore.hpp"

namespace green {

using detail::WakeReason;

bool Semaphore::try_acquire() noexcept {
  lock_.lock();
  bool ok = count_ > 0;
  if (ok) --count_;
  lock_.unlock();
  return ok;
}

void Semaphore::acquire() { acquire_until(detail::kNoDeadline); }

bool Semaphore::acquire_until(std::chrono::steady_clock::time_point t) {
  lock_.lock();
  if (count_ > 0) {
    --count_;
    lock_.unlock();
    return true;
  }
  detail::Waiter w(detail::WaitKind::kSemaphore, this);
  WakeReason r = detail::wait_on(waiters_, lock_, w, t);
  if (r == WakeReason::kNotified) return true;  // the permit was handed to us
  detail::throw_if_interrupted(r);
  return false;
}

void Semaphore::release(std::size_t n) noexcept {
  lock_.lock();
  while (n > 0) {
    detail::Waiter* w = waiters_.pop_front();
    if (!w) break;
    if (detail::wake(w, WakeReason::kNotified)) --n;
  }
  count_ += n;
  lock_.unlock();
}

std::size_t Semaphore::available() const noexcept {
  lock_.lock();
  std::size_t n = count_;
  lock_.unlock();
  return n;
}

}  // namespace green
