// The one COLDHEAP_* parser. It is longer than most files because nothing
// ready-made may be used here (absl::SimpleAtoi and friends accept signs and
// spaces we reject, and the strto* family depends on locale): in order, text
// helpers, number parsers, their inverse formatters, the variable table with
// one parse and one print case per setting, and the environment walk.
#include "shim/config.h"

#include <unistd.h>

#include <cstring>

#include "absl/strings/string_view.h"

namespace coldheap::shim {
namespace {

using absl::string_view;

constexpr string_view kVariablePrefix = "COLDHEAP_";

// At most this many bytes of a bad value are quoted back in a message.
constexpr size_t kMaxQuotedValue = 64;

// Why a value was rejected.
enum class Problem : uint8_t {
  kNone,
  kEmpty,
  kMalformed,   // "is not <what>"
  kOutOfRange,  // well formed, but too small or too large (overflow included)
  kTooLong,     // a path longer than kMaxPathLength
};

// ---------------------------------------------------------------------------
// Text.

char ToLower(char c) { return (c >= 'A' && c <= 'Z') ? c + ('a' - 'A') : c; }

bool EqualsIgnoreCase(string_view a, string_view b) {
  if (a.size() != b.size()) return false;
  for (size_t i = 0; i < a.size(); ++i) {
    if (ToLower(a[i]) != ToLower(b[i])) return false;
  }
  return true;
}

bool IsSpace(char c) { return c == ' ' || c == '\t'; }

string_view TrimSpaces(string_view text) {
  while (!text.empty() && IsSpace(text.front())) text.remove_prefix(1);
  while (!text.empty() && IsSpace(text.back())) text.remove_suffix(1);
  return text;
}

bool IsDigit(char c) { return c >= '0' && c <= '9'; }

// ---------------------------------------------------------------------------
// Numbers. Each parser writes `out` only when it returns Problem::kNone.

// Removes the leading decimal digits of `text` and returns their value in
// `value`; `overflow` says it did not fit. False when there is no digit.
bool TakeDigits(string_view& text, uint64_t& value, bool& overflow) {
  if (text.empty() || !IsDigit(text.front())) return false;
  value = 0;
  overflow = false;
  while (!text.empty() && IsDigit(text.front())) {
    uint64_t digit = static_cast<uint64_t>(text.front() - '0');
    if (__builtin_mul_overflow(value, uint64_t{10}, &value) ||
        __builtin_add_overflow(value, digit, &value)) {
      overflow = true;
    }
    text.remove_prefix(1);
  }
  return true;
}

// A whole integer, optionally followed by '%' when `percent_sign` allows it.
Problem ParseInteger(string_view text, uint64_t min, uint64_t max,
                     bool percent_sign, uint64_t& out) {
  if (text.empty()) return Problem::kEmpty;
  if (percent_sign && text.back() == '%') text.remove_suffix(1);
  uint64_t value;
  bool overflow;
  if (!TakeDigits(text, value, overflow) || !text.empty()) {
    return Problem::kMalformed;
  }
  if (overflow || value < min || value > max) return Problem::kOutOfRange;
  out = value;
  return Problem::kNone;
}

// An integer with ms, s or m; plain 0 needs no unit.
Problem ParseDuration(string_view text, uint64_t min_ms, uint64_t max_ms,
                      uint64_t& out_ms) {
  if (text.empty()) return Problem::kEmpty;
  uint64_t value;
  bool overflow;
  if (!TakeDigits(text, value, overflow)) return Problem::kMalformed;
  uint64_t unit_ms;
  if (EqualsIgnoreCase(text, "ms")) {
    unit_ms = 1;
  } else if (EqualsIgnoreCase(text, "s")) {
    unit_ms = 1'000;
  } else if (EqualsIgnoreCase(text, "m")) {
    unit_ms = 60'000;
  } else if (text.empty() && !overflow && value == 0) {
    unit_ms = 1;
  } else {
    return Problem::kMalformed;
  }
  uint64_t ms;
  if (overflow || __builtin_mul_overflow(value, unit_ms, &ms) || ms < min_ms ||
      ms > max_ms) {
    return Problem::kOutOfRange;
  }
  out_ms = ms;
  return Problem::kNone;
}

// The shift of a size unit: "" or B, then K, M, G, T alone or with B or iB.
bool SizeUnitShift(string_view unit, unsigned& shift) {
  if (unit.empty() || EqualsIgnoreCase(unit, "b")) {
    shift = 0;
    return true;
  }
  switch (ToLower(unit.front())) {
    case 'k':
      shift = 10;
      break;
    case 'm':
      shift = 20;
      break;
    case 'g':
      shift = 30;
      break;
    case 't':
      shift = 40;
      break;
    default:
      return false;
  }
  unit.remove_prefix(1);
  return unit.empty() || EqualsIgnoreCase(unit, "b") ||
         EqualsIgnoreCase(unit, "ib");
}

Problem ParseSize(string_view text, uint64_t min, uint64_t max, uint64_t& out) {
  if (text.empty()) return Problem::kEmpty;
  uint64_t value;
  bool overflow;
  unsigned shift;
  if (!TakeDigits(text, value, overflow) || !SizeUnitShift(text, shift)) {
    return Problem::kMalformed;
  }
  if (overflow || (shift != 0 && value > (UINT64_MAX >> shift))) {
    return Problem::kOutOfRange;
  }
  uint64_t bytes = value << shift;
  if (bytes < min || bytes > max) return Problem::kOutOfRange;
  out = bytes;
  return Problem::kNone;
}

constexpr uint64_t kPpmPerPercent = 10'000;
constexpr unsigned kMaxPercentDecimals = 4;  // 0.0001% = 1 ppm

// A decimal percentage ("0.2", "0.2%", "2") in parts per million. Decimals
// past the fourth must be zeros.
Problem ParsePercentPpm(string_view text, uint64_t min_ppm, uint64_t max_ppm,
                        uint32_t& out) {
  if (text.empty()) return Problem::kEmpty;
  if (text.back() == '%') text.remove_suffix(1);
  uint64_t whole;
  bool overflow;
  if (!TakeDigits(text, whole, overflow)) return Problem::kMalformed;
  uint64_t fraction = 0;  // in units of 10^-kMaxPercentDecimals percent
  if (!text.empty() && text.front() == '.') {
    text.remove_prefix(1);
    if (text.empty() || !IsDigit(text.front())) return Problem::kMalformed;
    for (unsigned i = 0; i < kMaxPercentDecimals; ++i) {
      fraction *= 10;
      if (!text.empty() && IsDigit(text.front())) {
        fraction += static_cast<uint64_t>(text.front() - '0');
        text.remove_prefix(1);
      }
    }
    while (!text.empty() && text.front() == '0') text.remove_prefix(1);
  }
  if (!text.empty()) return Problem::kMalformed;
  if (overflow || whole > max_ppm / kPpmPerPercent + 1) {
    return Problem::kOutOfRange;
  }
  uint64_t ppm = whole * kPpmPerPercent + fraction;
  if (ppm < min_ppm || ppm > max_ppm) return Problem::kOutOfRange;
  out = static_cast<uint32_t>(ppm);
  return Problem::kNone;
}

// Copies a path into `out`. Empty clears it.
Problem ParsePath(string_view text, char (&out)[kMaxPathLength + 1]) {
  if (text.size() > kMaxPathLength) return Problem::kTooLong;
  if (!text.empty()) memcpy(out, text.data(), text.size());
  out[text.size()] = '\0';
  return Problem::kNone;
}

// Finds `text` (any case) in `names`; writes its index to `index`.
template <size_t N>
Problem ParseKeyword(string_view text, const string_view (&names)[N],
                     size_t& index) {
  if (text.empty()) return Problem::kEmpty;
  for (size_t i = 0; i < N; ++i) {
    if (EqualsIgnoreCase(text, names[i])) {
      index = i;
      return Problem::kNone;
    }
  }
  return Problem::kMalformed;
}

// ---------------------------------------------------------------------------
// Formatting, the inverse of the parsers: defaults in messages and LogConfig.

void AppendDuration(LineWriter& line, uint64_t ms) {
  if (ms == 0) {
    line.Append("0");
  } else if (ms % 60'000 == 0) {
    line.AppendUint(ms / 60'000).Append("m");
  } else if (ms % 1'000 == 0) {
    line.AppendUint(ms / 1'000).Append("s");
  } else {
    line.AppendUint(ms).Append("ms");
  }
}

void AppendSize(LineWriter& line, uint64_t bytes) {
  static constexpr char kUnits[] = "TGMK";
  for (unsigned i = 0; i < 4; ++i) {
    unsigned shift = 40 - 10 * i;
    if (bytes != 0 && bytes % (uint64_t{1} << shift) == 0) {
      line.AppendUint(bytes >> shift).Append(string_view(&kUnits[i], 1));
      return;
    }
  }
  line.AppendUint(bytes);
}

void AppendPpmAsPercent(LineWriter& line, uint64_t ppm) {
  line.AppendUint(ppm / kPpmPerPercent);
  uint64_t fraction = ppm % kPpmPerPercent;
  if (fraction != 0) {
    char digits[kMaxPercentDecimals];
    size_t n = kMaxPercentDecimals;
    for (size_t i = n; i > 0; --i) {
      digits[i - 1] = static_cast<char>('0' + fraction % 10);
      fraction /= 10;
    }
    while (digits[n - 1] == '0') --n;
    line.Append(".").Append(string_view(digits, n));
  }
  line.Append("%");
}

void AppendPath(LineWriter& line, const char* path) {
  if (path[0] == '\0') {
    line.Append("none");
  } else {
    line.AppendEscaped(path, kMaxPathLength);
  }
}

// ---------------------------------------------------------------------------
// The variables.

enum class Setting : uint8_t {
  kEnable,
  kColdAge,
  kScanInterval,
  kTarget,
  kMaxPoolPercent,
  kAcceptThresholdPercent,
  kZpool,
  kCompressor,
  kRegionSize,
  kStats,
  kLog,
  kPromotionRate,
  kCpuBudget,
  kWritebackFile,
  kFaultAround,
  kEvictAllAt,
  kDense,
  kDenseAge,
};

struct Variable {
  Setting setting;
  string_view name;
  string_view what;      // "<name>='x' is not <what>"
  string_view accepted;  // "(accepted: <accepted>)"
  bool verbatim;         // a path: spaces around it are kept
};

constexpr Variable kVariables[] = {
    {Setting::kEnable, "COLDHEAP_ENABLE", "a switch",
     "1, 0, true, false, yes, no, on or off", false},
    {Setting::kColdAge, "COLDHEAP_COLD_AGE", "a duration",
     "0 or a number with ms, s or m up to 1440m, e.g. 500ms, 30s, 2m", false},
    {Setting::kScanInterval, "COLDHEAP_SCAN_INTERVAL", "a duration",
     "a number with ms, s or m from 1ms to 1440m, e.g. 500ms, 1s, 2m", false},
    {Setting::kTarget, "COLDHEAP_TARGET", "a size or a percentage",
     "a size with an optional K, M, G or T, e.g. 512M, 4G, or a percentage "
     "of the heap from 1% to 100%, e.g. 60%",
     false},
    {Setting::kMaxPoolPercent, "COLDHEAP_MAX_POOL_PERCENT", "an integer",
     "an integer from 1 to 100", false},
    {Setting::kAcceptThresholdPercent, "COLDHEAP_ACCEPT_THRESHOLD_PERCENT",
     "an integer", "an integer from 0 to 100", false},
    {Setting::kZpool, "COLDHEAP_ZPOOL", "a pool type", "zsmalloc or zbud",
     false},
    {Setting::kCompressor, "COLDHEAP_COMPRESSOR", "a compressor", "lz4 or zstd",
     false},
    {Setting::kRegionSize, "COLDHEAP_REGION_SIZE", "a size",
     "a size with an optional K, M, G or T from 64M to 64T, e.g. 64G", false},
    {Setting::kStats, "COLDHEAP_STATS", "a stats destination",
     "empty, stderr, a file path, or prometheus: and a file path or a "
     "directory ending in /, paths of at most 255 bytes",
     true},
    {Setting::kLog, "COLDHEAP_LOG", "a log level", "off, error, info or debug",
     false},
    {Setting::kPromotionRate, "COLDHEAP_PROMOTION_RATE", "a percentage",
     "a percentage per minute from 0 to 100 with at most 4 decimals, "
     "e.g. 0.2 or 0.2%",
     false},
    {Setting::kCpuBudget, "COLDHEAP_CPU_BUDGET", "a percentage",
     "a percentage of one core from 0.1 to 100 with at most 4 decimals, "
     "e.g. 2 or 0.5%",
     false},
    {Setting::kWritebackFile, "COLDHEAP_WRITEBACK_FILE", "a path",
     "empty or a file path of at most 255 bytes", true},
    {Setting::kFaultAround, "COLDHEAP_FAULT_AROUND", "an integer",
     "an integer from 0 to 64", false},
    {Setting::kEvictAllAt, "COLDHEAP_EVICT_ALL_AT", "a duration",
     "0 (off) or a number with ms, s or m up to 1440m, e.g. 30s", false},
    {Setting::kDense, "COLDHEAP_DENSE", "a dense tier setting",
     "off, zstd or zstd:LEVEL with LEVEL from 1 to 19, e.g. zstd:9", false},
    {Setting::kDenseAge, "COLDHEAP_DENSE_AGE", "a duration",
     "auto or a number with ms, s or m up to 1440m, e.g. 10m; 0 = at the "
     "first scan",
     false},
};

constexpr string_view kSwitchNames[] = {"1", "true",  "yes", "on",
                                        "0", "false", "no",  "off"};
constexpr string_view kZpoolNames[] = {"zsmalloc", "zbud"};
constexpr string_view kCompressorNames[] = {"lz4", "zstd"};
constexpr string_view kLogNames[] = {"off", "error", "info", "debug"};

constexpr string_view kPrometheusPrefix = "prometheus:";

// COLDHEAP_STATS: "", stderr, PATH or prometheus:PATH (a directory if it
// ends with '/'). Like a path, the value is taken exactly as given.
Problem ParseStats(string_view text, Config& config) {
  if (text == "stderr") {
    config.stats = StatsDestination::kStderr;
    config.stats_path[0] = '\0';
    return Problem::kNone;
  }
  StatsFormat format = StatsFormat::kText;
  if (text.substr(0, kPrometheusPrefix.size()) == kPrometheusPrefix) {
    text.remove_prefix(kPrometheusPrefix.size());
    // prometheus:stderr is not offered; a file so named is ./stderr.
    if (text.empty() || text == "stderr") return Problem::kMalformed;
    format = StatsFormat::kPrometheus;
  }
  Problem problem = ParsePath(text, config.stats_path);
  if (problem != Problem::kNone) return problem;
  config.stats =
      text.empty() ? StatsDestination::kNone : StatsDestination::kFile;
  config.stats_format = format;
  config.stats_path_is_dir =
      format == StatsFormat::kPrometheus && text.back() == '/';
  return Problem::kNone;
}

// COLDHEAP_DENSE: off, zstd or zstd:LEVEL.
Problem ParseDense(string_view text, Config& config) {
  if (text.empty()) return Problem::kEmpty;
  if (EqualsIgnoreCase(text, "off")) {
    config.dense = DenseKind::kOff;
    return Problem::kNone;
  }
  constexpr string_view kZstd = "zstd";
  if (text.size() < kZstd.size() ||
      !EqualsIgnoreCase(text.substr(0, kZstd.size()), kZstd)) {
    return Problem::kMalformed;
  }
  text.remove_prefix(kZstd.size());
  uint64_t level = kDefaultConfig.dense_level;
  if (!text.empty()) {
    if (text.front() != ':') return Problem::kMalformed;
    text.remove_prefix(1);
    Problem problem =
        ParseInteger(text, kMinDenseLevel, kMaxDenseLevel, false, level);
    if (problem == Problem::kEmpty) return Problem::kMalformed;
    if (problem != Problem::kNone) return problem;
  }
  config.dense = DenseKind::kZstd;
  config.dense_level = static_cast<uint32_t>(level);
  return Problem::kNone;
}

// Parses `text` into the field of `setting`. Leaves `config` unchanged unless
// it returns Problem::kNone.
Problem ParseSetting(Setting setting, string_view text, Config& config) {
  Problem problem = Problem::kNone;
  uint64_t number = 0;
  size_t index = 0;
  switch (setting) {
    case Setting::kEnable:
      problem = ParseKeyword(text, kSwitchNames, index);
      if (problem == Problem::kNone) config.enable = index < 4;
      return problem;
    case Setting::kColdAge:
      return ParseDuration(text, 0, kMaxDurationMs, config.cold_age_ms);
    case Setting::kScanInterval:
      return ParseDuration(text, 1, kMaxDurationMs, config.scan_interval_ms);
    case Setting::kTarget:
      if (!text.empty() && text.back() == '%') {
        problem = ParseInteger(text, 1, 100, true, number);
        if (problem != Problem::kNone) return problem;
        config.target_kind = TargetKind::kHeapPercent;
        config.target_heap_percent = static_cast<uint32_t>(number);
        return problem;
      }
      problem = ParseSize(text, 1, UINT64_MAX, number);
      if (problem != Problem::kNone) return problem;
      config.target_kind = TargetKind::kBytes;
      config.target_bytes = number;
      return problem;
    case Setting::kMaxPoolPercent:
      problem = ParseInteger(text, 1, 100, true, number);
      if (problem == Problem::kNone) {
        config.max_pool_percent = static_cast<uint32_t>(number);
      }
      return problem;
    case Setting::kAcceptThresholdPercent:
      problem = ParseInteger(text, 0, 100, true, number);
      if (problem == Problem::kNone) {
        config.accept_threshold_percent = static_cast<uint32_t>(number);
      }
      return problem;
    case Setting::kZpool:
      problem = ParseKeyword(text, kZpoolNames, index);
      if (problem == Problem::kNone) {
        config.zpool = static_cast<ZpoolKind>(index);
      }
      return problem;
    case Setting::kCompressor:
      problem = ParseKeyword(text, kCompressorNames, index);
      if (problem == Problem::kNone) {
        config.compressor = static_cast<CompressorKind>(index);
      }
      return problem;
    case Setting::kRegionSize:
      problem = ParseSize(text, kMinRegionSize, kMaxRegionSize, number);
      if (problem == Problem::kNone) {
        // kMaxRegionSize is a multiple of the alignment: no overflow.
        config.region_size =
            (number + kRegionSizeAlignment - 1) & ~(kRegionSizeAlignment - 1);
      }
      return problem;
    case Setting::kStats:
      return ParseStats(text, config);
    case Setting::kLog:
      problem = ParseKeyword(text, kLogNames, index);
      if (problem == Problem::kNone) {
        config.log_level = static_cast<LogLevel>(index);
      }
      return problem;
    case Setting::kPromotionRate:
      return ParsePercentPpm(text, 0, 100 * kPpmPerPercent,
                             config.promotion_rate_ppm_per_minute);
    case Setting::kCpuBudget:
      return ParsePercentPpm(text, kPpmPerPercent / 10, 100 * kPpmPerPercent,
                             config.cpu_budget_ppm);
    case Setting::kWritebackFile:
      return ParsePath(text, config.writeback_file);
    case Setting::kFaultAround:
      problem = ParseInteger(text, 0, kMaxFaultAroundPages, false, number);
      if (problem == Problem::kNone) {
        config.fault_around_pages = static_cast<uint32_t>(number);
      }
      return problem;
    case Setting::kEvictAllAt:
      return ParseDuration(text, 0, kMaxDurationMs, config.evict_all_at_ms);
    case Setting::kDense:
      return ParseDense(text, config);
    case Setting::kDenseAge:
      if (EqualsIgnoreCase(text, "auto")) {
        config.dense_age_auto = true;
        config.dense_age_ms = 0;
        return Problem::kNone;
      }
      problem = ParseDuration(text, 0, kMaxDurationMs, config.dense_age_ms);
      if (problem == Problem::kNone) config.dense_age_auto = false;
      return problem;
  }
  return Problem::kMalformed;
}

// Appends the value of `setting` in `config`, in a form its parser accepts
// (paths excepted: they are escaped).
void AppendSetting(LineWriter& line, Setting setting, const Config& config) {
  switch (setting) {
    case Setting::kEnable:
      line.Append(config.enable ? "on" : "off");
      return;
    case Setting::kColdAge:
      AppendDuration(line, config.cold_age_ms);
      return;
    case Setting::kScanInterval:
      AppendDuration(line, config.scan_interval_ms);
      return;
    case Setting::kTarget:
      switch (config.target_kind) {
        case TargetKind::kNone:
          line.Append("none");
          return;
        case TargetKind::kBytes:
          AppendSize(line, config.target_bytes);
          return;
        case TargetKind::kHeapPercent:
          line.AppendUint(config.target_heap_percent).Append("%");
          return;
      }
      return;
    case Setting::kMaxPoolPercent:
      line.AppendUint(config.max_pool_percent);
      return;
    case Setting::kAcceptThresholdPercent:
      line.AppendUint(config.accept_threshold_percent);
      return;
    case Setting::kZpool:
      line.Append(kZpoolNames[static_cast<size_t>(config.zpool)]);
      return;
    case Setting::kCompressor:
      line.Append(kCompressorNames[static_cast<size_t>(config.compressor)]);
      return;
    case Setting::kRegionSize:
      AppendSize(line, config.region_size);
      return;
    case Setting::kStats:
      if (config.stats == StatsDestination::kStderr) {
        line.Append("stderr");
      } else if (config.stats_format == StatsFormat::kPrometheus) {
        line.Append(kPrometheusPrefix);
        AppendPath(line, config.stats_path);
      } else {
        AppendPath(line, config.stats == StatsDestination::kFile
                             ? config.stats_path
                             : "");
      }
      return;
    case Setting::kLog:
      line.Append(LogLevelName(config.log_level));
      return;
    case Setting::kPromotionRate:
      AppendPpmAsPercent(line, config.promotion_rate_ppm_per_minute);
      return;
    case Setting::kCpuBudget:
      AppendPpmAsPercent(line, config.cpu_budget_ppm);
      return;
    case Setting::kWritebackFile:
      AppendPath(line, config.writeback_file);
      return;
    case Setting::kFaultAround:
      line.AppendUint(config.fault_around_pages);
      return;
    case Setting::kEvictAllAt:
      AppendDuration(line, config.evict_all_at_ms);
      return;
    case Setting::kDense:
      if (config.dense == DenseKind::kOff) {
        line.Append("off");
      } else {
        line.Append("zstd:").AppendUint(config.dense_level);
      }
      return;
    case Setting::kDenseAge:
      if (config.dense_age_auto) {
        line.Append("auto");
      } else {
        AppendDuration(line, config.dense_age_ms);
      }
      return;
  }
}

// ---------------------------------------------------------------------------
// The environment.

// The name part of an environ entry: up to '=', or all of it.
string_view EntryName(const char* entry) {
  const char* equals = strchr(entry, '=');
  return equals ? string_view(entry, static_cast<size_t>(equals - entry))
                : string_view(entry);
}

// The value of the first "name=value" in `envp`, or nullptr.
const char* Lookup(const char* const* envp, string_view name) {
  if (envp == nullptr) return nullptr;
  for (; *envp != nullptr; ++envp) {
    const char* entry = *envp;
    if (strncmp(entry, name.data(), name.size()) == 0 &&
        entry[name.size()] == '=') {
      return entry + name.size() + 1;
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

// Edit distance between `a` and `b` ignoring case, or kFar when either is
// too long to compare in the fixed buffers.
constexpr size_t kMaxCompared = 48;
constexpr size_t kFar = ~size_t{0};

size_t EditDistance(string_view a, string_view b) {
  if (a.size() > kMaxCompared || b.size() > kMaxCompared) return kFar;
  size_t row[kMaxCompared + 1];
  for (size_t j = 0; j <= b.size(); ++j) row[j] = j;
  for (size_t i = 1; i <= a.size(); ++i) {
    size_t diagonal = row[0];
    row[0] = i;
    for (size_t j = 1; j <= b.size(); ++j) {
      size_t above = row[j];
      size_t substitute =
          diagonal + (ToLower(a[i - 1]) == ToLower(b[j - 1]) ? 0 : 1);
      size_t best = substitute;
      if (above + 1 < best) best = above + 1;
      if (row[j - 1] + 1 < best) best = row[j - 1] + 1;
      row[j] = best;
      diagonal = above;
    }
  }
  return row[b.size()];
}

// The known name closest to a typo, or nullptr when none is close.
const Variable* ClosestVariable(string_view name) {
  constexpr size_t kMaxSuggestedDistance = 2;
  const Variable* closest = nullptr;
  size_t closest_distance = kMaxSuggestedDistance + 1;
  for (const Variable& variable : kVariables) {
    size_t distance = EditDistance(name, variable.name);
    if (distance < closest_distance) {
      closest = &variable;
      closest_distance = distance;
    }
  }
  return closest;
}

bool Reporting(const Config& config) {
  return config.log_level != LogLevel::kOff;
}

void ReportBadValue(const Variable& variable, string_view value,
                    Problem problem) {
  LineWriter line;
  line.Append(variable.name).Append("='");
  line.AppendEscaped(value, kMaxQuotedValue).Append("' ");
  switch (problem) {
    case Problem::kEmpty:
      line.Append("is empty");
      break;
    case Problem::kOutOfRange:
      line.Append("is out of range");
      break;
    case Problem::kTooLong:
      line.Append("is too long");
      break;
    case Problem::kNone:
    case Problem::kMalformed:
      line.Append("is not ").Append(variable.what);
      break;
  }
  line.Append(" (accepted: ").Append(variable.accepted);
  line.Append("); using the default ");
  AppendSetting(line, variable.setting, kDefaultConfig);
  line.Write();
}

void ReportUnknown(string_view name) {
  LineWriter line;
  line.AppendEscaped(name, kMaxQuotedValue);
  line.Append(" is not a known variable; ignored");
  if (const Variable* closest = ClosestVariable(name)) {
    line.Append(" (did you mean ").Append(closest->name).Append("?)");
  }
  line.Write();
}

void ParseVariable(const Variable& variable, const char* const* envp,
                   Config& config) {
  const char* raw = Lookup(envp, variable.name);
  if (raw == nullptr) return;
  string_view value =
      variable.verbatim ? string_view(raw) : TrimSpaces(string_view(raw));
  Problem problem = ParseSetting(variable.setting, value, config);
  // For COLDHEAP_LOG itself, a bad value leaves the default level in place.
  if (problem != Problem::kNone && Reporting(config)) {
    ReportBadValue(variable, raw, problem);
  }
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
  if (envp != nullptr && Reporting(config)) {
    for (const char* const* entry = envp; *entry != nullptr; ++entry) {
      string_view name = EntryName(*entry);
      if (name.substr(0, kVariablePrefix.size()) == kVariablePrefix &&
          FindVariable(name) == nullptr && !IsTestVariable(name)) {
        ReportUnknown(name);
      }
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
    AppendSetting(line, variable.setting, config);
    line.Write();
  }
}

}  // namespace coldheap::shim
