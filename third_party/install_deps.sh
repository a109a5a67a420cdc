#!/usr/bin/env bash
# Installs, from Debian's archive, what coldheap needs to build, test and run
# its benchmarks offline. Idempotent: does nothing when all is present.
set -euo pipefail

packages=(
  # build
  bazel-bootstrap bazel-rules-java bazel-platforms g++
  libabsl-dev liblz4-dev libjemalloc-dev libzstd-dev
  libgtest-dev libgmock-dev libbenchmark-dev
  # integration tests: real programs under the shim
  python3 libpython3.11-testsuite sqlite3 jq perl
  # footprint benchmarks and plots
  redis-server redis-tools memcached libmemcached-tools gnuplot-nox
  # promtool checks the Prometheus exposition (tests/shim: prometheus_test,
  # launcher/launcher_test)
  prometheus
)

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'ok installed' || missing+=("$p")
done
if ((${#missing[@]})); then
  echo "coldheap: installing ${missing[*]}" >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
