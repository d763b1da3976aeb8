// "performance_least_connections_weight": effective weight
// weight / ((active + 1) * (1 + 4 u^2)), picked by smooth weighted round robin.
#include <gtest/gtest.h>

#include "balancer_test_util.h"

namespace speedmimi::upstream {
namespace {

using namespace testing;

constexpr const char* kName = "performance_least_connections_weight";

// Report fields are percent x 100 and load x 100, as the report API stores them.
void report(Backend& b, uint32_t cpu, uint32_t memory, uint32_t load, int64_t at_ms) {
  b.state().report_cpu = cpu;
  b.state().report_memory = memory;
  b.state().report_load = load;
  b.state().report_time_ms = at_ms;
}

TEST(LbPerformance, LoadedBackendGetsAtMostAThirdOfTheIdleShare) {
  TestPool pool;
  pool.add("idle", 1);
  report(pool.add("loaded", 1), 9'500, 9'000, 0, kNowMs - 1'000);
  SplitMixRandom random(1);
  auto balancer = makeReset(kName, random, pool.pointers());
  const auto counts = countPicks(*balancer, contextAt(), 10'000);
  EXPECT_LE(counts.at("loaded") * 3, counts.at("idle"));
  EXPECT_GT(counts.at("loaded"), 0);  // a share, not starvation
}

TEST(LbPerformance, StaleReportIsIgnored) {
  TestPool pool;
  pool.add("idle", 1);
  Backend& loaded = pool.add("loaded", 1);
  report(loaded, 9'500, 9'000, 500, kNowMs - 30'001);
  SplitMixRandom random(1);
  auto balancer = makeReset(kName, random, pool.pointers());
  auto counts = countPicks(*balancer, contextAt(), 10'000);
  EXPECT_NEAR(counts.at("loaded"), 5'000, 100);
  EXPECT_NEAR(counts.at("idle"), 5'000, 100);
  // The same report 30 s old exactly still counts.
  report(loaded, 9'500, 9'000, 500, kNowMs - 30'000);
  counts = countPicks(*balancer, contextAt(), 10'000);
  EXPECT_LE(counts.at("loaded") * 3, counts.at("idle"));
}

TEST(LbPerformance, NoReportMeansIdle) {
  TestPool pool;
  pool.add("a", 1);
  report(pool.add("b", 1), 9'900, 9'900, 1'000, 0);  // time 0: never reported
  SplitMixRandom random(1);
  auto balancer = makeReset(kName, random, pool.pointers());
  const auto counts = countPicks(*balancer, contextAt(), 1'000);
  EXPECT_EQ(counts.at("a"), 500);
  EXPECT_EQ(counts.at("b"), 500);
}

// Shares are proportional to the effective weights; the table gives the expected share of
// backend b (percent) against an idle, connection-free backend a of weight 1.
TEST(LbPerformance, SharesFollowTheFormula) {
  struct Case {
    const char* what;
    int weight;
    int64_t active;
    uint32_t cpu, memory, load;
    double expected_b_percent;
  };
  const Case cases[] = {
      {"equal", 1, 0, 0, 0, 0, 50.0},
      {"weight 3", 3, 0, 0, 0, 0, 75.0},
      {"3 connections", 1, 3, 0, 0, 0, 20.0},                      // 1/4 against 1
      {"weight 3 and 2 connections", 3, 2, 0, 0, 0, 50.0},         // 3/3 against 1
      {"50% memory", 1, 0, 1'000, 5'000, 0, 100.0 / 3},            // penalty 2
      {"saturated", 1, 0, 10'000, 0, 0, 100.0 / 6},                // penalty 5
      {"load 10 alone", 1, 0, 0, 0, 1'000, 100 / (1 + 1.04)},      // u = 0.1
      {"load capped at 10", 1, 0, 0, 0, 5'000, 100 / (1 + 1.04)},  // still u = 0.1
      {"cpu 50% and load 2", 1, 0, 5'000, 0, 200, 100 / (1 + 1 + 4 * 0.52 * 0.52)},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.what);
    TestPool pool;
    pool.add("a", 1);
    Backend& b = pool.add("b", c.weight);
    pool.setActive("b", c.active);
    report(b, c.cpu, c.memory, c.load, kNowMs);
    SplitMixRandom random(1);
    auto balancer = makeReset(kName, random, pool.pointers());
    const auto counts = countPicks(*balancer, contextAt(), 10'000);
    EXPECT_NEAR(counts.at("b") / 100.0, c.expected_b_percent, 1.0);
  }
}

TEST(LbPerformance, MoreLoadMeansFewerPicks) {
  int previous = 10'001;
  for (uint32_t cpu = 0; cpu <= 10'000; cpu += 1'000) {
    TestPool pool;
    pool.add("a", 1);
    report(pool.add("b", 1), cpu, 0, 0, kNowMs);
    SplitMixRandom random(1);
    auto balancer = makeReset(kName, random, pool.pointers());
    const int picks = countPicks(*balancer, contextAt(), 10'000)["b"];
    EXPECT_LT(picks, previous) << "cpu " << cpu;
    previous = picks;
  }
}

TEST(LbPerformance, SkipsUnavailable) {
  expectSkipsUnavailable(kName);
}
TEST(LbPerformance, NullWhenNoneAvailable) {
  expectNullWhenNoneAvailable(kName);
}

// Slow start: without reports or connections the effective weights are the ramped weights
// (x 2^20), shared exactly by smooth weighted round robin.
TEST(LbPerformance, SlowStartRampsTheWeightOfABackendThatCameBack) {
  expectSmoothRamp("performance");
}

TEST(LbPerformance, SlowStartNotAtFirstStartButAfterAPassiveTakeOut) {
  expectNoRampAtFirstStartAndOneAfterAPassiveTakeOut("performance");
}

}  // namespace
}  // namespace speedmimi::upstream
