#!/usr/bin/env bash
# Soak (issue 11; not in CI): redis-server and the churn program under the
# fault-injection build of libcoldheap.so for DURATION seconds, with kernel
# calls of the data path failing at a low rate, then checks that nothing was
# lost:
#  - redis: the same deterministic stream of SET/APPEND/DEL goes to a redis
#    under the shim and to one without it; at the end their DEBUG DIGESTs
#    must be equal (and the shim must have evicted and restored pages);
#  - churn: tests/shim/heap_workload churn verifies every block before each
#    change and exits 0 only if every byte read back.
# Prints the figures for README (pages evicted and restored, failures
# injected, bytes lost).
#   tests/soak.sh [DURATION_SECONDS=900] [RATE_DENOMINATOR=2000]
set -euo pipefail
cd "$(dirname "$0")/.."
duration=${1:-900}
k=${2:-2000}

bazel build --config=faultinject //shim:libcoldheap.so //tests/shim:heap_workload
bin=$(bazel info --config=faultinject bazel-bin 2>/dev/null)
lib=$bin/shim/libcoldheap.so
workload=$bin/tests/shim/heap_workload

dir=$(mktemp -d /tmp/coldheap-soak-XXXXXX)
plain_port=6391
shim_port=6392
cleanup() {
  redis-cli -p $plain_port shutdown nosave >/dev/null 2>&1 || true
  redis-cli -p $shim_port shutdown nosave >/dev/null 2>&1 || true
  rm -rf "$dir"
}
trap cleanup EXIT

# Failures at 1 in $k calls of each data-path site (at most 8 rules).
faults="copy:ENOMEM:1/$k;move:ENOMEM:1/$k;move:EBUSY:1/$k"
faults+=";pagemap_scan:EINTR:1/$k;pool_map:ENOMEM:1/$k;dontneed:EAGAIN:1/$k"
faults+=";file_write:ENOSPC:1/$k;read_events:EINTR:1/$k"
# Realistic settings: 1 s scans, pages cold after 5 s, a pool limit that
# writes back to a file.
shim_env=(
  LD_PRELOAD="$lib"
  COLDHEAP_TEST_FAULT="$faults"
  COLDHEAP_SCAN_INTERVAL=1s
  COLDHEAP_COLD_AGE=5s
  COLDHEAP_MAX_POOL_PERCENT=10
  COLDHEAP_WRITEBACK_FILE="$dir"
)

redis_args=(--save "" --appendonly no --enable-debug-command yes --daemonize no)
redis-server --port $plain_port "${redis_args[@]}" >"$dir/plain.log" 2>&1 &
env "${shim_env[@]}" COLDHEAP_STATS="$dir/redis.stats" \
  redis-server --port $shim_port "${redis_args[@]}" >"$dir/shim.log" 2>&1 &
redis_pid=$!
for port in $plain_port $shim_port; do
  until redis-cli -p $port ping >/dev/null 2>&1; do sleep 0.2; done
done

env "${shim_env[@]}" COLDHEAP_STATS="$dir/churn.stats" \
  "$workload" churn 2 "$duration" >"$dir/churn.out" 2>"$dir/churn.err" &
churn_pid=$!

# Round r: 20000 commands over 300000 keys, chosen and valued from r alone.
commands() {
  python3 - "$1" <<'EOF'
import random, sys
r = int(sys.argv[1])
rng = random.Random(r)
out = []
def cmd(*args):
    out.append("*%d\r\n" % len(args) + "".join(
        "$%d\r\n%s\r\n" % (len(a.encode()), a) for a in args))
for _ in range(20000):
    key = "key:%d" % rng.randrange(300000)
    op = rng.random()
    if op < 0.80:
        n = rng.randrange(50, 400)
        cmd("SET", key, ("%s|%d|" % (key, r)) * (n // 16 + 1))
    elif op < 0.95:
        cmd("APPEND", key, "+%d" % rng.randrange(10**9))
    else:
        cmd("DEL", key)
sys.stdout.write("".join(out))
EOF
}

start=$(date +%s)
rounds=0
while (( $(date +%s) - start < duration )); do
  commands $rounds >"$dir/batch"
  redis-cli -p $plain_port --pipe <"$dir/batch" >/dev/null
  redis-cli -p $shim_port --pipe <"$dir/batch" >/dev/null
  rounds=$((rounds + 1))
  # Idle a while, so pages go cold and are read back by the next rounds.
  sleep 5
  # Reads of everything: every evicted value comes back.
  if (( rounds % 10 == 0 )); then
    redis-cli -p $shim_port debug digest >/dev/null
  fi
done

plain_digest=$(redis-cli -p $plain_port debug digest)
shim_digest=$(redis-cli -p $shim_port debug digest)
keys=$(redis-cli -p $shim_port dbsize)
redis-cli -p $shim_port shutdown nosave >/dev/null 2>&1 || true
wait "$redis_pid" || true
churn_status=0
wait "$churn_pid" || churn_status=$?

stat() { awk -v k="$2" '$1 == k { print $2 }' "$1" 2>/dev/null | tail -1; }
total() { echo $(( $(stat "$dir/redis.stats" "$1" || echo 0) + $(stat "$dir/churn.stats" "$1" || echo 0) )); }
echo "soak: ${duration} s, ${rounds} redis rounds (20000 commands each), ${keys} keys"
echo "soak: fault rules: $faults"
for name in evicted_pages refaults written_back_pages os_failures_injected os_failures; do
  echo "soak: $name redis $(stat "$dir/redis.stats" $name) churn $(stat "$dir/churn.stats" $name) total $(total $name)"
done
ok=1
if [[ "$plain_digest" != "$shim_digest" ]]; then
  echo "soak: FAIL: redis digests differ: plain $plain_digest, shim $shim_digest"
  ok=0
else
  echo "soak: redis DEBUG DIGEST equal with and without the shim: $shim_digest"
fi
if (( churn_status != 0 )); then
  echo "soak: FAIL: churn exited $churn_status"; cat "$dir/churn.err"; ok=0
else
  echo "soak: churn verified every block (exit 0)"
fi
if (( $(total evicted_pages) == 0 || $(total os_failures_injected) == 0 )); then
  echo "soak: FAIL: nothing evicted or nothing injected: the soak proved nothing"
  ok=0
fi
grep -h "coldheap" "$dir/shim.log" "$dir/churn.err" | sort | uniq -c || true
if (( ok )); then echo "soak: PASS, bytes lost 0"; exit 0; fi
exit 1
