// Certificates reloaded without dropping a connection (issue 11): POST /api/v1/config/reload-ssl
// and HUP re-read the files, open TLS connections keep going, new handshakes see the new
// certificate, a bad pair changes nothing; sessions resume across a reload; and every
// certificate problem is refused before anything changes, at file:line:column of its key with
// OpenSSL's reason. The served files are copies in the test's own directory, so a test can
// replace them.
#include <jansson.h>
#include <signal.h>

#include <algorithm>
#include <fstream>
#include <set>

#include "harness.h"
#include "tls_certs.h"
#include "tls_client.h"
#include "tls_transport.h"

namespace speedmimi::test {
namespace {

using ::testing::HasSubstr;
using ::testing::IsEmpty;

std::string get(const std::string& target) {
  return buildRequest("GET", target, {{"Host", "default.test"}}, "", Framing::kNone);
}

// The SAN names a new handshake with SNI default.test gets (empty if it failed).
std::vector<std::string> servedNames(const Proxy& proxy) {
  TlsClient client(proxy.sslPort(), tlsOptions("default.test"));
  return client.connected() ? client.info().peer_names : std::vector<std::string>{};
}

using Json = std::unique_ptr<json_t, void (*)(json_t*)>;

void freeJson(json_t* json) {
  json_decref(json);
}

// The API's answer as JSON (null when it does not parse).
Json parseJson(const std::string& text) {
  return Json(json_loads(text.c_str(), 0, nullptr), &freeJson);
}

bool succeeded(const Response& answer) {
  Json json = parseJson(answer.body);
  return json_is_true(json_object_get(json.get(), "success"));
}

// Member `key` of the JSON object in `text`, as compact JSON text ("" when absent).
std::string member(const std::string& text, const char* key) {
  Json json = parseJson(text);
  json_t* value = json_object_get(json.get(), key);
  if (value == nullptr) return "";
  char* dumped = json_dumps(value, JSON_COMPACT | JSON_ENCODE_ANY);
  std::string out = dumped != nullptr ? dumped : "";
  free(dumped);
  return out;
}

const std::vector<std::string> kDefault = {"default.test"};
const std::vector<std::string> kA = {"a.test"};

class TlsReloadTest : public ProxyTest {
 protected:
  // ssl.cert_file / key_file in the scratch directory, starting as `pair`.
  ProxyOptions reloadable(const CertKey& pair, int workers = 2) {
    EXPECT_TRUE(install(pair.cert, pair.key));
    ProxyOptions options = ProxyOptions::forBackends({backend_.port()});
    options.workers = workers;
    options.api = true;
    options.ssl = defaultSsl(0);
    options.ssl->certificates.clear();
    options.ssl->cert_file = certPath();
    options.ssl->key_file = keyPath();
    return options;
  }

  // Replaces the served certificate and key (each file atomically).
  bool install(const std::string& cert, const std::string& key) {
    return replaceFile(cert, certPath()) && replaceFile(key, keyPath());
  }
  std::string certPath() const { return dir_.path() + "/server.crt"; }
  std::string keyPath() const { return dir_.path() + "/server.key"; }

  // The master's children once all of them are up: the control process (the API), which may
  // start after the master accepts, and the `workers`, each one ready (its certificates loaded:
  // one still loading would read files a test installs next).
  std::vector<pid_t> children(Proxy& proxy, size_t workers = 2) {
    EXPECT_TRUE(waitFor(
        [&] {
          if (proxy.workerPids().size() != workers + 1) return false;
          auto stats = proxy.api("GET", "/api/v1/stats/server");
          return stats && member(stats->body, "workers") == std::to_string(workers);
        },
        Millis(5000)))
        << proxy.errorLog();
    return proxy.workerPids();
  }

  // Until every worker has been replaced (a HUP's new generation serves).
  bool waitForNewWorkers(Proxy& proxy, const std::vector<pid_t>& old, Millis timeout) {
    return waitFor(
        [&] {
          std::vector<pid_t> now = proxy.workerPids();
          if (now.size() != old.size()) return false;
          for (pid_t pid : now) {
            if (std::find(old.begin(), old.end(), pid) != old.end()) return false;
          }
          return true;
        },
        timeout);
  }

  ScratchDir dir_;
  FakeBackend backend_{FakeBackend::fixed(200, "ok")};
};

// --- reload-ssl ------------------------------------------------------------------------------------

TEST_F(TlsReloadTest, ReloadSslKeepsOpenConnectionsAndNewHandshakesSeeTheNewCertificate) {
  Proxy* proxy = startProxy(reloadable(testCerts().default_rsa));
  ASSERT_NE(proxy, nullptr);

  TlsClient open(proxy->sslPort(), tlsOptions("default.test", testCerts().ca));
  ASSERT_TRUE(open.connected()) << open.error();
  ASSERT_TRUE(open.sendRaw(get("/before")));
  ASSERT_TRUE(open.readResponse()) << open.error();
  EXPECT_EQ(open.info().peer_names, kDefault);

  ASSERT_TRUE(install(testCerts().a.cert, testCerts().a.key));
  auto answer = proxy->api("POST", "/api/v1/config/reload-ssl");
  ASSERT_TRUE(answer);
  EXPECT_EQ(answer->status, 200) << answer->body;
  EXPECT_TRUE(succeeded(*answer)) << answer->body;

  // The API answered once every worker switched: each new handshake, on either worker, sees it.
  std::set<pid_t> workers;
  for (int i = 0; i < 20; ++i) {
    TlsClient fresh(proxy->sslPort(), tlsOptions("default.test"));
    ASSERT_TRUE(fresh.connected()) << fresh.error();
    EXPECT_EQ(fresh.info().peer_names, kA) << "handshake " << i;
    workers.insert(workerHolding(*proxy, fresh));
  }
  RecordProperty("workers_seen", static_cast<int>(workers.size()));

  // The connection opened before the reload is untouched: same connection, still answering.
  for (int i = 0; i < 5; ++i) {
    ASSERT_TRUE(open.sendRaw(get("/after/" + std::to_string(i)))) << open.error();
    auto response = open.readResponse();
    ASSERT_TRUE(response) << "request " << i << " after the reload: " << open.error();
    EXPECT_EQ(response->status, 200);
  }
  EXPECT_EQ(countTargets(backend_, "/after/"), 5u);
}

TEST_F(TlsReloadTest, ReloadSslWithABadPairAnswers500AndTheOldCertificateStays) {
  Proxy* proxy = startProxy(reloadable(testCerts().default_rsa));
  ASSERT_NE(proxy, nullptr);
  ASSERT_EQ(servedNames(*proxy), kDefault);

  struct Bad {
    std::string what;
    std::string cert;
    std::string key;
    std::string reason;  // in the API's error
  };
  const TestCerts& certs = testCerts();
  for (const Bad& bad : std::vector<Bad>{
           {"a key of another certificate", certs.a.cert, certs.mismatched_key, "mismatch"},
           {"an expired certificate", certs.expired.cert, certs.expired.key, "expired"},
           {"a certificate not valid yet", certs.not_yet_valid.cert, certs.not_yet_valid.key,
            "not yet valid"}}) {
    SCOPED_TRACE(bad.what);
    ASSERT_TRUE(install(bad.cert, bad.key));
    auto answer = proxy->api("POST", "/api/v1/config/reload-ssl");
    ASSERT_TRUE(answer);
    EXPECT_EQ(answer->status, 500) << answer->body;
    EXPECT_FALSE(succeeded(*answer)) << answer->body;
    EXPECT_FALSE(member(answer->body, "error").empty()) << answer->body;
    EXPECT_TRUE(containsIgnoreCase(answer->body, bad.reason)) << answer->body;
    EXPECT_TRUE(answer->body.find("server.crt") != std::string::npos ||
                answer->body.find("server.key") != std::string::npos)
        << "the error names neither file: " << answer->body;
    for (int i = 0; i < 6; ++i) EXPECT_EQ(servedNames(*proxy), kDefault) << "handshake " << i;
  }
  // A missing file is bad too.
  ASSERT_EQ(::unlink(keyPath().c_str()), 0);
  auto missing = proxy->api("POST", "/api/v1/config/reload-ssl");
  ASSERT_TRUE(missing);
  EXPECT_EQ(missing->status, 500) << missing->body;
  EXPECT_EQ(servedNames(*proxy), kDefault);
}

// --- HUP ---------------------------------------------------------------------------------------------

TEST_F(TlsReloadTest, HupReloadsTheCertificates) {
  Proxy* proxy = startProxy(reloadable(testCerts().default_rsa));
  ASSERT_NE(proxy, nullptr);
  std::vector<pid_t> old = children(*proxy);

  ASSERT_TRUE(install(testCerts().a.cert, testCerts().a.key));
  ASSERT_TRUE(proxy->signal(SIGHUP));
  ASSERT_TRUE(waitForNewWorkers(*proxy, old, Millis(10'000))) << proxy->errorLog();
  EXPECT_TRUE(waitFor([&] { return servedNames(*proxy) == kA; }, Millis(2000)));
  for (int i = 0; i < 6; ++i) EXPECT_EQ(servedNames(*proxy), kA);
}

TEST_F(TlsReloadTest, HupWithABadCertificateKeepsTheOldGenerationServing) {
  Proxy* proxy = startProxy(reloadable(testCerts().default_rsa));
  ASSERT_NE(proxy, nullptr);
  std::vector<pid_t> old = children(*proxy);
  size_t log_before = proxy->errorLog().size();

  ASSERT_TRUE(install(testCerts().expired.cert, testCerts().expired.key));
  ASSERT_TRUE(proxy->signal(SIGHUP));
  EXPECT_TRUE(waitFor(
      [&] {
        return !linesContaining(proxy->errorLog().substr(log_before), {"expired"}).empty();
      },
      Millis(5000)))
      << proxy->errorLog();
  EXPECT_EQ(proxy->workerPids(), old) << "the workers were replaced by a generation that failed";
  EXPECT_EQ(servedNames(*proxy), kDefault);
  EXPECT_TRUE(proxy->running());
}

// A worker that dies and is respawned serves its generation's certificates, loaded by the
// master, whatever the files hold by then: it reads none of them itself.
TEST_F(TlsReloadTest, ARespawnedWorkerServesItsGenerationsCertificates) {
  Proxy* proxy = startProxy(reloadable(testCerts().default_rsa, 1));
  ASSERT_NE(proxy, nullptr);
  std::vector<pid_t> before = children(*proxy, 1);
  ASSERT_TRUE(install(testCerts().expired.cert, testCerts().expired.key));
  const std::string started = "started worker process";
  const size_t starts = linesContaining(proxy->errorLog(), {started}).size();
  size_t log_before = proxy->errorLog().size();
  for (pid_t pid : before) {
    if (proxy->errorLog().find("worker process " + std::to_string(pid)) != std::string::npos) {
      ASSERT_EQ(kill(pid, SIGKILL), 0);
    }
  }
  ASSERT_TRUE(waitFor([&] { return linesContaining(proxy->errorLog(), {started}).size() > starts; },
                      Millis(5000)))
      << proxy->errorLog();
  ASSERT_TRUE(waitFor([&] { return servedNames(*proxy) == kDefault; }, Millis(5000)))
      << proxy->errorLog();
  EXPECT_THAT(linesContaining(proxy->errorLog().substr(log_before), {"expired", "cannot load"}),
              IsEmpty());
}

// Sessions resume after a reload: the ticket keys are kept in the zone across it.
TEST_F(TlsReloadTest, SessionsResumeAcrossAHupReload) {
  Proxy* proxy = startProxy(reloadable(testCerts().default_rsa));
  ASSERT_NE(proxy, nullptr);

  for (const char* version : {"TLSv1.2", "TLSv1.3"}) {
    SCOPED_TRACE(version);
    TlsClientOptions options = tlsOptions("default.test", testCerts().ca);
    options.min_version = options.max_version = version;
    {
      TlsClient first(proxy->sslPort(), options);
      ASSERT_TRUE(first.connected()) << first.error();
      ASSERT_TRUE(first.sendRaw(get("/first")));
      ASSERT_TRUE(first.readResponse()) << first.error();
      options.session = first.session();
    }
    ASSERT_NE(options.session, nullptr) << "no session ticket";
    std::vector<pid_t> old = children(*proxy);
    ASSERT_TRUE(proxy->signal(SIGHUP));
    ASSERT_TRUE(waitForNewWorkers(*proxy, old, Millis(10'000))) << proxy->errorLog();

    TlsClient again(proxy->sslPort(), options);
    ASSERT_TRUE(again.connected()) << again.error();
    EXPECT_TRUE(again.info().resumed) << "a session of the old generation did not resume";
    ASSERT_TRUE(again.sendRaw(get("/again")));
    EXPECT_TRUE(again.readResponse()) << again.error();
  }
}

// --- validation before anything changes ------------------------------------------------------------

struct ConfigCase {
  const char* name;
  std::string cert;
  std::string key;
  const char* key_name;  // the config key the error points at
  const char* reason;    // in the message
};

std::string configCaseName(const ::testing::TestParamInfo<ConfigCase>& info) {
  return info.param.name;
}

void PrintTo(const ConfigCase& c, std::ostream* out) {
  *out << c.name;
}

class TlsConfigErrorTest : public ProxyTest, public ::testing::WithParamInterface<ConfigCase> {};

// "<config>:<line>:" of the line where `key: "<value>"` is written, and the columns of the key
// and of its value (1-based), as an error may point at either.
struct Location {
  std::string file_line;
  int key_column = 0;
  int value_column = 0;
};

Location locate(const std::string& path, const std::string& yaml, const std::string& key,
                const std::string& value) {
  Location at;
  std::string wanted = key + ": \"" + value + "\"";
  int line = 1;
  size_t start = 0;
  while (start < yaml.size()) {
    size_t end = yaml.find('\n', start);
    if (end == std::string::npos) end = yaml.size();
    std::string text = yaml.substr(start, end - start);
    size_t found = text.find(wanted);
    if (found != std::string::npos) {
      at.file_line = path + ":" + std::to_string(line) + ":";
      at.key_column = static_cast<int>(found) + 1;
      at.value_column = static_cast<int>(found + key.size() + 2) + 1;
      return at;
    }
    ++line;
    start = end + 1;
  }
  return at;
}

// `speedmimi -t` and a start both refuse the config with one error at the key's location,
// naming the file and OpenSSL's reason.
TEST_P(TlsConfigErrorTest, RefusedAtTheKeysLocationWithTheReason) {
  const ConfigCase& c = GetParam();
  FakeBackend backend(FakeBackend::fixed(200, "ok"));
  ScratchDir dir;
  ProxyOptions options = ProxyOptions::forBackends({backend.port()});
  options.port = pickFreePort();
  options.ssl = defaultSsl(0);
  options.ssl->certificates = {{testCerts().a.cert, testCerts().a.key}, {c.cert, c.key}};
  std::string yaml = options.toYaml();
  std::string config = dir.path() + "/speedmimi.yaml";
  {
    std::ofstream out(config);
    out << yaml;
  }
  std::string file = std::string(c.key_name) == "cert_file" ? c.cert : c.key;
  Location at = locate(config, yaml, c.key_name, file);
  ASSERT_FALSE(at.file_line.empty()) << yaml;

  Proxy::CommandResult test =
      runProgram({Proxy::binaryPath(), "-t", "-c", config, "-p", dir.path()}, dir.path());
  EXPECT_NE(test.exit_code, 0) << test.out << test.err;
  std::string said = test.out + test.err;
  std::string at_key = at.file_line + std::to_string(at.key_column) + ":";
  std::string at_value = at.file_line + std::to_string(at.value_column) + ":";
  EXPECT_TRUE(said.find(at_key) != std::string::npos || said.find(at_value) != std::string::npos)
      << "expected " << at_key << " or " << at_value << " in:\n" << said;
  EXPECT_THAT(said, HasSubstr(file));
  EXPECT_TRUE(containsIgnoreCase(said, c.reason)) << said;

  Proxy proxy(options);
  std::string error;
  EXPECT_FALSE(proxy.start(&error)) << "the proxy started with " << c.name;
  EXPECT_TRUE(containsIgnoreCase(error, c.reason)) << error;
  EXPECT_EQ(backend.requestCount(), 0u);
}

std::vector<ConfigCase> configCases() {
  const TestCerts& certs = testCerts();
  return {
      {"MissingCertificate", certs.dir + "/no-such.crt", certs.b.key, "cert_file",
       "No such file"},
      {"MissingKey", certs.b.cert, certs.dir + "/no-such.key", "key_file", "No such file"},
      {"KeyDoesNotMatch", certs.b.cert, certs.mismatched_key, "key_file", "mismatch"},
      {"Expired", certs.expired.cert, certs.expired.key, "cert_file", "expired"},
      {"NotYetValid", certs.not_yet_valid.cert, certs.not_yet_valid.key, "cert_file",
       "not yet valid"},
      {"NotACertificate", certs.b.key, certs.b.key, "cert_file", "certificate"},
  };
}

INSTANTIATE_TEST_SUITE_P(Certificates, TlsConfigErrorTest, ::testing::ValuesIn(configCases()),
                         configCaseName);

// A certificate that expires within 14 days: served, with a warning in the log and in
// /api/v1/stats/server under "tls".
TEST_F(TlsReloadTest, ACertificateExpiringSoonIsAWarningInTheLogAndTheStats) {
  Proxy* proxy = startProxy(reloadable(testCerts().expiring, 1));
  ASSERT_NE(proxy, nullptr);
  EXPECT_EQ(servedNames(*proxy), kDefault);

  std::vector<std::string> warnings = linesContaining(proxy->errorLog(), {"[warn]"});
  std::vector<std::string> about;
  for (const std::string& line : warnings) {
    if (line.find(certPath()) != std::string::npos) about.push_back(line);
  }
  EXPECT_FALSE(about.empty()) << "no [warn] line names " << certPath() << ":\n" << proxy->errorLog();
  auto stats = proxy->api("GET", "/api/v1/stats/server");
  ASSERT_TRUE(stats);
  ASSERT_EQ(stats->status, 200);
  std::string tls = member(stats->body, "tls");
  ASSERT_FALSE(tls.empty()) << "no \"tls\" in " << stats->body;
  EXPECT_THAT(tls, HasSubstr(certPath()));
  EXPECT_TRUE(containsIgnoreCase(tls, "expir")) << tls;
}

}  // namespace
}  // namespace speedmimi::test
