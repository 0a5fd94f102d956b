// green_bench_count: runs one workload of workloads.hpp a fixed number of times, for
// instruction counts under `valgrind --tool=callgrind` (repeatable where wall time on a
// shared VM is not). bench/run.sh --callgrind runs each workload at two iteration counts and
// divides the difference in total instructions by the difference in operations, which
// cancels start-up, runtime creation and teardown.
//
//   green_bench_count WORKLOAD ITERATIONS
//   workloads: fcontext_rt ctx_fiber_rt ctx_spawn_pooled bfiber_yield bfiber_spawn_join
//              bfiber_channel_rt yield spawn_join channel_rt sleep0 io_rt
//              mutex channel_rt_2w (2 workers: not for callgrind)
//
// Prints "WORKLOAD ITERATIONS OPS_PER_ITERATION".
#include <cstdio>
#include <cstdlib>
#include <cstring>

#include "workloads.hpp"

int main(int argc, char** argv) {
  if (argc != 3) {
    std::fprintf(stderr, "usage: %s WORKLOAD ITERATIONS\n", argv[0]);
    return 2;
  }
  const char* w = argv[1];
  bench::CountLoop loop(std::atol(argv[2]));
  int ops = 0;
  if (!std::strcmp(w, "fcontext_rt")) {
    ops = bench::ref_fcontext_roundtrip(loop);
  } else if (!std::strcmp(w, "ctx_fiber_rt")) {
    ops = bench::ref_ctx_fiber_roundtrip(loop);
  } else if (!std::strcmp(w, "ctx_spawn_pooled")) {
    ops = bench::ref_ctx_fiber_spawn_pooled(loop);
  } else if (!std::strcmp(w, "bfiber_yield")) {
    ops = bench::ref_bfiber_yield(loop);
  } else if (!std::strcmp(w, "bfiber_spawn_join")) {
    ops = bench::ref_bfiber_spawn_join(loop);
  } else if (!std::strcmp(w, "bfiber_channel_rt")) {
    ops = bench::ref_bfiber_channel_rt(loop);
  } else if (!std::strcmp(w, "yield")) {
    ops = bench::green_yield(loop);
  } else if (!std::strcmp(w, "spawn_join")) {
    ops = bench::green_spawn_join(loop);
  } else if (!std::strcmp(w, "channel_rt")) {
    ops = bench::green_channel_rt(loop, 1);
  } else if (!std::strcmp(w, "mutex")) {
    long total = 0;
    ops = bench::green_mutex_contended(loop, 8, &total);
    std::fprintf(stderr, "mutex: %ld acquisitions in all\n", total);
  } else if (!std::strcmp(w, "channel_rt_2w")) {
    ops = bench::green_channel_rt(loop, 2);
  } else if (!std::strcmp(w, "sleep0")) {
    ops = bench::green_sleep0(loop);
  } else if (!std::strcmp(w, "io_rt")) {
    ops = bench::green_io_pingpong(loop);
  } else {
    std::fprintf(stderr, "unknown workload %s\n", w);
    return 2;
  }
  std::printf("%s %ld %d\n", w, loop.iterations(), ops);
  return 0;
}
