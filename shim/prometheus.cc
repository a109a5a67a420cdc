#include "shim/prometheus.h"

#include <cstring>

namespace coldheap::shim {
namespace {

enum class Kind : uint8_t {
  kGauge,
  kCounter,
  // Lines STATN for N in a label named after STAT without its last '_'.
  kGaugeByLabel,
  // STATlt_N (N ascending), STATge_N (the rest) and STATsum.
  kHistogram,
};

// How a value in the statistics text becomes one in base units.
enum class Unit : uint8_t {
  kAsIs,       // a count, pages, bytes or a ratio, written as it is
  kMicros,     // microseconds -> seconds
  kPpm,        // parts per million -> a fraction
  kPerMinute,  // per minute -> per second
};

struct Metric {
  absl::string_view stat;  // name in the statistics text (a prefix for
                           // kGaugeByLabel and kHistogram)
  absl::string_view name;  // exposition name
  Kind kind;
  Unit unit;
  absl::string_view help;
};

// Every statistic, in exposition order. A statistic added to stats.cc's text
// gets a row here (stats_test checks that none is missing).
constexpr Metric kMetrics[] = {
    // The pool.
    {"stored_pages", "coldheap_stored_pages", Kind::kGauge, Unit::kAsIs,
     "Pages held compressed in the pool (zswap's stored_pages)."},
    {"same_filled_pages", "coldheap_same_filled_pages", Kind::kGauge,
     Unit::kAsIs, "Evicted pages held as one repeated word, without pool space."},
    {"compressed_bytes", "coldheap_compressed_bytes", Kind::kGauge, Unit::kAsIs,
     "Sum of the compressed sizes of the stored pages."},
    {"pool_total_size", "coldheap_pool_total_size_bytes", Kind::kGauge,
     Unit::kAsIs, "Memory the pool uses (zswap's pool_total_size)."},
    {"pool_peak_size", "coldheap_pool_peak_size_bytes", Kind::kGauge,
     Unit::kAsIs, "The largest pool size seen."},
    {"compression_ratio", "coldheap_compression_ratio", Kind::kGauge,
     Unit::kAsIs, "Stored pages' size over the pool's size."},
    {"pool_full", "coldheap_pool_full", Kind::kGauge, Unit::kAsIs,
     "1 while the pool limit holds back stores."},
    {"pool_limit_hit", "coldheap_pool_limit_hit_total", Kind::kCounter,
     Unit::kAsIs, "Times the pool reached its limit (zswap's pool_limit_hit)."},
    // The dense tier.
    {"dense_pages", "coldheap_dense_pages", Kind::kGauge, Unit::kAsIs,
     "Of the stored pages, those the dense tier holds."},
    {"dense_bytes", "coldheap_dense_bytes", Kind::kGauge, Unit::kAsIs,
     "Of the compressed bytes, the dense tier's."},
    {"dense_ratio", "coldheap_dense_compression_ratio", Kind::kGauge,
     Unit::kAsIs, "Dense pages' size over their compressed size."},
    {"dense_dictionaries", "coldheap_dense_dictionaries", Kind::kGauge,
     Unit::kAsIs, "Dictionaries alive, old ones included."},
    {"dense_dictionary_bytes", "coldheap_dense_dictionary_bytes", Kind::kGauge,
     Unit::kAsIs, "The current dictionary's size."},
    {"dense_dictionary_generation", "coldheap_dense_dictionaries_trained_total",
     Kind::kCounter, Unit::kAsIs, "Dictionaries trained so far."},
    {"dense_memory_bytes", "coldheap_dense_memory_bytes", Kind::kGauge,
     Unit::kAsIs, "Memory of the dense tier's dictionaries and contexts."},
    {"dense_recompressed_pages", "coldheap_dense_recompressed_pages_total",
     Kind::kCounter, Unit::kAsIs, "Pool pages recompressed by the dense tier."},
    {"dense_kept_pages", "coldheap_dense_kept_pages_total", Kind::kCounter,
     Unit::kAsIs, "Pages recompressed without reaching a smaller size class."},
    {"dense_refaults", "coldheap_dense_refaults_total", Kind::kCounter,
     Unit::kAsIs, "Refaults of dense pages."},
    {"dense_written_back_pages", "coldheap_dense_written_back_pages_total",
     Kind::kCounter, Unit::kAsIs, "Dense pages among the written back pages."},
    // Memory.
    {"resident_pages", "coldheap_resident_pages", Kind::kGauge, Unit::kAsIs,
     "Heap pages in memory."},
    {"heap_pages", "coldheap_heap_pages", Kind::kGauge, Unit::kAsIs,
     "Live heap pages, resident or evicted."},
    {"probation_pages", "coldheap_probation_pages", Kind::kGauge, Unit::kAsIs,
     "Pages moved out and not yet compressed."},
    {"file_pages", "coldheap_file_pages", Kind::kGauge, Unit::kAsIs,
     "Pages held in the writeback file."},
    {"age_scans_lt_", "coldheap_resident_pages_by_age", Kind::kGaugeByLabel,
     Unit::kAsIs,
     "Resident pages by scans since their last write, at the last scan; "
     "age_scans_lt is the bucket's exclusive upper bound."},
    // The policy.
    {"cold_age_scans", "coldheap_cold_age_scans", Kind::kGauge, Unit::kAsIs,
     "The adaptive cold threshold, in scans."},
    {"reclaim_min_age_scans", "coldheap_reclaim_min_age_scans", Kind::kGauge,
     Unit::kAsIs, "The youngest age reclaimed at the last scan, in scans."},
    {"promotions_per_minute", "coldheap_promotions_per_second", Kind::kGauge,
     Unit::kPerMinute, "Refaults per second, smoothed."},
    {"refault_cost_ppm", "coldheap_refault_cost_ratio", Kind::kGauge,
     Unit::kPpm, "What refaults cost, as a fraction of one core, smoothed."},
    {"raised_threshold_pages", "coldheap_raised_threshold_pages", Kind::kGauge,
     Unit::kAsIs, "Pages whose cold threshold was raised after refaults."},
    {"target_unreachable", "coldheap_target_unreachable", Kind::kGauge,
     Unit::kAsIs, "1 while the memory target cannot be met."},
    {"target_unreachable_events", "coldheap_target_unreachable_events_total",
     Kind::kCounter, Unit::kAsIs, "Times the memory target became unreachable."},
    // Events.
    {"evicted_pages", "coldheap_evicted_pages_total", Kind::kCounter,
     Unit::kAsIs, "Pages compressed or same-filled."},
    {"reject_compress_poor", "coldheap_reject_compress_poor_total",
     Kind::kCounter, Unit::kAsIs,
     "Pages kept resident because they compressed badly."},
    {"reject_busy", "coldheap_reject_busy_total", Kind::kCounter, Unit::kAsIs,
     "Pages kept resident because they could not be moved."},
    {"cow_unshared", "coldheap_cow_unshared_total", Kind::kCounter, Unit::kAsIs,
     "Pages a fork had shared, made movable."},
    {"refaults", "coldheap_refaults_total", Kind::kCounter, Unit::kAsIs,
     "Evicted pages touched again."},
    {"staged_refaults", "coldheap_staged_refaults_total", Kind::kCounter,
     Unit::kAsIs, "Refaults caught before compression."},
    {"mistakes", "coldheap_mistakes_total", Kind::kCounter, Unit::kAsIs,
     "Refaults soon after eviction."},
    {"unlearned_refaults", "coldheap_unlearned_refaults_total", Kind::kCounter,
     Unit::kAsIs, "Refaults that raised no page's threshold."},
    {"fault_around_pages", "coldheap_fault_around_pages_total", Kind::kCounter,
     Unit::kAsIs, "Neighbours restored with a refault."},
    {"first_touch_faults", "coldheap_first_touch_faults_total", Kind::kCounter,
     Unit::kAsIs, "Faults on new memory."},
    {"first_touch_pages", "coldheap_first_touch_pages_total", Kind::kCounter,
     Unit::kAsIs, "Pages zero-filled by first-touch faults."},
    {"purged_pages", "coldheap_purged_pages_total", Kind::kCounter, Unit::kAsIs,
     "Pages the allocator released."},
    {"discarded_pages", "coldheap_discarded_pages_total", Kind::kCounter,
     Unit::kAsIs, "Compressed copies dropped by purges."},
    {"written_back_pages", "coldheap_written_back_pages_total", Kind::kCounter,
     Unit::kAsIs, "Pages written to the writeback file (zswap's name)."},
    {"scans", "coldheap_scans_total", Kind::kCounter, Unit::kAsIs,
     "Scans for cold pages."},
    {"os_failures", "coldheap_os_failures_total", Kind::kCounter, Unit::kAsIs,
     "Kernel calls that failed and that the shim handled (kept the page, "
     "retried, skipped a scan)."},
    {"os_failures_injected", "coldheap_os_failures_injected_total",
     Kind::kCounter, Unit::kAsIs,
     "Of those, failures injected by the fault-injection test build."},
    // Costs.
    {"evictor_cpu_us", "coldheap_evictor_cpu_seconds_total", Kind::kCounter,
     Unit::kMicros, "CPU time of the evictor thread."},
    {"handler_cpu_us", "coldheap_handler_cpu_seconds_total", Kind::kCounter,
     Unit::kMicros, "CPU time of the fault handler threads."},
    {"dense_cpu_us", "coldheap_dense_cpu_seconds_total", Kind::kCounter,
     Unit::kMicros, "CPU time of the dense tier's recompression and training."},
    {"dense_train_cpu_us", "coldheap_dense_train_cpu_seconds_total",
     Kind::kCounter, Unit::kMicros,
     "CPU time of the dense tier's dictionary training."},
    {"refault_stall_us", "coldheap_refault_stall_seconds_total",
     Kind::kCounter, Unit::kMicros,
     "Time threads stood still on refaults."},
    {"refault_cost_us", "coldheap_refault_cost_seconds_total", Kind::kCounter,
     Unit::kMicros, "Refault stalls plus the handlers' CPU for them."},
    {"fault_latency_us_", "coldheap_fault_latency_seconds", Kind::kHistogram,
     Unit::kMicros, "Time the fault handler took to serve a fault."},
    {"lz4_refault_latency_us_", "coldheap_lz4_refault_latency_seconds",
     Kind::kHistogram, Unit::kMicros,
     "Service time of refaults from the pool's first tier."},
    {"dense_refault_latency_us_", "coldheap_dense_refault_latency_seconds",
     Kind::kHistogram, Unit::kMicros,
     "Service time of refaults from the dense tier."},
};

// Text in a caller's fixed buffer; remembers running out of room.
class Writer {
 public:
  Writer(char* out, size_t capacity) : out_(out), capacity_(capacity) {}

  void Append(absl::string_view s) {
    if (s.size() > capacity_ - size_) {
      overflow_ = true;
      return;
    }
    memcpy(out_ + size_, s.data(), s.size());
    size_ += s.size();
  }
  void AppendUint(uint64_t v) {
    char digits[20];
    size_t n = 0;
    do {
      digits[sizeof(digits) - ++n] = static_cast<char>('0' + v % 10);
      v /= 10;
    } while (v != 0);
    Append(absl::string_view(digits + sizeof(digits) - n, n));
  }
  // `v / divisor` with `decimals` digits after the point (truncated).
  void AppendFixed(uint64_t v, uint64_t divisor, int decimals) {
    AppendUint(v / divisor);
    if (decimals == 0) return;
    uint64_t scale = 1;
    for (int i = 0; i < decimals; ++i) scale *= 10;
    uint64_t fraction = v % divisor * scale / divisor;  // divisor <= 10^6
    Append(".");
    for (uint64_t d = scale / 10; d > 1 && fraction < d; d /= 10) Append("0");
    AppendUint(fraction);
  }

  bool overflow() const { return overflow_; }
  size_t size() const { return size_; }

 private:
  char* out_;
  size_t capacity_;
  size_t size_ = 0;
  bool overflow_ = false;
};

// One "name value" line of the statistics text.
struct Line {
  absl::string_view name;
  absl::string_view value;
};

// Calls `fn(line)` for each "name value" line of `stats`.
template <typename Fn>
void ForEachLine(absl::string_view stats, Fn fn) {
  while (!stats.empty()) {
    size_t end = stats.find('\n');
    absl::string_view line = stats.substr(0, end);
    stats = end == absl::string_view::npos ? "" : stats.substr(end + 1);
    while (!line.empty() && (line.back() == ' ' || line.back() == '\r')) {
      line.remove_suffix(1);
    }
    if (line.empty() || line.front() == '#') continue;
    size_t space = line.find(' ');
    if (space == absl::string_view::npos) continue;
    absl::string_view value = line.substr(space + 1);
    while (!value.empty() && value.front() == ' ') value.remove_prefix(1);
    fn(Line{line.substr(0, space), value});
  }
}

bool IsDigits(absl::string_view s) {
  if (s.empty() || s.size() > 19) return false;  // fits in uint64_t
  for (char c : s) {
    if (c < '0' || c > '9') return false;
  }
  return true;
}

uint64_t ToUint(absl::string_view digits) {
  uint64_t v = 0;
  for (char c : digits) v = v * 10 + static_cast<uint64_t>(c - '0');
  return v;
}

// A whole number, or one with a fractional part (compression_ratio).
bool IsNumber(absl::string_view s) {
  size_t point = s.find('.');
  if (point == absl::string_view::npos) return IsDigits(s);
  return IsDigits(s.substr(0, point)) && IsDigits(s.substr(point + 1));
}

// Metric names as Prometheus allows them (no ':', kept for rules).
bool IsMetricName(absl::string_view s) {
  if (s.empty() || (s.front() >= '0' && s.front() <= '9')) return false;
  for (char c : s) {
    bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
              (c >= '0' && c <= '9') || c == '_';
    if (!ok) return false;
  }
  return true;
}

bool StartsWith(absl::string_view s, absl::string_view prefix) {
  return s.substr(0, prefix.size()) == prefix;
}

// `value` (the text's) in the base unit of `unit`.
void AppendValue(Writer& w, absl::string_view value, Unit unit) {
  switch (unit) {
    case Unit::kAsIs:
      w.Append(value);
      return;
    case Unit::kMicros:
    case Unit::kPpm:
      w.AppendFixed(ToUint(value), 1'000'000, 6);
      return;
    case Unit::kPerMinute:
      w.AppendFixed(ToUint(value), 60, 3);
      return;
  }
}

// A value is usable when it is a number; units other than kAsIs take whole
// numbers only.
bool Usable(absl::string_view value, Unit unit) {
  return unit == Unit::kAsIs ? IsNumber(value) : IsDigits(value);
}

class Exposition {
 public:
  Exposition(absl::string_view stats, uint64_t pid, char* out, size_t capacity)
      : stats_(stats), w_(out, capacity) {
    Writer digits(pid_, sizeof(pid_));
    digits.AppendUint(pid);
    pid_size_ = digits.size();
  }

  size_t Write() {
    for (const Metric& m : kMetrics) {
      switch (m.kind) {
        case Kind::kGauge:
        case Kind::kCounter:
          Scalar(m);
          break;
        case Kind::kGaugeByLabel:
          ByLabel(m);
          break;
        case Kind::kHistogram:
          Histogram(m);
          break;
      }
    }
    Unknown();
    return w_.overflow() ? 0 : w_.size();
  }

 private:
  void Header(absl::string_view name, absl::string_view type,
              absl::string_view help) {
    w_.Append("# HELP ");
    w_.Append(name);
    w_.Append(" ");
    w_.Append(help);
    w_.Append("\n# TYPE ");
    w_.Append(name);
    w_.Append(" ");
    w_.Append(type);
    w_.Append("\n");
  }

  // "NAMEsuffix{pid="P"" and, with a label, ",LABEL=""; the caller writes
  // the label's value and closes with LabelsEnd.
  void SampleStart(absl::string_view name, absl::string_view suffix,
                   absl::string_view label) {
    w_.Append(name);
    w_.Append(suffix);
    w_.Append("{pid=\"");
    w_.Append(absl::string_view(pid_, pid_size_));
    w_.Append("\"");
    if (!label.empty()) {
      w_.Append(",");
      w_.Append(label);
      w_.Append("=\"");
    }
  }
  void LabelsEnd(bool had_label) { w_.Append(had_label ? "\"} " : "} "); }

  // The value of the first line named `name`, if it is usable.
  bool Find(absl::string_view name, Unit unit, absl::string_view* value) {
    bool found = false;
    ForEachLine(stats_, [&](const Line& line) {
      if (!found && line.name == name) {
        found = true;
        *value = line.value;
      }
    });
    return found && Usable(*value, unit);
  }

  void Scalar(const Metric& m) {
    absl::string_view value;
    if (!Find(m.stat, m.unit, &value)) return;
    Header(m.name, m.kind == Kind::kCounter ? "counter" : "gauge", m.help);
    SampleStart(m.name, "", "");
    LabelsEnd(false);
    AppendValue(w_, value, m.unit);
    w_.Append("\n");
  }

  void ByLabel(const Metric& m) {
    absl::string_view label = m.stat.substr(0, m.stat.size() - 1);
    bool any = false;
    ForEachLine(stats_, [&](const Line& line) {
      if (!StartsWith(line.name, m.stat)) return;
      absl::string_view bound = line.name.substr(m.stat.size());
      if (!IsDigits(bound) || !Usable(line.value, m.unit)) return;
      if (!any) Header(m.name, "gauge", m.help);
      any = true;
      SampleStart(m.name, "", label);
      w_.Append(bound);
      LabelsEnd(true);
      AppendValue(w_, line.value, m.unit);
      w_.Append("\n");
    });
  }

  // Buckets are written in the text's order, which is ascending; any after
  // the open-ended one or out of order count toward +Inf only.
  void Histogram(const Metric& m) {
    uint64_t total = 0;
    uint64_t last_bound = 0;
    bool any = false, ordered = true;
    absl::string_view sum;
    ForEachLine(stats_, [&](const Line& line) {
      if (!StartsWith(line.name, m.stat) || !IsDigits(line.value)) return;
      absl::string_view rest = line.name.substr(m.stat.size());
      uint64_t count = ToUint(line.value);
      if (rest == "sum") {
        sum = line.value;
        return;
      }
      bool bounded = StartsWith(rest, "lt_");
      if (!bounded && !StartsWith(rest, "ge_")) return;
      if (!IsDigits(rest.substr(3))) return;
      if (!any) Header(m.name, "histogram", m.help);
      any = true;
      total += count;
      uint64_t bound = ToUint(rest.substr(3));
      // Past the open-ended bucket or an unordered one, a bucket's
      // cumulative count would be wrong.
      ordered = ordered && bounded && bound > last_bound;
      if (!ordered) return;
      last_bound = bound;
      SampleStart(m.name, "_bucket", "le");
      AppendValue(w_, rest.substr(3), m.unit);
      LabelsEnd(true);
      w_.AppendUint(total);
      w_.Append("\n");
    });
    if (!any) return;
    SampleStart(m.name, "_bucket", "le");
    w_.Append("+Inf");
    LabelsEnd(true);
    w_.AppendUint(total);
    w_.Append("\n");
    if (!sum.empty()) {
      SampleStart(m.name, "_sum", "");
      LabelsEnd(false);
      AppendValue(w_, sum, m.unit);
      w_.Append("\n");
    }
    SampleStart(m.name, "_count", "");
    LabelsEnd(false);
    w_.AppendUint(total);
    w_.Append("\n");
  }

  static bool Known(absl::string_view name) {
    for (const Metric& m : kMetrics) {
      bool family = m.kind == Kind::kGaugeByLabel || m.kind == Kind::kHistogram;
      if (family ? StartsWith(name, m.stat) : name == m.stat) return true;
    }
    return false;
  }

  // Names no row knows, once each, in the text's order.
  void Unknown() {
    size_t index = 0;
    ForEachLine(stats_, [&](const Line& line) {
      size_t this_index = index++;
      if (Known(line.name) || !IsMetricName(line.name) ||
          !IsNumber(line.value)) {
        return;
      }
      size_t earlier = 0;
      bool repeated = false;
      ForEachLine(stats_, [&](const Line& other) {
        if (earlier++ < this_index && other.name == line.name) repeated = true;
      });
      if (repeated) return;
      char name[128];
      Writer full(name, sizeof(name));
      full.Append("coldheap_");
      full.Append(line.name);
      if (full.overflow()) return;
      absl::string_view metric(name, full.size());
      w_.Append("# HELP ");
      w_.Append(metric);
      w_.Append(" coldheap statistic ");
      w_.Append(line.name);
      w_.Append(" (no description in this version).\n# TYPE ");
      w_.Append(metric);
      w_.Append(" untyped\n");
      SampleStart(metric, "", "");
      LabelsEnd(false);
      w_.Append(line.value);
      w_.Append("\n");
    });
  }

  absl::string_view stats_;
  Writer w_;
  char pid_[20];
  size_t pid_size_ = 0;
};

}  // namespace

size_t FormatPrometheus(absl::string_view stats, uint64_t pid, char* out,
                        size_t capacity) {
  return Exposition(stats, pid, out, capacity).Write();
}

}  // namespace coldheap::shim
