// What `coldheap stat` reads: the process it is asked about (from /proc) and
// the statistics file that process keeps, /tmp/coldheap-UID/PID.stats
// (shim/stats.h: "name value" lines, rewritten each scan by a rename, removed
// at exit). Names are not fixed here: a counter added to the shim shows up
// without a change to the launcher.
#ifndef COLDHEAP_SHIM_LAUNCHER_STATS_FILE_H_
#define COLDHEAP_SHIM_LAUNCHER_STATS_FILE_H_

#include <sys/types.h>
#include <time.h>

#include <cstdint>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace coldheap::launcher {

// A live process, as /proc shows it.
struct Process {
  pid_t pid = 0;
  uid_t uid = 0;             // real uid: the one in its statistics path
  std::string name;          // comm, e.g. "python3"; "" if unreadable
  double age_seconds = 0;    // since it started; 0 if unknown
};

// The process `pid`; NotFound ("no process N") when there is none or it is
// a zombie (it has exited, only its exit status is left).
absl::StatusOr<Process> ProbeProcess(pid_t pid);

// True while `pid` runs (a zombie does not).
bool ProcessAlive(pid_t pid);

// True if `pid` has libcoldheap.so mapped (false if unknown, e.g. another
// user's process).
bool MapsShim(pid_t pid);

// "/tmp/coldheap-UID/PID.stats", as shim/stats.cc names it.
std::string LiveStatsPath(const Process& process);

// One reading of a statistics file.
struct Snapshot {
  // (name, value) in file order; comments and blank lines left out.
  std::vector<std::pair<std::string, std::string>> entries;
  timespec written = {};  // the file's modification time (CLOCK_REALTIME)

  // The value of `name` when present and a number.
  std::optional<double> Number(absl::string_view name) const;
  // The value of `name` when present and a whole number.
  std::optional<uint64_t> Count(absl::string_view name) const;
};

// Parses "name value" lines.
Snapshot ParseSnapshot(absl::string_view text);

// Reads and parses the file at `path`; the error keeps errno's code
// (NotFound for ENOENT, PermissionDenied for EACCES) and says what failed.
absl::StatusOr<Snapshot> ReadSnapshot(const std::string& path);

// Seconds from `earlier` to `later`.
double SecondsBetween(const timespec& earlier, const timespec& later);

}  // namespace coldheap::launcher

#endif  // COLDHEAP_SHIM_LAUNCHER_STATS_FILE_H_
