// Long-lived and large exchanges: the WebSocket tunnel, server-sent events flushed one by one,
// and a slow reader of a large body that must not make the proxy buffer it.
#include <signal.h>

#include "harness.h"
#include "tls_transport.h"

namespace speedmimi::test {
namespace {

constexpr const char* kWsKey = "x3JJHMbDL1EzLkh9GBhXDw==";

std::string upgradeRequest() {
  return buildRequest("GET", "/chat",
                      {{"Host", "ws.test"},
                       {"Upgrade", "websocket"},
                       {"Connection", "Upgrade"},
                       {"Sec-WebSocket-Key", kWsKey},
                       {"Sec-WebSocket-Version", "13"}},
                      "", Framing::kNone);
}

// Sends one masked frame and expects the backend's unmasked echo of it.
void expectEcho(Client& client, uint8_t opcode, const std::string& payload) {
  ASSERT_TRUE(client.sendRaw(encodeWsFrame(opcode, payload, true))) << client.error();
  auto frame = client.readWsFrame();
  ASSERT_TRUE(frame) << client.error();
  EXPECT_EQ(frame->opcode, opcode);
  EXPECT_FALSE(frame->masked) << "frames from the server side are never masked";
  EXPECT_TRUE(sameBytes(payload, frame->payload));
}

TEST_P(ProxyTransportTest, WebSocketEchoThroughTheTunnel) {
  FakeBackend backend(FakeBackend::webSocketEcho());
  Proxy* proxy = startProxyOver(ProxyOptions::forBackends({backend.port()}));
  ASSERT_NE(proxy, nullptr);

  auto connection = connect(*proxy);
  Client& client = *connection;
  ASSERT_TRUE(client.sendRaw(upgradeRequest())) << client.error();
  auto handshake = client.readResponse();
  ASSERT_TRUE(handshake) << client.error();
  ASSERT_EQ(handshake->status, 101) << handshake->raw_head << handshake->body;
  EXPECT_EQ(handshake->header("Sec-WebSocket-Accept").value_or(""), webSocketAccept(kWsKey));
  EXPECT_TRUE(equalsIgnoreCase(handshake->header("Upgrade").value_or(""), "websocket"));

  ASSERT_EQ(backend.requestCount(), 1u);
  Request seen = backend.requests()[0];
  SCOPED_TRACE("head the backend received:\n" + seen.raw_head);
  EXPECT_TRUE(equalsIgnoreCase(seen.header("Upgrade").value_or(""), "websocket"));
  EXPECT_TRUE(containsIgnoreCase(seen.header("Connection").value_or(""), "upgrade"));
  EXPECT_EQ(seen.header("Sec-WebSocket-Key").value_or(""), kWsKey);

  expectEcho(client, kWsText, "hello through speedmimi");
  expectEcho(client, 0x2, patternBytes(0, 200'000));  // binary, 64-bit length
  ASSERT_TRUE(client.sendRaw(encodeWsFrame(kWsClose, "\x03\xe8", true)));
  auto close = client.readWsFrame();
  ASSERT_TRUE(close) << client.error();
  EXPECT_EQ(close->opcode, kWsClose);
  EXPECT_TRUE(client.waitForClose(Millis(5000))) << "the tunnel outlived the backend's close";
}

TEST_F(ProxyTest, WebSocketTunnelIsNotCutByReadTimeout) {
  FakeBackend backend(FakeBackend::webSocketEcho());
  ProxyOptions options = ProxyOptions::forBackends({backend.port()});
  options.read_timeout = "1s";  // tunnels use idle_timeout (30s here) instead
  Proxy* proxy = startProxy(options);
  ASSERT_NE(proxy, nullptr);

  Client client(proxy->port());
  ASSERT_TRUE(client.sendRaw(upgradeRequest()));
  auto handshake = client.readResponse();
  ASSERT_TRUE(handshake) << client.error();
  ASSERT_EQ(handshake->status, 101);
  expectEcho(client, kWsText, "before the quiet period");
  // The silence is the scenario: longer than read_timeout, shorter than idle_timeout.
  std::this_thread::sleep_for(Millis(1600));
  expectEcho(client, kWsText, "after the quiet period");
}

TEST_P(ProxyTransportTest, SseEventsArriveOneByOneBeforeTheStreamEnds) {
  auto feed = std::make_shared<EventFeed>();
  FakeBackend backend(FakeBackend::sse(feed));
  Proxy* proxy = startProxyOver(ProxyOptions::forBackends({backend.port()}));
  ASSERT_NE(proxy, nullptr);

  auto connection = connect(*proxy);
  Client& client = *connection;
  ASSERT_TRUE(client.sendRaw(
      buildRequest("GET", "/events", {{"Accept", "text/event-stream"}}, "", Framing::kNone)));
  feed->push("id: 1\ndata: first\n\n");
  auto head = client.readResponseHead(Millis(5000));
  ASSERT_TRUE(head) << client.error();
  EXPECT_EQ(head->status, 200);
  EXPECT_TRUE(containsIgnoreCase(head->header("Content-Type").value_or(""), "text/event-stream"));

  std::string body;
  auto has = [](std::string what) {
    return [what](const std::string& b) { return b.find(what) != std::string::npos; };
  };
  ASSERT_TRUE(client.readBodyUntil(&body, has("data: first\n\n"), Millis(5000)))
      << "event 1 was held back by the proxy: " << client.error();
  EXPECT_EQ(feed->taken(), 1u) << "event 2 must not exist yet";
  EXPECT_EQ(body, "id: 1\ndata: first\n\n");

  feed->push("id: 2\ndata: second\n\n");
  ASSERT_TRUE(client.readBodyUntil(&body, has("data: second\n\n"), Millis(5000))) << client.error();
  feed->finish();
  bool done = false;
  while (!done) ASSERT_TRUE(client.readBodySome(&body, &done, Millis(5000))) << client.error();
  EXPECT_EQ(body, "id: 1\ndata: first\n\nid: 2\ndata: second\n\n");
}

TEST_F(ProxyTest, SseStreamIsNotCutByReadTimeout) {
  std::vector<std::string> events = {"data: a\n\n", "data: b\n\n"};
  // The gap is the scenario: longer than read_timeout, shorter than idle_timeout.
  FakeBackend backend(FakeBackend::sseTimed(events, Millis(1600)));
  ProxyOptions options = ProxyOptions::forBackends({backend.port()});
  options.read_timeout = "1s";
  Proxy* proxy = startProxy(options);
  ASSERT_NE(proxy, nullptr);

  Client client(proxy->port());
  ASSERT_TRUE(client.sendRaw(
      buildRequest("GET", "/events", {{"Accept", "text/event-stream"}}, "", Framing::kNone)));
  auto response = client.readResponse(Millis(10'000));
  ASSERT_TRUE(response) << client.error();
  EXPECT_EQ(response->status, 200);
  EXPECT_EQ(response->body, "data: a\n\ndata: b\n\n");
}

TEST_P(ProxyTransportTest, SlowClientGets50MiBWhileProxyMemoryStaysBounded) {
  constexpr uint64_t kSize = 50ull * 1024 * 1024;
  constexpr long kLimitKiB = 64 * 1024;
  FakeBackend backend(FakeBackend::largeBody(kSize));
  Proxy* proxy = startProxyOver(ProxyOptions::forBackends({backend.port()}));
  ASSERT_NE(proxy, nullptr);
  // Under ASan only the growth is meaningful; otherwise the whole footprint must fit.
  long base_kib = sanitized(proxy->pid()) ? proxy->totalRssKiB() : 0;

  auto connection = connect(*proxy);
  Client& client = *connection;
  client.setReceiveBuffer(64 * 1024);
  ASSERT_TRUE(client.sendRaw(buildRequest("GET", "/big", {}, "", Framing::kNone)));
  auto head = client.readResponseHead();
  ASSERT_TRUE(head) << client.error();
  ASSERT_EQ(head->status, 200);

  long peak_kib = 0;
  auto sample = [&] { peak_kib = std::max(peak_kib, proxy->totalRssKiB() - base_kib); };
  // Stall first: a proxy without backpressure would now read the whole body from the backend.
  for (int i = 0; i < 10; ++i) {
    std::this_thread::sleep_for(Millis(50));
    sample();
  }
  uint64_t received = 0;
  bool done = false;
  Deadline deadline(Millis(30'000));
  while (!done && !deadline.expired()) {
    std::string burst;
    while (!done && burst.size() < 512 * 1024) {
      ASSERT_TRUE(client.readBodySome(&burst, &done, Millis(10'000), 64 * 1024))
          << client.error() << " after " << received + burst.size() << " bytes";
    }
    ASSERT_TRUE(sameBytes(patternBytes(received, burst.size()), burst)) << "at " << received;
    received += burst.size();
    sample();
    std::this_thread::sleep_for(Millis(20));  // the reader is slow on purpose
  }

  RecordProperty("peak_rss_kib", static_cast<int>(peak_kib));
  EXPECT_TRUE(done) << "only " << received << " bytes within 30 s";
  EXPECT_EQ(received, kSize);
  EXPECT_LT(peak_kib, kLimitKiB) << "master + children peaked at " << peak_kib << " KiB"
                                 << (base_kib > 0 ? " above the ASan baseline" : "");
}

}  // namespace
}  // namespace speedmimi::test
