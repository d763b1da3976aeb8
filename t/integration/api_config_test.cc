// The management API's changes as the server's life goes on (DESIGN §2, §9; issue 9
// "Persistence" and "Config"): runtime backend changes survive QUIT + start, a reload and a
// binary upgrade; PUT /api/v1/config writes the file (keeping .bak), honours If-Match and
// dry_run, refuses an invalid config with its path and keeps sections left out; POST
// /api/v1/reload and /api/v1/upgrade answer with the outcome; 200 concurrent calls while traffic
// flows lose nothing and leave a valid state file after each.
//
// A corrupt state file stopping a start (with its path and line:column, the file left as it
// was) is StateFileTest.ACorruptStateFileStopsTheStartAndIsLeftAsItWas; it is not repeated here.
#include <jansson.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cstdio>
#include <fstream>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "harness.h"

namespace speedmimi::test {
namespace {

using ::testing::HasSubstr;
using ::testing::IsEmpty;
using ::testing::StartsWith;

// ---------------------------------------------------------------------------------------------
// JSON (Jansson).

struct JsonDecref {
  void operator()(json_t* j) const { json_decref(j); }
};
using Json = std::unique_ptr<json_t, JsonDecref>;

Json parseJson(const std::string& text, std::string* error = nullptr) {
  json_error_t e;
  Json j(json_loadb(text.data(), text.size(), 0, &e));
  if (!j && error) {
    *error =
        "line " + std::to_string(e.line) + ", column " + std::to_string(e.column) + ": " + e.text;
  }
  return j;
}

std::string dumpJson(const json_t* j) {
  char* text = json_dumps(j, JSON_COMPACT | JSON_SORT_KEYS);
  std::string out = text ? text : "";
  free(text);
  return out;
}

std::string stringField(const json_t* object, const char* key) {
  const json_t* v = json_object_get(object, key);
  return json_is_string(v) ? json_string_value(v) : "";
}

long long intField(const json_t* object, const char* key, long long fallback = -1) {
  const json_t* v = json_object_get(object, key);
  return json_is_integer(v) ? json_integer_value(v) : fallback;
}

// A response's body as JSON; null (with a failure recorded) when it is none.
Json bodyJson(const std::optional<Response>& r) {
  if (!r) {
    ADD_FAILURE() << "no answer from the API";
    return nullptr;
  }
  std::string error;
  Json j = parseJson(r->body, &error);
  if (!j)
    ADD_FAILURE() << "the API answered " << r->status << " with a body that is not JSON (" << error
                  << "): " << r->body;
  return j;
}

std::string describe(const std::optional<Response>& r) {
  return r ? r->status_line + "\n" + r->body : std::string("no answer");
}

// ---------------------------------------------------------------------------------------------
// The proxy, seen from outside.

// 200 with the backend's name as body.
Handler identify(const std::string& name) {
  return [name](const Request&, Responder& out) {
    out.send(buildResponse(200, {{"Content-Type", "text/plain"}}, name));
  };
}

// `count` GETs of `path`N, each on its own connection: how many answers each body had
// ("error: ..." for those that failed, "status N: ..." for other statuses).
std::map<std::string, int> fetchMany(int port, int count, const std::string& path = "/r/") {
  std::map<std::string, int> bodies;
  for (int i = 0; i < count; ++i) {
    std::string error;
    auto r = fetch(
        port,
        buildRequest("GET", path + std::to_string(i), {{"Host", "api.test"}}, "", Framing::kNone),
        &error);
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

// (upstream/id -> weight) of every backend GET /api/v1/backends lists; nullopt when the call
// failed (a failure is recorded).
using BackendSet = std::map<std::string, long long>;

std::optional<BackendSet> backendSet(const Proxy& proxy) {
  auto r = proxy.api("GET", "/api/v1/backends");
  if (!r || r->status != 200) {
    ADD_FAILURE() << "GET /api/v1/backends: " << describe(r);
    return std::nullopt;
  }
  Json j = bodyJson(r);
  if (!j) return std::nullopt;
  json_t* upstreams = json_object_get(j.get(), "upstreams");
  if (!json_is_object(upstreams)) {
    ADD_FAILURE() << "no \"upstreams\" object: " << r->body;
    return std::nullopt;
  }
  BackendSet set;
  const char* name;
  json_t* list;
  json_object_foreach(upstreams, name, list) {
    for (size_t i = 0; i < json_array_size(list); ++i) {
      const json_t* b = json_array_get(list, i);
      set[std::string(name) + "/" + stringField(b, "id")] = intField(b, "weight");
    }
  }
  return set;
}

// The ETag of GET /api/v1/config ("" when the call failed, with a failure recorded).
std::string configEtag(const Proxy& proxy) {
  auto r = proxy.api("GET", "/api/v1/config");
  if (!r || r->status != 200 || !r->header("ETag")) {
    ADD_FAILURE() << "GET /api/v1/config: " << describe(r);
    return "";
  }
  return *r->header("ETag");
}

long long generationOf(const Proxy& proxy) {
  auto r = proxy.api("GET", "/api/v1/stats/server");
  if (!r || r->status != 200) {
    ADD_FAILURE() << "GET /api/v1/stats/server: " << describe(r);
    return -1;
  }
  Json j = bodyJson(r);
  return j ? intField(j.get(), "generation") : -1;
}

size_t countLines(const std::string& log, const std::string& needle) {
  return linesContaining(log, {needle}).size();
}

bool waitForLogLine(const Proxy& proxy, const std::string& needle, size_t count = 1) {
  return waitFor([&] { return countLines(proxy.errorLog(), needle) >= count; }, Millis(10'000),
                 Millis(20));
}

std::string addBody(const std::string& upstream, const std::string& id, int port, int weight) {
  return "{\"upstream\": \"" + upstream + "\", \"backend\": {\"id\": \"" + id +
         "\", \"host\": \"127.0.0.1\", \"port\": " + std::to_string(port) +
         ", \"weight\": " + std::to_string(weight) + "}}";
}

std::string weightBody(const std::string& upstream, const std::string& id, int weight) {
  return "{\"upstream\": \"" + upstream + "\", \"backend\": {\"id\": \"" + id +
         "\", \"weight\": " + std::to_string(weight) + "}}";
}

std::string removeTarget(const std::string& upstream, const std::string& id) {
  return "/api/v1/backends/remove?upstream=" + upstream + "&backend_id=" + id;
}

// Replaces `path` by rename, so that a reader never sees half of it.
bool replaceFile(const std::string& path, const std::string& text) {
  const std::string tmp = path + ".test-tmp";
  {
    std::ofstream out(tmp, std::ios::binary | std::ios::trunc);
    out << text;
    if (!out.flush()) return false;
  }
  return rename(tmp.c_str(), path.c_str()) == 0;
}

// Whether the state file holds JSON with "version" and a "backends" array; *why says what not.
bool stateFileParses(const Proxy& proxy, std::string* why) {
  const std::string text = readFile(proxy.stateFilePath());
  std::string error;
  Json j = parseJson(text, &error);
  if (!j) {
    *why = "not JSON (" + error + "): " + text;
    return false;
  }
  if (intField(j.get(), "version") != 1 || !json_is_array(json_object_get(j.get(), "backends"))) {
    *why = "no version 1 and backends array: " + text;
    return false;
  }
  return true;
}

// The master and its children: `workers` workers and the control process.
::testing::AssertionResult childrenUp(Proxy& proxy, size_t workers) {
  if (!waitFor([&] { return proxy.childPids().size() == workers + 1; }, Millis(10'000))) {
    return ::testing::AssertionFailure()
           << proxy.childPids().size() << " children, not " << workers + 1 << "\n"
           << proxy.errorLog();
  }
  return ::testing::AssertionSuccess();
}

// The API answers (its listener is the master's; the control process serves it once it runs).
::testing::AssertionResult apiAnswers(const Proxy& proxy) {
  std::optional<Response> last;
  if (!waitFor(
          [&] {
            last = proxy.api("GET", "/api/v1/stats/server", "", {}, false, Millis(2000));
            return last && last->status == 200;
          },
          Millis(10'000), Millis(50))) {
    return ::testing::AssertionFailure() << "the API does not answer: " << describe(last);
  }
  return ::testing::AssertionSuccess();
}

// QUIT, wait for the master to exit by itself, start the binary again on the same prefix and
// config (as a daemon, as StateFileTest does) and track the new master.
::testing::AssertionResult quitAndStart(Proxy& proxy, size_t workers) {
  if (!proxy.signal(SIGQUIT)) return ::testing::AssertionFailure() << "cannot send QUIT";
  int status = 0;
  if (!proxy.waitExit(Millis(10'000), &status)) {
    return ::testing::AssertionFailure() << "the master did not exit within 10 s of QUIT\n"
                                         << proxy.errorLog();
  }
  if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
    return ::testing::AssertionFailure() << "the master ended with wait status " << status;
  }
  Proxy::CommandResult r = proxy.runCommand({"-d"});
  if (r.exit_code != 0) {
    return ::testing::AssertionFailure()
           << "speedmimi -d exited with " << r.exit_code << ": " << r.err << "\nerror log:\n"
           << proxy.errorLog();
  }
  pid_t master = 0;
  if (!waitFor(
          [&] {
            master = proxy.pidFromFile();
            return master != 0;
          },
          Millis(10'000))) {
    return ::testing::AssertionFailure() << "no pid file\n" << proxy.errorLog();
  }
  proxy.adoptMaster(master);
  if (auto up = childrenUp(proxy, workers); !up) return up;
  return apiAnswers(proxy);
}

// The master after a binary upgrade: the pid file names a new one, which is tracked from now
// on, and the old one has exited.
::testing::AssertionResult adoptNewMaster(Proxy& proxy, pid_t old_master, size_t workers,
                                          pid_t* new_master_out = nullptr) {
  pid_t new_master = 0;
  if (!waitFor(
          [&] {
            new_master = proxy.pidFromFile();
            return new_master != 0 && new_master != old_master;
          },
          Millis(10'000))) {
    return ::testing::AssertionFailure()
           << "the pid file still names " << proxy.pidFromFile() << "\n"
           << proxy.errorLog();
  }
  proxy.adoptMaster(new_master);
  if (!waitFor([&] { return processGone(old_master); }, Millis(10'000))) {
    return ::testing::AssertionFailure() << "the old master " << old_master << " did not exit\n"
                                         << proxy.errorLog();
  }
  if (new_master_out) *new_master_out = new_master;
  if (auto up = childrenUp(proxy, workers); !up) return up;
  return apiAnswers(proxy);
}

// Alerts, critical and emergency lines of the error log (there must be none).
std::vector<std::string> severeLines(const Proxy& proxy) {
  return linesContaining(proxy.errorLog(), {"[alert]", "[crit]", "[emerg]"});
}

class ApiConfig : public ProxyTest {
 protected:
  // Upstream "app" with keep (b1, weight 1), reweighted (b2, weight 1), doomed (b3, weight 1);
  // route "/" to it; the API on; 2 workers.
  ProxyOptions threeBackends(int keep, int reweighted, int doomed) {
    ProxyOptions options = ProxyOptions::forBackends({keep, reweighted, doomed});
    options.workers = 2;
    options.api = true;
    return options;
  }

  // The three changes of tests 1 and 2: add "added" (weight 2), b2's weight to 3, remove b3.
  void makeChanges(const Proxy& proxy, int added_port) {
    auto add = proxy.api("POST", "/api/v1/backends/add", addBody("app", "added", added_port, 2));
    ASSERT_TRUE(add && add->status == 201) << describe(add);
    auto update = proxy.api("PUT", "/api/v1/backends/update", weightBody("app", "b2", 3));
    ASSERT_TRUE(update && update->status == 200) << describe(update);
    auto remove = proxy.api("DELETE", removeTarget("app", "b3"));
    ASSERT_TRUE(remove && remove->status == 200) << describe(remove);
  }

  BackendSet changed_ = {{"app/b1", 1}, {"app/b2", 3}, {"app/added", 2}};
};

// ---------------------------------------------------------------------------------------------
// 1. QUIT + start on the same prefix and config replays the state file.

TEST_F(ApiConfig, ChangesSurviveQuitAndStart) {
  FakeBackend keep(identify("keep")), reweighted(identify("reweighted")),
      doomed(identify("doomed")), added(identify("added"));
  ASSERT_TRUE(keep.ok() && reweighted.ok() && doomed.ok() && added.ok());
  Proxy* proxy = startProxy(threeBackends(keep.port(), reweighted.port(), doomed.port()));
  ASSERT_NE(proxy, nullptr);
  ASSERT_TRUE(apiAnswers(*proxy));
  const std::string yaml_etag = configEtag(*proxy);
  ASSERT_NO_FATAL_FAILURE(makeChanges(*proxy, added.port()));
  EXPECT_EQ(backendSet(*proxy), changed_);
  const std::string etag = configEtag(*proxy);
  EXPECT_NE(etag, yaml_etag) << "the effective config did not change";

  ASSERT_TRUE(quitAndStart(*proxy, 2));
  EXPECT_EQ(backendSet(*proxy), changed_) << "after QUIT + start\n" << proxy->errorLog();
  EXPECT_EQ(configEtag(*proxy), etag) << "the same effective config, another ETag";
  const size_t doomed_before = doomed.requestCount();
  std::map<std::string, int> bodies = fetchMany(proxy->port(), 30);
  SCOPED_TRACE(::testing::PrintToString(bodies));
  EXPECT_EQ(bodies["keep"] + bodies["reweighted"] + bodies["added"], 30);
  EXPECT_GT(bodies["added"], 0) << "the added backend gets no request after the start";
  // Weights 1 : 3 : 2 (each worker's smooth round robin stays within one pick of its shares).
  EXPECT_GT(bodies["reweighted"], bodies["keep"]) << "b2's weight 3 did not survive";
  EXPECT_GT(bodies["added"], bodies["keep"]) << "added's weight 2 did not survive";
  EXPECT_EQ(doomed.requestCount(), doomed_before) << "the removed backend got requests";
  EXPECT_EQ(bodies.count("doomed"), 0u);

  // A change made by the restarted server goes on top of the replayed ones (its control process
  // read the file back rather than starting a new one), and survives the next restart too.
  auto update = proxy->api("PUT", "/api/v1/backends/update", weightBody("app", "added", 4));
  ASSERT_TRUE(update && update->status == 200) << describe(update);
  const BackendSet next = {{"app/b1", 1}, {"app/b2", 3}, {"app/added", 4}};
  EXPECT_EQ(backendSet(*proxy), next);
  ASSERT_TRUE(quitAndStart(*proxy, 2));
  EXPECT_EQ(backendSet(*proxy), next) << "after the second QUIT + start\n" << proxy->errorLog();
  EXPECT_EQ(fetchMany(proxy->port(), 8).count("doomed"), 0u);
  EXPECT_EQ(doomed.requestCount(), doomed_before);
}

// ---------------------------------------------------------------------------------------------
// 2. HUP, then a binary upgrade: the changes stay, and the new master's API shows them.

TEST_F(ApiConfig, ChangesSurviveReloadAndBinaryUpgrade) {
  FakeBackend keep(identify("keep")), reweighted(identify("reweighted")),
      doomed(identify("doomed")), added(identify("added"));
  ASSERT_TRUE(keep.ok() && reweighted.ok() && doomed.ok() && added.ok());
  ProxyOptions options = threeBackends(keep.port(), reweighted.port(), doomed.port());
  options.private_binary = true;
  options.shutdown_timeout = "2s";
  Proxy* proxy = startProxy(options);
  ASSERT_NE(proxy, nullptr);
  ASSERT_TRUE(apiAnswers(*proxy));
  ASSERT_NO_FATAL_FAILURE(makeChanges(*proxy, added.port()));
  const size_t doomed_before = doomed.requestCount();
  std::string etag = configEtag(*proxy);

  auto check = [&](const char* when) {
    SCOPED_TRACE(when);
    EXPECT_EQ(backendSet(*proxy), changed_) << proxy->errorLog();
    EXPECT_EQ(configEtag(*proxy), etag) << "the same effective config, another ETag";
    const size_t added_before = added.requestCount();
    std::map<std::string, int> bodies = fetchMany(proxy->port(), 20);
    EXPECT_EQ(bodies["keep"] + bodies["reweighted"] + bodies["added"], 20)
        << ::testing::PrintToString(bodies);
    EXPECT_GT(added.requestCount(), added_before) << "the added backend gets no request";
    EXPECT_EQ(doomed.requestCount(), doomed_before) << "the removed backend got requests";
  };

  ASSERT_TRUE(proxy->signal(SIGHUP));
  ASSERT_TRUE(waitForLogLine(*proxy, "reload done: generation 2")) << proxy->errorLog();
  ASSERT_TRUE(apiAnswers(*proxy));
  EXPECT_EQ(generationOf(*proxy), 2);
  check("after HUP");

  // A change made by the new generation's control process keeps the earlier ones.
  auto update = proxy->api("PUT", "/api/v1/backends/update", weightBody("app", "added", 4));
  ASSERT_TRUE(update && update->status == 200) << describe(update);
  changed_["app/added"] = 4;
  EXPECT_EQ(backendSet(*proxy), changed_);
  etag = configEtag(*proxy);

  const pid_t old_master = proxy->pid();
  ASSERT_TRUE(proxy->signal(SIGUSR2));
  ASSERT_TRUE(adoptNewMaster(*proxy, old_master, 2));
  EXPECT_TRUE(waitForLogLine(
      *proxy, "binary upgrade: the new master " + std::to_string(proxy->pid()) + " serves"))
      << proxy->errorLog();
  // The new master's control process answers on the same port (the old one is gone with its
  // master): generation 1 is its first.
  EXPECT_EQ(generationOf(*proxy), 1);
  check("after the binary upgrade");

  // And the new master's changes keep them as well, through a restart.
  auto remove = proxy->api("DELETE", removeTarget("app", "b1"));
  ASSERT_TRUE(remove && remove->status == 200) << describe(remove);
  changed_.erase("app/b1");
  EXPECT_EQ(backendSet(*proxy), changed_);
  ASSERT_TRUE(quitAndStart(*proxy, 2));
  EXPECT_EQ(backendSet(*proxy), changed_) << "after QUIT + start\n" << proxy->errorLog();
}

// ---------------------------------------------------------------------------------------------
// 3. PUT /api/v1/config: a new route serves, .bak, If-Match, dry_run, invalid configs.

TEST_F(ApiConfig, PutConfigAddsARouteKeepsBakAndHonoursIfMatch) {
  FakeBackend main_backend(identify("main")), other(identify("other")), spare(identify("spare"));
  ASSERT_TRUE(main_backend.ok() && other.ok() && spare.ok());
  ProxyOptions options = ProxyOptions::forBackends({main_backend.port()});
  options.workers = 2;
  options.api = true;
  Proxy* proxy = startProxy(options);
  ASSERT_NE(proxy, nullptr);
  ASSERT_TRUE(apiAnswers(*proxy));
  const std::string original = readFile(proxy->configPath());
  const std::string bak = proxy->configPath() + ".bak";
  EXPECT_EQ(fetchMany(proxy->port(), 4, "/other/"), (std::map<std::string, int>{{"main", 4}}));

  auto got = proxy->api("GET", "/api/v1/config");
  ASSERT_TRUE(got && got->status == 200) << describe(got);
  const std::optional<std::string> etag = got->header("ETag");
  ASSERT_TRUE(etag.has_value()) << got->raw_head;
  Json answer = bodyJson(got);
  ASSERT_TRUE(answer);
  const long long generation = generationOf(*proxy);
  ASSERT_GT(generation, 0);

  // The config plus upstream "other" (one backend) and a route "/other" to it.
  Json config(json_deep_copy(json_object_get(answer.get(), "config")));
  ASSERT_TRUE(json_is_object(config.get()));
  json_object_set_new(
      json_object_get(config.get(), "backends"), "other",
      json_pack("[{s:s,s:s,s:i}]", "id", "o1", "host", "127.0.0.1", "port", other.port()));
  json_object_set_new(
      json_object_get(config.get(), "routing"), "other",
      json_pack("{s:s,s:s,s:s}", "path", "/other", "upstream", "other", "load_balancer", "weight"));
  Json put_body(json_pack("{s:O}", "config", config.get()));

  auto put = proxy->api("PUT", "/api/v1/config", dumpJson(put_body.get()), {{"If-Match", *etag}});
  ASSERT_TRUE(put && put->status == 200) << describe(put) << "\n" << proxy->errorLog();
  Json put_answer = bodyJson(put);
  ASSERT_TRUE(put_answer);
  EXPECT_TRUE(json_is_true(json_object_get(put_answer.get(), "success"))) << put->body;
  EXPECT_EQ(intField(put_answer.get(), "generation"), generation + 1) << put->body;
  EXPECT_EQ(generationOf(*proxy), generation + 1);

  // The next requests already see the route (the answer comes once the generation serves).
  EXPECT_EQ(fetchMany(proxy->port(), 6, "/other/"), (std::map<std::string, int>{{"other", 6}}));
  EXPECT_EQ(fetchMany(proxy->port(), 4, "/elsewhere/"), (std::map<std::string, int>{{"main", 4}}));

  // On disk: a file the server's own parser accepts, with the route; the previous one as .bak.
  const std::string written = readFile(proxy->configPath());
  Proxy::CommandResult test = proxy->runCommand({"-t"});
  EXPECT_EQ(test.exit_code, 0) << test.err << "\n" << written;
  EXPECT_THAT(written, HasSubstr("/other"));
  EXPECT_THAT(written, HasSubstr("o1"));
  EXPECT_THAT(written, HasSubstr(std::to_string(other.port())));
  EXPECT_EQ(readFile(bak), original) << bak << " is not the previous file";

  auto now = proxy->api("GET", "/api/v1/config");
  ASSERT_TRUE(now && now->status == 200) << describe(now);
  const std::optional<std::string> etag2 = now->header("ETag");
  ASSERT_TRUE(etag2.has_value());
  EXPECT_NE(*etag2, *etag);
  EXPECT_EQ(stringField(put_answer.get(), "etag"), *etag2);

  // Each refused or dry call below leaves everything as it is now.
  auto unchanged = [&](const char* after) {
    SCOPED_TRACE(after);
    EXPECT_EQ(readFile(proxy->configPath()), written) << "the config file changed";
    EXPECT_EQ(readFile(bak), original) << ".bak changed";
    auto again = proxy->api("GET", "/api/v1/config");
    ASSERT_TRUE(again && again->status == 200) << describe(again);
    EXPECT_EQ(again->header("ETag"), etag2);
    EXPECT_EQ(generationOf(*proxy), generation + 1) << "a reload happened";
    EXPECT_EQ(fetchMany(proxy->port(), 2, "/other/"), (std::map<std::string, int>{{"other", 2}}));
  };

  // A stale If-Match: 412, with the current ETag.
  json_object_set_new(
      json_object_get(config.get(), "backends"), "other",
      json_pack("[{s:s,s:s,s:i}]", "id", "o1", "host", "127.0.0.1", "port", spare.port()));
  Json stale_body(json_pack("{s:O}", "config", config.get()));
  auto stale =
      proxy->api("PUT", "/api/v1/config", dumpJson(stale_body.get()), {{"If-Match", *etag}});
  ASSERT_TRUE(stale.has_value());
  EXPECT_EQ(stale->status, 412) << describe(stale);
  EXPECT_EQ(stale->header("ETag"), etag2);
  if (Json j = bodyJson(stale)) {
    EXPECT_FALSE(json_is_true(json_object_get(j.get(), "success")));
  }
  unchanged("after the stale If-Match");

  // dry_run with a valid change (and the current ETag): 200, nothing written.
  auto dry = proxy->api("PUT", "/api/v1/config?dry_run=true", dumpJson(stale_body.get()),
                        {{"If-Match", *etag2}});
  ASSERT_TRUE(dry.has_value());
  EXPECT_EQ(dry->status, 200) << describe(dry);
  unchanged("after dry_run");
  EXPECT_EQ(spare.requestCount(), 0u);

  // An invalid value: 400 naming its path in the config.
  Json bad(json_deep_copy(config.get()));
  json_object_set_new(json_object_get(bad.get(), "backends"), "other",
                      json_pack("[{s:s,s:s,s:i}]", "id", "o1", "host", "127.0.0.1", "port", 70000));
  Json bad_body(json_pack("{s:O}", "config", bad.get()));
  auto invalid = proxy->api("PUT", "/api/v1/config", dumpJson(bad_body.get()));
  ASSERT_TRUE(invalid.has_value());
  EXPECT_EQ(invalid->status, 400) << describe(invalid);
  if (Json j = bodyJson(invalid)) {
    EXPECT_THAT(stringField(j.get(), "error"), StartsWith("config.backends.other[0].port: "))
        << invalid->body;
  }
  unchanged("after the invalid port");

  // A route to an upstream that does not exist: refused with the route's path.
  Json dangling(json_deep_copy(json_object_get(answer.get(), "config")));
  json_object_set_new(json_object_get(dangling.get(), "routing"), "nowhere",
                      json_pack("{s:s,s:s}", "path", "/nowhere", "upstream", "missing"));
  Json dangling_body(json_pack("{s:O}", "config", dangling.get()));
  auto refused = proxy->api("PUT", "/api/v1/config", dumpJson(dangling_body.get()));
  ASSERT_TRUE(refused.has_value());
  EXPECT_EQ(refused->status, 400) << describe(refused);
  if (Json j = bodyJson(refused)) {
    EXPECT_THAT(stringField(j.get(), "error"), StartsWith("config.routing.nowhere"))
        << refused->body;
  }
  unchanged("after the dangling route");

  // A runtime change is a change of the effective config: the ETag from before it is stale.
  auto add = proxy->api("POST", "/api/v1/backends/add", addBody("other", "o2", spare.port(), 1));
  ASSERT_TRUE(add && add->status == 201) << describe(add);
  auto with_o2 = proxy->api("GET", "/api/v1/config");
  ASSERT_TRUE(with_o2 && with_o2->status == 200) << describe(with_o2);
  EXPECT_NE(with_o2->header("ETag"), etag2);
  EXPECT_THAT(with_o2->body, HasSubstr("\"o2\""));
  auto stale_again = proxy->api("PUT", "/api/v1/config", now->body, {{"If-Match", *etag2}});
  ASSERT_TRUE(stale_again.has_value());
  EXPECT_EQ(stale_again->status, 412) << describe(stale_again);
  EXPECT_EQ(stale_again->header("ETag"), with_o2->header("ETag"));
  EXPECT_EQ(readFile(proxy->configPath()), written);
  auto remove = proxy->api("DELETE", removeTarget("other", "o2"));
  ASSERT_TRUE(remove && remove->status == 200) << describe(remove);
  // Back to the same effective config: the same ETag.
  unchanged("after adding and removing o2");

  // The GET answer, sent back as it is, is accepted (and changes nothing that serves).
  auto round_trip = proxy->api("PUT", "/api/v1/config", now->body, {{"If-Match", *etag2}});
  ASSERT_TRUE(round_trip.has_value());
  EXPECT_EQ(round_trip->status, 200) << describe(round_trip);
  EXPECT_EQ(round_trip->header("ETag"), etag2);
  EXPECT_EQ(generationOf(*proxy), generation + 2);
  EXPECT_EQ(fetchMany(proxy->port(), 4, "/other/"), (std::map<std::string, int>{{"other", 4}}));
  EXPECT_EQ(readFile(bak), written) << ".bak is not the file the round trip replaced";

  // A PUT replaces the runtime changes too: a backend added since is gone with the state file.
  auto add_o3 = proxy->api("POST", "/api/v1/backends/add", addBody("other", "o3", spare.port(), 1));
  ASSERT_TRUE(add_o3 && add_o3->status == 201) << describe(add_o3);
  EXPECT_EQ(backendSet(*proxy), (BackendSet{{"app/b1", 1}, {"other/o1", 1}, {"other/o3", 1}}));
  auto replace = proxy->api("PUT", "/api/v1/config", now->body);
  ASSERT_TRUE(replace && replace->status == 200) << describe(replace);
  EXPECT_EQ(backendSet(*proxy), (BackendSet{{"app/b1", 1}, {"other/o1", 1}}));
  Json state = parseJson(readFile(proxy->stateFilePath()));
  ASSERT_TRUE(state) << readFile(proxy->stateFilePath());
  EXPECT_EQ(json_array_size(json_object_get(state.get(), "backends")), 0u)
      << "the state file was not cleared: " << dumpJson(state.get());
  const size_t spare_before = spare.requestCount();
  EXPECT_EQ(fetchMany(proxy->port(), 6, "/other/"), (std::map<std::string, int>{{"other", 6}}));
  EXPECT_EQ(spare.requestCount(), spare_before);
}

// A route's retry_on and retry_budget as GET /api/v1/config and -T show them (the list, in its
// order of conditions), as a PUT sets them (and the next request obeys), and a PUT with an
// unknown condition refused at its index.
TEST_F(ApiConfig, PutConfigSetsTheRetryPolicy) {
  FakeBackend failing(FakeBackend::fixed(503, "failing")), healthy(identify("healthy"));
  ASSERT_TRUE(failing.ok() && healthy.ok());
  ProxyOptions options = ProxyOptions::forBackends({failing.port(), healthy.port()});
  options.backends["app"][0].weight = 10000;  // the first pick
  options.routes[0].retry_on = std::vector<std::string>{"503", "reset"};
  options.api = true;
  Proxy* proxy = startProxy(options);
  ASSERT_NE(proxy, nullptr);
  ASSERT_TRUE(apiAnswers(*proxy));

  Proxy::CommandResult shown = proxy->runCommand({"-T"});
  EXPECT_EQ(shown.exit_code, 0) << shown.err;
  EXPECT_THAT(shown.out, HasSubstr("    retry_on: [reset, 503]\n    retry_budget: 20\n"));
  // The route "main" of GET /api/v1/config, compact.
  auto shownRoute = [&] {
    Json j = bodyJson(proxy->api("GET", "/api/v1/config"));
    return j ? dumpJson(json_object_get(
                   json_object_get(json_object_get(j.get(), "config"), "routing"), "main"))
             : "";
  };
  EXPECT_THAT(shownRoute(), HasSubstr(R"("retry_budget":20,"retry_on":["reset","503"])"));
  EXPECT_EQ(fetchMany(proxy->port(), 2), (std::map<std::string, int>{{"healthy", 2}}));

  auto got = proxy->api("GET", "/api/v1/config");
  Json answer = bodyJson(got);
  ASSERT_TRUE(answer);
  Json config(json_deep_copy(json_object_get(answer.get(), "config")));
  json_t* route = json_object_get(json_object_get(config.get(), "routing"), "main");
  ASSERT_TRUE(json_is_object(route)) << got->body;

  json_object_set_new(route, "retry_on", json_pack("[sss]", "reset", "timeout", "foo"));
  Json bad_body(json_pack("{s:O}", "config", config.get()));
  auto refused = proxy->api("PUT", "/api/v1/config", dumpJson(bad_body.get()));
  ASSERT_TRUE(refused.has_value());
  EXPECT_EQ(refused->status, 400) << describe(refused);
  if (Json j = bodyJson(refused)) {
    EXPECT_EQ(stringField(j.get(), "error"),
              "config.routing.main.retry_on[2]: unknown retry condition 'foo' (one of "
              "connect-failure, reset, timeout, invalid-response, 5xx, 502, 503, 504)");
  }

  // No status retries: the 503 reaches the client.
  json_object_set_new(route, "retry_on", json_pack("[ss]", "timeout", "connect-failure"));
  json_object_set_new(route, "retry_budget", json_integer(50));
  Json body(json_pack("{s:O}", "config", config.get()));
  auto put = proxy->api("PUT", "/api/v1/config", dumpJson(body.get()));
  ASSERT_TRUE(put && put->status == 200) << describe(put) << "\n" << proxy->errorLog();
  EXPECT_THAT(shownRoute(),
              HasSubstr(R"("retry_budget":50,"retry_on":["connect-failure","timeout"])"));
  EXPECT_THAT(readFile(proxy->configPath()), HasSubstr("retry_on: [connect-failure, timeout]"));
  EXPECT_EQ(fetchMany(proxy->port(), 2), (std::map<std::string, int>{{"status 503: failing", 2}}));
}

// ---------------------------------------------------------------------------------------------
// 4. The original README's shape: sections left out keep their values (the token stays).

TEST_F(ApiConfig, PutConfigWithTheReadmeShapeKeepsOtherSections) {
  FakeBackend first(identify("first")), second(identify("second"));
  ASSERT_TRUE(first.ok() && second.ok());
  ProxyOptions options = ProxyOptions::forBackends({first.port()});
  options.workers = 2;
  options.api = true;
  options.auth_token = "s3cret-token";
  Proxy* proxy = startProxy(options);
  ASSERT_NE(proxy, nullptr);
  ASSERT_TRUE(apiAnswers(*proxy));

  auto got = proxy->api("GET", "/api/v1/config");
  ASSERT_TRUE(got && got->status == 200) << describe(got);
  Json answer = bodyJson(got);
  ASSERT_TRUE(answer);
  const json_t* config = json_object_get(answer.get(), "config");
  ASSERT_TRUE(json_is_object(json_object_get(config, "admin")));
  EXPECT_EQ(stringField(json_object_get(config, "admin"), "auth_token"), "s3cret-token");

  // {"config": {"server": ..., "backends": ..., "routing": ...}}: no ssl, no admin. The
  // backends gain b2 (the second fake backend).
  Json backends(json_deep_copy(json_object_get(config, "backends")));
  json_array_append_new(json_object_get(backends.get(), "app"),
                        json_pack("{s:s,s:s,s:i,s:i}", "id", "b2", "host", "127.0.0.1", "port",
                                  second.port(), "weight", 1));
  Json body(json_pack("{s:{s:O,s:O,s:O}}", "config", "server", json_object_get(config, "server"),
                      "backends", backends.get(), "routing", json_object_get(config, "routing")));
  auto put = proxy->api("PUT", "/api/v1/config", dumpJson(body.get()));
  ASSERT_TRUE(put && put->status == 200) << describe(put) << "\n" << proxy->errorLog();

  // The token is still required, and still the same.
  auto without = proxy->api("GET", "/api/v1/backends", "", {}, /*no_token=*/true);
  ASSERT_TRUE(without.has_value()) << "the API no longer answers (admin section lost?)\n"
                                   << readFile(proxy->configPath());
  EXPECT_EQ(without->status, 401) << describe(without);
  auto wrong = proxy->api("GET", "/api/v1/backends", "", {{"Authorization", "Bearer nope"}});
  ASSERT_TRUE(wrong.has_value());
  EXPECT_EQ(wrong->status, 401) << describe(wrong);
  EXPECT_EQ(backendSet(*proxy), (BackendSet{{"app/b1", 1}, {"app/b2", 1}}));

  // The sections left out, as they were.
  auto after = proxy->api("GET", "/api/v1/config");
  ASSERT_TRUE(after && after->status == 200) << describe(after);
  Json after_answer = bodyJson(after);
  ASSERT_TRUE(after_answer);
  const json_t* now = json_object_get(after_answer.get(), "config");
  for (const char* section : {"admin", "ssl", "server", "routing"}) {
    EXPECT_EQ(dumpJson(json_object_get(now, section)), dumpJson(json_object_get(config, section)))
        << section;
  }
  EXPECT_THAT(readFile(proxy->configPath()), HasSubstr("s3cret-token"));
  Proxy::CommandResult test = proxy->runCommand({"-t"});
  EXPECT_EQ(test.exit_code, 0) << test.err;

  // And the new backend serves.
  std::map<std::string, int> bodies = fetchMany(proxy->port(), 10);
  EXPECT_EQ(bodies["first"] + bodies["second"], 10) << ::testing::PrintToString(bodies);
  EXPECT_GT(bodies["second"], 0) << ::testing::PrintToString(bodies);
}

// ---------------------------------------------------------------------------------------------
// 5. POST /api/v1/reload and /api/v1/upgrade.

// With server.user the control process runs unprivileged and may not signal the master (root):
// it asks through the master's request pipe, and the answer comes as without server.user.
TEST_F(ApiConfig, ReloadWorksWhenTheControlProcessRunsAsServerUser) {
  ASSERT_EQ(geteuid(), 0u) << "needs root to change users (CI runs as root)";
  FakeBackend before(identify("before")), after(identify("after"));
  ASSERT_TRUE(before.ok() && after.ok());
  ProxyOptions options = ProxyOptions::forBackends({before.port()});
  options.api = true;
  options.user = "nobody";
  Proxy* proxy = startProxy(options);
  ASSERT_NE(proxy, nullptr);
  const long long generation = generationOf(*proxy);
  ASSERT_GT(generation, 0);
  ProxyOptions next = ProxyOptions::forBackends({after.port()});
  next.api = true;
  next.user = "nobody";
  ASSERT_TRUE(proxy->rewriteConfig(next));

  auto reload = proxy->api("POST", "/api/v1/reload");
  ASSERT_TRUE(reload && reload->status == 200) << describe(reload) << "\n" << proxy->errorLog();
  Json answer = bodyJson(reload);
  ASSERT_TRUE(answer);
  EXPECT_EQ(intField(answer.get(), "generation"), generation + 1) << reload->body;
  EXPECT_EQ(fetchMany(proxy->port(), 4), (std::map<std::string, int>{{"after", 4}}));
}

TEST_F(ApiConfig, ReloadAndUpgradeEndpoints) {
  FakeBackend backend(identify("yaml"));
  ASSERT_TRUE(backend.ok());
  ProxyOptions options = ProxyOptions::forBackends({backend.port()});
  options.workers = 2;
  options.api = true;
  options.private_binary = true;
  options.shutdown_timeout = "2s";
  Proxy* proxy = startProxy(options);
  ASSERT_NE(proxy, nullptr);
  ASSERT_TRUE(apiAnswers(*proxy));
  const long long generation = generationOf(*proxy);
  ASSERT_GT(generation, 0);

  // A reload: the next generation, answered once it serves.
  auto reload = proxy->api("POST", "/api/v1/reload");
  ASSERT_TRUE(reload && reload->status == 200) << describe(reload) << "\n" << proxy->errorLog();
  Json answer = bodyJson(reload);
  ASSERT_TRUE(answer);
  EXPECT_EQ(intField(answer.get(), "generation"), generation + 1) << reload->body;
  const std::string done = "reload done: generation " + std::to_string(generation + 1);
  EXPECT_EQ(countLines(proxy->errorLog(), done), 1u) << proxy->errorLog();
  EXPECT_EQ(generationOf(*proxy), generation + 1);
  EXPECT_EQ(fetchMany(proxy->port(), 4), (std::map<std::string, int>{{"yaml", 4}}));

  // A broken file on disk: 500 naming FILE:LINE:COLUMN as -t does, and the generation serves on.
  const std::string good = readFile(proxy->configPath());
  std::string broken = good;
  const size_t at = broken.find("max_headers: 100");
  ASSERT_NE(at, std::string::npos) << good;
  broken.replace(at, 16, "max_headers: lots");
  ASSERT_TRUE(proxy->writeConfig(broken));
  const int line = static_cast<int>(std::count(broken.begin(), broken.begin() + at, '\n')) + 1;
  Proxy::CommandResult test = proxy->runCommand({"-t"});
  EXPECT_EQ(test.exit_code, 1);
  const std::string location = proxy->configPath() + ":" + std::to_string(line) + ":";
  const std::string tested = test.err.substr(0, test.err.find('\n'));  // FILE:LINE:COLUMN: ...
  ASSERT_TRUE(globMatch(tested, location + "##: *")) << test.err;

  auto failed = proxy->api("POST", "/api/v1/reload");
  ASSERT_TRUE(failed.has_value());
  EXPECT_EQ(failed->status, 500) << describe(failed);
  if (Json j = bodyJson(failed)) {
    EXPECT_FALSE(json_is_true(json_object_get(j.get(), "success")));
    const std::string error = stringField(j.get(), "error");
    EXPECT_THAT(error, HasSubstr(location)) << "no FILE:LINE: in the error";
    EXPECT_THAT(error, HasSubstr(tested)) << "not the location and message -t gives";
  }
  EXPECT_EQ(generationOf(*proxy), generation + 1);
  EXPECT_EQ(
      countLines(proxy->errorLog(), "reload done: generation " + std::to_string(generation + 2)),
      0u);
  EXPECT_EQ(fetchMany(proxy->port(), 4), (std::map<std::string, int>{{"yaml", 4}}));
  ASSERT_TRUE(proxy->writeConfig(good));

  // A state file that does not parse: 500 naming it with the parser's line:column.
  const std::string corrupt = "{\"version\": 1,\n  \"backends\": [,]}\n";
  ASSERT_TRUE(replaceFile(proxy->stateFilePath(), corrupt));
  auto bad_state = proxy->api("POST", "/api/v1/reload");
  ASSERT_TRUE(bad_state.has_value());
  EXPECT_EQ(bad_state->status, 500) << describe(bad_state);
  if (Json j = bodyJson(bad_state)) {
    EXPECT_THAT(stringField(j.get(), "error"), HasSubstr(proxy->stateFilePath() + ":2:"))
        << bad_state->body;
  }
  EXPECT_EQ(readFile(proxy->stateFilePath()), corrupt) << "the state file was changed";
  EXPECT_EQ(generationOf(*proxy), generation + 1);
  EXPECT_EQ(fetchMany(proxy->port(), 4), (std::map<std::string, int>{{"yaml", 4}}));
  ASSERT_TRUE(replaceFile(proxy->stateFilePath(), "{\"version\": 1, \"backends\": []}\n"));

  // A new binary that fails at once: 500 with the reason; the old master serves on, and its API
  // (a control process that comes back) answers.
  const std::string bin = proxy->binary();
  ASSERT_EQ(rename(bin.c_str(), (bin + ".saved").c_str()), 0);
  ASSERT_TRUE(replaceFile(bin, "#!/bin/sh\nexit 1\n"));
  ASSERT_EQ(chmod(bin.c_str(), 0755), 0);
  auto bad_upgrade = proxy->api("POST", "/api/v1/upgrade");
  ASSERT_EQ(rename((bin + ".saved").c_str(), bin.c_str()), 0);
  ASSERT_TRUE(bad_upgrade.has_value()) << "no answer to a failed upgrade\n" << proxy->errorLog();
  EXPECT_EQ(bad_upgrade->status, 500) << describe(bad_upgrade);
  if (Json j = bodyJson(bad_upgrade)) {
    EXPECT_THAT(stringField(j.get(), "error"),
                HasSubstr("binary upgrade failed: the new binary exited with code 1"))
        << bad_upgrade->body;
  }
  EXPECT_EQ(proxy->pidFromFile(), proxy->pid());
  EXPECT_TRUE(proxy->running());
  ASSERT_TRUE(apiAnswers(*proxy));
  EXPECT_EQ(generationOf(*proxy), generation + 1);
  EXPECT_EQ(fetchMany(proxy->port(), 4), (std::map<std::string, int>{{"yaml", 4}}));
  ASSERT_TRUE(childrenUp(*proxy, 2));

  // A binary upgrade: answered with the new master, which the pid file names.
  const pid_t old_master = proxy->pid();
  auto upgrade = proxy->api("POST", "/api/v1/upgrade");
  ASSERT_TRUE(upgrade && upgrade->status == 200) << describe(upgrade) << "\n" << proxy->errorLog();
  Json upgraded = bodyJson(upgrade);
  ASSERT_TRUE(upgraded);
  const long long new_master_pid = intField(upgraded.get(), "new_master_pid");
  EXPECT_EQ(new_master_pid, proxy->pidFromFile()) << upgrade->body;
  EXPECT_NE(new_master_pid, old_master);
  pid_t new_master = 0;
  ASSERT_TRUE(adoptNewMaster(*proxy, old_master, 2, &new_master));
  EXPECT_EQ(new_master, new_master_pid);

  // The API keeps answering (the new master's), and traffic flows.
  EXPECT_EQ(generationOf(*proxy), 1) << "not the new master's control process";
  EXPECT_EQ(backendSet(*proxy), (BackendSet{{"app/b1", 1}}));
  EXPECT_EQ(fetchMany(proxy->port(), 4), (std::map<std::string, int>{{"yaml", 4}}));
  auto again = proxy->api("POST", "/api/v1/reload");
  ASSERT_TRUE(again && again->status == 200) << describe(again);
  if (Json j = bodyJson(again)) {
    EXPECT_EQ(intField(j.get(), "generation"), 2) << again->body;
  }
  EXPECT_THAT(severeLines(*proxy), IsEmpty());
}

// ---------------------------------------------------------------------------------------------
// 6. 200 API calls from 8 clients while traffic flows.

struct TrafficCounts {
  std::atomic<long> ok{0}, unavailable{0}, other{0}, failed{0};
  std::mutex mutex;
  std::vector<std::string> samples;  // the first few that were neither 200 nor 503

  void note(std::string what) {
    std::lock_guard<std::mutex> lock(mutex);
    if (samples.size() < 5) samples.push_back(std::move(what));
  }
};

TEST_F(ApiConfig, ConcurrentCallsWhileTrafficFlows) {
  constexpr int kClients = 8;
  constexpr int kIdsPerClient = 5;  // 5 calls each: 8 x 5 x 5 = 200
  FakeBackend yaml_backend(identify("yaml")), pool_a(identify("a")), pool_b(identify("b"));
  ASSERT_TRUE(yaml_backend.ok() && pool_a.ok() && pool_b.ok());
  ProxyOptions options = ProxyOptions::forBackends({yaml_backend.port()});
  options.workers = 2;
  options.api = true;
  Proxy* proxy = startProxy(options);
  ASSERT_NE(proxy, nullptr);
  ASSERT_TRUE(apiAnswers(*proxy));

  // Traffic: 2 threads, one request a connection, until told to stop.
  std::atomic<bool> stop{false};
  TrafficCounts traffic;
  std::vector<std::thread> senders;
  for (int s = 0; s < 2; ++s) {
    senders.emplace_back([&, s] {
      for (long i = 0; !stop.load(); ++i) {
        std::string error;
        auto r = fetch(proxy->port(),
                       buildRequest("GET", "/t/" + std::to_string(s) + "/" + std::to_string(i),
                                    {{"Host", "api.test"}}, "", Framing::kNone),
                       &error, Millis(5000));
        if (!r) {
          ++traffic.failed;
          traffic.note("error: " + error);
        } else if (r->status == 200) {
          ++traffic.ok;
        } else if (r->status == 503) {
          ++traffic.unavailable;
        } else {
          ++traffic.other;
          traffic.note(r->status_line + ": " + r->body);
        }
      }
    });
  }
  ASSERT_TRUE(waitFor([&] { return traffic.ok.load() >= 20; }, Millis(5000)));

  // A reader of the state file all along: it is replaced whole, never seen half-written.
  std::atomic<long> state_reads{0};
  std::vector<std::string> torn;
  std::thread watcher([&] {
    while (!stop.load()) {
      struct stat st;
      if (stat(proxy->stateFilePath().c_str(), &st) == 0) {  // once written
        std::string why;
        ++state_reads;
        if (!stateFileParses(*proxy, &why) && torn.size() < 3) torn.push_back(why);
      }
      // Often enough to catch a torn write, yet leaving the proxy its share of a loaded machine.
      std::this_thread::sleep_for(Millis(1));
    }
  });

  // The clients: each owns ids c<client>-<k>; per id add, update, GET, update, then remove (odd
  // k) or GET its stats. Client 0 checks the state file after each of its calls.
  std::mutex mutex;
  BackendSet expected = {{"app/b1", 1}};
  std::vector<std::string> unexpected;
  std::vector<std::string> bad_state;
  std::atomic<int> calls{0};
  std::vector<std::thread> clients;
  for (int c = 0; c < kClients; ++c) {
    clients.emplace_back([&, c] {
      BackendSet mine;
      auto call = [&](const std::string& method, const std::string& target, const std::string& body,
                      int want) {
        auto r = proxy->api(method, target, body);
        ++calls;
        const int status = r ? r->status : 0;
        if (status != want) {
          std::lock_guard<std::mutex> lock(mutex);
          unexpected.push_back(method + " " + target + " " + body + " -> " + describe(r));
        }
        if (c == 0) {
          std::string why;
          if (!stateFileParses(*proxy, &why)) {
            std::lock_guard<std::mutex> lock(mutex);
            bad_state.push_back("after " + method + " " + target + ": " + why);
          }
        }
        return status;
      };
      for (int k = 0; k < kIdsPerClient; ++k) {
        const std::string id = "c" + std::to_string(c) + "-" + std::to_string(k);
        const std::string key = "app/" + id;
        const int port = (c + k) % 2 == 0 ? pool_a.port() : pool_b.port();
        if (call("POST", "/api/v1/backends/add", addBody("app", id, port, 1), 201) == 201) {
          mine[key] = 1;
        }
        if (call("PUT", "/api/v1/backends/update", weightBody("app", id, 2 + k), 200) == 200) {
          mine[key] = 2 + k;
        }
        call("GET", "/api/v1/backends?upstream=app", "", 200);
        const int weight = 10 + c + k;
        if (call("PUT", "/api/v1/backends/update", weightBody("app", id, weight), 200) == 200) {
          mine[key] = weight;
        }
        if (k % 2 == 1) {
          if (call("DELETE", removeTarget("app", id), "", 200) == 200) mine.erase(key);
        } else {
          call("GET", "/api/v1/stats/backend?upstream=app&backend_id=" + id, "", 200);
        }
      }
      std::lock_guard<std::mutex> lock(mutex);
      expected.insert(mine.begin(), mine.end());
    });
  }
  for (std::thread& t : clients) t.join();
  const long ok_then = traffic.ok.load();
  EXPECT_TRUE(waitFor([&] { return traffic.ok.load() >= ok_then + 50; }, Millis(10'000)))
      << "no traffic on the final set";
  stop = true;
  for (std::thread& t : senders) t.join();
  watcher.join();

  EXPECT_EQ(calls.load(), 200);
  EXPECT_THAT(unexpected, IsEmpty());
  EXPECT_THAT(bad_state, IsEmpty()) << "the state file was not valid JSON after a call";
  EXPECT_THAT(torn, IsEmpty()) << "a reader saw a state file that was not valid JSON";
  EXPECT_GT(state_reads.load(), 0);
  EXPECT_EQ(expected.size(), 1u + kClients * 3) << "adds that were not answered 201";

  EXPECT_TRUE(proxy->running()) << "the master is gone";
  EXPECT_FALSE(proxy->crashed());
  EXPECT_THAT(severeLines(*proxy), IsEmpty());
  ASSERT_TRUE(apiAnswers(*proxy));
  EXPECT_TRUE(childrenUp(*proxy, 2)) << "a child died";
  EXPECT_EQ(backendSet(*proxy), expected) << "a change was lost";
  std::string why;
  EXPECT_TRUE(stateFileParses(*proxy, &why)) << why;

  {
    std::lock_guard<std::mutex> lock(traffic.mutex);
    std::cerr << "[ api_config ] traffic: " << traffic.ok << " ok, " << traffic.unavailable
              << " 503, " << traffic.other << " other, " << traffic.failed << " failed"
              << "; the state file read " << state_reads << " times; "
              << countLines(proxy->errorLog(), "not every worker applied")
              << " answers before every worker applied the change" << std::endl;
    EXPECT_EQ(traffic.failed.load(), 0) << ::testing::PrintToString(traffic.samples);
    EXPECT_EQ(traffic.other.load(), 0) << ::testing::PrintToString(traffic.samples);
    EXPECT_GE(traffic.ok.load(), 70);  // 20 before the calls and 50 after, at least
  }
  EXPECT_EQ(yaml_backend.errors(), std::vector<std::string>{});

  // The replay of that file gives the same set.
  ASSERT_TRUE(quitAndStart(*proxy, 2));
  EXPECT_EQ(backendSet(*proxy), expected) << "the state file's replay differs";
  std::map<std::string, int> bodies = fetchMany(proxy->port(), 10);
  EXPECT_EQ(bodies["yaml"] + bodies["a"] + bodies["b"], 10) << ::testing::PrintToString(bodies);
}

}  // namespace
}  // namespace speedmimi::test
