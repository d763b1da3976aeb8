// UpstreamSet: a worker's view of the zone's backends. A backend removed from the zone leaves the
// view at the next refresh() but stays allocated, retired, until collectRetired() finds nothing
// holding it: refresh() runs on the request path (a retry picking again), where the session may
// still read the backend it has just released, so it must never free one itself.
#include "upstream/upstream_set.h"

#include <gtest/gtest.h>

#include <memory>
#include <string>

#include "upstream/backend_table.h"

namespace speedmimi::upstream {
namespace {

core::BackendConfig backend(const std::string& id, int port, int weight = 1) {
  core::BackendConfig b;
  b.id = id;
  b.host = "127.0.0.1";
  b.port = port;
  b.weight = weight;
  return b;
}

class UpstreamSetTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string error;
    zone_ = core::Zone::create(4 << 20, 4, error);
    ASSERT_NE(zone_, nullptr) << error;
    config_.backends["app"] = {backend("a", 8081), backend("b", 8082)};
    core::RouteConfig route;
    route.name = "default";
    route.upstream = "app";
    config_.routes.push_back(route);
    ASSERT_TRUE(syncBackends(*zone_, config_, error)) << error;
    set_ = std::make_unique<UpstreamSet>(config_, *zone_, random_, pool_, -1);
  }

  Backend* find(const std::string& id) const {
    for (Backend* b : set_->backends()) {
      if (b->id() == id) return b;
    }
    return nullptr;
  }

  void removeFromZone(const std::string& id) { ASSERT_TRUE(zone_->removeBackend("app", id).ok()); }

  // Any other change that moves the zone's generation, so the next refresh() rebuilds.
  void reweightB(int weight) {
    std::string error;
    core::Config next = config_;
    next.backends["app"] = {backend("b", 8082, weight)};
    ASSERT_TRUE(syncBackends(*zone_, next, error)) << error;
  }

  std::unique_ptr<core::Zone> zone_;
  core::Config config_;
  DefaultRandom random_{42};
  ConnectionPool pool_{nullptr, std::chrono::milliseconds(1000)};
  std::unique_ptr<UpstreamSet> set_;
};

TEST_F(UpstreamSetTest, ABackendStillInUseIsRetiredNotFreed) {
  Backend* a = find("a");
  ASSERT_NE(a, nullptr);
  a->acquire();
  removeFromZone("a");
  set_->refresh();
  EXPECT_EQ(find("a"), nullptr) << "a removed backend stays in the view";
  ASSERT_EQ(set_->retiredCount(), 1u);
  EXPECT_EQ(a->inFlight(), 1);
  EXPECT_EQ(a->id(), "a");

  set_->collectRetired();  // still held: kept
  ASSERT_EQ(set_->retiredCount(), 1u);
  a->release();
  set_->collectRetired();
  EXPECT_EQ(set_->retiredCount(), 0u);
}

// The use-after-free of a retry: the session releases the backend, picks again (refresh() runs),
// and then writes its access-log line with the released backend. Nothing but collectRetired()
// may free it, even when refresh() rebuilds the view.
TEST_F(UpstreamSetTest, AReleasedBackendIsFreedOnlyByCollectRetired) {
  Backend* a = find("a");
  ASSERT_NE(a, nullptr);
  a->acquire();
  removeFromZone("a");
  set_->refresh();
  ASSERT_EQ(set_->retiredCount(), 1u);

  a->release();
  reweightB(5);
  set_->refresh();  // rebuilds
  ASSERT_NE(find("b"), nullptr);
  EXPECT_EQ(find("b")->weight(), 5) << "refresh() did not rebuild the view";
  ASSERT_EQ(set_->retiredCount(), 1u) << "refresh() freed a retired backend";
  EXPECT_EQ(a->inFlight(), 0);
  EXPECT_EQ(a->addressText(), "127.0.0.1:8081");

  set_->collectRetired();
  EXPECT_EQ(set_->retiredCount(), 0u);
}

// Released before the refresh that notices the removal: retired all the same, not freed.
TEST_F(UpstreamSetTest, ABackendReleasedBeforeTheRefreshWaitsForCollectRetired) {
  Backend* a = find("a");
  ASSERT_NE(a, nullptr);
  a->acquire();
  removeFromZone("a");
  a->release();
  set_->refresh();
  EXPECT_EQ(find("a"), nullptr);
  ASSERT_EQ(set_->retiredCount(), 1u) << "refresh() freed a retired backend";
  EXPECT_EQ(a->inFlight(), 0);

  set_->collectRetired();
  EXPECT_EQ(set_->retiredCount(), 0u);
  set_->refresh();  // nothing left to do
  EXPECT_EQ(set_->retiredCount(), 0u);
}

// Two workers' views of the same backend count in their own rows of the zone, never in the
// shared state; the zone sums them, and keeps a worker's counts once it has exited.
TEST_F(UpstreamSetTest, EachWorkerCountsABackendInItsOwnRowSummedByTheZone) {
  const int w1 = zone_->claimWorkerSlot(4242);
  const int w2 = zone_->claimWorkerSlot(4242);
  ASSERT_GE(w1, 0);
  ASSERT_GE(w2, 0);
  UpstreamSet one(config_, *zone_, random_, pool_, w1);
  UpstreamSet two(config_, *zone_, random_, pool_, w2);
  auto backendOf = [](const UpstreamSet& set, const std::string& id) -> Backend* {
    for (Backend* b : set.backends()) {
      if (b->id() == id) return b;
    }
    return nullptr;
  };
  Backend* a1 = backendOf(one, "a");
  Backend* a2 = backendOf(two, "a");
  ASSERT_TRUE(a1 && a2);
  ASSERT_NE(&a1->workerCounters(), &a2->workerCounters());

  a1->acquire();
  a1->recordRequest();
  a1->addTraffic(100, 10);
  a1->recordFailure(1'000);
  a2->acquire();
  a2->recordRequest();
  a2->addTraffic(200, 20);
  EXPECT_EQ(a1->state().active_connections.load(), 2);

  const size_t index = static_cast<size_t>(zone_->find("app", "a") - zone_->slot(0));
  EXPECT_EQ(&a1->workerCounters(), &zone_->backendCounters(w1)[index].counters);
  core::BackendTotals t = zone_->backendTotals(index);
  EXPECT_EQ(t.requests, 2u);
  EXPECT_EQ(t.failures, 1u);
  EXPECT_EQ(t.bytes_in, 300u);
  EXPECT_EQ(t.bytes_out, 30u);

  // Worker one dies with its exchange in flight: its share leaves the shared count, its counts
  // stay in the totals.
  zone_->releaseWorkerSlot(static_cast<size_t>(w1));
  EXPECT_EQ(a2->state().active_connections.load(), 1);
  t = zone_->backendTotals(index);
  EXPECT_EQ(t.requests, 2u);
  EXPECT_EQ(t.failures, 1u);
  EXPECT_EQ(t.bytes_in, 300u);
  EXPECT_EQ(t.bytes_out, 30u);
  a2->release();
  EXPECT_EQ(a2->state().active_connections.load(), 0);
}

}  // namespace
}  // namespace speedmimi::upstream
