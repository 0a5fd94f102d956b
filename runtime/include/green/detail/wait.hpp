// The one suspend/resume primitive every blocking operation in green is built on.
//
// A blocked fiber (or plain OS thread) is represented by a Waiter that lives on its own stack
// for the duration of the wait and is linked into the wait list of whatever it waits on
// (mutex, channel, fd, join). Exactly one party wins the right to wake it: wake() performs a
// CAS on Waiter::state from kWaiting to a reason, and only the winner makes it runnable. The
// losers (a timer that fired late, a cancel that raced a notify) do nothing.
//
// Lifetime rule that makes destroying a primitive right after waking safe: a waker touches a
// Waiter only while holding the lock of the list the Waiter is on, and a woken Waiter
// re-acquires that lock before it returns. Cancellation, which comes from outside any list,
// is delivered by the task's own worker (see task.cpp), so it never races the Waiter's end.
//
// Threads: park() may be called on any fiber or any OS thread. A parked library fiber is
// resumed on the worker it ran on, so the resumed code sees the same errno and thread_local
// addresses it had before; a fiber with its own thread identity (the shim's fiber-threads) may
// be resumed on another worker, and carries those addresses with it (docs/design.md).
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>

#include "green/detail/thread_annotations.hpp"
#include "green/export.hpp"

namespace green::detail {

using Clock = std::chrono::steady_clock;
using TimePoint = Clock::time_point;
inline constexpr TimePoint kNoDeadline = TimePoint::max();

// Converts a relative timeout to an absolute deadline, saturating instead of overflowing.
template <class Rep, class Period>
TimePoint deadline_after(std::chrono::duration<Rep, Period> d) {
  auto now = Clock::now();
  if (d <= d.zero()) return now;
  // Compare in floating point before converting: duration_cast of e.g. hours::max() to
  // nanoseconds overflows (undefined behaviour).
  if (std::chrono::duration<double, std::nano>(d).count() >=
      static_cast<double>((kNoDeadline - now).count()))
    return kNoDeadline;  // forever
  return now + std::chrono::duration_cast<std::chrono::nanoseconds>(d);
}

enum class WakeReason : std::uint32_t {
  kWaiting = 0,  // not woken yet
  kNotified,     // the awaited thing happened
  kTimeout,      // the explicit timeout of this call expired
  kDeadline,     // the enclosing green::Deadline expired -> TimedOut
  kCancelled,    // Fiber::cancel() -> Cancelled
  kClosed,       // the channel / fd was closed while waiting
  kInterrupted,  // interrupt_task(): a signal for this fiber-thread (the shim's signals)
};

class Context;

// What a parked fiber waits on, for green::dump_fibers and the deadlock report.
// clang-format off
enum class WaitKind : std::uint8_t {
  kOther, kSleep, kJoin, kMutex, kCondVar, kSemaphore, kEvent, kWaitGroup,
  kChannelSend, kChannelRecv, kIo, kOffload, kResolve,
};
// clang-format on

// 64 bytes (one cache line when the stack slot happens to be aligned, at most two): the
// bytes, then the pointers. A parked fiber's resume reads state, linked and its neighbours
// after a thousand other fibers ran, so every line of a Waiter is a likely L1 miss.
struct Waiter {
  std::atomic<std::uint32_t> state{0};  // WakeReason; CAS from kWaiting decides the waker
  WaitKind kind = WaitKind::kOther;     // diagnostics only
  bool linked = false;                  // on a WaitList (guarded by its lock)
  bool interruptible = false;           // set by park: may cancel() wake it?
  Context* context = nullptr;           // fiber to resume; nullptr: an OS thread (futex)
  Waiter* next = nullptr;               // links in the owner's WaitList (guarded by its lock)
  Waiter* prev = nullptr;
  void* slot = nullptr;          // primitive-specific payload (e.g. a channel value)
  Waiter* owner = nullptr;       // set on list nodes of a multi-wait: wake() wakes the owner
  const void* object = nullptr;  // the primitive waited on (diagnostics only)
  int fd = -1;                   // kIo: first fd; events in `events`
  unsigned events = 0;

  Waiter() = default;
  Waiter(WaitKind k, const void* obj) : kind(k), object(obj) {}
  // Acquire: pairs with wake()'s CAS, so what the waker wrote before waking is visible.
  WakeReason reason() const { return WakeReason(state.load(std::memory_order_acquire)); }
};
static_assert(sizeof(Waiter) == 64, "Waiter: keep it one line's worth (see above)");

// Intrusive FIFO of waiters. Not thread-safe: guarded by the owning primitive's lock.
class WaitList {
 public:
  bool empty() const { return head_ == nullptr; }
  Waiter* front() const { return head_; }
  void push_back(Waiter* w) {
    w->next = nullptr;
    w->prev = tail_;
    if (tail_)
      tail_->next = w;
    else
      head_ = w;
    tail_ = w;
    w->linked = true;
  }
  void push_front(Waiter* w) {
    w->prev = nullptr;
    w->next = head_;
    if (head_)
      head_->prev = w;
    else
      tail_ = w;
    head_ = w;
    w->linked = true;
  }
  Waiter* pop_front() {
    Waiter* w = head_;
    if (w) remove(w);
    return w;
  }
  // Unlinks w, which must be on this list (or on none).
  void remove(Waiter* w) {
    if (!w->linked) return;
    if (w->prev)
      w->prev->next = w->next;
    else
      head_ = w->next;
    if (w->next)
      w->next->prev = w->prev;
    else
      tail_ = w->prev;
    w->next = w->prev = nullptr;
    w->linked = false;
  }

 private:
  Waiter* head_ = nullptr;
  Waiter* tail_ = nullptr;
};

// Test-and-test-and-set spinlock for the short critical sections inside primitives. Never
// held across a switch or a syscall; contention comes only from other OS threads, so after a
// short spin it yields the thread. The acquire exchange of lock()/try_lock() pairs with the
// release store of unlock(): the critical sections are ordered one after the other.
class GREEN_CAPABILITY("mutex") GREEN_API SpinLock {
 public:
  void lock() noexcept GREEN_ACQUIRE() {
    if (!locked_.exchange(true, std::memory_order_acquire)) return;
    lock_slow();
  }
  bool try_lock() noexcept GREEN_TRY_ACQUIRE(true) {
    return !locked_.load(std::memory_order_relaxed) &&
           !locked_.exchange(true, std::memory_order_acquire);  // as lock()
  }
  // Release: pairs with the next lock()'s acquire exchange.
  void unlock() noexcept GREEN_RELEASE() { locked_.store(false, std::memory_order_release); }

 private:
  void lock_slow() noexcept;
  std::atomic<bool> locked_{false};
};

// Scoped SpinLock holder (std::lock_guard is not annotated for -Wthread-safety).
class GREEN_SCOPED_CAPABILITY SpinGuard {
 public:
  explicit SpinGuard(SpinLock& l) noexcept GREEN_ACQUIRE(l) : l_(l) { l_.lock(); }
  ~SpinGuard() GREEN_RELEASE() { l_.unlock(); }
  SpinGuard(const SpinGuard&) = delete;
  SpinGuard& operator=(const SpinGuard&) = delete;

 private:
  SpinLock& l_;
};

// Releases the caller's lock once the waiter is published (called exactly once by park).
struct Unlocker {
  void (*fn)(void*) = nullptr;
  void* arg = nullptr;
  void operator()() const {
    if (fn) fn(arg);
  }
};
// For the thread-safety analysis `l` counts as released here: the Unlocker is handed to
// park(), which releases it before it returns, and nothing runs between the two.
inline void unlock_spin_lock(void* l) GREEN_NO_THREAD_SAFETY_ANALYSIS {
  static_cast<SpinLock*>(l)->unlock();
}
inline Unlocker unlocker(SpinLock& l) GREEN_RELEASE(l) GREEN_NO_THREAD_SAFETY_ANALYSIS {
  return {&unlock_spin_lock, &l};
}

// Blocks the calling fiber or thread until wake(&w, ...), `deadline`, the fiber's scoped
// green::Deadline or a cancellation, whichever comes first, and returns why it woke.
// `unlock` is called after `w` is visible to wakers and before blocking; the caller's lock is
// not re-acquired on return. With interruptible=false, cancellation and the scoped Deadline
// are ignored (used where a wait must complete, e.g. re-locking after a condvar wait).
GREEN_API WakeReason park(Waiter& w, TimePoint deadline, Unlocker unlock,
                          bool interruptible = true) noexcept;

// Makes `w` runnable with `reason` if nobody woke it yet. Returns false if it was already
// woken. Callable from any thread, including the worker loop.
GREEN_API bool wake(Waiter* w, WakeReason reason) noexcept;

// True if `w` is a parked fiber of the worker running on the calling thread (it can only
// run once the caller blocks or yields). Call with the lock of w's list held.
GREEN_API bool waiter_is_local(const Waiter* w) noexcept;

// Throws green::Cancelled for kCancelled and green::TimedOut for kDeadline.
GREEN_API void throw_if_interrupted(WakeReason r);

// The usual way to block on a primitive: with `lock` held, queues `w` on `list`, parks
// (releasing `lock`), then re-takes `lock` to leave the list (the lifetime rule above) and
// releases it. Returns why the wait ended.
inline WakeReason wait_on(WaitList& list, SpinLock& lock, Waiter& w, TimePoint deadline,
                          bool interruptible = true) noexcept GREEN_RELEASE(lock) {
  list.push_back(&w);
  WakeReason r = park(w, deadline, unlocker(lock), interruptible);
  lock.lock();
  list.remove(&w);
  lock.unlock();
  return r;
}

}  // namespace green::detail
