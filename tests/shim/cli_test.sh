#!/usr/bin/env bash
# greenrun's command line and the preload library's GREEN_* checks: a bad flag or value is one
# line on stderr naming it, exit status 2; --help documents every setting.
#   cli_test.sh GREENRUN
set -u
greenrun="$(realpath "$1")"
fail=0
expect() {  # expect STATUS PATTERN -- command...
  local want="$1" pat="$2"
  shift 3
  local out rc
  out="$("$@" 2>&1 >/dev/null)"
  rc=$?
  if [[ $rc -ne $want ]]; then
    echo "FAIL: '$*' exited $rc, expected $want (stderr: $out)"; fail=1; return
  fi
  if [[ -n "$pat" ]] && ! grep -qE -- "$pat" <<<"$out"; then
    echo "FAIL: '$*' stderr '$out' does not match /$pat/"; fail=1; return
  fi
  if [[ $want -eq 2 && $(wc -l <<<"$out") -ne 1 ]]; then
    echo "FAIL: '$*' printed more than one line: $out"; fail=1
  fi
}
expect 2 "unknown option '--bogus'" -- "$greenrun" --bogus -- true
expect 2 "invalid --workers '0'" -- "$greenrun" --workers 0 -- true
expect 2 "invalid --workers 'abc'" -- "$greenrun" --workers=abc -- true
expect 2 "--workers needs a value" -- "$greenrun" --workers
expect 2 "invalid --stack-size '12'" -- "$greenrun" --stack-size 12 -- true
expect 2 "invalid --stack-size '2G'" -- "$greenrun" --stack-size 2G -- true
expect 2 "invalid --blocked-ms '3600001'" -- "$greenrun" --blocked-ms 3600001 -- true
expect 2 "invalid --threads 'green'" -- "$greenrun" --threads green -- true
expect 2 "invalid --max-threads '0'" -- "$greenrun" --max-threads 0 -- true
expect 2 "GREEN_MAX_THREADS" -- env GREEN_MAX_THREADS=lots "$greenrun" -- true
expect 2 "no program given" -- "$greenrun" --workers 2 --
expect 127 "cannot execute" -- "$greenrun" -- /nonexistent/program
# Bad values reaching the preload library directly (not through greenrun's flags).
expect 2 "GREEN_WORKERS" -- env GREEN_WORKERS=zero "$greenrun" -- true
expect 2 "GREEN_WORKERS" -- env GREEN_WORKERS=5000 "$greenrun" -- true
expect 2 "GREEN_STACK_SIZE" -- env GREEN_STACK_SIZE=1T "$greenrun" -- true
expect 2 "GREEN_THREADS" -- env GREEN_THREADS=maybe "$greenrun" -- true
expect 2 "GREEN_STATS" -- env GREEN_STATS=yes "$greenrun" -- true
expect 2 "GREEN_THREAD_TLS" -- env GREEN_THREAD_TLS=own "$greenrun" -- true
for m in auto shared wrfsbase arch_prctl; do expect 0 "" -- env GREEN_THREAD_TLS=$m "$greenrun" -- true; done
# Good runs: exit status is the program's; --stats prints its summary line.
expect 0 "" -- "$greenrun" --workers 2 --stack-size 128K --threads os -- true
# greenrun's flags use the runtime's parsers (runtime/src/option_parse.hpp): the same forms.
expect 0 "" -- "$greenrun" --workers 00002 --stack-size 128KiB --blocked-ms 0 -- true
expect 3 "" -- "$greenrun" -- sh -c 'exit 3'
out="$("$greenrun" --stats --workers 2 -- true 2>&1)"
grep -q "green: stats: workers=2" <<<"$out" || { echo "FAIL: --stats printed '$out'"; fail=1; }
# LD_PRELOAD entries already present are kept.
out="$(LD_PRELOAD=/lib/x86_64-linux-gnu/libc.so.6 "$greenrun" -- sh -c 'echo "$LD_PRELOAD"')"
grep -q "libgreen_preload.so:/lib/x86_64-linux-gnu/libc.so.6" <<<"$out" ||
  { echo "FAIL: LD_PRELOAD became '$out'"; fail=1; }
help="$("$greenrun" --help)"
for s in --workers --stack-size --threads --stats GREEN_WORKERS GREEN_STACK_SIZE GREEN_THREADS \
         GREEN_STATS GREEN_STACK_GUARD GREEN_THREAD_TLS GREEN_PRELOAD; do
  grep -q -- "$s" <<<"$help" || { echo "FAIL: --help does not mention $s"; fail=1; }
done
[[ $fail -eq 0 ]] && echo "cli_test: ok"
exit $fail
