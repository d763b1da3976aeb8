// "least_latency": power of two random choices on (latency EWMA + 1 us) x (in-flight + 1), a
// backend not measured yet first.
#include <gtest/gtest.h>

#include <chrono>

#include "balancer_test_util.h"

namespace speedmimi::upstream {
namespace {

using namespace testing;

// The first sample is taken as is, so this sets the EWMA.
void setLatency(TestPool& pool, const char* id, int64_t latency_us) {
  pool[id].recordLatency(std::chrono::microseconds(latency_us));
}

// With two backends both are always drawn, so the faster one always wins.
TEST(LbLeastLatency, PrefersTheLowerLatency) {
  TestPool pool;
  pool.add("a");
  pool.add("b");
  setLatency(pool, "a", 3'000);
  setLatency(pool, "b", 1'000);
  SplitMixRandom random(1);
  auto balancer = makeReset("least_latency", random, pool.pointers());
  EXPECT_EQ(countPicks(*balancer, contextAt(), 500).at("b"), 500);
}

TEST(LbLeastLatency, InFlightRequestsScaleTheLatency) {
  TestPool pool;
  pool.add("a");
  pool.add("b");
  setLatency(pool, "a", 1'000);
  setLatency(pool, "b", 2'000);
  pool.setActive("a", 3);  // 4'000 against 2'000
  SplitMixRandom random(1);
  auto balancer = makeReset("least_latency", random, pool.pointers());
  EXPECT_EQ(countPicks(*balancer, contextAt(), 200).at("b"), 200);
  pool.setActive("b", 2);  // 4'000 against 6'000
  EXPECT_EQ(countPicks(*balancer, contextAt(), 200).at("a"), 200);
}

TEST(LbLeastLatency, UnmeasuredBackendCountsAsFastest) {
  TestPool pool;
  pool.add("a");
  pool.add("b");
  setLatency(pool, "a", 1);
  pool.setActive("b", 10);  // no latency yet: picked so that it gets measured
  SplitMixRandom random(1);
  auto balancer = makeReset("least_latency", random, pool.pointers());
  EXPECT_EQ(countPicks(*balancer, contextAt(), 200).at("b"), 200);
}

// A measured 0 us is a very fast backend, not an unmeasured one: the unmeasured one still goes
// first (it must get measured), and the measured 0 beats any slower measured backend.
TEST(LbLeastLatency, AMeasuredZeroIsAMeasurement) {
  TestPool pool;
  pool.add("a");
  pool.add("b");
  setLatency(pool, "a", 0);
  SplitMixRandom random(1);
  auto balancer = makeReset("least_latency", random, pool.pointers());
  EXPECT_EQ(countPicks(*balancer, contextAt(), 200).at("b"), 200) << "b is not measured yet";
  setLatency(pool, "b", 800);
  EXPECT_EQ(countPicks(*balancer, contextAt(), 200).at("a"), 200);
}

// The cost is (EWMA + 1) x (in-flight + 1): a backend measured at 0 us with five requests in
// flight (cost 6) loses to an idle one measured at 1 us (cost 2), instead of costing 0 however
// busy it is.
TEST(LbLeastLatency, AMeasuredZeroStillCountsItsInFlightRequests) {
  TestPool pool;
  pool.add("a");
  pool.add("b");
  setLatency(pool, "a", 0);
  setLatency(pool, "b", 1);
  pool.setActive("a", 5);
  SplitMixRandom random(1);
  auto balancer = makeReset("least_latency", random, pool.pointers());
  EXPECT_EQ(countPicks(*balancer, contextAt(), 200).at("b"), 200);
}

// Two unmeasured backends: the one with fewer requests in flight, so first probes spread.
TEST(LbLeastLatency, BetweenTwoUnmeasuredFewerInFlightWins) {
  TestPool pool;
  pool.add("a");
  pool.add("b");
  pool.setActive("a", 3);
  SplitMixRandom random(1);
  auto balancer = makeReset("least_latency", random, pool.pointers());
  EXPECT_EQ(countPicks(*balancer, contextAt(), 200).at("b"), 200);
}

// Among three, the slowest is never picked (it loses every pair) and the fastest wins the
// two pairs it is drawn into: about two thirds.
TEST(LbLeastLatency, TwoChoicesAmongThree) {
  TestPool pool;
  pool.add("a");
  pool.add("b");
  pool.add("c");
  setLatency(pool, "a", 1'000);
  setLatency(pool, "b", 2'000);
  setLatency(pool, "c", 5'000);
  SplitMixRandom random(17);
  auto balancer = makeReset("least_latency", random, pool.pointers());
  const auto counts = countPicks(*balancer, contextAt(), 9'000);
  EXPECT_EQ(counts.count("c"), 0u);
  EXPECT_NEAR(counts.at("a"), 6'000, 300);
  EXPECT_NEAR(counts.at("b"), 3'000, 300);
}

// Equal costs: the first draw wins, so shares follow the weights.
TEST(LbLeastLatency, EqualLatenciesSpreadByWeight) {
  TestPool pool;
  pool.add("a", 2);
  pool.add("b", 1);
  pool.add("c", 1);
  for (const char* id : {"a", "b", "c"}) setLatency(pool, id, 500);
  SplitMixRandom random(5);
  auto balancer = makeReset("least_latency", random, pool.pointers());
  const auto counts = countPicks(*balancer, contextAt(), 10'000);
  EXPECT_NEAR(counts.at("a"), 5'000, 150);
  EXPECT_NEAR(counts.at("b"), 2'500, 150);
  EXPECT_NEAR(counts.at("c"), 2'500, 150);
}

TEST(LbLeastLatency, SingleCandidateIsPicked) {
  TestPool pool;
  pool.add("a");
  pool.add("b").state().health = static_cast<int>(Health::kDown);
  setLatency(pool, "a", 9'000);
  SplitMixRandom random(1);
  auto balancer = makeReset("least_latency", random, pool.pointers());
  EXPECT_EQ(pickSequence(*balancer, contextAt(), 3), "aaa");
}

TEST(LbLeastLatency, SkipsUnavailable) {
  expectSkipsUnavailable("least_latency");
}
TEST(LbLeastLatency, NullWhenNoneAvailable) {
  expectNullWhenNoneAvailable("least_latency");
}

// Slow start: both choices are drawn by the ramped weights. Both backends unmeasured and idle
// tie, so the first draw wins: first draws 0..199, second draws 0.
TEST(LbLeastLatency, SlowStartRampsTheWeightOfABackendThatCameBack) {
  std::vector<uint64_t> draws;
  for (uint64_t i = 0; i < 200; ++i) {
    draws.push_back(i);
    draws.push_back(0);
  }
  expectDrawnRamp("least_latency", draws);
}

}  // namespace
}  // namespace speedmimi::upstream
