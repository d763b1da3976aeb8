// JSON <-> BackendConfig. The reader works on a copy and assigns it only when every key was
// accepted, so a refused object changes nothing (the API's "a failed call changes nothing").
#include "core/backend_json.h"

#include <cstdint>
#include <functional>
#include <limits>
#include <optional>
#include <string_view>
#include <vector>

#include "core/config_limits.h"
#include "core/units.h"

namespace speedmimi::core {
namespace {

// The same ranges as the YAML reader (core/config_limits.h); t/unit/core/backend_json_test.cc
// checks each bound here against parseConfig too.
using namespace limits;
constexpr int64_t kMaxConn = kMaxInt;

// Reads one key's value into the backend being built; false with `error` set.
using Reader =
    std::function<bool(const json_t* value, const std::string& path, std::string& error)>;

struct Field {
  std::string_view key;
  Reader read;
};

bool fail(std::string& error, const std::string& path, const std::string& message) {
  error = path + ": " + message;
  return false;
}

// Calls each present key's reader; an unknown key is an error.
bool readFields(const json_t* object, const std::string& path, const std::vector<Field>& fields,
                std::string& error) {
  if (!json_is_object(object)) return fail(error, path, "must be an object");
  const char* key;
  const json_t* value;
  // json_object_foreach wants a mutable object; it only reads it.
  json_object_foreach(const_cast<json_t*>(object), key, value) {
    const std::string key_path = path + "." + key;
    bool known = false;
    for (const Field& field : fields) {
      if (field.key != key) continue;
      known = true;
      if (!field.read(value, key_path, error)) return false;
    }
    if (!known) return fail(error, key_path, "is not a known key");
  }
  return true;
}

Reader integer(int64_t lo, int64_t hi, const std::function<void(int64_t)>& store) {
  return [lo, hi, store](const json_t* value, const std::string& path, std::string& error) {
    if (!json_is_integer(value) || json_integer_value(value) < lo ||
        json_integer_value(value) > hi) {
      return fail(error, path,
                  "must be an integer " + std::to_string(lo) + ".." + std::to_string(hi));
    }
    store(json_integer_value(value));
    return true;
  };
}

Reader intField(int64_t lo, int64_t hi, int& field) {
  return integer(lo, hi, [&field](int64_t v) { field = static_cast<int>(v); });
}

Reader boolean(bool& field) {
  return [&field](const json_t* value, const std::string& path, std::string& error) {
    if (!json_is_boolean(value)) return fail(error, path, "must be true or false");
    field = json_is_true(value);
    return true;
  };
}

Reader text(std::string& field, bool non_empty) {
  return [&field, non_empty](const json_t* value, const std::string& path, std::string& error) {
    if (!json_is_string(value) || (non_empty && json_string_length(value) == 0)) {
      return fail(error, path, non_empty ? "must be a non-empty string" : "must be a string");
    }
    field.assign(json_string_value(value), json_string_length(value));
    return true;
  };
}

// "10s" as in the YAML, or an integer of milliseconds; the same largest value either way. At
// least `min`: kPositive for the timeouts, 0 where 0 means "off" (slow_start).
Reader duration(Duration& field, Duration min = kPositive) {
  return [&field, min](const json_t* value, const std::string& path, std::string& error) {
    std::optional<Duration> d;
    if (json_is_string(value)) {
      d = parseDuration(std::string_view(json_string_value(value), json_string_length(value)));
    } else if (json_is_integer(value) && json_integer_value(value) >= 0) {
      d = parseDuration(std::to_string(json_integer_value(value)) + "ms");
    } else if (json_is_integer(value)) {
      d = Duration{-1};  // below the minimum, whatever the magnitude
    }
    if (!d) return fail(error, path, "must be a duration such as \"10s\"");
    if (*d < min) return fail(error, path, "must be at least " + formatDuration(min));
    field = *d;
    return true;
  };
}

bool readHealthCheck(const json_t* value, const std::string& path, HealthCheckConfig& hc,
                     std::string& error) {
  if (json_is_null(value)) {
    hc = HealthCheckConfig{};
    return true;
  }
  if (!json_is_object(value)) return fail(error, path, "must be an object or null");
  HealthCheckConfig next = hc;
  next.enabled = true;
  const bool ok = readFields(value, path,
                             {
                                 {"path",
                                  [&next](const json_t* v, const std::string& p, std::string& e) {
                                    if (!json_is_string(v) || json_string_length(v) == 0 ||
                                        json_string_value(v)[0] != '/') {
                                      return fail(e, p, "must be a path starting with \"/\"");
                                    }
                                    next.path.assign(json_string_value(v), json_string_length(v));
                                    return true;
                                  }},
                                 {"interval", duration(next.interval)},
                                 {"timeout", duration(next.timeout)},
                                 {"failures", intField(1, kMaxCheckCount, next.failures)},
                                 {"successes", intField(1, kMaxCheckCount, next.successes)},
                             },
                             error);
  if (ok) hc = next;
  return ok;
}

}  // namespace

bool backendFromJson(const json_t* object, const std::string& path, BackendConfig& out,
                     std::string& error) {
  BackendConfig b = out;
  const bool ok = readFields(
      object, path,
      {
          {"id", text(b.id, true)},
          {"name", text(b.name, false)},
          {"host", text(b.host, true)},
          {"port", intField(kMinPort, kMaxPort, b.port)},
          {"weight", intField(kMinWeight, kMaxWeight, b.weight)},
          {"scheme",
           [&b](const json_t* v, const std::string& p, std::string& e) {
             const std::string_view s =
                 json_is_string(v) ? std::string_view(json_string_value(v), json_string_length(v))
                                   : std::string_view();
             if (s != "http" && s != "https") return fail(e, p, "must be \"http\" or \"https\"");
             b.scheme = s;
             return true;
           }},
          {"active", boolean(b.active)},
          {"max_conn",
           integer(0, kMaxConn, [&b](int64_t v) { b.max_conn = static_cast<uint64_t>(v); })},
          {"max_fails", intField(0, kMaxFails, b.max_fails)},
          {"fail_timeout", duration(b.fail_timeout)},
          {"slow_start", duration(b.slow_start, Duration{0})},
          {"tls_verify", boolean(b.tls_verify)},
          {"ca_file", text(b.ca_file, false)},
          {"keepalive", intField(0, kMaxKeepalive, b.keepalive)},
          {"health_check",
           [&b](const json_t* v, const std::string& p, std::string& e) {
             return readHealthCheck(v, p, b.health_check, e);
           }},
      },
      error);
  if (ok) out = std::move(b);
  return ok;
}

JsonPtr backendToJson(const BackendConfig& b) {
  JsonPtr out(json_object());
  bool complete = out != nullptr;
  // json_object_set_new takes the value (freeing it when it fails, even without an object) and
  // fails for a null one (Jansson out of memory, or text that is not UTF-8).
  auto set = [&](const char* key, json_t* value) {
    if (json_object_set_new(out.get(), key, value) != 0) complete = false;
  };
  set("id", json_string(b.id.c_str()));
  set("name", json_string(b.name.c_str()));
  set("host", json_string(b.host.c_str()));
  set("port", json_integer(b.port));
  set("weight", json_integer(b.weight));
  set("scheme", json_string(b.scheme.c_str()));
  set("active", json_boolean(b.active));
  set("max_conn", json_integer(static_cast<json_int_t>(b.max_conn)));
  set("max_fails", json_integer(b.max_fails));
  set("fail_timeout", json_string(formatDuration(b.fail_timeout).c_str()));
  set("slow_start", json_string(formatDuration(b.slow_start).c_str()));
  set("tls_verify", json_boolean(b.tls_verify));
  set("ca_file", json_string(b.ca_file.c_str()));
  set("keepalive", json_integer(b.keepalive));
  if (b.health_check.enabled) {
    const HealthCheckConfig& hc = b.health_check;
    JsonPtr check(json_pack("{s:s, s:s, s:s, s:i, s:i}", "path", hc.path.c_str(), "interval",
                            formatDuration(hc.interval).c_str(), "timeout",
                            formatDuration(hc.timeout).c_str(), "failures", hc.failures,
                            "successes", hc.successes));
    set("health_check", check.release());
  }
  if (!complete) out.reset();
  return out;
}

}  // namespace speedmimi::core
