// Hooks: exit, fork, vfork, wait, waitpid, wait4, getaddrinfo, getnameinfo, gethostbyname(2)(_r),
// gethostbyaddr(_r).
//
// Name resolution on a fiber runs the real function on the runtime's offload pool
// (green::detail::offload_raw) while the fiber parks: glibc's resolver calls its socket
// functions internally, where no hook can see them (hazard H7), so the whole call has to leave
// the worker. errno and h_errno, which the pool thread set, are copied back to the caller.
// Blocking waits for child processes are offloaded the same way.
//
// exit on a fiber: atexit handlers and destructors (libuv's own shutdown joins its pool
// threads) then run on a fiber while the runtime is still up; a hook that parked there (an
// offloaded pthread_join of a pool thread) would never be resumed. So exit() switches the shim
// off, as in a forked child: from then on every hook blocks the OS thread like plain libc.
//
// fork (hazard H11): only the calling OS thread survives in the child, so the runtime's workers
// (and libuv's pool threads) do not exist there. exit() in such a child flushes stdio and
// _exit()s: atexit handlers and destructors are skipped, since libuv's would join pool threads
// that are gone (documented). The child marks the shim disabled: every hook becomes a plain call
// (keeping blocking semantics on fds the shim made non-blocking), pthread_create makes real
// threads. fork+exec, and a child that goes on single-threaded, work; fibers other than the
// caller do not run in the child. vfork is implemented as fork (POSIX allows it): a vfork
// child running hooked code would otherwise scribble on the parent's runtime state.
#include <netdb.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>

#include "common.hpp"
#include "fd_table.hpp"
#include "green/offload.hpp"
#include "green/runtime.hpp"
#include "signals.hpp"

using namespace green::shim;

namespace {

// Runs fn on the offload pool while the fiber parks. Returns the pool thread's errno and
// copies its h_errno back; errno itself is left as the caller had it (each hook sets it only
// when the call failed).
template <class F>
int offload_call(F&& fn) {
  ErrnoGuard g;
  struct Job {
    F* fn;
    int err;
    int herr;
  } job{&fn, 0, 0};
  stat_add(&Stats::offloads);
  green::detail::offload_raw(
      [](void* p) {
        auto* j = static_cast<Job*>(p);
        (*j->fn)();
        j->err = errno;
        j->herr = h_errno;
      },
      &job);
  signals::interrupted();  // handlers of signals that came meanwhile run as the call returns
  g.restore();
  h_errno = job.herr;
  return job.err;
}

bool offload_ok() {
  return mode() == Mode::kFiber;
}

}  // namespace

namespace {
bool g_fork_child = false;  // this process is a fork child of a process running green
}  // namespace

GREEN_HOOK(exit) {
  if (g_fork_child) {
    // The parent's threads do not exist here, but the library destructors (libuv's pool
    // shutdown) would join them: flush stdio and leave without running exit handlers.
    std::fflush(nullptr);
    _exit(status);
  }
  g_disabled = true;
  real::exit(status);
  __builtin_unreachable();
}

GREEN_HOOK(fork) {
  bool runtime = green::running();
  std::uint64_t mask = signals::fork_mask();
  pid_t p = real::fork();
  if (p > 0) fds::forked();  // the child shares every description: re-read cached flags
  if (p == 0 && runtime) {
    g_disabled = true;
    g_fork_child = true;
    signals::after_fork_child(mask);  // the program's dispositions and this thread's mask
  }
  return p;
}

GREEN_HOOK(vfork) {
  return green_hook_fork();
}

GREEN_HOOK(waitpid) {
  if (!offload_ok() || (options & WNOHANG)) return real::waitpid(pid, status, options);
  pid_t r = -1;
  int e = offload_call([&] { r = real::waitpid(pid, status, options); });
  if (r < 0) errno = e;
  return r;
}

GREEN_HOOK(wait) {
  return green_hook_waitpid(-1, status, 0);
}

GREEN_HOOK(wait4) {
  if (!offload_ok() || (options & WNOHANG)) return real::wait4(pid, status, options, ru);
  pid_t r = -1;
  int e = offload_call([&] { r = real::wait4(pid, status, options, ru); });
  if (r < 0) errno = e;
  return r;
}

GREEN_HOOK(getaddrinfo) {
  if (!offload_ok()) return real::getaddrinfo(node, service, hints, res);
  int r = EAI_SYSTEM;
  int e = offload_call([&] { r = real::getaddrinfo(node, service, hints, res); });
  if (r == EAI_SYSTEM) errno = e;
  return r;
}

GREEN_HOOK(getnameinfo) {
  if (!offload_ok()) return real::getnameinfo(sa, salen, host, hostlen, serv, servlen, flags);
  int r = EAI_SYSTEM;
  int e =
      offload_call([&] { r = real::getnameinfo(sa, salen, host, hostlen, serv, servlen, flags); });
  if (r == EAI_SYSTEM) errno = e;
  return r;
}

GREEN_HOOK(gethostbyname) {
  if (!offload_ok()) return real::gethostbyname(name);
  struct hostent* r = nullptr;
  int e = offload_call([&] { r = real::gethostbyname(name); });
  if (!r) errno = e;
  return r;
}

GREEN_HOOK(gethostbyname2) {
  if (!offload_ok()) return real::gethostbyname2(name, af);
  struct hostent* r = nullptr;
  int e = offload_call([&] { r = real::gethostbyname2(name, af); });
  if (!r) errno = e;
  return r;
}

GREEN_HOOK(gethostbyname_r) {
  if (!offload_ok()) return real::gethostbyname_r(name, ret, buf, len, result, herr);
  int r = 0;
  offload_call([&] { r = real::gethostbyname_r(name, ret, buf, len, result, herr); });
  return r;
}

GREEN_HOOK(gethostbyname2_r) {
  if (!offload_ok()) return real::gethostbyname2_r(name, af, ret, buf, len, result, herr);
  int r = 0;
  offload_call([&] { r = real::gethostbyname2_r(name, af, ret, buf, len, result, herr); });
  return r;
}

GREEN_HOOK(gethostbyaddr) {
  if (!offload_ok()) return real::gethostbyaddr(addr, len, type);
  struct hostent* r = nullptr;
  int e = offload_call([&] { r = real::gethostbyaddr(addr, len, type); });
  if (!r) errno = e;
  return r;
}

GREEN_HOOK(gethostbyaddr_r) {
  if (!offload_ok()) return real::gethostbyaddr_r(addr, len, type, ret, buf, buflen, result, herr);
  int r = 0;
  offload_call([&] { r = real::gethostbyaddr_r(addr, len, type, ret, buf, buflen, result, herr); });
  return r;
}
