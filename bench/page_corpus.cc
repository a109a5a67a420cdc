#include "bench/page_corpus.h"

#include <lz4.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <random>

#include "pool/zpool.h"

namespace coldheap::bench {
namespace {

using pool::kPageSize;

// Pages of each kind behind CorpusObjects.
constexpr size_t kCorpusPages = 2048;
// Seeds of the corpus's generated pages, and of the training pages.
constexpr uint64_t kJsonSeed = 1, kPointerSeed = 2;
constexpr uint64_t kJsonTrainingSeed = 1001, kPointerTrainingSeed = 1002;

// Regular files directly in `dir` (or `dir/*/leaf` when leaf is given),
// sorted so the corpus is the same on every run.
std::vector<std::string> ListFiles(const std::string& dir,
                                   const std::string& leaf) {
  std::vector<std::string> files;
  std::error_code error;
  for (const auto& entry : std::filesystem::directory_iterator(dir, error)) {
    std::filesystem::path path = entry.path();
    if (!leaf.empty()) path /= leaf;
    if (std::filesystem::is_regular_file(path, error)) {
      files.push_back(path.string());
    }
  }
  std::sort(files.begin(), files.end());
  return files;
}

std::string ReadAll(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in),
                     std::istreambuf_iterator<char>());
}

// `count` pages spread evenly over `bytes` (all of them if there are fewer).
std::vector<Page> SpreadPages(const std::string& bytes, size_t count) {
  const size_t available = bytes.size() / kPageSize;
  const size_t n = std::min(count, available);
  std::vector<Page> pages(n);
  for (size_t i = 0; i < n; ++i) {
    const size_t index = i * available / n;
    memcpy(pages[i].data(), bytes.data() + index * kPageSize, kPageSize);
  }
  return pages;
}

// `count` pages spread evenly over those of `bytes` that SpreadPages(bytes,
// `skipped`) does not pick.
std::vector<Page> SpreadOtherPages(const std::string& bytes, size_t skipped,
                                   size_t count) {
  const size_t available = bytes.size() / kPageSize;
  const size_t n = std::min(skipped, available);
  std::vector<bool> picked(available);
  for (size_t i = 0; i < n; ++i) picked[i * available / n] = true;
  std::vector<size_t> others;
  for (size_t index = 0; index < available; ++index) {
    if (!picked[index]) others.push_back(index);
  }
  std::vector<Page> pages(std::min(count, others.size()));
  for (size_t i = 0; i < pages.size(); ++i) {
    const size_t index = others[i * others.size() / pages.size()];
    memcpy(pages[i].data(), bytes.data() + index * kPageSize, kPageSize);
  }
  return pages;
}

// The kinds' pages interleaved page by page, as the mix corpus is.
std::vector<Page> Interleave(const std::vector<Page> (&kinds)[3]) {
  std::vector<Page> pages;
  for (size_t i = 0;; ++i) {
    bool any = false;
    for (const std::vector<Page>& kind : kinds) {
      if (i < kind.size()) {
        pages.push_back(kind[i]);
        any = true;
      }
    }
    if (!any) return pages;
  }
}

// The text files the text pages are cut from, concatenated.
std::string TextStream() {
  std::string text;
  for (const std::string& file : ListFiles("/usr/share/common-licenses", "")) {
    text += ReadAll(file);
  }
  for (const std::string& file : ListFiles("/usr/share/doc", "copyright")) {
    text += ReadAll(file);
  }
  return text;
}

// Cuts a stream of bytes into whole pages.
std::vector<Page> CutPages(const std::string& stream, size_t count) {
  std::vector<Page> pages(std::min(count, stream.size() / kPageSize));
  for (size_t i = 0; i < pages.size(); ++i) {
    memcpy(pages[i].data(), stream.data() + i * kPageSize, kPageSize);
  }
  return pages;
}

template <size_t N>
const char* Pick(std::mt19937_64& rng, const char* const (&choices)[N]) {
  return choices[rng() % N];
}

// One JSON-like record, newline-terminated, as an application keeps in a
// heap of strings (a cache of API responses, a document store's buffers).
std::string JsonRecord(std::mt19937_64& rng, uint64_t id) {
  static constexpr const char* kFirst[] = {
      "james", "maria", "wei",  "fatima", "olga",  "john",  "aiko",  "carlos",
      "priya", "lucas", "emma", "noah",   "sofia", "ahmed", "anna",  "mateo",
      "chen",  "laura", "ivan", "zoe",    "omar",  "hana",  "pablo", "grace"};
  static constexpr const char* kLast[] = {
      "smith",  "garcia", "wang",    "kowalski", "mueller", "rossi",  "tanaka",
      "silva",  "nguyen", "johnson", "petrov",   "kim",     "dubois", "okafor",
      "jensen", "novak",  "haddad",  "oconnor",  "lopez",   "schmidt"};
  static constexpr const char* kDomains[] = {
      "example.org",       "mail.com",    "corp.example.net", "gmail.com",
      "uni-heidelberg.de", "fastmail.fm", "outlook.com",      "proton.me"};
  static constexpr const char* kCities[] = {
      "Lisbon", "Osaka",      "Toronto",      "Nairobi",   "Krakow", "Austin",
      "Lyon",   "Seoul",      "Porto Alegre", "Melbourne", "Bergen", "Pune",
      "Denver", "Valparaiso", "Tallinn",      "Cork"};
  static constexpr const char* kCountries[] = {"PT", "JP", "CA", "KE", "PL",
                                               "US", "FR", "KR", "BR", "AU",
                                               "NO", "IN", "CL", "EE", "IE"};
  static constexpr const char* kTags[] = {
      "beta",       "mobile",     "desktop", "premium", "trial",
      "churn-risk", "newsletter", "admin",   "api",     "eu",
      "verified",   "referral",   "legacy"};
  static constexpr const char* kPlans[] = {"free", "basic", "pro", "team",
                                           "enterprise"};
  static constexpr const char* kWords[] = {
      "please", "call",     "back",    "after",    "the",     "invoice",
      "was",    "sent",     "twice",   "customer", "asked",   "about",
      "refund", "shipping", "delayed", "address",  "updated", "prefers",
      "email",  "contact",  "on",      "weekdays"};

  std::string r;
  char buf[256];
  const char* first = Pick(rng, kFirst);
  const char* last = Pick(rng, kLast);
  snprintf(buf, sizeof(buf),
           "{\"id\":%llu,\"uuid\":\"%08llx-%04llx-4%03llx-%04llx-%012llx\",",
           static_cast<unsigned long long>(id),
           static_cast<unsigned long long>(rng() & 0xffffffff),
           static_cast<unsigned long long>(rng() & 0xffff),
           static_cast<unsigned long long>(rng() & 0xfff),
           static_cast<unsigned long long>(rng() & 0xffff),
           static_cast<unsigned long long>(rng() & 0xffffffffffff));
  r += buf;
  snprintf(buf, sizeof(buf),
           "\"user\":{\"name\":\"%s %s\",\"email\":\"%s.%s%u@%s\",\"age\":%u},",
           first, last, first, last, static_cast<unsigned>(rng() % 100),
           Pick(rng, kDomains), static_cast<unsigned>(18 + rng() % 70));
  r += buf;
  snprintf(buf, sizeof(buf),
           "\"created_at\":\"20%02u-%02u-%02uT%02u:%02u:%02u.%03uZ\","
           "\"country\":\"%s\",\"city\":\"%s\",",
           static_cast<unsigned>(15 + rng() % 10),
           static_cast<unsigned>(1 + rng() % 12),
           static_cast<unsigned>(1 + rng() % 28),
           static_cast<unsigned>(rng() % 24), static_cast<unsigned>(rng() % 60),
           static_cast<unsigned>(rng() % 60),
           static_cast<unsigned>(rng() % 1000), Pick(rng, kCountries),
           Pick(rng, kCities));
  r += buf;
  snprintf(
      buf, sizeof(buf),
      "\"score\":%.4f,\"active\":%s,\"plan\":\"%s\",\"visits\":%u,"
      "\"balance\":%.2f,\"ip\":\"%u.%u.%u.%u\",",
      std::uniform_real_distribution<double>(0, 100)(rng),
      rng() % 4 != 0 ? "true" : "false", Pick(rng, kPlans),
      static_cast<unsigned>(rng() % 5000),
      std::uniform_real_distribution<double>(-5000, 20000)(rng),
      static_cast<unsigned>(rng() % 256), static_cast<unsigned>(rng() % 256),
      static_cast<unsigned>(rng() % 256), static_cast<unsigned>(rng() % 256));
  r += buf;
  r += "\"tags\":[";
  for (int i = 0, n = static_cast<int>(rng() % 4); i < n; ++i) {
    r += i ? ",\"" : "\"";
    r += Pick(rng, kTags);
    r += "\"";
  }
  r += "]";
  if (rng() % 3 == 0) {  // an optional free-text field
    r += ",\"notes\":\"";
    for (int i = 0, n = 3 + static_cast<int>(rng() % 12); i < n; ++i) {
      if (i) r += ' ';
      r += Pick(rng, kWords);
    }
    r += "\"";
  }
  r += "}\n";
  return r;
}

}  // namespace

const char* PageKindName(PageKind kind) {
  switch (kind) {
    case PageKind::kText:
      return "text";
    case PageKind::kJson:
      return "json";
    case PageKind::kPointers:
      return "pointers";
    case PageKind::kMix:
      return "mix";
  }
  return "?";
}

std::vector<Page> TextPages(size_t count) {
  return SpreadPages(TextStream(), count);
}

std::vector<Page> JsonPages(size_t count, uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::string stream;
  for (uint64_t id = 100000 + rng() % 900000; stream.size() < count * kPageSize;
       id += 1 + rng() % 7) {
    stream += JsonRecord(rng, id);
  }
  return CutPages(stream, count);
}

std::vector<Page> PointerPages(size_t count, uint64_t seed) {
  // Object sizes of a typical C++ heap of small nodes and strings.
  static constexpr size_t kSizes[] = {16, 24, 24, 32, 32,  32, 48,
                                      48, 64, 64, 96, 128, 256};
  constexpr size_t kMaxLive = 64 * 1024;
  constexpr size_t kPointersPerPage = kPageSize / sizeof(void*);
  std::mt19937_64 rng(seed);
  std::vector<void*> live;
  std::vector<Page> pages(count);
  for (Page& page : pages) {
    void* pointers[kPointersPerPage];
    for (void*& p : pointers) {
      p = malloc(kSizes[rng() % std::size(kSizes)]);
      live.push_back(p);
    }
    memcpy(page.data(), pointers, kPageSize);
    if (live.size() > kMaxLive) {  // free a random 40%: holes get reused
      for (size_t i = 0; i < kMaxLive * 2 / 5; ++i) {
        const size_t victim = rng() % live.size();
        free(live[victim]);
        live[victim] = live.back();
        live.pop_back();
      }
    }
  }
  for (void* p : live) free(p);
  return pages;
}

bool IsSameFilled(const unsigned char* page) {
  uint64_t first;
  memcpy(&first, page, sizeof(first));
  for (size_t offset = sizeof(first); offset < kPageSize;
       offset += sizeof(first)) {
    uint64_t word;
    memcpy(&word, page + offset, sizeof(word));
    if (word != first) return false;
  }
  return true;
}

bool CompressPage(const unsigned char* page, std::string& out) {
  out.resize(LZ4_COMPRESSBOUND(kPageSize));
  const int size =
      LZ4_compress_default(reinterpret_cast<const char*>(page), out.data(),
                           kPageSize, static_cast<int>(out.size()));
  if (size <= 0 || static_cast<size_t>(size) > pool::kMaxObjectSize) {
    return false;
  }
  out.resize(size);
  return true;
}

double CompressedObjects::MeanSize() const {
  double sum = 0;
  for (const std::string& o : objects) sum += o.size();
  return objects.empty() ? 0 : sum / objects.size();
}

CompressedObjects CompressPages(const std::vector<Page>& pages) {
  CompressedObjects result;
  std::string compressed;
  for (const Page& page : pages) {
    ++result.pages;
    if (IsSameFilled(page.data())) {
      ++result.same_filled;
    } else if (!CompressPage(page.data(), compressed)) {
      ++result.rejected;
    } else {
      result.objects.push_back(compressed);
    }
  }
  return result;
}

const CompressedObjects& CorpusObjects(PageKind kind) {
  static const CompressedObjects* const corpora = [] {
    auto* c = new CompressedObjects[4];
    c[0] = CompressPages(TextPages(kCorpusPages));
    c[1] = CompressPages(JsonPages(kCorpusPages, kJsonSeed));
    c[2] = CompressPages(PointerPages(kCorpusPages, kPointerSeed));
    // The mix interleaves the three kinds object by object.
    CompressedObjects& mix = c[3];
    for (int k = 0; k < 3; ++k) {
      mix.pages += c[k].pages;
      mix.same_filled += c[k].same_filled;
      mix.rejected += c[k].rejected;
    }
    for (size_t i = 0;; ++i) {
      bool any = false;
      for (int k = 0; k < 3; ++k) {
        if (i < c[k].objects.size()) {
          mix.objects.push_back(c[k].objects[i]);
          any = true;
        }
      }
      if (!any) break;
    }
    return c;
  }();
  return corpora[static_cast<int>(kind)];
}

std::vector<Page> CorpusPages(PageKind kind) {
  switch (kind) {
    case PageKind::kText:
      return TextPages(kCorpusPages);
    case PageKind::kJson:
      return JsonPages(kCorpusPages, kJsonSeed);
    case PageKind::kPointers:
      return PointerPages(kCorpusPages, kPointerSeed);
    case PageKind::kMix:
      break;
  }
  const std::vector<Page> kinds[3] = {CorpusPages(PageKind::kText),
                                      CorpusPages(PageKind::kJson),
                                      CorpusPages(PageKind::kPointers)};
  return Interleave(kinds);
}

std::vector<Page> TrainingPages(PageKind kind, size_t count) {
  switch (kind) {
    case PageKind::kText:
      return SpreadOtherPages(TextStream(), kCorpusPages, count);
    case PageKind::kJson:
      return JsonPages(count, kJsonTrainingSeed);
    case PageKind::kPointers:
      return PointerPages(count, kPointerTrainingSeed);
    case PageKind::kMix:
      break;
  }
  const size_t each = (count + 2) / 3;
  const std::vector<Page> kinds[3] = {TrainingPages(PageKind::kText, each),
                                      TrainingPages(PageKind::kJson, each),
                                      TrainingPages(PageKind::kPointers, each)};
  std::vector<Page> pages = Interleave(kinds);
  if (pages.size() > count) pages.resize(count);
  return pages;
}

}  // namespace coldheap::bench
