#!/usr/bin/python3
"""coldheap's footprint runner: one workload, run without and with the shim.

    bazel run //bench:footprint -- --workload=kv_cache [--size_mb=512] ...
    bazel run //bench:footprint -- --workload=redis --size_mb=1024
    bazel run //bench:footprint -- --workload=py_index --baseline=zswap   (root)

Workloads: kv_cache (bench/kv_cache.cc, Zipf over scattered keys),
kv_cache_recency (the same, popularity by age: kv_cache --popularity=recency),
redis and memcached (the servers, driven by bench/kv_client.cc), sqlite
(bench/sqlite_workload.cc) and py_index (bench/py_index.py under --python;
every one of its runs, without and zswap included, with PYTHONMALLOC=malloc
and PYTHONHASHSEED=0, so that they differ in the shim alone).

What it does, for each run (same workload, same seed, same flags):
  without  the workload as users run it today: no LD_PRELOAD, no COLDHEAP_*.
  with     LD_PRELOAD=libcoldheap.so with the shim settings below.
  disabled (optional, --runs=without,disabled,with) LD_PRELOAD with
           COLDHEAP_ENABLE=off: plain jemalloc, to separate the allocator's
           own effect from eviction's.
  oracle   (on by default; --oracle=0 skips it) the "with" settings plus
           COLDHEAP_EVICT_ALL_AT=<the measure start>: the shim evicts
           nothing until then, compresses every resident page once, and never
           evicts again. Every page faulted back stays resident, so at the end
           of the measure phase the process holds exactly the pages touched in
           the measure phase resident and the rest compressed: the footprint
           of the best any page-granular policy could do over that window.
           The shim counts that time from its own start, and the measure phase
           begins after the load (which no flag bounds) and --settle_s, so the
           time is the measure start of the run before it in the same
           repetition (with, else disabled, else without; --oracle_at
           overrides it); the oracle always runs last in a repetition.
  zswap    (--baseline=zswap; needs root, swap, zswap and a memory cgroup,
           else one line says why and the column is skipped) no shim, the
           process in a memory cgroup with kernel zswap and a swapfile, the
           cgroup's limit steered so that its PSS + the zswap pool stays at
           the with run's footprint at the end of its measure phase (same
           repetition; --zswap_target_mib overrides it): the two at equal
           memory. It runs after the with run. See bench/zswap_baseline.py.
For a server workload (redis, memcached) the shim (and the zswap cgroup) applies to the server only;
the load generator (//bench:kv_client) always runs plain.

Shim settings of the "with" run (--cold_age, --scan_interval, --shim_env):
  COLDHEAP_COLD_AGE=10s, COLDHEAP_SCAN_INTERVAL=1s, COLDHEAP_STATS=<out>/...
  and nothing else: every other COLDHEAP_* keeps its default. The cold age is
  shorter than the default 30s so that a run takes minutes, not a quarter of
  an hour; the workloads' settle phase is 3 cold ages by default, and the
  workloads themselves take no shim-specific setting.

Sampling, every --sample_ms (100 ms) while the measured process lives (the
workload's own process, or the server's):
  /proc/PID/smaps_rollup  Rss and Pss
  /proc/PID/stat          the process's CPU time (all threads)
  /tmp/coldheap-UID/PID.stats  the shim's live statistics (rewritten at each
                          scan): pool_total_size, stored_pages, refaults,
                          evicted_pages, evictor_cpu_us, handler_cpu_us
The workload prints PHASE lines (load, settle, measure, done), TICK lines
(ops per second) and a last RESULT {json} line (bench/workload_util.h); each
sample is tagged with the phase in force.

Figures (per run):
  footprint     = PSS. The pool's memory is anonymous memory mapped by the
                  process, so it is already inside RSS and PSS: adding
                  pool_total_size again would count it twice. It is reported
                  on its own line. The zswap run's footprint is PSS + the
                  zswap pool (kernel memory outside the process; the CSV's
                  footprint_kib, pool_total_size and stored_pages; refaults
                  and evicted_pages are zswap's loads and stores, zswpin and
                  zswpout).
  peak          = the largest sample from the start to the end of the measure
                  phase (load included; the teardown after it is not: a
                  program freeing its whole heap at exit touches every page).
  steady state  = the mean of the samples of the measure phase: the last
                  --measure_s seconds, after the load and --settle_s seconds
                  of the same traffic (not counted) have passed.
  saving        = 1 - with/without, of steady state (and of peak).
  compression   = stored_pages * 4096 / pool_total_size, at the end of the
                  measure phase (zswap's way; same-filled pages excluded): the
                  pool's packing and fragmentation included. Beside it, the
                  compressor's own ratio, stored_pages * 4096 /
                  compressed_bytes.
  oracle footprint = the oracle run's PSS at the end of the measure phase
                  (the mean of its last second): the pages touched since the
                  eviction resident, plus the rest in its pool at the
                  compression ratio it measured. Not the mean over the measure
                  phase, which would count the first seconds after the
                  eviction, before the touched pages are back, as if a policy
                  could know them without touching them.
  vs oracle     = with's steady state / oracle footprint (1.00: as good as
                  any page-granular policy). Beside it: the distinct pages
                  the oracle faulted back (its refaults at the end of the
                  measure phase, from the live statistics: the final
                  statistics file also counts the teardown's refaults), and
                  when its eviction was due and when it was seen done, from
                  its measure start; a note under the table when they are far
                  off.
  throughput, p50, p99 = the workload's RESULT for the measure phase.
  coldheap CPU  = evictor_cpu_us + handler_cpu_us: in total, and during the
                  measure phase as a percentage of one core.
  process CPU   = utime + stime of the measured process; in the zswap run
                  that includes the kernel's direct reclaim, compression and
                  decompression done in it, and the reclaim done outside it
                  (kswapd, and the runner's v1 limit writes, which reclaim in
                  the writer) is on a line of its own.

Outputs in --out (default: <workspace>/bench/results/<workload>/ under
`bazel run`, ./footprint-results/<workload>/ otherwise):
  <workload>-<run>.csv    the samples of one run
  <workload>-<run>.log    the workload's stdout (and the server's log)
  <workload>-<run>.stats  the shim's final statistics (COLDHEAP_STATS)
  <workload>.md           the table
  <workload>.json         the same figures, machine-readable
  <workload>.png          footprint (and throughput) over time, all runs
Exit status: 0 when every run finished and its workload reported success.
"""

import argparse
import csv
import json
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time

import zswap_baseline

WORKLOADS = ("kv_cache", "kv_cache_recency", "redis", "memcached", "sqlite", "py_index")
SERVER_WORKLOADS = ("redis", "memcached")
# The local workloads' commands: a binary in <bin_dir>/bench (or a script
# run by --python) and the flags that make the workload what its name says.
LOCAL_WORKLOADS = {
    "kv_cache": ("kv_cache", []),
    "kv_cache_recency": ("kv_cache", ["--popularity=recency"]),
    "sqlite": ("sqlite_workload", []),
    "py_index": ("py_index.py", []),
}
# Every run of the Python workload, the one without coldheap included, gets
# these, so the runs differ in the shim alone: CPython's small objects go
# through malloc (otherwise they live in pymalloc's arenas, which coldheap
# never sees; `coldheap run` sets the same), and str hashes are the same
# from run to run (dict layouts too).
PYTHON_ENV = {"PYTHONMALLOC": "malloc", "PYTHONHASHSEED": "0"}
RUN_LABELS = {
    "without": "without coldheap",
    "disabled": "shim loaded, COLDHEAP_ENABLE=off",
    "with": "with coldheap",
    "oracle": "oracle (all evicted once at the measure start)",
    "zswap": "kernel zswap at equal memory",
}
CSV_FIELDS = [
    "t_s", "phase", "rss_kib", "pss_kib", "pool_total_size", "stored_pages",
    "same_filled_pages", "evicted_pages", "refaults", "evictor_cpu_us",
    "handler_cpu_us", "process_cpu_s", "ops_per_s", "compressed_bytes",
    "driver_cpu_s", "system_busy_s", "steal_s", "resident_pages",
    # footprint_kib = pss_kib, plus the zswap pool in the zswap run; the
    # rest is the zswap run's alone (bench/zswap_baseline.py).
    "footprint_kib", "zswap_written_back", "swapfile_out_pages", "swapfile_in_pages",
    "cgroup_usage_bytes", "cgroup_limit_bytes", "reclaim_cpu_s",
]
MIB = 1024.0 * 1024.0


# ---------------------------------------------------------------- locating


def runfiles_root():
    """The runfiles directory of //bench:footprint, if run through Bazel."""
    d = os.environ.get("FOOTPRINT_RUNFILES")
    if d and os.path.isdir(d):
        return d
    return None


def default_bin_dir():
    """Where the built workloads and the shim are: runfiles, else bazel-bin."""
    rf = runfiles_root()
    if rf:
        return os.path.join(rf, "coldheap")
    here = os.path.dirname(os.path.realpath(__file__))
    return os.path.join(os.path.dirname(here), "bazel-bin")


def resolve_user_path(p):
    """A path as the user typed it: relative to where `bazel run` was run."""
    if os.path.isabs(p):
        return p
    base = os.environ.get("BUILD_WORKING_DIRECTORY", os.getcwd())
    return os.path.join(base, p)


def default_out_dir(workload):
    ws = os.environ.get("BUILD_WORKSPACE_DIRECTORY")
    if ws:
        return os.path.join(ws, "bench", "results", workload)
    return os.path.join(os.getcwd(), "footprint-results", workload)


# ---------------------------------------------------------------- sampling


def read_smaps_rollup(pid):
    """(rss_kib, pss_kib) of a live process, or None once it is gone."""
    try:
        with open("/proc/%d/smaps_rollup" % pid) as f:
            text = f.read()
    except OSError:
        return None
    rss = pss = None
    for line in text.splitlines():
        parts = line.split()
        if len(parts) >= 2 and parts[0] == "Rss:":
            rss = int(parts[1])
        elif len(parts) >= 2 and parts[0] == "Pss:":
            pss = int(parts[1])
    if rss is None or pss is None:
        return None
    return rss, pss


CLK_TCK = os.sysconf("SC_CLK_TCK")


def read_process_cpu_s(pid):
    try:
        with open("/proc/%d/stat" % pid) as f:
            text = f.read()
    except OSError:
        return None
    fields = text[text.rfind(")") + 2:].split()
    # utime and stime are fields 14 and 15 of stat(5), 12 and 13 after ")".
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def read_system_cpu():
    """(busy_s, steal_s) of the whole machine since boot, from /proc/stat."""
    try:
        with open("/proc/stat") as f:
            fields = [int(x) for x in f.readline().split()[1:]]
    except (OSError, ValueError):
        return None
    # user nice system idle iowait irq softirq steal [guest guest_nice]
    busy = sum(fields[:8]) - fields[3] - fields[4]
    steal = fields[7] if len(fields) > 7 else 0
    return busy / CLK_TCK, steal / CLK_TCK


def read_stats_file(path):
    """The shim's "name value" lines as a dict of numbers; {} if absent."""
    try:
        with open(path) as f:
            text = f.read()
    except OSError:
        return {}
    out = {}
    for line in text.splitlines():
        parts = line.split()
        if len(parts) != 2 or line.startswith("#"):
            continue
        try:
            out[parts[0]] = float(parts[1]) if "." in parts[1] else int(parts[1])
        except ValueError:
            pass
    return out


def live_stats_path(pid):
    return "/tmp/coldheap-%d/%d.stats" % (os.getuid(), pid)


class RunState:
    """What the reader thread learns from the workload's stdout."""

    def __init__(self):
        self.lock = threading.Lock()
        self.phase = "start"
        self.phase_times = {}  # phase -> t_s when it began
        self.ops_per_s = ""
        self.result = None
        self.lines = []


class Sampler(threading.Thread):
    def __init__(self, pid, t0, interval_s, state):
        super().__init__(daemon=True)
        self.pid = pid
        self.t0 = t0
        self.interval_s = interval_s
        self.state = state
        self.samples = []
        self.stop_event = threading.Event()
        self.last_stats = {}
        self.driver_pid = None  # the load generator, when it is another process
        self.zswap = None  # the zswap run's ZswapBaseline

    def sample_once(self):
        mem = read_smaps_rollup(self.pid)
        if mem is None:
            return False
        t = time.monotonic() - self.t0
        stats = read_stats_file(live_stats_path(self.pid))
        if stats:
            self.last_stats = stats
        else:
            stats = self.last_stats
        cpu = read_process_cpu_s(self.pid)
        driver_cpu = read_process_cpu_s(self.driver_pid) if self.driver_pid else None
        system = read_system_cpu()
        with self.state.lock:
            phase = self.state.phase
            ops = self.state.ops_per_s
        row = {
            "t_s": round(t, 3),
            "phase": phase,
            "rss_kib": mem[0],
            "pss_kib": mem[1],
            "pool_total_size": stats.get("pool_total_size", ""),
            "stored_pages": stats.get("stored_pages", ""),
            "same_filled_pages": stats.get("same_filled_pages", ""),
            "evicted_pages": stats.get("evicted_pages", ""),
            "refaults": stats.get("refaults", ""),
            "evictor_cpu_us": stats.get("evictor_cpu_us", ""),
            "handler_cpu_us": stats.get("handler_cpu_us", ""),
            "process_cpu_s": "" if cpu is None else round(cpu, 3),
            "ops_per_s": ops,
            "compressed_bytes": stats.get("compressed_bytes", ""),
            "driver_cpu_s": "" if driver_cpu is None else round(driver_cpu, 3),
            "system_busy_s": "" if system is None else round(system[0], 2),
            "steal_s": "" if system is None else round(system[1], 2),
            "resident_pages": stats.get("resident_pages", ""),
            "footprint_kib": mem[1],
        }
        if self.zswap is not None:
            row.update(self.zswap.sample(mem[1], phase))
        self.samples.append({k: row.get(k, "") for k in CSV_FIELDS})
        return True

    def run(self):
        next_t = time.monotonic()
        while not self.stop_event.is_set():
            if not self.sample_once():
                return
            next_t += self.interval_s
            delay = next_t - time.monotonic()
            if delay < 0:  # fell behind (a slow read): skip, do not burst
                next_t = time.monotonic()
                delay = 0
            self.stop_event.wait(delay)


def read_workload_output(proc, t0, state, log):
    """Follows the workload's stdout: PHASE, TICK and RESULT lines."""
    for raw in proc.stdout:
        line = raw.rstrip("\n")
        log.write(line + "\n")
        t = time.monotonic() - t0
        parts = line.split(" ", 1)
        with state.lock:
            if parts[0] == "PHASE" and len(parts) == 2:
                state.phase = parts[1].strip()
                state.phase_times[state.phase] = round(t, 3)
            elif parts[0] == "TICK" and len(parts) == 2:
                fields = parts[1].split()
                if len(fields) == 2:
                    state.ops_per_s = fields[1]
            elif parts[0] == "RESULT" and len(parts) == 2:
                try:
                    state.result = json.loads(parts[1])
                except ValueError:
                    pass
            else:
                state.lines.append(line)
    log.flush()


# ---------------------------------------------------------------- processes


def free_port():
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for_port(port, proc, timeout_s):
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            return False
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return True
        except OSError:
            time.sleep(0.1)
    return False


def stop_process(proc, timeout_s=15):
    """SIGTERM, then SIGKILL: only this one process, by its id."""
    if proc.poll() is not None:
        return
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout=timeout_s)


def clean_env():
    """The environment without LD_PRELOAD or any COLDHEAP_* setting."""
    env = {k: v for k, v in os.environ.items()
           if k != "LD_PRELOAD" and not k.startswith("COLDHEAP_")}
    return env


def run_env(args, run, out_dir, tag, evict_all_at=None):
    """The measured process's environment. The oracle run is the "with" run
    plus COLDHEAP_EVICT_ALL_AT=evict_all_at (a duration from the shim's start)."""
    env = clean_env()
    if args.workload == "py_index":
        env.update(PYTHON_ENV)
    if run in ("without", "zswap"):
        return env
    env["LD_PRELOAD"] = args.shim
    if run == "disabled":
        env["COLDHEAP_ENABLE"] = "off"
        return env
    env["COLDHEAP_COLD_AGE"] = args.cold_age
    env["COLDHEAP_SCAN_INTERVAL"] = args.scan_interval
    env["COLDHEAP_STATS"] = os.path.join(out_dir, "%s-%s.stats" % (args.workload, tag))
    for kv in args.shim_env:
        k, _, v = kv.partition("=")
        env[k] = v
    if run == "oracle" and evict_all_at is not None:
        env["COLDHEAP_EVICT_ALL_AT"] = evict_all_at
    return env


def workload_flags(args):
    return ["--size_mb=%d" % args.size_mb, "--seed=%d" % args.seed,
            "--settle_s=%d" % args.settle_s, "--measure_s=%d" % args.measure_s]


def server_command(args, port, out_dir, tag):
    if args.workload == "redis":
        return [args.redis_server, "--port", str(port), "--bind", "127.0.0.1",
                "--save", "", "--appendonly", "no", "--daemonize", "no",
                "--dir", out_dir,
                "--logfile", os.path.join(out_dir, "redis-%s.server.log" % tag)]
    mem_mb = max(1024, 2 * args.size_mb + 256)  # room for item headers: no eviction
    cmd = [args.memcached, "-l", "127.0.0.1", "-p", str(port), "-U", "0",
           "-m", str(mem_mb), "-t", "2", "-c", "1024"]
    if os.geteuid() == 0:
        cmd += ["-u", "root"]
    return cmd


def local_command(args):
    """The command of a workload that is one process (not a server's)."""
    name, flags = LOCAL_WORKLOADS[args.workload]
    path = os.path.join(args.bin_dir, "bench", name)
    if name.endswith(".py"):
        if not os.path.exists(path):  # not built: it is a source file
            path = os.path.join(os.path.dirname(os.path.realpath(__file__)), name)
        return [args.python, path] + flags
    return [path] + flags


def one_run(args, run, tag, out_dir, evict_all_at=None, zswap=None):
    """Runs the workload once; returns (samples, state, ok, note). `tag`
    names its files: the run, and the repetition when there are several.
    `zswap` (the zswap run): the ZswapBaseline the measured process runs in."""
    env = run_env(args, run, out_dir, tag, evict_all_at)
    confine = zswap.command if zswap is not None else list
    stats_file = env.get("COLDHEAP_STATS")
    if stats_file and os.path.exists(stats_file):
        os.remove(stats_file)
    log_path = os.path.join(out_dir, "%s-%s.log" % (args.workload, tag))
    state = RunState()
    server = None
    t0 = time.monotonic()
    limit_s = args.load_timeout_s + args.settle_s + args.measure_s + 120
    with open(log_path, "w") as log:
        if args.workload in SERVER_WORKLOADS:
            port = free_port()
            cmd = server_command(args, port, out_dir, tag)
            log.write("# server: %s\n" % " ".join(repr(c) if c == "" else c for c in cmd))
            server_log = open(os.path.join(out_dir, "%s-%s.server.out" % (args.workload, tag)),
                              "w")
            server = subprocess.Popen(confine(cmd), env=env, stdout=server_log,
                                      stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
            if not wait_for_port(port, server, 20):
                stop_process(server)
                return [], state, False, "the server did not listen on 127.0.0.1:%d" % port
            measured_pid = server.pid
            proto = "redis" if args.workload == "redis" else "memcache"
            driver_cmd = [os.path.join(args.bin_dir, "bench", "kv_client"),
                          "--proto=" + proto, "--port=%d" % port] + workload_flags(args)
            driver_env = clean_env()
        else:
            driver_cmd = local_command(args) + workload_flags(args)
            driver_env = env
        driver_cmd += args.workload_arg
        log.write("# workload: %s\n" % " ".join(driver_cmd))
        log.write("# env: %s\n" % " ".join(
            "%s=%s" % (k, v) for k, v in sorted(env.items())
            if k == "LD_PRELOAD" or k.startswith("COLDHEAP_") or k in PYTHON_ENV))
        if zswap is not None:
            log.write("# zswap: %s\n" % zswap.describe())
        log.flush()
        err_path = os.path.join(out_dir, "%s-%s.err" % (args.workload, tag))
        err_file = open(err_path, "w")
        driver = subprocess.Popen(confine(driver_cmd) if server is None else driver_cmd,
                                  env=driver_env, stdout=subprocess.PIPE,
                                  stderr=err_file, stdin=subprocess.DEVNULL,
                                  text=True, bufsize=1)
        if server is None:
            measured_pid = driver.pid
        sampler = Sampler(measured_pid, t0, args.sample_ms / 1000.0, state)
        sampler.zswap = zswap
        if server is not None:
            sampler.driver_pid = driver.pid
        sampler.start()
        reader = threading.Thread(target=read_workload_output,
                                  args=(driver, t0, state, log), daemon=True)
        reader.start()
        note = ""
        try:
            driver.wait(timeout=limit_s)
        except subprocess.TimeoutExpired:
            note = "the workload ran past %d s and was stopped" % limit_s
            stop_process(driver)
        except BaseException:  # Ctrl-C, SIGTERM: no workload outlives the runner
            for proc in (driver, server):
                if proc is not None and proc.poll() is None:
                    proc.kill()
                    proc.wait()
            reader.join(timeout=10)
            raise
        reader.join(timeout=10)
        err_file.close()
        with open(err_path) as fh:
            err = fh.read()
        os.remove(err_path)
        if err:
            log.write("# stderr:\n" + err)
        if server is not None:
            sampler.sample_once()  # the server's last word before it stops
            sampler.stop_event.set()
            sampler.join(timeout=5)
            stop_process(server)
            server_log.close()
        else:
            sampler.stop_event.set()
            sampler.join(timeout=5)
    ok = driver.returncode == 0 and state.result is not None and not note
    if not ok and not note:
        note = "the workload exited with status %s%s" % (
            driver.returncode, ": " + err.strip().splitlines()[-1] if err.strip() else "")
    return sampler.samples, state, ok, note


def zswap_run(args, tag, done_figs):
    """The zswap run of a repetition: (samples, state, ok, note, target MiB).
    Its PSS + pool target is the with run's footprint at the end of its
    measure phase; its swapfile holds the without run's peak footprint (what
    could all be swapped) and 256 MiB more."""
    target = args.zswap_target_mib or done_figs.get("with", {}).get("end_pss_mib")
    if not target:
        return [], RunState(), False, "no with run to take the target footprint from " \
            "(run it, or give --zswap_target_mib)", None
    peak = done_figs.get("without", {}).get("peak_pss_mib") or 4 * args.size_mb
    try:
        with zswap_baseline.ZswapBaseline(target * MIB, (peak + 256) * MIB, args.zswap_dir,
                                          print) as z:
            print("footprint:   %s" % z.describe(), flush=True)
            samples, state, ok, note = one_run(args, "zswap", tag, args.out, zswap=z)
            if z.oom_kills():
                note += ("; the cgroup's OOM killer killed it: zswap could not hold it at "
                         "this footprint")
    except OSError as e:
        return [], RunState(), False, "zswap set-up failed: %s" % e, target
    return samples, state, ok, note, target


def logged_zswap_target(args, tag, out_dir):
    """The target an earlier zswap run logged ("# zswap:" line)."""
    try:
        with open(os.path.join(out_dir, "%s-%s.log" % (args.workload, tag))) as fh:
            for line in fh:
                m = re.match(r"# zswap: .* = ([0-9.]+) MiB", line)
                if m:
                    return float(m.group(1))
    except OSError:
        pass
    return None


def oracle_time(args, measure_starts):
    """COLDHEAP_EVICT_ALL_AT of the oracle run, and where it comes from:
    --oracle_at, else the measure start of a run before it in this repetition
    (seconds since that run's process started; the shim counts from its own
    start). The load before the settle phase takes a time no flag fixes, so
    the settle time alone would evict too early: the measure phase starts at
    load + settle. The "with" run is preferred: its load ran under the same
    shim, userfaultfd and all."""
    if args.oracle_at:
        return args.oracle_at, "--oracle_at"
    for r in ("with", "disabled", "without"):
        t = measure_starts.get(r)
        if t is not None:
            return "%dms" % round(t * 1000), "the measure start of the %s run" % r
    return None, "no run before the oracle reached its measure phase: no time to evict at"


def logged_env(args, tag, out_dir):
    """The COLDHEAP_* settings an earlier run logged ("# env:" line)."""
    env = {}
    try:
        with open(os.path.join(out_dir, "%s-%s.log" % (args.workload, tag))) as fh:
            for line in fh:
                if line.startswith("# env: "):
                    for kv in line[len("# env: "):].split():
                        k, _, v = kv.partition("=")
                        env[k] = v
                    break
    except OSError:
        pass
    return env


def load_run(args, run, tag, out_dir):
    """A run made earlier, read back from its CSV and log (--report_only)."""
    state = RunState()
    samples = []
    path = os.path.join(out_dir, "%s-%s.csv" % (args.workload, tag))
    try:
        with open(path, newline="") as fh:
            for row in csv.DictReader(fh):
                row["t_s"] = float(row["t_s"])
                row["rss_kib"] = int(row["rss_kib"])
                row["pss_kib"] = int(row["pss_kib"])
                for k in CSV_FIELDS:
                    row.setdefault(k, "")
                # CSVs from before the zswap run: the footprint was the PSS.
                row["footprint_kib"] = int(row["footprint_kib"] or row["pss_kib"])
                samples.append(row)
                state.phase_times.setdefault(row["phase"], row["t_s"])
    except OSError as e:
        return [], state, False, "no earlier run: %s" % e
    try:
        with open(os.path.join(out_dir, "%s-%s.log" % (args.workload, tag))) as fh:
            for line in fh:
                if line.startswith("RESULT "):
                    state.result = json.loads(line[len("RESULT "):])
    except (OSError, ValueError):
        pass
    ok = state.result is not None
    return samples, state, ok, "" if ok else "no RESULT line in the earlier run's log"


# ---------------------------------------------------------------- figures


def num(v):
    return None if v == "" or v is None else float(v)


def duration_s(text):
    """A COLDHEAP_* duration (500ms, 30s, 2m) in seconds; None if not one."""
    m = re.fullmatch(r"\s*([0-9]+)\s*(ms|s|m)?\s*", text or "", re.IGNORECASE)
    if not m or (m.group(2) is None and m.group(1) != "0"):
        return None
    return int(m.group(1)) * {"ms": 0.001, "s": 1.0, "m": 60.0}[(m.group(2) or "s").lower()]


def summarize(samples, state, run, stats_file, evict_all_at=None):
    phases = state.phase_times
    measure = [s for s in samples if s["phase"] == "measure"]
    f = {"run": run, "samples": len(samples), "phase_times": phases,
         "last_t_s": samples[-1]["t_s"] if samples else 0}
    # The workload's life: load, settle and measure; not its teardown after
    # "done" (freeing a whole heap faults every evicted page back in).
    live = [s for s in samples if s["phase"] != "done"]
    # The *_pss_mib figures are footprints: the PSS, and in the zswap run the
    # zswap pool too (kernel memory outside the process; footprint_kib).
    if live:
        f["peak_pss_mib"] = max(s["footprint_kib"] for s in live) / 1024.0
        f["peak_rss_mib"] = max(s["rss_kib"] for s in live) / 1024.0
    if measure:
        f["steady_pss_mib"] = sum(s["footprint_kib"] for s in measure) / len(measure) / 1024.0
        f["steady_rss_mib"] = sum(s["rss_kib"] for s in measure) / len(measure) / 1024.0
        f["steady_samples"] = len(measure)
        first, last = measure[0], measure[-1]
        pool = num(last["pool_total_size"])
        stored = num(last["stored_pages"])
        if pool is not None:
            pools = [num(s["pool_total_size"]) for s in measure
                     if num(s["pool_total_size"]) is not None]
            f["pool_end_mib"] = pool / MIB
            f["pool_steady_mib"] = sum(pools) / len(pools) / MIB
            f["stored_pages_end"] = stored
            if pool and stored:
                f["compression_ratio"] = stored * 4096.0 / pool
            cbytes = num(last["compressed_bytes"])
            if cbytes and stored:
                f["lz4_ratio"] = stored * 4096.0 / cbytes
        for k in ("refaults", "evicted_pages"):
            a, b = num(first[k]), num(last[k])
            if a is not None and b is not None:
                f[k + "_measure"] = b - a
        a = (num(first["evictor_cpu_us"]) or 0) + (num(first["handler_cpu_us"]) or 0)
        b = (num(last["evictor_cpu_us"]) or 0) + (num(last["handler_cpu_us"]) or 0)
        span = last["t_s"] - first["t_s"]
        if num(last["evictor_cpu_us"]) is not None and span > 0:
            f["coldheap_cpu_measure_pct"] = (b - a) / 1e6 / span * 100.0
        pa, pb = num(first["process_cpu_s"]), num(last["process_cpu_s"])
        if pa is not None and pb is not None and span > 0:
            f["process_cpu_measure_pct"] = (pb - pa) / span * 100.0
            # What else ran on the machine: all CPUs' busy time less the
            # measured process and its load generator.
            sa, sb = num(first.get("system_busy_s")), num(last.get("system_busy_s"))
            if sa is not None and sb is not None:
                da, db = num(first.get("driver_cpu_s")), num(last.get("driver_cpu_s"))
                driver = (db - da) if da is not None and db is not None else 0.0
                f["other_cpu_measure_pct"] = max(0.0, (sb - sa) - (pb - pa) - driver) / span * 100
                ta, tb = num(first.get("steal_s")), num(last.get("steal_s"))
                if ta is not None and tb is not None:
                    f["steal_measure_pct"] = (tb - ta) / span * 100
            ops = (state.result or {}).get("ops_per_s")
            if ops:
                # Less noisy than throughput on a shared 2-vCPU machine.
                f["process_cpu_us_per_op"] = (pb - pa) / span / ops * 1e6
    if measure:
        # The end of the measure phase: the mean of its last second.
        tail = [s for s in measure if s["t_s"] >= measure[-1]["t_s"] - 1.0]
        f["end_pss_mib"] = sum(s["footprint_kib"] for s in tail) / len(tail) / 1024.0
    if run == "zswap" and measure:
        summarize_zswap(f, measure)
    if run == "oracle":
        summarize_oracle(f, samples, measure, phases, duration_s(evict_all_at))
    final = read_stats_file(stats_file) if stats_file else {}
    if not final and samples and num(samples[-1]["evictor_cpu_us"]) is not None:
        final = {k: num(samples[-1][k]) for k in ("evictor_cpu_us", "handler_cpu_us")}
    if final:
        f["evictor_cpu_s"] = final.get("evictor_cpu_us", 0) / 1e6
        f["handler_cpu_s"] = final.get("handler_cpu_us", 0) / 1e6
        f["coldheap_cpu_s"] = f["evictor_cpu_s"] + f["handler_cpu_s"]
        f["final_stats"] = final
    if state.result:
        f["result"] = state.result
    return f


def summarize_zswap(f, measure):
    """The zswap run's own figures over the measure phase (the kernel's
    counters are machine-wide; zswap_baseline.py says why they are the
    workload's)."""
    first, last = measure[0], measure[-1]
    f["steady_resident_pss_mib"] = sum(s["pss_kib"] for s in measure) / len(measure) / 1024.0
    limits = [num(s["cgroup_limit_bytes"]) for s in measure if num(s["cgroup_limit_bytes"])]
    if limits:
        f["zswap_limit_end_mib"] = limits[-1] / MIB
    for key, name in (("zswap_written_back", "zswap_written_back_measure"),
                      ("swapfile_out_pages", "swapfile_out_pages_measure"),
                      ("swapfile_in_pages", "swapfile_in_pages_measure")):
        a, b = num(first[key]), num(last[key])
        if a is not None and b is not None:
            f[name] = b - a
    a, b = num(first["reclaim_cpu_s"]), num(last["reclaim_cpu_s"])
    span = last["t_s"] - first["t_s"]
    if a is not None and b is not None and span > 0:
        f["reclaim_cpu_measure_pct"] = (b - a) / span * 100.0


def summarize_oracle(f, samples, measure, phases, due_s):
    """The oracle run's own figures. Its shim evicted nothing until
    COLDHEAP_EVICT_ALL_AT, then every resident page at once, and never again,
    so every page faulted back after that stays resident: at the end of the
    measure phase the process holds the pages touched since the eviction
    (faulted back, or newly allocated) resident and the rest compressed, which
    is the footprint of the best page-granular policy for that window."""
    # The live statistics are rewritten at the end of each scan, so the first
    # sample showing evicted pages comes after the whole eviction pass.
    done = next((s for s in samples if (num(s["evicted_pages"]) or 0) > 0), None)
    ms = phases.get("measure")
    if due_s is not None and ms is not None:
        # The shim counts from its own start, a few ms after the runner's t0;
        # it starts the pass at its first scan after that time and the pass
        # takes a while (pages are evicted as it sweeps the heap).
        f["oracle_due_after_measure_start_s"] = due_s - ms
    if done is None:
        f["oracle_problem"] = "the shim never evicted (COLDHEAP_EVICT_ALL_AT not honoured?)"
        return
    f["oracle_evicted_t_s"] = done["t_s"]
    f["oracle_evicted_pages"] = num(done["evicted_pages"])
    if ms is not None:
        f["oracle_evicted_after_measure_start_s"] = done["t_s"] - ms
    if not measure:
        return
    last = measure[-1]
    if done["t_s"] > last["t_s"]:
        f["oracle_problem"] = "the eviction came after the measure phase"
        return
    f["oracle_pss_mib"] = f.get("end_pss_mib")
    # Each refault is a distinct page: a page faulted back is never evicted
    # again. Pages first touched after the eviction (new allocations) are
    # resident too but are not refaults.
    refaults = num(last["refaults"])
    if refaults is not None:
        f["oracle_pages_faulted_back"] = refaults
    resident = num(last.get("resident_pages"))
    if resident is not None:
        f["oracle_resident_pages_end"] = resident


def median(values):
    v = sorted(values)
    n = len(v)
    return v[n // 2] if n % 2 else (v[n // 2 - 1] + v[n // 2]) / 2.0


def combine(figs):
    """One run's figures over its repetitions: the median of each number
    (the first repetition's phase times, for the plot)."""
    if len(figs) == 1:
        f = dict(figs[0])
        f["repetitions"] = [figs[0]]
        return f
    f = {"run": figs[0]["run"], "phase_times": figs[0]["phase_times"],
         "last_t_s": figs[0]["last_t_s"],
         "ok": all(x["ok"] for x in figs),
         "note": "; ".join(x["tag"] + ": " + x["note"] for x in figs if x["note"]),
         "repetitions": figs}
    keys = set()
    for x in figs:
        keys.update(k for k, v in x.items() if isinstance(v, (int, float))
                    and not isinstance(v, bool))
    for k in keys:
        vals = [x[k] for x in figs if isinstance(x.get(k), (int, float))]
        if vals:
            f[k] = median(vals)
    rkeys = set()
    for x in figs:
        rkeys.update(k for k, v in x.get("result", {}).items() if isinstance(v, (int, float)))
    f["result"] = {k: median([x["result"][k] for x in figs if k in x.get("result", {})])
                   for k in rkeys}
    return f


def fmt(v, digits=1):
    if v is None:
        return "–"
    if isinstance(v, str):
        return v
    return "{:,.{}f}".format(v, digits)


def ratio(a, b, digits=2):
    if a is None or b is None or b == 0:
        return "–"
    return "{:.{}f}".format(a / b, digits)


def markdown_table(args, figures, png_name):
    runs = [f["run"] for f in figures]
    base = figures[0]
    withf = next((f for f in figures if f["run"] == "with"), None)
    zswapf = next((f for f in figures if f["run"] == "zswap"), None)
    # The ratio columns: with against without, and against zswap at equal memory.
    pairs = [(withf, base)] + ([(withf, zswapf)] if zswapf is not None else [])
    head = "| | " + " | ".join(RUN_LABELS[r] for r in runs) + " | with / without |" + (
        " with / zswap |" if zswapf is not None else "")
    sep = "|---|" + "---:|" * (len(runs) + len(pairs))
    no_ratio = " |" * len(pairs)

    def res(f, k):
        return f.get("result", {}).get(k)

    rows = []

    def row(name, key_fn, digits=1, compare=True):
        vals = [key_fn(f) for f in figures]
        cmp = [ratio(key_fn(a), key_fn(b)) if compare and a is not None else ""
               for a, b in pairs]
        rows.append("| %s | %s | %s |" % (name, " | ".join(fmt(v, digits) for v in vals),
                                          " | ".join(cmp)))

    def only(run, value):
        return "| %s |%s" % (" | ".join(value if r == run else "" for r in runs), no_ratio)

    fp = "PSS" if zswapf is None else "PSS; zswap: PSS + its pool"
    row("peak footprint (%s, MiB)" % fp, lambda f: f.get("peak_pss_mib"))
    row("steady footprint (mean %s in the measure phase, MiB)" % fp,
        lambda f: f.get("steady_pss_mib"))
    row("steady RSS (MiB)", lambda f: f.get("steady_rss_mib"))
    for name, key, bold in (("**saving, steady state** (1 - run/without)", "steady_pss_mib", True),
                            ("saving, peak", "peak_pss_mib", False)):
        def saving(f):
            a, b = f.get(key), base.get(key)
            if f["run"] not in ("with", "zswap"):
                return ""
            return "–" if not (a and b) else ("**{:.1%}**" if bold else "{:.1%}").format(1 - a / b)
        rows.append("| %s | %s |%s" % (name, " | ".join(saving(f) for f in figures), no_ratio))
    if zswapf is not None:
        rows.append("| zswap: cgroup limit at the end of the measure phase (MiB; steered so "
                    "that PSS + pool = with's end footprint, %s MiB) " % fmt(
                        zswapf.get("zswap_target_mib")) +
                    only("zswap", fmt(zswapf.get("zswap_limit_end_mib"))))
        rows.append("| zswap: pages written to the swapfile (disk) in the measure phase: "
                    "pswpout (zswap writebacks) " + only("zswap", "%s (%s)" % (
                        fmt(zswapf.get("swapfile_out_pages_measure"), 0),
                        fmt(zswapf.get("zswap_written_back_measure"), 0))))
        rows.append("| zswap: pages read from the swapfile (disk) in the measure phase " +
                    only("zswap", fmt(zswapf.get("swapfile_in_pages_measure"), 0)))
    oracle = next((f for f in figures if f["run"] == "oracle"), None)
    if oracle is not None:
        o = oracle.get("oracle_pss_mib")
        rows.append("| oracle footprint: the pages touched from the measure start resident, "
                    "the rest compressed (PSS, end of measure, MiB) " + only("oracle", fmt(o)))
        if withf is not None:
            s = withf.get("steady_pss_mib")
            rows.append("| **vs oracle** (with's steady footprint / oracle footprint; 1.00 = "
                        "the best any page-granular policy could do) " +
                        only("with", "**%s**" % ratio(s, o)))
        pages = oracle.get("oracle_pages_faulted_back")
        rows.append("| oracle: distinct pages touched, faulted back after its eviction "
                    "(refaults, end of measure) " +
                    only("oracle", "–" if pages is None else "%s (%s MiB)" % (
                        fmt(pages, 0), fmt(pages * 4096 / MIB))))
        rows.append("| oracle: resident heap pages, end of measure " +
                    only("oracle", fmt(oracle.get("oracle_resident_pages_end"), 0)))
        due = oracle.get("oracle_due_after_measure_start_s")
        off = oracle.get("oracle_evicted_after_measure_start_s")
        n = oracle.get("oracle_evicted_pages")
        rows.append("| oracle: eviction due / seen done (s after its measure start; pages "
                    "evicted) " + only("oracle", "–" if off is None else "%s / %+.1f s (%s)" % (
                        "–" if due is None else "%+.1f" % due, off, fmt(n, 0))))
    row("pool total_size, end of measure (MiB; coldheap's is inside its PSS%s)" % (
        "" if zswapf is None else ", zswap's added to its PSS"),
        lambda f: f.get("pool_end_mib"), compare=False)
    row("stored pages, end of measure", lambda f: f.get("stored_pages_end"), 0, compare=False)
    row("compression ratio (stored_pages*4096/pool_total_size)",
        lambda f: f.get("compression_ratio"), 2, compare=False)
    row("LZ4 alone (stored_pages*4096/compressed_bytes)",
        lambda f: f.get("lz4_ratio"), 2, compare=False)
    row("throughput (ops/s, measure phase)", lambda f: res(f, "ops_per_s"), 0)
    if args.repeat > 1:
        rows.append("| throughput of each repetition (ops/s) | %s |%s" % (" | ".join(
            " / ".join(fmt(x.get("result", {}).get("ops_per_s"), 0) for x in f["repetitions"])
            for f in figures), no_ratio))
        rows.append("| steady footprint of each repetition (MiB) | %s |%s" % (" | ".join(
            " / ".join(fmt(x.get("steady_pss_mib")) for x in f["repetitions"])
            for f in figures), no_ratio))
    row("p50 latency (us)", lambda f: res(f, "p50_us"), 2)
    row("p99 latency (us)", lambda f: res(f, "p99_us"), 2)
    row("refaults in the measure phase%s" % (
        "" if zswapf is None else " (zswap: zswpin, loads from its pool)"),
        lambda f: f.get("refaults_measure"), 0, compare=False)
    row("coldheap CPU, whole run (evictor + handler, s)", lambda f: f.get("coldheap_cpu_s"), 2,
        compare=False)
    row("coldheap CPU in the measure phase (% of one core)",
        lambda f: f.get("coldheap_cpu_measure_pct"), 2, compare=False)
    row("measured process CPU in the measure phase (%% of one core%s)" % (
        "" if zswapf is None else "; zswap: its direct reclaim, compression and "
        "decompression included"), lambda f: f.get("process_cpu_measure_pct"), 1)
    row("measured process CPU per operation (us; all its threads, the shim's included)",
        lambda f: f.get("process_cpu_us_per_op"), 2)
    if zswapf is not None:
        rows.append("| zswap: reclaim CPU outside the process in the measure phase: kswapd and "
                    "the runner's limit writes (% of one core) " +
                    only("zswap", fmt(zswapf.get("reclaim_cpu_measure_pct"), 2)))
    row("other CPU load on the machine in the measure phase (% of one core; noise)",
        lambda f: f.get("other_cpu_measure_pct"), 1, compare=False)
    text = [head, sep] + rows
    text.append("")
    for line in oracle_notes(args, oracle):
        text.append(line)
        text.append("")
    text.append("Plot: `%s`" % png_name)
    return "\n".join(text)


def oracle_notes(args, oracle):
    """What a reader of the oracle figures must know when they are off."""
    if oracle is None:
        return []
    notes = []
    if oracle.get("oracle_problem"):
        notes.append("**Oracle: no figure:** %s." % oracle["oracle_problem"])
    due = oracle.get("oracle_due_after_measure_start_s")
    off = oracle.get("oracle_evicted_after_measure_start_s")
    if due is not None and abs(due) > max(2.0, 0.05 * args.measure_s):
        notes.append(
            "**Oracle: its eviction was due %.1f s %s its measure start** (the time is "
            "another run's measure start, and loads vary): its resident set is the pages "
            "touched %s." % (
                abs(due), "after" if due > 0 else "before",
                "in a shorter window than the measure phase, so it is too small"
                if due > 0 else "in a longer window than the measure phase, so it may be "
                "too large"))
    if off is not None and due is not None and off - due > max(3.0, 0.1 * args.measure_s):
        notes.append(
            "**Oracle: its eviction pass ended %.1f s after it was due**: the pages it "
            "swept last were evicted that much into the measure phase, and those touched "
            "only before their turn are not in its resident set." % (off - due))
    return notes


def gnuplot_terminal():
    """pngcairo if this gnuplot has it (gnuplot-nox does), else libgd's png."""
    try:
        r = subprocess.run(["gnuplot", "-e", "set terminal pngcairo"],
                           capture_output=True, text=True, timeout=20)
        if r.returncode == 0 and not r.stderr.strip():
            return "pngcairo size 1200,800 font 'Sans,10'"
    except (OSError, subprocess.TimeoutExpired):
        return None
    return "png size 1200,800"


def plot(args, out_dir, figures, csv_paths, png_path):
    term = gnuplot_terminal()
    if term is None:
        return "gnuplot not found (apt-get install gnuplot-nox)"
    colors = {"without": "#1f77b4", "disabled": "#7f7f7f", "with": "#d62728",
              "oracle": "#2ca02c", "zswap": "#9467bd"}
    col = {k: i + 1 for i, k in enumerate(CSV_FIELDS)}
    title = "%s, %d MiB, seed %d: footprint over time" % (
        args.workload, args.size_mb, args.seed)
    lines = [
        "set terminal %s" % term,
        "set termoption noenhanced",
        "set output '%s'" % png_path,
        "set datafile separator ','",
        "set key right center",
        "set grid",
        "set multiplot layout 2,1 title \"%s\"" % title,
        "set size 1,0.62", "set origin 0,0.36",
        "set ylabel 'MiB'",
        "set xlabel 'seconds since start'",
        "set xrange [0:%d]" % max(10, int(max(f.get("last_t_s", 0) for f in figures)) + 1),
    ]
    arrows = []
    for i, f in enumerate(figures):
        ms = f["phase_times"].get("measure")
        if ms is not None:
            arrows.append("set arrow %d from %f, graph 0 to %f, graph 1 nohead dt 2 lc rgb '%s'"
                          % (i + 1, ms, ms, colors[f["run"]]))
            arrows.append("set label %d 'measure phase (%s) from here' at %f, graph %.2f left "
                          "offset 0.5,0 textcolor rgb '%s' font ',8'"
                          % (i + 1, f["run"], ms, 0.95 - 0.07 * i, colors[f["run"]]))
    lines += arrows
    plots = []
    for f, path in zip(figures, csv_paths):
        if f["run"] == "zswap":
            plots.append("'%s' using 1:($%d/1024) with lines lw 2 lc rgb '%s' title "
                         "'PSS + zswap pool, %s'" % (path, col["footprint_kib"],
                                                     colors["zswap"], RUN_LABELS["zswap"]))
            plots.append("'%s' using 1:($%d/1048576) with lines lw 1 dt 3 lc rgb '%s' "
                         "title 'zswap pool (kernel memory)'" % (
                             path, col["pool_total_size"], colors["zswap"]))
            continue
        plots.append("'%s' using 1:($%d/1024) with lines lw 2 lc rgb '%s' title 'PSS, %s'"
                     % (path, col["pss_kib"], colors[f["run"]], RUN_LABELS[f["run"]]))
        if f["run"] == "with":
            plots.append("'%s' using 1:($5/1048576) with lines lw 1 dt 3 lc rgb '%s' "
                         "title 'pool total_size, with coldheap (inside its PSS)'"
                         % (path, colors["with"]))
    lines.append("plot " + ", ".join(plots))
    lines += ["unset arrow", "unset label", "set size 1,0.34", "set origin 0,0",
              "set ylabel 'ops/s'", "set title ''"]
    lines += arrows
    plots = []
    for f, path in zip(figures, csv_paths):
        plots.append("'%s' using 1:($13) with lines lw 1 lc rgb '%s' title 'throughput, %s'"
                     % (path, colors[f["run"]], RUN_LABELS[f["run"]]))
    lines.append("plot " + ", ".join(plots))
    lines.append("unset multiplot")
    script = os.path.join(out_dir, "%s.gnuplot" % args.workload)
    with open(script, "w") as fh:
        fh.write("\n".join(lines) + "\n")
    r = subprocess.run(["gnuplot", script], capture_output=True, text=True, timeout=60)
    if r.returncode != 0:
        return "gnuplot failed: " + r.stderr.strip()
    return None


# ---------------------------------------------------------------- main


def parse_args(argv):
    p = argparse.ArgumentParser(
        description="Runs a workload without and with coldheap and compares footprints.")
    p.add_argument("--workload", choices=WORKLOADS, required=True)
    p.add_argument("--size_mb", type=int, default=512,
                   help="MiB of record data the workload loads (default 512)")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--settle_s", type=int, default=30,
                   help="seconds of traffic after the load, not counted (default 30)")
    p.add_argument("--measure_s", type=int, default=60,
                   help="seconds of the measured phase (default 60)")
    p.add_argument("--runs", default="without,with",
                   help="comma-separated, in order: without, disabled, with (and oracle, "
                        "which --oracle adds and always runs last)")
    p.add_argument("--oracle", type=int, choices=(0, 1), default=1,
                   help="1 (default): also run the oracle: the 'with' settings plus "
                        "COLDHEAP_EVICT_ALL_AT at the measure start; 0: skip it")
    p.add_argument("--oracle_at", metavar="DURATION",
                   help="COLDHEAP_EVICT_ALL_AT of the oracle run, e.g. 45s (default: the "
                        "measure start of the repetition's with run, from its process start)")
    p.add_argument("--cold_age", default="10s", help="COLDHEAP_COLD_AGE of the 'with' run")
    p.add_argument("--scan_interval", default="1s",
                   help="COLDHEAP_SCAN_INTERVAL of the 'with' run")
    p.add_argument("--shim_env", action="append", default=[], metavar="COLDHEAP_X=V",
                   help="another setting for the 'with' run (repeatable)")
    p.add_argument("--workload_arg", action="append", default=[], metavar="--flag=V",
                   help="passed to the workload (or load generator) as is (repeatable)")
    p.add_argument("--sample_ms", type=int, default=100)
    p.add_argument("--repeat", type=int, default=1,
                   help="run each configuration N times, alternating the order; "
                        "the table shows medians (default 1)")
    p.add_argument("--load_timeout_s", type=int, default=900,
                   help="bound on the load phase, for the overall time limit")
    p.add_argument("--out", help="output directory")
    p.add_argument("--bin_dir", help="where bench/* and shim/libcoldheap.so were built")
    p.add_argument("--shim", help="libcoldheap.so (default: from --bin_dir)")
    p.add_argument("--report_only", action="store_true",
                   help="run nothing: rebuild the table, JSON and plot from the CSVs and "
                        "logs an earlier run with the same flags left in --out")
    p.add_argument("--baseline", choices=("none", "zswap"), default="none",
                   help="zswap: also run the workload without the shim in a memory cgroup "
                        "with kernel zswap, its PSS + zswap pool held at the with run's "
                        "footprint (needs root; bench/zswap_baseline.py)")
    p.add_argument("--zswap_target_mib", type=float,
                   help="the zswap run's PSS + pool target (default: the with run's "
                        "footprint at the end of its measure phase, same repetition)")
    p.add_argument("--zswap_dir", default="/var/tmp",
                   help="where the zswap run's swapfile is created (and removed)")
    p.add_argument("--python", default="/usr/bin/python3",
                   help="the interpreter of the Python workload (py_index)")
    p.add_argument("--redis_server", default="/usr/bin/redis-server")
    p.add_argument("--memcached", default="/usr/bin/memcached")
    args = p.parse_args(argv)
    args.runs = [r.strip() for r in args.runs.split(",") if r.strip()]
    for r in args.runs:
        if r not in RUN_LABELS:
            p.error("--runs: unknown run '%s' (known: without, disabled, with, oracle; "
                    "zswap comes with --baseline=zswap)" % r)
    if not args.runs or args.runs[0] != "without":
        p.error("--runs must start with 'without' (the baseline)")
    if args.oracle and "oracle" not in args.runs:
        args.runs.append("oracle")
    elif not args.oracle:
        args.runs = [r for r in args.runs if r != "oracle"]
    args.runs = [r for r in args.runs if r != "zswap"]
    if args.baseline == "zswap":
        args.runs.append("zswap")
    if args.oracle_at is not None and not re.fullmatch(r"[0-9]+(ms|s|m)", args.oracle_at):
        p.error("--oracle_at takes a duration such as 45s, 45000ms or 2m, not '%s'"
                % args.oracle_at)
    for kv in args.shim_env:
        if not kv.startswith("COLDHEAP_") or "=" not in kv:
            p.error("--shim_env takes COLDHEAP_NAME=value, not '%s'" % kv)
    if (args.size_mb <= 0 or args.measure_s <= 0 or args.settle_s < 0 or args.sample_ms <= 0
            or not 1 <= args.repeat <= 20):
        p.error("--size_mb, --measure_s, --sample_ms must be positive, --repeat 1 to 20")
    args.bin_dir = resolve_user_path(args.bin_dir) if args.bin_dir else default_bin_dir()
    args.shim = resolve_user_path(args.shim) if args.shim else os.path.join(
        args.bin_dir, "shim", "libcoldheap.so")
    args.out = resolve_user_path(args.out) if args.out else default_out_dir(args.workload)
    return args


def main(argv):
    args = parse_args(argv)
    # SIGTERM unwinds like Ctrl-C, so the zswap run restores the kernel's
    # settings (swapfile, zswap, cgroup) on its way out.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(128 + signal.SIGTERM))
    needed = [args.shim] if any(r != "without" for r in args.runs) else []
    if args.workload in SERVER_WORKLOADS:
        needed.append(os.path.join(args.bin_dir, "bench", "kv_client"))
        needed.append(args.redis_server if args.workload == "redis" else args.memcached)
    else:
        needed += [p for p in local_command(args) if p.startswith("/")]
    for path in [] if args.report_only else needed:
        if not os.path.exists(path):
            print("footprint: %s not found (build with bazel build //bench:footprint, "
                  "install with third_party/install_deps.sh)" % path, file=sys.stderr)
            return 2
    os.makedirs(args.out, exist_ok=True)
    if "zswap" in args.runs and not args.report_only:
        reason = zswap_baseline.unavailable()
        if reason:
            print("footprint: no zswap column: %s" % reason, flush=True)
            args.runs.remove("zswap")
    if args.report_only and "oracle" in args.runs and not os.path.exists(os.path.join(
            args.out, "%s-%s.csv" % (args.workload, "oracle" if args.repeat == 1
                                     else "oracle-1"))):
        # Results from before the oracle existed: render them as they were.
        print("footprint: no oracle run in %s; the table goes without it" % args.out)
        args.runs.remove("oracle")
    if args.report_only and "zswap" in args.runs and not os.path.exists(os.path.join(
            args.out, "%s-%s.csv" % (args.workload, "zswap" if args.repeat == 1
                                     else "zswap-1"))):
        print("footprint: no zswap run in %s; the table goes without it" % args.out)
        args.runs.remove("zswap")
    per_run = {run: [] for run in args.runs}
    first_csv = {}
    all_ok = True
    for rep in range(1, args.repeat + 1):
        # Alternate the order, so a drift of the machine's speed does not
        # always favour the same run. The oracle comes last: the time of its
        # eviction is the measure start of a run before it.
        # zswap comes after: its target is the with run's footprint.
        plain = [r for r in args.runs if r not in ("oracle", "zswap")]
        order = plain if rep % 2 == 1 else list(reversed(plain))
        order += [r for r in ("oracle", "zswap") if r in args.runs]
        measure_starts = {}
        done_figs = {}
        for run in order:
            tag = run if args.repeat == 1 else "%s-%d" % (run, rep)
            print("footprint: %s, %s%s ..." % (
                args.workload, RUN_LABELS[run],
                "" if args.repeat == 1 else " (%d of %d)" % (rep, args.repeat)), flush=True)
            path = os.path.join(args.out, "%s-%s.csv" % (args.workload, tag))
            evict_all_at = source = None
            if run == "oracle":
                evict_all_at, source = oracle_time(args, measure_starts)
            if args.report_only:
                samples, state, ok, note = load_run(args, run, tag, args.out)
                if run == "oracle":
                    evict_all_at = logged_env(args, tag, args.out).get("COLDHEAP_EVICT_ALL_AT")
            elif run == "oracle" and evict_all_at is None:
                samples, state, ok, note = [], RunState(), False, source
            else:
                if run == "oracle":
                    print("footprint:   everything evicted once at %s (%s)" % (
                        evict_all_at, source), flush=True)
                if run == "zswap":
                    samples, state, ok, note, zswap_target = zswap_run(args, tag, done_figs)
                else:
                    samples, state, ok, note = one_run(args, run, tag, args.out, evict_all_at)
                with open(path, "w", newline="") as fh:
                    w = csv.DictWriter(fh, fieldnames=CSV_FIELDS)
                    w.writeheader()
                    w.writerows(samples)
            measure_starts[run] = state.phase_times.get("measure")
            first_csv.setdefault(run, path)
            stats_file = run_env(args, run, args.out, tag).get("COLDHEAP_STATS")
            f = summarize(samples, state, run, stats_file, evict_all_at)
            f["ok"] = ok
            f["note"] = note
            f["tag"] = tag
            done_figs[run] = f
            if run == "zswap":
                f["zswap_target_mib"] = (logged_zswap_target(args, tag, args.out)
                                         if args.report_only else zswap_target)
            if run == "oracle":
                f["evict_all_at"] = evict_all_at
                f["evict_all_at_from"] = source
            per_run[run].append(f)
            res = f.get("result", {})
            print("footprint:   %s: peak %s MiB, steady %s MiB, %s ops/s, p99 %s us%s" % (
                tag, fmt(f.get("peak_pss_mib")), fmt(f.get("steady_pss_mib")),
                fmt(res.get("ops_per_s"), 0), fmt(res.get("p99_us"), 1),
                "" if ok else "  FAILED: " + note), flush=True)
            if run == "oracle":
                print("footprint:   %s: oracle footprint %s MiB (end of measure), %s pages "
                      "faulted back, eviction seen done %s s after the measure start%s" % (
                          tag, fmt(f.get("oracle_pss_mib")),
                          fmt(f.get("oracle_pages_faulted_back"), 0),
                          fmt(f.get("oracle_evicted_after_measure_start_s")),
                          "; " + f["oracle_problem"] if f.get("oracle_problem") else ""),
                      flush=True)
            all_ok = all_ok and ok
    figures = [combine(per_run[run]) for run in args.runs]
    csv_paths = [first_csv[run] for run in args.runs]
    png = os.path.join(args.out, "%s.png" % args.workload)
    problem = plot(args, args.out, figures, csv_paths, png)
    if problem:
        print("footprint: no plot: " + problem, file=sys.stderr)
        all_ok = False
    settings = ("workload `%s`, --size_mb=%d, seed %d, settle %d s, measure %d s, "
                "%d repetition(s)%s; shim: "
                "COLDHEAP_COLD_AGE=%s COLDHEAP_SCAN_INTERVAL=%s%s" % (
                    args.workload, args.size_mb, args.seed, args.settle_s, args.measure_s,
                    args.repeat, " (medians)" if args.repeat > 1 else "", args.cold_age, args.scan_interval,
                    "".join(" " + kv for kv in args.shim_env)))
    if args.workload_arg:
        settings += "; workload flags: " + " ".join(args.workload_arg)
    if "oracle" in args.runs:
        settings += ("; oracle run: the same shim settings and COLDHEAP_EVICT_ALL_AT=%s (%s)" % (
            " / ".join(str(f.get("evict_all_at")) for f in per_run["oracle"]),
            "--oracle_at" if args.oracle_at else
            "the measure start of the repetition's with run, else disabled, else without"))
    if "zswap" in args.runs:
        settings += ("; zswap run: no shim, in a memory cgroup with kernel zswap (compressor "
                     "%s) and a swapfile, the limit steered so that PSS + zswap pool = the "
                     "with run's footprint at the end of its measure phase (%s MiB)" % (
                         zswap_baseline.compressor(),
                         " / ".join(fmt(f.get("zswap_target_mib")) for f in per_run["zswap"])))
    if args.workload == "py_index":
        settings += ("; every run with %s" % " ".join(
            "%s=%s" % kv for kv in sorted(PYTHON_ENV.items())))
    table = markdown_table(args, figures, png)
    md = os.path.join(args.out, "%s.md" % args.workload)
    with open(md, "w") as fh:
        fh.write("%s\n\n%s\n" % (settings, table))
        for f in figures:
            if not f["ok"]:
                fh.write("\n**%s run failed:** %s\n" % (f["run"], f["note"]))
    with open(os.path.join(args.out, "%s.json" % args.workload), "w") as fh:
        json.dump({"settings": settings, "args": {k: v for k, v in vars(args).items()},
                   "figures": figures, "png": png}, fh, indent=1, default=str)
    print()
    print(settings)
    print()
    print(table)
    print()
    print("footprint: CSV, logs and table in %s" % args.out)
    print("footprint: plot %s" % png)
    return 0 if all_ok else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
