#!/usr/bin/env bash
# tests/shim/handoff_exit.sh SHIM_HANDOFF [GREENRUN ARGS...]: handoff.c part 7. main returns 7
# while a thread spins forever; the process must exit with 7 within 20 s (its own alarm) and
# its stdout must be flushed -- plainly (no GREENRUN) and under greenrun with the given args.
set -u
prog="$1"
shift
# 10 runs, malloc's timing varied (MALLOC_PERTURB_, as meson test sets it): where the spinner
# lands decides the path. Once, with 2 workers, it ran alone on the second worker, which was
# never handed off (nothing else of it waited) and so never reached the stop's teardown barrier:
# the process hung until its alarm (1 run in ~60 under MALLOC_PERTURB_).
for run in $(seq 1 10); do
  out="$(MALLOC_PERTURB_=$((run * 23 % 255 + 1)) "$@" "$prog" exit)"
  rc=$?
  if [[ $rc -ne 7 ]]; then
    echo "FAIL: run $run: exit status $rc, expected 7 (output: $out)"
    exit 1
  fi
  if [[ "$out" != "handoff exit: main returns 7" ]]; then
    echo "FAIL: run $run: stdout '$out'"
    exit 1
  fi
done
echo "handoff exit: ok (10 runs)"
