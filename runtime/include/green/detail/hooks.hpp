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
  // The glibc descriptor of the OS thread this code runs on (own_thread_pointer), when the
  // block is not that descriptor's own: stored with the worker state at every identity
  // switch (enter_tp) and when a worker binds to a thread. A detached fiber keeps the value of
  // the thread it runs on. nullptr: this block is its OS thread's own (or no worker).
  char* own_tp = nullptr;
  // Hand-off (runtime/src/machine.hpp). Both live in the TLS block of the code that runs, so
  // for a fiber-thread they are its own. They are touched only by the thread running that
  // code and by a signal handler interrupting it on the same thread (relaxed atomics and
  // signal fences: no other thread ever reads them).
  //   depth     > 0 while runtime code runs (every hook, the start and end of a thread, the
  //             scheduler): the hand-off handler never takes a worker away from runtime code.
  //             Fresh blocks start at 1; only RuntimeExit (the program's own code) sets 0.
  //   detached  the Machine whose worker was handed off while this fiber ran the program's
  //             code; the next RuntimeEntry sees it and reattaches (reattach()).
  std::atomic<int> depth{1};
  std::atomic<void*> detached{nullptr};
};

GREEN_API ThreadState& thread_state() noexcept;
// The same, inline where the caller is compiled into the library that owns the variable
// (libgreen, and the preload library, which contains the runtime): one %fs-relative address,
// no call. The hooks' prologue uses it (RuntimeEntry, the shim's mode()).
#if defined(GREEN_BUILDING_LIBRARY)
extern __attribute__((tls_model("initial-exec"))) constinit thread_local ThreadState g_thread_state;
inline ThreadState& this_thread_state() noexcept {
  return g_thread_state;
}
#else
inline ThreadState& this_thread_state() noexcept {
  return thread_state();
}
#endif

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
// The kernel tid of the OS thread running task `t` right now -- on a worker, or handed off with
// the OS thread it was detached on -- or 0 (queued or parked). A hint that may be stale by the
// time it returns (a signal forwarded there finds another fiber, which ignores it). Only
// atomic loads: async-signal-safe, any thread. The caller keeps `t` alive for the call (it
// reads the task's state).
GREEN_API long running_os_thread(Task* t) noexcept;

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

// Hand-off: a fiber-thread whose worker was handed to another OS thread while it ran the
// program's code continues on the OS thread it is on, without a worker; reattach() (called by
// RuntimeEntry/RuntimeExit when ThreadState::detached is set) queues it on a worker again and
// returns once a worker runs it. Only for fibers with their own thread identity.
GREEN_API void reattach() noexcept;

// Brackets runtime code entered from the program's code: every shim hook (the generated
// GREEN_HOOK head). One relaxed load and store each way, plus the detached test.
class RuntimeEntry {
 public:
  RuntimeEntry() noexcept : s_(this_thread_state()) {
    s_.depth.store(s_.depth.load(std::memory_order_relaxed) + 1, std::memory_order_relaxed);
    // Signal fence: the hand-off handler (same thread) sees depth > 0 from here on, or it
    // has already set `detached`, which the load below then sees.
    std::atomic_signal_fence(std::memory_order_seq_cst);
    if (__builtin_expect(s_.detached.load(std::memory_order_relaxed) != nullptr, 0)) reattach();
  }
  ~RuntimeEntry() {
    std::atomic_signal_fence(std::memory_order_seq_cst);  // runtime work done before depth drops
    s_.depth.store(s_.depth.load(std::memory_order_relaxed) - 1, std::memory_order_relaxed);
  }
  RuntimeEntry(const RuntimeEntry&) = delete;
  RuntimeEntry& operator=(const RuntimeEntry&) = delete;

 private:
  ThreadState& s_;
};

// The opposite bracket, around the program's own code called from runtime code (a thread's
// start routine, main) and around system calls the shim passes through unchanged (syscall()
// of a number it does not know): while it lasts, the worker may be handed off. On the way
// out the runtime depth comes back, and a fiber whose worker went away reattaches first.
class RuntimeExit {
 public:
  RuntimeExit() noexcept
      : s_(this_thread_state()), saved_(s_.depth.load(std::memory_order_relaxed)) {
    std::atomic_signal_fence(std::memory_order_seq_cst);  // runtime work done before depth drops
    s_.depth.store(0, std::memory_order_relaxed);
  }
  ~RuntimeExit() {
    s_.depth.store(saved_, std::memory_order_relaxed);
    std::atomic_signal_fence(std::memory_order_seq_cst);  // as in RuntimeEntry
    if (__builtin_expect(s_.detached.load(std::memory_order_relaxed) != nullptr, 0)) reattach();
  }
  RuntimeExit(const RuntimeExit&) = delete;
  RuntimeExit& operator=(const RuntimeExit&) = delete;

 private:
  ThreadState& s_;
  int saved_;
};

// The shim's SIGURG handler asks this first (async-signal-safe): true if the signal was the
// monitor's hand-off request to this OS thread (then it must not reach the program).
GREEN_API bool handoff_signal(int code, int pid) noexcept;
// The shim turns hand-off on (before the runtime starts) when fiber-threads have thread
// identities of their own; `signo` is the request signal (SIGURG), whose kernel handler the
// shim installs and which calls handoff_signal.
GREEN_API void enable_handoff(int signo) noexcept;
// The shim's way out when green::run cannot return: at stop, the thread that called it runs a
// detached fiber that never enters the runtime again. `fn` (which must not return: it exits
// the process with main's status) is then called on the last machine to leave.
GREEN_API void set_initial_stuck_exit(void (*fn)()) noexcept;

struct ShimBypass {
  ThreadState& s;
  ShimBypass() noexcept : s(thread_state()) { ++s.bypass; }
  ~ShimBypass() { --s.bypass; }
  ShimBypass(const ShimBypass&) = delete;
  ShimBypass& operator=(const ShimBypass&) = delete;
};

}  // namespace green::detail
