// Task: control block of a spawned function (see detail/task.hpp).
//
// Cancellation. cancel() may run on any thread; the Waiter it must wake lives on the
// task's stack and is touched only on the task's home worker. So cancel() sets
// cancel_pending_ and hands the rest to that worker (Worker::post_cancel), which wakes the
// task's current wait, if any, on its own thread. park() checks cancel_pending_ before it
// blocks; a cancel that lands after that check is delivered by the worker's message. A task
// that has not started has no home yet: run_task publishes home_ and then reads
// cancel_pending_ (both seq_cst, against cancel()'s store of the flag and load of home_), so
// one of the two sides always sees the other.
#include <atomic>

#include "green/detail/hooks.hpp"
#include "green/detail/task.hpp"
#include "green/errors.hpp"
#include "tls.hpp"
#include "worker.hpp"

namespace green::detail {

namespace {
std::atomic<std::uint64_t> g_next_id{1};
}

Task::Task(std::uint32_t refs)
    : refs_(refs), id_(g_next_id.fetch_add(1, std::memory_order_relaxed)) {}

Task::~Task() = default;

void Task::record_exception() noexcept { error_ = std::current_exception(); }

void Task::cancel() noexcept {
  cancel_requested_.store(true, std::memory_order_relaxed);
  cancel_pending_.store(true, std::memory_order_seq_cst);
  if (auto* home = static_cast<Worker*>(home_.load(std::memory_order_seq_cst))) {
    home->post_cancel(this);
  }
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
  Waiter w(WaitKind::kJoin, this);
  return wait_on(joiners_, join_lock_, w, deadline);
}

Task* current_task() noexcept { return tls().task; }

}  // namespace green::detail
