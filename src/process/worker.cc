#include "process/worker.h"

#include <signal.h>

#include <stdexcept>
#include <vector>

#include "core/log.h"
#include "event/acceptor.h"
#include "event/handles.h"
#include "event/timer.h"
#include "http/error_pages.h"
#include "http/proxy_session.h"
#include "http/router.h"
#include "process/title.h"
#include "process/tls_check.h"
#include "process/zone_ticket_keys.h"
#include "upstream/connection_pool.h"
#include "upstream/upstream_set.h"

namespace speedmimi::process {
namespace {

using core::ServerConfig;
using core::ServerCounters;

constexpr std::chrono::milliseconds kTick{100};  // graceful-stop polling, log flushing
// Draining: how long an idle keep-alive connection may stay open waiting for its next request
// (which is then answered with "Connection: close"), at most server.shutdown_timeout.
constexpr std::chrono::milliseconds kIdleGrace{5000};
// Repeats of one error-log line (one call site) are written at most once per this interval: a
// backend that fails every request would otherwise cost a line per request.
constexpr std::chrono::milliseconds kLogRateLimit{1000};

class Worker {
 public:
  explicit Worker(const WorkerSetup& setup) : setup_(setup) {}
  int run();

 private:
  bool init();
  bool startAcceptor(std::unique_ptr<event::Acceptor>& acceptor, int fd, bool tls);
  // Loads the certificates of ssl.* anew (ssl.enabled), with the zone's ticket keys; false with
  // the error logged and in `error`, ctx_.server_tls unchanged.
  bool loadTls(std::string& error);
  // A POST /api/v1/config/reload-ssl moved the zone's TLS serial: new handshakes get the files
  // as they are now; open connections keep what they started with.
  void followTlsSerial();
  // Draining (reload, QUIT, the master gone): stop accepting at once; exchanges in progress end
  // with "Connection: close"; idle keep-alive connections stay open for their next request
  // until `idle_grace` passes (then they get a FIN); tunnels and event streams run until they
  // end or server.shutdown_timeout passes.
  void stopGracefully(std::chrono::milliseconds idle_grace);
  void onAccept(int fd, sockaddr* addr, bool tls);
  static void onSignal(evutil_socket_t sig, short, void* arg);
  static void onTick(evutil_socket_t, short, void* arg);
  static void onShutdownDeadline(evutil_socket_t, short, void* arg);
  static void onIdleGrace(evutil_socket_t, short, void* arg);
  static void onMasterGone(evutil_socket_t, short, void* arg);
  static void onZoneChanged(evutil_socket_t, short, void* arg);
  // Applies the zone's changes: rebuilds the view if the generation moved (publishing it), ends
  // the tunnels and event streams of disconnected backends, frees backends that left. From the
  // tick and core::kZoneChangedSignal only, outside every session's callbacks.
  void followZone();
  void closeDisconnected();
  void refuse(int fd);

  const WorkerSetup& setup_;
  event::EventBasePtr base_;
  std::unique_ptr<http::Router> router_;
  upstream::DefaultRandom random_;
  std::unique_ptr<upstream::ConnectionPool> pool_;
  std::unique_ptr<upstream::UpstreamSet> upstreams_;  // refers to pool_
  http::AccessLog access_log_;
  // Before ctx_: the TLS contexts keep a pointer to it until their last connection closes.
  ZoneTicketKeys ticket_keys_{*setup_.zone};
  http::ProxyContext ctx_;
  // Each owns this process's copy of its listener: plain HTTP, TLS.
  std::unique_ptr<event::Acceptor> acceptor_;
  std::unique_ptr<event::Acceptor> tls_acceptor_;
  uint64_t tls_serial_ = 0;  // the zone's TLS serial the certificates were loaded at
  std::vector<event::EventPtr> signals_;
  event::EventPtr tick_;
  event::EventPtr deadline_;
  event::EventPtr idle_grace_;
  event::EventPtr master_watch_;
  event::EventPtr zone_changed_;
  bool master_gone_ = false;
  int ticks_ = 0;
};

bool Worker::init() {
  const Config& config = *setup_.config;
  core::setLogRateLimit(kLogRateLimit);
  base_.reset(event_base_new());
  if (!base_) {
    SM_CRIT("event_base_new() failed");
    return false;
  }
  router_ = std::make_unique<http::Router>(config.routes);
  pool_ = std::make_unique<upstream::ConnectionPool>(base_.get(), config.server.idle_timeout);
  ServerCounters& mine = setup_.zone->workers()[setup_.slot];
  try {
    upstreams_ = std::make_unique<upstream::UpstreamSet>(config, *setup_.zone, random_, *pool_,
                                                         static_cast<int>(setup_.slot));
  } catch (const std::exception& e) {
    SM_CRIT("%s", e.what());
    return false;
  }
  std::string error;
  if (!access_log_.open(setup_.access_log_path, config.server.access_log_format, error)) {
    SM_CRIT("%s", error.c_str());
    return false;
  }

  ctx_.base = base_.get();
  ctx_.config = &config;
  ctx_.router = router_.get();
  ctx_.upstreams = upstreams_.get();
  ctx_.pool = pool_.get();
  ctx_.access_log = &access_log_;
  ctx_.prefix = setup_.prefix;
  ctx_.all_counters = setup_.zone->workers();
  ctx_.counters = &mine;
  ctx_.worker_slot_limit = setup_.zone->workerSlotLimitPtr();
  ctx_.request_limits.max_head_size = config.server.max_header_size;
  ctx_.request_limits.max_headers = config.server.max_headers;
  ctx_.response_limits.max_head_size = std::max<uint64_t>(config.server.max_header_size, 64 * 1024);
  ctx_.response_limits.max_headers = std::max<uint64_t>(config.server.max_headers, 100);
  ctx_.header_storage.resize(
      std::max(ctx_.request_limits.max_headers, ctx_.response_limits.max_headers) + 1);

  // The master's contexts: a worker never reads certificate files at its start, so one that is
  // respawned serves what its generation validated, whatever the files hold by then.
  ctx_.server_tls = setup_.server_tls;
  tls_serial_ = setup_.tls_serial;
  if (setup_.tls_listen_fd >= 0 && !ctx_.server_tls) {
    SM_CRIT("a TLS listener without certificates");
    return false;
  }
  mine.seen_tls_serial.store(tls_serial_, std::memory_order_release);
  if (!startAcceptor(acceptor_, setup_.listen_fd, false) ||
      !startAcceptor(tls_acceptor_, setup_.tls_listen_fd, true)) {
    return false;
  }

  for (int sig : {SIGTERM, SIGINT, SIGQUIT, SIGUSR1}) {
    event::EventPtr ev(evsignal_new(base_.get(), sig, &Worker::onSignal, this));
    if (!ev || evsignal_add(ev.get(), nullptr) != 0) {
      SM_CRIT("cannot watch signal %d", sig);
      return false;
    }
    signals_.push_back(std::move(ev));
  }
  tick_.reset(event_new(base_.get(), -1, EV_PERSIST, &Worker::onTick, this));
  if (!tick_) {
    SM_CRIT("cannot create the worker's tick");
    return false;
  }
  event::addTimer(tick_.get(), kTick);
  // SIGURG's default action is to ignore it: until this is set up, a wake-up is lost, not fatal,
  // and the refresh below and the tick catch up.
  zone_changed_.reset(evsignal_new(base_.get(), core::kZoneChangedSignal, &Worker::onZoneChanged,
                                   this));
  if (!zone_changed_ || evsignal_add(zone_changed_.get(), nullptr) != 0) {
    SM_CRIT("cannot watch signal %d for zone changes", core::kZoneChangedSignal);
    return false;
  }
  upstreams_->refresh();
  upstreams_->prepareTls(setup_.prefix);
  master_watch_.reset(
      event_new(base_.get(), setup_.master_pipe, EV_READ, &Worker::onMasterGone, this));
  if (!master_watch_ || event_add(master_watch_.get(), nullptr) != 0) {
    SM_CRIT("cannot watch the master process");
    return false;
  }
  if (setup_.drop_privileges && !setup_.drop_privileges()) return false;
  mine.ready.store(1, std::memory_order_release);
  return true;
}

bool Worker::startAcceptor(std::unique_ptr<event::Acceptor>& acceptor, int fd, bool tls) {
  if (fd < 0) return true;
  acceptor = std::make_unique<event::Acceptor>(
      base_.get(), event::Fd(fd),
      [this, tls](int client, sockaddr* addr, socklen_t) { onAccept(client, addr, tls); },
      event::Acceptor::Options{});
  std::string error;
  if (!acceptor->start(error)) {
    SM_CRIT("%s", error.c_str());
    return false;
  }
  return true;
}

bool Worker::loadTls(std::string& error) {
  event::ServerTlsOptions options = serverTlsOptions(*setup_.config, setup_.prefix);
  options.tickets = &ticket_keys_;
  try {
    ctx_.server_tls = event::ServerTls::load(options);
    return true;
  } catch (const event::TlsError& e) {
    error = describe(e);
    SM_ERROR("cannot load the certificates: %s", error.c_str());
    return false;
  }
}

void Worker::followTlsSerial() {
  const uint64_t serial = setup_.zone->tlsSerial();
  if (serial == tls_serial_) return;
  tls_serial_ = serial;
  std::string error;
  if (ctx_.server_tls) {
    if (loadTls(error)) {
      SM_INFO("certificates reloaded");
    } else {
      SM_ERROR("the certificates loaded before stay in use");
      // The control process loaded the same files before it moved the serial, so this is the
      // worker's own failure: the API that waits for it answers with it.
      setup_.zone->setTlsFailure(setup_.slot, serial, error);
    }
  }
  setup_.zone->workers()[setup_.slot].seen_tls_serial.store(serial, std::memory_order_release);
}

int Worker::run() {
  if (!init()) return 2;
  // The master blocks these signals; libevent delivers them here from now on.
  sigset_t set;
  sigemptyset(&set);
  for (int sig : {SIGTERM, SIGINT, SIGQUIT, SIGUSR1}) sigaddset(&set, sig);
  sigprocmask(SIG_UNBLOCK, &set, nullptr);

  SM_DEBUG("worker started");
  event_base_dispatch(base_.get());

  // Fast stop, or the graceful deadline passed: end what is left.
  std::vector<http::ProxySession*> left(ctx_.sessions.begin(), ctx_.sessions.end());
  for (http::ProxySession* s : left) {
    s->abort();
    delete s;
  }
  pool_->clear();
  access_log_.flush();
  // Nobody will reap us: give our counter slot back ourselves, or reclaim would wait for it
  // forever.
  if (master_gone_) setup_.zone->releaseWorkerSlot(setup_.slot);
  return 0;
}

void Worker::onAccept(int fd, sockaddr* addr, bool tls) {
  const ServerConfig& server = setup_.config->server;
  if (server.max_conn > 0 &&
      ctx_.totalActiveConnections() >= static_cast<int64_t>(server.max_conn)) {
    return refuse(fd);
  }
  auto* session = new http::ProxySession(ctx_, fd, addr, tls);  // deletes itself
  session->start();
}

// server.max_conn reached: a best-effort 503 without reading the request, then close.
void Worker::refuse(int fd) {
  event::Fd owned(fd);
  event::EvbufferPtr buf(evbuffer_new());
  http::appendErrorResponse(503, false, false, buf.get());
  evbuffer_write(buf.get(), fd);
  SM_WARN("server.max_conn (%llu) reached; refusing a connection",
          static_cast<unsigned long long>(setup_.config->server.max_conn));
}

void Worker::onSignal(evutil_socket_t sig, short, void* arg) {
  auto* self = static_cast<Worker*>(arg);
  if (sig == SIGQUIT) {
    return self->stopGracefully(std::min<std::chrono::milliseconds>(
        kIdleGrace, self->setup_.config->server.shutdown_timeout));
  }
  if (sig == SIGUSR1) {
    std::string error;
    if (!core::reopenErrorLog(error)) SM_ERROR("%s", error.c_str());
    self->access_log_.flush();
    if (!self->access_log_.open(self->setup_.access_log_path,
                                self->setup_.config->server.access_log_format, error)) {
      SM_ERROR("%s", error.c_str());
    }
    return;
  }
  event_base_loopbreak(self->base_.get());
}

void Worker::stopGracefully(std::chrono::milliseconds idle_grace) {
  if (ctx_.draining) return;
  ctx_.draining = true;
  setTitle("speedmimi: worker process (retiring)");
  setup_.zone->workers()[setup_.slot].ready.store(0, std::memory_order_release);
  // Our copy of the listening socket goes too: the master and the new workers keep theirs, so
  // no connection is refused, and a worker left behind by a dead master holds no port.
  acceptor_.reset();
  tls_acceptor_.reset();
  pool_->clear();
  deadline_ = event::newTimer(base_.get(), &Worker::onShutdownDeadline, this);
  event::addTimer(deadline_.get(), setup_.config->server.shutdown_timeout);
  idle_grace_ = event::newTimer(base_.get(), &Worker::onIdleGrace, this);
  event::addTimer(idle_grace_.get(), idle_grace);
  if (ctx_.sessions.empty()) event_base_loopbreak(base_.get());
}

void Worker::onIdleGrace(evutil_socket_t, short, void* arg) {
  auto* self = static_cast<Worker*>(arg);
  self->ctx_.idle_grace_over = true;
  std::vector<http::ProxySession*> sessions(self->ctx_.sessions.begin(), self->ctx_.sessions.end());
  for (http::ProxySession* s : sessions) s->closeIfIdle();  // may delete s
}

// The master is gone (its end of the pipe closed): nobody will tell us to stop, and nobody
// would respawn us. Finish what is in flight; idle connections close at once.
void Worker::onMasterGone(evutil_socket_t, short, void* arg) {
  auto* self = static_cast<Worker*>(arg);
  SM_WARN("the master process is gone; stopping");
  self->master_gone_ = true;
  self->stopGracefully(std::chrono::milliseconds(0));
}

void Worker::onTick(evutil_socket_t, short, void* arg) {
  auto* self = static_cast<Worker*>(arg);
  if (self->ctx_.draining && self->ctx_.sessions.empty()) {
    event_base_loopbreak(self->base_.get());
    return;
  }
  // Idle workers follow the zone too, so removed backends can be reclaimed and the control
  // process sees every change applied, even when nobody wakes us (kZoneChangedSignal).
  self->followZone();
  if (++self->ticks_ % 10 == 0) self->access_log_.flush();  // once a second
}

// The control process published a change and wants it applied now, not at the next tick.
void Worker::onZoneChanged(evutil_socket_t, short, void* arg) {
  static_cast<Worker*>(arg)->followZone();
}

// Retired backends are freed here only, outside every session's callbacks: a session may still
// read the backend it has just released (its access-log line, a retry that finds no other
// backend). Disconnects are taken before, while their backends are sure to be allocated.
void Worker::followZone() {
  followTlsSerial();
  upstreams_->refresh();
  upstreams_->prepareTls(setup_.prefix);
  closeDisconnected();
  upstreams_->collectRetired();
}

// The rebuild closed the disconnected backends' idle connections; their tunnels and event
// streams end here, over a copy of the session list (ending one deletes it).
void Worker::closeDisconnected() {
  std::vector<upstream::Backend*> gone = upstreams_->takeDisconnected();
  if (gone.empty()) return;
  std::vector<http::ProxySession*> sessions(ctx_.sessions.begin(), ctx_.sessions.end());
  size_t ended = 0;
  for (http::ProxySession* s : sessions) ended += s->onBackendsDisconnected(gone);  // may delete s
  SM_INFO("%zu backends disconnected; %zu tunnels and event streams to them ended", gone.size(),
          ended);
}

void Worker::onShutdownDeadline(evutil_socket_t, short, void* arg) {
  auto* self = static_cast<Worker*>(arg);
  SM_NOTICE("shutdown_timeout passed; closing %zu connections", self->ctx_.sessions.size());
  event_base_loopbreak(self->base_.get());
}

}  // namespace

int runWorker(const WorkerSetup& setup) {
  Worker worker(setup);
  return worker.run();
}

}  // namespace speedmimi::process
