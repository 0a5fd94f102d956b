// green::Mutex slow paths (design note in mutex.hpp).
//
// state_ packs the bits so that the unlocker's final action is one atomic store:
//   kLocked     the mutex is owned
//   kQueueLock  a thread is editing waiters_ or the bits below (a tiny spinlock in the word)
//   kWaiters    waiters_ is non-empty
//   kWoken      an unlock woke a waiter that has not retried yet; unlocks wake nobody else
//   kStarving   hand-off mode: unlock passes ownership to the oldest waiter, nobody barges
// Invariant: while kQueueLock is set only its holder changes state_ (the lock-free paths are
// CASes from a value without kQueueLock), so the holder may compute the next state from the
// value it saw and publish it with one store.
// Orderings: taking kQueueLock (acquire_queue) or kLocked is an acquire CAS; every store that
// clears kQueueLock is a release store, so the next holder sees waiters_, woken_at_ and the
// bits as the previous holder left them (and a new owner sees the previous critical section).
//
// Normal mode (as Go's sync.Mutex): unlock clears kLocked and wakes the oldest waiter (unless
// one is already on its way); the woken fiber retries and, if a running fiber took the lock
// first, queues again at the *front*. Waking a parked fiber on another worker takes
// microseconds, and handing it the lock would keep the mutex idle for all that time; letting
// running fibers barge keeps it busy. A waiter on the unlocker's own worker is different: it
// runs as soon as the unlocker blocks, so it gets the lock handed over (FIFO, no latency, and
// a fiber looping lock/unlock cannot starve the fibers of its own worker).
//
// Starvation: a waiter that comes back after more than kStarveAfter and loses again sets
// kStarving: unlocks then hand ownership to the oldest waiter directly (kLocked stays set,
// Waiter::slot marks the hand-off) until the queue is empty or a waiter gets it within
// kStarveAfter (Go's rule). And a running fiber stops barging once the woken waiter has not
// come back for kStarveAfter: it may sit in the barger's own run queue, where only the
// barger parking lets it run.
#include "green/mutex.hpp"

#include "green/fiber.hpp"
#include "spin.hpp"

namespace green {

using detail::WakeReason;

namespace {
constexpr auto kStarveAfter = std::chrono::milliseconds(1);
char g_handed_off;  // Waiter::slot value: the unlocker passed ownership to this waiter
}  // namespace

std::uint32_t Mutex::acquire_queue() {
  for (int spins = 0;; ++spins) {
    std::uint32_t s = state_.load(std::memory_order_relaxed);
    if (!(s & kQueueLock) &&
        state_.compare_exchange_weak(s, s | kQueueLock, std::memory_order_acquire,  // see note
                                     std::memory_order_relaxed))
      return s | kQueueLock;
    detail::spin_backoff(spins);
  }
}

bool Mutex::lock_slow(detail::TimePoint deadline, bool interruptible) {
  bool woken = false;    // an unlock woke us: the kWoken bit is ours to clear
  bool requeue = false;  // we waited already: queue at the front
  detail::TimePoint first_park{};
  for (;;) {
    std::uint32_t s = acquire_queue();
    const bool was_woken = woken;
    if (woken) {
      s &= ~kWoken;
      woken = false;
    }
    // Free: take it (barge) unless a woken waiter has been kept from it for too long; it
    // may be stuck behind us in our own worker's run queue, and only our parking lets it run.
    if (!(s & (kLocked | kStarving)) &&
        (was_woken || !(s & kWoken) || detail::Clock::now() - woken_at_ < kStarveAfter)) {
      state_.store((s | kLocked) & ~kQueueLock, std::memory_order_release);  // see note
      return true;
    }
    if (requeue && !(s & kStarving) && detail::Clock::now() - first_park > kStarveAfter)
      s |= kStarving;
    state_.store(s, std::memory_order_relaxed);  // still ours: kQueueLock stays set
    detail::Waiter w(detail::WaitKind::kMutex, this);
    if (requeue) {
      waiters_.push_front(&w);
    } else {
      waiters_.push_back(&w);
      first_park = detail::Clock::now();
    }
    WakeReason r =
        detail::park(w, deadline,
                     {[](void* p) {
                        auto* m = static_cast<Mutex*>(p);
                        std::uint32_t v = m->state_.load(std::memory_order_relaxed);
                        // release: publishes our queue entry (see note)
                        m->state_.store((v | kWaiters) & ~kQueueLock, std::memory_order_release);
                      },
                      this},
                     interruptible);
    if (r == WakeReason::kNotified) {
      if (w.slot == &g_handed_off) {
        // Handed over: we own it. Leave hand-off mode if we did not really starve (Go's
        // rule): hand-offs cost a wake-up each, so stay in that mode only while needed.
        if (detail::Clock::now() - first_park < kStarveAfter) {
          std::uint32_t v = acquire_queue();
          state_.store(v & ~(kStarving | kQueueLock), std::memory_order_release);  // see note
        }
        return true;
      }
      woken = true;
      requeue = true;
      continue;
    }
    // Timed out or interrupted: leave the queue (unless an unlocker already popped us; its
    // wake() then failed, so it did not count us as woken).
    std::uint32_t v = acquire_queue();
    waiters_.remove(&w);
    if (waiters_.empty()) v &= ~(kWaiters | kStarving);
    state_.store(v & ~kQueueLock, std::memory_order_release);  // see note
    if (r == WakeReason::kTimeout) return false;
    detail::throw_if_interrupted(r);
    return false;
  }
}

void Mutex::unlock_slow() {
  std::uint32_t v = acquire_queue();
  if (!(v & kLocked)) detail::fatal_usage("green::Mutex::unlock on a mutex that is not locked");
  while (detail::Waiter* w = waiters_.front()) {
    // Hand the lock over when starving, or when the waiter is a fiber of this very worker: it
    // runs as soon as we block or yield, so keeping the lock for it costs no wake-up latency
    // (and a fiber that loops lock/unlock yields to it at its next lock()).
    bool hand_off = (v & kStarving) || detail::waiter_is_local(w);
    if (!hand_off && (v & kWoken)) break;  // a remote waiter is already on its way
    waiters_.pop_front();
    if (hand_off) {
      w->slot = &g_handed_off;  // read by the waiter only if this wake() wins
      if (detail::wake(w, WakeReason::kNotified)) {
        if (waiters_.empty()) v &= ~(kWaiters | kStarving);
        state_.store(v & ~kQueueLock, std::memory_order_release);  // kLocked stays: w owns it
        return;
      }
    } else if (detail::wake(w, WakeReason::kNotified)) {
      v |= kWoken;
      woken_at_ = detail::Clock::now();
      break;
    }
  }
  v &= ~kLocked;
  if (waiters_.empty()) v &= ~(kWaiters | kStarving);
  state_.store(v & ~kQueueLock, std::memory_order_release);  // see note; the last access
}

void Mutex::lock_uninterruptible() {
  if (try_lock()) return;
  lock_slow(detail::kNoDeadline, false);
}

}  // namespace green
