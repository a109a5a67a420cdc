// Tests for shim/os: each proves, on the running kernel, a behaviour of
// userfaultfd, UFFDIO_MOVE or PAGEMAP_SCAN that the shim relies on (see the
// list at the top of shim/os.h and DESIGN.md's "behaviours seen").
#include "shim/os.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstring>
#include <fstream>
#include <functional>
#include <iostream>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/match.h"
#include "gtest/gtest.h"

namespace coldheap::os {
namespace {

constexpr size_t kPage = kPageSize;
constexpr size_t kRegionPages = 64;

// A source page filled with `byte`.
struct PageOf {
  explicit PageOf(unsigned char byte) { memset(bytes, byte, sizeof(bytes)); }
  alignas(kPage) unsigned char bytes[kPage];
};

bool PageIs(const void* page, unsigned char byte) {
  const auto* p = static_cast<const volatile unsigned char*>(page);
  for (size_t i = 0; i < kPage; ++i) {
    if (p[i] != byte) return false;
  }
  return true;
}

uintptr_t U(const void* p) { return reinterpret_cast<uintptr_t>(p); }

// Serves the userfaultfd on its own thread: every message goes to `handle`.
class FaultServer {
 public:
  using Handler = std::function<void(const uffd_msg&)>;
  // `read_delay`: how long to let messages pile up before reading them.
  FaultServer(int uffd, Handler handle,
              std::chrono::milliseconds read_delay = {})
      : uffd_(uffd),
        handle_(std::move(handle)),
        read_delay_(read_delay),
        thread_([this] { Run(); }) {}
  ~FaultServer() {
    stop_.store(true);
    thread_.join();
  }
  int events() const { return events_.load(); }

 private:
  void Run() {
    while (!stop_.load()) {
      OsResult<bool> readable = WaitReadable(uffd_, 10);
      if (!readable.value) continue;
      std::this_thread::sleep_for(read_delay_);
      uffd_msg msgs[8];
      OsResult<size_t> n = ReadEvents(uffd_, msgs, 8);
      // Counted before handling: the first fill can wake the faulting
      // threads, and the test checks the count as soon as they resume.
      events_.fetch_add(static_cast<int>(n.value));
      for (size_t i = 0; i < n.value; ++i) handle_(msgs[i]);
    }
  }

  const int uffd_;
  const Handler handle_;
  const std::chrono::milliseconds read_delay_;
  std::atomic<bool> stop_{false};
  std::atomic<int> events_{0};
  std::thread thread_;  // last: starts once the rest is built
};

class UffdTest : public ::testing::Test {
 protected:
  void SetUp() override {
    UffdOptions options;
    options.required_features = UFFD_FEATURE_WP_ASYNC | UFFD_FEATURE_MOVE;
    // Non-blocking so the test server can poll and stop; the shim's
    // handlers block in read(2).
    options.nonblocking = true;
    absl::StatusOr<Userfaultfd> uffd = OpenUserfaultfd(options);
    ASSERT_TRUE(uffd.ok()) << uffd.status();
    uffd_ = *uffd;
    region_ = ReserveRegistered(kRegionPages);
    ASSERT_NE(region_, nullptr);
  }

  void TearDown() override {
    server_.reset();
    for (const auto& [start, bytes] : reservations_) {
      EXPECT_TRUE(Release(start, bytes).ok());
    }
    if (uffd_.fd >= 0) {
      EXPECT_TRUE(CloseFd(uffd_.fd).ok());
    }
  }

  char* ReserveRegistered(size_t pages) {
    OsResult<void*> r = Reserve(pages * kPage);
    EXPECT_TRUE(r.ok()) << ErrnoName(r.error);
    if (!r.ok()) return nullptr;
    reservations_.push_back({r.value, pages * kPage});
    OsResult<uint64_t> reg = Register(uffd_.fd, r.value, pages * kPage);
    EXPECT_TRUE(reg.ok()) << ErrnoName(reg.error);
    return static_cast<char*>(r.value);
  }

  char* Page(size_t i) const { return region_ + i * kPage; }

  void Serve(FaultServer::Handler handle,
             std::chrono::milliseconds read_delay = {}) {
    server_ = std::make_unique<FaultServer>(uffd_.fd, std::move(handle),
                                            read_delay);
  }

  // Present pages of [start, start + pages), as page indexes.
  std::vector<size_t> PresentPages(const char* start, size_t pages) {
    absl::StatusOr<int> pagemap = OpenPagemap();
    EXPECT_TRUE(pagemap.ok()) << pagemap.status();
    page_region regions[64];
    OsResult<ScanResult> scan =
        QueryPages(*pagemap, start, pages * kPage, PAGE_IS_PRESENT,
                   PAGE_IS_PRESENT, regions, 64);
    EXPECT_TRUE(scan.ok()) << ErrnoName(scan.error);
    std::vector<size_t> present;
    for (size_t i = 0; i < scan.value.regions; ++i) {
      for (uintptr_t p = regions[i].start; p < regions[i].end; p += kPage) {
        present.push_back((p - U(start)) / kPage);
      }
    }
    (void)CloseFd(*pagemap);
    return present;
  }

  Userfaultfd uffd_;
  char* region_ = nullptr;
  std::vector<std::pair<void*, size_t>> reservations_;
  std::unique_ptr<FaultServer> server_;
};

// ---------------------------------------------------------------------------
// Set-up.

TEST_F(UffdTest, HandshakeGrantsWpAsyncAndMove) {
  std::cout << "offered: " << DescribeFeatures(uffd_.available) << "\n"
            << "granted: " << DescribeFeatures(uffd_.features) << "\n";
  EXPECT_TRUE(uffd_.Has(UFFD_FEATURE_WP_ASYNC));
  EXPECT_TRUE(uffd_.Has(UFFD_FEATURE_MOVE));
  EXPECT_TRUE(uffd_.Has(UFFD_FEATURE_THREAD_ID));
  EXPECT_TRUE(uffd_.CanTrackWrites());
  // Never enabled: each would break something (see kDefaultFeatures).
  EXPECT_FALSE(uffd_.features & UFFD_FEATURE_EVENT_FORK);
  EXPECT_FALSE(uffd_.features & UFFD_FEATURE_EVENT_REMOVE);
  EXPECT_FALSE(uffd_.features & UFFD_FEATURE_SIGBUS);
  EXPECT_TRUE(uffd_.ioctls & (uint64_t{1} << _UFFDIO_REGISTER));
}

TEST_F(UffdTest, PagemapScanIsSupported) {
  absl::StatusOr<int> pagemap = OpenPagemap();
  ASSERT_TRUE(pagemap.ok()) << pagemap.status();
  EXPECT_TRUE(PagemapScanSupported(*pagemap));
  EXPECT_TRUE(CloseFd(*pagemap).ok());
}

TEST(OpenUserfaultfdTest, DeviceNodeWorksWhenTheSyscallIsNotUsed) {
  if (access("/dev/userfaultfd", R_OK | W_OK) != 0) {
    GTEST_SKIP() << "/dev/userfaultfd not accessible here";
  }
  UffdOptions options;
  options.source = UffdSource::kDevice;
  absl::StatusOr<Userfaultfd> uffd = OpenUserfaultfd(options);
  ASSERT_TRUE(uffd.ok()) << uffd.status();
  EXPECT_TRUE(uffd->via_device);
  EXPECT_TRUE(uffd->Has(UFFD_FEATURE_MOVE));
  EXPECT_TRUE(CloseFd(uffd->fd).ok());
}

TEST(OpenUserfaultfdTest, MissingRequiredFeatureIsNamed) {
  UffdOptions options;
  options.required_features = uint64_t{1} << 40;  // no kernel has it
  absl::StatusOr<Userfaultfd> uffd = OpenUserfaultfd(options);
  ASSERT_FALSE(uffd.ok());
  EXPECT_TRUE(absl::StrContains(uffd.status().message(), "lacks bits 0x"))
      << uffd.status();
}

// As an unprivileged user with vm.unprivileged_userfaultfd=0, both ways in
// fail and the message says why (invariant 5's stderr line).
TEST(OpenUserfaultfdTest, NoPermissionIsExplained) {
  std::ifstream sysctl("/proc/sys/vm/unprivileged_userfaultfd");
  std::string value;
  sysctl >> value;
  if (value != "0") GTEST_SKIP() << "vm.unprivileged_userfaultfd=" << value;
  if (geteuid() != 0) GTEST_SKIP() << "needs root to drop to nobody";
  int pipe_fds[2];
  ASSERT_EQ(pipe(pipe_fds), 0);
  const pid_t child = fork();
  ASSERT_GE(child, 0);
  if (child == 0) {
    close(pipe_fds[0]);
    if (setgid(65534) != 0 || setuid(65534) != 0) _exit(2);
    absl::StatusOr<Userfaultfd> uffd = OpenUserfaultfd();
    const std::string message =
        uffd.ok() ? "opened" : std::string(uffd.status().ToString());
    (void)!write(pipe_fds[1], message.data(), message.size());
    _exit(!uffd.ok() && absl::IsPermissionDenied(uffd.status()) ? 0 : 1);
  }
  close(pipe_fds[1]);
  char buffer[1024];
  ssize_t n = read(pipe_fds[0], buffer, sizeof(buffer));
  close(pipe_fds[0]);
  int status = 0;
  ASSERT_EQ(waitpid(child, &status, 0), child);
  const std::string message(buffer, n > 0 ? n : 0);
  std::cout << message << "\n";
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << message;
  EXPECT_TRUE(absl::StrContains(message, "vm.unprivileged_userfaultfd=0"));
  EXPECT_TRUE(absl::StrContains(message, "/dev/userfaultfd open: EACCES"));
}

TEST(ReserveTest, RegionIsHugePageAlignedWithoutTransparentHugePages) {
  OsResult<void*> r = Reserve(3 * kHugePageSize + 5);
  ASSERT_TRUE(r.ok()) << ErrnoName(r.error);
  EXPECT_EQ(U(r.value) % kHugePageSize, 0u);
  // smaps shows the mapping and its VmFlags: "nh" is MADV_NOHUGEPAGE.
  std::ifstream smaps("/proc/self/smaps");
  std::string line;
  char start[32];
  snprintf(start, sizeof(start), "%lx-", static_cast<unsigned long>(U(r.value)));
  bool in_region = false, seen_nh = false;
  while (std::getline(smaps, line)) {
    if (absl::StartsWith(line, start)) in_region = true;
    if (in_region && absl::StartsWith(line, "VmFlags:")) {
      seen_nh = absl::StrContains(line, " nh");
      break;
    }
  }
  EXPECT_TRUE(in_region);
  EXPECT_TRUE(seen_nh);
  EXPECT_TRUE(Release(r.value, 3 * kHugePageSize + kPage).ok());
}

TEST_F(UffdTest, RegisterMissingAndWpOffersEveryIoctlTheShimUses) {
  OsResult<void*> r = Reserve(16 * kPage);
  ASSERT_TRUE(r.ok());
  reservations_.push_back({r.value, 16 * kPage});
  OsResult<uint64_t> reg = Register(uffd_.fd, r.value, 16 * kPage);
  ASSERT_TRUE(reg.ok()) << ErrnoName(reg.error);
  for (int ioctl : {_UFFDIO_COPY, _UFFDIO_ZEROPAGE, _UFFDIO_WAKE,
                    _UFFDIO_WRITEPROTECT, _UFFDIO_MOVE}) {
    EXPECT_TRUE(reg.value & (uint64_t{1} << ioctl)) << "ioctl " << ioctl;
  }
  EXPECT_TRUE(Unregister(uffd_.fd, r.value, 16 * kPage).ok());
}

// ---------------------------------------------------------------------------
// Missing faults.

TEST_F(UffdTest, MissingFaultBlocksUntilHandlerCopies) {
  static const PageOf kContents(0xab);
  std::atomic<bool> toucher_done{false};
  std::atomic<bool> done_before_copy{false};
  std::atomic<uintptr_t> fault_address{0};
  std::atomic<pid_t> fault_tid{0};
  Serve([&](const uffd_msg& msg) {
    ASSERT_EQ(msg.event, UFFD_EVENT_PAGEFAULT);
    fault_address = msg.arg.pagefault.address;
    fault_tid = static_cast<pid_t>(msg.arg.pagefault.feat.ptid);
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
    done_before_copy = toucher_done.load();
    void* page = reinterpret_cast<void*>(msg.arg.pagefault.address &
                                         ~(kPage - 1));
    OsResult<size_t> r = Copy(uffd_.fd, page, kContents.bytes, kPage);
    EXPECT_TRUE(r.ok()) << ErrnoName(r.error);
    EXPECT_EQ(r.value, kPage);
  });
  std::atomic<pid_t> toucher_tid{0};
  unsigned char seen = 0;
  std::thread toucher([&] {
    toucher_tid = GetTid();
    seen = *reinterpret_cast<volatile unsigned char*>(Page(3) + 17);
    toucher_done = true;
  });
  toucher.join();
  EXPECT_FALSE(done_before_copy);
  EXPECT_EQ(seen, 0xab);
  EXPECT_TRUE(PageIs(Page(3), 0xab));
  EXPECT_EQ(fault_address.load() & ~(kPage - 1), U(Page(3)));
  EXPECT_EQ(fault_tid.load(), toucher_tid.load());  // THREAD_ID
}

TEST_F(UffdTest, ZeroPageServesAFaultWithZerosThatCanBeWritten) {
  Serve([&](const uffd_msg& msg) {
    void* page = reinterpret_cast<void*>(msg.arg.pagefault.address &
                                         ~(kPage - 1));
    OsResult<size_t> r = ZeroPage(uffd_.fd, page, kPage);
    EXPECT_TRUE(r.ok()) << ErrnoName(r.error);
  });
  std::thread reader([&] { EXPECT_TRUE(PageIs(Page(0), 0)); });
  reader.join();
  Page(0)[5] = 42;  // copy-on-write from the zero page: no further event
  EXPECT_EQ(Page(0)[5], 42);
  EXPECT_EQ(server_->events(), 1);
}

TEST_F(UffdTest, MultiPageCopyStopsAtPresentPageWithPartialCount) {
  static const PageOf kFirst(1), kSecond(2);
  ASSERT_TRUE(Copy(uffd_.fd, Page(2), kFirst.bytes, kPage).ok());
  static unsigned char source[4 * kPage];
  memset(source, 2, sizeof(source));

  OsResult<size_t> r = Copy(uffd_.fd, Page(0), source, 4 * kPage);
  EXPECT_EQ(r.error, EAGAIN);
  EXPECT_EQ(r.value, 2 * kPage);  // pages 0 and 1, then page 2 was present
  // Carrying on: the present page counts as done, then the rest is filled.
  r = Copy(uffd_.fd, Page(2), source + 2 * kPage, 2 * kPage);
  EXPECT_EQ(r.error, EAGAIN);
  EXPECT_EQ(r.value, kPage);
  r = Copy(uffd_.fd, Page(3), source + 3 * kPage, kPage);
  EXPECT_TRUE(r.ok());
  EXPECT_EQ(r.value, kPage);

  EXPECT_TRUE(PageIs(Page(0), 2));
  EXPECT_TRUE(PageIs(Page(1), 2));
  EXPECT_TRUE(PageIs(Page(2), 1));  // the first fill wins
  EXPECT_TRUE(PageIs(Page(3), 2));

  // ZeroPage behaves the same way.
  ASSERT_TRUE(DontNeed(Page(8), kPage).ok());
  ASSERT_TRUE(Copy(uffd_.fd, Page(9), kSecond.bytes, kPage).ok());
  r = ZeroPage(uffd_.fd, Page(8), 2 * kPage);
  EXPECT_EQ(r.error, EAGAIN);
  EXPECT_EQ(r.value, kPage);
}

TEST_F(UffdTest, FillOntoPresentPageCountsAsDone) {
  static const PageOf kFirst(7), kSecond(8);
  ASSERT_TRUE(Copy(uffd_.fd, Page(4), kFirst.bytes, kPage).ok());
  OsResult<size_t> r = Copy(uffd_.fd, Page(4), kSecond.bytes, kPage);
  EXPECT_TRUE(r.ok()) << ErrnoName(r.error);
  EXPECT_EQ(r.value, kPage);
  r = ZeroPage(uffd_.fd, Page(4), kPage);
  EXPECT_TRUE(r.ok()) << ErrnoName(r.error);
  EXPECT_EQ(r.value, kPage);
  EXPECT_TRUE(PageIs(Page(4), 7));
}

// Two threads fault on one page; the handler reads both events before
// filling: the second fill finds the page present (EEXIST), which counts as
// done, and both threads resume.
TEST_F(UffdTest, TwoThreadsFaultingOnePageBothResume) {
  static const PageOf kContents(0x5a);
  std::atomic<int> failures{0};
  // Reading late lets both faults queue before the first is served (a
  // message not yet read when its thread is woken is dropped).
  Serve(
      [&](const uffd_msg& msg) {
        void* page = reinterpret_cast<void*>(msg.arg.pagefault.address &
                                             ~(kPage - 1));
        if (!Copy(uffd_.fd, page, kContents.bytes, kPage).ok()) ++failures;
      },
      std::chrono::milliseconds(100));
  std::thread a([&] { EXPECT_TRUE(PageIs(Page(6), 0x5a)); });
  std::thread b([&] { EXPECT_TRUE(PageIs(Page(6), 0x5a)); });
  a.join();
  b.join();
  EXPECT_EQ(server_->events(), 2);
  server_.reset();  // every message handled
  EXPECT_EQ(failures.load(), 0);
}

// DESIGN: registered for write-protect only, a write-protected page that is
// then dropped is silently zero-filled on the next write. Registered missing
// + write-protect (Register's default), the write is a missing fault.
TEST_F(UffdTest, WriteProtectedPageDroppedThenWrittenFaultsAsMissing) {
  static const PageOf kContents(0x33);
  ASSERT_TRUE(Copy(uffd_.fd, Page(1), kContents.bytes, kPage).ok());
  ASSERT_TRUE(WriteProtect(uffd_.fd, Page(1), kPage, true).ok());
  ASSERT_TRUE(DontNeed(Page(1), kPage).ok());
  std::atomic<uint64_t> flags{~uint64_t{0}};
  Serve([&](const uffd_msg& msg) {
    flags = msg.arg.pagefault.flags;
    void* page = reinterpret_cast<void*>(msg.arg.pagefault.address &
                                         ~(kPage - 1));
    EXPECT_TRUE(Copy(uffd_.fd, page, kContents.bytes, kPage).ok());
  });
  std::thread writer([&] { Page(1)[100] = 0x44; });
  writer.join();
  EXPECT_EQ(server_->events(), 1);
  EXPECT_TRUE(flags & UFFD_PAGEFAULT_FLAG_WRITE);
  EXPECT_FALSE(flags & UFFD_PAGEFAULT_FLAG_WP);  // missing, not write-protect
  EXPECT_EQ(Page(1)[100], 0x44);
  EXPECT_EQ(Page(1)[99], 0x33);
}

// Invariant 2: the kernel's own accesses to missing pages (copy_to_user in
// read(2), copy_from_user in write(2)) are faults the handler serves.
TEST_F(UffdTest, KernelModeFaultsFromReadAndWriteAreServed) {
  static const PageOf kOut(0x61);
  Serve([&](const uffd_msg& msg) {
    void* page = reinterpret_cast<void*>(msg.arg.pagefault.address &
                                         ~(kPage - 1));
    if (page == Page(20)) {
      EXPECT_TRUE(ZeroPage(uffd_.fd, page, kPage).ok());
    } else {
      EXPECT_TRUE(Copy(uffd_.fd, page, kOut.bytes, kPage).ok());
    }
  });
  int fds[2];
  ASSERT_EQ(pipe(fds), 0);
  static const PageOf kIn(0x7e);
  ASSERT_EQ(write(fds[1], kIn.bytes, kPage), static_cast<ssize_t>(kPage));
  // read(2) into a missing page: the kernel writes it.
  EXPECT_EQ(read(fds[0], Page(20), kPage), static_cast<ssize_t>(kPage))
      << strerror(errno);
  EXPECT_TRUE(PageIs(Page(20), 0x7e));
  // write(2) from a missing page: the kernel reads it.
  EXPECT_EQ(write(fds[1], Page(21), kPage), static_cast<ssize_t>(kPage))
      << strerror(errno);
  unsigned char back[kPage];
  EXPECT_EQ(read(fds[0], back, kPage), static_cast<ssize_t>(kPage));
  EXPECT_TRUE(PageIs(back, 0x61));
  EXPECT_EQ(server_->events(), 2);
  close(fds[0]);
  close(fds[1]);
}

// ---------------------------------------------------------------------------
// UFFDIO_MOVE.

TEST_F(UffdTest, MoveOutAndBackPreservesContentsAndLeavesSourceMissing) {
  static const PageOf kContents(0x99), kRefill(0x11);
  char* staging = ReserveRegistered(4);
  ASSERT_NE(staging, nullptr);
  ASSERT_TRUE(Copy(uffd_.fd, Page(10), kContents.bytes, kPage).ok());
  Page(10)[0] = 0x98;  // a write after the fill moves too

  OsResult<size_t> r = Move(uffd_.fd, staging, Page(10), kPage);
  ASSERT_TRUE(r.ok()) << ErrnoName(r.error);
  EXPECT_EQ(r.value, kPage);
  EXPECT_EQ(PresentPages(region_, kRegionPages), std::vector<size_t>{});
  EXPECT_EQ(staging[0], static_cast<char>(0x98));

  r = Move(uffd_.fd, Page(10), staging, kPage);
  ASSERT_TRUE(r.ok()) << ErrnoName(r.error);
  EXPECT_EQ(PresentPages(staging, 4), std::vector<size_t>{});
  EXPECT_EQ(Page(10)[0], static_cast<char>(0x98));
  EXPECT_EQ(Page(10)[1], static_cast<char>(0x99));
  EXPECT_EQ(Page(10)[kPage - 1], static_cast<char>(0x99));

  // Out again: the next touch of the source is a missing fault.
  ASSERT_TRUE(Move(uffd_.fd, staging, Page(10), kPage).ok());
  std::atomic<uintptr_t> fault_page{0};
  Serve([&](const uffd_msg& msg) {
    void* page = reinterpret_cast<void*>(msg.arg.pagefault.address &
                                         ~(kPage - 1));
    fault_page = U(page);
    EXPECT_TRUE(Copy(uffd_.fd, page, kRefill.bytes, kPage).ok());
  });
  std::thread toucher([&] { EXPECT_TRUE(PageIs(Page(10), 0x11)); });
  toucher.join();
  EXPECT_EQ(fault_page.load(), U(Page(10)));
  EXPECT_EQ(staging[0], static_cast<char>(0x98));
}

TEST_F(UffdTest, MoveFromHolesNeedsAllowSrcHoles) {
  static const PageOf kOne(1), kThree(3);
  char* staging = ReserveRegistered(4);
  ASSERT_NE(staging, nullptr);
  ASSERT_TRUE(Copy(uffd_.fd, Page(31), kOne.bytes, kPage).ok());
  ASSERT_TRUE(Copy(uffd_.fd, Page(33), kThree.bytes, kPage).ok());
  // Pages 30 and 32 were never touched.
  OsResult<size_t> r = Move(uffd_.fd, staging, Page(30), 4 * kPage);
  EXPECT_EQ(r.error, ENOENT);
  EXPECT_EQ(r.value, 0u);

  r = Move(uffd_.fd, staging, Page(30), 4 * kPage,
           UFFDIO_MOVE_MODE_ALLOW_SRC_HOLES);
  EXPECT_TRUE(r.ok()) << ErrnoName(r.error);
  EXPECT_EQ(r.value, 4 * kPage);  // holes count as moved
  EXPECT_EQ(PresentPages(staging, 4), (std::vector<size_t>{1, 3}));
  EXPECT_TRUE(PageIs(staging + kPage, 1));
  EXPECT_TRUE(PageIs(staging + 3 * kPage, 3));
  EXPECT_EQ(PresentPages(Page(30), 4), std::vector<size_t>{});
}

// Kernel 6.18 can move pages and not count them (the ioctl's internal retry
// then finds them at dst: EEXIST). The state it leaves, built here by hand:
// the first two pages already at dst, their sources empty. Move must count
// them, or its caller believes they are still in place and loses them.
TEST_F(UffdTest, MoveCountsPagesTheKernelMovedWithoutCountingThem) {
  static const PageOf kMovedA(0x41), kMovedB(0x42), kStillC(0x43), kStillD(0x44);
  char* staging = ReserveRegistered(4);
  ASSERT_NE(staging, nullptr);
  ASSERT_TRUE(Copy(uffd_.fd, staging, kMovedA.bytes, kPage).ok());
  ASSERT_TRUE(Copy(uffd_.fd, staging + kPage, kMovedB.bytes, kPage).ok());
  ASSERT_TRUE(Copy(uffd_.fd, Page(42), kStillC.bytes, kPage).ok());
  ASSERT_TRUE(Copy(uffd_.fd, Page(43), kStillD.bytes, kPage).ok());

  OsResult<size_t> r = Move(uffd_.fd, staging, Page(40), 4 * kPage);
  EXPECT_EQ(r.error, EAGAIN) << ErrnoName(r.error);  // carry on after them
  EXPECT_EQ(r.value, 2 * kPage);
  r = Move(uffd_.fd, staging + 2 * kPage, Page(42), 2 * kPage);
  ASSERT_TRUE(r.ok()) << ErrnoName(r.error);
  EXPECT_TRUE(PageIs(staging, 0x41));
  EXPECT_TRUE(PageIs(staging + 3 * kPage, 0x44));
  EXPECT_EQ(PresentPages(Page(40), 4), std::vector<size_t>{});

  // A page already at dst while its source is still there is no move.
  ASSERT_TRUE(Copy(uffd_.fd, Page(44), kStillC.bytes, kPage).ok());
  r = Move(uffd_.fd, staging, Page(44), kPage);
  EXPECT_EQ(r.error, EEXIST) << ErrnoName(r.error);
  EXPECT_EQ(r.value, 0u);
}

// A page shared copy-on-write with a forked child cannot be moved (EBUSY).
// It stays so after the child exits, until the parent writes it.
TEST_F(UffdTest, MoveOfPageSharedWithForkedChildReportsBusy) {
  static const PageOf kContents(0x42);
  char* staging = ReserveRegistered(1);
  ASSERT_NE(staging, nullptr);
  ASSERT_TRUE(Copy(uffd_.fd, Page(12), kContents.bytes, kPage).ok());
  int go[2];
  ASSERT_EQ(pipe(go), 0);
  const pid_t child = fork();
  ASSERT_GE(child, 0);
  if (child == 0) {
    char c;
    (void)!read(go[0], &c, 1);
    _exit(0);
  }
  OsResult<size_t> r = Move(uffd_.fd, staging, Page(12), kPage);
  EXPECT_EQ(r.error, EBUSY) << ErrnoName(r.error);
  EXPECT_EQ(r.value, 0u);

  ASSERT_EQ(write(go[1], "x", 1), 1);
  int status;
  ASSERT_EQ(waitpid(child, &status, 0), child);
  close(go[0]);
  close(go[1]);
  r = Move(uffd_.fd, staging, Page(12), kPage);
  EXPECT_EQ(r.error, EBUSY) << "the child is gone, the page still not "
                               "exclusive: "
                            << ErrnoName(r.error);

  Page(12)[0] = 0x43;  // write fault: the page is exclusive again
  r = Move(uffd_.fd, staging, Page(12), kPage);
  EXPECT_TRUE(r.ok()) << ErrnoName(r.error);
  EXPECT_EQ(staging[0], 0x43);
  EXPECT_EQ(staging[1], 0x42);
}

// ---------------------------------------------------------------------------
// WP_ASYNC + PAGEMAP_SCAN.

class ScanTest : public UffdTest {
 protected:
  void SetUp() override {
    UffdTest::SetUp();
    absl::StatusOr<int> pagemap = OpenPagemap();
    ASSERT_TRUE(pagemap.ok()) << pagemap.status();
    pagemap_ = *pagemap;
  }
  void TearDown() override {
    if (pagemap_ >= 0) {
      EXPECT_TRUE(CloseFd(pagemap_).ok());
    }
    UffdTest::TearDown();
  }

  // Written pages of the first `pages` pages, protected again by the scan.
  std::vector<std::pair<size_t, size_t>> ScanWritten(size_t pages) {
    page_region regions[64];
    OsResult<ScanResult> r =
        ScanWrittenAndProtect(pagemap_, region_, pages * kPage, regions, 64);
    EXPECT_TRUE(r.ok()) << ErrnoName(r.error);
    EXPECT_EQ(r.value.walk_end, U(region_) + pages * kPage);
    std::vector<std::pair<size_t, size_t>> written;
    for (size_t i = 0; i < r.value.regions; ++i) {
      EXPECT_EQ(regions[i].categories, uint64_t{PAGE_IS_WRITTEN});
      written.push_back({(regions[i].start - U(region_)) / kPage,
                         (regions[i].end - U(region_)) / kPage});
    }
    return written;
  }

  int pagemap_ = -1;
};

using Runs = std::vector<std::pair<size_t, size_t>>;

TEST_F(ScanTest, WpAsyncScanReportsExactlyTheWrittenPageAndReprotects) {
  static unsigned char source[16 * kPage];
  ASSERT_TRUE(Copy(uffd_.fd, region_, source, sizeof(source)).ok());
  EXPECT_EQ(ScanWritten(16), (Runs{{0, 16}}));  // filled, never protected
  EXPECT_EQ(ScanWritten(16), Runs{});           // all protected now

  Page(5)[123] = 1;  // resolved by the kernel: no message
  EXPECT_FALSE(WaitReadable(uffd_.fd, 0).value);
  EXPECT_EQ(Page(5)[123], 1);
  EXPECT_EQ(ScanWritten(16), (Runs{{5, 6}}));
  EXPECT_EQ(ScanWritten(16), Runs{});
}

TEST_F(ScanTest, FullOutputArrayStopsTheScanAtWalkEndAndLosesNothing) {
  static unsigned char source[16 * kPage];
  ASSERT_TRUE(Copy(uffd_.fd, region_, source, sizeof(source)).ok());
  ASSERT_EQ(ScanWritten(16), (Runs{{0, 16}}));
  Page(2)[0] = 1;
  Page(9)[0] = 1;
  page_region one;
  OsResult<ScanResult> r =
      ScanWrittenAndProtect(pagemap_, region_, 16 * kPage, &one, 1);
  ASSERT_TRUE(r.ok()) << ErrnoName(r.error);
  ASSERT_EQ(r.value.regions, 1u);
  EXPECT_EQ(one.start, U(Page(2)));
  EXPECT_LT(r.value.walk_end, U(Page(16)));
  // Carrying on from walk_end finds page 9, still unprotected.
  const char* resume = reinterpret_cast<const char*>(r.value.walk_end);
  r = ScanWrittenAndProtect(pagemap_, resume, U(Page(16)) - U(resume), &one, 1);
  ASSERT_TRUE(r.ok());
  ASSERT_EQ(r.value.regions, 1u);
  EXPECT_EQ(one.start, U(Page(9)));
  EXPECT_EQ(ScanWritten(16), Runs{});
}

TEST_F(ScanTest, QueryWithoutProtectingReportsPresentAndWrittenPages) {
  static const PageOf kContents(9);
  ASSERT_TRUE(Copy(uffd_.fd, Page(2), kContents.bytes, kPage).ok());
  ASSERT_TRUE(Copy(uffd_.fd, Page(5), kContents.bytes, kPage).ok());
  ASSERT_TRUE(WriteProtect(uffd_.fd, Page(5), kPage, true).ok());
  page_region regions[8];
  OsResult<ScanResult> r =
      QueryPages(pagemap_, region_, 8 * kPage, PAGE_IS_PRESENT,
                 PAGE_IS_PRESENT | PAGE_IS_WRITTEN, regions, 8);
  ASSERT_TRUE(r.ok()) << ErrnoName(r.error);
  ASSERT_EQ(r.value.regions, 2u);
  EXPECT_EQ(regions[0].start, U(Page(2)));
  EXPECT_EQ(regions[0].categories,
            uint64_t{PAGE_IS_PRESENT | PAGE_IS_WRITTEN});
  EXPECT_EQ(regions[1].start, U(Page(5)));
  EXPECT_EQ(regions[1].categories, uint64_t{PAGE_IS_PRESENT});
  // The query protected nothing: page 2 still reads as written.
  r = QueryPages(pagemap_, Page(2), kPage, PAGE_IS_WRITTEN, PAGE_IS_WRITTEN,
                 regions, 8);
  EXPECT_EQ(r.value.regions, 1u);
}

// An evicted page (dropped or moved out) has no pte and no marker: the
// tracking scan reports it written once and leaves a uffd-wp marker, into
// which UFFDIO_MOVE refuses to move (EEXIST) while UFFDIO_COPY fills it.
TEST_F(ScanTest, EvictedPageScansWrittenOnceAndItsMarkerBlocksMoveNotCopy) {
  static const PageOf kContents(0x21);
  char* staging = ReserveRegistered(1);
  ASSERT_NE(staging, nullptr);
  static unsigned char source[8 * kPage];
  ASSERT_TRUE(Copy(uffd_.fd, region_, source, sizeof(source)).ok());
  ASSERT_EQ(ScanWritten(8), (Runs{{0, 8}}));
  ASSERT_TRUE(Copy(uffd_.fd, staging, kContents.bytes, kPage).ok());

  // The destination of a move must be empty.
  EXPECT_EQ(Move(uffd_.fd, staging, Page(3), kPage).error, EEXIST);
  ASSERT_TRUE(DontNeed(staging, kPage).ok());
  ASSERT_TRUE(Move(uffd_.fd, staging, Page(3), kPage).ok());  // evict page 3
  EXPECT_EQ(ScanWritten(8), (Runs{{3, 4}}));
  EXPECT_EQ(ScanWritten(8), Runs{});

  OsResult<size_t> r = Move(uffd_.fd, Page(3), staging, kPage);
  EXPECT_EQ(r.error, EEXIST) << ErrnoName(r.error);
  r = Copy(uffd_.fd, Page(3), staging, kPage);
  EXPECT_TRUE(r.ok()) << ErrnoName(r.error);
  EXPECT_EQ(PresentPages(region_, 8),
            (std::vector<size_t>{0, 1, 2, 3, 4, 5, 6, 7}));
}

// ---------------------------------------------------------------------------
// Threads and clocks.

TEST(ThreadTest, PinnedThreadRunsOnItsCpu) {
  ASSERT_GE(NumCpus(), 1);
  for (int cpu = 0; cpu < NumCpus(); ++cpu) {
    std::thread t([cpu] {
      ASSERT_TRUE(PinCurrentThreadToCpu(cpu).ok());
      sched_yield();
      EXPECT_EQ(CurrentCpu(), cpu);
    });
    t.join();
  }
  EXPECT_EQ(PinCurrentThreadToCpu(-1).error, EINVAL);
}

TEST(ThreadTest, TidAndClocks) {
  EXPECT_EQ(GetTid(), static_cast<pid_t>(syscall(SYS_gettid)));
  pid_t other = 0;
  std::thread t([&] { other = GetTid(); });
  t.join();
  EXPECT_NE(other, GetTid());

  const uint64_t wall = MonotonicNowNs();
  const uint64_t cpu = ThreadCpuTimeNs();
  volatile uint64_t sink = 0;
  for (int i = 0; i < 5000000; ++i) sink = sink + i;
  EXPECT_GT(ThreadCpuTimeNs(), cpu);
  EXPECT_GT(MonotonicNowNs(), wall);
  // Sleeping costs wall time, not CPU time.
  const uint64_t cpu_before_sleep = ThreadCpuTimeNs();
  std::this_thread::sleep_for(std::chrono::milliseconds(20));
  EXPECT_LT(ThreadCpuTimeNs() - cpu_before_sleep, 10'000'000u);
  EXPECT_GE(MonotonicNowNs() - wall, 20'000'000u);
}

TEST(ErrnoNameTest, NamesErrnoValues) {
  EXPECT_STREQ(ErrnoName(EEXIST), "EEXIST");
  EXPECT_STREQ(ErrnoName(EBUSY), "EBUSY");
  EXPECT_STREQ(ErrnoName(123456), "E?");
}

}  // namespace
}  // namespace coldheap::os
