// green::Semaphore: counting semaphore; acquire() parks the fiber while the count is zero.
// release() hands permits straight to waiting fibers in FIFO order.
#pragma once

#include <chrono>
#include <cstddef>

#include "green/detail/wait.hpp"
#include "green/export.hpp"

namespace green {

class GREEN_API Semaphore {
 public:
  explicit Semaphore(std::size_t initial = 0) : count_(initial) {}
  Semaphore(const Semaphore&) = delete;
  Semaphore& operator=(const Semaphore&) = delete;

  void acquire();
  bool try_acquire() noexcept;
  template <class Rep, class Period>
  bool try_acquire_for(std::chrono::duration<Rep, Period> d) {
    return acquire_until(detail::deadline_after(d));
  }
  bool acquire_until(std::chrono::steady_clock::time_point t);
  void release(std::size_t n = 1) noexcept;
  std::size_t available() const noexcept;

 private:
  mutable detail::SpinLock lock_;
  std::size_t count_ GREEN_GUARDED_BY(lock_);
  detail::WaitList waiters_ GREEN_GUARDED_BY(lock_);
};

}  // namespace green
