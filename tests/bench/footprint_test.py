#!/usr/bin/python3
"""Tests of the footprint runner's zswap column, the Python workload and
kv_cache's recency mode (bench/footprint.py, bench/zswap_baseline.py,
bench/py_index.py, bench/kv_cache.cc). Nothing here needs root or changes the
machine: the kernel side of the zswap run is exercised by running it
(bench/footprint.py --baseline=zswap)."""

import json
import os
import subprocess
import sys
import unittest


def bench_dir():
    for root in (os.environ.get("RUNFILES_DIR"), os.environ.get("TEST_SRCDIR")):
        if root and os.path.isdir(os.path.join(root, "coldheap", "bench")):
            return os.path.join(root, "coldheap", "bench")
    return os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "bench")


BENCH = bench_dir()
sys.path.insert(0, BENCH)

import footprint  # noqa: E402
import py_index  # noqa: E402
import zswap_baseline  # noqa: E402

MIB = 1 << 20


class SteeredLimitTest(unittest.TestCase):

    def test_pss_plus_pool_lands_on_the_target(self):
        # v1: the pool is not charged; 3 MiB of charges are not the PSS.
        target, pool, other = 700 * MIB, 90 * MIB, 3 * MIB
        limit = zswap_baseline.steered_limit(target, 611 * MIB + other, 611 * MIB, pool)
        # At usage == limit the process's PSS is limit - other.
        self.assertEqual(limit - other + pool, target)

    def test_pool_charged_to_the_cgroup_is_not_counted_twice(self):
        # v2: usage = PSS + other + pool.
        target, pool, other, pss = 700 * MIB, 90 * MIB, 3 * MIB, 600 * MIB
        limit = zswap_baseline.steered_limit(target, pss + other + pool, pss, pool)
        self.assertEqual(limit - other - pool + pool, target)

    def test_steps_down_from_a_large_footprint(self):
        target = 700 * MIB
        usage = 1000 * MIB
        limit = zswap_baseline.steered_limit(target, usage, usage, 0)
        self.assertEqual(usage - limit, target // 50)


def sample(t, phase, pss_kib, footprint_kib=None, pool=""):
    row = {k: "" for k in footprint.CSV_FIELDS}
    row.update(t_s=t, phase=phase, rss_kib=pss_kib, pss_kib=pss_kib,
               footprint_kib=pss_kib if footprint_kib is None else footprint_kib,
               pool_total_size=pool)
    return row


def figures(run, pss_kib, footprint_kib, ops):
    state = footprint.RunState()
    state.phase_times = {"load": 0.0, "settle": 1.0, "measure": 2.0, "done": 4.0}
    state.result = {"ops_per_s": ops, "p50_us": 5.0, "p99_us": 50.0}
    samples = [sample(t / 10, "measure", pss_kib, footprint_kib)
               for t in range(20, 40)]
    f = footprint.summarize(samples, state, run, None)
    f.update(ok=True, note="", tag=run)
    return footprint.combine([f])


class ZswapTableTest(unittest.TestCase):

    def test_zswap_footprint_counts_its_pool(self):
        f = figures("zswap", 500 * 1024, 700 * 1024, 1000.0)
        self.assertAlmostEqual(f["steady_pss_mib"], 700.0)
        self.assertAlmostEqual(f["steady_resident_pss_mib"], 500.0)

    def test_table_compares_with_against_zswap(self):
        args = footprint.parse_args(["--workload=kv_cache", "--baseline=zswap", "--oracle=0"])
        self.assertEqual(args.runs, ["without", "with", "zswap"])
        figs = [figures("without", 1000 * 1024, None, 1000.0),
                figures("with", 700 * 1024, None, 900.0),
                figures("zswap", 500 * 1024, 700 * 1024, 600.0)]
        table = footprint.markdown_table(args, figs, "x.png")
        self.assertIn("| with / without | with / zswap |", table)
        tput = next(l for l in table.splitlines() if l.startswith("| throughput"))
        self.assertTrue(tput.endswith("| 0.90 | 1.50 |"), tput)
        saving = next(l for l in table.splitlines() if l.startswith("| **saving, steady"))
        self.assertEqual(saving.count("**30.0%**"), 2, saving)
        widths = {l.count("|") for l in table.splitlines() if l.startswith("|")}
        self.assertEqual(len(widths), 1, "rows of different widths: %s" % widths)

    def test_python_workload_runs_with_malloc_in_every_run(self):
        args = footprint.parse_args(["--workload=py_index", "--baseline=zswap"])
        for run in ("without", "with", "oracle", "zswap"):
            env = footprint.run_env(args, run, "/tmp", run)
            self.assertEqual(env.get("PYTHONMALLOC"), "malloc", run)
        self.assertNotIn("LD_PRELOAD", footprint.run_env(args, "zswap", "/tmp", "zswap"))


class PyIndexTest(unittest.TestCase):

    def test_records_depend_on_the_seed_alone(self):
        a, b = py_index.RecordMaker(7), py_index.RecordMaker(7)
        self.assertEqual(a.make(123), b.make(123))
        self.assertNotEqual(a.make(123), py_index.RecordMaker(8).make(123))

    def test_update_changes_bio_and_version(self):
        m = py_index.RecordMaker(1)
        rec = m.make(5)
        old = rec["bio"]
        m.revise(rec, 1)
        self.assertEqual(rec["version"], 1)
        self.assertNotEqual(rec["bio"], old)

    def test_histogram_quantiles_within_bucket_resolution(self):
        h = py_index.Histogram()
        for ns in range(1, 100001):
            h.record(ns * 10)
        for q, want_us in ((0.5, 500.0), (0.99, 990.0)):
            self.assertAlmostEqual(h.quantile_us(q), want_us, delta=want_us * 0.04)

    def test_runs_the_protocol(self):
        out = subprocess.run(
            [sys.executable, os.path.join(BENCH, "py_index.py"), "--size_mb=1",
             "--settle_s=0", "--measure_s=1"], capture_output=True, text=True, timeout=120)
        self.assertEqual(out.returncode, 0, out.stderr)
        lines = out.stdout.splitlines()
        phases = [l.split()[1] for l in lines if l.startswith("PHASE ")]
        self.assertEqual(phases, ["load", "settle", "measure", "done"])
        result = json.loads(lines[-1][len("RESULT "):])
        self.assertGreater(result["ops"], 0)
        self.assertEqual(result["misses"], 0)


class KvCacheRecencyTest(unittest.TestCase):

    def test_new_keys_arrive_and_old_ones_expire_without_misses(self):
        # --ttl_s=1 replaces every record within the second measured: a GET of
        # an expired key would be a miss and exit 1.
        out = subprocess.run(
            [os.path.join(BENCH, "kv_cache"), "--size_mb=1", "--settle_s=0", "--measure_s=2",
             "--popularity=recency", "--ttl_s=1"], capture_output=True, text=True,
            timeout=120)
        self.assertEqual(out.returncode, 0, out.stdout[-500:] + out.stderr)
        result = json.loads(out.stdout.splitlines()[-1][len("RESULT "):])
        self.assertGreaterEqual(result["arrivals"], result["records"])
        self.assertEqual(result["misses"], 0)

    def test_unknown_popularity_is_refused(self):
        out = subprocess.run([os.path.join(BENCH, "kv_cache"), "--popularity=newest"],
                             capture_output=True, text=True, timeout=60)
        self.assertEqual(out.returncode, 2)


if __name__ == "__main__":
    unittest.main()
