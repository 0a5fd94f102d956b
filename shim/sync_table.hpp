// Where fibers wait for pthread objects: a fixed table of buckets keyed by the object's
// address (mutex, condvar, rwlock, semaphore, once control).
//
// Owns: 1024 cache-line-sized buckets, each a SpinLock, an intrusive WaitList of parked
// Waiters whose `slot` is the object address, a count of them (read without the lock by
// wakers for a cheap "nobody waits" exit) and a sticky `foreign` flag (see below).
//
// Protocol (no lost wake-ups): a waiter queues itself under the bucket lock, then re-checks
// the object (`retry` below) still under that lock, then parks, the bucket lock being released
// by park() only after the Waiter is visible. A waker changes the object first (real unlock,
// sem_post...), then takes the bucket lock and wakes. Either the re-check sees the change or
// the waker sees the waiter. Wakers touch a Waiter only under the bucket lock and woken waiters
// re-take it before returning (the lifetime rule of detail/wait.hpp).
//
// Foreign wake-ups: an OS thread may release an object without going through a hook the shim
// sees (glibc's real pthread_cond_wait unlocks and relocks its mutex internally; another
// process posts a process-shared semaphore). Such objects are marked `foreign` (per bucket, a
// false positive only costs polling) and their fiber waiters also wake periodically (1 ms
// doubling to 16 ms) to re-check.
//
// Futexes (hook_block.cpp): syscall(SYS_futex) waits of fibers queue here too, keyed by the
// futex word's address, with their FUTEX_WAIT_BITSET mask in Waiter::events (the pthread
// hooks' waiters have 0 there and match any wake). wake_futex wakes at most n matching
// waiters and says how many.
//
// fork: the child forgets every waiter (they belong to the parent's fibers).
#pragma once

#include <cstdint>

#include "common.hpp"

namespace green::shim::sync {

// kPolled: the re-check interval of a polling wait passed (nobody woke us).
enum class WaitResult { kReady, kWoken, kPolled, kTimedOut, kInterrupted };

// Parks the calling fiber on `addr` until a wake, `deadline`, or (if `poll` is set) a short
// re-check interval. `retry` is called under the bucket lock after queueing; returning true
// abandons the wait (kReady); it may be null. `published`, if set, runs once the waiter is
// visible and the bucket lock released, before the fiber switches away (condvars release their
// mutex there). kTimedOut only when `deadline` itself passed.
WaitResult wait_on(const void* addr, TimePoint deadline, bool poll, bool (*retry)(void*),
                   void* arg, void (*published)(void*) = nullptr, void* parg = nullptr) noexcept;

// wait_on for a futex waiter with FUTEX_WAIT_BITSET mask `bitset` (non-zero).
WaitResult wait_futex(const void* addr, TimePoint deadline, bool poll, bool (*retry)(void*),
                      void* arg, unsigned bitset) noexcept;

void wake_one(const void* addr) noexcept;
void wake_all(const void* addr) noexcept;
// Wakes up to n waiters on addr whose bitset shares a bit with `bitset`; returns how many.
int wake_futex(const void* addr, int n, unsigned bitset) noexcept;

void mark_foreign(const void* addr) noexcept;
bool is_foreign(const void* addr) noexcept;

}  // namespace green::shim::sync
