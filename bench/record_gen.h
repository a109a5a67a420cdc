// Realistic records for the footprint workloads: a user profile with text,
// JSON-like fields, numbers and random identifiers, deterministic in
// (seed, id, version).
//
// Why not constant bytes: a page of 'x' is same-filled or compresses 100x,
// which would make any compressing cache look perfect. These records mix
// - English-like text from a ~400-word vocabulary with a skewed (Zipf-like)
//   word frequency, sentence structure and punctuation,
// - names, e-mail addresses, cities, tags drawn from lists,
// - numbers printed in full precision, ISO timestamps,
// - random hex identifiers (UUIDs, session tokens) that do not compress.
// - arrays of small objects with repeated keys (orders), as JSON documents
//   have.
// A 4 KiB page of their JSON, records laid end to end, compresses with LZ4
// to ~2630 B (ratio 1.56; check with `bazel run //bench:record_gen_check`):
// between DESIGN.md's English-text page (2868 B) and its JSON-like page
// (1711 B, whose notes come from a 22-word vocabulary). Sizes are log-normal:
// median ~1.0 KB, mean ~1.14 KB, from ~0.4 KB to ~6 KB.
#ifndef COLDHEAP_BENCH_RECORD_GEN_H_
#define COLDHEAP_BENCH_RECORD_GEN_H_

#include <cstdint>
#include <string>
#include <vector>

namespace coldheap::bench {

struct Order {
  std::string sku;  // "SKU-" and 6 random hex digits
  uint32_t quantity = 0;
  double price = 0;
  const char* status = "";  // placed, paid, shipped, ...
  int64_t placed_unix = 0;
};

struct Profile {
  uint64_t id = 0;
  uint32_t version = 0;
  std::string uuid;   // 36 characters, random hex
  std::string name;   // "Maria Okafor"
  std::string email;  // "maria.okafor87@mailbox.example"
  std::string city;
  std::string country;  // two letters
  int64_t created_unix = 0;
  double balance = 0;
  uint32_t visits = 0;
  bool verified = false;
  std::vector<std::string> tags;  // 0-6 tags
  std::vector<double> scores;     // 0-8 numbers
  std::vector<Order> orders;      // 0-30, median 4
  std::string bio;                // sentences of text
  std::string session;            // 32 hex characters, random
};

// The profile for (seed, id, version).
Profile MakeProfile(uint64_t seed, uint64_t id, uint32_t version);

// Appends the profile as one line of JSON to `out`.
void AppendJson(const Profile& p, std::string& out);

// MakeProfile + AppendJson into a fresh string.
std::string ProfileJson(uint64_t seed, uint64_t id, uint32_t version);

}  // namespace coldheap::bench

#endif  // COLDHEAP_BENCH_RECORD_GEN_H_
