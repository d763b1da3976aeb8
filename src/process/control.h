// The control process (DESIGN §2): one event_base beside the workers. It runs the active health
// checks and reclaims zone slots; it is the one process that makes structural changes to the
// zone after startup (the management API will call Zone::addBackend / removeBackend /
// updateBackend / recordReport from here).
#pragma once

#include <string>

#include "core/config_types.h"
#include "core/zone.h"

namespace speedmimi::process {

using core::Config;
using core::Zone;

struct ControlSetup {
  const Config* config = nullptr;
  const Config* yaml_config = nullptr;  // this generation's YAML before the state file
  std::string state_path;               // server.state_file, resolved
  Zone* zone = nullptr;
  int master_pipe = -1;  // reads EOF when the master is gone
};

// Runs until TERM, INT or QUIT, or until the master is gone. Returns the process exit code.
int runControl(const ControlSetup& setup);

}  // namespace speedmimi::process
