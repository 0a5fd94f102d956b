#!/usr/bin/env bash
# bench/run_all_test.sh BUILD_DIR: ctest bench.run_all_quick / meson test bench-run-all-quick.
# Runs `bench/run_all.sh --quick` on the binaries of BUILD_DIR (no build, no apt-get, no
# network), then checks with `bench/tables.py check` that tables.md has every section with
# well-formed tables and chart.png is a valid PNG. Never checks a timing. Then it checks that
# the checker itself rejects a truncated PNG, a row with a missing cell and a missing section.
# Exit 77 (skipped) if gnuplot or python3 is not installed.
set -uo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
build="${1:?usage: run_all_test.sh BUILD_DIR}"
command -v python3 >/dev/null || { echo "SKIP: python3 is not installed"; exit 77; }
command -v gnuplot >/dev/null || { echo "SKIP: gnuplot is not installed (gnuplot-nox)"; exit 77; }
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
fail() { echo "FAIL: $*"; exit 1; }

bash "$here/run_all.sh" --quick --no-build --no-install --build-dir "$build" --out "$tmp/out" ||
  fail "run_all.sh --quick exited $?"
cat "$tmp/out/tables.md"
python3 "$here/tables.py" check "$tmp/out" "Micro-benchmarks" "Idle fibers" "Echo" \
  "Python echo" "Issue 11's targets" || fail "tables.md / chart.png are not well formed"
# The echo table has a row for every server that was built.
has() { [[ -n "$(find "$build" -name "$1" -type f -perm -u+x 2>/dev/null | head -1)" ]]; }
rows=()
has echo_libuv && rows+=("libuv")
has echo_fibers && rows+=("fibers (\`green::net\`)")
has echo_threads && rows+=("OS threads")
has echo_threads && has greenrun && rows+=("threads under greenrun")
[[ ${#rows[@]} -gt 0 ]] || fail "no echo server in $build"
for label in "${rows[@]}"; do
  grep -qF "| $label | 100 |" "$tmp/out/tables.md" || fail "no '$label' row at 100 connections"
done

# The checker must reject broken output.
cp -r "$tmp/out" "$tmp/bad1"
head -c 2000 "$tmp/out/chart.png" >"$tmp/bad1/chart.png"
python3 "$here/tables.py" check "$tmp/bad1" 2>/dev/null && fail "check accepted a truncated PNG"
cp -r "$tmp/out" "$tmp/bad2"
sed -i '0,/^| libuv | /s/^\(| libuv | [^|]*|\)[^|]*|/\1/' "$tmp/bad2/tables.md"
cmp -s "$tmp/out/tables.md" "$tmp/bad2/tables.md" && fail "could not corrupt the test copy"
python3 "$here/tables.py" check "$tmp/bad2" 2>/dev/null && fail "check accepted a missing cell"
python3 "$here/tables.py" check "$tmp/out" "No such section" 2>/dev/null &&
  fail "check accepted a missing section"
echo "bench.run_all_quick OK"
