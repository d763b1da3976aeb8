// The state file: the overlay of runtime backend changes, its JSON text, and its replay onto the
// YAML. Jansson parses the text; since it keeps no positions of the values it returns, a small
// scan of the (by then known valid) text finds where each entry starts, so that an error in an
// entry is located like one in the YAML.
#include "core/state_file.h"

#include <algorithm>
#include <cstdlib>
#include <initializer_list>
#include <new>
#include <utility>

#include "core/atomic_file.h"
#include "core/backend_json.h"
#include "core/text_mark.h"

namespace speedmimi::core {
namespace {

constexpr json_int_t kVersion = 1;
constexpr unsigned kMode = 0600;  // runtime changes may name internal hosts: the owner's only

std::string quotedJson(const std::string& text) {
  return "\"" + text + "\"";
}

std::string entryPath(size_t index) {
  return "backends[" + std::to_string(index) + "]";
}

// The offsets at which the items of the top-level object's "backends" array start, for a text
// that Jansson has accepted. Strings are skipped whole, so brackets inside them do not count.
std::vector<size_t> entryOffsets(std::string_view text) {
  std::vector<size_t> offsets;
  int depth = 0;
  bool key_expected = false;  // at depth 1: the next string is a key
  std::string_view last_key;  // the latest key at depth 1
  bool in_entries = false;    // inside the "backends" array, at depth 2
  bool item_expected = false;
  for (size_t i = 0; i < text.size(); ++i) {
    const char c = text[i];
    if (c == ' ' || c == '\t' || c == '\n' || c == '\r') continue;
    if (in_entries && depth == 2 && item_expected && c != ']') {
      offsets.push_back(i);
      item_expected = false;
    }
    switch (c) {
      case '"': {
        size_t end = i + 1;
        while (end < text.size() && text[end] != '"') end += text[end] == '\\' ? 2 : 1;
        if (depth == 1 && key_expected) last_key = text.substr(i + 1, end - i - 1);
        i = end;
        break;
      }
      case '{':
      case '[':
        ++depth;
        if (depth == 1) key_expected = c == '{';
        if (depth == 2 && c == '[' && last_key == "backends") in_entries = item_expected = true;
        break;
      case '}':
      case ']':
        if (depth == 2) in_entries = false;
        --depth;
        break;
      case ':':
        if (depth == 1) key_expected = false;
        break;
      case ',':
        if (depth == 1) key_expected = true;
        if (depth == 2 && in_entries) item_expected = true;
        break;
      default:
        break;
    }
  }
  return offsets;
}

bool hasOnlyKeys(const json_t* object, std::initializer_list<std::string_view> keys,
                 std::string* unknown) {
  const char* key;
  const json_t* value;
  json_object_foreach(const_cast<json_t*>(object), key, value) {
    if (std::find(keys.begin(), keys.end(), key) == keys.end()) {
      *unknown = key;
      return false;
    }
  }
  return true;
}

std::string nonEmptyString(const json_t* value) {
  return json_is_string(value) ? std::string(json_string_value(value), json_string_length(value))
                               : std::string();
}

JsonPtr deepCopy(const json_t* value) {
  JsonPtr copy(json_deep_copy(value));
  if (!copy) throw std::bad_alloc();
  return copy;
}

// The health_check block backendFromJson starts from after a null: the defaults.
JsonPtr defaultHealthCheck() {
  BackendConfig b;
  b.health_check.enabled = true;
  JsonPtr all = backendToJson(b);
  if (!all) throw std::bad_alloc();
  return deepCopy(json_object_get(all.get(), "health_check"));
}

// Merges the update `next` into the fields updated so far, so that applying `into` once does
// what applying the two one after the other did (backendFromJson's rules for health_check).
void mergeFields(json_t* into, const json_t* next) {
  const char* key;
  const json_t* value;
  json_object_foreach(const_cast<json_t*>(next), key, value) {
    json_t* before = json_object_get(into, key);
    JsonPtr merged;
    if (std::string_view(key) == "health_check" && json_is_object(value) && before != nullptr) {
      merged = json_is_object(before) ? deepCopy(before) : defaultHealthCheck();
      if (json_object_update(merged.get(), const_cast<json_t*>(value)) != 0) {
        throw std::bad_alloc();
      }
    } else {
      merged = deepCopy(value);
    }
    if (json_object_set_new(into, key, merged.release()) != 0) throw std::bad_alloc();
  }
}

// Forgets the marks of `backend_path`'s keys in `fields` ("backends.u[0].weight", and the
// values inside "backends.u[0].health_check").
void forgetMarks(std::map<std::string, Mark>& marks, const std::string& backend_path,
                 const json_t* fields) {
  const char* key;
  const json_t* value;
  json_object_foreach(const_cast<json_t*>(fields), key, value) {
    const std::string path = backend_path + "." + key;
    for (auto it = marks.lower_bound(path); it != marks.end() && it->first.rfind(path, 0) == 0;) {
      const char after = it->first.size() > path.size() ? it->first[path.size()] : '\0';
      it = after == '\0' || after == '.' ? marks.erase(it) : std::next(it);
    }
  }
}

// Runs `check` on the effective config; its error is the state file's when `yaml` passes it.
template <typename Check>
void blameStateFile(const Config& yaml, const Config& effective, const std::string& state_path,
                    Check check) {
  try {
    check(effective);
  } catch (const ConfigError& e) {
    try {
      check(yaml);
    } catch (const ConfigError&) {
      return;  // the YAML's own error: the caller's check of the YAML reports it
    }
    throw ConfigError(state_path, 0, 0,
                      "with its changes applied to " + yaml.file + ", " + e.message());
  }
}

}  // namespace

StateOverlay::Entry::Entry(const Entry& other)
    : upstream(other.upstream),
      id(other.id),
      kind(other.kind),
      backend(other.backend),
      fields(other.fields ? deepCopy(other.fields.get()) : nullptr),
      mark(other.mark) {}

StateOverlay::Entry& StateOverlay::Entry::operator=(const Entry& other) {
  if (this != &other) *this = Entry(other);  // the move assignment
  return *this;
}

StateOverlay::Entry* StateOverlay::find(const std::string& upstream, const std::string& id) {
  for (Entry& e : entries_) {
    if (e.upstream == upstream && e.id == id) return &e;
  }
  return nullptr;
}

void StateOverlay::fail(const Entry& entry, const std::string& message) const {
  throw ConfigError(file_.empty() ? "the state file" : file_, entry.mark.line, entry.mark.column,
                    message);
}

void StateOverlay::added(const std::string& upstream, const BackendConfig& backend) {
  entries_.erase(
      std::remove_if(entries_.begin(), entries_.end(),
                     [&](const Entry& e) { return e.upstream == upstream && e.id == backend.id; }),
      entries_.end());
  Entry& e = entries_.emplace_back();
  e.upstream = upstream;
  e.id = backend.id;
  e.kind = Kind::kAdded;
  e.backend = backend;
  e.backend.mark = {};
}

void StateOverlay::updated(const std::string& upstream, const std::string& id,
                           const json_t* fields) {
  if (!json_is_object(fields)) return;
  JsonPtr clean = deepCopy(fields);
  json_object_del(clean.get(), "id");
  BackendConfig scratch;
  std::string error;
  if (!backendFromJson(clean.get(), "backend", scratch, error)) return;
  Entry* e = find(upstream, id);
  if (e == nullptr) {
    Entry& fresh = entries_.emplace_back();
    fresh.upstream = upstream;
    fresh.id = id;
    fresh.kind = Kind::kUpdated;
    fresh.fields = std::move(clean);
    return;
  }
  switch (e->kind) {
    case Kind::kAdded:
      backendFromJson(clean.get(), "backend", e->backend, error);  // accepted above
      break;
    case Kind::kUpdated:
      mergeFields(e->fields.get(), clean.get());
      break;
    case Kind::kRemoved:
      break;  // nothing left to update
  }
}

void StateOverlay::removed(const std::string& upstream, const std::string& id) {
  Entry* e = find(upstream, id);
  if (e == nullptr) {
    e = &entries_.emplace_back();
    e->upstream = upstream;
    e->id = id;
  }
  e->kind = Kind::kRemoved;
  e->backend = BackendConfig{};
  e->fields.reset();
}

void StateOverlay::applyTo(Config& config, std::vector<std::string>* notes) const {
  bool list_changed = false;
  for (size_t i = 0; i < entries_.size(); ++i) {
    const Entry& e = entries_[i];
    const auto upstream = config.backends.find(e.upstream);
    std::vector<BackendConfig>* list =
        upstream != config.backends.end() ? &upstream->second : nullptr;
    auto backend = list ? std::find_if(list->begin(), list->end(),
                                       [&](const BackendConfig& b) { return b.id == e.id; })
                        : std::vector<BackendConfig>::iterator();
    const bool present = list != nullptr && backend != list->end();
    switch (e.kind) {
      case Kind::kRemoved:
        if (present) {
          list->erase(backend);
          list_changed = true;
        }
        break;
      case Kind::kAdded:
        if (present) {
          *backend = e.backend;
        } else {
          config.backends[e.upstream].push_back(e.backend);
        }
        list_changed = true;
        break;
      case Kind::kUpdated: {
        if (!present) {
          if (notes) {
            notes->push_back(ConfigError(file_.empty() ? "the state file" : file_, e.mark.line,
                                         e.mark.column,
                                         entryPath(i) + ": upstream " + quotedJson(e.upstream) +
                                             " has no backend " + quotedJson(e.id) +
                                             " any more; its update is skipped")
                                 .what());
          }
          break;
        }
        std::string error;
        if (!backendFromJson(e.fields.get(), entryPath(i) + ".updated", *backend, error)) {
          fail(e, error);
        }
        forgetMarks(config.marks,
                    "backends." + e.upstream + "[" + std::to_string(backend - list->begin()) + "]",
                    e.fields.get());
        break;
      }
    }
  }
  if (list_changed) config.marks.clear();
}

std::string StateOverlay::toJson() const {
  // One entry a line: Jansson's indent 0 without JSON_COMPACT is one line with spaces.
  std::string out = "{\n  \"version\": " + std::to_string(kVersion) + ",\n  \"backends\": [";
  for (size_t i = 0; i < entries_.size(); ++i) {
    const Entry& e = entries_[i];
    JsonPtr entry(json_pack("{s:s%, s:s%}", "upstream", e.upstream.data(), e.upstream.size(), "id",
                            e.id.data(), e.id.size()));
    if (!entry) return "";
    json_t* change = nullptr;
    switch (e.kind) {
      case Kind::kAdded:
        change = backendToJson(e.backend).release();
        break;
      case Kind::kUpdated:
        change = json_deep_copy(e.fields.get());
        break;
      case Kind::kRemoved:
        change = json_true();
        break;
    }
    const char* key = e.kind == Kind::kAdded     ? "added"
                      : e.kind == Kind::kUpdated ? "updated"
                                                 : "removed";
    if (json_object_set_new(entry.get(), key, change) != 0) return "";
    const std::string line = jsonText(entry.get(), 0);
    if (line.empty()) return "";
    out += (i == 0 ? "\n    " : ",\n    ") + line;
  }
  out += entries_.empty() ? "]\n}\n" : "\n  ]\n}\n";
  return out;
}

StateOverlay StateOverlay::fromJson(std::string_view text, const std::string& file) {
  StateOverlay overlay;
  overlay.file_ = file;
  if (text.find_first_not_of(" \t\r\n") == std::string_view::npos) return overlay;
  json_error_t jerror;
  JsonPtr root(json_loadb(text.data(), text.size(), JSON_REJECT_DUPLICATES, &jerror));
  if (!root) {
    const int line = std::max(jerror.line, 0);
    throw ConfigError(file, line, line > 0 ? std::max(jerror.column, 1) : 0, jerror.text);
  }
  const Mark start = markAtOffset(text, text.find_first_not_of(" \t\r\n"));
  auto failAt = [&](const Mark& at, const std::string& message) {
    throw ConfigError(file, at.line, at.column, message);
  };
  if (!json_is_object(root.get())) {
    failAt(start, "must be an object with \"version\" and \"backends\"");
  }
  std::string unknown;
  if (!hasOnlyKeys(root.get(), {"version", "backends"}, &unknown)) {
    failAt(start, unknown + ": is not a known key");
  }
  const json_t* version = json_object_get(root.get(), "version");
  if (version == nullptr) failAt(start, "version: is required");
  if (!json_is_integer(version) || json_integer_value(version) != kVersion) {
    failAt(start, "version: must be 1 (the only version this speedmimi reads)");
  }
  const json_t* entries = json_object_get(root.get(), "backends");
  if (!json_is_array(entries)) failAt(start, "backends: must be an array");

  const std::vector<size_t> offsets = entryOffsets(text);
  for (size_t i = 0; i < json_array_size(entries); ++i) {
    Entry e;
    if (offsets.size() == json_array_size(entries)) e.mark = markAtOffset(text, offsets[i]);
    const std::string path = entryPath(i);
    auto bad = [&](const std::string& message) { overlay.fail(e, message); };
    const json_t* item = json_array_get(entries, i);
    if (!json_is_object(item)) {
      bad(path +
          ": must be an object with \"upstream\", \"id\" and one of \"added\", "
          "\"updated\" and \"removed\"");
    }
    if (!hasOnlyKeys(item, {"upstream", "id", "added", "updated", "removed"}, &unknown)) {
      bad(path + "." + unknown + ": is not a known key");
    }
    e.upstream = nonEmptyString(json_object_get(item, "upstream"));
    if (e.upstream.empty()) bad(path + ".upstream: must be a non-empty string");
    e.id = nonEmptyString(json_object_get(item, "id"));
    if (e.id.empty()) bad(path + ".id: must be a non-empty string");
    const json_t* added = json_object_get(item, "added");
    const json_t* updated = json_object_get(item, "updated");
    const json_t* removed = json_object_get(item, "removed");
    if ((added != nullptr) + (updated != nullptr) + (removed != nullptr) != 1) {
      bad(path + ": must have exactly one of \"added\", \"updated\" and \"removed\"");
    }
    std::string error;
    if (added != nullptr) {
      e.kind = Kind::kAdded;
      if (!backendFromJson(added, path + ".added", e.backend, error)) bad(error);
      for (const char* required : {"host", "port"}) {
        if (!json_object_get(added, required)) bad(path + ".added." + required + ": is required");
      }
      if (e.backend.id.empty()) e.backend.id = e.id;
      if (e.backend.id != e.id) {
        bad(path + ".added.id: is " + quotedJson(e.backend.id) + " but the entry's id is " +
            quotedJson(e.id));
      }
    } else if (updated != nullptr) {
      e.kind = Kind::kUpdated;
      if (!json_is_object(updated)) bad(path + ".updated: must be an object");
      if (json_object_get(updated, "id")) {
        bad(path + ".updated.id: is not allowed: the entry's \"id\" names the backend");
      }
      BackendConfig scratch;
      if (!backendFromJson(updated, path + ".updated", scratch, error)) bad(error);
      e.fields = deepCopy(updated);
    } else {
      e.kind = Kind::kRemoved;
      if (!json_is_true(removed)) bad(path + ".removed: must be true");
    }
    if (const Entry* first = overlay.find(e.upstream, e.id)) {
      bad(path + ": a second entry for backend " + quotedJson(e.id) + " of upstream " +
          quotedJson(e.upstream) + " (the first is " +
          entryPath(static_cast<size_t>(first - overlay.entries_.data())) + ")");
    }
    overlay.entries_.push_back(std::move(e));
  }
  return overlay;
}

StateOverlay loadStateFile(const std::string& path) {
  std::string text, error;
  bool missing = false;
  if (!readWholeFile(path, text, error, &missing)) {
    if (missing) return StateOverlay::fromJson("", path);
    // readWholeFile's error starts with the path, which ConfigError adds itself.
    const std::string own = path + ": ";
    throw ConfigError(path, 0, 0, error.rfind(own, 0) == 0 ? error.substr(own.size()) : error);
  }
  return StateOverlay::fromJson(text, path);
}

bool saveStateFile(const std::string& path, const StateOverlay& overlay, std::string& error) {
  const std::string text = overlay.toJson();
  if (text.empty()) {
    error = path + ": cannot write the state as JSON (out of memory, or text that is not UTF-8)";
    return false;
  }
  return writeFileAtomically(path, text, error, "", kMode);
}

Config applyStateFile(const Config& yaml, const std::string& state_path, const KnownNames& known,
                      std::vector<std::string>* notes) {
  const StateOverlay overlay = loadStateFile(state_path);
  Config config = yaml;
  if (overlay.empty()) return config;
  overlay.applyTo(config, notes);
  blameStateFile(yaml, config, state_path, [&](const Config& c) { validateConfig(c, known); });
  return config;
}

}  // namespace speedmimi::core
