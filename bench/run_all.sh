#!/usr/bin/env bash
# bench/run_all.sh: every benchmark of issue 11 with one command, written as markdown tables
# in bench/README.md's format (DIR/tables.md) and one PNG chart (DIR/chart.png: round
# trips/s, server CPU per round trip and p99 against connections, one line per server).
#
#   bench/run_all.sh [--quick] [--out DIR] [--build-dir DIR] [--no-build] [--no-install]
#                    [--runs N] [--duration S] [--quota PCT|none] [--sections "micro ..."]
#
# Sections (default all; --sections picks a subset):
#   micro    green_bench (Google Benchmark): green yield, spawn+join, unbuffered channel
#            round trip next to raw jump_fcontext / boost::context / Boost.Fiber, medians of
#            --reps repetitions; Ir/op from callgrind when valgrind is installed (not --quick)
#   memory   idle_fibers N: RSS per parked fiber (10k, 100k, 1M; --quick: 1k, 10k)
#   echo     bench/echo_compare.sh: libuv, green::net fibers, echo_threads under greenrun, Go
#            (if `go` is installed), OS threads at 1,000 and 10,000 connections, the server
#            capped by a cpu cgroup (--quota, default 50% of a CPU) so it is saturated,
#            medians of --runs interleaved runs; load from bench/loadgen (plain C)
#   python   examples/python/echo_socketserver.py unmodified under greenrun --workers 1 and 2,
#            gevent's monkey patching, OS threads, plus the asyncio rewrite (and uvloop if
#            installed) at 100, 1,000 and 5,000 connections, same load generator
# Every figure in the output comes from this run. The servers are pinned to CPU 1, the load
# generator to CPU 0 (echo_compare.sh).
#
# --quick: seconds, small counts (micro: the core rows, 3 repetitions of 10 ms; memory: 1k and
#          10k fibers; echo and python: 20 and 100 connections, 1 s windows, 1 run, no
#          greenrun --workers 2 / uvloop rows): checks that everything runs and the output is
#          well formed (ctest bench.run_all_quick, ~40 s); its figures mean nothing.
# --out DIR        where the results go (default build/bench-results/all)
# --build-dir DIR  CMake build directory (default build/bench-release, configured Release
#                  and built here unless --no-build)
# --no-install     never run apt-get (by default, as root, missing gnuplot-nox and
#                  python3-gevent are installed; without them the chart / the gevent row are
#                  skipped with a message)
#
# Output in DIR: tables.md, chart.png, and the raw data they are made from (micro.json,
# callgrind.txt, idle_fibers.txt, echo.csv, python.csv, meta.txt, *.log).
# Needs python3 (stdlib only) for the tables; gnuplot for the chart.
set -uo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(dirname "$here")"
quick=0
out=""
build="$root/build/bench-release"
do_build=1
install=1
runs=""
duration=""
quota=50
sections="micro memory echo python"

while [[ $# -gt 0 ]]; do
  case "$1" in
    --quick) quick=1 ;;
    --out) out="$2"; shift ;;
    --build-dir) build="$2"; shift ;;
    --no-build) do_build=0 ;;
    --no-install) install=0 ;;
    --runs) runs="$2"; shift ;;
    --duration) duration="$2"; shift ;;
    --quota) quota="$2"; shift ;;
    --sections) sections="$2"; shift ;;
    -h|--help) sed -n '2,38p' "$0"; exit 0 ;;
    *) echo "run_all.sh: unknown argument $1 (try --help)" >&2; exit 2 ;;
  esac
  shift
done
want() { [[ " $sections " == *" $1 "* ]]; }

if [[ $quick -eq 1 ]]; then
  runs="${runs:-1}" duration="${duration:-1}" warmup=0.2 reps=3 min_time=0.01
  echo_conns="20 100" py_conns="20 100" idle_ns="1000 10000"
  micro_filter='^(ref_fcontext_roundtrip|ref_ctx_fiber_roundtrip|ref_bfiber_yield|ref_bfiber_spawn_join|ref_bfiber_channel_rt|green_yield/1w|green_spawn_join/1w|green_channel_rt/1w)$'
else
  runs="${runs:-3}" duration="${duration:-5}" warmup=1 reps=5 min_time=0.2
  echo_conns="1000 10000" py_conns="100 1000 5000" idle_ns="10000 100000 1000000"
  micro_filter='.'
fi
out="${out:-$root/build/bench-results/all}"
mkdir -p "$out" || exit 1
out="$(cd "$out" && pwd)"
rm -f "$out"/{tables.md,chart.png,micro.json,callgrind.txt,idle_fibers.txt,echo.csv,python.csv,meta.txt}
start=$SECONDS
log() { echo "run_all: [$((SECONDS - start)) s] $*" >&2; }

py_tool=$(command -v python3) || { log "python3 is needed for the tables"; exit 1; }

# apt_install PKG: install a Debian package if allowed (root, apt-get, not --no-install).
apt_install() {
  [[ $install -eq 1 && $EUID -eq 0 ]] && command -v apt-get >/dev/null 2>&1 || return 1
  log "installing $1 (apt-get)"
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$1" \
    >"$out/apt.log" 2>&1 && return 0
  apt-get update -qq >>"$out/apt.log" 2>&1 &&
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$1" \
      >>"$out/apt.log" 2>&1
}

# --- build --------------------------------------------------------------------------------
# Needed: the benchmarks, the load generator and the reference server; optional (their rows
# are skipped, with a note, when they do not build): the other servers and the shim.
targets=(green_bench green_bench_count idle_fibers loadgen echo_libuv)
optional=(echo_fibers echo_threads greenrun green_preload)
if [[ $do_build -eq 1 ]]; then
  log "building (Release) in $build"
  gen=()
  command -v ninja >/dev/null && gen=(-G Ninja)
  if ! cmake -S "$root" -B "$build" "${gen[@]}" -DCMAKE_BUILD_TYPE=Release \
      -DGREEN_BUILD_TESTS=OFF -DGREEN_BUILD_BENCH=ON -DGREEN_BUILD_EXAMPLES=ON \
      >"$out/build.log" 2>&1 ||
     ! cmake --build "$build" --target "${targets[@]}" >>"$out/build.log" 2>&1; then
    tail -20 "$out/build.log" >&2
    log "build failed (log: $out/build.log)"
    exit 1
  fi
  for t in "${optional[@]}"; do
    cmake --build "$build" --target "$t" >>"$out/build.log" 2>&1 ||
      log "note: $t did not build (see $out/build.log): its rows are skipped"
  done
fi
bin="$build/bench"
for b in green_bench green_bench_count idle_fibers; do
  if { want micro || want memory; } && [[ ! -x "$bin/$b" ]]; then
    log "$bin/$b not found (build it, or drop --no-build)"
    exit 1
  fi
done
greenrun="$build/shim/greenrun"
[[ -x "$greenrun" ]] || greenrun=""

{
  echo "date=$(date -u '+%Y-%m-%d %H:%M UTC')"
  echo "commit=$(git -C "$root" describe --always --dirty 2>/dev/null || echo unknown)"
  echo "machine=$(nproc) x $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//'), $(uname -sr)"
  echo "build=$(sed -n 's/^CMAKE_BUILD_TYPE:[A-Z]*=//p' "$build/CMakeCache.txt" 2>/dev/null)"
  echo "quick=$quick"
  echo "runs=$runs"
  echo "duration=$duration"
  echo "reps=$reps"
  echo "quota=$quota"
  echo "load_start=$(cut -d' ' -f1-3 /proc/loadavg)"
} >"$out/meta.txt"

# --- micro-benchmarks -----------------------------------------------------------------------
if want micro; then
  log "micro-benchmarks (median of $reps)"
  "$bin/green_bench" --benchmark_filter="$micro_filter" --benchmark_min_time="$min_time" \
    --benchmark_repetitions="$reps" --benchmark_report_aggregates_only=true \
    --benchmark_out="$out/micro.json" --benchmark_out_format=json \
    --benchmark_format=console >"$out/micro.log" 2>&1 ||
    log "green_bench failed: $(tail -1 "$out/micro.log")"
  if [[ $quick -eq 0 ]]; then
    if command -v valgrind >/dev/null 2>&1; then
      log "callgrind: instructions per operation"
      OUT="$out" bash "$here/run.sh" --bin-dir "$bin" --callgrind >"$out/callgrind.log" 2>&1 ||
        log "callgrind failed: $(tail -1 "$out/callgrind.log")"
    else
      log "valgrind is not installed: no Ir/op column"
    fi
  fi
fi

# --- idle fibers ------------------------------------------------------------------------------
if want memory; then
  log "idle fibers: $idle_ns"
  : >"$out/idle_fibers.txt"
  for n in $idle_ns; do
    timeout 300 "$bin/idle_fibers" "$n" >>"$out/idle_fibers.txt" 2>>"$out/idle_fibers.log" ||
      log "idle_fibers $n failed: $(tail -1 "$out/idle_fibers.log")"
  done
fi

# --- echo: compiled servers, saturated -----------------------------------------------------------
quota_args=()
[[ "$quota" != none ]] && quota_args=(--server-quota "$quota" --quota-fallback)
if want echo; then
  log "echo comparison at $echo_conns connections, $runs run(s) of $duration s"
  bash "$here/echo_compare.sh" --build-dir "$build" --conns "$echo_conns" --runs "$runs" \
    --duration "$duration" --warmup "$warmup" --servers "libuv fibers greenrun go threads" \
    "${quota_args[@]}" --csv "$out/echo.csv" >"$out/echo.log" 2>&1 ||
    log "echo_compare failed: $(tail -1 "$out/echo.log")"
  grep 'note:' "$out/echo.log" | sed 's/^/run_all: /' >&2
fi

# --- echo: the Python file, unmodified ------------------------------------------------------------
if want python; then
  # The interpreter: the first python3 that has gevent (Debian's /usr/bin/python3 with
  # python3-gevent), else install python3-gevent, else the first python3 without a gevent row.
  py=""
  for cand in /usr/bin/python3 "$(command -v python3)"; do
    [[ -x "$cand" ]] || continue
    cand=$("$cand" -c 'import sys; print(sys.executable)' 2>/dev/null) || continue
    [[ -z "$py" ]] && py=$cand
    if "$cand" -c 'import gevent' 2>/dev/null; then py=$cand; break; fi
  done
  if [[ -n "$py" ]] && ! "$py" -c 'import gevent' 2>/dev/null && apt_install python3-gevent &&
     /usr/bin/python3 -c 'import gevent' 2>/dev/null; then
    py=/usr/bin/python3
  fi
  if [[ -z "$py" ]]; then
    log "no python3 interpreter for the Python servers: section skipped"
  else
    ex="$root/examples/python"
    extras=()
    base=threads
    if "$py" -c 'import gevent' 2>/dev/null; then
      extras+=(--extra "gevent=$py -m gevent.monkey $ex/echo_socketserver.py")
      base=gevent
    else
      log "python3-gevent is not installed (and not installable here): no gevent row;" \
          "ratios are against OS threads"
    fi
    if [[ -n "$greenrun" ]]; then
      extras+=(--extra "greenrun=$greenrun --workers 1 $py $ex/echo_socketserver.py")
      [[ $quick -eq 1 ]] ||
        extras+=(--extra "greenrun2=$greenrun --workers 2 $py $ex/echo_socketserver.py")
    else
      log "greenrun is not built: no greenrun rows in the Python table"
    fi
    extras+=(--extra "threads=$py $ex/echo_socketserver.py")
    extras+=(--extra "asyncio=$py $ex/echo_asyncio.py")
    if [[ $quick -eq 0 ]] && "$py" -c 'import uvloop' 2>/dev/null; then
      extras+=(--extra "uvloop=$py $ex/echo_asyncio.py --uvloop")
    fi
    echo "python=$py $("$py" -V 2>&1)" >>"$out/meta.txt"
    log "Python echo ($py) at $py_conns connections, $runs run(s) of $duration s"
    bash "$here/echo_compare.sh" --build-dir "$build" --conns "$py_conns" --runs "$runs" \
      --duration "$duration" --warmup "$warmup" --servers none --base "$base" "${extras[@]}" \
      --csv "$out/python.csv" >"$out/python.log" 2>&1 ||
      log "echo_compare (python) failed: $(tail -1 "$out/python.log")"
  fi
fi
echo "load_end=$(cut -d' ' -f1-3 /proc/loadavg)" >>"$out/meta.txt"
echo "seconds=$((SECONDS - start))" >>"$out/meta.txt"

# --- tables and chart -------------------------------------------------------------------------------
if ! command -v gnuplot >/dev/null 2>&1; then
  apt_install gnuplot-nox || log "gnuplot is not installed (apt-get install gnuplot-nox): no chart"
fi
"$py_tool" "$here/tables.py" render "$out" || { log "tables.py failed"; exit 1; }
log "done in $((SECONDS - start)) s: $out/tables.md${quick:+}, $out/chart.png"
