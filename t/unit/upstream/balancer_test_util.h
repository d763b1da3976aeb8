// Helpers for the balancer tests: a pool of backends with their own state, deterministic
// randomness, client addresses, and pick counting. Clock and randomness are injected through
// PickContext::now_ms and the Random passed to makeBalancer.
#pragma once

#include <gtest/gtest.h>

#include <algorithm>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "upstream/balancer.h"

namespace speedmimi::upstream::testing {

constexpr int64_t kNowMs = 1'000'000;  // the injected clock of most tests

// splitmix64: deterministic, well distributed, seeded per test.
class SplitMixRandom final : public Random {
 public:
  explicit SplitMixRandom(uint64_t seed) : state_(seed) {}
  uint64_t next() override {
    uint64_t z = (state_ += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
  }

 private:
  uint64_t state_;
};

// Returns the given values in order, cyclically, to script exact sequences.
class ScriptedRandom final : public Random {
 public:
  explicit ScriptedRandom(std::vector<uint64_t> values) : values_(std::move(values)) {}
  uint64_t next() override { return values_[next_++ % values_.size()]; }

 private:
  std::vector<uint64_t> values_;
  size_t next_ = 0;
};

// Backends with their own state (BackendState is not movable, hence the unique_ptrs).
class TestPool {
 public:
  using Tweak = std::function<void(core::BackendConfig&)>;

  Backend& add(const std::string& id, int weight = 1, const Tweak& tweak = {}) {
    core::BackendConfig config;
    config.id = id;
    config.name = id;
    config.host = "127.0.0.1";
    config.port = 8000 + static_cast<int>(backends_.size());
    config.weight = weight;
    if (tweak) tweak(config);
    states_.push_back(std::make_unique<BackendState>());
    backends_.push_back(std::make_unique<Backend>(config, states_.back().get()));
    return *backends_.back();
  }

  Backend& operator[](std::string_view id) {
    for (auto& b : backends_) {
      if (b->id() == id) return *b;
    }
    ADD_FAILURE() << "no backend " << id;
    return *backends_.front();
  }

  // Every backend, or all but those named in `without`, in insertion order.
  std::vector<Backend*> pointers(const std::vector<std::string>& without = {}) const {
    std::vector<Backend*> out;
    for (const auto& b : backends_) {
      if (std::find(without.begin(), without.end(), b->id()) == without.end()) {
        out.push_back(b.get());
      }
    }
    return out;
  }

  void setActive(std::string_view id, int64_t active) {
    (*this)[id].state().active_connections.store(active);
  }

 private:
  std::vector<std::unique_ptr<BackendState>> states_;
  std::vector<std::unique_ptr<Backend>> backends_;
};

inline core::IpAddress ipv4(uint32_t address) {
  core::IpAddress ip;
  ip.bytes[10] = 0xff;
  ip.bytes[11] = 0xff;
  ip.bytes[12] = static_cast<uint8_t>(address >> 24);
  ip.bytes[13] = static_cast<uint8_t>(address >> 16);
  ip.bytes[14] = static_cast<uint8_t>(address >> 8);
  ip.bytes[15] = static_cast<uint8_t>(address);
  return ip;
}

inline PickContext contextAt(int64_t now_ms = kNowMs) {
  PickContext ctx;
  ctx.now_ms = now_ms;
  return ctx;
}

inline std::unique_ptr<Balancer> makeReset(std::string_view name, Random& random,
                                           const std::vector<Backend*>& backends) {
  std::unique_ptr<Balancer> balancer = makeBalancer(name, random);
  if (balancer == nullptr) {
    ADD_FAILURE() << "unknown balancer " << name;
    return nullptr;
  }
  balancer->reset(backends);
  return balancer;
}

// The ids of `count` picks concatenated ("-" for none): "aabacaa". For one-letter ids.
inline std::string pickSequence(Balancer& balancer, const PickContext& ctx, int count) {
  std::string out;
  for (int i = 0; i < count; ++i) {
    const Backend* b = balancer.pick(ctx);
    out += b ? b->id() : "-";
  }
  return out;
}

// id -> number of picks among `count` ("" counts nullptr).
inline std::map<std::string, int> countPicks(Balancer& balancer, const PickContext& ctx,
                                             int count) {
  std::map<std::string, int> counts;
  for (int i = 0; i < count; ++i) {
    const Backend* b = balancer.pick(ctx);
    ++counts[b ? b->id() : ""];
  }
  return counts;
}

// Picks of `count` contexts each with a different client IP drawn from `seed`.
inline std::map<std::string, int> countPicksOverClients(Balancer& balancer, int count,
                                                        uint64_t seed) {
  SplitMixRandom addresses(seed);
  PickContext ctx = contextAt();
  std::map<std::string, int> counts;
  for (int i = 0; i < count; ++i) {
    ctx.client_ip = ipv4(static_cast<uint32_t>(addresses.next()));
    const Backend* b = balancer.pick(ctx);
    ++counts[b ? b->id() : ""];
  }
  return counts;
}

// The ways a backend stops being pickable, applied to the backend `b` of a fresh pool.
struct Unavailability {
  const char* what;
  TestPool::Tweak config;               // applied to b's config
  std::function<void(Backend&)> state;  // applied to b's state
  bool exclude = false;                 // b is in ctx.exclude
};

inline std::vector<Unavailability> unavailabilities() {
  return {
      {"inactive", [](core::BackendConfig& c) { c.active = false; }, {}},
      {"health down",
       {},
       [](Backend& b) { b.state().health.store(static_cast<int>(Health::kDown)); }},
      {"passive down", {}, [](Backend& b) { b.state().passive_down_until_ms.store(kNowMs + 1); }},
      {"at max_conn", [](core::BackendConfig& c) { c.max_conn = 2; },
       [](Backend& b) { b.state().active_connections.store(2); }},
      {"excluded", {}, {}, true},
  };
}

// For balancer `name`: a backend made unavailable in any of the ways above, or excluded, is
// never picked while the others are, and with all of them unavailable pick() returns nullptr.
inline void expectSkipsUnavailable(std::string_view name) {
  for (const Unavailability& u : unavailabilities()) {
    SCOPED_TRACE(u.what);
    TestPool pool;
    pool.add("a", 3);
    Backend& b = pool.add("b", 5, u.config);
    pool.add("c", 1);
    if (u.state) u.state(b);
    SplitMixRandom random(7);
    auto balancer = makeReset(name, random, pool.pointers());
    ASSERT_NE(balancer, nullptr);
    const Backend* excluded[] = {&b};
    PickContext ctx = contextAt();
    if (u.exclude) ctx.exclude = excluded;
    SplitMixRandom addresses(11);
    std::map<std::string, int> counts;
    for (int i = 0; i < 600; ++i) {
      ctx.client_ip = ipv4(static_cast<uint32_t>(addresses.next()));
      const Backend* picked = balancer->pick(ctx);
      ++counts[picked ? picked->id() : ""];
    }
    EXPECT_EQ(counts.count("b"), 0u);
    EXPECT_EQ(counts.count(""), 0u);
    EXPECT_GT(counts["a"], 0);
    EXPECT_GT(counts["c"], 0);
  }
}

// Slow start: `slowStart(ms)` tweaks a backend's config, `cameBackAt` marks the moment it came
// back (health up, re-activated or added), as the control process stores it.
constexpr int64_t kSlowStartMs = 10'000;
inline TestPool::Tweak slowStart(int64_t ms = kSlowStartMs) {
  return [ms](core::BackendConfig& c) { c.slow_start = core::Duration(ms); };
}
inline void cameBackAt(Backend& b, int64_t at_ms) {
  b.state().ramp_start_ms.store(at_ms);
}

// Two backends of weight 100, "a" and "b" with slow_start 10 s; "b" came back at kNowMs (with
// `came_back`), else it started with the server.
inline void addRampPair(TestPool& pool, bool came_back = true) {
  pool.add("a", 100);
  Backend& b = pool.add("b", 100, slowStart());
  if (came_back) cameBackAt(b, kNowMs);
}

// addRampPair's pool and balancer `name` over it (nullptr, with a failure, for an unknown name).
struct RampPair {
  explicit RampPair(std::string_view name, bool came_back = true) {
    addRampPair(pool, came_back);
    balancer = makeReset(name, random, pool.pointers());
  }
  TestPool pool;
  SplitMixRandom random{1};
  std::unique_ptr<Balancer> balancer;
};

// For a balancer whose picks follow smooth weighted round robin over the (ramped) weights when
// every backend is idle (weight, least_connections_weight, performance): with addRampPair, b's
// weight is 10 at +1 s (10 of 110 picks), 50 at +5 s (50 of 150), and 100 from +10 s on; the
// same balancer is used throughout, each window of sum(weights) picks being exact.
inline void expectSmoothRamp(std::string_view name) {
  RampPair ramp(name);
  ASSERT_NE(ramp.balancer, nullptr);
  const struct {
    int64_t at_ms;
    int picks;
    int want_b;
  } windows[] = {{1'000, 110, 10}, {5'000, 150, 50}, {10'000, 200, 100}, {60'000, 200, 100}};
  for (const auto& w : windows) {
    SCOPED_TRACE("+" + std::to_string(w.at_ms) + " ms");
    const auto counts = countPicks(*ramp.balancer, contextAt(kNowMs + w.at_ms), w.picks);
    EXPECT_EQ(counts.count("b") ? counts.at("b") : 0, w.want_b);
    EXPECT_EQ(counts.at("a"), w.picks - w.want_b);
  }
}

// The same balancer with b of the first start (no come-back): full shares at once; and with b
// back from a passive take-out that ended at kNowMs (no mark: the end of the window is the
// start): 10 of 110 at +1 s.
inline void expectNoRampAtFirstStartAndOneAfterAPassiveTakeOut(std::string_view name) {
  {
    SCOPED_TRACE("first start");
    RampPair ramp(name, /*came_back=*/false);
    ASSERT_NE(ramp.balancer, nullptr);
    EXPECT_EQ(countPicks(*ramp.balancer, contextAt(kNowMs + 1'000), 200).at("b"), 100);
  }
  {
    SCOPED_TRACE("passive take-out over");
    RampPair ramp(name, /*came_back=*/false);
    ASSERT_NE(ramp.balancer, nullptr);
    ramp.pool["b"].state().passive_down_until_ms.store(kNowMs);
    EXPECT_EQ(countPicks(*ramp.balancer, contextAt(kNowMs - 1), 50).count("b"), 0u) << "still out";
    EXPECT_EQ(countPicks(*ramp.balancer, contextAt(kNowMs + 1'000), 110).at("b"), 10);
  }
}

// For a balancer that draws by weight (random, least_latency): with addRampPair and `draws`
// whose first 200 picks draw 0..199 (in whatever order the algorithm consumes them), b gets
// the 10 that land on 100..109 modulo 110 at +1 s (weights 100 and 10), the 100 from 100 on
// after the ramp (weights 100 and 100), and as many at +1 s when b started with the server.
inline void expectDrawnRamp(std::string_view name, const std::vector<uint64_t>& draws) {
  const struct {
    const char* what;
    bool came_back;
    int64_t at_ms;
    int want_b;
  } cases[] = {{"ramping", true, 1'000, 10},
               {"after the ramp", true, kSlowStartMs, 100},
               {"first start", false, 1'000, 100}};
  for (const auto& c : cases) {
    SCOPED_TRACE(c.what);
    TestPool pool;
    addRampPair(pool, c.came_back);
    ScriptedRandom random(draws);
    auto balancer = makeReset(name, random, pool.pointers());
    ASSERT_NE(balancer, nullptr);
    auto counts = countPicks(*balancer, contextAt(kNowMs + c.at_ms), 200);
    EXPECT_EQ(counts["b"], c.want_b);
    EXPECT_EQ(counts["a"], 200 - c.want_b);
  }
}

// For a balancer that ignores weights (round_robin, least_connections): slow start does not
// apply, idle backends share the picks equally at once.
inline void expectNoSlowStart(std::string_view name) {
  RampPair ramp(name);
  ASSERT_NE(ramp.balancer, nullptr);
  const auto counts = countPicks(*ramp.balancer, contextAt(kNowMs + 1), 100);
  EXPECT_EQ(counts.at("a"), 50);
  EXPECT_EQ(counts.at("b"), 50);
}

inline void expectNullWhenNoneAvailable(std::string_view name) {
  TestPool pool;
  pool.add("a", 1, [](core::BackendConfig& c) { c.active = false; });
  pool.add("b").state().health.store(static_cast<int>(Health::kDown));
  Backend& c = pool.add("c");
  SplitMixRandom random(3);
  auto balancer = makeReset(name, random, pool.pointers());
  ASSERT_NE(balancer, nullptr);
  const Backend* excluded[] = {&c};
  PickContext ctx = contextAt();
  ctx.exclude = excluded;
  for (uint32_t i = 0; i < 50; ++i) {
    ctx.client_ip = ipv4(0x0A000000u + i * 7919u);
    EXPECT_EQ(balancer->pick(ctx), nullptr);
  }
  balancer->reset({});
  EXPECT_EQ(balancer->pick(contextAt()), nullptr);
}

}  // namespace speedmimi::upstream::testing
