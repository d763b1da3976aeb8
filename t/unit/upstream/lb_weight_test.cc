// "weight": nginx's smooth weighted round robin.
#include <gtest/gtest.h>

#include "balancer_test_util.h"

namespace speedmimi::upstream {
namespace {

using namespace testing;

TEST(LbWeight, Nginx511Sequence) {
  TestPool pool;
  pool.add("a", 5);
  pool.add("b", 1);
  pool.add("c", 1);
  SplitMixRandom random(1);
  auto balancer = makeReset("weight", random, pool.pointers());
  EXPECT_EQ(pickSequence(*balancer, contextAt(), 21), "aabacaaaabacaaaabacaa");
}

TEST(LbWeight, EqualWeightsRotate) {
  TestPool pool;
  pool.add("a", 2);
  pool.add("b", 2);
  pool.add("c", 2);
  SplitMixRandom random(1);
  auto balancer = makeReset("weight", random, pool.pointers());
  EXPECT_EQ(pickSequence(*balancer, contextAt(), 9), "abcabcabc");
}

// Every window of sum(weights) picks holds each backend exactly weight times.
TEST(LbWeight, EveryWindowHasExactShares) {
  TestPool pool;
  pool.add("a", 4);
  pool.add("b", 3);
  pool.add("c", 2);
  pool.add("d", 1);
  SplitMixRandom random(1);
  auto balancer = makeReset("weight", random, pool.pointers());
  for (int window = 0; window < 50; ++window) {
    const auto counts = countPicks(*balancer, contextAt(), 10);
    EXPECT_EQ(counts.at("a"), 4);
    EXPECT_EQ(counts.at("b"), 3);
    EXPECT_EQ(counts.at("c"), 2);
    EXPECT_EQ(counts.at("d"), 1);
  }
}

TEST(LbWeight, SharesFollowWeightsOver10000Picks) {
  TestPool pool;
  pool.add("a", 50);
  pool.add("b", 30);
  pool.add("c", 17);
  pool.add("d", 3);
  SplitMixRandom random(1);
  auto balancer = makeReset("weight", random, pool.pointers());
  const auto counts = countPicks(*balancer, contextAt(), 10'000);
  EXPECT_NEAR(counts.at("a"), 5000, 100);
  EXPECT_NEAR(counts.at("b"), 3000, 100);
  EXPECT_NEAR(counts.at("c"), 1700, 100);
  EXPECT_NEAR(counts.at("d"), 300, 100);
}

TEST(LbWeight, UnavailableBackendIsSkippedAndOthersKeepTheirShares) {
  TestPool pool;
  pool.add("a", 5);
  pool.add("b", 1);
  pool.add("c", 1);
  pool["a"].state().health = static_cast<int>(Health::kDown);
  SplitMixRandom random(1);
  auto balancer = makeReset("weight", random, pool.pointers());
  EXPECT_EQ(pickSequence(*balancer, contextAt(), 6), "bcbcbc");
}

TEST(LbWeight, ResetRestartsTheSequence) {
  TestPool pool;
  pool.add("a", 5);
  pool.add("b", 1);
  pool.add("c", 1);
  SplitMixRandom random(1);
  auto balancer = makeReset("weight", random, pool.pointers());
  EXPECT_EQ(pickSequence(*balancer, contextAt(), 3), "aab");
  balancer->reset(pool.pointers({"a"}));
  EXPECT_EQ(pickSequence(*balancer, contextAt(), 4), "bcbc");
  balancer->reset(pool.pointers());
  EXPECT_EQ(pickSequence(*balancer, contextAt(), 7), "aabacaa");
}

TEST(LbWeight, SkipsUnavailable) {
  expectSkipsUnavailable("weight");
}
TEST(LbWeight, NullWhenNoneAvailable) {
  expectNullWhenNoneAvailable("weight");
}

// Slow start: exact shares over whole windows of the ramped weights.
TEST(LbWeight, SlowStartRampsTheWeightOfABackendThatCameBack) {
  expectSmoothRamp("weight");
}

TEST(LbWeight, SlowStartNotAtFirstStartButAfterAPassiveTakeOut) {
  expectNoRampAtFirstStartAndOneAfterAPassiveTakeOut("weight");
}

// weights 5 and 5, b back 2 s ago of 10: b weighs ceil(5 * 0.2) = 1, as weights 5, 1 would.
TEST(LbWeight, SlowStartSequenceIsThatOfTheRampedWeights) {
  TestPool pool;
  pool.add("a", 5);
  cameBackAt(pool.add("b", 5, slowStart()), kNowMs);
  SplitMixRandom random(1);
  auto ramping = makeReset("weight", random, pool.pointers());
  TestPool fixed;
  fixed.add("a", 5);
  fixed.add("b", 1);
  auto reference = makeReset("weight", random, fixed.pointers());
  EXPECT_EQ(pickSequence(*ramping, contextAt(kNowMs + 2'000), 12),
            pickSequence(*reference, contextAt(), 12));
}

}  // namespace
}  // namespace speedmimi::upstream
