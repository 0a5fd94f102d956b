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
#include <atomic>

#include "green/debug.hpp"
#include "green/detail/hooks.hpp"
#include "green/detail/task.hpp"
#include "green/errors.hpp"
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
  // Pairs with finish_task()'s release store: the task's result and error are visible.
  return task_state(this).state.load(std::memory_order_acquire) == TaskState::kDone;
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

void finish_task(Task* t) noexcept {
  TaskState& s = task_state(t);
  s.join_lock.lock();
  // Release: publishes the result and error to done()'s acquire in joiners and handles.
  s.state.store(TaskState::kDone, std::memory_order_release);
  while (Waiter* w = s.joiners.pop_front()) wake(w, WakeReason::kNotified);
  s.join_lock.unlock();
}

WakeReason Task::wait_done(TimePoint deadline) noexcept {
  if (done()) return WakeReason::kNotified;
  TaskState& s = task_state(this);
  s.join_lock.lock();
  if (done()) {
    s.join_lock.unlock();
    return WakeReason::kNotified;
  }
  Waiter w(WaitKind::kJoin, this);
  s.joiners.push_back(&w);
  WakeReason r = park(w, deadline, unlocker(s.join_lock));
  // wait_on() without its re-lock in the usual case, a fiber joiner woken by finish_task():
  // that unlinked w before wake()'s CAS (acq_rel; our acquire in reason()), and wake() touches
  // only the Context after the CAS, never w. A plain thread's wake ends with a futex wake on
  // w.state (w.context is nullptr then), and a timeout or cancel leaves w linked: both re-take
  // the lock as wait_on does. The Task, with join_lock that finish_task still holds, outlives
  // this return: run_task drops the runtime's reference only after finish_task.
  if (r != WakeReason::kNotified || !w.context) {
    s.join_lock.lock();
    s.joiners.remove(&w);
    s.join_lock.unlock();
  }
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
