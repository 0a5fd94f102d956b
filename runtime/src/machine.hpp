// Machines: the OS threads that run workers, and the hand-off of a worker from a thread stuck
// in one fiber to a spare thread (Go's M, P and handoffp).
//
// A Worker (the P: loop, queues, poller, stacks, timers) is run by one Machine at a time (the
// M: an OS thread, its kernel tid, its own glibc descriptor, the stack its scheduler context
// runs on). Each worker starts on a machine of its own (worker 0 on the thread that called
// green::run). When a fiber-thread -- a fiber with a thread identity of its own, so it may
// continue on any OS thread -- runs the program's code for too long without entering the
// runtime (a loop with no interposed call, a system call the shim does not intercept), the
// monitor hands its worker to a spare machine, which runs every other fiber of that worker,
// its timers and fd waits; the stuck fiber goes on running on its own OS thread, now without
// a worker, until it next enters the runtime (any hook: RuntimeEntry). There it *reattaches*:
// it switches back to its machine's scheduler stack, which queues it on a worker's ready
// queue and becomes a spare itself.
//
// The protocol (all on the monitor thread unless said otherwise):
//   1. check_slices sees worker W busy in one fiber for 2 slices (dispatches_ unchanged), with
//      other work waiting (hint: has_waiting_work). It sets W's machine M1's `request_` from
//      kNone to kAsked (with the dispatch count it saw) and sends SIGURG to M1's tid.
//   2. On M1, the shim's SIGURG handler calls handoff_signal(): the request is taken only if
//      M1 runs the same fiber, that fiber runs the program's code (ThreadState::depth == 0: no
//      runtime state of W is in flux on M1), may move (migratable, unpinned, no timer), and W
//      has no started library fiber (those run with the machine's own thread pointer). Then,
//      in the handler: M1 saves its scheduler context's fcontext (W->sched_'s, suspended in
//      W's loop) and the fiber, marks the fiber's ThreadState `detached`, clears the fiber's
//      copy of Worker::tls_current_, W->m_ = nullptr, and stores kReleased (release). Any
//      other case stores kRefused. The handler runs on M1 itself, so no other thread ever
//      races with M1's runtime code: that is why the decision is made there.
//   3. The monitor sees kReleased (acquire) and gives W to a spare machine M2 (started if
//      fewer than Options::max_threads machines exist). M2 binds W (Worker::run_on: tid,
//      thread pointers, the scheduler context now on M2's stack) and runs its loop.
//   4. The detached fiber F's next RuntimeEntry (or the end of a RuntimeExit) calls reattach():
//      F jumps to M1's saved scheduler context. That context resumes inside W's run_loop,
//      sees W->m_ != M1, and returns to Machines::run_machine, which queues F on W's shared
//      ready queue (F's switch-away is complete by then) and makes M1 a spare.
// A spare waits on a futex for a worker; one started by the monitor retires after kSpareIdle
// without work. At stop every spare is woken and returns; a machine still detached in a
// fiber then is left alone (a thread that never enters the runtime again is killed by the
// process's exit, as a real thread is), and one that reattaches after stop freezes.
//
// Threads: Machine fields are written by the machine's own thread except `request_` (the
// monitor and M1's handler, a CAS state machine), `assigned_`/`wake_` (the monitor, then the
// spare) and `state_` (its thread; read by the runtime at stop). The spare list is under
// lock_ (a leaf SpinLock).
#pragma once

#include <boost/context/detail/fcontext.hpp>

#include <atomic>
#include <cstdint>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "green/detail/wait.hpp"
#include "spin.hpp"

namespace green::detail {

class Context;
class Runtime;
class Worker;

class Machine {
 public:
  enum State : int { kRunning, kDetached, kSpare, kFrozen, kExited };
  enum Request : int { kNone, kAsked, kReleased, kRefused };

  Runtime* rt = nullptr;
  long tid = 0;
  char* own_tp = nullptr;    // the OS thread's own glibc descriptor
  char* sched_tp = nullptr;  // what its scheduler context runs with (worker 0's: its own)
  bool dynamic = false;      // started by the monitor (retires when idle)
  bool altstack = false;     // the overflow handler's alternate stack is installed
  std::atomic<int> state{kRunning};
  // Hand-off request (see the protocol above). CAS kNone -> kAsked by the monitor (relaxed:
  // the tgkill that follows orders it), kAsked -> kReleased/kRefused by the handler (release:
  // publishes everything M1 wrote to the worker), read by the monitor (acquire).
  std::atomic<int> request{kNone};
  std::uint64_t request_dispatch = 0;  // dispatches_ the monitor saw (written before kAsked)
  Worker* request_worker = nullptr;    // the worker asked about
  std::int64_t request_ns = 0;         // when (monitor thread only: re-send, withdraw)
  // Saved by the handler at hand-off, used by reattach on the same thread.
  boost::context::detail::fcontext_t native = nullptr;
  Context* fiber = nullptr;       // the detached fiber
  Context* reattached = nullptr;  // set by reattach() just before it jumps to `native`
  // A spare's assignment: release store by the monitor, acquire load by the spare; `wake`
  // is the futex word the spare sleeps on.
  std::atomic<Worker*> assigned{nullptr};
  std::atomic<std::uint32_t> wake{0};
  Machine* next_spare = nullptr;  // Machines::spares_ (under its lock)
};

class Machines {
 public:
  explicit Machines(Runtime* rt) noexcept;
  Machines(const Machines&) = delete;
  Machines& operator=(const Machines&) = delete;

  // True when enable_handoff was called and Options allow more machines than workers.
  bool enabled() const noexcept;

  // A record for a worker's original thread, made before the thread starts (Runtime::run);
  // the thread fills in its tid and thread pointers (Worker::run).
  Machine* create();
  // Runs workers on machine m, starting with `w`, until the runtime stops (the body of every
  // machine's thread). A worker taken away makes m a spare.
  void run_machine(Machine* m, Worker* w);

  // Monitor thread: worker w has run one fiber (dispatch count d) for 2 slices.
  void consider(Worker* w, std::uint64_t d) noexcept;
  // Monitor thread, every check: finishes the requests answered since.
  void poll(bool final = false) noexcept;
  // For the blocked-worker report: the hand-off state of w, or "" when hand-off is off.
  std::string describe(Worker* w) const;
  // The machine of the thread that called green::run (Runtime::run).
  void set_initial(Machine* m) noexcept { initial_ = m; }
  // Machines detached in a fiber (the deadlock check counts them as running).
  int detached() const noexcept { return ndetached_.load(std::memory_order_relaxed); }

  // Runtime::stop: wakes every spare (they return from run_machine).
  void stop() noexcept;
  // Monitor thread, once its loop ended (stopping): answers or withdraws the pending
  // requests and gives every released worker a machine (each worker runs its own teardown).
  void finish() noexcept;
  // Runtime::run, after its own machine returned: waits until every other machine has
  // either exited or stays detached in a fiber. Joins the workers' original threads
  // (originals[i] started on original_ms[i]) that exited, detaches the others.
  void wait_all(std::vector<std::thread>& originals, std::vector<Machine*> original_ms);
  // Worker::run_loop's teardown barrier also waits for this (reattaches in progress).
  static bool reattaching() noexcept;

 private:
  Worker* wait_for_worker(Machine* m);
  void give(Worker* w) noexcept;
  void start_spare(Worker* w) noexcept;
  void requeue(Machine* m) noexcept;

  static constexpr int kSpareIdleMs = 10'000;

  Runtime* const rt_;
  Machine* initial_ = nullptr;  // set before any machine thread starts
  SpinLock lock_;               // leaf
  Machine* spares_ GREEN_GUARDED_BY(lock_) = nullptr;
  std::vector<std::unique_ptr<Machine>> all_ GREEN_GUARDED_BY(lock_);
  std::atomic<int> nmachines_{0};  // machines alive (running, spare or detached)
  std::atomic<int> nlive_{0};      // machines that are not detached, frozen or exited
  std::atomic<int> ndetached_{0};
  // Monitor thread only:
  std::vector<Machine*> pending_;  // asked, not yet answered
  std::vector<Worker*> orphans_;   // released, no thread could be started for them
  bool limit_reported_ = false;

  friend bool handoff_signal(int, int) noexcept;
};

}  // namespace green::detail
