#include "admin/resolver.h"

#include <event2/event.h>
#include <event2/util.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include <cstring>

#include "core/log.h"

namespace speedmimi::admin {

struct Resolver::Lookup {
  Resolver* owner;
  std::weak_ptr<bool> alive;
  std::string host;
  Done done;
  bool ok = false;
  core::BackendAddress address;
  std::string error;
};

Resolver::Resolver(event_base* base) : base_(base) {
  dns_ = evdns_base_new(base, EVDNS_BASE_INITIALIZE_NAMESERVERS |
                                  EVDNS_BASE_DISABLE_WHEN_INACTIVE);
  if (!dns_) {
    // No usable resolv.conf: names from /etc/hosts still resolve.
    SM_WARN("evdns cannot read the system's name servers; only /etc/hosts names resolve");
    dns_ = evdns_base_new(base, EVDNS_BASE_DISABLE_WHEN_INACTIVE);
    if (dns_) evdns_base_load_hosts(dns_, nullptr);
  }
  if (dns_) {
    evdns_base_set_option(dns_, "timeout:", "2");
    evdns_base_set_option(dns_, "attempts:", "2");
  }
}

Resolver::~Resolver() {
  *alive_ = false;
  if (dns_) evdns_base_free(dns_, 1);  // pending lookups are called back, and see !alive
}

void Resolver::resolve(const std::string& host, int port, Done done) {
  auto* lookup = new Lookup{this, alive_, host, std::move(done), false, {}, {}};
  evutil_addrinfo hints;
  std::memset(&hints, 0, sizeof(hints));
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_protocol = IPPROTO_TCP;
  std::string service = std::to_string(port);
  if (!dns_) {
    lookup->error = "cannot resolve \"" + host + "\": no resolver";
    finish(lookup, false, {}, lookup->error);
    return;
  }
  // May call back before returning (numeric addresses, /etc/hosts): onResolved defers.
  evdns_getaddrinfo(dns_, host.c_str(), service.c_str(), &hints, &Resolver::onResolved, lookup);
}

void Resolver::onResolved(int result, evutil_addrinfo* answer, void* arg) {
  auto* lookup = static_cast<Lookup*>(arg);
  bool ok = false;
  core::BackendAddress address;
  std::string error;
  if (result == 0 && answer && answer->ai_addrlen <= sizeof(address.storage)) {
    std::memcpy(&address.storage, answer->ai_addr, answer->ai_addrlen);
    address.length = static_cast<socklen_t>(answer->ai_addrlen);
    ok = true;
  } else {
    error = "cannot resolve \"" + lookup->host + "\": " +
            (result == 0 ? "no address" : evutil_gai_strerror(result));
  }
  if (answer) evutil_freeaddrinfo(answer);
  if (lookup->alive.expired() || !*lookup->alive.lock()) {
    delete lookup;
    return;
  }
  lookup->owner->finish(lookup, ok, address, error);
}

// Runs `done` from the loop, never from inside resolve().
void Resolver::finish(Lookup* lookup, bool ok, const core::BackendAddress& address,
                      const std::string& error) {
  lookup->ok = ok;
  lookup->address = address;
  lookup->error = error;
  timeval now{0, 0};
  if (event_base_once(base_, -1, EV_TIMEOUT, &Resolver::onDeferred, lookup, &now) != 0) {
    SM_ERROR("event_base_once() failed; answering a name lookup at once");
    onDeferred(-1, 0, lookup);
  }
}

void Resolver::onDeferred(evutil_socket_t, short, void* arg) {
  std::unique_ptr<Lookup> lookup(static_cast<Lookup*>(arg));
  auto alive = lookup->alive.lock();
  if (!alive || !*alive) return;
  lookup->done(lookup->ok, lookup->address, lookup->error);
}

}  // namespace speedmimi::admin
