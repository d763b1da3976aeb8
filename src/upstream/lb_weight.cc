// "weight": nginx's smooth weighted round robin over the configured weights. Over any window of
// sum(weights) picks with a constant set of candidates, each gets exactly its weight's share;
// weights 5, 1, 1 give a a b a c a a. A backend that is not a candidate is skipped and its
// current weight left as it is. During a backend's slow start its weight is the ramped one.
#include <vector>

#include "upstream/lb_internal.h"

namespace speedmimi::upstream {
namespace {

class WeightBalancer final : public Balancer {
 public:
  void reset(std::span<Backend* const> backends) override {
    backends_.assign(backends.begin(), backends.end());
    smooth_.reset(backends_.size());
  }

  Backend* pick(const PickContext& ctx) override {
    const ptrdiff_t best = smooth_.pick([&](size_t i) -> int64_t {
      const Backend& b = *backends_[i];
      return isCandidate(b, ctx) ? weightOf(b, ctx.now_ms) : 0;
    });
    return best < 0 ? nullptr : backends_[best];
  }

 private:
  std::vector<Backend*> backends_;
  SmoothWeighted smooth_;
};

}  // namespace

std::unique_ptr<Balancer> makeWeightBalancer(Random& /*random*/) {
  return std::make_unique<WeightBalancer>();
}

}  // namespace speedmimi::upstream
