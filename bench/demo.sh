#!/usr/bin/env bash
# The main job, in one command: installs what is missing (Debian packages),
# builds the shim and the footprint runner, and runs the built-in key-value
# cache without and with coldheap, then its oracle run (the best any
# page-granular policy could do; see bench/footprint.py; --oracle=0 skips
# it) (about 3-4 minutes on 2 vCPUs): requests
# go to a Zipfian hot set of 10% of the keys, the other 90% stay in the
# cache untouched, as in a cache that holds more than its traffic needs.
# Prints the table and the path of the plot. Extra arguments go to the runner, e.g.
#   bench/demo.sh --size_mb=512 --measure_s=60
# Shim settings of the "with" run: COLDHEAP_COLD_AGE=10s,
# COLDHEAP_SCAN_INTERVAL=1s (see bench/footprint.py).
set -euo pipefail
cd "$(dirname "$0")/.."
third_party/install_deps.sh
bazel build //shim:libcoldheap.so //bench:footprint
bazel run //bench:footprint -- --workload=kv_cache --size_mb=256 --settle_s=30 \
  --measure_s=30 --workload_arg=--hot_percent=10 --out=bench/results/demo "$@"
