// green::Mutex: a mutual-exclusion lock that parks the fiber (not the worker) while it waits.
// Also works from plain OS threads, which block as with std::mutex. Satisfies Lockable and
// TimedLockable, so std::lock_guard / std::unique_lock / std::scoped_lock work.
//
// Fairness: FIFO hand-off. unlock() with waiters passes ownership directly to the oldest
// waiter, so no waiter starves. lock() is a blocking call: it honours cancellation and
// green::Deadline (throwing Cancelled / TimedOut, the lock not taken).
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>

#include "green/detail/wait.hpp"
#include "green/export.hpp"

namespace green {

class GREEN_API Mutex {
 public:
  Mutex() = default;
  Mutex(const Mutex&) = delete;
  Mutex& operator=(const Mutex&) = delete;

  void lock() {
    std::uint32_t expected = 0;
    if (state_.compare_exchange_strong(expected, kLocked, std::memory_order_acquire,
                                       std::memory_order_relaxed))
      return;
    lock_slow(detail::kNoDeadline, true);
  }
  bool try_lock() noexcept {
    std::uint32_t expected = 0;
    return state_.compare_exchange_strong(expected, kLocked, std::memory_order_acquire,
                                          std::memory_order_relaxed);
  }
  template <class Rep, class Period>
  bool try_lock_for(std::chrono::duration<Rep, Period> d) {
    return try_lock() || lock_slow(detail::deadline_after(d), true);
  }
  bool try_lock_until(std::chrono::steady_clock::time_point t) {
    return try_lock() || lock_slow(t, true);
  }
  void unlock() {
    std::uint32_t expected = kLocked;
    // acq_rel, not release: a woken owner that destroys the mutex right after this unlock must
    // be ordered after the previous unlocker's final store (TSan flags it otherwise).
    if (state_.compare_exchange_strong(expected, 0, std::memory_order_acq_rel,
                                       std::memory_order_relaxed))
      return;
    unlock_slow();
  }

  // Takes the lock ignoring cancellation and deadlines (used to re-lock after a condvar wait).
  void lock_uninterruptible();

 private:
  friend class CondVar;
  // state_ bits: kLocked (owned), kQueueLock (guards waiters_), kWaiters (waiters_ non-empty).
  // The unlocker's last access to *this is the single store that clears kQueueLock, so a
  // woken owner may destroy the mutex right after its own unlock.
  static constexpr std::uint32_t kLocked = 1, kQueueLock = 2, kWaiters = 4;
  bool lock_slow(detail::TimePoint deadline, bool interruptible);
  void unlock_slow();
  std::uint32_t acquire_queue();  // spins until kQueueLock is ours; returns the state seen

  std::atomic<std::uint32_t> state_{0};
  detail::WaitList waiters_;  // guarded by kQueueLock
};

}  // namespace green
