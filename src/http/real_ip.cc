// Real client address (DESIGN §4). Runs once per request: it only slices string views and
// matches CIDR blocks, so it allocates nothing beyond what IpAddress::parse needs.
#include "http/real_ip.h"

#include <optional>

#include "http/parser.h"

namespace speedmimi::http {
namespace {

constexpr std::string_view kXForwardedFor = "X-Forwarded-For";

std::string_view trimOws(std::string_view text) {
  while (!text.empty() && (text.front() == ' ' || text.front() == '\t')) text.remove_prefix(1);
  while (!text.empty() && (text.back() == ' ' || text.back() == '\t')) text.remove_suffix(1);
  return text;
}

bool isPort(std::string_view text) {
  if (text.empty() || text.size() > 5) return false;
  for (char c : text) {
    if (c < '0' || c > '9') return false;
  }
  return true;
}

// An address as proxies write it: "1.2.3.4", "2001:db8::1", "[2001:db8::1]", or either family
// with a port ("1.2.3.4:5678", "[2001:db8::1]:443"); the port is dropped. nullopt otherwise.
std::optional<core::IpAddress> parseForwardedAddress(std::string_view text) {
  text = trimOws(text);
  if (text.starts_with('[')) {
    const size_t close = text.find(']');
    if (close == std::string_view::npos) return std::nullopt;
    const std::string_view rest = text.substr(close + 1);
    if (!rest.empty() && !(rest.front() == ':' && isPort(rest.substr(1)))) return std::nullopt;
    return core::IpAddress::parse(text.substr(1, close - 1));
  }
  // One colon is IPv4 with a port; several are a bare IPv6 address, which carries no port.
  const size_t colon = text.find(':');
  if (colon != std::string_view::npos && text.find(':', colon + 1) == std::string_view::npos) {
    if (!isPort(text.substr(colon + 1))) return std::nullopt;
    text = text.substr(0, colon);
  }
  return core::IpAddress::parse(text);
}

enum class Walk {
  kFound,     // `candidate` is the first address (from the right) that is not trusted
  kStopped,   // an unparseable element: `candidate` is the last good address, if any
  kContinue,  // every element of this value was trusted (or empty): go on to the line before
};

// Walks one X-Forwarded-For value from the right. Every parsed address becomes `candidate`,
// so when all are trusted the leftmost one is what remains. Empty list elements are skipped
// (RFC 9110 §5.6.1 lets recipients ignore them).
Walk walkForwardedFor(std::string_view value, const std::vector<core::Cidr>& trusted,
                      std::optional<core::IpAddress>& candidate) {
  for (;;) {
    const size_t comma = value.rfind(',');
    const std::string_view element =
        trimOws(comma == std::string_view::npos ? value : value.substr(comma + 1));
    if (!element.empty()) {
      const std::optional<core::IpAddress> ip = parseForwardedAddress(element);
      if (!ip) return Walk::kStopped;
      candidate = *ip;
      if (!core::anyContains(trusted, *ip)) return Walk::kFound;
    }
    if (comma == std::string_view::npos) return Walk::kContinue;
    value = value.substr(0, comma);
  }
}

}  // namespace

core::IpAddress resolveRealIp(const core::IpAddress& peer, const Header* headers,
                              size_t num_headers, std::string_view real_ip_header,
                              const std::vector<core::Cidr>& trusted_proxies) {
  if (real_ip_header.empty() || !core::anyContains(trusted_proxies, peer)) return peer;

  if (!equalsIgnoreCase(real_ip_header, kXForwardedFor)) {
    const Header* header = findHeader(headers, num_headers, real_ip_header);
    if (header == nullptr) return peer;
    return parseForwardedAddress(header->value).value_or(peer);
  }

  // Several X-Forwarded-For lines form one list in order, so the walk runs over the lines from
  // the last one back to the first.
  std::optional<core::IpAddress> candidate;
  for (size_t i = num_headers; i-- > 0;) {
    if (!equalsIgnoreCase(headers[i].name, kXForwardedFor)) continue;
    if (walkForwardedFor(headers[i].value, trusted_proxies, candidate) != Walk::kContinue) break;
  }
  return candidate.value_or(peer);
}

}  // namespace speedmimi::http
