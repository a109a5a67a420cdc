#!/usr/bin/python3
"""A Python footprint workload: an in-memory index of user records, as a
Python service holds one (dicts of strs, looked up by key, served as JSON).

    PYTHONMALLOC=malloc /usr/bin/python3 bench/py_index.py --size_mb=256

Standard library only. It speaks the footprint runner's protocol
(bench/workload_util.h): PHASE lines (load, settle, measure, done), a TICK
line a second, and a last RESULT {json} line with the measure phase's
throughput and latency percentiles.

What it holds. Records generated from --seed (the same records every run):
a dict per record with an int id, str email, name, city and country, a list
of 3-6 tag strs, a bio of 20-120 words drawn from a Zipf-distributed
vocabulary (text that compresses as text does, not as random bytes), a
creation time, a float score and two counters. Each str, list and dict is
its own allocation, which under PYTHONMALLOC=malloc is a malloc call that
coldheap sees (with pymalloc, objects up to 512 bytes live in mmap'd arenas
that coldheap does not manage; `coldheap run` sets PYTHONMALLOC=malloc).
Two indexes: by id (dict int -> record) and by email (dict str -> record).
The load stops when the records' JSON reaches --size_mb MiB (the Python heap
is several times that: object headers, dict tables, one str per field).

The request mix, fixed before any measurement, from what such a service
does and not tuned to a result:
  - the keys asked for are a hot set of --hot_percent (10) of the records,
    chosen uniformly, their ids scattered over all records (the popular
    users are not the first loaded), as in kv_client's redis workload;
  - 95% GETs: look the record up by email, count the hit (a write to the
    record, as an LRU clock would), and serialize it with json.dumps into a
    response, whose bytes are consumed;
  - --set_percent (5) updates: the record's bio and score are replaced by
    their next version (a new str, the old one freed), as profile edits do.
Single-threaded. CPython's cyclic GC runs as it does by default; its full
collections (which touch every dict) are counted in RESULT: the mix makes
almost no long-lived containers, so there should be none in the measure
phase.
"""

import argparse
import gc
import json
import math
import os
import random
import sys
import time

MIB = 1 << 20


# ---------------------------------------------------------------- protocol


class Histogram:
    """Latency histogram in ns: 32 log-linear buckets per power of two (~3%),
    fixed size, so recording allocates nothing that lives."""

    SUB = 5

    def __init__(self):
        self.buckets = [0] * (64 << self.SUB)
        self.count = 0
        self.sum_ns = 0
        self.max_ns = 0

    def record(self, ns):
        if ns < 32:
            b = ns
        else:
            shift = ns.bit_length() - 1 - self.SUB
            b = ((shift + 1) << self.SUB) + ((ns >> shift) & 31)
        self.buckets[b] += 1
        self.count += 1
        self.sum_ns += ns
        if ns > self.max_ns:
            self.max_ns = ns

    @classmethod
    def mid_ns(cls, b):
        if b < 32:
            return float(b)
        shift = (b >> cls.SUB) - 1
        lo = (32 + (b & 31)) << shift
        return lo + (1 << shift) / 2.0

    def quantile_us(self, q):
        if self.count == 0:
            return 0.0
        rank = max(1, math.ceil(q * self.count))
        seen = 0
        for b, n in enumerate(self.buckets):
            seen += n
            if seen >= rank:
                return self.mid_ns(b) / 1000.0
        return self.max_ns / 1000.0


def emit(line):
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


# ---------------------------------------------------------------- records

FIRST = ("james mary john patricia robert jennifer michael linda david elizabeth william "
         "barbara richard susan joseph jessica thomas sarah charles karen wei fatima "
         "olga hiroshi amara lucas sofia mateo aisha ivan chen priya").split()
LAST = ("smith johnson williams brown jones garcia miller davis rodriguez martinez "
        "hernandez lopez gonzalez wilson anderson thomas taylor moore jackson martin "
        "kowalski nguyen kim tanaka okafor silva rossi muller novak ivanova").split()
CITIES = (("Berlin", "DE"), ("Paris", "FR"), ("Lagos", "NG"), ("Sao Paulo", "BR"),
          ("Tokyo", "JP"), ("Toronto", "CA"), ("Austin", "US"), ("Mumbai", "IN"),
          ("Warsaw", "PL"), ("Madrid", "ES"), ("Seoul", "KR"), ("Nairobi", "KE"),
          ("Chicago", "US"), ("Lyon", "FR"), ("Osaka", "JP"), ("Lima", "PE"))
DOMAINS = ("example.com", "mail.example.org", "corp.example.net", "example.io")


class RecordMaker:
    """Deterministic records: record i's version v depends on (seed, i, v)
    alone, so an update can be regenerated and checked."""

    def __init__(self, seed):
        rng = random.Random(seed ^ 0x70c4b)
        syll = ["ka", "to", "ri", "an", "el", "mo", "su", "ne", "li", "or", "da", "ve",
                "pa", "in", "es", "ho", "ru", "te", "mi", "lo", "ba", "ce", "go", "fi"]
        vocab = set()
        while len(vocab) < 4096:
            vocab.add("".join(rng.choice(syll) for _ in range(rng.randint(1, 4))))
        self.vocab = sorted(vocab)
        rng.shuffle(self.vocab)
        # Word k has weight 1/(k+1): Zipf's law for text.
        acc, self.cum = 0.0, []
        for k in range(len(self.vocab)):
            acc += 1.0 / (k + 1)
            self.cum.append(acc)
        self.seed = seed

    def words(self, rng, n):
        return rng.choices(self.vocab, cum_weights=self.cum, k=n)

    def make(self, i):
        rng = random.Random((self.seed << 32) ^ i)
        first, last = rng.choice(FIRST), rng.choice(LAST)
        city, country = rng.choice(CITIES)
        rec = {
            "id": i,
            "email": "%s.%s%d@%s" % (first, last, i, rng.choice(DOMAINS)),
            "name": "%s %s" % (first.capitalize(), last.capitalize()),
            "city": city,
            "country": country,
            "tags": self.words(rng, rng.randint(3, 6)),
            "created": 1_600_000_000 + rng.randrange(100_000_000),
            "hits": 0,
            "version": 0,
        }
        self.revise(rec, 0)
        return rec

    def revise(self, rec, version):
        """Sets the fields an update changes to their `version`."""
        rng = random.Random((self.seed << 40) ^ (rec["id"] << 8) ^ version)
        rec["bio"] = " ".join(self.words(rng, rng.randint(20, 120)))
        rec["score"] = round(rng.random() * 100.0, 3)
        rec["version"] = version


def scatter(n):
    """A bijection on [0, n) spreading consecutive ranks over all ids (the
    same as bench/workload_util.h's Scatter)."""
    mul = (0x9E3779B97F4A7C15 % n) | 1
    while _gcd(mul, n) != 1:
        mul += 2
    add = 0x632BE59BD9B4E019 % n
    return lambda k: (k * mul + add) % n


def _gcd(a, b):
    while b:
        a, b = b, a % b
    return a


# ---------------------------------------------------------------- workload


def load(maker, size_bytes):
    by_id, by_email, emails = {}, {}, []
    loaded = 0
    while loaded < size_bytes:
        rec = maker.make(len(emails))
        loaded += len(json.dumps(rec))
        by_id[rec["id"]] = rec
        by_email[rec["email"]] = rec
        emails.append(rec["email"])
    return by_id, by_email, emails


def run_phases(args, maker, by_id, by_email, emails, start_ns):
    n = len(emails)
    hot = max(1, n * args.hot_percent // 100)
    spread = scatter(n)
    rng = random.Random(args.seed ^ 0x5EED)
    hist = Histogram()
    counts = {"gets": 0, "sets": 0, "misses": 0, "checksum": 0}
    next_tick = start_ns + 1_000_000_000
    ops_total = ops_at_tick = 0
    gc_full_before = None
    clock = time.monotonic_ns
    for counted in (False, True):
        emit("PHASE " + ("measure" if counted else "settle"))
        if counted:
            gc_full_before = gc.get_stats()[2]["collections"]
        phase_start = now = clock()
        end = phase_start + (args.measure_s if counted else args.settle_s) * 1_000_000_000
        ops = 0
        while now < end:
            t0 = now
            i = spread(rng.randrange(hot))
            if rng.randrange(100) < args.set_percent:
                rec = by_id[i]
                maker.revise(rec, rec["version"] + 1)
                kind = "sets"
            else:
                rec = by_email.get(emails[i])
                if rec is None:
                    counts["misses"] += 1
                else:
                    rec["hits"] += 1
                    body = json.dumps(rec)
                    counts["checksum"] += len(body) + ord(body[len(body) // 2])
                kind = "gets"
            now = clock()
            ops += 1
            ops_total += 1
            if counted:
                hist.record(now - t0)
                counts[kind] += 1
            if now >= next_tick:
                emit("TICK %.3f %d" % ((now - start_ns) / 1e9, ops_total - ops_at_tick))
                ops_at_tick = ops_total
                while next_tick <= now:
                    next_tick += 1_000_000_000
    seconds = (now - phase_start) / 1e9
    emit("PHASE done")
    result = {
        "ops": ops, "seconds": round(seconds, 3),
        "ops_per_s": round(ops / seconds, 1) if seconds > 0 else 0.0,
        "p50_us": hist.quantile_us(0.50), "p99_us": hist.quantile_us(0.99),
        "p999_us": hist.quantile_us(0.999),
        "mean_us": round(hist.sum_ns / max(1, hist.count) / 1000.0, 2),
        "max_us": hist.max_ns / 1000.0,
        "gets": counts["gets"], "sets": counts["sets"], "misses": counts["misses"],
        "records": n, "hot_records": hot,
        "gc_full_collections_measure": gc.get_stats()[2]["collections"] - gc_full_before,
        "checksum": counts["checksum"] & 0xFFFFFF,
    }
    emit("RESULT " + json.dumps(result))
    return counts["misses"] == 0


def parse_args(argv):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0], allow_abbrev=False)
    p.add_argument("--size_mb", type=int, default=256, help="MiB of record JSON to load")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--settle_s", type=int, default=30)
    p.add_argument("--measure_s", type=int, default=60)
    p.add_argument("--hot_percent", type=int, default=10)
    p.add_argument("--set_percent", type=int, default=5)
    args = p.parse_args(argv)
    if (args.size_mb <= 0 or args.settle_s < 0 or args.measure_s <= 0
            or not 0 < args.hot_percent <= 100 or not 0 <= args.set_percent <= 100):
        p.error("need --size_mb > 0, --measure_s > 0, 0 < --hot_percent <= 100, "
                "0 <= --set_percent <= 100")
    return args


def main(argv):
    args = parse_args(argv)
    start = time.monotonic_ns()
    emit("PHASE load")
    maker = RecordMaker(args.seed)
    by_id, by_email, emails = load(maker, args.size_mb * MIB)
    emit("loaded %d records (%d MiB of JSON) in %.1f s; PYTHONMALLOC=%s" % (
        len(emails), args.size_mb, (time.monotonic_ns() - start) / 1e9,
        os.environ.get("PYTHONMALLOC", "(default: pymalloc)")))
    ok = run_phases(args, maker, by_id, by_email, emails, start)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
