// Typed configuration: what the YAML of DESIGN §7 means after parsing and validation.
// Plain data only; parsing lives in config.h, defaults are the member initializers below.
#pragma once

#include <chrono>
#include <cstdint>
#include <iterator>
#include <map>
#include <string>
#include <vector>

#include "core/cidr.h"

namespace speedmimi::core {

using Duration = std::chrono::milliseconds;

// Where a value came from, for error messages after parsing (cross-checks).
struct Mark {
  int line = 0;    // 1-based; 0 = not from a file (a default)
  int column = 0;  // 1-based
};

enum class LogLevel { kDebug, kInfo, kNotice, kWarn, kError, kCrit, kAlert, kEmerg };
enum class AccessLogFormat { kCombined, kJson };

struct ServerConfig {
  std::string host = "0.0.0.0";
  int port = 8080;
  Duration read_timeout{30'000};
  Duration write_timeout{30'000};
  uint64_t max_conn = 10000;
  std::string real_ip_header = "X-Real-IP";
  std::vector<Cidr> trusted_proxies;  // default: none
  int workers = 0;                    // 0 = auto (number of CPUs)
  Duration idle_timeout{75'000};
  Duration header_timeout{10'000};
  Duration connect_timeout{5'000};
  uint64_t max_header_size = 16 * 1024;
  uint64_t max_headers = 100;
  uint64_t max_body_size = 100ull * 1024 * 1024;  // 0 = unlimited
  Duration shutdown_timeout{30'000};
  uint64_t shm_size = 16ull * 1024 * 1024;
  std::string pid_file = "logs/speedmimi.pid";
  std::string state_file = "logs/speedmimi.state.json";
  std::string error_log = "logs/error.log";  // or "stderr"
  LogLevel log_level = LogLevel::kInfo;
  std::string access_log = "logs/access.log";  // or "off"
  AccessLogFormat access_log_format = AccessLogFormat::kCombined;
  std::string user;
};

struct CertificatePair {
  std::string cert_file;
  std::string key_file;
};

struct SslConfig {
  bool enabled = false;
  std::string cert_file = "certs/server.crt";
  std::string key_file = "certs/server.key";
  int port = 0;  // 0: server.port speaks TLS; else a TLS listener on this port beside plain HTTP
  std::vector<CertificatePair> certificates;
  std::vector<std::string> protocols = {"TLSv1.2", "TLSv1.3"};
};

struct HealthCheckConfig {
  bool enabled = false;  // true when the backend has a health_check block
  std::string path = "/health";
  Duration interval{30'000};
  Duration timeout{5'000};
  int failures = 3;
  int successes = 1;
};

struct BackendConfig {
  std::string id;
  std::string name;
  std::string host;
  int port = 0;
  int weight = 1;  // 1..10000
  std::string scheme = "http";  // or "https"
  bool active = true;
  uint64_t max_conn = 0;  // 0 = unlimited
  int max_fails = 1;
  // Most idle pooled connections to it per worker; 0 = as many as the recent load needed (the
  // pool closes the surplus gradually, DESIGN §4).
  int keepalive = 0;
  Duration fail_timeout{10'000};
  // A backend that comes back (health up again, re-activated, added at run time, back from a
  // passive take-out) ramps its weight up over this long (core/slow_start.h); 0 = at once.
  Duration slow_start{0};
  bool tls_verify = true;
  // scheme https only: the CA bundle (PEM) that verifies the backend; "" = the system store.
  // Relative to the prefix, as the other paths are.
  std::string ca_file;
  HealthCheckConfig health_check;
  Mark mark;  // where the backend's mapping starts
};

// routing.*.retry_on: the outcomes of an attempt after which another backend is tried (DESIGN
// §4, README), as bits of RouteConfig::retry_on.
enum RetryOn : uint32_t {
  kRetryConnectFailure = 1u << 0,   // refused, unreachable, an error or timeout while connecting
  kRetryReset = 1u << 1,            // reset, broken pipe or EOF before any response byte
  kRetryTimeout = 1u << 2,          // connect, request write, or no response byte in read_timeout
  kRetryInvalidResponse = 1u << 3,  // a malformed or ambiguously framed response head
  kRetry5xx = 1u << 4,              // the backend's status, before any byte reached the client
  kRetry502 = 1u << 5,
  kRetry503 = 1u << 6,
  kRetry504 = 1u << 7,
};

// Each condition's name in the configuration, in the order of the bits.
struct RetryCondition {
  const char* name;
  RetryOn bit;
};
inline constexpr RetryCondition kRetryConditions[] = {
    {"connect-failure", kRetryConnectFailure},
    {"reset", kRetryReset},
    {"timeout", kRetryTimeout},
    {"invalid-response", kRetryInvalidResponse},
    {"5xx", kRetry5xx},
    {"502", kRetry502},
    {"503", kRetry503},
    {"504", kRetry504},
};
inline constexpr uint32_t kRetryOnAll = (1u << std::size(kRetryConditions)) - 1;
// nginx's `proxy_next_upstream error timeout invalid_header`.
inline constexpr uint32_t kRetryOnDefault =
    kRetryConnectFailure | kRetryReset | kRetryTimeout | kRetryInvalidResponse;

struct RouteConfig {
  std::string name;
  std::string path = "/";
  std::string host;  // "" = any host
  std::string upstream;
  std::string load_balancer = "weight";
  // protocol class ("websocket", "sse", "http", "https") -> balancer name
  std::map<std::string, std::string> protocols;
  int retries = 1;
  // RetryOn bits. Idempotent requests are retried on any of them; the others only on
  // kRetryConnectFailure (they never reached a backend).
  uint32_t retry_on = kRetryOnDefault;
  // Percent 0..100: retries in flight on the upstream stay within this share of its requests in
  // flight (at least upstream::RetryBudget::kMinRetries), counted per worker.
  int retry_budget = 20;
  Mark mark;
};

struct AdminConfig {
  bool enabled = true;
  std::string host = "127.0.0.1";
  int port = 9090;
  std::string auth_token;
  std::vector<Cidr> allow;  // default: 127.0.0.1/32 and ::1/128
  Mark mark;                // where `host` was given, else where grpc/admin starts
};

struct Config {
  std::string file;  // the path it was loaded from
  ServerConfig server;
  SslConfig ssl;
  // upstream name -> backends, in file order (std::map keeps output deterministic)
  std::map<std::string, std::vector<BackendConfig>> backends;
  std::vector<RouteConfig> routes;  // in file order
  AdminConfig admin;
  // Where each value of the file was written, by its dotted path as error messages spell it:
  // "server.port", "routing.default.protocols.websocket", "backends.default[0].scheme",
  // "server.trusted_proxies[1]"; mappings and sequences too ("routing.default",
  // "backends.default[0]"). Validation reports an error at the value at fault through it.
  // Empty for a Config built in code; code that edits a parsed Config's lists should clear it,
  // since the indexes would then name other entries.
  std::map<std::string, Mark> marks;
};

}  // namespace speedmimi::core
