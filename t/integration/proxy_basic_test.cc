// Plain proxying through the real binary: bodies both ways, keep-alive, pipelining, the headers a
// backend sees, and the access log. Each test starts its backends, starts speedmimi in front of
// them, sends, and asserts what the client and each backend saw.
#include "harness.h"
#include "tls_transport.h"

namespace speedmimi::test {
namespace {

using ::testing::ElementsAre;
using ::testing::IsEmpty;

// --- request bodies, byte-identical both ways --------------------------------------------------

struct BodyCase {
  const char* method;
  Framing framing;
  size_t size;
  Transport transport;
};

std::string bodyCaseName(const ::testing::TestParamInfo<BodyCase>& info) {
  const BodyCase& c = info.param;
  return std::string(c.method) + (c.framing == Framing::kChunked ? "Chunked" : "Length") +
         std::to_string(c.size) + "B" + (c.transport == Transport::kTls ? "OverTls" : "");
}

void PrintTo(const BodyCase& c, std::ostream* out) {
  *out << c.method << (c.framing == Framing::kChunked ? " chunked " : " length ") << c.size
       << " over " << transportName(c.transport);
}

class ProxyBodyTest : public ProxyTest, public ::testing::WithParamInterface<BodyCase> {};

TEST_P(ProxyBodyTest, BodyIsByteIdenticalBothWays) {
  const BodyCase& c = GetParam();
  FakeBackend backend(FakeBackend::echo());
  Proxy* proxy = startProxy(withTransport(ProxyOptions::forBackends({backend.port()}), c.transport));
  ASSERT_NE(proxy, nullptr);

  std::string body = patternBytes(c.size, c.size);  // offset by size: each case differs
  std::string target = "/echo/" + std::to_string(c.size) + "?m=" + c.method;
  auto connection = connectClient(proxy->port(), c.transport);
  Client& client = *connection;
  ASSERT_TRUE(
      client.sendRaw(buildRequest(c.method, target, {{"Host", "body.test"}}, body, c.framing, 8192),
                     Millis(30'000)))
      << client.error();
  auto response = client.readResponse(Millis(30'000));

  ASSERT_TRUE(response) << client.error();
  EXPECT_EQ(response->status, 200);
  EXPECT_TRUE(sameBytes(body, response->body)) << "response body as the client got it";

  ASSERT_EQ(backend.requestCount(), 1u);
  Request seen = backend.requests()[0];
  EXPECT_EQ(seen.method, c.method);
  EXPECT_EQ(seen.target, target);
  EXPECT_TRUE(sameBytes(body, seen.body)) << "request body as the backend decoded it";
  if (c.framing == Framing::kChunked) {
    // The backend's parser only accepts a valid chunked encoding, so `chunked` means valid.
    EXPECT_TRUE(seen.chunked) << seen.raw_head;
    EXPECT_FALSE(seen.header("Content-Length")) << seen.raw_head;
  } else {
    EXPECT_FALSE(seen.chunked) << seen.raw_head;
    EXPECT_EQ(seen.header("Content-Length").value_or("(none)"), std::to_string(c.size));
    EXPECT_EQ(seen.raw_body.size(), c.size);
  }
  EXPECT_THAT(backend.errors(), IsEmpty());
}

// GET and POST, each framing, each size, over plain TCP and over TLS: 32 cases.
std::vector<BodyCase> bodyCases() {
  std::vector<BodyCase> cases;
  for (Transport transport : {Transport::kPlain, Transport::kTls}) {
    for (const char* method : {"GET", "POST"}) {
      for (Framing framing : {Framing::kLength, Framing::kChunked}) {
        for (size_t size : {size_t{0}, size_t{1}, size_t{64 * 1024}, size_t{10 * 1024 * 1024}}) {
          cases.push_back({method, framing, size, transport});
        }
      }
    }
  }
  return cases;
}

INSTANTIATE_TEST_SUITE_P(Sizes, ProxyBodyTest, ::testing::ValuesIn(bodyCases()), bodyCaseName);

// --- connections ---------------------------------------------------------------------------------

TEST_P(ProxyTransportTest, HundredKeepAliveRequestsUseOneConnectionOnEachSide) {
  FakeBackend backend(FakeBackend::targetEcho());
  Proxy* proxy = startProxyOver(ProxyOptions::forBackends({backend.port()}));
  ASSERT_NE(proxy, nullptr);

  auto connection = connect(*proxy);
  Client& client = *connection;
  for (int i = 0; i < 100; ++i) {
    std::string target = "/keepalive/" + std::to_string(i);
    ASSERT_TRUE(client.sendRaw(buildRequest("GET", target, {}, "", Framing::kNone)))
        << "request " << i << ": " << client.error();
    auto response = client.readResponse();
    ASSERT_TRUE(response) << "request " << i << ": " << client.error();
    ASSERT_EQ(response->status, 200) << "request " << i;
    ASSERT_EQ(response->body, target);
    ASSERT_FALSE(containsIgnoreCase(response->header("Connection").value_or(""), "close"))
        << "the proxy gave up the client connection after request " << i;
  }

  EXPECT_EQ(backend.requestCount(), 100u);
  EXPECT_EQ(backend.connectionCount(), 1) << "the upstream connection was not reused";
  for (const Request& r : backend.requests()) EXPECT_EQ(r.connection, 0);
}

TEST_P(ProxyTransportTest, PipelinedRequestsAreAnsweredInOrder) {
  FakeBackend backend([](const Request& r, Responder& out) {
    out.send(buildResponse(200, {}, r.method + " " + r.target + " [" + r.body + "]"));
  });
  Proxy* proxy = startProxyOver(ProxyOptions::forBackends({backend.port()}));
  ASSERT_NE(proxy, nullptr);

  auto connection = connect(*proxy);
  Client& client = *connection;
  ASSERT_TRUE(client.sendRaw(buildRequest("GET", "/first", {}, "", Framing::kNone) +
                             buildRequest("POST", "/second", {}, "payload") +
                             buildRequest("GET", "/third", {}, "", Framing::kNone)));
  std::vector<std::string> bodies;
  for (int i = 0; i < 3; ++i) {
    auto response = client.readResponse();
    ASSERT_TRUE(response) << "response " << i << ": " << client.error();
    EXPECT_EQ(response->status, 200);
    bodies.push_back(response->body);
  }

  EXPECT_THAT(bodies, ElementsAre("GET /first []", "POST /second [payload]", "GET /third []"));
  std::vector<std::string> targets;
  for (const Request& r : backend.requests()) targets.push_back(r.target);
  EXPECT_THAT(targets, ElementsAre("/first", "/second", "/third"));
}

// --- what the backend sees -----------------------------------------------------------------------

TEST_F(ProxyTest, BackendSeesForwardedHeadersAndNoHopByHopOnes) {
  FakeBackend backend(FakeBackend::fixed(200, "ok"));
  Proxy* proxy = startProxy(ProxyOptions::forBackends({backend.port()}));
  ASSERT_NE(proxy, nullptr);

  // The client is not a trusted proxy, so what it claims about its address is not believed.
  std::string error;
  auto response = fetch(proxy->port(),
                        "GET /who?x=1 HTTP/1.1\r\n"
                        "Host: example.test:8080\r\n"
                        "Connection: foo, keep-alive\r\n"
                        "Foo: bar\r\n"
                        "Keep-Alive: timeout=5\r\n"
                        "Proxy-Connection: keep-alive\r\n"
                        "Upgrade: h2c\r\n"
                        "X-Forwarded-For: 192.0.2.1\r\n"
                        "X-Real-IP: 192.0.2.99\r\n"
                        "X-Custom: kept as is\r\n"
                        "\r\n",
                        &error);
  ASSERT_TRUE(response) << error;
  EXPECT_EQ(response->status, 200);
  EXPECT_EQ(response->body, "ok");

  ASSERT_EQ(backend.requestCount(), 1u);
  Request seen = backend.requests()[0];
  SCOPED_TRACE("head the backend received:\n" + seen.raw_head);
  EXPECT_EQ(seen.method, "GET");
  EXPECT_EQ(seen.target, "/who?x=1");
  EXPECT_THAT(headerValues(seen.headers, "Host"), ElementsAre("example.test:8080"));
  EXPECT_THAT(headerValues(seen.headers, "X-Forwarded-For"), ElementsAre("192.0.2.1, 127.0.0.1"));
  EXPECT_THAT(headerValues(seen.headers, "X-Real-IP"), ElementsAre("127.0.0.1"));
  EXPECT_THAT(headerValues(seen.headers, "X-Forwarded-Proto"), ElementsAre("http"));
  EXPECT_THAT(headerValues(seen.headers, "X-Forwarded-Host"), ElementsAre("example.test:8080"));
  EXPECT_THAT(headerValues(seen.headers, "X-Custom"), ElementsAre("kept as is"));
  for (const char* gone : {"Foo", "Keep-Alive", "Proxy-Connection", "Upgrade"}) {
    EXPECT_FALSE(seen.header(gone)) << gone << " is hop-by-hop and must not be forwarded";
  }
  EXPECT_FALSE(containsIgnoreCase(seen.header("Connection").value_or(""), "foo"));
}

TEST_F(ProxyTest, TrustedProxyForwardedForGivesTheRealClientIp) {
  FakeBackend backend(FakeBackend::fixed(200, "ok"));
  ProxyOptions options = ProxyOptions::forBackends({backend.port()});
  options.real_ip_header = "X-Forwarded-For";
  options.trusted_proxies = {"127.0.0.1/32", "10.0.0.0/8"};
  Proxy* proxy = startProxy(options);
  ASSERT_NE(proxy, nullptr);

  // Walking from the right: 10.1.2.3 is a trusted proxy, 203.0.113.7 is the first that is not.
  std::string error;
  auto response = fetch(
      proxy->port(),
      buildRequest("GET", "/real-ip", {{"X-Forwarded-For", "198.51.100.9, 203.0.113.7, 10.1.2.3"}},
                   "", Framing::kNone),
      &error);
  ASSERT_TRUE(response) << error;
  EXPECT_EQ(response->status, 200);

  ASSERT_EQ(backend.requestCount(), 1u);
  Request seen = backend.requests()[0];
  SCOPED_TRACE("head the backend received:\n" + seen.raw_head);
  EXPECT_THAT(headerValues(seen.headers, "X-Real-IP"), ElementsAre("203.0.113.7"));
  EXPECT_THAT(headerValues(seen.headers, "X-Forwarded-For"),
              ElementsAre("198.51.100.9, 203.0.113.7, 10.1.2.3, 127.0.0.1"));
  ASSERT_TRUE(waitFor([&] { return proxy->accessLog().find("/real-ip") != std::string::npos; },
                      Millis(5000)))
      << proxy->accessLog();
  EXPECT_EQ(proxy->accessLog().rfind("203.0.113.7 ", 0), 0u)
      << "the access log must name the real client:\n"
      << proxy->accessLog();
}

// --- the access log ------------------------------------------------------------------------------

TEST_F(ProxyTest, AccessLogHasACombinedLineWithTheUpstreamAddress) {
  FakeBackend backend(FakeBackend::fixed(200, "hello"));
  Proxy* proxy = startProxy(ProxyOptions::forBackends({backend.port()}));
  ASSERT_NE(proxy, nullptr);

  std::string error;
  auto response =
      fetch(proxy->port(),
            buildRequest("GET", "/logged?id=7",
                         {{"User-Agent", "it-agent/1.0"}, {"Referer", "http://ref.test/page"}}, "",
                         Framing::kNone),
            &error);
  ASSERT_TRUE(response) << error;
  ASSERT_EQ(response->status, 200);

  auto logged = [&] { return proxy->accessLog().find("/logged?id=7") != std::string::npos; };
  if (!waitFor(logged, Millis(5000))) proxy->stop();  // a buffered log must be flushed on exit
  std::string log = proxy->accessLog();
  // combined: addr - user [time] "request" status body_bytes "referer" "agent", then upstream.
  std::vector<std::string> lines = linesContaining(log, {"/logged?id=7"});
  ASSERT_EQ(lines.size(), 1u) << log;
  const std::string& line = lines[0];
  EXPECT_TRUE(globMatch(line,
                        "127.0.0.1 - - [##/???"  // split: "??/" would be a trigraph
                        "/####:##:##:## ?####] "
                        "\"GET /logged?id=7 HTTP/1.1\" 200 5 \"http://ref.test/page\" "
                        "\"it-agent/1.0\"*"))
      << line;
  std::string upstream = "127.0.0.1:" + std::to_string(backend.port());
  size_t at = line.find(upstream, line.find("it-agent/1.0"));
  ASSERT_NE(at, std::string::npos) << "no upstream address after the combined fields: " << line;
  size_t after = at + upstream.size();
  EXPECT_TRUE(after == line.size() || !std::isdigit(static_cast<unsigned char>(line[after])))
      << line;
}

}  // namespace
}  // namespace speedmimi::test
