// The process model seen from outside: a killed worker comes back, QUIT lets in-flight requests
// finish, TERM does not wait for them.
#include <signal.h>
#include <sys/wait.h>

#include "harness.h"

namespace speedmimi::test {
namespace {

// Prefers a child whose command line says it is a worker (nginx-style titles); else the first.
pid_t pickWorker(const std::vector<pid_t>& children) {
  for (pid_t child : children) {
    std::string cmdline = readFile("/proc/" + std::to_string(child) + "/cmdline");
    if (cmdline.find("worker") != std::string::npos) return child;
  }
  return children.empty() ? -1 : children.front();
}

void expectServing(int port, int requests) {
  for (int i = 0; i < requests; ++i) {
    std::string error;
    std::string target = "/alive/" + std::to_string(i);
    auto response = fetch(port, buildRequest("GET", target, {}, "", Framing::kNone), &error);
    ASSERT_TRUE(response) << "request " << i << ": " << error;
    EXPECT_EQ(response->status, 200);
    EXPECT_EQ(response->body, target);
  }
}

TEST_F(ProxyTest, KilledWorkerIsRespawnedAndServiceContinues) {
  FakeBackend backend(FakeBackend::targetEcho());
  ProxyOptions options = ProxyOptions::forBackends({backend.port()});
  options.workers = 2;
  Proxy* proxy = startProxy(options);
  ASSERT_NE(proxy, nullptr);
  std::vector<pid_t> before = proxy->childPids();
  ASSERT_GE(before.size(), 2u);
  expectServing(proxy->port(), 4);

  pid_t victim = pickWorker(before);
  ASSERT_EQ(kill(victim, SIGKILL), 0);

  auto respawned = [&] {
    std::vector<pid_t> now = proxy->childPids();
    bool victim_gone = std::find(now.begin(), now.end(), victim) == now.end();
    bool has_new = std::any_of(now.begin(), now.end(), [&](pid_t p) {
      return std::find(before.begin(), before.end(), p) == before.end();
    });
    return victim_gone && has_new && now.size() == before.size();
  };
  ASSERT_TRUE(waitFor(respawned, Millis(10'000)))
      << "children before: " << ::testing::PrintToString(before)
      << ", now: " << ::testing::PrintToString(proxy->childPids());
  EXPECT_TRUE(proxy->running());
  expectServing(proxy->port(), 20);

  // The master says which child died and how.
  std::string pid_text = std::to_string(victim);
  EXPECT_TRUE(waitFor(
      [&] {
        for (const auto& line : linesContaining(proxy->errorLog(), {pid_text})) {
          if (containsIgnoreCase(line, "signal")) return true;
        }
        return false;
      },
      Millis(5000)))
      << proxy->errorLog();
}

TEST_F(ProxyTest, QuitLetsAnInFlightRequestFinish) {
  FakeBackend backend(
      FakeBackend::delayed(Millis(1000), FakeBackend::fixed(200, "slow but complete\n")));
  ProxyOptions options = ProxyOptions::forBackends({backend.port()});
  options.shutdown_timeout = "5s";
  Proxy* proxy = startProxy(options);
  ASSERT_NE(proxy, nullptr);

  Client client(proxy->port());
  ASSERT_TRUE(client.sendRaw(buildRequest("GET", "/slow", {}, "", Framing::kNone)));
  ASSERT_TRUE(backend.waitForRequests(1, Millis(5000))) << "the request never reached the backend";
  ASSERT_TRUE(proxy->signal(SIGQUIT));

  auto response = client.readResponse(Millis(8000));
  ASSERT_TRUE(response) << client.error();
  EXPECT_EQ(response->status, 200);
  EXPECT_EQ(response->body, "slow but complete\n");
  EXPECT_TRUE(containsIgnoreCase(response->header("Connection").value_or(""), "close"))
      << "a stopping worker tells the client not to reuse the connection\n"
      << response->raw_head;

  int status = 0;
  ASSERT_TRUE(proxy->waitExit(Millis(8000), &status)) << "the master did not exit after QUIT";
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << "wait status " << status;
  EXPECT_FALSE(Client(proxy->port(), Millis(500)).connected()) << "still accepting after exit";
}

TEST_F(ProxyTest, TermStopsAtOnceEvenWithARequestInFlight) {
  FakeBackend backend(FakeBackend::hang());
  ProxyOptions options = ProxyOptions::forBackends({backend.port()});
  options.shutdown_timeout = "20s";  // a fast stop must not wait for it
  Proxy* proxy = startProxy(options);
  ASSERT_NE(proxy, nullptr);

  Client client(proxy->port());
  ASSERT_TRUE(client.sendRaw(buildRequest("GET", "/hangs", {}, "", Framing::kNone)));
  ASSERT_TRUE(backend.waitForRequests(1, Millis(5000)));
  auto signalled_at = Clock::now();
  ASSERT_TRUE(proxy->signal(SIGTERM));

  int status = 0;
  ASSERT_TRUE(proxy->waitExit(Millis(3000), &status)) << "TERM did not stop the master in 3 s";
  EXPECT_LT(Clock::now() - signalled_at, Millis(3000));
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << "wait status " << status;
  EXPECT_TRUE(client.waitForClose(Millis(3000))) << "the client connection outlived the proxy";
}

}  // namespace
}  // namespace speedmimi::test
