// Writing a Config back as YAML, for -T: the keys of DESIGN §7 with every effective value,
// defaults included, in a form that parseConfig reads back to the same Config.
#pragma once

#include <string>

#include "core/config_types.h"

namespace speedmimi::core {

// The configuration as one YAML document. Config::file and the marks are not written; neither
// is the health_check block of a backend without health checks (its presence turns them on).
// Throws std::bad_alloc when out of memory, std::runtime_error when libyaml refuses a value
// (text that is not UTF-8, which only a Config built in code can hold).
std::string configToYaml(const Config& config);

}  // namespace speedmimi::core
