#!/usr/bin/env bash
# demo.sh: green's headline demo. Threads vs processes vs explicit async vs fibers, measured.
#
#   scripts/demo.sh [--quick] [--out DIR] [--build-dir DIR] [--no-build] [--duration S]
#                   [--styles LIST] [--conns LIST] [--echo-only]
#
# On a fresh Debian 12 machine it installs what is missing (scripts/deps.sh if present, else
# apt-get), builds everything (CMake, Release, into build/demo), then:
#   1. echo server, five styles (OS thread per connection, process per connection, raw libuv
#      callbacks, green fibers, the unmodified threaded binary under greenrun) at 100, 1,000
#      and 10,000 concurrent connections, driven by bench/loadgen (plain C, 64-byte
#      ping-pong): round trips/s, server CPU per round trip, p99 latency, OS threads and peak
#      RSS of the server. Server pinned to CPU 0, load generator to CPU 1 (two CPUs or more).
#   2. the fib server scenario: short fib(1) requests while one fib(40) runs, on 1 worker
#      (cooperative scheduling), 2 workers (M:N) and with green::offload.
#   3. the HTTP server on fibers vs on OS threads (and the threaded one under greenrun), driven
#      by bench/loadgen --http (plain C): requests/s, server CPU per request, p99, OS threads.
# Writes echo.csv, fib.csv, http.csv, echo.png and summary.txt into the out dir (default
# build/demo-out). --quick: 100 and 1,000 connections, shorter runs. A row that cannot run
# says why. Only loopback; every process started here is stopped by PID on exit.
# Some rows only: --styles threads,fork,libuv,fibers,greenrun (a comma list; no chart then),
# --conns 1000,... (connection counts), --echo-only (skip the fib and HTTP scenarios).
set -uo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
QUICK=0
OUT=""
BUILD="$ROOT/build/demo"
DO_BUILD=1
DURATION=""
ONLY_STYLES=""
ONLY_CONNS=""
ECHO_ONLY=0
while [[ $# -gt 0 ]]; do
  case "$1" in
    --quick) QUICK=1 ;;
    --out) OUT="$2"; shift ;;
    --out=*) OUT="${1#--out=}" ;;
    --build-dir) BUILD="$2"; shift ;;
    --no-build) DO_BUILD=0 ;;
    --duration) DURATION="$2"; shift ;;
    --styles) ONLY_STYLES="$2"; shift ;;
    --conns) ONLY_CONNS="$2"; shift ;;
    --echo-only) ECHO_ONLY=1 ;;
    -h | --help) sed -n '2,21p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "demo.sh: unknown argument '$1' (try --help)" >&2; exit 2 ;;
  esac
  shift
done
OUT="${OUT:-$ROOT/build/demo-out}"
BUILD="$(realpath -m "$BUILD")"
mkdir -p "$OUT"
OUT="$(cd "$OUT" && pwd)"
TMP="$(mktemp -d "${TMPDIR:-/tmp}/green-demo.XXXXXX")"

if [[ $QUICK -eq 1 ]]; then
  CONNS=(100 1000)
  DURATION="${DURATION:-1}"
  FIB_N=38
  WRK_D=1
  SETUP=5
else
  CONNS=(100 1000 10000)
  DURATION="${DURATION:-2}"
  FIB_N=40
  WRK_D=2
  SETUP=10
fi
STYLES=(threads fork libuv fibers greenrun)
if [[ -n "$ONLY_STYLES" ]]; then
  IFS=, read -r -a STYLES <<<"$ONLY_STYLES"
  for st in "${STYLES[@]}"; do
    [[ " threads fork libuv fibers greenrun " == *" $st "* ]] ||
      { echo "demo.sh: --styles: unknown style '$st'" >&2; exit 2; }
  done
fi
if [[ -n "$ONLY_CONNS" ]]; then
  IFS=, read -r -a CONNS <<<"$ONLY_CONNS"
  for c in "${CONNS[@]}"; do
    [[ "$c" =~ ^[1-9][0-9]*$ ]] || { echo "demo.sh: --conns: '$c' is not a count" >&2; exit 2; }
  done
fi

# ---- process bookkeeping: everything we start is stopped by PID ---------------------------
PIDS=()
stop_pid() {  # stop_pid PID: TERM, then KILL after 1 s
  local pid=$1
  kill -0 "$pid" 2>/dev/null || return 0
  kill -TERM "$pid" 2>/dev/null
  for _ in 1 2 3 4 5 6 7 8 9 10; do
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.1
  done
  kill -KILL "$pid" 2>/dev/null
  wait "$pid" 2>/dev/null
  return 0
}
CG=""  # the cgroup (v2) the servers run in, for their CPU time: see cpu_usec
cleanup() {
  for pid in "${PIDS[@]}"; do stop_pid "$pid"; done
  if [[ -n "$CG" ]]; then  # empty once echo_fork's children have followed their parent
    for _ in 1 2 3 4 5 6 7 8 9 10; do rmdir "$CG" 2>/dev/null && break; sleep 0.2; done
  fi
  rm -rf "$TMP"
}
trap cleanup EXIT
trap 'echo "demo.sh: interrupted" >&2; exit 130' INT TERM

log() { echo "demo: $*" >&2; }
die() { echo "demo.sh: error: $*" >&2; exit 1; }

# ---- 1. dependencies --------------------------------------------------------------------------
missing_packages() {
  local pkgs=()
  command -v cmake >/dev/null || pkgs+=(cmake)
  command -v ninja >/dev/null || pkgs+=(ninja-build)
  command -v g++ >/dev/null || pkgs+=(g++)
  command -v pkg-config >/dev/null || pkgs+=(pkg-config)
  pkg-config --exists libuv 2>/dev/null || pkgs+=(libuv1-dev)
  [[ -f /usr/include/boost/context/fiber.hpp ]] || pkgs+=(libboost-context-dev)
  command -v gnuplot >/dev/null || pkgs+=(gnuplot-nox)
  command -v taskset >/dev/null || pkgs+=(util-linux)
  command -v ps >/dev/null || pkgs+=(procps)
  echo "${pkgs[@]}"
}
if [[ $DO_BUILD -eq 1 ]]; then
  if [[ -x "$ROOT/scripts/deps.sh" ]]; then
    log "installing dependencies with scripts/deps.sh"
    "$ROOT/scripts/deps.sh" || log "scripts/deps.sh failed; checking what is still missing"
  fi
  need="$(missing_packages)"
  if [[ -n "$need" ]]; then
    log "installing: $need"
    SUDO=""
    [[ $(id -u) -eq 0 ]] || SUDO="sudo"
    if [[ -n "$SUDO" ]] && ! command -v sudo >/dev/null; then
      die "missing packages ($need) and not root; install them: apt-get install $need"
    fi
    $SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq $need \
      || die "apt-get install $need failed"
  fi
  # The shim links a PIC libuv built from source; fetch it if the shim is part of the tree.
  if [[ -f "$ROOT/shim/CMakeLists.txt" && -x "$ROOT/scripts/fetch-libuv.sh" &&
        ! -f "$ROOT/third_party/libuv-src/include/uv.h" ]]; then
    log "fetching libuv sources for the shim (scripts/fetch-libuv.sh)"
    if ! "$ROOT/scripts/fetch-libuv.sh" >"$TMP/fetch.log" 2>&1; then
      log "fetch-libuv.sh failed; the greenrun rows will say so:"
      tail -3 "$TMP/fetch.log" >&2
    fi
  fi

  # ---- 2. build ---------------------------------------------------------------------------------
  GEN=()
  command -v ninja >/dev/null && GEN=(-G Ninja)
  t0=$SECONDS
  log "building into $BUILD (Release)"
  # Warnings are not errors here: a demo on a newer compiler must not stop at a new warning
  # (development builds keep GREEN_WERROR=ON).
  if ! cmake -S "$ROOT" -B "$BUILD" "${GEN[@]}" -DCMAKE_BUILD_TYPE=Release -DGREEN_WERROR=OFF \
        -DGREEN_BUILD_EXAMPLES=ON -DGREEN_BUILD_TESTS=OFF -DGREEN_BUILD_BENCH=OFF \
        >"$TMP/configure.log" 2>&1; then
    tail -30 "$TMP/configure.log" >&2
    die "cmake configure failed (log above)"
  fi
  if ! cmake --build "$BUILD" -j "$(nproc)" >"$TMP/build.log" 2>&1; then
    grep -E 'error|FAILED' "$TMP/build.log" | head -30 >&2
    die "build failed (errors above; full log: cmake --build $BUILD)"
  fi
  log "built in $((SECONDS - t0)) s"
fi

EX="$BUILD/examples"
for exe in echo_threads echo_fork echo_libuv echo_fibers fib_server fib_client \
           http_server http_threads; do
  [[ -x "$EX/$exe" ]] || die "$EX/$exe is missing (build incomplete?)"
done
# The echo load generator: plain C (bench/loadgen.c), never a green program.
LOADGEN="$EX/loadgen"
[[ -x "$LOADGEN" ]] || die "$LOADGEN is missing (build incomplete?)"
GREENRUN=""
for cand in "${GREENRUN_PATH:-}" "$BUILD/shim/greenrun" "$BUILD/greenrun" "$BUILD/bin/greenrun"; do
  if [[ -n "$cand" && -x "$cand" ]]; then GREENRUN="$cand"; break; fi
done

# ---- limits and CPU placement ----------------------------------------------------------------
want_fds=$((${CONNS[-1]} * 2 + 1024))
ulimit -n "$want_fds" 2>/dev/null || ulimit -n "$(ulimit -Hn)" 2>/dev/null
NOFILE=$(ulimit -n)
NCPU=$(nproc)
if [[ $NCPU -ge 2 ]] && command -v taskset >/dev/null; then
  PIN_SERVER=(taskset -c 0)
  PIN_LOAD=(taskset -c 1)
  PLACEMENT="server on CPU 0, loadgen on CPU 1"
else
  PIN_SERVER=()
  PIN_LOAD=()
  PLACEMENT="not pinned ($NCPU CPU)"
fi
CPU_MODEL="$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//')"
MACHINE="$NCPU x ${CPU_MODEL:-unknown CPU}, $(uname -sr), $(free -g | awk '/Mem:/{print $2}') GiB RAM"

# ---- helpers ------------------------------------------------------------------------------------
# start_server OUTFILE CMD...: starts CMD --port 0 in the background and waits for its
# "listening on PORT" line. Sets SRV_PID and SRV_PORT, or SRV_WHY and returns 1.
start_server() {
  local out=$1
  shift
  SRV_PID="" SRV_PORT="" SRV_WHY=""
  # Empty the files here, before the server starts: the redirections below happen in the
  # background child, and until it has opened them the loop would read the previous server's
  # "listening on" line and hand the load generator a closed port (connect: Connection refused).
  : >"$out"
  : >"$out.err"
  "$@" --port 0 >"$out" 2>"$out.err" &
  local pid=$!
  PIDS+=("$pid")
  for _ in $(seq 1 100); do
    if grep -q '^listening on' "$out" 2>/dev/null; then
      SRV_PID=$pid
      SRV_PORT=$(awk '/^listening on/{print $3; exit}' "$out")
      return 0
    fi
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.1
  done
  local why
  why="$(tail -1 "$out.err" 2>/dev/null)"
  stop_pid "$pid"
  SRV_WHY="server did not start${why:+: $why}"
  return 1
}

status_field() { awk -v f="$2:" '$1 == f {print $2}' "/proc/$1/status" 2>/dev/null; }

# sample_tree PID: "THREADS PROCS PSS_KB" summed over the process and its descendants, from
# one `ps` snapshot and one pass over their smaps_rollup (fast even for 10,000 processes).
sample_tree() {
  ps -e -o pid=,ppid=,nlwp= | awk -v root="$1" '
    { parent[$1] = $2; lwp[$1] = $3 }
    END {
      for (p in parent) {
        q = p
        for (hops = 0; q != root && (q in parent) && hops < 64; hops++) q = parent[q]
        if (q == root) print p, lwp[p]
      }
    }' >"$TMP/tree"
  local threads procs pss
  threads=$(awk '{s += $2} END {print s + 0}' "$TMP/tree")
  procs=$(wc -l <"$TMP/tree")
  pss=$(awk '{print "/proc/" $1 "/smaps_rollup"}' "$TMP/tree" |
        xargs -r cat 2>/dev/null | awk '/^Pss:/ {s += $2} END {print s + 0}')
  echo "$threads $procs ${pss:-0}"
}

# measure_window LOADGEN_PID LOADGEN_OUT DURATION SERVER_PID: waits for the loadgen run to end.
# Sets MW_C0/MW_C1 (the server's CPU time in usec when loadgen marks the measured window's start
# and end: its CPU over exactly that window) and MW_SAMPLED (sample_tree of the server in the
# middle of the window, taken in the background: with thousands of processes a sample can
# outlast the window). Empty values when the window never started (60 s to connect) or ended.
measure_window() {
  local lpid=$1 out=$2 duration=$3 pid=$4 waited=0 spl=""
  MW_C0="" MW_C1="" MW_SAMPLED=""
  rm -f "$TMP/sampled"
  while kill -0 "$lpid" 2>/dev/null; do
    if grep -q 'measuring' "$out"; then
      MW_C0=$(cpu_usec "$pid")
      ( sleep "$(awk -v d="$duration" 'BEGIN{print d/2}')"
        sample_tree "$pid" >"$TMP/sampled.tmp" && mv "$TMP/sampled.tmp" "$TMP/sampled" ) &
      spl=$!
      PIDS+=("$spl")
      break
    fi
    sleep 0.05
    waited=$((waited + 1))
    [[ $waited -lt 1200 ]] || break  # 60 s to connect: give up
  done
  while [[ -n "$MW_C0" ]] && kill -0 "$lpid" 2>/dev/null; do
    if grep -q 'loadgen: done' "$out"; then MW_C1=$(cpu_usec "$pid"); break; fi
    sleep 0.02
  done
  wait "$lpid" 2>/dev/null
  [[ -n "$spl" ]] && wait "$spl" 2>/dev/null
  [[ -s "$TMP/sampled" ]] && MW_SAMPLED=$(cat "$TMP/sampled")
  return 0
}

kv() { grep -o "\b$1=[^ ]*" <<<"$2" | head -1 | cut -d= -f2; }

fmt_rate() { awk -v r="$1" 'BEGIN{ if (r >= 1e6) printf "%.2fM", r/1e6; else if (r >= 1e3) printf "%.1fk", r/1e3; else printf "%d", r }'; }
fmt_us() { awk -v u="$1" 'BEGIN{ if (u >= 1e6) printf "%.2f s", u/1e6; else if (u >= 1e3) printf "%.1f ms", u/1e3; else printf "%.0f us", u }'; }
fmt_kb() { awk -v k="$1" 'BEGIN{ if (k >= 1048576) printf "%.2f GB", k/1048576; else printf "%.1f MB", k/1024 }'; }

SUMMARY="$OUT/summary.txt"
: >"$SUMMARY"
say() { echo "$*" | tee -a "$SUMMARY"; }

# ---- 3. the echo matrix ---------------------------------------------------------------------------
declare -A LABEL=(
  [threads]="OS thread per connection"
  [fork]="process per connection"
  [libuv]="libuv callbacks (async)"
  [fibers]="green fibers"
  [greenrun]="threads under greenrun"
)
ECHO_CSV="$OUT/echo.csv"
echo "style,connections,rtt_per_sec,p50_us,p99_us,cpu_us_per_rt,os_threads,processes,peak_rss_kb,errors,note" \
  >"$ECHO_CSV"

# The server's CPU time in microseconds. Each server runs alone in a cgroup of its own (as
# root; cgroup v2 cpu.stat usage_usec, or v1 cpuacct.usage): that counts every process and
# thread of the server, exited ones included, to the microsecond, in one read. Without the
# cgroup: utime+stime of the process and its live children from /proc (clock ticks of 10 ms;
# slow and too coarse for echo_fork's children, whose row may then have no CPU figure).
CG_USAGE=""
if [[ $(id -u) -eq 0 ]]; then
  if [[ -f /sys/fs/cgroup/cgroup.controllers ]] &&
     mkdir "/sys/fs/cgroup/green-demo-$$" 2>/dev/null; then
    CG="/sys/fs/cgroup/green-demo-$$" CG_USAGE=v2
  elif [[ -d /sys/fs/cgroup/cpuacct ]] && mkdir "/sys/fs/cgroup/cpuacct/green-demo-$$" 2>/dev/null; then
    CG="/sys/fs/cgroup/cpuacct/green-demo-$$" CG_USAGE=v1
  fi
fi
HZ=$(getconf CLK_TCK)
cpu_usec() {  # cpu_usec PID
  if [[ -n "$CG" ]] && grep -qx "$1" "$CG/cgroup.procs" 2>/dev/null; then
    if [[ $CG_USAGE == v2 ]]; then
      awk '$1 == "usage_usec" {print $2}' "$CG/cpu.stat"
    else
      awk '{printf "%d\n", $1 / 1000}' "$CG/cpuacct.usage"
    fi
    return
  fi
  local p t=0 v
  for p in "$1" $(pgrep -P "$1" 2>/dev/null); do
    v=$(awk '{print $14 + $15}' "/proc/$p/stat" 2>/dev/null) && t=$((t + v))
  done
  echo $((t * 1000000 / HZ))
}
# into_cgroup PID: moves a just-started server into $CG (its children follow it).
into_cgroup() { [[ -n "$CG" ]] && echo "$1" >"$CG/cgroup.procs" 2>/dev/null; return 0; }

run_echo() {  # run_echo STYLE CONNS -> appends a CSV row, prints a table row
  local style=$1 conns=$2 cmd=() note="" line
  case $style in
    threads) cmd=("$EX/echo_threads") ;;
    fork) cmd=("$EX/echo_fork") ;;
    libuv) cmd=("$EX/echo_libuv") ;;
    fibers) cmd=("$EX/echo_fibers" --workers 1) ;;
    greenrun)
      if [[ -z "$GREENRUN" ]]; then
        note="greenrun not built (no shim/ in this build)"
      else
        cmd=(env GREEN_WORKERS=1 "$GREENRUN" "$EX/echo_threads")
      fi
      ;;
  esac
  local rate="" p50="" p99="" cpu="" threads="" procs="" rss="" errors=""
  if [[ -z "$note" ]]; then
    local pid port
    if ! start_server "$TMP/srv.out" "${PIN_SERVER[@]}" "${cmd[@]}"; then
      note="$SRV_WHY"
    else
      pid=$SRV_PID port=$SRV_PORT
      into_cgroup "$pid"
      "${PIN_LOAD[@]}" "$LOADGEN" --port "$port" --conns "$conns" \
        --duration "$DURATION" --warmup 1 >"$TMP/load.out" 2>&1 &
      local lpid=$!
      PIDS+=("$lpid")
      measure_window "$lpid" "$TMP/load.out" "$DURATION" "$pid"
      local sampled="$MW_SAMPLED" c0="$MW_C0" c1="$MW_C1"
      local died=""
      kill -0 "$pid" 2>/dev/null || died="server exited during the run: $(tail -1 "$TMP/srv.out.err")"
      local hwm
      hwm=$(status_field "$pid" VmHWM)
      [[ -n "$hwm" ]] || hwm=$(status_field "$(pgrep -P "$pid" | head -1)" VmHWM)
      stop_pid "$pid"
      line=$(grep 'rt_per_s=' "$TMP/load.out" | tail -1)
      if [[ -z "$line" ]]; then
        note="loadgen failed: $(grep -v 'loadgen: measuring' "$TMP/load.out" | tail -1)"
      else
        rate=$(kv rt_per_s "$line")
        p50=$(kv p50_us "$line")
        p99=$(kv p99_us "$line")
        errors=0
        local rts ans
        rts=$(kv rt "$line")
        ans=$(kv min_answered "$line")
        [[ -n "$c1" && "${rts:-0}" -gt 0 ]] &&
          cpu=$(awk -v d=$((c1 - c0)) -v n="$rts" 'BEGIN { printf "%.2f", d / n }')
        if [[ "$ans" != "$conns" ]]; then
          note="in the worst second only $ans of $conns connections were answered"
        fi
        read -r threads procs pss <<<"${sampled:-0 0 0}"
        rss=${hwm:-0}
        # Many processes: VmHWM of one says little; use the summed PSS of the whole tree.
        if [[ ${procs:-0} -gt 1 && ${pss:-0} -gt $rss ]]; then rss=$pss; fi
        local srv_err
        srv_err=$(grep -m1 -E 'pthread_create|fork|accept' "$TMP/srv.out.err" 2>/dev/null)
        [[ -n "$srv_err" ]] && note="${note:+$note; }server: $srv_err"
        [[ -n "$died" ]] && note="${note:+$note; }$died"
        if [[ "${rate%.*}" == 0 ]]; then rate=""; fi
      fi
    fi
  fi
  echo "$style,$conns,${rate},${p50},${p99},${cpu},${threads},${procs},${rss},${errors},\"${note//\"/\'}\"" \
    >>"$ECHO_CSV"
  if [[ -n "$rate" ]]; then
    say "$(printf '%7s  %-26s %9s %10s %10s %11s %10s  %s' "$conns" "${LABEL[$style]}" \
      "$(fmt_rate "$rate")" "${cpu:--}" "$(fmt_us "$p99")" "$threads" "$(fmt_kb "$rss")" "$note")"
  else
    say "$(printf '%7s  %-26s %9s %10s %10s %11s %10s  %s' "$conns" "${LABEL[$style]}" "-" "-" "-" "-" "-" \
      "cannot run: ${note:-no result}")"
  fi
}

T_MEASURE=$SECONDS
say "green demo: $MACHINE"
say ""
say "Echo server, 64-byte ping-pong, ${DURATION} s per run, $PLACEMENT, open files $NOFILE"
say "(OS threads: all threads of the server's processes; peak RSS: VmHWM, or summed PSS for"
say " the process-per-connection server)"
say "$(printf '%7s  %-26s %9s %10s %10s %11s %10s  %s' conns style "rtt/s" "CPU us/rt" "p99" "OS threads" "peak RSS" note)"
for c in "${CONNS[@]}"; do
  for s in "${STYLES[@]}"; do run_echo "$s" "$c"; done
  say ""
done

# ---- the chart --------------------------------------------------------------------------------------
if [[ -n "$ONLY_STYLES" ]]; then
  log "no chart: only some styles ran (--styles)"
elif command -v gnuplot >/dev/null; then
  dat="$TMP/echo.dat"
  LEGEND="thread/conn process/conn libuv fibers greenrun"  # one word each, in STYLES order
  {
    echo "conns $LEGEND"
    for c in "${CONNS[@]}"; do
      row="$c"
      for s in "${STYLES[@]}"; do
        v=$(awk -F, -v s="$s" -v c="$c" '$1==s && $2==c {print ($3==""?"-":$3)}' "$ECHO_CSV")
        row="$row ${v:--}"
      done
      echo "$row"
    done
    echo
    echo
    echo "conns $LEGEND"
    for c in "${CONNS[@]}"; do
      row="$c"
      for s in "${STYLES[@]}"; do
        v=$(awk -F, -v s="$s" -v c="$c" '$1==s && $2==c {print ($5==""?"-":$5/1000)}' "$ECHO_CSV")
        row="$row ${v:--}"
      done
      echo "$row"
    done
  } >"$dat"
  term="pngcairo size 1400,560 font 'sans,10'"
  gnuplot -e "set terminal pngcairo" >/dev/null 2>&1 || term="png size 1400,560"
  gnuplot >"$TMP/gnuplot.log" 2>&1 <<EOF
set terminal $term
set output "$OUT/echo.png"
set datafile missing "-"
set style data histograms
set style histogram clustered gap 1
set style fill solid 0.85 border -1
set key top right
set grid ytics
set multiplot layout 1,2 title "green demo: echo server, 64-byte ping-pong ($MACHINE)"
set title "round trips per second (higher is better)"
set xlabel "concurrent connections"
set format y "%.0s%c"
set yrange [0:*]
plot for [i=2:6] "$dat" index 0 using i:xtic(1) title columnheader(i)
set title "p99 latency, ms (lower is better, log scale)"
set logscale y
set format y "%g"
set yrange [*:*]
plot for [i=2:6] "$dat" index 1 using i:xtic(1) title columnheader(i)
unset multiplot
EOF
  [[ -s "$OUT/echo.png" ]] || log "gnuplot failed: $(tail -2 "$TMP/gnuplot.log")"
fi

if [[ $ECHO_ONLY -eq 1 ]]; then
  say "measured in $((SECONDS - T_MEASURE)) s (--echo-only); CSV and this summary in $OUT"
  exit 0
fi

# ---- 4. the fib scenario ------------------------------------------------------------------------------
FIB_CSV="$OUT/fib.csv"
echo "mode,workers,short_rate_before,short_rate_during,p50_us,p99_us,max_us,long_ms,note" >"$FIB_CSV"
say "Fib server: 4 connections send fib(1) back to back while one fib($FIB_N) runs"
say "(server and client not pinned; short requests measured while fib($FIB_N) ran)"
say "$(printf '%-34s %10s %10s %10s %10s %10s %10s' server "req/s before" "req/s during" p50 p99 max "fib($FIB_N)")"
run_fib() {  # run_fib LABEL MODE WORKERS: the C++ fib server (examples/fib_server.cpp)
  run_fib_cmd "$1" "$2" "$3" "$FIB_N" "$EX/fib_server" --mode "$2" --workers "$3"
}
run_fib_cmd() {  # run_fib_cmd LABEL MODE WORKERS N SERVER-CMD... (the server takes --port 0)
  local label=$1 mode=$2 workers=$3 n=$4 pid port line note=""
  shift 4
  if ! start_server "$TMP/fib.out" "$@"; then
    note="$SRV_WHY"
  else
    pid=$SRV_PID port=$SRV_PORT
    timeout 60 "$EX/fib_client" --port "$port" --clients 4 --long "$n" --warmup 0.5 \
      >"$TMP/fibc.out" 2>&1
    stop_pid "$pid"
    line=$(grep '^short_rate=' "$TMP/fibc.out" | tail -1)
    [[ -n "$line" ]] || note="fib_client failed: $(tail -1 "$TMP/fibc.out")"
  fi
  if [[ -z "$note" ]]; then
    local rd rb p50 p99 mx lm
    rd=$(kv short_rate "$line"); rb=$(kv baseline_rate "$line"); p50=$(kv short_p50_us "$line")
    p99=$(kv short_p99_us "$line"); mx=$(kv short_max_us "$line"); lm=$(kv long_ms "$line")
    echo "$mode,$workers,$rb,$rd,$p50,$p99,$mx,$lm," >>"$FIB_CSV"
    say "$(printf '%-34s %10s %10s %10s %10s %10s %10s' "$label" "$(fmt_rate "$rb")" \
      "$(fmt_rate "$rd")" "$(fmt_us "$p50")" "$(fmt_us "$p99")" "$(fmt_us "$mx")" \
      "$(fmt_us "$(awk -v m="$lm" 'BEGIN{print m*1000}')")")"
  else
    echo "$mode,$workers,,,,,,,\"$note\"" >>"$FIB_CSV"
    say "$(printf '%-34s cannot run: %s' "$label" "$note")"
  fi
}
run_fib "1 worker, inline (cooperative)" inline 1
run_fib "2 workers, inline (M:N)" inline 2
run_fib "1 worker, green::offload" offload 1
say ""
# The same scenario in plain Python (examples/python/fib_server.py, socketserver's
# ThreadingTCPServer, run unmodified four ways). The GIL lets one thread run Python at a time:
# OS threads hand it over every 5 ms (sys.getswitchinterval); gevent's computing greenlet holds
# the hub until it is done; under greenrun the computing fiber-thread's worker is handed to a
# spare OS thread after two slices (issue 12), and with 2 workers the short requests' threads
# run on the other worker. OS threads still win with 1 worker: there the computing thread
# comes back to its worker at every GIL hand-over and holds it for two more slices.
PY=/usr/bin/python3
PY_FIB_N=${PY_FIB_N:-32}
PYFIB="$ROOT/examples/python/fib_server.py"
if [[ -x $PY && -f $PYFIB ]]; then
  say "Python fib server (examples/python/fib_server.py): 4 connections send fib(1) while one fib($PY_FIB_N) runs"
  say "$(printf '%-34s %10s %10s %10s %10s %10s %10s' server "req/s before" "req/s during" p50 p99 max "fib($PY_FIB_N)")"
  run_fib_cmd "python3, OS threads" py-threads 0 "$PY_FIB_N" "$PY" "$PYFIB"
  if "$PY" -c 'import gevent' 2>/dev/null; then
    run_fib_cmd "python3 -m gevent.monkey" py-gevent 1 "$PY_FIB_N" "$PY" -m gevent.monkey "$PYFIB"
  else
    say "$(printf '%-34s skipped: python3-gevent is not installed' "python3 -m gevent.monkey")"
  fi
  if [[ -n "$GREENRUN" ]]; then
    for w in 1 2; do
      run_fib_cmd "greenrun --workers $w python3" py-greenrun "$w" "$PY_FIB_N" \
        "$GREENRUN" --workers "$w" -- "$PY" "$PYFIB"
    done
  fi
  say ""
fi

# ---- 5. HTTP under loadgen --http --------------------------------------------------------------------
HTTP_CSV="$OUT/http.csv"
echo "server,connections,requests_per_sec,cpu_us_per_req,p50_us,p99_us,os_threads,note" >"$HTTP_CSV"
say "HTTP/1.1 keep-alive GET /hello, bench/loadgen --http (plain C, closed loop, every response"
say "checked), 100 connections, ${WRK_D} s, $PLACEMENT"
say "$(printf '%-34s %12s %11s %10s %11s' server "requests/s" "CPU us/req" p99 "OS threads")"
run_http() {  # run_http LABEL CMD...
  local label=$1 pid port note="" rps="" p50="" p99="" thr="" cpu="" line c0="" c1=""
  shift
  if ! start_server "$TMP/http.out" "${PIN_SERVER[@]}" "$@" --root "$ROOT/examples/www"; then
    note="$SRV_WHY"
  else
    pid=$SRV_PID port=$SRV_PORT
    into_cgroup "$pid"
    "${PIN_LOAD[@]}" "$LOADGEN" --port "$port" --http /hello --conns 100 --duration "$WRK_D" \
      --warmup 1 >"$TMP/httpload.out" 2>&1 &
    local lpid=$!
    PIDS+=("$lpid")
    measure_window "$lpid" "$TMP/httpload.out" "$WRK_D" "$pid"
    c0="$MW_C0" c1="$MW_C1"
    [[ -n "$MW_SAMPLED" ]] && thr=${MW_SAMPLED%% *}
    stop_pid "$pid"
    line=$(grep 'rt_per_s=' "$TMP/httpload.out" | tail -1)
    if [[ -z "$line" ]]; then
      note="loadgen failed: $(grep -v 'loadgen: measuring' "$TMP/httpload.out" | tail -1)"
    else
      rps=$(kv rt_per_s "$line")
      p50=$(kv p50_us "$line")
      p99=$(kv p99_us "$line")
      local reqs
      reqs=$(kv rt "$line")
      [[ -n "$c1" && "${reqs:-0}" -gt 0 ]] &&
        cpu=$(awk -v d=$((c1 - c0)) -v n="$reqs" 'BEGIN { printf "%.2f", d / n }')
      if [[ "${rps%.*}" == 0 ]]; then rps=""; note="no request was answered"; fi
    fi
  fi
  echo "$label,100,$rps,$cpu,$p50,$p99,$thr,\"$note\"" >>"$HTTP_CSV"
  if [[ -n "$rps" ]]; then
    say "$(printf '%-34s %12s %11s %10s %11s' "$label" "$(fmt_rate "$rps")" "${cpu:--}" \
      "$(fmt_us "$p99")" "$thr")"
  else
    say "$(printf '%-34s cannot run: %s' "$label" "$note")"
  fi
}
run_http "http_server (fibers)" "$EX/http_server" --workers 1
run_http "http_threads (OS threads)" "$EX/http_threads"
if [[ -n "$GREENRUN" ]]; then
  run_http "http_threads under greenrun" env GREEN_WORKERS=1 "$GREENRUN" "$EX/http_threads"
else
  say "$(printf '%-34s cannot run: %s' "http_threads under greenrun" "greenrun not built")"
fi
say ""
say "measured in $((SECONDS - T_MEASURE)) s; CSV, chart and this summary in $OUT"
ls "$OUT" >&2
