// TLS for the harness (OpenSSL, independent of src/): TlsClient, the blocking Client over a TLS
// connection to the proxy, with what the handshake negotiated; tlsServer(), the accept hook that
// makes a FakeBackend an https backend; and the bytes of a ClientHello for the handshake-abuse
// tests. Both sides are a Stream::Transport, so requests and responses are read by the same code
// as over plain TCP.
#pragma once

#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "harness.h"

struct ssl_session_st;

namespace speedmimi::test {

// A session to resume (OpenSSL's SSL_SESSION, freed with the last reference).
using TlsSession = std::shared_ptr<ssl_session_st>;

struct TlsClientOptions {
  std::string sni;            // server name sent; "" = none
  std::string min_version;    // "TLSv1", "TLSv1.1", "TLSv1.2", "TLSv1.3"; "" = OpenSSL's default
  std::string max_version;    // as min_version
  std::vector<std::string> alpn = {"http/1.1"};  // protocols offered, in order; empty = no ALPN
  // Verify the server's chain against this CA file (and its name against verify_name, or sni);
  // "" = accept any certificate.
  std::string ca_file;
  std::string verify_name;
  TlsSession session;  // offered for resumption when set
  // OpenSSL's security level for the client: 0 lets it offer TLS 1.0/1.1 (refused by default at
  // level 1 and above), so a test of the server's refusal is not refused by the client itself.
  int security_level = -1;  // -1 = OpenSSL's default
  std::string groups;       // key-exchange groups, "" = OpenSSL's default
  std::string sigalgs;      // signature algorithms offered, "" = default ("ECDSA+SHA256" picks ECDSA)
  Millis handshake_timeout = kIoTimeout;
};

// Options with this SNI, verifying against `ca_file` when given (the rest as by default).
TlsClientOptions tlsOptions(std::string sni, std::string ca_file = "");

// What a handshake negotiated.
struct TlsInfo {
  std::string version;  // "TLSv1.3"
  std::string cipher;   // "TLS_AES_256_GCM_SHA384"
  std::string alpn;     // "" when none was agreed
  bool resumed = false;
  std::vector<std::string> peer_names;  // SAN DNS names of the server's certificate
  std::string peer_key_type;            // "RSA", "EC"
};

class TlsClient : public Client {
 public:
  // Connects to 127.0.0.1:port and handshakes; on failure connected() is false and error()
  // has OpenSSL's reason (and the verification error, if that was it).
  explicit TlsClient(int port, TlsClientOptions options = {},
                     Millis connect_timeout = Millis(5000));
  ~TlsClient();

  const TlsInfo& info() const { return info_; }
  // The newest session the server gave (TLS 1.3 sends tickets after the handshake, so read a
  // response first); nullptr if none yet.
  TlsSession session() const;

 private:
  std::string start(const TlsClientOptions& options);  // "" or why the handshake failed

  struct Slot;
  std::shared_ptr<Slot> slot_;
  TlsInfo info_;
};

// One TLS connection, one request, its response (nullopt with *error set).
std::optional<Response> fetchTls(int port, const std::string& request_bytes,
                                 const TlsClientOptions& options = {},
                                 std::string* error = nullptr, Millis timeout = kIoTimeout);

// What an https fake backend saw of its handshakes (thread-safe).
class TlsServerLog {
 public:
  void add(std::string sni, bool ok, std::string error);
  int handshakes() const;  // completed
  std::vector<std::string> sniNames() const;  // per completed handshake; "" for none
  std::vector<std::string> failures() const;  // OpenSSL's reasons for handshakes that failed

 private:
  mutable std::mutex mutex_;
  int handshakes_ = 0;
  std::vector<std::string> sni_;
  std::vector<std::string> failures_;
};

// An accept hook (FakeBackend::setAcceptHook) serving TLS 1.2/1.3 with this certificate chain
// and key, ALPN http/1.1. `log` (optional) records each handshake.
FakeBackend::AcceptHook tlsServer(const std::string& cert_file, const std::string& key_file,
                                  std::shared_ptr<TlsServerLog> log = nullptr);

// The first flight of a TLS client (a whole ClientHello record) naming `sni`: for the tests that
// send half of one.
std::string clientHelloBytes(const std::string& sni);

}  // namespace speedmimi::test
