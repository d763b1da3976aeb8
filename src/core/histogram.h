// Latency histograms in the shared zone (DESIGN §3): fixed log-linear buckets from 0.1 ms to
// 60 s, one per worker (written with relaxed atomics by that worker only) and summed by whoever
// reads them. The same bucket bounds serve the stats API's percentiles and Prometheus's
// `_bucket{le=...}` series.
#pragma once

#include <array>
#include <atomic>
#include <cstddef>
#include <cstdint>

namespace speedmimi::core {

// Upper bounds of the buckets, in microseconds (1-2.5-5 steps per decade); a last bucket above
// 60 s catches the rest (+Inf).
inline constexpr std::array<uint64_t, 18> kLatencyBoundsUs = {
    100,     250,     500,      1'000,    2'500,    5'000,     10'000,    25'000,    50'000,
    100'000, 250'000, 500'000, 1'000'000, 2'500'000, 5'000'000, 10'000'000, 30'000'000, 60'000'000};
inline constexpr size_t kLatencyBuckets = kLatencyBoundsUs.size() + 1;

// The bucket a sample falls in: the first whose bound is >= the sample (Prometheus's `le`).
inline size_t latencyBucket(uint64_t us) {
  size_t i = 0;
  while (i < kLatencyBoundsUs.size() && us > kLatencyBoundsUs[i]) ++i;
  return i;
}

// Written by one process, read by any (values only grow, so a reader may see a sample in a
// bucket before it is in the sum: harmless for statistics).
struct LatencyHistogram {
  std::atomic<uint64_t> buckets[kLatencyBuckets]{};
  std::atomic<uint64_t> sum_us{0};

  void record(uint64_t us) {
    buckets[latencyBucket(us)].fetch_add(1, std::memory_order_relaxed);
    sum_us.fetch_add(us, std::memory_order_relaxed);
  }
  // Moves every sample into `to` and leaves this one empty (a worker that exited, into the
  // retired totals). Nobody may record into this one meanwhile.
  void moveInto(LatencyHistogram& to) {
    for (size_t i = 0; i < kLatencyBuckets; ++i) {
      to.buckets[i].fetch_add(buckets[i].exchange(0, std::memory_order_relaxed),
                              std::memory_order_relaxed);
    }
    to.sum_us.fetch_add(sum_us.exchange(0, std::memory_order_relaxed), std::memory_order_relaxed);
  }
  void clear() {
    for (auto& b : buckets) b.store(0, std::memory_order_relaxed);
    sum_us.store(0, std::memory_order_relaxed);
  }
};

// A histogram summed over slots, in a process's own memory.
struct LatencyTotals {
  uint64_t buckets[kLatencyBuckets] = {};
  uint64_t sum_us = 0;

  void add(const LatencyHistogram& h) {
    for (size_t i = 0; i < kLatencyBuckets; ++i) buckets[i] += h.buckets[i].load(std::memory_order_relaxed);
    sum_us += h.sum_us.load(std::memory_order_relaxed);
  }
  uint64_t count() const {
    uint64_t n = 0;
    for (uint64_t b : buckets) n += b;
    return n;
  }
  // The q-quantile (0 < q <= 1) in microseconds, interpolated linearly inside its bucket (the
  // lower bound of the first bucket is 0; a quantile in the last, open bucket is its lower
  // bound, 60 s). 0 when there is no sample.
  double quantileUs(double q) const {
    uint64_t total = count();
    if (total == 0) return 0;
    double rank = q * static_cast<double>(total);
    uint64_t below = 0;
    for (size_t i = 0; i < kLatencyBuckets; ++i) {
      if (buckets[i] == 0) continue;
      if (static_cast<double>(below + buckets[i]) >= rank) {
        double lower = i == 0 ? 0.0 : static_cast<double>(kLatencyBoundsUs[i - 1]);
        if (i == kLatencyBoundsUs.size()) return lower;
        double upper = static_cast<double>(kLatencyBoundsUs[i]);
        double within = (rank - static_cast<double>(below)) / static_cast<double>(buckets[i]);
        return lower + (upper - lower) * within;
      }
      below += buckets[i];
    }
    return static_cast<double>(kLatencyBoundsUs.back());
  }
};

}  // namespace speedmimi::core
