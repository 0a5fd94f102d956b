// park/wake: the suspend/resume primitive under every blocking call (see detail/wait.hpp).
//
// On a fiber, park() records the Waiter for cancellation (TaskState::waiter), arms the
// context's timer (Context::arm_timer) for the effective deadline (the earlier of the call's own
// and the fiber's scoped Deadline), releases the caller's lock and switches away. The winner of the
// CAS on Waiter::state makes the fiber runnable on the worker it parked on (Worker::make_ready;
// a migratable fiber may then be taken by another worker before it runs), except that a
// migratable, unpinned fiber woken from another worker's thread is taken to the waker's
// worker (Worker::adopt; a timed wait's timer is then cancelled from there: disarm_timer).
//
// Off a fiber (a plain OS thread using green primitives), park() sleeps on a futex on
// Waiter::state; wake() stores the reason and futex-wakes it. Cancellation and scoped
// deadlines do not apply to plain threads.
//
// A fiber parks once at a time: TaskState::waiter is set from the start of park() until it
// resumes, and a park() that finds it set (runtime code on the fiber's stack reached a hook
// that parks, inside this very park) aborts with a message instead of losing the outer wait.
#include <linux/futex.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cerrno>
#include <climits>
#include <cstdio>
#include <cstdlib>

#include "context.hpp"
#include "green/detail/hooks.hpp"
#include "green/detail/raw_syscall.hpp"
#include "green/errors.hpp"
#include "green/fiber.hpp"
#include "runtime.hpp"
#include "spin.hpp"
#include "task_state.hpp"
#include "tls.hpp"
#include "worker.hpp"

namespace green::detail {

namespace {

// The futex system call itself (raw_syscall.hpp), never libc's syscall(): the shim interposes
// that and turns a fiber's futex waits into parks, which must never happen to the runtime's
// own OS-thread waits.
void futex_wait(std::atomic<std::uint32_t>* addr, std::uint32_t expected, const timespec* rel) {
  raw_syscall_ret(SYS_futex, sc_arg(addr), FUTEX_WAIT_PRIVATE, expected, sc_arg(rel));
}

void futex_wake(std::atomic<std::uint32_t>* addr) {
  raw_syscall_ret(SYS_futex, sc_arg(addr), FUTEX_WAKE_PRIVATE, 1);
}

__attribute__((noinline)) WakeReason park_thread(Waiter& w, TimePoint deadline, Unlocker unlock) {
  w.context = nullptr;
  if (Runtime* rt = Runtime::current()) rt->foreign_.store(true, std::memory_order_relaxed);
  unlock();
  for (;;) {
    std::uint32_t s = w.state.load(std::memory_order_acquire);  // pairs with wake()'s CAS
    if (s != 0) return WakeReason(s);
    if (deadline == kNoDeadline) {
      futex_wait(&w.state, 0, nullptr);
      continue;
    }
    auto now = Clock::now();
    if (now >= deadline) {
      std::uint32_t expected = 0;
      // acq_rel: as wake()'s CAS (we may be the winner, or see the winner's writes)
      if (w.state.compare_exchange_strong(expected, std::uint32_t(WakeReason::kTimeout),
                                          std::memory_order_acq_rel))
        return WakeReason::kTimeout;
      return WakeReason(expected);
    }
    auto ns = std::chrono::duration_cast<std::chrono::nanoseconds>(deadline - now).count();
    timespec ts{static_cast<time_t>(ns / 1000000000), static_cast<long>(ns % 1000000000)};
    futex_wait(&w.state, 0, &ts);
  }
}

// A park() from inside this fiber's own park() (between recording its waiter and switching
// away): runtime code on the fiber's stack called an interposed function without a
// ShimBypass, and the shim parked it. The outer wait's state and wake-up would be lost (a
// silent deadlock), so stop here, loudly.
[[noreturn]] __attribute__((noinline, cold)) void nested_park(Task* t) noexcept {
  std::fprintf(stderr,
               "green: internal error: task %p parked inside its own park() (a blocking call "
               "reached from runtime code that holds no ShimBypass)\n",
               static_cast<void*>(t));
  std::abort();
}

}  // namespace

void SpinLock::lock_slow() noexcept {
  for (int spins = 0;; ++spins) {
    if (!locked_.load(std::memory_order_relaxed) &&
        !locked_.exchange(true, std::memory_order_acquire))  // as lock(): pairs with unlock()
      return;
    spin_backoff(spins);  // the holder is on another OS thread that may have been preempted
  }
}

// park()'s continuation when the wait has a deadline (its own or the fiber's scoped one) or
// a cancel or interrupt is already pending: out of line, so the common wait (no deadline,
// nothing pending: every fd wait and lock wait) runs in a small frame. Entered with the
// context marked parked and ts.waiter set, exactly where park() would continue.
static __attribute__((noinline)) WakeReason park_slow(Worker* wk, Context* c, TaskState& ts,
                                                      Waiter& w, TimePoint deadline,
                                                      Unlocker unlock,
                                                      bool interruptible) noexcept {
  bool scoped = false;
  if (interruptible && ts.deadline < deadline) {
    deadline = ts.deadline;
    scoped = true;
  }
  if (interruptible && ts.cancel_pending.load(std::memory_order_relaxed)) {
    wake(&w, WakeReason::kCancelled);
  }
  // An interrupt_task() that came before this point (its flag store is seq_cst, and so is
  // this exchange) ends the wait at once; one that comes later finds waiter_ set when our
  // worker drains its interrupt list (that runs on this thread, after we switched away).
  if (interruptible && ts.interrupt_pending.load(std::memory_order_seq_cst) &&
      ts.interrupt_pending.exchange(false, std::memory_order_seq_cst)) {
    wake(&w, WakeReason::kInterrupted);
  }
  // Not if a cancel or interrupt above already woke us: a migratable context is then on the
  // shared ready queue, and a timer armed now could be disarmed on another worker. (Until
  // unlock() no other thread can wake us: poller, timer and offload wakes come from this one.)
  if (deadline != kNoDeadline && w.state.load(std::memory_order_relaxed) == 0) {
    if (Clock::now() >= deadline) {
      wake(&w, WakeReason::kTimeout);
    } else {
      c->arm_timer(&w, deadline);
    }
  }
  // Before unlock(): a waker on another thread takes the lock we release, then reads it.
  c->wake_direct_.store(c->wake_mode(), std::memory_order_relaxed);
  unlock();
  // Even if already woken we switch: the waker queued us, and the queue entry must be
  // consumed exactly once (park_current may pick this very context and return at once).
  wk->park_current();
  // Resumed: whoever won the CAS queued us exactly once; we are running again, perhaps on
  // another worker (a migratable fiber: stolen after its timer was disarmed, or adopted by
  // its waker with the timer still armed at home: disarm_timer sends it home).
  if (deadline != kNoDeadline) c->disarm_timer();
  ts.waiter = nullptr;
  WakeReason r = w.reason();
  if (r == WakeReason::kCancelled) ts.cancel_pending.store(false, std::memory_order_relaxed);
  if (r == WakeReason::kTimeout && scoped) {
    ts.deadline_fired = true;
    r = WakeReason::kDeadline;
  }
  return r;
}

WakeReason park(Waiter& w, TimePoint deadline, Unlocker unlock, bool interruptible) noexcept {
  Worker* wk = Worker::current();
  Task* t = tls().task;
  if (!wk || !t) return park_thread(w, deadline, unlock);

  TaskState& ts = task_state(t);
  if (ts.waiter) nested_park(t);
  Context* c = wk->running();
  c->state_ = Context::State::kParked;  // before any wake can push us on a queue
  w.context = c;
  // Recorded for cancel() (interruptible waits only) and for dumps. A cancel() after this
  // point reaches us through our worker (Worker::post_cancel).
  w.interruptible = interruptible;
  ts.waiter = &w;
  // A deadline to arm, or a cancel or interrupt already pending (the same loads, in the same
  // order after the ts.waiter store, as park_slow's checks): park_slow.
  bool slow = deadline != kNoDeadline ||
              (interruptible &&
               (ts.deadline != kNoDeadline || ts.cancel_pending.load(std::memory_order_relaxed)));
  // seq_cst: as park_slow's load of the interrupt_task() flag (see there).
  if (!slow && interruptible) slow = ts.interrupt_pending.load(std::memory_order_seq_cst);
  if (__builtin_expect(slow, 0)) return park_slow(wk, c, ts, w, deadline, unlock, interruptible);
  // Before unlock(): a waker on another thread takes the lock we release, then reads it.
  c->wake_direct_.store(c->wake_mode(), std::memory_order_relaxed);
  unlock();
  // Even if already woken we switch (see park_slow).
  wk->park_current();
  // Resumed (no timer was armed; perhaps on another worker, for a migratable fiber).
  ts.waiter = nullptr;
  WakeReason r = w.reason();
  if (r == WakeReason::kCancelled) ts.cancel_pending.store(false, std::memory_order_relaxed);
  return r;
}

bool wake(Waiter* w, WakeReason reason) noexcept {
  if (w->owner) w = w->owner;
  std::uint32_t expected = 0;
  Context* c = w->context;  // read before the CAS: afterwards w may be gone
  // acq_rel: release publishes what the waker wrote (the slot, the object's new state) to the
  // woken side's acquire (reason()); acquire orders us after a losing racer's writes.
  if (!w->state.compare_exchange_strong(expected, std::uint32_t(reason), std::memory_order_acq_rel,
                                        std::memory_order_relaxed))
    return false;
  if (c) {
    Worker* self = Worker::current();
    Worker* wk = c->worker();
    if (wk == self) {
      wk->make_ready_local(c);  // the poller's and the sync primitives' usual case
    } else if (self && c->wake_direct_.load(std::memory_order_relaxed) != Context::kWakeInbox &&
               self->adopt(c, wk)) {
      // A migratable fiber (a GIL waiter's 5 ms pthread_cond_timedwait, a FORCE_SWITCHING
      // holder's cond wait) woken from another worker runs on the waker's worker, as Go's
      // ready() queues on the current P: the pair then hands off without a cross-thread wake,
      // and the woken one does not wait for its old worker's OS thread to get a CPU. A timed
      // wait's timer is cancelled lazily (disarm_timer).
    } else {
      if (!self) wk->runtime()->foreign_.store(true, std::memory_order_relaxed);
      wk->make_ready_remote(c);
    }
  } else {
    futex_wake(&w->state);
  }
  return true;
}

bool waiter_is_local(const Waiter* w) noexcept {
  if (w->owner) w = w->owner;
  Worker* self = Worker::current();
  return self && w->context && w->context->worker() == self;
}

void throw_if_interrupted(WakeReason r) {
  if (r == WakeReason::kCancelled) throw Cancelled();
  if (r == WakeReason::kDeadline) throw TimedOut();
}

[[noreturn]] void fatal_usage(const char* what) {
  std::fprintf(stderr, "green: fatal usage error: %s\n", what);
  std::abort();
}

}  // namespace green::detail
