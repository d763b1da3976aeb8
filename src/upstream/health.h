// Health checks (DESIGN §6): the state machine that turns probe results into a health status,
// the probe itself (one GET over a fresh connection, 2xx/3xx passes), and the watch that records
// the passive checks' changes in the health history.
// All run in the control process only; the status they write is read by every worker.
#pragma once

#include <chrono>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "core/zone.h"
#include "core/zone_types.h"
#include "event/stream.h"
#include "upstream/backend.h"

namespace speedmimi::upstream {

// Applies one probe result to a backend's record: `failures` consecutive failures take it down,
// `successes` consecutive passes bring it up (an unknown backend becomes up or down the same
// way). Returns the new status when it changed, and then stores `reason` in the record and
// appends the change to `history` at `now_unix_ms` (wall clock). A backend that was down and is
// up again came back: its slow start begins at `now_ms` (core::monotonicMs). Unknown to up is
// no comeback: an unknown backend was taking its full share already.
std::optional<Health> applyProbeResult(BackendState& state, core::HealthRecord& record,
                                       core::HealthHistory& history, bool passed,
                                       const std::string& reason, int failures, int successes,
                                       int64_t now_unix_ms, int64_t now_ms);

// Passive health as the control process follows it (DESIGN §6). Workers take a backend out by
// storing BackendState::passive_down_until_ms (Backend::recordFailure); the control process,
// the one writer of every health history, sees each take-out and its end in its tick and
// appends them: kDown with "passive: N failures within fail_timeout T", then, once
// fail_timeout is over, the active checks' status with "passive: fail_timeout over". The only
// backend of an upstream is never taken out (Backend::setSolo), so it has no such events.
class PassiveHealthWatch {
 public:
  struct Change {
    size_t index;  // the backend's slot
    bool out;      // taken out (true) or back (false)
  };
  // Compares every live backend of `zone` at `now_ms` (core::monotonicMs, the workers' clock)
  // with what the last call saw, appends the changes at `now_unix_ms` and returns them (to be
  // logged). A backend seen for the first time is compared with its history's last passive
  // event, so a new control process (a reload) neither repeats nor misses one.
  std::vector<Change> update(core::Zone& zone, int64_t now_ms, int64_t now_unix_ms);

 private:
  struct Seen {
    uint64_t incarnation;
    bool out;
  };
  std::map<size_t, Seen> seen_;  // slot index -> what was last recorded
};

// The reason PassiveHealthWatch records for a take-out: "passive: 1 failures within
// fail_timeout 10s".
std::string passiveReason(int max_fails, std::chrono::milliseconds fail_timeout);

const char* healthName(Health h);

// One probe: connect to `backend`, send "GET path", read the status line. Calls `done` exactly
// once, from the event loop, with whether it passed and why not; destroying the probe before
// then cancels it without a call.
class HealthProbe final : public event::StreamHandler {
 public:
  using Done = std::function<void(bool passed, const std::string& reason)>;

  // An https backend is probed over TLS, verified as requests are (Backend::clientTls, with
  // `prefix` for a relative ca_file); a handshake or verification failure fails the probe.
  HealthProbe(event_base* base, const Backend& backend, Done done, const std::string& prefix);
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
