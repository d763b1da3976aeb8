// A worker process (DESIGN §2): one event_base, created after fork; accepts on the inherited
// listener and proxies traffic until told to stop.
#pragma once

#include <cstddef>
#include <string>

#include "core/config_types.h"
#include "http/proxy_session.h"
#include "upstream/backend.h"

namespace speedmimi::core {

struct WorkerSetup {
  const Config* config = nullptr;
  int listen_fd = -1;
  http::ServerCounters* counters = nullptr;  // every worker's slot (shared memory)
  size_t worker_slots = 0;
  size_t slot = 0;                            // this worker's slot
  upstream::BackendState* backend_states = nullptr;  // shared memory, one per backend
  std::string access_log_path;                       // resolved against the prefix, or "off"
};

// Runs the worker until TERM/INT (at once) or QUIT (after in-flight exchanges finish, at most
// server.shutdown_timeout). Returns the process exit code.
int runWorker(const WorkerSetup& setup);

}  // namespace speedmimi::core
