// green::WaitGroup: wait for a collection of fibers to finish (Go's sync.WaitGroup).
//   add(n) before starting work, done() when each piece finishes, wait() blocks until the
//   count is zero. A negative count is a fatal usage error.
#pragma once

#include <chrono>
#include <cstdint>

#include "green/detail/wait.hpp"
#include "green/export.hpp"

namespace green {

class GREEN_API WaitGroup {
 public:
  explicit WaitGroup(std::int64_t initial = 0) : count_(initial) {}
  WaitGroup(const WaitGroup&) = delete;
  WaitGroup& operator=(const WaitGroup&) = delete;

  void add(std::int64_t n = 1);
  void done() { add(-1); }
  void wait();
  template <class Rep, class Period>
  bool wait_for(std::chrono::duration<Rep, Period> d) {
    return wait_until(detail::deadline_after(d));
  }
  bool wait_until(std::chrono::steady_clock::time_point t);  // false on timeout
  // Waits ignoring cancellation and deadlines (for cleanup paths such as destructors).
  void wait_uninterruptible() noexcept;
  std::int64_t count() const noexcept;

 private:
  mutable detail::SpinLock lock_;
  std::int64_t count_ GREEN_GUARDED_BY(lock_);
  detail::WaitList waiters_ GREEN_GUARDED_BY(lock_);
};

}  // namespace green
