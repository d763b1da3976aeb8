// The monotonic clock every timestamp of a process is taken from, in milliseconds. It is
// CLOCK_MONOTONIC_COARSE: a vDSO read with no syscall, ticking every 1-4 ms, which is enough for
// timeouts, windows and rate limits (not for latencies: see ProxyContext::preciseNowUs).
#pragma once

#include <time.h>

#include <cstdint>

namespace speedmimi::core {

inline int64_t monotonicMs() {
  timespec ts;
  clock_gettime(CLOCK_MONOTONIC_COARSE, &ts);
  return static_cast<int64_t>(ts.tv_sec) * 1000 + ts.tv_nsec / 1'000'000;
}

}  // namespace speedmimi::core
