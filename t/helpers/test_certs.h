// Certificates made at test time with OpenSSL (never checked in), the one way both test programs
// make them: RSA and EC keys, certificates from a CertSpec (self-signed or signed by an issuer),
// PEM text, and a scratch directory to write them into, removed with everything in it.
// Each failure throws std::runtime_error with OpenSSL's reason.
#pragma once

#include <openssl/evp.h>
#include <openssl/x509.h>

#include <string>
#include <vector>

#include "event/handles.h"

namespace speedmimi::testing {

using KeyPtr = event::CPtr<EVP_PKEY, EVP_PKEY_free>;
using CertPtr = event::CPtr<X509, X509_free>;

enum class KeyType { kRsa, kEc };  // RSA 2048, EC P-256

KeyPtr makeKey(KeyType type);

// Initialized members, so a brace-initialized spec names only those it needs.
struct CertSpec {
  std::string cn;
  std::vector<std::string> dns = {};  // SAN DNS names
  std::vector<std::string> ip = {};   // SAN IP addresses; no DNS and no IP: no SAN
  long not_before = -3600;            // seconds from now
  long not_after = 86400;
  bool ca = false;
  // The extensions a public CA writes: key identifiers and, on a leaf, CA:FALSE, keyUsage and
  // serverAuth. Off, a CA has only its basicConstraints and keyUsage and a leaf only its SAN:
  // a keyUsage without keyCertSign would keep OpenSSL from taking a self-signed leaf as such.
  bool full_extensions = false;
};

// `key`'s certificate, signed by `issuer` with `issuer_key` (self-signed when nullptr). Serial
// numbers count up from 1 within a test program.
CertPtr makeCert(const CertSpec& spec, EVP_PKEY* key, X509* issuer = nullptr,
                 EVP_PKEY* issuer_key = nullptr);

std::string certPem(X509* cert);
std::string keyPem(EVP_PKEY* key);

// A directory of the test's own (mkdtemp under $TMPDIR, else /tmp), removed with everything in
// it.
class ScratchDir {
 public:
  ScratchDir();
  ~ScratchDir();
  ScratchDir(const ScratchDir&) = delete;
  ScratchDir& operator=(const ScratchDir&) = delete;

  const std::string& path() const { return path_; }
  std::string path(const std::string& name) const { return path_ + "/" + name; }

  // Each writes `name` in the directory and returns its path. writeCerts: leaf first.
  std::string writeCerts(const std::string& name, const std::vector<X509*>& certs) const;
  std::string writeKey(const std::string& name, EVP_PKEY* key) const;
  std::string writeText(const std::string& name, const std::string& text) const;

 private:
  std::string path_;
};

}  // namespace speedmimi::testing
