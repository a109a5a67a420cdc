#include "shim/launcher/stats_file.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstring>
#include <fstream>
#include <sstream>

#include "absl/status/status.h"
#include "absl/strings/ascii.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"

namespace coldheap::launcher {
namespace {

// The whole of a /proc file; nullopt if it cannot be read.
std::optional<std::string> ReadProcFile(pid_t pid, absl::string_view file) {
  std::ifstream in(absl::StrCat("/proc/", pid, "/", file));
  if (!in) return std::nullopt;
  std::stringstream text;
  text << in.rdbuf();
  return text.str();
}

// The fields of /proc/PID/stat after "(comm)": [0] is the state (field 3 of
// proc(5)), [19] the start time in clock ticks after boot (field 22).
std::vector<std::string> StatFields(const std::string& stat) {
  size_t close = stat.rfind(')');
  if (close == std::string::npos) return {};
  return absl::StrSplit(absl::string_view(stat).substr(close + 1), ' ',
                        absl::SkipEmpty());
}

double SecondsSinceBoot() {
  timespec now;
  clock_gettime(CLOCK_BOOTTIME, &now);
  return static_cast<double>(now.tv_sec) + now.tv_nsec / 1e9;
}

absl::Status ErrnoStatus(int error, absl::string_view what) {
  std::string message = absl::StrCat(what, ": ", strerror(error));
  switch (error) {
    case ENOENT:
      return absl::NotFoundError(message);
    case EACCES:
    case EPERM:
      return absl::PermissionDeniedError(message);
    default:
      return absl::UnavailableError(message);
  }
}

}  // namespace

absl::StatusOr<Process> ProbeProcess(pid_t pid) {
  if (!ProcessAlive(pid)) {
    return absl::NotFoundError(absl::StrCat("no process ", pid));
  }
  Process process;
  process.pid = pid;
  process.uid = getuid();
  struct stat dir;
  if (stat(absl::StrCat("/proc/", pid).c_str(), &dir) == 0) {
    process.uid = dir.st_uid;  // effective uid; the real one follows
  }
  if (std::optional<std::string> status = ReadProcFile(pid, "status")) {
    for (absl::string_view line : absl::StrSplit(*status, '\n')) {
      if (!absl::ConsumePrefix(&line, "Uid:")) continue;
      std::vector<absl::string_view> ids =
          absl::StrSplit(line, absl::ByAnyChar(" \t"), absl::SkipEmpty());
      uint32_t real;
      if (!ids.empty() && absl::SimpleAtoi(ids[0], &real)) process.uid = real;
    }
  }
  if (std::optional<std::string> comm = ReadProcFile(pid, "comm")) {
    process.name = std::string(absl::StripTrailingAsciiWhitespace(*comm));
  }
  if (std::optional<std::string> stat = ReadProcFile(pid, "stat")) {
    std::vector<std::string> fields = StatFields(*stat);
    uint64_t start_ticks;
    long ticks_per_second = sysconf(_SC_CLK_TCK);
    if (fields.size() > 19 && absl::SimpleAtoi(fields[19], &start_ticks) &&
        ticks_per_second > 0) {
      double age = SecondsSinceBoot() -
                   static_cast<double>(start_ticks) / ticks_per_second;
      process.age_seconds = age > 0 ? age : 0;
    }
  }
  return process;
}

bool ProcessAlive(pid_t pid) {
  if (pid <= 0) return false;
  if (std::optional<std::string> stat = ReadProcFile(pid, "stat")) {
    std::vector<std::string> fields = StatFields(*stat);
    return fields.empty() || (fields[0] != "Z" && fields[0] != "X");
  }
  // No /proc entry (or no /proc): ask the kernel.
  return kill(pid, 0) == 0 || errno == EPERM;
}

bool MapsShim(pid_t pid) {
  std::optional<std::string> maps = ReadProcFile(pid, "maps");
  return maps.has_value() &&
         maps->find("/libcoldheap.so\n") != std::string::npos;
}

std::string LiveStatsPath(const Process& process) {
  return absl::StrCat("/tmp/coldheap-", process.uid, "/", process.pid,
                      ".stats");
}

std::optional<double> Snapshot::Number(absl::string_view name) const {
  for (const auto& [key, value] : entries) {
    double number;
    if (key == name && absl::SimpleAtod(value, &number)) return number;
  }
  return std::nullopt;
}

std::optional<uint64_t> Snapshot::Count(absl::string_view name) const {
  for (const auto& [key, value] : entries) {
    uint64_t number;
    if (key == name && absl::SimpleAtoi(value, &number)) return number;
  }
  return std::nullopt;
}

Snapshot ParseSnapshot(absl::string_view text) {
  Snapshot snapshot;
  for (absl::string_view line : absl::StrSplit(text, '\n')) {
    line = absl::StripAsciiWhitespace(line);
    if (line.empty() || line.front() == '#') continue;
    size_t space = line.find_first_of(" \t");
    if (space == absl::string_view::npos) continue;
    snapshot.entries.emplace_back(
        std::string(line.substr(0, space)),
        std::string(absl::StripLeadingAsciiWhitespace(line.substr(space))));
  }
  return snapshot;
}

absl::StatusOr<Snapshot> ReadSnapshot(const std::string& path) {
  int fd = open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return ErrnoStatus(errno, absl::StrCat("cannot read ", path));
  // The file is replaced by rename, never rewritten in place: this fd sees
  // one whole version, and fstat gives that version's time.
  struct stat st;
  std::string text;
  char buffer[4096];
  ssize_t n = 0;
  if (fstat(fd, &st) == 0) {
    while ((n = read(fd, buffer, sizeof(buffer))) != 0) {
      if (n < 0 && errno == EINTR) continue;
      if (n < 0) break;
      text.append(buffer, static_cast<size_t>(n));
    }
  } else {
    n = -1;
  }
  int error = errno;
  close(fd);
  if (n < 0) return ErrnoStatus(error, absl::StrCat("cannot read ", path));
  Snapshot snapshot = ParseSnapshot(text);
  snapshot.written = st.st_mtim;
  return snapshot;
}

double SecondsBetween(const timespec& earlier, const timespec& later) {
  return static_cast<double>(later.tv_sec - earlier.tv_sec) +
         (later.tv_nsec - earlier.tv_nsec) / 1e9;
}

}  // namespace coldheap::launcher
