// Zone: the shared backend table (DESIGN §3). Loading from a Config, the runtime changes the
// management API will make (add / remove / update / report) with their HTTP-like results, the
// generation that publishes them, and when a removed slot may be reused.
#include "core/zone.h"

#include <arpa/inet.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>
#include <gtest/gtest.h>

#include <cmath>
#include <cstdio>
#include <cstring>
#include <functional>
#include <limits>
#include <set>
#include <string>
#include <vector>

#include "core/clock.h"

namespace speedmimi::core {
namespace {

using std::chrono::milliseconds;

constexpr uint64_t kShmSize = 4ull * 1024 * 1024;

BackendConfig backend(const std::string& id, int port, int weight = 1) {
  BackendConfig b;
  b.id = id;
  b.name = "Backend " + id;
  b.host = "127.0.0.1";
  b.port = port;
  b.weight = weight;
  return b;
}

// Two upstreams; "api" exercises every non-default field.
Config twoUpstreams() {
  Config c;
  c.server.shm_size = kShmSize;
  BackendConfig full = backend("api1", 9001, 70);
  full.name = "API server one";
  full.host = "localhost";
  full.scheme = "https";
  full.active = false;
  full.max_conn = 12;
  full.max_fails = 4;
  full.fail_timeout = milliseconds(2500);
  full.slow_start = milliseconds(45'000);
  full.tls_verify = false;
  full.health_check.enabled = true;
  full.health_check.path = "/status/ready";
  full.health_check.interval = milliseconds(1500);
  full.health_check.timeout = milliseconds(300);
  full.health_check.failures = 5;
  full.health_check.successes = 2;
  c.backends["api"] = {full, backend("api2", 9002, 30)};
  c.backends["web"] = {backend("w1", 8081), backend("w2", 8082, 3), backend("w3", 8083)};
  RouteConfig r;
  r.name = "default";
  r.upstream = "web";
  c.routes.push_back(r);
  return c;
}

Config oneUpstream(std::vector<BackendConfig> backends) {
  Config c;
  c.server.shm_size = kShmSize;
  c.backends["app"] = std::move(backends);
  RouteConfig r;
  r.name = "default";
  r.upstream = "app";
  c.routes.push_back(r);
  return c;
}

void expectSameConfig(const BackendConfig& want, const BackendConfig& got) {
  EXPECT_EQ(got.id, want.id);
  EXPECT_EQ(got.name, want.name);
  EXPECT_EQ(got.host, want.host);
  EXPECT_EQ(got.port, want.port);
  EXPECT_EQ(got.weight, want.weight);
  EXPECT_EQ(got.scheme, want.scheme);
  EXPECT_EQ(got.active, want.active);
  EXPECT_EQ(got.max_conn, want.max_conn);
  EXPECT_EQ(got.max_fails, want.max_fails);
  EXPECT_EQ(got.fail_timeout, want.fail_timeout);
  EXPECT_EQ(got.slow_start, want.slow_start);
  EXPECT_EQ(got.tls_verify, want.tls_verify);
  EXPECT_EQ(got.health_check.enabled, want.health_check.enabled);
  EXPECT_EQ(got.health_check.path, want.health_check.path);
  EXPECT_EQ(got.health_check.interval, want.health_check.interval);
  EXPECT_EQ(got.health_check.timeout, want.health_check.timeout);
  EXPECT_EQ(got.health_check.failures, want.health_check.failures);
  EXPECT_EQ(got.health_check.successes, want.health_check.successes);
}

// The zone takes resolved addresses; these tests only need one per backend (its port).
BackendAddress address(const BackendConfig& b) {
  BackendAddress a;
  auto* v4 = reinterpret_cast<sockaddr_in*>(&a.storage);
  v4->sin_family = AF_INET;
  v4->sin_port = htons(static_cast<uint16_t>(b.port));
  inet_pton(AF_INET, "127.0.0.1", &v4->sin_addr);
  a.length = sizeof(sockaddr_in);
  return a;
}

// A zone sized for `config`, with every backend of it added (as the master does at start).
std::unique_ptr<Zone> createZone(const Config& config, std::string& error) {
  size_t backends = 0;
  for (const auto& [name, list] : config.backends) backends += list.size();
  std::unique_ptr<Zone> zone = Zone::create(config.server.shm_size, backends, error);
  if (!zone) return nullptr;
  for (const auto& [name, list] : config.backends) {
    for (const BackendConfig& b : list) {
      ChangeResult r = zone->addBackend(name, b, address(b), Zone::Arrival::kAtStart);
      if (!r.ok()) {
        error = r.message;
        return nullptr;
      }
    }
  }
  return zone;
}

ChangeResult addTo(Zone& zone, const std::string& upstream, const BackendConfig& b) {
  return zone.addBackend(upstream, b, address(b));
}

ChangeResult updateIn(Zone& zone, const std::string& upstream, const BackendConfig& b) {
  return zone.updateBackend(upstream, b, address(b));
}

std::unique_ptr<Zone> makeZone(const Config& config) {
  std::string error;
  std::unique_ptr<Zone> zone = createZone(config, error);
  EXPECT_NE(zone, nullptr) << error;
  return zone;
}

size_t indexOf(const Zone& zone, const BackendSlot* s) {
  for (size_t i = 0; i < zone.slotCapacity(); ++i) {
    if (zone.slot(i) == s) return i;
  }
  return zone.slotCapacity();
}

std::vector<std::string> liveIds(const Zone& zone) {
  std::vector<std::string> ids;
  zone.forEachLive([&](size_t, BackendSlot& s) {
    const ZoneBackendConfig* c = s.config.load();
    ids.push_back(std::string(c->upstream) + "/" + c->id);
  });
  return ids;
}

// ---------------------------------------------------------------------------------------------
// Creation

TEST(ZoneCreate, LoadsEveryBackendLiveWithItsConfig) {
  Config config = twoUpstreams();
  auto zone = makeZone(config);
  ASSERT_NE(zone, nullptr);
  EXPECT_GE(zone->slotCapacity(), 5u);
  std::vector<std::string> ids = liveIds(*zone);
  EXPECT_EQ(std::multiset<std::string>(ids.begin(), ids.end()),
            (std::multiset<std::string>{"api/api1", "api/api2", "web/w1", "web/w2", "web/w3"}));
  for (const auto& [upstream, list] : config.backends) {
    for (const BackendConfig& want : list) {
      SCOPED_TRACE(upstream + "/" + want.id);
      BackendSlot* s = zone->find(upstream, want.id);
      ASSERT_NE(s, nullptr);
      EXPECT_EQ(s->state.load(), static_cast<uint32_t>(SlotState::kLive));
      EXPECT_GE(s->incarnation.load(), 1u);
      const ZoneBackendConfig* stored = s->config.load();
      ASSERT_NE(stored, nullptr);
      EXPECT_STREQ(stored->upstream, upstream.c_str());
      expectSameConfig(want, fromZoneConfig(*stored));
      EXPECT_EQ(s->runtime.active_connections.load(), 0);
      EXPECT_EQ(zone->backendTotals(indexOf(*zone, s)).requests, 0u);
    }
  }
}

TEST(ZoneCreate, FindIsScopedToTheUpstream) {
  auto zone = makeZone(twoUpstreams());
  ASSERT_NE(zone, nullptr);
  EXPECT_EQ(zone->find("web", "api1"), nullptr);
  EXPECT_EQ(zone->find("api", "w1"), nullptr);
  EXPECT_EQ(zone->find("nope", "w1"), nullptr);
  EXPECT_NE(zone->find("web", "w1"), zone->find("web", "w2"));
}

TEST(ZoneCreate, WorkerCountersStartEmpty) {
  auto zone = makeZone(twoUpstreams());
  ASSERT_NE(zone, nullptr);
  ServerCounters* workers = zone->workers();
  for (size_t i = 0; i < kWorkerSlots; ++i) {
    ASSERT_EQ(workers[i].pid.load(), 0) << i;
    ASSERT_EQ(workers[i].requests.load(), 0u) << i;
    ASSERT_EQ(workers[i].seen_generation.load(), 0u) << i;
  }
}

TEST(ZoneCreate, ShmSizeTooSmallIsAnError) {
  for (uint64_t size : {uint64_t{8 * 1024}, uint64_t{64 * 1024}}) {
    SCOPED_TRACE(size);
    Config config = twoUpstreams();
    config.server.shm_size = size;
    std::string error;
    EXPECT_EQ(createZone(config, error), nullptr);
    EXPECT_NE(error.find("shm_size"), std::string::npos) << error;
  }
}

TEST(ZoneCreate, AStringLongerThanItsFieldIsAnError) {
  BackendConfig b = backend(std::string(ZoneBackendConfig::kShort, 'i'), 8081);
  std::string error;
  EXPECT_EQ(createZone(oneUpstream({b}), error), nullptr);
  EXPECT_NE(error.find("id"), std::string::npos) << error;
}

TEST(ZoneCreate, AnInvalidBackendIsAnError) {
  std::string error;
  EXPECT_EQ(createZone(oneUpstream({backend("a", 0)}), error), nullptr);
  EXPECT_NE(error.find("port"), std::string::npos) << error;
}

// ---------------------------------------------------------------------------------------------
// toZoneConfig / fromZoneConfig

TEST(ZoneConfig, FieldLimits) {
  struct Case {
    const char* what;
    std::function<void(std::string&, BackendConfig&)> tweak;
    bool fits;
    const char* field;  // must appear in the error
  };
  const size_t kShort = ZoneBackendConfig::kShort;
  const size_t kLong = ZoneBackendConfig::kLong;
  const Case cases[] = {
      {"id at the limit", [&](auto&, auto& b) { b.id.assign(kShort - 1, 'x'); }, true, ""},
      {"id too long", [&](auto&, auto& b) { b.id.assign(kShort, 'x'); }, false, "id"},
      {"upstream too long", [&](auto& u, auto&) { u.assign(kShort, 'u'); }, false, "upstream"},
      {"name at the limit", [&](auto&, auto& b) { b.name.assign(kLong - 1, 'n'); }, true, ""},
      {"name too long", [&](auto&, auto& b) { b.name.assign(kLong, 'n'); }, false, "name"},
      {"host too long", [&](auto&, auto& b) { b.host.assign(kLong, 'h'); }, false, "host"},
      {"health path too long",
       [&](auto&, auto& b) { b.health_check.path = "/" + std::string(kLong, 'p'); }, false, "path"},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.what);
    std::string upstream = "app";
    BackendConfig b = backend("b1", 8081);
    c.tweak(upstream, b);
    ZoneBackendConfig out;
    std::string error;
    EXPECT_EQ(toZoneConfig(upstream, b, address(b), out, error), c.fits);
    if (c.fits) {
      EXPECT_STREQ(out.upstream, upstream.c_str());
      expectSameConfig(b, fromZoneConfig(out));
    } else {
      EXPECT_NE(error.find(c.field), std::string::npos) << error;
    }
  }
}

// ---------------------------------------------------------------------------------------------
// Add / remove / update

class ZoneChange : public ::testing::Test {
 protected:
  void SetUp() override {
    zone_ = makeZone(oneUpstream({backend("a", 8081), backend("b", 8082)}));
    ASSERT_NE(zone_, nullptr);
  }
  // Pretends worker `i` (a live process) has applied generation `g`.
  void worker(size_t i, uint64_t g) {
    zone_->workers()[i].pid.store(static_cast<int32_t>(4000 + i));
    zone_->workers()[i].seen_generation.store(g);
  }

  std::unique_ptr<Zone> zone_;
};

TEST_F(ZoneChange, AddPublishesANewLiveBackend) {
  uint64_t g = zone_->generation();
  ChangeResult r = addTo(*zone_, "app", backend("c", 8083, 7));
  EXPECT_EQ(r.status, 201) << r.message;
  EXPECT_TRUE(r.ok());
  EXPECT_GT(zone_->generation(), g);
  BackendSlot* s = zone_->find("app", "c");
  ASSERT_NE(s, nullptr);
  EXPECT_EQ(s->config.load()->weight, 7);
  EXPECT_EQ(liveIds(*zone_).size(), 3u);
}

TEST_F(ZoneChange, AddCreatesAnUpstreamThatDidNotExist) {
  EXPECT_EQ(addTo(*zone_, "other", backend("a", 9000)).status, 201);
  ASSERT_NE(zone_->find("other", "a"), nullptr);
  EXPECT_NE(zone_->find("other", "a"), zone_->find("app", "a"));
  EXPECT_EQ(zone_->find("other", "a")->config.load()->port, 9000);
  EXPECT_EQ(zone_->find("app", "a")->config.load()->port, 8081);
}

TEST_F(ZoneChange, AddOfADuplicateIdIs409AndChangesNothing) {
  uint64_t g = zone_->generation();
  ChangeResult r = addTo(*zone_, "app", backend("a", 9999));
  EXPECT_EQ(r.status, 409);
  EXPECT_FALSE(r.ok());
  EXPECT_NE(r.message.find("\"a\""), std::string::npos) << r.message;
  EXPECT_EQ(zone_->generation(), g);
  EXPECT_EQ(zone_->find("app", "a")->config.load()->port, 8081);
  EXPECT_EQ(liveIds(*zone_).size(), 2u);
}

TEST_F(ZoneChange, InvalidValuesAre400NamingTheField) {
  struct Case {
    const char* what;
    std::string upstream;
    std::function<void(BackendConfig&)> tweak;
    const char* field;
    // An update names its backend by id: an id that cannot exist may as well be 404.
    bool id_changes = false;
  };
  const Case cases[] = {
      {"empty upstream", "", [](auto&) {}, "upstream"},
      {"empty id", "app", [](auto& b) { b.id = ""; }, "id"},
      {"empty host", "app", [](auto& b) { b.host = ""; }, "host"},
      {"port 0", "app", [](auto& b) { b.port = 0; }, "port"},
      {"port 65536", "app", [](auto& b) { b.port = 65536; }, "port"},
      {"weight 0", "app", [](auto& b) { b.weight = 0; }, "weight"},
      {"weight 10001", "app", [](auto& b) { b.weight = 10001; }, "weight"},
      {"scheme ftp", "app", [](auto& b) { b.scheme = "ftp"; }, "scheme"},
      {"max_fails -1", "app", [](auto& b) { b.max_fails = -1; }, "max_fails"},
      {"health failures 0", "app", [](auto& b) { b.health_check.failures = 0; }, "health_check"},
      {"health successes 0", "app", [](auto& b) { b.health_check.successes = 0; }, "health_check"},
      {"id too long", "app", [](auto& b) { b.id.assign(ZoneBackendConfig::kShort, 'x'); }, "id",
       true},
      {"host too long", "app", [](auto& b) { b.host.assign(ZoneBackendConfig::kLong, 'h'); },
       "host"},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.what);
    uint64_t g = zone_->generation();
    BackendConfig add = backend("new", 8090);
    c.tweak(add);
    ChangeResult r = addTo(*zone_, c.upstream, add);
    EXPECT_EQ(r.status, 400) << r.message;
    EXPECT_NE(r.message.find(c.field), std::string::npos) << r.message;

    BackendConfig update = backend("a", 8081);
    c.tweak(update);
    r = updateIn(*zone_, c.upstream, update);
    if (c.id_changes) {
      EXPECT_TRUE(r.status == 400 || r.status == 404) << r.status << " " << r.message;
    } else {
      EXPECT_EQ(r.status, 400) << r.message;
      EXPECT_NE(r.message.find(c.field), std::string::npos) << r.message;
    }

    EXPECT_EQ(zone_->generation(), g) << "a rejected change must not publish";
    EXPECT_EQ(liveIds(*zone_).size(), 2u);
    EXPECT_EQ(zone_->find("app", "a")->config.load()->port, 8081);
  }
}

TEST_F(ZoneChange, UnknownBackendOrUpstreamIs404) {
  uint64_t g = zone_->generation();
  EXPECT_EQ(zone_->removeBackend("app", "zz").status, 404);
  EXPECT_EQ(zone_->removeBackend("nope", "a").status, 404);
  EXPECT_EQ(updateIn(*zone_, "app", backend("zz", 8081)).status, 404);
  EXPECT_EQ(updateIn(*zone_, "nope", backend("a", 8081)).status, 404);
  ChangeResult r = zone_->recordReport("app", "zz", PerformanceReport{}, 1000);
  EXPECT_EQ(r.status, 404);
  EXPECT_NE(r.message.find("zz"), std::string::npos) << r.message;
  EXPECT_EQ(zone_->generation(), g);
}

TEST_F(ZoneChange, RemoveTakesTheBackendOutAtOnce) {
  uint64_t g = zone_->generation();
  BackendSlot* a = zone_->find("app", "a");
  ASSERT_NE(a, nullptr);
  ChangeResult r = zone_->removeBackend("app", "a");
  EXPECT_EQ(r.status, 200) << r.message;
  EXPECT_GT(zone_->generation(), g);
  EXPECT_EQ(zone_->find("app", "a"), nullptr);
  EXPECT_EQ(liveIds(*zone_), std::vector<std::string>{"app/b"});
  EXPECT_EQ(a->state.load(), static_cast<uint32_t>(SlotState::kRemoved));
  EXPECT_EQ(zone_->removeBackend("app", "a").status, 404) << "already removed";
  // The id is free again: adding it back takes a new slot while the old one is unreclaimed.
  worker(0, 0);
  EXPECT_EQ(addTo(*zone_, "app", backend("a", 8091)).status, 201);
  ASSERT_NE(zone_->find("app", "a"), nullptr);
  EXPECT_NE(zone_->find("app", "a"), a);
  EXPECT_EQ(zone_->find("app", "a")->config.load()->port, 8091);
}

// A removed slot comes back only when every live worker has applied the removal and no request
// is in flight to it; until then new backends take other slots.
TEST_F(ZoneChange, RemovedSlotIsReusedOnlyAfterReclaimWhenNoWorkerCanSeeIt) {
  BackendSlot* a = zone_->find("app", "a");
  ASSERT_NE(a, nullptr);
  const size_t a_index = indexOf(*zone_, a);
  const uint64_t a_incarnation = a->incarnation.load();
  const int w = zone_->claimWorkerSlot(4000);  // slot 0, with a row of backend counters
  ASSERT_EQ(w, 0);
  BackendWorkerCounters& mine = zone_->backendCounters(0)[a_index];
  mine.counters.requests.store(77);
  mine.counters.failures.store(5);
  mine.counters.responses_by_class[2].store(70);
  mine.counters.head_time.record(300);
  mine.active.store(1);
  a->retired.bytes_in.store(1234);
  a->retired.responses_by_class[5].store(3);
  a->retired.head_time.record(90'000'000);
  appendHealthEvent(a->health_history, 1000, Health::kDown, "check failed: status 500");
  a->runtime.latency_us.store(900);
  a->runtime.report_cpu.store(5000);
  a->runtime.health.store(2);
  a->health.consecutive_failures.store(3);
  a->runtime.active_connections.store(1);
  a->runtime.disconnect_epoch.store(3);

  worker(0, zone_->generation());
  worker(1, zone_->generation());
  worker(7, zone_->generation());
  ASSERT_EQ(zone_->removeBackend("app", "a").status, 200);
  const uint64_t removal = zone_->generation();

  int next_port = 8100;
  auto addOne = [&](const std::string& id) {
    EXPECT_EQ(addTo(*zone_, "app", backend(id, next_port++)).status, 201);
    return indexOf(*zone_, zone_->find("app", id));
  };

  // No reclaim at all: the slot stays taken.
  EXPECT_NE(addOne("c1"), a_index);

  // Two workers applied the removal, worker 7 has not: still taken.
  worker(0, removal + 5);
  worker(1, removal);
  zone_->reclaim();
  EXPECT_NE(addOne("c2"), a_index);

  // Every worker has, but a request is still in flight to it.
  worker(7, removal);
  zone_->reclaim();
  EXPECT_NE(addOne("c3"), a_index);

  // Nothing in flight: reclaimed, and the next add takes it.
  a->runtime.active_connections.store(0);
  zone_->reclaim();
  EXPECT_EQ(a->state.load(), static_cast<uint32_t>(SlotState::kFree));
  EXPECT_EQ(addOne("d"), a_index);

  // The new tenant starts clean, under a new incarnation.
  EXPECT_GT(a->incarnation.load(), a_incarnation);
  EXPECT_STREQ(a->config.load()->id, "d");
  const BackendTotals totals = zone_->backendTotals(a_index);
  EXPECT_EQ(totals.requests, 0u);
  EXPECT_EQ(totals.failures, 0u);
  EXPECT_EQ(totals.bytes_in, 0u);
  for (uint64_t n : totals.responses_by_class) EXPECT_EQ(n, 0u);
  EXPECT_EQ(totals.head_time.count(), 0u);
  EXPECT_EQ(totals.head_time.sum_us, 0u);
  EXPECT_TRUE(zone_->healthHistory(a_index).empty()) << "the history of the previous tenant";
  EXPECT_EQ(mine.active.load(), 0);
  EXPECT_EQ(a->runtime.latency_us.load(), kLatencyUnmeasured);
  EXPECT_EQ(a->runtime.report_cpu.load(), 0u);
  EXPECT_EQ(a->runtime.health.load(), 0);
  EXPECT_EQ(a->runtime.active_connections.load(), 0);
  EXPECT_EQ(a->runtime.disconnect_epoch.load(), 0u);
  EXPECT_EQ(a->health.consecutive_failures.load(), 0);
}

TEST_F(ZoneChange, SlotsOfExitedWorkersDoNotHoldReclaimBack) {
  BackendSlot* a = zone_->find("app", "a");
  const size_t a_index = indexOf(*zone_, a);
  // A worker slot with pid 0 (the process is gone) may keep a stale generation.
  zone_->workers()[3].seen_generation.store(0);
  worker(4, 0);
  ASSERT_EQ(zone_->removeBackend("app", "a").status, 200);
  zone_->reclaim();
  EXPECT_EQ(a->state.load(), static_cast<uint32_t>(SlotState::kRemoved)) << "worker 4 lags";
  zone_->workers()[4].pid.store(0);
  zone_->reclaim();
  EXPECT_EQ(a->state.load(), static_cast<uint32_t>(SlotState::kFree));
  ASSERT_EQ(addTo(*zone_, "app", backend("e", 8200)).status, 201);
  EXPECT_EQ(indexOf(*zone_, zone_->find("app", "e")), a_index);
}

TEST_F(ZoneChange, UpdateSwapsTheConfigAndKeepsTheRuntimeState) {
  BackendSlot* a = zone_->find("app", "a");
  ASSERT_NE(a, nullptr);
  a->retired.requests.store(42);
  a->runtime.active_connections.store(3);
  a->runtime.latency_us.store(1500);
  a->runtime.health.store(1);
  const uint64_t incarnation = a->incarnation.load();
  const uint64_t g = zone_->generation();

  BackendConfig changed = backend("a", 8181, 9);
  changed.max_conn = 5;
  changed.active = false;
  ChangeResult r = updateIn(*zone_, "app", changed);
  EXPECT_EQ(r.status, 200) << r.message;
  EXPECT_GT(zone_->generation(), g);

  EXPECT_EQ(zone_->find("app", "a"), a) << "an update keeps the slot";
  expectSameConfig(changed, fromZoneConfig(*a->config.load()));
  EXPECT_EQ(a->incarnation.load(), incarnation);
  EXPECT_EQ(a->retired.requests.load(), 42u);
  EXPECT_EQ(a->runtime.active_connections.load(), 3);
  EXPECT_EQ(a->runtime.latency_us.load(), 1500u);
  EXPECT_EQ(a->runtime.health.load(), 1);
  EXPECT_EQ(zone_->find("app", "b")->config.load()->port, 8082) << "others untouched";
}

// ---------------------------------------------------------------------------------------------
// Slow start: when a backend comes back (BackendState::ramp_start_ms, core::monotonicMs)

TEST_F(ZoneChange, BackendsOfTheFirstStartHaveNoComeBack) {
  for (const char* id : {"a", "b"}) {
    EXPECT_EQ(zone_->find("app", id)->runtime.ramp_start_ms.load(), 0) << id;
  }
}

TEST_F(ZoneChange, AnAddedBackendComesBackWhenItIsAdded) {
  const int64_t before = monotonicMs();
  ASSERT_EQ(addTo(*zone_, "app", backend("c", 8083)).status, 201);
  const int64_t after = monotonicMs();
  const int64_t mark = zone_->find("app", "c")->runtime.ramp_start_ms.load();
  EXPECT_GE(mark, before);
  EXPECT_LE(mark, after);
  EXPECT_GT(mark, 0);
}

TEST_F(ZoneChange, ReactivationComesBackAndOtherUpdatesDoNot) {
  BackendSlot* a = zone_->find("app", "a");
  ASSERT_EQ(updateIn(*zone_, "app", backend("a", 8081, 5)).status, 200);
  EXPECT_EQ(a->runtime.ramp_start_ms.load(), 0) << "active before and after";

  for (bool disconnect : {false, true}) {
    SCOPED_TRACE(disconnect ? "disconnected" : "updated to inactive");
    if (disconnect) {
      ASSERT_EQ(zone_->disconnectBackend("app", "a").status, 200);
    } else {
      BackendConfig inactive = backend("a", 8081);
      inactive.active = false;
      ASSERT_EQ(updateIn(*zone_, "app", inactive).status, 200);
    }
    a->runtime.ramp_start_ms.store(0);
    const int64_t before = monotonicMs();
    ASSERT_EQ(updateIn(*zone_, "app", backend("a", 8081)).status, 200);
    const int64_t after = monotonicMs();
    EXPECT_GE(a->runtime.ramp_start_ms.load(), before);
    EXPECT_LE(a->runtime.ramp_start_ms.load(), after);
  }
  EXPECT_EQ(zone_->find("app", "b")->runtime.ramp_start_ms.load(), 0) << "others untouched";
}

// ---------------------------------------------------------------------------------------------
// Disconnect

TEST_F(ZoneChange, DisconnectMakesTheBackendInactiveAndBumpsItsEpochInOneGeneration) {
  BackendConfig full = backend("a", 8181, 9);
  full.max_conn = 5;
  full.health_check.enabled = true;
  full.health_check.path = "/ready";
  ASSERT_EQ(updateIn(*zone_, "app", full).status, 200);
  BackendSlot* a = zone_->find("app", "a");
  ASSERT_NE(a, nullptr);
  a->retired.requests.store(42);
  a->runtime.active_connections.store(3);
  a->runtime.latency_us.store(1500);
  a->runtime.health.store(1);
  a->runtime.report_cpu.store(4500);
  a->health.consecutive_successes.store(2);
  const ZoneBackendConfig* before = a->config.load();
  const uint64_t incarnation = a->incarnation.load();
  const uint64_t g = zone_->generation();

  ChangeResult r = zone_->disconnectBackend("app", "a");
  EXPECT_EQ(r.status, 200) << r.message;
  EXPECT_NE(r.message.find("\"a\""), std::string::npos) << r.message;
  EXPECT_EQ(zone_->generation(), g + 1) << "one published change";
  EXPECT_EQ(a->runtime.disconnect_epoch.load(), 1u);

  EXPECT_EQ(zone_->find("app", "a"), a) << "a disconnect keeps the slot";
  EXPECT_EQ(a->incarnation.load(), incarnation);
  EXPECT_NE(a->config.load(), before) << "the block is replaced, never written in place";
  BackendConfig want = full;
  want.active = false;
  expectSameConfig(want, fromZoneConfig(*a->config.load()));
  EXPECT_EQ(a->config.load()->address_len, before->address_len);
  EXPECT_EQ(std::memcmp(&a->config.load()->address, &before->address, before->address_len), 0);
  // The runtime state is kept: it is still the same backend.
  EXPECT_EQ(a->retired.requests.load(), 42u);
  EXPECT_EQ(a->runtime.active_connections.load(), 3);
  EXPECT_EQ(a->runtime.latency_us.load(), 1500u);
  EXPECT_EQ(a->runtime.health.load(), 1);
  EXPECT_EQ(a->runtime.report_cpu.load(), 4500u);
  EXPECT_EQ(a->health.consecutive_successes.load(), 2);

  BackendSlot* b = zone_->find("app", "b");
  EXPECT_TRUE(b->config.load()->active) << "others untouched";
  EXPECT_EQ(b->runtime.disconnect_epoch.load(), 0u);
}

// The epoch counts disconnects: re-activating (an update with active=true) does not move it back,
// so a worker that sees both changes in one rebuild still closes what the disconnect ended.
TEST_F(ZoneChange, EveryDisconnectMovesTheEpochAndAnUpdateBringsTheBackendBack) {
  BackendSlot* a = zone_->find("app", "a");
  ASSERT_EQ(zone_->disconnectBackend("app", "a").status, 200);
  ASSERT_FALSE(a->config.load()->active);

  ASSERT_EQ(updateIn(*zone_, "app", backend("a", 8081)).status, 200);  // active: true
  EXPECT_TRUE(a->config.load()->active);
  EXPECT_EQ(a->runtime.disconnect_epoch.load(), 1u);

  // Disconnecting an inactive backend still counts: its tunnels may outlive an update.
  ASSERT_EQ(zone_->disconnectBackend("app", "a").status, 200);
  const uint64_t g = zone_->generation();
  ChangeResult r = zone_->disconnectBackend("app", "a");
  EXPECT_EQ(r.status, 200) << r.message;
  EXPECT_EQ(zone_->generation(), g + 1);
  EXPECT_EQ(a->runtime.disconnect_epoch.load(), 3u);
  EXPECT_FALSE(a->config.load()->active);
}

TEST_F(ZoneChange, DisconnectOfAnUnknownBackendOrUpstreamIs404AndChangesNothing) {
  const uint64_t g = zone_->generation();
  for (auto [upstream, id] : {std::pair{"app", "zz"}, std::pair{"nope", "a"}}) {
    ChangeResult r = zone_->disconnectBackend(upstream, id);
    EXPECT_EQ(r.status, 404) << r.message;
    EXPECT_NE(r.message.find(std::string("\"") + id + "\""), std::string::npos) << r.message;
    EXPECT_NE(r.message.find(std::string("\"") + upstream + "\""), std::string::npos)
        << r.message;
  }
  ASSERT_EQ(zone_->removeBackend("app", "b").status, 200);
  const uint64_t after_remove = zone_->generation();
  EXPECT_EQ(zone_->disconnectBackend("app", "b").status, 404) << "a removed backend is unknown";
  EXPECT_EQ(zone_->generation(), after_remove);
  EXPECT_EQ(after_remove, g + 1);
  EXPECT_TRUE(zone_->find("app", "a")->config.load()->active);
  EXPECT_EQ(zone_->find("app", "a")->runtime.disconnect_epoch.load(), 0u);
}

// The replaced block goes back to the slab like an update's: disconnects do not eat the zone.
TEST_F(ZoneChange, BlocksReplacedByADisconnectAreFreedOnceWorkersCatchUp) {
  for (int i = 0; i < 10; ++i) {
    ASSERT_EQ(zone_->disconnectBackend("app", "a").status, 200);
    zone_->reclaim();
  }
  const size_t steady = zone_->slab().freePages();
  for (int i = 0; i < 1000; ++i) {
    ASSERT_EQ(zone_->disconnectBackend("app", "a").status, 200);
    zone_->reclaim();
  }
  EXPECT_EQ(zone_->slab().freePages(), steady);
  EXPECT_EQ(zone_->find("app", "a")->runtime.disconnect_epoch.load(), 1010u);
}

// wakeWorkers signals each live worker (a slot with a pid) and nobody else.
TEST_F(ZoneChange, WakeWorkersSignalsEveryLiveWorker) {
  sigset_t urg, old;
  sigemptyset(&urg);
  sigaddset(&urg, kZoneChangedSignal);
  ASSERT_EQ(sigprocmask(SIG_BLOCK, &urg, &old), 0);  // the child inherits it: none is lost
  pid_t child = fork();
  if (child == 0) {
    timespec limit{5, 0};
    _exit(sigtimedwait(&urg, nullptr, &limit) == kZoneChangedSignal ? 0 : 1);
  }
  ASSERT_EQ(sigprocmask(SIG_SETMASK, &old, nullptr), 0);
  ASSERT_GT(child, 0);
  const int live = zone_->claimWorkerSlot(child);
  const int gone = zone_->claimWorkerSlot(child);
  ASSERT_GE(live, 0);
  ASSERT_GE(gone, 0);
  zone_->workers()[gone].pid.store(0);  // exited: not signalled

  EXPECT_EQ(zone_->wakeWorkers(), 1u);
  int status = 0;
  ASSERT_EQ(waitpid(child, &status, 0), child);
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << "the worker was not woken";
  zone_->workers()[live].pid.store(0);
  EXPECT_EQ(zone_->wakeWorkers(), 0u);
}

// Replaced configuration blocks go back to the slab once no worker can still read them, so a
// stream of updates does not eat the zone; while a worker lags they are kept.
TEST_F(ZoneChange, ReplacedConfigBlocksAreFreedOnceWorkersCatchUp) {
  auto update = [&](int i) {
    ASSERT_EQ(updateIn(*zone_, "app", backend("a", 8081, 1 + i % 50)).status, 200);
  };
  for (int i = 0; i < 10; ++i) {
    update(i);
    zone_->reclaim();
  }
  const size_t steady = zone_->slab().freePages();
  for (int i = 0; i < 1000; ++i) {
    update(i);
    zone_->reclaim();
  }
  EXPECT_EQ(zone_->slab().freePages(), steady) << "no worker: every old block is freed";

  worker(0, zone_->generation());
  for (int i = 0; i < 100; ++i) {
    update(i);
    zone_->reclaim();
  }
  const size_t held = zone_->slab().freePages();
  EXPECT_LT(held, steady) << "a lagging worker may still read the old blocks";

  worker(0, zone_->generation());
  zone_->reclaim();
  for (int i = 0; i < 100; ++i) {
    update(i);
    worker(0, zone_->generation());
    zone_->reclaim();
  }
  EXPECT_EQ(zone_->slab().freePages(), held) << "the freed blocks are reused";
}

TEST_F(ZoneChange, GenerationBumpsOnEveryStructuralChange) {
  std::vector<uint64_t> seen = {zone_->generation()};
  ASSERT_EQ(addTo(*zone_, "app", backend("c", 8083)).status, 201);
  seen.push_back(zone_->generation());
  ASSERT_EQ(updateIn(*zone_, "app", backend("c", 8084)).status, 200);
  seen.push_back(zone_->generation());
  ASSERT_EQ(zone_->removeBackend("app", "c").status, 200);
  seen.push_back(zone_->generation());
  for (size_t i = 1; i < seen.size(); ++i) EXPECT_GT(seen[i], seen[i - 1]) << i;
  // A report is not structural.
  ASSERT_EQ(zone_->recordReport("app", "a", PerformanceReport{}, 5).status, 200);
  EXPECT_EQ(zone_->generation(), seen.back());
}

TEST(ZoneCapacity, AFullBackendTableIs507) {
  Config config = oneUpstream({});
  auto zone = makeZone(config);
  ASSERT_NE(zone, nullptr);
  const size_t capacity = zone->slotCapacity();
  ASSERT_GE(capacity, 1u);
  ASSERT_LE(capacity, 4096u) << "the test adds one backend per slot";
  for (size_t i = 0; i < capacity; ++i) {
    ASSERT_EQ(addTo(*zone, "app", backend("b" + std::to_string(i), 8000)).status, 201) << i;
  }
  uint64_t g = zone->generation();
  ChangeResult r = addTo(*zone, "app", backend("one-too-many", 8000));
  EXPECT_EQ(r.status, 507) << r.message;
  EXPECT_EQ(zone->generation(), g);
  EXPECT_EQ(zone->find("app", "one-too-many"), nullptr);
  // Freeing a slot makes room again.
  ASSERT_EQ(zone->removeBackend("app", "b0").status, 200);
  zone->reclaim();
  EXPECT_EQ(addTo(*zone, "app", backend("one-too-many", 8000)).status, 201);
}

// ---------------------------------------------------------------------------------------------
// Performance reports

TEST_F(ZoneChange, ReportIsStoredScaledWithItsTime) {
  PerformanceReport report;
  report.cpu_usage = 12.5;
  report.memory_usage = 40.25;
  report.disk_usage = 99;
  report.load_avg_1 = 1.5;
  report.load_avg_5 = 0.75;
  report.timestamp = 1'700'000'000;
  ChangeResult r = zone_->recordReport("app", "b", report, 123'456);
  EXPECT_EQ(r.status, 200) << r.message;
  const BackendState& st = zone_->find("app", "b")->runtime;
  EXPECT_EQ(st.report_cpu.load(), 1250u);
  EXPECT_EQ(st.report_memory.load(), 4025u);
  EXPECT_EQ(st.report_load.load(), 150u);
  EXPECT_EQ(st.report_time_ms.load(), 123'456);
  EXPECT_EQ(zone_->find("app", "a")->runtime.report_time_ms.load(), 0) << "only b reported";

  report.cpu_usage = 100;
  report.memory_usage = 0;
  report.load_avg_1 = 0;
  ASSERT_EQ(zone_->recordReport("app", "b", report, 200'000).status, 200);
  EXPECT_EQ(st.report_cpu.load(), 10000u);
  EXPECT_EQ(st.report_memory.load(), 0u);
  EXPECT_EQ(st.report_load.load(), 0u);
  EXPECT_EQ(st.report_time_ms.load(), 200'000);
}

TEST_F(ZoneChange, ReportOutOfRangeIs400NamingTheFieldAndStoresNothing) {
  const double nan = std::numeric_limits<double>::quiet_NaN();
  struct Case {
    std::function<void(PerformanceReport&)> tweak;
    const char* field;
  };
  const Case cases[] = {
      {[](auto& p) { p.cpu_usage = 100.5; }, "cpu_usage"},
      {[](auto& p) { p.cpu_usage = -1; }, "cpu_usage"},
      {[nan](auto& p) { p.cpu_usage = nan; }, "cpu_usage"},
      {[](auto& p) { p.memory_usage = 101; }, "memory_usage"},
      {[](auto& p) { p.memory_usage = -0.5; }, "memory_usage"},
      {[](auto& p) { p.disk_usage = 250; }, "disk_usage"},
      {[](auto& p) { p.load_avg_1 = -1; }, "load_avg_1"},
      {[nan](auto& p) { p.load_avg_15 = nan; }, "load_avg_15"},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.field);
    PerformanceReport report;
    report.cpu_usage = 10;
    report.memory_usage = 10;
    c.tweak(report);
    ChangeResult r = zone_->recordReport("app", "a", report, 5000);
    EXPECT_EQ(r.status, 400) << r.message;
    EXPECT_NE(r.message.find(c.field), std::string::npos) << r.message;
    EXPECT_EQ(zone_->find("app", "a")->runtime.report_time_ms.load(), 0);
    EXPECT_EQ(zone_->find("app", "a")->runtime.report_cpu.load(), 0u);
  }
}

}  // namespace
}  // namespace speedmimi::core

namespace speedmimi::core {
namespace {

// Worker counter slots: claimed from the zone (old and new workers overlap during a reload),
// released with their totals folded into the retired counters, and reused.
TEST(ZoneWorkerSlots, ClaimedReleasedAndReusedWithTotalsKept) {
  std::string error;
  auto zone = Zone::create(ServerConfig{}.shm_size, 1, error);
  ASSERT_NE(zone, nullptr) << error;
  EXPECT_EQ(zone->workerSlotLimit(), 0u);
  int a = zone->claimWorkerSlot(4242);
  int b = zone->claimWorkerSlot(4242);
  EXPECT_EQ(a, 0);
  EXPECT_EQ(b, 1);
  EXPECT_EQ(zone->workers()[a].pid.load(), 4242);  // the master's, until the worker's is known
  EXPECT_EQ(zone->workerSlotLimit(), 2u);
  ServerCounters& wa = zone->workers()[a];
  wa.pid.store(1234);
  wa.accepted.store(10);
  wa.requests.store(7);
  wa.responses_by_class[2].store(6);
  wa.bytes_out.store(500);
  wa.active_connections.store(3);
  zone->releaseWorkerSlot(static_cast<size_t>(a));
  EXPECT_EQ(zone->retiredCounters().accepted.load(), 10u);
  EXPECT_EQ(zone->retiredCounters().requests.load(), 7u);
  EXPECT_EQ(zone->retiredCounters().responses_by_class[2].load(), 6u);
  EXPECT_EQ(zone->retiredCounters().bytes_out.load(), 500u);
  EXPECT_EQ(wa.pid.load(), 0);
  EXPECT_EQ(wa.active_connections.load(), 0);

  int c = zone->claimWorkerSlot(4242);  // the free slot comes back, zeroed
  EXPECT_EQ(c, a);
  EXPECT_EQ(zone->workers()[c].requests.load(), 0u);
  EXPECT_EQ(zone->workerSlotLimit(), 2u);
  // The default server.shm_size holds the rows of three generations of 64 workers (each row is
  // slotCapacity() entries of per-backend counters); more workers need a larger zone.
  size_t taken = 2;
  while (zone->claimWorkerSlot(4242) >= 0) ++taken;
  EXPECT_GE(taken, 3u * 64) << "worker slots with a row in the default zone";
  EXPECT_EQ(zone->workerSlotLimit(), taken);
  std::printf("default zone: %zu worker slots with a row of %zu backends\n", taken,
              zone->slotCapacity());
}

// All kWorkerSlots can be handed out, given a zone large enough for their rows.
TEST(ZoneWorkerSlots, AllTakenIsMinusOne) {
  std::string error;
  auto zone = Zone::create(64ull << 20, 1, error);
  ASSERT_NE(zone, nullptr) << error;
  for (size_t i = 0; i < kWorkerSlots; ++i) ASSERT_GE(zone->claimWorkerSlot(4242), 0) << i;
  EXPECT_EQ(zone->claimWorkerSlot(4242), -1);  // all taken
  EXPECT_EQ(zone->workerSlotLimit(), kWorkerSlots);
}

// A binary upgrade maps the same memfd at the same address; a zone from another layout or a
// taken address is refused (the new master then starts a clean one).
TEST(ZoneInherit, TheSameBytesAtTheSameAddressOrAnError) {
  std::string error;
  auto zone = Zone::create(kShmSize, 1, error);
  ASSERT_NE(zone, nullptr) << error;
  int fd = dup(zone->fd());
  // The same address is taken in this process: refused with a reason.
  auto twin = Zone::inherit(fd, zone->address(), error);
  EXPECT_EQ(twin, nullptr);
  EXPECT_NE(error.find("address"), std::string::npos) << error;

  // In a child that unmapped it first (as a new binary has nothing there), it maps and reads
  // the same generation and slots.
  zone->workers()[5].requests.store(77);
  fd = dup(zone->fd());
  uintptr_t address = zone->address();
  size_t size = zone->size();
  pid_t pid = fork();
  if (pid == 0) {
    munmap(reinterpret_cast<void*>(address), size);
    std::string e;
    auto inherited = Zone::inherit(fd, address, e);
    _exit(inherited && inherited->workers()[5].requests.load() == 77 ? 0 : 1);
  }
  int status = 0;
  waitpid(pid, &status, 0);
  close(fd);
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0);
}

}  // namespace
}  // namespace speedmimi::core

namespace speedmimi::core {
namespace {

// ---------------------------------------------------------------------------------------------
// False sharing: what different workers write per request never shares a cache line.

uintptr_t lineOf(const void* p) {
  return reinterpret_cast<uintptr_t>(p) / kCacheLine;
}
uintptr_t lastLineOf(const void* p, size_t bytes) {
  return (reinterpret_cast<uintptr_t>(p) + bytes - 1) / kCacheLine;
}

TEST(ZoneFalseSharing, EachWorkerSlotHasCacheLinesOfItsOwn) {
  std::string error;
  auto zone = Zone::create(kShmSize, 1, error);
  ASSERT_NE(zone, nullptr) << error;
  ServerCounters* w = zone->workers();
  for (size_t i = 0; i + 1 < kWorkerSlots; ++i) {
    ASSERT_LT(lastLineOf(&w[i], sizeof(ServerCounters)), lineOf(&w[i + 1])) << "slot " << i;
  }
  EXPECT_LT(lastLineOf(&w[kWorkerSlots - 1], sizeof(ServerCounters)),
            lineOf(&zone->retiredCounters()));
}

// active_connections (every worker writes it twice per exchange) and the latency EWMA (once
// per response) do not share a line with each other or with what every pick reads.
TEST(ZoneFalseSharing, SharedBackendStateKeepsWrittenFieldsApartFromReadMostlyOnes) {
  std::string error;
  auto zone = Zone::create(kShmSize, 1, error);
  ASSERT_NE(zone, nullptr) << error;
  for (size_t i : {size_t{0}, size_t{1}, zone->slotCapacity() - 1}) {
    SCOPED_TRACE(i);
    const BackendState& st = zone->slot(i)->runtime;
    const uintptr_t active = lineOf(&st.active_connections);
    const uintptr_t latency = lineOf(&st.latency_us);
    EXPECT_NE(active, latency);
    for (const void* read_mostly :
         {static_cast<const void*>(&st.health), static_cast<const void*>(&st.passive_fails),
          static_cast<const void*>(&st.passive_down_until_ms),
          static_cast<const void*>(&st.report_time_ms),
          static_cast<const void*>(&st.ramp_start_ms)}) {
      EXPECT_NE(lineOf(read_mostly), active);
      EXPECT_NE(lineOf(read_mostly), latency);
    }
    // Nor with the slot's neighbours or its configuration pointer.
    const BackendSlot* s = zone->slot(i);
    EXPECT_NE(lineOf(&s->config), active);
    EXPECT_NE(lineOf(&s->state), active);
    EXPECT_NE(lineOf(&s->health), latency);
  }
}

// Two workers counting requests to the same backend write different lines; a worker's row
// starts and ends on lines of its own.
TEST(ZoneFalseSharing, PerBackendCountersOfTwoWorkersAreOnDifferentLines) {
  std::string error;
  auto zone = Zone::create(kShmSize, 1, error);
  ASSERT_NE(zone, nullptr) << error;
  const int a = zone->claimWorkerSlot(4242);
  const int b = zone->claimWorkerSlot(4242);
  ASSERT_GE(a, 0);
  ASSERT_GE(b, 0);
  BackendWorkerCounters* row_a = zone->backendCounters(static_cast<size_t>(a));
  BackendWorkerCounters* row_b = zone->backendCounters(static_cast<size_t>(b));
  ASSERT_NE(row_a, nullptr);
  ASSERT_NE(row_b, nullptr);
  const size_t n = zone->slotCapacity();
  const size_t row_bytes = n * sizeof(BackendWorkerCounters);
  EXPECT_EQ(reinterpret_cast<uintptr_t>(row_a) % kCacheLine, 0u);
  EXPECT_EQ(reinterpret_cast<uintptr_t>(row_b) % kCacheLine, 0u);
  const uintptr_t a_first = lineOf(row_a), a_last = lastLineOf(row_a, row_bytes);
  const uintptr_t b_first = lineOf(row_b), b_last = lastLineOf(row_b, row_bytes);
  EXPECT_TRUE(a_last < b_first || b_last < a_first) << "the rows overlap in a cache line";
  for (size_t i = 0; i < n; ++i) {
    ASSERT_NE(lineOf(&row_a[i].counters.requests), lineOf(&row_b[i].counters.requests)) << i;
  }
  // Nor with any shared backend state.
  for (size_t i = 0; i < n; ++i) {
    const uintptr_t active = lineOf(&zone->slot(i)->runtime.active_connections);
    ASSERT_TRUE(active < a_first || active > a_last) << i;
  }
}

// ---------------------------------------------------------------------------------------------
// Per-backend counters: one row per worker, summed on read; a released worker's counts move to
// the backend's retired totals, so the sums never go backwards.

TEST(ZoneBackendCounters, TotalsSumEveryWorkerAndKeepWhatExitedWorkersCounted) {
  auto zone = makeZone(oneUpstream({backend("a", 8081), backend("b", 8082)}));
  ASSERT_NE(zone, nullptr);
  const size_t ia = indexOf(*zone, zone->find("app", "a"));
  const size_t ib = indexOf(*zone, zone->find("app", "b"));
  const size_t w1 = static_cast<size_t>(zone->claimWorkerSlot(4242));
  const size_t w2 = static_cast<size_t>(zone->claimWorkerSlot(4242));
  auto count = [&](size_t w, size_t backend, uint64_t requests, uint64_t failures, uint64_t in,
                   uint64_t out) {
    BackendCounters& c = zone->backendCounters(w)[backend].counters;
    c.requests += requests;
    c.failures += failures;
    c.bytes_in += in;
    c.bytes_out += out;
  };
  count(w1, ia, 3, 1, 300, 30);
  count(w2, ia, 4, 0, 400, 40);
  count(w2, ib, 9, 2, 900, 90);
  BackendTotals t = zone->backendTotals(ia);
  EXPECT_EQ(t.requests, 7u);
  EXPECT_EQ(t.failures, 1u);
  EXPECT_EQ(t.bytes_in, 700u);
  EXPECT_EQ(t.bytes_out, 70u);
  EXPECT_EQ(zone->backendTotals(ib).requests, 9u);

  // w1 exits with an exchange in flight to a: its share leaves active_connections, its counts
  // stay in the totals.
  zone->backendCounters(w1)[ia].active.store(1);
  zone->slot(ia)->runtime.active_connections.store(2);
  zone->releaseWorkerSlot(w1);
  EXPECT_EQ(zone->slot(ia)->runtime.active_connections.load(), 1);
  t = zone->backendTotals(ia);
  EXPECT_EQ(t.requests, 7u);
  EXPECT_EQ(t.failures, 1u);
  EXPECT_EQ(t.bytes_in, 700u);
  EXPECT_EQ(t.bytes_out, 70u);
  EXPECT_EQ(zone->backendCounters(w1)[ia].counters.requests.load(), 0u) << "folded, not kept";

  // Its slot's next worker starts from 0 and adds on top.
  const size_t w3 = static_cast<size_t>(zone->claimWorkerSlot(4242));
  EXPECT_EQ(w3, w1);
  count(w3, ia, 1, 0, 10, 1);
  EXPECT_EQ(zone->backendTotals(ia).requests, 8u);
  zone->releaseWorkerSlot(w2);
  zone->releaseWorkerSlot(w3);
  t = zone->backendTotals(ia);
  EXPECT_EQ(t.requests, 8u);
  EXPECT_EQ(t.bytes_in, 710u);
  EXPECT_EQ(zone->backendTotals(ib).requests, 9u);
  EXPECT_EQ(zone->backendTotals(ib).failures, 2u);
}

// Rows are taken from the slab at a slot's first claim; a zone too small for another row
// refuses the claim (the master retries later) rather than sharing a row.
TEST(ZoneBackendCounters, AClaimWithoutRoomForARowFailsAndLeavesTheSlotFree) {
  std::string error;
  auto zone = Zone::create(1024 * 1024, 1, error);
  ASSERT_NE(zone, nullptr) << error;
  int claimed = 0;
  while (zone->claimWorkerSlot(4242) >= 0) ++claimed;
  EXPECT_GT(claimed, 0);
  EXPECT_LT(static_cast<size_t>(claimed), kWorkerSlots);
  EXPECT_EQ(zone->backendCounters(static_cast<size_t>(claimed)), nullptr);
  EXPECT_EQ(zone->workers()[claimed].claimed.load(), 0u);
  zone->releaseWorkerSlot(0);
  EXPECT_EQ(zone->claimWorkerSlot(4242), 0) << "a slot that has its row comes back";
}

// Responses by class and head-time histograms: summed over every worker row like the other
// counters, and moved whole into the retired totals when a worker exits, so no total of a
// backend ever goes down.
TEST(ZoneBackendCounters, ClassesAndHeadTimesSumOverRowsAndNeverGoDownWhenAWorkerExits) {
  auto zone = makeZone(oneUpstream({backend("a", 8081), backend("b", 8082)}));
  ASSERT_NE(zone, nullptr);
  const size_t ia = indexOf(*zone, zone->find("app", "a"));
  const size_t ib = indexOf(*zone, zone->find("app", "b"));
  const size_t w1 = static_cast<size_t>(zone->claimWorkerSlot(4242));
  const size_t w2 = static_cast<size_t>(zone->claimWorkerSlot(4242));
  auto answer = [&](size_t w, size_t backend, int status, uint64_t us) {
    BackendCounters& c = zone->backendCounters(w)[backend].counters;
    c.responses_by_class[status / 100] += 1;
    c.head_time.record(us);
  };
  answer(w1, ia, 200, 100);     // bucket 0
  answer(w1, ia, 503, 2'000);   // bucket 4: (1 ms, 2.5 ms]
  answer(w2, ia, 200, 101);     // bucket 1
  answer(w2, ia, 404, 70'000'000);  // above 60 s: +Inf
  answer(w2, ib, 200, 5'000);
  auto expectA = [&](const BackendTotals& t) {
    EXPECT_EQ(t.responses_by_class[2], 2u);
    EXPECT_EQ(t.responses_by_class[4], 1u);
    EXPECT_EQ(t.responses_by_class[5], 1u);
    EXPECT_EQ(t.responses_by_class[0] + t.responses_by_class[1] + t.responses_by_class[3], 0u);
    EXPECT_EQ(t.head_time.count(), 4u);
    EXPECT_EQ(t.head_time.buckets[0], 1u);
    EXPECT_EQ(t.head_time.buckets[1], 1u);
    EXPECT_EQ(t.head_time.buckets[4], 1u);
    EXPECT_EQ(t.head_time.buckets[kLatencyBuckets - 1], 1u);
    EXPECT_EQ(t.head_time.sum_us, 100u + 2'000 + 101 + 70'000'000);
  };
  {
    SCOPED_TRACE("two live workers");
    expectA(zone->backendTotals(ia));
  }
  EXPECT_EQ(zone->backendTotals(ib).responses_by_class[2], 1u);
  EXPECT_EQ(zone->backendTotals(ib).head_time.count(), 1u);

  zone->releaseWorkerSlot(w2);
  {
    SCOPED_TRACE("w2 exited: its counts are in the retired totals");
    expectA(zone->backendTotals(ia));
  }
  const BackendCounters& left = zone->backendCounters(w2)[ia].counters;
  EXPECT_EQ(left.responses_by_class[2].load(), 0u) << "folded, not kept";
  EXPECT_EQ(left.head_time.buckets[1].load(), 0u);
  EXPECT_EQ(left.head_time.sum_us.load(), 0u);
  EXPECT_EQ(zone->slot(ia)->retired.head_time.buckets[kLatencyBuckets - 1].load(), 1u);
  EXPECT_EQ(zone->backendTotals(ib).head_time.count(), 1u);

  // Its slot's next worker starts from 0 and adds on top; then everyone exits.
  const size_t w3 = static_cast<size_t>(zone->claimWorkerSlot(4242));
  EXPECT_EQ(w3, w2);
  answer(w3, ia, 200, 250);
  zone->releaseWorkerSlot(w1);
  zone->releaseWorkerSlot(w3);
  BackendTotals t = zone->backendTotals(ia);
  EXPECT_EQ(t.responses_by_class[2], 3u);
  EXPECT_EQ(t.head_time.count(), 5u);
  EXPECT_EQ(t.head_time.buckets[1], 2u);
  EXPECT_EQ(t.head_time.sum_us, 100u + 2'000 + 101 + 70'000'000 + 250);
}

// The server's request-latency histogram: a worker's slot starts empty, and what it recorded
// moves into retiredCounters() when it exits.
TEST(ZoneWorkerSlots, RequestLatencyIsFoldedIntoTheRetiredCounters) {
  std::string error;
  auto zone = Zone::create(kShmSize, 1, error);
  ASSERT_NE(zone, nullptr) << error;
  const int a = zone->claimWorkerSlot(4242);
  const int b = zone->claimWorkerSlot(4242);
  ASSERT_GE(a, 0);
  ASSERT_GE(b, 0);
  ServerCounters* w = zone->workers();
  w[a].request_latency.record(80);
  w[a].request_latency.record(1'000'000);
  w[b].request_latency.record(600);
  auto total = [&] {
    LatencyTotals t;
    for (size_t i = 0; i < zone->workerSlotLimit(); ++i) t.add(w[i].request_latency);
    t.add(zone->retiredCounters().request_latency);
    return t;
  };
  EXPECT_EQ(total().count(), 3u);
  zone->releaseWorkerSlot(static_cast<size_t>(a));
  LatencyTotals t = total();
  EXPECT_EQ(t.count(), 3u);
  EXPECT_EQ(t.sum_us, 1'000'680u);
  EXPECT_EQ(t.buckets[0], 1u);
  EXPECT_EQ(t.buckets[latencyBucket(600)], 1u);
  EXPECT_EQ(t.buckets[latencyBucket(1'000'000)], 1u);
  EXPECT_EQ(zone->retiredCounters().request_latency.sum_us.load(), 1'000'080u);
  // The slot's next worker starts from nothing; the totals keep what the first one counted.
  w[a].request_latency.record(5);  // a stale value, cleared by the claim
  ASSERT_EQ(zone->claimWorkerSlot(4242), a);
  EXPECT_EQ(w[a].request_latency.sum_us.load(), 0u);
  EXPECT_EQ(w[a].request_latency.buckets[0].load(), 0u);
  EXPECT_EQ(total().count(), 3u);
}

// The health history is a ring of the last kHealthHistory changes, read newest first.
TEST_F(ZoneChange, HealthHistoryKeepsTheLast16NewestFirst) {
  const size_t i = indexOf(*zone_, zone_->find("app", "a"));
  EXPECT_TRUE(zone_->healthHistory(i).empty());
  BackendSlot& s = *zone_->slot(i);
  for (int n = 1; n <= 17; ++n) {
    appendHealthEvent(s.health_history, 1000 * n, n % 2 ? Health::kDown : Health::kUp,
                      "event " + std::to_string(n));
  }
  std::vector<HealthEvent> events = zone_->healthHistory(i);
  ASSERT_EQ(events.size(), kHealthHistory);
  for (size_t k = 0; k < events.size(); ++k) {
    const int n = 17 - static_cast<int>(k);  // 17, 16, ... 2: the first is gone
    SCOPED_TRACE(n);
    EXPECT_EQ(events[k].unix_ms, 1000 * n);
    EXPECT_EQ(events[k].health, static_cast<int32_t>(n % 2 ? Health::kDown : Health::kUp));
    EXPECT_EQ(std::string(events[k].reason), "event " + std::to_string(n));
  }
  EXPECT_TRUE(zone_->healthHistory(indexOf(*zone_, zone_->find("app", "b"))).empty());
}

TEST_F(ZoneChange, HealthHistoryCutsALongReasonAndKeepsTheFewThereAre) {
  const size_t i = indexOf(*zone_, zone_->find("app", "a"));
  BackendSlot& s = *zone_->slot(i);
  appendHealthEvent(s.health_history, 1, Health::kDown, std::string(500, 'r'));
  appendHealthEvent(s.health_history, 2, Health::kUp, "check passed: status 200");
  std::vector<HealthEvent> events = zone_->healthHistory(i);
  ASSERT_EQ(events.size(), 2u);
  EXPECT_STREQ(events[0].reason, "check passed: status 200");
  EXPECT_EQ(std::string(events[1].reason), std::string(sizeof(events[1].reason) - 1, 'r'));
}

}  // namespace
}  // namespace speedmimi::core
