#include "pool/zsmalloc_handle_table.h"

#include <new>

namespace coldheap::pool::zsmalloc_internal {

HandleTable::~HandleTable() {
  for (std::atomic<DirectoryPage*>& slot : root_) {
    DirectoryPage* dir = slot.load(std::memory_order_relaxed);
    if (dir == nullptr) continue;
    for (std::atomic<HandlePage*>& page : dir->pages) {
      if (HandlePage* p = page.load(std::memory_order_relaxed))
        pages_.Unmap(p, 1);
    }
    pages_.Unmap(dir, 1);
  }
}

std::optional<uint32_t> HandleTable::Allocate(int shard) {
  Shard& s = shards_[shard];
  HandlePage* fresh = nullptr;
  for (;;) {
    {
      absl::MutexLock lock(&s.mu);
      if (fresh != nullptr) Push(s.with_free, fresh);
      if (HandlePage* page = s.with_free) {
        const uint16_t pos = page->free_head;
        page->free_head = static_cast<uint16_t>(
            EntryAt(page, pos).load(std::memory_order_relaxed) >> 1);
        if (++page->used == kEntriesPerPage - kHeaderEntries) {
          Unlink(s.with_free, page);
        }
        return page->id * kEntriesPerPage + pos;
      }
    }
    // The page is built without the shard lock: it takes an mmap and the
    // directory lock, and other threads may free entries meanwhile.
    fresh = NewPage(shard);
    if (fresh == nullptr) return std::nullopt;
  }
}

size_t HandleTable::Release(uint32_t index) {
  HandlePage* page = PageOf(index);
  Shard& s = shards_[page->shard];
  {
    absl::MutexLock lock(&s.mu);
    const uint16_t pos = index % kEntriesPerPage;
    EntryAt(page, pos).store(uint64_t{page->free_head} << 1,
                             std::memory_order_relaxed);
    page->free_head = pos;
    if (page->used-- == kEntriesPerPage - kHeaderEntries) {
      Push(s.with_free, page);
    }
    if (page->used > 0) return 0;
    // The shard's only room stays, so that allocating and freeing at a page
    // boundary does not map and unmap a page each time.
    if (s.with_free == page && page->next == nullptr) return 0;
    Unlink(s.with_free, page);
  }
  return RetirePage(page);
}

size_t HandleTable::ReleaseEmptyPages() {
  size_t freed = 0;
  for (Shard& s : shards_) {
    HandlePage* empty = nullptr;
    {
      absl::MutexLock lock(&s.mu);
      for (HandlePage* page = s.with_free; page != nullptr;) {
        HandlePage* next = page->next;
        if (page->used == 0) {
          Unlink(s.with_free, page);
          Push(empty, page);
        }
        page = next;
      }
    }
    while (HandlePage* page = empty) {
      empty = page->next;
      freed += RetirePage(page);
    }
  }
  return freed;
}

std::atomic<uint64_t>* HandleTable::Find(uint32_t index) const {
  const uint32_t root = index / (kEntriesPerPage * kPagesPerDirectory);
  const uint32_t pos = index % kEntriesPerPage;
  if (root >= kRootSlots || pos < kHeaderEntries) return nullptr;
  const DirectoryPage* dir = root_[root].load(std::memory_order_acquire);
  if (dir == nullptr) return nullptr;
  HandlePage* page =
      dir->pages[index / kEntriesPerPage % kPagesPerDirectory].load(
          std::memory_order_acquire);
  if (page == nullptr) return nullptr;
  return &EntryAt(page, pos);
}

HandleTable::HandlePage* HandleTable::NewPage(int shard) {
  void* memory = pages_.Map(1);
  if (memory == nullptr) return nullptr;
  auto* page = new (memory) HandlePage();
  page->shard = static_cast<uint8_t>(shard);
  page->free_head = kHeaderEntries;
  // Each free entry holds the position of the next; the last holds 0 (none).
  for (int pos = kHeaderEntries; pos + 1 < kEntriesPerPage; ++pos) {
    EntryAt(page, pos).store(uint64_t(pos + 1) << 1, std::memory_order_relaxed);
  }
  if (!RegisterPage(page)) {
    pages_.Unmap(page, 1);
    return nullptr;
  }
  return page;
}

bool HandleTable::RegisterPage(HandlePage* page) {
  // The lowest free id: live handle pages stay packed into few directory
  // pages, so directory pages empty out and go back when the pool shrinks.
  absl::MutexLock lock(&directory_mu_);
  for (int root = 0; root < kRootSlots; ++root) {
    if (live_pages_[root] == kPagesPerDirectory) continue;
    DirectoryPage* dir = root_[root].load(std::memory_order_relaxed);
    if (dir == nullptr) {
      void* memory = pages_.Map(1);
      if (memory == nullptr) return false;
      dir = new (memory) DirectoryPage();
      root_[root].store(dir, std::memory_order_release);
    }
    for (int slot = 0; slot < kPagesPerDirectory; ++slot) {
      if (dir->pages[slot].load(std::memory_order_relaxed) != nullptr) continue;
      page->id = root * kPagesPerDirectory + slot;
      dir->pages[slot].store(page, std::memory_order_release);
      ++live_pages_[root];
      return true;
    }
  }
  return false;
}

size_t HandleTable::RetirePage(HandlePage* page) {
  const uint32_t root = page->id / kPagesPerDirectory;
  DirectoryPage* empty_dir = nullptr;
  {
    absl::MutexLock lock(&directory_mu_);
    DirectoryPage* dir = root_[root].load(std::memory_order_relaxed);
    dir->pages[page->id % kPagesPerDirectory].store(nullptr,
                                                    std::memory_order_relaxed);
    if (--live_pages_[root] == 0) {
      root_[root].store(nullptr, std::memory_order_relaxed);
      empty_dir = dir;
    }
  }
  pages_.Unmap(page, 1);
  if (empty_dir == nullptr) return 1;
  pages_.Unmap(empty_dir, 1);
  return 2;
}

HandleTable::HandlePage* HandleTable::PageOf(uint32_t index) const {
  const DirectoryPage* dir =
      root_[index / (kEntriesPerPage * kPagesPerDirectory)].load(
          std::memory_order_acquire);
  return dir->pages[index / kEntriesPerPage % kPagesPerDirectory].load(
      std::memory_order_acquire);
}

std::atomic<uint64_t>& HandleTable::EntryAt(HandlePage* page, uint32_t pos) {
  return page->entries[pos % kEntriesPerPage - kHeaderEntries];
}

void HandleTable::Unlink(HandlePage*& head, HandlePage* page) {
  (page->prev != nullptr ? page->prev->next : head) = page->next;
  if (page->next != nullptr) page->next->prev = page->prev;
  page->prev = page->next = nullptr;
}

void HandleTable::Push(HandlePage*& head, HandlePage* page) {
  page->prev = nullptr;
  page->next = head;
  if (head != nullptr) head->prev = page;
  head = page;
}

}  // namespace coldheap::pool::zsmalloc_internal
