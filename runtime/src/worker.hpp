// Worker: one OS thread running fibers over its own uv_loop_t.
//
// Loop (Worker::run, on the thread's own stack, i.e. the scheduler context):
//   1. uv_run(UV_RUN_NOWAIT): due timers, ready fds, offload completions, async wake-ups.
//      Their callbacks only move fibers to the ready queue; no fiber runs inside libuv.
//   2. take messages from other threads (inbox of readied fibers, closed fds).
//   3. run: switch to the first ready fiber or start a queued task. Fibers then hand the CPU
//      directly to each other (park/yield/exit pick the next fiber themselves) and come back
//      to the scheduler only when nothing is runnable or every kPollInterval dispatches (and
//      at least kPollPeriodNs apart), so I/O and timers are polled regularly even when run
//      queues never drain.
//   4. idle: steal unstarted tasks from the global queue and other workers, spin briefly,
//      then block in uv_run(UV_RUN_ONCE) until a timer, an fd or uv_async_send wakes it.
//
// Queues:
//   ready_   runnable started fibers that stay on this worker (library fibers, pinned
//            contexts); owner thread only, FIFO, no atomics.
//   shared_  runnable migratable fibers (Context::migratable_: a thread identity of their
//            own): FIFO under shared_mu_ (a leaf SpinLock). The owner pushes and pops; other
//            workers steal half of it when this worker is busy in a fiber (steal_ready), and
//            a thread that wakes a parked migratable fiber without an armed timer pushes it
//            here directly (so a worker stuck in one fiber does not hold it), unless it is
//            another worker's thread: that one takes the fiber to its own queues (adopt). pop_ready
//            alternates between ready_ and shared_ when both have fibers.
//   runnext_ one started fiber made runnable by the running fiber of this worker (it woke it
//            through a lock, condvar, semaphore, channel, join): it runs as soon as the waker
//            stops, before the ready queues (Go's runnext); a newer one sends it to the back.
//            start_next_ likewise says that the running fiber spawned a task (it stays in
//            runq_, stealable): the next dispatch starts one. Hand-offs then cost no trip
//            through the whole ready queue: with thousands of ready fibers (a server's
//            connections) an accept loop whose thread start waits for the new thread (Python's
//            Thread.start) was served once per round otherwise. Bound (Go's inheritTime): at
//            most kNextBurst such dispatches while fibers wait in ready_/shared_, then one of
//            those runs (next_allowed). Owner thread only: not stealable; a migratable context
//            goes to shared_ instead while another worker spins looking for work.
//            Wake-ups from the scheduler context (fds, timers, other threads) never go there.
//   inbox_   started fibers made runnable by other threads (those that may not go to shared_
//            directly): a lock-free LIFO push by any thread, taken whole (and reversed) by
//            the owner. Publishing is a release CAS, taking an acquire exchange.
//   runq_    unstarted tasks (RunQueue): stolen half a queue at a time.
//   returned_ contexts of this home that finished their task on another worker (lock-free
//            LIFO, drained with the messages): pooled or destroyed here, where their stack is.
// A context taken from shared_ by another thread may still be switching away on the thread
// that queued it (a fiber queues itself before it switches, and a waker may queue a fiber
// that has not finished parking): the taker waits for Context::suspended_ before running it.
// hold_ (under shared_mu_) keeps thieves away while the owner inspects its parked fibers
// from the scheduler context (dumps, cancel and interrupt delivery).
//
// Sleep/wake protocol (Dekker style; both sides use seq_cst):
//   sleeper: sleeping_ = true; fence; re-check inbox_/queues; uv_run(ONCE); sleeping_ = false
//   waker:   push work; fence; if (sleeping_.exchange(false)) uv_async_send(&async_)
//   so a worker never blocks with work it was handed, and a busy worker costs no syscall.
//   (docs/hacking.md lists this and the other Dekker pairs, and the lock order.)
#pragma once

#include <uv.h>

#include <atomic>
#include <cstdint>
#include <mutex>
#include <thread>
#include <vector>

#include "context.hpp"
#include "poller.hpp"
#include "run_queue.hpp"
#include "stack_pool.hpp"
#include "task_cache.hpp"
#include "tls.hpp"

namespace green {
class WaitGroup;
}

namespace green::detail {

class Runtime;

class Worker {
 public:
  Worker(Runtime* rt, int index, std::size_t stack_size, StackGuard guard);
  ~Worker();
  Worker(const Worker&) = delete;
  Worker& operator=(const Worker&) = delete;

  // The worker running on this thread, or nullptr.
  static Worker* current() noexcept { return tls_current_; }
  // Fork child: this thread no longer runs a worker (its loop and peers are gone).
  static void forget_current_thread() noexcept { tls_current_ = nullptr; }

  // Thread body of the worker's original OS thread: makes it a Machine (machine.hpp) and runs
  // this worker's loop on it until the runtime stops (then tears down), or until the worker
  // is handed off; the thread then serves as a spare until the runtime stops.
  void run(class Machine* m);
  // On machine m's thread: binds this worker to m (tid, thread pointers, the scheduler context
  // now on m's stack) and runs its loop. Returns false once the runtime stopped and the
  // worker is torn down, true if the worker was handed to another machine meanwhile (m's
  // detached fiber then came back: Machines::requeue).
  bool run_on(class Machine* m);
  // Monitor thread (hints): something other than the running fiber waits for this worker:
  // runnable fibers, messages, unstarted tasks, or loop handles (timers, fd waits, offloads).
  bool has_waiting_work() const noexcept;

  // --- called on this worker's thread, from a fiber --------------------------------------
  // Suspends the running fiber (already recorded as waiting somewhere) and runs others.
  void park_current();
  // Requeues the running fiber behind the other ready ones and runs them.
  void yield_current();
  // Requeues the running fiber and goes through the scheduler context (timers, fds, other
  // workers' messages) before it runs again: the slice-expiry yield.
  void yield_to_loop();
  // Called by a Context whose task finished. Returns with ctx->task_ set to its next task.
  void context_done(Context* ctx);

  // --- any thread -------------------------------------------------------------------------
  // Makes a parked fiber of this worker runnable. Inline: the wake from this worker's own
  // thread (poller, timers, the sync primitives) is on every echo round trip.
  void make_ready(Context* c) noexcept {
    if (tls_current_ == this) {
      make_ready_local(c);
    } else {
      make_ready_remote(c);
    }
  }
  // make_ready() on this worker's own thread. A fiber that wakes another (a lock, condvar,
  // semaphore, channel or join hand-off) makes it the next to run (runnext_); wake-ups from
  // the scheduler context (fds, timers, messages) join the back of the ready queues.
  void make_ready_local(Context* c) noexcept {
    if (running_ != &sched_) {
      push_next(c);
    } else {
      push_ready(c);
    }
    // From a libuv callback: uv_run(UV_RUN_ONCE) runs due timers *before* it polls and would
    // then block in epoll_wait with this fiber ready (libuv only skips the block for pending
    // callbacks). uv_stop makes that poll non-blocking; it is exactly this store (uv-common.c),
    // written here to save a call per wake.
    if (in_uv_run_) loop_.stop_flag = 1;
  }
  // make_ready() from any other thread (out of line).
  void make_ready_remote(Context* c) noexcept;
  // On this worker's thread, by the winner of the wait's CAS: takes c, parked on `from`
  // (migratable and unpinned: Context::kWakeDirect / kWakeAdopt), to this worker and queues
  // it here (make_ready_local).
  // False (nothing done) if `from` holds its parked fibers (dumps, cancel delivery) or c has
  // not finished switching away yet: the caller then wakes it through `from`.
  bool adopt(Context* c, Worker* from) noexcept;
  // Any thread: the timer of a context that was adopted elsewhere; stopped and freed here.
  void post_timer(TimerBox* b) noexcept;
  // A context of this home finished its task elsewhere (lock-free; any thread).
  void post_return(Context* c) noexcept;
  // Queues an unstarted task here (owner thread) or on the global queue.
  void push_task(Task* t);
  // Wakes this worker if it is blocked in uv_run.
  void notify() noexcept;
  // An fd was closed (generation `gen`, see poller.hpp): wake this worker's waiters of older
  // registrations of it, on this worker's thread. Returns false (and does nothing) once the
  // worker has torn down.
  bool post_fd_closed(int fd, std::uint32_t gen);
  // Task::cancel() for a task running here: wakes its current wait on this worker's thread.
  void post_cancel(Task* t);
  // interrupt_task() for a task of this worker (async-signal-safe; takes over a reference).
  void post_interrupt(Task* t) noexcept;

  // --- owner-thread helpers -----------------------------------------------------------------
  // Hands the CPU to `next` (a no-op if it is the running context). Returns when some
  // context switches back to the caller. Inline: it is the heart of every hot path.
  __attribute__((always_inline)) void switch_to(Context* next) {
    Context* self = running_;
    if (next == self) {
      self->state_ = Context::State::kRunning;
      return;
    }
    switch_away(self, next);
  }
  // switch_to for a `next` that is not the running context `self`.
  __attribute__((always_inline)) void switch_away(Context* self, Context* next) {
    Task* task = next->task_;  // once: the stores below may alias it as far as GCC knows
    running_ = next;
    next->state_ = Context::State::kRunning;
    tls().task = task;
    dispatches_.store(dispatches_.load(std::memory_order_relaxed) + 1, std::memory_order_relaxed);
    running_task_.store(task, std::memory_order_relaxed);
    running_ctx_.store(next, std::memory_order_release);  // pairs with the monitor's acquire
    self->jump(next);
  }
  Context* running() const { return running_; }
  uv_loop_t* loop() { return &loop_; }
  Poller& poller() { return poller_; }
  int index() const { return index_; }
  Runtime* runtime() const { return rt_; }
  RunQueue& runq() { return runq_; }
  bool stopping() const;
  // Timers lent to contexts for one timed wait (owner thread; Context::arm_timer).
  TimerBox* take_timer();
  void give_timer(TimerBox* b) noexcept {
    b->next = free_timers_;
    free_timers_ = b;
  }
  // Thief side: moves up to half of this worker's shared_ queue to `thief` (its thread), if
  // this worker is busy in a fiber and not holding. Returns the number taken.
  std::uint32_t steal_ready(Worker* thief) noexcept;
  // Slice expiry (the monitor asks a worker that has run one fiber too long to yield at its
  // next interposed call; hooks.hpp maybe_slice_yield): set by the monitor with the
  // dispatch count it saw, cleared by whoever exchanges it back first.
  // Release by the monitor's exchange, acquire by the worker's: yield_dispatch_ (relaxed,
  // stored before the flag) is the dispatch count the monitor saw.
  std::atomic<bool> yield_requested_{false};
  std::atomic<std::uint64_t> yield_dispatch_{0};

  // The sleep/wake Dekker flag (see the note at the top): seq_cst store by the sleeper,
  // seq_cst load + exchange by notify().
  std::atomic<bool> sleeping_{false};

  // Diagnostics, written by the owner, read by the monitor thread (relaxed: they are hints).
  std::atomic<std::uint64_t> dispatches_{0};    // context switches so far
  std::atomic<Task*> running_task_{nullptr};    // task on the CPU; nullptr: scheduler context
                                                // (the monitor compares it, never follows it)
  std::atomic<Context*> running_ctx_{nullptr};  // its context (contexts outlive the monitor)
  std::atomic<bool> stuck_{false};              // asleep with no timer, fd wait or request pending
  // The machine running this worker; nullptr while it is being handed off. Written by the
  // binding machine (release, run_on) and by the hand-off handler on the old one; read by the
  // monitor (acquire) and by the old machine's scheduler context to see that it lost it.
  std::atomic<class Machine*> m_{nullptr};
  // Every context whose home is this worker (dumps, gdb). Changed by the owner thread under
  // all_mu_ (create/destroy); read under it by any worker's dump.
  SpinLock all_mu_;
  Context* all_contexts_ GREEN_GUARDED_BY(all_mu_) = nullptr;

  // Owner thread only: freed Task blocks for the next spawns (Task::operator new/delete,
  // task_cache.hpp) and the block of task ids this worker hands out [next_id_, end_id_).
  TaskCache task_cache_;
  std::uint64_t next_id_ = 0;
  std::uint64_t end_id_ = 0;

  // Any thread: true if a woken fiber or a message waits for this worker.
  // seq_cst: the re-check half of the sleep/wake Dekker, as in idle().
  bool has_pending_work() const noexcept {
    return inbox_.load(std::memory_order_seq_cst) || has_msgs_.load(std::memory_order_seq_cst) ||
           shared_n_.load(std::memory_order_seq_cst) != 0;
  }
  // Any thread: wakes the loop unconditionally.
  void wake_loop() noexcept {
    ShimBypass bypass;  // uv_async_send writes to an eventfd
    uv_async_send(&async_);
  }

  // Backtrace of a parked fiber of this worker, innermost frame first, starting at the
  // frame that called park_current (owner thread, scheduler context only). Returns the number
  // of frames, 0 if c is not parked.
  int backtrace_of(Context* c, void** frames, int max);
  // Appends this worker's part of a fiber dump (runs on this worker's thread).
  void dump(std::string& out, const Task* requester);
  // Asks this worker to run `fn` on its own thread, in the scheduler context.
  void post_call(void (*fn)(Worker*, void*), void* arg);

 private:
  static constexpr std::uint32_t kPollInterval = 61;     // dispatches between I/O polls (Go's 61)
  static constexpr std::int64_t kPollPeriodNs = 20'000;  // ... and at least this long
  static constexpr std::size_t kMaxPooledContexts = 1024;
  static constexpr int kStartBatch = 32;  // new tasks started per scheduler pass (run())
  // runnext_ / start_next_ dispatches allowed between two dispatches from the ready queues
  // while fibers wait there (the bound Go gets from inheritTime: a pair of fibers waking each
  // other cannot starve the rest).
  static constexpr std::uint32_t kNextBurst = 16;

  // A ready fiber, or a context bound to a new task, or nullptr. The ready queue inline (every
  // park), the inbox and new tasks out of line.
  Context* next_runnable() {
    if (Context* c = pop_ready()) return c;
    return next_runnable_slow();
  }
  Context* next_runnable_slow();
  Context* context_for(Task* t);  // pooled or new context, bound to t; nullptr if t failed
  Task* pop_task();
  // runnext_ (see the note at the top): c runs when the running fiber stops; a context that
  // held the slot goes to the back of the ready queues (Go's runqput(next=true)).
  void push_next(Context* c) {
    if (__builtin_expect(c->migratable_, 0) && !may_hold_next(c)) {
      push_ready(c);
      return;
    }
    kick_next();
    start_next_ = false;
    c->enqueue_check();
    c->state_ = Context::State::kReady;
    runnext_ = c;
  }
  // Sends the holder of runnext_, if any, to the back of the ready queues.
  void kick_next() {
    if (Context* old = runnext_) {
      runnext_ = nullptr;
      old->dequeue_check();  // push_ready counts it again
      push_ready(old);
    }
  }
  bool may_hold_next(const Context* c) const noexcept;
  // The runnext burst guard: true if the next dispatch may take runnext_ or start_next_.
  bool next_allowed() noexcept {
    if (next_credit_ != 0) {
      --next_credit_;
      return true;
    }
    if (!ready_head_ && shared_n_.load(std::memory_order_relaxed) == 0) return true;
    next_credit_ = kNextBurst;  // the oldest ready fiber goes first, then a new burst
    return false;
  }
  // runnext_ or a task to start (start_next_), if next_allowed(); else nullptr.
  Context* pop_next();
  void push_ready(Context* c) {
    if (__builtin_expect(c->migratable_, 0) && c->pin_ == 0) {
      if (c->timed_waiter_) c->disarm_timer();  // woken: its timer is of no use any more
      c->state_ = Context::State::kReady;
      push_shared(c);
      return;
    }
    c->enqueue_check();
    c->state_ = Context::State::kReady;
    c->next_ = nullptr;
    if (ready_tail_) {
      ready_tail_->next_ = c;
    } else {
      ready_head_ = c;
    }
    ready_tail_ = c;
  }
  // The next fiber to run from this worker's queues: runnext_ (or a task a fiber just
  // spawned) within the burst guard, else the ready queues.
  Context* pop_ready() {
    if (__builtin_expect(runnext_ != nullptr || start_next_, 0)) {
      if (Context* c = pop_next()) return c;
    }
    return pop_queued();
  }
  Context* pop_queued() {
    // shared_n_ is a hint (relaxed); pushes from other threads are also announced by notify.
    if (__builtin_expect(shared_n_.load(std::memory_order_relaxed) != 0, 0) &&
        (!ready_head_ || (flip_ = !flip_))) {
      if (Context* c = pop_shared()) return c;
    }
    Context* c = ready_head_;
    if (c) {
      c->dequeue_check();
      ready_head_ = c->next_;
      if (!ready_head_) ready_tail_ = nullptr;
    }
    return c;
  }
  // Any thread (under shared_mu_); the caller has set the context's state if it may.
  void push_shared(Context* c) noexcept;
  Context* pop_shared() noexcept;
  void hold(bool on) noexcept;
  bool drain_inbox();
  void drain_returned();
  void reuse_or_destroy(Context* ctx);
  void yield_slow(Context* self);
  void serve_backtrace(Context* self);
  void drain_messages();
  void drain_interrupts();
  void deliver_cancel(Task* t);  // consumes a reference
  bool find_work();              // steal from the global queue / other workers
  void idle();
  void poll(uv_run_mode mode) {
    in_uv_run_ = true;
    uv_run(&loop_, mode);
    in_uv_run_ = false;
    last_poll_ns_ = now_ns();
  }
  static std::int64_t now_ns() noexcept;
  void teardown();
  void install_overflow_handler_on_this_thread();
  void retire(Context* c);

  // constinit (here, where every user sees it): the variable has no dynamic initializer, so
  // other translation units read it with one %fs-relative load instead of first testing for
  // (and maybe calling) a TLS init function: Worker::current() is on every io::wait and park.
  __attribute__((tls_model("initial-exec"))) static constinit thread_local Worker* tls_current_;

  Runtime* const rt_;
  const int index_;
  uv_loop_t loop_;
  uv_async_t async_;
  Context sched_;
  long tid_ = 0;  // kernel tid of the worker's thread (enter_tp stores it into glibc's tid)
  char* own_tp_ = nullptr;  // the thread's own glibc descriptor (own_thread_pointer)
  Context* running_ = nullptr;
  Context* ready_head_ = nullptr;
  Context* ready_tail_ = nullptr;
  Context* runnext_ = nullptr;  // made runnable by the running fiber: runs next (push_next)
  bool start_next_ = false;     // a fiber spawned a task: start one next (push_task)
  std::uint32_t next_credit_ = kNextBurst;  // next_allowed()
  std::atomic<Context*> inbox_{nullptr};
  SpinLock shared_mu_;  // a leaf lock
  Context* shared_head_ GREEN_GUARDED_BY(shared_mu_) = nullptr;
  Context* shared_tail_ GREEN_GUARDED_BY(shared_mu_) = nullptr;
  bool hold_ GREEN_GUARDED_BY(shared_mu_) = false;
  // Length of shared_, changed under shared_mu_. seq_cst increments by remote pushers are the
  // waker half of the sleep/wake Dekker (idle() re-checks it, seq_cst); other reads are hints.
  std::atomic<std::uint32_t> shared_n_{0};
  bool flip_ = false;                        // pop_ready's alternation
  std::atomic<Context*> returned_{nullptr};  // Treiber stack via Context::next_
  TimerBox* free_timers_ = nullptr;
  // Timers of adopted contexts sent home (post_timer): a lock-free LIFO via TimerBox::next,
  // pushed by any thread (release CAS), taken whole by the owner (acquire exchange).
  std::atomic<TimerBox*> returned_timers_{nullptr};
  void drain_returned_timers() noexcept;
  std::vector<TimerBox*> timers_;  // every box of this loop (freed at teardown)
  RunQueue runq_;
  std::vector<Context*> pool_;
  StackPool stacks_;
  Poller poller_;
  bool in_uv_run_ = false;  // inside uv_run: see make_ready
  // A backtrace visit in progress (backtrace_of / serve_backtrace; owner thread only).
  Context* bt_visit_ = nullptr;
  void** bt_frames_ = nullptr;
  int bt_max_ = 0;
  int bt_count_ = 0;
  std::uint32_t poll_countdown_ = kPollInterval;  // dispatches left before the next I/O poll
  std::int64_t last_poll_ns_ = 0;                 // CLOCK_MONOTONIC at the end of the last poll
  // True when the running fiber should hand the CPU to the scheduler context for an I/O poll:
  // every kPollInterval dispatches, but not more often than kPollPeriodNs (one vDSO clock read
  // per kPollInterval dispatches; a fiber-switching hot loop then pays no epoll_wait syscall
  // and no extra switches per 61 dispatches, and I/O waits at most kPollPeriodNs longer).
  bool poll_due() {
    if (--poll_countdown_ != 0) return false;
    poll_countdown_ = kPollInterval;
    return poll_period_elapsed();
  }
  bool poll_period_elapsed() noexcept;
  bool run_loop(class Machine* m);

  // Started library fibers (tasks without a thread identity) on this worker: they run with
  // the machine's own thread pointer, so the worker cannot be handed off while any exists.
  // Owner thread only (the hand-off handler reads it on the owner thread).
  int nlibrary_ = 0;
  bool main_queued_ = false;  // worker 0 has queued the runtime's main task

  // msg_mu_ guards closed_fds_, cancels_, calls_, accepting_ (a SpinLock: no libc locks
  // under the shim). A leaf lock: nothing else is taken while it is held.
  SpinLock msg_mu_;
  std::vector<std::pair<int, std::uint32_t>> closed_fds_
      GREEN_GUARDED_BY(msg_mu_);  // (fd, generation)
  // false after teardown's last drain: post_fd_closed refuses
  bool accepting_ GREEN_GUARDED_BY(msg_mu_) = true;
  std::vector<Task*> cancels_ GREEN_GUARDED_BY(msg_mu_);  // each holds a reference
  std::vector<std::pair<void (*)(Worker*, void*), void*>> calls_ GREEN_GUARDED_BY(msg_mu_);
  // Set (seq_cst) after a message is queued under msg_mu_, before notify(): the Dekker pair
  // with idle()'s sleeping_ store and re-check. Cleared under msg_mu_ by drain_messages.
  std::atomic<bool> has_msgs_{false};
  std::atomic<Task*> interrupts_{nullptr};  // lock-free stack via Task::interrupt_next_

  friend class Context;
  friend class Runtime;
  friend class Machines;
  friend bool handoff_signal(int, int) noexcept;
  friend long running_os_thread(Task*) noexcept;
  friend bool enable_thread_pointers(int, long, void (*)(void*)) noexcept;
  friend void* own_thread_pointer(void*) noexcept;
};

}  // namespace green::detail
