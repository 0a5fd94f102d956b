// Signals for fiber-threads: per-thread masks and pending sets, handlers that run on the
// fiber-thread a signal is for, and EINTR/SA_RESTART for the calls that park (signals.cpp,
// hooks in hook_signal.cpp).
//
// Model (Go's sighandler/sigqueue, adapted to "every pthread is a fiber"):
//   * The program's dispositions live in a shim table (g_act, signals.cpp). For every signal
//     the program catches with a function -- and for every signal a fiber-thread blocks or
//     waits for while its disposition is SIG_DFL -- the kernel gets the shim's own handler
//     (on_signal) instead ("taken over"). SIG_IGN, and SIG_DFL of signals nobody blocks, stay
//     the kernel's. Synchronous faults (SIGSEGV SIGBUS SIGFPE SIGILL SIGTRAP SIGSYS), SIGKILL,
//     SIGSTOP, the stop signals and glibc's internal 32/33 are never taken over: the kernel
//     delivers them on the faulting/stopping OS thread (runtime/src/overflow.cpp keeps its
//     SIGSEGV handler).
//   * A fiber-thread's mask and pending set are words in its SigThread (below); workers' kernel
//     masks do not change. on_signal (kernel context, async-signal-safe code only) picks the
//     target fiber-thread: a thread-directed signal (tgkill/SI_TKILL, SIGPIPE) is for the
//     fiber running on this OS thread; a process-directed one goes, like Linux's
//     complete_signal, to the main thread if it does not block it, else the running
//     fiber-thread, else any registered fiber-thread that does not block it or waits for it in
//     sigwait; else it stays pending for the process. If the target is the fiber running right
//     here and does not block it, the handler runs at once, on the fiber's stack, as the kernel
//     would (hooks are raw meanwhile: the handler may only use async-signal-safe calls, as
//     POSIX says). Otherwise the signal is marked pending on the target, the target's current
//     interruptible park is ended with WakeReason::kInterrupted (detail::interrupt_task: atomics
//     and uv_async_send only), and the OS thread the target runs on is sent a forward (the
//     runtime's carrier signal, SIGURG, tagged, rt_tgsigqueueinfo), so a target that is running
//     -- a CPU loop, a pass-through blocking syscall -- is interrupted there. The forward is
//     never the signal itself: a late forward must not meet a disposition the program has
//     changed since (signals.cpp, kCarrierSignal).
//   * pthread_kill/raise to a fiber-thread never reach the kernel: they mark the target
//     pending the same way (raise and pthread_kill(pthread_self()) run the handler before they
//     return).
//   * A parked hook woken with kInterrupted calls interrupted(): the pending handlers run on
//     the fiber (not in signal context), with the thread's mask | sa_mask | the signal applied,
//     and the hook then returns -1/EINTR, or restarts if every handler that ran had SA_RESTART
//     and the call is one signal(7) restarts. A wake with nothing left to deliver is spurious:
//     the hook goes on waiting.
//
// Threads: SigThread::mask is written only by its own fiber (and by pthread_create before the
// thread starts); pending by anyone (fetch_or; async-signal-safe), cleared by its own fiber.
// The registry of fiber-threads (for process-directed targets) is walked lock-free from signal
// context under a walker count; a thread leaves it under a lock and then waits for walkers to
// drain before its memory can go (thread_exit).
#pragma once

#include <signal.h>
#include <sys/types.h>

#include <atomic>
#include <cstdint>

#include "common.hpp"

namespace green::detail {
class Task;
}

namespace green::shim {

struct ShimThread;

namespace signals {

struct SigThread {
  std::atomic<std::uint64_t> mask{0};        // blocked signals, bit (signo - 1)
  std::atomic<std::uint64_t> pending{0};     // thread-directed pending signals
  std::atomic<std::uint64_t> waitset{0};     // set of a sigwait* in progress, else 0
  std::atomic<detail::Task*> task{nullptr};  // while registered (between start and exit)
  std::atomic<pid_t> tid{0};                 // OS thread the fiber-thread started on (a hint:
                                             // it may run elsewhere since, see post())
  std::atomic<SigThread*> next{nullptr};     // registry link
  ShimThread* owner = nullptr;               // set at registration
};

// What happened while a hook was interrupted (the result of delivering pending handlers).
enum class Intr { kNone, kRestart, kEintr };

// True while the shim manages signals (fibers mode, after start-up, not in a forked child,
// not after exit() began).
bool active() noexcept;

// Start-up (adopt_main_thread): enables signal management (not in GREEN_THREADS=os mode).
void enable_main(ShimThread* main) noexcept;
// Start-up, when fiber-threads have thread identities of their own: turns on the runtime's
// worker hand-off, whose requests the carrier signal's handler (SIGURG) receives.
void enable_handoff() noexcept;
// pthread_create: the child inherits the creator's mask (call before the child can run).
void inherit(ShimThread* child) noexcept;
// On the new fiber-thread's fiber, first thing / last thing.
void thread_start(ShimThread* t) noexcept;
void thread_exit(ShimThread* t) noexcept;
// fork: the calling fiber-thread's mask (before), and in the child: the kernel gets the
// program's own dispositions and that mask back (the child is a plain single-threaded process).
std::uint64_t fork_mask() noexcept;
void after_fork_child(std::uint64_t mask) noexcept;

// Runs the calling fiber-thread's deliverable pending handlers (call after a park returned
// kInterrupted, with no lock held and no Waiter linked). kNone: nothing was delivered.
Intr interrupted() noexcept;

// pthread_kill/raise for a fiber-thread target `t` (async-signal-safe). Returns 0 or EINVAL.
int send_to(ShimThread* t, int signo) noexcept;

// kill(getpid(), signo) from fiber-thread `cur`: routed like a process-directed signal without
// the kernel, the handler running before the call returns if `cur` takes it. False: not a
// signal the shim manages now (the caller does the real kill).
bool kill_self(ShimThread* cur, int signo) noexcept;

// The calling fiber-thread if the shim manages its signals, else nullptr (signal-safe).
ShimThread* self() noexcept;

// True inside a handler the shim runs in kernel signal context on a fiber (hooks are raw).
bool in_direct_handler() noexcept;

// Bodies of the hooks (hook_signal.cpp); `t` is self(). Return conventions are the libc
// function's: do_sigaction 0 (the real call's result when not managed), do_sigmask an errno
// value, do_sigwait the signal or -1 with errno (EAGAIN at the deadline, EINTR if `eintr` and
// a handler ran), do_sigsuspend -1/EINTR.
int do_sigaction(int s, const struct sigaction* act, struct sigaction* old) noexcept;
int do_sigmask(ShimThread* t, int how, const sigset_t* set, sigset_t* old) noexcept;
int do_sigwait(ShimThread* t, const sigset_t* set, siginfo_t* info, TimePoint deadline,
               bool eintr) noexcept;
int do_sigsuspend(ShimThread* t, const sigset_t* mask) noexcept;
// sigpending: pending on t or on the process.
sigset_t pending_of(ShimThread* t) noexcept;

}  // namespace signals
}  // namespace green::shim
