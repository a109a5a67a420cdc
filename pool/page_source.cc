#include "pool/page_source.h"

#include <sys/mman.h>

#include <new>

namespace coldheap::pool {
namespace {

// Each run is its own mapping: the kernel merges neighbouring anonymous
// mappings, and a freed run goes straight back to the OS.
class OsPages final : public PageSource {
 public:
  void* MapPages(size_t pages) override {
    void* p = mmap(nullptr, pages * kPageSize, PROT_READ | PROT_WRITE,
                   MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    return p == MAP_FAILED ? nullptr : p;
  }
  void UnmapPages(void* start, size_t pages) override {
    munmap(start, pages * kPageSize);
  }
};

}  // namespace

PageSource& OsPageSource() {
  // Constructed in static storage on first use: no heap, no static
  // constructor, and never destroyed (pools may outlive static destructors).
  alignas(OsPages) static unsigned char storage[sizeof(OsPages)];
  static PageSource* source = new (storage) OsPages();
  return *source;
}

}  // namespace coldheap::pool
