// The shim's configuration, read once from COLDHEAP_* environment variables.
// What each setting does: README.md ("Configuration").
//
// It is read at load time, before malloc is ready, so nothing here allocates:
// the environment is walked in place, paths are copied into fixed arrays in
// Config, and problems are reported through shim/log.h. Config is a plain
// value with constant defaults, so a global Config needs no constructor.
//
// A bad value never stops the program (DESIGN.md invariant 6): one stderr
// line names the variable, the value as given and the accepted form, and the
// setting keeps its default, e.g.
//   coldheap: COLDHEAP_COLD_AGE='30x' is not a duration (accepted: 0 or a
//   duration up to 24h, e.g. 500ms, 30s, 1h30m); using the default 30s
// An unknown COLDHEAP_* name (a typo) gets one line, with the closest known
// name when one is near. COLDHEAP_LOG=off silences both.
//
// The variables, their defaults and accepted values: the table in
// config.cc (kVariables) and README.md, "Configuration". STATS=prometheus:
// PATH writes Prometheus's text format to PATH, or, if PATH ends with '/',
// replaces DIR/coldheap_<pid>.prom atomically (node_exporter's textfile
// collector).
//
// Forms:
// - duration: absl::ParseDuration's syntax, numbers with an optional fraction
//   each followed by ns, us, ms, s, m or h (500ms, 90s, 1.5h, 1h30m; 0 needs
//   no unit), units in any case (2M is 2 minutes), in whole milliseconds, at
//   most 64 characters.
// - size: an integer of bytes with an optional binary unit B, K, KB, KiB, M,
//   ..., T, TB or TiB in any case (1K = 1024). No fractions: 1536M, not 1.5G.
// - percentage: an integer with an optional %; the decimal ones (PROMOTION_
//   RATE, CPU_BUDGET) take 4 decimals (more if zeros; 0.2, not .2), in ppm.
// - path: at most 255 bytes, exactly as given (STATS, WRITEBACK_FILE; STATS's
//   stderr and prometheus: only in lower case).
// - Keywords match in any case, whitespace around a value other than a path
//   is ignored. Rejected: empty values (except paths), signs, inf, overflow,
//   fractions where an integer is expected, and anything after the number and
//   its unit (30s5, 4G!).
#ifndef COLDHEAP_SHIM_CONFIG_H_
#define COLDHEAP_SHIM_CONFIG_H_

#include <cstddef>
#include <cstdint>

#include "shim/log.h"

namespace coldheap::shim {

// Longest accepted path, in bytes, without the terminating NUL.
inline constexpr size_t kMaxPathLength = 255;
inline constexpr uint64_t kMaxDurationMs = uint64_t{24} * 60 * 60 * 1000;
inline constexpr uint64_t kMinRegionSize = uint64_t{64} << 20;
inline constexpr uint64_t kMaxRegionSize = uint64_t{64} << 40;
inline constexpr uint64_t kRegionSizeAlignment = uint64_t{2} << 20;
inline constexpr uint32_t kMaxFaultAroundPages = 64;
inline constexpr uint32_t kMinDenseLevel = 1;
inline constexpr uint32_t kMaxDenseLevel = 19;

enum class ZpoolKind : uint8_t { kZsmalloc, kZbud };
enum class CompressorKind : uint8_t { kLz4, kZstd };
enum class StatsDestination : uint8_t { kNone, kStderr, kFile };
enum class StatsFormat : uint8_t { kText, kPrometheus };
enum class DenseKind : uint8_t { kOff, kZstd };
enum class TargetKind : uint8_t { kNone, kBytes, kHeapPercent };

// Every setting with its default. Decimal percentages are held in parts per
// million (ppm) of the whole: 1% = 10000 ppm, 0.2% = 2000 ppm.
struct Config {
  bool enable = true;  // false: plain jemalloc, no region, nothing evicted
  uint64_t cold_age_ms = 30'000;
  uint64_t scan_interval_ms = 1'000;
  // COLDHEAP_TARGET: target_bytes when kBytes, target_heap_percent when
  // kHeapPercent; the other one is 0.
  TargetKind target_kind = TargetKind::kNone;
  uint64_t target_bytes = 0;
  uint32_t target_heap_percent = 0;
  // Of the live heap, not of RAM as zswap's 20: 20 would stop a cache whose
  // cold 90% compresses 2.5x (a pool of 36% of the heap) halfway.
  uint32_t max_pool_percent = 50;
  uint32_t accept_threshold_percent = 90;
  ZpoolKind zpool = ZpoolKind::kZsmalloc;
  CompressorKind compressor = CompressorKind::kLz4;
  uint64_t region_size = uint64_t{64} << 30;  // a multiple of the alignment
  // COLDHEAP_STATS. stats_path is NUL-terminated, set only when kFile.
  // kPrometheus comes only with kFile; stats_path_is_dir then says that
  // stats_path ends with '/' and names a directory.
  StatsDestination stats = StatsDestination::kNone;
  StatsFormat stats_format = StatsFormat::kText;
  bool stats_path_is_dir = false;
  char stats_path[kMaxPathLength + 1] = {};
  LogLevel log_level = kDefaultLogLevel;
  uint32_t promotion_rate_ppm_per_minute = 2'000;
  uint32_t cpu_budget_ppm = 20'000;
  char writeback_file[kMaxPathLength + 1] = {};  // "": no writeback
  uint32_t fault_around_pages = 0;
  uint64_t evict_all_at_ms = 0;  // 0: off
  // COLDHEAP_DENSE; dense_level is used when kZstd.
  DenseKind dense = DenseKind::kZstd;
  uint32_t dense_level = 3;
  // COLDHEAP_DENSE_AGE: auto, or dense_age_ms.
  bool dense_age_auto = true;
  uint64_t dense_age_ms = 0;

  bool has_writeback_file() const { return writeback_file[0] != '\0'; }
};

inline constexpr Config kDefaultConfig{};

// Reads the settings from `envp`, an environ-style array of "NAME=value"
// strings ending in nullptr (nullptr itself means an empty environment). When
// a name appears twice, the first one counts, as with getenv. Problems are
// written to fd 2 as described above, unless the COLDHEAP_LOG found in `envp`
// is off; the process-wide log level is neither read nor changed. Never
// allocates.
Config ParseConfig(const char* const* envp);

// ParseConfig(environ), then sets the process-wide log level from it and, at
// info level, logs the configuration in effect.
Config LoadConfig();

// Writes one line per setting ("coldheap: COLDHEAP_COLD_AGE=30s") if `level`
// is enabled.
void LogConfig(const Config& config, LogLevel level);

}  // namespace coldheap::shim

#endif  // COLDHEAP_SHIM_CONFIG_H_
