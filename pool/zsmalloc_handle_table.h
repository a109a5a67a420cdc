// zsmalloc's handle table: the indirection that lets compaction move objects
// while callers keep their handles. Internal to the zsmalloc driver.
//
// A handle names one 8-byte entry; the pool stores the object's location in
// it. Entries live in handle pages (one page from the PageSource: a 32-byte
// header and 508 entries), found through a two-level directory:
//
//   index = page id (bits 9..25) | position in the page (bits 0..8)
//   root_[page id >> 9] -> directory page -> handle page -> entry
//
// so 2^17 handle pages (66M handles) with only the 2 KiB root fixed in the
// pool; directory pages (512 handle pages each) come and go with use.
// Positions 0..3 hold the page header, so index 0 is never an entry.
//
// Allocation is sharded: kShards shards, each with its own lock and its own
// handle pages, so threads storing into different size classes (the pool maps
// class -> shard) do not meet on one lock. A page is given back when its last
// entry is freed, unless it is its shard's only room (then it waits for
// ReleaseEmptyPages, so a store/free pair at a page boundary does not mmap
// and munmap a page each time). Creating and retiring pages (once per ~500
// handles, next to an mmap anyway) takes one pool-wide lock that guards the
// directory.
#ifndef COLDHEAP_POOL_ZSMALLOC_HANDLE_TABLE_H_
#define COLDHEAP_POOL_ZSMALLOC_HANDLE_TABLE_H_

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <optional>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "pool/page_source.h"

namespace coldheap::pool::zsmalloc_internal {

// The pool's account with its PageSource: every run taken or given back goes
// through here, so the pool's TotalSize() is exact.
class PageAccount {
 public:
  PageAccount(PageSource& source, size_t initial_pages)
      : source_(source), held_pages_(initial_pages) {}

  void* Map(size_t pages) {
    void* p = source_.MapPages(pages);
    if (p != nullptr) held_pages_.fetch_add(pages, std::memory_order_relaxed);
    return p;
  }
  void Unmap(void* start, size_t pages) {
    source_.UnmapPages(start, pages);
    held_pages_.fetch_sub(pages, std::memory_order_relaxed);
  }
  uint64_t held_pages() const {
    return held_pages_.load(std::memory_order_relaxed);
  }
  PageSource& source() const { return source_; }

 private:
  PageSource& source_;
  std::atomic<uint64_t> held_pages_;
};

class HandleTable {
 public:
  static constexpr int kShards = 8;

  explicit HandleTable(PageAccount& pages) : pages_(pages) {}
  HandleTable(const HandleTable&) = delete;
  HandleTable& operator=(const HandleTable&) = delete;
  // Gives every page back; all handles die with the table.
  ~HandleTable();

  // A free entry's index from `shard`; nullopt when out of memory. The
  // entry's word is the caller's until Release; the caller must keep bit 0
  // set in it (bit 0 clear marks entries on the free list).
  std::optional<uint32_t> Allocate(int shard);
  // Puts the entry back; returns the pages given back to the source.
  size_t Release(uint32_t index);
  // Gives back the empty pages Release keeps (at most one per shard);
  // returns how many pages went back.
  size_t ReleaseEmptyPages();

  // The entry `index` names, or nullptr when it names no entry of a live
  // handle page (a garbage handle).
  std::atomic<uint64_t>* Find(uint32_t index) const;

 private:
  static constexpr int kEntriesPerPage = kPageSize / sizeof(uint64_t);  // 512
  static constexpr int kHeaderEntries = 4;
  static constexpr int kPagesPerDirectory = kPageSize / sizeof(void*);  // 512
  static constexpr int kRootSlots = 256;

  struct HandlePage {
    HandlePage* prev;  // in the shard's list of pages with free entries
    HandlePage* next;
    uint32_t id;
    uint16_t used;
    uint16_t free_head;  // position of the first free entry; 0 = none
    uint8_t shard;
    std::atomic<uint64_t> entries[kEntriesPerPage - kHeaderEntries];
  };
  static_assert(sizeof(HandlePage) == kPageSize);

  struct DirectoryPage {
    std::atomic<HandlePage*> pages[kPagesPerDirectory];
  };
  static_assert(sizeof(DirectoryPage) == kPageSize);

  struct alignas(64) Shard {
    absl::Mutex mu;
    HandlePage* with_free ABSL_GUARDED_BY(mu) = nullptr;
  };

  HandlePage* NewPage(int shard);
  bool RegisterPage(HandlePage* page);
  size_t RetirePage(HandlePage* page);
  HandlePage* PageOf(uint32_t index) const;
  static std::atomic<uint64_t>& EntryAt(HandlePage* page, uint32_t pos);
  static void Unlink(HandlePage*& head, HandlePage* page);
  static void Push(HandlePage*& head, HandlePage* page);

  PageAccount& pages_;
  Shard shards_[kShards];
  absl::Mutex directory_mu_;
  // Written under directory_mu_; read without it for handles known live.
  std::atomic<DirectoryPage*> root_[kRootSlots] = {};
  uint16_t live_pages_[kRootSlots] ABSL_GUARDED_BY(directory_mu_) = {};
};

}  // namespace coldheap::pool::zsmalloc_internal

#endif  // COLDHEAP_POOL_ZSMALLOC_HANDLE_TABLE_H_
