// The command line (DESIGN §2):
//   speedmimi [-c FILE | -config FILE] [-p PREFIX] [-t] [-T] [-d] [-s SIGNAL] [-v] [-h]
#pragma once

#include <string>
#include <vector>

namespace speedmimi::core {

struct Options {
  std::string config_file;  // empty = the default (SYSCONFDIR/speedmimi/speedmimi.yaml)
  std::string prefix;       // empty = the current directory
  bool test_config = false;  // -t, and -T
  bool dump_config = false;  // -T: -t that also prints the effective configuration
  bool daemonize = false;    // -d
  std::string signal;        // -s reload|reopen|quit|stop|upgrade
  bool version = false;      // -v
  bool help = false;         // -h
};

// Parses argv (without argv[0]). Returns false with `error` set on a bad command line.
bool parseCommandLine(const std::vector<std::string>& args, Options& options,
                      std::string& error);

const char* usageText();

}  // namespace speedmimi::core
