// green::offload(f): run blocking or CPU-heavy work on libuv's thread pool while the calling
// fiber parks; returns f's result or rethrows its exception. Other fibers on the worker keep
// running meanwhile. Off a fiber, f runs inline on the calling thread.
//
// Cancellation/Deadline: if the work has not started yet it is withdrawn and the call throws
// at once; work that already runs cannot be stopped, so the call waits for it and then throws
// (its result is discarded). The pool is libuv's (UV_THREADPOOL_SIZE, default 4 threads;
// green raises the default to the worker count when it is larger).
#pragma once

#include <exception>
#include <optional>
#include <type_traits>
#include <utility>

#include "green/detail/wait.hpp"
#include "green/export.hpp"

namespace green {

namespace detail {
// Runs fn(arg) on the thread pool and parks until it finished. Returns kNotified when fn ran,
// kCancelled/kDeadline when it was withdrawn or interrupted.
GREEN_API WakeReason offload_raw(void (*fn)(void*), void* arg) noexcept;
}  // namespace detail

template <class F>
auto offload(F&& f) -> std::invoke_result_t<F&> {
  using T = std::invoke_result_t<F&>;
  struct Job {
    std::remove_reference_t<F>* f;
    std::conditional_t<std::is_void_v<T>, bool, std::optional<T>> result{};
    std::exception_ptr error;
  } job{&f, {}, nullptr};
  auto r = detail::offload_raw(
      [](void* p) {
        auto* j = static_cast<Job*>(p);
        try {
          if constexpr (std::is_void_v<T>) {
            (*j->f)();
          } else {
            j->result.emplace((*j->f)());
          }
        } catch (...) {
          j->error = std::current_exception();
        }
      },
      &job);
  detail::throw_if_interrupted(r);
  if (job.error) std::rethrow_exception(job.error);
  if constexpr (!std::is_void_v<T>) return std::move(*job.result);
}

}  // namespace green
