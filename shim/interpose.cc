// The malloc family. jemalloc, linked in statically, defines malloc, free,
// calloc, realloc, posix_memalign, aligned_alloc, memalign, valloc,
// malloc_usable_size, C++ new/delete and its own API (mallocx, mallctl,
// ...); exports.lds makes exactly those visible. This file adds the two that
// glibc would otherwise serve from its own heap, leaving the program with a
// pointer that jemalloc's free() does not know.
#include <errno.h>
#include <jemalloc/jemalloc.h>
#include <unistd.h>

#include <cstddef>

extern "C" {

__attribute__((visibility("default"))) void* reallocarray(void* ptr,
                                                          size_t count,
                                                          size_t size) {
  size_t bytes;
  if (__builtin_mul_overflow(count, size, &bytes)) {
    errno = ENOMEM;
    return nullptr;
  }
  return realloc(ptr, bytes);
}

__attribute__((visibility("default"))) void* pvalloc(size_t size) {
  size_t page = static_cast<size_t>(sysconf(_SC_PAGESIZE));
  size_t rounded = (size + page - 1) & ~(page - 1);
  if (rounded < size) {
    errno = ENOMEM;
    return nullptr;
  }
  return memalign(page, rounded == 0 ? page : rounded);
}

}  // extern "C"

// jemalloc's compiled-in options (its weak default is overridden here).
// oversize_threshold:0 turns off the dedicated arena for huge allocations,
// which jemalloc creates on demand with default hooks: outside the region.
// MALLOC_CONF from the environment still applies on top.
extern "C" {
const char* malloc_conf = "oversize_threshold:0";
}
