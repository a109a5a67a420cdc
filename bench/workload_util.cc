#include "bench/workload_util.h"

#include <time.h>

#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <numeric>

#include "absl/flags/parse.h"
#include "absl/flags/usage.h"

namespace coldheap::bench {

void ParseFlags(int argc, char** argv, const char* usage) {
  absl::SetProgramUsageMessage(usage);
  std::vector<char*> positional = absl::ParseCommandLine(argc, argv);
  if (positional.size() > 1) {
    fprintf(stderr, "%s: unexpected argument '%s' (flags are --name=value)\n",
            argv[0], positional[1]);
    exit(2);
  }
}

namespace {
uint64_t SplitMix(uint64_t& x) {
  uint64_t z = (x += 0x9e3779b97f4a7c15ull);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  return z ^ (z >> 31);
}
uint64_t Rotl(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }
}  // namespace

Rng::Rng(uint64_t seed) {
  for (uint64_t& s : s_) s = SplitMix(seed);
}

uint64_t Rng::Next() {
  uint64_t result = Rotl(s_[1] * 5, 7) * 9;
  uint64_t t = s_[1] << 17;
  s_[2] ^= s_[0];
  s_[3] ^= s_[1];
  s_[1] ^= s_[2];
  s_[0] ^= s_[3];
  s_[2] ^= t;
  s_[3] = Rotl(s_[3], 45);
  return result;
}

uint64_t Rng::Below(uint64_t n) {
  return static_cast<uint64_t>((static_cast<unsigned __int128>(Next()) * n) >>
                               64);
}

double Rng::Unit() { return (Next() >> 11) * 0x1.0p-53; }

Zipf::Zipf(uint64_t n, double theta) : n_(n), theta_(theta) {
  double zeta2 = 1.0 + std::pow(0.5, theta);
  zetan_ = 0;
  for (uint64_t i = 1; i <= n; ++i)
    zetan_ += std::pow(static_cast<double>(i), -theta);
  alpha_ = 1.0 / (1.0 - theta);
  eta_ = (1.0 - std::pow(2.0 / static_cast<double>(n), 1.0 - theta)) /
         (1.0 - zeta2 / zetan_);
  half_pow_theta_ = std::pow(0.5, theta);
}

uint64_t Zipf::Draw(Rng& rng) const {
  double u = rng.Unit();
  double uz = u * zetan_;
  if (uz < 1.0) return 0;
  if (uz < 1.0 + half_pow_theta_) return n_ > 1 ? 1 : 0;
  uint64_t r = static_cast<uint64_t>(static_cast<double>(n_) *
                                     std::pow(eta_ * u - eta_ + 1.0, alpha_));
  return r >= n_ ? n_ - 1 : r;
}

Scatter::Scatter(uint64_t n) : n_(n == 0 ? 1 : n) {
  mul_ = (0x9e3779b97f4a7c15ull % n_) | 1;
  while (std::gcd(mul_, n_) != 1) mul_ += 2;
  add_ = 0x632be59bd9b4e019ull % n_;
}

uint64_t Scatter::operator()(uint64_t i) const {
  unsigned __int128 x = static_cast<unsigned __int128>(i) * mul_ + add_;
  return static_cast<uint64_t>(x % n_);
}

LatencyHistogram::LatencyHistogram() : buckets_(64 << kSubBits, 0) {}

int LatencyHistogram::Bucket(uint64_t ns) {
  if (ns < (1u << kSubBits)) return static_cast<int>(ns);
  int msb = 63 - __builtin_clzll(ns);
  int shift = msb - kSubBits;
  uint64_t sub = (ns >> shift) & ((1u << kSubBits) - 1);
  return ((shift + 1) << kSubBits) + static_cast<int>(sub);
}

double LatencyHistogram::BucketMidNs(int b) {
  if (b < (1 << kSubBits)) return b;
  int shift = (b >> kSubBits) - 1;
  uint64_t sub = b & ((1 << kSubBits) - 1);
  double lo = static_cast<double>(((1ull << kSubBits) + sub) << shift);
  return lo + static_cast<double>(1ull << shift) / 2;
}

void LatencyHistogram::Record(uint64_t ns) {
  ++buckets_[Bucket(ns)];
  ++count_;
  sum_ns_ += static_cast<double>(ns);
  if (ns > max_ns_) max_ns_ = ns;
}

void LatencyHistogram::Merge(const LatencyHistogram& o) {
  for (size_t i = 0; i < buckets_.size(); ++i) buckets_[i] += o.buckets_[i];
  count_ += o.count_;
  sum_ns_ += o.sum_ns_;
  if (o.max_ns_ > max_ns_) max_ns_ = o.max_ns_;
}

double LatencyHistogram::QuantileUs(double q) const {
  if (count_ == 0) return 0;
  uint64_t rank =
      static_cast<uint64_t>(std::ceil(q * static_cast<double>(count_)));
  if (rank == 0) rank = 1;
  uint64_t seen = 0;
  for (size_t b = 0; b < buckets_.size(); ++b) {
    seen += buckets_[b];
    if (seen >= rank) return BucketMidNs(static_cast<int>(b)) / 1000.0;
  }
  return max_ns_ / 1000.0;
}

double LatencyHistogram::MeanUs() const {
  return count_ == 0 ? 0 : sum_ns_ / static_cast<double>(count_) / 1000.0;
}

uint64_t NowNs() {
  timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<uint64_t>(ts.tv_sec) * 1'000'000'000ull +
         static_cast<uint64_t>(ts.tv_nsec);
}

void PrintPhase(const char* name) {
  printf("PHASE %s\n", name);
  fflush(stdout);
}

void PrintTick(double t_s, uint64_t ops) {
  printf("TICK %.3f %llu\n", t_s, static_cast<unsigned long long>(ops));
  fflush(stdout);
}

void PrintResult(uint64_t ops, double seconds, const LatencyHistogram& h,
                 const std::string& extra) {
  printf(
      "RESULT {\"ops\": %llu, \"seconds\": %.3f, \"ops_per_s\": %.1f, "
      "\"p50_us\": %.2f, \"p99_us\": %.2f, \"p999_us\": %.2f, "
      "\"mean_us\": %.2f, \"max_us\": %.1f%s}\n",
      static_cast<unsigned long long>(ops), seconds,
      seconds > 0 ? static_cast<double>(ops) / seconds : 0.0,
      h.QuantileUs(0.50), h.QuantileUs(0.99), h.QuantileUs(0.999), h.MeanUs(),
      h.MaxUs(), extra.c_str());
  fflush(stdout);
}

Ticker::Ticker(uint64_t start)
    : start_ns(start), next_ns(start + 1'000'000'000ull) {}

void Ticker::Maybe(uint64_t now_ns, uint64_t ops_total) {
  if (now_ns < next_ns) return;
  PrintTick(static_cast<double>(now_ns - start_ns) / 1e9,
            ops_total - ops_at_last);
  ops_at_last = ops_total;
  while (next_ns <= now_ns) next_ns += 1'000'000'000ull;
}

}  // namespace coldheap::bench
