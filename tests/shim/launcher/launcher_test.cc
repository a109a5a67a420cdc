// The `coldheap` command, run as users run it: `run` hands the program
// LD_PRELOAD and the COLDHEAP_* variables and finds libcoldheap.so in the
// Bazel and the installed layouts; `stat` reads a live process under the
// shim; every mistake gets one stderr line and a non-zero exit. Plus the
// launcher's pure parts (shim/launcher/*.h) directly. Usage (from Bazel):
//   launcher_test COLDHEAP LIBCOLDHEAP
// The binary is also the program `stat` is pointed at (see HoldHeap):
//   launcher_test --hold-heap MB   allocates and touches MB MiB, then waits
//                                  for EOF on stdin and exits normally
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <spawn.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <optional>
#include <fstream>
#include <ostream>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "gtest/gtest.h"
#include "shim/launcher/run.h"
#include "shim/launcher/settings.h"
#include "shim/launcher/stat.h"
#include "shim/launcher/stats_file.h"
#include "tests/shim/exposition_check.h"

extern char** environ;

namespace coldheap::launcher {
namespace {

std::string launcher_path;
std::string library_path;

// ---------------------------------------------------------------------------
// Helpers.

std::string RealPath(const std::string& path) {
  char buffer[PATH_MAX];
  return realpath(path.c_str(), buffer) != nullptr ? buffer : path;
}

std::string SelfPath() { return RealPath("/proc/self/exe"); }

std::string ReadFile(const std::string& path) {
  std::ifstream in(path);
  std::stringstream text;
  text << in.rdbuf();
  return text.str();
}

bool Exists(const std::string& path) {
  struct stat st;
  return stat(path.c_str(), &st) == 0;
}

std::string TempDir() {
  const char* base = getenv("TEST_TMPDIR");
  std::string dir_template =
      absl::StrCat(base != nullptr ? base : "/tmp", "/launcher-XXXXXX");
  std::vector<char> buffer(dir_template.begin(), dir_template.end());
  buffer.push_back('\0');
  EXPECT_NE(mkdtemp(buffer.data()), nullptr);
  return RealPath(buffer.data());
}

void CopyFile(const std::string& from, const std::string& to, mode_t mode) {
  std::ifstream in(from, std::ios::binary);
  std::ofstream out(to, std::ios::binary);
  out << in.rdbuf();
  out.close();
  chmod(to.c_str(), mode);
}

std::string LiveStatsFile(pid_t pid) {
  return absl::StrCat("/tmp/coldheap-", getuid(), "/", pid, ".stats");
}

// The value of NAME in `env` output ("NAME=value" lines), or nullopt.
std::optional<std::string> EnvValue(const std::string& env_output,
                                    absl::string_view name) {
  for (absl::string_view line : absl::StrSplit(env_output, '\n')) {
    if (absl::ConsumePrefix(&line, name) && absl::ConsumePrefix(&line, "=")) {
      return std::string(line);
    }
  }
  return std::nullopt;
}

// A program started with stdout and stderr in files and, if asked, stdin
// from a pipe the test holds.
class Launched {
 public:
  Launched(const std::string& program, const std::vector<std::string>& args,
           const std::vector<std::string>& env, bool hold_stdin = false)
      : dir_(TempDir()) {
    posix_spawn_file_actions_t actions;
    posix_spawn_file_actions_init(&actions);
    int pipe_fds[2] = {-1, -1};
    if (hold_stdin) {
      EXPECT_EQ(pipe2(pipe_fds, O_CLOEXEC), 0);
      posix_spawn_file_actions_adddup2(&actions, pipe_fds[0], 0);
    } else {
      posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0);
    }
    posix_spawn_file_actions_addopen(&actions, 1, out_path().c_str(),
                                     O_WRONLY | O_CREAT | O_TRUNC, 0644);
    posix_spawn_file_actions_addopen(&actions, 2, err_path().c_str(),
                                     O_WRONLY | O_CREAT | O_TRUNC, 0644);
    std::vector<std::string> words = {program};
    words.insert(words.end(), args.begin(), args.end());
    std::vector<char*> argv, envp;
    for (std::string& w : words) argv.push_back(w.data());
    argv.push_back(nullptr);
    std::vector<std::string> env_copy = env;
    for (std::string& e : env_copy) envp.push_back(e.data());
    envp.push_back(nullptr);
    int error = posix_spawn(&pid_, program.c_str(), &actions, nullptr,
                            argv.data(), envp.data());
    EXPECT_EQ(error, 0) << strerror(error);
    posix_spawn_file_actions_destroy(&actions);
    if (hold_stdin) {
      close(pipe_fds[0]);
      stdin_fd_ = pipe_fds[1];
    }
  }
  ~Launched() {
    CloseStdin();
    if (!waited_) {
      kill(pid_, SIGKILL);
      waitpid(pid_, nullptr, 0);
    }
  }

  pid_t pid() const { return pid_; }

  // EOF on the program's stdin.
  void CloseStdin() {
    if (stdin_fd_ >= 0) close(stdin_fd_);
    stdin_fd_ = -1;
  }

  // The exit code (128 + signal if killed), or -1 after killing it when it
  // has not ended within `timeout`.
  int Wait(std::chrono::milliseconds timeout = std::chrono::seconds(30)) {
    auto deadline = std::chrono::steady_clock::now() + timeout;
    int status = 0;
    for (;;) {
      pid_t done = waitpid(pid_, &status, WNOHANG);
      if (done == pid_) break;
      if (std::chrono::steady_clock::now() > deadline) {
        kill(pid_, SIGKILL);
        waitpid(pid_, &status, 0);
        waited_ = true;
        return -1;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    waited_ = true;
    return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
  }

  std::string Stdout() const { return ReadFile(out_path()); }
  std::string Stderr() const { return ReadFile(err_path()); }

 private:
  std::string out_path() const { return dir_ + "/stdout"; }
  std::string err_path() const { return dir_ + "/stderr"; }

  std::string dir_;
  pid_t pid_ = -1;
  int stdin_fd_ = -1;
  bool waited_ = false;
};

struct Result {
  int exit_code;
  std::string out;
  std::string err;
};

const std::vector<std::string> kBaseEnv = {"PATH=/usr/bin:/bin"};

Result Coldheap(const std::vector<std::string>& args,
                const std::vector<std::string>& env = kBaseEnv,
                const std::string& program = launcher_path) {
  Launched launched(program, args, env);
  int code = launched.Wait();
  return {code, launched.Stdout(), launched.Stderr()};
}

// One line on stderr, "coldheap: ...", nothing on stdout.
void ExpectOneErrorLine(const Result& result) {
  EXPECT_TRUE(absl::StartsWith(result.err, "coldheap: ")) << result.err;
  EXPECT_EQ(std::count(result.err.begin(), result.err.end(), '\n'), 1)
      << result.err;
  EXPECT_TRUE(absl::EndsWith(result.err, "\n")) << result.err;
  EXPECT_EQ(result.out, "");
}

// A program under the shim (through `coldheap run`) whose heap is in the
// region, so it keeps a live statistics file; it exits when the test closes
// its stdin.
class HeldHeap {
 public:
  explicit HeldHeap(const std::vector<std::string>& extra_run_args = {})
      : launched_(launcher_path, RunArgs(extra_run_args), kBaseEnv,
                  /*hold_stdin=*/true) {}

  pid_t pid() const { return launched_.pid(); }

  // Waits until the live file exists and shows evicted pages.
  bool WaitForStatistics() {
    for (int i = 0; i < 300; ++i) {
      absl::StatusOr<Snapshot> snapshot = ReadSnapshot(LiveStatsFile(pid()));
      if (snapshot.ok() && snapshot->Count("evicted_pages").value_or(0) > 0) {
        return true;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
    return false;
  }

  // Lets it exit normally; its exit code.
  int Finish() {
    launched_.CloseStdin();
    return launched_.Wait();
  }

  std::string Stderr() const { return launched_.Stderr(); }

 private:
  static std::vector<std::string> RunArgs(
      const std::vector<std::string>& extra) {
    std::vector<std::string> args = {"run", "--cold-age", "0",
                                     "--scan-interval", "100ms"};
    args.insert(args.end(), extra.begin(), extra.end());
    args.insert(args.end(), {"--", SelfPath(), "--hold-heap", "8"});
    return args;
  }

  Launched launched_;
};

// ---------------------------------------------------------------------------
// run

TEST(LauncherRun, SetsPreloadAfterTheExistingOneAndTheSettings) {
  std::vector<std::string> env = kBaseEnv;
  env.push_back("LD_PRELOAD=libm.so.6");
  Result result = Coldheap(
      {"run", "--cold-age", "5s", "--target=60%", "--", "/usr/bin/env"}, env);
  ASSERT_EQ(result.exit_code, 0) << result.err;
  EXPECT_EQ(result.err, "");
  EXPECT_EQ(EnvValue(result.out, "LD_PRELOAD"),
            "libm.so.6:" + RealPath(library_path));
  EXPECT_EQ(EnvValue(result.out, "COLDHEAP_COLD_AGE"), "5s");
  EXPECT_EQ(EnvValue(result.out, "COLDHEAP_TARGET"), "60%");
  EXPECT_EQ(EnvValue(result.out, "COLDHEAP_ZPOOL"), std::nullopt)
      << "an option not given must not be set";
}

TEST(LauncherRun, EveryOptionSetsItsVariable) {
  Result result = Coldheap({"run", "--cold-age", "2m", "--target", "512M",
                            "--zpool", "zbud", "--compressor", "zstd",
                            "--scan-interval", "250ms", "--stats", "stderr",
                            "--", "/usr/bin/env"});
  ASSERT_EQ(result.exit_code, 0) << result.err;
  EXPECT_EQ(EnvValue(result.out, "COLDHEAP_COLD_AGE"), "2m");
  EXPECT_EQ(EnvValue(result.out, "COLDHEAP_TARGET"), "512M");
  EXPECT_EQ(EnvValue(result.out, "COLDHEAP_ZPOOL"), "zbud");
  EXPECT_EQ(EnvValue(result.out, "COLDHEAP_COMPRESSOR"), "zstd");
  EXPECT_EQ(EnvValue(result.out, "COLDHEAP_SCAN_INTERVAL"), "250ms");
  EXPECT_EQ(EnvValue(result.out, "COLDHEAP_STATS"), "stderr");
}

TEST(LauncherRun, OptionsOverrideTheEnvironmentAndTheRestPassesThrough) {
  std::vector<std::string> env = kBaseEnv;
  env.push_back("COLDHEAP_COLD_AGE=1m");
  env.push_back("COLDHEAP_LOG=off");
  // No "--": the first word that is not an option is the program.
  Result result = Coldheap({"run", "--cold-age=10s", "env"}, env);
  ASSERT_EQ(result.exit_code, 0) << result.err;
  EXPECT_EQ(EnvValue(result.out, "COLDHEAP_COLD_AGE"), "10s");
  EXPECT_EQ(EnvValue(result.out, "COLDHEAP_LOG"), "off");
}

TEST(LauncherRun, PythonGetsMallocUnlessItsAllocatorWasChosen) {
  Result plain = Coldheap({"run", "--", "/usr/bin/env"});
  ASSERT_EQ(plain.exit_code, 0) << plain.err;
  EXPECT_EQ(EnvValue(plain.out, "PYTHONMALLOC"), "malloc");

  std::vector<std::string> env = kBaseEnv;
  env.push_back("PYTHONMALLOC=pymalloc_debug");
  Result chosen = Coldheap({"run", "--", "/usr/bin/env"}, env);
  ASSERT_EQ(chosen.exit_code, 0) << chosen.err;
  EXPECT_EQ(EnvValue(chosen.out, "PYTHONMALLOC"), "pymalloc_debug");
}

// The final statistics of a Python program holding ~20 MiB of small strings
// (each well under pymalloc's 512-byte limit) for 2 s, run by `coldheap run`
// with a cold age of 0 and `extra_env`.
Snapshot PythonRunStatistics(const std::vector<std::string>& extra_env) {
  std::string stats = absl::StrCat(TempDir(), "/python.stats");
  std::vector<std::string> env = kBaseEnv;
  env.insert(env.end(), extra_env.begin(), extra_env.end());
  Result result = Coldheap(
      {"run", "--cold-age", "0", "--scan-interval", "100ms", "--stats", stats,
       "--", "/usr/bin/python3", "-c",
       "import time\n"
       "keep = [('record %d ' % i) * 2 for i in range(300000)]\n"
       "time.sleep(2)\n"
       "print(len(keep))\n"},
      env);
  EXPECT_EQ(result.exit_code, 0) << result.err;
  EXPECT_EQ(result.out, "300000\n");
  absl::StatusOr<Snapshot> snapshot = ReadSnapshot(stats);
  EXPECT_TRUE(snapshot.ok()) << snapshot.status();
  return snapshot.ok() ? *snapshot : Snapshot();
}

TEST(LauncherPython, SmallObjectsAreEvictedWithNoExtraVariable) {
  Snapshot plain = PythonRunStatistics({});
  Snapshot pymalloc = PythonRunStatistics({"PYTHONMALLOC=pymalloc"});
  uint64_t evicted = plain.Count("evicted_pages").value_or(0);
  uint64_t heap = plain.Count("heap_pages").value_or(0);
  // 300000 strings of ~70 bytes: over 20 MiB, 5000 pages.
  EXPECT_GE(heap, 4000u);
  EXPECT_GE(evicted, 4000u);
  // Under pymalloc those strings are out of the shim's reach: only the
  // list and the interpreter's larger blocks are in the region.
  EXPECT_GT(heap, 3 * pymalloc.Count("heap_pages").value_or(0));
  EXPECT_GT(evicted, 3 * pymalloc.Count("evicted_pages").value_or(0));
}

TEST(LauncherRun, DenseAloneIsZstdAndTakesAValueOnlyAfterEquals) {
  Result alone = Coldheap({"run", "--dense", "/usr/bin/env"});
  ASSERT_EQ(alone.exit_code, 0) << alone.err;
  EXPECT_EQ(EnvValue(alone.out, "COLDHEAP_DENSE"), "zstd");
  for (const char* value : {"zstd:5", "off"}) {
    Result given =
        Coldheap({"run", absl::StrCat("--dense=", value), "--", "/usr/bin/env"});
    ASSERT_EQ(given.exit_code, 0) << given.err;
    EXPECT_EQ(EnvValue(given.out, "COLDHEAP_DENSE"), value);
  }
}

TEST(LauncherRun, ProgramArgumentsAndExitStatusPassThrough) {
  Result result = Coldheap(
      {"run", "--", "/bin/sh", "-c", "echo \"$0 $1\"; exit 7", "a", "--b"});
  EXPECT_EQ(result.exit_code, 7) << result.err;
  EXPECT_EQ(result.out, "a --b\n");
}

TEST(LauncherRun, AnEarlierShimInThePreloadIsReplaced) {
  std::vector<std::string> env = kBaseEnv;
  env.push_back("LD_PRELOAD=/old/libcoldheap.so libm.so.6");
  Result result = Coldheap({"run", "--", "/usr/bin/env"}, env);
  ASSERT_EQ(result.exit_code, 0) << result.err;
  EXPECT_EQ(EnvValue(result.out, "LD_PRELOAD"),
            "libm.so.6 " + RealPath(library_path));
}

// An installed launcher finds the library by its own location.
class LauncherInstalled : public testing::TestWithParam<const char*> {};

TEST_P(LauncherInstalled, FindsTheLibraryInThisLayout) {
  std::string prefix = TempDir();
  std::string lib_dir = absl::StrCat(prefix, "/", GetParam());
  ASSERT_EQ(mkdir((prefix + "/bin").c_str(), 0755), 0);
  ASSERT_EQ(system(absl::StrCat("mkdir -p ", lib_dir).c_str()), 0);
  CopyFile(launcher_path, prefix + "/bin/coldheap", 0755);
  std::string library = RealPath(lib_dir) + "/libcoldheap.so";
  CopyFile(library_path, library, 0644);
  Result result =
      Coldheap({"run", "--", "/usr/bin/env"}, kBaseEnv, prefix + "/bin/coldheap");
  ASSERT_EQ(result.exit_code, 0) << result.err;
  EXPECT_EQ(EnvValue(result.out, "LD_PRELOAD"), library);
}

INSTANTIATE_TEST_SUITE_P(Layouts, LauncherInstalled,
                         testing::Values("bin", "lib/coldheap", "lib"));

TEST(LauncherRun, ColdheapLibIsUsedAndNotPassedOn) {
  std::string prefix = TempDir();
  CopyFile(launcher_path, prefix + "/coldheap", 0755);  // no library beside
  std::string lib_dir = TempDir();
  CopyFile(library_path, lib_dir + "/libcoldheap.so", 0644);
  std::vector<std::string> env = kBaseEnv;
  env.push_back("COLDHEAP_LIB=" + lib_dir);
  Result result =
      Coldheap({"run", "--", "/usr/bin/env"}, env, prefix + "/coldheap");
  ASSERT_EQ(result.exit_code, 0) << result.err;
  EXPECT_EQ(EnvValue(result.out, "LD_PRELOAD"), lib_dir + "/libcoldheap.so");
  EXPECT_EQ(EnvValue(result.out, "COLDHEAP_LIB"), std::nullopt);
}

TEST(LauncherRun, MissingLibraryIsOneLine) {
  std::string prefix = TempDir();
  CopyFile(launcher_path, prefix + "/coldheap", 0755);
  Result result = Coldheap({"run", "--", "/usr/bin/env"}, kBaseEnv,
                           prefix + "/coldheap");
  EXPECT_EQ(result.exit_code, 1);
  ExpectOneErrorLine(result);
  EXPECT_TRUE(absl::StrContains(result.err, "cannot find libcoldheap.so"))
      << result.err;

  std::vector<std::string> env = kBaseEnv;
  env.push_back("COLDHEAP_LIB=/nonexistent");
  result = Coldheap({"run", "--", "/usr/bin/env"}, env);
  EXPECT_EQ(result.exit_code, 1);
  ExpectOneErrorLine(result);
  EXPECT_TRUE(absl::StrContains(result.err, "COLDHEAP_LIB='/nonexistent'"))
      << result.err;
}

// ---------------------------------------------------------------------------
// Mistakes: one line, non-zero exit.

struct Mistake {
  std::vector<std::string> args;
  int exit_code;
  std::string says;  // a part of the line
};

void PrintTo(const Mistake& mistake, std::ostream* os) {
  *os << "coldheap " << absl::StrJoin(mistake.args, " ");
}

class LauncherMistake : public testing::TestWithParam<Mistake> {};

TEST_P(LauncherMistake, IsOneLineAndNonZeroExit) {
  Result result = Coldheap(GetParam().args);
  EXPECT_EQ(result.exit_code, GetParam().exit_code) << result.err;
  ExpectOneErrorLine(result);
  EXPECT_TRUE(absl::StrContains(result.err, GetParam().says)) << result.err;
}

INSTANTIATE_TEST_SUITE_P(
    Cases, LauncherMistake,
    testing::Values(
        Mistake{{"run", "--cold-age", "5s", "--"}, 2, "no program after '--'"},
        Mistake{{"run"}, 2, "no program to run"},
        Mistake{{"run", "--", "coldheap-no-such-program"}, 127,
                "'coldheap-no-such-program' not found on PATH"},
        Mistake{{"run", "--", "/nonexistent/program"}, 127,
                "cannot run '/nonexistent/program': No such file"},
        Mistake{{"run", "--", "/usr"}, 126, "cannot run '/usr': Permission denied"},
        // The wording is the library's own (shim/config.cc).
        Mistake{{"run", "--cold-age", "30x", "--", "true"}, 2,
                "--cold-age '30x' is not a duration (accepted: 0 or a "
                "duration up to 24h"},
        Mistake{{"run", "--scan-interval", "0", "--", "true"}, 2,
                "--scan-interval '0' is out of range (accepted: "},
        Mistake{{"run", "--target", "1.5G", "--", "true"}, 2,
                "--target '1.5G' is not a size or a percentage (accepted: "},
        Mistake{{"run", "--target", "101%", "--", "true"}, 2,
                "--target '101%' is out of range"},
        Mistake{{"run", "--zpool", "zfs", "--", "true"}, 2,
                "--zpool 'zfs' is not a pool type (accepted: zsmalloc or zbud)"},
        Mistake{{"run", "--compressor", "gzip", "--", "true"}, 2,
                "(accepted: lz4 or zstd)"},
        Mistake{{"run", "--cold-age"}, 2, "--cold-age needs a value"},
        Mistake{{"run", "--dense=zstd:40", "--", "true"}, 2,
                "--dense 'zstd:40' is out of range"},
        Mistake{{"stat", "--format=json", "1"}, 2,
                "--format 'json' is not text or prometheus"},
        Mistake{{"stat", "--format=prometheus", "--watch", "1"}, 2,
                "does not go with --watch"},
        Mistake{{"run", "--frobnicate", "--", "true"}, 2,
                "unknown option '--frobnicate'"},
        Mistake{{"frobnicate"}, 2, "unknown command 'frobnicate'"},
        Mistake{{"--frobnicate"}, 2, "unknown option '--frobnicate'"},
        Mistake{{"help", "frobnicate"}, 2, "unknown command 'frobnicate'"},
        Mistake{{"stat"}, 2, "no process id"},
        Mistake{{"stat", "12ab"}, 2, "'12ab' is not a process id"},
        Mistake{{"stat", "--interval", "0", "1"}, 2,
                "--interval '0' is out of range"},
        Mistake{{"stat", "--frobnicate", "1"}, 2,
                "unknown option '--frobnicate'"},
        Mistake{{"stat", "1", "2"}, 2, "one process id only"}));

TEST(LauncherMistakes, NoArgumentsPrintsUsageAndFails) {
  Result result = Coldheap({});
  EXPECT_EQ(result.exit_code, 2);
  EXPECT_TRUE(absl::StartsWith(result.err, "Usage: coldheap")) << result.err;
}

// ---------------------------------------------------------------------------
// help

TEST(LauncherHelp, EveryFormPrintsUsageOnStdout) {
  const std::vector<std::vector<std::string>> forms = {
      {"--help"}, {"-h"}, {"help"}, {"help", "run"}, {"run", "--help"},
      {"help", "stat"}, {"stat", "--help"}};
  for (const auto& form : forms) {
    Result result = Coldheap(form);
    std::string shown = absl::StrJoin(form, " ");
    EXPECT_EQ(result.exit_code, 0) << shown;
    EXPECT_EQ(result.err, "") << shown;
    EXPECT_TRUE(absl::StartsWith(result.out, "Usage: coldheap")) << shown;
  }
  EXPECT_TRUE(absl::StartsWith(Coldheap({"run", "--help"}).out,
                               "Usage: coldheap run"));
  EXPECT_TRUE(absl::StartsWith(Coldheap({"stat", "--help"}).out,
                               "Usage: coldheap stat"));
}

TEST(LauncherHelp, RunUsageNamesEveryOptionWithTheLibrarysDefault) {
  // Words only: the text is wrapped to the terminal's width.
  std::string usage = absl::StrJoin(
      absl::StrSplit(Coldheap({"help", "run"}).out, absl::ByAnyChar(" \n"),
                     absl::SkipEmpty()),
      " ");
  for (const char* option : {"--cold-age", "--target", "--zpool",
                             "--compressor", "--scan-interval", "--stats"}) {
    EXPECT_TRUE(absl::StrContains(usage, option)) << option;
  }
  EXPECT_TRUE(absl::StrContains(usage, "COLDHEAP_COLD_AGE, default 30s"))
      << usage;
  EXPECT_TRUE(absl::StrContains(usage, "COLDHEAP_ZPOOL, default zsmalloc"))
      << usage;
}

// ---------------------------------------------------------------------------
// stat

TEST(LauncherStat, ShowsALiveProcessGrouped) {
  HeldHeap held;
  ASSERT_TRUE(held.WaitForStatistics()) << held.Stderr();
  Result result = Coldheap({"stat", absl::StrCat(held.pid())});
  EXPECT_EQ(result.exit_code, 0) << result.err;
  EXPECT_EQ(result.err, "");
  EXPECT_TRUE(absl::StartsWith(result.out, absl::StrCat("process ", held.pid())))
      << result.out;
  for (const char* part :
       {"\npool\n", "\nmemory\n", "\nactivity\n", "\ncosts\n", "stored pages",
        "same-filled pages", "pool total size", "compression ratio",
        "resident heap pages", "evicted pages", "refaults", "evictor CPU",
        "fault handler CPU", " MiB"}) {
    EXPECT_TRUE(absl::StrContains(result.out, part)) << part << "\n"
                                                      << result.out;
  }
  EXPECT_EQ(held.Finish(), 0) << held.Stderr();
  EXPECT_FALSE(Exists(LiveStatsFile(held.pid())))
      << "the live file outlived its process";
}

// The metric names of an exposition's samples, in order.
std::vector<std::string> SampleNames(const std::string& exposition) {
  std::vector<std::string> names;
  for (absl::string_view line : absl::StrSplit(exposition, '\n')) {
    if (line.empty() || line[0] == '#') continue;
    names.emplace_back(line.substr(0, line.find('{')));
  }
  return names;
}

TEST(LauncherStat, PrometheusFormatIsWhatTheShimWritesAndParses) {
  std::string dir = TempDir();
  HeldHeap held({"--stats", absl::StrCat("prometheus:", dir, "/")});
  ASSERT_TRUE(held.WaitForStatistics()) << held.Stderr();
  Result result =
      Coldheap({"stat", "--format=prometheus", absl::StrCat(held.pid())});
  ASSERT_EQ(result.exit_code, 0) << result.err;
  EXPECT_EQ(result.err, "");
  EXPECT_TRUE(absl::StrContains(
      result.out, absl::StrCat("\ncoldheap_stored_pages{pid=\"", held.pid(),
                               "\"} ")))
      << result.out;
  EXPECT_EQ(absl::StrJoin(coldheap::exposition::ExpositionProblems(result.out),
                          "\n"),
            "");
  coldheap::exposition::PromtoolResult promtool =
      coldheap::exposition::Promtool(result.out);
  ASSERT_NE(promtool.exit_code, -1) << promtool.output;
  EXPECT_EQ(promtool.exit_code, 0) << promtool.output;
  EXPECT_EQ(promtool.output, "");

  // The shim's own file for node_exporter: the same metrics.
  std::string shims = absl::StrCat(dir, "/coldheap_", held.pid(), ".prom");
  EXPECT_EQ(SampleNames(ReadFile(shims)), SampleNames(result.out));
  EXPECT_EQ(held.Finish(), 0) << held.Stderr();
  EXPECT_FALSE(Exists(shims)) << "a process that is gone is not reported";
}

TEST(LauncherStat, WatchPrintsLinesUntilTheProcessExits) {
  HeldHeap held;
  ASSERT_TRUE(held.WaitForStatistics()) << held.Stderr();
  Launched watch(launcher_path,
                 {"stat", "--watch", absl::StrCat(held.pid()), "--interval",
                  "100ms"},
                 kBaseEnv);
  // The header and a few lines, then the process exits.
  auto lines_so_far = [&] {
    std::string out = watch.Stdout();
    return std::count(out.begin(), out.end(), '\n');
  };
  for (int i = 0; i < 200 && lines_so_far() < 4; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  EXPECT_EQ(held.Finish(), 0) << held.Stderr();
  EXPECT_EQ(watch.Wait(std::chrono::seconds(10)), 0) << watch.Stderr();
  std::vector<std::string> lines =
      absl::StrSplit(watch.Stdout(), '\n', absl::SkipEmpty());
  ASSERT_GE(lines.size(), 4u) << watch.Stdout();
  EXPECT_TRUE(absl::StrContains(lines[0], "evicted/s")) << lines[0];
  EXPECT_TRUE(absl::StrContains(lines[0], "refaults/s")) << lines[0];
  EXPECT_TRUE(absl::StrContains(lines[0], "mistakes/min")) << lines[0];
  // Every line between the header and the last has one figure per column.
  size_t columns = std::vector<std::string>(
                       absl::StrSplit(lines[0], ' ', absl::SkipEmpty()))
                       .size();
  for (size_t i = 1; i + 1 < lines.size(); ++i) {
    EXPECT_EQ(std::vector<std::string>(
                  absl::StrSplit(lines[i], ' ', absl::SkipEmpty()))
                  .size(),
              columns)
        << lines[i];
  }
  EXPECT_TRUE(absl::StartsWith(lines.back(),
                               absl::StrCat("process ", held.pid(), " exited")))
      << lines.back();
  EXPECT_EQ(watch.Stderr(), "");
}

TEST(LauncherStat, AProcessWithoutTheShimIsNamedWithItsMissingFile) {
  Result result = Coldheap({"stat", absl::StrCat(getpid())});
  EXPECT_EQ(result.exit_code, 1);
  ExpectOneErrorLine(result);
  EXPECT_EQ(result.err,
            absl::StrCat("coldheap: process ", getpid(),
                         " is not running under coldheap (no /tmp/coldheap-",
                         getuid(), "/", getpid(), ".stats)\n"));
}

TEST(LauncherStat, AProcessUnderTheShimBeforeItsFirstScanIsExplained) {
  // The first scan, which writes the file, is 10 minutes away.
  Launched held(launcher_path,
                {"run", "--scan-interval", "10m", "--", SelfPath(),
                 "--hold-heap", "1"},
                kBaseEnv, /*hold_stdin=*/true);
  for (int i = 0; i < 300 && !MapsShim(held.pid()); ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  ASSERT_TRUE(MapsShim(held.pid())) << held.Stderr();
  Result result = Coldheap({"stat", absl::StrCat(held.pid())});
  EXPECT_EQ(result.exit_code, 1);
  ExpectOneErrorLine(result);
  EXPECT_TRUE(absl::StrContains(
      result.err, absl::StrCat("process ", held.pid(),
                               " runs under coldheap but has not written ")))
      << result.err;
  held.CloseStdin();
  EXPECT_EQ(held.Wait(), 0) << held.Stderr();
}

TEST(LauncherStat, AFileLeftByAnEarlierProcessIsNotBelieved) {
  // A process that started after its statistics file was written (its id
  // reused after a killed process under the shim).
  Launched sleeper("/bin/sleep", {"30"}, kBaseEnv);
  std::string file = LiveStatsFile(sleeper.pid());
  ASSERT_EQ(system(absl::StrCat("mkdir -p -m 700 /tmp/coldheap-", getuid(),
                                " && echo 'stored_pages 1' > ", file,
                                " && touch -d '1 hour ago' ", file)
                       .c_str()),
            0);
  Result result = Coldheap({"stat", absl::StrCat(sleeper.pid())});
  unlink(file.c_str());
  EXPECT_EQ(result.exit_code, 1);
  ExpectOneErrorLine(result);
  EXPECT_TRUE(absl::StrContains(result.err, "was left by an earlier process"))
      << result.err;
}

TEST(LauncherStat, AProcessThatIsGoneIsNoProcess) {
  pid_t child = fork();
  if (child == 0) _exit(0);
  ASSERT_GT(child, 0);
  waitpid(child, nullptr, 0);
  Result result = Coldheap({"stat", absl::StrCat(child)});
  EXPECT_EQ(result.exit_code, 1);
  ExpectOneErrorLine(result);
  EXPECT_EQ(result.err, absl::StrCat("coldheap: no process ", child, "\n"));
}

// ---------------------------------------------------------------------------
// The pure parts.

TEST(ComposePreload, AppendsWithTheSeparatorInUse) {
  EXPECT_EQ(ComposePreload("", "/l/libcoldheap.so"), "/l/libcoldheap.so");
  EXPECT_EQ(ComposePreload("a.so", "/l/libcoldheap.so"),
            "a.so:/l/libcoldheap.so");
  EXPECT_EQ(ComposePreload("a.so b.so", "/l/libcoldheap.so"),
            "a.so b.so /l/libcoldheap.so");
  EXPECT_EQ(ComposePreload(":a.so::b.so: ", "/l/libcoldheap.so"),
            "a.so:b.so:/l/libcoldheap.so");
}

TEST(ComposePreload, NeverLoadsTheShimTwice) {
  EXPECT_EQ(ComposePreload("/old/libcoldheap.so:a.so", "/l/libcoldheap.so"),
            "a.so:/l/libcoldheap.so");
  EXPECT_EQ(ComposePreload("/l/libcoldheap.so", "/l/libcoldheap.so"),
            "/l/libcoldheap.so");
  EXPECT_EQ(ComposePreload("libcoldheap.so.bak", "/l/libcoldheap.so"),
            "libcoldheap.so.bak:/l/libcoldheap.so");
}

TEST(ParseSetting, AcceptsWhatTheLibraryAccepts) {
  absl::StatusOr<shim::Config> config = ParseSetting("COLDHEAP_COLD_AGE", "2m");
  ASSERT_TRUE(config.ok()) << config.status();
  EXPECT_EQ(config->cold_age_ms, 120'000u);
  config = ParseSetting("COLDHEAP_SCAN_INTERVAL", " 250MS ");
  ASSERT_TRUE(config.ok()) << config.status();
  EXPECT_EQ(config->scan_interval_ms, 250u);
}

TEST(ParseSetting, RejectsWithTheLibrarysReasonAndKeepsStderr) {
  struct stat before, after;
  ASSERT_EQ(fstat(2, &before), 0);
  absl::StatusOr<shim::Config> config = ParseSetting("COLDHEAP_COLD_AGE", "2d");
  ASSERT_EQ(fstat(2, &after), 0);
  EXPECT_EQ(before.st_ino, after.st_ino);
  EXPECT_EQ(before.st_dev, after.st_dev);
  ASSERT_FALSE(config.ok());
  EXPECT_TRUE(absl::StartsWith(config.status().message(),
                               "'2d' is not a duration (accepted: "))
      << config.status();
  EXPECT_TRUE(absl::EndsWith(config.status().message(), ")"))
      << config.status();
}

TEST(DefaultSetting, IsWhatTheLibraryPrints) {
  EXPECT_EQ(DefaultSetting("COLDHEAP_COLD_AGE"), "30s");
  EXPECT_EQ(DefaultSetting("COLDHEAP_ZPOOL"), "zsmalloc");
  EXPECT_EQ(DefaultSetting("COLDHEAP_TARGET"), "none");
  EXPECT_EQ(DefaultSetting("COLDHEAP_NO_SUCH_THING"), "");
}

TEST(Rates, FollowTheFilesOwnClock) {
  Snapshot earlier = ParseSnapshot(
      "# comment\nevicted_pages 100\nrefaults 10\nreject_busy 1\n"
      "reject_compress_poor 1\nevictor_cpu_us 0\nhandler_cpu_us 0\nmistakes 4\n");
  Snapshot later = ParseSnapshot(
      "evicted_pages 300\nrefaults 30\nreject_busy 3\nreject_compress_poor 3\n"
      "evictor_cpu_us 20000\nhandler_cpu_us 20000\nmistakes 10\n");
  earlier.written = {1000, 500'000'000};
  later.written = {1002, 500'000'000};
  Rates rates = RatesBetween(earlier, later);
  EXPECT_DOUBLE_EQ(rates.evicted, 100);
  EXPECT_DOUBLE_EQ(rates.refaults, 10);
  EXPECT_DOUBLE_EQ(rates.rejects, 2);
  EXPECT_DOUBLE_EQ(rates.mistakes, 3);
  EXPECT_DOUBLE_EQ(rates.cpu_percent, 2);
  // The same version read twice: no time passed, no rate.
  EXPECT_DOUBLE_EQ(RatesBetween(later, later).evicted, 0);
}

TEST(Report, ShowsCountersItDoesNotKnowUnderOther) {
  Process process;
  process.pid = 42;
  Snapshot snapshot =
      ParseSnapshot("stored_pages 256\nsome_new_counter 7\n");
  std::string report = FormatReport(process, snapshot);
  EXPECT_TRUE(absl::StrContains(report, "stored pages")) << report;
  EXPECT_TRUE(absl::StrContains(report, "1.0 MiB")) << report;
  EXPECT_TRUE(absl::StrContains(report, "other\n  some_new_counter")) << report;
}

TEST(Report, ShowsMistakesTheirRateAndCostAndRaisedPages) {
  Process process;
  process.pid = 42;
  process.age_seconds = 120;
  Snapshot snapshot = ParseSnapshot(
      "raised_threshold_pages 512\nmistakes 300\nrefault_cost_us 90000\n"
      "refault_cost_ppm 15000\n");
  std::string report = FormatReport(process, snapshot);
  EXPECT_TRUE(absl::StrContains(report, "raised threshold")) << report;
  EXPECT_TRUE(absl::StrContains(report, "2.0 MiB, pages that came back too soon"))
      << report;
  EXPECT_TRUE(absl::StrContains(report, "mistakes per minute")) << report;
  EXPECT_TRUE(absl::StrContains(report, "150.0  since start")) << report;
  EXPECT_TRUE(absl::StrContains(report, "refault cost now")) << report;
  EXPECT_TRUE(absl::StrContains(report, "1.50%  of one core")) << report;
  EXPECT_FALSE(absl::StrContains(report, "other\n")) << report;
}

// ---------------------------------------------------------------------------
// The program `stat` is pointed at.

volatile char* held_heap = nullptr;

int HoldHeap(const char* megabytes) {
  size_t bytes = static_cast<size_t>(atoi(megabytes)) << 20;
  char* heap = static_cast<char*>(malloc(bytes));
  if (heap == nullptr) return 1;
  for (size_t i = 0; i < bytes; ++i) heap[i] = static_cast<char>(i % 251);
  held_heap = heap;
  char byte;
  while (read(0, &byte, 1) > 0 || errno == EINTR) {
  }
  free(const_cast<char*>(held_heap));
  return 0;
}

}  // namespace
}  // namespace coldheap::launcher

int main(int argc, char** argv) {
  if (argc == 3 && strcmp(argv[1], "--hold-heap") == 0) {
    return coldheap::launcher::HoldHeap(argv[2]);
  }
  testing::InitGoogleTest(&argc, argv);
  if (argc != 3) {
    fprintf(stderr, "usage: %s COLDHEAP LIBCOLDHEAP\n", argv[0]);
    return 2;
  }
  coldheap::launcher::launcher_path = coldheap::launcher::RealPath(argv[1]);
  coldheap::launcher::library_path = coldheap::launcher::RealPath(argv[2]);
  return RUN_ALL_TESTS();
}
