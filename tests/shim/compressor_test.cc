// Tests for shim/compressor.h: both codecs round-trip heap-like pages, give
// up (0) on pages that do not fit the evictor's capacity, and refuse input
// that is not what they wrote.
#include "shim/compressor.h"

#include <cstdint>
#include <cstdio>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "gtest/gtest.h"
#include "shim/page_table.h"

namespace coldheap::shim {
namespace {

// What the evictor offers: a compressed page must save at least a quarter.
constexpr size_t kEvictCapacity = 3072;

// A page as a heap holds it: JSON-like records, pointers and small ints.
std::vector<unsigned char> HeapLikePage(uint32_t seed) {
  std::vector<unsigned char> page(kPageSize);
  std::mt19937 rng(seed);
  auto next = [&rng](unsigned bound) {
    return static_cast<unsigned>(rng() % bound);
  };
  static const char* const kNames[] = {"alice", "bob", "carol", "dave",
                                       "eve", "mallory", "trent"};
  size_t at = 0;
  while (at < kPageSize) {
    char record[160];
    int n = snprintf(record, sizeof(record),
                     "{\"id\":%u,\"name\":\"%s\",\"score\":%u,\"next\":%p}",
                     next(100000), kNames[next(7)], next(1000),
                     reinterpret_cast<void*>(uintptr_t{0x7f0000000000} +
                                             uintptr_t{next(4096)} * 64));
    for (int i = 0; i < n && at < kPageSize; ++i) page[at++] = record[i];
    for (int i = 0; i < 8 && at < kPageSize; ++i) page[at++] = 0;
  }
  return page;
}

std::vector<unsigned char> RandomPage(uint32_t seed) {
  std::vector<unsigned char> page(kPageSize);
  std::mt19937_64 rng(seed);
  for (size_t i = 0; i < kPageSize; i += 8) {
    uint64_t v = rng();
    memcpy(&page[i], &v, 8);
  }
  return page;
}

class CompressorTest : public ::testing::TestWithParam<CompressorKind> {
 protected:
  void SetUp() override { ASSERT_TRUE(compressor_.Init(GetParam())); }
  Compressor compressor_;
};

TEST_P(CompressorTest, HeapLikePageRoundTrips) {
  for (uint32_t seed = 1; seed <= 20; ++seed) {
    std::vector<unsigned char> page = HeapLikePage(seed);
    std::vector<unsigned char> packed(kPageSize);
    size_t n = compressor_.Compress(page.data(), packed.data(), kEvictCapacity);
    ASSERT_GT(n, 0u) << "seed " << seed;
    EXPECT_LT(n, kEvictCapacity);
    std::vector<unsigned char> restored(kPageSize, 0xee);
    ASSERT_TRUE(compressor_.Decompress(packed.data(), n, restored.data()));
    EXPECT_EQ(restored, page) << "seed " << seed;
  }
}

TEST_P(CompressorTest, ZeroAndSameFilledPagesRoundTripSmall) {
  for (unsigned char byte : {0x00, 0x5a, 0xff}) {
    std::vector<unsigned char> page(kPageSize, byte);
    std::vector<unsigned char> packed(kPageSize);
    size_t n = compressor_.Compress(page.data(), packed.data(), kEvictCapacity);
    ASSERT_GT(n, 0u);
    EXPECT_LT(n, 128u);
    std::vector<unsigned char> restored(kPageSize);
    ASSERT_TRUE(compressor_.Decompress(packed.data(), n, restored.data()));
    EXPECT_EQ(restored, page);
  }
}

TEST_P(CompressorTest, RandomPageDoesNotFitTheEvictionCapacity) {
  for (uint32_t seed = 1; seed <= 10; ++seed) {
    std::vector<unsigned char> page = RandomPage(seed);
    std::vector<unsigned char> packed(kPageSize, 0);
    EXPECT_EQ(compressor_.Compress(page.data(), packed.data(), kEvictCapacity),
              0u)
        << "seed " << seed;
  }
}

TEST_P(CompressorTest, TooSmallCapacityReturnsZeroEvenForGoodPages) {
  std::vector<unsigned char> page = HeapLikePage(7);
  std::vector<unsigned char> packed(kPageSize);
  EXPECT_EQ(compressor_.Compress(page.data(), packed.data(), 16), 0u);
  // The compressor still works after refusing.
  size_t n = compressor_.Compress(page.data(), packed.data(), kEvictCapacity);
  ASSERT_GT(n, 0u);
  std::vector<unsigned char> restored(kPageSize);
  ASSERT_TRUE(compressor_.Decompress(packed.data(), n, restored.data()));
  EXPECT_EQ(restored, page);
}

TEST_P(CompressorTest, GarbageInputIsRejected) {
  std::vector<unsigned char> page(kPageSize);
  std::vector<unsigned char> garbage(512, 0xff);
  EXPECT_FALSE(compressor_.Decompress(garbage.data(), garbage.size(),
                                      page.data()));
  std::vector<unsigned char> random = RandomPage(99);
  EXPECT_FALSE(compressor_.Decompress(random.data(), 1000, page.data()));
  EXPECT_FALSE(compressor_.Decompress(random.data(), 0, page.data()));
}

TEST_P(CompressorTest, TruncatedInputIsRejected) {
  std::vector<unsigned char> page = HeapLikePage(3);
  std::vector<unsigned char> packed(kPageSize);
  size_t n = compressor_.Compress(page.data(), packed.data(), kEvictCapacity);
  ASSERT_GT(n, 16u);
  std::vector<unsigned char> restored(kPageSize);
  for (size_t cut : {n - 1, n / 2, size_t{8}, size_t{1}}) {
    EXPECT_FALSE(compressor_.Decompress(packed.data(), cut, restored.data()))
        << "cut to " << cut << " of " << n;
  }
}

TEST_P(CompressorTest, EachCompressorStandsAlone) {
  // The shim gives each thread its own; two side by side do not interfere.
  Compressor other;
  ASSERT_TRUE(other.Init(GetParam()));
  std::vector<unsigned char> a = HeapLikePage(11), b = HeapLikePage(12);
  std::vector<unsigned char> pa(kPageSize), pb(kPageSize);
  size_t na = compressor_.Compress(a.data(), pa.data(), kEvictCapacity);
  size_t nb = other.Compress(b.data(), pb.data(), kEvictCapacity);
  ASSERT_GT(na, 0u);
  ASSERT_GT(nb, 0u);
  std::vector<unsigned char> ra(kPageSize), rb(kPageSize);
  ASSERT_TRUE(other.Decompress(pa.data(), na, ra.data()));
  ASSERT_TRUE(compressor_.Decompress(pb.data(), nb, rb.data()));
  EXPECT_EQ(ra, a);
  EXPECT_EQ(rb, b);
}

INSTANTIATE_TEST_SUITE_P(
    Codecs, CompressorTest,
    ::testing::Values(CompressorKind::kLz4, CompressorKind::kZstd),
    [](const ::testing::TestParamInfo<CompressorKind>& info) {
      return std::string(info.param == CompressorKind::kLz4 ? "Lz4" : "Zstd");
    });

TEST(CompressorCodecTest, ZstdPacksAHeapLikePageTighterThanLz4) {
  Compressor lz4, zstd;
  ASSERT_TRUE(lz4.Init(CompressorKind::kLz4));
  ASSERT_TRUE(zstd.Init(CompressorKind::kZstd));
  std::vector<unsigned char> page = HeapLikePage(5);
  std::vector<unsigned char> out(kPageSize);
  size_t n_lz4 = lz4.Compress(page.data(), out.data(), kPageSize);
  size_t n_zstd = zstd.Compress(page.data(), out.data(), kPageSize);
  ASSERT_GT(n_lz4, 0u);
  ASSERT_GT(n_zstd, 0u);
  EXPECT_LT(n_zstd, n_lz4);
}

TEST(CompressorCodecTest, OneCodecCannotReadTheOther) {
  Compressor lz4, zstd;
  ASSERT_TRUE(lz4.Init(CompressorKind::kLz4));
  ASSERT_TRUE(zstd.Init(CompressorKind::kZstd));
  std::vector<unsigned char> page = HeapLikePage(8);
  std::vector<unsigned char> packed(kPageSize), restored(kPageSize);
  size_t n = lz4.Compress(page.data(), packed.data(), kEvictCapacity);
  ASSERT_GT(n, 0u);
  EXPECT_FALSE(zstd.Decompress(packed.data(), n, restored.data()));
}

}  // namespace
}  // namespace coldheap::shim
