// Spin-wait helpers for the runtime's own short waits (SpinLock, Mutex's queue bit, the
// join word, an abandoned timer, the shutdown barrier).
//
// os_yield() gives up the OS thread's time slice with the raw system call, never through
// libc's sched_yield(): in the LD_PRELOAD build the shim interposes sched_yield() and turns it
// into a *fiber* yield, and a runtime spin loop that yielded its fiber would do so in the
// middle of park() (the fiber already published as parked, so a wake-up queues it a second
// time) or while holding a spin lock other fibers of the same worker then spin on.
// (docs/hacking.md, section 1, lists this with the other rules for code on a fiber.)
#pragma once

#include <sys/syscall.h>
#include <unistd.h>

#include "green/detail/raw_syscall.hpp"

namespace green::detail {

inline void cpu_relax() noexcept {
  __builtin_ia32_pause();
}

// The raw call: libc's syscall() is the shim's hook inside libgreen_preload (raw_syscall.hpp).
inline void os_yield() noexcept {
  raw_syscall_ret(SYS_sched_yield);
}

// One step of a spin-wait on another OS thread: pause for the first 64 steps, then give up the
// time slice (the other thread may have been preempted). `spins` counts the steps so far.
inline void spin_backoff(int spins) noexcept {
  if (spins < 64) {
    cpu_relax();
  } else {
    os_yield();
  }
}

}  // namespace green::detail
