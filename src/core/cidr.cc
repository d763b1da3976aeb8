// IP addresses and CIDR blocks. Parsing may allocate (configuration time); contains() and
// anyContains() do not (request path: real IP, admin allow list).
#include "core/cidr.h"

#include <arpa/inet.h>
#include <sys/socket.h>

#include <cstdio>
#include <cstring>

namespace speedmimi::core {
namespace {

// The 12-byte prefix ::ffff: of IPv4-mapped IPv6 addresses (RFC 4291 §2.5.5.2).
constexpr std::array<uint8_t, 12> kV4MappedPrefix = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
constexpr int kV4PrefixBits = 96;

IpAddress fromV4Bytes(const void* four_bytes) {
  IpAddress ip;
  std::memcpy(ip.bytes.data(), kV4MappedPrefix.data(), kV4MappedPrefix.size());
  std::memcpy(ip.bytes.data() + kV4MappedPrefix.size(), four_bytes, 4);
  return ip;
}

// RFC 5952 §4: lower-case hex without leading zeros; the longest run (the first of equal runs)
// of two or more zero groups becomes "::".
std::string formatV6(const std::array<uint8_t, 16>& bytes) {
  std::array<unsigned, 8> groups{};
  for (size_t i = 0; i < groups.size(); ++i) groups[i] = bytes[2 * i] << 8 | bytes[2 * i + 1];
  int best_start = -1, best_len = 1;
  for (int i = 0; i < 8;) {
    int j = i;
    while (j < 8 && groups[j] == 0) ++j;
    if (j - i > best_len) {
      best_start = i;
      best_len = j - i;
    }
    i = j == i ? i + 1 : j;
  }
  std::string out;
  char hex[8];
  for (int i = 0; i < 8; ++i) {
    if (i == best_start) {
      out += "::";
      i += best_len - 1;
      continue;
    }
    if (!out.empty() && out.back() != ':') out += ':';
    std::snprintf(hex, sizeof hex, "%x", groups[i]);
    out += hex;
  }
  return out;
}

// Decimal prefix length 0..max; nullopt for anything else ("", "+8", "08x", "129").
std::optional<int> parsePrefixLength(std::string_view text, int max) {
  if (text.empty() || text.size() > 3) return std::nullopt;
  int value = 0;
  for (char c : text) {
    if (c < '0' || c > '9') return std::nullopt;
    value = value * 10 + (c - '0');
  }
  if (value > max) return std::nullopt;
  return value;
}

// Clears every bit after the first `prefix` bits.
void maskTo(std::array<uint8_t, 16>& bytes, int prefix) {
  for (int i = 0; i < 16; ++i) {
    const int keep = prefix - 8 * i;  // bits of this byte that belong to the network
    if (keep >= 8) continue;
    bytes[i] &= keep <= 0 ? 0 : static_cast<uint8_t>(0xff << (8 - keep));
  }
}

}  // namespace

bool IpAddress::isV4() const {
  return std::memcmp(bytes.data(), kV4MappedPrefix.data(), kV4MappedPrefix.size()) == 0;
}

std::string IpAddress::toString() const {
  if (!isV4()) return formatV6(bytes);
  char text[INET_ADDRSTRLEN];
  // Cannot fail: AF_INET with a buffer of INET_ADDRSTRLEN.
  inet_ntop(AF_INET, bytes.data() + kV4MappedPrefix.size(), text, sizeof text);
  return text;
}

std::optional<IpAddress> IpAddress::parse(std::string_view text) {
  if (text.empty() || text.size() >= INET6_ADDRSTRLEN) return std::nullopt;
  char terminated[INET6_ADDRSTRLEN];  // inet_pton wants a C string; no allocation
  std::memcpy(terminated, text.data(), text.size());
  terminated[text.size()] = '\0';
  uint8_t buf[16];
  if (inet_pton(AF_INET, terminated, buf) == 1) return fromV4Bytes(buf);
  if (inet_pton(AF_INET6, terminated, buf) != 1) return std::nullopt;
  IpAddress ip;
  std::memcpy(ip.bytes.data(), buf, sizeof buf);
  return ip;
}

// Unknown families (and nullptr, e.g. a Unix socket peer) give the unspecified address "::".
IpAddress IpAddress::fromSockaddr(const sockaddr* sa) {
  if (sa != nullptr && sa->sa_family == AF_INET) {
    return fromV4Bytes(&reinterpret_cast<const sockaddr_in*>(sa)->sin_addr);
  }
  IpAddress ip;
  if (sa != nullptr && sa->sa_family == AF_INET6) {
    std::memcpy(ip.bytes.data(), &reinterpret_cast<const sockaddr_in6*>(sa)->sin6_addr, 16);
  }
  return ip;
}

bool Cidr::contains(const IpAddress& ip) const {
  const int full_bytes = prefix / 8;
  if (std::memcmp(ip.bytes.data(), network.bytes.data(), full_bytes) != 0) return false;
  const int rest = prefix % 8;
  if (rest == 0) return true;
  const uint8_t mask = static_cast<uint8_t>(0xff << (8 - rest));
  return (ip.bytes[full_bytes] & mask) == network.bytes[full_bytes];
}

std::string Cidr::toString() const {
  if (network.isV4() && prefix >= kV4PrefixBits) {
    return network.toString() + "/" + std::to_string(prefix - kV4PrefixBits);
  }
  return network.toString() + "/" + std::to_string(prefix);
}

// Host bits below the prefix are cleared ("10.0.0.1/8" is 10.0.0.0/8), as nginx does.
std::optional<Cidr> Cidr::parse(std::string_view text) {
  const size_t slash = text.find('/');
  const std::optional<IpAddress> address = IpAddress::parse(text.substr(0, slash));
  if (!address) return std::nullopt;
  // The prefix counts bits of the family as written: "a.b.c.d/n" is an IPv4 prefix.
  const bool written_as_v4 = text.substr(0, slash).find(':') == std::string_view::npos;
  const int offset = written_as_v4 ? kV4PrefixBits : 0;
  int prefix = 128;
  if (slash != std::string_view::npos) {
    const std::optional<int> length = parsePrefixLength(text.substr(slash + 1), 128 - offset);
    if (!length) return std::nullopt;
    prefix = *length + offset;
  }
  Cidr cidr{*address, prefix};
  maskTo(cidr.network.bytes, prefix);
  return cidr;
}

bool anyContains(const std::vector<Cidr>& blocks, const IpAddress& ip) {
  for (const Cidr& block : blocks) {
    if (block.contains(ip)) return true;
  }
  return false;
}

}  // namespace speedmimi::core
