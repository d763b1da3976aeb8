// The integration tests' catalogue of certificates, made with t/helpers/test_certs.h: a root CA
// and an intermediate under it, leaf certificates signed by the intermediate, a second unrelated
// CA, and the broken ones the validation tests need. They are made once per test-program run
// into a temporary directory (removed at exit), so a test pays for the key generation only once.
#pragma once

#include <string>

#include "t/helpers/test_certs.h"

namespace speedmimi::test {

struct CertKey {
  std::string cert;  // PEM: the leaf, then the intermediate (the chain a server sends)
  std::string key;   // PEM private key
  std::string leaf;  // PEM: the leaf alone
};

struct TestCerts {
  std::string dir;
  std::string ca;            // the root CA certificate: what clients trust
  std::string intermediate;  // the intermediate CA certificate (signed by the root)
  std::string wrong_ca;      // an unrelated root CA that signed nothing here but its own leaf

  CertKey default_rsa;    // SAN DNS:default.test, RSA 2048
  CertKey default_ecdsa;  // SAN DNS:default.test, ECDSA P-256 (the RSA one's twin)
  CertKey a;              // SAN DNS:a.test (RSA 2048)
  CertKey b;              // SAN DNS:b.test (ECDSA P-256)
  CertKey wild;           // SAN DNS:*.wild.test (ECDSA P-256)
  CertKey backend;        // SAN DNS:localhost, IP:127.0.0.1 (ECDSA P-256): the https backends'
  CertKey wrong_backend;  // as `backend` but signed by wrong_ca
  CertKey expired;        // default.test, not after yesterday
  CertKey not_yet_valid;  // default.test, not before tomorrow
  CertKey expiring;       // default.test, valid for 7 more days (under the 14-day warning)
  std::string mismatched_key;  // a key that belongs to no certificate here
  std::string chain;           // default_rsa.cert: the chain file (leaf + intermediate)
};

// The certificates of this run, made on first use. Aborts the test program if OpenSSL fails
// (no test could mean anything without them).
const TestCerts& testCerts();

// A directory of the test's own, removed with everything in it (t/helpers/test_certs.h).
using testing::ScratchDir;

// Copies a file (cert or key) to `to`, replacing it atomically (temp file + rename), so a
// process re-reading `to` sees the old or the new bytes, never a mix.
bool replaceFile(const std::string& from, const std::string& to);

}  // namespace speedmimi::test
