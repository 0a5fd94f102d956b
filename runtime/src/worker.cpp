// Worker implementation (design note in worker.hpp).
#include "worker.hpp"
#include "tls.hpp"

#include <execinfo.h>
#include <pthread.h>
#include <time.h>

#include <chrono>
#include <cstdio>
#include <exception>
#include <mutex>
#include <stdexcept>
#include <string>

#include "green/detail/hooks.hpp"
#include "green/wait_group.hpp"
#include "machine.hpp"
#include "runtime.hpp"
#include "spin.hpp"
#include "task_state.hpp"
#include "thread_pointer.hpp"

namespace green::detail {

__attribute__((tls_model("initial-exec"))) constinit thread_local Worker* Worker::tls_current_ =
    nullptr;

TpConfig g_tp;
std::atomic<unsigned> g_yield_requests{0};

void slice_yield() noexcept {
  Worker* w = Worker::current();
  ThreadState& st = tls();
  if (!w || !st.task || st.bypass > 0) return;
  // Acquire: pairs with the monitor's release exchange (yield_dispatch_ is its snapshot).
  if (!w->yield_requested_.load(std::memory_order_relaxed) ||
      !w->yield_requested_.exchange(false, std::memory_order_acquire))
    return;
  g_yield_requests.fetch_sub(1, std::memory_order_relaxed);
  // A request about an earlier run of this worker (the fiber switched since) is stale.
  if (w->dispatches_.load(std::memory_order_relaxed) !=
      w->yield_dispatch_.load(std::memory_order_relaxed))
    return;
  w->yield_to_loop();
}

namespace {

char* g_sched0_tp = nullptr;  // set_scheduler0_tp: worker 0's scheduler identity (one run)
void (*g_sched0_entered)() = nullptr;

// Stores the per-worker runtime state into the TLS block at `tp` (explicit offsets: no TLS
// access, so it may run with any FS base). w == nullptr: "no worker" (after the runtime).
void store_worker_state(char* tp, Worker* w, int index, Task* task, long tid, char* own) noexcept {
  *reinterpret_cast<Worker**>(tp + g_tp.current_offset) = w;
  auto* st = reinterpret_cast<ThreadState*>(tp + g_tp.state_offset);
  st->task = task;
  st->worker = index;
  st->own_tp = own;
  if (g_tp.tid_offset >= 0 && tp != g_tp.keep_tid)
    *reinterpret_cast<int*>(tp + g_tp.tid_offset) = int(tid);
}

}  // namespace

bool enable_thread_pointers(int write, long tid_offset, void (*release)(void*)) noexcept {
  if (write != int(TpWrite::kWrfsbase) && write != int(TpWrite::kArchPrctl)) return false;
  char* tp = read_tp();
  g_tp.current_offset = reinterpret_cast<char*>(&Worker::tls_current_) - tp;
  g_tp.state_offset = reinterpret_cast<char*>(&g_thread_state) - tp;
  g_tp.tid_offset = tid_offset;
  g_tp.keep_tid = tp;
  g_tp.release = release;
  g_tp.write = TpWrite(write);
  return true;
}

int descriptor_tid() noexcept {
  if (g_tp.write == TpWrite::kOff || g_tp.tid_offset < 0) return int(raw_gettid());
  return *reinterpret_cast<const int*>(read_tp() + g_tp.tid_offset);
}

void* own_thread_pointer(void* block) noexcept {
  if (g_tp.write == TpWrite::kOff) return nullptr;
  // Not through tls_current_'s worker: a fiber detached by a hand-off has none, and a thread
  // that lost its worker must not name the worker's new thread (machine.hpp).
  return reinterpret_cast<ThreadState*>(static_cast<char*>(block) + g_tp.state_offset)->own_tp;
}

void set_scheduler0_tp(void* tp, void (*entered)()) noexcept {
  g_sched0_tp = static_cast<char*>(tp);
  g_sched0_entered = entered;
}

void current_fiber_stack(void** lo, std::size_t* size, std::size_t* guard) noexcept {
  Worker* w = Worker::current();
  Context* c = w ? w->running() : nullptr;
  if (!c || c->is_scheduler_) {
    *lo = nullptr;
    *size = 0;
    *guard = 0;
    return;
  }
  char* usable_lo = c->stack_.top() - c->stack_.usable();
  *lo = usable_lo;
  *size = c->stack_.usable();
  *guard = c->stack_.guarded ? std::size_t(usable_lo - c->stack_.base) : 0;
}

__attribute__((noinline)) void Context::enter_tp(Context* to) noexcept {
  Worker* w = to->worker();
  store_worker_state(to->tp_, w, w->index_, to->task_, w->tid_, w->own_tp_);
  write_tp(to->tp_);
}

namespace {
constexpr auto kSpin = std::chrono::microseconds(20);
}

Worker::Worker(Runtime* rt, int index, std::size_t stack_size, StackGuard guard)
    : rt_(rt), index_(index), sched_(this), stacks_(stack_size, guard), poller_(this) {
  int err;
  {
    // Runtime-internal: under the shim, the fds libuv creates here (epoll set, signal pipes,
    // eventfd) go through its hooks, which move them out of the program's range
    // (place_internal_fd).
    ShimBypass bypass;
    err = uv_loop_init(&loop_);
    if (err == 0) uv_async_init(&loop_, &async_, [](uv_async_t*) {});  // only interrupts uv_run
  }
  if (err != 0) {
    throw std::runtime_error(std::string("green: uv_loop_init failed: ") + uv_strerror(err));
  }
  loop_.data = this;
  sched_.is_scheduler_ = true;
  sched_.state_ = Context::State::kRunning;
  running_ = &sched_;
}

Worker::~Worker() = default;

bool Worker::stopping() const {
  return rt_->stopping();
}

// --- switching ------------------------------------------------------------------------------

// --- queues -----------------------------------------------------------------------------------

bool Worker::drain_inbox() {
  if (!inbox_.load(std::memory_order_relaxed)) return false;
  Context* list = inbox_.exchange(nullptr, std::memory_order_acquire);  // pairs with push CAS
  // The inbox is LIFO; reverse it so fibers run in the order they were woken.
  Context* rev = nullptr;
  while (list) {
    Context* n = list->next_;
    list->next_ = rev;
    rev = list;
    list = n;
  }
  bool any = rev != nullptr;
  while (rev) {
    Context* n = rev->next_;
    rev->dequeue_check();  // push_ready counts it again
    push_ready(rev);
    rev = n;
  }
  return any;
}

void Worker::make_ready_remote(Context* c) noexcept {
  if (c->wake_direct_.load(std::memory_order_relaxed) == Context::kWakeDirect) {
    // Migratable, unpinned, no timer: straight onto the shared queue, where an idle worker may
    // take it if this one is busy in a fiber (state_ is left to this worker's thread).
    push_shared(c);  // its seq_cst increment of shared_n_ is the waker half of the Dekker
    notify();
    if (running_task_.load(std::memory_order_relaxed)) rt_->wake_one(this);
    return;
  }
  c->enqueue_check();
  Context* head = inbox_.load(std::memory_order_relaxed);
  do {
    c->next_ = head;
    // seq_cst: publishes c (release, pairs with drain_inbox's acquire exchange) and is the
    // waker half of the sleep/wake Dekker with idle() (notify() reads sleeping_ next).
  } while (
      !inbox_.compare_exchange_weak(head, c, std::memory_order_seq_cst, std::memory_order_relaxed));
  notify();
}

bool Worker::may_hold_next(const Context* c) const noexcept {
  // A spinning worker would take a migratable fiber from shared_ (steal_ready): leave it
  // there to run in parallel. A hint (relaxed): the slot costs at most the waker's run.
  return c->pin_ != 0 || rt_->nspinning_.load(std::memory_order_relaxed) == 0;
}

Context* Worker::pop_next() {
  if (!next_allowed()) return nullptr;
  if (Context* c = runnext_) {
    runnext_ = nullptr;
    c->dequeue_check();
    return c;
  }
  start_next_ = false;
  while (Task* t = pop_task()) {
    if (Context* c = context_for(t)) return c;
  }
  return nullptr;
}

void Worker::push_shared(Context* c) noexcept {
  c->enqueue_check();
  c->next_ = nullptr;
  SpinGuard lk(shared_mu_);
  if (shared_tail_) {
    shared_tail_->next_ = c;
  } else {
    shared_head_ = c;
  }
  shared_tail_ = c;
  // seq_cst: the waker half of the sleep/wake Dekker for remote pushers (see shared_n_).
  shared_n_.fetch_add(1, std::memory_order_seq_cst);
}

Context* Worker::pop_shared() noexcept {
  // The owner never waits for suspended_: a context on its shared queue is either one it
  // queued from another context, or one that parked on this thread (the switch is done).
  SpinGuard lk(shared_mu_);
  Context* c = shared_head_;
  if (!c) return nullptr;
  shared_head_ = c->next_;
  if (!shared_head_) shared_tail_ = nullptr;
  shared_n_.fetch_sub(1, std::memory_order_relaxed);
  c->dequeue_check();
  return c;
}

void Worker::hold(bool on) noexcept {
  SpinGuard lk(shared_mu_);
  hold_ = on;
}

std::uint32_t Worker::steal_ready(Worker* thief) noexcept {
  // Hints: only a worker busy in a fiber is robbed (one in its scheduler runs them soon).
  if (shared_n_.load(std::memory_order_relaxed) == 0 ||
      !running_task_.load(std::memory_order_relaxed))
    return 0;
  Context* got = nullptr;
  std::uint32_t n = 0;
  {
    SpinGuard lk(shared_mu_);
    if (hold_) return 0;
    std::uint32_t have = shared_n_.load(std::memory_order_relaxed);
    std::uint32_t take = have - have / 2;
    Context* tail = nullptr;
    while (n < take && shared_head_) {
      Context* c = shared_head_;
      shared_head_ = c->next_;
      c->next_ = nullptr;
      if (tail) {
        tail->next_ = c;
      } else {
        got = c;
      }
      tail = c;
      ++n;
      // Under the lock: an owner that holds (dumps, cancel delivery) sees the new worker.
      c->worker_.store(thief, std::memory_order_relaxed);
      // seq_cst: as run_task's store (the Dekker with Task::cancel / interrupt_task).
      task_state(c->task_).home.store(thief, std::memory_order_seq_cst);
    }
    if (!shared_head_) shared_tail_ = nullptr;
    shared_n_.fetch_sub(n, std::memory_order_relaxed);
  }
  while (got) {
    Context* next = got->next_;
    // Acquire: pairs with finish_switch's release; the context's saved state is complete.
    while (!got->suspended_.load(std::memory_order_acquire)) cpu_relax();
    got->dequeue_check();
    thief->push_ready(got);
    got = next;
  }
  return n;
}

TimerBox* Worker::take_timer() {
  if (TimerBox* b = free_timers_) {
    free_timers_ = b->next;
    return b;
  }
  auto* b = new TimerBox;
  uv_timer_init(&loop_, &b->timer);
  b->timer.data = b;
  b->home = this;
  timers_.push_back(b);
  return b;
}

bool Worker::adopt(Context* c, Worker* from) noexcept {
  {
    // As steal_ready: under the old worker's queue lock, so that an owner that holds sees
    // the new worker (or we see its hold and leave the context alone).
    SpinGuard lk(from->shared_mu_);
    // Acquire: pairs with finish_switch's release; the context's saved state is complete.
    // Not yet suspended (the waker beat the parker's switch): wake it through its worker.
    if (from->hold_ || !c->suspended_.load(std::memory_order_acquire)) return false;
    // Read again after the acquire: the mode the caller saw may be a previous wait's.
    if (c->wake_direct_.load(std::memory_order_relaxed) == Context::kWakeInbox) return false;
    c->worker_.store(this, std::memory_order_relaxed);
    // seq_cst: as steal_ready's store (the Dekker with Task::cancel / interrupt_task).
    task_state(c->task_).home.store(this, std::memory_order_seq_cst);
  }
  make_ready_local(c);  // its armed timer is disarmed from here (Context::disarm_timer)
  return true;
}

void Worker::post_timer(TimerBox* b) noexcept {
  // Wait out a firing callback on the home thread (it reads the waiter, which lives on the
  // stack of the fiber that is about to return from its wait on this thread).
  std::uint32_t s = TimerBox::kArmed;
  for (int spins = 0; !b->state.compare_exchange_weak(
           s, TimerBox::kAbandoned, std::memory_order_acq_rel, std::memory_order_acquire);
       ++spins) {
    s = TimerBox::kArmed;
    spin_backoff(spins);  // the home thread may have been preempted inside on_timer
  }
  TimerBox* head = returned_timers_.load(std::memory_order_relaxed);
  do {
    b->next = head;
    // Release: publishes b->next to drain_returned_timers' acquire exchange.
  } while (!returned_timers_.compare_exchange_weak(head, b, std::memory_order_release,
                                                   std::memory_order_relaxed));
  // No notify(): the home loop need not wake for this (an eventfd write per adoption). The
  // box's own timer is still armed there, so the loop wakes by its deadline at the latest
  // and drains it then, or at any earlier pass. Release: as the posters' stores (worker.hpp).
  has_msgs_.store(true, std::memory_order_release);
}

void Worker::drain_returned_timers() noexcept {
  // Acquire: pairs with post_timer's release CAS (the links, and the kAbandoned state).
  TimerBox* b = returned_timers_.exchange(nullptr, std::memory_order_acquire);
  while (b) {
    TimerBox* next = b->next;
    uv_timer_stop(&b->timer);  // on_timer left it alone (kAbandoned)
    b->state.store(TimerBox::kIdle, std::memory_order_relaxed);
    give_timer(b);
    b = next;
  }
}

void Worker::post_return(Context* c) noexcept {
  Context* head = returned_.load(std::memory_order_relaxed);
  do {
    c->next_ = head;
    // acq_rel: as post_interrupt's CAS (publishes c's saved state; orders the has_msgs_ store
    // below after a drain this CAS reads).
  } while (!returned_.compare_exchange_weak(head, c, std::memory_order_acq_rel,
                                            std::memory_order_acquire));
  has_msgs_.store(true, std::memory_order_seq_cst);  // waker half of the Dekker (worker.hpp)
  notify();
}

void Worker::drain_returned() {
  Context* c = returned_.exchange(nullptr, std::memory_order_acq_rel);  // see post_return
  while (c) {
    Context* next = c->next_;
    c->worker_.store(this, std::memory_order_relaxed);
    reuse_or_destroy(c);
    c = next;
  }
}

void Worker::reuse_or_destroy(Context* ctx) {
  if (ctx->stack_.pooled && pool_.size() < kMaxPooledContexts) {
    ctx->state_ = Context::State::kIdle;
    pool_.push_back(ctx);
  } else {
    ctx->destroy();
  }
}

void Worker::notify() noexcept {
  // Pairs with the seq_cst store of sleeping_ in idle(): either we see it set, or the
  // sleeper's re-check sees our work.
  if (sleeping_.load(std::memory_order_seq_cst) &&
      sleeping_.exchange(false, std::memory_order_seq_cst)) {
    wake_loop();
  }
}

void Worker::push_task(Task* t) {
  if (tls_current_ != this || !runq_.push(t)) {
    rt_->global_.push(t);
    rt_->wake_one(this);
    return;
  }
  // Spawned by a fiber: a task starts at the next dispatch (it stays stealable in runq_);
  // a fiber that held runnext_ goes to the back (Go's newproc).
  if (running_ != &sched_) {
    kick_next();
    start_next_ = true;
  }
  // Our own queue: we will run it ourselves if nobody steals it, so a missed wake-up costs
  // only parallelism; skip the fence and just look whether a worker sleeps (Go's wakep).
  if (rt_->nsleeping_.load(std::memory_order_relaxed) > 0 &&
      rt_->nspinning_.load(std::memory_order_relaxed) == 0)
    rt_->wake_one(this);
}

Task* Worker::pop_task() {
  if (Task* t = runq_.pop()) return t;
  if (!rt_->global_.empty()) return rt_->global_.pop();
  return nullptr;
}

Context* Worker::context_for(Task* t) {
  Context* c = nullptr;
  std::size_t want = t->stack_size_;
  bool default_size = (want == 0 || want == stacks_.default_size());
  if (default_size && !pool_.empty()) {
    c = pool_.back();
    pool_.pop_back();
  } else {
    // Runtime code on a fiber's stack (park_current and yield_slow call us with the parking
    // fiber's thread state, hooks active): the libc and libstdc++ calls below (mmap, malloc, a
    // StackError's unwinder with its pthread_once) must pass straight through the shim. A
    // hook that parked here would park the fiber a second time inside its own park(): its
    // outer wait's state and wake-up are lost (the prodcons deadlock of the futex hook).
    ShimBypass bypass;
    try {
      c = Context::create(this, default_size ? 0 : want);
    } catch (...) {
      // No stack: the task fails with the StackError without running.
      task_state(t).error = std::current_exception();
      task_state(t).state.store(TaskState::kRunning, std::memory_order_relaxed);
      bool is_main = (t == rt_->main_);
      finish_task(t);
      t->unref();
      if (is_main) rt_->stop();
      return nullptr;
    }
  }
  c->task_ = t;
  c->tp_ = t->tp_ ? t->tp_ : sched_.tp_;
  // Only a task with a thread identity of its own may migrate: a library fiber shares this
  // worker's TLS, and compiled code may keep TLS addresses across a park (docs/design.md).
  c->migratable_ = t->tp_ != nullptr;
  if (!c->migratable_) ++nlibrary_;
  return c;
}

Context* Worker::next_runnable_slow() {
  if (drain_inbox()) return pop_ready();
  while (Task* t = pop_task()) {
    if (Context* c = context_for(t)) return c;
  }
  return nullptr;
}

// --- fiber-side scheduling ------------------------------------------------------------------

std::int64_t Worker::now_ns() noexcept {
  timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return std::int64_t(ts.tv_sec) * 1'000'000'000 + ts.tv_nsec;
}

__attribute__((noinline)) bool Worker::poll_period_elapsed() noexcept {
  return now_ns() - last_poll_ns_ >= kPollPeriodNs;
}

void Worker::park_current() {
  Context* self = running_;
  Context* next = nullptr;
  if (!poll_due()) next = next_runnable();
  switch_to(next ? next : &sched_);
  // A dump may visit us while we are parked (see backtrace_of); we then return here. The
  // worker is read again: a migratable fiber may have been resumed by another one.
  Worker* now = tls_current_;
  while (now->bt_visit_ == self) now->serve_backtrace(self);
}

// --- backtraces of parked fibers (dumps) ----------------------------------------------------
//
// A parked fiber is suspended inside park_current's switch_to. To take its backtrace the
// scheduler context jumps into it with the raw fcontext switch (no dispatch counted, no
// state change: the monitor must not take a dump for progress), the fiber records
// ::backtrace() on its own stack and jumps straight back. Only the owner thread does this,
// from the scheduler context, so nothing else can observe the visit.

int Worker::backtrace_of(Context* c, void** frames, int max) {
  if (c->state_ != Context::State::kParked) return 0;
  bt_visit_ = c;
  bt_frames_ = frames;
  bt_max_ = max;
  bt_count_ = 0;
  running_->jump(c);  // from the scheduler context; serve_backtrace jumps back
  return bt_count_;
}

__attribute__((noinline)) void Worker::serve_backtrace(Context* self) {
  bt_count_ = ::backtrace(bt_frames_, bt_max_);
  // Drop the frames of the visit itself (this function, park_current, and whatever a
  // sanitizer's backtrace interceptor adds): everything up to our return into park_current.
  void* in_park_current = __builtin_return_address(0);
  for (int i = 0; i < bt_count_; ++i) {
    if (bt_frames_[i] == in_park_current) {
      for (int k = i + 1; k < bt_count_; ++k) bt_frames_[k - i - 1] = bt_frames_[k];
      bt_count_ -= i + 1;
      break;
    }
  }
  bt_visit_ = nullptr;
  self->jump(&sched_);
}

void Worker::yield_to_loop() {
  Context* self = running_;
  push_ready(self);
  switch_to(&sched_);
}

void Worker::yield_current() {
  Context* self = running_;
  Context* next = ready_head_;
  // Fast path: another started fiber is ready, no unstarted task waits (they go first, see
  // below), nothing arrived from other threads and no poll is due. Plain loads only.
  if (__builtin_expect(next != nullptr && poll_countdown_ > 1 && !runnext_ && runq_.empty() &&
                           rt_->global_.size() == 0 && !inbox_.load(std::memory_order_relaxed),
                       1)) {
    --poll_countdown_;
    if (__builtin_expect(self->migratable_ || shared_n_.load(std::memory_order_relaxed) != 0, 0)) {
      next = pop_ready();  // may alternate with shared_
      push_ready(self);    // a migratable fiber goes to shared_
    } else {
      // pop_ready() + push_ready(self) as one rotation of ready_: next leaves the head, self
      // joins the tail.
      next->dequeue_check();
      self->enqueue_check();
      self->state_ = Context::State::kReady;
      self->next_ = nullptr;
      if (Context* second = next->next_) {
        ready_head_ = second;
        ready_tail_->next_ = self;
      } else {
        ready_head_ = self;
      }
      ready_tail_ = self;
    }
    switch_away(self, next);  // next came off ready_: never the running context
    return;
  }
  yield_slow(self);
}

__attribute__((noinline)) void Worker::yield_slow(Context* self) {
  Context* next = nullptr;
  if (poll_due()) {
    next = &sched_;
  } else {
    // A yielding fiber lets a new fiber start before it runs other started ones: otherwise
    // fibers that keep yielding to each other would starve every fiber not started yet.
    while (!next) {
      Task* t = pop_task();
      if (!t) break;
      next = context_for(t);
    }
    if (!next) {
      if (inbox_.load(std::memory_order_relaxed)) drain_inbox();
      next = pop_ready();
    }
    if (!next) return;  // nobody else to run
  }
  push_ready(self);
  switch_to(next);
}

void Worker::context_done(Context* ctx) {
  if (!ctx->migratable_) --nlibrary_;
  ctx->task_ = nullptr;
  tls().task = nullptr;
  bool home = ctx->home_ == this;  // a migrated context goes back to its home's pool
  Context* next = nullptr;
  if (!stopping() && !poll_due()) {
    // A task this fiber spawned (start_next_) starts below, on this very stack if it can.
    bool start = false;
    if ((runnext_ || start_next_) && next_allowed()) {
      if ((next = runnext_)) {
        runnext_ = nullptr;
        next->dequeue_check();
      } else {
        start_next_ = false;
        start = true;
      }
    }
    if (!next && !start) {
      next = pop_queued();
      if (!next && drain_inbox()) next = pop_ready();
    }
    if (!next) {
      while (Task* t = pop_task()) {
        if (home && (t->stack_size_ == 0 || t->stack_size_ == stacks_.default_size()) &&
            (t->tp_ ? t->tp_ : sched_.tp_) == ctx->tp_) {
          // Same stack size and thread pointer: a switch would change nothing.
          if (ctx->stack_.pooled) {  // run it right here: no switch at all
            ctx->task_ = t;
            ctx->migratable_ = t->tp_ != nullptr;  // (false: the TPs are the worker's)
            if (!ctx->migratable_) ++nlibrary_;
            tls().task = t;
            return;
          }
        }
        if ((next = context_for(t))) break;
      }
    }
  }
  if (!next) next = &sched_;
  if (!home) {
    ctx->state_ = Context::State::kIdle;
    ctx->retire_ |= Context::kReturnHome;  // posted by Context::switched_away on `next`
  } else if (ctx->stack_.pooled && pool_.size() < kMaxPooledContexts) {
    ctx->state_ = Context::State::kIdle;
    pool_.push_back(ctx);
  } else {
    ctx->retire_ |= Context::kDestroy;  // destroyed by Context::finish_switch on the next context
  }
  switch_to(next);
  // Taken from the pool by context_for(): task_ is set.
}

// --- the loop -------------------------------------------------------------------------------

bool Worker::post_fd_closed(int fd, std::uint32_t gen) {
  {
    SpinGuard lk(msg_mu_);
    if (!accepting_) return false;
    closed_fds_.emplace_back(fd, gen);
  }
  has_msgs_.store(true, std::memory_order_seq_cst);  // waker half of the Dekker (worker.hpp)
  notify();
  return true;
}

void Worker::post_call(void (*fn)(Worker*, void*), void* arg) {
  {
    SpinGuard lk(msg_mu_);
    calls_.emplace_back(fn, arg);
  }
  has_msgs_.store(true, std::memory_order_seq_cst);  // waker half of the Dekker (worker.hpp)
  notify();
}

void Worker::post_cancel(Task* t) {
  if (tls_current_ == this) {  // on the task's own worker: deliver now
    hold(true);                // no thief takes it meanwhile (see deliver_cancel)
    t->ref();
    deliver_cancel(t);
    hold(false);
    return;
  }
  t->ref();
  {
    SpinGuard lk(msg_mu_);
    cancels_.push_back(t);
  }
  has_msgs_.store(true, std::memory_order_seq_cst);  // waker half of the Dekker (worker.hpp)
  notify();
}

void Worker::post_interrupt(Task* t) noexcept {
  TaskState& ts = task_state(t);
  Task* head = interrupts_.load(std::memory_order_relaxed);
  do {
    ts.interrupt_next = head;
    // acq_rel: the drain's exchange sees interrupt_next (release); and if this CAS reads the
    // drain's exchange, the drain's clearing of has_msgs_ happens before our store below
    // (acquire), so the worker cannot miss this push.
  } while (!interrupts_.compare_exchange_weak(head, t, std::memory_order_acq_rel,
                                              std::memory_order_acquire));
  has_msgs_.store(true, std::memory_order_seq_cst);
  notify();
}

// Cancels and interrupts are delivered by the worker the task runs on, from the scheduler
// context (or inline by a fiber of it), while this worker holds its shared queue (hold_): a
// task whose home is this worker cannot be stolen meanwhile, so its waiter is ours to read. A
// task that migrated has a new home (steal_ready stores it under the lock): forwarded there.
void Worker::deliver_cancel(Task* t) {
  TaskState& s = task_state(t);
  auto* home = static_cast<Worker*>(s.home.load(std::memory_order_seq_cst));
  if (home && home != this) {
    home->post_cancel(t);  // takes its own reference
    t->unref();
    return;
  }
  // The task is parked (we are in the scheduler context, or a fiber of this worker cancels
  // it), ready, or finished. Skip if park() already consumed the cancel.
  if (s.waiter && s.waiter->interruptible && s.cancel_pending.load(std::memory_order_relaxed))
    wake(s.waiter, WakeReason::kCancelled);
  t->unref();
}

void Worker::drain_interrupts() {
  Task* t = interrupts_.exchange(nullptr, std::memory_order_acq_rel);  // see post_interrupt
  while (t) {
    TaskState& ts = task_state(t);
    Task* next = ts.interrupt_next;
    // seq_cst: an interrupt_task() that stores its flag after this either finds the task off
    // the list and pushes it again, or its flag is seen by the load below.
    ts.interrupt_queued.store(false, std::memory_order_seq_cst);
    auto* home = static_cast<Worker*>(ts.home.load(std::memory_order_seq_cst));
    if (home && home != this) {  // migrated: its new home delivers it (as interrupt_task)
      if (!ts.interrupt_queued.exchange(true, std::memory_order_seq_cst)) {
        t->ref();
        home->post_interrupt(t);
      }
      t->unref();
      t = next;
      continue;
    }
    // The task is parked (we are in the scheduler context), ready, or finished.
    if (ts.waiter && ts.waiter->interruptible &&
        ts.interrupt_pending.load(std::memory_order_seq_cst) &&
        ts.interrupt_pending.exchange(false, std::memory_order_seq_cst) &&
        !wake(ts.waiter, WakeReason::kInterrupted)) {
      ts.interrupt_pending.store(true, std::memory_order_seq_cst);  // woken otherwise: next wait
    }
    t->unref();
    t = next;
  }
}

void Worker::drain_messages() {
  // Acquire: pairs with the posters' seq_cst store (the lock below orders the vectors anyway).
  if (!has_msgs_.load(std::memory_order_acquire)) return;
  std::vector<std::pair<int, std::uint32_t>> msgs;
  std::vector<Task*> cancels;
  std::vector<std::pair<void (*)(Worker*, void*), void*>> calls;
  {
    SpinGuard lk(msg_mu_);
    has_msgs_.store(false, std::memory_order_relaxed);
    msgs.swap(closed_fds_);
    cancels.swap(cancels_);
    calls.swap(calls_);
  }
  // After has_msgs_ was cleared: a push the exchange misses sets it again (see post_interrupt).
  if (returned_.load(std::memory_order_acquire)) drain_returned();
  if (returned_timers_.load(std::memory_order_relaxed)) drain_returned_timers();
  bool interrupts = interrupts_.load(std::memory_order_acquire) != nullptr;
  if (interrupts || !cancels.empty()) {
    hold(true);
    if (interrupts) drain_interrupts();
    for (Task* t : cancels) deliver_cancel(t);
    hold(false);
  }
  for (auto [fn, arg] : calls) fn(this, arg);
  for (auto [fd, gen] : msgs) poller_.fd_closed(fd, gen);
}

bool Worker::find_work() {
  if (Task* t = rt_->steal(this)) {
    if (Context* c = context_for(t)) push_ready(c);
    return true;
  }
  return rt_->steal_ready(this);
}

void Worker::idle() {
  if (find_work()) return;
  if (rt_->worker_count() > 1 &&
      2 * rt_->nspinning_.load(std::memory_order_relaxed) < int(rt_->worker_count())) {
    // seq_cst: wake_one() reads nspinning_ after its fence; a spinner it sees will find the
    // work (the loop below), so it need not wake a sleeper.
    rt_->nspinning_.fetch_add(1, std::memory_order_seq_cst);
    auto until = std::chrono::steady_clock::now() + kSpin;
    bool found = false;
    while (!found && !stopping()) {
      for (int i = 0; i < 64; ++i) cpu_relax();
      // Acquire: pairs with the publishers' seq_cst CAS / store (the work is visible).
      found = inbox_.load(std::memory_order_acquire) || has_msgs_.load(std::memory_order_acquire) ||
              shared_n_.load(std::memory_order_acquire) != 0 || find_work();
      if (std::chrono::steady_clock::now() >= until) break;
    }
    rt_->nspinning_.fetch_sub(1, std::memory_order_seq_cst);  // before the sleep's Dekker below
    if (found) return;
  }
  // The sleeper half of the sleep/wake Dekker (worker.hpp): publish sleeping_ and nsleeping_,
  // then re-check every source of work, all seq_cst.
  sleeping_.store(true, std::memory_order_seq_cst);
  rt_->nsleeping_.fetch_add(1, std::memory_order_seq_cst);
  bool work = inbox_.load(std::memory_order_seq_cst) || has_msgs_.load(std::memory_order_seq_cst) ||
              shared_n_.load(std::memory_order_seq_cst) != 0 || !rt_->global_.empty() ||
              !runq_.empty() || ready_head_ || runnext_ || stopping();
  if (!work) {
    // Nothing but our own uv_async_t can wake this loop: a candidate for the deadlock report
    // (the monitor thread decides, looking at every worker).
    // seq_cst: the monitor reads stuck_ and sleeping_ (seq_cst) and must not see a stale
    // stuck_ = true from before a wake-up.
    stuck_.store(loop_.active_handles <= 1 && loop_.active_reqs.count == 0,
                 std::memory_order_seq_cst);
    poll(UV_RUN_ONCE);
    stuck_.store(false, std::memory_order_relaxed);
  }
  sleeping_.store(false, std::memory_order_relaxed);
  rt_->nsleeping_.fetch_sub(1, std::memory_order_seq_cst);  // see the Dekker above
}

void Worker::run(Machine* m) {
  // Worker 0 runs on the thread that called green::run. When the shim gives that thread's
  // identity (the process's main thread: constructors' TLS, pthread_self) to the main fiber,
  // the scheduler context runs with an identity of its own meanwhile; the FS base is switched
  // here, around the machine's loop (noinline, so no TLS address of either side crosses the
  // switch). Everything after run_machine uses locals only: by then this worker may run on
  // another machine, or be torn down.
  char* own = read_tp();
  char* sched_tp = own;
  if (index_ == 0 && g_sched0_tp) {
    sched_tp = g_sched0_tp;
    g_sched0_tp = nullptr;
  }
  long tid = raw_gettid();
  Machines& ms = *rt_->machines();
  m->tid = tid;
  m->own_tp = own;
  m->sched_tp = sched_tp;
  if (sched_tp == own) {
    ms.run_machine(m, this);
    return;
  }
  store_worker_state(sched_tp, this, index_, nullptr, tid, own);
  write_tp(sched_tp);
  if (g_sched0_entered) g_sched0_entered();
  ms.run_machine(m, this);
  // `own` is the main fiber's identity: another machine may still be finishing the main task
  // on it (this one may have left as a spare). Restore it only when every worker is torn down.
  // Acquire: pairs with teardown's release increment.
  while (rt_->torn_down_.load(std::memory_order_acquire) < rt_->worker_count()) os_yield();
  store_worker_state(own, nullptr, -1, nullptr, tid, nullptr);
  write_tp(own);
}

bool Worker::run_on(Machine* m) {
  // Bind: from here on this thread is the worker's (its tid goes into the fibers' glibc
  // descriptors at switch-in, enter_tp; its scheduler context runs on this thread's stack).
  tid_ = m->tid;
  own_tp_ = m->own_tp;
  sched_.tp_ = m->sched_tp;
  sched_.state_ = Context::State::kRunning;
  running_ = &sched_;
  running_task_.store(nullptr, std::memory_order_relaxed);
  running_ctx_.store(nullptr, std::memory_order_release);  // pairs with the monitor's acquire
  dispatches_.store(dispatches_.load(std::memory_order_relaxed) + 1, std::memory_order_relaxed);
  // Release: pairs with the monitor's acquire load (Machines::consider): the binding above is
  // complete before a hand-off of this worker may be asked for.
  m_.store(m, std::memory_order_release);
  if (!m->altstack) {
    install_overflow_handler_on_this_thread();
    m->altstack = true;
  }
  {
    // The scheduler context runs on this thread's own stack.
    pthread_attr_t attr;
    void* lo = nullptr;
    std::size_t len = 0;
    if (pthread_getattr_np(pthread_self(), &attr) == 0) {
      pthread_attr_getstack(&attr, &lo, &len);
      pthread_attr_destroy(&attr);
    }
    sanitizer_register_stack(sched_.san_, lo, len, true);
  }
  // Only now may another worker steal `main` (see Runtime::run): on worker 0 (the process's
  // initial thread) glibc's pthread_getattr_np reads /proc/self/maps through an fd, which must
  // not take a number the program's first open() expects.
  if (index_ == 0 && !main_queued_) {
    main_queued_ = true;
    runq_.push(rt_->main_);
  }
  tls_current_ = this;
  tls().worker = index_;
  tls().task = nullptr;
  tls().own_tp = m->own_tp;  // this (scheduler) block's thread, whichever worker it runs
  return run_loop(m);
}

bool Worker::has_waiting_work() const noexcept {
  // Hints from another thread: a stale answer costs one hand-off too many or one check later.
  return has_pending_work() || !runq_.empty() || !rt_->global_.empty() ||
         __atomic_load_n(&ready_head_, __ATOMIC_RELAXED) != nullptr ||
         __atomic_load_n(&runnext_, __ATOMIC_RELAXED) != nullptr ||
         __atomic_load_n(&loop_.active_handles, __ATOMIC_RELAXED) > 1 ||
         __atomic_load_n(&loop_.active_reqs.count, __ATOMIC_RELAXED) != 0;
}

__attribute__((noinline)) bool Worker::run_loop(Machine* m) {
  while (!stopping()) {
    poll(UV_RUN_NOWAIT);
    drain_messages();
    // The scheduler context gets the CPU at least every kPollInterval dispatches; starting
    // new tasks here bounds how long wake-up chains among started fibers (ping-pong over
    // channels) can keep new fibers from starting (Go checks its global queue every 61 ticks
    // for the same reason). A batch, not one: with thousands of ready fibers (a server's
    // connections) one start per pass left new connections unanswered for seconds (a pass
    // comes every kPollInterval dispatches). The rest stays stealable in runq_.
    // Remote wake-ups of pinned fibers wait in the inbox, which is otherwise drained only
    // when the ready queues run dry: at least once a pass, so they cannot be starved.
    drain_inbox();
    // Before the batch: a fiber's hand-off (runnext_) or the oldest ready fiber.
    Context* next = pop_ready();
    for (int started = 0; started < kStartBatch;) {
      Task* t = pop_task();
      if (!t) break;
      if (Context* c = context_for(t)) {
        push_ready(c);
        ++started;
      }
    }
    if (next || (next = next_runnable())) {
      switch_to(next);
      // Handed off (machine.hpp): this scheduler context was suspended here while machine m
      // ran a fiber, and the worker went to another machine; m's fiber has just switched back
      // to it. Nothing of the worker may be touched any more.
      if (__builtin_expect(m_.load(std::memory_order_relaxed) != m, 0)) return true;
      continue;
    }
    idle();
  }
  // Barrier: no worker closes its loop while another may still run a fiber that could
  // uv_async_send to it, nor while a detached fiber may still queue itself (reattaching).
  // acq_rel / acquire: each worker's last loop pass happens before any worker's teardown, and
  // the monitor's last look at the workers before monitor_done_ (release in monitor.cpp).
  rt_->exited_.fetch_add(1, std::memory_order_acq_rel);
  for (unsigned spins = 1;
       rt_->exited_.load(std::memory_order_acquire) < rt_->worker_count() ||
       !rt_->monitor_done_.load(std::memory_order_acquire) || Machines::reattaching();
       ++spins) {
    os_yield();
    // A worker asleep in uv_run that missed stop()'s wake-up (the lost wake-up that
    // Monitor::rescue_sleepers covers while the monitor runs; it has stopped by now) would
    // keep every worker here: wake the loops again now and then (every ~1000 yields).
    if (spins % 1024 == 0) {
      for (std::size_t i = 0; i < rt_->worker_count(); ++i) rt_->worker(i)->wake_loop();
    }
  }
  teardown();
  rt_->torn_down_.fetch_add(1, std::memory_order_release);  // see Worker::run
  m_.store(nullptr, std::memory_order_relaxed);
  tls_current_ = nullptr;
  tls().worker = -1;
  return false;
}

void Worker::teardown() {
  // Messages that arrived after the loop's last pass hold references (cancels) or requests
  // (dumps, closers waiting for an ack): settle them before the loop and the stacks go, and
  // refuse fd-close requests from here on (their closers then do not wait for us).
  {
    SpinGuard lk(msg_mu_);
    accepting_ = false;
  }
  drain_messages();
  // Fibers still parked are abandoned: never resumed, their stacks released with the pool.
  poller_.close_all();
  uv_walk(
      &loop_,
      [](uv_handle_t* h, void*) {
        if (!uv_is_closing(h)) uv_close(h, nullptr);
      },
      nullptr);
  while (uv_run(&loop_, UV_RUN_DEFAULT) != 0) {
  }
  uv_loop_close(&loop_);
  for (TimerBox* b : timers_) delete b;  // closed by the walk above
  timers_.clear();
  free_timers_ = nullptr;
  ready_head_ = ready_tail_ = nullptr;
  runnext_ = nullptr;
  start_next_ = false;
  task_cache_.close();  // tasks freed on this thread from now on go to ::operator delete
  SpinGuard lk(shared_mu_);
  shared_head_ = shared_tail_ = nullptr;
  shared_n_.store(0, std::memory_order_relaxed);
}

}  // namespace green::detail
