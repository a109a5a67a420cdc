// zbud: see zbud.h for the page layout, the lists and the handle format.
#include "pool/zbud.h"

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <new>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"
#include "absl/synchronization/mutex.h"
#include "pool/debug_check.h"
#include "pool/page_source.h"
#include "pool/zpool.h"

namespace coldheap::pool {
namespace {

constexpr absl::string_view kZbudType = "zbud";
constexpr size_t kChunkSize = 64;
constexpr uint32_t kChunksPerPage = kPageSize / kChunkSize;
constexpr int kFirst = 0;  // buddy from the page's start
constexpr int kLast = 1;   // buddy ending at the page's end

uint8_t ChunksFor(size_t size) {
  return static_cast<uint8_t>((size + kChunkSize - 1) / kChunkSize);
}

struct PageHeader;

struct Links {
  PageHeader* prev = nullptr;
  PageHeader* next = nullptr;
};

// The out-of-line header of one data page. One cache line: threads working
// on different pages do not share lines.
struct alignas(64) PageHeader {
  char* page = nullptr;        // the data page; nullptr while unused
  Links placement;             // unbuddied[i] or buddied; free list if unused
  Links lru;                   // the pool's LRU, unless under reclaim
  uint32_t index = 0;          // position in the header table (for handles)
  uint16_t tag[2] = {0, 0};    // generation of each buddy slot
  uint8_t chunks[2] = {0, 0};  // chunks used by each buddy; 0 = empty slot
  bool under_reclaim = false;  // Shrink took it off the lists
};
static_assert(sizeof(PageHeader) == 64, "a header is one cache line");

bool IsEmpty(const PageHeader* h) {
  return h->chunks[kFirst] == 0 && h->chunks[kLast] == 0;
}

uint32_t FreeChunks(const PageHeader* h) {
  return kChunksPerPage - h->chunks[kFirst] - h->chunks[kLast];
}

// Handle layout (zbud.h): index + 1 in bits 63..32, tag in 16..1, buddy in 0.
struct HandleParts {
  uint32_t index;
  uint16_t tag;
  int buddy;
};

Handle MakeHandle(const PageHeader* h, int buddy) {
  return (uint64_t{h->index} + 1) << 32 | uint64_t{h->tag[buddy]} << 1 |
         static_cast<uint64_t>(buddy);
}

HandleParts DecodeHandle(Handle handle) {
  return {static_cast<uint32_t>((handle >> 32) - 1),
          static_cast<uint16_t>(handle >> 1), static_cast<int>(handle & 1)};
}

// An intrusive doubly linked list of headers through their `kLinks` member.
// Headers never move, so plain pointers are stable.
template <Links PageHeader::*kLinks>
class HeaderList {
 public:
  bool empty() const { return head_ == nullptr; }
  PageHeader* front() const { return head_; }
  PageHeader* back() const { return tail_; }

  void PushFront(PageHeader* h) {
    Links& links = h->*kLinks;
    links = Links{nullptr, head_};
    if (head_ != nullptr) {
      (head_->*kLinks).prev = h;
    } else {
      tail_ = h;
    }
    head_ = h;
  }

  void Remove(PageHeader* h) {
    Links& links = h->*kLinks;
    if (links.prev != nullptr) {
      (links.prev->*kLinks).next = links.next;
    } else {
      head_ = links.next;
    }
    if (links.next != nullptr) {
      (links.next->*kLinks).prev = links.prev;
    } else {
      tail_ = links.prev;
    }
    links = Links{};
  }

 private:
  PageHeader* head_ = nullptr;
  PageHeader* tail_ = nullptr;
};

// The pool's PageSource, counting what the pool holds so that TotalSize()
// is exact and needs no lock.
class CountedSource {
 public:
  CountedSource(PageSource& source, size_t held_pages)
      : source_(source), held_pages_(held_pages) {}

  void* Map(size_t pages) {
    void* start = source_.MapPages(pages);
    if (start != nullptr) held_pages_.fetch_add(pages, std::memory_order_relaxed);
    return start;
  }
  void Unmap(void* start, size_t pages) {
    source_.UnmapPages(start, pages);
    held_pages_.fetch_sub(pages, std::memory_order_relaxed);
  }
  uint64_t bytes() const {
    return held_pages_.load(std::memory_order_relaxed) * kPageSize;
  }
  PageSource& source() const { return source_; }

 private:
  PageSource& source_;
  std::atomic<uint64_t> held_pages_;
};

// Every page header, in blocks of 1, 2, 4, ... pages from the PageSource:
// block k holds kHeadersPerPage << k headers, starting at index
// kHeadersPerPage * (2^k - 1). Blocks never move, so a header can be found
// from its index without a lock; freed headers are reused (FIFO, so a stale
// handle's tag has many frees to go before it could match again).
// Mutated only under the pool lock.
class HeaderTable {
 public:
  static constexpr uint32_t kHeadersPerPage = kPageSize / sizeof(PageHeader);
  // 64 * (2^26 - 1) headers stay below 2^32 - 1 (index + 1 fits 32 bits):
  // 16 TiB of data pages.
  static constexpr int kMaxBlocks = 26;

  // The header at `index` < created(). Needs no lock: a block's pointer is
  // written once, before any handle into that block exists.
  PageHeader* At(uint32_t index) const {
    const uint64_t group = index / kHeadersPerPage + 1;
    const int block = 63 - __builtin_clzll(group);
    const uint64_t first = kHeadersPerPage * ((uint64_t{1} << block) - 1);
    return &blocks_[block][index - first];
  }

  // How many headers were ever handed out; handles index below this.
  uint32_t created() const { return created_.load(std::memory_order_acquire); }

  // A header for a new page, or nullptr when the source is out of memory.
  PageHeader* Acquire(CountedSource& source) {
    if (!free_.empty()) {
      PageHeader* h = free_.back();
      free_.Remove(h);
      return h;
    }
    const uint32_t index = created_.load(std::memory_order_relaxed);
    if (index == capacity_ && !Grow(source)) return nullptr;
    PageHeader* h = new (At(index)) PageHeader();
    h->index = index;
    created_.store(index + 1, std::memory_order_release);
    return h;
  }

  // Takes back the header of a page whose buddies are both free. The tags
  // stay: they keep counting across the header's lives.
  void Release(PageHeader* h) {
    h->page = nullptr;
    free_.PushFront(h);
  }

  void GiveBackAll(CountedSource& source) {
    for (int block = 0; block < num_blocks_; ++block) {
      source.Unmap(blocks_[block], size_t{1} << block);
    }
    num_blocks_ = 0;
  }

 private:
  bool Grow(CountedSource& source) {
    if (num_blocks_ == kMaxBlocks) return false;
    void* block = source.Map(size_t{1} << num_blocks_);
    if (block == nullptr) return false;
    blocks_[num_blocks_] = static_cast<PageHeader*>(block);
    capacity_ += uint64_t{kHeadersPerPage} << num_blocks_;
    ++num_blocks_;
    return true;
  }

  PageHeader* blocks_[kMaxBlocks] = {};
  int num_blocks_ = 0;
  uint64_t capacity_ = 0;
  std::atomic<uint32_t> created_{0};
  HeaderList<&PageHeader::placement> free_;
};

class ZbudPool final : public Zpool {
 public:
  // `name` is copied into the bytes right after the object, in the same
  // `self_pages` pages from the source.
  ZbudPool(absl::string_view name, const ZpoolOps& ops, PageSource& source,
           size_t self_pages)
      : ops_(ops), source_(source, self_pages), self_pages_(self_pages) {
    char* copy = reinterpret_cast<char*>(this + 1);
    memcpy(copy, name.data(), name.size());
    name_ = absl::string_view(copy, name.size());
  }

  absl::string_view type() const override { return kZbudType; }
  absl::string_view name() const override { return name_; }
  bool MallocSupportMovable() const override { return false; }
  absl::StatusOr<Handle> Malloc(size_t size) override;
  void Free(Handle handle) override;
  absl::StatusOr<size_t> Shrink(size_t pages) override;
  // Map takes no lock and objects never move: the caller may block.
  bool SleepMapped() const override { return true; }
  void* Map(Handle handle, MapMode mode) override;
  void Unmap(Handle handle) override { DebugCheckHandle(handle); }
  // Objects never move, so there is nothing to compact.
  size_t Compact() override { return 0; }
  uint64_t TotalSize() const override { return source_.bytes(); }
  size_t StoredSize(size_t size) const override {
    return size_t{ChunksFor(size)} * kChunkSize;
  }

  PageSource& page_source() const { return source_.source(); }
  size_t self_pages() const { return self_pages_; }
  // Gives back every data page and the header table; the caller then gives
  // back the pool object itself.
  void GiveBackAll();

 private:
  using PlacementList = HeaderList<&PageHeader::placement>;

  absl::Status OutOfMemory() const;
  const char* HandleError(Handle handle) const;
  void DebugCheckHandle(Handle handle) const;

  absl::StatusOr<Handle> StoreInNewPage(uint8_t chunks);
  PageHeader* TakeUnbuddiedLocked(uint8_t chunks)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  Handle StoreLocked(PageHeader* h, uint8_t chunks)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  char* FreeBuddyLocked(PageHeader* h, int buddy)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  char* ReleasePageLocked(PageHeader* h) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  PlacementList& PlacementLocked(const PageHeader* h)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  PageHeader* TakeLruTail();
  void EvictBuddy(PageHeader* h, int buddy);
  bool FinishReclaim(PageHeader* h);

  const ZpoolOps ops_;
  CountedSource source_;
  const size_t self_pages_;
  absl::string_view name_;

  absl::Mutex mu_;
  // Mutated under mu_, but read by Map without it (see HeaderTable::At), so
  // not annotated as guarded.
  HeaderTable headers_;
  PlacementList unbuddied_[kChunksPerPage] ABSL_GUARDED_BY(mu_);
  PlacementList buddied_ ABSL_GUARDED_BY(mu_);
  HeaderList<&PageHeader::lru> lru_ ABSL_GUARDED_BY(mu_);
  size_t data_pages_ ABSL_GUARDED_BY(mu_) = 0;
};

absl::Status ZbudPool::OutOfMemory() const {
  return absl::ResourceExhaustedError(absl::StrCat(
      "zbud pool '", name_, "': the page source is out of memory"));
}

// Why `handle` is not a live object of this pool, or nullptr if it is.
const char* ZbudPool::HandleError(Handle handle) const {
  const HandleParts parts = DecodeHandle(handle);
  if (handle == kNoHandle || parts.index >= headers_.created()) {
    return "zbud: foreign handle (not from this pool)";
  }
  const PageHeader* h = headers_.At(parts.index);
  if (h->page == nullptr || h->chunks[parts.buddy] == 0 ||
      h->tag[parts.buddy] != parts.tag) {
    return "zbud: double free or stale handle (object already freed)";
  }
  return nullptr;
}

void ZbudPool::DebugCheckHandle(Handle handle) const {
#ifndef NDEBUG
  if (const char* error = HandleError(handle)) DebugCheckFailed(error);
#else
  (void)handle;
#endif
}

absl::StatusOr<Handle> ZbudPool::Malloc(size_t size) {
  if (size == 0 || size > kMaxObjectSize) {
    return absl::InvalidArgumentError(
        absl::StrCat("zbud: cannot store an object of ", size,
                     " bytes; sizes are 1..", kMaxObjectSize));
  }
  const uint8_t chunks = ChunksFor(size);
  {
    absl::MutexLock lock(&mu_);
    if (PageHeader* h = TakeUnbuddiedLocked(chunks)) {
      return StoreLocked(h, chunks);
    }
  }
  return StoreInNewPage(chunks);
}

// Maps the data page without the lock, as Linux zbud does, so other threads
// keep going during the syscall. A page another thread freed up meanwhile is
// not looked for again: at worst one page is less full than it could be.
absl::StatusOr<Handle> ZbudPool::StoreInNewPage(uint8_t chunks) {
  void* page = source_.Map(1);
  if (page == nullptr) return OutOfMemory();
  {
    absl::MutexLock lock(&mu_);
    if (PageHeader* h = headers_.Acquire(source_)) {
      h->page = static_cast<char*>(page);
      ++data_pages_;
      return StoreLocked(h, chunks);
    }
  }
  source_.Unmap(page, 1);
  return OutOfMemory();
}

// The page with the fewest free chunks that still fits `chunks` (the first
// non-empty unbuddied list from `chunks` up), taken off its lists.
PageHeader* ZbudPool::TakeUnbuddiedLocked(uint8_t chunks) {
  for (uint32_t room = chunks; room < kChunksPerPage; ++room) {
    if (unbuddied_[room].empty()) continue;
    PageHeader* h = unbuddied_[room].front();
    unbuddied_[room].Remove(h);
    lru_.Remove(h);
    return h;
  }
  return nullptr;
}

// Stores into the empty buddy slot of `h`, which is on no list, and files
// the page as the most recently stored-into.
Handle ZbudPool::StoreLocked(PageHeader* h, uint8_t chunks) {
  const int buddy = h->chunks[kFirst] == 0 ? kFirst : kLast;
  h->chunks[buddy] = chunks;
  PlacementLocked(h).PushFront(h);
  lru_.PushFront(h);
  return MakeHandle(h, buddy);
}

ZbudPool::PlacementList& ZbudPool::PlacementLocked(const PageHeader* h) {
  const bool both = h->chunks[kFirst] != 0 && h->chunks[kLast] != 0;
  const uint32_t room = FreeChunks(h);
  return both || room == 0 ? buddied_ : unbuddied_[room];
}

void ZbudPool::Free(Handle handle) {
  char* page = nullptr;
  {
    absl::MutexLock lock(&mu_);
    if (const char* error = HandleError(handle)) {
      // Release builds ignore the bad free rather than corrupt the lists.
      ZPOOL_DCHECK(error == nullptr, error);
      return;
    }
    const HandleParts parts = DecodeHandle(handle);
    page = FreeBuddyLocked(headers_.At(parts.index), parts.buddy);
  }
  if (page != nullptr) source_.Unmap(page, 1);
}

// Empties one buddy slot. Returns the data page to give back to the source
// (outside the lock) when the page became empty, else nullptr. A page under
// reclaim is on no list; Shrink files or frees it when it is done.
char* ZbudPool::FreeBuddyLocked(PageHeader* h, int buddy) {
  if (!h->under_reclaim) PlacementLocked(h).Remove(h);
  h->chunks[buddy] = 0;
  ++h->tag[buddy];
  if (h->under_reclaim) return nullptr;
  if (!IsEmpty(h)) {
    PlacementLocked(h).PushFront(h);
    return nullptr;
  }
  lru_.Remove(h);
  return ReleasePageLocked(h);
}

char* ZbudPool::ReleasePageLocked(PageHeader* h) {
  char* page = h->page;
  headers_.Release(h);
  --data_pages_;
  return page;
}

void* ZbudPool::Map(Handle handle, MapMode /*mode*/) {
  DebugCheckHandle(handle);
  const HandleParts parts = DecodeHandle(handle);
  const PageHeader* h = headers_.At(parts.index);
  if (parts.buddy == kFirst) return h->page;
  return h->page + kPageSize - h->chunks[kLast] * kChunkSize;
}

absl::StatusOr<size_t> ZbudPool::Shrink(size_t pages) {
  if (ops_.evict == nullptr) {
    return absl::FailedPreconditionError(absl::StrCat(
        "zbud pool '", name_, "' has no evict callback, so it cannot shrink"));
  }
  size_t tries;
  {
    absl::MutexLock lock(&mu_);
    tries = data_pages_;
  }
  // Each page is tried about once per call: a page whose objects the
  // callback keeps goes back to the LRU head.
  size_t freed = 0;
  while (freed < pages && tries-- > 0) {
    PageHeader* h = TakeLruTail();
    if (h == nullptr) break;
    EvictBuddy(h, kFirst);
    EvictBuddy(h, kLast);
    if (FinishReclaim(h)) ++freed;
  }
  return freed;
}

// The least recently stored-into page, off all lists so that Malloc does not
// fill it and no other Shrink takes it; nullptr when the pool is empty.
PageHeader* ZbudPool::TakeLruTail() {
  absl::MutexLock lock(&mu_);
  PageHeader* h = lru_.back();
  if (h == nullptr) return nullptr;
  lru_.Remove(h);
  PlacementLocked(h).Remove(h);
  h->under_reclaim = true;
  return h;
}

// Writes one buddy back through the callback, with the pool lock released:
// the callback Maps the handle and may take locks of its own that are also
// held around Free.
void ZbudPool::EvictBuddy(PageHeader* h, int buddy) {
  Handle handle;
  {
    absl::MutexLock lock(&mu_);
    if (h->chunks[buddy] == 0) return;  // empty, or its owner freed it
    handle = MakeHandle(h, buddy);
  }
  if (!ops_.evict(ops_.context, *this, handle)) return;
  absl::MutexLock lock(&mu_);
  // The owner may have freed it while the callback ran: the tag tells.
  if (HandleError(handle) == nullptr) FreeBuddyLocked(h, buddy);
}

// Gives the page back if both buddies are gone; otherwise files it again,
// as the most recent, so the next try takes another page. True if freed.
bool ZbudPool::FinishReclaim(PageHeader* h) {
  char* page;
  {
    absl::MutexLock lock(&mu_);
    h->under_reclaim = false;
    if (!IsEmpty(h)) {
      PlacementLocked(h).PushFront(h);
      lru_.PushFront(h);
      return false;
    }
    page = ReleasePageLocked(h);
  }
  source_.Unmap(page, 1);
  return true;
}

void ZbudPool::GiveBackAll() {
  absl::MutexLock lock(&mu_);
  size_t pages = 0;
  while (PageHeader* h = lru_.back()) {
    lru_.Remove(h);
    source_.Unmap(h->page, 1);
    ++pages;
  }
  ZPOOL_DCHECK(pages == data_pages_, "zbud: pool destroyed during Shrink");
  headers_.GiveBackAll(source_);
}

class ZbudDriverImpl final : public ZpoolDriver {
 public:
  absl::string_view type() const override { return kZbudType; }

  absl::StatusOr<Zpool*> Create(absl::string_view name, const ZpoolOps& ops,
                                PageSource& pages) override {
    const size_t self_pages =
        (sizeof(ZbudPool) + name.size() + kPageSize - 1) / kPageSize;
    void* memory = pages.MapPages(self_pages);
    if (memory == nullptr) {
      return absl::ResourceExhaustedError(absl::StrCat(
          "zbud: the page source has no memory for pool '", name, "'"));
    }
    Zpool* pool = new (memory) ZbudPool(name, ops, pages, self_pages);
    return pool;
  }

  void Destroy(Zpool* pool) override {
    ZPOOL_DCHECK(pool->type() == kZbudType, "zbud: Destroy of a foreign pool");
    auto* zbud = static_cast<ZbudPool*>(pool);
    PageSource& source = zbud->page_source();
    const size_t self_pages = zbud->self_pages();
    zbud->GiveBackAll();
    zbud->~ZbudPool();
    source.UnmapPages(zbud, self_pages);
  }
};

}  // namespace

ZpoolDriver& ZbudDriver() {
  // Static storage, built on first use: no heap, no static constructor, and
  // never destroyed (pools may be used until the process's last instruction).
  alignas(ZbudDriverImpl) static unsigned char storage[sizeof(ZbudDriverImpl)];
  static ZpoolDriver* driver = new (storage) ZbudDriverImpl();
  return *driver;
}

}  // namespace coldheap::pool
