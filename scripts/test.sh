#!/usr/bin/env bash
# green's one test command: installs the dependencies, builds with both build systems and
# runs every test.
#
#   scripts/test.sh                     meson build + `meson test` (build/meson), then an
#                                       install check of it; then CMake build (build/cmake,
#                                       RelWithDebInfo) + ctest, which includes the install
#                                       check of the CMake install (tests/install/check.sh)
#   scripts/test.sh --sanitize address  CMake only, ASan+UBSan, in build/asan
#   scripts/test.sh --sanitize thread   CMake only, TSan, in build/tsan
#                                       (sanitizer runs: library + runtime tests only, see
#                                       below; suppressions in tests/sanitizers/*.supp)
#   scripts/test.sh --clang-tsa         clang's thread-safety analysis: libgreen and the
#                                       template instantiations of runtime/tsa (no tests),
#                                       clang++ -Wthread-safety -Werror, in build/clang
#                                       (the annotations: docs/hacking.md)
#
# Other options: --no-deps (skip scripts/deps.sh), --no-meson (CMake only), -j N (build
# jobs, default 2). Every stage runs even if an earlier one failed; the exit status is
# non-zero if any failed. ctest runs last, so its summary closes the output.
set -uo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root" || exit 1

sanitize="" deps=1 meson=1 jobs=2 clang_tsa=0
while [[ $# -gt 0 ]]; do
  case "$1" in
    --sanitize)
      sanitize="${2:-}"
      shift 2 || { echo "test.sh: --sanitize needs address|thread" >&2; exit 2; }
      ;;
    --sanitize=*) sanitize="${1#*=}"; shift ;;
    --clang-tsa) clang_tsa=1; shift ;;
    --no-deps) deps=0; shift ;;
    --no-meson) meson=0; shift ;;
    -j) jobs="${2:-}"; shift 2 || { echo "test.sh: -j needs a number" >&2; exit 2; } ;;
    -j*) jobs="${1#-j}"; shift ;;
    -h | --help) sed -n '2,20p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "test.sh: unknown argument '$1' (see --help)" >&2; exit 2 ;;
  esac
done
case "$sanitize" in
  "" | address | thread) ;;
  *) echo "test.sh: --sanitize takes address or thread, not '$sanitize'" >&2; exit 2 ;;
esac
[[ "$jobs" =~ ^[1-9][0-9]*$ ]] || { echo "test.sh: -j needs a positive number" >&2; exit 2; }

failed=()
start_all=$SECONDS
stage_start=$SECONDS
stage() {
  stage_start=$SECONDS
  echo "==> $*"
}
done_stage() {
  echo "    ($(( SECONDS - stage_start ))s)"
}
fail_stage() {
  echo "test.sh: FAILED: $1" >&2
  failed+=("$1")
}
# Runs a build command with its output in a log; on failure prints the log without ninja's
# progress lines (what is left is the failing commands and the compiler's messages).
build_quietly() {  # name, command...
  local name="$1" log
  shift
  log="$(mktemp)"
  if "$@" >"$log" 2>&1; then
    rm -f "$log"
    return 0
  fi
  grep -v '^\[[0-9]*/[0-9]*\] ' "$log" >&2
  rm -f "$log"
  fail_stage "$name"
  return 1
}

if [[ $deps -eq 1 ]]; then
  stage "dependencies (scripts/deps.sh)"
  bash scripts/deps.sh || { echo "test.sh: scripts/deps.sh failed" >&2; exit 1; }
  done_stage
fi

if [[ $clang_tsa -eq 1 ]]; then
  # The thread-safety annotations (green/detail/thread_annotations.hpp: GREEN_GUARDED_BY,
  # GREEN_REQUIRES, ...) are checked by clang only. The library is enough, plus
  # green_tsa_check (runtime/tsa/instantiations.cpp): the analysis runs per function, on
  # instantiated code, and the installed templates that lock (Channel<T>, Group::spawn) are
  # instantiated there.
  stage "clang -Wthread-safety build of libgreen (build/clang)"
  if build_quietly "clang-tsa configure" env CC=clang CXX=clang++ cmake -S . -B build/clang \
       -G Ninja -DCMAKE_BUILD_TYPE=Debug -DCMAKE_CXX_FLAGS="-Wthread-safety" -DGREEN_WERROR=ON \
       -DGREEN_BUILD_TESTS=OFF -DGREEN_BUILD_BENCH=OFF -DGREEN_BUILD_EXAMPLES=OFF \
       -DGREEN_BUILD_SHIM=OFF &&
     build_quietly "clang-tsa build" cmake --build build/clang -j "$jobs" \
       --target green green_tsa_check; then
    done_stage
  fi
elif [[ -n "$sanitize" ]]; then
  case "$sanitize" in
    address) bdir=build/asan ;;
    thread) bdir=build/tsan ;;
  esac
  # Sanitizer runs build the library and the runtime tests (ctest label "runtime") only:
  #  - the shim is left out: libgreen_preload.so is LD_PRELOADed into programs that are not
  #    instrumented, and the ASan/TSan runtimes must be loaded first, by the main executable
  #    (an instrumented preload library aborts with "ASan runtime does not come first");
  #  - examples and benchmarks add build time and exercise nothing the runtime tests do not.
  # The settings below are defaults; anything already in the environment wins. Every
  # suppression file explains each of its entries.
  supp="$root/tests/sanitizers"
  export UBSAN_OPTIONS="${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1:suppressions=$supp/ubsan.supp}"
  export ASAN_OPTIONS="${ASAN_OPTIONS:-detect_stack_use_after_return=0:check_initialization_order=1:strict_init_order=1:abort_on_error=0}"
  export LSAN_OPTIONS="${LSAN_OPTIONS:-suppressions=$supp/lsan.supp:print_suppressions=0}"
  export TSAN_OPTIONS="${TSAN_OPTIONS:-halt_on_error=1:second_deadlock_stack=1:suppressions=$supp/tsan.supp:print_suppressions=0}"
  stage "cmake configure + build ($bdir, GREEN_SANITIZE=$sanitize)"
  if build_quietly "cmake configure ($bdir)" cmake -S . -B "$bdir" -G Ninja \
       -DCMAKE_BUILD_TYPE=RelWithDebInfo -DGREEN_SANITIZE="$sanitize" \
       -DGREEN_BUILD_BENCH=OFF -DGREEN_BUILD_EXAMPLES=OFF -DGREEN_BUILD_SHIM=OFF &&
     build_quietly "cmake build ($bdir)" cmake --build "$bdir" -j "$jobs"; then
    done_stage
    stage "ctest -L runtime ($bdir)"
    # --repeat after-timeout:2: sanitizers slow switches 10-50x, so a test that hit ctest's
    # time limit on a loaded 2-core machine runs once more. Only timeouts are retried: a
    # sanitizer report or a failed assertion fails the stage at once.
    (cd "$bdir" && ctest --output-on-failure -j "$jobs" --no-tests=error -L runtime --repeat after-timeout:2) ||
      fail_stage "ctest ($bdir)"
    done_stage
  fi
else
  if [[ $meson -eq 1 ]]; then
    stage "meson setup + compile (build/meson)"
    setup=(meson setup build/meson --prefix=/usr/local)
    [[ -d build/meson/meson-private ]] && setup+=(--reconfigure)
    if build_quietly "meson setup" "${setup[@]}" &&
       build_quietly "meson compile" meson compile -C build/meson -j "$jobs"; then
      done_stage
      stage "meson test (build/meson)"
      if meson test -C build/meson --print-errorlogs --num-processes "$jobs"; then
        done_stage
      else
        fail_stage "meson test"
      fi
      stage "install check (meson install --destdir build/meson-destdir)"
      rm -rf build/meson-destdir
      if build_quietly "meson install" meson install -C build/meson \
           --destdir "$root/build/meson-destdir" --quiet; then
        if bash tests/install/check.sh --no-cmake --destdir "$root/build/meson-destdir" \
             /usr/local; then
          done_stage
        else
          fail_stage "install check (meson)"
        fi
      fi
    fi
  fi

  stage "cmake configure + build (build/cmake, RelWithDebInfo)"
  if build_quietly "cmake configure" cmake -S . -B build/cmake -G Ninja \
       -DCMAKE_BUILD_TYPE=RelWithDebInfo \
       -DGREEN_INSTALL_TEST_PREFIX="$root/build/cmake/install-check" &&
     build_quietly "cmake build" cmake --build build/cmake -j "$jobs"; then
    done_stage
    echo "test.sh: $(( SECONDS - start_all ))s so far; ctest runs last"
    stage "ctest (build/cmake; includes the install check)"
    (cd build/cmake && ctest --output-on-failure -j "$jobs" --no-tests=error) ||
      fail_stage "ctest"
  fi
fi

# Nothing more is printed on success: ctest's summary stays the closing output.
if [[ ${#failed[@]} -gt 0 ]]; then
  echo "test.sh: failed stages (after $(( SECONDS - start_all ))s): ${failed[*]}" >&2
  exit 1
fi
