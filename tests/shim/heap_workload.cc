// A program for the integration tests to run under LD_PRELOAD=libcoldheap.so
// in stress mode (COLDHEAP_COLD_AGE=0, a short scan interval): each mode
// fills heap memory with data it can recompute, waits until the shim's
// statistics file shows that pages were really evicted, and verifies every
// byte. Exit status 0 means every check held; on a failure it prints what
// differed and exits 1. Modes:
//   fill THREADS MB        writers rewrite their blocks while the evictor runs
//                          (with HEAP_WORKLOAD_WAIT_FOR=counter, then waits
//                          until that statistic is above 0)
//   io MB                  read(2)/write(2)/pipe/socketpair/pread/writev on
//                          evicted buffers
//   fork MB                the child sees evicted pages; both keep evicting
//                          (HEAP_WORKLOAD_WAIT_FOR as for fill, before the
//                          fork)
//   forknofd MB            a child that cannot open a userfaultfd (no free
//                          file descriptor) still sees all its data
//   aslimit MB             RLIMIT_AS caps the address space after a first
//                          eviction: the pool cannot grow
//   forkshared MB          pages shared with a child are evicted in the parent
//   forkstorm N            N children in a row, each verifying the heap
//   spawn                  posix_spawn and vfork+exec with an evicted heap
//   realloc MB             realloc grows and shrinks across evicted data
//   purge MB               freed and purged memory reads zeros when reused
//   readhot MB SECONDS     a read-only hot 10% stays resident
//   pausedlocker ROUNDS    faults served while a thread is frozen in malloc
//   mutex THREADS          mutexes and condition variables in evicted objects
//   churn THREADS SECONDS  malloc/realloc/free of mixed sizes, every block
//                          checked before it changes, while pages move out
//   denseretrain THREADS   a retrain while THREADS readers fault back pages
//                          of the old dictionary (COLDHEAP_DENSE)
//   forkdense              a child reads dense pages after its parent
//                          retrained
//   setid ROUNDS           (as root) ROUNDS set*id() calls, each after a
//                          capability change, with evicted pages: every one
//                          makes the shim's threads take the new capabilities
#include <fcntl.h>
#include <jemalloc/jemalloc.h>
#include <pthread.h>
#include <signal.h>
#include <spawn.h>
#include <linux/capability.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <mutex>
#include <random>
#include <string>
#include <thread>
#include <vector>

extern char** environ;

namespace {

[[noreturn]] void Fail(const std::string& what) {
  fprintf(stderr, "heap_workload: FAIL: %s\n", what.c_str());
  exit(1);
}

// A value from the statistics file at `path`, 0 if absent.
uint64_t StatIn(const char* path, const char* name) {
  FILE* f = fopen(path, "r");
  if (f == nullptr) return 0;
  char line[256];
  char key[128];
  unsigned long long value;
  uint64_t found = 0;
  while (fgets(line, sizeof(line), f) != nullptr) {
    if (sscanf(line, "%127s %llu", key, &value) == 2 && strcmp(key, name) == 0) {
      found = value;
    }
  }
  fclose(f);
  return found;
}

// The same from the shim's statistics file (COLDHEAP_STATS).
uint64_t Stat(const char* name) {
  const char* path = getenv("COLDHEAP_STATS");
  if (path == nullptr || *path == '\0') return 0;
  return StatIn(path, name);
}

// This process's own live statistics (a forked child shares COLDHEAP_STATS
// with its parent, but not this file).
uint64_t OwnStat(const char* name) {
  std::string path = "/tmp/coldheap-" + std::to_string(getuid()) + "/" +
                     std::to_string(getpid()) + ".stats";
  return StatIn(path.c_str(), name);
}

// Waits up to `seconds` for `done`; fails the run after that.
template <typename Done>
void WaitUntil(Done done, int seconds, const std::string& what) {
  for (int i = 0; i < seconds * 50; ++i) {
    if (done()) return;
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  Fail("not seen within " + std::to_string(seconds) + " s: " + what);
}

// A test that needs an event the load makes only eventually (the pool
// reaching its limit, a page written back) names its statistic in
// HEAP_WORKLOAD_WAIT_FOR; on a busy machine a mode's rounds may end first.
void WaitForWanted() {
  if (const char* wanted = getenv("HEAP_WORKLOAD_WAIT_FOR")) {
    WaitUntil([&] { return Stat(wanted) > 0; }, 60, wanted);
  }
}

// Waits for two complete evictor passes after the call: in stress mode
// (COLDHEAP_COLD_AGE=0) every page resident at the call is then evicted.
// Without the shim (the baseline run) there is nothing to wait for.
bool ShimStatsWanted() {
  const char* path = getenv("COLDHEAP_STATS");
  return path != nullptr && *path != '\0';
}

// HEAP_WORKLOAD_PLAIN_OK=1 (the fault sweep's start-up failures): the shim
// may have fallen back to plain jemalloc, and then never writes its
// statistics file; wait for nothing.
bool ShimMayBeOff() {
  const char* ok = getenv("HEAP_WORKLOAD_PLAIN_OK");
  const char* path = getenv("COLDHEAP_STATS");
  if (ok == nullptr || *ok != '1') return false;
  std::this_thread::sleep_for(std::chrono::milliseconds(500));
  return access(path, F_OK) != 0;
}

void WaitForEviction() {
  if (!ShimStatsWanted() || ShimMayBeOff()) return;
  uint64_t start = Stat("scans");
  for (int i = 0; i < 1500; ++i) {
    if (Stat("scans") >= start + 2 && Stat("evicted_pages") > 0) return;
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  Fail("no eviction seen within 30 s (is the shim active?)");
}

// Varied, recomputable bytes: text-like, numeric and pointer-like runs, so
// pages neither compress to nothing nor all stay incompressible.
uint8_t ByteAt(uint64_t seed, uint64_t i) {
  uint64_t x = (seed * 0x9E3779B97F4A7C15ull) ^ (i / 64);
  x ^= x >> 29;
  x *= 0xBF58476D1CE4E5B9ull;
  switch ((i / 512) % 4) {
    case 0: return static_cast<uint8_t>("the quick brown fox jumps "[(x + i) % 26]);
    case 1: return static_cast<uint8_t>('0' + (x >> (i % 8)) % 10);
    case 2: return static_cast<uint8_t>(i % 8 < 5 ? (x >> (8 * (i % 8))) : 0);
    default: return static_cast<uint8_t>(x >> 13);
  }
}

void Fill(uint8_t* p, size_t n, uint64_t seed) {
  for (size_t i = 0; i < n; ++i) p[i] = ByteAt(seed, i);
}

void Verify(const uint8_t* p, size_t n, uint64_t seed, const char* what) {
  for (size_t i = 0; i < n; ++i) {
    if (p[i] != ByteAt(seed, i)) {
      Fail(std::string(what) + ": byte " + std::to_string(i) + " of seed " +
           std::to_string(seed) + " is " + std::to_string(p[i]) +
           ", expected " + std::to_string(ByteAt(seed, i)));
    }
  }
}

struct Block {
  uint8_t* data;
  size_t size;
  uint64_t seed;
};

std::vector<Block> Allocate(size_t mb, uint64_t seed0) {
  std::vector<Block> blocks;
  size_t total = mb << 20;
  for (size_t done = 0, k = 0; done < total; ++k) {
    size_t size = 512 + (k * 7919) % (64 << 10);  // small and large objects
    auto* p = static_cast<uint8_t*>(malloc(size));
    Fill(p, size, seed0 + k);
    blocks.push_back({p, size, seed0 + k});
    done += size;
  }
  return blocks;
}

void VerifyAll(const std::vector<Block>& blocks, const char* what) {
  for (const Block& b : blocks) Verify(b.data, b.size, b.seed, what);
}

int ModeFill(int threads, size_t mb) {
  std::vector<std::vector<Block>> per_thread(threads);
  for (int t = 0; t < threads; ++t) {
    per_thread[t] = Allocate(mb / threads, 1'000'000ull * (t + 1));
  }
  WaitForEviction();
  std::vector<std::thread> workers;
  for (int t = 0; t < threads; ++t) {
    workers.emplace_back([&, t] {
      for (int round = 0; round < 3; ++round) {
        for (Block& b : per_thread[t]) {
          Verify(b.data, b.size, b.seed, "fill: before rewrite");
          b.seed += 7;
          Fill(b.data, b.size, b.seed);
        }
        WaitForEviction();
      }
    });
  }
  for (auto& w : workers) w.join();
  WaitForWanted();
  for (auto& blocks : per_thread) VerifyAll(blocks, "fill: final");
  return 0;
}

void CheckIo(bool ok, const char* what) {
  if (!ok) Fail(std::string(what) + ": " + strerror(errno));
}

int ModeIo(size_t mb) {
  size_t n = mb << 20;
  auto* src = static_cast<uint8_t*>(malloc(n));
  auto* dst = static_cast<uint8_t*>(malloc(n));
  Fill(src, n, 42);
  memset(dst, 0, n);
  WaitForEviction();
  // File: write(2) from an evicted buffer, pread(2) into an evicted one.
  char path[] = "/tmp/coldheap-io-XXXXXX";
  int fd = mkstemp(path);
  CheckIo(fd >= 0, "mkstemp");
  unlink(path);
  CheckIo(write(fd, src, n) == static_cast<ssize_t>(n), "write from evicted");
  WaitForEviction();
  CheckIo(pread(fd, dst, n, 0) == static_cast<ssize_t>(n), "pread into evicted");
  Verify(dst, n, 42, "io: pread");
  // writev from two evicted halves, read(2) back.
  memset(dst, 0, n);
  WaitForEviction();
  iovec iov[2] = {{src, n / 2}, {src + n / 2, n - n / 2}};
  CheckIo(pwritev(fd, iov, 2, 0) == static_cast<ssize_t>(n), "pwritev");
  CheckIo(lseek(fd, 0, SEEK_SET) == 0, "lseek");
  size_t got = 0;
  while (got < n) {
    ssize_t r = read(fd, dst + got, n - got);
    CheckIo(r > 0, "read into evicted");
    got += static_cast<size_t>(r);
  }
  Verify(dst, n, 42, "io: read");
  close(fd);
  // Pipe and socketpair, through a thread so neither side blocks forever.
  for (int kind = 0; kind < 2; ++kind) {
    int fds[2];
    CheckIo(kind == 0 ? pipe(fds) == 0
                      : socketpair(AF_UNIX, SOCK_STREAM, 0, fds) == 0,
            "pipe/socketpair");
    memset(dst, 0, n);
    WaitForEviction();
    std::thread writer([&] {
      size_t sent = 0;
      while (sent < n) {
        ssize_t w = kind == 0 ? write(fds[1], src + sent, n - sent)
                              : send(fds[1], src + sent, n - sent, 0);
        CheckIo(w > 0, "write/send from evicted");
        sent += static_cast<size_t>(w);
      }
      close(fds[1]);
    });
    size_t recvd = 0;
    while (recvd < n) {
      ssize_t r = kind == 0 ? read(fds[0], dst + recvd, n - recvd)
                            : recv(fds[0], dst + recvd, n - recvd, 0);
      CheckIo(r > 0, "read/recv into evicted");
      recvd += static_cast<size_t>(r);
    }
    writer.join();
    close(fds[0]);
    Verify(dst, n, 42, kind == 0 ? "io: pipe" : "io: socket");
  }
  return 0;
}

int ModeFork(size_t mb) {
  std::vector<Block> blocks = Allocate(mb, 7);
  WaitForEviction();
  WaitForWanted();
  pid_t child = fork();
  CheckIo(child >= 0, "fork");
  // Both sides: verify, let their evictors run again, rewrite, verify.
  VerifyAll(blocks, child == 0 ? "fork: child" : "fork: parent");
  uint64_t shift = child == 0 ? 1000 : 2000;
  for (Block& b : blocks) {
    b.seed += shift;
    Fill(b.data, b.size, b.seed);
  }
  WaitForEviction();
  VerifyAll(blocks, child == 0 ? "fork: child after eviction"
                               : "fork: parent after eviction");
  if (child == 0) _exit(0);
  int status;
  waitpid(child, &status, 0);
  if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) Fail("fork: child failed");
  return 0;
}

// A child that cannot watch its heap (here: RLIMIT_NOFILE of 3 leaves it no
// file descriptor number for a userfaultfd, even after it closes the
// parent's) must still read every evicted byte and be able to write.
int ModeForkNoFd(size_t mb) {
  std::vector<Block> blocks = Allocate(mb, 17);
  WaitForEviction();
  rlimit saved;
  CheckIo(getrlimit(RLIMIT_NOFILE, &saved) == 0, "getrlimit");
  rlimit low = saved;
  low.rlim_cur = 3;  // stdin, stdout, stderr
  CheckIo(setrlimit(RLIMIT_NOFILE, &low) == 0, "setrlimit");
  pid_t child = fork();
  if (child == 0) {
    VerifyAll(blocks, "forknofd: child");
    for (Block& b : blocks) Fill(b.data, b.size, b.seed += 3);
    VerifyAll(blocks, "forknofd: child after rewrite");
    _exit(0);
  }
  CheckIo(setrlimit(RLIMIT_NOFILE, &saved) == 0, "setrlimit back");
  CheckIo(child > 0, "fork");
  int status;
  waitpid(child, &status, 0);
  if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) Fail("forknofd: child failed");
  WaitForEviction();
  VerifyAll(blocks, "forknofd: parent");
  return 0;
}

// The address space capped (RLIMIT_AS at what the process maps now, as a
// container's limit would) after a first eviction: the pool cannot grow,
// so pages that do not fit stay resident, and every byte still reads back.
// Only existing blocks are rewritten: a new allocation could need a mapping.
int ModeAsLimit(size_t mb) {
  std::vector<Block> blocks = Allocate(mb, 31);
  WaitForEviction();
  VerifyAll(blocks, "aslimit: before the limit");
  long pages = 0;
  FILE* statm = fopen("/proc/self/statm", "r");
  CheckIo(statm != nullptr && fscanf(statm, "%ld", &pages) == 1, "statm");
  fclose(statm);
  rlimit limit;
  limit.rlim_cur = limit.rlim_max = static_cast<rlim_t>(pages) * 4096;
  CheckIo(setrlimit(RLIMIT_AS, &limit) == 0, "setrlimit(RLIMIT_AS)");
  for (int round = 0; round < 3; ++round) {
    for (Block& b : blocks) Fill(b.data, b.size, b.seed += 1000);
    WaitForEviction();
    VerifyAll(blocks, "aslimit: under the limit");
  }
  return 0;
}

// Pages shared copy-on-write with a child (alive, then gone) must still be
// evicted in the parent, and the child must keep its own bytes.
int ModeForkShared(size_t mb) {
  std::vector<Block> blocks = Allocate(mb, 77);
  pid_t child = fork();
  CheckIo(child >= 0, "fork");
  if (child == 0) {
    std::this_thread::sleep_for(std::chrono::milliseconds(400));
    VerifyAll(blocks, "forkshared: child");
    _exit(0);
  }
  WaitForEviction();
  VerifyAll(blocks, "forkshared: parent while the child lives");
  int status;
  waitpid(child, &status, 0);
  if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) Fail("forkshared: child failed");
  WaitForEviction();
  VerifyAll(blocks, "forkshared: parent after the child");
  if (ShimStatsWanted() && Stat("cow_unshared") == 0) {
    Fail("forkshared: no page shared with the child was evicted");
  }
  return 0;
}

int ModeForkStorm(int children) {
  std::vector<Block> blocks = Allocate(16, 99);
  WaitForEviction();
  for (int i = 0; i < children; ++i) {
    pid_t child = fork();
    CheckIo(child >= 0, "fork");
    if (child == 0) {
      VerifyAll(blocks, "forkstorm: child");
      std::vector<Block> mine = Allocate(2, 5000 + i);
      VerifyAll(mine, "forkstorm: child's own");
      _exit(0);
    }
    int status;
    waitpid(child, &status, 0);
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
      Fail("forkstorm: child " + std::to_string(i) + " failed");
    }
  }
  VerifyAll(blocks, "forkstorm: parent");
  return 0;
}

int ModeSpawn() {
  std::vector<Block> blocks = Allocate(8, 11);
  WaitForEviction();
  // argv and envp in evicted heap memory: the child reads them from ours.
  std::string arg = "coldheap-spawn-ok";
  char* argv[] = {const_cast<char*>("/bin/echo"), arg.data(), nullptr};
  pid_t pid;
  CheckIo(posix_spawn(&pid, "/bin/echo", nullptr, nullptr, argv, environ) == 0,
          "posix_spawn");
  int status;
  waitpid(pid, &status, 0);
  if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) Fail("posix_spawn child");
  pid = vfork();
  if (pid == 0) {
    execve("/bin/true", argv, environ);
    _exit(127);
  }
  waitpid(pid, &status, 0);
  if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) Fail("vfork+exec child");
  VerifyAll(blocks, "spawn: parent");
  return 0;
}

int ModeRealloc(size_t mb) {
  std::vector<Block> blocks = Allocate(mb, 300);
  WaitForEviction();
  for (Block& b : blocks) {
    size_t bigger = b.size * 3 + 4096;
    b.data = static_cast<uint8_t*>(realloc(b.data, bigger));
    Verify(b.data, b.size, b.seed, "realloc: grown");
  }
  WaitForEviction();
  for (Block& b : blocks) {
    b.size /= 2;
    b.data = static_cast<uint8_t*>(realloc(b.data, b.size));
    Verify(b.data, b.size, b.seed, "realloc: shrunk");
  }
  return 0;
}

// Frees large blocks, has jemalloc purge them at once, and checks that the
// memory handed out again reads as zeros where jemalloc promises it
// (calloc), not as the evicted old contents.
int ModePurge(size_t mb) {
  std::vector<Block> blocks;
  for (size_t i = 0; i < mb; ++i) {
    auto* p = static_cast<uint8_t*>(malloc(1 << 20));
    Fill(p, 1 << 20, 900 + i);
    blocks.push_back({p, 1 << 20, 900 + i});
  }
  WaitForEviction();
  for (Block& b : blocks) free(b.data);
  // Purge every arena now (decay would do it later).
  unsigned narenas = 0;
  size_t len = sizeof(narenas);
  mallctl("arenas.narenas", &narenas, &len, nullptr, 0);
  std::string name = "arena." + std::to_string(4096) + ".purge";  // MALLCTL_ARENAS_ALL
  mallctl(name.c_str(), nullptr, nullptr, nullptr, 0);
  for (size_t i = 0; i < mb; ++i) {
    auto* p = static_cast<uint8_t*>(calloc(1, 1 << 20));
    for (size_t k = 0; k < (1 << 20); ++k) {
      if (p[k] != 0) Fail("purge: calloc'd memory is not zero at " + std::to_string(k));
    }
    Fill(p, 1 << 20, 5);
    Verify(p, 1 << 20, 5, "purge: reused");
  }
  if (ShimStatsWanted()) {
    WaitForEviction();
    if (Stat("purged_pages") == 0) Fail("purge: the shim saw no purge");
  }
  return 0;
}

// An allocator-heavy program: each thread keeps a table of blocks from 16 B
// to 4 MiB and replaces, reallocates or frees a random one at a time, so
// pages are written while they are moved out, and jemalloc splits, merges
// and purges extents under the evictor. Every block is checked before it
// changes and all of them at the end: a page lost by any path shows here.
int ModeChurn(int threads, int seconds) {
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(seconds);
  auto size_of = [](uint64_t r) -> size_t {
    uint64_t k = r % 100;
    if (k < 60) return 16 + (r >> 8) % 2000;
    if (k < 90) return 4096 + (r >> 8) % 60000;
    if (k < 99) return 100000 + (r >> 8) % 900000;
    return 1000000 + (r >> 8) % 4000000;
  };
  std::vector<std::thread> workers;
  for (int t = 0; t < threads; ++t) {
    workers.emplace_back([&, t] {
      std::vector<Block> table(2000, Block{nullptr, 0, 0});
      uint64_t rng = 0x2545F4914F6CDD1Dull * (t + 1);
      uint64_t seed = 10'000'000ull * (t + 1);
      for (uint64_t op = 1; std::chrono::steady_clock::now() < deadline; ++op) {
        rng ^= rng << 13, rng ^= rng >> 7, rng ^= rng << 17;
        Block& b = table[rng % table.size()];
        if (b.data != nullptr) Verify(b.data, b.size, b.seed, "churn: before change");
        uint64_t kind = (rng >> 32) % 10;
        if (kind == 9) {
          free(b.data);
          b = Block{nullptr, 0, 0};
        } else if (kind >= 6 && b.data != nullptr) {
          size_t size = size_of(rng >> 16);
          b.data = static_cast<uint8_t*>(realloc(b.data, size));
          Verify(b.data, std::min(size, b.size), b.seed, "churn: realloc");
          b.size = size;
        } else {
          free(b.data);
          b.size = size_of(rng >> 16);
          b.data = static_cast<uint8_t*>(malloc(b.size));
        }
        if (b.data != nullptr) Fill(b.data, b.size, b.seed = ++seed);
        if (op % 20000 == 0) {
          for (const Block& x : table) {
            if (x.data != nullptr) Verify(x.data, x.size, x.seed, "churn: sweep");
          }
        }
      }
      for (Block& b : table) {
        if (b.data != nullptr) Verify(b.data, b.size, b.seed, "churn: final");
        free(b.data);
      }
    });
  }
  for (auto& w : workers) w.join();
  return 0;
}

// Mutexes and condition variables inside heap objects that get evicted:
// their futex words are read and written by the kernel (invariant 2),
// including while a thread sleeps in the kernel on an evicted condition
// variable.
int ModeMutex(int threads) {
  struct Shared {
    std::mutex mu;
    std::condition_variable cv;
    long counter = 0;
    bool go = false;
    char pad[16384 - 128];
  };
  constexpr int kObjects = 256;
  std::vector<Shared*> objects;
  for (int i = 0; i < kObjects; ++i) objects.push_back(new Shared());
  WaitForEviction();
  std::vector<std::thread> workers;
  for (int t = 0; t < threads; ++t) {
    workers.emplace_back([&, t] {
      {
        // Sleep on an evicted condition variable until main wakes us.
        Shared& first = *objects[t];
        std::unique_lock<std::mutex> lock(first.mu);
        first.cv.wait(lock, [&] { return first.go; });
      }
      for (int i = 0; i < 20000; ++i) {
        Shared& s = *objects[(i * 31 + t) % kObjects];
        std::lock_guard<std::mutex> lock(s.mu);
        ++s.counter;
        s.cv.notify_all();
      }
    });
  }
  std::this_thread::sleep_for(std::chrono::milliseconds(50));
  WaitForEviction();
  for (int t = 0; t < threads; ++t) {
    std::lock_guard<std::mutex> lock(objects[t]->mu);
    objects[t]->go = true;
    objects[t]->cv.notify_all();
  }
  for (auto& w : workers) w.join();
  long total = 0;
  for (Shared* s : objects) total += s->counter;
  if (total != 20000L * threads) Fail("mutex: lost increments");
  for (Shared* s : objects) delete s;
  return 0;
}

// Read-aware eviction: the hot 10% of the data is only read, never written,
// for `seconds`; the shim must keep it resident (compressed refaults stop)
// and compress the rest. Prints "refaults_last_2s N" for the test to check.
int ModeReadHot(size_t mb, int seconds) {
  std::vector<Block> blocks = Allocate(mb, 31337);
  size_t hot = blocks.size() / 10;
  uint64_t sum = 0;
  uint64_t refaults_before_last = 0;
  auto start = std::chrono::steady_clock::now();
  for (uint64_t i = 0;; ++i) {
    const Block& b = blocks[(i * 2654435761u) % hot];
    for (size_t off = 0; off < b.size; off += 4096) sum += b.data[off];
    if (i % 256 != 0) continue;
    auto elapsed = std::chrono::steady_clock::now() - start;
    if (elapsed > std::chrono::seconds(seconds - 2) && refaults_before_last == 0) {
      refaults_before_last = Stat("refaults") + 1;  // +1: "taken"
    }
    if (elapsed > std::chrono::seconds(seconds)) break;
  }
  // The statistics as the hot phase ends, before verifying touches it all.
  for (const char* name : {"heap_pages", "resident_pages", "stored_pages",
                           "same_filled_pages", "pool_total_size"}) {
    printf("%s %llu\n", name, static_cast<unsigned long long>(Stat(name)));
  }
  printf("refaults_last_2s %llu\n",
         static_cast<unsigned long long>(Stat("refaults") + 1 - refaults_before_last));
  VerifyAll(blocks, "readhot");
  printf("checksum %llu\n", static_cast<unsigned long long>(sum));
  return 0;
}

// A hot set read every `period_ms` (longer than the cold age, so probation
// alone cannot keep it) and never written: invisible to write tracking, so
// each of its pages is taken out by mistake until it has learned a long
// enough threshold. Prints the mistakes counted when `learn_s` seconds have
// passed and at the end: once learned, the count stops growing.
int ModeReadPeriodic(size_t mb, int seconds, int period_ms, int learn_s) {
  std::vector<Block> blocks = Allocate(mb, 4242);
  size_t hot = blocks.size() / 10;
  size_t hot_pages = 0;
  for (size_t i = 0; i < hot; ++i) hot_pages += blocks[i].size / 4096;
  uint64_t sum = 0;
  uint64_t mistakes_learned = 0;
  auto start = std::chrono::steady_clock::now();
  for (;;) {
    for (size_t i = 0; i < hot; ++i) {
      for (size_t off = 0; off < blocks[i].size; off += 4096) sum += blocks[i].data[off];
    }
    auto elapsed = std::chrono::steady_clock::now() - start;
    if (elapsed > std::chrono::seconds(learn_s) && mistakes_learned == 0) {
      mistakes_learned = Stat("mistakes") + 1;  // +1: "taken"
    }
    if (elapsed > std::chrono::seconds(seconds)) break;
    usleep(static_cast<useconds_t>(period_ms) * 1000);
  }
  printf("hot_pages %zu\n", hot_pages);
  printf("mistakes_learned %llu\n", static_cast<unsigned long long>(mistakes_learned - 1));
  printf("mistakes_end %llu\n", static_cast<unsigned long long>(Stat("mistakes")));
  printf("raised_threshold_pages %llu\n",
         static_cast<unsigned long long>(Stat("raised_threshold_pages")));
  VerifyAll(blocks, "readperiodic");
  printf("checksum %llu\n", static_cast<unsigned long long>(sum));
  return 0;
}

// Invariant 4: faults are served while a program thread is frozen inside
// malloc/free, holding jemalloc's locks. Run with
// MALLOC_CONF=narenas:1,tcache:false so that every allocation takes the one
// arena's locks: a fault handler that allocated, or waited for a program
// thread, would hang here, and the alarm would end the run.
std::atomic<int> freeze_state{0};  // 1: freeze requested, 2: frozen, 0: go

void FreezeHandler(int) {
  freeze_state.store(2);
  while (freeze_state.load() != 0) {
  }
}

int ModePausedLocker(int rounds) {
  std::vector<Block> blocks = Allocate(8, 4242);
  std::atomic<bool> stop{false};
  signal(SIGUSR1, FreezeHandler);
  std::thread churner([&] {
    std::vector<void*> live(256, nullptr);
    for (uint64_t i = 0; !stop.load(); ++i) {
      size_t k = (i * 2654435761u) % live.size();
      free(live[k]);
      live[k] = malloc(16 + (i % 4000));
    }
    for (void* p : live) free(p);
  });
  alarm(60);  // a hang fails the run
  for (int r = 0; r < rounds; ++r) {
    WaitForEviction();
    freeze_state.store(1);
    pthread_kill(churner.native_handle(), SIGUSR1);
    while (freeze_state.load() != 2) {
    }
    // The churner is frozen, likely inside malloc or free. Touch evicted
    // pages without allocating.
    for (const Block& b : blocks) Verify(b.data, b.size, b.seed, "pausedlocker");
    freeze_state.store(0);
  }
  stop = true;
  churner.join();
  return 0;
}

// The dense tier (run with COLDHEAP_DENSE=zstd, COLDHEAP_DENSE_AGE=0). The
// first dictionary is trained on a 2 MiB heap (a smaller one may stay in
// jemalloc's first extents, outside the region); 1 MiB more is stored with
// it; then the heap grows past 4x the first sample, which retrains it.
// Meanwhile `threads` readers fault back random pages of the first 3 MiB,
// a few hundred a second, so that old-dictionary pages are still in the
// pool and being read for seconds after the retrain. Prints the most
// dictionaries seen alive at once (2 or more: that overlap happened).
int ModeDenseRetrain(int threads) {
  if (!ShimStatsWanted()) return 0;
  std::vector<Block> first = Allocate(2, 7000);
  WaitUntil([] { return Stat("dense_dictionary_generation") >= 1; }, 60,
            "a first dictionary");
  std::vector<Block> more = Allocate(1, 7500);
  first.insert(first.end(), more.begin(), more.end());
  WaitUntil([] { return Stat("dense_pages") > 500; }, 60,
            "pages stored with the first dictionary");
  std::atomic<bool> stop{false};
  std::vector<std::thread> readers;
  for (int t = 0; t < threads; ++t) {
    readers.emplace_back([&, t] {
      std::mt19937_64 rng(t);
      while (!stop.load()) {
        const Block& b = first[rng() % first.size()];
        size_t from = rng() % b.size;
        size_t n = std::min<size_t>(b.size - from, 4096);
        for (size_t i = from; i < from + n; ++i) {
          if (b.data[i] != ByteAt(b.seed, i)) Fail("denseretrain: a read differs");
        }
        std::this_thread::sleep_for(std::chrono::milliseconds(20));
      }
    });
  }
  std::vector<Block> second = Allocate(12, 8000);
  uint64_t most = 0;
  WaitUntil([&] {
    most = std::max(most, Stat("dense_dictionaries"));
    return Stat("dense_dictionary_generation") >= 2 && most >= 2;
  }, 60, "a retrained dictionary beside the first");
  uint64_t refaults = Stat("dense_refaults");
  WaitUntil([&] { return Stat("dense_refaults") > refaults + 100; }, 30,
            "dense refaults after the retrain");
  stop = true;
  for (auto& r : readers) r.join();
  VerifyAll(first, "denseretrain first");
  VerifyAll(second, "denseretrain second");
  printf("max_dictionaries %llu\n", static_cast<unsigned long long>(most));
  return 0;
}

// Each round changes the effective capability set (CAP_SYS_NICE off, then
// on), so that the next setresuid() makes the shim ring its threads, then
// reads and rewrites the heap while pages go out.
int ModeSetId(int rounds) {
  if (geteuid() != 0) Fail("setid: needs root");
  std::vector<Block> blocks = Allocate(8, 99);
  for (int round = 0; round < rounds; ++round) {
    WaitForEviction();
    __user_cap_header_struct header{_LINUX_CAPABILITY_VERSION_3, 0};
    __user_cap_data_struct caps[2] = {};
    CheckIo(syscall(SYS_capget, &header, caps) == 0, "capget");
    caps[0].effective ^= 1u << CAP_SYS_NICE;
    CheckIo(syscall(SYS_capset, &header, caps) == 0, "capset");
    CheckIo(setresuid(0, 0, 0) == 0, "setresuid");
    VerifyAll(blocks, "setid");
    for (Block& b : blocks) Fill(b.data, b.size, ++b.seed);
  }
  VerifyAll(blocks, "setid: at the end");
  return 0;
}

// Fork with dense pages: the child waits until the parent has retrained
// (and may have freed the dictionary the child's pages need), then reads
// every page back. Prints the child's own dense refaults.
int ModeForkDense() {
  if (!ShimStatsWanted()) return 0;
  std::vector<Block> first = Allocate(2, 9000);
  WaitUntil([] { return Stat("dense_dictionary_generation") >= 1 &&
                        Stat("dense_pages") > 100; },
            60, "a first dictionary and dense pages");
  int go[2];
  if (pipe(go) != 0) Fail("pipe");
  pid_t child = fork();
  if (child == 0) {
    char c;
    if (read(go[0], &c, 1) != 1) _exit(3);
    VerifyAll(first, "forkdense child");
    uint64_t scans = OwnStat("scans");
    WaitUntil([&] { return OwnStat("scans") >= scans + 2; }, 30, "child stats");
    printf("child_dense_refaults %llu\n",
           static_cast<unsigned long long>(OwnStat("dense_refaults")));
    fflush(stdout);
    _exit(0);
  }
  std::vector<Block> second = Allocate(12, 9500);
  WaitUntil([] { return Stat("dense_dictionary_generation") >= 2; }, 60,
            "a retrained dictionary in the parent");
  if (write(go[1], "g", 1) != 1) Fail("write");
  int status = 0;
  waitpid(child, &status, 0);
  if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) Fail("the child failed");
  VerifyAll(first, "forkdense parent");
  VerifyAll(second, "forkdense parent");
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2) Fail("usage: heap_workload MODE [ARGS]");
  std::string mode = argv[1];
  auto arg = [&](int i, long def) { return argc > i ? atol(argv[i]) : def; };
  if (mode == "fill") return ModeFill(static_cast<int>(arg(2, 1)), arg(3, 32));
  if (mode == "io") return ModeIo(arg(2, 8));
  if (mode == "fork") return ModeFork(arg(2, 16));
  if (mode == "readhot") return ModeReadHot(arg(2, 256), static_cast<int>(arg(3, 12)));
  if (mode == "readperiodic") {
    return ModeReadPeriodic(arg(2, 64), static_cast<int>(arg(3, 30)),
                            static_cast<int>(arg(4, 700)), static_cast<int>(arg(5, 22)));
  }
  if (mode == "pausedlocker") return ModePausedLocker(static_cast<int>(arg(2, 20)));
  if (mode == "forknofd") return ModeForkNoFd(arg(2, 16));
  if (mode == "aslimit") return ModeAsLimit(arg(2, 32));
  if (mode == "forkshared") return ModeForkShared(arg(2, 8));
  if (mode == "forkstorm") return ModeForkStorm(static_cast<int>(arg(2, 20)));
  if (mode == "spawn") return ModeSpawn();
  if (mode == "realloc") return ModeRealloc(arg(2, 16));
  if (mode == "purge") return ModePurge(arg(2, 16));
  if (mode == "mutex") return ModeMutex(static_cast<int>(arg(2, 4)));
  if (mode == "denseretrain") return ModeDenseRetrain(static_cast<int>(arg(2, 8)));
  if (mode == "forkdense") return ModeForkDense();
  if (mode == "setid") return ModeSetId(static_cast<int>(arg(2, 6)));
  if (mode == "churn") {
    return ModeChurn(static_cast<int>(arg(2, 2)), static_cast<int>(arg(3, 20)));
  }
  Fail("unknown mode " + mode);
}
