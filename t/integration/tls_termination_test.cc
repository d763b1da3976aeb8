// TLS termination (issue 11, DESIGN §10): protocol versions, SNI, ALPN, the request path over
// TLS (X-Forwarded-Proto, the `https` protocol class, the access log), session resumption
// across workers, and bad input on a TLS port. Clients are TlsClient and the real curl and
// `openssl s_client`, trusting only the test CA; certificates are made at test time.
#include <jansson.h>

#include <set>

#include "harness.h"
#include "tls_certs.h"
#include "tls_client.h"
#include "tls_transport.h"

namespace speedmimi::test {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::IsEmpty;

std::string get(const std::string& target, const std::string& host = "default.test") {
  return buildRequest("GET", target, {{"Host", host}}, "", Framing::kNone);
}

// Every certificate of the tests served at once: default.test (RSA and ECDSA), a.test, b.test,
// *.wild.test.
SslSpec allCertificates(int port = 0) {
  const TestCerts& certs = testCerts();
  SslSpec ssl = defaultSsl(port);
  for (const CertKey* pair : {&certs.a, &certs.b, &certs.wild}) {
    ssl.certificates.push_back({pair->cert, pair->key});
  }
  return ssl;
}

class TlsTerminationTest : public ProxyTest {
 protected:
  Proxy* startTls(FakeBackend& backend, SslSpec ssl = allCertificates(), int workers = 1) {
    ProxyOptions options = ProxyOptions::forBackends({backend.port()});
    options.ssl = std::move(ssl);
    options.workers = workers;
    return startProxy(options);
  }

  // curl against the TLS port, `host` resolved to 127.0.0.1, trusting the test CA; the output
  // is "<status> <ssl_verify_result>" after the body.
  Proxy::CommandResult curl(const Proxy& proxy, const std::string& host,
                            std::vector<std::string> extra) {
    std::string port = std::to_string(proxy.sslPort());
    std::vector<std::string> args = {"curl", "-sS", "--max-time", "10", "--cacert",
                                     testCerts().ca, "--resolve", host + ":" + port + ":127.0.0.1",
                                     "-w", "\n%{http_code} %{ssl_verify_result}"};
    args.insert(args.end(), extra.begin(), extra.end());
    args.push_back("https://" + host + ":" + port + "/curl");
    return runProgram(args, proxy.prefix() + "/logs");
  }

  // `openssl s_client` handshakes (stdin is empty, so it says goodbye right after) and prints
  // what it negotiated.
  Proxy::CommandResult sClient(const Proxy& proxy, std::vector<std::string> extra) {
    std::vector<std::string> args = {"openssl", "s_client", "-connect",
                                     "127.0.0.1:" + std::to_string(proxy.sslPort()), "-CAfile",
                                     testCerts().ca, "-verify_return_error"};
    args.insert(args.end(), extra.begin(), extra.end());
    return runProgram(args, proxy.prefix() + "/logs");
  }

  void expectLoggedTls(const std::string& format);
};

// --- protocol versions ---------------------------------------------------------------------------

TEST_F(TlsTerminationTest, Tls12AndTls13SucceedWithCurlAndOpenSsl) {
  FakeBackend backend(FakeBackend::fixed(200, "over tls"));
  Proxy* proxy = startTls(backend);
  ASSERT_NE(proxy, nullptr);

  for (const char* version : {"1.2", "1.3"}) {
    SCOPED_TRACE(std::string("TLS ") + version);
    Proxy::CommandResult c = curl(*proxy, "default.test",
                                  {std::string("--tlsv") + version, "--tls-max", version});
    EXPECT_EQ(c.exit_code, 0) << c.err;
    EXPECT_EQ(c.out, "over tls\n200 0");

    Proxy::CommandResult s = sClient(
        *proxy, {"-servername", "default.test", "-brief",
                 std::string(version[2] == '2' ? "-tls1_2" : "-tls1_3")});
    EXPECT_EQ(s.exit_code, 0) << s.out << s.err;
    EXPECT_THAT(s.err + s.out, HasSubstr(std::string("Protocol version: TLSv") + version));
    EXPECT_THAT(s.err + s.out, HasSubstr("Verification: OK"));

    TlsClientOptions options = tlsOptions("default.test", testCerts().ca);
    options.min_version = options.max_version = std::string("TLSv") + version;
    TlsClient client(proxy->sslPort(), options);
    ASSERT_TRUE(client.connected()) << client.error();
    EXPECT_EQ(client.info().version, std::string("TLSv") + version);
    ASSERT_TRUE(client.sendRaw(get("/tlsclient")));
    auto response = client.readResponse();
    ASSERT_TRUE(response) << client.error();
    EXPECT_EQ(response->body, "over tls");
  }
  EXPECT_EQ(countTargets(backend, "/curl"), 2u);
  EXPECT_EQ(countTargets(backend, "/tlsclient"), 2u);
}

TEST_F(TlsTerminationTest, Tls11AndTls10AreRefused) {
  FakeBackend backend(FakeBackend::fixed(200, "never"));
  Proxy* proxy = startTls(backend);
  ASSERT_NE(proxy, nullptr);

  for (const char* version : {"TLSv1.1", "TLSv1"}) {
    TlsClientOptions options = tlsOptions("default.test");
    options.min_version = options.max_version = version;
    options.security_level = 0;  // our side would do it (see TlsHarness): the refusal is the proxy's
    TlsClient client(proxy->sslPort(), options);
    EXPECT_FALSE(client.connected()) << version << " was accepted: " << client.info().cipher;
  }
  Proxy::CommandResult s = sClient(*proxy, {"-servername", "default.test", "-brief", "-tls1_1",
                                            "-cipher", "DEFAULT:@SECLEVEL=0"});
  EXPECT_NE(s.exit_code, 0) << s.out << s.err;
  EXPECT_THAT(s.err + s.out, ::testing::Not(HasSubstr("Protocol version: TLSv1.1")));
  Proxy::CommandResult c = curl(*proxy, "default.test", {"--tlsv1.1", "--tls-max", "1.1"});
  EXPECT_NE(c.exit_code, 0) << c.out;
  EXPECT_EQ(backend.requestCount(), 0u);
}

TEST_F(TlsTerminationTest, ProtocolsKeyLimitsTheVersions) {
  FakeBackend backend(FakeBackend::fixed(200, "ok"));
  SslSpec ssl = allCertificates();
  ssl.protocols = {"TLSv1.3"};
  Proxy* proxy = startTls(backend, ssl);
  ASSERT_NE(proxy, nullptr);

  TlsClientOptions tls12 = tlsOptions("default.test", testCerts().ca);
  tls12.max_version = "TLSv1.2";
  EXPECT_FALSE(TlsClient(proxy->sslPort(), tls12).connected());
  TlsClient tls13(proxy->sslPort(), tlsOptions("default.test", testCerts().ca));
  ASSERT_TRUE(tls13.connected()) << tls13.error();
  EXPECT_EQ(tls13.info().version, "TLSv1.3");
}

// --- SNI and ALPN ---------------------------------------------------------------------------------

TEST_F(TlsTerminationTest, SniPicksTheCertificateByNameAndFallsBackToTheDefault) {
  FakeBackend backend(FakeBackend::fixed(200, "ok"));
  Proxy* proxy = startTls(backend);
  ASSERT_NE(proxy, nullptr);
  const std::string& ca = testCerts().ca;

  struct Case {
    std::string sni;
    std::vector<std::string> names;
  };
  for (const Case& c : std::vector<Case>{{"a.test", {"a.test"}},
                                         {"b.test", {"b.test"}},
                                         {"B.Test", {"b.test"}},
                                         {"x.wild.test", {"*.wild.test"}},
                                         {"deep.x.wild.test", {"default.test"}},
                                         {"wild.test", {"default.test"}},
                                         {"unknown.test", {"default.test"}},
                                         {"", {"default.test"}}}) {
    TlsClient client(proxy->sslPort(), tlsOptions(c.sni));
    ASSERT_TRUE(client.connected()) << "SNI '" << c.sni << "': " << client.error();
    EXPECT_EQ(client.info().peer_names, c.names) << "SNI '" << c.sni << "'";
  }
  // Verified end to end, chain included, for each name by curl.
  for (const char* host : {"a.test", "b.test", "x.wild.test", "default.test"}) {
    Proxy::CommandResult r = curl(*proxy, host, {});
    EXPECT_EQ(r.exit_code, 0) << host << ": " << r.err;
    EXPECT_EQ(r.out, "ok\n200 0") << host;
  }
  // openssl s_client names the subject it got.
  Proxy::CommandResult a = sClient(*proxy, {"-servername", "a.test", "-verify_hostname", "a.test"});
  EXPECT_EQ(a.exit_code, 0) << a.err;
  EXPECT_THAT(a.out, HasSubstr("CN = a.test"));
  Proxy::CommandResult other = sClient(*proxy, {"-servername", "nothing.test"});
  EXPECT_THAT(other.out, HasSubstr("CN = default.test"));
  TlsClient verified(proxy->sslPort(), tlsOptions("a.test", ca));
  EXPECT_TRUE(verified.connected()) << verified.error();
}

TEST_F(TlsTerminationTest, OneNameServesRsaAndEcdsaByWhatTheClientSupports) {
  FakeBackend backend(FakeBackend::fixed(200, "ok"));
  Proxy* proxy = startTls(backend);
  ASSERT_NE(proxy, nullptr);

  for (const char* version : {"TLSv1.2", "TLSv1.3"}) {
    TlsClientOptions ecdsa = tlsOptions("default.test", testCerts().ca);
    ecdsa.min_version = ecdsa.max_version = version;
    ecdsa.sigalgs = "ECDSA+SHA256";
    TlsClient ec(proxy->sslPort(), ecdsa);
    ASSERT_TRUE(ec.connected()) << version << ": " << ec.error();
    EXPECT_EQ(ec.info().peer_key_type, "EC") << version;

    TlsClientOptions rsa = ecdsa;
    rsa.sigalgs = "RSA-PSS+SHA256:RSA+SHA256";
    TlsClient r(proxy->sslPort(), rsa);
    ASSERT_TRUE(r.connected()) << version << ": " << r.error();
    EXPECT_EQ(r.info().peer_key_type, "RSA") << version;
    EXPECT_EQ(r.info().peer_names, std::vector<std::string>{"default.test"});
  }
}

TEST_F(TlsTerminationTest, AlpnSaysHttp11) {
  FakeBackend backend(FakeBackend::fixed(200, "ok"));
  Proxy* proxy = startTls(backend);
  ASSERT_NE(proxy, nullptr);

  TlsClientOptions options = tlsOptions("default.test", testCerts().ca);
  options.alpn = {"h2", "http/1.1"};
  TlsClient client(proxy->sslPort(), options);
  ASSERT_TRUE(client.connected()) << client.error();
  EXPECT_EQ(client.info().alpn, "http/1.1");

  Proxy::CommandResult s = sClient(*proxy, {"-servername", "default.test", "-alpn", "h2,http/1.1"});
  EXPECT_THAT(s.out, HasSubstr("ALPN protocol: http/1.1")) << s.err;
  // A client that offers no ALPN still gets HTTP/1.1.
  TlsClientOptions none = tlsOptions("default.test", testCerts().ca);
  none.alpn.clear();
  std::string error;
  auto response = fetchTls(proxy->sslPort(), get("/no-alpn"), none, &error);
  ASSERT_TRUE(response) << error;
  EXPECT_EQ(response->status, 200);
}

// --- the request path over TLS -------------------------------------------------------------------

TEST_F(TlsTerminationTest, TlsPortBesidePlainHttpAndXForwardedProto) {
  FakeBackend backend(FakeBackend::fixed(200, "ok"));
  Proxy* proxy = startTls(backend, allCertificates(-1));
  ASSERT_NE(proxy, nullptr);
  ASSERT_NE(proxy->sslPort(), proxy->port());

  std::string error;
  auto plain = fetch(proxy->port(), get("/plain"), &error);
  ASSERT_TRUE(plain) << error;
  EXPECT_EQ(plain->status, 200);
  auto tls = fetchTls(proxy->sslPort(), get("/tls"), tlsOptions("default.test", testCerts().ca),
                      &error);
  ASSERT_TRUE(tls) << error;
  EXPECT_EQ(tls->status, 200);

  ASSERT_EQ(backend.requestCount(), 2u);
  std::vector<Request> seen = backend.requests();
  EXPECT_EQ(seen[0].target, "/plain");
  EXPECT_EQ(seen[0].header("X-Forwarded-Proto").value_or("(none)"), "http") << seen[0].raw_head;
  EXPECT_EQ(seen[1].target, "/tls");
  EXPECT_EQ(seen[1].header("X-Forwarded-Proto").value_or("(none)"), "https") << seen[1].raw_head;
  // A client's own claim does not survive.
  auto claimed = fetch(proxy->port(),
                       buildRequest("GET", "/claim", {{"Host", "x"}, {"X-Forwarded-Proto", "https"}},
                                    "", Framing::kNone),
                       &error);
  ASSERT_TRUE(claimed) << error;
  ASSERT_TRUE(backend.waitForRequests(3, Millis(2000)));
  EXPECT_EQ(headerValues(backend.requests()[2].headers, "X-Forwarded-Proto"),
            std::vector<std::string>{"http"});
}

// protocols {https: ip_hash} on a round_robin route: TLS requests from one client stick to one
// backend while plain ones rotate over both.
TEST_F(TlsTerminationTest, HttpsProtocolClassPicksItsBalancer) {
  auto identify = [](std::string who) { return FakeBackend::fixed(200, who); };
  FakeBackend a(identify("a")), b(identify("b"));
  ProxyOptions options = ProxyOptions::forBackends({a.port(), b.port()});
  options.routes[0].load_balancer = "round_robin";
  options.routes[0].protocols = {{"https", "ip_hash"}};
  options.ssl = allCertificates(-1);
  Proxy* proxy = startProxy(options);
  ASSERT_NE(proxy, nullptr);

  for (int i = 0; i < 20; ++i) {
    std::string error;
    auto r = fetchTls(proxy->sslPort(), get("/tls/" + std::to_string(i)),
                      tlsOptions("default.test", testCerts().ca), &error);
    ASSERT_TRUE(r) << error;
    ASSERT_EQ(r->status, 200);
  }
  size_t tls_a = countTargets(a, "/tls/"), tls_b = countTargets(b, "/tls/");
  EXPECT_TRUE((tls_a == 20 && tls_b == 0) || (tls_a == 0 && tls_b == 20))
      << "a got " << tls_a << ", b got " << tls_b;
  for (int i = 0; i < 20; ++i) {
    std::string error;
    auto r = fetch(proxy->port(), get("/plain/" + std::to_string(i)), &error);
    ASSERT_TRUE(r) << error;
  }
  EXPECT_GE(countTargets(a, "/plain/"), 8u);
  EXPECT_GE(countTargets(b, "/plain/"), 8u);
}

// The line of a TLS request names the protocol and the cipher: in the combined format among
// its fields, in the JSON one as ssl_protocol and ssl_cipher.
TEST_F(TlsTerminationTest, AccessLogShowsProtocolAndCipher) {
  for (const char* format : {"", "json"}) {
    SCOPED_TRACE(std::string("access_log_format ") + (*format ? format : "combined"));
    expectLoggedTls(format);
  }
}

void TlsTerminationTest::expectLoggedTls(const std::string& format) {
  FakeBackend backend(FakeBackend::fixed(200, "ok"));
  ProxyOptions proxy_options = ProxyOptions::forBackends({backend.port()});
  proxy_options.ssl = allCertificates();
  proxy_options.access_log_format = format;
  Proxy* proxy = startProxy(proxy_options);
  ASSERT_NE(proxy, nullptr);

  TlsClientOptions options = tlsOptions("default.test", testCerts().ca);
  options.max_version = "TLSv1.2";
  TlsClient client(proxy->sslPort(), options);
  ASSERT_TRUE(client.connected()) << client.error();
  ASSERT_TRUE(client.sendRaw(get("/logged-tls")));
  ASSERT_TRUE(client.readResponse()) << client.error();
  std::string cipher = client.info().cipher;
  ASSERT_FALSE(cipher.empty());

  std::vector<std::string> lines;
  EXPECT_TRUE(waitFor(
      [&] {
        lines = linesContaining(proxy->accessLog(), {"/logged-tls"});
        return !lines.empty();
      },
      Millis(5000)))
      << proxy->accessLog();
  ASSERT_EQ(lines.size(), 1u);
  EXPECT_THAT(lines[0], HasSubstr("TLSv1.2"));
  EXPECT_THAT(lines[0], HasSubstr(cipher));
  if (format != "json") return;
  json_t* entry = json_loads(lines[0].c_str(), 0, nullptr);
  ASSERT_NE(entry, nullptr) << lines[0];
  const char* protocol = json_string_value(json_object_get(entry, "ssl_protocol"));
  const char* logged_cipher = json_string_value(json_object_get(entry, "ssl_cipher"));
  EXPECT_EQ(std::string(protocol != nullptr ? protocol : "(none)"), "TLSv1.2") << lines[0];
  EXPECT_EQ(std::string(logged_cipher != nullptr ? logged_cipher : "(none)"), cipher) << lines[0];
  json_decref(entry);
}

// --- resumption ------------------------------------------------------------------------------------

// A session from one worker resumes on the other: the ticket keys are the zone's, not a
// worker's. Connections are opened, and kept open so the worker holding each can be found, until
// each of the two workers has resumed one (the kernel may hand most connections to one); bounded.
TEST_F(TlsTerminationTest, SessionResumesOnEitherOfTwoWorkers) {
  FakeBackend backend(FakeBackend::fixed(200, "ok"));
  Proxy* proxy = startTls(backend, allCertificates(), 2);
  ASSERT_NE(proxy, nullptr);

  for (const char* version : {"TLSv1.2", "TLSv1.3"}) {
    SCOPED_TRACE(version);
    TlsClientOptions options = tlsOptions("default.test", testCerts().ca);
    options.min_version = options.max_version = version;
    TlsSession session;
    {
      TlsClient first(proxy->sslPort(), options);
      ASSERT_TRUE(first.connected()) << first.error();
      ASSERT_TRUE(first.sendRaw(get("/first")));
      ASSERT_TRUE(first.readResponse()) << first.error();
      session = first.session();
    }
    ASSERT_NE(session, nullptr) << "the proxy issued no session ticket";
    options.session = session;
    std::set<pid_t> resumed_on;
    std::vector<std::unique_ptr<TlsClient>> held;
    for (int i = 0; i < 400 && resumed_on.size() < 2; ++i) {
      held.push_back(std::make_unique<TlsClient>(proxy->sslPort(), options));
      TlsClient& again = *held.back();
      ASSERT_TRUE(again.connected()) << again.error();
      pid_t worker = workerHolding(*proxy, again);
      ASSERT_NE(worker, 0);
      EXPECT_TRUE(again.info().resumed) << "connection " << i << " on worker " << worker;
      if (again.info().resumed) resumed_on.insert(worker);
      ASSERT_TRUE(again.sendRaw(get("/again")));
      ASSERT_TRUE(again.readResponse()) << again.error();
      if (again.session()) options.session = again.session();  // TLS 1.3 tickets are single-use
    }
    EXPECT_EQ(resumed_on.size(), 2u) << "resumed on one worker only, of " << held.size();
  }
}

// --- bad input on the TLS port ----------------------------------------------------------------------

TEST_F(TlsTerminationTest, PlainHttpOnTheTlsPortGets400AndNothingReachesTheBackend) {
  FakeBackend backend(FakeBackend::fixed(200, "never"));
  Proxy* proxy = startTls(backend);
  ASSERT_NE(proxy, nullptr);

  Client client(proxy->sslPort());
  ASSERT_TRUE(client.sendRaw(get("/plain-on-tls")));
  auto response = client.readResponse();
  ASSERT_TRUE(response) << client.error();
  EXPECT_EQ(response->status, 400);
  EXPECT_TRUE(containsIgnoreCase(response->body, "HTTPS")) << response->body;
  EXPECT_TRUE(client.waitForClose(Millis(5000)));
  EXPECT_EQ(backend.requestCount(), 0u);
  EXPECT_EQ(backend.connectionCount(), 0);
}

// A client that connects and says nothing, or half a ClientHello, is closed at header_timeout:
// not before (a slow network is not an attack) and not much after.
TEST_F(TlsTerminationTest, SlowOrSilentHandshakeIsClosedAtHeaderTimeout) {
  FakeBackend backend(FakeBackend::fixed(200, "never"));
  ProxyOptions options = ProxyOptions::forBackends({backend.port()});
  options.header_timeout = "1s";
  options.ssl = allCertificates();
  Proxy* proxy = startProxy(options);
  ASSERT_NE(proxy, nullptr);

  std::string hello = clientHelloBytes("default.test");
  ASSERT_GT(hello.size(), 20u);
  for (const std::string& sent : {std::string(), hello.substr(0, hello.size() / 2)}) {
    SCOPED_TRACE(std::to_string(sent.size()) + " bytes of a ClientHello");
    Client client(proxy->sslPort());
    ASSERT_TRUE(client.connected()) << client.error();
    auto start = Clock::now();
    ASSERT_TRUE(sent.empty() || client.sendRaw(sent)) << client.error();
    EXPECT_TRUE(client.waitForClose(Millis(4000))) << "still open after 4 s";
    auto took = std::chrono::duration_cast<Millis>(Clock::now() - start);
    EXPECT_GE(took, Millis(900));
    EXPECT_LT(took, Millis(3000));
  }
  // The proxy still serves: the slow ones took nothing from it.
  TlsClient fine(proxy->sslPort(), tlsOptions("default.test", testCerts().ca));
  EXPECT_TRUE(fine.connected()) << fine.error();
  EXPECT_EQ(backend.requestCount(), 0u);
}

// Many broken handshakes (garbage after a record header, a ClientHello cut off by a close):
// each closed, none reaching a backend, and the worker's memory does not grow with them.
TEST_F(TlsTerminationTest, BrokenHandshakesAreClosedWithoutLeaking) {
  FakeBackend backend(FakeBackend::fixed(200, "ok"));
  Proxy* proxy = startTls(backend);
  ASSERT_NE(proxy, nullptr);
  std::string hello = clientHelloBytes("default.test");
  auto breakHandshakes = [&](int count) {
    for (int i = 0; i < count; ++i) {
      Client client(proxy->sslPort());
      ASSERT_TRUE(client.connected()) << client.error();
      if (i % 2 == 0) {
        ASSERT_TRUE(client.sendRaw(std::string("\x16\x03\x01\x00\x40", 5) + std::string(64, 'x')));
        ASSERT_TRUE(client.waitForClose(Millis(3000))) << "garbage handshake " << i << " stayed open";
      } else {
        ASSERT_TRUE(client.sendRaw(hello.substr(0, hello.size() - 7)));
        client.stream()->shutdownWrite();
        ASSERT_TRUE(client.waitForClose(Millis(3000))) << "cut handshake " << i << " stayed open";
      }
    }
  };
  breakHandshakes(100);  // warm up: the allocator's arenas settle
  long before = proxy->totalRssKiB();
  breakHandshakes(1000);
  long after = proxy->totalRssKiB();
  // An SSL kept per broken handshake would be 20 MiB or more; ASan's quarantine holds 16 MiB.
  long bound_kib = (sanitized(proxy->pid()) ? 24 : 8) * 1024;
  EXPECT_LT(after - before, bound_kib) << "RSS grew from " << before << " to " << after << " KiB";
  EXPECT_EQ(backend.requestCount(), 0u);
  std::string error;
  auto still = fetchTls(proxy->sslPort(), get("/after"), tlsOptions("default.test", testCerts().ca),
                        &error);
  ASSERT_TRUE(still) << error;
  EXPECT_EQ(still->status, 200);
}

}  // namespace
}  // namespace speedmimi::test
