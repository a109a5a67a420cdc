// Tests for shim/stats.h: the "name value" snapshot `coldheap stat` and the
// integration tests parse, the latency histogram's buckets, the statistics
// file (0600, replaced atomically, %p expanded, not written by processes
// without a heap) and the live statistics path under /tmp/coldheap-UID.
#include "shim/stats.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <sstream>
#include <string>
#include <system_error>

#include "gtest/gtest.h"

namespace coldheap::shim {
namespace {

std::string LastLatencyBucket() {
  return "fault_latency_us_ge_" + std::to_string(1u << (kLatencyBuckets - 2));
}

using Snapshot = std::map<std::string, std::string>;

// "name value" lines; comment lines (#) skipped. Fails on anything else.
Snapshot Parse(const std::string& text) {
  Snapshot out;
  std::istringstream in(text);
  std::string line;
  while (std::getline(in, line)) {
    if (line.empty() || line[0] == '#') continue;
    size_t space = line.find(' ');
    EXPECT_NE(space, std::string::npos) << "line without a value: " << line;
    if (space == std::string::npos) continue;
    EXPECT_EQ(line.find(' ', space + 1), std::string::npos) << line;
    EXPECT_TRUE(out.emplace(line.substr(0, space), line.substr(space + 1))
                    .second)
        << "name twice: " << line;
  }
  return out;
}

std::string Snap(const Stats& stats) {
  int fds[2];
  EXPECT_EQ(pipe(fds), 0);
  WriteStats(stats, fds[1]);
  close(fds[1]);
  std::string text;
  char buf[4096];
  ssize_t n;
  while ((n = read(fds[0], buf, sizeof(buf))) > 0) text.append(buf, n);
  close(fds[0]);
  return text;
}

std::string ReadFile(const std::string& path) {
  std::ifstream in(path);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

std::string TestDir() {
  const char* dir = getenv("TEST_TMPDIR");
  return dir != nullptr ? dir : "/tmp";
}

bool Exists(const std::string& path) {
  struct stat st;
  return lstat(path.c_str(), &st) == 0;
}

TEST(WriteStatsTest, WritesNameValueLinesWithZswapNames) {
  Stats stats;
  stats.stored_pages = 12;
  stats.same_filled_pages = 3;
  stats.compressed_bytes = 20000;
  stats.pool_total_size = 24576;
  stats.reject_compress_poor = 5;
  stats.pool_limit_hit = 2;
  stats.written_back_pages = 1;
  stats.purged_pages = 44;
  stats.evictor_cpu_ns = 2500000;
  stats.pool_peak_size = 32768;
  stats.file_pages = 6;
  std::string text = Snap(stats);
  ASSERT_FALSE(text.empty());
  EXPECT_EQ(text.back(), '\n');
  Snapshot s = Parse(text);
  EXPECT_EQ(s["stored_pages"], "12");
  EXPECT_EQ(s["same_filled_pages"], "3");
  EXPECT_EQ(s["compressed_bytes"], "20000");
  EXPECT_EQ(s["pool_total_size"], "24576");
  EXPECT_EQ(s["reject_compress_poor"], "5");
  EXPECT_EQ(s["pool_limit_hit"], "2");
  EXPECT_EQ(s["written_back_pages"], "1");
  EXPECT_EQ(s["purged_pages"], "44");
  EXPECT_EQ(s["evictor_cpu_us"], "2500");
  EXPECT_EQ(s["refaults"], "0");
  EXPECT_EQ(s["pool_peak_size"], "32768");
  EXPECT_EQ(s["file_pages"], "6");
  // 12 pages of 4 KiB in 24 KiB of pool.
  EXPECT_EQ(s["compression_ratio"], "2.00");
}

TEST(WriteStatsTest, LargeCountersPrintInFull) {
  Stats stats;
  stats.refaults = 18446744073709551615ull;
  stats.scans = 1000000000000ull;
  Snapshot s = Parse(Snap(stats));
  EXPECT_EQ(s["refaults"], "18446744073709551615");
  EXPECT_EQ(s["scans"], "1000000000000");
}

TEST(WriteStatsTest, CompressionRatioHasTwoDecimals) {
  struct Case {
    uint64_t stored_pages, pool_total_size;
    const char* want;
  };
  for (const Case& c : {
           Case{0, 0, "0.00"},         // empty pool: no division by zero
           Case{5, 0, "0.00"},         //
           Case{1, 3000, "1.36"},      // 4096 / 3000 = 1.365..., truncated
           Case{1, 4096 * 20, "0.05"}, // a leading zero after the point
           Case{1, 4096 * 10, "0.10"}, // a trailing zero
           Case{100, 4096 * 30, "3.33"},
           Case{7, 1024, "28.00"},
       }) {
    Stats stats;
    stats.stored_pages = c.stored_pages;
    stats.pool_total_size = c.pool_total_size;
    EXPECT_EQ(Parse(Snap(stats))["compression_ratio"], c.want)
        << c.stored_pages << " pages in " << c.pool_total_size << " bytes";
  }
}

TEST(WriteStatsTest, HistogramsHaveOneLinePerBucket) {
  Stats stats;
  stats.age_histogram[0] = 9;
  stats.age_histogram[kAgeHistogramBuckets - 1] = 4;
  Snapshot s = Parse(Snap(stats));
  EXPECT_EQ(s["age_scans_lt_1"], "9");
  EXPECT_EQ(s["age_scans_lt_2"], "0");
  EXPECT_EQ(s["age_scans_lt_256"], "4");
  for (int b = 0; b < kLatencyBuckets - 1; ++b) {
    std::string name = "fault_latency_us_lt_" + std::to_string(1u << b);
    EXPECT_EQ(s.count(name), 1u) << name;
  }
  // The last bucket is open-ended: everything from the one before it up.
  EXPECT_EQ(s.count(LastLatencyBucket()), 1u);
  EXPECT_EQ(s.count("fault_latency_us_lt_" +
                    std::to_string(1u << kLatencyBuckets)),
            0u);
}

TEST(WriteStatsTest, EveryLineFitsWithEveryCounterAtItsMaximum) {
  Stats stats;
  constexpr uint64_t kMax = ~uint64_t{0};
  for (Counter* c : {&stats.stored_pages, &stats.same_filled_pages,
                     &stats.compressed_bytes, &stats.pool_total_size,
                     &stats.resident_pages, &stats.heap_pages,
                     &stats.probation_pages, &stats.cold_age_scans,
                     &stats.reclaim_min_age_scans,
                     &stats.promotions_per_minute, &stats.pool_full,
                     &stats.target_unreachable,
                     &stats.target_unreachable_events, &stats.evicted_pages,
                     &stats.reject_compress_poor, &stats.reject_busy,
                     &stats.refaults, &stats.staged_refaults,
                     &stats.first_touch_faults, &stats.first_touch_pages,
                     &stats.fault_around_pages, &stats.purged_pages,
                     &stats.discarded_pages, &stats.pool_limit_hit,
                     &stats.written_back_pages, &stats.scans,
                     &stats.evictor_cpu_ns, &stats.handler_cpu_ns,
                     &stats.pool_peak_size, &stats.cow_unshared,
                     &stats.file_pages, &stats.mistakes,
                     &stats.unlearned_refaults, &stats.refault_cost_ns,
                     &stats.refault_stall_ns,
                     &stats.refault_cost_ppm, &stats.raised_threshold_pages}) {
    c->store(kMax);
  }
  for (Counter& c : stats.age_histogram) c.store(kMax);
  for (Counter& c : stats.fault_latency_us) c.store(kMax);
  std::string text = Snap(stats);
  ASSERT_FALSE(text.empty());
  EXPECT_EQ(text.back(), '\n') << "the snapshot was cut short";
  Snapshot s = Parse(text);
  EXPECT_EQ(s[LastLatencyBucket()], "18446744073709551615");
  EXPECT_EQ(s["scans"], "18446744073709551615");
}

TEST(RecordFaultLatencyTest, EachServiceTimeLandsInItsPowerOfTwoBucket) {
  Stats stats;
  stats.RecordFaultLatency(0);          // lt_1
  stats.RecordFaultLatency(500);        // 0.5 us: lt_1
  stats.RecordFaultLatency(999);        // lt_1
  stats.RecordFaultLatency(1000);       // 1 us: lt_2
  stats.RecordFaultLatency(3000);       // 3 us: lt_4
  stats.RecordFaultLatency(3999);       // lt_4
  stats.RecordFaultLatency(4000);       // 4 us: lt_8
  stats.RecordFaultLatency(15000);      // 15 us: lt_16
  stats.RecordFaultLatency(16000);      // 16 us: lt_32
  stats.RecordFaultLatency(uint64_t{1} << 62);  // huge: the last bucket
  stats.RecordFaultLatency(~uint64_t{0});
  EXPECT_EQ(stats.fault_latency_us[0], 3u);
  EXPECT_EQ(stats.fault_latency_us[1], 1u);
  EXPECT_EQ(stats.fault_latency_us[2], 2u);
  EXPECT_EQ(stats.fault_latency_us[3], 1u);
  EXPECT_EQ(stats.fault_latency_us[4], 1u);
  EXPECT_EQ(stats.fault_latency_us[5], 1u);
  EXPECT_EQ(stats.fault_latency_us[kLatencyBuckets - 1], 2u);

  Snapshot s = Parse(Snap(stats));
  EXPECT_EQ(s["fault_latency_us_lt_1"], "3");
  EXPECT_EQ(s["fault_latency_us_lt_2"], "1");
  EXPECT_EQ(s["fault_latency_us_lt_4"], "2");
  EXPECT_EQ(s["fault_latency_us_lt_8"], "1");
  EXPECT_EQ(s[LastLatencyBucket()], "2");
}

// A statistics file in this test's scratch directory.
class WriteStatsFileTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = TestDir() + "/stats_test." + std::to_string(getpid()) + "." +
           ::testing::UnitTest::GetInstance()->current_test_info()->name();
    ASSERT_EQ(mkdir(dir_.c_str(), 0700), 0) << strerror(errno);
    stats_.heap_pages = 10;
    stats_.stored_pages = 4;
  }
  void TearDown() override {
    std::error_code ignored;
    std::filesystem::remove_all(dir_, ignored);
  }
  std::string dir_;
  Stats stats_;
};

TEST_F(WriteStatsFileTest, WritesASnapshotWithMode0600) {
  std::string path = dir_ + "/coldheap.stats";
  mode_t old = umask(0);  // the file's mode must not depend on the umask
  bool ok = WriteStatsFile(stats_, path.c_str());
  umask(old);
  ASSERT_TRUE(ok);
  struct stat st;
  ASSERT_EQ(stat(path.c_str(), &st), 0);
  EXPECT_TRUE(S_ISREG(st.st_mode));
  EXPECT_EQ(st.st_mode & 07777, 0600u);
  Snapshot s = Parse(ReadFile(path));
  EXPECT_EQ(s["heap_pages"], "10");
  EXPECT_EQ(s["stored_pages"], "4");
  EXPECT_FALSE(Exists(path + ".tmp")) << "the temporary was left behind";
}

TEST_F(WriteStatsFileTest, ReplacesTheFileAtomically) {
  std::string path = dir_ + "/coldheap.stats";
  {
    std::ofstream old(path);
    old << "old contents\n";
  }
  // A reader that opened the old file keeps reading it whole: the new
  // snapshot is a new file renamed over it, not the old one rewritten.
  int reader = open(path.c_str(), O_RDONLY);
  ASSERT_GE(reader, 0);
  struct stat before;
  ASSERT_EQ(fstat(reader, &before), 0);

  ASSERT_TRUE(WriteStatsFile(stats_, path.c_str()));
  struct stat after;
  ASSERT_EQ(stat(path.c_str(), &after), 0);
  EXPECT_NE(after.st_ino, before.st_ino) << "rewritten in place";
  char buf[64] = {};
  ASSERT_GT(read(reader, buf, sizeof(buf) - 1), 0);
  EXPECT_STREQ(buf, "old contents\n");
  close(reader);
  EXPECT_EQ(Parse(ReadFile(path))["heap_pages"], "10");

  // And again: each snapshot replaces the last.
  stats_.heap_pages = 11;
  ASSERT_TRUE(WriteStatsFile(stats_, path.c_str()));
  EXPECT_EQ(Parse(ReadFile(path))["heap_pages"], "11");
  EXPECT_FALSE(Exists(path + ".tmp"));
}

TEST_F(WriteStatsFileTest, ExpandsEachPercentPToThePid) {
  std::string pid = std::to_string(getpid());
  ASSERT_TRUE(WriteStatsFile(stats_, (dir_ + "/run-%p.stats").c_str()));
  EXPECT_TRUE(Exists(dir_ + "/run-" + pid + ".stats"));
  EXPECT_FALSE(Exists(dir_ + "/run-%p.stats"));

  ASSERT_TRUE(WriteStatsFile(stats_, (dir_ + "/%p-%p").c_str()));
  EXPECT_TRUE(Exists(dir_ + "/" + pid + "-" + pid));
  // A lone '%' and other escapes are kept as they are.
  ASSERT_TRUE(WriteStatsFile(stats_, (dir_ + "/100%-%x").c_str()));
  EXPECT_TRUE(Exists(dir_ + "/100%-%x"));
}

TEST_F(WriteStatsFileTest, SkipsProcessesWithoutAHeap) {
  std::string path = dir_ + "/shell.stats";
  Stats idle;  // heap_pages == 0 and evicted_pages == 0
  idle.stored_pages = 3;
  EXPECT_TRUE(WriteStatsFile(idle, path.c_str()));
  EXPECT_FALSE(Exists(path));

  // The skipped process does not overwrite a file someone else wrote.
  ASSERT_TRUE(WriteStatsFile(stats_, path.c_str()));
  EXPECT_TRUE(WriteStatsFile(idle, path.c_str()));
  EXPECT_EQ(Parse(ReadFile(path))["heap_pages"], "10");

  // Evicted pages alone are a heap worth reporting.
  Stats evicted;
  evicted.evicted_pages = 1;
  std::string other = dir_ + "/evicted.stats";
  EXPECT_TRUE(WriteStatsFile(evicted, other.c_str()));
  EXPECT_EQ(Parse(ReadFile(other))["evicted_pages"], "1");
}

// Fails: the temporary (PATH.tmp) is opened without O_EXCL/O_NOFOLLOW, so
// a stale one keeps its mode (the snapshot ends up 0644) and a symlink there
// is followed (the file it points to is overwritten). See the report:
// stats.cc, WriteStatsFile.
TEST_F(WriteStatsFileTest, AStaleTemporaryChangesNothing) {
  std::string path = dir_ + "/coldheap.stats";
  int fd = open((path + ".tmp").c_str(), O_CREAT | O_WRONLY, 0644);
  ASSERT_GE(fd, 0);
  ASSERT_EQ(fchmod(fd, 0644), 0);
  close(fd);
  ASSERT_TRUE(WriteStatsFile(stats_, path.c_str()));
  struct stat st;
  ASSERT_EQ(stat(path.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 07777, 0600u);

  std::string victim = dir_ + "/victim";
  {
    std::ofstream out(victim);
    out << "precious\n";
  }
  ASSERT_EQ(symlink(victim.c_str(), (path + ".tmp").c_str()), 0);
  WriteStatsFile(stats_, path.c_str());
  EXPECT_EQ(ReadFile(victim), "precious\n");
  ASSERT_EQ(lstat(path.c_str(), &st), 0);
  EXPECT_TRUE(S_ISREG(st.st_mode)) << "the snapshot is a symlink";
}

TEST_F(WriteStatsFileTest, FailsOnAPathItCannotWrite) {
  EXPECT_FALSE(
      WriteStatsFile(stats_, (dir_ + "/no/such/dir/coldheap.stats").c_str()));
  std::string too_long = dir_ + "/" + std::string(5000, 'x');
  EXPECT_FALSE(WriteStatsFile(stats_, too_long.c_str()));
}

std::string LiveDir(uid_t uid) { return "/tmp/coldheap-" + std::to_string(uid); }

TEST(PrepareLiveStatsPathTest, GivesTmpColdheapUidPidStats) {
  char path[256];
  ASSERT_TRUE(PrepareLiveStatsPath(path, sizeof(path)));
  EXPECT_EQ(std::string(path),
            LiveDir(getuid()) + "/" + std::to_string(getpid()) + ".stats");
  struct stat st;
  ASSERT_EQ(lstat(LiveDir(getuid()).c_str(), &st), 0);
  EXPECT_TRUE(S_ISDIR(st.st_mode));
  EXPECT_EQ(st.st_uid, getuid());
  EXPECT_EQ(st.st_mode & 077, 0u);
}

TEST(PrepareLiveStatsPathTest, RefusesABufferTooSmall) {
  char path[16];
  EXPECT_FALSE(PrepareLiveStatsPath(path, sizeof(path)));
}

// The refusals need a /tmp/coldheap-UID that nobody else uses: as root, a
// child takes a uid of its own (unique to this process), and the parent
// prepares the directory for each case. The real user's directory, which
// shims running elsewhere use, is never touched.
class LiveDirOfAnotherUidTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (geteuid() != 0) GTEST_SKIP() << "needs root to take another uid";
    uid_ = 3000000000u + static_cast<uid_t>(getpid() % 1000000);
    dir_ = LiveDir(uid_);
    Cleanup();
  }
  void TearDown() override {
    if (!dir_.empty()) Cleanup();
  }
  void Cleanup() {
    std::error_code ignored;
    std::filesystem::remove_all(dir_, ignored);
    std::filesystem::remove_all(dir_ + ".target", ignored);
  }

  // PrepareLiveStatsPath's answer in a child running as uid_: 1 accepted,
  // 0 refused, anything else a test failure.
  int PrepareAsUid() {
    pid_t pid = fork();
    if (pid == 0) {
      if (setresgid(uid_, uid_, uid_) != 0 || setresuid(uid_, uid_, uid_) != 0) {
        _exit(2);
      }
      char path[256];
      if (!PrepareLiveStatsPath(path, sizeof(path))) _exit(0);
      std::string want = dir_ + "/" + std::to_string(getpid()) + ".stats";
      _exit(want == path ? 1 : 3);
    }
    int status = 0;
    if (waitpid(pid, &status, 0) != pid || !WIFEXITED(status)) return -1;
    return WEXITSTATUS(status);
  }

  uid_t uid_ = 0;
  std::string dir_;
};

TEST_F(LiveDirOfAnotherUidTest, CreatesTheDirectory0700) {
  ASSERT_EQ(PrepareAsUid(), 1);
  struct stat st;
  ASSERT_EQ(lstat(dir_.c_str(), &st), 0);
  EXPECT_TRUE(S_ISDIR(st.st_mode));
  EXPECT_EQ(st.st_uid, uid_);
  EXPECT_EQ(st.st_mode & 0777, 0700u);
  // And accepts it on the next start.
  EXPECT_EQ(PrepareAsUid(), 1);
}

TEST_F(LiveDirOfAnotherUidTest, RefusesADirectoryOthersCanEnter) {
  for (mode_t mode : {0755, 0750, 0701, 0710, 0770, 0707}) {
    Cleanup();
    ASSERT_EQ(mkdir(dir_.c_str(), 0700), 0);
    ASSERT_EQ(chown(dir_.c_str(), uid_, uid_), 0);
    ASSERT_EQ(chmod(dir_.c_str(), mode), 0);
    EXPECT_EQ(PrepareAsUid(), 0) << "mode " << std::oct << mode;
  }
}

TEST_F(LiveDirOfAnotherUidTest, RefusesADirectoryOwnedBySomeoneElse) {
  ASSERT_EQ(mkdir(dir_.c_str(), 0700), 0);
  ASSERT_EQ(chown(dir_.c_str(), uid_ + 1, uid_), 0);
  EXPECT_EQ(PrepareAsUid(), 0);
}

TEST_F(LiveDirOfAnotherUidTest, RefusesASymlinkToADirectoryOfItsOwn) {
  std::string target = dir_ + ".target";
  ASSERT_EQ(mkdir(target.c_str(), 0700), 0);
  ASSERT_EQ(chown(target.c_str(), uid_, uid_), 0);
  ASSERT_EQ(symlink(target.c_str(), dir_.c_str()), 0);
  EXPECT_EQ(PrepareAsUid(), 0);
}

TEST_F(LiveDirOfAnotherUidTest, RefusesAFileInThePlaceOfTheDirectory) {
  int fd = open(dir_.c_str(), O_CREAT | O_WRONLY, 0600);
  ASSERT_GE(fd, 0);
  close(fd);
  ASSERT_EQ(chown(dir_.c_str(), uid_, uid_), 0);
  EXPECT_EQ(PrepareAsUid(), 0);
}

}  // namespace
}  // namespace coldheap::shim
