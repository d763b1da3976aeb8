// The master process (DESIGN §2). It owns one configuration per generation (nginx's "cycle"),
// the listening sockets and the shared zone; it forks each generation's workers and control
// process, supervises them, and turns signals into actions:
//
// - HUP: reload. The new configuration is read and validated completely, its listeners bound and
//   its backends resolved, before anything changes; then the zone is brought in line (kept
//   backends keep their runtime state), a new generation of workers is forked, and once all of
//   them accept, the old workers drain and the old control process makes way for the new one.
// - USR2: binary upgrade. The binary on disk is executed with the listening sockets and the
//   zone's memfd inherited; once its workers accept, it tells us, and we drain and exit. If it
//   fails or is not up within kUpgradeTimeout, we keep serving.
// - QUIT: graceful stop; TERM, INT: fast stop; USR1: reopen the logs.
//
// The master sleeps in sigtimedwait() with every signal it handles blocked, and does no
// request I/O.
#include "process/master.h"

#include <fcntl.h>
#include <grp.h>
#include <pwd.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <map>
#include <memory>
#include <optional>
#include <utility>
#include <vector>

#include "core/config.h"
#include "core/log.h"
#include "core/state_file.h"
#include "core/zone.h"
#include "process/children.h"
#include "process/control.h"
#include "process/listeners.h"
#include "process/notify.h"
#include "process/pid_file.h"
#include "process/title.h"
#include "process/tls_check.h"
#include "process/worker.h"
#include "process/zone_ticket_keys.h"
#include "upstream/backend_table.h"
#include "upstream/balancer.h"

namespace speedmimi::process {
namespace {

using core::ServerConfig;
using core::Zone;
using std::chrono::milliseconds;

constexpr std::chrono::seconds kFastStopGrace{5};        // TERM: then SIGKILL
constexpr std::chrono::seconds kReadyTimeout{10};        // a new generation's workers
constexpr std::chrono::seconds kUpgradeTimeout{10};      // a new binary's workers
constexpr std::chrono::seconds kControlStopGrace{2};     // the old control process, then SIGKILL
// How long a reload's answer waits for the retired workers to stop accepting (a stopped or
// hung one must not hold the reload up).
constexpr std::chrono::seconds kHandoverTimeout{1};
// The main loop's wait while a handover is open, instead of the 100 ms tick: the retired
// workers stop accepting within a millisecond or two, and nothing signals the master when they do.
constexpr long kHandoverPollNs = 2'000'000;
constexpr const char* kZoneEnvironment = "SPEEDMIMI_ZONE";          // "FD:ADDRESS"
constexpr const char* kUpgradeEnvironment = "SPEEDMIMI_UPGRADE_FROM";  // the old master's pid

// The signals the master handles (blocked, taken with sigtimedwait). Children handle their own
// through libevent; between fork and their event loop they keep these blocked.
sigset_t masterSignals() {
  sigset_t set;
  sigemptyset(&set);
  for (int sig : {SIGCHLD, SIGTERM, SIGINT, SIGQUIT, SIGUSR1, SIGHUP, SIGUSR2}) {
    sigaddset(&set, sig);
  }
  sigaddset(&set, replySignal());
  sigaddset(&set, requestSignal());
  return set;
}

void makeParentDirs(const std::string& path) {
  for (size_t pos = path.find('/', 1); pos != std::string::npos; pos = path.find('/', pos + 1)) {
    mkdir(path.substr(0, pos).c_str(), 0755);  // EEXIST is fine; open() reports real errors
  }
}

std::string describeExit(int status) {
  if (WIFSIGNALED(status)) {
    return "exited on signal " + std::to_string(WTERMSIG(status)) + " (" +
           strsignal(WTERMSIG(status)) + ")";
  }
  return "exited with code " + std::to_string(WEXITSTATUS(status));
}

const char* roleName(Role role) { return role == Role::kControl ? "control" : "worker"; }

// The binary to execute on USR2: argv[0] made absolute (or found in PATH), so that a binary
// replaced on disk is the one started.
std::string binaryPath(const std::string& argv0) {
  if (argv0.find('/') != std::string::npos) {
    if (argv0[0] == '/') return argv0;
    char cwd[4096];
    return getcwd(cwd, sizeof(cwd)) ? std::string(cwd) + "/" + argv0 : argv0;
  }
  const char* path = getenv("PATH");
  std::string dirs = path ? path : "/usr/local/bin:/usr/bin:/bin";
  size_t start = 0;
  while (start <= dirs.size()) {
    size_t end = dirs.find(':', start);
    if (end == std::string::npos) end = dirs.size();
    std::string candidate = dirs.substr(start, end - start) + "/" + argv0;
    if (access(candidate.c_str(), X_OK) == 0) return candidate;
    start = end + 1;
  }
  return argv0;
}

// server.user: who the children become. Resolved once by the master.
struct Identity {
  bool drop = false;
  std::string name;
  uid_t uid = 0;
  gid_t gid = 0;
};

bool lookUpUser(const std::string& name, Identity& out, std::string& error) {
  out = Identity{};
  if (name.empty()) return true;
  if (geteuid() != 0) {
    SM_WARN("server.user \"%s\" has no effect: the master does not run as root", name.c_str());
    return true;
  }
  passwd* pw = getpwnam(name.c_str());
  if (!pw) {
    error = "server.user: no such user \"" + name + "\"";
    return false;
  }
  out.drop = true;
  out.name = name;
  out.uid = pw->pw_uid;
  out.gid = pw->pw_gid;
  return true;
}

// In a child: the user and its groups (the master keeps root to bind on reload).
bool dropPrivileges(const Identity& id) {
  if (!id.drop) return true;
  if (initgroups(id.name.c_str(), id.gid) != 0 || setgid(id.gid) != 0 || setuid(id.uid) != 0) {
    SM_CRIT("cannot become user \"%s\": %s", id.name.c_str(), std::strerror(errno));
    return false;
  }
  return true;
}

// A log file the children write or reopen: created by the master, owned by server.user.
void prepareLogFile(const std::string& path, const Identity& id) {
  if (path == "stderr" || path == "off" || path.empty()) return;
  int fd = open(path.c_str(), O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0644);
  if (fd < 0) return;  // the one who opens it for real reports why
  if (id.drop && fchown(fd, id.uid, id.gid) != 0) {
    SM_WARN("cannot give %s to user \"%s\": %s", path.c_str(), id.name.c_str(),
            std::strerror(errno));
  }
  close(fd);
}

// The configuration a generation serves: `yaml` with server.state_file (under the prefix)
// replayed on top, DESIGN §9. Throws ConfigError; the updates it had to skip go to `notes`.
core::Config effectiveConfig(const core::Config& yaml, const std::string& prefix,
                             std::vector<std::string>& notes) {
  return core::applyStateFile(yaml, resolvePath(prefix, yaml.server.state_file),
                              {upstream::balancerNames()}, &notes);
}

// The control process replaces the state file as server.user (a temporary file in its
// directory, then a rename): a directory under the prefix is given to that user, one elsewhere
// is the operator's to set up, and a warning says so.
void prepareStateDirectory(const std::string& state_file, const std::string& prefix,
                           const Identity& id) {
  if (!id.drop) return;
  size_t slash = state_file.rfind('/');
  std::string dir = slash == std::string::npos ? "." : state_file.substr(0, slash);
  bool under_prefix = !prefix.empty() && dir.rfind(prefix, 0) == 0 &&
                      (dir.size() == prefix.size() || dir[prefix.size()] == '/');
  if (under_prefix && chown(dir.c_str(), id.uid, id.gid) == 0) return;
  SM_WARN("the state file's directory %s must be writable by user \"%s\", who runs the "
          "management API%s%s", dir.c_str(), id.name.c_str(), under_prefix ? ": " : "",
          under_prefix ? std::strerror(errno) : "");
}

int64_t unixNow() { return static_cast<int64_t>(time(nullptr)); }

// Every certificate and CA bundle `config` names, loaded as root before anything changes.
// Throws ConfigError.
std::vector<event::CertificateInfo> checkCertificates(const core::Config& config,
                                                      const std::string& prefix) {
  std::unique_ptr<event::ServerTls> tls = checkTls(config, prefix);
  return tls ? tls->certificates() : std::vector<event::CertificateInfo>{};
}

void warnExpiring(const std::vector<event::CertificateInfo>& certificates) {
  for (const std::string& w : expiryWarnings(certificates, unixNow())) SM_WARN("%s", w.c_str());
}

// One configuration and the sockets it listens on; lives while a process of it runs.
struct Generation {
  uint64_t number = 0;
  core::Config yaml;    // the YAML as loaded, before the state file
  core::Config config;  // effective: the YAML with the state file replayed; the zone follows it
  // The certificates it serves, as the master loaded them (for the API's statistics).
  std::vector<event::CertificateInfo> certificates;
  // Its TLS contexts (ssl.enabled), loaded by the master as root with the zone's ticket keys and
  // inherited by its workers, and the zone's TLS serial they were loaded at (see followTls).
  std::shared_ptr<const event::ServerTls> server_tls;
  uint64_t tls_serial = 0;

  void setTls(std::shared_ptr<const event::ServerTls> tls, uint64_t serial) {
    certificates = tls ? tls->certificates() : std::vector<event::CertificateInfo>{};
    server_tls = std::move(tls);
    tls_serial = serial;
  }
  // [0]: server.host:port; then the TLS listener of ssl.port and the management API's, when
  // there are.
  std::vector<ListenerRef> listeners;
  ListenerRef tls;    // ssl.port beside server.port; listeners[0] itself when ssl.port is 0
  ListenerRef admin;
  size_t workers = 0;
  Clock::time_point started{};
  std::vector<pid_t> waiters;  // `-s reload` processes waiting for it to serve
};

class Master {
 public:
  Master(core::Config config, const Options& options, std::vector<std::string> args)
      : first_config_(std::move(config)), options_(options), args_(std::move(args)) {}
  int run();

 private:
  bool setUp();
  bool openZone(std::string& error);
  std::unique_ptr<Generation> prepare(core::Config config, std::string& error);
  void start(std::unique_ptr<Generation> generation);
  void spawn(Child& child);
  [[noreturn]] void runChild(const Child& child, const Generation& generation, int slot);
  void reap();
  void respawnDue();
  void checkProgress();
  void promote(Generation& generation);
  // The handover ends (the reload is done and answered) once no retired worker accepts.
  void checkHandover();
  void endHandover();
  void reload(pid_t waiter);
  void keepRestartOnlyKeys(core::Config& next) const;
  void upgrade(pid_t waiter);
  [[noreturn]] void execNewBinary();
  void upgradeFailed(const std::string& why);
  void upgradeDone();
  void signalAll(const std::vector<Child*>& children, int sig);
  void reopenLogs();
  // The TLS contexts of `config` (nullptr without ssl.enabled) with the zone's ticket keys.
  // Throws core::ConfigError.
  std::shared_ptr<const event::ServerTls> loadTls(const core::Config& config) const {
    return checkTls(config, options_.prefix, 0, ticket_keys_.get());
  }
  // After a reload-ssl (the zone's TLS serial moved): the serving generation's contexts are
  // loaded anew, so a worker respawned from then on serves the certificates the others switched
  // to. A failure keeps the old ones (the control process loaded the same files just before).
  void followTls();
  void collectGenerations();
  bool waitForChildren(Clock::time_point deadline);
  void stop(int sig);

  // The generation serving; before the first one serves, the one starting (a HUP or TERM may
  // come that early).
  const Generation& current() const {
    return *generations_.at(current_ != 0 ? current_ : pending_);
  }

  core::Config first_config_;
  const Options& options_;
  std::vector<std::string> args_;
  std::string binary_;
  std::string pid_path_;
  Identity identity_;
  std::unique_ptr<Zone> zone_;
  std::unique_ptr<ZoneTicketKeys> ticket_keys_;  // over zone_, for the TLS contexts
  ListenerSet listeners_;
  event::Fd pipe_read_;   // children watch it: EOF means the master is gone
  event::Fd pipe_write_;  // never written; closed only by our death
  // The control process's reloads and upgrades (it may not signal us: see writeRequest). It
  // holds the write end; workers hold neither.
  event::Fd requests_read_;
  event::Fd requests_write_;
  ChildTable children_;
  std::map<uint64_t, std::unique_ptr<Generation>> generations_;
  uint64_t next_generation_ = 1;
  uint64_t current_ = 0;  // the generation serving (0: none yet)
  uint64_t pending_ = 0;  // started, its workers not all accepting yet
  bool stopping_ = false;

  pid_t upgrade_pid_ = 0;  // the new binary, while an upgrade is in progress
  Clock::time_point upgrade_deadline_{};
  std::vector<pid_t> upgrade_waiters_;
  std::string upgrade_abandoned_;  // why the new binary was told to stop, until it is reaped
  bool upgraded_ = false;   // the new binary serves: we drain and exit
  Clock::time_point control_stop_deadline_{};  // a retiring control process is killed then
  // From a promotion until every retired worker has stopped accepting (its slot is no longer
  // ready, or it exited): only then is the reload done, logged and answered, and the retired
  // control process stopped, so that a connection made after the answer never reaches the old
  // configuration (an old worker woken for it before it saw its SIGQUIT would serve it).
  struct Handover {
    std::vector<pid_t> workers;   // retired, maybe still accepting
    std::vector<pid_t> controls;  // retired, stopped when the handover ends
    std::vector<uint64_t> done;   // generations to log "reload done" for
    std::vector<std::pair<pid_t, uint64_t>> waiters;  // `-s reload` and API callers, answered then
    Clock::time_point deadline{};
  };
  std::optional<Handover> handover_;
  pid_t upgrade_from_ = 0;  // we are the new binary: the old master to tell once we serve
  int64_t started_unix_ms_ = 0;  // for the API's uptime
};

bool Master::setUp() {
  timespec now;
  clock_gettime(CLOCK_REALTIME, &now);
  started_unix_ms_ = static_cast<int64_t>(now.tv_sec) * 1000 + now.tv_nsec / 1'000'000;
  const ServerConfig& server = first_config_.server;
  const std::string& prefix = options_.prefix;
  // main() loaded the YAML; the first generation serves it with the state file replayed. An
  // error there stops the start as one in the YAML does: on stderr, before anything is opened.
  core::Config yaml = first_config_;
  std::vector<std::string> notes;
  std::vector<event::CertificateInfo> certificates;
  try {
    first_config_ = effectiveConfig(yaml, prefix, notes);
    certificates = checkCertificates(first_config_, prefix);
  } catch (const core::ConfigError& e) {
    fprintf(stderr, "speedmimi: %s\n", e.what());
    return false;
  }
  std::string error_log = resolvePath(prefix, server.error_log);
  pid_path_ = resolvePath(prefix, server.pid_file);
  std::string access_log = resolvePath(prefix, server.access_log);
  std::string state_file = resolvePath(prefix, server.state_file);  // the control process writes it
  for (const std::string& p : {error_log, pid_path_, access_log, state_file}) {
    if (p != "stderr" && p != "off") makeParentDirs(p);
  }
  std::string error;
  if (!core::openErrorLog(error_log, server.log_level, error)) {
    fprintf(stderr, "speedmimi: %s\n", error.c_str());
    return false;
  }
  for (const std::string& note : notes) SM_WARN("%s", note.c_str());
  warnExpiring(certificates);
  auto fail = [&](const std::string& why) {
    SM_ALERT("%s", why.c_str());
    fprintf(stderr, "speedmimi: %s\n", why.c_str());
    return false;
  };
  if (!lookUpUser(server.user, identity_, error)) return fail(error);
  prepareLogFile(error_log, identity_);
  prepareLogFile(access_log, identity_);
  prepareStateDirectory(state_file, prefix, identity_);
  binary_ = binaryPath(args_.empty() ? "speedmimi" : args_[0]);
  if (const char* from = getenv(kUpgradeEnvironment)) upgrade_from_ = atoi(from);
  if (const char* inherited = getenv(ListenerSet::kEnvironmentName)) {
    listeners_.inherit(inherited, error);
    if (!error.empty()) SM_ERROR("%s", error.c_str());
    error.clear();
  }
  if (!openZone(error)) return fail(error);

  int fds[2];
  if (pipe2(fds, O_CLOEXEC) != 0) return fail(std::string("pipe() failed: ") + strerror(errno));
  pipe_read_.reset(fds[0]);
  pipe_write_.reset(fds[1]);
  if (pipe2(fds, O_CLOEXEC | O_NONBLOCK) != 0) {
    return fail(std::string("pipe() failed: ") + strerror(errno));
  }
  requests_read_.reset(fds[0]);
  requests_write_.reset(fds[1]);

  std::unique_ptr<Generation> first = prepare(std::move(first_config_), error);
  if (!first) return fail(error);
  first->yaml = std::move(yaml);
  try {
    // Loaded again, now with the zone's ticket keys (checked above before anything opened).
    first->setTls(loadTls(first->config), zone_->tlsSerial());
  } catch (const core::ConfigError& e) {
    return fail(e.what());
  }
  listeners_.closeUnclaimed();
  // -d: detach once every start error has reached the terminal, before the first fork, so the
  // children are ours and do not hold the terminal. A new binary of an upgrade stays in the
  // foreground: its parent, the old master, watches it.
  if (options_.daemonize && !upgrade_from_ && daemon(1, 0) != 0) {
    return fail(std::string("daemon() failed: ") + std::strerror(errno));
  }
  if (!writePidFile(pid_path_, getpid(), error)) SM_ERROR("%s", error.c_str());
  start(std::move(first));
  return true;
}

// The zone inherited from the old binary of an upgrade (runtime state survives), or a new one.
// Either way every configured backend is in it afterwards, matched by (upstream, id). The
// backends of a new zone start with the server (no slow start); those that a new binary adds
// to an inherited zone come back, as a reload's do.
bool Master::openZone(std::string& error) {
  const ServerConfig& server = first_config_.server;
  if (const char* inherited = getenv(kZoneEnvironment)) {
    int fd = -1;
    unsigned long long address = 0;
    if (sscanf(inherited, "%d:%llx", &fd, &address) == 2) {
      zone_ = Zone::inherit(fd, static_cast<uintptr_t>(address), error);
      if (!zone_) SM_WARN("%s; starting with a clean zone", error.c_str());
      error.clear();
    }
  }
  Zone::Arrival arrival = Zone::Arrival::kComeback;
  if (!zone_) {
    size_t backends = 0;
    for (const auto& [name, list] : first_config_.backends) backends += list.size();
    zone_ = Zone::create(server.shm_size, backends, error);
    if (!zone_) return false;
    arrival = Zone::Arrival::kAtStart;
  }
  if (!upstream::syncBackends(*zone_, first_config_, error, nullptr, arrival)) return false;
  rotateTicketKeys(*zone_, unixNow());  // the first key, unless the zone was inherited with one
  ticket_keys_ = std::make_unique<ZoneTicketKeys>(*zone_);
  return true;
}

// Everything a generation needs that can fail, done before anything changes: its listening
// sockets (kept, inherited or bound).
std::unique_ptr<Generation> Master::prepare(core::Config config, std::string& error) {
  auto g = std::make_unique<Generation>();
  g->config = std::move(config);
  const core::ServerConfig& server = g->config.server;
  const core::SslConfig& ssl = g->config.ssl;
  ListenerRef listener = listeners_.acquire(server.host, server.port, error);
  if (!listener) return nullptr;
  g->listeners.push_back(std::move(listener));
  if (ssl.enabled && ssl.port == 0) g->tls = g->listeners[0];
  if (ssl.enabled && ssl.port != 0) {
    g->tls = listeners_.acquire(server.host, ssl.port, error);
    if (!g->tls) return nullptr;
    g->listeners.push_back(g->tls);
  }
  const core::AdminConfig& admin = g->config.admin;
  if (admin.enabled) {
    const std::string address = listenerAddress(admin.host, admin.port);
    for (const ListenerRef& l : g->listeners) {
      if (address != l->address) continue;
      error = "the management API cannot listen on " + address + ", the address of " +
              (l == g->tls && ssl.port != 0 ? "server.host and ssl.port"
                                            : "server.host and server.port");
      return nullptr;
    }
    g->admin = listeners_.acquire(admin.host, admin.port, error);
    if (!g->admin) return nullptr;
    g->listeners.push_back(g->admin);
  }
  g->workers = std::min<size_t>(core::effectiveWorkers(g->config.server), core::kMaxWorkers);
  return g;
}

// Forks a generation's workers; its control process follows once no other one runs.
void Master::start(std::unique_ptr<Generation> generation) {
  Generation& g = *generation;
  g.number = next_generation_++;
  g.started = Clock::now();
  generations_[g.number] = std::move(generation);
  if (pending_ != 0) {
    // A reload while the previous one is still starting: this one supersedes it.
    Generation& superseded = *generations_.at(pending_);
    g.waiters.insert(g.waiters.end(), superseded.waiters.begin(), superseded.waiters.end());
    superseded.waiters.clear();
    signalAll(children_.retire(pending_, true), SIGQUIT);
  }
  pending_ = g.number;
  auto now = Clock::now();
  for (size_t i = 0; i < g.workers; ++i) children_.add(Role::kWorker, g.number, now);
  children_.add(Role::kControl, g.number, now);
  respawnDue();
}

void Master::spawn(Child& child) {
  Generation& g = *generations_.at(child.generation);
  int slot = -1;
  if (child.role == Role::kWorker) {
    slot = zone_->claimWorkerSlot(getpid());
    if (slot < 0) {
      // Either all slots are taken (three generations of server.workers at most) or a slot's
      // first claim found no room for its row of per-backend counters.
      SM_ALERT("cannot claim a worker slot in the shared zone: all %zu are taken, or "
               "server.shm_size has no room for its per-backend counters",
               core::kWorkerSlots);
      child.respawn_at = Clock::now() + std::chrono::seconds(1);
      return;
    }
  }
  pid_t pid = fork();
  if (pid < 0) {
    SM_ALERT("fork() failed: %s", std::strerror(errno));
    if (slot >= 0) zone_->releaseWorkerSlot(static_cast<size_t>(slot));
    child.respawn_at = Clock::now() + std::chrono::seconds(1);
    return;
  }
  if (pid == 0) runChild(child, g, slot);
  if (slot >= 0) zone_->workers()[slot].pid.store(pid, std::memory_order_release);
  child.pid = pid;
  child.slot = slot;
  child.started = Clock::now();
  SM_NOTICE("started %s process %d (generation %llu)", roleName(child.role),
            static_cast<int>(pid), static_cast<unsigned long long>(child.generation));
}

// In the forked child: keep only what this child's role and generation need, become
// server.user, and run. The signals the role handles stay blocked until its event loop
// watches them; the rest are unblocked.
void Master::runChild(const Child& child, const Generation& g, int slot) {
  pipe_write_.reset();
  requests_read_.reset();
  if (child.role != Role::kControl) requests_write_.reset();
  // A worker serves server.port (plain HTTP or TLS) and ssl.port; the control process the API.
  int listen_fd = -1, tls_listen_fd = -1;
  for (const ListenerRef& l : listeners_.open()) {
    const bool worker = child.role == Role::kWorker;
    if (worker && l == g.tls) {
      tls_listen_fd = l->fd.release();
    } else if (worker ? l == g.listeners[0] : l == g.admin) {
      listen_fd = l->fd.release();
    } else {
      ::close(l->fd.release());
    }
  }
  for (int sig : {SIGHUP, SIGUSR2, requestSignal(), replySignal()}) ::signal(sig, SIG_IGN);
  sigset_t keep;
  sigemptyset(&keep);
  for (int sig : {SIGTERM, SIGINT, SIGQUIT, SIGUSR1}) sigaddset(&keep, sig);
  sigprocmask(SIG_SETMASK, &keep, nullptr);
  if (child.role == Role::kControl) {
    if (!dropPrivileges(identity_)) _exit(2);
    setTitle("speedmimi: control process");
    ControlSetup setup;
    setup.config = &g.config;
    setup.yaml_config = &g.yaml;
    setup.state_path = resolvePath(options_.prefix, g.yaml.server.state_file);
    setup.zone = zone_.get();
    setup.master_pipe = pipe_read_.get();
    setup.master_requests = requests_write_.get();
    setup.admin_fd = listen_fd;
    setup.generation = g.number;
    setup.started_unix_ms = started_unix_ms_;
    setup.prefix = options_.prefix;
    setup.certificates = g.certificates;
    _exit(runControl(setup));
  }
  setTitle("speedmimi: worker process");
  WorkerSetup setup;
  setup.config = &g.config;
  setup.listen_fd = listen_fd;
  setup.tls_listen_fd = tls_listen_fd;
  setup.prefix = options_.prefix;
  setup.server_tls = g.server_tls;
  setup.tls_serial = g.tls_serial;
  setup.zone = zone_.get();
  setup.slot = static_cast<size_t>(slot);
  setup.access_log_path = resolvePath(options_.prefix, g.config.server.access_log);
  setup.master_pipe = pipe_read_.get();
  setup.drop_privileges = [this] { return dropPrivileges(identity_); };
  _exit(runWorker(setup));
}

// Collects exited children: a retiring one is gone for good, an unexpected death is respawned.
void Master::reap() {
  int status;
  pid_t pid;
  while ((pid = waitpid(-1, &status, WNOHANG)) > 0) {
    if (pid == upgrade_pid_) {
      upgradeFailed(upgrade_abandoned_.empty() ? "the new binary " + describeExit(status)
                                               : upgrade_abandoned_);
      continue;
    }
    Child* c = children_.byPid(pid);
    if (!c) continue;
    if (c->slot >= 0) zone_->releaseWorkerSlot(static_cast<size_t>(c->slot));
    Role role = c->role;
    uint64_t generation = c->generation;
    bool expected = c->retiring || stopping_;
    bool respawn = children_.exited(*c, Clock::now(), stopping_);
    if (expected) {
      SM_NOTICE("%s process %d (generation %llu) %s", roleName(role), static_cast<int>(pid),
                static_cast<unsigned long long>(generation), describeExit(status).c_str());
    } else {
      SM_ERROR("%s process %d %s; respawning%s", roleName(role), static_cast<int>(pid),
               describeExit(status).c_str(), respawn && c->backoff.count() ? " after a backoff" : "");
    }
  }
}

void Master::respawnDue() {
  if (stopping_) return;
  for (Child* c : children_.due(Clock::now())) {
    // One control process at a time writes health results: the next one waits for the last
    // to exit, and none runs while a new binary takes over.
    if (c->role == Role::kControl && (children_.running(Role::kControl) > 0 || upgrade_pid_)) {
      continue;
    }
    spawn(*c);
  }
}

// A starting generation serves once all its workers accept; the upgrade has a deadline.
void Master::checkProgress() {
  auto now = Clock::now();
  if (pending_ != 0) {
    Generation& g = *generations_.at(pending_);
    size_t ready = 0;
    for (Child* c : children_.all()) {
      if (c->generation != g.number || c->role != Role::kWorker || c->pid == 0) continue;
      ready += zone_->workers()[c->slot].ready.load(std::memory_order_acquire) != 0;
    }
    if (ready == g.workers) {
      promote(g);
    } else if (now - g.started > kReadyTimeout && current_ != 0) {
      SM_ERROR("reload failed: %zu of %zu new workers accept after %lld s; still serving "
               "generation %llu", ready, g.workers, static_cast<long long>(kReadyTimeout.count()),
               static_cast<unsigned long long>(current_));
      zone_->setLifecycleError(std::to_string(g.workers - ready) + " of " +
                               std::to_string(g.workers) + " new workers did not start within " +
                               std::to_string(kReadyTimeout.count()) + " s");
      for (pid_t w : g.waiters) reply(w, kReplyFailed);
      g.waiters.clear();
      signalAll(children_.retire(g.number, true), SIGQUIT);
      pending_ = 0;
    }
  }
  if (upgrade_pid_ && upgrade_abandoned_.empty() && now > upgrade_deadline_) {
    // A graceful stop: some of its workers may already serve. It has failed once it is reaped
    // (before that it could still write the pid file).
    kill(upgrade_pid_, SIGQUIT);
    upgrade_abandoned_ = "the new binary did not serve within " +
                         std::to_string(kUpgradeTimeout.count()) + " s";
    SM_ERROR("binary upgrade: %s; stopping it", upgrade_abandoned_.c_str());
  }
}

// `g` serves: the generations before it retire (workers drain, the control process stops so
// that g's can start).
void Master::promote(Generation& g) {
  bool first = current_ == 0;
  current_ = g.number;
  pending_ = 0;
  // A handover still open (reloads in quick succession) is carried into this one.
  Handover h = handover_ ? std::move(*handover_) : Handover{};
  for (Child* c : children_.retire(g.number)) {
    if (c->role == Role::kControl) {
      h.controls.push_back(c->pid);
    } else {
      kill(c->pid, SIGQUIT);
      h.workers.push_back(c->pid);
    }
  }
  if (first) {
    SM_NOTICE("speedmimi started on %s with %zu workers", g.listeners[0]->address.c_str(),
              g.workers);
    if (upgrade_from_) reply(upgrade_from_, static_cast<int>(g.number));
  }
  if (!first || g.number > 1) h.done.push_back(g.number);  // > 1: a reload superseded the first
  for (pid_t w : g.waiters) h.waiters.emplace_back(w, g.number);
  g.waiters.clear();
  h.deadline = Clock::now() + kHandoverTimeout;
  handover_ = std::move(h);
  checkHandover();
}

void Master::checkHandover() {
  if (!handover_) return;
  Handover& h = *handover_;
  auto accepting = [this](pid_t pid) {
    const Child* c = children_.byPid(pid);
    return c != nullptr && c->slot >= 0 &&
           zone_->workers()[c->slot].ready.load(std::memory_order_acquire) != 0;
  };
  std::erase_if(h.workers, [&](pid_t pid) { return !accepting(pid); });
  if (!h.workers.empty() && Clock::now() < h.deadline) return;
  if (!h.workers.empty()) {
    SM_WARN("reload: retired workers still accepting after %lld s: %zu (stopped or hung?); the "
            "reload is done all the same", static_cast<long long>(kHandoverTimeout.count()),
            h.workers.size());
  }
  endHandover();
}

void Master::endHandover() {
  if (!handover_) return;
  Handover h = std::move(*handover_);
  handover_.reset();
  for (pid_t pid : h.controls) kill(pid, SIGTERM);
  if (!h.controls.empty()) control_stop_deadline_ = Clock::now() + kControlStopGrace;
  for (uint64_t n : h.done) {
    auto it = generations_.find(n);
    SM_NOTICE("reload done: generation %llu, %zu workers", static_cast<unsigned long long>(n),
              it != generations_.end() ? it->second->workers : size_t{0});
  }
  for (auto [pid, n] : h.waiters) reply(pid, static_cast<int>(n));
}

void Master::keepRestartOnlyKeys(core::Config& next) const {
  const ServerConfig& now = current().config.server;
  auto keep = [](const char* key, auto& value, const auto& old) {
    if (value == old) return;
    SM_WARN("reload: server.%s changed; it takes effect at the next restart", key);
    value = old;
  };
  keep("shm_size", next.server.shm_size, now.shm_size);
  keep("user", next.server.user, now.user);
  keep("pid_file", next.server.pid_file, now.pid_file);
}

// HUP: validate everything first; an error leaves the running generation untouched.
void Master::reload(pid_t waiter) {
  SM_NOTICE("reloading");
  if (stopping_ || upgrade_pid_ || upgraded_) {
    const char* why = stopping_ ? "stopping" : "a binary upgrade is in progress";
    SM_ERROR("reload refused: %s", why);
    zone_->setLifecycleError(std::string("refused: ") + why);
    if (waiter) reply(waiter, kReplyFailed);
    return;
  }
  const std::string& file = current().yaml.file;
  std::string error;
  std::unique_ptr<Generation> next;
  try {
    core::Config yaml = core::loadConfigFile(file, {upstream::balancerNames()});
    keepRestartOnlyKeys(yaml);
    std::vector<std::string> notes;
    core::Config config = effectiveConfig(yaml, options_.prefix, notes);
    for (const std::string& note : notes) SM_WARN("reload: %s", note.c_str());
    const uint64_t tls_serial = zone_->tlsSerial();
    std::shared_ptr<const event::ServerTls> tls = loadTls(config);
    next = prepare(std::move(config), error);
    if (next) {
      next->yaml = std::move(yaml);
      next->setTls(std::move(tls), tls_serial);
    }
  } catch (const core::ConfigError& e) {
    error = e.what();
  }
  if (next && !upstream::syncBackends(*zone_, next->config, error)) next.reset();
  if (next) warnExpiring(next->certificates);
  if (!next) {
    SM_ERROR("reload failed: %s; still serving generation %llu", error.c_str(),
             static_cast<unsigned long long>(current().number));
    zone_->setLifecycleError(error);
    if (waiter) reply(waiter, kReplyFailed);
    return;
  }
  const ServerConfig& s = next->config.server;
  const ServerConfig& old = current().config.server;
  if (s.error_log != old.error_log || s.log_level != old.log_level) {
    std::string path = resolvePath(options_.prefix, s.error_log);
    makeParentDirs(path);
    prepareLogFile(path, identity_);
    if (!core::openErrorLog(path, s.log_level, error)) {
      SM_ERROR("reload: %s; the error log stays where it was", error.c_str());
    }
  }
  std::string access_log = resolvePath(options_.prefix, s.access_log);
  makeParentDirs(access_log);
  prepareLogFile(access_log, identity_);
  if (waiter) next->waiters.push_back(waiter);
  start(std::move(next));
}

void Master::followTls() {
  if (current_ == 0) return;
  Generation& g = *generations_.at(current_);
  const uint64_t serial = zone_->tlsSerial();
  if (!g.server_tls || g.tls_serial == serial) return;
  try {
    g.setTls(loadTls(g.config), serial);
    SM_INFO("certificates reloaded for the workers started from now on");
  } catch (const core::ConfigError& e) {
    g.tls_serial = serial;  // tried once: the workers' own reload said what it found
    SM_ERROR("reload-ssl: %s; workers started from now on serve the certificates loaded before",
             e.what());
  }
}

// USR2: start the binary on disk with our sockets and zone; it tells us when it serves.
void Master::upgrade(pid_t waiter) {
  // A new binary whose old master still drains does not start a third (as nginx refuses).
  bool old_master_alive = upgrade_from_ != 0 && getppid() == upgrade_from_;
  if (upgrade_pid_ || upgraded_ || stopping_ || old_master_alive) {
    const char* why = upgrade_pid_       ? "one is already in progress"
                      : old_master_alive ? "the old master of the last upgrade is still draining"
                                         : "stopping";
    SM_ERROR("binary upgrade refused: %s", why);
    zone_->setLifecycleError(std::string("refused: ") + why);
    if (waiter) reply(waiter, kReplyFailed);
    return;
  }
  SM_NOTICE("binary upgrade: starting %s", binary_.c_str());
  std::string oldbin = oldbinPath(pid_path_);
  if (rename(pid_path_.c_str(), oldbin.c_str()) != 0) {
    SM_ERROR("binary upgrade failed: cannot rename %s to %s: %s", pid_path_.c_str(),
             oldbin.c_str(), std::strerror(errno));
    zone_->setLifecycleError("cannot rename " + pid_path_ + " to " + oldbin + ": " +
                             std::strerror(errno));
    if (waiter) reply(waiter, kReplyFailed);
    return;
  }
  pid_t pid = fork();
  if (pid < 0) {
    rename(oldbin.c_str(), pid_path_.c_str());
    SM_ERROR("binary upgrade failed: fork() failed: %s", std::strerror(errno));
    zone_->setLifecycleError(std::string("fork() failed: ") + std::strerror(errno));
    if (waiter) reply(waiter, kReplyFailed);
    return;
  }
  if (pid == 0) execNewBinary();
  upgrade_pid_ = pid;
  upgrade_deadline_ = Clock::now() + kUpgradeTimeout;
  if (waiter) upgrade_waiters_.push_back(waiter);
  // The new binary's control process takes over the health checks; ours comes back if the
  // upgrade fails.
  signalAll(children_.retireIf([](const Child& c) { return c.role == Role::kControl; }), SIGTERM);
}

// In the forked child: the new binary, with a clean signal state and the sockets and the zone
// left open across exec.
void Master::execNewBinary() {
  pipe_read_.reset();
  pipe_write_.reset();
  requests_read_.reset();
  requests_write_.reset();
  for (int sig = 1; sig < NSIG; ++sig) ::signal(sig, SIG_DFL);
  sigset_t none;
  sigemptyset(&none);
  sigprocmask(SIG_SETMASK, &none, nullptr);
  for (const ListenerRef& l : listeners_.open()) fcntl(l->fd.get(), F_SETFD, 0);
  fcntl(zone_->fd(), F_SETFD, 0);
  char zone[64];
  snprintf(zone, sizeof(zone), "%d:%llx", zone_->fd(),
           static_cast<unsigned long long>(zone_->address()));
  setenv(ListenerSet::kEnvironmentName, listeners_.environmentValue().c_str(), 1);
  setenv(kZoneEnvironment, zone, 1);
  setenv(kUpgradeEnvironment, std::to_string(getppid()).c_str(), 1);
  std::vector<char*> argv;
  for (std::string& a : args_) argv.push_back(a.data());
  argv.push_back(nullptr);
  execv(binary_.c_str(), argv.data());
  SM_ALERT("binary upgrade: execv(%s) failed: %s", binary_.c_str(), std::strerror(errno));
  _exit(127);
}

void Master::upgradeFailed(const std::string& why) {
  upgrade_pid_ = 0;
  upgrade_abandoned_.clear();
  std::string oldbin = oldbinPath(pid_path_);
  if (rename(oldbin.c_str(), pid_path_.c_str()) != 0) {
    SM_ERROR("cannot restore the pid file %s: %s", pid_path_.c_str(), std::strerror(errno));
  }
  SM_ERROR("binary upgrade failed: %s; still serving", why.c_str());
  zone_->setLifecycleError(why);
  for (pid_t w : upgrade_waiters_) reply(w, kReplyFailed);
  upgrade_waiters_.clear();
  uint64_t g = pending_ ? pending_ : current_;
  children_.add(Role::kControl, g, Clock::now());  // our control process again
  respawnDue();
}

void Master::upgradeDone() {
  SM_NOTICE("binary upgrade: the new master %d serves; stopping gracefully",
            static_cast<int>(upgrade_pid_));
  for (pid_t w : upgrade_waiters_) reply(w, static_cast<int>(upgrade_pid_));
  upgrade_waiters_.clear();
  upgrade_pid_ = 0;
  upgraded_ = true;
}

void Master::signalAll(const std::vector<Child*>& children, int sig) {
  for (Child* c : children) {
    if (c->pid > 0) kill(c->pid, sig);
  }
}

void Master::reopenLogs() {
  prepareLogFile(resolvePath(options_.prefix, current().config.server.error_log), identity_);
  std::string error;
  if (!core::reopenErrorLog(error)) SM_ERROR("%s", error.c_str());
  for (const auto& [n, g] : generations_) {
    prepareLogFile(resolvePath(options_.prefix, g->config.server.access_log), identity_);
  }
  signalAll(children_.all(), SIGUSR1);
}

// A generation goes when none of its processes is left and it neither serves nor starts.
void Master::collectGenerations() {
  for (auto it = generations_.begin(); it != generations_.end();) {
    uint64_t n = it->first;
    if (n != current_ && n != pending_ && children_.countOf(n) == 0) {
      it = generations_.erase(it);  // its listeners close unless a later generation holds them
    } else {
      ++it;
    }
  }
  // A retiring control process that does not stop in time would keep the next one waiting.
  if (control_stop_deadline_ != Clock::time_point{} && Clock::now() > control_stop_deadline_) {
    for (Child* c : children_.all()) {
      if (c->role == Role::kControl && c->retiring && c->pid > 0) kill(c->pid, SIGKILL);
    }
    control_stop_deadline_ = {};
  }
}

// Waits for every child to exit, reaping as they go. False if the deadline passed first. A TERM
// or INT meanwhile turns a graceful stop into a fast one (the deadline shrinks to kFastStopGrace).
bool Master::waitForChildren(Clock::time_point deadline) {
  sigset_t set;
  sigemptyset(&set);
  for (int sig : {SIGCHLD, SIGTERM, SIGINT}) sigaddset(&set, sig);
  while (true) {
    reap();
    if (children_.running(Role::kWorker) + children_.running(Role::kControl) == 0) return true;
    auto left = deadline - Clock::now();
    if (left <= Clock::duration::zero()) return false;
    auto ms = std::chrono::duration_cast<milliseconds>(left).count();
    timespec ts{static_cast<time_t>(ms / 1000), static_cast<long>((ms % 1000) * 1000000)};
    int sig = sigtimedwait(&set, nullptr, &ts);
    if (sig == SIGTERM || sig == SIGINT) {
      SM_NOTICE("%s received while stopping: fast stop", strsignal(sig));
      signalAll(children_.all(), SIGTERM);
      deadline = std::min(deadline, Clock::now() + kFastStopGrace);
    }
  }
}

void Master::stop(int sig) {
  endHandover();  // what was reloaded is answered; every child stops now anyway
  stopping_ = true;
  bool graceful = sig == SIGQUIT;
  SM_NOTICE("%s: %s stop", upgraded_ ? "binary upgrade done" : strsignal(sig),
            graceful ? "graceful" : "fast");
  signalAll(children_.all(), graceful ? SIGQUIT : SIGTERM);
  auto grace = graceful ? std::chrono::duration_cast<Clock::duration>(
                              current().config.server.shutdown_timeout + std::chrono::seconds(2))
                        : std::chrono::duration_cast<Clock::duration>(kFastStopGrace);
  if (!waitForChildren(Clock::now() + grace)) {
    SM_WARN("children did not exit in time; killing them");
    signalAll(children_.all(), SIGKILL);
    waitForChildren(Clock::now() + std::chrono::seconds(5));
  }
  if (upgraded_) {
    removePidFileIfOurs(oldbinPath(pid_path_), getpid());
  } else {
    removePidFileIfOurs(pid_path_, getpid());
  }
  SM_NOTICE("speedmimi stopped");
}

int Master::run() {
  ::signal(SIGPIPE, SIG_IGN);
  sigset_t set = masterSignals();
  sigprocmask(SIG_BLOCK, &set, nullptr);
  std::string title = "speedmimi: master process";
  for (const std::string& a : args_) title += " " + a;
  setTitle(title);
  if (!setUp()) return 1;

  int stop_signal = 0;
  while (stop_signal == 0) {
    // Respawn backoffs and progress are checked on this tick.
    timespec tick{0, handover_ ? kHandoverPollNs : 100'000'000};
    siginfo_t info;
    int sig = sigtimedwait(&set, &info, &tick);
    switch (sig) {
      case SIGCHLD: reap(); break;
      case SIGTERM: case SIGINT: case SIGQUIT: stop_signal = sig; break;
      case SIGUSR1: reopenLogs(); break;
      case SIGHUP: reload(0); break;
      case SIGUSR2: upgrade(0); break;
      default:
        if (sig == requestSignal() && info.si_code == SI_QUEUE) {
          int action = info.si_value.sival_int;
          if (action == static_cast<int>(Request::kReload)) reload(info.si_pid);
          if (action == static_cast<int>(Request::kUpgrade)) upgrade(info.si_pid);
        } else if (sig == replySignal() && upgrade_pid_ && info.si_pid == upgrade_pid_ &&
                   info.si_value.sival_int > 0) {
          upgradeDone();
          stop_signal = SIGQUIT;
        }
        break;
    }
    for (auto [from, request] : readRequests(requests_read_.get())) {
      const Child* c = children_.byPid(from);
      if (c == nullptr || c->role != Role::kControl) continue;  // gone since it asked
      if (request == Request::kReload) reload(from);
      if (request == Request::kUpgrade) upgrade(from);
    }
    checkProgress();
    checkHandover();
    respawnDue();
    collectGenerations();
    rotateTicketKeys(*zone_, unixNow());
    followTls();
  }
  stop(stop_signal);
  return 0;
}

}  // namespace

std::string resolvePath(const std::string& prefix, const std::string& path) {
  if (path.empty() || path[0] == '/' || path == "stderr" || path == "off") return path;
  if (prefix.empty()) return path;
  return prefix.back() == '/' ? prefix + path : prefix + "/" + path;
}

int runMaster(const Config& config, const Options& options,
              const std::vector<std::string>& args) {
  Master master(config, options, args);
  return master.run();
}

int signalMaster(const Config& config, const Options& options) {
  static const struct {
    const char* name;
    int sig;
    bool waits;  // sent as a Request, for the master's answer
  } kSignals[] = {{"reload", SIGHUP, true},  {"reopen", SIGUSR1, false}, {"quit", SIGQUIT, false},
                  {"stop", SIGTERM, false},  {"upgrade", SIGUSR2, true}};
  constexpr std::chrono::seconds kAnswerTimeout{30};
  std::string pid_path = resolvePath(options.prefix, config.server.pid_file);
  for (const auto& s : kSignals) {
    if (options.signal != s.name) continue;
    std::string error;
    pid_t pid = readPidFile(pid_path, error);
    if (pid == 0) {
      fprintf(stderr, "speedmimi: %s\n", error.c_str());
      return 1;
    }
    if (s.waits) blockReplySignal();
    Request request = s.sig == SIGHUP ? Request::kReload : Request::kUpgrade;
    if (!(s.waits ? sendRequest(pid, request) : kill(pid, s.sig) == 0)) {
      fprintf(stderr, "speedmimi: cannot signal the master %d (from %s): %s\n",
              static_cast<int>(pid), pid_path.c_str(), std::strerror(errno));
      return 1;
    }
    if (!s.waits) return 0;
    int answer = awaitReply(pid, kAnswerTimeout);
    if (answer > 0) {
      if (s.sig == SIGHUP) {
        printf("speedmimi: reload done: generation %d\n", answer);
      } else {
        printf("speedmimi: upgrade done: the new master is %d\n", answer);
      }
      return 0;
    }
    std::string log = resolvePath(options.prefix, config.server.error_log);
    fprintf(stderr, "speedmimi: %s %s; see the error log (%s)\n", s.name,
            answer == 0 ? "got no answer within 30 s" : "failed", log.c_str());
    return 1;
  }
  fprintf(stderr, "speedmimi: unknown signal \"%s\"\n", options.signal.c_str());
  return 1;
}

}  // namespace speedmimi::process
