// Active health checks (DESIGN §6): the up/down state machine, and one probe against a tiny
// local server in a thread (2xx/3xx pass; error status, refusal, silence and garbage fail).
#include "upstream/health.h"

#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <openssl/ssl.h>
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "event/tls.h"
#include "t/helpers/test_certs.h"

namespace speedmimi::upstream {
namespace {

using std::chrono::milliseconds;
using SteadyClock = std::chrono::steady_clock;

// ---------------------------------------------------------------------------------------------
// applyProbeResult

class ApplyProbeResult : public ::testing::Test {
 protected:
  Health health() const { return static_cast<Health>(state_.health.load()); }
  void setHealth(Health h) { state_.health.store(static_cast<int>(h)); }
  // failures = 3, successes = 2 unless given; the monotonic clock is mono_now_ms_.
  std::optional<Health> probe(bool passed, const std::string& reason, int64_t now = 1000,
                              int failures = 3, int successes = 2) {
    return applyProbeResult(state_, record_, history_, passed, reason, failures, successes, now,
                            mono_now_ms_);
  }

  int64_t mono_now_ms_ = 500'000;
  BackendState state_;
  core::HealthRecord record_;
  core::HealthHistory history_;
};

TEST_F(ApplyProbeResult, UnknownGoesDownOnlyAfterTheConfiguredFailures) {
  ASSERT_EQ(health(), Health::kUnknown);
  EXPECT_EQ(probe(false, "status 500"), std::nullopt);
  EXPECT_EQ(probe(false, "status 500"), std::nullopt);
  EXPECT_EQ(health(), Health::kUnknown);
  EXPECT_EQ(record_.consecutive_failures.load(), 2);
  EXPECT_EQ(probe(false, "timed out"), Health::kDown);
  EXPECT_EQ(health(), Health::kDown);
  EXPECT_STREQ(record_.reason, "timed out");
  // Staying down is not a change.
  EXPECT_EQ(probe(false, "connection refused"), std::nullopt);
  EXPECT_STREQ(record_.reason, "timed out") << "the reason is that of the last change";
}

TEST_F(ApplyProbeResult, UnknownGoesUpAfterTheConfiguredPasses) {
  EXPECT_EQ(probe(true, "status 200"), std::nullopt);
  EXPECT_EQ(health(), Health::kUnknown);
  EXPECT_EQ(probe(true, "status 204"), Health::kUp);
  EXPECT_EQ(health(), Health::kUp);
  EXPECT_STREQ(record_.reason, "status 204");
  EXPECT_EQ(probe(true, "status 200"), std::nullopt);
}

TEST_F(ApplyProbeResult, DownComesBackUpAfterTheConfiguredPasses) {
  for (int i = 0; i < 3; ++i) probe(false, "status 503");
  ASSERT_EQ(health(), Health::kDown);
  EXPECT_EQ(probe(true, "status 200"), std::nullopt);
  EXPECT_EQ(health(), Health::kDown);
  EXPECT_EQ(probe(true, "status 301"), Health::kUp);
  EXPECT_EQ(health(), Health::kUp);
  EXPECT_STREQ(record_.reason, "status 301");
  EXPECT_EQ(record_.consecutive_failures.load(), 0);
}

// Slow start: down -> up is a comeback, marked at the monotonic clock of the probe that brought
// the backend up (not at the first pass, and not at the wall clock).
TEST_F(ApplyProbeResult, UpAgainAfterDownStartsTheSlowStart) {
  for (int i = 0; i < 3; ++i) probe(false, "status 503");
  ASSERT_EQ(health(), Health::kDown);
  mono_now_ms_ = 700'000;
  probe(true, "status 200", 9'000);
  EXPECT_EQ(state_.ramp_start_ms.load(), 0) << "one pass of the 2 needed";
  mono_now_ms_ = 700'250;
  ASSERT_EQ(probe(true, "status 200", 9'250), Health::kUp);
  EXPECT_EQ(state_.ramp_start_ms.load(), 700'250);
  mono_now_ms_ = 800'000;
  probe(true, "status 200", 9'500);
  EXPECT_EQ(state_.ramp_start_ms.load(), 700'250) << "staying up is no new comeback";
}

// An unknown backend (the first checks after a start) was taking its full share: unknown -> up
// starts no ramp, nor does going down.
TEST_F(ApplyProbeResult, UnknownToUpAndGoingDownStartNoSlowStart) {
  probe(true, "status 200");
  ASSERT_EQ(probe(true, "status 200"), Health::kUp);
  EXPECT_EQ(state_.ramp_start_ms.load(), 0);
  for (int i = 0; i < 3; ++i) probe(false, "status 500");
  ASSERT_EQ(health(), Health::kDown);
  EXPECT_EQ(state_.ramp_start_ms.load(), 0);
}

TEST_F(ApplyProbeResult, APassResetsTheFailureCount) {
  setHealth(Health::kUp);
  probe(false, "status 500");
  probe(false, "status 500");
  EXPECT_EQ(probe(true, "status 200"), std::nullopt);
  EXPECT_EQ(record_.consecutive_failures.load(), 0);
  EXPECT_EQ(probe(false, "status 500"), std::nullopt);
  EXPECT_EQ(probe(false, "status 500"), std::nullopt);
  EXPECT_EQ(health(), Health::kUp) << "2 failures since the pass, 3 needed";
  EXPECT_EQ(probe(false, "status 502"), Health::kDown);
}

TEST_F(ApplyProbeResult, AFailureResetsThePassCount) {
  for (int i = 0; i < 3; ++i) probe(false, "status 500");
  ASSERT_EQ(health(), Health::kDown);
  probe(true, "status 200");
  probe(false, "status 500");
  EXPECT_EQ(record_.consecutive_successes.load(), 0);
  EXPECT_EQ(probe(true, "status 200"), std::nullopt);
  EXPECT_EQ(health(), Health::kDown);
  EXPECT_EQ(probe(true, "status 200"), Health::kUp);
}

TEST_F(ApplyProbeResult, OneFailureAndOnePassWithThresholdsOfOne) {
  setHealth(Health::kUp);
  EXPECT_EQ(probe(false, "refused", 1, 1, 1), Health::kDown);
  EXPECT_EQ(probe(true, "status 200", 2, 1, 1), Health::kUp);
  EXPECT_EQ(probe(false, "refused", 3, 1, 1), Health::kDown);
}

TEST_F(ApplyProbeResult, RecordsTheTimeAndOutcomeOfEveryCheck) {
  probe(true, "status 200", 1111);
  EXPECT_EQ(record_.last_check_unix_ms.load(), 1111);
  EXPECT_EQ(record_.last_passed.load(), 1);
  probe(false, "status 500", 2222);
  EXPECT_EQ(record_.last_check_unix_ms.load(), 2222);
  EXPECT_EQ(record_.last_passed.load(), 0);
}

TEST_F(ApplyProbeResult, ALongReasonIsTruncatedAndTerminated) {
  std::string reason(500, 'r');
  setHealth(Health::kUp);
  ASSERT_EQ(probe(false, reason, 1, 1, 1), Health::kDown);
  EXPECT_EQ(std::string(record_.reason), reason.substr(0, sizeof(record_.reason) - 1));
}

// Each change, and only a change, goes into the history with its time and reason.
TEST_F(ApplyProbeResult, EveryChangeIsAppendedToTheHistory) {
  probe(false, "check failed: status 500", 1000, 1, 1);
  probe(false, "check failed: timed out", 2000, 1, 1);  // still down: not a change
  probe(true, "check passed: status 200", 3000, 1, 1);
  std::vector<core::HealthEvent> events = core::healthEvents(history_);
  ASSERT_EQ(events.size(), 2u);
  EXPECT_EQ(events[0].unix_ms, 3000);  // newest first
  EXPECT_EQ(events[0].health, static_cast<int32_t>(Health::kUp));
  EXPECT_STREQ(events[0].reason, "check passed: status 200");
  EXPECT_EQ(events[1].unix_ms, 1000);
  EXPECT_EQ(events[1].health, static_cast<int32_t>(Health::kDown));
  EXPECT_STREQ(events[1].reason, "check failed: status 500");
}

TEST(HealthName, EveryStatus) {
  EXPECT_STREQ(healthName(Health::kUp), "up");
  EXPECT_STREQ(healthName(Health::kDown), "down");
  EXPECT_STREQ(healthName(Health::kUnknown), "unknown");
}

// ---------------------------------------------------------------------------------------------
// PassiveHealthWatch: the control process records the workers' passive take-outs.

class PassiveWatch : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string error;
    zone_ = core::Zone::create(4 << 20, 4, error);
    ASSERT_NE(zone_, nullptr) << error;
    add("app", "a");
    add("app", "b");
    add("solo", "s");
  }
  void add(const std::string& upstream, const std::string& id) {
    core::BackendConfig b;
    b.id = id;
    b.host = "127.0.0.1";
    b.port = 8080;
    b.max_fails = 2;
    b.fail_timeout = milliseconds(10'000);
    core::BackendAddress address;
    auto* v4 = reinterpret_cast<sockaddr_in*>(&address.storage);
    v4->sin_family = AF_INET;
    v4->sin_port = htons(8080);
    address.length = sizeof(sockaddr_in);
    ASSERT_TRUE(zone_->addBackend(upstream, b, address).ok());
  }
  core::BackendSlot& slot(const char* upstream, const char* id) {
    return *zone_->find(upstream, id);
  }
  size_t indexOf(const core::BackendSlot& s) const {
    return static_cast<size_t>(&s - zone_->slot(0));
  }
  std::vector<core::HealthEvent> history(const char* upstream, const char* id) const {
    return zone_->healthHistory(static_cast<size_t>(zone_->find(upstream, id) - zone_->slot(0)));
  }

  std::unique_ptr<core::Zone> zone_;
  PassiveHealthWatch watch_;
};

TEST_F(PassiveWatch, ATakeOutAndItsEndAreRecordedOnceEach) {
  core::BackendSlot& a = slot("app", "a");
  a.runtime.health.store(static_cast<int>(Health::kUp));
  EXPECT_TRUE(watch_.update(*zone_, 1000, 50'000).empty());
  // A worker's max_fails-th failure at 1500 takes it out until 11500.
  a.runtime.passive_down_until_ms.store(11'500);
  std::vector<PassiveHealthWatch::Change> changes = watch_.update(*zone_, 1600, 50'600);
  ASSERT_EQ(changes.size(), 1u);
  EXPECT_EQ(changes[0].index, indexOf(a));
  EXPECT_TRUE(changes[0].out);
  EXPECT_TRUE(watch_.update(*zone_, 1700, 50'700).empty()) << "still out: not a change";
  a.runtime.passive_down_until_ms.store(12'000);  // another failure while out moved it
  EXPECT_TRUE(watch_.update(*zone_, 1800, 50'800).empty());
  changes = watch_.update(*zone_, 12'000, 61'000);  // fail_timeout over
  ASSERT_EQ(changes.size(), 1u);
  EXPECT_FALSE(changes[0].out);

  std::vector<core::HealthEvent> events = history("app", "a");
  ASSERT_EQ(events.size(), 2u);
  EXPECT_EQ(events[0].unix_ms, 61'000);
  EXPECT_EQ(events[0].health, static_cast<int32_t>(Health::kUp)) << "the active checks' status";
  EXPECT_STREQ(events[0].reason, "passive: fail_timeout over");
  EXPECT_EQ(events[1].unix_ms, 50'600);
  EXPECT_EQ(events[1].health, static_cast<int32_t>(Health::kDown));
  EXPECT_STREQ(events[1].reason, "passive: 2 failures within fail_timeout 10s");
  EXPECT_TRUE(history("app", "b").empty());
}

// The only backend of its upstream is never taken out (Backend::setSolo): nothing to record.
TEST_F(PassiveWatch, TheOnlyBackendOfAnUpstreamHasNoPassiveEvents) {
  slot("solo", "s").runtime.passive_down_until_ms.store(11'500);
  EXPECT_TRUE(watch_.update(*zone_, 1600, 50'600).empty());
  EXPECT_TRUE(history("solo", "s").empty());
}

// A new control process (a reload) starts with a new watch: it takes up from the history.
TEST_F(PassiveWatch, ANewWatchNeitherRepeatsNorMissesAChange) {
  slot("app", "b").runtime.passive_down_until_ms.store(11'500);
  ASSERT_EQ(watch_.update(*zone_, 1600, 50'600).size(), 1u);
  PassiveHealthWatch next;
  EXPECT_TRUE(next.update(*zone_, 1700, 50'700).empty()) << "already recorded";
  std::vector<PassiveHealthWatch::Change> changes = next.update(*zone_, 11'500, 60'500);
  ASSERT_EQ(changes.size(), 1u);
  EXPECT_FALSE(changes[0].out);
  EXPECT_EQ(history("app", "b").size(), 2u);
}

TEST(PassiveReason, NamesTheThresholds) {
  EXPECT_EQ(passiveReason(1, milliseconds(10'000)), "passive: 1 failures within fail_timeout 10s");
  EXPECT_EQ(passiveReason(3, milliseconds(1'500)),
            "passive: 3 failures within fail_timeout 1500ms");
}

// ---------------------------------------------------------------------------------------------
// HealthProbe against a one-thread server on 127.0.0.1

// Accepts connections one at a time; for each, reads the request head and then answers with
// `reply` (sent as is, then the connection is closed), or holds the connection open without a
// word when `reply` is empty, until the server stops.
class TinyServer {
 public:
  // Over TLS with `tls`'s certificates when given.
  explicit TinyServer(std::string reply, const event::ServerTls* tls = nullptr)
      : reply_(std::move(reply)), tls_(tls) {
    fd_ = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof(addr);
    if (fd_ < 0 || bind(fd_, reinterpret_cast<sockaddr*>(&addr), len) != 0 || listen(fd_, 8) != 0 ||
        getsockname(fd_, reinterpret_cast<sockaddr*>(&addr), &len) != 0) {
      return;
    }
    port_ = ntohs(addr.sin_port);
    thread_ = std::thread([this] { run(); });
  }
  ~TinyServer() {
    stop_ = true;
    if (thread_.joinable()) thread_.join();
    if (fd_ >= 0) close(fd_);
  }

  int port() const { return port_; }
  std::string received() const {
    std::lock_guard<std::mutex> lock(mutex_);
    return received_;
  }

 private:
  // Waits for `fd` to become readable in 20 ms slices; false once the server stops.
  bool waitReadable(int fd) {
    while (!stop_) {
      pollfd p{fd, POLLIN, 0};
      if (poll(&p, 1, 20) > 0) return true;
    }
    return false;
  }
  void run() {
    while (waitReadable(fd_)) {
      int conn = accept4(fd_, nullptr, nullptr, SOCK_CLOEXEC);
      if (conn < 0) continue;
      if (tls_ != nullptr) {
        serveTls(conn);
      } else {
        serve(conn);
      }
      close(conn);
    }
  }
  void serve(int conn) {
    std::string head;
    while (head.find("\r\n\r\n") == std::string::npos && waitReadable(conn)) {
      char buf[4096];
      ssize_t n = read(conn, buf, sizeof(buf));
      if (n <= 0) break;
      head.append(buf, static_cast<size_t>(n));
    }
    {
      std::lock_guard<std::mutex> lock(mutex_);
      received_ += head;
    }
    if (reply_.empty()) {
      while (!stop_) std::this_thread::sleep_for(milliseconds(10));
      return;
    }
    ssize_t ignored = write(conn, reply_.data(), reply_.size());
    (void)ignored;
  }

  // Blocking, bounded by a receive timeout: a handshake the probe aborts ends the connection.
  void serveTls(int conn) {
    timeval limit{1, 0};
    setsockopt(conn, SOL_SOCKET, SO_RCVTIMEO, &limit, sizeof(limit));
    event::SslPtr ssl = tls_->newSession();
    SSL_set_fd(ssl.get(), conn);
    if (SSL_accept(ssl.get()) != 1) return;
    std::string head;
    char buf[4096];
    size_t n = 0;
    while (head.find("\r\n\r\n") == std::string::npos && SSL_read_ex(ssl.get(), buf, sizeof(buf), &n)) {
      head.append(buf, n);
    }
    {
      std::lock_guard<std::mutex> lock(mutex_);
      received_ += head;
    }
    SSL_write_ex(ssl.get(), reply_.data(), reply_.size(), &n);
    SSL_shutdown(ssl.get());
  }

  std::string reply_;
  const event::ServerTls* tls_;
  int fd_ = -1;
  int port_ = 0;
  std::atomic<bool> stop_{false};
  std::thread thread_;
  mutable std::mutex mutex_;
  std::string received_;
};

core::BackendConfig probeConfig(int port) {
  core::BackendConfig c;
  c.id = "b1";
  c.host = "127.0.0.1";
  c.port = port;
  c.health_check.enabled = true;
  c.health_check.path = "/health";
  c.health_check.timeout = milliseconds(200);
  c.health_check.interval = milliseconds(1000);
  return c;
}

struct Outcome {
  bool called = false;
  int calls = 0;
  bool passed = false;
  std::string reason;
  milliseconds elapsed{0};
};

class HealthProbeTest : public ::testing::Test {
 protected:
  void SetUp() override {
    signal(SIGPIPE, SIG_IGN);  // as the master does before forking (a refused probe writes)
    base_.reset(event_base_new());
  }

  // Runs one probe to completion (or 3 s): what `done` received, and how long it took.
  Outcome run(int port) { return run(probeConfig(port)); }
  Outcome run(const core::BackendConfig& config) {
    Outcome out;
    BackendState state;
    Backend backend(config, &state);
    EXPECT_TRUE(backend.resolve());
    auto start = SteadyClock::now();
    auto probe = std::make_unique<HealthProbe>(
        base_.get(), backend,
        [&](bool passed, const std::string& reason) {
          out.called = true;
          ++out.calls;
          out.passed = passed;
          out.reason = reason;
          out.elapsed = std::chrono::duration_cast<milliseconds>(SteadyClock::now() - start);
          event_base_loopbreak(base_.get());
        },
        "");
    EXPECT_FALSE(out.called) << "done must be called from the loop, not the constructor";
    timeval limit{3, 0};
    event_base_loopexit(base_.get(), &limit);
    event_base_dispatch(base_.get());
    // Let any stray second call surface before the probe goes away.
    timeval settle{0, 50'000};
    event_base_loopexit(base_.get(), &settle);
    event_base_dispatch(base_.get());
    probe.reset();
    return out;
  }

  event::EventBasePtr base_;
};

std::string response(int status, const std::string& reason) {
  return "HTTP/1.1 " + std::to_string(status) + " " + reason +
         "\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok";
}

TEST_F(HealthProbeTest, SendsAGetForThePath) {
  TinyServer server(response(200, "OK"));
  ASSERT_GT(server.port(), 0);
  Outcome out = run(server.port());
  ASSERT_TRUE(out.called);
  std::string request = server.received();
  EXPECT_EQ(request.rfind("GET /health HTTP/1.1\r\n", 0), 0u) << request;
  EXPECT_NE(request.find("\r\nHost: 127.0.0.1"), std::string::npos) << request;
  EXPECT_NE(request.find("\r\n\r\n"), std::string::npos) << request;
}

TEST_F(HealthProbeTest, StatusDecidesPassOrFail) {
  struct Case {
    int status;
    const char* reason;
    bool passes;
  };
  const Case cases[] = {{200, "OK", true},         {204, "No Content", true},
                        {301, "Moved", true},      {399, "Odd", true},
                        {404, "Not Found", false}, {500, "Internal Server Error", false},
                        {503, "Busy", false},      {101, "Switching", false}};
  for (const Case& c : cases) {
    SCOPED_TRACE(c.status);
    TinyServer server(response(c.status, c.reason));
    ASSERT_GT(server.port(), 0);
    Outcome out = run(server.port());
    ASSERT_TRUE(out.called);
    EXPECT_EQ(out.calls, 1);
    EXPECT_EQ(out.passed, c.passes) << out.reason;
    if (!c.passes) {
      EXPECT_NE(out.reason.find("status " + std::to_string(c.status)), std::string::npos)
          << out.reason;
    }
    EXPECT_LT(out.elapsed, milliseconds(150)) << "an answer must not wait for the timeout";
  }
}

// An https backend is probed over TLS, verified like requests: a self-signed certificate passes
// with tls_verify off and fails against the system store, saying why.
TEST_F(HealthProbeTest, HttpsBackendsAreProbedOverTls) {
  testing::ScratchDir dir;
  testing::KeyPtr key = testing::makeKey(testing::KeyType::kEc);
  testing::CertPtr cert = testing::makeCert({"b1", {"b1.test"}}, key.get());
  event::ServerTlsOptions options;
  options.certificates = {
      {dir.writeCerts("b.crt", {cert.get()}), dir.writeKey("b.key", key.get())}};
  auto tls = event::ServerTls::load(options);
  for (bool verify : {false, true}) {
    TinyServer server("HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n", tls.get());
    ASSERT_GT(server.port(), 0);
    core::BackendConfig c = probeConfig(server.port());
    c.scheme = "https";
    c.tls_verify = verify;
    Outcome out = run(c);
    ASSERT_TRUE(out.called);
    EXPECT_EQ(out.passed, !verify) << out.reason;
    if (verify) {
      EXPECT_EQ(out.reason, "TLS: certificate verify failed: self-signed certificate");
    } else {
      EXPECT_NE(server.received().find("GET /health HTTP/1.1\r\n"), std::string::npos);
    }
  }
}

TEST_F(HealthProbeTest, ConnectionRefusedFails) {
  // Bound but not listening: connecting is refused, and nobody else can take the port meanwhile.
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  ASSERT_GE(fd, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof(addr);
  ASSERT_EQ(bind(fd, reinterpret_cast<sockaddr*>(&addr), len), 0);
  ASSERT_EQ(getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len), 0);
  Outcome out = run(ntohs(addr.sin_port));
  close(fd);
  ASSERT_TRUE(out.called);
  EXPECT_EQ(out.calls, 1);
  EXPECT_FALSE(out.passed);
  EXPECT_NE(out.reason.find("refused"), std::string::npos) << out.reason;
  EXPECT_LT(out.elapsed, milliseconds(150));
}

TEST_F(HealthProbeTest, SilentServerFailsAfterTheTimeout) {
  TinyServer server("");  // accepts, reads, never answers
  ASSERT_GT(server.port(), 0);
  Outcome out = run(server.port());
  ASSERT_TRUE(out.called);
  EXPECT_EQ(out.calls, 1);
  EXPECT_FALSE(out.passed);
  EXPECT_NE(out.reason.find("timed out"), std::string::npos) << out.reason;
  EXPECT_GE(out.elapsed, milliseconds(180));
  EXPECT_LT(out.elapsed, milliseconds(1000));
  EXPECT_EQ(server.received().rfind("GET /health ", 0), 0u) << "it was asked";
}

TEST_F(HealthProbeTest, GarbageFailsAsAnInvalidResponse) {
  for (const char* garbage : {"this is not HTTP at all\r\n\r\n", "HTTP/1.1 2x0 OK\r\n\r\n",
                              "HTTP/1.1 200 OK\r\nBad Header Line\r\n\r\n"}) {
    SCOPED_TRACE(garbage);
    TinyServer server(garbage);
    ASSERT_GT(server.port(), 0);
    Outcome out = run(server.port());
    ASSERT_TRUE(out.called);
    EXPECT_FALSE(out.passed);
    EXPECT_NE(out.reason.find("invalid response"), std::string::npos) << out.reason;
  }
}

TEST_F(HealthProbeTest, ClosingWithoutAnAnswerFails) {
  TinyServer server("HTTP/1.1 200 O");  // a partial status line, then the close
  ASSERT_GT(server.port(), 0);
  Outcome out = run(server.port());
  ASSERT_TRUE(out.called);
  EXPECT_FALSE(out.passed);
  EXPECT_LT(out.elapsed, milliseconds(150)) << out.reason;
}

TEST_F(HealthProbeTest, DestroyingTheProbeCancelsIt) {
  TinyServer server("");
  ASSERT_GT(server.port(), 0);
  BackendState state;
  Backend backend(probeConfig(server.port()), &state);
  ASSERT_TRUE(backend.resolve());
  int calls = 0;
  auto probe = std::make_unique<HealthProbe>(
      base_.get(), backend, [&](bool, const std::string&) { ++calls; }, "");
  // Let it connect and send, then cancel before the 200 ms timeout.
  timeval shortly{0, 50'000};
  event_base_loopexit(base_.get(), &shortly);
  event_base_dispatch(base_.get());
  probe.reset();
  timeval past_timeout{0, 400'000};
  event_base_loopexit(base_.get(), &past_timeout);
  event_base_dispatch(base_.get());
  EXPECT_EQ(calls, 0);
}

}  // namespace
}  // namespace speedmimi::upstream
