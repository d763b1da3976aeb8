#include "process/control.h"

#include <signal.h>
#include <sys/signalfd.h>
#include <time.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include <map>
#include <memory>
#include <string>
#include <vector>

#include "admin/api.h"
#include "admin/dashboard.h"
#include "admin/http_server.h"
#include "core/clock.h"
#include "core/log.h"
#include "event/handles.h"
#include "event/timer.h"
#include "process/notify.h"
#include "process/tls_check.h"
#include "upstream/balancer.h"
#include "upstream/health.h"

namespace speedmimi::process {
namespace {

using core::BackendSlot;
using core::HealthCheckConfig;
using core::ZoneBackendConfig;

constexpr std::chrono::milliseconds kSyncInterval{100};
constexpr std::chrono::seconds kAnswerTimeout{30};  // the master's answer to a request
// A stopping control process still answers the calls it has (a reload or an upgrade it asked
// for ends by replacing it); the master kills a retiring one after 2 s, an upgrade takes longer.
constexpr std::chrono::seconds kStopGrace{15};
constexpr std::chrono::milliseconds kStopPoll{10};

using event::toTimeval;

int64_t unixMs() {
  timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  return static_cast<int64_t>(ts.tv_sec) * 1000 + ts.tv_nsec / 1'000'000;
}

// Probes one backend every health_check.interval and records the results in its zone slot.
class HealthChecker {
 public:
  // `prefix`: what an https backend's relative ca_file is under.
  HealthChecker(event_base* base, BackendSlot& slot, uint64_t incarnation,
                const std::string& prefix)
      : base_(base),
        slot_(slot),
        incarnation_(incarnation),
        prefix_(prefix),
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
        [self](bool passed, const std::string& reason) { self->onResult(passed, reason); },
        self->prefix_);
  }

  void onResult(bool passed, const std::string& reason) {
    const HealthCheckConfig& hc = backend_.config().health_check;
    std::string why = (passed ? "check passed: " : "check failed: ") + reason;
    auto changed =
        upstream::applyProbeResult(slot_.runtime, slot_.health, slot_.health_history, passed, why,
                                   hc.failures, hc.successes, unixMs(), core::monotonicMs());
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
  std::string prefix_;
  std::string upstream_;
  upstream::Backend backend_;
  event::EventPtr timer_;
  std::unique_ptr<upstream::HealthProbe> probe_;
  std::unique_ptr<upstream::HealthProbe> finished_probe_;
};

// Asks the master for a reload or an upgrade, as `speedmimi -s` does (notify.h), and waits for
// its answer without blocking: the reply signal is read from a signalfd on the event loop.
class MasterLink final : public admin::Lifecycle {
 public:
  MasterLink(event_base* base, const Zone& zone, int requests)
      : base_(base), zone_(zone), master_(getppid()), requests_(requests) {}

  bool init(std::string& error) {
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, replySignal());
    ::signal(replySignal(), SIG_DFL);
    sigprocmask(SIG_BLOCK, &set, nullptr);
    fd_.reset(signalfd(-1, &set, SFD_NONBLOCK | SFD_CLOEXEC));
    if (!fd_.valid()) {
      error = std::string("signalfd() failed: ") + std::strerror(errno);
      return false;
    }
    readable_.reset(event_new(base_, fd_.get(), EV_READ | EV_PERSIST, &MasterLink::onReply, this));
    timeout_ = event::newTimer(base_, &MasterLink::onTimeout, this);
    if (!readable_ || event_add(readable_.get(), nullptr) != 0) {
      error = "cannot watch the master's replies";
      return false;
    }
    return true;
  }

  void reload(Done done) override { ask(Request::kReload, std::move(done)); }
  void upgrade(Done done) override { ask(Request::kUpgrade, std::move(done)); }

 private:
  void ask(Request request, Done done) {
    if (!waiting_.empty()) {
      // The Api lets one lifecycle call run at a time; a second would be answered by the first
      // reply whatever it asked.
      return done(false, 0, "another request to the master is in progress");
    }
    if (!writeRequest(requests_, request)) {
      return done(false, 0, std::string("cannot ask the master: ") + std::strerror(errno));
    }
    waiting_.push_back(std::move(done));
    event::addTimer(timeout_.get(), kAnswerTimeout);
  }

  void finish(bool ok, int value, const std::string& error) {
    event_del(timeout_.get());
    std::vector<Done> waiting = std::move(waiting_);
    waiting_.clear();
    for (Done& d : waiting) d(ok, value, error);
  }

  static void onReply(evutil_socket_t fd, short, void* arg) {
    auto* self = static_cast<MasterLink*>(arg);
    signalfd_siginfo info;
    while (read(fd, &info, sizeof(info)) == static_cast<ssize_t>(sizeof(info))) {
      if (static_cast<pid_t>(info.ssi_pid) != self->master_ || self->waiting_.empty()) continue;
      int value = info.ssi_int;
      if (value > 0) {
        self->finish(true, value, "");
      } else {
        std::string why = self->zone_.lifecycleError();
        self->finish(false, 0, why.empty() ? "the master refused (see the error log)" : why);
      }
    }
  }

  static void onTimeout(evutil_socket_t, short, void* arg) {
    auto* self = static_cast<MasterLink*>(arg);
    self->finish(false, 0, "the master did not answer within " +
                               std::to_string(kAnswerTimeout.count()) + " s");
  }

  event_base* base_;
  const Zone& zone_;  // where the master says why a request failed
  pid_t master_;
  int requests_;  // the master's request pipe (not owned)
  event::Fd fd_;
  event::EventPtr readable_;
  event::EventPtr timeout_;
  std::vector<Done> waiting_;
};

// The API's certificate checks and reload-ssl, with the paths under the prefix. Runs as
// server.user: a key that only root can read is reloaded by a HUP, not by reload-ssl.
class TlsFiles final : public admin::Certificates {
 public:
  TlsFiles(std::string prefix, std::vector<event::CertificateInfo> served)
      : prefix_(std::move(prefix)), served_(std::move(served)) {}

  // A key that only root can read cannot be loaded here: the server's certificates are then
  // left to the master, which loads them as root when the change reaches it (a reload), and a
  // failure there changes nothing either.
  void check(const core::Config& config) override {
    core::Config checked = config;
    for (const event::CertificateFiles& pair : serverTlsOptions(config, prefix_).certificates) {
      for (const std::string& file : {pair.cert_file, pair.key_file}) {
        if (access(file.c_str(), R_OK) != 0 && errno == EACCES) checked.ssl.enabled = false;
      }
    }
    checkTls(checked, prefix_);
  }

  bool checkBackend(const core::BackendConfig& backend, std::string& error) override {
    return checkBackendTls(backend, prefix_, error);
  }

  bool reload(const core::Config& config, std::string& error) override {
    try {
      std::unique_ptr<event::ServerTls> tls =
          event::ServerTls::load(serverTlsOptions(config, prefix_));
      served_ = tls->certificates();
    } catch (const event::TlsError& e) {
      error = describe(e);
      return false;
    }
    for (const std::string& w : expiryWarnings(served_, time(nullptr))) SM_WARN("%s", w.c_str());
    return true;
  }

  const std::vector<event::CertificateInfo>& served() const override { return served_; }

 private:
  std::string prefix_;
  std::vector<event::CertificateInfo> served_;
};

class Control {
 public:
  explicit Control(const ControlSetup& setup) : setup_(setup) {}
  int run();

 private:
  void sync();
  void watchPassiveHealth();
  bool startApi();
  void stop();
  static void onTick(evutil_socket_t, short, void* arg);
  static void onStopPoll(evutil_socket_t, short, void* arg);
  static void onSignal(evutil_socket_t sig, short, void* arg);
  static void onMasterGone(evutil_socket_t, short, void* arg);

  const ControlSetup& setup_;
  event::EventBasePtr base_;
  std::vector<event::EventPtr> signals_;
  event::EventPtr tick_;
  event::EventPtr master_watch_;
  uint64_t generation_ = 0;
  std::map<size_t, std::unique_ptr<HealthChecker>> checkers_;  // slot index -> checker
  upstream::PassiveHealthWatch passive_;
  // The management API (when admin.enabled): declared in this order so that the Api, which
  // holds calls of the server, goes first.
  std::unique_ptr<MasterLink> master_;
  std::unique_ptr<TlsFiles> tls_files_;
  std::unique_ptr<admin::HttpServer> server_;
  std::unique_ptr<admin::Api> api_;
  event::EventPtr stop_poll_;
  int64_t stop_deadline_ms_ = 0;
  bool stopping_ = false;
};

// The API on the admin listener the master bound for this generation.
bool Control::startApi() {
  if (setup_.admin_fd < 0) return true;
  const core::AdminConfig& admin = setup_.config->admin;
  std::string error;
  master_ = std::make_unique<MasterLink>(base_.get(), *setup_.zone, setup_.master_requests);
  if (!master_->init(error)) {
    SM_CRIT("management API: %s", error.c_str());
    return false;
  }
  admin::HttpServer::Options options;
  options.auth_token = admin.auth_token;
  options.allow = admin.allow;
  server_ = std::make_unique<admin::HttpServer>(base_.get(), options);
  admin::ApiSetup api;
  api.base = base_.get();
  api.zone = setup_.zone;
  api.yaml = setup_.yaml_config ? setup_.yaml_config : setup_.config;
  api.state_path = setup_.state_path;
  api.known = {upstream::balancerNames()};
  api.lifecycle = master_.get();
  tls_files_ = std::make_unique<TlsFiles>(setup_.prefix, setup_.certificates);
  api.certificates = tls_files_.get();
  api.generation = setup_.generation;
  api.started_unix_ms = setup_.started_unix_ms;
  api_ = std::make_unique<admin::Api>(api, *server_);
  admin::registerDashboard(*server_);
  if (!api_->init(error)) {
    SM_CRIT("management API: %s", error.c_str());
    return false;
  }
  if (!server_->listen(setup_.admin_fd, error)) {
    SM_CRIT("management API: %s", error.c_str());
    return false;
  }
  SM_INFO("management API listening on %s:%d", admin.host.c_str(), admin.port);
  return true;
}

// TERM, INT, QUIT or the master gone: no new calls, no more checks; the calls in hand (a reload
// or an upgrade this process asked for ends with this) are answered first, within kStopGrace.
void Control::stop() {
  if (stopping_) return;
  stopping_ = true;
  checkers_.clear();
  event_del(tick_.get());
  if (!server_ || server_->pending() == 0) {
    event_base_loopbreak(base_.get());
    return;
  }
  server_->stopListening();
  server_->refuseNewCalls();
  stop_deadline_ms_ = core::monotonicMs() + std::chrono::milliseconds(kStopGrace).count();
  stop_poll_ = event::newTimer(base_.get(), &Control::onStopPoll, this);
  event::addTimer(stop_poll_.get(), kStopPoll);
}

void Control::onStopPoll(evutil_socket_t, short, void* arg) {
  auto* self = static_cast<Control*>(arg);
  if (self->server_->pending() == 0 || core::monotonicMs() >= self->stop_deadline_ms_) {
    if (self->server_->pending() != 0) {
      SM_WARN("stopping with %zu API calls unanswered", self->server_->pending());
    }
    event_base_loopbreak(self->base_.get());
    return;
  }
  event::addTimer(self->stop_poll_.get(), kStopPoll);
}

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
      next.emplace(index, std::make_unique<HealthChecker>(base_.get(), slot, incarnation,
                                                                 setup_.prefix));
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

  if (!startApi()) return 2;
  sync();
  event_base_dispatch(base_.get());
  checkers_.clear();
  api_.reset();
  server_.reset();
  return 0;
}

// The workers' passive checks take backends out and let them back without telling anyone: the
// changes go into the health history (this process is its only writer) and the error log here.
void Control::watchPassiveHealth() {
  Zone& zone = *setup_.zone;
  for (const auto& change : passive_.update(zone, core::monotonicMs(), unixMs())) {
    const ZoneBackendConfig* zc = zone.slot(change.index)->config.load(std::memory_order_acquire);
    if (change.out) {
      SM_WARN("backend %s of %s is down: %s", zc->id, zc->upstream,
              upstream::passiveReason(zc->max_fails, std::chrono::milliseconds(zc->fail_timeout_ms))
                  .c_str());
    } else {
      SM_NOTICE("backend %s of %s is back: passive: fail_timeout over", zc->id, zc->upstream);
    }
  }
}

void Control::onTick(evutil_socket_t, short, void* arg) {
  auto* self = static_cast<Control*>(arg);
  self->sync();
  self->watchPassiveHealth();
  self->setup_.zone->reclaim();
}

void Control::onMasterGone(evutil_socket_t, short, void* arg) {
  auto* self = static_cast<Control*>(arg);
  SM_WARN("the master process is gone; the control process stops");
  event_del(self->master_watch_.get());
  self->stop();
}

void Control::onSignal(evutil_socket_t sig, short, void* arg) {
  auto* self = static_cast<Control*>(arg);
  if (sig == SIGUSR1) {
    std::string error;
    if (!core::reopenErrorLog(error)) SM_ERROR("%s", error.c_str());
    return;
  }
  self->stop();
}

}  // namespace

int runControl(const ControlSetup& setup) {
  Control control(setup);
  return control.run();
}

}  // namespace speedmimi::process
