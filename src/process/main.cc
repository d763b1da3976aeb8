// speedmimi: entry point. Parses the command line, loads the configuration and hands over to
// the master process (or tests the configuration, or signals a running master). The master
// replays the state file onto the YAML itself, since a generation keeps both; -t and -T replay
// it here.
#include <cstdio>
#include <ctime>
#include <string>
#include <vector>

#include "core/cmdline.h"
#include "core/config.h"
#include "core/config_yaml.h"
#include "core/state_file.h"
#include "process/master.h"
#include "process/tls_check.h"
#include "process/title.h"
#include "upstream/balancer.h"

namespace {

constexpr const char* kDefaultConfig = SYSCONFDIR "/speedmimi/speedmimi.yaml";

}  // namespace

int main(int argc, char** argv) {
  using namespace speedmimi::core;
  const std::vector<std::string> args = speedmimi::process::initTitle(argc, argv);
  using speedmimi::process::runMaster;
  using speedmimi::process::signalMaster;
  Options options;
  std::string error;
  if (!parseCommandLine(std::vector<std::string>(args.begin() + 1, args.end()), options, error)) {
    fprintf(stderr, "speedmimi: %s\n%s", error.c_str(), usageText());
    return 1;
  }
  if (options.help) {
    fputs(usageText(), stdout);
    return 0;
  }
  if (options.version) {
    printf("speedmimi version %s\n", PACKAGE_VERSION);
    return 0;
  }
  std::string file = options.config_file.empty() ? kDefaultConfig : options.config_file;
  Config config;
  try {
    config = loadConfigFile(file, {speedmimi::upstream::balancerNames()});
  } catch (const ConfigError& e) {
    fprintf(stderr, "%s\n", e.what());
    if (options.test_config) fprintf(stderr, "speedmimi: configuration file %s test failed\n",
                                     file.c_str());
    return 1;
  }
  if (options.test_config) {
    // The state file is reported as the master reports it at start, and -T prints the effective
    // configuration: the YAML with the state file's runtime changes.
    const std::string state_path =
        speedmimi::process::resolvePath(options.prefix, config.server.state_file);
    std::vector<std::string> notes;
    try {
      config = applyStateFile(config, state_path, {speedmimi::upstream::balancerNames()}, &notes);
    } catch (const ConfigError& e) {
      fprintf(stderr, "speedmimi: %s\n", e.what());
      fprintf(stderr, "speedmimi: configuration file %s test failed\n", file.c_str());
      return 1;
    }
    // The certificates, as the master loads them: an error at the key, as the YAML's are told.
    try {
      if (auto tls = speedmimi::process::checkTls(config, options.prefix)) {
        for (const std::string& w :
             speedmimi::process::expiryWarnings(tls->certificates(), time(nullptr))) {
          notes.push_back("warning: " + w);
        }
      }
    } catch (const ConfigError& e) {
      fprintf(stderr, "%s\nspeedmimi: configuration file %s test failed\n", e.what(),
              file.c_str());
      return 1;
    }
    for (const std::string& note : notes) fprintf(stderr, "speedmimi: %s\n", note.c_str());
    if (options.dump_config) fputs(configToYaml(config).c_str(), stdout);
    printf("speedmimi: configuration file %s test is successful\n", file.c_str());
    return 0;
  }
  if (!options.signal.empty()) return signalMaster(config, options);
  return runMaster(config, options, args);
}
