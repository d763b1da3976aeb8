// One backend (DESIGN §7 `backends.<upstream>[i]`) as a JSON object, for the management API's
// bodies and answers and for the state file. The keys and their ranges are those of the YAML;
// only the spellings differ: JSON's own types instead of YAML's text.
#pragma once

#include <jansson.h>

#include <string>

#include "core/config_types.h"
#include "core/json.h"

namespace speedmimi::core {

// Reads the keys present in `object` onto `out`; keys absent leave `out` as it was (a partial
// update). Keys: id, name, host, port, weight, scheme, active, max_conn, max_fails, fail_timeout,
// slow_start, tls_verify, ca_file, keepalive, health_check {path, interval, timeout, failures, successes}.
// Types are strict: integers for numbers, true/false for booleans, strings for text; a duration
// is a string in the YAML's syntax ("10s", "500ms") or an integer of milliseconds.
// health_check: an object turns the checks on (its keys applied onto the current settings); null
// turns them off and forgets their settings, so that a later object starts from the defaults,
// as a YAML block does.
// Unknown key, wrong type or out-of-range value: false with `error` naming the field path under
// `path` ("backend.port: must be an integer 1..65535"), and `out` untouched.
bool backendFromJson(const json_t* object, const std::string& path, BackendConfig& out,
                     std::string& error);

// Every key with its effective value (defaults included), durations as strings the way
// core/config_yaml.cc writes them ("30s", "1500ms"); health_check only when enabled. A new
// reference; null when Jansson cannot allocate, or for text that is not UTF-8 (which only a
// BackendConfig built in code can hold).
JsonPtr backendToJson(const BackendConfig& backend);

}  // namespace speedmimi::core
