// The writeback file's slots across fork(): while a forked child may still
// read the file it shares with its parent, the parent takes new slots and
// leaves freed ones alone (shim/writeback.h).
#include "shim/writeback.h"

#include <sys/wait.h>
#include <unistd.h>

#include <cstring>

#include "gtest/gtest.h"

namespace coldheap::shim {
namespace {

constexpr uint64_t kSlots = 8;

// A file with slots 0..kSlots-1 written, slot 3 freed in the parent after
// a fork whose child reads slot 3 after `child_delay_ms`; returns the slot
// the parent's next Allocate() gets, with the child still reading.
struct ForkRun {
  uint64_t slot_while_child_reads;
  uint64_t slot_after_child;
  int child_status;
};

ForkRun RunFork(WritebackFile& file, int child_delay_ms) {
  char page[4096];
  for (uint64_t slot = 0; slot < kSlots; ++slot) {
    EXPECT_EQ(file.Allocate(), slot);
    memset(page, static_cast<int>('a' + slot), sizeof(page));
    EXPECT_TRUE(file.Write(slot, page, sizeof(page)));
  }
  file.PrepareFork();
  pid_t child = fork();
  if (child == 0) {
    // The child reads the shared file, as one that cannot copy it does.
    usleep(static_cast<useconds_t>(child_delay_ms) * 1000);
    bool same = file.Read(3, page, sizeof(page)) && page[0] == 'd' &&
                page[4095] == 'd';
    file.ChildDone();
    _exit(same ? 0 : 1);
  }
  file.ParentAfterFork();
  ForkRun run;
  file.Release(3);  // the parent's copy of page 3 came back
  run.slot_while_child_reads = file.Allocate();
  memset(page, 'X', sizeof(page));
  EXPECT_TRUE(file.Write(run.slot_while_child_reads, page, sizeof(page)));
  waitpid(child, &run.child_status, 0);
  file.Release(run.slot_while_child_reads);
  run.slot_after_child = file.Allocate();
  return run;
}

TEST(WritebackFork, ParentTakesNewSlotsWhileAChildMayReadTheFile) {
  WritebackFile file;
  ASSERT_TRUE(file.Open("/tmp").ok());
  ForkRun run = RunFork(file, 300);
  // Slot 3 reused at once would have overwritten the child's page 3.
  EXPECT_EQ(run.slot_while_child_reads, kSlots);
  ASSERT_TRUE(WIFEXITED(run.child_status));
  EXPECT_EQ(WEXITSTATUS(run.child_status), 0) << "the child read another page";
  // The child is done: freed slots are reused again (the latest first).
  EXPECT_EQ(run.slot_after_child, kSlots);
  EXPECT_EQ(file.Allocate(), 3u);
}

TEST(WritebackFork, AChildThatDiesEndsTheWaitToo) {
  WritebackFile file;
  ASSERT_TRUE(file.Open("/tmp").ok());
  char page[4096] = {};
  ASSERT_EQ(file.Allocate(), 0u);
  ASSERT_TRUE(file.Write(0, page, sizeof(page)));
  file.PrepareFork();
  pid_t child = fork();
  if (child == 0) {
    pause();  // killed before it is done
    _exit(0);
  }
  file.ParentAfterFork();
  file.Release(0);
  EXPECT_EQ(file.Allocate(), 1u);
  kill(child, SIGKILL);
  int status;
  waitpid(child, &status, 0);
  file.Release(1);
  EXPECT_EQ(file.Allocate(), 1u);
  EXPECT_EQ(file.Allocate(), 0u);
}

}  // namespace
}  // namespace coldheap::shim
