#include "event/tls.h"

#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <openssl/err.h>
#include <poll.h>
#include <sys/socket.h>

#include <cstring>
#include <functional>
#include <map>
#include <string>
#include <vector>

#include "event/stream.h"
#include "t/helpers/test_certs.h"

// Designated initializers name only the fields a test cares about.
#pragma GCC diagnostic ignored "-Wmissing-field-initializers"

namespace speedmimi::event {
namespace {

using std::chrono::milliseconds;
using testing::CertPtr;
using testing::CertSpec;
using testing::KeyPtr;
using testing::KeyType;
using testing::makeCert;
using testing::makeKey;
using testing::ScratchDir;

TEST(DnsNameMatchesTest, ExactWildcardAndNoMatch) {
  struct Case {
    const char* pattern;
    const char* host;
    bool match;
  } cases[] = {
      {"example.com", "example.com", true},
      {"Example.COM", "example.com", true},
      {"example.com", "example.com.", true},
      {"example.com", "www.example.com", false},
      {"*.example.com", "a.example.com", true},
      {"*.example.com", "A.Example.Com", true},
      {"*.example.com", "example.com", false},      // the apex
      {"*.example.com", "a.b.example.com", false},  // two labels
      {"*.example.com", ".example.com", false},
      {"a*.example.com", "ab.example.com", false},  // partial-label wildcard
      {"*", "example", false},
      {"*.com", "example.com", false},
      {"www.*.com", "www.a.com", false},
      {"", "example.com", false},
  };
  for (const Case& c : cases) {
    EXPECT_EQ(dnsNameMatches(c.pattern, c.host), c.match) << c.pattern << " vs " << c.host;
  }
}

// A CA and leaves signed by it, made once for the whole suite (RSA keys take a while).
class TlsTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    ca_key_ = new KeyPtr(makeKey(KeyType::kEc));
    ca_ = new CertPtr(makeCert({.cn = "Test CA", .ca = true}, ca_key_->get()));
    other_ca_key_ = new KeyPtr(makeKey(KeyType::kEc));
    other_ca_ = new CertPtr(makeCert({.cn = "Other CA", .ca = true}, other_ca_key_->get()));
    rsa_key_ = new KeyPtr(makeKey(KeyType::kRsa));
  }
  static void TearDownTestSuite() {
    delete ca_key_;
    delete ca_;
    delete other_ca_key_;
    delete other_ca_;
    delete rsa_key_;
  }

  // A leaf for `names` signed by the CA (the CA in the file too): its files.
  CertificateFiles leaf(const std::string& stem, const CertSpec& spec, bool rsa = false) {
    KeyPtr ec;
    EVP_PKEY* key = rsa_key_->get();
    if (!rsa) {
      ec = makeKey(KeyType::kEc);
      key = ec.get();
    }
    CertPtr cert = makeCert(spec, key, ca_->get(), ca_key_->get());
    return {dir_.writeCerts(stem + ".crt", {cert.get(), ca_->get()}),
            dir_.writeKey(stem + ".key", key)};
  }
  std::string caFile() { return dir_.writeCerts("ca.crt", {ca_->get()}); }

  static KeyPtr* ca_key_;
  static CertPtr* ca_;
  static KeyPtr* other_ca_key_;
  static CertPtr* other_ca_;
  static KeyPtr* rsa_key_;
  ScratchDir dir_;
};
KeyPtr* TlsTest::ca_key_;
CertPtr* TlsTest::ca_;
KeyPtr* TlsTest::other_ca_key_;
CertPtr* TlsTest::other_ca_;
KeyPtr* TlsTest::rsa_key_;

// Runs `load` and returns the TlsError it throws.
TlsError loadError(const ServerTlsOptions& options) {
  try {
    ServerTls::load(options);
  } catch (const TlsError& e) {
    return e;
  }
  ADD_FAILURE() << "no error";
  return TlsError("", "");
}

TEST_F(TlsTest, LoadsAChainAndDescribesItsCertificates) {
  ServerTlsOptions options;
  options.certificates = {leaf("a", {.cn = "a", .dns = {"a.example.com", "*.b.example.com"}}),
                          leaf("c", {.cn = "c.example.com"}, true)};
  auto tls = ServerTls::load(options);
  ASSERT_EQ(tls->certificates().size(), 2u);
  EXPECT_EQ(tls->certificates()[0].names,
            (std::vector<std::string>{"a.example.com", "*.b.example.com"}));
  EXPECT_EQ(tls->certificates()[0].key_type, "EC");
  EXPECT_EQ(tls->certificates()[1].names, std::vector<std::string>{"c.example.com"});  // the CN
  EXPECT_EQ(tls->certificates()[1].key_type, "RSA");
  EXPECT_NEAR(tls->certificates()[0].not_after, time(nullptr) + 86400, 60);
}

TEST_F(TlsTest, SelfSignedLeafIsItsOwnChain) {
  KeyPtr key = makeKey(KeyType::kEc);
  CertPtr cert = makeCert({.cn = "self", .dns = {"self.test"}}, key.get());
  ServerTlsOptions options;
  options.certificates = {
      {dir_.writeCerts("s.crt", {cert.get()}), dir_.writeKey("s.key", key.get())}};
  EXPECT_NO_THROW(ServerTls::load(options));
}

TEST_F(TlsTest, UnreadableFile) {
  ServerTlsOptions options;
  options.certificates = {{dir_.path("missing.crt"), dir_.path("missing.key")}};
  TlsError e = loadError(options);
  EXPECT_EQ(e.file(), dir_.path("missing.crt"));
  EXPECT_STREQ(e.what(), "cannot read: No such file or directory");
}

TEST_F(TlsTest, BadPem) {
  ServerTlsOptions options;
  CertificateFiles files = leaf("a", {.cn = "a"});
  files.cert_file = dir_.writeText("bad.crt", "-----BEGIN CERTIFICATE-----\nnot base64\n");
  options.certificates = {files};
  TlsError e = loadError(options);
  EXPECT_EQ(e.file(), files.cert_file);
  EXPECT_NE(std::string(e.what()).find("no PEM certificate: "), std::string::npos) << e.what();
}

TEST_F(TlsTest, KeyNotMatchingItsCertificate) {
  CertificateFiles a = leaf("a", {.cn = "a"});
  CertificateFiles b = leaf("b", {.cn = "b"});
  ServerTlsOptions options;
  options.certificates = {{a.cert_file, b.key_file}};
  TlsError e = loadError(options);
  EXPECT_EQ(e.file(), b.key_file);
  EXPECT_EQ(std::string(e.what()), "the private key does not match the certificate in " +
                                       a.cert_file + ": key values mismatch");
}

TEST_F(TlsTest, ExpiredAndNotYetValid) {
  ServerTlsOptions options;
  options.certificates = {leaf("old", {.cn = "old", .not_before = -7200, .not_after = -3600})};
  TlsError e = loadError(options);
  EXPECT_EQ(e.file(), options.certificates[0].cert_file);
  EXPECT_NE(std::string(e.what()).find("certificate has expired (notAfter "), std::string::npos)
      << e.what();

  options.certificates = {leaf("new", {.cn = "new", .not_before = 3600, .not_after = 7200})};
  e = loadError(options);
  EXPECT_NE(std::string(e.what()).find("certificate is not yet valid (notBefore "),
            std::string::npos)
      << e.what();
  // Against options.now, not the clock: the same certificate is fine two hours ahead.
  options.now = time(nullptr) + 5400;
  EXPECT_NO_THROW(ServerTls::load(options));
}

TEST_F(TlsTest, ChainThatDoesNotBuild) {
  KeyPtr key = makeKey(KeyType::kEc);
  CertPtr cert = makeCert({.cn = "orphan"}, key.get(), other_ca_->get(), other_ca_key_->get());
  ServerTlsOptions options;
  // Its issuer is neither in the file (the wrong CA is) nor in the system store.
  options.certificates = {
      {dir_.writeCerts("o.crt", {cert.get(), ca_->get()}), dir_.writeKey("o.key", key.get())}};
  TlsError e = loadError(options);
  EXPECT_EQ(e.file(), options.certificates[0].cert_file);
  EXPECT_STREQ(e.what(),
               "certificate chain does not build: unable to get local issuer certificate");
}

TEST_F(TlsTest, ProtocolsBelowTls12AreRefused) {
  ServerTlsOptions options;
  options.certificates = {leaf("a", {.cn = "a"})};
  options.protocols = {"TLSv1.1", "TLSv1.2"};
  TlsError e = loadError(options);
  EXPECT_EQ(e.file(), "");
  EXPECT_NE(std::string(e.what()).find("TLSv1.1"), std::string::npos);
}

TEST_F(TlsTest, ClientCaFileUnreadable) {
  try {
    ClientTls::load({.verify = true, .ca_file = dir_.path("none.pem")});
    ADD_FAILURE() << "no error";
  } catch (const TlsError& e) {
    EXPECT_EQ(e.file(), dir_.path("none.pem"));
  }
}

// ---------------------------------------------------------------------------------------------
// Handshakes over loopback TCP between two Streams on one loop.

class Handler : public StreamHandler {
 public:
  void onStreamEvent(Stream& s, StreamEvent ev) override {
    events.push_back(ev);
    if (on_event) on_event(s, ev);
  }
  bool saw(StreamEvent ev) const {
    for (StreamEvent e : events) {
      if (e == ev) return true;
    }
    return false;
  }
  std::vector<StreamEvent> events;
  std::function<void(Stream&, StreamEvent)> on_event;
};

std::string take(evbuffer* buf) {
  std::string s(evbuffer_get_length(buf), '\0');
  evbuffer_remove(buf, s.data(), s.size());
  return s;
}

class TlsStreamTest : public TlsTest {
 protected:
  void SetUp() override {
    base_.reset(event_base_new());
    listen_.reset(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    ASSERT_EQ(::bind(listen_.get(), reinterpret_cast<sockaddr*>(&addr), sizeof(addr)), 0);
    ASSERT_EQ(::listen(listen_.get(), 16), 0);
    socklen_t len = sizeof(addr_);
    ASSERT_EQ(getsockname(listen_.get(), reinterpret_cast<sockaddr*>(&addr_), &len), 0);
  }

  // A client Stream connecting and the server Stream of its accepted socket; `server_ssl` and
  // `client_ssl` started when given (the client's before connecting).
  void connectPair(SslPtr server_ssl, SslPtr client_ssl, int buffer_size = 0) {
    client_ = Stream::connect(base_.get(), reinterpret_cast<sockaddr*>(&addr_), sizeof(addr_),
                              milliseconds(2000), &client_h_);
    ASSERT_TRUE(client_);
    if (client_ssl) client_->startTls(std::move(client_ssl));
    int fd = ::accept4(listen_.get(), nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC);
    ASSERT_GE(fd, 0);
    if (buffer_size > 0) {
      for (int s : {fd, client_->fd()}) {
        setsockopt(s, SOL_SOCKET, SO_SNDBUF, &buffer_size, sizeof(buffer_size));
        setsockopt(s, SOL_SOCKET, SO_RCVBUF, &buffer_size, sizeof(buffer_size));
      }
    }
    server_ = std::make_unique<Stream>(base_.get(), fd, &server_h_);
    if (server_ssl) server_->startTls(std::move(server_ssl));
    server_->startReading(milliseconds(5000));
    client_->startReading(milliseconds(5000));
  }

  // Runs the loop until `done` holds; at most ~`seconds`.
  bool runUntil(const std::function<bool()>& done, int seconds = 5) {
    for (int i = 0; i < seconds * 100; ++i) {
      if (done()) return true;
      timeval tv{0, 10'000};
      event_base_loopexit(base_.get(), &tv);
      event_base_dispatch(base_.get());
    }
    return done();
  }

  // The client says "ping", the server answers "pong": the handshake is done both ways.
  void pingPong() {
    evbuffer_add(client_->output(), "ping", 4);
    ASSERT_TRUE(client_->flush());
    std::string got;
    ASSERT_TRUE(runUntil([&] {
      got += take(server_->input());
      return got == "ping";
    })) << got;
    evbuffer_add(server_->output(), "pong", 4);
    ASSERT_TRUE(server_->flush());
    got.clear();
    ASSERT_TRUE(runUntil([&] {
      got += take(client_->input());
      return got == "pong";
    })) << got;
  }

  std::string peerCn() {
    X509* cert = SSL_get0_peer_certificate(client_->tlsSession());
    if (cert == nullptr) return "";
    char cn[256];
    int len =
        X509_NAME_get_text_by_NID(X509_get_subject_name(cert), NID_commonName, cn, sizeof(cn));
    return len > 0 ? std::string(cn, len) : "";
  }

  std::unique_ptr<ClientTls> noVerify() { return ClientTls::load({.verify = false}); }

  EventBasePtr base_;
  Fd listen_;
  sockaddr_in addr_{};
  Handler client_h_, server_h_;
  std::unique_ptr<Stream> client_, server_;
};

TEST_F(TlsStreamTest, RequestAndResponseOverTls13WithAlpn) {
  ServerTlsOptions options;
  options.certificates = {leaf("a", {.cn = "a", .dns = {"a.test"}})};
  auto server = ServerTls::load(options);
  auto client = ClientTls::load({.verify = true, .ca_file = caFile()});
  connectPair(server->newSession(), client->newSession("a.test"));
  pingPong();
  EXPECT_TRUE(client_h_.saw(StreamEvent::kConnected));
  EXPECT_TRUE(server_->handshakeDone());
  EXPECT_TRUE(client_->handshakeDone());
  EXPECT_STREQ(server_->tlsVersion(), "TLSv1.3");
  EXPECT_STREQ(client_->tlsVersion(), "TLSv1.3");
  EXPECT_STRNE(server_->tlsCipher(), "");
  EXPECT_EQ(server_->tlsAlpn(), "http/1.1");
  EXPECT_EQ(client_->bytesWritten(), 4u);  // plaintext bytes
  EXPECT_EQ(server_->bytesRead(), 4u);
  EXPECT_FALSE(server_->plainHttpOnTls());
}

TEST_F(TlsStreamTest, AClientOfferingOnlyOtherProtocolsGetsNoAlpnAndNoAlert) {
  ServerTlsOptions options;
  options.certificates = {leaf("a", {.cn = "a", .dns = {"a.test"}})};
  auto server = ServerTls::load(options);
  auto client = noVerify();
  SslPtr ssl = client->newSession("a.test");
  static constexpr unsigned char kH2Only[] = {2, 'h', '2'};
  ASSERT_EQ(SSL_set_alpn_protos(ssl.get(), kH2Only, sizeof(kH2Only)), 0);
  connectPair(server->newSession(), std::move(ssl));
  pingPong();
  EXPECT_EQ(client_->tlsAlpn(), "");
  EXPECT_EQ(server_->tlsAlpn(), "");
}

TEST_F(TlsStreamTest, Tls12OnlyServerWithServerPreferredAead) {
  ServerTlsOptions options;
  options.certificates = {leaf("a", {.cn = "a", .dns = {"a.test"}}, true)};
  options.protocols = {"TLSv1.2"};
  auto server = ServerTls::load(options);
  connectPair(server->newSession(), noVerify()->newSession("a.test"));
  pingPong();
  EXPECT_STREQ(server_->tlsVersion(), "TLSv1.2");
  EXPECT_STREQ(server_->tlsCipher(), "ECDHE-RSA-AES128-GCM-SHA256");
}

TEST_F(TlsStreamTest, SniPicksExactThenWildcardThenTheDefault) {
  ServerTlsOptions options;
  options.certificates = {leaf("d", {.cn = "default", .dns = {"default.test"}}),
                          leaf("w", {.cn = "wild", .dns = {"*.example.test"}}),
                          leaf("a", {.cn = "exact", .dns = {"a.example.test"}})};
  auto server = ServerTls::load(options);
  auto client = noVerify();
  std::map<std::string, std::string> want = {
      {"a.example.test", "exact"}, {"b.example.test", "wild"},
      {"B.EXAMPLE.TEST", "wild"},  {"x.b.example.test", "default"},
      {"unknown.test", "default"}, {"127.0.0.1", "default"}};  // no SNI
  for (const auto& [host, cn] : want) {
    connectPair(server->newSession(), client->newSession(host));
    pingPong();
    EXPECT_EQ(peerCn(), cn) << host;
  }
}

TEST_F(TlsStreamTest, RsaAndEcdsaForTheSameNamesChosenByTheClient) {
  ServerTlsOptions options;
  options.certificates = {leaf("ec", {.cn = "ec", .dns = {"a.test"}}),
                          leaf("rsa", {.cn = "rsa", .dns = {"a.test"}}, true)};
  auto server = ServerTls::load(options);
  for (const char* sigalgs : {"ECDSA+SHA256", "RSA-PSS+SHA256:RSA+SHA256"}) {
    SslPtr ssl = noVerify()->newSession("a.test");  // a context of its own: no resumption
    ASSERT_EQ(SSL_set1_sigalgs_list(ssl.get(), sigalgs), 1);
    connectPair(server->newSession(), std::move(ssl));
    pingPong();
    EXPECT_EQ(peerCn(), sigalgs[0] == 'E' ? "ec" : "rsa") << sigalgs;
  }
}

// A pattern that a reader can check anywhere in a stream.
char patternAt(size_t i) {
  return static_cast<char>((i * 7) % 251);
}

// Socket buffers of 64 KiB against 10 MiB each way: most writes meet a full socket. (Smaller
// ones, set after the handshake of TCP, stall loopback on zero-window probes, TLS or not.)
TEST_F(TlsStreamTest, TenMebibytesBothWaysThroughSmallSocketBuffers) {
  ServerTlsOptions options;
  options.certificates = {leaf("a", {.cn = "a"})};
  auto server = ServerTls::load(options);
  connectPair(server->newSession(), noVerify()->newSession("a"), 65536);
  constexpr size_t kTotal = 10 * 1024 * 1024;
  std::string data(kTotal, '\0');
  for (size_t i = 0; i < kTotal; ++i) data[i] = patternAt(i);
  size_t got[2] = {0, 0};
  bool intact[2] = {true, true};
  auto reader = [&](int side) {
    return [&, side](Stream& s, StreamEvent ev) {
      if (ev != StreamEvent::kReadable) return;
      std::string chunk = take(s.input());
      for (size_t i = 0; i < chunk.size(); ++i) {
        if (chunk[i] != patternAt(got[side] + i)) intact[side] = false;
      }
      got[side] += chunk.size();
    };
  };
  server_h_.on_event = reader(0);
  client_h_.on_event = reader(1);
  evbuffer_add(client_->output(), data.data(), data.size());
  evbuffer_add(server_->output(), data.data(), data.size());
  ASSERT_TRUE(client_->flush());
  ASSERT_TRUE(server_->flush());
  EXPECT_GT(client_->pendingOutput(), 0u);  // the kernel took only part: the rest waits
  ASSERT_TRUE(runUntil([&] { return got[0] == kTotal && got[1] == kTotal; }, 20))
      << got[0] << " " << got[1];
  EXPECT_TRUE(intact[0]);
  EXPECT_TRUE(intact[1]);
  EXPECT_TRUE(client_h_.saw(StreamEvent::kDrained));
  EXPECT_EQ(client_->pendingOutput(), 0u);
  EXPECT_EQ(server_->bytesWritten(), kTotal);
}

TEST_F(TlsStreamTest, EveryDecryptedByteIsDeliveredBeforeTheHandler) {
  ServerTlsOptions options;
  options.certificates = {leaf("a", {.cn = "a"})};
  auto server = ServerTls::load(options);
  connectPair(server->newSession(), noVerify()->newSession("a"));
  pingPong();
  // Many records at once, more than one read of the server takes.
  std::string sent;
  for (int i = 0; i < 200; ++i) {
    std::string piece = "record " + std::to_string(i) + std::string(300, 'x') + "\n";
    evbuffer_add(client_->output(), piece.data(), piece.size());
    ASSERT_TRUE(client_->flush());  // one record each
    sent += piece;
  }
  std::string got;
  bool left_pending = false;
  server_h_.on_event = [&](Stream& s, StreamEvent ev) {
    if (ev != StreamEvent::kReadable) return;
    if (SSL_has_pending(s.tlsSession())) left_pending = true;
    got += take(s.input());
  };
  ASSERT_TRUE(runUntil([&] { return got.size() == sent.size(); }));
  EXPECT_EQ(got, sent);
  EXPECT_FALSE(left_pending);
}

TEST_F(TlsStreamTest, CloseNotifyAndABareFinAreEof) {
  ServerTlsOptions options;
  options.certificates = {leaf("a", {.cn = "a"})};
  auto server = ServerTls::load(options);
  auto client = noVerify();
  connectPair(server->newSession(), client->newSession("a"));
  pingPong();
  evbuffer_add(client_->output(), "last", 4);
  ASSERT_TRUE(client_->flush());
  client_->shutdownWrite();  // close_notify, then FIN
  ASSERT_TRUE(runUntil([&] { return server_h_.saw(StreamEvent::kEof); }));
  EXPECT_EQ(take(server_->input()), "last");
  EXPECT_FALSE(server_h_.saw(StreamEvent::kError));

  server_h_.events.clear();
  connectPair(server->newSession(), client->newSession("a"));
  pingPong();
  ::shutdown(client_->fd(), SHUT_WR);  // no close_notify
  ASSERT_TRUE(runUntil([&] { return server_h_.saw(StreamEvent::kEof); }));
  EXPECT_FALSE(server_h_.saw(StreamEvent::kError));

  // Bytes and close_notify read at once from a peer that keeps its socket open (it waits for
  // our close_notify): nothing wakes the loop again, yet the end is told after the bytes.
  server_h_.events.clear();
  connectPair(server->newSession(), client->newSession("a"));
  pingPong();
  server_->stopReading();
  evbuffer_add(client_->output(), "tail", 4);
  ASSERT_TRUE(client_->flush());
  ASSERT_EQ(SSL_shutdown(client_->tlsSession()), 0);  // close_notify sent, no FIN
  usleep(20'000);                                     // both records are in before we read
  server_->startReading(milliseconds(5000));
  ASSERT_TRUE(runUntil([&] { return server_h_.saw(StreamEvent::kEof); }, 2));
  EXPECT_EQ(take(server_->input()), "tail");
  EXPECT_EQ(server_h_.events.front(), StreamEvent::kReadable);
}

TEST_F(TlsStreamTest, PlainHttpOnATlsStreamIsDeliveredInClearText) {
  ServerTlsOptions options;
  options.certificates = {leaf("a", {.cn = "a"})};
  auto server = ServerTls::load(options);
  connectPair(server->newSession(), nullptr);
  const std::string request = "GET / HTTP/1.1\r\nHost: a\r\n\r\n";
  evbuffer_add(client_->output(), request.data(), request.size());
  ASSERT_TRUE(runUntil([&] { return client_->connected(); }));
  ASSERT_TRUE(client_->flush());
  ASSERT_TRUE(runUntil([&] { return server_h_.saw(StreamEvent::kReadable); }));
  EXPECT_TRUE(server_->plainHttpOnTls());
  EXPECT_FALSE(server_->isTls());
  EXPECT_EQ(take(server_->input()), request);
  // The answer goes out in clear text too.
  evbuffer_add(server_->output(), "HTTP/1.1 400", 12);
  ASSERT_TRUE(server_->flush());
  ASSERT_TRUE(runUntil([&] { return evbuffer_get_length(client_->input()) == 12; }));
}

TEST_F(TlsStreamTest, AnyOtherFirstByteIsAHandshakeFailure) {
  ServerTlsOptions options;
  options.certificates = {leaf("a", {.cn = "a"})};
  auto server = ServerTls::load(options);
  connectPair(server->newSession(), nullptr);
  ASSERT_TRUE(runUntil([&] { return client_->connected(); }));
  evbuffer_add(client_->output(), "\x01\x02\x03", 3);
  ASSERT_TRUE(client_->flush());
  ASSERT_TRUE(runUntil([&] { return server_h_.saw(StreamEvent::kError); }));
  EXPECT_FALSE(server_->plainHttpOnTls());
  EXPECT_EQ(server_->tlsError(), "not a TLS handshake");
  EXPECT_EQ(evbuffer_get_length(server_->input()), 0u);
}

TEST_F(TlsStreamTest, ClientVerificationFailuresSayWhy) {
  ServerTlsOptions options;
  options.certificates = {leaf("a", {.cn = "a", .dns = {"a.test"}})};
  auto server = ServerTls::load(options);
  ScratchDir other;
  auto wrong_ca = ClientTls::load(
      {.verify = true, .ca_file = other.writeCerts("other.crt", {other_ca_->get()})});
  struct Case {
    ClientTls* client;
    const char* host;
    const char* error;
  };
  auto right_ca = ClientTls::load({.verify = true, .ca_file = caFile()});
  for (const Case& c :
       {Case{wrong_ca.get(), "a.test",
             "certificate verify failed: self-signed certificate in certificate chain"},
        Case{right_ca.get(), "b.test", "certificate verify failed: hostname mismatch"}}) {
    client_h_.events.clear();
    connectPair(server->newSession(), c.client->newSession(c.host));
    ASSERT_TRUE(runUntil([&] { return client_h_.saw(StreamEvent::kError); }));
    EXPECT_EQ(client_->tlsError(), c.error);
    EXPECT_EQ(client_->lastError(), EPROTO);
    EXPECT_FALSE(client_->handshakeDone());
  }
}

// A client context resumes its host's last session by itself: a backend connection made after
// the pooled ones are gone costs no full handshake.
TEST_F(TlsStreamTest, ClientContextsResumeTheirHostsLastSession) {
  ServerTlsOptions options;
  options.certificates = {leaf("a", {.cn = "a", .dns = {"a.test"}})};
  for (const char* protocol : {"TLSv1.2", "TLSv1.3"}) {
    options.protocols = {protocol};
    auto server = ServerTls::load(options);
    auto client = ClientTls::load({.verify = true, .ca_file = caFile()});
    bool reused[3];
    for (bool& r : reused) {
      connectPair(server->newSession(), client->newSession("a.test"));
      pingPong();
      r = SSL_session_reused(client_->tlsSession()) == 1;
    }
    EXPECT_FALSE(reused[0]) << protocol;
    EXPECT_TRUE(reused[1]) << protocol;
    EXPECT_TRUE(reused[2]) << protocol;
    // Another host of the same context starts afresh.
    connectPair(server->newSession(), client->newSession("localhost"));
    EXPECT_TRUE(runUntil([&] { return client_h_.saw(StreamEvent::kError); }));
    client_h_.events.clear();
  }
}

// A flush that must read the peer's bytes first (the client's handshake under its first write),
// with the client and the server on loops of their own, so each side runs only when the test
// lets it: the client's request is queued before it connects, sent once connected.
class TlsFlushTest : public TlsStreamTest {
 protected:
  void start(bool client_reads) {
    client_ = Stream::connect(base_.get(), reinterpret_cast<sockaddr*>(&addr_), sizeof(addr_),
                              milliseconds(2000), &client_h_);
    ASSERT_TRUE(client_);
    client_->startTls(client_tls_->newSession("a.test"));
    if (client_reads) client_->startReading(milliseconds(5000));
    evbuffer_add(client_->output(), "ping", 4);
    int fd = ::accept4(listen_.get(), nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC);
    ASSERT_GE(fd, 0);
    server_ = std::make_unique<Stream>(server_base_.get(), fd, &server_h_);
    server_->startTls(server_tls_->newSession());
    server_->startReading(milliseconds(5000));
    // Connected, the hello sent: the flush waits for the server's answer.
    ASSERT_TRUE(runUntil([&] { return client_h_.saw(StreamEvent::kConnected); }));
    ASSERT_FALSE(client_->handshakeDone());
  }

  // Runs only the server's loop (`both`: the client's too) until `done`; at most ~5 s.
  bool runServerUntil(const std::function<bool()>& done, bool both = false) {
    for (int i = 0; i < 500; ++i) {
      if (done()) return true;
      for (event_base* b : {server_base_.get(), both ? base_.get() : nullptr}) {
        if (b == nullptr) continue;
        timeval tv{0, 5'000};
        event_base_loopexit(b, &tv);
        event_base_dispatch(b);
      }
    }
    return done();
  }
  bool clientHasBytes() {
    pollfd p{client_->fd(), POLLIN, 0};
    return ::poll(&p, 1, 0) == 1;
  }
  std::string serverGot() {
    server_got_ += take(server_->input());
    return server_got_;
  }

  std::unique_ptr<ServerTls> server_tls_ = [this] {
    ServerTlsOptions options;
    options.certificates = {leaf("a", {.cn = "a", .dns = {"a.test"}})};
    return ServerTls::load(options);
  }();
  std::unique_ptr<ClientTls> client_tls_ = noVerify();
  EventBasePtr server_base_{event_base_new()};
  std::string server_got_;
};

// The flush is done by a later one, outside the loop: the read event it armed must go, or the
// loop would read the server's answer for a handler that never asked to read.
TEST_F(TlsFlushTest, AFlushDoneWaitingToReadLeavesNoReadArmed) {
  start(false);
  ASSERT_TRUE(runServerUntil([&] { return clientHasBytes(); }));  // the server's flight
  ASSERT_TRUE(client_->flush());
  ASSERT_TRUE(client_->handshakeDone());
  ASSERT_TRUE(runServerUntil([&] { return serverGot() == "ping"; }));
  evbuffer_add(server_->output(), "pong", 4);
  ASSERT_TRUE(server_->flush());
  ASSERT_EQ(evbuffer_get_length(server_->output()), 0u);
  ASSERT_TRUE(clientHasBytes());
  for (int i = 0; i < 3; ++i) event_base_loop(base_.get(), EVLOOP_NONBLOCK);
  EXPECT_FALSE(client_h_.saw(StreamEvent::kReadable));
  EXPECT_EQ(evbuffer_get_length(client_->input()), 0u);
  client_->startReading(milliseconds(5000));
  std::string got;
  EXPECT_TRUE(runUntil([&] {
    got += take(client_->input());
    return got == "pong";
  })) << got;
}

// The flush waited on the handler's reads, which then stop: it still goes on when the server
// answers, and still times out when it does not.
TEST_F(TlsFlushTest, AFlushWaitingToReadGoesOnAfterStopReading) {
  start(true);
  client_->stopReading();
  EXPECT_TRUE(runServerUntil([&] { return serverGot() == "ping"; }, true)) << server_got_;
  EXPECT_TRUE(client_->handshakeDone());
  EXPECT_FALSE(client_h_.saw(StreamEvent::kReadable));
}

TEST_F(TlsFlushTest, AFlushWaitingToReadAfterStopReadingTimesOut) {
  start(true);
  client_->setWriteTimeout(milliseconds(50));
  client_->stopReading();
  EXPECT_TRUE(runUntil([&] { return client_h_.saw(StreamEvent::kWriteTimeout); }, 2));
  EXPECT_FALSE(client_h_.saw(StreamEvent::kReadTimeout));
}

// Ticket keys as the zone would hold them: a current one and older ones still accepted.
class FakeTicketKeys : public TicketKeySource {
 public:
  explicit FakeTicketKeys(uint8_t name) { add(name); }
  void add(uint8_t name) {
    TicketKey k;
    std::memset(&k, name, sizeof(k));
    keys_.insert(keys_.begin(), k);
  }
  bool current(TicketKey& key) const override {
    ++encrypts;
    key = keys_.front();
    return true;
  }
  bool find(const uint8_t (&name)[16], TicketKey& key, bool& renew) const override {
    for (size_t i = 0; i < keys_.size(); ++i) {
      if (std::memcmp(keys_[i].name, name, 16) == 0) {
        key = keys_[i];
        renew = i != 0;
        return true;
      }
    }
    return false;
  }
  void retireAllBut(size_t n) { keys_.resize(n); }
  mutable int encrypts = 0;

 private:
  std::vector<TicketKey> keys_;
};

class TicketTest : public TlsStreamTest, public ::testing::WithParamInterface<const char*> {
 protected:
  // A handshake to a server from `server`; resumes `session` when given. Returns the client's
  // session after the exchange (with its ticket).
  SSL_SESSION* handshake(ServerTls& server, SSL_SESSION* session, bool& reused) {
    SslPtr ssl = client_tls_->newSession("a.test");
    // A copy: a TLS 1.3 client takes a session it resumed out of use.
    if (session != nullptr) {
      SSL_SESSION* copy = SSL_SESSION_dup(session);
      SSL_set_session(ssl.get(), copy);
      SSL_SESSION_free(copy);
    }
    connectPair(server.newSession(), std::move(ssl));
    pingPong();
    reused = SSL_session_reused(client_->tlsSession()) == 1;
    return SSL_get1_session(client_->tlsSession());
  }
  static uint8_t ticketKeyName(SSL_SESSION* s) {
    const unsigned char* tick = nullptr;
    size_t len = 0;
    SSL_SESSION_get0_ticket(s, &tick, &len);
    return len >= 16 ? tick[0] : 0;
  }
  std::unique_ptr<ClientTls> client_tls_ = ClientTls::load({.verify = false});
};

TEST_P(TicketTest, AnotherContextWithTheSameKeysResumesAndRenewsAnOldKey) {
  FakeTicketKeys keys(0xa1);
  ServerTlsOptions options;
  options.certificates = {leaf("a", {.cn = "a", .dns = {"a.test"}})};
  options.protocols = {GetParam()};
  options.tickets = &keys;
  auto first = ServerTls::load(options);
  auto second = ServerTls::load(options);  // another worker, or after a reload
  bool reused = true;
  SSL_SESSION* s1 = handshake(*first, nullptr, reused);
  EXPECT_FALSE(reused);
  EXPECT_EQ(ticketKeyName(s1), 0xa1);

  SSL_SESSION* s2 = handshake(*second, s1, reused);
  EXPECT_TRUE(reused);

  keys.add(0xb2);  // rotated: 0xa1 is still accepted, new tickets under 0xb2
  int encrypts = keys.encrypts;
  SSL_SESSION* s3 = handshake(*first, s1, reused);
  EXPECT_TRUE(reused);
  EXPECT_GT(keys.encrypts, encrypts);  // renewed
  EXPECT_EQ(ticketKeyName(s3), 0xb2);

  keys.retireAllBut(1);  // 0xa1 is gone: a full handshake
  SSL_SESSION* s4 = handshake(*second, s1, reused);
  EXPECT_FALSE(reused);
  for (SSL_SESSION* s : {s1, s2, s3, s4}) SSL_SESSION_free(s);
}

INSTANTIATE_TEST_SUITE_P(Protocols, TicketTest, ::testing::Values("TLSv1.2", "TLSv1.3"));

}  // namespace
}  // namespace speedmimi::event
