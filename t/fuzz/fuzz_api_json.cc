// libFuzzer target: the management API's JSON bodies (src/admin/request_bodies.h, the backend
// fields of core/backend_json.h, and a PUT's configuration through admin/config_json.h).
//
// Control bytes (see fuzz_common.h): options bits 0-2 choose the call whose body the message is
// (add, update, report, config, a bare backend object, all of them); the split byte is unused.
//
// Properties: every reader either accepts or fails with a message naming a field path or the
// JSON position, never both and never neither; an accepted add body has a non-empty upstream,
// id and host and a port in range; an accepted update has fields besides id; an accepted report
// has percentages within 0..100; a backend accepted from JSON is written back by backendToJson
// and read again to the same settings; an accepted configuration round-trips through
// configToJson to the same ETag.
#include <string>

#include "admin/config_json.h"
#include "admin/request_bodies.h"
#include "core/backend_json.h"
#include "core/config.h"
#include "fuzz_common.h"
#include "upstream/balancer.h"

namespace speedmimi::fuzz {
namespace {

using core::JsonPtr;

void checkBackendRoundTrip(const core::BackendConfig& b) {
  JsonPtr written = core::backendToJson(b);
  FUZZ_CHECK(written != nullptr);
  core::BackendConfig again;
  std::string error;
  FUZZ_CHECK(core::backendFromJson(written.get(), "backend", again, error));
  FUZZ_CHECK(core::jsonText(core::backendToJson(again).get()) == core::jsonText(written.get()));
}

void fuzzAdd(const json_t* body) {
  admin::AddBody add;
  std::string error;
  bool ok = admin::readAddBody(body, add, error);
  FUZZ_CHECK(ok == error.empty());
  if (!ok) return;
  FUZZ_CHECK(!add.upstream.empty() && !add.backend.id.empty() && !add.backend.host.empty());
  FUZZ_CHECK(add.backend.port >= 1 && add.backend.port <= 65535);
  checkBackendRoundTrip(add.backend);
}

void fuzzUpdate(const json_t* body) {
  admin::UpdateBody update;
  std::string error;
  bool ok = admin::readUpdateBody(body, update, error);
  FUZZ_CHECK(ok == error.empty());
  if (!ok) return;
  FUZZ_CHECK(!update.id.empty() && json_object_size(update.fields.get()) > 0);
  FUZZ_CHECK(json_object_get(update.fields.get(), "id") == nullptr);
}

void fuzzReport(const json_t* body) {
  admin::ReportBody report;
  std::string error;
  bool ok = admin::readReportBody(body, report, error);
  FUZZ_CHECK(ok == error.empty());
  if (!ok) return;
  const core::PerformanceReport& r = report.report;
  FUZZ_CHECK(r.cpu_usage >= 0 && r.cpu_usage <= 100 && r.memory_usage >= 0 &&
             r.memory_usage <= 100 && r.disk_usage >= 0 && r.disk_usage <= 100);
  FUZZ_CHECK(r.load_avg_1 >= 0 && r.load_avg_5 >= 0 && r.load_avg_15 >= 0);
}

void fuzzConfig(const json_t* body) {
  const json_t* given = nullptr;
  std::string error;
  if (!admin::readConfigBody(body, given, error)) {
    FUZZ_CHECK(!error.empty());
    return;
  }
  core::Config config;
  bool ok = admin::configFromJson(given, "fuzz.yaml", {upstream::balancerNames()}, config, error);
  FUZZ_CHECK(ok == error.empty());
  if (!ok) {
    FUZZ_CHECK(error.rfind("config", 0) == 0);  // "config.<path>: ..." or "config: ..."
    return;
  }
  JsonPtr shown = admin::configToJson(config);
  core::Config again;
  FUZZ_CHECK(admin::configFromJson(shown.get(), "fuzz.yaml", {upstream::balancerNames()}, again,
                                   error));
  FUZZ_CHECK(admin::configEtag(again) == admin::configEtag(config));
}

void fuzzBackend(const json_t* body) {
  core::BackendConfig b;
  std::string error;
  bool ok = core::backendFromJson(body, "backend", b, error);
  FUZZ_CHECK(ok == error.empty());
  if (!ok) FUZZ_CHECK(error.rfind("backend", 0) == 0);
}

}  // namespace
}  // namespace speedmimi::fuzz

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace speedmimi;
  fuzz::Input in = fuzz::splitInput(data, size);
  fuzz::ExactCopy copy(in.message);
  core::JsonPtr body;
  std::string error;
  if (!admin::parseObject(copy.view(), body, error)) {
    FUZZ_CHECK(!error.empty() && body == nullptr);
    return 0;
  }
  switch (in.options & 7) {
    case 0: fuzz::fuzzAdd(body.get()); break;
    case 1: fuzz::fuzzUpdate(body.get()); break;
    case 2: fuzz::fuzzReport(body.get()); break;
    case 3: fuzz::fuzzConfig(body.get()); break;
    case 4: fuzz::fuzzBackend(body.get()); break;
    default:
      fuzz::fuzzAdd(body.get());
      fuzz::fuzzUpdate(body.get());
      fuzz::fuzzReport(body.get());
      fuzz::fuzzConfig(body.get());
      fuzz::fuzzBackend(body.get());
  }
  return 0;
}
