#!/usr/bin/env bash
# bench/echo_callgrind.sh: user-space instructions per echo round trip, exact and repeatable.
#
#   bench/echo_callgrind.sh [--build-dir DIR] [--conns N] [--duration S] [--top N] [--cache]
#                           -- SERVER_CMD...
# e.g.  bench/echo_callgrind.sh -- build/cmake/examples/echo_libuv
#       GREEN_WORKERS=1 LD_PRELOAD=$PWD/build/cmake/shim/libgreen_preload.so \
#         bench/echo_callgrind.sh -- build/cmake/examples/echo_threads
# The server runs under `valgrind --tool=callgrind --instr-atstart=no`; bench/loadgen (plain
# C, not under valgrind) opens N connections (default 200), warms up 1 s, then measures for S
# seconds (default 4). Collection is switched on when loadgen starts measuring and the
# counters are dumped when it is done (instrumentation switched on then: `-i on`), so the count covers exactly the measured round trips:
# Ir / round trips is printed, then the top functions (self cost) by Ir per round trip.
# Under valgrind the server is ~50x slower; instruction counts do not depend on the speed or
# on machine load (scheduling decisions may, a little: quote medians of a few runs).
# GREEN_THREAD_TLS=arch_prctl is set (valgrind does not emulate wrfsbase).
# --cache: also simulate the caches (callgrind --cache-sim=yes: L1 as this CPU's, LL as
# valgrind reads it) and print the user-space L1 data read/write misses and LL misses per
# round trip, and the top functions by L1 data misses: the footprint of the data path (each
# fiber's stack, task, fd entries and thread identity against libuv's one handle per
# connection). The simulation sees user space only, no prefetches and no TLB.
set -uo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
build="$(dirname "$here")/build/cmake"
conns=200 duration=4 top=15 cache=0
while [[ $# -gt 0 ]]; do
  case "$1" in
    --build-dir) build="$2"; shift ;;
    --conns) conns="$2"; shift ;;
    --duration) duration="$2"; shift ;;
    --top) top="$2"; shift ;;
    --cache) cache=1 ;;
    --) shift; break ;;
    -h|--help) sed -n '2,21p' "$0"; exit 0 ;;
    *) echo "echo_callgrind.sh: unknown argument $1 (the server command goes after --)" >&2; exit 2 ;;
  esac
  shift
done
[[ $# -gt 0 ]] || { echo "echo_callgrind.sh: no server command (after --)" >&2; exit 2; }
command -v valgrind >/dev/null || { echo "echo_callgrind.sh: valgrind is not installed" >&2; exit 2; }
load_bin="$(find "$build" -name loadgen -type f -perm -u+x | head -1)"
[[ -n "$load_bin" ]] || { echo "echo_callgrind.sh: no loadgen under $build" >&2; exit 2; }
tmp="$(mktemp -d)"
spid="" lpid=""
cleanup() { [[ -n "$lpid" ]] && kill "$lpid" 2>/dev/null; [[ -n "$spid" ]] && kill "$spid" 2>/dev/null; [[ -n "${KEEP:-}" ]] && echo "kept $tmp" || rm -rf "$tmp"; }
trap cleanup EXIT
ulimit -n 65536 2>/dev/null || true

GREEN_THREAD_TLS="${GREEN_THREAD_TLS:-arch_prctl}" timeout $((duration * 10 + 120)) \
  valgrind --tool=callgrind --instr-atstart=no --callgrind-out-file="$tmp/cg.%p" \
  $( ((cache)) && echo --cache-sim=yes) \
  "$@" --port 0 >"$tmp/srv.out" 2>"$tmp/srv.err" &
spid=$!
port=""
for _ in $(seq 600); do
  port=$(sed -n 's/^listening on \([0-9]*\).*/\1/p' "$tmp/srv.out" | head -1)
  [[ -n "$port" ]] && break
  sleep 0.05
done
[[ -n "$port" ]] || { echo "echo_callgrind.sh: server did not start:"; tail -5 "$tmp/srv.err"; exit 1; }
vpid=$(pgrep -P "$spid" | head -1); [[ -z "$vpid" ]] && vpid=$spid
timeout $((duration * 4 + 120)) "$load_bin" --port "$port" --conns "$conns" --size 64 \
  --duration "$duration" --warmup 1 >"$tmp/load.out" 2>"$tmp/load.err" &
lpid=$!
on=0
while kill -0 "$lpid" 2>/dev/null; do
  if (( !on )) && grep -q 'loadgen: measuring' "$tmp/load.err"; then
    callgrind_control -i on "$vpid" >/dev/null 2>&1; on=1
  fi
  if (( on )) && grep -q 'loadgen: done' "$tmp/load.err"; then
    callgrind_control -d "$vpid" >/dev/null 2>&1; break
  fi
  sleep 0.01
done
wait "$lpid"; lpid=""
kill "$spid" 2>/dev/null; wait "$spid" 2>/dev/null; spid=""
rt=$(sed -n 's/.* rt=\([0-9]*\).*/\1/p' "$tmp/load.out" | tail -1)
dump=$(grep -l "^desc: Trigger: dump" "$tmp"/cg.* 2>/dev/null | head -1)
[[ -n "$rt" && "$rt" -gt 0 && -n "$dump" ]] || { echo "echo_callgrind.sh: no measurement"; cat "$tmp/load.err"; exit 1; }
total=$(callgrind_annotate "$dump" 2>/dev/null | awk '/PROGRAM TOTALS/ {gsub(",", "", $1); print $1; exit}')
awk -v t="$total" -v r="$rt" -v c="$conns" 'BEGIN { printf "round trips %d, Ir %d, Ir per round trip %.0f (%d connections)\n", r, t, t / r, c }'
callgrind_annotate --show=Ir "$dump" 2>/dev/null | awk -v r="$rt" -v n="$top" '
  /^-+$/ { sep++; next }
  sep >= 3 && $1 ~ /^[0-9,]+$/ && shown < n { v = $1; gsub(",", "", v); $1 = ""; $2 = "";
    printf "%8.1f  %s\n", v / r, $0; shown++ }'
if ((cache)); then
  callgrind_annotate --show=D1mr,D1mw,DLmr,DLmw "$dump" 2>/dev/null | awk -v r="$rt" '
    /PROGRAM TOTALS/ { gsub(/\([^)]*\)/, ""); gsub(",", "");
      printf "per round trip: L1 data read misses %.1f, write misses %.1f, LL misses %.2f\n",
        $1 / r, $2 / r, ($3 + $4) / r; exit }'
  echo "top functions by L1 data misses per round trip (read, write):"
  callgrind_annotate --tree=none --show=D1mr,D1mw --sort=D1mr,D1mw "$dump" 2>/dev/null |
    awk -v r="$rt" -v n="$top" '
    /^-+$/ { sep++; next }
    sep >= 3 && $1 ~ /^[0-9,]+$/ && shown < n { line = $0; gsub(/\([^)]*\)/, "", line);
      gsub(",", "", line); split(line, f, " "); sub(/^ *[0-9.]+ +[0-9.]+ +/, "", line);
      printf "%6.2f %6.2f  %s\n", f[1] / r, f[2] / r, line; shown++ }'
fi
