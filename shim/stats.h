// The shim's statistics. Counter names follow zswap's debugfs files
// (stored_pages, same_filled_pages, pool_total_size, reject_compress_poor,
// pool_limit_hit, written_back_pages), so a reader who knows zswap knows
// these. Every counter is a relaxed atomic: the fault handler and evictor
// bump them without locks, and a reader only needs a recent, not a
// consistent, snapshot.
#ifndef COLDHEAP_SHIM_STATS_H_
#define COLDHEAP_SHIM_STATS_H_

#include <atomic>
#include <cstddef>
#include <cstdint>

#include "shim/config.h"

namespace coldheap::shim {

using Counter = std::atomic<uint64_t>;

// Resident pages by age in scans, in power-of-two buckets: bucket b holds
// ages in [2^(b-1), 2^b); bucket 0 is age 0 (written during the last scan).
inline constexpr int kAgeHistogramBuckets = 9;

// Fault service time in the handler, in power-of-two microsecond buckets:
// bucket b counts services that took [2^(b-1), 2^b) us; bucket 0 is < 1 us.
inline constexpr int kLatencyBuckets = 16;

struct Stats {
  // Pool contents (gauges).
  Counter stored_pages{0};       // pages held compressed in the pool
  Counter same_filled_pages{0};  // pages held as one repeated word
  Counter compressed_bytes{0};   // sum of compressed sizes now stored
  Counter pool_total_size{0};    // the pool's TotalSize() at the last scan
  Counter pool_peak_size{0};     // the largest of those
  Counter resident_pages{0};     // managed pages believed mapped
  Counter heap_pages{0};         // live heap pages: resident + evicted
  Counter probation_pages{0};    // moved out, not yet compressed

  // The dense tier (gauges): its part of stored_pages and compressed_bytes,
  // and what its dictionaries and context map (counted in the footprint).
  Counter dense_pages{0};
  Counter dense_bytes{0};
  Counter dense_dictionaries{0};        // slots in use, old ones included
  Counter dense_dictionary_bytes{0};    // the current dictionary's size
  Counter dense_dictionary_generation{0};  // dictionaries trained so far
  Counter dense_memory_bytes{0};

  // Policy (gauges, as of the last scan).
  Counter cold_age_scans{0};         // the adaptive cold threshold
  Counter reclaim_min_age_scans{0};  // what was reclaimed (lower in budget mode)
  Counter promotions_per_minute{0};  // refaults per minute, smoothed
  Counter refault_cost_ppm{0};       // their cost, ppm of a core, smoothed
  Counter raised_threshold_pages{0}; // pages with a refault level above 0
  Counter pool_full{0};              // 1 while the pool limit holds stores
  Counter target_unreachable{0};     // 1 while the budget cannot be met
  Counter target_unreachable_events{0};
  Counter age_histogram[kAgeHistogramBuckets] = {};

  // Events (totals since start).
  Counter evicted_pages{0};         // pages compressed or same-filled
  Counter reject_compress_poor{0};  // pages kept resident: compressed badly
  Counter reject_busy{0};           // pages that could not be moved (COW)
  Counter cow_unshared{0};          // pages a fork had shared, made movable
  Counter refaults{0};              // evicted pages faulted back
  Counter mistakes{0};  // refaults (incl. from probation) within the mistake window
  Counter unlearned_refaults{0};  // refaults that raised no page's level
  Counter staged_refaults{0};       // refaults served from staging (no decompress)
  Counter first_touch_faults{0};    // faults on untouched memory
  Counter first_touch_pages{0};     // pages zero-filled by those faults
  Counter fault_around_pages{0};    // neighbours restored with a refault
  Counter purged_pages{0};          // pages jemalloc purged or decommitted
  Counter discarded_pages{0};       // compressed copies dropped by purges
  Counter pool_limit_hit{0};  // times the pool reached its limit
  Counter written_back_pages{0};  // pages written to the writeback file
  Counter file_pages{0};          // pages now held in the writeback file
  Counter scans{0};
  Counter dense_recompressed_pages{0};  // LZ4 copies replaced by dense ones
  Counter dense_kept_pages{0};  // recompressed, but no smaller class: kept LZ4
  Counter dense_refaults{0};    // refaults of dense pages
  Counter dense_written_back_pages{0};  // dense pages among written_back_pages
  // Also written, from the os:: layer's own counts (os::FailureCount):
  // os_failures (kernel calls that failed and were handled: page kept
  // resident, scan skipped, ...) and os_failures_injected (of those, the
  // ones the fault-injection test build made fail on purpose).

  // Costs.
  Counter evictor_cpu_ns{0};  // all of the evictor's, dense work included
  Counter dense_cpu_ns{0};    // recompression and training
  Counter dense_train_cpu_ns{0};
  Counter handler_cpu_ns{0};
  // Refaults (from the pool and from probation): the time the faulting
  // threads stood still (see RefaultStallNs), and that plus the handlers'
  // CPU for them (their share of the handlers' thread-clock time, by event
  // count; updated each scan): what the CPU budget counts for mistakes.
  Counter refault_stall_ns{0};
  Counter refault_cost_ns{0};
  Counter fault_latency_us[kLatencyBuckets] = {};
  // Refaults from the pool alone (not from probation), by tier: 0 is
  // COLDHEAP_COMPRESSOR's, 1 the dense tier's.
  Counter refault_latency_us[2][kLatencyBuckets] = {};
  // The histograms' sums, in nanoseconds (Prometheus's _sum).
  Counter fault_latency_ns_sum{0};
  Counter refault_latency_ns_sum[2] = {};

  // One served fault's time, and for a refault from the pool also in its
  // tier's histogram (0: COLDHEAP_COMPRESSOR's, 1: the dense tier's).
  static constexpr int kNotARefault = -1;
  void RecordFaultLatency(uint64_t ns, int refault_tier = kNotARefault);
};

// Writes a snapshot of `stats` as "name value" lines to `fd` with one
// write(2). Allocation-free.
void WriteStats(const Stats& stats, int fd);

// Replaces the file at `path` (mode 0600; each "%p" in it stands for the
// process id) with a snapshot, atomically (a temporary beside it, then
// rename). Skipped while the process has no heap in the region, so a shell
// or launcher under the same environment does not overwrite the file of the
// program it runs. False on any failure.
bool WriteStatsFile(const Stats& stats, const char* path);

// Writes the statistics where COLDHEAP_STATS asks for a file (see
// config.h): text or, with prometheus:, the exposition (prometheus.h), to
// the file or to DIR/coldheap_PID.prom, replaced atomically as
// WriteStatsFile does. False on any failure; true when there is no file.
bool WriteConfiguredStats(const Stats& stats, const Config& config);

// At exit: the final statistics for COLDHEAP_STATS's file; a directory's
// coldheap_PID.prom is removed instead, so node_exporter stops reporting a
// process that is gone.
void FinishConfiguredStats(const Stats& stats, const Config& config);

// Every process running the shim keeps its statistics in
// /tmp/coldheap-UID/PID.stats (directory 0700, file 0600), rewritten each
// scan and removed at exit, for `coldheap stat PID`. Writes that path into
// `out` and makes sure the directory exists and is ours; false otherwise
// (then no live file is kept).
bool PrepareLiveStatsPath(char* out, size_t capacity);

// Removes the live files of processes that are gone (a child that left with
// _exit, a process killed by a signal). Set-up only: allocates.
void RemoveStaleStatsFiles();

}  // namespace coldheap::shim

#endif  // COLDHEAP_SHIM_STATS_H_
