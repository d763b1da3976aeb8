// "least_latency": power of two random choices. Two distinct candidates are drawn by weighted
// random and the cheaper one wins, the first drawn on a tie. With a single candidate, it is the
// pick.
//
// A backend not measured yet (no response head since it joined) beats any measured one, so a
// new backend gets traffic and a latency; between two unmeasured ones the one with fewer
// requests in flight wins. Between measured ones the cost is
//
//     (latency EWMA in us + 1) x (in-flight + 1)
//
// The + 1 keeps a backend measured at 0 us (a real measurement of a very fast one, not
// "unknown") from costing 0 however many requests it already has in flight.
#include <vector>

#include "upstream/lb_internal.h"

namespace speedmimi::upstream {
namespace {

struct Cost {
  bool measured;
  unsigned __int128 value;
  bool operator<(const Cost& o) const {
    if (measured != o.measured) return !measured;
    return value < o.value;
  }
};

Cost costOf(const Backend& b) {
  const auto in_flight = static_cast<uint64_t>(activeOf(b) + 1);
  const auto latency = b.latency();
  if (!latency) return {false, in_flight};
  const auto latency_us = static_cast<uint64_t>(latency->count()) + 1;
  return {true, static_cast<unsigned __int128>(latency_us) * in_flight};
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
