#include "shim/launcher/settings.h"

#include <errno.h>
#include <fcntl.h>
#include <unistd.h>

#include <cstdio>
#include <cstring>
#include <functional>
#include <map>

#include "absl/status/status.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "shim/log.h"

namespace coldheap::launcher {
namespace {

// What `fn` writes to fd 2. The pipe is non-blocking, so a writer can never
// wait for a reader that only starts once it returns; the library's lines
// for one variable (or the ~15 of LogConfig) are far below the pipe's 64 KiB.
absl::StatusOr<std::string> CaptureFd2(const std::function<void()>& fn) {
  int fds[2];
  if (pipe2(fds, O_CLOEXEC | O_NONBLOCK) != 0) {
    return absl::InternalError(absl::StrCat("pipe: ", strerror(errno)));
  }
  fflush(stderr);
  int saved = fcntl(STDERR_FILENO, F_DUPFD_CLOEXEC, 3);
  dup2(fds[1], STDERR_FILENO);
  close(fds[1]);
  fn();
  if (saved >= 0) {
    dup2(saved, STDERR_FILENO);
    close(saved);
  } else {
    close(STDERR_FILENO);  // it was closed before
  }
  std::string text;
  char buffer[4096];
  for (;;) {
    ssize_t n = read(fds[0], buffer, sizeof(buffer));
    if (n > 0) {
      text.append(buffer, static_cast<size_t>(n));
    } else if (n < 0 && errno == EINTR) {
      continue;
    } else {
      break;  // 0: every writer is gone and the pipe is empty
    }
  }
  close(fds[0]);
  return text;
}

// "coldheap: NAME='v' is not ... (accepted: ...); using the default D"
// -> "'v' is not ... (accepted: ...)". Anything else comes back as the
// first line, prefix removed.
std::string Reason(absl::string_view report, absl::string_view name) {
  absl::string_view line = report.substr(0, report.find('\n'));
  absl::ConsumePrefix(&line, shim::LineWriter::kPrefix);
  if (absl::ConsumePrefix(&line, name)) absl::ConsumePrefix(&line, "=");
  size_t tail = line.rfind("; using the default");
  if (tail != absl::string_view::npos) line = line.substr(0, tail);
  return std::string(line);
}

}  // namespace

absl::StatusOr<shim::Config> ParseSetting(absl::string_view name,
                                          absl::string_view value) {
  std::string entry = absl::StrCat(name, "=", value);
  const char* envp[] = {entry.c_str(), nullptr};
  shim::Config config;
  absl::StatusOr<std::string> report =
      CaptureFd2([&] { config = shim::ParseConfig(envp); });
  if (!report.ok()) return report.status();
  if (!report->empty()) {
    return absl::InvalidArgumentError(Reason(*report, name));
  }
  return config;
}

std::string DefaultSetting(absl::string_view name) {
  // NAME -> value, from lines "coldheap: NAME=value".
  static const auto* defaults = [] {
    auto* map = new std::map<std::string, std::string, std::less<>>();
    absl::StatusOr<std::string> text = CaptureFd2([] {
      shim::LogConfig(shim::kDefaultConfig, shim::LogLevel::kError);
    });
    if (!text.ok()) return map;
    for (absl::string_view line : absl::StrSplit(*text, '\n')) {
      absl::ConsumePrefix(&line, shim::LineWriter::kPrefix);
      size_t equals = line.find('=');
      if (equals == absl::string_view::npos) continue;
      (*map)[std::string(line.substr(0, equals))] =
          std::string(line.substr(equals + 1));
    }
    return map;
  }();
  auto it = defaults->find(name);
  return it == defaults->end() ? "" : it->second;
}

}  // namespace coldheap::launcher
