// "random": weighted random through the injected Random.
#include <gtest/gtest.h>

#include "balancer_test_util.h"

namespace speedmimi::upstream {
namespace {

using namespace testing;

// Weights 5, 3, 2 split 0..9: draws 0-4 are a, 5-7 b, 8-9 c (draw modulo the total weight).
TEST(LbRandom, DrawsMapOntoWeightRanges) {
  TestPool pool;
  pool.add("a", 5);
  pool.add("b", 3);
  pool.add("c", 2);
  ScriptedRandom random({0, 4, 5, 7, 8, 9, 10, 25});
  auto balancer = makeReset("random", random, pool.pointers());
  EXPECT_EQ(pickSequence(*balancer, contextAt(), 8), "aabbccab");
}

TEST(LbRandom, UnavailableBackendsLeaveTheDraw) {
  TestPool pool;
  pool.add("a", 5);
  pool.add("b", 3);
  pool.add("c", 2);
  pool["a"].state().health = static_cast<int>(Health::kDown);
  ScriptedRandom random({0, 2, 3, 4});  // total is now 5: 0-2 are b, 3-4 c
  auto balancer = makeReset("random", random, pool.pointers());
  EXPECT_EQ(pickSequence(*balancer, contextAt(), 4), "bbcc");
}

TEST(LbRandom, SharesFollowWeightsOver10000Picks) {
  TestPool pool;
  pool.add("a", 5);
  pool.add("b", 3);
  pool.add("c", 2);
  SplitMixRandom random(2024);
  auto balancer = makeReset("random", random, pool.pointers());
  const auto counts = countPicks(*balancer, contextAt(), 10'000);
  EXPECT_NEAR(counts.at("a"), 5000, 100);
  EXPECT_NEAR(counts.at("b"), 3000, 100);
  EXPECT_NEAR(counts.at("c"), 2000, 100);
}

TEST(LbRandom, SequenceIsNotARotation) {
  TestPool pool;
  pool.add("a");
  pool.add("b");
  SplitMixRandom random(3);
  auto balancer = makeReset("random", random, pool.pointers());
  const std::string sequence = pickSequence(*balancer, contextAt(), 64);
  EXPECT_TRUE(sequence.find("aa") != std::string::npos || sequence.find("bb") != std::string::npos)
      << sequence;
}

TEST(LbRandom, SkipsUnavailable) {
  expectSkipsUnavailable("random");
}
TEST(LbRandom, NullWhenNoneAvailable) {
  expectNullWhenNoneAvailable("random");
}

// Slow start: one draw per pick maps onto the ramped weights, a (100) then b.
TEST(LbRandom, SlowStartRampsTheWeightOfABackendThatCameBack) {
  std::vector<uint64_t> draws;
  for (uint64_t v = 0; v < 200; ++v) draws.push_back(v);
  expectDrawnRamp("random", draws);
}

}  // namespace
}  // namespace speedmimi::upstream
