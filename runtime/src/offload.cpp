// green::offload: runs a function on libuv's thread pool (uv_queue_work) while the calling
// fiber parks on its worker. The uv_work_t lives on the fiber's stack, so the fiber always
// waits for the after-work callback before returning; an interruption only tries
// uv_cancel() (which succeeds if the work has not started) and is reported afterwards.
#include <uv.h>

#include "context.hpp"
#include "green/detail/hooks.hpp"
#include "green/offload.hpp"
#include "tls.hpp"
#include "worker.hpp"

namespace green::detail {

namespace {
struct Offload {
  uv_work_t req;
  void (*fn)(void*);
  void* arg;
  bool ran = false;
  bool done = false;
  Waiter* waiter = nullptr;  // the wait in progress (touched on the worker thread only)
};
}  // namespace

WakeReason offload_raw(void (*fn)(void*), void* arg) noexcept {
  Worker* wk = Worker::current();
  if (!wk || !tls().task) {
    fn(arg);
    return WakeReason::kNotified;
  }
  // The request belongs to this worker's loop and op.waiter/op.done are written by its thread
  // (the after-work callback): the fiber stays here until the request is done.
  PinToWorker pin(wk->running());
  Offload op;
  op.fn = fn;
  op.arg = arg;
  op.req.data = &op;
  int err;
  {
    ShimBypass bypass;  // the thread pool's mutexes and condition variables are real ones
    err = uv_queue_work(
        wk->loop(), &op.req,
        [](uv_work_t* r) {
          auto* o = static_cast<Offload*>(r->data);
          o->fn(o->arg);
          o->ran = true;
        },
        [](uv_work_t* r, int) {
          auto* o = static_cast<Offload*>(r->data);
          o->done = true;
          if (o->waiter) wake(o->waiter, WakeReason::kNotified);
        });
  }
  if (err != 0) {  // cannot happen with a valid loop and callback; run inline rather than fail
    fn(arg);
    return WakeReason::kNotified;
  }
  WakeReason interrupted = WakeReason::kNotified;
  while (!op.done) {
    Waiter w(WaitKind::kOffload, &op);
    op.waiter = &w;
    WakeReason r = park(w, kNoDeadline, {}, interrupted == WakeReason::kNotified);
    op.waiter = nullptr;
    if (r == WakeReason::kCancelled || r == WakeReason::kDeadline) {
      interrupted = r;
      ShimBypass bypass;
      uv_cancel(reinterpret_cast<uv_req_t*>(&op.req));  // fails harmlessly once started
    }
  }
  if (interrupted != WakeReason::kNotified) return interrupted;
  return op.ran ? WakeReason::kNotified : WakeReason::kCancelled;
}

}  // namespace green::detail
