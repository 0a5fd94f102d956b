// Internal interface between the runtime and the shim (libgreen_preload / green::hooks).
// Not part of the public API; installed only because the shim may be built separately.
//
// Every interposed libc function asks hooks_active() first: it is true only on a green fiber
// outside runtime-internal code. Runtime code that calls libc on a fiber (net, libuv calls such
// as uv_poll_init's ioctl(FIONBIO) or uv_async_send's write) holds a ShimBypass so the shim
// passes those calls straight through to libc. The scheduler context (uv_run on the worker's
// own stack) has no current task, so everything libuv does there passes through too.
// This and the other cross-cutting rules (no libc sched_yield or locks, errno, lock order,
// the Dekker pairs) are collected in docs/hacking.md.
#pragma once

#include <atomic>
#include <cstddef>

#include "green/export.hpp"

namespace green::detail {

class Task;

struct ThreadState {
  Task* task = nullptr;  // task running on this OS thread; nullptr in scheduler context
  int bypass = 0;        // > 0 while runtime-internal code runs on a fiber
  int worker = -1;       // worker index, -1 for threads green did not create
};

GREEN_API ThreadState& thread_state() noexcept;

// Per-task thread pointers (runtime/src/thread_pointer.hpp), for the shim's fiber-threads.
// enable_thread_pointers: call once before the runtime starts, on the thread that will call
// it. write: 1 = wrfsbase, 2 = arch_prctl(ARCH_SET_FS); tid_offset: TP-relative offset of
// glibc's pthread::tid (the worker's tid is stored there at each switch-in), -1: none;
// release(tp): a finished task's Task::tp_ no longer runs anywhere (called on a worker).
GREEN_API bool enable_thread_pointers(int write, long tid_offset, void (*release)(void*)) noexcept;
// The next runtime's worker 0 runs its scheduler context with `tp` (a fresh identity), so
// that the calling thread's own identity can go to the main task (Task::tp_). `entered` runs
// on that identity first (it sets up what only code running on it can: locale, errno).
GREEN_API void set_scheduler0_tp(void* tp, void (*entered)()) noexcept;
// The thread pointer of the OS thread's own glibc descriptor (the one on glibc's thread lists)
// for the thread whose current TLS block is `block`: that worker's own one while it runs a
// fiber with an identity; nullptr if `block` belongs to no worker. Async-signal-safe.
GREEN_API void* own_thread_pointer(void* block) noexcept;
// glibc's `tid` of the calling thread's descriptor (what glibc records as a lock's owner): the
// kernel tid of the worker running a fiber-thread *now* -- it changes when the fiber-thread
// migrates, so the shim rewrites the owner of a lock the fiber holds before glibc compares it.
GREEN_API int descriptor_tid() noexcept;
// The running fiber's stack: lowest usable address, usable size, size of the guard area just
// below it (0: unguarded); all zero off a fiber.
GREEN_API void current_fiber_stack(void** lo, std::size_t* size, std::size_t* guard) noexcept;

// Ends the task's current interruptible wait with WakeReason::kInterrupted, or its next one if
// it is not parked in one now (the shim delivers signals to fiber-threads this way).
// Async-signal-safe and callable from any thread: it only sets atomics, pushes the task on its
// home worker's lock-free interrupt list and wakes that worker's loop (uv_async_send). The
// caller must keep `t` alive for the duration of the call.
GREEN_API void interrupt_task(Task* t) noexcept;

// The runtime's own fds (libuv's loop: epoll set, signal pipes, async eventfd; each poller's
// epoll set; the monitor's pipe) are kept out of the numbers a program allocates
// (docs/design.md, "fds"): place_internal_fd moves a just-created internal fd to the runtime's
// range (F_DUPFD_CLOEXEC, the old number closed) and returns its number there, or `fd` when it
// is there already or no range was reserved. The shim calls it for fds libuv creates through
// its hooks while a ShimBypass is held. errno is kept.
GREEN_API int place_internal_fd(int fd) noexcept;
// For an fd the runtime holds only for one wait (the shim's private epoll set of a poll() on
// several fds): moved to the top 256 numbers below the soft limit, without changing limits (two
// system calls, no lock), so that it does not take the lowest free number meanwhile; with a
// soft limit below 1024, where place_internal_fd puts it.
GREEN_API int place_transient_fd(int fd) noexcept;
// Slice expiry (runtime/src/monitor.cpp): the number of workers the monitor has asked to
// yield their running fiber. The shim's hooks call maybe_slice_yield() on a fiber: one
// relaxed load when nobody was asked; slice_yield() yields the calling fiber (through its
// worker's loop) if its worker was asked and is still running the fiber it was asked about.
GREEN_API extern std::atomic<unsigned> g_yield_requests;
GREEN_API void slice_yield() noexcept;
inline void maybe_slice_yield() noexcept {
  if (__builtin_expect(g_yield_requests.load(std::memory_order_relaxed) != 0, 0)) slice_yield();
}

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
