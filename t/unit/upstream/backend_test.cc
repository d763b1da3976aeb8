// Backend: resolution, availability and passive health windows (DESIGN §6).
#include "upstream/backend.h"

#include <arpa/inet.h>
#include <gtest/gtest.h>

#include <chrono>
#include <functional>
#include <limits>

namespace speedmimi::upstream {
namespace {

core::BackendConfig configWith(const std::function<void(core::BackendConfig&)>& tweak = {}) {
  core::BackendConfig config;
  config.id = "b1";
  config.host = "127.0.0.1";
  config.port = 8081;
  if (tweak) tweak(config);
  return config;
}

TEST(BackendResolve, NumericIpv4) {
  BackendState state;
  Backend b(configWith(), &state);
  ASSERT_TRUE(b.resolve());
  EXPECT_EQ(b.addressText(), "127.0.0.1:8081");
  ASSERT_EQ(b.addressLength(), sizeof(sockaddr_in));
  const auto* v4 = reinterpret_cast<const sockaddr_in*>(b.address());
  EXPECT_EQ(v4->sin_family, AF_INET);
  EXPECT_EQ(ntohs(v4->sin_port), 8081);
  EXPECT_EQ(ntohl(v4->sin_addr.s_addr), INADDR_LOOPBACK);
}

TEST(BackendResolve, NumericIpv6) {
  BackendState state;
  Backend b(configWith([](core::BackendConfig& c) {
              c.host = "::1";
              c.port = 9000;
            }),
            &state);
  ASSERT_TRUE(b.resolve());
  EXPECT_EQ(b.addressText(), "[::1]:9000");
  ASSERT_EQ(b.addressLength(), sizeof(sockaddr_in6));
  const auto* v6 = reinterpret_cast<const sockaddr_in6*>(b.address());
  EXPECT_EQ(v6->sin6_family, AF_INET6);
  EXPECT_EQ(ntohs(v6->sin6_port), 9000);
  EXPECT_TRUE(IN6_IS_ADDR_LOOPBACK(&v6->sin6_addr));
}

TEST(BackendResolve, NameLookupGivesLoopback) {
  BackendState state;
  Backend b(configWith([](core::BackendConfig& c) { c.host = "localhost"; }), &state);
  ASSERT_TRUE(b.resolve());
  EXPECT_TRUE(b.addressText() == "127.0.0.1:8081" || b.addressText() == "[::1]:8081")
      << b.addressText();
  EXPECT_GT(b.addressLength(), 0u);
}

TEST(BackendResolve, RejectsEmptyHostAndBadPort) {
  const std::function<void(core::BackendConfig&)> cases[] = {
      [](core::BackendConfig& c) { c.host = ""; },
      [](core::BackendConfig& c) { c.port = 0; },
      [](core::BackendConfig& c) { c.port = 65536; },
  };
  for (const auto& tweak : cases) {
    BackendState state;
    Backend b(configWith(tweak), &state);
    EXPECT_FALSE(b.resolve());
    EXPECT_EQ(b.addressLength(), 0u);
    EXPECT_EQ(b.addressText(), "");
  }
}

TEST(BackendAvailable, Table) {
  constexpr int64_t kNow = 50'000;
  struct Case {
    const char* what;
    std::function<void(core::BackendConfig&)> config;
    std::function<void(BackendState&)> state;
    bool available;
  };
  const Case cases[] = {
      {"fresh, health unknown", {}, {}, true},
      {"health up", {}, [](BackendState& s) { s.health = static_cast<int>(Health::kUp); }, true},
      {"health down",
       {},
       [](BackendState& s) { s.health = static_cast<int>(Health::kDown); },
       false},
      {"inactive", [](core::BackendConfig& c) { c.active = false; }, {}, false},
      {"passive down until later",
       {},
       [](BackendState& s) { s.passive_down_until_ms = kNow + 1; },
       false},
      {"passive down just ended",
       {},
       [](BackendState& s) { s.passive_down_until_ms = kNow; },
       true},
      {"below max_conn", [](core::BackendConfig& c) { c.max_conn = 3; },
       [](BackendState& s) { s.active_connections = 2; }, true},
      {"at max_conn", [](core::BackendConfig& c) { c.max_conn = 3; },
       [](BackendState& s) { s.active_connections = 3; }, false},
      {"over max_conn", [](core::BackendConfig& c) { c.max_conn = 3; },
       [](BackendState& s) { s.active_connections = 4; }, false},
      {"max_conn 0 is unlimited",
       {},
       [](BackendState& s) { s.active_connections = 1'000'000; },
       true},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.what);
    BackendState state;
    if (c.state) c.state(state);
    Backend b(configWith(c.config), &state);
    EXPECT_EQ(b.available(kNow), c.available);
  }
}

Backend passiveBackend(BackendState* state, int max_fails, int64_t fail_timeout_ms) {
  return Backend(configWith([&](core::BackendConfig& c) {
                   c.max_fails = max_fails;
                   c.fail_timeout = core::Duration(fail_timeout_ms);
                 }),
                 state);
}

TEST(BackendPassive, OneFailureTakesItOutForFailTimeout) {
  BackendState state;
  Backend b = passiveBackend(&state, 1, 10'000);
  b.recordFailure(1'000);
  EXPECT_FALSE(b.available(1'000));
  EXPECT_FALSE(b.available(10'999));
  EXPECT_TRUE(b.available(11'000));
  EXPECT_EQ(b.workerCounters().failures.load(), 1u);
}

TEST(BackendPassive, ThreeFailuresWithinTheWindow) {
  BackendState state;
  Backend b = passiveBackend(&state, 3, 10'000);
  b.recordFailure(1'000);
  b.recordFailure(2'000);
  EXPECT_TRUE(b.available(2'000));
  b.recordFailure(10'999);  // still inside the window opened at 1'000
  EXPECT_FALSE(b.available(10'999));
  EXPECT_FALSE(b.available(20'998));
  EXPECT_TRUE(b.available(20'999));
}

TEST(BackendPassive, WindowExpiresFromTheFirstFailure) {
  BackendState state;
  Backend b = passiveBackend(&state, 3, 10'000);
  b.recordFailure(1'000);
  b.recordFailure(6'000);
  b.recordFailure(11'000);  // the window of 1'000 is over: this opens a new one
  EXPECT_TRUE(b.available(11'000));
  b.recordFailure(12'000);
  EXPECT_TRUE(b.available(12'000));
  b.recordFailure(13'000);  // third in the window opened at 11'000
  EXPECT_FALSE(b.available(13'000));
  EXPECT_TRUE(b.available(23'000));
}

TEST(BackendPassive, SuccessResetsTheCount) {
  BackendState state;
  Backend b = passiveBackend(&state, 3, 10'000);
  b.recordFailure(1'000);
  b.recordFailure(2'000);
  b.recordSuccess();
  b.recordFailure(3'000);
  b.recordFailure(4'000);
  EXPECT_TRUE(b.available(4'000));
  b.recordFailure(5'000);
  EXPECT_FALSE(b.available(5'000));
}

TEST(BackendPassive, CountRestartsAfterTakingItOut) {
  BackendState state;
  Backend b = passiveBackend(&state, 2, 1'000);
  b.recordFailure(100);
  b.recordFailure(200);
  EXPECT_FALSE(b.available(200));
  EXPECT_TRUE(b.available(1'200));
  b.recordFailure(1'300);  // first of a new count, not the third of the old one
  EXPECT_TRUE(b.available(1'300));
  b.recordFailure(1'400);
  EXPECT_FALSE(b.available(1'400));
}

TEST(BackendPassive, MaxFailsZeroDisablesPassiveChecks) {
  BackendState state;
  Backend b = passiveBackend(&state, 0, 10'000);
  for (int i = 0; i < 10; ++i) b.recordFailure(1'000 + i);
  EXPECT_TRUE(b.available(1'010));
  EXPECT_EQ(b.workerCounters().failures.load(), 10u);
}

}  // namespace
}  // namespace speedmimi::upstream

namespace speedmimi::upstream {
namespace {

TEST(BackendSoloTest, TheOnlyBackendOfAnUpstreamIsNotTakenOutByPassiveFailures) {
  core::BackendConfig config;
  config.id = "only";
  config.max_fails = 1;
  config.fail_timeout = std::chrono::milliseconds(10'000);
  BackendState state;
  Backend b(config, &state);
  b.recordFailure(1000);
  EXPECT_FALSE(b.available(1001));  // one of several: out for fail_timeout
  b.setSolo(true);
  EXPECT_TRUE(b.available(1001));   // alone: a 503 would only lengthen the outage
  state.health.store(static_cast<int>(Health::kDown));
  EXPECT_FALSE(b.available(1001));  // an active check still takes it out
}

}  // namespace
}  // namespace speedmimi::upstream

namespace speedmimi::upstream {
namespace {

using std::chrono::microseconds;

// Latency EWMA (least_latency): "never measured" is not a latency of 0. A backend behind a
// fast network answers in well under a millisecond, and a measured 0 must stay a measurement.
TEST(BackendLatency, NotMeasuredUntilTheFirstSample) {
  BackendState state;
  Backend b(configWith(), &state);
  EXPECT_FALSE(b.latency().has_value());
  b.recordLatency(microseconds(0));
  ASSERT_TRUE(b.latency().has_value());
  EXPECT_EQ(b.latency()->count(), 0);
}

TEST(BackendLatency, FirstSampleAsIsThenFourFifthsOld) {
  BackendState state;
  Backend b(configWith(), &state);
  b.recordLatency(microseconds(1'000));
  EXPECT_EQ(b.latency()->count(), 1'000);
  b.recordLatency(microseconds(6'000));  // (1'000 * 4 + 6'000) / 5
  EXPECT_EQ(b.latency()->count(), 2'000);
  b.recordLatency(microseconds(0));  // (2'000 * 4 + 0) / 5
  EXPECT_EQ(b.latency()->count(), 1'600);
}

// A sample of 0 after others is averaged in, not mistaken for "start again".
TEST(BackendLatency, ZeroSamplesConvergeToZero) {
  BackendState state;
  Backend b(configWith(), &state);
  b.recordLatency(microseconds(5));
  for (int i = 0; i < 20; ++i) b.recordLatency(microseconds(0));
  ASSERT_TRUE(b.latency().has_value());
  EXPECT_EQ(b.latency()->count(), 0);
  b.recordLatency(microseconds(10));  // (0 * 4 + 10) / 5: averaged, not taken as a first sample
  EXPECT_EQ(b.latency()->count(), 2);
}

// A response head is counted in this worker's entry: its status class and the time to it in
// the head-time histogram, besides the shared EWMA; informational and unknown classes too.
TEST(BackendResponseHead, CountsTheClassAndTheHeadTimeInTheWorkersEntry) {
  BackendState state;
  core::BackendWorkerCounters row;
  Backend b(configWith(), &state);
  b.setWorkerCounters(&row);
  b.recordResponseHead(200, microseconds(100));
  b.recordResponseHead(204, microseconds(101));
  b.recordResponseHead(503, microseconds(2'000));
  b.recordResponseHead(101, microseconds(-3));  // a stepped clock: 0
  const core::BackendCounters& c = row.counters;
  EXPECT_EQ(c.responses_by_class[1].load(), 1u);
  EXPECT_EQ(c.responses_by_class[2].load(), 2u);
  EXPECT_EQ(c.responses_by_class[5].load(), 1u);
  EXPECT_EQ(c.responses_by_class[0].load() + c.responses_by_class[3].load() +
                c.responses_by_class[4].load(),
            0u);
  EXPECT_EQ(c.head_time.buckets[0].load(), 2u);  // 0 and 100 us
  EXPECT_EQ(c.head_time.buckets[1].load(), 1u);  // 101 us
  EXPECT_EQ(c.head_time.buckets[4].load(), 1u);  // 2 ms: (1 ms, 2.5 ms]
  EXPECT_EQ(c.head_time.sum_us.load(), 2'201u);
  EXPECT_EQ(&b.workerCounters(), &row.counters);
  // The EWMA moved as recordLatency moves it: 100, then (100*4+101)/5, ...
  EXPECT_EQ(b.latency()->count(), ((((100 * 4 + 101) / 5) * 4 + 2'000) / 5) * 4 / 5);
}

// Negative samples (a clock that stepped) count as 0; absurd ones are capped so the EWMA
// arithmetic cannot overflow.
TEST(BackendLatency, SamplesAreClamped) {
  BackendState state;
  Backend b(configWith(), &state);
  b.recordLatency(microseconds(-5));
  EXPECT_EQ(b.latency()->count(), 0);
  b.recordLatency(microseconds(std::numeric_limits<int64_t>::max()));
  b.recordLatency(microseconds(std::numeric_limits<int64_t>::max()));
  EXPECT_GT(b.latency()->count(), 0);
  EXPECT_LE(b.latency()->count(), Backend::kMaxLatencySample.count());
}

}  // namespace
}  // namespace speedmimi::upstream
