// Tests for shim/region.h: the bump allocator that carves jemalloc's extents
// out of the managed region, and the address arithmetic the page table uses.
// Region never touches its memory, so these reserve address space only.
#include "shim/region.h"

#include <sys/mman.h>

#include <algorithm>
#include <atomic>
#include <cstdint>
#include <limits>
#include <thread>
#include <utility>
#include <vector>

#include "gtest/gtest.h"

namespace coldheap::shim {
namespace {

constexpr size_t kPage = kPageSize;
constexpr size_t kHugePage = size_t{2} << 20;

uintptr_t U(const void* p) { return reinterpret_cast<uintptr_t>(p); }

// Inaccessible address space starting on a 2 MiB boundary (as os::Reserve
// gives the shim its region), plus `offset` bytes.
class Reservation {
 public:
  explicit Reservation(size_t bytes, size_t offset = 0)
      : span_(bytes + offset + kHugePage) {
    raw_ = mmap(nullptr, span_, PROT_NONE,
                MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    EXPECT_NE(raw_, MAP_FAILED);
    uintptr_t aligned = (U(raw_) + kHugePage - 1) & ~(kHugePage - 1);
    base_ = reinterpret_cast<char*>(aligned + offset);
  }
  ~Reservation() { munmap(raw_, span_); }
  char* base() const { return base_; }

 private:
  size_t span_;
  void* raw_;
  char* base_;
};

TEST(RegionTest, AllocateBumpsContiguouslyFromTheBase) {
  Reservation mem(64 * kPage);
  Region region(mem.base(), 64 * kPage);
  EXPECT_EQ(region.used_pages(), 0u);
  char* a = static_cast<char*>(region.Allocate(kPage, kPage));
  char* b = static_cast<char*>(region.Allocate(3 * kPage, kPage));
  char* c = static_cast<char*>(region.Allocate(kPage, kPage));
  EXPECT_EQ(a, mem.base());
  EXPECT_EQ(b, a + kPage);
  EXPECT_EQ(c, b + 3 * kPage);
  EXPECT_EQ(region.used_pages(), 5u);
}

TEST(RegionTest, AllocateAlignsEachRangeToItsAlignment) {
  Reservation mem(8 * kHugePage);
  Region region(mem.base(), 8 * kHugePage);
  for (size_t alignment : {kPage, 2 * kPage, 16 * kPage, size_t{64} << 10,
                           size_t{1} << 20, kHugePage}) {
    // A page first, so the bump pointer is never already aligned.
    ASSERT_NE(region.Allocate(kPage, kPage), nullptr);
    size_t before = region.used_pages() * kPage;
    void* p = region.Allocate(kPage, alignment);
    ASSERT_NE(p, nullptr) << "alignment " << alignment;
    EXPECT_EQ(U(p) % alignment, 0u) << "alignment " << alignment;
    EXPECT_TRUE(region.ContainsRange(p, kPage));
    // The gap skipped is the least that aligns it.
    size_t start = static_cast<size_t>(static_cast<char*>(p) - mem.base());
    EXPECT_EQ(start, (before + alignment - 1) & ~(alignment - 1));
    EXPECT_EQ(region.used_pages() * kPage, start + kPage);
  }
}

// Fails: Allocate aligns the offset from the base, not the address, so it
// honours only alignments the base itself has (the shim's base is 2 MiB
// aligned). See the report: region.cc, Region::Allocate.
TEST(RegionTest, AllocateAlignsTheAddressWhateverTheBase) {
  Reservation mem(4 * kHugePage, /*offset=*/kPage);
  Region region(mem.base(), 4 * kHugePage);
  void* p = region.Allocate(kPage, size_t{64} << 10);
  ASSERT_NE(p, nullptr);
  EXPECT_EQ(U(p) % (size_t{64} << 10), 0u) << "base " << U(mem.base());
}

TEST(RegionTest, AllocateReturnsNullWhenFullAndKeepsWhatIsLeft) {
  Reservation mem(16 * kPage);
  Region region(mem.base(), 16 * kPage);
  EXPECT_NE(region.Allocate(10 * kPage, kPage), nullptr);
  EXPECT_EQ(region.Allocate(7 * kPage, kPage), nullptr);
  EXPECT_EQ(region.used_pages(), 10u) << "a failed Allocate moved the bump";
  // Aligning past the end fails too, though the size alone would fit.
  EXPECT_EQ(region.Allocate(kPage, 16 * kPage), nullptr);
  EXPECT_EQ(region.used_pages(), 10u);
  // What is left is still there, to the last byte.
  EXPECT_EQ(region.Allocate(6 * kPage, kPage), mem.base() + 10 * kPage);
  EXPECT_EQ(region.used_pages(), 16u);
  EXPECT_EQ(region.Allocate(kPage, kPage), nullptr);
}

TEST(RegionTest, AllocateNeverWrapsAroundOnHugeSizesOrAlignments) {
  Reservation mem(16 * kPage);
  Region region(mem.base(), 16 * kPage);
  constexpr size_t kMax = std::numeric_limits<size_t>::max();
  EXPECT_EQ(region.Allocate(kMax, kPage), nullptr);
  EXPECT_EQ(region.Allocate(kMax - kPage + 1, kPage), nullptr);
  EXPECT_EQ(region.Allocate(16 * kPage + 1, kPage), nullptr);
  ASSERT_NE(region.Allocate(kPage, kPage), nullptr);
  EXPECT_EQ(region.Allocate(kPage, size_t{1} << 63), nullptr);
  EXPECT_EQ(region.Allocate(kMax - 2 * kPage, kPage), nullptr);
  EXPECT_EQ(region.used_pages(), 1u);
  EXPECT_EQ(region.Allocate(15 * kPage, kPage), mem.base() + kPage);
}

TEST(RegionTest, ConcurrentAllocationsNeverOverlap) {
  constexpr int kThreads = 8;
  constexpr size_t kPages = 8192;  // 32 MiB of address space
  Reservation mem(kPages * kPage);
  Region region(mem.base(), kPages * kPage);

  std::atomic<bool> go{false};
  std::vector<std::vector<std::pair<uintptr_t, size_t>>> got(kThreads);
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      while (!go.load(std::memory_order_acquire)) std::this_thread::yield();
      for (unsigned i = 0;; ++i) {
        size_t size = (1 + (i * 7 + t) % 5) * kPage;
        size_t alignment = kPage << ((i + t) % 4);
        void* p = region.Allocate(size, alignment);
        if (p == nullptr) {
          // Full for this request; a one-page one may still fit elsewhere
          // in time, but the region only grows: stop at the first no.
          break;
        }
        EXPECT_EQ(U(p) % alignment, 0u);
        got[t].emplace_back(U(p), size);
      }
    });
  }
  go.store(true, std::memory_order_release);
  for (std::thread& t : threads) t.join();

  std::vector<std::pair<uintptr_t, size_t>> all;
  for (auto& v : got) all.insert(all.end(), v.begin(), v.end());
  ASSERT_GT(all.size(), static_cast<size_t>(kThreads));
  std::sort(all.begin(), all.end());
  for (size_t i = 0; i < all.size(); ++i) {
    EXPECT_TRUE(region.ContainsRange(reinterpret_cast<void*>(all[i].first),
                                     all[i].second));
    if (i > 0) {
      ASSERT_LE(all[i - 1].first + all[i - 1].second, all[i].first)
          << "ranges " << i - 1 << " and " << i << " overlap";
    }
  }
  // The bump pointer stands at the end of the last range handed out.
  EXPECT_EQ(region.used_pages() * kPage,
            all.back().first + all.back().second - U(mem.base()));
}

TEST(RegionTest, AllocateAtSucceedsOnlyAtTheBumpEnd) {
  Reservation mem(16 * kPage);
  Region region(mem.base(), 16 * kPage);
  char* base = mem.base();
  ASSERT_EQ(region.Allocate(2 * kPage, kPage), base);

  EXPECT_EQ(region.AllocateAt(base, kPage), nullptr) << "handed out already";
  EXPECT_EQ(region.AllocateAt(base + kPage, kPage), nullptr);
  EXPECT_EQ(region.AllocateAt(base + 3 * kPage, kPage), nullptr)
      << "past the bump end";
  EXPECT_EQ(region.used_pages(), 2u);

  EXPECT_EQ(region.AllocateAt(base + 2 * kPage, 3 * kPage), base + 2 * kPage);
  EXPECT_EQ(region.used_pages(), 5u);
  // Growing again in place, from the new end.
  EXPECT_EQ(region.AllocateAt(base + 5 * kPage, kPage), base + 5 * kPage);
  EXPECT_EQ(region.used_pages(), 6u);
  // A plain Allocate continues after it.
  EXPECT_EQ(region.Allocate(kPage, kPage), base + 6 * kPage);
}

TEST(RegionTest, AllocateAtRefusesWhatDoesNotFitOrLiesOutside) {
  Reservation mem(16 * kPage);
  Region region(mem.base(), 16 * kPage);
  char* base = mem.base();
  ASSERT_EQ(region.Allocate(10 * kPage, kPage), base);
  EXPECT_EQ(region.AllocateAt(base + 10 * kPage, 7 * kPage), nullptr);
  EXPECT_EQ(
      region.AllocateAt(base + 10 * kPage, std::numeric_limits<size_t>::max()),
      nullptr);
  EXPECT_EQ(region.AllocateAt(base - kPage, kPage), nullptr);
  EXPECT_EQ(region.AllocateAt(base + 16 * kPage, kPage), nullptr);
  EXPECT_EQ(region.used_pages(), 10u);
  // Exactly what is left fits.
  EXPECT_EQ(region.AllocateAt(base + 10 * kPage, 6 * kPage),
            base + 10 * kPage);
  EXPECT_EQ(region.used_pages(), 16u);
}

TEST(RegionTest, ConcurrentAllocateAtOfOneAddressHasOneWinner) {
  constexpr int kThreads = 8;
  Reservation mem(64 * kPage);
  Region region(mem.base(), 64 * kPage);
  std::atomic<bool> go{false};
  std::atomic<int> wins{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&] {
      while (!go.load(std::memory_order_acquire)) std::this_thread::yield();
      if (region.AllocateAt(mem.base(), 4 * kPage) != nullptr) ++wins;
    });
  }
  go.store(true, std::memory_order_release);
  for (std::thread& t : threads) t.join();
  EXPECT_EQ(wins.load(), 1);
  EXPECT_EQ(region.used_pages(), 4u);
}

TEST(RegionTest, ContainsCoversExactlyTheReservedBytes) {
  Reservation mem(16 * kPage);
  Region region(mem.base(), 16 * kPage);
  char* base = mem.base();
  EXPECT_TRUE(region.Contains(base));
  EXPECT_TRUE(region.Contains(base + 16 * kPage - 1));
  EXPECT_FALSE(region.Contains(base + 16 * kPage));
  EXPECT_FALSE(region.Contains(base - 1));
  EXPECT_FALSE(region.Contains(nullptr));
}

TEST(RegionTest, ContainsRangeNeedsTheWholeRangeInside) {
  Reservation mem(16 * kPage);
  Region region(mem.base(), 16 * kPage);
  char* base = mem.base();
  const size_t bytes = 16 * kPage;
  EXPECT_TRUE(region.ContainsRange(base, bytes));
  EXPECT_FALSE(region.ContainsRange(base, bytes + 1));
  EXPECT_TRUE(region.ContainsRange(base + bytes - kPage, kPage));
  EXPECT_FALSE(region.ContainsRange(base + bytes - kPage, kPage + 1));
  EXPECT_FALSE(region.ContainsRange(base - kPage, 2 * kPage))
      << "starts before the region";
  EXPECT_FALSE(region.ContainsRange(base + bytes, kPage)) << "starts at end";
  EXPECT_FALSE(
      region.ContainsRange(base + kPage, std::numeric_limits<size_t>::max()))
      << "a size that would wrap";
  EXPECT_TRUE(region.ContainsRange(base + 3 * kPage, 0));
}

TEST(RegionTest, PageIndexAndPageAddressAreInverse) {
  Reservation mem(16 * kPage);
  Region region(mem.base(), 16 * kPage);
  char* base = mem.base();
  EXPECT_EQ(region.pages(), 16u);
  EXPECT_EQ(region.bytes(), 16 * kPage);
  EXPECT_EQ(region.base(), base);
  EXPECT_EQ(region.PageIndex(base), 0u);
  EXPECT_EQ(region.PageIndex(base + kPage - 1), 0u);
  EXPECT_EQ(region.PageIndex(base + kPage), 1u);
  EXPECT_EQ(region.PageIndex(base + 16 * kPage - 1), 15u);
  for (size_t i = 0; i < region.pages(); ++i) {
    EXPECT_EQ(region.PageAddress(i), base + i * kPage);
    EXPECT_EQ(region.PageIndex(region.PageAddress(i)), i);
    EXPECT_EQ(region.PageIndex(region.PageAddress(i) + kPage / 2), i);
  }
}

TEST(RegionTest, DefaultRegionContainsNothingAndAllocatesNothing) {
  Region region;
  EXPECT_EQ(region.pages(), 0u);
  EXPECT_FALSE(region.Contains(nullptr));
  EXPECT_EQ(region.Allocate(kPage, kPage), nullptr);
}

}  // namespace
}  // namespace coldheap::shim
