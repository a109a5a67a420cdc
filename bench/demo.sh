#!/usr/bin/env bash
# The main job, in one command: installs what is missing (Debian packages),
# builds the shim and the footprint runner, and runs the built-in key-value
# cache without and with coldheap, then its oracle run (the best any
# page-granular policy could do; see bench/footprint.py; --oracle=0 skips
# it), twice: requests go to a Zipfian hot set of 10% of the keys, the other
# 90% stay in the cache untouched, as in a cache that holds more than its
# traffic needs;
#   1. scattered: the hot keys lie anywhere among all keys (kv_cache);
#   2. recency: the hot keys are the newest, new ones keep arriving and the
#      oldest expire (kv_cache_recency, kv_cache --popularity=recency).
# About 7-8 minutes on 2 vCPUs. Prints both tables and the paths of the
# plots. Extra arguments go to both runs, e.g.
#   bench/demo.sh --size_mb=512 --measure_s=60
#   bench/demo.sh --baseline=zswap     (as root: kernel zswap at equal memory)
# Shim settings of the "with" run: COLDHEAP_COLD_AGE=10s,
# COLDHEAP_SCAN_INTERVAL=1s (see bench/footprint.py).
set -euo pipefail
cd "$(dirname "$0")/.."
third_party/install_deps.sh
bazel build //shim:libcoldheap.so //bench:footprint
status=0
for w in kv_cache kv_cache_recency; do
  out=bench/results/demo
  [[ $w == kv_cache ]] || out=bench/results/demo_recency
  bazel run //bench:footprint -- --workload=$w --size_mb=256 --settle_s=30 \
    --measure_s=30 --workload_arg=--hot_percent=10 --out=$out "$@" || status=1
done
echo
echo "== 1. Scattered Zipf: caches and stores whose popular keys have nothing to do"
echo "   with when they were written (user profiles, product catalogues, lookup and"
echo "   memoization caches): the hot 10% is spread over the whole heap."
echo
cat bench/results/demo/kv_cache.md || true
echo
echo "== 2. Recency: session stores, feed and timeline caches, recent-event buffers:"
echo "   new entries get most requests, interest fades with age, old entries wait"
echo "   for their TTL."
echo
cat bench/results/demo_recency/kv_cache_recency.md || true
exit $status
