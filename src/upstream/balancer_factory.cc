// The explicit name -> creator table of DESIGN §5 (no self-registration: static libraries drop
// unreferenced registrars), the default randomness and the candidate test every algorithm uses.
#include <unistd.h>

#include <algorithm>
#include <chrono>

#include "upstream/balancer.h"
#include "upstream/lb_internal.h"

namespace speedmimi::upstream {
namespace {

struct BalancerEntry {
  std::string_view name;
  std::unique_ptr<Balancer> (*make)(Random& random);
};

constexpr BalancerEntry kBalancers[] = {
    {"weight", makeWeightBalancer},
    {"round_robin", makeRoundRobinBalancer},
    {"least_connections", makeLeastConnectionsBalancer},
    {"least_connections_weight", makeLeastConnectionsWeightBalancer},
    {"ip_hash", makeIpHashBalancer},
    {"performance_least_connections_weight", makePerformanceBalancer},
    {"performance", makePerformanceBalancer},
    {"random", makeRandomBalancer},
    {"least_latency", makeLeastLatencyBalancer},
};

const BalancerEntry* findBalancer(std::string_view name) {
  for (const BalancerEntry& entry : kBalancers) {
    if (entry.name == name) return &entry;
  }
  return nullptr;
}

// splitmix64's output function: spreads a weak seed (clock ^ pid) over all 64 bits.
uint64_t mixSeed(uint64_t x) {
  x += 0x9E3779B97F4A7C15ull;
  x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ull;
  x = (x ^ (x >> 27)) * 0x94D049BB133111EBull;
  return x ^ (x >> 31);
}

}  // namespace

DefaultRandom::DefaultRandom() {
  const auto ticks = std::chrono::steady_clock::now().time_since_epoch().count();
  const uint64_t seed =
      mixSeed(static_cast<uint64_t>(ticks) ^ (static_cast<uint64_t>(getpid()) << 32));
  state_ = seed ? seed : 1;  // xorshift's state must never be zero
}

// xorshift64* (Vigna): shift triple (12, 25, 27) and its output multiplier.
uint64_t DefaultRandom::next() {
  state_ ^= state_ >> 12;
  state_ ^= state_ << 25;
  state_ ^= state_ >> 27;
  return state_ * 0x2545F4914F6CDD1Dull;
}

std::unique_ptr<Balancer> makeBalancer(std::string_view name, Random& random) {
  const BalancerEntry* entry = findBalancer(name);
  return entry ? entry->make(random) : nullptr;
}

bool isKnownBalancer(std::string_view name) {
  return findBalancer(name) != nullptr;
}

std::vector<std::string> balancerNames() {
  std::vector<std::string> names;
  for (const BalancerEntry& entry : kBalancers) names.emplace_back(entry.name);
  return names;
}

bool isCandidate(const Backend& b, const PickContext& ctx) {
  if (!b.available(ctx.now_ms)) return false;
  return std::find(ctx.exclude.begin(), ctx.exclude.end(), &b) == ctx.exclude.end();
}

}  // namespace speedmimi::upstream
