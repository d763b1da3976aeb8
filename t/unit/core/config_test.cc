#include "core/config.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <algorithm>
#include <string>
#include <vector>

namespace speedmimi::core {
namespace {

using std::chrono::milliseconds;

// A file of the source tree. Tests run with the build directory as the working directory, and
// __FILE__ is this file's path as the compiler saw it (relative to the build directory or
// absolute), so the tree's root is what precedes "t/unit/core/".
std::string sourcePath(const std::string& relative) {
  const std::string self = __FILE__;
  return self.substr(0, self.rfind("t/unit/core/config_test.cc")) + relative;
}

constexpr char kFile[] = "t.yaml";

// The balancer names validation accepts: handed in by the caller (the daemon passes the
// factory's list), so the core knows none of them itself.
const KnownNames kKnown{{"weight", "round_robin", "least_connections", "least_connections_weight",
                         "ip_hash", "performance_least_connections_weight", "performance",
                         "random", "least_latency"}};

// The smallest valid configuration; tests append sections to it.
constexpr char kMinimal[] =
    "backends:\n"
    "  u:\n"
    "    - {host: 127.0.0.1, port: 8081}\n"
    "routing:\n"
    "  r: {upstream: u}\n";

// what() of the ConfigError that parsing `yaml` throws, or "(no error)".
std::string errorOf(const std::string& yaml) {
  try {
    parseConfig(yaml, kFile, kKnown);
  } catch (const ConfigError& e) {
    return e.what();
  }
  return "(no error)";
}

std::vector<std::string> texts(const std::vector<Cidr>& blocks) {
  std::vector<std::string> out;
  for (const Cidr& b : blocks) out.push_back(b.toString());
  return out;
}

TEST(Config, SeedExampleLoadsAndMeansWhatItSays) {
  const std::string path = sourcePath("conf/speedmimi.yaml");
  const Config c = loadConfigFile(path, kKnown);
  EXPECT_EQ(c.file, path);

  EXPECT_EQ(c.server.host, "0.0.0.0");
  EXPECT_EQ(c.server.port, 8080);
  EXPECT_EQ(c.server.read_timeout, milliseconds(30'000));
  EXPECT_EQ(c.server.write_timeout, milliseconds(30'000));
  EXPECT_EQ(c.server.max_conn, 10000u);
  EXPECT_EQ(c.server.real_ip_header, "X-Real-IP");
  EXPECT_EQ(texts(c.server.trusted_proxies),
            (std::vector<std::string>{"127.0.0.1/32", "10.0.0.0/8"}));
  // Not in the seed: defaults.
  EXPECT_EQ(c.server.workers, 0);
  EXPECT_EQ(c.server.idle_timeout, milliseconds(75'000));
  EXPECT_EQ(c.server.log_level, LogLevel::kInfo);

  EXPECT_FALSE(c.ssl.enabled);
  EXPECT_EQ(c.ssl.cert_file, "certs/server.crt");
  EXPECT_EQ(c.ssl.key_file, "certs/server.key");
  EXPECT_EQ(c.ssl.port, 0);

  ASSERT_EQ(c.backends.size(), 1u);
  const std::vector<BackendConfig>& backends = c.backends.at("default");
  ASSERT_EQ(backends.size(), 2u);
  const struct {
    const char* id;
    const char* name;
    int port;
  } expected[] = {{"backend1", "Backend Server 1", 8081}, {"backend2", "Backend Server 2", 8082}};
  for (size_t i = 0; i < 2; ++i) {
    SCOPED_TRACE(i);
    EXPECT_EQ(backends[i].id, expected[i].id);
    EXPECT_EQ(backends[i].name, expected[i].name);
    EXPECT_EQ(backends[i].host, "127.0.0.1");
    EXPECT_EQ(backends[i].port, expected[i].port);
    EXPECT_EQ(backends[i].weight, 100);
    EXPECT_TRUE(backends[i].active);
    EXPECT_EQ(backends[i].scheme, "http");
    EXPECT_FALSE(backends[i].health_check.enabled);
    EXPECT_GT(backends[i].mark.line, 0);
  }
  EXPECT_LT(backends[0].mark.line, backends[1].mark.line);

  ASSERT_EQ(c.routes.size(), 1u);
  EXPECT_EQ(c.routes[0].name, "default");
  EXPECT_EQ(c.routes[0].path, "/");
  EXPECT_EQ(c.routes[0].host, "");
  EXPECT_EQ(c.routes[0].upstream, "default");
  EXPECT_EQ(c.routes[0].load_balancer, "least_connections_weight");
  EXPECT_TRUE(c.routes[0].protocols.empty());
  EXPECT_EQ(c.routes[0].retries, 1);

  EXPECT_TRUE(c.admin.enabled);
  EXPECT_EQ(c.admin.host, "127.0.0.1");
  EXPECT_EQ(c.admin.port, 9090);
  EXPECT_EQ(c.admin.auth_token, "");
  EXPECT_EQ(texts(c.admin.allow), (std::vector<std::string>{"127.0.0.1/32", "::1/128"}));
}

TEST(Config, DemoLoads) {
  const Config c = loadConfigFile(sourcePath("conf/demo.yaml"), kKnown);
  EXPECT_EQ(c.server.host, "127.0.0.1");
  EXPECT_EQ(c.server.port, 8080);
  EXPECT_EQ(c.server.workers, 2);
  EXPECT_EQ(c.server.error_log, "stderr");
  EXPECT_EQ(c.server.access_log, "off");
  EXPECT_EQ(c.server.pid_file, "logs/speedmimi.pid");
  ASSERT_EQ(c.routes.size(), 1u);
  EXPECT_EQ(c.routes[0].path, "/");
  EXPECT_EQ(c.routes[0].load_balancer, "weight");
  const std::vector<BackendConfig>& backends = c.backends.at(c.routes[0].upstream);
  ASSERT_EQ(backends.size(), 2u);
  EXPECT_EQ(backends[0].port, 8081);
  EXPECT_EQ(backends[1].port, 8082);
  EXPECT_EQ(backends[0].weight, 1);
  EXPECT_EQ(backends[1].weight, 1);
  EXPECT_TRUE(c.admin.enabled);  // the demo shows the management API too
  EXPECT_EQ(c.admin.host, "127.0.0.1");
  EXPECT_EQ(c.admin.port, 9090);
}

TEST(Config, EveryDefaultOfTheDesign) {
  const Config c = parseConfig(kMinimal, kFile, kKnown);
  const ServerConfig& s = c.server;
  EXPECT_EQ(s.host, "0.0.0.0");
  EXPECT_EQ(s.port, 8080);
  EXPECT_EQ(s.read_timeout, milliseconds(30'000));
  EXPECT_EQ(s.write_timeout, milliseconds(30'000));
  EXPECT_EQ(s.max_conn, 10000u);
  EXPECT_EQ(s.real_ip_header, "X-Real-IP");
  EXPECT_TRUE(s.trusted_proxies.empty());
  EXPECT_EQ(s.workers, 0);
  EXPECT_EQ(s.idle_timeout, milliseconds(75'000));
  EXPECT_EQ(s.header_timeout, milliseconds(10'000));
  EXPECT_EQ(s.connect_timeout, milliseconds(5'000));
  EXPECT_EQ(s.max_header_size, 16u * 1024);
  EXPECT_EQ(s.max_headers, 100u);
  EXPECT_EQ(s.max_body_size, 100u * 1024 * 1024);
  EXPECT_EQ(s.shutdown_timeout, milliseconds(30'000));
  EXPECT_EQ(s.shm_size, 16u * 1024 * 1024);
  EXPECT_EQ(s.pid_file, "logs/speedmimi.pid");
  EXPECT_EQ(s.state_file, "logs/speedmimi.state.json");
  EXPECT_EQ(s.error_log, "logs/error.log");
  EXPECT_EQ(s.log_level, LogLevel::kInfo);
  EXPECT_EQ(s.access_log, "logs/access.log");
  EXPECT_EQ(s.access_log_format, AccessLogFormat::kCombined);
  EXPECT_EQ(s.user, "");

  EXPECT_FALSE(c.ssl.enabled);
  EXPECT_EQ(c.ssl.cert_file, "certs/server.crt");
  EXPECT_EQ(c.ssl.key_file, "certs/server.key");
  EXPECT_EQ(c.ssl.port, 0);
  EXPECT_TRUE(c.ssl.certificates.empty());
  EXPECT_EQ(c.ssl.protocols, (std::vector<std::string>{"TLSv1.2", "TLSv1.3"}));

  const BackendConfig& b = c.backends.at("u").at(0);
  EXPECT_EQ(b.id, "127.0.0.1:8081");  // no id: HOST:PORT
  EXPECT_EQ(b.name, "");
  EXPECT_EQ(b.weight, 1);
  EXPECT_EQ(b.scheme, "http");
  EXPECT_TRUE(b.active);
  EXPECT_EQ(b.max_conn, 0u);
  EXPECT_EQ(b.max_fails, 1);
  EXPECT_EQ(b.keepalive, 0);
  EXPECT_EQ(b.fail_timeout, milliseconds(10'000));
  EXPECT_EQ(b.slow_start, milliseconds(0));
  EXPECT_TRUE(b.tls_verify);
  EXPECT_FALSE(b.health_check.enabled);
  EXPECT_EQ(b.mark.line, 3);
  EXPECT_EQ(b.mark.column, 7);

  const RouteConfig& r = c.routes.at(0);
  EXPECT_EQ(r.name, "r");
  EXPECT_EQ(r.path, "/");
  EXPECT_EQ(r.host, "");
  EXPECT_EQ(r.load_balancer, "weight");
  EXPECT_TRUE(r.protocols.empty());
  EXPECT_EQ(r.retries, 1);
  EXPECT_EQ(r.retry_on, kRetryConnectFailure | kRetryReset | kRetryTimeout | kRetryInvalidResponse);
  EXPECT_EQ(r.retry_budget, 20);
  EXPECT_EQ(r.mark.line, 5);
  EXPECT_EQ(r.mark.column, 6);

  EXPECT_TRUE(c.admin.enabled);
  EXPECT_EQ(c.admin.host, "127.0.0.1");
  EXPECT_EQ(c.admin.port, 9090);
  EXPECT_EQ(c.admin.auth_token, "");
  EXPECT_EQ(texts(c.admin.allow), (std::vector<std::string>{"127.0.0.1/32", "::1/128"}));
}

TEST(Config, HealthCheckDefaultsApplyWhenTheBlockIsPresent) {
  const Config c = parseConfig(
      "backends:\n"
      "  u:\n"
      "    - {host: 127.0.0.1, port: 8081, health_check: {}}\n"
      "    - {host: 127.0.0.1, port: 8082, health_check: {path: /ping}}\n"
      "routing:\n"
      "  r: {upstream: u}\n",
      kFile, kKnown);
  const HealthCheckConfig& hc = c.backends.at("u").at(0).health_check;
  EXPECT_TRUE(hc.enabled);
  EXPECT_EQ(hc.path, "/health");
  EXPECT_EQ(hc.interval, milliseconds(30'000));
  EXPECT_EQ(hc.timeout, milliseconds(5'000));
  EXPECT_EQ(hc.failures, 3);
  EXPECT_EQ(hc.successes, 1);
  EXPECT_EQ(c.backends.at("u").at(1).health_check.path, "/ping");
}

TEST(Config, EveryKeyIsRead) {
  const Config c = parseConfig(
      R"(server:
  host: "::"
  port: 80
  read_timeout: 5s
  write_timeout: 6s
  max_conn: 500
  real_ip_header: X-Forwarded-For
  trusted_proxies: ["10.0.0.0/8", "fd00::/8"]
  workers: 3
  idle_timeout: 1m
  header_timeout: 2500ms
  connect_timeout: 1
  max_header_size: 32K
  max_headers: 50
  max_body_size: 0
  shutdown_timeout: 0
  shm_size: 1g
  pid_file: /run/sm.pid
  state_file: /var/lib/sm/state.json
  error_log: stderr
  log_level: emerg
  access_log: "off"
  access_log_format: json
  user: nobody
ssl:
  enabled: true
  cert_file: a.crt
  key_file: a.key
  port: 8443
  certificates:
    - {cert_file: b.crt, key_file: b.key}
    - cert_file: c.crt
      key_file: c.key
  protocols: [TLSv1.3]
backends:
  api:
    - id: one
      name: The One
      host: backend.internal
      port: 443
      weight: 10000
      scheme: https
      active: false
      max_conn: 7
      max_fails: 0
      fail_timeout: 2m
      slow_start: 30s
      tls_verify: false
      keepalive: 64
      health_check: {path: /up, interval: 2s, timeout: 500ms, failures: 5, successes: 2}
  empty: []
  none:
routing:
  ws:
    path: /ws
    host: Example.COM
    upstream: api
    load_balancer: ip_hash
    protocols: {websocket: random, sse: least_latency, http: round_robin, https: performance}
    retries: 0
    retry_on: [connect-failure, reset, timeout, invalid-response, 5xx, 502, 503, 504]
    retry_budget: 100
  rest: {path: /, upstream: empty, retries: 10, retry_on: [], retry_budget: 0}
admin:
  enabled: true
  host: 0.0.0.0
  port: 9191
  auth_token: secret
  allow: [10.1.0.0/16, "::1"]
)",
      kFile, kKnown);
  const ServerConfig& s = c.server;
  EXPECT_EQ(s.host, "::");
  EXPECT_EQ(s.port, 80);
  EXPECT_EQ(s.read_timeout, milliseconds(5000));
  EXPECT_EQ(s.write_timeout, milliseconds(6000));
  EXPECT_EQ(s.max_conn, 500u);
  EXPECT_EQ(s.real_ip_header, "X-Forwarded-For");
  EXPECT_EQ(texts(s.trusted_proxies), (std::vector<std::string>{"10.0.0.0/8", "fd00::/8"}));
  EXPECT_EQ(s.workers, 3);
  EXPECT_EQ(s.idle_timeout, milliseconds(60'000));
  EXPECT_EQ(s.header_timeout, milliseconds(2500));
  EXPECT_EQ(s.connect_timeout, milliseconds(1000));
  EXPECT_EQ(s.max_header_size, 32u * 1024);
  EXPECT_EQ(s.max_headers, 50u);
  EXPECT_EQ(s.max_body_size, 0u);
  EXPECT_EQ(s.shutdown_timeout, milliseconds(0));
  EXPECT_EQ(s.shm_size, 1ull << 30);
  EXPECT_EQ(s.pid_file, "/run/sm.pid");
  EXPECT_EQ(s.state_file, "/var/lib/sm/state.json");
  EXPECT_EQ(s.error_log, "stderr");
  EXPECT_EQ(s.log_level, LogLevel::kEmerg);
  EXPECT_EQ(s.access_log, "off");
  EXPECT_EQ(s.access_log_format, AccessLogFormat::kJson);
  EXPECT_EQ(s.user, "nobody");

  EXPECT_TRUE(c.ssl.enabled);
  EXPECT_EQ(c.ssl.cert_file, "a.crt");
  EXPECT_EQ(c.ssl.key_file, "a.key");
  EXPECT_EQ(c.ssl.port, 8443);
  ASSERT_EQ(c.ssl.certificates.size(), 2u);
  EXPECT_EQ(c.ssl.certificates[0].cert_file, "b.crt");
  EXPECT_EQ(c.ssl.certificates[0].key_file, "b.key");
  EXPECT_EQ(c.ssl.certificates[1].cert_file, "c.crt");
  EXPECT_EQ(c.ssl.certificates[1].key_file, "c.key");
  EXPECT_EQ(c.ssl.protocols, (std::vector<std::string>{"TLSv1.3"}));

  ASSERT_EQ(c.backends.size(), 3u);
  EXPECT_TRUE(c.backends.at("empty").empty());  // an upstream may have no backends
  EXPECT_TRUE(c.backends.at("none").empty());
  const BackendConfig& b = c.backends.at("api").at(0);
  EXPECT_EQ(b.id, "one");
  EXPECT_EQ(b.name, "The One");
  EXPECT_EQ(b.host, "backend.internal");
  EXPECT_EQ(b.port, 443);
  EXPECT_EQ(b.weight, 10000);
  EXPECT_EQ(b.scheme, "https");
  EXPECT_FALSE(b.active);
  EXPECT_EQ(b.max_conn, 7u);
  EXPECT_EQ(b.max_fails, 0);
  EXPECT_EQ(b.keepalive, 64);
  EXPECT_EQ(b.fail_timeout, milliseconds(120'000));
  EXPECT_EQ(b.slow_start, milliseconds(30'000));
  EXPECT_FALSE(b.tls_verify);
  EXPECT_TRUE(b.health_check.enabled);
  EXPECT_EQ(b.health_check.path, "/up");
  EXPECT_EQ(b.health_check.interval, milliseconds(2000));
  EXPECT_EQ(b.health_check.timeout, milliseconds(500));
  EXPECT_EQ(b.health_check.failures, 5);
  EXPECT_EQ(b.health_check.successes, 2);

  ASSERT_EQ(c.routes.size(), 2u);  // in file order
  const RouteConfig& ws = c.routes[0];
  EXPECT_EQ(ws.name, "ws");
  EXPECT_EQ(ws.path, "/ws");
  EXPECT_EQ(ws.host, "Example.COM");
  EXPECT_EQ(ws.upstream, "api");
  EXPECT_EQ(ws.load_balancer, "ip_hash");
  EXPECT_EQ(ws.protocols, (std::map<std::string, std::string>{{"websocket", "random"},
                                                              {"sse", "least_latency"},
                                                              {"http", "round_robin"},
                                                              {"https", "performance"}}));
  EXPECT_EQ(ws.retries, 0);
  EXPECT_EQ(ws.retry_on, kRetryOnAll);
  EXPECT_EQ(ws.retry_budget, 100);
  EXPECT_EQ(c.routes[1].name, "rest");
  EXPECT_EQ(c.routes[1].upstream, "empty");
  EXPECT_EQ(c.routes[1].retries, 10);
  EXPECT_EQ(c.routes[1].retry_on, 0u);
  EXPECT_EQ(c.routes[1].retry_budget, 0);

  EXPECT_TRUE(c.admin.enabled);
  EXPECT_EQ(c.admin.host, "0.0.0.0");
  EXPECT_EQ(c.admin.port, 9191);
  EXPECT_EQ(c.admin.auth_token, "secret");
  EXPECT_EQ(texts(c.admin.allow), (std::vector<std::string>{"10.1.0.0/16", "::1/128"}));
}

TEST(Config, ValueSpellings) {
  const Config c = parseConfig(std::string(kMinimal) +
                                   "server:\n"
                                   "  port: \"8081\"\n"  // scalars are read by their text
                                   "  workers: auto\n"
                                   "  real_ip_header:\n"  // empty: disabled
                                   "  trusted_proxies: ~\n"
                                   "  user: null\n"
                                   "ssl: {enabled: True}\n"
                                   "grpc: {enabled: FALSE}\n",
                               kFile, kKnown);
  EXPECT_EQ(c.server.port, 8081);
  EXPECT_EQ(c.server.workers, 0);
  EXPECT_EQ(c.server.real_ip_header, "");
  EXPECT_TRUE(c.server.trusted_proxies.empty());
  EXPECT_EQ(c.server.user, "");
  EXPECT_TRUE(c.ssl.enabled);
  EXPECT_FALSE(c.admin.enabled);
}

TEST(Config, LogLevels) {
  const std::pair<const char*, LogLevel> cases[] = {
      {"debug", LogLevel::kDebug}, {"info", LogLevel::kInfo},   {"notice", LogLevel::kNotice},
      {"warn", LogLevel::kWarn},   {"error", LogLevel::kError}, {"crit", LogLevel::kCrit},
      {"alert", LogLevel::kAlert}, {"emerg", LogLevel::kEmerg},
  };
  for (const auto& [text, level] : cases) {
    const Config c =
        parseConfig(std::string(kMinimal) + "server: {log_level: " + text + "}\n", kFile, kKnown);
    EXPECT_EQ(c.server.log_level, level) << text;
  }
}

struct ErrorCase {
  std::string yaml;  // appended to nothing: each case is a whole file
  std::string error;
};

void expectErrors(const std::vector<ErrorCase>& cases) {
  for (const ErrorCase& c : cases) {
    EXPECT_EQ(errorOf(c.yaml), c.error) << c.yaml;
  }
}

// kMinimal is 5 lines; a section appended to it starts on line 6.
std::string withMinimal(const std::string& more) {
  return std::string(kMinimal) + more;
}

TEST(ConfigErrors, YamlSyntax) {
  expectErrors({
      {"server:\n  port: 80\n bad: 1\n",
       "t.yaml:3:2: while parsing a block mapping: did not find expected key"},
      {"server: [1, 2\n",
       "t.yaml:2:1: while parsing a flow sequence: did not find expected ',' or ']'"},
      {"server: \"open\n",
       "t.yaml:2:1: while scanning a quoted scalar: found unexpected end of stream"},
      {"a: *nothing\n", "t.yaml:1:4: found undefined alias"},
      {"--- {}\n--- {}\n", "t.yaml:2:5: only one YAML document is allowed"},
      // Bad encoding: libyaml gives a byte offset, the error a line and column.
      {"server:\n  host: \xff\n", "t.yaml:2:9: invalid leading UTF-8 octet"},
      {"server:\n  host: \"\xc3\xa9\xff\"\n", "t.yaml:2:11: invalid leading UTF-8 octet"},
  });
}

TEST(ConfigErrors, Structure) {
  expectErrors({
      {"- server\n", "t.yaml:1:1: the top level: expected a mapping, got a sequence"},
      {"servre:\n  port: 80\n", "t.yaml:1:1: key 'servre' is not known at the top level"},
      {"server: 1\n", "t.yaml:1:9: 'server': expected a mapping, got '1'"},
      {"server:\n  port: 1\nserver:\n  port: 2\n",
       "t.yaml:3:1: key 'server' is repeated at the top level (first at line 1)"},
      {"server:\n  port: 80\n  port: 81\n",
       "t.yaml:3:3: key 'port' is repeated in 'server' (first at line 2)"},
      {"server:\n  [a]: 1\n", "t.yaml:2:3: expected a scalar key in 'server'"},
      {"", "t.yaml: at least one route is required in 'routing'"},
      {"server: {port: 80}\n", "t.yaml: at least one route is required in 'routing'"},
      {"routing: {}\n", "t.yaml:1:10: at least one route is required in 'routing'"},
      {"routing:\n", "t.yaml:1:9: at least one route is required in 'routing'"},
  });
}

TEST(ConfigErrors, UnknownKeysNameTheirSection) {
  expectErrors({
      {withMinimal("server:\n  prot: 80\n"), "t.yaml:7:3: key 'prot' is not known in 'server'"},
      {withMinimal("ssl: {verify: true}\n"), "t.yaml:6:7: key 'verify' is not known in 'ssl'"},
      {withMinimal("ssl:\n  certificates:\n    - {cert_file: a, key_file: b, ca: c}\n"),
       "t.yaml:8:35: key 'ca' is not known in 'ssl.certificates[0]'"},
      {"backends:\n  u:\n    - {host: h, port: 1, weigth: 2}\n",
       "t.yaml:3:26: key 'weigth' is not known in 'backends.u[0]'"},
      {"backends:\n  u:\n    - {host: h, port: 1, health_check: {pth: /}}\n",
       "t.yaml:3:41: key 'pth' is not known in 'backends.u[0].health_check'"},
      {"routing:\n  r:\n    upstreams: u\n",
       "t.yaml:3:5: key 'upstreams' is not known in 'routing.r'"},
      {"routing:\n  r: {protocols: {ftp: random}}\n",
       "t.yaml:2:19: key 'ftp' is not known in 'routing.r.protocols'"},
      {withMinimal("grpc: {auth_token: x}\n"),
       "t.yaml:6:8: key 'auth_token' is not known in 'grpc'"},
      {withMinimal("admin: {alow: []}\n"), "t.yaml:6:9: key 'alow' is not known in 'admin'"},
  });
}

TEST(ConfigErrors, WrongTypes) {
  expectErrors({
      {withMinimal("server: {port: abc}\n"),
       "t.yaml:6:16: 'server.port': expected an integer, got 'abc'"},
      {withMinimal("server: {port: 80.5}\n"),
       "t.yaml:6:16: 'server.port': expected an integer, got '80.5'"},
      {withMinimal("server: {port: [80]}\n"),
       "t.yaml:6:16: 'server.port': expected an integer, got a sequence"},
      {withMinimal("server:\n  port:\n"),
       "t.yaml:7:8: 'server.port': expected an integer, got an empty value"},
      {withMinimal("server: {host: {a: 1}}\n"),
       "t.yaml:6:16: 'server.host': expected a scalar, got a mapping"},
      {withMinimal("server: {trusted_proxies: 10.0.0.0/8}\n"),
       "t.yaml:6:27: 'server.trusted_proxies': expected a sequence, got '10.0.0.0/8'"},
      {withMinimal("ssl: {enabled: yes}\n"),
       "t.yaml:6:16: 'ssl.enabled': expected true or false, got 'yes'"},
      {withMinimal("ssl: {enabled: \"\"}\n"),
       "t.yaml:6:16: 'ssl.enabled': expected true or false, got ''"},
      {"backends: [a]\n", "t.yaml:1:11: 'backends': expected a mapping, got a sequence"},
      {"backends:\n  u: {host: h}\n",
       "t.yaml:2:6: 'backends.u': expected a sequence, got a mapping"},
      {"backends:\n  u: [h]\n", "t.yaml:2:7: 'backends.u[0]': expected a mapping, got 'h'"},
      {"routing:\n  r: /api\n", "t.yaml:2:6: 'routing.r': expected a mapping, got '/api'"},
      {"routing:\n  r: {protocols: [ip_hash]}\n",
       "t.yaml:2:18: 'routing.r.protocols': expected a mapping, got a sequence"},
  });
}

TEST(ConfigErrors, ServerValues) {
  expectErrors({
      {withMinimal("server: {port: 0}\n"),
       "t.yaml:6:16: 'server.port': 0 is out of range 1..65535"},
      {withMinimal("server: {port: 65536}\n"),
       "t.yaml:6:16: 'server.port': 65536 is out of range 1..65535"},
      {withMinimal("server: {port: -1}\n"),
       "t.yaml:6:16: 'server.port': -1 is out of range 1..65535"},
      {withMinimal("server: {port: 99999999999999999999}\n"),
       "t.yaml:6:16: 'server.port': 99999999999999999999 is out of range 1..65535"},
      {withMinimal("server: {host: \"\"}\n"), "t.yaml:6:16: 'server.host': must not be empty"},
      {withMinimal("server: {workers: 0}\n"),
       "t.yaml:6:19: 'server.workers': 0 is out of range 1..256"},
      {withMinimal("server: {workers: 257}\n"),
       "t.yaml:6:19: 'server.workers': 257 is out of range 1..256"},
      {withMinimal("server: {workers: many}\n"),
       "t.yaml:6:19: 'server.workers': expected 'auto' or an integer, got 'many'"},
      {withMinimal("server: {max_conn: 0}\n"),
       "t.yaml:6:20: 'server.max_conn': 0 is out of range 1..2147483647"},
      {withMinimal("server: {max_headers: 10001}\n"),
       "t.yaml:6:23: 'server.max_headers': 10001 is out of range 1..10000"},
      {withMinimal("server: {log_level: verbose}\n"),
       "t.yaml:6:21: 'server.log_level': 'verbose' is not one of debug, info, notice, warn, "
       "error, crit, alert, emerg"},
      {withMinimal("server: {access_log_format: xml}\n"),
       "t.yaml:6:29: 'server.access_log_format': 'xml' is not one of combined, json"},
      {withMinimal("server: {trusted_proxies: [10.0.0.0/8, 10.0.0.0/33]}\n"),
       "t.yaml:6:40: 'server.trusted_proxies[1]': '10.0.0.0/33' is not an IPv4 or IPv6 CIDR "
       "block"},
      {withMinimal("server: {trusted_proxies: [\"fe80::/129\"]}\n"),
       "t.yaml:6:28: 'server.trusted_proxies[0]': 'fe80::/129' is not an IPv4 or IPv6 CIDR "
       "block"},
      {withMinimal("server: {real_ip_header: \"X Real IP\"}\n"),
       "t.yaml:6:26: 'server.real_ip_header': 'X Real IP' is not a valid header name"},
      {withMinimal("server: {pid_file: \"\"}\n"),
       "t.yaml:6:20: 'server.pid_file': must not be empty"},
  });
}

TEST(ConfigErrors, DurationsAndSizes) {
  expectErrors({
      {withMinimal("server: {read_timeout: 30x}\n"),
       "t.yaml:6:24: 'server.read_timeout': invalid duration '30x' (expected a whole number with "
       "ms, s, m or h, e.g. 30s)"},
      {withMinimal("server: {read_timeout: -5s}\n"),
       "t.yaml:6:24: 'server.read_timeout': invalid duration '-5s' (expected a whole number with "
       "ms, s, m or h, e.g. 30s)"},
      {withMinimal("server: {read_timeout: 1.5s}\n"),
       "t.yaml:6:24: 'server.read_timeout': invalid duration '1.5s' (expected a whole number "
       "with ms, s, m or h, e.g. 30s)"},
      {withMinimal("server: {read_timeout: 99999999999h}\n"),
       "t.yaml:6:24: 'server.read_timeout': duration '99999999999h' is too large"},
      {withMinimal("server: {read_timeout: 0}\n"),
       "t.yaml:6:24: 'server.read_timeout': must be at least 1ms"},
      {withMinimal("server: {idle_timeout: 0ms}\n"),
       "t.yaml:6:24: 'server.idle_timeout': must be at least 1ms"},
      {withMinimal("server: {max_header_size: 16kb}\n"),
       "t.yaml:6:27: 'server.max_header_size': invalid size '16kb' (expected a whole number of "
       "bytes with k, m or g, e.g. 16k)"},
      {withMinimal("server: {max_body_size: -1}\n"),
       "t.yaml:6:25: 'server.max_body_size': invalid size '-1' (expected a whole number of bytes "
       "with k, m or g, e.g. 16k)"},
      {withMinimal("server: {max_body_size: 99999999999999999999g}\n"),
       "t.yaml:6:25: 'server.max_body_size': size '99999999999999999999g' is too large"},
      {withMinimal("server: {max_header_size: 100}\n"),
       "t.yaml:6:27: 'server.max_header_size': must be between 1k and 64m"},
      {withMinimal("server: {shm_size: 64k}\n"),
       "t.yaml:6:20: 'server.shm_size': must be between 1m and 64g"},
  });
}

TEST(ConfigErrors, SslValues) {
  expectErrors({
      {withMinimal("ssl: {port: 70000}\n"),
       "t.yaml:6:13: 'ssl.port': 70000 is out of range 0..65535"},
      {withMinimal("ssl: {protocols: [TLSv1.2, TLSv1.1]}\n"),
       "t.yaml:6:28: 'ssl.protocols[1]': 'TLSv1.1' is not one of TLSv1.2, TLSv1.3"},
      {withMinimal("ssl: {protocols: []}\n"),
       "t.yaml:6:18: 'ssl.protocols': at least one protocol is required"},
      {withMinimal("ssl: {cert_file: \"\"}\n"), "t.yaml:6:18: 'ssl.cert_file': must not be empty"},
      {withMinimal("ssl:\n  certificates:\n    - {cert_file: b.crt}\n"),
       "t.yaml:8:7: keys 'cert_file' and 'key_file' are required in 'ssl.certificates[0]'"},
  });
}

TEST(ConfigErrors, BackendValues) {
  const std::string head = "routing:\n  r: {upstream: u}\nbackends:\n  u:\n";  // backends at line 5
  expectErrors({
      {head + "    - {host: h, port: 0}\n",
       "t.yaml:5:23: 'backends.u[0].port': 0 is out of range 1..65535"},
      {head + "    - {host: h, port: 1, weight: 0}\n",
       "t.yaml:5:34: 'backends.u[0].weight': 0 is out of range 1..10000"},
      {head + "    - {host: h, port: 1, weight: 10001}\n",
       "t.yaml:5:34: 'backends.u[0].weight': 10001 is out of range 1..10000"},
      {head + "    - {host: h, port: 1, scheme: ftp}\n",
       "t.yaml:5:34: 'backends.u[0].scheme': 'ftp' is not one of http, https"},
      {head + "    - {host: h, port: 1, active: 1}\n",
       "t.yaml:5:34: 'backends.u[0].active': expected true or false, got '1'"},
      {head + "    - {host: h, port: 1, max_fails: -1}\n",
       "t.yaml:5:37: 'backends.u[0].max_fails': -1 is out of range 0..1000"},
      {head + "    - {host: h, port: 1, keepalive: -1}\n",
       "t.yaml:5:37: 'backends.u[0].keepalive': -1 is out of range 0..1000000"},
      {head + "    - {host: h, port: 1, fail_timeout: 0s}\n",
       "t.yaml:5:40: 'backends.u[0].fail_timeout': must be at least 1ms"},
      {head + "    - {host: h, port: 1, slow_start: soon}\n",
       "t.yaml:5:38: 'backends.u[0].slow_start': invalid duration 'soon' (expected a whole "
       "number with ms, s, m or h, e.g. 30s)"},
      {head + "    - {host: h, port: 1, slow_start: -1s}\n",
       "t.yaml:5:38: 'backends.u[0].slow_start': invalid duration '-1s' (expected a whole "
       "number with ms, s, m or h, e.g. 30s)"},
      {head + "    - {host: h, port: 1, slow_start: [1s]}\n",
       "t.yaml:5:38: 'backends.u[0].slow_start': expected a duration, got a sequence"},
      {head + "    - {id: \"\", host: h, port: 1}\n",
       "t.yaml:5:12: 'backends.u[0].id': must not be empty"},
      {head + "    - {host: h, port: 1, health_check: {failures: 0}}\n",
       "t.yaml:5:51: 'backends.u[0].health_check.failures': 0 is out of range 1..1000"},
      {head + "    - {host: h, port: 1, health_check: {successes: 0}}\n",
       "t.yaml:5:52: 'backends.u[0].health_check.successes': 0 is out of range 1..1000"},
      {head + "    - {host: h, port: 1, health_check: {path: health}}\n",
       "t.yaml:5:47: 'backends.u[0].health_check.path': must start with '/', got 'health'"},
      {head + "    - {host: h, port: 1, health_check: {interval: 0}}\n",
       "t.yaml:5:51: 'backends.u[0].health_check.interval': must be at least 1ms"},
      // Cross-checks: a missing key at the backend's mapping, a duplicate id at the id, or at
      // the backend when the id was derived from host and port.
      {head + "    - {port: 1}\n", "t.yaml:5:7: 'backends.u[0]': key 'host' is required"},
      {head + "    - host: h\n", "t.yaml:5:7: 'backends.u[0]': key 'port' is required"},
      {head + "    - {id: a, host: h, port: 1}\n    - {id: b, host: h, port: 2}\n"
              "    - {id: a, host: h, port: 3}\n",
       "t.yaml:7:12: 'backends.u[2]': id 'a' is already used by 'backends.u[0]'"},
      {head + "    - {host: h, port: 1}\n    - {host: h, port: 1}\n",
       "t.yaml:6:7: 'backends.u[1]': id 'h:1' is already used by 'backends.u[0]'"},
      {"routing:\n  r: {upstream: u}\nbackends:\n  \"\": []\n",
       "t.yaml:4:3: an upstream name in 'backends' must not be empty"},
  });
}

TEST(ConfigErrors, RouteValues) {
  const std::string head = "backends:\n  u: []\nrouting:\n";  // routes from line 4
  expectErrors({
      {head + "  r: {upstream: u, path: api}\n",
       "t.yaml:4:26: 'routing.r.path': must start with '/', got 'api'"},
      {head + "  r: {upstream: u, retries: 11}\n",
       "t.yaml:4:29: 'routing.r.retries': 11 is out of range 0..10"},
      {head + "  r: {upstream: u, retries: -1}\n",
       "t.yaml:4:29: 'routing.r.retries': -1 is out of range 0..10"},
      {head + "  r:\n    upstream: u\n    retry_on: [reset, timeout, foo]\n",
       "t.yaml:6:32: 'routing.r.retry_on[2]': unknown retry condition 'foo' (one of "
       "connect-failure, reset, timeout, invalid-response, 5xx, 502, 503, 504)"},
      {head + "  r:\n    upstream: u\n    retry_on: [5xx, 502, 5xx]\n",
       "t.yaml:6:26: 'routing.r.retry_on[2]': retry condition '5xx' is repeated (first at "
       "'routing.r.retry_on[0]')"},
      {head + "  r: {upstream: u, retry_on: reset}\n",
       "t.yaml:4:30: 'routing.r.retry_on': expected a sequence, got 'reset'"},
      {head + "  r: {upstream: u, retry_on: [[reset]]}\n",
       "t.yaml:4:31: 'routing.r.retry_on[0]': expected a scalar, got a sequence"},
      {head + "  r: {upstream: u, retry_on: [Reset]}\n",
       "t.yaml:4:31: 'routing.r.retry_on[0]': unknown retry condition 'Reset' (one of "
       "connect-failure, reset, timeout, invalid-response, 5xx, 502, 503, 504)"},
      {head + "  r: {upstream: u, retry_budget: 101}\n",
       "t.yaml:4:34: 'routing.r.retry_budget': 101 is out of range 0..100"},
      {head + "  r: {upstream: u, retry_budget: -1}\n",
       "t.yaml:4:34: 'routing.r.retry_budget': -1 is out of range 0..100"},
      {head + "  r: {upstream: u, retry_budget: 20%}\n",
       "t.yaml:4:34: 'routing.r.retry_budget': expected an integer, got '20%'"},
      {head + "  r: {upstream: \"\"}\n", "t.yaml:4:17: 'routing.r.upstream': must not be empty"},
      // Cross-checks: at the value refused; a missing key or a clash of two routes at the route.
      {head + "  r: {path: /}\n", "t.yaml:4:6: 'routing.r': key 'upstream' is required"},
      {head + "  r:\n    upstream: nope\n",
       "t.yaml:5:15: 'routing.r.upstream': upstream 'nope' is not defined in 'backends'"},
      {head + "  r: {upstream: u, load_balancer: fastest}\n",
       "t.yaml:4:35: 'routing.r.load_balancer': 'fastest' is not a known load balancer"},
      {head + "  r: {upstream: u, protocols: {sse: ip_hash, websocket: sticky}}\n",
       "t.yaml:4:57: 'routing.r.protocols.websocket': 'sticky' is not a known load balancer"},
      {head + "  a: {upstream: u, path: /x, host: A.example}\n"
              "  b: {upstream: u, path: /x, host: a.EXAMPLE}\n",
       "t.yaml:5:6: 'routing.b': the same path and host as 'routing.a'"},
      {head + "  r: {upstream: u}\n  r: {upstream: u}\n",
       "t.yaml:5:3: key 'r' is repeated in 'routing' (first at line 4)"},
      {head + "  \"\": {upstream: u}\n", "t.yaml:4:3: a route name in 'routing' must not be empty"},
  });
}

// what() of the error that parsing `yaml` throws, or "(no error)": what the daemon and -t report
// (before the certificates are loaded, which src/process does).
std::string crossCheckErrorOf(const std::string& yaml) {
  try {
    parseConfig(yaml, kFile, kKnown);
  } catch (const ConfigError& e) {
    return e.what();
  }
  return "(no error)";
}

// Every error names the value at fault, whether the parser or a cross-check finds it, in block
// and in flow style.
TEST(ConfigErrors, CrossChecksNameTheValueAtFault) {
  const std::string backends = "backends:\n  u:\n    - {id: a, host: 127.0.0.1, port: 8081}\n";
  const std::string route = "routing:\n  r:\n    upstream: u\n";  // with backends: lines 4-6
  const ErrorCase cases[] = {
      {backends + "routing:\n  r:\n    path: /\n    upstream: nope\n",
       "t.yaml:7:15: 'routing.r.upstream': upstream 'nope' is not defined in 'backends'"},
      {backends + "routing: {r: {upstream: nope}}\n",
       "t.yaml:4:25: 'routing.r.upstream': upstream 'nope' is not defined in 'backends'"},
      {backends + route + "    load_balancer: fastest\n",
       "t.yaml:7:20: 'routing.r.load_balancer': 'fastest' is not a known load balancer"},
      {backends + route + "    protocols:\n      websocket: ip_hash\n      sse: sticky\n",
       "t.yaml:9:12: 'routing.r.protocols.sse': 'sticky' is not a known load balancer"},
      {backends + route + "    protocols: {http: round_robin, https: sticky}\n",
       "t.yaml:7:43: 'routing.r.protocols.https': 'sticky' is not a known load balancer"},
      {backends + route + "ssl:\n  cert_file: a.crt\n  enabled: true\n  port: 8080\n",
       "t.yaml:10:9: 'ssl.port': 8080 is server.port; 0 makes server.port itself speak TLS"},
      {backends + route + "ssl: {enabled: True, port: 8080}\n",
       "t.yaml:7:28: 'ssl.port': 8080 is server.port; 0 makes server.port itself speak TLS"},
      {backends +
           "    - id: b\n      host: 127.0.0.1\n      port: 8082\n    - id: a\n"
           "      host: 127.0.0.1\n      port: 8083\n" +
           route,
       "t.yaml:7:11: 'backends.u[2]': id 'a' is already used by 'backends.u[0]'"},
      {"backends:\n  u:\n    - id: a\n      host: 127.0.0.1\n      port: 70000\n" + route,
       "t.yaml:5:13: 'backends.u[0].port': 70000 is out of range 1..65535"},
      {backends + route + "server:\n  port: 0\n",
       "t.yaml:8:9: 'server.port': 0 is out of range 1..65535"},
      {backends + route + "admin: {port: 65536}\n",
       "t.yaml:7:15: 'admin.port': 65536 is out of range 1..65535"},
      {backends + route + "    retries: 11\n",
       "t.yaml:7:14: 'routing.r.retries': 11 is out of range 0..10"},
      {backends + "routing: {r: {upstream: u, retries: -1}}\n",
       "t.yaml:4:37: 'routing.r.retries': -1 is out of range 0..10"},
  };
  for (const ErrorCase& c : cases) {
    EXPECT_EQ(crossCheckErrorOf(c.yaml), c.error) << c.yaml;
  }
  EXPECT_EQ(crossCheckErrorOf(backends + route), "(no error)");
  // TLS settings are the certificates' business: they parse.
  EXPECT_EQ(crossCheckErrorOf(backends + route + "ssl: {enabled: true, port: 8443}\n"),
            "(no error)");
  EXPECT_EQ(crossCheckErrorOf("backends:\n  u:\n    - {id: a, host: h, port: 1, scheme: https, "
                              "ca_file: ca.pem}\n" +
                              route),
            "(no error)");
}

// ConfigError::path: the value at fault by the path Config::marks uses, whichever finds it (the
// reader, a cross-check), including where its position alone could not tell (a
// mapping value that starts on the next line, flow-style siblings on one line); "" when no
// value is at fault. Each case is "PATH | what()".
TEST(ConfigErrors, PathNamesTheValueAtFault) {
  auto pathOf = [](const std::string& yaml) {
    try {
      parseConfig(yaml, kFile, kKnown);
    } catch (const ConfigError& e) {
      return e.path() + " | " + e.what();
    }
    return std::string("(no error)");
  };
  const std::string backends = "backends:\n  u:\n    - {id: a, host: 127.0.0.1, port: 8081}\n";
  const std::string route = "routing:\n  r:\n    upstream: u\n";  // with backends: lines 4-6
  const ErrorCase cases[] = {
      // No value at fault.
      {"server: [1, 2\n",
       " | t.yaml:2:1: while parsing a flow sequence: did not find expected ',' or ']'"},
      {"--- {}\n--- {}\n", " | t.yaml:2:5: only one YAML document is allowed"},
      {"- server\n", " | t.yaml:1:1: the top level: expected a mapping, got a sequence"},
      // The reader.
      {"servre:\n  port: 80\n", "servre | t.yaml:1:1: key 'servre' is not known at the top level"},
      {withMinimal("server:\n  prot: 80\n"),
       "server.prot | t.yaml:7:3: key 'prot' is not known in 'server'"},
      {withMinimal("server:\n  colour:\n    a: 1\n"),
       "server.colour | t.yaml:7:3: key 'colour' is not known in 'server'"},
      {"server:\n  port: 80\n  port: 81\n",
       "server.port | t.yaml:3:3: key 'port' is repeated in 'server' (first at line 2)"},
      {"server:\n  [a]: 1\n", "server | t.yaml:2:3: expected a scalar key in 'server'"},
      {withMinimal("server: {port: 65536}\n"),
       "server.port | t.yaml:6:16: 'server.port': 65536 is out of range 1..65535"},
      {withMinimal("server: {host: {a: 1}}\n"),
       "server.host | t.yaml:6:16: 'server.host': expected a scalar, got a mapping"},
      {withMinimal("server: {trusted_proxies: [10.0.0.0/8, nope]}\n"),
       "server.trusted_proxies[1] | t.yaml:6:40: 'server.trusted_proxies[1]': 'nope' is not an "
       "IPv4 or IPv6 CIDR block"},
      {"backends:\n  u:\n    - {host: h, port: 1, weigth: 2}\n",
       "backends.u[0].weigth | t.yaml:3:26: key 'weigth' is not known in 'backends.u[0]'"},
      {"backends:\n  u:\n    - {host: h, port: 1, health_check: {pth: /}}\n",
       "backends.u[0].health_check.pth | t.yaml:3:41: key 'pth' is not known in "
       "'backends.u[0].health_check'"},
      {"backends:\n  u:\n    - id: a\n      host: 127.0.0.1\n      port: 70000\n" + route,
       "backends.u[0].port | t.yaml:5:13: 'backends.u[0].port': 70000 is out of range 1..65535"},
      {"backends:\n  u: [h]\n",
       "backends.u[0] | t.yaml:2:7: 'backends.u[0]': expected a mapping, "
       "got 'h'"},
      {"backends:\n  \"\": []\n",
       "backends | t.yaml:2:3: an upstream name in 'backends' must not be empty"},
      {"routing:\n  \"\": {}\n",
       "routing | t.yaml:2:3: a route name in 'routing' must not be empty"},
      {withMinimal("ssl:\n  certificates:\n    - {cert_file: a}\n"),
       "ssl.certificates[0] | t.yaml:8:7: keys 'cert_file' and 'key_file' are required in "
       "'ssl.certificates[0]'"},
      {withMinimal("grpc: {port: 9090}\nadmin: {port: 9091}\n"),
       "admin.port | t.yaml:7:15: 'admin.port' is 9091 but 'grpc.port' is 9090: grpc and admin "
       "name the same listener"},
      // The cross-checks.
      {backends + "routing:\n  r:\n    path: /\n    upstream: nope\n",
       "routing.r.upstream | t.yaml:7:15: 'routing.r.upstream': upstream 'nope' is not defined in "
       "'backends'"},
      {backends + route + "    load_balancer: fastest\n",
       "routing.r.load_balancer | t.yaml:7:20: 'routing.r.load_balancer': 'fastest' is not a known "
       "load balancer"},
      {backends + route + "    protocols: {websocket: ip_hash, sse: sticky}\n",
       "routing.r.protocols.sse | t.yaml:7:42: 'routing.r.protocols.sse': 'sticky' is not a known "
       "load balancer"},
      {backends + "    - {id: a, host: 127.0.0.1, port: 8082}\n" + route,
       "backends.u[1] | t.yaml:4:12: 'backends.u[1]': id 'a' is already used by 'backends.u[0]'"},
      {"backends:\n  u:\n    - {id: a, port: 8081}\n" + route,
       "backends.u[0] | t.yaml:3:7: 'backends.u[0]': key 'host' is required"},
      {backends + "routing:\n  r: {path: /}\n",
       "routing.r | t.yaml:5:6: 'routing.r': key 'upstream' is required"},
      {backends + "routing:\n",
       "routing | t.yaml:4:9: at least one route is required in 'routing'"},
      {backends, "routing | t.yaml: at least one route is required in 'routing'"},
      {backends + "routing:\n  r: {upstream: u}\n  s: {upstream: u, path: /}\n",
       "routing.s | t.yaml:6:6: 'routing.s': the same path and host as 'routing.r'"},
      {backends + route + "grpc: {host: 0.0.0.0}\n",
       "grpc.host | t.yaml:7:14: the management listener on '0.0.0.0' is not a loopback address; "
       "set 'admin.auth_token' or use 127.0.0.1"},
      {backends + route + "admin: {host: 0.0.0.0}\n",
       "admin.host | t.yaml:7:15: the management listener on '0.0.0.0' is not a loopback "
       "address; set 'admin.auth_token' or use 127.0.0.1"},
      {backends + route + "ssl: {enabled: true, port: 8080}\n",
       "ssl.port | t.yaml:7:28: 'ssl.port': 8080 is server.port; 0 makes server.port itself "
       "speak TLS"},
  };
  for (const ErrorCase& c : cases) {
    EXPECT_EQ(pathOf(c.yaml), c.error) << c.yaml;
  }
  EXPECT_EQ(pathOf(backends + route), "(no error)");
}

// The positions behind those errors, by the paths the messages use.
TEST(Config, MarksEveryValueByItsPath) {
  const Config c = parseConfig(
      "server:\n"
      "  port: 80\n"
      "  trusted_proxies: [10.0.0.0/8, 127.0.0.1/32]\n"
      "backends:\n"
      "  u:\n"
      "    - {host: h, port: 1, scheme: http, health_check: {path: /up}}\n"
      "routing:\n"
      "  r:\n"
      "    upstream: u\n"
      "    protocols: {websocket: ip_hash}\n",
      kFile, kKnown);
  const std::pair<const char*, Mark> expected[] = {
      {"server", {2, 3}},
      {"server.port", {2, 9}},
      {"server.trusted_proxies", {3, 20}},
      {"server.trusted_proxies[1]", {3, 33}},
      {"backends.u", {6, 5}},
      {"backends.u[0]", {6, 7}},
      {"backends.u[0].scheme", {6, 34}},
      {"backends.u[0].health_check.path", {6, 61}},
      {"routing.r", {9, 5}},
      {"routing.r.upstream", {9, 15}},
      {"routing.r.protocols.websocket", {10, 28}},
  };
  for (const auto& [path, mark] : expected) {
    ASSERT_EQ(c.marks.count(path), 1u) << path;
    EXPECT_EQ(c.marks.at(path).line, mark.line) << path;
    EXPECT_EQ(c.marks.at(path).column, mark.column) << path;
  }
  EXPECT_EQ(c.marks.count("routing.r.path"), 0u);  // a default has no position
}

TEST(ConfigErrors, ManagementListener) {
  expectErrors({
      {withMinimal("grpc:\n  enabled: true\n  host: 0.0.0.0\n"),
       "t.yaml:8:9: the management listener on '0.0.0.0' is not a loopback address; set "
       "'admin.auth_token' or use 127.0.0.1"},
      {withMinimal("admin: {host: \"::\"}\n"),
       "t.yaml:6:15: the management listener on '::' is not a loopback address; set "
       "'admin.auth_token' or use 127.0.0.1"},
      {withMinimal("admin: {host: admin.example.com}\n"),
       "t.yaml:6:15: the management listener on 'admin.example.com' is not a loopback address; "
       "set 'admin.auth_token' or use 127.0.0.1"},
      {withMinimal("grpc: {port: 0}\n"), "t.yaml:6:14: 'grpc.port': 0 is out of range 1..65535"},
      {withMinimal("grpc: {port: 9090}\nadmin: {port: 9091}\n"),
       "t.yaml:7:15: 'admin.port' is 9091 but 'grpc.port' is 9090: grpc and admin name the same "
       "listener"},
      {withMinimal("admin: {host: 127.0.0.1}\ngrpc: {host: localhost}\n"),
       "t.yaml:7:14: 'grpc.host' is localhost but 'admin.host' is 127.0.0.1: grpc and admin name "
       "the same listener"},
      {withMinimal("grpc: {enabled: true}\nadmin: {enabled: false}\n"),
       "t.yaml:7:18: 'admin.enabled' is false but 'grpc.enabled' is true: grpc and admin name the "
       "same listener"},
      {withMinimal("admin: {allow: [\"10.0.0.0/8\", bad]}\n"),
       "t.yaml:6:31: 'admin.allow[1]': 'bad' is not an IPv4 or IPv6 CIDR block"},
  });
}

TEST(Config, ManagementListenerExposure) {
  struct Case {
    std::string section;
    bool ok;
  };
  const Case cases[] = {
      {"grpc: {host: 127.0.0.1}", true},
      {"grpc: {host: 127.8.9.10}", true},
      {"grpc: {host: \"::1\"}", true},
      {"grpc: {host: localhost}", true},
      {"grpc: {enabled: false, host: 0.0.0.0}", true},  // no listener, nothing exposed
      {"admin: {host: 0.0.0.0, auth_token: s3cret}", true},
      {"grpc: {host: 0.0.0.0}\nadmin: {auth_token: s3cret}", true},
      {"grpc: {host: 0.0.0.0}\nadmin: {auth_token: \"\"}", false},
      {"grpc: {host: 10.0.0.1}", false},
      {"grpc: {host: \"::ffff:10.0.0.1\"}", false},
      {"grpc: {host: \"::2\"}", false},
  };
  for (const auto& c : cases) {
    const std::string error = errorOf(withMinimal(c.section + "\n"));
    EXPECT_EQ(error == "(no error)", c.ok) << c.section << " -> " << error;
  }
}

TEST(Config, GrpcAndAdminMergeIntoOneListener) {
  const Config c = parseConfig(withMinimal("grpc: {enabled: true, host: 127.0.0.1, port: 9191}\n"
                                           "admin:\n"
                                           "  port: 9191\n"  // repeating a value is fine
                                           "  auth_token: t\n"
                                           "  allow: []\n"),
                               kFile, kKnown);
  EXPECT_TRUE(c.admin.enabled);
  EXPECT_EQ(c.admin.host, "127.0.0.1");
  EXPECT_EQ(c.admin.port, 9191);
  EXPECT_EQ(c.admin.auth_token, "t");
  EXPECT_TRUE(c.admin.allow.empty());  // given empty: nobody
  EXPECT_EQ(c.admin.mark.line, 6);     // the host value
  EXPECT_EQ(c.admin.mark.column, 29);
}

// validateConfig on a Config built in code (the admin API): no positions, "FILE: message".
TEST(ValidateConfig, ConfigsWithoutPositions) {
  Config base;
  base.file = "api";
  BackendConfig backend;
  backend.id = "b";
  backend.host = "127.0.0.1";
  backend.port = 8081;
  base.backends["u"].push_back(backend);
  RouteConfig route;
  route.name = "r";
  route.upstream = "u";
  base.routes.push_back(route);
  EXPECT_NO_THROW(validateConfig(base, kKnown));

  auto errorAfter = [&](auto change) {
    Config c = base;
    change(c);
    try {
      validateConfig(c, kKnown);
    } catch (const ConfigError& e) {
      EXPECT_EQ(e.line(), 0);
      return std::string(e.what());
    }
    return std::string("(no error)");
  };
  EXPECT_EQ(errorAfter([](Config& c) { c.routes.clear(); }),
            "api: at least one route is required in 'routing'");
  EXPECT_EQ(errorAfter([](Config& c) { c.backends["u"][0].id = ""; }),
            "api: 'backends.u[0]': key 'id' is required");
  EXPECT_EQ(errorAfter([](Config& c) { c.backends["u"][0].port = 70000; }),
            "api: 'backends.u[0].port': 70000 is out of range 1..65535");
  EXPECT_EQ(errorAfter([](Config& c) { c.backends["u"][0].weight = 0; }),
            "api: 'backends.u[0].weight': 0 is out of range 1..10000");
  EXPECT_EQ(errorAfter([](Config& c) { c.backends["u"][0].scheme = "ftp"; }),
            "api: 'backends.u[0].scheme': 'ftp' is not one of http, https");
  EXPECT_EQ(errorAfter([](Config& c) { c.routes[0].path = "x"; }),
            "api: 'routing.r.path': must start with '/', got 'x'");
  EXPECT_EQ(errorAfter([](Config& c) { c.routes[0].retries = 11; }),
            "api: 'routing.r.retries': 11 is out of range 0..10");
  EXPECT_EQ(errorAfter([](Config& c) { c.routes[0].retry_on = 1u << 8; }),
            "api: 'routing.r.retry_on': holds an unknown retry condition");
  EXPECT_EQ(errorAfter([](Config& c) { c.routes[0].retry_budget = 101; }),
            "api: 'routing.r.retry_budget': 101 is out of range 0..100");
  EXPECT_EQ(errorAfter([](Config& c) { c.routes[0].protocols["gopher"] = "weight"; }),
            "api: key 'gopher' is not known in 'routing.r.protocols'");
  EXPECT_EQ(errorAfter([](Config& c) { c.routes[0].protocols["http"] = "nope"; }),
            "api: 'routing.r.protocols.http': 'nope' is not a known load balancer");
  EXPECT_EQ(errorAfter([](Config& c) { c.admin.port = 0; }),
            "api: 'admin.port': 0 is out of range 1..65535");
  EXPECT_EQ(errorAfter([](Config& c) { c.backends.clear(); }),
            "api: 'routing.r.upstream': upstream 'u' is not defined in 'backends'");
  EXPECT_EQ(errorAfter([](Config& c) { c.backends["u"].push_back(c.backends["u"][0]); }),
            "api: 'backends.u[1]': id 'b' is already used by 'backends.u[0]'");
  EXPECT_EQ(errorAfter([](Config& c) { c.routes[0].load_balancer = "fastest"; }),
            "api: 'routing.r.load_balancer': 'fastest' is not a known load balancer");
  // Every balancer name of DESIGN §5 is accepted.
  for (const char* name : {"weight", "least_connections", "least_connections_weight", "ip_hash",
                           "performance_least_connections_weight", "performance", "round_robin",
                           "random", "least_latency"}) {
    EXPECT_EQ(errorAfter([&](Config& c) { c.routes[0].load_balancer = name; }), "(no error)")
        << name;
  }
}

// validateConfig on a Config built in code: no positions, but the same paths.
TEST(ValidateConfig, PathsWithoutPositions) {
  Config base;
  base.file = "api";
  BackendConfig backend;
  backend.id = "b";
  backend.host = "127.0.0.1";
  backend.port = 8081;
  base.backends["u"].push_back(backend);
  RouteConfig route;
  route.name = "r";
  route.upstream = "u";
  base.routes.push_back(route);

  auto pathAfter = [&](auto change) {
    Config c = base;
    change(c);
    try {
      validateConfig(c, kKnown);
    } catch (const ConfigError& e) {
      return e.path();
    }
    return std::string("(no error)");
  };
  EXPECT_EQ(pathAfter([](Config&) {}), "(no error)");
  EXPECT_EQ(pathAfter([](Config& c) { c.routes.clear(); }), "routing");
  EXPECT_EQ(pathAfter([](Config& c) { c.backends["u"][0].port = 70000; }), "backends.u[0].port");
  EXPECT_EQ(pathAfter([](Config& c) { c.backends["u"][0].weight = 0; }), "backends.u[0].weight");
  EXPECT_EQ(pathAfter([](Config& c) { c.backends["u"][0].host = ""; }), "backends.u[0]");
  EXPECT_EQ(pathAfter([](Config& c) { c.backends["u"].push_back(c.backends["u"][0]); }),
            "backends.u[1]");
  EXPECT_EQ(pathAfter([](Config& c) { c.routes[0].path = "x"; }), "routing.r.path");
  EXPECT_EQ(pathAfter([](Config& c) { c.routes[0].upstream = "v"; }), "routing.r.upstream");
  EXPECT_EQ(pathAfter([](Config& c) { c.routes[0].protocols["gopher"] = "weight"; }),
            "routing.r.protocols.gopher");
  EXPECT_EQ(pathAfter([](Config& c) { c.routes[0].protocols["sse"] = "nope"; }),
            "routing.r.protocols.sse");
  EXPECT_EQ(pathAfter([](Config& c) { c.admin.port = 0; }), "admin.port");
  EXPECT_EQ(pathAfter([](Config& c) { c.admin.host = "10.0.0.1"; }), "admin.host");
  EXPECT_EQ(pathAfter([](Config& c) { c.ssl.enabled = true; }), "(no error)");
  EXPECT_EQ(pathAfter([](Config& c) {
              c.ssl.enabled = true;
              c.ssl.port = c.server.port;
            }),
            "ssl.port");
  EXPECT_EQ(pathAfter([](Config& c) { c.ssl.port = -1; }), "ssl.port");
  EXPECT_EQ(pathAfter([](Config& c) { c.backends["u"][0].scheme = "https"; }), "(no error)");
}

TEST(ConfigError, FormatsItsLocation) {
  const ConfigError located("a.yaml", 3, 7, "bad thing");
  EXPECT_STREQ(located.what(), "a.yaml:3:7: bad thing");
  EXPECT_EQ(located.file(), "a.yaml");
  EXPECT_EQ(located.line(), 3);
  EXPECT_EQ(located.column(), 7);
  EXPECT_EQ(located.message(), "bad thing");
  EXPECT_EQ(located.path(), "");
  EXPECT_STREQ(ConfigError("a.yaml", 0, 0, "gone").what(), "a.yaml: gone");
  const ConfigError at_value("a.yaml", 2, 9, "'server.port': bad", "server.port");
  EXPECT_STREQ(at_value.what(), "a.yaml:2:9: 'server.port': bad");  // the path is not in what()
  EXPECT_EQ(at_value.path(), "server.port");
}

TEST(LoadConfigFile, MissingFileNamesTheFileAndTheReason) {
  try {
    loadConfigFile("/nonexistent/speedmimi.yaml", kKnown);
    FAIL() << "no error";
  } catch (const ConfigError& e) {
    EXPECT_STREQ(e.what(), "/nonexistent/speedmimi.yaml: cannot open: No such file or directory");
  }
}

TEST(LoadConfigFile, ErrorsNameTheFile) {
  char path[] = "/tmp/speedmimi_config_test_XXXXXX";
  const int fd = mkstemp(path);
  ASSERT_GE(fd, 0);
  const std::string text = std::string(kMinimal) + "server:\n  port: 0\n";
  ASSERT_EQ(write(fd, text.data(), text.size()), static_cast<ssize_t>(text.size()));
  close(fd);
  try {
    loadConfigFile(path, kKnown);
    ADD_FAILURE() << "no error";
  } catch (const ConfigError& e) {
    EXPECT_EQ(std::string(e.what()),
              std::string(path) + ":7:9: 'server.port': 0 is out of range 1..65535");
  }
  unlink(path);
}

TEST(EffectiveWorkers, AutoIsTheNumberOfOnlineCpus) {
  ServerConfig server;
  server.workers = 0;
  const long cpus = sysconf(_SC_NPROCESSORS_ONLN);
  EXPECT_EQ(effectiveWorkers(server), cpus > 0 ? static_cast<int>(std::min(cpus, 256L)) : 1);
  EXPECT_GE(effectiveWorkers(server), 1);
  server.workers = 7;
  EXPECT_EQ(effectiveWorkers(server), 7);
}

}  // namespace
}  // namespace speedmimi::core

namespace speedmimi::core {
namespace {

// What src/process reports when a certificate or CA bundle does not load: at the key that
// names the file, else at the nearest enclosing value written, else nowhere.
TEST(ConfigErrorAt, LocatesTheKeyOrTheNearestValueAbove) {
  const Config c = parseConfig(
      "ssl:\n"
      "  enabled: true\n"
      "  certificates:\n"
      "    - {cert_file: b.crt, key_file: b.key}\n"
      "backends:\n"
      "  u:\n"
      "    - {id: a, host: 127.0.0.1, port: 1, scheme: https, ca_file: ca.pem}\n"
      "    - {id: b, host: 127.0.0.1, port: 2, scheme: https}\n"
      "routing: {r: {path: /, upstream: u}}\n",
      "t.yaml", kKnown);
  auto at = [&](const std::string& path) {
    const ConfigError e = configErrorAt(c, path, "x.pem: no PEM certificate");
    EXPECT_EQ(e.path(), path);
    return std::string(e.what());
  };
  EXPECT_EQ(at("ssl.certificates[0].key_file"),
            "t.yaml:4:36: 'ssl.certificates[0].key_file': x.pem: no PEM certificate");
  EXPECT_EQ(at("backends.u[0].ca_file"),
            "t.yaml:7:65: 'backends.u[0].ca_file': x.pem: no PEM certificate");
  // Not written: its default is at fault where the enclosing mapping is.
  EXPECT_EQ(at("ssl.cert_file"), "t.yaml:2:3: 'ssl.cert_file': x.pem: no PEM certificate");
  EXPECT_EQ(at("backends.u[1].ca_file"),
            "t.yaml:8:7: 'backends.u[1].ca_file': x.pem: no PEM certificate");
  Config built = c;
  built.file = "api";
  built.marks.clear();
  EXPECT_STREQ(configErrorAt(built, "ssl.key_file", "bad").what(), "api: 'ssl.key_file': bad");
}

TEST(ConfigTest, CaFileIsReadAsWritten) {
  const Config c = parseConfig(
      "backends:\n"
      "  u:\n"
      "    - {id: a, host: 127.0.0.1, port: 1, scheme: https, ca_file: certs/ca.pem}\n"
      "    - {id: b, host: 127.0.0.1, port: 2}\n"
      "routing: {r: {path: /, upstream: u}}\n",
      "t.yaml", kKnown);
  EXPECT_EQ(c.backends.at("u")[0].ca_file, "certs/ca.pem");
  EXPECT_EQ(c.backends.at("u")[1].ca_file, "");
  EXPECT_EQ(c.marks.at("backends.u[0].ca_file").column, 65);
}

}  // namespace
}  // namespace speedmimi::core
