// "random": weighted random (slow start ramps included), one value of the injected Random per
// pick.
#include <vector>

#include "upstream/lb_internal.h"

namespace speedmimi::upstream {

// Two passes without allocation: sum the candidates' weights, then walk to the drawn point.
// Another worker may change a backend's availability (or ramp) between the passes; the walk then
// skips it and falls back to the last candidate it saw, so a pick never fails while a candidate
// exists. The modulo bias of a 64-bit draw over a total below 2^40 is negligible.
Backend* pickWeightedRandom(std::span<Backend* const> backends, const PickContext& ctx,
                            Random& random, const Backend* skip) {
  uint64_t total = 0;
  for (const Backend* b : backends) {
    if (b != skip && isCandidate(*b, ctx)) total += static_cast<uint64_t>(weightOf(*b, ctx.now_ms));
  }
  if (total == 0) return nullptr;
  uint64_t point = random.next() % total;
  Backend* last = nullptr;
  for (Backend* b : backends) {
    if (b == skip || !isCandidate(*b, ctx)) continue;
    const auto weight = static_cast<uint64_t>(weightOf(*b, ctx.now_ms));
    if (point < weight) return b;
    point -= weight;
    last = b;
  }
  return last;
}

namespace {

class RandomBalancer final : public Balancer {
 public:
  explicit RandomBalancer(Random& random) : random_(random) {}

  void reset(std::span<Backend* const> backends) override {
    backends_.assign(backends.begin(), backends.end());
  }

  Backend* pick(const PickContext& ctx) override {
    return pickWeightedRandom(backends_, ctx, random_, nullptr);
  }

 private:
  Random& random_;
  std::vector<Backend*> backends_;
};

}  // namespace

std::unique_ptr<Balancer> makeRandomBalancer(Random& random) {
  return std::make_unique<RandomBalancer>(random);
}

}  // namespace speedmimi::upstream
