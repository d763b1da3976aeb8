// The process lifecycle seen from outside (DESIGN §2): reloads on HUP under keep-alive and
// close-per-request load with zero client errors, a refused invalid configuration, a valid one
// taking effect, health state kept across a reload, tunnels and event streams that outlive a
// reload until shutdown_timeout, binary upgrade on USR2 (and a failed one), children that stop
// when the master is killed, server.user, and the process titles.
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pwd.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <thread>

#include "harness.h"

namespace speedmimi::test {
namespace {

using ::testing::HasSubstr;
using ::testing::IsEmpty;
using ::testing::Not;
using ::testing::StartsWith;

// ---------------------------------------------------------------------------------------------
// Helpers

// 200 with the backend's id as body; /health answers `*health` (200 unless a test changes it).
Handler identify(const std::string& id, std::shared_ptr<std::atomic<int>> health = nullptr) {
  return [id, health](const Request& request, Responder& out) {
    if (request.target == "/health") {
      int status = health ? health->load() : 200;
      out.send(buildResponse(status, {}, status == 200 ? "ok" : "failing"));
      return;
    }
    out.send(buildResponse(200, {{"Content-Type", "text/plain"}}, id));
  };
}

// Requests other than health probes.
size_t countTraffic(const FakeBackend& backend) {
  size_t n = 0;
  for (const Request& r : backend.requests()) n += r.target != "/health";
  return n;
}

BackendSpec spec(const std::string& id, const FakeBackend& backend) {
  BackendSpec b;
  b.id = id;
  b.port = backend.port();
  return b;
}

RouteSpec route(const std::string& name, const std::string& path, const std::string& upstream,
                const std::string& balancer = "round_robin") {
  RouteSpec r;
  r.name = name;
  r.path = path;
  r.upstream = upstream;
  r.load_balancer = balancer;
  return r;
}

std::string get(const std::string& target) {
  return buildRequest("GET", target, {{"Host", "life.test"}}, "", Framing::kNone);
}

// `count` GETs of prefix<n>, each on its own connection: the bodies by value, and the errors.
struct Tally {
  std::map<int, int> statuses;
  std::map<std::string, int> bodies;
  std::vector<std::string> errors;
};
Tally fetchMany(int port, const std::string& prefix, int count) {
  Tally tally;
  for (int i = 0; i < count; ++i) {
    std::string error;
    auto response = fetch(port, get(prefix + std::to_string(i)), &error, Millis(5000));
    if (!response) {
      tally.errors.push_back(error);
      continue;
    }
    ++tally.statuses[response->status];
    ++tally.bodies[response->body];
  }
  return tally;
}

size_t countLines(const std::string& log, const std::string& needle) {
  return linesContaining(log, {needle}).size();
}

// Waits until the error log has at least `count` lines containing `needle`.
bool waitForLogLines(const Proxy& proxy, const std::string& needle, size_t count,
                     Millis timeout) {
  return waitFor([&] { return countLines(proxy.errorLog(), needle) >= count; }, timeout,
                 Millis(10));
}

// The first error-log line containing `needle`, "" if none.
std::string firstLine(const std::string& log, const std::string& needle) {
  auto lines = linesContaining(log, {needle});
  return lines.empty() ? "" : lines.front();
}

std::string cmdline(pid_t pid) {
  std::string text = readFile("/proc/" + std::to_string(pid) + "/cmdline");
  size_t end = text.find('\0');
  return end == std::string::npos ? text : text.substr(0, end);
}

// A field of /proc/PID/status ("Uid", "Gid"): the text after the colon, trimmed.
std::string statusField(pid_t pid, const std::string& field) {
  std::istringstream in(readFile("/proc/" + std::to_string(pid) + "/status"));
  std::string line;
  while (std::getline(in, line)) {
    if (line.compare(0, field.size() + 1, field + ":") == 0) {
      std::string value = line.substr(field.size() + 1);
      value.erase(0, value.find_first_not_of(" \t"));
      return value;
    }
  }
  return "";
}

// The processes whose parent is `parent`, found by scanning /proc/*/stat (independent of the
// harness's own childPids()).
std::vector<pid_t> processesWithParent(pid_t parent) {
  std::vector<pid_t> found;
  std::error_code ec;
  for (const auto& entry : std::filesystem::directory_iterator("/proc", ec)) {
    std::string name = entry.path().filename().string();
    if (name.empty() || name.find_first_not_of("0123456789") != std::string::npos) continue;
    std::string stat = readFile(entry.path().string() + "/stat");
    size_t paren = stat.rfind(')');
    if (paren == std::string::npos) continue;
    std::istringstream rest(stat.substr(paren + 1));
    std::string state;
    long ppid = 0;
    if ((rest >> state >> ppid) && ppid == parent) found.push_back(std::stoi(name));
  }
  std::sort(found.begin(), found.end());
  return found;
}

// ---------------------------------------------------------------------------------------------
// Load: N threads, each with its own blocking HTTP/1.1 client on a raw socket, sending GETs
// without pause. A response is framed by Content-Length; "Connection: close" in it (or in the
// request) makes the client reconnect. Every outcome is counted.

struct LoadCounts {
  std::atomic<long> ok{0};            // 200 with the expected body
  std::atomic<long> other_status{0};  // any other status
  std::atomic<long> wrong_body{0};    // 200, but not the backend's echo of the target
  std::atomic<long> resets{0};        // ECONNRESET / EPIPE
  std::atomic<long> early_closes{0};  // EOF before a complete response
  std::atomic<long> timeouts{0};      // no complete response within the I/O timeout
  std::atomic<long> malformed{0};     // a response the client could not frame
  std::atomic<long> connect_failures{0};
  std::atomic<long> connections{0};      // connections opened
  std::atomic<long> closed_by_proxy{0};  // responses with "Connection: close" not asked for
  std::mutex mutex;
  std::vector<std::string> samples;  // the first few failures, described

  long errors() const {
    return other_status + wrong_body + resets + early_closes + timeouts + malformed +
           connect_failures;
  }
  std::string describe() {
    std::ostringstream out;
    out << "ok " << ok << ", other status " << other_status << ", wrong body " << wrong_body
        << ", resets " << resets << ", early closes " << early_closes << ", timeouts "
        << timeouts << ", malformed " << malformed << ", connect failures " << connect_failures
        << ", connections " << connections << ", closed by the proxy " << closed_by_proxy;
    std::lock_guard<std::mutex> lock(mutex);
    for (const auto& s : samples) out << "\n  " << s;
    return out.str();
  }
  void sample(std::string what) {
    std::lock_guard<std::mutex> lock(mutex);
    if (samples.size() < 10) samples.push_back(std::move(what));
  }
};

class Load {
 public:
  Load(int port, int connections, bool close_each)
      : port_(port), close_each_(close_each) {
    for (int i = 0; i < connections; ++i) threads_.emplace_back([this, i] { run(i); });
  }
  ~Load() { stop(); }

  void stop() {
    stop_.store(true);
    for (auto& t : threads_) {
      if (t.joinable()) t.join();
    }
  }
  LoadCounts& counts() { return counts_; }
  // Waits until at least `n` requests got their 200.
  bool waitForOk(long n, Millis timeout) {
    return waitFor([&] { return counts_.ok.load() >= n; }, timeout, Millis(10));
  }

 private:
  static constexpr int kIoTimeoutSeconds = 5;

  int connect() {
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) return -1;
    timeval tv{kIoTimeoutSeconds, 0};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_port = htons(static_cast<uint16_t>(port_));
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) {
      int err = errno;
      ::close(fd);
      errno = err;
      return -1;
    }
    return fd;
  }

  enum class Outcome { kOk, kReset, kEarlyClose, kTimeout, kMalformed };

  // Sends one request and reads its response; *close when the connection must not be reused.
  Outcome exchange(int fd, const std::string& target, int* status, std::string* body,
                   bool* close, std::string* why) {
    std::string request = "GET " + target + " HTTP/1.1\r\nHost: load.test\r\n" +
                          (close_each_ ? "Connection: close\r\n" : "") + "\r\n";
    size_t sent = 0;
    while (sent < request.size()) {
      ssize_t n = ::send(fd, request.data() + sent, request.size() - sent, MSG_NOSIGNAL);
      if (n > 0) {
        sent += static_cast<size_t>(n);
        continue;
      }
      if (n < 0 && errno == EINTR) continue;
      *why = std::string("send: ") + std::strerror(errno);
      if (errno == EAGAIN || errno == EWOULDBLOCK) return Outcome::kTimeout;
      return Outcome::kReset;  // EPIPE, ECONNRESET
    }
    std::string in;
    size_t head_end = std::string::npos;
    size_t need = 0;
    char buf[16 * 1024];
    while (true) {
      if (head_end == std::string::npos) {
        head_end = in.find("\r\n\r\n");
        if (head_end != std::string::npos) {
          std::string start_line;
          Headers headers;
          std::string error;
          if (!parseHead(std::string_view(in).substr(0, head_end + 4), &start_line, &headers,
                         &error) ||
              start_line.size() < 12) {
            *why = "malformed head: " + error + ": " + in.substr(0, 200);
            return Outcome::kMalformed;
          }
          *status = std::atoi(start_line.c_str() + 9);
          auto length = findHeader(headers, "Content-Length");
          if (!length) {
            *why = "no Content-Length: " + in.substr(0, head_end);
            return Outcome::kMalformed;
          }
          need = head_end + 4 + std::stoul(*length);
          *close = containsIgnoreCase(findHeader(headers, "Connection").value_or(""), "close");
        }
      }
      if (head_end != std::string::npos && in.size() >= need) {
        if (in.size() > need) {
          *why = "bytes after the response";
          return Outcome::kMalformed;
        }
        *body = in.substr(head_end + 4);
        return Outcome::kOk;
      }
      ssize_t n = ::recv(fd, buf, sizeof buf, 0);
      if (n > 0) {
        in.append(buf, static_cast<size_t>(n));
        continue;
      }
      if (n == 0) {
        *why = "EOF after " + std::to_string(in.size()) + " bytes of the response";
        return Outcome::kEarlyClose;
      }
      if (errno == EINTR) continue;
      *why = std::string("recv: ") + std::strerror(errno) + " after " +
             std::to_string(in.size()) + " bytes";
      if (errno == EAGAIN || errno == EWOULDBLOCK) return Outcome::kTimeout;
      return Outcome::kReset;
    }
  }

  void run(int index) {
    int fd = -1;
    for (long i = 0; !stop_.load(); ++i) {
      if (fd < 0) {
        fd = connect();
        if (fd < 0) {
          ++counts_.connect_failures;
          counts_.sample(std::string("connect: ") + std::strerror(errno));
          std::this_thread::sleep_for(Millis(10));
          continue;
        }
        ++counts_.connections;
      }
      std::string target = "/load/" + std::to_string(index) + "/" + std::to_string(i);
      int status = 0;
      std::string body, why;
      bool close = false;
      Outcome outcome = exchange(fd, target, &status, &body, &close, &why);
      switch (outcome) {
        case Outcome::kOk:
          if (status != 200) {
            ++counts_.other_status;
            counts_.sample("status " + std::to_string(status) + " for " + target);
          } else if (body != target) {
            ++counts_.wrong_body;
            counts_.sample("body \"" + body.substr(0, 100) + "\" for " + target);
          } else {
            ++counts_.ok;
          }
          if (close && !close_each_) ++counts_.closed_by_proxy;
          break;
        case Outcome::kReset: ++counts_.resets; break;
        case Outcome::kEarlyClose: ++counts_.early_closes; break;
        case Outcome::kTimeout: ++counts_.timeouts; break;
        case Outcome::kMalformed: ++counts_.malformed; break;
      }
      if (outcome != Outcome::kOk) counts_.sample(target + ": " + why);
      if (outcome != Outcome::kOk || close || close_each_) {
        ::close(fd);
        fd = -1;
      }
    }
    if (fd >= 0) ::close(fd);
  }

  int port_;
  bool close_each_;
  std::atomic<bool> stop_{false};
  LoadCounts counts_;
  std::vector<std::thread> threads_;
};

class LifecycleTest : public ProxyTest {
 protected:
  // Starts a proxy and waits until its master says it serves (the harness only waits for the
  // port and the children), so that signals find the first generation in place.
  // 20 HUPs, each sent ~120 ms after the previous reload is done, while `connections` clients
  // send requests without pause; every request must get its 200.
  void reloadUnderLoad(int connections, bool close_each) {
    FakeBackend backend(FakeBackend::targetEcho());
    ASSERT_TRUE(backend.ok());
    ProxyOptions options = ProxyOptions::forBackends({backend.port()});
    options.workers = 2;
    Proxy* proxy = startProxy(options);
    ASSERT_NE(proxy, nullptr);

    Load load(proxy->port(), connections, close_each);
    ASSERT_TRUE(load.waitForOk(200, Millis(5000))) << load.counts().describe();
    constexpr int kReloads = 20;
    for (int i = 0; i < kReloads; ++i) {
      ASSERT_TRUE(proxy->signal(SIGHUP));
      std::string done = "reload done: generation " + std::to_string(i + 2) + ", 2 workers";
      ASSERT_TRUE(waitForLogLines(*proxy, done, 1, Millis(5000)))
          << "no \"" << done << "\" within 5 s\n" << proxy->errorLog();
      std::this_thread::sleep_for(Millis(120));  // the pace of the HUPs
    }
    // Load goes on until every retired worker has left.
    EXPECT_TRUE(waitFor([&] { return proxy->childPids().size() == 3; }, Millis(8000)))
        << "children: " << ::testing::PrintToString(proxy->childPids());
    long ok_at_end = load.counts().ok.load();
    EXPECT_TRUE(load.waitForOk(ok_at_end + 100, Millis(5000))) << load.counts().describe();
    load.stop();

    LoadCounts& c = load.counts();
    SCOPED_TRACE(c.describe());
    RecordProperty("requests", static_cast<int>(c.ok.load()));
    RecordProperty("connections", static_cast<int>(c.connections.load()));
    std::cerr << "[ lifecycle ] " << c.describe() << std::endl;
    EXPECT_EQ(c.other_status, 0);
    EXPECT_EQ(c.wrong_body, 0);
    EXPECT_EQ(c.resets, 0);
    EXPECT_EQ(c.early_closes, 0);
    EXPECT_EQ(c.timeouts, 0);
    EXPECT_EQ(c.malformed, 0);
    EXPECT_EQ(c.connect_failures, 0);
    EXPECT_GT(c.ok, 1000);
    if (!close_each) {
      // Every reload drains the old workers, which close each client's connection with
      // "Connection: close" on its next response: 20 x 32 when every connection is on an old
      // worker at each reload (a reconnect taken by a new worker before its promotion is not).
      EXPECT_GE(c.closed_by_proxy, kReloads * connections / 2)
          << "the drain did not close the keep-alive connections";
    }
    EXPECT_EQ(backend.requestCount(), static_cast<size_t>(c.ok.load()));

    std::string log = proxy->errorLog();
    EXPECT_EQ(countLines(log, "reloading"), static_cast<size_t>(kReloads));
    EXPECT_EQ(countLines(log, "reload done: generation"), static_cast<size_t>(kReloads));
    EXPECT_EQ(countLines(log, "reload done: generation 21, 2 workers"), 1u);
    EXPECT_THAT(linesContaining(log, {"[error]", "reload failed"}), IsEmpty());
  }
};

// ---------------------------------------------------------------------------------------------
// 1, 2: reloads under load

TEST_F(LifecycleTest, TwentyReloadsUnderKeepAliveLoadCostNoRequest) {
  reloadUnderLoad(32, false);
}

TEST_F(LifecycleTest, TwentyReloadsUnderConnectionCloseLoadCostNoRequest) {
  reloadUnderLoad(32, true);
}

// ---------------------------------------------------------------------------------------------
// Signals that come before the first generation serves (the master promotes it on its next
// tick, up to 100 ms after the workers are forked; without wait_serving the harness returns
// before that). A HUP then used to kill the master with an uncaught std::out_of_range
// (generations_.at(0) in reload()); a TERM did too when the workers were not all accepting yet
// on that tick (in stop()).

TEST_F(LifecycleTest, HupBeforeTheFirstGenerationServes) {
  FakeBackend backend(FakeBackend::targetEcho());
  ProxyOptions options = ProxyOptions::forBackends({backend.port()});
  options.wait_serving = false;
  Proxy* proxy = startProxy(options);
  ASSERT_NE(proxy, nullptr);
  bool early = countLines(proxy->errorLog(), "speedmimi started on") == 0;
  ASSERT_TRUE(proxy->signal(SIGHUP));
  ASSERT_TRUE(waitForLogLines(*proxy, "reload done: generation 2, 1 workers", 1, Millis(5000)))
      << proxy->errorLog() << proxy->stdoutLog();
  EXPECT_TRUE(proxy->running());
  Tally tally = fetchMany(proxy->port(), "/after/", 5);
  EXPECT_EQ(tally.statuses[200], 5);
  RecordProperty("signal_before_first_serves", early ? "yes" : "no");
}

TEST_F(LifecycleTest, TermBeforeTheFirstGenerationServes) {
  FakeBackend backend(FakeBackend::targetEcho());
  ProxyOptions options = ProxyOptions::forBackends({backend.port()});
  options.wait_serving = false;
  Proxy* proxy = startProxy(options);
  ASSERT_NE(proxy, nullptr);
  bool early = countLines(proxy->errorLog(), "speedmimi started on") == 0;
  ASSERT_TRUE(proxy->signal(SIGTERM));
  int status = 0;
  ASSERT_TRUE(proxy->waitExit(Millis(8000), &status)) << proxy->errorLog();
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0)
      << "wait status " << status << "\n" << proxy->stdoutLog();
  EXPECT_EQ(countLines(proxy->errorLog(), "speedmimi stopped"), 1u) << proxy->errorLog();
  RecordProperty("signal_before_first_serves", early ? "yes" : "no");
}

// ---------------------------------------------------------------------------------------------
// 3: an invalid configuration is refused with its exact location; the old one keeps serving.

TEST_F(LifecycleTest, InvalidConfigOnReloadIsRefusedWithItsLocation) {
  FakeBackend a(identify("a")), b(identify("b"));
  Proxy* proxy = startProxy(ProxyOptions::forBackends({a.port()}));
  ASSERT_NE(proxy, nullptr);
  Tally before = fetchMany(proxy->port(), "/before/", 5);
  ASSERT_EQ(before.bodies["a"], 5);

  // The new file would send everything to b, but has an unknown key at line 2, column 3.
  ProxyOptions broken = ProxyOptions::forBackends({b.port()});
  broken.port = proxy->port();
  std::string yaml = broken.toYaml();
  ASSERT_THAT(yaml, StartsWith("server:\n"));
  yaml.insert(std::string("server:\n").size(), "  no_such_key: 1\n");
  ASSERT_TRUE(proxy->writeConfig(yaml));
  const std::string location =
      proxy->configPath() + ":2:3: key 'no_such_key' is not known in 'server'";

  ASSERT_TRUE(proxy->signal(SIGHUP));
  ASSERT_TRUE(waitForLogLines(*proxy, "reload failed:", 1, Millis(5000))) << proxy->errorLog();
  std::string line = firstLine(proxy->errorLog(), "reload failed:");
  EXPECT_THAT(line, HasSubstr("[error]"));
  EXPECT_THAT(line, HasSubstr("reload failed: " + location + "; still serving generation 1"));
  EXPECT_EQ(countLines(proxy->errorLog(), "reload done"), 0u);

  Tally after = fetchMany(proxy->port(), "/after/", 10);
  EXPECT_THAT(after.errors, IsEmpty());
  EXPECT_EQ(after.statuses[200], 10);
  EXPECT_EQ(after.bodies["a"], 10);
  EXPECT_EQ(b.requestCount(), 0u) << "the refused configuration was applied";
  EXPECT_EQ(proxy->childPids().size(), 2u) << "the worker and the control process are kept";

  // `-s reload` reads the file first: it says where the error is and exits 1.
  Proxy::CommandResult r = proxy->runCommand({"-s", "reload"});
  EXPECT_FALSE(r.timed_out);
  EXPECT_EQ(r.exit_code, 1) << "stdout: " << r.out << "\nstderr: " << r.err;
  EXPECT_THAT(r.err, HasSubstr(location));
  EXPECT_THAT(r.out, Not(HasSubstr("reload done")));

  Tally last = fetchMany(proxy->port(), "/last/", 5);
  EXPECT_EQ(last.bodies["a"], 5);
  EXPECT_EQ(b.requestCount(), 0u);
}

// ---------------------------------------------------------------------------------------------
// 4: a valid change takes effect once `-s reload` returns.

TEST_F(LifecycleTest, ValidChangeTakesEffectWhenReloadReturns) {
  FakeBackend a(identify("a")), b(identify("b")), c(identify("c"));
  ProxyOptions options;
  options.workers = 2;
  options.backends["app"] = {spec("a", a), spec("b", b)};
  options.routes.push_back(route("main", "/", "app"));
  Proxy* proxy = startProxy(options);
  ASSERT_NE(proxy, nullptr);
  Tally before = fetchMany(proxy->port(), "/before/", 20);
  ASSERT_EQ(before.statuses[200], 20);
  ASSERT_GT(before.bodies["a"], 0);
  ASSERT_GT(before.bodies["b"], 0);
  // Before the reload, /new is just another path of "/".
  Tally new_before = fetchMany(proxy->port(), "/new/", 4);
  EXPECT_EQ(new_before.bodies["c"], 0);

  ProxyOptions next = options;
  next.backends["app"] = {spec("a", a)};  // b goes
  next.backends["fresh"] = {spec("c", c)};
  next.routes.push_back(route("newroute", "/new", "fresh"));
  ASSERT_TRUE(proxy->rewriteConfig(next));
  Proxy::CommandResult r = proxy->runCommand({"-s", "reload"});
  ASSERT_FALSE(r.timed_out);
  ASSERT_EQ(r.exit_code, 0) << "stdout: " << r.out << "\nstderr: " << r.err << "\n"
                            << proxy->errorLog();
  EXPECT_EQ(r.out, "speedmimi: reload done: generation 2\n");
  EXPECT_EQ(r.err, "");
  const size_t b_count = b.requestCount();

  Tally fresh = fetchMany(proxy->port(), "/new/", 10);
  EXPECT_THAT(fresh.errors, IsEmpty());
  EXPECT_EQ(fresh.statuses[200], 10);
  EXPECT_EQ(fresh.bodies["c"], 10) << "the new route does not answer from the new backend";
  EXPECT_EQ(countTargets(c, "/new/"), 10u);

  constexpr int kN = 40;
  Tally main = fetchMany(proxy->port(), "/main/", kN);
  EXPECT_THAT(main.errors, IsEmpty());
  EXPECT_EQ(main.statuses[200], kN);
  EXPECT_EQ(main.bodies["a"], kN);
  EXPECT_EQ(b.requestCount(), b_count) << "the removed backend still gets requests";
  EXPECT_EQ(countTargets(b, "/main/"), 0u);
  EXPECT_EQ(countLines(proxy->errorLog(), "reload done: generation 2, 2 workers"), 1u);
}

// The worker of the old generation, stopped (SIGSTOP) so that it cannot see its SIGQUIT: while
// it could still accept, the reload is not done. `-s reload` runs in a thread; returns what it
// printed and when it returned.
struct ReloadWithAStoppedWorker {
  Proxy::CommandResult result;
  Clock::time_point returned{};
  Clock::time_point continued{};  // SIGCONT sent (zero: the worker was left stopped)
};

ReloadWithAStoppedWorker reloadWithAStoppedWorker(Proxy& proxy, Millis stopped_for) {
  ReloadWithAStoppedWorker out;
  pid_t old_worker = 0;
  for (pid_t child : processesWithParent(proxy.pid())) {
    if (cmdline(child) == "speedmimi: worker process") old_worker = child;
  }
  if (old_worker == 0) {
    ADD_FAILURE() << "no worker process";
    return out;
  }
  std::vector<pid_t> before = processesWithParent(proxy.pid());
  EXPECT_EQ(kill(old_worker, SIGSTOP), 0);
  std::thread reload([&] {
    out.result = proxy.runCommand({"-s", "reload"});
    out.returned = Clock::now();
  });
  // Once the new worker runs (it accepts soon after), the old one stays stopped `stopped_for`.
  bool forked = waitFor(
      [&] {
        for (pid_t child : processesWithParent(proxy.pid())) {
          if (std::find(before.begin(), before.end(), child) == before.end() &&
              cmdline(child) == "speedmimi: worker process") {
            return true;
          }
        }
        return false;
      },
      Millis(5000));
  EXPECT_TRUE(forked) << "no worker of the new generation";
  std::this_thread::sleep_for(stopped_for);
  out.continued = Clock::now();
  EXPECT_EQ(kill(old_worker, SIGCONT), 0);
  reload.join();
  return out;
}

// A connection made once `-s reload` returned never reaches an old worker: the reload is done
// only after every retired worker stopped accepting. (An old worker woken for a connection
// before it handled its SIGQUIT used to serve it with the old configuration.)
TEST_F(LifecycleTest, ReloadIsDoneOnlyOnceTheOldWorkersStopAccepting) {
  FakeBackend a(identify("a")), b(identify("b"));
  Proxy* proxy = startProxy(ProxyOptions::forBackends({a.port()}));
  ASSERT_NE(proxy, nullptr);
  ASSERT_EQ(fetchMany(proxy->port(), "/before/", 3).bodies["a"], 3);
  ProxyOptions next = ProxyOptions::forBackends({b.port()});
  next.port = proxy->port();
  ASSERT_TRUE(proxy->rewriteConfig(next));

  ReloadWithAStoppedWorker r = reloadWithAStoppedWorker(*proxy, Millis(400));
  ASSERT_EQ(r.result.exit_code, 0) << r.result.out << r.result.err << proxy->errorLog();
  EXPECT_GT(r.returned, r.continued)
      << "the reload was answered " << msSince(r.returned, r.continued)
      << " ms before the old worker, which could still accept, was continued";
  EXPECT_EQ(countLines(proxy->errorLog(), "still accepting"), 0u) << proxy->errorLog();
  Tally after = fetchMany(proxy->port(), "/after/", 10);
  EXPECT_EQ(after.bodies["b"], 10) << "served with the old configuration: "
                                   << ::testing::PrintToString(after.bodies);
}

// A retired worker that does not stop accepting (stopped, hung) holds a reload up for 1 s, not
// forever: then the reload is done, with a warning.
TEST_F(LifecycleTest, AStoppedOldWorkerHoldsTheReloadUpForOneSecondAtMost) {
  FakeBackend a(identify("a")), b(identify("b"));
  Proxy* proxy = startProxy(ProxyOptions::forBackends({a.port()}));
  ASSERT_NE(proxy, nullptr);
  ProxyOptions next = ProxyOptions::forBackends({b.port()});
  next.port = proxy->port();
  ASSERT_TRUE(proxy->rewriteConfig(next));

  ReloadWithAStoppedWorker r = reloadWithAStoppedWorker(*proxy, Millis(3000));
  ASSERT_EQ(r.result.exit_code, 0) << r.result.out << r.result.err << proxy->errorLog();
  EXPECT_EQ(r.result.out, "speedmimi: reload done: generation 2\n");
  EXPECT_LT(r.returned, r.continued) << "the reload waited for the stopped worker, "
                                      << msSince(r.continued, r.returned) << " ms past 3 s";
  EXPECT_EQ(countLines(proxy->errorLog(), "reload: retired workers still accepting after 1 s: 1"),
            1u)
      << proxy->errorLog();
}

// ---------------------------------------------------------------------------------------------
// 5: a backend that active health checks took out is still out right after a reload.

TEST_F(LifecycleTest, DownBackendStaysDownAcrossReload) {
  auto a_health = std::make_shared<std::atomic<int>>(200);
  FakeBackend a(identify("a", a_health)), b(identify("b"));
  HealthCheckSpec hc;
  hc.interval = "200ms";
  hc.timeout = "1s";  // a slow probe of b on a loaded machine would take b down (failures: 1)
  hc.failures = 1;
  hc.successes = 2;
  BackendSpec sa = spec("a", a), sb = spec("b", b);
  sa.health_check = hc;
  sb.health_check = hc;
  ProxyOptions options;
  options.workers = 2;
  options.backends["app"] = {sa, sb};
  options.routes.push_back(route("main", "/", "app"));
  Proxy* proxy = startProxy(options);
  ASSERT_NE(proxy, nullptr);

  ASSERT_TRUE(waitFor([&] { return countTargets(a, "/health") >= 1; }, Millis(3000)))
      << "the control process does not probe a";
  Tally up = fetchMany(proxy->port(), "/up/", 10);
  ASSERT_GT(up.bodies["a"], 0) << "a does not get requests to begin with";

  a_health->store(500);
  ASSERT_TRUE(waitForLogLines(*proxy, "backend a of app is down", 1, Millis(5000)))
      << proxy->errorLog();
  // A request picked just before the line may still land on a: let it.
  std::this_thread::sleep_for(Millis(100));
  const size_t a_down = countTraffic(a);
  Tally down = fetchMany(proxy->port(), "/down/", 20);
  EXPECT_EQ(down.bodies["b"], 20);
  ASSERT_EQ(countTraffic(a), a_down) << "a still gets requests while down";

  // A reload that does not touch the backends.
  ProxyOptions next = options;
  next.routes.push_back(route("extra", "/extra", "app"));
  ASSERT_TRUE(proxy->rewriteConfig(next));
  const size_t probes_before = countTargets(a, "/health");
  Proxy::CommandResult r = proxy->runCommand({"-s", "reload"});
  ASSERT_EQ(r.exit_code, 0) << r.out << r.err << proxy->errorLog();
  Tally after = fetchMany(proxy->port(), "/after/", 20);
  Tally extra = fetchMany(proxy->port(), "/extra/", 10);
  EXPECT_THAT(after.errors, IsEmpty());
  EXPECT_EQ(after.bodies["b"], 20);
  EXPECT_EQ(extra.bodies["b"], 10);
  EXPECT_EQ(countTraffic(a), a_down) << "the reload brought the down backend back";

  // The new control process goes on probing a, and a stays down.
  EXPECT_TRUE(waitFor([&] { return countTargets(a, "/health") >= probes_before + 2; },
                      Millis(3000)))
      << "a is no longer probed after the reload";
  std::string log = proxy->errorLog();
  EXPECT_EQ(countLines(log, "backend a of app is down"), 1u);
  EXPECT_EQ(countLines(log, "backend a of app is up"), 0u);
  EXPECT_EQ(countLines(log, "backend b of app is down"), 0u);
}

// ---------------------------------------------------------------------------------------------
// 6: a WebSocket tunnel and an event stream outlive the reload until shutdown_timeout.

constexpr const char* kWsKey = "x3JJHMbDL1EzLkh9GBhXDw==";

TEST_F(LifecycleTest, TunnelAndEventStreamOutliveReloadUntilShutdownTimeout) {
  auto feed = std::make_shared<EventFeed>();
  Handler ws = FakeBackend::webSocketEcho();
  Handler sse = FakeBackend::sse(feed);
  FakeBackend backend([ws, sse](const Request& request, Responder& out) {
    if (request.target == "/chat") return ws(request, out);
    if (request.target == "/events") return sse(request, out);
    out.send(buildResponse(200, {}, "plain"));
  });
  ProxyOptions options = ProxyOptions::forBackends({backend.port()});
  // Long enough for the checks a second after the reload to fit with a margin: the old worker
  // drains from just before `-s reload` returns, which (ASan's leak check at its exit) can be
  // a good part of a second later.
  options.shutdown_timeout = "4s";
  Proxy* proxy = startProxy(options);
  ASSERT_NE(proxy, nullptr);

  Client tunnel(proxy->port());
  ASSERT_TRUE(tunnel.sendRaw(buildRequest("GET", "/chat",
                                          {{"Host", "ws.test"},
                                           {"Upgrade", "websocket"},
                                           {"Connection", "Upgrade"},
                                           {"Sec-WebSocket-Key", kWsKey},
                                           {"Sec-WebSocket-Version", "13"}},
                                          "", Framing::kNone)));
  auto handshake = tunnel.readResponseHead();
  ASSERT_TRUE(handshake) << tunnel.error();
  ASSERT_EQ(handshake->status, 101);
  auto echo = [&](const std::string& payload) {
    ASSERT_TRUE(tunnel.sendRaw(encodeWsFrame(kWsText, payload, true))) << tunnel.error();
    auto frame = tunnel.readWsFrame(Millis(3000));
    ASSERT_TRUE(frame) << tunnel.error();
    EXPECT_EQ(frame->opcode, kWsText);
    EXPECT_EQ(frame->payload, payload);
  };
  echo("before the reload");

  Client stream(proxy->port());
  ASSERT_TRUE(stream.sendRaw(buildRequest("GET", "/events", {{"Accept", "text/event-stream"}},
                                          "", Framing::kNone)));
  feed->push("data: one\n\n");
  auto head = stream.readResponseHead(Millis(5000));
  ASSERT_TRUE(head) << stream.error();
  ASSERT_EQ(head->status, 200);
  std::string events;
  auto has = [](std::string what) {
    return [what](const std::string& b) { return b.find(what) != std::string::npos; };
  };
  ASSERT_TRUE(stream.readBodyUntil(&events, has("data: one\n\n"), Millis(3000)))
      << stream.error();

  Proxy::CommandResult r = proxy->runCommand({"-s", "reload"});
  ASSERT_EQ(r.exit_code, 0) << r.out << r.err << proxy->errorLog();
  auto reloaded_at = Clock::now();

  // Both keep flowing after the reload...
  echo("after the reload");
  feed->push("data: two\n\n");
  ASSERT_TRUE(stream.readBodyUntil(&events, has("data: two\n\n"), Millis(1000)))
      << stream.error();
  EXPECT_EQ(events, "data: one\n\ndata: two\n\n");
  std::this_thread::sleep_for(Millis(1000));
  echo("a second after the reload");
  feed->push("data: three\n\n");
  ASSERT_TRUE(stream.readBodyUntil(&events, has("data: three\n\n"), Millis(800)))
      << stream.error();
  // New connections are served meanwhile.
  Tally fresh = fetchMany(proxy->port(), "/fresh/", 3);
  EXPECT_EQ(fresh.bodies["plain"], 3);

  // ...until shutdown_timeout (4 s) after the old worker began to drain.
  EXPECT_TRUE(tunnel.waitForClose(Millis(6000))) << "the tunnel outlived shutdown_timeout";
  auto tunnel_closed = Clock::now() - reloaded_at;
  EXPECT_TRUE(stream.waitForClose(Millis(1000))) << "the event stream outlived shutdown_timeout";
  auto stream_closed = Clock::now() - reloaded_at;
  EXPECT_GE(tunnel_closed, Millis(3000));
  EXPECT_LE(tunnel_closed, Millis(5500));
  EXPECT_LE(stream_closed, Millis(5500));
  EXPECT_TRUE(waitForLogLines(*proxy, "shutdown_timeout passed; closing 2 connections", 1,
                              Millis(2000)))
      << proxy->errorLog();
  feed->finish();
}

// ---------------------------------------------------------------------------------------------
// 7: binary upgrade on USR2, and one whose new binary fails.

TEST_F(LifecycleTest, BinaryUpgradeUnderKeepAliveLoad) {
  FakeBackend backend(FakeBackend::targetEcho());
  ProxyOptions options = ProxyOptions::forBackends({backend.port()});
  options.workers = 2;
  options.shutdown_timeout = "3s";
  options.private_binary = true;
  Proxy* proxy = startProxy(options);
  ASSERT_NE(proxy, nullptr);
  const pid_t old_master = proxy->pid();
  ASSERT_EQ(proxy->pidFromFile(), old_master);
  const std::string oldbin = proxy->pidFilePath() + ".oldbin";

  Load load(proxy->port(), 12, false);
  ASSERT_TRUE(load.waitForOk(200, Millis(5000))) << load.counts().describe();
  std::this_thread::sleep_for(Millis(1000));  // load before the upgrade
  ASSERT_TRUE(proxy->signal(SIGUSR2));

  pid_t new_master = 0;
  ASSERT_TRUE(waitFor(
      [&] {
        new_master = proxy->pidFromFile();
        return new_master != 0 && new_master != old_master;
      },
      Millis(10'000)))
      << "the pid file still names " << proxy->pidFromFile() << "\n" << proxy->errorLog();
  // From now on the harness stops the new master (and reaps the old one, its child, when it
  // exits); processGone() counts the old one as gone once it is a zombie.
  proxy->adoptMaster(new_master);
  ASSERT_TRUE(waitFor([&] { return processGone(old_master); }, Millis(10'000)))
      << "the old master " << old_master << " did not exit\n" << proxy->errorLog();
  long ok_after = load.counts().ok.load();
  std::this_thread::sleep_for(Millis(1000));  // load on the new master alone
  EXPECT_TRUE(load.waitForOk(ok_after + 200, Millis(5000))) << load.counts().describe();
  load.stop();

  LoadCounts& c = load.counts();
  SCOPED_TRACE(c.describe());
  std::cerr << "[ lifecycle ] " << c.describe() << std::endl;
  EXPECT_EQ(c.errors(), 0);
  EXPECT_GT(c.ok, 500);
  EXPECT_GE(c.closed_by_proxy, 1) << "the old workers did not close their keep-alive connections";

  EXPECT_EQ(proxy->pidFromFile(), new_master);
  EXPECT_FALSE(std::filesystem::exists(oldbin)) << oldbin << " is left behind";
  EXPECT_TRUE(proxy->running());
  EXPECT_THAT(cmdline(new_master), StartsWith("speedmimi: master process " + proxy->binary()));
  std::vector<pid_t> children = processesWithParent(new_master);
  EXPECT_EQ(children.size(), 3u) << "2 workers and a control process";
  for (pid_t child : children) {
    EXPECT_THAT(cmdline(child), testing::AnyOf(StartsWith("speedmimi: worker process"),
                                               StartsWith("speedmimi: control process")));
  }
  Tally after = fetchMany(proxy->port(), "/after/", 10);
  EXPECT_EQ(after.statuses[200], 10);
  std::string log = proxy->errorLog();
  EXPECT_EQ(countLines(log, "binary upgrade: the new master " + std::to_string(new_master) +
                                " serves; stopping gracefully"),
            1u)
      << log;
  EXPECT_THAT(linesContaining(log, {"[error]", "binary upgrade failed"}), IsEmpty());
}

TEST_F(LifecycleTest, FailedBinaryUpgradeKeepsTheOldMasterServing) {
  FakeBackend backend(FakeBackend::targetEcho());
  ProxyOptions options = ProxyOptions::forBackends({backend.port()});
  options.private_binary = true;
  Proxy* proxy = startProxy(options);
  ASSERT_NE(proxy, nullptr);
  const pid_t master = proxy->pid();
  const std::string bin = proxy->binary();
  const std::string saved = bin + ".saved";

  // The file on disk is now a script that fails at once.
  ASSERT_EQ(rename(bin.c_str(), saved.c_str()), 0) << std::strerror(errno);
  {
    std::ofstream script(bin + ".tmp");
    script << "#!/bin/sh\nexit 1\n";
  }
  ASSERT_EQ(chmod((bin + ".tmp").c_str(), 0755), 0);
  ASSERT_EQ(rename((bin + ".tmp").c_str(), bin.c_str()), 0);

  ASSERT_TRUE(proxy->signal(SIGUSR2));
  ASSERT_TRUE(waitForLogLines(*proxy, "binary upgrade failed", 1, Millis(5000)))
      << proxy->errorLog();
  std::string line = firstLine(proxy->errorLog(), "binary upgrade failed");
  EXPECT_THAT(line, HasSubstr("[error]"));
  EXPECT_THAT(line, HasSubstr("binary upgrade failed: the new binary exited with code 1; "
                              "still serving"));
  EXPECT_EQ(proxy->pidFromFile(), master);
  EXPECT_FALSE(std::filesystem::exists(proxy->pidFilePath() + ".oldbin"));
  EXPECT_TRUE(proxy->running());

  Tally after = fetchMany(proxy->port(), "/after/", 10);
  EXPECT_THAT(after.errors, IsEmpty());
  EXPECT_EQ(after.statuses[200], 10);
  // The control process, stopped for the new binary, comes back.
  EXPECT_TRUE(waitFor(
      [&] {
        std::vector<pid_t> children = processesWithParent(master);
        return std::count_if(children.begin(), children.end(), [](pid_t p) {
                 return cmdline(p).rfind("speedmimi: control process", 0) == 0;
               }) == 1 &&
               children.size() == 2;
      },
      Millis(5000)))
      << "children: " << ::testing::PrintToString(processesWithParent(master));

  ASSERT_EQ(rename(saved.c_str(), bin.c_str()), 0) << std::strerror(errno);
  EXPECT_TRUE(proxy->stop());
}

// ---------------------------------------------------------------------------------------------
// 8: the master killed with SIGKILL takes its children with it; the port is free again.

TEST_F(LifecycleTest, KilledMasterLeavesNoChildrenAndThePortFree) {
  FakeBackend backend(FakeBackend::targetEcho());
  ProxyOptions options = ProxyOptions::forBackends({backend.port()});
  options.workers = 2;
  Proxy* proxy = startProxy(options);
  ASSERT_NE(proxy, nullptr);
  const pid_t master = proxy->pid();
  std::vector<pid_t> children = processesWithParent(master);
  ASSERT_EQ(children.size(), 3u) << "2 workers and a control process";

  // An idle keep-alive connection: the proxy closes it at once when the master is gone (a FIN),
  // and the client closes its end in turn, as clients do. (A client that keeps its end open
  // holds the worker in its lingering close for 2 s more.)
  Client idle(proxy->port());
  ASSERT_TRUE(idle.sendRaw(get("/idle")));
  auto response = idle.readResponse();
  ASSERT_TRUE(response) << idle.error();
  ASSERT_EQ(response->status, 200);
  ASSERT_FALSE(response->header("Connection").has_value()) << response->raw_head;

  ASSERT_TRUE(proxy->signal(SIGKILL));
  auto killed_at = Clock::now();
  EXPECT_TRUE(idle.waitForClose(Millis(1000))) << "the idle connection outlived the master";
  EXPECT_LT(Clock::now() - killed_at, Millis(1000));
  if (idle.stream() != nullptr) idle.stream()->close();
  EXPECT_TRUE(waitFor(
      [&] {
        return std::all_of(children.begin(), children.end(),
                           [](pid_t p) { return processGone(p); });
      },
      Millis(2000)))
      << "children left 2 s after the master's death: "
      << ::testing::PrintToString(children);
  int status = 0;
  ASSERT_TRUE(proxy->waitExit(Millis(2000), &status));
  EXPECT_TRUE(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL) << status;
  EXPECT_GE(countLines(proxy->errorLog(), "the master process is gone"), 3u)
      << proxy->errorLog();

  // A fresh start binds the same port.
  ProxyOptions again = options;
  again.port = proxy->port();
  Proxy* second = startProxy(again);
  ASSERT_NE(second, nullptr);
  Tally tally = fetchMany(second->port(), "/again/", 5);
  EXPECT_THAT(tally.errors, IsEmpty());
  EXPECT_EQ(tally.statuses[200], 5);
}

// ---------------------------------------------------------------------------------------------
// 9: server.user

TEST_F(LifecycleTest, ChildrenRunAsServerUser) {
  if (geteuid() != 0) GTEST_SKIP() << "needs root to change users";
  passwd* pw = getpwnam("nobody");
  ASSERT_NE(pw, nullptr) << "no user nobody";
  const std::string uid = std::to_string(pw->pw_uid);
  const std::string gid = std::to_string(pw->pw_gid);

  FakeBackend backend(FakeBackend::targetEcho());
  ProxyOptions options = ProxyOptions::forBackends({backend.port()});
  options.workers = 2;
  options.user = "nobody";
  Proxy* proxy = startProxy(options);
  ASSERT_NE(proxy, nullptr);

  EXPECT_EQ(statusField(proxy->pid(), "Uid"), "0\t0\t0\t0") << "the master stays root";
  std::vector<pid_t> children = processesWithParent(proxy->pid());
  ASSERT_EQ(children.size(), 3u);
  for (pid_t child : children) {
    SCOPED_TRACE(cmdline(child));
    EXPECT_EQ(statusField(child, "Uid"), uid + "\t" + uid + "\t" + uid + "\t" + uid);
    EXPECT_EQ(statusField(child, "Gid"), gid + "\t" + gid + "\t" + gid + "\t" + gid);
  }

  Tally tally = fetchMany(proxy->port(), "/as-nobody/", 10);
  EXPECT_THAT(tally.errors, IsEmpty());
  EXPECT_EQ(tally.statuses[200], 10);
  EXPECT_TRUE(waitFor(
      [&] {
        return linesContaining(proxy->accessLog(), {"/as-nobody/"}).size() == 10;
      },
      Millis(3000)))
      << "access log:\n" << proxy->accessLog();
  EXPECT_THAT(linesContaining(proxy->errorLog(), {"[error]", "respawning"}), IsEmpty());
}

// ---------------------------------------------------------------------------------------------
// 10: process titles, including a draining worker's.

TEST_F(LifecycleTest, ProcessTitles) {
  FakeBackend backend(FakeBackend::targetEcho());
  ProxyOptions options = ProxyOptions::forBackends({backend.port()});
  options.workers = 2;
  Proxy* proxy = startProxy(options);
  ASSERT_NE(proxy, nullptr);

  EXPECT_THAT(cmdline(proxy->pid()), StartsWith("speedmimi: master process"));
  EXPECT_THAT(cmdline(proxy->pid()), HasSubstr("-c " + proxy->configPath()));
  std::vector<pid_t> children = processesWithParent(proxy->pid());
  ASSERT_EQ(children.size(), 3u);
  int workers = 0, controls = 0;
  for (pid_t child : children) {
    std::string title = cmdline(child);
    workers += title == "speedmimi: worker process";
    controls += title == "speedmimi: control process";
  }
  EXPECT_EQ(workers, 2) << ::testing::PrintToString(children);
  EXPECT_EQ(controls, 1);

  // An idle keep-alive connection keeps its old worker draining after a reload: "(retiring)".
  Client idle(proxy->port());
  ASSERT_TRUE(idle.sendRaw(get("/first")));
  auto first = idle.readResponse();
  ASSERT_TRUE(first) << idle.error();
  ASSERT_EQ(first->status, 200);
  Proxy::CommandResult r = proxy->runCommand({"-s", "reload"});
  ASSERT_EQ(r.exit_code, 0) << r.out << r.err;
  pid_t retiring = 0;
  EXPECT_TRUE(waitFor(
      [&] {
        for (pid_t child : processesWithParent(proxy->pid())) {
          if (cmdline(child) == "speedmimi: worker process (retiring)") {
            retiring = child;
            return true;
          }
        }
        return false;
      },
      Millis(3000)));
  // Its next request is answered, with "Connection: close", and the worker leaves.
  ASSERT_TRUE(idle.sendRaw(get("/second")));
  auto second = idle.readResponse();
  ASSERT_TRUE(second) << idle.error();
  EXPECT_EQ(second->status, 200);
  EXPECT_EQ(second->body, "/second");
  EXPECT_TRUE(containsIgnoreCase(second->header("Connection").value_or(""), "close"))
      << second->raw_head;
  EXPECT_TRUE(idle.waitForClose(Millis(2000)));
  if (retiring != 0) {
    EXPECT_TRUE(waitFor([&] { return processGone(retiring); }, Millis(3000)));
  }
  // The master reaps the retired worker (until then it is a zombie, still its child).
  EXPECT_TRUE(waitFor([&] { return processesWithParent(proxy->pid()).size() == 3; }, Millis(3000)))
      << ::testing::PrintToString(processesWithParent(proxy->pid()));
}

}  // namespace
}  // namespace speedmimi::test
