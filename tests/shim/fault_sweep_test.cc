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
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <regex>
#include <string>
#include <vector>

#include "gtest/gtest.h"
#include "tests/shim/workload_runner.h"

namespace coldheap::testing {
namespace {

// What the shim must do with the failure.
enum class Expect {
  kDegrades,          // keeps evicting and restoring; the failures counted
  kFallsBack,         // start-up failed: plain jemalloc, one stderr line
  kChildFallsBack,    // a forked child's set-up failed: it runs plain
  kWithoutWriteback,  // no writeback file: one line, evicting without it
  kChildReadsFileBack,  // a forked child without a copy of the file: its
                        // written-back pages read back, one line
};

struct Case {
  std::string rule;               // COLDHEAP_TEST_FAULT
  std::vector<std::string> args;  // heap_workload's
  Expect expect;
  bool writeback = false;  // a pool limit that writes back to a file
  bool dense = false;      // the dense tier on, every page through it
  std::string says;        // a line the shim must print once, if not empty
};

WorkloadRun RunCase(const Case& c) {
  WorkloadOptions options;
  options.plain_ok = true;
  options.args = c.args;
  options.env = {"COLDHEAP_TEST_FAULT=" + c.rule};
  // The call numbers below count the mappings made at start-up, which the
  // dense tier (on by default) adds to: it is off unless the case is its.
  if (c.dense) {
    options.env.push_back("COLDHEAP_DENSE=zstd");
    options.env.push_back("COLDHEAP_DENSE_AGE=0");
  } else {
    options.env.push_back("COLDHEAP_DENSE=off");
  }
  // A fork with pages in the file, for the child to copy or read back.
  if (c.writeback && c.args[0] == "fork") {
    options.env.push_back("HEAP_WORKLOAD_WAIT_FOR=file_pages");
  }
  if (c.writeback) {
    for (const char* e : {"COLDHEAP_COLD_AGE=100ms", "COLDHEAP_CPU_BUDGET=100",
                          "COLDHEAP_MAX_POOL_PERCENT=5",
                          "COLDHEAP_WRITEBACK_FILE=/tmp"}) {
      options.env.push_back(e);
    }
  }
  return RunWorkload(options);
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
  const std::vector<std::string> wbfork = {"fork", "32"};
  const std::vector<std::string> setid = {"setid", "6"};
  const std::string threads = std::to_string(ShimThreads());
  const std::string child_thread = std::to_string(ShimThreads() + 1);
  const std::string child_evictor = std::to_string(2 * ShimThreads());
  // With the dense tier, start-up maps the region, staging, the page table,
  // the tier's workspace, the handlers' doorbell page, a buffer and a
  // compressor workspace per handler, the evictor's and the recompressor's
  // compressor workspaces: 8 + 2 per CPU. Every mapping after those fails.
  const std::string after_start = std::to_string(6 + 2 * ShimThreads()) + "+";
  std::vector<Case> cases = {
      // Start-up: each call that can fail before jemalloc's hooks are in.
      {"reserve:ENOMEM:1", fill, Expect::kFallsBack},   // the region
      {"reserve:ENOMEM:3", fill, Expect::kFallsBack},   // the page table
      {"reserve:ENOMEM:5", fill, Expect::kFallsBack},   // handler buffers
      {"open_uffd:EMFILE:1", fill, Expect::kFallsBack},
      {"open_uffd:ENOMEM:1", fill, Expect::kFallsBack},
      {"open_uffd:EPERM:1", fill, Expect::kFallsBack},
      {"register:ENOMEM:1", fill, Expect::kFallsBack},
      {"register:ENOMEM:2", fill, Expect::kFallsBack},  // staging
      {"open_pagemap:EMFILE:1", fill, Expect::kFallsBack},
      {"thread_create:EAGAIN:1", fill, Expect::kFallsBack},
      {"thread_create:EAGAIN:" + threads, fill, Expect::kFallsBack},
      // A second handler that cannot start: one handler serves.
      {"reserve:ENOMEM:6", fill, Expect::kDegrades},
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
      {"register:ENOMEM:4", fork, Expect::kChildFallsBack},  // after the doorbell
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
      // A full disk for good: the evictor stops trying until the next scan
      // (it used to retry every object for every page, and stall).
      {"file_write:ENOSPC:1+", wb, Expect::kDegrades, true},
      // A child that cannot copy the file reads its pages from the shared
      // one while the parent leaves their slots alone.
      {"file_copy:ENOSPC:1", wbfork, Expect::kChildReadsFileBack, true},
      {"file_copy:EIO:1", wbfork, Expect::kChildReadsFileBack, true},
      // No pipe to hear when the child is done: the parent stops reusing.
      {"pipe:EMFILE:1", wbfork, Expect::kDegrades, true, false,
       "freed slots are not reused from now on"},
      {"pipe:ENFILE:1", wbfork, Expect::kDegrades, true, false,
       "freed slots are not reused from now on"},
      // A copy refused and the wake that lets its thread fault again too
      // (a kernel refuses a wake only for a bad range: here, a transient
      // failure the handler retries).
      {"copy:ENOMEM:1/20;wake:EINVAL:1/10", churn, Expect::kDegrades},
      // set*id(): the doorbell page each shim thread answers on, and the
      // capabilities it takes (EPERM: the program's threads disagree).
      {"zeropage:EAGAIN:1/2", setid, Expect::kDegrades},
      {"zeropage:ENOMEM:1/2", setid, Expect::kDegrades},
      {"cap_get:EINVAL:1/2", setid, Expect::kDegrades},
      {"cap_set:EPERM:1/2", setid, Expect::kDegrades, false, false,
       "could not take the program's capabilities"},
      // The dense tier: its refaults, its pool, its slots and training.
      {"copy:ENOMEM:1/20", churn, Expect::kDegrades, false, true},
      {"move:ENOMEM:1/10", churn, Expect::kDegrades, false, true},
      {"pool_map:ENOMEM:1/5", churn, Expect::kDegrades, false, true},
      {"reserve:ENOMEM:" + after_start, churn, Expect::kDegrades, false, true},
  };
  return cases;
}

class FaultSweep : public ::testing::TestWithParam<Case> {};

TEST_P(FaultSweep, WorkloadKeepsEveryByteAndShimDegradesAsDesigned) {
  const Case& c = GetParam();
  WorkloadRun run = RunCase(c);
  const std::string& err = run.stderr_text;
  ASSERT_EQ(run.exit_code, 0) << c.rule << "\n" << err;
  EXPECT_EQ(Count(err, "FAIL"), 0u) << err;
  EXPECT_EQ(Count(err, "bug:"), 0u) << err;
  EXPECT_EQ(Count(err, "COLDHEAP_TEST_FAULT"), 0u) << "rule not understood\n"
                                                   << err;
  if (!c.says.empty()) EXPECT_EQ(Count(err, c.says), 1u) << err;
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
    case Expect::kChildReadsFileBack: {
      std::smatch read_back;
      ASSERT_TRUE(std::regex_search(
          err, read_back,
          std::regex("forked child could not copy the writeback file; its "
                     "([0-9]+) written-back pages were read back")))
          << err;
      EXPECT_GT(std::stoull(read_back[1]), 0u)
          << "nothing was written back before the fork: the case proves nothing";
      EXPECT_EQ(Count(err, "could not copy the writeback file"), 1u) << err;
      EXPECT_GT(run.Stat("written_back_pages"), 0u) << err;
      break;
    }
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
      if (c.writeback && c.rule.back() != '+') {
        EXPECT_GT(run.Stat("written_back_pages"), 0u) << err;
      }
      break;
  }
}

std::string CaseName(const ::testing::TestParamInfo<Case>& info) {
  std::string name = info.param.rule + "_" + info.param.args[0] +
                     (info.param.dense ? "_dense" : "");
  for (char& ch : name) {
    if (!isalnum(static_cast<unsigned char>(ch))) ch = '_';
  }
  return name;
}

INSTANTIATE_TEST_SUITE_P(AllPoints, FaultSweep, ::testing::ValuesIn(Cases()),
                         CaseName);

}  // namespace
}  // namespace coldheap::testing

int main(int argc, char** argv) {
  ::testing::InitGoogleTest(&argc, argv);
  if (!coldheap::testing::ParsePaths(argc, argv)) return 2;
  return RUN_ALL_TESTS();
}
