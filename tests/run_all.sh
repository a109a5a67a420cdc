#!/usr/bin/env bash
# Every test: installs what is missing, builds, runs all tests, the fault
# sweep in the fault-injection build, then the pure logic packages (pool/,
# policy/) again under ASan + UBSan with debug checks.
# Ends with "N passed, N failed" counted over GoogleTest cases (and shell
# tests), and exits non-zero if anything failed.
set -uo pipefail
cd "$(dirname "$0")/.."
third_party/install_deps.sh || { echo "0 passed, 1 failed"; exit 1; }

passed=0
failed=0
status=0

# Adds the test cases of one bazel run (its test.xml files) to the counts.
count_cases() {
  local logs
  logs=$(bazel info "$@" bazel-testlogs 2>/dev/null) || return
  local counts
  counts=$(find -L "$logs" -name test.xml -newer .ci/.run_marker -print0 2>/dev/null |
    xargs -0 -r python3 tests/count_cases.py)
  passed=$((passed + ${counts% *}))
  failed=$((failed + ${counts#* }))
}

mkdir -p .ci && touch .ci/.run_marker
bazel test --nocache_test_results //... || status=1
count_cases
touch .ci/.run_marker
# The fault sweep needs the injector, compiled only in the test build.
bazel test --nocache_test_results --config=faultinject //tests/shim:fault_sweep_test || status=1
count_cases --config=faultinject
touch .ci/.run_marker
bazel test --nocache_test_results --config=asan //tests/pool/... //tests/policy/... || status=1
count_cases --config=asan
rm -f .ci/.run_marker

if ((status != 0 && failed == 0)); then failed=1; fi  # e.g. a build error
echo "${passed} passed, ${failed} failed"
exit "$status"
