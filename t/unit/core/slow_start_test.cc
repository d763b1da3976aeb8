// Slow start: the ramped weight max(1, ceil(weight * elapsed / slow_start)) and where a ramp
// starts (the last come-back mark or the end of the last passive take-out).
#include "core/slow_start.h"

#include <gtest/gtest.h>

namespace speedmimi::core {
namespace {

constexpr int64_t kBack = 1'000'000;  // when the backend came back
constexpr Duration kTenSeconds{10'000};

TEST(RampedWeight, FollowsTheFormulaRoundedUpAndNeverBelowOne) {
  struct Case {
    int64_t weight;
    int64_t elapsed_ms;
    int64_t want;
  };
  const Case cases[] = {
      {100, 0, 1},        {100, 1, 1},        {100, 100, 1},     {100, 101, 2},
      {100, 1'000, 10},   {100, 5'000, 50},   {100, 9'901, 100}, {100, 9'999, 100},
      {100, 10'000, 100}, {100, 60'000, 100}, {3, 1'000, 1},     {3, 3'334, 2},
      {3, 6'667, 3},      {10'000, 1, 1},     {10'000, 2, 2},    {10'000, 9'999, 9'999},
      {1, 5'000, 1},      {7, 10'000, 7},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE("weight " + std::to_string(c.weight) + " at +" + std::to_string(c.elapsed_ms));
    EXPECT_EQ(rampedWeight(c.weight, kTenSeconds, kBack, kBack + c.elapsed_ms), c.want);
  }
}

TEST(RampedWeight, NoRampWithoutAnOriginOrWithoutSlowStart) {
  EXPECT_EQ(rampedWeight(100, kTenSeconds, 0, 5'000), 100) << "never came back";
  EXPECT_EQ(rampedWeight(100, Duration{0}, kBack, kBack + 1), 100) << "slow_start 0 is off";
}

TEST(RampedWeight, AnOriginAheadOfTheClockIsTheStartOfTheRamp) {
  // Another process's coarse clock may store a mark a tick ahead of this one's.
  EXPECT_EQ(rampedWeight(100, kTenSeconds, kBack, kBack - 3), 1);
}

TEST(RampOrigin, TheLaterOfTheMarkAndTheEndOfAPassiveTakeOut) {
  BackendState st;
  EXPECT_EQ(rampOrigin(st, kBack), 0) << "a backend of the first start";
  st.ramp_start_ms.store(kBack);
  EXPECT_EQ(rampOrigin(st, kBack + 50), kBack);
  st.passive_down_until_ms.store(kBack - 500);  // an older take-out
  EXPECT_EQ(rampOrigin(st, kBack + 50), kBack);
  st.passive_down_until_ms.store(kBack + 2'000);
  EXPECT_EQ(rampOrigin(st, kBack + 1'999), kBack) << "still out: no new ramp yet";
  EXPECT_EQ(rampOrigin(st, kBack + 2'000), kBack + 2'000) << "back at the window's end";
  EXPECT_EQ(rampOrigin(st, kBack + 9'000), kBack + 2'000);
}

TEST(SlowStartWeight, APassiveTakeOutRestartsTheRamp) {
  BackendState st;
  st.passive_down_until_ms.store(kBack);
  EXPECT_EQ(slowStartWeight(100, kTenSeconds, st, kBack + 1'000), 10);
  EXPECT_EQ(slowStartWeight(100, kTenSeconds, st, kBack + 10'000), 100);
  EXPECT_EQ(slowStartWeight(100, Duration{0}, st, kBack + 1'000), 100);
}

}  // namespace
}  // namespace speedmimi::core
