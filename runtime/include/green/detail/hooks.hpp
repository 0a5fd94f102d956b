// Internal interface between the runtime and the shim (libgreen_preload / green::hooks).
// Not part of the public API; installed only because the shim may be built separately.
//
// Every interposed libc function asks hooks_active() first: it is true only on a green fiber
// outside runtime-internal code. Runtime code that calls libc on a fiber (net, libuv calls such
// as uv_poll_init's ioctl(FIONBIO) or uv_async_send's write) holds a ShimBypass so the shim
// passes those calls straight through to libc. The scheduler context (uv_run on the worker's
// own stack) has no current task, so everything libuv does there passes through too.
#pragma once

#include "green/export.hpp"

namespace green::detail {

class Task;

struct ThreadState {
  Task* task = nullptr;  // task running on this OS thread; nullptr in scheduler context
  int bypass = 0;        // > 0 while runtime-internal code runs on a fiber
  int worker = -1;       // worker index, -1 for threads green did not create
};

GREEN_API ThreadState& thread_state() noexcept;

inline bool hooks_active() noexcept {
  ThreadState& s = thread_state();
  return s.task != nullptr && s.bypass == 0;
}

struct ShimBypass {
  ThreadState& s;
  ShimBypass() noexcept : s(thread_state()) { ++s.bypass; }
  ~ShimBypass() { --s.bypass; }
  ShimBypass(const ShimBypass&) = delete;
  ShimBypass& operator=(const ShimBypass&) = delete;
};

}  // namespace green::detail
