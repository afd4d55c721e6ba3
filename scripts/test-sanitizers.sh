#!/usr/bin/env bash
# The in-process suites and the API suite (which starts the real photon-server binary) again,
# built with AddressSanitizer and UndefinedBehaviorSanitizer into build-asan/. scripts/test.sh
# runs this after the main suites when PHOTON_SANITIZE_TESTS=1 (CI sets it); it needs only
# what scripts/install-deps.sh installed. PHOTON_SANITIZE_TESTS=0 skips it.
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
cd "$ROOT"
[ "${PHOTON_SANITIZE_TESTS:-1}" = 0 ] && { echo "sanitizer suites skipped"; exit 0; }
ASAN_DIR="${PHOTON_ASAN_BUILD_DIR:-$ROOT/build-asan}"
PHOTON_BUILD_DIR="$ASAN_DIR" PHOTON_CMAKE_ARGS="-DPHOTON_SANITIZE=ON" bash scripts/build.sh \
  store_tests store_crash_writer server_unit_tests flashdns_tests lightningstor_tests \
  scheduler_unit_tests photon-server server_api_tests common_http_tests
cd "$ASAN_DIR"
# Any report fails the test: ASan aborts on the first error, UBSan is made to halt.
export ASAN_OPTIONS="detect_leaks=1:abort_on_error=1:detect_stack_use_after_return=0"
export UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1"
SUITES=(store_contract_sqlite store_sqlite server_unit_tests flashdns_unit lightningstor_unit
  scheduler_unit_tests server_api_tests common_http_tests)
source "$ROOT/scripts/ctest-lib.sh"
require_suites "${SUITES[@]}"
ctest_no_skips --output-on-failure --timeout 600 -j "${PHOTON_TEST_JOBS:-2}" \
  -R "^($(IFS='|'; echo "${SUITES[*]}"))\$"
