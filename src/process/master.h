// The master process (DESIGN §2): owns the configuration, the listening socket and the shared
// memory; forks the workers and supervises them; turns signals into actions. Does no request I/O.
#pragma once

#include <string>

#include "core/cmdline.h"
#include "core/config_types.h"

namespace speedmimi::process {

using core::Config;
using core::Options;

// Resolves a configured path against the prefix (absolute paths and "stderr"/"off" unchanged).
std::string resolvePath(const std::string& prefix, const std::string& path);

// Runs the server until it is stopped. Returns the process exit code.
int runMaster(const Config& config, const Options& options);

// -s SIGNAL: signals the master named by the pid file. Returns the exit code.
int signalMaster(const Config& config, const Options& options);

}  // namespace speedmimi::process
