// Heads sent by the proxy (DESIGN §4). These run for every request and response, so they only
// append string views and numbers to the caller's reused buffer: no per-field allocation, no
// streams. Field names and values are copied exactly as received.
#include "http/header_rewrite.h"

#include <array>
#include <charconv>
#include <cstdint>

#include "http/field_list.h"
#include "http/parser.h"

namespace speedmimi::http {
namespace {

// The fields the rewriting treats specially; everything else is kOther.
enum class Field {
  kOther,
  kHost,
  kConnection,
  kKeepAlive,
  kProxyConnection,
  kTe,
  kTrailer,
  kUpgrade,
  kTransferEncoding,
  kContentLength,
  kXForwardedFor,
  kXRealIp,
  kXForwardedProto,
  kXForwardedHost,
};

// Switches on the name's length first, so a typical field costs one switch and at most two
// comparisons of equal-length strings.
Field classify(std::string_view name) {
  const auto is = [name](std::string_view known) { return equalsIgnoreCase(name, known); };
  switch (name.size()) {
    case 2:
      return is("TE") ? Field::kTe : Field::kOther;
    case 4:
      return is("Host") ? Field::kHost : Field::kOther;
    case 7:
      if (is("Trailer")) return Field::kTrailer;
      return is("Upgrade") ? Field::kUpgrade : Field::kOther;
    case 9:
      return is("X-Real-IP") ? Field::kXRealIp : Field::kOther;
    case 10:
      if (is("Connection")) return Field::kConnection;
      return is("Keep-Alive") ? Field::kKeepAlive : Field::kOther;
    case 14:
      return is("Content-Length") ? Field::kContentLength : Field::kOther;
    case 15:
      return is("X-Forwarded-For") ? Field::kXForwardedFor : Field::kOther;
    case 16:
      if (is("Proxy-Connection")) return Field::kProxyConnection;
      return is("X-Forwarded-Host") ? Field::kXForwardedHost : Field::kOther;
    case 17:
      if (is("Transfer-Encoding")) return Field::kTransferEncoding;
      return is("X-Forwarded-Proto") ? Field::kXForwardedProto : Field::kOther;
    default:
      return Field::kOther;
  }
}

// True when the comma-separated `list` holds `token` (case-insensitive).
bool listContains(std::string_view list, std::string_view token) {
  ListElements elements(list);
  std::string_view element;
  while (elements.next(element)) {
    if (equalsIgnoreCase(element, token)) return true;
  }
  return false;
}

// The fields of one head, with what a first pass learned about them. The pass gathers the
// options of every Connection field (RFC 9110 §7.6.1: the fields they name are hop-by-hop), so
// that testing a field costs a few comparisons instead of a rescan of the head. Clients name
// one to three options; a head naming more than kMaxOptions keeps the first ones and sets
// `options_overflow`, and nominated() then also reads the Connection values again.
// `options` views the caller's header values: nothing is allocated.
struct Fields {
  static constexpr size_t kMaxOptions = 16;

  const Header* headers;
  size_t count;
  bool has_host = false;
  std::array<std::string_view, kMaxOptions> options;
  size_t num_options = 0;
  bool options_overflow = false;

  Fields(const Header* h, size_t n) : headers(h), count(n) {
    for (size_t i = 0; i < n; ++i) {
      const Field field = classify(h[i].name);
      if (field == Field::kConnection) addOptions(h[i].value);
      has_host |= field == Field::kHost;
    }
  }

  void addOptions(std::string_view list) {
    ListElements elements(list);
    std::string_view element;
    while (!options_overflow && elements.next(element)) {
      if (num_options == kMaxOptions) {
        options_overflow = true;
      } else {
        options[num_options++] = element;
      }
    }
  }

  bool nominated(std::string_view name) const {
    for (size_t i = 0; i < num_options; ++i) {
      if (equalsIgnoreCase(options[i], name)) return true;
    }
    return options_overflow && nominatedBeyondOptions(name);
  }

  // The slow path for a head with more options than `options` holds: every Connection value.
  // Cold, so that nominated() stays small enough to inline.
  [[gnu::cold]] bool nominatedBeyondOptions(std::string_view name) const {
    for (size_t i = 0; i < count; ++i) {
      if (classify(headers[i].name) == Field::kConnection && listContains(headers[i].value, name)) {
        return true;
      }
    }
    return false;
  }
};

template <typename Out>
void appendField(Out& out, std::string_view name, std::string_view value) {
  out.append(name).append(": ").append(value).append("\r\n");
}

template <typename Out>
void appendDecimal(Out& out, uint64_t value) {
  char digits[24];
  const std::to_chars_result end = std::to_chars(digits, digits + sizeof digits, value);
  out.append(digits, end.ptr);
}

template <typename Out>
void appendContentLength(Out& out, uint64_t length) {
  out.append("Content-Length: ");
  appendDecimal(out, length);
  out.append("\r\n");
}

// Request fields copied to the backend. Host, TE: trailers and (when tunnelling) Upgrade are
// end-to-end by rule and survive even if a Connection field names them; the forwarding
// fields are dropped here because they are written afresh after the client's fields.
bool keepRequestField(const Header& header, const Fields& fields, bool regenerate_host,
                      bool tunnel) {
  switch (classify(header.name)) {
    case Field::kHost:
      return !regenerate_host;
    case Field::kTe:
      return equalsIgnoreCase(header.value, "trailers");
    case Field::kUpgrade:
      return tunnel;
    case Field::kOther:
      return !fields.nominated(header.name);
    default:
      return false;
  }
}

// "X-Forwarded-For: <the client's list>, <peer>", every client line joined in order.
void appendForwardedFor(std::string& out, const Fields& fields, std::string_view peer_ip) {
  out.append("X-Forwarded-For: ");
  if (!fields.nominated("X-Forwarded-For")) {
    for (size_t i = 0; i < fields.count; ++i) {
      const Header& header = fields.headers[i];
      if (classify(header.name) != Field::kXForwardedFor) continue;
      const std::string_view value = trimOws(header.value);
      if (value.empty()) continue;
      out.append(value).append(", ");
    }
  }
  out.append(peer_ip).append("\r\n");
}

void appendRequestFraming(std::string& out, const RequestInfo& info) {
  if (info.framing == BodyFraming::kContentLength) {
    appendContentLength(out, info.content_length);
  } else if (info.framing == BodyFraming::kChunked) {
    appendField(out, "Transfer-Encoding", "chunked");
  }
}

// Response fields copied to the client: hop-by-hop and framing fields go, except Upgrade on a
// switch to a tunnel (the backend's own "Connection: upgrade" names it).
bool keepResponseField(const Header& header, const Fields& fields, bool switching) {
  switch (classify(header.name)) {
    case Field::kConnection:
    case Field::kKeepAlive:
    case Field::kProxyConnection:
    case Field::kTe:
    case Field::kTrailer:
    case Field::kTransferEncoding:
    case Field::kContentLength:
      return false;
    case Field::kUpgrade:
      return switching;
    default:
      return !fields.nominated(header.name);
  }
}

bool bodyless(int status) {
  return status < 200 || status == 204 || status == 304;
}

// 1xx, 204 and 304 carry no framing. A HEAD response repeats the backend's Content-Length,
// which describes the body a GET would have had. Chunked cannot be sent to an HTTP/1.0
// client; the session then streams until close (and has cleared keep_alive).
template <typename Out>
void appendResponseFraming(Out& out, const ResponseHead& head, const ResponseInfo& info,
                           const ClientResponseContext& ctx) {
  if (bodyless(head.status)) return;
  if (!ctx.send_body) {
    const Header* length = findHeader(head.headers, head.num_headers, "Content-Length");
    if (length != nullptr) appendField(out, "Content-Length", length->value);
    return;
  }
  if (info.framing == BodyFraming::kContentLength) {
    appendContentLength(out, info.content_length);
  } else if (info.framing == BodyFraming::kChunked && ctx.client_minor_version >= 1) {
    appendField(out, "Transfer-Encoding", "chunked");
  }
}

template <typename Out>
void appendResponseConnection(Out& out, const ResponseHead& head, const ResponseInfo& info,
                              const ClientResponseContext& ctx) {
  if (info.switching) {
    appendField(out, "Connection", "upgrade");
  } else if (head.status < 200) {
    return;  // another head follows; it carries the connection's fate
  } else if (!ctx.keep_alive) {
    appendField(out, "Connection", "close");
  } else if (ctx.client_minor_version == 0) {
    appendField(out, "Connection", "keep-alive");
  }
}

}  // namespace

void appendUpstreamRequestHead(const RequestHead& head, const RequestInfo& info,
                               const ForwardContext& ctx, std::string& out) {
  const Fields fields(head.headers, head.num_headers);
  out.reserve(out.size() + head.head_length + info.host.size() * 2 + ctx.peer_ip.size() +
              ctx.real_ip.size() + 192);

  out.append(head.method).append(" ");
  out.append(info.absolute_form ? info.path : head.target).append(" HTTP/1.1\r\n");
  // HTTP/1.1 requires Host: it comes from an absolute-form target, or is written (possibly
  // empty, RFC 9112 §3.2) for an HTTP/1.0 client that sent none.
  const bool regenerate_host = info.absolute_form || !fields.has_host;
  if (regenerate_host) appendField(out, "Host", info.host);
  for (size_t i = 0; i < head.num_headers; ++i) {
    const Header& header = head.headers[i];
    if (keepRequestField(header, fields, regenerate_host, ctx.tunnel)) {
      appendField(out, header.name, header.value);
    }
  }
  appendRequestFraming(out, info);
  if (ctx.tunnel) appendField(out, "Connection", "upgrade");
  appendForwardedFor(out, fields, ctx.peer_ip);
  appendField(out, "X-Real-IP", ctx.real_ip);
  appendField(out, "X-Forwarded-Proto", ctx.tls ? "https" : "http");
  if (!info.host.empty()) appendField(out, "X-Forwarded-Host", info.host);
  out.append("\r\n");
}

namespace {

template <typename Out>
void writeResponseHead(const ResponseHead& head, const ResponseInfo& info,
                       const ClientResponseContext& ctx, Out& out) {
  const Fields fields(head.headers, head.num_headers);

  // The reason phrase is passed on as received; an empty one leaves "HTTP/1.1 204 " which
  // RFC 9112 §4 allows.
  out.append("HTTP/1.1 ");
  appendDecimal(out, static_cast<uint64_t>(head.status));
  out.append(" ").append(head.reason).append("\r\n");
  for (size_t i = 0; i < head.num_headers; ++i) {
    const Header& header = head.headers[i];
    if (keepResponseField(header, fields, info.switching)) {
      appendField(out, header.name, header.value);
    }
  }
  appendResponseFraming(out, head, info, ctx);
  appendResponseConnection(out, head, info, ctx);
  out.append("\r\n");
}

}  // namespace

// The status line and every field come out at most a few bytes longer than they came in
// ("name: value\r\n" for a received "name:value\n"), and the proxy adds at most a framing
// field (Content-Length with 20 digits, 38 bytes) and a Connection field (24 bytes).
size_t clientResponseHeadBound(const ResponseHead& head) {
  return head.head_length + 3 * (head.num_headers + 1) + 128;
}

void appendClientResponseHead(const ResponseHead& head, const ResponseInfo& info,
                              const ClientResponseContext& ctx, std::string& out) {
  out.reserve(out.size() + clientResponseHeadBound(head));
  writeResponseHead(head, info, ctx, out);
}

bool writeClientResponseHead(const ResponseHead& head, const ResponseInfo& info,
                             const ClientResponseContext& ctx, HeadWriter& out) {
  writeResponseHead(head, info, ctx, out);
  return !out.overflowed();
}

}  // namespace speedmimi::http
