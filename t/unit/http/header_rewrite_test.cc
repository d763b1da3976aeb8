#include "http/header_rewrite.h"

#include <gtest/gtest.h>

#include "http/parser.h"

#include <deque>
#include <ostream>
#include <string>
#include <utility>
#include <vector>

namespace speedmimi::http {
namespace {

// ---- Request heads to the backend ----

struct RequestCase {
  const char* name;
  std::string_view method;
  std::string_view target;
  std::vector<Header> headers;
  RequestInfo info;
  ForwardContext ctx;
  std::string expected;
};

RequestInfo requestInfo(std::string_view host, std::string_view path) {
  RequestInfo info;
  info.host = host;
  info.path = path;
  return info;
}

ForwardContext forwardContext(bool tls = false, bool tunnel = false) {
  ForwardContext ctx;
  ctx.peer_ip = "127.0.0.2";
  ctx.real_ip = "127.0.0.9";
  ctx.tls = tls;
  ctx.tunnel = tunnel;
  return ctx;
}

RequestInfo withLength(RequestInfo info, uint64_t length) {
  info.framing = BodyFraming::kContentLength;
  info.content_length = length;
  return info;
}

RequestInfo chunked(RequestInfo info) {
  info.framing = BodyFraming::kChunked;
  return info;
}

RequestInfo absoluteForm(RequestInfo info) {
  info.absolute_form = true;
  return info;
}

// What every request gets after the client's fields, for the default context and host a.test.
const std::string kForwarded =
    "X-Forwarded-For: 127.0.0.2\r\n"
    "X-Real-IP: 127.0.0.9\r\n"
    "X-Forwarded-Proto: http\r\n"
    "X-Forwarded-Host: a.test\r\n"
    "\r\n";

// Names the case in failure messages instead of dumping its bytes.
void PrintTo(const RequestCase& c, std::ostream* os) {
  *os << c.name;
}

class UpstreamRequestTest : public ::testing::TestWithParam<RequestCase> {};

TEST_P(UpstreamRequestTest, Writes) {
  const RequestCase& c = GetParam();
  RequestHead head;
  head.method = c.method;
  head.target = c.target;
  head.headers = c.headers.data();
  head.num_headers = c.headers.size();
  std::string out = "kept:";  // the function appends
  appendUpstreamRequestHead(head, c.info, c.ctx, out);
  EXPECT_EQ(out, "kept:" + c.expected);
}

INSTANTIATE_TEST_SUITE_P(
    Cases, UpstreamRequestTest,
    ::testing::Values(RequestCase{"simple_get",
                                  "GET",
                                  "/index.html?x=1",
                                  {{"Host", "a.test"}, {"User-Agent", "t/1"}, {"Accept", "*/*"}},
                                  requestInfo("a.test", "/index.html?x=1"),
                                  forwardContext(),
                                  "GET /index.html?x=1 HTTP/1.1\r\n"
                                  "Host: a.test\r\n"
                                  "User-Agent: t/1\r\n"
                                  "Accept: */*\r\n" +
                                      kForwarded},
                      RequestCase{"names_and_values_copied_as_given",
                                  "GET",
                                  "/",
                                  {{"host", "A.Test"}, {"x-CUSTOM", "MiXeD Value"}},
                                  requestInfo("A.Test", "/"),
                                  forwardContext(),
                                  "GET / HTTP/1.1\r\n"
                                  "host: A.Test\r\n"
                                  "x-CUSTOM: MiXeD Value\r\n"
                                  "X-Forwarded-For: 127.0.0.2\r\n"
                                  "X-Real-IP: 127.0.0.9\r\n"
                                  "X-Forwarded-Proto: http\r\n"
                                  "X-Forwarded-Host: A.Test\r\n"
                                  "\r\n"},
                      RequestCase{"hop_by_hop_and_nominated_fields_dropped",
                                  "GET",
                                  "/",
                                  {{"Host", "a.test"},
                                   {"Connection", "close"},
                                   {"Foo", "1"},
                                   {"connection", "foo, Bar"},
                                   {"bar", "2"},
                                   {"Keep-Alive", "timeout=5"},
                                   {"Proxy-Connection", "keep-alive"},
                                   {"Trailer", "X-Sum"},
                                   {"Upgrade", "h2c"},
                                   {"Foobar", "3"}},
                                  requestInfo("a.test", "/"),
                                  forwardContext(),
                                  "GET / HTTP/1.1\r\n"
                                  "Host: a.test\r\n"
                                  "Foobar: 3\r\n" +
                                      kForwarded},
                      RequestCase{"connection_cannot_remove_host",
                                  "GET",
                                  "/",
                                  {{"Connection", "Host"}, {"Host", "a.test"}},
                                  requestInfo("a.test", "/"),
                                  forwardContext(),
                                  "GET / HTTP/1.1\r\n"
                                  "Host: a.test\r\n" +
                                      kForwarded},
                      RequestCase{"te_trailers_kept",
                                  "GET",
                                  "/",
                                  {{"Host", "a.test"}, {"TE", "trailers"}, {"Connection", "TE"}},
                                  requestInfo("a.test", "/"),
                                  forwardContext(),
                                  "GET / HTTP/1.1\r\n"
                                  "Host: a.test\r\n"
                                  "TE: trailers\r\n" +
                                      kForwarded},
                      RequestCase{"te_other_codings_dropped",
                                  "GET",
                                  "/",
                                  {{"Host", "a.test"}, {"TE", "gzip"}, {"te", "trailers, deflate"}},
                                  requestInfo("a.test", "/"),
                                  forwardContext(),
                                  "GET / HTTP/1.1\r\n"
                                  "Host: a.test\r\n" +
                                      kForwarded},
                      RequestCase{"xff_appended_and_client_forwarding_fields_replaced",
                                  "GET",
                                  "/",
                                  {{"Host", "a.test"},
                                   {"X-Forwarded-For", "127.0.0.5"},
                                   {"X-Real-IP", "127.0.0.66"},
                                   {"X-Forwarded-Proto", "https"},
                                   {"X-Forwarded-Host", "evil.test"}},
                                  requestInfo("a.test", "/"),
                                  forwardContext(true),
                                  "GET / HTTP/1.1\r\n"
                                  "Host: a.test\r\n"
                                  "X-Forwarded-For: 127.0.0.5, 127.0.0.2\r\n"
                                  "X-Real-IP: 127.0.0.9\r\n"
                                  "X-Forwarded-Proto: https\r\n"
                                  "X-Forwarded-Host: a.test\r\n"
                                  "\r\n"},
                      RequestCase{"xff_named_by_connection_is_not_forwarded",
                                  "GET",
                                  "/",
                                  {{"Host", "a.test"},
                                   {"X-Forwarded-For", "127.0.0.5"},
                                   {"Connection", "X-Forwarded-For"}},
                                  requestInfo("a.test", "/"),
                                  forwardContext(),
                                  "GET / HTTP/1.1\r\n"
                                  "Host: a.test\r\n" +
                                      kForwarded},
                      RequestCase{"xff_lines_joined",
                                  "GET",
                                  "/",
                                  {{"x-forwarded-for", "127.0.0.5, 127.0.0.6"},
                                   {"Host", "a.test"},
                                   {"X-Forwarded-For", ""},
                                   {"X-Forwarded-For", "127.0.0.7"}},
                                  requestInfo("a.test", "/"),
                                  forwardContext(),
                                  "GET / HTTP/1.1\r\n"
                                  "Host: a.test\r\n"
                                  "X-Forwarded-For: 127.0.0.5, 127.0.0.6, 127.0.0.7, 127.0.0.2\r\n"
                                  "X-Real-IP: 127.0.0.9\r\n"
                                  "X-Forwarded-Proto: http\r\n"
                                  "X-Forwarded-Host: a.test\r\n"
                                  "\r\n"},
                      RequestCase{"absolute_form_regenerates_host",
                                  "GET",
                                  "http://a.test:8080/p?q=1",
                                  {{"Accept", "*/*"}, {"Host", "a.test:8080"}},
                                  absoluteForm(requestInfo("a.test:8080", "/p?q=1")),
                                  forwardContext(),
                                  "GET /p?q=1 HTTP/1.1\r\n"
                                  "Host: a.test:8080\r\n"
                                  "Accept: */*\r\n"
                                  "X-Forwarded-For: 127.0.0.2\r\n"
                                  "X-Real-IP: 127.0.0.9\r\n"
                                  "X-Forwarded-Proto: http\r\n"
                                  "X-Forwarded-Host: a.test:8080\r\n"
                                  "\r\n"},
                      RequestCase{"http10_without_host_gets_an_empty_host",
                                  "GET",
                                  "/",
                                  {{"Accept", "*/*"}},
                                  requestInfo("", "/"),
                                  forwardContext(),
                                  "GET / HTTP/1.1\r\n"
                                  "Host: \r\n"
                                  "Accept: */*\r\n"
                                  "X-Forwarded-For: 127.0.0.2\r\n"
                                  "X-Real-IP: 127.0.0.9\r\n"
                                  "X-Forwarded-Proto: http\r\n"
                                  "\r\n"},
                      RequestCase{"content_length_reemitted",
                                  "POST",
                                  "/form",
                                  {{"Host", "a.test"},
                                   {"Content-Length", "0012"},
                                   {"Content-Type", "text/plain"}},
                                  withLength(requestInfo("a.test", "/form"), 12),
                                  forwardContext(),
                                  "POST /form HTTP/1.1\r\n"
                                  "Host: a.test\r\n"
                                  "Content-Type: text/plain\r\n"
                                  "Content-Length: 12\r\n" +
                                      kForwarded},
                      RequestCase{"chunked_framing",
                                  "PUT",
                                  "/up",
                                  {{"Host", "a.test"},
                                   {"Transfer-Encoding", "gzip, chunked"},
                                   {"Expect", "100-continue"}},
                                  chunked(requestInfo("a.test", "/up")),
                                  forwardContext(),
                                  "PUT /up HTTP/1.1\r\n"
                                  "Host: a.test\r\n"
                                  "Expect: 100-continue\r\n"
                                  "Transfer-Encoding: chunked\r\n" +
                                      kForwarded},
                      RequestCase{"post_without_body_gets_no_framing",
                                  "POST",
                                  "/ping",
                                  {{"Host", "a.test"}},
                                  requestInfo("a.test", "/ping"),
                                  forwardContext(),
                                  "POST /ping HTTP/1.1\r\n"
                                  "Host: a.test\r\n" +
                                      kForwarded},
                      RequestCase{"websocket_tunnel",
                                  "GET",
                                  "/ws",
                                  {{"Host", "a.test"},
                                   {"Upgrade", "websocket"},
                                   {"Connection", "Upgrade"},
                                   {"Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ=="},
                                   {"Sec-WebSocket-Version", "13"}},
                                  requestInfo("a.test", "/ws"),
                                  forwardContext(false, true),
                                  "GET /ws HTTP/1.1\r\n"
                                  "Host: a.test\r\n"
                                  "Upgrade: websocket\r\n"
                                  "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
                                  "Sec-WebSocket-Version: 13\r\n"
                                  "Connection: upgrade\r\n" +
                                      kForwarded}),
    [](const ::testing::TestParamInfo<RequestCase>& info) { return std::string(info.param.name); });

TEST(UpstreamRequestTest, ReusedBufferDoesNotGrowInSteadyState) {
  const std::vector<Header> headers = {{"Host", "a.test"}, {"Accept", "*/*"}};
  RequestHead head;
  head.method = "GET";
  head.target = "/";
  head.headers = headers.data();
  head.num_headers = headers.size();
  const RequestInfo info = requestInfo("a.test", "/");
  std::string out;
  appendUpstreamRequestHead(head, info, forwardContext(), out);
  const std::string first = out;
  const size_t capacity = out.capacity();
  const char* storage = out.data();
  out.clear();
  appendUpstreamRequestHead(head, info, forwardContext(), out);
  EXPECT_EQ(out, first);
  EXPECT_EQ(out.capacity(), capacity);
  EXPECT_EQ(out.data(), storage);
}

// ---- Response heads to the client ----

struct ResponseCase {
  const char* name;
  int status;
  std::string_view reason;
  std::vector<Header> headers;
  ResponseInfo info;
  ClientResponseContext ctx;
  std::string expected;
};

ResponseInfo responseFraming(BodyFraming framing, uint64_t length = 0) {
  ResponseInfo info;
  info.framing = framing;
  info.content_length = length;
  return info;
}

ClientResponseContext clientContext(int minor, bool keep_alive, bool send_body = true) {
  ClientResponseContext ctx;
  ctx.client_minor_version = minor;
  ctx.keep_alive = keep_alive;
  ctx.send_body = send_body;
  return ctx;
}

ResponseInfo switching() {
  ResponseInfo info;
  info.switching = true;
  return info;
}

ResponseInfo informational() {
  ResponseInfo info;
  info.informational = true;
  return info;
}

void PrintTo(const ResponseCase& c, std::ostream* os) {
  *os << c.name;
}

class ClientResponseTest : public ::testing::TestWithParam<ResponseCase> {};

TEST_P(ClientResponseTest, Writes) {
  const ResponseCase& c = GetParam();
  ResponseHead head;
  head.status = c.status;
  head.reason = c.reason;
  head.headers = c.headers.data();
  head.num_headers = c.headers.size();
  std::string out;
  appendClientResponseHead(head, c.info, c.ctx, out);
  EXPECT_EQ(out, c.expected);
}

INSTANTIATE_TEST_SUITE_P(
    Cases, ClientResponseTest,
    ::testing::Values(
        ResponseCase{"ok_content_length",
                     200,
                     "OK",
                     {{"Server", "be"}, {"Content-Length", "5"}, {"content-type", "text/plain"}},
                     responseFraming(BodyFraming::kContentLength, 5),
                     clientContext(1, true),
                     "HTTP/1.1 200 OK\r\n"
                     "Server: be\r\n"
                     "content-type: text/plain\r\n"
                     "Content-Length: 5\r\n"
                     "\r\n"},
        ResponseCase{"hop_by_hop_dropped_close",
                     200,
                     "Fine",
                     {{"Connection", "keep-alive, X-Hop"},
                      {"Keep-Alive", "timeout=5"},
                      {"X-Hop", "1"},
                      {"Trailer", "X-Sum"},
                      {"Upgrade", "h2c"},
                      {"Proxy-Connection", "close"},
                      {"TE", "trailers"},
                      {"Content-Length", "0"},
                      {"X-End", "2"}},
                     responseFraming(BodyFraming::kContentLength, 0),
                     clientContext(1, false),
                     "HTTP/1.1 200 Fine\r\n"
                     "X-End: 2\r\n"
                     "Content-Length: 0\r\n"
                     "Connection: close\r\n"
                     "\r\n"},
        ResponseCase{"chunked_to_http11",
                     200,
                     "OK",
                     {{"Transfer-Encoding", "chunked"}, {"Content-Type", "text/event-stream"}},
                     responseFraming(BodyFraming::kChunked),
                     clientContext(1, true),
                     "HTTP/1.1 200 OK\r\n"
                     "Content-Type: text/event-stream\r\n"
                     "Transfer-Encoding: chunked\r\n"
                     "\r\n"},
        ResponseCase{"chunked_to_http10_streams_until_close",
                     200,
                     "OK",
                     {{"Transfer-Encoding", "chunked"}, {"ETag", "\"x\""}},
                     responseFraming(BodyFraming::kChunked),
                     clientContext(0, false),
                     "HTTP/1.1 200 OK\r\n"
                     "ETag: \"x\"\r\n"
                     "Connection: close\r\n"
                     "\r\n"},
        ResponseCase{"until_close",
                     200,
                     "OK",
                     {{"Connection", "close"}},
                     responseFraming(BodyFraming::kUntilClose),
                     clientContext(1, false),
                     "HTTP/1.1 200 OK\r\n"
                     "Connection: close\r\n"
                     "\r\n"},
        ResponseCase{"head_keeps_backend_content_length",
                     200,
                     "OK",
                     {{"Content-Length", "1234"}, {"Date", "d"}},
                     responseFraming(BodyFraming::kNone),
                     clientContext(1, true, false),
                     "HTTP/1.1 200 OK\r\n"
                     "Date: d\r\n"
                     "Content-Length: 1234\r\n"
                     "\r\n"},
        ResponseCase{"head_without_content_length",
                     200,
                     "OK",
                     {{"Transfer-Encoding", "chunked"}},
                     responseFraming(BodyFraming::kNone),
                     clientContext(1, true, false),
                     "HTTP/1.1 200 OK\r\n"
                     "\r\n"},
        ResponseCase{"no_content",
                     204,
                     "No Content",
                     {{"Content-Length", "0"}, {"X-A", "b"}},
                     responseFraming(BodyFraming::kNone),
                     clientContext(1, true),
                     "HTTP/1.1 204 No Content\r\n"
                     "X-A: b\r\n"
                     "\r\n"},
        ResponseCase{"not_modified_for_head_too",
                     304,
                     "Not Modified",
                     {{"ETag", "\"v1\""}, {"Content-Length", "99"}},
                     responseFraming(BodyFraming::kNone),
                     clientContext(1, true, false),
                     "HTTP/1.1 304 Not Modified\r\n"
                     "ETag: \"v1\"\r\n"
                     "\r\n"},
        ResponseCase{"switching_protocols",
                     101,
                     "Switching Protocols",
                     {{"Upgrade", "websocket"},
                      {"Connection", "Upgrade"},
                      {"Sec-WebSocket-Accept", "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="}},
                     switching(),
                     clientContext(1, true),
                     "HTTP/1.1 101 Switching Protocols\r\n"
                     "Upgrade: websocket\r\n"
                     "Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n"
                     "Connection: upgrade\r\n"
                     "\r\n"},
        ResponseCase{"continue_has_no_framing_or_connection",
                     100,
                     "Continue",
                     {{"Connection", "keep-alive"}},
                     informational(),
                     clientContext(0, false),
                     "HTTP/1.1 100 Continue\r\n"
                     "\r\n"},
        ResponseCase{"keep_alive_for_http10",
                     200,
                     "OK",
                     {{"Content-Length", "3"}},
                     responseFraming(BodyFraming::kContentLength, 3),
                     clientContext(0, true),
                     "HTTP/1.1 200 OK\r\n"
                     "Content-Length: 3\r\n"
                     "Connection: keep-alive\r\n"
                     "\r\n"},
        ResponseCase{"empty_reason",
                     404,
                     "",
                     {},
                     responseFraming(BodyFraming::kContentLength, 0),
                     clientContext(1, true),
                     "HTTP/1.1 404 \r\n"
                     "Content-Length: 0\r\n"
                     "\r\n"}),
    [](const ::testing::TestParamInfo<ResponseCase>& info) {
      return std::string(info.param.name);
    });

TEST(ClientResponseTest, AppendsAfterExistingBytes) {
  const std::vector<Header> headers = {{"Content-Length", "2"}};
  ResponseHead head;
  head.status = 200;
  head.reason = "OK";
  head.headers = headers.data();
  head.num_headers = headers.size();
  std::string out = "HTTP/1.1 100 Continue\r\n\r\n";
  appendClientResponseHead(head, responseFraming(BodyFraming::kContentLength, 2),
                           clientContext(1, true), out);
  EXPECT_EQ(out, "HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n");
}

// ---- Heads with many fields and many Connection options ----

// A head of `kFields` fields "X-F<i>: v<i>" of which the first `nominated` are named by three
// Connection fields (at the start, in the middle and at the end of the head) in mixed case,
// with OWS, empty elements and options naming absent fields. Sweeping `nominated` from 0 to 60
// crosses any bound the rewriting puts on the options it gathers per head.
struct ManyOptionsHead {
  static constexpr int kFields = 100;

  explicit ManyOptionsHead(int nominated) {
    std::string lists[3];
    for (int i = 0; i < nominated; ++i) {
      std::string& list = lists[i % 3];
      if (!list.empty()) list += i % 2 == 0 ? ", " : " \t,";
      list += (i % 4 == 0 ? "x-f" : "X-F") + std::to_string(i);
      if (i % 5 == 0) list += ", ,absent-" + std::to_string(i);
    }
    for (int i = 0; i < kFields; ++i) {
      if (i == 0 || i == kFields / 2) add("Connection", lists[i == 0 ? 0 : 1]);
      add("X-F" + std::to_string(i), "v" + std::to_string(i));
      if (i >= nominated) kept += "X-F" + std::to_string(i) + ": v" + std::to_string(i) + "\r\n";
    }
    add("connection", lists[2]);
  }

  void add(std::string name, std::string value) {
    names.push_back(std::move(name));
    values.push_back(std::move(value));
    headers.push_back({names.back(), values.back()});
  }

  std::deque<std::string> names;  // deques: growing keeps the views valid
  std::deque<std::string> values;
  std::vector<Header> headers;
  std::string kept;  // the X-F fields that survive, as written
};

TEST(HeaderRewriteManyOptionsTest, RequestDropsExactlyTheNominatedFields) {
  for (int nominated = 0; nominated <= 60; ++nominated) {
    SCOPED_TRACE(nominated);
    ManyOptionsHead many(nominated);
    many.add("Host", "a.test");
    RequestHead head;
    head.method = "GET";
    head.target = "/";
    head.headers = many.headers.data();
    head.num_headers = many.headers.size();
    std::string out;
    appendUpstreamRequestHead(head, requestInfo("a.test", "/"), forwardContext(), out);
    EXPECT_EQ(out, "GET / HTTP/1.1\r\n" + many.kept + "Host: a.test\r\n" + kForwarded);
  }
}

TEST(HeaderRewriteManyOptionsTest, ResponseDropsExactlyTheNominatedFields) {
  for (int nominated = 0; nominated <= 60; ++nominated) {
    SCOPED_TRACE(nominated);
    ManyOptionsHead many(nominated);
    many.add("Content-Length", "0");
    ResponseHead head;
    head.status = 200;
    head.reason = "OK";
    head.headers = many.headers.data();
    head.num_headers = many.headers.size();
    std::string out;
    appendClientResponseHead(head, responseFraming(BodyFraming::kContentLength, 0),
                             clientContext(1, true), out);
    EXPECT_EQ(out, "HTTP/1.1 200 OK\r\n" + many.kept + "Content-Length: 0\r\n\r\n");
  }
}

// Options named only after many others (in a later Connection field) still count, and still
// cannot remove what is end-to-end by rule.
TEST(HeaderRewriteManyOptionsTest, LateOptionsAfterManyOthers) {
  ManyOptionsHead many(50);
  many.add("Connection", "x-late, Keep-Alive, HOST, te, upgrade, X-Forwarded-For");
  many.add("Host", "a.test");
  many.add("TE", "trailers");
  many.add("Upgrade", "websocket");
  many.add("X-Late", "1");
  many.add("X-Forwarded-For", "127.0.0.5");
  many.add("X-Not-Late", "2");
  RequestHead head;
  head.method = "GET";
  head.target = "/ws";
  head.headers = many.headers.data();
  head.num_headers = many.headers.size();
  std::string out;
  appendUpstreamRequestHead(head, requestInfo("a.test", "/ws"), forwardContext(false, true), out);
  EXPECT_EQ(out, "GET /ws HTTP/1.1\r\n" + many.kept +
                     "Host: a.test\r\n"
                     "TE: trailers\r\n"
                     "Upgrade: websocket\r\n"
                     "X-Not-Late: 2\r\n"
                     "Connection: upgrade\r\n" +
                     kForwarded);
}

// ---- Writing a response head straight into reserved buffer space ----

// The densest heads there are: one-letter fields with no OWS, so every field grows by the
// space the proxy writes after the colon, plus the framing and Connection fields it adds.
TEST(HeadWriterTest, AResponseHeadAlwaysFitsItsBound) {
  {  // bare LF endings are refused by the parser
    const char* ending = "\r\n";
    std::string raw = std::string("HTTP/1.1 200 OK") + ending;
    for (int i = 0; i < 99; ++i) raw += std::string(1, static_cast<char>('a' + i % 26)) + ":b" + ending;
    raw += std::string("Content-Length:99999999999999") + ending + ending;
    std::vector<Header> storage(101);
    ResponseHead head;
    ParseError error;
    HeadLimits limits;
    ASSERT_EQ(parseResponseHead(raw, limits, storage, head, error), ParseStatus::kComplete)
        << error.reason;
    ResponseInfo info;
    ASSERT_TRUE(analyzeResponse(head, "GET", false, info, error)) << error.reason;
    for (bool keep_alive : {true, false}) {
      ClientResponseContext ctx;
      ctx.client_minor_version = 0;  // adds "Connection: keep-alive" when kept alive
      ctx.keep_alive = keep_alive;
      std::string expected;
      appendClientResponseHead(head, info, ctx, expected);
      const size_t bound = clientResponseHeadBound(head);
      std::string buffer(bound + 8, '#');
      HeadWriter writer(buffer.data(), bound);
      ASSERT_TRUE(writeClientResponseHead(head, info, ctx, writer));
      EXPECT_EQ(buffer.substr(0, writer.size()), expected);
      EXPECT_EQ(buffer.substr(bound), std::string(8, '#'));
    }
  }
}

TEST(HeadWriterTest, NeverWritesPastItsCapacity) {
  std::string buffer(16, '#');
  HeadWriter writer(buffer.data(), 10);
  writer.append("0123456").append("789");
  EXPECT_FALSE(writer.overflowed());
  writer.append("x");
  EXPECT_TRUE(writer.overflowed());
  EXPECT_EQ(writer.size(), 10u);
  EXPECT_EQ(buffer, "0123456789######");
}

}  // namespace
}  // namespace speedmimi::http
