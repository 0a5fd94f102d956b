#!/usr/bin/env bash
# Tests tools/green-gdb.py: runs tests/gdb/gdb_target under gdb in batch mode, stops it with
# fibers parked, and checks that `green-fibers` lists them (id, name, state, wait) and that
# `green-bt` shows the sleeping fiber's stack (down to gdb_sleeper_body), then that the
# program still runs to a clean exit (the thread's registers were put back).
# Usage: gdb_test.sh GREEN_GDB_PY GDB_TARGET. Exit 77 (skip) without gdb or ptrace.
set -uo pipefail
py="$1" target="$2"

if ! command -v gdb >/dev/null 2>&1; then
  echo "SKIP: gdb is not installed"
  exit 77
fi
if ! gdb -batch -nx -ex run --args /bin/true 2>&1 | grep -q "exited normally"; then
  echo "SKIP: gdb cannot run programs here (ptrace not permitted?)"
  exit 77
fi

out="$(mktemp)"
trap 'rm -f "$out"' EXIT
timeout 240 gdb -batch -nx \
  -ex 'set debuginfod enabled off' \
  -ex 'set pagination off' \
  -ex 'set confirm off' \
  -ex 'break green_gdb_stop_here' \
  -ex 'run' \
  -ex "source $py" \
  -ex 'echo ===FIBERS===\n' \
  -ex 'green-fibers' \
  -ex 'python
import re
txt = gdb.execute("green-fibers", to_string=True)
m = re.search(r"fiber (\d+) \"gdb-sleeper\"", txt)
gdb.write("===BT===\n")
if m:
    gdb.execute("green-bt " + m.group(1))
gdb.write("===AFTER===\n")
gdb.execute("bt 1")
' \
  -ex 'echo ===NOFIBER===\n' \
  -ex 'green-bt 999999' \
  -ex 'continue' \
  --args "$target" >"$out" 2>&1
status=$?

fail=0
check() {  # description, extended regex
  if ! grep -Eq -- "$2" "$out"; then
    echo "FAIL: $1 (no line matching /$2/)"
    fail=1
  fi
}
section() { sed -n "/^===$1===/,/^===/p" "$out"; }

check "green-fibers lists the workers" '^green: 2 worker\(s\)'
check "sleeper listed as parked on sleep" '^  fiber [0-9]+ "gdb-sleeper": parked on sleep'
check "locker listed as parked on the mutex" '^  fiber [0-9]+ "gdb-locker": parked on green::Mutex 0x[0-9a-f]+'
check "receiver listed as parked on the channel" '^  fiber [0-9]+ "gdb-receiver": parked on channel recv 0x[0-9a-f]+'
check "main listed as running" '^  fiber [0-9]+ "main": running'
if ! section BT | grep -q 'gdb_sleeper_body'; then
  echo "FAIL: green-bt of the sleeper does not reach gdb_sleeper_body"
  fail=1
fi
if ! section BT | grep -Eq 'sleep_until|park'; then
  echo "FAIL: green-bt of the sleeper does not show the sleep/park frames"
  fail=1
fi
if ! section AFTER | grep -q 'green_gdb_stop_here'; then
  echo "FAIL: after green-bt the selected thread is no longer at green_gdb_stop_here"
  fail=1
fi
check "unknown fiber id is reported" 'green-bt: no fiber 999999'
check "the program ran to a clean exit after green-bt" 'exited normally'
if [[ $fail -ne 0 || $status -ne 0 ]]; then
  echo "--- gdb output (status $status) ---"
  cat "$out"
  exit 1
fi
section FIBERS
section BT | head -20
echo "PASS"
