// Route selection (DESIGN §4). The entries are sorted once so that match() is a single scan
// that stops at the first hit: longer prefixes first, then host-specific routes, then config
// order (stable sort), which is exactly the precedence the header promises.
#include "http/router.h"

#include <algorithm>

#include "http/parser.h"

namespace speedmimi::http {
namespace {

// A host without its ":port" and without the brackets of an IPv6 literal, so "[::1]:8080",
// "[::1]" and "::1" compare equal, as do "example.com:8080" and "example.com". A bare IPv6
// literal has several colons and carries no port, so it is returned unchanged.
std::string_view bareHost(std::string_view host) {
  if (host.starts_with('[')) {
    const size_t close = host.find(']');
    return close == std::string_view::npos ? host : host.substr(1, close - 1);
  }
  const size_t colon = host.find(':');
  if (colon != std::string_view::npos && host.find(':', colon + 1) == std::string_view::npos) {
    return host.substr(0, colon);
  }
  return host;
}

}  // namespace

Router::Router(const std::vector<core::RouteConfig>& routes) {
  entries_.reserve(routes.size());
  for (size_t i = 0; i < routes.size(); ++i) {
    const std::string& host = routes[i].host;
    // A configured host that is only a port (":80") must not turn into "any host".
    std::string_view bare = bareHost(host);
    if (bare.empty()) bare = host;
    entries_.push_back({routes[i].path, bare, static_cast<int>(i)});
  }
  std::stable_sort(entries_.begin(), entries_.end(), [](const Entry& a, const Entry& b) {
    if (a.path.size() != b.path.size()) return a.path.size() > b.path.size();
    return !a.host.empty() && b.host.empty();
  });
}

int Router::match(std::string_view host, std::string_view path) const {
  const std::string_view request_host = bareHost(host);
  for (const Entry& entry : entries_) {
    if (!path.starts_with(entry.path)) continue;
    if (!entry.host.empty() && !equalsIgnoreCase(entry.host, request_host)) continue;
    return entry.index;
  }
  return -1;
}

}  // namespace speedmimi::http
