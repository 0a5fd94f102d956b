// Task: the control block of one spawned function (Go's "G" without the stack).
//
// A Task is created by spawn(), queued until a worker starts it, then bound to a Context
// (a pooled stack + machine context) of that worker for the rest of its life: once started it
// never moves to another worker. The Fiber<T> handle and the runtime each hold a reference.
//
// This header is installed (spawn() and Fiber<T> are templates) and shows only what they
// need: the reference count, the id, join/cancel, and the spawn parameters below. The
// runtime's per-task state (run-queue link, lifecycle state, current wait, cancellation,
// scoped deadline, error, join word) is private to libgreen: runtime/src/task_state.hpp,
// kept in the reserved storage rt_.
//
// Field ownership:
//   name_, stack_size_ : set by the creator before submit(); name_ may later be set by the
//                        task itself (this_fiber::set_name): read it from the task
//   shim_data_         : the shim's per-fiber-thread state; the task's own thread only
//   tp_                : set by the shim before submit(), read by the runtime when it starts
//   id_                : immutable; unique, but not in spawn order across workers (each
//                        worker hands out ids from a block of its own)
//   refs_              : atomic reference count (the handle's and the runtime's)
//
// Allocation: Task's operator new/delete keep freed blocks in the calling worker's free
// lists for the next spawn (runtime/src/task_cache.hpp); off a worker they are ::operator
// new/delete.
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <new>
#include <optional>
#include <string>
#include <type_traits>
#include <utility>

#include "green/detail/wait.hpp"
#include "green/export.hpp"

namespace green::detail {

struct TaskState;

class GREEN_API Task {
 public:
  explicit Task(std::uint32_t refs = 1);
  virtual ~Task();
  Task(const Task&) = delete;
  Task& operator=(const Task&) = delete;

  // Runs the function and records its result or exception. Called once, on the task's fiber.
  virtual void run() noexcept = 0;

  // Every Task (TaskImpl<...>, the shim's) is allocated through these: see the note above.
  // The sized delete gets the most derived type's size (the destructor is virtual).
  static void* operator new(std::size_t n);
  static void operator delete(void* p, std::size_t n) noexcept;
  // Over-aligned function objects: plain aligned ::operator new/delete, never cached.
  static void* operator new(std::size_t n, std::align_val_t a) { return ::operator new(n, a); }
  static void operator delete(void* p, std::size_t, std::align_val_t a) noexcept {
    ::operator delete(p, a);  // unsized: clang < 16 declares no sized form by default
  }

  void ref() noexcept { refs_.fetch_add(1, std::memory_order_relaxed); }
  void unref() noexcept {
    // The last holder (count 1: nobody else can take a reference, ref() needs one) deletes
    // without an atomic RMW: its acquire load sees the other holders' release decrements,
    // as the fetch_sub's would. Saves ~20 cycles per spawn+join (the handle is usually last).
    // acq_rel: the last unref sees every write of the other holders before it deletes.
    if (refs_.load(std::memory_order_acquire) == 1 ||
        refs_.fetch_sub(1, std::memory_order_acq_rel) == 1)
      delete this;
  }

  std::uint64_t id() const noexcept { return id_; }
  // True once the task has finished (acquire: its result and error are visible).
  bool done() const noexcept;

  // Blocks until the task is done (or the deadline / cancellation of the *caller*).
  WakeReason wait_done(TimePoint deadline) noexcept;
  // Requests cancellation: the task's current or next blocking call ends with Cancelled.
  void cancel() noexcept;
  // Rethrows the task's exception, if any.
  void rethrow_if_failed() const;

  // Spawn parameters (set before submit()) and the shim's slot; see the note above.
  std::string name_;
  std::size_t stack_size_ = 0;  // 0: the runtime default
  void* shim_data_ = nullptr;   // per-fiber-thread state owned by the shim (pthread emulation)
  // Thread pointer (FS base) of the task's own thread identity, set before submit by the
  // shim; nullptr: the task shares its worker's (runtime/src/thread_pointer.hpp).
  char* tp_ = nullptr;

  // Size of the runtime's private state (TaskState, checked there).
  static constexpr std::size_t kStateSize = 96;
  static constexpr std::size_t kStateAlign = 16;

 protected:
  void record_exception() noexcept;

 private:
  friend struct TaskState;

  alignas(kStateAlign) unsigned char rt_[kStateSize];  // a TaskState (task.cpp constructs it)
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
