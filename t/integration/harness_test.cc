// The harness checked on its own, without speedmimi: the client talks to fake backends directly.
// If these fail, a failing proxy test says nothing about the proxy.
#include "harness.h"

#include <cstdlib>

namespace speedmimi::test {
namespace {

using ::testing::ElementsAre;
using ::testing::IsEmpty;

// --- chunked decoding ---------------------------------------------------------------------------

struct ChunkedCase {
  const char* name;
  std::string input;
  bool valid;
  std::string decoded;
};

class ChunkedDecoderTest : public ::testing::TestWithParam<ChunkedCase> {};

TEST_P(ChunkedDecoderTest, WholeAndBytewise) {
  const ChunkedCase& c = GetParam();
  // Whole input at once.
  ChunkedDecoder whole;
  std::string out;
  size_t used = 0;
  auto result = whole.feed(c.input, &used, &out);
  if (c.valid) {
    EXPECT_EQ(result, ChunkedDecoder::Result::kDone) << whole.error();
    EXPECT_EQ(out, c.decoded);
    EXPECT_EQ(used, c.input.size());
  } else {
    EXPECT_NE(result, ChunkedDecoder::Result::kDone);
  }
  // One byte at a time, carrying over what the decoder did not consume.
  ChunkedDecoder bytewise;
  std::string pending;
  std::string out2;
  auto last = ChunkedDecoder::Result::kNeedMore;
  for (char ch : c.input) {
    pending += ch;
    last = bytewise.feed(pending, &used, &out2);
    if (last != ChunkedDecoder::Result::kNeedMore) break;
    pending.erase(0, used);
  }
  if (c.valid) {
    EXPECT_EQ(last, ChunkedDecoder::Result::kDone);
    EXPECT_EQ(out2, c.decoded);
  } else {
    EXPECT_NE(last, ChunkedDecoder::Result::kDone);
  }
}

INSTANTIATE_TEST_SUITE_P(
    Cases, ChunkedDecoderTest,
    ::testing::Values(ChunkedCase{"Empty", "0\r\n\r\n", true, ""},
                      ChunkedCase{"Two", "3\r\nabc\r\n1\r\nd\r\n0\r\n\r\n", true, "abcd"},
                      ChunkedCase{"HexUpper", "A\r\n0123456789\r\n0\r\n\r\n", true, "0123456789"},
                      ChunkedCase{"Extension", "2;x=1\r\nhi\r\n0\r\n\r\n", true, "hi"},
                      ChunkedCase{"Trailer", "2\r\nhi\r\n0\r\nX-T: 1\r\n\r\n", true, "hi"},
                      ChunkedCase{"BareLf", "2\nhi\r\n0\r\n\r\n", false, ""},
                      ChunkedCase{"NotHex", "g\r\nhi\r\n0\r\n\r\n", false, ""},
                      ChunkedCase{"DataTooLong", "1\r\nhi\r\n0\r\n\r\n", false, ""},
                      ChunkedCase{"Overflow", "10000000000000000\r\n", false, ""},
                      ChunkedCase{"NoFinalCrlf", "2\r\nhi\r\n0\r\n", false, ""}),
    [](const auto& info) { return std::string(info.param.name); });

TEST(HarnessHead, ParsesFieldsAndRejectsBadLines) {
  std::string start;
  Headers headers;
  std::string error;
  ASSERT_TRUE(parseHead("GET / HTTP/1.1\r\nHost:  a \r\nX: y\r\n\r\n", &start, &headers, &error));
  EXPECT_EQ(start, "GET / HTTP/1.1");
  ASSERT_EQ(headers.size(), 2u);
  EXPECT_EQ(findHeader(headers, "host").value_or(""), "a");
  EXPECT_FALSE(parseHead("GET / HTTP/1.1\r\nHost : a\r\n\r\n", &start, &headers, &error));
  EXPECT_FALSE(parseHead("GET / HTTP/1.1\r\nNoColon\r\n\r\n", &start, &headers, &error));
  EXPECT_FALSE(parseHead("GET / HTTP/1.1\r\nA: b\r\n c\r\n\r\n", &start, &headers, &error));
}

TEST(HarnessGlob, MatchesDigitsAnyCharAndRuns) {
  EXPECT_TRUE(globMatch("2026/11/27 [error] 12: x", "####/##/## [*] #*: *"));
  EXPECT_TRUE(globMatch("abc", "a?c"));
  EXPECT_TRUE(globMatch("", "*"));
  EXPECT_FALSE(globMatch("2026/1/27", "####/##/##"));
  EXPECT_FALSE(globMatch("abcd", "a?c"));
  EXPECT_FALSE(globMatch("x1", "x#x"));
  EXPECT_FALSE(globMatch("[warn]", "[error]"));
}

// --- WebSocket pieces -------------------------------------------------------------------------

TEST(HarnessWebSocket, AcceptMatchesRfc6455Example) {
  EXPECT_EQ(webSocketAccept("dGhlIHNhbXBsZSBub25jZQ=="), "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=");
}

TEST(HarnessWebSocket, FramesRoundTripAtLengthBoundaries) {
  for (size_t size : {0u, 125u, 126u, 65535u, 65536u}) {
    for (bool masked : {false, true}) {
      std::string payload = patternBytes(size, size);
      std::string wire = encodeWsFrame(kWsText, payload, masked);
      WsFrame frame;
      EXPECT_EQ(decodeWsFrame(wire.substr(0, wire.size() - 1), &frame), 0) << size;
      ASSERT_EQ(decodeWsFrame(wire, &frame), static_cast<long>(wire.size())) << size;
      EXPECT_EQ(frame.payload, payload);
      EXPECT_EQ(frame.masked, masked);
      EXPECT_EQ(frame.opcode, kWsText);
    }
  }
}

// --- fake backend + client, no proxy in between ------------------------------------------------

TEST(HarnessBackend, EchoesContentLengthBodyAndRecordsExactBytes) {
  FakeBackend backend(FakeBackend::echo());
  ASSERT_TRUE(backend.ok());
  std::string body = patternBytes(0, 100'000);
  std::string request = buildRequest("POST", "/echo", {{"Host", "h"}}, body);
  std::string error;
  auto response = fetch(backend.port(), request, &error);
  ASSERT_TRUE(response) << error;
  EXPECT_EQ(response->status, 200);
  EXPECT_EQ(response->body, body);
  EXPECT_EQ(response->header("Content-Length").value_or(""), "100000");
  EXPECT_EQ(backend.receivedBytes(), request);
  ASSERT_EQ(backend.requestCount(), 1u);
  EXPECT_FALSE(backend.requests()[0].chunked);
}

TEST(HarnessBackend, EchoesChunkedBodyChunked) {
  FakeBackend backend(FakeBackend::echo());
  std::string body = patternBytes(7, 70'000);
  std::string request = buildRequest("POST", "/", {}, body, Framing::kChunked, 1000);
  std::string error;
  auto response = fetch(backend.port(), request, &error);
  ASSERT_TRUE(response) << error;
  EXPECT_TRUE(response->chunked);
  EXPECT_EQ(response->body, body);
  auto requests = backend.requests();
  ASSERT_EQ(requests.size(), 1u);
  EXPECT_TRUE(requests[0].chunked);
  EXPECT_EQ(requests[0].body, body);
  EXPECT_EQ(requests[0].raw_body, chunkEncode(body, 1000));
}

TEST(HarnessBackend, KeepAliveAndPipelinedRequestsOnOneConnection) {
  FakeBackend backend(FakeBackend::targetEcho());
  Client client(backend.port());
  ASSERT_TRUE(client.connected()) << client.error();
  ASSERT_TRUE(client.sendRaw(buildRequest("GET", "/a", {}, "", Framing::kNone) +
                             buildRequest("GET", "/b", {}, "", Framing::kNone) +
                             buildRequest("GET", "/c", {}, "", Framing::kNone)));
  std::vector<std::string> bodies;
  for (int i = 0; i < 3; ++i) {
    auto response = client.readResponse();
    ASSERT_TRUE(response) << client.error();
    bodies.push_back(response->body);
  }
  EXPECT_THAT(bodies, ElementsAre("/a", "/b", "/c"));
  EXPECT_EQ(backend.connectionCount(), 1);
  EXPECT_THAT(backend.errors(), IsEmpty());
}

TEST(HarnessBackend, SseEventsArriveOneByOne) {
  auto feed = std::make_shared<EventFeed>();
  FakeBackend backend(FakeBackend::sse(feed));
  Client client(backend.port());
  ASSERT_TRUE(client.sendRaw(
      buildRequest("GET", "/events", {{"Accept", "text/event-stream"}}, "", Framing::kNone)));
  auto head = client.readResponseHead();
  ASSERT_TRUE(head) << client.error();
  EXPECT_EQ(head->header("Content-Type").value_or(""), "text/event-stream");
  std::string body;
  feed->push("data: one\n\n");
  ASSERT_TRUE(client.readBodyUntil(
      &body, [](const std::string& b) { return b.find("one\n\n") != std::string::npos; },
      Millis(5000)))
      << client.error();
  EXPECT_EQ(body, "data: one\n\n");
  EXPECT_EQ(feed->taken(), 1u);
  feed->push("data: two\n\n");
  feed->finish();
  bool done = false;
  while (!done) ASSERT_TRUE(client.readBodySome(&body, &done, Millis(5000))) << client.error();
  EXPECT_EQ(body, "data: one\n\ndata: two\n\n");
}

TEST(HarnessBackend, WebSocketHandshakeAndEcho) {
  FakeBackend backend(FakeBackend::webSocketEcho());
  Client client(backend.port());
  std::string key = "dGhlIHNhbXBsZSBub25jZQ==";
  ASSERT_TRUE(client.sendRaw(buildRequest("GET", "/ws",
                                          {{"Upgrade", "websocket"},
                                           {"Connection", "Upgrade"},
                                           {"Sec-WebSocket-Key", key},
                                           {"Sec-WebSocket-Version", "13"}},
                                          "", Framing::kNone) +
                             encodeWsFrame(kWsText, "early", true)));
  auto response = client.readResponse();
  ASSERT_TRUE(response) << client.error();
  EXPECT_EQ(response->status, 101);
  EXPECT_EQ(response->header("Sec-WebSocket-Accept").value_or(""), webSocketAccept(key));
  auto frame = client.readWsFrame();
  ASSERT_TRUE(frame) << client.error();
  EXPECT_EQ(frame->payload, "early");
  EXPECT_FALSE(frame->masked);
  ASSERT_TRUE(client.sendRaw(encodeWsFrame(kWsClose, "", true)));
  frame = client.readWsFrame();
  ASSERT_TRUE(frame) << client.error();
  EXPECT_EQ(frame->opcode, kWsClose);
  EXPECT_TRUE(client.waitForClose(Millis(5000)));
}

TEST(HarnessBackend, LargeBodyFollowsThePattern) {
  constexpr uint64_t kSize = 5 * 1024 * 1024 + 3;
  FakeBackend backend(FakeBackend::largeBody(kSize));
  std::string error;
  auto response =
      fetch(backend.port(), buildRequest("GET", "/big", {}, "", Framing::kNone), &error);
  ASSERT_TRUE(response) << error;
  ASSERT_EQ(response->body.size(), kSize);
  EXPECT_TRUE(response->body == patternBytes(0, kSize));
}

TEST(HarnessBackend, MisbehavingHandlersLookLikeFailuresToTheClient) {
  std::string request = buildRequest("GET", "/", {}, "", Framing::kNone);
  std::string error;
  {
    FakeBackend backend(FakeBackend::hang());
    EXPECT_FALSE(fetch(backend.port(), request, &error, Millis(300)));
    EXPECT_NE(error.find("timed out"), std::string::npos) << error;
  }
  {
    FakeBackend backend(FakeBackend::closeConnection());
    EXPECT_FALSE(fetch(backend.port(), request, &error));
    EXPECT_NE(error.find("eof"), std::string::npos) << error;
  }
  {
    FakeBackend backend(FakeBackend::garbage());
    EXPECT_FALSE(fetch(backend.port(), request, &error));
    EXPECT_NE(error.find("malformed"), std::string::npos) << error;
  }
  {
    FakeBackend backend(FakeBackend::delayed(Millis(200), FakeBackend::fixed(204, "")));
    auto response = fetch(backend.port(), request, &error);
    ASSERT_TRUE(response) << error;
    EXPECT_EQ(response->status, 204);
  }
}

TEST(HarnessBackend, RecordRawModeKeepsBytesAndNeverAnswers) {
  FakeBackend backend(FakeBackend::Mode::kRecordRaw);
  Client client(backend.port());
  ASSERT_TRUE(client.sendRaw("not even\nHTTP"));
  ASSERT_TRUE(waitFor([&] { return backend.receivedBytes() == "not even\nHTTP"; }, Millis(5000)));
  EXPECT_FALSE(client.readResponse(Millis(200)));
  EXPECT_EQ(backend.requestCount(), 0u);
}

TEST(HarnessBackend, CloseOnAcceptModeClosesAtOnce) {
  FakeBackend backend(FakeBackend::Mode::kCloseOnAccept);
  Client client(backend.port());
  ASSERT_TRUE(client.connected());
  EXPECT_TRUE(client.waitForClose(Millis(5000)));
  EXPECT_EQ(backend.connectionCount(), 1);
}

TEST(HarnessBackend, FlagsAmbiguousRequestFraming) {
  FakeBackend backend(FakeBackend::echo());
  Client client(backend.port());
  ASSERT_TRUE(
      client.sendRaw("POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 3\r\n"
                     "Transfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n"));
  EXPECT_TRUE(client.waitForClose(Millis(5000)));
  ASSERT_EQ(backend.errors().size(), 1u);
  EXPECT_EQ(backend.requestCount(), 0u);
}

// --- config and process pieces ------------------------------------------------------------------

TEST(HarnessProxy, YamlNamesEveryBackendAndRoute) {
  ProxyOptions options = ProxyOptions::forBackends({1111, 2222});
  options.backends["app"][1].active = false;
  options.trusted_proxies = {"127.0.0.1/32"};
  options.port = 3333;
  std::string yaml = options.toYaml();
  EXPECT_NE(yaml.find("  port: 3333\n"), std::string::npos) << yaml;
  EXPECT_NE(yaml.find("port: 1111\n      weight: 1\n      active: true\n"), std::string::npos);
  EXPECT_NE(yaml.find("port: 2222\n      weight: 1\n      active: false\n"), std::string::npos);
  EXPECT_NE(yaml.find("    - \"127.0.0.1/32\"\n"), std::string::npos);
  EXPECT_NE(yaml.find("routing:\n  main:\n    path: \"/\"\n    upstream: \"app\"\n"),
            std::string::npos);
}

TEST(HarnessProxy, MissingBinaryIsAClearStartError) {
  const char* old = std::getenv("SPEEDMIMI_BIN");
  std::string saved = old != nullptr ? old : "";
  setenv("SPEEDMIMI_BIN", "/nonexistent/speedmimi", 1);
  Proxy proxy(ProxyOptions::forBackends({1}));
  std::string error;
  EXPECT_FALSE(proxy.start(&error));
  EXPECT_NE(error.find("/nonexistent/speedmimi"), std::string::npos) << error;
  if (old != nullptr) {
    setenv("SPEEDMIMI_BIN", saved.c_str(), 1);
  } else {
    unsetenv("SPEEDMIMI_BIN");
  }
}

TEST(HarnessProxy, PickedPortsAreFreeAndDistinctFromBackends) {
  FakeBackend backend(FakeBackend::echo());
  int port = pickFreePort();
  ASSERT_GT(port, 0);
  EXPECT_NE(port, backend.port());
  Client client(port, Millis(500));
  EXPECT_FALSE(client.connected());
}

}  // namespace
}  // namespace speedmimi::test
