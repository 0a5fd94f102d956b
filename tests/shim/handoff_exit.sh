#!/usr/bin/env bash
# tests/shim/handoff_exit.sh SHIM_HANDOFF [GREENRUN ARGS...]: handoff.c part 7. main returns 7
# while a thread spins forever; the process must exit with 7 within 20 s (its own alarm) and
# its stdout must be flushed -- plainly (no GREENRUN) and under greenrun with the given args.
set -u
prog="$1"
shift
out="$("$@" "$prog" exit)"
rc=$?
if [[ $rc -ne 7 ]]; then
  echo "FAIL: exit status $rc, expected 7 (output: $out)"
  exit 1
fi
if [[ "$out" != "handoff exit: main returns 7" ]]; then
  echo "FAIL: stdout '$out'"
  exit 1
fi
echo "handoff exit: ok"
