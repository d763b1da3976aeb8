// JSON views of the shared zone's runtime state for the API: a backend (its settings, health,
// counters, latency and last report) and the server (every worker slot's counters summed, with
// this host's figures). Read-only; any process may call these.
#pragma once

#include <cstdint>
#include <deque>
#include <string>
#include <vector>

#include "admin/host_stats.h"
#include "core/histogram.h"
#include "core/json.h"
#include "core/zone.h"
#include "event/tls.h"

namespace speedmimi::admin {

// Requests per second over the last 1 s, 10 s and 60 s, from a total sampled once a second.
class RequestRate {
 public:
  void sample(uint64_t total, int64_t now_ms);
  // Over the newest samples `window_ms` apart (or what there is); 0 until there are two.
  double perSecond(int64_t window_ms) const;

 private:
  struct Sample {
    int64_t at_ms;
    uint64_t total;
  };
  std::deque<Sample> samples_;  // oldest first, at most a little over 60 s
};

// The server's counters summed over every worker slot and the exited workers' totals.
struct ServerTotals {
  int64_t active_connections = 0;
  uint64_t accepted = 0;
  uint64_t requests = 0;
  uint64_t retries = 0;
  uint64_t retries_refused = 0;
  uint64_t responses_by_class[6] = {};
  uint64_t bytes_in = 0;
  uint64_t bytes_out = 0;
  core::LatencyTotals request_latency;
  size_t workers = 0;  // worker slots held by a live, ready worker
};
ServerTotals serverTotals(const core::Zone& zone);

struct ServerInfo {
  std::string version;
  uint64_t generation = 0;
  int64_t uptime_seconds = 0;
  uint64_t max_conn = 0;
  // ssl.enabled: the certificates served, shown under "tls"; nullptr when TLS is off.
  const std::vector<event::CertificateInfo>* certificates = nullptr;
  int64_t now_unix = 0;  // for their expiry
};
core::JsonPtr serverStatsJson(const ServerTotals& totals, const ServerInfo& info,
                              const RequestRate& rate, const HostFigures& host);

// A certificate expiring within this many days is a warning: in the error log at start and
// reload, and in /api/v1/stats/server.
constexpr int64_t kExpiryWarningDays = 14;
// Whole days from `now` to `not_after` (Unix seconds), rounded down; negative once expired.
int64_t expiresInDays(int64_t not_after, int64_t now);
// ISO 8601 UTC to the second: "2026-12-17T09:00:00Z".
std::string isoUtc(int64_t unix_seconds);
// {"certificates": [{"file", "names", "key_type", "not_after", "expires_in_days", "warning"
// (only within kExpiryWarningDays: "expires in N days")}]}.
core::JsonPtr tlsStatsJson(const std::vector<event::CertificateInfo>& certificates, int64_t now);

// A latency histogram as the answers show it: {"count", "mean_ms", "p50_ms", "p90_ms",
// "p99_ms", "p999_ms"}, the figures null while there is no sample.
core::JsonPtr latencyJson(const core::LatencyTotals& h);

// One backend: `settings` (backendToJson of its config), its effective_weight (the weight the
// weighted balancers use now, below `weight` during a slow start), health (with its history of
// changes), connections, requests, failures, responses by class, bytes, the head-time
// percentiles, the latency EWMA and the last report with its age. `now_ms` is
// core::monotonicMs().
core::JsonPtr backendStateJson(const core::Zone& zone, size_t index, const core::BackendSlot& slot,
                               int64_t now_ms);

const char* healthName(int health);
// "1xx".."5xx" for a responses_by_class index 1..5.
const char* statusClassName(size_t index);

// A backend's health as the API and /metrics show it: its status ("up", "down" or "unknown"),
// "down" too while passive checks have taken it out, and why. `now_ms` is core::monotonicMs().
struct HealthView {
  const char* status;
  std::string reason;
};
HealthView healthView(const core::BackendSlot& slot, int64_t now_ms);

}  // namespace speedmimi::admin
