// Small pieces shared by the footprint workloads (kv_cache, kv_client,
// sqlite_workload): flags, a seeded PRNG, a Zipfian generator, a latency
// histogram, and the stdout protocol the footprint runner reads.
//
// The protocol, one line each, flushed at once:
//   PHASE <name>        a phase starts now: load, settle, measure, done
//   TICK <t_s> <ops>    ops completed in the second that ended at t_s (seconds
//                       since the workload started)
//   RESULT {json}       the last line: the measured phase's figures, e.g.
//                       {"ops": 123, "seconds": 60.0, "ops_per_s": 2.05,
//                        "p50_us": 1.2, "p99_us": 5.5, ...}
// Everything else on stdout is free text for a person.
#ifndef COLDHEAP_BENCH_WORKLOAD_UTIL_H_
#define COLDHEAP_BENCH_WORKLOAD_UTIL_H_

#include <cstdint>
#include <string>
#include <vector>

namespace coldheap::bench {

// Parses the flags each workload declares with ABSL_FLAG (--name=value or
// --name value) with absl::ParseCommandLine: an unknown flag or a bad value
// exits with a message (status 1, from Abseil), as does an argument that is
// not a flag (status 2), so a typo never runs a different experiment than
// asked. --help lists the flags with `usage`.
void ParseFlags(int argc, char** argv, const char* usage);

// xoshiro256** seeded through splitmix64: fast, good, reproducible.
class Rng {
 public:
  explicit Rng(uint64_t seed);
  uint64_t Next();
  // Uniform in [0, n), n > 0.
  uint64_t Below(uint64_t n);
  // Uniform in [0, 1).
  double Unit();

 private:
  uint64_t s_[4];
};

// A key popularity distribution: item ranks 0..n-1, rank 0 the most popular,
// P(rank k) proportional to 1/(k+1)^theta (YCSB's ZipfianGenerator, Gray et
// al.; theta < 1). Construction is O(n), each draw O(1).
class Zipf {
 public:
  Zipf(uint64_t n, double theta);
  uint64_t Draw(Rng& rng) const;

 private:
  uint64_t n_;
  double theta_, alpha_, zetan_, eta_, half_pow_theta_;
};

// A bijection on [0, n): spreads consecutive ranks over the whole key space,
// so the popular keys are not the ones loaded first (insertion order and
// popularity are unrelated in a real cache).
class Scatter {
 public:
  explicit Scatter(uint64_t n);
  uint64_t operator()(uint64_t i) const;

 private:
  uint64_t n_, mul_, add_;
};

// Latency histogram in nanoseconds: log-linear buckets (32 per power of two,
// ~3% resolution), no allocation while recording.
class LatencyHistogram {
 public:
  LatencyHistogram();
  void Record(uint64_t ns);
  void Merge(const LatencyHistogram& other);
  uint64_t count() const { return count_; }
  // Value at quantile q in [0, 1], in microseconds (bucket midpoint).
  double QuantileUs(double q) const;
  double MeanUs() const;
  double MaxUs() const { return max_ns_ / 1000.0; }

 private:
  static constexpr int kSubBits = 5;
  static int Bucket(uint64_t ns);
  static double BucketMidNs(int b);
  std::vector<uint64_t> buckets_;
  uint64_t count_ = 0;
  double sum_ns_ = 0;
  uint64_t max_ns_ = 0;
};

uint64_t NowNs();  // CLOCK_MONOTONIC

// The protocol lines (see the top of this file).
void PrintPhase(const char* name);
void PrintTick(double t_s, uint64_t ops);
// `extra` is appended inside the JSON object (",\"k\":v" pieces) when set.
void PrintResult(uint64_t ops, double seconds, const LatencyHistogram& h,
                 const std::string& extra);

// Calls tick(elapsed) once per whole second since `start_ns`; returns the
// time of the next tick. A helper for the workloads' loops.
struct Ticker {
  uint64_t start_ns;
  uint64_t next_ns;
  uint64_t ops_at_last = 0;
  explicit Ticker(uint64_t start);
  // If a second boundary passed, prints TICK with the ops since the last one.
  void Maybe(uint64_t now_ns, uint64_t ops_total);
};

// The settle and measure phases of a single-threaded request loop, each
// bounded by time: calls op(counted, now_ns) until the phase's seconds are
// up, times every operation of the measure phase, prints the PHASE and TICK
// lines, and at the end RESULT with extra() appended (see PrintResult).
template <typename Op, typename Extra>
void RunPhases(uint64_t start_ns, uint64_t settle_s, uint64_t measure_s,
               Op&& op, Extra&& extra) {
  LatencyHistogram hist;
  Ticker ticker(start_ns);
  uint64_t ops_total = 0;
  for (bool counted : {false, true}) {
    PrintPhase(counted ? "measure" : "settle");
    uint64_t phase_start = NowNs();
    uint64_t end =
        phase_start + (counted ? measure_s : settle_s) * 1'000'000'000ull;
    uint64_t now = phase_start, ops = 0;
    while (now < end) {
      uint64_t t0 = now;
      op(counted, t0);
      now = NowNs();
      ++ops;
      ++ops_total;
      if (counted) hist.Record(now - t0);
      if ((ops & 63) == 0) ticker.Maybe(now, ops_total);
    }
    if (counted) {
      PrintPhase("done");
      PrintResult(ops, static_cast<double>(now - phase_start) / 1e9, hist,
                  extra());
    }
  }
}

}  // namespace coldheap::bench

#endif  // COLDHEAP_BENCH_WORKLOAD_UTIL_H_
