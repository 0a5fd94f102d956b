// green_bench: Google Benchmark micro-benchmarks of green's hot paths, with raw Boost.Context,
// Boost.Fiber and OS threads as references in the same binary (same compiler flags, same
// run, so ratios are meaningful on a noisy machine).
//
// The workloads live in workloads.hpp (shared with green_bench_count, the callgrind
// driver). Each green benchmark starts the runtime once per benchmark-function call and
// loops inside the main fiber; Google Benchmark's clock covers only the loop. All benchmarks
// print both wall time and the calling thread's CPU time. Single-threaded benchmarks (raw
// Boost.Context, Boost.Fiber, green with one worker: worker 0 is the calling thread) derive
// iteration counts and `per_op` from CPU time, which other processes on a loaded shared
// machine cannot inflate; multi-threaded ones (OS threads, 2 workers: the timed fiber may
// run on either worker thread) use wall time (UseRealTime).
//
// Counters: `per_op` is wall time per operation (one yield, one round trip, one mutex
// acquisition, ...), shown with an SI suffix (e.g. 12.3n = 12.3 ns). The sleep benchmark
// also reports `cpu_per_sleep` (worker CPU ns per completed 1 ms sleep).
//
// Naming: ref_* are references, green_* are green; /1w and /2w give the worker count.
#include <benchmark/benchmark.h>

#include <condition_variable>
#include <mutex>
#include <thread>
#include <vector>

#include "workloads.hpp"

namespace {

using benchmark::Counter;

void per_op(benchmark::State& s, double ops_per_iter) {
  s.counters["per_op"] =
      Counter(ops_per_iter, Counter::kIsIterationInvariantRate | Counter::kInvert);
}

template <int (*W)(benchmark::State&)>
void simple(benchmark::State& s) {
  per_op(s, W(s));
}

// --- references ---------------------------------------------------------------------------
BENCHMARK(simple<bench::ref_fcontext_roundtrip>)->Name("ref_fcontext_roundtrip");
BENCHMARK(simple<bench::ref_ctx_fiber_roundtrip>)->Name("ref_ctx_fiber_roundtrip");
BENCHMARK(simple<bench::ref_ctx_fiber_spawn_pooled>)->Name("ref_ctx_fiber_spawn_pooled");
BENCHMARK(simple<bench::ref_bfiber_yield>)->Name("ref_bfiber_yield");
BENCHMARK(simple<bench::ref_bfiber_spawn_join>)->Name("ref_bfiber_spawn_join");
BENCHMARK(simple<bench::ref_bfiber_channel_rt>)->Name("ref_bfiber_channel_rt");
BENCHMARK(simple<bench::ref_thread_create_join>)->Name("ref_thread_create_join")->UseRealTime();

// --- green ----------------------------------------------------------------------------------
BENCHMARK(simple<bench::green_yield>)->Name("green_yield/1w");
BENCHMARK(simple<bench::green_spawn_join>)->Name("green_spawn_join/1w");

void green_channel_rt(benchmark::State& s, std::size_t nworkers) {
  per_op(s, bench::green_channel_rt(s, nworkers));
}
BENCHMARK_CAPTURE(green_channel_rt, 1w, 1)->Name("green_channel_rt/1w");
BENCHMARK_CAPTURE(green_channel_rt, 2w, 2)->Name("green_channel_rt/2w")->UseRealTime();

BENCHMARK(simple<bench::green_event_pingpong_2w>)->Name("green_event_wake_rt/2w")->UseRealTime();

void green_mutex(benchmark::State& s) {
  long total = 0;
  bench::green_mutex_contended(s, static_cast<int>(s.range(0)), &total);
  s.counters["per_op"] = Counter(static_cast<double>(total), Counter::kIsRate | Counter::kInvert);
}
BENCHMARK(green_mutex)->Name("green_mutex_contended/2w")->Arg(8)->ArgName("fibers")->UseRealTime();

// Reference: the same rounds on OS threads and std::mutex (glibc's, which barges too).
void std_mutex(benchmark::State& s) {
  const int n = static_cast<int>(s.range(0));
  std::mutex mu;
  long counter = 0;
  std::mutex round_mu;
  std::condition_variable round_cv;
  int round = 0, done = 0;
  bool stop = false;
  std::vector<std::thread> threads;
  for (int i = 0; i < n; ++i) {
    threads.emplace_back([&] {
      int seen = 0;
      for (;;) {
        {
          std::unique_lock lk(round_mu);
          round_cv.wait(lk, [&] { return stop || round != seen; });
          if (stop) return;
          seen = round;
        }
        for (int k = 0; k < bench::kMutexPerFiber; ++k) {
          std::lock_guard g(mu);
          ++counter;
        }
        std::lock_guard lk(round_mu);
        if (++done == n) round_cv.notify_all();
      }
    });
  }
  for ([[maybe_unused]] auto _ : s) {
    std::unique_lock lk(round_mu);
    done = 0;
    ++round;
    round_cv.notify_all();
    round_cv.wait(lk, [&] { return done == n; });
  }
  {
    std::lock_guard lk(round_mu);
    stop = true;
  }
  round_cv.notify_all();
  for (auto& t : threads) t.join();
  s.counters["per_op"] = Counter(static_cast<double>(counter), Counter::kIsRate | Counter::kInvert);
}
BENCHMARK(std_mutex)
    ->Name("std_mutex_contended/threads")
    ->Arg(8)
    ->ArgName("threads")
    ->UseRealTime();

BENCHMARK(simple<bench::green_sleep0>)->Name("green_sleep0/1w");

void green_sleep1ms(benchmark::State& s) {
  long sleeps = 0, cpu = 0;
  bench::green_sleep1ms(s, static_cast<int>(s.range(0)), &sleeps, &cpu);
  s.counters["per_op"] = Counter(static_cast<double>(sleeps), Counter::kIsRate | Counter::kInvert);
  s.counters["cpu_per_sleep"] =
      static_cast<double>(cpu) / static_cast<double>(std::max<long>(1, sleeps)) * 1e-9;
}
BENCHMARK(green_sleep1ms)->Name("green_sleep1ms/1w")->Arg(1000)->ArgName("sleepers")->UseRealTime();

BENCHMARK(simple<bench::green_io_pingpong>)->Name("green_io_socketpair_rt/1w");

// 100,000 fibers x sleep_for(50ms) at once on 2 workers: wall time per round (first spawn to
// last wake; the floor is the 50 ms). Target: under 1.5 s on a quiet machine (issue 13: the
// limit sleep_test had, which failed whenever the machine was loaded). `early` must be 0.
void green_sleepers(benchmark::State& s) {
  long early = 0;
  bench::green_sleepers(s, static_cast<int>(s.range(0)), 50, 2, &early);
  s.counters["early"] = static_cast<double>(early);
}
BENCHMARK(green_sleepers)
    ->Name("green_sleepers_50ms/2w")
    ->Arg(100000)
    ->ArgName("fibers")
    ->UseRealTime()
    ->Unit(benchmark::kMillisecond);

}  // namespace

BENCHMARK_MAIN();
