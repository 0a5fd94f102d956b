// Signals for fiber-threads: the disposition table, the kernel-level handler, per-thread
// masks/pending sets, delivery, and the bodies of the signal hooks (hook_signal.cpp binds
// them to the libc names). The design note is at the top of signals.hpp.
//
// Owns:
//   g_act[]           the program's dispositions (handler, flags, sa_mask) and whether the
//                     kernel has on_signal for it. Written under g_act_lock with every signal
//                     blocked on the writing OS thread (so a handler on that thread cannot
//                     deadlock on it); read lock-free (atomics) from anywhere.
//   g_proc_pending    process-directed signals no fiber-thread could take; claimed by the
//                     first thread that unblocks or sigwaits for one.
//   g_info[]          siginfo of the latest generation of each signal (si_code, si_pid,
//                     si_uid, si_value): what a handler or sigwaitinfo is given. One slot per
//                     signal, not per pending instance: standard signals do not queue anyway.
//   the registry      fiber-threads that can be targets (g_head, g_reg_lock, g_walkers).
//
// Everything reachable from on_signal and send_to is async-signal-safe: atomics, raw
// syscalls, detail::interrupt_task, and g_act_lock (taken only with signals blocked).
#include "signals.hpp"

#include <signal.h>
#include <sys/syscall.h>
#include <ucontext.h>
#include <unistd.h>

#include <cstring>

#include "common.hpp"
#include "green/detail/task.hpp"
#include "real.hpp"
#include "thread.hpp"

namespace green::shim::signals {

namespace {

constexpr int kMaxSig = 64;

constexpr std::uint64_t bit(int s) {
  return 1ull << (s - 1);
}

constexpr std::uint64_t kUnblockable = bit(SIGKILL) | bit(SIGSTOP) | bit(32) | bit(33);
constexpr std::uint64_t kSyncFaults =
    bit(SIGSEGV) | bit(SIGBUS) | bit(SIGFPE) | bit(SIGILL) | bit(SIGTRAP) | bit(SIGSYS);
constexpr std::uint64_t kStops = bit(SIGTSTP) | bit(SIGTTIN) | bit(SIGTTOU) | bit(SIGCONT);
constexpr std::uint64_t kDefaultIgnore = bit(SIGCHLD) | bit(SIGURG) | bit(SIGWINCH) | bit(SIGCONT);

// Signals the shim may take over when the program catches them.
bool managed(int s) {
  return s >= 1 && s <= kMaxSig && !((kUnblockable | kSyncFaults) & bit(s));
}

struct Action {
  std::atomic<std::uintptr_t> handler{0};  // sa_handler / sa_sigaction
  std::atomic<int> flags{0};
  std::atomic<std::uint64_t> mask{0};
  std::atomic<bool> known{false};  // the table holds the program's disposition
  std::atomic<bool> taken{false};  // the kernel has on_signal
  std::atomic<bool> want{false};   // blocked or waited for by a fiber-thread: take over SIG_DFL
};
Action g_act[kMaxSig + 1];
detail::SpinLock g_act_lock;

struct Info {
  std::atomic<int> code{SI_USER};
  std::atomic<pid_t> pid{0};
  std::atomic<uid_t> uid{0};
  std::atomic<void*> value{nullptr};
};
Info g_info[kMaxSig + 1];

std::atomic<bool> g_enabled{false};
std::atomic<std::uint64_t> g_proc_pending{0};
pid_t g_pid = 0;
ShimThread* g_main = nullptr;
char g_fwd_tag;  // si_value of signals the shim forwards to a target's OS thread

std::atomic<SigThread*> g_head{nullptr};
detail::SpinLock g_reg_lock;    // writers of the registry links (never in signal context)
std::atomic<int> g_walkers{0};  // readers of the registry / of a target's SigThread

thread_local int t_direct = 0;  // depth of handlers run in kernel signal context

// The raw system call (no errno: returns -errno). Not syscall(): the shim interposes that one
// (gettid/tgkill translate fiber-thread ids), and signal context needs the kernel's ids.
long raw(long n, long a1 = 0, long a2 = 0, long a3 = 0, long a4 = 0) {
  return detail::raw_syscall_ret(n, a1, a2, a3, a4);
}
template <class P>
long lp(P p) {
  return reinterpret_cast<long>(p);
}

// The kernel's id of the OS thread running the caller. Not cached: the thread_local would be
// per fiber-thread, and a fiber-thread may migrate to another worker (docs/design.md).
pid_t my_tid() {
  return static_cast<pid_t>(raw(SYS_gettid));
}

std::uint64_t bits_of(const sigset_t* set) {
  std::uint64_t b;
  std::memcpy(&b, set, sizeof b);  // glibc: __val[0] holds signals 1..64, bit signo-1
  return b;
}
sigset_t set_of(std::uint64_t b) {
  sigset_t s;
  sigemptyset(&s);
  std::memcpy(&s, &b, sizeof b);
  return s;
}

ShimThread* owner_of(SigThread* st) {
  return st->owner;
}

// Blocks every signal on this OS thread for the critical section (raw syscalls: no hooks).
class SignalsBlocked {
 public:
  SignalsBlocked() noexcept {
    sigset_t all;
    sigfillset(&all);
    raw(SYS_rt_sigprocmask, SIG_SETMASK, lp(&all), lp(&old_), _NSIG / 8);
  }
  ~SignalsBlocked() { raw(SYS_rt_sigprocmask, SIG_SETMASK, lp(&old_), 0, _NSIG / 8); }

 private:
  sigset_t old_;
};

void on_signal(int s, siginfo_t* info, void* uc);
void on_carrier_signal(int s, siginfo_t* info, void* uc);

// The runtime's own signal, SIGURG as in Go: rarely used by programs, ignored by default, so one
// that arrives late or twice harms nothing. Its kernel handler is on_carrier_signal from
// start-up to exit, whatever the program's disposition (kept in g_act and honoured there). It
// carries
//   * forwards (post()): "a signal is pending on the fiber-thread you run". They must not
//     travel as the signal itself: a forward is a real kernel signal that may be delivered late
//     (its OS thread preempted), and by then the program may have reset that signal to SIG_DFL
//     (CPython does at exit; SA_RESETHAND does after one handler) -- the forwarded copy of a
//     SIGINT the program had already handled then killed it (CI, ctrl-c greenrun-2);
//   * worker hand-off requests (runtime/src/machine.hpp), once hand-off is on.
// Standard signals do not queue: a forward sent while a request is pending on that OS thread
// (or the reverse) is merged into it. The handler therefore always looks for signals due on
// the fiber it interrupted; the monitor re-sends a request that is not answered.
constexpr int kCarrierSignal = SIGURG;
bool g_carrier = false;  // written once at start-up, before any fiber-thread exists
bool g_handoff = false;  // likewise

void ensure_known_locked(int s) {
  Action& a = g_act[s];
  if (a.known.load(std::memory_order_relaxed)) return;
  struct sigaction k {};
  real::sigaction(s, nullptr, &k);
  a.handler.store(reinterpret_cast<std::uintptr_t>(k.sa_handler), std::memory_order_relaxed);
  a.flags.store(k.sa_flags, std::memory_order_relaxed);
  a.mask.store(bits_of(&k.sa_mask), std::memory_order_relaxed);
  a.known.store(true, std::memory_order_release);  // pairs with the acquire in disposition()
}

// Gives the kernel on_signal, or the program's own disposition (SIG_IGN, or SIG_DFL of a
// signal no fiber-thread blocks or waits for).
void apply_locked(int s) {
  Action& a = g_act[s];
  auto h = a.handler.load(std::memory_order_relaxed);
  bool func = h != reinterpret_cast<std::uintptr_t>(SIG_DFL) &&
              h != reinterpret_cast<std::uintptr_t>(SIG_IGN);
  bool dfl_taken = h == reinterpret_cast<std::uintptr_t>(SIG_DFL) &&
                   a.want.load(std::memory_order_relaxed) && !(kStops & bit(s));
  struct sigaction k {};
  if (s == kCarrierSignal && g_carrier) {
    k.sa_sigaction = on_carrier_signal;
    k.sa_flags = SA_SIGINFO | SA_RESTART | (a.flags.load(std::memory_order_relaxed) & SA_ONSTACK);
    sigfillset(&k.sa_mask);
    for (int f2 : {SIGSEGV, SIGBUS, SIGFPE, SIGILL, SIGTRAP, SIGSYS}) sigdelset(&k.sa_mask, f2);
    // release: as below (kill_self routes to on_signal only for a program's handler).
    a.taken.store(func || dfl_taken, std::memory_order_release);
  } else if (func || dfl_taken) {
    k.sa_sigaction = on_signal;
    int f = a.flags.load(std::memory_order_relaxed);
    k.sa_flags = SA_SIGINFO | (f & (SA_ONSTACK | SA_NOCLDSTOP | SA_NOCLDWAIT)) |
                 (dfl_taken || (f & SA_RESTART) ? SA_RESTART : 0);
    sigfillset(&k.sa_mask);
    for (int f2 : {SIGSEGV, SIGBUS, SIGFPE, SIGILL, SIGTRAP, SIGSYS}) sigdelset(&k.sa_mask, f2);
    // release (taken, both branches): after the disposition fields; pairs with kill_self's
    // acquire load (a sender that sees `taken` sees the handler it will route to).
    a.taken.store(true, std::memory_order_release);
  } else {
    k.sa_handler = reinterpret_cast<void (*)(int)>(h);
    k.sa_flags = a.flags.load(std::memory_order_relaxed);
    k.sa_mask = set_of(a.mask.load(std::memory_order_relaxed));
    a.taken.store(false, std::memory_order_release);  // release: as in the branch above
  }
  real::sigaction(s, &k, nullptr);
}

// A fiber-thread blocks or waits for `s`: a SIG_DFL disposition must not act in the kernel.
void take_over(int s) {
  if (!managed(s) || (kStops & bit(s)) || g_act[s].want.load(std::memory_order_acquire)) return;
  SignalsBlocked b;
  g_act_lock.lock();
  ensure_known_locked(s);
  // release: pairs with the acquire fast-path check above (the disposition is known).
  g_act[s].want.store(true, std::memory_order_release);
  if (!g_act[s].taken.load(std::memory_order_relaxed) &&
      g_act[s].handler.load(std::memory_order_relaxed) == reinterpret_cast<std::uintptr_t>(SIG_DFL))
    apply_locked(s);
  g_act_lock.unlock();
}

void record(int s, int code, pid_t pid, uid_t uid, void* value) {
  g_info[s].code.store(code, std::memory_order_relaxed);
  g_info[s].pid.store(pid, std::memory_order_relaxed);
  g_info[s].uid.store(uid, std::memory_order_relaxed);
  g_info[s].value.store(value, std::memory_order_relaxed);
}

siginfo_t info_of(int s) {
  siginfo_t si;
  std::memset(&si, 0, sizeof si);
  si.si_signo = s;
  si.si_code = g_info[s].code.load(std::memory_order_relaxed);
  si.si_pid = g_info[s].pid.load(std::memory_order_relaxed);
  si.si_uid = g_info[s].uid.load(std::memory_order_relaxed);
  si.si_value.sival_ptr = g_info[s].value.load(std::memory_order_relaxed);
  return si;
}

// The default action of a taken-over signal that is due: ignore, or let the kernel act (it
// terminates the process, with a core where the signal says so).
void default_action(int s) {
  if (kDefaultIgnore & bit(s)) return;
  {
    SignalsBlocked b;
    g_act_lock.lock();
    struct sigaction k {};
    k.sa_handler = SIG_DFL;
    real::sigaction(s, &k, nullptr);
    // release: as in apply_locked (pairs with kill_self's acquire load).
    g_act[s].taken.store(false, std::memory_order_release);
    g_act_lock.unlock();
  }
  raw(SYS_tgkill, g_pid, my_tid(), s);
  sigset_t u;
  sigemptyset(&u);
  sigaddset(&u, s);
  raw(SYS_rt_sigprocmask, SIG_UNBLOCK, lp(&u), 0, _NSIG / 8);
}

// Runs the program's handler for `s` on fiber-thread t (the caller's own). Returns true if a
// handler ran; *restart is cleared unless it had SA_RESTART.
bool deliver_one(ShimThread* t, int s, bool* restart, void* kernel_uc) {
  Action& a = g_act[s];
  // acquire: pairs with do_sigaction's release store of the handler.
  auto h = a.handler.load(std::memory_order_acquire);
  int flags = a.flags.load(std::memory_order_relaxed);
  std::uint64_t amask = a.mask.load(std::memory_order_relaxed);
  if (h == reinterpret_cast<std::uintptr_t>(SIG_IGN)) return false;
  if (h == reinterpret_cast<std::uintptr_t>(SIG_DFL)) {
    default_action(s);
    return false;
  }
  if (flags & SA_RESETHAND) {
    SignalsBlocked b;
    g_act_lock.lock();
    // release: pairs with deliver_one/plain_call's acquire load of the handler.
    a.handler.store(reinterpret_cast<std::uintptr_t>(SIG_DFL), std::memory_order_release);
    a.flags.store(flags & ~(SA_SIGINFO | SA_RESETHAND), std::memory_order_relaxed);
    apply_locked(s);
    g_act_lock.unlock();
  }
  SigThread& st = t->sig;
  std::uint64_t old = st.mask.load(std::memory_order_relaxed);
  std::uint64_t during = (old | amask | ((flags & SA_NODEFER) ? 0 : bit(s))) & ~kUnblockable;
  // seq_cst: the mask store of the mask/pending Dekker pair (signals.hpp: the target stores
  // its mask, then loads pending; a sender fetch_ors pending, then loads the mask).
  st.mask.store(during, std::memory_order_seq_cst);
  siginfo_t si = info_of(s);
  ucontext_t fake;
  std::memset(&fake, 0, sizeof fake);
  void* uc = kernel_uc ? kernel_uc : &fake;
  if (flags & SA_SIGINFO) {
    reinterpret_cast<void (*)(int, siginfo_t*, void*)>(h)(s, &si, uc);
  } else {
    reinterpret_cast<void (*)(int)>(h)(s);
  }
  // seq_cst: pairs with a sender's fetch_or of pending followed by its load of the mask.
  st.mask.store(old, std::memory_order_seq_cst);
  if (!(flags & SA_RESTART)) *restart = false;
  return true;
}

// Delivers every pending signal t does not block (thread-directed first). Returns whether a
// handler ran.
bool deliver_pending(ShimThread* t, bool* restart, void* kernel_uc) {
  SigThread& st = t->sig;
  bool any = false;
  for (int round = 0; round < 4 * kMaxSig; ++round) {
    // seq_cst (mask, pending, claim): the target's side of the mask/pending Dekker pair with
    // post() and on_signal; fetch_and claims a bit exactly once against other claimers.
    std::uint64_t m = st.mask.load(std::memory_order_seq_cst);
    std::atomic<std::uint64_t>* from = &st.pending;
    std::uint64_t d = st.pending.load(std::memory_order_seq_cst) & ~m;
    if (!d) {
      from = &g_proc_pending;
      d = g_proc_pending.load(std::memory_order_seq_cst) & ~m;  // seq_cst: as above
    }
    if (!d) break;
    int s = __builtin_ctzll(d) + 1;
    if (!(from->fetch_and(~bit(s), std::memory_order_seq_cst) & bit(s))) continue;  // claim
    if (deliver_one(t, s, restart, kernel_uc)) any = true;
  }
  return any;
}

// Runs t's deliverable signals right here, in kernel signal context on t's own fiber. Hooks
// are raw meanwhile (bypass): the handler interrupted arbitrary code of this worker.
// Returns false if a handler without SA_RESTART ran.
bool run_direct(ShimThread* t, void* uc) {
  detail::ThreadState& ts = detail::thread_state();
  ++ts.bypass;
  ++t_direct;
  bool restart = true;
  deliver_pending(t, &restart, uc);
  --t_direct;
  --ts.bypass;
  return restart;
}

// The carrier has SA_RESTART, so the kernel rewound a system call it cut short (ERESTARTSYS:
// the instruction pointer back on `syscall`, rax its number again). When the handler that ran
// for it lacks SA_RESTART, make the call return EINTR instead, as the kernel would have for that
// handler. (A `syscall` merely about to run when the signal came is indistinguishable; EINTR
// before it did anything is a result it may give anyway.)
void unrestart(void* uc) {
#if defined(__x86_64__)
  auto* u = static_cast<ucontext_t*>(uc);
  greg_t& ip = u->uc_mcontext.gregs[REG_RIP];
  std::uint16_t insn;
  std::memcpy(&insn, reinterpret_cast<const void*>(ip), sizeof insn);
  if (insn != 0x050f) return;  // not at a `syscall` instruction
  u->uc_mcontext.gregs[REG_RAX] = -EINTR;
  ip += 2;
#else
  (void)uc;
#endif
}

void forward(pid_t tid) {
  siginfo_t fi;
  std::memset(&fi, 0, sizeof fi);
  fi.si_signo = kCarrierSignal;
  fi.si_code = SI_QUEUE;
  fi.si_pid = g_pid;
  fi.si_uid = getuid();
  fi.si_value.sival_ptr = &g_fwd_tag;
  raw(SYS_rt_tgsigqueueinfo, g_pid, tid, kCarrierSignal, lp(&fi));
}

// Marks `s` pending on t and makes t notice: its interruptible park ends (kInterrupted), and,
// if it runs on another OS thread and does not block `s`, that thread gets a forwarded signal
// so a running t takes it there. Caller: a walker (t stays valid), t is not the caller's own
// running fiber-thread with `s` unblocked (that case runs the handler directly).
void post(ShimThread* t, int s) {
  SigThread& st = t->sig;
  std::uint64_t b = bit(s);
  // An ignored signal the target does not block is discarded now, not left pending.
  auto h = g_act[s].handler.load(std::memory_order_acquire);
  if (!(st.mask.load(std::memory_order_seq_cst) & b) &&
      (h == reinterpret_cast<std::uintptr_t>(SIG_IGN) ||
       (h == reinterpret_cast<std::uintptr_t>(SIG_DFL) && (kDefaultIgnore & b))))
    return;
  // A SIG_DFL signal whose default terminates the process acts now, on whichever thread got
  // here: the process ends however its threads are placed, and the target may not run for a
  // while (its worker busy with another fiber: CPython's regrtest survived SIGTERM).
  if (h == reinterpret_cast<std::uintptr_t>(SIG_DFL) &&
      !(st.mask.load(std::memory_order_seq_cst) & b) &&
      !(st.waitset.load(std::memory_order_seq_cst) & b)) {
    default_action(s);
    return;
  }
  // seq_cst: pairs with the target's seq_cst mask/waitset stores followed by pending loads.
  st.pending.fetch_or(b, std::memory_order_seq_cst);
  // After the bit: a hook that sees the new count sees the bit (deliver_posted; common.hpp).
  g_signal_posts.fetch_add(1, std::memory_order_seq_cst);
  bool unblocked = !(st.mask.load(std::memory_order_seq_cst) & b);
  if (!unblocked && !(st.waitset.load(std::memory_order_seq_cst) & b)) return;
  detail::Task* task = st.task.load(std::memory_order_seq_cst);
  if (task) detail::interrupt_task(task);
  if (!unblocked) return;
  // Where it runs now (it may have migrated since it started, and a handed-off fiber runs on the
  // OS thread it was detached on); else where it started. A wrong guess costs a forward that
  // finds nothing: the target then takes the signal at its next interposed call.
  pid_t tid = task ? static_cast<pid_t>(detail::running_os_thread(task)) : 0;
  if (tid == 0) tid = st.tid.load(std::memory_order_relaxed);
  if (tid != 0 && tid != my_tid()) forward(tid);
}

bool eligible(ShimThread* t, std::uint64_t b) {
  SigThread& st = t->sig;
  // seq_cst: the sender's loads of the Dekker pairs (task with thread_exit; mask and waitset
  // with the target's stores, see post()).
  return st.task.load(std::memory_order_seq_cst) &&
         (!(st.mask.load(std::memory_order_seq_cst) & b) ||
          (st.waitset.load(std::memory_order_seq_cst) & b));
}

// A process-directed signal's target (walker held): main, the running thread, any other.
ShimThread* choose(int s, ShimThread* cur) {
  std::uint64_t b = bit(s);
  if (g_main && eligible(g_main, b)) return g_main;
  if (cur && eligible(cur, b)) return cur;
  // acquire: pairs with register_thread/thread_exit's release stores of the links.
  for (SigThread* p = g_head.load(std::memory_order_acquire); p;
       p = p->next.load(std::memory_order_acquire)) {
    ShimThread* t = owner_of(p);
    if (eligible(t, b)) return t;
  }
  return nullptr;
}

// Routes a process-directed signal (takes the walker count itself): pending on the thread
// choose() picks (posted to it), on the process when no thread takes it, or on `cur`. True when
// `cur` took it and does not block it, so the caller may run its handler at once.
bool route_process_directed(int s, ShimThread* cur) {
  g_walkers.fetch_add(1, std::memory_order_seq_cst);  // see thread_exit
  ShimThread* t = choose(s, cur);
  bool mine = false;
  // seq_cst (g_proc_pending, mask, pending): the sender's side of the mask/pending pair.
  if (!t) {
    g_proc_pending.fetch_or(bit(s), std::memory_order_seq_cst);
    g_signal_posts.fetch_add(1, std::memory_order_seq_cst);  // as in post()
  } else if (t == cur && !(cur->sig.mask.load(std::memory_order_seq_cst) & bit(s))) {
    // seq_cst: the sender's side of the mask/pending Dekker pair (see post()).
    cur->sig.pending.fetch_or(bit(s), std::memory_order_seq_cst);
    mine = true;
  } else {
    post(t, s);
  }
  // seq_cst: pairs with thread_exit's load of g_walkers (after its store of task).
  g_walkers.fetch_sub(1, std::memory_order_seq_cst);
  return mine;
}

void plain_call(int s, siginfo_t* info, void* uc) {
  Action& a = g_act[s];
  // acquire: pairs with do_sigaction's release store of the handler.
  auto h = a.handler.load(std::memory_order_acquire);
  int flags = a.flags.load(std::memory_order_relaxed);
  if (h == reinterpret_cast<std::uintptr_t>(SIG_IGN)) return;
  if (h == reinterpret_cast<std::uintptr_t>(SIG_DFL)) {
    default_action(s);
    return;
  }
  if (flags & SA_SIGINFO) {
    reinterpret_cast<void (*)(int, siginfo_t*, void*)>(h)(s, info, uc);
  } else {
    reinterpret_cast<void (*)(int)>(h)(s);
  }
}

bool is_forward(const siginfo_t* info) {
  return info && info->si_code == SI_QUEUE && info->si_pid == g_pid &&
         info->si_value.sival_ptr == &g_fwd_tag;
}

// The kernel-level handler of the carrier signal (see kCarrierSignal): a forward, a hand-off
// request to this OS thread (handoff_signal decides and acts, async-signal-safe), or the
// program's own SIGURG, which goes where on_signal or the program's SIG_DFL/SIG_IGN (both:
// ignore) would send it. Then whatever is due on the fiber running here runs: a forward merged
// into another SIGURG is not lost.
void on_carrier_signal(int s, siginfo_t* info, void* uc) {
  int saved = errno;
  bool ours = is_forward(info);
  if (!ours && g_handoff && info && detail::handoff_signal(info->si_code, info->si_pid))
    ours = true;
  // Acquire: pairs with apply_locked's release store (the disposition is complete).
  if (!ours && g_act[s].taken.load(std::memory_order_acquire)) {
    on_signal(s, info, uc);
  } else if (active()) {
    ShimThread* cur = self();
    if (cur && !run_direct(cur, uc) && uc) unrestart(uc);
  }
  errno = saved;
}

// The kernel-level handler of every taken-over signal (see signals.hpp).
void on_signal(int s, siginfo_t* info, void* uc) {
  int saved = errno;
  if (!active()) {
    plain_call(s, info, uc);
    errno = saved;
    return;
  }
  ShimThread* cur = self();
  record(s, info ? info->si_code : SI_USER, info ? info->si_pid : 0, info ? info->si_uid : 0,
         info ? info->si_value.sival_ptr : nullptr);
  bool thread_directed = (info && info->si_code == SI_TKILL) || s == SIGPIPE;
  if (thread_directed && !cur) {
    plain_call(s, info, uc);  // an OS thread of its own (no fiber-thread runs here)
    errno = saved;
    return;
  }
  ShimThread* direct = nullptr;
  if (thread_directed) {
    // seq_cst: the sender's side of the mask/pending Dekker pair (see post()).
    cur->sig.pending.fetch_or(bit(s), std::memory_order_seq_cst);
    if (!(cur->sig.mask.load(std::memory_order_seq_cst) & bit(s))) direct = cur;
  } else if (route_process_directed(s, cur)) {
    direct = cur;
  }
  if (direct) run_direct(direct, uc);
  errno = saved;
}

void register_thread(ShimThread* t) {
  SigThread& st = t->sig;
  st.owner = t;
  st.tid.store(my_tid(), std::memory_order_relaxed);
  // seq_cst: the task store of the walker protocol (see thread_exit).
  st.task.store(detail::current_task(), std::memory_order_seq_cst);
  g_reg_lock.lock();
  st.next.store(g_head.load(std::memory_order_relaxed), std::memory_order_relaxed);
  g_head.store(&st, std::memory_order_release);  // walkers see st's fields
  g_reg_lock.unlock();
}

}  // namespace

bool active() noexcept {
  return g_enabled.load(std::memory_order_relaxed) && !g_disabled;
}

bool in_direct_handler() noexcept {
  return t_direct > 0;
}

ShimThread* self() noexcept {
  if (!active()) return nullptr;
  detail::ThreadState& s = detail::thread_state();
  if (!s.task) return nullptr;
  auto* t = static_cast<ShimThread*>(s.task->shim_data_);
  if (!t || t->magic != ShimThread::kMagic || t->sig.task.load(std::memory_order_relaxed) != s.task)
    return nullptr;
  return t;
}

void enable_main(ShimThread* main) noexcept {
  if (g_threads_os) return;
  g_pid = getpid();
  g_main = main;
  // The main thread's mask: what the process started with.
  sigset_t cur;
  raw(SYS_rt_sigprocmask, SIG_SETMASK, 0, lp(&cur), _NSIG / 8);
  main->sig.mask.store(bits_of(&cur) & ~kUnblockable, std::memory_order_relaxed);
  if (!g_carrier) {  // enable_handoff() has not installed it
    SignalsBlocked b;
    g_act_lock.lock();
    ensure_known_locked(kCarrierSignal);
    g_carrier = true;
    apply_locked(kCarrierSignal);
    g_act_lock.unlock();
  }
  register_thread(main);
  // seq_cst: after main is registered; active()'s relaxed reads need only see it eventually.
  g_enabled.store(true, std::memory_order_seq_cst);
}

void enable_handoff() noexcept {
  if (g_threads_os) return;
  SignalsBlocked b;
  g_act_lock.lock();
  ensure_known_locked(kCarrierSignal);
  g_handoff = true;
  g_carrier = true;
  detail::enable_handoff(kCarrierSignal);
  apply_locked(kCarrierSignal);
  g_act_lock.unlock();
}

void inherit(ShimThread* child) noexcept {
  ShimThread* me = self();
  if (me)
    child->sig.mask.store(me->sig.mask.load(std::memory_order_relaxed), std::memory_order_relaxed);
}

void thread_start(ShimThread* t) noexcept {
  if (!active()) return;
  register_thread(t);
}

void thread_exit(ShimThread* t) noexcept {
  SigThread& st = t->sig;
  if (!st.task.load(std::memory_order_relaxed)) return;
  g_reg_lock.lock();
  SigThread* prev = nullptr;
  for (SigThread* p = g_head.load(std::memory_order_relaxed); p;
       prev = p, p = p->next.load(std::memory_order_relaxed)) {
    if (p != &st) continue;
    SigThread* n = st.next.load(std::memory_order_relaxed);
    if (prev) {
      // release (both): pairs with choose()'s acquire walk of the links.
      prev->next.store(n, std::memory_order_release);
    } else {
      g_head.store(n, std::memory_order_release);
    }
    break;
  }
  g_reg_lock.unlock();
  // seq_cst: a walker increments g_walkers before it loads task; we clear task and then
  // wait until no walker is left, so none touches st (or the task) after we return.
  st.task.store(nullptr, std::memory_order_seq_cst);
  while (g_walkers.load(std::memory_order_seq_cst) != 0) raw(SYS_sched_yield);
}

std::uint64_t fork_mask() noexcept {
  ShimThread* me = self();
  return me ? me->sig.mask.load(std::memory_order_relaxed) : 0;
}

void after_fork_child(std::uint64_t mask) noexcept {
  if (!g_enabled.load(std::memory_order_relaxed)) return;
  g_enabled.store(false, std::memory_order_relaxed);
  for (int s = 1; s <= kMaxSig; ++s) {
    Action& a = g_act[s];
    if (!a.taken.load(std::memory_order_relaxed) && !(s == kCarrierSignal && g_carrier)) continue;
    struct sigaction k {};
    k.sa_handler = reinterpret_cast<void (*)(int)>(a.handler.load(std::memory_order_relaxed));
    k.sa_flags = a.flags.load(std::memory_order_relaxed);
    k.sa_mask = set_of(a.mask.load(std::memory_order_relaxed));
    real::sigaction(s, &k, nullptr);
    a.taken.store(false, std::memory_order_relaxed);
  }
  sigset_t m = set_of(mask);
  raw(SYS_rt_sigprocmask, SIG_SETMASK, lp(&m), 0, _NSIG / 8);
}

}  // namespace green::shim::signals

namespace green::shim {

std::atomic<unsigned> g_signal_posts{0};
thread_local unsigned t_signal_seen = 0;

void deliver_posted() noexcept {
  // Acquire: pairs with the seq_cst increments (the pending bits set before them are seen).
  t_signal_seen = g_signal_posts.load(std::memory_order_acquire);
  int saved = errno;
  (void)signals::interrupted();  // the handlers run before the call; the call then proceeds
  errno = saved;
}

}  // namespace green::shim

namespace green::shim::signals {

Intr interrupted() noexcept {
  ShimThread* t = self();
  if (!t) return Intr::kNone;
  bool restart = true;
  if (!deliver_pending(t, &restart, nullptr)) return Intr::kNone;
  return restart ? Intr::kRestart : Intr::kEintr;
}

int send_to(ShimThread* t, int s) noexcept {
  if (s < 0 || s > kMaxSig) return EINVAL;
  if (s == 0) return 0;
  if (!active() || !managed(s)) {
    // Not managed: the kernel's delivery on the OS thread t runs on (or the process).
    pid_t tid = active() ? t->sig.tid.load(std::memory_order_relaxed) : 0;
    long r = tid ? raw(SYS_tgkill, getpid(), tid, s) : raw(SYS_kill, getpid(), s);
    return r == 0 ? 0 : static_cast<int>(-r);
  }
  record(s, SI_TKILL, g_pid, getuid(), nullptr);
  std::uint64_t b = bit(s);
  ShimThread* cur = self();
  if (t == cur && !(t->sig.mask.load(std::memory_order_relaxed) & b)) {
    // raise / pthread_kill(pthread_self()): the handler runs before we return.
    t->sig.pending.fetch_or(b, std::memory_order_seq_cst);
    bool restart = true;
    deliver_pending(t, &restart, nullptr);
    return 0;
  }
  g_walkers.fetch_add(1, std::memory_order_seq_cst);  // see thread_exit
  if (t->sig.task.load(std::memory_order_seq_cst)) post(t, s);
  // seq_cst: pairs with thread_exit's load of g_walkers (after its store of task).
  g_walkers.fetch_sub(1, std::memory_order_seq_cst);
  return 0;
}

bool kill_self(ShimThread* cur, int s) noexcept {
  // acquire: pairs with apply_locked's release store of `taken`.
  if (s < 1 || s > kMaxSig || !managed(s) || !g_act[s].taken.load(std::memory_order_acquire))
    return false;
  record(s, SI_USER, g_pid, getuid(), nullptr);
  if (route_process_directed(s, cur)) {
    bool restart = true;
    deliver_pending(cur, &restart, nullptr);
  }
  return true;
}

// --- bodies of the hooks (hook_signal.cpp) ------------------------------------------------

int do_sigaction(int s, const struct sigaction* act, struct sigaction* old) noexcept {
  if (s < 1 || s > kMaxSig || !managed(s) || !active()) return real::sigaction(s, act, old);
  SignalsBlocked b;
  g_act_lock.lock();
  ensure_known_locked(s);
  Action& a = g_act[s];
  struct sigaction prev {};
  prev.sa_handler = reinterpret_cast<void (*)(int)>(a.handler.load(std::memory_order_relaxed));
  prev.sa_flags = a.flags.load(std::memory_order_relaxed);
  prev.sa_mask = set_of(a.mask.load(std::memory_order_relaxed));
  if (act) {
    // release: pairs with the handler's acquire loads (deliver_one, plain_call).
    a.handler.store(reinterpret_cast<std::uintptr_t>(act->sa_handler), std::memory_order_release);
    a.flags.store(act->sa_flags, std::memory_order_relaxed);
    a.mask.store(bits_of(&act->sa_mask), std::memory_order_relaxed);
    apply_locked(s);
  }
  g_act_lock.unlock();
  if (old) *old = prev;
  return 0;
}

int do_sigmask(ShimThread* t, int how, const sigset_t* set, sigset_t* old) noexcept {
  SigThread& st = t->sig;
  std::uint64_t cur = st.mask.load(std::memory_order_relaxed);
  std::uint64_t n = cur;
  if (set) {
    std::uint64_t b = bits_of(set);
    switch (how) {
      case SIG_BLOCK:
        n = cur | b;
        break;
      case SIG_UNBLOCK:
        n = cur & ~b;
        break;
      case SIG_SETMASK:
        n = b;
        break;
      default:
        return EINVAL;
    }
    n &= ~kUnblockable;
  }
  if (old) *old = set_of(cur);
  if (!set) return 0;
  for (std::uint64_t add = n & ~cur; add; add &= add - 1) take_over(__builtin_ctzll(add) + 1);
  st.mask.store(n, std::memory_order_seq_cst);  // see post()
  if (cur & ~n) {
    bool restart = true;
    deliver_pending(t, &restart, nullptr);  // POSIX: before pthread_sigmask returns
  }
  return 0;
}

namespace {
// Parks for a signal (or `deadline`). Only a signal can end this wait, which the runtime's
// deadlock report cannot know: an hourly timer keeps the worker's loop "alive" for it.
detail::WakeReason park_for_signal(TimePoint deadline) {
  for (;;) {
    TimePoint d = detail::deadline_after(std::chrono::hours(1));
    if (deadline < d) d = deadline;
    detail::Waiter w;
    auto r = detail::park(w, d, detail::Unlocker{});
    if (r != detail::WakeReason::kTimeout || d == deadline) return r;
  }
}

// Claims a signal of `set` pending on t or on the process, ignoring the mask.
int claim(ShimThread* t, std::uint64_t set) {
  for (std::atomic<std::uint64_t>* from : {&t->sig.pending, &g_proc_pending}) {
    for (;;) {
      std::uint64_t d = from->load(std::memory_order_seq_cst) & set;
      if (!d) break;
      int s = __builtin_ctzll(d) + 1;
      // seq_cst: the waiter's side of the waitset/pending pair (do_sigwait stores waitset, then
      // claims); fetch_and claims each bit once.
      if (from->fetch_and(~bit(s), std::memory_order_seq_cst) & bit(s)) return s;
    }
  }
  return 0;
}
}  // namespace

int do_sigwait(ShimThread* t, const sigset_t* set, siginfo_t* info, TimePoint deadline,
               bool eintr) noexcept {
  std::uint64_t ws = bits_of(set) & ~kUnblockable;
  for (std::uint64_t w = ws; w; w &= w - 1) take_over(__builtin_ctzll(w) + 1);
  ErrnoGuard g;
  SigThread& st = t->sig;
  for (;;) {
    int s = claim(t, ws);
    if (!s) {
      st.waitset.store(ws, std::memory_order_seq_cst);  // see post(): then look again
      s = claim(t, ws);
      if (!s) {
        auto r = park_for_signal(deadline);
        st.waitset.store(0, std::memory_order_relaxed);
        s = claim(t, ws);
        if (!s) {
          if (r == detail::WakeReason::kTimeout) {
            errno = EAGAIN;
            return -1;
          }
          if (interrupted() != Intr::kNone && eintr) {
            errno = EINTR;
            return -1;
          }
          continue;
        }
      }
      st.waitset.store(0, std::memory_order_relaxed);
    }
    if (info) *info = info_of(s);
    g.restore();
    return s;
  }
}

sigset_t pending_of(ShimThread* t) noexcept {
  // seq_cst: a snapshot consistent with the senders' fetch_or (sigpending).
  return set_of(t->sig.pending.load(std::memory_order_seq_cst) |
                g_proc_pending.load(std::memory_order_seq_cst));
}

int do_sigsuspend(ShimThread* t, const sigset_t* mask) noexcept {
  SigThread& st = t->sig;
  std::uint64_t old = st.mask.load(std::memory_order_relaxed);
  std::uint64_t tmp = mask ? bits_of(mask) & ~kUnblockable : old;
  for (std::uint64_t add = tmp & ~old; add; add &= add - 1) take_over(__builtin_ctzll(add) + 1);
  // seq_cst (both mask stores): the target's side of the mask/pending pair; the
  // deliver_pending() after each one sees every signal posted before it.
  st.mask.store(tmp, std::memory_order_seq_cst);
  for (;;) {
    bool restart = true;
    if (deliver_pending(t, &restart, nullptr)) break;
    ErrnoGuard g;
    park_for_signal(kNoDeadline);
    g.restore();
  }
  st.mask.store(old, std::memory_order_seq_cst);  // seq_cst: as above
  bool restart = true;
  deliver_pending(t, &restart, nullptr);  // unblocked again by the restore
  errno = EINTR;
  return -1;
}

}  // namespace green::shim::signals
