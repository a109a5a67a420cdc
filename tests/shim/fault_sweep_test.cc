// The fault sweep: for each kernel call of the data path (an os::Site) and
// each errno a real kernel returns there, runs tests/shim/heap_workload
// under the fault-injection build of libcoldheap.so, in stress mode (every
// resident page evicted at every 50 ms scan), with that failure injected
// (COLDHEAP_TEST_FAULT, see shim/fault_injector.h), and checks that
//  - the workload verified every byte it wrote and exited normally (no
//    crash, no hang: an alarm in the runner ends a stuck run);
//  - the shim degraded as designed: still evicting and restoring (the page
//    kept resident, the scan skipped, the call retried), or, for a failure
//    at start-up or in a forked child's set-up, plain jemalloc with one
//    stderr line;
//  - the statistics counted the failures (os_failures_injected, and
//    os_failures, or reject_busy for UFFDIO_MOVE's EBUSY).
// Built and run only with --config=faultinject (tests/run_all.sh does).
// Usage: fault_sweep_test LIBCOLDHEAP HEAP_WORKLOAD
#include <fcntl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <map>
#include <sstream>
#include <string>
#include <vector>

#include "gtest/gtest.h"

namespace {

std::string shim_path;
std::string workload_path;

// What the shim must do with the failure.
enum class Expect {
  kDegrades,          // keeps evicting and restoring; the failures counted
  kFallsBack,         // start-up failed: plain jemalloc, one stderr line
  kChildFallsBack,    // a forked child's set-up failed: it runs plain
  kWithoutWriteback,  // no writeback file: one line, evicting without it
};

struct Case {
  std::string rule;               // COLDHEAP_TEST_FAULT
  std::vector<std::string> args;  // heap_workload's
  Expect expect;
  bool writeback = false;  // a pool limit that writes back to a file
};

struct RunResult {
  int exit_code = -1;
  std::string stderr_text;
  std::map<std::string, uint64_t> stats;
  uint64_t Stat(const std::string& name) const {
    auto it = stats.find(name);
    return it == stats.end() ? 0 : it->second;
  }
};

std::string ReadFile(const std::string& path) {
  std::ifstream in(path);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

std::map<std::string, uint64_t> ParseStats(const std::string& text) {
  std::map<std::string, uint64_t> stats;
  std::istringstream in(text);
  std::string line;
  while (std::getline(in, line)) {
    char key[128];
    unsigned long long value;
    char rest;
    if (sscanf(line.c_str(), "%127s %llu%c", key, &value, &rest) == 2) {
      stats[key] = value;
    }
  }
  return stats;
}

size_t Count(const std::string& text, const std::string& what) {
  size_t n = 0;
  for (size_t at = text.find(what); at != std::string::npos;
       at = text.find(what, at + 1)) {
    ++n;
  }
  return n;
}

RunResult RunCase(const Case& c) {
  char dir_template[] = "/tmp/coldheap-sweep-XXXXXX";
  std::string dir = mkdtemp(dir_template);
  std::string stats_path = dir + "/stats";
  std::string err_path = dir + "/stderr";
  std::vector<std::string> env = {
      "PATH=/usr/bin:/bin",
      "LD_PRELOAD=" + shim_path,
      "COLDHEAP_SCAN_INTERVAL=50ms",
      "COLDHEAP_STATS=" + stats_path,
      "COLDHEAP_TEST_FAULT=" + c.rule,
      "HEAP_WORKLOAD_PLAIN_OK=1",
  };
  if (c.writeback) {
    env.push_back("COLDHEAP_COLD_AGE=100ms");
    env.push_back("COLDHEAP_CPU_BUDGET=100");
    env.push_back("COLDHEAP_MAX_POOL_PERCENT=5");
    env.push_back("COLDHEAP_WRITEBACK_FILE=" + dir);
  } else {
    env.push_back("COLDHEAP_COLD_AGE=0");
  }
  std::vector<std::string> argv = {workload_path};
  argv.insert(argv.end(), c.args.begin(), c.args.end());
  pid_t pid = fork();
  if (pid == 0) {
    int fd = open(err_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0666);
    dup2(fd, 2);
    int null = open("/dev/null", O_WRONLY);
    dup2(null, 1);
    alarm(120);  // a hang ends as SIGALRM, which fails the case
    std::vector<char*> cargv, cenv;
    for (auto& a : argv) cargv.push_back(a.data());
    cargv.push_back(nullptr);
    for (auto& e : env) cenv.push_back(e.data());
    cenv.push_back(nullptr);
    execve(argv[0].c_str(), cargv.data(), cenv.data());
    _exit(127);
  }
  int status = 0;
  waitpid(pid, &status, 0);
  RunResult run;
  run.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
  run.stderr_text = ReadFile(err_path);
  run.stats = ParseStats(ReadFile(stats_path));
  std::string cleanup = "rm -rf " + dir;
  (void)!system(cleanup.c_str());
  return run;
}

// Threads the shim starts in a process: one fault handler per CPU (at most
// 64), then the evictor.
int ShimThreads() {
  long cpus = sysconf(_SC_NPROCESSORS_ONLN);
  return static_cast<int>(std::min(std::max(cpus, 1L), 64L)) + 1;
}

std::vector<Case> Cases() {
  const std::vector<std::string> churn = {"churn", "2", "3"};
  const std::vector<std::string> fill = {"fill", "2", "8"};
  const std::vector<std::string> fork = {"fork", "8"};
  const std::vector<std::string> purge = {"purge", "8"};
  const std::vector<std::string> wb = {"fill", "2", "32"};
  const std::string threads = std::to_string(ShimThreads());
  const std::string child_thread = std::to_string(ShimThreads() + 1);
  const std::string child_evictor = std::to_string(2 * ShimThreads());
  std::vector<Case> cases = {
      // Start-up: each call that can fail before jemalloc's hooks are in.
      {"reserve:ENOMEM:1", fill, Expect::kFallsBack},   // the region
      {"reserve:ENOMEM:3", fill, Expect::kFallsBack},   // the page table
      {"reserve:ENOMEM:4", fill, Expect::kFallsBack},   // handler buffers
      {"open_uffd:EMFILE:1", fill, Expect::kFallsBack},
      {"open_uffd:ENOMEM:1", fill, Expect::kFallsBack},
      {"open_uffd:EPERM:1", fill, Expect::kFallsBack},
      {"register:ENOMEM:1", fill, Expect::kFallsBack},
      {"register:ENOMEM:2", fill, Expect::kFallsBack},  // staging
      {"open_pagemap:EMFILE:1", fill, Expect::kFallsBack},
      {"thread_create:EAGAIN:1", fill, Expect::kFallsBack},
      {"thread_create:EAGAIN:" + threads, fill, Expect::kFallsBack},
      // A second handler that cannot start: one handler serves.
      {"reserve:ENOMEM:5", fill, Expect::kDegrades},
      {"pin:EINVAL:1+", fill, Expect::kDegrades},
      // The data path, at a rate, under allocator churn.
      {"copy:ENOMEM:1/20", churn, Expect::kDegrades},
      {"copy:EAGAIN:1/20", churn, Expect::kDegrades},
      {"move:ENOMEM:1/10", churn, Expect::kDegrades},
      {"move:EAGAIN:1/10", churn, Expect::kDegrades},
      {"move:EBUSY:1/10", churn, Expect::kDegrades},
      {"pagemap_scan:EINTR:1/3", churn, Expect::kDegrades},
      {"pagemap_scan:ENOMEM:1/3", churn, Expect::kDegrades},
      {"pool_map:ENOMEM:1/5", churn, Expect::kDegrades},
      {"dontneed:EAGAIN:1/10", churn, Expect::kDegrades},
      {"dontneed:ENOMEM:1/10", churn, Expect::kDegrades},
      {"read_events:EINTR:1/10", churn, Expect::kDegrades},
      {"read_events:EAGAIN:1/10", churn, Expect::kDegrades},
      {"release:ENOMEM:1/2", churn, Expect::kDegrades},
      // Purged memory must still read zeros when the purge's madvise fails.
      {"dontneed:EAGAIN:1/3", purge, Expect::kDegrades},
      // A forked child's set-up: it gets its pages back and runs plain.
      {"open_uffd:EMFILE:2", fork, Expect::kChildFallsBack},
      {"open_uffd:ENOMEM:2", fork, Expect::kChildFallsBack},
      {"register:ENOMEM:3", fork, Expect::kChildFallsBack},
      {"open_pagemap:EMFILE:2", fork, Expect::kChildFallsBack},
      {"thread_create:EAGAIN:" + child_thread, fork, Expect::kChildFallsBack},
      {"thread_create:EAGAIN:" + child_evictor, fork, Expect::kChildFallsBack},
      // Parent and child both evicting with failures.
      {"copy:ENOMEM:1/20", fork, Expect::kDegrades},
      {"move:ENOMEM:1/10", fork, Expect::kDegrades},
      // The writeback file.
      {"file_open:ENOSPC:1", wb, Expect::kWithoutWriteback, true},
      {"file_open:EMFILE:1", wb, Expect::kWithoutWriteback, true},
      {"file_write:ENOSPC:1/3", wb, Expect::kDegrades, true},
      {"file_write:EIO:1/3", wb, Expect::kDegrades, true},
      // A read is tried 4 times: a transient error is survived, a lasting
      // one is the page lost (abort, as for a corrupt page).
      {"file_read:EIO:1/100", wb, Expect::kDegrades, true},
      {"file_read:EINTR:1/20", wb, Expect::kDegrades, true},
      {"file_write:EINTR:1/20", wb, Expect::kDegrades, true},
  };
  return cases;
}

class FaultSweep : public testing::TestWithParam<Case> {};

TEST_P(FaultSweep, WorkloadKeepsEveryByteAndShimDegradesAsDesigned) {
  const Case& c = GetParam();
  RunResult run = RunCase(c);
  const std::string& err = run.stderr_text;
  ASSERT_EQ(run.exit_code, 0) << c.rule << "\n" << err;
  EXPECT_EQ(Count(err, "FAIL"), 0u) << err;
  EXPECT_EQ(Count(err, "bug:"), 0u) << err;
  EXPECT_EQ(Count(err, "COLDHEAP_TEST_FAULT"), 0u) << "rule not understood\n"
                                                   << err;
  switch (c.expect) {
    case Expect::kFallsBack:
      EXPECT_EQ(Count(err, "disabled, running on plain jemalloc"), 1u) << err;
      EXPECT_EQ(run.Stat("evicted_pages"), 0u);
      break;
    case Expect::kChildFallsBack:
      EXPECT_EQ(Count(err, "forked child runs on plain jemalloc"), 1u) << err;
      EXPECT_GT(run.Stat("evicted_pages"), 0u);
      break;
    case Expect::kWithoutWriteback:
      EXPECT_EQ(Count(err, "cannot be created"), 1u) << err;
      EXPECT_GT(run.Stat("evicted_pages"), 0u);
      EXPECT_EQ(run.Stat("written_back_pages"), 0u);
      break;
    case Expect::kDegrades:
      EXPECT_EQ(Count(err, "plain jemalloc"), 0u) << err;
      EXPECT_GT(run.Stat("evicted_pages"), 0u) << err;
      EXPECT_GT(run.Stat("refaults"), 0u) << err;
      EXPECT_GT(run.Stat("os_failures_injected"), 0u)
          << "the workload never reached this call: the case proves nothing";
      if (c.rule.rfind("move:EBUSY", 0) == 0) {
        EXPECT_GT(run.Stat("reject_busy") + run.Stat("cow_unshared"), 0u);
      } else {
        EXPECT_GE(run.Stat("os_failures"), run.Stat("os_failures_injected"));
      }
      if (c.writeback) {
        EXPECT_GT(run.Stat("written_back_pages"), 0u) << err;
      }
      break;
  }
}

std::string CaseName(const testing::TestParamInfo<Case>& info) {
  std::string name = info.param.rule + "_" + info.param.args[0];
  for (char& ch : name) {
    if (!isalnum(static_cast<unsigned char>(ch))) ch = '_';
  }
  return name;
}

INSTANTIATE_TEST_SUITE_P(AllPoints, FaultSweep, testing::ValuesIn(Cases()),
                         CaseName);

}  // namespace

int main(int argc, char** argv) {
  testing::InitGoogleTest(&argc, argv);
  if (argc < 3) {
    fprintf(stderr, "usage: %s LIBCOLDHEAP HEAP_WORKLOAD\n", argv[0]);
    return 2;
  }
  char buf[4096];
  shim_path = realpath(argv[1], buf) ? buf : argv[1];
  workload_path = realpath(argv[2], buf) ? buf : argv[2];
  return RUN_ALL_TESTS();
}
