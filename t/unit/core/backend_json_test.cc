#include "core/backend_json.h"

#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "core/config.h"

namespace speedmimi::core {
namespace {

using std::chrono::milliseconds;

const KnownNames kKnown{{"weight"}};

JsonPtr parse(const std::string& text) {
  json_error_t error;
  JsonPtr value(json_loads(text.c_str(), JSON_DECODE_ANY, &error));
  EXPECT_NE(value, nullptr) << text << ": " << error.text;
  return value;
}

// A backend with every field away from its default.
BackendConfig unusual() {
  BackendConfig b;
  b.id = "b7";
  b.name = "Backend Seven";
  b.host = "10.0.0.7";
  b.port = 8087;
  b.weight = 70;
  b.scheme = "https";
  b.active = false;
  b.max_conn = 700;
  b.max_fails = 7;
  b.fail_timeout = milliseconds(1500);
  b.slow_start = milliseconds(30'000);
  b.tls_verify = false;
  b.ca_file = "certs/private ca.pem";
  b.keepalive = 17;
  b.health_check.enabled = true;
  b.health_check.path = "/ping";
  b.health_check.interval = milliseconds(2000);
  b.health_check.timeout = milliseconds(250);
  b.health_check.failures = 4;
  b.health_check.successes = 2;
  return b;
}

void expectSame(const BackendConfig& a, const BackendConfig& b) {
  EXPECT_EQ(a.id, b.id);
  EXPECT_EQ(a.name, b.name);
  EXPECT_EQ(a.host, b.host);
  EXPECT_EQ(a.port, b.port);
  EXPECT_EQ(a.weight, b.weight);
  EXPECT_EQ(a.scheme, b.scheme);
  EXPECT_EQ(a.active, b.active);
  EXPECT_EQ(a.max_conn, b.max_conn);
  EXPECT_EQ(a.max_fails, b.max_fails);
  EXPECT_EQ(a.fail_timeout, b.fail_timeout);
  EXPECT_EQ(a.slow_start, b.slow_start);
  EXPECT_EQ(a.tls_verify, b.tls_verify);
  EXPECT_EQ(a.ca_file, b.ca_file);
  EXPECT_EQ(a.keepalive, b.keepalive);
  EXPECT_EQ(a.health_check.enabled, b.health_check.enabled);
  EXPECT_EQ(a.health_check.path, b.health_check.path);
  EXPECT_EQ(a.health_check.interval, b.health_check.interval);
  EXPECT_EQ(a.health_check.timeout, b.health_check.timeout);
  EXPECT_EQ(a.health_check.failures, b.health_check.failures);
  EXPECT_EQ(a.health_check.successes, b.health_check.successes);
}

TEST(BackendJson, ReadsEveryKey) {
  JsonPtr object = parse(R"({"id": "b7", "name": "Backend Seven", "host": "10.0.0.7",
      "port": 8087, "weight": 70, "scheme": "https", "active": false, "max_conn": 700,
      "max_fails": 7, "fail_timeout": "1500ms", "slow_start": "30s", "tls_verify": false,
      "ca_file": "certs/private ca.pem", "keepalive": 17,
      "health_check": {"path": "/ping", "interval": "2s", "timeout": 250, "failures": 4,
                       "successes": 2}})");
  BackendConfig b;
  std::string error;
  ASSERT_TRUE(backendFromJson(object.get(), "backend", b, error)) << error;
  expectSame(b, unusual());
}

TEST(BackendJson, APartialUpdateChangesOnlyTheKeysGiven) {
  BackendConfig b = unusual();
  JsonPtr object = parse(R"({"weight": 200, "health_check": {"timeout": "1s"}})");
  std::string error;
  ASSERT_TRUE(backendFromJson(object.get(), "backend", b, error)) << error;
  BackendConfig expected = unusual();
  expected.weight = 200;
  expected.health_check.timeout = milliseconds(1000);
  expectSame(b, expected);

  BackendConfig unchanged = unusual();
  ASSERT_TRUE(backendFromJson(parse("{}").get(), "backend", unchanged, error)) << error;
  expectSame(unchanged, unusual());
}

TEST(BackendJson, DurationsAreYamlTextOrMilliseconds) {
  const struct {
    const char* json;
    long long ms;
  } kCases[] = {{R"("500ms")", 500},
                {R"("10s")", 10'000},
                {R"("2m")", 120'000},
                {R"("1h")", 3'600'000},
                {R"("7")", 7'000},
                {"1500", 1'500},
                {"1", 1},
                {R"("2147483647s")", 2'147'483'647'000LL}};
  for (const auto& c : kCases) {
    BackendConfig b;
    std::string error;
    JsonPtr object = parse(std::string(R"({"fail_timeout": )") + c.json + "}");
    ASSERT_TRUE(backendFromJson(object.get(), "backend", b, error)) << c.json << ": " << error;
    EXPECT_EQ(b.fail_timeout.count(), c.ms) << c.json;
  }
}

// slow_start is a duration too, where 0 means off.
TEST(BackendJson, SlowStartIsADurationFromZero) {
  const struct {
    const char* json;
    long long ms;
  } kCases[] = {{R"("0s")", 0}, {"0", 0}, {R"("1500ms")", 1'500}, {R"("2m")", 120'000}, {"1", 1}};
  for (const auto& c : kCases) {
    BackendConfig b = unusual();
    std::string error;
    JsonPtr object = parse(std::string(R"({"slow_start": )") + c.json + "}");
    ASSERT_TRUE(backendFromJson(object.get(), "backend", b, error)) << c.json << ": " << error;
    EXPECT_EQ(b.slow_start.count(), c.ms) << c.json;
  }
}

TEST(BackendJson, NullHealthCheckTurnsChecksOffAndForgetsThem) {
  BackendConfig b = unusual();
  std::string error;
  ASSERT_TRUE(backendFromJson(parse(R"({"health_check": null})").get(), "backend", b, error))
      << error;
  EXPECT_FALSE(b.health_check.enabled);
  EXPECT_EQ(b.health_check.path, "/health");
  EXPECT_EQ(b.health_check.interval, milliseconds(30'000));
  EXPECT_EQ(json_object_get(backendToJson(b).get(), "health_check"), nullptr);

  // On again: from the defaults, as a YAML block without those keys.
  ASSERT_TRUE(
      backendFromJson(parse(R"({"health_check": {"interval": "5s"}})").get(), "backend", b, error))
      << error;
  EXPECT_TRUE(b.health_check.enabled);
  EXPECT_EQ(b.health_check.path, "/health");
  EXPECT_EQ(b.health_check.interval, milliseconds(5000));
  EXPECT_EQ(b.health_check.timeout, milliseconds(5000));
  EXPECT_EQ(b.health_check.failures, 3);
  EXPECT_EQ(b.health_check.successes, 1);

  BackendConfig empty_block;
  ASSERT_TRUE(
      backendFromJson(parse(R"({"health_check": {}})").get(), "backend", empty_block, error));
  EXPECT_TRUE(empty_block.health_check.enabled);
}

TEST(BackendJson, RefusesEachBadValueWithItsFieldPathAndChangesNothing) {
  const struct {
    const char* json;
    const char* error;
  } kCases[] = {
      {R"({"colour": "red"})", "backend.colour: is not a known key"},
      {R"({"ca_file": 1})", "backend.ca_file: must be a string"},
      {R"({"id": ""})", "backend.id: must be a non-empty string"},
      {R"({"id": 5})", "backend.id: must be a non-empty string"},
      {R"({"name": 3})", "backend.name: must be a string"},
      {R"({"name": null})", "backend.name: must be a string"},
      {R"({"host": ""})", "backend.host: must be a non-empty string"},
      {R"({"host": ["a"]})", "backend.host: must be a non-empty string"},
      {R"({"port": "8080"})", "backend.port: must be an integer 1..65535"},
      {R"({"port": 0})", "backend.port: must be an integer 1..65535"},
      {R"({"port": 65536})", "backend.port: must be an integer 1..65535"},
      {R"({"port": 8080.0})", "backend.port: must be an integer 1..65535"},
      {R"({"port": true})", "backend.port: must be an integer 1..65535"},
      {R"({"weight": 0})", "backend.weight: must be an integer 1..10000"},
      {R"({"weight": 10001})", "backend.weight: must be an integer 1..10000"},
      {R"({"scheme": "ftp"})", R"(backend.scheme: must be "http" or "https")"},
      {R"({"scheme": "HTTP"})", R"(backend.scheme: must be "http" or "https")"},
      {R"({"scheme": 1})", R"(backend.scheme: must be "http" or "https")"},
      {R"({"active": 1})", "backend.active: must be true or false"},
      {R"({"active": "true"})", "backend.active: must be true or false"},
      {R"({"max_conn": -1})", "backend.max_conn: must be an integer 0..2147483647"},
      {R"({"max_conn": 2147483648})", "backend.max_conn: must be an integer 0..2147483647"},
      {R"({"max_fails": -1})", "backend.max_fails: must be an integer 0..1000"},
      {R"({"max_fails": 1001})", "backend.max_fails: must be an integer 0..1000"},
      {R"({"fail_timeout": "10x"})", R"(backend.fail_timeout: must be a duration such as "10s")"},
      {R"({"fail_timeout": "1.5s"})", R"(backend.fail_timeout: must be a duration such as "10s")"},
      {R"({"fail_timeout": "99999999999h"})",
       R"(backend.fail_timeout: must be a duration such as "10s")"},
      {R"({"fail_timeout": 2147483647001})",
       R"(backend.fail_timeout: must be a duration such as "10s")"},
      {R"({"fail_timeout": true})", R"(backend.fail_timeout: must be a duration such as "10s")"},
      {R"({"fail_timeout": 1.5})", R"(backend.fail_timeout: must be a duration such as "10s")"},
      {R"({"fail_timeout": "0s"})", "backend.fail_timeout: must be at least 1ms"},
      {R"({"fail_timeout": 0})", "backend.fail_timeout: must be at least 1ms"},
      {R"({"fail_timeout": -5})", "backend.fail_timeout: must be at least 1ms"},
      {R"({"slow_start": -1})", "backend.slow_start: must be at least 0s"},
      {R"({"slow_start": "-1s"})", R"(backend.slow_start: must be a duration such as "10s")"},
      {R"({"slow_start": "soon"})", R"(backend.slow_start: must be a duration such as "10s")"},
      {R"({"slow_start": null})", R"(backend.slow_start: must be a duration such as "10s")"},
      {R"({"tls_verify": "no"})", "backend.tls_verify: must be true or false"},
      {R"({"keepalive": -1})", "backend.keepalive: must be an integer 0..1000000"},
      {R"({"keepalive": 1000001})", "backend.keepalive: must be an integer 0..1000000"},
      {R"({"health_check": 5})", "backend.health_check: must be an object or null"},
      {R"({"health_check": true})", "backend.health_check: must be an object or null"},
      {R"({"health_check": {"x": 1}})", "backend.health_check.x: is not a known key"},
      {R"({"health_check": {"path": "health"}})",
       R"(backend.health_check.path: must be a path starting with "/")"},
      {R"({"health_check": {"path": ""}})",
       R"(backend.health_check.path: must be a path starting with "/")"},
      {R"({"health_check": {"path": 1}})",
       R"(backend.health_check.path: must be a path starting with "/")"},
      {R"({"health_check": {"interval": "soon"}})",
       R"(backend.health_check.interval: must be a duration such as "10s")"},
      {R"({"health_check": {"interval": 0}})",
       "backend.health_check.interval: must be at least 1ms"},
      {R"({"health_check": {"timeout": "0ms"}})",
       "backend.health_check.timeout: must be at least 1ms"},
      {R"({"health_check": {"failures": 0}})",
       "backend.health_check.failures: must be an integer 1..1000"},
      {R"({"health_check": {"successes": 1001}})",
       "backend.health_check.successes: must be an integer 1..1000"},
      {"[]", "backend: must be an object"},
      {"null", "backend: must be an object"},
      // The first bad key is the one reported; the good one before it is not applied either.
      {R"({"weight": 5, "port": 0})", "backend.port: must be an integer 1..65535"},
  };
  for (const auto& c : kCases) {
    BackendConfig b = unusual();
    std::string error;
    JsonPtr object = parse(c.json);
    EXPECT_FALSE(backendFromJson(object.get(), "backend", b, error)) << c.json;
    EXPECT_EQ(error, c.error) << c.json;
    expectSame(b, unusual());
  }
  BackendConfig b;
  std::string error;
  EXPECT_FALSE(backendFromJson(nullptr, "backends[3].added", b, error));
  EXPECT_EQ(error, "backends[3].added: must be an object");
  EXPECT_FALSE(backendFromJson(parse(R"({"health_check": {"timeout": "x"}})").get(),
                               "backends[3].added", b, error));
  EXPECT_EQ(error, R"(backends[3].added.health_check.timeout: must be a duration such as "10s")");
}

TEST(BackendJson, WritesEveryKeyWithItsEffectiveValue) {
  BackendConfig b;
  b.id = "backend1";
  b.host = "127.0.0.1";
  b.port = 8081;
  EXPECT_EQ(jsonText(backendToJson(b).get()),
            R"({"id":"backend1","name":"","host":"127.0.0.1","port":8081,"weight":1,)"
            R"("scheme":"http","active":true,"max_conn":0,"max_fails":1,"fail_timeout":"10s",)"
            R"("slow_start":"0s","tls_verify":true,"ca_file":"","keepalive":0})");
  EXPECT_EQ(jsonText(backendToJson(unusual()).get()),
            R"({"id":"b7","name":"Backend Seven","host":"10.0.0.7","port":8087,"weight":70,)"
            R"("scheme":"https","active":false,"max_conn":700,"max_fails":7,)"
            R"("fail_timeout":"1500ms","slow_start":"30s","tls_verify":false,)"
            R"("ca_file":"certs/private ca.pem","keepalive":17,)"
            R"("health_check":{"path":"/ping","interval":"2s","timeout":"250ms","failures":4,)"
            R"("successes":2}})");
}

TEST(BackendJson, RoundTripsThroughJson) {
  BackendConfig plain;
  plain.id = "p";
  plain.host = "h";
  plain.port = 1;
  for (const BackendConfig& original : {unusual(), plain}) {
    JsonPtr json = backendToJson(original);
    ASSERT_NE(json, nullptr);
    BackendConfig back;
    std::string error;
    ASSERT_TRUE(backendFromJson(json.get(), "backend", back, error)) << error;
    expectSame(back, original);
  }
}

TEST(BackendJson, NonUtf8TextCannotBeWritten) {
  BackendConfig b = unusual();
  b.name = "\xff";
  EXPECT_EQ(backendToJson(b), nullptr);
}

// The ranges are those of the YAML reader in core/config.cc: each bound is accepted by both,
// and one past it refused by both.
TEST(BackendJson, AcceptsExactlyWhatTheYamlAccepts) {
  const struct {
    std::string key;  // under the backend; "health_check.x" inside its block
    std::vector<std::string> accepted, refused;
  } kCases[] = {
      {"port", {"1", "65535"}, {"0", "65536"}},
      {"weight", {"1", "10000"}, {"0", "10001"}},
      {"max_conn", {"0", "2147483647"}, {"-1", "2147483648"}},
      {"max_fails", {"0", "1000"}, {"-1", "1001"}},
      {"keepalive", {"0", "1000000"}, {"-1", "1000001"}},
      {"fail_timeout", {"\"1ms\"", "\"2147483647s\""}, {"\"0ms\"", "\"2147483648s\""}},
      {"slow_start", {"\"0s\"", "\"2147483647s\""}, {"\"2147483648s\""}},
      {"health_check.interval", {"\"1ms\"", "\"2147483647s\""}, {"\"0s\"", "\"2147483648s\""}},
      {"health_check.timeout", {"\"1ms\""}, {"\"0ms\""}},
      {"health_check.failures", {"1", "1000"}, {"0", "1001"}},
      {"health_check.successes", {"1", "1000"}, {"0", "1001"}},
  };
  for (const auto& c : kCases) {
    const bool nested = c.key.rfind("health_check.", 0) == 0;
    const std::string key = nested ? c.key.substr(13) : c.key;
    for (const bool accept : {true, false}) {
      for (const std::string& value : accept ? c.accepted : c.refused) {
        const std::string pair = key + ": " + value;
        const std::string field = nested ? "health_check: {" + pair + "}" : pair;
        const std::string yaml = "backends:\n  u:\n    - {host: h, " +
                                 std::string(key == "port" ? "" : "port: 80, ") + field +
                                 "}\nrouting:\n  r: {upstream: u}\n";
        bool yaml_ok = true;
        try {
          parseConfig(yaml, "t.yaml", kKnown);
        } catch (const ConfigError&) {
          yaml_ok = false;
        }
        const std::string json = nested ? R"({"health_check": {")" + key + "\": " + value + "}}"
                                        : "{\"" + key + "\": " + value + "}";
        BackendConfig b;
        std::string error;
        const bool json_ok = backendFromJson(parse(json).get(), "backend", b, error);
        EXPECT_EQ(yaml_ok, accept) << yaml;
        EXPECT_EQ(json_ok, accept) << json << ": " << error;
      }
    }
  }
}

}  // namespace
}  // namespace speedmimi::core
