// The state file (server.state_file, DESIGN §9): the backend changes made at run time through the
// management API, kept as an overlay on top of the YAML so that a restart, a reload or a binary
// upgrade replays them. The control process records each change and saves the file before it
// answers; the master (start, HUP, a new binary) and -t/-T replay it onto the YAML as loaded.
//
// Format: one JSON object, written pretty with a trailing newline.
//
//   {
//     "version": 1,
//     "backends": [
//       {"upstream": "default", "id": "backend3", "added": {"id": "backend3", "host": ..., ...}},
//       {"upstream": "default", "id": "backend1", "updated": {"weight": 200}},
//       {"upstream": "default", "id": "backend2", "removed": true}
//     ]
//   }
//
// - One entry per (upstream, id), with exactly one of:
//   "added": the whole backend as core/backend_json.h writes it (every key; "id" equal to the
//            entry's id, "host" and "port" required); it replaces a backend of the YAML with that
//            id, or is appended to the upstream (which is created when the YAML has none);
//   "updated": the fields changed, as the API accepted them (backendFromJson's keys, except "id":
//            an update never renames), applied to the YAML's backend with that id; skipped, with
//            a note, when the YAML no longer has it;
//   "removed": true: the backend is erased from the YAML's upstream when it is there (the
//            upstream itself stays).
// - Changes to one backend merge into its entry, so nothing is lost: "updated" after "added"
//   is applied to the added backend; "updated" after "updated" merges the fields (a later value
//   wins; health_check objects merge key by key, an object after null starts from the defaults,
//   as backendFromJson does); "removed" replaces whatever was there, even for a backend that only
//   an "added" entry had (harmless on replay); "added" replaces the entry. An update of a removed
//   backend is dropped (the API answers 404 for it).
// - Entries are in the order of their first change, except that "added" moves its entry to the
//   end (as the live backend is appended to its upstream): a replay appends added backends in
//   the order they were added, and the same changes always give the same text.
// - Unknown keys, a version other than 1, a second entry for the same backend or a bad value are
//   errors, located at the entry ("FILE:LINE:COLUMN: backends[2].added.port: must be ...").
//   A file that is empty or holds only whitespace is an empty overlay, as is a missing file.
#pragma once

#include <jansson.h>

#include <string>
#include <string_view>
#include <vector>

#include "core/config.h"
#include "core/config_types.h"
#include "core/json.h"

namespace speedmimi::core {

// Not thread-safe; the control process owns the live one. Copyable (an API call works on a copy
// and keeps it once it is saved).
class StateOverlay {
 public:
  // Replaces any entry for (upstream, backend.id) by the whole backend.
  void added(const std::string& upstream, const BackendConfig& backend);
  // An update's fields (the JSON object the API accepted, by backendFromJson's rules; "id" is
  // ignored), merged into the entry: applied to the added backend if it was added at run time,
  // else merged into the fields updated so far. Fields that backendFromJson refuses are dropped
  // (they could not have been applied to the live backend either).
  void updated(const std::string& upstream, const std::string& id, const json_t* fields);
  void removed(const std::string& upstream, const std::string& id);
  bool empty() const { return entries_.empty(); }

  // Replays every entry onto `config` (the YAML as loaded): removed -> erased if present;
  // added -> replaces a backend with that id or is appended (creating the upstream); updated ->
  // applied with backendFromJson to the backend with that id, skipped with a note in `notes` if
  // the YAML has no such backend any more. Clears config.marks if it changed a list, else forgets
  // the marks of the values it replaced (they would point at the YAML's text). Throws ConfigError
  // (at the entry, for an overlay read from a file) if an entry cannot be applied.
  void applyTo(Config& config, std::vector<std::string>* notes = nullptr) const;

  // The state file's text (see the format above).
  std::string toJson() const;
  // Parses the state file's text; `file` names it in errors and in applyTo's. Throws
  // ConfigError(file, line, column, message): Jansson's position and text for bad JSON, the
  // entry's position and its field path for a bad entry.
  static StateOverlay fromJson(std::string_view text, const std::string& file);

 private:
  enum class Kind { kAdded, kUpdated, kRemoved };
  struct Entry {
    Entry() = default;
    Entry(const Entry& other);
    Entry& operator=(const Entry& other);
    Entry(Entry&&) = default;
    Entry& operator=(Entry&&) = default;

    std::string upstream;
    std::string id;
    Kind kind = Kind::kRemoved;
    BackendConfig backend;  // kAdded
    JsonPtr fields;         // kUpdated: an object
    Mark mark;              // where the entry is in `file_`, when it was read from one
  };

  Entry* find(const std::string& upstream, const std::string& id);
  [[noreturn]] void fail(const Entry& entry, const std::string& message) const;

  std::vector<Entry> entries_;  // in the order of their first change
  std::string file_;            // the file it was read from, for errors; "" when built in code
};

// Reads the state file at `path`. A missing file is an empty overlay. Throws ConfigError naming
// `path` when it cannot be read or parsed; the file is never changed.
StateOverlay loadStateFile(const std::string& path);

// Writes the overlay to `path` atomically (core/atomic_file.h: temporary file, fsync, rename,
// directory fsync), with mode 0600 for a new file. False with `error` and the old file intact.
bool saveStateFile(const std::string& path, const StateOverlay& overlay, std::string& error);

// The YAML config plus the overlay read from `state_path` (server.state_file, resolved by the
// caller), validated with validateConfig. Errors from the state file, and an effective config
// that validateConfig refuses although `yaml` passes, are thrown as ConfigError
// naming the state file. Updates skipped because the YAML lost their backend are told in `notes`.
Config applyStateFile(const Config& yaml, const std::string& state_path, const KnownNames& known,
                      std::vector<std::string>* notes = nullptr);

}  // namespace speedmimi::core
