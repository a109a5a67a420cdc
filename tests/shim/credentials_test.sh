#!/usr/bin/env bash
# Programs that change their credentials under LD_PRELOAD=libcoldheap.so, in
# stress mode, print what they print without it (issue 11: setpriv aborted
# in glibc's set*id() broadcast). Needs root, as CI runs; skipped otherwise.
# Usage: credentials_test.sh LIBCOLDHEAP CREDENTIALS_WORKLOAD
set -euo pipefail
if [[ $(id -u) != 0 ]]; then
  echo "skipped: needs root"
  exit 0
fi
# Readable by nobody: what setpriv executes loads the shim as nobody.
work=$(mktemp -d /tmp/coldheap-creds-XXXXXX)
trap 'rm -rf "$work"' EXIT
chmod 0777 "$work"
cp "$(realpath "$1")" "$work/libcoldheap.so"
cp "$(realpath "$2")" "$work/credentials_workload"
shim=$work/libcoldheap.so
failures=0

fail() {
  echo "FAIL $*"
  failures=$((failures + 1))
}

# run NAME CMD...: CMD plain and under the shim; stdout and exit status must
# match. The shim's stderr is left in $work/NAME.shim.err.
run() {
  local name=$1
  shift
  local plain_status=0 shim_status=0
  "$@" >"$work/$name.plain" 2>"$work/$name.plain.err" || plain_status=$?
  env LD_PRELOAD="$shim" COLDHEAP_COLD_AGE=0 COLDHEAP_SCAN_INTERVAL=50ms \
    COLDHEAP_LOG=info COLDHEAP_STATS="$work/$name.stats" \
    "$@" >"$work/$name.shim" 2>"$work/$name.shim.err" || shim_status=$?
  if [[ $plain_status != "$shim_status" ]]; then
    fail "$name: exit status $plain_status without the shim, $shim_status with it"
    tail -5 "$work/$name.shim.err"
    return 1
  fi
  if [[ ! -s $work/$name.plain ]]; then
    fail "$name: no output to compare"
    return 1
  fi
  if ! cmp -s "$work/$name.plain" "$work/$name.shim"; then
    fail "$name: output differs under the shim"
    diff "$work/$name.plain" "$work/$name.shim" | head -10
    return 1
  fi
  if ! grep -q 'coldheap: watching a region' "$work/$name.shim.err"; then
    fail "$name: the shim was not active"
    head -3 "$work/$name.shim.err"
    return 1
  fi
}

stat_of() { awk -v k="$2" '$1==k{print $2}' "$work/$1.stats" 2>/dev/null || true; }

# The command from the issue, and one that keeps a capability across the
# change (inheritable and ambient: setpriv's capng_apply paths).
run setpriv setpriv --reuid=65534 --regid=65534 --clear-groups id &&
  echo "ok   setpriv: $(cat "$work/setpriv.shim")"
run setpriv_caps setpriv --reuid=65534 --regid=65534 --clear-groups \
  --inh-caps=+net_bind_service --ambient-caps=+net_bind_service \
  grep -E '^(Uid|Gid|Cap(Prm|Eff|Amb))' /proc/self/status &&
  echo "ok   setpriv keeping net_bind_service"

# perl switching its effective uid back and forth, then dropping root: the
# calls after the first find the shim's threads already in step (no round).
run perl_ids perl -e 'my @a = map { "x" x 100 . $_ } 1..200000;
  for (1..50) { $> = 65534; $> = 0 }
  $) = "65534 65534"; $( = 65534; $> = 65534; $< = 65534;
  printf "uid %s euid %s gid %s egid %s; %d kept\n", $<, $>, $(, $), scalar grep { /7$/ } @a' &&
  echo "ok   perl: $(cat "$work/perl_ids.shim")"

# capset, then setresuid and setresgid, with pages evicted before and after.
if run workload "$work/credentials_workload"; then
  threads=$(awk '/^threads checked:/{print $3}' "$work/workload.shim.err")
  evicted=$(stat_of workload evicted_pages)
  refaults=$(stat_of workload refaults)
  if [[ ${threads:-0} -lt 2 ]]; then
    fail "workload: only ${threads:-0} thread checked under the shim: its threads were not there"
  elif [[ ${evicted:-0} -eq 0 || ${refaults:-0} -eq 0 ]]; then
    fail "workload: the shim evicted ${evicted:-0} and restored ${refaults:-0} pages: proves nothing"
  else
    echo "ok   workload ($threads threads agree; evicted $evicted pages, $refaults refaults)"
  fi
fi

if ((failures)); then
  echo "$failures failed"
  exit 1
fi
