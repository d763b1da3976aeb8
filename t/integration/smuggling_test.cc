// Request smuggling, end to end (DESIGN §4 table, §8): a corpus of malformed and edge-case
// requests sent through the real binary. Every rejected request gets exactly its status with
// "Connection: close", the connection then closes, and neither it nor the canary request sent
// right after it on the same connection reaches the backend. Every accepted request reaches the
// backend as exactly one canonical message, checked byte for byte.
//
// One proxy and one backend serve a whole suite: the cases use separate client connections, and
// starting the binary per case would dominate the run time.
#include <iostream>

#include "harness.h"

namespace speedmimi::test {
namespace {

using ::testing::IsEmpty;

constexpr std::string_view kHost = "smuggle.test";

// --- building requests --------------------------------------------------------------------------

// "GET / HTTP/1.1", a valid Host, then `fields` (each ending in CRLF) and the empty line.
std::string get(std::string_view fields) {
  return "GET / HTTP/1.1\r\nHost: smuggle.test\r\n" + std::string(fields) + "\r\n";
}

std::string post(std::string_view fields, std::string_view body) {
  return "POST /p HTTP/1.1\r\nHost: smuggle.test\r\n" + std::string(fields) + "\r\n" +
         std::string(body);
}

// A valid chunked head followed by `body` as the (possibly malformed) chunked body.
std::string chunkedPost(std::string_view body) {
  return post("Transfer-Encoding: chunked\r\n", body);
}

// `request_line` with a valid Host and nothing else.
std::string withHost(std::string_view request_line) {
  return std::string(request_line) + "\r\nHost: smuggle.test\r\n\r\n";
}

// The request sent after each case on the same connection. A served canary is expected at the
// backend; the path of one that must never be served is searched for in all backend bytes at the
// end of the suite.
std::string canaryTarget(std::string_view name, bool served) {
  return std::string(served ? "/canary/" : "/never-served/") + std::string(name);
}
std::string canary(std::string_view name, bool served) {
  return withHost("GET " + canaryTarget(name, served) + " HTTP/1.1");
}

// --- what the backend must see ------------------------------------------------------------------

// The fields the proxy appends to every request (DESIGN §4), for a client on 127.0.0.1.
std::string forwarded(std::string_view host = kHost, std::string_view xff = "127.0.0.1") {
  std::string out = "X-Forwarded-For: " + std::string(xff) +
                    "\r\nX-Real-IP: 127.0.0.1\r\nX-Forwarded-Proto: http\r\n";
  if (!host.empty()) out += "X-Forwarded-Host: " + std::string(host) + "\r\n";
  return out;
}

// request line, the fields in the proxy's order (Host, the client's kept fields, the one framing
// field), then the forwarding fields and the empty line.
std::string upstreamHead(std::string_view request_line, const std::vector<std::string>& fields,
                         const std::string& fwd = forwarded()) {
  std::string out = std::string(request_line) + "\r\n";
  for (const auto& f : fields) out += f + "\r\n";
  return out + fwd + "\r\n";
}

struct Expected {
  std::string head;      // exact bytes
  std::string body;      // decoded body
  bool chunked = false;  // sent with Transfer-Encoding: chunked (framing checked canonical)
};

Expected bodiless(std::string_view target,
                  const std::vector<std::string>& fields = {"Host: smuggle.test"}) {
  return {upstreamHead("GET " + std::string(target) + " HTTP/1.1", fields), "", false};
}

Expected withLength(std::string_view request_line, std::string body,
                    std::vector<std::string> fields = {"Host: smuggle.test"}) {
  fields.push_back("Content-Length: " + std::to_string(body.size()));
  return {upstreamHead(request_line, fields), std::move(body), false};
}

Expected withChunks(std::string_view request_line, std::string body,
                    std::vector<std::string> fields = {"Host: smuggle.test"}) {
  fields.push_back("Transfer-Encoding: chunked");
  return {upstreamHead(request_line, fields), std::move(body), true};
}

// Canonical chunked framing: lower-case hex sizes without leading zeros or extensions, CRLF
// only, a last chunk "0" and no trailer fields.
::testing::AssertionResult canonicalChunks(std::string_view raw) {
  size_t pos = 0;
  while (true) {
    size_t eol = raw.find("\r\n", pos);
    if (eol == std::string_view::npos) return ::testing::AssertionFailure() << "no size line";
    std::string_view size = raw.substr(pos, eol - pos);
    bool hex = !size.empty() && size.find_first_not_of("0123456789abcdef") == std::string::npos;
    if (!hex || (size.size() > 1 && size[0] == '0')) {
      return ::testing::AssertionFailure() << "non-canonical chunk size line '" << size << "'";
    }
    uint64_t n = std::stoull(std::string(size), nullptr, 16);
    pos = eol + 2;
    if (n == 0) break;
    if (raw.substr(pos + n, 2) != "\r\n") {
      return ::testing::AssertionFailure() << "chunk data not followed by CRLF";
    }
    pos += n + 2;
  }
  if (raw.substr(pos) != "\r\n") {
    return ::testing::AssertionFailure()
           << "trailers or bytes after the last chunk: '" << raw.substr(pos) << "'";
  }
  return ::testing::AssertionSuccess();
}

// Rules every message the proxy forwards must follow, whatever the client sent.
::testing::AssertionResult canonicalRequest(const Request& r) {
  auto fail = [&](std::string why) {
    return ::testing::AssertionFailure() << why << " in:\n" << r.raw_head;
  };
  if (r.version != "HTTP/1.1") return fail("version is not HTTP/1.1");
  if (r.target.empty() || r.target[0] != '/') return fail("target is not origin-form");
  if (headerValues(r.headers, "Host").size() != 1) return fail("not exactly one Host");
  size_t cl = headerValues(r.headers, "Content-Length").size();
  std::vector<std::string> te = headerValues(r.headers, "Transfer-Encoding");
  if (cl + te.size() > 1) return fail("more than one framing field");
  if (!te.empty() && te[0] != "chunked") return fail("Transfer-Encoding other than 'chunked'");
  for (const char* hop : {"Connection", "Keep-Alive", "Proxy-Connection", "Upgrade", "Trailer"}) {
    if (r.header(hop)) return fail(std::string("hop-by-hop field ") + hop);
  }
  std::optional<std::string> te_field = r.header("TE");
  if (te_field && *te_field != "trailers") return fail("TE other than 'trailers'");
  if (r.chunked) return canonicalChunks(r.raw_body);
  return ::testing::AssertionSuccess();
}

// --- one proxy for a whole suite ----------------------------------------------------------------

class Rig {
 public:
  Rig() : backend_(FakeBackend::echo(FakeBackend::EchoFraming::kContentLength)) {}

  bool start(std::string* error) {
    if (!backend_.ok()) {
      *error = "the fake backend did not start";
      return false;
    }
    ProxyOptions options = ProxyOptions::forBackends({backend_.port()});
    options.backends["app"][0].max_fails = 0;
    options.max_body_size = "1k";
    options.max_headers = 20;
    proxy_ = std::make_unique<Proxy>(options);
    if (!proxy_->start(error)) return false;
    // One pooled connection, so a rejected request that touches no backend leaves the count of
    // backend connections unchanged.
    return sync("warm-up", error);
  }

  // A valid request on a new client connection, answered 200: afterwards every byte the proxy
  // sent on the pooled connection before it has been recorded.
  bool sync(std::string_view name, std::string* error) {
    auto response = fetch(proxy_->port(), withHost("GET /sync/" + std::string(name) + " HTTP/1.1"),
                          error, Millis(5000));
    if (response && response->status != 200) *error = "sync answered " + response->status_line;
    return response && response->status == 200;
  }

  // Backend connections that the proxy has closed so far.
  int closedConnections() const {
    int closed = 0;
    for (int i = 0; i < backend_.connectionCount(); ++i) closed += backend_.peerClosed(i) ? 1 : 0;
    return closed;
  }

  // After the suite: no never-served canary anywhere, the backend saw only valid HTTP, the proxy
  // stops cleanly and logged nothing alarming.
  void finish() {
    std::string all = backend_.receivedBytes();
    EXPECT_EQ(all.find("/never-served/"), std::string::npos) << "a canary reached the backend";
    EXPECT_THAT(backend_.errors(), IsEmpty());
    if (!proxy_) return;
    EXPECT_TRUE(proxy_->stop());
    EXPECT_FALSE(proxy_->crashed());
    EXPECT_THAT(linesContaining(proxy_->errorLog(), {"[alert]", "[crit]", "[emerg]"}), IsEmpty());
    EXPECT_THAT(linesContaining(proxy_->stdoutLog(), {"Sanitizer", "runtime error:"}), IsEmpty());
    if (kept_) std::cerr << "[ harness ] kept " << proxy_->prefix() << " (a case failed)\n";
  }

  // A case failed: the proxy's prefix (config and logs) outlives the suite.
  void keepLogs() {
    if (proxy_) proxy_->keepPrefix();
    kept_ = proxy_ != nullptr;
  }

  FakeBackend& backend() { return backend_; }
  int port() const { return proxy_->port(); }

 private:
  FakeBackend backend_;
  std::unique_ptr<Proxy> proxy_;
  bool kept_ = false;
};

template <typename Case>
class SharedProxyTest : public ::testing::TestWithParam<Case> {
 protected:
  static void SetUpTestSuite() {
    rig_ = new Rig();
    std::string error;
    if (!rig_->start(&error)) {
      start_error_ = new std::string(error);
      ADD_FAILURE() << "the suite's proxy did not start: " << error;
    }
  }
  static void TearDownTestSuite() {
    rig_->finish();
    delete rig_;
    rig_ = nullptr;
    delete start_error_;
    start_error_ = nullptr;
  }
  void SetUp() override {
    if (start_error_ != nullptr) FAIL() << "no proxy: " << *start_error_;
  }
  void TearDown() override {
    if (this->HasFailure()) rig_->keepLogs();
  }

  static inline Rig* rig_ = nullptr;
  static inline std::string* start_error_ = nullptr;
};

// --- rejected requests --------------------------------------------------------------------------

enum class Stage {
  kHead,  // decided on the head: no backend connection is even taken
  kBody,  // the head is valid and the body is rejected while being forwarded: the backend
          // connection taken for it is closed before any byte is written
};

struct RejectCase {
  const char* name;
  std::string bytes;
  int status;
  Stage stage = Stage::kHead;
};

void PrintTo(const RejectCase& c, std::ostream* out) {
  *out << c.name;
}

std::vector<RejectCase> contentLengthAndTransferEncoding() {
  return {
      {"ClAndTe", post("Content-Length: 5\r\nTransfer-Encoding: chunked\r\n", "0\r\n\r\n"), 400},
      {"TeAndCl", post("Transfer-Encoding: chunked\r\nContent-Length: 5\r\n", "0\r\n\r\n"), 400},
      {"ClAndTeUnknownCoding", post("Content-Length: 5\r\nTransfer-Encoding: gzip\r\n", "hello"),
       400},
      {"ClTwiceDiffering", post("Content-Length: 5\r\nContent-Length: 6\r\n", "hello!"), 400},
      {"ClListDiffering", post("Content-Length: 5, 6\r\n", "hello!"), 400},
      {"ClPlusSign", post("Content-Length: +5\r\n", "hello"), 400},
      {"ClNegative", post("Content-Length: -1\r\n", ""), 400},
      {"ClHex", post("Content-Length: 0x5\r\n", "hello"), 400},
      {"ClEmpty", post("Content-Length: \r\n", ""), 400},
      {"ClInnerSpace", post("Content-Length: 5 5\r\n", "hello"), 400},
      {"ClOverflow", post("Content-Length: 99999999999999999999\r\n", ""), 400},
      {"ClTrailingComma", post("Content-Length: 5,\r\n", "hello"), 400},
      {"ClExponent", post("Content-Length: 1e3\r\n", ""), 400},
      {"ClSpaceBeforeColon", post("Content-Length : 5\r\n", "hello"), 400},
  };
}

std::vector<RejectCase> transferEncodingObfuscation() {
  return {
      {"TeUnknownOnly", post("Transfer-Encoding: xchunked\r\n", "0\r\n\r\n"), 400},
      {"TeSpaceBeforeColon", post("Transfer-Encoding : chunked\r\n", "0\r\n\r\n"), 400},
      {"TeChunkedTwiceInList", post("Transfer-Encoding: chunked, chunked\r\n", "0\r\n\r\n"), 400},
      {"TeChunkedTwiceInFields",
       post("Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n", "0\r\n\r\n"), 400},
      {"TeChunkedNotLast", post("Transfer-Encoding: chunked, gzip\r\n", "0\r\n\r\n"), 400},
      {"TeChunkedThenIdentityField",
       post("Transfer-Encoding: chunked\r\nTransfer-Encoding: identity\r\n", "0\r\n\r\n"), 400},
      {"TeQuotedChunked", post("Transfer-Encoding: \"chunked\"\r\n", "0\r\n\r\n"), 400},
      {"TeChunkedWithParameter", post("Transfer-Encoding: chunked;q=1\r\n", "0\r\n\r\n"), 400},
      {"TeVerticalTab", post("Transfer-Encoding: chunked\x0b\r\n", "0\r\n\r\n"), 400},
      {"TeObsFold", post("Transfer-Encoding:\r\n chunked\r\n", "0\r\n\r\n"), 400},
      {"TeEmpty", post("Transfer-Encoding: \r\n", ""), 400},
      {"TeOnHttp10",
       "POST /p HTTP/1.0\r\nHost: smuggle.test\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
       400},
      {"TeGzipThenChunked501", post("Transfer-Encoding: gzip, chunked\r\n", "0\r\n\r\n"), 501},
      {"TeCustomThenChunked501", post("Transfer-Encoding: x-custom, chunked\r\n", "0\r\n\r\n"),
       501},
      {"TeIdentityThenChunked501", post("Transfer-Encoding: identity, chunked\r\n", "0\r\n\r\n"),
       501},
  };
}

std::vector<RejectCase> chunkSizeAbuse() {
  const Stage body = Stage::kBody;
  return {
      {"ChunkSizeNotHex", chunkedPost("g\r\nhello\r\n0\r\n\r\n"), 400, body},
      {"ChunkSizeOverflow", chunkedPost("10000000000000000\r\nx\r\n0\r\n\r\n"), 400, body},
      {"ChunkSizeNegative", chunkedPost("-1\r\nx\r\n0\r\n\r\n"), 400, body},
      {"ChunkSizeHexPrefix", chunkedPost("0x5\r\nhello\r\n0\r\n\r\n"), 400, body},
      {"ChunkSizeLeadingSpace", chunkedPost(" 5\r\nhello\r\n0\r\n\r\n"), 400, body},
      {"ChunkSizeTrailingSpace", chunkedPost("5 \r\nhello\r\n0\r\n\r\n"), 400, body},
      {"ChunkSizeEmpty", chunkedPost("\r\nhello\r\n0\r\n\r\n"), 400, body},
      {"ChunkSizeBareLf", chunkedPost("5\nhello\r\n0\r\n\r\n"), 400, body},
      {"ChunkSizeBareCr", chunkedPost("5\rhello\r\n0\r\n\r\n"), 400, body},
      {"ChunkDataTooLong", chunkedPost("3\r\nhello\r\n0\r\n\r\n"), 400, body},
      {"ChunkDataBareLf", chunkedPost("5\r\nhello\n0\r\n\r\n"), 400, body},
      {"LaterChunkInvalid", chunkedPost("5\r\nhello\r\nzz\r\n0\r\n\r\n"), 400, body},
      {"ChunkExtensionControlChar", chunkedPost("5;a=\x01\r\nhello\r\n0\r\n\r\n"), 400, body},
      {"LastChunkBareLf", chunkedPost("5\r\nhello\r\n0\n\n"), 400, body},
      {"TrailerObsFold", chunkedPost("0\r\nX-T: a\r\n b\r\n\r\n"), 400, body},
      {"TrailerSpaceBeforeColon", chunkedPost("0\r\nX-T : a\r\n\r\n"), 400, body},
      {"TrailerNulInValue", chunkedPost(literalBytes("0\r\nX-T: a\0b\r\n\r\n")), 400, body},
      {"ChunkedBodyOverMaxBodySize413",
       chunkedPost("800\r\n" + std::string(2048, 'x') + "\r\n0\r\n\r\n"), 413, body},
  };
}

std::vector<RejectCase> bareCrLfAndFolding() {
  return {
      {"RequestLineBareLf", "GET / HTTP/1.1\nHost: smuggle.test\r\n\r\n", 400},
      {"AllBareLf", "GET / HTTP/1.1\nHost: smuggle.test\n\n", 400},
      {"FieldLineBareLf", get("X-A: a\nX-B: b\r\n"), 400},
      {"BareCrInValue", get("X-A: a\rb\r\n"), 400},
      {"BareCrInTarget", withHost("GET /a\rb HTTP/1.1"), 400},
      {"FieldEndsCrCrLf", get("X-A: a\r\r\n"), 400},
      {"EmptyLineBareLf", "GET / HTTP/1.1\r\nHost: smuggle.test\r\n\n", 400},
      {"ObsFoldSpace", get("X-A: a\r\n b\r\n"), 400},
      {"ObsFoldTab", get("X-A: a\r\n\tb\r\n"), 400},
      {"ObsFoldHost", "GET / HTTP/1.1\r\nHost:\r\n smuggle.test\r\n\r\n", 400},
      {"WhitespaceBeforeFirstField", "GET / HTTP/1.1\r\n Host: smuggle.test\r\n\r\n", 400},
  };
}

std::vector<RejectCase> controlCharactersAndFieldNames() {
  return {
      {"NulInValue", get(literalBytes("X-A: a\0b\r\n")), 400},
      {"NulInTarget", withHost(literalBytes("GET /a\0b HTTP/1.1")), 400},
      {"NulInFieldName", get(literalBytes("X-\0A: b\r\n")), 400},
      {"DelInValue", get(std::string("X-A: a\x7f") + "b\r\n"), 400},
      {"EscInValue", get("X-A: a\x1b[0m\r\n"), 400},
      {"DelInTarget", withHost("GET /a\x7f HTTP/1.1"), 400},
      {"ControlInMethod", withHost("G\x01T / HTTP/1.1"), 400},
      {"SpaceInFieldName", get("X A: b\r\n"), 400},
      {"TabBeforeColon", get("X-A\t: b\r\n"), 400},
      {"EmptyFieldName", get(": b\r\n"), 400},
      {"ParenInFieldName", get("X(A): b\r\n"), 400},
      {"BracketInFieldName", get("[X]: b\r\n"), 400},
      {"NonAsciiFieldName", get(std::string("H\xc3\xa9") + "ader: b\r\n"), 400},
      {"FieldWithoutColon", get("JustAName\r\n"), 400},
  };
}

std::vector<RejectCase> hostRules() {
  return {
      {"MissingHost", "GET / HTTP/1.1\r\n\r\n", 400},
      {"TwoHosts", get("Host: other.test\r\n"), 400},
      {"TwoIdenticalHosts", get("Host: smuggle.test\r\n"), 400},
      {"EmptyHost", "GET / HTTP/1.1\r\nHost: \r\n\r\n", 400},
      {"HostWithUserinfo", "GET / HTTP/1.1\r\nHost: user@smuggle.test\r\n\r\n", 400},
      {"HostWithSpace", "GET / HTTP/1.1\r\nHost: smuggle test\r\n\r\n", 400},
      {"HostWithPath", "GET / HTTP/1.1\r\nHost: smuggle.test/x\r\n\r\n", 400},
      {"HostBadPort", "GET / HTTP/1.1\r\nHost: smuggle.test:http\r\n\r\n", 400},
      {"HostLongPort", "GET / HTTP/1.1\r\nHost: smuggle.test:123456\r\n\r\n", 400},
      {"HostUnclosedIpLiteral", "GET / HTTP/1.1\r\nHost: [::1\r\n\r\n", 400},
      {"AbsoluteFormDisagreesWithHost", withHost("GET http://other.test/ HTTP/1.1"), 400},
      {"AbsoluteFormWithoutHost", "GET http://smuggle.test/ HTTP/1.1\r\n\r\n", 400},
      {"AbsoluteFormUserinfo", withHost("GET http://u@smuggle.test/ HTTP/1.1"), 400},
  };
}

std::vector<RejectCase> requestLineAbuse() {
  return {
      {"DoubleSpace", withHost("GET  / HTTP/1.1"), 400},
      {"TabSeparator", withHost("GET\t/ HTTP/1.1"), 400},
      {"LeadingSpace", withHost(" GET / HTTP/1.1"), 400},
      {"TrailingSpace", withHost("GET / HTTP/1.1 "), 400},
      {"LowerCaseVersion", withHost("GET / http/1.1"), 400},
      {"VersionTwoDigitMinor", withHost("GET / HTTP/1.10"), 400},
      {"NoVersion", "GET /\r\nHost: smuggle.test\r\n\r\n", 400},
      {"RelativeTarget", withHost("GET foo HTTP/1.1"), 400},
      {"AsteriskWithoutOptions", withHost("GET * HTTP/1.1"), 400},
      {"AbsoluteFormQueryWithoutPath", withHost("GET http://smuggle.test?q HTTP/1.1"), 400},
      {"AtInMethod", withHost("GE@T / HTTP/1.1"), 400},
      {"Http20Version505", withHost("GET / HTTP/2.0"), 505},
      {"Http09Version505", withHost("GET / HTTP/0.9"), 505},
      {"Http12Version505", withHost("GET / HTTP/1.2"), 505},
      {"Connect501", withHost("CONNECT smuggle.test:443 HTTP/1.1"), 501},
  };
}

std::vector<RejectCase> sizeLimitsAndExpect() {
  std::string many;
  for (int i = 0; i < 25; ++i) many += "X-F" + std::to_string(i) + ": v\r\n";
  return {
      {"RequestLineOver8k414", withHost("GET /" + std::string(9000, 'a') + " HTTP/1.1"), 414},
      {"HeadOver16k431", get("X-Big: " + std::string(17 * 1024, 'b') + "\r\n"), 431},
      {"TooManyFields431", get(many), 431},
      {"ContentLengthOverMaxBodySize413", post("Content-Length: 2048\r\n", std::string(2048, 'x')),
       413},
      {"ExpectUnknown417", post("Content-Length: 5\r\nExpect: something\r\n", "hello"), 417},
      {"ExpectContinueAndMore417",
       post("Content-Length: 5\r\nExpect: 100-continue, x\r\n", "hello"), 417},
      {"ExpectEmpty417", get("Expect: \r\n"), 417},
      {"ExpectContinueOverMaxBodySize413",
       post("Content-Length: 2048\r\nExpect: 100-continue\r\n", ""), 413},
  };
}

std::vector<RejectCase> rejectCases() {
  std::vector<RejectCase> all;
  for (auto group : {contentLengthAndTransferEncoding(), transferEncodingObfuscation(),
                     chunkSizeAbuse(), bareCrLfAndFolding(), controlCharactersAndFieldNames(),
                     hostRules(), requestLineAbuse(), sizeLimitsAndExpect()}) {
    all.insert(all.end(), group.begin(), group.end());
  }
  return all;
}

class RejectedRequestTest : public SharedProxyTest<RejectCase> {};

TEST_P(RejectedRequestTest, AnswersClosesAndForwardsNothing) {
  const RejectCase& c = GetParam();
  FakeBackend& backend = rig_->backend();
  const size_t requests_before = backend.requestCount();
  const size_t bytes_before = backend.receivedBytes().size();
  const int connections_before = backend.connectionCount();
  const int closed_before = rig_->closedConnections();

  Client client(rig_->port());
  ASSERT_TRUE(client.sendRaw(c.bytes + canary(c.name, false))) << client.error();
  auto response = client.readResponse(Millis(5000));
  ASSERT_TRUE(response) << client.error();
  EXPECT_EQ(response->status, c.status) << response->raw_head;
  EXPECT_EQ(response->header("Connection").value_or("(none)"), "close") << response->raw_head;
  bool closed = false;
  std::string after = client.readUntilClose(Millis(3000), &closed);
  EXPECT_TRUE(closed) << "the connection stayed open after the error answer";
  EXPECT_EQ(after, "") << "bytes after the error answer: the canary was answered";

  std::string error;
  ASSERT_TRUE(rig_->sync(c.name, &error)) << error;
  if (c.stage == Stage::kBody) {
    // The connection taken for the request is closed unused; wait for its EOF so any byte the
    // proxy might have written on it has been recorded.
    EXPECT_TRUE(
        waitFor([&] { return rig_->closedConnections() == closed_before + 1; }, Millis(3000)))
        << "the backend connection taken for the rejected body was not closed";
  } else {
    EXPECT_EQ(backend.connectionCount(), connections_before) << "a backend connection was opened";
    EXPECT_EQ(rig_->closedConnections(), closed_before);
  }
  std::vector<Request> seen = backend.requests();
  ASSERT_EQ(seen.size(), requests_before + 1) << "requests other than the sync reached the backend";
  EXPECT_EQ(seen.back().target, "/sync/" + std::string(c.name));
  EXPECT_EQ(backend.receivedBytes().size() - bytes_before,
            seen.back().raw_head.size() + seen.back().raw_body.size())
      << "bytes other than the sync request reached the backend";
}

INSTANTIATE_TEST_SUITE_P(Corpus, RejectedRequestTest, ::testing::ValuesIn(rejectCases()),
                         [](const auto& info) { return std::string(info.param.name); });

// A rejected request pipelined behind a valid one: the first is served, the second answered with
// its status, and nothing after it is read.
TEST_F(RejectedRequestTest, RejectionAfterAServedRequestEndsTheConnection) {
  FakeBackend& backend = rig_->backend();
  const size_t requests_before = backend.requestCount();

  Client client(rig_->port());
  ASSERT_TRUE(
      client.sendRaw(withHost("GET /served-first HTTP/1.1") +
                     post("Content-Length: 5\r\nTransfer-Encoding: chunked\r\n", "0\r\n\r\n") +
                     canary("AfterAServedRequest", false)))
      << client.error();
  auto first = client.readResponse(Millis(5000));
  ASSERT_TRUE(first) << client.error();
  EXPECT_EQ(first->status, 200);
  auto second = client.readResponse(Millis(5000));
  ASSERT_TRUE(second) << client.error();
  EXPECT_EQ(second->status, 400);
  EXPECT_EQ(second->header("Connection").value_or(""), "close");
  bool closed = false;
  EXPECT_EQ(client.readUntilClose(Millis(3000), &closed), "");
  EXPECT_TRUE(closed);

  std::string error;
  ASSERT_TRUE(rig_->sync("AfterAServedRequest", &error)) << error;
  std::vector<Request> seen = backend.requests();
  ASSERT_EQ(seen.size(), requests_before + 2);
  EXPECT_EQ(seen[requests_before].target, "/served-first");
  EXPECT_EQ(seen[requests_before + 1].target, "/sync/AfterAServedRequest");
}

// --- accepted requests --------------------------------------------------------------------------

struct AcceptCase {
  const char* name;
  std::string bytes;               // one or more requests, sent at once
  std::vector<Expected> backend;   // what the backend receives for them, in order
  bool keep_alive = true;          // the connection stays open: the canary is served
  std::string connection_field{};  // expected "Connection" of the responses ("" = none)
};

void PrintTo(const AcceptCase& c, std::ostream* out) {
  *out << c.name;
}

// Hex size line of a chunk of `n` bytes.
std::string chunkSize(size_t n) {
  char line[32];
  std::snprintf(line, sizeof line, "%zx\r\n", n);
  return line;
}

std::vector<AcceptCase> framingCases() {
  const std::string kPost = "POST /p HTTP/1.1";
  const std::string smuggled = withHost("GET /smuggled HTTP/1.1");
  const std::string fake_end = "0\r\n\r\n" + smuggled;
  return {
      {"DuplicateIdenticalContentLength",
       post("Content-Length: 5\r\nContent-Length: 5\r\n", "hello"),
       {withLength(kPost, "hello")}},
      {"ContentLengthListOfOneValue",
       post("Content-Length: 5, 5\r\n", "hello"),
       {withLength(kPost, "hello")}},
      {"ContentLengthLeadingZeros",
       post("Content-Length: 005\r\n", "hello"),
       {withLength(kPost, "hello")}},
      {"ContentLengthZero", post("Content-Length: 0\r\n", ""), {withLength(kPost, "")}},
      {"GetWithBody",
       "GET /g HTTP/1.1\r\nHost: smuggle.test\r\nContent-Length: 3\r\n\r\nabc",
       {withLength("GET /g HTTP/1.1", "abc")}},
      {"ChunkExtensionsAndTrailersDropped",
       chunkedPost("5;name=value\r\nhello\r\n6;a;b=\"q;r\"\r\n world\r\n0;last\r\n"
                   "X-Trailer: t\r\nX-Other: u\r\n\r\n"),
       {withChunks(kPost, "hello world")}},
      {"ChunkSizesUpperCaseWithZeros",
       chunkedPost("000A\r\n0123456789\r\n00\r\n\r\n"),
       {withChunks(kPost, "0123456789")}},
      {"ChunkExtensionAfterWhitespace",
       chunkedPost("5 ;x\r\nhello\r\n0\r\n\r\n"),
       {withChunks(kPost, "hello")}},
      {"EmptyChunkedBody", chunkedPost("0\r\n\r\n"), {withChunks(kPost, "")}},
      {"TransferEncodingUpperCase",
       post("Transfer-Encoding: CHUNKED\r\n", "3\r\nabc\r\n0\r\n\r\n"),
       {withChunks(kPost, "abc")}},
      {"TransferEncodingTabs",
       post("Transfer-Encoding:\tchunked\t\r\n", "3\r\nabc\r\n0\r\n\r\n"),
       {withChunks(kPost, "abc")}},
      {"TransferEncodingEmptyListElements",
       post("Transfer-Encoding: , chunked ,\r\n", "3\r\nabc\r\n0\r\n\r\n"),
       {withChunks(kPost, "abc")}},
      {"TeTrailersKeptWithChunked",
       post("TE: trailers\r\nTransfer-Encoding: chunked\r\n", "3\r\nabc\r\n0\r\n\r\n"),
       {withChunks(kPost, "abc", {"Host: smuggle.test", "TE: trailers"})}},
      {"BodyThatLooksLikeARequest",
       post("Content-Length: " + std::to_string(smuggled.size()) + "\r\n", smuggled),
       {withLength(kPost, smuggled)}},
      {"ChunkDataThatLooksLikeTheEnd",
       chunkedPost(chunkSize(fake_end.size()) + fake_end + "\r\n0\r\n\r\n"),
       {withChunks(kPost, fake_end)}},
  };
}

std::vector<AcceptCase> headCases() {
  const std::vector<std::string> kHostOnly = {"Host: smuggle.test"};
  return {
      {"AbsoluteFormRegeneratesHost",
       "GET http://smuggle.test/abs?q=1 HTTP/1.1\r\nHost: SMUGGLE.test\r\nX-A: 1\r\n\r\n",
       {bodiless("/abs?q=1", {"Host: smuggle.test", "X-A: 1"})}},
      {"AbsoluteFormWithPort",
       "GET http://smuggle.test:8080/p HTTP/1.1\r\nHost: smuggle.test:8080\r\n\r\n",
       {{upstreamHead("GET /p HTTP/1.1", {"Host: smuggle.test:8080"},
                      forwarded("smuggle.test:8080")),
         "", false}}},
      {"AbsoluteFormWithoutPath", withHost("GET http://smuggle.test HTTP/1.1"), {bodiless("/")}},
      {"HopByHopFieldsRemoved",
       get("Connection: keep-alive, X-Drop\r\nX-Drop: secret\r\nKeep-Alive: timeout=5\r\n"
           "Proxy-Connection: keep-alive\r\nUpgrade: h2c\r\nTE: gzip\r\nTrailer: X-T\r\n"
           "X-Keep: yes\r\n"),
       {bodiless("/", {"Host: smuggle.test", "X-Keep: yes"})}},
      {"UpgradeWebSocketWithoutConnectionUpgrade", get("Upgrade: websocket\r\n"), {bodiless("/")}},
      {"LeadingEmptyLines", "\r\n\r\n" + withHost("GET /lead HTTP/1.1"), {bodiless("/lead")}},
      {"WhitespaceTrimmedAndObsTextKept",
       get("X-Ows: \t spaced out \t\r\nX-Bytes: caf\xc3\xa9\r\n"),
       {bodiless("/", {"Host: smuggle.test", "X-Ows: spaced out", "X-Bytes: caf\xc3\xa9"})}},
      {"FieldNamesKeepTheirCase",
       get("x-MiXeD-Case: v\r\n"),
       {bodiless("/", {"Host: smuggle.test", "x-MiXeD-Case: v"})}},
      {"ForwardedForAppended",
       get("X-Forwarded-For: 192.0.2.1, 198.51.100.2\r\n"),
       {{upstreamHead("GET / HTTP/1.1", kHostOnly,
                      forwarded(kHost, "192.0.2.1, 198.51.100.2, 127.0.0.1")),
         "", false}}},
      {"ExpectContinueWithoutBody",
       get("Expect: 100-continue\r\n"),
       {bodiless("/", {"Host: smuggle.test", "Expect: 100-continue"})}},
  };
}

std::vector<AcceptCase> connectionCases() {
  return {
      {"PipelinedPair",
       withHost("GET /one HTTP/1.1") + withHost("GET /two HTTP/1.1"),
       {bodiless("/one"), bodiless("/two")}},
      {"PipelinedBodyThenRequest",
       post("Content-Length: 5\r\n", "hello") + withHost("GET /next HTTP/1.1"),
       {withLength("POST /p HTTP/1.1", "hello"), bodiless("/next")}},
      {"PipelinedChunkedThenRequest",
       chunkedPost("5\r\nhello\r\n0\r\nX-T: 1\r\n\r\n") + withHost("GET /next HTTP/1.1"),
       {withChunks("POST /p HTTP/1.1", "hello"), bodiless("/next")}},
      {"Http10KeepAlive",
       "GET /old HTTP/1.0\r\nHost: smuggle.test\r\nConnection: keep-alive\r\n\r\n",
       {bodiless("/old")},
       true,
       "keep-alive"},
      {"Http10WithBody",
       "POST /old HTTP/1.0\r\nHost: smuggle.test\r\nContent-Length: 2\r\n\r\nhi",
       {withLength("POST /old HTTP/1.1", "hi")},
       false,
       "close"},
      {"Http10WithoutHost",
       "GET /nohost HTTP/1.0\r\n\r\n",
       {{upstreamHead("GET /nohost HTTP/1.1", {"Host: "}, forwarded("")), "", false}},
       false,
       "close"},
      {"ConnectionCloseServesOneRequest",
       get("Connection: close\r\n"),
       {bodiless("/")},
       false,
       "close"},
  };
}

std::vector<AcceptCase> acceptCases() {
  std::vector<AcceptCase> all;
  for (auto group : {framingCases(), headCases(), connectionCases()}) {
    all.insert(all.end(), group.begin(), group.end());
  }
  return all;
}

class AcceptedRequestTest : public SharedProxyTest<AcceptCase> {};

TEST_P(AcceptedRequestTest, ReachesTheBackendAsOneCanonicalMessage) {
  const AcceptCase& c = GetParam();
  FakeBackend& backend = rig_->backend();
  const size_t requests_before = backend.requestCount();
  const size_t bytes_before = backend.receivedBytes().size();
  std::vector<Expected> expected = c.backend;
  if (c.keep_alive) expected.push_back(bodiless(canaryTarget(c.name, true)));

  Client client(rig_->port());
  ASSERT_TRUE(client.sendRaw(c.bytes + canary(c.name, c.keep_alive))) << client.error();
  for (size_t i = 0; i < expected.size(); ++i) {
    SCOPED_TRACE("response " + std::to_string(i + 1));
    auto response = client.readResponse(Millis(5000));
    ASSERT_TRUE(response) << client.error();
    EXPECT_EQ(response->status, 200) << response->raw_head;
    EXPECT_TRUE(sameBytes(expected[i].body, response->body)) << "echoed body";
    // The case's own answers carry its Connection field, except that only the last one of a
    // closing connection says "close"; the canary's answer has none.
    bool own = i < c.backend.size();
    bool says = c.keep_alive ? own : i + 1 == expected.size();
    EXPECT_EQ(response->header("Connection").value_or(""), says ? c.connection_field : "")
        << response->raw_head;
  }
  if (!c.keep_alive) {
    bool closed = false;
    EXPECT_EQ(client.readUntilClose(Millis(3000), &closed), "") << "the canary was answered";
    EXPECT_TRUE(closed) << "the connection stayed open";
  }

  ASSERT_TRUE(backend.waitForRequests(requests_before + expected.size(), Millis(3000)));
  std::vector<Request> seen = backend.requests();
  ASSERT_EQ(seen.size(), requests_before + expected.size());
  size_t bytes = 0;
  for (size_t i = 0; i < expected.size(); ++i) {
    const Request& r = seen[requests_before + i];
    SCOPED_TRACE("message " + std::to_string(i + 1) + " at the backend");
    EXPECT_TRUE(canonicalRequest(r));
    EXPECT_EQ(r.raw_head, expected[i].head);
    EXPECT_EQ(r.chunked, expected[i].chunked) << r.raw_head;
    EXPECT_TRUE(sameBytes(expected[i].body, r.body)) << "decoded body";
    if (!r.chunked) {
      EXPECT_TRUE(sameBytes(expected[i].body, r.raw_body)) << "raw body";
    }
    bytes += r.raw_head.size() + r.raw_body.size();
  }
  EXPECT_EQ(backend.receivedBytes().size() - bytes_before, bytes)
      << "bytes outside the expected messages reached the backend";
}

// A chunked body that turns malformed after its head and first chunk were already forwarded (a
// streaming proxy cannot hold them back): the client gets 400 and a close, and the backend never
// gets a complete message, because the proxy closes that connection before any last chunk.
class LateBodyErrorTest : public ProxyTest {};

TEST_F(LateBodyErrorTest, BackendGetsATruncatedMessageAndACloseNeverTheCanary) {
  FakeBackend backend(FakeBackend::echo());
  ProxyOptions options = ProxyOptions::forBackends({backend.port()});
  Proxy* proxy = startProxy(options);
  ASSERT_NE(proxy, nullptr);

  Client client(proxy->port());
  ASSERT_TRUE(client.sendRaw(chunkedPost("5\r\nhello\r\n"))) << client.error();
  ASSERT_TRUE(waitFor([&] { return backend.receivedBytes().find("hello") != std::string::npos; },
                      Millis(3000)))
      << "the first chunk was not forwarded";
  ASSERT_TRUE(client.sendRaw("zz\r\n" + canary("LateBodyError", false))) << client.error();
  auto response = client.readResponse(Millis(5000));
  ASSERT_TRUE(response) << client.error();
  EXPECT_EQ(response->status, 400);
  EXPECT_EQ(response->header("Connection").value_or(""), "close");
  EXPECT_TRUE(client.waitForClose(Millis(3000)));

  EXPECT_TRUE(backend.waitForPeerClose(0, Millis(3000)));
  EXPECT_EQ(backend.requestCount(), 0u) << "a complete message reached the backend";
  EXPECT_EQ(backend.connectionCount(), 1);
  std::string received = backend.receivedBytes();
  EXPECT_EQ(received.find("/never-served/"), std::string::npos);
  EXPECT_EQ(received.find("zz"), std::string::npos);
  EXPECT_TRUE(received.ends_with("\r\n\r\n5\r\nhello\r\n")) << received;
  EXPECT_THAT(backend.errors(),
              ::testing::ElementsAre(::testing::HasSubstr("in the middle of the body")));
}

INSTANTIATE_TEST_SUITE_P(Corpus, AcceptedRequestTest, ::testing::ValuesIn(acceptCases()),
                         [](const auto& info) { return std::string(info.param.name); });

}  // namespace
}  // namespace speedmimi::test
