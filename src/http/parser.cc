// Strict HTTP/1.x head parsing and framing analysis (DESIGN §8). The parse functions re-scan the
// buffer from its start on every call and decide each error at the first byte that makes the
// input invalid, so a prefix of a message is either "need more" or already the very error the
// whole message gets. Nothing here allocates.
#include "http/parser.h"

#include <algorithm>
#include <array>
#include <cstdint>
#include <cstring>

#include "http/field_list.h"

namespace speedmimi::http {
namespace {

// ---------------------------------------------------------------------------------------------
// Character classes (one table lookup per byte in the hot loops).

enum : uint8_t {
  kTokenChar = 1 << 0,    // tchar (RFC 9110 §5.6.2): method, field name, coding names
  kValueChar = 1 << 1,    // field-value octets: HTAB, SP, VCHAR, obs-text
  kVisibleChar = 1 << 2,  // VCHAR and obs-text: request-target octets
  kRegNameChar = 1 << 3,  // unreserved, sub-delims and '%' (RFC 3986 reg-name)
};

constexpr bool isAlnum(int c) {
  return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
}

constexpr bool isOneOf(int c, std::string_view set) {
  return c != 0 && set.find(static_cast<char>(c)) != std::string_view::npos;
}

constexpr std::array<uint8_t, 256> makeCharClasses() {
  std::array<uint8_t, 256> table{};
  for (int c = 0; c < 256; ++c) {
    uint8_t cls = 0;
    if (isAlnum(c) || isOneOf(c, "!#$%&'*+-.^_`|~")) cls |= kTokenChar;
    if (c == '\t' || (c >= 0x20 && c != 0x7f)) cls |= kValueChar;
    if (c > 0x20 && c != 0x7f) cls |= kVisibleChar;
    if (isAlnum(c) || isOneOf(c, "-._~!$&'()*+,;=%")) cls |= kRegNameChar;
    table[c] = cls;
  }
  return table;
}

constexpr std::array<uint8_t, 256> kCharClasses = makeCharClasses();

inline bool hasClass(char c, uint8_t cls) {
  return (kCharClasses[static_cast<unsigned char>(c)] & cls) != 0;
}
inline bool isToken(char c) {
  return hasClass(c, kTokenChar);
}
inline bool isDigit(char c) {
  return c >= '0' && c <= '9';
}
inline bool isHexDigit(char c) {
  return isDigit(c) || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
}
inline bool isOws(char c) {
  return c == ' ' || c == '\t';
}
inline char toLower(char c) {
  return (c >= 'A' && c <= 'Z') ? static_cast<char>(c | 0x20) : c;
}

// SWAR screening, 8 bytes per step: values and targets are most of a head's bytes. A word is
// flagged when it may hold a byte that ends the run; flagged words are rescanned byte by byte
// (a HTAB in a value flags its word without ending the value).
constexpr uint64_t kOnes = 0x0101010101010101ull;
constexpr uint64_t kHighBits = 0x8080808080808080ull;

// Non-zero when some byte of `w` is below `n` (n <= 0x80).
inline uint64_t bytesBelow(uint64_t w, uint8_t n) {
  return (w - kOnes * n) & ~w & kHighBits;
}

// Non-zero when some byte of `w` is 0x7f (DEL).
inline uint64_t bytesDel(uint64_t w) {
  const uint64_t x = w ^ (kOnes * 0x7f);
  return (x - kOnes) & ~x & kHighBits;
}

inline uint64_t loadWord(const char* p) {
  uint64_t w;
  std::memcpy(&w, p, sizeof w);
  return w;
}

// Advances over bytes of class kClass. Every byte outside the class must be below kStopBelow or
// DEL, so an unflagged word is wholly inside the class.
template <uint8_t kClass, uint8_t kStopBelow>
const char* skipRun(const char* p, const char* end) {
  while (end - p >= 8) {
    const uint64_t w = loadWord(p);
    if ((bytesBelow(w, kStopBelow) | bytesDel(w)) != 0) {
      for (int i = 0; i < 8; ++i) {
        if (!hasClass(p[i], kClass)) return p + i;
      }
    }
    p += 8;
  }
  while (p != end && hasClass(*p, kClass)) ++p;
  return p;
}

// Field-value octets: stops at CTLs other than HTAB (CR ends the value), DEL.
const char* skipValueChars(const char* p, const char* end) {
  return skipRun<kValueChar, 0x20>(p, end);
}

// VCHAR and obs-text: stops at SP, CTLs, DEL.
const char* skipVisibleChars(const char* p, const char* end) {
  return skipRun<kVisibleChar, 0x21>(p, end);
}

const char* skipTokenChars(const char* p, const char* end) {
  while (p != end && isToken(*p)) ++p;
  return p;
}

bool isTokenString(std::string_view s) {
  return !s.empty() && skipTokenChars(s.data(), s.data() + s.size()) == s.data() + s.size();
}

ParseStatus fail(ParseError& error, int status, const char* reason) {
  error.status = status;
  error.reason = reason;
  return ParseStatus::kError;
}

// `cr` points at a CR that ends a line: kComplete when an LF follows, kNeedMore at the end of
// the input, else the bare-CR error.
ParseStatus expectLf(const char* cr, const char* end, ParseError& error) {
  if (cr + 1 == end) return ParseStatus::kNeedMore;
  if (cr[1] != '\n') return fail(error, 400, "bare CR");
  return ParseStatus::kComplete;
}

// ---------------------------------------------------------------------------------------------
// Start lines.

// RFC 9112 §2.2: empty lines before a request line may be ignored. Bare LF is still rejected.
ParseStatus skipEmptyLines(const char*& p, const char* end, ParseError& error) {
  while (p != end && *p == '\r') {
    ParseStatus s = expectLf(p, end, error);
    if (s != ParseStatus::kComplete) return s;
    p += 2;
  }
  if (p == end) return ParseStatus::kNeedMore;
  if (*p == '\n') return fail(error, 400, "bare LF");
  return ParseStatus::kComplete;
}

// Classifies "HTTP/x.y": the minor version of HTTP/1.0 or 1.1, -505 for another well-formed
// version, -400 for anything else.
int classifyVersion(std::string_view v) {
  if (v.size() != 8 || std::memcmp(v.data(), "HTTP/", 5) != 0 || !isDigit(v[5]) || v[6] != '.' ||
      !isDigit(v[7])) {
    return -400;
  }
  if (v[5] == '1' && (v[7] == '0' || v[7] == '1')) return v[7] - '0';
  return -505;
}

// The request line ran into the end of the input or past its limit while incomplete.
ParseStatus requestLineCut(const char* limit, const char* end, ParseError& error) {
  if (limit == end) return ParseStatus::kNeedMore;
  return fail(error, 414, "request line too long");
}

// method SP request-target SP HTTP-version CRLF, single SPs only. Only the first `max_line`
// bytes may precede the CR: a longer line is 414 as soon as its extra byte arrives.
ParseStatus parseRequestLine(const char*& p, const char* end, size_t max_line, RequestHead& head,
                             ParseError& error) {
  const char* limit = static_cast<size_t>(end - p) > max_line ? p + max_line : end;
  const char* q = skipTokenChars(p, limit);
  if (q == limit) return requestLineCut(limit, end, error);
  if (*q != ' ') return fail(error, 400, "invalid character in method");
  if (q == p) return fail(error, 400, "empty method");
  head.method = std::string_view(p, q - p);

  const char* target = ++q;
  q = skipVisibleChars(q, limit);
  if (q == limit) return requestLineCut(limit, end, error);
  if (*q == '\r' || *q == '\n') return fail(error, 400, "missing HTTP version");
  if (*q != ' ') return fail(error, 400, "invalid character in request target");
  if (q == target) return fail(error, 400, "empty request target");
  head.target = std::string_view(target, q - target);

  const char* version = ++q;
  q = skipVisibleChars(q, limit);
  if (q == end) return ParseStatus::kNeedMore;
  if (*q != '\r') {
    if (q == limit) return fail(error, 414, "request line too long");
    if (*q == '\n') return fail(error, 400, "bare LF");
    return fail(error, 400, "invalid character in HTTP version");
  }
  const int minor = classifyVersion(std::string_view(version, q - version));
  if (minor == -505) return fail(error, 505, "HTTP version not supported");
  if (minor < 0) return fail(error, 400, "invalid HTTP version");
  ParseStatus s = expectLf(q, end, error);
  if (s != ParseStatus::kComplete) return s;
  head.minor_version = minor;
  p = q + 2;
  return ParseStatus::kComplete;
}

// Matches `expected` byte by byte so that a prefix is judged without waiting for more input.
ParseStatus expectLiteral(const char*& p, const char* end, std::string_view expected,
                          ParseError& error, const char* reason) {
  for (char c : expected) {
    if (p == end) return ParseStatus::kNeedMore;
    if (*p != c) return fail(error, 400, reason);
    ++p;
  }
  return ParseStatus::kComplete;
}

// HTTP/1.x SP 3DIGIT [SP reason-phrase] CRLF. A missing SP before an empty reason is tolerated
// (common in the wild, and harmless: it cannot change the framing).
ParseStatus parseStatusLine(const char*& p, const char* end, ResponseHead& head,
                            ParseError& error) {
  const char* q = p;
  ParseStatus s = expectLiteral(q, end, "HTTP/1.", error, "invalid HTTP version");
  if (s != ParseStatus::kComplete) return s;
  if (q == end) return ParseStatus::kNeedMore;
  if (*q != '0' && *q != '1') return fail(error, 400, "HTTP version not supported");
  head.minor_version = *q++ - '0';
  s = expectLiteral(q, end, " ", error, "invalid status line");
  if (s != ParseStatus::kComplete) return s;

  int status = 0;
  for (int i = 0; i < 3; ++i, ++q) {
    if (q == end) return ParseStatus::kNeedMore;
    if (!isDigit(*q)) return fail(error, 400, "invalid status code");
    status = status * 10 + (*q - '0');
  }
  if (status < 100 || status > 599) return fail(error, 400, "status code out of range");
  if (q == end) return ParseStatus::kNeedMore;
  if (*q != ' ' && *q != '\r') return fail(error, 400, "invalid status code");
  if (*q == ' ') ++q;
  const char* reason = q;
  q = skipValueChars(q, end);
  if (q == end) return ParseStatus::kNeedMore;
  if (*q == '\n') return fail(error, 400, "bare LF");
  if (*q != '\r') return fail(error, 400, "invalid character in reason phrase");
  s = expectLf(q, end, error);
  if (s != ParseStatus::kComplete) return s;
  head.status = status;
  head.reason = std::string_view(reason, q - reason);
  p = q + 2;
  return ParseStatus::kComplete;
}

// ---------------------------------------------------------------------------------------------
// Field lines.

// Rejects what a field line must not start with; kComplete means a field name starts at `p`.
// Whitespace is obs-fold, or before the first field a smuggling trick (RFC 9112 §2.2).
ParseStatus checkFieldLineStart(const char* p, bool first, ParseError& error) {
  switch (*p) {
    case '\n':
      return fail(error, 400, "bare LF");
    case ' ':
    case '\t':
      if (first) return fail(error, 400, "whitespace before the first field");
      return fail(error, 400, "obsolete line folding");
    case ':':
      return fail(error, 400, "empty field name");
    default:
      return ParseStatus::kComplete;
  }
}

// field-name ":" OWS field-value OWS CRLF, stored into `field` with the value trimmed.
ParseStatus parseFieldLine(const char*& p, const char* end, Header& field, ParseError& error) {
  const char* name = p;
  const char* q = skipTokenChars(p, end);
  if (q == end) return ParseStatus::kNeedMore;
  if (*q != ':') {
    if (isOws(*q)) return fail(error, 400, "whitespace between field name and colon");
    return fail(error, 400, "invalid character in field name");
  }
  field.name = std::string_view(name, q - name);
  ++q;
  while (q != end && isOws(*q)) ++q;
  const char* value = q;
  q = skipValueChars(q, end);
  if (q == end) return ParseStatus::kNeedMore;
  if (*q != '\r') {
    if (*q == '\n') return fail(error, 400, "bare LF");
    return fail(error, 400, "invalid character in field value");
  }
  ParseStatus s = expectLf(q, end, error);
  if (s != ParseStatus::kComplete) return s;
  const char* value_end = q;
  while (value_end != value && isOws(value_end[-1])) --value_end;
  field.value = std::string_view(value, value_end - value);
  p = q + 2;
  return ParseStatus::kComplete;
}

// Field lines up to and including the empty line. Past `max_fields` fields the head is 431,
// decided at the first byte of the extra field.
ParseStatus parseFields(const char*& p, const char* end, Header* storage, size_t max_fields,
                        size_t& count, ParseError& error) {
  count = 0;
  for (;;) {
    if (p == end) return ParseStatus::kNeedMore;
    if (*p == '\r') {
      ParseStatus s = expectLf(p, end, error);
      if (s == ParseStatus::kComplete) p += 2;
      return s;
    }
    ParseStatus s = checkFieldLineStart(p, count == 0, error);
    if (s != ParseStatus::kComplete) return s;
    if (count == max_fields) return fail(error, 431, "too many header fields");
    s = parseFieldLine(p, end, storage[count], error);
    if (s != ParseStatus::kComplete) return s;
    ++count;
  }
}

// Bytes the parser may look at: heads longer than max_head_size are 431 even while incomplete.
const char* headWindowEnd(std::string_view input, const HeadLimits& limits) {
  return input.data() + std::min(input.size(), limits.max_head_size);
}

ParseStatus headTooLarge(ParseStatus s, std::string_view input, const HeadLimits& limits,
                         ParseError& error) {
  if (s == ParseStatus::kNeedMore && input.size() > limits.max_head_size) {
    return fail(error, 431, "message head too large");
  }
  return s;
}

size_t fieldCapacity(const HeadLimits& limits, std::span<Header> storage) {
  return std::min(limits.max_headers, storage.size());
}

}  // namespace

ParseStatus parseRequestHead(std::string_view input, const HeadLimits& limits,
                             std::span<Header> storage, RequestHead& head, ParseError& error) {
  const char* begin = input.data();
  const char* end = headWindowEnd(input, limits);
  const char* p = begin;
  ParseStatus s = skipEmptyLines(p, end, error);
  if (s == ParseStatus::kComplete) {
    s = parseRequestLine(p, end, limits.max_request_line, head, error);
  }
  size_t count = 0;
  if (s == ParseStatus::kComplete) {
    s = parseFields(p, end, storage.data(), fieldCapacity(limits, storage), count, error);
  }
  if (s != ParseStatus::kComplete) return headTooLarge(s, input, limits, error);
  head.headers = storage.data();
  head.num_headers = count;
  head.head_length = static_cast<size_t>(p - begin);
  return s;
}

// Response errors carry 502: whatever the reason, the client gets a Bad Gateway.
ParseStatus parseResponseHead(std::string_view input, const HeadLimits& limits,
                              std::span<Header> storage, ResponseHead& head, ParseError& error) {
  const char* begin = input.data();
  const char* end = headWindowEnd(input, limits);
  const char* p = begin;
  ParseStatus s = parseStatusLine(p, end, head, error);
  size_t count = 0;
  if (s == ParseStatus::kComplete) {
    s = parseFields(p, end, storage.data(), fieldCapacity(limits, storage), count, error);
  }
  if (s != ParseStatus::kComplete) {
    s = headTooLarge(s, input, limits, error);
    if (s == ParseStatus::kError) error.status = 502;
    return s;
  }
  head.headers = storage.data();
  head.num_headers = count;
  head.head_length = static_cast<size_t>(p - begin);
  return s;
}

bool equalsIgnoreCase(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  for (size_t i = 0; i < a.size(); ++i) {
    if (toLower(a[i]) != toLower(b[i])) return false;
  }
  return true;
}

const Header* findHeader(const Header* headers, size_t count, std::string_view name) {
  for (size_t i = 0; i < count; ++i) {
    if (equalsIgnoreCase(headers[i].name, name)) return &headers[i];
  }
  return nullptr;
}

namespace {

// ---------------------------------------------------------------------------------------------
// Semantics of the fields that matter for framing and proxying.

bool reject(ParseError& error, int status, const char* reason) {
  error.status = status;
  error.reason = reason;
  return false;
}

// The part of a list element before its parameters: "text/html;q=1" -> "text/html".
std::string_view withoutParameters(std::string_view element) {
  return trimOws(element.substr(0, element.find(';')));
}

// 1*DIGIT no larger than INT64_MAX (bodies are counted with signed offsets downstream).
bool parseDecimal(std::string_view s, uint64_t& value) {
  constexpr uint64_t kMax = static_cast<uint64_t>(INT64_MAX);
  if (s.empty()) return false;
  uint64_t v = 0;
  for (char c : s) {
    if (!isDigit(c)) return false;
    const uint64_t digit = static_cast<uint64_t>(c - '0');
    if (v > (kMax - digit) / 10) return false;
    v = v * 10 + digit;
  }
  value = v;
  return true;
}

// All Content-Length fields of a message. A list of identical values ("5, 5") and repeated
// identical fields are tolerated (RFC 9110 §8.6); anything else is invalid or conflicting.
struct ContentLength {
  bool present = false;
  bool invalid = false;
  bool conflict = false;
  uint64_t value = 0;
  bool has_value = false;

  void add(std::string_view field_value) {
    present = true;
    ListElements list(field_value);
    std::string_view element;
    while (list.next(element)) {
      uint64_t v = 0;
      if (!parseDecimal(element, v)) {
        invalid = true;
        return;
      }
      if (has_value && v != value) conflict = true;
      value = v;
      has_value = true;
    }
  }
};

// All Transfer-Encoding fields of a message, in order (RFC 9112 §6.1).
struct TransferCodings {
  bool present = false;
  bool invalid = false;       // a coding name that is not a token
  bool other = false;         // a coding other than chunked
  bool chunked_last = false;  // the last non-empty element is exactly "chunked"
  int elements = 0;
  int chunked = 0;

  void add(std::string_view field_value) {
    present = true;
    ListElements list(field_value);
    std::string_view element;
    while (list.next(element)) {
      if (element.empty()) continue;  // RFC 9110 §5.6.1: empty elements are ignored
      ++elements;
      const std::string_view name = withoutParameters(element);
      if (!isTokenString(name)) invalid = true;
      chunked_last = equalsIgnoreCase(element, "chunked");
      if (chunked_last) {
        ++chunked;
      } else {
        other = true;
      }
    }
  }

  // Status 0 when the codings are exactly a final "chunked", else why they are refused.
  ParseError verdict() const {
    if (invalid) return {400, "invalid transfer coding"};
    if (elements == 0) return {400, "empty Transfer-Encoding"};
    if (chunked > 1) return {400, "chunked applied more than once"};
    if (!chunked_last) return {400, "chunked is not the final transfer coding"};
    if (other) return {501, "unsupported transfer coding"};
    return {};
  }
};

// Everything analyzeRequest() and analyzeResponse() read from the fields, gathered in one pass.
struct MessageFields {
  const Header* host = nullptr;
  int host_count = 0;
  ContentLength content_length;
  TransferCodings transfer_codings;
  bool connection_close = false;
  bool connection_keep_alive = false;
  bool connection_upgrade = false;
  bool upgrade_websocket = false;
  bool expect_continue = false;
  bool expect_other = false;
  bool accept_event_stream = false;
  const Header* content_type = nullptr;
};

void addConnection(std::string_view value, MessageFields& f) {
  ListElements list(value);
  std::string_view token;
  while (list.next(token)) {
    if (equalsIgnoreCase(token, "close")) f.connection_close = true;
    if (equalsIgnoreCase(token, "keep-alive")) f.connection_keep_alive = true;
    if (equalsIgnoreCase(token, "upgrade")) f.connection_upgrade = true;
  }
}

void addUpgrade(std::string_view value, MessageFields& f) {
  ListElements list(value);
  std::string_view protocol;
  while (list.next(protocol)) {
    // protocol-name ["/" protocol-version]
    if (equalsIgnoreCase(protocol.substr(0, protocol.find('/')), "websocket")) {
      f.upgrade_websocket = true;
    }
  }
}

void addExpect(std::string_view value, MessageFields& f) {
  ListElements list(value);
  std::string_view expectation;
  bool any = false;
  while (list.next(expectation)) {
    if (expectation.empty()) continue;
    any = true;
    if (equalsIgnoreCase(expectation, "100-continue")) {
      f.expect_continue = true;
    } else {
      f.expect_other = true;
    }
  }
  if (!any) f.expect_other = true;  // "Expect:" with nothing to meet
}

void addAccept(std::string_view value, MessageFields& f) {
  ListElements list(value);
  std::string_view range;
  while (list.next(range)) {
    if (equalsIgnoreCase(withoutParameters(range), "text/event-stream")) {
      f.accept_event_stream = true;
    }
  }
}

void addField(const Header& h, MessageFields& f) {
  const std::string_view name = h.name;
  switch (name.size()) {
    case 4:
      if (equalsIgnoreCase(name, "Host")) {
        if (f.host_count++ == 0) f.host = &h;
      }
      break;
    case 6:
      if (equalsIgnoreCase(name, "Expect")) addExpect(h.value, f);
      if (equalsIgnoreCase(name, "Accept")) addAccept(h.value, f);
      break;
    case 7:
      if (equalsIgnoreCase(name, "Upgrade")) addUpgrade(h.value, f);
      break;
    case 10:
      if (equalsIgnoreCase(name, "Connection")) addConnection(h.value, f);
      break;
    case 12:
      if (equalsIgnoreCase(name, "Content-Type") && f.content_type == nullptr) f.content_type = &h;
      break;
    case 14:
      if (equalsIgnoreCase(name, "Content-Length")) f.content_length.add(h.value);
      break;
    case 17:
      if (equalsIgnoreCase(name, "Transfer-Encoding")) f.transfer_codings.add(h.value);
      break;
    default:
      break;
  }
}

MessageFields collectFields(const Header* headers, size_t count) {
  MessageFields f;
  for (size_t i = 0; i < count; ++i) addField(headers[i], f);
  return f;
}

bool keepAlive(int minor_version, const MessageFields& f) {
  if (f.connection_close) return false;
  return minor_version >= 1 || f.connection_keep_alive;
}

// ---------------------------------------------------------------------------------------------
// Targets and hosts.

bool isValidRegName(std::string_view s) {
  for (size_t i = 0; i < s.size(); ++i) {
    if (!hasClass(s[i], kRegNameChar)) return false;
    if (s[i] == '%' && (i + 2 >= s.size() || !isHexDigit(s[i + 1]) || !isHexDigit(s[i + 2]))) {
      return false;
    }
  }
  return true;
}

// IP-literal contents ("::1", "v1.x"): hex digits, ':', '.' and the IPvFuture characters.
bool isValidIpLiteral(std::string_view s) {
  if (s.empty()) return false;
  for (char c : s) {
    if (c != ':' && !hasClass(c, kRegNameChar)) return false;
  }
  return true;
}

// host [":" port] (RFC 9110 §7.2): a non-empty reg-name, IPv4 or [IP-literal], then an optional
// decimal port. No userinfo.
bool isValidHost(std::string_view authority) {
  size_t host_end = 0;
  if (!authority.empty() && authority.front() == '[') {
    const size_t close = authority.find(']');
    if (close == std::string_view::npos || !isValidIpLiteral(authority.substr(1, close - 1))) {
      return false;
    }
    host_end = close + 1;
  } else {
    host_end = std::min(authority.find(':'), authority.size());
    if (host_end == 0 || !isValidRegName(authority.substr(0, host_end))) return false;
  }
  if (host_end == authority.size()) return true;
  if (authority[host_end] != ':') return false;
  const std::string_view port = authority.substr(host_end + 1);
  if (port.size() > 5) return false;
  return std::all_of(port.begin(), port.end(), isDigit);
}

// "http://authority/path" or "https://...": false when the target has another form.
bool splitAbsoluteForm(std::string_view target, std::string_view& authority,
                       std::string_view& rest) {
  size_t scheme_end = 0;
  if (target.size() >= 7 && equalsIgnoreCase(target.substr(0, 7), "http://")) {
    scheme_end = 7;
  } else if (target.size() >= 8 && equalsIgnoreCase(target.substr(0, 8), "https://")) {
    scheme_end = 8;
  } else {
    return false;
  }
  const std::string_view after = target.substr(scheme_end);
  const size_t authority_end = std::min(after.find_first_of("/?"), after.size());
  authority = after.substr(0, authority_end);
  rest = after.substr(authority_end);
  return true;
}

// Fills info.path (and host/absolute_form for absolute-form). CONNECT never gets here.
bool analyzeTarget(const RequestHead& head, RequestInfo& info, ParseError& error) {
  const std::string_view target = head.target;
  if (target == "*") {
    if (head.method != "OPTIONS") return reject(error, 400, "asterisk-form target without OPTIONS");
    info.path = target;
    return true;
  }
  if (target.empty()) return reject(error, 400, "empty request target");
  if (target.front() == '/') {
    info.path = target;
    return true;
  }
  std::string_view authority, rest;
  if (!splitAbsoluteForm(target, authority, rest)) {
    return reject(error, 400, "invalid request target");
  }
  if (!isValidHost(authority)) return reject(error, 400, "invalid authority in request target");
  // "http://a?q" means "/?q", which a view into the buffer cannot spell; such targets are rare
  // enough to be refused rather than rewritten.
  if (!rest.empty() && rest.front() == '?') {
    return reject(error, 400, "absolute-form target with a query but no path");
  }
  info.absolute_form = true;
  info.host = authority;
  info.path = rest.empty() ? std::string_view("/") : rest;
  return true;
}

// RFC 9112 §3.2: exactly one valid Host on HTTP/1.1, agreeing with an absolute-form target.
bool analyzeHost(const RequestHead& head, const MessageFields& f, RequestInfo& info,
                 ParseError& error) {
  if (f.host_count > 1) return reject(error, 400, "repeated Host");
  if (f.host == nullptr) {
    if (head.minor_version >= 1) return reject(error, 400, "missing Host");
    return true;
  }
  const std::string_view host = f.host->value;
  if (!isValidHost(host)) return reject(error, 400, "invalid Host");
  if (info.absolute_form) {
    if (!equalsIgnoreCase(host, info.host)) {
      return reject(error, 400, "absolute-form target disagrees with Host");
    }
    return true;
  }
  info.host = host;
  return true;
}

// Body framing of a request (RFC 9112 §6.3): never ambiguous, or it is rejected.
bool analyzeRequestFraming(const RequestHead& head, const MessageFields& f, RequestInfo& info,
                           ParseError& error) {
  const TransferCodings& te = f.transfer_codings;
  const ContentLength& cl = f.content_length;
  if (te.present && head.minor_version == 0) {
    return reject(error, 400, "Transfer-Encoding in an HTTP/1.0 request");
  }
  if (te.present && cl.present) {
    return reject(error, 400, "both Content-Length and Transfer-Encoding");
  }
  if (cl.invalid) return reject(error, 400, "invalid Content-Length");
  if (cl.conflict) return reject(error, 400, "conflicting Content-Length values");
  if (te.present) {
    const ParseError verdict = te.verdict();
    if (verdict.status != 0) return reject(error, verdict.status, verdict.reason);
    info.framing = BodyFraming::kChunked;
  } else if (cl.present) {
    info.framing = BodyFraming::kContentLength;
    info.content_length = cl.value;
  }
  return true;
}

bool isContentType(const Header* h, std::string_view media_type) {
  return h != nullptr && equalsIgnoreCase(withoutParameters(h->value), media_type);
}

}  // namespace

bool analyzeRequest(const RequestHead& head, uint64_t max_body_size, RequestInfo& info,
                    ParseError& error) {
  info = RequestInfo{};
  if (head.method == "CONNECT") return reject(error, 501, "CONNECT is not supported");
  if (!analyzeTarget(head, info, error)) return false;
  const MessageFields f = collectFields(head.headers, head.num_headers);
  if (!analyzeHost(head, f, info, error)) return false;
  if (!analyzeRequestFraming(head, f, info, error)) return false;
  // RFC 9110 §10.1.1: an HTTP/1.0 100-continue is ignored; other expectations are not met.
  if (f.expect_other) return reject(error, 417, "unsupported expectation");
  if (max_body_size != 0 && info.framing == BodyFraming::kContentLength &&
      info.content_length > max_body_size) {
    return reject(error, 413, "request body too large");
  }
  info.keep_alive = keepAlive(head.minor_version, f);
  // RFC 9110 §7.8: Upgrade in an HTTP/1.0 request is ignored.
  info.upgrade_websocket = head.minor_version >= 1 && f.upgrade_websocket && f.connection_upgrade;
  info.expect_continue = head.minor_version >= 1 && f.expect_continue;
  info.accepts_event_stream = f.accept_event_stream;
  return true;
}

bool analyzeResponse(const ResponseHead& head, std::string_view request_method,
                     bool upgrade_requested, ResponseInfo& info, ParseError& error) {
  info = ResponseInfo{};
  const MessageFields f = collectFields(head.headers, head.num_headers);
  info.keep_alive = keepAlive(head.minor_version, f);
  info.event_stream = isContentType(f.content_type, "text/event-stream");
  // Content-Length syntax is checked even where it does not frame a body.
  if (f.content_length.invalid) return reject(error, 502, "invalid Content-Length");
  if (f.content_length.conflict) return reject(error, 502, "conflicting Content-Length values");

  if (head.status == 101) {
    if (!upgrade_requested) return reject(error, 502, "101 without a requested upgrade");
    info.switching = true;
    info.keep_alive = false;  // the connection becomes a tunnel, never pooled
    return true;
  }
  if (head.status < 200) {
    info.informational = true;
    return true;
  }
  if (request_method == "CONNECT" && head.status < 300) {
    return reject(error, 502, "2xx to CONNECT (tunnels are not supported)");
  }
  if (request_method == "HEAD" || head.status == 204 || head.status == 304) return true;

  const TransferCodings& te = f.transfer_codings;
  if (te.present) {
    if (head.minor_version == 0) return reject(error, 502, "Transfer-Encoding in HTTP/1.0");
    if (f.content_length.present) {
      return reject(error, 502, "both Content-Length and Transfer-Encoding");
    }
    const ParseError verdict = te.verdict();
    if (verdict.status != 0) return reject(error, 502, verdict.reason);
    info.framing = BodyFraming::kChunked;
  } else if (f.content_length.present) {
    info.framing = BodyFraming::kContentLength;
    info.content_length = f.content_length.value;
  } else {
    info.framing = BodyFraming::kUntilClose;
    info.keep_alive = false;
  }
  return true;
}

}  // namespace speedmimi::http
