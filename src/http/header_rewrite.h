// Building the heads SpeedMimi sends: the request to a backend and the response to a client.
// The request head goes into a std::string the exchange keeps (for retries); the response head
// can be written straight into space reserved in the client's output buffer (HeadWriter).
// Neither allocates in the steady state.
#pragma once

#include <cstring>
#include <string>
#include <string_view>

#include "http/message_types.h"

namespace speedmimi::http {

struct ForwardContext {
  std::string_view peer_ip;  // TCP peer, appended to X-Forwarded-For
  std::string_view real_ip;  // resolved real client IP, sent as X-Real-IP
  bool tls = false;          // X-Forwarded-Proto: https / http
  bool tunnel = false;       // keep "Upgrade" and send "Connection: upgrade"
};

// Request head for the backend: "METHOD origin-target HTTP/1.1", Host (regenerated from an
// absolute-form target), the client's fields minus hop-by-hop ones (Connection and every field
// it names, Keep-Alive, Proxy-Connection, TE except "trailers", Trailer, Upgrade unless
// tunnelling, Content-Length and Transfer-Encoding), then the one framing header of `info`,
// X-Forwarded-For (appended), X-Real-IP, X-Forwarded-Proto, X-Forwarded-Host.
void appendUpstreamRequestHead(const RequestHead& head, const RequestInfo& info,
                               const ForwardContext& ctx, std::string& out);

// Writes into a caller's buffer of fixed capacity and never past it: what does not fit is
// dropped and overflowed() says so.
class HeadWriter {
 public:
  HeadWriter(char* data, size_t capacity) : data_(data), capacity_(capacity) {}
  HeadWriter& append(std::string_view s) {
    if (s.size() > capacity_ - size_) {
      overflowed_ = true;
      return *this;
    }
    std::memcpy(data_ + size_, s.data(), s.size());
    size_ += s.size();
    return *this;
  }
  HeadWriter& append(const char* first, const char* last) {
    return append(std::string_view(first, static_cast<size_t>(last - first)));
  }
  size_t size() const { return size_; }
  bool overflowed() const { return overflowed_; }

 private:
  char* data_;
  size_t capacity_;
  size_t size_ = 0;
  bool overflowed_ = false;
};

struct ClientResponseContext {
  int client_minor_version = 1;  // the request's HTTP/1.x version
  bool keep_alive = true;        // the connection stays open after this response
  bool send_body = true;         // false for HEAD requests: framing headers kept, no body
};

// Response head for the client: "HTTP/1.1 STATUS REASON", the backend's fields minus hop-by-hop
// ones and framing, then the framing of `info` (Content-Length or Transfer-Encoding: chunked),
// and Connection: close / keep-alive as needed. For 101 the Upgrade and Connection: upgrade
// fields are kept.
void appendClientResponseHead(const ResponseHead& head, const ResponseInfo& info,
                              const ClientResponseContext& ctx, std::string& out);
// The same into `out`; false if it did not fit. It always fits in clientResponseHeadBound(head)
// bytes.
bool writeClientResponseHead(const ResponseHead& head, const ResponseInfo& info,
                             const ClientResponseContext& ctx, HeadWriter& out);
size_t clientResponseHeadBound(const ResponseHead& head);

}  // namespace speedmimi::http
