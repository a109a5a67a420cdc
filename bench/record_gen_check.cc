// Prints what the footprint workloads' records look like to a compressor:
// their size distribution, and LZ4's compressed size of 4 KiB pages of them
// laid end to end (as a heap of records is). Usage:
//   bazel run //bench:record_gen_check [-- --records=N --seed=S]
#include <lz4.h>

#include <algorithm>
#include <cstdio>
#include <string>
#include <vector>

#include "absl/flags/flag.h"
#include "bench/record_gen.h"
#include "bench/workload_util.h"

ABSL_FLAG(uint64_t, records, 20000, "records to generate");
ABSL_FLAG(uint64_t, seed, 1, "seed of the records");

int main(int argc, char** argv) {
  using namespace coldheap::bench;
  ParseFlags(argc, argv, "record sizes and LZ4's ratio on pages of them");
  uint64_t records = absl::GetFlag(FLAGS_records);
  uint64_t seed = absl::GetFlag(FLAGS_seed);
  std::vector<size_t> sizes;
  std::string heap;
  for (uint64_t id = 0; id < records; ++id) {
    size_t before = heap.size();
    heap += ProfileJson(seed, id, 0);
    sizes.push_back(heap.size() - before);
  }
  std::sort(sizes.begin(), sizes.end());
  size_t total = heap.size();
  printf("records %llu, bytes %zu, size min %zu p10 %zu median %zu mean %zu p90 %zu max %zu\n",
         static_cast<unsigned long long>(records), total, sizes.front(),
         sizes[sizes.size() / 10], sizes[sizes.size() / 2], total / sizes.size(),
         sizes[sizes.size() * 9 / 10], sizes.back());
  std::vector<char> out(LZ4_compressBound(4096));
  size_t pages = total / 4096, compressed = 0;
  for (size_t i = 0; i < pages; ++i) {
    compressed += static_cast<size_t>(
        LZ4_compress_default(heap.data() + i * 4096, out.data(), 4096,
                             static_cast<int>(out.size())));
  }
  printf("LZ4 per 4 KiB page: %zu bytes on average (ratio %.2f) over %zu pages\n",
         compressed / pages, 4096.0 * static_cast<double>(pages) / static_cast<double>(compressed), pages);
  printf("sample: %s\n", ProfileJson(seed, 7, 0).c_str());
  return 0;
}
