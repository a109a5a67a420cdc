// A built-in key-value cache: the footprint runner's own workload.
//
// What it holds: user profiles (bench/record_gen.h) as a program keeps them
// in memory, not as one blob each: a Record with numbers and pointers
// (`referrer` links to another record, as object graphs do) and a Profile of
// std::strings and std::vectors, each a separate heap allocation, indexed by
// an std::unordered_map<std::string, Record*> keyed "user:0000001234".
//
// Phases (printed as PHASE lines, see bench/workload_util.h):
//   load     inserts records until their JSON size reaches --size_mb MiB
//            (the heap is bigger: struct, string and hash-table overhead).
//   settle   --settle_s seconds of the request mix below, not counted: lets
//            the cache (and anything managing its memory) reach a steady
//            state. Pass at least two cold ages of whatever is measured.
//   measure  --measure_s seconds of the same mix, counted: throughput and
//            per-operation latency.
// The request mix: key popularity is Zipfian (--zipf_theta, 0.99 as YCSB)
// over a hot set of --hot_percent of the keys (default 100: all of them;
// the rest are never asked for again after the load, as old entries of a
// cache that nobody evicts), ranks scattered over the key space (popular
// keys are not the first loaded); --set_percent of requests replace a record with its
// next version (new strings, old ones freed); the rest are GETs, which look
// the key up, bump the record's hit count and last-access time (as redis's
// LRU clock and memcached's item time do: a small write to the record's
// header) and serialize the record to JSON into a response buffer.
// --touch_on_get=0 turns that write off (a read-only GET).
//
// --popularity=recency: popularity follows age instead, as in session
// stores and feed caches, where new entries get most requests and interest
// fades as they age. Its parameters, fixed before measuring:
//   - the same Zipf(--zipf_theta) over the same --hot_percent of the keys,
//     but the rank is the age: rank 0 the newest key, rank 1 the one before
//     it, ... So the two modes differ in where the popular keys lie in the
//     heap (together, in the order they were allocated; or scattered), and
//     in the churn below, not in how skewed the requests are.
//   - keys keep arriving: one new record every --ttl_s / records seconds
//     (in time, not per request, so every run sees the same arrivals
//     whatever its throughput), and the oldest record expires for each, as
//     a TTL does: the cache always holds the newest `records` keys, each for
//     --ttl_s seconds. Default 1800 s: 30 minutes, the usual session idle
//     timeout. An arrival is an operation of its own (a SET of a new key,
//     timed like the rest); the expiry frees the old record.
//   - records have no referrer in this mode: an expired record would leave
//     the newer ones pointing at freed memory.
//
// Last line: RESULT {json} with ops, ops_per_s, p50_us, p99_us, ... of the
// measure phase. Single-threaded; every loop is bounded by time or size.
#include <cstdio>
#include <memory>
#include <string>
#include <unordered_map>
#include <vector>

#include "absl/flags/flag.h"
#include "bench/record_gen.h"
#include "bench/workload_util.h"

ABSL_FLAG(uint64_t, size_mb, 512, "MiB of record JSON to load");
ABSL_FLAG(uint64_t, seed, 1, "seed of the records and the request mix");
ABSL_FLAG(uint64_t, settle_s, 30, "seconds of requests before measuring");
ABSL_FLAG(uint64_t, measure_s, 60, "seconds of measured requests");
ABSL_FLAG(double, zipf_theta, 0.99, "Zipf exponent of key popularity, (0, 1)");
ABSL_FLAG(uint64_t, set_percent, 5, "percent of requests that replace a record");
ABSL_FLAG(uint64_t, touch_on_get, 1, "0: a GET does not write the record");
ABSL_FLAG(uint64_t, hot_percent, 100, "percent of the keys ever requested");
ABSL_FLAG(std::string, popularity, "scattered",
          "scattered or recency: popular keys scattered, or the newest");
ABSL_FLAG(uint64_t, ttl_s, 1800,
          "recency: seconds each record lives; one arrives every ttl_s/records s");

namespace coldheap::bench {
namespace {

struct Record {
  uint64_t id = 0;
  uint32_t version = 0;
  uint32_t hits = 0;
  uint64_t last_access_ns = 0;
  Record* referrer = nullptr;
  Profile profile;
};

std::string Key(uint64_t id) {
  char buf[32];
  snprintf(buf, sizeof(buf), "user:%010llu", static_cast<unsigned long long>(id));
  return buf;
}

class Cache {
 public:
  // `referrers`: each record links to a random older one (not when records
  // expire: the link could outlive its target).
  Cache(uint64_t seed, bool referrers) : seed_(seed), referrers_(referrers) {}

  // Loads records until their JSON size reaches `bytes`; returns how many.
  uint64_t Load(uint64_t bytes) {
    std::string json;
    uint64_t loaded = 0;
    Rng rng(seed_ ^ 0x10ad);
    while (loaded < bytes) {
      uint64_t id = records_.size();
      auto r = std::make_unique<Record>();
      r->id = id;
      r->profile = MakeProfile(seed_, id, 0);
      if (referrers_ && id > 0) r->referrer = records_[rng.Below(id)].get();
      json.clear();
      AppendJson(r->profile, json);
      loaded += json.size();
      index_.emplace(Key(id), r.get());
      records_.push_back(std::move(r));
    }
    return records_.size();
  }

  // Ids ever inserted: the newest record is next_id() - 1.
  uint64_t next_id() const { return records_.size(); }

  // A new record arrives with the next id, and the oldest one expires.
  void Arrive() {
    uint64_t id = records_.size();
    auto r = std::make_unique<Record>();
    r->id = id;
    r->profile = MakeProfile(seed_, id, 0);
    index_.emplace(Key(id), r.get());
    records_.push_back(std::move(r));
    index_.erase(Key(oldest_));
    records_[oldest_++].reset();
  }

  // A GET: returns the response size (0 on a miss).
  size_t Get(uint64_t id, bool touch, uint64_t now_ns) {
    auto it = index_.find(Key(id));
    if (it == index_.end()) return 0;
    Record* r = it->second;
    if (touch) {
      ++r->hits;
      r->last_access_ns = now_ns;
    }
    response_.clear();
    AppendJson(r->profile, response_);
    if (r->referrer != nullptr) {
      response_ += ",\"referrer\":";
      response_ += r->referrer->profile.name;
    }
    // Consume the bytes, as a send would.
    uint64_t sum = 0;
    for (size_t i = 0; i < response_.size(); i += 64) sum += response_[i];
    checksum_ += sum;
    return response_.size();
  }

  // A SET: the record's next version replaces it.
  void Set(uint64_t id) {
    auto it = index_.find(Key(id));
    if (it == index_.end()) return;
    Record* r = it->second;
    ++r->version;
    r->profile = MakeProfile(seed_, id, r->version);
  }

  uint64_t checksum() const { return checksum_; }

 private:
  uint64_t seed_;
  bool referrers_;
  uint64_t oldest_ = 0;  // records_[i] is null below it (expired)
  std::vector<std::unique_ptr<Record>> records_;
  std::unordered_map<std::string, Record*> index_;
  std::string response_;
  uint64_t checksum_ = 0;
};

int Main(int argc, char** argv) {
  ParseFlags(argc, argv, "the footprint runner's key-value cache");
  uint64_t size_mb = absl::GetFlag(FLAGS_size_mb);
  uint64_t seed = absl::GetFlag(FLAGS_seed);
  uint64_t settle_s = absl::GetFlag(FLAGS_settle_s);
  uint64_t measure_s = absl::GetFlag(FLAGS_measure_s);
  double theta = absl::GetFlag(FLAGS_zipf_theta);
  uint64_t set_percent = absl::GetFlag(FLAGS_set_percent);
  bool touch = absl::GetFlag(FLAGS_touch_on_get) != 0;
  uint64_t hot_percent = absl::GetFlag(FLAGS_hot_percent);
  std::string popularity = absl::GetFlag(FLAGS_popularity);
  uint64_t ttl_s = absl::GetFlag(FLAGS_ttl_s);
  bool recency = popularity == "recency";
  // !(0 < theta < 1) also rejects a NaN, which absl's double flag accepts.
  if (size_mb == 0 || !(theta > 0 && theta < 1) || set_percent > 100 ||
      hot_percent == 0 || hot_percent > 100 || ttl_s == 0 ||
      (!recency && popularity != "scattered")) {
    fprintf(stderr, "kv_cache: need --size_mb > 0, 0 < --zipf_theta < 1, "
                    "--set_percent <= 100, 0 < --hot_percent <= 100, --ttl_s > 0, "
                    "--popularity=scattered or recency\n");
    return 2;
  }

  uint64_t start = NowNs();
  PrintPhase("load");
  Cache cache(seed, !recency);
  uint64_t n = cache.Load(size_mb << 20);
  printf("loaded %llu records (%llu MiB of JSON) in %.1f s\n",
         static_cast<unsigned long long>(n), static_cast<unsigned long long>(size_mb),
         static_cast<double>(NowNs() - start) / 1e9);

  uint64_t hot = n * hot_percent / 100;
  Zipf zipf(hot > 0 ? hot : 1, theta);
  Scatter scatter(n);  // hot ranks land anywhere among all n keys
  Rng rng(seed ^ 0x5eed);
  uint64_t misses = 0, gets = 0, sets = 0, arrivals = 0;
  // Recency: one arrival every ttl_s / n seconds, from the end of the load.
  uint64_t arrival_ns = ttl_s * 1'000'000'000ull / n;
  uint64_t next_arrival = NowNs() + arrival_ns;
  RunPhases(
      start, settle_s, measure_s,
      [&](bool counted, uint64_t now) {
        if (recency && now >= next_arrival) {
          cache.Arrive();
          next_arrival += arrival_ns;
          if (counted) ++arrivals;
          return;
        }
        uint64_t rank = zipf.Draw(rng);
        uint64_t id = recency ? cache.next_id() - 1 - rank : scatter(rank);
        bool is_set = rng.Below(100) < set_percent;
        if (is_set) {
          cache.Set(id);
        } else if (cache.Get(id, touch, now) == 0) {
          ++misses;
        }
        if (counted) (is_set ? sets : gets) += 1;
      },
      [&] {
        char extra[256];
        snprintf(extra, sizeof(extra),
                 ", \"gets\": %llu, \"sets\": %llu, \"misses\": %llu, "
                 "\"arrivals\": %llu, \"records\": %llu, \"checksum\": %llu",
                 static_cast<unsigned long long>(gets),
                 static_cast<unsigned long long>(sets),
                 static_cast<unsigned long long>(misses),
                 static_cast<unsigned long long>(arrivals),
                 static_cast<unsigned long long>(n),
                 static_cast<unsigned long long>(cache.checksum() & 0xffffff));
        return std::string(extra);
      });
  return misses == 0 ? 0 : 1;
}

}  // namespace
}  // namespace coldheap::bench

int main(int argc, char** argv) { return coldheap::bench::Main(argc, argv); }
