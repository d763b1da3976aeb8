// A worker's view of the upstreams: every live backend of the shared zone (its configuration,
// resolved address and runtime state) and, for every route, the balancer of each protocol class.
// The view follows the zone: refresh() rebuilds it when the zone's generation moved.
#pragma once

#include <array>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "core/config_types.h"
#include "core/zone.h"
#include "upstream/backend.h"
#include "upstream/balancer.h"
#include "upstream/connection_pool.h"
#include "upstream/retry_budget.h"

namespace speedmimi::upstream {

// Protocol classes of DESIGN §4, in the order of RouteBalancers::by_protocol.
enum class Protocol { kHttp = 0, kHttps = 1, kWebsocket = 2, kSse = 3 };
constexpr size_t kProtocolCount = 4;
const char* protocolName(Protocol p);

class UpstreamSet {
 public:
  // `config` (routes), `zone`, `random` and `pool` outlive the set. `worker` is this worker's slot
  // in the zone, where it publishes the generation it applied and its share of each backend's
  // connections (-1: none, for tests). Throws std::runtime_error when a route names an unknown
  // balancer (validated configs never do).
  UpstreamSet(const core::Config& config, core::Zone& zone, Random& random, ConnectionPool& pool,
              int worker);

  // Brings the view to the zone's current generation if it moved: one acquire load otherwise.
  // A backend that left the zone is retired, never freed here: the request path calls this
  // while it may still read a backend it has just released (collectRetired frees them).
  void refresh() {
    if (zone_.generation() != generation_) rebuild();
  }

  // The balancer for a route (index into config.routes) and protocol class.
  Balancer& balancer(size_t route, Protocol protocol) const {
    return *routes_[route].by_protocol[static_cast<size_t>(protocol)];
  }

  // The retry budget of the route's upstream on this worker; routes to the same upstream share
  // it. Valid as long as the set.
  RetryBudget& retryBudget(size_t route) const { return *routes_[route].budget; }

  // Every backend of the view (live ones), in slot order.
  std::vector<Backend*> backends() const;

  // Backends disconnected (core::Zone::disconnectBackend) since the last call: each one whose
  // disconnect epoch moved since this view last looked, found by a rebuild (refresh(), which
  // also closed its idle pooled connections). The caller closes this worker's tunnels and event
  // streams to them. Each backend once however many disconnects were seen, and also when it has
  // been re-activated or removed since. The pointers stay valid until collectRetired(); call it
  // from the worker's tick, outside every exchange's callbacks, before collectRetired().
  std::vector<Backend*> takeDisconnected();

  // Makes the TLS context of each https backend that is new to the view or whose transport
  // changed (tls_verify, ca_file) since the last call, with ca_file under `prefix`: the CA
  // bundle is read here, once per change, not by the next request to it. One that does not
  // load is logged (its requests then answer 502, Backend::clientTls). From the worker's tick
  // or zone wake-up, outside every exchange's callbacks, before collectRetired().
  void prepareTls(const std::string& prefix);

  // Frees removed backends that no exchange of this worker uses any more. Only from the
  // worker's tick, outside every exchange's callbacks.
  void collectRetired();
  // Removed backends not freed yet (for tests and statistics).
  size_t retiredCount() const { return retired_.size(); }

 private:
  struct Entry {
    uint64_t incarnation = 0;
    uint64_t disconnect_epoch = 0;  // BackendState::disconnect_epoch when last looked at
    std::string upstream;
    std::unique_ptr<Backend> backend;
  };
  struct RouteBalancers {
    std::array<Balancer*, kProtocolCount> by_protocol{};
    RetryBudget* budget = nullptr;  // in budgets_
  };

  void rebuild();
  void retire(std::unique_ptr<Backend> backend);
  // Compares the backend's disconnect epoch with what `entry` saw; when it moved, closes its
  // idle connections and reports it (takeDisconnected).
  void checkDisconnect(Entry& entry);

  const core::Config& config_;
  core::Zone& zone_;
  ConnectionPool& pool_;
  int worker_;
  uint64_t generation_ = 0;
  std::map<size_t, Entry> entries_;                  // slot index -> backend
  std::vector<std::unique_ptr<Backend>> retired_;    // removed, maybe still in use
  std::vector<Backend*> disconnected_;               // see takeDisconnected; no duplicates
  std::vector<Backend*> tls_unprepared_;             // see prepareTls
  std::vector<std::unique_ptr<Balancer>> balancers_;  // owned; RouteBalancers point in here
  std::vector<RouteBalancers> routes_;
  std::map<std::string, RetryBudget> budgets_;  // upstream name -> budget; nodes never move
};

}  // namespace speedmimi::upstream
