// Context: the execution vehicle of fibers: one stack plus one suspended machine context
// (Boost.Context's fcontext_t; the switch is machine_jump, ~25 instructions: switch.hpp).
//
// A Context lives at the top of its own stack (no separate allocation). Its *home* worker
// (home_) owns the stack, the pool slot and the all_contexts_ link for the context's whole
// life; the worker it *runs on* (worker_) is the home unless the context migrated. It runs
// tasks one after another: when its task finishes it either picks the next unstarted task
// itself (no switch at all: the cheap path of spawn+join) or returns to its home's pool (a
// context that finished elsewhere is sent home first: Worker::post_return). A Task is bound to
// one Context from start to finish.
//
// Migration (docs/design.md, "Placement and stealing"): a context whose task carries its own
// thread identity (Task::tp_: the shim's fiber-threads and main fiber) is `migratable_`: while
// runnable it sits on its worker's shared ready queue, from which idle workers steal, and a
// thread that wakes it may queue it there directly. worker_ changes only while the context is
// on no CPU and in nobody's hands but the thief's (under the victim's queue lock). A context
// never migrates while `pin_` > 0 (code that must resume on the worker it started on: a poller
// wait, an offload or DNS request of the worker's loop) or while its timer is armed (the
// uv_timer_t belongs to one loop: the owner disarms it before the context becomes stealable).
//
// The worker's own OS-thread stack is represented by a Context too (Worker::sched_), which
// runs the event loop; its `fctx_` holds the suspended loop while fibers run.
//
// Why fcontext and not boost::context::fiber: the fiber wrapper adds a record, move-only
// ownership and unwinding on destruction, none of which green uses (a Context never returns
// and is never unwound; abandoned fibers are dropped with their stacks at shutdown). Calling
// the fcontext layer directly keeps the switch within a few instructions of the raw cost.
//
// Context owns everything Boost.Context: the stack's machine state (`fctx_`, private), the
// switch (jump(), the only call of machine_jump besides the hand-off's in machine.cpp; it also
// switches the FS base when the next context runs with another thread pointer, `tp_`:
// thread_pointer.hpp) and the entry of a new stack. Worker decides *which* context runs next
// and does the bookkeeping (Worker::switch_to); Context does the switch itself. Timed waits
// (arm_timer / disarm_timer / timer_deadline) borrow a uv_timer_t of the worker the context
// runs on (Worker::take_timer) for the duration of one wait.
//
// Fields are touched only by the thread of the worker it runs on (worker_), except `next_`,
// which links the Context into a queue another thread may push on (Worker::inbox_, the shared
// ready queue), `worker_` (atomic: see above) and `wake_direct_` (read by remote wakers).
#pragma once

#include <uv.h>

#include <boost/context/detail/fcontext.hpp>
#include <cstdint>

#include "green/detail/task.hpp"
#include "green/detail/wait.hpp"
#include "sanitizer.hpp"
#include "stack_pool.hpp"
#include "switch.hpp"

namespace green::detail {

class Worker;

class Context {
 public:
  enum class State : std::uint8_t {
    kIdle,     // in the worker's pool, no task
    kRunning,  // on the CPU (Worker::running_)
    kReady,    // on the ready queue or the inbox
    kParked,   // suspended in park(); reachable only through a Waiter
  };

  // Creates a context on a fresh stack of `worker`. Throws StackError.
  static Context* create(Worker* worker, std::size_t stack_size);
  // Releases the stack (the Context lives on it). Must not be the running context.
  void destroy() noexcept;

  // The machine switch: suspends this context (the one running on this thread) and resumes
  // `to`; returns when some context switches back to this one. Tells the sanitizers; no
  // bookkeeping (Worker::switch_to does that; the backtrace visits of dumps use it bare).
  // Inline: it is the heart of every hot path.
  // The FS base changes here when `to` runs with another thread pointer (thread_pointer.hpp):
  // after this stack's last TLS access, before `to`'s first.
  __attribute__((always_inline)) void jump(Context* to) {
    if (__builtin_expect(to->tp_ != tp_, 0)) enter_tp(to);
    to->suspended_.store(false, std::memory_order_relaxed);  // see suspended_
    void* fake_stack = nullptr;
    sanitizer_before_switch(to->san_, &fake_stack);
    auto from = machine_jump(to->fctx_, this);
    sanitizer_after_switch(fake_stack);
    finish_switch(from);
  }

  // Timed waits (owner thread, on this context's fiber): arms the timer to wake `w` with
  // kTimeout at `deadline` (never earlier); disarm_timer() stops it once the wait is over
  // (on the thread of the worker the context is on now: if that is not the timer's loop,
  // because a waker adopted the context, the timer is sent home to be stopped there).
  void arm_timer(Waiter* w, TimePoint deadline);
  void disarm_timer() noexcept;
  // The deadline of the armed timed wait, kNoDeadline if none (dumps).
  TimePoint timer_deadline() const noexcept {
    return timed_waiter_ ? timer_deadline_ : kNoDeadline;
  }

  Worker* const home_;  // owns the stack, the pool slot, the all_contexts_ link
  // The worker this context runs on, is queued on or parked on. Relaxed: it is written only
  // by a thief holding the victim's shared-queue lock (or by the home taking a returned
  // context back), before the context runs there; readers are that worker's thread, and
  // wakers that won a wait this context parked in after the write (the wait's own lock or
  // CAS orders them after it).
  std::atomic<Worker*> worker_;
  Worker* worker() const noexcept { return worker_.load(std::memory_order_relaxed); }
  Task* task_ = nullptr;
  // The task has a thread identity of its own (set when bound to a task): may migrate.
  bool migratable_ = false;
  int pin_ = 0;  // > 0: must resume on worker_ (PinToWorker); the context's own code only
  // Set by park() just before the context parks, says how another thread may queue it:
  //   kWakeInbox   through the worker's inbox (pinned, or not migratable);
  //   kWakeDirect  migratable, unpinned, no timer armed: a waker that is another worker's
  //                thread takes the context to its own queues (Worker::adopt), other
  //                threads put it on the worker's shared ready queue directly;
  //   kWakeAdopt   migratable and unpinned with a timer armed: a waker that is another
  //                worker's thread takes it (Worker::adopt; the timer is then cancelled
  //                lazily, disarm_timer), other threads use the inbox.
  // Relaxed: written by the fiber before it releases the lock its wakers take.
  static constexpr std::uint8_t kWakeInbox = 0;
  static constexpr std::uint8_t kWakeDirect = 1;
  static constexpr std::uint8_t kWakeAdopt = 2;
  std::atomic<std::uint8_t> wake_direct_{kWakeInbox};
  std::uint8_t wake_mode() const noexcept {
    if (!migratable_ || pin_ != 0) return kWakeInbox;
    return timed_waiter_ ? kWakeAdopt : kWakeDirect;
  }
  // True once the context's latest switch-away is complete (fctx_ saved): cleared by the
  // thread that switches to it, set by the context that runs next. A context taken from a
  // shared queue may still be switching away on another thread; the taker waits for this.
  std::atomic<bool> suspended_{true};  // a fresh context (make_fcontext) is resumable
  bool may_move() const noexcept { return migratable_ && pin_ == 0 && !timed_waiter_; }
  Context* next_ = nullptr;      // ready queue / inbox / pool link
  Context* all_next_ = nullptr;  // Worker::all_contexts_ (owner thread only; dumps, gdb)
  Context* all_prev_ = nullptr;
  State state_ = State::kIdle;
#ifndef NDEBUG
  // Queue-membership check (debug builds): how many run queues (ready queue or inbox) hold
  // this context. A context on two queues at once is the signature of a double wake-up and
  // corrupts the ready list; enqueue_check/dequeue_check turn it into an immediate abort.
  std::atomic<int> queued_{0};
#endif
  void enqueue_check() noexcept {
#ifndef NDEBUG
    if (queued_.fetch_add(1, std::memory_order_relaxed) != 0) queue_corrupt("queued twice");
#endif
  }
  void dequeue_check() noexcept {
#ifndef NDEBUG
    if (queued_.fetch_sub(1, std::memory_order_relaxed) != 1) queue_corrupt("dequeued unqueued");
#endif
  }
  [[noreturn]] void queue_corrupt(const char* what) noexcept;
  bool is_scheduler_ = false;
  // Work for the next context once this one is switched away from (finish_switch):
  static constexpr std::uint8_t kDestroy = 1;     // pool over capacity: release the stack
  static constexpr std::uint8_t kReleaseTp = 2;   // the finished task's own TP is unused now
  static constexpr std::uint8_t kReturnHome = 4;  // idle on a foreign worker: send it home
  std::uint8_t retire_ = 0;
  void switched_away() noexcept;  // does what retire_ asks (one flag test on the hot path)
  // The thread pointer this context's code runs with (thread_pointer.hpp): the worker's own
  // (Worker::sched_.tp_) unless its task has a thread identity of its own (Task::tp_).
  char* tp_ = nullptr;

  Stack stack_;
  SanitizerState san_;

  // A copy of the running task's id and name for the monitor thread, which must not touch
  // the Task (it may be freed at any moment). Relaxed atomics: a torn name is harmless.
  static constexpr std::size_t kNameCopy = 48;
  std::atomic<std::uint64_t> diag_id_{0};
  std::atomic<char> diag_name_[kNameCopy] = {};
  void publish_diag(const Task* t) noexcept;

  explicit Context(Worker* w) : home_(w), worker_(w) {}

 private:
  static void entry(boost::context::detail::transfer_t from);
  // First thing a context does when it gets the CPU: records the suspended state of the
  // context that switched to it (and retires that one if it asked to be).
  static void finish_switch(boost::context::detail::transfer_t from) noexcept {
    auto* prev = static_cast<Context*>(from.data);
    prev->fctx_ = from.fctx;
    // Release: a thread that took prev from a shared queue and sees this (acquire) may run it.
    prev->suspended_.store(true, std::memory_order_release);
    if (prev->retire_) prev->switched_away();
  }
  // Stores the worker's runtime state (and glibc's tid) into `to`'s TLS block, then writes
  // the FS base (thread_pointer.hpp). Defined in worker.cpp; called only between two stacks.
  static void enter_tp(Context* to) noexcept;
  static void on_timer(uv_timer_t* t);

  // Suspended machine state while this context is not running (tools/green-gdb.py reads it).
  boost::context::detail::fcontext_t fctx_ = nullptr;

  // Timed waits: a timer borrowed from worker_ for one wait (Worker::take_timer).
  struct TimerBox* timer_ = nullptr;
  Waiter* timed_waiter_ = nullptr;  // the armed wait; nullptr: timer idle
  TimePoint timer_deadline_{};

  friend class Worker;
  friend class Machines;
  friend bool handoff_signal(int, int) noexcept;
  friend void reattach() noexcept;
};

// A libuv timer of one worker's loop (`home`), lent to a context for one timed wait. The
// loop's thread owns it (timer, waiter, deadline, the free list) except for `state`: a
// context adopted by another worker (Worker::adopt) resumes there and cancels the wait's
// timer from that thread (Worker::post_timer), while the home loop's callback may be firing.
//   kArmed -> kFiring     on_timer (home thread), for the time it reads `waiter` and wakes it
//   kFiring -> kArmed     on_timer, unless its wake won (the context is then queued at home,
//                         and home disarms it: kIdle)
//   kArmed -> kAbandoned  post_timer (the context's new thread), after waiting out kFiring;
//                         the box then travels home on Worker::returned_timers_, and the home
//                         thread stops it and frees it (kIdle). on_timer ignores kAbandoned.
// acquire/release on the transitions: whoever leaves kFiring publishes that it is done with
// `waiter` (which lives on the waiting fiber's stack) to the CAS that waits for it.
struct TimerBox {
  uv_timer_t timer;
  Worker* home = nullptr;
  Waiter* waiter = nullptr;  // the armed wait (home thread)
  TimePoint deadline{};      // its deadline (home thread)
  static constexpr std::uint32_t kIdle = 0, kArmed = 1, kFiring = 2, kAbandoned = 3;
  std::atomic<std::uint32_t> state{kIdle};
  TimerBox* next = nullptr;  // the worker's free list, or Worker::returned_timers_
};

// Keeps the running context on its worker until the scope ends (it may still park): for code
// whose wake-up or clean-up touches structures of the worker it started on (a Poller wait,
// an offload/resolve request queued on the worker's loop).
class PinToWorker {
 public:
  explicit PinToWorker(Context* c) noexcept : c_(c) { ++c_->pin_; }
  ~PinToWorker() { --c_->pin_; }
  PinToWorker(const PinToWorker&) = delete;
  PinToWorker& operator=(const PinToWorker&) = delete;

 private:
  Context* c_;
};

}  // namespace green::detail
