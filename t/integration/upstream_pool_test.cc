// The upstream connection pool (DESIGN §4): sized by demand, bounded by a backend's `keepalive`.
// A steady load of N concurrent clients settles at N upstream connections and then opens none;
// the old fixed cap of 128 idle connections per backend closed the surplus after every burst and
// reconnected on the next one.
#include "harness.h"

namespace speedmimi::test {
namespace {

// Answers a request of round N (target /rN) only once `per_round` requests of that round have
// arrived (at most 10 s), so that all of a round's requests are in flight at once however slowly
// a loaded machine passes them on.
Handler roundBarrier(int per_round) {
  auto arrived = std::make_shared<std::atomic<int>>(0);
  return [arrived, per_round](const Request& request, Responder& out) {
    const int round = std::stoi(request.target.substr(2));
    ++*arrived;
    waitFor([&] { return arrived->load() >= (round + 1) * per_round || out.stopping(); },
            Millis(10'000), Millis(1));
    out.send(buildResponse(200, {}, "ok"));
  };
}

class UpstreamPoolTest : public ProxyTest {
 protected:
  // One round: every client sends a request, then every client reads its answer. With the
  // backend's barrier, all of them are in flight at once.
  void round(std::vector<std::unique_ptr<Client>>& clients, int n) {
    for (auto& client : clients) {
      ASSERT_TRUE(client->sendRaw("GET /r" + std::to_string(n) +
                                  " HTTP/1.1\r\nHost: pool.test\r\n\r\n"))
          << client->error();
    }
    for (auto& client : clients) {
      auto response = client->readResponse(Millis(10'000));
      ASSERT_TRUE(response) << client->error();
      ASSERT_EQ(response->status, 200);
    }
  }

  std::vector<std::unique_ptr<Client>> connect(Proxy& proxy, int n) {
    std::vector<std::unique_ptr<Client>> clients;
    for (int i = 0; i < n; ++i) clients.push_back(std::make_unique<Client>(proxy.port()));
    return clients;
  }
};

TEST_F(UpstreamPoolTest, ASteadyLoadOfManyClientsSettlesAndOpensNoMoreConnections) {
  constexpr int kClients = 200;  // more than the old cap of 128
  FakeBackend backend(roundBarrier(kClients));
  ASSERT_TRUE(backend.ok());
  Proxy* proxy = startProxy(ProxyOptions::forBackends({backend.port()}));
  ASSERT_NE(proxy, nullptr);
  auto clients = connect(*proxy, kClients);

  round(clients, 0);
  ASSERT_EQ(backend.connectionCount(), kClients) << "the first round's requests did not overlap";
  for (int n = 1; n <= 3; ++n) round(clients, n);
  EXPECT_EQ(backend.connectionCount(), kClients)
      << "later rounds of the same load opened new upstream connections";
  EXPECT_EQ(backend.requestCount(), 4u * kClients);
}

TEST_F(UpstreamPoolTest, KeepaliveBoundsTheIdleConnectionsPerBackend) {
  constexpr int kClients = 20;
  constexpr int kKeep = 5;
  FakeBackend backend(roundBarrier(kClients));
  ASSERT_TRUE(backend.ok());
  ProxyOptions options = ProxyOptions::forBackends({backend.port()});
  options.backends["app"][0].keepalive = kKeep;
  Proxy* proxy = startProxy(options);
  ASSERT_NE(proxy, nullptr);
  auto clients = connect(*proxy, kClients);

  round(clients, 0);
  ASSERT_EQ(backend.connectionCount(), kClients);
  round(clients, 1);
  EXPECT_EQ(backend.connectionCount(), 2 * kClients - kKeep)
      << "only `keepalive` connections should have been kept for the second round";
}

}  // namespace
}  // namespace speedmimi::test
