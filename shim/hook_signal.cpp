// Hooks: sigaction, signal, sigprocmask, pthread_sigmask, sigpending, raise, kill, sigwait,
// sigwaitinfo, sigtimedwait, sigsuspend, pause. The model and the state are in
// signals.{hpp,cpp}; this file only decides, per call, whether the shim manages it:
//   * sigaction/signal: whenever signals are managed (signals::active()), from any caller but
//     runtime-internal code, for the signals the shim may take over;
//   * the mask, pending, wait and suspend calls: on a fiber-thread (signals::self()), including
//   from
//     a handler the shim runs in signal context; runtime-internal code (kRaw) and OS threads get
//     the real call, which acts on the OS thread's kernel mask.
// All of them are async-signal-safe, as POSIX requires of these functions.
#include <signal.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "common.hpp"
#include "signals.hpp"
#include "thread.hpp"

using namespace green::shim;

namespace {

// The calling fiber-thread if the shim manages this call's signal state.
ShimThread* managed_caller() {
  if (!signals::active()) return nullptr;
  if (mode() != Mode::kFiber && !signals::in_direct_handler()) return nullptr;
  return signals::self();
}

bool runtime_internal() {
  return mode() == Mode::kRaw && !signals::in_direct_handler();
}

}  // namespace

GREEN_HOOK(sigaction) {
  if (runtime_internal()) return real::sigaction(s, act, old);
  return signals::do_sigaction(s, act, old);
}

GREEN_HOOK(signal) {
  if (runtime_internal() || !signals::active()) return real::signal(s, h);
  // glibc's signal(): BSD semantics (SA_RESTART, the signal blocked in its handler).
  struct sigaction act {};
  struct sigaction old {};
  act.sa_handler = h;
  act.sa_flags = SA_RESTART;
  sigemptyset(&act.sa_mask);
  if (s < 1 || s >= _NSIG || sigaddset(&act.sa_mask, s) < 0) {
    errno = EINVAL;
    return SIG_ERR;
  }
  if (signals::do_sigaction(s, &act, &old) < 0) return SIG_ERR;
  return old.sa_handler;
}

GREEN_HOOK(sigprocmask) {
  ShimThread* t = managed_caller();
  if (!t) return real::sigprocmask(how, set, old);
  int e = signals::do_sigmask(t, how, set, old);
  if (e) {
    errno = e;
    return -1;
  }
  return 0;
}

GREEN_HOOK(pthread_sigmask) {
  ShimThread* t = managed_caller();
  if (!t) return real::pthread_sigmask(how, set, old);
  return signals::do_sigmask(t, how, set, old);
}

GREEN_HOOK(sigpending) {
  ShimThread* t = managed_caller();
  if (!t) return real::sigpending(set);
  sigset_t kernel;
  if (real::sigpending(&kernel) < 0) return -1;
  sigset_t ours = signals::pending_of(t);
  sigorset(set, &kernel, &ours);  // the kernel's: signals the shim does not manage
  return 0;
}

GREEN_HOOK(raise) {
  ShimThread* t = managed_caller();
  if (!t) return real::raise(s);
  int e = signals::send_to(t, s);
  if (e) {
    errno = e;
    return -1;
  }
  return 0;
}

// kill(getpid()) from a fiber-thread: the kernel would deliver it before kill returns if the
// caller takes it (Linux: the leader first, then the caller); the shim does the same.
GREEN_HOOK(kill) {
  ShimThread* t = pid == getpid() ? managed_caller() : nullptr;
  if (t && signals::kill_self(t, s)) return 0;
  return real::kill(pid, s);
}

GREEN_HOOK(sigwait) {
  ShimThread* t = managed_caller();
  if (!t) return real::sigwait(set, out);
  int s = signals::do_sigwait(t, set, nullptr, kNoDeadline, false);
  if (s < 0) return errno;
  *out = s;
  return 0;
}

GREEN_HOOK(sigwaitinfo) {
  ShimThread* t = managed_caller();
  if (!t) return real::sigwaitinfo(set, info);
  return signals::do_sigwait(t, set, info, kNoDeadline, true);
}

GREEN_HOOK(sigtimedwait) {
  ShimThread* t = managed_caller();
  if (!t) return real::sigtimedwait(set, info, ts);
  if (ts && (!timespec_valid(ts) || ts->tv_sec < 0)) {
    errno = EINVAL;
    return -1;
  }
  return signals::do_sigwait(t, set, info, ts ? deadline_ns(timespec_ns(*ts)) : kNoDeadline, true);
}

GREEN_HOOK(sigsuspend) {
  ShimThread* t = managed_caller();
  if (!t) return real::sigsuspend(mask);
  return signals::do_sigsuspend(t, mask);
}

GREEN_HOOK(pause) {
  ShimThread* t = managed_caller();
  if (!t) return real::pause();
  return signals::do_sigsuspend(t, nullptr);
}
