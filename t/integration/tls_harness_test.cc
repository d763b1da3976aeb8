// The TLS pieces of the harness, checked against independent implementations: TlsClient against
// `openssl s_server`, the https FakeBackend against curl. The TLS tests of the proxy rely on
// both telling the truth.
#include <fcntl.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include "harness.h"
#include "tls_certs.h"
#include "tls_client.h"

namespace speedmimi::test {
namespace {

// A program running beside the test (openssl s_server), killed at the end of the scope.
class Background {
 public:
  explicit Background(std::vector<std::string> args) {
    std::vector<char*> argv;
    for (auto& a : args) argv.push_back(a.data());
    argv.push_back(nullptr);
    pid_ = fork();
    if (pid_ == 0) {
      int null = open("/dev/null", O_RDWR);
      dup2(null, 0);
      dup2(null, 1);
      dup2(null, 2);
      execvp(argv[0], argv.data());
      _exit(127);
    }
  }
  ~Background() {
    if (pid_ <= 0) return;
    kill(pid_, SIGKILL);
    waitpid(pid_, nullptr, 0);
  }

 private:
  pid_t pid_ = -1;
};

bool accepts(int port) {
  return waitFor([&] { return Client(port, Millis(100)).connected(); }, Millis(5000));
}

// s_server -www answers GET / with a status page naming the negotiated protocol and cipher.
struct SServer {
  int port = pickFreePort();
  Background process;
  SServer(const CertKey& pair, std::vector<std::string> extra)
      : process([&] {
          std::vector<std::string> args = {"openssl", "s_server", "-accept", std::to_string(port),
                                           "-cert", pair.leaf, "-cert_chain", testCerts().intermediate,
                                           "-key", pair.key, "-www",
                                           "-alpn", "http/1.1"};
          args.insert(args.end(), extra.begin(), extra.end());
          return args;
        }()) {}
};

std::string getRoot() {
  return buildRequest("GET", "/", {{"Host", "default.test"}}, "", Framing::kNone);
}

TEST(TlsHarness, ClientNegotiatesWithOpenSslServerAndReadsTheResponse) {
  const TestCerts& certs = testCerts();
  SServer server(certs.a, {});
  ASSERT_TRUE(accepts(server.port));
  TlsClient client(server.port, tlsOptions("a.test", certs.ca));
  ASSERT_TRUE(client.connected()) << client.error();
  EXPECT_EQ(client.info().version, "TLSv1.3");
  EXPECT_EQ(client.info().alpn, "http/1.1");
  EXPECT_FALSE(client.info().resumed);
  EXPECT_EQ(client.info().peer_names, std::vector<std::string>{"a.test"});
  EXPECT_EQ(client.info().peer_key_type, "RSA");
  ASSERT_TRUE(client.sendRaw(getRoot()));
  std::optional<Response> response = client.readResponse();
  ASSERT_TRUE(response) << client.error();
  EXPECT_EQ(response->status, 200);
  EXPECT_THAT(response->body, ::testing::HasSubstr(client.info().cipher));
}

TEST(TlsHarness, ClientResumesASessionFromATicket) {
  const TestCerts& certs = testCerts();
  SServer server(certs.b, {});
  ASSERT_TRUE(accepts(server.port));
  TlsSession session;
  {
    TlsClient first(server.port, tlsOptions("b.test"));
    ASSERT_TRUE(first.connected()) << first.error();
    ASSERT_TRUE(first.sendRaw(getRoot()));
    ASSERT_TRUE(first.readResponse()) << first.error();
    session = first.session();
  }
  ASSERT_NE(session, nullptr);
  TlsClientOptions options = tlsOptions("b.test");
  options.session = session;
  TlsClient second(server.port, options);
  ASSERT_TRUE(second.connected()) << second.error();
  EXPECT_TRUE(second.info().resumed);
  EXPECT_EQ(second.info().peer_key_type, "EC");
}

TEST(TlsHarness, ClientOffersTls11WhenAskedSoARefusalIsTheServers) {
  const TestCerts& certs = testCerts();
  SServer permissive(certs.a, {"-tls1_1", "-cipher", "DEFAULT:@SECLEVEL=0"});
  ASSERT_TRUE(accepts(permissive.port));
  TlsClientOptions tls11 = tlsOptions("a.test");
  tls11.min_version = tls11.max_version = "TLSv1.1";
  tls11.security_level = 0;
  TlsClient old(permissive.port, tls11);
  ASSERT_TRUE(old.connected()) << old.error();
  EXPECT_EQ(old.info().version, "TLSv1.1");

  SServer modern(certs.a, {});
  ASSERT_TRUE(accepts(modern.port));
  TlsClient refused(modern.port, tls11);
  EXPECT_FALSE(refused.connected());
  EXPECT_THAT(refused.error(), ::testing::HasSubstr("TLS handshake"));
}

TEST(TlsHarness, ClientReportsAnUntrustedChainWithTheVerifyError) {
  const TestCerts& certs = testCerts();
  SServer server(certs.a, {});
  ASSERT_TRUE(accepts(server.port));
  TlsClient client(server.port, tlsOptions("a.test", certs.wrong_ca));
  EXPECT_FALSE(client.connected());
  EXPECT_THAT(client.error(), ::testing::HasSubstr("certificate"));
}

// curl, trusting only the test CA, talks to the https fake backend: the backend's chain builds,
// its name matches 127.0.0.1, and requests and bodies pass both ways.
TEST(TlsHarness, HttpsFakeBackendServesCurl) {
  const TestCerts& certs = testCerts();
  auto log = std::make_shared<TlsServerLog>();
  FakeBackend backend(FakeBackend::echo(FakeBackend::EchoFraming::kContentLength));
  backend.setAcceptHook(tlsServer(certs.backend.cert, certs.backend.key, log));
  ASSERT_TRUE(backend.ok());
  std::string url = "https://127.0.0.1:" + std::to_string(backend.port()) + "/echo";
  Proxy::CommandResult curl = runProgram(
      {"curl", "-sS", "--max-time", "10", "--cacert", certs.ca, "--data-binary", "hello over tls",
       "-H", "Content-Type: text/plain", "-w", "\\n%{http_code} %{ssl_verify_result}", url},
      certs.dir);
  ASSERT_EQ(curl.exit_code, 0) << curl.err;
  EXPECT_EQ(curl.out, "hello over tls\n200 0");
  ASSERT_TRUE(backend.waitForRequests(1, Millis(2000)));
  EXPECT_EQ(backend.requests()[0].body, "hello over tls");
  EXPECT_EQ(log->handshakes(), 1);

  Proxy::CommandResult untrusted =
      runProgram({"curl", "-sS", "--max-time", "10", "--cacert", certs.wrong_ca, url}, certs.dir);
  EXPECT_EQ(untrusted.exit_code, 60) << untrusted.err;  // peer certificate cannot be verified
  EXPECT_EQ(backend.requestCount(), 1u);
}

TEST(TlsHarness, HttpsFakeBackendServesTlsClientAndSeesItsSni) {
  const TestCerts& certs = testCerts();
  auto log = std::make_shared<TlsServerLog>();
  FakeBackend backend(FakeBackend::largeBody(3 * 1024 * 1024));
  backend.setAcceptHook(tlsServer(certs.backend.cert, certs.backend.key, log));
  TlsClient client(backend.port(), tlsOptions("localhost", certs.ca));
  ASSERT_TRUE(client.connected()) << client.error();
  ASSERT_TRUE(client.sendRaw(getRoot()));
  std::optional<Response> response = client.readResponse();
  ASSERT_TRUE(response) << client.error();
  EXPECT_TRUE(sameBytes(patternBytes(0, 3 * 1024 * 1024), response->body));
  EXPECT_EQ(log->sniNames(), std::vector<std::string>{"localhost"});
}

TEST(TlsHarness, ClientHelloBytesAreOneHandshakeRecord) {
  std::string hello = clientHelloBytes("default.test");
  ASSERT_GT(hello.size(), 5u);
  EXPECT_EQ(hello[0], 0x16);  // handshake record
  size_t length = (static_cast<uint8_t>(hello[3]) << 8) | static_cast<uint8_t>(hello[4]);
  EXPECT_EQ(hello.size(), length + 5);
  EXPECT_EQ(hello[5], 0x01);  // ClientHello
  EXPECT_NE(hello.find("default.test"), std::string::npos);
}

}  // namespace
}  // namespace speedmimi::test
