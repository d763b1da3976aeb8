// Host names of backends added or moved over the API, resolved without blocking the control
// process (libevent's evdns, which also reads /etc/hosts). Numeric addresses need no lookup.
#pragma once

#include <event2/dns.h>

#include <functional>
#include <memory>
#include <string>

#include "core/zone_types.h"

namespace speedmimi::admin {

class Resolver {
 public:
  // `ok` false: `error` says why ("cannot resolve \"HOST\": REASON").
  using Done = std::function<void(bool ok, const core::BackendAddress& address,
                                  const std::string& error)>;

  explicit Resolver(event_base* base);
  ~Resolver();
  Resolver(const Resolver&) = delete;
  Resolver& operator=(const Resolver&) = delete;

  // Resolves host:port (TCP). `done` runs later, from the event loop, never inside this call;
  // it does not run once the resolver is destroyed.
  void resolve(const std::string& host, int port, Done done);

 private:
  struct Lookup;
  static void onResolved(int result, evutil_addrinfo* answer, void* arg);
  static void onDeferred(evutil_socket_t, short, void* arg);
  void finish(Lookup* lookup, bool ok, const core::BackendAddress& address,
              const std::string& error);

  event_base* base_;
  evdns_base* dns_ = nullptr;  // owned
  std::shared_ptr<bool> alive_ = std::make_shared<bool>(true);
};

}  // namespace speedmimi::admin
