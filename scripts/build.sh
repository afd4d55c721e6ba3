#!/usr/bin/env bash
# Configures (once) and builds PhotonCloud into build/ with Ninja and ccache.
#   scripts/build.sh [ninja targets...]
# Builds are serialised with a lock: this project is built on 2-core machines where two
# concurrent builds only slow each other down.
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
BUILD_DIR="${PHOTON_BUILD_DIR:-$ROOT/build}"
JOBS="${PHOTON_BUILD_JOBS:-$(nproc)}"
# ccache keyed on paths relative to the checkout, so a fresh clone (CI) reuses earlier work.
export CCACHE_BASEDIR="$ROOT" CCACHE_NOHASHDIR=true
# Two trees (plain and sanitized) of about 3 GB each: ccache's default 5 GB evicted one while
# the other built, and a clean clone then compiled cold (CI took 40 minutes instead of 13).
export CCACHE_MAXSIZE="${CCACHE_MAXSIZE:-16G}"
exec 9>"/tmp/photon-build.lock"
flock 9
if [ ! -f "$BUILD_DIR/build.ninja" ]; then
  cmake -S "$ROOT" -B "$BUILD_DIR" -G Ninja ${PHOTON_CMAKE_ARGS:-}
fi
cmake --build "$BUILD_DIR" -j "$JOBS" ${1:+--target "$@"}
