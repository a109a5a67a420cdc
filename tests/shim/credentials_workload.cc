// A program that changes its credentials the way privilege-dropping programs
// do (setpriv, daemons using libcap), with its heap being evicted, for
// credentials_test.sh to run as root with and without the shim. Each step
// prints one line, the same with or without the shim; on stderr it says how
// many threads it checked. Exit status 0 means every check held.
//   1. fills heap memory with data it can recompute and, under the shim,
//      waits until pages were evicted;
//   2. drops CAP_SETUID from its effective set (raw capset, as libcap does)
//      and expects setresuid() to fail with EPERM;
//   3. keeps only CAP_SETUID and CAP_SETGID, sets keep-caps and
//      setresuid(65534): they stay permitted, the effective set is emptied;
//   4. raises them effective again and calls setresgid(65534) and
//      setgroups(0), which need CAP_SETGID (setpriv's own sequence);
//   5. checks every thread of the process (the shim's too) in
//      /proc/self/task/*/status: the same ids and capability sets as this
//      thread, so none is left more privileged than the program;
//   6. under the shim, waits until pages were evicted again (the evictor
//      works on as nobody), verifies every byte, allocates more and verifies
//      again.
#include <dirent.h>
#include <errno.h>
#include <grp.h>
#include <linux/capability.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

namespace {

constexpr uid_t kNobody = 65534;
constexpr uint32_t kSetIds = (1u << CAP_SETUID) | (1u << CAP_SETGID);

[[noreturn]] void Fail(const std::string& what) {
  fprintf(stderr, "credentials_workload: FAIL: %s\n", what.c_str());
  exit(1);
}

// A value from the shim's statistics file (COLDHEAP_STATS), 0 if absent.
uint64_t Stat(const char* name) {
  const char* path = getenv("COLDHEAP_STATS");
  std::ifstream in(path != nullptr ? path : "");
  std::string key;
  uint64_t value = 0;
  std::string line;
  while (std::getline(in, line)) {
    std::istringstream fields(line);
    if (fields >> key >> value && key == name) return value;
  }
  return 0;
}

// Under the shim: waits until `evicted_pages` exceeds `than`.
void WaitForEvictionBeyond(uint64_t than) {
  const char* path = getenv("COLDHEAP_STATS");
  if (path == nullptr || *path == '\0') return;  // the run without the shim
  for (int i = 0; i < 1500; ++i) {
    if (Stat("evicted_pages") > than) return;
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  Fail("no eviction seen within 30 s (is the shim active?)");
}

uint8_t ByteAt(uint64_t block, uint64_t i) {
  uint64_t x = (block * 0x9E3779B97F4A7C15ull) ^ (i / 64);
  x ^= x >> 29;
  return static_cast<uint8_t>(i % 3 == 0 ? 'a' + x % 26 : x >> (i % 8));
}

struct Heap {
  std::vector<uint8_t*> blocks;
  static constexpr size_t kBlockBytes = 64 << 10;

  void Grow(size_t mb) {
    for (size_t n = 0; n < (mb << 20) / kBlockBytes; ++n) {
      auto* p = static_cast<uint8_t*>(malloc(kBlockBytes));
      if (p == nullptr) Fail("malloc");
      for (size_t i = 0; i < kBlockBytes; ++i) p[i] = ByteAt(blocks.size(), i);
      blocks.push_back(p);
    }
  }

  void Verify(const char* when) const {
    for (size_t b = 0; b < blocks.size(); ++b) {
      for (size_t i = 0; i < kBlockBytes; ++i) {
        if (blocks[b][i] != ByteAt(b, i)) {
          Fail(std::string(when) + ": block " + std::to_string(b) + " byte " +
               std::to_string(i) + " differs");
        }
      }
    }
  }
};

struct Caps {
  uint32_t effective = 0, permitted = 0;
};

// Raw capget/capset on the calling thread, as libcap does.
Caps GetCaps() {
  __user_cap_header_struct header{_LINUX_CAPABILITY_VERSION_3, 0};
  __user_cap_data_struct data[2] = {};
  if (syscall(SYS_capget, &header, data) != 0) Fail("capget");
  return {data[0].effective, data[0].permitted};
}

void SetCaps(uint32_t effective, uint32_t permitted) {
  __user_cap_header_struct header{_LINUX_CAPABILITY_VERSION_3, 0};
  __user_cap_data_struct data[2] = {};
  data[0].effective = effective;
  data[0].permitted = permitted;
  if (syscall(SYS_capset, &header, data) != 0) {
    Fail(std::string("capset: ") + strerror(errno));
  }
}

// The lines of a thread's status that set*id() reads or changes (the
// bounding and ambient sets matter only to execve, which our threads never
// call).
std::string CredentialLines(const std::string& status_path) {
  std::ifstream in(status_path);
  std::string line, out;
  while (std::getline(in, line)) {
    for (const char* key :
         {"Uid:", "Gid:", "Groups:", "CapInh:", "CapPrm:", "CapEff:"}) {
      if (line.rfind(key, 0) == 0) out += line + "\n";
    }
  }
  return out;
}

// Every thread's credentials match this thread's; returns how many threads.
int CheckAllThreadsMatch() {
  const std::string self =
      CredentialLines("/proc/self/task/" + std::to_string(gettid()) + "/status");
  DIR* dir = opendir("/proc/self/task");
  if (dir == nullptr) Fail("opendir /proc/self/task");
  int threads = 0;
  while (dirent* entry = readdir(dir)) {
    if (entry->d_name[0] == '.') continue;
    std::string theirs = CredentialLines(std::string("/proc/self/task/") +
                                         entry->d_name + "/status");
    if (theirs != self) {
      Fail(std::string("thread ") + entry->d_name + " has\n" + theirs +
           "where this thread has\n" + self);
    }
    ++threads;
  }
  closedir(dir);
  return threads;
}

}  // namespace

int main() {
  if (geteuid() != 0) Fail("run me as root");
  Heap heap;
  heap.Grow(16);
  WaitForEvictionBeyond(0);
  heap.Verify("before any change");
  printf("filled %zu blocks\n", heap.blocks.size());

  const Caps root = GetCaps();
  SetCaps(root.effective & ~(1u << CAP_SETUID), root.permitted);
  int rc = setresuid(kNobody, kNobody, kNobody);
  printf("setresuid without CAP_SETUID effective: %d (%s)\n", rc,
         rc == 0 ? "ok" : strerror(errno));
  if (rc == 0) Fail("setresuid succeeded without CAP_SETUID");

  SetCaps(kSetIds, kSetIds);
  if (prctl(PR_SET_KEEPCAPS, 1, 0, 0, 0) != 0) Fail("PR_SET_KEEPCAPS");
  rc = setresuid(kNobody, kNobody, kNobody);
  const Caps kept = GetCaps();
  printf("setresuid(65534) with keep-caps: %d; effective %#x permitted %#x\n",
         rc, kept.effective, kept.permitted);
  if (rc != 0) Fail(std::string("setresuid: ") + strerror(errno));

  SetCaps(kSetIds, kSetIds);
  rc = setresgid(kNobody, kNobody, kNobody);
  printf("setresgid(65534) after raising CAP_SETGID again: %d\n", rc);
  if (rc != 0) Fail(std::string("setresgid: ") + strerror(errno));
  rc = setgroups(0, nullptr);
  printf("setgroups(0): %d\n", rc);
  if (rc != 0) Fail(std::string("setgroups: ") + strerror(errno));

  const int threads = CheckAllThreadsMatch();
  printf("every thread: uid %u gid %u, the same capabilities as this one\n",
         getuid(), getgid());
  fprintf(stderr, "threads checked: %d\n", threads);

  const uint64_t evicted = Stat("evicted_pages");
  heap.Verify("after the change");
  heap.Grow(8);
  WaitForEvictionBeyond(evicted);
  heap.Verify("after more eviction as nobody");
  printf("verified %zu blocks as nobody\n", heap.blocks.size());
  return 0;
}
