// Runs tests/shim/heap_workload under LD_PRELOAD=libcoldheap.so for the
// failure tests (fault_sweep_test, exhaustion_test): its exit status, its
// stderr and the shim's statistics file.
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
  std::string stderr_text;
  std::map<std::string, uint64_t> stats;
  uint64_t Stat(const std::string& name) const {
    auto it = stats.find(name);
    return it == stats.end() ? 0 : it->second;
  }
};

struct WorkloadOptions {
  std::vector<std::string> args;  // heap_workload's
  std::vector<std::string> env;   // before the defaults: they win
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
// is killed (a hang fails as SIGALRM).
WorkloadRun RunWorkload(const WorkloadOptions& options);

// Occurrences of `what` in `text`.
size_t Count(const std::string& text, const std::string& what);

// Reads LIBCOLDHEAP and HEAP_WORKLOAD from argv[1..2] into the paths above;
// false (with a usage line) if they are missing.
bool ParsePaths(int argc, char** argv);

}  // namespace coldheap::testing

#endif  // COLDHEAP_TESTS_SHIM_WORKLOAD_RUNNER_H_
