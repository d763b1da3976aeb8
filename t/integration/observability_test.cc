// Observability seen from outside (DESIGN §3 and §9, issue 10): a known number of requests with
// known statuses through 2 workers gives exact counts in /api/v1/stats/server,
// /api/v1/stats/backend and /metrics; `promtool check metrics` accepts the real output; a real
// Prometheus server scrapes the admin listener with the bearer token and its query API returns
// the request counter; the totals are the same after a reload, then grow.
//
// promtool and prometheus are Debian's `prometheus` package (.ci/run installs it): a missing
// one fails these tests, it does not skip them.
#include <fcntl.h>
#include <jansson.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmath>
#include <fstream>
#include <iostream>
#include <map>
#include <set>
#include <sstream>

#include "harness.h"

namespace speedmimi::test {
namespace {

constexpr const char* kPromtool = "/usr/bin/promtool";
constexpr const char* kPrometheus = "/usr/bin/prometheus";

// ---------------------------------------------------------------------------------------------
// JSON answers

struct JsonDelete {
  void operator()(json_t* j) const { json_decref(j); }
};
using Json = std::unique_ptr<json_t, JsonDelete>;

Json parseJson(const std::string& text) {
  json_error_t e;
  return Json(json_loadb(text.data(), text.size(), 0, &e));
}

// The member at `path` (object keys) under `root`, or null.
json_t* at(json_t* root, std::initializer_list<const char*> path) {
  json_t* j = root;
  for (const char* key : path) j = json_is_object(j) ? json_object_get(j, key) : nullptr;
  return j;
}

// An integer member, -1 when absent or not an integer.
long long integer(json_t* root, std::initializer_list<const char*> path) {
  json_t* j = at(root, path);
  return json_is_integer(j) ? json_integer_value(j) : -1;
}

std::string dump(const json_t* j) {
  if (!j) return "(null)";
  char* s = json_dumps(j, JSON_INDENT(2) | JSON_SORT_KEYS);
  std::string out = s ? s : "(unprintable)";
  free(s);
  return out;
}

// GET `target` on the admin listener: its JSON, or null with the reason in *error.
Json getJson(const Proxy& proxy, const std::string& target, std::string* error = nullptr) {
  auto r = proxy.api("GET", target);
  if (!r || r->status != 200) {
    if (error) *error = r ? r->status_line + "\n" + r->body : "no answer";
    return nullptr;
  }
  return parseJson(r->body);
}

// ---------------------------------------------------------------------------------------------
// The exposition format: "name{labels} value" -> value.

using Samples = std::map<std::string, double>;

Samples parseSamples(const std::string& exposition) {
  Samples out;
  std::istringstream in(exposition);
  std::string line;
  while (std::getline(in, line)) {
    if (line.empty() || line[0] == '#') continue;
    size_t space = line.rfind(' ');
    out[line.substr(0, space)] = std::strtod(line.c_str() + space + 1, nullptr);
  }
  return out;
}

std::optional<Response> getMetrics(const Proxy& proxy, const Headers& headers = {},
                                   bool no_token = false) {
  return proxy.api("GET", "/metrics", "", headers, no_token);
}

// The value of `series`, NaN when absent (so that any comparison with it fails).
double valueOf(const Samples& samples, const std::string& series) {
  auto it = samples.find(series);
  return it == samples.end() ? std::nan("") : it->second;
}

// ---------------------------------------------------------------------------------------------
// External programs: promtool, prometheus.

struct ToolResult {
  int exit_code = -1;  // -1: killed or did not exit normally
  bool timed_out = false;
  std::string output;  // stdout and stderr
};

// Runs `argv` with `input` on its stdin, its output to `dir`/NAME.out, at most `timeout`.
ToolResult runTool(const std::vector<std::string>& argv, const std::string& input,
                   const std::string& dir, Millis timeout) {
  ToolResult result;
  std::string in_path = dir + "/tool.in";
  std::string out_path = dir + "/tool.out";
  std::ofstream(in_path, std::ios::binary | std::ios::trunc) << input;
  pid_t pid = fork();
  if (pid < 0) return result;
  if (pid == 0) {
    int in = open(in_path.c_str(), O_RDONLY);
    int out = open(out_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    if (in < 0 || out < 0) _exit(126);
    dup2(in, 0);
    dup2(out, 1);
    dup2(out, 2);
    std::vector<char*> args;
    for (const std::string& a : argv) args.push_back(const_cast<char*>(a.c_str()));
    args.push_back(nullptr);
    execv(args[0], args.data());
    _exit(127);
  }
  int status = 0;
  bool exited = waitFor([&] { return waitpid(pid, &status, WNOHANG) == pid; }, timeout);
  if (!exited) {
    result.timed_out = true;
    kill(pid, SIGKILL);
    waitpid(pid, &status, 0);
  } else if (WIFEXITED(status)) {
    result.exit_code = WEXITSTATUS(status);
  }
  result.output = readFile(out_path);
  return result;
}

std::string urlEncode(const std::string& in) {
  static const char* const kHex = "0123456789ABCDEF";
  std::string out;
  for (unsigned char c : in) {
    if (isalnum(c) || c == '_' || c == '-' || c == '.' || c == '~') {
      out += static_cast<char>(c);
    } else {
      out += '%';
      out += kHex[c >> 4];
      out += kHex[c & 15];
    }
  }
  return out;
}

// A Prometheus server on a loopback port, scraping one target every second; stopped (TERM, then
// KILL) when destroyed. Its data and log live in `dir`.
class PrometheusServer {
 public:
  PrometheusServer(std::string dir, int target_port, const std::string& token)
      : dir_(std::move(dir)) {
    port_ = pickFreePort();
    std::ofstream(dir_ + "/prometheus.yml")
        << "global:\n"
        << "  scrape_interval: 1s\n"
        << "  scrape_timeout: 1s\n"
        << "scrape_configs:\n"
        << "  - job_name: speedmimi\n"
        << "    metrics_path: /metrics\n"
        << (token.empty()
                ? ""
                : "    authorization:\n      type: Bearer\n      credentials: \"" + token + "\"\n")
        << "    static_configs:\n"
        << "      - targets: [\"127.0.0.1:" << target_port << "\"]\n";
  }
  ~PrometheusServer() { stop(); }

  bool start(std::string* error) {
    mkdir((dir_ + "/tsdb").c_str(), 0755);
    std::vector<std::string> argv = {kPrometheus, "--config.file=" + dir_ + "/prometheus.yml",
                                     "--storage.tsdb.path=" + dir_ + "/tsdb",
                                     "--web.listen-address=127.0.0.1:" + std::to_string(port_)};
    pid_ = fork();
    if (pid_ < 0) return *error = "fork failed", false;
    if (pid_ == 0) {
      int out = open((dir_ + "/prometheus.log").c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
      int in = open("/dev/null", O_RDONLY);
      if (out < 0 || in < 0) _exit(126);
      dup2(in, 0);
      dup2(out, 1);
      dup2(out, 2);
      std::vector<char*> args;
      for (const std::string& a : argv) args.push_back(const_cast<char*>(a.c_str()));
      args.push_back(nullptr);
      execv(args[0], args.data());
      _exit(127);
    }
    bool ready = waitFor(
        [&] {
          if (exited()) return true;
          auto r = get("/-/ready");
          return r && r->status == 200;
        },
        Millis(15'000), Millis(100));
    if (!ready || exited()) {
      *error = "prometheus did not become ready on port " + std::to_string(port_) + ":\n" + log();
      return false;
    }
    return true;
  }

  std::optional<Response> get(const std::string& target) const {
    return fetch(port_, buildRequest("GET", target, {{"Host", "127.0.0.1"}}, "", Framing::kNone),
                 nullptr, Millis(5000));
  }

  // The value of an instant query's single sample, or nullopt (no sample yet).
  std::optional<double> query(const std::string& expression) const {
    auto r = get("/api/v1/query?query=" + urlEncode(expression));
    if (!r || r->status != 200) return std::nullopt;
    Json j = parseJson(r->body);
    json_t* result = at(j.get(), {"data", "result"});
    if (json_array_size(result) != 1) return std::nullopt;
    json_t* value = json_array_get(json_object_get(json_array_get(result, 0), "value"), 1);
    if (!json_is_string(value)) return std::nullopt;
    return std::strtod(json_string_value(value), nullptr);
  }

  std::string log() const { return readFile(dir_ + "/prometheus.log"); }

 private:
  bool exited() {
    if (pid_ <= 0) return true;
    int status;
    if (waitpid(pid_, &status, WNOHANG) != pid_) return false;
    pid_ = -1;
    return true;
  }
  void stop() {
    if (pid_ <= 0) return;
    kill(pid_, SIGTERM);
    if (!waitFor([&] { return exited(); }, Millis(10'000), Millis(20))) {
      kill(pid_, SIGKILL);
      waitpid(pid_, nullptr, 0);
    }
    pid_ = -1;
  }

  std::string dir_;
  int port_ = 0;
  pid_t pid_ = -1;
};

// ---------------------------------------------------------------------------------------------
// The traffic: 7 x 200 and 3 x 404 from backend b1 of upstream "app", 2 x 503 from upstream
// "none", whose only backend is inactive; through two keep-alive connections held by the two
// workers, alternately.

constexpr int kOk = 7;
constexpr int kMissing = 3;
constexpr int kUnavailable = 2;
constexpr int kRequests = kOk + kMissing + kUnavailable;

Handler okOrMissing() {
  return [](const Request& request, Responder& out) {
    bool missing = request.target.rfind("/missing/", 0) == 0;
    out.send(buildResponse(missing ? 404 : 200, {{"Content-Type", "text/plain"}},
                           missing ? "no such thing" : "hello from b1"));
  };
}

ProxyOptions observedProxy(const FakeBackend& backend, const std::string& token = "") {
  ProxyOptions options;
  options.workers = 2;
  options.api = true;
  options.auth_token = token;
  // sendTraffic holds its first connection, without a request, until the kernel hands one to
  // the other worker too, which can take seconds (up to its 20 s bound): longer than the
  // harness's 5 s header_timeout, which would close it.
  options.header_timeout = "30s";
  BackendSpec b1;
  b1.id = "b1";
  b1.port = backend.port();
  b1.weight = 5;
  BackendSpec off;
  off.id = "off";
  off.port = backend.port();
  off.active = false;
  options.backends["app"] = {b1};
  options.backends["none"] = {off};
  RouteSpec app;
  app.name = "app";
  app.path = "/";
  app.upstream = "app";
  RouteSpec none;
  none.name = "none";
  none.path = "/none/";
  none.upstream = "none";
  options.routes = {app, none};
  return options;
}

// What the client sent and received, to compare with the counters.
struct Sent {
  int connections = 0;  // opened to the proxy
  size_t request_bytes = 0;
  size_t response_bytes = 0;
  std::map<int, int> statuses;
  std::set<pid_t> workers;  // that served them
};

// Opens connections until two are held by different workers (the others stay open until the
// end, idle), then sends the traffic over those two, alternately, with `tag` in the targets.
// Workers race for each connection, and on shared cores one may win many in a row, so the
// connections come ever slower, for 10 s; on loaded cores (a sanitizer build beside other jobs)
// the same worker may win even so, and then the gaps vary, from none to 100 ms, for 10 s more.
::testing::AssertionResult sendTraffic(const Proxy& proxy, const std::string& tag, Sent* sent) {
  std::vector<std::unique_ptr<Client>> clients;
  std::vector<Client*> chosen;
  std::set<pid_t> seen;
  Deadline slowing(Millis(10'000));
  Deadline deadline(Millis(20'000));
  for (int i = 0; chosen.size() < 2 && i < 400 && !deadline.expired(); ++i) {
    int gap = !slowing.expired() ? std::min(5 * i, 100) : i % 4 == 0 ? 0 : i % 4 == 3 ? 100 : i % 7;
    if (i > 0 && gap > 0) std::this_thread::sleep_for(Millis(gap));
    clients.push_back(std::make_unique<Client>(proxy.port()));
    ++sent->connections;
    if (!clients.back()->connected()) {
      return ::testing::AssertionFailure() << "connect: " << clients.back()->error();
    }
    pid_t worker = workerHolding(proxy, *clients.back());
    if (worker != 0 && seen.insert(worker).second) chosen.push_back(clients.back().get());
  }
  if (chosen.size() < 2) {
    return ::testing::AssertionFailure()
           << sent->connections << " connections, all held by one worker";
  }
  sent->workers.insert(seen.begin(), seen.end());
  std::vector<std::string> targets;
  for (int i = 0; i < kOk; ++i) targets.push_back("/ok/" + tag + std::to_string(i));
  for (int i = 0; i < kMissing; ++i) targets.push_back("/missing/" + tag + std::to_string(i));
  for (int i = 0; i < kUnavailable; ++i) targets.push_back("/none/" + tag + std::to_string(i));
  for (size_t i = 0; i < targets.size(); ++i) {
    Client& client = *chosen[i % 2];
    std::string request =
        buildRequest("GET", targets[i], {{"Host", "observed.test"}}, "", Framing::kNone);
    if (!client.sendRaw(request)) {
      return ::testing::AssertionFailure() << targets[i] << ": " << client.error();
    }
    auto r = client.readResponse(Millis(5000));
    if (!r) return ::testing::AssertionFailure() << targets[i] << ": " << client.error();
    sent->request_bytes += request.size();
    sent->response_bytes += r->raw_head.size() + r->raw_body.size();
    ++sent->statuses[r->status];
  }
  return ::testing::AssertionSuccess();
}

// The server's request total once it reaches `expected` and the workers have seen every
// connection of the traffic close (sendTraffic's clients are gone by then), -1 if it does not
// within 5 s. Counters are written when an exchange ends, which may be just after the client
// read the response: a worker preempted between its write and its count would otherwise leave
// a snapshot short of the last answer's bytes.
long long settledRequests(const Proxy& proxy, long long expected) {
  long long total = -1;
  waitFor(
      [&] {
        Json j = getJson(proxy, "/api/v1/stats/server");
        total = integer(j.get(), {"requests", "total"});
        return total >= expected && integer(j.get(), {"connections", "active"}) == 0;
      },
      Millis(5000), Millis(20));
  return total;
}

// Prints an answer "OBS> "-prefixed, for the test log (and the note).
void show(const std::string& what, const std::string& body) {
  std::ostringstream out;
  std::istringstream lines(body);
  std::string line;
  out << "OBS> " << what << "\n";
  while (std::getline(lines, line)) out << "OBS> " << line << "\n";
  std::cout << out.str() << std::flush;
}

bool sameTotals(json_t* a, json_t* b) {
  for (auto path : {std::initializer_list<const char*>{"requests", "total"},
                    {"connections", "accepted"},
                    {"requests", "by_status_class", "2xx"},
                    {"requests", "by_status_class", "4xx"},
                    {"requests", "by_status_class", "5xx"}}) {
    if (integer(a, path) != integer(b, path)) return false;
  }
  return integer(a, {"bytes_in"}) == integer(b, {"bytes_in"}) &&
         integer(a, {"bytes_out"}) == integer(b, {"bytes_out"}) &&
         integer(a, {"latency", "count"}) == integer(b, {"latency", "count"});
}

using ObservabilityTest = ProxyTest;

// ---------------------------------------------------------------------------------------------

TEST_F(ObservabilityTest, KnownTrafficGivesExactCountsInStatsAndMetrics) {
  FakeBackend backend(okOrMissing());
  ASSERT_TRUE(backend.ok());
  Proxy* proxy = startProxy(observedProxy(backend));
  ASSERT_NE(proxy, nullptr);
  // The harness's readiness probes were accepted before this connection (the listen queue is
  // first in, first out): from here on, the connections counted are the test's.
  {
    Client barrier(proxy->port());
    ASSERT_NE(workerHolding(*proxy, barrier), 0);
  }
  Json before = getJson(*proxy, "/api/v1/stats/server");
  ASSERT_TRUE(before);
  EXPECT_EQ(integer(before.get(), {"requests", "total"}), 0);
  const long long accepted_before = integer(before.get(), {"connections", "accepted"});

  Sent sent;
  ASSERT_TRUE(sendTraffic(*proxy, "", &sent));
  EXPECT_EQ(sent.statuses, (std::map<int, int>{{200, kOk}, {404, kMissing}, {503, kUnavailable}}));
  EXPECT_EQ(sent.workers.size(), 2u);
  ASSERT_EQ(settledRequests(*proxy, kRequests), kRequests);

  // /api/v1/stats/server
  std::string error;
  Json server = getJson(*proxy, "/api/v1/stats/server", &error);
  ASSERT_TRUE(server) << error;
  show("GET /api/v1/stats/server", proxy->api("GET", "/api/v1/stats/server")->body);
  json_t* s = server.get();
  EXPECT_EQ(integer(s, {"workers"}), 2);
  EXPECT_EQ(integer(s, {"generation"}), 1);
  EXPECT_EQ(integer(s, {"requests", "total"}), kRequests);
  EXPECT_EQ(integer(s, {"requests", "by_status_class", "1xx"}), 0);
  EXPECT_EQ(integer(s, {"requests", "by_status_class", "2xx"}), kOk);
  EXPECT_EQ(integer(s, {"requests", "by_status_class", "3xx"}), 0);
  EXPECT_EQ(integer(s, {"requests", "by_status_class", "4xx"}), kMissing);
  EXPECT_EQ(integer(s, {"requests", "by_status_class", "5xx"}), kUnavailable);
  EXPECT_EQ(integer(s, {"connections", "accepted"}) - accepted_before, sent.connections);
  EXPECT_EQ(integer(s, {"bytes_in"}), static_cast<long long>(sent.request_bytes));
  EXPECT_EQ(integer(s, {"bytes_out"}), static_cast<long long>(sent.response_bytes));
  EXPECT_EQ(integer(s, {"latency", "count"}), kRequests);
  for (const char* p : {"p50_ms", "p90_ms", "p99_ms", "p999_ms", "mean_ms"}) {
    json_t* v = at(s, {"latency", p});
    EXPECT_TRUE(json_is_number(v)) << p;
    EXPECT_GT(json_number_value(v), 0) << p;
    EXPECT_LT(json_number_value(v), 5000) << p;  // ms: loopback
  }
  EXPECT_LE(json_number_value(at(s, {"latency", "p50_ms"})),
            json_number_value(at(s, {"latency", "p999_ms"})));

  // /api/v1/stats/backend
  Json b1 = getJson(*proxy, "/api/v1/stats/backend?upstream=app&backend_id=b1", &error);
  ASSERT_TRUE(b1) << error;
  show("GET /api/v1/stats/backend?upstream=app&backend_id=b1",
       proxy->api("GET", "/api/v1/stats/backend?upstream=app&backend_id=b1")->body);
  json_t* b = at(b1.get(), {"backend"});
  EXPECT_EQ(integer(b, {"requests"}), kOk + kMissing);
  EXPECT_EQ(integer(b, {"failures"}), 0);
  EXPECT_EQ(integer(b, {"responses", "2xx"}), kOk);
  EXPECT_EQ(integer(b, {"responses", "4xx"}), kMissing);
  EXPECT_EQ(integer(b, {"responses", "5xx"}), 0);
  EXPECT_EQ(integer(b, {"bytes_out"}), static_cast<long long>(backend.receivedBytes().size()));
  EXPECT_EQ(integer(b, {"head_time", "count"}), kOk + kMissing);
  for (const char* p : {"p50_ms", "p90_ms", "p99_ms", "p999_ms", "mean_ms"}) {
    EXPECT_TRUE(json_is_number(at(b, {"head_time", p}))) << p;
  }
  EXPECT_TRUE(json_is_number(at(b, {"latency_ms"})));
  EXPECT_TRUE(json_is_array(at(b, {"health", "history"})));
  Json off = getJson(*proxy, "/api/v1/stats/backend?upstream=none&backend_id=off", &error);
  ASSERT_TRUE(off) << error;
  EXPECT_EQ(integer(at(off.get(), {"backend"}), {"requests"}), 0);
  EXPECT_EQ(proxy->api("GET", "/api/v1/stats/backend?upstream=app&backend_id=nope")->status, 404);
  EXPECT_EQ(proxy->api("GET", "/api/v1/stats/backend?upstream=nope")->status, 404);

  // /metrics
  auto metrics = getMetrics(*proxy);
  ASSERT_TRUE(metrics && metrics->status == 200) << (metrics ? metrics->body : "no answer");
  EXPECT_EQ(metrics->header("Content-Type").value_or(""),
            "text/plain; version=0.0.4; charset=utf-8");
  Samples m = parseSamples(metrics->body);
  EXPECT_EQ(valueOf(m, "speedmimi_requests_total"), kRequests);
  EXPECT_EQ(valueOf(m, "speedmimi_responses_total{code=\"2xx\"}"), kOk);
  EXPECT_EQ(valueOf(m, "speedmimi_responses_total{code=\"4xx\"}"), kMissing);
  EXPECT_EQ(valueOf(m, "speedmimi_responses_total{code=\"5xx\"}"), kUnavailable);
  EXPECT_EQ(valueOf(m, "speedmimi_responses_total{code=\"1xx\"}"), 0);
  EXPECT_EQ(valueOf(m, "speedmimi_workers"), 2);
  EXPECT_EQ(valueOf(m, "speedmimi_generation"), 1);
  EXPECT_EQ(valueOf(m, "speedmimi_build_info{version=\"" PACKAGE_VERSION "\"}"), 1);
  EXPECT_EQ(valueOf(m, "speedmimi_connections_accepted_total"),
            integer(s, {"connections", "accepted"}));
  EXPECT_EQ(valueOf(m, "speedmimi_received_bytes_total"), sent.request_bytes);
  EXPECT_EQ(valueOf(m, "speedmimi_sent_bytes_total"), sent.response_bytes);
  EXPECT_EQ(valueOf(m, "speedmimi_request_duration_seconds_count"), kRequests);
  EXPECT_EQ(valueOf(m, "speedmimi_request_duration_seconds_bucket{le=\"+Inf\"}"), kRequests);
  const std::string app_b1 = "{upstream=\"app\",backend=\"b1\"";
  EXPECT_EQ(valueOf(m, "speedmimi_backend_requests_total" + app_b1 + "}"), kOk + kMissing);
  EXPECT_EQ(valueOf(m, "speedmimi_backend_failures_total" + app_b1 + "}"), 0);
  EXPECT_EQ(valueOf(m, "speedmimi_backend_responses_total" + app_b1 + ",code=\"2xx\"}"), kOk);
  EXPECT_EQ(valueOf(m, "speedmimi_backend_responses_total" + app_b1 + ",code=\"4xx\"}"), kMissing);
  EXPECT_EQ(valueOf(m, "speedmimi_backend_response_head_seconds_count" + app_b1 + "}"),
            kOk + kMissing);
  EXPECT_EQ(valueOf(m, "speedmimi_backend_sent_bytes_total" + app_b1 + "}"),
            backend.receivedBytes().size());
  EXPECT_EQ(valueOf(m, "speedmimi_backend_received_bytes_total" + app_b1 + "}"),
            integer(b, {"bytes_in"}));
  EXPECT_EQ(valueOf(m, "speedmimi_backend_weight" + app_b1 + "}"), 5);
  EXPECT_EQ(valueOf(m, "speedmimi_backend_active" + app_b1 + "}"), 1);
  EXPECT_EQ(valueOf(m, "speedmimi_backend_active{upstream=\"none\",backend=\"off\"}"), 0);
  EXPECT_EQ(valueOf(m, "speedmimi_backend_requests_total{upstream=\"none\",backend=\"off\"}"), 0);
  EXPECT_EQ(valueOf(m, "speedmimi_backend_up" + app_b1 + "}"), 1);
  EXPECT_EQ(valueOf(m, "speedmimi_backend_health_state" + app_b1 + ",state=\"unknown\"}"), 1);
  EXPECT_EQ(valueOf(m, "speedmimi_backend_health_state" + app_b1 + ",state=\"up\"}"), 0);
  EXPECT_EQ(valueOf(m, "speedmimi_backend_health_state" + app_b1 + ",state=\"down\"}"), 0);
  EXPECT_GT(valueOf(m, "speedmimi_backend_latency_ewma_seconds" + app_b1 + "}"), 0);
  std::ostringstream excerpt;
  std::istringstream lines(metrics->body);
  std::string line;
  while (std::getline(lines, line)) {
    if (line.find("_bucket{") == std::string::npos || line.find("+Inf") != std::string::npos ||
        line.find("le=\"0.001\"") != std::string::npos) {
      excerpt << line << "\n";
    }
  }
  show("GET /metrics (buckets other than le=0.001 and +Inf left out)", excerpt.str());
}

TEST_F(ObservabilityTest, PromtoolAcceptsTheRealOutput) {
  ASSERT_EQ(access(kPromtool, X_OK), 0) << kPromtool << " is missing: install Debian's prometheus";
  FakeBackend backend(okOrMissing());
  Proxy* proxy = startProxy(observedProxy(backend));
  ASSERT_NE(proxy, nullptr);
  Sent sent;
  ASSERT_TRUE(sendTraffic(*proxy, "", &sent));
  ASSERT_EQ(settledRequests(*proxy, kRequests), kRequests);
  auto metrics = getMetrics(*proxy);
  ASSERT_TRUE(metrics && metrics->status == 200);
  ToolResult check =
      runTool({kPromtool, "check", "metrics"}, metrics->body, proxy->prefix(), Millis(30'000));
  show("promtool check metrics < /metrics: exit " + std::to_string(check.exit_code) +
           (check.output.empty() ? ", no output" : ""),
       check.output);
  EXPECT_FALSE(check.timed_out);
  EXPECT_EQ(check.exit_code, 0) << check.output << "\n" << metrics->body;
  EXPECT_EQ(check.output, "") << metrics->body;

  // promtool can fail: a counter without _total is a lint problem (the check is not vacuous).
  ToolResult bad = runTool({kPromtool, "check", "metrics"},
                           "# HELP speedmimi_requests requests\n# TYPE speedmimi_requests counter\n"
                           "speedmimi_requests 1\n",
                           proxy->prefix(), Millis(30'000));
  EXPECT_NE(bad.exit_code, 0) << bad.output;
}

TEST_F(ObservabilityTest, PrometheusScrapesWithTheBearerToken) {
  ASSERT_EQ(access(kPrometheus, X_OK), 0)
      << kPrometheus << " is missing: install Debian's prometheus";
  FakeBackend backend(okOrMissing());
  const std::string token = "s3cret-token";
  Proxy* proxy = startProxy(observedProxy(backend, token));
  ASSERT_NE(proxy, nullptr);
  // Same auth as the rest of the API.
  auto anonymous = getMetrics(*proxy, {}, true);
  ASSERT_TRUE(anonymous);
  EXPECT_EQ(anonymous->status, 401) << anonymous->body;
  auto wrong = getMetrics(*proxy, {{"Authorization", "Bearer nope"}});
  ASSERT_TRUE(wrong);
  EXPECT_EQ(wrong->status, 401) << wrong->body;

  Sent sent;
  ASSERT_TRUE(sendTraffic(*proxy, "", &sent));
  ASSERT_EQ(settledRequests(*proxy, kRequests), kRequests);

  std::string dir = proxy->prefix() + "/prometheus";
  ASSERT_EQ(mkdir(dir.c_str(), 0755), 0);
  PrometheusServer prometheus(dir, proxy->apiPort(), token);
  std::string error;
  ASSERT_TRUE(prometheus.start(&error)) << error;
  std::optional<double> requests;
  bool scraped = waitFor(
      [&] {
        requests = prometheus.query("speedmimi_requests_total");
        return requests.has_value();
      },
      Millis(20'000), Millis(200));
  ASSERT_TRUE(scraped) << "no sample of speedmimi_requests_total within 20 s\n"
                       << prometheus.log() << "\n"
                       << prometheus.get("/api/v1/targets").value_or(Response{}).body;
  EXPECT_EQ(*requests, kRequests);
  show("prometheus /api/v1/query?query=speedmimi_requests_total",
       prometheus.get("/api/v1/query?query=speedmimi_requests_total")->body);
  EXPECT_EQ(prometheus.query("up").value_or(-1), 1);
  EXPECT_EQ(
      prometheus.query("sum(speedmimi_backend_requests_total{upstream=\"app\"})").value_or(-1),
      kOk + kMissing);
  EXPECT_EQ(prometheus.query("count(speedmimi_backend_up)").value_or(-1), 2);
}

TEST_F(ObservabilityTest, TotalsAreKeptAcrossAReloadThenGrow) {
  FakeBackend backend(okOrMissing());
  Proxy* proxy = startProxy(observedProxy(backend));
  ASSERT_NE(proxy, nullptr);
  Sent first;
  ASSERT_TRUE(sendTraffic(*proxy, "first-", &first));
  ASSERT_EQ(settledRequests(*proxy, kRequests), kRequests);
  Json before = getJson(*proxy, "/api/v1/stats/server");
  Json backend_before = getJson(*proxy, "/api/v1/stats/backend?upstream=app&backend_id=b1");
  ASSERT_TRUE(before && backend_before);
  std::vector<pid_t> old_children = proxy->childPids();

  ASSERT_TRUE(proxy->signal(SIGHUP));
  // The old workers leave (their idle connections closed) and their counts move to the retired
  // totals; the new control process answers.
  ASSERT_TRUE(waitFor(
      [&] {
        for (pid_t child : proxy->childPids()) {
          for (pid_t old : old_children) {
            if (child == old) return false;
          }
        }
        Json j = getJson(*proxy, "/api/v1/stats/server");
        return integer(j.get(), {"generation"}) == 2 && integer(j.get(), {"workers"}) == 2;
      },
      Millis(10'000), Millis(20)))
      << proxy->errorLog();
  // The fold of a reaped worker is a few stores; a read while it runs may miss a count once.
  Json after;
  bool same = waitFor(
      [&] {
        after = getJson(*proxy, "/api/v1/stats/server");
        return sameTotals(before.get(), after.get());
      },
      Millis(2000), Millis(20));
  EXPECT_TRUE(same) << "before:\n" << dump(before.get()) << "\nafter:\n" << dump(after.get());
  Json backend_after = getJson(*proxy, "/api/v1/stats/backend?upstream=app&backend_id=b1");
  for (const char* field : {"requests", "failures", "bytes_in", "bytes_out"}) {
    EXPECT_EQ(integer(backend_after.get(), {"backend", field}),
              integer(backend_before.get(), {"backend", field}))
        << field;
  }
  EXPECT_EQ(integer(backend_after.get(), {"backend", "responses", "2xx"}), kOk);
  EXPECT_EQ(integer(backend_after.get(), {"backend", "responses", "4xx"}), kMissing);
  EXPECT_EQ(integer(backend_after.get(), {"backend", "head_time", "count"}), kOk + kMissing);
  Samples m = parseSamples(getMetrics(*proxy)->body);
  EXPECT_EQ(valueOf(m, "speedmimi_generation"), 2);
  EXPECT_EQ(valueOf(m, "speedmimi_requests_total"), kRequests);
  EXPECT_EQ(valueOf(m, "speedmimi_request_duration_seconds_count"), kRequests);

  // Then they grow, by exactly the new traffic.
  Sent second;
  ASSERT_TRUE(sendTraffic(*proxy, "second-", &second));
  ASSERT_EQ(settledRequests(*proxy, 2 * kRequests), 2 * kRequests);
  Json grown = getJson(*proxy, "/api/v1/stats/server");
  EXPECT_EQ(integer(grown.get(), {"requests", "by_status_class", "2xx"}), 2 * kOk);
  EXPECT_EQ(integer(grown.get(), {"requests", "by_status_class", "4xx"}), 2 * kMissing);
  EXPECT_EQ(integer(grown.get(), {"requests", "by_status_class", "5xx"}), 2 * kUnavailable);
  EXPECT_EQ(integer(grown.get(), {"connections", "accepted"}),
            integer(before.get(), {"connections", "accepted"}) + second.connections);
  EXPECT_EQ(integer(grown.get(), {"bytes_in"}),
            static_cast<long long>(first.request_bytes + second.request_bytes));
  Samples grown_m = parseSamples(getMetrics(*proxy)->body);
  EXPECT_EQ(valueOf(grown_m, "speedmimi_requests_total"), 2 * kRequests);
  EXPECT_EQ(valueOf(grown_m, "speedmimi_backend_requests_total{upstream=\"app\",backend=\"b1\"}"),
            2 * (kOk + kMissing));
}

TEST_F(ObservabilityTest, HealthChangesShowInTheHistoryAndTheStateGauges) {
  FakeBackend backend(okOrMissing());
  FakeBackend checked(FakeBackend::fixed(200, "ok"));
  ProxyOptions options = observedProxy(backend);
  BackendSpec hc;
  hc.id = "hc";
  hc.port = checked.port();
  hc.health_check = HealthCheckSpec{};  // /health every 200 ms, 2 to change
  options.backends["checked"] = {hc};
  RouteSpec route;
  route.name = "checked";
  route.path = "/checked/";
  route.upstream = "checked";
  options.routes.push_back(route);
  Proxy* proxy = startProxy(options);
  ASSERT_NE(proxy, nullptr);
  const std::string target = "/api/v1/stats/backend?upstream=checked&backend_id=hc";
  const std::string labels = "{upstream=\"checked\",backend=\"hc\"";
  auto status = [&] {
    Json j = getJson(*proxy, target);
    return std::string(json_string_value(at(j.get(), {"backend", "health", "status"})) ?: "");
  };
  ASSERT_TRUE(waitFor([&] { return status() == "up"; }, Millis(5000), Millis(50)));
  Samples m = parseSamples(getMetrics(*proxy)->body);
  EXPECT_EQ(valueOf(m, "speedmimi_backend_up" + labels + "}"), 1);
  EXPECT_EQ(valueOf(m, "speedmimi_backend_health_state" + labels + ",state=\"up\"}"), 1);
  EXPECT_EQ(valueOf(m, "speedmimi_backend_health_state" + labels + ",state=\"unknown\"}"), 0);

  checked.stop();  // the probes fail from now on
  ASSERT_TRUE(waitFor([&] { return status() == "down"; }, Millis(5000), Millis(50)));
  Json j = getJson(*proxy, target);
  show("GET " + target + " (health)", dump(at(j.get(), {"backend", "health"})));
  json_t* history = at(j.get(), {"backend", "health", "history"});
  ASSERT_EQ(json_array_size(history), 2u) << dump(j.get());
  json_t* newest = json_array_get(history, 0);
  json_t* oldest = json_array_get(history, 1);
  EXPECT_EQ(std::string(json_string_value(json_object_get(newest, "status")) ?: ""), "down");
  EXPECT_EQ(std::string(json_string_value(json_object_get(oldest, "status")) ?: ""), "up");
  std::string reason = json_string_value(json_object_get(newest, "reason")) ?: "";
  EXPECT_FALSE(reason.empty());
  EXPECT_EQ(reason,
            std::string(json_string_value(at(j.get(), {"backend", "health", "reason"})) ?: ""));
  for (json_t* e : {newest, oldest}) {
    EXPECT_TRUE(
        globMatch(json_string_value(json_object_get(e, "time")) ?: "", "####-##-##T##:##:##.###Z"))
        << dump(e);
  }
  m = parseSamples(getMetrics(*proxy)->body);
  EXPECT_EQ(valueOf(m, "speedmimi_backend_up" + labels + "}"), 0);
  EXPECT_EQ(valueOf(m, "speedmimi_backend_health_state" + labels + ",state=\"down\"}"), 1);
  EXPECT_EQ(valueOf(m, "speedmimi_backend_health_state" + labels + ",state=\"up\"}"), 0);
}

}  // namespace
}  // namespace speedmimi::test
