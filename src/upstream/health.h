// Active health checks (DESIGN §6): the state machine that turns probe results into a health
// status, and the probe itself (one GET over a fresh connection, 2xx/3xx passes).
// Both run in the control process only; the status they write is read by every worker.
#pragma once

#include <chrono>
#include <functional>
#include <memory>
#include <optional>
#include <string>

#include "core/zone_types.h"
#include "event/stream.h"
#include "upstream/backend.h"

namespace speedmimi::upstream {

// Applies one probe result to a backend's record: `failures` consecutive failures take it down,
// `successes` consecutive passes bring it up (an unknown backend becomes up or down the same
// way). Returns the new status when it changed, and then stores `reason` in the record.
std::optional<Health> applyProbeResult(BackendState& state, core::HealthRecord& record,
                                       bool passed, const std::string& reason, int failures,
                                       int successes, int64_t now_unix_ms);

const char* healthName(Health h);

// One probe: connect to `backend`, send "GET path", read the status line. Calls `done` exactly
// once, from the event loop, with whether it passed and why not; destroying the probe before
// then cancels it without a call.
class HealthProbe final : public event::StreamHandler {
 public:
  using Done = std::function<void(bool passed, const std::string& reason)>;

  HealthProbe(event_base* base, const Backend& backend, Done done);
  ~HealthProbe();

  void onStreamEvent(event::Stream& stream, event::StreamEvent ev) override;

 private:
  void finish(bool passed, const std::string& reason);
  static void onTimeout(evutil_socket_t, short, void* arg);

  Done done_;
  std::unique_ptr<event::Stream> stream_;
  event::EventPtr timer_;
  std::string early_failure_;  // the socket could not be created
  bool finished_ = false;
};

}  // namespace speedmimi::upstream
