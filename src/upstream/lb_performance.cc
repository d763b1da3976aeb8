// "performance_least_connections_weight" (alias "performance"): least connections weighted,
// scaled by the utilization each backend reports through POST /api/v1/report.
//
// Every candidate gets an effective weight
//
//     effective = weight / ((active + 1) * (1 + 4 * u^2))
//
// where `weight` is the configured weight (ramped during a slow start), `active` the requests in
// flight to the backend across all workers, and `u` in [0, 1] its utilization from the last report:
//
//     u = min(1, max(cpu, memory) / 100 + min(load_avg_1, 10) / 100)
//
// with cpu and memory in percent. The busier of CPU and memory dominates; the one-minute load
// average only nudges (each 1.0 of load adds one point, ten at most) because its meaning depends
// on the backend's CPU count, which the report does not carry. A report older than 30 seconds
// (kReportTtlMs), or none at all, counts as u = 0.
//
// Picks follow nginx's smooth weighted round robin over the effective weights, so each backend's
// share is proportional to its effective weight and the sequence is deterministic (no randomness
// involved). The quadratic penalty leaves lightly used backends almost alone and pushes hard
// when they are nearly full: at equal weight and connections a backend at 50% gets half the picks
// of an idle one, one at 95% CPU (penalty 4.61) under a quarter, a saturated one a fifth. A share,
// unlike an arg-min, keeps a little traffic on a loaded backend, so it is not starved while its
// next report comes in, and does not stampede the idle one.
#include <cmath>
#include <vector>

#include "upstream/lb_internal.h"

namespace speedmimi::upstream {
namespace {

constexpr int64_t kReportTtlMs = 30'000;
constexpr double kPenaltySlope = 4.0;       // penalty = 1 + kPenaltySlope * u^2
constexpr uint32_t kMaxLoadPoints = 1'000;  // load_avg_1 x 100 counts up to 10.0
// Effective weights are fixed point with this scale, so that the integer smooth weighted round
// robin resolves small differences: weight 1 at u = 1 and active 0 is still 1/5 * 2^20.
constexpr double kFixedPointScale = 1 << 20;

// u x 10000 from the last report; 0 without a fresh one. Report fields are percent x 100.
uint32_t utilizationOf(const BackendState& state, int64_t now_ms) {
  const int64_t reported_ms = state.report_time_ms.load(std::memory_order_relaxed);
  if (reported_ms == 0 || reported_ms < now_ms - kReportTtlMs) return 0;
  const uint32_t cpu = state.report_cpu.load(std::memory_order_relaxed);
  const uint32_t memory = state.report_memory.load(std::memory_order_relaxed);
  const uint32_t load = state.report_load.load(std::memory_order_relaxed);
  const uint64_t u = static_cast<uint64_t>(std::max(cpu, memory)) + std::min(load, kMaxLoadPoints);
  return static_cast<uint32_t>(std::min<uint64_t>(u, 10'000));
}

int64_t effectiveWeight(const Backend& b, int64_t now_ms) {
  const double u = utilizationOf(b.state(), now_ms) / 10'000.0;
  const double penalty = 1.0 + kPenaltySlope * u * u;
  const double divisor = static_cast<double>(activeOf(b) + 1) * penalty;
  const double effective = static_cast<double>(weightOf(b, now_ms)) * kFixedPointScale / divisor;
  return std::max<int64_t>(1, std::llround(effective));
}

class PerformanceBalancer final : public Balancer {
 public:
  void reset(std::span<Backend* const> backends) override {
    backends_.assign(backends.begin(), backends.end());
    smooth_.reset(backends_.size());
  }

  Backend* pick(const PickContext& ctx) override {
    const ptrdiff_t best = smooth_.pick([&](size_t i) -> int64_t {
      const Backend& b = *backends_[i];
      return isCandidate(b, ctx) ? effectiveWeight(b, ctx.now_ms) : 0;
    });
    return best < 0 ? nullptr : backends_[best];
  }

 private:
  std::vector<Backend*> backends_;
  SmoothWeighted smooth_;
};

}  // namespace

std::unique_ptr<Balancer> makePerformanceBalancer(Random& /*random*/) {
  return std::make_unique<PerformanceBalancer>();
}

}  // namespace speedmimi::upstream
