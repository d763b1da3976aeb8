// The management API's backend calls seen from outside (DESIGN §9, issue 9): the original
// README's calls verbatim and in order; a backend added at runtime serving from both workers on
// the very next requests; weight updates followed exactly by the balancer; disconnect ending
// tunnels and event streams within 1 s while plain requests in flight finish; remove during a
// slow request; every error status with its message and nothing changed after it; the bearer
// token and the allow list. Answers are parsed with Jansson (the binary links it).
#include <arpa/inet.h>
#include <dirent.h>
#include <jansson.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include <iostream>
#include <set>
#include <sstream>

#include "harness.h"

namespace speedmimi::test {
namespace {

using ::testing::HasSubstr;
using ::testing::IsEmpty;
using ::testing::Not;
using ::testing::StartsWith;

// ---------------------------------------------------------------------------------------------
// JSON

struct JsonDelete {
  void operator()(json_t* j) const { json_decref(j); }
};
using Json = std::unique_ptr<json_t, JsonDelete>;

Json parseJson(const std::string& text, std::string* error = nullptr) {
  json_error_t e;
  Json j(json_loadb(text.data(), text.size(), 0, &e));
  if (!j && error) *error = std::string(e.text) + " at line " + std::to_string(e.line);
  return j;
}

// The member at `path` (object keys) under `root`, or null.
json_t* at(json_t* root, std::initializer_list<const char*> path) {
  json_t* j = root;
  for (const char* key : path) j = json_is_object(j) ? json_object_get(j, key) : nullptr;
  return j;
}

std::string text(json_t* j) {
  return json_is_string(j) ? json_string_value(j) : "";
}

std::string dump(const json_t* j) {
  if (!j) return "(null)";
  char* s = json_dumps(j, JSON_COMPACT | JSON_SORT_KEYS | JSON_ENCODE_ANY);
  std::string out = s ? s : "(unprintable)";
  free(s);
  return out;
}

// The element of a backend array with this "id", or null.
json_t* backendWithId(json_t* list, const std::string& id) {
  size_t i;
  json_t* b;
  json_array_foreach(list, i, b) {
    if (text(json_object_get(b, "id")) == id) return b;
  }
  return nullptr;
}

// The ids of a backend array, in order.
std::vector<std::string> ids(json_t* list) {
  std::vector<std::string> out;
  size_t i;
  json_t* b;
  json_array_foreach(list, i, b) out.push_back(text(json_object_get(b, "id")));
  return out;
}

// ---------------------------------------------------------------------------------------------
// API calls

// One answer: the response and its body parsed (null when it is not JSON).
struct Answer {
  std::optional<Response> response;
  Json json;
  Clock::time_point received;  // when the answer had been read

  int status() const { return response ? response->status : 0; }
  json_t* get(std::initializer_list<const char*> path) const { return at(json.get(), path); }
  std::string body() const { return response ? response->body : "(no answer)"; }
};

Answer call(const Proxy& proxy, const std::string& method, const std::string& target,
            const std::string& body = "", const Headers& headers = {}, bool no_token = false) {
  Answer a;
  a.response = proxy.api(method, target, body, headers, no_token);
  a.received = Clock::now();
  if (a.response) a.json = parseJson(a.response->body);
  return a;
}

// A call whose request and answer are printed "API> "-prefixed, as a curl session reads.
Answer shown(const Proxy& proxy, const std::string& method, const std::string& target,
             const std::string& body = "") {
  Answer a = call(proxy, method, target, body);
  std::ostringstream out;
  out << "API> $ curl -i -X " << method << " 'http://127.0.0.1:" << proxy.apiPort() << target
      << "'";
  if (!body.empty()) out << " -H 'Content-Type: application/json' -d '" << body << "'";
  out << "\n";
  if (!a.response) {
    out << "API> (no answer)\n";
  } else {
    out << "API> " << a.response->status_line << "\n";
    for (const char* h : {"ETag", "Allow", "WWW-Authenticate"}) {
      if (auto v = a.response->header(h)) out << "API> " << h << ": " << *v << "\n";
    }
    std::istringstream lines(a.response->body);
    std::string line;
    while (std::getline(lines, line)) out << "API> " << line << "\n";
  }
  out << "API>\n";
  std::cout << out.str() << std::flush;
  return a;
}

// ---------------------------------------------------------------------------------------------
// Backends, requests and streams

Handler identify(const std::string& id) {
  return [id](const Request&, Responder& out) {
    out.send(buildResponse(200, {{"Content-Type", "text/plain"}}, id));
  };
}

BackendSpec spec(const std::string& id, const FakeBackend& backend, int weight = 1,
                 bool active = true) {
  BackendSpec b;
  b.id = id;
  b.port = backend.port();
  b.weight = weight;
  b.active = active;
  return b;
}

ProxyOptions apiProxy(std::map<std::string, std::vector<BackendSpec>> backends,
                      const std::string& upstream, const std::string& balancer, int workers = 2) {
  ProxyOptions options;
  options.workers = workers;
  options.api = true;
  options.backends = std::move(backends);
  RouteSpec route;
  route.name = "default";
  route.upstream = upstream;
  route.load_balancer = balancer;
  options.routes.push_back(route);
  return options;
}

std::string get(const std::string& target) {
  return buildRequest("GET", target, {{"Host", "api.test"}}, "", Framing::kNone);
}

constexpr const char* kWsKey = "dGhlIHNhbXBsZSBub25jZQ==";

std::string upgradeRequest(const std::string& target) {
  return buildRequest("GET", target,
                      {{"Host", "ws.test"},
                       {"Upgrade", "websocket"},
                       {"Connection", "Upgrade"},
                       {"Sec-WebSocket-Key", kWsKey},
                       {"Sec-WebSocket-Version", "13"}},
                      "", Framing::kNone);
}

std::string sseRequest(const std::string& target) {
  return buildRequest("GET", target, {{"Host", "sse.test"}, {"Accept", "text/event-stream"}}, "",
                      Framing::kNone);
}

constexpr const char* kSseHead =
    "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nCache-Control: no-cache\r\n"
    "Transfer-Encoding: chunked\r\n\r\n";

std::string chunk(const std::string& data) {
  std::ostringstream out;
  out << std::hex << data.size() << "\r\n" << data << "\r\n";
  return out.str();
}

// The slow plain request's body: large enough to need several reads.
const std::string& slowBody() {
  static const std::string body = patternBytes(0, 200'000);
  return body;
}

// What one backend of the streaming tests serves, by target: /ws* a WebSocket echo, /events*
// an event stream that sends one event ("data: <id> <target>") and then holds the stream open
// until the proxy closes it, /slow* 200 with slowBody() after `slow`, anything else its id.
Handler streams(const std::string& id, Millis slow = Millis(1500)) {
  Handler ws = FakeBackend::webSocketEcho();
  Handler late = FakeBackend::delayed(slow, FakeBackend::fixed(200, slowBody()));
  return [id, ws, late](const Request& request, Responder& out) {
    if (request.target.rfind("/ws", 0) == 0) return ws(request, out);
    if (request.target.rfind("/slow", 0) == 0) return late(request, out);
    if (request.target.rfind("/events", 0) == 0) {
      out.closeAfter();
      if (!out.send(kSseHead) || !out.send(chunk("data: " + id + " " + request.target + "\n\n"))) {
        return;
      }
      // Never ends the stream itself: only the proxy closing it (or the backend stopping) does.
      while (true) {
        Stream::Io io = out.stream().fill(Deadline(Millis(50)));
        if (io == Stream::Io::kEof || io == Stream::Io::kError || io == Stream::Io::kStopped) {
          return;
        }
        if (out.stopping()) return;
        out.stream().buffer().clear();
      }
    }
    out.send(buildResponse(200, {{"Content-Type", "text/plain"}}, id));
  };
}

// Sends one masked frame and expects the backend's echo of it.
::testing::AssertionResult echoes(Client& client, const std::string& payload) {
  if (!client.sendRaw(encodeWsFrame(kWsText, payload, true))) {
    return ::testing::AssertionFailure() << "send: " << client.error();
  }
  auto frame = client.readWsFrame(Millis(3000));
  if (!frame) return ::testing::AssertionFailure() << "no echo: " << client.error();
  if (frame->payload != payload) {
    return ::testing::AssertionFailure() << "echo was \"" << frame->payload << "\"";
  }
  return ::testing::AssertionSuccess();
}

// A WebSocket tunnel through the proxy, checked with one echo.
std::unique_ptr<Client> openTunnel(int port, const std::string& target) {
  auto client = std::make_unique<Client>(port);
  EXPECT_TRUE(client->sendRaw(upgradeRequest(target))) << client->error();
  auto handshake = client->readResponse(Millis(5000));
  EXPECT_TRUE(handshake) << target << ": " << client->error();
  if (!handshake) return nullptr;
  EXPECT_EQ(handshake->status, 101) << target << ": " << handshake->raw_head;
  EXPECT_TRUE(echoes(*client, "hello " + target));
  return client;
}

// An event stream through the proxy: the raw bytes received so far are in the client's buffer
// (head included) once the first event arrived.
std::unique_ptr<Client> openEventStream(int port, const std::string& target) {
  auto client = std::make_unique<Client>(port);
  EXPECT_TRUE(client->sendRaw(sseRequest(target))) << client->error();
  Deadline deadline(Millis(5000));
  std::string& raw = client->stream()->buffer();
  while (raw.find(" " + target + "\n\n") == std::string::npos && !deadline.expired()) {
    if (client->stream()->fill(deadline) != Stream::Io::kData) break;
  }
  EXPECT_THAT(raw, StartsWith("HTTP/1.1 200")) << target;
  EXPECT_THAT(raw, HasSubstr(" " + target + "\n\n")) << target << ": the first event did not come";
  return client;
}

// How a stream ended: with a FIN (EOF) before `deadline`, and every byte received.
struct Ending {
  bool eof = false;
  bool error = false;
  int error_number = 0;
  Clock::time_point at;
  std::string bytes;  // everything received on the connection (what was buffered first)
};

Ending readToEnd(Client& client, Clock::time_point deadline) {
  Ending e;
  Stream& s = *client.stream();
  while (true) {
    auto left = std::chrono::duration_cast<Millis>(deadline - Clock::now());
    Stream::Io io = s.fill(Deadline(std::max(left, Millis(0))));
    if (io == Stream::Io::kData) continue;
    e.at = Clock::now();
    e.eof = io == Stream::Io::kEof;
    e.error = io == Stream::Io::kError;
    e.error_number = s.lastErrno();
    break;
  }
  e.bytes = s.buffer();
  return e;
}

// `count` GETs of `prefix`<n>, each on a new connection: how many answers each body had.
std::map<std::string, int> fetchMany(int port, const std::string& prefix, int count) {
  std::map<std::string, int> bodies;
  for (int i = 0; i < count; ++i) {
    std::string error;
    auto r = fetch(port, get(prefix + std::to_string(i)), &error, Millis(5000));
    if (!r) {
      ++bodies["error: " + error];
    } else if (r->status != 200) {
      ++bodies["status " + std::to_string(r->status) + ": " + r->body];
    } else {
      ++bodies[r->body];
    }
  }
  return bodies;
}


// The master's children titled "speedmimi: worker process".
std::vector<pid_t> workerProcesses(const Proxy& proxy) {
  std::vector<pid_t> workers;
  for (pid_t child : proxy.childPids()) {
    if (readFile("/proc/" + std::to_string(child) + "/cmdline")
            .rfind("speedmimi: worker process", 0) == 0) {
      workers.push_back(child);
    }
  }
  return workers;
}

class ApiBackends : public ProxyTest {};

// ---------------------------------------------------------------------------------------------
// 1. The original README's calls, verbatim and in its order (its "update" before "remove", so
//    that backend1 still exists for the calls that name it).

TEST_F(ApiBackends, ReadmeCallsVerbatim) {
  FakeBackend b1(identify("backend1")), b2(identify("backend2"));
  ProxyOptions options =
      apiProxy({{"default", {spec("backend1", b1, 100), spec("backend2", b2, 100)}}}, "default",
               "least_connections_weight");
  options.routes[0].protocols = {{"websocket", "ip_hash"}, {"sse", "ip_hash"}};
  Proxy* proxy = startProxy(options);
  ASSERT_NE(proxy, nullptr);

  // GET /api/v1/config
  Answer config = shown(*proxy, "GET", "/api/v1/config");
  ASSERT_EQ(config.status(), 200) << config.body();
  ASSERT_TRUE(config.json) << config.body();
  EXPECT_TRUE(json_is_true(config.get({"success"})));
  json_t* yaml_backends = config.get({"config", "backends", "default"});
  ASSERT_TRUE(json_is_array(yaml_backends)) << dump(config.get({"config"}));
  EXPECT_EQ(ids(yaml_backends), (std::vector<std::string>{"backend1", "backend2"}));
  EXPECT_FALSE(config.response->header("ETag").value_or("").empty()) << config.response->raw_head;

  // GET /api/v1/backends?upstream=default
  Answer list = shown(*proxy, "GET", "/api/v1/backends?upstream=default");
  ASSERT_EQ(list.status(), 200) << list.body();
  EXPECT_EQ(text(list.get({"upstream"})), "default");
  EXPECT_EQ(ids(list.get({"backends"})), (std::vector<std::string>{"backend1", "backend2"}));
  Json before(json_deep_copy(backendWithId(list.get({"backends"}), "backend1")));
  ASSERT_TRUE(before) << list.body();

  // POST /api/v1/backends/add
  Answer add = shown(
      *proxy, "POST", "/api/v1/backends/add",
      R"({"upstream": "default", "backend": {"id": "backend3", "host": "127.0.0.1", "port": 8083, "weight": 50}})");
  EXPECT_EQ(add.status(), 201) << add.body();
  EXPECT_TRUE(json_is_true(add.get({"success"}))) << add.body();
  {
    Answer after = call(*proxy, "GET", "/api/v1/backends?upstream=default");
    json_t* b3 = backendWithId(after.get({"backends"}), "backend3");
    ASSERT_NE(b3, nullptr) << after.body();
    EXPECT_EQ(text(json_object_get(b3, "host")), "127.0.0.1");
    EXPECT_EQ(json_integer_value(json_object_get(b3, "port")), 8083);
    EXPECT_EQ(json_integer_value(json_object_get(b3, "weight")), 50);
  }

  // PUT /api/v1/backends/update
  Answer update = shown(*proxy, "PUT", "/api/v1/backends/update",
                        R"({"upstream": "default", "backend": {"id": "backend1", "weight": 200}})");
  EXPECT_EQ(update.status(), 200) << update.body();
  {
    Answer after = call(*proxy, "GET", "/api/v1/backends?upstream=default");
    json_t* b = backendWithId(after.get({"backends"}), "backend1");
    ASSERT_NE(b, nullptr) << after.body();
    EXPECT_EQ(json_integer_value(json_object_get(b, "weight")), 200);
    EXPECT_EQ(json_integer_value(json_object_get(b, "effective_weight")), 200) << "no slow start";
    for (const char* field :
         {"id", "name", "host", "port", "scheme", "active", "max_conn", "max_fails", "fail_timeout",
          "slow_start", "tls_verify", "keepalive", "health_check"}) {
      EXPECT_TRUE(json_equal(json_object_get(b, field), json_object_get(before.get(), field)) ||
                  (!json_object_get(b, field) && !json_object_get(before.get(), field)))
          << field << " changed: " << dump(json_object_get(before.get(), field)) << " -> "
          << dump(json_object_get(b, field));
    }
  }

  // POST /api/v1/backends/disconnect?upstream=default&backend_id=backend1
  Answer disconnect =
      shown(*proxy, "POST", "/api/v1/backends/disconnect?upstream=default&backend_id=backend1");
  EXPECT_EQ(disconnect.status(), 200) << disconnect.body();
  {
    Answer after = call(*proxy, "GET", "/api/v1/backends?upstream=default");
    json_t* b = backendWithId(after.get({"backends"}), "backend1");
    ASSERT_NE(b, nullptr) << after.body();
    EXPECT_TRUE(json_is_false(json_object_get(b, "active"))) << dump(b);
  }

  // GET /api/v1/stats/server
  Answer server = shown(*proxy, "GET", "/api/v1/stats/server");
  ASSERT_EQ(server.status(), 200) << server.body();
  for (const char* field : {"cpu_usage", "memory_usage", "load_avg_1", "load_avg_5", "load_avg_15",
                            "network_in", "network_out", "timestamp", "uptime_seconds"}) {
    EXPECT_TRUE(json_is_number(server.get({field}))) << field << " in " << server.body();
  }
  EXPECT_EQ(json_integer_value(server.get({"workers"})), 2) << server.body();
  EXPECT_GT(json_integer_value(server.get({"timestamp"})), 1'600'000'000) << "seconds since 1970";

  // GET /api/v1/stats/backend?upstream=default&backend_id=backend1
  Answer stats = shown(*proxy, "GET", "/api/v1/stats/backend?upstream=default&backend_id=backend1");
  EXPECT_EQ(stats.status(), 200) << stats.body();
  EXPECT_EQ(text(stats.get({"backend", "id"})), "backend1") << stats.body();

  // POST /api/v1/report
  Answer report = shown(
      *proxy, "POST", "/api/v1/report",
      R"({"upstream": "default", "backend_id": "backend1", "performance": {"cpu_usage": 45.2, "memory_usage": 67.8, "load_avg_1": 2.1}})");
  EXPECT_EQ(report.status(), 200) << report.body();
  {
    Answer after =
        shown(*proxy, "GET", "/api/v1/stats/backend?upstream=default&backend_id=backend1");
    json_t* last = after.get({"backend", "last_report"});
    ASSERT_TRUE(json_is_object(last)) << after.body();
    EXPECT_NEAR(json_number_value(json_object_get(last, "cpu_usage")), 45.2, 1e-9);
    EXPECT_NEAR(json_number_value(json_object_get(last, "memory_usage")), 67.8, 1e-9);
    EXPECT_NEAR(json_number_value(json_object_get(last, "load_avg_1")), 2.1, 1e-9);
  }

  // DELETE /api/v1/backends/remove?upstream=default&backend_id=backend1
  Answer remove =
      shown(*proxy, "DELETE", "/api/v1/backends/remove?upstream=default&backend_id=backend1");
  EXPECT_EQ(remove.status(), 200) << remove.body();
  {
    Answer after = call(*proxy, "GET", "/api/v1/backends?upstream=default");
    EXPECT_EQ(ids(after.get({"backends"})), (std::vector<std::string>{"backend2", "backend3"}))
        << after.body();
  }

  // POST /api/v1/config/reload-ssl (ssl.enabled is false)
  Answer ssl = shown(*proxy, "POST", "/api/v1/config/reload-ssl");
  EXPECT_EQ(ssl.status(), 409) << ssl.body();
  EXPECT_TRUE(json_is_false(ssl.get({"success"}))) << ssl.body();
  EXPECT_FALSE(text(ssl.get({"error"})).empty()) << ssl.body();
}

// ---------------------------------------------------------------------------------------------
// 2. An added backend serves from both workers on the very next requests.

TEST_F(ApiBackends, AddedBackendServesFromBothWorkersAtOnce) {
  FakeBackend a(identify("a"));
  std::atomic<int64_t> first_at{0};  // steady_clock ticks of B's first request
  FakeBackend b([&first_at](const Request&, Responder& out) {
    int64_t zero = 0;
    first_at.compare_exchange_strong(zero, Clock::now().time_since_epoch().count());
    out.send(buildResponse(200, {{"Content-Type", "text/plain"}}, "b"));
  });
  Proxy* proxy = startProxy(apiProxy({{"app", {spec("a", a)}}}, "app", "weight"));
  ASSERT_NE(proxy, nullptr);
  ASSERT_EQ(fetchMany(proxy->port(), "/before/", 4)["a"], 4);

  Answer add = call(*proxy, "POST", "/api/v1/backends/add",
                    R"({"upstream": "app", "backend": {"id": "b", "host": "127.0.0.1", "port": )" +
                        std::to_string(b.port()) + R"(, "weight": 1}})");
  ASSERT_EQ(add.status(), 201) << add.body();
  const Clock::time_point answered = add.received;

  // Requests, each on a new connection kept open (idle, keep-alive) so that the worker holding
  // it can be found, until each of the 2 workers has served at least 2 (the kernel may hand most
  // connections to one of them) and at least 40 were sent; bounded.
  constexpr int kMinRequests = 40, kMaxRequests = 400;
  std::vector<std::unique_ptr<Client>> clients;
  std::vector<std::string> errors;
  std::map<std::string, pid_t> worker_of;         // target -> worker
  std::map<pid_t, std::vector<std::string>> seq;  // worker -> bodies, in order
  auto bothServedTwo = [&seq] {
    return seq.size() == 2 && seq.begin()->second.size() >= 2 && seq.rbegin()->second.size() >= 2;
  };
  int sent = 0;
  for (; sent < kMaxRequests && (sent < kMinRequests || !bothServedTwo()); ++sent) {
    std::string target = "/after/" + std::to_string(sent);
    clients.push_back(std::make_unique<Client>(proxy->port()));
    Client& client = *clients.back();
    ASSERT_TRUE(client.sendRaw(get(target))) << client.error();
    auto r = client.readResponse(Millis(5000));
    if (!r || r->status != 200) {
      errors.push_back(target + ": " + (r ? r->status_line : client.error()));
      continue;
    }
    pid_t worker = workerHolding(*proxy, client);
    ASSERT_NE(worker, 0) << "no worker holds the connection of request " << sent;
    worker_of[target] = worker;
    seq[worker].push_back(r->body);
  }
  const size_t kRequests = static_cast<size_t>(sent);
  EXPECT_THAT(errors, IsEmpty());

  const int64_t first = first_at.load();
  ASSERT_NE(first, 0) << "b received none of " << kRequests << " requests";
  double ms = msSince(answered, Clock::time_point(Clock::duration(first)));
  std::cout << "API> time from add answer to first request at the new backend: "
            << static_cast<int64_t>(ms + 0.5) << " ms (" << ms << ")" << std::endl;
  RecordProperty("add_to_first_request_us", static_cast<int>(ms * 1000));

  std::set<pid_t> b_workers;
  size_t at_b = 0;
  for (const Request& r : b.requests()) {
    if (r.target.rfind("/after/", 0) != 0) continue;
    ++at_b;
    if (worker_of.count(r.target)) b_workers.insert(worker_of[r.target]);
  }
  EXPECT_GE(at_b, 10u) << "a got " << countTargets(a, "/after/");
  EXPECT_EQ(at_b + countTargets(a, "/after/"), kRequests);
  ASSERT_TRUE(bothServedTwo()) << "the kernel gave all but one of " << kRequests
                               << " connections to one worker; the test cannot tell them apart";
  EXPECT_EQ(b_workers.size(), 2u) << "b got requests through " << b_workers.size()
                                  << " of the 2 workers";
  // Equal weights: each worker's smooth WRR gives b one of its first two picks after the add.
  for (const auto& [worker, picks] : seq) {
    EXPECT_TRUE(picks[0] == "b" || picks[1] == "b")
        << "worker " << worker << " served " << ::testing::PrintToString(picks);
  }

  // The answer waits for the workers: with both frozen (SIGSTOP) for 200 ms, an add is answered
  // only after they run again, and then at once.
  FakeBackend c(identify("c"));
  std::vector<pid_t> workers = workerProcesses(*proxy);
  ASSERT_EQ(workers.size(), 2u);
  for (pid_t w : workers) ASSERT_EQ(kill(w, SIGSTOP), 0);
  Clock::time_point thawed;
  std::thread thaw([&] {
    std::this_thread::sleep_for(Millis(200));  // the frozen time is the scenario
    thawed = Clock::now();
    for (pid_t w : workers) kill(w, SIGCONT);
  });
  Answer add_c =
      call(*proxy, "POST", "/api/v1/backends/add",
           R"({"upstream": "app", "backend": {"id": "c", "host": "127.0.0.1", "port": )" +
               std::to_string(c.port()) + R"(, "weight": 1}})");
  thaw.join();
  EXPECT_EQ(add_c.status(), 201) << add_c.body();
  EXPECT_GE(msSince(thawed, add_c.received), 0)
      << "answered while the workers were frozen and could not have applied it";
  EXPECT_LT(msSince(thawed, add_c.received), 700) << "answered long after the workers ran again";
  EXPECT_THAT(add_c.body(), Not(HasSubstr("not every worker")));
}

// ---------------------------------------------------------------------------------------------
// 3. A weight update is followed exactly: smooth WRR over whole windows.

// One GET on `client`'s keep-alive connection: the body of a 200 (the backend's id), else what
// went wrong.
std::string bodyOn(Client& client, const std::string& target) {
  if (!client.sendRaw(get(target))) return "error: " + client.error();
  auto r = client.readResponse(Millis(5000));
  if (!r) return "error: " + client.error();
  return r->status == 200 ? r->body : "status " + std::to_string(r->status);
}

TEST_F(ApiBackends, UpdateWeightSharesFollow) {
  FakeBackend a(identify("a")), b(identify("b"));
  Proxy* proxy =
      startProxy(apiProxy({{"app", {spec("a", a, 1), spec("b", b, 1)}}}, "app", "weight", 1));
  ASSERT_NE(proxy, nullptr);

  Client client(proxy->port());
  auto one = [&](const std::string& target) { return bodyOn(client, target); };
  // One pick before: the balancer is in the middle of a window when the weights change.
  EXPECT_EQ(one("/warm"), "a");

  Answer update = call(*proxy, "PUT", "/api/v1/backends/update",
                       R"({"upstream": "app", "backend": {"id": "a", "weight": 3}})");
  ASSERT_EQ(update.status(), 200) << update.body();
  EXPECT_EQ(json_integer_value(update.get({"backend", "weight"})), 3) << update.body();

  std::map<std::string, int> got;
  for (int i = 0; i < 40; ++i) ++got[one("/w/" + std::to_string(i))];
  EXPECT_EQ(got["a"], 30) << ::testing::PrintToString(got);
  EXPECT_EQ(got["b"], 10) << ::testing::PrintToString(got);
  EXPECT_EQ(countTargets(a, "/w/"), 30u);
  EXPECT_EQ(countTargets(b, "/w/"), 10u);
  EXPECT_EQ(a.connectionCount() + b.connectionCount(), 2) << "the keep-alive connection broke";
}

// ---------------------------------------------------------------------------------------------
// 3b. Slow start: a backend added with slow_start 4 s gets a small share of the requests at
//     first (its weight ramps from 1 of 100) and half of them, as its weight says, once the
//     API shows its effective weight at the full weight.

TEST_F(ApiBackends, AddedBackendWithSlowStartRampsUpToItsShare) {
  FakeBackend a(identify("a")), b(identify("b"));
  Proxy* proxy = startProxy(apiProxy({{"app", {spec("a", a, 100)}}}, "app", "weight", 1));
  ASSERT_NE(proxy, nullptr);
  Client client(proxy->port());
  auto one = [&](const std::string& target) { return bodyOn(client, target); };
  ASSERT_EQ(one("/warm"), "a");

  Answer add = call(*proxy, "POST", "/api/v1/backends/add",
                    R"({"upstream": "app", "backend": {"id": "b", "host": "127.0.0.1", "port": )" +
                        std::to_string(b.port()) + R"(, "weight": 100, "slow_start": "4s"}})");
  ASSERT_EQ(add.status(), 201) << add.body();
  EXPECT_STREQ(json_string_value(add.get({"backend", "slow_start"})), "4s") << add.body();
  EXPECT_LE(json_integer_value(add.get({"backend", "effective_weight"})), 10) << add.body();

  // The first 400 ms after the answer: b's weight is at most ceil(100 * 0.4 / 4) = 10 of 110.
  std::map<std::string, int> early;
  const Deadline ramp_start(Millis(400));
  for (int i = 0; i < 2'000 && !ramp_start.expired(); ++i) {
    ++early[one("/early/" + std::to_string(i))];
  }
  const int early_total = early["a"] + early["b"];
  EXPECT_EQ(early.size(), 2u) << "only answers from a and b: " << ::testing::PrintToString(early);
  ASSERT_GE(early_total, 10) << ::testing::PrintToString(early);
  EXPECT_LT(early["b"] * 100, early_total * 25) << ::testing::PrintToString(early);

  // Once the API says the ramp is over (4 s, with a margin), b gets its half.
  int64_t effective = 0;
  const bool over = waitFor(
      [&] {
        Answer shown = call(*proxy, "GET", "/api/v1/stats/backend?upstream=app&backend_id=b");
        effective = json_integer_value(shown.get({"backend", "effective_weight"}));
        return effective == 100;
      },
      Millis(8'000), Millis(50));
  ASSERT_TRUE(over) << "effective_weight " << effective << " 8 s after the add";
  std::map<std::string, int> late;
  for (int i = 0; i < 200; ++i) ++late[one("/late/" + std::to_string(i))];
  EXPECT_EQ(late["a"] + late["b"], 200) << ::testing::PrintToString(late);
  EXPECT_NEAR(late["b"], 100, 10) << ::testing::PrintToString(late);
  std::cout << "API> slow start: b got " << early["b"] << " of " << early_total
            << " requests in the first 400 ms, " << late["b"] << " of 200 after the ramp"
            << std::endl;
}

// ---------------------------------------------------------------------------------------------
// 4. Disconnect: tunnels and event streams end within 1 s, a plain request in flight finishes,
//    no new request reaches the backend, and update active:true brings it back.

TEST_F(ApiBackends, DisconnectEndsTunnelsAndStreamsWithinOneSecond) {
  FakeBackend b1(streams("backend1")), b2(streams("backend2"));
  // backend2 inactive at first, so that every stream lands on backend1.
  Proxy* proxy = startProxy(apiProxy(
      {{"default", {spec("backend1", b1), spec("backend2", b2, 1, false)}}}, "default", "weight"));
  ASSERT_NE(proxy, nullptr);

  std::vector<std::unique_ptr<Client>> tunnels, events;
  for (int i = 0; i < 4; ++i) {
    tunnels.push_back(openTunnel(proxy->port(), "/ws/" + std::to_string(i)));
    ASSERT_NE(tunnels.back(), nullptr);
  }
  for (int i = 0; i < 2; ++i)
    events.push_back(openEventStream(proxy->port(), "/events/" + std::to_string(i)));
  Client slow(proxy->port());
  ASSERT_TRUE(slow.sendRaw(get("/slow/1"))) << slow.error();
  ASSERT_TRUE(waitFor([&] { return countTargets(b1, "/slow/") == 1; }, Millis(3000)));
  EXPECT_EQ(countTargets(b1, "/ws/"), 4u);
  EXPECT_EQ(countTargets(b1, "/events/"), 2u);
  // A plain request done before leaves its backend connection idle in a worker's pool.
  std::string error;
  auto plain = fetch(proxy->port(), get("/plain/0"), &error, Millis(5000));
  ASSERT_TRUE(plain) << error;
  EXPECT_EQ(plain->body, "backend1");
  int pooled = -1;
  for (const Request& r : b1.requests()) {
    if (r.target == "/plain/0") pooled = r.connection;
  }
  ASSERT_GE(pooled, 0);
  ASSERT_FALSE(HasFailure());

  // backend2 takes traffic from now on.
  Answer on2 = call(*proxy, "PUT", "/api/v1/backends/update",
                    R"({"upstream": "default", "backend": {"id": "backend2", "active": true}})");
  ASSERT_EQ(on2.status(), 200) << on2.body();

  const Clock::time_point sent = Clock::now();
  Answer off =
      call(*proxy, "POST", "/api/v1/backends/disconnect?upstream=default&backend_id=backend1");
  ASSERT_EQ(off.status(), 200) << off.body();
  // The API waits at most 1 s for the workers to apply it (and then says so in its answer).
  EXPECT_LT(msSince(sent, off.received), 1200) << "the disconnect answer took too long";
  EXPECT_THAT(off.body(), Not(HasSubstr("not every worker"))) << off.body();
  const Clock::time_point limit = off.received + Millis(1000);

  for (size_t i = 0; i < tunnels.size(); ++i) {
    Ending e = readToEnd(*tunnels[i], limit);
    EXPECT_TRUE(e.eof) << "tunnel " << i << " still open (or reset: errno " << e.error_number
                       << ") " << msSince(off.received, e.at) << " ms after the answer";
  }
  for (size_t i = 0; i < events.size(); ++i) {
    Ending e = readToEnd(*events[i], limit);
    EXPECT_TRUE(e.eof) << "event stream " << i << " still open (or reset: errno " << e.error_number
                       << ") " << msSince(off.received, e.at) << " ms after the answer";
    EXPECT_THAT(e.bytes, HasSubstr("data: backend1 /events/" + std::to_string(i) + "\n\n"));
    EXPECT_FALSE(e.bytes.size() >= 5 && e.bytes.compare(e.bytes.size() - 5, 5, "0\r\n\r\n") == 0)
        << "event stream " << i << " was ended with the last chunk, as if it were complete";
  }

  EXPECT_TRUE(b1.waitForPeerClose(
      pooled, std::max(Millis(0), std::chrono::duration_cast<Millis>(limit - Clock::now()))))
      << "the idle pooled connection to backend1 is still open 1 s after the answer";

  // The plain request in flight finishes, whole.
  auto late = slow.readResponse(Millis(5000));
  ASSERT_TRUE(late) << slow.error();
  EXPECT_EQ(late->status, 200);
  EXPECT_TRUE(sameBytes(slowBody(), late->body));

  // No new request reaches backend1.
  std::map<std::string, int> after = fetchMany(proxy->port(), "/after/", 20);
  EXPECT_EQ(after["backend2"], 20) << ::testing::PrintToString(after);
  EXPECT_EQ(countTargets(b1, "/after/"), 0u);

  // update active:true brings it back.
  Answer on1 = call(*proxy, "PUT", "/api/v1/backends/update",
                    R"({"upstream": "default", "backend": {"id": "backend1", "active": true}})");
  ASSERT_EQ(on1.status(), 200) << on1.body();
  std::map<std::string, int> back = fetchMany(proxy->port(), "/back/", 20);
  EXPECT_EQ(back["backend1"] + back["backend2"], 20) << ::testing::PrintToString(back);
  EXPECT_GE(countTargets(b1, "/back/"), 5u) << ::testing::PrintToString(back);

  // Disconnect at once followed by active:true (sent before the disconnect is answered) still
  // closes a tunnel opened before; one to backend2 is untouched.
  std::vector<std::unique_ptr<Client>> more;
  Client* t1 = nullptr;  // a tunnel to backend1
  Client* t2 = nullptr;  // one to backend2
  for (int i = 0; i < 12 && !(t1 && t2); ++i) {
    std::string target = "/ws/again/" + std::to_string(i);
    more.push_back(openTunnel(proxy->port(), target));
    ASSERT_NE(more.back(), nullptr);
    if (!t1 && countTargets(b1, target) == 1) t1 = more.back().get();
    if (!t2 && countTargets(b2, target) == 1) t2 = more.back().get();
  }
  ASSERT_TRUE(t1 && t2) << "12 tunnels did not reach both backends";

  // The workers are frozen (SIGSTOP) while the control process takes both calls, so that each
  // worker finds backend1 active again when it next looks: only a disconnect counted apart from
  // the active flag can still close the tunnel. Unfrozen within ~100 ms, before the API's 1 s
  // wait for the workers runs out.
  std::vector<pid_t> workers = workerProcesses(*proxy);
  ASSERT_EQ(workers.size(), 2u);
  const std::string disconnected_line =
      "API: backend \"backend1\" of upstream \"default\" disconnected";
  const std::string activated_line =
      "API: backend \"backend1\" updated in upstream \"default\": {\"active\":true}";
  const size_t disconnects = linesContaining(proxy->errorLog(), {disconnected_line}).size();
  const size_t activations = linesContaining(proxy->errorLog(), {activated_line}).size();
  for (pid_t w : workers) ASSERT_EQ(kill(w, SIGSTOP), 0);
  Client disconnect_call(proxy->apiPort()), update_call(proxy->apiPort());
  Headers host = {{"Host", "127.0.0.1"}};
  bool both = disconnect_call.sendRaw(buildRequest(
      "POST", "/api/v1/backends/disconnect?upstream=default&backend_id=backend1", host, ""));
  both = both &&
         waitFor(
             [&] {
               return linesContaining(proxy->errorLog(), {disconnected_line}).size() > disconnects;
             },
             Millis(500), Millis(1));
  Headers json_host = host;
  json_host.push_back({"Content-Type", "application/json"});
  both = both && update_call.sendRaw(buildRequest(
                     "PUT", "/api/v1/backends/update", json_host,
                     R"({"upstream": "default", "backend": {"id": "backend1", "active": true}})"));
  both =
      both &&
      waitFor(
          [&] { return linesContaining(proxy->errorLog(), {activated_line}).size() > activations; },
          Millis(500), Millis(1));
  for (pid_t w : workers) kill(w, SIGCONT);
  ASSERT_TRUE(both) << "the control process did not take both calls:\n" << proxy->errorLog();
  auto off_again = disconnect_call.readResponse(Millis(5000));
  const Clock::time_point off_again_at = Clock::now();
  auto on_again = update_call.readResponse(Millis(5000));
  ASSERT_TRUE(off_again && on_again) << disconnect_call.error() << update_call.error();
  EXPECT_EQ(off_again->status, 200) << off_again->body;
  EXPECT_EQ(on_again->status, 200) << on_again->body;
  EXPECT_THAT(off_again->body, Not(HasSubstr("not every worker"))) << "frozen for too long";

  Ending e = readToEnd(*t1, off_again_at + Millis(1000));
  EXPECT_TRUE(e.eof) << "the tunnel to backend1 outlived a disconnect followed by active:true ("
                     << msSince(off_again_at, e.at) << " ms, errno " << e.error_number << ")";
  EXPECT_TRUE(echoes(*t2, "backend2's tunnel is not backend1's"));
  Answer list = call(*proxy, "GET", "/api/v1/backends?upstream=default");
  EXPECT_TRUE(
      json_is_true(json_object_get(backendWithId(list.get({"backends"}), "backend1"), "active")))
      << list.body();
}

// ---------------------------------------------------------------------------------------------
// 5. Remove during a slow request: answered at once, the request finishes, nothing new reaches it.

TEST_F(ApiBackends, RemoveDuringASlowRequestLetsItFinish) {
  FakeBackend a(identify("a"));
  FakeBackend b(streams("b"));
  // b first: the weight balancer picks it for the first request of either worker.
  Proxy* proxy =
      startProxy(apiProxy({{"app", {spec("a", a, 1), spec("b", b, 10000)}}}, "app", "weight"));
  ASSERT_NE(proxy, nullptr);

  Client slow(proxy->port());
  const Clock::time_point sent = Clock::now();
  ASSERT_TRUE(slow.sendRaw(get("/slow/1"))) << slow.error();
  ASSERT_TRUE(b.waitForRequests(1, Millis(3000))) << "a got " << a.requestCount();
  ASSERT_EQ(countTargets(b, "/slow/"), 1u);

  Answer remove = call(*proxy, "DELETE", "/api/v1/backends/remove?upstream=app&backend_id=b");
  ASSERT_EQ(remove.status(), 200) << remove.body();
  EXPECT_LT(msSince(sent, remove.received), 1000) << "remove waited for the request in flight";

  std::map<std::string, int> after = fetchMany(proxy->port(), "/after/", 20);
  EXPECT_EQ(after["a"], 20) << ::testing::PrintToString(after);

  auto late = slow.readResponse(Millis(5000));
  ASSERT_TRUE(late) << slow.error();
  EXPECT_EQ(late->status, 200);
  EXPECT_TRUE(sameBytes(slowBody(), late->body));
  EXPECT_GE(msSince(sent, Clock::now()), 1400) << "the slow request was not slow";

  EXPECT_EQ(b.requestCount(), 1u) << "a removed backend received new requests";
  Answer list = call(*proxy, "GET", "/api/v1/backends?upstream=app");
  EXPECT_EQ(ids(list.get({"backends"})), (std::vector<std::string>{"a"})) << list.body();
}

// ---------------------------------------------------------------------------------------------
// 6. Every error: its status and message, and nothing changed.

TEST_F(ApiBackends, ErrorsChangeNothing) {
  FakeBackend b1(identify("backend1")), b2(identify("backend2"));
  Proxy* proxy = startProxy(
      apiProxy({{"default", {spec("backend1", b1), spec("backend2", b2)}}}, "default", "weight"));
  ASSERT_NE(proxy, nullptr);
  // One change first, so that there is a state file whose bytes must stay.
  Answer seed = call(*proxy, "PUT", "/api/v1/backends/update",
                     R"({"upstream": "default", "backend": {"id": "backend2", "weight": 2}})");
  ASSERT_EQ(seed.status(), 200) << seed.body();
  const std::string state = readFile(proxy->stateFilePath());
  ASSERT_FALSE(state.empty()) << proxy->stateFilePath();
  Answer list = call(*proxy, "GET", "/api/v1/backends");
  ASSERT_EQ(list.status(), 200) << list.body();
  Json backends(json_incref(list.get({"upstreams"})));
  ASSERT_TRUE(json_is_object(backends.get())) << list.body();

  std::string big =
      R"({"upstream": "default", "backend": {"id": "big", "host": "127.0.0.1", "port": 9, "name": ")" +
      std::string((1 << 20) + 16, 'x') + "\"}}";
  struct Case {
    std::string name, method, target, body;
    int status;
    std::string error;  // expected in "error"
  };
  const std::vector<Case> cases = {
      {"bad JSON", "POST", "/api/v1/backends/add", R"({"upstream": "default", "backend": {)", 400,
       "line 1, column"},
      {"unknown field", "POST", "/api/v1/backends/add",
       R"({"upstream": "default", "backend": {"id": "x", "host": "127.0.0.1", "port": 8085, "colour": "red"}})",
       400, "backend.colour"},
      {"port out of range", "POST", "/api/v1/backends/add",
       R"({"upstream": "default", "backend": {"id": "x", "host": "127.0.0.1", "port": 70000}})",
       400, "backend.port"},
      {"wrong type", "POST", "/api/v1/backends/add",
       R"({"upstream": "default", "backend": {"id": "x", "host": "127.0.0.1", "port": 8085, "weight": "heavy"}})",
       400, "backend.weight"},
      {"wrong type on update", "PUT", "/api/v1/backends/update",
       R"({"upstream": "default", "backend": {"id": "backend1", "weight": "heavy"}})", 400,
       "backend.weight"},
      {"missing host", "POST", "/api/v1/backends/add",
       R"({"upstream": "default", "backend": {"id": "x", "port": 8085}})", 400, "backend.host"},
      {"unresolvable host", "POST", "/api/v1/backends/add",
       R"({"upstream": "default", "backend": {"id": "x", "host": "no-such-host.invalid", "port": 8085}})",
       400, "cannot resolve"},
      {"unknown upstream on remove", "DELETE",
       "/api/v1/backends/remove?upstream=nosuch&backend_id=backend1", "", 404, "nosuch"},
      {"unknown backend on update", "PUT", "/api/v1/backends/update",
       R"({"upstream": "default", "backend": {"id": "backend9", "weight": 2}})", 404, "backend9"},
      {"duplicate id on add", "POST", "/api/v1/backends/add",
       R"({"upstream": "default", "backend": {"id": "backend1", "host": "127.0.0.1", "port": 8085}})",
       409, "backend1"},
      {"wrong method", "GET", "/api/v1/backends/add", "", 405, "allowed"},
      {"unknown path", "GET", "/api/v1/backends/nothing", "", 404, "/api/v1/backends/nothing"},
      {"body over 1 MiB", "POST", "/api/v1/backends/add", big, 413, ""},
      {"report cpu_usage 101", "POST", "/api/v1/report",
       R"({"upstream": "default", "backend_id": "backend1", "performance": {"cpu_usage": 101}})",
       400, "performance.cpu_usage"},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.name);
    Answer a = call(*proxy, c.method, c.target, c.body);
    ASSERT_TRUE(a.response) << "no answer";
    EXPECT_EQ(a.status(), c.status) << a.body().substr(0, 400);
    EXPECT_TRUE(a.json) << "not JSON: " << a.body().substr(0, 400);
    EXPECT_TRUE(json_is_false(a.get({"success"}))) << a.body().substr(0, 400);
    EXPECT_THAT(text(a.get({"error"})), HasSubstr(c.error)) << a.body().substr(0, 400);
    if (c.status == 405) {
      EXPECT_EQ(a.response->header("Allow").value_or("(none)"), "POST");
    }
    Answer now = call(*proxy, "GET", "/api/v1/backends");
    EXPECT_TRUE(json_equal(now.get({"upstreams"}), backends.get()))
        << "before: " << dump(backends.get()) << "\nafter: " << dump(now.get({"upstreams"}));
    EXPECT_EQ(readFile(proxy->stateFilePath()), state) << "the state file changed";
  }
}

// ---------------------------------------------------------------------------------------------
// 7. admin.auth_token and admin.allow.

TEST_F(ApiBackends, AuthTokenAndAllowList) {
  FakeBackend b1(identify("backend1"));
  ProxyOptions options = apiProxy({{"default", {spec("backend1", b1)}}}, "default", "weight");
  options.auth_token = "s3cret";
  Proxy* proxy = startProxy(options);
  ASSERT_NE(proxy, nullptr);

  const std::string target = "/api/v1/backends?upstream=default";
  Answer none = call(*proxy, "GET", target, "", {}, true);
  EXPECT_EQ(none.status(), 401) << none.body();
  EXPECT_THAT(none.response->header("WWW-Authenticate").value_or(""), StartsWith("Bearer"));
  EXPECT_TRUE(json_is_false(none.get({"success"}))) << none.body();
  EXPECT_FALSE(text(none.get({"error"})).empty()) << none.body();

  Answer wrong = call(*proxy, "GET", target, "", {{"Authorization", "Bearer s3cre"}});
  EXPECT_EQ(wrong.status(), 401) << wrong.body();
  EXPECT_THAT(wrong.response->header("WWW-Authenticate").value_or(""), StartsWith("Bearer"));
  EXPECT_TRUE(json_is_false(wrong.get({"success"}))) << wrong.body();
  Answer longer = call(*proxy, "GET", target, "", {{"Authorization", "Bearer s3cret2"}});
  EXPECT_EQ(longer.status(), 401) << longer.body();

  // A change without the token changes nothing.
  Answer add =
      call(*proxy, "POST", "/api/v1/backends/add",
           R"({"upstream": "default", "backend": {"id": "x", "host": "127.0.0.1", "port": 8085}})",
           {}, true);
  EXPECT_EQ(add.status(), 401) << add.body();

  Answer right = call(*proxy, "GET", target);  // the harness sends "Bearer s3cret"
  EXPECT_EQ(right.status(), 200) << right.body();
  EXPECT_EQ(ids(right.get({"backends"})), (std::vector<std::string>{"backend1"})) << right.body();

  ProxyOptions fenced = apiProxy({{"default", {spec("backend1", b1)}}}, "default", "weight");
  fenced.admin_allow = {"10.0.0.0/8"};
  Proxy* other = startProxy(fenced);
  ASSERT_NE(other, nullptr);
  Answer refused = call(*other, "GET", target);
  EXPECT_EQ(refused.status(), 403) << refused.body();
  EXPECT_TRUE(json_is_false(refused.get({"success"}))) << refused.body();
  EXPECT_FALSE(text(refused.get({"error"})).empty()) << refused.body();
}

}  // namespace
}  // namespace speedmimi::test
