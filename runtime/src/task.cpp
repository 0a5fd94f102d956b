// Task: control block of a spawned function (see detail/task.hpp).
//
// Cancellation handshake. cancel() may run on any thread while the task parks and resumes
// on its own worker, and the Waiter it would wake lives on the task's stack. So the
// canceller *borrows* the waiter: it takes it out of waiter_ with a CAS (so park()'s own
// exchange on resume sees nullptr and knows a borrow happened), wakes it, and as its very
// last access sets borrow_returned; park() spins until borrow_returned is set before it lets
// the Waiter go out of scope. The exchange makes at most one canceller borrow a given wait.
// cancel_pending_ (seq_cst) pairs with park()'s publication of waiter_ (seq_cst): either
// park sees the pending flag, or cancel sees the waiter.
#include <atomic>

#include "green/detail/hooks.hpp"
#include "green/detail/task.hpp"
#include "green/errors.hpp"

namespace green::detail {

namespace {
std::atomic<std::uint64_t> g_next_id{1};
}

Task::Task() : id_(g_next_id.fetch_add(1, std::memory_order_relaxed)) {}

Task::~Task() = default;

void Task::record_exception() noexcept { error_ = std::current_exception(); }

void Task::cancel() noexcept {
  cancel_requested_.store(true, std::memory_order_relaxed);
  cancel_pending_.store(true, std::memory_order_seq_cst);
  Waiter* w = waiter_.load(std::memory_order_seq_cst);
  if (!w) return;
  // Borrow: only the CAS winner may touch *w, and only until it sets borrow_returned.
  if (!waiter_.compare_exchange_strong(w, nullptr, std::memory_order_acq_rel)) return;
  wake(w, WakeReason::kCancelled);
  w->borrow_returned.store(true, std::memory_order_release);  // last access to *w
}

void Task::finish() noexcept {
  join_lock_.lock();
  state_.store(kDone, std::memory_order_release);
  while (Waiter* w = joiners_.pop_front()) wake(w, WakeReason::kNotified);
  join_lock_.unlock();
}

WakeReason Task::wait_done(TimePoint deadline) noexcept {
  if (done()) return WakeReason::kNotified;
  join_lock_.lock();
  if (done()) {
    join_lock_.unlock();
    return WakeReason::kNotified;
  }
  Waiter w;
  joiners_.push_back(&w);
  WakeReason r = park(w, deadline, unlocker(join_lock_));
  join_lock_.lock();
  joiners_.remove(&w);
  join_lock_.unlock();
  return r;
}

Task* current_task() noexcept { return thread_state().task; }

ThreadState& thread_state() noexcept {
  static thread_local ThreadState state;
  return state;
}

}  // namespace green::detail
