// The dense tier on a heap of its own: a page table, a zsmalloc pool and
// pages stored as the evictor stores them (LZ4 objects), without a region
// of real memory (the recompressor never touches the pages themselves).
#include "shim/recompressor.h"

#include <zdict.h>

#include <atomic>
#include <cstring>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "gtest/gtest.h"
#include "pool/default_registry.h"
#include "shim/dense_tier.h"
#include "shim/evicted_copy.h"
#include "shim/os.h"

namespace coldheap::shim {

// Steps of Recompressor::Recompress, for a fault to land between them.
class RecompressorPeer {
 public:
  static bool ReadObject(Recompressor& r, size_t index, uint32_t word,
                         pool::Handle* handle) {
    return r.ReadObject(index, word, handle);
  }
  static bool SwapIn(Recompressor& r, size_t index, uint32_t word,
                     pool::Handle old, size_t old_size, pool::Handle fresh,
                     size_t size) {
    return r.SwapIn(index, word, old, old_size, fresh, size);
  }
};

namespace {

using Page = std::vector<char>;

// JSON-like records: what a cache's cold pages hold.
Page RecordPage(uint64_t seed) {
  std::mt19937_64 rng(seed);
  static const char* kNames[] = {"alice", "bob", "carol", "dave", "erin", "frank"};
  static const char* kCities[] = {"Lisbon", "Osaka", "Lagos", "Quito", "Perth"};
  std::string text;
  while (text.size() < kPageSize) {
    text += "{\"id\":" + std::to_string(rng() % 1000000) + ",\"name\":\"" +
            kNames[rng() % 6] + "\",\"city\":\"" + kCities[rng() % 5] +
            "\",\"score\":" + std::to_string(rng() % 1000) + ".5,\"active\":" +
            (rng() % 2 ? "true" : "false") + "}\n";
  }
  return Page(text.begin(), text.begin() + kPageSize);
}

// Half random bytes, half zeros: no codec does better than storing the
// random half, so the dense copy cannot land in a smaller class.
Page RandomHalfPage(uint64_t seed) {
  std::mt19937_64 rng(seed);
  Page page(kPageSize, 0);
  for (size_t i = 0; i < kPageSize / 2; ++i) page[i] = static_cast<char>(rng());
  return page;
}

class RecompressorTest : public ::testing::Test {
 protected:
  static constexpr size_t kPages = 1024;

  void SetUp() override {
    os::OsResult<void*> space = os::Reserve(kPages * kPageSize);
    ASSERT_TRUE(space.ok());
    space_ = space.value;
    new (&region_) Region(static_cast<char*>(space_), kPages * kPageSize);
    ASSERT_NE(region_.Allocate(kPages * kPageSize, kPageSize), nullptr);
    entries_ = std::vector<PageEntry>(kPages);
    table_ = PageTable(entries_.data(), kPages);
    absl::StatusOr<pool::ZpoolPtr> pool =
        pool::DefaultZpoolRegistry().CreatePool("zsmalloc", "test", {});
    ASSERT_TRUE(pool.ok());
    pool_ = std::move(*pool);
    config_.dense = DenseKind::kZstd;
    ASSERT_TRUE(dense_.Init(3));
    heap_.config = &config_;
    heap_.region = &region_;
    heap_.table = &table_;
    heap_.pool = pool_.get();
    heap_.stats = &stats_;
    heap_.dense = &dense_;
    ASSERT_TRUE(lz4_.Init(CompressorKind::kLz4, /*dense=*/true));
    ASSERT_TRUE(recompressor_.Init(heap_, &batch_mu_));
  }

  void TearDown() override { (void)os::Release(space_, kPages * kPageSize); }

  // Stores `page` as page `index`, as the evictor does.
  void Store(size_t index, const Page& page) {
    char out[kPageSize];
    size_t size = lz4_.Compress(page.data(), out, kPageSize * 3 / 4);
    ASSERT_GT(size, 0u);
    absl::StatusOr<pool::Handle> handle = pool_->Malloc(sizeof(ObjectHeader) + size);
    ASSERT_TRUE(handle.ok());
    {
      pool::MappedObject object(*pool_, *handle, pool::MapMode::kWriteOnly);
      auto header = static_cast<ObjectHeader>(index);
      memcpy(object.data(), &header, sizeof(header));
      memcpy(static_cast<char*>(object.data()) + sizeof(header), out, size);
    }
    PageEntry& e = table_.at(index);
    e.payload = *handle;
    PageTable::Publish(e, PageState::kCompressed, static_cast<uint16_t>(size));
    stats_.stored_pages.fetch_add(1);
    stats_.compressed_bytes.fetch_add(size);
    pages_[index] = page;
  }

  Page Read(size_t index) {
    Page out(kPageSize), scratch(kPageSize);
    const PageEntry& e = table_.at(index);
    ReadEvictedCopy(heap_, lz4_, e, PageTable::Load(e), out.data(), scratch.data());
    return out;
  }

  void StoreRecords(size_t count) {
    for (size_t i = 0; i < count; ++i) Store(i, RecordPage(i));
  }

  uint64_t SumOfSizes() {
    uint64_t sum = 0;
    for (size_t i = 0; i < kPages; ++i) {
      PageWord w = PageTable::Load(table_.at(i));
      if (w.state == PageState::kCompressed) sum += w.size;
    }
    return sum;
  }

  void* space_ = nullptr;
  Region region_;
  std::vector<PageEntry> entries_;
  PageTable table_;
  pool::ZpoolPtr pool_;
  Config config_;
  Stats stats_;
  DenseTier dense_;
  Heap heap_;
  Compressor lz4_;
  std::mutex batch_mu_;
  Recompressor recompressor_;
  std::map<size_t, Page> pages_;
};

TEST_F(RecompressorTest, TrainsOnItsPagesAndEveryPageReadsBackFromTheDenseTier) {
  StoreRecords(600);
  uint64_t pool_before = pool_->TotalSize();
  recompressor_.Run(/*age_ticks=*/0, /*budget_ns=*/-1);
  EXPECT_EQ(dense_.generation(), 1u);
  EXPECT_GT(stats_.dense_pages.load(), 500u);
  for (const auto& [index, page] : pages_) ASSERT_EQ(Read(index), page) << index;
  EXPECT_EQ(stats_.compressed_bytes.load(), SumOfSizes());
  EXPECT_EQ(stats_.stored_pages.load(), 600u);
  pool_->Compact();
  EXPECT_LT(pool_->TotalSize() * 5, pool_before * 4)  // at least 1.25x denser
      << pool_before << " -> " << pool_->TotalSize();
  EXPECT_EQ(dense_.pages(dense_.codec()), stats_.dense_pages.load());
}

TEST_F(RecompressorTest, OnlyPagesOutLongEnoughAreRecompressed) {
  StoreRecords(600);
  for (size_t i = 0; i < 600; i += 2) table_.at(i).age.store(5);
  recompressor_.Run(/*age_ticks=*/5, /*budget_ns=*/-1);
  for (size_t i = 0; i < 600; ++i) {
    EXPECT_EQ(PageTable::Load(table_.at(i)).codec != 0, i % 2 == 0) << i;
  }
}

TEST_F(RecompressorTest, NoSmallerClassKeepsTheLz4CopyAndIsNotTriedAgain) {
  StoreRecords(600);
  Store(700, RandomHalfPage(1));
  pool::Handle before = table_.at(700).payload;
  recompressor_.Run(0, -1);
  PageWord w = PageTable::Load(table_.at(700));
  EXPECT_EQ(w.codec, 0);
  EXPECT_TRUE(w.dense_tried);
  EXPECT_EQ(table_.at(700).payload, before);
  EXPECT_EQ(stats_.dense_kept_pages.load(), 1u);
  EXPECT_EQ(Read(700), pages_[700]);
  recompressor_.Run(0, -1);
  EXPECT_EQ(stats_.dense_kept_pages.load(), 1u);
}

// A fault takes the page back between the copy and the swap: the swap sees
// the page gone and the dense copy is dropped.
TEST_F(RecompressorTest, PageRefaultedWhileBeingRecompressedIsLeftToTheFault) {
  StoreRecords(2);
  PageEntry& e = table_.at(1);
  uint32_t word = PageTable::LoadWord(e);
  pool::Handle old;
  ASSERT_TRUE(RecompressorPeer::ReadObject(recompressor_, 1, word, &old));
  ASSERT_EQ(PageTable::LoadWord(e), word);  // unclaimed while it works
  // The fault: claims the page, restores it, drops the LZ4 copy.
  ASSERT_TRUE(PageTable::Claim(e, word, PageState::kRestoring));
  DropEvictedCopy(heap_, e, PageWord::Unpack(word), nullptr);
  PageTable::Publish(e, PageState::kResident);
  absl::StatusOr<pool::Handle> fresh = pool_->Malloc(100);
  ASSERT_TRUE(fresh.ok());
  EXPECT_FALSE(RecompressorPeer::SwapIn(recompressor_, 1, word, old,
                                        PageWord::Unpack(word).size, *fresh, 96));
  EXPECT_EQ(PageTable::Load(e).state, PageState::kResident);
  EXPECT_EQ(stats_.dense_pages.load(), 0u);
  pool_->Free(*fresh);
}

// The same fault, then the page is taken out again into the very same
// handle with the same size (the word matches again): only the bytes tell
// the difference, and the old recompression must not land.
TEST_F(RecompressorTest, PageReEvictedIntoTheSameHandleIsNotOverwritten) {
  StoreRecords(2);
  PageEntry& e = table_.at(1);
  uint32_t word = PageTable::LoadWord(e);
  pool::Handle old;
  ASSERT_TRUE(RecompressorPeer::ReadObject(recompressor_, 1, word, &old));
  {  // new contents of the same length in the same object
    pool::MappedObject object(*pool_, old, pool::MapMode::kWriteOnly);
    static_cast<char*>(object.data())[sizeof(ObjectHeader) + 10] ^= 0x5a;
  }
  absl::StatusOr<pool::Handle> fresh = pool_->Malloc(100);
  ASSERT_TRUE(fresh.ok());
  EXPECT_FALSE(RecompressorPeer::SwapIn(recompressor_, 1, word, old,
                                        PageWord::Unpack(word).size, *fresh, 96));
  EXPECT_EQ(PageTable::LoadWord(e), word);
  EXPECT_EQ(e.payload, old);
  pool_->Free(*fresh);
}

std::vector<char> TrainDictionary(uint64_t seed0) {
  std::vector<char> samples;
  std::vector<size_t> sizes;
  for (uint64_t i = 0; i < 400; ++i) {
    Page p = RecordPage(seed0 + i);
    samples.insert(samples.end(), p.begin(), p.end());
    sizes.push_back(kPageSize);
  }
  std::vector<char> dict(32 << 10);
  size_t n = ZDICT_trainFromBuffer(dict.data(), dict.size(), samples.data(),
                                   sizes.data(), static_cast<unsigned>(sizes.size()));
  EXPECT_FALSE(ZDICT_isError(n));
  dict.resize(n);
  return dict;
}

// The old dictionary stays mapped while pages need it, however many newer
// ones come and go, and 8 threads read those pages meanwhile.
TEST(DenseTierTest, DictionaryIsFreedOnlyWhenNoPageNeedsIt) {
  DenseTier tier;
  ASSERT_TRUE(tier.Init(3));
  std::vector<char> dict = TrainDictionary(100000);
  ASSERT_TRUE(tier.Install(dict.data(), dict.size()));
  uint8_t old_codec = tier.codec();
  std::vector<Page> pages;
  std::vector<std::string> packed;
  for (int i = 0; i < 64; ++i) {
    pages.push_back(RecordPage(i));
    char out[kPageSize];
    size_t n = tier.Compress(pages.back().data(), out, kPageSize);
    ASSERT_GT(n, 0u);
    packed.emplace_back(out, n);
    tier.Acquire(old_codec);
  }
  std::atomic<bool> stop{false};
  std::atomic<int> bad{0};
  std::vector<std::thread> readers;
  for (int t = 0; t < 8; ++t) {
    readers.emplace_back([&] {
      Compressor reader;
      if (!reader.Init(CompressorKind::kLz4, true)) return bad.fetch_add(1), void();
      Page out(kPageSize);
      while (!stop.load()) {
        for (size_t i = 0; i < packed.size(); ++i) {
          if (!reader.DecompressDense(tier.DictionaryFor(old_codec), packed[i].data(),
                                      packed[i].size(), out.data()) ||
              out != pages[i]) {
            bad.fetch_add(1);
          }
        }
      }
    });
  }
  for (int round = 0; round < 20; ++round) {  // retrains, old pages alive
    ASSERT_TRUE(tier.Install(dict.data(), dict.size()));
    tier.FreeUnused();
    EXPECT_EQ(tier.dictionaries(), 2);  // the old one and the current one
  }
  stop = true;
  for (auto& r : readers) r.join();
  EXPECT_EQ(bad.load(), 0);
  for (int i = 0; i < 63; ++i) tier.Release(old_codec);
  tier.FreeUnused();
  EXPECT_NE(tier.DictionaryFor(old_codec), nullptr);  // one page left
  tier.Release(old_codec);
  tier.FreeUnused();
  EXPECT_EQ(tier.DictionaryFor(old_codec), nullptr);
  EXPECT_EQ(tier.dictionaries(), 1);
  EXPECT_EQ(tier.generation(), 21u);
}

TEST(DenseTierTest, RetrainWaitsWhileEverySlotIsInUse) {
  DenseTier tier;
  ASSERT_TRUE(tier.Init(3));
  std::vector<char> dict = TrainDictionary(200000);
  for (int k = 0; k < DenseTier::kSlots; ++k) {
    ASSERT_TRUE(tier.Install(dict.data(), dict.size()));
    tier.Acquire(tier.codec());
  }
  uint8_t current = tier.codec();
  EXPECT_FALSE(tier.Install(dict.data(), dict.size()));
  EXPECT_EQ(tier.codec(), current);
  tier.Release(DenseTier::kFirstDictCodec);  // the first slot's last page
  tier.FreeUnused();
  EXPECT_TRUE(tier.Install(dict.data(), dict.size()));
  EXPECT_EQ(tier.codec(), DenseTier::kFirstDictCodec);
}

}  // namespace
}  // namespace coldheap::shim
