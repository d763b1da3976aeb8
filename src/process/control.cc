#include "process/control.h"

#include <signal.h>
#include <time.h>

#include <map>
#include <memory>
#include <string>
#include <vector>

#include "core/log.h"
#include "event/handles.h"
#include "event/timer.h"
#include "upstream/health.h"

namespace speedmimi::process {
namespace {

using core::BackendSlot;
using core::HealthCheckConfig;
using core::ZoneBackendConfig;

constexpr std::chrono::milliseconds kSyncInterval{100};

using event::toTimeval;

int64_t unixMs() {
  timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  return static_cast<int64_t>(ts.tv_sec) * 1000 + ts.tv_nsec / 1'000'000;
}

// Probes one backend every health_check.interval and records the results in its zone slot.
class HealthChecker {
 public:
  HealthChecker(event_base* base, BackendSlot& slot, uint64_t incarnation)
      : base_(base),
        slot_(slot),
        incarnation_(incarnation),
        backend_(core::BackendConfig{}, &slot.runtime),
        timer_(event::newTimer(base, &HealthChecker::onTimer, this)) {
    update(*slot.config.load(std::memory_order_acquire));
    schedule(std::chrono::milliseconds(0));  // the first probe at once
  }

  uint64_t incarnation() const { return incarnation_; }

  // A configuration update (interval, path, thresholds, address).
  void update(const ZoneBackendConfig& zc) {
    upstream_ = zc.upstream;
    backend_.reconfigure(core::fromZoneConfig(zc));
    backend_.setAddress(zc.address, zc.address_len);
  }

 private:
  void schedule(std::chrono::milliseconds delay) { event::addTimer(timer_.get(), delay); }

  static void onTimer(evutil_socket_t, short, void* arg) {
    auto* self = static_cast<HealthChecker*>(arg);
    self->probe_ = std::make_unique<upstream::HealthProbe>(
        self->base_, self->backend_,
        [self](bool passed, const std::string& reason) { self->onResult(passed, reason); });
  }

  void onResult(bool passed, const std::string& reason) {
    const HealthCheckConfig& hc = backend_.config().health_check;
    std::string why = (passed ? "check passed: " : "check failed: ") + reason;
    auto changed = upstream::applyProbeResult(slot_.runtime, slot_.health, passed, why,
                                              hc.failures, hc.successes, unixMs());
    if (changed == upstream::Health::kDown) {
      SM_WARN("backend %s of %s is down: %d consecutive failures, last: %s",
              backend_.id().c_str(), upstream_.c_str(), hc.failures, reason.c_str());
    } else if (changed == upstream::Health::kUp) {
      SM_NOTICE("backend %s of %s is up: %d consecutive passes, last: %s",
                backend_.id().c_str(), upstream_.c_str(), hc.successes, reason.c_str());
    }
    // The probe is finishing inside its own callback: destroy it from the loop, not here.
    finished_probe_ = std::move(probe_);
    schedule(hc.interval);
  }

  event_base* base_;
  BackendSlot& slot_;
  uint64_t incarnation_;
  std::string upstream_;
  upstream::Backend backend_;
  event::EventPtr timer_;
  std::unique_ptr<upstream::HealthProbe> probe_;
  std::unique_ptr<upstream::HealthProbe> finished_probe_;
};

class Control {
 public:
  explicit Control(const ControlSetup& setup) : setup_(setup) {}
  int run();

 private:
  void sync();
  static void onTick(evutil_socket_t, short, void* arg);
  static void onSignal(evutil_socket_t sig, short, void* arg);
  static void onMasterGone(evutil_socket_t, short, void* arg);

  const ControlSetup& setup_;
  event::EventBasePtr base_;
  std::vector<event::EventPtr> signals_;
  event::EventPtr tick_;
  event::EventPtr master_watch_;
  uint64_t generation_ = 0;
  std::map<size_t, std::unique_ptr<HealthChecker>> checkers_;  // slot index -> checker
};

// Follows the zone: a checker for every live backend with a health_check, none for others.
void Control::sync() {
  Zone& zone = *setup_.zone;
  uint64_t generation = zone.generation();
  if (generation == generation_) return;
  std::map<size_t, std::unique_ptr<HealthChecker>> next;
  zone.forEachLive([&](size_t index, BackendSlot& slot) {
    const ZoneBackendConfig* zc = slot.config.load(std::memory_order_acquire);
    if (!zc || !zc->health_enabled) return;
    uint64_t incarnation = slot.incarnation.load(std::memory_order_acquire);
    auto it = checkers_.find(index);
    if (it != checkers_.end() && it->second->incarnation() == incarnation) {
      it->second->update(*zc);
      next.emplace(index, std::move(it->second));
    } else {
      next.emplace(index, std::make_unique<HealthChecker>(base_.get(), slot, incarnation));
    }
  });
  checkers_ = std::move(next);
  generation_ = generation;
}

int Control::run() {
  base_.reset(event_base_new());
  if (!base_) {
    SM_CRIT("event_base_new() failed in the control process");
    return 2;
  }
  for (int sig : {SIGTERM, SIGINT, SIGQUIT, SIGUSR1}) {
    event::EventPtr ev(evsignal_new(base_.get(), sig, &Control::onSignal, this));
    if (!ev || evsignal_add(ev.get(), nullptr) != 0) {
      SM_CRIT("cannot watch signal %d in the control process", sig);
      return 2;
    }
    signals_.push_back(std::move(ev));
  }
  tick_.reset(event_new(base_.get(), -1, EV_PERSIST, &Control::onTick, this));
  if (!tick_) {
    SM_CRIT("cannot create the control process's tick");
    return 2;
  }
  event::addTimer(tick_.get(), kSyncInterval);
  master_watch_.reset(event_new(base_.get(), setup_.master_pipe, EV_READ,
                                &Control::onMasterGone, this));
  if (!master_watch_ || event_add(master_watch_.get(), nullptr) != 0) {
    SM_CRIT("cannot watch the master process from the control process");
    return 2;
  }
  sigset_t set;
  sigemptyset(&set);
  for (int sig : {SIGTERM, SIGINT, SIGQUIT, SIGUSR1}) sigaddset(&set, sig);
  sigprocmask(SIG_UNBLOCK, &set, nullptr);

  sync();
  event_base_dispatch(base_.get());
  checkers_.clear();
  return 0;
}

void Control::onTick(evutil_socket_t, short, void* arg) {
  auto* self = static_cast<Control*>(arg);
  self->sync();
  self->setup_.zone->reclaim();
}

void Control::onMasterGone(evutil_socket_t, short, void* arg) {
  auto* self = static_cast<Control*>(arg);
  SM_WARN("the master process is gone; the control process stops");
  event_base_loopbreak(self->base_.get());
}

void Control::onSignal(evutil_socket_t sig, short, void* arg) {
  auto* self = static_cast<Control*>(arg);
  if (sig == SIGUSR1) {
    std::string error;
    if (!core::reopenErrorLog(error)) SM_ERROR("%s", error.c_str());
    return;
  }
  event_base_loopbreak(self->base_.get());
}

}  // namespace

int runControl(const ControlSetup& setup) {
  Control control(setup);
  return control.run();
}

}  // namespace speedmimi::process
