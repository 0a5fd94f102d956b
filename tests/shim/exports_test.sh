#!/usr/bin/env bash
# libgreen_preload.so exports exactly the interposed libc names, each with the version glibc
# gives it (a default-version definition per name, plus the compat versions), and nothing of
# the runtime, libuv or Boost.
#   exports_test.sh LIBGREEN_PRELOAD
set -u
lib="$1"
libc="$(ldconfig -p | awk '/libc.so.6 .*x86-64/ {print $NF; exit}')"
fail=0
exports="$(objdump -T "$lib" | awk '$2 == "g" && $4 != "*UND*" && $NF !~ /^(GLIBC_|GREEN_)/ {print $NF}' | sort -u)"
leaks="$(grep -vE '^(_{0,2}[a-z_0-9]+)$' <<<"$exports")"
for bad in $(grep -E '^(uv_|_ZN|green)' <<<"$exports"); do echo "FAIL: exports $bad"; fail=1; done
# Every default-version export must match glibc's default version of that name.
while read -r ver name; do
  [[ "$ver" == "("* ]] && continue
  want="$(objdump -T "$libc" | awk -v n="$name" '$NF == n && $(NF-1) !~ /^\(/ {print $(NF-1)}' | head -1)"
  if [[ -z "$want" ]]; then echo "FAIL: $name is not a libc symbol"; fail=1; continue; fi
  if [[ "$want" != "$ver" ]]; then echo "FAIL: $name@$ver, glibc has $want"; fail=1; fi
done < <(objdump -T "$lib" | awk '$2 == "g" && $4 != "*UND*" && $NF !~ /^(GLIBC_|GREEN_)/ {print $(NF-1), $NF}')
for n in read write accept4 poll pthread_create pthread_mutex_lock pthread_cond_wait \
         __libc_start_main __read_chk __poll_chk getaddrinfo fork epoll_wait; do
  grep -qx "$n" <<<"$exports" || { echo "FAIL: $n not exported"; fail=1; }
done
objdump -T "$lib" | grep -q '(GLIBC_2.2.5) pthread_cond_wait' ||
  { echo "FAIL: pthread_cond_wait@GLIBC_2.2.5 missing"; fail=1; }
[[ $fail -eq 0 ]] && echo "exports_test: ok ($(wc -l <<<"$exports") names)"
exit $fail
