#!/usr/bin/env bash
# Installs every dependency (Debian 12 packages), builds everything and runs every test.
# This is the README's test command, and what CI runs. It fails when a suite listed in
# tests/suites.txt is not registered, when a test fails, and when a test is skipped.
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
cd "$ROOT"
source scripts/ctest-lib.sh
bash scripts/install-deps.sh
bash scripts/build.sh
# Tests labelled slow (a Debian cloud image booted under TCG: minutes, plus its build on first
# use) run with PHOTON_SLOW_TESTS=1, or by hand: cd build && ctest -L slow (docs/vm.md).
SLOW=(-LE slow)
[ -z "${PHOTON_SLOW_TESTS:-}" ] || SLOW=()
# Tests start real daemons on ports of their own (port 0, or tests/free_port.h: below the
# ephemeral range) and private temp dirs, so they can run in parallel.
(cd "${PHOTON_BUILD_DIR:-$ROOT/build}" &&
  require_suites $(sed -e 's/#.*//' "$ROOT/tests/suites.txt") &&
  ctest_no_skips --output-on-failure --timeout 600 -j "${PHOTON_TEST_JOBS:-2}" "${SLOW[@]}" "$@")
# The in-process suites and the API suite again under ASan/UBSan need a second, instrumented
# build of most of the server (build-asan/, about 14 minutes on a fresh 2-core machine): CI
# runs that stage (.ci/run sets PHOTON_SANITIZE_TESTS=1), and so does anyone who sets it.
if [ $# -eq 0 ] && [ "${PHOTON_SANITIZE_TESTS:-0}" = 1 ]; then
  bash scripts/test-sanitizers.sh
fi
