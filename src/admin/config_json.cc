// Config <-> JSON for the management API. Both directions go through the YAML layer so that
// there is one definition of the keys and one of the rules: configToJson builds its value from
// the events configToYaml writes (core::emitConfig), and configFromJson writes the JSON as YAML
// (core::eventsToYaml) and hands that to parseConfig, exactly as `-t` reads a file.
#include "admin/config_json.h"

#include <openssl/evp.h>

#include <charconv>
#include <cstdio>
#include <new>
#include <stdexcept>
#include <string_view>
#include <utility>
#include <vector>

#include "core/atomic_file.h"
#include "core/config_yaml.h"

namespace speedmimi::admin {
namespace {

using core::ConfigEvents;
using core::JsonPtr;

// More than the configuration ever nests (backends.U[0].health_check.path is 5 levels): a
// deeper body is refused before libyaml builds a document out of it.
constexpr int kMaxDepth = 32;

// Builds one JSON value from the events of core::emitConfig. Every Jansson result is checked:
// a null from a constructor is out of memory, except json_stringn, which also refuses text that
// is not UTF-8.
class JsonBuilder : public ConfigEvents {
 public:
  void beginMapping(Style) override { open(JsonPtr(json_object())); }
  void endMapping() override { close(); }
  void beginSequence(Style) override { open(JsonPtr(json_array())); }
  void endSequence() override { close(); }

  void text(std::string_view text) override {
    if (expectsKey()) {
      stack_.back().key.assign(text);
      stack_.back().have_key = true;
      return;
    }
    add(string(text));
  }

  // Whole numbers as JSON integers; one that Jansson cannot hold (only a Config built in code
  // has such a value) as its decimal text, which is what the YAML says too.
  void number(std::string_view decimal) override {
    json_int_t value = 0;
    const auto [end, error] =
        std::from_chars(decimal.data(), decimal.data() + decimal.size(), value);
    if (error != std::errc() || end != decimal.data() + decimal.size()) {
      add(string(decimal));
      return;
    }
    add(checked(json_integer(value)));
  }

  void boolean(bool value) override { add(checked(json_boolean(value))); }
  void spelling(std::string_view spelling) override { add(string(spelling)); }

  // The whole value, once every collection is closed.
  JsonPtr take() { return std::move(root_); }

 private:
  struct Frame {
    JsonPtr value;  // an object or an array
    std::string key;
    bool have_key = false;
  };

  static JsonPtr checked(json_t* value) {
    if (value == nullptr) throw std::bad_alloc();
    return JsonPtr(value);
  }

  static JsonPtr string(std::string_view text) {
    json_t* value = json_stringn(text.data(), text.size());
    if (value == nullptr) {
      throw std::runtime_error(
          "cannot show the configuration as JSON: a value is not UTF-8 (or out of memory)");
    }
    return JsonPtr(value);
  }

  bool expectsKey() const {
    return !stack_.empty() && json_is_object(stack_.back().value.get()) && !stack_.back().have_key;
  }

  void open(JsonPtr container) {
    if (!container) throw std::bad_alloc();
    stack_.push_back({std::move(container), "", false});
  }

  void close() {
    JsonPtr done = std::move(stack_.back().value);
    stack_.pop_back();
    add(std::move(done));
  }

  // Puts `value` under the pending key, at the end of the open array, or at the root.
  void add(JsonPtr value) {
    if (stack_.empty()) {
      root_ = std::move(value);
      return;
    }
    Frame& top = stack_.back();
    // The _new setters take the reference, also when they fail.
    if (json_is_object(top.value.get())) {
      top.have_key = false;
      if (json_object_set_new(top.value.get(), top.key.c_str(), value.release()) != 0) {
        throw std::bad_alloc();
      }
    } else if (json_array_append_new(top.value.get(), value.release()) != 0) {
      throw std::bad_alloc();
    }
  }

  std::vector<Frame> stack_;
  JsonPtr root_;
};

// Whether `value` nests at most `levels` collections deep.
bool withinDepth(const json_t* value, int levels) {
  if (!json_is_object(value) && !json_is_array(value)) return true;
  if (levels == 0) return false;
  // Jansson's iteration takes a non-const value; it does not change it.
  json_t* mutable_value = const_cast<json_t*>(value);
  if (json_is_array(value)) {
    for (size_t i = 0; i < json_array_size(value); ++i) {
      if (!withinDepth(json_array_get(value, i), levels - 1)) return false;
    }
    return true;
  }
  const char* key = nullptr;
  json_t* item = nullptr;
  json_object_foreach(mutable_value, key, item) {
    if (!withinDepth(item, levels - 1)) return false;
  }
  return true;
}

// Sends `value` as YAML events: strings as text (quoted where YAML could take them for
// another type), integers and booleans plain, reals in Jansson's spelling (which the parser
// then refuses wherever it wants an integer), null as YAML's empty value.
void sendJson(const json_t* value, ConfigEvents& out) {
  switch (json_typeof(value)) {
    case JSON_OBJECT: {
      out.beginMapping(ConfigEvents::Style::kBlock);
      const char* key = nullptr;
      json_t* item = nullptr;
      json_object_foreach(const_cast<json_t*>(value), key, item) {
        out.text(key);
        sendJson(item, out);
      }
      out.endMapping();
      return;
    }
    case JSON_ARRAY:
      out.beginSequence(ConfigEvents::Style::kBlock);
      for (size_t i = 0; i < json_array_size(value); ++i) sendJson(json_array_get(value, i), out);
      out.endSequence();
      return;
    case JSON_STRING:
      out.text({json_string_value(value), json_string_length(value)});
      return;
    case JSON_INTEGER:
      out.number(std::to_string(json_integer_value(value)));
      return;
    case JSON_REAL:
      out.spelling(core::jsonText(value));
      return;
    case JSON_TRUE:
    case JSON_FALSE:
      out.boolean(json_is_true(value));
      return;
    case JSON_NULL:
      out.spelling("~");
      return;
  }
}

}  // namespace

// The message without the "'<path>': " (or "the top level: ") it may start with, since the path
// now leads.
std::string apiError(const core::ConfigError& e) {
  std::string_view message = e.message();
  const std::string prefix = e.path().empty() ? "the top level: " : "'" + e.path() + "': ";
  if (message.starts_with(prefix)) message.remove_prefix(prefix.size());
  return (e.path().empty() ? "config" : "config." + e.path()) + ": " + std::string(message);
}

namespace {

// A Config from JSON has no positions: the ones parseConfig recorded are lines of a YAML text
// that nobody will see.
void clearMarks(core::Config& config) {
  config.marks.clear();
  for (auto& [upstream, backends] : config.backends) {
    for (core::BackendConfig& b : backends) b.mark = {};
  }
  for (core::RouteConfig& route : config.routes) route.mark = {};
  config.admin.mark = {};
}

}  // namespace

JsonPtr configToJson(const core::Config& config) {
  JsonBuilder builder;
  core::emitConfig(config, builder);
  return builder.take();
}

bool configFromJson(const json_t* config, const std::string& file, const core::KnownNames& known,
                    core::Config& out, std::string& error) {
  if (config == nullptr) {
    error = "config: is required";
    return false;
  }
  if (!withinDepth(config, kMaxDepth)) {
    error = "config: nested more than " + std::to_string(kMaxDepth) + " levels deep";
    return false;
  }
  std::string yaml;
  try {
    yaml = core::eventsToYaml([&](ConfigEvents& events) { sendJson(config, events); });
  } catch (const std::runtime_error& e) {
    // libyaml refused a value: text that is not UTF-8, which Jansson's decoder never yields.
    error = std::string("config: ") + e.what();
    return false;
  }
  try {
    core::Config parsed = core::parseConfig(yaml, file, known);
    clearMarks(parsed);
    out = std::move(parsed);
    return true;
  } catch (const core::ConfigError& e) {
    error = apiError(e);
    return false;
  }
}

std::string configEtag(const core::Config& config) {
  const std::string text =
      core::jsonText(configToJson(config).get(), JSON_COMPACT | JSON_SORT_KEYS);
  if (text.empty()) throw std::bad_alloc();  // jsonText's only failure
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int length = 0;
  if (EVP_Digest(text.data(), text.size(), digest, &length, EVP_sha256(), nullptr) != 1 ||
      length < 8) {
    throw std::runtime_error("cannot compute the configuration's ETag: SHA-256 failed");
  }
  char hex[2 * 8 + 1];
  for (int i = 0; i < 8; ++i) std::snprintf(hex + 2 * i, 3, "%02x", digest[i]);
  return "\"" + std::string(hex, 16) + "\"";
}

bool writeConfigFile(const std::string& path, const core::Config& config, std::string& error) {
  std::string yaml;
  try {
    yaml = core::configToYaml(config);
  } catch (const std::runtime_error& e) {
    error = path + ": " + e.what();
    return false;
  }
  // The file may hold the API's token: private unless it exists already with its own mode.
  const unsigned mode = config.admin.auth_token.empty() ? 0644 : 0600;
  return core::writeFileAtomically(path, yaml, error, path + ".bak", mode);
}

}  // namespace speedmimi::admin
