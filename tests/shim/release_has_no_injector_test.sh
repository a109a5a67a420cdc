#!/usr/bin/env bash
# The release libcoldheap.so has no fault injector (shim/fault_injector.h is
# compiled only with --config=faultinject): no symbol of it, and the name of
# its variable nowhere in the library.
set -euo pipefail
lib=$1
symbols=$(nm -C "$lib")
[[ -n $symbols ]] || { echo "nm found no symbols in $lib"; exit 1; }
if grep -q "fault_injection" <<<"$symbols"; then
  echo "FAIL: the release library has injector symbols:"
  grep "fault_injection" <<<"$symbols"
  exit 1
fi
if grep -q "COLDHEAP_TEST_FAULT" "$lib"; then
  echo "FAIL: the release library knows COLDHEAP_TEST_FAULT"
  exit 1
fi
echo "PASS: no injector in $lib"
