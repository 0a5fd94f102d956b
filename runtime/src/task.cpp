// Task: control block of a spawned function (see detail/task.hpp and task_state.hpp).
//
// Cancellation. cancel() may run on any thread; the Waiter it must wake lives on the
// task's stack and is touched only on the task's home worker. So cancel() sets
// cancel_pending and hands the rest to that worker (Worker::post_cancel), which wakes the
// task's current wait, if any, on its own thread. park() checks cancel_pending before it
// blocks; a cancel that lands after that check is delivered by the worker's message. A task
// that has not started has no home yet: run_task publishes home and then reads
// cancel_pending (both seq_cst, against cancel()'s store of the flag and load of home), so
// one of the two sides always sees the other.
//
// Joining. A task has at most one joiner at a time (Fiber handles are move-only), so the
// joiner parks on the join word (TaskState::join, see there for its states) instead of a lock
// and a waiter list: one CAS to wait, one exchange to finish, and no CAS for the wake when
// the joiner is parked on the finishing worker (wake_joiner).
#include <atomic>

#include "context.hpp"
#include "green/debug.hpp"
#include "green/detail/hooks.hpp"
#include "green/detail/task.hpp"
#include "green/errors.hpp"
#include "green/fiber.hpp"
#include "spin.hpp"
#include "task_state.hpp"
#include "tls.hpp"
#include "worker.hpp"

namespace green::detail {

namespace {

std::atomic<std::uint64_t> g_next_id{1};

// A new task id: from the calling worker's block of ids (Worker::next_id_), refilled
// kIdBlock at a time, so that a spawn writes no cache line shared with other workers.
std::uint64_t new_task_id() noexcept {
  constexpr std::uint64_t kIdBlock = 1024;
  Worker* w = Worker::current();
  if (!w) return g_next_id.fetch_add(1, std::memory_order_relaxed);
  if (w->next_id_ == w->end_id_) {
    w->next_id_ = g_next_id.fetch_add(kIdBlock, std::memory_order_relaxed);
    w->end_id_ = w->next_id_ + kIdBlock;
  }
  return w->next_id_++;
}

}  // namespace

Task::Task(std::uint32_t refs) : refs_(refs), id_(new_task_id()) {
  TaskState::construct(this);
  TaskState::of(this).fp = fp_control_save();  // a new thread starts with its creator's
}

void* Task::operator new(std::size_t n) {
  if (!TaskCache::cacheable(n)) return ::operator new(n);
  if (Worker::current()) {
    RuntimeEntry in;  // no hand-off in the middle (task_cache.hpp); reattaches a detached fiber
    if (Worker* w = Worker::current()) {
      if (void* p = w->task_cache_.take(n)) return p;
    }
  }
  return ::operator new(TaskCache::block_size(n));
}

void Task::operator delete(void* p, std::size_t n) noexcept {
  if (!TaskCache::cacheable(n)) return ::operator delete(p);
  if (Worker::current()) {
    RuntimeEntry in;  // as in operator new
    if (Worker* w = Worker::current()) {
      if (w->task_cache_.put(p, n)) return;
    }
  }
  ::operator delete(p);  // unsized: clang < 16 declares no sized form by default
}

Task::~Task() {
  TaskState::destroy(this);
}

void Task::record_exception() noexcept {
  task_state(this).error = std::current_exception();
}

void Task::rethrow_if_failed() const {
  if (const auto& e = task_state(this).error) std::rethrow_exception(e);
}

bool Task::done() const noexcept {
  // Pairs with finish_task()'s release exchange: the task's result and error are visible.
  return (task_state(this).join.load(std::memory_order_acquire) & TaskState::kJoinDone) != 0;
}

void Task::cancel() noexcept {
  TaskState& s = task_state(this);
  s.cancel_requested.store(true, std::memory_order_relaxed);
  // Dekker with run_task (context.cpp): store the flag, then read home (both seq_cst).
  s.cancel_pending.store(true, std::memory_order_seq_cst);
  if (auto* home = static_cast<Worker*>(s.home.load(std::memory_order_seq_cst))) {
    home->post_cancel(this);
  }
}

// Interrupts (signals for fiber-threads, see hooks.hpp). Async-signal-safe: no locks, no
// allocation. interrupt_pending says "end the next interruptible wait"; interrupt_queued makes
// the task appear at most once on its home worker's list (a Treiber stack the worker empties
// with one exchange, so there is no ABA). The list holds a reference. A task without a home
// has not started: its first interruptible park sees the flag.
void interrupt_task(Task* t) noexcept {
  TaskState& s = task_state(t);
  // seq_cst: pairs with park()'s seq_cst load of the flag after it published waiter, and with
  // the worker clearing interrupt_queued before it looks at the flag.
  s.interrupt_pending.store(true, std::memory_order_seq_cst);
  auto* home = static_cast<Worker*>(s.home.load(std::memory_order_seq_cst));
  if (!home) return;
  if (s.interrupt_queued.exchange(true, std::memory_order_seq_cst)) return;
  t->ref();
  home->post_interrupt(t);
}

namespace {

// Wakes the joiner finish_task() took from the join word. On the joiner's own worker thread
// nothing else can wake that Waiter meanwhile: its other wakers (a cancel or interrupt
// delivered by the home worker, the join's timer on that worker's loop) all run on this
// thread, and finish_task() does not switch away. So the wake needs no CAS there: a relaxed
// load and store of the state (an atomic RMW is ~20 cycles, a tenth of a spawn+join). Any
// other thread, or a thread joiner (no context): wake()'s CAS.
void wake_joiner(Waiter* w) noexcept {
  Context* c = w->context;
  Worker* self = Worker::current();
  if (c && c->worker() == self) {
    if (w->state.load(std::memory_order_relaxed) != 0) return;  // timed out or cancelled
    w->state.store(std::uint32_t(WakeReason::kNotified), std::memory_order_relaxed);
    self->make_ready_local(c);
    return;
  }
  wake(w, WakeReason::kNotified);
}

// Publishes the joiner's Waiter in the join word: park()'s unlocker, called once the Waiter is
// visible to wakers (so a finish_task() on another thread that takes it can wake it).
struct JoinPublish {
  TaskState* s;
  Waiter* w;
  static void run(void* arg) noexcept {
    auto* p = static_cast<JoinPublish*>(arg);
    std::uintptr_t expected = 0;
    // release: the Waiter's fields to finish_task()'s exchange; acquire (failure): the result.
    if (p->s->join.compare_exchange_strong(expected, reinterpret_cast<std::uintptr_t>(p->w),
                                           std::memory_order_acq_rel, std::memory_order_acquire))
      return;
    if (!(expected & TaskState::kJoinDone))
      fatal_usage(
          "two fibers or threads join the same fiber at once (a Fiber handle is not "
          "thread-safe)");
    wake(p->w, WakeReason::kNotified);  // finished meanwhile: park() returns at once
  }
};

// After finish_task() took our Waiter: it may still be reading it (a wake on another thread)
// until the word leaves kJoinFinishing; a few instructions, unless that thread was preempted.
void wait_finisher(TaskState& s) noexcept {
  for (int spins = 0; s.join.load(std::memory_order_acquire) == TaskState::kJoinFinishing; ++spins)
    spin_backoff(spins);
}

}  // namespace

void finish_task(Task* t) noexcept {
  TaskState& s = task_state(t);
  s.state.store(TaskState::kDone, std::memory_order_relaxed);
  // Release: publishes the result and error to done()'s acquire in the joiner and handles.
  // Acquire: the joiner's Waiter (its unlocker's release CAS).
  std::uintptr_t old = s.join.exchange(TaskState::kJoinFinishing, std::memory_order_acq_rel);
  if (old & TaskState::kJoinDone) fatal_usage("a task finished twice");
  if (old) wake_joiner(reinterpret_cast<Waiter*>(old));
  // Release: a joiner that timed out meanwhile may now let its Waiter go (wait_finisher).
  s.join.store(TaskState::kJoinDone, std::memory_order_release);
}

WakeReason Task::wait_done(TimePoint deadline) noexcept {
  if (done()) return WakeReason::kNotified;
  TaskState& s = task_state(this);
  Waiter w(WaitKind::kJoin, this);
  JoinPublish pub{&s, &w};
  WakeReason r = park(w, deadline, Unlocker{&JoinPublish::run, &pub});
  // Woken by finish_task() on a fiber: it took w out of the word and, after its wake, touches
  // only the Context (a wake on another thread: wake() reads w before its CAS, never after).
  // The word itself is the Task's, which outlives this: run_task drops the runtime's
  // reference only after finish_task. A thread joiner's wake ends with a futex wake on
  // w.state: wait until finish_task is done with w.
  if (r == WakeReason::kNotified) {
    if (!w.context) wait_finisher(s);
    return r;
  }
  // Timed out, cancelled or interrupted: take w back, unless finish_task() already took it.
  std::uintptr_t mine = reinterpret_cast<std::uintptr_t>(&w);
  if (!s.join.compare_exchange_strong(mine, 0, std::memory_order_acq_rel,
                                      std::memory_order_acquire))
    wait_finisher(s);
  return r;
}

Task* current_task() noexcept {
  return tls().task;
}

}  // namespace green::detail

namespace green {

std::size_t cached_tasks() noexcept {
  detail::Worker* w = detail::Worker::current();
  return w ? w->task_cache_.size() : 0;
}

}  // namespace green
