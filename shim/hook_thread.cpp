// Hooks: pthread_create/join/tryjoin/timedjoin/detach/exit/self/equal, pthread_setname_np/
// getname_np/kill/cancel for fiber-thread ids (kill: routed by signals.cpp), gettid/tgkill/syscall
// (fiber-thread ids), pthread_once, pthread_key_create/delete/getspecific/setspecific.
//
// pthread_create on a fiber (GREEN_THREADS=fibers, the default) spawns a green fiber instead of
// an OS thread. With thread identities (thread_tcb.hpp; GREEN_THREAD_TLS=auto) the fiber gets
// a glibc descriptor + TLS of its own and the pthread_t it returns is that descriptor; the
// ShimThread is found from it by thread_of() (the descriptor's start_routine/arg). In shared
// mode the pthread_t is the address of the ShimThread (thread.hpp), told apart from real
// threads by the magic word at that address. The attribute's stack size, if the program set
// one, becomes the fiber's stack size (at least 64 KiB: the hooks themselves need some);
// detach state is honoured; other attributes (scheduling, affinity, a caller-provided stack)
// are ignored.
//
// Placement and migration: the runtime queues the new fiber on the creating worker; an idle
// worker may steal it before it starts. With an identity (the default) errno and every
// __thread address live in the fiber's own block, so once started it may still move to
// another worker when it is runnable (docs/design.md); in shared mode it never leaves its
// worker's OS thread, which is what keeps the addresses a compiler cached valid across a
// hooked call that parks (hazard H1).
//
// Exit and cancellation (own identity): the fiber starts in tcb::run_with_unwind_buf, the
// equivalent of glibc's start_thread buffer, so glibc's own pthread_exit and an acted-on
// cancellation unwind to it (cleanup handlers, C++ destructors). pthread_cancel marks
// glibc's bits and wakes the target; hooks that are cancellation points call
// tcb::cancel_point() after a wake-up (docs/shim.md lists them).
//
// gettid(): a distinct id per fiber-thread (the pid for the main fiber, kVtidBase + n for the
// others: above the kernel's PID_MAX_LIMIT, so never a task's), kept in a table for tgkill.
//
// Thread keys: the key numbers are glibc's own (pthread_key_create really creates the key, so
// OS threads use it through glibc unchanged); a fiber-thread with an identity keeps its values
// in its descriptor (glibc's get/setspecific), in shared mode in its ShimThread, validated
// against a per-key sequence number so a deleted-and-recreated key reads as NULL. Destructors
// run when the fiber-thread ends (pthread_exit, cancellation or return), up to
// PTHREAD_DESTRUCTOR_ITERATIONS rounds.
//
// pthread_once on a fiber: implemented on glibc's own once word (0 -> 1 in progress -> 2 done)
// so a fiber whose init routine parks does not block a second caller's worker in a futex wait;
// second callers park in the sync table and re-check (polling, since an OS thread finishing
// the routine wakes only futex waiters).
#include <linux/futex.h>
#include <pthread.h>
#include <signal.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cxxabi.h>

#include <atomic>
#include <cstring>
#include <exception>
#include <new>
#include <string>
#include <unordered_map>

#include "block.hpp"
#include "common.hpp"
#include "green/fiber.hpp"
#include "green/offload.hpp"
#include "sync_table.hpp"
#include "thread.hpp"
#include "thread_tcb.hpp"

namespace green::shim {

bool g_threads_os = false;

struct KeySlot {
  std::uint64_t seq;
  void* value;
};
struct KeyBlock {
  KeySlot slot[32];
};

namespace {

using detail::WakeReason;

constexpr unsigned kMaxKeys = 1024;  // == PTHREAD_KEYS_MAX
static_assert(kMaxKeys == PTHREAD_KEYS_MAX);

struct KeyInfo {
  std::atomic<std::uint64_t> seq{0};  // odd: in use
  std::atomic<void (*)(void*)> dtor{nullptr};
};
KeyInfo g_keys[kMaxKeys];

ShimThread g_main_thread;

detail::SpinLock g_live_lock;
long g_live = 0;              // fiber-threads made by pthread_create still running (g_live_lock)
detail::WaitList g_all_done;  // waiters for g_live == 0 (g_live_lock)

// gettid() of fiber-threads: ids above PID_MAX_LIMIT (2^22), so the kernel never takes one
// for a task (it answers ESRCH); tgkill/tkill with one are translated (thread_of_tid).
constexpr int kVtidBase = 0x40000000;
std::atomic<int> g_next_vtid{kVtidBase};
detail::SpinLock g_vtid_lock;
std::unordered_map<int, ShimThread*>* g_vtids = nullptr;  // running fiber-threads (g_vtid_lock)

void vtid_add(ShimThread* t) {
  t->vtid = g_next_vtid.fetch_add(1, std::memory_order_relaxed) + 1;
  g_vtid_lock.lock();
  if (!g_vtids) g_vtids = new std::unordered_map<int, ShimThread*>;
  (*g_vtids)[t->vtid] = t;
  g_vtid_lock.unlock();
}
void vtid_remove(ShimThread* t) {
  g_vtid_lock.lock();
  if (g_vtids) g_vtids->erase(t->vtid);
  g_vtid_lock.unlock();
}

void destroy(ShimThread* t) {
  if (t->adopted || t == &g_main_thread) return;
  t->magic = 0;
  for (KeyBlock* b : t->keys) delete b;
  if (t->tp) tcb::unref(t->tp);  // the pthread_t is dead: the identity may be reused
  delete t;
}

void finish(ShimThread* t, void* result) {
  vtid_remove(t);
  t->lock.lock();
  t->result = result;
  t->done = true;
  bool detached = t->detached;
  while (detail::Waiter* w = t->joiners.pop_front()) detail::wake(w, WakeReason::kNotified);
  t->lock.unlock();  // last touch unless detached: a joiner may free t from here on
  if (detached) destroy(t);
  g_live_lock.lock();
  if (--g_live == 0)
    while (detail::Waiter* w = g_all_done.pop_front()) detail::wake(w, WakeReason::kNotified);
  g_live_lock.unlock();
  stat_live(-1);
}

void* call_start(void* p) {
  auto* t = static_cast<ShimThread*>(p);
  try {
    detail::RuntimeExit program;  // the program's code: the worker may be handed off
    return t->start(t->arg);
  } catch (const ThreadExit&) {
    return t->result;
  } catch (abi::__forced_unwind&) {
    throw;  // glibc's pthread_exit/cancellation unwinding (own identity): never stopped here
  } catch (...) {
    std::terminate();  // what an exception escaping a real thread's start routine does
  }
}

void thread_body(ShimThread* t) {
  detail::Task* task = green::detail::current_task();
  task->shim_data_ = t;
  signals::thread_start(t);
  void* result = nullptr;
  if (t->tp) {
    tcb::on_start(t->tp);
    result = tcb::run_with_unwind_buf(t->tp, &call_start, t);
    // Runtime code again, however the start routine ended (glibc's exit/cancel unwinding
    // ends in a longjmp here).
    detail::thread_state().depth.store(1, std::memory_order_relaxed);
  } else {
    result = call_start(t);
  }
  run_key_destructors(t);
  signals::thread_exit(t);  // before the identity goes: no signal targets it now
  if (t->tp) tcb::on_exit(t->tp);
  task->shim_data_ = nullptr;
  finish(t, result);
}

// glibc's struct pthread_attr: the stack size field is 0 unless the program set one.
std::size_t attr_stack_size(const pthread_attr_t* attr) {
  if (!attr) return 0;
  std::size_t size = 0;
  std::memcpy(&size, reinterpret_cast<const char*>(attr) + 32, sizeof size);
  if (size == 0) return 0;
  return size < 65536 ? 65536 : size;
}

int create_fiber(pthread_t* out, const pthread_attr_t* attr, void* (*fn)(void*), void* arg) {
  auto* t = new (std::nothrow) ShimThread;
  if (!t) return EAGAIN;
  t->start = fn;
  t->arg = arg;
  t->stack_size = attr_stack_size(attr);
  int detach = PTHREAD_CREATE_JOINABLE;
  if (attr) pthread_attr_getdetachstate(attr, &detach);
  t->detached = detach == PTHREAD_CREATE_DETACHED;
  signals::inherit(t);  // POSIX: the new thread starts with its creator's signal mask
  g_live_lock.lock();
  ++g_live;
  g_live_lock.unlock();
  stat_add(&Stats::threads_created);
  stat_live(1);
  vtid_add(t);
  if (tcb::enabled()) {
    t->tp = tcb::create(t);
    if (!t->tp) {
      vtid_remove(t);
      g_live_lock.lock();
      --g_live;
      g_live_lock.unlock();
      stat_live(-1);
      t->magic = 0;
      delete t;
      return EAGAIN;
    }
  }
  // Before the fiber can run and detach itself.
  *out = t->tp ? reinterpret_cast<pthread_t>(t->tp) : reinterpret_cast<pthread_t>(t);
  try {
    auto body = [t] { thread_body(t); };
    auto* task = new detail::TaskImpl<void, decltype(body)>(std::move(body), 1);
    task->name_ = "pthread";
    task->stack_size_ = t->stack_size;
    task->tp_ = t->tp;
    task->shim_data_ = t;
    t->task = task;
    try {
      detail::submit(task);
    } catch (...) {
      task->unref();
      throw;
    }
  } catch (...) {
    vtid_remove(t);
    g_live_lock.lock();
    --g_live;
    g_live_lock.unlock();
    stat_live(-1);
    if (t->tp) {  // never ran: both references
      tcb::unref(t->tp);
      tcb::unref(t->tp);
    }
    t->magic = 0;
    delete t;
    return EAGAIN;
  }
  return 0;
}

int join_shim(ShimThread* t, void** ret, TimePoint deadline, bool try_only) {
  if (mode() == Mode::kFiber && t == current_thread()) return EDEADLK;
  ErrnoGuard g;
  struct Restore {
    ErrnoGuard& g;
    ~Restore() { g.restore(); }
  } restore{g};
  t->lock.lock();
  if (t->detached || t->joining) {
    t->lock.unlock();
    return EINVAL;
  }
  if (!t->done) {
    if (try_only) {
      t->lock.unlock();
      return EBUSY;
    }
    t->joining = true;
    while (!t->done) {
      detail::Waiter w;
      t->joiners.push_back(&w);
      WakeReason r = detail::park(w, deadline, detail::unlocker(t->lock));
      if (r == WakeReason::kCancelled && !try_only && deadline == kNoDeadline) {
        // pthread_join is a cancellation point (the timed and try forms are not).
        t->lock.lock();
        t->joiners.remove(&w);
        t->joining = false;
        t->lock.unlock();
        tcb::cancel_point();
        t->lock.lock();
        t->joining = true;
        continue;
      }
      t->lock.lock();
      t->joiners.remove(&w);
      if (r == WakeReason::kInterrupted) {  // a signal's handler runs; join never fails EINTR
        t->lock.unlock();
        signals::interrupted();
        t->lock.lock();
      }
      if (!t->done && r == WakeReason::kTimeout && deadline != kNoDeadline &&
          Clock::now() >= deadline) {
        t->joining = false;
        t->lock.unlock();
        return ETIMEDOUT;
      }
    }
  }
  void* result = t->result;
  t->lock.unlock();
  if (ret) *ret = result;
  destroy(t);
  return 0;
}

// Joins a real OS thread from a fiber without blocking the worker.
int join_real_offloaded(pthread_t th, void** ret) {
  struct Job {
    pthread_t th;
    void** ret;
    int r;
  } job{th, ret, 0};
  stat_add(&Stats::offloads);
  ErrnoGuard g;
  detail::offload_raw(
      [](void* p) {
        auto* j = static_cast<Job*>(p);
        j->r = real::pthread_join(j->th, j->ret);
      },
      &job);
  g.restore();
  return job.r;
}

KeySlot* key_slot(ShimThread* t, unsigned key, bool create) {
  KeyBlock*& b = t->keys[key / 32];
  if (!b) {
    if (!create) return nullptr;
    b = new (std::nothrow) KeyBlock{};
    if (!b) return nullptr;
  }
  return &b->slot[key % 32];
}

// glibc's syscall(): the raw call; -1 and errno for results in [-4095, -1] (raw_syscall.hpp).
using detail::raw_syscall;

void futex_wake_all(void* addr) {
  raw_syscall(SYS_futex, detail::sc_arg(addr), FUTEX_WAKE_PRIVATE, 0x7fffffff);
}

}  // namespace

ShimThread* thread_of(pthread_t pt) noexcept {
  auto* p = reinterpret_cast<ShimThread*>(pt);
  if (!p) return nullptr;
  if (p->magic == ShimThread::kMagic) return p;  // shared-TLS fiber-thread, adopted fiber
  return tcb::owner(pt);                         // own identity (reads the descriptor)
}

ShimThread* thread_of_tid(int tid) noexcept {
  if (tid < kVtidBase) return tid == g_main_thread.vtid && tid != 0 ? &g_main_thread : nullptr;
  g_vtid_lock.lock();
  ShimThread* t = nullptr;
  if (g_vtids) {
    auto it = g_vtids->find(tid);
    if (it != g_vtids->end()) t = it->second;
  }
  g_vtid_lock.unlock();
  return t;
}

ShimThread* current_thread() noexcept {
  detail::Task* task = green::detail::current_task();
  if (!task) return nullptr;
  if (!task->shim_data_) {
    auto* t = new (std::nothrow) ShimThread;
    if (!t) return &g_main_thread;  // out of memory: degrade to a shared identity
    t->adopted = true;
    t->detached = true;
    task->shim_data_ = t;
  }
  return static_cast<ShimThread*>(task->shim_data_);
}

void adopt_main_thread() noexcept {
  g_main_thread.detached = false;
  g_main_thread.vtid = getpid();
  green::detail::current_task()->shim_data_ = &g_main_thread;
  tcb::main_fiber_started(&g_main_thread);
  signals::enable_main(&g_main_thread);
}

void run_key_destructors(ShimThread* t) noexcept {
  if (t->tp) {  // own identity: the values are glibc's, in the descriptor
    for (int round = 0; round < PTHREAD_DESTRUCTOR_ITERATIONS; ++round) {
      bool any = false;
      for (unsigned k = 0; k < kMaxKeys; ++k) {
        if (!(g_keys[k].seq.load(std::memory_order_acquire) & 1)) continue;
        void* v = real::pthread_getspecific(k);
        if (!v) continue;
        real::pthread_setspecific(k, nullptr);
        // acquire: pairs with pthread_key_create's release store of the destructor.
        if (void (*dtor)(void*) = g_keys[k].dtor.load(std::memory_order_acquire)) {
          dtor(v);
          any = true;
        }
      }
      if (!any) break;
    }
    return;
  }
  for (int round = 0; round < PTHREAD_DESTRUCTOR_ITERATIONS; ++round) {
    bool any = false;
    for (unsigned k = 0; k < kMaxKeys; ++k) {
      KeySlot* s = key_slot(t, k, false);
      if (!s || !s->value) continue;
      // acquire (both): pair with pthread_key_create/_delete's release store and acq_rel bump;
      // a slot written under an older seq belongs to a deleted key and gets no destructor.
      void (*dtor)(void*) = g_keys[k].dtor.load(std::memory_order_acquire);
      bool live = s->seq == g_keys[k].seq.load(std::memory_order_acquire);
      void* v = s->value;
      s->value = nullptr;
      if (dtor && live) {
        dtor(v);
        any = true;
      }
    }
    if (!any) break;
  }
}

void wait_all_threads() noexcept {
  ErrnoGuard g;
  for (;;) {
    g_live_lock.lock();
    if (g_live == 0) {
      g_live_lock.unlock();
      g.restore();
      return;
    }
    detail::Waiter w;
    g_all_done.push_back(&w);
    WakeReason r = detail::park(w, kNoDeadline, detail::unlocker(g_live_lock));
    g_live_lock.lock();
    g_all_done.remove(&w);
    g_live_lock.unlock();
    if (r == WakeReason::kInterrupted) signals::interrupted();
  }
}

}  // namespace green::shim

using namespace green::shim;

GREEN_HOOK(pthread_create) {
  if (mode() != Mode::kFiber || g_threads_os) return real::pthread_create(out, attr, fn, arg);
  return create_fiber(out, attr, fn, arg);
}

GREEN_HOOK(pthread_join) {
  if (ShimThread* t = thread_of(th)) return join_shim(t, ret, kNoDeadline, false);
  if (mode() == Mode::kFiber) return join_real_offloaded(th, ret);
  return real::pthread_join(th, ret);
}

GREEN_HOOK(pthread_tryjoin_np) {
  if (ShimThread* t = thread_of(th)) return join_shim(t, ret, kNoDeadline, true);
  return real::pthread_tryjoin_np(th, ret);
}

GREEN_HOOK(pthread_timedjoin_np) {
  ShimThread* t = thread_of(th);
  if (!t) return real::pthread_timedjoin_np(th, ret, abs);
  if (abs && !timespec_valid(abs)) return EINVAL;
  return join_shim(t, ret, abs ? deadline_from_abs(CLOCK_REALTIME, *abs) : kNoDeadline, false);
}

GREEN_HOOK(pthread_detach) {
  ShimThread* t = thread_of(th);
  if (!t) return real::pthread_detach(th);
  t->lock.lock();
  if (t->detached) {
    t->lock.unlock();
    return EINVAL;
  }
  bool done = t->done;
  t->detached = true;
  t->lock.unlock();
  if (done) destroy(t);
  return 0;
}

GREEN_HOOK(pthread_exit) {
  if (mode() == Mode::kFiber) {
    ShimThread* t = current_thread();
    // Own identity: glibc's pthread_exit (cleanup handlers, C++ unwinding) lands in
    // tcb::run_with_unwind_buf.
    if (t->tp) real::pthread_exit(value);
    t->result = value;
    throw ThreadExit{};
  }
  real::pthread_exit(value);
  __builtin_unreachable();
}

GREEN_HOOK(pthread_self) {
  // In a handler the shim runs in signal context on a fiber (signals.hpp) hooks are raw, but
  // the handler is still on its fiber-thread.
  if (mode() != Mode::kFiber && !signals::in_direct_handler()) return real::pthread_self();
  if (green::detail::current_task()->tp_) return real::pthread_self();  // own identity: its TP
  return reinterpret_cast<pthread_t>(current_thread());
}

GREEN_HOOK(pthread_equal) {
  return a == b;
}

GREEN_HOOK(pthread_setname_np) {
  ShimThread* t = thread_of(th);
  if (!t) return real::pthread_setname_np(th, name);
  if (std::strlen(name) > 15) return ERANGE;
  std::strncpy(t->name, name, 15);
  return 0;
}

GREEN_HOOK(pthread_getname_np) {
  ShimThread* t = thread_of(th);
  if (!t) return real::pthread_getname_np(th, buf, len);
  const char* n = t->name;
  if (std::strlen(n) + 1 > len) return ERANGE;
  std::strcpy(buf, n);
  return 0;
}

// Deferred cancellation of a fiber-thread with its own identity: glibc's own bits in its
// descriptor (so pthread_setcancelstate/type and pthread_testcancel work unhooked), no
// SIGCANCEL (it would hit whichever fiber its worker runs); a parked target is woken through
// its fiber (Task::cancel), and the hook it is parked in acts at its cancellation point
// (tcb::cancel_point). Asynchronous cancellation of another fiber-thread acts at its next
// cancellation point or hooked blocking call, as the deferred kind does.
GREEN_HOOK(pthread_cancel) {
  ShimThread* t = thread_of(th);
  if (!t) return real::pthread_cancel(th);
  if (!t->tp) return ENOTSUP;  // shared mode, the main fiber: not supported (docs/shim.md)
  if (!tcb::mark_cancel(t->tp)) return 0;
  t->lock.lock();
  if (!t->done) t->task->cancel();  // the task lives until finish() set done (under lock)
  t->lock.unlock();
  return 0;
}

GREEN_HOOK(pthread_kill) {
  ShimThread* t = thread_of(th);
  if (!t) return real::pthread_kill(th, sig);
  if (sig < 0 || sig >= _NSIG) return EINVAL;
  return signals::send_to(t, sig);  // pending on t (signals.hpp); signal-safe
}

// gettid() on a fiber-thread: its own id (the main fiber: the pid; others: kVtidBase + n,
// never a kernel task id); library fibers and OS threads: the kernel's.
GREEN_HOOK(gettid) {
  if (mode() == Mode::kFiber) {
    auto* t = static_cast<ShimThread*>(green::detail::current_task()->shim_data_);
    if (t && t->vtid) return t->vtid;
  }
  return pid_t(raw_syscall(SYS_gettid, 0, 0, 0, 0, 0, 0));
}

// tgkill to a fiber-thread's id: what pthread_kill does for it; an unknown id of that range
// is ESRCH, as for an exited thread.
GREEN_HOOK(tgkill) {
  // The main fiber's id is the pid: with signals managed (signals.hpp) it names the main
  // fiber-thread, not the process's first OS thread.
  if (tid >= kVtidBase || (tid == g_main_thread.vtid && tid != 0 && signals::active())) {
    ShimThread* t = thread_of_tid(tid);
    if (!t || tgid != getpid()) {
      errno = ESRCH;
      return -1;
    }
    int r = green_hook_pthread_kill(
        t->tp ? reinterpret_cast<pthread_t>(t->tp) : reinterpret_cast<pthread_t>(t), sig);
    if (r != 0) {
      errno = r;
      return -1;
    }
    return 0;
  }
  return int(raw_syscall(SYS_tgkill, tgid, tid, sig, 0, 0, 0));
}

// syscall(2): SYS_gettid, SYS_tgkill and SYS_tkill get the treatment above, SYS_futex that of
// hook_block.cpp; everything else is the raw system call, exactly as glibc's syscall() does it.
GREEN_HOOK(syscall) {
  if (n == SYS_futex) return block_futex(a1, a2, a3, a4, a5, a6);
  if (n == SYS_gettid) return green_hook_gettid();
  if (n == SYS_tgkill) return green_hook_tgkill(pid_t(a1), pid_t(a2), int(a3));
  if (n == SYS_tkill) return green_hook_tgkill(getpid(), pid_t(a1), int(a2));
  // A call the shim does not know may block for good (a read on a pipe, a wait in a driver):
  // the worker may be handed off meanwhile (runtime/src/machine.hpp), as Go's entersyscall.
  green::detail::RuntimeExit blocking;
  return raw_syscall(n, a1, a2, a3, a4, a5, a6);
}

GREEN_HOOK(pthread_once) {
  if (mode() != Mode::kFiber) return real::pthread_once(once, init);
  auto* word = reinterpret_cast<std::atomic<int>*>(once);
  for (;;) {
    // acquire: pairs with the initializer's release store of 2 (its init() writes are visible).
    int v = word->load(std::memory_order_acquire);
    if (v & 2) return 0;  // __PTHREAD_ONCE_DONE
    if (v == 0) {
      if (!word->compare_exchange_strong(v, 1, std::memory_order_acquire)) continue;
      init();
      word->store(2, std::memory_order_release);  // pairs with the acquire loads above
      futex_wake_all(once);                       // OS threads waiting in glibc's once
      sync::wake_all(once);
      return 0;
    }
    sync::wait_on(
        once, kNoDeadline, true,
        [](void* p) { return (static_cast<std::atomic<int>*>(p)->load() & 2) != 0; }, word);
  }
}

GREEN_HOOK(pthread_key_create) {
  int r = real::pthread_key_create(key, dtor);
  if (r == 0 && *key < kMaxKeys) {
    // release, then acq_rel seq bump: a thread that sees the odd seq (acquire) sees the dtor.
    g_keys[*key].dtor.store(dtor, std::memory_order_release);
    g_keys[*key].seq.fetch_add(1, std::memory_order_acq_rel);  // now odd: in use
  }
  return r;
}

GREEN_HOOK(pthread_key_delete) {
  int r = real::pthread_key_delete(key);
  if (r == 0 && key < kMaxKeys) {
    // release, then the acq_rel seq bump: slots of the old seq read as empty (getspecific).
    g_keys[key].dtor.store(nullptr, std::memory_order_release);
    g_keys[key].seq.fetch_add(1, std::memory_order_acq_rel);  // now even: free
  }
  return r;
}

GREEN_HOOK(pthread_getspecific) {
  if (mode() != Mode::kFiber || green::detail::current_task()->tp_)
    return real::pthread_getspecific(key);
  if (key >= kMaxKeys) return nullptr;
  KeySlot* s = key_slot(current_thread(), key, false);
  // acquire: pairs with pthread_key_create/_delete's acq_rel seq bump.
  if (!s || s->seq != g_keys[key].seq.load(std::memory_order_acquire)) return nullptr;
  return s->value;
}

GREEN_HOOK(pthread_setspecific) {
  if (mode() != Mode::kFiber || green::detail::current_task()->tp_)
    return real::pthread_setspecific(key, value);
  if (key >= kMaxKeys) return EINVAL;
  KeySlot* s = key_slot(current_thread(), key, true);
  if (!s) return ENOMEM;
  // A key created behind the shim's back (seq even) is accepted too: glibc validated it.
  s->seq = g_keys[key].seq.load(std::memory_order_acquire);
  s->value = const_cast<void*>(value);
  return 0;
}
