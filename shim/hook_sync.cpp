// Hooks: pthread_mutex_{lock,trylock,timedlock,clocklock,unlock}, pthread_cond_{wait,timedwait,
// clockwait,signal,broadcast} (versions GLIBC_2.3.2 and GLIBC_2.2.5), pthread_rwlock_*,
// sem_{wait,trywait,timedwait,clockwait,post}.
//
// Scheme (docs/shim.md, "Locks"): the objects stay glibc's own. Their lock words are only
// ever changed by glibc's functions, so OS threads that use them with the real blocking calls
// interoperate unchanged, and PTHREAD_*_INITIALIZER objects need no registration. A fiber
// never calls a blocking variant: it calls the try-variant, and when that says "busy" it parks
// in the address-keyed wait table (sync_table.hpp) until an unlock/post/signal -- which every
// caller, fiber or thread, makes through these hooks -- wakes it to try again.
//
// Thread identity: glibc records a lock owner as the OS thread id, which all fibers of one
// worker share. For recursive and error-checking mutexes the owning fiber is therefore kept
// in the mutex itself, in __data.__list.__next (the robust-list link, unused by non-robust
// mutexes; static_asserts below pin the layout), so a second fiber on the same worker is
// refused (EBUSY/park) instead of being taken for the owner, and EDEADLK/EPERM are decided per
// fiber. Robust, priority-inheritance and priority-protect mutexes keep glibc's thread
// semantics entirely: on a fiber they block the worker (documented).
//
// Condition variables: a fiber waiter queues on the condvar's address, then (inside park, after
// it is visible) unlocks the mutex, and relocks it after waking. Signal/broadcast wake fiber
// waiters in the table *and* call the real function for OS-thread waiters; a spurious extra
// wake-up is allowed by POSIX. The clock of a timed wait is read from the condvar
// (__data.__wrefs bit 1, glibc >= 2.25 layout: CLOCK_MONOTONIC if set).
//
// rwlocks: a fiber takes them with the try-variants too; the write-owning fiber and the number
// of fibers waiting to write live in padding of the object (see rw_waiting_writers), so a
// re-lock by the writer answers EDEADLK as glibc does, and the writer-preferring kind
// (PTHREAD_RWLOCK_PREFER_WRITER_NONRECURSIVE_NP) holds new fiber readers back while a fiber
// writer waits. glibc's default kind (and PREFER_WRITER_NP, which glibc treats the same)
// prefers readers.
//
// Fidelity notes: robust/PI/PP and process-shared objects work but park by polling or block
// (see sync_table.hpp "foreign"). An OS thread's reader does not see fiber writers waiting.
#include <pthread.h>
#include <semaphore.h>
#include <sys/syscall.h>

#include <cstddef>

#include "common.hpp"
#include "green/detail/task.hpp"
#include "sync_table.hpp"
#include "thread_tcb.hpp"

using namespace green::shim;
using green::detail::Task;

namespace {

static_assert(sizeof(pthread_mutex_t) == 40, "glibc x86_64 pthread_mutex_t layout expected");
static_assert(offsetof(pthread_mutex_t, __data.__kind) == 16, "glibc mutex layout expected");
static_assert(offsetof(pthread_mutex_t, __data.__list) == 24, "glibc mutex layout expected");

constexpr int kSpecialKinds = 16 | 32 | 64;  // robust, PI, PP
constexpr int kPshared = 128;

Task* me() {
  return green::detail::current_task();
}
int kind_of(const pthread_mutex_t* m) {
  return m->__data.__kind;
}
bool owned_type(int kind) {
  int t = kind & 3;
  return t == PTHREAD_MUTEX_RECURSIVE || t == PTHREAD_MUTEX_ERRORCHECK;
}
Task* fiber_owner(const pthread_mutex_t* m) {
  return reinterpret_cast<Task*>(__atomic_load_n(&m->__data.__list.__next, __ATOMIC_RELAXED));
}
void set_fiber_owner(pthread_mutex_t* m, Task* t) {
  __atomic_store_n(&m->__data.__list.__next, reinterpret_cast<__pthread_list_t*>(t),
                   __ATOMIC_RELAXED);
}

// One attempt to take `m` for the current fiber: 0, EBUSY, or another error.
int mutex_attempt(pthread_mutex_t* m) {
  int kind = kind_of(m);
  if (owned_type(kind)) {
    Task* o = fiber_owner(m);
    if (o && o != me()) return EBUSY;
  }
  int r = real::pthread_mutex_trylock(m);
  if (r == 0 && owned_type(kind)) set_fiber_owner(m, me());
  return r;
}

struct Attempt {
  int (*fn)(void*);
  void* obj;
  int result;
};
bool retry_attempt(void* p) {
  auto* a = static_cast<Attempt*>(p);
  a->result = a->fn(a->obj);
  return a->result != EBUSY && a->result != EAGAIN;
}

// Parks until fn(obj) stops answering EBUSY/EAGAIN ("busy") or `deadline` passes; with
// `eintr`, a signal handler that ran without SA_RESTART ends the wait with EINTR.
int wait_until_free(const void* addr, int (*fn)(void*), void* obj, TimePoint deadline, bool poll,
                    bool eintr = false) {
  Attempt a{fn, obj, EBUSY};
  stat_add(&Stats::lock_waits);
  for (;;) {
    sync::WaitResult r = sync::wait_on(addr, deadline, poll, retry_attempt, &a);
    if (r == sync::WaitResult::kReady) return a.result;
    a.result = fn(obj);
    if (a.result != EBUSY && a.result != EAGAIN) return a.result;
    if (r == sync::WaitResult::kTimedOut) return ETIMEDOUT;
    if (r == sync::WaitResult::kInterrupted && eintr) return EINTR;
  }
}

int mutex_lock_fiber(pthread_mutex_t* m, TimePoint deadline) {
  int kind = kind_of(m);
  if (owned_type(kind) && fiber_owner(m) == me()) {
    if ((kind & 3) == PTHREAD_MUTEX_ERRORCHECK) return EDEADLK;
    // Recursive: glibc counts if the owner tid is ours; the fiber may have moved to another
    // worker since it locked (the tid is the worker's), so say it is.
    m->__data.__owner = green::detail::descriptor_tid();
    return real::pthread_mutex_trylock(m);
  }
  int r = mutex_attempt(m);
  if (r != EBUSY) return r;
  return wait_until_free(
      m, [](void* p) { return mutex_attempt(static_cast<pthread_mutex_t*>(p)); }, m, deadline,
      (kind & kPshared) != 0);
}

int mutex_unlock_fiber(pthread_mutex_t* m) {
  int kind = kind_of(m);
  if (owned_type(kind)) {
    if (fiber_owner(m) != me()) return EPERM;
    m->__data.__owner = green::detail::descriptor_tid();  // as in mutex_lock_fiber: moved?
    if ((kind & 3) == PTHREAD_MUTEX_RECURSIVE && m->__data.__count > 1)
      return real::pthread_mutex_unlock(m);
    set_fiber_owner(m, nullptr);
  }
  int r = real::pthread_mutex_unlock(m);
  if (r == 0) sync::wake_one(m);
  return r;
}

bool special(const pthread_mutex_t* m) {
  return (kind_of(m) & kSpecialKinds) != 0;
}

// --- condition variables --------------------------------------------------------------------

clockid_t cond_clock(const pthread_cond_t* c, bool old_abi) {
  if (old_abi) return CLOCK_REALTIME;
  return (c->__data.__wrefs & 2) ? CLOCK_MONOTONIC : CLOCK_REALTIME;
}

struct CondUnlock {
  green::detail::SpinLock* lock;
  pthread_mutex_t* m;
};

// A process-shared condvar may be signalled by another process, whose signal reaches only
// glibc's own waiters: a fiber waiting on it wakes every 1-16 ms (sync_table's poll back-off)
// and returns 0 -- a spurious wake-up, which POSIX allows and callers loop on.
bool cond_pshared(const pthread_cond_t* c, bool old_abi) {
  return !old_abi && (c->__data.__wrefs & 1) != 0;  // __PTHREAD_COND_SHARED_MASK
}

int cond_wait_fiber(pthread_cond_t* c, pthread_mutex_t* m, TimePoint deadline, bool poll) {
  if (owned_type(kind_of(m)) && fiber_owner(m) != me()) return EPERM;
  stat_add(&Stats::cond_waits);
  tcb::cancel_point();  // a cancellation point; the mutex is still held, as POSIX wants
  // Queue on the condvar first; the mutex is released only once park() made the waiter
  // visible to signalers (and the bucket lock is free again: the unlock may wake a mutex waiter
  // hashed to the same bucket).
  sync::WaitResult r = sync::wait_on(
      c, deadline, poll, nullptr, nullptr,
      [](void* p) { mutex_unlock_fiber(static_cast<pthread_mutex_t*>(p)); }, m);
  int lr = mutex_lock_fiber(m, kNoDeadline);
  if (lr != 0) return lr;
  // Cancelled while waiting: the cleanup handlers run with the mutex re-acquired (POSIX).
  if (r == sync::WaitResult::kInterrupted) tcb::cancel_point();
  return r == sync::WaitResult::kTimedOut ? ETIMEDOUT : 0;
}

int cond_wait_any(pthread_cond_t* c, pthread_mutex_t* m, const timespec* abs, clockid_t clock,
                  int (*real_wait)(pthread_cond_t*, pthread_mutex_t*),
                  int (*real_timed)(pthread_cond_t*, pthread_mutex_t*, const timespec*)) {
  Mode md = mode();
  if (md != Mode::kFiber || special(m)) {
    if (md == Mode::kThread) sync::mark_foreign(m);  // glibc relocks m without our hooks
    if (!abs) return real_wait(c, m);
    if (real_timed) return real_timed(c, m, abs);
    return real::pthread_cond_clockwait(c, m, clock, abs);
  }
  if (abs && !timespec_valid(abs)) return EINVAL;
  return cond_wait_fiber(c, m, abs ? deadline_from_abs(clock, *abs) : kNoDeadline,
                         cond_pshared(c, real_wait != real::pthread_cond_wait));
}

// --- rwlocks and semaphores -----------------------------------------------------------------

// glibc x86_64 pthread_rwlock_t: the shim keeps two things of its own in padding that glibc
// zeroes in pthread_rwlock_init and PTHREAD_RWLOCK_INITIALIZER and never reads:
//   __pad2             the fiber holding the write lock (glibc's __cur_writer is the worker's
//                      tid, shared by all its fibers), for EDEADLK on a re-lock;
//   __pad1[3..6]       the number of fibers waiting to write, which new fiber readers of a
//                      PTHREAD_RWLOCK_PREFER_WRITER_NONRECURSIVE_NP lock give way to.
static_assert(sizeof(pthread_rwlock_t) == 56, "glibc x86_64 pthread_rwlock_t layout expected");
static_assert(offsetof(pthread_rwlock_t, __data.__cur_writer) == 24, "glibc rwlock layout");
static_assert(offsetof(pthread_rwlock_t, __data.__shared) == 28, "glibc rwlock layout");
static_assert(offsetof(pthread_rwlock_t, __data.__pad1) == 33, "glibc rwlock layout");
static_assert(offsetof(pthread_rwlock_t, __data.__pad2) == 40, "glibc rwlock layout");
static_assert(offsetof(pthread_rwlock_t, __data.__flags) == 48, "glibc rwlock layout");

unsigned* rw_waiting_writers(pthread_rwlock_t* rw) {
  return reinterpret_cast<unsigned*>(reinterpret_cast<char*>(rw) + 36);  // 4-aligned
}
Task* rw_writer(const pthread_rwlock_t* rw) {
  return reinterpret_cast<Task*>(__atomic_load_n(&rw->__data.__pad2, __ATOMIC_RELAXED));
}
void set_rw_writer(pthread_rwlock_t* rw, Task* t) {
  __atomic_store_n(&rw->__data.__pad2, reinterpret_cast<unsigned long>(t), __ATOMIC_RELAXED);
}
bool rw_prefers_writer(const pthread_rwlock_t* rw) {
  return rw->__data.__flags == PTHREAD_RWLOCK_PREFER_WRITER_NONRECURSIVE_NP;
}
// The calling fiber holds the write lock: the shim's owner is this fiber and glibc's
// __cur_writer says a writer holds it. glibc's __cur_writer is the `tid` of the descriptor that
// locked it, which is not the kernel tid of the worker for the main fiber (its descriptor keeps
// the process's main tid wherever it runs), so it is only checked for non-zero.
bool rw_held_by_me(const pthread_rwlock_t* rw) {
  Task* t = me();
  return t && rw_writer(rw) == t &&
         __atomic_load_n(&rw->__data.__cur_writer, __ATOMIC_RELAXED) != 0;
}

int rw_try_read(void* p) {
  auto* rw = static_cast<pthread_rwlock_t*>(p);
  if (rw_prefers_writer(rw) && __atomic_load_n(rw_waiting_writers(rw), __ATOMIC_RELAXED) > 0)
    return EBUSY;  // a writer waits: new readers queue behind it, as glibc's own waiters do
  return real::pthread_rwlock_tryrdlock(rw);
}
int rw_try_write(void* p) {
  auto* rw = static_cast<pthread_rwlock_t*>(p);
  int r = real::pthread_rwlock_trywrlock(rw);
  if (r == 0 && me()) set_rw_writer(rw, me());
  return r;
}

// The fiber path of every blocking rwlock call, in glibc 2.36's order: the timeout's validity
// (even when the lock is free), EDEADLK, one attempt, then park.
int rw_lock_fiber(pthread_rwlock_t* rw, bool write, const timespec* abs, clockid_t clock) {
  if (abs && !timespec_valid(abs)) return EINVAL;
  if (rw_held_by_me(rw)) return EDEADLK;
  int (*fn)(void*) = write ? rw_try_write : rw_try_read;
  int r = fn(rw);
  if (r != EBUSY) return r;
  TimePoint deadline = abs ? deadline_from_abs(clock, *abs) : kNoDeadline;
  // Waiting writers are counted for every kind (cheap); only writer-preferring locks read it.
  if (write) __atomic_fetch_add(rw_waiting_writers(rw), 1, __ATOMIC_SEQ_CST);
  r = wait_until_free(rw, fn, rw, deadline, rw->__data.__shared != 0);
  if (write) {
    // seq_cst: readers that saw our count and parked must see it drop (they are woken below
    // or by our unlock).
    __atomic_fetch_sub(rw_waiting_writers(rw), 1, __ATOMIC_SEQ_CST);
    if (r != 0 && rw_prefers_writer(rw)) sync::wake_all(rw);  // readers held back by us
  }
  return r;
}

bool sem_shared(const sem_t* s) {
  // glibc's struct new_sem: uint64 data; int private. sem_init stores glibc's LLL_SHARED
  // there for a process-shared semaphore, which is 128 (the value is inverted on its way to
  // the futex call), and LLL_PRIVATE (0) for a private one.
  int priv;
  __builtin_memcpy(&priv, reinterpret_cast<const char*>(s) + 8, sizeof priv);
  return priv != 0;
}

int sem_try(void* p) {
  int saved = errno;
  int r = real::sem_trywait(static_cast<sem_t*>(p));
  int e = r == 0 ? 0 : errno;
  errno = saved;
  return e;  // 0 or EAGAIN (or EINVAL)
}

int sem_wait_fiber(sem_t* s, const timespec* abs, clockid_t clock) {
  ErrnoGuard g;
  int r = sem_try(s);
  if (r == EAGAIN) {
    if (abs && !timespec_valid(abs)) {
      errno = EINVAL;
      return -1;
    }
    r = wait_until_free(s, sem_try, s, abs ? deadline_from_abs(clock, *abs) : kNoDeadline,
                        sem_shared(s), true);
  }
  if (r != 0) {
    errno = r;
    return -1;
  }
  g.restore();
  return 0;
}

}  // namespace

// --- mutex ---------------------------------------------------------------------------------

GREEN_HOOK(pthread_mutex_lock) {
  if (mode() != Mode::kFiber || special(m)) return real::pthread_mutex_lock(m);
  return mutex_lock_fiber(m, kNoDeadline);
}

GREEN_HOOK(pthread_mutex_trylock) {
  if (mode() != Mode::kFiber || special(m)) return real::pthread_mutex_trylock(m);
  int kind = kind_of(m);
  if (owned_type(kind) && fiber_owner(m) == me())
    return (kind & 3) == PTHREAD_MUTEX_RECURSIVE ? real::pthread_mutex_trylock(m) : EBUSY;
  return mutex_attempt(m);
}

GREEN_HOOK(pthread_mutex_timedlock) {
  if (mode() != Mode::kFiber || special(m)) return real::pthread_mutex_timedlock(m, abs);
  int r = mutex_attempt(m);
  if (r != EBUSY) return r;
  if (!timespec_valid(abs)) return EINVAL;
  return mutex_lock_fiber(m, deadline_from_abs(CLOCK_REALTIME, *abs));
}

GREEN_HOOK(pthread_mutex_clocklock) {
  if (mode() != Mode::kFiber || special(m)) return real::pthread_mutex_clocklock(m, clock, abs);
  if (clock != CLOCK_REALTIME && clock != CLOCK_MONOTONIC) return EINVAL;
  int r = mutex_attempt(m);
  if (r != EBUSY) return r;
  if (!timespec_valid(abs)) return EINVAL;
  return mutex_lock_fiber(m, deadline_from_abs(clock, *abs));
}

GREEN_HOOK(pthread_mutex_unlock) {
  if (mode() == Mode::kFiber && !special(m)) return mutex_unlock_fiber(m);
  int r = real::pthread_mutex_unlock(m);
  if (r == 0) sync::wake_one(m);  // fibers may wait for it (cheap when none does)
  return r;
}

// --- condition variables (both ABIs) -------------------------------------------------------

GREEN_HOOK(pthread_cond_wait) {
  return cond_wait_any(c, m, nullptr, CLOCK_REALTIME, real::pthread_cond_wait,
                       real::pthread_cond_timedwait);
}
GREEN_HOOK(pthread_cond_timedwait) {
  return cond_wait_any(c, m, abs, cond_clock(c, false), real::pthread_cond_wait,
                       real::pthread_cond_timedwait);
}
GREEN_HOOK(pthread_cond_clockwait) {
  if (clock != CLOCK_REALTIME && clock != CLOCK_MONOTONIC) return EINVAL;
  return cond_wait_any(c, m, abs, clock, real::pthread_cond_wait, nullptr);
}
GREEN_HOOK(pthread_cond_signal) {
  sync::wake_one(c);
  return real::pthread_cond_signal(c);
}
GREEN_HOOK(pthread_cond_broadcast) {
  sync::wake_all(c);
  return real::pthread_cond_broadcast(c);
}

#ifdef GREEN_SHIM_PRELOAD
// The GLIBC_2.2.5 ABI (binaries linked before glibc 2.3.2): same scheme on the object address;
// the real calls are the compat versions.
GREEN_HOOK(pthread_cond_wait_225) {
  return cond_wait_any(c, m, nullptr, CLOCK_REALTIME, real::pthread_cond_wait_225,
                       real::pthread_cond_timedwait_225);
}
GREEN_HOOK(pthread_cond_timedwait_225) {
  return cond_wait_any(c, m, abs, CLOCK_REALTIME, real::pthread_cond_wait_225,
                       real::pthread_cond_timedwait_225);
}
GREEN_HOOK(pthread_cond_signal_225) {
  sync::wake_one(c);
  return real::pthread_cond_signal_225(c);
}
GREEN_HOOK(pthread_cond_broadcast_225) {
  sync::wake_all(c);
  return real::pthread_cond_broadcast_225(c);
}
#endif

// --- rwlocks --------------------------------------------------------------------------------

GREEN_HOOK(pthread_rwlock_rdlock) {
  if (mode() != Mode::kFiber) return real::pthread_rwlock_rdlock(rw);
  return rw_lock_fiber(rw, false, nullptr, CLOCK_REALTIME);
}
GREEN_HOOK(pthread_rwlock_wrlock) {
  if (mode() != Mode::kFiber) return real::pthread_rwlock_wrlock(rw);
  return rw_lock_fiber(rw, true, nullptr, CLOCK_REALTIME);
}
GREEN_HOOK(pthread_rwlock_tryrdlock) {
  if (mode() != Mode::kFiber) return real::pthread_rwlock_tryrdlock(rw);
  return rw_try_read(rw);
}
GREEN_HOOK(pthread_rwlock_trywrlock) {
  if (mode() != Mode::kFiber) return real::pthread_rwlock_trywrlock(rw);
  return rw_try_write(rw);
}
GREEN_HOOK(pthread_rwlock_timedrdlock) {
  if (mode() != Mode::kFiber) return real::pthread_rwlock_timedrdlock(rw, abs);
  return rw_lock_fiber(rw, false, abs, CLOCK_REALTIME);
}
GREEN_HOOK(pthread_rwlock_timedwrlock) {
  if (mode() != Mode::kFiber) return real::pthread_rwlock_timedwrlock(rw, abs);
  return rw_lock_fiber(rw, true, abs, CLOCK_REALTIME);
}
GREEN_HOOK(pthread_rwlock_clockrdlock) {
  if (mode() != Mode::kFiber) return real::pthread_rwlock_clockrdlock(rw, clock, abs);
  if (clock != CLOCK_REALTIME && clock != CLOCK_MONOTONIC) return EINVAL;
  return rw_lock_fiber(rw, false, abs, clock);
}
GREEN_HOOK(pthread_rwlock_clockwrlock) {
  if (mode() != Mode::kFiber) return real::pthread_rwlock_clockwrlock(rw, clock, abs);
  if (clock != CLOCK_REALTIME && clock != CLOCK_MONOTONIC) return EINVAL;
  return rw_lock_fiber(rw, true, abs, clock);
}
GREEN_HOOK(pthread_rwlock_unlock) {
  // The write owner is forgotten before the real unlock: the next writer records itself after.
  bool was_writer = mode() == Mode::kFiber && rw_held_by_me(rw);
  if (was_writer) {
    set_rw_writer(rw, nullptr);
    // glibc takes the writer's unlock path only if __cur_writer is the caller's tid, which is
    // its worker's: the fiber may have moved since it locked.
    __atomic_store_n(&rw->__data.__cur_writer, green::detail::descriptor_tid(), __ATOMIC_RELAXED);
  }
  int r = real::pthread_rwlock_unlock(rw);
  if (r == 0) {
    sync::wake_all(rw);
  } else if (was_writer) {
    set_rw_writer(rw, me());
  }
  return r;
}

// --- semaphores -----------------------------------------------------------------------------

GREEN_HOOK(sem_wait) {
  if (mode() != Mode::kFiber) return real::sem_wait(s);
  return sem_wait_fiber(s, nullptr, CLOCK_REALTIME);
}
GREEN_HOOK(sem_trywait) {
  return real::sem_trywait(s);
}
GREEN_HOOK(sem_timedwait) {
  if (mode() != Mode::kFiber) return real::sem_timedwait(s, abs);
  return sem_wait_fiber(s, abs, CLOCK_REALTIME);
}
GREEN_HOOK(sem_clockwait) {
  if (mode() != Mode::kFiber) return real::sem_clockwait(s, clock, abs);
  if (clock != CLOCK_REALTIME && clock != CLOCK_MONOTONIC) {
    errno = EINVAL;
    return -1;
  }
  return sem_wait_fiber(s, abs, clock);
}
GREEN_HOOK(sem_post) {
  int r = real::sem_post(s);
  if (r == 0) {
    int saved = errno;
    sync::wake_one(s);
    errno = saved;
  }
  return r;
}
