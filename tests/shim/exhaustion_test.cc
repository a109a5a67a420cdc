// Real resource exhaustion (no injection; the release library): the shim
// meets each limit a container or a busy host imposes and the program keeps
// every byte, exits normally, and the shim degrades as designed.
// A forked child without a free descriptor is ShimIntegration's
// ForkedChildWithoutUserfaultfdKeepsItsData.
// Usage: exhaustion_test LIBCOLDHEAP HEAP_WORKLOAD
#include <sys/mount.h>
#include <sys/resource.h>
#include <unistd.h>

#include <cstdlib>
#include <string>

#include "gtest/gtest.h"
#include "tests/shim/workload_runner.h"

namespace coldheap::testing {
namespace {

// The address space capped under the region's reservation: the shim cannot
// start, says so once, and the program runs on plain jemalloc.
TEST(Exhaustion, AddressSpaceBelowTheRegionFallsBackWithOneLine) {
  WorkloadOptions options;
  options.plain_ok = true;
  options.args = {"fill", "1", "8"};
  options.limit_resource = RLIMIT_AS;
  options.limit = rlim_t{2} << 30;
  WorkloadRun run = RunWorkload(options);
  EXPECT_EQ(run.exit_code, 0) << run.stderr_text;
  EXPECT_EQ(Count(run.stderr_text, "disabled, running on plain jemalloc"), 1u)
      << run.stderr_text;
}

// The address space capped once the heap is in place: the pool cannot grow
// (mmap fails with ENOMEM), pages that do not fit stay resident.
TEST(Exhaustion, PoolThatCannotGrowKeepsPagesResident) {
  WorkloadOptions options;
  options.plain_ok = true;
  options.args = {"aslimit", "32"};
  WorkloadRun run = RunWorkload(options);
  EXPECT_EQ(run.exit_code, 0) << run.stderr_text;
  EXPECT_EQ(Count(run.stderr_text, "plain jemalloc"), 0u) << run.stderr_text;
  EXPECT_GT(run.Stat("evicted_pages"), 0u);
  EXPECT_GT(run.Stat("os_failures"), 0u)
      << "the pool never hit the limit: the test proved nothing";
}

// One free descriptor at start: the userfaultfd fits, /proc/self/pagemap
// does not. Plain jemalloc, one line.
TEST(Exhaustion, NoFreeDescriptorAtStartFallsBackWithOneLine) {
  WorkloadOptions options;
  options.plain_ok = true;
  options.args = {"fill", "1", "8"};
  options.free_fds = 1;
  WorkloadRun run = RunWorkload(options);
  EXPECT_EQ(run.exit_code, 0) << run.stderr_text;
  EXPECT_EQ(Count(run.stderr_text, "disabled, running on plain jemalloc"), 1u)
      << run.stderr_text;
}

// A region smaller than the heap: the rest is mapped outside it, unmanaged,
// and the managed part is still evicted and restored.
TEST(Exhaustion, FullRegionSpillsOutsideAndKeepsEveryByte) {
  WorkloadOptions options;
  options.plain_ok = true;
  options.args = {"fill", "2", "96"};
  options.env = {"COLDHEAP_REGION_SIZE=64M"};
  WorkloadRun run = RunWorkload(options);
  EXPECT_EQ(run.exit_code, 0) << run.stderr_text;
  EXPECT_GT(run.Stat("evicted_pages"), 0u);
  EXPECT_GT(run.Stat("refaults"), 0u);
  EXPECT_LE(run.Stat("heap_pages"), (64u << 20) / 4096);
}

// The writeback file on a full filesystem (a 256 KiB tmpfs): writes fail
// with ENOSPC, the objects stay in the pool, every byte reads back.
TEST(Exhaustion, WritebackOnAFullFilesystemKeepsObjectsInThePool) {
  char dir_template[] = "/tmp/coldheap-fullfs-XXXXXX";
  std::string dir = mkdtemp(dir_template);
  if (mount("coldheap-test", dir.c_str(), "tmpfs", 0, "size=256k") != 0) {
    rmdir(dir.c_str());
    GTEST_SKIP() << "cannot mount a tmpfs (needs root)";
  }
  WorkloadOptions options;
  options.plain_ok = true;
  options.args = {"fill", "2", "32"};
  options.env = {"COLDHEAP_COLD_AGE=100ms", "COLDHEAP_CPU_BUDGET=100",
                 "COLDHEAP_MAX_POOL_PERCENT=5", "COLDHEAP_WRITEBACK_FILE=" + dir};
  WorkloadRun run = RunWorkload(options);
  umount(dir.c_str());
  rmdir(dir.c_str());
  EXPECT_EQ(run.exit_code, 0) << run.stderr_text;
  EXPECT_GT(run.Stat("evicted_pages"), 0u);
  EXPECT_GT(run.Stat("pool_limit_hit"), 0u);
  EXPECT_LE(run.Stat("file_pages"), 256u * 1024 / 4096);  // what fits
  EXPECT_GT(run.Stat("os_failures"), 0u)
      << "no write failed: the filesystem was not full";
}

}  // namespace
}  // namespace coldheap::testing

int main(int argc, char** argv) {
  ::testing::InitGoogleTest(&argc, argv);
  if (!coldheap::testing::ParsePaths(argc, argv)) return 2;
  return RUN_ALL_TESTS();
}
