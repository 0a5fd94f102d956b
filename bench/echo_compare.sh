#!/usr/bin/env bash
# bench/echo_compare.sh: the example echo servers side by side, one load generator, one table.
#
#   bench/echo_compare.sh [--build-dir DIR] [--conns "100 1000 10000"] [--duration S]
#                         [--size BYTES] [--server-cpu N] [--load-cpu N] [--workers W]
#
# Servers (whatever is found in the build dir; missing ones are reported, not fatal):
#   libuv     examples/echo_libuv     raw libuv callbacks: the reference (ratio 1.00)
#   fibers    examples/echo_fibers    green::net, --workers W (default 1)
#   threads   examples/echo_threads   one OS thread per connection
#   greenrun  echo_threads under greenrun / LD_PRELOAD=libgreen_preload.so, GREEN_WORKERS=W
#   go        bench/echo_go.go        goroutine per connection, GOMAXPROCS=W (only if `go`)
# Load: examples/green-load (ping-pong, --size bytes, one worker) against 127.0.0.1.
# The server is pinned to --server-cpu (default 0) with taskset, the load to --load-cpu
# (default 1). Server CPU per round trip is the server's utime+stime delta from
# /proc/PID/stat over the whole load run (connect phase included) divided by the round
# trips; peak threads and VmRSS are sampled from /proc/PID/status every 0.2 s.
#
# Bounded: every run is --duration seconds (default 3) plus connect time, and each process
# gets a hard `timeout`. Only PIDs this script started are ever killed.
set -uo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(dirname "$here")"
build="$root/build/bench-release"
conns_list="100 1000 10000"
duration=3
size=64
server_cpu=0
load_cpu=1
workers=1

while [[ $# -gt 0 ]]; do
  case "$1" in
    --build-dir) build="$2"; shift ;;
    --conns) conns_list="$2"; shift ;;
    --duration) duration="$2"; shift ;;
    --size) size="$2"; shift ;;
    --server-cpu) server_cpu="$2"; shift ;;
    --load-cpu) load_cpu="$2"; shift ;;
    --workers) workers="$2"; shift ;;
    -h|--help) sed -n '2,22p' "$0"; exit 0 ;;
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

load_bin="$(find_bin green-load)"
if [[ -z "$load_bin" ]]; then
  echo "echo_compare: green-load (examples/load.cpp) is not built in $build; nothing to do"
  exit 0
fi
ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
ticks=$(getconf CLK_TCK)
tmp="$(mktemp -d)"
started_pids=()
cleanup() {
  local p
  for p in "${started_pids[@]}"; do kill "$p" 2>/dev/null; done
  rm -rf "$tmp"
}
trap cleanup EXIT

# --- servers ----------------------------------------------------------------------------------
names=()
declare -A cmd env_of
add_server() { names+=("$1"); cmd[$1]="$2"; env_of[$1]="${3:-}"; }
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
if command -v go >/dev/null 2>&1; then
  if go build -o "$tmp/echo_go" "$here/echo_go.go" 2>"$tmp/go.log"; then
    add_server go "$tmp/echo_go --port 0" "GOMAXPROCS=$workers"
  else
    echo "echo_compare: note: go build failed: $(head -1 "$tmp/go.log")"
  fi
else
  echo "echo_compare: note: go is not installed: no Go row"
fi
[[ " ${names[*]} " == *" libuv "* ]] ||
  echo "echo_compare: note: echo_libuv not built: ratios are not available"

cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat" 2>/dev/null || echo 0; }

# run_one NAME CONNS -> prints "rtt p99 cpu_us_per_rt peak_threads peak_rss_kib errors"
run_one() {
  local name=$1 c=$2 port="" out
  # shellcheck disable=SC2086
  env ${env_of[$name]} timeout $((duration * 4 + 60)) taskset -c "$server_cpu" \
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
    echo "- - - - - server-did-not-start"
    kill "$spid" 2>/dev/null; wait "$spid" 2>/dev/null
    return
  fi
  local t0; t0=$(cpu_ticks "$pid")
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
  out=$(timeout $((duration * 3 + 60)) taskset -c "$load_cpu" "$load_bin" --port "$port" \
        --connections "$c" --size "$size" --duration "$duration" --workers 1 2>"$tmp/load.err" |
        grep 'rtt_per_sec=' | tail -1)
  local t1; t1=$(cpu_ticks "$pid")
  touch "$tmp/stop"
  wait "$sampler" 2>/dev/null
  kill "$spid" 2>/dev/null
  wait "$spid" 2>/dev/null
  local peak="0 0"; [[ -s "$tmp/peak" ]] && peak=$(cat "$tmp/peak")
  rm -f "$tmp/peak"
  if [[ -z "$out" ]]; then
    echo "- - - $peak load-failed:$(head -c 60 "$tmp/load.err" | tr ' \n' '__')"
    return
  fi
  local rtt p99 rts errs
  rtt=$(sed -n 's/.*rtt_per_sec=\([0-9.]*\).*/\1/p' <<<"$out")
  p99=$(sed -n 's/.*p99_us=\([0-9.]*\).*/\1/p' <<<"$out")
  rts=$(sed -n 's/.*round_trips=\([0-9]*\).*/\1/p' <<<"$out")
  errs=$(sed -n 's/.*errors=\([0-9]*\).*/\1/p' <<<"$out")
  local cpu_us
  cpu_us=$(awk -v d=$((t1 - t0)) -v hz="$ticks" -v n="$rts" \
           'BEGIN { if (n > 0) printf "%.2f", d / hz * 1e6 / n; else print "-" }')
  echo "$rtt $p99 $cpu_us $peak errors=$errs"
}

declare -A res
echo "echo_compare: ${size} B ping-pong, ${duration} s per run, server on CPU $server_cpu," \
     "load (green-load, 1 worker) on CPU $load_cpu, server workers/GOMAXPROCS=$workers"
for c in $conns_list; do
  for n in "${names[@]}"; do
    res[$n,$c]=$(run_one "$n" "$c")
  done
done

printf "\n%-9s %7s %12s %9s %12s %9s %9s %9s %8s %s\n" server conns "rtt/s" "p99_us" \
  "cpu_us/rt" "x_libuv" "cpu_x" threads "rss_MiB" notes
for c in $conns_list; do
  base_rtt=$(awk '{print $1}' <<<"${res[libuv,$c]:-- }")
  base_cpu=$(awk '{print $3}' <<<"${res[libuv,$c]:-- - -}")
  for n in "${names[@]}"; do
    read -r rtt p99 cpu th rss notes <<<"${res[$n,$c]}"
    awk -v n="$n" -v c="$c" -v rtt="$rtt" -v p99="$p99" -v cpu="$cpu" -v th="$th" \
        -v rss="$rss" -v br="$base_rtt" -v bc="$base_cpu" -v notes="${notes:-}" 'BEGIN {
      x = (br + 0 > 0 && rtt + 0 > 0) ? sprintf("%.2f", rtt / br) : "-";
      cx = (bc + 0 > 0 && cpu + 0 > 0) ? sprintf("%.2f", cpu / bc) : "-";
      printf "%-9s %7d %12s %9s %12s %9s %9s %9s %8.1f %s\n", n, c, rtt, p99, cpu, x, cx, th,
             rss / 1024, notes }'
  done
done
