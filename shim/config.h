// The shim's configuration, read once from COLDHEAP_* environment variables.
//
// It is read at load time, before malloc is ready, so nothing here allocates:
// the environment is walked in place, paths are copied into fixed arrays in
// Config, and problems are reported through shim/log.h. Config is a plain
// value with constant defaults (kDefaultConfig), so a global Config needs no
// static constructor.
//
// A bad value never stops the program (DESIGN.md invariant 6): it gets one
// stderr line naming the variable, the value as given and the accepted form,
// and the setting keeps its default, e.g.
//   coldheap: COLDHEAP_COLD_AGE='30x' is not a duration (accepted: 0 or a
//   number with ms, s or m up to 1440m, e.g. 500ms, 30s, 2m); using the
//   default 30s
// (one line). A COLDHEAP_* name that is not below (a typo such as
// COLDHEAP_COLDAGE) gets one line saying it is not a known variable and is
// ignored, with the closest known name when one is near. COLDHEAP_LOG=off
// silences these lines too.
//
// | variable                          | default  | accepted                                                           |
// |-----------------------------------|----------|--------------------------------------------------------------------|
// | COLDHEAP_ENABLE                   | on       | 1, 0, true, false, yes, no, on, off; off = plain jemalloc          |
// | COLDHEAP_COLD_AGE                 | 30s      | a duration up to 1440m; 0 = evict every resident page each scan    |
// | COLDHEAP_SCAN_INTERVAL            | 1s       | a duration from 1ms to 1440m                                       |
// | COLDHEAP_TARGET                   | none     | resident heap + pool budget: a size > 0, or 1% to 100% of the heap |
// | COLDHEAP_MAX_POOL_PERCENT         | 50       | an integer from 1 to 100 (a trailing % is allowed)                 |
// | COLDHEAP_ACCEPT_THRESHOLD_PERCENT | 90       | an integer from 0 to 100 (a trailing % is allowed)                 |
// | COLDHEAP_ZPOOL                    | zsmalloc | zsmalloc or zbud                                                   |
// | COLDHEAP_COMPRESSOR               | lz4      | lz4 or zstd                                                        |
// | COLDHEAP_REGION_SIZE              | 64G      | a size from 64M to 64T, rounded up to a multiple of 2M             |
// | COLDHEAP_STATS                    | none     | empty (none), stderr, a file path, or prometheus:PATH (see below)  |
// | COLDHEAP_LOG                      | error    | off, error, info or debug                                          |
// | COLDHEAP_PROMOTION_RATE           | 0.2%     | percent per minute, a decimal from 0 to 100, e.g. 0.2 or 0.2%      |
// | COLDHEAP_CPU_BUDGET               | 2%       | percent of one core, a decimal from 0.1 to 100, e.g. 2 or 0.5%     |
// | COLDHEAP_WRITEBACK_FILE           | none     | empty (none) or a file path of at most 255 bytes                   |
// | COLDHEAP_FAULT_AROUND             | 0        | an integer from 0 to 64                                            |
// | COLDHEAP_EVICT_ALL_AT             | 0 (off)  | a duration up to 1440m; 0 = off                                    |
// | COLDHEAP_DENSE                    | off      | off, zstd or zstd:LEVEL with LEVEL an integer from 1 to 19 (zstd=3)|
// | COLDHEAP_DENSE_AGE                | auto     | auto or a duration up to 1440m; 0 = at the first scan              |
//
// What they mean:
// - ENABLE=off: the program runs on plain jemalloc; nothing is evicted.
// - COLD_AGE: a page untouched this long is cold. 0 is a stress mode.
// - SCAN_INTERVAL: time between two scans of the region.
// - TARGET: a budget for resident heap + pool, e.g. 512M, 4G or 60%.
// - MAX_POOL_PERCENT: the most the pool may hold, in percent of the live
//   heap (resident + evicted pages). zswap's max_pool_percent is of all RAM,
//   where 20 is its default; of one heap, 20 would stop a cache whose cold
//   90% compresses 2.5x (a pool of 36% of the heap) halfway, so 50.
// - ACCEPT_THRESHOLD_PERCENT: once full, the pool takes pages again only
//   below this percent of its limit (zswap's accept_threshold_percent).
// - REGION_SIZE: address space reserved (MAP_NORESERVE) for the heap.
// - STATS: where statistics go. A path is absolute or relative to the
//   working directory; paths are at most 255 bytes. prometheus:PATH writes
//   Prometheus's text exposition format to the file PATH instead, or, when
//   PATH ends with '/', to DIR/coldheap_<pid>.prom, replaced atomically (for
//   node_exporter's textfile collector).
// - LOG: error (the default) prints errors and warnings about configuration
//   and fallbacks only; info adds the configuration in effect and set-up
//   facts; debug adds detail for developers.
// - PROMOTION_RATE: percent per minute (see the policy).
// - CPU_BUDGET: share of one core the background eviction work may use.
// - WRITEBACK_FILE: a file to write pool pages back to; unset: none.
// - FAULT_AROUND: evicted neighbours restored together with a faulting page.
//   Off by default: measured, 8 neighbours cut faults per page 4.5x when
//   the neighbours are used, but nearly double a refault's latency, and for
//   random access they bring back memory nobody asked for.
// - EVICT_ALL_AT: a measurement mode, not for production: the shim evicts
//   nothing until this long after start, then takes every resident page out
//   once, and never evicts again. The pages the program faults back are
//   exactly those it touches afterwards, so the footprint of such a run is
//   the best any page-granular policy could do (the footprint runner's
//   oracle). The other eviction settings are ignored.
// - DENSE: a dense tier. Pages that stay long in the pool are recompressed
//   in the background with zstd at LEVEL, using a dictionary trained on the
//   process's own pages.
// - DENSE_AGE: how long a page stays in the LZ4 pool before it is
//   recompressed; auto = 4 cold thresholds of the page (adaptive). 0 is a
//   stress mode: recompress at the first scan after a page is stored.
//
// Forms, everywhere:
// - size: an integer number of bytes, optionally followed by B, K, KB, KiB, M,
//   MB, MiB, G, GB, GiB, T, TB or TiB. All units are binary (1K = 1024) and
//   any case is accepted (64g, 64GiB). No fractions: 1536M, not 1.5G.
// - duration: an integer followed by ms, s or m (any case), e.g. 500ms, 30s,
//   2m. A unit is required, except for 0.
// - keywords (on/off, zsmalloc, lz4, error, ...) are matched in any case.
// - Spaces and tabs around a value are ignored, except for paths, which are
//   taken exactly as given.
// - Decimals: at most 4 digits after the point (more are accepted only if
//   they are zeros); a leading digit is required (0.5, not .5).
// - Rejected: empty values (except for the paths), signs (+5, -5), overflow,
//   fractions where an integer is expected, anything after the number and its
//   unit (30s5, 4G!).
#ifndef COLDHEAP_SHIM_CONFIG_H_
#define COLDHEAP_SHIM_CONFIG_H_

#include <cstddef>
#include <cstdint>

#include "shim/log.h"

namespace coldheap::shim {

// Limits enforced by the parser (see the table).
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
enum class TargetKind : uint8_t {
  kNone,         // no budget
  kBytes,        // target_bytes
  kHeapPercent,  // target_heap_percent of the heap
};

// Every setting with its default. Percentages with decimals are held in parts
// per million (ppm) of the whole: 1% = 10000 ppm, 0.2% = 2000 ppm.
struct Config {
  // COLDHEAP_ENABLE. False: plain jemalloc, no region, nothing evicted.
  bool enable = true;
  // COLDHEAP_COLD_AGE. 0: every resident page is evicted at each scan.
  uint64_t cold_age_ms = 30'000;
  // COLDHEAP_SCAN_INTERVAL, >= 1.
  uint64_t scan_interval_ms = 1'000;
  // COLDHEAP_TARGET: target_bytes when kBytes, target_heap_percent (1..100)
  // when kHeapPercent; the other one is 0.
  TargetKind target_kind = TargetKind::kNone;
  uint64_t target_bytes = 0;
  uint32_t target_heap_percent = 0;
  // COLDHEAP_MAX_POOL_PERCENT, 1..100.
  uint32_t max_pool_percent = 50;
  // COLDHEAP_ACCEPT_THRESHOLD_PERCENT, 0..100.
  uint32_t accept_threshold_percent = 90;
  // COLDHEAP_ZPOOL.
  ZpoolKind zpool = ZpoolKind::kZsmalloc;
  // COLDHEAP_COMPRESSOR.
  CompressorKind compressor = CompressorKind::kLz4;
  // COLDHEAP_REGION_SIZE: kMinRegionSize..kMaxRegionSize, a multiple of
  // kRegionSizeAlignment.
  uint64_t region_size = uint64_t{64} << 30;
  // COLDHEAP_STATS. stats_path is NUL-terminated, set only when kFile.
  // kPrometheus comes only with kFile; stats_path_is_dir then says that
  // stats_path ends with '/' and names a directory.
  StatsDestination stats = StatsDestination::kNone;
  StatsFormat stats_format = StatsFormat::kText;
  bool stats_path_is_dir = false;
  char stats_path[kMaxPathLength + 1] = {};
  // COLDHEAP_LOG.
  LogLevel log_level = kDefaultLogLevel;
  // COLDHEAP_PROMOTION_RATE, percent per minute in ppm: 0..1'000'000.
  uint32_t promotion_rate_ppm_per_minute = 2'000;
  // COLDHEAP_CPU_BUDGET, of one core in ppm: 1'000..1'000'000.
  uint32_t cpu_budget_ppm = 20'000;
  // COLDHEAP_WRITEBACK_FILE, NUL-terminated; empty: no writeback.
  char writeback_file[kMaxPathLength + 1] = {};
  // COLDHEAP_FAULT_AROUND, 0..kMaxFaultAroundPages.
  uint32_t fault_around_pages = 0;
  // COLDHEAP_EVICT_ALL_AT; 0: off.
  uint64_t evict_all_at_ms = 0;
  // COLDHEAP_DENSE; dense_level (kMinDenseLevel..kMaxDenseLevel) is used
  // when kZstd.
  DenseKind dense = DenseKind::kOff;
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
