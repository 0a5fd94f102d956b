// green::this_fiber: operations on the calling fiber. Off a fiber they fall back to the
// equivalent OS-thread operation, so code shared with plain threads keeps working.
#include <thread>

#include "green/detail/hooks.hpp"
#include "green/fiber.hpp"
#include "task_state.hpp"
#include "tls.hpp"
#include "worker.hpp"

namespace green::this_fiber {

using detail::tls;

void yield() {
  detail::Worker* w = detail::Worker::current();
  if (w && tls().task) {
    w->yield_current();
  } else {
    std::this_thread::yield();
  }
}

void sleep_until(std::chrono::steady_clock::time_point t) {
  if (!tls().task) {
    std::this_thread::sleep_until(t);
    return;
  }
  for (;;) {
    detail::Waiter w(detail::WaitKind::kSleep, nullptr);
    detail::WakeReason r = detail::park(w, t, {});
    if (r == detail::WakeReason::kTimeout) return;
    detail::throw_if_interrupted(r);
  }
}

std::uint64_t id() noexcept {
  detail::Task* t = tls().task;
  return t ? t->id() : 0;
}

bool on_fiber() noexcept { return tls().task != nullptr; }

void set_name(std::string name) {
  if (detail::Task* t = tls().task) t->name_ = std::move(name);
}

std::string name() {
  detail::Task* t = tls().task;
  return t ? t->name_ : std::string();
}

bool cancel_requested() noexcept {
  detail::Task* t = tls().task;
  return t && detail::task_state(t).cancel_requested.load(std::memory_order_relaxed);
}

}  // namespace green::this_fiber
