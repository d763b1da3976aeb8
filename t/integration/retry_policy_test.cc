// The retry policy (README, routing.NAME.retry_on, retries, retry_budget): a failed attempt is
// retried at another backend when its kind is listed in retry_on, the method is idempotent (a
// request that is not is retried only when it never reached a backend), nothing of the response
// reached the client and no byte of the body left the proxy; at most `retries` times, never
// twice at one backend, and within the retry budget. Each test puts a misbehaving backend "bad"
// (picked first: weight 10000 against 1) beside a healthy one, "good", and counts what each saw.
#include <jansson.h>

#include "harness.h"

namespace speedmimi::test {
namespace {

using ::testing::HasSubstr;

constexpr std::string_view kHost = "policy.test";

std::string request(std::string_view method, std::string_view target, std::string_view extra = "") {
  return std::string(method) + " " + std::string(target) +
         " HTTP/1.1\r\nHost: " + std::string(kHost) + "\r\n" + std::string(extra) + "\r\n";
}

std::string address(int port) {
  return "127.0.0.1:" + std::to_string(port);
}

// How the bad backend fails.
enum class Fault {
  kClosedPort,  // nothing listens: connect refused
  kReset,       // reads the request, resets (SO_LINGER 0)
  kEof,         // reads the request, closes without a byte
  kHang,        // reads the request, never answers (past read_timeout)
  kGarbage,     // a head that is not HTTP
  kAmbiguous,   // two different Content-Length values
  k500,
  k502,
  k503,
  k504,
};

Handler faultHandler(Fault fault) {
  switch (fault) {
    case Fault::kClosedPort:
    case Fault::kReset:
      return FakeBackend::resetConnection();
    case Fault::kEof:
      return FakeBackend::closeConnection();
    case Fault::kHang:
      return FakeBackend::hang();
    case Fault::kGarbage:
      return FakeBackend::garbage();
    case Fault::kAmbiguous:
      return FakeBackend::garbage(
          "HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\nhello!");
    case Fault::k500:
      return FakeBackend::fixed(500, "from bad");
    case Fault::k502:
      return FakeBackend::fixed(502, "from bad");
    case Fault::k503:
      return FakeBackend::fixed(503, "from bad");
    case Fault::k504:
      return FakeBackend::fixed(504, "from bad");
  }
  return nullptr;
}

// What an attempt at the bad backend shows in $upstream_status.
int attemptStatus(Fault fault) {
  switch (fault) {
    case Fault::kHang:
      return 504;
    case Fault::k500:
      return 500;
    case Fault::k503:
      return 503;
    case Fault::k504:
      return 504;
    default:
      return 502;
  }
}

// Sends `head_then_part` (a response head and part of its body), then resets.
Handler startThenReset(std::string head_then_part) {
  return [head_then_part](const Request& r, Responder& out) {
    if (out.send(head_then_part)) FakeBackend::resetConnection()(r, out);
  };
}

BackendSpec spec(std::string id, int port, int weight) {
  BackendSpec b;
  b.id = std::move(id);
  b.port = port;
  b.weight = weight;
  b.max_fails = 0;  // passive checks never take the bad one out between attempts
  return b;
}

class RetryPolicyTest : public ProxyTest {
 protected:
  // Upstream "app": `bad` (first pick) then good_, one route "/" with these settings.
  ProxyOptions options(int bad_port, std::optional<std::vector<std::string>> retry_on) {
    ProxyOptions o;
    o.read_timeout = "1s";
    o.backends["app"] = {spec("bad", bad_port, 10000), spec("good", good_.port(), 1)};
    RouteSpec route;
    route.name = "main";
    route.upstream = "app";
    route.retry_on = std::move(retry_on);
    o.routes.push_back(route);
    return o;
  }

  // A proxy (*proxy) whose route has `retries` and the upstream `backends` (equal weights), and
  // its answer to one GET of `target`.
  std::optional<Response> getThrough(const std::vector<FakeBackend*>& backends, int retries,
                                     const std::string& target, Proxy** proxy) {
    ProxyOptions o = options(backends[0]->port(), std::nullopt);
    o.backends["app"].clear();
    for (FakeBackend* b : backends) {
      o.backends["app"].push_back(
          spec("b" + std::to_string(o.backends["app"].size() + 1), b->port(), 1));
    }
    o.routes[0].retries = retries;
    *proxy = startProxy(o);
    if (*proxy == nullptr) return std::nullopt;
    return fetch((*proxy)->port(), request("GET", target));
  }

  // The access log line of the request for `target`, once the worker has written it.
  std::string accessLine(const Proxy& proxy, const std::string& target) {
    std::vector<std::string> lines;
    waitFor(
        [&] {
          lines = linesContaining(proxy.accessLog(),
                                  {"\"GET " + target + " ", "\"POST " + target + " "});
          return !lines.empty();
        },
        Millis(5000));
    return lines.empty() ? "(no line for " + target + ")" : lines.back();
  }

  FakeBackend good_{FakeBackend::fixed(200, "good")};
};

// ---------------------------------------------------------------------------------------------
// Each condition, listed and not listed.

struct PolicyCase {
  const char* name;
  Fault fault;
  std::optional<std::vector<std::string>> retry_on;  // nullopt: the default
  bool retried;
  int status;  // the client's, when not retried (200 from "good" when it is)
};

std::vector<PolicyCase> policyCases() {
  using List = std::vector<std::string>;
  return {
      {"ConnectRefusedListed", Fault::kClosedPort, List{"connect-failure"}, true, 200},
      {"ConnectRefusedNotListed", Fault::kClosedPort, List{"reset", "timeout", "invalid-response"},
       false, 502},
      {"ResetListed", Fault::kReset, List{"reset"}, true, 200},
      {"ResetNotListed", Fault::kReset, List{"connect-failure", "timeout", "invalid-response"},
       false, 502},
      {"EofListed", Fault::kEof, List{"reset"}, true, 200},
      {"EofNotListed", Fault::kEof, List{"connect-failure", "invalid-response", "5xx"}, false, 502},
      {"HangListed", Fault::kHang, List{"timeout"}, true, 200},
      {"HangNotListed", Fault::kHang, List{"connect-failure", "reset", "invalid-response"}, false,
       504},
      {"GarbageListed", Fault::kGarbage, List{"invalid-response"}, true, 200},
      {"GarbageNotListed", Fault::kGarbage, List{"connect-failure", "reset", "timeout"}, false,
       502},
      {"AmbiguousHeadListed", Fault::kAmbiguous, List{"invalid-response"}, true, 200},
      {"AmbiguousHeadNotListed", Fault::kAmbiguous, List{"reset", "5xx"}, false, 502},
      {"Status503Listed", Fault::k503, List{"503"}, true, 200},
      {"Status503By5xx", Fault::k503, List{"5xx"}, true, 200},
      {"Status503NotByDefault", Fault::k503, std::nullopt, false, 503},
      {"Status502Listed", Fault::k502, List{"502"}, true, 200},
      {"Status502NotListed", Fault::k502, List{"503", "504"}, false, 502},
      {"Status500By5xx", Fault::k500, List{"5xx"}, true, 200},
      {"Status500NotBy502To504", Fault::k500, List{"502", "503", "504"}, false, 500},
      {"Status504Listed", Fault::k504, List{"504"}, true, 200},
      // The default list: connect-failure, reset, timeout, invalid-response.
      {"ConnectRefusedByDefault", Fault::kClosedPort, std::nullopt, true, 200},
      {"ResetByDefault", Fault::kReset, std::nullopt, true, 200},
      {"HangByDefault", Fault::kHang, std::nullopt, true, 200},
      {"AmbiguousHeadByDefault", Fault::kAmbiguous, std::nullopt, true, 200},
      {"NothingWithAnEmptyList", Fault::kReset, List{}, false, 502},
  };
}

void PrintTo(const PolicyCase& c, std::ostream* out) {
  *out << c.name;
}

class RetryOnTest : public RetryPolicyTest, public ::testing::WithParamInterface<PolicyCase> {};

TEST_P(RetryOnTest, AGetIsRetriedAtTheOtherBackendOnlyWhenItsConditionIsListed) {
  const PolicyCase& c = GetParam();
  FakeBackend bad(faultHandler(c.fault));
  ASSERT_TRUE(bad.ok() && good_.ok());
  const int bad_port = c.fault == Fault::kClosedPort ? pickFreePort() : bad.port();
  Proxy* proxy = startProxy(options(bad_port, c.retry_on));
  ASSERT_NE(proxy, nullptr);

  Client client(proxy->port());
  ASSERT_TRUE(client.sendRaw(request("GET", "/case"))) << client.error();
  auto response = client.readResponse(Millis(8000));
  ASSERT_TRUE(response) << client.error();
  if (c.fault != Fault::kClosedPort) {
    EXPECT_EQ(bad.requestCount(), 1u) << "the bad backend was asked more than once";
  }
  const std::string line = accessLine(*proxy, "/case");
  const std::string first = std::to_string(attemptStatus(c.fault));
  if (c.retried) {
    EXPECT_EQ(response->status, 200);
    EXPECT_EQ(response->body, "good");
    EXPECT_EQ(good_.requestCount(), 1u);
    EXPECT_THAT(line, HasSubstr("\"" + address(bad_port) + ", " + address(good_.port()) + "\" " +
                                first + ", 200 "));
  } else {
    EXPECT_EQ(response->status, c.status);
    // A backend's own status comes with the body it sent; a failure gets our error page.
    EXPECT_EQ(response->body == "from bad", c.fault >= Fault::k500) << response->body;
    EXPECT_EQ(good_.requestCount(), 0u) << "retried although not listed";
    EXPECT_THAT(line, HasSubstr("\"" + address(bad_port) + "\" " + first + " "));
  }
}

INSTANTIATE_TEST_SUITE_P(Conditions, RetryOnTest, ::testing::ValuesIn(policyCases()),
                         [](const auto& info) { return std::string(info.param.name); });

// ---------------------------------------------------------------------------------------------
// What is never retried

// The body is gone once it left the proxy: no retry, whatever the method and retry_on say.
TEST_F(RetryPolicyTest, ARequestWithABodyIsNeverRetriedOnceTheBodyWasSent) {
  FakeBackend bad(FakeBackend::resetConnection());
  Proxy* proxy =
      startProxy(options(bad.port(), std::vector<std::string>{"connect-failure", "reset", "timeout",
                                                              "invalid-response", "5xx"}));
  ASSERT_NE(proxy, nullptr);
  for (const char* method : {"POST", "PUT"}) {
    SCOPED_TRACE(method);
    Client client(proxy->port());
    ASSERT_TRUE(
        client.sendRaw(buildRequest(method, "/order", {{"Host", std::string(kHost)}}, "item=1")))
        << client.error();
    auto response = client.readResponse(Millis(5000));
    ASSERT_TRUE(response) << client.error();
    EXPECT_EQ(response->status, 502);
  }
  EXPECT_EQ(countTargets(bad, "/order"), 2u);
  EXPECT_EQ(bad.requests()[0].body, "item=1") << "the body was not written before the reset";
  EXPECT_EQ(good_.requestCount(), 0u) << "a request whose body was sent was retried";
}

// A POST without a body is retried only when it never reached a backend: a refused connect.
// Once written (then reset), or answered with a listed status, it is not.
TEST_F(RetryPolicyTest, ABodilessPostIsRetriedOnlyOnAConnectFailure) {
  const std::vector<std::string> all = {"connect-failure", "reset", "timeout", "invalid-response",
                                        "5xx"};
  {
    const int closed = pickFreePort();
    Proxy* proxy = startProxy(options(closed, all));
    ASSERT_NE(proxy, nullptr);
    auto response = fetch(proxy->port(), request("POST", "/refused"));
    ASSERT_TRUE(response);
    EXPECT_EQ(response->status, 200);
    EXPECT_EQ(countTargets(good_, "/refused"), 1u);
    EXPECT_THAT(accessLine(*proxy, "/refused"),
                HasSubstr("\"" + address(closed) + ", " + address(good_.port()) + "\" 502, 200 "));
  }
  for (Fault fault : {Fault::kReset, Fault::k503}) {
    FakeBackend bad(faultHandler(fault));
    Proxy* proxy = startProxy(options(bad.port(), all));
    ASSERT_NE(proxy, nullptr);
    const std::string target = "/post" + std::to_string(static_cast<int>(fault));
    auto response = fetch(proxy->port(), request("POST", target));
    ASSERT_TRUE(response);
    EXPECT_EQ(response->status, attemptStatus(fault));
    EXPECT_EQ(countTargets(bad, target), 1u);
    EXPECT_EQ(countTargets(good_, target), 0u) << "a POST that reached a backend was retried";
  }
}

// Once the head is out, the client must see that response end early, never a second one.
TEST_F(RetryPolicyTest, AResponseAlreadyStartedIsNotRetriedAndArrivesTruncated) {
  FakeBackend bad(startThenReset("HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\npartial"));
  Proxy* proxy =
      startProxy(options(bad.port(), std::vector<std::string>{"connect-failure", "reset", "timeout",
                                                              "invalid-response", "5xx"}));
  ASSERT_NE(proxy, nullptr);
  Client client(proxy->port());
  ASSERT_TRUE(client.sendRaw(request("GET", "/started"))) << client.error();
  bool closed = false;
  const std::string raw = client.readUntilClose(Millis(5000), &closed);
  EXPECT_TRUE(closed);
  EXPECT_TRUE(raw.starts_with("HTTP/1.1 200 OK\r\n")) << raw;
  EXPECT_TRUE(raw.ends_with("\r\n\r\npartial")) << raw;
  EXPECT_EQ(raw.find("good"), std::string::npos) << raw;
  EXPECT_EQ(good_.requestCount(), 0u);
}

// A 1xx already forwarded is part of the answer the client has: a 503 after it is not retried.
TEST_F(RetryPolicyTest, AnInterimResponseForwardedRulesOutAStatusRetry) {
  FakeBackend bad(FakeBackend::garbage(
      "HTTP/1.1 100 Continue\r\n\r\n"
      "HTTP/1.1 503 Service Unavailable\r\nContent-Length: 8\r\n\r\nfrom bad"));
  Proxy* proxy = startProxy(options(bad.port(), std::vector<std::string>{"503"}));
  ASSERT_NE(proxy, nullptr);
  Client client(proxy->port());
  ASSERT_TRUE(client.sendRaw(request("GET", "/interim"))) << client.error();
  std::string head;
  ASSERT_EQ(readHead(*client.stream(), Deadline(Millis(5000)), &head), "");
  EXPECT_TRUE(head.starts_with("HTTP/1.1 100 Continue\r\n")) << head;
  auto response = client.readResponse(Millis(5000));
  ASSERT_TRUE(response) << client.error();
  EXPECT_EQ(response->status, 503);
  EXPECT_EQ(response->body, "from bad");
  EXPECT_EQ(good_.requestCount(), 0u);
}

// ---------------------------------------------------------------------------------------------
// How many attempts

// Three backends that reset, retries: 1: two attempts, each at a different backend.
TEST_F(RetryPolicyTest, RetriesBoundTheAttempts) {
  FakeBackend b1(FakeBackend::resetConnection()), b2(FakeBackend::resetConnection()),
      b3(FakeBackend::resetConnection());
  Proxy* proxy = nullptr;
  auto response = getThrough({&b1, &b2, &b3}, 1, "/bounded", &proxy);
  ASSERT_TRUE(response);
  EXPECT_EQ(response->status, 502);
  EXPECT_EQ(b1.requestCount() + b2.requestCount() + b3.requestCount(), 2u);
  EXPECT_LE(std::max({b1.requestCount(), b2.requestCount(), b3.requestCount()}), 1u);
  EXPECT_THAT(accessLine(*proxy, "/bounded"), HasSubstr("\" 502, 502 "));
}

// More retries than backends: each backend once, then the last attempt's answer.
TEST_F(RetryPolicyTest, NoBackendIsTriedTwice) {
  FakeBackend b1(FakeBackend::resetConnection()), b2(FakeBackend::resetConnection());
  Proxy* proxy = nullptr;
  auto response = getThrough({&b1, &b2}, 5, "/twice", &proxy);
  ASSERT_TRUE(response);
  EXPECT_EQ(response->status, 502);
  EXPECT_EQ(b1.requestCount(), 1u);
  EXPECT_EQ(b2.requestCount(), 1u);
  const std::string line = accessLine(*proxy, "/twice");
  const std::string either[] = {address(b1.port()) + ", " + address(b2.port()),
                                address(b2.port()) + ", " + address(b1.port())};
  EXPECT_TRUE(line.find("\"" + either[0] + "\" 502, 502 ") != std::string::npos ||
              line.find("\"" + either[1] + "\" 502, 502 ") != std::string::npos)
      << line;
}

// ---------------------------------------------------------------------------------------------
// The retry budget

json_t* member(json_t* object, const char* key) {
  return json_is_object(object) ? json_object_get(object, key) : nullptr;
}

// One worker, retry_budget 25: 20 requests are all in flight at the bad backend (it resets
// them only once all 20 have arrived) and the good one holds its answers, so every retry stays
// in flight while the others ask. The budget allows max(3, 25% of 20) = 5 retries; the 15
// others are refused, answered 502 and counted.
TEST_F(RetryPolicyTest, TheBudgetRefusesRetriesBeyondItsShare) {
  constexpr int kRequests = 20;
  auto arrived = std::make_shared<std::atomic<int>>(0);
  FakeBackend bad([arrived](const Request& r, Responder& out) {
    ++*arrived;
    waitFor([&] { return arrived->load() >= kRequests || out.stopping(); }, Millis(5000));
    FakeBackend::resetConnection()(r, out);
  });
  FakeBackend held(FakeBackend::delayed(Millis(1500), FakeBackend::fixed(200, "good")));
  ProxyOptions o = options(bad.port(), std::nullopt);
  o.backends["app"] = {spec("bad", bad.port(), 10000), spec("good", held.port(), 1)};
  o.routes[0].retry_budget = 25;
  o.read_timeout = "5s";  // past the good backend's hold
  o.api = true;
  Proxy* proxy = startProxy(o);
  ASSERT_NE(proxy, nullptr);

  std::vector<std::unique_ptr<Client>> clients;
  for (int i = 0; i < kRequests; ++i) {
    clients.push_back(std::make_unique<Client>(proxy->port()));
    ASSERT_TRUE(clients.back()->sendRaw(request("GET", "/budget/" + std::to_string(i))));
  }
  std::map<int, int> statuses;
  for (auto& client : clients) {
    auto response = client->readResponse(Millis(10'000));
    ASSERT_TRUE(response) << client->error();
    ++statuses[response->status];
  }
  EXPECT_EQ(arrived->load(), kRequests);
  EXPECT_EQ(statuses, (std::map<int, int>{{200, 5}, {502, 15}}));
  EXPECT_EQ(held.requestCount(), 5u);

  auto stats = proxy->api("GET", "/api/v1/stats/server");
  ASSERT_TRUE(stats && stats->status == 200);
  json_error_t error;
  json_t* root = json_loadb(stats->body.data(), stats->body.size(), 0, &error);
  ASSERT_NE(root, nullptr) << stats->body;
  json_t* requests = member(root, "requests");
  EXPECT_EQ(json_integer_value(member(requests, "retries")), 5) << stats->body;
  EXPECT_EQ(json_integer_value(member(requests, "retries_refused")), 15) << stats->body;
  json_decref(root);

  auto metrics = proxy->api("GET", "/metrics");
  ASSERT_TRUE(metrics && metrics->status == 200);
  EXPECT_EQ(linesContaining(metrics->body, {"speedmimi_retries_total 5"}).size(), 1u)
      << metrics->body;
  EXPECT_EQ(linesContaining(metrics->body, {"speedmimi_retries_refused_total 15"}).size(), 1u)
      << metrics->body;
  EXPECT_EQ(linesContaining(proxy->errorLog(), {"retry budget of route main"}).size(), 1u)
      << "the refusals are not logged once (rate-limited)";
}

}  // namespace
}  // namespace speedmimi::test
