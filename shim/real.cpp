// Resolution of the real libc symbols (see real.hpp).
//
// Design: everything is resolved eagerly, in one constructor that runs before the program's
// own constructors (priority 101), with dlsym(RTLD_NEXT) -- or dlvsym for the two
// pthread_cond_* symbol versions. Resolving lazily per hook (libco's way) would put dlsym on
// the hot path of the first call of each function, possibly on a fiber with a small stack and
// inside a signal handler; eager resolution does it once, on the main thread, before any
// thread or fiber exists.
//
// Recursion (hazard H9): glibc's dlsym may call calloc (for dlerror's buffer); an allocator
// other than glibc's (jemalloc, tcmalloc) may initialize on that call and take a
// pthread_mutex_lock, which is one of our hooks, whose real pointer is not set yet. A
// thread-local flag marks "this thread is inside resolve_all()"; ensure_resolved() returns
// false then, and the hook falls back to a raw syscall (or treats a lock operation as
// uncontended: only one thread exists that early). No allocation happens here ourselves.
//
// Threads: resolve_all() may race only with itself (a hook called on another thread before
// the constructor ran, which needs a thread created by another constructor); the pointers are
// written with relaxed atomic stores and the completion flag with a release store.
#include "real.hpp"

#include <dlfcn.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <type_traits>

#include "green/detail/raw_syscall.hpp"

namespace green::shim::real {

#define GREEN_SHIM_REAL_DEF(id, libc, name, version) sig::id* id = nullptr;
GREEN_SHIM_REAL_LIST(GREEN_SHIM_REAL_DEF)
#undef GREEN_SHIM_REAL_DEF

namespace {
// The table's signature of each row with a real pointer is glibc's (noexcept aside).
template <class F>
struct plain;
template <class R, class... A>
struct plain<R(A...)> {
  using type = R(A...);
};
template <class R, class... A>
struct plain<R(A...) noexcept> {
  using type = R(A...);
};
template <class R, class... A>
struct plain<R(A..., ...)> {
  using type = R(A..., ...);
};
template <class R, class... A>
struct plain<R(A..., ...) noexcept> {
  using type = R(A..., ...);
};
// glibc's declarations carry attributes (nonnull, warn_unused_result) that are not part of the
// type; the comparison ignores them.
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wignored-attributes"
#define GREEN_SHIM_REAL_CHECK(id, libc, name, version)                  \
  static_assert(std::is_same_v<sig::id, plain<decltype(::libc)>::type>, \
                "shim/symbols.txt: the signature of " #id " differs from glibc's " name);
GREEN_SHIM_REAL_LIST(GREEN_SHIM_REAL_CHECK)
#undef GREEN_SHIM_REAL_CHECK
#pragma GCC diagnostic pop
}  // namespace

std::atomic<bool> g_resolved{false};

namespace {

std::atomic<bool> g_resolving{false};
thread_local bool t_in_resolve = false;

[[noreturn]] void missing(const char* name, const char* version) {
  // No stdio: it may not be usable this early; write(2) through the raw syscall.
  char msg[256];
  int n = std::snprintf(msg, sizeof msg,
                        "green: fatal: cannot find the real '%s'%s%s in the C library "
                        "(dlsym(RTLD_NEXT) failed); this glibc is not supported by the shim\n",
                        name, version ? " version " : "", version ? version : "");
  if (n > 0) (void)detail::raw_syscall_ret(SYS_write, 2, detail::sc_arg(msg), n);
  std::_Exit(127);
}

template <class F>
void resolve_one(F*& slot, const char* name, const char* version) {
  void* p = version ? dlvsym(RTLD_NEXT, name, version) : dlsym(RTLD_NEXT, name);
  if (!p) missing(name, version);
  __atomic_store_n(reinterpret_cast<void**>(&slot), p, __ATOMIC_RELAXED);
}

}  // namespace

void resolve_all() noexcept {
  // acquire: pairs with the release store below: the real pointers are all written.
  if (g_resolved.load(std::memory_order_acquire)) return;
  t_in_resolve = true;
  bool expected = false;
  // acq_rel: one thread wins the resolution; the losers wait for g_resolved below.
  if (!g_resolving.compare_exchange_strong(expected, true, std::memory_order_acq_rel)) {
    // Another thread resolves: wait for it (this only happens during process start-up).
    while (!g_resolved.load(std::memory_order_acquire))
      detail::raw_syscall_ret(SYS_sched_yield);  // not the hook
    t_in_resolve = false;
    return;
  }
#define GREEN_SHIM_REAL_RESOLVE(id, libc, name, version) resolve_one(id, name, version);
  GREEN_SHIM_REAL_LIST(GREEN_SHIM_REAL_RESOLVE)
#undef GREEN_SHIM_REAL_RESOLVE
  // release: publishes every real pointer written above to the acquire loads of g_resolved.
  g_resolved.store(true, std::memory_order_release);
  t_in_resolve = false;
}

bool ensure_resolved_slow() noexcept {
  if (t_in_resolve) return false;
  resolve_all();
  return true;
}

namespace {
__attribute__((constructor(101))) void resolve_at_start() {
  resolve_all();
}
}  // namespace

}  // namespace green::shim::real
