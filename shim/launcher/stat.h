// `coldheap stat PID`, `coldheap stat --watch PID [--interval D]` and
// `coldheap stat --format=prometheus PID`: the statistics a process under
// coldheap keeps in /tmp/coldheap-UID/PID.stats, grouped for reading (pool,
// memory, activity, costs), one line per interval with rates, like
// `vmstat 1`, or in Prometheus's exposition format.
#ifndef COLDHEAP_SHIM_LAUNCHER_STAT_H_
#define COLDHEAP_SHIM_LAUNCHER_STAT_H_

#include <sys/types.h>

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "shim/launcher/stats_file.h"

namespace coldheap::launcher {

// A parsed `coldheap stat` command line.
struct StatRequest {
  bool help = false;            // -h or --help: print StatUsage() only
  bool watch = false;           // --watch, or implied by --interval
  uint64_t interval_ms = 1000;  // --interval, parsed as a scan interval
  bool prometheus = false;      // --format=prometheus
  pid_t pid = 0;
};

// Parses the words after "stat". InvalidArgument with a one-line message
// ("stat: ...") on a bad word.
absl::StatusOr<StatRequest> ParseStatArgs(const std::vector<std::string>& args);

// The text of `coldheap stat --help`.
std::string StatUsage();

// The one-shot report: a title line, then the groups, then any counters
// this launcher does not know under "other".
std::string FormatReport(const Process& process, const Snapshot& snapshot);

// The statistics in Prometheus's text exposition format, as the shim writes
// them for COLDHEAP_STATS=prometheus:PATH (shim/prometheus.h), labelled with
// the process's id.
std::string FormatPrometheusReport(const Process& process,
                                   const Snapshot& snapshot);

// Per-second rates of the watch columns.
struct Rates {
  double evicted = 0;
  double refaults = 0;
  double rejects = 0;      // reject_compress_poor + reject_busy
  double mistakes = 0;     // refaults soon after eviction (see stats.h)
  double cpu_percent = 0;  // evictor + fault handler, of one core
};

// Between two versions of the file, by their modification times (the
// process's scan clock, not the reader's), so a watch interval that is not
// a multiple of the scan interval does not alternate between 0 and double.
Rates RatesBetween(const Snapshot& earlier, const Snapshot& later);
// Since the process started (the first line of --watch, as in vmstat).
Rates RatesSinceStart(const Snapshot& snapshot, double age_seconds);

std::string WatchHeader();
std::string WatchLine(const Snapshot& snapshot, const Rates& rates);

// The whole subcommand; returns the exit code.
int StatCommand(const std::vector<std::string>& args);

}  // namespace coldheap::launcher

#endif  // COLDHEAP_SHIM_LAUNCHER_STAT_H_
