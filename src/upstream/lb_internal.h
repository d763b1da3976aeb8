// Private to the balancer implementations (lb_*.cc, balancer_factory.cc): the creator of each
// algorithm, which the factory table maps names to, and the few helpers that several algorithms
// share. Nothing outside src/upstream/lb_*.cc and balancer_factory.cc includes this.
#pragma once

#include <algorithm>
#include <atomic>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>
#include <vector>

#include "core/slow_start.h"
#include "upstream/balancer.h"

namespace speedmimi::upstream {

// One creator per lb_*.cc. `random` must outlive the balancer.
std::unique_ptr<Balancer> makeWeightBalancer(Random& random);
std::unique_ptr<Balancer> makeRoundRobinBalancer(Random& random);
std::unique_ptr<Balancer> makeLeastConnectionsBalancer(Random& random);
std::unique_ptr<Balancer> makeLeastConnectionsWeightBalancer(Random& random);
std::unique_ptr<Balancer> makeIpHashBalancer(Random& random);
std::unique_ptr<Balancer> makePerformanceBalancer(Random& random);
std::unique_ptr<Balancer> makeRandomBalancer(Random& random);
std::unique_ptr<Balancer> makeLeastLatencyBalancer(Random& random);

// The configured weight, never below 1: the config validates 1..10000, and a zero must not make
// a backend unpickable (or divide by zero) in the weighted algorithms.
inline int64_t configuredWeightOf(const Backend& b) {
  return std::max(1, b.weight());
}

// The weight every weighted algorithm uses for `b` at `now_ms` (PickContext::now_ms): the
// configured one, ramped up while b's slow start runs (core/slow_start.h). At least 1.
inline int64_t weightOf(const Backend& b, int64_t now_ms) {
  return core::slowStartWeight(configuredWeightOf(b), b.config().slow_start, b.state(), now_ms);
}

// In-flight requests across all workers, never negative: the counter is incremented and
// decremented by racing workers and may be read in between.
inline int64_t activeOf(const Backend& b) {
  return std::max<int64_t>(0, b.state().active_connections.load(std::memory_order_relaxed));
}

// nginx's smooth weighted round robin over a backend list whose positions are fixed between
// resets: every participant adds its effective weight to its current weight, the largest current
// wins (the first on ties) and gives back the total. Over any window of sum(weights) picks with
// constant weights each participant wins exactly its weight's share, spread out.
class SmoothWeighted {
 public:
  void reset(size_t count) { current_.assign(count, 0); }

  // `weight_of(i)` is the effective weight of position i for this pick, or 0 when i does not
  // take part (its current weight is then left as it is). Returns the winning position, or -1
  // when nobody takes part. Positions are 0 .. count-1 of the last reset().
  template <typename WeightOf>
  ptrdiff_t pick(WeightOf weight_of) {
    int64_t total = 0;
    ptrdiff_t best = -1;
    for (size_t i = 0; i < current_.size(); ++i) {
      const int64_t w = weight_of(i);
      if (w <= 0) continue;
      current_[i] += w;
      total += w;
      if (best < 0 || current_[i] > current_[best]) best = static_cast<ptrdiff_t>(i);
    }
    if (best >= 0) current_[best] -= total;
    return best;
  }

 private:
  std::vector<int64_t> current_;
};

// A weighted random candidate of `backends` other than `skip` (which may be nullptr), using one
// value of `random`; nullptr when there is none. No allocation. Defined in lb_random.cc.
Backend* pickWeightedRandom(std::span<Backend* const> backends, const PickContext& ctx,
                            Random& random, const Backend* skip);

}  // namespace speedmimi::upstream
