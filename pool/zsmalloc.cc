#include "pool/zsmalloc.h"

#include <algorithm>
#include <atomic>
#include <cstring>
#include <limits>
#include <new>
#include <optional>

#include "absl/base/thread_annotations.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "pool/debug_check.h"
#include "pool/zsmalloc_handle_table.h"
#include "pool/zsmalloc_zspage.h"

namespace coldheap::pool {
namespace {

using zsmalloc_internal::ClassGeometry;
using zsmalloc_internal::ClassIndexOf;
using zsmalloc_internal::ClassOf;
using zsmalloc_internal::GeometryOf;
using zsmalloc_internal::HandleTable;
using zsmalloc_internal::kBaseMask;
using zsmalloc_internal::kFullnessGroups;
using zsmalloc_internal::kNumClasses;
using zsmalloc_internal::kSlotStored;
using zsmalloc_internal::kStoredBit;
using zsmalloc_internal::LocationOf;
using zsmalloc_internal::ObjectAt;
using zsmalloc_internal::ObjectIn;
using zsmalloc_internal::PageAccount;
using zsmalloc_internal::PushFront;
using zsmalloc_internal::Remove;
using zsmalloc_internal::ReverseMap;
using zsmalloc_internal::SlotOf;
using zsmalloc_internal::Zspage;
using zsmalloc_internal::ZspageBase;
using zsmalloc_internal::ZspageList;
using zsmalloc_internal::ZspageOf;

constexpr absl::string_view kType = "zsmalloc";

// A tag in every handle tells pools apart, so debug builds catch a handle
// passed to the wrong pool. Never 0.
uint32_t NextPoolTag() {
  static std::atomic<uint32_t> next{0};
  return next.fetch_add(1, std::memory_order_relaxed) % 0xFFFF'FFFFu + 1;
}

// ---------------------------------------------------------------------------

class ZsPool final : public Zpool {
 public:
  ZsPool(absl::string_view name, const ZpoolOps& ops, PageSource& source,
         size_t own_pages)
      : ops_(ops),
        tag_(NextPoolTag()),
        account_(source, own_pages),
        handles_(account_) {
    name_length_ = std::min(name.size(), sizeof(name_));
    std::memcpy(name_, name.data(), name_length_);
  }
  ~ZsPool() override;

  absl::string_view type() const override { return kType; }
  absl::string_view name() const override {
    return absl::string_view(name_, name_length_);
  }
  bool MallocSupportMovable() const override { return true; }
  // A mapped object is only pinned: holding it blocks nothing but its own
  // zspage's compaction.
  bool SleepMapped() const override { return true; }

  absl::StatusOr<Handle> Malloc(size_t size) override;
  void Free(Handle handle) override { Release(handle); }
  absl::StatusOr<size_t> Shrink(size_t pages) override;
  void* Map(Handle handle, MapMode mode) override;
  void Unmap(Handle handle) override;
  size_t Compact() override;
  size_t StoredSize(size_t size) const override {
    return GeometryOf(ClassIndexOf(size)).object_size;
  }
  uint64_t TotalSize() const override {
    return account_.held_pages() * kPageSize;
  }

  ZsmallocClassStats ClassStats(size_t size) const;
  PageSource& source() const { return account_.source(); }

 private:
  struct alignas(64) SizeClass {
    mutable absl::Mutex mu;
    ZspageList by_fullness[kFullnessGroups] ABSL_GUARDED_BY(mu);
    ZspageList lru ABSL_GUARDED_BY(mu);  // head: most recently stored into
    uint64_t zspages ABSL_GUARDED_BY(mu) = 0;
    uint64_t objects_used ABSL_GUARDED_BY(mu) = 0;
    // Free slots in the zspages on the lists (isolated ones excluded).
    uint64_t free_slots ABSL_GUARDED_BY(mu) = 0;
  };

  Handle MakeHandle(uint32_t index) const {
    return uint64_t{tag_} << 32 | index;
  }
  std::atomic<uint64_t>& EntryOf(Handle handle) const;
  std::atomic<uint64_t>& Entry(uint32_t index) const {
    return *handles_.Find(index);
  }
  uint64_t Tick() {
    return store_clock_.fetch_add(1, std::memory_order_relaxed) + 1;
  }

  bool Store(int size_class, uint32_t index);
  size_t Release(Handle handle);
  Zspage* NewZspage(int size_class);
  size_t UnmapZspage(Zspage* z);
  Zspage* DrainSparsestZspage(SizeClass& c);
  void MoveObject(SizeClass& c, Zspage* from, int slot, Zspage* to)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(c.mu);
  uint64_t CountZspages() const;
  Zspage* IsolateLeastRecentlyStored();
  size_t Evict(Zspage* victim);

  void List(SizeClass& c, Zspage* z) ABSL_EXCLUSIVE_LOCKS_REQUIRED(c.mu);
  void Unlist(SizeClass& c, Zspage* z) ABSL_EXCLUSIVE_LOCKS_REQUIRED(c.mu);
  void Refile(SizeClass& c, Zspage* z) ABSL_EXCLUSIVE_LOCKS_REQUIRED(c.mu);
  int TakeSlot(SizeClass& c, Zspage* z, uint32_t index)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(c.mu);
  static Zspage* FullestWithRoom(SizeClass& c)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(c.mu);
  static Zspage* SparsestUnpinned(SizeClass& c)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(c.mu);

  const ZpoolOps ops_;
  const uint32_t tag_;
  char name_[64];
  size_t name_length_;
  std::atomic<uint64_t> store_clock_{0};
  PageAccount account_;
  HandleTable handles_;  // after account_: its destructor gives pages back
  SizeClass classes_[kNumClasses];
};

constexpr size_t kPoolPages = (sizeof(ZsPool) + kPageSize - 1) / kPageSize;

ZsPool::~ZsPool() {
  // Every zspage not isolated by a running Shrink (there is none now) is on
  // its class's LRU list.
  for (SizeClass& c : classes_) {
    absl::MutexLock lock(&c.mu);
    while (Zspage* z = c.lru.head) {
      Remove<&Zspage::lru>(c.lru, z);
      UnmapZspage(z);
    }
  }
}

std::atomic<uint64_t>& ZsPool::EntryOf(Handle handle) const {
  ZPOOL_DCHECK(handle >> 32 == tag_,
               "zsmalloc: handle does not belong to this pool");
  std::atomic<uint64_t>* entry = handles_.Find(static_cast<uint32_t>(handle));
  ZPOOL_DCHECK(
      entry != nullptr && (entry->load(std::memory_order_relaxed) & kStoredBit),
      "zsmalloc: handle is not stored in this pool (double free?)");
  return *entry;
}

absl::StatusOr<Handle> ZsPool::Malloc(size_t size) {
  if (size == 0 || size > kMaxObjectSize) {
    return absl::InvalidArgumentError(
        absl::StrCat("zsmalloc pool '", name(), "': cannot store ", size,
                     " bytes; objects are 1..", kMaxObjectSize, " bytes"));
  }
  const int size_class = ClassIndexOf(size);
  // Sharded by class: threads storing different sizes take different locks.
  const std::optional<uint32_t> index =
      handles_.Allocate(size_class % HandleTable::kShards);
  if (index.has_value() && Store(size_class, *index)) return MakeHandle(*index);
  if (index.has_value()) {
    handles_.Release(*index);
    // Out of memory: give back the handle page kept for the next store.
    handles_.ReleaseEmptyPages();
  }
  return absl::ResourceExhaustedError(
      absl::StrCat("zsmalloc pool '", name(), "': page source out of memory",
                   " while storing ", size, " bytes"));
}

bool ZsPool::Store(int size_class, uint32_t index) {
  SizeClass& c = classes_[size_class];
  Zspage* fresh = nullptr;
  for (;;) {
    {
      absl::MutexLock lock(&c.mu);
      if (fresh != nullptr) {
        ++c.zspages;
        List(c, fresh);
      }
      if (Zspage* z = FullestWithRoom(c)) {
        const int slot = TakeSlot(c, z, index);
        ++c.objects_used;
        Remove<&Zspage::lru>(c.lru, z);
        PushFront<&Zspage::lru>(c.lru, z);
        z->stored_at = Tick();
        Entry(index).store(LocationOf(z, slot), std::memory_order_relaxed);
        return true;
      }
    }
    // Outside the lock: an mmap must not stall the class. If another thread
    // adds room meanwhile, the spare zspage fills later.
    fresh = NewZspage(size_class);
    if (fresh == nullptr) return false;
  }
}

size_t ZsPool::Release(Handle handle) {
  std::atomic<uint64_t>& entry = EntryOf(handle);
  const uint32_t index = static_cast<uint32_t>(handle);
  // The class never changes while the handle lives, so it can be read
  // before taking the lock that guards the rest of the location.
  SizeClass& c = classes_[ClassOf(entry.load(std::memory_order_relaxed))];
  Zspage* emptied = nullptr;
  {
    absl::MutexLock lock(&c.mu);
    const uint64_t location = entry.load(std::memory_order_relaxed);
    ZPOOL_DCHECK(location & kStoredBit,
                 "zsmalloc: handle freed twice at once (double free)");
    Zspage* z = ZspageOf(location);
    const int slot = SlotOf(location);
    uint32_t* rmap = ReverseMap(z);
    ZPOOL_DCHECK(rmap[slot] == (kSlotStored | index),
                 "zsmalloc: handle entry and zspage disagree (corrupt pool)");
    entry.store(0, std::memory_order_relaxed);
    rmap[slot] = z->free_head;
    z->free_head = static_cast<uint16_t>(slot);
    --z->inuse;
    --c.objects_used;
    if (!z->isolated) {
      ++c.free_slots;
      // An emptied zspage that is its class's only room stays (Compact gives
      // it back): storing and freeing at a zspage boundary must not mmap and
      // munmap each time. So a class never holds more than one zspage of
      // free slots, the bound compaction leaves anyway.
      const bool only_room = c.free_slots == GeometryOf(z->size_class).objects;
      if (z->inuse > 0 || only_room) {
        Refile(c, z);
      } else {
        Unlist(c, z);
        --c.zspages;
        emptied = z;
      }
    }
  }
  const size_t freed = emptied != nullptr ? UnmapZspage(emptied) : 0;
  return freed + handles_.Release(index);
}

void* ZsPool::Map(Handle handle, MapMode /*mode*/) {
  // Objects are contiguous in place: every mode gets the object itself.
  std::atomic<uint64_t>& entry = EntryOf(handle);
  SizeClass& c = classes_[ClassOf(entry.load(std::memory_order_relaxed))];
  absl::MutexLock lock(&c.mu);
  const uint64_t location = entry.load(std::memory_order_relaxed);
  ZspageOf(location)->pins.fetch_add(1, std::memory_order_relaxed);
  return ObjectAt(location);
}

void ZsPool::Unmap(Handle handle) {
  // A pinned object does not move, so its entry is stable without the lock.
  Zspage* z = ZspageOf(EntryOf(handle).load(std::memory_order_relaxed));
  ZPOOL_DCHECK(z->pins.load(std::memory_order_relaxed) > 0,
               "zsmalloc: Unmap of a handle that is not mapped");
  // Release: a compaction that then sees no pins copies what the caller wrote.
  z->pins.fetch_sub(1, std::memory_order_release);
}

Zspage* ZsPool::NewZspage(int size_class) {
  const ClassGeometry& g = GeometryOf(size_class);
  char* base = static_cast<char*>(account_.Map(g.pages));
  if (base == nullptr) return nullptr;
  ZPOOL_DCHECK((reinterpret_cast<uintptr_t>(base) & ~kBaseMask) == 0,
               "zsmalloc: page source gave a run outside 48-bit addresses");
  auto* z = new (base + g.pages * kPageSize - sizeof(Zspage)) Zspage();
  z->size_class = static_cast<uint8_t>(size_class);
  uint32_t* rmap = ReverseMap(z);
  for (int slot = 0; slot < g.objects; ++slot) rmap[slot] = slot + 1;
  return z;
}

size_t ZsPool::UnmapZspage(Zspage* z) {
  const size_t pages = GeometryOf(z->size_class).pages;
  account_.Unmap(ZspageBase(z), pages);
  return pages;
}

void ZsPool::List(SizeClass& c, Zspage* z) {
  z->group = kFullnessGroups;
  Refile(c, z);
  PushFront<&Zspage::lru>(c.lru, z);
  z->stored_at = Tick();
  c.free_slots += GeometryOf(z->size_class).objects - z->inuse;
}

void ZsPool::Unlist(SizeClass& c, Zspage* z) {
  if (z->group < kFullnessGroups)
    Remove<&Zspage::fullness>(c.by_fullness[z->group], z);
  z->group = kFullnessGroups;
  Remove<&Zspage::lru>(c.lru, z);
  c.free_slots -= GeometryOf(z->size_class).objects - z->inuse;
}

void ZsPool::Refile(SizeClass& c, Zspage* z) {
  const int objects = GeometryOf(z->size_class).objects;
  const int group = z->inuse == objects ? kFullnessGroups
                                        : z->inuse * kFullnessGroups / objects;
  if (group == z->group) return;
  if (z->group < kFullnessGroups)
    Remove<&Zspage::fullness>(c.by_fullness[z->group], z);
  if (group < kFullnessGroups)
    PushFront<&Zspage::fullness>(c.by_fullness[group], z);
  z->group = static_cast<uint8_t>(group);
}

int ZsPool::TakeSlot(SizeClass& c, Zspage* z, uint32_t index) {
  uint32_t* rmap = ReverseMap(z);
  const int slot = z->free_head;
  z->free_head = static_cast<uint16_t>(rmap[slot]);
  rmap[slot] = kSlotStored | index;
  ++z->inuse;
  --c.free_slots;
  Refile(c, z);
  return slot;
}

Zspage* ZsPool::FullestWithRoom(SizeClass& c) {
  for (int group = kFullnessGroups - 1; group >= 0; --group) {
    if (Zspage* z = c.by_fullness[group].head) return z;
  }
  return nullptr;
}

Zspage* ZsPool::SparsestUnpinned(SizeClass& c) {
  for (ZspageList& list : c.by_fullness) {
    for (Zspage* z = list.head; z != nullptr; z = z->fullness.next) {
      // Acquire: pairs with Unmap, so the copy sees the caller's writes.
      if (z->pins.load(std::memory_order_acquire) == 0) return z;
    }
  }
  return nullptr;
}

// ---------------------------------------------------------------------------
// Compaction.

size_t ZsPool::Compact() {
  size_t freed = handles_.ReleaseEmptyPages();
  for (SizeClass& c : classes_) {
    while (Zspage* emptied = DrainSparsestZspage(c))
      freed += UnmapZspage(emptied);
  }
  return freed;
}

// Empties one zspage into fuller ones and returns it, unlisted, for the
// caller to unmap; nullptr when no zspage of the class can be emptied. One
// zspage per lock hold, so Map and Malloc wait at most one zspage's copy.
Zspage* ZsPool::DrainSparsestZspage(SizeClass& c) {
  absl::MutexLock lock(&c.mu);
  Zspage* from = SparsestUnpinned(c);
  // Enough free slots elsewhere for all of its objects?
  if (from == nullptr || c.free_slots < GeometryOf(from->size_class).objects) {
    return nullptr;
  }
  Unlist(c, from);
  --c.zspages;
  for (int slot = 0; from->inuse > 0; ++slot) {
    if (ReverseMap(from)[slot] & kSlotStored) {
      MoveObject(c, from, slot, FullestWithRoom(c));
    }
  }
  return from;
}

void ZsPool::MoveObject(SizeClass& c, Zspage* from, int slot, Zspage* to) {
  const uint32_t index = ReverseMap(from)[slot] & ~kSlotStored;
  const int to_slot = TakeSlot(c, to, index);
  std::memcpy(ObjectIn(to, to_slot), ObjectIn(from, slot),
              GeometryOf(from->size_class).object_size);
  Entry(index).store(LocationOf(to, to_slot), std::memory_order_relaxed);
  --from->inuse;
}

// ---------------------------------------------------------------------------
// Shrink.

absl::StatusOr<size_t> ZsPool::Shrink(size_t pages) {
  if (ops_.evict == nullptr) {
    return absl::FailedPreconditionError(
        absl::StrCat("zsmalloc pool '", name(),
                     "' cannot shrink: it has no evict callback"));
  }
  size_t freed = 0;
  // A zspage that keeps objects goes back as most recent, so each is tried
  // at most once per call.
  for (uint64_t tries = CountZspages(); freed < pages && tries > 0; --tries) {
    Zspage* victim = IsolateLeastRecentlyStored();
    if (victim == nullptr) break;
    freed += Evict(victim);
  }
  return freed;
}

uint64_t ZsPool::CountZspages() const {
  uint64_t zspages = 0;
  for (const SizeClass& c : classes_) {
    absl::MutexLock lock(&c.mu);
    zspages += c.zspages;
  }
  return zspages;
}

Zspage* ZsPool::IsolateLeastRecentlyStored() {
  for (;;) {
    SizeClass* oldest = nullptr;
    uint64_t oldest_store = std::numeric_limits<uint64_t>::max();
    for (SizeClass& c : classes_) {
      absl::MutexLock lock(&c.mu);
      if (c.lru.tail != nullptr && c.lru.tail->stored_at < oldest_store) {
        oldest = &c;
        oldest_store = c.lru.tail->stored_at;
      }
    }
    if (oldest == nullptr) return nullptr;
    absl::MutexLock lock(&oldest->mu);
    // Its tail may have changed since; any tail is nearly as old.
    if (Zspage* z = oldest->lru.tail) {
      Unlist(*oldest, z);
      z->isolated = true;
      return z;
    }
  }
}

size_t ZsPool::Evict(Zspage* victim) {
  SizeClass& c = classes_[victim->size_class];
  const int objects = GeometryOf(victim->size_class).objects;
  size_t freed = 0;
  for (int slot = 0; slot < objects; ++slot) {
    uint32_t stored;
    {
      absl::MutexLock lock(&c.mu);
      stored = ReverseMap(victim)[slot];
    }
    if ((stored & kSlotStored) == 0) continue;
    // No lock held: the callback maps the handle.
    const Handle handle = MakeHandle(stored & ~kSlotStored);
    if (ops_.evict(ops_.context, *this, handle)) freed += Release(handle);
  }
  bool emptied;
  {
    absl::MutexLock lock(&c.mu);
    victim->isolated = false;
    emptied = victim->inuse == 0;
    if (emptied) {
      --c.zspages;
    } else {
      List(c, victim);
    }
  }
  return emptied ? freed + UnmapZspage(victim) : freed;
}

ZsmallocClassStats ZsPool::ClassStats(size_t size) const {
  const int size_class = ClassIndexOf(size);
  const ClassGeometry& g = GeometryOf(size_class);
  const SizeClass& c = classes_[size_class];
  absl::MutexLock lock(&c.mu);
  return {g.object_size, g.pages, g.objects, c.zspages, c.objects_used};
}

// ---------------------------------------------------------------------------

class ZsmallocDriverImpl final : public ZpoolDriver {
 public:
  absl::string_view type() const override { return kType; }

  absl::StatusOr<Zpool*> Create(absl::string_view name, const ZpoolOps& ops,
                                PageSource& pages) override {
    void* memory = pages.MapPages(kPoolPages);
    if (memory == nullptr) {
      return absl::ResourceExhaustedError(
          absl::StrCat("zsmalloc pool '", name, "': page source out of memory",
                       " for the pool itself (", kPoolPages, " pages)"));
    }
    return new (memory) ZsPool(name, ops, pages, kPoolPages);
  }

  void Destroy(Zpool* pool) override {
    ZPOOL_DCHECK(pool->type() == kType,
                 "zsmalloc: Destroy of a pool from another driver");
    auto* zs = static_cast<ZsPool*>(pool);
    PageSource& source = zs->source();
    zs->~ZsPool();
    source.UnmapPages(zs, kPoolPages);
  }
};

}  // namespace

ZpoolDriver& ZsmallocDriver() {
  alignas(ZsmallocDriverImpl) static unsigned char
      storage[sizeof(ZsmallocDriverImpl)];
  static ZpoolDriver* driver = new (storage) ZsmallocDriverImpl();
  return *driver;
}

ZsmallocClassStats GetZsmallocClassStats(const Zpool& pool, size_t size) {
  const auto* zs = dynamic_cast<const ZsPool*>(&pool);
  ZPOOL_DCHECK(zs != nullptr,
               "zsmalloc: stats asked of a pool of another driver");
  ZPOOL_DCHECK(size >= 1 && size <= kMaxObjectSize,
               "zsmalloc: stats asked for a size outside 1..4096");
  return zs->ClassStats(size);
}

}  // namespace coldheap::pool
