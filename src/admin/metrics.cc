#include "admin/metrics.h"

#include <algorithm>
#include <charconv>
#include <cmath>
#include <cstring>

#include "admin/stats.h"

namespace speedmimi::admin {
namespace {

constexpr auto kRelaxed = std::memory_order_relaxed;
constexpr const char* kHealthStates[] = {"up", "down", "unknown"};

double seconds(uint64_t us) {
  return static_cast<double>(us) / 1e6;
}

// One backend as read from the zone, so that each family can go over all of them in turn.
struct BackendRow {
  std::string upstream;
  std::string id;
  const char* health;  // healthView's status
  bool active;
  int32_t weight;
  int64_t active_connections;
  uint64_t latency_us;
  core::BackendTotals totals;
};

// Live backends ordered by upstream, then id: the output does not depend on slot reuse.
std::vector<BackendRow> backendRows(const core::Zone& zone, int64_t now_ms) {
  std::vector<BackendRow> rows;
  zone.forEachLive([&](size_t index, core::BackendSlot& slot) {
    const core::ZoneBackendConfig* zc = slot.config.load(std::memory_order_acquire);
    if (!zc) return;
    BackendRow row;
    row.upstream.assign(zc->upstream, strnlen(zc->upstream, sizeof(zc->upstream)));
    row.id.assign(zc->id, strnlen(zc->id, sizeof(zc->id)));
    row.health = healthView(slot, now_ms).status;
    row.active = zc->active;
    row.weight = zc->weight;
    row.active_connections = std::max<int64_t>(0, slot.runtime.active_connections.load(kRelaxed));
    row.latency_us = slot.runtime.latency_us.load(kRelaxed);
    row.totals = zone.backendTotals(index);
    rows.push_back(std::move(row));
  });
  std::sort(rows.begin(), rows.end(), [](const BackendRow& a, const BackendRow& b) {
    return a.upstream != b.upstream ? a.upstream < b.upstream : a.id < b.id;
  });
  return rows;
}

Labels backendLabels(const BackendRow& row) {
  return {{"upstream", row.upstream}, {"backend", row.id}};
}

void serverFamilies(Exposition& out, const core::Zone& zone, const MetricsInfo& info) {
  ServerTotals t = serverTotals(zone);
  out.family("speedmimi_build_info", "gauge", "Always 1; the version of the running binary.");
  out.sample("speedmimi_build_info", {{"version", info.version}}, uint64_t{1});
  out.family("speedmimi_generation", "gauge",
             "Configuration generation of the master (1 at start, +1 per reload).");
  out.sample("speedmimi_generation", {}, info.generation);
  out.family("speedmimi_start_time_seconds", "gauge",
             "Start time of the master since the Unix epoch, in seconds.");
  out.sample("speedmimi_start_time_seconds", {}, static_cast<double>(info.start_unix_ms) / 1e3);
  out.family("speedmimi_workers", "gauge", "Worker processes running and accepting.");
  out.sample("speedmimi_workers", {}, static_cast<uint64_t>(t.workers));
  out.family("speedmimi_connections_accepted_total", "counter", "Client connections accepted.");
  out.sample("speedmimi_connections_accepted_total", {}, t.accepted);
  out.family("speedmimi_connections_active", "gauge", "Client connections open.");
  out.sample("speedmimi_connections_active", {}, t.active_connections);
  out.family("speedmimi_requests_total", "counter", "Client requests received.");
  out.sample("speedmimi_requests_total", {}, t.requests);
  out.family("speedmimi_retries_total", "counter",
             "Attempts at another backend after an attempt failed (routing retry_on).");
  out.sample("speedmimi_retries_total", {}, t.retries);
  out.family("speedmimi_retries_refused_total", "counter",
             "Retries refused by the route's retry_budget.");
  out.sample("speedmimi_retries_refused_total", {}, t.retries_refused);
  out.family("speedmimi_responses_total", "counter", "Responses sent to clients, by status class.");
  for (size_t i = 1; i <= 5; ++i) {
    out.sample("speedmimi_responses_total", {{"code", statusClassName(i)}},
               t.responses_by_class[i]);
  }
  out.family("speedmimi_received_bytes_total", "counter", "Bytes received from clients.");
  out.sample("speedmimi_received_bytes_total", {}, t.bytes_in);
  out.family("speedmimi_sent_bytes_total", "counter", "Bytes sent to clients.");
  out.sample("speedmimi_sent_bytes_total", {}, t.bytes_out);
  out.family("speedmimi_request_duration_seconds", "histogram",
             "Time from a request's head to the end of its response.");
  out.histogram("speedmimi_request_duration_seconds", {}, t.request_latency);
}

// One family over every backend: `value` gives a row's sample.
template <typename Value>
void perBackend(Exposition& out, const std::vector<BackendRow>& rows, std::string_view name,
                std::string_view type, std::string_view help, Value value) {
  out.family(name, type, help);
  for (const BackendRow& row : rows) out.sample(name, backendLabels(row), value(row));
}

void backendFamilies(Exposition& out, const std::vector<BackendRow>& rows) {
  perBackend(out, rows, "speedmimi_backend_up", "gauge",
             "1 unless the backend's health is down (active or passive checks).",
             [](const BackendRow& r) { return uint64_t{std::strcmp(r.health, "down") != 0}; });
  out.family("speedmimi_backend_health_state", "gauge",
             "1 for the backend's current health state, 0 for the others.");
  for (const BackendRow& row : rows) {
    for (const char* state : kHealthStates) {
      Labels labels = backendLabels(row);
      labels.emplace_back("state", state);
      out.sample("speedmimi_backend_health_state", labels,
                 uint64_t{std::strcmp(row.health, state) == 0});
    }
  }
  perBackend(out, rows, "speedmimi_backend_active", "gauge",
             "1 when the backend is configured active (0: disconnected or active: false).",
             [](const BackendRow& r) { return uint64_t{r.active}; });
  perBackend(out, rows, "speedmimi_backend_weight", "gauge", "Configured weight.",
             [](const BackendRow& r) { return static_cast<int64_t>(r.weight); });
  perBackend(out, rows, "speedmimi_backend_active_connections", "gauge",
             "Requests in flight to the backend, all workers.",
             [](const BackendRow& r) { return r.active_connections; });
  perBackend(out, rows, "speedmimi_backend_requests_total", "counter",
             "Requests sent to the backend.",
             [](const BackendRow& r) { return r.totals.requests; });
  perBackend(out, rows, "speedmimi_backend_failures_total", "counter",
             "Failed exchanges with the backend (connect, timeout, reset, invalid response).",
             [](const BackendRow& r) { return r.totals.failures; });
  out.family("speedmimi_backend_responses_total", "counter",
             "Response heads received from the backend, by the backend's status class.");
  for (const BackendRow& row : rows) {
    for (size_t i = 1; i <= 5; ++i) {
      Labels labels = backendLabels(row);
      labels.emplace_back("code", statusClassName(i));
      out.sample("speedmimi_backend_responses_total", labels, row.totals.responses_by_class[i]);
    }
  }
  perBackend(out, rows, "speedmimi_backend_received_bytes_total", "counter",
             "Bytes received from the backend.",
             [](const BackendRow& r) { return r.totals.bytes_in; });
  perBackend(out, rows, "speedmimi_backend_sent_bytes_total", "counter",
             "Bytes sent to the backend.", [](const BackendRow& r) { return r.totals.bytes_out; });
  out.family("speedmimi_backend_response_head_seconds", "histogram",
             "Time from the start of an attempt to the backend's response head.");
  for (const BackendRow& row : rows) {
    out.histogram("speedmimi_backend_response_head_seconds", backendLabels(row),
                  row.totals.head_time);
  }
  out.family("speedmimi_backend_latency_ewma_seconds", "gauge",
             "Moving average of the time to the response head, as the balancers see it "
             "(absent before the first response).");
  for (const BackendRow& row : rows) {
    if (row.latency_us == core::kLatencyUnmeasured) continue;
    out.sample("speedmimi_backend_latency_ewma_seconds", backendLabels(row),
               seconds(row.latency_us));
  }
}

}  // namespace

std::string escapeLabelValue(std::string_view value) {
  std::string out;
  out.reserve(value.size());
  for (char c : value) {
    switch (c) {
      case '\\':
        out += "\\\\";
        break;
      case '"':
        out += "\\\"";
        break;
      case '\n':
        out += "\\n";
        break;
      default:
        out += c;
    }
  }
  return out;
}

std::string formatValue(double value) {
  if (std::isnan(value)) return "NaN";
  if (std::isinf(value)) return value > 0 ? "+Inf" : "-Inf";
  // Plain decimals where they stay short ("0.0005" rather than "5e-04"), exponents beyond.
  double magnitude = std::fabs(value);
  bool plain = magnitude == 0 || (magnitude >= 1e-5 && magnitude < 1e16);
  char text[64];
  auto [end, ec] = plain ? std::to_chars(text, text + sizeof(text), value, std::chars_format::fixed)
                         : std::to_chars(text, text + sizeof(text), value);
  if (ec != std::errc()) return "NaN";  // cannot happen: 64 bytes hold either form
  return std::string(text, end);
}

void Exposition::family(std::string_view name, std::string_view type, std::string_view help) {
  // HELP text escapes backslash and line feed (not quotes).
  std::string escaped;
  for (char c : help) {
    if (c == '\\')
      escaped += "\\\\";
    else if (c == '\n')
      escaped += "\\n";
    else
      escaped += c;
  }
  out_.append("# HELP ").append(name).append(" ").append(escaped).append("\n");
  out_.append("# TYPE ").append(name).append(" ").append(type).append("\n");
}

void Exposition::series(std::string_view name, const Labels& labels, std::string_view extra_name,
                        std::string_view extra_value) {
  out_.append(name);
  if (labels.empty() && extra_name.empty()) return out_.push_back(' ');
  char separator = '{';
  auto label = [&](std::string_view key, std::string_view value) {
    out_.push_back(separator);
    out_.append(key).append("=\"").append(escapeLabelValue(value)).append("\"");
    separator = ',';
  };
  for (const auto& [key, value] : labels) label(key, value);
  if (!extra_name.empty()) label(extra_name, extra_value);
  out_.append("} ");
}

void Exposition::sample(std::string_view name, const Labels& labels, uint64_t value) {
  series(name, labels);
  out_.append(std::to_string(value)).append("\n");
}

void Exposition::sample(std::string_view name, const Labels& labels, int64_t value) {
  series(name, labels);
  out_.append(std::to_string(value)).append("\n");
}

void Exposition::sample(std::string_view name, const Labels& labels, double value) {
  series(name, labels);
  out_.append(formatValue(value)).append("\n");
}

void Exposition::histogram(std::string_view name, const Labels& labels,
                           const core::LatencyTotals& h) {
  std::string bucket = std::string(name) + "_bucket";
  uint64_t cumulative = 0;
  for (size_t i = 0; i < core::kLatencyBoundsUs.size(); ++i) {
    cumulative += h.buckets[i];
    series(bucket, labels, "le", formatValue(seconds(core::kLatencyBoundsUs[i])));
    out_.append(std::to_string(cumulative)).append("\n");
  }
  cumulative += h.buckets[core::kLatencyBuckets - 1];
  series(bucket, labels, "le", "+Inf");
  out_.append(std::to_string(cumulative)).append("\n");
  sample(std::string(name) + "_sum", labels, seconds(h.sum_us));
  // The +Inf bucket's value, not h.count(): the two must be equal in the output.
  sample(std::string(name) + "_count", labels, cumulative);
}

std::string renderMetrics(const core::Zone& zone, const MetricsInfo& info) {
  Exposition out;
  serverFamilies(out, zone, info);
  backendFamilies(out, backendRows(zone, info.now_ms));
  return out.take();
}

}  // namespace speedmimi::admin
