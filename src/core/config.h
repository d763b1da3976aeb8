// Loading the YAML configuration (DESIGN §7) into typed structs, with validation.
// Used by the master at startup and on reload, by -t, and by the admin API later.
#pragma once

#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

#include "core/config_types.h"

namespace speedmimi::core {

// A configuration error with its location. what() is "FILE:LINE:COLUMN: message"
// (or "FILE: message" when there is no position, e.g. the file cannot be opened).
// path() is the dotted path of the value at fault, spelled as Config::marks spells it
// ("server.port", "backends.default[0].port", "server.trusted_proxies[1]"; for an unknown or
// repeated key, the key's own path: "server.colour"), or "" when no value is at fault (a YAML
// syntax error, a file that cannot be read). It is not part of what(); the admin API reports
// errors by it, since a JSON body has no lines.
class ConfigError : public std::runtime_error {
 public:
  ConfigError(std::string file, int line, int column, std::string message, std::string path = "");
  const std::string& file() const { return file_; }
  int line() const { return line_; }
  int column() const { return column_; }
  const std::string& message() const { return message_; }
  const std::string& path() const { return path_; }

 private:
  std::string file_;
  int line_;
  int column_;
  std::string message_;
  std::string path_;
};

// What validation needs from the layers above the core, handed in by the caller so that the
// core depends on none of them: the names `load_balancer` and `protocols` accept.
struct KnownNames {
  std::vector<std::string> balancers;
};

// Reads, parses and validates the file. Throws ConfigError; never returns a half-valid Config.
Config loadConfigFile(const std::string& path, const KnownNames& known);

// Parses and validates YAML text; `file` is used for messages and Config::file.
Config parseConfig(std::string_view yaml, const std::string& file, const KnownNames& known);

// Cross-checks that need the whole config (routes name existing upstreams, ids are unique,
// algorithm names are known, ports in range...). Called by parseConfig; exposed for the API.
// An error is located at the value at fault by config.marks, at the enclosing backend or route
// for a key that was not written, and nowhere ("FILE: message") for a Config built in code.
void validateConfig(const Config& config, const KnownNames& known);

// An error about the value at `path` (Config::marks' spelling: "ssl.cert_file",
// "backends.default[0].ca_file") found by a check outside the core (the certificates, which
// src/process loads): "'PATH': MESSAGE", located at that value, else at the nearest enclosing
// value that was written ("ssl", "backends.default[0]"), else nowhere ("FILE: message").
ConfigError configErrorAt(const Config& config, const std::string& path,
                          const std::string& message);

// Number of worker processes to fork: server.workers, or the number of online CPUs for auto.
int effectiveWorkers(const ServerConfig& server);

}  // namespace speedmimi::core
