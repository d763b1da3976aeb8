// The retry budget of one upstream on one worker (routing.*.retry_budget, Envoy's retry budget):
// retries in flight stay within a share of the requests in flight, so that a failing backend
// cannot multiply the load on the others. Worker-local plain counters: the request path takes no
// shared atomic for it, and the budget is per worker (as Envoy keeps its circuit state per
// thread).
#pragma once

#include <algorithm>
#include <cstdint>

namespace speedmimi::upstream {

class RetryBudget {
 public:
  // Retries allowed in flight whatever the share (Envoy's min_retry_concurrency), so that a
  // lightly loaded proxy still retries.
  static constexpr int64_t kMinRetries = 3;

  // An attempt at a backend of the upstream starts or ends; `retry`: it is a retry, an attempt
  // after another backend failed. Every attempt in flight is a request in flight.
  void attemptStarted(bool retry) {
    ++requests_;
    retries_ += retry;
  }
  void attemptEnded(bool retry) {
    --requests_;
    retries_ -= retry;
  }

  // Whether an attempt in flight (itself a retry when `current_is_retry`) may be replaced by a
  // retry under `percent` (0..100): the retries in flight would then, that one included, stay
  // within max(kMinRetries, percent% of the requests in flight, rounded down).
  bool allowsRetry(int percent, bool current_is_retry) const {
    // The current attempt ends and the retry starts: the requests in flight stay as they are.
    const int64_t retries = retries_ - (current_is_retry ? 1 : 0) + 1;
    return retries <= std::max(kMinRetries, requests_ * percent / 100);
  }

  int64_t requests() const { return requests_; }
  int64_t retries() const { return retries_; }

 private:
  int64_t requests_ = 0;
  int64_t retries_ = 0;
};

}  // namespace speedmimi::upstream
