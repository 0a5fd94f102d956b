// green::Mutex slow paths (design note in mutex.hpp).
//
// state_ packs three bits so that the unlocker's final action is one atomic store:
//   kLocked     the mutex is owned
//   kQueueLock  a thread is editing waiters_ (a tiny spinlock inside the word)
//   kWaiters    waiters_ is non-empty; set and cleared only under kQueueLock
// The uncontended paths are a single CAS 0 <-> kLocked. With waiters, unlock() hands the
// mutex to the oldest waiter whose wake() succeeds (FIFO, no barging), leaving kLocked set.
#include "green/mutex.hpp"

#include "green/fiber.hpp"

#include "spin.hpp"

namespace green {

using detail::WakeReason;

std::uint32_t Mutex::acquire_queue() {
  for (int spins = 0;; ++spins) {
    std::uint32_t s = state_.load(std::memory_order_relaxed);
    if (!(s & kQueueLock) &&
        state_.compare_exchange_weak(s, s | kQueueLock, std::memory_order_acquire,
                                     std::memory_order_relaxed))
      return s | kQueueLock;
    if (spins < 64) {
      detail::cpu_relax();
    } else {
      detail::os_yield();
    }
  }
}

bool Mutex::lock_slow(detail::TimePoint deadline, bool interruptible) {
  std::uint32_t s = acquire_queue();
  if (!(s & kLocked)) {
    // Released meanwhile: take it and drop the queue lock in one store.
    state_.store((s | kLocked) & ~kQueueLock, std::memory_order_release);
    return true;
  }
  detail::Waiter w(detail::WaitKind::kMutex, this);
  waiters_.push_back(&w);
  WakeReason r = detail::park(w, deadline,
                              {[](void* p) {
                                 auto* m = static_cast<Mutex*>(p);
                                 std::uint32_t v = m->state_.load(std::memory_order_relaxed);
                                 m->state_.store((v | kWaiters) & ~kQueueLock,
                                                 std::memory_order_release);
                               },
                               this},
                              interruptible);
  if (r == WakeReason::kNotified) return true;  // handed over: we own it
  // Timed out or interrupted: leave the queue (unless an unlocker already popped us).
  std::uint32_t v = acquire_queue();
  waiters_.remove(&w);
  if (waiters_.empty()) v &= ~kWaiters;
  state_.store(v & ~kQueueLock, std::memory_order_release);
  if (r == WakeReason::kTimeout) return false;
  detail::throw_if_interrupted(r);
  return false;
}

void Mutex::unlock_slow() {
  std::uint32_t v = acquire_queue();
  if (!(v & kLocked)) detail::fatal_usage("green::Mutex::unlock on a mutex that is not locked");
  while (detail::Waiter* w = waiters_.pop_front()) {
    if (detail::wake(w, WakeReason::kNotified)) {
      // Ownership passes to w: kLocked stays set.
      v = waiters_.empty() ? (v & ~kWaiters) : v;
      state_.store(v & ~kQueueLock, std::memory_order_release);
      return;
    }
  }
  state_.store(0, std::memory_order_release);  // nobody left: unlocked, queue lock dropped
}

void Mutex::lock_uninterruptible() {
  if (try_lock()) return;
  lock_slow(detail::kNoDeadline, false);
}

}  // namespace green
