// "least_connections": the candidate with the fewest in-flight requests across all workers
// (the shared counters). The scan starts after the last backend picked and keeps the first of
// equals, so ties rotate round robin instead of always landing on the first backend.
#include <vector>

#include "upstream/lb_internal.h"

namespace speedmimi::upstream {
namespace {

class LeastConnectionsBalancer final : public Balancer {
 public:
  void reset(std::span<Backend* const> backends) override {
    backends_.assign(backends.begin(), backends.end());
    next_ = 0;
  }

  Backend* pick(const PickContext& ctx) override {
    const size_t n = backends_.size();
    size_t best = n;
    int64_t best_active = 0;
    for (size_t k = 0; k < n; ++k) {
      const size_t i = (next_ + k) % n;
      const Backend& b = *backends_[i];
      if (!isCandidate(b, ctx)) continue;
      const int64_t active = activeOf(b);
      if (best == n || active < best_active) {
        best = i;
        best_active = active;
      }
    }
    if (best == n) return nullptr;
    next_ = (best + 1) % n;
    return backends_[best];
  }

 private:
  std::vector<Backend*> backends_;
  size_t next_ = 0;  // where the next scan starts: just after the last pick
};

}  // namespace

std::unique_ptr<Balancer> makeLeastConnectionsBalancer(Random& /*random*/) {
  return std::make_unique<LeastConnectionsBalancer>();
}

}  // namespace speedmimi::upstream
