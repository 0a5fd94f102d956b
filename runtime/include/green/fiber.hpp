// Spawning fibers and talking to the current one.
//
//   auto f = green::spawn([] { return 42; });
//   int v = f.join();             // 42, or rethrows what the fiber threw
//
// A Fiber<T> handle is move-only. Dropping it without join() detaches the fiber (it keeps
// running; its result is discarded). join() and detach() each end the handle; calling
// join() on an ended handle is a fatal usage error, reported as such.
//
// New fibers are queued on the spawning worker and may be stolen by an idle worker before
// they start; once a fiber has started it stays on that worker's OS thread for the rest of
// its life, so errno and thread_local addresses that the compiler keeps across a blocking
// call stay valid (see docs/design.md, "Placement and stealing").
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <string>
#include <tuple>
#include <type_traits>
#include <utility>

#include "green/detail/task.hpp"
#include "green/export.hpp"

namespace green {

struct SpawnOptions {
  std::string name;            // shown in dumps; empty: unnamed
  std::size_t stack_size = 0;  // 0: Options::stack_size
};

namespace detail {
[[noreturn]] GREEN_API void fatal_usage(const char* what);
}

template <class T>
class Fiber {
 public:
  Fiber() = default;
  explicit Fiber(detail::ResultTask<T>* t) : task_(t) {}
  Fiber(Fiber&& o) noexcept : task_(std::exchange(o.task_, nullptr)) {}
  Fiber& operator=(Fiber&& o) noexcept {
    if (this != &o) {
      reset();
      task_ = std::exchange(o.task_, nullptr);
    }
    return *this;
  }
  ~Fiber() { reset(); }

  // Waits for the fiber to finish; returns its result or rethrows its exception. Honours the
  // caller's cancellation and Deadline (the fiber keeps running if join is interrupted).
  T join() {
    if (!task_) detail::fatal_usage("Fiber::join on an empty handle (joined, detached or moved)");
    detail::WakeReason r = task_->wait_done(detail::kNoDeadline);
    if (r != detail::WakeReason::kNotified) detail::throw_if_interrupted(r);  // no call usually
    auto* t = std::exchange(task_, nullptr);
    struct Drop {
      detail::Task* t;
      ~Drop() { t->unref(); }
    } drop{t};
    return t->take();
  }
  // Waits at most `d`; returns true if the fiber finished (then join() returns at once).
  template <class Rep, class Period>
  bool wait_for(std::chrono::duration<Rep, Period> d) {
    if (!task_) detail::fatal_usage("Fiber::wait_for on an empty handle");
    auto r = task_->wait_done(detail::deadline_after(d));
    detail::throw_if_interrupted(r);
    return r == detail::WakeReason::kNotified;
  }
  void detach() {
    if (!task_) detail::fatal_usage("Fiber::detach on an empty handle");
    reset();
  }
  // Asks the fiber to stop: its current or next blocking call throws green::Cancelled.
  void cancel() {
    if (task_) task_->cancel();
  }
  bool joinable() const noexcept { return task_ != nullptr; }
  bool done() const noexcept { return task_ && task_->done(); }
  std::uint64_t id() const noexcept { return task_ ? task_->id() : 0; }

 private:
  void reset() noexcept {
    if (task_) std::exchange(task_, nullptr)->unref();
  }
  detail::ResultTask<T>* task_ = nullptr;
};

template <class F, class... Args>
auto spawn(SpawnOptions opts, F&& f, Args&&... args) {
  auto bound = [fn = std::forward<F>(f),
                tup = std::make_tuple(std::forward<Args>(args)...)]() mutable -> decltype(auto) {
    return std::apply(std::move(fn), std::move(tup));
  };
  using Bound = decltype(bound);
  using T = std::invoke_result_t<Bound&>;
  auto* t = new detail::TaskImpl<T, Bound>(std::move(bound));
  if (!opts.name.empty()) t->name_ = std::move(opts.name);  // a move of "" is ~20 instructions
  t->stack_size_ = opts.stack_size;  // t carries two references: the handle's, the runtime's
  try {
    detail::submit(t);
  } catch (...) {
    t->unref();
    t->unref();
    throw;
  }
  return Fiber<T>(t);
}

template <class F, class... Args>
  requires(!std::is_same_v<std::decay_t<F>, SpawnOptions>)
auto spawn(F&& f, Args&&... args) {
  return spawn(SpawnOptions{}, std::forward<F>(f), std::forward<Args>(args)...);
}

namespace this_fiber {
// Lets other runnable fibers on this worker run. Off a fiber: std::this_thread::yield().
GREEN_API void yield();
GREEN_API void sleep_until(std::chrono::steady_clock::time_point t);
template <class Rep, class Period>
void sleep_for(std::chrono::duration<Rep, Period> d) {
  sleep_until(detail::deadline_after(d));
}
// The current fiber's id (never 0), or 0 off a fiber.
GREEN_API std::uint64_t id() noexcept;
GREEN_API bool on_fiber() noexcept;
GREEN_API void set_name(std::string name);
GREEN_API std::string name();
// True once cancel() was requested for this fiber (stays true after Cancelled was thrown).
GREEN_API bool cancel_requested() noexcept;
}  // namespace this_fiber

}  // namespace green
