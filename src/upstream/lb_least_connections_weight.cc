// "least_connections_weight": the candidate with the smallest active / weight (in-flight
// requests across all workers over the configured weight, ramped during a slow start). Ratios
// are compared by cross multiplication in 128 bits, so no precision is lost and nothing
// overflows. Ties are broken by smooth weighted round robin among the tied backends only.
#include <vector>

#include "upstream/lb_internal.h"

namespace speedmimi::upstream {
namespace {

// Is a_active / a_weight < b_active / b_weight? Weights are positive.
bool ratioLess(int64_t a_active, int64_t a_weight, int64_t b_active, int64_t b_weight) {
  return static_cast<__int128>(a_active) * b_weight < static_cast<__int128>(b_active) * a_weight;
}

bool ratioEqual(int64_t a_active, int64_t a_weight, int64_t b_active, int64_t b_weight) {
  return static_cast<__int128>(a_active) * b_weight == static_cast<__int128>(b_active) * a_weight;
}

class LeastConnectionsWeightBalancer final : public Balancer {
 public:
  void reset(std::span<Backend* const> backends) override {
    backends_.assign(backends.begin(), backends.end());
    active_.assign(backends_.size(), kNotCandidate);
    weight_.assign(backends_.size(), 1);
    smooth_.reset(backends_.size());
  }

  Backend* pick(const PickContext& ctx) override {
    const ptrdiff_t least = snapshotLeast(ctx);
    if (least < 0) return nullptr;
    const int64_t least_active = active_[least];
    const int64_t least_weight = weight_[least];
    const ptrdiff_t best = smooth_.pick([&](size_t i) -> int64_t {
      if (active_[i] == kNotCandidate) return 0;
      return ratioEqual(active_[i], weight_[i], least_active, least_weight) ? weight_[i] : 0;
    });
    return best < 0 ? nullptr : backends_[best];  // `least` ties with itself, so best >= 0
  }

 private:
  static constexpr int64_t kNotCandidate = -1;

  // Records every backend's active count (kNotCandidate for non-candidates) and weight so that
  // both passes see the same numbers while other processes change the shared state. Returns the
  // position of one backend with the least ratio, or -1 when there is no candidate.
  ptrdiff_t snapshotLeast(const PickContext& ctx) {
    ptrdiff_t least = -1;
    for (size_t i = 0; i < backends_.size(); ++i) {
      const Backend& b = *backends_[i];
      active_[i] = isCandidate(b, ctx) ? activeOf(b) : kNotCandidate;
      if (active_[i] == kNotCandidate) continue;
      weight_[i] = weightOf(b, ctx.now_ms);
      if (least < 0 || ratioLess(active_[i], weight_[i], active_[least], weight_[least])) {
        least = static_cast<ptrdiff_t>(i);
      }
    }
    return least;
  }

  std::vector<Backend*> backends_;
  // Per-pick scratch, sized by reset() so pick() never allocates.
  std::vector<int64_t> active_;
  std::vector<int64_t> weight_;
  SmoothWeighted smooth_;
};

}  // namespace

std::unique_ptr<Balancer> makeLeastConnectionsWeightBalancer(Random& /*random*/) {
  return std::make_unique<LeastConnectionsWeightBalancer>();
}

}  // namespace speedmimi::upstream
