#!/usr/bin/env python3
"""What PYTHONMALLOC=malloc costs CPython under coldheap.

`coldheap run` sets PYTHONMALLOC=malloc (see README, "Python"). This runs a
dict- and str-heavy workload (an in-memory index of generated records, then
lookups, updates and string building on a hot subset) under `coldheap run`
with CPython's pymalloc and with malloc, and without coldheap with each,
interleaved, and prints the median CPU time of each (the workload's own, of
all the process's threads, not interpreter start-up) against plain Python
(pymalloc, no coldheap). Usage:

  bench/python_malloc_speed.py COLDHEAP [--runs N]
  (COLDHEAP: the launcher, e.g. bazel-bin/shim/launcher/coldheap)
  bench/python_malloc_speed.py --workload   # one run of the workload itself
"""
import argparse
import os
import random
import statistics
import subprocess
import sys
import time

RECORDS = 200_000
QUERIES = 600_000


def workload():
    rng = random.Random(1)
    start = time.process_time()
    index = {}
    for i in range(RECORDS):
        key = f"user:{i:08d}"
        index[key] = {
            "name": f"name-{rng.getrandbits(32):08x}",
            "email": f"u{i}@example.{('com', 'org', 'net')[i % 3]}",
            "tags": [f"t{rng.randrange(100)}" for _ in range(3)],
            "visits": 0,
        }
    hot = [f"user:{rng.randrange(RECORDS // 10):08d}" for _ in range(QUERIES)]
    total = 0
    for n, key in enumerate(hot):
        record = index[key]
        record["visits"] += 1
        total += len(record["name"]) + len(",".join(record["tags"]))
        if n % 4 == 0:
            record["name"] = record["name"][::-1] + "x"[: n % 2]
    # CPU time of the whole process (coldheap's threads included): on a
    # shared machine it varies far less than the wall clock.
    elapsed = time.process_time() - start
    print(f"{elapsed:.4f} {total}")


def run_once(command, env):
    out = subprocess.run(command, env=env, check=True, capture_output=True,
                         text=True).stdout
    return float(out.split()[0])


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("coldheap", nargs="?")
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--workload", action="store_true")
    args = parser.parse_args()
    if args.workload:
        workload()
        return
    if not args.coldheap:
        parser.error("COLDHEAP (the launcher) is required")
    me = [sys.executable, os.path.abspath(__file__), "--workload"]
    base = {k: v for k, v in os.environ.items()
            if k != "PYTHONMALLOC" and not k.startswith("COLDHEAP_")}
    configs = {
        "without coldheap (pymalloc)": (me, base),
        "without coldheap, PYTHONMALLOC=malloc": (
            me, dict(base, PYTHONMALLOC="malloc")),
        "coldheap run, PYTHONMALLOC=pymalloc": (
            [args.coldheap, "run", "--"] + me,
            dict(base, PYTHONMALLOC="pymalloc")),
        "coldheap run (malloc, the default)": ([args.coldheap, "run", "--"] + me,
                                                base),
    }
    times = {name: [] for name in configs}
    for _ in range(args.runs):
        for name, (command, env) in configs.items():
            times[name].append(run_once(command, env))
    medians = {name: statistics.median(t) for name, t in times.items()}
    baseline = medians["without coldheap (pymalloc)"]
    print(f"{args.runs} runs each, interleaved; median CPU seconds "
          f"({RECORDS} records, {QUERIES} queries)")
    for name, median in medians.items():
        print(f"  {name:38s} {median:7.3f} s  {median / baseline:5.2f}x")
    shim_malloc = medians["coldheap run (malloc, the default)"]
    shim_pymalloc = medians["coldheap run, PYTHONMALLOC=pymalloc"]
    print(f"under coldheap, malloc / pymalloc: {shim_malloc / shim_pymalloc:.2f}")


if __name__ == "__main__":
    main()
