#include "tests/shim/workload_runner.h"

#include <fcntl.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <fstream>
#include <sstream>

namespace coldheap::testing {
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

namespace {

// Leaves exactly `free_fds` descriptor numbers free under a small
// RLIMIT_NOFILE, the rest taken by copies of stdin.
void TakeDescriptors(int free_fds) {
  constexpr int kLimit = 32;
  rlimit limit = {kLimit, kLimit};
  setrlimit(RLIMIT_NOFILE, &limit);
  for (int fd = 3; fd < kLimit - free_fds; ++fd) dup2(0, fd);
  for (int fd = kLimit - free_fds; fd < kLimit; ++fd) close(fd);
}

}  // namespace

WorkloadRun RunWorkload(const WorkloadOptions& options) {
  char dir_template[] = "/tmp/coldheap-run-XXXXXX";
  std::string dir = mkdtemp(dir_template);
  chmod(dir.c_str(), 0777);
  std::string stats_path = dir + "/stats";
  std::string err_path = dir + "/stderr";
  std::string out_path = dir + "/stdout";
  // getenv takes the first of duplicates: the caller's env wins.
  std::vector<std::string> env = options.env;
  env.push_back("PATH=/usr/bin:/bin");
  if (options.with_shim) {
    env.push_back("COLDHEAP_COLD_AGE=0");
    env.push_back("COLDHEAP_SCAN_INTERVAL=50ms");
    env.push_back("LD_PRELOAD=" + shim_path);
    env.push_back("COLDHEAP_STATS=" + stats_path);
  }
  if (options.plain_ok) env.push_back("HEAP_WORKLOAD_PLAIN_OK=1");
  const std::string& program = options.program.empty() ? workload_path : options.program;
  std::vector<std::string> argv = {program};
  argv.insert(argv.end(), options.args.begin(), options.args.end());
  pid_t pid = fork();
  if (pid == 0) {
    int err = open(err_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0666);
    dup2(err, 2);
    int out = open(out_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0666);
    dup2(out, 1);
    int null = open("/dev/null", O_RDWR);
    dup2(null, 0);
    for (int fd : {err, out, null}) {
      if (fd > 2) close(fd);
    }
    alarm(120);
    std::vector<char*> cargv, cenv;
    for (auto& a : argv) cargv.push_back(a.data());
    cargv.push_back(nullptr);
    for (auto& e : env) cenv.push_back(e.data());
    cenv.push_back(nullptr);
    if (options.free_fds >= 0) TakeDescriptors(options.free_fds);
    if (options.limit_resource >= 0) {
      rlimit limit = {options.limit, options.limit};
      setrlimit(options.limit_resource, &limit);
    }
    execve(program.c_str(), cargv.data(), cenv.data());
    _exit(127);
  }
  int status = 0;
  waitpid(pid, &status, 0);
  WorkloadRun run;
  run.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
  run.stderr_text = ReadFile(err_path);
  run.stdout_text = ReadFile(out_path);
  run.stats = ParseStats(ReadFile(stats_path));
  std::string cleanup = "rm -rf " + dir;
  (void)!system(cleanup.c_str());
  return run;
}

size_t Count(const std::string& text, const std::string& what) {
  size_t n = 0;
  for (size_t at = text.find(what); at != std::string::npos;
       at = text.find(what, at + 1)) {
    ++n;
  }
  return n;
}

bool ParsePaths(int argc, char** argv) {
  if (argc < 3) {
    fprintf(stderr, "usage: %s LIBCOLDHEAP HEAP_WORKLOAD\n", argv[0]);
    return false;
  }
  char buf[4096];
  shim_path = realpath(argv[1], buf) ? buf : argv[1];
  workload_path = realpath(argv[2], buf) ? buf : argv[2];
  return true;
}

}  // namespace coldheap::testing
