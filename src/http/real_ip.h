// The real client address (DESIGN §4): the TCP peer, unless the peer is a trusted proxy, in which
// case `real_ip_header` is believed. For X-Forwarded-For the list is walked from the right and the
// first address that is not itself a trusted proxy is taken.
#pragma once

#include <string_view>
#include <vector>

#include "core/cidr.h"
#include "http/message_types.h"

namespace speedmimi::http {

core::IpAddress resolveRealIp(const core::IpAddress& peer, const Header* headers,
                              size_t num_headers, std::string_view real_ip_header,
                              const std::vector<core::Cidr>& trusted_proxies);

}  // namespace speedmimi::http
