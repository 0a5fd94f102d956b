// Thread pointers: per-context FS base, so that a fiber can carry a thread identity of its own
// (the shim's fiber-threads: a glibc TCB + static TLS + DTV, made by shim/thread_tcb.cpp).
//
// On x86-64 Linux the thread pointer (TP, the FS base) *is* the thread for glibc and for
// compiled code: `__thread`/`thread_local`, errno, the C++ exception globals, pthread_self(),
// the stack protector canary are all reached through %fs. A Context therefore records the TP
// its code must run with (`Context::tp_`), and Worker::jump() writes the FS base exactly when
// the running context changes to one with a different TP:
//   * library fibers (green::spawn) and the scheduler context run with the worker's own TP
//     (`tp_` = Worker::sched_.tp_): their switches compare two equal pointers and do nothing
//     else, so the library fiber switch costs one load-compare-branch more than before;
//   * a task with Task::tp_ set (a shim fiber-thread, the shim's main fiber) runs with that TP.
// The write happens in the switch routine, after the outgoing context's last TLS access and
// before the incoming one's first: every stack always runs with its owner's FS, which is what
// makes it safe that compilers cache TLS addresses (glibc's `__errno_location` is `const`).
// It also makes migration safe: `&errno` and every TLS address of a fiber live in its own
// block and travel with it (docs/design.md).
//
// The crux: the runtime's own per-OS-thread state (Worker::tls_current_, g_thread_state, both
// initial-exec TLS of libgreen / libgreen_preload) is read through %fs too, so while a fiber
// with its own TP runs, it reads *that block's* copy. enter_tp() therefore stores the worker's
// values into the incoming block before writing the FS base (explicit TP + offset stores,
// no TLS access): Worker::tls_current_ = the worker, g_thread_state.worker = its index,
// g_thread_state.task = the incoming context's task, and glibc's `pthread::tid` = the worker's
// kernel tid (so glibc calls that hand `pd->tid` to the kernel -- sched_getaffinity inside
// pthread_getattr_np, tgkill -- name a real task of this process: the one running the fiber).
// `g_thread_state.bypass` stays per block: a ShimBypass is per fiber then, as it should be.
// The offsets are TP-relative constants (static TLS), computed once on a worker thread.
//
// Write methods, chosen once by the shim (enable_thread_pointers): kWrfsbase (the kernel
// enables FSGSBASE: AT_HWCAP2 bit 1; ~20 ns) or kArchPrctl (arch_prctl(ARCH_SET_FS), a system
// call, ~230 ns). kOff: never called (no context has a TP other than its worker's).
#pragma once

#include <sys/syscall.h>

#include <cstddef>
#include <cstdint>

namespace green::detail {

enum class TpWrite : std::uint8_t { kOff, kWrfsbase, kArchPrctl };

struct TpConfig {
  TpWrite write = TpWrite::kOff;
  long tid_offset = -1;              // TP-relative offset of glibc's pthread::tid (-1: none)
  // The enabling thread's own descriptor (the process's main thread, on glibc's lists): its
  // tid is never rewritten, so set*id's tgkill for it always reaches the main thread's task.
  char* keep_tid = nullptr;
  void (*release)(void*) = nullptr;  // a finished task's TP no longer runs anywhere
  // TP-relative offsets of the runtime's own TLS (set by the first worker).
  long current_offset = 0;  // Worker::tls_current_
  long state_offset = 0;    // g_thread_state
};
extern TpConfig g_tp;

inline char* read_tp() noexcept {
  char* p;
  asm volatile("mov %%fs:0, %0" : "=r"(p));
  return p;
}

inline void write_tp(void* tp) noexcept {
  if (g_tp.write == TpWrite::kWrfsbase) {
    asm volatile("wrfsbase %0" : : "r"(tp) : "memory");
  } else {
    long ret;
    asm volatile("syscall"
                 : "=a"(ret)
                 : "0"(long(SYS_arch_prctl)), "D"(long(0x1002) /* ARCH_SET_FS */), "S"(tp)
                 : "rcx", "r11", "memory");
    (void)ret;
  }
}

inline long raw_gettid() noexcept {
  long ret;
  asm volatile("syscall" : "=a"(ret) : "0"(long(SYS_gettid)) : "rcx", "r11", "memory");
  return ret;
}

}  // namespace green::detail
