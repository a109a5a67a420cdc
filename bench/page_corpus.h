// Sample 4 KiB pages of the kinds a cold heap holds, and their LZ4-compressed
// images: what the pool benchmarks store. Nothing here is synthetic sizes;
// every object is the output of LZ4_compress_default on a real page.
//
//   text      English text from files every Debian 12 system has:
//             /usr/share/common-licenses/* (base-files) and
//             /usr/share/doc/*/copyright (kept even in minimal images).
//   json      a heap of JSON-like records (ids, names, e-mails, timestamps,
//             floats, tags, addresses) with varied field values.
//   pointers  arrays of real heap pointers: addresses malloc returned for a
//             sequence of small objects, with frees mixed in so that holes
//             are reused, as a std::vector<Node*> or an object graph holds.
//   mix       all of the above, interleaved.
#ifndef COLDHEAP_BENCH_PAGE_CORPUS_H_
#define COLDHEAP_BENCH_PAGE_CORPUS_H_

#include <array>
#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "pool/page_source.h"

namespace coldheap::bench {

using Page = std::array<unsigned char, pool::kPageSize>;

enum class PageKind { kText, kJson, kPointers, kMix };
inline constexpr PageKind kAllPageKinds[] = {
    PageKind::kText, PageKind::kJson, PageKind::kPointers, PageKind::kMix};
const char* PageKindName(PageKind kind);

// `count` pages of one kind (fewer for text if the files hold less).
// Deterministic for a given seed, except pointer values (ASLR).
std::vector<Page> TextPages(size_t count);
std::vector<Page> JsonPages(size_t count, uint64_t seed);
std::vector<Page> PointerPages(size_t count, uint64_t seed);

// Whether every 8-byte word of the page is the same (zswap's same-filled
// pages, stored as a value rather than in the pool).
bool IsSameFilled(const unsigned char* page);

// LZ4 of one page into `out` (resized to the compressed size). Returns false
// when the result does not fit in a pool object (a page that compresses that
// poorly is kept uncompressed by the caller).
bool CompressPage(const unsigned char* page, std::string& out);

// The LZ4 images of a set of pages, as a pool would be asked to store them.
struct CompressedObjects {
  std::vector<std::string> objects;  // those that fit in a pool object
  size_t pages = 0;                  // pages compressed
  size_t same_filled = 0;            // skipped: stored as a value
  size_t rejected = 0;               // skipped: compressed to > 1 page
  double MeanSize() const;
};
CompressedObjects CompressPages(const std::vector<Page>& pages);

// The compressed objects of each kind, built once (about 2048 pages each;
// kMix is the union of the others).
const CompressedObjects& CorpusObjects(PageKind kind);

// The pages behind CorpusObjects(kind), generated again (pointer pages hold
// fresh malloc addresses, so their values differ from the corpus's).
std::vector<Page> CorpusPages(PageKind kind);

// `count` pages of a kind, none of them among CorpusPages(kind): the text
// pages the corpus skips (evenly spread over them), json and pointer pages
// from other seeds, and for kMix those interleaved. What a compression
// dictionary is trained on before it is measured on the corpus.
std::vector<Page> TrainingPages(PageKind kind, size_t count);

}  // namespace coldheap::bench

#endif  // COLDHEAP_BENCH_PAGE_CORPUS_H_
