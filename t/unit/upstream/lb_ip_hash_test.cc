// "ip_hash": consistent, weighted hashing of the client IP (ketama ring).
#include <gtest/gtest.h>

#include <algorithm>
#include <set>

#include "balancer_test_util.h"

namespace speedmimi::upstream {
namespace {

using namespace testing;

constexpr int kClients = 10'000;
constexpr int kManyClients = 100'000;

std::vector<core::IpAddress> clients(uint64_t seed, int count = kClients) {
  SplitMixRandom draws(seed);
  std::vector<core::IpAddress> out;
  for (int i = 0; i < count; ++i) out.push_back(ipv4(static_cast<uint32_t>(draws.next())));
  return out;
}

// The backend id for every client ("" for none).
std::vector<std::string> mapping(Balancer& balancer, const std::vector<core::IpAddress>& ips,
                                 PickContext ctx = contextAt()) {
  std::vector<std::string> out;
  for (const core::IpAddress& ip : ips) {
    ctx.client_ip = ip;
    const Backend* b = balancer.pick(ctx);
    out.push_back(b ? b->id() : "");
  }
  return out;
}

std::map<std::string, int> shares(const std::vector<std::string>& ids) {
  std::map<std::string, int> counts;
  for (const std::string& id : ids) ++counts[id];
  return counts;
}

void addAll(TestPool& pool, std::initializer_list<const char*> ids, int weight = 1) {
  for (const char* id : ids) pool.add(id, weight);
}

TEST(LbIpHash, SameClientSameBackendRegardlessOfOrder) {
  TestPool pool;
  addAll(pool, {"alpha", "beta", "gamma", "delta"});
  SplitMixRandom random(1);
  auto balancer = makeReset("ip_hash", random, pool.pointers());
  const auto ips = clients(1, 1'000);
  const auto first = mapping(*balancer, ips);
  EXPECT_EQ(mapping(*balancer, ips), first);
  std::vector<Backend*> reversed = pool.pointers();
  std::reverse(reversed.begin(), reversed.end());
  auto other = makeReset("ip_hash", random, reversed);
  EXPECT_EQ(mapping(*other, ips), first);
  EXPECT_EQ(shares(first).size(), 4u);
}

TEST(LbIpHash, FourEqualBackendsShareTheClients) {
  TestPool pool;
  addAll(pool, {"b1", "b2", "b3", "b4"});
  SplitMixRandom random(1);
  auto balancer = makeReset("ip_hash", random, pool.pointers());
  const auto counts = shares(mapping(*balancer, clients(2)));
  ASSERT_EQ(counts.size(), 4u);
  for (const auto& [id, count] : counts) {
    EXPECT_GE(count, kClients * 20 / 100) << id;
    EXPECT_LE(count, kClients * 30 / 100) << id;
  }
}

TEST(LbIpHash, Ipv6ClientsAreSpreadToo) {
  TestPool pool;
  addAll(pool, {"b1", "b2", "b3", "b4"});
  SplitMixRandom random(1);
  auto balancer = makeReset("ip_hash", random, pool.pointers());
  SplitMixRandom draws(4);
  std::vector<core::IpAddress> ips;
  for (int i = 0; i < kClients; ++i) {
    core::IpAddress ip;
    ip.bytes[0] = 0x20;  // 2001:db8::/64 with random interface ids
    ip.bytes[1] = 0x01;
    ip.bytes[2] = 0x0d;
    ip.bytes[3] = 0xb8;
    const uint64_t iid = draws.next();
    for (int k = 0; k < 8; ++k) ip.bytes[8 + k] = static_cast<uint8_t>(iid >> (8 * k));
    ips.push_back(ip);
  }
  for (const auto& [id, count] : shares(mapping(*balancer, ips))) {
    EXPECT_GE(count, kClients * 20 / 100) << id;
    EXPECT_LE(count, kClients * 30 / 100) << id;
  }
}

TEST(LbIpHash, WeightsSetTheShares) {
  TestPool pool;
  pool.add("heavy", 3);
  pool.add("light", 1);
  SplitMixRandom random(1);
  auto balancer = makeReset("ip_hash", random, pool.pointers());
  const auto counts = shares(mapping(*balancer, clients(3)));
  EXPECT_NEAR(counts.at("heavy"), kClients * 3 / 4, kClients * 5 / 100);
  EXPECT_NEAR(counts.at("light"), kClients / 4, kClients * 5 / 100);
}

TEST(LbIpHash, RemovingOneMovesOnlyItsClients) {
  TestPool pool;
  addAll(pool, {"b1", "b2", "b3", "b4", "b5"});
  SplitMixRandom random(1);
  const auto ips = clients(5);
  auto balancer = makeReset("ip_hash", random, pool.pointers());
  const auto before = mapping(*balancer, ips);
  for (const char* removed : {"b1", "b3", "b5"}) {
    SCOPED_TRACE(removed);
    balancer->reset(pool.pointers({removed}));
    const auto after = mapping(*balancer, ips);
    int moved = 0;
    for (size_t i = 0; i < ips.size(); ++i) {
      EXPECT_NE(after[i], removed);
      if (before[i] != removed) {
        EXPECT_EQ(after[i], before[i]);
      } else {
        ++moved;
      }
    }
    EXPECT_GT(moved, 0);
  }
}

TEST(LbIpHash, AddingOneMovesAtMostItsShare) {
  for (int n = 3; n <= 6; ++n) {
    SCOPED_TRACE(n);
    TestPool pool;
    for (int i = 0; i <= n; ++i) pool.add("node-" + std::to_string(i));
    const std::string added = "node-" + std::to_string(n);
    SplitMixRandom random(1);
    const auto ips = clients(6);
    auto balancer = makeReset("ip_hash", random, pool.pointers({added}));
    const auto before = mapping(*balancer, ips);
    balancer->reset(pool.pointers());
    const auto after = mapping(*balancer, ips);
    int moved = 0;
    for (size_t i = 0; i < ips.size(); ++i) {
      if (after[i] == before[i]) continue;
      ++moved;
      EXPECT_EQ(after[i], added);  // keys only ever move to the new backend
    }
    EXPECT_GT(moved, 0);
    EXPECT_LE(moved * 100.0 / kClients, 100.0 / (n + 1) + 2.0);
  }
}

// A down backend's clients go, deterministically, where they would go if it were removed;
// everyone else stays; and its clients are spread over several others.
TEST(LbIpHash, FallbackWhenDownIsDeterministicAndSpread) {
  TestPool pool;
  addAll(pool, {"b1", "b2", "b3", "b4", "b5"});
  SplitMixRandom random(1);
  const auto ips = clients(7);
  auto balancer = makeReset("ip_hash", random, pool.pointers());
  const auto before = mapping(*balancer, ips);
  auto without = makeReset("ip_hash", random, pool.pointers({"b2"}));
  const auto removed = mapping(*without, ips);

  pool["b2"].state().health = static_cast<int>(Health::kDown);
  const auto down = mapping(*balancer, ips);
  EXPECT_EQ(mapping(*balancer, ips), down);
  EXPECT_EQ(down, removed);
  std::set<std::string> fallbacks;
  for (size_t i = 0; i < ips.size(); ++i) {
    if (before[i] == "b2") fallbacks.insert(down[i]);
  }
  EXPECT_GE(fallbacks.size(), 3u);
  EXPECT_EQ(fallbacks.count("b2"), 0u);

  pool["b2"].state().health = static_cast<int>(Health::kUp);
  EXPECT_EQ(mapping(*balancer, ips), before);  // back where they were
}

// A retry excludes the backend tried first and lands on the next one of the ring.
TEST(LbIpHash, RetryGoesToTheNextBackendOfTheRing) {
  TestPool pool;
  addAll(pool, {"b1", "b2", "b3"});
  SplitMixRandom random(1);
  auto balancer = makeReset("ip_hash", random, pool.pointers());
  for (const core::IpAddress& ip : clients(8, 200)) {
    PickContext ctx = contextAt();
    ctx.client_ip = ip;
    const Backend* first = balancer->pick(ctx);
    ASSERT_NE(first, nullptr);
    const Backend* tried[] = {first};
    ctx.exclude = tried;
    const Backend* second = balancer->pick(ctx);
    ASSERT_NE(second, nullptr);
    EXPECT_NE(second, first);
    auto without = makeReset("ip_hash", random, pool.pointers({first->id()}));
    EXPECT_EQ(without->pick(contextAt()) != nullptr, true);
    PickContext plain = contextAt();
    plain.client_ip = ip;
    EXPECT_EQ(without->pick(plain), second);
  }
}

// Unequal weights: the points of a backend depend on its own weight only, so removing one moves
// exactly its clients, whatever the gcd of the remaining weights (2,3,4 without 3 leaves 2,4; the
// ring used to rescale every backend then). A down backend's clients go where removing it would
// send them.
TEST(LbIpHash, UnequalWeightsRemovingOneMovesOnlyItsClients) {
  const std::vector<std::vector<int>> weight_sets = {{2, 3, 4}, {100, 100, 150}};
  const auto ips = clients(9, kManyClients);
  for (const std::vector<int>& weights : weight_sets) {
    TestPool pool;
    for (size_t i = 0; i < weights.size(); ++i) pool.add("w" + std::to_string(i), weights[i]);
    SplitMixRandom random(1);
    auto balancer = makeReset("ip_hash", random, pool.pointers());
    const auto before = mapping(*balancer, ips);
    for (size_t r = 0; r < weights.size(); ++r) {
      const std::string removed = "w" + std::to_string(r);
      SCOPED_TRACE(::testing::Message() << "weight " << weights[r] << " of " << removed);
      auto without = makeReset("ip_hash", random, pool.pointers({removed}));
      const auto after = mapping(*without, ips);
      int moved_others = 0;
      int moved_own = 0;
      for (size_t i = 0; i < ips.size(); ++i) {
        if (before[i] == removed) {
          ++moved_own;
          EXPECT_NE(after[i], removed);
        } else if (after[i] != before[i]) {
          ++moved_others;
        }
      }
      EXPECT_EQ(moved_others, 0);
      EXPECT_GT(moved_own, 0);

      pool[removed].state().health = static_cast<int>(Health::kDown);
      EXPECT_EQ(mapping(*balancer, ips), after);
      pool[removed].state().health = static_cast<int>(Health::kUp);
    }
  }
}

// Shares follow unequal weights: each backend gets its weight's share of the clients within 3
// points of percentage (the ring's own unevenness; sampling adds about 0.15 with 100,000 IPs).
TEST(LbIpHash, UnequalWeightsSetTheShares) {
  const std::vector<std::vector<int>> weight_sets = {{2, 3, 4}, {100, 100, 150}, {1, 5, 10, 20}};
  const auto ips = clients(10, kManyClients);
  for (const std::vector<int>& weights : weight_sets) {
    TestPool pool;
    for (size_t i = 0; i < weights.size(); ++i) pool.add("w" + std::to_string(i), weights[i]);
    SplitMixRandom random(1);
    auto balancer = makeReset("ip_hash", random, pool.pointers());
    const auto counts = shares(mapping(*balancer, ips));
    double total = 0;
    for (const int w : weights) total += w;
    for (size_t i = 0; i < weights.size(); ++i) {
      const std::string id = "w" + std::to_string(i);
      SCOPED_TRACE(::testing::Message() << id << " weight " << weights[i]);
      const double percent = counts.count(id) ? counts.at(id) * 100.0 / kManyClients : 0.0;
      EXPECT_NEAR(percent, weights[i] * 100.0 / total, 3.0);
    }
  }
}

// A backend's points are capped by a function of its own weight, which bounds the ring of 100
// backends at the maximum weight (10000); they still share the clients evenly.
TEST(LbIpHash, ManyHeavyBackendsShareTheClients) {
  TestPool pool;
  for (int i = 0; i < 100; ++i) pool.add("heavy-" + std::to_string(i), 10'000);
  SplitMixRandom random(1);
  auto balancer = makeReset("ip_hash", random, pool.pointers());
  const auto counts = shares(mapping(*balancer, clients(11, kManyClients)));
  ASSERT_EQ(counts.size(), 100u);
  for (const auto& [id, count] : counts) {
    EXPECT_GE(count, kManyClients / 100 * 80 / 100) << id;
    EXPECT_LE(count, kManyClients / 100 * 120 / 100) << id;
  }
}

TEST(LbIpHash, SkipsUnavailable) {
  expectSkipsUnavailable("ip_hash");
}
TEST(LbIpHash, NullWhenNoneAvailable) {
  expectNullWhenNoneAvailable("ip_hash");
}

// Slow start without touching the ring: a ramping backend keeps w_eff / weight of its clients
// (10% at +1 s of 10 s, 50% at +5 s), the same ones on every pick and a growing set; the clients
// it turns away go where they went while it was out (the mapping without it); nobody else moves;
// after the ramp the mapping is the full one again.
TEST(LbIpHash, SlowStartKeepsAGrowingShareOfItsClientsAndMovesNobodyElse) {
  TestPool pool;
  pool.add("b1", 100);
  pool.add("b2", 100);
  cameBackAt(pool.add("b3", 100, slowStart()), kNowMs);
  pool.add("b4", 100);
  SplitMixRandom random(1);
  const auto ips = clients(21);
  auto balancer = makeReset("ip_hash", random, pool.pointers());
  const auto full = mapping(*balancer, ips, contextAt(kNowMs + kSlowStartMs));
  auto without = makeReset("ip_hash", random, pool.pointers({"b3"}));
  const auto out = mapping(*without, ips);
  const int owned = shares(full)["b3"];
  ASSERT_GT(owned, kClients / 5);

  std::vector<std::string> previous(ips.size());
  for (const auto& [at_ms, percent] : {std::pair{1'000, 10}, std::pair{5'000, 50}}) {
    SCOPED_TRACE("+" + std::to_string(at_ms) + " ms");
    const auto ramping = mapping(*balancer, ips, contextAt(kNowMs + at_ms));
    EXPECT_EQ(mapping(*balancer, ips, contextAt(kNowMs + at_ms)), ramping) << "deterministic";
    int kept = 0;
    for (size_t i = 0; i < ips.size(); ++i) {
      if (ramping[i] == "b3") {
        ++kept;
        EXPECT_EQ(full[i], "b3") << "only its own clients";
      } else {
        EXPECT_EQ(ramping[i], full[i] == "b3" ? out[i] : full[i]) << "client " << i;
        EXPECT_NE(previous[i], "b3") << "client " << i << " admitted earlier, turned away now";
      }
    }
    EXPECT_NEAR(kept * 100.0 / owned, percent, 3.0) << kept << " of " << owned;
    previous = ramping;
  }
  EXPECT_EQ(mapping(*balancer, ips, contextAt(kNowMs + kSlowStartMs + 1)), full);

  TestPool first_start;
  for (const char* id : {"b1", "b2", "b3", "b4"}) first_start.add(id, 100, slowStart());
  auto unramped = makeReset("ip_hash", random, first_start.pointers());
  EXPECT_EQ(mapping(*unramped, ips, contextAt(kNowMs + 1'000)), full) << "no ramp at first start";
}

// When every candidate is ramping and turns a client away, the ring's choice takes it: a
// backend alone is always picked.
TEST(LbIpHash, SlowStartNeverLeavesAClientWithoutABackend) {
  TestPool pool;
  cameBackAt(pool.add("only", 100, slowStart()), kNowMs);
  SplitMixRandom random(1);
  auto balancer = makeReset("ip_hash", random, pool.pointers());
  EXPECT_EQ(shares(mapping(*balancer, clients(3, 1'000), contextAt(kNowMs + 1)))["only"], 1'000);
}

}  // namespace
}  // namespace speedmimi::upstream
