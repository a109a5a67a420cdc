// What every part of the `coldheap` command shares: its exit codes and the
// one-line error report.
#ifndef COLDHEAP_SHIM_LAUNCHER_COMMON_H_
#define COLDHEAP_SHIM_LAUNCHER_COMMON_H_

#include <cstdio>
#include <string>

#include "absl/strings/string_view.h"

namespace coldheap::launcher {

// Exit codes, as env(1) and the shells use them.
inline constexpr int kExitOk = 0;
inline constexpr int kExitFailure = 1;     // e.g. no such process
inline constexpr int kExitUsage = 2;       // a bad command line
inline constexpr int kExitCannotRun = 126; // PROGRAM found but not runnable
inline constexpr int kExitNotFound = 127;  // PROGRAM not found

// Writes "coldheap: <message>" as one line on stderr; returns `exit_code`.
inline int ReportError(int exit_code, absl::string_view message) {
  std::string line = "coldheap: ";
  line.append(message.data(), message.size());
  line += '\n';
  fflush(stdout);
  fwrite(line.data(), 1, line.size(), stderr);
  return exit_code;
}

}  // namespace coldheap::launcher

#endif  // COLDHEAP_SHIM_LAUNCHER_COMMON_H_
