// Fiber-threads: what pthread_create makes on a fiber, and the per-thread state that
// pthread_self, pthread_join/detach/exit and thread keys need (hook_thread.cpp). With thread
// identities on (thread_tcb.hpp, the default where glibc's layout is known) a fiber-thread
// also has its own glibc descriptor and TLS, and its pthread_t is that descriptor.
//
// Owns: ShimThread objects. One per fiber created by pthread_create, one static for the
// program's main fiber, and one created lazily for any other fiber that asks for its identity
// (fibers spawned with green::spawn in link-time mode; those are never freed: documented).
// Task::shim_data_ of the fiber points at it while the fiber runs.
//
// Lifetime: a ShimThread is freed by whoever comes last of (the fiber finishing, pthread_join
// returning, pthread_detach), decided under ShimThread::lock. Its identity block (tp) outlives
// it until the fiber's context switched away for good (thread_tcb.hpp: two references).
//
// Interface for the other hook files: current_thread() (the calling fiber's) and thread_of()
// (a pthread_t's; nullptr for a real OS thread).
#pragma once

#include <pthread.h>

#include <cstddef>
#include <cstdint>

#include "common.hpp"
#include "green/detail/wait.hpp"
#include "signals.hpp"

namespace green::shim {

// Thrown by pthread_exit on a fiber-thread; caught where the fiber-thread started.
struct ThreadExit {};

struct KeyBlock;

struct ShimThread {
  static constexpr std::uint64_t kMagic = 0x6772656e74687264ull;  // "grenthrd"
  std::uint64_t magic = kMagic;
  void* (*start)(void*) = nullptr;
  void* arg = nullptr;
  void* result = nullptr;
  std::size_t stack_size = 0;
  detail::SpinLock lock;
  detail::WaitList joiners;  // guarded by lock
  bool done = false;         // guarded by lock
  bool detached = false;     // guarded by lock
  bool joining = false;      // guarded by lock
  bool adopted = false;      // not made by pthread_create: never freed
  char name[16] = {};
  KeyBlock* keys[32] = {};  // thread-specific values (shared-TLS mode), the thread's own
  char* tp = nullptr;       // own thread identity (thread_tcb.hpp): pthread_t == tp;
                            // nullptr: shares its worker's (pthread_t == this)
  int vtid = 0;             // what gettid() returns on it (0: the worker's tid)
  detail::Task* task = nullptr;  // its fiber while !done (guarded by lock): pthread_cancel
  signals::SigThread sig;        // mask, pending signals, registry link (signals.hpp)
};

// The calling fiber's ShimThread (created on demand). Must be called on a fiber.
ShimThread* current_thread() noexcept;
// The ShimThread of a fiber-thread's pthread_t (either kind), nullptr for a real OS thread.
ShimThread* thread_of(pthread_t t) noexcept;
// The fiber-thread whose gettid() is `tid` (still running), or nullptr.
ShimThread* thread_of_tid(int tid) noexcept;

// Marks the calling fiber as the program's main thread (preload start-up).
void adopt_main_thread() noexcept;
// Runs the calling thread's key destructors (POSIX: up to 4 rounds).
void run_key_destructors(ShimThread* t) noexcept;
// Blocks until every fiber-thread made by pthread_create has finished (main's pthread_exit).
void wait_all_threads() noexcept;

// GREEN_THREADS=os: pthread_create makes real OS threads.
extern bool g_threads_os;

}  // namespace green::shim
