#include "core/config_yaml.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <sstream>
#include <stdexcept>
#include <string>
#include <vector>

#include "core/config.h"

namespace speedmimi::core {
namespace {

// See config_test.cc: the tree's root is what precedes "t/unit/core/".
std::string sourcePath(const std::string& relative) {
  const std::string self = __FILE__;
  return self.substr(0, self.rfind("t/unit/core/config_yaml_test.cc")) + relative;
}

constexpr char kFile[] = "t.yaml";

const KnownNames kKnown{{"weight", "round_robin", "least_connections", "least_connections_weight",
                         "ip_hash", "performance_least_connections_weight", "performance", "random",
                         "least_latency"}};

std::vector<std::string> texts(const std::vector<Cidr>& blocks) {
  std::vector<std::string> out;
  for (const Cidr& b : blocks) out.push_back(b.toString());
  return out;
}

// Every field that the YAML describes; not Config::file and not the positions.
void expectSameConfig(const Config& a, const Config& b) {
  const ServerConfig& s = a.server;
  const ServerConfig& t = b.server;
  EXPECT_EQ(s.host, t.host);
  EXPECT_EQ(s.port, t.port);
  EXPECT_EQ(s.read_timeout, t.read_timeout);
  EXPECT_EQ(s.write_timeout, t.write_timeout);
  EXPECT_EQ(s.max_conn, t.max_conn);
  EXPECT_EQ(s.real_ip_header, t.real_ip_header);
  EXPECT_EQ(texts(s.trusted_proxies), texts(t.trusted_proxies));
  EXPECT_EQ(s.workers, t.workers);
  EXPECT_EQ(s.idle_timeout, t.idle_timeout);
  EXPECT_EQ(s.header_timeout, t.header_timeout);
  EXPECT_EQ(s.connect_timeout, t.connect_timeout);
  EXPECT_EQ(s.max_header_size, t.max_header_size);
  EXPECT_EQ(s.max_headers, t.max_headers);
  EXPECT_EQ(s.max_body_size, t.max_body_size);
  EXPECT_EQ(s.shutdown_timeout, t.shutdown_timeout);
  EXPECT_EQ(s.shm_size, t.shm_size);
  EXPECT_EQ(s.pid_file, t.pid_file);
  EXPECT_EQ(s.state_file, t.state_file);
  EXPECT_EQ(s.error_log, t.error_log);
  EXPECT_EQ(s.log_level, t.log_level);
  EXPECT_EQ(s.access_log, t.access_log);
  EXPECT_EQ(s.access_log_format, t.access_log_format);
  EXPECT_EQ(s.user, t.user);

  EXPECT_EQ(a.ssl.enabled, b.ssl.enabled);
  EXPECT_EQ(a.ssl.cert_file, b.ssl.cert_file);
  EXPECT_EQ(a.ssl.key_file, b.ssl.key_file);
  EXPECT_EQ(a.ssl.port, b.ssl.port);
  ASSERT_EQ(a.ssl.certificates.size(), b.ssl.certificates.size());
  for (size_t i = 0; i < a.ssl.certificates.size(); ++i) {
    EXPECT_EQ(a.ssl.certificates[i].cert_file, b.ssl.certificates[i].cert_file) << i;
    EXPECT_EQ(a.ssl.certificates[i].key_file, b.ssl.certificates[i].key_file) << i;
  }
  EXPECT_EQ(a.ssl.protocols, b.ssl.protocols);

  ASSERT_EQ(a.backends.size(), b.backends.size());
  for (const auto& [upstream, backends] : a.backends) {
    ASSERT_EQ(b.backends.count(upstream), 1u) << upstream;
    const std::vector<BackendConfig>& others = b.backends.at(upstream);
    ASSERT_EQ(backends.size(), others.size()) << upstream;
    for (size_t i = 0; i < backends.size(); ++i) {
      SCOPED_TRACE(upstream + "[" + std::to_string(i) + "]");
      const BackendConfig& x = backends[i];
      const BackendConfig& y = others[i];
      EXPECT_EQ(x.id, y.id);
      EXPECT_EQ(x.name, y.name);
      EXPECT_EQ(x.host, y.host);
      EXPECT_EQ(x.port, y.port);
      EXPECT_EQ(x.weight, y.weight);
      EXPECT_EQ(x.scheme, y.scheme);
      EXPECT_EQ(x.active, y.active);
      EXPECT_EQ(x.max_conn, y.max_conn);
      EXPECT_EQ(x.max_fails, y.max_fails);
      EXPECT_EQ(x.fail_timeout, y.fail_timeout);
      EXPECT_EQ(x.slow_start, y.slow_start);
      EXPECT_EQ(x.tls_verify, y.tls_verify);
      EXPECT_EQ(x.ca_file, y.ca_file);
      EXPECT_EQ(x.health_check.enabled, y.health_check.enabled);
      EXPECT_EQ(x.health_check.path, y.health_check.path);
      EXPECT_EQ(x.health_check.interval, y.health_check.interval);
      EXPECT_EQ(x.health_check.timeout, y.health_check.timeout);
      EXPECT_EQ(x.health_check.failures, y.health_check.failures);
      EXPECT_EQ(x.health_check.successes, y.health_check.successes);
    }
  }

  ASSERT_EQ(a.routes.size(), b.routes.size());
  for (size_t i = 0; i < a.routes.size(); ++i) {
    SCOPED_TRACE(a.routes[i].name);
    EXPECT_EQ(a.routes[i].name, b.routes[i].name);
    EXPECT_EQ(a.routes[i].path, b.routes[i].path);
    EXPECT_EQ(a.routes[i].host, b.routes[i].host);
    EXPECT_EQ(a.routes[i].upstream, b.routes[i].upstream);
    EXPECT_EQ(a.routes[i].load_balancer, b.routes[i].load_balancer);
    EXPECT_EQ(a.routes[i].protocols, b.routes[i].protocols);
    EXPECT_EQ(a.routes[i].retries, b.routes[i].retries);
    EXPECT_EQ(a.routes[i].retry_on, b.routes[i].retry_on);
    EXPECT_EQ(a.routes[i].retry_budget, b.routes[i].retry_budget);
  }

  EXPECT_EQ(a.admin.enabled, b.admin.enabled);
  EXPECT_EQ(a.admin.host, b.admin.host);
  EXPECT_EQ(a.admin.port, b.admin.port);
  EXPECT_EQ(a.admin.auth_token, b.admin.auth_token);
  EXPECT_EQ(texts(a.admin.allow), texts(b.admin.allow));
}

// parse -> emit -> parse: the second Config equals the first, and emitting it again gives the
// same text.
void expectRoundTrip(const Config& original) {
  const std::string yaml = configToYaml(original);
  Config again;
  try {
    again = parseConfig(yaml, "dumped.yaml", kKnown);
  } catch (const ConfigError& e) {
    FAIL() << e.what() << "\n" << yaml;
  }
  SCOPED_TRACE(yaml);
  expectSameConfig(original, again);
  EXPECT_EQ(configToYaml(again), yaml);
}

TEST(ConfigToYaml, ExampleFileRoundTrips) {
  expectRoundTrip(loadConfigFile(sourcePath("conf/speedmimi.yaml"), kKnown));
  expectRoundTrip(loadConfigFile(sourcePath("conf/demo.yaml"), kKnown));
}

// Every key away from its default, with the spellings that need care: text that reads like null,
// like a number or a boolean, with YAML indicators, quotes or non-ASCII letters; durations and
// sizes that are not a whole unit.
TEST(ConfigToYaml, EveryNonDefaultFieldRoundTrips) {
  const Config c = parseConfig(
      R"(server:
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
  enabled: true
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
      name: "Ünïcode, \"quoted\" and long enough to be worth folding if the emitter folded lines"
      host: backend.internal
      port: 443
      weight: 10000
      scheme: https
      active: false
      max_conn: 7
      max_fails: 0
      fail_timeout: 2500ms
      slow_start: 1500ms
      tls_verify: false
      ca_file: "certs/ca: ünïcode.pem"
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
    retry_on: [503, 5xx, invalid-response]
    retry_budget: 100
  "null": {path: "/a b", upstream: "8080", retries: 10, retry_on: [], retry_budget: 0}
  "yes": {path: /t, upstream: "true", load_balancer: least_connections}
admin:
  enabled: false
  host: 0.0.0.0
  port: 9191
  auth_token: "s3cr3t: #x"
  allow: [10.1.0.0/16, "::1"]
)",
      kFile, kKnown);
  expectRoundTrip(c);
}

TEST(ConfigToYaml, CodeBuiltConfigRoundTrips) {
  Config c;
  BackendConfig b;
  b.id = "b";
  b.host = "127.0.0.1";
  b.port = 8081;
  c.backends["u"].push_back(b);
  RouteConfig r;
  r.name = "r";
  r.upstream = "u";
  c.routes.push_back(r);
  c.admin.allow = {*Cidr::parse("127.0.0.1/32")};
  ASSERT_NO_THROW(validateConfig(c, kKnown));
  expectRoundTrip(c);
}

// The whole output for the smallest configuration: every default, in the order of DESIGN §7.
TEST(ConfigToYaml, DefaultsAreWrittenOut) {
  const Config c = parseConfig(
      "backends:\n"
      "  u:\n"
      "    - {host: 127.0.0.1, port: 8081}\n"
      "routing:\n"
      "  r: {upstream: u}\n",
      kFile, kKnown);
  EXPECT_EQ(configToYaml(c),
            "server:\n"
            "  host: 0.0.0.0\n"
            "  port: 8080\n"
            "  read_timeout: 30s\n"
            "  write_timeout: 30s\n"
            "  max_conn: 10000\n"
            "  real_ip_header: X-Real-IP\n"
            "  trusted_proxies: []\n"
            "  workers: auto\n"
            "  idle_timeout: 75s\n"
            "  header_timeout: 10s\n"
            "  connect_timeout: 5s\n"
            "  max_header_size: 16k\n"
            "  max_headers: 100\n"
            "  max_body_size: 100m\n"
            "  shutdown_timeout: 30s\n"
            "  shm_size: 16m\n"
            "  pid_file: logs/speedmimi.pid\n"
            "  state_file: logs/speedmimi.state.json\n"
            "  error_log: logs/error.log\n"
            "  log_level: info\n"
            "  access_log: logs/access.log\n"
            "  access_log_format: combined\n"
            "  user: \"\"\n"
            "ssl:\n"
            "  enabled: false\n"
            "  cert_file: certs/server.crt\n"
            "  key_file: certs/server.key\n"
            "  port: 0\n"
            "  certificates: []\n"
            "  protocols: [TLSv1.2, TLSv1.3]\n"
            "backends:\n"
            "  u:\n"
            "  - id: 127.0.0.1:8081\n"
            "    name: \"\"\n"
            "    host: 127.0.0.1\n"
            "    port: 8081\n"
            "    weight: 1\n"
            "    scheme: http\n"
            "    active: true\n"
            "    max_conn: 0\n"
            "    max_fails: 1\n"
            "    fail_timeout: 10s\n"
            "    slow_start: 0s\n"
            "    tls_verify: true\n"
            "    ca_file: \"\"\n"
            "    keepalive: 0\n"
            "routing:\n"
            "  r:\n"
            "    path: /\n"
            "    host: \"\"\n"
            "    upstream: u\n"
            "    load_balancer: weight\n"
            "    protocols: {}\n"
            "    retries: 1\n"
            "    retry_on: [connect-failure, reset, timeout, invalid-response]\n"
            "    retry_budget: 20\n"
            "admin:\n"
            "  enabled: true\n"
            "  host: 127.0.0.1\n"
            "  port: 9090\n"
            "  auth_token: \"\"\n"
            "  allow: [127.0.0.1/32, '::1/128']\n");
}

// Lines of `yaml`, for checking a few of them.
std::vector<std::string> lines(const std::string& yaml) {
  std::vector<std::string> out;
  std::istringstream in(yaml);
  for (std::string line; std::getline(in, line);) out.push_back(line);
  return out;
}

TEST(ConfigToYaml, ValuesAreWrittenAsTheParserReadsThem) {
  const Config c = parseConfig(
      "server:\n"
      "  read_timeout: 1500ms\n"
      "  idle_timeout: 120s\n"
      "  max_header_size: 100000\n"
      "  max_body_size: 0\n"
      "  workers: 4\n"
      "  user: \"null\"\n"
      "  trusted_proxies: [\"fd00::/8\", 10.0.0.0/8]\n"
      "backends:\n"
      "  u:\n"
      "    - {host: \"::1\", port: 8081, health_check: {interval: 90s}}\n"
      "routing:\n"
      "  r: {upstream: u, protocols: {websocket: ip_hash, sse: random}}\n",
      kFile, kKnown);
  const std::vector<std::string> out = lines(configToYaml(c));
  for (const char* expected : {
           "  read_timeout: 1500ms",
           "  idle_timeout: 2m",
           "  max_header_size: 100000",
           "  max_body_size: 0",
           "  workers: 4",
           "  user: \"null\"",
           "  trusted_proxies: ['fd00::/8', 10.0.0.0/8]",
           "  - id: ::1:8081",
           "    health_check:",
           "      path: /health",
           "      interval: 90s",
           "      timeout: 5s",
           "      failures: 3",
           "      successes: 1",
           "    protocols: {sse: random, websocket: ip_hash}",
       }) {
    EXPECT_NE(std::find(out.begin(), out.end(), expected), out.end()) << expected;
  }
}

// The events behind the YAML, as one line: mappings {...}, sequences [...], text "t", numbers
// #n, booleans ?b, spellings =s; "~" marks flow style.
class EventLine : public ConfigEvents {
 public:
  void beginMapping(Style style) override { line += style == Style::kFlow ? "~{" : "{"; }
  void endMapping() override { line += "} "; }
  void beginSequence(Style style) override { line += style == Style::kFlow ? "~[" : "["; }
  void endSequence() override { line += "] "; }
  void text(std::string_view text) override { line += "\"" + std::string(text) + "\" "; }
  void number(std::string_view decimal) override { line += "#" + std::string(decimal) + " "; }
  void boolean(bool value) override { line += value ? "?true " : "?false "; }
  void spelling(std::string_view s) override { line += "=" + std::string(s) + " "; }
  std::string line;
};

TEST(EmitConfig, EventsCarryTheValuesTypes) {
  const Config c = parseConfig(
      "server: {port: 8081, workers: 3, user: \"8080\", trusted_proxies: [10.0.0.0/8]}\n"
      "ssl: {certificates: [{cert_file: a.crt, key_file: a.key}]}\n"
      "backends:\n"
      "  u:\n"
      "    - {id: \"true\", host: 127.0.0.1, port: 8081, health_check: {interval: 90s}}\n"
      "routing:\n"
      "  r: {upstream: u, protocols: {sse: random}}\n",
      kFile, kKnown);
  EventLine events;
  emitConfig(c, events);
  EXPECT_EQ(
      events.line,
      "{\"server\" {\"host\" \"0.0.0.0\" \"port\" #8081 \"read_timeout\" =30s "
      "\"write_timeout\" =30s \"max_conn\" #10000 \"real_ip_header\" \"X-Real-IP\" "
      "\"trusted_proxies\" ~[\"10.0.0.0/8\" ] \"workers\" #3 \"idle_timeout\" =75s "
      "\"header_timeout\" =10s \"connect_timeout\" =5s \"max_header_size\" =16k "
      "\"max_headers\" #100 \"max_body_size\" =100m \"shutdown_timeout\" =30s \"shm_size\" =16m "
      "\"pid_file\" \"logs/speedmimi.pid\" \"state_file\" \"logs/speedmimi.state.json\" "
      "\"error_log\" \"logs/error.log\" \"log_level\" =info \"access_log\" \"logs/access.log\" "
      "\"access_log_format\" =combined \"user\" \"8080\" } "
      "\"ssl\" {\"enabled\" ?false \"cert_file\" \"certs/server.crt\" \"key_file\" "
      "\"certs/server.key\" \"port\" #0 \"certificates\" [{\"cert_file\" \"a.crt\" \"key_file\" "
      "\"a.key\" } ] \"protocols\" ~[\"TLSv1.2\" \"TLSv1.3\" ] } "
      "\"backends\" {\"u\" [{\"id\" \"true\" \"name\" \"\" \"host\" \"127.0.0.1\" \"port\" #8081 "
      "\"weight\" #1 \"scheme\" \"http\" \"active\" ?true \"max_conn\" #0 \"max_fails\" #1 "
      "\"fail_timeout\" =10s \"slow_start\" =0s \"tls_verify\" ?true \"ca_file\" \"\" "
      "\"keepalive\" #0 "
      "\"health_check\" {\"path\" "
      "\"/health\" \"interval\" =90s \"timeout\" =5s \"failures\" #3 \"successes\" #1 } } ] } "
      "\"routing\" {\"r\" {\"path\" \"/\" \"host\" \"\" \"upstream\" \"u\" \"load_balancer\" "
      "\"weight\" \"protocols\" ~{\"sse\" \"random\" } \"retries\" #1 \"retry_on\" "
      "~[=connect-failure =reset =timeout =invalid-response ] \"retry_budget\" #20 } } "
      "\"admin\" {\"enabled\" ?true \"host\" \"127.0.0.1\" \"port\" #9090 \"auth_token\" \"\" "
      "\"allow\" ~[\"127.0.0.1/32\" \"::1/128\" ] } } ");
  // workers: auto is a word, not a number.
  Config automatic = c;
  automatic.server.workers = 0;
  EventLine again;
  emitConfig(automatic, again);
  EXPECT_NE(again.line.find("\"workers\" =auto "), std::string::npos) << again.line;
}

TEST(ConfigToYaml, TextThatIsNotUtf8IsRefused) {
  Config c;
  c.server.user = "\xff";
  EXPECT_THROW(configToYaml(c), std::runtime_error);
}

}  // namespace
}  // namespace speedmimi::core
