#include "upstream/upstream_set.h"

#include <algorithm>
#include <cstring>
#include <stdexcept>
#include <utility>

#include "core/log.h"

namespace speedmimi::upstream {

const char* protocolName(Protocol p) {
  static const char* const kNames[] = {"http", "https", "websocket", "sse"};
  return kNames[static_cast<size_t>(p)];
}

UpstreamSet::UpstreamSet(const core::Config& config, core::Zone& zone, Random& random,
                         ConnectionPool& pool, int worker)
    : config_(config), zone_(zone), pool_(pool), worker_(worker) {
  for (const auto& route : config.routes) {
    RouteBalancers rb;
    for (size_t p = 0; p < kProtocolCount; ++p) {
      auto it = route.protocols.find(protocolName(static_cast<Protocol>(p)));
      const std::string& algo = it != route.protocols.end() ? it->second : route.load_balancer;
      auto balancer = makeBalancer(algo, random);
      if (!balancer) throw std::runtime_error("unknown load balancer \"" + algo + "\"");
      rb.by_protocol[p] = balancer.get();
      balancers_.push_back(std::move(balancer));
    }
    rb.budget = &budgets_[route.upstream];
    routes_.push_back(rb);
  }
  rebuild();
}

std::vector<Backend*> UpstreamSet::backends() const {
  std::vector<Backend*> out;
  for (const auto& [slot, entry] : entries_) out.push_back(entry.backend.get());
  return out;
}

// Copies every live slot into local Backend objects (kept across rebuilds while the slot keeps
// its incarnation, so exchanges and pooled connections stay valid), then resets the balancers.
// Repeats if the zone changed meanwhile; publishes the generation it applied. Backends gone from
// the zone are retired, not freed (see collectRetired).
void UpstreamSet::rebuild() {
  uint64_t generation;
  std::map<size_t, Entry> next;
  do {
    generation = zone_.generation();
    for (auto& [slot, entry] : next) entries_.emplace(slot, std::move(entry));  // retry: keep
    next.clear();
    zone_.forEachLive([&](size_t index, core::BackendSlot& slot) {
      const core::ZoneBackendConfig* zc = slot.config.load(std::memory_order_acquire);
      uint64_t incarnation = slot.incarnation.load(std::memory_order_acquire);
      if (!zc) return;
      Entry entry;
      auto it = entries_.find(index);
      if (it != entries_.end() && it->second.incarnation == incarnation) {
        entry = std::move(it->second);
        entries_.erase(it);
        checkDisconnect(entry);
      } else {
        // New to this view: no exchange of this worker uses it, nothing to close.
        entry.incarnation = incarnation;
        entry.disconnect_epoch = slot.runtime.disconnect_epoch.load(std::memory_order_acquire);
        entry.backend = std::make_unique<Backend>(core::BackendConfig{}, &slot.runtime);
        core::BackendWorkerCounters* row =
            worker_ >= 0 ? zone_.backendCounters(static_cast<size_t>(worker_)) : nullptr;
        if (row) entry.backend->setWorkerCounters(&row[index]);
      }
      entry.upstream = zc->upstream;
      core::BackendConfig bc = core::fromZoneConfig(*zc);
      bool moved = std::memcmp(&zc->address, entry.backend->address(), zc->address_len) != 0;
      const bool transport = entry.backend->reconfigure(std::move(bc));
      // Idle connections go to the old address, or speak the old transport (plain or TLS,
      // verified against the old CA or not at all): no request goes out over them.
      if (moved || transport) pool_.clear(entry.backend.get());
      if (moved) entry.backend->setAddress(zc->address, zc->address_len);
      if (transport && entry.backend->usesTls()) tls_unprepared_.push_back(entry.backend.get());
      next.emplace(index, std::move(entry));
    });
  } while (zone_.generation() != generation);

  // Gone from the zone. Its slot is not reused before this worker publishes the generation
  // below, so its state is still its own: a disconnect just before the removal still counts.
  for (auto& [slot, entry] : entries_) {
    checkDisconnect(entry);
    retire(std::move(entry.backend));
  }
  entries_ = std::move(next);

  std::map<std::string, std::vector<Backend*>> by_upstream;
  for (const auto& [slot, entry] : entries_) {
    by_upstream[entry.upstream].push_back(entry.backend.get());
  }
  for (auto& [name, members] : by_upstream) {
    for (Backend* b : members) b->setSolo(members.size() == 1);
  }
  for (size_t r = 0; r < routes_.size(); ++r) {
    const std::vector<Backend*>& members = by_upstream[config_.routes[r].upstream];
    for (Balancer* b : routes_[r].by_protocol) b->reset(members);
  }
  generation_ = generation;
  if (worker_ >= 0) {
    zone_.workers()[worker_].seen_generation.store(generation, std::memory_order_release);
  }
}

void UpstreamSet::retire(std::unique_ptr<Backend> backend) {
  backend->retire();
  pool_.clear(backend.get());
  SM_INFO("backend %s (%s) left this worker's view", backend->id().c_str(),
          backend->addressText().c_str());
  retired_.push_back(std::move(backend));
}

void UpstreamSet::checkDisconnect(Entry& entry) {
  Backend* backend = entry.backend.get();
  const uint64_t epoch = backend->state().disconnect_epoch.load(std::memory_order_acquire);
  if (epoch == entry.disconnect_epoch) return;
  entry.disconnect_epoch = epoch;
  SM_INFO("backend %s (%s) was disconnected; closing its %zu idle connections on this worker",
          backend->id().c_str(), backend->addressText().c_str(), pool_.idleCount(backend));
  pool_.clear(backend);
  if (std::find(disconnected_.begin(), disconnected_.end(), backend) == disconnected_.end()) {
    disconnected_.push_back(backend);
  }
}

std::vector<Backend*> UpstreamSet::takeDisconnected() { return std::exchange(disconnected_, {}); }

void UpstreamSet::prepareTls(const std::string& prefix) {
  for (Backend* b : std::exchange(tls_unprepared_, {})) {
    if (b->retired()) continue;
    std::string error;
    if (b->clientTls(prefix, error) == nullptr) {
      SM_ERROR("TLS to backend %s (%s): %s", b->addressText().c_str(), b->id().c_str(),
               error.c_str());
    }
  }
}

void UpstreamSet::collectRetired() {
  std::erase_if(retired_, [this](const std::unique_ptr<Backend>& b) {
    if (b->inFlight() != 0) return false;
    std::erase(disconnected_, b.get());  // not taken in time: nothing of ours uses it anyway
    std::erase(tls_unprepared_, b.get());
    return true;
  });
}

}  // namespace speedmimi::upstream
