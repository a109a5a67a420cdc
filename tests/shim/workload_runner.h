// Runs tests/shim/heap_workload (or another program) under
// LD_PRELOAD=libcoldheap.so, or without it, for the integration and failure
// tests: its exit status, its output and the shim's statistics file.
#ifndef COLDHEAP_TESTS_SHIM_WORKLOAD_RUNNER_H_
#define COLDHEAP_TESTS_SHIM_WORKLOAD_RUNNER_H_

#include <sys/resource.h>

#include <cstdint>
#include <map>
#include <string>
#include <vector>

namespace coldheap::testing {

struct WorkloadRun {
  int exit_code = -1;  // 128 + signal when killed
  std::string stdout_text;
  std::string stderr_text;
  std::map<std::string, uint64_t> stats;
  uint64_t Stat(const std::string& name) const {
    auto it = stats.find(name);
    return it == stats.end() ? 0 : it->second;
  }
};

struct WorkloadOptions {
  std::vector<std::string> args;  // the program's
  std::vector<std::string> env;   // before the defaults: they win
  std::string program;            // empty: heap_workload
  bool with_shim = true;          // false: no LD_PRELOAD, no COLDHEAP_*
  // HEAP_WORKLOAD_PLAIN_OK=1: a shim that fell back to plain jemalloc (the
  // failure tests' start-up cases) is not a failure of the workload.
  bool plain_ok = false;
  // In the child before exec: a limit to set, and how many descriptors to
  // leave free under RLIMIT_NOFILE (-1: untouched).
  int limit_resource = -1;
  rlim_t limit = 0;
  int free_fds = -1;
};

// Paths given on the test's command line.
inline std::string shim_path;
inline std::string workload_path;

// Runs the workload with the shim in stress mode (COLDHEAP_COLD_AGE=0,
// 50 ms scans) unless `options.env` says otherwise; a run longer than 120 s
// is killed (a hang fails as SIGALRM). The run's directory (statistics,
// output) is mode 0777, for a workload that drops root.
WorkloadRun RunWorkload(const WorkloadOptions& options);

// The whole file, or "" if it cannot be read.
std::string ReadFile(const std::string& path);

// "name value" lines (the statistics file, a workload's output); comments
// and non-integer values are skipped.
std::map<std::string, uint64_t> ParseStats(const std::string& text);

// Occurrences of `what` in `text`.
size_t Count(const std::string& text, const std::string& what);

// Reads LIBCOLDHEAP and HEAP_WORKLOAD from argv[1..2] into the paths above;
// false (with a usage line) if they are missing.
bool ParsePaths(int argc, char** argv);

}  // namespace coldheap::testing

#endif  // COLDHEAP_TESTS_SHIM_WORKLOAD_RUNNER_H_
