// Latency histograms (DESIGN §3): the log-linear buckets, Prometheus's `le` semantics at every
// bound, quantiles interpolated inside a bucket (exact on known inputs), and moving the samples
// of an exited worker into the retired totals.
#include "core/histogram.h"

#include <gtest/gtest.h>

#include <cstdint>

namespace speedmimi::core {
namespace {

// A sample equal to a bound is in that bound's bucket (le = "less than or equal"), one more
// microsecond is in the next: 100 us is bucket 0, 101 us bucket 1, ..., 60 s the last bounded
// bucket, and anything above it +Inf.
TEST(LatencyBucket, EveryBoundIsInclusive) {
  EXPECT_EQ(latencyBucket(0), 0u);
  EXPECT_EQ(latencyBucket(100), 0u);
  EXPECT_EQ(latencyBucket(101), 1u);
  for (size_t i = 0; i < kLatencyBoundsUs.size(); ++i) {
    SCOPED_TRACE(kLatencyBoundsUs[i]);
    EXPECT_EQ(latencyBucket(kLatencyBoundsUs[i]), i);
    EXPECT_EQ(latencyBucket(kLatencyBoundsUs[i] + 1), i + 1);
    if (i > 0) {
      EXPECT_EQ(latencyBucket(kLatencyBoundsUs[i - 1] + 1), i);
    }
  }
  EXPECT_EQ(latencyBucket(60'000'000), kLatencyBuckets - 2) << "60 s: the last bounded bucket";
  EXPECT_EQ(latencyBucket(60'000'001), kLatencyBuckets - 1) << "+Inf";
  EXPECT_EQ(latencyBucket(UINT64_MAX), kLatencyBuckets - 1);
}

TEST(LatencyBucket, BoundsGrowFrom100UsTo60S) {
  EXPECT_EQ(kLatencyBoundsUs.front(), 100u);
  EXPECT_EQ(kLatencyBoundsUs.back(), 60'000'000u);
  for (size_t i = 1; i < kLatencyBoundsUs.size(); ++i) {
    EXPECT_LT(kLatencyBoundsUs[i - 1], kLatencyBoundsUs[i]);
  }
  EXPECT_EQ(kLatencyBuckets, kLatencyBoundsUs.size() + 1);
}

TEST(LatencyHistogram, RecordCountsTheBucketAndTheSum) {
  LatencyHistogram h;
  h.record(100);
  h.record(101);
  h.record(60'000'000);
  h.record(60'000'001);
  EXPECT_EQ(h.buckets[0].load(), 1u);
  EXPECT_EQ(h.buckets[1].load(), 1u);
  EXPECT_EQ(h.buckets[kLatencyBuckets - 2].load(), 1u);
  EXPECT_EQ(h.buckets[kLatencyBuckets - 1].load(), 1u);
  EXPECT_EQ(h.sum_us.load(), 120'000'202u);
  LatencyTotals t;
  t.add(h);
  t.add(h);
  EXPECT_EQ(t.count(), 8u);
  EXPECT_EQ(t.sum_us, 240'000'404u);
  EXPECT_EQ(t.buckets[1], 2u);
}

LatencyTotals totalsOf(std::initializer_list<uint64_t> samples) {
  LatencyHistogram h;
  for (uint64_t us : samples) h.record(us);
  LatencyTotals t;
  t.add(h);
  return t;
}

// rank = q x count; the quantile lies in the first bucket whose cumulative count reaches the
// rank, at (rank - below) / in_bucket of the way from its lower to its upper bound.
TEST(LatencyQuantile, InterpolatedInsideTheBucket) {
  // Two samples in (100, 250] and two in (250, 500].
  LatencyTotals t = totalsOf({150, 200, 300, 400});
  EXPECT_DOUBLE_EQ(t.quantileUs(0.25), 175.0);  // rank 1 of 2 in (100, 250]
  EXPECT_DOUBLE_EQ(t.quantileUs(0.5), 250.0);   // rank 2: the top of (100, 250]
  EXPECT_DOUBLE_EQ(t.quantileUs(0.75), 375.0);  // rank 3: half way through (250, 500]
  EXPECT_DOUBLE_EQ(t.quantileUs(1.0), 500.0);
}

TEST(LatencyQuantile, TheFirstBucketStartsAtZero) {
  LatencyHistogram h;
  for (int i = 0; i < 100; ++i) h.record(50);
  LatencyTotals t;
  t.add(h);
  EXPECT_DOUBLE_EQ(t.quantileUs(0.5), 50.0);  // 0 + 100 x 50/100
  EXPECT_DOUBLE_EQ(t.quantileUs(0.99), 99.0);
  EXPECT_DOUBLE_EQ(t.quantileUs(0.999), 99.9);
}

TEST(LatencyQuantile, P50P90P99P999OverOneThousandSamples) {
  // 900 in (1 ms, 2.5 ms], 90 in (10 ms, 25 ms], 9 in (100 ms, 250 ms], 1 above 60 s.
  LatencyHistogram h;
  for (int i = 0; i < 900; ++i) h.record(2'000);
  for (int i = 0; i < 90; ++i) h.record(20'000);
  for (int i = 0; i < 9; ++i) h.record(200'000);
  h.record(100'000'000);
  LatencyTotals t;
  t.add(h);
  EXPECT_DOUBLE_EQ(t.quantileUs(0.5), 1'000 + 1'500 * (500.0 / 900));
  EXPECT_DOUBLE_EQ(t.quantileUs(0.9), 2'500.0);
  EXPECT_DOUBLE_EQ(t.quantileUs(0.99), 25'000.0);
  EXPECT_DOUBLE_EQ(t.quantileUs(0.999), 250'000.0);
  EXPECT_DOUBLE_EQ(t.quantileUs(1.0), 60'000'000.0) << "the open bucket gives its lower bound";
}

TEST(LatencyQuantile, NoSampleIsZero) {
  LatencyTotals t;
  EXPECT_EQ(t.count(), 0u);
  EXPECT_DOUBLE_EQ(t.quantileUs(0.5), 0.0);
  EXPECT_DOUBLE_EQ(t.quantileUs(0.99), 0.0);
}

// An exited worker's histogram moves whole into the retired one and is left empty.
TEST(LatencyHistogram, MoveIntoAddsEverythingAndLeavesItEmpty) {
  LatencyHistogram worker, retired;
  retired.record(300);
  worker.record(300);
  worker.record(7'000);
  worker.moveInto(retired);
  EXPECT_EQ(retired.buckets[latencyBucket(300)].load(), 2u);
  EXPECT_EQ(retired.buckets[latencyBucket(7'000)].load(), 1u);
  EXPECT_EQ(retired.sum_us.load(), 7'600u);
  LatencyTotals left;
  left.add(worker);
  EXPECT_EQ(left.count(), 0u);
  EXPECT_EQ(left.sum_us, 0u);
  retired.clear();
  LatencyTotals cleared;
  cleared.add(retired);
  EXPECT_EQ(cleared.count(), 0u);
  EXPECT_EQ(cleared.sum_us, 0u);
}

}  // namespace
}  // namespace speedmimi::core
