// A worker's view of the upstreams of one configuration: every backend (with its resolved
// address and its runtime state in shared memory) and, for every route, the balancer of each
// protocol class.
#pragma once

#include <array>
#include <memory>
#include <string>
#include <vector>

#include "core/config_types.h"
#include "upstream/backend.h"
#include "upstream/balancer.h"

namespace speedmimi::upstream {

// Protocol classes of DESIGN §4, in the order of RouteBalancers::by_protocol.
enum class Protocol { kHttp = 0, kHttps = 1, kWebsocket = 2, kSse = 3 };
constexpr size_t kProtocolCount = 4;
const char* protocolName(Protocol p);

// Number of BackendState slots a configuration needs (one per backend, in config order).
size_t countBackends(const core::Config& config);

class UpstreamSet {
 public:
  // `states` has countBackends(config) slots shared by all workers; `random` outlives this.
  // Throws std::runtime_error when a backend host cannot be resolved.
  UpstreamSet(const core::Config& config, BackendState* states, Random& random);

  // The balancer for a route (index into config.routes) and protocol class.
  Balancer& balancer(size_t route, Protocol protocol) const {
    return *routes_[route].by_protocol[static_cast<size_t>(protocol)];
  }
  const std::vector<std::unique_ptr<Backend>>& backends() const { return backends_; }

 private:
  struct RouteBalancers {
    std::array<Balancer*, kProtocolCount> by_protocol{};
  };
  std::vector<std::unique_ptr<Backend>> backends_;   // every backend, config order
  std::vector<std::unique_ptr<Balancer>> balancers_;  // owned; RouteBalancers point in here
  std::vector<RouteBalancers> routes_;
};

}  // namespace speedmimi::upstream
