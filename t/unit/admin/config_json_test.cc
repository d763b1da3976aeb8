#include "admin/config_json.h"

#include <gtest/gtest.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include <string>
#include <vector>

#include "core/atomic_file.h"
#include "core/config_yaml.h"

namespace speedmimi::admin {
namespace {

using core::Config;
using core::JsonPtr;

// See t/unit/core/config_test.cc: the tree's root is what precedes "t/unit/admin/".
std::string sourcePath(const std::string& relative) {
  const std::string self = __FILE__;
  return self.substr(0, self.rfind("t/unit/admin/config_json_test.cc")) + relative;
}

const core::KnownNames kKnown{
    {"weight", "round_robin", "least_connections", "least_connections_weight", "ip_hash",
     "performance_least_connections_weight", "performance", "random", "least_latency"}};

// The example of the original README, verbatim.
constexpr char kReadmeExample[] = R"(server:
  host: "0.0.0.0"
  port: 8080
  read_timeout: 30s
  write_timeout: 30s
  max_conn: 10000
  real_ip_header: "X-Real-IP"
  trusted_proxies:
    - "127.0.0.1/32"
    - "10.0.0.0/8"

ssl:
  enabled: false
  cert_file: "certs/server.crt"
  key_file: "certs/server.key"

backends:
  default:
    - id: "backend1"
      name: "Backend Server 1"
      host: "127.0.0.1"
      port: 8081
      weight: 100
      scheme: "http"
      active: true
      max_conn: 1000
      health_check:
        path: "/health"
        interval: 30s
        timeout: 5s
        failures: 3

routing:
  default:
    path: "/"
    upstream: "default"
    load_balancer: "least_connections_weight"
    protocols:
      websocket: "ip_hash"
      sse: "ip_hash"

grpc:
  enabled: true
  host: "127.0.0.1"
  port: 9090
)";

// Every key of DESIGN §7 away from its default, with text that reads like null, a number or a
// boolean, YAML indicators, quotes and non-ASCII letters. ssl.enabled and scheme https are
// TlsSettingsRoundTrip's.
constexpr char kEveryKey[] = R"(server:
  host: "::"
  port: 80
  read_timeout: 1500ms
  write_timeout: 90s
  max_conn: 500
  real_ip_header: ""
  trusted_proxies: ["10.0.0.0/8", "fd00::/8", "::/0"]
  workers: 3
  idle_timeout: 2m
  header_timeout: 1h
  connect_timeout: 61s
  max_header_size: 100000
  max_headers: 50
  max_body_size: 0
  shutdown_timeout: 0
  shm_size: 1g
  pid_file: "/run/sm #1.pid"
  state_file: "- state.json"
  error_log: stderr
  log_level: emerg
  access_log: "off"
  access_log_format: json
  user: "null"
ssl:
  enabled: false
  cert_file: "a: b.crt"
  key_file: "'a'.key"
  port: 8443
  certificates:
    - {cert_file: b.crt, key_file: "\"b\".key"}
    - {cert_file: "*c.crt", key_file: "&c.key"}
  protocols: [TLSv1.3]
backends:
  api:
    - id: "~"
      name: "Ünïcode, \"quoted\""
      host: backend.internal
      port: 443
      weight: 10000
      scheme: http
      active: false
      max_conn: 7
      max_fails: 0
      fail_timeout: 2500ms
      slow_start: 45s
      tls_verify: false
      ca_file: "certs/ca: ünïcode.pem"
      keepalive: 32
      health_check: {path: "/up?x=1&y=#2", interval: 2s, timeout: 500ms, failures: 5, successes: 2}
    - {host: "::1", port: 8081}
  "8080": []
  "true":
routing:
  ws:
    path: /ws
    host: Example.COM
    upstream: api
    load_balancer: ip_hash
    protocols: {websocket: random, sse: least_latency, http: round_robin, https: performance}
    retries: 0
    retry_on: [connect-failure, 502, "503", 5xx]
    retry_budget: 100
  "null": {path: "/a b", upstream: "8080", retries: 10, retry_on: [], retry_budget: 0}
  "yes": {path: /t, upstream: "true", load_balancer: least_connections}
admin:
  enabled: false
  host: 0.0.0.0
  port: 9191
  auth_token: "s3cr3t: #x"
  allow: [10.1.0.0/16, "::1"]
)";

JsonPtr parseJson(const std::string& text) {
  json_error_t error;
  JsonPtr value(json_loads(text.c_str(), JSON_DECODE_ANY, &error));
  EXPECT_TRUE(value) << error.line << ":" << error.column << ": " << error.text << "\n" << text;
  return value;
}

// configFromJson's outcome: "" and `out` set, or the error.
std::string fromJson(const json_t* config, Config& out) {
  std::string error;
  if (configFromJson(config, "api.yaml", kKnown, out, error)) {
    EXPECT_EQ(error, "");
    return "";
  }
  EXPECT_NE(error, "");
  return error;
}

std::string errorOf(const std::string& json) {
  const JsonPtr value = parseJson(json);
  Config out;
  const std::string error = fromJson(value.get(), out);
  return error.empty() ? "(no error)" : error;
}

// YAML -> Config -> JSON -> Config: the same Config, by configToYaml, which writes every key.
void expectRoundTrip(const Config& original) {
  const JsonPtr json = configToJson(original);
  ASSERT_TRUE(json);
  Config again;
  ASSERT_EQ(fromJson(json.get(), again), "") << core::jsonText(json.get());
  EXPECT_EQ(again.file, "api.yaml");
  EXPECT_EQ(core::configToYaml(again), core::configToYaml(original));
  EXPECT_EQ(core::jsonText(configToJson(again).get()), core::jsonText(json.get()));
}

TEST(ConfigToJson, SeedConfigRoundTrips) {
  expectRoundTrip(core::loadConfigFile(sourcePath("conf/speedmimi.yaml"), kKnown));
  expectRoundTrip(core::parseConfig(kReadmeExample, "readme.yaml", kKnown));
}

TEST(ConfigToJson, EveryKeyRoundTrips) {
  const Config c = core::parseConfig(kEveryKey, "every.yaml", kKnown);
  expectRoundTrip(c);
  // Text stays text whatever it looks like; numbers and booleans keep their types.
  const JsonPtr json = configToJson(c);
  const std::string text = core::jsonText(json.get());
  for (
      const char* expected : {
          R"("user":"null")",
          R"("state_file":"- state.json")",
          R"("max_body_size":"0")",
          R"("shutdown_timeout":"0s")",
          R"("max_header_size":"100000")",
          R"("workers":3)",
          R"("read_timeout":"1500ms")",
          R"("idle_timeout":"2m")",
          R"("shm_size":"1g")",
          R"("port":8443)",
          R"("keepalive":32)",
          R"("slow_start":"45s")",
          R"("slow_start":"0s")",
          R"("id":"~")",
          R"("active":false)",
          R"("8080":[])",
          R"("true":[])",
          R"("null":{"path":"/a b","host":"","upstream":"8080")",
          R"("protocols":{"http":"round_robin","https":"performance","sse":"least_latency","websocket":"random"})",
          R"("allow":["10.1.0.0/16","::1/128"])",
          // In the order of the conditions, whatever the order written.
          R"("retries":0,"retry_on":["connect-failure","5xx","502","503"],"retry_budget":100)",
          R"("retries":10,"retry_on":[],"retry_budget":0)",
      }) {
    EXPECT_NE(text.find(expected), std::string::npos) << expected << "\n" << text;
  }
}

// The seed config as GET /api/v1/config shows it: every key, in the YAML's order, with its type.
TEST(ConfigToJson, ShowsEveryEffectiveValueWithItsType) {
  const Config c = core::loadConfigFile(sourcePath("conf/speedmimi.yaml"), kKnown);
  EXPECT_EQ(
      core::jsonText(configToJson(c).get()),
      R"({"server":{"host":"0.0.0.0","port":8080,"read_timeout":"30s","write_timeout":"30s",)"
      R"("max_conn":10000,"real_ip_header":"X-Real-IP","trusted_proxies":["127.0.0.1/32",)"
      R"("10.0.0.0/8"],"workers":"auto","idle_timeout":"75s","header_timeout":"10s",)"
      R"("connect_timeout":"5s","max_header_size":"16k","max_headers":100,"max_body_size":"100m",)"
      R"("shutdown_timeout":"30s","shm_size":"16m","pid_file":"logs/speedmimi.pid",)"
      R"("state_file":"logs/speedmimi.state.json","error_log":"logs/error.log","log_level":"info",)"
      R"("access_log":"logs/access.log","access_log_format":"combined","user":""},)"
      R"("ssl":{"enabled":false,"cert_file":"certs/server.crt","key_file":"certs/server.key",)"
      R"("port":0,"certificates":[],"protocols":["TLSv1.2","TLSv1.3"]},)"
      R"("backends":{"default":[{"id":"backend1","name":"Backend Server 1","host":"127.0.0.1",)"
      R"("port":8081,"weight":100,"scheme":"http","active":true,"max_conn":0,"max_fails":1,)"
      R"("fail_timeout":"10s","slow_start":"0s","tls_verify":true,"ca_file":"","keepalive":0},)"
      R"({"id":"backend2","name":"Backend Server 2","host":"127.0.0.1","port":8082,"weight":100,)"
      R"("scheme":"http","active":true,"max_conn":0,"max_fails":1,"fail_timeout":"10s",)"
      R"("slow_start":"0s","tls_verify":true,"ca_file":"",)"
      R"("keepalive":0}]},"routing":{"default":{"path":"/","host":"","upstream":"default",)"
      R"("load_balancer":"least_connections_weight","protocols":{},"retries":1,)"
      R"("retry_on":["connect-failure","reset","timeout","invalid-response"],"retry_budget":20}},)"
      R"("admin":{"enabled":true,"host":"127.0.0.1","port":9090,"auth_token":"",)"
      R"("allow":["127.0.0.1/32","::1/128"]}})");
  // A health_check block appears where the backend has one.
  const Config readme = core::parseConfig(kReadmeExample, "readme.yaml", kKnown);
  EXPECT_NE(core::jsonText(configToJson(readme).get())
                .find(R"("health_check":{"path":"/health","interval":"30s","timeout":"5s",)"
                      R"("failures":3,"successes":1})"),
            std::string::npos);
}

// The README's PUT body gives only some sections and keys: the rest take their defaults, as
// in a YAML file that omits them.
TEST(ConfigFromJson, PartialBodyTakesTheDefaults) {
  const JsonPtr body = parseJson(R"({
    "server": {"host": "0.0.0.0", "port": 8080, "read_timeout": "10s"},
    "backends": {"default": [
      {"id": "backend1", "host": "127.0.0.1", "port": 8081, "weight": 100},
      {"id": "backend3", "host": "127.0.0.1", "port": 8083, "weight": 50}]},
    "routing": {"default": {"path": "/", "upstream": "default",
                            "load_balancer": "least_connections_weight"}}})");
  Config c;
  ASSERT_EQ(fromJson(body.get(), c), "");
  const Config same = core::parseConfig(
      "server: {host: 0.0.0.0, port: 8080, read_timeout: 10s}\n"
      "backends:\n"
      "  default:\n"
      "    - {id: backend1, host: 127.0.0.1, port: 8081, weight: 100}\n"
      "    - {id: backend3, host: 127.0.0.1, port: 8083, weight: 50}\n"
      "routing:\n"
      "  default: {path: /, upstream: default, load_balancer: least_connections_weight}\n",
      "api.yaml", kKnown);
  EXPECT_EQ(core::configToYaml(c), core::configToYaml(same));
  EXPECT_EQ(c.server.read_timeout, std::chrono::milliseconds(10'000));
  EXPECT_EQ(c.server.write_timeout, std::chrono::milliseconds(30'000));  // a default
  EXPECT_EQ(c.backends.at("default")[1].weight, 50);
  EXPECT_EQ(c.backends.at("default")[1].scheme, "http");  // a default
  EXPECT_TRUE(c.admin.enabled);                           // absent: the default listener
  EXPECT_EQ(c.admin.port, 9090);
  EXPECT_EQ(c.file, "api.yaml");
  EXPECT_TRUE(c.marks.empty());  // no positions: they would be lines of a text nobody sees
  EXPECT_EQ(c.backends.at("default")[0].mark.line, 0);
  EXPECT_EQ(c.routes[0].mark.line, 0);
}

// A number where a duration or size is wanted reads as the same plain scalar in YAML would: a
// bare number of seconds, of bytes. Text that looks like a number reads as the number's text,
// as `port: "8080"` does in a file.
TEST(ConfigFromJson, ScalarsReadAsTheSamePlainYaml) {
  const JsonPtr body = parseJson(R"({
    "server": {"port": "8081", "read_timeout": 45, "shutdown_timeout": 0, "max_body_size": 2048,
               "max_header_size": "32k", "workers": 2, "user": null, "real_ip_header": ""},
    "backends": {"u": [{"host": "127.0.0.1", "port": 8081, "active": false,
                        "health_check": null}]},
    "routing": {"r": {"upstream": "u", "protocols": {"sse": "random"}}}})");
  Config c;
  ASSERT_EQ(fromJson(body.get(), c), "");
  EXPECT_EQ(c.server.port, 8081);
  EXPECT_EQ(c.server.read_timeout, std::chrono::milliseconds(45'000));
  EXPECT_EQ(c.server.shutdown_timeout, std::chrono::milliseconds(0));
  EXPECT_EQ(c.server.max_body_size, 2048u);
  EXPECT_EQ(c.server.max_header_size, 32u * 1024);
  EXPECT_EQ(c.server.workers, 2);
  EXPECT_EQ(c.server.user, "");  // null: an empty value
  EXPECT_EQ(c.server.real_ip_header, "");
  const core::BackendConfig& b = c.backends.at("u")[0];
  EXPECT_EQ(b.id, "127.0.0.1:8081");  // derived, as in a file
  EXPECT_FALSE(b.active);
  EXPECT_TRUE(b.health_check.enabled);  // `health_check:` alone turns checks on with defaults
  EXPECT_EQ(b.health_check.path, "/health");
  EXPECT_EQ(c.routes[0].protocols, (std::map<std::string, std::string>{{"sse", "random"}}));
  EXPECT_EQ(c.routes[0].load_balancer, "weight");
}

// Each refusal names the value at fault by its path under "config", with -t's message.
TEST(ConfigFromJson, ErrorsNameTheFieldPath) {
  const std::string backend = R"({"id": "backend1", "host": "127.0.0.1", "port": 8081})";
  const std::string routing = R"("routing": {"default": {"upstream": "default"}})";
  auto withBackend = [&](const std::string& b, const std::string& more = "") {
    return R"({"backends": {"default": [)" + b + "]}, " + routing + more + "}";
  };
  const struct {
    std::string json;
    std::string error;
  } cases[] = {
      {withBackend(R"({"id": "backend1", "host": "127.0.0.1", "port": 99999})"),
       "config.backends.default[0].port: 99999 is out of range 1..65535"},
      {withBackend(backend, R"(, "server": {"port": 0})"),
       "config.server.port: 0 is out of range 1..65535"},
      {withBackend(backend, R"(, "server": {"colour": "blue"})"),
       "config.server.colour: key 'colour' is not known in 'server'"},
      {withBackend(backend, R"(, "servers": {"port": 8080})"),
       "config.servers: key 'servers' is not known at the top level"},
      {withBackend(R"({"id": "b", "host": "h", "port": 1, "wieght": 2})"),
       "config.backends.default[0].wieght: key 'wieght' is not known in 'backends.default[0]'"},
      {withBackend(R"({"id": "b", "host": "h", "port": 1, "health_check": {"pth": "/"}})"),
       "config.backends.default[0].health_check.pth: key 'pth' is not known in "
       "'backends.default[0].health_check'"},
      {withBackend(backend, R"(, "server": {"host": {"ip": "0.0.0.0"}})"),
       "config.server.host: expected a scalar, got a mapping"},
      {withBackend(backend, R"(, "server": {"host": ["0.0.0.0"]})"),
       "config.server.host: expected a scalar, got a sequence"},
      {withBackend(backend, R"(, "server": [])"),
       "config.server: expected a mapping, got a sequence"},
      {withBackend(backend, R"(, "server": {"port": "eighty"})"),
       "config.server.port: expected an integer, got 'eighty'"},
      {withBackend(backend, R"(, "server": {"port": 80.5})"),
       "config.server.port: expected an integer, got '80.5'"},
      {withBackend(backend, R"(, "server": {"port": true})"),
       "config.server.port: expected an integer, got 'true'"},
      {withBackend(backend, R"(, "server": {"port": null})"),
       "config.server.port: expected an integer, got an empty value"},
      {withBackend(backend, R"(, "server": {"read_timeout": 1.5})"),
       "config.server.read_timeout: invalid duration '1.5' (expected a whole number with ms, s, m "
       "or h, e.g. 30s)"},
      {withBackend(backend, R"(, "server": {"trusted_proxies": ["10.0.0.0/8", "nope"]})"),
       "config.server.trusted_proxies[1]: 'nope' is not an IPv4 or IPv6 CIDR block"},
      {withBackend(backend, R"(, "ssl": {"enabled": "yes"})"),
       "config.ssl.enabled: expected true or false, got 'yes'"},
      {R"({"backends": {"default": [)" + backend +
           R"(]}, "routing": {"default": {"upstream": "nope"}}})",
       "config.routing.default.upstream: upstream 'nope' is not defined in 'backends'"},
      {withBackend(backend + ", " + R"({"id": "backend1", "host": "127.0.0.1", "port": 8082})"),
       "config.backends.default[1]: id 'backend1' is already used by 'backends.default[0]'"},
      {R"({"backends": {"default": [)" + backend +
           R"(]}, "routing": {"default": {"upstream": "default", "load_balancer": "fastest"}}})",
       "config.routing.default.load_balancer: 'fastest' is not a known load balancer"},
      {R"({"backends": {"default": [)" + backend +
           R"(]}, "routing": {"default": {"upstream": "default", "protocols": {"sse": "x"}}}})",
       "config.routing.default.protocols.sse: 'x' is not a known load balancer"},
      {R"({"backends": {"default": [)" + backend +
           R"(]}, "routing": {"default": {"upstream": "default", )"
           R"("retry_on": ["reset", "5xx", "foo"]}}})",
       "config.routing.default.retry_on[2]: unknown retry condition 'foo' (one of "
       "connect-failure, reset, timeout, invalid-response, 5xx, 502, 503, 504)"},
      {R"({"backends": {"default": [)" + backend +
           R"(]}, "routing": {"default": {"upstream": "default", )"
           R"("retry_on": ["reset", "timeout", "reset"]}}})",
       "config.routing.default.retry_on[2]: retry condition 'reset' is repeated (first at "
       "'routing.default.retry_on[0]')"},
      {R"({"backends": {"default": [)" + backend +
           R"(]}, "routing": {"default": {"upstream": "default", "retry_budget": 101}}})",
       "config.routing.default.retry_budget: 101 is out of range 0..100"},
      {withBackend(R"({"id": "b", "port": 8081})"),
       "config.backends.default[0]: key 'host' is required"},
      {withBackend(backend, R"(, "admin": {"host": "0.0.0.0"})"),
       "config.admin.host: the management listener on '0.0.0.0' is not a loopback address; set "
       "'admin.auth_token' or use 127.0.0.1"},
      {withBackend(backend, R"(, "grpc": {"port": 9090}, "admin": {"port": 9091})"),
       "config.admin.port: 'admin.port' is 9091 but 'grpc.port' is 9090: grpc and admin name the "
       "same listener"},
      {R"({"backends": {"default": [)" + backend + "]}}",
       "config.routing: at least one route is required in 'routing'"},
      {"null", "config.routing: at least one route is required in 'routing'"},
      {"[]", "config: expected a mapping, got a sequence"},
      {R"("server: {port: 80}")", "config: expected a mapping, got 'server: {port: 80}'"},
  };
  for (const auto& c : cases) {
    EXPECT_EQ(errorOf(c.json), c.error) << c.json;
  }
  EXPECT_EQ(errorOf(withBackend(backend)), "(no error)");
}

// TLS settings go through as they are: the certificates are loaded by the caller (src/process),
// as -t loads them after parsing.
TEST(ConfigFromJson, TlsSettingsRoundTrip) {
  Config c = core::parseConfig(kEveryKey, "every.yaml", kKnown);
  c.ssl.enabled = true;
  c.ssl.port = 8443;
  c.backends.at("api")[1].scheme = "https";
  c.backends.at("api")[1].ca_file = "certs/private-ca.pem";
  Config out;
  EXPECT_EQ(fromJson(configToJson(c).get(), out), "");
  EXPECT_TRUE(out.ssl.enabled);
  EXPECT_EQ(out.ssl.port, 8443);
  EXPECT_EQ(out.backends.at("api")[1].scheme, "https");
  EXPECT_EQ(out.backends.at("api")[1].ca_file, "certs/private-ca.pem");
  c.ssl.port = c.server.port;
  EXPECT_EQ(fromJson(configToJson(c).get(), out),
            "config.ssl.port: " + std::to_string(c.server.port) +
                " is server.port; 0 makes server.port itself speak TLS");
}

TEST(ConfigFromJson, DeeplyNestedBodyIsRefused) {
  std::string deep = "1";
  for (int i = 0; i < 33; ++i) deep = "[" + deep + "]";
  EXPECT_EQ(errorOf(R"({"server": )" + deep + "}"), "config: nested more than 32 levels deep");
  // 32 levels is only junk to the reader.
  std::string fits = "1";
  for (int i = 0; i < 31; ++i) fits = "[" + fits + "]";
  EXPECT_EQ(errorOf(R"({"server": )" + fits + "}"),
            "config.server: expected a mapping, got a sequence");
  Config out;
  std::string error;
  EXPECT_FALSE(configFromJson(nullptr, "api.yaml", kKnown, out, error));
  EXPECT_EQ(error, "config: is required");
}

TEST(ConfigEtag, StableForEqualConfigsWhateverTheKeyOrder) {
  const Config seed = core::loadConfigFile(sourcePath("conf/speedmimi.yaml"), kKnown);
  const std::string etag = configEtag(seed);
  ASSERT_EQ(etag.size(), 18u);
  EXPECT_EQ(etag.front(), '"');
  EXPECT_EQ(etag.back(), '"');
  EXPECT_EQ(etag.substr(1, 16).find_first_not_of("0123456789abcdef"), std::string::npos) << etag;
  EXPECT_EQ(configEtag(seed), etag);
  // A fixed value: the first 64 bits of the SHA-256 of the canonical text, the same in every
  // process and on every machine (`sha256sum` of configToJson's text with sorted keys). It
  // changes when a key is added to the configuration; recompute it then.
  EXPECT_EQ(etag, "\"5310849a7736dd7f\"");

  // The same configuration written with keys and routes in other orders.
  const JsonPtr a = parseJson(R"({
    "server": {"port": 8080, "host": "0.0.0.0"},
    "backends": {"u": [{"id": "b1", "host": "127.0.0.1", "port": 8081, "weight": 5}],
                 "v": [{"port": 8082, "host": "127.0.0.1", "id": "b2"}]},
    "routing": {"r": {"upstream": "u", "path": "/"}, "s": {"path": "/s", "upstream": "v"}}})");
  const JsonPtr b = parseJson(R"({
    "routing": {"s": {"upstream": "v", "path": "/s"}, "r": {"path": "/", "upstream": "u"}},
    "backends": {"v": [{"id": "b2", "host": "127.0.0.1", "port": 8082}],
                 "u": [{"weight": 5, "port": 8081, "host": "127.0.0.1", "id": "b1"}]},
    "server": {"host": "0.0.0.0", "port": 8080}})");
  Config from_a;
  Config from_b;
  ASSERT_EQ(fromJson(a.get(), from_a), "");
  ASSERT_EQ(fromJson(b.get(), from_b), "");
  EXPECT_EQ(configEtag(from_a), configEtag(from_b));
  // And its round trip through the API's JSON.
  Config again;
  ASSERT_EQ(fromJson(configToJson(from_a).get(), again), "");
  EXPECT_EQ(configEtag(again), configEtag(from_a));
}

TEST(ConfigEtag, DiffersWhenAnyValueDiffers) {
  const Config base = core::parseConfig(kEveryKey, "every.yaml", kKnown);
  const std::string etag = configEtag(base);
  const std::vector<void (*)(Config&)> changes = {
      [](Config& c) { c.server.port = 81; },
      [](Config& c) { c.server.read_timeout = std::chrono::milliseconds(1501); },
      [](Config& c) { c.server.user = "nobody"; },
      [](Config& c) { c.server.trusted_proxies.pop_back(); },
      [](Config& c) { c.ssl.protocols = {"TLSv1.2"}; },
      [](Config& c) { c.backends.at("api")[0].weight = 9999; },
      [](Config& c) { c.backends.at("api")[0].active = true; },
      [](Config& c) { c.backends.at("api")[0].health_check.enabled = false; },
      [](Config& c) { std::swap(c.backends.at("api")[0], c.backends.at("api")[1]); },
      [](Config& c) { c.backends.erase("8080"); },
      [](Config& c) { c.routes[0].protocols.erase("sse"); },
      [](Config& c) { c.routes[1].retries = 9; },
      [](Config& c) { c.routes[0].retry_on &= ~core::kRetry502; },
      [](Config& c) { c.routes[1].retry_budget = 1; },
      [](Config& c) { c.admin.auth_token = "s3cr3t: #y"; },
  };
  for (size_t i = 0; i < changes.size(); ++i) {
    Config changed = base;
    changes[i](changed);
    EXPECT_NE(configEtag(changed), etag) << i;
  }
}

class WriteConfigFileTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/speedmimi-configjson-XXXXXX";
    ASSERT_NE(mkdtemp(tmpl), nullptr);
    dir_ = tmpl;
  }
  void TearDown() override {
    const std::string cmd = "rm -rf " + dir_;
    ASSERT_EQ(system(cmd.c_str()), 0);
  }
  std::string read(const std::string& path) {
    std::string contents;
    std::string error;
    EXPECT_TRUE(core::readWholeFile(path, contents, error)) << error;
    return contents;
  }
  static unsigned modeOf(const std::string& path) {
    struct stat st;
    EXPECT_EQ(stat(path.c_str(), &st), 0) << path;
    return st.st_mode & 0777;
  }
  std::string dir_;
};

TEST_F(WriteConfigFileTest, KeepsTheBackupAndWritesWhatParsesBack) {
  const std::string path = dir_ + "/speedmimi.yaml";
  const std::string seed = read(sourcePath("conf/speedmimi.yaml"));
  std::string error;
  ASSERT_TRUE(core::writeFileAtomically(path, seed, error, "", 0640)) << error;

  // A PUT's body: the seed config with a route added.
  const Config current = core::loadConfigFile(path, kKnown);
  const JsonPtr json = configToJson(current);
  json_t* routing = json_object_get(json.get(), "routing");
  ASSERT_EQ(json_object_set_new(routing, "api",
                                json_pack("{s:s, s:s}", "path", "/api", "upstream", "default")),
            0);
  Config wanted;
  ASSERT_EQ(fromJson(json.get(), wanted), "");
  wanted.file = path;

  ASSERT_TRUE(writeConfigFile(path, wanted, error)) << error;
  EXPECT_EQ(read(path + ".bak"), seed);  // the operator's file, comments and all
  EXPECT_EQ(read(path), core::configToYaml(wanted));
  EXPECT_EQ(modeOf(path), 0640u);  // an existing file keeps its mode
  const Config reread = core::loadConfigFile(path, kKnown);
  EXPECT_EQ(core::configToYaml(reread), core::configToYaml(wanted));
  ASSERT_EQ(reread.routes.size(), 2u);
  EXPECT_EQ(reread.routes[1].name, "api");
  EXPECT_EQ(configEtag(reread), configEtag(wanted));

  // The next write keeps the file this one wrote.
  Config next = reread;
  next.server.port = 8088;
  ASSERT_TRUE(writeConfigFile(path, next, error)) << error;
  EXPECT_EQ(read(path + ".bak"), core::configToYaml(wanted));
  EXPECT_EQ(core::loadConfigFile(path, kKnown).server.port, 8088);
}

TEST_F(WriteConfigFileTest, ANewFileWithATokenIsPrivate) {
  Config c = core::parseConfig(kReadmeExample, "readme.yaml", kKnown);
  std::string error;
  ASSERT_TRUE(writeConfigFile(dir_ + "/open.yaml", c, error)) << error;
  const mode_t mask = umask(0);  // a new file's mode is narrowed by it
  umask(mask);
  EXPECT_EQ(modeOf(dir_ + "/open.yaml"), 0644u & ~mask);
  EXPECT_NE(access((dir_ + "/open.yaml.bak").c_str(), F_OK), 0);  // nothing to keep
  c.admin.auth_token = "s3cret";
  ASSERT_TRUE(writeConfigFile(dir_ + "/private.yaml", c, error)) << error;
  EXPECT_EQ(modeOf(dir_ + "/private.yaml"), 0600u & ~mask);
}

TEST_F(WriteConfigFileTest, AFailureSaysWhereAndChangesNothing) {
  const Config c = core::parseConfig(kReadmeExample, "readme.yaml", kKnown);
  std::string error;
  EXPECT_FALSE(writeConfigFile(dir_ + "/missing/speedmimi.yaml", c, error));
  EXPECT_EQ(error.rfind(dir_ + "/missing/speedmimi.yaml", 0), 0u) << error;
  EXPECT_NE(error.find("No such file or directory"), std::string::npos) << error;

  const std::string path = dir_ + "/speedmimi.yaml";
  ASSERT_TRUE(core::writeFileAtomically(path, "old\n", error)) << error;
  Config bad = c;
  bad.server.user = "\xff";  // not UTF-8: libyaml refuses it
  EXPECT_FALSE(writeConfigFile(path, bad, error));
  EXPECT_EQ(error, path + ": cannot write the configuration as YAML: a value is not UTF-8");
  EXPECT_EQ(read(path), "old\n");
  EXPECT_NE(access((path + ".bak").c_str(), F_OK), 0);
}

}  // namespace
}  // namespace speedmimi::admin
