#!/usr/bin/env bash
# bench/run.sh: build (CMake, Release) and run green's benchmark suite with one command.
#
#   bench/run.sh                 build, then run everything briefly: micro-benchmarks (medians
#                                of 5 repetitions), callgrind instruction counts, idle-fiber
#                                memory (10k, 100k, 1M) and the echo comparison
#   bench/run.sh --smoke         run every benchmark once, very briefly (CI: cannot rot);
#                                < 60 s; registered as ctest `bench.smoke` (label bench-smoke)
#                                and meson test `bench-smoke`
#   sections: --micro --callgrind --memory --echo (any subset; default all)
#   --bin-dir DIR                use already built binaries in DIR (green_bench,
#                                green_bench_count, idle_fibers); skips building
#   --build-dir DIR              CMake build directory (default build/bench-release)
#   --filter REGEX               only micro-benchmarks matching REGEX
#   --reps N                     repetitions for the micro-benchmark medians (default 5)
#
# Results go to stdout and, for the full run, to $OUT (default build/bench-results/), which
# holds green_bench.json, callgrind.txt, idle_fibers.txt and echo.txt.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(dirname "$here")"
smoke=0
bin_dir=""
build_dir="$root/build/bench-release"
filter="."
reps=5
sections=()

while [[ $# -gt 0 ]]; do
  case "$1" in
    --smoke) smoke=1 ;;
    --bin-dir) bin_dir="$2"; shift ;;
    --build-dir) build_dir="$2"; shift ;;
    --filter) filter="$2"; shift ;;
    --reps) reps="$2"; shift ;;
    --micro|--callgrind|--memory|--echo) sections+=("${1#--}") ;;
    -h|--help) sed -n '2,20p' "$0"; exit 0 ;;
    *) echo "run.sh: unknown argument $1" >&2; exit 2 ;;
  esac
  shift
done
[[ ${#sections[@]} -eq 0 ]] && sections=(micro callgrind memory echo)
want() { local s; for s in "${sections[@]}"; do [[ $s == "$1" ]] && return 0; done; return 1; }

if [[ -z "$bin_dir" ]]; then
  echo "== building (Release) in $build_dir"
  cmake -S "$root" -B "$build_dir" -G Ninja -DCMAKE_BUILD_TYPE=Release \
    -DGREEN_BUILD_TESTS=OFF -DGREEN_BUILD_BENCH=ON >/dev/null
  cmake --build "$build_dir" --target green_bench green_bench_count idle_fibers >/dev/null
  # The echo comparison also needs the example servers, the load generator and the shim.
  if want echo && [[ $smoke -eq 0 ]]; then
    cmake --build "$build_dir" >/dev/null 2>&1 || echo "run.sh: note: full build failed;" \
      "the echo comparison uses whatever servers were built" >&2
  fi
  bin_dir="$build_dir/bench"
fi
for b in green_bench green_bench_count idle_fibers; do
  [[ -x "$bin_dir/$b" ]] || { echo "run.sh: $bin_dir/$b not found" >&2; exit 1; }
done

# --- smoke: every benchmark once, briefly -------------------------------------------------
if [[ $smoke -eq 1 ]]; then
  start=$SECONDS
  "$bin_dir/green_bench" --benchmark_min_time=0.005 --benchmark_filter="$filter" \
    --benchmark_format=console
  for w in fcontext_rt ctx_fiber_rt ctx_spawn_pooled bfiber_yield bfiber_spawn_join \
           bfiber_channel_rt yield spawn_join channel_rt sleep0 io_rt; do
    "$bin_dir/green_bench_count" "$w" 100 >/dev/null
  done
  "$bin_dir/idle_fibers" 10000 | tail -1
  if [[ -x "$here/echo_compare.sh" ]]; then
    bash -n "$here/echo_compare.sh"
  fi
  echo "bench smoke OK in $((SECONDS - start)) s"
  exit 0
fi

out="${OUT:-$root/build/bench-results}"
mkdir -p "$out"

# --- micro-benchmarks: medians of $reps repetitions -----------------------------------------
if want micro; then
  echo "== micro-benchmarks (median of $reps, wall time)"
  "$bin_dir/green_bench" --benchmark_filter="$filter" --benchmark_min_time=0.2 \
    --benchmark_repetitions="$reps" --benchmark_report_aggregates_only=true \
    --benchmark_out="$out/green_bench.json" --benchmark_out_format=json \
    --benchmark_format=console | grep -E "_median|^-|^Bench|^Run|^CPU|^Load" || true
fi

# --- callgrind: instructions per operation ------------------------------------------------
# Two runs per workload (n1 and n2 iterations); (Ir(n2) - Ir(n1)) / ((n2 - n1) * ops/iter)
# cancels start-up and teardown.
if want callgrind; then
  if command -v valgrind >/dev/null 2>&1; then
    echo "== callgrind: instructions per operation"
    n1=2000
    n2=22000
    {
      printf "%-20s %12s\n" workload "Ir/op"
      for w in fcontext_rt ctx_fiber_rt ctx_spawn_pooled bfiber_yield bfiber_spawn_join \
               bfiber_channel_rt yield spawn_join channel_rt sleep0 io_rt; do
        ir() {
          valgrind --tool=callgrind --callgrind-out-file=/dev/null \
            "$bin_dir/green_bench_count" "$w" "$1" 2>&1 >/dev/null |
            sed -n 's/.*Collected : \([0-9]*\).*/\1/p'
        }
        ops=$("$bin_dir/green_bench_count" "$w" 1 | awk '{print $3}')
        a=$(ir $n1)
        b=$(ir $n2)
        awk -v w="$w" -v a="$a" -v b="$b" -v n1=$n1 -v n2=$n2 -v ops="$ops" \
          'BEGIN { printf "%-20s %12.1f\n", w, (b - a) / ((n2 - n1) * ops) }'
      done
    } | tee "$out/callgrind.txt"
  else
    echo "== callgrind: skipped (valgrind not installed)"
  fi
fi

# --- memory: idle fibers ------------------------------------------------------------------
if want memory; then
  echo "== idle fibers (RSS per parked fiber)"
  : >"$out/idle_fibers.txt"
  for n in 10000 100000 1000000; do
    "$bin_dir/idle_fibers" "$n" 2>&1 | tee -a "$out/idle_fibers.txt" | tail -1
  done
fi

# --- echo comparison ------------------------------------------------------------------------
if want echo; then
  echo "== echo comparison"
  bash "$here/echo_compare.sh" --build-dir "$(dirname "$bin_dir")" | tee "$out/echo.txt"
fi
