#include "tls_certs.h"

#include <cstdlib>
#include <filesystem>
#include <iostream>
#include <stdexcept>

namespace speedmimi::test {

namespace {

using testing::CertPtr;
using testing::CertSpec;
using testing::KeyPtr;
using testing::KeyType;

constexpr long kDay = 24 * 3600;

// Everything here carries the extensions of a public CA's certificates, as a proxy in
// production meets them.
CertSpec caSpec(const std::string& cn) {
  return {
      .cn = cn, .not_before = -kDay, .not_after = 3650 * kDay, .ca = true, .full_extensions = true};
}

CertSpec leafSpec(const std::string& dns, long not_before = -kDay, long not_after = 365 * kDay) {
  return {.cn = dns,
          .dns = {dns},
          .not_before = not_before,
          .not_after = not_after,
          .full_extensions = true};
}

// Leaves signed by one CA, each written as NAME.leaf.crt, NAME.crt (leaf + CA) and NAME.key.
class Maker {
 public:
  Maker(const testing::ScratchDir& dir, X509* issuer, EVP_PKEY* issuer_key)
      : dir_(dir), issuer_(issuer), issuer_key_(issuer_key) {}

  CertKey leaf(const std::string& name, KeyType type, const CertSpec& spec) const {
    KeyPtr key = testing::makeKey(type);
    CertPtr cert = testing::makeCert(spec, key.get(), issuer_, issuer_key_);
    CertKey out;
    out.leaf = dir_.writeCerts(name + ".leaf.crt", {cert.get()});
    out.cert = dir_.writeCerts(name + ".crt", {cert.get(), issuer_});
    out.key = dir_.writeKey(name + ".key", key.get());
    return out;
  }

 private:
  const testing::ScratchDir& dir_;
  X509* issuer_;
  EVP_PKEY* issuer_key_;
};

TestCerts makeAll(const testing::ScratchDir& dir) {
  TestCerts c;
  c.dir = dir.path();
  KeyPtr root_key = testing::makeKey(KeyType::kEc);
  CertPtr root = testing::makeCert(caSpec("SpeedMimi Test Root CA"), root_key.get());
  c.ca = dir.writeCerts("ca.crt", {root.get()});

  KeyPtr mid_key = testing::makeKey(KeyType::kEc);
  CertPtr mid = testing::makeCert(caSpec("SpeedMimi Test Intermediate CA"), mid_key.get(),
                                  root.get(), root_key.get());
  c.intermediate = dir.writeCerts("intermediate.crt", {mid.get()});

  KeyPtr wrong_key = testing::makeKey(KeyType::kEc);
  CertPtr wrong = testing::makeCert(caSpec("Unrelated Test Root CA"), wrong_key.get());
  c.wrong_ca = dir.writeCerts("wrong-ca.crt", {wrong.get()});

  const Maker maker(dir, mid.get(), mid_key.get());
  c.default_rsa = maker.leaf("default-rsa", KeyType::kRsa, leafSpec("default.test"));
  c.default_ecdsa = maker.leaf("default-ecdsa", KeyType::kEc, leafSpec("default.test"));
  c.a = maker.leaf("a", KeyType::kRsa, leafSpec("a.test"));
  c.b = maker.leaf("b", KeyType::kEc, leafSpec("b.test"));
  c.wild = maker.leaf("wild", KeyType::kEc, leafSpec("*.wild.test"));
  CertSpec backend = leafSpec("localhost");
  backend.ip = {"127.0.0.1"};
  c.backend = maker.leaf("backend", KeyType::kEc, backend);
  c.expired = maker.leaf("expired", KeyType::kEc, leafSpec("default.test", -30 * kDay, -kDay));
  c.not_yet_valid =
      maker.leaf("not-yet-valid", KeyType::kEc, leafSpec("default.test", kDay, 30 * kDay));
  c.expiring = maker.leaf("expiring", KeyType::kEc, leafSpec("default.test", -kDay, 7 * kDay));
  c.chain = c.default_rsa.cert;

  const Maker wrong_maker(dir, wrong.get(), wrong_key.get());
  c.wrong_backend = wrong_maker.leaf("wrong-backend", KeyType::kEc, backend);

  KeyPtr stray = testing::makeKey(KeyType::kEc);
  c.mismatched_key = dir.writeKey("mismatched.key", stray.get());
  return c;
}

// No test could mean anything without the certificates: a failure ends the program.
TestCerts makeAllOrDie(const testing::ScratchDir& dir) {
  try {
    return makeAll(dir);
  } catch (const std::exception& e) {
    std::cerr << "tls_certs: " << e.what() << std::endl;
    std::abort();
  }
}

}  // namespace

const TestCerts& testCerts() {
  static const ScratchDir dir;  // removed when the test program exits
  static const TestCerts certs = makeAllOrDie(dir);
  return certs;
}

bool replaceFile(const std::string& from, const std::string& to) {
  std::string temp = to + ".tmp";
  std::error_code ec;
  std::filesystem::copy_file(from, temp, std::filesystem::copy_options::overwrite_existing, ec);
  if (ec) return false;
  std::filesystem::rename(temp, to, ec);
  return !ec;
}

}  // namespace speedmimi::test
