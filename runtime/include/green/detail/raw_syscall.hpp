// raw_syscall: the `syscall` instruction itself, for the library's own system calls.
//
// Why not libc's syscall(): the shim interposes syscall() (shim/hook_thread.cpp: gettid,
// tgkill, and futex waits that park fibers), and inside libgreen_preload.so a call to
// `syscall` binds to that exported hook through the PLT. The runtime's and the shim's own
// calls (epoll on the poller's set, recvfrom/sendto of the I/O hooks, sched_yield in spins,
// futexes of OS-thread parking) must never be treated as the program's: a park inside the
// scheduler, a futex wait turned into a fiber park, or just ~40 instructions of hook per call on
// the echo path. docs/hacking.md states the rule.
//
// raw_syscall() has glibc's syscall() contract (-1 and errno for results in [-4095, -1]);
// raw_syscall_ret() returns the kernel's value (-errno on failure) and touches no memory but
// its arguments' targets: async-signal-safe, usable where errno must not change.
// x86-64 Linux only (the project's platform; thread_pointer.hpp is likewise x86-64).
#pragma once

#include <cerrno>

namespace green::detail {

inline long raw_syscall_ret(long n, long a1 = 0, long a2 = 0, long a3 = 0, long a4 = 0, long a5 = 0,
                            long a6 = 0) noexcept {
  long ret;
  register long r10 __asm__("r10") = a4;
  register long r8 __asm__("r8") = a5;
  register long r9 __asm__("r9") = a6;
  __asm__ volatile("syscall"
                   : "=a"(ret)
                   : "0"(n), "D"(a1), "S"(a2), "d"(a3), "r"(r10), "r"(r8), "r"(r9)
                   : "rcx", "r11", "memory");
  return ret;
}

inline long raw_syscall(long n, long a1 = 0, long a2 = 0, long a3 = 0, long a4 = 0, long a5 = 0,
                        long a6 = 0) noexcept {
  long ret = raw_syscall_ret(n, a1, a2, a3, a4, a5, a6);
  if (ret < 0 && ret > -4096) {
    errno = static_cast<int>(-ret);
    return -1;
  }
  return ret;
}

// Pointer arguments without a cast at every call site.
template <class T>
inline long sc_arg(T* p) noexcept {
  return reinterpret_cast<long>(p);
}

}  // namespace green::detail
