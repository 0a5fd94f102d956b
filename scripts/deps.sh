#!/usr/bin/env bash
# Installs everything green's builds, tests, examples and benchmarks need on Debian 12
# (bookworm), then unpacks libuv's sources for the shim (scripts/fetch-libuv.sh).
# Installs only what is missing; a second run does nothing and prints nothing.
# Run as root or as a user with sudo.
set -euo pipefail

packages=(
  build-essential cmake ninja-build meson pkg-config
  libuv1-dev libboost-context-dev libboost-fiber-dev libgtest-dev libbenchmark-dev
  python3 gnuplot-nox wrk curl procps
  # for tests/shim/real_programs.sh (small; nodejs is not installed here: Debian's pulls in
  # ~40 MB of libraries -- the test runs node when it is present and skips it otherwise)
  ripgrep
  # for scripts/fetch-libuv.sh: unpacking and patching Debian's libuv1 source package
  tar gzip xz-utils patch debian-archive-keyring
)

die() {
  echo "deps.sh: error: $*" >&2
  exit 1
}

if [[ ! -r /etc/debian_version ]] || ! command -v apt-get >/dev/null 2>&1; then
  die "this script installs Debian packages (Debian 12 expected); install by hand: ${packages[*]}"
fi

installed() {
  [[ "$(dpkg-query -W -f='${Status}' "$1" 2>/dev/null)" == "install ok installed" ]]
}

missing=()
for p in "${packages[@]}"; do
  installed "$p" || missing+=("$p")
done

if [[ ${#missing[@]} -gt 0 ]]; then
  sudo_cmd=()
  if [[ $EUID -ne 0 ]]; then
    command -v sudo >/dev/null 2>&1 ||
      die "not root and no sudo: as root, run apt-get install ${missing[*]}"
    sudo_cmd=(sudo)
  fi
  log="$(mktemp)"
  trap 'rm -f "$log"' EXIT
  echo "deps.sh: installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  if ! "${sudo_cmd[@]}" apt-get update >"$log" 2>&1; then
    cat "$log" >&2
    die "apt-get update failed"
  fi
  if ! "${sudo_cmd[@]}" env DEBIAN_FRONTEND=noninteractive \
      apt-get install -y --no-install-recommends "${missing[@]}" >"$log" 2>&1; then
    cat "$log" >&2
    die "apt-get install ${missing[*]} failed"
  fi
  for p in "${missing[@]}"; do
    installed "$p" || die "$p is still not installed after apt-get install"
  done
fi

bash "$(dirname "${BASH_SOURCE[0]}")/fetch-libuv.sh"
