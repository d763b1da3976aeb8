// RetryBudget: retries in flight stay within max(kMinRetries, percent% of the requests in
// flight), counted as attempts start and end; a retry that replaces a retry does not count twice.
#include "upstream/retry_budget.h"

#include <gtest/gtest.h>

namespace speedmimi::upstream {
namespace {

// `requests` first attempts in flight, none of them a retry yet.
RetryBudget withRequests(int requests) {
  RetryBudget budget;
  for (int i = 0; i < requests; ++i) budget.attemptStarted(false);
  return budget;
}

// How many of `requests` first attempts failing one after another get a retry, each retry still
// in flight when the next one asks, each refused request leaving.
int retriesGranted(int requests, int percent) {
  RetryBudget budget = withRequests(requests);
  int granted = 0;
  for (int i = 0; i < requests; ++i) {
    if (budget.allowsRetry(percent, false)) {
      budget.attemptEnded(false);
      budget.attemptStarted(true);
      ++granted;
    } else {
      budget.attemptEnded(false);
    }
  }
  return granted;
}

TEST(RetryBudget, ALightlyLoadedUpstreamStillGetsTheMinimum) {
  EXPECT_EQ(retriesGranted(1, 20), 1);
  EXPECT_EQ(retriesGranted(3, 20), 3);
  EXPECT_EQ(retriesGranted(10, 20), 3);  // 20% of 10 is 2: the minimum of 3 applies
  EXPECT_EQ(retriesGranted(10, 0), 3);
}

TEST(RetryBudget, ABusyUpstreamGetsItsShare) {
  EXPECT_EQ(retriesGranted(20, 20), 4);
  EXPECT_EQ(retriesGranted(100, 20), 20);
  EXPECT_EQ(retriesGranted(100, 50), 50);
  EXPECT_EQ(retriesGranted(100, 100), 100);
  EXPECT_EQ(retriesGranted(24, 20), 4);  // 4.8, rounded down
}

TEST(RetryBudget, TheCountsFollowTheAttempts) {
  RetryBudget budget = withRequests(2);
  budget.attemptStarted(true);
  EXPECT_EQ(budget.requests(), 3);
  EXPECT_EQ(budget.retries(), 1);
  budget.attemptEnded(true);
  budget.attemptEnded(false);
  EXPECT_EQ(budget.requests(), 1);
  EXPECT_EQ(budget.retries(), 0);
}

// At the limit, a retry whose own retry fails may go on: it gives its place back as it takes a
// new one. A first attempt may not.
TEST(RetryBudget, ARetryThatFailsMayBeReplacedWithinTheLimit) {
  RetryBudget budget = withRequests(7);
  for (int i = 0; i < 3; ++i) budget.attemptStarted(true);
  EXPECT_EQ(budget.requests(), 10);
  EXPECT_FALSE(budget.allowsRetry(20, false));
  EXPECT_TRUE(budget.allowsRetry(20, true));
}

}  // namespace
}  // namespace speedmimi::upstream
