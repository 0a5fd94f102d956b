// Scoped deadlines (gevent's Timeout): every blocking call made by this fiber while a
// Deadline is alive throws green::TimedOut once the deadline has passed. Scopes nest; the
// earliest deadline wins. A Deadline must be created and destroyed on the same fiber, in
// LIFO order (it is a stack object). Off a fiber it has no effect.
//
//   {
//     green::Deadline d(500ms);
//     auto line = conn.read(buf, n);   // throws green::TimedOut after 500 ms
//   }
#pragma once

#include <chrono>

#include "green/detail/wait.hpp"
#include "green/export.hpp"

namespace green {

class GREEN_API Deadline {
 public:
  explicit Deadline(std::chrono::steady_clock::time_point at);
  template <class Rep, class Period>
  explicit Deadline(std::chrono::duration<Rep, Period> d) : Deadline(detail::deadline_after(d)) {}
  ~Deadline();
  Deadline(const Deadline&) = delete;
  Deadline& operator=(const Deadline&) = delete;

  // True if this scope's deadline has passed.
  bool expired() const;

 private:
  detail::TimePoint at_;
  detail::TimePoint saved_;
  bool saved_fired_ = false;
  void* task_;
};

}  // namespace green
