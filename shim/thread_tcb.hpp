// Thread identities for fiber-threads: a glibc thread control block, static TLS and DTV of
// their own, laid out as glibc lays out a new thread's, and switched with the fiber.
//
// Owns: identity blocks (one allocation each: static TLS | struct pthread | Meta), a pool of
// finished ones, and the start-up decision whether identities are used at all.
//
// Layout (x86-64, TLS variant II): TP = FS base = the struct pthread; every start-up module's
// TLS block lies at TP - l_tls_offset. _dl_allocate_tls(tp) (ld.so, GLIBC_PRIVATE) gives a
// zeroed TCB its DTV and copies every module's TLS image, exactly what pthread_create does, so
// `__thread`/`thread_local` of the executable and of every library loaded at start-up, errno,
// h_errno and libstdc++'s exception globals start fresh. The struct pthread fields glibc
// reads on the calling thread (or on a pthread_t) are then set as pthread_create would
// (init_fields in thread_tcb.cpp, offsets in the fingerprinted table there): tcb/self = TP,
// stack guard and pointer guard copied, multiple_threads = 1, self-linked list and robust
// head, specific[0], user_stack, rseq cpu_id = -2 (sched_getcpu falls back to the vDSO: only
// the worker's rseq area is registered), and on the fiber (on_start) the stack block, errno,
// the locale/ctype pointers and the resolver pointer. pthread_t of a fiber-thread = its TP,
// so glibc's own pthread_self, pthread_equal, pthread_getspecific/setspecific,
// pthread_getattr_np, pthread_attr_getstack, pthread_getschedparam and sched_getcpu work
// unhooked. The shim finds its ShimThread from a pthread_t through start_routine (= a private
// marker function) and arg (= the ShimThread) of the descriptor: owner().
//
// The runtime switches the FS base (runtime/src/thread_pointer.hpp); glibc's `tid` holds the
// kernel tid of the worker running the fiber (stored at each switch-in), so every tid glibc
// hands the kernel is a real task of this process.
//
// What stays shared / is not covered (docs/shim.md): identities are not on glibc's thread
// lists (GL(dl_stack_used)), so (1) a library dlopen'ed later whose TLS is placed in the static
// surplus (initial-exec TLS) gets its image copied only into real threads: on_dlopen() copies
// it into live identities; dynamic (general-dynamic/TLSDESC) TLS of dlopen'ed libraries is
// allocated by __tls_get_addr on first access in each identity and works unaided; (2)
// setuid() & co. signal only listed threads (identities are not signalled: fine, the kernel
// credentials belong to the workers' tasks). Per-task kernel state (signal mask, CPU-time
// clocks, affinity, scheduling policy, the comm name) belongs to the worker.
//
// Lifetime: two references, one for "the task runs on it" (dropped by the runtime's release
// callback after the fiber's context switched away for good) and one for "the pthread_t is
// valid" (dropped when the ShimThread is destroyed: join or detach). The last one pools the
// block (libc's own TLS block is kept across reuse: its malloc tcache and arena are the
// thread's, and a fresh one would leak ~34 KB per thread) or frees it.
//
// Threads: create/on_start/on_exit run on fibers; release on the worker; the pool is locked.
#pragma once

#include <pthread.h>

#include <cstddef>

namespace green::shim {

struct ShimThread;

namespace tcb {

enum class Setting { kAuto, kShared, kWrfsbase, kArchPrctl };

// Start-up (main thread, before the runtime): decides the mode from the setting, the CPU
// (AT_HWCAP2 FSGSBASE), and glibc's layout fingerprint. True if identities are in use; then
// the runtime switches thread pointers and worker 0's scheduler got an identity of its own.
bool init(Setting s) noexcept;
bool enabled() noexcept;
const char* mode_name() noexcept;  // "wrfsbase", "arch_prctl" or "shared"

// The process's main thread identity (its TP at start-up), given to the main fiber.
char* main_tp() noexcept;
// On the main fiber, at its start / before the runtime stops: its stack in the descriptor.
void main_fiber_started(ShimThread* main) noexcept;
void main_fiber_done() noexcept;

// A fresh (or pooled and re-initialised) identity owned by `t`, or nullptr (out of memory).
char* create(ShimThread* t) noexcept;
// Drops the pthread_t reference (ShimThread destroyed) after a create.
void unref(char* tp) noexcept;
// The ShimThread of a fiber-thread identity, nullptr for anything else.
ShimThread* owner(pthread_t pt) noexcept;

// On the fiber, in its own identity: before the start routine / after it returned.
void on_start(char* tp) noexcept;
void on_exit(char* tp) noexcept;
// Runs `fn(arg)` with glibc's cancellation/exit buffer set (pthread_exit and acted-on
// cancellation unwind to here); returns fn's value or the pthread_exit value.
void* run_with_unwind_buf(char* tp, void* (*fn)(void*), void* arg) noexcept;

// Deferred cancellation (POSIX): a cancellation point on the calling fiber. Acts (glibc's
// pthread_testcancel: unwinds to run_with_unwind_buf, running the cleanup handlers) if the
// caller is a fiber-thread with its own identity and a cancel is pending and enabled. Must be
// called from frames that may be unwound (no noexcept frame below it on the fiber, no lock
// held).
void cancel_point();
// pthread_cancel of a fiber-thread with its own identity (`tp`): marks it as glibc does
// (CANCELING|CANCELED in cancelhandling, no signal). Returns true if the caller must wake the
// target's current wait (cancellation enabled, target is another thread); acts at once for a
// self-cancel with asynchronous type.
bool mark_cancel(char* tp);

// TP-relative offsets of struct pthread fields the shim reads.
constexpr long kResult = 1576;

}  // namespace tcb
}  // namespace green::shim
