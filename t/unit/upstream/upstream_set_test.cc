// UpstreamSet: a worker's view of the zone's backends. A backend removed from the zone leaves the
// view at the next refresh() but stays allocated, retired, until collectRetired() finds nothing
// holding it: refresh() runs on the request path (a retry picking again), where the session may
// still read the backend it has just released, so it must never free one itself.
#include "upstream/upstream_set.h"

#include <gtest/gtest.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "t/helpers/test_certs.h"
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

  // Pools an idle connection to `b` over a socketpair; the backend's end is kept in `peers_`.
  void poolConnection(Backend* b) {
    int sv[2];
    ASSERT_EQ(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, sv), 0);
    peers_.emplace_back(sv[1]);
    pool_.put(b, std::make_unique<event::Stream>(base_.get(), sv[0], nullptr));
  }
  // Whether the backend's end of peers_[i] saw its connection closed.
  bool peerClosed(size_t i) {
    char c;
    return read(peers_[i].get(), &c, 1) == 0;
  }

  void disconnect(const std::string& id) {
    core::ChangeResult r = zone_->disconnectBackend("app", id);
    ASSERT_TRUE(r.ok()) << r.message;
  }
  void reactivate(const std::string& id, int port) {
    core::BackendConfig b = backend(id, port);
    core::BackendAddress address;
    std::string error;
    ASSERT_TRUE(resolveBackend(b, address, error)) << error;
    core::ChangeResult r = zone_->updateBackend("app", b, address);
    ASSERT_TRUE(r.ok()) << r.message;
  }
  Backend* pick() {
    PickContext ctx;
    ctx.now_ms = 1'000;
    return set_->balancer(0, Protocol::kHttp).pick(ctx);
  }

  std::unique_ptr<core::Zone> zone_;
  core::Config config_;
  DefaultRandom random_{42};
  event::EventBasePtr base_{event_base_new()};  // outlives the pool's streams
  ConnectionPool pool_{nullptr, std::chrono::milliseconds(1000)};
  std::vector<event::Fd> peers_;
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

// ---------------------------------------------------------------------------------------------
// Disconnect (Zone::disconnectBackend): the rebuild that sees a backend's disconnect epoch move
// closes its idle connections and reports it once, for the worker to close its tunnels and
// event streams; the request path pays nothing for it.

TEST_F(UpstreamSetTest, ADisconnectClosesTheBackendsIdleConnectionsAndReportsItOnce) {
  Backend* a = find("a");
  Backend* b = find("b");
  ASSERT_TRUE(a && b);
  poolConnection(a);  // peers_[0], [1]
  poolConnection(a);
  poolConnection(b);  // peers_[2]
  ASSERT_EQ(pool_.idleCount(a), 2u);
  EXPECT_TRUE(set_->takeDisconnected().empty());

  disconnect("a");
  EXPECT_EQ(pool_.idleCount(a), 2u) << "nothing happens before the worker looks";
  set_->refresh();
  EXPECT_EQ(find("a"), a) << "still the same backend: exchanges in flight keep it";
  EXPECT_FALSE(a->config().active);
  EXPECT_EQ(pool_.idleCount(a), 0u);
  EXPECT_TRUE(peerClosed(0));
  EXPECT_TRUE(peerClosed(1));
  EXPECT_EQ(pool_.idleCount(b), 1u) << "another backend's connections stay";
  EXPECT_EQ(set_->takeDisconnected(), std::vector<Backend*>{a});
  EXPECT_TRUE(set_->takeDisconnected().empty()) << "taken once";
  for (int i = 0; i < 10; ++i) EXPECT_EQ(pick(), b) << "an inactive backend is never picked";

  // Another change rebuilds the view; the disconnect is not reported again.
  reweightB(3);
  set_->refresh();
  ASSERT_EQ(find("b")->weight(), 3) << "the view was not rebuilt";
  EXPECT_TRUE(set_->takeDisconnected().empty());
  EXPECT_EQ(pool_.idleCount(b), 1u);
}

// Idle connections made under another transport (plain or TLS, verified or not, against
// another CA) are closed when it changes; any other change keeps them.
TEST_F(UpstreamSetTest, ATransportChangeClosesTheBackendsIdleConnections) {
  Backend* a = find("a");
  ASSERT_NE(a, nullptr);
  core::BackendConfig next = backend("a", 8081);
  const std::pair<const char*, std::function<void(core::BackendConfig&)>> steps[] = {
      {"weight", [](core::BackendConfig& b) { b.weight = 2; }},
      {"scheme", [](core::BackendConfig& b) { b.scheme = "https"; }},
      {"tls_verify", [](core::BackendConfig& b) { b.tls_verify = false; }},
      {"ca_file", [](core::BackendConfig& b) { b.ca_file = "private-ca.pem"; }},
      {"max_fails", [](core::BackendConfig& b) { b.max_fails = 7; }},
  };
  for (const auto& [what, tweak] : steps) {
    SCOPED_TRACE(what);
    poolConnection(a);
    tweak(next);
    core::Config config = config_;
    config.backends["app"] = {next, backend("b", 8082)};
    std::string error;
    ASSERT_TRUE(syncBackends(*zone_, config, error)) << error;
    set_->refresh();
    ASSERT_EQ(find("a"), a);
    const core::BackendConfig& now = a->config();
    ASSERT_TRUE(now.weight == next.weight && now.scheme == next.scheme &&
                now.tls_verify == next.tls_verify && now.ca_file == next.ca_file &&
                now.max_fails == next.max_fails)
        << "the view was not rebuilt";
    const bool transport = std::string(what) != "weight" && std::string(what) != "max_fails";
    EXPECT_EQ(pool_.idleCount(a), transport ? 0u : 1u);
    if (transport) {
      EXPECT_TRUE(peerClosed(peers_.size() - 1));
    }
    pool_.clear(a);
  }
}

// An https backend's TLS context is made by prepareTls when the view changes, and kept across
// changes of anything but its transport: no request reads the CA bundle, and the backend's TLS
// session stays for resumption. Each check removes the CA file first: a context made anew
// would find none.
TEST_F(UpstreamSetTest, AnHttpsBackendsTlsContextIsMadeByPrepareTlsAndKeptAcrossOtherChanges) {
  speedmimi::testing::ScratchDir dir;
  speedmimi::testing::KeyPtr key = speedmimi::testing::makeKey(speedmimi::testing::KeyType::kEc);
  speedmimi::testing::CertPtr ca =
      speedmimi::testing::makeCert({.cn = "ca", .ca = true}, key.get());
  const std::string prefix = std::filesystem::path(dir.path("x")).parent_path();
  core::BackendConfig a = backend("a", 8081);
  a.scheme = "https";
  auto apply = [&](const std::string& ca_file) {
    a.ca_file = ca_file;
    if (!ca_file.empty()) dir.writeCerts(ca_file, {ca.get()});
    core::Config config = config_;
    config.backends["app"] = {a, backend("b", 8082)};
    std::string error;
    ASSERT_TRUE(syncBackends(*zone_, config, error)) << error;
    set_->refresh();
    set_->prepareTls(prefix);
    if (!ca_file.empty()) std::filesystem::remove(dir.path(ca_file));
  };
  std::string error;
  apply("ca1.pem");
  Backend* b = find("a");
  ASSERT_NE(b, nullptr);
  EXPECT_NE(b->clientTls(prefix, error), nullptr) << "made on first use: " << error;
  a.weight = 5;
  apply("ca1.pem");
  ASSERT_EQ(find("a"), b);
  ASSERT_EQ(b->weight(), 5);
  EXPECT_NE(b->clientTls(prefix, error), nullptr) << "made again for a new weight: " << error;
  apply("ca2.pem");
  EXPECT_NE(b->clientTls(prefix, error), nullptr) << "the new CA not made at once: " << error;
  EXPECT_EQ(b->config().ca_file, "ca2.pem");
  // The last one removed, a change of tls_verify makes a context anew, not from the CA file.
  a.tls_verify = false;
  apply("");
  EXPECT_NE(b->clientTls(prefix, error), nullptr) << error;
  a.tls_verify = true;
  apply("");  // the system store
  EXPECT_NE(b->clientTls(prefix, error), nullptr) << error;
  // A missing CA file leaves no context behind, the old one included.
  a.ca_file = "gone.pem";
  core::Config config = config_;
  config.backends["app"] = {a, backend("b", 8082)};
  ASSERT_TRUE(syncBackends(*zone_, config, error)) << error;
  set_->refresh();
  set_->prepareTls(prefix);
  EXPECT_EQ(b->clientTls(prefix, error), nullptr);
  EXPECT_NE(error.find("gone.pem"), std::string::npos) << error;
}

// Disconnected and re-activated before the worker looked: the backend serves again, and what
// the disconnect ended still ends.
TEST_F(UpstreamSetTest, ADisconnectFollowedByAReactivationIsStillReported) {
  Backend* a = find("a");
  ASSERT_NE(a, nullptr);
  poolConnection(a);
  disconnect("a");
  reactivate("a", 8081);
  set_->refresh();
  EXPECT_TRUE(a->config().active);
  EXPECT_EQ(pool_.idleCount(a), 0u);
  EXPECT_TRUE(peerClosed(0));
  EXPECT_EQ(set_->takeDisconnected(), std::vector<Backend*>{a});

  bool picked = false;
  for (int i = 0; i < 4; ++i) picked |= pick() == a;
  EXPECT_TRUE(picked) << "re-activated, it takes requests again";
  poolConnection(a);
  EXPECT_EQ(pool_.idleCount(a), 1u) << "and its connections are pooled again";
}

TEST_F(UpstreamSetTest, SeveralDisconnectsBeforeARebuildAreOneReport) {
  Backend* a = find("a");
  Backend* b = find("b");
  disconnect("a");
  disconnect("b");
  disconnect("a");
  set_->refresh();
  std::vector<Backend*> gone = set_->takeDisconnected();
  std::sort(gone.begin(), gone.end());
  std::vector<Backend*> want{a, b};
  std::sort(want.begin(), want.end());
  EXPECT_EQ(gone, want);
  EXPECT_EQ(pick(), nullptr) << "no active backend left";
}

// Disconnected, then removed before the worker looked (its tunnels hold it): reported, and the
// pointer stays valid until collectRetired frees the backend.
TEST_F(UpstreamSetTest, ADisconnectJustBeforeARemovalIsStillReported) {
  Backend* a = find("a");
  ASSERT_NE(a, nullptr);
  a->acquire();  // a tunnel
  disconnect("a");
  removeFromZone("a");
  set_->refresh();
  EXPECT_EQ(find("a"), nullptr);
  EXPECT_EQ(set_->takeDisconnected(), std::vector<Backend*>{a});
  EXPECT_EQ(a->id(), "a");
  a->release();  // the worker closed the tunnel
  set_->collectRetired();
  EXPECT_EQ(set_->retiredCount(), 0u);
}

// A report not taken before its retired backend is freed goes with it: never a dangling pointer.
TEST_F(UpstreamSetTest, CollectRetiredDropsTheReportOfABackendItFrees) {
  disconnect("a");
  removeFromZone("a");
  set_->refresh();
  ASSERT_EQ(set_->retiredCount(), 1u);
  set_->collectRetired();
  EXPECT_EQ(set_->retiredCount(), 0u);
  EXPECT_TRUE(set_->takeDisconnected().empty());
}

// A view built after the disconnect (a worker started later) has nothing of that backend to
// close; and a view that applied it publishes the generation at once.
TEST_F(UpstreamSetTest, AViewBuiltAfterADisconnectReportsNothingAndPublishesItsGeneration) {
  disconnect("a");
  const int w = zone_->claimWorkerSlot(4242);
  ASSERT_GE(w, 0);
  UpstreamSet later(config_, *zone_, random_, pool_, w);
  EXPECT_TRUE(later.takeDisconnected().empty());
  EXPECT_EQ(zone_->workers()[w].seen_generation.load(), zone_->generation());

  disconnect("b");
  const uint64_t g = zone_->generation();
  later.refresh();
  EXPECT_EQ(zone_->workers()[w].seen_generation.load(), g);
  std::vector<Backend*> gone = later.takeDisconnected();
  ASSERT_EQ(gone.size(), 1u);
  EXPECT_EQ(gone[0]->id(), "b");
}

// The retry budget is the upstream's, on this worker: two routes to one upstream share it, a
// route to another upstream has its own, and a rebuild keeps the counts.
TEST_F(UpstreamSetTest, RoutesToOneUpstreamShareItsRetryBudget) {
  config_.backends["other"] = {backend("c", 8083)};
  core::RouteConfig api;
  api.name = "api";
  api.path = "/api";
  api.upstream = "app";
  core::RouteConfig elsewhere;
  elsewhere.name = "elsewhere";
  elsewhere.path = "/elsewhere";
  elsewhere.upstream = "other";
  config_.routes.push_back(api);
  config_.routes.push_back(elsewhere);
  std::string error;
  ASSERT_TRUE(syncBackends(*zone_, config_, error)) << error;
  UpstreamSet set(config_, *zone_, random_, pool_, -1);
  EXPECT_EQ(&set.retryBudget(0), &set.retryBudget(1));
  EXPECT_NE(&set.retryBudget(0), &set.retryBudget(2));
  set.retryBudget(1).attemptStarted(true);
  reweightB(3);
  set.refresh();
  EXPECT_EQ(set.retryBudget(0).requests(), 1);
  EXPECT_EQ(set.retryBudget(0).retries(), 1);
  EXPECT_EQ(set.retryBudget(2).requests(), 0);
}

}  // namespace
}  // namespace speedmimi::upstream
