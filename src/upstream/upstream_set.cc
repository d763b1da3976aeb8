#include "upstream/upstream_set.h"

#include <map>
#include <stdexcept>

namespace speedmimi::upstream {

const char* protocolName(Protocol p) {
  static const char* const kNames[] = {"http", "https", "websocket", "sse"};
  return kNames[static_cast<size_t>(p)];
}

size_t countBackends(const core::Config& config) {
  size_t n = 0;
  for (const auto& [name, list] : config.backends) n += list.size();
  return n;
}

UpstreamSet::UpstreamSet(const core::Config& config, BackendState* states, Random& random) {
  std::map<std::string, std::vector<Backend*>> by_upstream;
  size_t slot = 0;
  for (const auto& [name, list] : config.backends) {
    auto& members = by_upstream[name];
    for (const auto& bc : list) {
      auto backend = std::make_unique<Backend>(bc, &states[slot++]);
      if (!backend->resolve()) {
        throw std::runtime_error("cannot resolve backend " + bc.id + " host \"" + bc.host +
                                 "\" in upstream " + name);
      }
      members.push_back(backend.get());
      backends_.push_back(std::move(backend));
    }
  }
  for (const auto& route : config.routes) {
    RouteBalancers rb;
    const std::vector<Backend*>& members = by_upstream[route.upstream];
    for (size_t p = 0; p < kProtocolCount; ++p) {
      auto it = route.protocols.find(protocolName(static_cast<Protocol>(p)));
      const std::string& algo = it != route.protocols.end() ? it->second : route.load_balancer;
      auto balancer = makeBalancer(algo, random);
      if (!balancer) throw std::runtime_error("unknown load balancer \"" + algo + "\"");
      balancer->reset(members);
      rb.by_protocol[p] = balancer.get();
      balancers_.push_back(std::move(balancer));
    }
    routes_.push_back(rb);
  }
}

}  // namespace speedmimi::upstream
