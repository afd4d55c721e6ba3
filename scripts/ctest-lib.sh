# Sourced by scripts/test.sh and scripts/test-sanitizers.sh: ctest with the two checks ctest
# does not make itself. Run in the build directory.

# require_suites NAME...: fails naming every NAME the build did not register (a suite that
# silently vanished would otherwise pass by not running).
require_suites() {
  local registered missing
  registered="$(ctest -N | sed -n 's/^ *Test *#[0-9]*: //p')"
  missing="$(comm -23 <(printf '%s\n' "$@" | sort -u) <(sort -u <<<"$registered"))"
  if [ -n "$missing" ]; then
    echo "FAILED: these suites are not registered in $(pwd):" $missing >&2
    return 1
  fi
}

# Prints why each skipped test in ctest's JUnit file $1 did not run (ctest's
# --output-on-failure shows the output of failures only).
print_skip_reasons() {
  python3 - "$1" <<'PY'
import re, sys
import xml.etree.ElementTree as ET
for case in ET.parse(sys.argv[1]).getroot().iter("testcase"):
    if case.find("skipped") is None:
        continue
    lines = (case.findtext("system-out") or "").splitlines()
    why = [l for i, l in enumerate(lines)
           if re.search(r"skip", l, re.I) or (i and lines[i - 1].endswith(": Skipped"))]
    print("%s did not run:\n  %s" % (case.get("name"), "\n  ".join(why[-12:]) or "(no output)"))
PY
}

# ctest_no_skips ARGS...: ctest ARGS, failing also when a test did not run. ctest counts a skip
# (SKIP_RETURN_CODE 77, see cmake/PhotonTest.cmake) as a pass and lists it after its summary
# under "The following tests did not run"; after scripts/install-deps.sh nothing may be skipped.
ctest_no_skips() {
  local log junit status=0
  log="$(mktemp)"
  junit="$(mktemp)"
  ctest --no-tests=error --output-junit "$junit" "$@" 2>&1 | tee "$log" || status=$?
  if grep -q '^The following tests did not run:' "$log"; then
    print_skip_reasons "$junit" >&2 || true
    echo "FAILED: tests were skipped; nothing may be skipped after scripts/install-deps.sh" >&2
    [ "$status" -ne 0 ] || status=1
  fi
  rm -f "$log" "$junit"
  return "$status"
}
