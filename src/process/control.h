// The control process (DESIGN §2): one event_base beside the workers. It runs the active health
// checks and reclaims zone slots; it is the one process that makes structural changes to the
// zone after startup: the management API (src/admin) runs here.
#pragma once

#include <string>
#include <vector>

#include "core/config_types.h"
#include "core/zone.h"
#include "event/tls.h"

namespace speedmimi::process {

using core::Config;
using core::Zone;

struct ControlSetup {
  const Config* config = nullptr;
  const Config* yaml_config = nullptr;  // this generation's YAML before the state file
  std::string state_path;               // server.state_file, resolved
  Zone* zone = nullptr;
  int master_pipe = -1;  // reads EOF when the master is gone
  int master_requests = -1;  // where reloads and upgrades are asked for (notify.h writeRequest)
  int admin_fd = -1;      // the management API's listening socket (-1: admin.enabled false)
  uint64_t generation = 0;  // the master's generation this process belongs to
  int64_t started_unix_ms = 0;  // when the master started
  std::string prefix;           // what relative certificate paths are under (-p)
  // The certificates this generation serves, as the master loaded them.
  std::vector<event::CertificateInfo> certificates;
};

// Runs until TERM, INT or QUIT, or until the master is gone. Returns the process exit code.
int runControl(const ControlSetup& setup);

}  // namespace speedmimi::process
