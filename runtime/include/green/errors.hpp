// Exceptions thrown by blocking calls.
//
//  - green::Cancelled: the fiber was cancelled (Fiber::cancel()); its current or next blocking
//    call throws this once. It deliberately does NOT derive from std::exception, so that a
//    generic `catch (const std::exception&)` in user code does not swallow a cancellation
//    (the same choice as gevent's GreenletExit and boost::thread_interrupted).
//  - green::TimedOut: a scoped green::Deadline expired while the fiber was blocked.
//  - green::ChannelClosed: send on a closed channel.
//  - green::StackError: a fiber stack could not be allocated (mmap/mprotect failed); the
//    message names the limit and the fix.
#pragma once

#include <stdexcept>

#include "green/export.hpp"

namespace green {

class GREEN_API Cancelled {
 public:
  const char* what() const noexcept { return "green: fiber cancelled"; }
};

class GREEN_API TimedOut : public std::runtime_error {
 public:
  TimedOut() : std::runtime_error("green: deadline exceeded") {}
};

class GREEN_API ChannelClosed : public std::runtime_error {
 public:
  ChannelClosed() : std::runtime_error("green: send on closed channel") {}
};

class GREEN_API StackError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

}  // namespace green
