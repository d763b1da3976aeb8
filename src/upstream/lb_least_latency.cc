// "least_latency": power of two random choices. Two distinct candidates are drawn by weighted
// random; the one with the smaller cost = latency EWMA (us) x (in-flight + 1) wins, the first
// drawn on a tie. A backend without a latency measurement yet (EWMA 0) costs 0, so new backends
// are tried and get measured. With a single candidate, it is the pick.
#include <vector>

#include "upstream/lb_internal.h"

namespace speedmimi::upstream {
namespace {

unsigned __int128 costOf(const Backend& b) {
  const uint64_t latency_us = b.state().latency_ewma_us.load(std::memory_order_relaxed);
  return static_cast<unsigned __int128>(latency_us) * static_cast<uint64_t>(activeOf(b) + 1);
}

class LeastLatencyBalancer final : public Balancer {
 public:
  explicit LeastLatencyBalancer(Random& random) : random_(random) {}

  void reset(std::span<Backend* const> backends) override {
    backends_.assign(backends.begin(), backends.end());
  }

  Backend* pick(const PickContext& ctx) override {
    Backend* first = pickWeightedRandom(backends_, ctx, random_, nullptr);
    if (first == nullptr) return nullptr;
    Backend* second = pickWeightedRandom(backends_, ctx, random_, first);
    if (second == nullptr) return first;
    return costOf(*second) < costOf(*first) ? second : first;
  }

 private:
  Random& random_;
  std::vector<Backend*> backends_;
};

}  // namespace

std::unique_ptr<Balancer> makeLeastLatencyBalancer(Random& random) {
  return std::make_unique<LeastLatencyBalancer>(random);
}

}  // namespace speedmimi::upstream
