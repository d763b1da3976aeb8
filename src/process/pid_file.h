// The master's pid file (server.pid_file), and the ".oldbin" name the old master moves its own
// to during a binary upgrade, as nginx does. The master runs these; -s reads.
#pragma once

#include <sys/types.h>

#include <string>

namespace speedmimi::process {

// Writes `pid` and a newline to `path` atomically (temporary file, then rename). False with
// `error` ("cannot write pid file PATH: reason").
bool writePidFile(const std::string& path, pid_t pid, std::string& error);

// The pid in `path`; 0 with `error` ("cannot read a pid from PATH: reason") when there is none.
pid_t readPidFile(const std::string& path, std::string& error);

// PATH.oldbin
std::string oldbinPath(const std::string& path);

// Removes `path` only if it still names `pid` (a new master may have written its own).
void removePidFileIfOurs(const std::string& path, pid_t pid);

}  // namespace speedmimi::process
