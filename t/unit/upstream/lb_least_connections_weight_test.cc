// "least_connections_weight": smallest active / weight, ties by smooth weighted round robin.
#include <gtest/gtest.h>

#include <limits>

#include "balancer_test_util.h"

namespace speedmimi::upstream {
namespace {

using namespace testing;

TEST(LbLeastConnectionsWeight, TiesFollowSmoothWeightedRoundRobin) {
  TestPool pool;
  pool.add("a", 5);
  pool.add("b", 1);
  pool.add("c", 1);
  SplitMixRandom random(1);
  auto balancer = makeReset("least_connections_weight", random, pool.pointers());
  EXPECT_EQ(pickSequence(*balancer, contextAt(), 14), "aabacaaaabacaa");
}

TEST(LbLeastConnectionsWeight, EqualConnectionsGiveWeightShares) {
  TestPool pool;
  pool.add("a", 6);
  pool.add("b", 3);
  pool.add("c", 1);
  for (const char* id : {"a", "b", "c"}) pool.setActive(id, 0);
  SplitMixRandom random(1);
  auto balancer = makeReset("least_connections_weight", random, pool.pointers());
  const auto counts = countPicks(*balancer, contextAt(), 10'000);
  EXPECT_NEAR(counts.at("a"), 6000, 100);
  EXPECT_NEAR(counts.at("b"), 3000, 100);
  EXPECT_NEAR(counts.at("c"), 1000, 100);
}

// Equal ratios, not equal counts, are ties: 4/2 == 2/1 < 3/1.
TEST(LbLeastConnectionsWeight, TiesAreEqualRatios) {
  TestPool pool;
  pool.add("a", 2);
  pool.add("b", 1);
  pool.add("c", 1);
  pool.setActive("a", 4);
  pool.setActive("b", 2);
  pool.setActive("c", 3);
  SplitMixRandom random(1);
  auto balancer = makeReset("least_connections_weight", random, pool.pointers());
  EXPECT_EQ(pickSequence(*balancer, contextAt(), 6), "abaaba");
}

TEST(LbLeastConnectionsWeight, SmallestRatioWins) {
  TestPool pool;
  pool.add("a", 1);
  pool.add("b", 3);
  pool.setActive("a", 2);  // 2.0
  pool.setActive("b", 5);  // 1.67
  SplitMixRandom random(1);
  auto balancer = makeReset("least_connections_weight", random, pool.pointers());
  EXPECT_EQ(pickSequence(*balancer, contextAt(), 4), "bbbb");
  pool.setActive("b", 7);  // 2.33
  EXPECT_EQ(pickSequence(*balancer, contextAt(), 4), "aaaa");
}

TEST(LbLeastConnectionsWeight, HugeCountsCompareExactly) {
  const int64_t huge = std::numeric_limits<int64_t>::max() / 2;
  TestPool pool;
  pool.add("a", 10'000);
  pool.add("b", 9'999);
  pool.setActive("a", huge);  // the cross products overflow 64 bits
  pool.setActive("b", huge);
  SplitMixRandom random(1);
  auto balancer = makeReset("least_connections_weight", random, pool.pointers());
  EXPECT_EQ(pickSequence(*balancer, contextAt(), 3), "aaa");
  TestPool equal;
  equal.add("a", 1).state().active_connections = huge;
  equal.add("b", 1).state().active_connections = huge - 1;  // a double cannot tell them apart
  balancer->reset(equal.pointers());
  EXPECT_EQ(pickSequence(*balancer, contextAt(), 3), "bbb");
}

TEST(LbLeastConnectionsWeight, NeverPicksAHigherRatio) {
  SplitMixRandom draws(5);
  TestPool pool;
  for (const char* id : {"a", "b", "c", "d"}) pool.add(id, 1 + static_cast<int>(draws.next() % 4));
  SplitMixRandom random(1);
  auto balancer = makeReset("least_connections_weight", random, pool.pointers());
  for (int trial = 0; trial < 1000; ++trial) {
    for (Backend* b : pool.pointers()) {
      b->state().active_connections = static_cast<int64_t>(draws.next() % 8);
    }
    const Backend* picked = balancer->pick(contextAt());
    ASSERT_NE(picked, nullptr);
    const double ratio = static_cast<double>(picked->state().active_connections) / picked->weight();
    for (const Backend* b : pool.pointers()) {
      EXPECT_LE(ratio, static_cast<double>(b->state().active_connections) / b->weight() + 1e-9);
    }
  }
}

TEST(LbLeastConnectionsWeight, SkipsUnavailable) {
  expectSkipsUnavailable("least_connections_weight");
}
TEST(LbLeastConnectionsWeight, NullWhenNoneAvailable) {
  expectNullWhenNoneAvailable("least_connections_weight");
}

// Slow start: idle backends tie, so the ramped weights share the picks exactly.
TEST(LbLeastConnectionsWeight, SlowStartRampsTheWeightOfABackendThatCameBack) {
  expectSmoothRamp("least_connections_weight");
}

TEST(LbLeastConnectionsWeight, SlowStartNotAtFirstStartButAfterAPassiveTakeOut) {
  expectNoRampAtFirstStartAndOneAfterAPassiveTakeOut("least_connections_weight");
}

// The ratio uses the ramped weight: b with 1 in flight at weight 10 (1/10) loses to a with 5 at
// weight 100 (5/100), and wins once its ramp is over (1/100).
TEST(LbLeastConnectionsWeight, SlowStartRatioUsesTheRampedWeight) {
  TestPool pool;
  addRampPair(pool);
  pool.setActive("a", 5);
  pool.setActive("b", 1);
  SplitMixRandom random(1);
  auto balancer = makeReset("least_connections_weight", random, pool.pointers());
  EXPECT_EQ(pickSequence(*balancer, contextAt(kNowMs + 1'000), 3), "aaa");
  EXPECT_EQ(pickSequence(*balancer, contextAt(kNowMs + 10'000), 3), "bbb");
}

}  // namespace
}  // namespace speedmimi::upstream
