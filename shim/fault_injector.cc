#include "shim/fault_injector.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <atomic>

namespace coldheap::os::fault_injection {
namespace {

constexpr char kVariable[] = "COLDHEAP_TEST_FAULT";
constexpr int kMaxRules = 8;
constexpr int kSites = static_cast<int>(Site::kCount);
// A fixed stride, so that a new site does not change which calls of the
// others a rate rule fails (the sweep's cases are chosen against those).
constexpr uint64_t kHashStride = 32;
static_assert(kSites <= static_cast<int>(kHashStride));
constexpr int kAnySite = -1;

enum class When : uint8_t { kNth, kFrom, kRate };

struct Rule {
  int site = kAnySite;
  int error = 0;
  When when = When::kNth;
  uint64_t n = 0;
};

struct State {
  Rule rules[kMaxRules];
  int count = 0;
};

State state;
// 0: not parsed, 1: parsing, 2: ready.
std::atomic<int> phase{0};
std::atomic<uint64_t> calls[kSites];
std::atomic<uint64_t> injected{0};

struct ErrnoName {
  const char* name;
  int value;
};

constexpr ErrnoName kErrnos[] = {
    {"ENOMEM", ENOMEM}, {"EAGAIN", EAGAIN}, {"EBUSY", EBUSY},
    {"EINTR", EINTR},   {"ENOSPC", ENOSPC}, {"EIO", EIO},
    {"EMFILE", EMFILE}, {"ENFILE", ENFILE}, {"EPERM", EPERM},
    {"EINVAL", EINVAL}, {"EFAULT", EFAULT}, {"ESRCH", ESRCH},
    {"ENOENT", ENOENT}, {"EEXIST", EEXIST}, {"EDQUOT", EDQUOT},
};

// [p, end) as an unsigned number; false if it is not one.
bool ParseNumber(const char* p, const char* end, uint64_t* out) {
  if (p == end) return false;
  uint64_t value = 0;
  for (; p < end; ++p) {
    if (*p < '0' || *p > '9') return false;
    value = value * 10 + static_cast<uint64_t>(*p - '0');
  }
  *out = value;
  return true;
}

bool ParseSite(const char* p, const char* end, int* site) {
  size_t len = static_cast<size_t>(end - p);
  if (len == 1 && *p == '*') {
    *site = kAnySite;
    return true;
  }
  for (int s = 0; s < kSites; ++s) {
    const char* name = SiteName(static_cast<Site>(s));
    if (strlen(name) == len && strncmp(name, p, len) == 0) {
      *site = s;
      return true;
    }
  }
  return false;
}

bool ParseErrno(const char* p, const char* end, int* error) {
  size_t len = static_cast<size_t>(end - p);
  for (const ErrnoName& e : kErrnos) {
    if (strlen(e.name) == len && strncmp(e.name, p, len) == 0) {
      *error = e.value;
      return true;
    }
  }
  uint64_t n;
  if (!ParseNumber(p, end, &n) || n == 0 || n > 4095) return false;
  *error = static_cast<int>(n);
  return true;
}

bool ParseWhen(const char* p, const char* end, Rule* rule) {
  if (end - p > 2 && p[0] == '1' && p[1] == '/') {
    rule->when = When::kRate;
    return ParseNumber(p + 2, end, &rule->n) && rule->n > 0;
  }
  rule->when = When::kNth;
  if (end > p && end[-1] == '+') {
    rule->when = When::kFrom;
    --end;
  }
  return ParseNumber(p, end, &rule->n) && rule->n > 0;
}

// One SITE:ERRNO:WHEN in [p, end).
bool ParseRule(const char* p, const char* end, Rule* rule) {
  const char* colon1 = static_cast<const char*>(memchr(p, ':', end - p));
  if (colon1 == nullptr) return false;
  const char* colon2 =
      static_cast<const char*>(memchr(colon1 + 1, ':', end - colon1 - 1));
  if (colon2 == nullptr) return false;
  return ParseSite(p, colon1, &rule->site) &&
         ParseErrno(colon1 + 1, colon2, &rule->error) &&
         ParseWhen(colon2 + 1, end, rule);
}

// A rule that does not parse is left out, and said so on stderr with one
// write(2): a test that injects nothing must not pass silently.
void Parse() {
  const char* text = getenv(kVariable);
  if (text == nullptr) return;
  while (*text != '\0' && state.count < kMaxRules) {
    const char* end = strchr(text, ';');
    if (end == nullptr) end = text + strlen(text);
    Rule rule;
    if (ParseRule(text, end, &rule)) {
      state.rules[state.count++] = rule;
    } else if (end > text) {
      static constexpr char kBad[] =
          "coldheap: COLDHEAP_TEST_FAULT: a rule is not SITE:ERRNO:N|N+|1/K; "
          "ignored\n";
      (void)!write(2, kBad, sizeof(kBad) - 1);
    }
    text = *end == ';' ? end + 1 : end;
  }
}

void EnsureParsed() {
  if (phase.load(std::memory_order_acquire) == 2) return;
  int expected = 0;
  if (phase.compare_exchange_strong(expected, 1, std::memory_order_acq_rel)) {
    Parse();
    phase.store(2, std::memory_order_release);
    return;
  }
  while (phase.load(std::memory_order_acquire) != 2) {
  }
}

// splitmix64: the same call of the same site draws the same number in every
// run.
uint64_t Mix(uint64_t x) {
  x += 0x9E3779B97F4A7C15ull;
  x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ull;
  x = (x ^ (x >> 27)) * 0x94D049BB133111EBull;
  return x ^ (x >> 31);
}

bool Fires(const Rule& rule, int site, uint64_t call) {
  if (rule.site != kAnySite && rule.site != site) return false;
  switch (rule.when) {
    case When::kNth:
      return call == rule.n;
    case When::kFrom:
      return call >= rule.n;
    case When::kRate:
      return Mix(call * kHashStride + static_cast<uint64_t>(site)) % rule.n == 0;
  }
  return false;
}

}  // namespace

int Check(Site site) {
  EnsureParsed();
  if (state.count == 0) return 0;
  const int s = static_cast<int>(site);
  const uint64_t call = calls[s].fetch_add(1, std::memory_order_relaxed) + 1;
  for (int i = 0; i < state.count; ++i) {
    if (Fires(state.rules[i], s, call)) {
      injected.fetch_add(1, std::memory_order_relaxed);
      return state.rules[i].error;
    }
  }
  return 0;
}

uint64_t InjectedCount() { return injected.load(std::memory_order_relaxed); }

}  // namespace coldheap::os::fault_injection
