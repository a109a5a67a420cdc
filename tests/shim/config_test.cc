// Tests of shim/config.h and shim/log.h: every COLDHEAP_* variable with good,
// bad and edge values, the exact stderr line for a bad value (DESIGN.md
// invariant 6), unknown variables, and that parsing and logging allocate
// nothing.
#include "shim/config.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <unistd.h>

#include <atomic>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <string>
#include <thread>
#include <type_traits>
#include <vector>

#include "gtest/gtest.h"
#include "shim/log.h"

// ---------------------------------------------------------------------------
// Counting allocations. Outside ASan (which owns malloc), this binary
// interposes the malloc family, forwarding to glibc's own allocator, and
// counts the calls made by a thread while it has counting on.
#if defined(__SANITIZE_ADDRESS__)
#define COLDHEAP_COUNTS_ALLOCATIONS 0
#else
#define COLDHEAP_COUNTS_ALLOCATIONS 1

namespace {
// Initial-exec TLS in the executable: reading these never allocates.
thread_local bool t_counting = false;
thread_local uint64_t t_allocations = 0;

void CountAllocation() {
  if (t_counting) ++t_allocations;
}
}  // namespace

extern "C" {
void* __libc_malloc(size_t size);
void* __libc_calloc(size_t count, size_t size);
void* __libc_realloc(void* pointer, size_t size);
void* __libc_memalign(size_t alignment, size_t size);
void __libc_free(void* pointer);

void* malloc(size_t size) noexcept {
  CountAllocation();
  return __libc_malloc(size);
}
void* calloc(size_t count, size_t size) noexcept {
  CountAllocation();
  return __libc_calloc(count, size);
}
void* realloc(void* pointer, size_t size) noexcept {
  CountAllocation();
  return __libc_realloc(pointer, size);
}
void* memalign(size_t alignment, size_t size) noexcept {
  CountAllocation();
  return __libc_memalign(alignment, size);
}
void* aligned_alloc(size_t alignment, size_t size) noexcept {
  CountAllocation();
  return __libc_memalign(alignment, size);
}
int posix_memalign(void** out, size_t alignment, size_t size) noexcept {
  CountAllocation();
  void* pointer = __libc_memalign(alignment, size);
  if (pointer == nullptr) return ENOMEM;
  *out = pointer;
  return 0;
}
void free(void* pointer) noexcept { __libc_free(pointer); }
}  // extern "C"
#endif

namespace coldheap::shim {
namespace {

static_assert(std::is_trivially_copyable_v<Config>);
static_assert(std::is_trivially_destructible_v<Config>);

// ---------------------------------------------------------------------------
// Helpers.

// Everything written to fd 2 between construction and Finish(). A thread
// drains the pipe, so writers never block on a full pipe.
class StderrCapture {
 public:
  StderrCapture() {
    fflush(stderr);
    int fds[2];
    EXPECT_EQ(pipe2(fds, O_CLOEXEC), 0);
    read_fd_ = fds[0];
    saved_fd_ = dup(STDERR_FILENO);
    EXPECT_GE(saved_fd_, 0);
    EXPECT_EQ(dup2(fds[1], STDERR_FILENO), STDERR_FILENO);
    close(fds[1]);  // fd 2 now holds the only write end
    reader_ = std::thread([this] {
      char buffer[4096];
      for (;;) {
        ssize_t n = read(read_fd_, buffer, sizeof(buffer));
        if (n > 0) {
          text_.append(buffer, static_cast<size_t>(n));
        } else if (n == 0 || errno != EINTR) {
          break;
        }
      }
    });
  }
  StderrCapture(const StderrCapture&) = delete;
  StderrCapture& operator=(const StderrCapture&) = delete;
  ~StderrCapture() { Finish(); }

  // Restores fd 2 and returns what was written.
  std::string Finish() {
    if (!finished_) {
      finished_ = true;
      dup2(saved_fd_, STDERR_FILENO);  // closes the last write end: EOF
      close(saved_fd_);
      reader_.join();
      close(read_fd_);
    }
    return text_;
  }

 private:
  int read_fd_ = -1;
  int saved_fd_ = -1;
  bool finished_ = false;
  std::thread reader_;
  std::string text_;
};

struct Parsed {
  Config config;
  std::string stderr_text;
};

// Parses an environment made of `entries` ("NAME=value"), capturing fd 2.
Parsed Parse(const std::vector<std::string>& entries) {
  std::vector<const char*> envp;
  for (const std::string& entry : entries) envp.push_back(entry.c_str());
  envp.push_back(nullptr);
  StderrCapture capture;
  Config config = ParseConfig(envp.data());
  return {config, capture.Finish()};
}

Parsed ParseOne(const std::string& name, const std::string& value) {
  return Parse({name + "=" + value});
}

void ExpectSameConfig(const Config& a, const Config& b) {
  EXPECT_EQ(a.enable, b.enable);
  EXPECT_EQ(a.cold_age_ms, b.cold_age_ms);
  EXPECT_EQ(a.scan_interval_ms, b.scan_interval_ms);
  EXPECT_EQ(a.target_kind, b.target_kind);
  EXPECT_EQ(a.target_bytes, b.target_bytes);
  EXPECT_EQ(a.target_heap_percent, b.target_heap_percent);
  EXPECT_EQ(a.max_pool_percent, b.max_pool_percent);
  EXPECT_EQ(a.accept_threshold_percent, b.accept_threshold_percent);
  EXPECT_EQ(a.zpool, b.zpool);
  EXPECT_EQ(a.compressor, b.compressor);
  EXPECT_EQ(a.region_size, b.region_size);
  EXPECT_EQ(a.stats, b.stats);
  EXPECT_STREQ(a.stats_path, b.stats_path);
  EXPECT_EQ(a.log_level, b.log_level);
  EXPECT_EQ(a.promotion_rate_ppm_per_minute, b.promotion_rate_ppm_per_minute);
  EXPECT_EQ(a.cpu_budget_ppm, b.cpu_budget_ppm);
  EXPECT_STREQ(a.writeback_file, b.writeback_file);
  EXPECT_EQ(a.fault_around_pages, b.fault_around_pages);
  EXPECT_EQ(a.evict_all_at_ms, b.evict_all_at_ms);
  EXPECT_EQ(a.stats_format, b.stats_format);
  EXPECT_EQ(a.stats_path_is_dir, b.stats_path_is_dir);
  EXPECT_EQ(a.dense, b.dense);
  EXPECT_EQ(a.dense_level, b.dense_level);
  EXPECT_EQ(a.dense_age_auto, b.dense_age_auto);
  EXPECT_EQ(a.dense_age_ms, b.dense_age_ms);
}

size_t CountLines(const std::string& text) {
  size_t lines = 0;
  for (char c : text) lines += c == '\n';
  return lines;
}

// Expects `value` for `name` to be rejected with one stderr line that names
// the variable, quotes the value and says the default is used; the setting
// must keep its default.
void ExpectRejected(const std::string& name, const std::string& value) {
  SCOPED_TRACE(name + "='" + value + "'");
  Parsed parsed = ParseOne(name, value);
  ExpectSameConfig(parsed.config, kDefaultConfig);
  EXPECT_EQ(CountLines(parsed.stderr_text), 1u) << parsed.stderr_text;
  EXPECT_EQ(parsed.stderr_text.rfind("coldheap: " + name + "='", 0), 0u)
      << parsed.stderr_text;
  EXPECT_NE(parsed.stderr_text.find("(accepted: "), std::string::npos);
  EXPECT_NE(parsed.stderr_text.find("; using the default "), std::string::npos);
}

// Expects `value` for `name` to be accepted silently.
Config ExpectAccepted(const std::string& name, const std::string& value) {
  SCOPED_TRACE(name + "='" + value + "'");
  Parsed parsed = ParseOne(name, value);
  EXPECT_EQ(parsed.stderr_text, "");
  return parsed.config;
}

constexpr uint64_t kKiB = uint64_t{1} << 10;
constexpr uint64_t kMiB = uint64_t{1} << 20;
constexpr uint64_t kGiB = uint64_t{1} << 30;
constexpr uint64_t kTiB = uint64_t{1} << 40;

// ---------------------------------------------------------------------------
// Defaults and the environment.

TEST(ConfigDefaults, MatchTheDocumentedTable) {
  const Config& c = kDefaultConfig;
  EXPECT_TRUE(c.enable);
  EXPECT_EQ(c.cold_age_ms, 30'000u);
  EXPECT_EQ(c.scan_interval_ms, 1'000u);
  EXPECT_EQ(c.target_kind, TargetKind::kNone);
  EXPECT_EQ(c.max_pool_percent, 50u);
  EXPECT_EQ(c.accept_threshold_percent, 90u);
  EXPECT_EQ(c.zpool, ZpoolKind::kZsmalloc);
  EXPECT_EQ(c.compressor, CompressorKind::kLz4);
  EXPECT_EQ(c.region_size, 64 * kGiB);
  EXPECT_EQ(c.stats, StatsDestination::kNone);
  EXPECT_STREQ(c.stats_path, "");
  EXPECT_EQ(c.log_level, LogLevel::kError);
  EXPECT_EQ(c.promotion_rate_ppm_per_minute, 2'000u);  // 0.2%
  EXPECT_EQ(c.cpu_budget_ppm, 20'000u);                // 2%
  EXPECT_FALSE(c.has_writeback_file());
  EXPECT_EQ(c.fault_around_pages, 0u);
  EXPECT_EQ(c.evict_all_at_ms, 0u);
  EXPECT_EQ(c.stats_format, StatsFormat::kText);
  EXPECT_FALSE(c.stats_path_is_dir);
  EXPECT_EQ(c.dense, DenseKind::kOff);
  EXPECT_EQ(c.dense_level, 3u);
  EXPECT_TRUE(c.dense_age_auto);
  EXPECT_EQ(c.dense_age_ms, 0u);
}

TEST(ConfigEnvironment, UnsetVariablesGiveDefaultsSilently) {
  Parsed parsed = Parse({"PATH=/usr/bin", "HOME=/root", "COLDHEAPX=1",
                         "coldheap_cold_age=5s", "MY_COLDHEAP_LOG=debug"});
  ExpectSameConfig(parsed.config, kDefaultConfig);
  EXPECT_EQ(parsed.stderr_text, "");
}

TEST(ConfigEnvironment, NullEnvironmentGivesDefaults) {
  StderrCapture capture;
  Config config = ParseConfig(nullptr);
  EXPECT_EQ(capture.Finish(), "");
  ExpectSameConfig(config, kDefaultConfig);
}

TEST(ConfigEnvironment, FirstOfDuplicateEntriesWinsAsWithGetenv) {
  Parsed parsed = Parse({"COLDHEAP_COLD_AGE=5s", "COLDHEAP_COLD_AGE=7s"});
  EXPECT_EQ(parsed.config.cold_age_ms, 5'000u);
  EXPECT_EQ(parsed.stderr_text, "");
}

TEST(ConfigEnvironment, PrefixOfAnotherNameIsNotAMatch) {
  // COLDHEAP_LOG must not be read from COLDHEAP_LOGX.
  Parsed parsed = Parse({"COLDHEAP_LOGX=off"});
  EXPECT_EQ(parsed.config.log_level, LogLevel::kError);
}

TEST(ConfigEnvironment, SpacesAroundValuesAreIgnored) {
  EXPECT_EQ(ExpectAccepted("COLDHEAP_COLD_AGE", " 30s ").cold_age_ms, 30'000u);
  EXPECT_EQ(ExpectAccepted("COLDHEAP_COLD_AGE", "\t2m").cold_age_ms, 120'000u);
  EXPECT_EQ(ExpectAccepted("COLDHEAP_ZPOOL", " zbud\t").zpool,
            ZpoolKind::kZbud);
  EXPECT_EQ(ExpectAccepted("COLDHEAP_TARGET", " 60% ").target_heap_percent,
            60u);
}

TEST(ConfigEnvironment, SpacesInsideValuesAreRejected) {
  ExpectRejected("COLDHEAP_COLD_AGE", "3 0s");
  ExpectRejected("COLDHEAP_COLD_AGE", "30 s");
  ExpectRejected("COLDHEAP_TARGET", "60 %");
  ExpectRejected("COLDHEAP_REGION_SIZE", "64 G");
}

TEST(ConfigEnvironment, SeveralBadValuesGiveOneLineEachAndKeepGoodOnes) {
  Parsed parsed =
      Parse({"COLDHEAP_COLD_AGE=30x", "COLDHEAP_SCAN_INTERVAL=250ms",
             "COLDHEAP_ZPOOL=z3fold", "COLDHEAP_FAULT_AROUND=16",
             "COLDHEAP_TARGET=lots"});
  EXPECT_EQ(CountLines(parsed.stderr_text), 3u) << parsed.stderr_text;
  EXPECT_EQ(parsed.config.cold_age_ms, kDefaultConfig.cold_age_ms);
  EXPECT_EQ(parsed.config.scan_interval_ms, 250u);
  EXPECT_EQ(parsed.config.zpool, ZpoolKind::kZsmalloc);
  EXPECT_EQ(parsed.config.fault_around_pages, 16u);
  EXPECT_EQ(parsed.config.target_kind, TargetKind::kNone);
}

// ---------------------------------------------------------------------------
// The exact message for a bad value.

TEST(ConfigMessages, BadColdAgeKeepsDefaultAndNamesVariable) {
  Parsed parsed = ParseOne("COLDHEAP_COLD_AGE", "30x");
  EXPECT_EQ(parsed.config.cold_age_ms, 30'000u);
  EXPECT_EQ(parsed.stderr_text,
            "coldheap: COLDHEAP_COLD_AGE='30x' is not a duration (accepted: "
            "0 or a number with ms, s or m up to 1440m, e.g. 500ms, 30s, "
            "2m); using the default 30s\n");
}

TEST(ConfigMessages, OutOfRangeValueSaysSo) {
  EXPECT_EQ(ParseOne("COLDHEAP_SCAN_INTERVAL", "0").stderr_text,
            "coldheap: COLDHEAP_SCAN_INTERVAL='0' is out of range (accepted: "
            "a number with ms, s or m from 1ms to 1440m, e.g. 500ms, 1s, "
            "2m); using the default 1s\n");
  EXPECT_EQ(ParseOne("COLDHEAP_MAX_POOL_PERCENT", "0").stderr_text,
            "coldheap: COLDHEAP_MAX_POOL_PERCENT='0' is out of range "
            "(accepted: an integer from 1 to 100); using the default 50\n");
  EXPECT_EQ(ParseOne("COLDHEAP_REGION_SIZE", "63M").stderr_text,
            "coldheap: COLDHEAP_REGION_SIZE='63M' is out of range (accepted: "
            "a size with an optional K, M, G or T from 64M to 64T, e.g. 64G); "
            "using the default 64G\n");
  EXPECT_EQ(ParseOne("COLDHEAP_CPU_BUDGET", "0").stderr_text,
            "coldheap: COLDHEAP_CPU_BUDGET='0' is out of range (accepted: a "
            "percentage of one core from 0.1 to 100 with at most 4 decimals, "
            "e.g. 2 or 0.5%); using the default 2%\n");
}

TEST(ConfigMessages, EmptyValueSaysItIsEmpty) {
  EXPECT_EQ(ParseOne("COLDHEAP_COMPRESSOR", "").stderr_text,
            "coldheap: COLDHEAP_COMPRESSOR='' is empty (accepted: lz4 or "
            "zstd); using the default lz4\n");
  EXPECT_EQ(ParseOne("COLDHEAP_COLD_AGE", "  ").stderr_text,
            "coldheap: COLDHEAP_COLD_AGE='  ' is empty (accepted: 0 or a "
            "number with ms, s or m up to 1440m, e.g. 500ms, 30s, 2m); using "
            "the default 30s\n");
}

TEST(ConfigMessages, EveryKindOfVariableNamesItsForm) {
  EXPECT_EQ(ParseOne("COLDHEAP_ENABLE", "maybe").stderr_text,
            "coldheap: COLDHEAP_ENABLE='maybe' is not a switch (accepted: 1, "
            "0, true, false, yes, no, on or off); using the default on\n");
  EXPECT_EQ(ParseOne("COLDHEAP_ZPOOL", "z3fold").stderr_text,
            "coldheap: COLDHEAP_ZPOOL='z3fold' is not a pool type (accepted: "
            "zsmalloc or zbud); using the default zsmalloc\n");
  EXPECT_EQ(ParseOne("COLDHEAP_TARGET", "lots").stderr_text,
            "coldheap: COLDHEAP_TARGET='lots' is not a size or a percentage "
            "(accepted: a size with an optional K, M, G or T, e.g. 512M, 4G, "
            "or a percentage of the heap from 1% to 100%, e.g. 60%); using "
            "the default none\n");
  EXPECT_EQ(ParseOne("COLDHEAP_LOG", "verbose").stderr_text,
            "coldheap: COLDHEAP_LOG='verbose' is not a log level (accepted: "
            "off, error, info or debug); using the default error\n");
  EXPECT_EQ(ParseOne("COLDHEAP_PROMOTION_RATE", "fast").stderr_text,
            "coldheap: COLDHEAP_PROMOTION_RATE='fast' is not a percentage "
            "(accepted: a percentage per minute from 0 to 100 with at most 4 "
            "decimals, e.g. 0.2 or 0.2%); using the default 0.2%\n");
  EXPECT_EQ(ParseOne("COLDHEAP_FAULT_AROUND", "65").stderr_text,
            "coldheap: COLDHEAP_FAULT_AROUND='65' is out of range (accepted: "
            "an integer from 0 to 64); using the default 0\n");
  EXPECT_EQ(ParseOne("COLDHEAP_ACCEPT_THRESHOLD_PERCENT", "101").stderr_text,
            "coldheap: COLDHEAP_ACCEPT_THRESHOLD_PERCENT='101' is out of "
            "range (accepted: an integer from 0 to 100); using the default "
            "90\n");
}

TEST(ConfigMessages, ValueIsQuotedAsGivenWithSurroundingSpaces) {
  EXPECT_EQ(ParseOne("COLDHEAP_ZPOOL", " z3fold ").stderr_text,
            "coldheap: COLDHEAP_ZPOOL=' z3fold ' is not a pool type "
            "(accepted: zsmalloc or zbud); using the default zsmalloc\n");
}

TEST(ConfigMessages, LongValueIsCutAfter64Bytes) {
  std::string value(1000, '9');
  value += "x";
  Parsed parsed = ParseOne("COLDHEAP_COLD_AGE", value);
  EXPECT_EQ(parsed.stderr_text,
            "coldheap: COLDHEAP_COLD_AGE='" + std::string(64, '9') +
                "...' is not a duration (accepted: 0 or a number with ms, s "
                "or m up to 1440m, e.g. 500ms, 30s, 2m); using the default "
                "30s\n");
}

TEST(ConfigMessages, ControlBytesAndQuotesInValueAreEscapedOnOneLine) {
  EXPECT_EQ(ParseOne("COLDHEAP_ZPOOL", "zs\nmal'lo\\c").stderr_text,
            "coldheap: COLDHEAP_ZPOOL='zs\\x0amal\\x27lo\\x5cc' is not a pool "
            "type (accepted: zsmalloc or zbud); using the default "
            "zsmalloc\n");
}

TEST(ConfigMessages, LogOffSilencesConfigurationProblems) {
  Parsed parsed = Parse(
      {"COLDHEAP_LOG=off", "COLDHEAP_COLD_AGE=30x", "COLDHEAP_COLDAGE=1s"});
  EXPECT_EQ(parsed.stderr_text, "");
  EXPECT_EQ(parsed.config.log_level, LogLevel::kOff);
  EXPECT_EQ(parsed.config.cold_age_ms, 30'000u);
}

TEST(ConfigMessages, LogIsReadFirstWhereverItIsInTheEnvironment) {
  Parsed parsed = Parse({"COLDHEAP_COLD_AGE=30x", "COLDHEAP_LOG=OFF"});
  EXPECT_EQ(parsed.stderr_text, "");
}

TEST(ConfigMessages, BadLogValueIsReportedAndOthersStillAre) {
  Parsed parsed = Parse({"COLDHEAP_LOG=loud", "COLDHEAP_COLD_AGE=30x"});
  EXPECT_EQ(parsed.config.log_level, LogLevel::kError);
  EXPECT_EQ(CountLines(parsed.stderr_text), 2u) << parsed.stderr_text;
}

// ---------------------------------------------------------------------------
// Unknown variables.

TEST(ConfigUnknown, TypoIsReportedWithTheClosestName) {
  Parsed parsed = Parse({"COLDHEAP_COLDAGE=30s"});
  EXPECT_EQ(parsed.stderr_text,
            "coldheap: COLDHEAP_COLDAGE is not a known variable; ignored "
            "(did you mean COLDHEAP_COLD_AGE?)\n");
  ExpectSameConfig(parsed.config, kDefaultConfig);
}

TEST(ConfigUnknown, WrongCaseIsReportedWithTheRightName) {
  EXPECT_EQ(Parse({"COLDHEAP_Zpool=zbud"}).stderr_text,
            "coldheap: COLDHEAP_Zpool is not a known variable; ignored "
            "(did you mean COLDHEAP_ZPOOL?)\n");
}

TEST(ConfigUnknown, FarNameIsReportedWithoutSuggestion) {
  EXPECT_EQ(Parse({"COLDHEAP_BANANA=1"}).stderr_text,
            "coldheap: COLDHEAP_BANANA is not a known variable; ignored\n");
}

TEST(ConfigUnknown, EachUnknownVariableGetsOneLine) {
  Parsed parsed = Parse(
      {"COLDHEAP_A=1", "COLDHEAP_COLD_AGE=5s", "COLDHEAP_B=2", "COLDHEAP_=3"});
  EXPECT_EQ(CountLines(parsed.stderr_text), 3u) << parsed.stderr_text;
  EXPECT_EQ(parsed.config.cold_age_ms, 5'000u);
}

TEST(ConfigUnknown, VeryLongUnknownNameIsCut) {
  std::string name = "COLDHEAP_" + std::string(500, 'Q');
  Parsed parsed = Parse({name + "=1"});
  EXPECT_EQ(parsed.stderr_text, "coldheap: " + name.substr(0, 64) +
                                    "... is not a known variable; ignored\n");
}

// ---------------------------------------------------------------------------
// COLDHEAP_ENABLE.

TEST(ConfigEnable, AcceptsEverySpellingInAnyCase) {
  for (const char* on : {"1", "true", "yes", "on", "TRUE", "Yes", "ON"}) {
    EXPECT_TRUE(ExpectAccepted("COLDHEAP_ENABLE", on).enable) << on;
  }
  for (const char* off : {"0", "false", "no", "off", "FALSE", "No", "Off"}) {
    EXPECT_FALSE(ExpectAccepted("COLDHEAP_ENABLE", off).enable) << off;
  }
}

TEST(ConfigEnable, RejectsOtherWords) {
  for (const char* bad : {"2", "enable", "y", "n", "", "-1", "on1", "o n"}) {
    ExpectRejected("COLDHEAP_ENABLE", bad);
  }
}

// ---------------------------------------------------------------------------
// Durations: COLDHEAP_COLD_AGE and COLDHEAP_SCAN_INTERVAL.

TEST(ConfigDuration, AcceptsMillisecondsSecondsAndMinutesInAnyCase) {
  struct Case {
    const char* text;
    uint64_t ms;
  };
  for (const Case& c :
       {Case{"500ms", 500}, Case{"30s", 30'000}, Case{"2m", 120'000},
        Case{"10MS", 10}, Case{"10Ms", 10}, Case{"3S", 3'000},
        Case{"2M", 120'000}, Case{"007s", 7'000}}) {
    EXPECT_EQ(ExpectAccepted("COLDHEAP_COLD_AGE", c.text).cold_age_ms, c.ms)
        << c.text;
  }
}

TEST(ConfigDuration, ColdAgeZeroIsAcceptedAsStressMode) {
  EXPECT_EQ(ExpectAccepted("COLDHEAP_COLD_AGE", "0").cold_age_ms, 0u);
  EXPECT_EQ(ExpectAccepted("COLDHEAP_COLD_AGE", "0s").cold_age_ms, 0u);
  EXPECT_EQ(ExpectAccepted("COLDHEAP_COLD_AGE", "0ms").cold_age_ms, 0u);
}

TEST(ConfigDuration, AcceptsUpToOneDay) {
  EXPECT_EQ(ExpectAccepted("COLDHEAP_COLD_AGE", "1440m").cold_age_ms,
            kMaxDurationMs);
  EXPECT_EQ(ExpectAccepted("COLDHEAP_COLD_AGE", "86400s").cold_age_ms,
            kMaxDurationMs);
  EXPECT_EQ(
      ExpectAccepted("COLDHEAP_SCAN_INTERVAL", "86400000ms").scan_interval_ms,
      kMaxDurationMs);
  ExpectRejected("COLDHEAP_COLD_AGE", "1441m");
  ExpectRejected("COLDHEAP_COLD_AGE", "86400001ms");
}

TEST(ConfigDuration, RequiresAUnitExceptForZero) {
  ExpectRejected("COLDHEAP_COLD_AGE", "30");
  ExpectRejected("COLDHEAP_SCAN_INTERVAL", "1");
}

TEST(ConfigDuration, RejectsMalformedValues) {
  for (const char* bad : {"", "s", "ms", "30x", "30sec", "30s5", "-5s", "+5s",
                          "1.5s", "5h", "5 s", "0x10s", "30ss", "m30"}) {
    ExpectRejected("COLDHEAP_COLD_AGE", bad);
  }
}

TEST(ConfigDuration, RejectsOverflow) {
  ExpectRejected("COLDHEAP_COLD_AGE", "99999999999999999999999s");
  ExpectRejected("COLDHEAP_COLD_AGE", "18446744073709551615m");  // * 60000
  ExpectRejected("COLDHEAP_COLD_AGE", "18446744073709551616ms");
}

TEST(ConfigDuration, ScanIntervalMustBePositive) {
  EXPECT_EQ(ExpectAccepted("COLDHEAP_SCAN_INTERVAL", "1ms").scan_interval_ms,
            1u);
  EXPECT_EQ(ExpectAccepted("COLDHEAP_SCAN_INTERVAL", "250ms").scan_interval_ms,
            250u);
  ExpectRejected("COLDHEAP_SCAN_INTERVAL", "0");
  ExpectRejected("COLDHEAP_SCAN_INTERVAL", "0ms");
  ExpectRejected("COLDHEAP_SCAN_INTERVAL", "0s");
}

// ---------------------------------------------------------------------------
// Sizes: COLDHEAP_TARGET and COLDHEAP_REGION_SIZE.

TEST(ConfigSize, AcceptsEveryUnitSpellingInAnyCase) {
  struct Case {
    const char* text;
    uint64_t bytes;
  };
  for (const Case& c :
       {Case{"1", 1}, Case{"1B", 1}, Case{"1b", 1}, Case{"1K", kKiB},
        Case{"1k", kKiB}, Case{"1KB", kKiB}, Case{"1kb", kKiB},
        Case{"1KiB", kKiB}, Case{"1kib", kKiB}, Case{"1KIB", kKiB},
        Case{"3M", 3 * kMiB}, Case{"3mb", 3 * kMiB}, Case{"3MiB", 3 * kMiB},
        Case{"5G", 5 * kGiB}, Case{"5gB", 5 * kGiB}, Case{"5GiB", 5 * kGiB},
        Case{"2T", 2 * kTiB}, Case{"2tib", 2 * kTiB}, Case{"4096", 4096}}) {
    Config config = ExpectAccepted("COLDHEAP_TARGET", c.text);
    EXPECT_EQ(config.target_kind, TargetKind::kBytes) << c.text;
    EXPECT_EQ(config.target_bytes, c.bytes) << c.text;
  }
}

TEST(ConfigSize, RejectsMalformedValues) {
  for (const char* bad : {"", "G", "1X", "1Ki", "1KBB", "1iB", "1.5G", "-1G",
                          "+1G", "1G2", "1 G", "0x10", "1e9", "1P", "1GiBs"}) {
    ExpectRejected("COLDHEAP_TARGET", bad);
  }
}

TEST(ConfigSize, RejectsOverflowAndAcceptsTheLargestValue) {
  EXPECT_EQ(
      ExpectAccepted("COLDHEAP_TARGET", "18446744073709551615").target_bytes,
      UINT64_MAX);
  EXPECT_EQ(ExpectAccepted("COLDHEAP_TARGET", "16777215T").target_bytes,
            16777215 * kTiB);
  ExpectRejected("COLDHEAP_TARGET", "18446744073709551616");
  ExpectRejected("COLDHEAP_TARGET", "16777216T");  // 2^64
  ExpectRejected("COLDHEAP_TARGET", "99999999999999999999999999G");
}

TEST(ConfigTarget, AcceptsAPercentageOfTheHeap) {
  Config config = ExpectAccepted("COLDHEAP_TARGET", "60%");
  EXPECT_EQ(config.target_kind, TargetKind::kHeapPercent);
  EXPECT_EQ(config.target_heap_percent, 60u);
  EXPECT_EQ(ExpectAccepted("COLDHEAP_TARGET", "1%").target_heap_percent, 1u);
  EXPECT_EQ(ExpectAccepted("COLDHEAP_TARGET", "100%").target_heap_percent,
            100u);
}

TEST(ConfigTarget, RejectsZeroAndBadPercentages) {
  for (const char* bad :
       {"0", "0G", "0%", "101%", "60.5%", "%", "-60%", "60%%", "60%G"}) {
    ExpectRejected("COLDHEAP_TARGET", bad);
  }
}

TEST(ConfigRegionSize, AcceptsFrom64MiBTo64TiB) {
  EXPECT_EQ(ExpectAccepted("COLDHEAP_REGION_SIZE", "64M").region_size,
            64 * kMiB);
  EXPECT_EQ(ExpectAccepted("COLDHEAP_REGION_SIZE", "64m").region_size,
            64 * kMiB);
  EXPECT_EQ(ExpectAccepted("COLDHEAP_REGION_SIZE", "1GiB").region_size, kGiB);
  EXPECT_EQ(ExpectAccepted("COLDHEAP_REGION_SIZE", "64T").region_size,
            64 * kTiB);
  ExpectRejected("COLDHEAP_REGION_SIZE", "63M");
  ExpectRejected("COLDHEAP_REGION_SIZE", "67108863");
  ExpectRejected("COLDHEAP_REGION_SIZE", "65T");
  ExpectRejected("COLDHEAP_REGION_SIZE", "70368744177665");  // 64T + 1
  ExpectRejected("COLDHEAP_REGION_SIZE", "0");
}

TEST(ConfigRegionSize, IsRoundedUpToAMultipleOf2MiB) {
  EXPECT_EQ(ExpectAccepted("COLDHEAP_REGION_SIZE", "65M").region_size,
            66 * kMiB);
  EXPECT_EQ(ExpectAccepted("COLDHEAP_REGION_SIZE", "67108865").region_size,
            66 * kMiB);
  EXPECT_EQ(ExpectAccepted("COLDHEAP_REGION_SIZE", "100001K").region_size,
            98 * kMiB);  // 97.66 MiB
  EXPECT_EQ(ExpectAccepted("COLDHEAP_REGION_SIZE", "66M").region_size,
            66 * kMiB);
}

// ---------------------------------------------------------------------------
// Integer percentages and counts.

TEST(ConfigPercent, MaxPoolPercentAcceptsOneToHundred) {
  EXPECT_EQ(ExpectAccepted("COLDHEAP_MAX_POOL_PERCENT", "1").max_pool_percent,
            1u);
  EXPECT_EQ(ExpectAccepted("COLDHEAP_MAX_POOL_PERCENT", "100").max_pool_percent,
            100u);
  EXPECT_EQ(ExpectAccepted("COLDHEAP_MAX_POOL_PERCENT", "50%").max_pool_percent,
            50u);
  for (const char* bad : {"0", "101", "", "abc", "-1", "+5", "5.5", "5%%", "%",
                          "99999999999999999999"}) {
    ExpectRejected("COLDHEAP_MAX_POOL_PERCENT", bad);
  }
}

TEST(ConfigPercent, AcceptThresholdAcceptsZeroToHundred) {
  EXPECT_EQ(ExpectAccepted("COLDHEAP_ACCEPT_THRESHOLD_PERCENT", "0")
                .accept_threshold_percent,
            0u);
  EXPECT_EQ(ExpectAccepted("COLDHEAP_ACCEPT_THRESHOLD_PERCENT", "100%")
                .accept_threshold_percent,
            100u);
  ExpectRejected("COLDHEAP_ACCEPT_THRESHOLD_PERCENT", "101");
  ExpectRejected("COLDHEAP_ACCEPT_THRESHOLD_PERCENT", "-0");
}

TEST(ConfigFaultAround, AcceptsZeroTo64Pages) {
  EXPECT_EQ(ExpectAccepted("COLDHEAP_FAULT_AROUND", "0").fault_around_pages,
            0u);
  EXPECT_EQ(ExpectAccepted("COLDHEAP_FAULT_AROUND", "64").fault_around_pages,
            64u);
  for (const char* bad : {"65", "8%", "", "eight", "-1", "8 pages"}) {
    ExpectRejected("COLDHEAP_FAULT_AROUND", bad);
  }
}

TEST(ConfigEvictAllAt, IsOffByDefaultAndTakesADuration) {
  EXPECT_EQ(kDefaultConfig.evict_all_at_ms, 0u);
  EXPECT_EQ(ExpectAccepted("COLDHEAP_EVICT_ALL_AT", "30s").evict_all_at_ms, 30'000u);
  EXPECT_EQ(ExpectAccepted("COLDHEAP_EVICT_ALL_AT", "0").evict_all_at_ms, 0u);
  for (const char* bad : {"30", "30x", "", "-1s", "1441m"}) {
    ExpectRejected("COLDHEAP_EVICT_ALL_AT", bad);
  }
}

// ---------------------------------------------------------------------------
// Decimal percentages: COLDHEAP_PROMOTION_RATE and COLDHEAP_CPU_BUDGET.

TEST(ConfigDecimalPercent, PromotionRateAcceptsDecimalsWithOrWithoutSign) {
  struct Case {
    const char* text;
    uint32_t ppm;
  };
  for (const Case& c : {Case{"0.2", 2'000}, Case{"0.2%", 2'000}, Case{"0", 0},
                        Case{"100", 1'000'000}, Case{"100.0000", 1'000'000},
                        Case{"0.0001", 1}, Case{"1.50000", 15'000},
                        Case{"12.3456", 123'456}, Case{"3%", 30'000}}) {
    EXPECT_EQ(ExpectAccepted("COLDHEAP_PROMOTION_RATE", c.text)
                  .promotion_rate_ppm_per_minute,
              c.ppm)
        << c.text;
  }
}

TEST(ConfigDecimalPercent, PromotionRateRejectsBadDecimals) {
  for (const char* bad :
       {"", "fast", ".5", "5.", "0.00001", "1e2", "-1", "+1", "0,2", "0.2%%",
        "%", "100.0001", "101", "99999999999999999999999", "0.2 %"}) {
    ExpectRejected("COLDHEAP_PROMOTION_RATE", bad);
  }
}

TEST(ConfigDecimalPercent, CpuBudgetAcceptsTenthOfAPercentToWholeCore) {
  EXPECT_EQ(ExpectAccepted("COLDHEAP_CPU_BUDGET", "2").cpu_budget_ppm, 20'000u);
  EXPECT_EQ(ExpectAccepted("COLDHEAP_CPU_BUDGET", "0.1").cpu_budget_ppm,
            1'000u);
  EXPECT_EQ(ExpectAccepted("COLDHEAP_CPU_BUDGET", "0.5%").cpu_budget_ppm,
            5'000u);
  EXPECT_EQ(ExpectAccepted("COLDHEAP_CPU_BUDGET", "100").cpu_budget_ppm,
            1'000'000u);
  for (const char* bad : {"0", "0.09", "0.0999", "100.5", "two"}) {
    ExpectRejected("COLDHEAP_CPU_BUDGET", bad);
  }
}

// ---------------------------------------------------------------------------
// Keywords: COLDHEAP_ZPOOL, COLDHEAP_COMPRESSOR, COLDHEAP_LOG.

TEST(ConfigKeyword, ZpoolAndCompressorAcceptTheirNamesInAnyCase) {
  EXPECT_EQ(ExpectAccepted("COLDHEAP_ZPOOL", "zbud").zpool, ZpoolKind::kZbud);
  EXPECT_EQ(ExpectAccepted("COLDHEAP_ZPOOL", "ZSMALLOC").zpool,
            ZpoolKind::kZsmalloc);
  EXPECT_EQ(ExpectAccepted("COLDHEAP_COMPRESSOR", "zstd").compressor,
            CompressorKind::kZstd);
  EXPECT_EQ(ExpectAccepted("COLDHEAP_COMPRESSOR", "LZ4").compressor,
            CompressorKind::kLz4);
  for (const char* bad : {"z3fold", "zs", "zbud2", ""}) {
    ExpectRejected("COLDHEAP_ZPOOL", bad);
  }
  for (const char* bad : {"gzip", "lz", "lz4hc", ""}) {
    ExpectRejected("COLDHEAP_COMPRESSOR", bad);
  }
}

TEST(ConfigKeyword, LogAcceptsEveryLevel) {
  EXPECT_EQ(ExpectAccepted("COLDHEAP_LOG", "off").log_level, LogLevel::kOff);
  EXPECT_EQ(ExpectAccepted("COLDHEAP_LOG", "error").log_level,
            LogLevel::kError);
  EXPECT_EQ(ExpectAccepted("COLDHEAP_LOG", "info").log_level, LogLevel::kInfo);
  EXPECT_EQ(ExpectAccepted("COLDHEAP_LOG", "DEBUG").log_level,
            LogLevel::kDebug);
  for (const char* bad : {"warn", "verbose", "2", ""}) {
    ExpectRejected("COLDHEAP_LOG", bad);
  }
}

// ---------------------------------------------------------------------------
// Paths: COLDHEAP_STATS and COLDHEAP_WRITEBACK_FILE.

TEST(ConfigStats, EmptyMeansNone) {
  Config config = ExpectAccepted("COLDHEAP_STATS", "");
  EXPECT_EQ(config.stats, StatsDestination::kNone);
  EXPECT_STREQ(config.stats_path, "");
}

TEST(ConfigStats, StderrIsAKeyword) {
  Config config = ExpectAccepted("COLDHEAP_STATS", "stderr");
  EXPECT_EQ(config.stats, StatsDestination::kStderr);
  EXPECT_STREQ(config.stats_path, "");
}

TEST(ConfigStats, AbsoluteAndRelativePathsAreKeptVerbatim) {
  Config absolute = ExpectAccepted("COLDHEAP_STATS", "/tmp/coldheap.stats");
  EXPECT_EQ(absolute.stats, StatsDestination::kFile);
  EXPECT_STREQ(absolute.stats_path, "/tmp/coldheap.stats");
  Config relative = ExpectAccepted("COLDHEAP_STATS", "out/stats.txt");
  EXPECT_STREQ(relative.stats_path, "out/stats.txt");
  Config spaced = ExpectAccepted("COLDHEAP_STATS", " stderr");
  EXPECT_EQ(spaced.stats, StatsDestination::kFile);
  EXPECT_STREQ(spaced.stats_path, " stderr");
}

TEST(ConfigStats, PathOf255BytesIsAcceptedAndLongerIsAnError) {
  std::string longest = "/" + std::string(kMaxPathLength - 1, 'a');
  Config config = ExpectAccepted("COLDHEAP_STATS", longest);
  EXPECT_EQ(config.stats, StatsDestination::kFile);
  EXPECT_EQ(std::string(config.stats_path), longest);

  std::string too_long = longest + "a";
  Parsed parsed = ParseOne("COLDHEAP_STATS", too_long);
  EXPECT_EQ(parsed.config.stats, StatsDestination::kNone);
  EXPECT_STREQ(parsed.config.stats_path, "");
  EXPECT_EQ(parsed.stderr_text,
            "coldheap: COLDHEAP_STATS='" + too_long.substr(0, 64) +
                "...' is too long (accepted: empty, stderr, a file path, or "
                "prometheus: and a file path or a directory ending in /, paths "
                "of at most 255 bytes); using the default none\n");
}

TEST(ConfigStats, PrometheusFileAndDirectory) {
  Config file = ExpectAccepted("COLDHEAP_STATS", "prometheus:/tmp/c.prom");
  EXPECT_EQ(file.stats, StatsDestination::kFile);
  EXPECT_EQ(file.stats_format, StatsFormat::kPrometheus);
  EXPECT_FALSE(file.stats_path_is_dir);
  EXPECT_STREQ(file.stats_path, "/tmp/c.prom");
  Config dir = ExpectAccepted("COLDHEAP_STATS", "prometheus:/var/lib/tc/");
  EXPECT_EQ(dir.stats, StatsDestination::kFile);
  EXPECT_EQ(dir.stats_format, StatsFormat::kPrometheus);
  EXPECT_TRUE(dir.stats_path_is_dir);
  EXPECT_STREQ(dir.stats_path, "/var/lib/tc/");
  Config relative = ExpectAccepted("COLDHEAP_STATS", "prometheus:out.prom");
  EXPECT_STREQ(relative.stats_path, "out.prom");
  // A plain path ending in '/' is still a text file path, as before.
  Config text = ExpectAccepted("COLDHEAP_STATS", "/tmp/x/");
  EXPECT_EQ(text.stats_format, StatsFormat::kText);
  EXPECT_FALSE(text.stats_path_is_dir);
}

TEST(ConfigStats, PrometheusNeedsAPathOfAtMost255Bytes) {
  EXPECT_EQ(ParseOne("COLDHEAP_STATS", "prometheus:").stderr_text,
            "coldheap: COLDHEAP_STATS='prometheus:' is not a stats "
            "destination (accepted: empty, stderr, a file path, or "
            "prometheus: and a file path or a directory ending in /, paths "
            "of at most 255 bytes); using the default none\n");
  ExpectRejected("COLDHEAP_STATS", "prometheus:stderr");
  std::string longest = "/" + std::string(kMaxPathLength - 1, 'p');
  EXPECT_EQ(std::string(ExpectAccepted("COLDHEAP_STATS",
                                       "prometheus:" + longest)
                            .stats_path),
            longest);
  ExpectRejected("COLDHEAP_STATS", "prometheus:" + longest + "p");
}

// ---------------------------------------------------------------------------
// COLDHEAP_DENSE and COLDHEAP_DENSE_AGE.

TEST(ConfigDense, OffByDefaultZstdKeepsLevel3AndLevelsGoFrom1To19) {
  EXPECT_EQ(kDefaultConfig.dense, DenseKind::kOff);
  EXPECT_EQ(ExpectAccepted("COLDHEAP_DENSE", "off").dense, DenseKind::kOff);
  Config zstd = ExpectAccepted("COLDHEAP_DENSE", "zstd");
  EXPECT_EQ(zstd.dense, DenseKind::kZstd);
  EXPECT_EQ(zstd.dense_level, 3u);
  Config nine = ExpectAccepted("COLDHEAP_DENSE", " ZSTD:9 ");
  EXPECT_EQ(nine.dense, DenseKind::kZstd);
  EXPECT_EQ(nine.dense_level, 9u);
  EXPECT_EQ(ExpectAccepted("COLDHEAP_DENSE", "zstd:1").dense_level, 1u);
  EXPECT_EQ(ExpectAccepted("COLDHEAP_DENSE", "zstd:19").dense_level, 19u);
}

TEST(ConfigDense, RejectsBadForms) {
  EXPECT_EQ(ParseOne("COLDHEAP_DENSE", "zstd:20").stderr_text,
            "coldheap: COLDHEAP_DENSE='zstd:20' is out of range (accepted: "
            "off, zstd or zstd:LEVEL with LEVEL from 1 to 19, e.g. zstd:9); "
            "using the default off\n");
  for (const char* bad :
       {"", "on", "lz4", "zstd:", "zstd:0", "zstd:-1", "zstd:+3", "zstd:3.5",
        "zstd: 3", "zstd:3x", "zstd9", "zstd::3", "zst",
        "zstd:99999999999999999999"}) {
    ExpectRejected("COLDHEAP_DENSE", bad);
  }
}

TEST(ConfigDenseAge, AutoByDefaultOrADurationFromZero) {
  EXPECT_TRUE(kDefaultConfig.dense_age_auto);
  EXPECT_TRUE(ExpectAccepted("COLDHEAP_DENSE_AGE", "AUTO").dense_age_auto);
  Config zero = ExpectAccepted("COLDHEAP_DENSE_AGE", "0");
  EXPECT_FALSE(zero.dense_age_auto);
  EXPECT_EQ(zero.dense_age_ms, 0u);
  Config ten = ExpectAccepted("COLDHEAP_DENSE_AGE", "10m");
  EXPECT_FALSE(ten.dense_age_auto);
  EXPECT_EQ(ten.dense_age_ms, 600'000u);
  for (const char* bad : {"", "automatic", "10", "-1s", "1441m", "10x"}) {
    ExpectRejected("COLDHEAP_DENSE_AGE", bad);
  }
  EXPECT_EQ(ParseOne("COLDHEAP_DENSE_AGE", "soon").stderr_text,
            "coldheap: COLDHEAP_DENSE_AGE='soon' is not a duration (accepted: "
            "auto or a number with ms, s or m up to 1440m, e.g. 10m; 0 = at "
            "the first scan); using the default auto\n");
}

TEST(ConfigWritebackFile, PathIsStoredAndEmptyMeansNone) {
  Config config = ExpectAccepted("COLDHEAP_WRITEBACK_FILE", "/var/tmp/swap");
  EXPECT_TRUE(config.has_writeback_file());
  EXPECT_STREQ(config.writeback_file, "/var/tmp/swap");
  EXPECT_FALSE(
      ExpectAccepted("COLDHEAP_WRITEBACK_FILE", "").has_writeback_file());
  ExpectRejected("COLDHEAP_WRITEBACK_FILE", std::string(300, 'w'));
}

// ---------------------------------------------------------------------------
// LoadConfig and LogConfig.

TEST(ConfigLoad, ReadsTheProcessEnvironmentAndSetsTheLogLevel) {
  ASSERT_EQ(setenv("COLDHEAP_COLD_AGE", "5s", 1), 0);
  ASSERT_EQ(setenv("COLDHEAP_LOG", "info", 1), 0);
  StderrCapture capture;
  Config config = LoadConfig();
  std::string text = capture.Finish();
  unsetenv("COLDHEAP_COLD_AGE");
  unsetenv("COLDHEAP_LOG");
  EXPECT_EQ(config.cold_age_ms, 5'000u);
  EXPECT_EQ(GetLogLevel(), LogLevel::kInfo);
  SetLogLevel(kDefaultLogLevel);
  // At info level, the configuration in effect: one line per variable.
  EXPECT_NE(text.find("coldheap: COLDHEAP_COLD_AGE=5s\n"), std::string::npos)
      << text;
  EXPECT_NE(text.find("coldheap: COLDHEAP_REGION_SIZE=64G\n"),
            std::string::npos);
  EXPECT_EQ(CountLines(text), 18u) << text;
}

TEST(ConfigLog, LoggedConfigurationParsesBackToItself) {
  Parsed parsed =
      Parse({"COLDHEAP_ENABLE=no", "COLDHEAP_COLD_AGE=1500ms",
             "COLDHEAP_SCAN_INTERVAL=2m", "COLDHEAP_TARGET=60%",
             "COLDHEAP_MAX_POOL_PERCENT=35", "COLDHEAP_ZPOOL=zbud",
             "COLDHEAP_COMPRESSOR=zstd", "COLDHEAP_REGION_SIZE=3000M",
             "COLDHEAP_STATS=stderr", "COLDHEAP_LOG=debug",
             "COLDHEAP_PROMOTION_RATE=0.0125", "COLDHEAP_CPU_BUDGET=7.5",
             "COLDHEAP_ACCEPT_THRESHOLD_PERCENT=0",
             "COLDHEAP_WRITEBACK_FILE=/tmp/wb", "COLDHEAP_FAULT_AROUND=0",
             "COLDHEAP_DENSE=zstd:7", "COLDHEAP_DENSE_AGE=90s"});
  ASSERT_EQ(parsed.stderr_text, "");
  SetLogLevel(LogLevel::kInfo);
  StderrCapture capture;
  LogConfig(parsed.config, LogLevel::kInfo);
  std::string text = capture.Finish();
  SetLogLevel(kDefaultLogLevel);

  std::vector<std::string> entries;
  size_t start = 0;
  for (size_t end; (end = text.find('\n', start)) != std::string::npos;
       start = end + 1) {
    std::string line = text.substr(start, end - start);
    ASSERT_EQ(line.rfind("coldheap: ", 0), 0u) << line;
    entries.push_back(line.substr(strlen("coldheap: ")));
  }
  EXPECT_EQ(entries.size(), 18u) << text;
  EXPECT_NE(text.find("COLDHEAP_DENSE=zstd:7\n"), std::string::npos);
  EXPECT_NE(text.find("COLDHEAP_PROMOTION_RATE=0.0125%\n"), std::string::npos);
  EXPECT_NE(text.find("COLDHEAP_CPU_BUDGET=7.5%\n"), std::string::npos);
  EXPECT_NE(text.find("COLDHEAP_REGION_SIZE=3000M\n"), std::string::npos);
  Parsed again = Parse(entries);
  EXPECT_EQ(again.stderr_text, "");
  ExpectSameConfig(again.config, parsed.config);
}

TEST(ConfigLog, DefaultConfigurationLogsNoneForUnsetOptions) {
  SetLogLevel(LogLevel::kInfo);
  StderrCapture capture;
  LogConfig(kDefaultConfig, LogLevel::kInfo);
  std::string text = capture.Finish();
  SetLogLevel(kDefaultLogLevel);
  EXPECT_NE(text.find("coldheap: COLDHEAP_TARGET=none\n"), std::string::npos);
  EXPECT_NE(text.find("coldheap: COLDHEAP_STATS=none\n"), std::string::npos);
  EXPECT_NE(text.find("coldheap: COLDHEAP_WRITEBACK_FILE=none\n"),
            std::string::npos);
  EXPECT_NE(text.find("coldheap: COLDHEAP_PROMOTION_RATE=0.2%\n"),
            std::string::npos);
  EXPECT_NE(text.find("coldheap: COLDHEAP_DENSE=off\n"), std::string::npos);
  EXPECT_NE(text.find("coldheap: COLDHEAP_DENSE_AGE=auto\n"),
            std::string::npos);
}

TEST(ConfigLog, PrometheusStatsAndDenseAgeParseBack) {
  for (const char* stats : {"prometheus:/tmp/tc/", "prometheus:a.prom"}) {
    Parsed parsed = Parse({std::string("COLDHEAP_STATS=") + stats,
                           "COLDHEAP_DENSE_AGE=0"});
    ASSERT_EQ(parsed.stderr_text, "");
    SetLogLevel(LogLevel::kInfo);
    StderrCapture capture;
    LogConfig(parsed.config, LogLevel::kInfo);
    std::string text = capture.Finish();
    SetLogLevel(kDefaultLogLevel);
    EXPECT_NE(text.find(std::string("coldheap: COLDHEAP_STATS=") + stats +
                        "\n"),
              std::string::npos)
        << text;
    EXPECT_NE(text.find("coldheap: COLDHEAP_DENSE_AGE=0\n"), std::string::npos)
        << text;
  }
}

TEST(ConfigLog, NothingIsLoggedBelowTheLevel) {
  StderrCapture capture;  // level is the default, error
  LogConfig(kDefaultConfig, LogLevel::kInfo);
  EXPECT_EQ(capture.Finish(), "");
}

// ---------------------------------------------------------------------------
// No allocation.

TEST(ConfigAllocation, ParsingAndLoggingAllocateNothing) {
#if COLDHEAP_COUNTS_ALLOCATIONS
  // Prove the counter works before trusting a zero from it.
  t_allocations = 0;
  t_counting = true;
  void* probe = malloc(16);
  t_counting = false;
  free(probe);
  ASSERT_EQ(t_allocations, 1u);

  std::string long_value(1000, 'x');
  std::string long_entry = "COLDHEAP_STATS=" + long_value;
  std::vector<const char*> envp = {"PATH=/usr/bin",
                                   "COLDHEAP_COLD_AGE=30x",
                                   "COLDHEAP_TARGET=60%",
                                   "COLDHEAP_REGION_SIZE=65M",
                                   "COLDHEAP_COLDAGE=1s",
                                   "COLDHEAP_PROMOTION_RATE=0.5",
                                   "COLDHEAP_ZPOOL=zbud",
                                   long_entry.c_str(),
                                   "COLDHEAP_WRITEBACK_FILE=/tmp/wb",
                                   "COLDHEAP_DENSE=zstd:x",
                                   "COLDHEAP_DENSE_AGE=auto",
                                   nullptr};
  SetLogLevel(LogLevel::kDebug);
  StderrCapture capture;
  t_allocations = 0;
  t_counting = true;
  Config config = ParseConfig(envp.data());
  LogConfig(config, LogLevel::kInfo);
  LogLine(LogLevel::kError, {"a ", "line"});
  LineWriter line;
  line.Append("n=").AppendUint(UINT64_MAX).AppendInt(INT64_MIN).Write();
  t_counting = false;
  std::string text = capture.Finish();
  SetLogLevel(kDefaultLogLevel);
  EXPECT_EQ(t_allocations, 0u);
  EXPECT_EQ(CountLines(text), 4u + 18u + 2u) << text;
#else
  GTEST_SKIP() << "ASan owns malloc; allocation counting needs a plain build";
#endif
}

// ---------------------------------------------------------------------------
// The logger.

TEST(LineWriter, FormatsNumbersByHand) {
  LineWriter line;
  line.AppendUint(0).Append(" ").AppendUint(UINT64_MAX).Append(" ");
  line.AppendInt(INT64_MIN).Append(" ").AppendInt(-1).Append(" ");
  line.AppendInt(INT64_MAX).Append(" ").AppendInt(0);
  EXPECT_EQ(std::string(line.line()),
            "coldheap: 0 18446744073709551615 -9223372036854775808 -1 "
            "9223372036854775807 0");
}

TEST(LineWriter, WritesOneLineWithThePrefixToFd2) {
  StderrCapture capture;
  LineWriter line;
  line.Append("hello ").AppendUint(42);
  line.Write();
  line.Append("again");  // a writer starts a new line after Write
  line.Write();
  EXPECT_EQ(capture.Finish(), "coldheap: hello 42\ncoldheap: again\n");
}

TEST(LineWriter, CutsLongLinesWithAnEllipsis) {
  StderrCapture capture;
  LineWriter line;
  line.Append(std::string(2 * LineWriter::kCapacity, 'x'));
  EXPECT_TRUE(line.truncated());
  line.Write();
  std::string text = capture.Finish();
  ASSERT_EQ(text.size(), LineWriter::kCapacity);
  EXPECT_EQ(text.substr(text.size() - 4), "...\n");
  EXPECT_EQ(text.rfind("coldheap: xxx", 0), 0u);
}

TEST(LineWriter, LineFillingTheBufferExactlyIsNotCut) {
  StderrCapture capture;
  LineWriter line;
  size_t room = LineWriter::kCapacity - 1 - LineWriter::kPrefix.size();
  line.Append(std::string(room, 'y'));
  EXPECT_FALSE(line.truncated());
  line.Write();
  std::string text = capture.Finish();
  EXPECT_EQ(text, "coldheap: " + std::string(room, 'y') + "\n");
}

TEST(LineWriter, WritePreservesErrno) {
  StderrCapture capture;
  errno = ENOENT;
  LineWriter line;
  line.Append("x").Write();
  EXPECT_EQ(errno, ENOENT);
}

TEST(LineWriter, LinesFromManyThreadsDoNotInterleave) {
  constexpr int kThreads = 4;
  constexpr int kLines = 500;
  StderrCapture capture;
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([t] {
      std::string payload(100, static_cast<char>('a' + t));
      for (int i = 0; i < kLines; ++i) {
        LineWriter line;
        line.Append(payload).Append(" ").AppendInt(i);
        line.Write();
      }
    });
  }
  for (std::thread& thread : threads) thread.join();
  std::string text = capture.Finish();
  EXPECT_EQ(CountLines(text), static_cast<size_t>(kThreads * kLines));
  size_t start = 0;
  for (size_t end; (end = text.find('\n', start)) != std::string::npos;
       start = end + 1) {
    std::string line = text.substr(start, end - start);
    ASSERT_EQ(line.rfind("coldheap: ", 0), 0u) << line;
    std::string body = line.substr(10, 100);
    ASSERT_EQ(body, std::string(100, body[0])) << line;
  }
}

TEST(Log, LevelsFilterLines) {
  StderrCapture capture;
  SetLogLevel(LogLevel::kOff);
  LogLine(LogLevel::kError, {"off-error"});
  SetLogLevel(LogLevel::kError);
  LogLine(LogLevel::kError, {"error-", "error"});
  LogLine(LogLevel::kInfo, {"error-info"});
  SetLogLevel(LogLevel::kInfo);
  LogLine(LogLevel::kInfo, {"info-info"});
  LogLine(LogLevel::kDebug, {"info-debug"});
  SetLogLevel(LogLevel::kDebug);
  LogLine(LogLevel::kDebug, {"debug-debug"});
  LogLine(LogLevel::kOff, {"never"});
  SetLogLevel(kDefaultLogLevel);
  EXPECT_EQ(capture.Finish(),
            "coldheap: error-error\ncoldheap: info-info\n"
            "coldheap: debug-debug\n");
}

TEST(Log, LevelNames) {
  EXPECT_EQ(LogLevelName(LogLevel::kOff), "off");
  EXPECT_EQ(LogLevelName(LogLevel::kError), "error");
  EXPECT_EQ(LogLevelName(LogLevel::kInfo), "info");
  EXPECT_EQ(LogLevelName(LogLevel::kDebug), "debug");
}

}  // namespace
}  // namespace coldheap::shim
