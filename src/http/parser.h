// Strict, incremental, zero-copy HTTP/1.x head parsing (RFC 9110/9112, DESIGN §8).
//
// Each parse function is a pure function over a byte span: it returns kComplete (head filled,
// head_length bytes consumed), kNeedMore (the bytes so far are a valid prefix within the limits;
// call again with more) or kError (error filled). Nothing is allocated: headers are written into
// the caller's storage and point into `input`. Feeding a message whole or in any split gives the
// same result.
#pragma once

#include <span>
#include <string_view>

#include "http/message_types.h"

namespace speedmimi::http {

struct HeadLimits {
  size_t max_request_line = 8 * 1024;  // longer request line -> 414
  size_t max_head_size = 16 * 1024;    // longer head -> 431 (responses: 502 by the caller)
  size_t max_headers = 100;            // more fields -> 431; never more than storage.size()
};

ParseStatus parseRequestHead(std::string_view input, const HeadLimits& limits,
                             std::span<Header> storage, RequestHead& head, ParseError& error);

ParseStatus parseResponseHead(std::string_view input, const HeadLimits& limits,
                              std::span<Header> storage, ResponseHead& head, ParseError& error);

// Semantic checks and framing of a complete request head (Content-Length / Transfer-Encoding
// rules, Host rules, Connection, Upgrade, Expect). Returns false with `error` filled
// (400, 417, 501, 505...). `max_body_size` 0 means unlimited; a larger Content-Length is 413.
bool analyzeRequest(const RequestHead& head, uint64_t max_body_size, RequestInfo& info,
                    ParseError& error);

// Semantic checks and framing of a complete response head. `request_method` and
// `upgrade_requested` come from the request it answers (HEAD, CONNECT and 101 rules).
// Returns false with `error` filled (the caller answers 502).
bool analyzeResponse(const ResponseHead& head, std::string_view request_method,
                     bool upgrade_requested, ResponseInfo& info, ParseError& error);

// Case-insensitive ASCII comparison of header names and tokens.
bool equalsIgnoreCase(std::string_view a, std::string_view b);

// Finds the first header named `name` (case-insensitive); nullptr when absent.
const Header* findHeader(const Header* headers, size_t count, std::string_view name);

}  // namespace speedmimi::http
