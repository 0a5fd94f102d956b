// Machines and worker hand-off (design note in machine.hpp).
#include "machine.hpp"

#include <linux/futex.h>
#include <signal.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include <cstdio>
#include <string>

#include "context.hpp"
#include "task_state.hpp"
#include "green/detail/hooks.hpp"
#include "green/detail/raw_syscall.hpp"
#include "runtime.hpp"
#include "thread_pointer.hpp"
#include "tls.hpp"
#include "worker.hpp"

namespace green::detail {

namespace {

constexpr std::int64_t kResendNs = 50'000'000;     // an unanswered request is signalled again
constexpr std::int64_t kWithdrawNs = 500'000'000;  // ... and withdrawn after this long

std::int64_t now_ns() noexcept {
  timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return std::int64_t(ts.tv_sec) * 1'000'000'000 + ts.tv_nsec;
}

void (*g_initial_stuck_exit)() = nullptr;  // set_initial_stuck_exit (the shim's, at start-up)
int g_signo = 0;                           // the request signal (enable_handoff); 0: hand-off off
pid_t g_pid = 0;                           // this process (the handler checks si_pid)

// Reattach against stop: a reattaching fiber increments g_reattaching, then reads g_stopped;
// stop() stores g_stopped, then the teardown barrier and wait_all wait for g_reattaching == 0
// (all seq_cst: the two halves of a Dekker pair). A fiber that sees g_stopped never touches
// the runtime again (it may already be gone): it freezes.
std::atomic<int> g_reattaching{0};
std::atomic<bool> g_stopped{false};
std::atomic<std::uint32_t> g_frozen{0};  // never changes: frozen fibers wait on it forever

long futex(std::atomic<std::uint32_t>* w, int op, std::uint32_t v, const timespec* ts) noexcept {
  return raw_syscall_ret(SYS_futex, sc_arg(w), op, v, sc_arg(ts), 0, 0);
}

[[noreturn]] void freeze() noexcept {
  for (;;) futex(&g_frozen, FUTEX_WAIT_PRIVATE, 0, nullptr);
}

}  // namespace

void set_initial_stuck_exit(void (*fn)()) noexcept {
  g_initial_stuck_exit = fn;
}

void enable_handoff(int signo) noexcept {
  g_signo = signo;
  g_pid = getpid();
}

bool Machines::enabled() const noexcept {
  return g_signo != 0 && g_tp.write != TpWrite::kOff && rt_->options().slice_ms > 0 &&
         rt_->options().max_threads > rt_->worker_count();
}

bool Machines::reattaching() noexcept {
  return g_reattaching.load(std::memory_order_seq_cst) != 0;  // the Dekker read (g_stopped)
}

Machines::Machines(Runtime* rt) noexcept : rt_(rt) {
  g_stopped.store(false, std::memory_order_seq_cst);  // a new runtime (one per process in the shim)
}

Machine* Machines::create() {
  auto m = std::make_unique<Machine>();
  m->rt = rt_;
  Machine* raw = m.get();
  {
    SpinGuard lk(lock_);
    all_.push_back(std::move(m));
  }
  nmachines_.fetch_add(1, std::memory_order_relaxed);
  nlive_.fetch_add(1, std::memory_order_seq_cst);  // wait_all reads it
  return raw;
}

// --- the machine's thread ------------------------------------------------------------------

void Machines::run_machine(Machine* m, Worker* w) {
  if (g_signo) {
    // The request signal must reach this thread whatever mask it inherited (the program's
    // masks are per fiber-thread and kept by the shim, not in the kernel).
    std::uint64_t bit = 1ull << (g_signo - 1);
    raw_syscall_ret(SYS_rt_sigprocmask, SIG_UNBLOCK, sc_arg(&bit), 0, 8);
  }
  while (w) {
    m->state.store(Machine::kRunning, std::memory_order_relaxed);
    if (!w->run_on(m)) break;  // the runtime stopped: w is torn down
    requeue(m);                // w went to another machine; its fiber came back
    w = wait_for_worker(m);
  }
  nmachines_.fetch_sub(1, std::memory_order_relaxed);
  m->state.store(Machine::kExited, std::memory_order_release);  // wait_all may join now
  // seq_cst: as every nlive_ change (wait_all reads it).
  bool last = nlive_.fetch_sub(1, std::memory_order_seq_cst) == 1;
  if (last && m != initial_ && initial_ && g_initial_stuck_exit) {
    // Every worker is torn down, and the thread that called green::run -- whose stack holds
    // Runtime::run and, under the shim, glibc's call of main -- runs a detached fiber that
    // never entered the runtime again (a thread spinning forever when main returned). Nobody
    // can return from there: exit the process from here, as that return would have.
    int s = initial_->state.load(std::memory_order_acquire);  // pairs with the state stores
    if (s == Machine::kDetached || s == Machine::kFrozen) g_initial_stuck_exit();
  }
}

// On m's scheduler stack, right after its detached fiber jumped back (reattach): the fiber's
// switch-away is complete (finish_switch ran here), so it may go on a ready queue.
void Machines::requeue(Machine* m) noexcept {
  Context* f = m->reattached;
  m->reattached = nullptr;
  Worker::forget_current_thread();  // this thread's scheduler TLS: no worker now
  tls().task = nullptr;
  tls().worker = -1;
  Worker* home = f->worker();
  f->state_ = Context::State::kReady;
  home->push_shared(f);  // seq_cst increment: the waker half of the sleep/wake Dekker
  home->notify();
  rt_->wake_one(home);
  ndetached_.fetch_sub(1, std::memory_order_relaxed);
  nlive_.fetch_add(1, std::memory_order_seq_cst);
  g_reattaching.fetch_sub(1, std::memory_order_seq_cst);  // see g_stopped
}

Worker* Machines::wait_for_worker(Machine* m) {
  m->state.store(Machine::kSpare, std::memory_order_relaxed);
  {
    SpinGuard lk(lock_);
    if (g_stopped.load(std::memory_order_seq_cst)) return nullptr;  // stop() stored it first
    m->next_spare = spares_;
    spares_ = m;
  }
  for (;;) {
    std::uint32_t seen = m->wake.load(std::memory_order_acquire);  // before the re-check below
    // Acquire: pairs with give()'s release store; the worker's state is visible.
    if (Worker* w = m->assigned.exchange(nullptr, std::memory_order_acquire)) return w;
    if (g_stopped.load(std::memory_order_seq_cst)) {
      SpinGuard lk(lock_);
      for (Machine** p = &spares_; *p; p = &(*p)->next_spare) {
        if (*p == m) {
          *p = m->next_spare;
          break;
        }
      }
      return m->assigned.exchange(nullptr, std::memory_order_acquire);  // a last assignment
    }
    timespec idle{kSpareIdleMs / 1000, 0};
    long r = futex(&m->wake, FUTEX_WAIT_PRIVATE, seen, m->dynamic ? &idle : nullptr);
    if (r == -ETIMEDOUT && m->dynamic) {
      SpinGuard lk(lock_);
      for (Machine** p = &spares_; *p; p = &(*p)->next_spare) {
        if (*p == m) {  // still listed: nobody is giving it a worker; retire
          *p = m->next_spare;
          return nullptr;
        }
      }
      // Taken by give() meanwhile: its assignment is on the way.
    }
  }
}

// --- hand-off: the monitor's side -------------------------------------------------------------

void Machines::consider(Worker* w, std::uint64_t d) noexcept {
  if (!enabled()) return;
  Machine* m = w->m_.load(std::memory_order_acquire);  // pairs with run_on's release
  if (!m || m->request.load(std::memory_order_relaxed) != Machine::kNone) return;
  // Nothing else of w's would run: nobody waits for it -- but at stop the stop does (the
  // teardown barrier; Monitor::hand_off_at_stop).
  if (!rt_->stopping() && !w->has_waiting_work()) return;
  bool spare;
  {
    SpinGuard lk(lock_);
    spare = spares_ != nullptr;
  }
  if (!spare && nmachines_.load(std::memory_order_relaxed) >= int(rt_->options().max_threads)) {
    if (!limit_reported_) {
      limit_reported_ = true;
      std::fprintf(stderr,
                   "green: worker %d has run one fiber for %ld ms and GREEN_MAX_THREADS=%zu OS "
                   "threads already run fibers: its other fibers wait for it\n",
                   w->index(), 2 * rt_->options().slice_ms, rt_->options().max_threads);
      std::fflush(stderr);
    }
    return;
  }
  m->request_dispatch = d;
  m->request_worker = w;
  m->request_ns = now_ns();
  // Release: request_dispatch/request_worker are read by the handler after its acquire load.
  m->request.store(Machine::kAsked, std::memory_order_release);
  raw_syscall_ret(SYS_tgkill, g_pid, m->tid, g_signo);
  pending_.push_back(m);
}

std::string Machines::describe(Worker* w) const {
  if (!enabled()) return "";
  Machine* m = w->m_.load(std::memory_order_acquire);  // pairs with run_on's release
  if (!m) return " (hand-off: the worker is between OS threads)";
  static const char* const kNames[] = {"none", "asked", "released", "refused"};
  int r = m->request.load(std::memory_order_relaxed);
  return std::string(" (hand-off: request ") + kNames[r & 3] + ", " +
         std::to_string(nmachines_.load(std::memory_order_relaxed)) + " OS threads run fibers, " +
         std::to_string(ndetached_.load(std::memory_order_relaxed)) + " detached)";
}

void Machines::poll(bool final) noexcept {
  if (!orphans_.empty()) {
    std::vector<Worker*> retry;
    retry.swap(orphans_);
    for (Worker* w : retry) give(w);
  }
  for (std::size_t i = 0; i < pending_.size();) {
    Machine* m = pending_[i];
    // Acquire: pairs with the handler's release store (everything m wrote to the worker).
    int r = m->request.load(std::memory_order_acquire);
    if (r == Machine::kAsked) {
      std::int64_t age = now_ns() - m->request_ns;
      if (!final && age < kWithdrawNs) {
        // Not answered yet: the thread may not have been scheduled. A signal is never lost,
        // but a second one costs nothing (the handler answers only once).
        if (age > kResendNs) raw_syscall_ret(SYS_tgkill, g_pid, m->tid, g_signo);
        ++i;
        continue;
      }
      // Unanswered for too long, or the monitor's last look (finish): withdraw it (a handler
      // that runs later sees kNone and leaves the signal to the program); the next check may
      // ask again. At stop the requests stay until then: the stop waits for their answers
      // (Monitor::hand_off_at_stop).
      int expect = Machine::kAsked;
      if (m->request.compare_exchange_strong(expect, Machine::kNone, std::memory_order_acq_rel)) {
        pending_.erase(pending_.begin() + long(i));
        continue;
      }
      r = expect;
    }
    Worker* w = m->request_worker;
    m->request.store(Machine::kNone, std::memory_order_relaxed);
    pending_.erase(pending_.begin() + long(i));
    if (r == Machine::kReleased) give(w);
  }
}

void Machines::give(Worker* w) noexcept {
  Machine* m;
  {
    SpinGuard lk(lock_);
    m = spares_;
    if (m) spares_ = m->next_spare;
  }
  if (!m) {
    start_spare(w);
    return;
  }
  m->assigned.store(w, std::memory_order_release);  // pairs with wait_for_worker's acquire
  m->wake.fetch_add(1, std::memory_order_release);
  futex(&m->wake, FUTEX_WAKE_PRIVATE, 1, nullptr);
}

void Machines::start_spare(Worker* w) noexcept {
  auto rec = std::make_unique<Machine>();
  Machine* m = rec.get();
  m->rt = rt_;
  m->dynamic = true;
  {
    SpinGuard lk(lock_);
    all_.push_back(std::move(rec));
  }
  nmachines_.fetch_add(1, std::memory_order_relaxed);
  nlive_.fetch_add(1, std::memory_order_seq_cst);  // before the thread exists (wait_all)
  try {
    std::thread([this, m, w] {
      m->tid = raw_gettid();
      m->own_tp = read_tp();
      m->sched_tp = m->own_tp;
      run_machine(m, w);
    }).detach();
  } catch (...) {
    // No thread: the worker stays without a machine. Give it to the next spare instead.
    nmachines_.fetch_sub(1, std::memory_order_relaxed);
    nlive_.fetch_sub(1, std::memory_order_seq_cst);
    std::fprintf(stderr, "green: cannot start a spare OS thread for worker %d\n", w->index());
    orphans_.push_back(w);
  }
}

// --- stop --------------------------------------------------------------------------------------

void Machines::stop() noexcept {
  g_stopped.store(true, std::memory_order_seq_cst);  // see g_reattaching
  SpinGuard lk(lock_);
  for (Machine* m = spares_; m; m = m->next_spare) {
    m->wake.fetch_add(1, std::memory_order_release);
    futex(&m->wake, FUTEX_WAKE_PRIVATE, 1, nullptr);
  }
}

void Machines::finish() noexcept {
  // Monitor thread, after its loop: every request answered or withdrawn, every released
  // worker given a machine (it must run its own teardown).
  for (int spins = 0; !pending_.empty() && spins < 1000; ++spins) {
    poll(spins == 999);
    if (!pending_.empty()) os_yield();
  }
  poll(true);
  for (int tries = 0; !orphans_.empty() && tries < 100; ++tries) {
    std::vector<Worker*> retry;
    retry.swap(orphans_);
    for (Worker* w : retry) give(w);
    if (!orphans_.empty()) os_yield();
  }
}

void Machines::wait_all(std::vector<std::thread>& originals, std::vector<Machine*> original_ms) {
  // Every machine that runs a worker or waits as a spare leaves at stop; detached ones stay.
  while (nlive_.load(std::memory_order_seq_cst) != 0 ||
         g_reattaching.load(std::memory_order_seq_cst) != 0)
    os_yield();
  for (std::size_t i = 0; i < originals.size(); ++i) {
    Machine* m = i < original_ms.size() ? original_ms[i] : nullptr;
    // Acquire: pairs with run_machine's release store of kExited.
    int s = m ? m->state.load(std::memory_order_acquire) : Machine::kExited;
    if (s == Machine::kExited) {
      originals[i].join();
    } else {
      originals[i].detach();  // runs a fiber that never entered the runtime again
    }
  }
  originals.clear();
  SpinGuard lk(lock_);
  for (auto& m : all_) {
    int s = m->state.load(std::memory_order_acquire);                         // as above
    if (s == Machine::kDetached || s == Machine::kFrozen) (void)m.release();  // its fiber may
    // still read it (reattach); it is never freed
  }
}

long running_os_thread(Task* t) noexcept {
  Runtime* rt = Runtime::current();
  if (!rt || !t) return 0;
  for (std::size_t i = 0; i < rt->worker_count(); ++i) {
    Worker* w = rt->worker(i);
    // Relaxed: a hint (see hooks.hpp); the machine is never freed while it runs a worker, and a
    // machine that lost this worker meanwhile is detached or a spare: alive as well.
    if (w->running_task_.load(std::memory_order_relaxed) != t) continue;
    Machine* m = w->m_.load(std::memory_order_acquire);  // pairs with run_on's release store
    return m ? m->tid : 0;
  }
  // Handed off: it keeps running on the OS thread it was detached on.
  return task_state(t).detached_on.load(std::memory_order_relaxed);
}

// --- hand-off: the stuck machine's side ---------------------------------------------------------

bool handoff_signal(int code, int pid) noexcept {
  if (!g_signo || code != SI_TKILL || pid != g_pid) return false;
  Worker* w = Worker::current();
  if (!w) return false;
  Machine* m = w->m_.load(std::memory_order_relaxed);
  // Acquire: pairs with the monitor's release store of kAsked (request_* are visible).
  if (!m || m->request.load(std::memory_order_acquire) != Machine::kAsked) return false;
  if (m->tid != raw_gettid()) return false;  // not about this thread: the program's SIGURG
  ThreadState& st = tls();
  Context* c = w->running_;
  bool ok = m->request_worker == w && st.depth.load(std::memory_order_relaxed) == 0 &&
            st.detached.load(std::memory_order_relaxed) == nullptr && c && !c->is_scheduler_ &&
            c->may_move() && c->tp_ == read_tp() && w->nlibrary_ == 0 &&
            w->dispatches_.load(std::memory_order_relaxed) == m->request_dispatch;
  if (!ok) {
    m->request.store(Machine::kRefused, std::memory_order_release);  // as kReleased below
    return true;
  }
  // The scheduler context of this machine is suspended in w's loop (a fiber runs): its saved
  // state is ours to keep, and w's Context record of it goes to the next machine.
  m->native = w->sched_.fctx_;
  m->fiber = c;
  if (c->task_) task_state(c->task_).detached_on.store(int(m->tid), std::memory_order_relaxed);
  st.detached.store(m, std::memory_order_relaxed);
  Worker::forget_current_thread();  // the fiber's copy (its TLS block is the current one)
  m->state.store(Machine::kDetached, std::memory_order_release);  // see run_machine's end
  Machines& ms = *w->runtime()->machines();
  ms.ndetached_.fetch_add(1, std::memory_order_relaxed);
  ms.nlive_.fetch_sub(1, std::memory_order_seq_cst);
  w->m_.store(nullptr, std::memory_order_relaxed);
  // Release: everything this thread wrote to w happens before the next machine binds it.
  m->request.store(Machine::kReleased, std::memory_order_release);
  return true;
}

void reattach() noexcept {
  ThreadState& st = tls();
  auto* m = static_cast<Machine*>(st.detached.load(std::memory_order_relaxed));
  if (!m) return;
  // Hooks are raw (bypass): the shim runs a program's signal handler in kernel signal context
  // on this OS thread (run_direct), or runtime code runs. Not here: jumping away would leave
  // this thread inside the kernel's signal frame, its mask the handler's (everything blocked,
  // SIGURG too: no hand-off of it ever again; redis stuck at SIGTERM), and the frame's
  // sigreturn would run on another thread. The next entry outside the handler reattaches.
  if (st.bypass > 0) return;
  // The Dekker pair with stop() (see g_stopped): count ourselves in, then look.
  g_reattaching.fetch_add(1, std::memory_order_seq_cst);
  if (g_stopped.load(std::memory_order_seq_cst)) {
    // The runtime is stopping or gone: this thread runs nothing any more (the process's exit
    // ends it, as it ends a real thread).
    m->state.store(Machine::kFrozen, std::memory_order_release);  // see run_machine's end
    g_reattaching.fetch_sub(1, std::memory_order_seq_cst);
    freeze();
  }
  st.detached.store(nullptr, std::memory_order_relaxed);
  Context* self = m->fiber;
  if (self->task_) task_state(self->task_).detached_on.store(0, std::memory_order_relaxed);
  m->fiber = nullptr;
  m->reattached = self;
  // To the machine's scheduler context, suspended in the loop of the worker it lost; it
  // records our switch-away (finish_switch) and queues us (Machines::requeue). From the FS
  // write on, this stack makes no TLS access until a worker switches back to it (jump()
  // then writes our thread pointer again).
  write_tp(m->sched_tp);
  auto from = machine_jump(m->native, self);
  Context::finish_switch(from);
}

}  // namespace green::detail
