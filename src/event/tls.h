// TLS contexts over OpenSSL 3 (DESIGN §10): the server side with its certificates chosen by SNI,
// and the client side towards `scheme: https` backends. A Stream speaks TLS through an SSL made
// here (Stream::startTls); the proxy session, tunnels and the pool do not know which transport
// they have.
//
// Loading validates everything before anything is used: a file that cannot be read, a key that
// does not match its certificate, a chain that does not build, a certificate expired or not yet
// valid are each a TlsError naming the file and OpenSSL's reason. A context, once made, is never
// changed: a reload makes a new one, and the connections of the old one keep it (OpenSSL counts
// its references) until they close.
#pragma once

#include <openssl/ssl.h>

#include <cstdint>
#include <memory>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

#include "event/handles.h"

namespace speedmimi::event {

using SslCtxPtr = CPtr<SSL_CTX, SSL_CTX_free>;
using SslPtr = CPtr<SSL, SSL_free>;

// A certificate or key problem: `file` (empty when it is about no one file) and OpenSSL's reason
// in what().
class TlsError : public std::runtime_error {
 public:
  TlsError(std::string file, const std::string& reason)
      : std::runtime_error(reason), file_(std::move(file)) {}
  const std::string& file() const { return file_; }

 private:
  std::string file_;
};

// The newest error on this thread's OpenSSL queue as text ("key values mismatch"), or
// `fallback` when it is empty; the queue is emptied, so the next call does not see it.
std::string tlsErrorReason(const char* fallback);

// RFC 6125 §6.4: `pattern` (a DNS name from a certificate, possibly "*.example.com") matches
// `host` (an SNI name) case-insensitively; a wildcard is the whole left-most label only and
// matches exactly one label ("*.example.com" matches "a.example.com", not "example.com" nor
// "a.b.example.com"); "*" alone, partial-label wildcards ("a*.example.com") and wildcards over a
// public-suffix-like single label ("*.com") match nothing.
bool dnsNameMatches(std::string_view pattern, std::string_view host);

// Session-ticket keys shared by every worker (the zone keeps them; the master makes and rotates
// them). RFC 5077's layout, as SSL_CTX_set_tlsext_ticket_key_evp_cb wants it.
struct TicketKey {
  uint8_t name[16];
  uint8_t aes_key[32];   // AES-256-CBC
  uint8_t hmac_key[32];  // HMAC-SHA256
};

class TicketKeySource {
 public:
  // The key new tickets are encrypted with; false when there is none yet (no tickets issued).
  virtual bool current(TicketKey& key) const = 0;
  // The key named `name`, if it is still accepted; `renew` is set when it is not the current one
  // (the client then gets a new ticket under the current key).
  virtual bool find(const uint8_t (&name)[16], TicketKey& key, bool& renew) const = 0;

 protected:
  ~TicketKeySource() = default;
};

struct CertificateFiles {
  std::string cert_file;  // PEM: the certificate, then its chain
  std::string key_file;   // PEM: RSA or ECDSA private key
};

// What a loaded certificate is, for SNI, the log and /api/v1/stats/server.
struct CertificateInfo {
  std::string cert_file;
  std::vector<std::string> names;  // DNS names of its SAN (the CN when it has no SAN)
  std::string key_type;            // "RSA", "EC"
  int64_t not_after = 0;           // Unix seconds
};

struct ServerTlsOptions {
  // [0] is the default (ssl.cert_file/key_file): served when SNI names nothing that another
  // certificate's names match. Two entries with the same names and different key types (RSA and
  // ECDSA) are both served, OpenSSL choosing by what the client supports.
  std::vector<CertificateFiles> certificates;
  std::vector<std::string> protocols = {"TLSv1.2", "TLSv1.3"};
  const TicketKeySource* tickets = nullptr;  // nullptr: OpenSSL's own per-process keys
  int64_t now = 0;                           // Unix seconds, for the validity check; 0 = time()
};

class ServerTls {
 public:
  // Throws TlsError.
  static std::unique_ptr<ServerTls> load(const ServerTlsOptions& options);

  // A server-side SSL for an accepted socket (Stream::startTls takes it). nullptr only when
  // OpenSSL is out of memory.
  SslPtr newSession() const;

  const std::vector<CertificateInfo>& certificates() const { return infos_; }

 private:
  ServerTls() = default;
  std::vector<CertificateInfo> infos_;
  // The context of certificates[0]: every handshake starts on it. It owns (in its ex_data) the
  // SNI table and, through it, the contexts of the other certificates, so a handshake begun
  // before a reload finds them all alive after this object is gone.
  SslCtxPtr default_ctx_;
};

struct ClientTlsOptions {
  bool verify = true;   // tls_verify
  std::string ca_file;  // "" = the system store
};

class ClientTls {
 public:
  // Throws TlsError (an unreadable ca_file).
  static std::unique_ptr<ClientTls> load(const ClientTlsOptions& options);

  // A client-side SSL that sends `host` as SNI (unless it is an IP address) and, when verifying,
  // checks the certificate against it. It resumes the last session this context got for the
  // same host, when there is one (a context serves one backend: one host, one session kept).
  SslPtr newSession(const std::string& host) const;

 private:
  ClientTls() = default;
  SslCtxPtr ctx_;
};

}  // namespace speedmimi::event
