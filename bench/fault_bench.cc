// What coldheap costs the program, as figures (Google Benchmark user
// counters), not tests. Run under the shim by bench/fault_bench.sh, which
// sets the environment each group needs and prints the Markdown table.
//
// Under LD_PRELOAD=libcoldheap.so, COLDHEAP_COLD_AGE=0 (run with --benchmark_filter
// '^(evict|refault|anon_fault)'):
//   evict               fill 64 MiB of text / JSON / CSV-of-numbers pages
//                       right after a scan, let the next pass evict them;
//                       from the statistics file: pages processed per second
//                       of evictor CPU (and per second of pass wall time).
//   refault/random      the same 64 MiB, evicted; then one read per page,
//   refault/sequential  each timed alone with clock_gettime on the faulting
//                       thread. A page that mincore(2) reports present just
//                       before its touch was restored by an earlier fault's
//                       fault-around: that touch is not a fault. refault_p50/
//                       p99 are over the touches that faulted; faults_per_page
//                       and touch_us_per_page (every touch, faults included)
//                       show what fault-around buys.
//   anon_fault          the same timed touch (a write) in random order on a
//                       plain anonymous mmap (no userfaultfd, no THP).
// Under the shim idle (COLDHEAP_COLD_AGE=60m) and under plain jemalloc
// (filter '^(first_touch|malloc_free)'):
//   first_touch         one write per page of freshly malloc'ed memory vs of a
//                       fresh anonymous mmap in the same process, per page.
//   malloc_free         free + malloc of mixed sizes (16 B..4 KiB, log-
//                       uniform) over a live set of 4096 objects per thread;
//                       CPU time per pair (threads' CPU, summed).
//
// Why the timing is safe from the evictor. With COLD_AGE=0 every pass evicts
// every resident page, so a pass during the timed touches would evict pages
// just restored (and compete for the two vCPUs). The evictor sleeps a whole
// COLDHEAP_SCAN_INTERVAL after each pass, and writes the statistics file as a
// pass's last step. So the benchmark polls the file (every 1 ms, reading it
// into a stack buffer: no malloc, no touch of the heap), and the moment
// `scans` moves it has one quiet interval. The touches are timed inside it;
// `quiet` = 1 says the loop ended before the next pass could start and no
// pass ended meanwhile. With a 1 s interval, 16384 timed faults fit in it.
// The handler-side figures (service-time histogram, handler CPU) come from
// the next pass's file; our thread touches no heap memory in between, so the
// differences are the timed faults.
//
// Everything the timed loops touch (samples, order, page template) is in
// plain mmap'ed memory outside the managed heap, so it never faults.
//
// One file past 600 lines: the five figures share the statistics-file reader
// and the off-heap helpers, and the runner wants a single binary.
#include <fcntl.h>
#include <strings.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "bench/page_corpus.h"
#include "benchmark/benchmark.h"

namespace coldheap::bench {
namespace {

constexpr size_t kPage = 4096;
constexpr size_t kHeapBytes = size_t{64} << 20;  // refault and evict
constexpr size_t kHeapPages = kHeapBytes / kPage;
constexpr size_t kTouchOffset = 2048;  // the byte read; the stamp is at 0

uint64_t NowNs() {
  timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return uint64_t(ts.tv_sec) * 1'000'000'000 + uint64_t(ts.tv_nsec);
}

void SleepMs(unsigned ms) {
  timespec ts{0, long(ms) * 1'000'000};
  nanosleep(&ts, nullptr);
}

// Plain anonymous memory outside the managed heap, 4 KiB pages only.
char* MapAnon(size_t bytes, bool populate) {
  void* p = mmap(nullptr, bytes, PROT_READ | PROT_WRITE,
                 MAP_PRIVATE | MAP_ANONYMOUS | (populate ? MAP_POPULATE : 0),
                 -1, 0);
  if (p == MAP_FAILED) {
    perror("mmap");
    abort();
  }
  madvise(p, bytes, MADV_NOHUGEPAGE);
  return static_cast<char*>(p);
}

// A fixed-size array in MapAnon memory (never in the heap).
template <typename T>
class OffHeap {
 public:
  explicit OffHeap(size_t n)
      : n_(n), bytes_((n * sizeof(T) + kPage - 1) & ~(kPage - 1)),
        p_(reinterpret_cast<T*>(MapAnon(bytes_, true))) {}
  ~OffHeap() { munmap(p_, bytes_); }
  OffHeap(const OffHeap&) = delete;
  OffHeap& operator=(const OffHeap&) = delete;
  T& operator[](size_t i) { return p_[i]; }
  T* begin() { return p_; }
  size_t size() const { return n_; }

 private:
  size_t n_, bytes_;
  T* p_;
};

// Percentile (0..1) of samples[0, n), in microseconds; sorts them.
double PercentileUs(uint64_t* samples, size_t n, double q) {
  if (n == 0) return 0;
  std::sort(samples, samples + n);
  size_t i = std::min(n - 1, size_t(q * double(n - 1) + 0.5));
  return double(samples[i]) / 1000.0;
}

double Median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v.empty() ? 0 : v[v.size() / 2];
}

bool Resident(const char* page) {
  unsigned char vec = 0;
  mincore(const_cast<char*>(page), kPage, &vec);
  return vec & 1;
}

size_t ResidentPages(const char* first, size_t pages) {
  OffHeap<unsigned char> vec(pages);
  if (mincore(const_cast<char*>(first), pages * kPage, vec.begin()) != 0) {
    return pages;
  }
  size_t n = 0;
  for (size_t i = 0; i < pages; ++i) n += vec[i] & 1;
  return n;
}

// ---------------------------------------------------------------------------
// The shim's statistics file, read without allocating.

constexpr int kBuckets = 16;

struct StatsSnapshot {
  double scans = -1, evicted_pages = 0, reject_compress_poor = 0;
  double stored_pages = 0, compressed_bytes = 0, pool_total_size = 0;
  double refaults = 0, fault_around_pages = 0, staged_refaults = 0;
  double evictor_cpu_us = 0, handler_cpu_us = 0;
  double latency[kBuckets] = {};  // fault_latency_us_lt_{1,2,4,...}
};

struct Shim {
  bool active = false;
  char stats_path[512] = {};
  unsigned interval_ms = 1000;
  unsigned fault_around = 8;
};

unsigned ParseDurationMs(const char* s, unsigned fallback) {
  if (s == nullptr) return fallback;
  char* end = nullptr;
  unsigned long v = strtoul(s, &end, 10);
  if (end == s) return fallback;
  if (strcasecmp(end, "ms") == 0) return unsigned(v);
  if (strcasecmp(end, "s") == 0) return unsigned(v * 1000);
  if (strcasecmp(end, "m") == 0) return unsigned(v * 60'000);
  return fallback;
}

// Whether we run under libcoldheap.so, where its statistics file is, and the
// settings the waits depend on. Built once.
const Shim& GetShim() {
  static const Shim shim = [] {
    Shim s;
    const char* preload = getenv("LD_PRELOAD");
    const char* enable = getenv("COLDHEAP_ENABLE");
    s.active = preload != nullptr && strstr(preload, "coldheap") != nullptr &&
               !(enable != nullptr && (strcmp(enable, "0") == 0 ||
                                       strcasecmp(enable, "off") == 0));
    s.interval_ms = ParseDurationMs(getenv("COLDHEAP_SCAN_INTERVAL"), 1000);
    if (const char* fa = getenv("COLDHEAP_FAULT_AROUND")) s.fault_around = atoi(fa);
    std::string path;
    const char* env = getenv("COLDHEAP_STATS");
    if (env != nullptr && env[0] != '\0' && strcmp(env, "stderr") != 0) {
      path = env;
    } else {  // the live file every shim process keeps
      path = "/tmp/coldheap-" + std::to_string(getuid()) + "/%p.stats";
    }
    std::string pid = std::to_string(getpid());
    for (size_t at; (at = path.find("%p")) != std::string::npos;) {
      path.replace(at, 2, pid);
    }
    snprintf(s.stats_path, sizeof(s.stats_path), "%s", path.c_str());
    return s;
  }();
  return shim;
}

void SetField(StatsSnapshot& s, const char* name, double v) {
  struct Field {
    const char* name;
    double StatsSnapshot::*member;
  };
  static constexpr Field kFields[] = {
      {"scans", &StatsSnapshot::scans},
      {"evicted_pages", &StatsSnapshot::evicted_pages},
      {"reject_compress_poor", &StatsSnapshot::reject_compress_poor},
      {"stored_pages", &StatsSnapshot::stored_pages},
      {"compressed_bytes", &StatsSnapshot::compressed_bytes},
      {"pool_total_size", &StatsSnapshot::pool_total_size},
      {"refaults", &StatsSnapshot::refaults},
      {"fault_around_pages", &StatsSnapshot::fault_around_pages},
      {"staged_refaults", &StatsSnapshot::staged_refaults},
      {"evictor_cpu_us", &StatsSnapshot::evictor_cpu_us},
      {"handler_cpu_us", &StatsSnapshot::handler_cpu_us},
  };
  for (const Field& f : kFields) {
    if (strcmp(name, f.name) == 0) {
      s.*f.member = v;
      return;
    }
  }
  const char kLat[] = "fault_latency_us_lt_";
  if (strncmp(name, "fault_latency_us_ge_", 20) == 0) {  // open-ended last
    s.latency[kBuckets - 1] = v;
  } else if (strncmp(name, kLat, sizeof(kLat) - 1) == 0) {
    unsigned long bound = strtoul(name + sizeof(kLat) - 1, nullptr, 10);
    int b = 0;
    while (b < kBuckets - 1 && (1ul << b) < bound) ++b;
    s.latency[b] = v;
  }
}

// "name value" lines after a '#' comment line. False if unreadable.
bool ReadStats(StatsSnapshot& s) {
  char buf[8192];
  int fd = open(GetShim().stats_path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) return false;
  ssize_t n = read(fd, buf, sizeof(buf) - 1);
  close(fd);
  if (n <= 0) return false;
  buf[n] = '\0';
  s = StatsSnapshot();
  for (char* line = buf; line != nullptr && *line != '\0';) {
    char* next = strchr(line, '\n');
    if (next != nullptr) *next++ = '\0';
    char* space = strchr(line, ' ');
    if (line[0] != '#' && space != nullptr) {
      *space = '\0';
      SetField(s, line, strtod(space + 1, nullptr));
    }
    line = next;
  }
  return s.scans >= 0;
}

// Polls the file every millisecond until `scans` reaches `target`; then a
// pass has just ended and the next starts one interval later. `at_ns` gets
// the time it was seen. False on timeout.
bool WaitForScans(double target, StatsSnapshot& s, uint64_t& at_ns) {
  const uint64_t deadline =
      NowNs() + (uint64_t(GetShim().interval_ms) * 4 + 30'000) * 1'000'000;
  for (;;) {
    if (ReadStats(s) && s.scans >= target) {
      at_ns = NowNs();
      return true;
    }
    if (NowNs() > deadline) return false;
    SleepMs(1);
  }
}

// Waits for the next pass boundary after now.
bool NextBoundary(StatsSnapshot& s, uint64_t& at_ns) {
  StatsSnapshot now;
  double target = ReadStats(now) ? now.scans + 1 : 0;
  return WaitForScans(target, s, at_ns);
}

// Median of the handler's service time, from the power-of-two histogram
// difference (bucket b: [2^(b-1), 2^b) us), interpolated within the bucket.
double HistogramP50Us(const StatsSnapshot& a, const StatsSnapshot& b) {
  double d[kBuckets], total = 0;
  for (int i = 0; i < kBuckets; ++i) total += d[i] = b.latency[i] - a.latency[i];
  double seen = 0;
  for (int i = 0; i < kBuckets; ++i) {
    if (d[i] > 0 && seen + d[i] >= total / 2) {
      double lo = i == 0 ? 0 : double(1u << (i - 1)), hi = double(1u << i);
      return lo + (hi - lo) * (total / 2 - seen) / d[i];
    }
    seen += d[i];
  }
  return 0;
}

double HistogramCount(const StatsSnapshot& a, const StatsSnapshot& b) {
  double total = 0;
  for (int i = 0; i < kBuckets; ++i) total += b.latency[i] - a.latency[i];
  return total;
}

// ---------------------------------------------------------------------------
// Realistic page contents: English text, JSON records, CSV of numbers.

std::vector<Page> CsvPages(size_t count, uint64_t seed) {
  static constexpr const char* kMetrics[] = {"cpu_user", "cpu_sys", "mem_rss",
                                             "io_read", "io_write", "net_rx",
                                             "net_tx", "latency_ms"};
  std::mt19937_64 rng(seed);
  std::string stream;
  uint64_t t = 1700000000000 + rng() % 1000000;
  char line[160];
  while (stream.size() < count * kPage) {
    t += rng() % 2000;
    snprintf(line, sizeof(line), "%llu.%03llu,host-%02u,%s,%.3f,%llu,%d\n",
             (unsigned long long)(t / 1000), (unsigned long long)(t % 1000),
             unsigned(rng() % 48), kMetrics[rng() % 8],
             std::uniform_real_distribution<double>(0, 5000)(rng),
             (unsigned long long)(rng() % 100000000), int(rng() % 201) - 100);
    stream += line;
  }
  std::vector<Page> pages(count);
  for (size_t i = 0; i < count; ++i) {
    memcpy(pages[i].data(), stream.data() + i * kPage, kPage);
  }
  return pages;
}

// About 3000 distinct pages, interleaved text / JSON / CSV, kept off the heap.
struct Template {
  char* pages = nullptr;
  size_t count = 0;
};

const Template& GetTemplate() {
  static const Template t = [] {
    std::vector<Page> kinds[3] = {TextPages(1024), JsonPages(1024, 7),
                                  CsvPages(1024, 11)};
    Template r;
    r.pages = MapAnon((kinds[0].size() + 2048) * kPage, false);
    for (size_t i = 0;; ++i) {
      bool any = false;
      for (const std::vector<Page>& k : kinds) {
        if (i < k.size()) {
          memcpy(r.pages + r.count++ * kPage, k[i].data(), kPage);
          any = true;
        }
      }
      if (!any) break;
    }
    return r;
  }();
  return t;
}

// Page i: template page i % count, stamped with i in its first 8 bytes.
void FillPages(char* block, size_t pages) {
  const Template& t = GetTemplate();
  for (size_t i = 0; i < pages; ++i) {
    memcpy(block + i * kPage, t.pages + (i % t.count) * kPage, kPage);
    uint64_t stamp = i;
    memcpy(block + i * kPage, &stamp, sizeof(stamp));
  }
}

size_t CountBadPages(const char* block, size_t pages) {
  const Template& t = GetTemplate();
  size_t bad = 0;
  for (size_t i = 0; i < pages; ++i) {
    const char* p = block + i * kPage;
    uint64_t stamp;
    memcpy(&stamp, p, sizeof(stamp));
    bad += stamp != i || memcmp(p + 8, t.pages + (i % t.count) * kPage + 8,
                                kPage - 8) != 0;
  }
  return bad;
}

// A page-aligned heap block the process keeps to the end: a fresh malloc
// never reuses an old block's evicted pages (writes would refault them).
char* NewHeapBlock(size_t bytes) {
  void* p = aligned_alloc(kPage, bytes);
  if (p == nullptr) abort();
  return static_cast<char*>(p);
}

// ---------------------------------------------------------------------------
// Benchmarks under the shim with COLDHEAP_COLD_AGE=0.

bool NeedShim(benchmark::State& state) {
  if (GetShim().active) return true;
  state.SkipWithError("needs LD_PRELOAD=libcoldheap.so (see fault_bench.sh)");
  return false;
}

// Waits for a pass boundary after two passes that evicted next to nothing,
// so that the passes around the measurement are ours alone. `idle_cpu_us`
// gets the evictor CPU of one such idle pass.
bool WaitUntilQuiet(StatsSnapshot& s, uint64_t& at_ns, double& idle_cpu_us) {
  StatsSnapshot prev;
  if (!NextBoundary(prev, at_ns)) return false;
  int quiet = 0;
  for (int pass = 0; pass < 8; ++pass) {
    if (!WaitForScans(prev.scans + 1, s, at_ns)) return false;
    quiet = s.evicted_pages - prev.evicted_pages < 64 ? quiet + 1 : 0;
    idle_cpu_us = s.evictor_cpu_us - prev.evictor_cpu_us;
    if (quiet >= 2) return true;
    prev = s;
  }
  return true;  // never quiet; measure anyway
}

// The evictor's cost for 64 MiB of fresh pages. The statistics file may
// carry a pass's evictor_cpu_us only from the next pass's file on, so the
// CPU is taken over two passes from a quiet boundary (ours + one idle pass,
// whichever order the file reports them in) minus one idle pass. Wall time:
// the evictor sleeps one interval between passes, so the passes took
// (t2 - t0) - 2 intervals.
void BM_Evict(benchmark::State& state) {
  if (!NeedShim(state)) return;
  GetTemplate();
  const double interval_ns = GetShim().interval_ms * 1e6;
  for (auto _ : state) {
    StatsSnapshot s0, s2;
    uint64_t t0, t2;
    double idle_cpu_us = 0;
    if (!WaitUntilQuiet(s0, t0, idle_cpu_us)) {
      return state.SkipWithError("no statistics file");
    }
    char* block = NewHeapBlock(kHeapBytes);
    FillPages(block, kHeapPages);
    const uint64_t filled = NowNs();
    if (!WaitForScans(s0.scans + 2, s2, t2)) return state.SkipWithError("timeout");
    const double processed = (s2.evicted_pages - s0.evicted_pages) +
                             (s2.reject_compress_poor - s0.reject_compress_poor);
    const double mib = processed * kPage / double(1 << 20);
    const double cpu_s =
        (s2.evictor_cpu_us - s0.evictor_cpu_us - idle_cpu_us) / 1e6;
    const double wall_s = (double(t2 - t0) - 2 * interval_ns) / 1e9;
    const double stored = s2.stored_pages - s0.stored_pages;
    auto& c = state.counters;
    c["processed_MiB"] = mib;
    c["evict_cpu_MiBps"] = cpu_s > 0 ? mib / cpu_s : 0;
    c["evict_wall_MiBps"] = wall_s > 0 ? mib / wall_s : 0;
    c["evictor_cpu_us_per_page"] = processed > 0 ? cpu_s * 1e6 / processed : 0;
    c["idle_pass_cpu_us"] = idle_cpu_us;
    c["lz4_ratio"] = stored * kPage /
                     std::max(1.0, s2.compressed_bytes - s0.compressed_bytes);
    c["pool_ratio"] = stored * kPage /
                      std::max(1.0, s2.pool_total_size - s0.pool_total_size);
    c["rejected_pages"] = s2.reject_compress_poor - s0.reject_compress_poor;
    c["resident_after"] =
        double(ResidentPages(block, kHeapPages)) / kHeapPages;
    c["fill_in_quiet"] = double(filled - t0) < interval_ns;
  }
}

// Waits until `block` is evicted: at least two passes after it was filled,
// then more until at most 2% of it is resident or evictions stop.
bool WaitForEviction(const char* block, StatsSnapshot& s, uint64_t& at_ns) {
  StatsSnapshot start;
  if (!ReadStats(start)) start.scans = 0;
  if (!WaitForScans(start.scans + 2, s, at_ns)) return false;
  for (int extra = 0; extra < 5; ++extra) {
    if (ResidentPages(block, kHeapPages) <= kHeapPages / 50) break;
    const double evicted = s.evicted_pages;
    if (!WaitForScans(s.scans + 1, s, at_ns)) return false;
    if (s.evicted_pages == evicted) break;
  }
  return true;
}

enum class Order { kRandom, kSequential };

void BM_Refault(benchmark::State& state, Order order) {
  if (!NeedShim(state)) return;
  OffHeap<uint32_t> sequence(kHeapPages);
  for (size_t i = 0; i < kHeapPages; ++i) sequence[i] = uint32_t(i);
  if (order == Order::kRandom) {
    std::mt19937_64 rng(42);
    std::shuffle(sequence.begin(), sequence.begin() + kHeapPages, rng);
  }
  OffHeap<uint64_t> fault_ns(kHeapPages);
  GetTemplate();
  for (auto _ : state) {
    char* block = NewHeapBlock(kHeapBytes);
    FillPages(block, kHeapPages);
    StatsSnapshot s0, s1, mid;
    uint64_t t0, t1;
    if (!WaitForEviction(block, s0, t0)) return state.SkipWithError("timeout");
    const size_t evicted = kHeapPages - ResidentPages(block, kHeapPages);
    // -- timed: one read per page, right after a pass --
    size_t faults = 0;
    uint64_t all_ns = 0;
    unsigned sink = 0;
    for (size_t k = 0; k < kHeapPages; ++k) {
      const char* page = block + size_t(sequence[k]) * kPage;
      const bool present = Resident(page);
      const uint64_t a = NowNs();
      sink += *reinterpret_cast<const volatile char*>(page + kTouchOffset);
      const uint64_t b = NowNs();
      all_ns += b - a;
      if (!present) fault_ns[faults++] = b - a;
    }
    const uint64_t end = NowNs();
    benchmark::DoNotOptimize(sink);
    const bool quiet = ReadStats(mid) && mid.scans == s0.scans &&
                       (end - t0) / 1e6 + 2 < GetShim().interval_ms;
    const size_t bad = CountBadPages(block, kHeapPages);
    if (!WaitForScans(s0.scans + 1, s1, t1)) return state.SkipWithError("timeout");
    const double services = HistogramCount(s0, s1);
    auto& c = state.counters;
    c["fault_around"] = GetShim().fault_around;
    c["refault_p50_us"] = PercentileUs(fault_ns.begin(), faults, 0.50);
    c["refault_p99_us"] = PercentileUs(fault_ns.begin(), faults, 0.99);
    c["faults_per_page"] = double(faults) / kHeapPages;
    c["touch_us_per_page"] = all_ns / 1e3 / kHeapPages;
    c["evicted_fraction"] = double(evicted) / kHeapPages;
    c["stats_refaults_per_page"] = (s1.refaults - s0.refaults) / kHeapPages;
    c["staged_refaults"] = s1.staged_refaults - s0.staged_refaults;
    c["handler_service_p50_us"] = HistogramP50Us(s0, s1);
    c["handler_cpu_us_per_fault"] =
        services > 0 ? (s1.handler_cpu_us - s0.handler_cpu_us) / services : 0;
    c["timed_ms"] = (end - t0) / 1e6;
    c["quiet"] = quiet;
    c["bad_pages"] = double(bad);
  }
}

void BM_AnonFault(benchmark::State& state) {
  OffHeap<uint32_t> sequence(kHeapPages);
  for (size_t i = 0; i < kHeapPages; ++i) sequence[i] = uint32_t(i);
  std::mt19937_64 rng(42);
  std::shuffle(sequence.begin(), sequence.begin() + kHeapPages, rng);
  OffHeap<uint64_t> ns(kHeapPages);
  for (auto _ : state) {
    char* region = MapAnon(kHeapBytes, false);
    for (size_t k = 0; k < kHeapPages; ++k) {
      volatile char* p = region + size_t(sequence[k]) * kPage + kTouchOffset;
      const uint64_t a = NowNs();
      *p = 1;
      ns[k] = NowNs() - a;
    }
    munmap(region, kHeapBytes);
    state.counters["anon_fault_p50_us"] = PercentileUs(ns.begin(), kHeapPages, 0.50);
    state.counters["anon_fault_p99_us"] = PercentileUs(ns.begin(), kHeapPages, 0.99);
  }
}

// ---------------------------------------------------------------------------
// Benchmarks with the shim idle (or plain jemalloc).

// Nanoseconds to write one byte into each page of [p, p + bytes).
uint64_t TouchEachPage(char* p, size_t bytes) {
  const uint64_t a = NowNs();
  for (size_t off = 0; off < bytes; off += kPage) {
    reinterpret_cast<volatile char*>(p)[off] = 1;
  }
  return NowNs() - a;
}

void BM_FirstTouch(benchmark::State& state) {
  constexpr size_t kBytes = size_t{16} << 20;
  constexpr int kReps = 7;
  constexpr double kPages = kBytes / kPage;
  std::vector<double> heap_us, anon_us;
  std::vector<char*> blocks;
  for (auto _ : state) {
    for (int r = 0; r < kReps; ++r) {  // alternate, so noise hits both
      blocks.push_back(NewHeapBlock(kBytes));
      heap_us.push_back(TouchEachPage(blocks.back(), kBytes) / 1e3 / kPages);
      char* anon = MapAnon(kBytes, false);
      anon_us.push_back(TouchEachPage(anon, kBytes) / 1e3 / kPages);
      munmap(anon, kBytes);
    }
  }
  for (char* b : blocks) free(b);
  const double heap = Median(heap_us), anon = Median(anon_us);
  state.counters["first_touch_us_per_page"] = heap;
  state.counters["anon_first_touch_us_per_page"] = anon;
  state.counters["first_touch_ratio"] = anon > 0 ? heap / anon : 0;
}

// Sizes 16..4096 B, log-uniform (small objects are the common case), and
// which of the live objects to replace: both precomputed, so the loop is
// only free + malloc + one write.
struct MallocPlan {
  static constexpr size_t kLive = 4096, kSteps = 1 << 16;
  std::vector<uint32_t> size, slot;
};

const MallocPlan& GetMallocPlan() {
  static const MallocPlan plan = [] {
    MallocPlan p;
    std::mt19937_64 rng(5);
    std::uniform_real_distribution<double> u(0, 1);
    for (size_t i = 0; i < MallocPlan::kSteps; ++i) {
      p.size.push_back(uint32_t(16 * std::pow(256.0, u(rng))));
      p.slot.push_back(uint32_t(rng() % MallocPlan::kLive));
    }
    return p;
  }();
  return plan;
}

void BM_MallocFree(benchmark::State& state) {
  const MallocPlan& plan = GetMallocPlan();
  std::vector<void*> live(MallocPlan::kLive);
  size_t i = size_t(state.thread_index()) * 7919;
  for (void*& p : live) p = malloc(plan.size[i++ % MallocPlan::kSteps]);
  for (auto _ : state) {
    const size_t step = i++ & (MallocPlan::kSteps - 1);
    void*& p = live[plan.slot[step]];
    free(p);
    p = malloc(plan.size[step]);
    *static_cast<volatile char*>(p) = 1;
  }
  for (void* p : live) free(p);
  state.SetItemsProcessed(state.iterations());  // one malloc + one free each
}

int RegisterAll() {
  benchmark::RegisterBenchmark("evict", BM_Evict)
      ->Iterations(1)->Unit(benchmark::kMillisecond);
  benchmark::RegisterBenchmark("refault/random", BM_Refault, Order::kRandom)
      ->Iterations(1)->Unit(benchmark::kMillisecond);
  benchmark::RegisterBenchmark("refault/sequential", BM_Refault,
                               Order::kSequential)
      ->Iterations(1)->Unit(benchmark::kMillisecond);
  benchmark::RegisterBenchmark("anon_fault", BM_AnonFault)
      ->Iterations(1)->Unit(benchmark::kMillisecond);
  benchmark::RegisterBenchmark("first_touch", BM_FirstTouch)
      ->Iterations(1)->Unit(benchmark::kMillisecond);
  // CPU time, not wall time: on a shared 2-vCPU machine the wall clock
  // mostly measures the neighbours. cpu_time is then CPU ns per pair.
  benchmark::RegisterBenchmark("malloc_free", BM_MallocFree)
      ->Threads(1)->Threads(2);
  return 0;
}
[[maybe_unused]] const int registered = RegisterAll();

}  // namespace
}  // namespace coldheap::bench
