// Writing a Config back as YAML, for -T: the keys of DESIGN §7 with every effective value,
// defaults included, in a form that parseConfig reads back to the same Config.
#pragma once

#include <functional>
#include <string>
#include <string_view>

#include "core/config_types.h"

namespace speedmimi::core {

// The document configToYaml writes, as a stream of typed events, for writers of other formats
// (the admin API's JSON): one walk over the Config keeps the keys, their order and the values'
// spellings in one place. Inside a mapping the events alternate: a key (text), then its value.
class ConfigEvents {
 public:
  enum class Style { kBlock, kFlow };  // how YAML lays a collection out; nothing else cares

  virtual ~ConfigEvents() = default;
  virtual void beginMapping(Style style) = 0;
  virtual void endMapping() = 0;
  virtual void beginSequence(Style style) = 0;
  virtual void endSequence() = 0;
  // A key, or a value that is text (a host, a name, a path): a string whatever it looks like.
  virtual void text(std::string_view text) = 0;
  // A whole number, in decimal ("8080").
  virtual void number(std::string_view decimal) = 0;
  virtual void boolean(bool value) = 0;
  // Any other value, in the parser's spelling: a duration ("30s"), a size ("16k", "0"), or a
  // word that stands for a setting ("auto", "info", "json").
  virtual void spelling(std::string_view spelling) = 0;
};

// Sends the document configToYaml writes to `out`, event by event.
void emitConfig(const Config& config, ConfigEvents& out);

// One YAML document from the events that `write` sends, in configToYaml's style (text quoted
// where a reader could take it for another type, everything else plain): for documents that do
// not come from a Config, such as a JSON body the admin API validates. Throws as configToYaml.
std::string eventsToYaml(const std::function<void(ConfigEvents&)>& write);

// The configuration as one YAML document. Config::file and the marks are not written; neither
// is the health_check block of a backend without health checks (its presence turns them on).
// Throws std::bad_alloc when out of memory, std::runtime_error when libyaml refuses a value
// (text that is not UTF-8, which only a Config built in code can hold).
std::string configToYaml(const Config& config);

}  // namespace speedmimi::core
