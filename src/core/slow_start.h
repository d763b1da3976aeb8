// Slow start (backends.<upstream>[i].slow_start, as NGINX Plus's `slow_start=` and HAProxy's
// `slowstart`): a backend that comes back takes a growing share of the traffic instead of its
// full share at once, so that a cold cache or a JIT warming up is not flooded. Over `slow_start`
// after it came back, every weighted balancer uses
//
//     w_eff = max(1, ceil(weight * elapsed / slow_start))    for 0 <= elapsed < slow_start
//
// and the configured weight after. It came back when BackendState::ramp_start_ms was stored
// (health up again, re-activated, added at run time or by a reload) or when its passive take-out
// ended (passive_down_until_ms passed), whichever is later. The backends of the server's first
// start have neither and take their full weight at once.
//
// One definition for the balancers (upstream/lb_internal.h) and the API's effective_weight.
#pragma once

#include <algorithm>
#include <atomic>
#include <cstdint>

#include "core/config_types.h"
#include "core/zone_types.h"

namespace speedmimi::core {

// When the backend's current ramp began, core::monotonicMs(); 0 for none. A passive take-out
// still running at `now_ms` is no start yet (the backend is out meanwhile).
inline int64_t rampOrigin(const BackendState& state, int64_t now_ms) {
  const int64_t marked = state.ramp_start_ms.load(std::memory_order_relaxed);
  const int64_t passive_end = state.passive_down_until_ms.load(std::memory_order_relaxed);
  return passive_end <= now_ms ? std::max(marked, passive_end) : marked;
}

// `weight` (at least 1) ramped from `origin_ms` (0: no ramp) over `slow_start`, at `now_ms`.
// An origin at or after `now_ms` (another process's coarse clock may be a tick ahead) gives 1.
// No overflow: weight <= 10000 and slow_start < 2^32 s.
inline int64_t rampedWeight(int64_t weight, Duration slow_start, int64_t origin_ms,
                            int64_t now_ms) {
  const int64_t span = slow_start.count();
  if (span <= 0 || origin_ms == 0) return weight;
  const int64_t elapsed = now_ms - origin_ms;
  if (elapsed >= span) return weight;
  if (elapsed <= 0) return 1;
  return std::max<int64_t>(1, (weight * elapsed + span - 1) / span);
}

// The weight the balancers give a backend of configured `weight` and `slow_start` at `now_ms`.
// Without slow start, the weight as it is, before any load of the shared state.
inline int64_t slowStartWeight(int64_t weight, Duration slow_start, const BackendState& state,
                               int64_t now_ms) {
  if (slow_start.count() <= 0) return weight;
  return rampedWeight(weight, slow_start, rampOrigin(state, now_ms), now_ms);
}

}  // namespace speedmimi::core
