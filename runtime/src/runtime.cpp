// Runtime implementation (design note in runtime.hpp).
#include "runtime.hpp"

#include <pthread.h>

#include <cstdlib>
#include <optional>
#include <stdexcept>
#include <string>

#include "green/detail/hooks.hpp"
#include "green/runtime.hpp"
#include "monitor.hpp"
#include "task_state.hpp"
#include "tls.hpp"
#include "worker.hpp"

namespace green::detail {

std::atomic<Runtime*> Runtime::current_{nullptr};
bool Runtime::forked_child_ = false;

// fork() under a running runtime: only the calling OS thread exists in the child; the other
// workers, the monitor and libuv's pool threads do not. The child therefore stops being a
// runtime: the calling thread forgets its worker and fiber, so every green primitive it uses
// from now on behaves as on a plain OS thread (futex waits, poll(2), nanosleep), spawn()
// throws (no runtime), and when the fiber's function returns the child exits (run_task in
// context.cpp): there is no scheduler to return to. fork+exec needs none of this.
void Runtime::on_fork_child() noexcept {
  restore_fd_limit();  // the child's programs get the soft RLIMIT_NOFILE the process had
  if (!current_.load(std::memory_order_relaxed)) return;
  forked_child_ = true;
  current_.store(nullptr, std::memory_order_relaxed);
  Worker::forget_current_thread();
  tls().task = nullptr;
  tls().worker = -1;
}

// --- GlobalQueue ------------------------------------------------------------------------------

void GlobalQueue::push(Task* t) noexcept {
  task_state(t).next = nullptr;
  lock_.lock();
  if (tail_) {
    task_state(tail_).next = t;
  } else {
    head_ = t;
  }
  tail_ = t;
  // seq_cst: the waker half of the sleep/wake Dekker (idle() reads size_ through empty()
  // after its seq_cst store of sleeping_; push_task then calls wake_one).
  size_.fetch_add(1, std::memory_order_seq_cst);
  lock_.unlock();
}

Task* GlobalQueue::pop() noexcept {
  lock_.lock();
  Task* t = head_;
  if (t) {
    head_ = task_state(t).next;
    if (!head_) tail_ = nullptr;
    size_.fetch_sub(1, std::memory_order_relaxed);
  }
  lock_.unlock();
  return t;
}

// --- Runtime ------------------------------------------------------------------------------------

Runtime::Runtime(const Options& opts) : opts_(opts) {
  static const bool atfork_registered = [] {
    pthread_atfork(nullptr, nullptr, &Runtime::on_fork_child);
    return true;
  }();
  (void)atfork_registered;
  // libuv's thread pool (offload, DNS) defaults to 4 threads; give it at least one per worker.
  if (!std::getenv("UV_THREADPOOL_SIZE") && opts_.workers > 4) {
    setenv("UV_THREADPOOL_SIZE", std::to_string(opts_.workers).c_str(), 0);
  }
  // Our fds go above the program's range (poller.hpp): per worker the loop's epoll set,
  // signal pipe (2) and async eventfd and the poller's epoll set; libuv's global signal-lock
  // pipe and the monitor's pipe (2 each); slack.
  reserve_internal_fds(int(5 * opts_.workers + 8));
  workers_.reserve(opts_.workers);
  for (std::size_t i = 0; i < opts_.workers; ++i) {
    workers_.push_back(std::make_unique<Worker>(this, int(i), opts_.stack_size, opts_.stack_guard));
  }
}

Runtime::~Runtime() {
  workers_.clear();
  restore_fd_limit();
}

void Runtime::run(Task* main) {
  Runtime* expected = nullptr;
  // acq_rel: publishes the constructed Runtime to current()'s acquire; orders us after a
  // previous runtime's release store of nullptr.
  if (!current_.compare_exchange_strong(expected, this, std::memory_order_acq_rel)) {
    throw std::logic_error("green::run: a runtime is already running in this process");
  }
  main_ = main;
  task_state(main).next = nullptr;
  // Worker 0 queues `main` itself once its loop starts (Worker::run_loop): with thread
  // identities the main task runs with this thread's thread pointer, which this thread keeps
  // using until worker 0 has switched its scheduler to its own; a worker that stole `main`
  // earlier would run on the same TLS block at the same time.
  Monitor monitor(this, opts_);
  threads_.reserve(workers_.size());
  std::vector<Machine*> original_ms;  // machine records exist before their threads do
  Machine* initial = machines_.create();
  machines_.set_initial(initial);
  for (std::size_t i = 1; i < workers_.size(); ++i) {
    Worker* w = workers_[i].get();
    Machine* m = machines_.create();
    original_ms.push_back(m);
    threads_.emplace_back([w, m] { w->run(m); });
  }
  workers_[0]->run(initial);
  // Every worker has been torn down by the machine running it at stop. The workers' own
  // threads are joined, unless one is still running a detached fiber (machine.hpp).
  machines_.wait_all(threads_, std::move(original_ms));
  workers_.clear();  // tears down loops and stacks
  // Tasks never started (spawned but abandoned at exit) still hold the runtime's reference.
  while (Task* t = global_.pop()) t->unref();
  current_.store(nullptr, std::memory_order_release);  // teardown done before the next run()
}

void Runtime::submit(Task* t) {
  Worker* w = Worker::current();
  if (w && w->runtime() == this) {
    w->push_task(t);
  } else {
    global_.push(t);
    wake_one(nullptr);
  }
}

void Runtime::stop() noexcept {
  // seq_cst, then notify every worker: a worker either sees stopping_ in idle()'s re-check
  // (after its seq_cst sleeping_ store) or is woken by the notify.
  machines_.stop();  // before stopping_: see Machines' g_stopped
  stopping_.store(true, std::memory_order_seq_cst);
  if (monitor_) monitor_->wake();
  for (auto& w : workers_) {
    ShimBypass bypass;
    uv_async_send(&w->async_);  // the loop may be blocked whatever sleeping_ says
  }
}

void Runtime::wake_one(Worker* except) noexcept {
  // Pairs with idle(): nsleeping_ is incremented before the sleeper's final re-check. The
  // fence is the waker half of that Dekker (the caller published work just before).
  std::atomic_thread_fence(std::memory_order_seq_cst);
  if (nspinning_.load(std::memory_order_seq_cst) > 0 ||
      nsleeping_.load(std::memory_order_seq_cst) == 0)
    return;
  for (auto& w : workers_) {
    if (w.get() == except) continue;
    if (w->sleeping_.load(std::memory_order_seq_cst)) {  // after the fence: the Dekker read
      w->notify();
      return;
    }
  }
}

Task* Runtime::steal(Worker* thief) noexcept {
  if (!global_.empty()) {
    if (Task* t = global_.pop()) return t;
  }
  std::size_t n = workers_.size();
  if (n < 2) return nullptr;
  Task* batch[RunQueue::kSize / 2];
  std::size_t start = static_cast<std::size_t>(thief->index()) + 1;
  for (std::size_t k = 0; k < n - 1; ++k) {
    Worker* victim = workers_[(start + k) % n].get();
    if (victim == thief) continue;
    std::uint32_t got = victim->runq_.steal_half(batch);
    if (got == 0) continue;
    for (std::uint32_t i = 1; i < got; ++i) {
      if (!thief->runq_.push(batch[i])) global_.push(batch[i]);
    }
    return batch[0];
  }
  return nullptr;
}

bool Runtime::steal_ready(Worker* thief) noexcept {
  std::size_t n = workers_.size();
  std::size_t start = static_cast<std::size_t>(thief->index()) + 1;
  for (std::size_t k = 0; k + 1 < n; ++k) {
    Worker* victim = workers_[(start + k) % n].get();
    if (victim != thief && victim->steal_ready(thief) != 0) return true;
  }
  return false;
}

void run_main(Task* main, const Options& requested) {
  std::optional<Runtime> rt;
  try {
    Options opts = resolve_options(requested);
    if (Runtime::current()) {
      throw std::logic_error("green::run: a runtime is already running in this process");
    }
    rt.emplace(opts);
  } catch (...) {
    main->unref();  // main never reached a run queue: drop the runtime's reference
    throw;
  }
  rt->run(main);  // takes over the reference
}

void submit(Task* t) {
  Runtime* rt = Runtime::current();
  if (!rt || rt->stopping()) {
    throw std::logic_error("green::spawn: no green runtime is running (call it inside green::run)");
  }
  rt->submit(t);
}

}  // namespace green::detail

namespace green {

bool running() noexcept {
  return detail::Runtime::current() != nullptr;
}

std::size_t worker_count() noexcept {
  auto* rt = detail::Runtime::current();
  return rt ? rt->worker_count() : 0;
}

int current_worker() noexcept {
  auto* w = detail::Worker::current();
  return w ? w->index() : -1;
}

}  // namespace green
