// Tests for shim/page_table.h: the state word's packing and the three ways
// an entry changes hands (Claim, Transition, Publish), including the race
// the whole design leans on: of threads claiming one entry, exactly one wins.
#include "shim/page_table.h"

#include <sys/mman.h>

#include <atomic>
#include <cstdint>
#include <thread>
#include <vector>

#include "gtest/gtest.h"

namespace coldheap::shim {
namespace {

constexpr PageState kAllStates[] = {
    PageState::kUntouched,  PageState::kResident,   PageState::kClaimed,
    PageState::kStaged,     PageState::kRestoring,  PageState::kCompressed,
    PageState::kSameFilled, PageState::kDiscarded,  PageState::kWrittenBack,
    PageState::kDiscardedSlot,
};

// A table over zero-filled memory mapped here, as the shim maps its own.
class MappedTable {
 public:
  explicit MappedTable(size_t pages) : bytes_(pages * sizeof(PageEntry)) {
    void* p = mmap(nullptr, bytes_, PROT_READ | PROT_WRITE,
                   MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    EXPECT_NE(p, MAP_FAILED);
    entries_ = static_cast<PageEntry*>(p);
    table_ = PageTable(entries_, pages);
  }
  ~MappedTable() { munmap(entries_, bytes_); }
  PageTable& table() { return table_; }

 private:
  size_t bytes_;
  PageEntry* entries_;
  PageTable table_;
};

TEST(PageWordTest, PackUnpackRoundTripsEveryStateAndSize) {
  for (PageState s : kAllStates) {
    for (uint16_t size : {0, 1, 255, 256, 2868, 4095, 4096, 0xffff}) {
      PageWord w = PageWord::Unpack(PageWord::Pack(s, size));
      EXPECT_EQ(w.state, s);
      EXPECT_EQ(w.size, size);
    }
  }
}

// The codec says how a page's bytes are read back; a word that lost it
// would hand a dense page to LZ4.
TEST(PageWordTest, CodecAndDenseMarkRoundTripBesideEveryStateAndSize) {
  for (PageState s : kAllStates) {
    for (uint16_t size : {0, 1, 2868, 4096, 0xffff}) {
      for (uint8_t codec : {0, 1, 2, 7, 127}) {
        uint32_t word = PageWord::Pack(s, size, codec);
        for (uint32_t marked : {word, word | PageWord::kDenseTried}) {
          PageWord w = PageWord::Unpack(marked);
          EXPECT_EQ(w.state, s);
          EXPECT_EQ(w.size, size);
          EXPECT_EQ(w.codec, codec);
          EXPECT_EQ(w.dense_tried, marked != word);
        }
      }
    }
  }
  EXPECT_NE(PageWord::Pack(PageState::kCompressed, 100, 0),
            PageWord::Pack(PageState::kCompressed, 100, 2));
}

TEST(PageWordTest, ZeroWordIsUntouchedWithoutSize) {
  PageWord w = PageWord::Unpack(0);
  EXPECT_EQ(w.state, PageState::kUntouched);
  EXPECT_EQ(w.size, 0);
  EXPECT_EQ(PageWord::Pack(PageState::kUntouched), 0u);
}

TEST(PageWordTest, SizeDistinguishesWordsOfOneState) {
  EXPECT_NE(PageWord::Pack(PageState::kCompressed, 100),
            PageWord::Pack(PageState::kCompressed, 101));
  EXPECT_NE(PageWord::Pack(PageState::kCompressed, 0),
            PageWord::Pack(PageState::kResident, 0));
}

TEST(PageTableTest, ZeroedMemoryIsAllUntouched) {
  MappedTable mapped(1024);
  PageTable& table = mapped.table();
  EXPECT_EQ(table.pages(), 1024u);
  for (size_t i = 0; i < table.pages(); ++i) {
    EXPECT_EQ(PageTable::Load(table.at(i)).state, PageState::kUntouched);
    EXPECT_EQ(table.at(i).payload, 0u);
  }
}

TEST(PageTableTest, ClaimSucceedsOnlyFromTheExactWord) {
  MappedTable mapped(1);
  PageEntry& e = mapped.table().at(0);
  PageTable::Publish(e, PageState::kCompressed, 1234);
  const uint32_t word = PageTable::LoadWord(e);

  // Same state, other size: not the word loaded, so no claim.
  EXPECT_FALSE(PageTable::Claim(
      e, PageWord::Pack(PageState::kCompressed, 1233), PageState::kRestoring));
  // Other state, no size.
  EXPECT_FALSE(
      PageTable::Claim(e, PageWord::Pack(PageState::kCompressed),
                       PageState::kRestoring));
  EXPECT_FALSE(PageTable::Claim(e, PageWord::Pack(PageState::kResident),
                                PageState::kRestoring));
  EXPECT_EQ(PageTable::LoadWord(e), word) << "a failed claim changed the word";

  EXPECT_TRUE(PageTable::Claim(e, word, PageState::kRestoring));
  PageWord now = PageTable::Load(e);
  EXPECT_EQ(now.state, PageState::kRestoring);
  EXPECT_EQ(now.size, 0) << "a claim clears the size";

  // The old word is stale now: a second claim from it fails.
  EXPECT_FALSE(PageTable::Claim(e, word, PageState::kRestoring));
}

TEST(PageTableTest, TransitionMovesOnlyFromTheNamedState) {
  MappedTable mapped(1);
  PageEntry& e = mapped.table().at(0);

  EXPECT_FALSE(
      PageTable::Transition(e, PageState::kResident, PageState::kClaimed));
  EXPECT_EQ(PageTable::Load(e).state, PageState::kUntouched);

  EXPECT_TRUE(
      PageTable::Transition(e, PageState::kUntouched, PageState::kRestoring));
  EXPECT_TRUE(
      PageTable::Transition(e, PageState::kRestoring, PageState::kResident));
  EXPECT_TRUE(
      PageTable::Transition(e, PageState::kResident, PageState::kClaimed));
  EXPECT_TRUE(PageTable::Transition(e, PageState::kClaimed,
                                    PageState::kCompressed, 2868));
  PageWord w = PageTable::Load(e);
  EXPECT_EQ(w.state, PageState::kCompressed);
  EXPECT_EQ(w.size, 2868);

  // Transition names a state without a size: a sized word never matches.
  EXPECT_FALSE(
      PageTable::Transition(e, PageState::kCompressed, PageState::kRestoring));
  EXPECT_EQ(PageTable::Load(e).size, 2868);
}

TEST(PageTableTest, PublishStoresStateAndSizeUnconditionally) {
  MappedTable mapped(2);
  PageEntry& e = mapped.table().at(1);
  PageTable::Publish(e, PageState::kCompressed, 77);
  EXPECT_EQ(PageTable::LoadWord(e), PageWord::Pack(PageState::kCompressed, 77));
  PageTable::Publish(e, PageState::kSameFilled);
  PageWord w = PageTable::Load(e);
  EXPECT_EQ(w.state, PageState::kSameFilled);
  EXPECT_EQ(w.size, 0);
  // Its neighbour is untouched.
  EXPECT_EQ(PageTable::LoadWord(mapped.table().at(0)), 0u);
}

TEST(PageTableTest, PayloadPublishedBeforeTheWordIsSeenWithIt) {
  MappedTable mapped(1);
  PageEntry& e = mapped.table().at(0);
  constexpr int kRounds = 2000;
  std::thread reader([&] {
    for (int round = 1; round <= kRounds; ++round) {
      uint32_t want = PageWord::Pack(PageState::kCompressed,
                                     static_cast<uint16_t>(round));
      while (PageTable::LoadWord(e) != want) std::this_thread::yield();
      EXPECT_EQ(e.payload, static_cast<uint64_t>(round) * 1000003);
      PageTable::Publish(e, PageState::kResident);
    }
  });
  for (int round = 1; round <= kRounds; ++round) {
    while (PageTable::Load(e).state == PageState::kCompressed) {
      std::this_thread::yield();
    }
    e.payload = static_cast<uint64_t>(round) * 1000003;
    PageTable::Publish(e, PageState::kCompressed,
                       static_cast<uint16_t>(round));
  }
  reader.join();
}

TEST(PageTableTest, ConcurrentClaimsOfOneEntryHaveExactlyOneWinner) {
  constexpr int kThreads = 8;
  constexpr int kRounds = 500;
  MappedTable mapped(1);
  PageEntry& e = mapped.table().at(0);

  std::atomic<int> round{-1};
  std::atomic<int> arrived{0};
  std::atomic<int> wins[kRounds] = {};
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&] {
      for (int r = 0; r < kRounds; ++r) {
        while (round.load(std::memory_order_acquire) < r) {
          std::this_thread::yield();
        }
        // All claim from the word as they loaded it: kResident.
        uint32_t word = PageTable::LoadWord(e);
        if (PageWord::Unpack(word).state == PageState::kResident &&
            PageTable::Claim(e, word, PageState::kClaimed)) {
          wins[r].fetch_add(1);
        }
        arrived.fetch_add(1, std::memory_order_acq_rel);
      }
    });
  }
  for (int r = 0; r < kRounds; ++r) {
    PageTable::Publish(e, PageState::kResident);
    round.store(r, std::memory_order_release);
    while (arrived.load(std::memory_order_acquire) < (r + 1) * kThreads) {
      std::this_thread::yield();
    }
    ASSERT_EQ(wins[r].load(), 1) << "round " << r;
    EXPECT_EQ(PageTable::Load(e).state, PageState::kClaimed);
  }
  for (std::thread& t : threads) t.join();
}

TEST(PageTableTest, ConcurrentClaimsFromOneStaleWordHaveExactlyOneWinner) {
  // Every thread holds the same word, loaded before any of them ran (as a
  // fault handler and jemalloc's purge both holding kCompressed would).
  constexpr int kThreads = 8;
  constexpr int kRounds = 500;
  MappedTable mapped(1);
  PageEntry& e = mapped.table().at(0);
  for (int r = 0; r < kRounds; ++r) {
    PageTable::Publish(e, PageState::kCompressed, 1000);
    const uint32_t word = PageTable::LoadWord(e);
    std::atomic<bool> go{false};
    std::atomic<int> wins{0};
    std::vector<std::thread> threads;
    for (int t = 0; t < kThreads; ++t) {
      threads.emplace_back([&, t] {
        while (!go.load(std::memory_order_acquire)) std::this_thread::yield();
        PageState to =
            t % 2 == 0 ? PageState::kRestoring : PageState::kDiscarded;
        if (PageTable::Claim(e, word, to)) wins.fetch_add(1);
      });
    }
    go.store(true, std::memory_order_release);
    for (std::thread& t : threads) t.join();
    ASSERT_EQ(wins.load(), 1) << "round " << r;
    EXPECT_NE(PageTable::Load(e).state, PageState::kCompressed);
  }
}

}  // namespace
}  // namespace coldheap::shim
