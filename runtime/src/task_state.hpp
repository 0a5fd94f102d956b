// TaskState: the runtime's per-task state, private to libgreen (and the shim, which compiles
// the runtime in). The installed green/detail/task.hpp shows only what code spawning fibers
// needs (references, id, join/cancel, the spawn parameters); this is the rest, kept inside
// the Task in reserved storage (Task::rt_) so a spawn costs one allocation, not two.
//
// Ownership (who reads and writes which field):
//   next                : run-queue link while kQueued (the queue's owner: GlobalQueue's lock_
//                         or the RunQueue's slot protocol)
//   state               : atomic, relaxed; kQueued -> kRunning (the starting worker) -> kDone
//                         (finish_task()); for dumps and diagnostics only
//   waiter              : the task's own worker thread only (park() sets and clears it; the
//                         dump and Worker::post_cancel read it on that thread)
//   home, cancel_pending: atomic; the Dekker pair of Task::cancel() and run_task (task.cpp)
//   cancel_requested    : atomic, sticky; relaxed (this_fiber::cancel_requested is a hint)
//   deadline, deadline_fired : the task itself only (green::Deadline, park())
//   error               : written by the task before finish_task() (or by the worker that
//                         failed to start it), read by the joiner after done() (the join
//                         word's release/acquire)
//   join                : atomic; the join word (below): 0, the parked joiner's Waiter*, or
//                         kJoinFinishing -> kJoinDone (finish_task())
//   fp                  : set by the creator (Task::Task), read when the task starts
//   interrupt_pending, interrupt_queued, interrupt_next : interrupt_task() (task.cpp) and the
//                         home worker's drain_interrupts (worker.cpp); next is written by the
//                         pusher before its release CAS
#pragma once

#include <atomic>
#include <cstdint>
#include <exception>
#include <new>

#include "green/detail/task.hpp"
#include "green/detail/wait.hpp"
#include "switch.hpp"

namespace green::detail {

struct TaskState {
  enum : std::uint32_t { kQueued, kRunning, kDone };

  // The join word. A Fiber handle is move-only, so a task has at most one joiner at a time:
  // a word replaces a lock and a waiter list (Go's and marl's joins are a lock and a condvar).
  //   0              running (or queued), nobody waiting
  //   Waiter*        a joiner is parked on it (wait_done's CAS 0 -> &w, made by park()'s
  //                  unlocker, after the Waiter is visible to wakers)
  //   kJoinFinishing finish_task() took the word (exchange: release publishes the result and
  //                  error; acquire sees the joiner's Waiter) and may still be touching the
  //                  Waiter it found there
  //   kJoinDone      finish_task() is done with the Waiter (a plain release store)
  // Bit 0 set means done (done()'s acquire load). A joiner that stops waiting (timeout,
  // cancel) takes its Waiter back with a CAS &w -> 0; if finish_task() took it first, the
  // joiner waits until the word leaves kJoinFinishing before its Waiter goes out of scope.
  static constexpr std::uintptr_t kJoinDone = 1;
  static constexpr std::uintptr_t kJoinFinishing = 3;

  Task* next = nullptr;
  Waiter* waiter = nullptr;
  std::atomic<void*> home{nullptr};  // the Worker running it: set at start, and by a thief
  TimePoint deadline = kNoDeadline;  // innermost green::Deadline scope
  std::exception_ptr error;
  std::atomic<std::uintptr_t> join{0};
  std::atomic<std::uint32_t> state{kQueued};
  std::atomic<bool> cancel_pending{false};     // consumed when delivered
  std::atomic<bool> cancel_requested{false};   // sticky
  std::atomic<bool> interrupt_pending{false};  // interrupt_task(): consumed by park/the worker
  std::atomic<bool> interrupt_queued{false};   // on home's interrupt list
  Task* interrupt_next = nullptr;              // link in that list
  bool deadline_fired = false;
  // Kernel tid of the OS thread the task runs on while handed off (detached from its worker:
  // machine.cpp sets it in handoff_signal, clears it in reattach); 0 otherwise. Relaxed: a hint
  // for running_os_thread (signal forwards), read from any thread or signal context.
  std::atomic<int> detached_on{0};
  FpControl fp;  // the creator's floating-point control state (switch.hpp); immutable

  static TaskState& of(Task* t) noexcept {
    return *std::launder(reinterpret_cast<TaskState*>(t->rt_));
  }
  static const TaskState& of(const Task* t) noexcept {
    return *std::launder(reinterpret_cast<const TaskState*>(t->rt_));
  }
  static void construct(Task* t) noexcept { new (t->rt_) TaskState(); }
  static void destroy(Task* t) noexcept { of(t).~TaskState(); }
};

static_assert(sizeof(TaskState) <= Task::kStateSize, "Task::kStateSize too small");
static_assert(alignof(TaskState) <= Task::kStateAlign, "Task::kStateAlign too small");

// Called by the runtime on the task's fiber after run() (or in its place when the task could
// not start): publishes kDone and wakes the joiner.
void finish_task(Task* t) noexcept;

inline TaskState& task_state(Task* t) noexcept {
  return TaskState::of(t);
}
inline const TaskState& task_state(const Task* t) noexcept {
  return TaskState::of(t);
}

}  // namespace green::detail
