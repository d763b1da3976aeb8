// A worker process (DESIGN §2): one event_base, created after fork; accepts on the inherited
// listener and proxies traffic until told to stop.
#pragma once

#include <cstddef>
#include <string>

#include "core/config_types.h"
#include "core/zone.h"

namespace speedmimi::process {

using core::Config;
using core::Zone;

struct WorkerSetup {
  const Config* config = nullptr;
  int listen_fd = -1;
  Zone* zone = nullptr;      // shared memory: counters, backends
  size_t worker_slots = 0;   // workers in use (slots 0..worker_slots-1)
  size_t slot = 0;           // this worker's slot
  std::string access_log_path;  // resolved against the prefix, or "off"
};

// Runs the worker until TERM/INT (at once) or QUIT (after in-flight exchanges finish, at most
// server.shutdown_timeout). Returns the process exit code.
int runWorker(const WorkerSetup& setup);

}  // namespace speedmimi::process
