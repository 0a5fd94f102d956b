// Runtime: the set of workers and everything shared between them.
//
// Placement and stealing (docs/design.md): a new task is queued on the worker that spawned it
// (or the global queue when spawned from a non-worker thread); idle workers steal unstarted
// tasks, half a queue at a time. A started *library* fiber stays on its worker until it
// finishes: it runs with the worker's thread pointer, and code compiled without knowledge of
// fibers keeps &errno and thread_local addresses across a blocking call, valid only on the
// same OS thread. A started fiber with a thread identity of its own (Task::tp_: the shim's
// fiber-threads) carries those addresses in its own block, so it may move: idle workers steal
// runnable ones from a busy worker's shared ready queue (steal_ready, after the unstarted
// tasks), and other threads wake parked ones onto that queue directly (Worker::make_ready),
// unless the context is pinned or has a timer armed (context.hpp).
//
// Idle workers: a worker with nothing to do steals, spins for kSpin (worker.cpp), then sleeps in
// uv_run(ONCE). nsleeping_/nspinning_ let a spawner wake one sleeper only when no worker is
// already spinning (Go's wakep), so a burst of spawns costs at most one cross-core wake-up.
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <thread>
#include <vector>

#include "green/detail/task.hpp"
#include "green/options.hpp"
#include "machine.hpp"
#include "worker.hpp"

namespace green::detail {

// Overflow queue and the queue for spawns from non-worker threads.
class GlobalQueue {
 public:
  void push(Task* t) noexcept;
  Task* pop() noexcept;
  // seq_cst: read by idle()'s re-check, the sleeper half of the sleep/wake Dekker.
  bool empty() const noexcept { return size_.load(std::memory_order_seq_cst) == 0; }
  std::size_t size() const noexcept { return size_.load(std::memory_order_relaxed); }

 private:
  SpinLock lock_;
  Task* head_ GREEN_GUARDED_BY(lock_) = nullptr;
  Task* tail_ GREEN_GUARDED_BY(lock_) = nullptr;
  std::atomic<std::size_t> size_{0};
};

class Runtime {
 public:
  explicit Runtime(const Options& opts);
  ~Runtime();

  // Acquire: pairs with run()'s CAS that publishes the constructed Runtime.
  static Runtime* current() noexcept { return current_.load(std::memory_order_acquire); }
  // True in the child of a fork() made while a runtime ran (see on_fork_child).
  static bool forked_child() noexcept { return forked_child_; }

  void run(Task* main);  // on the calling thread, which becomes worker 0
  void submit(Task* t);
  void stop() noexcept;
  // Acquire: what stop()'s caller wrote before stopping (main's result) is visible.
  bool stopping() const noexcept { return stopping_.load(std::memory_order_acquire); }

  // Wakes one sleeping worker if none is spinning (after new stealable work appeared).
  void wake_one(Worker* except) noexcept;
  // Moves stolen tasks into `thief`'s run queue; returns one to run now, or nullptr.
  Task* steal(Worker* thief) noexcept;
  // Moves runnable migratable fibers of a busy worker to `thief` (Worker::steal_ready).
  bool steal_ready(Worker* thief) noexcept;

  const Options& options() const { return opts_; }
  std::size_t worker_count() const { return workers_.size(); }
  Worker* worker(std::size_t i) { return workers_[i].get(); }

  GlobalQueue global_;
  std::atomic<int> nsleeping_{0};
  std::atomic<int> nspinning_{0};
  Task* main_ = nullptr;
  std::atomic<std::size_t> exited_{0};  // workers out of their loop (teardown barrier)
  std::atomic<std::size_t> torn_down_{0};  // workers torn down (Worker::run, wait_all)
  // Set once a thread green did not create parks on or wakes through green primitives: the
  // deadlock report then cannot be sure nobody will wake a fiber.
  std::atomic<bool> foreign_{false};
  // The monitor thread has stopped touching workers (teardown waits for it).
  std::atomic<bool> monitor_done_{true};
  class Monitor* monitor_ = nullptr;
  Machines* machines() noexcept { return &machines_; }

 private:
  static void on_fork_child() noexcept;

  static std::atomic<Runtime*> current_;
  static bool forked_child_;  // written only by the single thread of a fork child
  Options opts_;
  std::vector<std::unique_ptr<Worker>> workers_;
  std::vector<std::thread> threads_;
  std::atomic<bool> stopping_{false};
  Machines machines_{this};  // the OS threads running workers (machine.hpp)
};

}  // namespace green::detail
