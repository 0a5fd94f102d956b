// M:N scheduling: fibers spread over workers, stealing of unstarted fibers, pinning of started
// fibers to their OS thread across blocking calls, yield fairness, idle workers not spinning.
#include <gtest/gtest.h>
#include <pthread.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <map>
#include <mutex>
#include <set>
#include <thread>
#include <vector>

#include "green/detail/hooks.hpp"
#include "green/green.hpp"
#include "support/green_test.hpp"

namespace {

using namespace std::chrono_literals;
using green_test::Clock;
using green_test::ms_since;
using green_test::wait_until;

GREEN_TEST_WORKERS_SUITE(SchedulerTest);

thread_local int tls_probe = 0;

void spin_for(std::chrono::microseconds d) {
  auto end = Clock::now() + d;
  while (Clock::now() < end) {
  }
}

TEST(SchedulerM2N, FibersRunOnMoreThanOneOsThread) {
  std::set<pthread_t> threads;
  std::set<int> worker_ids;
  std::mutex m;
  green_test::run_green(2, [&] {
    std::vector<green::Fiber<void>> fs;
    for (int i = 0; i < 400; ++i) {
      fs.push_back(green::spawn([&] {
        spin_for(500us);  // CPU work without yielding: the other worker should steal
        std::lock_guard<std::mutex> lk(m);
        threads.insert(pthread_self());
        worker_ids.insert(green::current_worker());
      }));
    }
    for (auto& f : fs) f.join();
  });
  EXPECT_GE(threads.size(), 2u) << "all fibers ran on one OS thread with workers=2";
  EXPECT_EQ(worker_ids, (std::set<int>{0, 1}));
}

TEST(SchedulerM2N, StealingSpreadsUnstartedFibers) {
  constexpr int kFibers = 200;
  int per_worker[2] = {0, 0};
  int bad_worker = 0;
  std::mutex m;
  double elapsed = 0;
  green_test::run_green(2, [&] {
    auto t0 = Clock::now();
    std::vector<green::Fiber<void>> fs;
    // All spawned from one fiber, so all are queued on one worker to begin with.
    for (int i = 0; i < kFibers; ++i) {
      fs.push_back(green::spawn([&] {
        spin_for(2ms);
        int w = green::current_worker();
        std::lock_guard<std::mutex> lk(m);
        if (w == 0 || w == 1) {
          per_worker[w]++;
        } else {
          bad_worker++;
        }
      }));
    }
    for (auto& f : fs) f.join();
    elapsed = ms_since(t0);
  });
  std::printf("[ info ] stealing: worker0=%d worker1=%d in %.0f ms (serial would be ~%d ms)\n",
              per_worker[0], per_worker[1], elapsed, kFibers * 2);
  EXPECT_EQ(bad_worker, 0);
  EXPECT_EQ(per_worker[0] + per_worker[1], kFibers);
  // Each worker should have taken a real share of the load (≥ 10%).
  EXPECT_GE(per_worker[0], kFibers / 10);
  EXPECT_GE(per_worker[1], kFibers / 10);
}

// Records where a fiber runs before and after each kind of blocking call.
struct Where {
  pthread_t thread;
  int* errno_addr;
  int* tls_addr;
  int worker;
  static Where here() { return {pthread_self(), &errno, &tls_probe, green::current_worker()}; }
  bool operator==(const Where& o) const {
    return pthread_equal(thread, o.thread) && errno_addr == o.errno_addr &&
           tls_addr == o.tls_addr && worker == o.worker;
  }
};

TEST_P(SchedulerTest, StartedFiberNeverChangesOsThread) {
  std::atomic<int> moved{0};
  std::atomic<int> checks{0};
  std::set<pthread_t> threads;
  std::mutex tm;
  run([&] {
    green::Mutex mu;
    green::CondVar cv;
    green::Event ev;
    green::Semaphore sem(0);
    auto ch = green::Channel<int>::unbounded();
    std::vector<green::Fiber<void>> fs;
    constexpr int kFibers = 64;
    for (int i = 0; i < kFibers; ++i) {
      fs.push_back(green::spawn([&, i] {
        Where start = Where::here();
        {
          std::lock_guard<std::mutex> lk(tm);
          threads.insert(start.thread);
        }
        auto check = [&] {
          checks++;
          if (!(Where::here() == start)) moved++;
        };
        spin_for(200us);  // keep the queue busy so the other worker steals work
        for (int round = 0; round < 5; ++round) {
          green::this_fiber::sleep_for(1ms);
          check();
          green::this_fiber::yield();
          check();
          {
            std::unique_lock<green::Mutex> lk(mu);
            green::this_fiber::yield();  // hold the lock across a switch: contention
            check();
          }
          check();
          ch.send(i);
          check();
          (void)ch.recv();
          check();
          green::offload([] { spin_for(100us); });
          check();
        }
        sem.release();
        ev.wait();
        check();
      }));
    }
    for (int i = 0; i < kFibers; ++i) {
      ASSERT_TRUE(sem.try_acquire_for(30s)) << "fibers did not progress";
    }
    ev.set();
    for (auto& f : fs) f.join();
  });
  EXPECT_EQ(moved.load(), 0) << "a started fiber resumed on a different OS thread";
  EXPECT_GE(checks.load(), 64 * 36);
  if (workers() == 2) {
    EXPECT_GE(threads.size(), 2u) << "no fiber ran on the second worker; pinning went untested";
  }
}

TEST_P(SchedulerTest, MainFiberStaysPinned) {
  run([] {
    Where start = Where::here();
    for (int i = 0; i < 50; ++i) {
      green::this_fiber::sleep_for(1ms);
      ASSERT_TRUE(Where::here() == start);
      green::this_fiber::yield();
      ASSERT_TRUE(Where::here() == start);
      auto f = green::spawn([] { spin_for(100us); });
      f.join();
      ASSERT_TRUE(Where::here() == start);
    }
  });
}

TEST_P(SchedulerTest, FiberPlacedOnEachWorkerRunsThere) {
  std::size_t n = workers();
  run([n] {
    for (int w = 0; w < static_cast<int>(n); ++w) {
      std::atomic<int> seen{-2};
      auto f = green_test::run_on_worker(w, [&] {
        green::this_fiber::sleep_for(2ms);
        seen = green::current_worker();
      });
      ASSERT_TRUE(f.joinable());
      f.join();
      EXPECT_EQ(seen.load(), w);
    }
  });
}

TEST_P(SchedulerTest, YieldLetsOthersRun) {
  run([] {
    // A fiber that waits for a flag by yielding must let the setter run, even on one worker.
    std::atomic<bool> flag{false};
    std::atomic<int> spins{0};
    auto waiter = green::spawn([&] {
      auto end = Clock::now() + 20s;
      while (!flag.load() && Clock::now() < end) {
        spins++;
        green::this_fiber::yield();
      }
      return flag.load();
    });
    auto setter = green::spawn([&] { flag = true; });
    EXPECT_TRUE(waiter.join()) << "yield never let the setter run";
    setter.join();
  });
}

TEST(SchedulerSingle, YieldInterleavesFibersOnOneWorker) {
  std::vector<int> trace;
  green_test::run_green(1, [&] {
    auto a = green::spawn([&] {
      for (int i = 0; i < 5; ++i) {
        trace.push_back(1);
        green::this_fiber::yield();
      }
    });
    auto b = green::spawn([&] {
      for (int i = 0; i < 5; ++i) {
        trace.push_back(2);
        green::this_fiber::yield();
      }
    });
    a.join();
    b.join();
  });
  ASSERT_EQ(trace.size(), 10u);
  int switches = 0;
  for (std::size_t i = 1; i < trace.size(); ++i) switches += trace[i] != trace[i - 1];
  EXPECT_GE(switches, 8) << "yield did not alternate between runnable fibers";
}

// Scheduling order on one worker (runnext, worker.hpp): a hand-off from the running fiber
// runs before the fibers already queued, within a bound.
namespace order {

// Fibers that record 'q' and yield until `stop`: the ready queue is never empty meanwhile.
std::vector<green::Fiber<void>> start_yielders(int n, std::vector<char>& trace,
                                               std::atomic<bool>& stop) {
  std::vector<green::Fiber<void>> ys;
  for (int i = 0; i < n; ++i) {
    ys.push_back(green::spawn([&] {
      while (!stop.load()) {
        trace.push_back('q');
        green::this_fiber::yield();
      }
    }));
  }
  for (int i = 0; i < 3 * n; ++i) green::this_fiber::yield();  // all started and queued
  return ys;
}

}  // namespace order

TEST(SchedulerOrder, SpawnedFiberRunsBeforeQueuedFibers) {
  std::vector<char> trace;
  std::size_t mark = 0;
  green_test::run_green(1, [&] {
    std::atomic<bool> stop{false};
    auto ys = order::start_yielders(4, trace, stop);
    mark = trace.size();
    green::spawn([&] { trace.push_back('n'); }).join();  // spawn, then park in join
    stop = true;
    for (auto& y : ys) y.join();
  });
  ASSERT_GT(trace.size(), mark);
  EXPECT_EQ(trace[mark], 'n') << "a fiber spawned before a park waited behind queued fibers";
}

TEST(SchedulerOrder, WokenFiberRunsNext) {
  std::vector<char> trace;
  std::size_t mark = 0;
  green_test::run_green(1, [&] {
    green::Event ev;
    auto w = green::spawn([&] {
      ev.wait();
      trace.push_back('w');
    });
    std::atomic<bool> stop{false};
    auto ys = order::start_yielders(4, trace, stop);  // w is parked in ev.wait() by now
    mark = trace.size();
    ev.set();  // a wake-up by this fiber ...
    w.join();  // ... runs as soon as it parks
    stop = true;
    for (auto& y : ys) y.join();
  });
  ASSERT_GT(trace.size(), mark);
  EXPECT_EQ(trace[mark], 'w') << "a fiber woken by the running fiber waited behind queued ones";
}

TEST(SchedulerOrder, PingPongPairDoesNotStarveAThirdFiber) {
  // Two fibers hand the CPU to each other through semaphores: each hop makes the other the next
  // to run. A third, ready fiber must still run every few hops (the burst guard).
  constexpr int kHops = 20000;
  int max_gap = 0, third_runs = 0;
  green_test::run_green(1, [&] {
    green::Semaphore a, b;
    std::atomic<int> hops{0};
    std::atomic<bool> done{false};
    auto third = green::spawn([&] {
      int last = hops.load();
      while (!done.load()) {
        int now = hops.load();
        max_gap = std::max(max_gap, now - last);
        last = now;
        ++third_runs;
        green::this_fiber::yield();
      }
    });
    green::this_fiber::yield();  // third is running its yield loop
    auto q = green::spawn([&] {
      for (int i = 0; i < kHops; ++i) {
        a.acquire();
        hops.fetch_add(1);
        b.release();
      }
    });
    for (int i = 0; i < kHops; ++i) {
      a.release();
      b.acquire();
      hops.fetch_add(1);
    }
    q.join();
    done = true;
    third.join();
  });
  EXPECT_GT(third_runs, kHops / 100) << "the third fiber hardly ran during the ping-pong";
  // kNextBurst (16) hand-off dispatches between two dispatches from the ready queue.
  EXPECT_LE(max_gap, 40) << "the ping-pong pair ran " << max_gap << " hops in a row";
}

TEST_P(SchedulerTest, YieldingFibersDoNotStarveNewFibers) {
  // Fibers yield to each other in a loop; a fiber spawned meanwhile must still start
  // promptly (yield must not always prefer already-started fibers over queued new ones).
  run([] {
    std::atomic<bool> flag{false};
    auto spin = [&] {
      auto end = Clock::now() + 4s;
      while (!flag.load() && Clock::now() < end) green::this_fiber::yield();
      return flag.load();
    };
    std::vector<green::Fiber<bool>> spinners;
    for (std::size_t i = 0; i < 2 * green::worker_count(); ++i) {
      spinners.push_back(green::spawn(spin));
    }
    green::this_fiber::sleep_for(20ms);  // the spinners are now yielding to each other
    auto t0 = Clock::now();
    auto setter = green::spawn([&] { flag = true; });
    setter.join();
    double ms = ms_since(t0);
    for (auto& s : spinners) EXPECT_TRUE(s.join());
    EXPECT_LT(ms, 2000.0) << "a new fiber waited " << ms << " ms behind yielding fibers";
  });
}

TEST_P(SchedulerTest, YieldingFiberDoesNotStarveTimers) {
  run([] {
    std::atomic<bool> stop{false};
    auto spinner = green::spawn([&] {
      auto end = Clock::now() + 20s;
      while (!stop.load() && Clock::now() < end) green::this_fiber::yield();
    });
    auto t0 = Clock::now();
    green::this_fiber::sleep_for(20ms);
    double ms = ms_since(t0);
    stop = true;
    spinner.join();
    EXPECT_LT(ms, 2000.0) << "a sleeping fiber was starved by a yield loop";
  });
}

TEST_P(SchedulerTest, CrossWorkerWakeups) {
  // Ping-pong through unbuffered channels: every hop is a wake-up, often across workers.
  run([] {
    green::Channel<int> ping(0), pong(0);
    constexpr int kRounds = 5000;
    auto peer = green::spawn([&] {
      for (int i = 0; i < kRounds; ++i) {
        auto v = ping.recv();
        if (!v) return;
        pong.send(*v + 1);
      }
    });
    auto t0 = Clock::now();
    for (int i = 0; i < kRounds; ++i) {
      ping.send(i);
      auto r = pong.recv();
      ASSERT_TRUE(r);
      ASSERT_EQ(*r, i + 1);
    }
    peer.join();
    std::printf("[ info ] %d ping-pong rounds in %.0f ms\n", kRounds, ms_since(t0));
  });
}

double process_cpu_ms() {
  rusage ru{};
  getrusage(RUSAGE_SELF, &ru);
  auto tv = [](const timeval& t) { return t.tv_sec * 1000.0 + t.tv_usec / 1000.0; };
  return tv(ru.ru_utime) + tv(ru.ru_stime);
}

TEST_P(SchedulerTest, IdleWorkersDoNotSpin) {
  double cpu = 0;
  run([&] {
    green::this_fiber::sleep_for(50ms);  // let start-up settle
    double c0 = process_cpu_ms();
    green::this_fiber::sleep_for(600ms);
    cpu = process_cpu_ms() - c0;
  });
  std::printf("[ info ] cpu while idle for 600 ms: %.1f ms\n", cpu);
  EXPECT_LT(cpu, 300.0) << "idle workers burn CPU";
}

TEST_P(SchedulerTest, SpawnFromManyFibersConcurrently) {
  run([] {
    std::atomic<long> total{0};
    std::vector<green::Fiber<void>> parents;
    for (int p = 0; p < 20; ++p) {
      parents.push_back(green::spawn([&] {
        std::vector<green::Fiber<int>> kids;
        for (int k = 0; k < 200; ++k) kids.push_back(green::spawn([k] { return k; }));
        for (auto& kid : kids) total += kid.join();
      }));
    }
    for (auto& p : parents) p.join();
    EXPECT_EQ(total.load(), 20L * (199 * 200 / 2));
  });
}

TEST_P(SchedulerTest, SpawnFromPlainThreadsWhileRunning) {
  run([] {
    std::atomic<int> ran{0};
    std::atomic<int> threads_done{0};
    std::vector<std::thread> ts;
    for (int t = 0; t < 3; ++t) {
      ts.emplace_back([&] {
        for (int i = 0; i < 300; ++i) green::spawn([&] { ran++; }).detach();
        threads_done++;
      });
    }
    EXPECT_TRUE(wait_until([&] { return threads_done.load() == 3 && ran.load() == 900; }))
        << "ran=" << ran.load();
    for (auto& t : ts) t.join();
  });
}

// fork() from a fiber: the child has only the forking OS thread, so it stops being a runtime.
// Its green calls behave as on a plain thread, spawn() throws, and the fiber's return ends the
// child (exit code 0; 1 if the fiber threw). Each check in the child exits with its own code.
int fork_child_status(std::size_t workers, bool child_throws) {
  int status = -1;
  green_test::run_green(workers, [&] {
    green::Mutex mu;
    green::Channel<int> ch(4);
    int fds[2];
    ASSERT_EQ(::pipe(fds), 0);
    // A second fiber on another worker that the child must not need.
    auto busy = green::spawn([] { green::this_fiber::sleep_for(50ms); });
    pid_t pid = ::fork();
    ASSERT_GE(pid, 0);
    if (pid == 0) {
      if (green::running()) _exit(10);
      try {
        green::spawn([] {}).detach();
        _exit(11);
      } catch (const std::logic_error&) {
      }
      mu.lock();  // uncontended, then contended by a plain thread: futex paths
#if defined(__SANITIZE_THREAD__)
      // TSan refuses to start threads in the child of a multi-threaded fork.
      green::this_fiber::sleep_for(5ms);  // nanosleep
      mu.unlock();
      ch.send(7);
#else
      std::thread other([&] {
        std::lock_guard<green::Mutex> g(mu);
        ch.send(7);
      });
      green::this_fiber::sleep_for(5ms);  // nanosleep
      mu.unlock();
      other.join();
#endif
      if (ch.recv() != 7) _exit(12);
      if (::write(fds[1], "x", 1) != 1) _exit(13);
      if (green::io::wait(fds[0], green::io::kReadable, Clock::now() + 5s) !=
          green::io::WaitResult::kReady)
        _exit(14);
      if (green::offload([] { return 21 * 2; }) != 42) _exit(15);
      if (child_throws) throw std::runtime_error("child fails");
      return;  // ends the child with 0
    }
    ASSERT_EQ(green::offload([&] { return ::waitpid(pid, &status, 0); }), pid);
    busy.join();
    ::close(fds[0]);
    ::close(fds[1]);
  });
  return status;
}

TEST_P(SchedulerTest, ForkedChildRunsOnAsPlainThread) {
  int status = fork_child_status(GetParam(), false);
  ASSERT_TRUE(WIFEXITED(status)) << "status " << status;
  EXPECT_EQ(WEXITSTATUS(status), 0)
      << "the child's check number " << WEXITSTATUS(status) << " failed (see fork_child_status)";
}

TEST_P(SchedulerTest, ForkedChildFiberThatThrowsExitsWithOne) {
  int status = fork_child_status(GetParam(), true);
  ASSERT_TRUE(WIFEXITED(status)) << "status " << status;
  EXPECT_EQ(WEXITSTATUS(status), 1);
}

// running_os_thread (the shim forwards a signal for a running fiber-thread there): the OS thread
// a fiber runs on while it runs, 0 while it is parked or after it finished.
TEST(SchedulerM2N, RunningOsThreadNamesTheThreadOfARunningFiber) {
  std::atomic<green::detail::Task*> task{nullptr};
  std::atomic<long> tid{0};
  std::atomic<bool> stop{false};
  long seen_running = -1, seen_parked = -1, seen_done = -1;
  green_test::run_green(2, [&] {
    green::Event parked;
    auto f = green::spawn([&] {
      tid.store(static_cast<long>(gettid()));
      task.store(green::detail::current_task());
      auto end = Clock::now() + 5s;  // bounded: a broken runtime fails instead of hanging
      while (!stop.load() && Clock::now() < end) {
      }
      parked.wait();
    });
    // From outside the runtime (an OS thread of its own), as a signal sender may be.
    std::thread observer([&] {
      wait_until([&] { return task.load() != nullptr; }, 5s);
      seen_running = green::detail::running_os_thread(task.load());
      stop.store(true);
    });
    observer.join();
    green::this_fiber::sleep_for(20ms);  // the fiber parks on the event meanwhile
    seen_parked = green::detail::running_os_thread(task.load());
    green::detail::Task* keep = task.load();
    keep->ref();  // the caller keeps the task alive (hooks.hpp); join drops the handle's
    parked.set();
    f.join();
    seen_done = green::detail::running_os_thread(keep);
    keep->unref();
  });
  EXPECT_EQ(seen_running, tid.load());
  EXPECT_EQ(seen_parked, 0);
  EXPECT_EQ(seen_done, 0);
  EXPECT_EQ(green::detail::running_os_thread(nullptr), 0);
}

}  // namespace
