#include "admin/request_bodies.h"

#include <cstring>
#include <initializer_list>
#include <utility>

#include "core/backend_json.h"

namespace speedmimi::admin {
namespace {

// Every key of `object` is one of `keys`; otherwise false naming the first other one.
bool onlyKeys(const json_t* object, const std::string& prefix,
              std::initializer_list<const char*> keys, std::string& error) {
  const char* key;
  json_t* value;
  json_object_foreach(const_cast<json_t*>(object), key, value) {
    bool known = false;
    for (const char* k : keys) known |= std::strcmp(k, key) == 0;
    if (!known) {
      error = prefix + key + ": is not a known field";
      return false;
    }
  }
  return true;
}

// A required non-empty string member.
bool stringMember(const json_t* object, const char* key, const std::string& path,
                  std::string& out, std::string& error) {
  const json_t* value = json_object_get(object, key);
  if (!value) {
    error = path + ": is required";
    return false;
  }
  if (!json_is_string(value) || json_string_length(value) == 0) {
    error = path + ": must be a non-empty string";
    return false;
  }
  out = std::string(json_string_value(value), json_string_length(value));
  if (out.find('\0') != std::string::npos) {
    error = path + ": must not contain NUL";
    return false;
  }
  return true;
}

const json_t* objectMember(const json_t* object, const char* key, std::string& error) {
  const json_t* value = json_object_get(object, key);
  if (!json_is_object(value)) {
    error = std::string(key) + (value ? ": must be an object" : ": is required");
    return nullptr;
  }
  return value;
}

// A number of a report: absent is 0; at most `max`.
bool reportNumber(const json_t* performance, const char* key, double max, double& out,
                  std::string& error) {
  const json_t* v = json_object_get(performance, key);
  if (!v) return true;
  std::string path = std::string("performance.") + key;
  if (!json_is_number(v)) {
    error = path + ": must be a number";
    return false;
  }
  out = json_number_value(v);
  if (out < 0) {
    error = path + (max == 100 ? ": must be between 0 and 100" : ": must not be negative");
    return false;
  }
  if (!(out <= max)) {  // also NaN, which JSON cannot carry but a large exponent may round to
    error = path + ": must be between 0 and " + (max == 100 ? "100" : std::to_string(static_cast<uint64_t>(max)));
    return false;
  }
  return true;
}

}  // namespace

bool parseObject(std::string_view body, core::JsonPtr& out, std::string& error) {
  json_error_t e;
  out.reset(json_loadb(body.data(), body.size(), JSON_REJECT_DUPLICATES, &e));
  if (!out) {
    error = "invalid JSON at line " + std::to_string(e.line) + ", column " +
            std::to_string(e.column) + ": " + e.text;
    return false;
  }
  if (!json_is_object(out.get())) {
    out.reset();
    error = "the body must be a JSON object";
    return false;
  }
  return true;
}

bool readAddBody(const json_t* body, AddBody& out, std::string& error) {
  if (!onlyKeys(body, "", {"upstream", "backend"}, error)) return false;
  if (!stringMember(body, "upstream", "upstream", out.upstream, error)) return false;
  const json_t* fields = objectMember(body, "backend", error);
  if (!fields) return false;
  for (const char* required : {"host", "port"}) {
    if (!json_object_get(fields, required)) {
      error = std::string("backend.") + required + ": is required";
      return false;
    }
  }
  out.backend = core::BackendConfig{};
  if (!core::backendFromJson(fields, "backend", out.backend, error)) return false;
  if (out.backend.id.empty()) out.backend.id = out.backend.host + ":" + std::to_string(out.backend.port);
  return true;
}

bool readUpdateBody(const json_t* body, UpdateBody& out, std::string& error) {
  if (!onlyKeys(body, "", {"upstream", "backend"}, error)) return false;
  if (!stringMember(body, "upstream", "upstream", out.upstream, error)) return false;
  const json_t* given = objectMember(body, "backend", error);
  if (!given) return false;
  if (!stringMember(given, "id", "backend.id", out.id, error)) return false;
  out.fields.reset(json_deep_copy(given));
  if (!out.fields) {
    error = "out of memory";
    return false;
  }
  json_object_del(out.fields.get(), "id");
  if (json_object_size(out.fields.get()) == 0) {
    error = "backend: names no field to change besides \"id\"";
    return false;
  }
  core::BackendConfig scratch;  // types and ranges; the call applies them to the real one
  return core::backendFromJson(out.fields.get(), "backend", scratch, error);
}

bool readReportBody(const json_t* body, ReportBody& out, std::string& error) {
  if (!onlyKeys(body, "", {"upstream", "backend_id", "performance"}, error)) return false;
  if (!stringMember(body, "upstream", "upstream", out.upstream, error)) return false;
  if (!stringMember(body, "backend_id", "backend_id", out.id, error)) return false;
  const json_t* p = objectMember(body, "performance", error);
  if (!p) return false;
  if (!onlyKeys(p, "performance.",
                {"cpu_usage", "memory_usage", "disk_usage", "load_avg_1", "load_avg_5",
                 "load_avg_15", "network_in", "network_out", "timestamp"},
                error)) {
    return false;
  }
  constexpr double kPercent = 100;
  constexpr double kLoad = 1e6;       // the zone keeps load x 100 in 32 bits
  constexpr double kCounter = 1.8e19;  // below 2^64
  core::PerformanceReport& r = out.report;
  double network_in = 0, network_out = 0, timestamp = 0;
  if (!reportNumber(p, "cpu_usage", kPercent, r.cpu_usage, error) ||
      !reportNumber(p, "memory_usage", kPercent, r.memory_usage, error) ||
      !reportNumber(p, "disk_usage", kPercent, r.disk_usage, error) ||
      !reportNumber(p, "load_avg_1", kLoad, r.load_avg_1, error) ||
      !reportNumber(p, "load_avg_5", kLoad, r.load_avg_5, error) ||
      !reportNumber(p, "load_avg_15", kLoad, r.load_avg_15, error) ||
      !reportNumber(p, "network_in", kCounter, network_in, error) ||
      !reportNumber(p, "network_out", kCounter, network_out, error) ||
      !reportNumber(p, "timestamp", kCounter, timestamp, error)) {
    return false;
  }
  r.network_in = static_cast<uint64_t>(network_in);
  r.network_out = static_cast<uint64_t>(network_out);
  r.timestamp = static_cast<int64_t>(timestamp);
  return true;
}

bool readConfigBody(const json_t* body, const json_t*& config, std::string& error) {
  // "success" and "message" are what GET answers beside "config": its answer can be PUT back.
  if (!onlyKeys(body, "", {"config", "success", "message"}, error)) return false;
  config = objectMember(body, "config", error);
  return config != nullptr;
}

}  // namespace speedmimi::admin
