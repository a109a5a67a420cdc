#!/usr/bin/env bash
# Builds //bench:fault_bench and the shim, runs every group of figures under
# the environment it needs, and prints a Markdown table. About 2-3 minutes.
#
#   bench/fault_bench.sh
#
# Environment (all optional):
#   FAULT_BENCH_REFAULT_RUNS=3    runs of group 1 per FAULT_AROUND setting
#   FAULT_BENCH_RUNS=10           interleaved jemalloc / coldheap-idle runs
#   FAULT_BENCH_SCAN_INTERVAL=1s  COLDHEAP_SCAN_INTERVAL of the refault runs;
#                                 the timed touches must fit in one interval
#   FAULT_BENCH_OUT=DIR           where raw JSON, logs and stats go
#                                 (default: a new /tmp/fault_bench.XXXXXX)
#
# Groups:
#   1. refault, evict, anon_fault: LD_PRELOAD=libcoldheap.so,
#      COLDHEAP_COLD_AGE=0 (stress: every resident page is evicted each
#      scan), once with COLDHEAP_FAULT_AROUND=8 and once with 0 (the default).
#      COLDHEAP_MAX_POOL_PERCENT=100 so a pool limit never stops the evictor.
#      FAULT_BENCH_REFAULT_RUNS processes per setting, alternating; each
#      figure is the median over them (one process is a single sample of
#      the neighbours' load).
#   2. malloc_free, first_touch: the same binary under
#      LD_PRELOAD=libjemalloc.so.2 (plain jemalloc) and under
#      LD_PRELOAD=libcoldheap.so with COLDHEAP_COLD_AGE=60m (idle shim; the
#      shim takes ms, s or m, not h), alternating, FAULT_BENCH_RUNS short
#      runs each. A third, diagnostic column runs the idle shim with
#      COLDHEAP_REGION_SIZE=66G: with the default 64G, the region's first
#      GiB and the mappings above it fall in the same slot of jemalloc's
#      16-entry rtree cache (slot = address bits 30-33), and free() leaves
#      its fast path; 66G shows the cost without that aliasing.
#      malloc_free is timed in CPU time (the threads' CPU per malloc+free
#      pair): the machine's 2 vCPUs are shared, and wall-clock throughput
#      swings 10x with the neighbours' load. Reported: medians, and the
#      median of the ratios of adjacent (paired) runs.
set -euo pipefail

cd "$(dirname "$0")/.."
RUNS=${FAULT_BENCH_RUNS:-10}
REFAULT_RUNS=${FAULT_BENCH_REFAULT_RUNS:-3}
INTERVAL=${FAULT_BENCH_SCAN_INTERVAL:-1s}
OUT=${FAULT_BENCH_OUT:-$(mktemp -d /tmp/fault_bench.XXXXXX)}
JEMALLOC=/usr/lib/x86_64-linux-gnu/libjemalloc.so.2
mkdir -p "$OUT"

echo "building (bazel) ..." >&2
bazel build //shim:libcoldheap.so //bench:fault_bench >"$OUT/build.log" 2>&1 ||
  { cat "$OUT/build.log" >&2; exit 1; }
# What was built: the tree may change under us (read-only git queries).
REV="$(git rev-parse --short HEAD 2>/dev/null || echo '?')"
DIRTY=$(git status --porcelain shim pool policy 2>/dev/null | wc -l)
# Private copies: another build may replace bazel-bin's files mid-run.
cp -f bazel-bin/shim/libcoldheap.so bazel-bin/bench/fault_bench "$OUT/"
SHIM=$OUT/libcoldheap.so
BIN=$OUT/fault_bench
[[ -r $JEMALLOC ]] || { echo "missing $JEMALLOC (libjemalloc2)" >&2; exit 1; }

# run NAME FILTER ENV... : one process, JSON to $OUT/NAME.json.
run() {
  local name=$1 filter=$2
  shift 2
  echo "  $name" >&2
  # A shim bug can hang a process (a handler faulting on the heap): bound it.
  timeout "${RUN_TIMEOUT:-120}" env "$@" "$BIN" --benchmark_filter="$filter" ${BENCH_ARGS:-} \
    --benchmark_out="$OUT/$name.json" --benchmark_out_format=json \
    >"$OUT/$name.log" 2>&1 ||
    { cat "$OUT/$name.log" >&2; echo "$name failed or timed out" >&2; exit 1; }
}

LOAD0=$(cut -d' ' -f1-3 /proc/loadavg)
echo "group 1: refault / evict / anon_fault (COLDHEAP_COLD_AGE=0, scan $INTERVAL)" >&2
for ((i = 1; i <= REFAULT_RUNS; i++)); do
  for fa in 8 0; do
    run "refault_fa${fa}_$i" '^(evict|refault|anon_fault)' \
      LD_PRELOAD="$SHIM" COLDHEAP_COLD_AGE=0 COLDHEAP_SCAN_INTERVAL="$INTERVAL" \
      COLDHEAP_FAULT_AROUND=$fa COLDHEAP_MAX_POOL_PERCENT=100 \
      COLDHEAP_STATS="$OUT/refault_fa${fa}_$i.stats"
  done
done

echo "group 2: malloc_free / first_touch, $RUNS x (jemalloc, coldheap idle, idle with 66G region)" >&2
LOAD1=$(cut -d' ' -f1-3 /proc/loadavg)
group2() {
  local i=$1 which=$2
  case $which in
    jemalloc) run "jemalloc_$i" '^(malloc_free|first_touch)' LD_PRELOAD="$JEMALLOC" ;;
    coldheap) run "coldheap_$i" '^(malloc_free|first_touch)' LD_PRELOAD="$SHIM" \
      COLDHEAP_COLD_AGE=60m COLDHEAP_STATS="$OUT/coldheap_$i.stats" ;;
    region66) run "region66_$i" '^(malloc_free|first_touch)' LD_PRELOAD="$SHIM" \
      COLDHEAP_COLD_AGE=60m COLDHEAP_REGION_SIZE=66G ;;
  esac
}
BENCH_ARGS=--benchmark_min_time=0.2
RUN_TIMEOUT=60
for ((i = 1; i <= RUNS; i++)); do
  if ((i % 2)); then order="jemalloc coldheap region66"
  else order="region66 coldheap jemalloc"; fi
  for which in $order; do group2 $i $which; done
done
LOAD2=$(cut -d' ' -f1-3 /proc/loadavg)

CPU=$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//')
python3 - "$OUT" "$RUNS" "$INTERVAL" "$(nproc)" "$(uname -r)" "$CPU" \
  "$(date -u '+%Y-%m-%d %H:%M UTC')" "$LOAD0" "$LOAD1" "$LOAD2" "$REV" "$DIRTY" "$REFAULT_RUNS" <<'EOF'
import json, statistics, sys

out, runs, interval, nproc, kernel, cpu, date, load0, load1, load2, rev, dirty, rruns = sys.argv[1:]
runs, rruns = int(runs), int(rruns)

def load(name):
    with open(f"{out}/{name}.json") as f:
        return {b["name"]: b for b in json.load(f)["benchmarks"]}

def get(results, prefix, key):
    for name, b in results.items():
        if name.startswith(prefix) and key in b:
            return b[key]
    return float("nan")

def f(v, digits=1):
    return "n/a" if v != v else f"{v:.{digits}f}"

fa = {k: [load(f"refault_fa{k}_{i}") for i in range(1, rruns + 1)] for k in (8, 0)}
r = lambda k, p, key: statistics.median(get(x, p, key) for x in fa[k])

print(f"## coldheap fault_bench, {date}\n")
print(f"Source: {rev}" + (f" + {dirty} uncommitted files in shim/ pool/ policy/" if dirty != "0" else "") + ". "
      f"Machine: {nproc} vCPU, {cpu}, Linux {kernel}. "
      f"Refault runs: COLDHEAP_COLD_AGE=0, COLDHEAP_SCAN_INTERVAL={interval}, "
      f"medians of {rruns} processes per setting; "
      "64 MiB of text/JSON/CSV pages, one faulting thread, one timed read per "
      "page (clock_gettime around it); a touch counts as a fault if mincore(2) "
      "said the page was not present just before. "
      f"Load average before: {load0}.\n")
print("| figure | FAULT_AROUND=8 | FAULT_AROUND=0 (default) | target / reference |")
print("|---|---|---|---|")
rows = [
    ("refault p50, random order (us)", "refault/random", "refault_p50_us", 1, "15 us"),
    ("refault p99, random order (us)", "refault/random", "refault_p99_us", 1, "29 us (DESIGN)"),
    ("refault p50, sequential (us)", "refault/sequential", "refault_p50_us", 1, ""),
    ("refault p99, sequential (us)", "refault/sequential", "refault_p99_us", 1, ""),
    ("faults per page touched, random", "refault/random", "faults_per_page", 3, ""),
    ("faults per page touched, sequential", "refault/sequential", "faults_per_page", 3, ""),
    ("mean cost per page touched, random (us)", "refault/random", "touch_us_per_page", 2, "faults and free touches"),
    ("mean cost per page touched, sequential (us)", "refault/sequential", "touch_us_per_page", 2, ""),
    ("handler service p50, random (us, stats histogram)", "refault/random", "handler_service_p50_us", 1, "interpolated in 2^k buckets"),
    ("handler CPU per fault, random (us)", "refault/random", "handler_cpu_us_per_fault", 1, ""),
    ("handler CPU per fault, sequential (us)", "refault/sequential", "handler_cpu_us_per_fault", 1, ""),
    ("anonymous mmap first-touch write fault p50 (us)", "anon_fault", "anon_fault_p50_us", 2, "1.4 us (DESIGN)"),
    ("anonymous mmap first-touch write fault p99 (us)", "anon_fault", "anon_fault_p99_us", 2, "4.1 us (DESIGN)"),
    ("eviction throughput, per evictor CPU second (MiB/s)", "evict", "evict_cpu_MiBps", 0, ""),
    ("eviction throughput, per pass wall second (MiB/s)", "evict", "evict_wall_MiBps", 0, ""),
    ("evictor CPU per page (us)", "evict", "evictor_cpu_us_per_page", 2, "LZ4 compress 4.7-10 us (DESIGN)"),
    ("LZ4 ratio / pool ratio of the evicted pages", "evict", None, 2, ""),
]
for label, prefix, key, digits, note in rows:
    if key is None:
        cells = [f"{f(r(k, prefix, 'lz4_ratio'), 2)} / {f(r(k, prefix, 'pool_ratio'), 2)}" for k in (8, 0)]
    else:
        cells = [f(r(k, prefix, key), digits) for k in (8, 0)]
    print(f"| {label} | {cells[0]} | {cells[1]} | {note} |")

print("\nChecks per process (quiet=1: no pass ran during the timed touches; "
      "bad_pages: pages whose bytes differ after the refault):")
for k in (8, 0):
    for p in ("refault/random", "refault/sequential"):
        cells = [f"quiet={int(get(x, p, 'quiet'))} evicted={get(x, p, 'evicted_fraction'):.3f} "
                 f"bad={int(get(x, p, 'bad_pages'))} timed={get(x, p, 'timed_ms'):.0f}ms "
                 f"p50={get(x, p, 'refault_p50_us'):.1f}us" for x in fa[k]]
        print(f"- FA={k} {p.split('/')[1]}: " + "; ".join(cells))
    print(f"- FA={k} anon_fault p50: " + ", ".join(
        f"{get(x, 'anon_fault', 'anon_fault_p50_us'):.2f}" for x in fa[k]) + " us")

je = [load(f"jemalloc_{i}") for i in range(1, runs + 1)]
ch = [load(f"coldheap_{i}") for i in range(1, runs + 1)]
r66 = [load(f"region66_{i}") for i in range(1, runs + 1)]
med = lambda rs, p, key: statistics.median(get(x, p, key) for x in rs)
paired = lambda rs, p, key: statistics.median(
    get(c, p, key) / get(j, p, key) for j, c in zip(je, rs))
print(f"\nIdle shim (COLDHEAP_COLD_AGE=60m) vs plain jemalloc (LD_PRELOAD="
      f"/usr/lib/x86_64-linux-gnu/libjemalloc.so.2), {runs} alternating runs "
      f"each; medians (ratio: of medians / median of adjacent-run ratios). "
      f"Load average before/after: {load1} / {load2}.\n")
print("| figure | plain jemalloc | coldheap idle | coldheap / jemalloc "
      "| coldheap idle, REGION_SIZE=66G (diagnostic) | 66G / jemalloc | target |")
print("|---|---|---|---|---|---|---|")
for t in (1, 2):
    p = f"malloc_free/threads:{t}"
    a, b, c = (med(x, p, "cpu_time") for x in (je, ch, r66))
    print(f"| malloc+free, 16 B-4 KiB, {t} thread{'s' if t > 1 else ''}: "
          f"CPU ns per pair (M pairs per CPU-s) | {a:.1f} ({1e3 / a:.1f}) | "
          f"{b:.1f} ({1e3 / b:.1f}) | {b / a:.3f} / {paired(ch, p, 'cpu_time'):.3f} | "
          f"{c:.1f} ({1e3 / c:.1f}) | {c / a:.3f} / {paired(r66, p, 'cpu_time'):.3f} | <= 1.05 |")
a, b, c = (med(x, "first_touch", "first_touch_us_per_page") for x in (je, ch, r66))
print(f"| first touch of fresh malloc memory (us/page, wall) | {a:.2f} | {b:.2f} | "
      f"{b / a:.2f} | {c:.2f} | {c / a:.2f} | |")
a, b, c = (med(x, "first_touch", "anon_first_touch_us_per_page") for x in (je, ch, r66))
print(f"| first touch of fresh anonymous mmap, same process (us/page) | {a:.2f} | "
      f"{b:.2f} | | {c:.2f} | | |")
a, b, c = (med(x, "first_touch", "first_touch_ratio") for x in (je, ch, r66))
print(f"| malloc first touch / mmap first touch, same process | {a:.2f} | {b:.2f} "
      f"| | {c:.2f} | | <= 1.2 (coldheap) |")
for t in (1, 2):
    p = f"malloc_free/threads:{t}"
    print(f"\nmalloc_free {t} thread(s), CPU ns per pair per run: "
          + "; ".join(name + " " + ", ".join(f"{get(x, p, 'cpu_time'):.1f}" for x in rs)
                      for name, rs in (("jemalloc", je), ("coldheap", ch), ("66G", r66))))
print(f"\nRaw JSON, logs and statistics files: {out}")
EOF
