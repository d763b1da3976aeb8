// The master process (DESIGN §2): owns the configuration, the listening socket and the shared
// memory; forks the workers and supervises them; turns signals into actions. Does no request I/O.
#pragma once

#include <string>
#include <vector>

#include "core/cmdline.h"
#include "core/config_types.h"

namespace speedmimi::process {

using core::Config;
using core::Options;

// Resolves a configured path against the prefix (absolute paths and "stderr"/"off" unchanged).
std::string resolvePath(const std::string& prefix, const std::string& path);

// Runs the server until it is stopped. `args` is the command line as started (argv), which a
// binary upgrade executes again. Returns the process exit code.
int runMaster(const Config& config, const Options& options, const std::vector<std::string>& args);

// -s reload|upgrade wait for the master's answer (at most 30 s) and exit 0 when the new
// generation or binary serves, 1 with a message when it failed.

// -s SIGNAL: signals the master named by the pid file. Returns the exit code.
int signalMaster(const Config& config, const Options& options);

}  // namespace speedmimi::process
