// Allocation-free logging for the shim.
//
// The shim runs inside other people's programs: before malloc is ready, inside
// malloc itself and in the fault handler. So a log line is built in a fixed
// buffer on the stack (LineWriter), numbers are formatted by hand, and the
// whole line, "coldheap: " prefix and newline included, leaves in one write(2)
// to fd 2, so lines from different threads never interleave. Nothing here
// calls malloc, stdio or iostreams, and there is no static constructor: the
// level is a constant-initialized atomic.
//
// Levels (COLDHEAP_LOG, see shim/config.h):
//   off    nothing, not even errors
//   error  (default) errors, and warnings about configuration and fallbacks
//   info   also one-off facts: the configuration in effect, what was set up
//   debug  also chatty detail, for developers
//
// Use:
//   if (LogEnabled(LogLevel::kInfo)) {
//     LineWriter line;
//     line.Append("region of ").AppendUint(size).Append(" bytes at ")...;
//     line.Write();
//   }
// or, for plain text, LogLine(LogLevel::kError, {"userfaultfd: ", reason}).
#ifndef COLDHEAP_SHIM_LOG_H_
#define COLDHEAP_SHIM_LOG_H_

#include <cstddef>
#include <cstdint>
#include <initializer_list>

#include "absl/strings/string_view.h"

namespace coldheap::shim {

enum class LogLevel : uint8_t {
  kOff = 0,
  kError = 1,
  kInfo = 2,
  kDebug = 3,
};

inline constexpr LogLevel kDefaultLogLevel = LogLevel::kError;

// The process-wide level. It starts at kDefaultLogLevel; LoadConfig() sets it
// from COLDHEAP_LOG. Safe to call from any thread.
void SetLogLevel(LogLevel level);
LogLevel GetLogLevel();

// True when a line of `level` is printed under the process-wide level.
// Lines of kOff are never printed.
bool LogEnabled(LogLevel level);

// "off", "error", "info" or "debug".
absl::string_view LogLevelName(LogLevel level);

// One log line, built in place and written with one write(2) to fd 2.
// A line longer than kCapacity is cut and ends in "...".
class LineWriter {
 public:
  // The whole line: prefix, text and newline.
  static constexpr size_t kCapacity = 512;
  static constexpr absl::string_view kPrefix = "coldheap: ";

  LineWriter();
  LineWriter(const LineWriter&) = delete;
  LineWriter& operator=(const LineWriter&) = delete;

  LineWriter& Append(absl::string_view text);
  LineWriter& AppendUint(uint64_t value);
  LineWriter& AppendInt(int64_t value);
  // Appends at most `max_bytes` bytes of `text`, followed by "..." when it
  // is longer. Control bytes, DEL, quote (') and backslash are written as
  // \xNN, so a value from the environment can neither end the line early nor
  // break the quoting around it. Bytes >= 0x80 (UTF-8) pass through.
  LineWriter& AppendEscaped(absl::string_view text, size_t max_bytes);

  // The line so far, prefix included, without the newline.
  absl::string_view line() const { return absl::string_view(buffer_, size_); }
  bool truncated() const { return truncated_; }

  // Ends the line with '\n' and writes it to fd 2 in one write(2) (retried
  // on EINTR or a short write). errno is preserved. The writer then starts
  // a new line.
  void Write();

 private:
  void Put(char c);

  char buffer_[kCapacity];
  size_t size_;
  bool truncated_;
};

// Writes the concatenation of `parts` as one line if `level` is enabled.
void LogLine(LogLevel level, std::initializer_list<absl::string_view> parts);

}  // namespace coldheap::shim

#endif  // COLDHEAP_SHIM_LOG_H_
