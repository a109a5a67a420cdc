// The Prometheus exposition of the statistics (shim/prometheus.h) and the
// shim's COLDHEAP_STATS=prometheus: files (shim/stats.h): it parses by
// Prometheus's rules (our grammar check and promtool's), follows its naming
// conventions, converts to base units, and every statistic has a row.
#include "shim/prometheus.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdlib>
#include <fstream>
#include <sstream>
#include <string>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "gtest/gtest.h"
#include "shim/config.h"
#include "shim/stats.h"
#include "tests/shim/exposition_check.h"

namespace coldheap::shim {
namespace {

using coldheap::exposition::ExpositionProblems;
using coldheap::exposition::Promtool;

// WriteStats' text for `stats`.
std::string StatsText(const Stats& stats) {
  int fds[2];
  EXPECT_EQ(pipe(fds), 0);
  WriteStats(stats, fds[1]);
  close(fds[1]);
  std::string text;
  char buffer[4096];
  for (ssize_t n; (n = read(fds[0], buffer, sizeof(buffer))) > 0;) {
    text.append(buffer, static_cast<size_t>(n));
  }
  close(fds[0]);
  return text;
}

std::string Exposition(const std::string& stats_text, uint64_t pid = 4242) {
  std::string out(kMaxExpositionSize, '\0');
  out.resize(FormatPrometheus(stats_text, pid, out.data(), out.size()));
  return out;
}

// A Stats with something in the pool, the histograms and the costs.
void Fill(Stats& stats) {
  stats.stored_pages = 1200;
  stats.same_filled_pages = 30;
  stats.pool_total_size = 1600 * 1024;
  stats.heap_pages = 5000;
  stats.resident_pages = 3770;
  stats.evicted_pages = 1500;
  stats.refaults = 270;
  stats.evictor_cpu_ns = 1'500'000'000;
  stats.refault_cost_ppm = 2500;
  stats.promotions_per_minute = 90;
  stats.age_histogram[0] = 3000;
  stats.age_histogram[3] = 770;
  for (uint64_t ns : {500, 3'000, 3'500, 70'000, 40'000'000}) {
    stats.RecordFaultLatency(ns);
  }
}

std::string Joined(const std::vector<std::string>& problems) {
  return absl::StrJoin(problems, "\n");
}

TEST(Prometheus, EveryStatisticHasARow) {
  Stats stats;
  std::string exposition = Exposition(StatsText(stats));
  ASSERT_FALSE(exposition.empty());
  EXPECT_FALSE(absl::StrContains(exposition, "untyped"))
      << "a statistic in stats.cc's text has no row in prometheus.cc's "
         "kMetrics:\n"
      << exposition;
}

TEST(Prometheus, FollowsTheFormatsGrammar) {
  Stats stats;
  Fill(stats);
  for (const std::string& text : {StatsText(Stats()), StatsText(stats)}) {
    std::string exposition = Exposition(text);
    ASSERT_FALSE(exposition.empty());
    EXPECT_EQ(Joined(ExpositionProblems(exposition)), "") << exposition;
  }
}

TEST(Prometheus, PromtoolAcceptsItWithoutALintFinding) {
  Stats stats;
  Fill(stats);
  std::string exposition = Exposition(StatsText(stats));
  coldheap::exposition::PromtoolResult result = Promtool(exposition);
  ASSERT_NE(result.exit_code, -1) << result.output;
  EXPECT_EQ(result.exit_code, 0) << result.output;
  EXPECT_EQ(result.output, "");
}

// The check itself catches what it should (so a pass above means something).
TEST(Prometheus, TheGrammarCheckRejectsBrokenExpositions) {
  const std::string head =
      "# HELP a_total A.\n# TYPE a_total counter\n";
  for (const std::string& bad : {
           head + "a_total{pid=\"1\"} 1\na_total{pid=\"1\"} 2\n",  // repeated
           head + "a_total 1\n",                                  // no pid
           head + "a_total{pid=\"1\"} one\n",                     // value
           head + "a_total{pid=1} 1\n",                           // label
           std::string("# HELP a A.\n# TYPE a counter\na{pid=\"1\"} 1\n"),
           head + "a_total{pid=\"1\"} 1\n" + head,  // TYPE twice
           std::string("# HELP h A.\n# TYPE h histogram\n"
                       "h_bucket{pid=\"1\",le=\"1\"} 5\n"
                       "h_bucket{pid=\"1\",le=\"2\"} 3\n"  // drops
                       "h_bucket{pid=\"1\",le=\"+Inf\"} 5\n"
                       "h_sum{pid=\"1\"} 1\nh_count{pid=\"1\"} 5\n"),
           std::string("# HELP h A.\n# TYPE h histogram\n"
                       "h_bucket{pid=\"1\",le=\"1\"} 5\n"
                       "h_sum{pid=\"1\"} 1\nh_count{pid=\"1\"} 5\n"),  // no +Inf
           std::string("# HELP g A.\n# TYPE g gauge\ng{pid=\"1\"} 1\n"
                       "# HELP f A.\n# TYPE f gauge\nf{pid=\"1\"} 1\n"
                       "g{pid=\"2\"} 1\n"),  // split
           head + "a_total{pid=\"1\"} 1",    // no final newline
       }) {
    EXPECT_NE(Joined(ExpositionProblems(bad)), "") << bad;
  }
}

TEST(Prometheus, ValuesAreInBaseUnits) {
  std::string exposition = Exposition(
      "evictor_cpu_us 1500000\nrefault_cost_ppm 2500\n"
      "promotions_per_minute 90\npool_total_size 8192\n"
      "compression_ratio 2.35\n",
      7);
  for (const char* sample : {
           "coldheap_evictor_cpu_seconds_total{pid=\"7\"} 1.500000\n",
           "coldheap_refault_cost_ratio{pid=\"7\"} 0.002500\n",
           "coldheap_promotions_per_second{pid=\"7\"} 1.500\n",
           "coldheap_pool_total_size_bytes{pid=\"7\"} 8192\n",
           "coldheap_compression_ratio{pid=\"7\"} 2.35\n",
       }) {
    EXPECT_TRUE(absl::StrContains(exposition, sample))
        << sample << " not in\n" << exposition;
  }
}

TEST(Prometheus, FaultLatencyIsACumulativeHistogramInSeconds) {
  Stats stats;
  Fill(stats);  // 0.5, 3, 3.5, 70 and 40000 us
  std::string exposition = Exposition(StatsText(stats), 1);
  constexpr absl::string_view kName = "coldheap_fault_latency_seconds";
  for (const std::string& sample : {
           absl::StrCat("# TYPE ", kName, " histogram\n"),
           absl::StrCat(kName, "_bucket{pid=\"1\",le=\"0.000001\"} 1\n"),
           absl::StrCat(kName, "_bucket{pid=\"1\",le=\"0.000002\"} 1\n"),
           absl::StrCat(kName, "_bucket{pid=\"1\",le=\"0.000004\"} 3\n"),
           absl::StrCat(kName, "_bucket{pid=\"1\",le=\"0.000128\"} 4\n"),
           absl::StrCat(kName, "_bucket{pid=\"1\",le=\"0.016384\"} 4\n"),
           absl::StrCat(kName, "_bucket{pid=\"1\",le=\"+Inf\"} 5\n"),
           absl::StrCat(kName, "_sum{pid=\"1\"} 0.040077\n"),
           absl::StrCat(kName, "_count{pid=\"1\"} 5\n"),
       }) {
    EXPECT_TRUE(absl::StrContains(exposition, sample))
        << sample << " not in\n" << exposition;
  }
  // The ages are a snapshot: a labelled gauge, not a histogram.
  EXPECT_TRUE(absl::StrContains(
      exposition,
      "coldheap_resident_pages_by_age{pid=\"1\",age_scans_lt=\"8\"} 770\n"))
      << exposition;
}

TEST(Prometheus, UnknownNamesPassUntypedAndMalformedLinesAreDropped) {
  std::string exposition = Exposition(
      "# a comment\nstored_pages 3\nfuture_pages 9\nfuture_pages 10\n"
      "bad-name 1\nrefaults x\nnovalue\nscans -1\nevictor_cpu_us 1.5\n",
      2);
  EXPECT_EQ(exposition,
            "# HELP coldheap_stored_pages Pages held compressed in the pool "
            "(zswap's stored_pages).\n"
            "# TYPE coldheap_stored_pages gauge\n"
            "coldheap_stored_pages{pid=\"2\"} 3\n"
            "# HELP coldheap_future_pages coldheap statistic future_pages (no "
            "description in this version).\n"
            "# TYPE coldheap_future_pages untyped\n"
            "coldheap_future_pages{pid=\"2\"} 9\n");
  EXPECT_EQ(Joined(ExpositionProblems(exposition)), "");
}

TEST(Prometheus, TooSmallABufferGivesNothing) {
  std::string text = StatsText(Stats());
  char small[512];
  EXPECT_EQ(FormatPrometheus(text, 1, small, sizeof(small)), 0u);
}

// With every value at 20 digits the exposition still fits in half the
// shim's buffer, so statistics can be added for a while.
TEST(Prometheus, FitsInHalfTheBufferWithTheLargestValues) {
  std::string exposition = Exposition(StatsText(Stats()), 4'000'000'000);
  ASSERT_FALSE(exposition.empty());
  size_t samples = 0;
  for (absl::string_view line : absl::StrSplit(exposition, '\n')) {
    if (!line.empty() && line[0] != '#') ++samples;
  }
  EXPECT_LT(exposition.size() + samples * 20, kMaxExpositionSize / 2)
      << exposition.size() << " bytes, " << samples << " samples";
}

// ---------------------------------------------------------------------------
// The shim's files.

std::string TempDir() {
  const char* base = getenv("TEST_TMPDIR");
  std::string dir = absl::StrCat(base != nullptr ? base : "/tmp",
                                 "/prometheus-XXXXXX");
  EXPECT_NE(mkdtemp(dir.data()), nullptr);
  return dir;
}

std::string ReadFile(const std::string& path) {
  std::stringstream text;
  text << std::ifstream(path).rdbuf();
  return text.str();
}

Config PrometheusConfig(const std::string& path) {
  std::string value = absl::StrCat("COLDHEAP_STATS=prometheus:", path);
  const char* envp[] = {value.c_str(), nullptr};
  return ParseConfig(envp);
}

TEST(PrometheusFile, ADirectoryGetsAFilePerProcessRemovedAtExit) {
  std::string dir = TempDir();
  Config config = PrometheusConfig(dir + "/");
  ASSERT_TRUE(config.stats_path_is_dir);
  Stats stats;
  Fill(stats);
  ASSERT_TRUE(WriteConfiguredStats(stats, config));
  std::string path = absl::StrCat(dir, "/coldheap_", getpid(), ".prom");
  std::string text = ReadFile(path);
  EXPECT_TRUE(absl::StrContains(
      text, absl::StrCat("coldheap_stored_pages{pid=\"", getpid(), "\"} 1200\n")))
      << text;
  EXPECT_EQ(Joined(ExpositionProblems(text)), "");
  struct stat st;
  ASSERT_EQ(stat(path.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0644u) << "node_exporter reads it";
  EXPECT_NE(stat((path + ".tmp").c_str(), &st), 0) << "no temporary left";

  FinishConfiguredStats(stats, config);
  EXPECT_NE(stat(path.c_str(), &st), 0) << "a process that is gone is not "
                                           "reported";
}

TEST(PrometheusFile, AFileKeepsTheFinalStatistics) {
  std::string path = TempDir() + "/coldheap.prom";
  Config config = PrometheusConfig(path);
  ASSERT_FALSE(config.stats_path_is_dir);
  Stats stats;
  Fill(stats);
  ASSERT_TRUE(WriteConfiguredStats(stats, config));
  stats.evicted_pages = 1501;
  FinishConfiguredStats(stats, config);
  std::string text = ReadFile(path);
  EXPECT_TRUE(absl::StrContains(text, "coldheap_evicted_pages_total{pid=\"" +
                                          std::to_string(getpid()) + "\"} 1501\n"))
      << text;
  EXPECT_EQ(Joined(ExpositionProblems(text)), "");
}

TEST(PrometheusFile, NothingIsWrittenBeforeTheHeapIsInUse) {
  std::string path = TempDir() + "/coldheap.prom";
  ASSERT_TRUE(WriteConfiguredStats(Stats(), PrometheusConfig(path)));
  struct stat st;
  EXPECT_NE(stat(path.c_str(), &st), 0);
}

}  // namespace
}  // namespace coldheap::shim
