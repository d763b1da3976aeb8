// A worker process (DESIGN §2): one event_base, created after fork; accepts on the inherited
// listener and proxies traffic until told to stop, or until the master is gone.
#pragma once

#include <cstddef>
#include <functional>
#include <memory>
#include <string>

#include "core/config_types.h"
#include "core/zone.h"
#include "event/tls.h"

namespace speedmimi::process {

using core::Config;
using core::Zone;

struct WorkerSetup {
  const Config* config = nullptr;  // this worker's generation
  int listen_fd = -1;      // plain HTTP (-1: none, server.port speaks TLS); the worker's now
  int tls_listen_fd = -1;  // TLS (ssl.enabled: server.port, or ssl.port beside it); the worker's
  std::string prefix;      // what the certificates' relative paths are under (-p)
  // The generation's certificates as the master loaded them (as root, before the fork), and the
  // zone's TLS serial they were loaded at: a reload-ssl after it makes the worker load anew.
  std::shared_ptr<const event::ServerTls> server_tls;
  uint64_t tls_serial = 0;
  Zone* zone = nullptr;            // shared memory: counters, backends
  size_t slot = 0;                 // this worker's counter slot in the zone
  std::string access_log_path;     // resolved against the prefix, or "off"
  int master_pipe = -1;            // reads EOF when the master is gone
  // Called once the worker has opened what it needs as root (its access log), before it
  // serves: drops to server.user. False stops the worker.
  std::function<bool()> drop_privileges;
};

// Runs the worker until TERM/INT (at once) or QUIT (draining, at most server.shutdown_timeout:
// see stopGracefully in worker.cc). Returns the process exit code.
int runWorker(const WorkerSetup& setup);

}  // namespace speedmimi::process
