// Context implementation (design note in context.hpp).
#include "context.hpp"

#include <boost/context/preallocated.hpp>
#include <boost/context/stack_context.hpp>
#include <memory>
#include <new>

#include "green/errors.hpp"
#include "scheduler.hpp"
#include "worker.hpp"

namespace green::detail {

namespace ctx = boost::context;

namespace {

// Boost.Context wants an allocator to give the stack back when a fiber *returns*. Ours never
// return (a Context runs tasks until the worker is torn down, then its stack is released by
// the pool without unwinding), so deallocate is never reached.
struct NoDeallocate {
  ctx::stack_context allocate() { return {}; }
  void deallocate(ctx::stack_context&) noexcept {}
};

constexpr std::size_t kContextReserve = (sizeof(Context) + 63) / 64 * 64;

void run_task(Worker* w, Task* t) {
  t->state_.store(Task::kRunning, std::memory_order_relaxed);
  t->home_.store(w, std::memory_order_seq_cst);  // pairs with Task::cancel(), see task.cpp
  if (t->cancel_pending_.load(std::memory_order_seq_cst)) {
    // Cancelled before it started: it never runs (gevent's kill of an unstarted greenlet).
    t->cancel_pending_.store(false, std::memory_order_relaxed);
    t->error_ = std::make_exception_ptr(Cancelled());
  } else {
    t->run();
  }
  Runtime* rt = w->runtime();
  bool is_main = (t == rt->main_);
  t->finish();
  t->unref();  // the runtime's reference
  if (is_main) rt->stop();
}

}  // namespace

Context* Context::create(Worker* worker, std::size_t stack_size) {
  Stack s = worker->stacks_.allocate(stack_size);
  char* top = s.top();
  auto* c = new (top - kContextReserve) Context(worker);
  c->stack_ = s;
  ctx::stack_context sctx;
  sctx.sp = top;
  sctx.size = s.usable();
  ctx::preallocated palloc(top - kContextReserve, s.usable() - kContextReserve, sctx);
  c->fiber_ = ctx::fiber(std::allocator_arg, palloc, NoDeallocate{},
                         [c](ctx::fiber&& from) { return Context::main(c, std::move(from)); });
  return c;
}

void Context::destroy() noexcept {
  // The suspended fiber_ is deliberately not destroyed: that would unwind its stack. A pooled
  // context is parked in Worker::context_done with nothing to clean up.
  Worker* w = worker_;
  Stack s = stack_;
  if (timer_init_) {
    timer_.data = new Stack(s);
    uv_close(reinterpret_cast<uv_handle_t*>(&timer_), [](uv_handle_t* h) {
      auto* st = static_cast<Stack*>(h->data);
      Stack copy = *st;
      delete st;
      static_cast<Worker*>(h->loop->data)->stacks_.release(copy);
    });
  } else {
    w->stacks_.release(s);
  }
}

ctx::fiber Context::main(Context* self, ctx::fiber&& from) {
  Worker* w = self->worker_;
  w->after_switch(std::move(from));
  for (;;) {
    run_task(w, self->task_);
    w->context_done(self);  // returns with self->task_ set to the next task
  }
}

}  // namespace green::detail
