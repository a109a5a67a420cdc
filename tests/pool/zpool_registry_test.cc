// The zpool registry (mm/zpool.c's driver list): registration, reference
// counts that keep a driver registered while it is in use, pool creation and
// destruction, and the default registry's built-in drivers.
//
// Most tests use a private ZpoolRegistry and a small fake driver, so they do
// not depend on how zsmalloc or zbud behave; the last group runs the real
// drivers through DefaultZpoolRegistry().
#include <algorithm>
#include <cstdint>
#include <cstring>
#include <new>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "pool/default_registry.h"
#include "pool/zpool.h"
#include "tests/pool/counting_page_source.h"

namespace coldheap::pool {
namespace {

using ::testing::HasSubstr;

// A pool that stores nothing: one page from its PageSource holds the pool
// object itself, as a real driver's would.
class FakePool final : public Zpool {
 public:
  FakePool(absl::string_view type, absl::string_view name) : type_(type) {
    name_len_ = std::min(name.size(), sizeof(name_));
    memcpy(name_, name.data(), name_len_);
  }

  absl::string_view type() const override { return type_; }
  absl::string_view name() const override {
    return absl::string_view(name_, name_len_);
  }
  bool MallocSupportMovable() const override { return false; }
  absl::StatusOr<Handle> Malloc(size_t) override {
    return absl::ResourceExhaustedError("fake pool stores nothing");
  }
  void Free(Handle) override {}
  absl::StatusOr<size_t> Shrink(size_t) override { return 0; }
  bool SleepMapped() const override { return true; }
  void* Map(Handle, MapMode) override { return nullptr; }
  void Unmap(Handle) override {}
  size_t Compact() override { return 0; }
  uint64_t TotalSize() const override { return kPageSize; }
  size_t StoredSize(size_t size) const override { return size; }

 private:
  absl::string_view type_;
  char name_[64];
  size_t name_len_ = 0;
};

static_assert(sizeof(FakePool) <= kPageSize);

// Builds FakePools in pages from the given source and counts live pools.
class FakeDriver final : public ZpoolDriver {
 public:
  explicit FakeDriver(absl::string_view type) : type_(type) {}

  absl::string_view type() const override { return type_; }

  absl::StatusOr<Zpool*> Create(absl::string_view name, const ZpoolOps&,
                                PageSource& pages) override {
    void* memory = pages.MapPages(1);
    if (memory == nullptr) {
      return absl::ResourceExhaustedError("no page for the pool object");
    }
    ++live_pools_;
    source_ = &pages;
    return new (memory) FakePool(type_, name);
  }

  void Destroy(Zpool* pool) override {
    pool->~Zpool();
    source_->UnmapPages(pool, 1);
    --live_pools_;
  }

  int live_pools() const { return live_pools_; }

 private:
  absl::string_view type_;
  PageSource* source_ = nullptr;
  int live_pools_ = 0;
};

// A registry with a fake driver registered, and a counting page source.
class RegistryTest : public ::testing::Test {
 protected:
  void SetUp() override { ASSERT_TRUE(registry_.RegisterDriver(&fake_).ok()); }

  absl::StatusOr<ZpoolPtr> CreateFakePool() {
    return registry_.CreatePool("fake", "test-pool", ZpoolOps{}, source_);
  }

  ZpoolRegistry registry_;
  FakeDriver fake_{"fake"};
  CountingPageSource source_;
};

TEST_F(RegistryTest, RegisteredDriverIsFoundByType) {
  EXPECT_TRUE(registry_.HasPool("fake"));
  EXPECT_FALSE(registry_.HasPool("other"));
  EXPECT_FALSE(registry_.HasPool(""));
  EXPECT_EQ(registry_.RefCount(&fake_), 0);
}

TEST_F(RegistryTest, RegisterRefusesDuplicateType) {
  FakeDriver same_type("fake");
  absl::Status status = registry_.RegisterDriver(&same_type);
  EXPECT_EQ(status.code(), absl::StatusCode::kAlreadyExists) << status;
  EXPECT_THAT(std::string(status.message()), HasSubstr("fake"));
  // Registering the very same driver twice is refused too.
  EXPECT_EQ(registry_.RegisterDriver(&fake_).code(),
            absl::StatusCode::kAlreadyExists);
  // The original registration is untouched.
  EXPECT_EQ(registry_.RefCount(&fake_), 0);
  EXPECT_EQ(registry_.RefCount(&same_type), -1);
}

TEST_F(RegistryTest, RegisterRefusesDriverBeyondTableSize) {
  std::vector<std::string> types;
  for (int i = 0; i < ZpoolRegistry::kMaxDrivers; ++i) {
    types.push_back("extra" + std::to_string(i));
  }
  std::vector<FakeDriver> extra(types.begin(), types.end());
  // One slot is taken by "fake".
  for (int i = 0; i + 1 < ZpoolRegistry::kMaxDrivers; ++i) {
    ASSERT_TRUE(registry_.RegisterDriver(&extra[i]).ok()) << i;
  }
  EXPECT_EQ(registry_.RegisterDriver(&extra.back()).code(),
            absl::StatusCode::kResourceExhausted);
  // Freeing a slot makes room again.
  ASSERT_TRUE(registry_.UnregisterDriver(&extra[0]).ok());
  EXPECT_TRUE(registry_.RegisterDriver(&extra.back()).ok());
}

TEST_F(RegistryTest, UnregisterUnknownDriverIsNotFound) {
  FakeDriver stranger("stranger");
  EXPECT_EQ(registry_.UnregisterDriver(&stranger).code(),
            absl::StatusCode::kNotFound);
  // A different driver object with a registered type is not that driver.
  FakeDriver impostor("fake");
  EXPECT_EQ(registry_.UnregisterDriver(&impostor).code(),
            absl::StatusCode::kNotFound);
  EXPECT_TRUE(registry_.HasPool("fake"));
}

TEST_F(RegistryTest, UnregisterRemovesDriver) {
  ASSERT_TRUE(registry_.UnregisterDriver(&fake_).ok());
  EXPECT_FALSE(registry_.HasPool("fake"));
  EXPECT_EQ(registry_.RefCount(&fake_), -1);
  EXPECT_EQ(registry_.GetDriver("fake").status().code(),
            absl::StatusCode::kNotFound);
  EXPECT_EQ(registry_.UnregisterDriver(&fake_).code(),
            absl::StatusCode::kNotFound);
  // And the type can be registered again.
  EXPECT_TRUE(registry_.RegisterDriver(&fake_).ok());
}

TEST_F(RegistryTest, GetAndPutDriverCountReferences) {
  absl::StatusOr<ZpoolDriver*> first = registry_.GetDriver("fake");
  ASSERT_TRUE(first.ok()) << first.status();
  EXPECT_EQ(*first, &fake_);
  EXPECT_EQ(registry_.RefCount(&fake_), 1);

  absl::StatusOr<ZpoolDriver*> second = registry_.GetDriver("fake");
  ASSERT_TRUE(second.ok()) << second.status();
  EXPECT_EQ(registry_.RefCount(&fake_), 2);

  registry_.PutDriver(*first);
  EXPECT_EQ(registry_.RefCount(&fake_), 1);
  registry_.PutDriver(*second);
  EXPECT_EQ(registry_.RefCount(&fake_), 0);
  // An extra put never drives the count below zero.
  registry_.PutDriver(&fake_);
  EXPECT_EQ(registry_.RefCount(&fake_), 0);
}

TEST_F(RegistryTest, GetDriverOfUnknownTypeTakesNoReference) {
  EXPECT_EQ(registry_.GetDriver("nope").status().code(),
            absl::StatusCode::kNotFound);
  EXPECT_EQ(registry_.RefCount(&fake_), 0);
}

TEST_F(RegistryTest, UnregisterRefusedWhileGetDriverReferenceHeld) {
  absl::StatusOr<ZpoolDriver*> driver = registry_.GetDriver("fake");
  ASSERT_TRUE(driver.ok()) << driver.status();

  absl::Status refused = registry_.UnregisterDriver(&fake_);
  EXPECT_EQ(refused.code(), absl::StatusCode::kFailedPrecondition) << refused;
  EXPECT_TRUE(registry_.HasPool("fake"));
  EXPECT_EQ(registry_.RefCount(&fake_), 1);

  registry_.PutDriver(*driver);
  EXPECT_TRUE(registry_.UnregisterDriver(&fake_).ok());
  EXPECT_FALSE(registry_.HasPool("fake"));
}

TEST_F(RegistryTest, UnregisterRefusedWhilePoolLiveThenAllowedAfterDestroy) {
  absl::StatusOr<ZpoolPtr> pool = CreateFakePool();
  ASSERT_TRUE(pool.ok()) << pool.status();
  EXPECT_EQ(registry_.RefCount(&fake_), 1);
  EXPECT_EQ(fake_.live_pools(), 1);

  absl::Status refused = registry_.UnregisterDriver(&fake_);
  EXPECT_EQ(refused.code(), absl::StatusCode::kFailedPrecondition) << refused;
  EXPECT_TRUE(registry_.HasPool("fake"));

  pool->reset();
  EXPECT_EQ(fake_.live_pools(), 0);
  EXPECT_EQ(registry_.RefCount(&fake_), 0);
  EXPECT_TRUE(registry_.UnregisterDriver(&fake_).ok());
}

TEST_F(RegistryTest, EachLivePoolHoldsOneReference) {
  absl::StatusOr<ZpoolPtr> a = CreateFakePool();
  absl::StatusOr<ZpoolPtr> b = CreateFakePool();
  ASSERT_TRUE(a.ok() && b.ok());
  EXPECT_EQ(registry_.RefCount(&fake_), 2);

  registry_.DestroyPool(std::move(*a));
  EXPECT_EQ(registry_.RefCount(&fake_), 1);
  EXPECT_EQ(registry_.UnregisterDriver(&fake_).code(),
            absl::StatusCode::kFailedPrecondition);

  registry_.DestroyPool(std::move(*b));
  EXPECT_EQ(registry_.RefCount(&fake_), 0);
  EXPECT_EQ(fake_.live_pools(), 0);
  EXPECT_TRUE(registry_.UnregisterDriver(&fake_).ok());
}

TEST_F(RegistryTest, CreatePoolPassesNameAndPageSource) {
  absl::StatusOr<ZpoolPtr> pool = CreateFakePool();
  ASSERT_TRUE(pool.ok()) << pool.status();
  EXPECT_EQ((*pool)->type(), "fake");
  EXPECT_EQ((*pool)->name(), "test-pool");
  EXPECT_EQ(source_.held_bytes(), kPageSize);
  EXPECT_EQ((*pool)->TotalSize(), source_.held_bytes());
}

TEST_F(RegistryTest, PoolDestroyedThroughZpoolPtrGivesMemoryBack) {
  {
    absl::StatusOr<ZpoolPtr> pool = CreateFakePool();
    ASSERT_TRUE(pool.ok()) << pool.status();
    EXPECT_GT(source_.held_bytes(), 0u);
  }
  EXPECT_EQ(source_.held_bytes(), 0u);
  EXPECT_EQ(fake_.live_pools(), 0);
  EXPECT_EQ(registry_.RefCount(&fake_), 0);
}

TEST_F(RegistryTest, FailedCreatePoolTakesNoReference) {
  source_.set_limit_pages(0);
  absl::StatusOr<ZpoolPtr> pool = CreateFakePool();
  EXPECT_EQ(pool.status().code(), absl::StatusCode::kResourceExhausted);
  EXPECT_EQ(registry_.RefCount(&fake_), 0);
  EXPECT_EQ(fake_.live_pools(), 0);
  EXPECT_TRUE(registry_.UnregisterDriver(&fake_).ok());
}

TEST_F(RegistryTest, CreatePoolOfUnknownTypeIsNotFoundAndListsKnownTypes) {
  FakeDriver other("other");
  ASSERT_TRUE(registry_.RegisterDriver(&other).ok());

  absl::StatusOr<ZpoolPtr> pool =
      registry_.CreatePool("zswap-ng", "p", ZpoolOps{}, source_);
  ASSERT_EQ(pool.status().code(), absl::StatusCode::kNotFound) << pool.status();
  const std::string message(pool.status().message());
  EXPECT_THAT(message, HasSubstr("zswap-ng"));
  EXPECT_THAT(message, HasSubstr("fake"));
  EXPECT_THAT(message, HasSubstr("other"));
  EXPECT_EQ(registry_.RefCount(&fake_), 0);
  EXPECT_EQ(registry_.RefCount(&other), 0);
  EXPECT_EQ(source_.held_bytes(), 0u);
}

// ---------------------------------------------------------------------------
// The default registry and its real drivers.

TEST(DefaultRegistryTest, HasZsmallocAndZbud) {
  ZpoolRegistry& registry = DefaultZpoolRegistry();
  EXPECT_TRUE(registry.HasPool("zsmalloc"));
  EXPECT_TRUE(registry.HasPool("zbud"));
  EXPECT_FALSE(registry.HasPool("z3fold"));
  EXPECT_EQ(kDefaultZpoolType, "zsmalloc");
  EXPECT_TRUE(registry.HasPool(kDefaultZpoolType));
  EXPECT_EQ(&registry, &DefaultZpoolRegistry());
}

TEST(DefaultRegistryTest, UnknownTypeMessageListsBuiltInDrivers) {
  CountingPageSource source;
  absl::StatusOr<ZpoolPtr> pool =
      DefaultZpoolRegistry().CreatePool("z3fold", "p", ZpoolOps{}, source);
  ASSERT_EQ(pool.status().code(), absl::StatusCode::kNotFound) << pool.status();
  EXPECT_THAT(std::string(pool.status().message()), HasSubstr("zsmalloc"));
  EXPECT_THAT(std::string(pool.status().message()), HasSubstr("zbud"));
}

class DefaultDriverTest : public ::testing::TestWithParam<const char*> {
 protected:
  absl::StatusOr<ZpoolPtr> CreatePool() {
    return DefaultZpoolRegistry().CreatePool(GetParam(), "registry-test",
                                             ZpoolOps{}, source_);
  }

  // The driver's current reference count, without keeping a reference.
  int DriverRefCount() {
    absl::StatusOr<ZpoolDriver*> driver =
        DefaultZpoolRegistry().GetDriver(GetParam());
    if (!driver.ok()) return -1;
    DefaultZpoolRegistry().PutDriver(*driver);
    return DefaultZpoolRegistry().RefCount(*driver);
  }

  CountingPageSource source_;
};

TEST_P(DefaultDriverTest, GetDriverReturnsDriverOfThatType) {
  absl::StatusOr<ZpoolDriver*> driver =
      DefaultZpoolRegistry().GetDriver(GetParam());
  ASSERT_TRUE(driver.ok()) << driver.status();
  EXPECT_EQ((*driver)->type(), GetParam());
  DefaultZpoolRegistry().PutDriver(*driver);
}

TEST_P(DefaultDriverTest, PoolHoldsDriverReferenceUntilDestroyed) {
  const int before = DriverRefCount();
  ASSERT_GE(before, 0);
  {
    absl::StatusOr<ZpoolPtr> pool = CreatePool();
    ASSERT_TRUE(pool.ok()) << pool.status();
    EXPECT_EQ((*pool)->type(), GetParam());
    EXPECT_EQ((*pool)->name(), "registry-test");
    EXPECT_EQ(DriverRefCount(), before + 1);
  }
  EXPECT_EQ(DriverRefCount(), before);
}

TEST_P(DefaultDriverTest, PoolDestroyedThroughZpoolPtrGivesAllMemoryBack) {
  {
    absl::StatusOr<ZpoolPtr> created = CreatePool();
    ASSERT_TRUE(created.ok()) << created.status();
    Zpool& pool = **created;
    EXPECT_EQ(pool.TotalSize(), source_.held_bytes());

    // Objects of many sizes, left stored: destroying the pool must give
    // their memory back without each being freed.
    const size_t sizes[] = {1, 16, 100, 1000, 1711, 2868, 4095, 4096};
    std::vector<Handle> handles;
    for (int round = 0; round < 200; ++round) {
      for (size_t size : sizes) {
        absl::StatusOr<Handle> handle = pool.Malloc(size);
        ASSERT_TRUE(handle.ok()) << handle.status();
        {
          MappedObject object(pool, *handle, MapMode::kWriteOnly);
          memset(object.data(), static_cast<int>(round), size);
        }
        handles.push_back(*handle);
      }
    }
    // Free a third, so the pool is also partly empty inside.
    for (size_t i = 0; i < handles.size(); i += 3) pool.Free(handles[i]);
    EXPECT_GT(source_.held_bytes(), 0u);
    EXPECT_EQ(pool.TotalSize(), source_.held_bytes());
  }
  EXPECT_EQ(source_.held_bytes(), 0u);
}

TEST_P(DefaultDriverTest, EmptyPoolDestroyedThroughDestroyPoolGivesAllBack) {
  absl::StatusOr<ZpoolPtr> pool = CreatePool();
  ASSERT_TRUE(pool.ok()) << pool.status();
  EXPECT_EQ((*pool)->TotalSize(), source_.held_bytes());
  DefaultZpoolRegistry().DestroyPool(std::move(*pool));
  EXPECT_EQ(source_.held_bytes(), 0u);
}

INSTANTIATE_TEST_SUITE_P(BuiltIn, DefaultDriverTest,
                         ::testing::Values("zsmalloc", "zbud"),
                         [](const ::testing::TestParamInfo<const char*>& p) {
                           return std::string(p.param);
                         });

}  // namespace
}  // namespace coldheap::pool
