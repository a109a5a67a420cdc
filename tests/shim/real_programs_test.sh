#!/usr/bin/env bash
# Real programs under LD_PRELOAD=libcoldheap.so in stress mode (every resident
# heap page evicted at every 50 ms scan) must print exactly what they print
# without it, and the shim must really have evicted and restored pages.
# Usage: real_programs_test.sh LIBCOLDHEAP
set -euo pipefail
shim=$(realpath "$1")
work=$(mktemp -d /tmp/coldheap-real-XXXXXX)
trap 'rm -rf "$work"' EXIT
failures=0

# run NAME CMD...: runs CMD plain and under the shim, compares stdout and the
# exit status, and checks the statistics.
run() {
  local name=$1
  shift
  local plain_status=0 shim_status=0
  "$@" >"$work/$name.plain" 2>"$work/$name.plain.err" || plain_status=$?
  env LD_PRELOAD="$shim" COLDHEAP_COLD_AGE=0 COLDHEAP_SCAN_INTERVAL=50ms \
    COLDHEAP_STATS="$work/$name.stats" \
    "$@" >"$work/$name.shim" 2>"$work/$name.shim.err" || shim_status=$?
  local evicted refaults
  evicted=$(awk '$1=="evicted_pages"{print $2}' "$work/$name.stats" 2>/dev/null || echo 0)
  refaults=$(awk '$1=="refaults"{print $2}' "$work/$name.stats" 2>/dev/null || echo 0)
  if [[ $plain_status != "$shim_status" ]]; then
    echo "FAIL $name: exit status $plain_status without the shim, $shim_status with it"
    tail -5 "$work/$name.shim.err"
    failures=$((failures + 1))
  elif [[ -n ${FILTER:-} ]]; then
    grep -E "$FILTER" "$work/$name.plain" >"$work/$name.plain.f" || true
    grep -E "$FILTER" "$work/$name.shim" >"$work/$name.shim.f" || true
    mv "$work/$name.plain.f" "$work/$name.plain"
    mv "$work/$name.shim.f" "$work/$name.shim"
  fi
  if [[ $plain_status != "$shim_status" ]]; then
    :  # reported above
  elif [[ ! -s $work/$name.plain ]]; then
    echo "FAIL $name: no output to compare"
    failures=$((failures + 1))
  elif ! cmp -s "$work/$name.plain" "$work/$name.shim"; then
    echo "FAIL $name: output differs under the shim"
    diff "$work/$name.plain" "$work/$name.shim" | head -10
    failures=$((failures + 1))
  elif [[ ${evicted:-0} -eq 0 || ${refaults:-0} -eq 0 ]]; then
    echo "FAIL $name: the shim evicted ${evicted:-0} and restored ${refaults:-0} pages: proves nothing"
    cat "$work/$name.shim.err" | head -5
    failures=$((failures + 1))
  else
    echo "ok   $name (status $plain_status, evicted ${evicted} pages, ${refaults} refaults)"
  fi
}

# sqlite3: an in-memory indexed table, built and queried.
cat >"$work/q.sql" <<'SQL'
CREATE TABLE t(id INTEGER PRIMARY KEY, name TEXT, score REAL, tag TEXT);
WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 300000)
INSERT INTO t SELECT i, 'user-' || (i * 7919 % 100003), (i * 31 % 1000) / 7.0,
  substr('alphabetagammadeltaepsilon', 1 + i % 20, 6) FROM n;
CREATE INDEX t_name ON t(name);
CREATE INDEX t_score ON t(score);
SELECT count(*), sum(score), min(name), max(name) FROM t;
SELECT tag, count(*), round(avg(score), 3) FROM t GROUP BY tag ORDER BY tag;
SELECT id, name FROM t WHERE name BETWEEN 'user-5000' AND 'user-5010' ORDER BY id;
SELECT count(*) FROM t a JOIN t b ON a.name = b.name WHERE a.id < 20000;
SQL
run sqlite3 sqlite3 :memory: ".read $work/q.sql"

# sort of a generated file large enough to use big buffers.
awk 'BEGIN { srand(7); for (i = 0; i < 400000; i++)
  printf "%08d %s %.3f\n", int(rand() * 1e8), substr("kxqjzvwyplmnbcdfgh", 1 + i % 12, 5), rand() * 1000 }' \
  >"$work/sort.in"
run sort sort -k2,2 -k1,1n "$work/sort.in"

# jq over generated JSON records.
awk 'BEGIN { printf "["; for (i = 0; i < 60000; i++) printf "%s{\"id\":%d,\"user\":\"u%d\",\"tags\":[\"a%d\",\"b%d\"],\"score\":%d}", (i ? "," : ""), i, i % 977, i % 13, i % 7, (i * 37) % 1000; print "]" }' \
  >"$work/in.json"
run jq jq -c 'group_by(.user) | map({user: .[0].user, n: length, total: (map(.score) | add)}) | sort_by(-.total) | .[0:50]' "$work/in.json"

# perl: a hash-heavy job.
run perl perl -e 'my %h; for my $i (1..400000) { $h{"key$i"} = "v" x ($i % 50) . $i }
  my $n = 0; for my $k (sort keys %h) { $n += length($h{$k}) } print "$n\n";
  print join(",", map { $h{"key$_"} } 1..20), "\n";'

# Python's own test suite, with PYTHONMALLOC=malloc so objects live in the
# heap the shim manages. Timing lines differ between runs: compare verdicts.
FILTER='^(== Tests result|Tests result|[0-9]+ tests? OK|All [0-9]+ tests OK|SUCCESS|FAILURE)' \
  PYTHONMALLOC=malloc run python3 /usr/bin/python3 -m test test_json test_re \
  test_collections test_dict test_list test_unicode test_pickle test_bisect test_heapq

echo "real programs: $failures failed"
exit $((failures > 0))
