#include "core/cmdline.h"

namespace speedmimi::core {
namespace {

bool takeValue(const std::vector<std::string>& args, size_t& i, std::string& out,
               std::string& error) {
  if (i + 1 >= args.size()) {
    error = "option \"" + args[i] + "\" requires an argument";
    return false;
  }
  out = args[++i];
  return true;
}

bool isKnownSignal(const std::string& s) {
  return s == "reload" || s == "reopen" || s == "quit" || s == "stop" || s == "upgrade";
}

}  // namespace

const char* usageText() {
  return "Usage: speedmimi [-c FILE | -config FILE] [-p PREFIX] [-t] [-T] [-d]"
         " [-s reload|reopen|quit|stop|upgrade] [-v] [-h]\n"
         "\n"
         "Options:\n"
         "  -c FILE, -config FILE  configuration file (default: " SYSCONFDIR
         "/speedmimi/speedmimi.yaml)\n"
         "  -p PREFIX              directory that relative paths are resolved against\n"
         "                         (default: the current directory)\n"
         "  -t                     test the configuration and exit\n"
         "  -T                     test the configuration, print it as YAML with every\n"
         "                         default filled in, and exit\n"
         "  -d                     run as a daemon (default: foreground)\n"
         "  -s SIGNAL              send SIGNAL to the running master (found by its pid file)\n"
         "  -v                     print the version and exit\n"
         "  -h                     print this help and exit\n";
}

bool parseCommandLine(const std::vector<std::string>& args, Options& options,
                      std::string& error) {
  for (size_t i = 0; i < args.size(); ++i) {
    const std::string& a = args[i];
    if (a == "-c" || a == "-config" || a == "--config") {
      if (!takeValue(args, i, options.config_file, error)) return false;
    } else if (a == "-p") {
      if (!takeValue(args, i, options.prefix, error)) return false;
    } else if (a == "-s") {
      if (!takeValue(args, i, options.signal, error)) return false;
      if (!isKnownSignal(options.signal)) {
        error = "invalid option: \"-s " + options.signal + "\"";
        return false;
      }
    } else if (a == "-t") {
      options.test_config = true;
    } else if (a == "-T") {
      // As in nginx: -T is -t plus the dump.
      options.test_config = true;
      options.dump_config = true;
    } else if (a == "-d") {
      options.daemonize = true;
    } else if (a == "-v" || a == "--version") {
      options.version = true;
    } else if (a == "-h" || a == "--help" || a == "-?") {
      options.help = true;
    } else {
      error = "invalid option: \"" + a + "\"";
      return false;
    }
  }
  return true;
}

}  // namespace speedmimi::core
