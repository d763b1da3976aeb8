// Backends between the configuration and the zone: resolution, and what a reload does to each
// backend, matched by (upstream, id) (DESIGN §2, §3).
#include "upstream/backend_table.h"

#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "core/clock.h"

namespace speedmimi::upstream {
namespace {

using Action = BackendChange::Action;
using core::BackendConfig;
using core::Config;
using std::chrono::milliseconds;

BackendConfig backend(const std::string& id, int port, int weight = 1) {
  BackendConfig b;
  b.id = id;
  b.host = "127.0.0.1";
  b.port = port;
  b.weight = weight;
  return b;
}

std::string describe(const std::vector<BackendChange>& plan) {
  static const char* const kNames[] = {"keep", "update", "update+health", "add", "remove"};
  std::string out;
  for (const BackendChange& c : plan) {
    if (!out.empty()) out += " ";
    out += std::string(kNames[static_cast<int>(c.action)]) + ":" + c.upstream + "/" + c.config.id;
  }
  return out;
}

TEST(ResolveBackend, NumericAndNamedHostsResolveAndAnUnknownNameIsAnError) {
  core::BackendAddress a;
  std::string error;
  EXPECT_TRUE(resolveBackend(backend("a", 8081), a, error)) << error;
  EXPECT_EQ(a.storage.ss_family, AF_INET);
  EXPECT_EQ(a.length, sizeof(sockaddr_in));
  BackendConfig v6 = backend("b", 8082);
  v6.host = "::1";
  EXPECT_TRUE(resolveBackend(v6, a, error)) << error;
  EXPECT_EQ(a.storage.ss_family, AF_INET6);
  BackendConfig bad = backend("c", 8083);
  bad.host = "no-such-host.invalid";
  EXPECT_FALSE(resolveBackend(bad, a, error));
  EXPECT_NE(error.find("no-such-host.invalid"), std::string::npos) << error;
}

TEST(PlanBackendChanges, MatchesByUpstreamAndIdKeptChangedRemovedAdded) {
  std::vector<CurrentBackend> now = {
      {"app", backend("same", 8081)},
      {"app", backend("reweighted", 8082, 5)},
      {"app", backend("moved", 8083)},
      {"app", backend("gone", 8084)},
      {"old", backend("x", 9000)},  // its whole upstream is gone
  };
  Config next;
  BackendConfig reweighted = backend("reweighted", 8082, 50);
  BackendConfig moved = backend("moved", 8093);
  next.backends["app"] = {backend("same", 8081), reweighted, moved, backend("fresh", 8085)};
  next.backends["api"] = {backend("same", 8081)};  // the same id in another upstream is new
  EXPECT_EQ(describe(planBackendChanges(now, next)),
            "remove:app/gone remove:old/x add:api/same keep:app/same update:app/reweighted "
            "update+health:app/moved add:app/fresh");
}

TEST(PlanBackendChanges, ThePlanCarriesTheNewSettings) {
  Config next;
  next.backends["app"] = {backend("a", 8081, 70)};
  auto plan = planBackendChanges({{"app", backend("a", 8081, 1)}}, next);
  ASSERT_EQ(plan.size(), 1u);
  EXPECT_EQ(plan[0].action, Action::kUpdate);
  EXPECT_EQ(plan[0].config.weight, 70);
}

TEST(PlanBackendChanges, WhichChangesForgetHealth) {
  struct Case {
    const char* what;
    void (*tweak)(BackendConfig&);
    Action want;
  };
  const Case cases[] = {
      {"weight", [](BackendConfig& b) { b.weight = 9; }, Action::kUpdate},
      {"name", [](BackendConfig& b) { b.name = "renamed"; }, Action::kUpdate},
      {"active", [](BackendConfig& b) { b.active = false; }, Action::kUpdate},
      {"max_conn", [](BackendConfig& b) { b.max_conn = 3; }, Action::kUpdate},
      {"max_fails", [](BackendConfig& b) { b.max_fails = 3; }, Action::kUpdate},
      {"fail_timeout", [](BackendConfig& b) { b.fail_timeout = milliseconds(1); }, Action::kUpdate},
      {"host", [](BackendConfig& b) { b.host = "::1"; }, Action::kUpdateHealth},
      {"port", [](BackendConfig& b) { b.port = 1; }, Action::kUpdateHealth},
      {"check added", [](BackendConfig& b) { b.health_check.enabled = true; },
       Action::kUpdateHealth},
      {"check path", [](BackendConfig& b) { b.health_check.path = "/ready"; },
       Action::kUpdateHealth},
      {"check interval", [](BackendConfig& b) { b.health_check.interval = milliseconds(7); },
       Action::kUpdateHealth},
      {"check failures", [](BackendConfig& b) { b.health_check.failures = 9; },
       Action::kUpdateHealth},
      {"slow_start", [](BackendConfig& b) { b.slow_start = milliseconds(30'000); },
       Action::kUpdate},
      {"tls_verify", [](BackendConfig& b) { b.tls_verify = false; }, Action::kUpdate},
      {"ca_file", [](BackendConfig& b) { b.ca_file = "private-ca.pem"; }, Action::kUpdate},
      {"scheme", [](BackendConfig& b) { b.scheme = "https"; }, Action::kUpdateHealth},
      {"nothing", [](BackendConfig&) {}, Action::kKeep},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.what);
    BackendConfig changed = backend("a", 8081);
    c.tweak(changed);
    Config next;
    next.backends["app"] = {changed};
    auto plan = planBackendChanges({{"app", backend("a", 8081)}}, next);
    ASSERT_EQ(plan.size(), 1u);
    EXPECT_EQ(plan[0].action, c.want);
  }
}

// Against a real zone: a kept backend keeps its runtime state, a moved one forgets its health,
// a removed one leaves the live set, and a name that does not resolve changes nothing at all.
TEST(SyncBackends, KeepsRuntimeStateOfKeptBackends) {
  std::string error;
  auto zone = core::Zone::create(4 << 20, 4, error);
  ASSERT_NE(zone, nullptr) << error;
  Config first;
  first.backends["app"] = {backend("keep", 8081), backend("move", 8082), backend("drop", 8083)};
  ASSERT_TRUE(syncBackends(*zone, first, error)) << error;
  core::BackendSlot* keep = zone->find("app", "keep");
  core::BackendSlot* move = zone->find("app", "move");
  ASSERT_TRUE(keep && move);
  for (core::BackendSlot* s : {keep, move}) {
    s->runtime.health.store(static_cast<int>(core::Health::kDown));
    s->retired.requests.store(42);
    s->runtime.latency_us.store(1234);
    s->runtime.report_time_ms.store(99);
  }

  Config second;
  second.backends["app"] = {backend("keep", 8081, 7), backend("move", 8092), backend("new", 8084)};
  std::vector<BackendChange> applied;
  ASSERT_TRUE(syncBackends(*zone, second, error, &applied)) << error;
  EXPECT_EQ(describe(applied), "remove:app/drop update:app/keep update+health:app/move add:app/new");
  EXPECT_EQ(zone->find("app", "keep"), keep);
  EXPECT_EQ(keep->config.load()->weight, 7);
  EXPECT_EQ(keep->runtime.health.load(), static_cast<int>(core::Health::kDown));
  EXPECT_EQ(keep->retired.requests.load(), 42u);
  EXPECT_EQ(keep->runtime.latency_us.load(), 1234u);
  EXPECT_EQ(keep->runtime.report_time_ms.load(), 99);
  EXPECT_EQ(move->runtime.health.load(), static_cast<int>(core::Health::kUnknown));
  EXPECT_EQ(move->retired.requests.load(), 42u);  // counters survive a move
  EXPECT_EQ(zone->find("app", "drop"), nullptr);
  EXPECT_NE(zone->find("app", "new"), nullptr);

  uint64_t generation = zone->generation();
  Config broken = second;
  broken.backends["app"].push_back(backend("bad", 8085));
  broken.backends["app"].back().host = "no-such-host.invalid";
  broken.backends["app"].front().weight = 99;
  EXPECT_FALSE(syncBackends(*zone, broken, error));
  EXPECT_NE(error.find("no-such-host.invalid"), std::string::npos) << error;
  EXPECT_EQ(zone->generation(), generation);
  EXPECT_EQ(keep->config.load()->weight, 7);
}

// Slow start: the backends of a first start (a clean zone) take their full weight at once; a
// backend new in a reload, or made active again by one, comes back and ramps; a kept or
// updated one does not.
TEST(SyncBackends, ABackendNewInAReloadOrReactivatedByOneStartsItsSlowStart) {
  std::string error;
  auto zone = core::Zone::create(4 << 20, 4, error);
  ASSERT_NE(zone, nullptr) << error;
  Config first;
  first.backends["app"] = {backend("a", 8081), backend("off", 8082)};
  first.backends["app"][1].active = false;
  ASSERT_TRUE(syncBackends(*zone, first, error, nullptr, core::Zone::Arrival::kAtStart)) << error;
  core::BackendSlot* a = zone->find("app", "a");
  core::BackendSlot* off = zone->find("app", "off");
  ASSERT_TRUE(a && off);
  EXPECT_EQ(a->runtime.ramp_start_ms.load(), 0);
  EXPECT_EQ(off->runtime.ramp_start_ms.load(), 0);

  Config second;
  second.backends["app"] = {backend("a", 8081, 5), backend("off", 8082), backend("new", 8083)};
  const int64_t before = core::monotonicMs();
  ASSERT_TRUE(syncBackends(*zone, second, error)) << error;  // a reload
  const int64_t after = core::monotonicMs();
  EXPECT_EQ(a->runtime.ramp_start_ms.load(), 0) << "a weight change is no comeback";
  for (const char* id : {"off", "new"}) {
    SCOPED_TRACE(id);
    const int64_t mark = zone->find("app", id)->runtime.ramp_start_ms.load();
    EXPECT_GE(mark, before);
    EXPECT_LE(mark, after);
  }
}

// A value the zone cannot hold fails the whole change before the first step: the removal
// planned before it must not have happened (a reload that fails changes nothing).
TEST(SyncBackends, AValueTheZoneCannotHoldChangesNothing) {
  std::string error;
  auto zone = core::Zone::create(4 << 20, 4, error);
  ASSERT_NE(zone, nullptr) << error;
  Config first;
  first.backends["app"] = {backend("old", 8081)};
  ASSERT_TRUE(syncBackends(*zone, first, error)) << error;
  uint64_t generation = zone->generation();

  Config second;
  BackendConfig fresh = backend("fresh", 8082);
  fresh.name.assign(core::ZoneBackendConfig::kLong, 'n');  // one byte too long for the zone
  second.backends["app"] = {fresh};
  EXPECT_FALSE(syncBackends(*zone, second, error));
  EXPECT_NE(error.find("name"), std::string::npos) << error;
  EXPECT_NE(error.find("fresh"), std::string::npos) << error;
  EXPECT_NE(zone->find("app", "old"), nullptr);
  EXPECT_EQ(zone->generation(), generation);
}

TEST(SyncBackends, MoreNewBackendsThanFreeSlotsChangesNothing) {
  std::string error;
  auto zone = core::Zone::create(8 << 20, 1, error);  // 256 slots at least
  ASSERT_NE(zone, nullptr) << error;
  Config config;
  for (size_t i = 0; i < zone->slotCapacity() + 1; ++i) {
    config.backends["app"].push_back(backend("b" + std::to_string(i), 8000));
  }
  EXPECT_FALSE(syncBackends(*zone, config, error));
  EXPECT_NE(error.find("room for"), std::string::npos) << error;
  EXPECT_EQ(zone->freeSlots(), zone->slotCapacity());
}

}  // namespace
}  // namespace speedmimi::upstream
