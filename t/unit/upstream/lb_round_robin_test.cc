// "round_robin": plain rotation, weights ignored.
#include <gtest/gtest.h>

#include "balancer_test_util.h"

namespace speedmimi::upstream {
namespace {

using namespace testing;

TEST(LbRoundRobin, RotatesIgnoringWeights) {
  TestPool pool;
  pool.add("a", 5);
  pool.add("b", 1);
  pool.add("c", 1);
  SplitMixRandom random(1);
  auto balancer = makeReset("round_robin", random, pool.pointers());
  EXPECT_EQ(pickSequence(*balancer, contextAt(), 10), "abcabcabca");
}

TEST(LbRoundRobin, SkipsUnavailableWithoutDisturbingTheRotation) {
  TestPool pool;
  pool.add("a");
  pool.add("b");
  pool.add("c");
  pool.add("d");
  SplitMixRandom random(1);
  auto balancer = makeReset("round_robin", random, pool.pointers());
  EXPECT_EQ(pickSequence(*balancer, contextAt(), 2), "ab");
  pool["c"].state().passive_down_until_ms = kNowMs + 1'000;
  EXPECT_EQ(pickSequence(*balancer, contextAt(), 6), "dabdab");
  EXPECT_EQ(pickSequence(*balancer, contextAt(kNowMs + 1'000), 4), "cdab");
}

TEST(LbRoundRobin, ExcludedBackendIsSkippedForThatPickOnly) {
  TestPool pool;
  Backend& a = pool.add("a");
  pool.add("b");
  SplitMixRandom random(1);
  auto balancer = makeReset("round_robin", random, pool.pointers());
  const Backend* tried[] = {&a};
  PickContext retry = contextAt();
  retry.exclude = tried;
  EXPECT_EQ(pickSequence(*balancer, retry, 3), "bbb");
  EXPECT_EQ(pickSequence(*balancer, contextAt(), 2), "ab");
}

TEST(LbRoundRobin, EqualSharesOver10000Picks) {
  TestPool pool;
  pool.add("a", 9);
  pool.add("b", 1);
  pool.add("c", 4);
  SplitMixRandom random(1);
  auto balancer = makeReset("round_robin", random, pool.pointers());
  const auto counts = countPicks(*balancer, contextAt(), 9'999);
  EXPECT_EQ(counts.at("a"), 3333);
  EXPECT_EQ(counts.at("b"), 3333);
  EXPECT_EQ(counts.at("c"), 3333);
}

TEST(LbRoundRobin, SkipsUnavailable) {
  expectSkipsUnavailable("round_robin");
}
TEST(LbRoundRobin, NullWhenNoneAvailable) {
  expectNullWhenNoneAvailable("round_robin");
}

// Weights are ignored, so is slow start: a backend that just came back gets its turn at once.
TEST(LbRoundRobin, SlowStartDoesNotApply) {
  expectNoSlowStart("round_robin");
}

}  // namespace
}  // namespace speedmimi::upstream
