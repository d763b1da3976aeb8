// A backend as the request path sees it: its configuration, its resolved address and its
// runtime state. The state is kept in atomics because it is shared by every worker (it lives
// in the shared-memory zone once that exists; until then in the worker).
#pragma once

#include <sys/socket.h>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>

#include "core/config_types.h"
#include "core/zone_types.h"
#include "event/tls.h"

namespace speedmimi::upstream {

using core::BackendState;
using core::Health;

class Backend {
 public:
  Backend(core::BackendConfig config, BackendState* state);

  const core::BackendConfig& config() const { return config_; }
  BackendState& state() const { return *state_; }
  const std::string& id() const { return config_.id; }
  int weight() const { return config_.weight; }

  // Resolved once (numeric host or name lookup at configuration time). False if unresolvable.
  // Blocking: the master and the control process resolve; workers take the zone's address.
  bool resolve();
  // Takes an address resolved elsewhere. False when the family is neither IPv4 nor IPv6.
  bool setAddress(const sockaddr_storage& addr, socklen_t len);
  // Replaces the configuration (a runtime update); the address is set separately. True when
  // the transport changed (scheme, tls_verify or ca_file): the TLS context is dropped, to be
  // made again from the new settings, and connections made before must not be reused. Any
  // other change keeps the context, and with it the backend's TLS session for resumption.
  bool reconfigure(core::BackendConfig config);

  // scheme https: connections to it speak TLS (SNI and verification by config().host).
  bool usesTls() const { return config_.scheme == "https"; }
  // The TLS context towards it, made on first use from tls_verify and ca_file (a relative
  // ca_file is under `prefix`) and kept until reconfigure() changes the transport. Making it
  // reads the CA bundle: workers make it when their view changes (UpstreamSet::prepareTls),
  // not on the request path. nullptr, with `error` ("FILE: reason"), when ca_file does not
  // load (the configuration checks rule that out before).
  const event::ClientTls* clientTls(const std::string& prefix, std::string& error) const;

  // An exchange of this worker uses the backend: counts it in the shared active connections
  // and in this worker's own count, which keeps a removed backend alive until it drops to 0.
  // The worker's row entry (setWorkerCounters) holds its share of the shared count in the zone:
  // if the worker dies, the master takes that share back out of active_connections.
  void acquire() {
    ++in_flight_;
    state_->active_connections.fetch_add(1, std::memory_order_relaxed);
    add(counters_->active, int32_t{1});
  }
  void release() {
    --in_flight_;
    state_->active_connections.fetch_sub(1, std::memory_order_relaxed);
    add(counters_->active, int32_t{-1});
  }
  int inFlight() const { return in_flight_; }

  // Where this worker counts for this backend: its entry in the zone's row of this worker
  // (Zone::backendCounters), not owned. Until set (the control process, tests), the backend
  // counts in an entry of its own. Zone::backendTotals sums every worker's entries.
  void setWorkerCounters(core::BackendWorkerCounters* counters) { counters_ = counters; }
  const core::BackendCounters& workerCounters() const { return counters_->counters; }
  // Per-request counters, on the request path: one request sent to the backend, and the bytes
  // read from it (`bytes_in`) and written to it (`bytes_out`). Call them while the exchange holds
  // the backend (between acquire and release), so that a removed backend's slot is not reused
  // under them.
  void recordRequest() { add(counters_->counters.requests, uint64_t{1}); }
  void addTraffic(uint64_t bytes_in, uint64_t bytes_out) {
    add(counters_->counters.bytes_in, bytes_in);
    add(counters_->counters.bytes_out, bytes_out);
  }

  // The only backend of its upstream: passive failures never take it out (as nginx does with a
  // single server), since answering 503 for fail_timeout would only make an outage longer.
  void setSolo(bool solo) { solo_ = solo; }
  // It left this worker's view (UpstreamSet): exchanges in flight finish, nothing is pooled.
  void retire() { retired_ = true; }
  bool retired() const { return retired_; }
  const sockaddr* address() const { return reinterpret_cast<const sockaddr*>(&addr_); }
  socklen_t addressLength() const { return addr_len_; }
  const std::string& addressText() const { return address_text_; }  // "127.0.0.1:8081"

  // May it take one more request now? Not when inactive, down (active or passive checks)
  // or at max_conn. `now_ms` is a steady-clock time in milliseconds.
  bool available(int64_t now_ms) const;

  // Passive health (DESIGN §6): max_fails failures within fail_timeout take the backend out
  // for fail_timeout. A success ends the failure window. Each failure is also counted in this
  // worker's counters.
  void recordFailure(int64_t now_ms);
  void recordSuccess();

  // Latency (least_latency, statistics): one sample of the time from sending the request to
  // receiving the response head. The first sample is taken as is, later ones move the EWMA
  // by a fifth: (old * 4 + sample) / 5. Samples below 0 count as 0, above
  // kMaxLatencySample as that. Shared by every worker; concurrent samples may lose one.
  static constexpr std::chrono::microseconds kMaxLatencySample{std::chrono::hours(1)};
  void recordLatency(std::chrono::microseconds sample);
  // An attempt got its (final) response head, `status`, after `sample` (the time recordLatency
  // takes, which this calls): besides the EWMA, counts it in this worker's responses_by_class
  // and head_time histogram. Per attempt, so a retried request counts once per backend that
  // answered; while the exchange holds the backend, as recordRequest.
  void recordResponseHead(int status, std::chrono::microseconds sample);
  // The EWMA, or nothing before the first sample (a measured 0 is a real measurement).
  std::optional<std::chrono::microseconds> latency() const;

 private:
  // This worker is the only writer of its counters: a load and a store, no locked instruction.
  template <typename T>
  static void add(std::atomic<T>& counter, T n) {
    counter.store(counter.load(std::memory_order_relaxed) + n, std::memory_order_relaxed);
  }

  core::BackendConfig config_;
  BackendState* state_;  // not owned
  sockaddr_storage addr_{};
  socklen_t addr_len_ = 0;
  std::string address_text_;
  mutable std::shared_ptr<const event::ClientTls> client_tls_;  // made by clientTls()
  int in_flight_ = 0;  // this worker only
  bool solo_ = false;
  bool retired_ = false;
  // Owned: where counters_ points until setWorkerCounters. On the heap so that a Backend stays
  // movable.
  std::unique_ptr<core::BackendWorkerCounters> own_counters_;
  core::BackendWorkerCounters* counters_;
};

}  // namespace speedmimi::upstream
