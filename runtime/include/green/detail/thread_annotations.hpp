// Clang thread-safety annotations (-Wthread-safety), abseil/marl style. They document which
// lock guards which field and which functions take, need or release a lock, and clang checks
// them: scripts/test.sh --clang-tsa builds libgreen with clang and -Wthread-safety -Werror.
// With other compilers they expand to nothing.
//
// Installed (under detail/, not part of the API) only because the lock type they annotate,
// detail::SpinLock, is declared in the installed detail/wait.hpp. See docs/hacking.md for the
// lock order and the fields each lock guards.
#pragma once

#if defined(__clang__)
#define GREEN_TSA(x) __attribute__((x))
#else
#define GREEN_TSA(x)
#endif

// On a lock type: it is a capability ("mutex").
#define GREEN_CAPABILITY(name) GREEN_TSA(capability(name))
// On an RAII guard type: it holds a capability for its lifetime.
#define GREEN_SCOPED_CAPABILITY GREEN_TSA(scoped_lockable)
// On a field: read and written only with `lock` held (GREEN_PT_GUARDED_BY: what it points to).
#define GREEN_GUARDED_BY(lock) GREEN_TSA(guarded_by(lock))
#define GREEN_PT_GUARDED_BY(lock) GREEN_TSA(pt_guarded_by(lock))
// On a lock field: the lock order (this lock is taken before / after the others).
#define GREEN_ACQUIRED_BEFORE(...) GREEN_TSA(acquired_before(__VA_ARGS__))
#define GREEN_ACQUIRED_AFTER(...) GREEN_TSA(acquired_after(__VA_ARGS__))
// On a function: the caller must hold / must not hold the locks.
#define GREEN_REQUIRES(...) GREEN_TSA(requires_capability(__VA_ARGS__))
#define GREEN_EXCLUDES(...) GREEN_TSA(locks_excluded(__VA_ARGS__))
// On a function: it takes / releases the locks (no argument: the object itself).
#define GREEN_ACQUIRE(...) GREEN_TSA(acquire_capability(__VA_ARGS__))
#define GREEN_RELEASE(...) GREEN_TSA(release_capability(__VA_ARGS__))
#define GREEN_TRY_ACQUIRE(...) GREEN_TSA(try_acquire_capability(__VA_ARGS__))
// On a function: from its return on, the caller holds the capability (a check, or a role).
#define GREEN_ASSERT_CAPABILITY(x) GREEN_TSA(assert_capability(x))
// On a function whose locking the analysis cannot follow (a lock released through a
// function pointer, a lock handed between threads): say why at the use.
#define GREEN_NO_THREAD_SAFETY_ANALYSIS GREEN_TSA(no_thread_safety_analysis)

namespace green::detail {

// A thread role (Chromium's THREAD_CHECKER, in -Wthread-safety terms): a capability that
// stands for "running on the owner's thread", for state that one thread owns and that needs
// no lock. Its fields are GREEN_GUARDED_BY(role); the entry points, which run on the owner's
// thread by contract, call role.assert_held(); private helpers are GREEN_REQUIRES(role). The
// assertion is for the analysis only (it compiles to nothing): it makes clang check that no
// helper and no field is reached from a function that did not state the role.
class GREEN_CAPABILITY("role") ThreadRole {
 public:
  void assert_held() const noexcept GREEN_ASSERT_CAPABILITY(this) {}
};

}  // namespace green::detail
