#include "admin/stats.h"

#include <time.h>

#include <algorithm>
#include <cstring>

#include "core/backend_json.h"
#include "core/slow_start.h"

namespace speedmimi::admin {
namespace {

constexpr auto kRelaxed = std::memory_order_relaxed;
constexpr int64_t kKeepMs = 61'000;
constexpr int64_t kReportTtlMs = 30'000;  // as the performance balancer counts reports

json_t* integer(uint64_t v) { return json_integer(static_cast<json_int_t>(v)); }

// {"1xx": n, ..., "5xx": n}; index 0 (no response) is left out.
json_t* byClass(const uint64_t (&counts)[6]) {
  json_t* out = json_object();
  for (size_t i = 1; i <= 5; ++i) json_object_set_new(out, statusClassName(i), integer(counts[i]));
  return out;
}

std::string isoTime(int64_t unix_ms) {
  time_t seconds = static_cast<time_t>(unix_ms / 1000);
  tm utc;
  gmtime_r(&seconds, &utc);
  char text[96];
  snprintf(text, sizeof(text), "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", utc.tm_year + 1900,
           utc.tm_mon + 1, utc.tm_mday, utc.tm_hour, utc.tm_min, utc.tm_sec,
           static_cast<int>(unix_ms % 1000));
  return text;
}

}  // namespace

const char* healthName(int health) {
  switch (static_cast<core::Health>(health)) {
    case core::Health::kUp: return "up";
    case core::Health::kDown: return "down";
    case core::Health::kUnknown: break;
  }
  return "unknown";
}

const char* statusClassName(size_t index) {
  static constexpr const char* kClasses[] = {"none", "1xx", "2xx", "3xx", "4xx", "5xx"};
  return index < 6 ? kClasses[index] : "none";
}

HealthView healthView(const core::BackendSlot& slot, int64_t now_ms) {
  if (slot.runtime.passive_down_until_ms.load(kRelaxed) > now_ms) {
    return {"down", "passive: max_fails failures within fail_timeout"};
  }
  return {healthName(slot.runtime.health.load(kRelaxed)),
          std::string(slot.health.reason, strnlen(slot.health.reason, sizeof(slot.health.reason)))};
}

void RequestRate::sample(uint64_t total, int64_t now_ms) {
  samples_.push_back({now_ms, total});
  while (!samples_.empty() && samples_.front().at_ms < now_ms - kKeepMs) samples_.pop_front();
}

double RequestRate::perSecond(int64_t window_ms) const {
  if (samples_.size() < 2) return 0;
  const Sample& last = samples_.back();
  // The newest sample at least `window_ms` older than the last one, else the oldest there is.
  const Sample* from = &samples_.front();
  for (const Sample& s : samples_) {
    if (s.at_ms <= last.at_ms - window_ms) from = &s;
  }
  if (last.at_ms <= from->at_ms || last.total < from->total) return 0;
  return static_cast<double>(last.total - from->total) * 1000.0 /
         static_cast<double>(last.at_ms - from->at_ms);
}

ServerTotals serverTotals(const core::Zone& zone) {
  ServerTotals t;
  auto add = [&t](const core::ServerCounters& c) {
    t.active_connections += c.active_connections.load(kRelaxed);
    t.accepted += c.accepted.load(kRelaxed);
    t.requests += c.requests.load(kRelaxed);
    t.retries += c.retries.load(kRelaxed);
    t.retries_refused += c.retries_refused.load(kRelaxed);
    for (size_t i = 0; i < 6; ++i) t.responses_by_class[i] += c.responses_by_class[i].load(kRelaxed);
    t.bytes_in += c.bytes_in.load(kRelaxed);
    t.bytes_out += c.bytes_out.load(kRelaxed);
    t.request_latency.add(c.request_latency);
  };
  const core::ServerCounters* slots = zone.workers();
  for (size_t i = 0; i < zone.workerSlotLimit(); ++i) {
    add(slots[i]);
    t.workers += slots[i].pid.load(kRelaxed) != 0 && slots[i].ready.load(kRelaxed) != 0;
  }
  add(zone.retiredCounters());
  if (t.active_connections < 0) t.active_connections = 0;
  return t;
}

core::JsonPtr serverStatsJson(const ServerTotals& t, const ServerInfo& info,
                              const RequestRate& rate, const HostFigures& host) {
  core::JsonPtr out(json_object());
  json_t* o = out.get();
  json_object_set_new(o, "version", json_string(info.version.c_str()));
  json_object_set_new(o, "uptime_seconds", json_integer(info.uptime_seconds));
  json_object_set_new(o, "generation", integer(info.generation));
  json_object_set_new(o, "workers", integer(t.workers));
  json_t* connections = json_object();
  json_object_set_new(connections, "active", json_integer(t.active_connections));
  json_object_set_new(connections, "accepted", integer(t.accepted));
  json_object_set_new(connections, "max", integer(info.max_conn));
  json_object_set_new(o, "connections", connections);
  json_t* requests = json_object();
  json_object_set_new(requests, "total", integer(t.requests));
  json_object_set_new(requests, "by_status_class", byClass(t.responses_by_class));
  json_object_set_new(requests, "retries", integer(t.retries));
  json_object_set_new(requests, "retries_refused", integer(t.retries_refused));
  json_t* per_second = json_object();
  json_object_set_new(per_second, "1s", json_real(rate.perSecond(1'000)));
  json_object_set_new(per_second, "10s", json_real(rate.perSecond(10'000)));
  json_object_set_new(per_second, "60s", json_real(rate.perSecond(60'000)));
  json_object_set_new(requests, "per_second", per_second);
  json_object_set_new(o, "requests", requests);
  json_object_set_new(o, "bytes_in", integer(t.bytes_in));
  json_object_set_new(o, "bytes_out", integer(t.bytes_out));
  json_object_set_new(o, "latency", latencyJson(t.request_latency).release());
  // The original README's host fields.
  json_object_set_new(o, "cpu_usage", json_real(host.cpu_usage));
  json_object_set_new(o, "memory_usage", json_real(host.memory_usage));
  json_object_set_new(o, "load_avg_1", json_real(host.load_avg_1));
  json_object_set_new(o, "load_avg_5", json_real(host.load_avg_5));
  json_object_set_new(o, "load_avg_15", json_real(host.load_avg_15));
  json_object_set_new(o, "network_in", integer(host.network_in));
  json_object_set_new(o, "network_out", integer(host.network_out));
  json_object_set_new(o, "timestamp", json_integer(host.timestamp));
  if (info.certificates) {
    json_object_set_new(o, "tls", tlsStatsJson(*info.certificates, info.now_unix).release());
  }
  return out;
}

int64_t expiresInDays(int64_t not_after, int64_t now) {
  const int64_t left = not_after - now;
  return left >= 0 ? left / 86400 : -((-left + 86399) / 86400);
}

std::string isoUtc(int64_t unix_seconds) {
  const time_t seconds = static_cast<time_t>(unix_seconds);
  tm utc;
  gmtime_r(&seconds, &utc);
  char text[64];
  strftime(text, sizeof(text), "%Y-%m-%dT%H:%M:%SZ", &utc);
  return text;
}

core::JsonPtr tlsStatsJson(const std::vector<event::CertificateInfo>& certificates, int64_t now) {
  core::JsonPtr out(json_object());
  json_t* list = json_array();
  for (const event::CertificateInfo& c : certificates) {
    json_t* names = json_array();
    for (const std::string& n : c.names) json_array_append_new(names, json_string(n.c_str()));
    const int64_t days = expiresInDays(c.not_after, now);
    json_t* entry = json_pack("{s:s, s:o, s:s, s:s, s:I}", "file", c.cert_file.c_str(), "names",
                              names, "key_type", c.key_type.c_str(), "not_after",
                              isoUtc(c.not_after).c_str(), "expires_in_days",
                              static_cast<json_int_t>(days));
    if (entry && days < kExpiryWarningDays) {
      const std::string warning = "expires in " + std::to_string(days) + " days";
      json_object_set_new(entry, "warning", json_string(warning.c_str()));
    }
    json_array_append_new(list, entry);
  }
  json_object_set_new(out.get(), "certificates", list);
  return out;
}

core::JsonPtr latencyJson(const core::LatencyTotals& h) {
  core::JsonPtr out(json_object());
  uint64_t count = h.count();
  auto ms = [count](double us) { return count ? json_real(us / 1000.0) : json_null(); };
  json_object_set_new(out.get(), "count", integer(count));
  json_object_set_new(out.get(), "mean_ms",
                      ms(count ? static_cast<double>(h.sum_us) / static_cast<double>(count) : 0));
  json_object_set_new(out.get(), "p50_ms", ms(h.quantileUs(0.5)));
  json_object_set_new(out.get(), "p90_ms", ms(h.quantileUs(0.9)));
  json_object_set_new(out.get(), "p99_ms", ms(h.quantileUs(0.99)));
  json_object_set_new(out.get(), "p999_ms", ms(h.quantileUs(0.999)));
  return out;
}

core::JsonPtr backendStateJson(const core::Zone& zone, size_t index, const core::BackendSlot& slot,
                               int64_t now_ms) {
  const core::ZoneBackendConfig* zc = slot.config.load(std::memory_order_acquire);
  if (!zc) return core::JsonPtr(json_object());
  core::JsonPtr out = core::backendToJson(core::fromZoneConfig(*zc));
  json_t* o = out.get();
  json_object_set_new(o, "upstream", json_string(zc->upstream));

  const core::BackendState& st = slot.runtime;
  // What the weighted balancers use now: `weight`, or less during a slow start.
  json_object_set_new(o, "effective_weight",
                      json_integer(core::slowStartWeight(
                          zc->weight, core::Duration(zc->slow_start_ms), st, now_ms)));
  json_t* health = json_object();
  HealthView view = healthView(slot, now_ms);
  json_object_set_new(health, "status", json_string(view.status));
  int64_t checked = slot.health.last_check_unix_ms.load(kRelaxed);
  json_object_set_new(health, "last_check",
                      checked ? json_string(isoTime(checked).c_str()) : json_null());
  json_object_set_new(health, "last_check_passed",
                      checked ? json_boolean(slot.health.last_passed.load(kRelaxed)) : json_null());
  json_object_set_new(health, "reason", json_string(view.reason.c_str()));
  json_object_set_new(health, "consecutive_failures",
                      json_integer(slot.health.consecutive_failures.load(kRelaxed)));
  json_object_set_new(health, "consecutive_successes",
                      json_integer(slot.health.consecutive_successes.load(kRelaxed)));
  json_t* history = json_array();
  for (const core::HealthEvent& e : zone.healthHistory(index)) {
    json_t* event = json_object();
    json_object_set_new(event, "time", json_string(isoTime(e.unix_ms).c_str()));
    json_object_set_new(event, "status", json_string(healthName(e.health)));
    json_object_set_new(event, "reason",
                        json_stringn(e.reason, strnlen(e.reason, sizeof(e.reason))));
    json_array_append_new(history, event);
  }
  json_object_set_new(health, "history", history);  // newest first
  json_object_set_new(o, "health", health);

  core::BackendTotals totals = zone.backendTotals(index);
  json_object_set_new(o, "active_connections",
                      json_integer(std::max<int64_t>(0, st.active_connections.load(kRelaxed))));
  json_object_set_new(o, "requests", integer(totals.requests));
  json_object_set_new(o, "failures", integer(totals.failures));
  json_object_set_new(o, "bytes_in", integer(totals.bytes_in));
  json_object_set_new(o, "bytes_out", integer(totals.bytes_out));
  json_object_set_new(o, "responses", byClass(totals.responses_by_class));
  json_object_set_new(o, "head_time", latencyJson(totals.head_time).release());
  uint64_t latency = st.latency_us.load(kRelaxed);
  json_object_set_new(o, "latency_ms", latency == core::kLatencyUnmeasured
                                           ? json_null()
                                           : json_real(static_cast<double>(latency) / 1000.0));

  int64_t reported = st.report_time_ms.load(std::memory_order_acquire);
  if (reported == 0) {
    json_object_set_new(o, "last_report", json_null());
  } else {
    json_t* report = json_object();
    json_object_set_new(report, "cpu_usage", json_real(st.report_cpu.load(kRelaxed) / 100.0));
    json_object_set_new(report, "memory_usage",
                        json_real(st.report_memory.load(kRelaxed) / 100.0));
    json_object_set_new(report, "load_avg_1", json_real(st.report_load.load(kRelaxed) / 100.0));
    json_object_set_new(report, "age_seconds", json_real((now_ms - reported) / 1000.0));
    json_object_set_new(report, "counts", json_boolean(now_ms - reported <= kReportTtlMs));
    json_object_set_new(o, "last_report", report);
  }
  return out;
}

}  // namespace speedmimi::admin
