"""The kernel's zswap as a baseline for the footprint runner (--baseline=zswap).

The workload runs as users would run it without coldheap (no LD_PRELOAD),
inside a memory cgroup of its own, with zswap on and a swapfile the runner
creates, so that the kernel compresses what the cgroup's limit pushes out.
The limit keeps the process at coldheap's footprint, so the two are
compared at equal memory.

What "equal memory" means here. coldheap's footprint is its process's PSS
(its pool is inside it). zswap's is the process's PSS plus the zswap pool,
which is kernel memory outside the process. On cgroup v2 the pool is charged
to the cgroup (memory.current includes it; memory.stat has zswap and
zswapped); on cgroup v1 it is not charged to any cgroup (mm/memcontrol.c
charges zswap on the default hierarchy only), so a v1 limit alone would give
zswap its pool for free. Either way the runner steers the limit so that
PSS + pool stays at the target:
    limit = target + (usage - PSS) - pool
where usage is what the cgroup charges (memory.usage_in_bytes, or
memory.current), usage - PSS the cgroup's charges that are not the process's
PSS (page tables, kernel memory, file cache, and on v2 the pool, which the
last term then takes out again). It is rewritten every sample (100 ms) when
it moves by 1 MiB or more, from the end of the load (PHASE settle) to the
end of the measure phase: coldheap's footprint is not bounded during the
load either, and a hard v1 limit during a load that rehashes its tables
drew the OOM killer in trials at 64 MiB. At the end of the load it steps
down from the unlimited footprint by at most max(8 MiB, 2% of the target)
a sample, so no single write has to reclaim hundreds of MiB. After the
measure phase (PHASE done) the limit is lifted: the teardown (a program
freeing its heap touches all of it) is not measured, and a v1 limit would
have the OOM killer end it. On v1 that is memory.limit_in_bytes, whose write
reclaims at once in the writer's context; the runner measures that CPU
(thread time of the writes) and reports it with kswapd's as reclaim CPU
outside the process. On v2 it is memory.high: the process reclaims itself.

The pool's size comes from the cgroup's memory.stat on v2 and from
/proc/meminfo (Zswap, Zswapped: machine-wide) on v1, where the swapfile
must be the only swap on the machine while it runs (the runner skips the
column when another swap area is on), so on an otherwise idle machine that
is the workload's. The run reports pages that went to the swapfile itself
(zswap rejections and writebacks: pswpout) separately: they are on disk,
not in memory, and are not in the footprint.

Settings changed, and restored afterwards (also on an exception, Ctrl-C or
SIGTERM; a runner killed with SIGKILL leaves an undo file that the next one
applies first): zswap's `enabled` (and `zpool`, to zsmalloc, on kernels that
still have the parameter), the swapfile (swapon, then swapoff and removed),
the cgroup (created, then removed; processes left in it are killed by id).
zswap's compressor, max_pool_percent and accept threshold stay as the
kernel has them (its defaults unless someone changed them); the report says
which compressor ran.
"""

import glob
import json
import os
import shutil
import subprocess
import time

ZSWAP = "/sys/module/zswap/parameters"
V1_MEMORY = "/sys/fs/cgroup/memory"
MIB = 1 << 20
MIN_LIMIT = 16 * MIB  # never steer below this: an OOM kill would end the run


def _read(path, default=None):
    try:
        with open(path) as f:
            return f.read().strip()
    except OSError:
        return default


def _write(path, value):
    with open(path, "w") as f:
        f.write(str(value))


def _meminfo_kib(*names):
    out = dict.fromkeys(names, 0)
    for line in (_read("/proc/meminfo", "") or "").splitlines():
        key, _, rest = line.partition(":")
        if key in out:
            out[key] = int(rest.split()[0])
    return out


def _vmstat(*names):
    out = dict.fromkeys(names, 0)
    for line in (_read("/proc/vmstat", "") or "").splitlines():
        parts = line.split()
        if len(parts) == 2 and parts[0] in out:
            out[parts[0]] = int(parts[1])
    return out


def _kswapd_pids():
    pids = []
    for comm in glob.glob("/proc/[0-9]*/comm"):
        if (_read(comm, "") or "").startswith("kswapd"):
            pids.append(int(comm.split("/")[2]))
    return pids


def _cpu_s(pid):
    text = _read("/proc/%d/stat" % pid)
    if text is None:
        return 0.0
    fields = text[text.rfind(")") + 2:].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _v2_memory_root():
    """The cgroup2 mount whose root offers the memory controller, or None."""
    for line in (_read("/proc/self/mounts", "") or "").splitlines():
        parts = line.split()
        if len(parts) > 2 and parts[2] == "cgroup2":
            if "memory" in (_read(os.path.join(parts[1], "cgroup.controllers"), "") or "").split():
                return parts[1]
    return None


def steered_limit(target, usage, pss, pool):
    """The cgroup limit (bytes) that holds PSS + pool at `target`, given what
    the cgroup charges now (`usage`) and the pool: the charges that are not
    the process's PSS stay, the pool comes off (see the top of this file).
    Never more than max(8 MiB, 2% of the target) below the usage, so one
    write does not have to reclaim hundreds of MiB at once."""
    step = max(8 * MIB, target // 50)
    return max(target + (usage - pss) - pool, usage - step)


def unavailable():
    """Why this machine cannot run the zswap baseline (one line), or None."""
    if os.geteuid() != 0:
        return "needs root (swapon, zswap parameters, cgroups)"
    if not os.path.exists(os.path.join(ZSWAP, "enabled")):
        return "this kernel has no zswap (/sys/module/zswap)"
    if not os.path.exists("/proc/swaps"):
        return "this kernel has no swap support (/proc/swaps)"
    for tool in ("mkswap", "swapon", "swapoff"):
        if shutil.which(tool) is None:
            return "%s not found (util-linux)" % tool
    if _v2_memory_root() is None and not os.path.exists(
            os.path.join(V1_MEMORY, "memory.limit_in_bytes")):
        return "no memory cgroup (v2 memory controller or v1 %s)" % V1_MEMORY
    swaps = (_read("/proc/swaps", "") or "").splitlines()[1:]
    if swaps and _v2_memory_root() is None:
        # v1 reads the pool machine-wide (/proc/meminfo); v2 per cgroup.
        return "another swap area is on (%s): the pool would not be the workload's alone" % (
            swaps[0].split()[0])
    return None


def restore_leftovers(log):
    """Applies the undo files of runners that died without restoring."""
    for path in glob.glob("/var/tmp/coldheap-zswap-*.undo"):
        try:
            pid = int(path.rsplit("-", 1)[1].split(".")[0])
            if os.path.exists("/proc/%d" % pid):
                continue
            with open(path) as f:
                undo = json.load(f)
        except (ValueError, OSError):
            continue
        log("footprint: restoring what runner %d left: %s" % (pid, undo))
        failed = _undo(undo)
        if failed:
            raise OSError("could not restore what runner %d left: %s" % (pid, "; ".join(failed)))
        os.remove(path)


def _undo(undo):
    """Best effort, each step on its own: one failing must not skip the rest.
    Returns what could not be restored (one line each)."""
    failed = []

    def step(what, fn, *a):
        try:
            fn(*a)
        except (OSError, ValueError) as e:
            failed.append("%s: %s" % (what, e))

    cg = undo.get("cgroup")
    if cg and os.path.isdir(cg):
        # The workload's processes (started by this runner) go first: swapoff
        # must bring their pages back, and the cgroup cannot go while they live.
        for _ in range(100):
            pids = (_read(os.path.join(cg, "cgroup.procs"), "") or "").split()
            if not pids:
                break
            for pid in pids:
                step("kill %s" % pid, os.kill, int(pid), 9)
            time.sleep(0.05)
        # Whatever is still charged to it may come back without a limit.
        v2 = os.path.exists(os.path.join(cg, "memory.high"))
        step("lift the limit", _write,
             os.path.join(cg, "memory.high" if v2 else "memory.limit_in_bytes"),
             "max" if v2 else "-1")
    swapfile = undo.get("swapfile")
    if swapfile:
        for _ in range(5):
            if swapfile not in (_read("/proc/swaps", "") or ""):
                break
            r = subprocess.run(["swapoff", swapfile], capture_output=True, text=True)
            if r.returncode != 0:
                failed.append("swapoff %s: %s" % (swapfile, r.stderr.strip()))
                time.sleep(1)
        if os.path.exists(swapfile):
            step("remove the swapfile", os.remove, swapfile)
    for name, value in undo.get("params", {}).items():
        step("zswap %s=%s" % (name, value), _write, os.path.join(ZSWAP, name), value)
    if cg and os.path.isdir(cg):
        for _ in range(50):
            try:
                os.rmdir(cg)
                break
            except OSError as e:
                err = e
                time.sleep(0.1)
        else:
            failed.append("rmdir %s: %s" % (cg, err))
    if undo.get("subtree_control"):
        step("cgroup.subtree_control -memory", _write, undo["subtree_control"], "-memory")
    return failed


class ZswapBaseline:
    """One zswap run's kernel set-up: `with ZswapBaseline(...) as z:` sets
    it up, leaving restores it. z.command(cmd) puts a command in the cgroup;
    z.sample(pss_kib, phase) reads the figures and steers the limit."""

    def __init__(self, target_bytes, swap_bytes, swap_dir, log):
        self.target = int(target_bytes)
        self.swap_bytes = max(64 * MIB, int(swap_bytes)) // MIB * MIB
        self.swap_dir = swap_dir
        self.log = log
        self.undo = {"params": {}}
        self.undo_path = "/var/tmp/coldheap-zswap-%d.undo" % os.getpid()
        self.v2 = _v2_memory_root()
        self.limit = None
        self.limit_write_cpu_s = 0.0
        self.limit_write_failures = 0
        self.kswapd = []
        self.compressor = None

    def _save_undo(self):
        with open(self.undo_path, "w") as f:
            json.dump(self.undo, f)

    def _set_param(self, name, value):
        path = os.path.join(ZSWAP, name)
        old = _read(path)
        if old is None or old == value:
            return
        self.undo["params"].setdefault(name, old)
        self._save_undo()
        _write(path, value)

    def __enter__(self):
        try:
            self._setup()
        except BaseException:
            self.__exit__(None, None, None)
            raise
        return self

    def _setup(self):
        restore_leftovers(self.log)
        st = os.statvfs(self.swap_dir)
        free = st.f_bavail * st.f_frsize
        if self.swap_bytes > free // 2:
            raise OSError("a %d MiB swapfile would take over half the %d MiB free in %s" % (
                self.swap_bytes // MIB, free // MIB, self.swap_dir))
        swapfile = os.path.join(self.swap_dir, "coldheap-zswap-%d.swap" % os.getpid())
        self.undo["swapfile"] = swapfile
        self._save_undo()
        fd = os.open(swapfile, os.O_CREAT | os.O_WRONLY | os.O_EXCL, 0o600)
        try:
            os.posix_fallocate(fd, 0, self.swap_bytes)
        finally:
            os.close(fd)
        for cmd in (["mkswap", swapfile], ["swapon", swapfile]):
            r = subprocess.run(cmd, capture_output=True, text=True)
            if r.returncode != 0:
                raise OSError("%s: %s" % (" ".join(cmd), r.stderr.strip()))
        if os.path.exists(os.path.join(ZSWAP, "zpool")):
            self._set_param("zpool", "zsmalloc")
        self._set_param("enabled", "Y")
        self.compressor = _read(os.path.join(ZSWAP, "compressor"))
        name = "coldheap-zswap-%d" % os.getpid()
        if self.v2:
            sub = os.path.join(self.v2, "cgroup.subtree_control")
            if "memory" not in (_read(sub, "") or "").split():
                self.undo["subtree_control"] = sub
                self._save_undo()
                _write(sub, "+memory")
            cg = os.path.join(self.v2, name)
        else:
            cg = os.path.join(V1_MEMORY, name)
        self.undo["cgroup"] = cg
        self._save_undo()
        os.mkdir(cg)
        self.cgroup = cg
        self.kswapd = _kswapd_pids()
        self.kswapd_cpu0 = sum(_cpu_s(p) for p in self.kswapd)

    def __exit__(self, *exc):
        failed = _undo(self.undo)
        if failed:
            # The undo file stays: the next runner tries again.
            self.log("footprint: could not restore (%s stays for the next run): %s" % (
                self.undo_path, "; ".join(failed)))
        elif os.path.exists(self.undo_path):
            os.remove(self.undo_path)
        return False

    def describe(self):
        return ("kernel zswap (compressor %s, zsmalloc), swapfile of %d MiB in %s, cgroup %s "
                "steered to PSS + zswap pool = %.1f MiB" % (
                    self.compressor, self.swap_bytes // MIB, self.swap_dir,
                    "v2 memory.high" if self.v2 else "v1 memory.limit_in_bytes",
                    self.target / MIB))

    def command(self, cmd):
        """`cmd` started inside the cgroup (from its first instruction)."""
        procs = os.path.join(self.cgroup, "cgroup.procs")
        return ["/bin/sh", "-c", 'echo $$ > "$0" && exec "$@"', procs] + list(cmd)

    def _set_limit(self, limit):
        """Writes the limit; None lifts it."""
        if limit is not None:
            limit = max(MIN_LIMIT, int(limit)) // 4096 * 4096
            if self.limit is not None and abs(limit - self.limit) < MIB:
                return
        elif self.limit is None:
            return
        name = "memory.high" if self.v2 else "memory.limit_in_bytes"
        t = time.thread_time()
        try:
            _write(os.path.join(self.cgroup, name),
                   limit if limit is not None else "max" if self.v2 else "-1")
            self.limit = limit
        except OSError:
            # v1 answers EBUSY when it cannot reclaim down to the new limit
            # at once; the next sample tries again.
            self.limit_write_failures += 1
        self.limit_write_cpu_s += time.thread_time() - t

    def oom_kills(self):
        """Processes the cgroup's OOM killer has killed so far."""
        name = "memory.events" if self.v2 else "memory.oom_control"
        for line in (_read(os.path.join(self.cgroup, name), "") or "").splitlines():
            k, _, v = line.partition(" ")
            if k == "oom_kill":
                return int(v)
        return 0

    def _pool(self):
        """(pool bytes, bytes stored in it)."""
        if self.v2:
            stat = {}
            for line in (_read(os.path.join(self.cgroup, "memory.stat"), "") or "").splitlines():
                k, _, v = line.partition(" ")
                stat[k] = v
            return int(stat.get("zswap", 0)), int(stat.get("zswapped", 0))
        m = _meminfo_kib("Zswap", "Zswapped")
        return m["Zswap"] * 1024, m["Zswapped"] * 1024

    def sample(self, pss_kib, phase):
        """The figures of one sample (CSV fields), after steering the limit
        (`phase`: the workload's phase)."""
        usage = int(_read(os.path.join(
            self.cgroup, "memory.current" if self.v2 else "memory.usage_in_bytes"), "0"))
        pool, stored = self._pool()
        if phase in ("settle", "measure"):
            self._set_limit(steered_limit(self.target, usage, pss_kib * 1024, pool))
        elif phase == "done":
            self._set_limit(None)
        vm = _vmstat("zswpin", "zswpout", "zswpwb", "pswpin", "pswpout")
        kswapd = sum(_cpu_s(p) for p in self.kswapd) - self.kswapd_cpu0
        return {
            "footprint_kib": pss_kib + pool // 1024,
            "pool_total_size": pool,
            "stored_pages": stored // 4096,
            "refaults": vm["zswpin"],
            "evicted_pages": vm["zswpout"],
            "zswap_written_back": vm["zswpwb"],
            "swapfile_out_pages": vm["pswpout"],
            "swapfile_in_pages": vm["pswpin"],
            "cgroup_usage_bytes": usage,
            "cgroup_limit_bytes": self.limit or "",
            "reclaim_cpu_s": round(kswapd + self.limit_write_cpu_s, 3),
        }


def compressor():
    """zswap's compressor as the kernel has it now."""
    return _read(os.path.join(ZSWAP, "compressor"), "?")
