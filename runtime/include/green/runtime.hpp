// Starting and stopping the runtime.
//
//   int main() {
//     return green::run([] { ... fibers ... return 0; });
//   }
//
// run() starts Options::workers worker threads (the calling thread becomes worker 0), runs
// `main` on a fiber, and returns its result (or rethrows its exception) once it finishes.
// Fibers still running when `main` returns are abandoned, as goroutines are when Go's main
// returns: they are not resumed again and their stacks are released. One runtime may run at
// a time in a process; run() may be called again after it returned.
#pragma once

#include <cstddef>
#include <optional>
#include <type_traits>
#include <utility>

#include "green/detail/task.hpp"
#include "green/export.hpp"
#include "green/options.hpp"

namespace green {

namespace detail {
// Runs `main` (already carrying one reference for the runtime) to completion on a fresh
// runtime. Throws std::invalid_argument for bad options, std::logic_error if a runtime is
// already running.
GREEN_API void run_main(Task* main, const Options& opts);
}  // namespace detail

template <class F>
auto run(F&& main, Options opts = {}) -> std::invoke_result_t<F&> {
  using T = std::invoke_result_t<F&>;
  auto fn = [f = std::forward<F>(main)]() mutable -> T { return f(); };
  auto* t = new detail::TaskImpl<T, decltype(fn)>(std::move(fn));
  t->name_ = "main";
  struct Drop {
    detail::Task* t;
    ~Drop() { t->unref(); }
  } drop{t};
  detail::run_main(t, opts);
  return t->take();
}

// True while a runtime is running in this process.
GREEN_API bool running() noexcept;
// Number of workers of the running runtime (0 if none).
GREEN_API std::size_t worker_count() noexcept;
// Index of the worker running the calling thread, or -1 if it is not a worker.
GREEN_API int current_worker() noexcept;

}  // namespace green
