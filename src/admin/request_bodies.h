// The JSON bodies of the API's calls, read and checked apart from the calls themselves: pure
// functions over a parsed body, so that the unit tests and the fuzz target (t/fuzz) reach every
// rule. Each failure is one message naming the field path ("backend.port: ..."), answered as
// a 400; a body that passes has the shape its call needs (values are checked again where they
// are applied: the zone's limits, name resolution).
#pragma once

#include <string>
#include <string_view>

#include "core/config_types.h"
#include "core/json.h"
#include "core/zone_types.h"

namespace speedmimi::admin {

// A JSON object; otherwise false with "invalid JSON at line L, column C: reason" or "the body
// must be a JSON object". Duplicate keys are refused.
bool parseObject(std::string_view body, core::JsonPtr& out, std::string& error);

// POST /api/v1/backends/add: {"upstream": U, "backend": {...}} with backend.host and
// backend.port given; a missing id becomes "HOST:PORT" as in the YAML.
struct AddBody {
  std::string upstream;
  core::BackendConfig backend;
};
bool readAddBody(const json_t* body, AddBody& out, std::string& error);

// PUT /api/v1/backends/update: {"upstream": U, "backend": {"id": B, ...fields}} with at least
// one field besides id. `fields` (without id) is checked by applying it to a default backend;
// the call applies it to the backend's current settings.
struct UpdateBody {
  std::string upstream;
  std::string id;
  core::JsonPtr fields;
};
bool readUpdateBody(const json_t* body, UpdateBody& out, std::string& error);

// POST /api/v1/report: {"upstream": U, "backend_id": B, "performance": {...}}: percentages
// 0..100, loads and network counters >= 0, timestamp (seconds) optional; absent fields are 0.
struct ReportBody {
  std::string upstream;
  std::string id;
  core::PerformanceReport report;
};
bool readReportBody(const json_t* body, ReportBody& out, std::string& error);

// PUT /api/v1/config: {"config": {...}} ("success" and "message" beside it are ignored, so
// that GET's answer can be sent back); `config` borrows from `body`.
bool readConfigBody(const json_t* body, const json_t*& config, std::string& error);

}  // namespace speedmimi::admin
