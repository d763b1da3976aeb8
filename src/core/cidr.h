// IPv4/IPv6 addresses and CIDR blocks: parsing and matching, no allocation when matching.
#pragma once

#include <netinet/in.h>

#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace speedmimi::core {

// An IP address in a family-independent form. IPv4 is stored as IPv4-mapped IPv6
// (::ffff:a.b.c.d), so one comparison serves both families.
struct IpAddress {
  std::array<uint8_t, 16> bytes{};

  bool isV4() const;
  std::string toString() const;  // dotted quad for IPv4, RFC 5952 text for IPv6
  bool operator==(const IpAddress&) const = default;

  // Text form ("10.0.0.1", "::1", "::ffff:10.0.0.1"); nullopt when it is not an address.
  static std::optional<IpAddress> parse(std::string_view text);
  static IpAddress fromSockaddr(const sockaddr* sa);
};

struct Cidr {
  IpAddress network;  // masked
  int prefix = 0;     // in IPv6 bits (an IPv4 /8 is stored as /104)

  bool contains(const IpAddress& ip) const;
  std::string toString() const;  // as written by the user, e.g. "10.0.0.0/8"

  // "10.0.0.0/8", "::1/128", or a bare address (a /32 or /128). nullopt when malformed.
  static std::optional<Cidr> parse(std::string_view text);
};

bool anyContains(const std::vector<Cidr>& blocks, const IpAddress& ip);

}  // namespace speedmimi::core
