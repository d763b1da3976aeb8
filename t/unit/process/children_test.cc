// The master's book of children across generations: respawn with backoff, retiring children
// never respawned, and what a reload retires.
#include "process/children.h"

#include <gtest/gtest.h>

namespace speedmimi::process {
namespace {

using std::chrono::milliseconds;
using std::chrono::seconds;

const Clock::time_point kT0 = Clock::time_point() + seconds(1000);

// Marks `c` running as `pid` since `at`, as the master does after fork().
void run(Child& c, pid_t pid, Clock::time_point at) {
  c.pid = pid;
  c.started = at;
}

TEST(ChildTable, ANewChildIsDueAtOnce) {
  ChildTable t;
  Child& w = t.add(Role::kWorker, 1, kT0);
  ASSERT_EQ(t.due(kT0).size(), 1u);
  EXPECT_EQ(t.due(kT0)[0], &w);
  run(w, 100, kT0);
  EXPECT_TRUE(t.due(kT0).empty());
  EXPECT_EQ(t.byPid(100), &w);
  EXPECT_EQ(t.byPid(0), nullptr);
}

TEST(ChildTable, AnUnexpectedExitIsRespawnedWithABackoffThatGrowsWhileItKeepsCrashing) {
  ChildTable t;
  Child& w = t.add(Role::kWorker, 1, kT0);
  Clock::time_point now = kT0;
  milliseconds expected[] = {milliseconds(100), milliseconds(200), milliseconds(400),
                             milliseconds(800)};
  for (milliseconds want : expected) {
    run(w, 100, now);
    now += milliseconds(10);  // dies at once
    EXPECT_TRUE(t.exited(w, now, false));
    EXPECT_EQ(w.backoff, want);
    EXPECT_TRUE(t.due(now + want - milliseconds(1)).empty());
    EXPECT_EQ(t.due(now + want).size(), 1u);
    now += want;
  }
  for (int i = 0; i < 10; ++i) {
    run(w, 100, now);
    t.exited(w, now, false);
  }
  EXPECT_EQ(w.backoff, ChildTable::kMaxBackoff);
  // Ran for more than a second: respawned at once, backoff forgotten.
  run(w, 100, now);
  now += seconds(2);
  EXPECT_TRUE(t.exited(w, now, false));
  EXPECT_EQ(w.backoff, milliseconds(0));
  EXPECT_EQ(t.due(now).size(), 1u);
}

TEST(ChildTable, ARetiringChildIsNeverRespawned) {
  ChildTable t;
  Child& old_worker = t.add(Role::kWorker, 1, kT0);
  Child& old_control = t.add(Role::kControl, 1, kT0);
  run(old_worker, 100, kT0);
  run(old_control, 101, kT0);
  Child& fresh = t.add(Role::kWorker, 2, kT0);
  run(fresh, 200, kT0);

  std::vector<Child*> told = t.retire(2);  // generation 2 serves: everything before it retires
  ASSERT_EQ(told.size(), 2u);
  EXPECT_TRUE(old_worker.retiring);
  EXPECT_TRUE(old_control.retiring);
  EXPECT_FALSE(fresh.retiring);
  EXPECT_TRUE(t.retire(2).empty());  // told once

  EXPECT_FALSE(t.exited(*t.byPid(100), kT0 + seconds(5), false));
  EXPECT_FALSE(t.exited(*t.byPid(101), kT0 + seconds(5), false));
  EXPECT_TRUE(t.due(kT0 + seconds(60)).empty());
  EXPECT_EQ(t.countOf(1), 0u);
  EXPECT_EQ(t.countOf(2), 1u);
}

TEST(ChildTable, RetiringADeadChildWaitingForItsRespawnRemovesIt) {
  ChildTable t;
  Child& w = t.add(Role::kWorker, 1, kT0);
  run(w, 100, kT0);
  t.exited(w, kT0 + milliseconds(5), false);  // waiting for its backoff
  EXPECT_TRUE(t.retire(2).empty());
  EXPECT_EQ(t.countOf(1), 0u);
  EXPECT_TRUE(t.due(kT0 + seconds(60)).empty());
}

TEST(ChildTable, RetiringOneGenerationOnlyLeavesTheOthers) {
  ChildTable t;
  run(t.add(Role::kWorker, 1, kT0), 100, kT0);
  run(t.add(Role::kWorker, 2, kT0), 200, kT0);
  run(t.add(Role::kWorker, 3, kT0), 300, kT0);
  std::vector<Child*> told = t.retire(2, true);  // a superseded reload
  ASSERT_EQ(told.size(), 1u);
  EXPECT_EQ(told[0]->pid, 200);
  EXPECT_FALSE(t.byPid(100)->retiring);
  EXPECT_FALSE(t.byPid(300)->retiring);
}

TEST(ChildTable, WhileStoppingNothingIsRespawned) {
  ChildTable t;
  Child& w = t.add(Role::kWorker, 1, kT0);
  run(w, 100, kT0);
  EXPECT_FALSE(t.exited(w, kT0 + seconds(5), true));
  EXPECT_TRUE(t.all().empty());
}

TEST(ChildTable, CountsRunningChildrenByRoleAndGeneration) {
  ChildTable t;
  run(t.add(Role::kWorker, 1, kT0), 100, kT0);
  run(t.add(Role::kWorker, 1, kT0), 101, kT0);
  run(t.add(Role::kControl, 1, kT0), 102, kT0);
  t.add(Role::kControl, 2, kT0);  // waiting for the old control process to exit
  EXPECT_EQ(t.running(Role::kWorker), 2u);
  EXPECT_EQ(t.running(Role::kControl), 1u);
  EXPECT_EQ(t.runningOf(1), 3u);
  EXPECT_EQ(t.runningOf(2), 0u);
  EXPECT_EQ(t.countOf(2), 1u);
}

}  // namespace
}  // namespace speedmimi::process
