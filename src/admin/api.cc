#include "admin/api.h"

#include <netinet/in.h>
#include <time.h>

#include <cstring>
#include <initializer_list>
#include <utility>

#include "admin/config_json.h"
#include "admin/metrics.h"
#include "admin/request_bodies.h"
#include "core/backend_json.h"
#include "core/clock.h"
#include "core/log.h"
#include "event/timer.h"

namespace speedmimi::admin {
namespace {

using core::JsonPtr;

constexpr std::chrono::milliseconds kWaitPoll{5};
constexpr std::chrono::milliseconds kSampleInterval{1000};

int64_t unixMs() {
  timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  return static_cast<int64_t>(ts.tv_sec) * 1000 + ts.tv_nsec / 1'000'000;
}

// The body as a JSON object; otherwise answers 400 and returns null.
JsonPtr objectBody(const CallPtr& call) {
  JsonPtr body;
  std::string error;
  if (!parseObject(call->body(), body, error)) call->fail(400, error);
  return body;
}

// The upstream and backend_id query parameters of remove and disconnect.
bool backendQuery(const CallPtr& call, std::string& upstream, std::string& id) {
  upstream = call->query("upstream");
  id = call->query("backend_id");
  if (upstream.empty()) return call->fail(400, "upstream: query parameter is required"), false;
  if (id.empty()) return call->fail(400, "backend_id: query parameter is required"), false;
  return true;
}

bool upstreamExists(const core::Zone& zone, const std::string& upstream) {
  bool found = false;
  zone.forEachLive([&](size_t, core::BackendSlot& slot) {
    const core::ZoneBackendConfig* zc = slot.config.load(std::memory_order_acquire);
    found |= zc && upstream == zc->upstream;
  });
  return found;
}

// 404 for an unknown upstream or backend, naming which one is unknown.
void notFound(const CallPtr& call, const core::Zone& zone, const std::string& upstream,
              const std::string& id) {
  if (!upstreamExists(zone, upstream)) {
    return call->fail(404, "upstream \"" + upstream + "\" has no backends (or does not exist)");
  }
  call->fail(404, "upstream \"" + upstream + "\" has no backend \"" + id + "\"");
}

// The index of a live backend's slot, or -1.
long slotIndex(const core::Zone& zone, const std::string& upstream, const std::string& id) {
  long found = -1;
  zone.forEachLive([&](size_t index, core::BackendSlot& slot) {
    const core::ZoneBackendConfig* zc = slot.config.load(std::memory_order_acquire);
    if (zc && upstream == zc->upstream && id == zc->id) found = static_cast<long>(index);
  });
  return found;
}

// An address for checking a backend's settings before its host is resolved (Zone::check
// refuses a backend without one): 0.0.0.0 at its port.
core::BackendAddress unresolved(int port) {
  core::BackendAddress a;
  auto* v4 = reinterpret_cast<sockaddr_in*>(&a.storage);
  v4->sin_family = AF_INET;
  v4->sin_port = htons(static_cast<uint16_t>(port));
  a.length = sizeof(sockaddr_in);
  return a;
}

core::BackendAddress addressOf(const core::ZoneBackendConfig& zc) {
  core::BackendAddress a;
  std::memcpy(&a.storage, &zc.address, sizeof(a.storage));
  a.length = zc.address_len;
  return a;
}

// As a reload decides (upstream/backend_table.cc): a new address or health check starts the
// backend's health again.
bool resetsHealth(const core::BackendConfig& a, const core::BackendConfig& b) {
  const core::HealthCheckConfig& x = a.health_check;
  const core::HealthCheckConfig& y = b.health_check;
  return a.host != b.host || a.port != b.port || a.scheme != b.scheme || x.enabled != y.enabled ||
         x.path != y.path || x.interval != y.interval || x.timeout != y.timeout ||
         x.failures != y.failures || x.successes != y.successes;
}

}  // namespace

struct Api::Waiter {
  CallPtr call;
  int status;
  std::string message;
  JsonPtr data;
  uint64_t generation;
  uint64_t tls_serial;
  int64_t deadline_ms;
};

Api::Api(ApiSetup setup, HttpServer& server)
    : setup_(std::move(setup)), resolver_(setup_.base) {
  auto on = [&](const char* path, Method method, void (Api::*handler)(const CallPtr&)) {
    server.route(path, method, [this, handler](const CallPtr& call) { (this->*handler)(call); });
  };
  on("/api/v1/config", Method::kGet, &Api::getConfig);
  on("/api/v1/config", Method::kPut, &Api::putConfig);
  on("/api/v1/config/reload-ssl", Method::kPost, &Api::reloadSsl);
  on("/api/v1/reload", Method::kPost, &Api::reload);
  on("/api/v1/upgrade", Method::kPost, &Api::upgrade);
  on("/api/v1/backends", Method::kGet, &Api::listBackends);
  on("/api/v1/backends/add", Method::kPost, &Api::addBackend);
  on("/api/v1/backends/remove", Method::kDelete, &Api::removeBackend);
  on("/api/v1/backends/update", Method::kPut, &Api::updateBackend);
  on("/api/v1/backends/disconnect", Method::kPost, &Api::disconnectBackend);
  on("/api/v1/stats/server", Method::kGet, &Api::serverStats);
  on("/api/v1/stats/backend", Method::kGet, &Api::backendStats);
  on("/api/v1/report", Method::kPost, &Api::report);
  on("/metrics", Method::kGet, &Api::metrics);
  wait_tick_ = event::newTimer(setup_.base, &Api::onWaitTick, this);
  sample_tick_ = event::newTimer(setup_.base, &Api::onSampleTick, this);
}

Api::~Api() = default;

bool Api::init(std::string& error) {
  try {
    overlay_ = core::loadStateFile(setup_.state_path);
  } catch (const core::ConfigError& e) {
    error = e.what();
    return false;
  }
  onSampleTick(-1, 0, this);
  return true;
}

core::Config Api::effectiveConfig() const {
  core::Config config = *setup_.yaml;
  try {
    overlay_.applyTo(config);
  } catch (const core::ConfigError& e) {
    SM_ERROR("the state file no longer applies to the configuration: %s", e.what());
    return *setup_.yaml;
  }
  return config;
}

// ---------------------------------------------------------------------------------------------
// Answers after the workers applied a change.

bool Api::workersApplied(uint64_t generation, uint64_t tls_serial) const {
  const core::ServerCounters* slots = setup_.zone->workers();
  for (size_t i = 0; i < setup_.zone->workerSlotLimit(); ++i) {
    const core::ServerCounters& w = slots[i];
    if (w.pid.load(std::memory_order_acquire) == 0 || !w.ready.load(std::memory_order_acquire)) {
      continue;  // no worker, or one starting or draining
    }
    if (w.seen_generation.load(std::memory_order_acquire) < generation ||
        w.seen_tls_serial.load(std::memory_order_acquire) < tls_serial) {
      return false;
    }
  }
  return true;
}

std::string Api::workerTlsFailures(uint64_t tls_serial) const {
  std::string out;
  const core::ServerCounters* slots = setup_.zone->workers();
  for (size_t i = 0; tls_serial != 0 && i < setup_.zone->workerSlotLimit(); ++i) {
    const int32_t pid = slots[i].pid.load(std::memory_order_acquire);
    if (pid == 0 || !slots[i].ready.load(std::memory_order_acquire)) continue;
    const std::string why = setup_.zone->tlsFailure(i, tls_serial);
    if (why.empty()) continue;
    if (!out.empty()) out += "; ";
    out += "worker " + std::to_string(pid) + ": " + why;
  }
  return out;
}

void Api::answerApplied(const CallPtr& call, int status, const std::string& message, JsonPtr data,
                        uint64_t tls_serial) {
  const std::string failed = workerTlsFailures(tls_serial);
  if (failed.empty()) return call->succeed(status, message, std::move(data));
  SM_ERROR("API: reload-ssl: a worker kept its certificates: %s", failed.c_str());
  const char* const kWhat = "not every worker loaded the certificates: ";
  call->fail(500, kWhat + failed + " (each of those serves the ones it had)");
}

void Api::answerWhenApplied(const CallPtr& call, int status, const std::string& message,
                            JsonPtr data, uint64_t tls_serial) {
  uint64_t generation = setup_.zone->generation();
  if (workersApplied(generation, tls_serial)) {
    return answerApplied(call, status, message, std::move(data), tls_serial);
  }
  setup_.zone->wakeWorkers();  // rather than wait for their next tick
  waiters_.push_back(std::make_unique<Waiter>(
      Waiter{call, status, message, std::move(data), generation, tls_serial,
             core::monotonicMs() + kApplyWait.count()}));
  if (!wait_armed_) {
    event::addTimer(wait_tick_.get(), kWaitPoll);
    wait_armed_ = true;
  }
}

void Api::onWaitTick(evutil_socket_t, short, void* arg) {
  auto* self = static_cast<Api*>(arg);
  self->wait_armed_ = false;
  int64_t now = core::monotonicMs();
  std::vector<std::unique_ptr<Waiter>> waiting;
  for (auto& w : self->waiters_) {
    if (self->workersApplied(w->generation, w->tls_serial)) {
      self->answerApplied(w->call, w->status, w->message, std::move(w->data), w->tls_serial);
    } else if (now >= w->deadline_ms) {
      SM_WARN("API: not every worker applied generation %llu within %lld ms",
              static_cast<unsigned long long>(w->generation),
              static_cast<long long>(kApplyWait.count()));
      w->call->succeed(w->status, w->message + " (not every worker has applied it yet)",
                       std::move(w->data));
    } else {
      waiting.push_back(std::move(w));
    }
  }
  self->waiters_ = std::move(waiting);
  if (!self->waiters_.empty()) {
    event::addTimer(self->wait_tick_.get(), kWaitPoll);
    self->wait_armed_ = true;
  }
}

void Api::onSampleTick(evutil_socket_t, short, void* arg) {
  auto* self = static_cast<Api*>(arg);
  self->host_.sample();
  self->rate_.sample(serverTotals(*self->setup_.zone).requests, core::monotonicMs());
  event::addTimer(self->sample_tick_.get(), kSampleInterval);
}

bool Api::usableTls(const CallPtr& call, const core::BackendConfig& b) {
  std::string error;
  if (!setup_.certificates || setup_.certificates->checkBackend(b, error)) return true;
  call->fail(400, error);
  return false;
}

bool Api::usableTls(const CallPtr& call, const core::Config& config) {
  if (!setup_.certificates) return true;
  try {
    setup_.certificates->check(config);
    return true;
  } catch (const core::ConfigError& e) {
    call->fail(400, apiError(e));
    return false;
  }
}

bool Api::refuseWhileBusy(const CallPtr& call) {
  if (!busy_) return false;
  call->fail(409, std::string(busy_) + " is in progress; try again once it is done");
  return true;
}

bool Api::commit(const CallPtr& call, core::StateOverlay next,
                 const std::function<core::ChangeResult()>& change, core::ChangeResult& result) {
  core::StateOverlay previous = overlay_;
  if (!persist(call, std::move(next))) return false;
  result = change();
  if (result.ok()) return true;
  std::string error;
  if (core::saveStateFile(setup_.state_path, previous, error)) {
    overlay_ = std::move(previous);
  } else {
    SM_ERROR("API: cannot put the state file back after a refused change: %s", error.c_str());
  }
  call->fail(result.status, result.message);
  return false;
}

JsonPtr Api::backendData(const std::string& upstream, const std::string& id) const {
  JsonPtr data(json_object());
  long index = slotIndex(*setup_.zone, upstream, id);
  if (index < 0) return data;
  size_t i = static_cast<size_t>(index);
  json_object_set_new(data.get(), "backend",
                      backendStateJson(*setup_.zone, i, *setup_.zone->slot(i), core::monotonicMs())
                          .release());
  return data;
}

bool Api::persist(const CallPtr& call, core::StateOverlay next) {
  std::string error;
  if (!core::saveStateFile(setup_.state_path, next, error)) {
    SM_ERROR("API: cannot write the state file: %s", error.c_str());
    call->fail(500, "cannot write the state file, so nothing was changed: " + error);
    return false;
  }
  overlay_ = std::move(next);
  return true;
}

// ---------------------------------------------------------------------------------------------
// Backends.

void Api::listBackends(const CallPtr& call) {
  const core::Zone& zone = *setup_.zone;
  int64_t now = core::monotonicMs();
  std::string upstream = call->query("upstream");
  core::Config effective = effectiveConfig();
  if (call->hasQuery("upstream")) {
    if (!upstreamExists(zone, upstream) && !effective.backends.count(upstream)) {
      return call->fail(404, "no upstream \"" + upstream + "\"");
    }
  }
  JsonPtr upstreams(json_object());
  for (const auto& [name, list] : effective.backends) {
    json_object_set_new(upstreams.get(), name.c_str(), json_array());
  }
  zone.forEachLive([&](size_t index, core::BackendSlot& slot) {
    const core::ZoneBackendConfig* zc = slot.config.load(std::memory_order_acquire);
    if (!zc) return;
    json_t* list = json_object_get(upstreams.get(), zc->upstream);
    if (!list) {
      list = json_array();
      json_object_set_new(upstreams.get(), zc->upstream, list);
    }
    json_array_append_new(list, backendStateJson(zone, index, slot, now).release());
  });
  JsonPtr data(json_object());
  if (call->hasQuery("upstream")) {
    json_object_set_new(data.get(), "upstream", json_string(upstream.c_str()));
    json_object_set(data.get(), "backends", json_object_get(upstreams.get(), upstream.c_str()));
    size_t n = json_array_size(json_object_get(upstreams.get(), upstream.c_str()));
    return call->succeed(200, std::to_string(n) + " backends in upstream \"" + upstream + "\"",
                         std::move(data));
  }
  json_object_set(data.get(), "upstreams", upstreams.get());
  call->succeed(200, std::to_string(json_object_size(upstreams.get())) + " upstreams",
                std::move(data));
}

void Api::addBackend(const CallPtr& call) {
  if (refuseWhileBusy(call)) return;
  JsonPtr body = objectBody(call);
  AddBody add;
  std::string error;
  if (!body) return;
  if (!readAddBody(body.get(), add, error)) return call->fail(400, error);
  const std::string& upstream = add.upstream;
  const core::BackendConfig& b = add.backend;
  if (!usableTls(call, b)) return;
  if (setup_.zone->find(upstream, b.id)) {
    return call->fail(409, "upstream \"" + upstream + "\" already has a backend \"" + b.id + "\"");
  }
  core::ChangeResult check = setup_.zone->check(upstream, b, unresolved(b.port));
  if (!check.ok()) return call->fail(check.status, check.message);
  if (setup_.zone->freeSlots() == 0) {
    return call->fail(507, "the backend table is full (raise server.shm_size)");
  }
  resolver_.resolve(b.host, b.port,
                    [this, call, upstream, b](bool ok, const core::BackendAddress& address,
                                              const std::string& why) {
                      if (!ok) return call->fail(400, "backend.host: " + why);
                      commitAdd(call, upstream, b, address);
                    });
}

void Api::commitAdd(const CallPtr& call, const std::string& upstream, const core::BackendConfig& b,
                    const core::BackendAddress& address) {
  if (refuseWhileBusy(call)) return;
  if (setup_.zone->find(upstream, b.id)) {  // added meanwhile by another call
    return call->fail(409, "upstream \"" + upstream + "\" already has a backend \"" + b.id + "\"");
  }
  core::StateOverlay next = overlay_;
  next.added(upstream, b);
  core::ChangeResult r;
  if (!commit(call, std::move(next), [&] { return setup_.zone->addBackend(upstream, b, address); },
              r)) {
    return;
  }
  SM_NOTICE("API: %s", r.message.c_str());
  answerWhenApplied(call, 201, r.message, backendData(upstream, b.id));
}

void Api::removeBackend(const CallPtr& call) {
  if (refuseWhileBusy(call)) return;
  std::string upstream, id;
  if (!backendQuery(call, upstream, id)) return;
  if (!setup_.zone->find(upstream, id)) return notFound(call, *setup_.zone, upstream, id);
  core::StateOverlay next = overlay_;
  next.removed(upstream, id);
  core::ChangeResult r;
  if (!commit(call, std::move(next), [&] { return setup_.zone->removeBackend(upstream, id); }, r)) {
    return;
  }
  SM_NOTICE("API: %s", r.message.c_str());
  answerWhenApplied(call, 200, r.message + "; requests in flight to it finish", nullptr);
}

void Api::updateBackend(const CallPtr& call) {
  if (refuseWhileBusy(call)) return;
  JsonPtr body = objectBody(call);
  UpdateBody update;
  std::string error;
  if (!body) return;
  if (!readUpdateBody(body.get(), update, error)) return call->fail(400, error);
  const std::string& upstream = update.upstream;
  const std::string& id = update.id;
  JsonPtr fields = std::move(update.fields);
  const core::BackendSlot* slot = setup_.zone->find(upstream, id);
  if (!slot) return notFound(call, *setup_.zone, upstream, id);
  core::BackendConfig b = core::fromZoneConfig(*slot->config.load(std::memory_order_acquire));
  if (!core::backendFromJson(fields.get(), "backend", b, error)) return call->fail(400, error);
  if (!usableTls(call, b)) return;
  const core::ZoneBackendConfig& now = *slot->config.load(std::memory_order_acquire);
  core::ChangeResult check = setup_.zone->check(upstream, b, addressOf(now));
  if (!check.ok()) return call->fail(check.status, check.message);
  if (b.host == now.host && b.port == now.port) {
    return commitUpdate(call, upstream, b, addressOf(now), false, std::move(fields));
  }
  auto shared = std::make_shared<JsonPtr>(std::move(fields));
  resolver_.resolve(b.host, b.port,
                    [this, call, upstream, b, shared](bool ok, const core::BackendAddress& address,
                                                      const std::string& why) {
                      if (!ok) return call->fail(400, "backend.host: " + why);
                      commitUpdate(call, upstream, b, address, true, std::move(*shared));
                    });
}

// `b` was computed from the backend's settings when the call arrived; they are read again here,
// so that an update answered meanwhile is not undone: only `fields` are applied to them.
void Api::commitUpdate(const CallPtr& call, const std::string& upstream,
                       const core::BackendConfig& b, const core::BackendAddress& address,
                       bool resolved, JsonPtr fields) {
  if (refuseWhileBusy(call)) return;
  const core::BackendSlot* slot = setup_.zone->find(upstream, b.id);
  if (!slot) return notFound(call, *setup_.zone, upstream, b.id);
  const core::ZoneBackendConfig& now = *slot->config.load(std::memory_order_acquire);
  core::BackendConfig current = core::fromZoneConfig(now);
  core::BackendConfig next_config = current;
  std::string error;
  if (!core::backendFromJson(fields.get(), "backend", next_config, error)) {
    return call->fail(400, error);
  }
  core::BackendAddress target = addressOf(now);
  if (next_config.host != current.host || next_config.port != current.port) {
    if (!resolved || next_config.host != b.host || next_config.port != b.port) {
      return call->fail(409, "backend \"" + b.id + "\" changed while its host was resolved; retry");
    }
    target = address;
  }
  core::StateOverlay next = overlay_;
  next.updated(upstream, b.id, fields.get());
  core::ChangeResult r;
  bool reset = resetsHealth(current, next_config);
  if (!commit(call, std::move(next),
              [&] { return setup_.zone->updateBackend(upstream, next_config, target, reset); }, r)) {
    return;
  }
  SM_NOTICE("API: %s: %s", r.message.c_str(), core::jsonText(fields.get()).c_str());
  answerWhenApplied(call, 200, r.message, backendData(upstream, b.id));
}

void Api::disconnectBackend(const CallPtr& call) {
  if (refuseWhileBusy(call)) return;
  std::string upstream, id;
  if (!backendQuery(call, upstream, id)) return;
  if (!setup_.zone->find(upstream, id)) return notFound(call, *setup_.zone, upstream, id);
  JsonPtr inactive(json_pack("{s:b}", "active", 0));
  core::StateOverlay next = overlay_;
  next.updated(upstream, id, inactive.get());
  core::ChangeResult r;
  if (!commit(call, std::move(next), [&] { return setup_.zone->disconnectBackend(upstream, id); },
              r)) {
    return;
  }
  SM_NOTICE("API: backend \"%s\" of upstream \"%s\" disconnected", id.c_str(), upstream.c_str());
  answerWhenApplied(call, 200,
                    "backend \"" + id + "\" of upstream \"" + upstream +
                        "\" is inactive; its idle connections, tunnels and event streams are "
                        "closed; requests in flight finish",
                    nullptr);
}

void Api::report(const CallPtr& call) {
  JsonPtr body = objectBody(call);
  ReportBody report;
  std::string error;
  if (!body) return;
  if (!readReportBody(body.get(), report, error)) return call->fail(400, error);
  const std::string& upstream = report.upstream;
  const std::string& id = report.id;
  const core::PerformanceReport& r = report.report;
  if (!setup_.zone->find(upstream, id)) return notFound(call, *setup_.zone, upstream, id);
  core::ChangeResult result = setup_.zone->recordReport(upstream, id, r, core::monotonicMs());
  if (!result.ok()) return call->fail(result.status, result.message);
  JsonPtr data(json_object());
  json_object_set(data.get(), "performance", json_object_get(body.get(), "performance"));
  call->succeed(200, result.message, std::move(data));
}

// ---------------------------------------------------------------------------------------------
// Statistics.

void Api::serverStats(const CallPtr& call) {
  ServerInfo info;
  info.version = PACKAGE_VERSION;
  info.generation = setup_.generation;
  info.uptime_seconds = (unixMs() - setup_.started_unix_ms) / 1000;
  info.max_conn = setup_.yaml->server.max_conn;
  if (setup_.yaml->ssl.enabled && setup_.certificates) {
    info.certificates = &setup_.certificates->served();
    info.now_unix = unixMs() / 1000;
  }
  JsonPtr data = serverStatsJson(serverTotals(*setup_.zone), info, rate_, host_.current());
  call->succeed(200, "server statistics", std::move(data));
}

void Api::metrics(const CallPtr& call) {
  MetricsInfo info;
  info.version = PACKAGE_VERSION;
  info.generation = setup_.generation;
  info.start_unix_ms = setup_.started_unix_ms;
  info.now_ms = core::monotonicMs();
  call->answer(200, renderMetrics(*setup_.zone, info), kMetricsContentType);
}

void Api::backendStats(const CallPtr& call) {
  std::string upstream = call->query("upstream");
  if (upstream.empty()) return call->fail(400, "upstream: query parameter is required");
  const core::Zone& zone = *setup_.zone;
  int64_t now = core::monotonicMs();
  if (call->hasQuery("backend_id")) {
    std::string id = call->query("backend_id");
    long index = slotIndex(zone, upstream, id);
    if (index < 0) return notFound(call, zone, upstream, id);
    JsonPtr data(json_object());
    json_object_set_new(data.get(), "upstream", json_string(upstream.c_str()));
    json_object_set_new(data.get(), "backend",
                        backendStateJson(zone, static_cast<size_t>(index),
                                         *zone.slot(static_cast<size_t>(index)), now)
                            .release());
    return call->succeed(200, "statistics of backend \"" + id + "\"", std::move(data));
  }
  JsonPtr list(json_array());
  zone.forEachLive([&](size_t index, core::BackendSlot& slot) {
    const core::ZoneBackendConfig* zc = slot.config.load(std::memory_order_acquire);
    if (zc && upstream == zc->upstream) {
      json_array_append_new(list.get(), backendStateJson(zone, index, slot, now).release());
    }
  });
  if (json_array_size(list.get()) == 0 && !effectiveConfig().backends.count(upstream)) {
    return call->fail(404, "no upstream \"" + upstream + "\"");
  }
  JsonPtr data(json_object());
  json_object_set_new(data.get(), "upstream", json_string(upstream.c_str()));
  json_object_set_new(data.get(), "backends", list.release());
  call->succeed(200, "statistics of upstream \"" + upstream + "\"", std::move(data));
}

// ---------------------------------------------------------------------------------------------
// Configuration and lifecycle.

void Api::getConfig(const CallPtr& call) {
  core::Config effective = effectiveConfig();
  JsonPtr data(json_object());
  try {
    call->addHeader("ETag", configEtag(effective));
    json_object_set_new(data.get(), "config", configToJson(effective).release());
  } catch (const std::exception& e) {
    return call->fail(500, std::string("cannot show the configuration: ") + e.what());
  }
  call->succeed(200, "the effective configuration: " + setup_.yaml->file + " and " +
                         setup_.state_path,
                std::move(data));
}

void Api::putConfig(const CallPtr& call) {
  if (refuseWhileBusy(call)) return;
  JsonPtr body = objectBody(call);
  const json_t* given = nullptr;
  std::string error;
  if (!body) return;
  if (!readConfigBody(body.get(), given, error)) return call->fail(400, error);
  core::Config current = effectiveConfig();
  std::string etag;
  try {
    etag = configEtag(current);
  } catch (const std::exception& e) {
    return call->fail(500, std::string("cannot compute the configuration's ETag: ") + e.what());
  }
  if (const char* if_match = call->header("If-Match")) {
    if (std::string(if_match) != "*" && std::string(if_match) != etag) {
      call->addHeader("ETag", etag);
      return call->fail(412, std::string("the configuration changed since ETag ") + if_match +
                                 " (it is now " + etag + "); GET it again");
    }
  }
  // A section the body leaves out keeps its current settings (the original README's call sends
  // server, backends and routing only: ssl and admin, with its token, must not fall back to
  // their defaults). Within a section given, a key left out takes its default, as in a file.
  JsonPtr merged(json_deep_copy(given));
  try {
    JsonPtr shown = configToJson(current);
    const char* section;
    json_t* value;
    json_object_foreach(shown.get(), section, value) {
      if (!json_object_get(merged.get(), section)) json_object_set(merged.get(), section, value);
    }
  } catch (const std::exception& e) {
    return call->fail(500, std::string("cannot read the current configuration: ") + e.what());
  }
  given = merged.get();
  core::Config next;
  if (!configFromJson(given, setup_.yaml->file, setup_.known, next, error)) {
    return call->fail(400, error);
  }
  if (!usableTls(call, next)) return;
  std::string next_etag;
  try {
    next_etag = configEtag(next);
  } catch (const std::exception& e) {
    return call->fail(400, std::string("config: ") + e.what());
  }
  std::string dry_run = call->query("dry_run");
  if (dry_run == "true" || dry_run == "1" || dry_run == "yes") {
    JsonPtr data(json_pack("{s:s}", "etag", next_etag.c_str()));
    return call->succeed(200, "the configuration is valid; nothing was changed (dry_run)",
                         std::move(data));
  }
  const std::string& file = setup_.yaml->file;
  if (!writeConfigFile(file, next, error)) return call->fail(500, error);
  core::StateOverlay previous = overlay_;
  auto restore = [this, file, previous]() {
    std::string why;
    if (rename((file + ".bak").c_str(), file.c_str()) != 0) {
      SM_ERROR("API: cannot restore %s from %s.bak: %s", file.c_str(), file.c_str(),
               std::strerror(errno));
    }
    if (core::saveStateFile(setup_.state_path, previous, why)) {
      overlay_ = previous;
    } else {
      SM_ERROR("API: cannot restore the state file: %s", why.c_str());
    }
  };
  if (!persist(call, core::StateOverlay{})) {
    restore();
    return;
  }
  SM_NOTICE("API: %s replaced; reloading", file.c_str());
  busy_ = "a reload";
  setup_.lifecycle->reload([this, call, restore, next_etag, file](bool ok, int64_t generation,
                                                                  const std::string& why) {
    busy_ = nullptr;
    if (!ok) {
      restore();
      return call->fail(500, "reload failed: " + why + "; " + file + " and the state file were " +
                                 "restored, and the running generation serves unchanged");
    }
    JsonPtr data(json_pack("{s:I,s:s}", "generation", static_cast<json_int_t>(generation),
                           "etag", next_etag.c_str()));
    call->addHeader("ETag", next_etag);
    call->succeed(200,
                  "configuration written to " + file + " (the previous one is " + file +
                      ".bak); generation " + std::to_string(generation) + " serves it",
                  std::move(data));
  });
}

// The certificates and keys are loaded here first, as the configuration names them: a bad pair
// changes nothing. Then the zone's TLS serial moves and every worker loads them too.
void Api::reloadSsl(const CallPtr& call) {
  if (refuseWhileBusy(call)) return;
  if (!setup_.yaml->ssl.enabled) {
    return call->fail(409, "TLS is not enabled (ssl.enabled: false): there are no certificates "
                           "to reload");
  }
  std::string error;
  if (!setup_.certificates || !setup_.certificates->reload(*setup_.yaml, error)) {
    SM_ERROR("API: reload-ssl failed: %s; the certificates in use stay", error.c_str());
    return call->fail(500, setup_.certificates ? error : "no certificates are loaded here");
  }
  const uint64_t serial = setup_.zone->bumpTlsSerial();
  const size_t count = setup_.certificates->served().size();
  SM_NOTICE("API: SSL certificates reloaded (%zu)", count);
  answerWhenApplied(call, 200, "SSL certificates reloaded",
                    JsonPtr(json_pack("{s:I}", "certificates", static_cast<json_int_t>(count))),
                    serial);
}

void Api::reload(const CallPtr& call) {
  if (refuseWhileBusy(call)) return;
  try {
    core::Config yaml = core::loadConfigFile(setup_.yaml->file, setup_.known);
    core::Config effective = core::applyStateFile(yaml, setup_.state_path, setup_.known);
    if (setup_.certificates) setup_.certificates->check(effective);
  } catch (const core::ConfigError& e) {
    return call->fail(500, std::string("reload failed: ") + e.what() +
                               "; the running generation serves unchanged");
  }
  busy_ = "a reload";
  setup_.lifecycle->reload([this, call](bool ok, int64_t generation, const std::string& why) {
    busy_ = nullptr;
    if (!ok) return call->fail(500, "reload failed: " + why);
    JsonPtr data(json_pack("{s:I}", "generation", static_cast<json_int_t>(generation)));
    call->succeed(200, "reload done: generation " + std::to_string(generation) + " serves",
                  std::move(data));
  });
}

void Api::upgrade(const CallPtr& call) {
  if (refuseWhileBusy(call)) return;
  busy_ = "a binary upgrade";
  setup_.lifecycle->upgrade([this, call](bool ok, int64_t pid, const std::string& why) {
    busy_ = nullptr;
    if (!ok) return call->fail(500, "binary upgrade failed: " + why);
    JsonPtr data(json_pack("{s:I}", "new_master_pid", static_cast<json_int_t>(pid)));
    call->succeed(200, "binary upgrade done: the new master is " + std::to_string(pid),
                  std::move(data));
  });
}

}  // namespace speedmimi::admin
