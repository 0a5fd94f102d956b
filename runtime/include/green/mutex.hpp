// green::Mutex: a mutual-exclusion lock that parks the fiber (not the worker) while it waits.
// Also works from plain OS threads, which block as with std::mutex. Satisfies Lockable and
// TimedLockable, so std::lock_guard / std::unique_lock / std::scoped_lock work.
//
// Fairness (Go's sync.Mutex design): unlock() wakes the oldest waiter but does not hand it
// the lock; a fiber that is already running may take it first ("barging"), and the woken one
// tries again from the front of the queue. Handing the lock over on every unlock would make
// every contended acquisition wait for the waiter's worker to wake up (~10 us across workers,
// measured in bench/), so throughput collapses exactly when the lock is busiest. Two cases
// get the lock handed over instead (FIFO, no barging): a waiter on the unlocker's own worker
// (it runs as soon as the unlocker blocks, so this costs nothing), and any waiter once one has
// waited longer than 1 ms (hand-off mode until the queue drains), so no waiter starves. lock() is a
// blocking call: it honours cancellation and green::Deadline (throwing Cancelled / TimedOut, the
// lock not taken).
//
// Thread-safety analysis: Mutex is a capability (GREEN_GUARDED_BY(mu) on the fields it
// guards; lock()/try_lock*()/lock_uninterruptible() acquire it, unlock() releases it), and
// detail::MutexGuard is its scoped holder that clang understands (libstdc++'s
// std::lock_guard/std::unique_lock are not annotated). The queue bit kQueueLock is not
// modelled: waiters_ is documented as guarded by it, not checked.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>

#include "green/detail/thread_annotations.hpp"
#include "green/detail/wait.hpp"
#include "green/export.hpp"

namespace green {

class GREEN_CAPABILITY("mutex") GREEN_API Mutex {
 public:
  Mutex() = default;
  Mutex(const Mutex&) = delete;
  Mutex& operator=(const Mutex&) = delete;

  void lock() GREEN_ACQUIRE() {
    std::uint32_t expected = 0;
    // acquire: pairs with the previous unlock's release (its critical section is visible)
    if (state_.compare_exchange_strong(expected, kLocked, std::memory_order_acquire,
                                       std::memory_order_relaxed))
      return;
    lock_slow(detail::kNoDeadline, true);
  }
  // May fail spuriously while another thread edits the wait queue (allowed for try_lock).
  bool try_lock() noexcept GREEN_TRY_ACQUIRE(true) {
    std::uint32_t s = state_.load(std::memory_order_relaxed);
    while (!(s & (kLocked | kQueueLock | kStarving))) {
      // acquire: as in lock()
      if (state_.compare_exchange_weak(s, s | kLocked, std::memory_order_acquire,
                                       std::memory_order_relaxed))
        return true;
    }
    return false;
  }
  template <class Rep, class Period>
  bool try_lock_for(std::chrono::duration<Rep, Period> d) GREEN_TRY_ACQUIRE(true) {
    return try_lock() || lock_slow(detail::deadline_after(d), true);
  }
  bool try_lock_until(std::chrono::steady_clock::time_point t) GREEN_TRY_ACQUIRE(true) {
    return try_lock() || lock_slow(t, true);
  }
  void unlock() GREEN_RELEASE() {
    std::uint32_t expected = kLocked;
    // acq_rel, not release: a woken owner that destroys the mutex right after this unlock must
    // be ordered after the previous unlocker's final store (TSan flags it otherwise).
    if (state_.compare_exchange_strong(expected, 0, std::memory_order_acq_rel,
                                       std::memory_order_relaxed))
      return;
    unlock_slow();
  }

  // Takes the lock ignoring cancellation and deadlines (used to re-lock after a condvar wait).
  void lock_uninterruptible() GREEN_ACQUIRE();

 private:
  friend class CondVar;
  // state_ bits: kLocked (owned), kQueueLock (guards waiters_ and every other bit change
  // except the lock-free CASes that require it clear), kWaiters (waiters_ non-empty), kWoken
  // (an unlock woke a waiter that has not come back yet: later unlocks wake nobody more),
  // kStarving (hand-off mode). The unlocker's last access to *this is the single store that
  // clears kQueueLock, so a woken owner may destroy the mutex right after its own unlock.
  static constexpr std::uint32_t kLocked = 1, kQueueLock = 2, kWaiters = 4, kWoken = 8,
                                 kStarving = 16;
  bool lock_slow(detail::TimePoint deadline, bool interruptible);
  void unlock_slow();
  std::uint32_t acquire_queue();  // spins until kQueueLock is ours; returns the state seen

  std::atomic<std::uint32_t> state_{0};
  detail::WaitList waiters_;      // guarded by kQueueLock
  detail::TimePoint woken_at_{};  // when kWoken was set; guarded by kQueueLock
};

namespace detail {

// Scoped green::Mutex holder for code that -Wthread-safety checks (the constructor is lock():
// it may throw Cancelled / TimedOut, the lock not taken).
class GREEN_SCOPED_CAPABILITY MutexGuard {
 public:
  explicit MutexGuard(Mutex& m) GREEN_ACQUIRE(m) : m_(m) { m_.lock(); }
  ~MutexGuard() GREEN_RELEASE() { m_.unlock(); }
  MutexGuard(const MutexGuard&) = delete;
  MutexGuard& operator=(const MutexGuard&) = delete;

 private:
  Mutex& m_;
};

}  // namespace detail
}  // namespace green
