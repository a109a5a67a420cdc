// Per-page memory of mistakes: how a page that came back too soon after it
// was taken out earns a longer personal cold threshold.
//
// Why: write tracking (WP_ASYNC + PAGEMAP_SCAN) cannot see reads, so a page
// that is only read looks as cold as one nobody uses. Without memory, such a
// page is taken out once every cold age for as long as the program runs;
// every time it costs a fault and a stalled thread. The only read signal we
// have is the fault we caused, so each page remembers its faults.
//
// The shape follows Linux's workingset refault distance (mm/workingset.c):
// a refault is judged by how long the page stayed out, in the page's own
// ticks. A page that comes back within kMistakeWindow cold thresholds of
// being taken out was a mistake: reads are invisible, so a page read every
// few cold ages looks cold at every threshold we could pick, and only this
// window tells it from a page that is touched once in a long while (which
// is worth taking out: hours of saved memory for one fault). The window is
// capped by what a byte of age holds (255 ticks). As in MGLRU's tiers (mm/vmscan.c),
// each mistake moves the page one tier up, and each tier doubles the
// evidence needed to take it out again: a page at level L ages one tick
// every 2^L scans, so it needs cold_age * 2^L scans of silence. The level is
// capped at kMaxRefaultLevel (threshold x1024), like the poor-compression
// back-off, so a page read every few cold ages is taken out at most
// kMaxRefaultLevel + 1 times before it settles, and then once every 1024
// cold ages: 8.5 hours at the default 30 s, which keeps a read-hot page's
// refaults near the default promotion objective (0.2% a minute is one
// refault per page every 500 minutes). The price: a page that was read-hot
// and then goes cold for good stays resident that long. A refault that comes after the page stayed out at least its
// threshold proves it was cold enough: one level down. A page that is freed
// and reused (jemalloc purge, first touch) starts again at level 0.
//
// Ages are counted in the page's own ticks in both directions: while
// resident, ticks since it was last written or restored; while out
// (probation, pool, writeback), ticks since it was taken out. One byte each
// holds both, since a page is never both.
#ifndef COLDHEAP_POLICY_REFAULT_MEMORY_H_
#define COLDHEAP_POLICY_REFAULT_MEMORY_H_

#include <cstdint>

namespace coldheap::policy {

inline constexpr uint8_t kMaxRefaultLevel = 10;
inline constexpr uint32_t kMistakeWindow = 8;  // in cold thresholds

// True if a page at `level` gains a tick of age at scan number `scan`.
inline bool AgesAtScan(uint8_t level, uint64_t scan) {
  return (scan & ((uint64_t{1} << level) - 1)) == 0;
}

// True if a page that stayed out `ticks_out` of its ticks came back too soon
// for a cold threshold of `cold_age_scans`.
inline bool IsMistake(uint8_t ticks_out, uint32_t cold_age_scans) {
  uint32_t window = cold_age_scans * kMistakeWindow;
  return ticks_out < (window < 255 ? window : 255);
}

// The level after a refault.
inline uint8_t LevelAfterRefault(uint8_t level, uint8_t ticks_out,
                                 uint32_t cold_age_scans) {
  if (IsMistake(ticks_out, cold_age_scans)) {
    return level < kMaxRefaultLevel ? level + 1 : level;
  }
  return level > 0 ? level - 1 : 0;
}

}  // namespace coldheap::policy

#endif  // COLDHEAP_POLICY_REFAULT_MEMORY_H_
