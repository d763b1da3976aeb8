// libFuzzer target: parseResponseHead() + analyzeResponse().
//
// Control bytes (see fuzz_common.h): options bit 0 selects small limits, bit 1 a header storage
// smaller than max_headers, bits 2-3 the method of the request answered (GET, HEAD, CONNECT,
// POST), bit 4 whether that request asked for an upgrade; the split byte picks the prefix that is
// parsed besides the whole message.
//
// Properties: a complete head lies inside the input, ends with CRLF CRLF, holds no bare CR or LF
// and only views into itself; every rejection is a 502 with a reason; a prefix parses to "need
// more" or to the very result of the whole message; an accepted response has at most one framing,
// none where the request method or the status forbids a body.
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
using http::ResponseHead;
using http::ResponseInfo;

constexpr size_t kStorage = 100;
constexpr size_t kSmallStorage = 4;
// Small enough that the 414 and 431 paths are reached by inputs of a few hundred bytes.
constexpr HeadLimits kSmallLimits = {
    .max_request_line = 64, .max_head_size = 256, .max_headers = 6};
constexpr std::array<std::string_view, 4> kMethods = {"GET", "HEAD", "CONNECT", "POST"};

struct Options {
  HeadLimits limits;
  size_t storage = kStorage;
  std::string_view method;
  bool upgrade_requested = false;
};

Options decodeOptions(uint8_t bits) {
  Options o;
  if (bits & 1) o.limits = kSmallLimits;
  if (bits & 2) o.storage = kSmallStorage;
  o.method = kMethods[(bits >> 2) & 3];
  o.upgrade_requested = (bits & 16) != 0;
  return o;
}

struct Result {
  ParseStatus status = ParseStatus::kNeedMore;
  ResponseHead head;
  ParseError error;
  std::array<Header, kStorage> storage;
};

void parse(std::string_view input, const Options& o, Result& r) {
  r.status = http::parseResponseHead(
      input, o.limits, std::span<Header>(r.storage.data(), o.storage), r.head, r.error);
}

void checkCompleteHead(const Result& r, std::string_view input, const Options& o) {
  const ResponseHead& h = r.head;
  FUZZ_CHECK(h.head_length >= 4 && h.head_length <= input.size());
  FUZZ_CHECK(h.head_length <= o.limits.max_head_size);
  const std::string_view head = input.substr(0, h.head_length);
  FUZZ_CHECK(head.substr(head.size() - 4) == "\r\n\r\n");
  FUZZ_CHECK(onlyCrlfLineEnds(head));
  FUZZ_CHECK(head.substr(0, 5) == "HTTP/");
  FUZZ_CHECK(h.minor_version == 0 || h.minor_version == 1);
  FUZZ_CHECK(h.status >= 100 && h.status <= 599);
  FUZZ_CHECK(isValueText(h.reason));
  FUZZ_CHECK(inside(h.reason, head));
  FUZZ_CHECK(h.headers == r.storage.data());
  FUZZ_CHECK(h.num_headers <= std::min(o.limits.max_headers, o.storage));
  for (size_t i = 0; i < h.num_headers; ++i) {
    FUZZ_CHECK(isToken(h.headers[i].name) && inside(h.headers[i].name, head));
    FUZZ_CHECK(isCleanValue(h.headers[i].value) && inside(h.headers[i].value, head));
  }
}

// A body-less answer: 1xx, 101, HEAD, 204, 304.
void checkNoBody(const ResponseHead& h, const Options& o, const ResponseInfo& info) {
  FUZZ_CHECK(info.framing == BodyFraming::kNone);
  if (h.status == 101) {
    FUZZ_CHECK(o.upgrade_requested && info.switching && !info.keep_alive);
  } else if (h.status < 200) {
    FUZZ_CHECK(info.informational && !info.switching);
  } else {
    FUZZ_CHECK(o.method == "HEAD" || h.status == 204 || h.status == 304);
  }
}

void checkAccepted(const ResponseHead& h, const Options& o, const ResponseInfo& info) {
  FUZZ_CHECK(!(o.method == "CONNECT" && h.status >= 200 && h.status < 300));
  if (h.status < 200 || o.method == "HEAD" || h.status == 204 || h.status == 304) {
    checkNoBody(h, o, info);
    return;
  }
  FUZZ_CHECK(!info.informational && !info.switching);
  const size_t cl = countFields(h, "Content-Length");
  const size_t te = countFields(h, "Transfer-Encoding");
  switch (info.framing) {
    case BodyFraming::kNone:
      checkFailed("a final response without a framing", __FILE__, __LINE__);
    case BodyFraming::kContentLength:
      FUZZ_CHECK(cl > 0 && te == 0);
      FUZZ_CHECK(info.content_length <= static_cast<uint64_t>(INT64_MAX));
      break;
    case BodyFraming::kChunked:
      FUZZ_CHECK(te > 0 && cl == 0 && h.minor_version == 1);
      break;
    case BodyFraming::kUntilClose:
      FUZZ_CHECK(te == 0 && cl == 0 && !info.keep_alive);
      break;
  }
}

void checkWhole(const Result& r, std::string_view input, const Options& o) {
  if (r.status == ParseStatus::kError) {
    FUZZ_CHECK(r.error.status == 502);
    FUZZ_CHECK(r.error.reason != nullptr && r.error.reason[0] != '\0');
    return;
  }
  if (r.status == ParseStatus::kNeedMore) {
    FUZZ_CHECK(input.size() <= o.limits.max_head_size);
    return;
  }
  checkCompleteHead(r, input, o);
  ResponseInfo info;
  ParseError error;
  if (http::analyzeResponse(r.head, o.method, o.upgrade_requested, info, error)) {
    checkAccepted(r.head, o, info);
  } else {
    FUZZ_CHECK(error.status == 502);
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
  FUZZ_CHECK(p.head.minor_version == w.head.minor_version && p.head.status == w.head.status);
  FUZZ_CHECK(sameSpan(p.head.reason, prefix, w.head.reason, whole));
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
