// Task: the control block of one spawned function (Go's "G" without the stack).
//
// A Task is created by spawn(), queued until a worker starts it, then bound to a Context
// (a pooled stack + machine context) of that worker for the rest of its life: once started it
// never moves to another worker. The Fiber<T> handle and the runtime each hold a reference.
//
// Field ownership:
//   id_, name_ (set before start), stack_size_  : immutable after spawn (name_ may be set by
//                                                  the task itself; read it from the task)
//   state_                                       : atomic; kQueued -> kRunning -> kDone
//   waiter_                                      : the task's own worker thread only
//   cancel_pending_, home_                       : atomic; see Task::cancel() in task.cpp
//   deadline_                                    : touched only by the task itself
//   joiner_, join_lock_                          : the join handshake
//   error_, result (in TaskImpl)                 : written by the task before kDone
//                                                  (release), read by the joiner after
#pragma once

#include <atomic>
#include <cstdint>
#include <exception>
#include <functional>
#include <optional>
#include <string>
#include <type_traits>
#include <utility>

#include "green/detail/wait.hpp"
#include "green/export.hpp"

namespace green::detail {

class GREEN_API Task {
 public:
  enum State : std::uint32_t { kQueued, kRunning, kDone };

  explicit Task(std::uint32_t refs = 1);
  virtual ~Task();
  Task(const Task&) = delete;
  Task& operator=(const Task&) = delete;

  // Runs the function and records its result or exception. Called once, on the task's fiber.
  virtual void run() noexcept = 0;

  void ref() noexcept { refs_.fetch_add(1, std::memory_order_relaxed); }
  void unref() noexcept {
    if (refs_.fetch_sub(1, std::memory_order_acq_rel) == 1) delete this;
  }

  std::uint64_t id() const noexcept { return id_; }
  bool done() const noexcept { return state_.load(std::memory_order_acquire) == kDone; }

  // Blocks until the task is done (or the deadline / cancellation of the *caller*).
  WakeReason wait_done(TimePoint deadline) noexcept;
  // Requests cancellation: the task's current or next blocking call ends with Cancelled.
  void cancel() noexcept;
  // Rethrows the task's exception, if any.
  void rethrow_if_failed() const {
    if (error_) std::rethrow_exception(error_);
  }

  // --- internal (runtime) interface -------------------------------------------------------
  std::string name_;
  std::size_t stack_size_ = 0;  // 0: the runtime default
  Task* next_ = nullptr;        // link in run queues while kQueued
  Context* context_ = nullptr;  // set when started
  void* shim_data_ = nullptr;   // per-fiber-thread state owned by the shim (pthread emulation)
  // Thread pointer (FS base) of the task's own thread identity, set before submit by the
  // shim; nullptr: the task shares its worker's (runtime/src/thread_pointer.hpp).
  char* tp_ = nullptr;
  std::atomic<std::uint32_t> state_{kQueued};
  Waiter* waiter_ = nullptr;                 // wait in progress (home thread only)
  std::atomic<void*> home_{nullptr};         // the Worker running it, set at start
  std::atomic<bool> cancel_pending_{false};  // consumed when delivered
  std::atomic<bool> cancel_requested_{false};  // sticky
  TimePoint deadline_ = kNoDeadline;         // innermost green::Deadline scope
  bool deadline_fired_ = false;
  std::exception_ptr error_;
  SpinLock join_lock_;
  WaitList joiners_;

  // Called by the runtime on the task's fiber after run(): publishes kDone, wakes joiners.
  void finish() noexcept;

 protected:
  void record_exception() noexcept;

 private:
  std::atomic<std::uint32_t> refs_;
  std::uint64_t id_;
};

template <class T>
class ResultTask : public Task {
 public:
  explicit ResultTask(std::uint32_t refs) : Task(refs) {}
  T take() {
    rethrow_if_failed();
    if constexpr (!std::is_void_v<T>) return std::move(*result_);
  }

 protected:
  std::conditional_t<std::is_void_v<T>, bool, std::optional<T>> result_{};
};

template <class T, class Fn>
class TaskImpl final : public ResultTask<T> {
 public:
  // refs: the references handed out at creation (the runtime's, plus the handle's).
  explicit TaskImpl(Fn&& fn, std::uint32_t refs = 2) : ResultTask<T>(refs), fn_(std::move(fn)) {}
  void run() noexcept override {
    try {
      if constexpr (std::is_void_v<T>) {
        std::invoke(*fn_);
      } else {
        this->result_.emplace(std::invoke(*fn_));
      }
    } catch (...) {
      this->record_exception();
    }
    fn_.reset();  // captured state dies with the fiber, not with the last handle
  }

 private:
  std::optional<Fn> fn_;
};

// Queues a new task on the current worker (or the global queue from a non-worker thread).
// Takes over the caller's reference. Throws std::logic_error if no runtime is running.
GREEN_API void submit(Task* t);

// The task running on this thread, or nullptr off a fiber.
GREEN_API Task* current_task() noexcept;

}  // namespace green::detail
