// TLS to backends (issue 11, DESIGN §7 scheme/tls_verify/ca_file, §10): `scheme: https`
// backends verified against a private CA (ca_file), against the system store by default, or not
// at all (tls_verify: false); SNI set to the backend host; pooled TLS connections reused; health
// checks over TLS. The backends are FakeBackends serving TLS with test certificates.
#include "harness.h"
#include "tls_certs.h"
#include "tls_client.h"
#include "tls_transport.h"

namespace speedmimi::test {
namespace {

using ::testing::HasSubstr;
using ::testing::IsEmpty;

std::string get(const std::string& target) {
  return buildRequest("GET", target, {{"Host", "app.test"}}, "", Framing::kNone);
}

class TlsBackendTest : public ProxyTest {
 protected:
  // One https backend serving `pair`, and a proxy whose only backend it is, with `tweak` applied
  // to the backend's spec (ca_file the test CA unless changed).
  Proxy* startWith(FakeBackend& backend, const CertKey& pair,
                   const std::function<void(BackendSpec&)>& tweak = nullptr) {
    backend.setAcceptHook(tlsServer(pair.cert, pair.key, log_));
    ProxyOptions options = withHttpsBackends(ProxyOptions::forBackends({backend.port()}));
    if (tweak) tweak(options.backends["app"][0]);
    return startProxy(options);
  }

  std::shared_ptr<TlsServerLog> log_ = std::make_shared<TlsServerLog>();
};

TEST_F(TlsBackendTest, PrivateCaWithVerificationOnPasses) {
  FakeBackend backend(FakeBackend::echo());
  Proxy* proxy = startWith(backend, testCerts().backend);
  ASSERT_NE(proxy, nullptr);

  std::string error;
  auto response = fetch(proxy->port(), get("/verified"), &error);
  ASSERT_TRUE(response) << error;
  EXPECT_EQ(response->status, 200) << response->body << "\n" << proxy->errorLog();
  ASSERT_EQ(backend.requestCount(), 1u);
  EXPECT_EQ(backend.requests()[0].target, "/verified");
  EXPECT_EQ(log_->handshakes(), 1);
  EXPECT_THAT(log_->failures(), IsEmpty());
  // The host is an address: no SNI (RFC 6066 allows only names), verified against the IP SAN.
  EXPECT_EQ(log_->sniNames(), std::vector<std::string>{""});
}

TEST_F(TlsBackendTest, SniIsTheBackendHostName) {
  FakeBackend backend(FakeBackend::fixed(200, "named"));
  Proxy* proxy = startWith(backend, testCerts().backend,
                           [](BackendSpec& spec) { spec.host = "localhost"; });
  ASSERT_NE(proxy, nullptr);

  std::string error;
  auto response = fetch(proxy->port(), get("/named"), &error);
  ASSERT_TRUE(response) << error;
  EXPECT_EQ(response->status, 200) << proxy->errorLog();
  EXPECT_EQ(log_->sniNames(), std::vector<std::string>{"localhost"});
}

TEST_F(TlsBackendTest, WrongCaGets502AndTheVerifyErrorIsLogged) {
  FakeBackend backend(FakeBackend::fixed(200, "must not be seen"));
  CertKey leaf_only = testCerts().wrong_backend;  // without its root in the chain: error 20
  leaf_only.cert = leaf_only.leaf;
  Proxy* proxy = startWith(backend, leaf_only);
  ASSERT_NE(proxy, nullptr);

  std::string error;
  auto response = fetch(proxy->port(), get("/untrusted"), &error);
  ASSERT_TRUE(response) << error;
  EXPECT_EQ(response->status, 502);
  EXPECT_EQ(backend.requestCount(), 0u) << "a request went to an unverified backend";
  // OpenSSL's verify error, as X509_verify_cert_error_string words it: 20 or 21 for a leaf whose
  // issuer is unknown (21 when the chain is the leaf alone).
  std::vector<std::string> lines;
  EXPECT_TRUE(waitFor(
      [&] {
        lines = linesContaining(proxy->errorLog(), {"unable to get local issuer certificate",
                                                    "unable to verify the first certificate"});
        return !lines.empty();
      },
      Millis(3000)))
      << proxy->errorLog();
  // The error names the backend, as other upstream errors do (the warning about the 502 that
  // follows is about the client).
  const std::string address = "127.0.0.1:" + std::to_string(backend.port());
  size_t errors = 0;
  for (const std::string& line : lines) {
    if (line.find("[error]") == std::string::npos) continue;
    ++errors;
    EXPECT_THAT(line, HasSubstr(address)) << line;
  }
  EXPECT_EQ(errors, 1u) << proxy->errorLog();
}

TEST_F(TlsBackendTest, TheSystemStoreIsTheDefaultAndDoesNotKnowThePrivateCa) {
  FakeBackend backend(FakeBackend::fixed(200, "must not be seen"));
  Proxy* proxy = startWith(backend, testCerts().backend,
                           [](BackendSpec& spec) { spec.ca_file.clear(); });
  ASSERT_NE(proxy, nullptr);

  std::string error;
  auto response = fetch(proxy->port(), get("/system-store"), &error);
  ASSERT_TRUE(response) << error;
  EXPECT_EQ(response->status, 502);
  EXPECT_EQ(backend.requestCount(), 0u);
}

TEST_F(TlsBackendTest, ACertificateForAnotherNameGets502) {
  FakeBackend backend(FakeBackend::fixed(200, "must not be seen"));
  Proxy* proxy = startWith(backend, testCerts().a);  // a.test, not 127.0.0.1
  ASSERT_NE(proxy, nullptr);

  std::string error;
  auto response = fetch(proxy->port(), get("/other-name"), &error);
  ASSERT_TRUE(response) << error;
  EXPECT_EQ(response->status, 502);
  EXPECT_EQ(backend.requestCount(), 0u);
}

TEST_F(TlsBackendTest, TlsVerifyFalseAcceptsAnyCertificate) {
  FakeBackend backend(FakeBackend::fixed(200, "unverified but fine"));
  Proxy* proxy = startWith(backend, testCerts().wrong_backend, [](BackendSpec& spec) {
    spec.tls_verify = false;
    spec.ca_file.clear();
  });
  ASSERT_NE(proxy, nullptr);

  std::string error;
  auto response = fetch(proxy->port(), get("/unverified"), &error);
  ASSERT_TRUE(response) << error;
  EXPECT_EQ(response->status, 200) << proxy->errorLog();
  EXPECT_EQ(response->body, "unverified but fine");
  EXPECT_EQ(log_->handshakes(), 1);
}

// Keep-alive client or fresh client connections: one pooled TLS connection, one handshake.
TEST_F(TlsBackendTest, PooledTlsConnectionsAreReused) {
  FakeBackend backend(FakeBackend::targetEcho());
  Proxy* proxy = startWith(backend, testCerts().backend);
  ASSERT_NE(proxy, nullptr);

  Client client(proxy->port());
  for (int i = 0; i < 20; ++i) {
    std::string target = "/pooled/" + std::to_string(i);
    ASSERT_TRUE(client.sendRaw(get(target))) << client.error();
    auto response = client.readResponse();
    ASSERT_TRUE(response) << i << ": " << client.error();
    ASSERT_EQ(response->body, target);
  }
  for (int i = 0; i < 20; ++i) {
    std::string error;
    auto response = fetch(proxy->port(), get("/fresh/" + std::to_string(i)), &error);
    ASSERT_TRUE(response) << error;
    ASSERT_EQ(response->status, 200);
  }
  EXPECT_EQ(backend.connectionCount(), 1);
  EXPECT_EQ(log_->handshakes(), 1);
}

// 10 MiB up and 10 MiB down through a TLS upstream, byte-identical, both framings.
TEST_F(TlsBackendTest, LargeBodiesBothWaysOverATlsUpstream) {
  FakeBackend backend(FakeBackend::echo());
  Proxy* proxy = startWith(backend, testCerts().backend);
  ASSERT_NE(proxy, nullptr);

  for (Framing framing : {Framing::kLength, Framing::kChunked}) {
    std::string body = patternBytes(framing == Framing::kChunked ? 7 : 0, 10 * 1024 * 1024);
    Client client(proxy->port());
    ASSERT_TRUE(client.sendRaw(buildRequest("POST", "/big", {{"Host", "app.test"}}, body, framing),
                               Millis(30'000)));
    auto response = client.readResponse(Millis(30'000));
    ASSERT_TRUE(response) << client.error();
    EXPECT_EQ(response->status, 200);
    EXPECT_TRUE(sameBytes(body, response->body));
  }
  std::vector<Request> seen = backend.requests();
  ASSERT_EQ(seen.size(), 2u);
  EXPECT_EQ(seen[0].body.size(), 10u * 1024 * 1024);
  EXPECT_TRUE(seen[1].chunked);
}

// Health checks speak TLS: the good backend's probes arrive as parsed HTTP inside TLS; the one
// whose certificate does not verify is taken out, and clients only see the good one.
TEST_F(TlsBackendTest, HealthChecksSpeakTlsToHttpsBackends) {
  auto answer = [](std::string who) {
    return [who](const Request& request, Responder& out) {
      out.send(buildResponse(200, {}, request.target == "/health" ? "healthy" : who));
    };
  };
  FakeBackend good(answer("good")), bad(answer("bad"));
  auto good_log = std::make_shared<TlsServerLog>();
  auto bad_log = std::make_shared<TlsServerLog>();
  good.setAcceptHook(tlsServer(testCerts().backend.cert, testCerts().backend.key, good_log));
  bad.setAcceptHook(tlsServer(testCerts().wrong_backend.cert, testCerts().wrong_backend.key, bad_log));
  ProxyOptions options = withHttpsBackends(ProxyOptions::forBackends({good.port(), bad.port()}));
  options.routes[0].load_balancer = "round_robin";
  for (BackendSpec& spec : options.backends["app"]) spec.health_check = HealthCheckSpec{};
  Proxy* proxy = startProxy(options);
  ASSERT_NE(proxy, nullptr);

  EXPECT_TRUE(waitFor([&] { return countTargets(good, "/health") >= 3; }, Millis(5000)))
      << "no TLS health probes reached the https backend";
  EXPECT_THAT(good_log->failures(), IsEmpty());
  EXPECT_TRUE(waitFor(
      [&] { return !linesContaining(proxy->errorLog(), {"backend b2 of app is down"}).empty(); },
      Millis(5000)))
      << proxy->errorLog();
  EXPECT_EQ(bad.requestCount(), 0u) << "the unverified backend got requests";
  EXPECT_FALSE(bad_log->failures().empty()) << "the probes of b2 never tried a handshake";
  for (int i = 0; i < 10; ++i) {
    std::string error;
    auto response = fetch(proxy->port(), get("/after/" + std::to_string(i)), &error);
    ASSERT_TRUE(response) << error;
    EXPECT_EQ(response->status, 200);
    EXPECT_EQ(response->body, "good");
  }
}

}  // namespace
}  // namespace speedmimi::test
