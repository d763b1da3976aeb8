#include "process/master.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <stdexcept>
#include <vector>

#include "core/config.h"
#include "core/log.h"
#include "core/zone.h"
#include "event/listener.h"
#include "process/control.h"
#include "process/worker.h"
#include "upstream/backend_table.h"

namespace speedmimi::process {
namespace {

using core::ServerConfig;
using core::ServerCounters;
using core::Zone;

using Clock = std::chrono::steady_clock;
constexpr int kBacklog = 511;
constexpr std::chrono::seconds kFastStopGrace{5};       // TERM: then SIGKILL
constexpr std::chrono::seconds kRespawnBackoffMax{10};  // for a child that keeps crashing

const int kMasterSignals[] = {SIGCHLD, SIGTERM, SIGINT, SIGQUIT, SIGUSR1, SIGHUP, SIGUSR2};

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

class Master {
 public:
  Master(const Config& config, const Options& options) : config_(config), options_(options) {}
  int run();

 private:
  bool setUp();
  void warnUnserved();
  void spawn(size_t slot);
  void reap();
  void respawnDue();
  void signalWorkers(int sig);
  bool waitForWorkers(Clock::time_point deadline);
  void writePidFile();

  // Children: workers in slots 0..workers-1, then the control process.
  struct WorkerSlot {
    pid_t pid = 0;
    Clock::time_point started;
    Clock::time_point respawn_at;
    std::chrono::milliseconds backoff{0};
  };

  const Config& config_;
  const Options& options_;
  std::string prefix_;
  std::string pid_path_;
  std::string access_log_path_;
  event::Fd listener_;
  std::unique_ptr<Zone> zone_;
  std::vector<WorkerSlot> workers_;  // the workers, then the control process
  size_t worker_count_ = 0;
  bool isControl(size_t slot) const { return slot == worker_count_; }
  const char* kindOf(size_t slot) const { return isControl(slot) ? "control" : "worker"; }
  bool stopping_ = false;
};

bool Master::setUp() {
  prefix_ = options_.prefix;
  const ServerConfig& server = config_.server;
  std::string error_log = resolvePath(prefix_, server.error_log);
  pid_path_ = resolvePath(prefix_, server.pid_file);
  access_log_path_ = resolvePath(prefix_, server.access_log);
  for (const std::string& p : {error_log, pid_path_, access_log_path_}) {
    if (p != "stderr" && p != "off") makeParentDirs(p);
  }
  std::string error;
  if (!core::openErrorLog(error_log, server.log_level, error)) {
    fprintf(stderr, "speedmimi: %s\n", error.c_str());
    return false;
  }

  warnUnserved();
  // Every backend is resolved and validated here, so a bad host fails the start, not a child.
  size_t backends = 0;
  for (const auto& [name, list] : config_.backends) backends += list.size();
  zone_ = Zone::create(server.shm_size, backends, error);
  if (!zone_ || !upstream::syncBackends(*zone_, config_, error)) {
    SM_ALERT("%s", error.c_str());
    fprintf(stderr, "speedmimi: %s\n", error.c_str());
    return false;
  }

  listener_ = event::openListener(server.host, server.port, kBacklog, error);
  if (!listener_.valid()) {
    SM_ALERT("%s", error.c_str());
    fprintf(stderr, "speedmimi: %s\n", error.c_str());
    return false;
  }
  return true;
}

// Settings this version accepts but does not act on yet: say so once at startup.
void Master::warnUnserved() {
  if (config_.admin.enabled) {
    SM_WARN("the management API is not available in this version; nothing listens on %s:%d",
            config_.admin.host.c_str(), config_.admin.port);
  }

}

void Master::writePidFile() {
  std::ofstream out(pid_path_, std::ios::trunc);
  out << getpid() << "\n";
  if (!out) SM_ERROR("cannot write pid file %s: %s", pid_path_.c_str(), std::strerror(errno));
}

void Master::spawn(size_t slot) {
  ServerCounters* counters = isControl(slot) ? nullptr : &zone_->workers()[slot];
  if (counters) zone_->claimWorkerSlot(slot);  // the old worker's connections are gone
  pid_t pid = fork();
  if (pid < 0) {
    SM_ALERT("fork() failed: %s", std::strerror(errno));
    workers_[slot].respawn_at = Clock::now() + std::chrono::seconds(1);
    return;
  }
  if (pid == 0) {
    if (isControl(slot)) {
      listener_.reset();  // the control process serves no traffic
      ControlSetup setup;
      setup.config = &config_;
      setup.zone = zone_.get();
      _exit(runControl(setup));
    }
    WorkerSetup setup;
    setup.config = &config_;
    setup.listen_fd = listener_.get();
    setup.zone = zone_.get();
    setup.worker_slots = worker_count_;
    setup.slot = slot;
    setup.access_log_path = access_log_path_;
    _exit(runWorker(setup));
  }
  if (counters) counters->pid.store(pid, std::memory_order_release);
  workers_[slot].pid = pid;
  workers_[slot].started = Clock::now();
  SM_NOTICE("started %s process %d", kindOf(slot), static_cast<int>(pid));
}

// Collects exited children; schedules a respawn for workers that died unexpectedly.
void Master::reap() {
  int status;
  pid_t pid;
  while ((pid = waitpid(-1, &status, WNOHANG)) > 0) {
    for (size_t i = 0; i < workers_.size(); ++i) {
      WorkerSlot& w = workers_[i];
      if (w.pid != pid) continue;
      w.pid = 0;
      if (!isControl(i)) {
        zone_->releaseWorkerSlot(i);  // its exchanges died with it
      }
      if (stopping_) {
        SM_NOTICE("%s process %d %s", kindOf(i), static_cast<int>(pid),
                  describeExit(status).c_str());
        break;
      }
      // A worker that dies within a second of starting is crashing: back off.
      bool quick = Clock::now() - w.started < std::chrono::seconds(1);
      w.backoff = quick ? std::min<std::chrono::milliseconds>(
                              std::max(w.backoff * 2, std::chrono::milliseconds(100)),
                              kRespawnBackoffMax)
                        : std::chrono::milliseconds(0);
      w.respawn_at = Clock::now() + w.backoff;
      SM_ERROR("%s process %d %s; respawning%s", kindOf(i), static_cast<int>(pid),
               describeExit(status).c_str(), quick ? " after a backoff" : "");
    }
  }
}

void Master::respawnDue() {
  if (stopping_) return;
  for (size_t i = 0; i < workers_.size(); ++i) {
    if (workers_[i].pid == 0 && Clock::now() >= workers_[i].respawn_at) spawn(i);
  }
}

void Master::signalWorkers(int sig) {
  for (const WorkerSlot& w : workers_) {
    if (w.pid > 0) kill(w.pid, sig);
  }
}

// Waits for every worker to exit, reaping as they go. False if the deadline passed first.
bool Master::waitForWorkers(Clock::time_point deadline) {
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGCHLD);
  while (true) {
    reap();
    bool any = false;
    for (const WorkerSlot& w : workers_) any |= w.pid > 0;
    if (!any) return true;
    auto left = deadline - Clock::now();
    if (left <= Clock::duration::zero()) return false;
    auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(left).count();
    timespec ts{static_cast<time_t>(ms / 1000), static_cast<long>((ms % 1000) * 1000000)};
    sigtimedwait(&set, nullptr, &ts);
  }
}

int Master::run() {
  if (!setUp()) return 1;
  signal(SIGPIPE, SIG_IGN);
  sigset_t set;
  sigemptyset(&set);
  for (int sig : kMasterSignals) sigaddset(&set, sig);
  sigprocmask(SIG_BLOCK, &set, nullptr);

  if (options_.daemonize && daemon(1, 0) != 0) {
    SM_ALERT("daemon() failed: %s", std::strerror(errno));
    return 1;
  }
  writePidFile();
  worker_count_ = std::min<size_t>(core::effectiveWorkers(config_.server), core::kMaxWorkers);
  workers_.resize(worker_count_ + 1);
  SM_NOTICE("speedmimi started on %s:%d with %zu workers", config_.server.host.c_str(),
            config_.server.port, worker_count_);
  for (size_t i = 0; i < workers_.size(); ++i) spawn(i);

  int stop_signal = 0;
  while (stop_signal == 0) {
    timespec tick{0, 100'000'000};  // respawn backoffs are checked on this tick
    siginfo_t info;
    int sig = sigtimedwait(&set, &info, &tick);
    switch (sig) {
      case SIGCHLD: reap(); break;
      case SIGTERM: case SIGINT: case SIGQUIT: stop_signal = sig; break;
      case SIGUSR1: {
        std::string error;
        if (!core::reopenErrorLog(error)) SM_ERROR("%s", error.c_str());
        signalWorkers(SIGUSR1);
        break;
      }
      case SIGHUP:
      case SIGUSR2:
        // Reload and binary upgrade are not part of this version: refuse loudly, keep serving.
        SM_WARN("%s ignored: this version does not reload or upgrade; restart instead",
                strsignal(sig));
        break;
      default: break;
    }
    respawnDue();
  }

  stopping_ = true;
  bool graceful = stop_signal == SIGQUIT;
  SM_NOTICE("%s received: %s stop", strsignal(stop_signal), graceful ? "graceful" : "fast");
  signalWorkers(graceful ? SIGQUIT : SIGTERM);
  auto grace = graceful ? std::chrono::duration_cast<Clock::duration>(
                              config_.server.shutdown_timeout + std::chrono::seconds(2))
                        : std::chrono::duration_cast<Clock::duration>(kFastStopGrace);
  if (!waitForWorkers(Clock::now() + grace)) {
    SM_WARN("workers did not exit in time; killing them");
    signalWorkers(SIGKILL);
    waitForWorkers(Clock::now() + std::chrono::seconds(5));
  }
  unlink(pid_path_.c_str());
  SM_NOTICE("speedmimi stopped");
  return 0;
}

}  // namespace

std::string resolvePath(const std::string& prefix, const std::string& path) {
  if (path.empty() || path[0] == '/' || path == "stderr" || path == "off") return path;
  if (prefix.empty()) return path;
  return prefix.back() == '/' ? prefix + path : prefix + "/" + path;
}

int runMaster(const Config& config, const Options& options) {
  Master master(config, options);
  return master.run();
}

int signalMaster(const Config& config, const Options& options) {
  static const struct { const char* name; int sig; } kSignals[] = {
      {"reload", SIGHUP}, {"reopen", SIGUSR1}, {"quit", SIGQUIT},
      {"stop", SIGTERM},  {"upgrade", SIGUSR2}};
  std::string pid_path = resolvePath(options.prefix, config.server.pid_file);
  std::ifstream in(pid_path);
  long pid = 0;
  if (!(in >> pid) || pid <= 0) {
    fprintf(stderr, "speedmimi: cannot read a pid from %s\n", pid_path.c_str());
    return 1;
  }
  for (const auto& s : kSignals) {
    if (options.signal != s.name) continue;
    if (kill(static_cast<pid_t>(pid), s.sig) != 0) {
      fprintf(stderr, "speedmimi: kill(%ld, %s) failed: %s\n", pid, s.name, std::strerror(errno));
      return 1;
    }
    return 0;
  }
  fprintf(stderr, "speedmimi: unknown signal \"%s\"\n", options.signal.c_str());
  return 1;
}

}  // namespace speedmimi::process
