// The COLDHEAP_* parser: one parse and one print function per value form,
// templated on the Config field they read or write, a table naming them per
// variable, and the walk over the environment.
//
// Nothing here allocates, because it runs before malloc is ready: values stay
// string_views into the environment (or copies in fixed arrays), and every
// Abseil call used takes string_views and does integer math only. That holds
// for absl::ParseDuration too (absl/time/duration.cc: it walks the view with
// pointers and sums int64-scaled Durations). config_test counts allocations.
#include "shim/config.h"

#include <unistd.h>

#include <algorithm>
#include <cstring>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/strip.h"
#include "absl/time/time.h"

namespace coldheap::shim {
namespace {

using absl::string_view;

constexpr size_t kMaxQuotedValue = 64;  // bytes of a bad value quoted back
constexpr uint64_t kPpmPerPercent = 10'000;
constexpr size_t kMaxDecimals = 4;  // of a percentage: 0.0001% = 1 ppm
constexpr string_view kDigits = "0123456789";
constexpr string_view kPrometheus = "prometheus:";

// Why a value was rejected; kMalformed prints "is not <what>".
enum class Problem { kNone, kEmpty, kMalformed, kOutOfRange, kTooLong };

// Keywords, in the order of their enum's values.
constexpr string_view kSwitchNames[] = {"off",   "on",   "0",  "1",
                                        "false", "true", "no", "yes"};
constexpr string_view kZpoolNames[] = {"zsmalloc", "zbud"};
constexpr string_view kCompressorNames[] = {"lz4", "zstd"};
constexpr string_view kLogNames[] = {"off", "error", "info", "debug"};
constexpr string_view kDenseNames[] = {"off", "zstd"};

// Parsers write their field only when they return Problem::kNone.

bool IsDigits(string_view text) {
  return !text.empty() && text.find_first_not_of(kDigits) == text.npos;
}

// Digits only: absl::SimpleAtoi alone would also take signs and whitespace.
Problem ParseNumber(string_view text, uint64_t min, uint64_t max,
                    uint64_t& out) {
  if (text.empty()) return Problem::kEmpty;
  if (!IsDigits(text)) return Problem::kMalformed;
  if (!absl::SimpleAtoi(text, &out) || out < min || out > max) {
    return Problem::kOutOfRange;
  }
  return Problem::kNone;
}

// An integer, with an optional % after it if kPercent.
template <auto kField, uint64_t kMin, uint64_t kMax, bool kPercent>
Problem ParseInteger(string_view text, Config& c) {
  uint64_t value = 0;
  Problem problem = ParseNumber(kPercent ? absl::StripSuffix(text, "%") : text,
                                kMin, kMax, value);
  if (problem == Problem::kNone) c.*kField = static_cast<uint32_t>(value);
  return problem;
}

// absl::ParseDuration's syntax, with units in any case, but no sign, no
// precision past a millisecond, and at most kMaxDurationMs.
template <auto kField, uint64_t kMinMs>
Problem ParseDuration(string_view text, Config& c) {
  char lower[kMaxQuotedValue];
  absl::Duration d;
  if (text.empty()) return Problem::kEmpty;
  if (text.size() > sizeof(lower) || text[0] == '+' || text[0] == '-') {
    return Problem::kMalformed;
  }
  for (size_t i = 0; i < text.size(); ++i) {
    lower[i] = absl::ascii_tolower(text[i]);
  }
  if (!absl::ParseDuration(string_view(lower, text.size()), &d)) {
    return Problem::kMalformed;
  }
  if (d < absl::Milliseconds(kMinMs) ||
      d > absl::Milliseconds(kMaxDurationMs)) {
    return Problem::kOutOfRange;
  }
  if (d % absl::Milliseconds(1) != absl::ZeroDuration()) {
    return Problem::kMalformed;
  }
  c.*kField = static_cast<uint64_t>(absl::ToInt64Milliseconds(d));
  return Problem::kNone;
}

// The shift of a size unit: "", B, or K, M, G, T alone or with B or iB.
bool SizeShift(string_view unit, unsigned& shift) {
  constexpr string_view kPrefixes = "kmgt";
  size_t prefix = unit.empty() ? kPrefixes.npos
                               : kPrefixes.find(absl::ascii_tolower(unit[0]));
  shift = prefix == kPrefixes.npos ? 0 : 10 * static_cast<unsigned>(prefix + 1);
  if (shift != 0) unit.remove_prefix(1);
  if (shift != 0 && absl::EqualsIgnoreCase(unit, "ib")) return true;
  return unit.empty() || absl::EqualsIgnoreCase(unit, "b");
}

template <auto kField, uint64_t kMin, uint64_t kMax>
Problem ParseSize(string_view text, Config& c) {
  string_view digits = text.substr(0, text.find_first_not_of(kDigits));
  unsigned shift = 0;
  uint64_t value = 0;
  if (!SizeShift(text.substr(digits.size()), shift)) return Problem::kMalformed;
  Problem problem = ParseNumber(digits, 0, UINT64_MAX >> shift, value);
  if (problem != Problem::kNone) return problem;
  if ((value << shift) < kMin || (value << shift) > kMax) {
    return Problem::kOutOfRange;
  }
  c.*kField = value << shift;
  return Problem::kNone;
}

// A decimal percentage ("0.2", "0.2%", "2") in ppm.
template <auto kField, uint64_t kMinPpm, uint64_t kMaxPpm>
Problem ParsePpm(string_view text, Config& c) {
  if (text.empty()) return Problem::kEmpty;
  absl::ConsumeSuffix(&text, "%");
  string_view whole = text.substr(0, text.find('.'));
  string_view decimals =
      whole.size() < text.size() ? text.substr(whole.size() + 1) : "0";
  uint64_t ppm = 0;
  if (whole.empty() || !IsDigits(decimals) ||
      decimals.find_first_not_of('0', kMaxDecimals) != decimals.npos) {
    return Problem::kMalformed;
  }
  Problem problem = ParseNumber(whole, 0, kMaxPpm / kPpmPerPercent, ppm);
  if (problem != Problem::kNone) return problem;
  for (size_t i = 0; i < kMaxDecimals; ++i) {
    ppm = ppm * 10 + (i < decimals.size() ? decimals[i] - '0' : 0);
  }
  if (ppm < kMinPpm || ppm > kMaxPpm) return Problem::kOutOfRange;
  c.*kField = static_cast<uint32_t>(ppm);
  return Problem::kNone;
}

template <auto kField>
Problem ParsePath(string_view text, Config& c) {
  if (text.size() > kMaxPathLength) return Problem::kTooLong;
  memcpy(c.*kField, text.data(), text.size());
  (c.*kField)[text.size()] = '\0';
  return Problem::kNone;
}

// One of kNames, in any case. The field is its index modulo kValues, so that
// several spellings can share a value.
template <auto kField, auto& kNames, size_t kValues = std::size(kNames)>
Problem ParseKeyword(string_view text, Config& c) {
  if (text.empty()) return Problem::kEmpty;
  for (size_t i = 0; i < std::size(kNames); ++i) {
    if (absl::EqualsIgnoreCase(text, kNames[i])) {
      c.*kField = static_cast<std::remove_reference_t<decltype(c.*kField)>>(
          i % kValues);
      return Problem::kNone;
    }
  }
  return Problem::kMalformed;
}

// The target is a size or, with %, a percentage of the heap.
Problem ParseTarget(string_view text, Config& c) {
  bool percent = absl::EndsWith(text, "%");
  Problem problem =
      percent
          ? ParseInteger<&Config::target_heap_percent, 1, 100, true>(text, c)
          : ParseSize<&Config::target_bytes, 1, UINT64_MAX>(text, c);
  if (problem != Problem::kNone) return problem;
  c.target_kind = percent ? TargetKind::kHeapPercent : TargetKind::kBytes;
  return problem;
}

// "", stderr, PATH or prometheus:PATH (a directory if it ends with '/').
// prometheus:stderr is refused: a file so named is ./stderr.
Problem ParseStats(string_view text, Config& c) {
  bool prometheus = absl::ConsumePrefix(&text, kPrometheus);
  if (prometheus && (text.empty() || text == "stderr")) {
    return Problem::kMalformed;
  }
  bool to_stderr = !prometheus && text == "stderr";
  Problem problem = ParsePath<&Config::stats_path>(to_stderr ? "" : text, c);
  if (problem != Problem::kNone) return problem;
  c.stats = to_stderr      ? StatsDestination::kStderr
            : text.empty() ? StatsDestination::kNone
                           : StatsDestination::kFile;
  c.stats_format = prometheus ? StatsFormat::kPrometheus : StatsFormat::kText;
  c.stats_path_is_dir = prometheus && text.back() == '/';
  return Problem::kNone;
}

// off, zstd (at the default level) or zstd:LEVEL.
Problem ParseDense(string_view text, Config& c) {
  if (!absl::StartsWithIgnoreCase(text, "zstd:")) {
    return ParseKeyword<&Config::dense, kDenseNames>(text, c);
  }
  Problem problem =
      ParseInteger<&Config::dense_level, kMinDenseLevel, kMaxDenseLevel, false>(
          text.substr(5), c);
  if (problem == Problem::kNone) c.dense = DenseKind::kZstd;
  return problem;
}

// auto, or a duration.
Problem ParseDenseAge(string_view text, Config& c) {
  bool is_auto = absl::EqualsIgnoreCase(text, "auto");
  Problem problem = is_auto ? Problem::kNone
                            : ParseDuration<&Config::dense_age_ms, 0>(text, c);
  if (problem == Problem::kNone) c.dense_age_auto = is_auto;
  return problem;
}

// Printers, the inverse of the parsers: for LogConfig and for the defaults
// quoted in messages.

template <auto kField>
void PrintUint(LineWriter& line, const Config& c) {
  line.AppendUint(c.*kField);
}

// A number and the largest unit that divides it exactly.
void PrintScaled(
    LineWriter& line, uint64_t value,
    std::initializer_list<std::pair<uint64_t, string_view>> units) {
  for (const auto& [scale, unit] : units) {
    if (value != 0 && value % scale == 0) {
      line.AppendUint(value / scale).Append(unit);
      return;
    }
  }
  line.AppendUint(value);
}

template <auto kField>
void PrintDuration(LineWriter& line, const Config& c) {
  PrintScaled(line, c.*kField,
              {{3'600'000, "h"}, {60'000, "m"}, {1'000, "s"}, {1, "ms"}});
}

template <auto kField>
void PrintSize(LineWriter& line, const Config& c) {
  PrintScaled(line, c.*kField,
              {{uint64_t{1} << 40, "T"},
               {1 << 30, "G"},
               {1 << 20, "M"},
               {1 << 10, "K"}});
}

template <auto kField>
void PrintPpm(LineWriter& line, const Config& c) {
  char decimals[kMaxDecimals + 1] = {'.'};
  size_t n = 0;
  for (uint64_t rest = c.*kField % kPpmPerPercent, scale = kPpmPerPercent / 10;
       rest != 0; rest %= scale, scale /= 10) {
    decimals[++n] = static_cast<char>('0' + rest / scale);
  }
  line.AppendUint(c.*kField / kPpmPerPercent);
  line.Append(string_view(decimals, n == 0 ? 0 : n + 1)).Append("%");
}

template <auto kField>
void PrintPath(LineWriter& line, const Config& c) {
  const char* path = c.*kField;
  if (path[0] == '\0') path = "none";
  line.AppendEscaped(path, kMaxPathLength);
}

template <auto kField, auto& kNames>
void PrintKeyword(LineWriter& line, const Config& c) {
  line.Append(kNames[static_cast<size_t>(c.*kField)]);
}

void PrintTarget(LineWriter& line, const Config& c) {
  if (c.target_kind == TargetKind::kNone) line.Append("none");
  if (c.target_kind == TargetKind::kBytes) {
    PrintSize<&Config::target_bytes>(line, c);
  }
  if (c.target_kind == TargetKind::kHeapPercent) {
    line.AppendUint(c.target_heap_percent).Append("%");
  }
}

void PrintStats(LineWriter& line, const Config& c) {
  if (c.stats_format == StatsFormat::kPrometheus) line.Append(kPrometheus);
  if (c.stats == StatsDestination::kStderr) {
    line.Append("stderr");
  } else {
    PrintPath<&Config::stats_path>(line, c);
  }
}

void PrintDense(LineWriter& line, const Config& c) {
  PrintKeyword<&Config::dense, kDenseNames>(line, c);
  if (c.dense == DenseKind::kZstd) line.Append(":").AppendUint(c.dense_level);
}

void PrintDenseAge(LineWriter& line, const Config& c) {
  if (c.dense_age_auto) line.Append("auto");
  if (!c.dense_age_auto) PrintDuration<&Config::dense_age_ms>(line, c);
}

// The variables.

struct Variable {
  string_view name;
  string_view what;      // "<name>='x' is not <what>"
  string_view accepted;  // "(accepted: <accepted>)"
  Problem (*parse)(string_view text, Config& c);
  void (*print)(LineWriter& line, const Config& c);  // in a form parse takes
  bool verbatim = false;  // a path: whitespace around it is kept
};

constexpr Variable kVariables[] = {
    {"COLDHEAP_ENABLE", "a switch", "1, 0, true, false, yes, no, on or off",
     ParseKeyword<&Config::enable, kSwitchNames, 2>,
     PrintKeyword<&Config::enable, kSwitchNames>},
    {"COLDHEAP_COLD_AGE", "a duration",
     "0 or a duration up to 24h, e.g. 500ms, 30s, 1h30m",
     ParseDuration<&Config::cold_age_ms, 0>,
     PrintDuration<&Config::cold_age_ms>},
    {"COLDHEAP_SCAN_INTERVAL", "a duration",
     "a duration from 1ms to 24h, e.g. 500ms, 1s, 2m",
     ParseDuration<&Config::scan_interval_ms, 1>,
     PrintDuration<&Config::scan_interval_ms>},
    {"COLDHEAP_TARGET", "a size or a percentage",
     "a size with an optional K, M, G or T, e.g. 512M, 4G, or a percentage "
     "of the heap from 1% to 100%, e.g. 60%",
     ParseTarget, PrintTarget},
    {"COLDHEAP_MAX_POOL_PERCENT", "an integer", "an integer from 1 to 100",
     ParseInteger<&Config::max_pool_percent, 1, 100, true>,
     PrintUint<&Config::max_pool_percent>},
    {"COLDHEAP_ACCEPT_THRESHOLD_PERCENT", "an integer",
     "an integer from 0 to 100",
     ParseInteger<&Config::accept_threshold_percent, 0, 100, true>,
     PrintUint<&Config::accept_threshold_percent>},
    {"COLDHEAP_ZPOOL", "a pool type", "zsmalloc or zbud",
     ParseKeyword<&Config::zpool, kZpoolNames>,
     PrintKeyword<&Config::zpool, kZpoolNames>},
    {"COLDHEAP_COMPRESSOR", "a compressor", "lz4 or zstd",
     ParseKeyword<&Config::compressor, kCompressorNames>,
     PrintKeyword<&Config::compressor, kCompressorNames>},
    {"COLDHEAP_REGION_SIZE", "a size",
     "a size with an optional K, M, G or T from 64M to 64T, e.g. 64G",
     ParseSize<&Config::region_size, kMinRegionSize, kMaxRegionSize>,
     PrintSize<&Config::region_size>},
    {"COLDHEAP_STATS", "a stats destination",
     "empty, stderr, a file path, or prometheus: and a file path or a "
     "directory ending in /, paths of at most 255 bytes",
     ParseStats, PrintStats, true},
    {"COLDHEAP_LOG", "a log level", "off, error, info or debug",
     ParseKeyword<&Config::log_level, kLogNames>,
     PrintKeyword<&Config::log_level, kLogNames>},
    {"COLDHEAP_PROMOTION_RATE", "a percentage",
     "a percentage per minute from 0 to 100 with at most 4 decimals, e.g. "
     "0.2 or 0.2%",
     ParsePpm<&Config::promotion_rate_ppm_per_minute, 0, 100 * kPpmPerPercent>,
     PrintPpm<&Config::promotion_rate_ppm_per_minute>},
    {"COLDHEAP_CPU_BUDGET", "a percentage",
     "a percentage of one core from 0.1 to 100 with at most 4 decimals, e.g. "
     "2 or 0.5%",
     ParsePpm<&Config::cpu_budget_ppm, kPpmPerPercent / 10,
              100 * kPpmPerPercent>,
     PrintPpm<&Config::cpu_budget_ppm>},
    {"COLDHEAP_WRITEBACK_FILE", "a path",
     "empty or a file path of at most 255 bytes",
     ParsePath<&Config::writeback_file>, PrintPath<&Config::writeback_file>,
     true},
    {"COLDHEAP_FAULT_AROUND", "an integer", "an integer from 0 to 64",
     ParseInteger<&Config::fault_around_pages, 0, kMaxFaultAroundPages, false>,
     PrintUint<&Config::fault_around_pages>},
    {"COLDHEAP_EVICT_ALL_AT", "a duration",
     "0 (off) or a duration up to 24h, e.g. 30s",
     ParseDuration<&Config::evict_all_at_ms, 0>,
     PrintDuration<&Config::evict_all_at_ms>},
    {"COLDHEAP_DENSE", "a dense tier setting",
     "off, zstd or zstd:LEVEL with LEVEL from 1 to 19, e.g. zstd:9", ParseDense,
     PrintDense},
    {"COLDHEAP_DENSE_AGE", "a duration",
     "auto or a duration up to 24h, e.g. 10m; 0 = at the first scan",
     ParseDenseAge, PrintDenseAge},
};

// The environment.

// The value of the first "name=value" in `envp`, or nullptr.
const char* Lookup(const char* const* envp, string_view name) {
  for (; envp != nullptr && *envp != nullptr; ++envp) {
    if (strncmp(*envp, name.data(), name.size()) == 0 &&
        (*envp)[name.size()] == '=') {
      return *envp + name.size() + 1;
    }
  }
  return nullptr;
}

const Variable* FindVariable(string_view name) {
  for (const Variable& variable : kVariables) {
    if (variable.name == name) return &variable;
  }
  return nullptr;
}

// Edit distance between `a` and `b` ignoring case; names longer than the
// fixed row are far from everything.
size_t EditDistance(string_view a, string_view b) {
  constexpr size_t kMaxCompared = 48;
  if (a.size() > kMaxCompared || b.size() > kMaxCompared) return SIZE_MAX;
  size_t row[kMaxCompared + 1];
  for (size_t j = 0; j <= b.size(); ++j) row[j] = j;
  for (size_t i = 1; i <= a.size(); ++i) {
    size_t diagonal = row[0];
    row[0] = i;
    for (size_t j = 1; j <= b.size(); ++j) {
      size_t substitute = diagonal + (absl::ascii_tolower(a[i - 1]) !=
                                      absl::ascii_tolower(b[j - 1]));
      diagonal = row[j];
      row[j] = std::min({substitute, row[j] + 1, row[j - 1] + 1});
    }
  }
  return row[b.size()];
}

// One line for an unknown COLDHEAP_* name, with the known name at most two
// edits away, if any.
void ReportUnknown(string_view name) {
  const Variable* closest = nullptr;
  size_t closest_distance = 3;
  for (const Variable& variable : kVariables) {
    size_t distance = EditDistance(name, variable.name);
    if (distance < closest_distance) {
      closest = &variable;
      closest_distance = distance;
    }
  }
  LineWriter line;
  line.AppendEscaped(name, kMaxQuotedValue);
  line.Append(" is not a known variable; ignored");
  if (closest != nullptr) {
    line.Append(" (did you mean ").Append(closest->name).Append("?)");
  }
  line.Write();
}

void ParseVariable(const Variable& variable, const char* const* envp,
                   Config& config) {
  const char* raw = Lookup(envp, variable.name);
  if (raw == nullptr) return;
  string_view value = variable.verbatim ? raw : absl::StripAsciiWhitespace(raw);
  Problem problem = variable.parse(value, config);
  if (problem == Problem::kEmpty && !value.empty()) {
    problem = Problem::kMalformed;  // e.g. the missing digits of "G"
  }
  // For COLDHEAP_LOG itself, a bad value leaves the default level in place.
  if (problem == Problem::kNone || config.log_level == LogLevel::kOff) return;
  constexpr string_view kProblems[] = {"", "is empty", "is not ",
                                       "is out of range", "is too long"};
  static_assert(std::size(kProblems) ==
                1 + static_cast<size_t>(Problem::kTooLong));
  LineWriter line;
  line.Append(variable.name).Append("='");
  line.AppendEscaped(raw, kMaxQuotedValue).Append("' ");
  line.Append(kProblems[static_cast<size_t>(problem)]);
  if (problem == Problem::kMalformed) line.Append(variable.what);
  line.Append(" (accepted: ").Append(variable.accepted);
  line.Append("); using the default ");
  variable.print(line, kDefaultConfig);
  line.Write();
}

// COLDHEAP_TEST_FAULT belongs to the fault-injection test build, which reads
// it itself (fault_injector.h); the release build calls it unknown.
bool IsTestVariable([[maybe_unused]] string_view name) {
#ifdef COLDHEAP_FAULT_INJECTION
  return name == "COLDHEAP_TEST_FAULT";
#else
  return false;
#endif
}

}  // namespace

Config ParseConfig(const char* const* envp) {
  Config config;
  // COLDHEAP_LOG first: it decides whether the other problems are printed.
  const Variable* log = FindVariable("COLDHEAP_LOG");
  ParseVariable(*log, envp, config);
  for (const Variable& variable : kVariables) {
    if (&variable != log) ParseVariable(variable, envp, config);
  }
  // kMaxRegionSize is a multiple of the alignment: no overflow.
  config.region_size = (config.region_size + kRegionSizeAlignment - 1) &
                       ~(kRegionSizeAlignment - 1);
  for (; envp != nullptr && *envp != nullptr; ++envp) {
    string_view name(*envp, strcspn(*envp, "="));
    if (absl::StartsWith(name, "COLDHEAP_") && FindVariable(name) == nullptr &&
        !IsTestVariable(name) && config.log_level != LogLevel::kOff) {
      ReportUnknown(name);
    }
  }
  return config;
}

Config LoadConfig() {
  Config config = ParseConfig(environ);
  SetLogLevel(config.log_level);
  LogConfig(config, LogLevel::kInfo);
  return config;
}

void LogConfig(const Config& config, LogLevel level) {
  if (!LogEnabled(level)) return;
  for (const Variable& variable : kVariables) {
    LineWriter line;
    line.Append(variable.name).Append("=");
    variable.print(line, config);
    line.Write();
  }
}

}  // namespace coldheap::shim
