// Accepting under pressure: a worker out of descriptors pauses accepting instead of spinning
// and logging without end, and serves again once descriptors are free; server.max_conn refuses
// the connections over the limit with a 503.
#include "harness.h"

namespace speedmimi::test {
namespace {

size_t acceptFailures(const Proxy& proxy) {
  return linesContaining(proxy.errorLog(), {"accept() failed"}).size();
}

TEST_F(ProxyTest, OutOfDescriptorsPausesAcceptingAndLogsBoundedly) {
  FakeBackend backend(FakeBackend::targetEcho());
  ProxyOptions options = ProxyOptions::forBackends({backend.port()});
  options.nofile_limit = 64;  // a worker holds ~15 of its own; idle clients take the rest
  Proxy* proxy = startProxy(options);
  ASSERT_NE(proxy, nullptr);
  // One request first. Under -fsanitize=vptr, the first virtual call of each (type, object type)
  // pair checks the vtable with a pipe(2), which fails at EMFILE and is then reported as an
  // invalid vptr: the worker's first client event must not come only once descriptors are out.
  std::string warm_error;
  auto warm = fetch(proxy->port(), buildRequest("GET", "/warm", {}, "", Framing::kNone),
                    &warm_error, Millis(5'000));
  ASSERT_TRUE(warm) << warm_error;
  ASSERT_EQ(warm->status, 200);

  // Idle clients (no request yet: one descriptor each in the worker), more than fit.
  std::vector<std::unique_ptr<Client>> clients;
  for (int i = 0; i < 80; ++i) {
    clients.push_back(std::make_unique<Client>(proxy->port()));
    ASSERT_TRUE(clients.back()->connected()) << "client " << i << ": " << clients.back()->error();
  }
  ASSERT_TRUE(waitFor([&] { return acceptFailures(*proxy) > 0; }, Millis(5'000)))
      << "no accept() failure logged; error log:\n"
      << proxy->errorLog();

  // A rate over a window: a spinning worker writes hundreds of thousands of lines in it.
  std::this_thread::sleep_for(Millis(1'500));
  std::vector<std::string> lines = linesContaining(proxy->errorLog(), {"accept() failed"});
  EXPECT_LE(lines.size(), 2u) << "first: " << lines.front();
  EXPECT_THAT(lines.front(), ::testing::HasSubstr("Too many open files; not accepting for"));

  clients.clear();  // the worker sees them close and frees their descriptors
  std::string error;
  std::optional<Response> response;
  ASSERT_TRUE(waitFor(
      [&] {
        response = fetch(proxy->port(), buildRequest("GET", "/after", {}, "", Framing::kNone),
                         &error, Millis(2'000));
        return response.has_value();
      },
      Millis(10'000)))
      << error;
  EXPECT_EQ(response->status, 200);
  EXPECT_EQ(response->body, "/after");
}

// A keep-alive client that has had one 200, so its connection counts against server.max_conn.
// Retried (bounded): the harness's start-up probes count until the worker has seen them close.
std::unique_ptr<Client> servedClient(int port) {
  std::unique_ptr<Client> client;
  waitFor(
      [&] {
        client = std::make_unique<Client>(port);
        if (!client->sendRaw(buildRequest("GET", "/held", {}, "", Framing::kNone))) return false;
        auto response = client->readResponse();
        return response && response->status == 200;
      },
      Millis(5'000), Millis(20));
  return client;
}

TEST_F(ProxyTest, ConnectionsOverServerMaxConnGet503) {
  FakeBackend backend(FakeBackend::targetEcho());
  ProxyOptions options = ProxyOptions::forBackends({backend.port()});
  options.max_conn = 2;
  Proxy* proxy = startProxy(options);
  ASSERT_NE(proxy, nullptr);

  std::unique_ptr<Client> first = servedClient(proxy->port());
  std::unique_ptr<Client> second = servedClient(proxy->port());
  ASSERT_EQ(countTargets(backend, "/held"), 2u);

  std::string error;
  auto refused =
      fetch(proxy->port(), buildRequest("GET", "/three", {}, "", Framing::kNone), &error);
  ASSERT_TRUE(refused) << error;
  EXPECT_EQ(refused->status, 503);
  EXPECT_EQ(countTargets(backend, "/three"), 0u);

  first.reset();  // one slot free again, once the worker has seen the close
  ASSERT_NE(servedClient(proxy->port()), nullptr);
  EXPECT_EQ(countTargets(backend, "/held"), 3u);
}

}  // namespace
}  // namespace speedmimi::test
