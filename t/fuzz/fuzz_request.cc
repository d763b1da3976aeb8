// libFuzzer target: parseRequestHead() + analyzeRequest().
//
// Control bytes (see fuzz_common.h): options bit 0 selects small limits so that the 414/431
// paths are reachable with short inputs, bit 1 a header storage smaller than max_headers, bit 2 a
// max_body_size; the split byte picks the prefix that is parsed besides the whole message.
//
// Properties: a complete head lies inside the input, ends with CRLF CRLF, holds no bare CR or LF
// and only views into itself; every error has a status of the DESIGN §4 table and a reason; a
// prefix of the message parses to "need more" or to the very result of the whole message; an
// accepted request has exactly one, unambiguous framing that agrees with its fields.
#include <array>

#include "fuzz_common.h"
#include "http/parser.h"

namespace speedmimi::fuzz {
namespace {

using http::BodyFraming;
using http::Header;
using http::HeadLimits;
using http::ParseError;
using http::ParseStatus;
using http::RequestHead;
using http::RequestInfo;

constexpr size_t kStorage = 100;
constexpr size_t kSmallStorage = 4;
// Small enough that the 414 and 431 paths are reached by inputs of a few hundred bytes.
constexpr HeadLimits kSmallLimits = {
    .max_request_line = 64, .max_head_size = 256, .max_headers = 6};

struct Options {
  HeadLimits limits;
  size_t storage = kStorage;
  uint64_t max_body_size = 0;
};

Options decodeOptions(uint8_t bits) {
  Options o;
  if (bits & 1) o.limits = kSmallLimits;
  if (bits & 2) o.storage = kSmallStorage;
  if (bits & 4) o.max_body_size = 1000;
  return o;
}

struct Result {
  ParseStatus status = ParseStatus::kNeedMore;
  RequestHead head;
  ParseError error;
  std::array<Header, kStorage> storage;
};

void parse(std::string_view input, const Options& o, Result& r) {
  r.status = http::parseRequestHead(input, o.limits, std::span<Header>(r.storage.data(), o.storage),
                                    r.head, r.error);
}

bool isParseErrorStatus(int status) {
  return status == 400 || status == 414 || status == 431 || status == 505;
}

bool isAnalyzeErrorStatus(int status) {
  return status == 400 || status == 413 || status == 417 || status == 501;
}

void checkCompleteHead(const Result& r, std::string_view input, const Options& o) {
  const RequestHead& h = r.head;
  FUZZ_CHECK(h.head_length >= 4 && h.head_length <= input.size());
  FUZZ_CHECK(h.head_length <= o.limits.max_head_size);
  const std::string_view head = input.substr(0, h.head_length);
  FUZZ_CHECK(head.substr(head.size() - 4) == "\r\n\r\n");
  FUZZ_CHECK(onlyCrlfLineEnds(head));
  FUZZ_CHECK(h.minor_version == 0 || h.minor_version == 1);
  FUZZ_CHECK(isToken(h.method) && inside(h.method, head));
  FUZZ_CHECK(!h.target.empty() && inside(h.target, head));
  for (char c : h.target) FUZZ_CHECK(static_cast<unsigned char>(c) > 0x20 && c != 0x7f);
  // The request line (after optional empty lines) respects its limit.
  size_t line_start = 0;
  while (head.substr(line_start, 2) == "\r\n") line_start += 2;
  FUZZ_CHECK(head.find('\r', line_start) - line_start <= o.limits.max_request_line);
  FUZZ_CHECK(h.headers == r.storage.data());
  FUZZ_CHECK(h.num_headers <= std::min(o.limits.max_headers, o.storage));
  for (size_t i = 0; i < h.num_headers; ++i) {
    FUZZ_CHECK(isToken(h.headers[i].name) && inside(h.headers[i].name, head));
    FUZZ_CHECK(isCleanValue(h.headers[i].value) && inside(h.headers[i].value, head));
  }
}

void checkAccepted(const Result& r, std::string_view input, const Options& o,
                   const RequestInfo& info) {
  const RequestHead& h = r.head;
  const size_t cl = countFields(h, "Content-Length");
  const size_t te = countFields(h, "Transfer-Encoding");
  FUZZ_CHECK(cl == 0 || te == 0);  // never two framings
  switch (info.framing) {
    case BodyFraming::kNone:
      FUZZ_CHECK(cl == 0 && te == 0);
      break;
    case BodyFraming::kContentLength:
      FUZZ_CHECK(cl > 0);
      FUZZ_CHECK(info.content_length <= static_cast<uint64_t>(INT64_MAX));
      FUZZ_CHECK(o.max_body_size == 0 || info.content_length <= o.max_body_size);
      break;
    case BodyFraming::kChunked:
      FUZZ_CHECK(te > 0 && h.minor_version == 1);
      break;
    case BodyFraming::kUntilClose:
      checkFailed("a request body delimited by the close", __FILE__, __LINE__);
  }
  FUZZ_CHECK(countFields(h, "Host") <= 1);
  if (h.minor_version == 1) FUZZ_CHECK(countFields(h, "Host") == 1 && !info.host.empty());
  FUZZ_CHECK(info.host.empty() || inside(info.host, input));
  if (info.absolute_form) {
    FUZZ_CHECK(inside(info.host, h.target) && !info.host.empty());
    FUZZ_CHECK(info.path == "/" || inside(info.path, h.target));
  } else {
    FUZZ_CHECK(info.path.data() == h.target.data() && info.path == h.target);
  }
  FUZZ_CHECK(info.path == "*" || (!info.path.empty() && info.path.front() == '/'));
  if (info.path == "*") FUZZ_CHECK(h.method == "OPTIONS");
  FUZZ_CHECK(h.method != "CONNECT");
}

void checkWhole(const Result& r, std::string_view input, const Options& o) {
  if (r.status == ParseStatus::kError) {
    FUZZ_CHECK(isParseErrorStatus(r.error.status));
    FUZZ_CHECK(r.error.reason != nullptr && r.error.reason[0] != '\0');
    return;
  }
  if (r.status == ParseStatus::kNeedMore) {
    FUZZ_CHECK(input.size() <= o.limits.max_head_size);
    return;
  }
  checkCompleteHead(r, input, o);
  RequestInfo info;
  ParseError error;
  if (http::analyzeRequest(r.head, o.max_body_size, info, error)) {
    checkAccepted(r, input, o, info);
  } else {
    FUZZ_CHECK(isAnalyzeErrorStatus(error.status));
    FUZZ_CHECK(error.reason != nullptr && error.reason[0] != '\0');
  }
}

// The prefix `p` (a copy of the first bytes of `w`'s input) agrees with the whole message.
void checkPrefix(const Result& w, std::string_view whole, const Result& p,
                 std::string_view prefix) {
  switch (w.status) {
    case ParseStatus::kNeedMore:
      FUZZ_CHECK(p.status == ParseStatus::kNeedMore);
      return;
    case ParseStatus::kError:
      FUZZ_CHECK(p.status == ParseStatus::kNeedMore || p.status == ParseStatus::kError);
      if (p.status == ParseStatus::kError) {
        FUZZ_CHECK(p.error.status == w.error.status && sameText(p.error.reason, w.error.reason));
      }
      return;
    case ParseStatus::kComplete:
      break;
  }
  if (prefix.size() < w.head.head_length) {
    FUZZ_CHECK(p.status == ParseStatus::kNeedMore);
    return;
  }
  FUZZ_CHECK(p.status == ParseStatus::kComplete);
  FUZZ_CHECK(p.head.head_length == w.head.head_length);
  FUZZ_CHECK(p.head.minor_version == w.head.minor_version);
  FUZZ_CHECK(sameSpan(p.head.method, prefix, w.head.method, whole));
  FUZZ_CHECK(sameSpan(p.head.target, prefix, w.head.target, whole));
  FUZZ_CHECK(p.head.num_headers == w.head.num_headers);
  for (size_t i = 0; i < w.head.num_headers; ++i) {
    FUZZ_CHECK(sameSpan(p.head.headers[i].name, prefix, w.head.headers[i].name, whole));
    FUZZ_CHECK(sameSpan(p.head.headers[i].value, prefix, w.head.headers[i].value, whole));
  }
}

}  // namespace
}  // namespace speedmimi::fuzz

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace speedmimi::fuzz;
  const Input in = splitInput(data, size);
  const Options options = decodeOptions(in.options);
  const ExactCopy whole(in.message);
  const ExactCopy prefix(in.message.substr(0, splitPoint(in.split, in.message.size())));

  Result w;
  Result p;
  parse(whole.view(), options, w);
  checkWhole(w, whole.view(), options);
  parse(prefix.view(), options, p);
  checkPrefix(w, whole.view(), p, prefix.view());
  return 0;
}
