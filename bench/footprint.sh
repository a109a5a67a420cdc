#!/usr/bin/env bash
# //bench:footprint: runs bench/footprint.py with Debian's python3 (stdlib
# only), finding the built workloads and libcoldheap.so in the runfiles.
set -euo pipefail
rf=""
if [[ -n ${RUNFILES_DIR:-} && -d ${RUNFILES_DIR} ]]; then
  rf=$RUNFILES_DIR
elif [[ -d "$0.runfiles" ]]; then
  rf="$0.runfiles"
fi
if [[ -n $rf ]]; then
  export FOOTPRINT_RUNFILES=$rf
  exec /usr/bin/python3 "$rf/coldheap/bench/footprint.py" "$@"
fi
exec /usr/bin/python3 "$(dirname "$0")/footprint.py" "$@"
