// Retries (DESIGN §4). A stale pooled connection (EOF, ECONNRESET or EPIPE before any response
// byte, on a reused connection) gets one transparent retry, on a new connection; never after a
// timeout, never for a non-idempotent request already written. Each test warms the pool with a
// known number of idle connections, then counts what the backend saw on each of them.
#include "harness.h"

namespace speedmimi::test {
namespace {

constexpr std::string_view kHost = "retry.test";
constexpr Millis kWarmDelay{300};  // holds the warm-up requests so they overlap

std::string request(std::string_view method, std::string_view target,
                    std::string_view extra_headers = "") {
  return std::string(method) + " " + std::string(target) +
         " HTTP/1.1\r\nHost: " + std::string(kHost) + "\r\n" + std::string(extra_headers) + "\r\n";
}

// `warm` answers the warm-up requests (targets starting with /warm), `then` everything else.
Handler byTarget(Handler warm, Handler then) {
  return [warm, then](const Request& r, Responder& out) {
    (r.target.rfind("/warm", 0) == 0 ? warm : then)(r, out);
  };
}

Handler warmAnswer() {
  return FakeBackend::delayed(kWarmDelay, FakeBackend::fixed(200, "warm"));
}

// Answers the warm-up, then stays idle in the proxy's pool until the next request arrives and
// closes without reading it: a backend whose keep-alive timeout ran out just as the request was
// on its way. From the proxy's side it is a stale pooled connection.
Handler answerThenCloseWhenUsed() {
  return [](const Request&, Responder& out) {
    if (!out.pause(kWarmDelay) || !out.send(buildResponse(200, {}, "warm"))) return;
    out.stream().fill(Deadline(kIoTimeout));
    out.closeAfter();
  };
}

size_t countTarget(const FakeBackend& backend, std::string_view target) {
  size_t n = 0;
  for (const Request& r : backend.requests()) n += r.target == target;
  return n;
}

std::vector<int> connectionsOf(const FakeBackend& backend, std::string_view target) {
  std::vector<int> out;
  for (const Request& r : backend.requests()) {
    if (r.target == target) out.push_back(r.connection);
  }
  return out;
}

class RetryTest : public ProxyTest {
 protected:
  Proxy* startFor(FakeBackend& backend, int retries, std::string read_timeout = "10s") {
    ProxyOptions options = ProxyOptions::forBackends({backend.port()});
    if (retries >= 0) options.routes[0].retries = retries;
    options.read_timeout = read_timeout;
    return startProxy(options);
  }

  // `n` concurrent requests, each answered and kept alive: the proxy's only worker ends up with
  // `n` idle pooled connections to the backend (connections 0 .. n-1).
  void warmPool(Proxy& proxy, FakeBackend& backend, int n) {
    std::vector<std::unique_ptr<Client>> clients;
    for (int i = 0; i < n; ++i) {
      clients.push_back(std::make_unique<Client>(proxy.port()));
      ASSERT_TRUE(clients.back()->sendRaw(request("GET", "/warm/" + std::to_string(i))))
          << clients.back()->error();
    }
    for (auto& client : clients) {
      auto response = client->readResponse(Millis(5000));
      ASSERT_TRUE(response) << client->error();
      ASSERT_EQ(response->status, 200);
    }
    ASSERT_EQ(backend.connectionCount(), n) << "the warm-up requests did not overlap";
  }

  void expectPostSentOnce(std::string_view extra_headers);
};

// A timeout is not a stale connection: one attempt, 504 at read_timeout, even with five idle
// pooled connections that a retry could have taken.
TEST_F(RetryTest, AHangingBackendIsAskedOnceAndTheClientGets504AtReadTimeout) {
  FakeBackend backend(byTarget(warmAnswer(), FakeBackend::hang()));
  Proxy* proxy = startFor(backend, 0, "1s");
  ASSERT_NE(proxy, nullptr);
  warmPool(*proxy, backend, 5);

  Client client(proxy->port());
  auto sent = Clock::now();
  ASSERT_TRUE(client.sendRaw(request("GET", "/hang"))) << client.error();
  auto response = client.readResponse(Millis(10'000));
  auto waited = std::chrono::duration_cast<Millis>(Clock::now() - sent);
  ASSERT_TRUE(response) << client.error();
  EXPECT_EQ(response->status, 504);
  EXPECT_GE(waited, Millis(900));
  EXPECT_LT(waited, Millis(2500)) << "the timeout was retried";
  EXPECT_EQ(countTarget(backend, "/hang"), 1u);
  EXPECT_EQ(backend.connectionCount(), 5) << "a new connection was opened for a retry";
}

// A bodiless POST that the backend read and then closed on without answering may have been
// executed: it is not retried, neither as a stale connection nor under `retries` (1 here, the
// default), and the client gets 502.
void RetryTest::expectPostSentOnce(std::string_view extra_headers) {
  FakeBackend backend(byTarget(warmAnswer(), FakeBackend::closeConnection()));
  Proxy* proxy = startFor(backend, -1);
  ASSERT_NE(proxy, nullptr);
  warmPool(*proxy, backend, 2);

  Client client(proxy->port());
  ASSERT_TRUE(client.sendRaw(request("POST", "/order", extra_headers))) << client.error();
  auto response = client.readResponse(Millis(5000));
  ASSERT_TRUE(response) << client.error();
  EXPECT_EQ(response->status, 502);
  std::vector<int> seen = connectionsOf(backend, "/order");
  ASSERT_EQ(seen.size(), 1u) << "the POST was executed more than once";
  EXPECT_LT(seen[0], 2) << "it did not go on a pooled connection";
  EXPECT_EQ(backend.connectionCount(), 2) << "a new connection was opened for a retry";
}

TEST_F(RetryTest, APostWithoutBodyTheBackendReadIsSentOnce) {
  expectPostSentOnce("");
}

TEST_F(RetryTest, APostWithAnEmptyBodyTheBackendReadIsSentOnce) {
  expectPostSentOnce("Content-Length: 0\r\n");
}

// The good case: a GET on a pooled connection that the backend has closed is retried at once,
// on a new connection (not on the next pooled one, which may be just as stale), and succeeds.
TEST_F(RetryTest, AGetOnAStalePooledConnectionIsRetriedOnceOnANewConnection) {
  FakeBackend backend(byTarget(answerThenCloseWhenUsed(), FakeBackend::fixed(200, "fresh")));
  Proxy* proxy = startFor(backend, 0);
  ASSERT_NE(proxy, nullptr);
  warmPool(*proxy, backend, 2);

  Client client(proxy->port());
  ASSERT_TRUE(client.sendRaw(request("GET", "/stale"))) << client.error();
  auto response = client.readResponse(Millis(5000));
  ASSERT_TRUE(response) << client.error();
  EXPECT_EQ(response->status, 200);
  EXPECT_EQ(response->body, "fresh");
  // The backend answered it once, on connection 2, the one the retry opened.
  EXPECT_EQ(connectionsOf(backend, "/stale"), std::vector<int>{2});
  EXPECT_EQ(backend.connectionCount(), 3);
  int stale_attempts = 0;
  for (int c = 0; c < 2; ++c) {
    stale_attempts += backend.receivedBytes(c).find("/stale") != std::string::npos;
  }
  EXPECT_EQ(stale_attempts, 1) << "more than one pooled connection was tried";
}

// Every connection is reset before the answer, retries: 0. Exactly two attempts: the first on a
// pooled connection (reset before any response byte on a reused connection: stale), then the one
// stale retry on a new connection. That one is not stale (not reused), and `retries` allows no
// other attempt, so the client gets 502. The other two idle connections are never tried.
TEST_F(RetryTest, AResetOnEveryConnectionGivesTwoAttemptsWithRetriesZero) {
  FakeBackend backend(byTarget(warmAnswer(), FakeBackend::resetConnection()));
  Proxy* proxy = startFor(backend, 0);
  ASSERT_NE(proxy, nullptr);
  warmPool(*proxy, backend, 3);

  Client client(proxy->port());
  ASSERT_TRUE(client.sendRaw(request("GET", "/reset"))) << client.error();
  auto response = client.readResponse(Millis(5000));
  ASSERT_TRUE(response) << client.error();
  EXPECT_EQ(response->status, 502);
  std::vector<int> seen = connectionsOf(backend, "/reset");
  ASSERT_EQ(seen.size(), 2u) << ::testing::PrintToString(seen);
  EXPECT_LT(seen[0], 3) << "the first attempt was not on a pooled connection";
  EXPECT_EQ(seen[1], 3) << "the stale retry was not on a new connection";
  EXPECT_EQ(backend.connectionCount(), 4);
}

}  // namespace
}  // namespace speedmimi::test
