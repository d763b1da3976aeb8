// The management API's endpoints (DESIGN §9, the original README's calls verbatim): runtime
// backend changes, performance reports, statistics (JSON and Prometheus's /metrics), the
// configuration, reload and upgrade.
//
// Runs in the control process. A change is made in the shared zone (under its writer lock),
// written to the state file before it is answered (a failed write undoes it), and answered once
// every live worker has applied the new zone generation (at most kApplyWait), so the caller's
// next request already sees it. A failed call changes nothing.
#pragma once

#include <event2/event.h>

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "admin/host_stats.h"
#include "admin/http_server.h"
#include "admin/resolver.h"
#include "admin/stats.h"
#include "core/config.h"
#include "core/config_types.h"
#include "core/state_file.h"
#include "core/zone.h"
#include "event/handles.h"
#include "event/tls.h"

namespace speedmimi::admin {

// What the API asks of the process that runs it (the control process asks the master), kept
// behind an interface so that src/admin does not depend on src/process.
class Lifecycle {
 public:
  virtual ~Lifecycle() = default;
  // `ok`: `value` is the new generation (reload) or the new master's pid (upgrade); otherwise
  // `error` says why.
  using Done = std::function<void(bool ok, int64_t value, const std::string& error)>;
  virtual void reload(Done done) = 0;
  virtual void upgrade(Done done) = 0;
};

// The certificates and CA bundles a configuration names, which the process that runs the API
// loads (src/process knows the prefix the paths are under), behind an interface as Lifecycle.
class Certificates {
 public:
  virtual ~Certificates() = default;
  // Loads every certificate and CA bundle of `config`; throws core::ConfigError located at the
  // key at fault (as -t reports it).
  virtual void check(const core::Config& config) = 0;
  // An https backend's CA bundle: false with `error` = "backend.ca_file: FILE: reason".
  virtual bool checkBackend(const core::BackendConfig& backend, std::string& error) = 0;
  // Loads config's server certificates anew and makes them the ones served() tells of; false
  // with `error` = "FILE: reason" and nothing changed.
  virtual bool reload(const core::Config& config, std::string& error) = 0;
  // The certificates served now (ssl.enabled), for /api/v1/stats/server.
  virtual const std::vector<event::CertificateInfo>& served() const = 0;
};

struct ApiSetup {
  event_base* base = nullptr;
  core::Zone* zone = nullptr;
  const core::Config* yaml = nullptr;  // this generation's YAML, before the state file
  std::string state_path;              // server.state_file, resolved
  core::KnownNames known;              // for validating a new configuration
  Lifecycle* lifecycle = nullptr;
  Certificates* certificates = nullptr;  // nullptr: no certificate is loaded (tests)
  uint64_t generation = 0;  // the master's generation this control process belongs to
  int64_t started_unix_ms = 0;  // when this master started (a binary upgrade starts anew)
};

class Api {
 public:
  // Registers every endpoint on `server`. Both outlive the Api's calls (the control process
  // stops answering before it destroys them).
  Api(ApiSetup setup, HttpServer& server);
  ~Api();

  // Reads the state file (the overlay this generation was started with, and changes since).
  // False with `error` when it cannot be read.
  bool init(std::string& error);

  // The effective configuration: the YAML with the state file's changes replayed.
  core::Config effectiveConfig() const;

  // How long an answer waits for the workers to apply a change.
  static constexpr std::chrono::milliseconds kApplyWait{1000};

 private:
  struct Waiter;

  // Backends.
  void listBackends(const CallPtr& call);
  void addBackend(const CallPtr& call);
  void removeBackend(const CallPtr& call);
  void updateBackend(const CallPtr& call);
  void disconnectBackend(const CallPtr& call);
  void report(const CallPtr& call);
  // Statistics.
  void serverStats(const CallPtr& call);
  void backendStats(const CallPtr& call);
  void metrics(const CallPtr& call);  // GET /metrics, Prometheus
  // Configuration and lifecycle.
  void getConfig(const CallPtr& call);
  void putConfig(const CallPtr& call);
  void reloadSsl(const CallPtr& call);
  void reload(const CallPtr& call);
  void upgrade(const CallPtr& call);

  // Applies an add or update (its host resolved) to the zone, records it in the overlay and
  // the state file, and answers once the workers have it. For an update, `b` is what the call
  // asked for and `address` is b.host resolved when `resolved`.
  void commitAdd(const CallPtr& call, const std::string& upstream, const core::BackendConfig& b,
                 const core::BackendAddress& address);
  void commitUpdate(const CallPtr& call, const std::string& upstream,
                    const core::BackendConfig& b, const core::BackendAddress& address,
                    bool resolved, core::JsonPtr fields);
  // Saves `next` as the state file and makes it the overlay; false (the call answered 500) when
  // it cannot be written.
  bool persist(const CallPtr& call, core::StateOverlay next);
  // A change written to the state file first (`next`), then made in the zone (`change`): a
  // refused change puts the previous state file back and answers the call with the refusal.
  // True with `result` when the change is made.
  bool commit(const CallPtr& call, core::StateOverlay next,
              const std::function<core::ChangeResult()>& change, core::ChangeResult& result);
  // {"backend": its statistics} for an answer.
  core::JsonPtr backendData(const std::string& upstream, const std::string& id) const;
  // Answers `call` once every live worker has applied the zone's current generation, or after
  // kApplyWait (saying so).
  // `tls_serial`: also once each has loaded the certificates of that zone TLS serial.
  void answerWhenApplied(const CallPtr& call, int status, const std::string& message,
                         core::JsonPtr data, uint64_t tls_serial = 0);
  static void onWaitTick(evutil_socket_t, short, void* arg);
  bool workersApplied(uint64_t generation, uint64_t tls_serial) const;
  // Once they have: succeeds, or answers 500 when a worker could not load the certificates
  // of `tls_serial` (0: none asked for), naming each such worker and its error.
  void answerApplied(const CallPtr& call, int status, const std::string& message,
                     core::JsonPtr data, uint64_t tls_serial);
  std::string workerTlsFailures(uint64_t tls_serial) const;
  // The CA bundle of an https backend, the certificates of a new configuration: loaded before
  // they are accepted. False with the call answered 400.
  bool usableTls(const CallPtr& call, const core::BackendConfig& backend);
  bool usableTls(const CallPtr& call, const core::Config& config);
  static void onSampleTick(evutil_socket_t, short, void* arg);
  // A reload or upgrade this process asked for is in progress: structural changes and other
  // lifecycle calls wait (409), so that the new generation starts from a settled state.
  bool refuseWhileBusy(const CallPtr& call);

  ApiSetup setup_;
  Resolver resolver_;
  core::StateOverlay overlay_;
  std::vector<std::unique_ptr<Waiter>> waiters_;
  event::EventPtr wait_tick_;
  bool wait_armed_ = false;
  event::EventPtr sample_tick_;  // once a second: request rate and host figures
  RequestRate rate_;
  HostStats host_;
  const char* busy_ = nullptr;  // "reload" or "upgrade" while one is in progress
};

}  // namespace speedmimi::admin
