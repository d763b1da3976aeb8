#include "admin/api.h"

#include <gtest/gtest.h>
#include <stdlib.h>
#include <unistd.h>

#include <fstream>
#include <string>

#include "admin/http_server.h"
#include "core/atomic_file.h"
#include "core/clock.h"
#include "core/config.h"
#include "event/handles.h"
#include "loopback.h"
#include "upstream/backend_table.h"
#include "upstream/balancer.h"

namespace speedmimi::admin {
namespace {

using testing::bodyOf;
using testing::httpRequest;
using testing::statusOf;

constexpr const char* kYaml = R"(server:
  port: 8080
backends:
  default:
    - id: "backend1"
      host: "127.0.0.1"
      port: 8081
      weight: 100
    - id: "backend2"
      host: "127.0.0.1"
      port: 8082
routing:
  default:
    path: "/"
    upstream: "default"
    load_balancer: "weight"
)";

// What the master would answer: recorded, and answered as the test says.
class FakeLifecycle final : public Lifecycle {
 public:
  void reload(Done done) override {
    ++reloads;
    done(reload_ok, reload_ok ? 7 : 0, reload_ok ? "" : "bind failed");
  }
  void upgrade(Done done) override { done(true, 4321, ""); }
  bool reload_ok = true;
  int reloads = 0;
};

// What src/process would load: a check that refuses what the test says, a reload that fails or
// serves `loaded`.
class FakeCertificates final : public Certificates {
 public:
  void check(const core::Config& config) override {
    if (!refuse_path.empty()) throw core::configErrorAt(config, refuse_path, "x.pem: bad");
  }
  bool checkBackend(const core::BackendConfig& b, std::string& error) override {
    if (b.scheme != "https" || b.ca_file != "bad.pem") return true;
    error = "backend.ca_file: bad.pem: cannot read";
    return false;
  }
  bool reload(const core::Config&, std::string& error) override {
    ++reloads;
    if (!reload_ok) error = "certs/server.key: key values mismatch";
    if (reload_ok) served_ = loaded;
    return reload_ok;
  }
  const std::vector<event::CertificateInfo>& served() const override { return served_; }

  std::string refuse_path;
  bool reload_ok = true;
  int reloads = 0;
  std::vector<event::CertificateInfo> loaded;

 private:
  std::vector<event::CertificateInfo> served_;
};

class ApiTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/speedmimi-api-XXXXXX";
    ASSERT_NE(mkdtemp(tmpl), nullptr);
    dir_ = tmpl;
    config_path_ = dir_ + "/speedmimi.yaml";
    std::ofstream(config_path_) << kYaml;
    known_ = {upstream::balancerNames()};
    yaml_ = core::loadConfigFile(config_path_, known_);
    std::string error;
    zone_ = core::Zone::create(yaml_.server.shm_size, 2, error);
    ASSERT_TRUE(zone_) << error;
    // As the master starts: these backends have no slow start to go through.
    ASSERT_TRUE(
        upstream::syncBackends(*zone_, yaml_, error, nullptr, core::Zone::Arrival::kAtStart))
        << error;
    start(dir_ + "/state.json");
  }
  void TearDown() override {
    api_.reset();
    server_.reset();
    ASSERT_EQ(system(("rm -rf " + dir_).c_str()), 0);
  }

  void start(const std::string& state_path) {
    state_path_ = state_path;
    api_.reset();
    server_.reset();
    base_.reset(event_base_new());
    server_ = std::make_unique<HttpServer>(base_.get(), HttpServer::Options{});
    ApiSetup setup;
    setup.base = base_.get();
    setup.zone = zone_.get();
    setup.yaml = &yaml_;
    setup.state_path = state_path;
    setup.known = known_;
    setup.lifecycle = &lifecycle_;
    setup.certificates = &certificates_;
    setup.generation = 3;
    api_ = std::make_unique<Api>(setup, *server_);
    std::string error;
    ASSERT_TRUE(api_->init(error)) << error;
    int fd = testing::listenOnLoopback(port_);
    ASSERT_GE(fd, 0);
    ASSERT_TRUE(server_->listen(fd, error)) << error;
  }

  // A worker slot of this process, ready and up to date with the zone's generation; -1 when
  // none is free. Give it back with releaseWorkerSlot.
  int readyWorkerSlot() {
    const int slot = zone_->claimWorkerSlot(getpid());
    if (slot < 0) return slot;
    core::ServerCounters& worker = zone_->workers()[slot];
    worker.ready.store(1);
    worker.seen_generation.store(zone_->generation());
    return slot;
  }

  std::string call(const std::string& method, const std::string& target,
                   const std::string& body = "", const std::string& headers = "",
                   const std::function<void()>& each_turn = nullptr) {
    return testing::sendWhileLooping(base_.get(), port_, httpRequest(method, target, body, headers),
                                     each_turn);
  }

  const core::ZoneBackendConfig* backend(const std::string& id) {
    core::BackendSlot* slot = zone_->find("default", id);
    return slot ? slot->config.load() : nullptr;
  }

  std::string stateFile() {
    std::string contents, error;
    bool missing = false;
    core::readWholeFile(state_path_, contents, error, &missing);
    return contents;
  }

  std::string dir_, config_path_, state_path_;
  core::KnownNames known_;
  core::Config yaml_;
  std::unique_ptr<core::Zone> zone_;
  FakeLifecycle lifecycle_;
  FakeCertificates certificates_;
  event::EventBasePtr base_;
  std::unique_ptr<HttpServer> server_;
  std::unique_ptr<Api> api_;
  int port_ = 0;
};

TEST_F(ApiTest, AddPersistsBeforeAnsweringAndDuplicateIs409) {
  std::string answer = call("POST", "/api/v1/backends/add",
                            R"({"upstream": "default", "backend": {"id": "backend3",
                            "host": "127.0.0.1", "port": 8083, "weight": 50}})");
  ASSERT_EQ(statusOf(answer), 201) << answer;
  ASSERT_NE(backend("backend3"), nullptr);
  EXPECT_EQ(backend("backend3")->weight, 50);
  EXPECT_NE(stateFile().find("backend3"), std::string::npos) << stateFile();
  std::string state_before = stateFile();
  uint64_t generation = zone_->generation();
  std::string again = call("POST", "/api/v1/backends/add",
                           R"({"upstream": "default", "backend": {"id": "backend3",
                           "host": "127.0.0.1", "port": 9999}})");
  EXPECT_EQ(statusOf(again), 409) << again;
  EXPECT_EQ(backend("backend3")->port, 8083);
  EXPECT_EQ(stateFile(), state_before);
  EXPECT_EQ(zone_->generation(), generation);
}

TEST_F(ApiTest, TheAnswerWaitsUntilEveryLiveWorkerAppliedTheChange) {
  int slot = zone_->claimWorkerSlot(getpid());
  ASSERT_GE(slot, 0);
  core::ServerCounters& worker = zone_->workers()[slot];
  worker.pid.store(getpid());
  worker.ready.store(1);
  worker.seen_generation.store(zone_->generation());
  bool answered_before_apply = false;
  bool received = false;
  int turns = 0;
  std::string answer = call(
      "PUT", "/api/v1/backends/update",
      R"({"upstream": "default", "backend": {"id": "backend1", "weight": 200}})", "", [&] {
        // The worker applies the change only after 20 turns of the loop.
        if (++turns == 20) worker.seen_generation.store(zone_->generation());
        received |= server_->pending() > 0;
        if (turns < 20 && received && server_->pending() == 0) answered_before_apply = true;
      });
  EXPECT_EQ(statusOf(answer), 200) << answer;
  EXPECT_GE(turns, 20);
  EXPECT_TRUE(received);
  EXPECT_FALSE(answered_before_apply);
  EXPECT_EQ(backend("backend1")->weight, 200);
  EXPECT_EQ(backend("backend1")->port, 8081);  // partial: the rest is kept
  zone_->releaseWorkerSlot(static_cast<size_t>(slot));
}

TEST_F(ApiTest, RemoveAndDisconnectUnknownAre404AndChangeNothing) {
  std::string state_before = stateFile();
  std::string answer = call("DELETE", "/api/v1/backends/remove?upstream=default&backend_id=nope");
  EXPECT_EQ(statusOf(answer), 404) << answer;
  EXPECT_NE(bodyOf(answer).find("no backend \\\"nope\\\""), std::string::npos) << answer;
  answer = call("POST", "/api/v1/backends/disconnect?upstream=other&backend_id=backend1");
  EXPECT_EQ(statusOf(answer), 404) << answer;
  answer = call("DELETE", "/api/v1/backends/remove?upstream=default");
  EXPECT_EQ(statusOf(answer), 400) << answer;
  EXPECT_NE(answer.find("backend_id: query parameter is required"), std::string::npos);
  EXPECT_EQ(stateFile(), state_before);
  EXPECT_NE(backend("backend1"), nullptr);
}

TEST_F(ApiTest, DisconnectMakesTheBackendInactiveAndIsPersisted) {
  std::string answer = call("POST", "/api/v1/backends/disconnect?upstream=default&backend_id=backend1");
  ASSERT_EQ(statusOf(answer), 200) << answer;
  EXPECT_FALSE(backend("backend1")->active);
  EXPECT_NE(stateFile().find("\"active\": false"), std::string::npos) << stateFile();
  answer = call("PUT", "/api/v1/backends/update",
                R"({"upstream": "default", "backend": {"id": "backend1", "active": true}})");
  ASSERT_EQ(statusOf(answer), 200) << answer;
  EXPECT_TRUE(backend("backend1")->active);
}

// Backend `id` of an answer: its "backend" (add, update, stats of one backend) or the one with
// that id in its "backends" (GET backends, stats of an upstream); null if none.
core::JsonPtr answeredBackend(const std::string& answer, const std::string& id) {
  core::JsonPtr body(json_loads(bodyOf(answer).c_str(), 0, nullptr));
  if (!body) return nullptr;
  if (json_t* one = json_object_get(body.get(), "backend")) return core::JsonPtr(json_incref(one));
  size_t i;
  json_t* b;
  json_array_foreach(json_object_get(body.get(), "backends"), i, b) {
    const char* bid = json_string_value(json_object_get(b, "id"));
    if (bid && id == bid) return core::JsonPtr(json_incref(b));
  }
  return nullptr;
}

int64_t integerAt(const core::JsonPtr& object, const char* key) {
  return json_integer_value(json_object_get(object.get(), key));
}

// slow_start is a setting of the API's backends (partial update included, persisted), and the
// answers show the weight the balancers use now beside the configured one.
TEST_F(ApiTest, SlowStartIsASettingAndEffectiveWeightShowsTheRamp) {
  std::string answer = call("PUT", "/api/v1/backends/update",
                            R"({"upstream": "default", "backend": {"id": "backend1",
                            "slow_start": "10s"}})");
  ASSERT_EQ(statusOf(answer), 200) << answer;
  EXPECT_EQ(backend("backend1")->slow_start_ms, 10'000);
  EXPECT_EQ(backend("backend1")->weight, 100) << "partial";
  EXPECT_NE(stateFile().find(R"({"slow_start": "10s"})"), std::string::npos) << stateFile();
  core::JsonPtr b = answeredBackend(answer, "backend1");
  ASSERT_TRUE(b) << answer;
  EXPECT_STREQ(json_string_value(json_object_get(b.get(), "slow_start")), "10s");
  EXPECT_EQ(integerAt(b, "effective_weight"), 100) << "a backend of the start: no ramp";

  // Re-activation after a disconnect is a comeback.
  ASSERT_EQ(
      statusOf(call("POST", "/api/v1/backends/disconnect?upstream=default&backend_id=backend1")),
      200);
  answer = call("PUT", "/api/v1/backends/update",
                R"({"upstream": "default", "backend": {"id": "backend1", "active": true}})");
  ASSERT_EQ(statusOf(answer), 200) << answer;
  core::BackendSlot* slot = zone_->find("default", "backend1");
  EXPECT_GT(slot->runtime.ramp_start_ms.load(), 0);
  EXPECT_LT(integerAt(answeredBackend(answer, "backend1"), "effective_weight"), 100) << answer;
  // Half way: 50 of 100 (51 if a millisecond passes between the store and the answer).
  slot->runtime.ramp_start_ms.store(core::monotonicMs() - 5'000);
  for (const char* target :
       {"/api/v1/backends?upstream=default", "/api/v1/stats/backend?upstream=default",
        "/api/v1/stats/backend?upstream=default&backend_id=backend1"}) {
    SCOPED_TRACE(target);
    answer = call("GET", target);
    b = answeredBackend(answer, "backend1");
    ASSERT_TRUE(b) << answer;
    EXPECT_EQ(integerAt(b, "weight"), 100);
    EXPECT_GE(integerAt(b, "effective_weight"), 50);
    EXPECT_LE(integerAt(b, "effective_weight"), 52);
  }

  // An added backend comes back when it is added.
  answer = call("POST", "/api/v1/backends/add",
                R"({"upstream": "default", "backend": {"id": "backend3", "host": "127.0.0.1",
                "port": 8083, "weight": 50, "slow_start": 60000}})");
  ASSERT_EQ(statusOf(answer), 201) << answer;
  EXPECT_EQ(backend("backend3")->slow_start_ms, 60'000);
  EXPECT_GT(zone_->find("default", "backend3")->runtime.ramp_start_ms.load(), 0);
  EXPECT_LE(integerAt(answeredBackend(answer, "backend3"), "effective_weight"), 2) << answer;
  EXPECT_NE(stateFile().find(R"("slow_start": "1m")"), std::string::npos) << stateFile();

  // And the effective configuration shows the settings.
  answer = call("GET", "/api/v1/config");
  EXPECT_NE(bodyOf(answer).find(R"("slow_start": "1m")"), std::string::npos) << answer;
  EXPECT_NE(bodyOf(answer).find(R"("slow_start": "10s")"), std::string::npos) << answer;

  answer = call("PUT", "/api/v1/backends/update",
                R"({"upstream": "default", "backend": {"id": "backend1", "slow_start": "1.5s"}})");
  EXPECT_EQ(statusOf(answer), 400) << answer;
  EXPECT_NE(answer.find("backend.slow_start: must be a duration"), std::string::npos) << answer;
}

TEST_F(ApiTest, AStateFileThatCannotBeWrittenFailsTheCallAndChangesNothing) {
  start(dir_ + "/no/such/dir/state.json");
  uint64_t generation = zone_->generation();
  std::string answer = call("DELETE", "/api/v1/backends/remove?upstream=default&backend_id=backend2");
  EXPECT_EQ(statusOf(answer), 500) << answer;
  EXPECT_NE(answer.find("cannot write the state file"), std::string::npos) << answer;
  EXPECT_NE(backend("backend2"), nullptr);
  EXPECT_EQ(zone_->generation(), generation);
}

TEST_F(ApiTest, ReportIsStoredAndOutOfRangeIs400) {
  std::string answer = call("POST", "/api/v1/report",
                            R"({"upstream": "default", "backend_id": "backend1", "performance":
                            {"cpu_usage": 45.2, "memory_usage": 67.8, "load_avg_1": 2.1}})");
  ASSERT_EQ(statusOf(answer), 200) << answer;
  core::BackendSlot* slot = zone_->find("default", "backend1");
  EXPECT_EQ(slot->runtime.report_cpu.load(), 4520u);
  EXPECT_EQ(slot->runtime.report_memory.load(), 6780u);
  EXPECT_EQ(slot->runtime.report_load.load(), 210u);
  EXPECT_GT(slot->runtime.report_time_ms.load(), 0);
  answer = call("POST", "/api/v1/report",
                R"({"upstream": "default", "backend_id": "backend1", "performance":
                {"cpu_usage": 101}})");
  EXPECT_EQ(statusOf(answer), 400) << answer;
  EXPECT_EQ(slot->runtime.report_cpu.load(), 4520u);
  answer = call("POST", "/api/v1/report",
                R"({"upstream": "default", "backend_id": "nope", "performance": {}})");
  EXPECT_EQ(statusOf(answer), 404) << answer;
}

TEST_F(ApiTest, ConfigHasAnEtagAndAStaleIfMatchIs412) {
  std::string answer = call("GET", "/api/v1/config");
  ASSERT_EQ(statusOf(answer), 200) << answer;
  size_t at = answer.find("ETag: ");
  ASSERT_NE(at, std::string::npos) << answer;
  std::string etag = answer.substr(at + 6, answer.find("\r\n", at) - at - 6);
  EXPECT_NE(bodyOf(answer).find("\"backend1\""), std::string::npos);
  EXPECT_EQ(call("GET", "/api/v1/config").find("ETag: " + etag), at);  // stable
  std::string body = R"({"config": {"backends": {"default": [{"id": "x", "host": "127.0.0.1",
      "port": 9000}]}, "routing": {"default": {"path": "/", "upstream": "default"}}}})";
  answer = call("PUT", "/api/v1/config", body, "If-Match: \"0000000000000000\"\r\n");
  EXPECT_EQ(statusOf(answer), 412) << answer;
  EXPECT_EQ(lifecycle_.reloads, 0);
  answer = call("PUT", "/api/v1/config?dry_run=true", body, "If-Match: " + etag + "\r\n");
  EXPECT_EQ(statusOf(answer), 200) << answer;
  EXPECT_EQ(lifecycle_.reloads, 0);
  std::string contents, error;
  ASSERT_TRUE(core::readWholeFile(config_path_, contents, error));
  EXPECT_EQ(contents, kYaml);  // dry run: untouched
}

TEST_F(ApiTest, PutConfigWritesTheFileKeepsABackupAndReloads) {
  std::string body = R"({"config": {"backends": {"default": [{"id": "x", "host": "127.0.0.1",
      "port": 9000}]}, "routing": {"default": {"path": "/", "upstream": "default"}}}})";
  std::string answer = call("PUT", "/api/v1/config", body);
  ASSERT_EQ(statusOf(answer), 200) << answer;
  EXPECT_EQ(lifecycle_.reloads, 1);
  EXPECT_NE(bodyOf(answer).find("\"generation\": 7"), std::string::npos) << answer;
  std::string contents, error;
  ASSERT_TRUE(core::readWholeFile(config_path_ + ".bak", contents, error)) << error;
  EXPECT_EQ(contents, kYaml);
  core::Config written = core::loadConfigFile(config_path_, known_);
  ASSERT_EQ(written.backends.at("default").size(), 1u);
  EXPECT_EQ(written.backends.at("default")[0].port, 9000);
}

TEST_F(ApiTest, AFailedReloadRestoresTheConfigFileAndTheStateFile) {
  ASSERT_EQ(statusOf(call("DELETE", "/api/v1/backends/remove?upstream=default&backend_id=backend2")),
            200);
  std::string state_before = stateFile();
  lifecycle_.reload_ok = false;
  std::string body = R"({"config": {"backends": {"default": [{"id": "x", "host": "127.0.0.1",
      "port": 9000}]}, "routing": {"default": {"path": "/", "upstream": "default"}}}})";
  std::string answer = call("PUT", "/api/v1/config", body);
  EXPECT_EQ(statusOf(answer), 500) << answer;
  EXPECT_NE(answer.find("bind failed"), std::string::npos) << answer;
  std::string contents, error;
  ASSERT_TRUE(core::readWholeFile(config_path_, contents, error));
  EXPECT_EQ(contents, kYaml);
  EXPECT_EQ(stateFile(), state_before);
}

TEST_F(ApiTest, PutConfigErrorsNameTheJsonPath) {
  std::string answer = call("PUT", "/api/v1/config",
                            R"({"config": {"backends": {"default": [{"id": "x",
                            "host": "127.0.0.1", "port": 99999}]}, "routing": {"default":
                            {"path": "/", "upstream": "default"}}}})");
  EXPECT_EQ(statusOf(answer), 400) << answer;
  EXPECT_NE(answer.find("config.backends.default[0].port"), std::string::npos) << answer;
  EXPECT_EQ(lifecycle_.reloads, 0);
}

TEST_F(ApiTest, ReloadSslWithoutTlsIs409) {
  std::string answer = call("POST", "/api/v1/config/reload-ssl");
  EXPECT_EQ(statusOf(answer), 409) << answer;
  EXPECT_NE(answer.find("ssl.enabled: false"), std::string::npos) << answer;
}

TEST_F(ApiTest, ReloadSslLoadsFirstAndABadPairChangesNothing) {
  yaml_.ssl.enabled = true;
  certificates_.reload_ok = false;
  const uint64_t serial = zone_->tlsSerial(), generation = zone_->generation();
  std::string answer = call("POST", "/api/v1/config/reload-ssl");
  EXPECT_EQ(statusOf(answer), 500) << answer;
  EXPECT_NE(answer.find(R"("error": "certs/server.key: key values mismatch")"), std::string::npos)
      << answer;
  EXPECT_EQ(zone_->tlsSerial(), serial);
  EXPECT_EQ(zone_->generation(), generation);
}

TEST_F(ApiTest, ReloadSslAnswersOnceEveryWorkerLoadedTheCertificates) {
  yaml_.ssl.enabled = true;
  certificates_.loaded.resize(2);
  const int slot = readyWorkerSlot();
  ASSERT_GE(slot, 0);
  core::ServerCounters& worker = zone_->workers()[slot];
  const uint64_t serial = zone_->tlsSerial();
  bool answered_before_apply = false, received = false;
  int turns = 0;
  std::string answer = call("POST", "/api/v1/config/reload-ssl", "", "", [&] {
    // The worker has seen the generation at once, but loads the certificates 20 turns after
    // the API moved the serial (the first turns may come before it has read the request).
    worker.seen_generation.store(zone_->generation());
    if (zone_->tlsSerial() != serial && ++turns == 20) {
      worker.seen_tls_serial.store(zone_->tlsSerial());
    }
    received |= server_->pending() > 0;
    if (turns < 20 && received && server_->pending() == 0) answered_before_apply = true;
  });
  EXPECT_EQ(statusOf(answer), 200) << answer;
  EXPECT_NE(answer.find(R"("message": "SSL certificates reloaded")"), std::string::npos) << answer;
  EXPECT_NE(answer.find(R"("certificates": 2)"), std::string::npos) << answer;
  EXPECT_EQ(zone_->tlsSerial(), serial + 1);
  EXPECT_GE(turns, 20);
  EXPECT_FALSE(answered_before_apply);
  EXPECT_EQ(certificates_.reloads, 1);
  zone_->releaseWorkerSlot(static_cast<size_t>(slot));
}

// The files loaded here, but a worker could not load them (its own failure, which it logs and
// publishes in its slot): it serves the certificates it had, so the answer is no success.
TEST_F(ApiTest, ReloadSslAnswers500NamingAWorkerThatCouldNotLoadTheCertificates) {
  yaml_.ssl.enabled = true;
  certificates_.loaded.resize(1);
  const int slot = readyWorkerSlot();
  ASSERT_GE(slot, 0);
  core::ServerCounters& worker = zone_->workers()[slot];
  int turns = 0;
  uint64_t serial = zone_->tlsSerial();
  // The worker answers 5 turns after the API moved the serial (the first turns may come before
  // it has read the request).
  std::string answer = call("POST", "/api/v1/config/reload-ssl", "", "", [&] {
    worker.seen_generation.store(zone_->generation());
    if (zone_->tlsSerial() != serial && ++turns == 5) {
      zone_->setTlsFailure(static_cast<size_t>(slot), zone_->tlsSerial(),
                           "certs/server.crt: cannot read: Permission denied");
      worker.seen_tls_serial.store(zone_->tlsSerial());
    }
  });
  EXPECT_EQ(statusOf(answer), 500) << answer;
  EXPECT_NE(answer.find("worker " + std::to_string(getpid()) +
                        ": certs/server.crt: cannot read: Permission denied"),
            std::string::npos)
      << answer;
  EXPECT_GE(turns, 5);

  // The next reload that this worker loads is a success again.
  turns = 0;
  serial = zone_->tlsSerial();
  answer = call("POST", "/api/v1/config/reload-ssl", "", "", [&] {
    worker.seen_generation.store(zone_->generation());
    if (zone_->tlsSerial() != serial && ++turns == 5) {
      worker.seen_tls_serial.store(zone_->tlsSerial());
    }
  });
  EXPECT_EQ(statusOf(answer), 200) << answer;
  zone_->releaseWorkerSlot(static_cast<size_t>(slot));
}

TEST_F(ApiTest, CertificatesAreCheckedBeforeAChange) {
  certificates_.refuse_path = "ssl.cert_file";
  std::string answer = call("PUT", "/api/v1/config?dry_run=true",
                            R"({"config": {"ssl": {"enabled": true}}})");
  EXPECT_EQ(statusOf(answer), 400) << answer;
  EXPECT_NE(answer.find(R"("error": "config.ssl.cert_file: x.pem: bad")"), std::string::npos)
      << answer;
  EXPECT_EQ(lifecycle_.reloads, 0);
  answer = call("POST", "/api/v1/backends/add",
                R"({"upstream": "default", "backend": {"id": "s", "host": "127.0.0.1",
                "port": 8443, "scheme": "https", "ca_file": "bad.pem"}})");
  EXPECT_EQ(statusOf(answer), 400) << answer;
  EXPECT_NE(answer.find("backend.ca_file: bad.pem: cannot read"), std::string::npos) << answer;
  EXPECT_EQ(backend("s"), nullptr);
  answer = call("PUT", "/api/v1/backends/update",
                R"({"upstream": "default", "backend": {"id": "backend1", "scheme": "https",
                "ca_file": "bad.pem"}})");
  EXPECT_EQ(statusOf(answer), 400) << answer;
  EXPECT_EQ(std::string(backend("backend1")->scheme), "http");
  // A good one goes in, with its ca_file.
  answer = call("PUT", "/api/v1/backends/update",
                R"({"upstream": "default", "backend": {"id": "backend1", "scheme": "https",
                "ca_file": "certs/ca.pem"}})");
  EXPECT_EQ(statusOf(answer), 200) << answer;
  EXPECT_EQ(std::string(backend("backend1")->ca_file), "certs/ca.pem");
  EXPECT_NE(stateFile().find(R"("ca_file": "certs/ca.pem")"), std::string::npos) << stateFile();
}

TEST_F(ApiTest, ServerStatsShowTheCertificatesWhenTlsIsOn) {
  std::string answer = call("GET", "/api/v1/stats/server");
  EXPECT_EQ(answer.find(R"("tls")"), std::string::npos) << answer;
  yaml_.ssl.enabled = true;
  certificates_.loaded = {{"/p/a.crt", {"a.test"}, "EC", time(nullptr) + 3 * 86400 + 60}};
  ASSERT_EQ(statusOf(call("POST", "/api/v1/config/reload-ssl")), 200);
  answer = call("GET", "/api/v1/stats/server");
  EXPECT_NE(answer.find(R"("file": "/p/a.crt")"), std::string::npos) << answer;
  EXPECT_NE(answer.find(R"("warning": "expires in 3 days")"), std::string::npos) << answer;
}

TEST_F(ApiTest, ListsBackendsAndStats) {
  std::string answer = call("GET", "/api/v1/backends?upstream=default");
  ASSERT_EQ(statusOf(answer), 200) << answer;
  EXPECT_NE(answer.find("\"backend1\""), std::string::npos);
  EXPECT_NE(answer.find("\"backend2\""), std::string::npos);
  EXPECT_EQ(statusOf(call("GET", "/api/v1/backends?upstream=nope")), 404);
  answer = call("GET", "/api/v1/stats/backend?upstream=default&backend_id=backend1");
  ASSERT_EQ(statusOf(answer), 200) << answer;
  EXPECT_NE(answer.find("\"health\""), std::string::npos) << answer;
  EXPECT_EQ(statusOf(call("GET", "/api/v1/stats/backend?upstream=default&backend_id=nope")), 404);
  answer = call("GET", "/api/v1/stats/server");
  ASSERT_EQ(statusOf(answer), 200) << answer;
  for (const char* field : {"\"uptime_seconds\"", "\"generation\": 3", "\"cpu_usage\"",
                            "\"memory_usage\"", "\"load_avg_1\"", "\"load_avg_5\"",
                            "\"load_avg_15\"", "\"network_in\"", "\"network_out\"",
                            "\"timestamp\""}) {
    EXPECT_NE(answer.find(field), std::string::npos) << field << " in " << answer;
  }
}

TEST_F(ApiTest, StatsShowPercentilesResponsesByClassAndTheHealthHistory) {
  int w = zone_->claimWorkerSlot(getpid());
  ASSERT_GE(w, 0);
  // 100 exchanges in (0.5, 1] ms: the percentiles interpolate inside that bucket.
  for (int i = 0; i < 100; ++i) zone_->workers()[w].request_latency.record(1'000);
  zone_->workers()[w].retries = 5;
  zone_->workers()[w].retries_refused = 2;
  core::BackendSlot* b1 = zone_->find("default", "backend1");
  size_t index = static_cast<size_t>(b1 - zone_->slot(0));
  core::BackendCounters& counters = zone_->backendCounters(static_cast<size_t>(w))[index].counters;
  counters.responses_by_class[2] = 7;
  counters.responses_by_class[4] = 3;
  for (int i = 0; i < 10; ++i) counters.head_time.record(250);  // (0.1, 0.25] ms
  core::appendHealthEvent(b1->health_history, 1'700'000'000'123, core::Health::kDown,
                          "connect: Connection refused");
  core::appendHealthEvent(b1->health_history, 1'700'000'060'000, core::Health::kUp, "200 OK");

  std::string answer = call("GET", "/api/v1/stats/server");
  ASSERT_EQ(statusOf(answer), 200) << answer;
  core::JsonPtr server(json_loads(bodyOf(answer).c_str(), 0, nullptr));
  json_t* latency = json_object_get(server.get(), "latency");
  ASSERT_TRUE(json_is_object(latency)) << answer;
  EXPECT_EQ(json_integer_value(json_object_get(latency, "count")), 100);
  EXPECT_NEAR(json_number_value(json_object_get(latency, "mean_ms")), 1.0, 1e-9);
  EXPECT_NEAR(json_number_value(json_object_get(latency, "p50_ms")), 0.75, 1e-9);
  EXPECT_NEAR(json_number_value(json_object_get(latency, "p90_ms")), 0.95, 1e-9);
  EXPECT_NEAR(json_number_value(json_object_get(latency, "p99_ms")), 0.995, 1e-9);
  EXPECT_NEAR(json_number_value(json_object_get(latency, "p999_ms")), 0.9995, 1e-9);
  json_t* requests = json_object_get(server.get(), "requests");
  EXPECT_EQ(json_integer_value(json_object_get(requests, "retries")), 5) << answer;
  EXPECT_EQ(json_integer_value(json_object_get(requests, "retries_refused")), 2) << answer;
  for (const char* kept : {"uptime_seconds", "workers", "connections", "requests", "bytes_in",
                           "bytes_out", "cpu_usage", "timestamp"}) {
    EXPECT_NE(json_object_get(server.get(), kept), nullptr) << kept;
  }

  answer = call("GET", "/api/v1/stats/backend?upstream=default&backend_id=backend1");
  ASSERT_EQ(statusOf(answer), 200) << answer;
  core::JsonPtr data(json_loads(bodyOf(answer).c_str(), 0, nullptr));
  json_t* b = json_object_get(data.get(), "backend");
  json_t* responses = json_object_get(b, "responses");
  EXPECT_EQ(json_integer_value(json_object_get(responses, "2xx")), 7) << answer;
  EXPECT_EQ(json_integer_value(json_object_get(responses, "4xx")), 3) << answer;
  EXPECT_EQ(json_integer_value(json_object_get(responses, "5xx")), 0) << answer;
  EXPECT_EQ(json_object_size(responses), 5u) << answer;
  json_t* head = json_object_get(b, "head_time");
  EXPECT_EQ(json_integer_value(json_object_get(head, "count")), 10) << answer;
  EXPECT_NEAR(json_number_value(json_object_get(head, "p50_ms")), 0.175, 1e-9) << answer;
  json_t* history = json_object_get(json_object_get(b, "health"), "history");
  ASSERT_EQ(json_array_size(history), 2u) << answer;
  json_t* newest = json_array_get(history, 0);
  EXPECT_STREQ(json_string_value(json_object_get(newest, "time")), "2023-11-14T22:14:20.000Z");
  EXPECT_STREQ(json_string_value(json_object_get(newest, "status")), "up");
  EXPECT_STREQ(json_string_value(json_object_get(newest, "reason")), "200 OK");
  json_t* oldest = json_array_get(history, 1);
  EXPECT_STREQ(json_string_value(json_object_get(oldest, "time")), "2023-11-14T22:13:20.123Z");
  EXPECT_STREQ(json_string_value(json_object_get(oldest, "status")), "down");
  EXPECT_STREQ(json_string_value(json_object_get(oldest, "reason")), "connect: Connection refused");
  // Kept from before: the EWMA (none yet), health with its reason, the last report.
  EXPECT_TRUE(json_is_null(json_object_get(b, "latency_ms"))) << answer;
  EXPECT_TRUE(json_is_string(json_object_get(json_object_get(b, "health"), "reason"))) << answer;
  EXPECT_NE(json_object_get(b, "last_report"), nullptr) << answer;

  // No sample: the figures are null, not 0 ms.
  answer = call("GET", "/api/v1/stats/backend?upstream=default&backend_id=backend2");
  core::JsonPtr other(json_loads(bodyOf(answer).c_str(), 0, nullptr));
  json_t* none = json_object_get(json_object_get(other.get(), "backend"), "head_time");
  EXPECT_EQ(json_integer_value(json_object_get(none, "count")), 0) << answer;
  EXPECT_TRUE(json_is_null(json_object_get(none, "p99_ms"))) << answer;
  EXPECT_EQ(json_array_size(json_object_get(
                json_object_get(json_object_get(other.get(), "backend"), "health"), "history")),
            0u);
  zone_->releaseWorkerSlot(static_cast<size_t>(w));
}

TEST_F(ApiTest, MetricsIsPrometheusTextBehindTheSameToken) {
  std::string answer = call("GET", "/metrics");
  ASSERT_EQ(statusOf(answer), 200) << answer;
  EXPECT_NE(answer.find("Content-Type: text/plain; version=0.0.4; charset=utf-8\r\n"),
            std::string::npos)
      << answer;
  EXPECT_NE(bodyOf(answer).find("\nspeedmimi_generation 3\n"), std::string::npos) << answer;
  EXPECT_NE(bodyOf(answer).find(
                "\nspeedmimi_backend_weight{upstream=\"default\",backend=\"backend1\"} 100\n"),
            std::string::npos)
      << answer;
  EXPECT_EQ(statusOf(call("POST", "/metrics")), 405);

  // With admin.auth_token: 401 without the bearer token, 200 with it.
  api_.reset();
  server_.reset();
  HttpServer::Options options;
  options.auth_token = "t0ken";
  server_ = std::make_unique<HttpServer>(base_.get(), options);
  ApiSetup setup;
  setup.base = base_.get();
  setup.zone = zone_.get();
  setup.yaml = &yaml_;
  setup.state_path = state_path_;
  setup.known = known_;
  setup.lifecycle = &lifecycle_;
  api_ = std::make_unique<Api>(setup, *server_);
  std::string error;
  ASSERT_TRUE(api_->init(error)) << error;
  int fd = testing::listenOnLoopback(port_);
  ASSERT_GE(fd, 0);
  ASSERT_TRUE(server_->listen(fd, error)) << error;
  EXPECT_EQ(statusOf(call("GET", "/metrics")), 401);
  EXPECT_EQ(statusOf(call("GET", "/metrics", "", "Authorization: Bearer t0ken\r\n")), 200);
}

TEST_F(ApiTest, ReloadAndUpgradeAnswerWithTheOutcome) {
  std::string answer = call("POST", "/api/v1/reload");
  ASSERT_EQ(statusOf(answer), 200) << answer;
  EXPECT_NE(answer.find("\"generation\": 7"), std::string::npos) << answer;
  answer = call("POST", "/api/v1/upgrade");
  ASSERT_EQ(statusOf(answer), 200) << answer;
  EXPECT_NE(answer.find("\"new_master_pid\": 4321"), std::string::npos) << answer;
  std::ofstream(config_path_) << "server:\n  port: 99999\n";
  answer = call("POST", "/api/v1/reload");
  EXPECT_EQ(statusOf(answer), 500) << answer;
  EXPECT_NE(answer.find("speedmimi.yaml:2:"), std::string::npos) << answer;
}

}  // namespace
}  // namespace speedmimi::admin
