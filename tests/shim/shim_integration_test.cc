// Runs tests/shim/heap_workload under LD_PRELOAD=libcoldheap.so in stress
// mode (every resident page evicted at every 50 ms scan) and checks that the
// program's own verification held and that the shim really evicted and
// restored pages: a run with eviction off would prove nothing, so each test
// also asserts on the statistics. Usage (from Bazel):
//   shim_integration_test LIBCOLDHEAP HEAP_WORKLOAD
#include <fcntl.h>
#include <pwd.h>
#include <spawn.h>
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
#include "tests/shim/workload_runner.h"

namespace {

using coldheap::testing::ParseStats;
using coldheap::testing::ReadFile;
using coldheap::testing::shim_path;
using coldheap::testing::workload_path;
using RunResult = coldheap::testing::WorkloadRun;

// Runs the workload with `args`, the shim preloaded (in stress mode) when
// `with_shim`, and `extra_env` added.
RunResult RunWorkload(const std::vector<std::string>& args, bool with_shim = true,
                      const std::vector<std::string>& extra_env = {},
                      const std::string& program = "") {
  coldheap::testing::WorkloadOptions options;
  options.args = args;
  options.env = extra_env;
  options.program = program;
  options.with_shim = with_shim;
  return coldheap::testing::RunWorkload(options);
}

void ExpectEvictedAndRestored(const RunResult& run) {
  EXPECT_EQ(run.exit_code, 0) << run.stderr_text;
  EXPECT_GT(run.stats.count("evicted_pages") ? run.stats.at("evicted_pages") : 0, 0u)
      << "the shim evicted nothing: the test proved nothing\n" << run.stderr_text;
  EXPECT_GT(run.stats.count("refaults") ? run.stats.at("refaults") : 0, 0u)
      << run.stderr_text;
}

TEST(ShimIntegration, WorkloadPassesWithoutShim) {
  RunResult run = RunWorkload({"fill", "1", "8"}, /*with_shim=*/false);
  EXPECT_EQ(run.exit_code, 0) << run.stderr_text;
}

TEST(ShimIntegration, EvictedPagesSurviveOneWriter) {
  ExpectEvictedAndRestored(RunWorkload({"fill", "1", "32"}));
}

TEST(ShimIntegration, EvictedPagesSurviveEightConcurrentWriters) {
  ExpectEvictedAndRestored(RunWorkload({"fill", "8", "32"}));
}

TEST(ShimIntegration, KernelReadsAndWritesEvictedBuffers) {
  ExpectEvictedAndRestored(RunWorkload({"io", "8"}));
}

TEST(ShimIntegration, ForkedChildSeesEvictedPagesAndBothKeepEvicting) {
  ExpectEvictedAndRestored(RunWorkload({"fork", "16"}));
}

TEST(ShimIntegration, PagesSharedWithAForkedChildAreStillEvicted) {
  RunResult run = RunWorkload({"forkshared", "8"});
  ExpectEvictedAndRestored(run);
  EXPECT_GT(run.stats["cow_unshared"], 0u);
}

TEST(ShimIntegration, ForkStorm) {
  ExpectEvictedAndRestored(RunWorkload({"forkstorm", "20"}));
}

// Invariants 3 and 5: a child that cannot get a userfaultfd gets its evicted
// pages back in place and runs on plain jemalloc, with one line saying so.
TEST(ShimIntegration, ForkedChildWithoutUserfaultfdKeepsItsData) {
  RunResult run = RunWorkload({"forknofd", "16"});
  ExpectEvictedAndRestored(run);
  EXPECT_NE(run.stderr_text.find("forked child runs on plain jemalloc ("),
            std::string::npos)
      << run.stderr_text;
  EXPECT_NE(run.stderr_text.find("evicted pages were restored in place"),
            std::string::npos)
      << run.stderr_text;
}

TEST(ShimIntegration, PosixSpawnAndVforkExec) {
  ExpectEvictedAndRestored(RunWorkload({"spawn"}));
}

TEST(ShimIntegration, ReallocAcrossEvictedData) {
  ExpectEvictedAndRestored(RunWorkload({"realloc", "16"}));
}

TEST(ShimIntegration, PurgedMemoryReadsZeros) {
  RunResult run = RunWorkload({"purge", "16"});
  ExpectEvictedAndRestored(run);
  EXPECT_GT(run.stats["purged_pages"], 0u);
}

// Pages written while they move out, extents split, merged and purged under
// the evictor, for 20 s. A lost page anywhere (the kernel's uncounted
// UFFDIO_MOVE was one: a page read back as zeros) fails a check; such races
// are rare, so this catches them only sometimes: os_test pins the known one.
TEST(ShimIntegration, AllocatorChurnKeepsEveryByte) {
  RunResult run = RunWorkload({"churn", "2", "20"});
  ExpectEvictedAndRestored(run);
  EXPECT_GT(run.stats["purged_pages"], 0u);
}

// Invariant 4: a thread frozen inside malloc, holding the only arena's
// locks, does not stop the fault handlers.
TEST(ShimIntegration, FaultsServedWhileAThreadIsFrozenInMalloc) {
  RunResult run = RunWorkload({"pausedlocker", "20"}, true,
                              {"MALLOC_CONF=narenas:1,tcache:false"});
  ExpectEvictedAndRestored(run);
}

// Out of stress mode (the pool limit applies there): a 5% pool limit holds,
// without writeback by keeping pages resident, with writeback by writing the
// oldest objects to the file, and every byte reads back.
RunResult RunWithPoolLimit(const std::string& writeback) {
  return RunWorkload({"fill", "2", "32"}, true,
                     {"COLDHEAP_COLD_AGE=100ms", "COLDHEAP_CPU_BUDGET=100",
                      "COLDHEAP_MAX_POOL_PERCENT=5",
                      "COLDHEAP_WRITEBACK_FILE=" + writeback,
                      "HEAP_WORKLOAD_WAIT_FOR=pool_limit_hit"});
}

void ExpectPoolWithinLimit(const RunResult& run) {
  // Limit: 5% of the live heap; allow the heap to have been 25% larger at
  // the peak than at the end.
  uint64_t limit = run.stats.at("heap_pages") * 4096 * 5 / 100;
  EXPECT_GT(run.stats.at("pool_limit_hit"), 0u);
  EXPECT_LE(run.stats.at("pool_peak_size"), limit * 5 / 4) << run.stderr_text;
}

TEST(ShimIntegration, PoolLimitHoldsWithoutWriteback) {
  RunResult run = RunWithPoolLimit("");
  ExpectEvictedAndRestored(run);
  ExpectPoolWithinLimit(run);
  EXPECT_EQ(run.stats["written_back_pages"], 0u);
}

TEST(ShimIntegration, PoolLimitWritesBackAndPagesReadBackIntact) {
  char dir_template[] = "/tmp/coldheap-wb-XXXXXX";
  std::string dir = mkdtemp(dir_template);
  RunResult run = RunWithPoolLimit(dir);
  ExpectEvictedAndRestored(run);
  ExpectPoolWithinLimit(run);
  EXPECT_GT(run.stats["written_back_pages"], 0u) << run.stderr_text;
  rmdir(dir.c_str());  // empty: the file was O_TMPFILE
}

// The dense tier (issue 9): pages recompressed at the first scan after they
// are stored, so that every page goes through both tiers.
const std::vector<std::string> kDenseStress = {"COLDHEAP_DENSE=zstd",
                                               "COLDHEAP_DENSE_AGE=0"};

void ExpectDenseRoundTrips(const RunResult& run) {
  ExpectEvictedAndRestored(run);
  EXPECT_GT(run.stats.at("dense_recompressed_pages"), 0u) << run.stderr_text;
  EXPECT_GT(run.stats.at("dense_refaults"), 0u) << run.stderr_text;
  EXPECT_GE(run.stats.at("dense_dictionary_generation"), 1u);
}

TEST(ShimIntegration, EveryPageSurvivesBothTiersUnderStress) {
  ExpectDenseRoundTrips(RunWorkload({"fill", "4", "16"}, true, kDenseStress));
  ExpectDenseRoundTrips(RunWorkload({"churn", "4", "5"}, true, kDenseStress));
}

TEST(ShimIntegration, DenseTierOffLeavesEveryPageToLz4) {
  RunResult run = RunWorkload({"fill", "2", "8"}, true, {"COLDHEAP_DENSE=off"});
  ExpectEvictedAndRestored(run);
  EXPECT_EQ(run.stats.at("dense_recompressed_pages"), 0u);
  EXPECT_EQ(run.stats.at("dense_memory_bytes"), 0u);
}

uint64_t Printed(const RunResult& run, const std::string& name) {
  size_t at = run.stdout_text.find(name + " ");
  if (at == std::string::npos) return 0;
  return std::stoull(run.stdout_text.substr(at + name.size() + 1));
}

TEST(ShimIntegration, RetrainWhileEightThreadsFaultBackOldDictionaryPages) {
  RunResult run = RunWorkload({"denseretrain", "8"}, true, kDenseStress);
  ExpectDenseRoundTrips(run);
  EXPECT_GE(run.stats.at("dense_dictionary_generation"), 2u);
  // Both dictionaries were alive at once: old-dictionary pages were still
  // there, and read, after the retrain; the old one was freed afterwards.
  EXPECT_GE(Printed(run, "max_dictionaries"), 2u) << run.stdout_text;
}

TEST(ShimIntegration, ForkedChildReadsDensePagesAfterItsParentRetrained) {
  RunResult run = RunWorkload({"forkdense"}, true, kDenseStress);
  ExpectDenseRoundTrips(run);
  EXPECT_GE(run.stats.at("dense_dictionary_generation"), 2u);
  EXPECT_GT(Printed(run, "child_dense_refaults"), 0u) << run.stdout_text;
}

// Both tiers with the pool at its limit and the writeback file taking its
// oldest objects (a dense object written back and read from the file is
// pinned deterministically in recompressor_test).
TEST(ShimIntegration, DenseTierWithWritebackReadsBackIntact) {
  char dir_template[] = "/tmp/coldheap-wb-XXXXXX";
  std::string dir = mkdtemp(dir_template);
  RunResult run = RunWorkload(
      {"fill", "2", "32"}, true,
      {"COLDHEAP_COLD_AGE=100ms", "COLDHEAP_CPU_BUDGET=100",
       "COLDHEAP_MAX_POOL_PERCENT=5", "COLDHEAP_WRITEBACK_FILE=" + dir,
       "COLDHEAP_DENSE=zstd", "COLDHEAP_DENSE_AGE=0",
       "HEAP_WORKLOAD_WAIT_FOR=written_back_pages"});
  ExpectEvictedAndRestored(run);
  EXPECT_GT(run.stats.at("dense_recompressed_pages"), 0u) << run.stderr_text;
  EXPECT_GT(run.stats.at("written_back_pages"), 0u) << run.stderr_text;
  rmdir(dir.c_str());
}

// A hot set that is only read (invisible to write tracking) stays resident
// thanks to probation; the cold 90% is compressed.
TEST(ShimIntegration, ReadOnlyHotSetStaysResidentAndTheRestIsCompressed) {
  RunResult run = RunWorkload(
      {"readhot", "256", "14"}, true,
      {"COLDHEAP_COLD_AGE=2s", "COLDHEAP_SCAN_INTERVAL=500ms",
       "COLDHEAP_CPU_BUDGET=100"});
  ASSERT_EQ(run.exit_code, 0) << run.stderr_text;
  // As the hot phase ended (the workload prints them before verifying).
  std::map<std::string, uint64_t> out = ParseStats(run.stdout_text);
  // The hot set is 6'400 pages. A few may still be compressed when the
  // machine starves the reader for a whole probation interval (tests run in
  // parallel on 2 CPUs), and reading the statistics file touches a cold
  // page or two: at most 1% of the hot set may refault in the last 2 s.
  EXPECT_LE(out["refaults_last_2s"], 64u) << "the hot set keeps refaulting";
  EXPECT_GT(run.stats["staged_refaults"], 0u) << "no second chance was used";
  uint64_t heap = out["heap_pages"];
  uint64_t evicted = out["stored_pages"] + out["same_filled_pages"];
  EXPECT_GE(evicted * 100, heap * 75) << "less than 75% of the heap compressed";
  EXPECT_GE(out["resident_pages"] * 100, heap * 8) << "hot set not resident";
}

// Per-page refault memory: a hot set read every 0.7 s against a 0.5 s cold
// age is taken out by mistake at first (write tracking cannot see reads),
// and each page's threshold doubles with each mistake: 0.5, 1, 2, 4, 8,
// 16 s, so the last round of mistakes comes at ~18 s and the next would
// come after the run. Without the memory, every hot page would refault
// about once a second to the end.
TEST(ShimIntegration, ReadHotRegionStaysResidentAfterItsFirstMistakes) {
  RunResult run = RunWorkload(
      {"readperiodic", "64", "30", "700", "22"}, true,
      {"COLDHEAP_COLD_AGE=500ms", "COLDHEAP_SCAN_INTERVAL=100ms",
       "COLDHEAP_CPU_BUDGET=100"});
  ASSERT_EQ(run.exit_code, 0) << run.stderr_text;
  std::map<std::string, uint64_t> out = ParseStats(run.stdout_text);
  uint64_t hot = out["hot_pages"];
  ASSERT_GT(hot, 1000u) << run.stdout_text;
  EXPECT_GE(out["mistakes_learned"], 3 * hot) << "the hot set was not learned "
                                                 "through mistakes: the test proved nothing\n"
                                              << run.stdout_text;
  EXPECT_GE(out["raised_threshold_pages"], hot * 8 / 10) << run.stdout_text;
  // The last 8 s: at most 2% of the hot set (a starved reader can let a
  // page slip a whole threshold).
  EXPECT_LE(out["mistakes_end"] - out["mistakes_learned"], hot / 50)
      << "the hot set keeps coming back\n" << run.stdout_text;
  // Verifying read every page back at the end, a burst of refaults whose
  // pool handles wait in the handlers' rings: the final statistics show the
  // pool after those were freed and compacted, not the size it had at the
  // last scan. The bound is relative to the peak, not to what is left: a
  // size class keeps up to one partly used zspage, and a handle page lives
  // while one of its handles does, so a few hundred objects spread over
  // the classes (LZ4 and dense sizes) can take twice their bytes.
  ASSERT_GT(run.stats["evicted_pages"], 4 * hot) << "the cold pages were not evicted";
  ASSERT_GT(run.stats["pool_peak_size"], 0u);
  EXPECT_LE(run.stats["pool_total_size"], run.stats["pool_peak_size"] / 4)
      << "stored_pages " << run.stats["stored_pages"] << ", compressed_bytes "
      << run.stats["compressed_bytes"];
}

// Budget mode: with cold age out of reach, the budget alone drives eviction
// and brings resident + pool under half the heap within a few scans.
TEST(ShimIntegration, BudgetModeReachesItsTarget) {
  RunResult run = RunWorkload({"readhot", "64", "6"}, true,
                              {"COLDHEAP_COLD_AGE=10m", "COLDHEAP_TARGET=50%",
                               "COLDHEAP_SCAN_INTERVAL=200ms",
                               "COLDHEAP_CPU_BUDGET=100"});
  ASSERT_EQ(run.exit_code, 0) << run.stderr_text;
  std::map<std::string, uint64_t> out = ParseStats(run.stdout_text);
  uint64_t heap = out["heap_pages"] * 4096;
  uint64_t footprint = out["resident_pages"] * 4096 + out["pool_total_size"];
  EXPECT_GT(run.stats["evicted_pages"], 0u);
  EXPECT_LE(footprint, heap / 2 + heap / 20) << run.stdout_text;
}

TEST(ShimIntegration, MutexesInEvictedObjects) {
  RunResult run = RunWorkload({"mutex", "4"});
  EXPECT_EQ(run.exit_code, 0) << run.stderr_text;
}

TEST(ShimIntegration, BadSettingIsNamedAndDefaultUsed) {
  RunResult run = RunWorkload({"fill", "1", "8"}, true, {"COLDHEAP_ZPOOL=zsmallok"});
  EXPECT_EQ(run.exit_code, 0) << run.stderr_text;
  EXPECT_NE(run.stderr_text.find("COLDHEAP_ZPOOL"), std::string::npos)
      << run.stderr_text;
  EXPECT_NE(run.stderr_text.find("zsmallok"), std::string::npos);
  EXPECT_GT(run.stats["evicted_pages"], 0u) << "default pool not used";
}

TEST(ShimIntegration, DisabledShimRunsPlainJemalloc) {
  RunResult run = RunWorkload({"fill", "1", "8"}, true,
                              {"COLDHEAP_ENABLE=0", "COLDHEAP_STATS="});
  EXPECT_EQ(run.exit_code, 0) << run.stderr_text;
  EXPECT_TRUE(run.stderr_text.empty()) << run.stderr_text;
  EXPECT_EQ(run.stats.count("evicted_pages"), 0u);
}

// Without the right to use userfaultfd, the program runs on plain jemalloc
// and one stderr line says why (invariant 5).
TEST(ShimIntegration, NoUserfaultfdFallsBackWithOneLine) {
  if (geteuid() != 0) GTEST_SKIP() << "needs root to drop to nobody";
  if (ReadFile("/proc/sys/vm/unprivileged_userfaultfd").find('1') == 0) {
    GTEST_SKIP() << "unprivileged userfaultfd is allowed here";
  }
  // The binaries live under root's cache; copy them where nobody can run
  // them, and make /dev/userfaultfd unusable by dropping to nobody.
  char dir_template[] = "/tmp/coldheap-nobody-XXXXXX";
  std::string dir = mkdtemp(dir_template);
  chmod(dir.c_str(), 0755);
  std::string copy = "cp " + shim_path + " " + workload_path + " " + dir +
                     " && chmod 755 " + dir + "/*";
  ASSERT_EQ(system(copy.c_str()), 0);
  std::string program = dir + "/heap_workload";
  struct passwd* nobody = getpwnam("nobody");
  ASSERT_NE(nobody, nullptr);
  std::string wrapper = dir + "/as_nobody.sh";
  {
    std::ofstream w(wrapper);
    // Only the program is preloaded: setpriv changes per-thread
    // credentials itself, which the shim's threads would not share.
    w << "#!/bin/sh\nexec setpriv --reuid=" << nobody->pw_uid
      << " --regid=" << nobody->pw_gid << " --clear-groups /usr/bin/env"
      << " LD_PRELOAD=" << dir << "/libcoldheap.so COLDHEAP_COLD_AGE=0 "
      << program << " \"$@\"\n";
  }
  chmod(wrapper.c_str(), 0755);
  RunResult run = RunWorkload({"fill", "1", "8"}, false, {}, wrapper);
  EXPECT_EQ(run.exit_code, 0) << run.stderr_text;
  EXPECT_NE(run.stderr_text.find("coldheap: disabled"), std::string::npos)
      << run.stderr_text;
  EXPECT_EQ(std::count(run.stderr_text.begin(), run.stderr_text.end(), '\n'), 1)
      << run.stderr_text;
  std::string cleanup = "rm -rf " + dir;
  (void)!system(cleanup.c_str());
}

}  // namespace

int main(int argc, char** argv) {
  testing::InitGoogleTest(&argc, argv);
  if (!coldheap::testing::ParsePaths(argc, argv)) return 2;
  return RUN_ALL_TESTS();
}
