// Hooks: pthread_barrier_wait, pthread_barrier_destroy, waitid, flock, lockf, lockf64, system,
// pclose (rows of the `block` family in symbols.txt); syscall(SYS_futex) (block_futex, called
// by the syscall hook in hook_thread.cpp) and fcntl's F_SETLKW/F_OFD_SETLKW (block_fcntl_lock,
// called from hook_fd.cpp). Calls that used to block the worker OS thread, and with it every other
// fiber-thread on that worker.
//
// Futexes. syscall() is a libc function, so futex waits and wakes that code written by others
// makes through it (libstdc++'s std::atomic<T>::wait, std::counting_semaphore, std::barrier,
// std::latch; Rust's std Mutex/Condvar/park; folly, abseil) reach us. A fiber's FUTEX_WAIT /
// FUTEX_WAIT_BITSET becomes a park in the shim's address-keyed wait table (sync_table.hpp) and
// every FUTEX_WAKE / FUTEX_WAKE_BITSET made through syscall() -- by a fiber or by any OS
// thread of the process -- wakes fiber waiters there first and passes what is left of its
// count to the kernel for OS-thread waiters; it returns the sum. Exactness:
//   * Argument errors, EFAULT and EAGAIN (word != val) come from the kernel itself: the fiber
//     first makes the same call with a timeout that has already passed, which never blocks
//     and answers ETIMEDOUT exactly when the kernel would have gone to sleep. The caller's timeout
//     is checked as the kernel does (EINVAL for tv_nsec outside [0, 1e9) or tv_sec < 0).
//   * FUTEX_WAIT's timeout is relative (CLOCK_MONOTONIC; FUTEX_CLOCK_REALTIME is the kernel's
//     to accept or refuse with ENOSYS, as this kernel does); FUTEX_WAIT_BITSET's is absolute on
//     CLOCK_MONOTONIC or, with FUTEX_CLOCK_REALTIME, CLOCK_REALTIME. ETIMEDOUT when it passes; 0
//     when woken (spurious 0s are allowed by futex(2) and every caller loops); EINTR when the wait
//     is interrupted (green cancellation).
//   * Wakes that do not come through syscall(): another process (a shared futex, i.e. without
//     FUTEX_PRIVATE_FLAG), or a raw `syscall` instruction. Shared futex waits therefore also
//     re-check the word with the table's back-off (1 ms doubling to 16 ms) and return 0 once it
//     differs from val. A private futex woken only by an inline syscall instruction in this
//     process is not seen (docs/shim.md, limits).
//   * FUTEX_REQUEUE, FUTEX_CMP_REQUEUE and FUTEX_WAKE_OP go to the kernel; on success fiber
//     waiters of the futex(es) involved are woken too (a spurious wake-up for those that were
//     to be requeued instead, which futex(2) callers tolerate). Everything else goes to the
//     kernel unchanged, six long arguments forwarded.
//
// Barriers. glibc's pthread_barrier_wait waits in an internal futex call no hook sees, so the
// hook replaces it with glibc 2.36's own algorithm (nptl/pthread_barrier_wait.c, same object
// layout, same memory orders) whose futex waits and wakes go through the futex path above:
// fibers park, OS threads (which call the hook too) sleep in the kernel, and a barrier shared
// with a process that runs glibc's own code interoperates. pthread_barrier_destroy waits for
// leaving threads the same way. pthread_barrier_init is glibc's.
//
// Offloaded calls. waitid, flock, lockf(F_LOCK), fcntl(F_SETLKW/F_OFD_SETLKW), system and
// pclose block in the kernel with nothing to poll, so on a fiber the real call runs on the
// runtime's offload pool (libuv's thread pool) while the fiber parks; errno is copied back.
// The non-blocking forms (WNOHANG, LOCK_NB, F_TLOCK/F_TEST/F_ULOCK) stay inline. A blocking
// call occupies a pool thread for as long as it blocks (UV_THREADPOOL_SIZE, default 4 or the
// worker count): more simultaneous waiters than that queue behind each other (and behind
// getaddrinfo). An offloaded waitid racing a SIGCHLD handler's waitpid is the same race as in
// plain glibc.
#include "block.hpp"

#include <fcntl.h>
#include <linux/futex.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/file.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <climits>
#include <cstdint>

#include "common.hpp"
#include "green/detail/raw_syscall.hpp"
#include "green/detail/task.hpp"
#include "green/offload.hpp"
#include "sync_table.hpp"

using namespace green::shim;

namespace {

// --- the real syscall ------------------------------------------------------------------------

// glibc's syscall() is the hook itself (hook_thread.cpp): the kernel is called directly
// (raw_syscall.hpp: -1 and errno for results in [-4095, -1], as glibc's syscall() does).
using green::detail::raw_syscall;
using green::detail::sc_arg;

long real_futex(std::uint32_t* uaddr, int op, std::uint32_t val, const timespec* to,
                std::uint32_t* uaddr2, std::uint32_t val3) {
  return raw_syscall(SYS_futex, sc_arg(uaddr), op, static_cast<long>(val), sc_arg(to),
                     sc_arg(uaddr2), static_cast<long>(val3));
}

// --- futex ---------------------------------------------------------------------------------

struct FutexCheck {
  const std::uint32_t* uaddr;
  std::uint32_t val;
};
bool futex_changed(void* p) {
  auto* c = static_cast<FutexCheck*>(p);
  return __atomic_load_n(c->uaddr, __ATOMIC_SEQ_CST) != c->val;  // after the waiters count
}

// A fiber's FUTEX_WAIT / FUTEX_WAIT_BITSET (cmd says which). Returns syscall()'s result.
long futex_wait_fiber(std::uint32_t* uaddr, int op, std::uint32_t val, const timespec* to,
                      std::uint32_t bitset) {
  int cmd = op & FUTEX_CMD_MASK;
  bool realtime = (op & FUTEX_CLOCK_REALTIME) != 0;
  if (to && (to->tv_sec < 0 || to->tv_nsec < 0 || to->tv_nsec >= 1000000000L)) {
    errno = EINVAL;
    return -1;
  }
  // The kernel's own answer for everything but the sleep: the same call with a timeout that
  // has already passed (relative 0 for FUTEX_WAIT, absolute 0 for FUTEX_WAIT_BITSET).
  timespec zero{0, 0};
  std::uint32_t probe_bits = cmd == FUTEX_WAIT ? FUTEX_BITSET_MATCH_ANY : bitset;
  {
    ErrnoGuard g;
    long r = real_futex(uaddr, op, val, &zero, nullptr, bitset);
    if (r != -1 || errno != ETIMEDOUT) return r;  // EAGAIN, EINVAL, EFAULT, ENOSYS...
    g.restore();
  }
  TimePoint deadline = kNoDeadline;
  if (to) {
    if (cmd == FUTEX_WAIT)
      deadline = deadline_ns(timespec_ns(*to));
    else
      deadline = deadline_from_abs(realtime ? CLOCK_REALTIME : CLOCK_MONOTONIC, *to);
  }
  // Shared futexes may be woken by another process: poll them.
  bool poll = (op & FUTEX_PRIVATE_FLAG) == 0;
  FutexCheck check{uaddr, val};
  stat_add(&Stats::lock_waits);
  for (;;) {
    sync::WaitResult r = sync::wait_futex(uaddr, deadline, poll, futex_changed, &check, probe_bits);
    switch (r) {
      case sync::WaitResult::kReady:  // the word changed before we were queued
        errno = EAGAIN;
        return -1;
      case sync::WaitResult::kWoken:
        return 0;
      case sync::WaitResult::kPolled:
        if (futex_changed(&check)) return 0;  // a wake we could not see
        continue;
      case sync::WaitResult::kTimedOut:
        errno = ETIMEDOUT;
        return -1;
      default:
        errno = EINTR;
        return -1;
    }
  }
}

// FUTEX_WAKE / FUTEX_WAKE_BITSET from anyone: fiber waiters first, the rest of the count to
// the kernel.
long futex_wake_any(std::uint32_t* uaddr, int op, int n, std::uint32_t bitset) {
  int cmd = op & FUTEX_CMD_MASK;
  std::uint32_t bits = cmd == FUTEX_WAKE ? FUTEX_BITSET_MATCH_ANY : bitset;
  if (cmd == FUTEX_WAKE_BITSET && bitset == 0) {  // the kernel's EINVAL
    return real_futex(uaddr, op, static_cast<std::uint32_t>(n), nullptr, nullptr, bitset);
  }
  int woken = 0;
  if ((reinterpret_cast<std::uintptr_t>(uaddr) & 3) == 0 && n > 0) {
    int saved = errno;
    woken = sync::wake_futex(uaddr, n, bits);
    errno = saved;
  }
  if (woken > 0 && woken >= n) return woken;
  long r = real_futex(uaddr, op, static_cast<std::uint32_t>(n - woken), nullptr, nullptr, bitset);
  if (r < 0) return woken > 0 ? woken : r;
  return r + woken;
}

long futex_any(long a1, long a2, long a3, long a4, long a5, long a6) {
  auto* uaddr = reinterpret_cast<std::uint32_t*>(a1);
  int op = static_cast<int>(a2);
  int cmd = op & FUTEX_CMD_MASK;
  auto val = static_cast<std::uint32_t>(a3);
  auto val3 = static_cast<std::uint32_t>(a6);
  switch (cmd) {
    case FUTEX_WAIT:
    case FUTEX_WAIT_BITSET:
      // Only where the runtime itself would park a fiber: code the runtime runs between two
      // fibers (Worker::context_done creating a context, hitting a contended C++ static's
      // __cxa_guard_acquire) has the fiber's thread state but no task, and must wait in the
      // kernel like any OS thread.
      if (mode() == Mode::kFiber && green::detail::current_task() != nullptr)
        return futex_wait_fiber(uaddr, op, val, reinterpret_cast<const timespec*>(a4), val3);
      break;
    case FUTEX_WAKE:
    case FUTEX_WAKE_BITSET:
      // In every mode, runtime-internal code included (a __cxa_guard_release in the runtime
      // may be what a fiber's static initialization waits for).
      return futex_wake_any(uaddr, op, static_cast<int>(val), val3);
    case FUTEX_REQUEUE:
    case FUTEX_CMP_REQUEUE:
    case FUTEX_WAKE_OP: {
      long r = raw_syscall(SYS_futex, a1, a2, a3, a4, a5, a6);
      if (r >= 0) {
        int saved = errno;
        r += sync::wake_futex(uaddr, INT_MAX, FUTEX_BITSET_MATCH_ANY);
        if (cmd == FUTEX_WAKE_OP)
          r += sync::wake_futex(reinterpret_cast<std::uint32_t*>(a5), INT_MAX,
                                FUTEX_BITSET_MATCH_ANY);
        errno = saved;
      }
      return r;
    }
    default:
      break;
  }
  return raw_syscall(SYS_futex, a1, a2, a3, a4, a5, a6);
}

// --- barriers (glibc 2.36's algorithm on glibc's layout) -----------------------------------

struct Barrier {  // glibc's struct pthread_barrier
  unsigned in;
  unsigned current_round;
  unsigned count;
  int shared;  // glibc's LLL_PRIVATE (0) or LLL_SHARED (128)
  unsigned out;
};
static_assert(sizeof(Barrier) <= sizeof(pthread_barrier_t), "glibc barrier layout");
constexpr unsigned kBarrierInThreshold = UINT_MAX / 2;  // glibc's BARRIER_IN_THRESHOLD

// glibc's futex_wait_simple / futex_wake(INT_MAX) through the futex path above.
void barrier_futex_wait(unsigned* addr, unsigned val, int shared) {
  int op = FUTEX_WAIT | (shared ? 0 : FUTEX_PRIVATE_FLAG);
  int saved = errno;
  futex_any(reinterpret_cast<long>(addr), op, val, 0, 0, 0);
  errno = saved;  // EAGAIN/EINTR: the caller re-reads the word
}
void barrier_futex_wake_all(unsigned* addr, int shared) {
  int op = FUTEX_WAKE | (shared ? 0 : FUTEX_PRIVATE_FLAG);
  int saved = errno;
  futex_any(reinterpret_cast<long>(addr), op, INT_MAX, 0, 0, 0);
  errno = saved;
}

int barrier_wait(pthread_barrier_t* barrier) {
  auto* bar = reinterpret_cast<Barrier*>(barrier);
  unsigned i;
reset_restart:
  // acq_rel: acquire makes the round's pre-entry effects visible to the thread that completes
  // it (and orders us after a reset); release publishes ours to the threads leaving.
  i = __atomic_add_fetch(&bar->in, 1, __ATOMIC_ACQ_REL);
  unsigned count = bar->count;
  unsigned max_in_before_reset = kBarrierInThreshold - kBarrierInThreshold % count;
  if (i > max_in_before_reset) {
    // A reset round: wait for the reset, then enter again.
    while (i > max_in_before_reset) {
      barrier_futex_wait(&bar->in, i, bar->shared);
      i = __atomic_load_n(&bar->in, __ATOMIC_RELAXED);
    }
    goto reset_restart;
  }
  unsigned cr = __atomic_load_n(&bar->current_round, __ATOMIC_RELAXED);
  while (cr + count <= i) {
    unsigned newcr = i - i % count;
    // release: passes the happens-before we acquired from `in` on to the threads we wake.
    if (__atomic_compare_exchange_n(&bar->current_round, &cr, newcr, true, __ATOMIC_RELEASE,
                                    __ATOMIC_RELAXED)) {
      cr = newcr;
      barrier_futex_wake_all(&bar->current_round, bar->shared);
      if (i <= cr) goto ready_to_leave;
      break;
    }
  }
  while (i > cr) {
    barrier_futex_wait(&bar->current_round, cr, bar->shared);
    cr = __atomic_load_n(&bar->current_round, __ATOMIC_RELAXED);
  }
  // acquire: synchronizes with the thread that completed our round.
  __atomic_thread_fence(__ATOMIC_ACQUIRE);
ready_to_leave:
  // release: our use of the barrier happens before a reset or destroy.
  unsigned o = __atomic_add_fetch(&bar->out, 1, __ATOMIC_RELEASE);
  if (o == max_in_before_reset) {
    // The last pre-reset thread to leave resets (acquire: after all their uses).
    __atomic_thread_fence(__ATOMIC_ACQUIRE);
    __atomic_store_n(&bar->out, 0, __ATOMIC_RELAXED);
    int shared = bar->shared;
    // release: threads entering after the reset see out == 0.
    __atomic_store_n(&bar->in, 0, __ATOMIC_RELEASE);
    barrier_futex_wake_all(&bar->in, shared);
  }
  return i % count == 0 ? PTHREAD_BARRIER_SERIAL_THREAD : 0;
}

int barrier_destroy(pthread_barrier_t* barrier) {
  auto* bar = reinterpret_cast<Barrier*>(barrier);
  unsigned count = bar->count;
  unsigned max_in_before_reset = kBarrierInThreshold - kBarrierInThreshold % count;
  unsigned in = __atomic_load_n(&bar->in, __ATOMIC_RELAXED);
  // Pretend the reset threshold was reached, then wait for the leaving threads' reset.
  if (__atomic_fetch_add(&bar->out, max_in_before_reset - in, __ATOMIC_RELAXED) < in) {
    while (in != 0) {
      barrier_futex_wait(&bar->in, in, bar->shared);
      in = __atomic_load_n(&bar->in, __ATOMIC_RELAXED);
    }
  }
  // acquire: memory reuse happens after every prior use of the barrier.
  __atomic_thread_fence(__ATOMIC_ACQUIRE);
  return 0;
}

// --- offloaded calls -----------------------------------------------------------------------

// Runs fn on the offload pool while the fiber parks; returns the pool thread's errno (errno
// itself is left as the caller had it: each hook sets it only when the call failed).
template <class F>
int offload_errno(F&& fn) {
  ErrnoGuard g;
  struct Job {
    F* fn;
    int err;
  } job{&fn, 0};
  stat_add(&Stats::offloads);
  green::detail::offload_raw(
      [](void* p) {
        auto* j = static_cast<Job*>(p);
        errno = 0;
        (*j->fn)();
        j->err = errno;
      },
      &job);
  g.restore();
  return job.err;
}

// Runs `call` (returning an integer, negative on failure) on the pool, errno copied back.
template <class R, class F>
R offload_int(F&& call) {
  R r = -1;
  int e = offload_errno([&] { r = call(); });
  if (r < 0) errno = e;
  return r;
}

}  // namespace

namespace green::shim {

int block_fcntl_lock(int (*fn)(int, int, ...), int fd, int cmd, void* arg) {
  if (mode() != Mode::kFiber) return fn(fd, cmd, arg);
  return offload_int<int>([&] { return fn(fd, cmd, arg); });
}

long block_futex(long a1, long a2, long a3, long a4, long a5, long a6) {
  return futex_any(a1, a2, a3, a4, a5, a6);
}

}  // namespace green::shim

// --- barriers ------------------------------------------------------------------------------

GREEN_HOOK(pthread_barrier_wait) {
  if (mode() == Mode::kRaw) return real::pthread_barrier_wait(b);
  return barrier_wait(b);
}

GREEN_HOOK(pthread_barrier_destroy) {
  if (mode() == Mode::kRaw) return real::pthread_barrier_destroy(b);
  return barrier_destroy(b);
}

// --- waits for processes and file locks, system, pclose -----------------------------------

GREEN_HOOK(waitid) {
  if (mode() != Mode::kFiber || (options & WNOHANG)) return real::waitid(idtype, id, info, options);
  return offload_int<int>([&] { return real::waitid(idtype, id, info, options); });
}

GREEN_HOOK(flock) {
  if (mode() != Mode::kFiber || (op & LOCK_NB) || (op & ~LOCK_NB) == LOCK_UN)
    return real::flock(fd, op);
  return offload_int<int>([&] { return real::flock(fd, op); });
}

GREEN_HOOK(lockf) {
  if (mode() != Mode::kFiber || cmd != F_LOCK) return real::lockf(fd, cmd, len);
  return offload_int<int>([&] { return real::lockf(fd, cmd, len); });
}

GREEN_HOOK(lockf64) {
  return green_hook_lockf(fd, cmd, len);
}

GREEN_HOOK(system) {
  if (mode() != Mode::kFiber || !command) return real::system(command);
  int r = -1;
  int e = offload_errno([&] { r = real::system(command); });
  if (r == -1) errno = e;
  return r;
}

GREEN_HOOK(pclose) {
  if (mode() != Mode::kFiber) return real::pclose(f);
  return offload_int<int>([&] { return real::pclose(f); });
}
