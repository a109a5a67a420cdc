#include "shim/stats.h"

#include <dirent.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>

#include "absl/strings/string_view.h"
#include "shim/prometheus.h"
#include "shim/os.h"

namespace coldheap::shim {
namespace {

// Text in a fixed buffer: statistics are written from our threads and at
// exit, where malloc and stdio are off limits.
class Text {
 public:
  void Append(const char* s) {
    size_t n = strlen(s);
    if (n > sizeof(buf_) - size_) n = sizeof(buf_) - size_;
    memcpy(buf_ + size_, s, n);
    size_ += n;
  }
  void AppendUint(uint64_t v) {
    char digits[24];
    int n = 0;
    do {
      digits[n++] = static_cast<char>('0' + v % 10);
      v /= 10;
    } while (v != 0);
    while (n > 0 && size_ < sizeof(buf_)) buf_[size_++] = digits[--n];
  }
  void Line(const char* name, uint64_t value) {
    Append(name);
    Append(" ");
    AppendUint(value);
    Append("\n");
  }
  // `num / den` with two decimals.
  void Ratio(const char* name, uint64_t num, uint64_t den) {
    Append(name);
    Append(" ");
    if (den == 0) {
      Append("0.00\n");
      return;
    }
    uint64_t hundredths = num * 100 / den;
    AppendUint(hundredths / 100);
    Append(".");
    if (hundredths % 100 < 10) Append("0");
    AppendUint(hundredths % 100);
    Append("\n");
  }
  absl::string_view view() const { return absl::string_view(buf_, size_); }
  bool WriteTo(int fd) const {
    size_t done = 0;
    while (done < size_) {
      ssize_t n = write(fd, buf_ + done, size_ - done);
      if (n <= 0) return false;
      done += static_cast<size_t>(n);
    }
    return true;
  }

 private:
  char buf_[8192];
  size_t size_ = 0;
};

uint64_t Get(const Counter& c) { return c.load(std::memory_order_relaxed); }

// Power-of-two microsecond buckets as "<name>_lt_<2^b> count" lines, the
// last one "<name>_ge_<2^(b-1)>", then "<name>_sum <microseconds>".
void Histogram(Text& t, const char* name, const Counter (&buckets)[kLatencyBuckets],
               const Counter& sum_ns) {
  for (int b = 0; b < kLatencyBuckets; ++b) {
    bool last = b == kLatencyBuckets - 1;
    t.Append(name);
    t.Append(last ? "_ge_" : "_lt_");
    t.AppendUint(uint64_t{1} << (last ? b - 1 : b));
    t.Append(" ");
    t.AppendUint(Get(buckets[b]));
    t.Append("\n");
  }
  t.Append(name);
  t.Append("_sum ");
  t.AppendUint(Get(sum_ns) / 1000);
  t.Append("\n");
}

void Format(const Stats& s, Text& t) {
  t.Append("# coldheap statistics (zswap names where zswap has one)\n");
  t.Line("stored_pages", Get(s.stored_pages));
  t.Line("same_filled_pages", Get(s.same_filled_pages));
  t.Line("compressed_bytes", Get(s.compressed_bytes));
  t.Line("pool_total_size", Get(s.pool_total_size));
  t.Line("pool_peak_size", Get(s.pool_peak_size));
  t.Ratio("compression_ratio", Get(s.stored_pages) * 4096,
          Get(s.pool_total_size));
  t.Line("resident_pages", Get(s.resident_pages));
  t.Line("heap_pages", Get(s.heap_pages));
  t.Line("probation_pages", Get(s.probation_pages));
  t.Line("dense_pages", Get(s.dense_pages));
  t.Line("dense_bytes", Get(s.dense_bytes));
  t.Ratio("dense_ratio", Get(s.dense_pages) * 4096, Get(s.dense_bytes));
  t.Line("dense_dictionaries", Get(s.dense_dictionaries));
  t.Line("dense_dictionary_bytes", Get(s.dense_dictionary_bytes));
  t.Line("dense_dictionary_generation", Get(s.dense_dictionary_generation));
  t.Line("dense_memory_bytes", Get(s.dense_memory_bytes));
  t.Line("cold_age_scans", Get(s.cold_age_scans));
  t.Line("reclaim_min_age_scans", Get(s.reclaim_min_age_scans));
  t.Line("promotions_per_minute", Get(s.promotions_per_minute));
  t.Line("refault_cost_ppm", Get(s.refault_cost_ppm));
  t.Line("raised_threshold_pages", Get(s.raised_threshold_pages));
  t.Line("pool_full", Get(s.pool_full));
  t.Line("target_unreachable", Get(s.target_unreachable));
  t.Line("target_unreachable_events", Get(s.target_unreachable_events));
  for (int b = 0; b < kAgeHistogramBuckets; ++b) {
    t.Append("age_scans_lt_");
    t.AppendUint(uint64_t{1} << b);
    t.Append(" ");
    t.AppendUint(Get(s.age_histogram[b]));
    t.Append("\n");
  }
  t.Line("evicted_pages", Get(s.evicted_pages));
  t.Line("reject_compress_poor", Get(s.reject_compress_poor));
  t.Line("reject_busy", Get(s.reject_busy));
  t.Line("cow_unshared", Get(s.cow_unshared));
  t.Line("refaults", Get(s.refaults));
  t.Line("staged_refaults", Get(s.staged_refaults));
  t.Line("mistakes", Get(s.mistakes));
  t.Line("unlearned_refaults", Get(s.unlearned_refaults));
  t.Line("fault_around_pages", Get(s.fault_around_pages));
  t.Line("first_touch_faults", Get(s.first_touch_faults));
  t.Line("first_touch_pages", Get(s.first_touch_pages));
  t.Line("purged_pages", Get(s.purged_pages));
  t.Line("discarded_pages", Get(s.discarded_pages));
  t.Line("pool_limit_hit", Get(s.pool_limit_hit));
  t.Line("written_back_pages", Get(s.written_back_pages));
  t.Line("file_pages", Get(s.file_pages));
  t.Line("scans", Get(s.scans));
  t.Line("dense_recompressed_pages", Get(s.dense_recompressed_pages));
  t.Line("dense_kept_pages", Get(s.dense_kept_pages));
  t.Line("dense_refaults", Get(s.dense_refaults));
  t.Line("dense_written_back_pages", Get(s.dense_written_back_pages));
  // Kept by the os:: layer, which every kernel call goes through.
  t.Line("os_failures", os::FailureCount());
  t.Line("os_failures_injected", os::InjectedFailureCount());
  t.Line("evictor_cpu_us", Get(s.evictor_cpu_ns) / 1000);
  t.Line("handler_cpu_us", Get(s.handler_cpu_ns) / 1000);
  t.Line("dense_cpu_us", Get(s.dense_cpu_ns) / 1000);
  t.Line("dense_train_cpu_us", Get(s.dense_train_cpu_ns) / 1000);
  t.Line("refault_stall_us", Get(s.refault_stall_ns) / 1000);
  t.Line("refault_cost_us", Get(s.refault_cost_ns) / 1000);
  Histogram(t, "fault_latency_us", s.fault_latency_us, s.fault_latency_ns_sum);
  Histogram(t, "lz4_refault_latency_us", s.refault_latency_us[0],
            s.refault_latency_ns_sum[0]);
  Histogram(t, "dense_refault_latency_us", s.refault_latency_us[1],
            s.refault_latency_ns_sum[1]);
}

// `path` with each "%p" replaced by the process id; false if too long.
bool ExpandPath(absl::string_view path, char* out, size_t capacity) {
  Text pid;
  pid.AppendUint(static_cast<uint64_t>(getpid()));
  size_t n = 0;
  for (size_t i = 0; i < path.size(); ++i) {
    absl::string_view piece = path.substr(i, 1);
    if (path.substr(i, 2) == "%p") {
      piece = pid.view();
      ++i;
    }
    if (n + piece.size() + 1 > capacity) return false;
    memcpy(out + n, piece.data(), piece.size());
    n += piece.size();
  }
  out[n] = '\0';
  return true;
}

// A process whose heap never reached the region (a shell, `timeout`,
// anything that only execs) has nothing to say, and must not overwrite the
// file of the program it started.
bool HasSomethingToSay(const Stats& stats) {
  return Get(stats.heap_pages) != 0 || Get(stats.evicted_pages) != 0;
}

// Replaces the file at `path` ("%p": the process id) with `contents`: a
// temporary beside it (which node_exporter's *.prom pattern skips), then a
// rename, so a reader never sees a half-written file.
bool ReplaceFile(const char* path, absl::string_view contents, mode_t mode) {
  char final_path[4096];
  char tmp[4096 + 8];
  if (!ExpandPath(path, final_path, sizeof(final_path))) return false;
  size_t n = strlen(final_path);
  memcpy(tmp, final_path, n);
  memcpy(tmp + n, ".tmp", 5);
  // A fresh file, never a stale or planted one: the mode is ours and no
  // symlink is followed.
  unlink(tmp);
  int fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, mode);
  if (fd < 0) return false;
  fchmod(fd, mode);  // whatever the umask
  size_t done = 0;
  while (done < contents.size()) {
    ssize_t w = write(fd, contents.data() + done, contents.size() - done);
    if (w <= 0) break;
    done += static_cast<size_t>(w);
  }
  close(fd);
  if (done != contents.size() || rename(tmp, final_path) != 0) {
    unlink(tmp);
    return false;
  }
  return true;
}

// COLDHEAP_STATS=prometheus:'s file: the path, or DIR/coldheap_%p.prom.
bool PrometheusPath(const Config& config, char* out, size_t capacity) {
  absl::string_view dir = config.stats_path;
  absl::string_view file =
      config.stats_path_is_dir ? "coldheap_%p.prom" : "";
  if (dir.size() + file.size() + 1 > capacity) return false;
  memcpy(out, dir.data(), dir.size());
  memcpy(out + dir.size(), file.data(), file.size());
  out[dir.size() + file.size()] = '\0';
  return true;
}

}  // namespace

namespace {

// [2^(b-1), 2^b) us for bucket b, [0, 1) for 0, the last one open-ended.
int LatencyBucket(uint64_t ns) {
  const uint64_t us = ns / 1000;
  const int width = us == 0 ? 0 : 64 - __builtin_clzll(us);
  return width < kLatencyBuckets - 1 ? width : kLatencyBuckets - 1;
}

}  // namespace

void Stats::RecordFaultLatency(uint64_t ns, int refault_tier) {
  const int bucket = LatencyBucket(ns);
  fault_latency_us[bucket].fetch_add(1, std::memory_order_relaxed);
  fault_latency_ns_sum.fetch_add(ns, std::memory_order_relaxed);
  if (refault_tier == kNotARefault) return;
  refault_latency_us[refault_tier][bucket].fetch_add(1, std::memory_order_relaxed);
  refault_latency_ns_sum[refault_tier].fetch_add(ns, std::memory_order_relaxed);
}

void WriteStats(const Stats& stats, int fd) {
  Text text;
  Format(stats, text);
  text.WriteTo(fd);
}

bool WriteStatsFile(const Stats& stats, const char* path) {
  if (!HasSomethingToSay(stats)) return true;
  Text text;
  Format(stats, text);
  return ReplaceFile(path, text.view(), 0600);
}

bool WriteConfiguredStats(const Stats& stats, const Config& config) {
  if (config.stats != StatsDestination::kFile) return true;
  if (config.stats_format == StatsFormat::kText) {
    return WriteStatsFile(stats, config.stats_path);
  }
  if (!HasSomethingToSay(stats)) return true;
  char path[kMaxPathLength + 32];
  if (!PrometheusPath(config, path, sizeof(path))) return false;
  Text text;
  Format(stats, text);
  // One exposition at a time in the static buffer: the evictor's writes and
  // the one at exit never overlap (StopWritingStats); a third writer skips.
  static std::atomic_flag busy = ATOMIC_FLAG_INIT;
  static char exposition[kMaxExpositionSize];
  if (busy.test_and_set(std::memory_order_acquire)) return false;
  size_t size = FormatPrometheus(text.view(), static_cast<uint64_t>(getpid()),
                                 exposition, sizeof(exposition));
  // 0644: node_exporter reads the file as another user.
  bool ok = size != 0 && ReplaceFile(path, absl::string_view(exposition, size),
                                     0644);
  busy.clear(std::memory_order_release);
  return ok;
}

void FinishConfiguredStats(const Stats& stats, const Config& config) {
  if (config.stats == StatsDestination::kFile && config.stats_path_is_dir) {
    char path[kMaxPathLength + 32];
    char expanded[kMaxPathLength + 64];
    if (PrometheusPath(config, path, sizeof(path)) &&
        ExpandPath(path, expanded, sizeof(expanded))) {
      unlink(expanded);
    }
    return;
  }
  WriteConfiguredStats(stats, config);
}

void RemoveStaleStatsFiles() {
  char path[128];
  if (!PrepareLiveStatsPath(path, sizeof(path))) return;
  *strrchr(path, '/') = '\0';
  DIR* dir = opendir(path);
  if (dir == nullptr) return;
  int dir_fd = dirfd(dir);
  while (dirent* entry = readdir(dir)) {
    char* end = nullptr;
    long pid = strtol(entry->d_name, &end, 10);
    if (pid <= 0 || end == entry->d_name ||
        (strcmp(end, ".stats") != 0 && strcmp(end, ".stats.tmp") != 0)) {
      continue;
    }
    if (kill(static_cast<pid_t>(pid), 0) != 0 && errno == ESRCH) {
      unlinkat(dir_fd, entry->d_name, 0);
    }
  }
  closedir(dir);
}

bool PrepareLiveStatsPath(char* out, size_t capacity) {
  Text path;
  path.Append("/tmp/coldheap-");
  path.AppendUint(getuid());
  if (path.view().size() + 32 > capacity) return false;
  memcpy(out, path.view().data(), path.view().size());
  out[path.view().size()] = '\0';
  mkdir(out, 0700);
  struct stat st;
  // Never write into a directory someone else made (or a symlink to one).
  if (lstat(out, &st) != 0 || !S_ISDIR(st.st_mode) || st.st_uid != getuid() ||
      (st.st_mode & 077) != 0) {
    return false;
  }
  path.Append("/%p.stats");
  return ExpandPath(path.view(), out, capacity);
}

}  // namespace coldheap::shim
