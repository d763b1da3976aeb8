#include "upstream/backend_table.h"

#include <map>
#include <tuple>
#include <utility>

#include "upstream/backend.h"

namespace speedmimi::upstream {
namespace {

auto addressAndCheck(const core::BackendConfig& b) {
  const core::HealthCheckConfig& h = b.health_check;
  return std::tie(b.host, b.port, b.scheme, h.enabled, h.path, h.interval, h.timeout, h.failures,
                  h.successes);
}

auto otherSettings(const core::BackendConfig& b) {
  return std::tie(b.name, b.weight, b.active, b.max_conn, b.max_fails, b.fail_timeout, b.slow_start,
                  b.keepalive, b.tls_verify, b.ca_file);
}

}  // namespace

bool resolveBackend(const core::BackendConfig& backend, core::BackendAddress& out,
                    std::string& error) {
  core::BackendState scratch;
  Backend resolver(backend, &scratch);
  if (!resolver.resolve()) {
    error = "cannot resolve backend host \"" + backend.host + "\"";
    return false;
  }
  out.storage = *reinterpret_cast<const sockaddr_storage*>(resolver.address());
  out.length = resolver.addressLength();
  return true;
}

std::vector<BackendChange> planBackendChanges(const std::vector<CurrentBackend>& current,
                                              const core::Config& next) {
  using Action = BackendChange::Action;
  std::map<std::pair<std::string, std::string>, const core::BackendConfig*> now;
  for (const CurrentBackend& c : current) now[{c.upstream, c.config.id}] = &c.config;
  std::vector<BackendChange> plan;
  for (const CurrentBackend& c : current) {
    auto it = next.backends.find(c.upstream);
    bool kept = false;
    if (it != next.backends.end()) {
      for (const core::BackendConfig& b : it->second) kept |= b.id == c.config.id;
    }
    if (!kept) plan.push_back({Action::kRemove, c.upstream, c.config});
  }
  for (const auto& [upstream, list] : next.backends) {
    for (const core::BackendConfig& b : list) {
      auto it = now.find({upstream, b.id});
      Action action = Action::kAdd;
      if (it != now.end()) {
        const core::BackendConfig& old = *it->second;
        action = addressAndCheck(old) != addressAndCheck(b) ? Action::kUpdateHealth
                 : otherSettings(old) != otherSettings(b)   ? Action::kUpdate
                                                            : Action::kKeep;
      }
      plan.push_back({action, upstream, b});
    }
  }
  return plan;
}

std::vector<CurrentBackend> currentBackends(const core::Zone& zone) {
  std::vector<CurrentBackend> out;
  zone.forEachLive([&](size_t, core::BackendSlot& slot) {
    const core::ZoneBackendConfig* zc = slot.config.load(std::memory_order_acquire);
    if (zc) out.push_back({zc->upstream, core::fromZoneConfig(*zc)});
  });
  return out;
}

bool syncBackends(core::Zone& zone, const core::Config& next, std::string& error,
                  std::vector<BackendChange>* applied, core::Zone::Arrival arrival) {
  using Action = BackendChange::Action;
  std::vector<BackendChange> plan = planBackendChanges(currentBackends(zone), next);
  std::vector<core::BackendAddress> addresses(plan.size());
  size_t adds = 0;
  for (size_t i = 0; i < plan.size(); ++i) {
    if (plan[i].action == Action::kRemove || plan[i].action == Action::kKeep) continue;
    if (!resolveBackend(plan[i].config, addresses[i], error)) return false;
    core::ChangeResult r = zone.check(plan[i].upstream, plan[i].config, addresses[i]);
    if (!r.ok()) {
      error = "backends." + plan[i].upstream + " \"" + plan[i].config.id + "\": " + r.message;
      return false;
    }
    adds += plan[i].action == Action::kAdd;
  }
  // Removed slots are reclaimed only once no worker uses them: the new ones need free slots.
  if (adds > zone.freeSlots()) {
    error = "the backend table has room for " + std::to_string(zone.freeSlots()) +
            " more backends, not " + std::to_string(adds) + " (raise server.shm_size)";
    return false;
  }
  for (size_t i = 0; i < plan.size(); ++i) {
    const BackendChange& c = plan[i];
    core::ChangeResult r;
    switch (c.action) {
      case Action::kKeep: continue;
      case Action::kRemove: r = zone.removeBackend(c.upstream, c.config.id); break;
      case Action::kAdd:
        r = zone.addBackend(c.upstream, c.config, addresses[i], arrival);
        break;
      case Action::kUpdate:
      case Action::kUpdateHealth:
        r = zone.updateBackend(c.upstream, c.config, addresses[i],
                               c.action == Action::kUpdateHealth);
        break;
    }
    if (!r.ok()) {
      error = r.message;
      return false;
    }
    if (applied) applied->push_back(c);
  }
  return true;
}

}  // namespace speedmimi::upstream
