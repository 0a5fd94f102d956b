#!/usr/bin/env bash
# Unpacks Debian's libuv1 source package (upstream tarball + Debian's patches) into DEST
# (default: third_party/libuv-src under the repository root), for the PIC static libuv that
# the shim links into its preload library (target green_uv_pic in both builds).
#
#   scripts/fetch-libuv.sh [--force] [DEST]
#
# Needs a deb-src entry for Debian bookworm: if `apt-get source` has none, this writes
# /etc/apt/sources.list.d/green-src.sources and runs `apt-get update` (as root, or via sudo).
# Downloads go to ${XDG_CACHE_HOME:-~/.cache}/green/libuv. Does nothing if DEST already holds
# an unpacked tree (DEST/.green-libuv-version); --force unpacks again.
set -euo pipefail

die() {
  echo "fetch-libuv.sh: error: $*" >&2
  exit 1
}

root_dir="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
force=0
dest=""
for arg in "$@"; do
  case "$arg" in
    --force) force=1 ;;
    -h | --help)
      sed -n '2,11p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'
      exit 0
      ;;
    -*) die "unknown option '$arg' (usage: fetch-libuv.sh [--force] [DEST])" ;;
    *)
      [[ -z "$dest" ]] || die "more than one DEST given"
      dest="$arg"
      ;;
  esac
done
dest="${dest:-$root_dir/third_party/libuv-src}"
stamp="$dest/.green-libuv-version"

if [[ $force -eq 0 && -f "$stamp" && -f "$dest/include/uv.h" ]]; then
  exit 0
fi

as_root() {
  if [[ $EUID -eq 0 ]]; then
    "$@"
  elif command -v sudo >/dev/null 2>&1; then
    sudo "$@"
  else
    die "need root for: $* (run as root or install sudo)"
  fi
}

log="$(mktemp)"
trap 'rm -f "$log"' EXIT
run_logged() {  # runs "$@" quietly; on failure shows its output and stops
  if ! "$@" >"$log" 2>&1; then
    cat "$log" >&2
    die "'$*' failed"
  fi
}

have_source_record() {
  apt-cache showsrc libuv1 2>/dev/null | grep -q '^Package: libuv1$'
}

src_list=/etc/apt/sources.list.d/green-src.sources
if ! have_source_record; then
  if [[ ! -f "$src_list" ]]; then
    echo "fetch-libuv.sh: adding a deb-src entry ($src_list)"
    as_root tee "$src_list" >/dev/null <<'EOF'
Types: deb-src
URIs: http://deb.debian.org/debian
Suites: bookworm
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
EOF
  fi
  echo "fetch-libuv.sh: apt-get update (for the libuv1 source record)"
  run_logged as_root apt-get update
  have_source_record || die "apt has no source record for libuv1 even after adding $src_list"
fi

cache="${XDG_CACHE_HOME:-${HOME:-/tmp}/.cache}/green/libuv"
mkdir -p "$cache"
# The exact files of the candidate source version ('URI' NAME SIZE HASH per line).
uris="$(apt-get source --print-uris -qq libuv1 2>/dev/null)" ||
  die "apt-get source --print-uris libuv1 failed"
mapfile -t files < <(awk '{print $2}' <<<"$uris")
dsc="" orig="" debtar=""
for f in "${files[@]}"; do
  case "$f" in
    *.dsc) dsc="$f" ;;
    *.orig.tar.*) orig="$f" ;;
    *.debian.tar.*) debtar="$f" ;;
  esac
done
[[ -n "$dsc" && -n "$orig" ]] || die "unexpected libuv1 source files: ${files[*]}"
version="${dsc#libuv1_}"
version="${version%.dsc}"

echo "fetch-libuv.sh: libuv1 $version -> $dest"
(cd "$cache" && run_logged apt-get source --download-only libuv1)
for f in "$orig" ${debtar:+"$debtar"}; do
  [[ -f "$cache/$f" ]] || die "apt-get source did not produce $cache/$f"
done

if [[ -e "$dest" && ! -f "$stamp" ]] && [[ -n "$(ls -A "$dest" 2>/dev/null)" ]]; then
  die "$dest is not empty and was not made by fetch-libuv.sh: not replacing it"
fi
mkdir -p "$(dirname "$dest")"
tmp="$(mktemp -d "${dest%/}.tmp.XXXXXX")"
trap 'rm -f "$log"; rm -rf "$tmp"' EXIT
tar -xf "$cache/$orig" -C "$tmp" --strip-components=1
if [[ -n "$debtar" ]]; then
  tar -xf "$cache/$debtar" -C "$tmp" debian
  series="$tmp/debian/patches/series"
  if [[ -f "$series" ]]; then
    # quilt's series format: one patch per line, optional -pN, '#' starts a comment.
    while read -r patch_name patch_opt _; do
      [[ -z "$patch_name" || "$patch_name" == \#* ]] && continue
      level=-p1
      [[ "$patch_opt" =~ ^-p[0-9]+$ ]] && level="$patch_opt"
      (cd "$tmp" && run_logged patch "$level" --forward --batch --no-backup-if-mismatch \
        -i "debian/patches/$patch_name")
    done <"$series"
  fi
fi
[[ -f "$tmp/include/uv.h" ]] || die "unpacked tree has no include/uv.h"
echo "$version" >"$tmp/.green-libuv-version"

rm -rf "$dest"
mv "$tmp" "$dest"
trap 'rm -f "$log"' EXIT
