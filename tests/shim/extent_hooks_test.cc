// Tests for shim/extent_hooks.h against a heap wired by hand: a Region over
// plain anonymous memory mapped here (no userfaultfd, so MADV_DONTNEED simply
// makes pages read zeros), a PageTable over zeroed memory, Stats, and a real
// zsmalloc pool. They prove how jemalloc gets memory from the region, and
// invariant 7: purges and decommits drop every copy of the pages (compressed
// ones become kDiscarded with their handle kept for the shim's threads to
// free), wait out pages a shim thread is moving, and leave zeros behind.
#include "shim/extent_hooks.h"

#include <sys/mman.h>

#include <atomic>
#include <chrono>
#include <cerrno>
#include <cstdint>
#include <cstring>
#include <memory>
#include <thread>

#include "absl/status/statusor.h"
#include "gtest/gtest.h"
#include "pool/default_registry.h"
#include "pool/zpool.h"
#include "shim/heap.h"
#include "shim/page_table.h"
#include "shim/region.h"
#include "shim/stats.h"

namespace coldheap::shim {
namespace {

constexpr size_t kPage = kPageSize;
constexpr size_t kHugePage = size_t{2} << 20;
constexpr size_t kRegionBytes = 4 * kHugePage;
constexpr size_t kRegionPages = kRegionBytes / kPage;

uintptr_t U(const void* p) { return reinterpret_cast<uintptr_t>(p); }

bool PageIs(const void* page, unsigned char byte) {
  const auto* p = static_cast<const volatile unsigned char*>(page);
  for (size_t i = 0; i < kPage; ++i) {
    if (p[i] != byte) return false;
  }
  return true;
}

// Whether [p, p + len) is mapped at all (msync fails with ENOMEM if not).
bool Mapped(void* p, size_t len) {
  return msync(p, len, MS_ASYNC) == 0 || errno != ENOMEM;
}

class ExtentHooksTest : public ::testing::Test {
 protected:
  void SetUp() override {
    // The region: readable, writable, on a 2 MiB boundary as the shim's is.
    raw_bytes_ = kRegionBytes + kHugePage;
    raw_ = mmap(nullptr, raw_bytes_, PROT_READ | PROT_WRITE,
                MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    ASSERT_NE(raw_, MAP_FAILED);
    char* base =
        reinterpret_cast<char*>((U(raw_) + kHugePage - 1) & ~(kHugePage - 1));
    region_ = std::make_unique<Region>(base, kRegionBytes);

    table_bytes_ = kRegionPages * sizeof(PageEntry);
    void* entries = mmap(nullptr, table_bytes_, PROT_READ | PROT_WRITE,
                         MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    ASSERT_NE(entries, MAP_FAILED);
    entries_ = static_cast<PageEntry*>(entries);
    table_ = PageTable(entries_, kRegionPages);

    absl::StatusOr<pool::ZpoolPtr> pool =
        pool::DefaultZpoolRegistry().CreatePool("zsmalloc",
                                                "extent_hooks_test", {});
    ASSERT_TRUE(pool.ok()) << pool.status();
    pool_ = *std::move(pool);

    heap_.region = region_.get();
    heap_.table = &table_;
    heap_.pool = pool_.get();
    heap_.stats = &stats_;
    hooks_ = RegionExtentHooks(heap_);
    ASSERT_NE(hooks_, nullptr);
  }

  void TearDown() override {
    pool_.reset();
    if (entries_ != nullptr) munmap(entries_, table_bytes_);
    if (raw_ != nullptr && raw_ != MAP_FAILED) munmap(raw_, raw_bytes_);
  }

  void* Alloc(void* new_addr, size_t size, size_t alignment, bool* zero,
              bool* commit) {
    return hooks_->alloc(hooks_, new_addr, size, alignment, zero, commit, 0);
  }
  void* Alloc(size_t size, size_t alignment = kPage) {
    bool zero = false, commit = false;
    void* p = Alloc(nullptr, size, alignment, &zero, &commit);
    EXPECT_TRUE(zero);
    EXPECT_TRUE(commit);
    return p;
  }
  // jemalloc's call: the extent [addr, addr + size), purge [offset, +length).
  bool PurgeForced(void* addr, size_t size, size_t offset, size_t length) {
    return hooks_->purge_forced(hooks_, addr, size, offset, length, 0);
  }
  bool Decommit(void* addr, size_t size, size_t offset, size_t length) {
    return hooks_->decommit(hooks_, addr, size, offset, length, 0);
  }

  char* base() const { return region_->base(); }
  char* Page(size_t i) const { return region_->PageAddress(i); }
  PageEntry& Entry(size_t i) { return table_.at(i); }
  PageState StateOf(size_t i) { return PageTable::Load(Entry(i)).state; }

  // A page the program wrote: mapped, filled with `byte`.
  void MakeResident(size_t i, unsigned char byte) {
    memset(Page(i), byte, kPage);
    PageTable::Publish(Entry(i), PageState::kResident);
  }
  // A page the evictor stored: its bytes in the pool, its frame gone.
  pool::Handle MakeCompressed(size_t i, uint16_t size, unsigned char byte) {
    absl::StatusOr<pool::Handle> h = pool_->Malloc(size);
    EXPECT_TRUE(h.ok()) << h.status();
    {
      pool::MappedObject obj(*pool_, *h, pool::MapMode::kWriteOnly);
      memset(obj.data(), byte, size);
    }
    EXPECT_EQ(madvise(Page(i), kPage, MADV_DONTNEED), 0);
    Entry(i).payload = *h;
    PageTable::Publish(Entry(i), PageState::kCompressed, size);
    stats_.stored_pages.fetch_add(1);
    stats_.compressed_bytes.fetch_add(size);
    return *h;
  }
  void MakeSameFilled(size_t i, uint64_t value) {
    EXPECT_EQ(madvise(Page(i), kPage, MADV_DONTNEED), 0);
    Entry(i).payload = value;
    PageTable::Publish(Entry(i), PageState::kSameFilled);
    stats_.same_filled_pages.fetch_add(1);
  }
  // The pool still holds `h` with `size` bytes of `byte`; then frees it, as
  // the shim's threads do for a kDiscarded page.
  void ExpectStoredThenFree(pool::Handle h, uint16_t size, unsigned char byte) {
    {
      pool::MappedObject obj(*pool_, h, pool::MapMode::kReadOnly);
      const auto* p = static_cast<const unsigned char*>(obj.data());
      for (size_t k = 0; k < size; ++k) {
        ASSERT_EQ(p[k], byte) << "byte " << k << " of the stored object";
      }
    }
    pool_->Free(h);
  }

  void* raw_ = nullptr;
  size_t raw_bytes_ = 0;
  std::unique_ptr<Region> region_;
  PageEntry* entries_ = nullptr;
  size_t table_bytes_ = 0;
  PageTable table_;
  Stats stats_;
  pool::ZpoolPtr pool_;
  Heap heap_;
  extent_hooks_t* hooks_ = nullptr;
};

// --- alloc -----------------------------------------------------------------

TEST_F(ExtentHooksTest, AllocCarvesZeroedCommittedRegionMemory) {
  bool zero = false, commit = false;
  void* p = Alloc(nullptr, 16 * kPage, kPage, &zero, &commit);
  ASSERT_EQ(p, base());
  EXPECT_TRUE(zero) << "fresh region pages read zeros";
  EXPECT_TRUE(commit) << "region pages are always accessible";
  EXPECT_TRUE(region_->ContainsRange(p, 16 * kPage));
  EXPECT_EQ(region_->used_pages(), 16u);
  EXPECT_TRUE(PageIs(p, 0));
  // The next extent follows it.
  void* q = Alloc(8 * kPage);
  EXPECT_EQ(q, base() + 16 * kPage);
  EXPECT_EQ(region_->used_pages(), 24u);
}

TEST_F(ExtentHooksTest, AllocHonoursAlignment) {
  for (size_t alignment : {kPage, 4 * kPage, size_t{64} << 10,
                           size_t{1} << 20, kHugePage}) {
    ASSERT_NE(Alloc(kPage), nullptr);  // so the bump is off any boundary
    void* p = Alloc(2 * kPage, alignment);
    ASSERT_NE(p, nullptr);
    EXPECT_EQ(U(p) % alignment, 0u) << "alignment " << alignment;
    EXPECT_TRUE(region_->ContainsRange(p, 2 * kPage))
        << "alignment " << alignment;
  }
}

TEST_F(ExtentHooksTest, AllocTreatsSubPageAlignmentAsAPage) {
  ASSERT_EQ(Alloc(kPage, 64), base());
  void* p = Alloc(kPage, 0);
  EXPECT_EQ(p, base() + kPage);
  EXPECT_EQ(U(p) % kPage, 0u);
}

TEST_F(ExtentHooksTest, AllocFallsBackToPlainMemoryWhenTheRegionIsFull) {
  ASSERT_EQ(Alloc(kRegionBytes - kPage), base());
  // Too big for the page left: unmanaged memory, still zeroed and usable.
  bool zero = false, commit = false;
  void* p = Alloc(nullptr, 64 * kPage, kPage, &zero, &commit);
  ASSERT_NE(p, nullptr);
  EXPECT_FALSE(region_->Contains(p));
  EXPECT_FALSE(region_->Contains(static_cast<char*>(p) + 64 * kPage - 1));
  EXPECT_TRUE(zero);
  EXPECT_TRUE(commit);
  EXPECT_TRUE(PageIs(p, 0));
  memset(p, 0x3c, 64 * kPage);
  EXPECT_TRUE(PageIs(static_cast<char*>(p) + 63 * kPage, 0x3c));
  EXPECT_EQ(region_->used_pages(), kRegionPages - 1) << "the region moved";
  EXPECT_EQ(munmap(p, 64 * kPage), 0);

  // The last page still goes to the one request that fits it.
  EXPECT_EQ(Alloc(kPage), base() + kRegionBytes - kPage);
}

TEST_F(ExtentHooksTest, FallbackMemoryHonoursAlignmentUpTo2MiB) {
  ASSERT_EQ(Alloc(kRegionBytes), base());
  for (size_t alignment : {kPage, size_t{64} << 10, kHugePage}) {
    void* p = Alloc(4 * kPage, alignment);
    ASSERT_NE(p, nullptr);
    EXPECT_FALSE(region_->Contains(p));
    EXPECT_EQ(U(p) % alignment, 0u) << "alignment " << alignment;
    EXPECT_EQ(munmap(p, 4 * kPage), 0);
  }
}

// Fails about half the time: the fallback (os::Reserve) aligns to 2 MiB only,
// whatever `alignment` asks. See the report: extent_hooks.cc, Alloc.
TEST_F(ExtentHooksTest, FallbackMemoryHonoursAlignmentAbove2MiB) {
  ASSERT_EQ(Alloc(kRegionBytes), base());
  constexpr size_t kAlignment = 4 * kHugePage;
  for (int i = 0; i < 16; ++i) {
    void* p = Alloc(kPage, kAlignment);
    ASSERT_NE(p, nullptr);
    EXPECT_EQ(U(p) % kAlignment, 0u) << "try " << i;
  }
}

TEST_F(ExtentHooksTest, AllocAtTheBumpEndGrowsInPlace) {
  char* p = static_cast<char*>(Alloc(8 * kPage));
  ASSERT_EQ(p, base());
  bool zero = false, commit = false;
  void* q = Alloc(p + 8 * kPage, 4 * kPage, kPage, &zero, &commit);
  EXPECT_EQ(q, p + 8 * kPage);
  EXPECT_TRUE(zero);
  EXPECT_TRUE(commit);
  EXPECT_EQ(region_->used_pages(), 12u);
}

TEST_F(ExtentHooksTest, AllocAtAnyOtherAddressReturnsNull) {
  ASSERT_EQ(Alloc(8 * kPage), base());
  bool zero = false, commit = false;
  // Inside, but handed out already.
  EXPECT_EQ(Alloc(base(), kPage, kPage, &zero, &commit), nullptr);
  EXPECT_EQ(Alloc(base() + 4 * kPage, kPage, kPage, &zero, &commit), nullptr);
  // Inside, past the bump end.
  EXPECT_EQ(Alloc(base() + 16 * kPage, kPage, kPage, &zero, &commit),
            nullptr);
  // Outside, at an address that is mapped (so no fresh mapping can be it).
  void* mine = mmap(nullptr, kPage, PROT_READ | PROT_WRITE,
                    MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  ASSERT_NE(mine, MAP_FAILED);
  EXPECT_EQ(Alloc(mine, kPage, kPage, &zero, &commit), nullptr);
  munmap(mine, kPage);
  // At the bump end, but more than is left.
  EXPECT_EQ(Alloc(base() + 8 * kPage, kRegionBytes, kPage, &zero, &commit),
            nullptr);
  EXPECT_EQ(region_->used_pages(), 8u) << "a refused request moved the bump";
}

// --- dalloc, commit, split, merge ------------------------------------------

TEST_F(ExtentHooksTest, DallocDeclinesAndLeavesTheMemoryAlone) {
  char* p = static_cast<char*>(Alloc(4 * kPage));
  memset(p, 0x42, 4 * kPage);
  MakeResident(0, 0x42);
  EXPECT_TRUE(hooks_->dalloc(hooks_, p, 4 * kPage, true, 0));
  EXPECT_TRUE(PageIs(p + 3 * kPage, 0x42));
  EXPECT_EQ(StateOf(0), PageState::kResident);
  EXPECT_EQ(stats_.purged_pages.load(), 0u);
}

TEST_F(ExtentHooksTest, CommitAndSplitAlwaysSucceed) {
  char* p = static_cast<char*>(Alloc(4 * kPage));
  EXPECT_FALSE(hooks_->commit(hooks_, p, 4 * kPage, 0, 4 * kPage, 0));
  EXPECT_FALSE(
      hooks_->split(hooks_, p, 4 * kPage, kPage, 3 * kPage, true, 0));
}

TEST_F(ExtentHooksTest, MergeAllowedOnlyWhenBothSidesAreInTheRegion) {
  char* a = static_cast<char*>(Alloc(4 * kPage));
  char* b = a + 4 * kPage;
  ASSERT_EQ(Alloc(4 * kPage), b);
  EXPECT_FALSE(hooks_->merge(hooks_, a, 4 * kPage, b, 4 * kPage, true, 0));

  void* outside = mmap(nullptr, 4 * kPage, PROT_READ | PROT_WRITE,
                       MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  ASSERT_NE(outside, MAP_FAILED);
  EXPECT_TRUE(
      hooks_->merge(hooks_, a, 4 * kPage, outside, 4 * kPage, true, 0));
  EXPECT_TRUE(
      hooks_->merge(hooks_, outside, 4 * kPage, a, 4 * kPage, true, 0));
  EXPECT_TRUE(hooks_->merge(hooks_, outside, 2 * kPage,
                            static_cast<char*>(outside) + 2 * kPage, 2 * kPage,
                            true, 0));
  munmap(outside, 4 * kPage);

  // The region's last extent with memory just past its end.
  char* last = base() + kRegionBytes - 4 * kPage;
  EXPECT_TRUE(hooks_->merge(hooks_, last, 4 * kPage, base() + kRegionBytes,
                            4 * kPage, true, 0));
  // A range that only starts in the region.
  EXPECT_TRUE(hooks_->merge(hooks_, last, 8 * kPage, base() + kRegionBytes,
                            4 * kPage, true, 0));
}

// --- purge_forced and decommit ---------------------------------------------

TEST_F(ExtentHooksTest, PurgeDropsEveryKindOfPageInTheRange) {
  char* extent = static_cast<char*>(Alloc(16 * kPage));
  ASSERT_EQ(extent, base());
  // Pages 0 and 8 lie outside the purged range [1, 8).
  MakeResident(0, 0x11);
  MakeResident(1, 0x22);
  MakeSameFilled(2, 0x2222222222222222);
  pool::Handle compressed = MakeCompressed(3, 100, 0x33);
  // 4: untouched.
  pool::Handle discarded = MakeCompressed(5, 200, 0x55);
  PageTable::Publish(Entry(5), PageState::kDiscarded);  // purged before
  stats_.stored_pages.fetch_sub(1);
  stats_.compressed_bytes.fetch_sub(200);
  memset(Page(6), 0x66, kPage);  // moved out and being compressed
  PageTable::Publish(Entry(6), PageState::kStaged);
  MakeResident(7, 0x77);
  MakeResident(8, 0x88);
  // Gauges as the rest of a heap would hold them.
  stats_.stored_pages.fetch_add(9);
  stats_.compressed_bytes.fetch_add(9000);
  stats_.same_filled_pages.fetch_add(9);
  const uint64_t pool_size = pool_->TotalSize();

  EXPECT_FALSE(PurgeForced(extent, 16 * kPage, kPage, 7 * kPage));

  EXPECT_EQ(StateOf(1), PageState::kUntouched);
  EXPECT_EQ(StateOf(2), PageState::kUntouched);
  PageWord w3 = PageTable::Load(Entry(3));
  EXPECT_EQ(w3.state, PageState::kDiscarded);
  EXPECT_EQ(Entry(3).payload, compressed) << "the handle is kept to be freed";
  EXPECT_EQ(StateOf(4), PageState::kUntouched);
  EXPECT_EQ(StateOf(5), PageState::kDiscarded);
  EXPECT_EQ(Entry(5).payload, discarded);
  EXPECT_EQ(StateOf(6), PageState::kUntouched);
  EXPECT_EQ(StateOf(7), PageState::kUntouched);
  // Outside the range: as they were.
  EXPECT_EQ(StateOf(0), PageState::kResident);
  EXPECT_EQ(StateOf(8), PageState::kResident);
  EXPECT_TRUE(PageIs(Page(0), 0x11));
  EXPECT_TRUE(PageIs(Page(8), 0x88));
  // Every purged page reads zeros.
  for (size_t i = 1; i < 8; ++i) EXPECT_TRUE(PageIs(Page(i), 0)) << "page " << i;

  EXPECT_EQ(stats_.stored_pages.load(), 9u);
  EXPECT_EQ(stats_.compressed_bytes.load(), 9000u);
  EXPECT_EQ(stats_.same_filled_pages.load(), 9u);
  EXPECT_EQ(stats_.purged_pages.load(), 7u);
  // A program thread never touches the pool: both handles are still stored.
  EXPECT_EQ(pool_->TotalSize(), pool_size);
  ExpectStoredThenFree(compressed, 100, 0x33);
  ExpectStoredThenFree(discarded, 200, 0x55);
}

TEST_F(ExtentHooksTest, PurgeDiscardsWrittenBackPagesKeepingTheirSlot) {
  char* extent = static_cast<char*>(Alloc(4 * kPage));
  // Page 1: in the writeback file at slot 17, 900 compressed bytes.
  Entry(1).payload = 17;
  PageTable::Publish(Entry(1), PageState::kWrittenBack, 900);
  // Page 2: purged before while written back.
  Entry(2).payload = 18;
  PageTable::Publish(Entry(2), PageState::kDiscardedSlot);
  stats_.file_pages = 5;
  stats_.stored_pages = 3;

  EXPECT_FALSE(PurgeForced(extent, 4 * kPage, 0, 4 * kPage));
  EXPECT_EQ(StateOf(1), PageState::kDiscardedSlot);
  EXPECT_EQ(Entry(1).payload, 17u) << "the slot is kept to be given back";
  EXPECT_EQ(StateOf(2), PageState::kDiscardedSlot);
  EXPECT_EQ(Entry(2).payload, 18u);
  EXPECT_EQ(stats_.file_pages.load(), 4u);
  EXPECT_EQ(stats_.stored_pages.load(), 3u) << "not a pool page";
  EXPECT_EQ(stats_.compressed_bytes.load(), 0u);

  // Purged again: nothing more to discard.
  EXPECT_FALSE(PurgeForced(extent, 4 * kPage, 0, 4 * kPage));
  EXPECT_EQ(StateOf(1), PageState::kDiscardedSlot);
  EXPECT_EQ(stats_.file_pages.load(), 4u);
  EXPECT_EQ(stats_.purged_pages.load(), 8u);
}

TEST_F(ExtentHooksTest, PurgeOfAPurgedRangeChangesNothingButTheCount) {
  char* extent = static_cast<char*>(Alloc(4 * kPage));
  pool::Handle h = MakeCompressed(1, 64, 0x01);
  EXPECT_FALSE(PurgeForced(extent, 4 * kPage, 0, 4 * kPage));
  EXPECT_EQ(stats_.stored_pages.load(), 0u);
  EXPECT_FALSE(PurgeForced(extent, 4 * kPage, 0, 4 * kPage));
  EXPECT_EQ(StateOf(1), PageState::kDiscarded);
  EXPECT_EQ(Entry(1).payload, h);
  EXPECT_EQ(stats_.stored_pages.load(), 0u) << "discarded twice";
  EXPECT_EQ(stats_.compressed_bytes.load(), 0u);
  EXPECT_EQ(stats_.purged_pages.load(), 8u);
  ExpectStoredThenFree(h, 64, 0x01);
}

TEST_F(ExtentHooksTest, DecommitDropsPagesLikeAPurge) {
  char* extent = static_cast<char*>(Alloc(4 * kPage));
  MakeResident(0, 0xa0);
  pool::Handle h = MakeCompressed(1, 300, 0xa1);
  MakeSameFilled(2, 7);
  MakeResident(3, 0xa3);
  EXPECT_FALSE(Decommit(extent, 4 * kPage, 0, 3 * kPage));
  EXPECT_EQ(StateOf(0), PageState::kUntouched);
  EXPECT_EQ(StateOf(1), PageState::kDiscarded);
  EXPECT_EQ(Entry(1).payload, h);
  EXPECT_EQ(StateOf(2), PageState::kUntouched);
  EXPECT_EQ(StateOf(3), PageState::kResident);
  EXPECT_TRUE(PageIs(Page(0), 0));
  EXPECT_TRUE(PageIs(Page(3), 0xa3));
  EXPECT_EQ(stats_.stored_pages.load(), 0u);
  EXPECT_EQ(stats_.compressed_bytes.load(), 0u);
  EXPECT_EQ(stats_.same_filled_pages.load(), 0u);
  EXPECT_EQ(stats_.purged_pages.load(), 3u);
  // Committing again (a no-op) leaves zeros to write on.
  EXPECT_FALSE(hooks_->commit(hooks_, extent, 4 * kPage, 0, 3 * kPage, 0));
  memset(Page(0), 0xb0, kPage);
  EXPECT_TRUE(PageIs(Page(0), 0xb0));
  ExpectStoredThenFree(h, 300, 0xa1);
}

TEST_F(ExtentHooksTest, PurgeOutsideTheRegionIsAPlainMadvise) {
  char* p = static_cast<char*>(mmap(nullptr, 4 * kPage, PROT_READ | PROT_WRITE,
                                    MAP_PRIVATE | MAP_ANONYMOUS, -1, 0));
  ASSERT_NE(p, MAP_FAILED);
  memset(p, 0x5a, 4 * kPage);
  EXPECT_FALSE(PurgeForced(p, 4 * kPage, kPage, 2 * kPage));
  EXPECT_TRUE(PageIs(p, 0x5a));
  EXPECT_TRUE(PageIs(p + kPage, 0));
  EXPECT_TRUE(PageIs(p + 2 * kPage, 0));
  EXPECT_TRUE(PageIs(p + 3 * kPage, 0x5a));
  memset(p, 0x5b, 4 * kPage);
  EXPECT_FALSE(Decommit(p, 4 * kPage, 0, 4 * kPage));
  EXPECT_TRUE(PageIs(p + 3 * kPage, 0));
  EXPECT_EQ(stats_.purged_pages.load(), 0u) << "not region pages";
  for (size_t i = 0; i < 8; ++i) {
    EXPECT_EQ(PageTable::LoadWord(Entry(i)), 0u);
  }
  munmap(p, 4 * kPage);
}

TEST_F(ExtentHooksTest, PurgeOfFallbackMemoryWorks) {
  ASSERT_EQ(Alloc(kRegionBytes), base());
  char* p = static_cast<char*>(Alloc(8 * kPage));
  ASSERT_NE(p, nullptr);
  ASSERT_FALSE(region_->Contains(p));
  memset(p, 0x77, 8 * kPage);
  EXPECT_FALSE(PurgeForced(p, 8 * kPage, 0, 8 * kPage));
  EXPECT_TRUE(PageIs(p + 7 * kPage, 0));
  munmap(p, 8 * kPage);
}

// --- destroy ---------------------------------------------------------------

TEST_F(ExtentHooksTest, DestroyDropsRegionPagesAndUnmapsOthers) {
  char* extent = static_cast<char*>(Alloc(4 * kPage));
  MakeResident(0, 0xd0);
  pool::Handle h = MakeCompressed(2, 50, 0xd2);
  hooks_->destroy(hooks_, extent, 4 * kPage, true, 0);
  EXPECT_TRUE(Mapped(extent, 4 * kPage)) << "region memory stays reserved";
  EXPECT_EQ(StateOf(0), PageState::kUntouched);
  EXPECT_EQ(StateOf(2), PageState::kDiscarded);
  EXPECT_TRUE(PageIs(Page(0), 0));
  EXPECT_EQ(stats_.purged_pages.load(), 4u);
  ExpectStoredThenFree(h, 50, 0xd2);

  void* outside = mmap(nullptr, 4 * kPage, PROT_READ | PROT_WRITE,
                       MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  ASSERT_NE(outside, MAP_FAILED);
  ASSERT_TRUE(Mapped(outside, 4 * kPage));
  hooks_->destroy(hooks_, outside, 4 * kPage, true, 0);
  EXPECT_FALSE(Mapped(outside, 4 * kPage));
}

// --- waiting out pages in transit ------------------------------------------

// A shim thread owns page 2 (kClaimed or kRestoring) when jemalloc purges
// pages 0..3; after ~50 ms it publishes `to`. DropPages must wait for that.
struct InTransit {
  PageState owned;
  PageState published;  // what the owner leaves
  PageState after_purge;
};

class ExtentHooksWaitTest : public ExtentHooksTest,
                            public ::testing::WithParamInterface<InTransit> {};

TEST_P(ExtentHooksWaitTest, PurgeWaitsForTheOwnerToPublish) {
  const InTransit c = GetParam();
  char* extent = static_cast<char*>(Alloc(4 * kPage));
  MakeResident(0, 0xe0);
  MakeResident(3, 0xe3);
  PageTable::Publish(Entry(2), c.owned);

  pool::Handle handle = pool::kNoHandle;
  if (c.published == PageState::kCompressed) {
    absl::StatusOr<pool::Handle> h = pool_->Malloc(123);
    ASSERT_TRUE(h.ok());
    handle = *h;
  }
  std::atomic<bool> published{false};
  const auto start = std::chrono::steady_clock::now();
  std::thread owner([&] {
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
    if (c.published == PageState::kResident) {
      // A fault handler putting the bytes back (or the evictor giving up).
      memset(Page(2), 0xe2, kPage);
    } else {
      // The evictor finishing: the page is in the pool and gone from here.
      madvise(Page(2), kPage, MADV_DONTNEED);
      Entry(2).payload = handle;
      stats_.stored_pages.fetch_add(1);
      stats_.compressed_bytes.fetch_add(123);
    }
    published.store(true, std::memory_order_relaxed);
    PageTable::Publish(Entry(2), c.published,
                       c.published == PageState::kCompressed ? 123 : 0);
  });

  EXPECT_FALSE(PurgeForced(extent, 4 * kPage, 0, 4 * kPage));
  const auto waited = std::chrono::steady_clock::now() - start;
  EXPECT_TRUE(published.load(std::memory_order_relaxed))
      << "the purge returned before the owner published";
  EXPECT_GE(waited, std::chrono::milliseconds(45));
  owner.join();

  EXPECT_EQ(StateOf(2), c.after_purge);
  for (size_t i = 0; i < 4; ++i) {
    EXPECT_TRUE(PageIs(Page(i), 0)) << "page " << i;
    if (i != 2) {
      EXPECT_EQ(StateOf(i), PageState::kUntouched) << "page " << i;
    }
  }
  EXPECT_EQ(stats_.purged_pages.load(), 4u);
  EXPECT_EQ(stats_.stored_pages.load(), 0u);
  EXPECT_EQ(stats_.compressed_bytes.load(), 0u);
  if (handle != pool::kNoHandle) {
    EXPECT_EQ(Entry(2).payload, handle);
    pool_->Free(handle);
  }
}

INSTANTIATE_TEST_SUITE_P(
    Owners, ExtentHooksWaitTest,
    ::testing::Values(
        // A fault handler restores the page.
        InTransit{PageState::kRestoring, PageState::kResident,
                  PageState::kUntouched},
        // The evictor gives up on the page (it compressed poorly).
        InTransit{PageState::kClaimed, PageState::kResident,
                  PageState::kUntouched},
        // The evictor stores the page.
        InTransit{PageState::kClaimed, PageState::kCompressed,
                  PageState::kDiscarded}),
    [](const ::testing::TestParamInfo<InTransit>& info) {
      switch (info.index) {
        case 0: return std::string("RestoringToResident");
        case 1: return std::string("ClaimedToResident");
        default: return std::string("ClaimedToCompressed");
      }
    });

// Purges racing a thread that keeps claiming and publishing pages of the
// range, as the evictor and fault handlers do: every purge ends with each
// page in a state a purge may leave, and the gauges balance.
TEST_F(ExtentHooksTest, PurgesRacingOwnersLeaveOnlyPurgedStates) {
  constexpr size_t kPages = 32;
  char* extent = static_cast<char*>(Alloc(kPages * kPage));
  std::atomic<bool> stop{false};
  std::thread owner([&] {
    unsigned i = 0;
    while (!stop.load(std::memory_order_relaxed)) {
      PageEntry& e = Entry(i++ % kPages);
      // Restore whatever was purged, as a fault handler would on a touch.
      if (PageTable::Transition(e, PageState::kUntouched,
                                PageState::kRestoring)) {
        PageTable::Publish(e, PageState::kResident);
      }
      // Evict to a same-filled page, the gauge bumped before publishing.
      if (PageTable::Transition(e, PageState::kResident, PageState::kClaimed)) {
        stats_.same_filled_pages.fetch_add(1);
        PageTable::Publish(e, PageState::kSameFilled);
      }
    }
  });
  for (int round = 0; round < 2000; ++round) {
    EXPECT_FALSE(PurgeForced(extent, kPages * kPage, 0, kPages * kPage));
  }
  stop.store(true);
  owner.join();
  EXPECT_FALSE(PurgeForced(extent, kPages * kPage, 0, kPages * kPage));
  for (size_t i = 0; i < kPages; ++i) {
    EXPECT_EQ(StateOf(i), PageState::kUntouched) << "page " << i;
  }
  EXPECT_EQ(stats_.same_filled_pages.load(), 0u);
  EXPECT_EQ(stats_.purged_pages.load(), 2001 * kPages);
}

}  // namespace
}  // namespace coldheap::shim
