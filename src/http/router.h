// Route selection: the longest `path` prefix among routes whose `host` is empty or equals the
// request's host (case-insensitive, port ignored); on equal prefixes a route naming the host
// wins over one that does not. Built once per configuration; match() does not allocate.
#pragma once

#include <string_view>
#include <vector>

#include "core/config_types.h"

namespace speedmimi::http {

class Router {
 public:
  // Keeps views into `routes`: the vector and its strings must outlive the Router.
  explicit Router(const std::vector<core::RouteConfig>& routes);

  // Index into the routes given to the constructor, or -1 when no route matches (404).
  int match(std::string_view host, std::string_view path) const;

 private:
  struct Entry {
    std::string_view path;
    std::string_view host;
    int index;
  };
  std::vector<Entry> entries_;  // sorted: longer path first, then host-specific first
};

}  // namespace speedmimi::http
