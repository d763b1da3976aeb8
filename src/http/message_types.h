// Plain types shared by the HTTP/1.x parser and its users. Views point into the caller's
// buffer and are valid only while those bytes are.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string_view>

namespace speedmimi::http {

struct Header {
  std::string_view name;
  std::string_view value;  // leading/trailing whitespace already trimmed
};

enum class ParseStatus { kComplete, kNeedMore, kError };

// Why a message was rejected: the HTTP status to answer with (400, 413, 414, 431, 501, 505...)
// and a short reason for the error log. `reason` points to a string literal.
struct ParseError {
  int status = 0;
  const char* reason = "";
};

enum class BodyFraming {
  kNone,           // no body (GET without CL/TE, 204, 304, HEAD response...)
  kContentLength,  // exactly content_length bytes
  kChunked,        // chunked transfer coding is final
  kUntilClose,     // response only: the body ends when the backend closes
};

struct RequestHead {
  std::string_view method;
  std::string_view target;  // as sent: origin-form, absolute-form, authority-form or "*"
  int minor_version = 1;    // HTTP/1.<minor_version>
  const Header* headers = nullptr;  // points into the caller's storage
  size_t num_headers = 0;
  size_t head_length = 0;  // bytes of the head, including the empty line
};

struct ResponseHead {
  int minor_version = 1;
  int status = 0;
  std::string_view reason;
  const Header* headers = nullptr;
  size_t num_headers = 0;
  size_t head_length = 0;
};

// What a request head means for the proxy, derived by analyzeRequest().
struct RequestInfo {
  BodyFraming framing = BodyFraming::kNone;
  uint64_t content_length = 0;
  bool keep_alive = true;         // the client wants the connection kept after this exchange
  bool upgrade_websocket = false; // "Upgrade: websocket" with "Connection: upgrade"
  bool expect_continue = false;   // "Expect: 100-continue"
  bool accepts_event_stream = false;  // Accept includes text/event-stream
  bool absolute_form = false;     // the target carried scheme://authority
  std::string_view host;          // authority from the absolute-form target, else the Host header
  std::string_view path;          // origin-form path and query ("/a?b"); "*" for OPTIONS *
};

// What a response head means, derived by analyzeResponse().
struct ResponseInfo {
  BodyFraming framing = BodyFraming::kNone;
  uint64_t content_length = 0;
  bool keep_alive = true;     // the backend will keep the connection after this response
  bool informational = false; // 1xx other than 101: another head follows
  bool switching = false;     // 101 to a requested upgrade: the connection becomes a tunnel
  bool event_stream = false;  // Content-Type: text/event-stream
};

}  // namespace speedmimi::http
