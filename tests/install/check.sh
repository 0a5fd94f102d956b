#!/usr/bin/env bash
# Checks an installed green the way a user would consume it: builds tests/install/consumer.cpp
# out of tree with find_package(green) (green::green and green::green_static) and with a
# `pkg-config --cflags --libs green` compile line, runs each program, and checks what
# libgreen.so exports.
#
#   check.sh [--install-from CMAKE_BUILD_DIR] [--destdir DIR] [--no-cmake] PREFIX
#
#   --install-from B  first run `cmake --install B --prefix PREFIX`
#   --destdir D       the files are under D/PREFIX (a staged install, e.g. meson's --destdir);
#                     pkg-config then runs with PKG_CONFIG_SYSROOT_DIR=D
#   --no-cmake        skip the find_package consumer (for installs without greenConfig.cmake,
#                     such as meson's)
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
install_from="" destdir="" cmake_check=1 prefix=""
while [[ $# -gt 0 ]]; do
  case "$1" in
    --install-from) install_from="$2"; shift 2 ;;
    --destdir) destdir="$2"; shift 2 ;;
    --no-cmake) cmake_check=0; shift ;;
    -*) echo "check.sh: unknown option $1" >&2; exit 2 ;;
    *) prefix="$1"; shift ;;
  esac
done
if [[ -z "$prefix" ]]; then
  echo "usage: check.sh [--install-from BUILD] [--destdir DIR] [--no-cmake] PREFIX" >&2
  exit 2
fi

fail() {
  echo "install check: FAILED: $*" >&2
  exit 1
}
step() { echo "install check: $*"; }

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

if [[ -n "$install_from" ]]; then
  step "cmake --install $install_from --prefix $prefix"
  cmake --install "$install_from" --prefix "$prefix" >"$work/install.log" 2>&1 ||
    { cat "$work/install.log" >&2; fail "cmake --install"; }
fi

root="${destdir%/}$prefix"
[[ -f "$root/include/green/green.hpp" ]] || fail "no $root/include/green/green.hpp"
[[ -f "$root/include/green/detail/task.hpp" ]] || fail "detail/ headers not installed"
pc="$(find "$root" -path '*/pkgconfig/green.pc' -print -quit)"
[[ -n "$pc" ]] || fail "no pkgconfig/green.pc under $root"
libdir="$(dirname "$(dirname "$pc")")"
for f in libgreen.so libgreen.so.0 libgreen.a; do
  [[ -e "$libdir/$f" ]] || fail "no $libdir/$f"
done
soname="$(readelf -d "$libdir/libgreen.so" | sed -n 's/.*(SONAME).*\[\(.*\)\]/\1/p')"
[[ "$soname" == "libgreen.so.0" ]] || fail "SONAME is '$soname', expected libgreen.so.0"
# libuv and Boost.Context are linked, not re-exported. (nm's output is captured first: with
# pipefail, `nm | grep -q` fails when grep exits before nm has written everything.)
exports="$(nm -D --defined-only "$libdir/libgreen.so")" || fail "nm -D libgreen.so"
leaked="$(awk '$3 ~ /^(uv_|jump_fcontext|make_fcontext|ontop_fcontext)/ {print $3}' \
  <<<"$exports")"
[[ -z "$leaked" ]] || fail "libgreen.so exports foreign symbols: ${leaked//$'\n'/ }"
[[ "$exports" == *_ZN5green* ]] || fail "libgreen.so exports no green:: symbol"
step "layout ok ($root, libdir $libdir)"

run_consumer() {  # name, program
  local out
  if ! out="$(timeout 60 "$2" 2>&1)"; then
    echo "$out" >&2
    fail "$1 did not run successfully"
  fi
  step "$1: $out"
}

if [[ $cmake_check -eq 1 ]]; then
  cfg="$(find "$root" -name greenConfig.cmake -print -quit)"
  [[ -n "$cfg" ]] || fail "no greenConfig.cmake under $root"
  if ! { cmake -S "$here" -B "$work/cmake" -G Ninja -DCMAKE_PREFIX_PATH="$root" \
           -DCMAKE_BUILD_TYPE=Release && cmake --build "$work/cmake"; } >"$work/cmake.log" 2>&1
  then
    cat "$work/cmake.log" >&2
    fail "find_package(green) consumer did not build"
  fi
  run_consumer "find_package green::green" "$work/cmake/consumer_shared"
  run_consumer "find_package green::green_static" "$work/cmake/consumer_static"
fi

PKG_CONFIG_PATH="$(dirname "$pc")"
export PKG_CONFIG_PATH
if [[ -n "$destdir" ]]; then
  export PKG_CONFIG_SYSROOT_DIR="$destdir"
fi
flags="$(pkg-config --cflags --libs green)" || fail "pkg-config --cflags --libs green"
pc_libdir="$(pkg-config --variable=libdir green)"  # pkgconf adds the sysroot itself
[[ "$pc_libdir" -ef "$libdir" ]] || fail "green.pc's libdir ($pc_libdir) is not $libdir"
# shellcheck disable=SC2086 # the pkg-config output is a list of flags
if ! c++ -std=c++20 -O1 "$here/consumer.cpp" -o "$work/consumer_pc" $flags \
       -Wl,-rpath,"$libdir" >"$work/pc.log" 2>&1; then
  cat "$work/pc.log" >&2
  fail "pkg-config consumer did not build (flags: $flags)"
fi
run_consumer "pkg-config green" "$work/consumer_pc"
step "ok"
