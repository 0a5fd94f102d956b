// Context implementation (design note in context.hpp).
#include "context.hpp"

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <new>

#include <unistd.h>

#include "green/errors.hpp"
#include "runtime.hpp"
#include "task_state.hpp"
#include "thread_pointer.hpp"
#include "worker.hpp"

namespace green::detail {

namespace fc = boost::context::detail;

namespace {

constexpr std::size_t kContextReserve = (sizeof(Context) + 63) / 64 * 64;

}  // namespace

void Context::publish_diag(const Task* t) noexcept {
  diag_id_.store(t->id(), std::memory_order_relaxed);
  std::size_t n = std::min(t->name_.size(), kNameCopy - 1);
  for (std::size_t i = 0; i < n; ++i) diag_name_[i].store(t->name_[i], std::memory_order_relaxed);
  diag_name_[n].store('\0', std::memory_order_relaxed);
}

namespace {

// Runs t on the calling context. The task may migrate while it runs (fiber-threads), so the
// worker is read again after t->run().
void run_task(Worker* w, Task* t) {
  w->running()->publish_diag(t);
  TaskState& s = task_state(t);
  s.state.store(TaskState::kRunning, std::memory_order_relaxed);
  // Publishing home lets cancel() reach the task from now on; a cancel that came earlier is
  // seen by park() through cancel_pending: a task cancelled before it started still runs,
  // and its first blocking call throws Cancelled (so cleanup code in it always runs).
  // Dekker with Task::cancel(): store home, then read the flag (both seq_cst). If the read
  // sees a cancel, later relaxed reads in park() see it too (read-read coherence).
  s.home.store(w, std::memory_order_seq_cst);
  (void)s.cancel_pending.load(std::memory_order_seq_cst);
  fp_control_enter(s.fp);  // not the previous task's of this context (switch.hpp)
  t->run();
  if (Runtime::forked_child()) {
    // A fork child (see Runtime::on_fork_child) has no scheduler to go back to: the fiber's
    // end is the process's end. Exit handlers are skipped: libuv's would join pool threads
    // that do not exist in the child.
    std::fflush(nullptr);
    _exit(s.error ? 1 : 0);
  }
  w = Worker::current();
  Runtime* rt = w->runtime();
  bool is_main = (t == rt->main_);
  // The task's own thread identity is still the FS base here; the next context hands it back
  // (Context::switched_away) once nothing runs on it.
  if (t->tp_) w->running()->retire_ |= Context::kReleaseTp;
  finish_task(t);
  t->unref();  // the runtime's reference
  if (is_main) rt->stop();
}

}  // namespace

Context* Context::create(Worker* worker, std::size_t stack_size) {
  Stack s = worker->stacks_.allocate(stack_size);
  char* top = s.top();
  auto* c = new (top - kContextReserve) Context(worker);
  c->stack_ = s;
  char* sp = top - kContextReserve;  // the machine stack starts below the Context
  std::size_t size = static_cast<std::size_t>(sp - (s.top() - s.usable()));
  c->fctx_ = fc::make_fcontext(sp, size, &Context::entry);
  sanitizer_register_stack(c->san_, s.top() - s.usable(), s.usable(), false);
  SpinGuard lk(worker->all_mu_);
  c->all_next_ = worker->all_contexts_;
  if (c->all_next_) c->all_next_->all_prev_ = c;
  worker->all_contexts_ = c;
  return c;
}

void Context::queue_corrupt(const char* what) noexcept {
  std::fprintf(stderr,
               "green: internal error: context %p (task %p, state %d) %s: a fiber was woken "
               "twice\n",
               static_cast<void*>(this), static_cast<void*>(task_), int(state_), what);
  std::abort();
}

void Context::switched_away() noexcept {
  if (retire_ & kReleaseTp) {
    retire_ &= std::uint8_t(~kReleaseTp);
    if (g_tp.release) g_tp.release(tp_);
  }
  if (retire_ & kReturnHome) {
    retire_ &= std::uint8_t(~kReturnHome);
    home_->post_return(this);  // the home pools or destroys it (its stack is the home's)
    return;
  }
  if (retire_ & kDestroy) destroy();
}

void Context::destroy() noexcept {
  // A pooled context is suspended inside Worker::context_done with nothing to clean up (no
  // timer: timers are borrowed per wait). Runs on the home worker's thread.
  Worker* w = home_;
  Stack s = stack_;
  sanitizer_unregister_stack(san_);
  {
    SpinGuard lk(w->all_mu_);
    if (all_prev_)
      all_prev_->all_next_ = all_next_;
    else
      w->all_contexts_ = all_next_;
    if (all_next_) all_next_->all_prev_ = all_prev_;
  }
  w->stacks_.release(s);
}

void Context::entry(fc::transfer_t from) {
  sanitizer_after_switch(nullptr);
  Context* self = Worker::current()->running();
  finish_switch(from);
  for (;;) {
    // The worker is read afresh each time: a migratable task may end on another worker, and
    // context_done may resume this context (with its next task) after it went home.
    run_task(Worker::current(), self->task_);
    Worker::current()->context_done(self);  // returns with self->task_ set to the next task
  }
}

// --- timed waits ------------------------------------------------------------------------------

void Context::on_timer(uv_timer_t* t) {
  auto* b = static_cast<TimerBox*>(t->data);
  std::uint32_t s = TimerBox::kArmed;
  // Acquire: as post_timer's CAS. Fails for a box abandoned by an adopted context: it is on
  // its way home (Worker::returned_timers_), where it is stopped and freed.
  if (!b->state.compare_exchange_strong(s, TimerBox::kFiring, std::memory_order_acquire,
                                        std::memory_order_relaxed))
    return;
  auto now = Clock::now();
  if (now < b->deadline) {  // libuv's clock is in ms and may lag: never wake early
    auto left = std::chrono::ceil<std::chrono::milliseconds>(b->deadline - now).count();
    uv_timer_start(t, on_timer, static_cast<std::uint64_t>(left), 0);
    b->state.store(TimerBox::kArmed, std::memory_order_release);
    return;
  }
  // Won: the context is queued on this worker (it was parked here and nobody adopted it), and
  // its disarm_timer on this thread frees the box (maybe inside this very call). Lost: the
  // winner may be a worker that adopted it; release: we are done with b->waiter.
  if (!wake(b->waiter, WakeReason::kTimeout))
    b->state.store(TimerBox::kArmed, std::memory_order_release);
}

void Context::arm_timer(Waiter* w, TimePoint deadline) {
  Worker* wk = worker();
  uv_loop_t* loop = wk->loop();
  TimerBox* b = wk->take_timer();
  timer_ = b;
  b->waiter = w;
  b->deadline = deadline;
  // Relaxed: another thread sees the box only after it won the wait's CAS (acquire).
  b->state.store(TimerBox::kArmed, std::memory_order_relaxed);
  timed_waiter_ = w;
  timer_deadline_ = deadline;
  uv_update_time(loop);
  auto left = std::chrono::ceil<std::chrono::milliseconds>(deadline - Clock::now()).count();
  if (left < 0) left = 0;
  uv_timer_start(&b->timer, on_timer, static_cast<std::uint64_t>(left), 0);
}

// On the thread of the worker the context is on. That is the timer's loop unless a waker on
// another worker adopted the context (Worker::adopt): the timer is then sent home.
void Context::disarm_timer() noexcept {
  if (!timed_waiter_) return;  // not armed (e.g. the deadline had passed on entry)
  TimerBox* b = timer_;
  timed_waiter_ = nullptr;
  timer_ = nullptr;
  if (b->home == worker()) {
    uv_timer_stop(&b->timer);
    b->state.store(TimerBox::kIdle, std::memory_order_relaxed);
    b->home->give_timer(b);
  } else {
    b->home->post_timer(b);
  }
}

}  // namespace green::detail
