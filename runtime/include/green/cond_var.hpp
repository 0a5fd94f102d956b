// green::CondVar: condition variable for green::Mutex (or any BasicLockable), parking the
// fiber. wait() honours cancellation and green::Deadline; on Cancelled/TimedOut the lock is
// re-acquired before the exception propagates, as std::condition_variable requires.
#pragma once

#include <chrono>
#include <condition_variable>
#include <mutex>

#include "green/detail/wait.hpp"
#include "green/export.hpp"
#include "green/mutex.hpp"

namespace green {

class GREEN_API CondVar {
 public:
  CondVar() = default;
  CondVar(const CondVar&) = delete;
  CondVar& operator=(const CondVar&) = delete;

  void wait(std::unique_lock<Mutex>& lk) { wait_until_impl(lk, detail::kNoDeadline); }
  template <class Pred>
  void wait(std::unique_lock<Mutex>& lk, Pred pred) {
    while (!pred()) wait(lk);
  }
  std::cv_status wait_until(std::unique_lock<Mutex>& lk, std::chrono::steady_clock::time_point t) {
    return wait_until_impl(lk, t) ? std::cv_status::no_timeout : std::cv_status::timeout;
  }
  template <class Rep, class Period>
  std::cv_status wait_for(std::unique_lock<Mutex>& lk, std::chrono::duration<Rep, Period> d) {
    return wait_until(lk, detail::deadline_after(d));
  }
  template <class Rep, class Period, class Pred>
  bool wait_for(std::unique_lock<Mutex>& lk, std::chrono::duration<Rep, Period> d, Pred pred) {
    auto t = detail::deadline_after(d);
    while (!pred()) {
      if (wait_until(lk, t) == std::cv_status::timeout) return pred();
    }
    return true;
  }

  void notify_one() noexcept;
  void notify_all() noexcept;

 private:
  // Returns false on timeout.
  bool wait_until_impl(std::unique_lock<Mutex>& lk, detail::TimePoint t);
  detail::SpinLock lock_;
  detail::WaitList waiters_ GREEN_GUARDED_BY(lock_);
};

}  // namespace green
