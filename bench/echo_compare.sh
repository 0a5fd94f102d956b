#!/usr/bin/env bash
# bench/echo_compare.sh: the example echo servers side by side, one load generator, one table.
#
#   bench/echo_compare.sh [--build-dir DIR] [--conns "100 1000 10000"] [--duration S]
#                         [--size BYTES] [--server-cpu N] [--load-cpu N] [--workers W]
#                         [--runs N] [--servers "libuv greenrun ..."] [--extra NAME=CMD]...
#                         [--server-quota PCT] [--quota-fallback] [--base NAME]
#                         [--warmup S] [--csv FILE]
# --base NAME: the row the ratio columns divide by (default libuv).
# --warmup S: loadgen's warm-up before the measured window (default 1; may be fractional).
# --csv FILE: also write the medians, one row per (server, conns), machine-readable
# (bench/run_all.sh builds its markdown tables and chart from it).
# --extra adds a server row (e.g. an older build: --extra 'old=env LD_PRELOAD=/x/lib.so
# /x/echo_threads'); CMD gets "--port 0" appended and must print "listening on PORT".
#
# Servers (whatever is found in the build dir; missing ones are reported, not fatal):
#   libuv     examples/echo_libuv     raw libuv callbacks: the reference (ratio 1.00)
#   fibers    examples/echo_fibers    green::net, --workers W (default 1)
#   threads   examples/echo_threads   one OS thread per connection
#   greenrun  echo_threads under greenrun / LD_PRELOAD=libgreen_preload.so, GREEN_WORKERS=W
#   go        bench/echo_go.go        goroutine per connection, GOMAXPROCS=W (only if `go`)
# Load: bench/loadgen (plain C, one thread, epoll, closed loop, --size byte messages, every
# byte checked; not a green program) against 127.0.0.1, 1 s warm-up, then --duration s.
# The server is pinned to --server-cpu (default 1) with taskset, the load to --load-cpu
# (default 0). Server CPU per round trip is the server's utime+stime delta from
# /proc/PID/stat over exactly the measured window (loadgen marks it on stderr) divided by
# the round trips in it; CPU% is that delta over the window. min_ans: the fewest connections
# answered in any one second of the window (== conns: every connection every second).
# Peak threads and VmRSS are sampled from /proc/PID/status every 0.2 s. --runs N repeats
# every (conns, server) pair N times, interleaving the servers, and reports medians.
#
# --server-quota PCT caps the server at PCT% of one CPU (a cpu cgroup, v1 or v2: quota
# PCT*100 us per 10 ms period), so that on a 2-core machine the one-thread load generator has
# more CPU than the server and the server is the bottleneck (cpu% close to PCT: saturated);
# every server gets the same cap. Throttling stalls are at most 10 ms - PCT% of it, and
# count in p99 alike for all servers. Needs root and a writable cgroup fs; else it is an error,
# or with --quota-fallback a note (the servers then run uncapped; the CSV's quota column says so).
#
# Bounded: every run is --duration seconds (default 5) plus warm-up and connect time, and
# each process gets a hard `timeout`. Only PIDs this script started are ever killed.
set -uo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(dirname "$here")"
build="$root/build/bench-release"
conns_list="100 1000 10000"
duration=5
size=64
server_cpu=1
load_cpu=0
workers=1
runs=1
only=""
extras=()
quota=""
base=libuv
warmup=1
csv=""
quota_fallback=0

while [[ $# -gt 0 ]]; do
  case "$1" in
    --build-dir) build="$2"; shift ;;
    --conns) conns_list="$2"; shift ;;
    --duration) duration="$2"; shift ;;
    --size) size="$2"; shift ;;
    --server-cpu) server_cpu="$2"; shift ;;
    --load-cpu) load_cpu="$2"; shift ;;
    --workers) workers="$2"; shift ;;
    --runs) runs="$2"; shift ;;
    --servers) only="$2"; shift ;;
    --extra) extras+=("$2"); shift ;;
    --server-quota) quota="$2"; shift ;;
    --base) base="$2"; shift ;;
    --warmup) warmup="$2"; shift ;;
    --csv) csv="$2"; shift ;;
    --quota-fallback) quota_fallback=1 ;;
    -h|--help) sed -n '2,40p' "$0"; exit 0 ;;
    *) echo "echo_compare.sh: unknown argument $1" >&2; exit 2 ;;
  esac
  shift
done

find_bin() {  # first executable named $1 under the build dir
  find "$build" -name "$1" -type f -perm -u+x 2>/dev/null | head -1
}
find_file() {
  find "$build" -name "$1" -type f 2>/dev/null | head -1
}

load_bin="$(find_bin loadgen)"
if [[ -z "$load_bin" ]]; then
  echo "echo_compare: loadgen (bench/loadgen.c) is not built in $build; nothing to do"
  exit 0
fi
ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
ticks=$(getconf CLK_TCK)
tmp="$(mktemp -d)"
started_pids=()
cleanup() {
  local p
  for p in "${started_pids[@]}"; do kill "$p" 2>/dev/null; done
  [[ -n "${cg:-}" ]] && { sleep 0.2; rmdir "$cg" 2>/dev/null; }
  rm -rf "$tmp"
}
trap cleanup EXIT

# The cpu cgroup for --server-quota (v2: cpu.max; v1: cpu.cfs_quota_us/cpu.cfs_period_us).
cg=""
if [[ -n "$quota" ]]; then
  if ! [[ "$quota" =~ ^[0-9]+$ ]] || (( quota < 5 || quota > 100 )); then
    echo "echo_compare: --server-quota takes a whole percentage of one CPU, 5..100 (got '$quota')" >&2
    exit 2
  fi
  if [[ -f /sys/fs/cgroup/cgroup.controllers ]]; then
    cg=/sys/fs/cgroup/green-echo-$$
    mkdir "$cg" 2>/dev/null && echo "$((quota * 100)) 10000" >"$cg/cpu.max" 2>/dev/null ||
      { rmdir "$cg" 2>/dev/null; cg=""; }
  elif [[ -d /sys/fs/cgroup/cpu ]]; then
    cg=/sys/fs/cgroup/cpu/green-echo-$$
    mkdir "$cg" 2>/dev/null && echo 10000 >"$cg/cpu.cfs_period_us" &&
      echo "$((quota * 100))" >"$cg/cpu.cfs_quota_us" 2>/dev/null ||
      { rmdir "$cg" 2>/dev/null; cg=""; }
  fi
  if [[ -z "$cg" && $quota_fallback -eq 1 ]]; then
    echo "echo_compare: note: --server-quota: cannot create a cpu cgroup (needs root and" \
         "cgroupfs): the servers run uncapped"
    quota=""
  elif [[ -z "$cg" ]]; then
    echo "echo_compare: --server-quota: cannot create a cpu cgroup (needs root and cgroupfs)" >&2
    exit 2
  fi
fi

# --- servers ----------------------------------------------------------------------------------
names=()
declare -A cmd env_of
add_server() {
  [[ -n "$only" && " $only " != *" $1 "* ]] && return
  names+=("$1"); cmd[$1]="$2"; env_of[$1]="${3:-}"
}
b="$(find_bin echo_libuv)"; [[ -n "$b" ]] && add_server libuv "$b --port 0"
b="$(find_bin echo_fibers)"; [[ -n "$b" ]] && add_server fibers "$b --port 0 --workers $workers"
b="$(find_bin echo_threads)"
if [[ -n "$b" ]]; then
  add_server threads "$b --port 0"
  gr="$(find_bin greenrun)"
  pre="$(find_file libgreen_preload.so)"
  if [[ -n "$gr" ]]; then
    add_server greenrun "$gr $b --port 0" "GREEN_WORKERS=$workers"
  elif [[ -n "$pre" ]]; then
    add_server greenrun "$b --port 0" "GREEN_WORKERS=$workers LD_PRELOAD=$pre"
  else
    echo "echo_compare: note: no greenrun / libgreen_preload.so in $build (shim not built):" \
         "the 'threads under greenrun' row is skipped"
  fi
fi
for x in "${extras[@]}"; do names+=("${x%%=*}"); cmd[${x%%=*}]="${x#*=} --port 0"; env_of[${x%%=*}]=""; done
if [[ -n "$only" && " $only " != *" go "* ]]; then
  :  # not asked for: do not build it
elif command -v go >/dev/null 2>&1; then
  if go build -o "$tmp/echo_go" "$here/echo_go.go" 2>"$tmp/go.log"; then
    add_server go "$tmp/echo_go --port 0" "GOMAXPROCS=$workers"
  else
    echo "echo_compare: note: go build failed: $(head -1 "$tmp/go.log")"
  fi
else
  echo "echo_compare: note: go is not installed: no Go row"
fi
[[ " ${names[*]} " == *" $base "* ]] ||
  echo "echo_compare: note: no $base row: ratios are not available"

cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat" 2>/dev/null || echo 0; }

# run_one NAME CONNS -> prints "rtt p50 p99 cpu_us_per_rt cpu_pct min_answered threads rss notes"
run_one() {
  local name=$1 c=$2 port="" out
  # shellcheck disable=SC2086
  env ${env_of[$name]} timeout $((duration * 4 + 90)) taskset -c "$server_cpu" \
    ${cmd[$name]} >"$tmp/srv.out" 2>"$tmp/srv.err" &
  local spid=$!
  started_pids+=("$spid")
  for _ in $(seq 100); do
    port=$(sed -n 's/^listening on \([0-9]*\).*/\1/p' "$tmp/srv.out" | head -1)
    [[ -n "$port" ]] && break
    sleep 0.05
  done
  # The server process is the child of timeout; find it (pid of the exec'd command).
  local pid
  pid=$(pgrep -P "$spid" | head -1)
  [[ -z "$pid" ]] && pid=$spid
  if [[ -z "$port" ]]; then
    echo "- - - - - - - - server-did-not-start"
    kill "$spid" 2>/dev/null; wait "$spid" 2>/dev/null
    return
  fi
  [[ -n "$cg" ]] && echo "$pid" >"$cg/cgroup.procs"
  # peak threads / RSS sampler
  rm -f "$tmp/stop" "$tmp/peak"
  ( peak_t=0; peak_r=0
    while kill -0 "$pid" 2>/dev/null && [[ ! -e "$tmp/stop" ]]; do
      t=$(awk '/^Threads:/{print $2}' "/proc/$pid/status" 2>/dev/null || echo 0)
      r=$(awk '/^VmRSS:/{print $2}' "/proc/$pid/status" 2>/dev/null || echo 0)
      (( t > peak_t )) && peak_t=$t
      (( r > peak_r )) && peak_r=$r
      echo "$peak_t $peak_r" >"$tmp/peak"
      sleep 0.2
    done ) &
  local sampler=$!
  started_pids+=("$sampler")
  : >"$tmp/load.err"
  timeout $((duration * 3 + 90)) taskset -c "$load_cpu" "$load_bin" --port "$port" \
    --conns "$c" --size "$size" --duration "$duration" --warmup "$warmup" \
    >"$tmp/load.out" 2>"$tmp/load.err" &
  local lpid=$!
  started_pids+=("$lpid")
  local t0="" t1=""
  while kill -0 "$lpid" 2>/dev/null; do
    if [[ -z "$t0" ]] && grep -q 'loadgen: measuring' "$tmp/load.err"; then t0=$(cpu_ticks "$pid"); fi
    if [[ -n "$t0" ]] && grep -q 'loadgen: done' "$tmp/load.err"; then t1=$(cpu_ticks "$pid"); break; fi
    sleep 0.01
  done
  wait "$lpid" 2>/dev/null
  [[ -z "$t1" ]] && t1=$(cpu_ticks "$pid")
  out=$(grep 'rt_per_s=' "$tmp/load.out" | tail -1)
  touch "$tmp/stop"
  wait "$sampler" 2>/dev/null
  kill "$spid" 2>/dev/null
  wait "$spid" 2>/dev/null
  local peak="0 0"; [[ -s "$tmp/peak" ]] && peak=$(cat "$tmp/peak")
  rm -f "$tmp/peak"
  if [[ -z "$out" || -z "$t0" ]]; then
    echo "- - - - - - $peak load-failed:$(grep -v 'loadgen: measuring' "$tmp/load.err" | head -c 60 | tr ' \n' '__')"
    return
  fi
  local rtt p50 p99 rts ans
  rtt=$(sed -n 's/.*rt_per_s=\([0-9.]*\).*/\1/p' <<<"$out")
  p50=$(sed -n 's/.*p50_us=\([0-9.]*\).*/\1/p' <<<"$out")
  p99=$(sed -n 's/.*p99_us=\([0-9.]*\).*/\1/p' <<<"$out")
  rts=$(sed -n 's/.* rt=\([0-9]*\).*/\1/p' <<<"$out")
  ans=$(sed -n 's/.*min_answered=\([0-9-]*\).*/\1/p' <<<"$out")
  local cpu_us cpu_pct
  cpu_us=$(awk -v d=$((t1 - t0)) -v hz="$ticks" -v n="$rts" \
           'BEGIN { if (n > 0) printf "%.2f", d / hz * 1e6 / n; else print "-" }')
  cpu_pct=$(awk -v d=$((t1 - t0)) -v hz="$ticks" -v s="$duration" 'BEGIN { printf "%.0f", d / hz / s * 100 }')
  echo "$rtt $p50 $p99 $cpu_us $cpu_pct $ans $peak"
}

declare -A res
echo "echo_compare: ${size} B ping-pong, ${duration} s per run (+$warmup s warm-up), $runs run(s)" \
     "interleaved, server on CPU $server_cpu, load (bench/loadgen) on CPU $load_cpu," \
     "server workers/GOMAXPROCS=$workers${quota:+, server capped at ${quota}% of a CPU};"\
     "$(uptime | sed 's/.*load/load/')"
for c in $conns_list; do
  for r in $(seq "$runs"); do
    for n in "${names[@]}"; do
      res[$n,$c,$r]=$(run_one "$n" "$c")
      echo "  run $r conns $c $n: ${res[$n,$c,$r]}" >&2
    done
  done
done

# Median of field $1 over the runs of (name, conns).
median() {
  local f=$1 n=$2 c=$3 r
  for r in $(seq "$runs"); do awk -v f="$f" '{print $f}' <<<"${res[$n,$c,$r]}"; done |
    grep -E '^[0-9.]+$' | sort -g | awk '{v[NR]=$1} END { if (NR) print v[int((NR+1)/2)]; else print "-" }'
}

# The notes of failed runs of (name, conns), e.g. "server-did-not-start", joined by '/'.
notes_of() {
  local n=$1 c=$2 r
  for r in $(seq "$runs"); do awk '{print $9}' <<<"${res[$n,$c,$r]}"; done | grep -v '^$' |
    sort -u | paste -sd/ -
}
if [[ -n "$csv" ]]; then
  echo "server,conns,rt_per_s,p50_us,p99_us,cpu_us_per_rt,cpu_pct,min_answered,threads,rss_kib,runs,quota_pct,note" >"$csv"
  for c in $conns_list; do
    for n in "${names[@]}"; do
      echo "$n,$c,$(median 1 "$n" "$c"),$(median 2 "$n" "$c"),$(median 3 "$n" "$c"),$(median 4 "$n" "$c"),$(median 5 "$n" "$c"),$(median 6 "$n" "$c"),$(median 7 "$n" "$c"),$(median 8 "$n" "$c"),$runs,${quota:-none},$(notes_of "$n" "$c" | tr ',' ';')" >>"$csv"
    done
  done
fi

printf "\n%-9s %6s %9s %9s %9s %9s %5s %7s %7s %6s %7s %7s %7s\n" server conns "rt/s" \
  "p50_us" "p99_us" "cpu_us/rt" "cpu%" "min_ans" "x_$base" "cpu_x" "p99_x" threads "rss_MiB"
for c in $conns_list; do
  base_rtt=$(median 1 "$base" "$c"); base_cpu=$(median 4 "$base" "$c"); base_p99=$(median 3 "$base" "$c")
  for n in "${names[@]}"; do
    rtt=$(median 1 "$n" "$c"); p50=$(median 2 "$n" "$c"); p99=$(median 3 "$n" "$c")
    cpu=$(median 4 "$n" "$c"); pct=$(median 5 "$n" "$c"); ans=$(median 6 "$n" "$c")
    th=$(median 7 "$n" "$c"); rss=$(median 8 "$n" "$c")
    awk -v n="$n" -v c="$c" -v rtt="$rtt" -v p50="$p50" -v p99="$p99" -v cpu="$cpu" \
        -v pct="$pct" -v ans="$ans" -v th="$th" -v rss="$rss" -v br="$base_rtt" \
        -v bc="$base_cpu" -v bp="$base_p99" 'BEGIN {
      x = (br + 0 > 0 && rtt + 0 > 0) ? sprintf("%.2f", rtt / br) : "-";
      cx = (bc + 0 > 0 && cpu + 0 > 0) ? sprintf("%.2f", cpu / bc) : "-";
      px = (bp + 0 > 0 && p99 + 0 > 0) ? sprintf("%.2f", p99 / bp) : "-";
      printf "%-9s %6d %9s %9s %9s %9s %5s %7s %7s %6s %7s %7s %7.1f\n", n, c, rtt, p50, p99,
             cpu, pct, ans, x, cx, px, th, rss / 1024 }'
  done
done
