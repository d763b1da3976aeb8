// The shared-memory zone (DESIGN §3): mapped by the master before the first fork and kept for the
// life of the server. It holds the per-worker server counters, the backend table (configuration
// and runtime state of every backend, grouped into upstreams by name) and a generation counter.
//
// Who does what:
// - the request path (workers) only loads and updates atomics: runtime counters, health;
// - structural changes (add / remove / update / disconnect a backend) are made under the zone's
//   writer lock (by the master at start and reload, by the control process at run time) and
//   published by bumping `generation`;
//   workers see the bump within 100 ms and rebuild their local view;
// - a removed backend's slot, and a replaced configuration block, are reused only once every
//   worker has applied a later generation and nothing is in flight to that backend.
#pragma once

#include <sys/socket.h>
#include <sys/types.h>

#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "core/config_types.h"
#include "core/shm.h"
#include "core/slab.h"
#include "core/zone_types.h"

namespace speedmimi::core {

// Copies a backend and its resolved address into the zone form; false with `error` when a
// string does not fit.
bool toZoneConfig(const std::string& upstream, const BackendConfig& in,
                  const BackendAddress& address, ZoneBackendConfig& out, std::string& error);
BackendConfig fromZoneConfig(const ZoneBackendConfig& in);

struct ZoneHeader;

class Zone {
 public:
  // Maps `size` bytes of shared memory (a memfd, so a new binary can inherit it) with room for
  // `backend_capacity` backends. nullptr with `error` set when the zone is too small.
  static std::unique_ptr<Zone> create(size_t size, size_t backend_capacity, std::string& error);
  // Maps a zone inherited from the binary before an upgrade (its memfd and address, see fd() and
  // address()). nullptr with `error` set when it cannot be mapped at the same address or was
  // laid out by a different version; the caller then starts a clean zone.
  static std::unique_ptr<Zone> inherit(int fd, uintptr_t address, std::string& error);
  ~Zone();

  int fd() const { return memory_.fd(); }
  uintptr_t address() const { return reinterpret_cast<uintptr_t>(memory_.data()); }
  size_t size() const { return memory_.size(); }

  // Per-worker server counters: kWorkerSlots slots, handed out by the masters (old and new
  // workers overlap during a reload, and two masters share the zone during a binary upgrade).
  // Sums run over [0, workerSlotLimit()).
  ServerCounters* workers() const;
  size_t workerSlotLimit() const;
  const std::atomic<uint32_t>* workerSlotLimitPtr() const;
  // Takes a free slot for a new worker, zeroed, and raises the limit to cover it. Its pid is
  // `owner` (the master) until the worker's own is stored, so that reclaim() waits for the
  // worker from the start. A slot's first claim also takes its row of backend counters from the
  // slab (see backendCounters). -1 when all kWorkerSlots are taken or the zone has no room for
  // a row.
  int claimWorkerSlot(pid_t owner);
  // A worker exited (master only, after reaping it): its in-flight exchanges leave every
  // backend's active connections and its totals, server and per backend, are folded into
  // retiredCounters() and each BackendSlot::retired, so totals never go backwards.
  void releaseWorkerSlot(size_t worker);
  const ServerCounters& retiredCounters() const;

  // Worker slot `worker`'s row of per-backend counters: slotCapacity() entries, indexed like
  // slot(), written by that worker only (Backend::setWorkerCounters). nullptr for a slot never
  // claimed. Rows are taken when a slot is first claimed and kept for its next workers, so only
  // the slots in use cost memory: slotCapacity() x sizeof(BackendWorkerCounters) each.
  BackendWorkerCounters* backendCounters(size_t worker) const;
  // The counters of backend slot `index` summed over every worker row and what exited workers
  // counted. Any process; a worker being released meanwhile may be missed for that one read.
  BackendTotals backendTotals(size_t index) const;

  uint64_t generation() const;
  size_t slotCapacity() const;
  BackendSlot* slot(size_t index) const;

  // Live backends in slot order (a consistent snapshot needs the caller to compare
  // generation() before and after).
  void forEachLive(const std::function<void(size_t index, BackendSlot&)>& fn) const;
  // The live backend `id` of `upstream`, or nullptr.
  BackendSlot* find(const std::string& upstream, const std::string& id) const;

  // Structural changes, made by the master (start, reload) and the control process (API,
  // reclaim). Each takes the zone's writer lock (process-shared and robust: a writer killed
  // while holding it does not wedge the others) and publishes a new generation. `config` is
  // validated like the YAML (ids, ports, weights...); `address` was resolved by the caller.
  ChangeResult addBackend(const std::string& upstream, const BackendConfig& config,
                          const BackendAddress& address);
  ChangeResult removeBackend(const std::string& upstream, const std::string& id);
  // Whether addBackend / updateBackend would accept `config` (values, string lengths), without
  // changing anything; and how many backends can still be added.
  ChangeResult check(const std::string& upstream, const BackendConfig& config,
                     const BackendAddress& address) const;
  size_t freeSlots() const;
  // Replaces the configuration of a live backend. Its runtime state (counters, EWMA, report)
  // is kept; `reset_health` also forgets its health (the address or the check changed).
  ChangeResult updateBackend(const std::string& upstream, const BackendConfig& config,
                             const BackendAddress& address, bool reset_health = false);

  // Disconnects a live backend (POST /api/v1/backends/disconnect), in one published change: its
  // configuration block is replaced by a copy with active=false (no new requests; updateBackend
  // with active=true brings it back) and its BackendState::disconnect_epoch is bumped, so every
  // worker closes its idle connections, tunnels and event streams to it on its next rebuild;
  // in-flight plain requests finish. Runtime state (counters, health, EWMA, report) is kept.
  // Already inactive: the epoch still moves (its tunnels still close). 404 for an unknown
  // upstream or backend. Takes the writer lock.
  ChangeResult disconnectBackend(const std::string& upstream, const std::string& id);

  // A backend's utilization report (POST /api/v1/report): percentages 0..100, loads >= 0.
  // `now_ms` is the steady clock the balancers compare report times against.
  ChangeResult recordReport(const std::string& upstream, const std::string& id,
                            const PerformanceReport& report, int64_t now_ms);

  // Frees removed slots and replaced configuration blocks that no worker can still see (every
  // worker has applied a later generation and nothing is in flight). Control process only.
  void reclaim();

  // Bytes the zone offers the slab (for tests and statistics).
  Slab& slab() const;

 private:
  class WriteLock;
  Zone() = default;
  ChangeResult validate(const std::string& upstream, const BackendConfig& config) const;
  // A configuration block from the slab, filled; nullptr with `failure` set (507 or 400).
  ZoneBackendConfig* newBlock(const std::string& upstream, const BackendConfig& config,
                              const BackendAddress& address, ChangeResult& failure);
  void publish();
  bool ensureBackendRow(size_t worker);
  void foldBackendRow(size_t worker);
  void retire(ZoneBackendConfig* block);
  void reclaimLocked();

  SharedMemory memory_;
  ZoneHeader* header_ = nullptr;
};

}  // namespace speedmimi::core
