// Slab: the allocator of the shared zone (DESIGN §3). Size classes and page runs, zeroed and
// disjoint blocks inside the region, reuse after free, exhaustion, and use from forked processes.
#include "core/slab.h"

#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cstring>
#include <set>
#include <string>
#include <vector>

#include "core/shm.h"

namespace speedmimi::core {

// The slab's lock, to leave it as a crashed process would (slab.h befriends this class).
class SlabTestAccess {
 public:
  static pthread_mutex_t& mutex(Slab& slab) { return slab.mutex_; }
};

namespace {

constexpr size_t kPage = Slab::kPageSize;

// A shared mapping with a slab laid out over it, as the zone does.
class SlabTest : public ::testing::Test {
 protected:
  void makeSlab(size_t bytes) {
    std::string error;
    ASSERT_TRUE(memory_.map(bytes, error)) << error;
    slab_ = Slab::create(memory_.data(), memory_.size(), error);
    ASSERT_NE(slab_, nullptr) << error;
  }
  bool inRegion(const void* block, size_t bytes) const {
    const char* begin = static_cast<const char*>(memory_.data());
    const char* p = static_cast<const char*>(block);
    return p >= begin && p + bytes <= begin + memory_.size();
  }
  static bool allZero(const void* block, size_t bytes) {
    const char* p = static_cast<const char*>(block);
    return std::all_of(p, p + bytes, [](char c) { return c == 0; });
  }

  SharedMemory memory_;
  Slab* slab_ = nullptr;
};

// Fills every block with its own byte, then checks each still holds only that byte: any
// overlap between two blocks would show up as a foreign byte.
void expectDisjoint(const std::vector<void*>& blocks, size_t bytes) {
  for (size_t i = 0; i < blocks.size(); ++i) {
    std::memset(blocks[i], static_cast<int>(i % 251) + 1, bytes);
  }
  for (size_t i = 0; i < blocks.size(); ++i) {
    const char* p = static_cast<const char*>(blocks[i]);
    char want = static_cast<char>(i % 251 + 1);
    ASSERT_TRUE(std::all_of(p, p + bytes, [want](char c) { return c == want; }))
        << "block " << i << " of " << bytes << " bytes was overwritten by another block";
  }
}

TEST(SlabCreate, RejectsARegionTooSmallForItsOwnBookkeeping) {
  SharedMemory memory;
  std::string error;
  ASSERT_TRUE(memory.map(2 * kPage, error)) << error;
  EXPECT_EQ(Slab::create(memory.data(), memory.size(), error), nullptr);
  EXPECT_NE(error.find("too small"), std::string::npos) << error;
}

TEST_F(SlabTest, StartsWithEveryPageFree) {
  makeSlab(256 * kPage);
  EXPECT_GT(slab_->totalPages(), 200u);
  EXPECT_LT(slab_->totalPages(), 256u);  // the allocator's own header takes some room
  EXPECT_EQ(slab_->freePages(), slab_->totalPages());
}

// Every size class, at its lower and upper edge: 40 blocks each, zeroed, inside the region,
// never overlapping.
TEST_F(SlabTest, EverySizeClassGivesZeroedDisjointBlocksInTheRegion) {
  makeSlab(1024 * kPage);
  for (size_t size = Slab::kMinBlock; size <= kPage / 2; size *= 2) {
    for (size_t bytes : {size / 2 + 1, size}) {
      SCOPED_TRACE("allocate(" + std::to_string(bytes) + ")");
      std::vector<void*> blocks;
      for (int i = 0; i < 40; ++i) {
        void* b = slab_->allocate(bytes);
        ASSERT_NE(b, nullptr);
        EXPECT_TRUE(inRegion(b, bytes));
        EXPECT_TRUE(allZero(b, bytes));
        blocks.push_back(b);
      }
      EXPECT_EQ(std::set<void*>(blocks.begin(), blocks.end()).size(), blocks.size());
      expectDisjoint(blocks, bytes);
    }
  }
}

TEST_F(SlabTest, SmallBlocksShareAPage) {
  makeSlab(64 * kPage);
  size_t before = slab_->freePages();
  for (size_t i = 0; i < kPage / Slab::kMinBlock; ++i) ASSERT_NE(slab_->allocate(20), nullptr);
  EXPECT_EQ(slab_->freePages(), before - 1) << "128 blocks of 32 bytes fill exactly one page";
  ASSERT_NE(slab_->allocate(20), nullptr);
  EXPECT_EQ(slab_->freePages(), before - 2);
}

TEST_F(SlabTest, LargeBlocksTakeWholePageRunsAndGiveThemBack) {
  makeSlab(64 * kPage);
  const size_t before = slab_->freePages();
  struct Case {
    size_t bytes;
    size_t pages;
  };
  const Case cases[] = {
      {kPage / 2 + 1, 1}, {kPage, 1}, {kPage + 1, 2}, {3 * kPage, 3}, {10 * kPage - 7, 10}};
  std::vector<void*> blocks;
  size_t taken = 0;
  for (const Case& c : cases) {
    SCOPED_TRACE("allocate(" + std::to_string(c.bytes) + ")");
    void* b = slab_->allocate(c.bytes);
    ASSERT_NE(b, nullptr);
    EXPECT_TRUE(inRegion(b, c.bytes));
    EXPECT_TRUE(allZero(b, c.bytes));
    taken += c.pages;
    EXPECT_EQ(slab_->freePages(), before - taken);
    blocks.push_back(b);
  }
  // Disjoint across the runs: fill each with its own byte and check them all afterwards.
  for (size_t i = 0; i < blocks.size(); ++i) std::memset(blocks[i], int(i) + 1, cases[i].bytes);
  for (size_t i = 0; i < blocks.size(); ++i) {
    const char* p = static_cast<const char*>(blocks[i]);
    EXPECT_TRUE(std::all_of(p, p + cases[i].bytes, [i](char c) { return c == char(i + 1); }));
  }
  for (void* b : blocks) slab_->free(b);
  EXPECT_EQ(slab_->freePages(), before);
}

TEST_F(SlabTest, AFreedBlockIsReusedAndComesBackZeroed) {
  makeSlab(64 * kPage);
  void* first = slab_->allocate(100);
  ASSERT_NE(first, nullptr);
  const size_t pages = slab_->freePages();
  for (int round = 0; round < 1000; ++round) {
    void* b = slab_->allocate(100);
    ASSERT_NE(b, nullptr);
    ASSERT_TRUE(allZero(b, 100)) << "round " << round;
    std::memset(b, 0x5a, 100);
    slab_->free(b);
  }
  EXPECT_EQ(slab_->freePages(), pages) << "alloc/free cycles must not eat pages";

  void* big = slab_->allocate(5 * kPage);
  ASSERT_NE(big, nullptr);
  std::memset(big, 0x7f, 5 * kPage);
  slab_->free(big);
  void* again = slab_->allocate(5 * kPage);
  ASSERT_NE(again, nullptr);
  EXPECT_TRUE(allZero(again, 5 * kPage));
}

TEST_F(SlabTest, FreeOfNullIsIgnored) {
  makeSlab(16 * kPage);
  const size_t before = slab_->freePages();
  slab_->free(nullptr);
  EXPECT_EQ(slab_->freePages(), before);
  EXPECT_NE(slab_->allocate(64), nullptr);
}

TEST_F(SlabTest, PageExhaustionReturnsNullAndFreeingMakesRoom) {
  makeSlab(16 * kPage);
  std::vector<void*> pages;
  while (void* p = slab_->allocate(kPage)) {
    pages.push_back(p);
    ASSERT_LE(pages.size(), slab_->totalPages());
  }
  EXPECT_EQ(pages.size(), slab_->totalPages());
  EXPECT_EQ(slab_->freePages(), 0u);
  EXPECT_EQ(slab_->allocate(kPage), nullptr);
  EXPECT_EQ(slab_->allocate(32), nullptr) << "no page left to carve a small class from";
  expectDisjoint(pages, kPage);

  slab_->free(pages.back());
  pages.pop_back();
  void* p = slab_->allocate(kPage);
  ASSERT_NE(p, nullptr);
  EXPECT_TRUE(allZero(p, kPage));
  EXPECT_EQ(slab_->allocate(kPage), nullptr);
}

TEST_F(SlabTest, ARunNeedsContiguousFreePages) {
  makeSlab(16 * kPage);
  std::vector<void*> pages;
  while (void* p = slab_->allocate(kPage)) pages.push_back(p);
  ASSERT_GE(pages.size(), 6u);
  // Free every other page: as many free pages as a 2-page run needs, but none adjacent.
  std::sort(pages.begin(), pages.end());
  slab_->free(pages[1]);
  slab_->free(pages[3]);
  EXPECT_EQ(slab_->freePages(), 2u);
  EXPECT_EQ(slab_->allocate(2 * kPage), nullptr);
  slab_->free(pages[2]);
  void* run = slab_->allocate(2 * kPage);
  ASSERT_NE(run, nullptr);
  EXPECT_TRUE(run == pages[1] || run == pages[2]);
}

TEST_F(SlabTest, SmallClassExhaustionAndRecovery) {
  makeSlab(16 * kPage);
  std::vector<void*> blocks;
  while (void* b = slab_->allocate(64)) {
    blocks.push_back(b);
    ASSERT_LE(blocks.size(), slab_->totalPages() * (kPage / 64));
  }
  EXPECT_EQ(blocks.size(), slab_->totalPages() * (kPage / 64));
  EXPECT_EQ(std::set<void*>(blocks.begin(), blocks.end()).size(), blocks.size());
  slab_->free(blocks[17]);
  void* b = slab_->allocate(64);
  EXPECT_EQ(b, blocks[17]) << "the only free block must be the one handed out";
  EXPECT_EQ(slab_->allocate(64), nullptr);
}

// Runs `body` in `n` forked children; true when every child exited with status 0.
template <typename Body>
bool inChildren(int n, Body body) {
  std::vector<pid_t> children;
  for (int i = 0; i < n; ++i) {
    pid_t pid = fork();
    if (pid < 0) return false;
    if (pid == 0) _exit(body(i));
    children.push_back(pid);
  }
  bool ok = true;
  for (pid_t pid : children) {
    int status = 0;
    if (waitpid(pid, &status, 0) != pid || !WIFEXITED(status) || WEXITSTATUS(status) != 0) {
      ok = false;
    }
  }
  return ok;
}

TEST_F(SlabTest, AtomicsInABlockSumExactlyAcrossForkedProcesses) {
  makeSlab(64 * kPage);
  constexpr int kChildren = 4;
  constexpr uint64_t kIncrements = 100'000;
  auto* counters = static_cast<std::atomic<uint64_t>*>(slab_->allocate(2 * sizeof(uint64_t)));
  ASSERT_NE(counters, nullptr);
  new (&counters[0]) std::atomic<uint64_t>(0);
  new (&counters[1]) std::atomic<uint64_t>(0);
  ASSERT_TRUE(inChildren(kChildren, [&](int child) {
    for (uint64_t i = 0; i < kIncrements; ++i) {
      counters[0].fetch_add(1, std::memory_order_relaxed);
      counters[1].fetch_add(static_cast<uint64_t>(child) + 1, std::memory_order_relaxed);
    }
    return 0;
  }));
  EXPECT_EQ(counters[0].load(), kChildren * kIncrements);
  EXPECT_EQ(counters[1].load(), kIncrements * (1 + 2 + 3 + 4));
}

// The allocation lock is process-shared: children allocating at the same time never receive
// the same block. Each child writes its blocks' offsets into its own row of a shared table.
TEST_F(SlabTest, ConcurrentAllocationsFromForkedProcessesAreDistinct) {
  makeSlab(4096 * kPage);  // room for all of it: about 6.3 MB in 16 MiB
  constexpr int kChildren = 4;
  constexpr size_t kPerChild = 2000;
  auto* table = static_cast<uint64_t*>(slab_->allocate(kChildren * kPerChild * sizeof(uint64_t)));
  ASSERT_NE(table, nullptr);
  char* base = static_cast<char*>(memory_.data());
  ASSERT_TRUE(inChildren(kChildren, [&](int child) {
    for (size_t i = 0; i < kPerChild; ++i) {
      // Mixed sizes, and some churn, so the free lists and the page map are contended.
      size_t bytes = i % 3 == 0 ? 48 : (i % 3 == 1 ? 200 : 1500);
      void* b = slab_->allocate(bytes);
      if (!b) return 1;
      std::memset(b, child + 1, bytes);
      void* churn = slab_->allocate(64);
      slab_->free(churn);
      table[child * kPerChild + i] = static_cast<uint64_t>(static_cast<char*>(b) - base);
    }
    return 0;
  }));
  std::set<uint64_t> offsets(table, table + kChildren * kPerChild);
  EXPECT_EQ(offsets.size(), kChildren * kPerChild) << "two allocations returned the same block";
  // Each child's bytes are intact: nobody else wrote into its blocks.
  for (int child = 0; child < kChildren; ++child) {
    for (size_t i = 0; i < kPerChild; ++i) {
      size_t bytes = i % 3 == 0 ? 48 : (i % 3 == 1 ? 200 : 1500);
      const char* p = base + table[child * kPerChild + i];
      ASSERT_TRUE(std::all_of(p, p + bytes, [child](char c) { return c == char(child + 1); }))
          << "child " << child << " block " << i;
    }
  }
}

// A process killed in the middle of allocating (quite likely while it holds the lock: it does
// nothing else) must not wedge the others. The survivor runs in a child with an alarm, so a
// wedged lock fails the test instead of hanging it.
TEST_F(SlabTest, AProcessKilledWhileAllocatingDoesNotWedgeTheLock) {
  makeSlab(256 * kPage);
  for (int attempt = 0; attempt < 5; ++attempt) {
    pid_t busy = fork();
    ASSERT_GE(busy, 0);
    if (busy == 0) {
      for (;;) {
        void* small = slab_->allocate(96);
        void* large = slab_->allocate(3 * kPage);
        slab_->free(large);
        slab_->free(small);
      }
    }
    usleep(20'000 + attempt * 7'000);
    ASSERT_EQ(kill(busy, SIGKILL), 0);
    int status = 0;
    ASSERT_EQ(waitpid(busy, &status, 0), busy);
    ASSERT_TRUE(inChildren(1,
                           [&](int) {
                             alarm(5);
                             void* b = slab_->allocate(96);
                             void* p = slab_->allocate(kPage);
                             slab_->free(p);
                             slab_->free(b);
                             return b && p ? 0 : 1;
                           }))
        << "attempt " << attempt << ": allocation after the kill failed or hung";
  }
  EXPECT_NE(slab_->allocate(kPage), nullptr);
}

// A lock left unrecoverable (a holder died and the next released it without making it
// consistent): allocation fails instead of carving blocks under a lock it does not hold, and
// free leaks rather than touch the free lists.
TEST_F(SlabTest, AnUnrecoverableLockFailsAllocationInsteadOfProceeding) {
  makeSlab(16 * kPage);
  void* kept = slab_->allocate(64);
  ASSERT_NE(kept, nullptr);
  const size_t free_before = slab_->freePages();
  pthread_mutex_t& mutex = SlabTestAccess::mutex(*slab_);
  pid_t pid = fork();
  ASSERT_GE(pid, 0);
  if (pid == 0) _exit(pthread_mutex_lock(&mutex) == 0 ? 0 : 1);  // dies holding it
  int status = 0;
  ASSERT_EQ(waitpid(pid, &status, 0), pid);
  ASSERT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0);
  ASSERT_EQ(pthread_mutex_lock(&mutex), EOWNERDEAD);
  ASSERT_EQ(pthread_mutex_unlock(&mutex), 0);  // without pthread_mutex_consistent

  EXPECT_EQ(slab_->allocate(64), nullptr);
  EXPECT_EQ(slab_->allocate(3 * kPage), nullptr);
  slab_->free(kept);
  EXPECT_EQ(slab_->freePages(), 0u) << "counted without the lock";
  EXPECT_GT(free_before, 0u);
}

}  // namespace
}  // namespace speedmimi::core
