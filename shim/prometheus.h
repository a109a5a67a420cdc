// The statistics in Prometheus's text exposition format (version 0.0.4),
// made from the statistics text (WriteStats' "name value" lines), so the
// shim (COLDHEAP_STATS=prometheus:...) and `coldheap stat --format=prometheus`
// (which reads that text from a live process's file) print the same thing
// from one table of names, types and help texts (prometheus.cc).
//
// Names follow Prometheus's conventions: a coldheap_ prefix, base units
// (_bytes, _seconds; microseconds, ppm and per-minute values are converted),
// _total on counters, none on gauges; pages are counted as pages, like
// zswap's and the kernel's vmstat. Every sample carries pid="PID".
//
// The two distributions:
// - the fault latency (fault_latency_us_lt_N, _ge_N, _sum: counts since
//   start) is a real histogram, coldheap_fault_latency_seconds with
//   cumulative _bucket{le=...}, _sum and _count;
// - the ages of resident pages (age_scans_lt_N) are a snapshot taken at each
//   scan, not observations that accumulate, so a histogram (whose buckets
//   must only grow) would be wrong: they are one gauge,
//   coldheap_resident_pages_by_age{age_scans_lt="N"}.
//
// A name the table does not know (a newer shim's file read by an older
// launcher) is passed on as an untyped coldheap_NAME, as `coldheap stat`
// shows it under "other".
#ifndef COLDHEAP_SHIM_PROMETHEUS_H_
#define COLDHEAP_SHIM_PROMETHEUS_H_

#include <cstddef>
#include <cstdint>

#include "absl/strings/string_view.h"

namespace coldheap::shim {

// Room for the exposition of every statistic with 20-digit values, twice
// over (a test holds the table to half of it).
inline constexpr size_t kMaxExpositionSize = 64 * 1024;

// Writes the exposition of `stats` (statistics text) into `out`, each sample
// labelled pid="`pid`", and returns its length; 0 if it does not fit in
// `capacity` (nothing partial is ever returned). Lines that are not
// "name number" are left out, so the result always parses. Allocation-free:
// the shim calls it from its own threads and at exit.
size_t FormatPrometheus(absl::string_view stats, uint64_t pid, char* out,
                        size_t capacity);

}  // namespace coldheap::shim

#endif  // COLDHEAP_SHIM_PROMETHEUS_H_
