// The configuration as the management API reads and writes it (GET and PUT /api/v1/config,
// DESIGN §9): Config <-> JSON, the ETag that guards a PUT, and writing the YAML file back.
// Runs in the control process.
#pragma once

#include <jansson.h>

#include <string>

#include "core/config.h"
#include "core/config_types.h"
#include "core/json.h"

namespace speedmimi::admin {

// The configuration as the API shows it: {"server": ..., "ssl": ..., "backends": ..., "routing":
// ..., "admin": ...} with exactly the YAML's keys and every effective value (what configToYaml
// writes, so -T and the API agree), durations and sizes as strings ("30s", "16m"), numbers as JSON
// integers, booleans as JSON booleans, lists as arrays. New reference.
// Throws std::bad_alloc when out of memory, std::runtime_error for text that is not UTF-8 (which
// only a Config built in code can hold), like configToYaml.
core::JsonPtr configToJson(const core::Config& config);

// A ConfigError as the API words it: "config.<path>: <message>", or "config: <message>" when no
// value is at fault.
std::string apiError(const core::ConfigError& e);

// The value of a PUT's "config" member, validated exactly as `-t` validates a file (parseConfig:
// same rules, same messages; the certificates are the caller's to load), by writing it as YAML through libyaml's emitter
// and parsing that. False with `error` = "config.<path>: <message>" (e.g.
// "config.backends.default[0].port: 99999 is out of range 1..65535",
// "config.server.colour: key 'colour' is not known in 'server'"), or "config: <message>" when
// no path is known. A JSON string, number or boolean becomes a YAML scalar (strings quoted where
// YAML could read them as another type), null an empty value, objects mappings (block style),
// arrays sequences; keys missing take their defaults, as in a file that omits them. `file` is
// what Config::file becomes (the config file's path). The Config has no positions (its marks
// are cleared: they would name lines of a text that exists nowhere). `out` is untouched on
// failure.
bool configFromJson(const json_t* config, const std::string& file, const core::KnownNames& known,
                    core::Config& out, std::string& error);

// A strong ETag for `config` ("\"<16 hex digits>\""): the first 64 bits of the SHA-256 of
// configToJson's canonical text (compact, sorted keys), so it is stable across processes, runs
// and machines, and different when any value differs. Sorting the keys sorts routing's route
// names too, so the order of the routes does not enter it (the router orders them itself; file
// order only breaks ties between hosts that differ by a port alone). Throws as configToJson.
std::string configEtag(const core::Config& config);

// Writes `config` as YAML (configToYaml) to `path` atomically, the previous file kept as
// PATH.bak (see core::writeFileAtomically). A new file gets mode 0600 when the config holds an
// auth_token, else 0644; an existing one keeps its mode. False with `error` and nothing changed.
bool writeConfigFile(const std::string& path, const core::Config& config, std::string& error);

}  // namespace speedmimi::admin
