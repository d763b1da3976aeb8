// ProxySession and a backend disconnected at run time (DESIGN §9): its tunnels and event streams
// end on both sides, a plain request in flight finishes, and a request in flight whose answer
// would open a tunnel gets a 503 instead. In process: a session on a socketpair (the client's
// end is the test's), backends that are plain loopback sockets driven by the test, and the
// worker's loop spun by hand.
#include "http/proxy_session.h"

#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <openssl/err.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <fstream>
#include <memory>
#include <string>
#include <vector>

#include "core/zone.h"
#include "event/tls.h"
#include "t/helpers/test_certs.h"
#include "upstream/backend_table.h"

namespace speedmimi::http {
namespace {

using std::chrono::milliseconds;

// A listening socket on 127.0.0.1; the test accepts and talks through plain fds.
struct FakeBackend {
  event::Fd listener;
  int port = 0;

  FakeBackend() {
    listener.reset(socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0));
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof(a);
    EXPECT_EQ(bind(listener.get(), reinterpret_cast<sockaddr*>(&a), len), 0);
    EXPECT_EQ(listen(listener.get(), 16), 0);
    EXPECT_EQ(getsockname(listener.get(), reinterpret_cast<sockaddr*>(&a), &len), 0);
    port = ntohs(a.sin_port);
  }
};

class ProxySessionDisconnectTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string error;
    for (auto [name, backend] : {std::pair{"a", &a_}, std::pair{"b", &b_}}) {
      core::BackendConfig c;
      c.id = name;
      c.host = "127.0.0.1";
      c.port = backend->port;
      config_.backends[name] = {c};
      core::RouteConfig r;
      r.name = name;
      r.path = std::string("/") + name;
      r.upstream = name;
      r.retries = 0;
      config_.routes.push_back(r);
    }
    zone_ = core::Zone::create(4 << 20, 2, error);
    ASSERT_NE(zone_, nullptr) << error;
    ASSERT_TRUE(upstream::syncBackends(*zone_, config_, error)) << error;
    base_.reset(event_base_new());
    pool_ = std::make_unique<upstream::ConnectionPool>(base_.get(), config_.server.idle_timeout);
    router_ = std::make_unique<Router>(config_.routes);
    set_ = std::make_unique<upstream::UpstreamSet>(config_, *zone_, random_, *pool_, -1);
    ctx_.base = base_.get();
    ctx_.config = &config_;
    ctx_.router = router_.get();
    ctx_.upstreams = set_.get();
    ctx_.pool = pool_.get();
    ctx_.access_log = &access_log_;
    ctx_.counters = &counters_;
    ctx_.all_counters = &counters_;
    ctx_.worker_slot_limit = &slot_limit_;
    ctx_.header_storage.resize(ctx_.request_limits.max_headers + 1);
  }

  void TearDown() override {
    std::vector<ProxySession*> left(ctx_.sessions.begin(), ctx_.sessions.end());
    for (ProxySession* s : left) {
      s->abort();
      delete s;
    }
  }

  // A new client connection (accepted on a TLS listener when `tls`); the test's end is returned.
  event::Fd connectClient(bool tls = false) {
    int sv[2];
    EXPECT_EQ(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, sv), 0);
    sockaddr_in peer{};
    peer.sin_family = AF_INET;
    peer.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    auto* session = new ProxySession(ctx_, sv[0], reinterpret_cast<sockaddr*>(&peer), tls);
    session->start();
    return event::Fd(sv[1]);
  }

  void spin() {
    timeval tv{0, 2'000};
    event_base_loopexit(base_.get(), &tv);
    event_base_dispatch(base_.get());
  }

  // The proxy's connection to `backend`, accepted once the session has connected.
  event::Fd acceptFrom(FakeBackend& backend) {
    for (int i = 0; i < 500; ++i) {
      int fd = accept4(backend.listener.get(), nullptr, nullptr, SOCK_NONBLOCK);
      if (fd >= 0) return event::Fd(fd);
      spin();
    }
    ADD_FAILURE() << "the proxy never connected to the backend";
    return event::Fd();
  }

  static void send(const event::Fd& fd, const std::string& bytes) {
    ASSERT_EQ(write(fd.get(), bytes.data(), bytes.size()), static_cast<ssize_t>(bytes.size()));
  }

  // Reads from `fd` while spinning the loop until `want` has arrived, EOF, or a second passed.
  // `eof` tells whether the peer closed.
  std::string readUntil(const event::Fd& fd, const std::string& want, bool* eof = nullptr) {
    std::string got;
    if (eof) *eof = false;
    for (int i = 0; i < 500 && got.find(want) == std::string::npos; ++i) {
      spin();
      char buf[4096];
      ssize_t n;
      while ((n = read(fd.get(), buf, sizeof(buf))) > 0) got.append(buf, static_cast<size_t>(n));
      if (n == 0 || (n < 0 && errno == ECONNRESET)) {
        if (eof) *eof = true;
        break;
      }
    }
    return got;
  }

  // Whether the peer of `fd` closed (EOF or reset) within a second, with what came before.
  bool closedWithin(const event::Fd& fd, std::string* before = nullptr) {
    bool eof = false;
    std::string got = readUntil(fd, std::string(1, '\0') + "never", &eof);
    if (before) *before = got;
    return eof;
  }

  // Still open after the loop ran a while: no EOF and nothing unexpected.
  bool stillOpen(const event::Fd& fd) {
    for (int i = 0; i < 20; ++i) spin();
    char c;
    ssize_t n = read(fd.get(), &c, 1);
    return n < 0 && errno == EAGAIN;
  }

  // What the worker's tick does after a disconnect (Worker::closeDisconnected).
  size_t disconnect(const std::string& id) {
    core::ChangeResult r = zone_->disconnectBackend(id, id);
    EXPECT_TRUE(r.ok()) << r.message;
    set_->refresh();
    std::vector<upstream::Backend*> gone = set_->takeDisconnected();
    EXPECT_EQ(gone.size(), 1u);
    std::vector<ProxySession*> sessions(ctx_.sessions.begin(), ctx_.sessions.end());
    size_t ended = 0;
    for (ProxySession* s : sessions) ended += s->onBackendsDisconnected(gone);
    return ended;
  }

  upstream::Backend* backendOf(const std::string& id) {
    for (upstream::Backend* b : set_->backends()) {
      if (b->id() == id) return b;
    }
    return nullptr;
  }

  FakeBackend a_, b_;
  core::Config config_;
  std::unique_ptr<core::Zone> zone_;
  upstream::DefaultRandom random_{7};
  event::EventBasePtr base_;
  std::unique_ptr<upstream::ConnectionPool> pool_;
  std::unique_ptr<Router> router_;
  std::unique_ptr<upstream::UpstreamSet> set_;
  AccessLog access_log_;  // not opened: off
  core::ServerCounters counters_;
  std::atomic<uint32_t> slot_limit_{1};
  ProxyContext ctx_;
};

std::string upgradeRequest(const std::string& path) {
  return "GET " + path +
         " HTTP/1.1\r\nHost: example\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n";
}
const char kSwitching[] =
    "HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n";

// An open tunnel to the disconnected backend ends on both sides; one to another backend runs on.
TEST_F(ProxySessionDisconnectTest, ATunnelToTheDisconnectedBackendEndsOnBothSides) {
  event::Fd client = connectClient();
  send(client, upgradeRequest("/a/ws"));
  event::Fd upstream = acceptFrom(a_);
  ASSERT_NE(readUntil(upstream, "\r\n\r\n").find("Upgrade: websocket"), std::string::npos);
  send(upstream, kSwitching);
  ASSERT_NE(readUntil(client, "\r\n\r\n").find("101"), std::string::npos);
  send(client, "ping");
  ASSERT_EQ(readUntil(upstream, "ping"), "ping") << "the tunnel does not carry bytes";

  event::Fd other_client = connectClient();
  send(other_client, upgradeRequest("/b/ws"));
  event::Fd other_upstream = acceptFrom(b_);
  readUntil(other_upstream, "\r\n\r\n");
  send(other_upstream, kSwitching);
  ASSERT_NE(readUntil(other_client, "\r\n\r\n").find("101"), std::string::npos);
  EXPECT_EQ(backendOf("a")->inFlight(), 1);

  send(upstream, "last words");  // already on its way to the client: delivered
  readUntil(client, "last words");
  EXPECT_EQ(disconnect("a"), 1u);
  EXPECT_TRUE(closedWithin(upstream)) << "the backend's side of the tunnel stays open";
  EXPECT_TRUE(closedWithin(client)) << "the client's side of the tunnel stays open";
  EXPECT_EQ(backendOf("a")->inFlight(), 0);
  EXPECT_EQ(ctx_.sessions.size(), 2u) << "the client's connection lingers until its EOF";
  client.reset();
  for (int i = 0; i < 50 && ctx_.sessions.size() > 1; ++i) spin();
  EXPECT_EQ(ctx_.sessions.size(), 1u);

  send(other_client, "still here");
  EXPECT_EQ(readUntil(other_upstream, "still here"), "still here");
  EXPECT_TRUE(stillOpen(other_client));
}

// An event stream being forwarded ends: the client sees it cut (no final chunk), the backend
// sees its connection closed.
TEST_F(ProxySessionDisconnectTest, AnEventStreamFromTheDisconnectedBackendEnds) {
  event::Fd client = connectClient();
  send(client, "GET /a/events HTTP/1.1\r\nHost: example\r\nAccept: text/event-stream\r\n\r\n");
  event::Fd upstream = acceptFrom(a_);
  readUntil(upstream, "\r\n\r\n");
  send(upstream,
       "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nTransfer-Encoding: chunked\r\n\r\n"
       "8\r\ndata: 1\n\r\n");
  ASSERT_NE(readUntil(client, "data: 1").find("data: 1"), std::string::npos);

  EXPECT_EQ(disconnect("a"), 1u);
  std::string rest;
  EXPECT_TRUE(closedWithin(client, &rest)) << "the event stream stays open";
  EXPECT_EQ(rest.find("0\r\n\r\n"), std::string::npos) << "a cut stream must not look complete";
  EXPECT_TRUE(closedWithin(upstream));
}

// A plain request in flight finishes normally; its connection is then closed, not pooled.
TEST_F(ProxySessionDisconnectTest, APlainRequestInFlightFinishes) {
  event::Fd client = connectClient();
  send(client, "GET /a/slow HTTP/1.1\r\nHost: example\r\n\r\n");
  event::Fd upstream = acceptFrom(a_);
  readUntil(upstream, "\r\n\r\n");

  EXPECT_EQ(disconnect("a"), 0u);
  EXPECT_TRUE(stillOpen(upstream)) << "an in-flight request was cut";
  send(upstream, "HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\ndone");
  std::string answer = readUntil(client, "done");
  EXPECT_EQ(answer.rfind("HTTP/1.1 200", 0), 0u) << answer;
  EXPECT_NE(answer.find("done"), std::string::npos) << answer;
  EXPECT_TRUE(closedWithin(upstream)) << "the connection of an inactive backend was pooled";
  EXPECT_EQ(pool_->idleCount(), 0u);
  EXPECT_TRUE(stillOpen(client)) << "the client's keep-alive connection is not the backend's";

  // No new request reaches it.
  send(client, "GET /a/next HTTP/1.1\r\nHost: example\r\n\r\n");
  EXPECT_EQ(readUntil(client, "\r\n\r\n").rfind("HTTP/1.1 503", 0), 0u);
}

// The upgrade was on its way when the backend was disconnected: its 101 opens no tunnel.
TEST_F(ProxySessionDisconnectTest, AnUpgradeInFlightOpensNoTunnel) {
  event::Fd client = connectClient();
  send(client, upgradeRequest("/a/ws"));
  event::Fd upstream = acceptFrom(a_);
  readUntil(upstream, "\r\n\r\n");

  EXPECT_EQ(disconnect("a"), 0u);
  send(upstream, kSwitching);
  std::string answer = readUntil(client, "\r\n\r\n");
  EXPECT_EQ(answer.rfind("HTTP/1.1 503", 0), 0u) << answer;
  EXPECT_TRUE(closedWithin(upstream));
  EXPECT_EQ(backendOf("a")->inFlight(), 0);
}

// Disconnected and re-activated before the worker looked: the tunnel still ends, and the next
// upgrade to the backend opens a new one.
TEST_F(ProxySessionDisconnectTest, ADisconnectUndoneAtOnceStillEndsTheTunnel) {
  event::Fd client = connectClient();
  send(client, upgradeRequest("/a/ws"));
  event::Fd upstream = acceptFrom(a_);
  readUntil(upstream, "\r\n\r\n");
  send(upstream, kSwitching);
  ASSERT_NE(readUntil(client, "\r\n\r\n").find("101"), std::string::npos);

  ASSERT_TRUE(zone_->disconnectBackend("a", "a").ok());
  core::BackendConfig again = config_.backends["a"][0];
  core::BackendAddress address;
  std::string error;
  ASSERT_TRUE(upstream::resolveBackend(again, address, error)) << error;
  ASSERT_TRUE(zone_->updateBackend("a", again, address).ok());
  set_->refresh();
  std::vector<upstream::Backend*> gone = set_->takeDisconnected();
  ASSERT_EQ(gone.size(), 1u);
  std::vector<ProxySession*> sessions(ctx_.sessions.begin(), ctx_.sessions.end());
  for (ProxySession* s : sessions) s->onBackendsDisconnected(gone);
  EXPECT_TRUE(closedWithin(upstream));
  EXPECT_TRUE(closedWithin(client));

  event::Fd next = connectClient();
  send(next, upgradeRequest("/a/ws"));
  event::Fd next_upstream = acceptFrom(a_);
  readUntil(next_upstream, "\r\n\r\n");
  send(next_upstream, kSwitching);
  EXPECT_NE(readUntil(next, "\r\n\r\n").find("101"), std::string::npos);
}

// ---------------------------------------------------------------------------------------------
// The counters an exchange leaves behind (DESIGN §3): the worker's request latency and status
// class once per exchange, the backend's status class and time to the head once per answer.

using ProxySessionCountersTest = ProxySessionDisconnectTest;

uint64_t countOf(const core::LatencyHistogram& h) {
  core::LatencyTotals t;
  t.add(h);
  return t.count();
}

TEST_F(ProxySessionCountersTest, AnExchangeCountsItsLatencyOnceAndTheBackendsHeadTime) {
  event::Fd client = connectClient();
  send(client, "GET /a/x HTTP/1.1\r\nHost: example\r\n\r\n");
  event::Fd upstream = acceptFrom(a_);
  readUntil(upstream, "\r\n\r\n");
  usleep(3'000);  // the backend takes 3 ms to answer
  send(upstream, "HTTP/1.1 201 Created\r\nContent-Length: 4\r\n\r\ndone");
  ASSERT_NE(readUntil(client, "done").find("done"), std::string::npos);

  EXPECT_EQ(countOf(counters_.request_latency), 1u);
  EXPECT_GE(counters_.request_latency.sum_us.load(), 3'000u);
  EXPECT_LT(counters_.request_latency.sum_us.load(), 1'000'000u);
  EXPECT_EQ(counters_.responses_by_class[2].load(), 1u);
  const core::BackendCounters& a = backendOf("a")->workerCounters();
  EXPECT_EQ(a.responses_by_class[2].load(), 1u);
  EXPECT_EQ(countOf(a.head_time), 1u);
  EXPECT_GE(a.head_time.sum_us.load(), 3'000u);
  EXPECT_LE(a.head_time.sum_us.load(), counters_.request_latency.sum_us.load() + 1'000)
      << "the head came before the end of the exchange";

  // The next request on the connection is another exchange.
  send(client, "GET /a/y HTTP/1.1\r\nHost: example\r\n\r\n");
  readUntil(upstream, "\r\n\r\n");
  send(upstream, "HTTP/1.1 500 Oops\r\nContent-Length: 0\r\n\r\n");
  ASSERT_NE(readUntil(client, "500 Oops").find("500"), std::string::npos);
  EXPECT_EQ(countOf(counters_.request_latency), 2u);
  EXPECT_EQ(counters_.responses_by_class[5].load(), 1u);
  EXPECT_EQ(a.responses_by_class[5].load(), 1u);
  EXPECT_EQ(countOf(a.head_time), 2u);
}

// Answered by the proxy itself: the server counts it, no backend does.
TEST_F(ProxySessionCountersTest, AnErrorOfTheProxyCountsForTheServerOnly) {
  event::Fd client = connectClient();
  send(client, "GET /nowhere HTTP/1.1\r\nHost: example\r\n\r\n");
  ASSERT_EQ(readUntil(client, "\r\n\r\n").rfind("HTTP/1.1 404", 0), 0u);
  EXPECT_EQ(counters_.responses_by_class[4].load(), 1u);
  EXPECT_EQ(countOf(counters_.request_latency), 1u);
  for (const char* id : {"a", "b"}) {
    const core::BackendCounters& c = backendOf(id)->workerCounters();
    EXPECT_EQ(countOf(c.head_time), 0u) << id;
    for (const auto& n : c.responses_by_class) EXPECT_EQ(n.load(), 0u) << id;
  }
}

// A tunnel is never logged, but it is counted once, when its connection closes.
TEST_F(ProxySessionCountersTest, ATunnelIsCountedOnceWhenItEnds) {
  event::Fd client = connectClient();
  send(client, upgradeRequest("/a/ws"));
  event::Fd upstream = acceptFrom(a_);
  readUntil(upstream, "\r\n\r\n");
  send(upstream, kSwitching);
  ASSERT_NE(readUntil(client, "\r\n\r\n").find("101"), std::string::npos);
  EXPECT_EQ(backendOf("a")->workerCounters().responses_by_class[1].load(), 1u);
  EXPECT_EQ(countOf(counters_.request_latency), 0u) << "still open";
  client.reset();
  EXPECT_TRUE(closedWithin(upstream));
  EXPECT_EQ(counters_.responses_by_class[1].load(), 1u);
  EXPECT_EQ(countOf(counters_.request_latency), 1u);
}

// The access log names the route and the time the backend took to its head.
TEST_F(ProxySessionCountersTest, TheAccessLogHasTheHeadTimeAndTheRoute) {
  char path[] = "/tmp/speedmimi-session-log-XXXXXX";
  int fd = mkstemp(path);
  ASSERT_GE(fd, 0);
  close(fd);
  std::string error;
  ASSERT_TRUE(access_log_.open(path, core::AccessLogFormat::kCombined, error)) << error;
  event::Fd client = connectClient();
  send(client, "GET /b/x HTTP/1.1\r\nHost: example\r\n\r\n");
  event::Fd upstream = acceptFrom(b_);
  readUntil(upstream, "\r\n\r\n");
  usleep(2'000);
  send(upstream, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok");
  ASSERT_NE(readUntil(client, "ok").find("ok"), std::string::npos);
  send(client, "GET /nowhere HTTP/1.1\r\nHost: example\r\n\r\n");
  ASSERT_NE(readUntil(client, "404").find("404"), std::string::npos);
  access_log_.flush();
  std::ifstream in(path);
  std::string line, missing;
  std::getline(in, line);
  std::getline(in, missing);
  unlink(path);
  // ... "upstream_addr" 200 request_time upstream_response_time upstream_header_time "route"
  const size_t route = line.rfind(" \"b\"");
  ASSERT_NE(route, std::string::npos) << line;
  EXPECT_EQ(route + 4, line.size()) << line;
  const size_t header_at = line.rfind(' ', route - 1) + 1;
  const double header_time = std::stod(line.substr(header_at, route - header_at));
  EXPECT_GE(header_time, 0.002) << line;
  EXPECT_LT(header_time, 1.0) << line;
  // "-" - request_time - - "-": no backend, no route.
  EXPECT_TRUE(missing.ends_with(" - - \"-\"")) << missing;
  EXPECT_NE(missing.find(" \"-\" - 0.0"), std::string::npos) << missing;
}

// ---------------------------------------------------------------------------------------------
// Over TLS (DESIGN §10): clients on a TLS listener, and https backends. The test's ends speak
// TLS with SSLs of their own over the same fds, driven by spinning the loop.

class ProxySessionTlsTest : public ProxySessionDisconnectTest {
 protected:
  void SetUp() override {
    ProxySessionDisconnectTest::SetUp();
    key_ = testing::makeKey(testing::KeyType::kEc);
    cert_ = testing::makeCert({"localhost", {"localhost"}}, key_.get());
    event::ServerTlsOptions options;
    options.certificates = {{dir_.writeCerts("c.crt", {cert_.get()}),
                             dir_.writeKey("c.key", key_.get())}};
    server_tls_ = event::ServerTls::load(options);
    ctx_.server_tls = server_tls_;
    client_tls_ = event::ClientTls::load({false, ""});
  }

  // Drives `ssl`'s handshake over the loop; false when it fails or takes over a second.
  bool handshake(SSL* ssl) {
    for (int i = 0; i < 500; ++i) {
      ERR_clear_error();
      int rc = SSL_do_handshake(ssl);
      if (rc == 1) return true;
      int e = SSL_get_error(ssl, rc);
      if (e != SSL_ERROR_WANT_READ && e != SSL_ERROR_WANT_WRITE) return false;
      spin();
    }
    return false;
  }
  event::SslPtr tlsOver(const event::Fd& fd, bool server) {
    event::SslPtr ssl = server ? server_tls_->newSession() : client_tls_->newSession("localhost");
    SSL_set_fd(ssl.get(), fd.get());
    return ssl;
  }
  void tlsSend(SSL* ssl, const std::string& bytes) {
    size_t n = 0;
    ASSERT_EQ(SSL_write_ex(ssl, bytes.data(), bytes.size(), &n), 1);
    ASSERT_EQ(n, bytes.size());
  }
  std::string tlsReadUntil(SSL* ssl, const std::string& want) {
    std::string got;
    for (int i = 0; i < 500 && got.find(want) == std::string::npos; ++i) {
      spin();
      char buf[4096];
      size_t n = 0;
      while (SSL_read_ex(ssl, buf, sizeof(buf), &n) == 1) got.append(buf, n);
    }
    return got;
  }
  // The client's TLS connection, handshake done.
  event::SslPtr tlsClient(const event::Fd& fd) {
    event::SslPtr ssl = tlsOver(fd, false);
    SSL_set_connect_state(ssl.get());
    EXPECT_TRUE(handshake(ssl.get()));
    return ssl;
  }
  void makeBackendHttps(const std::string& id, bool verify) {
    core::BackendConfig& b = config_.backends[id][0];
    b.scheme = "https";
    b.tls_verify = verify;
    std::string error;
    ASSERT_TRUE(upstream::syncBackends(*zone_, config_, error)) << error;
    set_->refresh();
  }

  testing::ScratchDir dir_;
  testing::KeyPtr key_;
  testing::CertPtr cert_;
  std::shared_ptr<const event::ServerTls> server_tls_;
  std::unique_ptr<event::ClientTls> client_tls_;
};

TEST_F(ProxySessionTlsTest, AnHttpsClientIsForwardedAsSuchAndLoggedWithItsCipher) {
  char path[] = "/tmp/speedmimi-session-log-XXXXXX";
  int fd = mkstemp(path);
  ASSERT_GE(fd, 0);
  close(fd);
  std::string error;
  ASSERT_TRUE(access_log_.open(path, core::AccessLogFormat::kJson, error)) << error;
  event::Fd client = connectClient(true);
  event::SslPtr ssl = tlsClient(client);
  tlsSend(ssl.get(), "GET /a/x HTTP/1.1\r\nHost: example\r\n\r\n");
  event::Fd upstream = acceptFrom(a_);
  std::string request = readUntil(upstream, "\r\n\r\n");
  EXPECT_NE(request.find("\r\nX-Forwarded-Proto: https\r\n"), std::string::npos) << request;
  send(upstream, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok");
  EXPECT_NE(tlsReadUntil(ssl.get(), "ok").find("200 OK"), std::string::npos);
  access_log_.flush();
  std::ifstream in(path);
  std::string line;
  std::getline(in, line);
  unlink(path);
  EXPECT_NE(line.find(",\"ssl_protocol\":\"TLSv1.3\",\"ssl_cipher\":\"TLS_"), std::string::npos)
      << line;
}

TEST_F(ProxySessionTlsTest, PlainHttpOnTheTlsPortGetsA400InClearText) {
  event::Fd client = connectClient(true);
  send(client, "GET /a/x HTTP/1.1\r\nHost: example\r\n\r\n");
  std::string answer;
  EXPECT_TRUE(closedWithin(client, &answer));
  EXPECT_EQ(answer.rfind("HTTP/1.1 400 Bad Request\r\n", 0), 0u) << answer;
  EXPECT_NE(answer.find("The plain HTTP request was sent to HTTPS port"), std::string::npos);
  EXPECT_LT(accept4(a_.listener.get(), nullptr, nullptr, SOCK_NONBLOCK), 0) << "reached a backend";
}

TEST_F(ProxySessionTlsTest, ASlowHandshakeIsClosedAtHeaderTimeout) {
  config_.server.header_timeout = milliseconds(300);
  event::Fd client = connectClient(true);
  const auto start = std::chrono::steady_clock::now();
  // The start of a ClientHello, a byte every 50 ms: never complete, never silent for long.
  const unsigned char hello[] = {0x16, 0x03, 0x01, 0x02, 0x00, 0x01, 0x00, 0x01, 0xfc, 0x03, 0x03};
  bool closed = false;
  for (unsigned char b : hello) {
    if (write(client.get(), &b, 1) != 1) break;
    for (int i = 0; i < 25; ++i) spin();  // ~50 ms
    char c;
    ssize_t n = read(client.get(), &c, 1);
    if (n == 0 || (n < 0 && errno == ECONNRESET)) {
      closed = true;
      break;
    }
  }
  if (!closed) closed = closedWithin(client);
  EXPECT_TRUE(closed);
  auto took = std::chrono::steady_clock::now() - start;
  EXPECT_GE(took, milliseconds(280));
  EXPECT_LT(took, milliseconds(550));
  EXPECT_TRUE(ctx_.sessions.empty());
  EXPECT_LT(accept4(a_.listener.get(), nullptr, nullptr, SOCK_NONBLOCK), 0) << "reached a backend";
}

// An https backend: TLS with it, reused from the pool; verification failing is a 502.
TEST_F(ProxySessionTlsTest, HttpsBackendsAreSpokenToOverTlsAndVerified) {
  makeBackendHttps("b", false);
  event::Fd client = connectClient();
  send(client, "GET /b/1 HTTP/1.1\r\nHost: example\r\n\r\n");
  event::Fd upstream = acceptFrom(b_);
  event::SslPtr ssl = tlsOver(upstream, true);
  SSL_set_accept_state(ssl.get());
  ASSERT_TRUE(handshake(ssl.get()));
  for (const std::string target : {"/b/1", "/b/2"}) {
    if (target != "/b/1") send(client, "GET " + target + " HTTP/1.1\r\nHost: example\r\n\r\n");
    EXPECT_NE(tlsReadUntil(ssl.get(), "\r\n\r\n").find(target), std::string::npos);
    tlsSend(ssl.get(), "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok");
    EXPECT_NE(readUntil(client, "ok").find("200 OK"), std::string::npos) << target;
  }
  EXPECT_LT(accept4(b_.listener.get(), nullptr, nullptr, SOCK_NONBLOCK), 0) << "not reused";

  makeBackendHttps("b", true);  // against the system store: a self-signed certificate fails
  pool_->clear();
  send(client, "GET /b/3 HTTP/1.1\r\nHost: example\r\n\r\n");
  event::Fd refused = acceptFrom(b_);
  event::SslPtr refused_ssl = tlsOver(refused, true);
  SSL_set_accept_state(refused_ssl.get());
  EXPECT_FALSE(handshake(refused_ssl.get()));  // the proxy aborts it
  EXPECT_NE(readUntil(client, "\r\n\r\n").find("HTTP/1.1 502"), std::string::npos);
}

}  // namespace
}  // namespace speedmimi::http
