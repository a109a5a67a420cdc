#!/usr/bin/env bash
# Regenerates bench/RESULTS.md: every footprint workload without and with
# coldheap, its oracle run and, where the machine allows (root, swap,
# zswap, a memory cgroup), kernel zswap at coldheap's footprint
# (bench/footprint.py --baseline=zswap), on this machine, now.
# About 3 hours on 2 vCPUs (each experiment: 4 runs of load + settle +
# measure; the settle30 ones 3).
#   bench/run_all_footprint.sh                 every experiment below
#   bench/run_all_footprint.sh redis sqlite    some; RESULTS.md is rebuilt
#                                              from every result present
#   bench/run_all_footprint.sh --report        runs nothing: rebuilds the
#                                              tables, plots and RESULTS.md
# The shim and the workloads are built once and copied aside, so a rebuild
# by someone else during the series cannot change what is measured;
# RESULTS.md records their SHA-256 and the git state.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
report_only=0
if [[ ${1:-} == --report ]]; then
  report_only=1
  shift
fi
third_party/install_deps.sh
bazel build //shim:libcoldheap.so //bench:kv_cache //bench:kv_client \
  //bench:sqlite_workload //bench:record_gen_check

snap=$(mktemp -d /tmp/coldheap-footprint-XXXXXX)
trap 'rm -rf "$snap"' EXIT
mkdir -p "$snap/bench" "$snap/shim"
cp bazel-bin/shim/libcoldheap.so "$snap/shim/"
for b in kv_cache kv_client sqlite_workload; do cp "bazel-bin/bench/$b" "$snap/bench/"; done
cp bench/py_index.py "$snap/bench/"

# The experiments: name -> workload and flags. --size_mb is MiB of record
# data loaded. The main ones settle 150 s (120 s for sqlite, which runs a
# third configuration) before the 60 s measured: at 1 GiB the shim needs
# about that long to evict the cold part (see RESULTS.md); the *_settle30 ones
# measure right after 30 s of settling (3 cold ages), the transition.
# The main ones also run kernel zswap at the with run's footprint
# (--baseline=zswap; skipped, with one line, where the machine cannot).
# py_index loads 512 MiB of records: CPython's objects make a heap of about
# 2.3 times that, about the size of the others' at 1 GiB.
names=(kv_cache kv_cache_recency redis memcached sqlite py_index kv_cache_settle30
       redis_settle30)
declare -A flags=(
  [kv_cache]="--workload=kv_cache --size_mb=1024 --settle_s=150 --baseline=zswap"
  [kv_cache_recency]="--workload=kv_cache_recency --size_mb=1024 --settle_s=150 --baseline=zswap"
  [redis]="--workload=redis --size_mb=1024 --settle_s=150 --baseline=zswap"
  [memcached]="--workload=memcached --size_mb=1024 --settle_s=150 --baseline=zswap"
  [sqlite]="--workload=sqlite --size_mb=1024 --settle_s=120 --runs=without,disabled,with --baseline=zswap"
  [py_index]="--workload=py_index --size_mb=512 --settle_s=150 --baseline=zswap"
  [kv_cache_settle30]="--workload=kv_cache --size_mb=1024 --runs=without,disabled,with"
  [redis_settle30]="--workload=redis --size_mb=1024 --repeat=2"
)
chosen=("$@")
((${#chosen[@]})) || chosen=("${names[@]}")
((report_only == 0)) || chosen=()
mkdir -p bench/results
for n in "${chosen[@]}"; do
  [[ -n ${flags[$n]:-} ]] || { echo "unknown experiment $n (known: ${names[*]})" >&2; exit 2; }
  cmd="/usr/bin/python3 bench/footprint.py ${flags[$n]} --out=bench/results/$n"
  echo "$cmd" >"bench/results/$n.command"
  {
    echo "libcoldheap.so sha256 $(sha256sum "$snap/shim/libcoldheap.so" | cut -d' ' -f1)"
    echo "git $(git rev-parse --short HEAD 2>/dev/null || echo unknown), $(git status --short -- shim pool policy 2>/dev/null | wc -l) uncommitted file(s) in shim/ pool/ policy/"
    echo "date $(date -u '+%Y-%m-%d %H:%M UTC')"
  } >"bench/results/$n.build"
  echo "== $cmd"
  # shellcheck disable=SC2086
  /usr/bin/python3 bench/footprint.py ${flags[$n]} --out="bench/results/$n" \
    --bin_dir="$snap" || echo "== $n: the runner reported a failure"
done

# Every result present, re-rendered with the current runner (same table
# format everywhere; nothing is run again).
for n in "${names[@]}"; do
  [[ -d bench/results/$n ]] || continue
  # shellcheck disable=SC2086
  /usr/bin/python3 bench/footprint.py ${flags[$n]} --out="bench/results/$n" \
    --report_only >/dev/null || echo "== $n: could not re-render"
done

corpus=$(bazel-bin/bench/record_gen_check | head -2)
shim_sha=$(sha256sum "$snap/shim/libcoldheap.so" | cut -d' ' -f1)
git_head=$(git rev-parse --short HEAD 2>/dev/null || echo unknown)
git_dirty=$(git status --short -- shim pool policy 2>/dev/null | wc -l)

/usr/bin/python3 - "$root" "$corpus" "$shim_sha" "$git_head" "$git_dirty" "${names[@]}" <<'PY'
import json, os, platform, subprocess, sys, time
root, corpus, shim_sha, git_head, git_dirty = sys.argv[1:6]
names = sys.argv[6:]
res = os.path.join(root, "bench", "results")

def sh(cmd):
    try:
        return subprocess.run(cmd, shell=True, capture_output=True, text=True,
                              timeout=30).stdout.strip()
    except Exception:
        return ""

cpu = sh("grep -m1 'model name' /proc/cpuinfo | cut -d: -f2").strip()
mem = sh("free -g | awk '/Mem:/{print $2}'")
versions = sh("dpkg-query -W -f='${Package} ${Version}\\n' redis-server memcached "
              "libsqlite3-0 gnuplot-nox 2>/dev/null")
out = []
out.append("# Footprint results\n")
out.append("Generated by `bench/run_all_footprint.sh` on %s. Regenerate with that "
           "script; do not edit the generated part by hand (numbers move with the shim); "
           "sections after the marker near the end are hand-written and kept.\n" %
           time.strftime("%Y-%m-%d %H:%M %Z"))
out.append("## Machine\n")
out.append("- kernel %s, %s vCPUs (%s), %s GiB RAM, %s" % (
    platform.release(), os.cpu_count(), cpu, mem, sh(". /etc/os-release; echo $PRETTY_NAME")))
out.append("- packages: " + "; ".join(versions.splitlines()))
out.append("- coldheap measured: see each experiment's `Build:` line (git commit, "
           "libcoldheap.so sha256, date); the tree now: git %s%s" % (
    git_head, " with %s uncommitted file(s) in shim/ pool/ policy/" % git_dirty
    if git_dirty != "0" else ""))
out.append("- records (bench/record_gen.h), `bazel run //bench:record_gen_check`:")
for line in corpus.splitlines():
    out.append("  - " + line)
out.append("")
out.append("## Method\n")
out.append("""Each workload runs without coldheap (`without`: the program as it is), and with
`LD_PRELOAD=libcoldheap.so` (`with`), same seed and flags; some also with the shim
loaded but `COLDHEAP_ENABLE=off` (`disabled`: coldheap's jemalloc without eviction,
which separates the allocator's effect from eviction's). Shim settings of the `with`
run: `COLDHEAP_COLD_AGE=10s COLDHEAP_SCAN_INTERVAL=1s`, every other setting at its
default. Phases: load, then the measured traffic for a settle time not counted (150 s,
or 30 s = 3 cold ages in the `*_settle30` experiments), then 60 s counted (measure). Footprint = PSS of the workload's process (the
server's for redis and memcached) from /proc/PID/smaps_rollup every 100 ms; the pool
is anonymous memory of that process, so it is inside PSS and not added again.
Peak = largest sample up to the end of the measure phase; steady = mean over the
measure phase; saving = 1 - with/without. Compression ratio =
stored_pages*4096/pool_total_size at the end of the measure phase. Throughput and
p50/p99 latency are the workload's own figures for the measure phase. coldheap CPU =
evictor_cpu_us + handler_cpu_us. The machine's 2 vCPUs are shared by the workload,
its load generator and the shim; throughput on it is noisy (±20% run to run).

The limit, measured: each experiment also runs an `oracle`: the `with` settings plus
`COLDHEAP_EVICT_ALL_AT` = the measure start (taken from the `with` run of the same
repetition: the load before the settle phase takes a time no flag fixes). That shim
evicts nothing before, compresses every resident page once at that time, and never
evicts again, so at the end of the measure phase exactly the pages touched since are
resident and the rest is compressed: the footprint of the best any page-granular
policy could do over the measure phase. Oracle footprint = that run's PSS at the end
of the measure phase (mean of its last second); **vs oracle** = with's steady
footprint / oracle footprint (1.00: coldheap's policy is as good as page granularity
allows; what is left above it is the policy's, what is between the oracle and the
`without` run is the data's and the allocator's layout). The table also gives the
distinct pages the oracle faulted back (its refaults at the end of the measure phase)
and when its eviction was due and seen done, relative to the measure start.
See `bench/footprint.py` for the details.

Kernel zswap at equal memory (`zswap`, where the machine allows it: root, swap, zswap,
a memory cgroup): the workload without the shim (as `without`), its process (the
server's) in a memory cgroup of its own with zswap on (the kernel's compressor as it
is, zsmalloc) and a swapfile the runner creates and removes. From the end of the load
to the end of the measure phase the runner steers the cgroup's limit (v1
`memory.limit_in_bytes`, v2 `memory.high`) so that the process's PSS plus the zswap
pool stays at the `with` run's footprint at the end of its measure phase (same
repetition): zswap's footprint is PSS + pool, since the pool is kernel memory outside
the process (on cgroup v1 it is not even charged to the cgroup). Its CPU is the
process's (direct reclaim, compression and decompression run in it), and reclaim CPU
outside it (kswapd and the runner's limit writes) is on its own line. Pages written
to the swapfile itself are on disk, not in the footprint, and counted on their own
line. See `bench/zswap_baseline.py`.

Workloads: `kv_cache` (bench/kv_cache.cc: profiles as structs and strings, Zipfian
0.99 GETs, 5% SETs, single thread); `kv_cache_recency` (the same cache, the same
Zipfian 0.99 but over age, newest first, as session stores and feed caches: new
records keep arriving, one every 1800 s / records, and the oldest expires for each);
`py_index` (bench/py_index.py: a CPython index of user records, dicts of strs by id
and by email, GETs serialized with json.dumps and 5% updates, uniform over a
scattered 10% hot set; every run with `PYTHONMALLOC=malloc PYTHONHASHSEED=0`, so the
runs differ in the shim alone); `redis` (redis-server, loaded with JSON values by
bench/kv_client.cc, then GETs uniform on a scattered 10% hot set, 8 connections);
`memcached` (the same client and data over the memcached text protocol);
`sqlite` (bench/sqlite_workload.cc: in-memory table with two indexes, point reads,
range scans and 5% updates on the most recent 10% of rows).
""")
# One line per experiment: how close coldheap came to the oracle.
summary = []
for name in names:
    w = name.split("_settle")[0]
    jpath = os.path.join(res, name, w + ".json")
    if not os.path.exists(jpath):
        continue
    figs = {f["run"]: f for f in json.load(open(jpath))["figures"]}
    if "oracle" not in figs or "with" not in figs:
        continue
    b = figs.get("without", {}).get("steady_pss_mib")
    a = figs["with"].get("steady_pss_mib")
    o = figs["oracle"].get("oracle_pss_mib")
    z = figs.get("zswap", {})
    tput = lambda f: f.get("result", {}).get("ops_per_s")
    cell = lambda v: "–" if v is None else "{:,.1f}".format(v)
    div = lambda x, y: "–" if x is None or not y else "%.2f" % (x / y)
    summary.append("| %s | %s | %s | %s | %s | %s | **%s** | %s | %s |" % (
        name, cell(b), cell(a), cell(o), div(a, b), div(o, b), div(a, o),
        cell(z.get("steady_pss_mib")), div(tput(figs["with"]), tput(z))))
if summary:
    out.append("## The limit: coldheap against the oracle, and kernel zswap at equal memory\n")
    out.append("Steady footprints (MiB) of each experiment below; oracle = the footprint of "
               "the best page-granular policy over the measure phase; zswap = kernel zswap "
               "held at with's footprint, PSS + its pool (see Method; – where it did not "
               "run).\n")
    out.append("| experiment | without | with | oracle | with / without | oracle / without "
               "| vs oracle (with / oracle) | zswap | throughput, with / zswap |")
    out.append("|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    out += summary
    out.append("")
targets = {"redis": (0.55, 0.90)}


def zswap_line(figs, without_tput):
    """Kernel zswap's figures of the same experiment, beside the targets."""
    z = figs.get("zswap")
    zt = (z or {}).get("result", {}).get("ops_per_s")
    if not z or not zt or not z.get("steady_pss_mib"):
        return " Kernel zswap: not measured in this experiment."
    return (" Kernel zswap at equal memory, same experiment: footprint %.0f%% of without's "
            "at %.0f%% of its throughput." % (
                100 * z["steady_pss_mib"] / figs["without"]["steady_pss_mib"],
                100 * zt / without_tput))


for name in names:
    w = name.split("_settle")[0]
    jpath = os.path.join(res, name, w + ".json")
    if not os.path.exists(jpath):
        continue
    data = json.load(open(jpath))
    cpath = os.path.join(res, name + ".command")
    cmd = open(cpath).read().strip() if os.path.exists(cpath) else "?"
    out.append("## %s\n" % name)
    out.append("Command: `%s`\n" % cmd)
    bpath = os.path.join(res, name + ".build")
    if os.path.exists(bpath):
        out.append("Build: " + "; ".join(open(bpath).read().split("\n")).strip("; ") + "\n")
    out.append(data["settings"] + "\n")
    md = open(os.path.join(res, name, w + ".md")).read()
    md = md.split("\n", 2)[2] if md.startswith("workload") else md
    md = "\n".join(l for l in md.splitlines() if not l.startswith("Plot: "))
    out.append(md.strip() + "\n")
    figs = {f["run"]: f for f in data["figures"]}
    if w in targets and "with" in figs and "without" in figs:
        fp, tp = targets[w]
        a, b = figs["with"].get("steady_pss_mib"), figs["without"].get("steady_pss_mib")
        ta = figs["with"].get("result", {}).get("ops_per_s")
        tb = figs["without"].get("result", {}).get("ops_per_s")
        if a and b and ta and tb:
            ca = figs["with"].get("process_cpu_us_per_op")
            cb = figs["without"].get("process_cpu_us_per_op")
            reps = len(figs["with"].get("repetitions", [1]))
            out.append("Targets: footprint with/without %.0f%% (target <= %.0f%%: %s); "
                       "GET throughput %.0f%% (target >= %.0f%%: %s; %d repetition(s) on a "
                       "noisy shared machine%s).%s\n" % (
                           100 * a / b, 100 * fp, "met" if a / b <= fp else "NOT met",
                           100 * ta / tb, 100 * tp, "met" if ta / tb >= tp else "NOT met",
                           reps, "; server CPU per GET %.0f%% of without's" % (100 * ca / cb)
                           if ca and cb else "", zswap_line(figs, tb)))
    out.append("Plot: `bench/results/%s/%s.png`; samples: `bench/results/%s/%s-*.csv`.\n"
               % (name, w, name, w))
    out.append("![%s](results/%s/%s.png)\n" % (name, name, w))
# Sections written by hand (other commands, observations) follow the
# marker and are kept as they are.
marker = "<!-- Hand-written sections below: run_all_footprint.sh keeps them. -->"
path = os.path.join(root, "bench", "RESULTS.md")
old = open(path).read() if os.path.exists(path) else ""
kept = old[old.index(marker):] if marker in old else marker + "\n"
open(path, "w").write("\n".join(out) + "\n" + kept)
print("wrote bench/RESULTS.md")
PY
