// Monitor: one background thread per runtime (Go's sysmon, gevent's monitor thread).
//
// Every kTick it looks at each worker's diagnostic atomics and
//  - reports a worker that has run the same fiber for longer than Options::blocked_ms
//    (dispatches_ unchanged, not asleep), once per episode, and wakes an idle worker so the
//    blocked worker's unstarted fibers get stolen;
//  - declares a deadlock when every worker has been asleep with nothing that could wake it
//    (Worker::stuck_) for two consecutive ticks while the global queue is empty: prints the
//    report and a fiber dump, then exits with status 2 or only warns (Options::deadlock);
//  - prints a fiber dump when the dump signal arrived (the handler writes to a pipe);
//  - every slice_ms while some worker runs a fiber (check_slices): asks a worker that has run
//    one fiber for longer than Options::slice_ms to yield at its next interposed call, and
//    wakes an idle worker to take that worker's runnable fiber-threads.
// It reads only atomics; dumps go through the workers themselves (see dump.cpp).
#pragma once

#include <atomic>
#include <thread>
#include <vector>

#include "green/options.hpp"

namespace green::detail {

class Runtime;

class Monitor {
 public:
  Monitor(Runtime* rt, const Options& opts);
  ~Monitor();            // stops and joins the thread
  void wake() noexcept;  // makes the thread look at the runtime now (e.g. it is stopping)
  Monitor(const Monitor&) = delete;
  Monitor& operator=(const Monitor&) = delete;

 private:
  void run();
  void hand_off_at_stop();
  void check_blocked(long elapsed_ms);
  void check_slices(long elapsed_ms);
  void check_deadlock();
  void rescue_sleepers();

  Runtime* rt_;
  Options opts_;
  int pipe_[2] = {-1, -1};  // [0] read by the monitor; [1] written by stop() and the signal
  std::atomic<bool> stop_{false};
  std::vector<std::uint64_t> last_dispatches_;
  std::vector<long> busy_ms_;
  std::vector<bool> reported_;
  int stuck_ticks_ = 0;
  std::vector<std::uint64_t> stuck_dispatches_;   // dispatches_ when the stuck run began
  std::vector<std::uint64_t> rescue_dispatches_;  // dispatches_ at the previous tick
  bool deadlock_warned_ = false;
  std::vector<std::uint64_t> slice_dispatches_;  // dispatches_ at the start of the run
  std::vector<long> slice_busy_ms_;              // how long that run has lasted
  bool any_busy_ = true;                         // some worker ran a fiber at the last check
  std::thread thread_;
};

}  // namespace green::detail
