// Backends that write an answer in pieces with Nagle's algorithm on, as Python's http.server and
// many frameworks do: the head in one write, the body in the next. On a reused upstream
// connection Linux delays the proxy's ACK of the head (~40 ms: it expects to carry the ACK on
// data, and the proxy has nothing to send), and the backend's Nagle holds the body until that ACK
// comes. The proxy asks for quick ACKs on its upstream connections (event::Stream::setQuickAck),
// so no request waits for the delayed ACK (issue 12). The same over TLS to an https backend: the
// head and the body are then two TLS records, written apart the same way.
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>

#include <algorithm>
#include <functional>

#include "harness.h"
#include "tls_transport.h"

namespace speedmimi::test {
namespace {

constexpr int kRequests = 50;
constexpr Millis kMedianBound{20};  // the delayed ACK alone costs ~40 ms; ASan and load, a few
constexpr std::string_view kBody = "ok";

// Answers 200 with the head and the body in two send()s, Nagle's algorithm on: the body leaves
// the backend's kernel only once the proxy has acknowledged the head.
Handler headThenBody() {
  return [](const Request&, Responder& responder) {
    int off = 0;
    setsockopt(responder.stream().fd(), IPPROTO_TCP, TCP_NODELAY, &off, sizeof off);
    std::string head = "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: " +
                       std::to_string(kBody.size()) + "\r\n\r\n";
    if (responder.send(head)) responder.send(kBody);
  };
}

const std::string kRequest = "GET /nagle HTTP/1.1\r\nHost: nagle.test\r\n\r\n";

// Gets the response to kRequest, or nullopt with *error set.
using Exchange = std::function<std::optional<Response>(std::string* error)>;

// Parameterised by the transport to the backend.
class BackendNagleTest : public ProxyTest, public ::testing::WithParamInterface<Transport> {
 protected:
  void SetUp() override {
    backend_ = std::make_unique<FakeBackend>(headThenBody());
    ASSERT_TRUE(backend_->ok());
    if (GetParam() == Transport::kTls) serveTls(*backend_);
    ProxyOptions options = ProxyOptions::forBackends({backend_->port()});
    if (GetParam() == Transport::kTls) options = withHttpsBackends(options);
    options.workers = 1;  // one pool, so every request after the first reuses its connection
    proxy_ = startProxy(options);
    ASSERT_NE(proxy_, nullptr);
  }

  // Makes kRequests exchanges one after the other, checks every answer and that they all went
  // over one backend connection, and expects their median time under kMedianBound.
  void expectNoStall(const Exchange& exchange) {
    std::vector<Millis> took;
    for (int i = 0; i < kRequests; ++i) {
      auto start = Clock::now();
      std::string error;
      auto response = exchange(&error);
      ASSERT_TRUE(response) << "request " << i << ": " << error;
      took.push_back(std::chrono::duration_cast<Millis>(Clock::now() - start));
      ASSERT_EQ(response->status, 200);
      ASSERT_EQ(response->body, kBody);
    }
    EXPECT_EQ(backend_->connectionCount(), 1) << "the upstream connection was not reused";
    std::sort(took.begin(), took.end());
    EXPECT_LT(took[took.size() / 2], kMedianBound)
        << "slowest " << took.back().count() << " ms of " << took.size() << " requests";
  }

  std::unique_ptr<FakeBackend> backend_;
  Proxy* proxy_ = nullptr;
};

TEST_P(BackendNagleTest, RequestsOnAPooledConnectionDoNotWaitForADelayedAck) {
  Client client(proxy_->port());
  ASSERT_TRUE(client.connected()) << client.error();
  expectNoStall([&](std::string* error) {
    std::optional<Response> response;
    if (client.sendRaw(kRequest)) response = client.readResponse();
    if (!response) *error = client.error();
    return response;
  });
}

// Fresh client connections, the upstream connection still pooled: the stall is the upstream
// side's, whatever the client does.
TEST_P(BackendNagleTest, FreshClientConnectionsOverAPooledUpstreamDoNotWait) {
  expectNoStall([&](std::string* error) { return fetch(proxy_->port(), kRequest, error); });
}

INSTANTIATE_TEST_SUITE_P(Backends, BackendNagleTest,
                         ::testing::Values(Transport::kPlain, Transport::kTls), transportParamName);

}  // namespace
}  // namespace speedmimi::test
