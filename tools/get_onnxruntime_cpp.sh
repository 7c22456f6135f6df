#!/usr/bin/env bash
# Assemble a local onnxruntime C++ SDK (include/ + lib/) for examples/cpp.
#
#   tools/get_onnxruntime_cpp.sh [--force] [DEST]      (DEST default: third_party/onnxruntime)
#
#   include/  the C/C++ API headers, from Debian trixie's libonnxruntime-dev .deb.
#             The .deb is fetched with apt into private, temporary list/cache directories
#             and unpacked with dpkg-deb -x; nothing is installed system-wide.
#   lib/      libonnxruntime.so.<version> from the onnxruntime Python wheel of $PYTHON
#             (default: .venv/bin/python if it exists, else python3), plus the
#             libonnxruntime.so.1 (soname) and libonnxruntime.so (link) symlinks, and any
#             libonnxruntime_providers_*.so shipped next to it (CUDA ones with onnxruntime-gpu).
#
# The C API is versioned and backward compatible: headers of an older onnxruntime (1.21 in
# trixie) work with a newer library (the wheel's), never the other way round.
#
# Each half is skipped when already present (use --force to redo both).
# Environment: PYTHON (interpreter with onnxruntime), DEBIAN_MIRROR (override the mirror
# read from this machine's apt sources), ORT_DEB_SUITE (default trixie).
set -euo pipefail

usage() { awk 'NR == 1 { next } /^#/ { sub(/^# ?/, ""); print; next } { exit }' "$0"; }
die() { echo "get_onnxruntime_cpp: error: $*" >&2; exit 1; }
note() { echo "get_onnxruntime_cpp: $*" >&2; }

repo_root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
dest=""
force=0
for arg in "$@"; do
  case "$arg" in
    -h|--help) usage; exit 0 ;;
    --force) force=1 ;;
    -*) die "unknown option $arg (see --help)" ;;
    *) [[ -z "$dest" ]] || die "only one DEST directory may be given"; dest=$arg ;;
  esac
done
dest=${dest:-$repo_root/third_party/onnxruntime}
suite=${ORT_DEB_SUITE:-trixie}

work=$(mktemp -d "${TMPDIR:-/tmp}/get_onnxruntime_cpp.XXXXXX")
trap 'rm -rf "$work"' EXIT

# Prints the Debian archive URL that this machine's apt sources use (first match wins):
# one-line "deb URL SUITE ..." entries in sources.list / *.list, then deb822 "URIs:" lines in
# *.sources. Security and third-party archives are skipped: only a URL ending in /debian.
find_debian_mirror() {
  local files=() f
  for f in /etc/apt/sources.list /etc/apt/sources.list.d/*.list /etc/apt/sources.list.d/*.sources; do
    [[ -f "$f" ]] && files+=("$f")
  done
  ((${#files[@]})) || return 1
  awk '
    /^[[:space:]]*#/ { next }
    $1 == "deb" {
      for (i = 2; i <= NF; i++) {
        if ($i ~ /^\[/) { while (i <= NF && $i !~ /\]$/) i++; continue }
        url = $i; break
      }
    }
    $1 == "URIs:" { url = $2 }
    url != "" { sub(/\/+$/, "", url); if (url ~ /\/debian$/) { print url; exit } ; url = "" }
  ' "${files[@]}"
}

# Keeps one "WHAT: DETAIL" line per half in $dest/VERSIONS.
record_version() {
  touch "$dest/VERSIONS"
  sed -i "/^$1: /d" "$dest/VERSIONS"
  echo "$1: $2" >>"$dest/VERSIONS"
}

headers_present() { [[ -f "$dest/include/onnxruntime_cxx_api.h" ]]; }
library_present() { [[ -e "$dest/lib/libonnxruntime.so" ]]; }

# Runs apt-get with private sources, lists and cache under $work/apt, so that the machine's
# own apt state is neither read for sources nor modified (no root needed). Sandbox::User=root
# lets a root run download into the private directories without switching to user _apt.
private_apt() {
  apt-get \
    -o Dir::Etc::SourceList="$work/apt/sources.list" \
    -o Dir::Etc::SourceParts=/dev/null \
    -o Dir::State::Lists="$work/apt/lists" \
    -o Dir::Cache="$work/apt/cache" \
    -o APT::Sandbox::User=root \
    "$@"
}

# apt-get update of the private lists. apt-get exits 0 even when a list could not be fetched,
# so its log is checked too.
private_update() {
  private_apt -q "$@" update >"$work/apt-update.log" 2>&1 \
    && ! grep -qE 'Failed to fetch|failed to download|NO_PUBKEY|GPG error|not signed' \
      "$work/apt-update.log"
}

update_failed() {
  sed 's/^/    /' "$work/apt-update.log" >&2
  die "$1"
}

fetch_headers() {
  if ! command -v apt-get >/dev/null || ! command -v dpkg-deb >/dev/null; then
    die "apt-get and dpkg-deb are needed to fetch the headers (a Debian/Ubuntu machine); or put onnxruntime_cxx_api.h and friends into $dest/include yourself"
  fi
  local mirror=${DEBIAN_MIRROR:-}
  [[ -n "$mirror" ]] || mirror=$(find_debian_mirror || true)
  [[ -n "$mirror" ]] \
    || die "no Debian mirror found in /etc/apt/sources.list*: set DEBIAN_MIRROR=http://deb.debian.org/debian"
  mkdir -p "$work/apt/lists/partial" "$work/apt/cache/archives/partial" "$work/deb"

  # Verify the suite with the Debian archive keyring (bookworm's debian-archive-keyring
  # already holds the trixie keys). Only if that keyring is missing, or verification fails,
  # fall back to [trusted=yes]: acceptable here because only header files are taken from
  # the package, nothing is installed or executed.
  local keyring=/usr/share/keyrings/debian-archive-keyring.gpg
  if [[ -f "$keyring" ]]; then
    echo "deb [signed-by=$keyring] $mirror $suite main" >"$work/apt/sources.list"
  else
    echo "deb [trusted=yes] $mirror $suite main" >"$work/apt/sources.list"
  fi
  note "fetching package lists of $mirror $suite main (private apt state in $work)"
  if ! private_update; then
    grep -qE 'NO_PUBKEY|GPG error|not signed|EXPKEYSIG' "$work/apt-update.log" \
      || update_failed "apt-get update failed for $mirror $suite (no network to the mirror?)"
    note "signature check failed, retrying as [trusted=yes] (headers only)"
    echo "deb [trusted=yes] $mirror $suite main" >"$work/apt/sources.list"
    private_update -o Acquire::AllowInsecureRepositories=true \
      || update_failed "apt-get update failed for $mirror $suite, even as [trusted=yes]"
  fi
  (cd "$work/deb" && private_apt -q download libonnxruntime-dev) >"$work/apt-download.log" 2>&1 || {
    sed 's/^/    /' "$work/apt-download.log" >&2
    die "apt-get download libonnxruntime-dev failed (is it in $suite main on $mirror?)"
  }
  local deb
  deb=$(find "$work/deb" -maxdepth 1 -name 'libonnxruntime-dev_*.deb' | head -n 1)
  [[ -n "$deb" ]] || die "apt-get download produced no libonnxruntime-dev .deb"
  dpkg-deb -x "$deb" "$work/unpacked"
  local src
  src=$(find "$work/unpacked" -name onnxruntime_cxx_api.h -printf '%h\n' | head -n 1)
  [[ -n "$src" ]] || die "$(basename "$deb") holds no onnxruntime_cxx_api.h"
  rm -rf "${dest:?}/include"
  mkdir -p "$dest/include"
  cp -R "$src/." "$dest/include/"
  record_version headers "$(basename "$deb")"
  note "headers from $(basename "$deb") -> $dest/include"
}

pick_python() {
  if [[ -n "${PYTHON:-}" ]]; then
    echo "$PYTHON"
  elif [[ -x "$repo_root/.venv/bin/python" ]]; then
    echo "$repo_root/.venv/bin/python"
  else
    echo python3
  fi
}

fetch_library() {
  local python capi lib version
  python=$(pick_python)
  command -v "$python" >/dev/null || die "python '$python' not found: set PYTHON=/path/to/python"
  capi=$("$python" -c 'import os, onnxruntime; print(os.path.join(os.path.dirname(onnxruntime.__file__), "capi"))' 2>/dev/null) \
    || die "'$python' cannot import onnxruntime: pip install onnxruntime (or onnxruntime-gpu), or set PYTHON"
  lib=$(find "$capi" -maxdepth 1 -name 'libonnxruntime.so.*' | sort | tail -n 1)
  [[ -n "$lib" ]] || die "no libonnxruntime.so.* in $capi (a wheel built without the shared library?)"
  version=${lib##*/libonnxruntime.so.}
  rm -rf "${dest:?}/lib"
  mkdir -p "$dest/lib"
  cp "$lib" "$dest/lib/"
  # Execution-provider plugins (shared, cuda, tensorrt, ...) must sit next to the library.
  find "$capi" -maxdepth 1 -name 'libonnxruntime_providers_*.so' -exec cp {} "$dest/lib/" \;
  ln -sf "libonnxruntime.so.$version" "$dest/lib/libonnxruntime.so.${version%%.*}"
  ln -sf "libonnxruntime.so.$version" "$dest/lib/libonnxruntime.so"
  record_version library "libonnxruntime.so.$version from $capi"
  note "library libonnxruntime.so.$version (from $python) -> $dest/lib"
}

mkdir -p "$dest"
if ((force)); then rm -rf "${dest:?}/include" "${dest:?}/lib" "${dest:?}/VERSIONS"; fi
if headers_present; then note "headers already in $dest/include (skipped)"; else fetch_headers; fi
if library_present; then note "library already in $dest/lib (skipped)"; else fetch_library; fi
echo "$dest"
