// "round_robin": plain rotation over the candidates, weights ignored. The next pick starts
// after the last backend picked, so a skipped backend does not shift the rotation of the others.
#include <vector>

#include "upstream/lb_internal.h"

namespace speedmimi::upstream {
namespace {

class RoundRobinBalancer final : public Balancer {
 public:
  void reset(std::span<Backend* const> backends) override {
    backends_.assign(backends.begin(), backends.end());
    next_ = 0;
  }

  Backend* pick(const PickContext& ctx) override {
    const size_t n = backends_.size();
    for (size_t k = 0; k < n; ++k) {
      const size_t i = (next_ + k) % n;
      if (!isCandidate(*backends_[i], ctx)) continue;
      next_ = (i + 1) % n;
      return backends_[i];
    }
    return nullptr;
  }

 private:
  std::vector<Backend*> backends_;
  size_t next_ = 0;  // where the next scan starts
};

}  // namespace

std::unique_ptr<Balancer> makeRoundRobinBalancer(Random& /*random*/) {
  return std::make_unique<RoundRobinBalancer>();
}

}  // namespace speedmimi::upstream
