// green::Event: a manual-reset event (gevent.event.Event). wait() parks until set().
#pragma once

#include <chrono>

#include "green/detail/wait.hpp"
#include "green/export.hpp"

namespace green {

class GREEN_API Event {
 public:
  Event() = default;
  Event(const Event&) = delete;
  Event& operator=(const Event&) = delete;

  void set() noexcept;    // wakes every waiter; later waits return at once
  void clear() noexcept;  // later waits block again
  bool is_set() const noexcept;
  void wait();
  template <class Rep, class Period>
  bool wait_for(std::chrono::duration<Rep, Period> d) {
    return wait_until(detail::deadline_after(d));
  }
  bool wait_until(std::chrono::steady_clock::time_point t);  // false on timeout

 private:
  mutable detail::SpinLock lock_;
  bool set_ GREEN_GUARDED_BY(lock_) = false;
  detail::WaitList waiters_ GREEN_GUARDED_BY(lock_);
};

}  // namespace green
