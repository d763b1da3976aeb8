// "least_connections": fewest active connections, ties rotate.
#include <gtest/gtest.h>

#include "balancer_test_util.h"

namespace speedmimi::upstream {
namespace {

using namespace testing;

TEST(LbLeastConnections, TiesRotate) {
  TestPool pool;
  pool.add("a", 5);
  pool.add("b");
  pool.add("c");
  SplitMixRandom random(1);
  auto balancer = makeReset("least_connections", random, pool.pointers());
  EXPECT_EQ(pickSequence(*balancer, contextAt(), 7), "abcabca");
}

TEST(LbLeastConnections, TiesRotateAmongTheLeastOnly) {
  TestPool pool;
  pool.add("a");
  pool.add("b");
  pool.add("c");
  pool.add("d");
  pool.setActive("a", 1);
  pool.setActive("c", 4);
  SplitMixRandom random(1);
  auto balancer = makeReset("least_connections", random, pool.pointers());
  EXPECT_EQ(pickSequence(*balancer, contextAt(), 6), "bdbdbd");
}

// Counters that follow the picks, as the proxy updates them: the load evens out.
TEST(LbLeastConnections, FollowsChangingCounters) {
  TestPool pool;
  pool.add("a");
  pool.add("b");
  pool.add("c");
  pool.setActive("a", 2);
  SplitMixRandom random(1);
  auto balancer = makeReset("least_connections", random, pool.pointers());
  std::string sequence;
  for (int i = 0; i < 7; ++i) {
    Backend* b = balancer->pick(contextAt());
    ASSERT_NE(b, nullptr);
    b->state().active_connections.fetch_add(1);
    sequence += b->id();
  }
  EXPECT_EQ(sequence, "bcbcabc");
}

TEST(LbLeastConnections, NeverPicksAMoreLoadedBackend) {
  SplitMixRandom draws(99);
  TestPool pool;
  for (const char* id : {"a", "b", "c", "d", "e"})
    pool.add(id, 1 + static_cast<int>(draws.next() % 5));
  SplitMixRandom random(1);
  auto balancer = makeReset("least_connections", random, pool.pointers());
  for (int trial = 0; trial < 1000; ++trial) {
    for (Backend* b : pool.pointers()) {
      b->state().active_connections = static_cast<int64_t>(draws.next() % 6);
      b->state().health = static_cast<int>(draws.next() % 5 == 0 ? Health::kDown : Health::kUp);
    }
    const Backend* picked = balancer->pick(contextAt());
    int64_t least = -1;
    for (const Backend* b : pool.pointers()) {
      const int64_t active = b->state().active_connections;
      if (b->available(kNowMs) && (least < 0 || active < least)) least = active;
    }
    if (least < 0) {
      EXPECT_EQ(picked, nullptr);
      continue;
    }
    ASSERT_NE(picked, nullptr);
    EXPECT_TRUE(picked->available(kNowMs));
    EXPECT_EQ(picked->state().active_connections, least);
  }
}

TEST(LbLeastConnections, SkipsUnavailable) {
  expectSkipsUnavailable("least_connections");
}
TEST(LbLeastConnections, NullWhenNoneAvailable) {
  expectNullWhenNoneAvailable("least_connections");
}

// Unweighted, so slow start does not apply: idle backends rotate at once.
TEST(LbLeastConnections, SlowStartDoesNotApply) {
  expectNoSlowStart("least_connections");
}

}  // namespace
}  // namespace speedmimi::upstream
