// The factory table, DefaultRandom and isCandidate.
#include <gtest/gtest.h>

#include <set>

#include "balancer_test_util.h"
#include "upstream/balancer.h"

namespace speedmimi::upstream {
namespace {

using testing::contextAt;
using testing::kNowMs;
using testing::SplitMixRandom;
using testing::TestPool;

constexpr const char* kNames[] = {
    "weight",      "round_robin", "least_connections", "least_connections_weight",
    "ip_hash",     "random",      "least_latency",     "performance_least_connections_weight",
    "performance",
};

TEST(BalancerFactory, KnowsEveryDesignName) {
  SplitMixRandom random(1);
  for (const char* name : kNames) {
    SCOPED_TRACE(name);
    EXPECT_TRUE(isKnownBalancer(name));
    EXPECT_NE(makeBalancer(name, random), nullptr);
  }
}

TEST(BalancerFactory, RejectsUnknownNames) {
  SplitMixRandom random(1);
  for (const char* name : {"", "Weight", "least_conn", "roundrobin", "weight ", "hash"}) {
    SCOPED_TRACE(name);
    EXPECT_FALSE(isKnownBalancer(name));
    EXPECT_EQ(makeBalancer(name, random), nullptr);
  }
}

// The alias behaves as the full name: same picks on the same inputs.
TEST(BalancerFactory, PerformanceIsAnAlias) {
  TestPool pool;
  pool.add("a", 3);
  pool.add("b", 2);
  pool.setActive("a", 2);
  pool["b"].state().report_cpu = 6000;
  pool["b"].state().report_time_ms = kNowMs;
  SplitMixRandom random(1);
  auto full = testing::makeReset("performance_least_connections_weight", random, pool.pointers());
  auto alias = testing::makeReset("performance", random, pool.pointers());
  const std::string sequence = testing::pickSequence(*full, contextAt(), 40);
  EXPECT_EQ(testing::pickSequence(*alias, contextAt(), 40), sequence);
  EXPECT_NE(sequence.find('a'), std::string::npos);
  EXPECT_NE(sequence.find('b'), std::string::npos);
}

TEST(DefaultRandom, SeededSequenceIsReproducibleAndVaried) {
  DefaultRandom a(42);
  DefaultRandom b(42);
  std::set<uint64_t> seen;
  for (int i = 0; i < 1000; ++i) {
    const uint64_t x = a.next();
    EXPECT_EQ(x, b.next());
    seen.insert(x);
  }
  EXPECT_EQ(seen.size(), 1000u);
}

TEST(DefaultRandom, ZeroSeedStillProduces) {
  DefaultRandom r(0);
  EXPECT_NE(r.next(), 0u);
  EXPECT_NE(r.next(), r.next());
}

TEST(DefaultRandom, BitsAreBalanced) {
  DefaultRandom r;
  int ones[64] = {};
  constexpr int kDraws = 20'000;
  for (int i = 0; i < kDraws; ++i) {
    const uint64_t x = r.next();
    for (int bit = 0; bit < 64; ++bit) ones[bit] += (x >> bit) & 1;
  }
  for (int bit = 0; bit < 64; ++bit) {
    EXPECT_NEAR(ones[bit], kDraws / 2, kDraws / 20) << "bit " << bit;
  }
}

TEST(IsCandidate, AvailableAndNotExcluded) {
  TestPool pool;
  Backend& a = pool.add("a");
  Backend& b = pool.add("b");
  PickContext ctx = contextAt();
  EXPECT_TRUE(isCandidate(a, ctx));
  const Backend* excluded[] = {&b};
  ctx.exclude = excluded;
  EXPECT_TRUE(isCandidate(a, ctx));
  EXPECT_FALSE(isCandidate(b, ctx));
  a.state().passive_down_until_ms = kNowMs + 5;
  EXPECT_FALSE(isCandidate(a, ctx));
  EXPECT_TRUE(isCandidate(a, contextAt(kNowMs + 5)));
}

}  // namespace
}  // namespace speedmimi::upstream
