// The shared-memory zone (DESIGN §3): mapped by the master before the first fork and kept for the
// life of the server. It holds the per-worker server counters, the backend table (configuration
// and runtime state of every backend, grouped into upstreams by name) and a generation counter.
//
// Who does what:
// - the request path (workers) only loads and updates atomics: runtime counters, health;
// - structural changes (add / remove / update a backend) are made by one process at a time (the
//   master before forking, then the control process) and published by bumping `generation`;
//   workers see the bump within 100 ms and rebuild their local view;
// - a removed backend's slot, and a replaced configuration block, are reused only once every
//   worker has applied a later generation and nothing is in flight to that backend.
#pragma once

#include <sys/socket.h>

#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "core/config_types.h"
#include "core/shm.h"
#include "core/slab.h"
#include "upstream/backend.h"

namespace speedmimi::core {

constexpr size_t kMaxWorkers = 256;

// Per-worker server counters (one slot per worker; the server's figures are the sum).
struct ServerCounters {
  std::atomic<int64_t> active_connections{0};
  std::atomic<uint64_t> accepted{0};
  std::atomic<uint64_t> requests{0};
  std::atomic<uint64_t> responses_by_class[6]{};  // index = status / 100 (0: none sent)
  std::atomic<uint64_t> bytes_in{0};              // from clients
  std::atomic<uint64_t> bytes_out{0};             // to clients
  std::atomic<uint64_t> seen_generation{0};       // the zone generation this worker applied
  std::atomic<int32_t> pid{0};                    // 0: no worker in this slot
};

// A backend's configuration as stored in the zone: fixed-size, copied in and out whole.
struct ZoneBackendConfig {
  static constexpr size_t kShort = 64;   // upstream, id, scheme
  static constexpr size_t kLong = 256;   // name, host, health path
  char upstream[kShort];
  char id[kShort];
  char name[kLong];
  char host[kLong];
  char health_path[kLong];
  char scheme[kShort];
  int32_t port;
  int32_t weight;
  int32_t max_fails;
  int32_t health_failures;
  int32_t health_successes;
  uint64_t max_conn;
  int64_t fail_timeout_ms;
  int64_t health_interval_ms;
  int64_t health_timeout_ms;
  bool active;
  bool tls_verify;
  bool health_enabled;
  // Resolved when the backend is added or updated (master or control process), so workers
  // never block on a name lookup.
  sockaddr_storage address;
  uint32_t address_len;
};

// Copies a backend into the zone form; false with `error` when a string does not fit.
bool toZoneConfig(const std::string& upstream, const BackendConfig& in, ZoneBackendConfig& out,
                  std::string& error);
BackendConfig fromZoneConfig(const ZoneBackendConfig& in);

// Active health-check results, written by the control process only.
struct HealthRecord {
  std::atomic<int32_t> consecutive_failures{0};
  std::atomic<int32_t> consecutive_successes{0};
  std::atomic<int64_t> last_check_unix_ms{0};  // wall clock; 0 = never checked
  std::atomic<int32_t> last_passed{0};         // 1 passed, 0 failed or never
  char reason[160];                            // why the last state change happened
};

enum class SlotState : uint32_t { kFree = 0, kLive = 1, kRemoved = 2 };

struct BackendSlot {
  std::atomic<uint32_t> state{0};        // SlotState
  std::atomic<uint64_t> incarnation{0};  // bumped each time the slot is (re)used
  std::atomic<uint64_t> removed_at{0};   // generation of the removal
  std::atomic<ZoneBackendConfig*> config{nullptr};
  upstream::BackendState runtime;
  HealthRecord health;
  // Each worker's share of runtime.active_connections, so the share of a worker that died can
  // be taken back out (Zone::forgetWorker).
  std::atomic<int32_t> worker_active[kMaxWorkers];
};

struct ZoneHeader;

struct PerformanceReport {
  double cpu_usage = 0;     // percent
  double memory_usage = 0;  // percent
  double disk_usage = 0;    // percent
  double load_avg_1 = 0;
  double load_avg_5 = 0;
  double load_avg_15 = 0;
  uint64_t network_in = 0;
  uint64_t network_out = 0;
  int64_t timestamp = 0;  // as sent by the backend (unix seconds)
};

// Outcome of a runtime change, shaped for the management API (HTTP status + message).
struct ChangeResult {
  int status = 200;  // 200/201 ok, 400 invalid, 404 unknown, 409 duplicate, 507 zone full
  std::string message;
  bool ok() const { return status < 300; }
};

class Zone {
 public:
  // Maps `config.server.shm_size` bytes and loads every backend of `config`. nullptr with
  // `error` set when the zone is too small or a value does not fit.
  static std::unique_ptr<Zone> create(const Config& config, std::string& error);
  ~Zone();

  ServerCounters* workers() const;
  uint64_t generation() const;
  size_t slotCapacity() const;
  BackendSlot* slot(size_t index) const;

  // Live backends in slot order (a consistent snapshot needs the caller to compare
  // generation() before and after).
  void forEachLive(const std::function<void(size_t index, BackendSlot&)>& fn) const;
  // The live backend `id` of `upstream`, or nullptr.
  BackendSlot* find(const std::string& upstream, const std::string& id) const;

  // Structural changes: one process at a time (the control process). Each publishes a new
  // generation. `config` is validated like the YAML (ids, ports, weights...).
  ChangeResult addBackend(const std::string& upstream, const BackendConfig& config);
  ChangeResult removeBackend(const std::string& upstream, const std::string& id);
  ChangeResult updateBackend(const std::string& upstream, const BackendConfig& config);

  // A backend's utilization report (POST /api/v1/report): percentages 0..100, loads >= 0.
  // `now_ms` is the steady clock the balancers compare report times against.
  ChangeResult recordReport(const std::string& upstream, const std::string& id,
                            const PerformanceReport& report, int64_t now_ms);

  // Frees removed slots and replaced configuration blocks that no worker can still see (every
  // worker has applied a later generation and nothing is in flight). Control process only.
  void reclaim();

  // A worker died: removes its in-flight exchanges from every backend's active connections.
  // Master only, after the worker is reaped.
  void forgetWorker(size_t worker);

  // Bytes the zone offers the slab (for tests and statistics).
  Slab& slab() const;

 private:
  Zone() = default;
  ChangeResult validate(const std::string& upstream, const BackendConfig& config) const;
  // A configuration block from the slab, filled; nullptr with `failure` set (507 or 400).
  ZoneBackendConfig* newBlock(const std::string& upstream, const BackendConfig& config,
                              ChangeResult& failure);
  void publish();
  void retire(ZoneBackendConfig* block);

  SharedMemory memory_;
  ZoneHeader* header_ = nullptr;
};

}  // namespace speedmimi::core
