#include "shim/log.h"

#include <errno.h>
#include <unistd.h>

#include <atomic>
#include <cstring>

namespace coldheap::shim {
namespace {

// Constant-initialized (constexpr constructor, trivial destructor): usable
// before any static constructor runs.
std::atomic<LogLevel> g_level{kDefaultLogLevel};

// Room for the text: one byte stays free for the newline.
constexpr size_t kTextCapacity = LineWriter::kCapacity - 1;

constexpr char kHexDigits[] = "0123456789abcdef";

bool NeedsEscape(unsigned char c) {
  return c < 0x20 || c == 0x7f || c == '\'' || c == '\\';
}

}  // namespace

void SetLogLevel(LogLevel level) {
  g_level.store(level, std::memory_order_relaxed);
}

LogLevel GetLogLevel() { return g_level.load(std::memory_order_relaxed); }

bool LogEnabled(LogLevel level) {
  return level != LogLevel::kOff &&
         static_cast<uint8_t>(level) <=
             static_cast<uint8_t>(g_level.load(std::memory_order_relaxed));
}

absl::string_view LogLevelName(LogLevel level) {
  switch (level) {
    case LogLevel::kOff:
      return "off";
    case LogLevel::kError:
      return "error";
    case LogLevel::kInfo:
      return "info";
    case LogLevel::kDebug:
      return "debug";
  }
  return "?";
}

LineWriter::LineWriter() : size_(kPrefix.size()), truncated_(false) {
  memcpy(buffer_, kPrefix.data(), kPrefix.size());
}

void LineWriter::Put(char c) {
  if (size_ < kTextCapacity) {
    buffer_[size_++] = c;
  } else {
    truncated_ = true;
  }
}

LineWriter& LineWriter::Append(absl::string_view text) {
  size_t room = kTextCapacity - size_;
  size_t n = text.size() <= room ? text.size() : room;
  if (n == 0) {
    if (!text.empty()) truncated_ = true;
    return *this;
  }
  memcpy(buffer_ + size_, text.data(), n);
  size_ += n;
  if (n < text.size()) truncated_ = true;
  return *this;
}

LineWriter& LineWriter::AppendUint(uint64_t value) {
  char digits[20];  // 2^64 - 1 has 20 digits
  size_t n = 0;
  do {
    digits[n++] = static_cast<char>('0' + value % 10);
    value /= 10;
  } while (value != 0);
  while (n > 0) Put(digits[--n]);
  return *this;
}

LineWriter& LineWriter::AppendInt(int64_t value) {
  if (value >= 0) return AppendUint(static_cast<uint64_t>(value));
  Put('-');
  // Negate in unsigned arithmetic: -INT64_MIN does not fit an int64_t.
  return AppendUint(0 - static_cast<uint64_t>(value));
}

LineWriter& LineWriter::AppendEscaped(absl::string_view text,
                                      size_t max_bytes) {
  size_t n = text.size() <= max_bytes ? text.size() : max_bytes;
  for (size_t i = 0; i < n; ++i) {
    unsigned char c = static_cast<unsigned char>(text[i]);
    if (NeedsEscape(c)) {
      Put('\\');
      Put('x');
      Put(kHexDigits[c >> 4]);
      Put(kHexDigits[c & 0xf]);
    } else {
      Put(static_cast<char>(c));
    }
  }
  if (n < text.size()) Append("...");
  return *this;
}

void LineWriter::Write() {
  if (truncated_) memcpy(buffer_ + kTextCapacity - 3, "...", 3);
  buffer_[size_++] = '\n';
  int saved_errno = errno;
  const char* p = buffer_;
  size_t left = size_;
  while (left > 0) {
    ssize_t n = write(STDERR_FILENO, p, left);
    if (n < 0) {
      if (errno == EINTR) continue;
      break;  // nowhere to report that stderr is broken
    }
    p += n;
    left -= static_cast<size_t>(n);
  }
  errno = saved_errno;
  size_ = kPrefix.size();
  truncated_ = false;
}

void LogLine(LogLevel level, std::initializer_list<absl::string_view> parts) {
  if (!LogEnabled(level)) return;
  LineWriter line;
  for (absl::string_view part : parts) line.Append(part);
  line.Write();
}

}  // namespace coldheap::shim
