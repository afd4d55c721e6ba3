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
# Tests start real daemons on port 0 and private temp dirs, so they can run in parallel.
(cd "${PHOTON_BUILD_DIR:-$ROOT/build}" &&
  require_suites $(sed -e 's/#.*//' "$ROOT/tests/suites.txt") &&
  ctest_no_skips --output-on-failure --timeout 600 -j "${PHOTON_TEST_JOBS:-2}" "$@")
# Then the in-process suites and the API suite under ASan/UBSan (build-asan/), unless only
# some tests were asked for.
if [ $# -eq 0 ]; then
  bash scripts/test-sanitizers.sh
fi
