#!/usr/bin/env bash
# libgreen_preload.so's whole dynamic symbol table against shim/symbols.txt, both ways: every
# row's name is exported with exactly the row's versions (name@@V default, name@V compat), and
# nothing else is exported (no runtime, libuv or Boost symbol, no hook without a row). Then
# each exported name@version against glibc's own: the same version must exist in libc.so.6,
# and a default version must be glibc's default.
#   exports_test.sh LIBGREEN_PRELOAD [SYMBOLS_TXT]
set -u
lib="$1"
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
table="${2:-$here/../../shim/symbols.txt}"
gen="$here/../../shim/gen_symbols.py"
libc="$(ldconfig -p | awk '/libc.so.6 .*x86-64/ {print $NF; exit}')"
fail=0

# Defined dynamic symbols as name@@VERSION / name@VERSION / name (unversioned), without the
# version definitions themselves (ABS symbols named like their version).
defined() {
  readelf --dyn-syms --wide "$1" |
    awk '$1 ~ /^[0-9]+:$/ && $7 != "UND" && !($7 == "ABS" && $8 ~ /^(GLIBC|GREEN)_/) {print $8}' |
    sort -u
}

want="$(python3 "$gen" --table "$table" --exports)" || { echo "FAIL: cannot read $table"; exit 1; }
have="$(defined "$lib")"
[[ -n "$have" ]] || { echo "FAIL: no dynamic symbols in $lib"; exit 1; }
while read -r s; do
  [[ -n "$s" ]] && { echo "FAIL: exported but not in symbols.txt: $s"; fail=1; }
done < <(comm -13 <(echo "$want") <(echo "$have"))
while read -r s; do
  [[ -n "$s" ]] && { echo "FAIL: in symbols.txt but not exported: $s"; fail=1; }
done < <(comm -23 <(echo "$want") <(echo "$have"))

# glibc's versions (its hooks must bind where glibc's definitions are).
glibc="$(defined "$libc")"
while read -r s; do
  [[ -z "$s" ]] && continue
  name="${s%%@*}"
  if grep -qxF "$s" <<<"$glibc"; then continue; fi
  if [[ "$s" == *@@* ]] && grep -qxF "${s/@@/@}" <<<"$glibc"; then
    echo "FAIL: $s is a compat version in glibc, not its default"; fail=1
  elif ! grep -q "^$name@" <<<"$glibc"; then
    echo "FAIL: $name is not a libc symbol"; fail=1
  else
    echo "FAIL: $s: glibc has $(grep "^$name@" <<<"$glibc" | tr '\n' ' ')"; fail=1
  fi
done <<<"$have"

# Spot checks that do not depend on the table being right.
for s in read@@GLIBC_2.2.5 pthread_create@@GLIBC_2.34 pthread_cond_wait@@GLIBC_2.3.2 \
         pthread_cond_wait@GLIBC_2.2.5 __libc_start_main@@GLIBC_2.34; do
  grep -qxF "$s" <<<"$have" || { echo "FAIL: $s not exported"; fail=1; }
done
[[ $fail -eq 0 ]] && echo "exports_test: ok ($(wc -l <<<"$have") name@version entries, $(cut -d@ -f1 <<<"$have" | sort -u | wc -l) names)"
exit $fail
