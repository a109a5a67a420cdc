// The page table: one entry per 4 KiB page of the managed region, in memory
// the shim maps for itself (never in the region, so reading it never faults).
//
// Each entry is a small state machine. Its state word is the only thing
// threads race on; the payload beside it (a pool handle, a fill value or a
// staging slot) belongs to whoever moved the state word last, and is written
// before and read after that move (release/acquire).
//
//   kUntouched   no page frame; the next touch reads zeros (fresh or purged)
//   kResident    the page is (normally) mapped; the evictor may claim it
//   kClaimed     the evictor owns it and is moving it out of the region
//   kStaged      moved out to the evictor's staging slot `payload`, being
//                compressed; a fault copies it back from there (no decompress)
//   kRestoring   a fault handler owns it and is putting the bytes back
//   kCompressed  stored in the pool under handle `payload`, `size` bytes
//   kSameFilled  every 8-byte word equals `payload`; no pool memory
//   kWrittenBack the pool was full: its compressed bytes (`size`) are in
//                the writeback file at slot `payload`
//   kDiscarded   jemalloc purged it while compressed: reads zeros, and the
//                pool handle in `payload` still has to be freed (program
//                threads never touch the pool, so they leave that to the
//                evictor or the next fault)
//   kDiscardedSlot  the same for a written-back page: `payload` is the
//                writeback slot to give back
//
// Who moves what: the evictor Resident->Claimed->Staged->{Compressed,
// SameFilled, Resident} and Compressed->Claimed->WrittenBack; fault handlers
// {Untouched, Staged, Compressed, SameFilled, WrittenBack, Discarded*}->
// Restoring->Resident; jemalloc's purge (a program
// thread) anything->Untouched/Discarded, waiting out Claimed and Restoring,
// which their owners finish without ever waiting on a program thread.
#ifndef COLDHEAP_SHIM_PAGE_TABLE_H_
#define COLDHEAP_SHIM_PAGE_TABLE_H_

#include <atomic>
#include <cstddef>
#include <cstdint>

namespace coldheap::shim {

inline constexpr size_t kPageSize = 4096;
inline constexpr int kPageShift = 12;

enum class PageState : uint8_t {
  kUntouched = 0,  // zero-initialised memory means "untouched"
  kResident,
  kClaimed,
  kStaged,
  kRestoring,
  kCompressed,
  kSameFilled,
  kDiscarded,
  kWrittenBack,
  kDiscardedSlot,
};

// The state word packs the state with the compressed size and the codec
// (for kCompressed and kWrittenBack): codec 0 is COLDHEAP_COMPRESSOR's, the
// others the dense tier's (shim/dense_tier.h), so a page's bytes always say
// how to read them back, wherever they are kept. `dense_tried` marks a
// kCompressed page the dense tier recompressed without gain: it keeps its
// copy and is not tried again. Any move of the page clears it.
struct PageWord {
  PageState state;
  uint16_t size;  // compressed bytes, kCompressed and kWrittenBack only
  uint8_t codec;  // kCompressed and kWrittenBack only; < 128
  bool dense_tried = false;

  static constexpr uint32_t kDenseTried = uint32_t{1} << 31;

  static uint32_t Pack(PageState s, uint16_t size = 0, uint8_t codec = 0) {
    return static_cast<uint32_t>(s) | (static_cast<uint32_t>(size) << 8) |
           (static_cast<uint32_t>(codec) << 24);
  }
  static PageWord Unpack(uint32_t w) {
    return PageWord{static_cast<PageState>(w & 0xff),
                    static_cast<uint16_t>((w >> 8) & 0xffff),
                    static_cast<uint8_t>((w >> 24) & 0x7f),
                    (w & kDenseTried) != 0};
  }
};

struct PageEntry {
  std::atomic<uint32_t> word;  // PageWord::Pack
  // In the page's own ticks (one per 2^refault_level scans, saturating; see
  // policy/refault_memory.h): while resident, since it was last written or
  // restored; while out (staged, compressed, same-filled, written back),
  // since it was taken out. Advanced by the evictor's scanner; whoever moves
  // the page in or out resets it.
  std::atomic<uint8_t> age;
  // Scans to skip this page after it compressed poorly (exponential back-off).
  uint8_t skip_scans;
  uint8_t poor_compressions;
  // Mistakes remembered (policy::LevelAfterRefault): set by the fault handler
  // that restores the page, while it owns the entry; reset on first touch.
  std::atomic<uint8_t> refault_level;
  uint64_t payload;  // handle / fill value / staging slot, see above
};
static_assert(sizeof(PageEntry) == 16, "keep the page table at 16 B a page");

class PageTable {
 public:
  PageTable() = default;
  // `entries` is zero-filled memory (all kUntouched) for `pages` pages,
  // mapped by the caller outside the region.
  PageTable(PageEntry* entries, size_t pages)
      : entries_(entries), pages_(pages) {}

  PageEntry& at(size_t index) const { return entries_[index]; }
  size_t pages() const { return pages_; }

  static uint32_t LoadWord(const PageEntry& e) {
    return e.word.load(std::memory_order_acquire);
  }
  static PageWord Load(const PageEntry& e) {
    return PageWord::Unpack(LoadWord(e));
  }
  // Moves `e` to `to` if its word is still `expected` (as loaded).
  static bool Claim(PageEntry& e, uint32_t expected, PageState to) {
    return e.word.compare_exchange_strong(expected, PageWord::Pack(to),
                                          std::memory_order_acq_rel);
  }
  // Moves `e` from `from` (a state without a size) to `to`.
  static bool Transition(PageEntry& e, PageState from, PageState to,
                         uint16_t size = 0, uint8_t codec = 0) {
    uint32_t expected = PageWord::Pack(from);
    return e.word.compare_exchange_strong(
        expected, PageWord::Pack(to, size, codec), std::memory_order_acq_rel);
  }
  // Stores a state the caller owns the entry for (after a Claim/Transition).
  static void Publish(PageEntry& e, PageState to, uint16_t size = 0,
                      uint8_t codec = 0) {
    e.word.store(PageWord::Pack(to, size, codec), std::memory_order_release);
  }

 private:
  PageEntry* entries_ = nullptr;
  size_t pages_ = 0;
};

}  // namespace coldheap::shim

#endif  // COLDHEAP_SHIM_PAGE_TABLE_H_
