// `coldheap run [OPTIONS] [--] PROGRAM [ARGS...]`: PROGRAM with
// libcoldheap.so added to LD_PRELOAD, a COLDHEAP_* variable per option and
// PYTHONMALLOC=malloc (unless set), by execvp, so PROGRAM keeps the
// launcher's process id (what `coldheap stat` takes) and its exit status is
// the command's.
#ifndef COLDHEAP_SHIM_LAUNCHER_RUN_H_
#define COLDHEAP_SHIM_LAUNCHER_RUN_H_

#include <string>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace coldheap::launcher {

inline constexpr absl::string_view kLibraryName = "libcoldheap.so";

// A parsed `coldheap run` command line.
struct RunRequest {
  bool help = false;  // -h or --help: print RunUsage(), run nothing
  // (COLDHEAP_* name, value as given), in command-line order; every value
  // was accepted by the library's parser.
  std::vector<std::pair<std::string, std::string>> settings;
  std::vector<std::string> program;  // PROGRAM ARGS...; never empty
};

// Parses the words after "run". Options end at "--" or at the first word
// that is not an option; both --opt VALUE and --opt=VALUE are accepted.
// InvalidArgument with a one-line message ("run: ...") on a bad word.
absl::StatusOr<RunRequest> ParseRunArgs(const std::vector<std::string>& args);

// The text of `coldheap run --help`, defaults taken from the library.
std::string RunUsage();

// The LD_PRELOAD value that loads `library` after the objects `existing`
// already names. ld.so splits the list at spaces and colons; the result keeps
// the separator `existing` uses (colon if unsure), drops empty entries, and
// drops any other libcoldheap.so so the shim is never loaded twice.
std::string ComposePreload(absl::string_view existing,
                           absl::string_view library);

// The absolute path of libcoldheap.so: $COLDHEAP_LIB (the file or its
// directory) when set; otherwise the first that exists of, for the
// launcher's directory D (through symlinks, then as invoked via `argv0`):
// D/libcoldheap.so, D/../lib/coldheap/libcoldheap.so,
// D/../lib/libcoldheap.so, and the Bazel runfiles
// (EXE.runfiles/coldheap/shim/ or $RUNFILES_DIR/coldheap/shim/).
// NotFound naming the places searched.
absl::StatusOr<std::string> FindLibrary(const char* argv0);

// The whole subcommand: parses `args` (the words after "run"), sets the
// environment and execs PROGRAM. Returns only when there is nothing to exec
// (help) or it failed; the value is the exit code.
int RunCommand(const std::vector<std::string>& args, const char* argv0);

}  // namespace coldheap::launcher

#endif  // COLDHEAP_SHIM_LAUNCHER_RUN_H_
