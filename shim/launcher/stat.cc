#include "shim/launcher/stat.h"

#include <errno.h>
#include <time.h>

#include <algorithm>
#include <climits>
#include <initializer_list>
#include <cstdio>
#include <optional>
#include <set>

#include "absl/status/status.h"
#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/strip.h"
#include "shim/launcher/common.h"
#include "shim/launcher/settings.h"
#include "shim/os.h"
#include "shim/prometheus.h"

namespace coldheap::launcher {
namespace {

constexpr absl::string_view kStatHelpHint = "see 'coldheap stat --help'";
constexpr absl::string_view kLatencyPrefix = "fault_latency_us_";
constexpr double kMiB = 1024.0 * 1024.0;

// ---------------------------------------------------------------------------
// The report.

enum class Unit { kCount, kPages, kBytes, kRatio, kMicros, kPpmOfCore };

struct Row {
  absl::string_view group;
  absl::string_view label;
  absl::string_view key;  // name in the statistics file
  Unit unit;
  absl::string_view note;
};

// In report order; a row whose key the file lacks is left out.
constexpr Row kRows[] = {
    {"pool", "stored pages", "stored_pages", Unit::kPages,
     "before compression"},
    {"pool", "same-filled pages", "same_filled_pages", Unit::kPages,
     "held as one repeated word"},
    {"pool", "pool total size", "pool_total_size", Unit::kBytes,
     "memory the pool uses"},
    {"pool", "compressed data", "compressed_bytes", Unit::kBytes,
     "sum of the compressed sizes"},
    {"pool", "compression ratio", "compression_ratio", Unit::kRatio,
     "stored pages' size / pool total size"},
    {"pool", "pool limit hit", "pool_limit_hit", Unit::kCount,
     "times the pool was full"},
    {"dense tier", "dense pages", "dense_pages", Unit::kPages,
     "of the stored pages, recompressed with zstd"},
    {"dense tier", "dense data", "dense_bytes", Unit::kBytes,
     "their compressed size"},
    {"dense tier", "dense ratio", "dense_ratio", Unit::kRatio,
     "their size / dense data"},
    {"dense tier", "dictionary", "dense_dictionary_bytes", Unit::kBytes,
     "the current one, trained on this process's pages"},
    {"dense tier", "dictionary generation", "dense_dictionary_generation",
     Unit::kCount, "dictionaries trained so far"},
    {"dense tier", "dense tier memory", "dense_memory_bytes", Unit::kBytes,
     "mapped for dictionaries and zstd contexts"},
    {"dense tier", "recompressed pages", "dense_recompressed_pages",
     Unit::kCount, "LZ4 copies replaced"},
    {"dense tier", "kept LZ4", "dense_kept_pages", Unit::kCount,
     "recompressed without a smaller size class"},
    {"dense tier", "dense refaults", "dense_refaults", Unit::kCount,
     "dense pages touched again"},
    {"memory", "resident heap pages", "resident_pages", Unit::kPages,
     "in memory"},
    {"memory", "heap pages", "heap_pages", Unit::kPages,
     "given to the allocator"},
    {"memory", "raised threshold", "raised_threshold_pages", Unit::kPages,
     "pages that came back too soon"},
    {"activity", "evicted pages", "evicted_pages", Unit::kCount,
     "compressed or same-filled"},
    {"activity", "refaults", "refaults", Unit::kCount,
     "evicted pages touched again"},
    {"activity", "staged refaults", "staged_refaults", Unit::kCount,
     "of those, caught before compression"},
    {"activity", "mistakes", "mistakes", Unit::kCount,
     "refaults soon after eviction (incl. staged)"},
    {"activity", "fault-around pages", "fault_around_pages", Unit::kCount,
     "neighbours restored with a refault"},
    {"activity", "first-touch faults", "first_touch_faults", Unit::kCount,
     "faults on new memory"},
    {"activity", "first-touch pages", "first_touch_pages", Unit::kCount,
     "pages they zero-filled"},
    {"activity", "rejected: poor ratio", "reject_compress_poor", Unit::kCount,
     "kept resident: compressed badly"},
    {"activity", "rejected: busy", "reject_busy", Unit::kCount,
     "kept resident: could not be moved"},
    {"activity", "purged pages", "purged_pages", Unit::kCount,
     "released by the allocator"},
    {"activity", "discarded pages", "discarded_pages", Unit::kCount,
     "compressed copies dropped by purges"},
    {"activity", "written back pages", "written_back_pages", Unit::kCount,
     "to COLDHEAP_WRITEBACK_FILE"},
    {"activity", "scans", "scans", Unit::kCount, ""},
    {"costs", "evictor CPU", "evictor_cpu_us", Unit::kMicros, ""},
    {"costs", "fault handler CPU", "handler_cpu_us", Unit::kMicros, ""},
    {"costs", "dense tier CPU", "dense_cpu_us", Unit::kMicros,
     "recompression and training (in the evictor's)"},
    {"costs", "refault stall", "refault_stall_us", Unit::kMicros, ""},
    {"costs", "refault cost", "refault_cost_us", Unit::kMicros, ""},
    {"costs", "refault cost now", "refault_cost_ppm", Unit::kPpmOfCore,
     "of one core: handler CPU + stalled threads (smoothed)"},
};

constexpr absl::string_view kGroups[] = {"pool", "dense tier", "memory",
                                         "activity", "costs"};

double Value(const Snapshot& snapshot, absl::string_view name) {
  return snapshot.Number(name).value_or(0);
}

std::string MiB(double bytes) { return absl::StrFormat("%.1f MiB", bytes / kMiB); }

std::string Micros(uint64_t us) {
  if (us < 1000) return absl::StrCat(us, " us");
  if (us < 1000 * 1000) return absl::StrFormat("%.1f ms", us / 1e3);
  return absl::StrFormat("%.2f s", us / 1e6);
}

std::string Line(absl::string_view label, absl::string_view value,
                 absl::string_view note) {
  std::string line = absl::StrFormat("  %-26s %12s  %s", label, value, note);
  return absl::StrCat(absl::StripTrailingAsciiWhitespace(line), "\n");
}

// "p50 < 16 us, p99 < 64 us" from the power-of-two latency buckets
// (fault_latency_us_lt_N, N ascending, then fault_latency_us_ge_M for
// everything slower). "" when no fault was timed.
std::string LatencySummary(const Snapshot& snapshot, uint64_t* total) {
  std::vector<std::pair<uint64_t, uint64_t>> buckets;  // (N, count)
  for (const auto& [key, value] : snapshot.entries) {
    absl::string_view bound = key;
    uint64_t n, count;
    if (!absl::ConsumePrefix(&bound, kLatencyPrefix)) continue;
    // The open-ended last bucket sorts after every bounded one.
    bool open_ended = absl::ConsumePrefix(&bound, "ge_");
    if ((open_ended || absl::ConsumePrefix(&bound, "lt_")) &&
        absl::SimpleAtoi(bound, &n) && absl::SimpleAtoi(value, &count)) {
      buckets.emplace_back(open_ended ? 2 * n : n, count);
    }
  }
  std::sort(buckets.begin(), buckets.end());
  *total = 0;
  for (const auto& bucket : buckets) *total += bucket.second;
  if (*total == 0) return "";
  auto percentile = [&](double fraction) {
    uint64_t seen = 0;
    for (size_t i = 0; i < buckets.size(); ++i) {
      seen += buckets[i].second;
      if (seen >= fraction * *total) {
        if (i + 1 == buckets.size() && i > 0) {
          return absl::StrCat(">= ", buckets[i - 1].first, " us");
        }
        return absl::StrCat("< ", buckets[i].first, " us");
      }
    }
    return std::string("?");
  };
  return absl::StrCat("p50 ", percentile(0.5), ", p99 ", percentile(0.99));
}

// What a group shows after its rows: figures made of several counters.
std::string GroupExtras(absl::string_view group, const Snapshot& snapshot,
                        double age_seconds) {
  if (group == "memory") {
    std::optional<double> stored = snapshot.Number("stored_pages");
    std::optional<double> same = snapshot.Number("same_filled_pages");
    std::optional<double> pool = snapshot.Number("pool_total_size");
    if (!stored || !same || !pool) return "";
    double dense = Value(snapshot, "dense_memory_bytes");
    double saved = (*stored + *same) * os::kPageSize - *pool - dense;
    return Line("saved", MiB(saved),
                "evicted pages' size - pool total size - dense tier memory");
  }
  if (group == "activity") {
    std::optional<double> mistakes = snapshot.Number("mistakes");
    if (!mistakes || age_seconds <= 0) return "";
    return Line("mistakes per minute",
                absl::StrFormat("%.1f", *mistakes * 60 / age_seconds),
                "since start");
  }
  if (group == "costs") {
    uint64_t faults;
    std::string summary = LatencySummary(snapshot, &faults);
    if (summary.empty()) return "";
    return Line("fault latency", "", absl::StrCat(summary, " (", faults,
                                                  " faults timed)"));
  }
  return "";
}

std::string FormatRow(const Row& row, absl::string_view raw,
                      const Process& process) {
  double value = 0;
  (void)absl::SimpleAtod(raw, &value);
  switch (row.unit) {
    case Unit::kCount:
    case Unit::kRatio:
      return Line(row.label, raw, row.note);
    case Unit::kPages:
      return Line(row.label, raw,
                  absl::StrCat(MiB(value * os::kPageSize), ", ", row.note));
    case Unit::kBytes:
      return Line(row.label, MiB(value), row.note);
    case Unit::kPpmOfCore:
      return Line(row.label, absl::StrFormat("%.2f%%", value / 1e4), row.note);
    case Unit::kMicros: {
      std::string note;
      if (process.age_seconds > 0) {
        note = absl::StrFormat("%.2f%% of one core since start",
                               value / (process.age_seconds * 1e6) * 100);
      }
      return Line(row.label, Micros(static_cast<uint64_t>(value)), note);
    }
  }
  return "";
}

// Counter increases from `earlier` to `later` per second of `seconds`.
Rates RatesOver(const Snapshot& earlier, const Snapshot& later,
                double seconds) {
  Rates rates;
  if (seconds <= 0) return rates;
  // A counter never goes down, except across an exec (a new shim).
  auto per_second = [&](std::initializer_list<absl::string_view> names) {
    double before = 0, after = 0;
    for (absl::string_view name : names) {
      before += Value(earlier, name);
      after += Value(later, name);
    }
    return after > before ? (after - before) / seconds : 0.0;
  };
  rates.evicted = per_second({"evicted_pages"});
  rates.refaults = per_second({"refaults"});
  rates.rejects = per_second({"reject_compress_poor", "reject_busy"});
  rates.mistakes = per_second({"mistakes"});
  // CPU microseconds per second / 10^6 * 100.
  rates.cpu_percent = per_second({"evictor_cpu_us", "handler_cpu_us"}) / 1e4;
  return rates;
}

// ---------------------------------------------------------------------------
// The command.

// True if `snapshot` is older than `process` (with a second of slack for
// the clock tick /proc counts start times in).
bool WrittenBeforeStart(const Snapshot& snapshot, const Process& process) {
  if (process.age_seconds <= 0) return false;
  timespec now;
  clock_gettime(CLOCK_REALTIME, &now);
  return SecondsBetween(snapshot.written, now) > process.age_seconds + 1;
}

absl::StatusOr<pid_t> ParsePid(absl::string_view word) {
  uint64_t pid = 0;
  bool digits = !word.empty() && word.size() <= 10 &&
                std::all_of(word.begin(), word.end(), absl::ascii_isdigit);
  if (!digits || !absl::SimpleAtoi(word, &pid) || pid == 0 || pid > INT_MAX) {
    return absl::InvalidArgumentError(
        absl::StrCat("stat: '", word, "' is not a process id"));
  }
  return static_cast<pid_t>(pid);
}

void SleepMs(uint64_t ms) {
  timespec left = {static_cast<time_t>(ms / 1000),
                   static_cast<long>(ms % 1000) * 1'000'000};
  while (nanosleep(&left, &left) != 0 && errno == EINTR) {
  }
}

std::string FinalLine(const Process& process, const Snapshot& last) {
  return absl::StrFormat(
      "process %d exited; in all %.0f pages evicted, %.0f refaults\n",
      process.pid, Value(last, "evicted_pages"), Value(last, "refaults"));
}

// Until the process exits (exit 0 after a final line) or a signal stops us.
int Watch(const Process& process, const std::string& path,
          uint64_t interval_ms, Snapshot first) {
  Rates rates = RatesSinceStart(first, process.age_seconds);
  fputs(WatchHeader().c_str(), stdout);
  fputs(WatchLine(first, rates).c_str(), stdout);
  fflush(stdout);
  Snapshot base = first;  // the version the rates were last taken from
  Snapshot last = first;
  for (;;) {
    SleepMs(interval_ms);
    absl::StatusOr<Snapshot> next = ReadSnapshot(path);
    if (!ProcessAlive(process.pid)) break;
    if (!next.ok()) {
      if (!absl::IsNotFound(next.status())) {
        return ReportError(kExitFailure, next.status().message());
      }
      // Removed at exit: give the process a moment to be gone.
      for (int i = 0; i < 20 && ProcessAlive(process.pid); ++i) SleepMs(50);
      break;
    }
    if (SecondsBetween(base.written, next->written) > 0) {
      rates = RatesBetween(base, *next);
      base = *next;
    }
    last = *next;
    fputs(WatchLine(last, rates).c_str(), stdout);
    fflush(stdout);
  }
  fputs(FinalLine(process, last).c_str(), stdout);
  fflush(stdout);
  return kExitOk;
}

}  // namespace

absl::StatusOr<StatRequest> ParseStatArgs(const std::vector<std::string>& args) {
  StatRequest request;
  bool have_pid = false;
  for (size_t i = 0; i < args.size(); ++i) {
    absl::string_view word = args[i];
    if (word == "-h" || word == "--help") {
      request.help = true;
      return request;
    }
    if (word == "-w" || word == "--watch") {
      request.watch = true;
      continue;
    }
    if (word == "--format" || absl::StartsWith(word, "--format=")) {
      std::string value;
      if (absl::ConsumePrefix(&word, "--format=")) {
        value = std::string(word);
      } else if (i + 1 < args.size()) {
        value = args[++i];
      } else {
        return absl::InvalidArgumentError(
            "stat: --format needs a value: text or prometheus");
      }
      if (value != "text" && value != "prometheus") {
        return absl::InvalidArgumentError(absl::StrCat(
            "stat: --format '", value, "' is not text or prometheus"));
      }
      request.prometheus = value == "prometheus";
      continue;
    }
    if (word == "-i" || word == "--interval" ||
        absl::StartsWith(word, "--interval=")) {
      std::string value;
      if (absl::ConsumePrefix(&word, "--interval=")) {
        value = std::string(word);
      } else if (i + 1 < args.size()) {
        value = args[++i];
      } else {
        return absl::InvalidArgumentError(
            "stat: --interval needs a value, e.g. --interval 1s");
      }
      absl::StatusOr<shim::Config> checked =
          ParseSetting("COLDHEAP_SCAN_INTERVAL", value);
      if (!checked.ok()) {
        return absl::InvalidArgumentError(absl::StrCat(
            "stat: --interval ", checked.status().message()));
      }
      request.interval_ms = checked->scan_interval_ms;
      request.watch = true;
      continue;
    }
    bool negative_number =
        word.size() > 1 && absl::ascii_isdigit(static_cast<unsigned char>(word[1]));
    if (word.size() > 1 && word[0] == '-' && !negative_number) {
      return absl::InvalidArgumentError(absl::StrCat(
          "stat: unknown option '", word, "' (", kStatHelpHint, ")"));
    }
    if (have_pid) {
      return absl::InvalidArgumentError(absl::StrCat(
          "stat: unexpected '", word, "': one process id only (",
          kStatHelpHint, ")"));
    }
    absl::StatusOr<pid_t> pid = ParsePid(word);
    if (!pid.ok()) return pid.status();
    request.pid = *pid;
    have_pid = true;
  }
  if (request.prometheus && request.watch) {
    return absl::InvalidArgumentError(
        "stat: --format=prometheus prints once; it does not go with --watch "
        "(a scraper asks again)");
  }
  if (!have_pid) {
    return absl::InvalidArgumentError(absl::StrCat(
        "stat: no process id (usage: coldheap stat [--watch [--interval D]] "
        "PID; ",
        kStatHelpHint, ")"));
  }
  return request;
}

std::string StatUsage() {
  return absl::StrCat(
      "Usage: coldheap stat [--format=text|prometheus] PID\n"
      "       coldheap stat --watch PID [--interval D]\n"
      "\n"
      "Shows the statistics of process PID, which runs under coldheap. Such a\n"
      "process keeps them in /tmp/coldheap-UID/PID.stats, rewritten at each\n"
      "scan (COLDHEAP_SCAN_INTERVAL, default ",
      DefaultSetting("COLDHEAP_SCAN_INTERVAL"),
      ") once its heap is in use, and\n"
      "removes the file when it exits. Names follow zswap's (stored_pages,\n"
      "pool_total_size, reject_compress_poor, ...).\n"
      "\n"
      "Options:\n"
      "  -w, --watch         one line per interval, like 'vmstat 1', until the\n"
      "                      process exits (exit status 0) or Ctrl-C\n"
      "  -i, --interval D    time between two lines, e.g. 500ms, 1s, 1m\n"
      "                      (default 1s); implies --watch\n"
      "  --format=prometheus print the statistics once in Prometheus's text\n"
      "                      exposition format (coldheap_* metrics labelled\n"
      "                      pid), as COLDHEAP_STATS=prometheus:PATH writes\n"
      "                      them; --format=text is the default\n"
      "  -h, --help          print this text\n"
      "\n"
      "Columns of --watch:\n"
      "  stored      pages held compressed in the pool\n"
      "  same        pages held as one repeated word (no pool space)\n"
      "  pool_MiB    memory the pool uses\n"
      "  ratio       stored pages' size / pool size\n"
      "  resident    heap pages in memory\n"
      "  evicted/s   pages compressed (or same-filled) per second\n"
      "  refaults/s  evicted pages touched again per second\n"
      "  rejects/s   pages that stayed resident (poor compression, busy)\n"
      "  cpu%        coldheap's own threads, in percent of one core\n"
      "Rates cover the last interval (the process's own scan times); the\n"
      "first line's, the time since the process started.\n"
      "\n"
      "Exit status: 0; 1 if there is no such process or it does not run\n"
      "under coldheap; 2 for a bad command line.\n");
}

std::string FormatReport(const Process& process, const Snapshot& snapshot) {
  timespec now;
  clock_gettime(CLOCK_REALTIME, &now);
  double age = SecondsBetween(snapshot.written, now);
  std::string out = absl::StrFormat(
      "process %d%s under coldheap; statistics of %.1f s ago\n", process.pid,
      process.name.empty() ? "" : absl::StrCat(" (", process.name, ")"),
      age < 0 ? 0 : age);
  std::set<std::string, std::less<>> shown;
  for (absl::string_view group : kGroups) {
    absl::StrAppend(&out, group, "\n");
    for (const Row& row : kRows) {
      if (row.group != group) continue;
      for (const auto& [key, value] : snapshot.entries) {
        if (key != row.key) continue;
        absl::StrAppend(&out, FormatRow(row, value, process));
        shown.insert(key);
        break;
      }
    }
    absl::StrAppend(&out, GroupExtras(group, snapshot, process.age_seconds));
  }
  std::string other;
  for (const auto& [key, value] : snapshot.entries) {
    if (shown.count(key) != 0 || absl::StartsWith(key, kLatencyPrefix)) continue;
    absl::StrAppend(&other, Line(key, value, ""));
  }
  if (!other.empty()) absl::StrAppend(&out, "other\n", other);
  return out;
}

std::string FormatPrometheusReport(const Process& process,
                                   const Snapshot& snapshot) {
  std::string text;
  for (const auto& [key, value] : snapshot.entries) {
    absl::StrAppend(&text, key, " ", value, "\n");
  }
  // Room for a newer shim's file with more statistics than this one knows.
  std::string out(4 * shim::kMaxExpositionSize, '\0');
  out.resize(shim::FormatPrometheus(text, static_cast<uint64_t>(process.pid),
                                    out.data(), out.size()));
  return out;
}

Rates RatesBetween(const Snapshot& earlier, const Snapshot& later) {
  return RatesOver(earlier, later,
                   SecondsBetween(earlier.written, later.written));
}

Rates RatesSinceStart(const Snapshot& snapshot, double age_seconds) {
  return RatesOver(Snapshot(), snapshot, age_seconds);  // all counters at 0
}

std::string WatchHeader() {
  return absl::StrFormat("%9s %8s %9s %6s %9s %10s %11s %12s %10s %6s\n",
                         "stored", "same", "pool_MiB", "ratio", "resident",
                         "evicted/s", "refaults/s", "mistakes/min", "rejects/s",
                         "cpu%");
}

std::string WatchLine(const Snapshot& snapshot, const Rates& rates) {
  return absl::StrFormat(
      "%9.0f %8.0f %9.1f %6.2f %9.0f %10.0f %11.0f %12.0f %10.0f %6.1f\n",
      Value(snapshot, "stored_pages"), Value(snapshot, "same_filled_pages"),
      Value(snapshot, "pool_total_size") / kMiB,
      Value(snapshot, "compression_ratio"), Value(snapshot, "resident_pages"),
      rates.evicted, rates.refaults, rates.mistakes * 60, rates.rejects,
      rates.cpu_percent);
}

int StatCommand(const std::vector<std::string>& args) {
  absl::StatusOr<StatRequest> request = ParseStatArgs(args);
  if (!request.ok()) return ReportError(kExitUsage, request.status().message());
  if (request->help) {
    fputs(StatUsage().c_str(), stdout);
    return kExitOk;
  }
  absl::StatusOr<Process> process = ProbeProcess(request->pid);
  if (!process.ok()) return ReportError(kExitFailure, process.status().message());
  std::string path = LiveStatsPath(*process);
  absl::StatusOr<Snapshot> snapshot = ReadSnapshot(path);
  if (absl::IsNotFound(snapshot.status())) {
    if (MapsShim(request->pid)) {
      return ReportError(
          kExitFailure,
          absl::StrCat("process ", request->pid,
                       " runs under coldheap but has not written ", path,
                       " yet (it is written at each scan once its heap is "
                       "in use)"));
    }
    return ReportError(kExitFailure,
                       absl::StrCat("process ", request->pid,
                                    " is not running under coldheap (no ",
                                    path, ")"));
  }
  if (absl::IsPermissionDenied(snapshot.status())) {
    return ReportError(
        kExitFailure,
        absl::StrCat(snapshot.status().message(), " (statistics of uid ",
                     process->uid, "'s processes are for that user and root)"));
  }
  if (!snapshot.ok()) return ReportError(kExitFailure, snapshot.status().message());
  if (WrittenBeforeStart(*snapshot, *process)) {
    // A process that ended without exit() (a signal, _exit) leaves its
    // file behind; its process id may since have been reused.
    return ReportError(
        kExitFailure,
        absl::StrCat("process ", request->pid,
                     " is not running under coldheap (", path,
                     " was left by an earlier process ", request->pid, ")"));
  }
  if (request->prometheus) {
    fputs(FormatPrometheusReport(*process, *snapshot).c_str(), stdout);
    return kExitOk;
  }
  if (!request->watch) {
    fputs(FormatReport(*process, *snapshot).c_str(), stdout);
    return kExitOk;
  }
  return Watch(*process, path, request->interval_ms, *std::move(snapshot));
}

}  // namespace coldheap::launcher
