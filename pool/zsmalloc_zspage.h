// zsmalloc's zspage layout and size classes. Internal to the zsmalloc
// driver; zsmalloc.h explains the design and the numbers.
#ifndef COLDHEAP_POOL_ZSMALLOC_ZSPAGE_H_
#define COLDHEAP_POOL_ZSMALLOC_ZSPAGE_H_

#include <algorithm>
#include <atomic>
#include <cstddef>
#include <cstdint>
#include <limits>

#include "pool/page_source.h"
#include "pool/zpool.h"

namespace coldheap::pool::zsmalloc_internal {

// ---------------------------------------------------------------------------
// Zspage metadata, at the end of each zspage run (see zsmalloc.h).

// Fullness groups per class: zspage with `inuse` of `objects` slots used is in
// group inuse * kFullnessGroups / objects; full zspages are in none.
constexpr int kFullnessGroups = 4;

struct Zspage;
struct ZspageLinks {
  Zspage* prev = nullptr;
  Zspage* next = nullptr;
};

struct Zspage {
  ZspageLinks fullness;    // in its class's list for its fullness group
  ZspageLinks lru;         // in its class's list by last store
  uint64_t stored_at = 0;  // store clock at the last Malloc into it
  // Map()s not yet unmapped. Raised under the class lock, lowered without
  // it: compaction, under the lock, moves nothing out while it is non-zero.
  std::atomic<uint32_t> pins{0};
  uint16_t inuse = 0;
  uint16_t free_head = 0;  // first free slot; the rest chain through the rmap
  uint8_t size_class = 0;
  uint8_t group = 0;      // fullness group it is on; kFullnessGroups for none
  bool isolated = false;  // taken by Shrink: off every list until it is done
};

// Reverse map word: kSlotStored | handle index, or the next free slot.
constexpr uint32_t kSlotStored = uint32_t{1} << 31;

// ---------------------------------------------------------------------------
// Size classes, computed at compile time.

constexpr size_t kClassStep = 16;
constexpr int kSizeSteps = kMaxObjectSize / kClassStep;
constexpr int kMaxZspagePages = 8;

struct ClassGeometry {
  uint16_t object_size = 0;
  uint16_t pages = 0;
  uint16_t objects = 0;
};

struct SizeClassTable {
  ClassGeometry classes[kSizeSteps] = {};
  uint8_t class_of_step[kSizeSteps] = {};  // (size - 1) / 16 -> class
  int count = 0;
};

constexpr int ObjectsPerZspage(size_t object_size, size_t pages) {
  return static_cast<int>((pages * kPageSize - sizeof(Zspage)) /
                          (object_size + sizeof(uint32_t)));
}

// Each page of zspage length costs as much as 1/kPagePenaltyDivisor of the
// zspage wasted: every class in use keeps one partly filled zspage after
// compaction, and in the shim's few-MB pools those dominate (zsmalloc.h).
constexpr uint64_t kPagePenaltyDivisor = 64;

// Waste (metadata included) as a fraction of the zspage, in 1/2^20, plus
// the page penalty so that a longer chain must cut the waste to be chosen.
constexpr uint64_t GeometryCost(size_t object_size, size_t pages) {
  const uint64_t bytes = pages * kPageSize;
  const uint64_t waste =
      bytes - ObjectsPerZspage(object_size, pages) * object_size;
  return (waste << 20) / bytes + (pages << 20) / kPagePenaltyDivisor;
}

constexpr ClassGeometry BestGeometry(size_t object_size) {
  ClassGeometry best;
  uint64_t best_cost = std::numeric_limits<uint64_t>::max();
  for (size_t pages = 1; pages <= kMaxZspagePages; ++pages) {
    if (ObjectsPerZspage(object_size, pages) == 0) continue;
    const uint64_t cost = GeometryCost(object_size, pages);
    if (cost >= best_cost) continue;
    best_cost = cost;
    best = {static_cast<uint16_t>(object_size), static_cast<uint16_t>(pages),
            static_cast<uint16_t>(ObjectsPerZspage(object_size, pages))};
  }
  return best;
}

constexpr SizeClassTable BuildSizeClassTable() {
  // From the largest size down, as Linux: a size whose geometry equals the
  // class above it joins that class. Then renumber smallest first.
  SizeClassTable t;
  for (int step = kSizeSteps - 1; step >= 0; --step) {
    const ClassGeometry g = BestGeometry((step + 1) * kClassStep);
    const ClassGeometry& last = t.classes[t.count > 0 ? t.count - 1 : 0];
    if (t.count == 0 || last.pages != g.pages || last.objects != g.objects) {
      t.classes[t.count++] = g;
    }
    t.class_of_step[step] = static_cast<uint8_t>(t.count - 1);
  }
  for (int i = 0, j = t.count - 1; i < j; ++i, --j) {
    const ClassGeometry swap = t.classes[i];
    t.classes[i] = t.classes[j];
    t.classes[j] = swap;
  }
  for (uint8_t& c : t.class_of_step) c = static_cast<uint8_t>(t.count - 1 - c);
  return t;
}

inline constexpr SizeClassTable kClasses = BuildSizeClassTable();
inline constexpr int kNumClasses = kClasses.count;

constexpr int MaxObjectsPerZspage() {
  int most = 0;
  for (int c = 0; c < kNumClasses; ++c) {
    most = std::max<int>(most, kClasses.classes[c].objects);
  }
  return most;
}

inline int ClassIndexOf(size_t size) {
  return kClasses.class_of_step[(size - 1) / kClassStep];
}

inline const ClassGeometry& GeometryOf(int size_class) {
  return kClasses.classes[size_class];
}

// ---------------------------------------------------------------------------
// Handle entry word of a stored object:
//   bit 0 set | slot in bits 1..11 | zspage base in bits 12..47 | class in
//   bits 48..55.
// Bit 0 clear means the entry is free (see HandleTable::Allocate).

constexpr uint64_t kStoredBit = 1;
constexpr uint64_t kBaseMask = 0x0000'FFFF'FFFF'F000;
constexpr int kSlotBits = 11;

static_assert(kNumClasses <= 256, "class index must fit in 8 bits");
static_assert(MaxObjectsPerZspage() < (1 << kSlotBits), "slot must fit");
static_assert(sizeof(Zspage) == 56, "zsmalloc.h documents the header size");

inline char* ZspageBase(const Zspage* z) {
  const ClassGeometry& g = GeometryOf(z->size_class);
  return const_cast<char*>(reinterpret_cast<const char*>(z)) + sizeof(Zspage) -
         g.pages * kPageSize;
}

inline uint32_t* ReverseMap(Zspage* z) {
  return reinterpret_cast<uint32_t*>(z) - GeometryOf(z->size_class).objects;
}

inline char* ObjectIn(Zspage* z, int slot) {
  return ZspageBase(z) + slot * GeometryOf(z->size_class).object_size;
}

inline uint64_t LocationOf(const Zspage* z, int slot) {
  return reinterpret_cast<uintptr_t>(ZspageBase(z)) |
         uint64_t{z->size_class} << 48 | uint64_t(slot) << 1 | kStoredBit;
}

inline int ClassOf(uint64_t location) {
  return static_cast<int>(location >> 48) & 0xff;
}
inline int SlotOf(uint64_t location) {
  return static_cast<int>(location >> 1) & ((1 << kSlotBits) - 1);
}

inline Zspage* ZspageOf(uint64_t location) {
  const ClassGeometry& g = GeometryOf(ClassOf(location));
  return reinterpret_cast<Zspage*>((location & kBaseMask) +
                                   g.pages * kPageSize - sizeof(Zspage));
}

inline char* ObjectAt(uint64_t location) {
  return reinterpret_cast<char*>(location & kBaseMask) +
         SlotOf(location) * GeometryOf(ClassOf(location)).object_size;
}

// ---------------------------------------------------------------------------
// Intrusive doubly linked lists of zspages, one set of links per list kind.

struct ZspageList {
  Zspage* head = nullptr;
  Zspage* tail = nullptr;
};

template <ZspageLinks Zspage::*kLinks>
inline void PushFront(ZspageList& list, Zspage* z) {
  z->*kLinks = {nullptr, list.head};
  (list.head != nullptr ? (list.head->*kLinks).prev : list.tail) = z;
  list.head = z;
}

template <ZspageLinks Zspage::*kLinks>
inline void Remove(ZspageList& list, Zspage* z) {
  ZspageLinks& links = z->*kLinks;
  (links.prev != nullptr ? (links.prev->*kLinks).next : list.head) = links.next;
  (links.next != nullptr ? (links.next->*kLinks).prev : list.tail) = links.prev;
  links = {};
}

}  // namespace coldheap::pool::zsmalloc_internal

#endif  // COLDHEAP_POOL_ZSMALLOC_ZSPAGE_H_
