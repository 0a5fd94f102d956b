// Monitor implementation (design note in monitor.hpp).
#include "monitor.hpp"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <string>
#include <thread>

#include "context.hpp"
#include "green/debug.hpp"
#include "green/detail/hooks.hpp"
#include "runtime.hpp"
#include "worker.hpp"

namespace green::detail {

namespace {

constexpr int kTickMs = 100;
std::atomic<int> g_signal_fd{-1};  // the monitor's pipe, for the dump signal handler
struct sigaction g_old_action;
int g_dump_signal = 0;

void on_dump_signal(int) {
  int fd = g_signal_fd.load(std::memory_order_relaxed);
  if (fd >= 0) {
    int saved = errno;
    char c = 'd';
    ssize_t r = write(fd, &c, 1);  // async-signal-safe; the monitor does the work
    (void)r;
    errno = saved;
  }
}

}  // namespace

Monitor::Monitor(Runtime* rt, const Options& opts) : rt_(rt), opts_(opts) {
  int r;
  {
    ShimBypass bypass;  // runtime-internal (the shim keeps no fd-table entry for it)
    r = pipe2(pipe_, O_CLOEXEC | O_NONBLOCK);
  }
  if (r != 0) {
    pipe_[0] = pipe_[1] = -1;
    return;  // no monitor: diagnostics are best effort
  }
  pipe_[0] = place_internal_fd(pipe_[0]);  // out of the program's range (poller.hpp)
  pipe_[1] = place_internal_fd(pipe_[1]);
  std::size_t n = rt->worker_count();
  last_dispatches_.assign(n, 0);
  busy_ms_.assign(n, 0);
  reported_.assign(n, false);
  if (opts_.dump_signal > 0) {
    g_signal_fd.store(pipe_[1]);  // seq_cst: visible before the handler is installed below
    struct sigaction sa;
    std::memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_dump_signal;
    sa.sa_flags = SA_RESTART;
    sigemptyset(&sa.sa_mask);
    if (sigaction(opts_.dump_signal, &sa, &g_old_action) == 0) g_dump_signal = opts_.dump_signal;
  }
  rt->monitor_done_.store(false);  // seq_cst: before the thread exists (its start orders it)
  rt->monitor_ = this;
  thread_ = std::thread([this] {
    run();
    hand_off_at_stop();
    rt_->machines()->finish();  // every handed-off worker has a machine to tear it down
    rt_->monitor_done_.store(true, std::memory_order_release);  // workers may tear down now
  });
}

void Monitor::wake() noexcept {
  if (pipe_[1] >= 0) {
    char c = 'w';
    ssize_t r = write(pipe_[1], &c, 1);
    (void)r;
  }
}

Monitor::~Monitor() {
  if (g_dump_signal) {
    sigaction(g_dump_signal, &g_old_action, nullptr);
    g_dump_signal = 0;
  }
  g_signal_fd.store(-1);  // seq_cst: the handler (restored above) stops writing to the pipe
  rt_->monitor_ = nullptr;
  stop_.store(true);  // seq_cst; the 'q' written below wakes the thread to read it
  if (pipe_[1] >= 0) {
    char c = 'q';
    ssize_t r = write(pipe_[1], &c, 1);
    (void)r;
  }
  if (thread_.joinable()) thread_.join();
  if (pipe_[0] >= 0) close(pipe_[0]);
  if (pipe_[1] >= 0) close(pipe_[1]);
}

void Monitor::run() {
  auto last = std::chrono::steady_clock::now();
  auto last_slice = last;
  while (!stop_.load() && !rt_->stopping()) {  // stop_: seq_cst, pairs with ~Monitor
    pollfd p{pipe_[0], POLLIN, 0};
    // Slices are checked every slice_ms while some worker runs a fiber, else every tick.
    int timeout =
        (opts_.slice_ms > 0 && any_busy_) ? int(std::min<long>(opts_.slice_ms, kTickMs)) : kTickMs;
    int r = poll(&p, 1, timeout);
    if (stop_.load() || rt_->stopping()) break;
    if (r > 0) {
      char buf[64];
      bool dump = false;
      ssize_t got;
      while ((got = read(pipe_[0], buf, sizeof buf)) > 0) {
        for (ssize_t i = 0; i < got; ++i) dump |= (buf[i] == 'd');
      }
      if (dump) {
        std::string s = green::fiber_dump();
        std::fputs(s.c_str(), stderr);
        std::fflush(stderr);
      }
    }
    auto now = std::chrono::steady_clock::now();
    if (opts_.slice_ms > 0) {
      check_slices(
          long(std::chrono::duration_cast<std::chrono::milliseconds>(now - last_slice).count()));
      last_slice = now;
    }
    long elapsed = long(std::chrono::duration_cast<std::chrono::milliseconds>(now - last).count());
    if (elapsed < kTickMs) continue;
    last = now;
    rescue_sleepers();
    if (opts_.blocked_ms > 0) check_blocked(elapsed);
    if (opts_.deadlock != DeadlockPolicy::kOff) check_deadlock();
  }
}

// Slice expiry: a worker whose dispatch count has not moved for slice_ms while it runs a fiber
// is asked to yield (the fiber's next interposed call does: slice_yield), and one idle worker
// is woken to take the fiber-threads queued behind it (Worker::steal_ready). The request is
// withdrawn as soon as the worker switches. g_yield_requests counts the workers asked
// (incremented before the flag is set, so it never drops below the number of flags set).
void Monitor::check_slices(long elapsed_ms) {
  rt_->machines()->poll();  // hand-off requests answered since the last check
  std::size_t n = rt_->worker_count();
  slice_dispatches_.resize(n, 0);
  slice_busy_ms_.resize(n, 0);
  bool any = false;
  for (std::size_t i = 0; i < n; ++i) {
    Worker* w = rt_->worker(i);
    std::uint64_t d = w->dispatches_.load(std::memory_order_relaxed);
    bool busy = w->running_task_.load(std::memory_order_relaxed) != nullptr &&
                !w->sleeping_.load(std::memory_order_relaxed);
    any = any || busy;
    if (!busy || d != slice_dispatches_[i]) {
      slice_dispatches_[i] = d;
      slice_busy_ms_[i] = 0;
      if (w->yield_requested_.load(std::memory_order_relaxed) &&
          w->yield_requested_.exchange(false, std::memory_order_relaxed))
        g_yield_requests.fetch_sub(1, std::memory_order_relaxed);
      continue;
    }
    slice_busy_ms_[i] += elapsed_ms;
    // Two slices and the fiber has not yielded (no interposed call since, or a call the
    // shim passes through): hand the worker to a spare OS thread (machine.hpp).
    if (slice_busy_ms_[i] >= 2 * opts_.slice_ms) rt_->machines()->consider(w, d);
    if (slice_busy_ms_[i] < opts_.slice_ms || w->yield_requested_.load(std::memory_order_relaxed))
      continue;
    w->yield_dispatch_.store(d, std::memory_order_relaxed);
    g_yield_requests.fetch_add(1, std::memory_order_relaxed);
    // Release: publishes yield_dispatch_ to the worker's acquire exchange (slice_yield).
    if (w->yield_requested_.exchange(true, std::memory_order_release))
      g_yield_requests.fetch_sub(1, std::memory_order_relaxed);
    rt_->wake_one(w);  // an idle worker may take this worker's runnable fiber-threads
  }
  any_busy_ = any;
}

// At stop every worker must leave its loop (the teardown barrier in Worker::run_loop waits for
// all of them). One that runs a fiber which never enters the runtime (a thread spinning for
// ever while main returns) leaves only if it is handed off: a spare binds it, sees stopping_
// and tears it down, and the fiber keeps its OS thread until the process exits. While the
// runtime runs, a worker with nothing else to run is not handed off (consider(): nobody waits
// for it); at stop the stop itself waits for it. Bounded (5 s): a fiber stuck inside runtime
// code refuses every request, and its worker holds the stop as before.
void Monitor::hand_off_at_stop() {
  if (!rt_->stopping() || opts_.slice_ms <= 0) return;
  // The first 1 ms (10 x 100 us) only waits: a worker whose fiber returns to it soon leaves
  // by itself, and an exit is not delayed by a 5 ms sleep; then every 5 ms, it asks.
  constexpr int kQuietRounds = 10;
  Machines* ms = rt_->machines();
  for (int round = 0; round < kQuietRounds + 1000; ++round) {
    // Acquire: pairs with the workers' acq_rel increments at their barrier.
    if (rt_->exited_.load(std::memory_order_acquire) >= rt_->worker_count()) return;
    if (round < kQuietRounds) {
      std::this_thread::sleep_for(std::chrono::microseconds(100));
      continue;
    }
    ms->poll();
    for (std::size_t i = 0; i < rt_->worker_count(); ++i) {
      Worker* w = rt_->worker(i);
      if (w->running_task_.load(std::memory_order_relaxed) == nullptr) continue;
      ms->consider(w, w->dispatches_.load(std::memory_order_relaxed));
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
}

void Monitor::check_blocked(long elapsed_ms) {
  for (std::size_t i = 0; i < rt_->worker_count(); ++i) {
    Worker* w = rt_->worker(i);
    std::uint64_t d = w->dispatches_.load(std::memory_order_relaxed);
    Task* t = w->running_task_.load(std::memory_order_relaxed);  // compared, never followed
    if (d != last_dispatches_[i] || !t || w->sleeping_.load(std::memory_order_relaxed)) {
      last_dispatches_[i] = d;
      busy_ms_[i] = 0;
      reported_[i] = false;
      continue;
    }
    busy_ms_[i] += elapsed_ms;
    if (busy_ms_[i] < opts_.blocked_ms || reported_[i]) continue;
    reported_[i] = true;
    // The Task may be freed at any time; read the copy its context published at start.
    // Acquire: pairs with switch_to's release store; the context's diag copy is visible.
    Context* c = w->running_ctx_.load(std::memory_order_acquire);
    if (!c) continue;
    std::string name;
    for (std::size_t k = 0; k < Context::kNameCopy; ++k) {
      char ch = c->diag_name_[k].load(std::memory_order_relaxed);
      if (!ch) break;
      name.push_back(ch);
    }
    unsigned long long id = c->diag_id_.load(std::memory_order_relaxed);
    std::fprintf(stderr,
                 "green: worker %zu has run fiber %llu%s%s%s for %ld ms without yielding "
                 "(CPU-bound code, or a blocking call green does not intercept: use "
                 "green::offload); fibers started on this worker wait for it%s\n",
                 i, id, name.empty() ? "" : " (\"", name.c_str(), name.empty() ? "" : "\")",
                 busy_ms_[i], rt_->machines()->describe(w).c_str());
    std::fflush(stderr);
    rt_->wake_one(w);  // let an idle worker steal this worker's fibers that have not started
  }
}

// Belt and braces: by the wake-up protocol a worker never sleeps while a fiber it owns is
// runnable, yet a lost wake-up under heavy cross-worker hand-off has been observed (a worker
// in epoll_wait with a woken fiber queued) and is not explained yet (docs/design.md, known
// limits). So every tick, a worker that dispatched nothing since the previous tick gets its
// loop woken: a real stall then lasts at most one tick instead of forever, and an idle worker
// pays one wake-up per tick (10 per second). A worker that finds nothing goes back to sleep
// without dispatching, so the deadlock check below is unaffected.
void Monitor::rescue_sleepers() {
  std::size_t n = rt_->worker_count();
  rescue_dispatches_.resize(n, ~0ull);
  for (std::size_t i = 0; i < n; ++i) {
    Worker* w = rt_->worker(i);
    std::uint64_t d = w->dispatches_.load(std::memory_order_relaxed);
    if (d == rescue_dispatches_[i] && w->sleeping_.load(std::memory_order_relaxed) == false &&
        w->has_pending_work()) {
      w->wake_loop();  // the observed lost wake-up: work queued, `sleeping_` already cleared
    } else if (d == rescue_dispatches_[i] && w->stuck_.load(std::memory_order_relaxed)) {
      w->wake_loop();  // asleep with nothing pending we can see: look again
    }
    rescue_dispatches_[i] = d;
  }
}

void Monitor::check_deadlock() {
  if (rt_->stopping()) return;
  // A fiber running detached on a machine of its own (machine.hpp) may still wake others.
  bool all_stuck = rt_->global_.empty() && rt_->machines()->detached() == 0;
  for (std::size_t i = 0; all_stuck && i < rt_->worker_count(); ++i) {
    Worker* w = rt_->worker(i);
    // seq_cst: read against idle()'s seq_cst stores (stuck_ is set only while sleeping_ is).
    all_stuck =
        w->stuck_.load(std::memory_order_seq_cst) && w->sleeping_.load(std::memory_order_seq_cst);
  }
  // No worker may have dispatched anything since the stuck run began: a worker that went to
  // sleep and woke up in between was not deadlocked.
  std::size_t n = rt_->worker_count();
  if (all_stuck && stuck_ticks_ > 0) {
    for (std::size_t i = 0; i < n; ++i) {
      if (rt_->worker(i)->dispatches_.load(std::memory_order_relaxed) != stuck_dispatches_[i])
        all_stuck = false;
    }
  }
  if (!all_stuck) {
    stuck_ticks_ = 0;
    deadlock_warned_ = false;
    return;
  }
  if (stuck_ticks_++ == 0) {
    stuck_dispatches_.resize(n);
    for (std::size_t i = 0; i < n; ++i)
      stuck_dispatches_[i] = rt_->worker(i)->dispatches_.load(std::memory_order_relaxed);
  }
  if (stuck_ticks_ < 3 || deadlock_warned_) return;
  bool foreign = rt_->foreign_.load(std::memory_order_relaxed);
  bool exit_now = opts_.deadlock == DeadlockPolicy::kExit && !foreign;
  std::string dump = green::fiber_dump();
  // The dump woke every worker; if any ran a fiber since, this was not a deadlock.
  for (std::size_t i = 0; i < n; ++i) {
    if (rt_->worker(i)->dispatches_.load(std::memory_order_relaxed) != stuck_dispatches_[i]) {
      stuck_ticks_ = 0;
      return;
    }
  }
  std::fprintf(stderr,
               "green: deadlock: every fiber is blocked and no timer, fd wait or offload can "
               "wake one%s\n%s",
               foreign ? " (threads green did not create have used green primitives and might "
                         "still wake one; not exiting)"
                       : "",
               dump.c_str());
  std::fflush(stderr);
  deadlock_warned_ = true;
  if (exit_now) _exit(2);
}

}  // namespace green::detail
